#!/bin/bash
# test_sandbox_api.sh — every v2/v3 endpoint of ctct-sandbox: success shapes
# (field names and types of the php-sdk fixtures / Constant Contact's v3
# API documentation) and each error code (400, 401, 403, 404, 405, 409,
# 415), against a real sandbox on a free port.
. "$(dirname "$0")/../integration/lib.sh"
TOP_SAMPLES="$TOP/samples"

sb_start --rate 0 --daily-quota 0 --accounts "$TOP_SAMPLES/accounts.json" || exit 1

. "$(dirname "$0")/api.inc"

# ---------------------------------------------------------------- v3
v3 GET /v3/account/summary
st "v3 account summary 200" 200
jqt "v3 account summary shape" '.encoded_account_id=="a07e1demo0001" and (.organization_name|type)=="string" and (.contact_email|type)=="string"'

v3 GET /v3/contact_lists
st "v3 contact_lists 200" 200
jqt "v3 contact_lists shape" ".lists_count==2 and (.lists|length)==2 and .lists[0].list_id==\"$L1\" and .lists[0].name==\"General Interest\" and (.lists[0].membership_count|type)==\"number\""

v3 GET /v3/contact_custom_fields
st "v3 custom fields 200" 200
jqt "v3 custom fields shape" ".custom_fields[0].custom_field_id==\"$CF1\" and (.custom_fields[0]|has(\"name\") and has(\"label\") and has(\"type\"))"

v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"Ann@Example.com\",\"first_name\":\"Ann\",\"list_memberships\":[\"$L1\"],\"custom_fields\":[{\"custom_field_id\":\"$CF1\",\"value\":\"blue\"}]}"
st "sign_up_form create 201" 201
jqt "sign_up_form created shape" '.action=="created" and (.contact_id|test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"))'
ANN=$(jq -r .contact_id "$T/body")

v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"ann@example.com\",\"last_name\":\"Lee\",\"list_memberships\":[\"$L2\"]}"
st "sign_up_form update 200" 200
jqt "sign_up_form updated same id" ".action==\"updated\" and .contact_id==\"$ANN\""

v3 GET "/v3/contacts?email=ann@example.com&status=all&include=custom_fields,list_memberships"
st "v3 GET by email 200" 200
jqt "sign_up_form appended lists, kept fields" ".contacts|length==1 and .[0].first_name==\"Ann\" and .[0].last_name==\"Lee\" and (.[0].list_memberships|sort)==([\"$L1\",\"$L2\"]|sort) and .[0].custom_fields[0].value==\"blue\" and .[0].email_address.address==\"ann@example.com\""

v3 GET "/v3/contacts?email=nobody@example.com"
jqt "v3 GET unknown email: empty list" '.contacts==[]'

v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"x@example.com\"}"
st "sign_up_form without list_memberships 400" 400
jqt "400 is an error array" '.[0].error_key=="contacts.api.validation.error" and (.[0].error_message|type)=="string"'

v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"not-an-email\",\"list_memberships\":[\"$L1\"]}"
st "sign_up_form invalid email 400" 400

LONG=$(printf 'a%.0s' $(seq 51))
v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"y@example.com\",\"first_name\":\"$LONG\",\"list_memberships\":[\"$L1\"]}"
st "sign_up_form first_name over 50 chars 400" 400
# 50 characters of 2-byte UTF-8 are within the limit (characters, not bytes)
U50=$(printf 'é%.0s' $(seq 50))
v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"u@example.com\",\"first_name\":\"$U50\",\"list_memberships\":[\"$L1\"]}"
st "sign_up_form 50 UTF-8 characters accepted" 201

v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"z@example.com\",\"list_memberships\":[\"no-such-list\"]}"
st "sign_up_form unknown list 400" 400

v3 POST /v3/contacts/sign_up_form '{"email_address":'
st "sign_up_form malformed JSON 400" 400

req POST /v3/contacts/sign_up_form "" -H "Authorization: Bearer $V3" -H 'Content-Type: text/plain' --data-binary 'hello'
st "sign_up_form text/plain 415" 415

