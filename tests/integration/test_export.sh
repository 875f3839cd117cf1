#!/bin/bash
# test_export.sh — `ctct-sync export`, API v3 and v2, against ctct-sandbox:
# 1,100 contacts come out in 3 pages of 500, each once, with the header
# import maps back; --status unsubscribed --since writes only those who
# unsubscribed since then; --list writes a list's members (several lists:
# each contact once, its lists joined); formula cells are neutralised and
# come back unchanged; the round trip through `import --dry-run` maps every
# column; a token of another key is refused (77) and a stale --output is
# left as it was; an unwritable --output is 73 before any request.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

N=1100 # active contacts: 3 pages of 500
NU=7   # unsubscribed, 2 of them today
HEADER_HEAD="email,first_name,last_name,job_title,company_name,phone,street,city,state,zip,country,birthday_month,birthday_day,anniversary"
HEADER_TAIL="permission,opt_out_date,opt_out_reason,lists"
sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }

# N active contacts (m1..m40 on LIST, m31..m50 also on LIST2, m1 with
# every field), NU unsubscribed two days ago; then 2 unsubscribe now.
seed() {
    local old=$(($(date +%s) - 2 * 86400))
    jq -n --argjson n $N --argjson nu $NU --argjson t $old --arg l "$LIST" \
        --arg l2 "$LIST2" --arg cf "$1" '{account: "demo", contacts: (
          [{email: "m1@example.com", first_name: "=Ann", last_name: "O,Neil",
            job_title: "CTO", company_name: "Acme \"Labs\"",
            phone: "+1-555-0100",
            street_address: {street: "1 Main St", city: "Waltham",
                             state: "MA", postal_code: "02451", country: "US"},
            birthday_month: 3, birthday_day: 5, anniversary: "2020-01-02",
            custom_fields: {($cf): "-blue"}, lists: [$l], updated_at: $t}] +
          [range(2; $n + 1) | {email: "m\(.)@example.com",
            first_name: "F\(.)", updated_at: $t,
            lists: (if . <= 30 then [$l] elif . <= 40 then [$l, $l2]
                    elif . <= 50 then [$l2] else [] end)}] +
          [range(1; $nu + 1) | {email: "u\(.)@example.com",
            permission: "unsubscribed", opt_out_reason: "too much mail",
            updated_at: $t}])}' >"$T/seed.json"
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d @"$T/seed.json" "$SB_URL/_sandbox/contacts" >/dev/null
}
unsubscribe() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"account\":\"demo\",\"email\":\"$1\"}" \
        "$SB_URL/_sandbox/unsubscribe" >/dev/null
}
exp() {
    # shellcheck disable=SC2046
    CTCT_ACCESS_TOKEN=$TOKEN cts export --api "$API" --api-key "$KEY" \
        $(api_urls) --state "$STATE_DIR" "$@"
}
listings() {
    local e="GET /$API/contacts"
    [ $# -gt 0 ] && e=$1
    sb_state contacts=0 | jq --arg e "$e" '.requests.by_endpoint[$e] // 0'
}
# Data lines of a CSV (no BOM, no header, no CR).
body() { tail -n +2 "$1" | tr -d '\r'; }
emails() { body "$1" | cut -d, -f1 | sort; }
header_ok() {
    local h
    h=$(head -1 "$1" | tr -d '\r')
    [ "$(head -c 3 "$1" | od -An -tx1 | tr -d ' ')" = efbbbf ] &&
        case "${h#???}" in
        "$HEADER_HEAD",*",$HEADER_TAIL") return 0 ;;
        *) return 1 ;;
        esac
}
# The value of column NAME for the line of EMAIL (python's csv reader:
# quoted cells with commas and quotes).
cell() {
    python3 - "$1" "$2" "$3" <<'EOF'
import csv, sys
path, email, col = sys.argv[1:]
with open(path, newline="", encoding="utf-8-sig") as f:
    for row in csv.DictReader(f):
        if row["email"] == email:
            print(row[col])
EOF
}

