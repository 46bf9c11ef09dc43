"""Preopened directories for WASM runs from the synchronous face: files in
(from a host directory or as bytes), files out (as data and written back),
read-only directories refusing writes, and the tree's caps (ENOSPC inside the
guest; contents over the cap refused before the run)."""

from __future__ import annotations

from pathlib import Path

import kvmsandbox
import wasm_modules as wm

DATA = bytes(range(256)) * 32  # 8 KiB


def test_files_in_from_a_host_directory_and_out_as_data_and_written_back(
    sandbox: kvmsandbox.Sandbox, tmp_path: Path
) -> None:
    src = tmp_path / "input"
    src.mkdir()
    (src / "in.txt").write_bytes(DATA)
    back = tmp_path / "back"
    r = sandbox.run_wasm(
        wm.copy_in_to_out(), dirs={"/in": src, "/out": {}}, read_only=["/in"], write_back={"/out": back}
    )
    assert (r.outcome, r.exit_code) == ("exit", 0), r
    assert r.files == {"/out": {"copy.txt": DATA}}
    assert (back / "copy.txt").read_bytes() == DATA
    # A copy went in, not a window onto the host: the source is as it was.
    assert sorted(p.name for p in src.iterdir()) == ["in.txt"]


def test_a_read_only_directory_refuses_the_write(sandbox: kvmsandbox.Sandbox) -> None:
    r = sandbox.run_wasm(
        wm.copy_in_to_out(), dirs={"/in": {"in.txt": DATA}, "/out": {}}, read_only=["/in", "/out"]
    )
    # Step 12 is creating copy.txt in /out: refused (EROFS), so nothing came out.
    assert (r.outcome, r.exit_code) == ("exit", 12), r
    assert "copy.txt" not in r.files.get("/out", {})


def test_caps_are_enospc_inside_and_contents_over_the_cap_are_refused(sandbox: kvmsandbox.Sandbox) -> None:
    dirs: dict[str, kvmsandbox.WasmDirSource] = {"/in": {"in.txt": DATA}, "/out": {}}
    r = sandbox.run_wasm(wm.copy_in_to_out(), dirs=dirs, read_only=["/in"], fs_max_bytes=12_000)
    # Step 13 is writing the copy: 8 KiB more does not fit a 12 000-byte tree.
    assert (r.outcome, r.exit_code) == ("exit", 13), r
    assert r.files["/out"]["copy.txt"] == b""
    r = sandbox.run_wasm(wm.copy_in_to_out(), dirs=dirs, read_only=["/in"], fs_max_bytes=4096)
    assert r.outcome == "error" and r.message is not None and "in.txt" in r.message, r
    assert sandbox.ping() > 0
