#!/bin/sh
# run-all.sh — run the unit binaries given as arguments, then every
# integration script (tests/integration/test_*.sh, tests/sandbox/test_*.sh),
# and end with "N passed, N failed" for CI runners.
#
# Environment: BUILD (build dir), UNIT=0 / INTEGRATION=0 to skip a part,
# VALGRIND (a wrapper command for ctct-sync), ONLY (a substring: run only
# the scripts whose name contains it).
set -u
BUILD=${BUILD:-build}
export BUILD
passed=0
failed=0
failures=""
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp -d "${TMPDIR:-/tmp}/cts-check.XXXXXX")

if [ "${UNIT:-1}" = 1 ]; then
    for t in "$@"; do
        name=$(basename "$t")
        if "$t" >"$log/$name.out" 2>&1; then
            n=$(grep -c '^\[       OK \]' "$log/$name.out" || true)
            passed=$((passed + n))
            echo "PASS unit $name ($n)"
        else
            n=$(grep -c '^\[       OK \]' "$log/$name.out" || true)
            f=$(grep -c '^\[  FAILED  \]' "$log/$name.out" || true)
            [ "$f" -gt 0 ] || f=1
            passed=$((passed + n))
            failed=$((failed + f))
            failures="$failures unit:$name"
            echo "FAIL unit $name"
            sed 's/^/    /' "$log/$name.out" | tail -40
        fi
    done
fi

if [ "${INTEGRATION:-1}" = 1 ]; then
    for t in "$top"/tests/sandbox/test_*.sh "$top"/tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        name=$(basename "$t" .sh)
        if [ -n "${ONLY:-}" ]; then
            case "$name" in *"$ONLY"*) ;; *) continue ;; esac
        fi
        # Each script prints "ok - NAME" / "not ok - NAME" per case (TAP-like)
        # and exits non-zero if any case failed.  A per-script timeout keeps
        # a hung case from hanging CI.
        t0=$(date +%s)
        timeout "${CTS_TEST_TIMEOUT:-600}" bash "$t" >"$log/$name.out" 2>&1
        rc=$?
        secs=$(( $(date +%s) - t0 ))
        n=$(grep -c '^ok ' "$log/$name.out" || true)
        f=$(grep -c '^not ok ' "$log/$name.out" || true)
        if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1
        fi
        passed=$((passed + n))
        failed=$((failed + f))
        if [ "$f" -eq 0 ]; then
            echo "PASS $name ($n, ${secs}s)"
        else
            failures="$failures $name"
            echo "FAIL $name (exit $rc, ${secs}s)"
            grep -v '^ok ' "$log/$name.out" | sed 's/^/    /' | tail -60
        fi
    done
fi

if [ -n "$failures" ]; then
    echo "failed:$failures (logs in $log)"
else
    rm -rf "$log"
fi
echo "$passed passed, $failed failed"
[ -z "${COUNTS:-}" ] || echo "$passed $failed" >"$COUNTS"
[ "$failed" -eq 0 ]
