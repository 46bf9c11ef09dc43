"""The documented defaults (docs/timeouts.md) and per-call timeouts: a short
timeout on an operation that hangs ends it with the typed Timeout, in bounds."""

from __future__ import annotations

import inspect
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import kvmsandbox
from kvmsandbox import AsyncSandbox, Sandbox, WasmTemplate

# "Does not hang" bound for calls given a 0.3 s timeout.
BOUND = 2.0

# The files API calls, each taking a per-call timeout.
FILES_CALLS = ("upload", "download", "stat", "exists", "list_dir", "make_dir", "remove", "rename")


def test_check_defaults_to_false_everywhere() -> None:
    for method in (Sandbox.run, Sandbox.stream, Sandbox.run_wasm, Sandbox.run_wasm_stream, WasmTemplate.run):
        assert inspect.signature(method).parameters["check"].default is False, method.__name__


def test_every_timeout_defaults_to_none() -> None:
    """None = the documented default; there is no magic 0 or other number."""
    for name in ("attach_host_agent", "attach_vsock", "ping", "echo", "run", "stream", "run_wasm",
                 "run_wasm_stream", "write_file", "read_file", "disk_read", "disk_write", "disk_flush",
                 *FILES_CALLS):
        for cls in (Sandbox, AsyncSandbox):
            param = inspect.signature(getattr(cls, name)).parameters["timeout"]
            assert param.default is None and param.kind is param.KEYWORD_ONLY, (cls, name)
    assert inspect.signature(Sandbox.linux).parameters["memory_mib"].default is None
    assert inspect.signature(Sandbox).parameters["memory_mib"].default is None


def test_documented_command_defaults(agent: Sandbox) -> None:
    assert agent.run(["env"]).stdout == b""  # an empty environment
    r = agent.run("exit 3")  # a non-zero exit is a result
    assert r.exit_code == 3
    r = agent.run(["sleep", "30"], timeout=0.3)  # a timed-out command is a result
    assert r.timed_out


@pytest.fixture
def mute_agent(agent_socket: Path, tmp_path: Path) -> Iterator[Path]:
    """A proxy to the real agent that passes its Hello on but never forwards a
    request: every call after attaching waits forever for its answer."""
    path = tmp_path / "mute.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(agent_socket))
            conns.extend([client, upstream])
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield path
    finally:
        listener.close()
        for c in conns:
            c.close()


def test_short_timeouts_on_a_mute_agent_raise_timeout(mute_agent: Path) -> None:
    # The sandbox's own answer timeout is 30 s: only the per-call one can end these in time.
    with Sandbox.attach_host_agent(mute_agent, timeout=30) as sb:
        for call in (lambda: sb.ping(timeout=0.3), lambda: sb.read_file("/etc/hostname", timeout=0.3),
                     lambda: sb.echo(b"x", timeout=0.3)):
            t = time.monotonic()
            with pytest.raises(kvmsandbox.Timeout):
                call()
            assert time.monotonic() - t < BOUND


def test_files_calls_honour_a_per_call_timeout(mute_agent: Path, tmp_path: Path) -> None:
    """Each call of the files API given timeout=0.3 raises Timeout in bounds,
    where the sandbox's own 30 s would keep it waiting."""
    local = tmp_path / "local.bin"
    local.write_bytes(b"data")
    d = str(tmp_path / "d")
    calls = {
        "upload": lambda sb: sb.upload(local, f"{d}/up", timeout=0.3),
        "download": lambda sb: sb.download("/etc/hostname", tmp_path / "down", timeout=0.3),
        "stat": lambda sb: sb.stat("/", timeout=0.3),
        "exists": lambda sb: sb.exists("/", timeout=0.3),
        "list_dir": lambda sb: sb.list_dir("/", timeout=0.3),
        "make_dir": lambda sb: sb.make_dir(d, timeout=0.3),
        "remove": lambda sb: sb.remove(d, timeout=0.3),
        "rename": lambda sb: sb.rename(d, f"{d}2", timeout=0.3),
    }
    assert sorted(calls) == sorted(FILES_CALLS)
    with Sandbox.attach_host_agent(mute_agent, timeout=30) as sb:
        for name, call in calls.items():
            t = time.monotonic()
            with pytest.raises(kvmsandbox.Timeout):
                call(sb)
            assert time.monotonic() - t < BOUND, name


@pytest.mark.asyncio
async def test_async_files_calls_honour_a_per_call_timeout(mute_agent: Path) -> None:
    async with await AsyncSandbox.attach_host_agent(mute_agent, timeout=30) as sb:
        t = time.monotonic()
        with pytest.raises(kvmsandbox.Timeout):
            await sb.list_dir("/", timeout=0.3)
        assert time.monotonic() - t < BOUND


def test_attach_timeout_on_a_silent_socket(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    try:
        t = time.monotonic()
        with pytest.raises(kvmsandbox.Timeout):
            Sandbox.attach_host_agent(path, timeout=0.3)
        assert time.monotonic() - t < BOUND
    finally:
        listener.close()
