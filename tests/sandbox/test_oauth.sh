#!/usr/bin/env bash
# test_oauth.sh — ctct-sandbox's OAuth servers end to end with curl + jq:
# v2 server flow and tokeninfo, v3 authorization code (+PKCE, +Basic),
# refresh rotation, device flow, redirect-URI matching, code reuse and
# expiry, the token endpoint's 1 request/s.  A scripted "browser" is curl
# reading the authorize redirect (-w '%{redirect_url}').
. "$(dirname "$0")/../integration/lib.sh"

CB="http://127.0.0.1:8765/callback"
CB2="https://app.example.com/oauth/cb?tenant=7"
cat >"$T/accounts.json" <<EOF
{
  "apps": [
    {"api": "v2", "api_key": "v2key-alpha-000000000001", "secret": "v2secret",
     "redirect_uris": ["$CB", "$CB2"]},
    {"api": "v3", "client_id": "v3rot-000000000000000001", "secret": "v3secret",
     "redirect_uris": ["$CB"], "refresh": "rotating", "device_flow": true},
    {"api": "v3", "client_id": "v3long-00000000000000001", "secret": "longsecret",
     "redirect_uris": ["$CB"], "refresh": "long_lived"},
    {"api": "v3", "client_id": "v3nodev-0000000000000001", "secret": "x",
     "redirect_uris": ["$CB"]}
  ],
  "accounts": [
    {"user_name": "alpha", "encoded_account_id": "a07e1alpha001",
     "organization_name": "Alpha Inc", "contact_email": "a@alpha.example",
     "lists": [{"id": "1", "list_id": "11111111-0001-4000-8000-000000000001",
                "name": "General"}]},
    {"user_name": "beta", "encoded_account_id": "a07e1beta0001",
     "organization_name": "Beta Ltd", "contact_email": "b@beta.example",
     "lists": [{"id": "1", "list_id": "22222222-0001-4000-8000-000000000001",
                "name": "General"}]}
  ]
}
EOF
V2KEY=v2key-alpha-000000000001
V3ROT=v3rot-000000000000000001
V3LONG=v3long-00000000000000001
V3NODEV=v3nodev-0000000000000001

sb_start --accounts "$T/accounts.json" --token-rate 0 || { not_ok "sandbox starts"; finish; }
V2A="$SB_URL/oauth2"
V3A="$SB_URL/oauth2/default/v1"

