;; Asks the host for "weather:lisbon" through host.lookup(key) -> bytes and prints the answer.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "host" "lookup" (func $lookup (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "weather:lisbon")
  (func (export "_start") (local $n i32)
    (local.set $n (call $lookup (i32.const 16) (i32.const 14) (i32.const 100) (i32.const 256)))
    (i32.store8 (i32.add (i32.const 100) (local.get $n)) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.add (local.get $n) (i32.const 1)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
