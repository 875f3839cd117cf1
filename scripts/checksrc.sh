#!/bin/sh
# checksrc.sh — reject unbounded or unchecked C library calls (sprintf,
# strcpy, strcat, strtok, gets, ato*): use snprintf and strtol with an end
# pointer instead.
set -eu
cd "$(dirname "$0")/.."
bad=$(grep -nE '\b(sprintf|strcpy|strcat|strtok|gets|atoi|atol|atoll)[[:space:]]*\(' \
      src/*.c src/sandbox/*.c include/*.h 2>/dev/null | grep -vE '\b(snprintf|vsnprintf)\(' || true)
if [ -n "$bad" ]; then
    echo "checksrc: banned functions:" >&2
    echo "$bad" >&2
    exit 1
fi
bad=$(grep -nE 'sscanf[[:space:]]*\(.*%[0-9]*[dilu]' src/*.c src/sandbox/*.c 2>/dev/null || true)
if [ -n "$bad" ]; then
    echo "checksrc: sscanf for numbers; use strtol:" >&2
    echo "$bad" >&2
    exit 1
fi
# Layering: the transport knows nothing of the API's vocabulary or the
# retry policy, and the API's pure JSON work needs no transport (no
# api <-> http include cycle; the blocking fetch above both is fetch.c).
bad=$(grep -nE '#include "cts_(api|retry)\.h"' src/http.c include/cts_http.h 2>/dev/null || true)
bad="$bad$(grep -nE '#include "cts_(http|fetch)\.h"' src/api.c include/cts_api.h 2>/dev/null || true)"
if [ -n "$bad" ]; then
    echo "checksrc: include against the layering (http.c below api.c):" >&2
    echo "$bad" >&2
    exit 1
fi
echo "checksrc: ok"
