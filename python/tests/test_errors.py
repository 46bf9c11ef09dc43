"""Each exception class for the bad input that produces it."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import Disk, Sandbox


def test_hierarchy() -> None:
    for cls in (kvmsandbox.ConfigError, kvmsandbox.BootError, kvmsandbox.Timeout, kvmsandbox.GuestError,
                kvmsandbox.Unsupported, kvmsandbox.AgentError, kvmsandbox.ConnectError, kvmsandbox.WasmTrap,
                kvmsandbox.OutOfFuel, kvmsandbox.WasmError, kvmsandbox.CommandError, kvmsandbox.SandboxClosed):
        assert issubclass(cls, kvmsandbox.KvmSandboxError) and cls.__module__ == "kvmsandbox"
    assert issubclass(kvmsandbox.KvmSandboxError, Exception)


def test_missing_kernel_is_a_config_error() -> None:
    with pytest.raises(kvmsandbox.ConfigError, match="kernel /nonexistent/vmlinux does not exist"):
        Sandbox.linux(kernel="/nonexistent/vmlinux")


def test_missing_initrd_is_a_config_error(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"\x7fELF" + b"\x00" * 60)
    with pytest.raises(kvmsandbox.ConfigError, match="initrd"):
        Sandbox.linux(kernel=kernel, initrd=tmp_path / "missing.cpio")


def test_bad_sizes_are_config_errors() -> None:
    with pytest.raises(kvmsandbox.ConfigError, match="vcpus = 0"):
        Sandbox(vcpus=0)
    with pytest.raises(kvmsandbox.ConfigError, match="memory = 0 MiB"):
        Sandbox(memory_mib=0)
    with pytest.raises(kvmsandbox.ConfigError, match="not an x86-64 ELF"):
        Sandbox(image="/etc/hostname")
    with pytest.raises(ValueError, match="start_timeout = -1"):
        Sandbox(start_timeout=-1)
    with pytest.raises(OverflowError):
        Sandbox(vcpus=-1)


def test_missing_disk_image_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(kvmsandbox.ConfigError, match="missing.raw"):
        Sandbox(disks=[Disk(tmp_path / "missing.raw")])


def test_kernel_that_is_not_a_kernel_fails_to_boot(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a kernel" * 100)
    with pytest.raises(kvmsandbox.BootError):
        Sandbox.linux(kernel=junk)


def test_unsupported_and_closed(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.Unsupported):
        sandbox.run("true")
    sandbox.close()
    with pytest.raises(kvmsandbox.SandboxClosed):
        sandbox.echo(b"x")


def test_nobody_listening_is_a_connect_error(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.ConnectError, match="port 4444"):
        sandbox.connect(4444).recv(1)


def test_no_agent_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(kvmsandbox.AgentError):
        Sandbox.attach_host_agent(tmp_path / "nobody.sock", timeout=1)


def test_guest_error_and_timeout_from_the_agent(agent: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(kvmsandbox.GuestError) as e:
        agent.read_file(str(tmp_path / "nope"))
    assert e.value.code == "not_found"
    with pytest.raises(kvmsandbox.Timeout):
        agent.run(["sleep", "10"], timeout=0.2, check=True)
    with pytest.raises(ValueError):
        agent.run([])
