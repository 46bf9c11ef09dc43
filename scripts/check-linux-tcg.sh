#!/usr/bin/env bash
# Checks that everything the Linux-guest-under-QEMU-TCG tests need is in place
# (vhost/tests/linux_tcg.rs; docs/linux-tcg.md), so a missing piece stops
# `make test` here with what to do, not as a test failure deep in the run.
set -euo pipefail
fail() { printf 'linux-tcg: %s\n' "$*" >&2; exit 1; }

command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing: run make qemu"
qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vhost-user-vsock-device"' \
    || fail "this QEMU has no vhost-user-vsock-device (need QEMU >= 7.2 from bookworm-backports: make qemu)"
for tool in busybox mkfs.ext4 e2fsck debugfs; do
    command -v "$tool" >/dev/null || fail "$tool missing: run make deps"
done
# A dynamic busybox would find no libc in the guest (it has no program interpreter).
if readelf -l "$(readlink -f "$(command -v busybox)")" | grep -q 'INTERP'; then
    fail "busybox is not static: install busybox-static (make deps)"
fi
[ -f build/kernel-dir ] && [ -f "$(cat build/kernel-dir)/vmlinux" ] || fail "no kernel: run make kernel"
[ -f build/linux/initramfs.cpio ] || fail "no initramfs: run make linux-guest"
printf 'linux-tcg: ready (%s)\n' "$(qemu-system-x86_64 --version | head -1)" >&2
