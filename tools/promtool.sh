#!/bin/sh
# Installs promtool (Prometheus's rule and metrics checker) into $1/promtool from Debian's
# `prometheus` package: downloaded with apt-get (no install: just the .deb) and unpacked with
# dpkg-deb, so that only the binary lands in the venv. Fails loudly when it cannot: the checks
# it runs are part of `make lint`.
set -eu
mkdir -p "$1"
dest=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
chmod 777 "$work"  # apt-get download drops to the _apt user where it can
if ! apt-get download -q prometheus >/dev/null 2>&1; then
	echo "promtool: fetching the package list (apt-get update) first" >&2
	apt-get update -q >/dev/null
	apt-get download -q prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb unpacked

cp unpacked/usr/bin/promtool "$dest/promtool"
"$dest/promtool" --version >/dev/null
