//! Host functions end to end in the micro guest: a module calls functions of
//! this process with every value type and with buffers; hostile modules
//! (missing imports, wrong signatures, buffers past memory or over the limit,
//! calls in a loop until the fuel ends); a failing callback, a re-entrant one
//! and a hanging one. Needs /dev/kvm.

use kvmsandbox::agent::{HostFunctions, HostReturn, HostType, Val, WasmErrorKind};
use kvmsandbox::{Error, Sandbox, WasmOutcome, WasmRequest};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use HostType::{Bytes, F32, F64, I32, I64};

/// The host functions the modules below import, all under module "host".
fn host_functions(
    calls: Arc<AtomicU32>,
    threads: Arc<Mutex<Vec<std::thread::ThreadId>>>,
) -> HostFunctions {
    let mut h = HostFunctions::new();
    let count = move || {
        calls.fetch_add(1, Ordering::SeqCst);
        threads.lock().unwrap().push(std::thread::current().id());
    };
    let c = count.clone();
    h.add("host", "add", &[I32, I32], &[I32], move |call| {
        c();
        match call.args {
            [Val::I32(a), Val::I32(b)] => Ok(HostReturn::values([Val::I32(a + b)])),
            other => Err(format!("bad args {other:?}")),
        }
    })
    .unwrap();
    let c = count.clone();
    h.add("host", "mul64", &[I64, I64], &[I64], move |call| {
        c();
        match call.args {
            [Val::I64(a), Val::I64(b)] => Ok(HostReturn::values([Val::I64(a * b)])),
            other => Err(format!("bad args {other:?}")),
        }
    })
    .unwrap();
    let c = count.clone();
    h.add("host", "half32", &[F32], &[F32], move |call| {
        c();
        match call.args {
            [Val::F32(a)] => Ok(HostReturn::values([Val::F32(a / 2.0)])),
            other => Err(format!("bad args {other:?}")),
        }
    })
    .unwrap();
    let c = count.clone();
    h.add("host", "half64", &[F64], &[F64], move |call| {
        c();
        match call.args {
            [Val::F64(a)] => Ok(HostReturn::values([Val::F64(a / 2.0)])),
            other => Err(format!("bad args {other:?}")),
        }
    })
    .unwrap();
    let c = count.clone();
    h.add("host", "upper", &[Bytes], &[Bytes], move |call| {
        c();
        Ok(HostReturn::bytes(call.buffers[0].to_ascii_uppercase()))
    })
    .unwrap();
    let c = count;
    h.add("host", "fail", &[], &[], move |_| {
        c();
        Err("no such record".to_string())
    })
    .unwrap();
    h
}

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "host" "add" (func $add (param i32 i32) (result i32)))
  (import "host" "mul64" (func $mul64 (param i64 i64) (result i64)))
  (import "host" "half32" (func $half32 (param f32) (result f32)))
  (import "host" "half64" (func $half64 (param f64) (result f64)))
  (import "host" "upper" (func $upper (param i32 i32 i32 i32) (result i32)))
  (import "host" "fail" (func $fail))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm\n")
"#;

fn module(body: &str) -> Vec<u8> {
    let text = format!("(module {IMPORTS} (func (export \"_start\") {body}))");
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A module that only calls `host.fail` (the tests declaring nothing else).
fn calls_fail() -> Vec<u8> {
    wat::parse_str(
        r#"(module (import "host" "fail" (func $fail)) (memory (export "memory") 1)
           (func (export "_start") (call $fail)))"#,
    )
    .unwrap()
}

fn request(module: Vec<u8>, hosts: &HostFunctions) -> WasmRequest {
    WasmRequest {
        module,
        host_functions: hosts.clone(),
        ..Default::default()
    }
}

