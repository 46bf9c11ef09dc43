"""Runs an untrusted WASM program in a micro-VM sandbox and prints what happened.

    python examples/python/run_untrusted_wasm.py [module.wasm]

Without an argument it runs a small built-in WASI program (bytes below: it prints
a greeting, then spins forever). The sandbox gives it a fuel budget, so the
endless loop ends as OutOfFuel instead of hanging the host; a wall-clock timeout
backs that up. The VM boundary is the isolation: even a wasm runtime bug only
reaches a guest with no files, no network and 64 MiB of RAM.
"""

from __future__ import annotations

import sys

import kvmsandbox

# (module (import "wasi_snapshot_preview1" "fd_write" ...) (memory 1)
#   (data (i32.const 16) "hello from the sandbox\n")
#   (func (export "_start") ;; fd_write(1, iovec{16, 23}) then (loop (br 0))))
UNTRUSTED = bytes.fromhex(
    "0061736d01000000010c0260047f7f7f7f017f60000002230116776173695f73"
    "6e617073686f745f70726576696577310866645f777269746500000302010105"
    "03010001071302065f73746172740001066d656d6f727902000a220120004100"
    "411036020041044117360200410141004101410810001a03400c000b0b0b1d01"
    "0041100b1768656c6c6f2066726f6d207468652073616e64626f780a"
)


def main() -> int:
    module = open(sys.argv[1], "rb").read() if len(sys.argv) > 1 else UNTRUSTED
    with kvmsandbox.Sandbox() as sb:
        print(f"sandbox ready in {sb.boot_timings['agent_ready'] * 1e3:.1f} ms")
        try:
            r = sb.run_wasm(module, args=["untrusted"], fuel=1_000_000, timeout=60, check=True)
            print(f"exit code {r.exit_code}")
        except (kvmsandbox.WasmTrap, kvmsandbox.OutOfFuel, kvmsandbox.WasmError) as e:
            r = e.result
            print(f"stopped: {type(e).__name__}: {e}")
        except kvmsandbox.Timeout as e:
            print(f"stopped by the wall clock: {e}")
            return 0
        print(f"stdout: {r.stdout_text!r}")
        print(f"stderr: {r.stderr_text!r}")
        print(f"host still fine: ping {sb.ping() * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
