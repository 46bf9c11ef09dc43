;; Copies stdin to stdout with fd_read/fd_write until end of file. The read
;; uses two iovecs (1000 + 3096 bytes) to exercise scatter reads.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0..16: read iovecs, 16: nread, 32..40: write iovec, 40: nwritten, 4096: buffer
  (func (export "_start")
    (local $n i32)
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (i32.const 1000))
    (i32.store (i32.const 8) (i32.const 5096))
    (i32.store (i32.const 12) (i32.const 3096))
    (block $eof
      (loop $again
        (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 16))
          (then (call $proc_exit (i32.const 20))))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $eof (i32.eqz (local.get $n)))
        (i32.store (i32.const 32) (i32.const 4096))
        (i32.store (i32.const 36) (local.get $n))
        (if (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))
          (then (call $proc_exit (i32.const 21))))
        (br $again)))))
