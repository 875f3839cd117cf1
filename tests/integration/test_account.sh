#!/bin/bash
# test_account.sh — the account check (before any write) against ctct-sandbox:
# `check` and `lists` for v2 and v3, the seed case (key of one account +
# token of another → 77, both sides masked, nothing written), cid and
# account mismatches, invalid/expired tokens, unreachable API, 5xx.
. "$(dirname "$0")/lib.sh"

ACCOUNTS="$TOP/samples/accounts.json"
if [ -f "$ACCOUNTS" ]; then
    sb_start --accounts "$ACCOUNTS" || { not_ok "sandbox starts"; finish; }
else
    sb_start || { not_ok "sandbox starts"; finish; }
fi
V2=(--api v2 --base-url "$SB_URL/v2" --auth-url "$SB_URL/oauth2")
V3=(--api v3 --base-url "$SB_URL/v3" --auth-url "$SB_URL/oauth2/default/v1")
DEMO_V2_KEY=demo-v2-key-0000000000000001
DEMO_V2_TOKEN=demo-v2-token-000000000000000000001
DEMO_V3_KEY=demo-v3-client-00000000000001

# mint API KEY ACCOUNT [EXPIRES_IN] → prints the access token
mint() {
    local body
    body=$(jq -nc --arg api "$1" --arg k "$2" --arg a "$3" --arg e "${4:-}" \
        '{api:$api, api_key:$k, account:$a} + (if $e == "" then {} else {expires_in:($e|tonumber)} end)')
    curl -fsS -X POST -H 'Content-Type: application/json' -d "$body" \
        "$SB_URL/_sandbox/token" | jq -r .access_token
}
# mint_json: the whole reply (for refresh tokens)
mint_json() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"api\":\"$1\",\"api_key\":\"$2\",\"account\":\"$3\",\"expires_in\":$4}" \
        "$SB_URL/_sandbox/token"
}
mask() { printf '%s…%s' "${1:0:4}" "${1: -4}"; }
# Neither stdout nor stderr may contain the secret in full.
no_secret() { ! grep -qF -- "$1" "$T/out" "$T/err"; }
writes() { sb_state contacts=0 | jq -r .writes; }

# ---- v2, matching credentials ----
CTCT_ACCESS_TOKEN=$DEMO_V2_TOKEN cts check "${V2[@]}" --api-key "$DEMO_V2_KEY"
check "v2 check, matching key and token → 0" eval '[ "$RC" = 0 ]'
check "v2 check prints the account" grep -q "demo" "$T/out"
check "v2 check masks the token" eval 'no_secret "$DEMO_V2_TOKEN" && grep -qF "$(mask "$DEMO_V2_TOKEN")" "$T/out"'
check "v2 check masks the key" eval 'no_secret "$DEMO_V2_KEY"'
CTCT_ACCESS_TOKEN=$DEMO_V2_TOKEN cts check "${V2[@]}" --api-key "$DEMO_V2_KEY" --account demo --json
check "v2 check --account demo --json" eval '[ "$RC" = 0 ] && jq -e ".ok == true and .account == \"demo\"" "$T/out" >/dev/null'

# ---- v3, matching credentials ----
V3TOK=$(mint v3 "$DEMO_V3_KEY" a07e1demo0001)
if [ -z "$V3TOK" ] || [ "$V3TOK" = null ]; then
    not_ok "mint a v3 demo token" "sandbox /_sandbox/token failed"
else
    ok "mint a v3 demo token"
fi
CTCT_ACCESS_TOKEN=$V3TOK cts check "${V3[@]}" --api-key "$DEMO_V3_KEY" --account a07e1demo0001
check "v3 check, matching cid and account → 0" eval '[ "$RC" = 0 ]'
check "v3 check prints account and organization" eval 'grep -q a07e1demo0001 "$T/out" && grep -q "Demo Company" "$T/out"'
check "v3 check never prints the full token" no_secret "$V3TOK"
CTCT_ACCESS_TOKEN=$V3TOK cts check "${V3[@]}"
check "v3 check without --api-key (cid not compared) → 0" eval '[ "$RC" = 0 ]'

