#!/usr/bin/env bash
# test_auth.sh — `ctct-sync auth` end to end against ctct-sandbox: v2 server
# flow, v3 PKCE, paste mode, device flow, state and PKCE rejection, access
# denied, timeout, and the redirect-URI diagnoses (exit 78, nothing sent).
# A scripted "browser" (curl) follows the authorize redirect.
. "$(dirname "$0")/lib.sh"

jqe() { jq -e "$@" >/dev/null; }

# A port nobody listens on now (the sandbox registers the redirect URI, so
# it must be known before the sandbox starts).
free_port() {
    local p i
    for i in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

PORT=$(free_port) || { not_ok "free port"; finish; }
RURI="http://127.0.0.1:$PORT/callback"
V3=it-v3-client-000000000000001
V2=it-v2-key-00000000000000001
V2S=it-v2-secret-0000000000001
cat >"$T/accounts.json" <<EOF
{"apps":[
  {"api":"v3","client_id":"$V3","secret":"it-v3-secret-000000001",
   "redirect_uris":["$RURI"],"refresh":"rotating","device_flow":true},
  {"api":"v2","api_key":"$V2","secret":"$V2S","redirect_uris":["$RURI"]}],
 "accounts":[{"user_name":"demo","encoded_account_id":"a07e1demo0001",
   "organization_name":"Demo Company","contact_email":"owner@demo.example",
   "lists":[{"id":"1","list_id":"8c2b2d3e-0001-4000-8000-000000000001",
             "name":"General Interest"}]}]}
EOF
sb_start --accounts "$T/accounts.json" || { not_ok "sandbox start"; finish; }
AUTH3="$SB_URL/oauth2/default/v1"
AUTH2="$SB_URL/oauth2"
# The browser wait of the tests: long enough for a loaded machine.
export CTCT_SYNC_AUTH_TIMEOUT=60

# auth_bg ARGS...: start `ctct-sync auth ARGS` in the background.
auth_bg() {
    : >"$T/a.out"
    : >"$T/a.err"
    $VALGRIND "$CTS" auth "$@" >"$T/a.out" 2>"$T/a.err" <"${AUTH_STDIN:-/dev/null}" &
    AUTH_PID=$!
    _pids="$_pids $AUTH_PID"
}
# wait_out PATTERN: print the first match of PATTERN in its stdout once it
# appears (up to 60 s; the process may be under valgrind).
wait_out() {
    local i u
    for i in $(seq 1 600); do
        u=$(grep -o "$1" "$T/a.out" | head -1)
        if [ -n "$u" ]; then
            echo "$u"
            return 0
        fi
        kill -0 "$AUTH_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
auth_wait() {
    AUTH_RC=0
    wait "$AUTH_PID" || AUTH_RC=$?
}
# browse URL [EXTRA]: follow the authorize step as user demo; print where
# the authorization server redirects to.
browse() {
    curl -s -o /dev/null -w '%{redirect_url}' "$1&sandbox_user=demo${2:-}"
}
mode_of() { stat -c %a "$1"; }
requests() { sb_state contacts=0 | jq -r '.requests.total'; }

# ---- v3: authorization code + PKCE through the loopback listener ----
auth_bg --api v3 --api-key "$V3" --token-file "$T/t3.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3"
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
case "$url" in
*code_challenge_method=S256*scope=* | *scope=*code_challenge_method=S256*) ok "v3 URL has PKCE S256 and scopes" ;;
*) not_ok "v3 URL has PKCE S256 and scopes" "$url" ;;
esac
check "v3 URL joins scopes with +" grep -q 'scope=contact_data+account_read+offline_access' "$T/a.out"
loc=$(browse "$url")
case "$loc" in "$RURI?"*code=*) ok "sandbox redirects to our callback" ;;
*) not_ok "sandbox redirects to our callback" "$loc" ;; esac
page=$(curl -s "$loc")
auth_wait
check "v3 auth exit 0" [ "$AUTH_RC" = 0 ]
case "$page" in *"Authorization complete"*) ok "browser gets a success page" ;;
*) not_ok "browser gets a success page" "$page" ;; esac
check "v3 token file mode 0600" [ "$(mode_of "$T/t3.json")" = 600 ]
check "v3 token file has access+refresh" \
    jqe '.api=="v3" and (.access_token|length>20) and (.refresh_token|length>10) and .expires_at>0' "$T/t3.json"
