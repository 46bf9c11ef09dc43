"""WASM in the micro guest: output, exit codes, traps, fuel, timeouts, streaming.
The modules are assembled in wasm_modules.py (no WAT compiler needed)."""

from __future__ import annotations

import time

import pytest

import kvmsandbox
import wasm_modules as wm
from kvmsandbox import Sandbox, WasmResult


def test_output_and_exit_zero(sandbox: Sandbox) -> None:
    r = sandbox.run_wasm(wm.hello())
    assert r == WasmResult("exit", 0, b"hello, world\n", b"oops\n")
    assert r.ok and r.text == "hello, world\n" and r.stderr_text == "oops\n"
    assert r.check_returncode() is r


def test_exit_code_is_a_result_not_an_exception(sandbox: Sandbox) -> None:
    r = sandbox.run_wasm(wm.exit_with(3))
    assert r.outcome == "exit" and r.exit_code == 3 and not r.ok
    with pytest.raises(kvmsandbox.CommandError, match="code 3") as e:
        r.check_returncode()
    assert e.value.result is r


def test_trap_raises_with_partial_output(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.WasmTrap) as e:
        sandbox.run_wasm(wm.trap(), check=True)
    assert e.value.result.stdout == b"before\n"
    assert e.value.result.outcome == "trap" and e.value.result.message
    r = sandbox.run_wasm(wm.trap())  # check=False is the default, as in Rust and C
    assert r.outcome == "trap" and r.exit_code is None
    assert sandbox.ping() > 0  # the sandbox survives a trap


def test_out_of_fuel(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.OutOfFuel) as e:
        sandbox.run_wasm(wm.infinite_loop(), fuel=100_000, check=True)
    assert e.value.result.outcome == "out_of_fuel"
    assert sandbox.run_wasm(wm.infinite_loop(), fuel=10_000, check=False).outcome == "out_of_fuel"
    assert sandbox.run_wasm(wm.hello(), fuel=1_000_000).ok


def test_invalid_module_is_a_wasm_error(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.WasmError) as e:
        sandbox.run_wasm(b"\x00asm\x01\x00\x00\x00\xff garbage", check=True)
    assert e.value.result.error_kind == "invalid_module"


def test_stdin_reaches_the_module(sandbox: Sandbox) -> None:
    assert sandbox.run_wasm(wm.cat_once(), stdin=b"piped in\n").stdout == b"piped in\n"


def test_wall_clock_timeout_stops_the_sandbox(sandbox: Sandbox) -> None:
    t = time.monotonic()
    with pytest.raises(kvmsandbox.Timeout):
        sandbox.run_wasm(wm.infinite_loop(), timeout=1.0)
    assert time.monotonic() - t < 10


def test_streaming_yields_output_then_exit(sandbox: Sandbox) -> None:
    stream = sandbox.run_wasm_stream(wm.ticks(3, 2000))
    assert stream.pid is None
    items = list(stream)
    kinds = [k for k, _ in items]
    assert kinds[-1] == "exit" and set(kinds[:-1]) == {"stdout"}
    assert b"".join(p for k, p in items if k == "stdout") == b"tick\n" * 3  # type: ignore[misc]
    final = items[-1][1]
    assert isinstance(final, WasmResult) and final.ok and final.stdout == b"tick\n" * 3
    assert stream.result is final
    assert list(stream) == []  # exhausted


def test_streaming_trap_raises_at_the_end(sandbox: Sandbox) -> None:
    stream = sandbox.run_wasm_stream(wm.trap(), check=True)
    assert next(stream) == ("stdout", b"before\n")
    with pytest.raises(kvmsandbox.WasmTrap):
        next(stream)
    assert sandbox.run_wasm_stream(wm.exit_with(4)).wait().exit_code == 4


def test_linux_agent_does_not_run_wasm(agent: Sandbox) -> None:
    with pytest.raises(kvmsandbox.Unsupported, match="run_wasm"):
        agent.run_wasm(wm.hello())
