#!/usr/bin/env bash
# test_auth_refresh.sh — v3 refresh with rotating refresh tokens against
# ctct-sandbox: refresh once and save the new refresh token, the old one is
# rejected, 1 request/s pacing, two runs at once spend the token once, the
# crash between refresh and save is explained, and failures exit 77.
. "$(dirname "$0")/lib.sh"

jqe() { jq -e "$@" >/dev/null; }

V3=it-v3-client-000000000000001
cat >"$T/accounts.json" <<EOF
{"apps":[
  {"api":"v3","client_id":"$V3","secret":"it-v3-secret-000000001",
   "redirect_uris":["http://127.0.0.1:53682/callback"],"refresh":"rotating"}],
 "accounts":[{"user_name":"demo","encoded_account_id":"a07e1demo0001",
   "organization_name":"Demo Company","contact_email":"owner@demo.example",
   "lists":[{"id":"1","list_id":"8c2b2d3e-0001-4000-8000-000000000001",
             "name":"General Interest"}]}]}
EOF
sb_start --accounts "$T/accounts.json" || { not_ok "sandbox start"; finish; }
AUTH3="$SB_URL/oauth2/default/v1"
TF="$T/token.json"

# mint SECONDS: a fresh access+refresh token pair for demo, as the token
# file `ctct-sync auth` would have written; the access token expires in
# SECONDS (short, so that it needs a refresh).
mint() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"api\":\"v3\",\"api_key\":\"$V3\",\"account\":\"demo\",\"expires_in\":$1}" \
        "$SB_URL/_sandbox/token" |
        jq --arg cid "$V3" '{api:"v3",access_token,refresh_token,client_id:$cid}' >"$TF.new" &&
        mv "$TF.new" "$TF" && chmod 600 "$TF"
}
token_calls() {
    sb_state contacts=0 | jq -r '.requests.by_endpoint["POST /oauth2/default/v1/token"] // 0'
}
throttled() {
    sb_state contacts=0 | jq -r '.requests.by_status["429"] // 0'
}
check_v3() {
    cts check --api v3 --api-key "$V3" --token-file "$TF" \
        --base-url "$SB_URL/v3" --auth-url "$AUTH3" "$@"
}
# refresh_status RT: HTTP status of a refresh with RT (waits out the token
# endpoint's 1 request/s when it answers 429).
refresh_status() {
    local i s
    for i in 1 2 3 4 5; do
        s=$(curl -s -o "$T/rs.json" -w '%{http_code}' \
            -d "grant_type=refresh_token&client_id=$V3&refresh_token=$1" "$AUTH3/token")
        [ "$s" != 429 ] && break
        sleep 1.2
    done
    echo "$s"
}

# ---- rotation: refresh once, save the new refresh token ----
mint 30 || { not_ok "mint"; finish; }
RT1=$(jq -r .refresh_token "$TF")
AT1=$(jq -r .access_token "$TF")
c0=$(token_calls)
t0=$(throttled)
check_v3
check "expiring token: check succeeds" [ "$RC" = 0 ]
RT2=$(jq -r .refresh_token "$TF")
check "the file holds a new refresh token" [ -n "$RT2" -a "$RT2" != null -a "$RT2" != "$RT1" ]
check "the file holds a new access token" [ "$(jq -r .access_token "$TF")" != "$AT1" ]
check "refreshed exactly once" [ "$(($(token_calls) - c0 - ($(throttled) - t0)))" = 1 ]
check "token file still 0600" [ "$(stat -c %a "$TF")" = 600 ]
check "no intent record left" [ ! -e "$TF.refresh" ]
check "no secret on stderr" bash -c "! grep -qF -- '$RT2' '$T/err' '$T/out'"
check "old refresh token rejected by the sandbox" [ "$(refresh_status "$RT1")" = 400 ]
check "  ... with invalid_grant" jqe '.error=="invalid_grant"' "$T/rs.json"

# A fresh token is not refreshed again.
c0=$(token_calls)
check_v3
check "fresh token: no refresh" [ "$RC" = 0 -a "$(token_calls)" = "$c0" ]

# ---- import refreshes an expiring token by itself, once, then writes ----
mint 30
RTI=$(jq -r .refresh_token "$TF")
printf 'email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n' >"$T/in.csv"
c0=$(token_calls)
t0=$(throttled)
cts import --api v3 --api-key "$V3" --token-file "$TF" --base-url "$SB_URL/v3" \
    --auth-url "$AUTH3" --list 8c2b2d3e-0001-4000-8000-000000000001 \
    --report "$T/in.report.csv" --state "$T/state" "$T/in.csv"
