//! What no module can make the runner do: run past a check-in that says stop,
//! write without paying fuel, hold tables outside the memory cap, read a clock
//! that does not advance, or turn an exit into a memory error.

use kvmsandbox_wasm_runner::{
    run, Outcome, RunError, RunHost, RunRequest, Stream, CHECK_IN_FUEL, OUTPUT_CHUNK,
};

const MIB: u64 = 1024 * 1024;

/// A host that records output and stops the run after `check_ins` check-ins.
struct Host {
    stdout: Vec<u8>,
    chunks: usize,
    check_ins: u64,
    stop_after: u64,
}

impl Host {
    fn new(stop_after: u64) -> Self {
        Host {
            stdout: Vec::new(),
            chunks: 0,
            check_ins: 0,
            stop_after,
        }
    }
}

impl RunHost for Host {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        assert_eq!(stream, Stream::Stdout);
        self.chunks += 1;
        self.stdout.extend_from_slice(bytes);
    }

    fn keep_going(&mut self) -> bool {
        self.check_ins += 1;
        self.check_ins < self.stop_after
    }
}

fn request<'a>(module: &'a [u8], clock: &'a dyn Fn() -> u64) -> RunRequest<'a> {
    RunRequest {
        module,
        args: &[b"prog"],
        env: &[],
        stdin: b"",
        fuel: None,
        max_memory_bytes: Some(16 * MIB),
        random_seed: [3; 32],
        clock,
        clock_resolution_ns: Some(1_000),
    }
}

fn run_with(req: &RunRequest, host: &mut Host) -> Result<Outcome, RunError> {
    run(req, host)
}

const CLOCK: fn() -> u64 = || 1_000_000;

#[test]
fn unmetered_loop_is_interrupted_by_the_check_in() {
    let module = wat::parse_str(r#"(module (func (export "_start") (loop $l (br $l))))"#).unwrap();
    let req = request(&module, &CLOCK);
    let mut host = Host::new(5);
    assert_eq!(run_with(&req, &mut host), Ok(Outcome::Interrupted));
    assert_eq!(host.check_ins, 5);
}

#[test]
fn metered_run_checks_in_and_still_runs_out_of_fuel() {
    let module = wat::parse_str(r#"(module (func (export "_start") (loop $l (br $l))))"#).unwrap();
    let mut req = request(&module, &CLOCK);
    req.fuel = Some(10 * CHECK_IN_FUEL);
    let mut host = Host::new(u64::MAX);
    assert_eq!(run_with(&req, &mut host), Ok(Outcome::OutOfFuel));
    assert!(
        (9..=11).contains(&host.check_ins),
        "{} check-ins",
        host.check_ins
    );
}

/// A start section cannot be resumed, so it has an allowance of its own.
#[test]
fn looping_start_section_is_bounded_even_unmetered() {
    let module = wat::parse_str(
        r#"(module (func $s (loop $l (br $l))) (start $s) (func (export "_start")))"#,
    )
    .unwrap();
    let req = request(&module, &CLOCK);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::OutOfFuel)
    );
}

/// One fd_write per iteration, of one byte per iovec over 64 iovecs: fuel
/// must bound the output, and the bytes must come in bounded chunks.
const WRITER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "x")
  (func (export "_start") (local $i i32)
    (loop $fill
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 1024))
      (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 64))))
    (loop $forever
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 64) (i32.const 2048)))
      (br $forever))))"#;

