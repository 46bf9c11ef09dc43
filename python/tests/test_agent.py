"""Commands and files through the Linux agent, running as a host process (the
same protocol a Linux guest's PID 1 speaks), through the same Python API."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import CompletedProcess, Sandbox


def test_run_collects_output_and_exit_code(agent: Sandbox) -> None:
    assert agent.kind == "host_agent"
    assert agent.ping() > 0
    r = agent.run(["echo", "hello"])
    assert isinstance(r, CompletedProcess)
    assert (r.exit_code, r.signal, r.stdout, r.stderr) == (0, None, b"hello\n", b"")
    assert r.text == "hello\n" and r.returncode == 0 and r.pid > 0
    r = agent.run("echo out; echo err >&2; exit 7")
    assert (r.exit_code, r.stdout_text, r.stderr_text) == (7, "out\n", "err\n")
    assert r.args == ["/bin/sh", "-c", "echo out; echo err >&2; exit 7"]


def test_check_and_check_returncode(agent: Sandbox) -> None:
    with pytest.raises(kvmsandbox.CommandError, match="exit code 3") as e:
        agent.run("exit 3", check=True)
    assert e.value.result.exit_code == 3
    r = agent.run("exit 3")
    with pytest.raises(kvmsandbox.CommandError):
        r.check_returncode()
    assert agent.run("true", check=True).returncode == 0


def test_signal_is_reported(agent: Sandbox) -> None:
    r = agent.run("kill -9 $$")
    assert r.exit_code is None and r.signal == signal.SIGKILL and r.returncode == -9
    with pytest.raises(kvmsandbox.CommandError, match="signal 9"):
        r.check_returncode()


def test_env_cwd_stdin(agent: Sandbox, tmp_path: Path) -> None:
    assert agent.run("echo $FOO", env={"FOO": "bar", "PATH": "/usr/bin:/bin"}).stdout == b"bar\n"
    assert agent.run(["env"]).stdout == b""  # the documented default: an empty environment
    assert agent.run(["pwd"], cwd=str(tmp_path)).stdout == f"{tmp_path}\n".encode()
    data = bytes(range(256)) * 1000
    assert agent.run(["cat"], stdin=data).stdout == data


def test_timeout_kills_and_raises_only_with_check(agent: Sandbox) -> None:
    r = agent.run(["sleep", "30"], timeout=0.3)
    assert r.timed_out and r.exit_code is None
    with pytest.raises(kvmsandbox.Timeout) as e:
        agent.run(["sleep", "30"], timeout=0.3, check=True)
    assert e.value.result is not None and e.value.result.timed_out


def test_stream_in_order_with_interactive_stdin(agent: Sandbox) -> None:
    s = agent.stream(["sh", "-c", "echo start; read a; echo got $a; read b; echo got $b; echo bye >&2; exit 2"])
    assert s.pid is not None and s.pid > 0
    assert next(s) == ("stdout", b"start\n")
    s.write_stdin(b"one\n")
    assert next(s) == ("stdout", b"got one\n")
    s.write_stdin(b"two\n")
    rest = list(s)
    # stdout and stderr are separate pipes: order holds within a stream, not across.
    assert [p for k, p in rest if k == "stdout"] == [b"got two\n"]
    assert [p for k, p in rest if k == "stderr"] == [b"bye\n"]
    kind, result = rest[-1]
    assert kind == "exit" and isinstance(result, CompletedProcess)
    assert result.exit_code == 2 and result.stdout == b"start\ngot one\ngot two\n" and result.stderr == b"bye\n"
    assert s.result is result
    with pytest.raises(BrokenPipeError):
        s.write_stdin(b"after the end")


def test_stream_close_stdin_gives_eof(agent: Sandbox) -> None:
    import threading
    s = agent.stream(["cat"])
    s.write_stdin(b"x")
    assert next(s) == ("stdout", b"x")
    s.close_stdin()
    done = threading.Event()
    t = threading.Thread(target=lambda: (s.wait(), done.set()), daemon=True)
    t.start()
    assert done.wait(5), "cat never saw end of file"
    assert s.result is not None and s.result.exit_code == 0


def test_stream_wait_and_check(agent: Sandbox) -> None:
    assert agent.stream("seq 1 1000", stdin=b"").wait().stdout == b"".join(b"%d\n" % i for i in range(1, 1001))
    with pytest.raises(kvmsandbox.CommandError):
        agent.stream("exit 1", check=True).wait()


def test_files_round_trip(agent: Sandbox, tmp_path: Path) -> None:
    path = str(tmp_path / "f.bin")
    data = os.urandom(1 << 20)
    assert agent.write_file(path, data) == len(data)
    assert agent.read_file(path) == data
    assert Path(path).read_bytes() == data
    agent.write_file(path, b"#!/bin/sh\necho script\n", mode=0o755)
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert agent.run([path]).stdout == b"script\n"


def test_missing_file_is_a_guest_error_with_code(agent: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(kvmsandbox.GuestError) as e:
        agent.read_file(str(tmp_path / "missing"))
    assert e.value.code == "not_found"
    assert "missing" in str(e.value)


def test_host_agent_has_no_vsock(agent: Sandbox) -> None:
    with pytest.raises(kvmsandbox.Unsupported, match="connect"):
        agent.connect(kvmsandbox.ECHO_PORT)
    assert agent.boot_timings == {}