# Token from a token file (0600 JSON, as `auth` writes it).
jq -n --arg t "$V3TOK" '{api:"v3", access_token:$t}' >"$T/tok.json"
chmod 600 "$T/tok.json"
cts check --base-url "$SB_URL/v3" --token-file "$T/tok.json" --api-key "$DEMO_V3_KEY"
check "v3 check with --token-file → 0" eval '[ "$RC" = 0 ] && no_secret "$V3TOK"'

# ---- the seed case: key of one account, token of another ----
if [ -f "$ACCOUNTS" ] && jq -e '.apps and .accounts' "$ACCOUNTS" >/dev/null 2>&1; then
    # samples/accounts.json: apps (api_key, api) and accounts (user_name,
    # encoded_account_id); acme and globex exist for exactly this case.
    app_key() { jq -r --arg p "$1" --arg api "$2" \
        '[.apps[] | select(.api == $api and (.api_key|startswith($p)))][0].api_key // empty' "$ACCOUNTS"; }
    ACME_V2_KEY=$(app_key acme v2)
    GLOBEX_V2_KEY=$(app_key globex v2)
    ACME_V3_KEY=$(app_key acme v3)
    GLOBEX_V3_KEY=$(app_key globex v3)
    GLOBEX_ID=$(jq -r '[.accounts[] | select(.user_name == "globex")][0].encoded_account_id // empty' "$ACCOUNTS")
fi
: "${ACME_V2_KEY:=acme-v2-key-not-in-accounts-file-01}"
if [ -n "${GLOBEX_V2_KEY:-}" ]; then
    GLOBEX_V2_TOKEN=$(mint v2 "$GLOBEX_V2_KEY" globex)
    GLOBEX_USER=globex
else
    # Without the accounts file, the demo token stands in for "account B".
    GLOBEX_V2_TOKEN=$DEMO_V2_TOKEN
    GLOBEX_V2_KEY=$DEMO_V2_KEY
    GLOBEX_USER=demo
fi
if [ -f "$ACCOUNTS" ]; then
    check "acme and globex keys found in samples/accounts.json" eval \
        '[ -n "$GLOBEX_V2_KEY" ] && [ "$GLOBEX_USER" = globex ] && [ -n "$GLOBEX_V3_KEY" ] && [ -n "$GLOBEX_ID" ] && [ "${ACME_V2_KEY#acme}" != "$ACME_V2_KEY" ]'
fi
before=$(writes)
CTCT_ACCESS_TOKEN=$GLOBEX_V2_TOKEN cts check "${V2[@]}" --api-key "$ACME_V2_KEY"
check "seed case v2 (key A + token B) → 77" eval '[ "$RC" = 77 ]'
check "seed message names both sides, masked" eval \
    'grep -qF "issued for API key $(mask "$GLOBEX_V2_KEY"), but --api-key is $(mask "$ACME_V2_KEY")" "$T/err"'
check "seed message: secrets never in full" eval \
    'no_secret "$GLOBEX_V2_TOKEN" && no_secret "$GLOBEX_V2_KEY" && no_secret "$ACME_V2_KEY"'
check "seed message says how to fix it" grep -q "ctct-sync auth" "$T/err"
# The same mistake through import (also --dry-run): refused before any write.
printf 'email,first name\nseed1@example.com,Ann\nseed2@example.com,Bob\n' >"$T/seed.csv"
CTCT_ACCESS_TOKEN=$GLOBEX_V2_TOKEN cts import "${V2[@]}" --api-key "$ACME_V2_KEY" \
    --list 1 --state "$T/state" --report "$T/seed.report.csv" "$T/seed.csv"
check "seed case through import → 77" eval '[ "$RC" = 77 ]'
CTCT_ACCESS_TOKEN=$GLOBEX_V2_TOKEN cts import "${V2[@]}" --api-key "$ACME_V2_KEY" \
    --dry-run --list 1 --state "$T/state" --report "$T/seed.report.csv" "$T/seed.csv"
check "seed case through import --dry-run → 77" eval '[ "$RC" = 77 ]'
check "seed case: nothing written anywhere" eval '[ "$(writes)" = "$before" ]'
check "seed case: no contact stored" eval \
    '[ "$(sb_state | jq "[.accounts[].contacts[]? | select(.email|test(\"^seed\"))] | length")" = 0 ]'

