#!/bin/bash
# test_import_faults.sh — retries and failures, API v3 and v2, with faults
# the sandbox plays on request (deterministic) or at random (seeded):
# 503/500 then success, throttling then success, a timeout, a connection
# dropped before and after the write landed (never a failed row, never a
# second contact), a permanent 400 (the row fails, the run goes on), and
# 20% mixed faults with latency: every valid row stored exactly once and
# the report equal to the sandbox.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 --slow-ms 4000 ||
    { not_ok "sandbox start"; finish; }

for api in $APIS; do
    use_api $api
    if [ $api = v3 ]; then ep="POST /v3/contacts"; else ep="POST /v2/contacts"; fi

    # One scripted fault on the first write, then success.  Concurrency 1
    # so that "the first write" is row 1's.
    for f in 503 500 429 drop_before; do
        sb_reset
        STATE_DIR="$T/state-$api-$f"
        gen 3 11
        sb_faults "{\"faults\":[\"$f\"],\"match\":\"$ep\"}"
        imp --list "$LIST" --rate 0 --concurrency 1 "$T/in.csv"
        a1=$(rep_body | awk -F, '$2 == 1 { print $6 }')
        # drop_before hits the connection the listing of unsubscribed
        # contacts left open: libcurl itself resends a request whose
        # reused connection died before any byte came back (attempt 1).
        again='[ "$a1" = 2 ] && [ "$(sum retries)" -ge 1 ]'
        # Throttling is "not processed": sent again, not a retry.
        [ $f = 429 ] &&
            again='[ "$a1" = 2 ] && [ "$(sum throttled)" = 1 ] && [ "$(sum retries)" = 0 ]'
        [ $f = drop_before ] &&
            again='[ "$(sb_json .faults.drop_before)" = 1 ]'
        if [ "$RC" = 0 ] && [ "$(rep_status 1)" = created ] && eval "$again" &&
            [ "$(sb_emails | wc -l)" = 3 ]; then
            ok "$api $f then success: row 1 created on attempt 2"
        else
            not_ok "$api $f then success: row 1 created on attempt 2" "status $(rep_status 1), attempts $a1"
            explain
        fi
    done

    # The write lands, the connection drops before the reply: the retry
    # must neither fail the row nor create a second contact (v2: the
    # repeated POST meets 409 for our own contact → GET → PUT).
    sb_reset
    STATE_DIR="$T/state-$api-da"
    gen 3 12
    sb_faults "{\"faults\":[\"drop_after\"],\"match\":\"$ep\"}"
    imp --list "$LIST" --rate 0 --concurrency 1 "$T/in.csv"
    # (libcurl may resend the POST by itself on a new connection: then the
    # 409 carries no sign of our lost reply, and the contact, which holds
    # the row already, is rightly `unchanged`.)
    s1=$(rep_status 1)
    if [ "$RC" = 0 ] && case $s1 in created | updated | unchanged) true ;; *) false ;; esac &&
        [ "$(sb_emails)" = "$(rep_emails created updated unchanged)" ] &&
        [ "$(sb_emails | wc -l)" = 3 ]; then
        ok "$api drop_after: row settled once, no duplicate contact ($s1)"
    else
        not_ok "$api drop_after: row settled once, no duplicate contact" "row 1 $s1"
        explain
    fi

    # A reply slower than --timeout: the request times out and is retried;
    # the slow one may have been stored meanwhile — still one contact.
    sb_reset
    STATE_DIR="$T/state-$api-slow"
    gen 2 13
    sb_faults "{\"faults\":[\"slow\"],\"match\":\"$ep\"}"
    imp --list "$LIST" --rate 0 --concurrency 1 --timeout 1 "$T/in.csv"
    s1=$(rep_status 1)
    a1=$(rep_body | awk -F, '$2 == 1 { print $6 }')
    if [ "$RC" = 0 ] && [ "${a1:-0}" -ge 2 ] &&
        { [ "$s1" = created ] || [ "$s1" = updated ]; } &&
        [ "$(sb_emails | wc -l)" = 2 ]; then
        ok "$api timeout: retried, settled, one contact"
    else
        not_ok "$api timeout: retried, settled, one contact" "row 1 $s1 attempts $a1"
        explain
    fi

    # A permanent 400 (the sandbox refuses a quoted local part the client
    # accepts): that row fails with the API's error_key, the others go on.
    sb_reset
    STATE_DIR="$T/state-$api-400"
    printf 'Email,First Name\nok1@example.com,A\n"""x(y)""@example.com",B\nok2@example.com,C\n' >"$T/in.csv"
    imp --list "$LIST" --rate 0 "$T/in.csv"
    line2=$(rep_body | awk -F, '$2 == 2')
    if [ "$RC" = 1 ] && [ "$(rep_status 2)" = failed ] &&
        echo "$line2" | grep -q ',400,1,,[a-z]' &&
        [ "$(rep_count created)" = 2 ] && [ "$(sum failed)" = 1 ]; then
        ok "$api permanent 400: row failed with error_key, run went on, exit 1"
    else
        not_ok "$api permanent 400: row failed with error_key, run went on, exit 1"
        explain
    fi
done

# 20% random faults of every kind, with latency: every valid row stored
# exactly once, the report equal to the sandbox, nothing failed.  A create
# that landed and that libcurl itself resent on a new connection meets 409
# with no sign of the loss: the contact then is found holding the row
# exactly (`unchanged`), which is what the account holds.
sb_stop
sb_start --rate 0 --daily-quota 0 --fault-rate 0.2 --fault-seed 7 \
    --latency-ms 10 --slow-ms 1500 || { not_ok "sandbox start"; finish; }
for api in $APIS; do
    use_api $api
    STATE_DIR="$T/state-$api-chaos"
    gen 60 14 --invalid-every 13 --dup-every 17
    imp --list "$LIST" --rate 0 --concurrency 8 --timeout 1 --retries 10 "$T/in.csv"
    if [ "$RC" = 0 ] && [ "$(rep_rows)" = 60 ] && rep_in_order &&
        [ "$(rep_count failed)" = 0 ] && [ "$(rep_count invalid)" = 4 ] &&
        [ "$(rep_count duplicate)" = 3 ] &&
        [ "$(rep_count created)" -ge 1 ] &&
        [ "$(rep_emails created updated unchanged)" = "$(sb_emails)" ] &&
        [ "$(sb_emails | wc -l)" = 53 ] && [ "$(sum retries)" -ge 1 ]; then
        ok "$api 20% faults: 53 rows stored exactly once, report = sandbox ($(sum retries) retries)"
    else
        not_ok "$api 20% faults: 53 rows stored exactly once, report = sandbox"
        explain
    fi
    sb_reset
done

finish
