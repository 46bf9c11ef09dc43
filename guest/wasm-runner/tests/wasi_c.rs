//! A real WASI program (C + wasi-libc, core/tests/wasm/wasi_echo.c) through
//! the runner: libc startup (args, environ, fdstat, prestat scan), buffered
//! stdio, stdin to EOF, printf of a double, exit code via proc_exit.
//!
//! The .wasm is built by core/tests/wasm/build.sh (Debian: clang lld
//! wasi-libc libclang-rt-14-dev-wasm32); this test runs the script when the
//! .wasm is missing and fails with that hint if it cannot.

mod common;

use common::{run_bytes, workloads_dir, Inputs};
use kvmsandbox_wasm_runner::Outcome;
use std::process::Command;

fn wasi_echo() -> Vec<u8> {
    let dir = workloads_dir();
    let wasm = dir.join("wasi_echo.wasm");
    if !wasm.exists() {
        let status = Command::new("bash").arg(dir.join("build.sh")).status();
        assert!(
            matches!(status, Ok(status) if status.success()),
            "core/tests/wasm/build.sh failed ({status:?}): apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
        );
    }
    std::fs::read(&wasm).unwrap()
}

#[test]
fn wasi_libc_program_runs() {
    let ran = run_bytes(
        &wasi_echo(),
        Inputs {
            args: &[b"wasi_echo", b"one", b"two words"],
            env: &[b"GREETING=bonjour", b"OTHER=x"],
            stdin: b"shout this\n",
            fuel: Some(50_000_000),
            max_memory_bytes: Some(16 << 20),
        },
    );
    assert_eq!(ran.result, Ok(Outcome::Exited(2)));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "hello from wasi-libc\nargv[0]=wasi_echo\nargv[1]=one\nargv[2]=two words\n\
         GREETING=bonjour\nSHOUT THIS\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&ran.stderr),
        "read 11 bytes (2.75 quads)\n"
    );
}

#[test]
fn wasi_libc_program_without_input_or_env() {
    let ran = run_bytes(&wasi_echo(), Inputs::default());
    assert_eq!(ran.result, Ok(Outcome::Exited(0)));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "hello from wasi-libc\nargv[0]=prog\nGREETING=(unset)\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&ran.stderr),
        "read 0 bytes (0.00 quads)\n"
    );
}
