"""The example scripts run, and the stubs type-check (mypy --strict)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples" / "python"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180)


def test_run_untrusted_wasm_example() -> None:
    r = run(str(EXAMPLES / "run_untrusted_wasm.py"))
    assert r.returncode == 0, r.stderr
    assert "sandbox ready" in r.stdout and "host still fine" in r.stdout, r.stdout
    assert "hello from the sandbox" in r.stdout and "OutOfFuel" in r.stdout, r.stdout


def test_linux_api_example_without_kernel() -> None:
    r = run(str(EXAMPLES / "linux_api.py"))
    assert r.returncode == 0, r.stderr
    assert "ConfigError" in r.stdout


def test_linux_api_example_against_the_host_agent(agent_socket: Path) -> None:
    r = run(str(EXAMPLES / "linux_api.py"), "--host-agent", str(agent_socket))
    assert r.returncode == 0, r.stderr
    assert "read back: b'written from Python\\n'" in r.stdout and "streamed stdout: b'line 3\\n'" in r.stdout


def test_stubs_pass_mypy_strict() -> None:
    import mypy  # noqa: F401  (installed by `make test-python`; a missing mypy fails)
    # The installed package by name (PEP 561: py.typed + _kvmsandbox.pyi), then a typed user.
    for args in (["-p", "kvmsandbox"], [str(HERE / "typed_usage.py")]):
        r = run("-m", "mypy", "--strict", "--cache-dir=/dev/null", *args)
        assert r.returncode == 0, r.stdout + r.stderr
