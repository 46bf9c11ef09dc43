//! The micro guest's stack (issue 21 item 11): a guard page below it turns an
//! overflow into a reported guest panic instead of silent corruption or an
//! unexplained triple fault, and the stack is deep enough for real WASM runs
//! (its high-water mark, printed with `stack=report`, stays well inside it).
//! Needs /dev/kvm.

use kvmsandbox::{Error, Sandbox, Vm, VmConfig, WasmOutcome, WasmRequest};

/// Bytes of the guest's stack (guest/micro/src/stack.rs).
const STACK_SIZE: usize = 128 * 1024;

#[test]
fn deep_recursion_is_a_stack_overflow_panic() {
    match Vm::start(VmConfig::micro().cmdline("test=stack-overflow")) {
        Err(Error::GuestPanic { message, .. }) => {
            assert!(message.contains("stack overflow"), "{message}");
            assert!(message.contains("guard page"), "{message}");
        }
        Err(other) => panic!("expected a GuestPanic naming the stack overflow, got {other}"),
        Ok(vm) => panic!(
            "the guest survived unbounded recursion: {}",
            vm.console_output()
        ),
    }
}

#[test]
fn the_guest_serves_as_before_with_its_own_stack() {
    let vm = Vm::start(VmConfig::micro().vcpus(2).cmdline("test=exit")).unwrap();
    assert_eq!(vm.wait().unwrap(), kvmsandbox::VmExit::Exited(0));
    let out = vm.console_output();
    assert!(out.contains("cpus online: 2"), "{out}");
}

fn deepest_use(console: &str) -> Vec<usize> {
    console
        .lines()
        .filter_map(|l| l.split("stack: deepest use ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn wasm_runs_stay_well_inside_the_stack() {
    let sb = Sandbox::start(VmConfig::micro().cmdline("stack=report")).unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm");
    // A real wasi-libc program, and wasm recursion until wasmi's own limit.
    let echo = std::fs::read(format!("{dir}/wasi_echo.wasm")).unwrap();
    let req = WasmRequest {
        module: echo,
        args: vec!["echo".into()],
        stdin: b"shout this\n".to_vec(),
        ..Default::default()
    };
    let out = sb.run_wasm(&req, None).unwrap();
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deep = wat::parse_file(format!("{dir}/stack_overflow.wat")).unwrap();
    let out = sb
        .run_wasm(
            &WasmRequest {
                module: deep,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert!(
        matches!(out.outcome, WasmOutcome::Trap(_)),
        "{:?}",
        out.outcome
    );
    let console = sb.console_output();
    let uses = deepest_use(&console);
    assert_eq!(uses.len(), 2, "one report per run: {console}");
    let deepest = uses.iter().copied().max().unwrap_or(0);
    eprintln!("stack high-water mark after the runs: {deepest} of {STACK_SIZE} bytes");
    assert!(deepest > 1024, "the report measured nothing: {console}");
    assert!(
        deepest < STACK_SIZE / 2,
        "a WASM run used {deepest} of {STACK_SIZE} bytes of stack"
    );
}
