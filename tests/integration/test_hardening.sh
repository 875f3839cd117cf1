#!/bin/bash
# test_hardening.sh — what an attacker or a careless user tries (issue 14):
# URLs and proxies that would carry credentials in clear text, oversized
# config files, terminal escapes from the input, report and summary files
# that are inputs, symlinks or unwritable, a run that fails before its
# first row, a signal during the account check, and a long URL that must
# not leak part of the API key when a message is cut.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }
use_api v3
V3="--api-key $DEMO_V3_KEY --base-url $SB_URL/v3 --auth-url $SB_URL/oauth2/default/v1"
export CTCT_ACCESS_TOKEN=$TOKEN
unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# --- URL schemes: case-insensitive, and an unusable URL is 78 (not 64).
# shellcheck disable=SC2086
cts check --api-key $DEMO_V3_KEY --base-url "HTTP://127.0.0.1:$SB_PORT/v3"
check "scheme: HTTP://loopback accepted (check exit 0)" eval '[ "$RC" = 0 ]'
cts check --api-key $DEMO_V3_KEY --base-url "HTTPS://127.0.0.1:1/v3" --timeout 2
check "scheme: HTTPS:// accepted (then unreachable, 69)" eval '[ "$RC" = 69 ]'
for u in HTTP://api.example.com/v3 ftp://api.example.com/v3 FTP://127.0.0.1/v3 \
    "https:///v3"; do
    cts check --api-key $DEMO_V3_KEY --base-url "$u"
    check "scheme: --base-url $u → 78" eval '[ "$RC" = 78 ] && grep -q -- "--base-url" "$T/err"'
done
cts check --api-key $DEMO_V3_KEY --base-url "$SB_URL/v3" --auth-url HTTP://auth.example.com/x
check "scheme: --auth-url HTTP://non-loopback → 78" eval '[ "$RC" = 78 ]'

# --- proxies: credentials never printed; plain http to a remote proxy
# refused when the API URL is plain http.
# The sandbox plays the proxy (it answers the absolute-form request 400):
# what matters is what --verbose prints about it.
# shellcheck disable=SC2086
http_proxy="http://alice:pr0xy-pw-s3cret@127.0.0.1:$SB_PORT" cts check -v $V3
check "proxy: --verbose shows no proxy password nor Proxy-Authorization" \
    eval 'grep -q "alice:\*\*\*\*@" "$T/err" && ! grep -q "pr0xy-pw-s3cret" "$T/err" &&
          ! grep -qi "proxy-authorization" "$T/err"'
# shellcheck disable=SC2086
http_proxy="http://alice:pr0xy-pw-s3cret@proxy.example:3128" cts check -v $V3
check "proxy: http:// API through a remote plain-http proxy → 78, named, masked" \
    eval '[ "$RC" = 78 ] && grep -q "http_proxy=http://alice:\*\*\*\*@proxy.example:3128" "$T/err" &&
          ! grep -q "pr0xy-pw-s3cret" "$T/err"'
# shellcheck disable=SC2086
ALL_PROXY="socks5://proxy.example:1080" cts check $V3
check "proxy: ALL_PROXY socks5 remote → 78" eval '[ "$RC" = 78 ]'
# shellcheck disable=SC2086
http_proxy="http://proxy.example:3128" no_proxy="localhost,127.0.0.1" cts check $V3
check "proxy: no_proxy exempting the API host → runs (exit 0)" eval '[ "$RC" = 0 ]'
# shellcheck disable=SC2086
https_proxy="http://proxy.example:3128" cts check $V3
check "proxy: https_proxy does not apply to an http:// URL (exit 0)" eval '[ "$RC" = 0 ]'