v3 POST /v3/contacts "{\"email_address\":{\"address\":\"bob@example.com\",\"permission_to_send\":\"implicit\"},\"first_name\":\"Bob\",\"create_source\":\"Account\",\"list_memberships\":[\"$L1\"],\"phone_numbers\":[{\"phone_number\":\"555-1212\",\"kind\":\"work\"}],\"street_addresses\":[{\"kind\":\"work\",\"street\":\"1 Main St\",\"city\":\"Waltham\"}]}"
st "v3 POST contacts 201" 201
jqt "v3 ContactResource shape" '(.contact_id|type)=="string" and .email_address.address=="bob@example.com" and .first_name=="Bob" and .phone_numbers[0].phone_number=="555-1212" and .street_addresses[0].city=="Waltham" and (.created_at|type)=="string"'
BOB=$(jq -r .contact_id "$T/body")

v3 POST /v3/contacts "{\"email_address\":{\"address\":\"BOB@example.com\"},\"create_source\":\"Account\"}"
st "v3 POST existing email 409" 409
jqt "v3 409 body" '.[0].error_key=="contacts.api.conflict" and .[0].error_message=="Validation failed: EmailAddress is not unique"'

v3 POST /v3/contacts "{\"email_address\":{\"address\":\"c@example.com\"}}"
st "v3 POST without create_source 400" 400

v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"last_name\":\"Stone\",\"update_source\":\"Account\"}"
st "v3 PUT 200" 200
jqt "v3 PUT replaces top-level fields, keeps lists" ".last_name==\"Stone\" and (has(\"first_name\")|not) and .list_memberships==[\"$L1\"]"

v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"}}"
st "v3 PUT without update_source 400" 400

# phones and addresses: up to 3 each, with their kinds, as sent
v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"update_source\":\"Account\",\"phone_numbers\":[{\"phone_number\":\"555-0001\",\"kind\":\"home\"},{\"phone_number\":\"555-0002\",\"kind\":\"mobile\"},{\"phone_number\":\"555-0003\",\"kind\":\"other\"}],\"street_addresses\":[{\"kind\":\"home\",\"street\":\"1 Elm St\",\"city\":\"Boston\"},{\"kind\":\"work\",\"street\":\"2 Oak St\",\"city\":\"Waltham\",\"postal_code\":\"02451\"}]}"
st "v3 PUT with 3 phones and 2 addresses 200" 200
v3 GET "/v3/contacts/$BOB?include=phone_numbers,street_addresses"
jqt "phones kept with their kinds, in order" '[.phone_numbers[]|[.phone_number,.kind]]==[["555-0001","home"],["555-0002","mobile"],["555-0003","other"]]'
jqt "addresses kept with their kinds, in order" '[.street_addresses[]|[.kind,.street,.city]]==[["home","1 Elm St","Boston"],["work","2 Oak St","Waltham"]] and .street_addresses[1].postal_code=="02451"'
v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"update_source\":\"Account\",\"last_name\":\"Stone\"}"
v3 GET "/v3/contacts/$BOB?include=phone_numbers,street_addresses"
jqt "PUT without phone_numbers/street_addresses keeps them all" '(.phone_numbers|length)==3 and (.street_addresses|length)==2'
v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"update_source\":\"Account\",\"phone_numbers\":[{\"phone_number\":\"555-0009\",\"kind\":\"work\"}],\"street_addresses\":[]}"
v3 GET "/v3/contacts/$BOB?include=phone_numbers,street_addresses"
jqt "PUT with one phone and no address replaces them" '.phone_numbers==[{"phone_number":"555-0009","kind":"work"}] and .street_addresses==[]'
v2 GET "/v2/contacts?email=bob@example.com"
jqt "v2 shows the work phone as work_phone" '.results[0].work_phone=="555-0009" and .results[0].home_phone==""'
v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"update_source\":\"Account\",\"phone_numbers\":[{\"phone_number\":\"1\",\"kind\":\"fax\"}]}"
st "v3 phone kind outside home|work|mobile|other 400" 400
v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"update_source\":\"Account\",\"street_addresses\":[{\"street\":\"1 Elm St\"}]}"
st "v3 street address without kind 400" 400
v3 PUT "/v3/contacts/$BOB" "{\"email_address\":{\"address\":\"bob@example.com\"},\"update_source\":\"Account\",\"phone_numbers\":[{\"phone_number\":\"1\"},{\"phone_number\":\"2\"},{\"phone_number\":\"3\"},{\"phone_number\":\"4\"}]}"
st "v3 four phones 400" 400

v3 PUT "/v3/contacts/00000000-0000-4000-8000-000000000999" "{\"email_address\":{\"address\":\"q@example.com\"},\"update_source\":\"Account\"}"
st "v3 PUT unknown id 404" 404

