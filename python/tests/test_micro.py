"""The micro guest through the Python API: boot, ping, timings, sockets, disks."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import Disk, Sandbox


def pattern(n: int, seed: int) -> bytes:
    return bytes(((i * 2654435761) >> 8 ^ seed) & 0xFF for i in range(n))


def test_start_ping_and_timings(sandbox: Sandbox) -> None:
    assert sandbox.kind == "micro"
    assert not sandbox.closed
    for _ in range(3):
        assert 0 < sandbox.ping() < 5
    t = sandbox.boot_timings
    assert list(t)[0] == "vm_created" and "agent_ready" in t
    assert list(t.values()) == sorted(t.values()), t
    assert "KVMSANDBOX-READY" in sandbox.console_output
    assert sandbox.echo(b"\x00abc") == b"\x00abc"


def test_context_manager_kills_and_closes() -> None:
    with Sandbox() as sb:
        assert sb.ping() > 0
    assert sb.closed
    assert "closed" in repr(sb)
    with pytest.raises(kvmsandbox.SandboxClosed):
        sb.ping()
    sb.kill()  # idempotent
    sb.close()


def test_shutdown_then_closed() -> None:
    sb = Sandbox()
    sb.shutdown()
    assert sb.closed


def test_connect_echo_port_is_a_real_socket(sandbox: Sandbox) -> None:
    data = pattern(256 << 10, 5)
    with sandbox.connect(kvmsandbox.ECHO_PORT) as s:
        assert isinstance(s, socket.socket)
        assert s.family == socket.AF_UNIX and s.type == socket.SOCK_STREAM
        s.settimeout(30)
        writer = threading.Thread(target=s.sendall, args=(data,))
        writer.start()
        back = bytearray()
        while len(back) < len(data):
            chunk = s.recv(65536)
            assert chunk, "echo stream closed early"
            back += chunk
        writer.join()
    assert bytes(back) == data


def test_connect_makefile_lines(sandbox: Sandbox) -> None:
    s = sandbox.connect(kvmsandbox.ECHO_PORT)
    s.settimeout(10)
    f = s.makefile("rwb")
    f.write(b"line one\n")
    f.flush()
    assert f.readline() == b"line one\n"
    f.close()
    s.close()


def test_disks_written_through_the_guest_are_on_the_host(tmp_path: Path) -> None:
    img = tmp_path / "disk.raw"
    original = pattern(1 << 20, 1)
    img.write_bytes(original)
    ro = tmp_path / "ro.raw"
    ro.write_bytes(pattern(64 << 10, 2))
    with Sandbox(disks=[Disk(img), Disk(str(ro), read_only=True)]) as sb:
        assert sb.disk_read(0, 4096, 1024) == original[4096:5120]
        assert sb.disk_read(1, 0, 512) == pattern(64 << 10, 2)[:512]
        new = pattern(8192, 7)
        sb.disk_write(0, 65536, new)
        sb.disk_flush(0)
        on_host = img.read_bytes()
        assert on_host[65536 : 65536 + 8192] == new
        assert on_host[:65536] == original[:65536]
        assert sb.disk_read(0, 65536, 8192) == new
        with pytest.raises(kvmsandbox.KvmSandboxError):
            sb.disk_write(1, 0, b"x" * 512)
        with pytest.raises(kvmsandbox.KvmSandboxError):
            sb.disk_read(7, 0, 512)
    assert ro.read_bytes() == pattern(64 << 10, 2)
    assert os.path.getsize(img) == 1 << 20


def test_micro_guest_has_no_commands_or_files(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.Unsupported, match="exec"):
        sandbox.run(["true"])
    with pytest.raises(kvmsandbox.Unsupported, match="read_file"):
        sandbox.read_file("/etc/hostname")
    with pytest.raises(kvmsandbox.Unsupported):
        sandbox.write_file("/x", b"")
    assert sandbox.ping() > 0  # still usable


def test_two_threads_two_sandboxes_at_once() -> None:
    errors: list[BaseException] = []
    results: dict[int, bytes] = {}
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        try:
            with Sandbox() as sb:
                barrier.wait(timeout=30)
                for _ in range(10):
                    sb.ping()
                with sb.connect(kvmsandbox.ECHO_PORT) as s:
                    s.settimeout(10)
                    s.sendall(b"thread %d" % i)
                    results[i] = s.recv(100)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert results == {0: b"thread 0", 1: b"thread 1"}


def test_one_sandbox_shared_by_threads(sandbox: Sandbox) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                assert sandbox.echo(b"%d-%d" % (i, j)) == b"%d-%d" % (i, j)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
