//! Prepared modules: compiled once, each run a fresh instance with its own
//! inputs, whether made for the run or ahead of it.

mod common;

use common::wat;
use kvmsandbox_wasm_runner::{CallInputs, Outcome, Prepared, RunError, Stream};

fn inputs<'a>(
    args: &'a [&'a [u8]],
    env: &'a [&'a [u8]],
    stdin: &'a [u8],
    seed: u8,
    clock: &'a dyn Fn() -> u64,
) -> CallInputs<'a> {
    CallInputs {
        args,
        env,
        stdin,
        fuel: Some(1_000_000),
        max_memory_bytes: Some(16 << 20),
        random_seed: [seed; 32],
        clock,
        clock_resolution_ns: Some(1_000),
    }
}

fn run(p: &mut Prepared, inputs: &CallInputs) -> (Result<Outcome, RunError>, Vec<u8>) {
    let mut stdout = Vec::new();
    let mut sink = |s: Stream, b: &[u8]| {
        if s == Stream::Stdout {
            stdout.extend_from_slice(b)
        }
    };
    let result = p.run(inputs, &mut sink).map(|(outcome, _)| outcome);
    (result, stdout)
}

#[test]
fn each_run_gets_its_own_inputs() {
    let mut p = Prepared::new(&wat("args_env")).unwrap();
    let clock = || 0;
    for i in 0..3u8 {
        let arg = [b'a' + i];
        let env = [b'K', b'=', b'0' + i];
        let (result, out) = run(&mut p, &inputs(&[b"prog", &arg], &[&env], b"", i, &clock));
        assert_eq!(result, Ok(Outcome::Exited(0)));
        let want = format!("prog\n{}\nK={}\n", (b'a' + i) as char, i);
        assert_eq!(String::from_utf8_lossy(&out), want);
    }
    let (result, out) = run(
        &mut Prepared::new(&wat("cat")).unwrap(),
        &inputs(&[], &[], b"xyz", 0, &clock),
    );
    assert_eq!((result, out), (Ok(Outcome::Exited(0)), b"xyz".to_vec()));
}

#[test]
fn state_does_not_carry_over_and_seeds_decide_random_bytes() {
    let mut p = Prepared::new(&wat("template_state")).unwrap();
    let clock = || 0;
    let (r1, a) = run(&mut p, &inputs(&[], &[], b"", 1, &clock));
    let (r2, b) = run(&mut p, &inputs(&[], &[], b"", 2, &clock));
    let (r3, c) = run(&mut p, &inputs(&[], &[], b"", 1, &clock));
    assert_eq!(
        (r1, r2, r3),
        (
            Ok(Outcome::Exited(0)),
            Ok(Outcome::Exited(0)),
            Ok(Outcome::Exited(0))
        )
    );
    // The counter starts from the module's data every time.
    for out in [&a, &b, &c] {
        assert_eq!(&out[..2], b"1 ", "{}", String::from_utf8_lossy(out));
        assert_eq!(out.len(), 19);
    }
    assert_ne!(a, b, "different seeds gave the same random bytes");
    assert_eq!(a, c, "the same seed must give the same bytes");
}

#[test]
fn a_trap_or_out_of_fuel_does_not_spoil_the_next_run() {
    let clock = || 0;
    let mut looping = Prepared::new(&wat("infinite_loop")).unwrap();
    let (r, _) = run(&mut looping, &inputs(&[], &[], b"", 0, &clock));
    assert_eq!(r, Ok(Outcome::OutOfFuel));
    let (r, _) = run(&mut looping, &inputs(&[], &[], b"", 0, &clock));
    assert_eq!(r, Ok(Outcome::OutOfFuel));
    let mut trapping = Prepared::new(&wat("unreachable")).unwrap();
    for _ in 0..2 {
        let (r, _) = run(&mut trapping, &inputs(&[], &[], b"", 0, &clock));
        assert!(matches!(r, Ok(Outcome::Trap(_))), "{r:?}");
    }
}

