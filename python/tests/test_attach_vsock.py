"""Sandbox.attach_vsock speaks the hybrid vsock handshake: here a stand-in for
another VMM's socket answers `CONNECT 1024` and forwards to a host agent (the
real thing, QEMU with our vhost-user backend, is vhost/tests/linux_tcg.rs)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import Sandbox


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _hybrid_stand_in(
    path: Path, agent_socket: Path, ports: list[int], mute: frozenset[int] = frozenset()
) -> socket.socket:
    """Answers CONNECT for every port but those in ``mute`` (held unanswered)."""
    held: list[socket.socket] = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            line = b""
            while not line.endswith(b"\n"):
                b = conn.recv(1)
                if not b:
                    break
                line += b
            port = int(line.split()[1])
            ports.append(port)
            if port in mute:
                held.append(conn)
                continue
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(str(agent_socket))
            conn.sendall(b"OK 77\n")
            threading.Thread(target=_pipe, args=(conn, up), daemon=True).start()
            threading.Thread(target=_pipe, args=(up, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_attach_vsock_runs_commands_through_the_handshake(tmp_path: Path, agent_socket: Path) -> None:
    ports: list[int] = []
    srv = _hybrid_stand_in(tmp_path / "vsock.sock", agent_socket, ports)
    try:
        with Sandbox.attach_vsock(tmp_path / "vsock.sock", timeout=10) as sb:
            assert sb.kind == "linux"
            out = sb.run(["echo", "through vsock"])
            assert out.stdout == b"through vsock\n"
        assert ports and all(p == 1024 for p in ports)
    finally:
        srv.close()


def test_connect_waits_its_timeout_for_a_port_nobody_accepts(tmp_path: Path, agent_socket: Path) -> None:
    ports: list[int] = []
    srv = _hybrid_stand_in(tmp_path / "vsock.sock", agent_socket, ports, mute=frozenset({5000}))
    try:
        # The sandbox's own answer timeout is 30 s: only the per-call one ends this in time.
        with Sandbox.attach_vsock(tmp_path / "vsock.sock", timeout=30) as sb:
            t = time.monotonic()
            with pytest.raises(kvmsandbox.Timeout):
                sb.connect(5000, timeout=0.3)
            assert time.monotonic() - t < 5
            with pytest.raises(kvmsandbox.Timeout):
                sb.connect(5000, timeout=0)
        assert 5000 in ports
    finally:
        srv.close()


def test_attach_vsock_without_a_vmm_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(kvmsandbox.AgentError):
        Sandbox.attach_vsock(tmp_path / "nobody.sock", timeout=1)