v3 GET "/v3/contacts/$BOB"
st "v3 GET contact by id 200" 200

v3 DELETE "/v3/contacts/$BOB"
st "v3 DELETE 204" 204
v3 GET "/v3/contacts?email=bob@example.com"
jqt "deleted contact hidden by default" '.contacts==[]'
v3 GET "/v3/contacts?email=bob@example.com&status=all"
jqt "deleted contact shown with status=all" '.contacts|length==1'
v3 POST /v3/contacts "{\"email_address\":{\"address\":\"bob@example.com\"},\"create_source\":\"Account\"}"
st "v3 POST on deleted contact still 409" 409
v3 POST /v3/contacts/sign_up_form "{\"email_address\":\"bob@example.com\",\"list_memberships\":[\"$L2\"]}"
st "sign_up_form revives deleted contact (200)" 200

req GET /v3/account/summary ""
st "v3 without token 401" 401
jqt "v3 401 single object" '.error_key=="unauthorized"'
req GET /v3/account/summary "" -H "Authorization: Bearer acme-v3-token-expired-00000000000001"
st "v3 expired token 401" 401
req GET /v3/account/summary "" -H "Authorization: Bearer $T2"
st "v3 with a v2 token 401" 401
req GET /v3/account/summary "" -H "Authorization: Bearer acme-v3-token-0000000000000000000001"
jqt "v3 token decides the account" '.encoded_account_id=="a07e1acme0002"'

v3 GET "/v3/contact_lists/$L2"
st "v3 GET one list 200" 200
jqt "v3 one list shape" ".list_id==\"$L2\" and .name==\"Newsletter\" and .membership_count>=1"
v3 GET "/v3/contact_lists/2"
st "v3 list by v2 id is unknown (uuids only) 404" 404
v3 DELETE /v3/contact_lists
st "v3 wrong method 405" 405
v3 GET /v3/nothing-here
st "v3 unknown path 404" 404

# ---------------------------------------------------------------- v2
v2 GET /v2/lists
st "v2 lists 200" 200
jqt "v2 lists fixture shape" '.[0].id==1 and .[0].name=="General Interest" and .[0].status=="ACTIVE" and (.[0].contact_count|type)=="number" and (.[0].opt_in_default|type)=="boolean"'

C2='{"email_addresses":[{"email_address":"Carl@Example.com"}],"lists":[{"id":"1"}],"first_name":"Carl","last_name":"Marx","company_name":"Acme","job_title":"CTO","work_phone":"555-1213","addresses":[{"address_type":"BUSINESS","line1":"1 Main St","city":"Waltham","state_code":"MA","country_code":"us","postal_code":"02451"}],"custom_fields":[{"name":"CustomField1","value":"foo"}]}'
v2 POST /v2/contacts "$C2"
st "v2 POST contacts 201" 201
jqt "v2 contact fixture shape" '(.id|type)=="number" and .status=="ACTIVE" and .lists[0].id==1 and .email_addresses[0].email_address=="carl@example.com" and .email_addresses[0].opt_in_source=="ACTION_BY_OWNER" and .addresses[0].city=="Waltham" and .addresses[0].state_code=="MA" and .custom_fields[0].name=="CustomField1" and .custom_fields[0].value=="foo" and .work_phone=="555-1213" and (.confirmed|type)=="boolean"'
CARL=$(jq -r .id "$T/body")

v2 POST /v2/contacts "$C2"
st "v2 POST existing 409" 409

jqt "v2 409 error array" '.[0].error_key=="http.status.email_address.conflict"'

# v2's phone fields and address_type are the v3 kinds
v2 POST /v2/contacts '{"email_addresses":[{"email_address":"dora@example.com"}],"lists":[{"id":"1"}],"home_phone":"555-0101","cell_phone":"555-0102","addresses":[{"address_type":"PERSONAL","line1":"3 Pine St","city":"Salem"}]}'
st "v2 POST with home and cell phones 201" 201
jqt "v2 echoes home_phone, cell_phone, PERSONAL" '.home_phone=="555-0101" and .cell_phone=="555-0102" and .work_phone=="" and .addresses[0].address_type=="PERSONAL"'
v3 GET "/v3/contacts?email=dora@example.com&include=phone_numbers,street_addresses"
jqt "v3 sees them as kinds home and mobile, address home" '[.contacts[0].phone_numbers[]|[.phone_number,.kind]]==[["555-0101","home"],["555-0102","mobile"]] and .contacts[0].street_addresses[0].kind=="home"'

