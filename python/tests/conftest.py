"""Fixtures: a micro-guest sandbox (needs /dev/kvm) and the Linux agent running
as a host process (guest user space cannot run on the development machines,
see PLATFORM.md), driven through the same Python API."""

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
