"""The Python API against the REAL Linux guest: our kernel with kvmsandbox-agent
as PID 1 under QEMU TCG, our virtio-vsock device served over vhost-user, reached
through Sandbox.attach_vsock (one boot per session, see conftest.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import CompletedProcess, Sandbox


def test_it_is_the_linux_guest(linux_guest: Sandbox) -> None:
    assert linux_guest.kind == "linux"
    assert linux_guest.ping() > 0
    r = linux_guest.run("cat /proc/1/comm; uname -s")
    assert r.stdout == b"init\nLinux\n"


def test_exit_code_stdout_stderr(linux_guest: Sandbox) -> None:
    r = linux_guest.run("echo out; printf 'e\\000rr' >&2; exit 42")
    assert isinstance(r, CompletedProcess)
    assert (r.exit_code, r.signal, r.stdout, r.stderr) == (42, None, b"out\n", b"e\x00rr")
    assert r.pid > 1
    with pytest.raises(kvmsandbox.CommandError, match="exit code 42"):
        r.check_returncode()


def test_signal_env_cwd(linux_guest: Sandbox) -> None:
    r = linux_guest.run("kill -TERM $$; sleep 5")
    assert r.exit_code is None and r.signal == signal.SIGTERM
    env = {"PATH": "/bin:/sbin:/usr/bin:/usr/sbin", "GREETING": "hello world"}
    assert sorted(linux_guest.run(["env"], env=env).stdout.splitlines()) == [b"GREETING=hello world", b"PATH=/bin:/sbin:/usr/bin:/usr/sbin"]
    assert linux_guest.run(["pwd"], cwd="/tmp").stdout == b"/tmp\n"


def test_binary_stdin_round_trip(linux_guest: Sandbox) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    r = linux_guest.run(["cat"], stdin=data)
    assert r.exit_code == 0 and r.stdout == data


def test_file_write_and_read(linux_guest: Sandbox) -> None:
    data = bytes((i * 7) & 0xFF for i in range(300_000))
    assert linux_guest.write_file("/tmp/py-test.bin", data, mode=0o640) == len(data)
    assert linux_guest.read_file("/tmp/py-test.bin") == data
    assert linux_guest.run("stat -c '%a %s' /tmp/py-test.bin").stdout == b"640 300000\n"
    with pytest.raises(kvmsandbox.GuestError) as e:
        linux_guest.read_file("/tmp/no-such-file")
    assert e.value.code == "not_found" and "/tmp/no-such-file" in str(e.value)


def test_files_api_on_the_real_guest(linux_guest: Sandbox, tmp_path: Path) -> None:
    linux_guest.make_dir("/tmp/fsapi/sub", parents=True, mode=0o700)
    src = tmp_path / "up.bin"
    data = bytes((i * 13) & 0xFF for i in range(1_200_000))
    src.write_bytes(data)
    assert linux_guest.upload(src, "/tmp/fsapi/up.bin") == len(data)
    assert sorted((e.name, e.kind) for e in linux_guest.list_dir("/tmp/fsapi")) == [
        ("sub", "dir"),
        ("up.bin", "file"),
    ]
    assert linux_guest.stat("/tmp/fsapi/sub").mode == 0o700
    linux_guest.rename("/tmp/fsapi/up.bin", "/tmp/fsapi/moved.bin")
    back = tmp_path / "down.bin"
    assert linux_guest.download("/tmp/fsapi/moved.bin", back) == len(data)
    assert back.read_bytes() == data
    linux_guest.remove("/tmp/fsapi", recursive=True)
    assert not linux_guest.exists("/tmp/fsapi")


def test_timeout_kills_the_process_group(linux_guest: Sandbox) -> None:
    with pytest.raises(kvmsandbox.Timeout) as e:
        linux_guest.run("sleep 1000 & sleep 1000", timeout=1, check=True)
    assert e.value.result is not None and e.value.result.timed_out
    assert linux_guest.run("ps -o comm | grep -c '^sleep$' || true").stdout == b"0\n"


def test_command_not_found(linux_guest: Sandbox) -> None:
    with pytest.raises(kvmsandbox.GuestError) as e:
        linux_guest.run(["no-such-command"])
    assert e.value.code == "not_found" and "no-such-command" in str(e.value)
    assert linux_guest.run("no-such-command").exit_code == 127


def test_output_streams_before_exit(linux_guest: Sandbox) -> None:
    # The command cannot finish before it reads the line we send only after its
    # first output arrived: output held back until exit would end in the
    # command's timeout and a failed write, not in a pass.
    s = linux_guest.stream("echo first; read x; echo second $x >&2", timeout=60)
    assert next(s) == ("stdout", b"first\n")
    s.write_stdin(b"after\n")
    rest = list(s)
    assert [p for k, p in rest if k == "stderr"] == [b"second after\n"]
    kind, result = rest[-1]
    assert kind == "exit" and isinstance(result, CompletedProcess) and result.exit_code == 0


def test_interactive_stdin_stream(linux_guest: Sandbox) -> None:
    s = linux_guest.stream(["sh", "-c", "read a; echo got $a; read b; echo got $b"])
    s.write_stdin(b"one\n")
    assert next(s) == ("stdout", b"got one\n")
    s.write_stdin(b"two\n")
    assert next(s) == ("stdout", b"got two\n")
    assert s.wait().exit_code == 0
