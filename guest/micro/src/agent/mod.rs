//! The agent: serves the host over vsock from one event loop on vCPU 0.
//!
//! Ports (see [`ports`]): the control port speaks `kvmsandbox_proto` frames; two
//! raw byte services exist for transport tests: echo (bytes come back) and sink
//! (bytes are counted and discarded; once the host shuts down its sending side the
//! count goes back as a little-endian u64). Any number of connections are served
//! at once; the loop sleeps in `hlt` when no connection can make progress.

mod control;
mod disk;
mod host_call;
mod stream;

use alloc::vec::Vec;

use crate::interrupts;
use crate::virtio::blk::Blk;
use crate::virtio::vsock::{ConnId, Vsock};
use crate::wasm::Template;

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
    /// The prepared module (`PrepareWasm`): the agent's, not a connection's,
    /// since the host reconnects after restoring a snapshot taken with it.
    template: Option<Template>,
}

/// What one pass over the sessions did.
#[derive(Default)]
struct Pass {
    progress: bool,
    shutdown: bool,
}

impl Agent {
    /// Listens on every agent port.
    pub fn new(mut vsock: Vsock, disks: Vec<Blk>) -> Self {
        for p in [ports::CONTROL, ports::ECHO, ports::SINK] {
            vsock.listen(p);
        }
        Agent {
            vsock,
            disks,
            sessions: Vec::new(),
            template: None,
        }
    }

    /// Serves forever; returns only when the host sent `Shutdown`.
    pub fn run(&mut self) {
        loop {
            let seen = interrupts::count();
            let pass = serve(
                &mut self.vsock,
                &mut self.disks,
                &mut self.sessions,
                &mut self.template,
                false,
            );
            if pass.shutdown {
                self.vsock.flush_blocking();
                let s = self.vsock.stats();
                crate::println!(
                    "vsock stats: rx {} packets {} bytes ({} copied), tx {} packets {} bytes; irq lines seen {:#x}",
                    s.rx_packets, s.rx_bytes, s.rx_copied, s.tx_packets, s.tx_bytes, interrupts::seen_mask()
                );
                return;
            }
            if !pass.progress {
                interrupts::idle_since(seen);
            }
        }
    }
}

/// One pass: accept new connections and step every session once. A control
/// session that runs a module calls back into `serve` for all the others
/// (with `busy` set, so none of them starts a second run) at every check-in of
/// the run: the guest keeps answering pings, echoes and Shutdown meanwhile.
fn serve(
    vs: &mut Vsock,
    disks: &mut [Blk],
    sessions: &mut Vec<(ConnId, Session)>,
    template: &mut Option<Template>,
    busy: bool,
) -> Pass {
    let mut pass = Pass {
        progress: vs.poll(),
        shutdown: false,
    };
    while let Some((conn, port)) = vs.accept() {
        pass.progress = true;
        let session = match port {
            ports::CONTROL => Session::Control(Control::new(vs, conn, disks.len())),
            ports::ECHO => Session::Echo(Echo::default()),
            _ => Session::Sink(Sink::default()),
        };
        sessions.push((conn, session));
    }
    let mut i = 0;
    while i < sessions.len() && !pass.shutdown {
        // Taken out while it steps, so a run can serve the others.
        let (conn, mut session) = sessions.remove(i);
        let step = match &mut session {
            Session::Control(c) => {
                let mut stop = false;
                let mut others = |vs: &mut Vsock, disks: &mut [Blk]| {
                    // Busy: no nested session prepares or runs a module, so
                    // they need no template.
                    let nested = serve(vs, disks, sessions, &mut None, true);
                    stop |= nested.shutdown;
                    !nested.shutdown
                };
                let step = c.step(vs, conn, disks, template, busy, &mut others);
                if stop {
                    pass.shutdown = true;
                }
                step
            }
            Session::Echo(e) => e.step(vs, conn),
            Session::Sink(k) => k.step(vs, conn),
        };
        match step {
            Step::Idle | Step::Progress => {
                pass.progress |= step == Step::Progress;
                // A nested pass may have dropped sessions before this one.
                i = i.min(sessions.len());
                sessions.insert(i, (conn, session));
                i += 1;
            }
            Step::Done => pass.progress = true,
            Step::Shutdown => pass.shutdown = true,
        }
    }
    pass
}
