#!/usr/bin/env bash
# test_bulk_rate.sh — bulk imports keep --rate as the server counts it:
# the activity POSTs and the polls go through the same limiter and arrival
# accounting as contact-by-contact requests, so the busiest 1-second window
# the sandbox saw for the key (the account check, lists, POSTs and polls
# together) never exceeds --rate.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

# The sandbox does not throttle (--rate 0): it only counts arrivals, so a
# client that sends too fast is seen in busiest_1s instead of being slowed
# down by 429 replies.
sb_start --rate 0 --daily-quota 0 --activity-ms 2500 || { not_ok "sandbox start"; finish; }

busiest() { sb_state 'contacts=0' | jq --arg k "$KEY" '.keys[$k].busiest_1s // 0'; }

# ---- one activity right after the preflight: the account check and the
# list check are still in the server's window when the POST would leave,
# so at --rate 2 the POST has to wait for them.
for api in v3; do
    use_api $api
    sb_reset
    STATE_DIR="$T/state-$api-one"
    gen 30 31
    imp --list "$LIST" --rate 2 --bulk always --poll-interval 1 "$T/in.csv"
    busy=$(busiest)
    if [ "$RC" = 0 ] && [ "$(rep_count imported)" = 30 ] && [ "$busy" -le 2 ]; then
        ok "$api --rate 2 --bulk always: 30 rows imported, busiest 1 s = $busy"
    else
        not_ok "$api --rate 2 --bulk always: busiest <= 2" "rc $RC imported $(rep_count imported) busiest $busy $(head -c 300 "$T/err")"
    fi
done

# ---- several activities polled at once: 12,000 rows make three chunks
# (5,000 rows each, and the rest when backpressure seals the third), whose
# activities run 2.5 s and are polled every second; at --rate 2 the polls
# and the POSTs share two requests a second.
use_api v3
sb_reset
STATE_DIR="$T/state-v3-many"
gen 12000 32
imp --list "$LIST" --rate 2 --bulk always --poll-interval 1 "$T/in.csv"
busy=$(busiest)
posts=$(sb_state 'contacts=0' | jq '.requests.by_endpoint["POST /v3/activities/contacts_json_import"] // 0')
if [ "$RC" = 0 ] && [ "$(rep_count imported)" = 12000 ] && [ "$posts" -ge 3 ] && [ "$busy" -le 2 ]; then
    ok "v3 --rate 2, $posts activities polled together: busiest 1 s = $busy"
else
    not_ok "v3 --rate 2, several activities: busiest <= 2" "rc $RC imported $(rep_count imported) posts $posts busiest $busy $(head -c 300 "$T/err")"
fi

finish
