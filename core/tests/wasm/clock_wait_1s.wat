;; Reads the realtime clock, waits (polling it) until 1 s have passed, then
;; writes the first reading to stdout as 8 little-endian bytes: a deadline loop
;; that only ends if the clock advances.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $t0 i64)
    (if (call $clock (i32.const 0) (i64.const 1) (i32.const 0)) (then unreachable))
    (local.set $t0 (i64.load (i32.const 0)))
    (loop $wait
      (if (call $clock (i32.const 0) (i64.const 1) (i32.const 8)) (then unreachable))
      (br_if $wait (i64.lt_u (i64.sub (i64.load (i32.const 8)) (local.get $t0)) (i64.const 1000000000))))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 8))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))
