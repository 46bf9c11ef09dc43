//! End-to-end runs of the WAT workloads in core/tests/wasm/ through `run`.

mod common;

use common::{assert_trap, run_bytes, run_wat, Inputs};
use kvmsandbox_wasm_runner::{Outcome, RunError};

const MIB: u64 = 1024 * 1024;

#[test]
fn hello_world_to_stdout() {
    let ran = run_wat("hello", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(ran.stdout, b"hello, world\n");
    assert!(ran.stderr.is_empty());
}

#[test]
fn proc_exit_code_is_reported() {
    let ran = run_wat("exit3", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(3)));
}

#[test]
fn start_returning_is_exit_zero() {
    let ran = run_wat("unreachable", Inputs::default());
    assert!(matches!(ran.result, Ok(Outcome::Trap(_))));
    let ran = run_wat("big_initial_memory", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
}

#[test]
fn args_and_env_are_echoed() {
    let ran = run_wat(
        "args_env",
        Inputs {
            args: &[b"prog", b"first arg", b""],
            env: &[b"HOME=/", b"LANG=C.UTF-8"],
            ..Inputs::default()
        },
    );
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(ran.stdout, b"prog\nfirst arg\n\nHOME=/\nLANG=C.UTF-8\n");
}

#[test]
fn stdin_is_echoed_back() {
    let stdin: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let ran = run_wat(
        "cat",
        Inputs {
            stdin: &stdin,
            ..Inputs::default()
        },
    );
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(ran.stdout, stdin);
}

#[test]
fn empty_stdin_reads_eof() {
    let ran = run_wat("cat", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert!(ran.stdout.is_empty());
}

/// FNV-1a, enough to notice a lost, repeated or reordered chunk.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn one_mib_of_stdout_is_intact_and_streamed() {
    let ran = run_wat("big_output", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    let mut expected = Vec::with_capacity(MIB as usize);
    for k in 0u32..16 {
        for i in 0u32..65536 {
            expected.push((i.wrapping_mul(31) + k * 7 + (i >> 9)) as u8);
        }
    }
    assert_eq!(ran.stdout.len(), expected.len());
    assert_eq!(fnv1a(&ran.stdout), fnv1a(&expected));
    // Streamed as written: one callback per fd_write, not one at the end.
    assert_eq!(ran.writes, 16);
}

#[test]
fn unreachable_traps() {
    assert_trap(&run_wat("unreachable", Inputs::default()), "unreachable");
}

#[test]
fn out_of_bounds_load_traps() {
    assert_trap(
        &run_wat("oob_load", Inputs::default()),
        "out of bounds memory access",
    );
}

#[test]
fn divide_by_zero_traps() {
    assert_trap(&run_wat("div_zero", Inputs::default()), "divide by zero");
}

#[test]
fn stack_overflow_traps() {
    assert_trap(
        &run_wat("stack_overflow", Inputs::default()),
        "call stack exhausted",
    );
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let ran = run_wat(
        "infinite_loop",
        Inputs {
            fuel: Some(1_000_000),
            ..Inputs::default()
        },
    );
    assert_eq!(ran.result, Ok(Outcome::OutOfFuel));
    assert_eq!(ran.stats.fuel_consumed, Some(1_000_000));
}

#[test]
fn enough_fuel_lets_a_loop_finish() {
    let ran = run_wat(
        "count_loop",
        Inputs {
            fuel: Some(1_000_000_000),
            ..Inputs::default()
        },
    );
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    let used = ran.stats.fuel_consumed.unwrap();
    assert!(
        (10_000_000..100_000_000).contains(&used),
        "fuel used: {used}"
    );
}

#[test]
fn memory_grow_past_cap_returns_minus_one_and_module_continues() {
    let ran = run_wat(
        "grow_past_cap",
        Inputs {
            max_memory_bytes: Some(MIB),
            ..Inputs::default()
        },
    );
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(ran.stdout, b"grow refused\n");
}

#[test]
fn grow_past_cap_is_allowed_without_cap() {
    let ran = run_wat("grow_past_cap", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(40)));
}

#[test]
fn trap_after_refused_grow_is_memory_limit() {
    let ran = run_wat(
        "grow_then_trap",
        Inputs {
            max_memory_bytes: Some(MIB),
            ..Inputs::default()
        },
    );
    assert_eq!(
        ran.result,
        Ok(Outcome::MemoryLimit {
            requested: 101 * 65536,
            limit: MIB
        })
    );
}

#[test]
fn initial_memory_over_cap_is_memory_limit() {
    let ran = run_wat(
        "big_initial_memory",
        Inputs {
            max_memory_bytes: Some(MIB),
            ..Inputs::default()
        },
    );
    assert_eq!(
        ran.result,
        Ok(Outcome::MemoryLimit {
            requested: 2 * MIB,
            limit: MIB
        })
    );
}

#[test]
fn random_bytes_are_an_invalid_module() {
    let mut state = 0x1234_5678_9abc_def0u64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let ran = run_bytes(&junk, Inputs::default());
    assert!(
        matches!(ran.result, Err(RunError::InvalidModule(_))),
        "{:?}",
        ran.result
    );
    // A valid header followed by junk is invalid too.
    let mut truncated = b"\0asm\x01\0\0\0".to_vec();
    truncated.extend_from_slice(&junk[..100]);
    let ran = run_bytes(&truncated, Inputs::default());
    assert!(
        matches!(ran.result, Err(RunError::InvalidModule(_))),
        "{:?}",
        ran.result
    );
}

#[test]
fn unimplemented_wasi_import_returns_enosys() {
    let ran = run_wat("unimplemented", Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(ran.stdout, b"ENOSYS\n");
}

#[test]
fn import_from_other_module_is_a_link_error_naming_it() {
    let module = wat::parse_str(
        r#"(module (import "env" "host_secret" (func (param i32)))
                   (func (export "_start")))"#,
    )
    .unwrap();
    match run_bytes(&module, Inputs::default()).result {
        Err(RunError::Link(message)) => assert!(message.contains("env::host_secret"), "{message}"),
        other => panic!("expected a link error, got {other:?}"),
    }
}

#[test]
fn wasi_import_with_wrong_signature_is_a_link_error() {
    let module = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                   (func (export "_start")))"#,
    )
    .unwrap();
    let result = run_bytes(&module, Inputs::default()).result;
    assert!(matches!(result, Err(RunError::Link(_))), "{result:?}");
}

