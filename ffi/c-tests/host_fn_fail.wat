;; Calls host function "host"."fail" once.
(module
  (import "host" "fail" (func $fail))
  (memory (export "memory") 1)
  (func (export "_start") (call $fail)))
