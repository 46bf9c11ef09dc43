#!/usr/bin/env bash
# Installs libkvmsandbox.{so,a}, include/kvmsandbox.h and kvmsandbox.pc.
#
#   ffi/install.sh [PREFIX]              # default PREFIX=/usr/local
#   DESTDIR=/tmp/stage ffi/install.sh /usr   # staged install (packaging)
#   PROFILE=debug ffi/install.sh PREFIX  # install the debug build (tests)
#   NO_BUILD=1 ...                       # install what is already built
#
# Then: cc app.c $(pkg-config --cflags --libs kvmsandbox)
#  (static: cc app.c $(pkg-config --static --cflags --libs kvmsandbox) -Wl,-Bstatic ... or
#   link $PREFIX/lib/libkvmsandbox.a with the Libs.private list).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
destdir=${DESTDIR:-}
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-$root/target}
libdir="$prefix/lib"

if [ -z "${NO_BUILD:-}" ]; then
    flag=(); [ "$profile" = release ] && flag=(--release)
    "${CARGO:-cargo}" build --manifest-path "$root/Cargo.toml" -p kvmsandbox-ffi "${flag[@]}"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "cannot read the workspace version from $root/Cargo.toml" >&2; exit 1; }

built="$target/$profile"
install -d "$destdir$libdir" "$destdir$prefix/include" "$destdir$libdir/pkgconfig"
install -m 0755 "$built/libkvmsandbox.so" "$destdir$libdir/libkvmsandbox.so"
install -m 0644 "$built/libkvmsandbox.a" "$destdir$libdir/libkvmsandbox.a"
install -m 0644 "$root/include/kvmsandbox.h" "$destdir$prefix/include/kvmsandbox.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
    "$root/ffi/kvmsandbox.pc.in" > "$destdir$libdir/pkgconfig/kvmsandbox.pc"
echo "installed libkvmsandbox $version into $destdir$prefix"
