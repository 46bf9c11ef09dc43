"""The Linux-guest API: boot a kernel with the kvmsandbox agent as init, run
commands, move files.

    python examples/python/linux_api.py [--kernel vmlinux --initrd initrd.cpio]
                                        [--host-agent /path/to/agent.sock]

On hardware KVM, pass a kernel and initrd (`make kernel` builds them) and the
commands run inside the VM. On the development machines (nested PVM, see
docs/platform.md) Linux user space cannot run in a guest, so without a kernel
this shows the configuration error you get, and with --host-agent it drives the
same agent running as a host process (`kvmsandbox-agent --unix PATH`: no
isolation, for development only). It exits 0 in every case.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import kvmsandbox
from kvmsandbox import Disk, Sandbox


def demo(sb: Sandbox, workdir: str) -> None:
    print(f"sandbox kind: {sb.kind}, ping {sb.ping() * 1e3:.2f} ms")
    r = sb.run(["uname", "-sr"])
    print(f"uname: exit {r.exit_code}: {r.stdout_text.strip()}")
    r = sb.run("echo to stdout; echo to stderr >&2; exit 3")
    print(f"shell: exit {r.exit_code}, stdout {r.stdout!r}, stderr {r.stderr!r}")
    sb.write_file(f"{workdir}/hello.txt", b"written from Python\n")
    print(f"read back: {sb.read_file(f'{workdir}/hello.txt')!r}")
    for kind, data in sb.stream(["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done"]):
        print(f"  streamed {kind}: {data!r}")
    try:
        sb.run(["sleep", "5"], timeout=0.5, check=True)
    except kvmsandbox.Timeout as e:
        print(f"timeout: {e}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel", default="/nonexistent/vmlinux")
    p.add_argument("--initrd")
    p.add_argument("--disk", action="append", default=[])
    p.add_argument("--host-agent", help="socket of a kvmsandbox-agent running on this host")
    a = p.parse_args()

    if a.host_agent:
        with Sandbox.attach_host_agent(a.host_agent) as sb, tempfile.TemporaryDirectory() as d:
            demo(sb, d)
        return 0

    print(f"booting Linux: kernel={a.kernel} initrd={a.initrd} disks={a.disk}")
    try:
        with Sandbox.linux(
            kernel=a.kernel,
            initrd=a.initrd,
            disks=[Disk(d, read_only=True) for d in a.disk],
            vcpus=1,
            memory_mib=256,
        ) as sb:
            demo(sb, "/tmp")
    except kvmsandbox.ConfigError as e:
        print(f"ConfigError (expected without a kernel): {e}")
    except (kvmsandbox.BootError, kvmsandbox.GuestError, kvmsandbox.AgentError) as e:
        # What this host's PVM KVM gives: the kernel boots, its init cannot run.
        print(f"{type(e).__name__} (expected where guest user space cannot run): {str(e).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