#[test]
fn what_cannot_run_fails_at_prepare() {
    assert!(matches!(
        Prepared::new(b"\0asm\x01\0\0\0garbage"),
        Err(RunError::InvalidModule(_))
    ));
    let no_start = wat::parse_str("(module (func (export \"main\")))").unwrap();
    assert!(matches!(
        Prepared::new(&no_start),
        Err(RunError::MissingEntry)
    ));
    let bad_start = wat::parse_str("(module (func (export \"_start\") (param i32)))").unwrap();
    assert!(matches!(
        Prepared::new(&bad_start),
        Err(RunError::BadEntry(_))
    ));
    let foreign =
        wat::parse_str("(module (import \"env\" \"f\" (func)) (func (export \"_start\")))")
            .unwrap();
    assert!(matches!(Prepared::new(&foreign), Err(RunError::Link(_))));
}

#[test]
fn an_instance_made_ahead_serves_one_run_with_that_runs_inputs() {
    let clock = || 0;
    let mut p = Prepared::new(&wat("template_state")).unwrap();
    assert!(p.instantiate_ahead(Some(16 << 20)));
    assert!(p.is_instantiated());
    let (r1, a) = run(&mut p, &inputs(&[], &[], b"", 1, &clock));
    assert!(!p.is_instantiated(), "a used instance must not be kept");
    let (r2, b) = run(&mut p, &inputs(&[], &[], b"", 1, &clock));
    assert_eq!((r1, r2), (Ok(Outcome::Exited(0)), Ok(Outcome::Exited(0))));
    // The same counter and the same random bytes from the same seed: the
    // instance made ahead starts exactly as a fresh one.
    assert_eq!(&a[..2], b"1 ", "{}", String::from_utf8_lossy(&a));
    assert_eq!(a, b);

    let mut p = Prepared::new(&wat("args_env")).unwrap();
    assert!(p.instantiate_ahead(None));
    let (result, out) = run(&mut p, &inputs(&[b"prog", b"x"], &[b"K=v"], b"", 0, &clock));
    assert_eq!(result, Ok(Outcome::Exited(0)));
    assert_eq!(String::from_utf8_lossy(&out), "prog\nx\nK=v\n");

    let mut looping = Prepared::new(&wat("infinite_loop")).unwrap();
    assert!(looping.instantiate_ahead(None));
    let (r, _) = run(&mut looping, &inputs(&[], &[], b"", 0, &clock));
    assert_eq!(r, Ok(Outcome::OutOfFuel));
}

#[test]
fn a_start_function_or_a_smaller_cap_means_a_fresh_instance() {
    let clock = || 0;
    let with_start =
        wat::parse_str("(module (func $init) (start $init) (func (export \"_start\")))").unwrap();
    let mut p = Prepared::new(&with_start).unwrap();
    assert!(
        !p.instantiate_ahead(None),
        "a start function ran before its run"
    );
    let (r, _) = run(&mut p, &inputs(&[], &[], b"", 0, &clock));
    assert_eq!(r, Ok(Outcome::Exited(0)));

    // Made ahead without a cap, run under one it already exceeds: the run
    // instantiates afresh and reports the limit, as it would have anyway.
    let two_pages = wat::parse_str("(module (memory 2) (func (export \"_start\")))").unwrap();
    let mut p = Prepared::new(&two_pages).unwrap();
    assert!(p.instantiate_ahead(None));
    let mut small = inputs(&[], &[], b"", 0, &clock);
    small.max_memory_bytes = Some(64 << 10);
    let (r, _) = run(&mut p, &small);
    assert!(matches!(r, Ok(Outcome::MemoryLimit { .. })), "{r:?}");
    // And a cap the module cannot meet at all is not an instance made ahead.
    assert!(!p.instantiate_ahead(Some(64 << 10)));
}
