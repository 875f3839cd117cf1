#!/bin/bash
# test_cli.sh — the command-line contract (commands, credentials, exit
# codes): help and version, usage errors (64, one line naming the option),
# configuration errors (78), unreachable API (69), secrets never printed.
. "$(dirname "$0")/lib.sh"

SECRET=tok-SECRET-0123456789-abcdefghij-zz99

# --help for every command: exit 0, usage in synopsis form on stdout.
for c in import check lists auth; do
    cts "$c" --help
    if [ "$RC" = 0 ] && grep -q "^usage: ctct-sync $c" "$T/out" &&
        grep -q "exit status" "$T/out" && [ ! -s "$T/err" ]; then
        ok "$c --help"
    else
        not_ok "$c --help" "rc=$RC"
    fi
done
cts --help
check "--help lists the commands" \
    eval '[ "$RC" = 0 ] && grep -q "ctct-sync import" "$T/out" && grep -q "ctct-sync auth" "$T/out"'
cts help lists
check "help COMMAND" eval '[ "$RC" = 0 ] && grep -q "^usage: ctct-sync lists" "$T/out"'
cts --version
check "--version" eval '[ "$RC" = 0 ] && grep -Eq "^ctct-sync [0-9]+\.[0-9]+" "$T/out"'
# --help wins over a bad value elsewhere on the line.
cts import --rate nonsense --help
check "--help wins over bad values" eval '[ "$RC" = 0 ]'

# Usage errors: exit 64, exactly one line on stderr naming the option and
# pointing at the command's help.
one_line_64() { # NAME EXPECTED-SUBSTRING ARGS...
    local name=$1 want=$2
    shift 2
    cts "$@"
    if [ "$RC" = 64 ] && [ "$(wc -l <"$T/err")" = 1 ] &&
        grep -qF -- "$want" "$T/err"; then
        ok "$name"
    else
        not_ok "$name" "rc=$RC err=$(head -c 300 "$T/err")"
    fi
}
cts
check "no arguments → 64" eval '[ "$RC" = 64 ]'
one_line_64 "unknown command" "unknown command 'frobnicate'" frobnicate
one_line_64 "unknown option" "'--bogus'" import --bogus --list 1 a.csv
one_line_64 "unknown option hint" "Try 'ctct-sync import --help'" import --bogus a.csv
one_line_64 "unknown short option" "'-x'" check -x
one_line_64 "bad --rate" "--rate" import --rate fast --list 1 a.csv
one_line_64 "negative --rate" "--rate" import --rate -1 --list 1 a.csv
one_line_64 "bad --concurrency" "--concurrency" import --concurrency 0 --list 1 a.csv
one_line_64 "bad --api" "--api" check --api v4
one_line_64 "bad --delimiter" "--delimiter" import --delimiter : --list 1 a.csv
one_line_64 "bad --map" "--map" import --map nosuchfield=X --list 1 a.csv
one_line_64 "bad --mode" "--mode" import --mode merge --list 1 a.csv
one_line_64 "bad --bulk" "--bulk" import --bulk maybe --list 1 a.csv
one_line_64 "missing value" "'--list' needs a value" import a.csv --list
one_line_64 "option of another command" "not used by 'ctct-sync check'" check --list 1
one_line_64 "import without --list" "--list" import --token "$SECRET" a.csv
one_line_64 "import without FILE" "FILE" import --token "$SECRET" --list 1
one_line_64 "check takes no FILE" "unexpected argument" check extra
# A mistyped secret option must not echo the secret.
cts check "--tokn=$SECRET"
check "usage error does not echo a secret" \
    eval '[ "$RC" = 64 ] && ! grep -q "SECRET" "$T/err"'

# Good values are accepted (they fail later, at the credentials: 78).
cts import --rate 0.5 --delimiter tab --encoding cp1252 --map "cf:Size=Shoe size" \
    --list 1 --list 2 --mode create --bulk never --dry-run a.csv
check "valid options parse (then 78: no token)" eval '[ "$RC" = 78 ]'

# Missing credentials: 78 with guidance.
cts check
if [ "$RC" = 78 ] && grep -q "ctct-sync auth" "$T/err" && grep -q "make demo" "$T/err"; then
    ok "missing token → 78 with guidance"
else
    not_ok "missing token → 78 with guidance" "rc=$RC $(cat "$T/err")"
fi
cts lists --api v2 --token "$SECRET"
if [ "$RC" = 78 ] && grep -q "developer portal" "$T/err"; then
    ok "missing v2 key → 78 with guidance"
else
    not_ok "missing v2 key → 78 with guidance" "rc=$RC $(cat "$T/err")"
fi

