#!/usr/bin/env bash
# Install qemu-system-x86 from Debian bookworm-backports (idempotent).
#
# Why backports: this machine already has qemu-utils 10.0 from bookworm-backports,
# which conflicts with bookworm's qemu-system-x86 7.2. We add the backports suite with
# the same mirror as the existing bookworm entry (the machine's own apt sources; there is
# no built-in fallback) and install from it. kvmsandbox itself does not need QEMU: the
# comparison benchmark, the PVH boot test and the Linux guest tests under TCG
# (docs/linux-tcg.md) do.
set -euo pipefail
log() { printf '[qemu] %s\n' "$*" >&2; }

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
    log "already installed: $(qemu-system-x86_64 --version | head -1)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] && SUDO="" || SUDO="sudo"

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The mirror of the existing bookworm entry (deb822 "URIs:" or one-line "deb").
    # deb822 files are stanzas separated by blank lines, with URIs: before or after
    # Suites:, so read whole stanzas and take the first URI of one listing bookworm.
    mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^[[:space:]]*$/ { if (suite && uri) { print uri; exit } suite = 0; uri = ""; next }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
        END { if (suite && uri) print uri }' | head -1 || true)"
    if [ -z "$mirror" ]; then
        mirror="$(grep -rhs -E '^deb[[:space:]].*[[:space:]]bookworm[[:space:]]' \
                  /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                  | awk '{print $2}' | head -1 || true)"
    fi
    if [ -z "$mirror" ]; then
        log "no bookworm entry in /etc/apt/sources.list or /etc/apt/sources.list.d/: cannot tell"
        log "which mirror to take bookworm-backports from; add a bookworm-backports source and rerun"
        exit 1
    fi
    log "adding bookworm-backports from $mirror"
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
$SUDO apt-get update >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    -t bookworm-backports qemu-system-x86 >&2
log "installed: $(qemu-system-x86_64 --version | head -1)"
