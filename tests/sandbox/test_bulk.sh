#!/usr/bin/env bash
# test_bulk.sh — ctct-sandbox's bulk activities end to end with curl + jq:
# v2 addcontacts and v3 contacts_json_import from the POST to completion,
# per-row errors in each API's shape, non-destructive merge, column_names
# filtering, limits (40,000 rows, 4 MB), account isolation, write counts.
. "$(dirname "$0")/../integration/lib.sh"

V2KEY=demo-v2-key-0000000000000001
V2TOK=demo-v2-token-000000000000000000001
V3CID=demo-v3-client-00000000000001
L1=8c2b2d3e-0001-4000-8000-000000000001
L2=8c2b2d3e-0002-4000-8000-000000000002

sb_start --accounts "$TOP/samples/accounts.json" --activity-ms 300 --rate 0 || { not_ok "sandbox starts"; finish; }

req() { CODE=$(curl -s -o "$T/body" -w '%{http_code}' "$@"); }
jb() { jq -er "$@" "$T/body"; }
v2() { req -H "Authorization: Bearer $V2TOK" -H 'Content-Type: application/json' "$@"; }
mint_v3() { # account → access token
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"api\":\"v3\",\"api_key\":\"$V3CID\",\"account\":\"$1\",\"expires_in\":3600}" \
        "$SB_URL/_sandbox/token" | jq -r .access_token
}
V3TOK=$(mint_v3 demo)
v3() { req -H "Authorization: Bearer $V3TOK" -H 'Content-Type: application/json' "$@"; }
# Poll GET $1 (with the function $2 = v2|v3) until jq filter $3 holds;
# bounded by attempts, not by a wall-clock assumption.
poll() {
    local i
    for i in $(seq 1 150); do
        "$2" "$1"
        if [ "$CODE" = 200 ] && jq -e "$3" "$T/body" >/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}
contact() { # email → stored contact (state shape) or null
    sb_state "account=demo" | jq --arg e "$1" '[.accounts[0].contacts[] | select(.email == $e)][0]'
}

# ------------------------------------------------------------------- v2
cat >"$T/v2.json" <<'EOF'
{"import_data": [
  {"email_addresses": ["ann@example.com"], "first_name": "Ann", "last_name": "Lee",
   "job_title": "not declared", "addresses": [{"city": "Boston", "state_code": "MA",
   "country_code": "us", "postal_code": "02101"}],
   "custom_fields": [{"name": "custom_field_1", "value": "blue"}]},
  {"email_addresses": ["bob@example.com"], "first_name": "Bob"},
  {"email_addresses": ["not-an-email"], "first_name": "Bad"},
  {"email_addresses": ["cy@example.com"], "last_name": "Cy", "birthday_month": "13"},
  {"email_addresses": ["dee@example.com"], "last_name": "Dee"}
 ],
 "lists": ["1"],
 "column_names": ["EMAIL", "FIRST NAME", "LAST NAME", "CITY", "US STATE/CA PROVINCE",
                  "COUNTRY", "ZIP/POSTAL CODE", "BIRTHDAY_MONTH", "CUSTOM FIELD 1"]}
EOF
w0=$(sb_state contacts=0 | jq .writes)
v2 -X POST --data-binary @"$T/v2.json" "$SB_URL/v2/activities/addcontacts?api_key=$V2KEY"
ID2=$(jb .id 2>/dev/null)
if [ "$CODE" = 201 ] && jb '.type == "ADD_CONTACTS" and .contact_count == 5 and .error_count == 0' >/dev/null; then
    ok "v2 addcontacts: 201 {id, type ADD_CONTACTS, error_count, contact_count}"
else
    not_ok "v2 addcontacts 201" "$CODE $(cat "$T/body")"
fi
v2 "$SB_URL/v2/activities/$ID2?api_key=$V2KEY"
check "v2 activity reads QUEUED, RUNNING or COMPLETE" jq -e '.status == "QUEUED" or .status == "RUNNING" or .status == "COMPLETE"' "$T/body" >/dev/null
if poll "$SB_URL/v2/activities/$ID2?api_key=$V2KEY" v2 '.status == "COMPLETE"'; then
    ok "v2 activity reaches COMPLETE"
else
    not_ok "v2 activity reaches COMPLETE" "$(cat "$T/body")"
fi
if jb '.error_count == 2 and .contact_count == 5 and (.errors | length) == 2 and
       .errors[0].line_number == 3 and .errors[0].email_address == "not-an-email" and
       (.errors[0].message | type == "string") and .errors[1].line_number == 4 and
       (.start_date | type == "string") and (.finish_date | type == "string")' >/dev/null; then
    ok "v2 per-row errors are {message, line_number, email_address} objects"