# Plain http to a non-loopback host is refused; loopback is fine.
cts check --token "$SECRET" --base-url http://api.example.com/v3
check "http:// non-loopback base URL → 78" eval '[ "$RC" = 78 ] && grep -q "http://" "$T/err"'
CTCT_AUTH_URL=http://auth.example.com/oauth2 cts check --api v2 --api-key k --token "$SECRET"
check "http:// non-loopback auth URL (env) → 78" eval '[ "$RC" = 78 ]'

# Config and token files readable by others are refused, like ssh.
mkdir -p "$T/cfg"
printf 'rate = 3\n' >"$T/cfg/open.conf"
chmod 644 "$T/cfg/open.conf"
cts check --token "$SECRET" --config "$T/cfg/open.conf"
check "config file 0644 → 78 (ssh-style message)" \
    eval '[ "$RC" = 78 ] && grep -qF "permissions 0644 for '"'$T/cfg/open.conf'"' are too open; chmod 600 $T/cfg/open.conf" "$T/err"'
printf '%s\n' "$SECRET" >"$T/cfg/tok"
chmod 640 "$T/cfg/tok"
cts check --token-file "$T/cfg/tok"
check "token file 0640 → 78, token not shown" \
    eval '[ "$RC" = 78 ] && grep -q "too open" "$T/err" && ! grep -q SECRET "$T/err"'
cts check --token "$SECRET" --config "$T/cfg/missing.conf"
check "missing explicit config → 78" eval '[ "$RC" = 78 ]'
printf 'rate = 3\nbogus line\n' >"$T/cfg/bad.conf"
chmod 600 "$T/cfg/bad.conf"
cts check --token "$SECRET" --config "$T/cfg/bad.conf"
check "config syntax error names the line" eval '[ "$RC" = 78 ] && grep -q "bad.conf:2:" "$T/err"'

# Unreachable API → 69; the token is masked everywhere, even with -v.
cts check -v --token "$SECRET" --base-url http://127.0.0.1:1/v3 --timeout 2
check "unreachable base URL → 69" eval '[ "$RC" = 69 ]'
check "token never printed (stderr, -v)" eval '! grep -q "SECRET" "$T/err" "$T/out"'
check "--token warns about ps" eval 'grep -q "visible to other users" "$T/err"'
cts check -q --token "$SECRET" --base-url http://127.0.0.1:1/v3 --timeout 2
check "--quiet: no ps warning" eval '[ "$RC" = 69 ] && ! grep -q "visible" "$T/err"'
CTCT_ACCESS_TOKEN=$SECRET cts check --base-url http://127.0.0.1:1/v3 --timeout 2
check "token from env: no ps warning" eval '[ "$RC" = 69 ] && ! grep -q "visible" "$T/err"'

# Every user-facing option (the list below) appears in some command's --help
# and in the man page; every environment variable and exit code in the man
# page.
: >"$T/allhelp"
# roff escapes dashes (\-); without the backslashes the text greps plainly.
sed 's/\\//g' "$TOP/doc/ctct-sync.1" >"$T/man.txt"
for c in import check lists auth; do "$CTS" "$c" --help >>"$T/allhelp"; done
missing=""
for o in api api-key token token-file account base-url auth-url config list mode permission \
    rate concurrency daily-quota retries report summary rejects html no-html state full bulk \
    bulk-threshold poll-interval mirror max-removals dry-run quiet verbose delimiter encoding map \
    accept-typos \
    redirect-uri registered-redirect-uri no-listen open device client-secret \
    scopes timeout json help; do
    grep -q -- "--$o\b" "$T/allhelp" || missing="$missing help:--$o"
    grep -q -- "--$o\b" "$T/man.txt" ||
        missing="$missing man:--$o"
done
for e in CTCT_API CTCT_API_KEY CTCT_ACCESS_TOKEN CTCT_TOKEN_FILE CTCT_ACCOUNT \
    CTCT_BASE_URL CTCT_AUTH_URL CTCT_CONFIG CTCT_CLIENT_SECRET CTCT_SYNC_NOW \
    CTCT_PERMISSION; do
    grep -q "$e" "$T/man.txt" || missing="$missing man:$e"
done
for x in 0 1 64 65 66 69 73 75 77 78; do
    grep -q "^\.B $x\$" "$T/man.txt" || missing="$missing man:exit-$x"
done
check "every option in --help and the man page${missing:+ (missing:$missing)}" eval '[ -z "$missing" ]'

# A failed write to stdout is an error (jq's rule).
if [ -w /dev/full ]; then
    RC=0
    "$CTS" --help >/dev/full 2>"$T/err" || RC=$?
    check "write error on stdout → non-zero" eval '[ "$RC" != 0 ]'
fi

finish
