#!/usr/bin/env bash
# Build an uncompressed newc initramfs for the kvmsandbox guest kernel.
#
#   guest/kernel/mkinitramfs.sh <out.cpio> <init-binary> [extra-file[:/guest/path]]...
#
# The archive holds /init (the given binary or script, mode 0755), the directories
# /dev /proc /sys /tmp /bin, and the /dev/console character device (5,1) the kernel
# opens for init's stdin/stdout before devtmpfs is mounted. Extra files are copied
# to /<basename> or to the guest path after a colon (e.g. busybox:/bin/busybox).
# A static busybox placed at /bin/busybox also gets a symlink for each of its
# applets (`busybox --list-full`: /bin/sh, /usr/bin/env...), so commands such as
# `sh -c` work in the guest; paths that already exist (e.g. /init) are kept.
# The kernel is built without any RD_* decompressor (see config.fragment), so the
# archive stays uncompressed. Needs `cpio`, and root (or CAP_MKNOD) for the
# /dev/console node: with an initramfs the kernel opens /dev/console before anything
# mounts devtmpfs, so the node must be in the archive.
set -euo pipefail

die() { printf 'mkinitramfs: %s\n' "$*" >&2; exit 1; }
[ "$#" -ge 2 ] || die "usage: $0 <out.cpio> <init-binary> [extra-file[:/guest/path]]..."
out="$1"; init="$2"; shift 2
[ -f "$init" ] || die "init binary '$init' not found"
command -v cpio >/dev/null || die "cpio not installed (apt-get install cpio)"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{dev,proc,sys,tmp,bin}
chmod 1777 "$root/tmp"
cp "$init" "$root/init"
chmod 0755 "$root/init"
for extra in "$@"; do
    src="${extra%%:*}"
    if [ "$src" != "$extra" ]; then dst="${extra#*:}"; else dst="/$(basename "$src")"; fi
    [ -f "$src" ] || die "extra file '$src' not found"
    mkdir -p "$root$(dirname "$dst")"
    cp -p "$src" "$root$dst"
done
if [ -x "$root/bin/busybox" ]; then
    # The applet list comes from the binary itself (static, so it runs on the host).
    "$root/bin/busybox" --list-full | while read -r applet; do
        [ -n "$applet" ] && [ ! -e "$root/$applet" ] && [ ! -L "$root/$applet" ] || continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -s /bin/busybox "$root/$applet"
    done
fi

if ! mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null; then
    die "cannot create /dev/console (need root or CAP_MKNOD)"
fi

tmp_out="$out.tmp.$$"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0) > "$tmp_out"
mv "$tmp_out" "$out"
printf 'mkinitramfs: wrote %s (%s bytes)\n' "$out" "$(stat -c %s "$out")" >&2
