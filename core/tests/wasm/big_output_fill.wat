;; Writes 1 MiB to stdout in 16 chunks of 64 KiB with little WASM work per byte
;; (memory.fill runs natively in the interpreter): chunk k is filled with byte
;; (k * 17 + 1) and carries k as a little-endian u32 at offsets 0 and 65532, so a
;; lost, repeated or reordered chunk is visible.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (local $k i32)
    (loop $chunks
      (memory.fill (i32.const 65536) (i32.add (i32.mul (local.get $k) (i32.const 17)) (i32.const 1)) (i32.const 65536))
      (i32.store (i32.const 65536) (local.get $k))
      (i32.store (i32.const 131068) (local.get $k))
      ;; iovec at 0: { buf = 65536, len = 65536 }; nwritten at 8
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $chunks (i32.lt_u (local.get $k) (i32.const 16))))))
