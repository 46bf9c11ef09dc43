//! A running VM: create KVM objects, map memory, load the guest, wire devices,
//! start one named thread per vCPU held at a start gate, and wait for the guest's
//! ready marker. The handle owns everything; `kill()` or `Drop` stops the vCPUs,
//! joins every thread and closes every fd. The handle exists before the first
//! thread starts, so a start that fails at any later step drops it and that stops
//! and joins whatever was started. The caller's process never exits.

use super::boot::linux::{load_linux, LinuxImage};
use super::boot::micro;
use super::console::{ConsoleLog, LineCallback};
use super::console_delivery::ConsoleDelivery;
use super::device_manager;
use super::fail_point::FailPoint;
use super::host::HostKind;
use super::layout::{self, BOOT_STACKS_TOP, BOOT_STACK_SIZE};
use super::memory::{self, GuestMemory};
use super::run_state::{RunState, StopReason};
use super::snapshot::clock::ClockState;
use super::snapshot::irqchip::IrqchipState;
use super::snapshot::memory::{self as image, MemorySnapshot};
use super::snapshot::pit::PitState;
use super::snapshot::vcpu::{self as vcpu_state, VcpuCaps, VcpuState};
use super::snapshot::{SnapshotError, VmSnapshot, VM_SNAPSHOT_VERSION};
use super::timings::BootTimings;
use super::vcpu::{ResetMeaning, Vcpu};
use super::{cpuid, kick, kvm, regs};
use crate::config::{Guest, VmConfig, MICRO_GUEST_ELF};
use crate::devices::bus::Bus;
use crate::devices::virtio::{DeviceEventLoop, EventLoopHandle};
use crate::devices::virtio::{DeviceState, MmioTransport};
use crate::devices::{exit_port::ExitPort, i8042::I8042, serial::SerialDevice};
use crate::error::{describe, Error, Result};
use crate::seccomp::{self, SeccompPolicy, ThreadKind, TrapRecord};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use kvmsandbox_proto::bootinfo::{self, EXIT_PANIC};
use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;

/// Console lines that mean the guest panicked.
const PANIC_PREFIXES: &[&str] = &["PANIC: ", "Kernel panic - not syncing"];
/// Ready marker of a Linux guest until its agent speaks.
pub const LINUX_DEFAULT_MARKER: &str = "Run /init as init process";
/// How long stopping waits for kicked vCPU threads to leave (one kick suffices;
/// this only bounds a thread stuck in a device handler).
const VCPU_EXIT_BOUND: Duration = Duration::from_secs(10);
/// How long a snapshot or restore waits for the vCPUs to park or run their jobs.
const PAUSE_BOUND: Duration = Duration::from_secs(10);
/// How long stopping waits for the console callback to return.
const CONSOLE_FINISH_BOUND: Duration = Duration::from_secs(5);

/// The Linux command line: ours, the devices', then the caller's extras (last
/// wins for repeated keys, so a caller can override ours).
pub fn linux_cmdline(host: HostKind, devices: &[String], extra: &str) -> String {
    let mut words: Vec<String> = [
        "console=ttyS0",
        "reboot=k",
        "panic=-1",
        "pci=off",
        "nomodule",
        "8250.nr_uarts=1",
        "i8042.noaux",
        "i8042.nomux",
        "i8042.dumbkbd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if host.is_pvm() {
        // PVM's emulator lacks xsave, popcnt, cmpxchg16b, clac/stac (SMAP) and a
        // CPL0 int3 or fwait (docs/platform.md, and measured: the kernel patches `clac` into its
        // entry paths even though our CPUID hides SMAP, and dies at its first
        // interrupt). The int3 self-test skip is our kernel patch's parameter.
        words.extend(
            [
                "clearcpuid=popcnt,cx16,smap",
                "noxsave",
                "kvmsandbox.no_int3_selftest",
                "kvmsandbox.no_fwait",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    }
    words.extend(devices.iter().cloned());
    if !extra.is_empty() {
        words.push(extra.to_string());
    }
    words.join(" ")
}

/// How a VM ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmExit {
    /// The guest exited with this status (micro guest exit port).
    Exited(u32),
    /// The guest rebooted or powered off (Linux).
    Reset,
    /// The host killed it.
    Killed,
}

/// A running VM.
pub struct Vm {
    state: Arc<RunState>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    events: Mutex<Option<EventLoopHandle>>,
    console: Mutex<Option<ConsoleDelivery>>,
    /// Forbidden syscalls of this VM's threads under the Trap policy.
    trap: Arc<TrapRecord>,
    // Our own references, so devices are dropped here (unfiltered: the vsock
    // device removes its socket file) and not on the seccomp-filtered loop thread.
    devices: Vec<Arc<Mutex<crate::devices::virtio::MmioTransport>>>,
    host: HostKind,
    marker: String,
    /// The memory image RAM is mapped from (after a snapshot or restore); its lock
    /// also serializes snapshots and restores.
    image: Mutex<Option<Arc<MemorySnapshot>>>,
    has_pit: bool,
    vcpu_count: usize,
    /// Set once `start` succeeded: from then on `drop` closes the KVM objects
    /// in the background (reaper.rs); a failed start closes them before it returns.
    close_in_background: bool,
    // Taken in Drop after the threads are joined, never used afterwards.
    _mem: ManuallyDrop<GuestMemory>,
    _vm: ManuallyDrop<VmFd>,
    _kvm: ManuallyDrop<Kvm>,
}

/// What closing a VM drops, in this order: the VM fd first (KVM tears the VM
/// down and stops using guest RAM), then RAM, then the /dev/kvm fd.
struct KvmObjects {
    _vm: VmFd,
    _mem: GuestMemory,
    _kvm: Kvm,
}

pub(crate) fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |e| Error::KvmIoctl {
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

fn host_err(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Host { what, source }
}

/// 32 bytes from the host's `getrandom` (time-derived if that fails).
pub(crate) fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // SAFETY: getrandom writes at most seed.len() bytes into our buffer.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != seed.len() as isize {
        // Fall back to time-derived bits; the seed is not a security boundary.
        let t = Instant::now().elapsed().as_nanos() ^ std::process::id() as u128;
        seed[..16].copy_from_slice(&t.to_le_bytes());
    }
    seed
}

