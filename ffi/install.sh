#!/usr/bin/env bash
# Installs the versioned shared library libkvmsandbox.so.MAJOR.MINOR.PATCH (SONAME
# libkvmsandbox.so.MAJOR, set by ffi/build.rs) with the symlinks
# libkvmsandbox.so.MAJOR and libkvmsandbox.so, the static libkvmsandbox.a,
# include/kvmsandbox.h and kvmsandbox.pc.
#
#   ffi/install.sh [PREFIX]              # default PREFIX=/usr/local
#   DESTDIR=/tmp/stage ffi/install.sh /usr   # staged install (packaging)
#   PROFILE=debug ffi/install.sh PREFIX  # install the debug build (tests)
#   NO_BUILD=1 ...                       # install what is already built
#   STATIC_ONLY=1 ...                    # no shared library: only the .a, header, .pc
#
# Then: cc app.c $(pkg-config --cflags --libs kvmsandbox)
#  (static: cc app.c $(pkg-config --static --cflags --libs kvmsandbox) against a
#   STATIC_ONLY prefix, or with -Wl,-Bstatic -lkvmsandbox -Wl,-Bdynamic when the
#   .so is installed beside the .a).
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

release=${version%%[-+]*}               # 0.1.0 of 0.1.0-rc.1
major=${release%%.*}
soname="libkvmsandbox.so.$major"

built="$target/$profile"
install -d "$destdir$libdir" "$destdir$prefix/include" "$destdir$libdir/pkgconfig"
if [ -z "${STATIC_ONLY:-}" ]; then
    # A library built before ffi/build.rs set the SONAME would install a name
    # programs cannot find at run time: refuse it.
    got=$(readelf -d "$built/libkvmsandbox.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$got" = "$soname" ] || { echo "$built/libkvmsandbox.so has SONAME '$got', wanted $soname (rebuild it)" >&2; exit 1; }
    install -m 0755 "$built/libkvmsandbox.so" "$destdir$libdir/libkvmsandbox.so.$release"
    ln -sfn "libkvmsandbox.so.$release" "$destdir$libdir/$soname"
    ln -sfn "$soname" "$destdir$libdir/libkvmsandbox.so"
fi
install -m 0644 "$built/libkvmsandbox.a" "$destdir$libdir/libkvmsandbox.a"
install -m 0644 "$root/include/kvmsandbox.h" "$destdir$prefix/include/kvmsandbox.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
    "$root/ffi/kvmsandbox.pc.in" > "$destdir$libdir/pkgconfig/kvmsandbox.pc"
echo "installed libkvmsandbox $version into $destdir$prefix"
