#!/bin/sh
# demo.sh — `make demo`: start ctct-sandbox on a free loopback port, import
# samples/contacts.csv into its demo account with ctct-sync (API v3), print
# the summary and where the report is, and stop the sandbox.
#
#   sh scripts/demo.sh [BUILD_DIR]        (default: build)
#
# Nothing outside BUILD_DIR/demo is written: the report, the summary and a
# fresh state directory live there (a fresh state each time, so a second
# demo shows contacts created again in the fresh sandbox, not `unchanged`).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
cts="$build/ctct-sync"
sandbox="$build/ctct-sandbox"
input="$top/samples/contacts.csv"
out="$build/demo"

for f in "$cts" "$sandbox"; do
    [ -x "$f" ] || { echo "demo: $f is missing; run make first" >&2; exit 1; }
done
[ -r "$input" ] || { echo "demo: $input is missing" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
chmod 700 "$out"
fifo="$out/ready.fifo"
mkfifo "$fifo"
"$sandbox" --port 0 >"$fifo" 2>"$out/sandbox.log" &
sb_pid=$!
# The guard: the sandbox never outlives the demo, whatever happens.
trap 'kill $sb_pid 2>/dev/null; wait $sb_pid 2>/dev/null; rm -f "$fifo"' EXIT
trap 'exit 130' INT TERM

exec 3<"$fifo"
if ! IFS= read -r line <&3; then
    echo "demo: the sandbox did not start; its log:" >&2
    cat "$out/sandbox.log" >&2
    exit 1
fi
# Keep draining its stdout so it never blocks on a full pipe.
cat <&3 >"$out/sandbox.out" &
exec 3<&-
case "$line" in
"listening on http://127.0.0.1:"*) url=${line#listening on } ;;
*) echo "demo: unexpected sandbox output: $line" >&2; exit 1 ;;
esac

# The demo account (README, doc/sandbox.md): v3 client id and the token
# the sandbox mints for it.  The token goes through the environment, never
# the command line (it would show in ps).
CTCT_ACCESS_TOKEN=$("$sandbox" --print-demo-token)
export CTCT_ACCESS_TOKEN
unset CTCT_TOKEN_FILE CTCT_CONFIG 2>/dev/null || true
export XDG_CONFIG_HOME="$out/config"

echo "demo: ctct-sandbox at $url (demo account a07e1demo0001)"
echo "demo: ctct-sync import --api v3 --list 8c2b2d3e-0001-4000-8000-000000000001 samples/contacts.csv"
echo "demo: (at the API's default 4 requests/s: about $(($(wc -l <"$input") / 4 + 1)) s)"
rc=0
"$cts" import --api v3 \
    --api-key demo-v3-client-00000000000001 \
    --account a07e1demo0001 \
    --base-url "$url/v3" --auth-url "$url/oauth2/default/v1" \
    --list 8c2b2d3e-0001-4000-8000-000000000001 \
    --state "$out/state" \
    --report "$out/contacts.report.csv" \
    --summary "$out/summary.json" \
    "$input" || rc=$?

echo
echo "demo: summary ($out/summary.json):"
cat "$out/summary.json" 2>/dev/null || echo "  (none written)"
echo "demo: per-row report: $out/contacts.report.csv"
stored=$(curl -fsS "$url/_sandbox/state?contacts=0" 2>/dev/null |
         sed -n 's/.*"contact_count": *\([0-9]*\).*/\1/p' | head -1)
[ -z "$stored" ] || echo "demo: the sandbox now holds $stored contacts"
echo "demo: ctct-sync exit code $rc (0 = every row settled; see 'ctct-sync import --help')"
exit "$rc"
