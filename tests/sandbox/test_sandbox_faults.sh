#!/bin/bash
# test_sandbox_faults.sh — ctct-sandbox fault injection (each kind, scripted
# and random), rate limit, daily quota, --latency-ms and the 409 of
# overlapping sign_up_form requests.  Assertions are on counts and lower
# bounds, never on exact timings.
. "$(dirname "$0")/../integration/lib.sh"

V3=$(cat "$TOP/samples/demo-v3.token")
K2=demo-v2-key-0000000000000001
T2=demo-v2-token-000000000000000000001
L1=8c2b2d3e-0001-4000-8000-000000000001
SUF=/v3/contacts/sign_up_form

jqf() {
    if jq -e "$3" "$2" >/dev/null 2>&1; then ok "$1"; else not_ok "$1" "$(head -c 400 "$2")"; fi
}
# signup EMAIL: POST sign_up_form; $S = status ("000" when no reply), $CE = curl exit
signup() {
    CE=0
    S=$(curl -sS -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $V3" \
        -H 'Content-Type: application/json' \
        --data-binary "{\"email_address\":\"$1\",\"list_memberships\":[\"$L1\"]}" \
        "$SB_URL$SUF" 2>/dev/null) || CE=$?
}
faults() { curl -fsS -X POST --data-binary "$1" "$SB_URL/_sandbox/faults" >/dev/null; }
stored() { # stored EMAIL → prints 1/0
    sb_state | jq --arg e "$1" '[.accounts[0].contacts[]|select(.email==$e)]|length'
}

# ------------------------------------------------------ scripted faults
sb_start --rate 0 --daily-quota 0 --slow-ms 400 || exit 1

faults "{\"faults\":[\"drop_after\"],\"match\":\"POST $SUF\"}"
signup da@example.com
if [ "$CE" -ne 0 ] && [ "$S" = 000 ]; then ok "drop_after: no reply"; else not_ok "drop_after: no reply" "curl exit $CE status $S"; fi
check "drop_after: the write was stored" test "$(stored da@example.com)" = 1

faults '{"faults":["drop_before"]}'
signup db@example.com
if [ "$CE" -ne 0 ] && [ "$S" = 000 ]; then ok "drop_before: no reply"; else not_ok "drop_before: no reply" "curl exit $CE status $S"; fi
check "drop_before: nothing stored" test "$(stored db@example.com)" = 0

faults '{"faults":["500","503"]}'
signup f5@example.com
check "500 fault status" test "$S" = 500
jqf "500 fault body is a v3 error array" "$T/body" '.[0].error_key|type=="string"'
signup f5@example.com
check "503 fault status" test "$S" = 503
check "500/503 store nothing" test "$(stored f5@example.com)" = 0

faults '{"faults":["429"]}'
signup t@example.com
check "429 fault status (v3)" test "$S" = 429
jqf "429 fault body is the single throttled object" "$T/body" '.error_key=="throttled" and .error_message=="Too Many Requests"'
faults '{"faults":["429"]}'
S=$(curl -sS -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $T2" "$SB_URL/v2/lists?api_key=$K2")
check "429 fault on v2 is 403 over.qps" test "$S" = 403
jqf "v2 throttle body" "$T/body" '.[0].error_key=="mashery.not.authorized.over.qps"'

faults '{"faults":["slow"]}'
start=$(date +%s%N)
signup slow@example.com
el=$((($(date +%s%N) - start) / 1000000))
check "slow fault still answers" test "$S" = 201
if [ "$el" -ge 350 ]; then ok "slow fault delays the reply (${el} ms >= 400-ish)"; else not_ok "slow fault delays" "${el} ms"; fi

# match: a fault bound to another endpoint leaves this one alone
faults '{"faults":["500"],"match":"GET /v3/contact_lists"}'
signup m@example.com
check "fault with another match not consumed" test "$S" = 201
S=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists")
check "fault consumed by its matching endpoint" test "$S" = 500

S=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST --data-binary '{"faults":["explode"]}' "$SB_URL/_sandbox/faults")
check "unknown fault kind 400" test "$S" = 400

sb_state "contacts=0" > "$T/state"
jqf "fault counters" "$T/state" '.faults["drop_after"]==1 and .faults["drop_before"]==1 and .faults["500"]==2 and .faults["503"]==1 and .faults["429"]==2 and .faults.slow==1 and .faults.pending==0'
jqf "dropped replies are not counted as statuses" "$T/state" '.requests.by_status["500"]==2 and .requests.by_status["503"]==1'
sb_stop

# ----------------------------------------------------- random faults
sb_start --rate 0 --daily-quota 0 --fault-rate 1 --fault-seed 7 --slow-ms 10 || exit 1
for i in 1 2 3 4 5 6 7 8 9 10; do signup "r$i@example.com"; done
sb_state "contacts=0" > "$T/state"
jqf "fault-rate 1: every API request faulted" "$T/state" '(.faults["500"]+.faults["503"]+.faults.drop_before+.faults.drop_after+.faults.slow)==10'
jqf "random faults use several kinds" "$T/state" '[.faults["500"],.faults["503"],.faults.drop_before,.faults.drop_after,.faults.slow]|map(select(.>0))|length>=2'
cp "$T/state" "$T/state1"
sb_stop
sb_start --rate 0 --daily-quota 0 --fault-rate 1 --fault-seed 7 --slow-ms 10 || exit 1
for i in 1 2 3 4 5 6 7 8 9 10; do signup "r$i@example.com"; done
sb_state "contacts=0" > "$T/state"
if [ "$(jq -c .faults "$T/state")" = "$(jq -c .faults "$T/state1")" ]; then ok "same seed, same faults"; else not_ok "same seed, same faults"; fi
sb_stop

# --faults FILE
echo "{\"faults\":[\"503\"],\"match\":\"POST $SUF\"}" > "$T/faults.json"
sb_start --rate 0 --daily-quota 0 --faults "$T/faults.json" || exit 1
signup ff@example.com
check "--faults FILE queues faults" test "$S" = 503
signup ff@example.com
check "--faults FILE fault consumed once" test "$S" = 201
sb_stop

# ---------------------------------------------------------- rate limit
sb_start --rate 4 --daily-quota 0 || exit 1
# mkurls N PATH: curl arguments "-o /dev/null URL" N times (one connection)
mkurls() {
    urls=()
    for _ in $(seq "$1"); do urls+=(-o /dev/null "$SB_URL$2"); done
}
mkurls 30 /v3/contact_lists
curl -s -H "Authorization: Bearer $V3" -w '%{http_code}\n' "${urls[@]}" > "$T/codes"
n200=$(grep -c '^200$' "$T/codes"); n429=$(grep -c '^429$' "$T/codes")
check "burst: every reply is 200 or 429" test $((n200 + n429)) = 30
if [ "$n429" -gt 0 ]; then ok "burst of 30 over --rate 4 is throttled ($n429)"; else not_ok "burst throttled" "no 429"; fi
sb_state "contacts=0" > "$T/state"
jqf "state: throttled count and busiest_1s" "$T/state" ".keys[\"demo-v3-client-00000000000001\"]|.throttled==$n429 and .busiest_1s>=5 and .busiest_1s<=30 and .requests==30"
curl -s -H "Authorization: Bearer $V3" $(for _ in $(seq 10); do echo "$SB_URL/v3/contact_lists"; done) > "$T/bodies"
if grep -q '{"error_key":"throttled","error_message":"Too Many Requests"}' "$T/bodies"; then ok "v3 throttle body"; else not_ok "v3 throttle body"; fi
curl -s -H "Authorization: Bearer $T2" $(for _ in $(seq 30); do echo "$SB_URL/v2/lists?api_key=$K2"; done) > "$T/bodies"
if grep -q '"error_key":"mashery.not.authorized.over.qps"' "$T/bodies"; then ok "v2 throttle is 403 over.qps"; else not_ok "v2 throttle body"; fi
sb_stop

# -------------------------------------------------------- daily quota
sb_start --rate 0 --daily-quota 5 || exit 1
mkurls 7 /v3/contact_lists
curl -s -H "Authorization: Bearer $V3" -w '%{http_code}\n' "${urls[@]}" > "$T/codes"
check "quota: 5 accepted" test "$(grep -c '^200$' "$T/codes")" = 5
check "quota: then 429" test "$(grep -c '^429$' "$T/codes")" = 2
curl -s -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists" > "$T/body"
jqf "quota body" "$T/body" '.error_key=="quota_exceeded" and .error_message=="Limit Exceeded"'
curl -s -H "Authorization: Bearer $T2" $(for _ in $(seq 6); do echo "$SB_URL/v2/lists?api_key=$K2"; done) > "$T/bodies"
if grep -q '"error_key":"mashery.not.authorized.over.ratelimit"' "$T/bodies"; then ok "v2 quota is 403 over.ratelimit"; else not_ok "v2 quota body"; fi
tomorrow=$(( ($(date +%s) / 86400 + 1) * 86400 + 60 ))
curl -s -X POST -d "{\"now\":$tomorrow}" "$SB_URL/_sandbox/clock" >/dev/null
S=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists")
check "quota resets on the next UTC day (sandbox clock)" test "$S" = 200
sb_stop

# ------------------------------------------- latency and overlapping 409
sb_start --rate 0 --daily-quota 0 --latency-ms 2500 || exit 1
start=$(date +%s%N)
S=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists")
el=$((($(date +%s%N) - start) / 1000000))
if [ "$S" = 200 ] && [ "$el" -ge 2400 ]; then ok "--latency-ms delays replies (${el} ms)"; else not_ok "--latency-ms" "$S ${el} ms"; fi
body="{\"email_address\":\"same@example.com\",\"list_memberships\":[\"$L1\"]}"
ovpids=""
for i in 1 2; do
    curl -s -o "$T/ov$i" -w '%{http_code}\n' -H "Authorization: Bearer $V3" -H 'Content-Type: application/json' \
        --data-binary "$body" "$SB_URL$SUF" > "$T/code$i" &
    ovpids="$ovpids $!"
done
wait $ovpids
codes=$(cat "$T/code1" "$T/code2" | sort | tr '\n' ' ')
if [ "$codes" = "201 409 " ]; then ok "overlapping sign_up_form: one 201, one 409"; else not_ok "overlapping sign_up_form" "$codes"; fi
if grep -q '"error_key":"contacts.api.conflict"' "$T/ov1" "$T/ov2"; then ok "409 body"; else not_ok "409 body"; fi
check "overlap stored the contact once" test "$(stored same@example.com)" = 1
signup same@example.com
check "after the overlap, the same email updates (200)" test "$S" = 200
sb_stop

finish