check "no token on stdout/stderr" bash -c "! grep -qF \"\$(jq -r .access_token '$T/t3.json')\" '$T/a.out' '$T/a.err'"
cts check --api v3 --api-key "$V3" --token-file "$T/t3.json" \
    --base-url "$SB_URL/v3" --auth-url "$AUTH3"
check "check works with the v3 token file" [ "$RC" = 0 ]
check "check names the account" grep -q a07e1demo0001 "$T/out"

# ---- v2: server flow ----
auth_bg --api v2 --api-key "$V2" --client-secret "$V2S" --token-file "$T/t2.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH2"
url=$(wait_out 'http://[^ ]*/oauth/siteowner/authorize?[^ ]*') || url=""
check "v2 URL is the siteowner authorize" [ -n "$url" ]
loc=$(browse "$url")
curl -s "$loc" >/dev/null
auth_wait
check "v2 auth exit 0" [ "$AUTH_RC" = 0 ]
check "v2 token file mode 0600" [ "$(mode_of "$T/t2.json")" = 600 ]
check "v2 token file" jqe '.api=="v2" and (.access_token|length>10) and (.refresh_token==null)' "$T/t2.json"
cts check --api v2 --api-key "$V2" --token-file "$T/t2.json" \
    --base-url "$SB_URL/v2" --auth-url "$AUTH2"
check "check works with the v2 token file" [ "$RC" = 0 ]

# ---- state mismatch: a forged redirect is refused, nothing exchanged ----
before=$(requests)
auth_bg --api v3 --api-key "$V3" --token-file "$T/t-state.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3"
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
curl -s -o /dev/null "http://127.0.0.1:$PORT/favicon.ico" # not the callback
page=$(curl -s "$RURI?code=forged-code&state=not-the-state")
auth_wait
check "state mismatch exit 77" [ "$AUTH_RC" = 77 ]
check "state mismatch explained" grep -q "state" "$T/a.err"
case "$page" in *"Authorization failed"*) ok "browser told the state is wrong" ;;
*) not_ok "browser told the state is wrong" "$page" ;; esac
check "state mismatch: no token file" [ ! -e "$T/t-state.json" ]
check "state mismatch: no token call" [ "$(requests)" = "$before" ]

# ---- access denied ----
auth_bg --api v3 --api-key "$V3" --token-file "$T/t-deny.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3"
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
loc=$(browse "$url" "&sandbox_deny=1")
curl -s "$loc" >/dev/null
auth_wait
check "access_denied exit 77" [ "$AUTH_RC" = 77 ]
check "access_denied explained" grep -q "declined" "$T/a.err"

# ---- --no-listen: paste the redirected URL; and a PKCE mismatch ----
mkfifo "$T/stdin"
exec 4<>"$T/stdin"
AUTH_STDIN="$T/stdin" auth_bg --api v3 --api-key "$V3" --token-file "$T/t-paste.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3" --no-listen
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
check "paste mode asks for the URL" grep -q "paste it here" "$T/a.out"
# Nothing may listen in paste mode.
check "paste mode does not listen" bash -c "! (exec 9<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"
loc=$(browse "$url")
echo "$loc" >&4
auth_wait
check "paste mode exit 0" [ "$AUTH_RC" = 0 ]
check "paste mode token file" jqe '.refresh_token|length>10' "$T/t-paste.json"

# The authorize request carries another challenge than ctct-sync's verifier
# answers: the sandbox must refuse the exchange, ctct-sync explains it.
AUTH_STDIN="$T/stdin" auth_bg --api v3 --api-key "$V3" --token-file "$T/t-pkce.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3" --no-listen
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
bad=$(printf '%s' "$url" | sed 's/code_challenge=[^&]*/code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM/')
loc=$(browse "$bad")
echo "$loc" >&4
auth_wait
check "PKCE verifier mismatch exit 77" [ "$AUTH_RC" = 77 ]
check "PKCE mismatch explained (invalid_grant)" grep -q "invalid_grant" "$T/a.err"
check "PKCE mismatch: no token file" [ ! -e "$T/t-pkce.json" ]
exec 4>&-

# ---- device flow ----
auth_bg --api v3 --api-key "$V3" --token-file "$T/t-dev.json" \
    --auth-url "$AUTH3" --device
vuri=$(wait_out 'http://[^ ]*device/verify?[^ ]*') || vuri=""
check "device flow prints the verification URL" [ -n "$vuri" ]
curl -s -o /dev/null "$vuri&sandbox_user=demo"
auth_wait
check "device flow exit 0" [ "$AUTH_RC" = 0 ]
check "device flow token file" jqe '.api=="v3" and (.refresh_token|length>10)' "$T/t-dev.json"
check "device token file mode 0600" [ "$(mode_of "$T/t-dev.json")" = 600 ]