#[test]
fn fuel_bounds_output_and_output_is_coalesced() {
    let module = wat::parse_str(WRITER).unwrap();
    let mut req = request(&module, &CLOCK);
    let fuel = 1_000_000;
    req.fuel = Some(fuel);
    let mut host = Host::new(u64::MAX);
    assert_eq!(run_with(&req, &mut host), Ok(Outcome::OutOfFuel));
    // Each call costs at least 64 records * 2 fuel: at most fuel / 128 calls.
    let bytes = host.stdout.len() as u64;
    assert!(
        bytes > 0 && bytes <= fuel / 128 * 64,
        "{bytes} bytes for {fuel} fuel"
    );
    assert!(host.stdout.iter().all(|byte| *byte == b'x'));
    // Coalesced: far fewer chunks than fd_write calls (one per 64 bytes).
    let most_chunks = (bytes as usize).div_ceil(OUTPUT_CHUNK) + 1 + host.check_ins as usize;
    assert!(
        host.chunks <= most_chunks,
        "{} chunks for {bytes} bytes",
        host.chunks
    );
}

#[test]
fn tables_count_into_the_memory_cap() {
    // Two tables of 300 000 elements: 4.8 MB of host memory at 8 bytes each.
    let module = wat::parse_str(
        r#"(module (table 300000 funcref) (table 300000 funcref) (func (export "_start")))"#,
    )
    .unwrap();
    let mut req = request(&module, &CLOCK);
    req.max_memory_bytes = Some(4 * MIB);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::MemoryLimit {
            requested: 600_000 * 8,
            limit: 4 * MIB
        })
    );
    req.max_memory_bytes = Some(8 * MIB);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::Exited(0))
    );
}

#[test]
fn table_elements_are_capped_across_tables() {
    // Each table is within the 1 Mi elements, together they are not.
    let module = wat::parse_str(
        r#"(module (table 600000 funcref) (table 600000 funcref) (func (export "_start")))"#,
    )
    .unwrap();
    let mut req = request(&module, &CLOCK);
    req.max_memory_bytes = None;
    let result = run_with(&req, &mut Host::new(u64::MAX));
    assert!(
        matches!(result, Err(RunError::Instantiate(_))),
        "{result:?}"
    );
}

/// A deadline loop on a clock that never advances.
const DEADLINE: &str = r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $end i64)
    (drop (call $t (i32.const 1) (i64.const 0) (i32.const 0)))
    (local.set $end (i64.add (i64.load (i32.const 0)) (i64.const 1000000)))
    (loop $wait
      (drop (call $t (i32.const 1) (i64.const 0) (i32.const 0)))
      (br_if $wait (i64.lt_u (i64.load (i32.const 0)) (local.get $end))))))"#;

#[test]
fn a_frozen_clock_is_a_typed_end_not_a_spin() {
    let module = wat::parse_str(DEADLINE).unwrap();
    let frozen = || 5u64;
    let mut req = request(&module, &frozen);
    req.clock_resolution_ns = None;
    req.fuel = Some(100_000_000);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::NoClock)
    );
}

#[test]
fn a_working_clock_lets_the_deadline_pass() {
    let module = wat::parse_str(DEADLINE).unwrap();
    let now = std::cell::Cell::new(0u64);
    let ticking = || {
        now.set(now.get() + 1_000);
        now.get()
    };
    let mut req = request(&module, &ticking);
    req.fuel = Some(100_000_000);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::Exited(0))
    );
}

/// `memory.grow` refused by the cap, then `proc_exit(0)`: an exit.
const GROW_THEN_EXIT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $main
    (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
    (call $exit (i32.const 0)))
  (export "_start" (func $main)))"#;

#[test]
fn exit_after_refused_grow_is_an_exit() {
    let module = wat::parse_str(GROW_THEN_EXIT).unwrap();
    let mut req = request(&module, &CLOCK);
    req.max_memory_bytes = Some(MIB);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::Exited(0))
    );
    // The same from a start section (which runs while instantiating).
    let module = wat::parse_str(GROW_THEN_EXIT.replace(
        r#"(export "_start" (func $main))"#,
        r#"(start $main) (func (export "_start"))"#,
    ))
    .unwrap();
    let mut req = request(&module, &CLOCK);
    req.max_memory_bytes = Some(MIB);
    assert_eq!(
        run_with(&req, &mut Host::new(u64::MAX)),
        Ok(Outcome::Exited(0))
    );
}
