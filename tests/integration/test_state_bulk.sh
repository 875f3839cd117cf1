#!/usr/bin/env bash
# test_state_bulk.sh — bulk imports through the CLI (--bulk always): v3
# and v2 activities polled to completion, rows `imported`, the second run
# `unchanged` with no bulk request; a run killed after its activity was
# accepted is resumed by polling that activity (no second POST), every row
# reported once.
. "$(dirname "$0")/lib.sh"

CID=demo-v3-client-00000000000001
L1=8c2b2d3e-0001-4000-8000-000000000001
V2KEY=demo-v2-key-0000000000000001
V2TOK=demo-v2-token-000000000000000000001

sb_start --token-rate 0 --rate 0 --daily-quota 0 --activity-ms 1500 || { not_ok "sandbox starts"; finish; }
TOKEN=$("$SANDBOX" --print-demo-token 2>/dev/null)

make_csv() { # FILE N PREFIX
    local i
    {
        echo "email,first name,last name"
        for i in $(seq 1 "$2"); do echo "$3$i@example.com,F$i,L$i"; done
    } >"$1"
}
count() { awk -F, -v s="$2" 'NR > 1 && $4 == s' "$1" | wc -l; }
ep() { sb_state contacts=0 | jq --arg e "$1" '.requests.by_endpoint[$e] // 0'; }
imp3() {
    local state=$1 report=$2
    shift 2
    CTCT_ACCESS_TOKEN="$TOKEN" cts import --api v3 --api-key "$CID" --base-url "$SB_URL/v3" \
        --list "$L1" --rate 0 --bulk always --poll-interval 1 --state "$state" --report "$report" "$@"
}

# ---------------------------------------------------------------- v3
make_csv "$T/a.csv" 50 bulka
imp3 "$T/st" "$T/r1.csv" "$T/a.csv"
n=$(sb_state "account=demo" | jq '[.accounts[0].contacts[] | select(.email | startswith("bulka"))] | length')
if [ "$RC" = 0 ] && [ "$(count "$T/r1.csv" imported)" = 50 ] && [ "$n" = 50 ] &&
    [ "$(ep "POST /v3/activities/contacts_json_import")" = 1 ]; then
    ok "v3 --bulk always: one activity, 50 rows imported"
else
    not_ok "v3 bulk" "rc=$RC imported=$(count "$T/r1.csv" imported) stored=$n $(head -c 300 "$T/err")"
fi
p0=$(ep "POST /v3/activities/contacts_json_import")
imp3 "$T/st" "$T/r2.csv" "$T/a.csv"
check "second run: 50 unchanged, no bulk request" \
    eval '[ "$RC" = 0 ] && [ "$(count "$T/r2.csv" unchanged)" = 50 ] && [ "$(ep "POST /v3/activities/contacts_json_import")" = "$p0" ]'

# ---------------------------------------------------------------- kill after the POST, resume by polling
make_csv "$T/k.csv" 40 bulkk
p0=$(ep "POST /v3/activities/contacts_json_import")
CTCT_ACCESS_TOKEN="$TOKEN" "$CTS" import --api v3 --api-key "$CID" --base-url "$SB_URL/v3" \
    --list "$L1" --rate 0 --bulk always --poll-interval 1 --state "$T/stk" \
    --report "$T/rk1.csv" "$T/k.csv" >"$T/k.out" 2>&1 &
pid=$!
# Until the accepted activity's id is in the journal (bounded tries; the
# activity itself runs 1.5 s, so it is still running at the kill).
for _ in $(seq 1 600); do
    j=$(find "$T/stk" -name journal 2>/dev/null | head -1)
    [ -n "$j" ] && grep -qaE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-' "$j" && break
    sleep 0.02
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
p1=$(ep "POST /v3/activities/contacts_json_import")
imp3 "$T/stk" "$T/rk2.csv" "$T/k.csv"
p2=$(ep "POST /v3/activities/contacts_json_import")
n=$(sb_state "account=demo" | jq '[.accounts[0].contacts[] | select(.email | startswith("bulkk"))] | length')
if [ "$RC" = 0 ] && [ "$(count "$T/rk2.csv" imported)" = 40 ] && [ "$p1" = $((p0 + 1)) ] &&
    [ "$p2" = "$p1" ] && [ "$n" = 40 ] &&
    awk -F, 'NR > 1 { print $2 }' "$T/rk2.csv" | cmp -s - <(seq 1 40); then
    ok "killed after its activity was accepted: the rerun polls it (no second POST), 40 rows once"
