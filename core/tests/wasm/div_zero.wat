;; Divides by zero (the divisor comes from memory so it is not folded away).
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (i32.div_s (i32.const 7) (i32.load (i32.const 0))))))