impl Vm {
    /// Creates and boots a VM, returning once the guest printed its ready marker.
    pub fn start(mut cfg: VmConfig) -> Result<Vm> {
        let t0 = Instant::now();
        cfg.validate()?;
        kick::install()?;
        let host = HostKind::detect();
        let kvm = kvm::open(&cfg.kvm_device)?;
        let is_linux = matches!(cfg.guest, Guest::Linux { .. });
        let marker = cfg.ready_marker.clone().unwrap_or_else(|| {
            if is_linux {
                LINUX_DEFAULT_MARKER.to_string()
            } else {
                bootinfo::READY_MARKER.to_string()
            }
        });
        let console = ConsoleLog::new(marker.clone(), PANIC_PREFIXES);
        let state = Arc::new(RunState::new(console, t0));
        let fail = FailPoint::from_env();

        let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
        vm.set_tss_address(0xfffb_d000)
            .map_err(ioctl("KVM_SET_TSS_ADDR"))?;
        vm.set_identity_map_address(0xfffb_c000)
            .map_err(ioctl("KVM_SET_IDENTITY_MAP_ADDR"))?;
        state.mark(|t| &mut t.vm_created);

        // Memory slots before the irqchip: KVM accepts either order, and on PVM
        // the first slot set after KVM_CREATE_IRQCHIP costs 4-11 ms instead of
        // ~0.06 ms (docs/snapshots.md).
        let mem = memory::create(cfg.mem_bytes())?;
        memory::register(&vm, &mem)?;
        vm.create_irq_chip().map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
        // Linux calibrates its clocks against the PIT; so does the micro guest
        // when KVM cannot tell it the TSC rate (guest/micro/src/pit.rs), or when
        // asked to (`clock=calibrate`). Otherwise a micro VM goes without: each
        // in-kernel PIT costs a kernel worker thread.
        let micro_calibrates = cfg
            .cmdline
            .split_whitespace()
            .any(|w| w == "clock=calibrate")
            || !kvm.check_extension(kvm_ioctls::Cap::GetTscKhz);
        let has_pit = is_linux || micro_calibrates;
        if has_pit {
            let pit = kvm_bindings::kvm_pit_config {
                flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit).map_err(ioctl("KVM_CREATE_PIT2"))?;
        }
        state.mark(|t| &mut t.memory_mapped);

        let (pio, mut mmio) = Self::legacydevices(&vm, &state)?;
        let placed = device_manager::place(&vm, &mem, &mut mmio, &cfg.disks, cfg.vsock.as_ref())?;

        regs::write_boot_structures(&mem)?;
        let vcpus = cfg.vcpus as u8;
        let flags = if host.is_pvm() {
            bootinfo::flags::HOST_PVM
        } else {
            0
        };
        let (entry, arg) = match &cfg.guest {
            Guest::Micro { image } => {
                let owned;
                let elf: &[u8] = match image {
                    None => MICRO_GUEST_ELF,
                    Some(p) => {
                        owned = std::fs::read(p).map_err(|source| {
                            crate::config::ConfigError::FileUnreadable {
                                what: "micro guest image",
                                path: p.clone(),
                                source,
                            }
                        })?;
                        &owned
                    }
                };
                let e = micro::load(
                    &mem,
                    elf,
                    &cfg.cmdline,
                    cfg.vcpus,
                    &placed.infos,
                    flags,
                    random_seed(),
                )?;
                (e.entry, e.boot_info)
            }
            Guest::Linux { kernel, initrd } => {
                let cmdline = linux_cmdline(host, &placed.cmdline, &cfg.cmdline);
                let image = LinuxImage {
                    kernel,
                    initrd: initrd.as_deref(),
                    cmdline: &cmdline,
                };
                let e = load_linux(&mem, &image)?;
                super::boot::mptable::write(&mem, vcpus)?;
                (e.entry.0, e.boot_params.0)
            }
        };
        state.mark(|t| &mut t.image_loaded);

        let mut fds = Vec::with_capacity(vcpus as usize);
        for i in 0..vcpus {
            fds.push(Self::setup_vcpu(
                &kvm, &vm, i, vcpus, host, is_linux, entry, arg,
            )?);
        }
        if !is_linux {
            // The micro guest's clock: rdtsc scaled by KVM's TSC rate (0 = unknown).
            if let Some(khz) = fds.first().and_then(|f| f.get_tsc_khz().ok()) {
                micro::set_tsc_khz(&mem, u64::from(khz))?;
            }
        }

        let parts = Parts {
            kvm,
            vm,
            mem,
            state,
            devices: placed.transports,
            host,
            marker,
            image: None,
            has_pit,
            is_linux,
            fds,
            pio,
            mmio,
        };
        let vm_handle = Vm::assemble_and_launch(parts, &mut cfg, &fail)?;
        fail.check("wait-ready")?;
        vm_handle.wait_ready(cfg.start_timeout)?;
        Ok(vm_handle.started())
    }

