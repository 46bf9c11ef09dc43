"""Prepared WASM templates: prepare once, run many times with each call's
inputs; a trap, running out of fuel or a wall-clock timeout does not spoil the
next run; a bad module fails at prepare."""

from __future__ import annotations

import time

import pytest

import kvmsandbox
import wasm_modules as wm
from kvmsandbox import Sandbox, WasmResult, WasmTemplate


def test_one_template_runs_with_each_calls_stdin(sandbox: Sandbox) -> None:
    t = sandbox.prepare_wasm(wm.cat_once())
    assert isinstance(t, WasmTemplate) and t.id > 0
    for i in range(3):
        r = t.run(stdin=f"run {i}\n".encode())
        assert r == WasmResult("exit", 0, f"run {i}\n".encode(), b"")


def test_trap_and_fuel_do_not_spoil_the_next_run(sandbox: Sandbox) -> None:
    trap = sandbox.prepare_wasm(wm.trap())
    with pytest.raises(kvmsandbox.WasmTrap) as e:
        trap.run(check=True)
    assert e.value.result.stdout == b"before\n"
    looping = sandbox.prepare_wasm(wm.infinite_loop())
    assert looping.run(fuel=50_000).outcome == "out_of_fuel"
    hello = sandbox.prepare_wasm(wm.hello())
    assert hello.run().stdout == b"hello, world\n"
    assert trap.run().outcome == "trap"  # check=False, as for run_wasm


def test_a_timeout_restores_instead_of_stopping(sandbox: Sandbox) -> None:
    looping = sandbox.prepare_wasm(wm.infinite_loop())
    hello = sandbox.prepare_wasm(wm.hello())
    t = time.monotonic()
    with pytest.raises(kvmsandbox.Timeout):
        looping.run(timeout=0.5)
    assert time.monotonic() - t < 10
    assert hello.run().ok
    assert sandbox.ping() > 0


def test_invalid_module_fails_at_prepare(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.KvmSandboxError, match="InvalidModule"):
        sandbox.prepare_wasm(b"\x00asm\x01\x00\x00\x00\xff garbage")
    assert sandbox.ping() > 0
