#!/usr/bin/env bash
# Builds the probe (the wasm runner linked into an x86_64-unknown-none binary,
# release profile = the micro guest's), then:
#  1. fails if its code has any instruction PVM's emulator cannot run
#     (SSE/AVX registers, popcnt, cmpxchg16b, the xsave family, mxcsr);
#  2. runs it as a static Linux process: floats (soft-float), traps, fuel;
#  3. prints its size (the runner's footprint in a guest binary).
# Needs: rustup target x86_64-unknown-none, objdump (binutils).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# A directory of its own: the caller (e.g. `cargo test`) may hold the lock on
# its own target directory while this runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../target}/probe"
profile="${1:-release}"
flag=()
[ "$profile" = release ] && flag=(--release)
(cd "$here" && cargo build --quiet "${flag[@]}")
bin="$CARGO_TARGET_DIR/x86_64-unknown-none/$profile/kvmsandbox-wasm-runner-probe"

# Instruction column only (symbol names such as `i32_popcnt` must not match).
bad="$(objdump -d --no-show-raw-insn "$bin" | grep -E '^\s+[0-9a-f]+:' | sed 's/<[^>]*>//g' \
  | grep -iE '%?[xyz]mm[0-9]|popcnt|cmpxchg16b|xsave|xrstor|fxsave|fxrstor|[ls]dmxcsr' || true)"
if [ -n "$bad" ]; then
  echo "FAIL: instructions the PVM emulator cannot run:" >&2
  echo "$bad" | head -20 >&2
  exit 1
fi
echo "ok   no SSE/AVX/popcnt/cmpxchg16b/xsave in $(basename "$bin") ($profile)"
# Soft-float helpers are called through the GOT (`call *x(%rip)`), so look
# for them being linked in; with no xmm register anywhere, floats can only be
# done by them.
symbols="$(nm "$bin")"  # (no pipe into grep -q: pipefail + SIGPIPE)
if ! grep -qE '__adddf3|__muldf3' <<<"$symbols"; then
  echo "FAIL: no soft-float calls found: are floats compiled to SSE?" >&2
  exit 1
fi
echo "ok   soft-float helpers (__adddf3, __muldf3) linked in"

"$bin"
size -A "$bin" | awk '$1 == ".text" || $1 == ".rodata" { printf "size %-8s %8d bytes\n", $1, $2; total += $2 }
  END { printf "size code+rodata %d bytes (%.0f KiB)\n", total, total / 1024 }'