check "import with an expiring token: exit 0" [ "$RC" = 0 ]
check "import refreshed once" [ "$(($(token_calls) - c0 - ($(throttled) - t0)))" = 1 ]
check "import saved the rotated refresh token" [ "$(jq -r .refresh_token "$TF")" != "$RTI" ]
check "import wrote the contacts" \
    [ "$(sb_state | jq '[.accounts[].contacts[] | select(.email=="ann@example.com" or .email=="bob@example.com")] | length')" = 2 ]

# ---- 1 request/s: two refreshes back to back are spaced, no 429 ----
mint 30
check_v3
t0=$(throttled)
AT=$(curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"api\":\"v3\",\"api_key\":\"$V3\",\"account\":\"demo\",\"expires_in\":30}" \
    "$SB_URL/_sandbox/token" | jq -r .access_token)
# Keep the rotated refresh token and last_refresh_at; only the access token
# is short-lived again, so the next check refreshes at once.
jq --arg at "$AT" '.access_token=$at | .expires_at=0' "$TF" >"$TF.new" && mv "$TF.new" "$TF" && chmod 600 "$TF"
c0=$(token_calls)
check_v3
check "back-to-back refresh succeeds" [ "$RC" = 0 ]
check "back-to-back refresh: one call" [ "$(($(token_calls) - c0))" = 1 ]
check "back-to-back refresh: never throttled" [ "$(throttled)" = "$t0" ]

# ---- two runs at once spend the refresh token once (lock) ----
# mint writes a file without last_refresh_at, so the first call may meet
# the previous step's 1 request/s window and be answered 429 (then waited
# out and repeated): count the calls that were not throttled.
mint 30
c0=$(token_calls)
t0=$(throttled)
"$CTS" check --api v3 --api-key "$V3" --token-file "$TF" --base-url "$SB_URL/v3" \
    --auth-url "$AUTH3" >"$T/p1.out" 2>"$T/p1.err" &
p1=$!
"$CTS" check --api v3 --api-key "$V3" --token-file "$TF" --base-url "$SB_URL/v3" \
    --auth-url "$AUTH3" >"$T/p2.out" 2>"$T/p2.err" &
p2=$!
r1=0
r2=0
wait $p1 || r1=$?
wait $p2 || r2=$?
check "concurrent runs both succeed" [ "$r1" = 0 -a "$r2" = 0 ]
check "concurrent runs refresh once" \
    [ "$(($(token_calls) - c0 - ($(throttled) - t0)))" = 1 ]

# ---- crash between refresh and save ----
mint 30
RTA=$(jq -r .refresh_token "$TF")
# Run without $VALGRIND: the process is meant to die with memory in use.
RC=0
CTCT_SYNC_TEST_CRASH_AFTER_REFRESH=1 "$CTS" check --api v3 --api-key "$V3" \
    --token-file "$TF" --base-url "$SB_URL/v3" --auth-url "$AUTH3" \
    >"$T/out" 2>"$T/err" || RC=$?
check "crash hook: process died (70)" [ "$RC" = 70 ]
check "crash: file still holds the spent token" [ "$(jq -r .refresh_token "$TF")" = "$RTA" ]
check "crash: intent record exists" [ -e "$TF.refresh" ]
check "crash: intent record holds no token" bash -c "! grep -qF -- '$RTA' '$TF.refresh'"
check "crash: intent record is 0600" [ "$(stat -c %a "$TF.refresh")" = 600 ]
check_v3
check "after the crash: exit 77" [ "$RC" = 77 ]
check "after the crash: explains the interruption" grep -q "interrupted" "$T/err"
check "after the crash: gives the auth command" grep -q "ctct-sync auth --api v3" "$T/err"
check "after the crash: key masked in the hint" bash -c "! grep -qF -- '$V3' '$T/err'"

# ---- a refused refresh token without an intent record ----
rm -f "$TF.refresh"
mint 30
jq '.refresh_token="not-a-refresh-token-000000"' "$TF" >"$TF.new" && mv "$TF.new" "$TF" && chmod 600 "$TF"
check_v3
check "refused refresh: exit 77" [ "$RC" = 77 ]
check "refused refresh: invalid_grant explained" grep -q "invalid_grant" "$T/err"
check "refused refresh: no crash story" bash -c "! grep -q interrupted '$T/err'"

# ---- expired, no refresh token ----
mint 30
jq 'del(.refresh_token)' "$TF" >"$TF.new" && mv "$TF.new" "$TF" && chmod 600 "$TF"
CTCT_SYNC_NOW=$(($(date +%s) + 3600)) check_v3
check "expired without refresh token: exit 77" [ "$RC" = 77 ]
check "  ... says how to get a token" grep -q "ctct-sync auth" "$T/err"

# ---- a token file readable by others is refused ----
mint 30
chmod 644 "$TF"
check_v3
check "group/other-readable token file: exit 78" [ "$RC" = 78 ]
check "  ... with chmod advice" grep -q "chmod 600" "$T/err"

finish
