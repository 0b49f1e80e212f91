#!/bin/sh
# Installs the tools `make bench` and `make testssl` need (nginx, wrk, ab, testssl.sh) when any is missing.
# Uses apt-get (Debian/Ubuntu) as root or through sudo; otherwise says what to install and fails.
set -eu

PACKAGES="nginx-light wrk apache2-utils testssl.sh"

missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v ab >/dev/null 2>&1 || missing="$missing ab"
command -v testssl >/dev/null 2>&1 || missing="$missing testssl"
[ -z "$missing" ] && exit 0

echo "bench: missing tools:$missing; installing $PACKAGES"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: no apt-get here; install nginx, wrk, ab (apache2-utils) and testssl.sh with your package manager" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "bench: not root and no password-less sudo; run: sudo apt-get install -y $PACKAGES" >&2
    exit 1
fi
# The Debian nginx package starts a system nginx on port 80 unless policy-rc.d says no; the bench never
# needs it, so forbid service starts for the duration of the install when no policy is in place.
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
$SUDO apt-get install -y -q $PACKAGES
