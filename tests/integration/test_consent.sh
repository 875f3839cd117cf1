#!/usr/bin/env bash
# test_consent.sh — permission to send on the per-contact path, v3 and v2
# (issue 11).  An account seeded with implicit, explicit and unsubscribed
# contacts that are on other lists and have custom fields, phones and
# addresses, plus new rows and rows the file marks opted out:
#   - nobody is re-subscribed (the sandbox's re-subscription logs stay
#     empty) and sign_up_form is never used by default;
#   - new contacts are implicit, opted in by the Account;
#   - existing contacts keep their permission, other lists, custom fields,
#     phone and address; one that already holds the row is not written;
#   - an unsubscribed contact is `opted-out` and never written;
#   - an opt_out row unsubscribes an existing contact (`unsubscribed`) and
#     adds nothing for an unknown email (`opted-out`);
#   - --permission explicit and --mode create leave unsubscribed contacts
#     alone too; the summary counts opted_out and unsubscribed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox starts"; finish; }

seed() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"account\":\"demo\",\"contacts\":$1}" \
        "$SB_URL/_sandbox/contacts" >/dev/null
}
# contact EMAIL: the demo account's contact as JSON ("null" when absent).
contact() {
    sb_state | jq -c --arg e "$1" '[.accounts[] | select(.encoded_account_id == "a07e1demo0001")
        | .contacts[] | select(.email == $e)][0]'
}
# field EMAIL JQ: jq over one contact.
field() { contact "$1" | jq -r "$2"; }
ep() { sb_state contacts=0 | jq --arg k "$1" '.requests.by_endpoint[$k] // 0'; }
no_resubscription() {
    [ "$(sb_state contacts=0 | jq -c '[.resubscriptions, .refused_resubscriptions]')" = '[[],[]]' ]
}
# attempts ROW: the HTTP requests the report charges to data row ROW.
attempts() { rep_body | awk -F, -v r="$1" '$2 == r { print $6 }'; }