enc() { jq -rn --arg v "$1" '$v|@uri'; }
# Value of query parameter $2 in URL $1, decoded.
qp() {
    local v
    v=$(printf '%s' "$1" | sed -n 's/.*[?&]'"$2"'=\([^&#]*\).*/\1/p')
    v=${v//+/ }
    printf '%b' "${v//%/\\x}"
}
# The Location a browser would follow (empty when no redirect).
redir() { curl -s -o /dev/null -w '%{redirect_url}' "$1"; }
# HTTP request: status in $CODE, body in $T/body.
req() { CODE=$(curl -s -o "$T/body" -w '%{http_code}' "$@"); }
jb() { jq -er "$@" "$T/body"; }
# Payload of a JWT as JSON.
jwt_payload() {
    local p
    p=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
    while [ $((${#p} % 4)) -ne 0 ]; do p="$p="; done
    printf '%s' "$p" | base64 -d
}
new_verifier() { openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n' | cut -c1-64; }
challenge_of() { printf '%s' "$1" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n'; }

# ---------------------------------------------------------------- v2 flow
loc=$(redir "$V2A/oauth/siteowner/authorize?response_type=code&client_id=$V2KEY&redirect_uri=$(enc "$CB")&state=s2&sandbox_user=alpha")
code=$(qp "$loc" code)
if [ "${loc%%\?*}" = "$CB" ] && [ -n "$code" ] && [ "$(qp "$loc" username)" = alpha ] &&
    [ "$(qp "$loc" state)" = s2 ]; then
    ok "v2 authorize redirects to the callback with code, username, state"
else
    not_ok "v2 authorize redirects to the callback with code, username, state" "$loc"
fi

# The PHP SDK's way: parameters in the query string of the POST.
req -X POST "$V2A/oauth/token?grant_type=authorization_code&client_id=$V2KEY&client_secret=v2secret&code=$code&redirect_uri=$(enc "$CB")"
V2TOK=$(jb .access_token 2>/dev/null)
if [ "$CODE" = 200 ] && [ -n "$V2TOK" ] && jb '.expires_in == 315359999 and .token_type == "Bearer"' >/dev/null; then
    ok "v2 token exchange (query parameters) gives a 10-year Bearer token"
else
    not_ok "v2 token exchange" "$CODE $(cat "$T/body")"
fi

req -X POST "$V2A/oauth/token?grant_type=authorization_code&client_id=$V2KEY&client_secret=v2secret&code=$code&redirect_uri=$(enc "$CB")"
check "v2 code reuse is invalid_grant" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant

req -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "access_token=$V2TOK" "$V2A/tokeninfo.htm"
check "v2 token of a replayed code is revoked (tokeninfo 404)" test "$CODE" = 404

# A fresh code, exchanged with a form body this time.
loc=$(redir "$V2A/oauth/siteowner/authorize?response_type=code&client_id=$V2KEY&redirect_uri=$(enc "$CB")&sandbox_user=beta")
code=$(qp "$loc" code)
req -X POST "$V2A/oauth/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V2KEY --data-urlencode client_secret=wrong \
    --data-urlencode code="$code" --data-urlencode redirect_uri="$CB"
check "v2 bad client_secret is 401 invalid_client" \
    test "$CODE" = 401 -a "$(jb .error)" = invalid_client
req -X POST "$V2A/oauth/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V2KEY --data-urlencode client_secret=v2secret \
    --data-urlencode code="$code" --data-urlencode redirect_uri="$CB2"
check "v2 token redirect_uri differing from authorize's is redirect_uri_mismatch" \
    test "$CODE" = 400 -a "$(jb .error)" = redirect_uri_mismatch
req -X POST "$V2A/oauth/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V2KEY --data-urlencode client_secret=v2secret \
    --data-urlencode code="$code" --data-urlencode redirect_uri="$CB"
V2TOK=$(jb .access_token 2>/dev/null)
check "v2 token exchange (form body)" test "$CODE" = 200 -a -n "$V2TOK"

# ------------------------------------------------------------ tokeninfo
req -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "access_token=$V2TOK" "$V2A/tokeninfo.htm"
if [ "$CODE" = 200 ] && jb --arg k "$V2KEY" '.client_id == $k and .user_name == "beta" and (.expires_in | type == "number") and .expires_in > 315000000' >/dev/null; then
    ok "tokeninfo 200 (form body): client_id, user_name, expires_in"
else
    not_ok "tokeninfo 200 (form body)" "$CODE $(cat "$T/body")"
fi
req -X POST "$V2A/tokeninfo.htm?access_token=$V2TOK"
check "tokeninfo 200 (query, no body, as the PHP SDK 2.x)" \
    test "$CODE" = 200 -a "$(jb .user_name)" = beta
req -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "access_token=nope-000000" "$V2A/tokeninfo.htm"
check "tokeninfo 404 for an unknown token" test "$CODE" = 404
req "$V2A/tokeninfo.htm?access_token=$V2TOK"
check "tokeninfo 405 for GET" test "$CODE" = 405
req -X POST -H 'Content-Type: application/json' --data "{\"access_token\":\"$V2TOK\"}" "$V2A/tokeninfo.htm"
check "tokeninfo 415 for a JSON body" test "$CODE" = 415
req -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "access_token=demo-v2-token-000000000000000000001" "$V2A/tokeninfo.htm"
check "tokeninfo 404: the demo account is not loaded with --accounts" test "$CODE" = 404
# Expiry follows the sandbox clock: 11 years on, the token is dead.
now=$(date +%s)
curl -fsS -X POST -d "{\"now\":$((now + 11 * 366 * 86400))}" "$SB_URL/_sandbox/clock" >/dev/null
req -X POST "$V2A/tokeninfo.htm?access_token=$V2TOK"
check "tokeninfo 404 once the token expired (sandbox clock)" test "$CODE" = 404
curl -fsS -X POST -d '{"now":0}' "$SB_URL/_sandbox/clock" >/dev/null

# --------------------------------------------------- v2 authorize errors
for bad in "https://127.0.0.1:8765/callback:scheme" "http://localhost:8765/callback:host" \
    "http://127.0.0.1:8766/callback:port" "http://127.0.0.1/callback:port" \
    "http://127.0.0.1:8765/callback/:path" "http://127.0.0.1:8765/cb:path" \
    "http://127.0.0.1:8765/callback?x=1:query" \
    "https://app.example.com/oauth/cb?tenant=8:query" \
    "$V2A/oauth/siteowner/authorize:port"; do
    uri=${bad%:*}
    what=${bad##*:}
    req "$V2A/oauth/siteowner/authorize?response_type=code&client_id=$V2KEY&redirect_uri=$(enc "$uri")"
    if [ "$CODE" = 400 ] && [ "$(jb .error)" = redirect_uri_mismatch ] &&
        jb .error_description | grep -q "the $what differs"; then
        ok "v2 redirect mistake ($what): $uri → redirect_uri_mismatch"
    else
        not_ok "v2 redirect mistake ($what): $uri" "$CODE $(cat "$T/body")"
    fi
done
loc=$(redir "$V2A/oauth/siteowner/authorize?response_type=code&client_id=$V2KEY&redirect_uri=$(enc "$CB2")")
check "v2 a registered URI with a query gets the code appended with &" \
    test "${loc%%&code=*}" = "$CB2" -a -n "$(qp "$loc" code)"
req "$V2A/oauth/siteowner/authorize?response_type=code&client_id=unknown-key&redirect_uri=$(enc "$CB")"
check "v2 unknown client_id is 400" test "$CODE" = 400
loc=$(redir "$V2A/oauth/siteowner/authorize?response_type=code&client_id=$V2KEY&redirect_uri=$(enc "$CB")&state=d&sandbox_deny=1")
check "v2 denial redirects with error=access_denied and the state" \
    test "$(qp "$loc" error)" = access_denied -a "$(qp "$loc" state)" = d -a -z "$(qp "$loc" code)"

# ------------------------------------------------------- v3 PKCE flow
VER=$(new_verifier)
CH=$(challenge_of "$VER")
SCOPE="contact_data account_read offline_access"
auth3() { # client verifier-challenge extra...
    local cid=$1 ch=$2
    shift 2
    redir "$V3A/authorize?client_id=$cid&redirect_uri=$(enc "$CB")&response_type=code&scope=$(enc "$SCOPE" | sed 's/%20/+/g')&state=xyz${ch:+&code_challenge=$ch&code_challenge_method=S256}$*"
}
loc=$(auth3 $V3ROT "$CH" "&sandbox_user=alpha")
code=$(qp "$loc" code)
check "v3 authorize redirects with code and state" \
    test "${loc%%\?*}" = "$CB" -a -n "$code" -a "$(qp "$loc" state)" = xyz

req -X POST "$V3A/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V3ROT --data-urlencode code="$code" \
    --data-urlencode redirect_uri="$CB" --data-urlencode code_verifier="$(new_verifier)"
check "v3 PKCE verifier mismatch is invalid_grant" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
req -X POST "$V3A/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V3ROT --data-urlencode code="$code" \
    --data-urlencode redirect_uri="$CB"
check "v3 PKCE code without a verifier is invalid_grant" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
req -X POST "$V3A/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V3ROT --data-urlencode code="$code" \
    --data-urlencode redirect_uri="$CB" --data-urlencode code_verifier="$VER"
AT=$(jb .access_token 2>/dev/null)
RT1=$(jb .refresh_token 2>/dev/null)
if [ "$CODE" = 200 ] && [ -n "$AT" ] && [ -n "$RT1" ] &&
    jb '.token_type == "Bearer" and .expires_in == 86400' >/dev/null &&
    jwt_payload "$AT" | jq -e --arg c $V3ROT '.cid == $c and .aud == "https://api.cc.email/v3" and .platform_user_id == "a07e1alpha001" and (.exp - .iat) == 86400 and (.scp | index("offline_access"))' >/dev/null; then
    ok "v3 PKCE exchange: JWT (cid, aud, exp) + refresh token"
else
    not_ok "v3 PKCE exchange" "$CODE $(cat "$T/body")"
fi
req -H "Authorization: Bearer $AT" "$SB_URL/v3/account/summary"
check "v3 the minted JWT authenticates API calls as its account" \
    test "$CODE" = 200 -a "$(jb .encoded_account_id)" = a07e1alpha001
req -X POST "$V3A/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V3ROT --data-urlencode code="$code" \
    --data-urlencode redirect_uri="$CB" --data-urlencode code_verifier="$VER"
check "v3 code reuse is invalid_grant" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
req -H "Authorization: Bearer $AT" "$SB_URL/v3/account/summary"
check "v3 token of a replayed code is revoked (401)" test "$CODE" = 401

# ----------------------------------------------------- refresh rotation
loc=$(auth3 $V3ROT "$CH")
req -X POST "$V3A/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode client_id=$V3ROT --data-urlencode code="$(qp "$loc" code)" \
    --data-urlencode redirect_uri="$CB" --data-urlencode code_verifier="$VER"
RT1=$(jb .refresh_token)
req -X POST "$V3A/token" -d grant_type=refresh_token -d client_id=$V3ROT --data-urlencode refresh_token="$RT1"
RT2=$(jb .refresh_token 2>/dev/null)
AT2=$(jb .access_token 2>/dev/null)
check "v3 refresh gives a new access token and a NEW refresh token" \
    test "$CODE" = 200 -a -n "$AT2" -a -n "$RT2" -a "$RT2" != "$RT1"
req -X POST "$V3A/token" -d grant_type=refresh_token -d client_id=$V3ROT --data-urlencode refresh_token="$RT1"
if [ "$CODE" = 400 ] && jb '.error == "invalid_grant" and .error_description == "The refresh token is invalid or expired."' >/dev/null; then
    ok "v3 the old refresh token is rejected after rotation"
else
    not_ok "v3 the old refresh token is rejected after rotation" "$CODE $(cat "$T/body")"
fi
req -X POST -u "$V3ROT:v3secret" "$V3A/token" -d grant_type=refresh_token --data-urlencode refresh_token="$RT2"
RT3=$(jb .refresh_token 2>/dev/null)
check "v3 the rotated refresh token works once (Basic auth)" \
    test "$CODE" = 200 -a -n "$RT3" -a "$RT3" != "$RT2"
req -X POST "$V3A/token" -d grant_type=refresh_token -d client_id=$V3LONG --data-urlencode refresh_token="$RT3"
check "v3 a refresh token is bound to its client" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
# 180 days unused: expired.
now=$(date +%s)
curl -fsS -X POST -d "{\"now\":$((now + 181 * 86400))}" "$SB_URL/_sandbox/clock" >/dev/null
req -X POST "$V3A/token" -d grant_type=refresh_token -d client_id=$V3ROT --data-urlencode refresh_token="$RT3"
check "v3 a refresh token unused for 180 days is invalid_grant" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
curl -fsS -X POST -d '{"now":0}' "$SB_URL/_sandbox/clock" >/dev/null

# Long-lived app, confidential client (Basic, no PKCE).
loc=$(auth3 $V3LONG "")
req -X POST -u "$V3LONG:longsecret" "$V3A/token" -d grant_type=authorization_code \
    --data-urlencode code="$(qp "$loc" code)" --data-urlencode redirect_uri="$CB"
LRT=$(jb .refresh_token 2>/dev/null)
check "v3 Basic-auth code exchange (no PKCE)" test "$CODE" = 200 -a -n "$LRT"
req -X POST -u "$V3LONG:longsecret" "$V3A/token" -d grant_type=refresh_token --data-urlencode refresh_token="$LRT"
req -X POST -u "$V3LONG:longsecret" "$V3A/token" -d grant_type=refresh_token --data-urlencode refresh_token="$LRT"
check "v3 long-lived refresh token keeps working and stays the same" \
    test "$CODE" = 200 -a "$(jb .refresh_token)" = "$LRT"
loc=$(auth3 $V3LONG "")
req -X POST -u "$V3LONG:badsecret" "$V3A/token" -d grant_type=authorization_code \
    --data-urlencode code="$(qp "$loc" code)" --data-urlencode redirect_uri="$CB"
check "v3 Basic auth with a bad secret is 401 invalid_client" \
    test "$CODE" = 401 -a "$(jb .error)" = invalid_client
req -X POST "$V3A/token" -d grant_type=authorization_code -d client_id=$V3LONG \
    --data-urlencode code="$(qp "$loc" code)" --data-urlencode redirect_uri="$CB"
check "v3 a code without PKCE needs the client secret (401)" test "$CODE" = 401

# No offline_access, no refresh token.
loc=$(redir "$V3A/authorize?client_id=$V3ROT&redirect_uri=$(enc "$CB")&response_type=code&scope=contact_data+account_read&state=a&code_challenge=$CH&code_challenge_method=S256")
req -X POST "$V3A/token" -d grant_type=authorization_code -d client_id=$V3ROT \
    --data-urlencode code="$(qp "$loc" code)" --data-urlencode redirect_uri="$CB" \
    --data-urlencode code_verifier="$VER"
check "v3 no refresh token without offline_access" \
    test "$CODE" = 200 -a "$(jq -r '.refresh_token // "none"' "$T/body")" = none

# Codes live 5 minutes on the sandbox clock.
loc=$(auth3 $V3ROT "$CH")
now=$(date +%s)
curl -fsS -X POST -d "{\"now\":$((now + 400))}" "$SB_URL/_sandbox/clock" >/dev/null
req -X POST "$V3A/token" -d grant_type=authorization_code -d client_id=$V3ROT \
    --data-urlencode code="$(qp "$loc" code)" --data-urlencode redirect_uri="$CB" \
    --data-urlencode code_verifier="$VER"
check "v3 a code older than 5 minutes is invalid_grant" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
curl -fsS -X POST -d '{"now":0}' "$SB_URL/_sandbox/clock" >/dev/null

# Token redirect_uri must equal the authorize one.
loc=$(auth3 $V3ROT "$CH")
req -X POST "$V3A/token" -d grant_type=authorization_code -d client_id=$V3ROT \
    --data-urlencode code="$(qp "$loc" code)" --data-urlencode redirect_uri="$CB/" \
    --data-urlencode code_verifier="$VER"
check "v3 token redirect_uri differing from authorize's is rejected" \
    test "$CODE" = 400 -a "$(jb .error)" = invalid_grant

# --------------------------------------------------- v3 authorize errors
for bad in "https://127.0.0.1:8765/callback:scheme" "http://localhost:8765/callback:host" \
    "http://127.0.0.1:8766/callback:port" "http://127.0.0.1:8765/callback/:path" \
    "http://127.0.0.1:8765/callback?next=/:query" "$V3A/authorize:port"; do
    uri=${bad%:*}
    what=${bad##*:}
    req "$V3A/authorize?client_id=$V3ROT&redirect_uri=$(enc "$uri")&response_type=code&scope=contact_data&state=s&code_challenge=$CH&code_challenge_method=S256"
    if [ "$CODE" = 400 ] && [ "$(jb .error)" = redirect_uri_mismatch ] &&
        jb .error_description | grep -q "the $what differs"; then
        ok "v3 redirect mistake ($what): $uri → redirect_uri_mismatch"
    else
        not_ok "v3 redirect mistake ($what): $uri" "$CODE $(cat "$T/body")"
    fi
done
loc=$(auth3 $V3ROT "$CH" "&sandbox_deny=1")
check "v3 denial redirects with error=access_denied" \
    test "$(qp "$loc" error)" = access_denied -a "$(qp "$loc" state)" = xyz
loc=$(redir "$V3A/authorize?client_id=$V3ROT&redirect_uri=$(enc "$CB")&response_type=code&scope=contact_data+bogus_scope&state=s")
check "v3 unknown scope redirects with invalid_scope" test "$(qp "$loc" error)" = invalid_scope
loc=$(redir "$V3A/authorize?client_id=$V3ROT&redirect_uri=$(enc "$CB")&response_type=code&scope=contact_data&state=s&code_challenge=$CH&code_challenge_method=plain")
check "v3 code_challenge_method=plain is refused" test "$(qp "$loc" error)" = invalid_request
req "$V3A/authorize?client_id=nobody&redirect_uri=$(enc "$CB")&response_type=code&scope=contact_data&state=s"
check "v3 unknown client_id is 400" test "$CODE" = 400
req "$V3A/authorize?client_id=$V2KEY&redirect_uri=$(enc "$CB")&response_type=code&scope=contact_data&state=s"
check "v3 authorize refuses a v2 API key" test "$CODE" = 400

# ----------------------------------------------------------- device flow
req -X POST "$V3A/device/authorize" -d client_id=$V3ROT --data-urlencode scope="$SCOPE"
DC=$(jb .device_code 2>/dev/null)
VUC=$(jb .verification_uri_complete 2>/dev/null)
if [ "$CODE" = 200 ] && [ -n "$DC" ] && jb '(.user_code|test("^[A-Z]{4}-[A-Z]{4}$")) and .interval > 0 and .expires_in > 0 and (.verification_uri|startswith("http"))' >/dev/null; then
    ok "device authorize returns device_code, user_code, verification URIs"
else
    not_ok "device authorize" "$CODE $(cat "$T/body")"
fi
DEVG=urn:ietf:params:oauth:grant-type:device_code
req -X POST "$V3A/token?client_id=$V3ROT&device_code=$DC&grant_type=$DEVG"
check "device poll before the user visits: authorization_pending" \
    test "$CODE" = 400 -a "$(jb .error)" = authorization_pending
req -X POST "$V3A/token?client_id=$V3ROT&device_code=$DC&grant_type=$DEVG"
check "device poll faster than the interval: slow_down" \
    test "$CODE" = 400 -a "$(jb .error)" = slow_down
req "$VUC&sandbox_user=beta"
check "the user visits verification_uri_complete (auto-approve)" test "$CODE" = 200
req -X POST "$V3A/token" -d client_id=$V3ROT --data-urlencode device_code="$DC" -d grant_type=$DEVG
DAT=$(jb .access_token 2>/dev/null)
check "device poll after approval gives tokens for the approving account" \
    test "$CODE" = 200 -a -n "$(jb .refresh_token 2>/dev/null)" -a \
    "$(jwt_payload "$DAT" | jq -r .platform_user_id)" = a07e1beta0001
req -X POST "$V3A/token" -d client_id=$V3ROT --data-urlencode device_code="$DC" -d grant_type=$DEVG
check "a device code is single-use" test "$CODE" = 400 -a "$(jb .error)" = invalid_grant
req -X POST "$V3A/device/authorize" -d client_id=$V3ROT -d scope=contact_data
DC=$(jb .device_code)
req "$(jb .verification_uri_complete)&sandbox_deny=1"
req -X POST "$V3A/token" -d client_id=$V3ROT --data-urlencode device_code="$DC" -d grant_type=$DEVG
check "device flow denied by the user: access_denied" \
    test "$CODE" = 400 -a "$(jb .error)" = access_denied
req -X POST "$V3A/device/authorize" -d client_id=$V3NODEV -d scope=contact_data
check "device flow refused for an app without it" \
    test "$CODE" = 400 -a "$(jb .error)" = unauthorized_client

# Tokens minted for tests (POST /_sandbox/token) are real: JWT + refresh.
req -X POST -H 'Content-Type: application/json' \
    -d "{\"api\":\"v3\",\"api_key\":\"$V3ROT\",\"account\":\"beta\",\"expires_in\":60}" "$SB_URL/_sandbox/token"
MAT=$(jb .access_token 2>/dev/null)
MRT=$(jb .refresh_token 2>/dev/null)
check "/_sandbox/token mints a JWT for the client and account" \
    test "$(jwt_payload "$MAT" | jq -r '.cid + " " + .platform_user_id')" = "$V3ROT a07e1beta0001"
req -X POST "$V3A/token" -d grant_type=refresh_token -d client_id=$V3ROT --data-urlencode refresh_token="$MRT"
check "a minted refresh token can be exchanged (and rotates)" \
    test "$CODE" = 200 -a -n "$(jb .refresh_token 2>/dev/null)" -a "$(jb .refresh_token 2>/dev/null)" != "$MRT"

req -X POST "$V3A/token" -d client_id=$V3ROT -d grant_type=password
check "unsupported grant_type" test "$CODE" = 400 -a "$(jb .error)" = unsupported_grant_type
req -X POST "$V3A/token" -d grant_type=refresh_token -d refresh_token=x
check "token request without client identity is 401 invalid_client" \
    test "$CODE" = 401 -a "$(jb .error)" = invalid_client
sb_stop

# ------------------------------------- token endpoint: 1 request/s/client
sb_start --accounts "$T/accounts.json" || { not_ok "sandbox starts (default token rate)"; finish; }
V3A="$SB_URL/oauth2/default/v1"
# Five requests back to back on one connection: they cannot all be a
# second apart, so at least one must be throttled, and the first passes.
args=()
for i in 1 2 3 4 5; do
    args+=(-X POST -d client_id=$V3ROT -d grant_type=refresh_token -d refresh_token=r$i
        -o "$T/rl.$i" -w '%{http_code}\n' "$V3A/token")
    [ $i -lt 5 ] && args+=(--next)
done
codes=$(curl -s "${args[@]}")
n429=$(printf '%s\n' "$codes" | grep -c '^429$')
first=$(printf '%s\n' "$codes" | head -1)
if [ "$first" = 400 ] && [ "$n429" -ge 1 ] && [ "$(jq -r .error "$T/rl.5")" = too_many_requests ] ||
    { [ "$n429" -ge 1 ] && grep -q too_many_requests "$T"/rl.*; }; then
    ok "token endpoint: back-to-back requests get 429 too_many_requests ($n429 of 5)"
else
    not_ok "token endpoint 1 request/s" "codes: $(echo $codes)"
fi
sleep 1.2
req -X POST "$V3A/token" -d client_id=$V3ROT -d grant_type=refresh_token -d refresh_token=x
check "token endpoint: after a second's pause the client gets through" test "$CODE" = 400
req -X POST "$V3A/token" -d client_id=$V3LONG -d grant_type=refresh_token -d refresh_token=x
check "token endpoint: the limit is per client id" test "$CODE" = 400
finish
