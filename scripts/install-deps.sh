#!/bin/sh
# install-deps.sh — install the Debian packages ctct-sync needs to build and
# test, only those missing.  Idempotent: a second run installs nothing.
#   sh scripts/install-deps.sh             build + test packages
#   sh scripts/install-deps.sh lint        also what `make lint` needs
#                                          (clang-format, cppcheck)
#   sh scripts/install-deps.sh clang       also clang (`make clang-check`)
#   sh scripts/install-deps.sh lint clang  both (what CI installs)
#   CTS_DEPS_EXTRA="clang wrk" sh ...      add any other packages (fuzzing,
#                                          benchmarks)
set -eu

EXTRA=""
for mode in "$@"; do
    case $mode in
    lint) EXTRA="$EXTRA clang-format cppcheck" ;;
    clang) EXTRA="$EXTRA clang" ;;
    *)
        echo "install-deps: unknown mode '$mode' (modes: lint, clang)" >&2
        exit 64
        ;;
    esac
done

PKGS="gcc make pkg-config libuv1-dev libcurl4-openssl-dev libjansson-dev \
libcsv-dev libcmocka-dev jq curl ca-certificates valgrind python3 time $EXTRA \
${CTS_DEPS_EXTRA:-}"

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
