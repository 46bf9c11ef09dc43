//! The micro guest boots under our VMM on this host: marker, memory, vCPUs,
//! panics, timeouts, crashes and every bad input. Needs /dev/kvm.

mod common;

use kvmsandbox::config::ConfigError;
use kvmsandbox::vmm::kvm::KvmError;
use kvmsandbox::{Error, Vm, VmConfig, VmExit};
use std::time::Duration;

#[test]
fn boots_to_ready_marker_and_exits_cleanly() {
    let vm = Vm::start(VmConfig::micro().cmdline("test=exit")).unwrap();
    assert_eq!(vm.wait().unwrap(), VmExit::Exited(0));
    let out = vm.console_output();
    assert!(out.contains("kvmsandbox micro guest"), "{out}");
    assert!(out.contains("KVMSANDBOX-READY"), "{out}");
    let t = vm.timings();
    let (c, m, l, e, s, r) = (
        t.vm_created.unwrap(),
        t.memory_mapped.unwrap(),
        t.image_loaded.unwrap(),
        t.first_vcpu_entry.unwrap(),
        t.first_serial_byte.unwrap(),
        t.ready.unwrap(),
    );
    assert!(c <= m && m <= l && l <= e && e <= s && s <= r, "{t:?}");
}

#[test]
fn guest_sees_configured_memory() {
    for mib in [16, 200] {
        let vm = Vm::start(VmConfig::micro().memory_mib(mib).cmdline("test=exit")).unwrap();
        vm.wait().unwrap();
        assert!(
            vm.console_output().contains(&format!("memory: {mib} MiB")),
            "{}",
            vm.console_output()
        );
    }
}

#[test]
fn every_vcpu_reports_in() {
    for n in [2u32, 4] {
        let vm = Vm::start(VmConfig::micro().vcpus(n).cmdline("test=exit")).unwrap();
        vm.wait().unwrap();
        let out = vm.console_output();
        for i in 1..n {
            assert!(out.contains(&format!("cpu {i} online")), "{out}");
        }
        assert!(out.contains(&format!("cpus online: {n}")), "{out}");
    }
}

#[test]
fn stays_up_until_killed_and_kill_is_idempotent() {
    let vm = Vm::start(VmConfig::micro().vcpus(2).cmdline("test=stay")).unwrap();
    assert!(vm.is_running());
    assert_eq!(
        vm.wait_timeout(Some(Duration::from_millis(200))).unwrap(),
        None
    );
    vm.kill();
    vm.kill();
    assert!(!vm.is_running());
    assert_eq!(vm.wait().unwrap(), VmExit::Killed);
}

#[test]
fn guest_panic_after_ready_is_a_typed_error() {
    let vm = Vm::start(VmConfig::micro().cmdline("test=panic")).unwrap();
    match vm.wait() {
        Err(Error::GuestPanic { message, .. }) => {
            assert!(message.contains("panic requested"), "{message}")
        }
        other => panic!("expected GuestPanic, got {other:?}"),
    }
}

#[test]
fn guest_panic_before_ready_fails_start() {
    match Vm::start(VmConfig::micro().cmdline("test=early-panic")) {
        Err(Error::GuestPanic { message, .. }) => {
            assert!(message.contains("early panic"), "{message}")
        }
        other => panic!("expected GuestPanic, got {:?}", other.err()),
    }
}

#[test]
fn guest_that_never_gets_ready_times_out_with_last_lines() {
    for mode in ["hang", "spin"] {
        let cfg = VmConfig::micro()
            .cmdline(&format!("test={mode}"))
            .start_timeout(Duration::from_millis(700));
        match Vm::start(cfg) {
            Err(Error::StartTimeout {
                last_lines, after, ..
            }) => {
                assert_eq!(after, Duration::from_millis(700));
                assert!(
                    last_lines.iter().any(|l| l.contains("cpus online")),
                    "{last_lines:?}"
                );
            }
            other => panic!("{mode}: expected StartTimeout, got {:?}", other.err()),
        }
    }
}

#[test]
fn triple_fault_is_reported_with_rip() {
    // ud2 with no IDT: #UD -> #DF -> triple fault.
    let elf = common::tiny_elf(&[0x0f, 0x0b]);
    let path = common::temp_file("ud2.elf", &elf);
    match Vm::start(
        VmConfig::micro()
            .micro_image(&path)
            .start_timeout(Duration::from_secs(5)),
    ) {
        Err(Error::GuestCrashed { reason, .. }) => assert!(reason.contains("rip 0x"), "{reason}"),
        other => panic!("expected GuestCrashed, got {:?}", other.err()),
    }
}