v2 POST "/v2/contacts?action_by=ACTION_BY_VISITOR" '{"email_addresses":[{"email_address":"vis@example.com"}],"lists":[{"id":"2"}]}'
st "v2 POST action_by=ACTION_BY_VISITOR 201" 201
jqt "v2 visitor opt_in_source" '.email_addresses[0].opt_in_source=="ACTION_BY_VISITOR"'
v2 POST "/v2/contacts?action_by=SOMEONE" '{"email_addresses":[{"email_address":"vis2@example.com"}],"lists":[{"id":"2"}]}'
st "v2 POST bad action_by 400" 400

v2 POST /v2/contacts '{"email_addresses":[{"email_address":"nolist@example.com"}],"lists":[]}'
st "v2 POST without lists 400" 400
v2 POST /v2/contacts '{"email_addresses":[{"email_address":"x@example.com"}],"lists":[{"id":"99"}]}'
st "v2 POST unknown list 400" 400
v2 POST /v2/contacts '{"email_addresses":[{"email_address":"bad email"}],"lists":[{"id":"1"}]}'
st "v2 POST invalid email 400" 400
jqt "v2 invalid email key" '.[0].error_key=="json.email.invalid"'
v2 POST /v2/contacts '{"email_addresses":[{"email_address":"q@example.com"}],"lists":[{"id":"1"}],"first_name":"O’Brien"}'
st "v2 POST text outside ISO-8859-1 400" 400
jqt "v2 encoding error key" '.[0].error_key=="json.payload.contains_invalid_characters"'
v2 POST /v2/contacts '{"email_addresses":[{"email_address":"latin@example.com"}],"lists":[{"id":"1"}],"first_name":"José"}'
st "v2 POST Latin-1 accents accepted" 201
v2 POST /v2/contacts 'nonsense'
st "v2 POST malformed JSON 400" 400
req POST "/v2/contacts?api_key=$K2" "" -H "Authorization: Bearer $T2" -H 'Content-Type: text/plain' --data-binary '{}'
st "v2 POST text/plain 415" 415

v2 GET "/v2/contacts?email=carl@example.com"
st "v2 GET by email 200" 200
jqt "v2 GET by email shape" ".meta.pagination|type==\"object\"" 
jqt "v2 GET by email result" ".results|length==1 and .[0].id==$CARL"
v2 GET "/v2/contacts?email=none@example.com"
jqt "v2 GET unknown email: empty results" '.results==[]'

v2 PUT "/v2/contacts/$CARL" '{"email_addresses":[{"email_address":"carl@example.com"}],"lists":[{"id":"1"},{"id":"2"}],"first_name":"Karl"}'
st "v2 PUT 200" 200
jqt "v2 PUT full replace, lists as given" '.first_name=="Karl" and .last_name=="" and ([.lists[].id]|sort)==[1,2]'
v2 PUT "/v2/contacts/999" '{"email_addresses":[{"email_address":"carl@example.com"}],"lists":[{"id":"1"}]}'
st "v2 PUT unknown id 404" 404
v2 GET "/v2/contacts/$CARL"
st "v2 GET contact by id 200" 200
jqt "v2 GET contact by id" ".id==$CARL and .first_name==\"Karl\""
v2 GET "/v2/contacts/12345"
st "v2 GET unknown contact 404" 404
jqt "v2 404 error array" '.[0].error_key=="http.status.not_found"'
v2 GET /v2/lists/2
st "v2 GET one list 200" 200
jqt "v2 one list shape" '.id==2 and .name=="Newsletter" and (.contact_count|type)=="number"'
v2 GET /v2/contacts
jqt "v2 GET contacts without email lists them" '(.results|length)>=3'
v2 DELETE "/v2/contacts/$CARL"
st "v2 DELETE (opt-out) 204" 204
v2 GET "/v2/contacts?email=carl@example.com"
jqt "v2 opted-out contact: OPTOUT, no lists" '.results[0].status=="OPTOUT" and .results[0].lists==[]'
v2 POST /v2/contacts "$C2"
st "v2 POST on an opted-out email still 409" 409
v2 DELETE /v2/contacts
st "v2 wrong method 405" 405

