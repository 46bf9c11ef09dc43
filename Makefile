# kvmsandbox: `make run` boots a demo sandbox, `make test` runs every test.
# Both install what they need first (Debian; see scripts/install-deps.sh).

SHELL := /bin/bash
CARGO ?= cargo
export KVMSANDBOX_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kvmsandbox

.PHONY: all deps qemu kernel linux-tcg build run test lint test-rust test-c test-python sdist-check install-lib bench bench-compare fuzz-smoke fuzz-long linux-guest run-linux wasi-conformance test-wasi clean

all: build

deps:
	@scripts/install-deps.sh

# QEMU (from bookworm-backports): the comparison benchmark and its PVH boot test.
qemu:
	@guest/kernel/install-qemu.sh

# The guest Linux kernel, built once from Debian's linux-source and cached in
# $(KVMSANDBOX_CACHE)/kernel/<hash of its inputs>/.
kernel: deps
	@dir=$$(guest/kernel/build.sh | tail -n1) && echo "kernel: $$dir" && mkdir -p build && echo "$$dir" > build/kernel-dir

# The Linux guest's user side: the agent, linked statically, as /init of an
# uncompressed initramfs (build/linux/initramfs.cpio) with a static busybox for
# `sh -c`, next to the cached kernel.
linux-guest: deps kernel
	RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" $(CARGO) build --release -p kvmsandbox-agent --target x86_64-unknown-linux-gnu
	mkdir -p build/linux
	guest/kernel/mkinitramfs.sh build/linux/initramfs.cpio $${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/kvmsandbox-agent $$(command -v busybox):/bin/busybox
	@echo "kernel: $$(cat build/kernel-dir)/vmlinux"
	@echo "initrd: build/linux/initramfs.cpio"

# Boots the Linux guest to its init (on PVM hosts the kernel is as far as it gets).
run-linux: linux-guest
	$(CARGO) run --release -p kvmsandbox --example boot_linux -- $$(cat build/kernel-dir)/vmlinux build/linux/initramfs.cpio

build: deps
	$(CARGO) build --workspace

run: deps kernel
	$(CARGO) run --release -p kvmsandbox --example sandbox_demo

test: deps qemu kernel linux-tcg lint test-rust test-c test-python test-wasi fuzz-smoke

# What the Linux guest tests under QEMU TCG need (docs/linux-tcg.md): QEMU, the
# kernel and initramfs; test-rust builds our vhost-user vsock backend with them.
linux-tcg: deps qemu linux-guest
	@scripts/check-linux-tcg.sh

# Formatting and clippy (warnings are errors) over the workspace and the crates
# outside it (the micro guest, the WASM runner, the fuzz targets).
OUTSIDE_WORKSPACE := guest/micro/Cargo.toml guest/micro/host-tests/Cargo.toml guest/wasm-runner/Cargo.toml fuzz/Cargo.toml
lint: deps
	$(CARGO) fmt --all --check
	for m in $(OUTSIDE_WORKSPACE); do $(CARGO) fmt --manifest-path $$m --all --check || exit 1; done
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd guest/wasm-runner && $(CARGO) clippy --all-targets -- -D warnings

test-rust:
	KVMSANDBOX_KERNEL_DIR=$$(cat build/kernel-dir) $(CARGO) test --workspace
	cd guest/wasm-runner && $(CARGO) test
	cd guest/micro/host-tests && $(CARGO) test
	$(CARGO) bench -p kvmsandbox-benches --no-run

# The C library: header drift is checked by `cargo test` (ffi/tests/header.rs).
test-c:
	ffi/c-tests/run.sh
	$(MAKE) -C examples/c valgrind

# The Python package, installed into a private venv as a user would (pip install
# './python[ray]': the Ray extra brings Ray from PyPI for tests/test_ray.py).
VENV := build/venv
test-python:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip maturin pytest pytest-asyncio mypy
	$(VENV)/bin/pip install -q './python[ray]'
	$(CARGO) build -p kvmsandbox-agent
	$(VENV)/bin/pytest -q python/tests
	$(VENV)/bin/mypy --strict --cache-dir=/dev/null python/kvmsandbox
	$(VENV)/bin/python -m mypy.stubtest kvmsandbox._kvmsandbox --mypy-config-file python/pyproject.toml
	python/tests/sdist_check.sh

# `pip install` from the source distribution into a fresh venv, then a micro
# guest boots from it (python/tests/sdist_check.sh, also run by test-python): a
# clean build, about 2.5 minutes on 2 idle cores.
sdist-check: deps
	python/tests/sdist_check.sh

# Every cargo-fuzz target for FUZZ_SECS (default 10) seconds; fails on any crash.
fuzz-smoke: deps
	scripts/fuzz-smoke.sh

# A long campaign: every target until it has run 10^6 inputs, growing a corpus kept
# in $(KVMSANDBOX_CACHE)/fuzz-corpus between campaigns (figures: fuzz/README.md).
fuzz-long: deps
	FUZZ_RUNS=$${FUZZ_RUNS:-1000000} FUZZ_CORPUS_DIR=$(KVMSANDBOX_CACHE)/fuzz-corpus scripts/fuzz-smoke.sh

# Criterion benchmarks; HTML in $${CARGO_TARGET_DIR:-target}/criterion/report/index.html.
# KVMSANDBOX_BENCH_LINUX=1 adds the Linux boot benchmark (~1 min per boot on PVM).
bench: deps
	$(CARGO) bench -p kvmsandbox-benches

# QEMU microvm vs kvmsandbox -> docs/benchmarks/compare.{md,png}.
# BENCH_RUNS (default 5), BENCH_LINUX_RUNS (default 1; 0 skips Linux).
bench-compare: deps qemu kernel
	$(CARGO) build --release -p kvmsandbox-benches --bins
	KVMSANDBOX_KERNEL_DIR=$$(cat build/kernel-dir) $${CARGO_TARGET_DIR:-target}/release/bench-compare

# The WASI preview 1 conformance suite (WebAssembly/wasi-testsuite's prebuilt
# tests) against the micro guest, held to tests/wasi-conformance/expected-failures.txt
# (docs/wasi.md). Debug host build: the guest is always optimised, the host only waits.
# Two tests at a time on two sandboxes; ~6-12 min on a loaded 2-core PVM host.
# `make test` runs it as test-wasi (CI keeps a copy of shared/ beside the checkout).
WASI_TESTSUITE ?= ../shared/wasi-testsuite
wasi-conformance: deps
	@test -d "$(WASI_TESTSUITE)" || { echo "wasi-conformance: no WASI test suite at '$(WASI_TESTSUITE)'; set WASI_TESTSUITE=DIR (a copy of wasi-testsuite's prebuilt tests)" >&2; exit 1; }
	$(CARGO) run -p kvmsandbox --example wasi_conformance -- "$(WASI_TESTSUITE)"

test-wasi: wasi-conformance

PREFIX ?= /usr/local
install-lib:
	ffi/install.sh $(PREFIX)

clean:
	$(CARGO) clean
	rm -rf build