else
    not_ok "bulk resume" "rc=$RC posts $p0/$p1/$p2 imported=$(count "$T/rk2.csv" imported) stored=$n $(head -c 300 "$T/err")"
fi

# ---------------------------------------------------------------- v2
make_csv "$T/v2.csv" 20 bulkv
cts import --api v2 --api-key "$V2KEY" --token "$V2TOK" --base-url "$SB_URL/v2" \
    --auth-url "$SB_URL/oauth2" --list 1 --rate 0 --bulk always --poll-interval 1 \
    --state "$T/st2" --report "$T/rv.csv" "$T/v2.csv"
n=$(sb_state "account=demo" | jq '[.accounts[0].contacts[] | select(.email | startswith("bulkv")) | select(.lists_v2 == ["1"] and (.first_name | startswith("F")))] | length')
if [ "$RC" = 0 ] && [ "$(count "$T/rv.csv" imported)" = 20 ] && [ "$n" = 20 ]; then
    ok "v2 --bulk always: addcontacts activity, 20 rows imported with names and list"
else
    not_ok "v2 bulk" "rc=$RC imported=$(count "$T/rv.csv" imported) stored=$n $(head -c 300 "$T/err")"
fi
# ---------------------------------------------------------------- --bulk auto
# auto3 STATE REPORT ARGS...: v3 import with the default --bulk auto.
auto3() {
    local state=$1 report=$2
    shift 2
    CTCT_ACCESS_TOKEN="$TOKEN" cts import --api v3 --api-key "$CID" --base-url "$SB_URL/v3" \
        --list "$L1" --rate 0 --poll-interval 1 --state "$state" --report "$report" "$@"
}
make_csv "$T/auto.csv" 60 autob
p0=$(ep "POST /v3/activities/contacts_json_import")
s0=$(ep "POST /v3/contacts")
auto3 "$T/sta" "$T/ra1.csv" --bulk-threshold 30 "$T/auto.csv"
if [ "$RC" = 0 ] && [ "$(count "$T/ra1.csv" imported)" = 60 ] &&
    [ "$(ep "POST /v3/activities/contacts_json_import")" = $((p0 + 1)) ] &&
    [ "$(ep "POST /v3/contacts")" = "$s0" ]; then
    ok "auto: 60 rows to send over --bulk-threshold 30 go in one activity"
else
    not_ok "bulk auto over threshold" "rc=$RC imported=$(count "$T/ra1.csv" imported) $(head -c 300 "$T/err")"
fi
# The nightly case: three rows changed; sending them one by one is cheaper.
sed -e 's/^autob7@example.com,F7/autob7@example.com,G7/' \
    -e 's/^autob33@example.com,F33/autob33@example.com,G33/' \
    -e 's/^autob59@example.com,F59/autob59@example.com,G59/' "$T/auto.csv" >"$T/auto2.csv"
p0=$(ep "POST /v3/activities/contacts_json_import")
s0=$(ep "POST /v3/contacts")
auto3 "$T/sta" "$T/ra2.csv" --bulk-threshold 30 "$T/auto2.csv"
if [ "$RC" = 0 ] && [ "$(count "$T/ra2.csv" updated)" = 3 ] && [ "$(count "$T/ra2.csv" unchanged)" = 57 ] &&
    [ "$(ep "POST /v3/activities/contacts_json_import")" = "$p0" ] &&
    [ "$(ep "POST /v3/contacts")" = $((s0 + 3)) ]; then
    ok "auto: 3 changed rows of 60 are sent contact by contact, no activity"
else
    not_ok "bulk auto incremental" "rc=$RC updated=$(count "$T/ra2.csv" updated) $(head -c 300 "$T/err")"
fi
# More rows than the day's quota can carry one by one: bulk.
make_csv "$T/autoq.csv" 40 autoq
p0=$(ep "POST /v3/activities/contacts_json_import")
auto3 "$T/stq" "$T/raq.csv" --daily-quota 20 "$T/autoq.csv"
if [ "$RC" = 0 ] && [ "$(count "$T/raq.csv" imported)" = 40 ] &&
    [ "$(ep "POST /v3/activities/contacts_json_import")" = $((p0 + 1)) ]; then
    ok "auto: 40 rows and 20 requests left today go in one activity"
else
    not_ok "bulk auto over quota" "rc=$RC imported=$(count "$T/raq.csv" imported) $(head -c 300 "$T/err")"
fi
finish
