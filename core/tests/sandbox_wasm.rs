//! WASI programs in the micro guest, end to end: output, exit codes, args/env,
//! stdin, big output, traps (and the next module still runs), fuel, the memory
//! cap, invalid modules, a real wasi-libc program, two sandboxes at once, and the
//! host's wall-clock timeout for a guest that stops answering. Needs /dev/kvm.

use kvmsandbox::agent::WasmErrorKind;
use kvmsandbox::{Error, Sandbox, WasmOutcome, WasmRequest};
use std::time::Duration;

fn wat(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/wasm/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn req(module: Vec<u8>) -> WasmRequest {
    WasmRequest {
        module,
        ..Default::default()
    }
}

#[test]
fn hello_world_exit_codes_args_env_and_stdin() {
    let sb = Sandbox::micro().unwrap();
    let out = sb.run_wasm(&req(wat("hello")), None).unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(0));
    assert_eq!(out.stdout, b"hello, world\n");
    assert!(out.stderr.is_empty());

    let out = sb.run_wasm(&req(wat("exit3")), None).unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(3));

    let mut r = req(wat("args_env"));
    r.args = vec!["prog".into(), "first".into(), "second arg".into()];
    r.env = vec![
        ("KEY".into(), "value".into()),
        ("EMPTY".into(), String::new()),
    ];
    let out = sb.run_wasm(&r, None).unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in ["prog", "first", "second arg", "KEY=value", "EMPTY="] {
        assert!(
            text.lines().any(|l| l == want),
            "{want:?} missing from {text:?}"
        );
    }

    let mut r = req(wat("cat"));
    r.stdin = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let out = sb.run_wasm(&r, None).unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(0));
    assert_eq!(out.stdout, r.stdin);
}

#[test]
fn one_mib_of_stdout_is_intact_and_streamed() {
    let sb = Sandbox::micro().unwrap();
    let mut chunks = 0;
    let mut got = Vec::new();
    let outcome = sb
        .run_wasm_streaming(&req(wat("big_output_fill")), None, |_, d| {
            chunks += 1;
            got.extend_from_slice(d);
        })
        .unwrap();
    assert_eq!(outcome, WasmOutcome::Exit(0));
    assert_eq!(got.len(), 1 << 20);
    for k in 0..16usize {
        let chunk = &got[k * 65536..(k + 1) * 65536];
        assert_eq!(u32::from_le_bytes(chunk[..4].try_into().unwrap()), k as u32);
        assert_eq!(
            u32::from_le_bytes(chunk[65532..].try_into().unwrap()),
            k as u32
        );
        let fill = (k * 17 + 1) as u8;
        assert!(
            chunk[4..65532].iter().all(|&b| b == fill),
            "chunk {k} corrupted"
        );
    }
    assert!(chunks >= 16, "output arrived in {chunks} pieces");
}

#[test]
fn traps_are_typed_and_the_guest_runs_the_next_module() {
    let sb = Sandbox::micro().unwrap();
    for name in ["unreachable", "oob_load", "div_zero"] {
        let out = sb.run_wasm(&req(wat(name)), None).unwrap();
        assert!(
            matches!(out.outcome, WasmOutcome::Trap(_)),
            "{name}: {:?}",
            out.outcome
        );
    }
    let out = sb.run_wasm(&req(wat("hello")), None).unwrap();
    assert_eq!(out.stdout, b"hello, world\n");
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let sb = Sandbox::micro().unwrap();
    let mut r = req(wat("infinite_loop"));
    r.fuel = Some(200_000);
    let out = sb.run_wasm(&r, None).unwrap();
    assert_eq!(out.outcome, WasmOutcome::OutOfFuel);
    sb.ping().unwrap();
}

#[test]
fn memory_cap_is_enforced_cleanly() {
    let sb = Sandbox::micro().unwrap();
    let mut r = req(wat("grow_past_cap"));
    r.max_memory_bytes = Some(1 << 20);
    let out = sb.run_wasm(&r, None).unwrap();
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut r = req(wat("big_initial_memory"));
    r.max_memory_bytes = Some(1 << 20);
    let out = sb.run_wasm(&r, None).unwrap();
    assert!(
        matches!(
            out.outcome,
            WasmOutcome::Error {
                kind: WasmErrorKind::MemoryLimit,
                ..
            }
        ),
        "{:?}",
        out.outcome
    );
    sb.ping().unwrap();
}