    /// Assembles a VM from `p` and launches its threads (`cfg`'s seccomp
    /// policy, its console callback taken). An error drops what was
    /// assembled, which stops and joins every thread started so far.
    fn assemble_and_launch(p: Parts, cfg: &mut VmConfig, fail: &FailPoint) -> Result<Vm> {
        let reset = if p.is_linux {
            ResetMeaning::CleanExit
        } else {
            ResetMeaning::Fault
        };
        let vm_handle = Vm {
            state: p.state,
            threads: Mutex::new(Vec::with_capacity(p.fds.len())),
            events: Mutex::new(None),
            console: Mutex::new(None),
            trap: TrapRecord::new(),
            devices: p.devices,
            host: p.host,
            marker: p.marker,
            image: Mutex::new(p.image),
            has_pit: p.has_pit,
            vcpu_count: p.fds.len(),
            close_in_background: false,
            _mem: ManuallyDrop::new(p.mem),
            _vm: ManuallyDrop::new(p.vm),
            _kvm: ManuallyDrop::new(p.kvm),
        };
        let launch = Launch {
            fds: p.fds,
            pio: p.pio,
            mmio: p.mmio,
            reset,
            policy: cfg.seccomp,
            callback: cfg.console_callback.take(),
        };
        vm_handle.launch(launch, fail)?;
        Ok(vm_handle)
    }

    /// The VM once started: from now on dropping it closes the KVM objects
    /// in the background.
    fn started(mut self) -> Vm {
        self.close_in_background = true;
        self
    }