req GET "/v2/lists" "" -H "Authorization: Bearer $T2"
st "v2 without api_key 403" 403
jqt "v2 403 inactive key" '.[0].error_key=="mashery.not.authorized.inactive"'
req GET "/v2/lists?api_key=$K2" ""
st "v2 without token 401" 401
jqt "v2 401 invalid_token" '.[0].error_key=="http.status.authentication.invalid_token"'
# like the real v2: key of account A + token of account B is NOT an error;
# the token decides the account (the client must cross-check)
req GET "/v2/lists?api_key=$K2" "" -H "Authorization: Bearer globex-v2-token-00000000000000000001"
st "v2 key A + token B accepted" 200
jqt "v2 key A + token B serves B's lists" '.[0].name=="Everyone"'

# ---------------------------------------------------------------- state
sb_state > "$T/state"
# 7: the opted-out carl is still a contact (only deleted ones are left out)
jqf "state contact count" "$T/state" '.accounts[]|select(.user_name=="demo")|.contact_count==7'
jqf "state contact fields" "$T/state" '[.accounts[0].contacts[]|select(.email=="ann@example.com")][0]|.first_name=="Ann" and .custom_fields.favorite_color=="blue" and (.lists_v3|length)==2 and (.lists_v2|sort)==["1","2"] and .writes==2'
jqf "state by_endpoint" "$T/state" '.requests.by_endpoint["POST /v3/contacts/sign_up_form"]>=8'
jqf "state by_status" "$T/state" '.requests.by_status["201"]>=4 and .requests.by_status["409"]>=3'
jqf "state keys" "$T/state" '.keys["demo-v3-client-00000000000001"].requests>0 and .keys["demo-v2-key-0000000000000001"].busiest_1s>=1'
sb_state "contacts=0&account=acme" > "$T/state"
jqf "state filtered, no contacts" "$T/state" '(.accounts|length)==1 and .accounts[0].user_name=="acme" and (.accounts[0]|has("contacts")|not)'

S=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$SB_URL/_sandbox/reset")
sb_state > "$T/state"
jqf "reset empties contacts and counters" "$T/state" '.accounts[0].contact_count==0 and .requests.total==0 and .writes==0'

# mint tokens for any account
curl -s -X POST -d '{"api":"v3","api_key":"globex-v3-client-00000000001","account":"globex","expires_in":3600}' "$SB_URL/_sandbox/token" > "$T/tok"
jqf "token mint v3" "$T/tok" '(.access_token|split(".")|length)==3 and (.refresh_token|type)=="string" and .expires_in==3600'
req GET /v3/account/summary "" -H "Authorization: Bearer $(jq -r .access_token "$T/tok")"
jqt "minted v3 token works for its account" '.encoded_account_id=="a07e1globex03"'
curl -s -X POST -d '{"api":"v2","api_key":"acme-v2-key-00000000000000001","account":"acme"}' "$SB_URL/_sandbox/token" > "$T/tok"
req GET "/v2/lists?api_key=acme-v2-key-00000000000000001" "" -H "Authorization: Bearer $(jq -r .access_token "$T/tok")"
jqt "minted v2 token works" '.[0].name=="Customers"'
curl -s -X POST -d '{"api":"v3","api_key":"stray-client-0001","account":"acme"}' "$SB_URL/_sandbox/token" > "$T/tok"
req GET /v3/account/summary "" -H "Authorization: Bearer $(jq -r .access_token "$T/tok")"
jqf "token for a key not in the accounts file works" "$T/body" '.encoded_account_id=="a07e1acme0002"'
sb_state "contacts=0" > "$T/state"
jqf "its requests are counted under that key" "$T/state" '.keys["stray-client-0001"].requests==1'
S=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"api":"v3","account":"nobody"}' "$SB_URL/_sandbox/token")
check "token for an unknown account 404" test "$S" = 404
# clock: a token minted with expires_in 60 is dead 2 minutes later
curl -s -X POST -d '{"api":"v3","account":"demo","expires_in":60}' "$SB_URL/_sandbox/token" > "$T/tok"
NOW=$(date +%s)
curl -s -X POST -d "{\"now\":$((NOW + 120))}" "$SB_URL/_sandbox/clock" >/dev/null
req GET /v3/account/summary "" -H "Authorization: Bearer $(jq -r .access_token "$T/tok")"
st "token expired by sandbox clock 401" 401
curl -s -X POST -d '{"now":0}' "$SB_URL/_sandbox/clock" >/dev/null
req GET /v3/account/summary "" -H "Authorization: Bearer $(jq -r .access_token "$T/tok")"
st "clock back to real time" 200

finish