#[test]
fn unemulated_instruction_is_reported_not_hung() {
    // pxor xmm0, xmm0: PVM's emulator cannot run it (KVM internal error); on
    // hardware KVM it faults (#UD with CR4.OSFXSR clear) into a triple fault.
    let elf = common::tiny_elf(&[0x66, 0x0f, 0xef, 0xc0, 0xf4]);
    let path = common::temp_file("pxor.elf", &elf);
    match Vm::start(
        VmConfig::micro()
            .micro_image(&path)
            .start_timeout(Duration::from_secs(5)),
    ) {
        Err(Error::GuestCrashed { reason, .. }) => assert!(reason.contains("rip 0x"), "{reason}"),
        other => panic!("expected GuestCrashed, got {:?}", other.err()),
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let e = Vm::start(VmConfig::micro().micro_image("/nonexistent/guest.elf"))
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::FileNotFound { .. })),
        "{e}"
    );
    let text = common::temp_file("not-elf.txt", b"hello, I am not an ELF file at all\n");
    let e = Vm::start(VmConfig::micro().micro_image(&text))
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::NotElf { .. })),
        "{e}"
    );
    let e = Vm::start(VmConfig::micro().memory_mib(0)).err().unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::Memory { mib: 0, .. })),
        "{e}"
    );
    let e = Vm::start(VmConfig::micro().memory_mib(1 << 30))
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::Memory { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("1073741824 MiB"), "{e}");
    let e = Vm::start(VmConfig::micro().vcpus(0)).err().unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::Vcpus { count: 0, .. })),
        "{e}"
    );
    let e = Vm::start(VmConfig::micro().vcpus(64)).err().unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::Vcpus { count: 64, .. })),
        "{e}"
    );
    let e = Vm::start(VmConfig::micro().kvm_device("/nonexistent/kvm"))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Kvm(KvmError::NotFound(_))), "{e}");
    assert!(e.to_string().contains("/nonexistent/kvm"));
    let e = Vm::start(VmConfig::micro().kvm_device("/dev/null"))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Kvm(KvmError::ApiVersion(_))), "{e}");
    // A truncated ELF passes the header check but cannot be loaded.
    let elf = common::tiny_elf(&[0xf4]);
    let trunc = common::temp_file("trunc.elf", &elf[..80]);
    let e = Vm::start(VmConfig::micro().micro_image(&trunc))
        .err()
        .unwrap();
    assert!(matches!(e, Error::MicroBoot(_)), "{e}");
}

#[test]
fn console_callback_sees_lines() {
    let (tx, rx) = std::sync::mpsc::channel();
    let vm = Vm::start(
        VmConfig::micro()
            .cmdline("test=exit")
            .on_console_line(move |l| {
                let _ = tx.send(l.to_string());
            }),
    )
    .unwrap();
    vm.wait().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(lines.iter().any(|l| l == "KVMSANDBOX-READY"), "{lines:?}");
}

#[test]
fn many_vms_in_one_process() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                Vm::start(VmConfig::micro().cmdline("test=exit"))
                    .unwrap()
                    .wait()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), VmExit::Exited(0));
    }
}

/// Guest for every vCPU: print "R\n", then exit to the VMM forever (an `out` to
/// an unused port, then jump back): busy, and constantly crossing the window
/// between the vCPU loop's stop check and KVM_RUN.
fn busy_guest() -> std::path::PathBuf {
    let code = [
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'R', 0xee, // mov al, 'R'; out dx, al
        0xb0, b'\n', 0xee, // mov al, '\n'; out dx, al
        0xe6, 0x80, // loop: out 0x80, al
        0xeb, 0xfc, // jmp loop
    ];
    common::temp_file("busy.elf", &common::tiny_elf(&code))
}

#[test]
fn kill_stops_busy_vcpus_promptly_every_time() {
    let path = busy_guest();
    let mut worst = Duration::ZERO;
    for i in 0..24u64 {
        let cfg = VmConfig::micro()
            .micro_image(&path)
            .vcpus(4)
            .ready_marker("R")
            .start_timeout(Duration::from_secs(20));
        let vm = Vm::start(cfg).unwrap();
        // Vary the moment of the kill relative to the vCPUs' exits.
        std::thread::sleep(Duration::from_micros(i * 700));
        let t = std::time::Instant::now();
        vm.kill();
        let took = t.elapsed();
        worst = worst.max(took);
        assert!(
            took < Duration::from_secs(2),
            "cycle {i}: kill took {took:?}"
        );
        assert_eq!(vm.wait().unwrap(), VmExit::Killed);
    }
    eprintln!("24 kills of a 4-vCPU busy guest: slowest {worst:?}");
}

#[test]
fn console_callback_may_call_console_output() {
    use std::sync::{mpsc, Arc, Weak};
    // In a thread of its own with a bound: a deadlock fails the test instead of hanging it.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (vm_tx, vm_rx) = mpsc::channel::<Weak<Vm>>();
        let (seen_tx, seen_rx) = mpsc::channel::<(String, bool)>();
        let mut vm_rx = Some(vm_rx);
        let mut vm: Option<Weak<Vm>> = None;
        let cfg = VmConfig::micro()
            .cmdline("test=exit")
            .on_console_line(move |line| {
                // The first line waits for the VM handle (blocking here is allowed).
                if let Some(rx) = vm_rx.take() {
                    vm = rx.recv().ok();
                }
                if let Some(v) = vm.as_ref().and_then(Weak::upgrade) {
                    let _ = seen_tx.send((line.to_string(), v.console_output().contains(line)));
                }
            });
        let vm = Arc::new(Vm::start(cfg).unwrap());
        vm_tx.send(Arc::downgrade(&vm)).unwrap();
        assert_eq!(vm.wait().unwrap(), VmExit::Exited(0));
        drop(vm);
        let _ = done_tx.send(seen_rx.try_iter().collect::<Vec<_>>());
    });
    let seen = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("console callback calling console_output() deadlocked the VM");
    assert!(
        seen.iter().any(|(l, _)| l == "KVMSANDBOX-READY"),
        "{seen:?}"
    );
    assert!(seen.iter().all(|(_, found)| *found), "{seen:?}");
}
