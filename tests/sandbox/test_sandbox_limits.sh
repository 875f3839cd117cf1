#!/bin/bash
# test_sandbox_limits.sh — the per-key rate window as a client sees it:
# --window arrivals (the default) counts refused requests too, admitted does
# not; --foreign-load makes a client that alone fits see throttling; the
# state shows throttled replies per endpoint and the limits in force.
# Timing: clients are paced with curl --rate (a minimum spacing), and every
# bound leaves a wide margin for a slow machine.
. "$(dirname "$0")/../integration/lib.sh"

V3=$(cat "$TOP/samples/demo-v3.token")
V2T=demo-v2-token-000000000000000000001
V2K=demo-v2-key-0000000000000001
L1=8c2b2d3e-0001-4000-8000-000000000001
KEY3=demo-v3-client-00000000000001

jqf() {
    if jq -e "$3" "$2" >/dev/null 2>&1; then ok "$1"; else not_ok "$1" "$(head -c 400 "$2")"; fi
}
# lists N RATE: N GET /v3/contact_lists on one connection at most RATE
# (curl --rate, e.g. 20/s); one status code per line in $T/codes
lists() {
    curl -s -o /dev/null -w '%{http_code}\n' --rate "$2" \
        -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists?n=[1-$1]" > "$T/codes"
}
count() { grep -c "^$1\$" "$T/codes"; }

# ---- --window arrivals (default): a client that keeps sending while
# refused stays refused — 50 requests over 2.5 s at 20/s against 2/s
sb_start --rate 2 --daily-quota 0 || exit 1
sb_state contacts=0 > "$T/state"
jqf "state shows the limits (window arrivals by default)" "$T/state" \
    '.limits=={"rate":2,"daily_quota":0,"window":"arrivals","foreign_load":0}'
lists 50 20/s
n200=$(count 200)
check "arrivals: only the first window's requests pass ($n200 of 50)" test "$n200" -ge 2 -a "$n200" -le 3
check "arrivals: the rest are 429" test "$(count 429)" = $((50 - n200))
sb_state contacts=0 > "$T/state"
jqf "arrivals: the key counted every refusal" "$T/state" \
    ".keys[\"$KEY3\"].throttled==$((50 - n200)) and .keys[\"$KEY3\"].requests==50"
sb_stop

# ---- --window admitted: refused requests do not count, so the same
# client gets 2 requests through in every second it sends
sb_start --rate 2 --daily-quota 0 --window admitted || exit 1
lists 50 20/s
n200=$(count 200)
check "admitted: 2 per second pass over 2.5 s ($n200 of 50)" test "$n200" -ge 5
check "admitted: still throttled in between" test "$(count 429)" -ge 20
sb_state contacts=0 > "$T/state"
jqf "admitted: state names the window" "$T/state" '.limits.window=="admitted"'
sb_stop

# ---- --foreign-load: the key's budget is shared with another client
# 8 requests at 2/s fit a rate of 4 alone
sb_start --rate 4 --daily-quota 0 || exit 1
lists 8 2/s
check "alone: 2/s under --rate 4 is never throttled" test "$(count 200)" = 8
sb_stop
# with another client taking 3/s, 2 + 3 > 4: throttled
sb_start --rate 4 --daily-quota 0 --foreign-load 3 || exit 1
lists 8 2/s
n429=$(count 429)
check "foreign load 3/s: the same client is throttled ($n429 of 8)" test "$n429" -ge 4
sb_state contacts=0 > "$T/state"
jqf "foreign load: state shows it, simulated arrivals counted apart" "$T/state" \
    ".limits.foreign_load==3 and .keys[\"$KEY3\"].foreign>=9 and .keys[\"$KEY3\"].busiest_1s<=3 and .keys[\"$KEY3\"].throttled==$n429"
# v2 keys share the same foreign load: 403 over.qps
curl -s -o "$T/v2" -w '%{http_code}\n' --rate 2/s -H "Authorization: Bearer $V2T" \
    "$SB_URL/v2/lists?api_key=$V2K&n=[1-4]" > "$T/codes"
check "foreign load on a v2 key: 403 over.qps" grep -q 'mashery.not.authorized.over.qps' "$T/v2"
sb_stop

# ---- throttled replies per endpoint (rate 1: a quick burst is refused)
sb_start --rate 1 --daily-quota 0 || exit 1
: > "$T/seen"
for i in 1 2 3; do
    curl -s -o /dev/null -w 'GET /v3/contact_lists %{http_code}\n' \
        -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists" >> "$T/seen"
    curl -s -o /dev/null -w 'POST /v3/contacts/sign_up_form %{http_code}\n' \
        -H "Authorization: Bearer $V3" -H 'Content-Type: application/json' \
        --data-binary "{\"email_address\":\"t$i@example.com\",\"list_memberships\":[\"$L1\"]}" \
        "$SB_URL/v3/contacts/sign_up_form" >> "$T/seen"
    curl -s -o /dev/null -w 'GET /v2/lists %{http_code}\n' \
        -H "Authorization: Bearer $V2T" "$SB_URL/v2/lists?api_key=$V2K" >> "$T/seen"
done
g=$(grep -c '^GET /v3/contact_lists 429$' "$T/seen")
p=$(grep -c '^POST /v3/contacts/sign_up_form 429$' "$T/seen")
v=$(grep -c '^GET /v2/lists 403$' "$T/seen")
check "burst at --rate 1 throttles more than one endpoint" test $((g > 0 ? 1 : 0)) -eq 1 -a $((p + v)) -gt 0
sb_state contacts=0 > "$T/state"
jqf "throttled_by_endpoint counts each endpoint's throttled replies" "$T/state" \
    "(.requests.throttled_by_endpoint|with_entries(select(.value>0)))
     == ({\"GET /v3/contact_lists\":$g,\"POST /v3/contacts/sign_up_form\":$p,\"GET /v2/lists\":$v}
         |with_entries(select(.value>0)))"
# an injected 429 fault is a throttled reply too
curl -s -o /dev/null -X POST -d '{"faults":["429"],"match":"GET /v3/account/summary"}' \
    "$SB_URL/_sandbox/faults"
sleep 1.1 # let the rate window empty so the request reaches the fault
curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $V3" \
    "$SB_URL/v3/account/summary" > "$T/codes"
sb_state contacts=0 > "$T/state"
jqf "an injected 429 counts in throttled_by_endpoint" "$T/state" \
    '.requests.throttled_by_endpoint["GET /v3/account/summary"]==1'
curl -s -o /dev/null -X POST "$SB_URL/_sandbox/reset"
sb_state contacts=0 > "$T/state"
jqf "reset clears throttled_by_endpoint" "$T/state" '.requests.throttled_by_endpoint=={}'
sb_stop

# ---- options
rc=0; "$SANDBOX" --window both >/dev/null 2>&1 || rc=$?
check "--window other than arrivals|admitted exits 64" test "$rc" = 64
rc=0; "$SANDBOX" --foreign-load -1 >/dev/null 2>&1 || rc=$?
check "negative --foreign-load exits 64" test "$rc" = 64
check "--help documents --window and --foreign-load" \
    sh -c '"$0" --help | grep -q -- "--window" && "$0" --help | grep -q -- "--foreign-load"' "$SANDBOX"

finish