else
    not_ok "v2 per-row errors" "$(cat "$T/body")"
fi
ann=$(contact ann@example.com)
if printf '%s' "$ann" | jq -e '.first_name == "Ann" and .last_name == "Lee" and .city == "Boston" and
       .state == "MA" and .postal_code == "02101" and (.job_title // "") == "" and
       .lists_v2 == ["1"] and .custom_fields.favorite_color == "blue"' >/dev/null; then
    ok "v2 row stored: declared columns taken, undeclared job_title ignored"
else
    not_ok "v2 row stored" "$ann"
fi
check "v2 invalid rows are not stored" test "$(contact not-an-email)" = null -a "$(contact cy@example.com)" = null
w1=$(sb_state contacts=0 | jq .writes)
check "v2 bulk writes are counted in /_sandbox/state ($w0 → $w1)" test "$((w1 - w0))" -eq 3

# Non-destructive merge: a second activity without last_name keeps it.
v2 -X POST -d '{"import_data":[{"email_addresses":["ann@example.com"],"first_name":"Annie"}],
  "lists":["2"],"column_names":["EMAIL","FIRST NAME"]}' "$SB_URL/v2/activities/addcontacts?api_key=$V2KEY"
ID2b=$(jb .id)
poll "$SB_URL/v2/activities/$ID2b?api_key=$V2KEY" v2 '.status == "COMPLETE"'
ann=$(contact ann@example.com)
check "v2 bulk update merges (first_name replaced, last_name and list 1 kept)" \
    eval 'printf "%s" "$ann" | jq -e ".first_name == \"Annie\" and .last_name == \"Lee\" and (.lists_v2 | sort) == [\"1\",\"2\"]" >/dev/null'

v2 -X POST -d '{"import_data":[{"email_addresses":["x@example.com"]}],"lists":["99"],"column_names":[]}' \
    "$SB_URL/v2/activities/addcontacts?api_key=$V2KEY"
check "v2 unknown list is 400 with an error array" test "$CODE" = 400 -a "$(jq -r '.[0].error_key' "$T/body")" != null
v2 -X POST -d '{"import_data":[{"email_addresses":["x@example.com"]}],"lists":["1"]}' \
    "$SB_URL/v2/activities/addcontacts?api_key=$V2KEY"
check "v2 missing column_names is 400" test "$CODE" = 400
v2 "$SB_URL/v2/activities/a07e1nosuchactivity?api_key=$V2KEY"
check "v2 unknown activity is 404" test "$CODE" = 404
req -H 'Content-Type: application/json' -X POST --data-binary @"$T/v2.json" "$SB_URL/v2/activities/addcontacts?api_key=$V2KEY"
check "v2 addcontacts needs the Bearer token (401)" test "$CODE" = 401

# ------------------------------------------------------------------- v3
cat >"$T/v3.json" <<EOF
{"import_data": [
  {"email": "eve@example.com", "first_name": "Eve", "last_name": "Ng", "company_name": "Acme",
   "work_phone": "555-0100", "street": "1 Main St", "city": "Waltham", "state": "MA",
   "zip": "02451", "country": "United States", "cf:favorite_color": "green"},
  {"email": "bad@@example.com", "first_name": "Bad"},
  {"email": "fay@example.com", "cf:no_such_field": "x"},
  {"first_name": "No email"},
  {"email": "gus@example.com", "birthday_month": 7, "birthday_day": 4}
 ],
 "list_ids": ["$L2"]}
EOF
w0=$(sb_state contacts=0 | jq .writes)
v3 -X POST --data-binary @"$T/v3.json" "$SB_URL/v3/activities/contacts_json_import"
ID3=$(jb .activity_id 2>/dev/null)
if [ "$CODE" = 201 ] && jb --arg id "$ID3" '.state == "initialized" and .percent_done == 0 and
        .activity_errors == [] and .status.items_total_count == 5 and
        ._links.self.href == "/v3/activities/\($id)"' >/dev/null; then
    ok "v3 contacts_json_import: 201 ActivityImport, state initialized"
else
    not_ok "v3 contacts_json_import 201" "$CODE $(cat "$T/body")"
fi
if poll "$SB_URL/v3/activities/$ID3" v3 '.state == "completed"'; then
    ok "v3 activity reaches completed"
else
    not_ok "v3 activity reaches completed" "$(cat "$T/body")"
