//! Prepared WASM templates in the micro guest: prepare once, run many times
//! with different inputs; no run sees another's state or random bytes; a trap
//! or running out of fuel does not spoil the next run; bad modules fail at
//! prepare with a typed error; a replaced template is refused, not run.
//! Needs /dev/kvm.

use kvmsandbox::agent::{AgentError, WasmErrorKind};
use kvmsandbox::{Error, ErrorKind, Sandbox, WasmCall, WasmOutcome};

fn wat(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/wasm/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn wasi_echo() -> Vec<u8> {
    let path = format!("{}/tests/wasm/wasi_echo.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn one_template_many_runs_each_with_its_own_inputs() {
    let sb = Sandbox::micro().unwrap();
    let t = sb.prepare_wasm(&wasi_echo(), None).unwrap();
    for i in 0..5usize {
        let mut args = vec!["echo.wasm".to_string()];
        args.extend((0..i).map(|k| format!("arg{k}-of-{i}")));
        let call = WasmCall {
            args: args.clone(),
            env: vec![("GREETING".into(), format!("hi #{i}"))],
            stdin: format!("stdin of run {i}\n").into_bytes(),
            ..WasmCall::default()
        };
        let out = t.run(&sb, &call, None).unwrap();
        assert_eq!(out.outcome, WasmOutcome::Exit(i as i32), "run {i}");
        let mut want = String::from("hello from wasi-libc\n");
        for (k, a) in args.iter().enumerate() {
            want += &format!("argv[{k}]={a}\n");
        }
        want += &format!("GREETING=hi #{i}\nSTDIN OF RUN {i}\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "run {i}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.starts_with(&format!("read {} bytes", call.stdin.len())),
            "{stderr}"
        );
    }
}

#[test]
fn runs_share_neither_state_nor_random_bytes() {
    let sb = Sandbox::micro().unwrap();
    let t = sb.prepare_wasm(&wat("template_state"), None).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = t.run(&sb, &WasmCall::default(), None).unwrap();
        assert_eq!(out.outcome, WasmOutcome::Exit(0));
        let line = String::from_utf8(out.stdout).unwrap();
        // The counter the module bumps in its memory starts afresh every run.
        assert!(line.starts_with("1 "), "{line:?}");
        assert!(
            !seen.contains(&line),
            "random bytes repeated: {line:?} in {seen:?}"
        );
        seen.push(line);
    }
}

#[test]
fn a_trap_and_running_out_of_fuel_do_not_spoil_the_next_run() {
    let sb = Sandbox::micro().unwrap();
    let looping = sb.prepare_wasm(&wat("infinite_loop"), None).unwrap();
    let fuel = WasmCall {
        fuel: Some(200_000),
        ..WasmCall::default()
    };
    for _ in 0..2 {
        let out = looping.run(&sb, &fuel, None).unwrap();
        assert_eq!(out.outcome, WasmOutcome::OutOfFuel);
    }
    let trapping = sb.prepare_wasm(&wat("unreachable"), None).unwrap();
    for _ in 0..2 {
        let out = trapping.run(&sb, &WasmCall::default(), None).unwrap();
        assert!(
            matches!(out.outcome, WasmOutcome::Trap(_)),
            "{:?}",
            out.outcome
        );
    }
    let hello = sb.prepare_wasm(&wat("hello"), None).unwrap();
    let out = hello.run(&sb, &WasmCall::default(), None).unwrap();
    assert_eq!(
        (out.outcome, out.stdout),
        (WasmOutcome::Exit(0), b"hello, world\n".to_vec())
    );
}

#[test]
fn bad_modules_fail_at_prepare_and_replaced_templates_are_refused() {
    let sb = Sandbox::micro().unwrap();
    let err = sb
        .prepare_wasm(b"\0asm\x01\0\0\0garbage", None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        matches!(
            err,
            Error::Agent(AgentError::Wasm {
                kind: WasmErrorKind::InvalidModule,
                ..
            })
        ),
        "{err:?}"
    );
    let no_start = wat::parse_str("(module (func (export \"main\")))").unwrap();
    let err = sb.prepare_wasm(&no_start, None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent(AgentError::Wasm {
                kind: WasmErrorKind::NoEntryPoint,
                ..
            })
        ),
        "{err:?}"
    );

    // Each template restores its own snapshot, so an earlier one still runs
    // after a later prepare replaced it in the guest.
    let first = sb.prepare_wasm(&wat("hello"), None).unwrap();
    let second = sb.prepare_wasm(&wat("exit3"), None).unwrap();
    assert_ne!(first.id(), second.id());
    let out = first.run(&sb, &WasmCall::default(), None).unwrap();
    assert_eq!(
        (out.outcome, out.stdout),
        (WasmOutcome::Exit(0), b"hello, world\n".to_vec())
    );
    let out = second.run(&sb, &WasmCall::default(), None).unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(3));
}

