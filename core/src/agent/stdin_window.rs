//! Host side of exec stdin flow control: an agent announcing `caps::STDIN_ACK`
//! holds at most `STDIN_WINDOW` unacknowledged stdin bytes per command and drops
//! the excess, so the host sends only what the window allows and waits for
//! `StdinAck`s (read by whoever reads the command's output) to send more. The
//! writer must therefore run on another thread than the reader.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use kvmsandbox_proto::msg::{caps, STDIN_WINDOW};

#[derive(Default)]
struct State {
    unacked: u64,
    ended: bool,
}

/// One command's stdin window, shared by its writer and its reader.
pub(crate) struct StdinWindow {
    /// `None`: the agent does not acknowledge (older agent): no limit.
    limit: Option<u64>,
    state: Mutex<State>,
    room: Condvar,
}

impl StdinWindow {
    /// A window for an agent with these Hello capabilities.
    pub(crate) fn new(capabilities: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: (capabilities & caps::STDIN_ACK != 0).then_some(u64::from(STDIN_WINDOW)),
            state: Mutex::new(State::default()),
            room: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `n` more bytes fit; `false` once the command is over.
    pub(crate) fn acquire(&self, n: usize) -> bool {
        let n = n as u64;
        let mut s = self.lock();
        loop {
            if s.ended {
                return false;
            }
            match self.limit {
                Some(limit) if s.unacked + n > limit => {}
                _ => {
                    s.unacked += n;
                    return true;
                }
            }
            s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The agent acknowledged `n` bytes.
    pub(crate) fn release(&self, n: u32) {
        let mut s = self.lock();
        s.unacked = s.unacked.saturating_sub(u64::from(n));
        self.room.notify_all();
    }

    /// The command is over (or its connection is): writers stop waiting.
    pub(crate) fn end(&self) {
        self.lock().ended = true;
        self.room.notify_all();
    }
}

/// Ends the window when dropped (every way out of a reader loop).
pub(crate) struct EndOnDrop(pub(crate) Arc<StdinWindow>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writer_waits_for_acks_and_stops_when_the_command_ends() {
        let w = StdinWindow::new(caps::STDIN_ACK);
        assert!(w.acquire(STDIN_WINDOW as usize));
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.acquire(1));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "acquired beyond the window");
        w.release(1);
        assert!(t.join().unwrap());
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.acquire(1));
        w.end();
        assert!(!t.join().unwrap());
    }

    #[test]
    fn an_agent_without_acks_gets_no_limit() {
        let w = StdinWindow::new(0);
        assert!(w.acquire(STDIN_WINDOW as usize * 4));
    }
}
