;; Writes 1 MiB to stdout in 16 chunks of 64 KiB; byte i of chunk k is
;; (i * 31 + k * 7 + (i >> 9)) & 255, so a lost, repeated or reordered
;; chunk changes the checksum.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  ;; 0: iovec, 8: nwritten, 65536..131072: chunk buffer
  (func (export "_start")
    (local $k i32) (local $i i32)
    (loop $chunk
      (local.set $i (i32.const 0))
      (loop $byte
        (i32.store8
          (i32.add (i32.const 65536) (local.get $i))
          (i32.add
            (i32.add (i32.mul (local.get $i) (i32.const 31)) (i32.mul (local.get $k) (i32.const 7)))
            (i32.shr_u (local.get $i) (i32.const 9))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $i) (i32.const 65536))))
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
        (then (call $proc_exit (i32.const 30))))
      (if (i32.ne (i32.load (i32.const 8)) (i32.const 65536))
        (then (call $proc_exit (i32.const 31))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $chunk (i32.lt_u (local.get $k) (i32.const 16))))))
