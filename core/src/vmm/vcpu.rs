//! One thread per vCPU: enter the guest, dispatch its port and MMIO exits to the
//! buses, and turn every other exit into a stop reason. A guest can end its VM,
//! never the host: all failures become a `StopReason`. The stop flag is checked
//! after every exit; the kick signal (see `kick.rs`) makes a thread leave the guest
//! or skip its next entry, so one kick is enough to stop it. The same kick parks
//! it at the pause gate (run_state.rs) when a snapshot or restore asks: it first
//! completes the exit it was in, so its state is whole.

use super::run_state::{RunState, StopReason};
use crate::devices::bus::Bus;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::Arc;

/// Most KVM_RUN rounds spent finishing the last exit before parking.
const PENDING_EXIT_ROUNDS: usize = 8;

/// What one KVM_RUN came to.
enum Step {
    /// An exit was handled; keep running.
    Continue,
    /// KVM_RUN returned EINTR/EAGAIN (a kick): no exit to handle.
    Interrupted,
    /// The VM must stop.
    Stop(StopReason),
}

/// How a guest's resets and triple faults are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetMeaning {
    /// A reset/triple fault is the guest's way to stop (Linux reboot).
    CleanExit,
    /// A triple fault is a crash (micro guest).
    Fault,
}

/// Everything a vCPU thread owns.
pub struct Vcpu {
    /// The KVM vCPU.
    pub fd: VcpuFd,
    /// Index (0 = BSP).
    pub index: u8,
    /// Port I/O bus.
    pub pio: Bus,
    /// MMIO bus.
    pub mmio: Bus,
    /// Shared VM state.
    pub state: Arc<RunState>,
    /// How to read resets.
    pub reset: ResetMeaning,
}

impl Vcpu {
    /// Thread body: run `on_start` (the seccomp filter), wait until the VM
    /// releases its vCPUs, then run until the VM stops. Returns at once if the VM
    /// stops before the release (a failed start).
    pub fn run(mut self, on_start: impl FnOnce() -> Result<(), String>) {
        super::kick::unblock_on_current_thread();
        if let Err(e) = on_start() {
            self.state.request_stop(StopReason::VcpuError(format!(
                "vcpu {} setup: {e}",
                self.index
            )));
            return;
        }
        if !self.state.wait_release() {
            return;
        }
        let run: *mut kvm_bindings::kvm_run = self.fd.get_kvm_run();
        // SAFETY: the kvm_run page is mapped by `self.fd`, a parameter, which is
        // dropped only after this local registration (locals drop first), on this
        // same thread.
        let _kick = unsafe { super::kick::RunRegistration::new(run) };
        if self.index == 0 {
            self.state.mark(|t| &mut t.first_vcpu_entry);
        }
        while !self.state.stopping() {
            if self.state.pausing() {
                if let Some(reason) = self.complete_pending_exit() {
                    self.state.request_stop(reason);
                    break;
                }
                self.state.park(self.index, &self.fd);
                continue;
            }
            if let Step::Stop(reason) = self.run_once() {
                self.state.request_stop(reason);
                break;
            }
        }
    }

    /// Re-enters KVM_RUN with `immediate_exit` set: KVM finishes the I/O or MMIO
    /// instruction of the last exit (its result is not in any state userspace can
    /// read) and returns without running further guest code (KVM API, "KVM_RUN").
    /// An exit that needs another (a split MMIO access) is handled like any other;
    /// bounded, as a guest cannot make one instruction exit forever.
    fn complete_pending_exit(&mut self) -> Option<StopReason> {
        for _ in 0..PENDING_EXIT_ROUNDS {
            self.fd.set_kvm_immediate_exit(1);
            match self.run_once() {
                Step::Interrupted => return None,
                Step::Stop(reason) => return Some(reason),
                Step::Continue => {}
            }
        }
        self.fd.set_kvm_immediate_exit(0);
        Some(StopReason::VcpuError(format!(
            "vcpu {}: exit not completed within {PENDING_EXIT_ROUNDS} rounds",
            self.index
        )))
    }

    fn rip(&self) -> u64 {
        self.fd.get_regs().map(|r| r.rip).unwrap_or(0)
    }

    fn run_once(&mut self) -> Step {
        match self.fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                self.state
                    .exits
                    .pio
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.pio.read(u64::from(port), data);
                Step::Continue
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                self.state
                    .exits
                    .pio
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.pio.write(u64::from(port), data);
                Step::Continue
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                self.state.exits.mmio(addr);
                self.mmio.read(addr, data);
                Step::Continue
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                self.state.exits.mmio(addr);
                self.mmio.write(addr, data);
                Step::Continue
            }
            Ok(VcpuExit::Hlt) => {
                // Only without an in-kernel irqchip: nothing can wake this vCPU.
                drop(self.state.wait_until(None, |s| s.stop.is_some()));
                Step::Continue
            }
            Ok(VcpuExit::Shutdown) => Step::Stop(match self.reset {
                ResetMeaning::CleanExit => StopReason::Reset,
                ResetMeaning::Fault => StopReason::TripleFault { rip: self.rip() },
            }),
            Ok(VcpuExit::SystemEvent(kind, _)) => Step::Stop(match (kind, self.reset) {
                (kvm_bindings::KVM_SYSTEM_EVENT_CRASH, _) | (_, ResetMeaning::Fault) => {
                    StopReason::VcpuError(format!("vcpu {} system event {kind}", self.index))
                }
                _ => StopReason::Reset,
            }),
            Ok(VcpuExit::InternalError) => {
                let run = self.fd.get_kvm_run();
                // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so the
                // `internal` member of the union is the one KVM filled in.
                let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                Step::Stop(StopReason::InternalError {
                    rip: self.rip(),
                    suberror,
                })
            }
            Ok(VcpuExit::FailEntry(reason, _)) => Step::Stop(StopReason::FailEntry { reason }),
            Ok(other) => Step::Stop(StopReason::VcpuError(format!(
                "vcpu {}: unhandled exit {other:?}",
                self.index
            ))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                Step::Interrupted
            }
            Err(e) => Step::Stop(StopReason::VcpuError(format!(
                "vcpu {}: KVM_RUN failed: {e}",
                self.index
            ))),
        }
    }
}