    /// Starts the console delivery, vCPU and device threads, then lets the vCPUs run.
    fn launch(&self, l: Launch, fail: &FailPoint) -> Result<()> {
        if let Some(callback) = l.callback {
            fail.check("console")?;
            let (sink, delivery) =
                ConsoleDelivery::spawn(callback).map_err(host_err("console callback thread"))?;
            *crate::devices::bus::lock(&self.console) = Some(delivery);
            self.state.lock().console.set_sink(sink);
        }
        let policy = l.policy;
        let setup_fails = fail.hits("vcpu-setup");
        for (i, fd) in l.fds.into_iter().enumerate() {
            fail.check(&format!("vcpu{i}"))?;
            let v = Vcpu {
                fd,
                index: i as u8,
                pio: l.pio.clone(),
                mmio: l.mmio.clone(),
                state: self.state.clone(),
                reset: l.reset,
            };
            let live = self.state.live_vcpu();
            let trap = self.trap.clone();
            let h = std::thread::Builder::new()
                .name(format!("kvmsb-vcpu{i}"))
                .spawn(move || {
                    let _live = live;
                    v.run(move || {
                        if setup_fails {
                            return Err(
                                "injected failure (KVMSB_TEST_FAIL_START=vcpu-setup)".into()
                            );
                        }
                        seccomp::install(ThreadKind::Vcpu, policy, &trap).map_err(|e| e.to_string())
                    })
                });
            crate::devices::bus::lock(&self.threads).push(h.map_err(host_err("vCPU thread"))?);
        }
        fail.check("event-loop")?;
        if !self.devices.is_empty() {
            let trap = self.trap.clone();
            let install =
                move || seccomp::install(ThreadKind::Vmm, policy, &trap).map_err(|e| e.to_string());
            // A loop that ends by itself leaves the guest without devices: stop the VM.
            let loop_state = self.state.clone();
            let on_exit =
                move |r: &std::result::Result<(), crate::devices::virtio::EventLoopError>| {
                    if let Err(e) = r {
                        loop_state.request_stop(StopReason::DeviceLoop(e.to_string()));
                    }
                };
            let events =
                DeviceEventLoop::spawn(self.devices.clone(), "kvmsb-devices", install, on_exit)?;
            *crate::devices::bus::lock(&self.events) = Some(events);
        }
        let ids: Vec<libc::pthread_t> = crate::devices::bus::lock(&self.threads)
            .iter()
            .map(std::os::unix::thread::JoinHandleExt::as_pthread_t)
            .collect();
        self.state
            .set_kicker(Box::new(move || ids.iter().for_each(|&t| kick::kick(t))));
        self.state.release_vcpus();
        Ok(())
    }

