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

finish
