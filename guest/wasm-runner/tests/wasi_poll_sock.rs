//! poll_oneoff and the sock_* calls through the real linker: a module that
//! imports them gets our implementations, not the ENOSYS stubs.

mod common;

use common::{run_bytes, Inputs};
use kvmsandbox_wasm_runner::Outcome;

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
