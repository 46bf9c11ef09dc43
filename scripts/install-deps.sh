#!/bin/bash
# Installs what building and testing kvmsandbox needs on a fresh Debian machine.
# Idempotent and quiet when everything is present. Run as root (or with sudo).
set -euo pipefail

# clang, lld, wasi-libc, libclang-rt-14-dev-wasm32: core/tests/wasm/build.sh (C programs for WASI).
APT_PACKAGES=(build-essential pkg-config binutils e2fsprogs socat strace valgrind cpio busybox-static python3-venv
    clang lld wasi-libc libclang-rt-14-dev-wasm32)

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null; then
    echo "deps: cargo not found; install Rust with rustup first" >&2
    exit 1
fi
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none || rustup target add x86_64-unknown-none >&2
