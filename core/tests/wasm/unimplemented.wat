;; Imports proc_raise, which the runner does not implement: the call must
;; return ENOSYS (52) and the module must carry on. Prints "ENOSYS\n" and exits
;; 0, or exits 50 if another value came back. Also imports a WASI name that
;; does not exist, with its own signature, to check stubs match each import's
;; own type.
(module
  (import "wasi_snapshot_preview1" "proc_raise" (func $proc_raise (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_no_such_call"
    (func $no_such (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ENOSYS\n")
  (func (export "_start")
    (if (i32.ne (call $proc_raise (i32.const 6)) (i32.const 52))
      (then (call $proc_exit (i32.const 50))))
    (if (i32.ne (call $no_such (i32.const 3) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0)) (i32.const 52))
      (then (call $proc_exit (i32.const 51))))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 7))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