    fn legacydevices(vm: &VmFd, state: &Arc<RunState>) -> Result<(Bus, Bus)> {
        let mut pio = Bus::new();
        let serial_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("serial eventfd"))?;
        vm.register_irqfd(&serial_irq, layout::SERIAL_IRQ)
            .map_err(ioctl("KVM_IRQFD (serial)"))?;
        pio.insert(
            Arc::new(Mutex::new(SerialDevice::new(state.clone(), serial_irq))),
            u64::from(layout::SERIAL_PORT),
            8,
        )?;
        pio.insert(
            Arc::new(Mutex::new(ExitPort(state.clone()))),
            u64::from(layout::EXIT_PORT),
            4,
        )?;
        pio.insert(Arc::new(Mutex::new(I8042(state.clone()))), 0x60, 5)?;
        #[cfg(feature = "test-utils")]
        pio.insert(
            Arc::new(Mutex::new(crate::devices::test_probe::TestProbe)),
            u64::from(crate::devices::test_probe::PROBE_PORT),
            4,
        )?;
        Ok((pio, Bus::new()))
    }

    /// Creates vCPU `i` of `count` with the CPUID this host's guests see (a new
    /// boot and a fork from a snapshot both start here).
    pub(super) fn create_vcpu(
        kvm: &Kvm,
        vm: &VmFd,
        i: u8,
        count: u8,
        host: HostKind,
    ) -> Result<VcpuFd> {
        let fd = vm
            .create_vcpu(u64::from(i))
            .map_err(ioctl("KVM_CREATE_VCPU"))?;
        let mut cpuid = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        cpuid::filter(&mut cpuid, i, count, host);
        fd.set_cpuid2(&cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;
        Ok(fd)
    }

    #[allow(clippy::too_many_arguments)]
    fn setup_vcpu(
        kvm: &Kvm,
        vm: &VmFd,
        i: u8,
        count: u8,
        host: HostKind,
        linux: bool,
        entry: u64,
        arg: u64,
    ) -> Result<VcpuFd> {
        let fd = Self::create_vcpu(kvm, vm, i, count, host)?;
        regs::setup_lapic(&fd)?;
        if linux {
            regs::setup_boot_msrs(&fd)?;
            if i == 0 {
                // Linux 64-bit boot protocol: rsi = boot_params; APs wait for SIPI.
                regs::setup_long_mode(&fd, entry, BOOT_STACKS_TOP - 16, 0, arg)?;
            }
        } else {
            let rsp = BOOT_STACKS_TOP - u64::from(i) * BOOT_STACK_SIZE;
            regs::setup_long_mode(&fd, entry, rsp, arg, u64::from(i))?;
            if i > 0 {
                let mp = kvm_bindings::kvm_mp_state {
                    mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
                };
                fd.set_mp_state(mp).map_err(ioctl("KVM_SET_MP_STATE"))?;
            }
        }
        Ok(fd)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let (g, ok) = self
            .state
            .wait_until(Some(timeout), |s| s.console.ready || s.stop.is_some());
        let ready = g.console.ready;
        let stop = g.stop.clone();
        let last_lines = g.console.last_lines();
        let panic_line = g.console.panic_line.clone();
        drop(g);
        if ready {
            // Whatever happens next (even an immediate exit or panic) is reported by wait().
            return Ok(());
        }
        self.kill();
        match stop {
            None if !ok => Err(Error::StartTimeout {
                marker: self.marker.clone(),
                after: timeout,
                last_lines,
            }),
            Some(r) => Err(self.stop_error(r, panic_line, last_lines)),
            None => Ok(()),
        }
    }

    fn stop_error(
        &self,
        r: StopReason,
        panic_line: Option<String>,
        last_lines: Vec<String>,
    ) -> Error {
        match r {
            StopReason::GuestExit(EXIT_PANIC) | StopReason::ConsolePanic(_) => {
                let message = panic_line
                    .map(|l| l.trim_start_matches("PANIC: ").to_string())
                    .unwrap_or_else(|| describe(&r));
                match super::pvm_linux::init_killed_by_signal(&message, &last_lines) {
                    Some(signal) if self.host.is_pvm() => Error::LinuxUserSpaceOnPvm {
                        signal,
                        panic: message,
                        last_lines,
                    },
                    _ => Error::GuestPanic {
                        message,
                        last_lines,
                    },
                }
            }
            StopReason::TripleFault { .. }
            | StopReason::InternalError { .. }
            | StopReason::FailEntry { .. }
            | StopReason::VcpuError(_) => Error::GuestCrashed {
                reason: describe(&r),
                last_lines,
            },
            StopReason::DeviceLoop(reason) => Error::DeviceLoop { reason },
            other => Error::EarlyExit {
                reason: describe(&other),
                last_lines,
            },
        }
    }

    /// Blocks until the VM stops; returns how, or the guest's failure.
    pub fn wait(&self) -> Result<VmExit> {
        self.wait_timeout(None).map(|e| e.unwrap_or(VmExit::Killed))
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (`Ok(None)`).
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Result<Option<VmExit>> {
        let (g, done) = self.state.wait_until(timeout, |s| s.stop.is_some());
        if !done {
            return Ok(None);
        }
        let r = g.stop.clone().unwrap_or(StopReason::Killed);
        let panic_line = g.console.panic_line.clone();
        let last = g.console.last_lines();
        drop(g);
        self.join_threads();
        if let Some(t) = self.trap.take() {
            return Err(Error::Seccomp(t.into_error()));
        }
        match r {
            StopReason::GuestExit(s) if s != EXIT_PANIC => Ok(Some(VmExit::Exited(s))),
            StopReason::Reset => Ok(Some(VmExit::Reset)),
            StopReason::Killed => Ok(Some(VmExit::Killed)),
            other => Err(self.stop_error(other, panic_line, last)),
        }
    }

    /// Stops the VM now and joins its threads. Idempotent.
    pub fn kill(&self) {
        self.state.request_stop(StopReason::Killed);
        self.join_threads();
    }

    /// Stops every thread of the VM (the VM must be stopping) and joins it:
    /// vCPUs held at the start gate leave when they see the stop; running ones get
    /// one kick each. A vCPU thread that does not end within a generous bound is
    /// reported on stderr and left behind (detached) rather than hanging the caller.
    fn join_threads(&self) {
        let mut threads = crate::devices::bus::lock(&self.threads);
        if !threads.is_empty() {
            // No kick may name a thread once it is joined: remove the kicker first.
            drop(self.state.take_kicker());
            for t in threads.iter() {
                kick::kick(std::os::unix::thread::JoinHandleExt::as_pthread_t(t));
            }
            let left = self.state.wait_vcpus_gone(VCPU_EXIT_BOUND);
            if left > 0 {
                eprintln!("kvmsandbox: {left} vCPU thread(s) did not stop within {VCPU_EXIT_BOUND:?} of being kicked; leaving them detached");
                threads.retain(|t| t.is_finished());
            }
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
        drop(threads);
        if let Some(ev) = crate::devices::bus::lock(&self.events).take() {
            let _ = ev.stop();
            // Nothing serves the devices any more: let their host peers know now,
            // not when the handle is dropped.
            for t in &self.devices {
                crate::devices::bus::lock(t).device_mut().stop_backend();
            }
        }
        // The vCPUs are gone, so no line is queued any more: close the queue and
        // let the callback take what is left.
        self.state.lock().console.close_sink();
        if let Some(delivery) = crate::devices::bus::lock(&self.console).take() {
            if !delivery.finish(CONSOLE_FINISH_BOUND) {
                eprintln!("kvmsandbox: the console callback did not return within {CONSOLE_FINISH_BOUND:?}; leaving its thread detached");
            }
        }
    }

    /// True until the VM has stopped.
    pub fn is_running(&self) -> bool {
        !self.state.stopping()
    }

    /// Everything the guest printed on its console (bounded to the last 4 MiB).
    pub fn console_output(&self) -> String {
        self.state.lock().console.text()
    }

    /// The last console lines.
    pub fn console_last_lines(&self) -> Vec<String> {
        self.state.lock().console.last_lines()
    }

    /// Boot-phase timings.
    pub fn timings(&self) -> BootTimings {
        self.state.lock().timings
    }

    /// The virtio devices (type id, e.g. 2 = block, 19 = vsock) and whether the
    /// guest's driver activated each one (DRIVER_OK): proof that a guest found them.
    pub fn virtio_devices(&self) -> Vec<(u32, bool)> {
        self.devices
            .iter()
            .map(|t| {
                let t = crate::devices::bus::lock(t);
                (t.device().device_type(), t.is_activated())
            })
            .collect()
    }

    /// VM exits that reached the VMM so far (queue notifications and interrupts go
    /// through ioeventfds/irqfds and are not counted: they cause none).
    pub fn exit_stats(&self) -> super::run_state::ExitStats {
        self.state.exits.snapshot(self.devices.len())
    }

    /// The host KVM kind this VM runs on.
    pub fn host_kind(&self) -> HostKind {
        self.host
    }

    /// Guest RAM, for tools and tests that read or write guest memory from the
    /// host (writes race with the running guest unless it is paused).
    pub fn guest_memory(&self) -> &GuestMemory {
        &self._mem
    }

    /// Pauses the vCPUs at a safe point (between two guest entries, the last
    /// exit completed) until the returned guard drops. One pause at a time:
    /// another caller waits. Device threads keep running.
    pub fn pause(&self) -> std::result::Result<Paused<'_>, SnapshotError> {
        let image = crate::devices::bus::lock(&self.image);
        if self.state.stopping() {
            return Err(SnapshotError::Stopped);
        }
        self.state.request_pause();
        let paused = Paused { vm: self, image };
        if !self.state.wait_parked(self.vcpu_count, PAUSE_BOUND) {
            if self.state.stopping() {
                return Err(SnapshotError::Stopped);
            }
            let parked = self.state.lock().parked;
            return Err(SnapshotError::VcpuUnresponsive {
                index: parked,
                what: "pause",
                after: PAUSE_BOUND,
            });
        }
        Ok(paused)
    }

    /// What snapshots and restores need: KVM follows host mapping changes
    /// (KVM_CAP_SYNC_MMU), which reverting memory relies on.
    fn check_snapshot_ready(&self) -> std::result::Result<(), SnapshotError> {
        if !self._vm.check_extension(kvm_ioctls::Cap::SyncMmu) {
            return Err(SnapshotError::NoSyncMmu);
        }
        Ok(())
    }

    /// Locks every device transport, in index order (the event loop takes one at
    /// a time, so this cannot deadlock with it): while held, no device touches
    /// guest memory or raises an interrupt.
    fn lock_devices(&self) -> Vec<MutexGuard<'_, MmioTransport>> {
        self.devices
            .iter()
            .map(|t| crate::devices::bus::lock(t))
            .collect()
    }

    /// Whether a snapshot would be refused because of a device right now: the
    /// first device that is not quiescent (e.g. a live vsock connection, named
    /// with the count), as [`SnapshotError::Device`]. Callers that just closed
    /// their connections poll this until it passes.
    pub fn check_devices_quiescent(&self) -> std::result::Result<(), SnapshotError> {
        save_devices(&self.lock_devices()).map(drop)
    }

    /// Takes a snapshot and lets the VM run on (see [`Paused::snapshot`]).
    pub fn snapshot(&self) -> std::result::Result<VmSnapshot, SnapshotError> {
        let mut paused = self.pause()?;
        paused.snapshot()
    }

    /// Puts the VM back to `snap` in place and lets it run on (see [`Paused::restore`]).
    pub fn restore(&self, snap: &VmSnapshot) -> std::result::Result<(), SnapshotError> {
        self.pause()?.restore(snap)
    }

    /// Runs `job` on every parked vCPU's own thread; returns the results by index.
    fn on_each_vcpu<R: Send + 'static>(
        &self,
        what: &'static str,
        job: impl Fn(u8, &kvm_ioctls::VcpuFd) -> R + Send + Sync + 'static,
    ) -> std::result::Result<Vec<R>, SnapshotError> {
        let job = Arc::new(job);
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..self.vcpu_count as u8 {
            let (job, tx) = (job.clone(), tx.clone());
            self.state
                .give_job(i, Box::new(move |fd| drop(tx.send((i, job(i, fd))))));
        }
        drop(tx);
        let mut out: Vec<Option<R>> = (0..self.vcpu_count).map(|_| None).collect();
        let deadline = Instant::now() + PAUSE_BOUND;
        while out.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, r)) => out[usize::from(i)] = Some(r),
                Err(_) => {
                    let index = out.iter().position(Option::is_none).unwrap_or(0);
                    return Err(SnapshotError::VcpuUnresponsive {
                        index,
                        what,
                        after: PAUSE_BOUND,
                    });
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn ram_bytes(&self) -> u64 {
        vm_memory::GuestMemoryBackend::iter(&*self._mem)
            .map(vm_memory::GuestMemoryRegion::len)
            .sum()
    }

    /// Shared run state (for the Sandbox layer).
    pub(crate) fn state(&self) -> &Arc<RunState> {
        &self.state
    }
}