for api in v3 v2; do
    use_api $api
    if [ $api = v3 ]; then cf=favorite_color; else cf=CustomField1; fi
    sb_reset
    seed $cf || { not_ok "$api seed"; continue; }
    unsubscribe m60@example.com
    unsubscribe m61@example.com
    STATE_DIR="$T/state-$api"

    # Everyone: 3 pages, every contact once, the header import maps back.
    l0=$(listings)
    exp --output "$T/all.csv"
    check "$api all: exit 0, $((N + NU)) contacts once each, 3 pages" \
        eval '[ "$RC" = 0 ] && [ "$(body "$T/all.csv" | wc -l)" = $((N + NU)) ] &&
              [ "$(emails "$T/all.csv" | uniq | wc -l)" = $((N + NU)) ] &&
              [ $(($(listings) - l0)) = 3 ] &&
              grep -q "export: $((N + NU)) contacts written to .*all.csv (3 pages" "$T/err"' ||
        explain
    check "$api all: header email..anniversary, cf:$cf, permission..lists" \
        eval 'header_ok "$T/all.csv" && head -1 "$T/all.csv" | grep -q ",cf:$cf,"'
    check "$api all: every field of m1, formulas neutralised, quoting" \
        eval '[ "$(cell "$T/all.csv" m1@example.com first_name)" = "'"'"'=Ann" ] &&
              [ "$(cell "$T/all.csv" m1@example.com last_name)" = "O,Neil" ] &&
              [ "$(cell "$T/all.csv" m1@example.com company_name)" = "Acme \"Labs\"" ] &&
              [ "$(cell "$T/all.csv" m1@example.com phone)" = "'"'"'+1-555-0100" ] &&
              [ "$(cell "$T/all.csv" m1@example.com zip)" = 02451 ] &&
              [ "$(cell "$T/all.csv" m1@example.com birthday_day)" = 5 ] &&
              [ "$(cell "$T/all.csv" m1@example.com anniversary)" = 2020-01-02 ] &&
              [ "$(cell "$T/all.csv" m1@example.com cf:$cf)" = "'"'"'-blue" ] &&
              [ "$(cell "$T/all.csv" m1@example.com permission)" = implicit ] &&
              [ "$(cell "$T/all.csv" u3@example.com permission)" = unsubscribed ]'
    check "$api all: no temporary file left beside the output" \
        eval '[ "$(ls "$T" | grep -c "^all\.csv")" = 1 ]'

    # The nightly opt-outs job: unsubscribed since an hour ago.
    since=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
    exp --status unsubscribed --since "$since" --output "$T/u.csv"
    check "$api unsubscribed --since: only the 2 who unsubscribed today" \
        eval '[ "$RC" = 0 ] && [ "$(emails "$T/u.csv" | tr "\n" " ")" = \
              "m60@example.com m61@example.com " ] &&
              [ -n "$(cell "$T/u.csv" m60@example.com opt_out_date)" ]' || explain
    exp --status unsubscribed -q
    check "$api unsubscribed: all $((NU + 2)) on stdout, --quiet silent" \
        eval '[ "$RC" = 0 ] && [ "$(body "$T/out" | wc -l)" = $((NU + 2)) ] &&
              [ ! -s "$T/err" ]' || explain
    if [ $api = v3 ]; then
        check "v3 unsubscribed: the reason" \
            eval '[ "$(cell "$T/out" u1@example.com opt_out_reason)" = "too much mail" ]'
    fi
    exp --status active --output "$T/a.csv"
    check "$api active: the $((N - 2)) others" \
        eval '[ "$RC" = 0 ] && [ "$(body "$T/a.csv" | wc -l)" = $((N - 2)) ] &&
              ! body "$T/a.csv" | grep -q "^u[0-9]"' || explain

    # One list; two lists: each contact once, its lists joined.
    exp --list "$LIST" --output "$T/l.csv"
    check "$api one list: its 40 members" \
        eval '[ "$RC" = 0 ] && [ "$(body "$T/l.csv" | wc -l)" = 40 ] &&
              [ "$(cell "$T/l.csv" m35@example.com lists)" = "$LIST;$LIST2" ]' ||
        explain
    exp --list "$LIST" --list "$LIST2" --output "$T/l2.csv"
    check "$api two lists: 50 members, each once" \
        eval '[ "$RC" = 0 ] && [ "$(body "$T/l2.csv" | wc -l)" = 50 ] &&
              [ "$(emails "$T/l2.csv" | uniq | wc -l)" = 50 ]' || explain
    exp --list nope --output "$T/l3.csv"
    check "$api unknown list: exit 65, no file" \
        eval '[ "$RC" = 65 ] && [ ! -e "$T/l3.csv" ]' || explain

    # Round trip: import --dry-run maps every column and changes nothing.
    imp --list "$LIST" --dry-run "$T/all.csv"
    check "$api round trip: import --dry-run maps every column" \
        eval '[ "$RC" = 0 ] && ! grep -q "ignoring columns" "$T/err" &&
              ! grep -q "(ignored)" "$T/err" &&
              grep -q "\"cf:$cf\" -> cf:$cf" "$T/err" &&
              grep -q "\"permission\" -> opt_out" "$T/err" &&
              [ "$(rep_count invalid)" = 0 ] &&
              [ "$(rep_count opted-out)" = $((NU + 2)) ]' || explain
    # ...and a real import of a few lines writes the values back unchanged.
    { head -1 "$T/all.csv"; grep '^m1@' "$T/all.csv"; } >"$T/one.csv"
    imp --list "$LIST" --bulk never "$T/one.csv"
    check "$api round trip: the neutralised cells come back as they were" \
        eval '[ "$RC" = 0 ] && sb_state | jq -e ".accounts[0].contacts[]
              | select(.email == \"m1@example.com\") | .first_name == \"=Ann\" and
              .phone == \"+1-555-0100\" and
              ([.custom_fields[]] == [\"-blue\"])" >/dev/null' ||
        explain

    # A token of another key: 77 before any listing; the old file stays.
    echo old >"$T/keep.csv"
    other=$(curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"api\":\"$api\",\"api_key\":\"other-app-$api-0000000000001\",\"account\":\"demo\"}" \
        "$SB_URL/_sandbox/token" | jq -r .access_token)
    l0=$(listings)
    # shellcheck disable=SC2046
    CTCT_ACCESS_TOKEN=$other cts export --api "$API" --api-key "$KEY" \
        $(api_urls) --state "$STATE_DIR" --output "$T/keep.csv"
    check "$api token of another key: exit 77, nothing listed, output untouched" \
        eval '[ "$RC" = 77 ] && [ "$(listings)" = "$l0" ] &&
              [ "$(cat "$T/keep.csv")" = old ] &&
              [ "$(ls "$T" | grep -c "^keep\.csv")" = 1 ]' || explain
done

# An output that cannot be written: 73 before the first request.
use_api v3
r0=$(sb_state contacts=0 | jq .requests.total)
exp --output "$T/no/such/dir/x.csv"
check "unwritable --output: exit 73, no request" \
    eval '[ "$RC" = 73 ] && [ "$(sb_state contacts=0 | jq .requests.total)" = "$r0" ]' ||
    explain

# Usage: a bad --status or --since names the option, exit 64.
exp --status gone
check "--status gone: exit 64 naming the option" \
    eval '[ "$RC" = 64 ] && grep -q -- "--status" "$T/err"'
exp --since yesterday
check "--since yesterday: exit 64 naming the option" \
    eval '[ "$RC" = 64 ] && grep -q -- "--since" "$T/err"'

# The rate limit holds for the listing: --rate 2 over 3 pages.
sb_reset
seed favorite_color
STATE_DIR="$T/state-rate"
exp --rate 2 --output "$T/r2.csv"
check "--rate 2: busiest 1-second window ≤ 2" \
    eval '[ "$RC" = 0 ] && [ "$(sb_state contacts=0 | jq --arg k "$KEY" ".keys[\$k].busiest_1s")" -le 2 ]' ||
    explain

finish
