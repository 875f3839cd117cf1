#!/bin/sh
# install-deps.sh — install the Debian packages ctct-sync needs to build and
# test, only those missing.  Idempotent: a second run installs nothing.
#   sh scripts/install-deps.sh          build + test packages
#   CTS_DEPS_EXTRA="clang wrk" sh ...   add more (fuzzing, benchmarks)
set -eu

PKGS="gcc make pkg-config libuv1-dev libcurl4-openssl-dev libjansson-dev \
libcsv-dev libcmocka-dev jq curl ca-certificates valgrind ${CTS_DEPS_EXTRA:-}"

missing=""
for p in $PKGS; do
    # dpkg-query prints "install ok installed" for an installed package.
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
