//! The agent: serves the host over vsock from one event loop on vCPU 0.
//!
//! Ports (see [`ports`]): the control port speaks `kvmsandbox_proto` frames; two
//! raw byte services exist for transport tests: echo (bytes come back) and sink
//! (bytes are counted and discarded; once the host shuts down its sending side the
//! count goes back as a little-endian u64). Any number of connections are served
//! at once; the loop sleeps in `hlt` when no connection can make progress.

mod control;
mod disk;
mod stream;

use alloc::vec::Vec;

use crate::interrupts;
use crate::virtio::blk::Blk;
use crate::virtio::vsock::{ConnId, Vsock};

use self::control::Control;
use self::stream::{Echo, Sink};

/// vsock ports the agent listens on.
pub mod ports {
    /// The protocol port (`kvmsandbox_proto::DEFAULT_AGENT_PORT`).
    pub const CONTROL: u32 = kvmsandbox_proto::DEFAULT_AGENT_PORT;
    /// Raw echo service.
    pub const ECHO: u32 = 1025;
    /// Raw sink service.
    pub const SINK: u32 = 1026;
}

/// What a step of a session did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing could be done now.
    Idle,
    /// Bytes moved.
    Progress,
    /// The session is over; its connection was closed.
    Done,
    /// The host asked the guest to stop.
    Shutdown,
}

enum Session {
    Control(Control),
    Echo(Echo),
    Sink(Sink),
}

/// The agent's state: devices and live sessions.
pub struct Agent {
    vsock: Vsock,
    disks: Vec<Blk>,
    sessions: Vec<(ConnId, Session)>,
}

impl Agent {
    /// Listens on every agent port.
    pub fn new(mut vsock: Vsock, disks: Vec<Blk>) -> Self {
        for p in [ports::CONTROL, ports::ECHO, ports::SINK] {
            vsock.listen(p);
        }
        Agent { vsock, disks, sessions: Vec::new() }
    }

    /// Serves forever; returns only when the host sent `Shutdown`.
    pub fn run(&mut self) {
        loop {
            let seen = interrupts::count();
            let mut progress = self.vsock.poll();
            while let Some((conn, port)) = self.vsock.accept() {
                progress = true;
                let session = match port {
                    ports::CONTROL => Session::Control(Control::new(&mut self.vsock, conn, self.disks.len())),
                    ports::ECHO => Session::Echo(Echo::default()),
                    _ => Session::Sink(Sink::default()),
                };
                self.sessions.push((conn, session));
            }
            let mut i = 0;
            while i < self.sessions.len() {
                let (conn, ref mut s) = self.sessions[i];
                let step = match s {
                    Session::Control(c) => c.step(&mut self.vsock, conn, &mut self.disks),
                    Session::Echo(e) => e.step(&mut self.vsock, conn),
                    Session::Sink(k) => k.step(&mut self.vsock, conn),
                };
                match step {
                    Step::Idle => i += 1,
                    Step::Progress => {
                        progress = true;
                        i += 1;
                    }
                    Step::Done => {
                        progress = true;
                        self.sessions.swap_remove(i);
                    }
                    Step::Shutdown => {
                        self.vsock.flush_blocking();
                        let s = self.vsock.stats();
                        crate::println!(
                            "vsock stats: rx {} packets {} bytes ({} copied), tx {} packets {} bytes; irq lines seen {:#x}",
                            s.rx_packets, s.rx_bytes, s.rx_copied, s.tx_packets, s.tx_bytes, interrupts::seen_mask()
                        );
                        return;
                    }
                }
            }
            if !progress {
                interrupts::idle_since(seen);
            }
        }
    }
}
