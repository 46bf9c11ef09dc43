#!/usr/bin/env bash
# Install qemu-system-x86 from Debian bookworm-backports (idempotent).
#
# Why backports: this machine already has qemu-utils 10.0 from bookworm-backports,
# which conflicts with bookworm's qemu-system-x86 7.2. We add the backports suite with
# the same mirror as the existing bookworm entry and install from it. QEMU is only
# used to check that the guest kernel boots (-M microvm); kvmsandbox does not need it.
set -euo pipefail
log() { printf '[qemu] %s\n' "$*" >&2; }

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
    log "already installed: $(qemu-system-x86_64 --version | head -1)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] && SUDO="" || SUDO="sudo"

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The mirror of the existing bookworm entry (deb822 "URIs:" or one-line "deb").
    mirror="$(grep -rhs -A3 -E '^Suites:.*\bbookworm\b' /etc/apt/sources.list.d/*.sources \
              | sed -n 's/^URIs:[[:space:]]*//p' | head -1 || true)"
    if [ -z "$mirror" ]; then
        mirror="$(grep -rhs -E '^deb[[:space:]].*[[:space:]]bookworm[[:space:]]' \
                  /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                  | awk '{print $2}' | head -1 || true)"
    fi
    mirror="${mirror:-http://deb.debian.org/debian}"
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