#[test]
fn the_guest_refuses_a_template_it_does_not_hold() {
    // Straight to the agent, without the host's restore: the guest's own check.
    let sb = Sandbox::micro().unwrap();
    let mut agent = kvmsandbox::agent::AgentClient::connect_hybrid(
        sb.vsock_path().unwrap(),
        kvmsandbox::sandbox::DEFAULT_AGENT_PORT,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    let call = WasmCall::default();
    let none = agent.run_prepared(1, &call, |_, _| {}).unwrap();
    assert!(
        matches!(
            none,
            WasmOutcome::Error {
                kind: WasmErrorKind::NotPrepared,
                ..
            }
        ),
        "{none:?}"
    );
    let first = agent.prepare_wasm(&wat("hello"), None, None).unwrap();
    let second = agent.prepare_wasm(&wat("exit3"), None, None).unwrap();
    let stale = agent.run_prepared(first, &call, |_, _| {}).unwrap();
    assert!(
        matches!(
            stale,
            WasmOutcome::Error {
                kind: WasmErrorKind::NotPrepared,
                ..
            }
        ),
        "{stale:?}"
    );
    // Run twice with no restore in between: each run is a fresh instance.
    for _ in 0..2 {
        assert_eq!(
            agent.run_prepared(second, &call, |_, _| {}).unwrap(),
            WasmOutcome::Exit(3)
        );
    }
    let state = agent
        .prepare_wasm(&wat("template_state"), None, None)
        .unwrap();
    for _ in 0..2 {
        let mut out = Vec::new();
        let r = agent
            .run_prepared(state, &call, |_, d| out.extend_from_slice(d))
            .unwrap();
        assert_eq!(r, WasmOutcome::Exit(0));
        assert!(out.starts_with(b"1 "), "{}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn a_timed_out_run_restores_the_template_and_the_next_run_succeeds() {
    use std::time::{Duration, Instant};
    let sb = Sandbox::micro().unwrap();
    let looping = sb.prepare_wasm(&wat("infinite_loop"), None).unwrap();
    let t0 = Instant::now();
    let err = looping
        .run(&sb, &WasmCall::default(), Some(Duration::from_millis(300)))
        .unwrap_err();
    assert!(matches!(err, Error::CallTimeout { .. }), "{err:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    // The sandbox survived: a new template prepares and runs in it.
    let hello = sb.prepare_wasm(&wat("hello"), None).unwrap();
    let out = hello.run(&sb, &WasmCall::default(), None).unwrap();
    assert_eq!(
        (out.outcome, out.stdout),
        (WasmOutcome::Exit(0), b"hello, world\n".to_vec())
    );
    // And the looping template still runs from its own snapshot.
    let fuel = WasmCall {
        fuel: Some(100_000),
        ..WasmCall::default()
    };
    assert_eq!(
        looping.run(&sb, &fuel, None).unwrap().outcome,
        WasmOutcome::OutOfFuel
    );
}

#[test]
fn a_fork_of_a_template_runs_it() {
    let sb = Sandbox::micro().unwrap();
    let t = sb.prepare_wasm(&wat("template_state"), None).unwrap();
    let fork = Sandbox::from_template(&t).unwrap();
    let a = t.run(&fork, &WasmCall::default(), None).unwrap();
    let b = t.run(&sb, &WasmCall::default(), None).unwrap();
    assert_eq!(
        (&a.outcome, &b.outcome),
        (&WasmOutcome::Exit(0), &WasmOutcome::Exit(0))
    );
    assert!(a.stdout.starts_with(b"1 ") && b.stdout.starts_with(b"1 "));
    assert_ne!(a.stdout, b.stdout, "a fork repeated the random bytes");
}
