#!/usr/bin/env bash
# Installs what the real-server tests need beyond Python packages: Dovecot (IMAP, LMTP, Sieve)
# and PostgreSQL. Idempotent: does nothing when both are already there. The tests start their
# own private Dovecot and PostgreSQL on loopback, so the system services are never started
# (policy-rc.d forbids it).
set -euo pipefail

PACKAGES=(dovecot-imapd dovecot-lmtpd dovecot-sieve postgresql)
MANUAL="install them by hand: sudo apt-get install ${PACKAGES[*]}"
MANUAL+=" (any OS: Dovecot 2.3+ with Pigeonhole; PostgreSQL 13+ with initdb)"

have_dovecot() {
    command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]
}

have_postgres() {
    command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

have_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

if have_dovecot && have_postgres && { ! command -v dpkg-query >/dev/null 2>&1 || have_packages; }; then
    version=$(dovecot --version 2>/dev/null || /usr/sbin/dovecot --version 2>/dev/null || true)
    echo "install-test-deps: dovecot (${version:-unknown version}) and postgresql already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get on this machine; ${MANUAL}" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install-test-deps: need root or password-less sudo; ${MANUAL}" >&2
    exit 1
fi

# Keep the package's maintainer scripts from starting the system-wide dovecot: exit code
# 101 means "action forbidden" to invoke-rc.d. Removed afterwards unless it was there before.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    CREATED_POLICY=1
fi
cleanup() {
    if [ "$CREATED_POLICY" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT

APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)  # env: sudo resets the environment
if ! "${APT[@]}" update -qq \
    || ! "${APT[@]}" install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; then
    echo "install-test-deps: apt-get could not install ${PACKAGES[*]}; ${MANUAL}" >&2
    exit 1
fi

if ! have_dovecot || ! have_postgres; then
    echo "install-test-deps: packages installed but no dovecot or initdb binary found; ${MANUAL}" >&2
    exit 1
fi
version=$(dovecot --version 2>/dev/null || /usr/sbin/dovecot --version 2>/dev/null || true)
echo "install-test-deps: installed ${PACKAGES[*]} (${version:-unknown version})"
