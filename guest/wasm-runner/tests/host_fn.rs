//! Host functions seen from a module: every value type crosses both ways,
//! buffers are copied with bounds checks and a size limit, the declared set
//! is what links, a failing host traps the module, and calls cost fuel.

use kvmsandbox_wasm_runner::host_fn::{HOST_FUNCTION_FUEL, MAX_HOST_BYTES};
use kvmsandbox_wasm_runner::{
    run, HostCallArgs, HostImport, HostReply, HostType, HostValue, Outcome, RunError, RunHost,
    RunRequest, Stream,
};

use HostType::{Bytes, F32, F64, I32, I64};

fn decl(name: &str, params: &[HostType], results: &[HostType]) -> HostImport {
    HostImport {
        module: "host".into(),
        name: name.into(),
        params: params.to_vec(),
        results: results.to_vec(),
    }
}

/// The declarations every test offers.
fn decls() -> Vec<HostImport> {
    vec![
        decl("add", &[I32, I32], &[I32]),
        decl("mul64", &[I64, I64], &[I64]),
        decl("half32", &[F32], &[F32]),
        decl("half64", &[F64], &[F64]),
        decl("upper", &[Bytes], &[Bytes]),
        decl("fail", &[], &[]),
        decl("len_and_sum", &[Bytes, I32], &[I64, I32]),
    ]
}

/// A call as the host saw it: function, scalars, buffers, output room.
type Call = (u32, Vec<HostValue>, Vec<Vec<u8>>, u32);

/// A host answering the declarations above and recording the calls.
struct Host {
    decls: Vec<HostImport>,
    calls: Vec<Call>,
    stdout: Vec<u8>,
    /// How much stdout had arrived when the last call reached the host.
    stdout_at_last_call: usize,
}

impl RunHost for Host {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Stdout {
            self.stdout.extend_from_slice(bytes);
        }
    }

    fn host_functions(&self) -> &[HostImport] {
        &self.decls
    }

    fn host_call(&mut self, call: &HostCallArgs<'_>) -> Result<HostReply, String> {
        self.stdout_at_last_call = self.stdout.len();
        let buffers = call.buffers.iter().map(|b| b.to_vec()).collect();
        self.calls
            .push((call.func, call.args.to_vec(), buffers, call.out_cap));
        let values = match (self.decls[call.func as usize].name.as_str(), call.args) {
            ("add", [HostValue::I32(a), HostValue::I32(b)]) => vec![HostValue::I32(a + b)],
            ("mul64", [HostValue::I64(a), HostValue::I64(b)]) => vec![HostValue::I64(a * b)],
            ("half32", [HostValue::F32(a)]) => {
                vec![HostValue::F32((f32::from_bits(*a) / 2.0).to_bits())]
            }
            ("half64", [HostValue::F64(a)]) => {
                vec![HostValue::F64((f64::from_bits(*a) / 2.0).to_bits())]
            }
            ("upper", []) => {
                return Ok(HostReply {
                    values: vec![],
                    bytes: call.buffers[0].to_ascii_uppercase(),
                })
            }
            ("fail", []) => return Err("the host says no".into()),
            ("len_and_sum", [HostValue::I32(k)]) => vec![
                HostValue::I64(call.buffers[0].len() as i64),
                HostValue::I32(call.buffers[0].iter().map(|b| i32::from(*b)).sum::<i32>() + k),
            ],
            _ => return Err("unexpected call".into()),
        };
        Ok(HostReply {
            values,
            bytes: vec![],
        })
    }
}

struct Ran {
    result: Result<Outcome, RunError>,
    host: Host,
}

fn run_wat(wat: &str, fuel: Option<u64>) -> Ran {
    let module = wat::parse_str(wat).expect("valid wat");
    let clock = || 1_700_000_000_000_000_000u64;
    let req = RunRequest {
        module: &module,
        args: &[b"prog"],
        env: &[],
        stdin: b"",
        fuel,
        max_memory_bytes: Some(16 << 20),
        random_seed: [7; 32],
        clock: &clock,
        clock_resolution_ns: Some(1_000),
    };
    let mut host = Host {
        decls: decls(),
        calls: Vec::new(),
        stdout: Vec::new(),
        stdout_at_last_call: 0,
    };
    let result = run(&req, &mut host);
    Ran { result, host }
}