# ---- --open: a fake xdg-open first on PATH plays the browser ----
mkdir -p "$T/bin"
cat >"$T/bin/xdg-open" <<EOF
#!/bin/sh
echo "\$1" >>"$T/opened"
loc=\$(curl -s -o /dev/null -w '%{redirect_url}' "\$1&sandbox_user=demo")
curl -s "\$loc" >/dev/null
EOF
chmod +x "$T/bin/xdg-open"
PATH="$T/bin:$PATH" auth_bg --api v3 --api-key "$V3" --token-file "$T/t-open.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3" --open
auth_wait
check "--open: flow completes through xdg-open" [ "$AUTH_RC" = 0 ]
check "--open: xdg-open got the authorize URL once" \
    [ "$(grep -c '/authorize?client_id=' "$T/opened" 2>/dev/null)" = 1 ]
rm -f "$T/opened"

# ---- timeout; and no browser is opened without --open ----
PATH="$T/bin:$PATH" CTCT_SYNC_AUTH_TIMEOUT=1 auth_bg --api v3 --api-key "$V3" \
    --token-file "$T/t-to.json" --redirect-uri "$RURI" --auth-url "$AUTH3"
auth_wait
check "no browser: timeout exit 75" [ "$AUTH_RC" = 75 ]
check "timeout explained" grep -q "no redirect arrived" "$T/a.err"
check "no --open: xdg-open never run" [ ! -e "$T/opened" ]

# ---- a browser's idle keep-alive socket and a half-sent request do not
# keep auth running: it ends when the code has arrived, or at its timeout ----
# holder.py PORT FLAG: open an idle connection and one with half a request
# head; print "closed" when ctct-sync closes the idle one, "held" after 40 s.
cat >"$T/holder.py" <<'EOF'
import socket, sys
port = int(sys.argv[1])
idle = socket.create_connection(("127.0.0.1", port))
part = socket.create_connection(("127.0.0.1", port))
part.sendall(b"GET /callback?code=half HTTP/1.1\r\nHost: 127.0.0.1\r\n")
open(sys.argv[2], "w").write("ready\n")
idle.settimeout(40)
try:
    print("closed" if idle.recv(1) == b"" else "data")
except socket.timeout:
    print("held")
EOF
now_ms() { echo $(($(date +%s%N) / 1000000)); }
hold() { # start the holder; wait until its two connections are open
    local i
    rm -f "$T/held"
    python3 "$T/holder.py" "$PORT" "$T/held" >"$T/holder.out" 2>&1 &
    HOLDER=$!
    _pids="$_pids $HOLDER"
    for i in $(seq 1 100); do
        [ -s "$T/held" ] && return 0
        kill -0 "$HOLDER" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

auth_bg --api v3 --api-key "$V3" --token-file "$T/t-ka.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH3"
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
hold || not_ok "idle connections: holder connected"
loc=$(browse "$url")
t0=$(now_ms)
page=$(curl -s "$loc")
auth_wait
dt=$(($(now_ms) - t0))
wait "$HOLDER" 2>/dev/null
check "idle connections: the code ends auth (exit 0)" [ "$AUTH_RC" = 0 ]
check "idle connections: auth ends at once, not when the peer closes (${dt} ms)" \
    [ "$dt" -lt 8000 ]
check "idle connections: ctct-sync closed the idle socket" grep -q closed "$T/holder.out"
case "$page" in *"Authorization complete"*) ok "idle connections: the browser still gets its page" ;;
*) not_ok "idle connections: the browser still gets its page" "$page" ;; esac

# 8 s: the holder (python) must connect before the wait ends, even on a
# loaded machine.
CTCT_SYNC_AUTH_TIMEOUT=8 auth_bg --api v3 --api-key "$V3" \
    --token-file "$T/t-ka2.json" --redirect-uri "$RURI" --auth-url "$AUTH3"
url=$(wait_out 'http://[^ ]*/authorize?[^ ]*') || url=""
t0=$(now_ms)
hold || not_ok "half-sent request: holder connected"
auth_wait
dt=$(($(now_ms) - t0))
wait "$HOLDER" 2>/dev/null
check "half-sent request: timeout exit 75" [ "$AUTH_RC" = 75 ]
check "half-sent request: auth ends at its 8 s timeout (${dt} ms)" [ "$dt" -lt 11000 ]
check "half-sent request: ctct-sync closed the idle socket" grep -q closed "$T/holder.out"

