#!/usr/bin/env bash
# Compiles the C WASI workloads here to wasm32-wasi with Debian's toolchain:
#   apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
# (clang 14 + wasm-ld + wasi-libc's sysroot in /usr; the compiler-rt builtins
# package provides libclang_rt.builtins-wasm32.a). Output: <name>.wasm beside
# the source. The .wasm files are build products; tests that need them run
# this script first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for src in "$here"/*.c; do
  out="${src%.c}.wasm"
  clang --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Werror -Wl,--strip-all -o "$out" "$src"
  echo "built $out ($(stat -c %s "$out") bytes)"
done
