#!/bin/bash
# test_streams.sh — inputs that are streams, and inputs that never end
# (issue 14 items 1 and 5): a pipe, a FIFO or <(...) reads as well as the
# file itself; /dev/zero or an endless stdin stops at a signal within
# seconds, with the report of every row read (each once) and the summary.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }
use_api v3

printf 'email,first_name\na@example.com,Ann\nb@example.com,Jos\xc3\xa9\nbad,Bob\n' >"$T/f.csv"
# Report lines without the file column.
norm() { tail -n +2 "$1" | tr -d '\r' | cut -d, -f2-; }

imp --list "$LIST" --rate 0 --dry-run "$T/f.csv"
cp "$T/r.csv" "$T/want.csv"
check "file: dry run reads 3 rows (exit 65 for the bad one)" \
    eval '[ "$(norm "$T/want.csv" | wc -l)" = 3 ]'
want_rc=$RC

# A run that blocks on a stream is killed, not waited for.
plain_valgrind=$VALGRIND
VALGRIND="timeout -s KILL 20 $VALGRIND"
imp --list "$LIST" --rate 0 --dry-run <(cat "$T/f.csv")
check "<(cat file) gives the file's report" \
    eval '[ "$RC" = "$want_rc" ] && [ "$(norm "$T/r.csv")" = "$(norm "$T/want.csv")" ]'

mkfifo "$T/fifo"
cat "$T/f.csv" >"$T/fifo" &
writer=$!
imp --list "$LIST" --rate 0 --dry-run "$T/fifo"
kill "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
VALGRIND=$plain_valgrind
check "a FIFO gives the file's report" \
    eval '[ "$RC" = "$want_rc" ] && [ "$(norm "$T/r.csv")" = "$(norm "$T/want.csv")" ]'

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
    local n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
started() { grep -q "unsubscribed" "$T/err" 2>/dev/null; }

# Run ctct-sync in the background on input $1 (stdin from $2): sets PID.
bg_import() {
    # shellcheck disable=SC2046
    CTCT_ACCESS_TOKEN=$TOKEN "$CTS" import --api "$API" --api-key "$KEY" \
        $(api_urls) --state "$STATE_DIR" --report "$T/r.csv" \
        --summary "$T/s.json" --list "$LIST" --rate 0 "$1" <"$2" \
        >"$T/out" 2>"$T/err" &
    PID=$!
    _pids="$_pids $PID"
}

# term_run NAME: SIGTERM the background run once it has started (the
# intake starts in the callback that logs the unsubscribed addresses);
# 0 when it exits within 5 s (RC its status), else it is killed.
term_run() {
    if ! wait_for 15 started; then
        not_ok "$1: the run did not start"
        return 1
    fi
    [ -z "${2:-}" ] || wait_for 5 "$2"
    kill -TERM "$PID"
    if ! wait_for 5 gone "$PID"; then
        not_ok "$1: still running 5 s after SIGTERM"
        kill -KILL "$PID"
        return 1
    fi
    RC=0
    wait "$PID" || RC=$?
    check "$1: SIGTERM stops the run, exit 75" eval '[ "$RC" = 75 ]'
}
reported() { [ "$(wc -l <"$T/r.csv" 2>/dev/null || echo 0)" -gt 1 ]; }

# --- /dev/zero: never ends, holds no row.
rm -f "$T/r.csv" "$T/s.json" "$T/err"
bg_import /dev/zero /dev/null
if term_run /dev/zero; then
    check "/dev/zero: report and summary written" \
        eval '[ -s "$T/r.csv" ] && [ "$(sum exit_code)" = 75 ]'
fi

# --- an endless stdin: every row read is reported once, then it stops.
rm -f "$T/r.csv" "$T/s.json" "$T/err"
mkfifo "$T/endless"
{ echo "email,first_name"; yes 'x@example.com,Ann'; } >"$T/endless" &
feeder=$!
_pids="$_pids $feeder"
bg_import - "$T/endless"
if term_run "endless stdin" reported; then
    check "endless stdin: report rows are 1..N, each once, N > 0" \
        eval '[ "$(rep_rows)" -gt 0 ] && rep_in_order'
    check "endless stdin: summary counts the rows reported" \
        eval '[ "$(sum input_rows)" = "$(rep_rows)" ] && [ "$(sum exit_code)" = 75 ]'
fi
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null


# --- a named FIFO behaves like `cat FIFO`: it waits for a writer (one that
# starts late is read in full), and that wait, like any read, ends at
# SIGTERM with the report and summary (it used to block open(2) on the loop
# thread, where no signal was heard).
rm -f "$T/r.csv" "$T/s.json" "$T/err"
mkfifo "$T/nowriter"
bg_import "$T/nowriter" /dev/null
if term_run "FIFO without a writer"; then
    check "FIFO without a writer: report (no rows) and summary written" \
        eval '[ -s "$T/r.csv" ] && [ "$(rep_rows)" = 0 ] && [ "$(sum exit_code)" = 75 ]'
fi
rm -f "$T/r.csv" "$T/s.json" "$T/err"
mkfifo "$T/late"
printf 'email,first_name\nlate1@example.com,Ann\nlate2@example.com,Bob\n' >"$T/late.csv"
bg_import "$T/late" /dev/null
if wait_for 15 started; then
    sleep 1 # ctct-sync waits; a read that took "no writer" for EOF would not
    cat "$T/late.csv" >"$T/late"
    if wait_for 30 gone "$PID"; then
        RC=0
        wait "$PID" || RC=$?
        check "FIFO with a late writer: read in full, exit 0" \
            eval '[ "$RC" = 0 ] && [ "$(rep_rows)" = 2 ]'
    else
        not_ok "FIFO with a late writer: did not finish"
        kill -KILL "$PID"
    fi
else
    not_ok "FIFO with a late writer: the run did not start"
fi

finish