/// What `launch` starts threads with.
/// What a VM is made of once `start` or `from_snapshot` has built it, before
/// it is assembled and its threads run.
struct Parts {
    kvm: Kvm,
    vm: VmFd,
    mem: GuestMemory,
    state: Arc<RunState>,
    devices: Vec<Arc<Mutex<crate::devices::virtio::MmioTransport>>>,
    host: HostKind,
    marker: String,
    image: Option<Arc<MemorySnapshot>>,
    has_pit: bool,
    is_linux: bool,
    fds: Vec<VcpuFd>,
    pio: Bus,
    mmio: Bus,
}

struct Launch {
    fds: Vec<VcpuFd>,
    pio: Bus,
    mmio: Bus,
    reset: ResetMeaning,
    policy: SeccompPolicy,
    callback: Option<LineCallback>,
}

/// The VM's vCPUs are parked until this drops; snapshots and restores happen here.
pub struct Paused<'a> {
    vm: &'a Vm,
    /// The memory image RAM is mapped from; the lock is the one-pause-at-a-time rule.
    image: std::sync::MutexGuard<'a, Option<Arc<MemorySnapshot>>>,
}

impl Vm {
    /// Guest RAM was just re-mapped in place (vCPUs paused). On PVM hosts KVM is
    /// also made to forget the old pages (see `memory::refresh_slots`).
    fn after_remap(&self) -> std::result::Result<(), SnapshotError> {
        if self.host.is_pvm() {
            memory::refresh_slots(&self._vm, &self._mem)?;
        }
        Ok(())
    }
}

