#!/bin/bash
# test_deferred.sh — "try later" is not "a human must look": rows whose
# transient errors (503) outlast --retries end `deferred` (exit 75) with
# the error that stopped them, and the next run with the same --state
# settles them, each contact stored once.  The same for a bulk activity
# whose POST keeps failing, and for the listing of unsubscribed contacts
# that must precede any write.  (A 400 about the row itself still ends
# `failed`, exit 1: test_import_faults.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }

# faults KIND N MATCH: queue N faults of one kind for a route.
faults() {
    local list
    list=$(yes "\"$1\"" | head -n "$2" | paste -sd, -)
    sb_faults "{\"faults\":[$list],\"match\":\"$3\"}"
}
clear_faults() { curl -fsS -X DELETE "$SB_URL/_sandbox/faults" >/dev/null; }
stored() { sb_emails | grep -c . || true; }

for api in $APIS; do
    use_api $api
    v=${api#v}

    # ---- every write answers 503, --retries 1: 2 attempts per row, then
    # deferred with the reason; nothing stored.
    sb_reset
    STATE_DIR="$T/state-$api-503"
    gen 5 31
    faults 503 10 "POST /v$v/contacts"
    imp --list "$LIST" --rate 0 --concurrency 5 --retries 1 "$T/in.csv"
    line1=$(rep_body | awk -F, '$2 == 1')
    if [ "$RC" = 75 ] && [ "$(rep_count deferred)" = 5 ] &&
        [ "$(rep_count failed)" = 0 ] && [ "$(sum deferred)" = 5 ] &&
        [ "$(sum failed)" = 0 ] && [ "$(sum exit_code)" = 75 ] &&
        echo "$line1" | grep -q ',deferred,503,2,,http.status.service_unavailable,gave up after 2 attempts: ' &&
        [ "$(stored)" = 0 ]; then
        ok "$api 503 on every write: 5 rows deferred with the reason, exit 75"
    else
        not_ok "$api 503 on every write: 5 rows deferred, exit 75" "rc $RC row 1: $line1"
        explain
    fi

    # ---- the faults are gone: the same command settles every row, each
    # contact once.
    clear_faults
    imp --list "$LIST" --rate 0 --concurrency 5 --retries 1 "$T/in.csv"
    if [ "$RC" = 0 ] && [ "$(rep_count created)" = 5 ] &&
        [ "$(sum deferred)" = 0 ] && [ "$(stored)" = 5 ] &&
        [ "$(sb_json '.accounts[] | select(.encoded_account_id == "a07e1demo0001") | .contact_count')" = 5 ]; then
        ok "$api re-run with the same state: 5 created, 5 contacts, exit 0"
    else
        not_ok "$api re-run with the same state: 5 created, exit 0" "rc $RC created $(rep_count created) stored $(stored)"
        explain
    fi

    # ---- one row's 503 outlasts its retries (--retries 0), the others
    # land: only that row is deferred, the run goes on (exit 75, not 1).
    # Concurrency 1: the first write is row 1's.
    sb_reset
    STATE_DIR="$T/state-$api-one"
    gen 4 32
    faults 503 1 "POST /v$v/contacts"
    imp --list "$LIST" --rate 0 --concurrency 1 --retries 0 "$T/in.csv"
    if [ "$RC" = 75 ] && [ "$(rep_status 1)" = deferred ] &&
        rep_body | grep -q ',deferred,503,1,.*,gave up after 1 attempt: ' &&
        [ "$(rep_count created)" = 3 ] && [ "$(stored)" = 3 ]; then
        ok "$api one row's retries used up: it is deferred, the rest created"
    else
        not_ok "$api one row's retries used up: it is deferred" "rc $RC row 1 $(rep_status 1)"
        explain
    fi

    # ---- bulk: the activity POST keeps failing 5xx → its rows deferred
    # (exit 75); the next run imports them.
    sb_reset
    STATE_DIR="$T/state-$api-bulk"
    gen 6 33
    if [ $api = v3 ]; then bep="POST /v3/activities/contacts_json_import"
    else bep="POST /v2/activities/addcontacts"; fi
    faults 503 2 "$bep"
    imp --list "$LIST" --rate 0 --retries 1 --bulk always --poll-interval 1 "$T/in.csv"
    line1=$(rep_body | awk -F, '$2 == 1')
    if [ "$RC" = 75 ] && [ "$(rep_count deferred)" = 6 ] &&
        [ "$(sum failed)" = 0 ] && [ "$(stored)" = 0 ] &&
        echo "$line1" | grep -q 'gave up after 2 attempts'; then
        ok "$api bulk POST 503 past its retries: 6 rows deferred, exit 75"
    else
        not_ok "$api bulk POST 503 past its retries: rows deferred, exit 75" "rc $RC row 1: $line1"
        explain
    fi
    imp --list "$LIST" --rate 0 --retries 1 --bulk always --poll-interval 1 "$T/in.csv"
    if [ "$RC" = 0 ] && [ "$(rep_count imported)" = 6 ] && [ "$(stored)" = 6 ]; then
        ok "$api bulk re-run: 6 imported, exit 0"
    else
        not_ok "$api bulk re-run: 6 imported, exit 0" "rc $RC imported $(rep_count imported)"
        explain
    fi

    # ---- the listing of unsubscribed contacts answers 503 past its
    # retries and no earlier run saved one: nothing is written, every row
    # deferred, exit 75 (the API answered: try later, not "unreachable").
    sb_reset
    STATE_DIR="$T/state-$api-list"
    gen 3 34
    w0=$(sb_contact_writes_attempted)
    faults 503 2 "GET /v$v/contacts"
    imp --list "$LIST" --rate 0 --retries 1 "$T/in.csv"
    if [ "$RC" = 75 ] && [ "$(rep_count deferred)" = 3 ] &&
        [ "$(sb_contact_writes_attempted)" = "$w0" ] &&
        grep -q 'unsubscribed contacts (gave up after 2 attempts' "$T/err"; then
        ok "$api listing 503 past its retries: nothing sent, rows deferred, exit 75"
    else
        not_ok "$api listing 503 past its retries: exit 75" "rc $RC deferred $(rep_count deferred)"
        explain
    fi
    clear_faults

    # ---- a key that answers nothing but throttling (every write 429 /
    # 403 over.qps): throttled requests use up no retries; after the stall
    # time (10 minutes; CTCT_SYNC_STALL_SECONDS=3 here) without a single
    # reply that is not throttling, every row still waiting is deferred,
    # exit 75.  Throttling gone, the same command settles them all once.
    sb_reset
    STATE_DIR="$T/state-$api-stall"
    gen 4 35
    faults 429 400 "POST /v$v/contacts" # v2: 403 ...over.qps
    CTCT_SYNC_STALL_SECONDS=3 imp --list "$LIST" --rate 0 --retries 1 "$T/in.csv"
    if [ "$RC" = 75 ] && [ "$(rep_count deferred)" = 4 ] && [ "$(rep_count failed)" = 0 ] &&
        [ "$(sum throttled)" -ge 4 ] && [ "$(sum retries)" = 0 ] && [ "$(stored)" = 0 ] &&
        rep_body | grep -q 'without progress'; then
        ok "$api throttled without progress: rows deferred, exit 75, retries not used up"
    else
        not_ok "$api throttled without progress: rows deferred, exit 75" "rc $RC deferred $(rep_count deferred) throttled $(sum throttled)"
        explain
    fi
    clear_faults
    imp --list "$LIST" --rate 0 --retries 1 "$T/in.csv"
    if [ "$RC" = 0 ] && [ "$(rep_count created)" = 4 ] && [ "$(stored)" = 4 ]; then
        ok "$api after the throttling: the same command stores each row once, exit 0"
    else
        not_ok "$api after the throttling: 4 created, exit 0" "rc $RC created $(rep_count created) stored $(stored)"
        explain
    fi
done

finish