#[test]
fn invalid_modules_are_rejected_with_typed_errors() {
    let sb = Sandbox::micro().unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let out = sb.run_wasm(&req(garbage), None).unwrap();
    assert!(
        matches!(
            out.outcome,
            WasmOutcome::Error {
                kind: WasmErrorKind::InvalidModule,
                ..
            }
        ),
        "{:?}",
        out.outcome
    );
    let out = sb.run_wasm(&req(Vec::new()), None).unwrap();
    assert!(
        matches!(
            out.outcome,
            WasmOutcome::Error {
                kind: WasmErrorKind::InvalidModule,
                ..
            }
        ),
        "{:?}",
        out.outcome
    );
    let out = sb.run_wasm(&req(wat("unimplemented")), None).unwrap();
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "unimplemented WASI calls return ENOSYS, the module completes"
    );
}

#[test]
fn a_real_wasi_libc_program_runs() {
    let module = std::fs::read(format!(
        "{}/tests/wasm/wasi_echo.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let sb = Sandbox::micro().unwrap();
    let mut r = req(module);
    r.args = vec!["wasi_echo".into(), "one".into(), "two".into()];
    r.env = vec![("GREETING".into(), "hi there".into())];
    r.stdin = b"shout this\n".to_vec();
    let out = sb.run_wasm(&r, None).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.outcome, WasmOutcome::Exit(2), "{text}");
    assert!(text.contains("hello from wasi-libc"), "{text}");
    assert!(text.contains("argv[2]=two"), "{text}");
    assert!(text.contains("GREETING=hi there"), "{text}");
    assert!(text.contains("SHOUT THIS"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read 11 bytes (2.75 quads)"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn two_sandboxes_run_modules_at_once() {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let sb = Sandbox::micro().unwrap();
                    for _ in 0..3 {
                        let out = sb.run_wasm(&req(wat("hello")), None).unwrap();
                        assert_eq!(out.stdout, b"hello, world\n");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn wall_clock_timeout_stops_a_guest_that_does_not_answer() {
    let sb = Sandbox::micro().unwrap();
    // No fuel limit: only the host's deadline ends this.
    let t0 = std::time::Instant::now();
    let e = sb
        .run_wasm(&req(wat("infinite_loop")), Some(Duration::from_secs(2)))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { op: "run_wasm", .. }), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "a 2 s wall timeout took {:?}",
        t0.elapsed()
    );
    assert!(!sb.vm().unwrap().is_running());
}

#[test]
fn a_busy_guest_still_answers_on_other_connections() {
    let sb = Sandbox::micro().unwrap();
    let sb2 = &sb;
    std::thread::scope(|s| {
        let busy = s
            .spawn(move || sb2.run_wasm(&req(wat("infinite_loop")), Some(Duration::from_secs(20))));
        std::thread::sleep(Duration::from_millis(500));
        // A run checks in every few tens of thousands of instructions and
        // serves the other connections meanwhile (issue 21 item 14).
        let t0 = std::time::Instant::now();
        sb2.ping().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "ping took {:?}",
            t0.elapsed()
        );
        sb2.kill();
        let _ = busy.join();
    });
}

/// Runs `run_wasm` of a module that never ends (no fuel, no wall timeout) in
/// another thread, calls `stop` once it is blocked, and returns the result and
/// how long it took to arrive after the stop.
fn blocked_run_wasm_then(
    stop: impl FnOnce(&Sandbox),
) -> (kvmsandbox::Result<kvmsandbox::WasmOutput>, Duration) {
    let sb = std::sync::Arc::new(Sandbox::micro().unwrap());
    let sb2 = sb.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sb2.run_wasm(&req(wat("infinite_loop")), None));
    });
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = std::time::Instant::now();
    stop(&sb);
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("run_wasm still blocked 20 s after the stop");
    (r, t0.elapsed())
}

#[test]
fn kill_wakes_a_run_wasm_blocked_in_another_thread() {
    let (r, took) = blocked_run_wasm_then(|sb| sb.kill());
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Stopped { op: "run_wasm" }), "{e}");
    assert!(
        took < Duration::from_secs(2),
        "run_wasm returned {took:?} after kill()"
    );
}

#[test]
fn vm_stopping_underneath_wakes_a_blocked_run_wasm() {
    // The VM stops without the Sandbox being told (as when the guest crashes).
    let (r, took) = blocked_run_wasm_then(|sb| sb.vm().unwrap().kill());
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Stopped { op: "run_wasm" }), "{e}");
    assert!(
        took < Duration::from_secs(2),
        "run_wasm returned {took:?} after the VM stopped"
    );
}