# --- the config file is read with a size limit.
mkdir -p "$T/cfg"
{ echo "rate = 3"; head -c 2000000 /dev/zero | tr '\0' '#'; echo; } >"$T/cfg/big.conf"
chmod 600 "$T/cfg/big.conf"
# shellcheck disable=SC2086
cts check $V3 --config "$T/cfg/big.conf"
check "config: a 2 MB file → 78, says why" eval '[ "$RC" = 78 ] && grep -q "larger than 1 MiB" "$T/err"'
# /dev/zero never ends and has no newline: refused, not read forever.
RC=0
# shellcheck disable=SC2086
timeout 10 "$CTS" check $V3 --config /dev/zero >"$T/out" 2>"$T/err" || RC=$?
check "config: /dev/zero → 78 at once" eval '[ "$RC" = 78 ]'
head -c 70000 /dev/zero | tr '\0' 'a' >"$T/cfg/tok"
chmod 600 "$T/cfg/tok"
CTCT_ACCESS_TOKEN='' cts check --api-key $DEMO_V3_KEY --token-file "$T/cfg/tok"
check "token file: 70 KB → 78" eval '[ "$RC" = 78 ] && grep -q "too large" "$T/err"'

# --- terminal escapes from the input never reach stderr raw.
# no_raw_controls FILE: no ESC, BEL, CR, C1 CSI/OSC (UTF-8) or bidi override.
no_raw_controls() {
    ! LC_ALL=C grep -q $'[\x1b\x07\r]' "$1" &&
        ! LC_ALL=C grep -q $'\xc2[\x9b\x9d]' "$1" &&
        ! LC_ALL=C grep -q $'\xe2\x80\xae' "$1"
}
printf 'email,\033]2;PWNED\007x,\302\233"31mred,\342\200\256evil\r\nrow1@example.com,a,b,c\r\n' >"$T/esc.csv"
imp --list "$LIST" --dry-run "$T/esc.csv"
check "escapes: unmapped-columns line and --dry-run mapping escaped (\\x1b shown)" \
    eval 'no_raw_controls "$T/err" && grep -qF "\\x1b]2;PWNED\\x07x" "$T/err" &&
          grep -qF "\\u009b" "$T/err"'
printf 'name,\033]2;PWNED\007\r\nBob,x\r\n' >"$T/esc2.csv"
imp --list "$LIST" "$T/esc2.csv"
check "escapes: a header error (no email column) escaped, exit 65" \
    eval '[ "$RC" = 65 ] && no_raw_controls "$T/err" && grep -qF "\\x1b" "$T/err"'
# A file name is echoed too (messages, the default report's name in the
# closing line).
mkdir -p "$T/escdir"
cp "$T/esc.csv" "$T/escdir/$(printf 'in\033]2;X\007.csv')"
(cd "$T/escdir" && CTCT_ACCESS_TOKEN=$TOKEN "$CTS" import $V3 --list "$LIST" \
    --state "$T/state-esc" "$(printf 'in\033]2;X\007.csv')" >"$T/out" 2>"$T/err")
check "escapes: a file name echoed in messages and the closing line is escaped" \
    eval 'no_raw_controls "$T/err" && grep -qF "in\\x1b]2;X\\x07.csv:" "$T/err" &&
          grep -qF "report: in\\x1b]2;X\\x07.report.csv" "$T/err"'

# --- the report or summary must never be an input (64, input intact).
gen 5 3
cp "$T/in.csv" "$T/in.orig"
ln -f "$T/in.csv" "$T/hard.csv"
ln -sf "$T/in.csv" "$T/soft.csv"
mkdir -p "$T/sub"
same_as_input() { # NAME ARGS...: refused with 64, both named, input intact
    local name=$1
    shift
    cts import $V3 --list "$LIST" --state "$T/state-same" "$@"
    if [ "$RC" = 64 ] && cmp -s "$T/in.csv" "$T/in.orig" &&
        [ "$(wc -l <"$T/err")" -le 2 ] && grep -q "in.csv" "$T/err"; then
        ok "same file: $name"
    else
        not_ok "same file: $name" "rc=$RC $(head -c 300 "$T/err")"
    fi
}
same_as_input "--report = input" --report "$T/in.csv" "$T/in.csv"
same_as_input "--report = input, another spelling" --report "$T/sub/../in.csv" "$T/in.csv"
same_as_input "--report = a hard link of the input" --report "$T/hard.csv" "$T/in.csv"
same_as_input "--report = a symlink to the input" --report "$T/soft.csv" "$T/in.csv"
same_as_input "--summary = input" --summary "$T/in.csv" --report "$T/r.csv" "$T/in.csv"
same_as_input "input via a symlink, --report the file" --report "$T/in.csv" "$T/soft.csv"
cp "$T/in.csv" "$T/other.csv"
same_as_input "second input = --report" --report "$T/in.csv" "$T/other.csv" "$T/in.csv"
rm -f "$T/rs.out"
cts import $V3 --list "$LIST" --state "$T/state-same" --report "$T/rs.out" \
    --summary "$T/sub/../rs.out" "$T/in.csv"