PHONE="+1 555 0101"
for api in $APIS; do
    use_api $api
    sb_reset
    STATE_DIR="$T/state-$api"
    seed "[
      {\"email\":\"imp@example.com\",\"first_name\":\"Imp\",\"permission\":\"implicit\",
       \"lists\":[\"$LIST2\"],\"custom_fields\":{\"member_since\":\"2019\"},
       \"phone\":\"$PHONE\",\"street_address\":{\"street\":\"1 Main St\",\"city\":\"Waltham\"}},
      {\"email\":\"exp@example.com\",\"first_name\":\"Exp\",\"permission\":\"explicit\",
       \"opt_in_source\":\"Contact\",\"lists\":[\"$LIST2\"],
       \"custom_fields\":{\"member_since\":\"2020\"},\"phone\":\"$PHONE\"},
      {\"email\":\"same@example.com\",\"first_name\":\"Same\",\"permission\":\"implicit\",
       \"lists\":[\"$LIST\"]},
      {\"email\":\"unsub@example.com\",\"first_name\":\"Un\",\"permission\":\"unsubscribed\",
       \"opt_out_source\":\"Contact\",\"custom_fields\":{\"member_since\":\"2018\"},
       \"phone\":\"$PHONE\"},
      {\"email\":\"leave@example.com\",\"first_name\":\"Leave\",\"permission\":\"implicit\",
       \"lists\":[\"$LIST2\"]}]"
    {
        echo "email,first name,last name,Colour,opt out"
        echo "imp@example.com,Imp2,,blue,"
        echo "exp@example.com,Exp,Newname,,no"
        echo "same@example.com,Same,,,"
        echo "unsub@example.com,Un2,,red,"
        echo "leave@example.com,,,,yes"
        echo "ghost@example.com,Ghost,,,yes"
        echo "new1@example.com,New1,,green,"
        echo "new2@example.com,New2,,,"
    } >"$T/in.csv"
    imp --list "$LIST" --rate 0 --bulk never --map cf:favorite_color=Colour "$T/in.csv"
    st="$(rep_status 1) $(rep_status 2) $(rep_status 3) $(rep_status 4) $(rep_status 5) $(rep_status 6) $(rep_status 7) $(rep_status 8)"
    want="updated updated unchanged opted-out unsubscribed opted-out created created"
    if [ "$RC" = 0 ] && [ "$st" = "$want" ]; then
        ok "$api: statuses $want, exit 0"
    else
        not_ok "$api: statuses" "rc=$RC got: $st"
        explain
    fi
    check "$api: nobody re-subscribed, sign_up_form never used" eval \
        'no_resubscription && [ "$(ep "POST /v3/contacts/sign_up_form")" = 0 ]'
    check "$api: new contacts are implicit, opted in by the Account, on the list" eval \
        '[ "$(field new1@example.com "[.permission, .opt_in_source, (.lists_v3 | join(\" \")), .custom_fields.favorite_color] | join(\",\")")" = "implicit,Account,$DEMO_V3_LIST,green" ] &&
         [ "$(field new2@example.com .permission)" = implicit ]'
    check "$api: an implicit contact keeps its permission, other list, custom field, phone and address" eval \
        '[ "$(field imp@example.com "[.first_name, .permission, (.lists_v3 | sort | join(\" \")), .custom_fields.member_since, .custom_fields.favorite_color, .phone, .street, .city] | join(\",\")")" = "Imp2,implicit,$DEMO_V3_LIST $DEMO_V3_LIST2,2019,blue,$PHONE,1 Main St,Waltham" ]'
    check "$api: an explicit contact stays explicit, keeps its other list, custom field and phone" eval \
        '[ "$(field exp@example.com "[.last_name, .permission, .opt_in_source, (.lists_v3 | sort | join(\" \")), .custom_fields.member_since, .phone] | join(\",\")")" = "Newname,explicit,Contact,$DEMO_V3_LIST $DEMO_V3_LIST2,2020,$PHONE" ]'
    check "$api: a contact already holding the row is not written" eval \
        '[ "$(field same@example.com .writes)" = 0 ]'
    check "$api: an unsubscribed contact is left alone (no write, still unsubscribed, its data as it was)" eval \
        '[ "$(field unsub@example.com "[.writes, .permission, .first_name, .custom_fields.member_since, .phone] | join(\",\")")" = "0,unsubscribed,Un,2018,$PHONE" ] &&
         rep_body | awk -F, "\$2 == 4" | grep -q "unsubscribed since [0-9-]*; left alone"'
    if [ $api = v3 ]; then src=Contact; else src=Account; fi # v2 DELETE acts as the account
    check "$api: opt_out=yes unsubscribes an existing contact (opt_out_source $src)" eval \
        '[ "$(field leave@example.com "[.permission, .opt_out_source] | join(\",\")")" = "unsubscribed,$src" ]'
    check "$api: an opt_out row for an unknown email adds nobody" eval \
        '[ "$(contact ghost@example.com)" = null ] &&
         rep_body | awk -F, "\$2 == 6" | grep -q "not in the account; nothing added"'
    if [ $api = v3 ]; then
        writes_ok='[ "$(ep "PUT /v3/contacts/{id}")" = 3 ]'
    else
        writes_ok='[ "$(ep "PUT /v2/contacts/{id}")" = 2 ] && [ "$(ep "DELETE /v2/contacts/{id}")" = 1 ]'
    fi
    check "$api: the only updates are the two changed contacts and the opt-out" eval "$writes_ok"
    check "$api: summary counts opted_out 2, unsubscribed 1, unchanged 1" eval \
        '[ "$(jq -c "[.created, .updated, .unchanged, .opted_out, .unsubscribed, .failed]" "$T/s.json")" = "[2,2,1,2,1,0]" ] && sum_adds_up'
    # Requests per row, as the report charges them (the sandbox agrees: its
    # contact endpoints saw exactly their sum).
    seen=$(sb_state contacts=0 | jq '[.requests.by_endpoint | to_entries[]
        | select(.key | test("^(POST|GET|PUT|DELETE) /v[23]/contacts")) | .value] | add // 0')
    total=$(rep_body | awk -F, '{ s += $6 } END { print s + 0 }')
    echo "# $api requests per row: new $(attempts 7), existing updated $(attempts 1), existing unchanged $(attempts 3), unsubscribed in the account $(attempts 4), opt_out row $(attempts 5), opt_out unknown $(attempts 6); sandbox saw $seen for $total"
    check "$api: new contact 1 request, existing contact 3 (POST 409, GET, PUT)" eval \
        '[ "$(attempts 7)" = 1 ] && [ "$(attempts 1)" = 3 ] && [ "$seen" -ge "$total" ]'
    # The next run, with the state: rows the account holds as they are
    # cost nothing; a row that flips to opt_out is sent (its fingerprint
    # changed) and unsubscribes the contact.
    sed 's/^new2@example.com,New2,,,$/new2@example.com,New2,,,yes/' "$T/in.csv" >"$T/in2.csv"
    imp --list "$LIST" --rate 0 --bulk never --map cf:favorite_color=Colour "$T/in2.csv"
    # (Row 5, unsubscribed by the first run, is now in the account's list
    # of unsubscribed addresses: `opted-out`, already unsubscribed.)
    check "$api: next run: the row flipped to opt_out unsubscribes, settled rows cost no request" eval \
        '[ "$RC" = 0 ] && [ "$(rep_status 8)" = unsubscribed ] && [ "$(field new2@example.com .permission)" = unsubscribed ] &&
         [ "$(rep_status 1) $(rep_status 3) $(rep_status 5) $(rep_status 7)" = "unchanged unchanged opted-out unchanged" ] &&
         rep_body | awk -F, "\$2 == 5" | grep -q "already unsubscribed since" &&
         [ "$(attempts 1)$(attempts 3)$(attempts 5)$(attempts 7)" = 0000 ] && no_resubscription'
done

# --permission explicit: unsubscribed contacts are still left alone, and
# new contacts are explicit.  v2 (ACTION_BY_VISITOR): known before sending,
# and the POST's 409 would lead to the GET that finds OPTOUT, so no PUT.
# v3 uses sign_up_form, which would re-subscribe: the unsubscribed
# addresses known before sending keep it away from them (one sign_up_form,
# the new contact's).
for api in v2 v3; do
    use_api $api
    sb_reset
    STATE_DIR="$T/state-$api-explicit"
    seed "[{\"email\":\"unsub@example.com\",\"first_name\":\"Un\",\"permission\":\"unsubscribed\",
            \"opt_out_source\":\"Contact\"}]"
    printf 'email,first name\nunsub@example.com,Un2\nnewx@example.com,Newx\n' >"$T/in.csv"
    imp --list "$LIST" --rate 0 --bulk never --permission explicit "$T/in.csv"
    if [ $api = v2 ]; then
        writes_ok='[ "$(ep "PUT /v2/contacts/{id}")" = 0 ]'
    else
        writes_ok='[ "$(ep "POST /v3/contacts/sign_up_form")" = 1 ]'
    fi
    check "$api --permission explicit: the unsubscribed contact is opted-out, never written, nobody re-subscribed" eval \
        '[ "$RC" = 0 ] && [ "$(rep_status 1)" = opted-out ] && [ "$(field unsub@example.com "[.writes, .permission] | join(\",\")")" = "0,unsubscribed" ] &&
         '"$writes_ok"' && no_resubscription'
    check "$api --permission explicit: a new contact is explicit" eval \
        '[ "$(rep_status 2)" = created ] && [ "$(field newx@example.com .permission)" = explicit ]'
done

# v3 --mode create: existing contacts are `exists` (the unsubscribed one is
# `opted-out`: known before sending), opt_out rows still unsubscribe, and with
# --permission explicit a new contact is explicit, opted in by the Contact.
use_api v3
sb_reset
STATE_DIR="$T/state-v3-create"
seed "[{\"email\":\"unsub@example.com\",\"first_name\":\"Un\",\"permission\":\"unsubscribed\",
        \"opt_out_source\":\"Contact\"},
       {\"email\":\"leave@example.com\",\"first_name\":\"Leave\",\"permission\":\"implicit\"}]"
printf 'email,first name,unsubscribed\nunsub@example.com,Un2,\nleave@example.com,,x\nnewc@example.com,Newc,\n' >"$T/in.csv"
imp --list "$LIST" --rate 0 --bulk never --mode create --permission explicit "$T/in.csv"
check "v3 --mode create --permission explicit: opted-out, unsubscribed, created; nobody re-subscribed" eval \
    '[ "$RC" = 0 ] && [ "$(rep_status 1) $(rep_status 2) $(rep_status 3)" = "opted-out unsubscribed created" ] &&
     [ "$(field unsub@example.com .writes)" = 0 ] && no_resubscription &&
     [ "$(field leave@example.com .permission)" = unsubscribed ]'
check "v3 --mode create --permission explicit: the new contact is explicit, opted in by the Contact" eval \
    '[ "$(field newc@example.com "[.permission, .opt_in_source] | join(\",\")")" = "explicit,Contact" ]'

# --dry-run says what each row would get, an opt_out row included (a fresh
# account: leave@ subscribed, unsub@ unknown).
sb_reset
seed "[{\"email\":\"leave@example.com\",\"first_name\":\"Leave\",\"permission\":\"implicit\"}]"
STATE_DIR="$T/state-v3-dry"
imp --list "$LIST" --rate 0 --bulk never --dry-run "$T/in.csv"
check "--dry-run: an opt_out row would be looked up and unsubscribed" eval \
    '[ "$RC" = 0 ] && rep_body | awk -F, "\$2 == 2" | grep -q "unsubscribe it" &&
     rep_body | awk -F, "\$2 == 1" | grep -q "would POST /contacts"'

# Bulk cannot unsubscribe: with --bulk always, an opt_out row still goes
# contact by contact, the others in the activity.
sb_reset
STATE_DIR="$T/state-v3-bulk"
seed "[{\"email\":\"leave@example.com\",\"first_name\":\"Leave\",\"permission\":\"implicit\"}]"
printf 'email,first name,opt out\nleave@example.com,,yes\nbulk1@example.com,B1,\nbulk2@example.com,B2,\n' >"$T/in.csv"
imp --list "$LIST" --rate 0 --bulk always --poll-interval 1 "$T/in.csv"
check "--bulk always: the opt_out row is unsubscribed contact by contact, the others imported" eval \
    '[ "$RC" = 0 ] && [ "$(rep_status 1) $(rep_status 2) $(rep_status 3)" = "unsubscribed imported imported" ] &&
     [ "$(field leave@example.com .permission)" = unsubscribed ] && no_resubscription'
# An existing contact that already holds what the row says, phone and
# address included (v3: the client sends them as kind "home"; v2 as
# work_phone and a PERSONAL address; a server that keeps kinds, as the API
# does, hands them back the same): unchanged after POST 409 and GET, no PUT.
for api in $APIS; do
    use_api $api
    pkind=home
    [ $api = v2 ] && pkind=work
    sb_reset
    STATE_DIR="$T/state-kinds-$api"
    seed "[{\"email\":\"kind@example.com\",\"first_name\":\"Kind\",\"permission\":\"implicit\",
       \"lists\":[\"$LIST\"],\"phone_numbers\":[{\"phone_number\":\"555-0101\",\"kind\":\"$pkind\"}],
       \"street_address\":{\"kind\":\"home\",\"street\":\"1 Main St\",\"city\":\"Waltham\"}}]"
    printf 'email,first name,phone,street,city\nkind@example.com,Kind,555-0101,1 Main St,Waltham\n' >"$T/in.csv"
    imp --list "$LIST" --rate 0 --bulk never "$T/in.csv"
    check "$api: a contact holding the row's phone and address is unchanged: no PUT" eval \
        '[ "$RC" = 0 ] && [ "$(rep_status 1)" = unchanged ] && [ "$(field kind@example.com .writes)" = 0 ]'
done
# v3: an opt_out row for a contact the account deleted: nothing is sent (a
# PUT would restore it), the row is opted-out, the contact stays deleted.
use_api v3
sb_reset
STATE_DIR="$T/state-v3-deleted"
seed '[{"email":"gone@example.com","first_name":"Gone","deleted":true}]'
printf 'email,opt out\ngone@example.com,yes\n' >"$T/in.csv"
imp --list "$LIST" --rate 0 --bulk never "$T/in.csv"
check "v3: opt_out row for a deleted contact: opted-out, nothing written, still deleted" eval \
    '[ "$RC" = 0 ] && [ "$(rep_status 1)" = opted-out ] &&
     rep_body | grep -q "deleted in the account; nothing sent" &&
     [ "$(ep "PUT /v3/contacts/{id}")" = 0 ] && [ "$(field gone@example.com .deleted)" = true ]'
finish
