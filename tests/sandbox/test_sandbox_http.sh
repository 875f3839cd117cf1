#!/bin/bash
# test_sandbox_http.sh — ctct-sandbox as an HTTP/1.1 server: keep-alive
# reuse, pipelining, bare-LF requests, Expect: 100-continue, caps (413/431),
# malformed input (400 then close, never a crash), the command line (ready
# line, exit 64, --print-demo-token, SIGTERM with --state-dump).
. "$(dirname "$0")/../integration/lib.sh"

V3=$(cat "$TOP/samples/demo-v3.token")
L1=8c2b2d3e-0001-4000-8000-000000000001

# raw: stdin → a fresh TCP connection to the sandbox; the reply on stdout
raw() {
    exec 5<>"/dev/tcp/127.0.0.1/$SB_PORT" || return 1
    cat >&5
    timeout 5 cat <&5
    exec 5<&-
}
q() { "$@" >/dev/null 2>&1; }
alive() {
    curl -fsS -o /dev/null "$SB_URL/_sandbox/state?contacts=0"
}

sb_start --rate 0 --daily-quota 0 || exit 1

# keep-alive: two URLs on one curl → one connection
curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' -H "Authorization: Bearer $V3" \
    "$SB_URL/v3/account/summary" "$SB_URL/v3/contact_lists" > "$T/nc"
check "keep-alive: second request reuses the connection" test "$(tr '\n' ' ' < "$T/nc")" = "1 0 "

# pipelining: three requests in one write, answered in order
printf 'GET /v3/account/summary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\nGET /v3/nope HTTP/1.1\r\nHost: x\r\n\r\nGET /v3/contact_lists HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$V3" "$V3" \
    | raw > "$T/pipe"
codes=$(grep -ao 'HTTP/1.1 [0-9]*' "$T/pipe" | cut -d' ' -f2 | tr '\n' ' ')
check "pipelined requests answered in order" test "$codes" = "200 404 200 "
check "Connection: close honoured" grep -aq '^Connection: close' "$T/pipe"

# HTTP/1.0 without keep-alive closes after the reply
printf 'GET /v3/nope HTTP/1.0\r\n\r\n' | raw > "$T/r"
check "HTTP/1.0 request answered" grep -aq '^HTTP/1.1 404' "$T/r"

# request split in small pieces over time
{
    printf 'GET /v3/account/sum'
    sleep 0.2
    printf 'mary HTTP/1.1\r\nAuthoriz'
    sleep 0.2
    printf 'ation: Bearer %s\r\nConnection: close\r\n\r\n' "$V3"
} | raw > "$T/r"
check "request arriving in pieces" grep -aq '"encoded_account_id":"a07e1demo0001"' "$T/r"

# bare LF line endings: accepted (RFC 9112 §2.2), never left hanging
printf 'GET /v3/account/summary HTTP/1.1\nHost: x\nAuthorization: Bearer %s\nConnection: close\n\n' "$V3" \
    | raw > "$T/r"
check "bare-LF request answered" grep -aq '"encoded_account_id":"a07e1demo0001"' "$T/r"
printf 'GET /v3/nope HTTP/1.1\r\nHost: x\n\r\nGET /v3/nope HTTP/1.1\nConnection: close\r\n\n' | raw > "$T/r"
check "mixed CRLF/LF pipelined requests both answered" test "$(grep -ao 'HTTP/1.1 404' "$T/r" | wc -l)" = 2
printf 'GET /x HTTP/1.1\nA: b\rc\n\n' | raw > "$T/r"
check "bare CR inside a header → 400" grep -aq '^HTTP/1.1 400' "$T/r"

# Expect: 100-continue
body="{\"email_address\":\"exp@example.com\",\"first_name\":\"$(printf 'x%.0s' $(seq 40))\",\"list_memberships\":[\"$L1\"]}"
curl -sv -o "$T/body" -H "Authorization: Bearer $V3" -H 'Content-Type: application/json' \
    -H 'Expect: 100-continue' --data-binary "$body" "$SB_URL/v3/contacts/sign_up_form" 2> "$T/v"
check "Expect: 100-continue gets an interim 100" grep -q '< HTTP/1.1 100 Continue' "$T/v"
check "Expect: 100-continue request served" grep -q '"action":"created"' "$T/body"

