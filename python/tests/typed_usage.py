"""Not a test: typical use, checked by `mypy --strict` against the stubs."""

from __future__ import annotations

import socket

import kvmsandbox
from kvmsandbox import CompletedProcess, Disk, OutputStream, Sandbox, WasmResult


def wasm(module: bytes) -> tuple[int | None, str]:
    with Sandbox(disks=[Disk("/tmp/x.raw", read_only=True)], vcpus=1) as sb:
        try:
            r: WasmResult = sb.run_wasm(module, args=["m"], env={"A": "b"}, fuel=10, timeout=1.5)
        except kvmsandbox.WasmTrap as e:
            r = e.result
        stream: OutputStream[WasmResult] = sb.run_wasm_stream(module)
        for kind, payload in stream:
            if isinstance(payload, bytes):
                print(kind, len(payload))
        timings: dict[str, float] = sb.boot_timings
        s: socket.socket = sb.connect(kvmsandbox.ECHO_PORT)
        s.close()
        data: bytes = sb.disk_read(0, 0, 512)
        sb.disk_write(0, 0, data)
        sb.disk_flush()
        print(timings, sb.ping())
        return r.exit_code, r.stdout_text


def commands(path: str) -> CompletedProcess:
    with Sandbox.attach_host_agent(path, timeout=5) as sb:
        r = sb.run(["ls"], env={"PATH": "/bin"}, cwd="/", stdin=b"", timeout=2.0)
        r.check_returncode()
        sb.write_file("/tmp/f", b"x", mode=0o600)
        assert sb.read_file("/tmp/f") == b"x"
        try:
            sb.run("false", check=True)
        except kvmsandbox.CommandError as e:
            print(e.result)
        except kvmsandbox.GuestError as e:
            print(e.code)
        return sb.stream("echo hi").wait()


def linux() -> None:
    with Sandbox.linux(kernel="vmlinux", initrd="initrd", cmdline="quiet", memory_mib=256) as sb:
        assert sb.kind in ("linux", "micro", "host_agent")
        sb.shutdown()
