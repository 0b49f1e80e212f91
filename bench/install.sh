#!/bin/sh
# Installs the tools `make bench` and `make testssl` need (nginx, wrk, ab, testssl.sh) when any is missing
# (tools/apt-install.sh).
set -eu

PACKAGES="nginx-light wrk apache2-utils testssl.sh"

missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v ab >/dev/null 2>&1 || missing="$missing ab"
command -v testssl >/dev/null 2>&1 || missing="$missing testssl"
[ -z "$missing" ] && exit 0

echo "bench: missing tools:$missing; installing $PACKAGES"
exec sh "$(dirname "$0")/../tools/apt-install.sh" $PACKAGES
