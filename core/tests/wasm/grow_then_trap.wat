;; What a program whose allocator failed does: memory.grow returns -1 and the
;; program aborts (unreachable). Under a cap this is reported as MemoryLimit.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))))
