;; Hands WASI functions pointers outside its one 64 KiB page. Every call must
;; return EFAULT (21); the module exits with the number of the first check
;; that got something else, or 0. Nothing may be written to stdout.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func $expect_efault (param $errno i32) (param $check i32)
    (if (i32.ne (local.get $errno) (i32.const 21)) (then (call $proc_exit (local.get $check)))))
  (func (export "_start")
    ;; 1: iovec array itself out of bounds
    (call $expect_efault (call $fd_write (i32.const 1) (i32.const 0xfffffff8) (i32.const 1) (i32.const 8)) (i32.const 1))
    ;; 2: iovec count so large the array wraps around
    (call $expect_efault (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0x20000000) (i32.const 8)) (i32.const 2))
    ;; 3: iovec buffer out of bounds: { buf = 65530, len = 100 }
    (i32.store (i32.const 0) (i32.const 65530))
    (i32.store (i32.const 4) (i32.const 100))
    (call $expect_efault (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const 3))
    ;; 4: buffer pointer near 4 GiB with a length that wraps u32
    (i32.store (i32.const 0) (i32.const 0xffffff00))
    (i32.store (i32.const 4) (i32.const 0x200))
    (call $expect_efault (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const 4))
    ;; 5: valid iovec, nwritten pointer out of bounds
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 4))
    (call $expect_efault (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 65534)) (i32.const 5))
    ;; 6: fd_read into a buffer out of bounds
    (i32.store (i32.const 0) (i32.const 70000))
    (call $expect_efault (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const 6))
    ;; 7-9: argv/env tables out of bounds
    (call $expect_efault (call $args_get (i32.const 65535) (i32.const 0)) (i32.const 7))
    (call $expect_efault (call $args_sizes_get (i32.const 0) (i32.const 0xffffffff)) (i32.const 8))
    (call $expect_efault (call $environ_get (i32.const 0) (i32.const 65535)) (i32.const 9))
    ;; 10-12: random, clock, fdstat out of bounds
    (call $expect_efault (call $random_get (i32.const 65000) (i32.const 1000)) (i32.const 10))
    (call $expect_efault (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 65532)) (i32.const 11))
    (call $expect_efault (call $fd_fdstat_get (i32.const 1) (i32.const 65530)) (i32.const 12))))
