#!/bin/sh
# run-all.sh — run the unit binaries given as arguments, then every
# integration script (tests/integration/test_*.sh, tests/sandbox/test_*.sh),
# and end with "N passed, N failed" for CI runners.
#
# Environment: BUILD (build dir), UNIT=0 / INTEGRATION=0 to skip a part,
# VALGRIND (a wrapper command for ctct-sync), ONLY (a substring: run only
# the scripts whose name contains it), JOBS (scripts run at a time, in
# batches; default 1).
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

# One integration script: its output in $log/NAME.out, "rc seconds" in
# $log/NAME.res.  A per-script timeout keeps a hung case from hanging CI.
run_script() {
    t0=$(date +%s)
    timeout "${CTS_TEST_TIMEOUT:-600}" bash "$1" >"$2/$3.out" 2>&1
    rc=$?
    echo "$rc $(($(date +%s) - t0))" >"$2/$3.res"
}

if [ "${INTEGRATION:-1}" = 1 ]; then
    scripts=""
    for t in "$top"/tests/sandbox/test_*.sh "$top"/tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        name=$(basename "$t" .sh)
        if [ -n "${ONLY:-}" ]; then
            case "$name" in *"$ONLY"*) ;; *) continue ;; esac
        fi
        scripts="$scripts $t"
    done
    # JOBS lanes (default 1), each running every JOBS-th script in turn.
    # Each script starts its own sandbox on a port of its own (port 0) in
    # a temporary directory of its own, so lanes do not meet; most of a
    # script's time is spent waiting on rates and latencies, not the CPU.
    jobs=${JOBS:-1}
    lane=0
    while [ "$lane" -lt "$jobs" ]; do
        (
            i=0
            for t in $scripts; do
                [ $((i % jobs)) -eq "$lane" ] &&
                    run_script "$t" "$log" "$(basename "$t" .sh)"
                i=$((i + 1))
            done
        ) &
        lane=$((lane + 1))
    done
    wait
    # Each script prints "ok - NAME" / "not ok - NAME" per case (TAP-like)
    # and exits non-zero if any case failed.  Reported in order.
    for t in $scripts; do
        name=$(basename "$t" .sh)
        read -r rc secs <"$log/$name.res"
        n=$(grep -c '^ok ' "$log/$name.out" || true)
        f=$(grep -c '^not ok ' "$log/$name.out" || true)
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
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