fn assert_trap(outcome: &WasmOutcome, needle: &str) {
    match outcome {
        WasmOutcome::Trap(message) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected a trap containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn every_type_crosses_and_hostile_modules_are_refused() {
    let sb = Sandbox::micro().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let threads = Arc::new(Mutex::new(Vec::new()));
    let hosts = host_functions(calls.clone(), threads.clone());

    // Every type, and a Bytes result printed by the module: "HELLO FROM WASM\n".
    let body = r#"
      (if (i32.ne (call $add (i32.const 40) (i32.const 2)) (i32.const 42))
        (then (call $exit (i32.const 1))))
      (if (i64.ne (call $mul64 (i64.const 3000000000) (i64.const 3)) (i64.const 9000000000))
        (then (call $exit (i32.const 2))))
      (if (f32.ne (call $half32 (f32.const 5)) (f32.const 2.5))
        (then (call $exit (i32.const 3))))
      (if (f64.ne (call $half64 (f64.const -7)) (f64.const -3.5))
        (then (call $exit (i32.const 4))))
      (if (i32.ne (call $upper (i32.const 16) (i32.const 16) (i32.const 200) (i32.const 64)) (i32.const 16))
        (then (call $exit (i32.const 5))))
      (i32.store (i32.const 0) (i32.const 200))
      (i32.store (i32.const 4) (i32.const 16))
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    "#;
    let out = sb.run_wasm(&request(module(body), &hosts), None).unwrap();
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"HELLO FROM WASM\n");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // Every callback ran on this (the calling) thread.
    let me = std::thread::current().id();
    assert!(threads.lock().unwrap().iter().all(|t| *t == me));

    // A failing callback traps the module with its message.
    let out = sb
        .run_wasm(&request(module("(call $fail)"), &hosts), None)
        .unwrap();
    assert_trap(&out.outcome, "host::fail");
    assert_trap(&out.outcome, "no such record");

    // An import nobody provides, and one with the wrong signature.
    let missing = wat::parse_str(
        r#"(module (import "host" "missing" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    let out = sb.run_wasm(&request(missing, &hosts), None).unwrap();
    match &out.outcome {
        WasmOutcome::Error {
            kind: WasmErrorKind::MissingImport,
            message,
        } => {
            assert!(message.contains("host::missing"), "{message}")
        }
        other => panic!("expected MissingImport, got {other:?}"),
    }
    let wrong = wat::parse_str(
        r#"(module (import "host" "add" (func (param f64) (result i32))) (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    let out = sb.run_wasm(&request(wrong, &hosts), None).unwrap();
    match &out.outcome {
        WasmOutcome::Error {
            kind: WasmErrorKind::MissingImport,
            message,
        } => {
            assert!(
                message.contains("host::add") && message.contains("F64"),
                "{message}"
            )
        }
        other => panic!("expected MissingImport, got {other:?}"),
    }
    // Without declarations the same module cannot link either.
    let plain = WasmRequest {
        module: module("(call $fail)"),
        ..Default::default()
    };
    let out = sb.run_wasm(&plain, None).unwrap();
    assert!(matches!(
        out.outcome,
        WasmOutcome::Error {
            kind: WasmErrorKind::MissingImport,
            ..
        }
    ));

    // Buffers past the memory, or over the limit (memory is one 64 KiB page),
    // trap before any callback runs.
    let before = calls.load(Ordering::SeqCst);
    for body in [
        "(drop (call $upper (i32.const 65000) (i32.const 1000) (i32.const 0) (i32.const 8)))",
        "(drop (call $upper (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 8)))",
        "(drop (call $upper (i32.const 0) (i32.const 8) (i32.const 65530) (i32.const 100)))",
    ] {
        let out = sb.run_wasm(&request(module(body), &hosts), None).unwrap();
        assert_trap(&out.outcome, "past the end of memory");
    }
    let big = wat::parse_str(
        r#"(module (import "host" "upper" (func $upper (param i32 i32 i32 i32) (result i32)))
           (memory (export "memory") 8)
           (func (export "_start") (drop (call $upper (i32.const 0) (i32.const 300000) (i32.const 0) (i32.const 8)))))"#,
    )
    .unwrap();
    let out = sb.run_wasm(&request(big, &hosts), None).unwrap();
    assert_trap(&out.outcome, "exceed the limit");
    assert_eq!(calls.load(Ordering::SeqCst), before);

    // Calls in a loop end with the fuel (each call costs 10 000).
    let looping = module("(loop $l (drop (call $add (i32.const 1) (i32.const 1))) (br $l))");
    let mut r = request(looping, &hosts);
    r.fuel = Some(200_000);
    let out = sb.run_wasm(&r, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(out.outcome, WasmOutcome::OutOfFuel);
    let looped = calls.load(Ordering::SeqCst) - before;
    assert!((1..=20).contains(&looped), "{looped} calls");

    // The sandbox is still fine.
    let out = sb
        .run_wasm(
            &request(
                module("(drop (call $add (i32.const 1) (i32.const 2)))"),
                &hosts,
            ),
            None,
        )
        .unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(0));
}

#[test]
fn a_callback_calling_its_own_sandbox_gets_a_typed_error() {
    let sb = Arc::new(Sandbox::micro().unwrap());
    let seen = Arc::new(Mutex::new(None));
    let mut hosts = HostFunctions::new();
    let (sb2, seen2) = (sb.clone(), seen.clone());
    hosts
        .add("host", "fail", &[], &[], move |_| {
            let r = sb2.ping();
            let message = format!("{:?}", r.as_ref().err());
            *seen2.lock().unwrap() = Some(r.map(|_| ()));
            Err(message)
        })
        .unwrap();
    let start = Instant::now();
    let out = sb
        .run_wasm(
            &request(calls_fail(), &hosts),
            Some(Duration::from_secs(30)),
        )
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert_trap(&out.outcome, "Reentrant");
    let seen = seen.lock().unwrap().take();
    assert!(
        matches!(seen, Some(Err(Error::Reentrant { op: "ping" }))),
        "{seen:?}"
    );
    // Outside a callback the sandbox answers as usual.
    sb.ping().unwrap();
}

#[test]
fn a_hanging_callback_is_bounded_by_the_run_timeout() {
    let sb = Sandbox::micro().unwrap();
    let mut hosts = HostFunctions::new();
    hosts
        .add("host", "fail", &[], &[], |call| {
            // A callback that looks at its deadline stops at it.
            let deadline = call.deadline.expect("a run has a deadline");
            while Instant::now() < deadline + Duration::from_millis(200) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(HostReturn::default())
        })
        .unwrap();
    let start = Instant::now();
    let r = sb.run_wasm(&request(calls_fail(), &hosts), Some(Duration::from_secs(2)));
    let took = start.elapsed();
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_wasi_libc_program_asks_the_host_for_data() {
    // Built from tests/wasm/host_lookup.c by tests/wasm/build.sh.
    let path = format!("{}/tests/wasm/host_lookup.wasm", env!("CARGO_MANIFEST_DIR"));
    let module = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut hosts = HostFunctions::new();
    hosts
        .add("host", "lookup", &[Bytes], &[Bytes], |call| {
            match call.buffers[0].as_slice() {
                b"answer" => Ok(HostReturn::bytes(b"42".to_vec())),
                b"city" => Ok(HostReturn::bytes(b"Lisbon".to_vec())),
                other => Err(format!("no record {:?}", String::from_utf8_lossy(other))),
            }
        })
        .unwrap()
        .add("host", "scale", &[F64], &[F64], |call| match call.args {
            [Val::F64(x)] => Ok(HostReturn::values([Val::F64(x * 10.0)])),
            other => Err(format!("bad args {other:?}")),
        })
        .unwrap();
    let sb = Sandbox::micro().unwrap();
    let mut r = request(module, &hosts);
    r.args = vec!["host_lookup".into(), "city".into()];
    let out = sb.run_wasm(&r, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "city = Lisbon\nscaled: 15.00\n"
    );
    r.args = vec!["host_lookup".into(), "nothing".into()];
    let out = sb.run_wasm(&r, Some(Duration::from_secs(120))).unwrap();
    assert_trap(&out.outcome, "no record \"nothing\"");
}