fi
if jb '.percent_done == 100 and .status.items_total_count == 5 and
       .status.items_completed_count == 5 and .status.error_count == 3 and
       .status.person_count == 2 and (.completed_at | type == "string") and
       (.activity_errors | map(type == "string") | all) and
       .activity_errors[0] == "Line 2: Invalid email address" and
       (.activity_errors[1] | startswith("Line 3: ")) and
       (.activity_errors[2] | startswith("Line 4: "))' >/dev/null; then
    ok "v3 activity_errors are strings \"Line N: ...\", status counts agree"
else
    not_ok "v3 activity_errors/status" "$(cat "$T/body")"
fi
eve=$(contact eve@example.com)
if printf '%s' "$eve" | jq -e --arg l "$L2" '.first_name == "Eve" and .company_name == "Acme" and
       .phone == "555-0100" and .street == "1 Main St" and .postal_code == "02451" and
       .lists_v3 == [$l] and .custom_fields.favorite_color == "green"' >/dev/null &&
    contact gus@example.com | jq -e '.birthday_month == 7 and .birthday_day == 4' >/dev/null; then
    ok "v3 rows stored with the flat vocabulary, cf: fields and the list"
else
    not_ok "v3 rows stored" "$eve"
fi
w1=$(sb_state contacts=0 | jq .writes)
check "v3 bulk writes are counted ($w0 → $w1)" test "$((w1 - w0))" -eq 2
check "v3 a row naming an unknown custom field is not stored" test "$(contact fay@example.com)" = null

v3 -X POST -d "{\"import_data\":[{\"email\":\"x@example.com\"}],\"list_ids\":[\"nope\"]}" "$SB_URL/v3/activities/contacts_json_import"
check "v3 unknown list id is 400 with an error array" test "$CODE" = 400 -a "$(jq -r '.[0].error_key' "$T/body")" != null
v3 -X POST -d '{"import_data":[{"email":"x@example.com"}]}' "$SB_URL/v3/activities/contacts_json_import"
check "v3 missing list_ids is 400" test "$CODE" = 400
jq -n --arg l "$L1" '{import_data: [range(40001) | {email: "u\(.)@example.com"}], list_ids: [$l]}' >"$T/big.json"
v3 -X POST --data-binary @"$T/big.json" "$SB_URL/v3/activities/contacts_json_import"
check "v3 40,001 rows is 400" test "$CODE" = 400

# Over 4 MB: imported up to 4 MB, the rest dropped without an error.
jq -nc --arg l "$L1" --arg pad "$(printf 'x%.0s' $(seq 1 100))" \
    '{import_data: [range(36000) | {email: "big\(.)@example.com", first_name: $pad}], list_ids: [$l]}' >"$T/4mb.json"
size=$(stat -c %s "$T/4mb.json")
v3 -X POST --data-binary @"$T/4mb.json" "$SB_URL/v3/activities/contacts_json_import"
IDB=$(jb .activity_id 2>/dev/null)
total=$(jq -r .status.items_total_count "$T/body")
if [ "$size" -gt 4194304 ] && [ "$CODE" = 201 ] && [ "$total" -gt 20000 ] && [ "$total" -lt 36000 ]; then
    ok "v3 body of $size bytes: $total of 36000 rows kept (first 4 MB)"
else
    not_ok "v3 4 MB drop" "size $size code $CODE total $total"
fi
poll "$SB_URL/v3/activities/$IDB" v3 '.state == "completed"'
check "v3 the kept rows are imported, the dropped ones are not" \
    test "$(jb .status.person_count)" = "$total" -a "$(contact "big$((total - 1))@example.com" | jq -r .email)" = "big$((total - 1))@example.com" \
    -a "$(contact "big$total@example.com")" = null

# Isolation: another account cannot see the activity.
OTHER=$(curl -fsS "$SB_URL/_sandbox/state?contacts=0" | jq -r '[.accounts[].user_name | select(. != "demo")][0] // empty')
if [ -n "$OTHER" ]; then
    tok=$(mint_v3 "$OTHER")
    req -H "Authorization: Bearer $tok" "$SB_URL/v3/activities/$ID3"
    check "v3 another account's activity is 404" test "$CODE" = 404
fi
v3 "$SB_URL/v3/activities/00000000-0000-4000-8000-000000000000"
check "v3 unknown activity is 404" test "$CODE" = 404
req -H 'Content-Type: application/json' -X POST --data-binary @"$T/v3.json" "$SB_URL/v3/activities/contacts_json_import"
check "v3 contacts_json_import needs the Bearer token (401)" test "$CODE" = 401
finish
