#!/usr/bin/env bash
# Build the kvmsandbox guest kernel (vmlinux + bzImage) from Debian's linux-source-6.12,
# with `make tinyconfig` + config.fragment + our patches, and cache the result.
#
#   guest/kernel/build.sh            # prints the cache directory as the LAST stdout line
#
# Cache: ${KVMSANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvmsandbox}/kernel/<hash>/
# where <hash> = sha256 over (config.fragment, this script, patches/*, source version).
# The directory holds vmlinux, bzImage, .config and System.map. If it already has
# vmlinux and bzImage nothing is built. The build runs in a temporary directory next
# to it and the finished artifacts are renamed into place, so a killed build never
# leaves a half-filled cache entry; the source tree is deleted afterwards.
#
# All progress goes to stderr; stdout carries only the final directory.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC_PKG=linux-source-6.12
SRC_TARBALL=/usr/src/${SRC_PKG}.tar.xz
JOBS="$(nproc)"

log() { printf '[kernel] %s\n' "$*" >&2; }
die() { printf '[kernel] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. tools and source, installed with apt only when missing -----------------------
need_pkgs=()
dpkg-query -W -f='${Status}' "$SRC_PKG" 2>/dev/null | grep -q 'install ok installed' \
    || need_pkgs+=("$SRC_PKG")
for tool_pkg in make:make gcc:gcc flex:flex bison:bison bc:bc cpio:cpio xz:xz-utils lz4:lz4 \
                perl:perl openssl:openssl flock:util-linux; do
    command -v "${tool_pkg%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool_pkg#*:}")
done
for hdr_pkg in /usr/include/libelf.h:libelf-dev /usr/include/openssl/ssl.h:libssl-dev; do
    [ -e "${hdr_pkg%%:*}" ] || need_pkgs+=("${hdr_pkg#*:}")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing: ${need_pkgs[*]} (linux-source-6.12 comes from bookworm-security)"
    [ "$(id -u)" -eq 0 ] && SUDO="" || SUDO="sudo"
    $SUDO apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
        "${need_pkgs[@]}" build-essential >&2
fi
[ -f "$SRC_TARBALL" ] || die "$SRC_TARBALL missing although $SRC_PKG is installed"
SRC_VERSION="$(dpkg-query -W -f='${Version}' "$SRC_PKG")"

# --- 2. cache key ----------------------------------------------------------------------
shopt -s nullglob
PATCHES=("$HERE"/patches/*.patch)
shopt -u nullglob
HASH="$(
    {
        printf 'source %s %s\n' "$SRC_PKG" "$SRC_VERSION"
        for f in "$HERE/config.fragment" "$HERE/build.sh" "${PATCHES[@]}"; do
            printf 'file %s\n' "$(basename "$f")"
            cat "$f"
        done
    } | sha256sum | cut -c1-64
)"
CACHE_ROOT="${KVMSANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvmsandbox}/kernel"
OUT="$CACHE_ROOT/$HASH"
mkdir -p "$CACHE_ROOT"

have_cache() { [ -s "$OUT/vmlinux" ] && [ -s "$OUT/bzImage" ]; }
if have_cache; then
    log "cached: $OUT"
    echo "$OUT"
    exit 0
fi

# One build per hash at a time; a second caller waits, then finds the cache filled.
exec 9>"$CACHE_ROOT/$HASH.lock"
log "waiting for the build lock $CACHE_ROOT/$HASH.lock"
flock 9
if have_cache; then
    log "cached (built by another process): $OUT"
    echo "$OUT"
    exit 0
fi
rm -rf "$CACHE_ROOT/tmp.$HASH".* "$OUT"   # leftovers of a killed build
WORK="$(mktemp -d "$CACHE_ROOT/tmp.$HASH.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# --- 3. source + patches -----------------------------------------------------------------
log "extracting $SRC_TARBALL ($SRC_VERSION) into $WORK"
tar -xJf "$SRC_TARBALL" -C "$WORK"
KSRC="$WORK/$SRC_PKG"
[ -d "$KSRC" ] || die "tarball did not contain $SRC_PKG/"
for p in "${PATCHES[@]}"; do
    log "applying $(basename "$p")"
    patch -d "$KSRC" -p1 --forward --batch < "$p" >&2 || die "patch $(basename "$p") failed"
done

# --- 4. configuration ---------------------------------------------------------------------
kmake() { make -C "$KSRC" ARCH=x86_64 "$@" >&2; }
log "make tinyconfig + config.fragment + olddefconfig"
kmake tinyconfig
(cd "$KSRC" && ./scripts/kconfig/merge_config.sh -m .config "$HERE/config.fragment" >&2)
kmake olddefconfig

# Every assignment in the fragment must survive: Kconfig silently drops an option
# whose dependencies are unmet, and a missing driver only shows up at boot.
missing=0
while IFS= read -r line; do
    case "$line" in
        CONFIG_*=*)
            grep -qxF -- "$line" "$KSRC/.config" || {
                got="$(grep -E "^(# )?${line%%=*}[= ]" "$KSRC/.config" || echo 'absent')"
                log "config: wanted '$line', got '$got'"
                missing=1
            } ;;
        "# CONFIG_"*" is not set")
            opt="${line#\# }"; opt="${opt%% *}"
            if grep -qE "^${opt}=" "$KSRC/.config"; then
                log "config: wanted '$line', got '$(grep -E "^${opt}=" "$KSRC/.config")'"
                missing=1
            fi ;;
    esac
done < "$HERE/config.fragment"
[ "$missing" -eq 0 ] || die "the final .config does not match config.fragment (see above)"
log "config: all fragment options hold"

# --- 5. build -----------------------------------------------------------------------------
log "building vmlinux + bzImage with -j$JOBS (progress: one line per compiled file)"
start=$SECONDS
kmake -j"$JOBS" vmlinux bzImage
log "built in $((SECONDS - start)) s"

# --- 6. publish atomically ------------------------------------------------------------------
STAGE="$WORK/out"
mkdir "$STAGE"
cp "$KSRC/vmlinux" "$STAGE/vmlinux"
cp "$KSRC/arch/x86/boot/bzImage" "$STAGE/bzImage"
cp "$KSRC/.config" "$STAGE/.config"
cp "$KSRC/System.map" "$STAGE/System.map"
printf '%s %s\n' "$SRC_PKG" "$SRC_VERSION" > "$STAGE/SOURCE"
mv "$STAGE" "$OUT"          # same file system: an atomic rename
log "done: $(du -sh "$OUT" | cut -f1) in $OUT (source tree removed)"
echo "$OUT"
