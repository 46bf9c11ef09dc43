//! poll_oneoff and the sock_* calls through the real linker: a module that
//! imports them gets our implementations, not the ENOSYS stubs.

mod common;

use common::{run_bytes, Inputs};
use kvmsandbox_wasm_runner::{run_with_stats, Outcome, RunRequest, Stream};

/// Calls each sock_* function and poll_oneoff, then writes the nine i32
/// results to stdout: four sock errnos on stdio, sock_shutdown and sock_send
/// on fd 9, poll's errno, its event count, and the event's userdata + type.
const MODULE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 1024) (call $shutdown (i32.const 1) (i32.const 0)))
    (i32.store (i32.const 1028) (call $accept (i32.const 0) (i32.const 0) (i32.const 100)))
    (i32.store (i32.const 1032) (call $send (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100)))
    (i32.store (i32.const 1036) (call $recv (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 104)))
    (i32.store (i32.const 1040) (call $shutdown (i32.const 9) (i32.const 0)))
    (i32.store (i32.const 1044) (call $send (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100)))
    ;; one subscription: stdout writable, userdata 0x77
    (i64.store (i32.const 0) (i64.const 0x77))
    (i32.store8 (i32.const 8) (i32.const 2))
    (i32.store (i32.const 16) (i32.const 1))
    (i32.store (i32.const 1048) (call $poll (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512)))
    (i32.store (i32.const 1052) (i32.load (i32.const 512)))
    (i32.store (i32.const 1056) (i32.add (i32.load (i32.const 256)) (i32.shl (i32.load8_u (i32.const 266)) (i32.const 16))))
    (i32.store (i32.const 600) (i32.const 1024))
    (i32.store (i32.const 604) (i32.const 36))
    (drop (call $write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)))))
"#;

#[test]
fn sock_errnos_and_stdout_readiness_through_the_linker() {
    let module = wat::parse_str(MODULE).expect("the test module is valid WAT");
    let ran = run_bytes(&module, Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    let results: Vec<i32> = ran
        .stdout
        .chunks_exact(4)
        .map(|word| i32::from_le_bytes([word[0], word[1], word[2], word[3]]))
        .collect();
    const NOTSOCK: i32 = 57;
    const BADF: i32 = 8;
    // fd_write readiness is event type 2.
    assert_eq!(
        results,
        [
            NOTSOCK,
            NOTSOCK,
            NOTSOCK,
            NOTSOCK,
            BADF,
            BADF,
            0,
            1,
            0x77 + (2 << 16)
        ]
    );
}

/// Sleeps `$ns` nanoseconds in one poll_oneoff on a relative monotonic timer
/// and exits with the number of events (1) or 9 if the call failed.
fn sleeper(ns: u64) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const {ns}))
    (if (i32.ne (call $poll (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512)) (i32.const 0))
      (then (call $exit (i32.const 9))))
    (call $exit (i32.load (i32.const 512)))))"#
    );
    wat::parse_str(text).expect("the test module is valid WAT")
}

/// Runs `module` with `fuel` on a clock that advances 1 µs per reading.
fn run_with_ticking_clock(module: &[u8], fuel: u64) -> (Outcome, Option<u64>) {
    let ticks = std::cell::Cell::new(0u64);
    let clock = || {
        ticks.set(ticks.get() + 1_000);
        ticks.get()
    };
    let req = RunRequest {
        module,
        args: &[b"prog"],
        env: &[],
        stdin: b"",
        fuel: Some(fuel),
        max_memory_bytes: None,
        random_seed: [0; 32],
        clock: &clock,
        clock_resolution_ns: Some(1_000),
    };
    let mut sink = |_: Stream, _: &[u8]| {};
    let (outcome, stats) = run_with_stats(&req, &mut sink).expect("the module runs");
    (outcome, stats.fuel_consumed)
}

/// A sleep through the real linker waits for its timer and is charged to
/// the run's fuel; one the fuel cannot pay for ends the run at once.
#[test]
fn poll_oneoff_sleep_is_paid_in_fuel() {
    let (outcome, used) = run_with_ticking_clock(&sleeper(5_000_000), 1_000_000);
    assert_eq!(outcome, Outcome::Exited(1));
    let used = used.expect("a metered run reports its fuel");
    assert!(
        (5_000..20_000).contains(&used),
        "{used} fuel for a 5 ms sleep"
    );
    let (outcome, _) = run_with_ticking_clock(&sleeper(3_600_000_000_000), 1_000_000);
    assert_eq!(outcome, Outcome::OutOfFuel);
}
