"""A WASM program asks this script for data through a host function.

    python examples/python/host_functions.py [key]

The module (bytes below) imports one function, ``host.lookup(key) -> bytes``,
calls it with "weather:lisbon" and prints the answer. The script decides what
the function does: here it reads a dict, and a key it does not know raises,
which traps the module with the exception's message. The module can reach
nothing else of this process.
"""

from __future__ import annotations

import sys

import kvmsandbox
from kvmsandbox import HostFunction

# (module
#   (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
#   (import "host" "lookup" (func $lookup (param i32 i32 i32 i32) (result i32)))
#   (memory (export "memory") 1)
#   (data (i32.const 16) "weather:lisbon")
#   (func (export "_start") (local $n i32)
#     ;; n = lookup("weather:lisbon", out = 100, room = 256); print out[0..n] + "\n"
#     ...))
ASKS_THE_HOST = bytes.fromhex(
    "0061736d01000000010c0260047f7f7f7f017f60000002310216776173695f73"
    "6e617073686f745f70726576696577310866645f7772697465000004686f7374"
    "066c6f6f6b75700000030201010503010001071302066d656d6f72790200065f"
    "737461727400020a3c013a01017f4110410e41e4004180021001210041e40020"
    "006a410a3a0000410041e4003602004104200041016a36020041014100410141"
    "0810001a0b0b14010041100b0e776561746865723a6c6973626f6e001f046e61"
    "6d650110020005777269746501066c6f6f6b7570020601020100016e"
)


def main() -> int:
    records = {"weather:lisbon": "sunny, 21 C"}
    if len(sys.argv) > 1:
        records = {sys.argv[1]: "only this key is known"}

    def lookup(key: bytes) -> bytes:
        print(f"[host] the module asks for {key.decode()!r}")
        return records[key.decode()].encode()

    with kvmsandbox.Sandbox() as sb:
        r = sb.run_wasm(
            ASKS_THE_HOST,
            fuel=1_000_000,
            timeout=60,
            host_functions=[HostFunction("host", "lookup", ["bytes"], ["bytes"], lookup)],
        )
    print(f"outcome: {r.outcome}, stdout: {r.stdout.decode()!r}")
    if r.message:
        print(f"message: {r.message}")
    return 0 if r.outcome == "exit" else 1


if __name__ == "__main__":
    sys.exit(main())
