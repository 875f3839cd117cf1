#!/bin/bash
# test_pace.sh — sending under the real limits: full speed at real latency,
# and a shared key costs speed, never rows.  The sandbox allows 4 requests
# per second per key, counted as they arrive in a sliding 1-second window
# (refused ones too, as gateways do).
#  - 400 ms round trips, --rate 4: the run sends at >= 0.85 x 4 requests/s
#    while sending (the old worst-case arrival gate reached 0.71), with
#    zero throttling replies;
#  - another client spending 2 of the 4 requests/s (--foreign-load 2):
#    every row stored, exit 0, throttling replies a small fraction, and
#    with --retries 0 (throttled requests do not use up retries);
#  - --rate 0 against that limit: the throttling replies install a cap;
#    every row stored, exit 0.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

use_api v3
# The sandbox's --verbose lines, each stamped with the time it was written
# (bench/sending_rate.awk reads them).
REAL_SANDBOX=$SANDBOX
SANDBOX="$T/sandbox-stamped"
cat >"$SANDBOX" <<EOF
#!/bin/bash
exec "$REAL_SANDBOX" --verbose "\$@" 2> >(perl -MTime::HiRes=time \\
    -ne '\$|=1; printf "%.3f %s", time, \$_' >>"$T/stamped.log")
EOF
chmod +x "$SANDBOX"
sending_rate() { sleep 0.2; awk -f "$TOP/bench/sending_rate.awk" "$T/stamped.log"; }

# ---- 400 ms round trips: even pacing close to the rate, no throttling.
: >"$T/stamped.log"
sb_start --rate 4 --daily-quota 0 --latency-ms 400 || { not_ok "sandbox start"; finish; }
STATE_DIR="$T/state-lat"
gen 40 41
imp --list "$LIST" --rate 4 --concurrency 8 --bulk never "$T/in.csv"
sb_stop
rate=$(sending_rate)
thr=$(sum throttled)
if [ "$RC" = 0 ] && [ "$(rep_count created)" = 40 ] && [ "$thr" = 0 ] &&
    awk -v r="$rate" 'BEGIN { exit !(r >= 0.85 * 4) }'; then
    ok "400 ms round trips, --rate 4: $rate requests/s while sending, 0 throttled"
else
    not_ok "400 ms round trips: >= 3.4 requests/s, 0 throttled" "rc $RC rate $rate throttled $thr"
    explain
fi

# ---- a shared key: another client spends half the budget.
sb_start --rate 4 --daily-quota 0 --foreign-load 2 || { not_ok "sandbox start"; finish; }
STATE_DIR="$T/state-shared"
gen 30 42
imp --list "$LIST" --rate 4 --concurrency 4 --retries 0 --bulk never "$T/in.csv"
thr=$(sum throttled)
if [ "$RC" = 0 ] && [ "$(rep_count created)" = 30 ] &&
    [ "$(sb_emails)" = "$(rep_emails created)" ] && [ "$thr" -le 8 ]; then
    ok "shared key (--foreign-load 2): 30 rows stored, exit 0, $thr throttled"
else
    not_ok "shared key: every row stored, exit 0, few throttled" "rc $RC created $(rep_count created) throttled $thr"
    explain
fi
sb_stop

# ---- --rate 0 against a limited server: throttling replies slow it down.
sb_start --rate 4 --daily-quota 0 || { not_ok "sandbox start"; finish; }
STATE_DIR="$T/state-rate0"
gen 40 43
imp --list "$LIST" --rate 0 --concurrency 4 --retries 0 --bulk never "$T/in.csv"
thr=$(sum throttled)
if [ "$RC" = 0 ] && [ "$(rep_count created)" = 40 ] &&
    [ "$(sb_emails)" = "$(rep_emails created)" ] && [ "$thr" -ge 1 ] &&
    [ "$(sum retries)" = 0 ]; then
    ok "--rate 0 against a 4/s limit: 40 rows stored, exit 0 ($thr throttled replies)"
else
    not_ok "--rate 0 against a limit: every row stored, exit 0" "rc $RC created $(rep_count created) throttled $thr"
    explain
fi
sb_stop

finish
