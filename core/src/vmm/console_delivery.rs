//! The caller's console callback runs here, on a thread of its own: never on a
//! vCPU thread (whose seccomp filter would kill the process for a callback that
//! opens a file) and never under the VM's run-state lock (a callback may call
//! `console_output()`). The vCPU thread decoding the UART only queues each line,
//! without ever blocking; the queue is bounded, so a callback that falls behind
//! loses lines instead of growing host memory or stalling the guest, and is told
//! how many it lost.

use super::console::LineCallback;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Lines queued for the callback at most (each at most the console's line cap,
/// 4 KiB): about 1 MiB when the callback falls behind.
pub const QUEUE_LINES: usize = 256;

/// The vCPU side: queues lines for the delivery thread, dropping them when full.
pub struct LineSender {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl LineSender {
    /// Queues `line`; never blocks. Counts it as dropped if the queue is full.
    pub fn send(&self, line: &str) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line.to_owned()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The line the callback gets in place of `n` lines it was too slow to take.
pub fn dropped_notice(n: u64) -> String {
    format!("[kvmsandbox: {n} console line(s) dropped: the console callback was too slow]")
}

/// The delivery thread; [`finish`](Self::finish) ends it.
pub struct ConsoleDelivery {
    thread: Option<JoinHandle<()>>,
    done: Receiver<()>,
}

impl ConsoleDelivery {
    /// Starts the thread `kvmsb-console` calling `callback` with each queued line.
    pub fn spawn(callback: LineCallback) -> std::io::Result<(LineSender, ConsoleDelivery)> {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
        let (done_tx, done) = mpsc::sync_channel::<()>(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        let thread = std::thread::Builder::new()
            .name("kvmsb-console".into())
            .spawn(move || {
                let _done = done_tx; // dropped last: tells `finish` the callback returned
                                     // Shared with clones of the VmConfig: one call at a time.
                let call = |line: &str| {
                    let mut cb = callback.lock().unwrap_or_else(|p| p.into_inner());
                    (*cb)(line)
                };
                let report = || {
                    let n = lost.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        call(&dropped_notice(n));
                    }
                };
                for line in rx.iter() {
                    report();
                    call(&line);
                }
                report();
            })?;
        Ok((
            LineSender { tx, dropped },
            ConsoleDelivery {
                thread: Some(thread),
                done,
            },
        ))
    }

    /// Waits (up to `bound`) for the callback to take the lines still queued and
    /// return, then joins the thread. Every [`LineSender`] must be dropped first.
    /// Returns `false` if the callback was still running after `bound`: the thread
    /// is then left to finish on its own. Called from the callback itself (the
    /// callback dropped the last handle of its VM), it returns at once.
    pub fn finish(mut self, bound: Duration) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        if thread.thread().id() == std::thread::current().id() {
            return true;
        }
        match self.done.recv_timeout(bound) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::console::line_callback;
    use std::sync::Mutex;

    #[test]
    fn lines_arrive_in_order_and_finish_drains_the_queue() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (tx, d) = ConsoleDelivery::spawn(line_callback(move |l| {
            s2.lock().unwrap().push(l.to_string())
        }))
        .unwrap();
        for i in 0..100 {
            tx.send(&format!("line {i}"));
        }
        drop(tx);
        assert!(d.finish(Duration::from_secs(10)));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 100, "{seen:?}");
        assert_eq!(seen[99], "line 99");
    }

    #[test]
    fn a_slow_callback_loses_lines_not_memory_and_is_told() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (tx, d) = ConsoleDelivery::spawn(line_callback(move |l| {
            if l == "first" {
                let _ = gate_rx.recv(); // blocked until every line was sent
            }
            s2.lock().unwrap().push(l.to_string());
        }))
        .unwrap();
        tx.send("first");
        let extra = 1000;
        for i in 0..extra {
            tx.send(&format!("line {i}"));
        }
        gate_tx.send(()).unwrap();
        drop(tx);
        assert!(d.finish(Duration::from_secs(10)));
        let seen = seen.lock().unwrap();
        // "first" may or may not have been taken before the burst, so the
        // thread may report drops in more than one notice; at most the queue's
        // worth of the rest arrives, and the notices account for every line lost.
        let kept = seen.iter().filter(|l| l.starts_with("line ")).count();
        assert!(kept <= QUEUE_LINES, "{kept} lines kept");
        let told: u64 = seen
            .iter()
            .filter_map(|l| l.strip_prefix("[kvmsandbox: "))
            .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(
            told,
            (extra - kept) as u64,
            "notices do not add up: {:?}",
            seen.iter()
                .filter(|l| l.starts_with('['))
                .collect::<Vec<_>>()
        );
        assert!(
            told > 0,
            "1000 lines into a queue of {QUEUE_LINES} lost none"
        );
    }

    #[test]
    fn finish_gives_up_on_a_callback_that_never_returns() {
        let (tx, d) = ConsoleDelivery::spawn(line_callback(|_| {
            std::thread::sleep(Duration::from_secs(3600))
        }))
        .unwrap();
        tx.send("stuck");
        drop(tx);
        let t = std::time::Instant::now();
        assert!(!d.finish(Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}
