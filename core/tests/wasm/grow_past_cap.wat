;; Under a 1 MiB cap: growing by 32 pages (2 MiB) must return -1 and leave the
;; memory as it was; growing by 1 page must still work. Prints what it saw and
;; exits 0 if all held, else a code naming the failed check.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "grow refused\n")
  (func (export "_start")
    (if (i32.ne (memory.grow (i32.const 32)) (i32.const -1)) (then (call $proc_exit (i32.const 40))))
    (if (i32.ne (memory.size) (i32.const 1)) (then (call $proc_exit (i32.const 41))))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.ne (memory.grow (i32.const 1)) (i32.const 1)) (then (call $proc_exit (i32.const 42))))
    ;; the new page is usable
    (i32.store (i32.const 70000) (i32.const 5))
    (if (i32.ne (i32.load (i32.const 70000)) (i32.const 5)) (then (call $proc_exit (i32.const 43))))))
