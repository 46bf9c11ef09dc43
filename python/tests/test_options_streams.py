"""Options of the Rust API from Python (seccomp policy, vsock path, agent
limits) and OutputStream as a context manager that stops its stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import AgentLimits, Sandbox


def test_leaving_a_stream_block_kills_the_command(agent: Sandbox) -> None:
    t = time.monotonic()
    with agent.stream(["sleep", "30"]) as s:
        pass
    r = s.wait()
    assert r.signal == 9 and not r.timed_out
    assert time.monotonic() - t < 5
    s.stop()  # idempotent once the exit was delivered
    assert agent.ping() > 0


def test_stopping_a_finished_stream_is_harmless(agent: Sandbox) -> None:
    with agent.stream(["echo", "hi"]) as s:
        assert s.wait().stdout == b"hi\n"
    assert agent.run(["true"]).exit_code == 0


def test_micro_guest_options(tmp_path: Path) -> None:
    sock = tmp_path / "vm.sock"
    limits = AgentLimits(max_output=4096, default_deadline=60.0)
    with Sandbox(seccomp="trap", vsock=sock, limits=limits) as sb:
        assert sb.vsock_path == str(sock) and sock.exists()
        got = sb.limits
        assert got.max_output == 4096 and got.default_deadline == 60.0
        assert got.max_stale_frames == 1024  # the core's default
        assert sb.ping() > 0


def test_agent_limits_apply_to_attached_sandboxes(agent_socket: Path) -> None:
    with Sandbox.attach_host_agent(agent_socket, limits=AgentLimits(max_output=100)) as sb:
        assert sb.vsock_path is None
        with pytest.raises(kvmsandbox.OutputLimit):
            sb.run(["head", "-c", "1000", "/dev/zero"])


def test_unknown_seccomp_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bogus"):
        Sandbox(seccomp="bogus")  # type: ignore[arg-type]