impl Paused<'_> {
    /// Captures the VM. The first snapshot copies RAM into a sealed image and
    /// re-maps RAM copy-on-write from it (docs/snapshots.md); later ones copy
    /// again (RAM then holds the guest's changes on top of the older image).
    /// Device transports stay locked throughout, so device state, memory and
    /// interrupts are of one instant; a device that is not quiescent is refused
    /// before anything is copied.
    pub fn snapshot(&mut self) -> std::result::Result<VmSnapshot, SnapshotError> {
        let vm = self.vm;
        vm.check_snapshot_ready()?;
        let transports = vm.lock_devices();
        let devices = save_devices(&transports)?;
        let memory = Arc::new(MemorySnapshot::capture(&vm._mem)?);
        memory.map_over(&vm._mem)?;
        vm.after_remap()?;
        *self.image = Some(memory.clone());
        let irqchip = IrqchipState::capture(&vm._vm)?;
        let pit = if vm.has_pit {
            Some(PitState::capture(&vm._vm)?)
        } else {
            None
        };
        let clock = ClockState::capture(&vm._vm)?;
        let caps = VcpuCaps::of(&vm._vm);
        let listed = vcpu_state::listed_msrs(&vm._kvm)?;
        let vcpus = vm
            .on_each_vcpu("capture its state", move |i, fd| {
                VcpuState::capture(fd, i, caps, vcpu_state::msr_indices(&listed, fd))
            })?
            .into_iter()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(VmSnapshot {
            version: VM_SNAPSHOT_VERSION,
            memory,
            vcpus,
            irqchip,
            pit,
            clock,
            devices,
        })
    }

    /// Puts the VM back to `snap` in place (same VM, same threads): RAM pages
    /// written since are dropped, vCPU, irqchip, PIT and clock state set; the
    /// clock and TSC keep running forward (docs/snapshots.md). A snapshot of
    /// another shape is refused with the VM untouched; a failure after the VM was
    /// changed stops it ([`SnapshotError::RestoreFailed`]) rather than let a
    /// half-restored guest run. The VM stays paused until the guard drops.
    /// Devices take the snapshot's state (vsock: the current connections are
    /// closed; disks must be the same size) with their transports locked
    /// throughout, as for a snapshot.
    pub fn restore(&mut self, snap: &VmSnapshot) -> std::result::Result<(), SnapshotError> {
        let vm = self.vm;
        vm.check_snapshot_ready()?;
        if snap.version != VM_SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: snap.version,
            });
        }
        if snap.vcpus.len() != vm.vcpu_count {
            return Err(SnapshotError::VcpuCount {
                snapshot: snap.vcpus.len(),
                vm: vm.vcpu_count,
            });
        }
        if snap.pit.is_some() != vm.has_pit {
            return Err(SnapshotError::PitMismatch {
                snapshot: snap.pit.is_some(),
                vm: vm.has_pit,
            });
        }
        if snap.memory.size() != vm.ram_bytes() {
            return Err(image::MemorySnapshotError::SizeMismatch {
                image: snap.memory.size(),
                ram: vm.ram_bytes(),
            }
            .into());
        }
        let mut transports = vm.lock_devices();
        check_devices(&transports, &snap.devices)?;
        self.apply(snap, &mut transports).map_err(|e| {
            vm.state
                .request_stop(StopReason::VcpuError(format!("restore failed: {e}")));
            SnapshotError::RestoreFailed(Box::new(e))
        })
    }

    fn apply(
        &mut self,
        snap: &VmSnapshot,
        transports: &mut [MutexGuard<'_, MmioTransport>],
    ) -> std::result::Result<(), SnapshotError> {
        let vm = self.vm;
        match self.image.as_ref() {
            Some(cur) if Arc::ptr_eq(cur, &snap.memory) => image::revert(&vm._mem)?,
            _ => {
                snap.memory.map_over(&vm._mem)?;
                vm.after_remap()?;
                *self.image = Some(snap.memory.clone());
            }
        }
        snap.clock.apply(&vm._vm)?;
        snap.irqchip.apply(&vm._vm)?;
        if let Some(p) = &snap.pit {
            p.apply(&vm._vm)?;
        }
        let states = Arc::new(snap.vcpus.clone());
        for r in vm.on_each_vcpu("apply its state", move |i, fd| {
            states[usize::from(i)].apply(fd, i)
        })? {
            r?;
        }
        restore_devices(transports, &snap.devices)
    }
}

