//! What the guest printed on its serial console, kept for the caller: the full
//! output (bounded), the last lines for error messages, and the moments the
//! boot-phase markers appeared. The vCPU thread feeds it through the UART; it
//! hands complete lines to the caller's callback only through a non-blocking
//! queue (`console_delivery.rs`), never by calling it.

use super::console_delivery::LineSender;
use std::collections::VecDeque;

/// Most console bytes kept; older output is dropped first.
const MAX_BYTES: usize = 4 << 20;
/// Lines kept for error reports.
const LAST_LINES: usize = 40;
/// Longest line we keep whole.
const MAX_LINE: usize = 4096;

/// A callback receiving each complete console line (without the newline).
/// Shared (so a `VmConfig` can be cloned): VMs started from clones of one
/// config call the same callback, one line at a time.
pub type LineCallback = std::sync::Arc<std::sync::Mutex<dyn FnMut(&str) + Send>>;

/// Wraps `f` as a [`LineCallback`].
pub fn line_callback(f: impl FnMut(&str) + Send + 'static) -> LineCallback {
    std::sync::Arc::new(std::sync::Mutex::new(f))
}

/// Accumulated console output.
pub struct ConsoleLog {
    bytes: VecDeque<u8>,
    line: Vec<u8>,
    lines: VecDeque<String>,
    ready_marker: String,
    panic_prefixes: &'static [&'static str],
    sink: Option<LineSender>,
    /// A line containing the ready marker has been seen.
    pub ready: bool,
    /// The first line that looked like a guest panic.
    pub panic_line: Option<String>,
    /// Total bytes ever received.
    pub total: u64,
}

/// What one chunk of output changed.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct ConsoleEvents {
    /// This was the first byte ever.
    pub first_byte: bool,
    /// The ready marker arrived in this chunk.
    pub ready: bool,
    /// A panic line arrived in this chunk.
    pub panic: bool,
}

impl ConsoleLog {
    /// A log that watches for `ready_marker` and lines starting with any of `panic_prefixes`.
    pub fn new(ready_marker: String, panic_prefixes: &'static [&'static str]) -> Self {
        ConsoleLog {
            bytes: VecDeque::new(),
            line: Vec::new(),
            lines: VecDeque::new(),
            ready_marker,
            panic_prefixes,
            sink: None,
            ready: false,
            panic_line: None,
            total: 0,
        }
    }

    /// Feeds bytes written by the guest.
    pub fn push(&mut self, data: &[u8]) -> ConsoleEvents {
        let mut ev = ConsoleEvents {
            first_byte: self.total == 0 && !data.is_empty(),
            ..Default::default()
        };
        self.total += data.len() as u64;
        for &b in data {
            if self.bytes.len() == MAX_BYTES {
                self.bytes.pop_front();
            }
            self.bytes.push_back(b);
            if b == b'\n' {
                self.end_line(&mut ev);
            } else if b != b'\r' && self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
        ev
    }

    fn end_line(&mut self, ev: &mut ConsoleEvents) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if !self.ready && !self.ready_marker.is_empty() && line.contains(&self.ready_marker) {
            self.ready = true;
            ev.ready = true;
        }
        if self.panic_line.is_none() && self.panic_prefixes.iter().any(|p| line.contains(p)) {
            self.panic_line = Some(line.clone());
            ev.panic = true;
        }
        if let Some(sink) = self.sink.as_ref() {
            sink.send(&line);
        }
        if self.lines.len() == LAST_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Sends every later complete line to `sink` (the callback's delivery queue).
    pub fn set_sink(&mut self, sink: LineSender) {
        self.sink = Some(sink);
    }

    /// Stops sending lines (the delivery thread drains what is queued, then ends).
    pub fn close_sink(&mut self) {
        self.sink = None;
    }

    /// Everything kept so far, lossily decoded.
    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// The last complete lines plus any partial one.
    pub fn last_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lines.iter().cloned().collect();
        if !self.line.is_empty() {
            v.push(String::from_utf8_lossy(&self.line).into_owned());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::console_delivery::ConsoleDelivery;
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn finds_markers_and_keeps_lines() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (sink, delivery) = ConsoleDelivery::spawn(line_callback(move |l| {
            s2.lock().unwrap().push(l.to_string())
        }))
        .unwrap();
        let mut log = ConsoleLog::new("READY".into(), &["PANIC:"]);
        log.set_sink(sink);
        let ev = log.push(b"hello\r\nwor");
        assert!(ev.first_byte && !ev.ready);
        let ev = log.push(b"ld\nREADY now\n");
        assert!(ev.ready && !ev.first_byte);
        assert!(!log.push(b"READY again\n").ready, "ready fires once");
        assert!(log.push(b"PANIC: oops\npartial").panic);
        assert_eq!(log.panic_line.as_deref(), Some("PANIC: oops"));
        assert_eq!(log.last_lines().last().unwrap(), "partial");
        log.close_sink();
        assert!(delivery.finish(Duration::from_secs(10)));
        assert_eq!(
            seen.lock().unwrap()[..2],
            ["hello".to_string(), "world".to_string()]
        );
        assert!(log.text().starts_with("hello\r\nworld\n"));
    }

    #[test]
    fn output_is_bounded() {
        let mut log = ConsoleLog::new(String::new(), &[]);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..6 {
            log.push(&chunk);
        }
        assert_eq!(log.text().len(), MAX_BYTES);
        assert_eq!(log.total, 6 << 20);
        assert!(log.last_lines()[0].len() <= MAX_LINE);
    }
}