# caps and malformed requests: an error, then the connection closes
printf 'POST /v3/contacts HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n' | raw > "$T/r"
check "body over 16 MiB → 413" grep -aq '^HTTP/1.1 413' "$T/r"
{ printf 'GET /v3/contact_lists HTTP/1.1\r\nX-Big: '; head -c 17000 /dev/zero | tr '\0' a; printf '\r\n\r\n'; } | raw > "$T/r"
check "headers over 16 KiB → 431" grep -aq '^HTTP/1.1 431' "$T/r"
printf 'POST /v3/contacts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | raw > "$T/r"
check "chunked body → 411" grep -aq '^HTTP/1.1 411' "$T/r"
printf 'GET / HTTP/2.0\r\n\r\n' | raw > "$T/r"
check "unknown HTTP version → 505" grep -aq '^HTTP/1.1 505' "$T/r"
printf 'GARBAGE\r\n\r\n' | raw > "$T/r"
check "garbage request line → 400" grep -aq '^HTTP/1.1 400' "$T/r"
printf 'GET /x HTTP/1.1\r\nno colon here\r\n\r\n' | raw > "$T/r"
check "malformed header → 400" grep -aq '^HTTP/1.1 400' "$T/r"
printf 'GET /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' | raw > "$T/r"
check "conflicting Content-Length → 400" grep -aq '^HTTP/1.1 400' "$T/r"
printf 'GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n' | raw > "$T/r"
check "negative Content-Length → 400" grep -aq '^HTTP/1.1 400' "$T/r"
head -c 30000 /dev/urandom | raw > /dev/null
printf '\x00\x01\x02\xff\xfe\r\n\r\n' | raw > "$T/r"
check "binary junk → 400" grep -aq '^HTTP/1.1 400' "$T/r"
# a client that connects and leaves mid-request / mid-body
printf 'POST /v3/contacts/sign_up_form HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"a"' | raw > /dev/null
printf 'GET /v3/contact_li' | raw > /dev/null
check "sandbox alive after malformed input" alive

# many concurrent clients
cpids=""
for i in $(seq 20); do
    curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $V3" \
        -H 'Content-Type: application/json' \
        --data-binary "{\"email_address\":\"c$i@example.com\",\"list_memberships\":[\"$L1\"]}" \
        "$SB_URL/v3/contacts/sign_up_form" >> "$T/conc" &
    cpids="$cpids $!"
done
wait $cpids
check "20 concurrent clients all created" test "$(grep -c '^201$' "$T/conc")" = 20
sb_state "contacts=0" > "$T/state"
check "state counts them" q jq -e '.accounts[0].contact_count==21' "$T/state"

# SIGTERM: state dump, exit 0
kill -TERM "$SB_PID"
rc=0
wait "$SB_PID" || rc=$?
check "SIGTERM: exit 0" test "$rc" = 0

sb_start --rate 0 --daily-quota 0 --state-dump "$T/dump.json" || exit 1
curl -s -o /dev/null -H "Authorization: Bearer $V3" -H 'Content-Type: application/json' \
    --data-binary "{\"email_address\":\"dump@example.com\",\"list_memberships\":[\"$L1\"]}" \
    "$SB_URL/v3/contacts/sign_up_form"
kill -INT "$SB_PID"
rc=0
wait "$SB_PID" || rc=$?
check "SIGINT: exit 0" test "$rc" = 0
check "--state-dump written on exit" q jq -e '.accounts[0].contacts[0].email=="dump@example.com"' "$T/dump.json"

# command line
rc=0; "$SANDBOX" --port nope >/dev/null 2>"$T/e" || rc=$?
check "bad --port exits 64" test "$rc" = 64
check "bad option: one line on stderr" test "$(wc -l < "$T/e")" = 1
rc=0; "$SANDBOX" --frobnicate >/dev/null 2>&1 || rc=$?
check "unknown option exits 64" test "$rc" = 64
rc=0; "$SANDBOX" --fault-rate 2 >/dev/null 2>&1 || rc=$?
check "fault-rate out of range exits 64" test "$rc" = 64
echo '{"accounts":[{"user_name":"x"}]}' > "$T/bad.json"
rc=0; "$SANDBOX" --port 0 --accounts "$T/bad.json" >/dev/null 2>&1 || rc=$?
check "bad accounts file exits 78" test "$rc" = 78
check "--help" q "$SANDBOX" --help
check "--print-demo-token matches samples/demo-v3.token" test "$("$SANDBOX" --print-demo-token)" = "$V3"
check "--print-demo-token is deterministic" test "$("$SANDBOX" --print-demo-token)" = "$("$SANDBOX" --print-demo-token)"
check "the demo token is a JWT with cid" test "$(echo "$V3" | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null | jq -r .cid)" = "demo-v3-client-00000000000001"

finish