# v2 --account mismatch
CTCT_ACCESS_TOKEN=$GLOBEX_V2_TOKEN cts check "${V2[@]}" --api-key "$GLOBEX_V2_KEY" --account someone-else
check "v2 --account mismatch → 77" eval '[ "$RC" = 77 ] && grep -q "belongs to account '"'$GLOBEX_USER'"'" "$T/err"'

# v3 cid mismatch: a token issued for another client id.
: "${ACME_V3_KEY:=acme-v3-client-not-in-accounts-file}"
if [ -n "${GLOBEX_V3_KEY:-}" ]; then
    B3TOK=$(mint v3 "$GLOBEX_V3_KEY" globex)
    B3KEY=$GLOBEX_V3_KEY
else
    B3TOK=$V3TOK
    B3KEY=$DEMO_V3_KEY
fi
CTCT_ACCESS_TOKEN=$B3TOK cts check "${V3[@]}" --api-key "$ACME_V3_KEY"
check "v3 cid mismatch → 77" eval '[ "$RC" = 77 ]'
check "v3 cid mismatch names both sides, masked" eval \
    'grep -qF "$(mask "$B3KEY")" "$T/err" && grep -qF "$(mask "$ACME_V3_KEY")" "$T/err" && no_secret "$B3TOK" && no_secret "$ACME_V3_KEY"'

# v3 --account mismatch (cid fine).
CTCT_ACCESS_TOKEN=$V3TOK cts check "${V3[@]}" --api-key "$DEMO_V3_KEY" --account "${GLOBEX_ID:-p07e1l8cdif9dl}"
check "v3 --account mismatch → 77" eval '[ "$RC" = 77 ] && grep -q "a07e1demo0001" "$T/err"'

# ---- invalid and expired tokens ----
CTCT_ACCESS_TOKEN=not-a-real-token-0000000000 cts check "${V2[@]}" --api-key "$DEMO_V2_KEY"
check "v2 invalid token (tokeninfo 404) → 77" eval '[ "$RC" = 77 ] && no_secret not-a-real-token-0000000000'
CTCT_ACCESS_TOKEN=opaque-garbage-token-000000000 cts check "${V3[@]}"
check "v3 invalid opaque token (401) → 77" eval '[ "$RC" = 77 ]'
# The wrong API generation is named in the message.
CTCT_ACCESS_TOKEN=$DEMO_V2_TOKEN cts check "${V3[@]}"
check "v2 token used as v3 → 77 suggesting --api v2" eval '[ "$RC" = 77 ] && grep -q -- "add --api v2" "$T/err"'
CTCT_ACCESS_TOKEN=$V3TOK cts check "${V2[@]}" --api-key "$DEMO_V2_KEY"
check "v3 token used as v2 → 77 suggesting v3" eval '[ "$RC" = 77 ] && grep -q -- "drop --api v2" "$T/err" && no_secret "$V3TOK"'
SHORT=$(mint v3 "$DEMO_V3_KEY" a07e1demo0001 60)
NOW=$(date +%s)
CTCT_SYNC_NOW=$((NOW + 3600)) CTCT_ACCESS_TOKEN=$SHORT cts check "${V3[@]}" --api-key "$DEMO_V3_KEY"
check "v3 expired JWT without refresh token → 77" eval '[ "$RC" = 77 ] && grep -q "expired" "$T/err"'

# v3 expired access token + refresh token in the token file → refreshed.
J=$(mint_json v3 "$DEMO_V3_KEY" a07e1demo0001 60)
if [ -n "$J" ]; then
    jq -n --argjson j "$J" --arg k "$DEMO_V3_KEY" --argjson exp "$((NOW + 60))" \
        '{api:"v3", access_token:$j.access_token, refresh_token:$j.refresh_token,
          expires_at:$exp, client_id:$k}' >"$T/refresh.json"
    chmod 600 "$T/refresh.json"
    OLDTOK=$(jq -r .access_token "$T/refresh.json")
    CTCT_SYNC_NOW=$((NOW + 600)) cts check "${V3[@]}" --api-key "$DEMO_V3_KEY" --token-file "$T/refresh.json"
    if [ "$RC" = 0 ] && [ "$(jq -r .access_token "$T/refresh.json")" != "$OLDTOK" ]; then
        ok "v3 expired token is refreshed from the token file"
    else
        not_ok "v3 expired token is refreshed from the token file" "rc=$RC $(head -c 300 "$T/err")"
    fi
