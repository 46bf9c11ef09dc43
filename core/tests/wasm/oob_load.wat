;; Loads from far beyond its single 64 KiB page: an out-of-bounds trap.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (i32.load (i32.const 0x7fff0000)))))