/// Every device's state, or the first one that is not quiescent.
fn save_devices(
    transports: &[MutexGuard<'_, MmioTransport>],
) -> std::result::Result<Vec<DeviceState>, SnapshotError> {
    transports
        .iter()
        .enumerate()
        .map(|(index, t)| t.save_state().map_err(|e| device_error(index, t, e)))
        .collect()
}

/// Whether `states` fit the devices (count, kinds, disks); changes nothing.
fn check_devices(
    transports: &[MutexGuard<'_, MmioTransport>],
    states: &[DeviceState],
) -> std::result::Result<(), SnapshotError> {
    if states.len() != transports.len() {
        return Err(SnapshotError::DeviceCount {
            snapshot: states.len(),
            vm: transports.len(),
        });
    }
    for (index, (t, s)) in transports.iter().zip(states).enumerate() {
        t.check_state(s).map_err(|e| device_error(index, t, e))?;
    }
    Ok(())
}

/// Applies `states` (already checked with [`check_devices`]).
fn restore_devices(
    transports: &mut [MutexGuard<'_, MmioTransport>],
    states: &[DeviceState],
) -> std::result::Result<(), SnapshotError> {
    for (index, (t, s)) in transports.iter_mut().zip(states).enumerate() {
        t.restore_state(s).map_err(|e| device_error(index, t, e))?;
    }
    Ok(())
}

fn device_error(
    index: usize,
    t: &MmioTransport,
    source: crate::devices::virtio::DeviceStateError,
) -> SnapshotError {
    SnapshotError::Device {
        index,
        device_type: t.device().device_type(),
        source,
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.vm.state.resume();
    }
}

impl Vm {
    /// Stops the VM and closes everything it holds before returning (dropping
    /// it closes the KVM objects in the background instead).
    pub fn close(mut self) {
        self.close_in_background = false;
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        // SAFETY: each field is taken exactly once, here, and `self` is not used
        // afterwards (the other fields hold no reference into these).
        let objects = unsafe {
            KvmObjects {
                _vm: ManuallyDrop::take(&mut self._vm),
                _mem: ManuallyDrop::take(&mut self._mem),
                _kvm: ManuallyDrop::take(&mut self._kvm),
            }
        };
        if self.close_in_background {
            super::reaper::close(objects);
        }
    }
}

#[path = "vm_fork.rs"]
mod fork;