fi

# ---- unreachable, 5xx ----
CTCT_ACCESS_TOKEN=$V3TOK cts check --base-url http://127.0.0.1:1/v3 --timeout 2
check "unreachable base URL → 69" eval '[ "$RC" = 69 ] && no_secret "$V3TOK"'
curl -fsS -X POST -H 'Content-Type: application/json' \
    -d '{"faults":["503","503","503","503","503","503"],"match":"GET /v3/account/summary"}' \
    "$SB_URL/_sandbox/faults" >/dev/null
CTCT_ACCESS_TOKEN=$V3TOK cts check "${V3[@]}"
check "API answering 503 → 69" eval '[ "$RC" = 69 ] && grep -q "try again later" "$T/err"'
# A base URL without the version path: every call is a 404, which waiting
# will not fix; the message says what the base URL should look like.
CTCT_ACCESS_TOKEN=$V3TOK cts check --api v3 --base-url "$SB_URL" --api-key "$DEMO_V3_KEY"
check "base URL without /v3 (404) → 78 naming --base-url" eval \
    '[ "$RC" = 78 ] && grep -q "check --base-url" "$T/err" && ! grep -q "try again" "$T/err"'
curl -fsS -X DELETE "$SB_URL/_sandbox/faults" >/dev/null 2>&1 || true

# ---- lists ----
CTCT_ACCESS_TOKEN=$DEMO_V2_TOKEN cts lists "${V2[@]}" --api-key "$DEMO_V2_KEY"
check "v2 lists → 0 with a header" eval '[ "$RC" = 0 ] && head -1 "$T/out" | grep -q "^ID  *NAME  *MEMBERS"'
check "v2 lists shows the demo lists" eval \
    'grep -Eq "^1  +General Interest +[0-9]+$" "$T/out" && grep -Eq "^2  +Newsletter +[0-9]+$" "$T/out"'
CTCT_ACCESS_TOKEN=$DEMO_V2_TOKEN cts lists "${V2[@]}" --api-key "$DEMO_V2_KEY" --json
check "v2 lists --json" eval \
    '[ "$RC" = 0 ] && jq -e "map(.id) | index(\"1\") != null and index(\"2\") != null" "$T/out" >/dev/null'
CTCT_ACCESS_TOKEN=$V3TOK cts lists "${V3[@]}" --api-key "$DEMO_V3_KEY"
check "v3 lists shows the demo lists" eval \
    '[ "$RC" = 0 ] && grep -q "^8c2b2d3e-0001-4000-8000-000000000001  *General Interest" "$T/out" && grep -q "^8c2b2d3e-0002-4000-8000-000000000002  *Newsletter" "$T/out"'
CTCT_ACCESS_TOKEN=$V3TOK cts lists "${V3[@]}" --json
check "v3 lists --json member counts are numbers" eval \
    '[ "$RC" = 0 ] && jq -e "length >= 2 and all(.[]; .member_count|type==\"number\")" "$T/out" >/dev/null'
CTCT_ACCESS_TOKEN=$GLOBEX_V2_TOKEN cts lists "${V2[@]}" --api-key "$ACME_V2_KEY"
check "lists runs the account check first (seed → 77)" eval '[ "$RC" = 77 ] && [ ! -s "$T/out" ]'

# Unknown list id through import: 65 with the valid ids, nothing written.
before=$(writes)
CTCT_ACCESS_TOKEN=$V3TOK cts import "${V3[@]}" --list 00000000-dead-beef-0000-000000000000 \
    --state "$T/state" --report "$T/u.report.csv" "$T/seed.csv"
check "unknown list id → 65 naming the valid ids" eval \
    '[ "$RC" = 65 ] && grep -q "8c2b2d3e-0001-4000-8000-000000000001" "$T/err" && [ "$(writes)" = "$before" ]'

check "check and lists wrote nothing" eval '[ "$(sb_state contacts=0 | jq .writes)" = 0 ]'

finish
