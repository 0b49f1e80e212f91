#!/bin/sh
# Installs the load tools `make bench` needs (nginx, wrk, ab) when any is missing (tools/apt-install.sh).
set -eu

PACKAGES="nginx-light wrk apache2-utils"

missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v ab >/dev/null 2>&1 || missing="$missing ab"
[ -z "$missing" ] && exit 0

echo "bench: missing tools:$missing; installing $PACKAGES"
exec sh "$(dirname "$0")/../tools/apt-install.sh" $PACKAGES
