#!/bin/bash
# test_sandbox_consent.sh — ctct-sandbox keeps consent as Constant Contact
# does: permission_to_send and its provenance, who may lift an unsubscribe
# (and the re-subscription log in /_sandbox/state), v3 include=, PUT keeping
# the sub-resources it was not sent, the GET /contacts filters and cursor
# paging, v2 action_by, the list-removal activities, and the admin hooks
# (seeding, SafeUnsubscribe).
. "$(dirname "$0")/../integration/lib.sh"

sb_start --rate 0 --daily-quota 0 || exit 1
. "$(dirname "$0")/api.inc"

state() { sb_state "account=demo" >"$T/state"; }
# perm EMAIL: the contact's permission in /_sandbox/state
perm() { state; jq -r --arg e "$1" '.accounts[0].contacts[]|select(.email==$e)|.permission' "$T/state"; }
# cid EMAIL: v3 contact_id
cid() { state; jq -r --arg e "$1" '.accounts[0].contacts[]|select(.email==$e)|.id' "$T/state"; }
resubs() { sb_state "contacts=0" | jq '.resubscriptions|length'; }
# wait_act v2|v3 ID: poll an activity until it is done (body in $T/body)
wait_act() {
    local done='.state=="completed"'
    [ "$1" = v2 ] && done='.status=="COMPLETE"'
    for _ in $(seq 100); do
        "$1" GET "/$1/activities/$2"
        jq -e "$done" "$T/body" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
wait_v3() { wait_act v3 "$1"; }
wait_v2() { wait_act v2 "$1"; }

# ---------------------------------------------------------------- seeding
admin /_sandbox/contacts "{\"account\":\"demo\",\"contacts\":[
 {\"email\":\"unsub@example.com\",\"first_name\":\"Una\",\"permission\":\"unsubscribed\",\"opt_out_source\":\"Contact\",\"opt_out_reason\":\"too many emails\"},
 {\"email\":\"impl@example.com\",\"first_name\":\"Imp\",\"last_name\":\"Licit\",\"permission\":\"implicit\",\"lists\":[\"$L1\",\"$L2\"],
  \"custom_fields\":{\"favorite_color\":\"red\"},\"phone_numbers\":[{\"phone_number\":\"555-0001\",\"kind\":\"home\"}],
  \"street_address\":{\"street\":\"1 Main St\",\"city\":\"Waltham\"}},
 {\"email\":\"expl@example.com\",\"permission\":\"explicit\",\"opt_in_source\":\"Contact\",\"lists\":[\"2\"]},
 {\"email\":\"acctout@example.com\",\"permission\":\"unsubscribed\",\"opt_out_source\":\"Account\"},
 {\"email\":\"gone@example.com\",\"permission\":\"implicit\",\"deleted\":true}]}"
st "seed contacts 200" 200
jqt "seed answers ids" '(.contacts|length)==5 and (.contacts[0].id|type)=="string" and (.contacts[0].id_v2|type)=="number"'
state
jqf "seeded permissions in state" "$T/state" '[.accounts[0].contacts[]|{(.email):.permission}]|add == {"unsub@example.com":"unsubscribed","impl@example.com":"implicit","expl@example.com":"explicit","acctout@example.com":"unsubscribed","gone@example.com":"implicit"}'
jqf "seeded opt-out provenance in state" "$T/state" '.accounts[0].contacts[]|select(.email=="unsub@example.com")|.opt_out_source=="Contact" and .opt_out_reason=="too many emails" and (.opt_out_date|type)=="string" and .lists_v3==[]'
jqf "seeding is not a write, no re-subscription" "$T/state" '.writes==0 and .resubscriptions==[] and .refused_resubscriptions==[]'
jqf "deleted seed kept apart from unsubscribed" "$T/state" '.accounts[0].contacts[]|select(.email=="gone@example.com")|.deleted==true and .permission=="implicit"'
admin /_sandbox/contacts '{"contacts":[{"email":"x@example.com","permision":"implicit"}]}'
st "seed with an unknown key 400" 400
admin /_sandbox/contacts '{"contacts":[{"email":"impl@example.com"}]}'
st "seed of an existing email 400" 400
UNSUB=$(cid unsub@example.com); IMPL=$(cid impl@example.com); EXPL=$(cid expl@example.com)
ACCTOUT=$(cid acctout@example.com); GONE=$(cid gone@example.com)

# ---------------------------------------------------------------- include=
v3 GET "/v3/contacts/$IMPL"
st "v3 GET by id 200" 200
jqt "without include: core fields only" '(has("list_memberships") or has("custom_fields") or has("phone_numbers") or has("street_addresses"))|not'
jqt "core fields and consent present" '.first_name=="Imp" and .email_address.permission_to_send=="implicit" and .email_address.opt_in_source=="Account" and (.email_address.opt_in_date|type)=="string" and .create_source=="Account"'
v3 GET "/v3/contacts/$IMPL?include=custom_fields,list_memberships,phone_numbers,street_addresses"
jqt "include= adds the sub-resources" "(.list_memberships|sort)==([\"$L1\",\"$L2\"]|sort) and .custom_fields[0].value==\"red\" and .phone_numbers[0].phone_number==\"555-0001\" and .street_addresses[0].city==\"Waltham\""
v3 GET "/v3/contacts/$IMPL?include=list_memberships"
jqt "include= only what it names" 'has("list_memberships") and (has("custom_fields")|not)'
v3 GET "/v3/contacts/$IMPL?include=lists"
st "include= unknown name 400" 400
v3 GET "/v3/contacts?email=unsub@example.com"
jqt "GET by email: unsubscribed with its opt-out" '.contacts[0].email_address|.permission_to_send=="unsubscribed" and .opt_out_source=="Contact" and .opt_out_reason=="too many emails" and (.opt_out_date|type)=="string"'
jqt "GET by email without include: no lists" '.contacts[0]|has("list_memberships")|not'
v3 GET "/v3/contacts?email=gone@example.com"
jqt "deleted contact hidden by default" '.contacts==[]'
v3 GET "/v3/contacts?email=gone@example.com&status=all&include=list_memberships"
jqt "status=all shows the deleted contact, off every list" '.contacts[0].list_memberships==[] and (.contacts[0].deleted_at|type)=="string"'

# ---------------------------------------------------------------- POST /contacts
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"new.acct@example.com\"},\"create_source\":\"Account\",\"list_memberships\":[\"$L1\"]}"
st "POST create_source Account 201" 201
jqt "POST Account, no permission: implicit, opted in by the account" '.email_address.permission_to_send=="implicit" and .email_address.opt_in_source=="Account" and .create_source=="Account"'
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"new.contact@example.com\"},\"create_source\":\"Contact\"}"
jqt "POST create_source Contact: explicit, opted in by the contact" '.email_address.permission_to_send=="explicit" and .email_address.opt_in_source=="Contact"'
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"new.pending@example.com\",\"permission_to_send\":\"pending_confirmation\"},\"create_source\":\"Account\"}"
jqt "POST honours permission_to_send" '.email_address.permission_to_send=="pending_confirmation" and .email_address.confirm_status=="pending"'
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"new.bad@example.com\",\"permission_to_send\":\"yes\"},\"create_source\":\"Account\"}"
st "POST unknown permission_to_send 400" 400
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"UNSUB@example.com\",\"permission_to_send\":\"implicit\"},\"create_source\":\"Account\"}"
st "POST of an unsubscribed email 409" 409
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"gone@example.com\"},\"create_source\":\"Account\"}"
st "POST of a deleted email 409" 409
check "new.acct is implicit in state" [ "$(perm new.acct@example.com)" = implicit ]

# ---------------------------------------------------------------- PUT
v3 PUT "/v3/contacts/$IMPL" '{"email_address":{"address":"impl@example.com"},"first_name":"Imogen","update_source":"Account"}'
st "PUT core fields 200" 200
jqt "PUT keeps lists, custom fields, phone, address it was not sent" "(.list_memberships|length)==2 and .custom_fields[0].value==\"red\" and .phone_numbers[0].phone_number==\"555-0001\" and .street_addresses[0].street==\"1 Main St\""
jqt "PUT replaces core fields (absent = cleared), keeps the permission" '.first_name=="Imogen" and (has("last_name")|not) and .email_address.permission_to_send=="implicit" and .update_source=="Account"'
v3 PUT "/v3/contacts/$IMPL" "{\"email_address\":{\"address\":\"impl@example.com\"},\"phone_numbers\":[],\"list_memberships\":[\"$L2\"],\"update_source\":\"Account\"}"
jqt "PUT replaces the sub-resources it is sent" ".phone_numbers==[] and .list_memberships==[\"$L2\"] and .street_addresses[0].city==\"Waltham\""

v3 PUT "/v3/contacts/$UNSUB" "{\"email_address\":{\"address\":\"unsub@example.com\",\"permission_to_send\":\"implicit\"},\"list_memberships\":[\"$L1\"],\"update_source\":\"Account\"}"
st "Account PUT on a contact's own unsubscribe: 200" 200
jqt "...the contact stays unsubscribed, on no list" '.email_address.permission_to_send=="unsubscribed" and .list_memberships==[] and .email_address.opt_out_source=="Contact"'
sb_state "contacts=0" >"$T/s"
jqf "...logged as a refused re-subscription, none made" "$T/s" '.resubscriptions==[] and (.refused_resubscriptions|length)==1 and .refused_resubscriptions[0].email=="unsub@example.com" and .refused_resubscriptions[0].via=="PUT /v3/contacts/{contact_id}"'
v3 PUT "/v3/contacts/$UNSUB" '{"email_address":{"address":"unsub@example.com","permission_to_send":"unsubscribed"},"first_name":"Una","update_source":"Account"}'
jqt "PUT sending the permission back unchanged: fine" '.email_address.permission_to_send=="unsubscribed" and .first_name=="Una"'
check "no re-subscription so far" [ "$(resubs)" = 0 ]

v3 PUT "/v3/contacts/$EXPL" '{"email_address":{"address":"expl@example.com","permission_to_send":"unsubscribed","opt_out_reason":"asked by phone"},"update_source":"Contact"}'
st "Contact PUT unsubscribed 200" 200
jqt "Contact PUT unsubscribes: source Contact, reason, date, off every list" '.email_address|.permission_to_send=="unsubscribed" and .opt_out_source=="Contact" and .opt_out_reason=="asked by phone" and (.opt_out_date|type)=="string"'
jqt "...and the lists are gone" '.list_memberships==[]'

v3 PUT "/v3/contacts/$GONE" '{"email_address":{"address":"gone@example.com"},"update_source":"Contact"}'
st "PUT update_source Contact cannot revive a deleted contact 400" 400
v3 PUT "/v3/contacts/$GONE" "{\"email_address\":{\"address\":\"gone@example.com\"},\"list_memberships\":[\"$L1\"],\"update_source\":\"Account\"}"
st "PUT update_source Account revives a deleted contact 200" 200
jqt "revived with its permission" '.email_address.permission_to_send=="implicit" and (has("deleted_at")|not)'

v3 PUT "/v3/contacts/$ACCTOUT" '{"email_address":{"address":"acctout@example.com","permission_to_send":"implicit"},"update_source":"Account"}'
jqt "the account may lift an unsubscribe the account made" '.email_address.permission_to_send=="implicit" and (.email_address|has("opt_out_source")|not)'
sb_state "contacts=0" >"$T/s"
jqf "...logged as a re-subscription" "$T/s" '(.resubscriptions|length)==1 and .resubscriptions[0].email=="acctout@example.com" and .resubscriptions[0].opt_out_source=="Account" and .resubscriptions[0].actor=="Account"'

# ---------------------------------------------------------------- sign_up_form
v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"unsub@example.com\",\"list_memberships\":[\"$L1\"]}"
st "sign_up_form on an unsubscribed contact 200" 200
check "sign_up_form makes it explicit (re-subscribes)" [ "$(perm unsub@example.com)" = explicit ]
sb_state "contacts=0" >"$T/s"
jqf "sign_up_form re-subscription is logged" "$T/s" '[.resubscriptions[]|select(.email=="unsub@example.com")]|length==1 and .[0].via=="POST /v3/contacts/sign_up_form" and .[0].actor=="Contact" and .[0].opt_out_source=="Contact" and (.[0].at|type)=="string"'
v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"new.acct@example.com\",\"list_memberships\":[\"$L1\"]}"
check "sign_up_form makes an implicit contact explicit" [ "$(perm new.acct@example.com)" = explicit ]
v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"form.new@example.com\",\"list_memberships\":[\"$L1\"]}"
v3 GET "/v3/contacts?email=form.new@example.com"
jqt "sign_up_form new contact: explicit, opted in by the contact" '.contacts[0].email_address|.permission_to_send=="explicit" and .opt_in_source=="Contact"'

# ---------------------------------------------------------------- admin unsubscribe
w0=$(sb_state "contacts=0" | jq .writes)
admin /_sandbox/unsubscribe '{"account":"demo","email":"impl@example.com","reason":"not interested"}'
st "admin SafeUnsubscribe 200" 200
jqt "SafeUnsubscribe: unsubscribed by the contact, with its reason" '.permission=="unsubscribed" and .opt_out_source=="Contact" and .opt_out_reason=="not interested" and .lists_v3==[]'
check "SafeUnsubscribe is not a client write" [ "$(sb_state "contacts=0" | jq .writes)" = "$w0" ]
admin /_sandbox/unsubscribe '{"email":"nobody@example.com"}'
st "SafeUnsubscribe of an unknown email 404" 404

# ---------------------------------------------------------------- bulk keeps consent
n0=$(resubs)
v3 POST /v3/activities/contacts_json_import "{\"import_data\":[{\"email\":\"impl@example.com\",\"first_name\":\"Again\"},{\"email\":\"form.new@example.com\"},{\"email\":\"bulk.new@example.com\"}],\"list_ids\":[\"$L1\"]}"
st "v3 import 201" 201
wait_v3 "$(jq -r .activity_id "$T/body")"
check "import: an unsubscribed contact stays unsubscribed" [ "$(perm impl@example.com)" = unsubscribed ]
check "import: an explicit contact stays explicit" [ "$(perm form.new@example.com)" = explicit ]
check "import: a new contact is implicit" [ "$(perm bulk.new@example.com)" = implicit ]
jqf "import: the unsubscribed contact is not put on the list, its data is updated" "$T/state" '.accounts[0].contacts[]|select(.email=="impl@example.com")|.lists_v3==[] and .first_name=="Again"'
check "import: no re-subscription" [ "$(resubs)" = "$n0" ]

# ---------------------------------------------------------------- v2 action_by
admin /_sandbox/contacts '{"contacts":[{"email":"v2out@example.com","permission":"unsubscribed","lists":["1"]},{"email":"v2in@example.com","lists":["1","2"]}]}'
V2OUT=$(jq -r '.contacts[0].id_v2' "$T/body"); V2IN=$(jq -r '.contacts[1].id_v2' "$T/body")
v2 GET "/v2/contacts/$V2OUT"
jqt "v2 unsubscribed contact is OPTOUT" '.status=="OPTOUT" and .email_addresses[0].status=="OPTOUT" and (.email_addresses[0].opt_out_date|length)>0'
n0=$(resubs)
v2 PUT "/v2/contacts/$V2OUT?action_by=ACTION_BY_OWNER" '{"email_addresses":[{"email_address":"v2out@example.com"}],"lists":[{"id":"1"}]}'
st "v2 ACTION_BY_OWNER PUT of an OPTOUT contact 400" 400
v2 PUT "/v2/contacts/$V2OUT" '{"email_addresses":[{"email_address":"v2out@example.com"}],"lists":[{"id":"1"}],"first_name":"X"}'
st "v2 PUT without action_by (owner) of an OPTOUT contact 400" 400
check "v2 owner cannot re-subscribe" [ "$(perm v2out@example.com)" = unsubscribed ] && check "...nothing logged" [ "$(resubs)" = "$n0" ]
v2 PUT "/v2/contacts/$V2OUT?action_by=ACTION_BY_VISITOR" '{"email_addresses":[{"email_address":"v2out@example.com"}],"lists":[]}'
st "v2 ACTION_BY_VISITOR with empty lists 400" 400
jqt "...query.param.action_by.is_not_valid_for.delete" '.[0].error_key=="query.param.action_by.is_not_valid_for.delete"'
v2 PUT "/v2/contacts/$V2OUT?action_by=ACTION_BY_VISITOR" '{"email_addresses":[{"email_address":"v2out@example.com"}],"lists":[{"id":"2"}]}'
st "v2 ACTION_BY_VISITOR with lists 200" 200
jqt "v2 visitor re-subscribes" '.status=="ACTIVE" and .email_addresses[0].opt_in_source=="ACTION_BY_VISITOR" and .lists[0].id==2'
sb_state "contacts=0" >"$T/s"
jqf "v2 visitor re-subscription logged" "$T/s" '[.resubscriptions[]|select(.email=="v2out@example.com")]|length==1 and .[0].via=="PUT /v2/contacts/{id}" and .[0].actor=="Contact"'
v2 POST /v2/contacts '{"email_addresses":[{"email_address":"v2new@example.com"}],"lists":[{"id":"1"}]}'
jqt "v2 owner POST: ACTION_BY_OWNER" '.email_addresses[0].opt_in_source=="ACTION_BY_OWNER"'
check "v2 owner POST: implicit" [ "$(perm v2new@example.com)" = implicit ]
v2 DELETE "/v2/contacts/$V2IN"
st "v2 DELETE 204" 204
check "v2 DELETE opts out (not deleted)" [ "$(perm v2in@example.com)" = unsubscribed ]
jqf "...by the account, off every list" "$T/state" '.accounts[0].contacts[]|select(.email=="v2in@example.com")|.opt_out_source=="Account" and .deleted==false and .lists_v2==[]'
v2 GET "/v2/contacts?status=OPTOUT&limit=500"
jqt "v2 status=OPTOUT lists the opted-out" '[.results[].email_addresses[0].email_address]|index("v2in@example.com")!=null and all(.[]; . != "v2new@example.com")'
jqt "v2 status=OPTOUT: every result OPTOUT" 'all(.results[]; .status=="OPTOUT")'
v2 GET "/v2/contacts?status=GONE"
st "v2 unknown status 400" 400
v2 POST /v2/activities/addcontacts '{"import_data":[{"email_addresses":["v2in@example.com"],"first_name":"Bulk"}],"lists":["1"],"column_names":["EMAIL","FIRST NAME"]}'
st "v2 addcontacts 201" 201
wait_v2 "$(jq -r .id "$T/body")"
check "v2 addcontacts keeps an OPTOUT contact opted out" [ "$(perm v2in@example.com)" = unsubscribed ]

# modified_since / updated_after: one opt-out on a clock set in the future
FUT=1893456000 # 2030-01-01
state
V2NEW=$(jq -r '.accounts[0].contacts[]|select(.email=="v2new@example.com")|.id_v2' "$T/state")
curl -fsS -X POST -d "{\"now\":$FUT}" "$SB_URL/_sandbox/clock" >/dev/null
v2 DELETE "/v2/contacts/$V2NEW"
curl -fsS -X POST -d '{"now":0}' "$SB_URL/_sandbox/clock" >/dev/null
v2 GET "/v2/contacts?status=OPTOUT&modified_since=2029-12-31T00:00:00.000Z"
jqt "v2 modified_since narrows to recent changes" '[.results[].email_addresses[0].email_address]==["v2new@example.com"]'
v3 GET "/v3/contacts?status=unsubscribed&updated_after=2029-12-31T00:00:00Z"
jqt "v3 updated_after narrows to recent changes" '[.contacts[].email_address.address]==["v2new@example.com"]'
v3 GET "/v3/contacts?updated_after=yesterday"
st "v3 bad updated_after 400" 400

# v2 list members
v2 GET "/v2/lists/1/contacts?limit=500"
st "v2 list members 200" 200
state
want=$(jq '[.accounts[0].contacts[]|select(.lists_v2|index("1"))]|length' "$T/state")
jqt "v2 list members: exactly the list's members" "(.results|length)==$want and all(.results[]; any(.lists[]; .id==1))"
v2 GET "/v2/lists/99/contacts"
st "v2 members of an unknown list 404" 404

# ---------------------------------------------------------------- v3 filters and paging
{
    printf '{"account":"demo","contacts":['
    for i in $(seq 1 1203); do
        [ "$i" = 1 ] || printf ','
        printf '{"email":"page%04d@example.com","permission":"unsubscribed","updated_at":"2001-01-01T00:00:00Z"}' "$i"
    done
    for i in $(seq 1 30); do
        printf ',{"email":"live%02d@example.com","lists":["%s"]}' "$i" "$L2"
    done
    printf ']}'
} >"$T/seed.json"
S=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST --data-binary @"$T/seed.json" "$SB_URL/_sandbox/contacts")
st "seed 1,233 contacts 200" 200
state
want=$(jq '[.accounts[0].contacts[]|select(.permission=="unsubscribed" and .deleted==false)]|length' "$T/state")
v3 GET "/v3/contacts?status=unsubscribed&limit=500&include_count=true"
jqt "first page: 500, a relative next href with the cursor only" '(.contacts|length)==500 and (._links.next.href|test("^/v3/contacts\\?cursor=[A-Za-z0-9_-]+$"))'
jqt "include_count=true: contacts_count of all matches" ".contacts_count==$want"
: >"$T/emails"; pages=0; href="/v3/contacts?status=unsubscribed&limit=500"
while [ -n "$href" ] && [ $pages -lt 10 ]; do
    v3 GET "$href"
    jq -r '.contacts[].email_address.address' "$T/body" >>"$T/emails"
    jq -e 'all(.contacts[]; .email_address.permission_to_send=="unsubscribed")' "$T/body" >/dev/null || not_ok "page $pages: only unsubscribed"
    href=$(jq -r '._links.next.href // empty' "$T/body")
    pages=$((pages + 1))
done
check "status=unsubscribed paged over 3 pages of <= 500" [ "$pages" = 3 ]
check "every unsubscribed contact once" [ "$(sort "$T/emails" | uniq | wc -l)" = "$want" ] && check "...no duplicates" [ "$(wc -l <"$T/emails")" = "$want" ]
v3 GET "/v3/contacts?status=unsubscribed"
jqt "default limit 50" '(.contacts|length)==50 and (has("contacts_count")|not)'
v3 GET "/v3/contacts?limit=501"
st "limit over 500: 400" 400
v3 GET "/v3/contacts?cursor=bm9wZQ"
st "invalid cursor 400" 400
v3 GET "/v3/contacts?status=explicit"
st "status=explicit is not a filter of the API: 400" 400
v3 GET "/v3/contacts?lists=$L2&limit=500&include=list_memberships"
jqt "lists= filter: members only" "(.contacts|length)>=30 and all(.contacts[]; .list_memberships|index(\"$L2\"))"
v3 GET "/v3/contacts?status=deleted&limit=500"
jqt "status=deleted: the deleted only" 'all(.contacts[]; has("deleted_at"))'
v3 GET "/v3/contacts?status=active&limit=500"
jqt "status=active: implicit or explicit, none deleted" 'all(.contacts[]; (.email_address.permission_to_send|IN("implicit","explicit")) and (has("deleted_at")|not))'
v3 GET "/v3/contacts?status=unsubscribed,pending_confirmation&limit=500&email=new.pending@example.com"
jqt "several statuses, with email=" '[.contacts[].email_address.address]==["new.pending@example.com"]'

# ---------------------------------------------------------------- list removal
admin /_sandbox/contacts "{\"contacts\":[{\"email\":\"rm1@example.com\",\"lists\":[\"$L1\",\"$L2\"],\"permission\":\"explicit\"},{\"email\":\"rm2@example.com\",\"lists\":[\"$L1\"]},{\"email\":\"rm3@example.com\",\"lists\":[\"$L1\"]}]}"
RM1=$(jq -r '.contacts[0].id' "$T/body"); RM2=$(jq -r '.contacts[1].id' "$T/body")
w0=$(sb_state "contacts=0" | jq .writes)
v3 POST /v3/activities/remove_list_memberships "{\"source\":{\"contact_ids\":[\"$RM1\",\"$RM2\",\"00000000-0000-4000-8000-000000099999\"]},\"list_ids\":[\"$L1\"]}"
st "remove_list_memberships 201" 201
jqt "remove activity shape" '(.activity_id|type)=="string" and .state=="initialized" and (._links.self.href|startswith("/v3/activities/")) and .status.items_total_count==3 and .status.list_count==1'
wait_v3 "$(jq -r .activity_id "$T/body")" && ok "remove activity completes" || not_ok "remove activity completes"
jqt "completed activity: counts, one error for the unknown id" '.percent_done==100 and .status.items_completed_count==3 and (.activity_errors|length)==1'
state
jqf "removed from that list only, contact and other lists kept" "$T/state" ".accounts[0].contacts[]|select(.email==\"rm1@example.com\")|.lists_v3==[\"$L2\"] and .deleted==false and .permission==\"explicit\""
jqf "removal never deletes or unsubscribes" "$T/state" '.accounts[0].contacts[]|select(.email=="rm2@example.com")|.lists_v3==[] and .deleted==false and .permission=="implicit"'
check "removals are writes" [ "$(jq .writes "$T/state")" = $((w0 + 2)) ]
ids=$(seq 501 | sed 's/.*/"x"/' | paste -sd,)
v3 POST /v3/activities/remove_list_memberships "{\"source\":{\"contact_ids\":[$ids]},\"list_ids\":[\"$L1\"]}"
st "more than 500 contact_ids 400" 400
v3 POST /v3/activities/remove_list_memberships "{\"source\":{\"contact_ids\":[\"$RM1\"],\"all_active_contacts\":true},\"list_ids\":[\"$L1\"]}"
st "two sources 400" 400
v3 POST /v3/activities/remove_list_memberships "{\"source\":{\"contact_ids\":[\"$RM1\"]},\"list_ids\":[\"nope\"]}"
st "unknown target list 400" 400
v3 POST /v3/activities/remove_list_memberships "{\"source\":{\"list_ids\":[\"$L1\"]},\"exclude\":{\"contact_ids\":[\"$(cid rm3@example.com)\"]},\"list_ids\":[\"$L1\"]}"
st "remove by source list_ids with exclude 201" 201
wait_v3 "$(jq -r .activity_id "$T/body")"
state
jqf "list emptied except the excluded contact" "$T/state" "[.accounts[0].contacts[]|select(.lists_v3|index(\"$L1\"))|.email]==[\"rm3@example.com\"]"

v2 POST /v2/activities/removefromlists '{"import_data":[{"email_addresses":["rm3@example.com"]},{"email_addresses":["rm2@example.com"]}],"lists":["1"]}'
st "v2 removefromlists 201" 201
jqt "v2 removefromlists reply" '.type=="REMOVE_CONTACTS_FROM_LISTS" and .contact_count==2 and (.id|type)=="string"'
wait_v2 "$(jq -r .id "$T/body")" && ok "v2 remove activity completes" || not_ok "v2 remove activity completes"
jqt "v2 activity: type, one error for the non-member (fixture shape)" '.type=="REMOVE_CONTACTS_FROM_LISTS" and .error_count==1 and .errors[0].message=="rm2@example.com (not found in subscriber list)"'
check "v2 removal leaves the contact" [ "$(perm rm3@example.com)" = implicit ]
jqf "v2 removal: off list 1" "$T/state" '.accounts[0].contacts[]|select(.email=="rm3@example.com")|.lists_v2==[]'
v2 POST /v2/activities/removefromlists '{"import_data":[{"email_addresses":["rm3@example.com"]}],"lists":["99"]}'
st "v2 removefromlists unknown list 400" 400

# ---------------------------------------------------------------- reset
curl -fsS -X POST "$SB_URL/_sandbox/reset" >/dev/null
sb_state "contacts=0" >"$T/s"
jqf "reset empties the re-subscription logs" "$T/s" '.resubscriptions==[] and .refused_resubscriptions==[]'

finish
