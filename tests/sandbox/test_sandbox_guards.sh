#!/bin/bash
# test_sandbox_guards.sh — ctct-sandbox listens on a port, so it defends
# itself: incomplete requests time out (408, then close; trickling bytes
# does not push the deadline back), idle keep-alive connections close,
# request bodies buffered across all connections are capped (503), and so
# are open connections (503, or the longest-idle one closes).
# Timing: timeouts are set short (300 ms) and every check polls for the
# outcome with bounds of several seconds.
. "$(dirname "$0")/../integration/lib.sh"

V3=$(cat "$TOP/samples/demo-v3.token")
L1=8c2b2d3e-0001-4000-8000-000000000001

jqf() {
    if jq -e "$3" "$2" >/dev/null 2>&1; then ok "$1"; else not_ok "$1" "$(head -c 400 "$2")"; fi
}
# wait_state JQ: poll /_sandbox/state until JQ holds (10 s at most)
wait_state() {
    for _ in $(seq 100); do
        sb_state contacts=0 2>/dev/null | jq -e "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
# raw: stdin → a fresh TCP connection; the reply (until the server closes
# or 10 s pass) on stdout
raw() {
    local fd rc=0
    exec {fd}<>"/dev/tcp/127.0.0.1/$SB_PORT" || return 1
    cat >&"$fd"
    timeout 10 cat <&"$fd" || rc=$?
    exec {fd}<&-
    echo "$rc" > "$T/raw_rc"
}
# closed: the last raw connection was closed by the sandbox (not by timeout)
closed() { test "$(cat "$T/raw_rc")" != 124; }
# body: the JSON body of a raw reply
body() { sed '1,/^\r$/d' "$1"; }

sb_start --rate 0 --daily-quota 0 --header-timeout-ms 300 --body-timeout-ms 300 \
    --idle-timeout-ms 300 || exit 1

# ---- header timeout: a request line and headers that never end
printf 'GET /v3/contact_lists HTTP/1.1\r\nHost: x\r\n' | raw > "$T/r"
check "partial headers: the sandbox closes the connection" closed
check "partial headers: 408 before closing" grep -aq '^HTTP/1.1 408' "$T/r"
body "$T/r" > "$T/b"
jqf "408 has a JSON error body" "$T/b" '.[0].error_key=="http.status.request_timeout"'

# slowloris: one header byte every 100 ms for 4 s — the deadline runs from
# the first byte, so the connection closes long before the trickle ends
exec {sl}<>"/dev/tcp/127.0.0.1/$SB_PORT"
( printf 'GET /v3/contact_lists HTTP/1.1\r\n'
  for _ in $(seq 40); do printf 'X'; sleep 0.1; done ) >&"$sl" 2>/dev/null &
trickle=$!
t0=$(date +%s%N)
rc=0; timeout 10 cat <&"$sl" > "$T/r" || rc=$?
t1=$(date +%s%N)
exec {sl}<&-
wait "$trickle" 2>/dev/null
check "trickled headers: closed while the bytes still come" \
    test "$rc" != 124 -a $(( (t1 - t0) / 1000000 )) -lt 3500

# body timeout: headers complete, body never finishes
printf 'POST /v3/contacts/sign_up_form HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"' \
    | raw > "$T/r"
check "partial body: closed" closed
check "partial body: 408" grep -aq '^HTTP/1.1 408' "$T/r"

# a connection that sends nothing is closed too
exec {quiet}<>"/dev/tcp/127.0.0.1/$SB_PORT"
rc=0; timeout 10 cat <&"$quiet" > "$T/r" || rc=$?
exec {quiet}<&-
check "silent connection closed after the header timeout" test "$rc" != 124

# idle keep-alive: the reply arrives, then the connection closes
printf 'GET /v3/contact_lists HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n' "$V3" | raw > "$T/r"
check "idle keep-alive connection: served" grep -aq '^HTTP/1.1 200' "$T/r"
check "idle keep-alive connection: then closed" closed

# 50 slowloris connections: all closed, none left open
fds=()
for _ in $(seq 50); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$SB_PORT" && fds+=("$fd")
    printf 'GET /v3/contact_lists HTTP/1.1\r\nX-Slow: ' >&"$fd"
done
check "50 partial connections all timed out and closed" \
    wait_state '.server.connections<=1 and .server.timed_out>=50'
for fd in "${fds[@]}"; do exec {fd}<&-; done
sb_state contacts=0 > "$T/state"
jqf "state: idle_closed counts expired keep-alive connections" "$T/state" '.server.idle_closed>=1'
sb_stop

# ---- global cap on buffered request bodies: 503 with a JSON body
sb_start --rate 0 --daily-quota 0 --max-body-total 1000 || exit 1
exec {held}<>"/dev/tcp/127.0.0.1/$SB_PORT"
printf 'POST /v3/contacts/sign_up_form HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 800\r\n\r\n{"email' >&"$held"
check "a body in progress holds its share" wait_state '.server.body_bytes_held==800'
json="{\"email_address\":\"cap@example.com\",\"list_memberships\":[\"$L1\"]}"
pad=$(printf '%*s' $((500 - ${#json})) '')
req() {
    printf 'POST /v3/contacts/sign_up_form HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s%s' \
        "$V3" $((${#json} + ${#pad})) "$json" "$pad"
}
req | raw > "$T/r"
check "over the total body cap: 503" grep -aq '^HTTP/1.1 503' "$T/r"
check "503 says when to retry" grep -aqi '^Retry-After: 1' "$T/r"
body "$T/r" > "$T/b"
jqf "503 has a JSON error body" "$T/b" '.[0].error_key=="http.status.service_unavailable"'
printf 'POST /v3/contacts/sign_up_form HTTP/1.1\r\nContent-Length: 2000\r\n\r\n' | raw > "$T/r"
check "one body over the total cap (under 16 MiB): 503" grep -aq '^HTTP/1.1 503' "$T/r"
exec {held}<&-
check "a closed connection gives its share back" wait_state '.server.body_bytes_held==0'
req | raw > "$T/r"
check "under the cap again: served" grep -aq '^HTTP/1.1 201' "$T/r"
sb_state contacts=0 > "$T/state"
jqf "state counts refused bodies" "$T/state" '.server.body_refused==2 and .server.max_body_total==1000'
sb_stop

# ---- connection cap
sb_start --rate 0 --daily-quota 0 --max-connections 3 || exit 1
fds=()
for _ in 1 2 3; do
    exec {fd}<>"/dev/tcp/127.0.0.1/$SB_PORT" && fds+=("$fd")
    printf 'GET /v3/contact_lists HTTP/1.1\r\n' >&"$fd"
done
printf 'GET /v3/contact_lists HTTP/1.1\r\nConnection: close\r\n\r\n' | raw > "$T/r"
check "over --max-connections (none idle): 503" grep -aq '^HTTP/1.1 503' "$T/r"
for fd in "${fds[@]}"; do exec {fd}<&-; done
check "closed connections free their slots" wait_state '.server.connections<=1 and .server.refused==1'
# idle keep-alive connections make room for a new one
fds=()
for _ in 1 2 3; do
    exec {fd}<>"/dev/tcp/127.0.0.1/$SB_PORT" && fds+=("$fd")
    printf 'GET /v3/contact_lists HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n' "$V3" >&"$fd"
    IFS= read -r -t 10 line <&"$fd"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $V3" "$SB_URL/v3/contact_lists")
check "at the cap, the longest-idle connection closes to make room" test "$code" = 200
for fd in "${fds[@]}"; do exec {fd}<&-; done
sb_state contacts=0 > "$T/state"
jqf "state: idle_closed counts it" "$T/state" '.server.idle_closed>=1 and .server.max_connections==3'
sb_stop

# ---- options
for o in --header-timeout-ms --body-timeout-ms --idle-timeout-ms --max-connections --max-body-total; do
    rc=0; "$SANDBOX" "$o" nope >/dev/null 2>&1 || rc=$?
    check "bad $o exits 64" test "$rc" = 64
    check "--help documents $o" sh -c '"$0" --help | grep -q -- "$1"' "$SANDBOX" "$o"
done

finish
