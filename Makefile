# kvmsandbox: `make run` boots a demo sandbox, `make test` runs every test.
# Both install what they need first (Debian; see scripts/install-deps.sh).

SHELL := /bin/bash
CARGO ?= cargo
export KVMSANDBOX_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kvmsandbox

.PHONY: all deps kernel build run test test-rust clean

all: build

deps:
	@scripts/install-deps.sh

# The guest Linux kernel, built once from Debian's linux-source and cached in
# $(KVMSANDBOX_CACHE)/kernel/<hash of its inputs>/.
kernel: deps
	@dir=$$(guest/kernel/build.sh | tail -n1) && echo "kernel: $$dir" && mkdir -p build && echo "$$dir" > build/kernel-dir

build: deps
	$(CARGO) build --workspace

run: deps kernel
	$(CARGO) run --release -p kvmsandbox --example boot_micro

test: deps kernel test-rust

test-rust:
	KVMSANDBOX_KERNEL_DIR=$$(cat build/kernel-dir) $(CARGO) test --workspace

clean:
	$(CARGO) clean
	rm -rf build
