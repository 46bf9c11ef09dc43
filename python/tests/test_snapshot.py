"""Snapshots from Python on the micro guest: snapshot (Busy while a stream is
open), restore in place, save/load and fork, bad files, per-call isolation
with a timeout that restores instead of killing."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvmsandbox
import wasm_modules as wm
from kvmsandbox import Sandbox, Snapshot


def test_snapshot_restore_and_busy(sandbox: Sandbox) -> None:
    stream = sandbox.connect(kvmsandbox.ECHO_PORT)
    with pytest.raises(kvmsandbox.Busy, match="1 stream"):
        sandbox.snapshot()
    stream.close()
    snap = sandbox.snapshot()
    assert snap.guest == "micro" and snap.vcpus == 1 and snap.memory_bytes == 64 << 20
    assert sandbox.run_wasm(wm.hello()).stdout == b"hello, world\n"
    sandbox.restore(snap)
    assert sandbox.ping() > 0


def test_save_load_fork_and_bad_files(sandbox: Sandbox, tmp_path: Path) -> None:
    snap = sandbox.snapshot()
    path = tmp_path / "s.snap"
    snap.save(path)
    loaded = Snapshot.load(path)
    with Sandbox.from_snapshot(loaded) as fork:
        assert fork.run_wasm(wm.hello()).stdout == b"hello, world\n"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(kvmsandbox.SnapshotError, match="checksum"):
        Snapshot.load(path)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(kvmsandbox.SnapshotError, match="truncated"):
        Snapshot.load(path)
    with pytest.raises(kvmsandbox.IoError):
        Snapshot.load(tmp_path / "missing.snap")
    with Sandbox(vcpus=2) as other, pytest.raises(kvmsandbox.SnapshotError, match="vCPU count"):
        other.restore(snap)


def test_call_isolation_timeout_restores(sandbox: Sandbox) -> None:
    sandbox.set_call_isolation(sandbox.snapshot())
    with pytest.raises(kvmsandbox.Timeout):
        sandbox.run_wasm(wm.infinite_loop(), timeout=2.0)
    assert not sandbox.closed
    assert sandbox.run_wasm(wm.hello()).stdout == b"hello, world\n"
    sandbox.set_call_isolation(None)
    assert sandbox.ping() > 0


def test_a_loaded_file_does_not_open_the_disks_it_names(tmp_path: Path) -> None:
    disk = tmp_path / "d.img"
    disk.write_bytes(bytes(1 << 20))
    with Sandbox(disks=[kvmsandbox.Disk(disk, read_only=True)]) as sb:
        sb.snapshot().save(tmp_path / "d.snap")
    loaded = Snapshot.load(tmp_path / "d.snap")
    with pytest.raises(kvmsandbox.SnapshotError, match="not opened"):
        Sandbox.from_snapshot(loaded)
    with Sandbox.from_snapshot(loaded, disks=[kvmsandbox.Disk(disk, read_only=True)]) as fork:
        assert fork.ping() > 0
