#!/usr/bin/env bash
# Installs kvmsandbox the way a user without the repository would: builds the
# source distribution, pip-installs it into a fresh venv (a clean cargo build
# of the extension and the micro guest, nothing from this checkout's target
# directory) and boots a micro guest from it. Fails if the sdist lacks a file
# the build needs. A clean build: about 2.5 minutes on 2 idle cores (`make
# sdist-check`; `make test-python` runs it too).
#
# Usage: python/tests/sdist_check.sh [WORK_DIR]   (default: a new temporary directory)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
echo "sdist-check: working in $work"

python3 -m venv "$work/build-venv"
"$work/build-venv/bin/pip" install -q maturin
rm -rf "$work/dist"
"$work/build-venv/bin/maturin" sdist -m "$repo/python/Cargo.toml" -o "$work/dist"
sdist=$(ls "$work"/dist/kvmsandbox-*.tar.gz)

# What core/build.rs needs beyond cargo's package list.
tar tzf "$sdist" > "$work/sdist-files.txt"
for f in rust-toolchain.toml guest/micro/Cargo.toml guest/micro/Cargo.lock guest/micro/link.ld \
    guest/micro/.cargo/config.toml guest/micro/src/main.rs guest/wasm-runner/Cargo.toml \
    guest/wasm-runner/src/lib.rs guest/proto/Cargo.toml core/build.rs; do
    grep -qx "kvmsandbox-[^/]*/$f" "$work/sdist-files.txt" || { echo "sdist-check: $sdist lacks $f" >&2; exit 1; }
done

rm -rf "$work/venv"
python3 -m venv "$work/venv"
# A user's build: its own target directory, no flags from this environment.
start=$(date +%s)
(cd "$work" && env -u CARGO_TARGET_DIR -u RUSTFLAGS "$work/venv/bin/pip" install -q "$sdist")
echo "sdist-check: pip install took $(( $(date +%s) - start )) s"

(cd "$work" && "$work/venv/bin/python" - <<'PY'
import kvmsandbox

with kvmsandbox.Sandbox() as sb:
    rtt = sb.ping()
print(f"sdist-check: installed from the sdist, a micro guest answered in {rtt * 1e3:.2f} ms")
PY
)
