"""Host functions from Python in the micro guest: callables of every type, a
wasi-libc program asking the script for data, exceptions and bad returns as
traps, and a callable that calls back into its own sandbox.

The modules are the C tests' fixtures (assembled from ffi/c-tests/host_fn*.wat,
checked by ffi/tests/fixtures.rs) and core/tests/wasm/host_lookup.wasm (built
from host_lookup.c with wasi-libc)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Optional

import kvmsandbox
from kvmsandbox import HostFunction, Sandbox

REPO = Path(__file__).resolve().parents[2]


def fixture(name: str) -> bytes:
    """The bytes of a generated C array header (ffi/c-tests/<name>_wasm.h)."""
    text = (REPO / "ffi" / "c-tests" / f"{name}_wasm.h").read_text()
    body = text.split("= {", 1)[1]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def every_type(seen: list[int]) -> list[HostFunction]:
    def note() -> None:
        seen.append(threading.get_ident())

    def add(a: int, b: int) -> int:
        note()
        return a + b

    def mul64(a: int, b: int) -> int:
        note()
        return a * b

    def half(x: float) -> float:
        note()
        return x / 2

    def upper(b: bytes) -> bytes:
        note()
        return b.upper()

    return [
        HostFunction("host", "add", ["i32", "i32"], ["i32"], add),
        HostFunction("host", "mul64", ["i64", "i64"], ["i64"], mul64),
        HostFunction("host", "half32", ["f32"], ["f32"], half),
        HostFunction("host", "half64", ["f64"], ["f64"], half),
        HostFunction("host", "upper", ["bytes"], ["bytes"], upper),
    ]


def test_callables_of_every_type(sandbox: Sandbox) -> None:
    seen: list[int] = []
    r = sandbox.run_wasm(fixture("host_fn"), host_functions=every_type(seen), timeout=120)
    assert (r.outcome, r.exit_code, r.stdout) == ("exit", 0, b"HELLO FROM WASM\n"), r
    assert len(seen) == 5
    # They ran on a library thread, not this one (which waits without the GIL).
    assert threading.get_ident() not in seen


def test_a_wasi_libc_program_asks_the_script_for_data(sandbox: Sandbox) -> None:
    records = {"city": "Lisbon"}

    def lookup(key: bytes) -> bytes:
        return records[key.decode()].encode()

    hosts = [
        HostFunction("host", "lookup", ["bytes"], ["bytes"], lookup),
        HostFunction("host", "scale", ["f64"], ["f64"], lambda x: x * 10),
    ]
    module = (REPO / "core" / "tests" / "wasm" / "host_lookup.wasm").read_bytes()
    r = sandbox.run_wasm(module, args=["host_lookup", "city"], host_functions=hosts, timeout=120)
    assert r.outcome == "exit" and r.stdout == b"city = Lisbon\nscaled: 15.00\n", r
    # An exception traps the module with its type and message.
    r = sandbox.run_wasm(module, args=["host_lookup", "nothing"], host_functions=hosts, timeout=120)
    assert r.outcome == "trap" and r.message is not None and "KeyError" in r.message and "nothing" in r.message, r


def test_a_return_of_the_wrong_type_traps(sandbox: Sandbox) -> None:
    hosts = every_type([])
    hosts[0] = HostFunction("host", "add", ["i32", "i32"], ["i32"], lambda a, b: "not a number")
    r = sandbox.run_wasm(fixture("host_fn"), host_functions=hosts, timeout=120)
    assert r.outcome == "trap" and r.message is not None and "host::add" in r.message, r


def test_a_wrong_declaration_is_refused_before_the_run(sandbox: Sandbox) -> None:
    bad = [HostFunction("host", "f", ["string"], [], lambda: None)]  # type: ignore[list-item]
    try:
        sandbox.run_wasm(fixture("host_fn_fail"), host_functions=bad)
    except ValueError as e:
        assert "string" in str(e)
    else:
        raise AssertionError("an unknown type was accepted")


def test_a_callable_calling_its_own_sandbox_gets_invalid_argument(sandbox: Sandbox) -> None:
    caught: list[Optional[BaseException]] = []

    def reenter() -> None:
        try:
            sandbox.ping()
            caught.append(None)
        except BaseException as e:
            caught.append(e)
            raise

    hosts = [HostFunction("host", "fail", [], [], reenter)]
    r = sandbox.run_wasm(fixture("host_fn_fail"), host_functions=hosts, timeout=60)
    assert r.outcome == "trap", r
    assert len(caught) == 1 and isinstance(caught[0], kvmsandbox.InvalidArgument), caught
    assert sandbox.ping() > 0


def test_host_functions_example() -> None:
    import subprocess
    import sys

    script = REPO / "examples" / "python" / "host_functions.py"
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "the module asks for 'weather:lisbon'" in r.stdout and "sunny, 21 C" in r.stdout, r.stdout
