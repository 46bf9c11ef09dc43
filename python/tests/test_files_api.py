"""The files API (stat, list_dir, make_dir, remove, rename, streamed upload and
download) against the Linux agent running as a host process, and its refusal on a
micro guest."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import kvmsandbox
from kvmsandbox import FileInfo, Sandbox


def test_directories_and_descriptions(agent: Sandbox, tmp_path: Path) -> None:
    root = str(tmp_path)
    agent.make_dir(f"{root}/a/b", mode=0o750, parents=True)
    agent.make_dir(f"{root}/a/b", parents=True)  # exists: fine with parents
    with pytest.raises(kvmsandbox.AlreadyExists):
        agent.make_dir(f"{root}/a")
    with pytest.raises(FileNotFoundError):
        agent.make_dir(f"{root}/x/y")
    (tmp_path / "a" / "f.txt").write_bytes(b"hello")
    os.symlink("f.txt", tmp_path / "a" / "l")

    d = agent.stat(f"{root}/a/b")
    assert isinstance(d, FileInfo)
    assert (d.name, d.kind, d.mode, d.is_dir) == ("b", "dir", 0o750, True)
    f = agent.stat(f"{root}/a/f.txt")
    assert (f.kind, f.size, f.is_file) == ("file", 5, True)
    assert abs(f.modified - time.time()) < 60
    link = agent.stat(f"{root}/a/l", follow=False)
    assert (link.kind, link.link_target) == ("symlink", "f.txt")
    assert agent.stat(f"{root}/a/l").kind == "file"
    assert agent.exists(f"{root}/a/l") and not agent.exists(f"{root}/nope")
    with pytest.raises(kvmsandbox.NotFound) as e:
        agent.stat(f"{root}/nope")
    assert "nope" in str(e.value)

    names = sorted((e.name, e.kind) for e in agent.list_dir(f"{root}/a"))
    assert names == [("b", "dir"), ("f.txt", "file"), ("l", "symlink")]

    agent.rename(f"{root}/a/f.txt", f"{root}/a/g.txt")
    assert (tmp_path / "a" / "g.txt").read_bytes() == b"hello"
    with pytest.raises(kvmsandbox.KvmSandboxError):
        agent.remove(f"{root}/a")  # not empty
    agent.remove(f"{root}/a", recursive=True)
    assert not (tmp_path / "a").exists()


def test_upload_and_download_stream_large_files(agent: Sandbox, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    guest = str(tmp_path / "guest.bin")
    assert agent.upload(src, guest, mode=0o600) == len(data)
    info = agent.stat(guest)
    assert (info.size, info.mode) == (len(data), 0o600)
    back = tmp_path / "back.bin"
    assert agent.download(guest, back) == len(data)
    assert back.read_bytes() == data
    with pytest.raises(kvmsandbox.IoError, match="missing-local"):
        agent.upload(tmp_path / "missing-local", guest)
    with pytest.raises(FileNotFoundError):
        agent.download(str(tmp_path / "missing-guest"), back)


def test_micro_guest_has_no_files_api(sandbox: Sandbox) -> None:
    with pytest.raises(kvmsandbox.Unsupported):
        sandbox.list_dir("/")
    with pytest.raises(NotImplementedError):
        sandbox.stat("/")
