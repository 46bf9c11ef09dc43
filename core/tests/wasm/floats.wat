;; f32/f64 arithmetic, rounding, conversions and bit patterns. On the micro
;; guest these run as soft-float library calls (no SSE). Each check compares
;; exact bits; the module exits with the number of the first failed check, or
;; prints "floats ok\n" and exits 0. Inputs come from memory (filled by
;; i64.store) so nothing is folded at validation time.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "floats ok\n")
  (func $check64 (param $got f64) (param $want i64) (param $n i32)
    (if (i64.ne (i64.reinterpret_f64 (local.get $got)) (local.get $want))
      (then (call $proc_exit (local.get $n)))))
  (func $check32 (param $got f32) (param $want i32) (param $n i32)
    (if (i32.ne (i32.reinterpret_f32 (local.get $got)) (local.get $want))
      (then (call $proc_exit (local.get $n)))))
  (func $checki (param $got i64) (param $want i64) (param $n i32)
    (if (i64.ne (local.get $got) (local.get $want))
      (then (call $proc_exit (local.get $n)))))
  (func $two (result f64) (f64.load (i32.const 0)))
  (func $third (result f64) (f64.load (i32.const 8)))
  (func $neg (result f64) (f64.load (i32.const 16)))
  (func (export "_start")
    (f64.store (i32.const 0) (f64.const 2.0))
    (f64.store (i32.const 8) (f64.const 0.1))
    (f64.store (i32.const 16) (f64.const -7.5))
    ;; 1: 0.1 + 0.2 == 0.30000000000000004 (0x3FD3333333333334)
    (call $check64 (f64.add (call $third) (f64.const 0.2)) (i64.const 0x3FD3333333333334) (i32.const 1))
    ;; 2: 2.0 * -7.5 == -15.0
    (call $check64 (f64.mul (call $two) (call $neg)) (i64.reinterpret_f64 (f64.const -15.0)) (i32.const 2))
    ;; 3: 1.0 / 0.1 == 10.0
    (call $check64 (f64.div (f64.const 1.0) (call $third)) (i64.reinterpret_f64 (f64.const 10.0)) (i32.const 3))
    ;; 4: sqrt(2.0) == 0x3FF6A09E667F3BCD
    (call $check64 (f64.sqrt (call $two)) (i64.const 0x3FF6A09E667F3BCD) (i32.const 4))
    ;; 5: floor(-7.5) == -8, 6: ceil(-7.5) == -7, 7: nearest(-7.5) == -8 (ties to even), 8: trunc == -7
    (call $check64 (f64.floor (call $neg)) (i64.reinterpret_f64 (f64.const -8.0)) (i32.const 5))
    (call $check64 (f64.ceil (call $neg)) (i64.reinterpret_f64 (f64.const -7.0)) (i32.const 6))
    (call $check64 (f64.nearest (call $neg)) (i64.reinterpret_f64 (f64.const -8.0)) (i32.const 7))
    (call $check64 (f64.trunc (call $neg)) (i64.reinterpret_f64 (f64.const -7.0)) (i32.const 8))
    ;; 9: f64 -> i64 (trapping conversion) of -7.5 is -7
    (call $checki (i64.trunc_f64_s (call $neg)) (i64.const -7) (i32.const 9))
    ;; 10: i64 -> f64 of 2^53 + 1 rounds to 2^53
    (call $check64 (f64.convert_i64_s (i64.const 9007199254740993)) (i64.reinterpret_f64 (f64.const 9007199254740992.0)) (i32.const 10))
    ;; 11: f32: 1/3 == 0x3EAAAAAB
    (call $check32 (f32.div (f32.const 1.0) (f32.demote_f64 (f64.add (call $two) (f64.const 1.0)))) (i32.const 0x3EAAAAAB) (i32.const 11))
    ;; 12: f32 sqrt(2) == 0x3FB504F3
    (call $check32 (f32.sqrt (f32.demote_f64 (call $two))) (i32.const 0x3FB504F3) (i32.const 12))
    ;; 13: f32 -> f64 promote of 0.1f32 == 0x3FB99999A0000000
    (call $check64 (f64.promote_f32 (f32.demote_f64 (call $third))) (i64.const 0x3FB99999A0000000) (i32.const 13))
    ;; 14: min(-0.0, 0.0) is -0.0; 15: max of NaN is NaN
    (call $check64 (f64.min (f64.neg (f64.sub (call $two) (call $two))) (f64.sub (call $two) (call $two))) (i64.const 0x8000000000000000) (i32.const 14))
    (if (f64.eq (f64.max (f64.div (f64.sub (call $two) (call $two)) (f64.sub (call $two) (call $two))) (call $two))
                (f64.max (f64.div (f64.sub (call $two) (call $two)) (f64.sub (call $two) (call $two))) (call $two)))
      (then (call $proc_exit (i32.const 15))))
    ;; 16: comparisons: -7.5 < 0.1 and 2.0 >= 2.0
    (if (i32.eqz (i32.and (f64.lt (call $neg) (call $third)) (f64.ge (call $two) (call $two))))
      (then (call $proc_exit (i32.const 16))))
    ;; 17: saturating conversion of -7.5 to u32 is 0; 18: of 1e300 to i32 is i32::MAX
    (call $checki (i64.extend_i32_u (i32.trunc_sat_f64_u (call $neg))) (i64.const 0) (i32.const 17))
    (call $checki (i64.extend_i32_s (i32.trunc_sat_f64_s (f64.const 1e300))) (i64.const 2147483647) (i32.const 18))
    ;; 19: copysign(2.0, -7.5) == -2.0; 20: abs(-7.5) == 7.5
    (call $check64 (f64.copysign (call $two) (call $neg)) (i64.reinterpret_f64 (f64.const -2.0)) (i32.const 19))
    (call $check64 (f64.abs (call $neg)) (i64.reinterpret_f64 (f64.const 7.5)) (i32.const 20))
    (i32.store (i32.const 32) (i32.const 64))
    (i32.store (i32.const 36) (i32.const 10))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))))