check "same file: --report = --summary → 64, nothing written" \
    eval '[ "$RC" = 64 ] && [ ! -e "$T/rs.out" ] && grep -q "same file" "$T/err"'

# --- symlinks where the report or summary goes are refused, not followed.
sb_reset
echo "precious" >"$T/victim"
ln -sf "$T/victim" "$T/link.csv"
imp --list "$LIST" --report "$T/link.csv" "$T/in.csv"
check "symlink: --report link → refused (73), victim intact" \
    eval '[ "$RC" = 73 ] && [ "$(cat "$T/victim")" = precious ] &&
          grep -q "symbolic link" "$T/err" && [ "$(sb_contact_writes_attempted)" = 0 ]'
imp --list "$LIST" --summary "$T/link.csv" "$T/in.csv"
check "symlink: --summary link → refused (73) before sending, victim intact" \
    eval '[ "$RC" = 73 ] && [ "$(cat "$T/victim")" = precious ] &&
          [ "$(sb_contact_writes_attempted)" = 0 ]'
mkdir -p "$T/dflt"
cp "$T/in.csv" "$T/dflt/contacts.csv"
ln -sf "$T/victim" "$T/dflt/contacts.report.csv"
(cd "$T/dflt" && "$CTS" import $V3 --list "$LIST" --state "$T/state-dflt" \
    contacts.csv >"$T/out" 2>"$T/err") && RC=0 || RC=$?
check "symlink: default report name a link → refused, victim intact" \
    eval '[ "$RC" = 73 ] && [ "$(cat "$T/victim")" = precious ]'
rm -f "$T/dflt/contacts.report.csv"

# --- report and summary: 0600 when created (umask 000), mode kept when
# they exist; the default name drops ".csv".
(umask 000 && cd "$T/dflt" && "$CTS" import $V3 --list "$LIST" --state "$T/state-dflt" \
    --summary s.json contacts.csv >"$T/out" 2>"$T/err") && RC=0 || RC=$?
check "modes: default report contacts.report.csv, created 0600 under umask 000" \
    eval '[ "$RC" = 0 ] && [ "$(stat -c %a "$T/dflt/contacts.report.csv")" = 600 ] &&
          [ "$(stat -c %a "$T/dflt/s.json")" = 600 ] && [ ! -e "$T/dflt/contacts.csv.report.csv" ]'
chmod 640 "$T/dflt/contacts.report.csv"
(cd "$T/dflt" && "$CTS" import $V3 --list "$LIST" --state "$T/state-dflt" \
    contacts.csv >"$T/out" 2>"$T/err") && RC=0 || RC=$?
check "modes: an existing report keeps its mode" \
    eval '[ "$RC" = 0 ] && [ "$(stat -c %a "$T/dflt/contacts.report.csv")" = 640 ]'

# --- an address with a C1 control or a bidi override is invalid.
printf 'email\r\na\302\235b@example.com\r\nc\342\200\256d@example.com\r\nok1@example.com\r\n' >"$T/c1.csv"
STATE_DIR="$T/state-c1"
imp --list "$LIST" "$T/c1.csv"
check "email: U+009D and U+202E make an address invalid" \
    eval '[ "$(rep_status 1)" = invalid ] && [ "$(rep_status 2)" = invalid ] &&
          [ "$(rep_status 3)" = created ]'

# --- an unwritable --summary is found before anything is sent.
sb_reset
imp --list "$LIST" --summary "$T/no-such-dir/s.json" "$T/in.csv"
check "summary: unwritable path → 73 before any write request" \
    eval '[ "$RC" = 73 ] && [ "$(sb_contact_writes_attempted)" = 0 ] &&
          grep -q "no-such-dir" "$T/err"'