const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "host" "add" (func $add (param i32 i32) (result i32)))
  (import "host" "mul64" (func $mul64 (param i64 i64) (result i64)))
  (import "host" "half32" (func $half32 (param f32) (result f32)))
  (import "host" "half64" (func $half64 (param f64) (result f64)))
  (import "host" "upper" (func $upper (param i32 i32 i32 i32) (result i32)))
  (import "host" "fail" (func $fail))
  (import "host" "len_and_sum" (func $len_and_sum (param i32 i32 i32) (result i64 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
"#;

/// A module that exits with `code` unless `check` (an i32 expression) is 1.
fn checks(body: &str) -> String {
    format!("(module {PRELUDE} (func (export \"_start\") (local $l i64) (local $s i32) {body} (call $exit (i32.const 0))))")
}

#[test]
fn every_type_crosses_both_ways() {
    let body = r#"
      (if (i32.ne (call $add (i32.const 40) (i32.const 2)) (i32.const 42))
        (then (call $exit (i32.const 1))))
      (if (i64.ne (call $mul64 (i64.const 3000000000) (i64.const 3)) (i64.const 9000000000))
        (then (call $exit (i32.const 2))))
      (if (f32.ne (call $half32 (f32.const 5)) (f32.const 2.5))
        (then (call $exit (i32.const 3))))
      (if (f64.ne (call $half64 (f64.const -7)) (f64.const -3.5))
        (then (call $exit (i32.const 4))))
      ;; "hello" at 16 -> "HELLO" at 100 (room 64): returns length 5.
      (if (i32.ne (call $upper (i32.const 16) (i32.const 5) (i32.const 100) (i32.const 64)) (i32.const 5))
        (then (call $exit (i32.const 5))))
      (if (i32.ne (i32.load8_u (i32.const 100)) (i32.const 72))
        (then (call $exit (i32.const 6))))
      (if (i32.ne (i32.load8_u (i32.const 104)) (i32.const 79))
        (then (call $exit (i32.const 7))))
      ;; multi-value: (len, sum + k) of "hello" with k = 1000.
      (call $len_and_sum (i32.const 16) (i32.const 5) (i32.const 1000))
      (local.set $s)
      (local.set $l)
      (if (i32.ne (local.get $s) (i32.const 1532)) (then (call $exit (i32.const 8))))
      (if (i64.ne (local.get $l) (i64.const 5)) (then (call $exit (i32.const 9))))
    "#;
    let ran = run_wat(&checks(body), None);
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(ran.host.calls.len(), 6);
    assert_eq!(ran.host.calls[4].2, vec![b"hello".to_vec()]);
    assert_eq!(ran.host.calls[4].3, 64);
}

#[test]
fn an_import_nobody_provides_fails_linking_by_name() {
    let wat = r#"(module
      (import "host" "missing" (func (param i32)))
      (memory (export "memory") 1)
      (func (export "_start")))"#;
    match run_wat(wat, None).result {
        Err(RunError::Link(message)) => assert!(message.contains("host::missing"), "{message}"),
        other => panic!("expected a link error, got {other:?}"),
    }
}

#[test]
fn a_wrong_signature_fails_linking_by_name() {
    // `add` is (i32, i32) -> i32; imported here as (i64) -> i32.
    let wat = r#"(module
      (import "host" "add" (func (param i64) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")))"#;
    match run_wat(wat, None).result {
        Err(RunError::Link(message)) => {
            assert!(message.contains("host::add"), "{message}");
            assert!(message.contains("I64"), "{message}");
        }
        other => panic!("expected a link error, got {other:?}"),
    }
}

fn assert_trap(ran: &Ran, needle: &str) {
    match &ran.result {
        Ok(Outcome::Trap(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected a trap containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn a_buffer_past_memory_traps_before_the_host_is_called() {
    // One page is 65536 bytes: 65530 + 16 reaches past it.
    let ran = run_wat(
        &checks(
            "(drop (call $upper (i32.const 65530) (i32.const 16) (i32.const 0) (i32.const 8)))",
        ),
        None,
    );
    assert_trap(&ran, "past the end of memory");
    assert!(ran.host.calls.is_empty());
    // A negative length is a huge u32: also refused.
    let ran = run_wat(
        &checks("(drop (call $upper (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 8)))"),
        None,
    );
    assert_trap(&ran, "past the end of memory");
    // So is an output buffer past the end.
    let ran = run_wat(
        &checks(
            "(drop (call $upper (i32.const 16) (i32.const 5) (i32.const 65535) (i32.const 2)))",
        ),
        None,
    );
    assert_trap(&ran, "output buffer");
    assert!(ran.host.calls.is_empty());
}

#[test]
fn a_buffer_over_the_limit_traps() {
    let wat = format!(
        r#"(module {PRELUDE_BIG} (func (export "_start")
          (drop (call $upper (i32.const 0) (i32.const {len}) (i32.const 0) (i32.const 8)))))"#,
        len = MAX_HOST_BYTES + 1
    );
    let ran = run_wat(&wat, None);
    assert_trap(&ran, "exceed the limit");
    assert!(ran.host.calls.is_empty());
}

const PRELUDE_BIG: &str = r#"
  (import "host" "upper" (func $upper (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
"#;

#[test]
fn a_short_output_buffer_gets_a_prefix_and_the_full_length() {
    let body = r#"
      (i32.store8 (i32.const 102) (i32.const 33))
      (if (i32.ne (call $upper (i32.const 16) (i32.const 5) (i32.const 100) (i32.const 2)) (i32.const 5))
        (then (call $exit (i32.const 1))))
      (if (i32.ne (i32.load16_u (i32.const 100)) (i32.const 0x4548)) ;; "HE"
        (then (call $exit (i32.const 2))))
      (if (i32.ne (i32.load8_u (i32.const 102)) (i32.const 33)) ;; untouched
        (then (call $exit (i32.const 3))))
    "#;
    assert_eq!(run_wat(&checks(body), None).result, Ok(Outcome::Exited(0)));
}

#[test]
fn a_failing_host_function_traps_with_its_message() {
    let ran = run_wat(&checks("(call $fail)"), None);
    assert_trap(&ran, "host::fail");
    assert_trap(&ran, "the host says no");
}

#[test]
fn calls_in_a_loop_end_with_the_fuel() {
    let body = "(loop $again (drop (call $add (i32.const 1) (i32.const 2))) (br $again))";
    let fuel = 50 * HOST_FUNCTION_FUEL;
    let ran = run_wat(&checks(body), Some(fuel));
    assert_eq!(ran.result, Ok(Outcome::OutOfFuel));
    let calls = ran.host.calls.len() as u64;
    assert!((1..=50).contains(&calls), "{calls} calls");
}

#[test]
fn output_before_a_call_reaches_the_host_first() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "host" "fail" (func $fail))
      (memory (export "memory") 1)
      (data (i32.const 0) "\08\00\00\00\02\00\00\00hi")
      (func (export "_start")
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
        (call $fail)))"#;
    let ran = run_wat(wat, None);
    assert_trap(&ran, "the host says no");
    assert_eq!(ran.host.stdout, b"hi");
    assert_eq!(ran.host.stdout_at_last_call, 2);
}