#[test]
fn missing_start_is_reported() {
    let module = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    assert_eq!(
        run_bytes(&module, Inputs::default()).result,
        Err(RunError::MissingEntry)
    );
}

#[test]
fn bad_pointers_get_efault_and_nothing_is_written() {
    let ran = run_wat(
        "bad_pointers",
        Inputs {
            env: &[b"A=B"],
            stdin: b"some input",
            ..Inputs::default()
        },
    );
    assert_eq!(
        ran.result,
        Ok(Outcome::Exited(0)),
        "exit code names the failed check"
    );
    assert!(ran.stdout.is_empty());
}

#[test]
fn float_arithmetic_is_exact() {
    let ran = run_wat("floats", Inputs::default());
    assert_eq!(
        ran.result,
        Ok(Outcome::Exited(0)),
        "exit code names the failed check"
    );
    assert_eq!(ran.stdout, b"floats ok\n");
}

#[test]
fn runner_is_reusable_after_traps_and_limits() {
    for _ in 0..3 {
        assert_trap(&run_wat("oob_load", Inputs::default()), "out of bounds");
        let ran = run_wat(
            "infinite_loop",
            Inputs {
                fuel: Some(10_000),
                ..Inputs::default()
            },
        );
        assert_eq!(ran.result, Ok(Outcome::OutOfFuel));
        let ran = run_wat("hello", Inputs::default());
        assert_eq!(ran.result, Ok(Outcome::Exited(0)));
        assert_eq!(ran.stdout, b"hello, world\n");
    }
}

#[test]
fn start_section_trap_is_an_outcome() {
    let module =
        wat::parse_str(r#"(module (func $s unreachable) (start $s) (func (export "_start")))"#)
            .unwrap();
    assert_trap(&run_bytes(&module, Inputs::default()), "unreachable");
}

/// Functions are validated when first called, not when the module loads
/// (what keeps loading a 2 MB Rust program affordable in the emulated
/// guest): an invalid function that never runs does not stop the module,
/// and calling one ends the run before any of its code executes.
#[test]
fn functions_are_validated_when_first_called() {
    let module = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (func $broken (result i32) (i64.const 1))
             (func (export "_start") (call $exit (i32.const 7)))
             (func (export "call_broken") (drop (call $broken))))"#,
    )
    .unwrap();
    assert_eq!(
        run_bytes(&module, Inputs::default()).result,
        Ok(Outcome::Exited(7))
    );
    let calls_it = wat::parse_str(
        r#"(module
             (func $broken (result i32) (i64.const 1))
             (func (export "_start") (drop (call $broken))))"#,
    )
    .unwrap();
    let ran = run_bytes(&calls_it, Inputs::default());
    assert!(
        !matches!(ran.result, Ok(Outcome::Exited(_))),
        "{:?}",
        ran.result
    );
}