# --- a failed run replaces the previous report and summary.
fresh_run() {
    sb_reset
    STATE_DIR="$T/state-fail-$RANDOM"
    imp --list "$LIST" "$T/in.csv"
    [ "$RC" = 0 ] && [ "$(sum exit_code)" = 0 ] && [ "$(rep_rows)" = 5 ]
}
failed_outputs() { # NAME WANT-EXIT: report header-only, summary says WANT
    if [ "$RC" = "$2" ] && [ "$(sum exit_code)" = "$2" ] && [ "$(rep_rows)" = 0 ] &&
        rep_header_ok && [ "$(sum input_rows)" = 0 ]; then
        ok "failed run: $1"
    else
        not_ok "failed run: $1" "rc=$RC summary=$(tr -d '\n ' <"$T/s.json" | head -c 200)"
    fi
}
fresh_run || not_ok "failed run: first run"
# shellcheck disable=SC2046
CTCT_ACCESS_TOKEN=not-the-right-token-0000000000 cts import --api v3 --api-key "$KEY" \
    $(api_urls) --state "$STATE_DIR" --report "$T/r.csv" --summary "$T/s.json" \
    --list "$LIST" "$T/in.csv"
failed_outputs "credentials refused (77)" 77
fresh_run
imp --list "$LIST" --base-url http://127.0.0.1:1/v3 --timeout 2 "$T/in.csv"
failed_outputs "API unreachable (69)" 69
fresh_run
# shellcheck disable=SC2046
CTCT_ACCESS_TOKEN='' cts import --api v3 --api-key "$KEY" $(api_urls) \
    --state "$STATE_DIR" --report "$T/r.csv" --summary "$T/s.json" --list "$LIST" "$T/in.csv"
failed_outputs "no token, a configuration error (78)" 78
fresh_run
imp --list "$LIST" "$T/in.csv" "$T/missing.csv"
failed_outputs "a missing input (66)" 66
fresh_run
imp --list "no-such-list" "$T/in.csv"
failed_outputs "an unknown list (65)" 65

# --- a signal during the account check: exit 75, report and summary.
fresh_run
sb_reset
sb_faults '{"faults":["slow"],"match":"GET /v3/account/summary"}'
# shellcheck disable=SC2046
CTCT_ACCESS_TOKEN=$TOKEN "$CTS" import --api v3 --api-key "$KEY" $(api_urls) \
    --state "$STATE_DIR" --report "$T/r.csv" --summary "$T/s.json" --list "$LIST" \
    "$T/in.csv" >"$T/out" 2>"$T/err" &
pid=$!
sleep 0.5
kill -TERM $pid
RC=0
wait $pid || RC=$?
failed_outputs "SIGTERM during the account check (75)" 75
check "signal: the message says terminated, nothing sent" \
    eval 'grep -q "terminated" "$T/err" && [ "$(sb_contact_writes_attempted)" = 0 ]'
curl -fsS -X DELETE "$SB_URL/_sandbox/faults" >/dev/null 2>&1 || true

# --- the state directory: refused when others may write it (or own it);
# its files are never opened through a symlink planted there.
gen 5 4
sb_reset
mkdir -p "$T/st-open"
chmod 777 "$T/st-open"
STATE_DIR="$T/st-open"
imp --list "$LIST" "$T/in.csv"
check "state: a 0777 state directory → 78, nothing sent" \
    eval '[ "$RC" = 78 ] && grep -q "chmod 700" "$T/err" && [ "$(sb_contact_writes_attempted)" = 0 ] &&
          [ "$(sum exit_code)" = 78 ]'
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$T/st-other"
    chmod 700 "$T/st-other"
    chown 65534 "$T/st-other"
    STATE_DIR="$T/st-other"
    imp --list "$LIST" "$T/in.csv"
    check "state: a state directory owned by someone else → 78" \
        eval '[ "$RC" = 78 ] && grep -q "not to you" "$T/err"'
