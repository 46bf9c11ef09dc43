;; Template workload: bumps a counter kept in linear memory and prints it, then
;; 8 bytes from random_get in hex: "<counter> <16 hex digits>\n". A fresh
;; instance always prints counter 1 (state left by an earlier run would show);
;; the random bytes come from the run's seed.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "0 ")
  (data (i32.const 82) "\n")
  (data (i32.const 128) "0123456789abcdef")
  (func (export "_start")
    (local $i i32)
    (local $b i32)
    (i32.store8 (i32.const 64) (i32.add (i32.load8_u (i32.const 64)) (i32.const 1)))
    (drop (call $random_get (i32.const 200) (i32.const 8)))
    (loop $hex
      (local.set $b (i32.load8_u (i32.add (i32.const 200) (local.get $i))))
      (i32.store8 (i32.add (i32.const 66) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 128) (i32.shr_u (local.get $b) (i32.const 4)))))
      (i32.store8 (i32.add (i32.const 67) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 128) (i32.and (local.get $b) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $hex (i32.lt_u (local.get $i) (i32.const 8))))
    ;; iovec at 0: { buf = 64, len = 19 } (counter, space, hex, newline); nwritten at 8
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 19))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
