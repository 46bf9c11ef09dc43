;; Declares 2 MiB (32 pages) of initial memory.
(module
  (memory (export "memory") 32)
  (func (export "_start")))
