"""The Python face of the one error model (docs/errors.md): every error kind's
class is the one the table names, with the table's bases, and the failures the
faces used to disagree on now raise the kind the C API returns."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import Disk, Sandbox
from kvmsandbox import _kvmsandbox as native

# The C status of each kind, as the C face returns it (ffi/src/status.rs checks
# the same names against the same table on its side).
C_STATUS = {
    "Config": "KVMSB_STATUS_CONFIG",
    "InvalidArgument": "KVMSB_STATUS_INVALID_ARGUMENT",
    "KvmUnavailable": "KVMSB_STATUS_KVM_UNAVAILABLE",
    "Boot": "KVMSB_STATUS_BOOT_FAILED",
    "StartTimeout": "KVMSB_STATUS_START_TIMEOUT",
    "GuestPanic": "KVMSB_STATUS_GUEST_PANIC",
    "GuestCrashed": "KVMSB_STATUS_GUEST_CRASHED",
    "Timeout": "KVMSB_STATUS_TIMEOUT",
    "Agent": "KVMSB_STATUS_AGENT",
    "NotFound": "KVMSB_STATUS_NOT_FOUND",
    "PermissionDenied": "KVMSB_STATUS_PERMISSION_DENIED",
    "Unsupported": "KVMSB_STATUS_UNSUPPORTED",
    "Io": "KVMSB_STATUS_IO",
    "Connection": "KVMSB_STATUS_CONNECT",
    "Seccomp": "KVMSB_STATUS_SECCOMP",
    "AlreadyExists": "KVMSB_STATUS_ALREADY_EXISTS",
    "Stopped": "KVMSB_STATUS_STOPPED",
    "OutputLimit": "KVMSB_STATUS_OUTPUT_LIMIT",
    "GuestError": "KVMSB_STATUS_GUEST_ERROR",
    "Busy": "KVMSB_STATUS_BUSY",
    "Snapshot": "KVMSB_STATUS_SNAPSHOT",
}

# The builtin each kind's class must also be (the list, plus the obvious ones).
BUILTIN = {
    "Timeout": TimeoutError,
    "StartTimeout": TimeoutError,
    "Connection": ConnectionError,
    "NotFound": FileNotFoundError,
    "PermissionDenied": PermissionError,
    "AlreadyExists": FileExistsError,
    "Unsupported": NotImplementedError,
    "InvalidArgument": ValueError,
    "Io": OSError,
}


def test_every_kind_has_its_class_and_status() -> None:
    kinds = native._error_kinds()
    assert [k for k, _, _ in kinds] == list(C_STATUS), "a kind was added or renamed: update C_STATUS"
    classes = set()
    for kind, status, cls in kinds:
        assert status == C_STATUS[kind], kind
        assert getattr(kvmsandbox, cls.__name__) is cls, kind
        assert cls.__name__ in kvmsandbox.__all__, kind
        assert cls.__module__ == "kvmsandbox", kind
        assert issubclass(cls, kvmsandbox.KvmSandboxError), kind
        if kind in BUILTIN:
            assert issubclass(cls, BUILTIN[kind]), kind
        classes.add(cls)
    assert len(classes) == len(kinds), "two kinds share a class"


def test_classes_can_be_raised_and_caught_as_builtins() -> None:
    with pytest.raises(TimeoutError):
        raise kvmsandbox.Timeout("late")
    with pytest.raises(FileNotFoundError) as e:
        raise kvmsandbox.NotFound("gone")
    assert str(e.value) == "gone" and e.value.code is None
    with pytest.raises(kvmsandbox.BootError):
        raise kvmsandbox.StartTimeout("never ready")
    with pytest.raises(kvmsandbox.GuestCrashed):
        raise kvmsandbox.GuestPanic("Kernel panic")


def test_a_panic_and_enoent_are_different_classes() -> None:
    assert not issubclass(kvmsandbox.GuestPanic, kvmsandbox.GuestError)
    assert not issubclass(kvmsandbox.NotFound, kvmsandbox.GuestCrashed)


def test_missing_disk_image_is_a_config_error_as_in_c(tmp_path: Path) -> None:
    with pytest.raises(kvmsandbox.ConfigError, match="missing.raw"):
        Sandbox(disks=[Disk(tmp_path / "missing.raw")])


def test_agent_reported_errors_have_their_kind_and_code(agent: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        agent.read_file(str(tmp_path / "nope"))
    assert type(e.value) is kvmsandbox.NotFound and e.value.code == "not_found"
    assert isinstance(e.value, kvmsandbox.GuestError)


def test_unsupported_is_not_implemented(sandbox: Sandbox) -> None:
    with pytest.raises(NotImplementedError):
        sandbox.run("true")


def test_refused_connection_is_a_connection_error(sandbox: Sandbox) -> None:
    with pytest.raises(ConnectionError, match="port 4444"):
        sandbox.connect(4444).recv(1)
