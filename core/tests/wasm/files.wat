;; Files in and out of preopened directories: fd 3 must be a read-only
;; directory holding `in.txt`, fd 4 a writable one. Copies in.txt to
;; copy.txt in fd 4, makes directory `made` there, then tries to create
;; `new.txt` in fd 3 and exits with the errno that gave (69, EROFS, when
;; the directory is read-only). Exits 10-12 or 14 if an earlier step
;; failed, and 100 + errno if writing the copy failed (151: ENOSPC).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "in.txt")
  (data (i32.const 120) "copy.txt")
  (data (i32.const 140) "new.txt")
  (data (i32.const 160) "made")
  (func (export "_start")
    (local $errno i32)
    ;; in.txt, read (rights: fd_read).
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 6)
                         (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200))
      (then (call $proc_exit (i32.const 10))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (if (call $fd_read (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 204))
      (then (call $proc_exit (i32.const 11))))
    ;; copy.txt, created and truncated (oflags creat|trunc; rights: fd_write).
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 120) (i32.const 8)
                         (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 208))
      (then (call $proc_exit (i32.const 12))))
    (i32.store (i32.const 4) (i32.load (i32.const 204)))
    (local.set $errno
      (call $fd_write (i32.load (i32.const 208)) (i32.const 0) (i32.const 1) (i32.const 212)))
    (if (local.get $errno)
      (then (call $proc_exit (i32.add (i32.const 100) (local.get $errno)))))
    (if (call $mkdir (i32.const 4) (i32.const 160) (i32.const 4))
      (then (call $proc_exit (i32.const 14))))
    ;; new.txt in the read-only directory.
    (call $proc_exit
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 140) (i32.const 7)
                       (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 216)))))