fi
STATE_DIR="$T/st-link"
imp --list "$LIST" "$T/in.csv"
acct_dir=$(ls -d "$T/st-link"/v3-* 2>/dev/null | head -1)
echo precious >"$T/victim2"
ln -sf "$T/victim2" "$acct_dir/.store.tmp"
ln -sf "$T/victim2" "$acct_dir/.failed.tmp"
gen 6 4
imp --list "$LIST" "$T/in.csv"
check "state: symlinked temp files are replaced, not written through" \
    eval '[ "$RC" = 0 ] && [ "$(cat "$T/victim2")" = precious ] && [ ! -L "$acct_dir/.store.tmp" ]'
mv "$acct_dir/lock" "$T/lock.saved"
ln -sf "$T/victim2" "$acct_dir/lock"
imp --list "$LIST" "$T/in.csv"
check "state: a symlinked lock file is refused, victim intact" \
    eval '[ "$RC" != 0 ] && [ "$(cat "$T/victim2")" = precious ]'
rm -f "$acct_dir/lock"
ln -sf "$T/victim2" "$acct_dir/journal"
imp --list "$LIST" "$T/in.csv"
check "state: a symlinked journal is refused, victim intact" \
    eval '[ "$RC" != 0 ] && [ "$(cat "$T/victim2")" = precious ]'
rm -f "$acct_dir/journal"
ln -sf "$T/victim2" "$T/st-link/$(basename "$(ls "$T/st-link"/quota-* | head -1)")"
imp --list "$LIST" "$T/in.csv"
check "state: a symlinked quota file is refused, victim intact" \
    eval '[ "$RC" != 0 ] && [ "$(cat "$T/victim2")" = precious ]'
mv "$acct_dir" "$T/acct.saved"
ln -s "$T/acct.saved" "$acct_dir"
imp --list "$LIST" "$T/in.csv"
check "state: a symlinked account directory → 78" \
    eval '[ "$RC" = 78 ] && grep -q "symbolic link" "$T/err"'

# --- a message cut to its buffer never ends in part of the API key: a
# long v2 --base-url puts ?api_key= at every position around the cut of
# the --verbose request line (300 bytes) and of an error message (512).
use_api v2
for i in $(seq 0 $((${#KEY} - 6))); do echo "${KEY:$i:6}"; done >"$T/keyparts"
leaks=""
mask="${KEY:0:4}…${KEY: -4}"
for pad in $(seq 245 280) $(seq 425 470); do
    p=$(head -c "$pad" /dev/zero | tr '\0' 'p')
    CTCT_ACCESS_TOKEN=$TOKEN cts lists -v --api v2 --api-key "$KEY" \
        --base-url "$SB_URL/$p/v2" --auth-url "$SB_URL/oauth2"
    if [ "$RC" != 78 ] || grep -qaFf "$T/keyparts" "$T/err"; then
        leaks="$leaks $pad"
    fi
    # Each api_key= shows the key's mask, or the start of it when cut (a
    # key cut before masking shows other characters: "demo…0000").
    while IFS= read -r v; do
        case "$mask" in "$v"*) ;; *) leaks="$leaks $pad:$v" ;; esac
    done < <(grep -ao 'api_key=[^ &]*' "$T/err" | sed 's/^api_key=//')
done
check "long v2 --base-url: no part of the API key in a cut message${leaks:+ (padding$leaks)}" \
    eval '[ -z "$leaks" ]'
use_api v3

# --- a server message that quotes the token: masked in the report and in
# the state's failed file (first 4 + last 4 characters only).
STATE_DIR="$T/state-echo"
gen 2 31
sb_faults '{"faults":["400_echo"],"match":"POST /v3/contacts"}'
imp --list "$LIST" --rate 0 --concurrency 1 --bulk never "$T/in.csv"
check "echoed token: the row failed, its message masked in the report" \
    eval '[ "$RC" = 1 ] && [ "$(rep_status 1)" = failed ] &&
          grep -q "with token ${TOKEN:0:4}…${TOKEN: -4}" "$T/r.csv" &&
          ! grep -qF "$TOKEN" "$T/r.csv"'
check "echoed token: nothing of it in the state directory" \
    eval '[ -n "$(ls "$STATE_DIR")" ] && ! grep -rqF "$TOKEN" "$STATE_DIR" &&
          ! grep -rqF "${TOKEN:8:24}" "$STATE_DIR"'

finish