# ---- every configuration problem at once, the redirect URI's first ----
before=$(requests)
cts auth --auth-url "$AUTH3" --redirect-uri "$AUTH3/authorize" \
    --registered-redirect-uri "$RURI" --scopes "contact_data,account_read,bogus_scope"
check "several problems: exit 78" [ "$RC" = 78 ]
check "several problems: one numbered list" grep -q "4 problems in the configuration" "$T/err"
line_of() { grep -n -- "$1" "$T/err" | head -1 | cut -d: -f1; }
l1=$(line_of '1\. bad redirect URI: .*points at the authorization server')
l2=$(line_of '2\. no API key')
l3=$(line_of '3\. no token file')
l4=$(line_of '4\. --scopes: .bogus_scope')
in_order() { # LINE... : all found, each after the one before
    local prev=0 n
    for n in "$@"; do
        [ -n "$n" ] && [ "$n" -gt "$prev" ] || return 1
        prev=$n
    done
}
check "several problems: redirect URI first, then key, token file, scope" \
    in_order "$l1" "$l2" "$l3" "$l4"
check "several problems: the registered URI offered" grep -q "registered redirect URI is $RURI" "$T/err"
cts auth --api v2 --api-key "$V2" --token-file "$T/no-such-dir/t.json" \
    --auth-url "$AUTH2" --redirect-uri "$RURI" --registered-redirect-uri "$RURI/"
check "v2 problems: exit 78" [ "$RC" = 78 ]
l1=$(line_of '1\. bad redirect URI: .*different path')
l2=$(line_of "2\. --token-file .*no-such-dir' does not exist")
l3=$(line_of '3\. no client secret')
check "v2 problems: mismatch, token file directory, secret in that order" \
    in_order "$l1" "$l2" "$l3"
cts auth --api v2 --device --auth-url "$AUTH2"
check "--device on v2 with no key: 64 (usage first)" [ "$RC" = 64 ]
check "--device on v2: both listed" eval 'grep -q "1\. --device" "$T/err" && grep -q "2\. no API key" "$T/err"'
check "several problems: nothing sent" [ "$(requests)" = "$before" ]

# ---- redirect-URI diagnoses: exit 78, nothing sent ----
before=$(requests)
diag() { # NAME EXPECT-IN-STDERR ARGS...
    local name=$1 want=$2
    shift 2
    cts auth --api v3 --api-key "$V3" --token-file "$T/t-diag.json" \
        --auth-url "$AUTH3" "$@"
    if [ "$RC" = 78 ] && grep -q -- "$want" "$T/err" && [ ! -e "$T/t-diag.json" ]; then
        ok "diagnosis: $name"
    else
        not_ok "diagnosis: $name" "rc=$RC $(head -c 300 "$T/err")"
    fi
}
diag "points at the authorization server" "OWN callback" \
    --redirect-uri "$SB_URL/oauth2/default/v1/callback"
diag "points at the real CC auth host" "authorization server" \
    --redirect-uri "https://authz.constantcontact.com/oauth2/default/v1/authorize"
diag "fragment" "fragment" --redirect-uri "$RURI#x"
diag "non-loopback http" "plain http://" --redirect-uri "http://app.example.com/callback"
diag "relative" "absolute" --redirect-uri "/callback"
diag "localhost vs 127.0.0.1" "localhost" \
    --redirect-uri "http://localhost:$PORT/callback" --registered-redirect-uri "$RURI"
diag "port differs" "different port" \
    --redirect-uri "http://127.0.0.1:$((PORT + 1))/callback" --registered-redirect-uri "$RURI"
diag "scheme differs" "scheme" \
    --redirect-uri "https://app.example.com/cb" --registered-redirect-uri "http://app.example.com/cb"
diag "path differs" "different path" \
    --redirect-uri "$RURI/" --registered-redirect-uri "$RURI"
diag "query breaks the match" "query" \
    --redirect-uri "$RURI?app=1" --registered-redirect-uri "$RURI"
diag "caret under the difference" "\^ first difference" \
    --redirect-uri "$RURI/" --registered-redirect-uri "$RURI"
check "diagnoses sent no request" [ "$(requests)" = "$before" ]

# v2 without a client secret is a configuration error, before any request.
cts auth --api v2 --api-key "$V2" --token-file "$T/t-x.json" \
    --redirect-uri "$RURI" --auth-url "$AUTH2"
check "v2 without secret exit 78" [ "$RC" = 78 ]

finish
