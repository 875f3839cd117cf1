# lib.sh — shared helpers for integration scripts (bash).  Source it:
#   . "$(dirname "$0")/lib.sh"
# It gives:
#   $T            a private temp dir, removed at exit
#   $CTS, $SANDBOX  the binaries under test ($VALGRIND prefixes ctct-sync)
#   sb_start [ARGS...]  start ctct-sandbox --port 0 ARGS; sets SB_URL, SB_PORT,
#                       SB_PID; the sandbox is killed at exit (h2o's guard)
#   sb_stop             stop the last sandbox started
#   sb_state [QUERY]    GET $SB_URL/_sandbox/state[?QUERY] (JSON on stdout)
#   cts ARGS...         run ctct-sync; sets $RC, stdout in $T/out, stderr in $T/err
#   ok NAME / not_ok NAME [WHY] / check NAME CMD...   TAP-like case results
#   finish              exit status from the cases
set -u
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
CTS="$BUILD/ctct-sync"
SANDBOX="$BUILD/ctct-sandbox"
VALGRIND=${VALGRIND:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/cts-it.XXXXXX")
_pids=""
_failed=0
# Tests never read a user's real config or state.
export XDG_CONFIG_HOME="$T/xdg-config" XDG_STATE_HOME="$T/xdg-state"
unset CTCT_API CTCT_API_KEY CTCT_ACCESS_TOKEN CTCT_TOKEN_FILE CTCT_ACCOUNT \
      CTCT_BASE_URL CTCT_AUTH_URL CTCT_CONFIG CTCT_SYNC_NOW 2>/dev/null || true

_cleanup() {
    for p in $_pids; do kill "$p" 2>/dev/null; done
    for p in $_pids; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

sb_start() {
    local fifo="$T/sb.$RANDOM.fifo" line
    mkfifo "$fifo"
    "$SANDBOX" --port 0 "$@" >"$fifo" 2>>"$T/sandbox.log" &
    SB_PID=$!
    _pids="$_pids $SB_PID"
    exec 3<"$fifo"
    if ! IFS= read -r -t 30 line <&3; then
        exec 3<&-
        echo "# sandbox did not print its ready line; log:" >&2
        cat "$T/sandbox.log" >&2
        return 1
    fi
    # Keep draining its stdout so it never blocks on a full pipe.
    cat <&3 >>"$T/sandbox.out" &
    _pids="$_pids $!"
    exec 3<&-
    rm -f "$fifo"
    case "$line" in
    "listening on http://127.0.0.1:"*) ;;
    *) echo "# unexpected ready line: $line" >&2; return 1 ;;
    esac
    SB_URL=${line#listening on }
    SB_PORT=${SB_URL##*:}
}

sb_stop() {
    kill "$SB_PID" 2>/dev/null
    wait "$SB_PID" 2>/dev/null
    return 0
}

sb_state() {
    curl -fsS "$SB_URL/_sandbox/state${1:+?$1}"
}

cts() {
    RC=0
    $VALGRIND "$CTS" "$@" >"$T/out" 2>"$T/err" || RC=$?
}

ok() { echo "ok - $1"; }
not_ok() {
    echo "not ok - $1${2:+: $2}"
    _failed=1
}
# check NAME CMD...: ok if CMD succeeds.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}
finish() { exit $_failed; }
