"""Fixtures: a micro-guest sandbox (needs /dev/kvm), the Linux agent running as
a host process, and the real Linux guest (our kernel, the agent as PID 1) booted
once per session under QEMU TCG — guest user space cannot run on PVM hosts, see
docs/linux-tcg.md — all driven through the same Python API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import kvmsandbox

REPO = Path(__file__).resolve().parents[2]

# Ray (tests/test_ray.py) keeps every address on loopback with this, set before
# any test module imports ray: its default advertises the machine's external address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
sys.path.insert(0, str(Path(__file__).parent))


def agent_binary() -> Path:
    """$KVMSANDBOX_AGENT, else target/debug/kvmsandbox-agent (cargo keeps it up to date)."""
    env = os.environ.get("KVMSANDBOX_AGENT")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "kvmsandbox-agent"
    subprocess.run(["cargo", "build", "-q", "-p", "kvmsandbox-agent"], cwd=REPO, check=True)
    return path


@pytest.fixture
def sandbox() -> Iterator[kvmsandbox.Sandbox]:
    with kvmsandbox.Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def agent_path() -> Path:
    return agent_binary()


@pytest.fixture
def agent_socket(tmp_path: Path, agent_path: Path) -> Iterator[Path]:
    """A running `kvmsandbox-agent --unix <sock>`; yields the socket path."""
    sock = tmp_path / "agent.sock"
    log = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen([str(agent_path), "--unix", str(sock)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent did not start: {(tmp_path / 'agent.log').read_text()!r}")
            time.sleep(0.01)
        yield sock
    finally:
        proc.kill()
        proc.wait()
        log.close()


@pytest.fixture
def agent(agent_socket: Path) -> Iterator[kvmsandbox.Sandbox]:
    with kvmsandbox.Sandbox.attach_host_agent(agent_socket) as sb:
        yield sb


def cargo_bin(name: str, package: str) -> Path:
    """target/debug/<name>, built by cargo (which keeps it up to date)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    subprocess.run(["cargo", "build", "-q", "-p", package], cwd=REPO, check=True)
    return target / "debug" / name


@pytest.fixture(scope="session")
def linux_guest_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real Linux guest under QEMU TCG, started once by `kvmsandbox-linux-tcg`
    (the harness of vhost/tests/linux_tcg.rs); yields its hybrid vsock socket.
    Needs `make linux-tcg` (QEMU, kernel, initramfs): a missing piece fails."""
    launcher = cargo_bin("kvmsandbox-linux-tcg", "kvmsandbox-vhost-vsock")
    log_path = tmp_path_factory.mktemp("linux-guest") / "launcher.log"
    with open(log_path, "wb") as log:
        # The guest lives until the launcher's stdin closes.
        proc = subprocess.Popen([str(launcher)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline().decode().strip()
            if not line:
                proc.wait(timeout=30)
                raise RuntimeError(f"the Linux guest did not start under QEMU TCG:\n{log_path.read_text()}")
            yield Path(line)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def linux_guest(linux_guest_socket: Path) -> Iterator[kvmsandbox.Sandbox]:
    """A sandbox attached to the session's Linux guest."""
    with kvmsandbox.Sandbox.attach_vsock(linux_guest_socket, timeout=60) as sb:
        yield sb
