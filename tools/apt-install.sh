#!/bin/sh
# Installs Debian packages for the project's tests and benches: `sh tools/apt-install.sh PACKAGE...`.
# Uses apt-get (Debian/Ubuntu) as root or through password-less sudo; otherwise says what to run and fails.
# Services the packages would start (nginx, haproxy) are kept from starting: only the binaries are wanted.
set -eu

[ "$#" -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-install: no apt-get here; install with your package manager: $*" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "apt-install: not root and no password-less sudo; run: sudo apt-get install -y $*" >&2
    exit 1
fi
# A Debian package starts its service (a system nginx on port 80, a system haproxy) unless policy-rc.d says
# no; forbid service starts for the duration of the install when no policy is in place.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ADDED_POLICY=1
fi
trap '[ -n "$ADDED_POLICY" ] && $SUDO rm -f "$POLICY"' EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q "$@"
