#!/bin/bash
# test_mirror.sh — import --mirror, API v3 and v2: a list with members in
# and out of the input ends equal to the input (a removed member keeps its
# other list, nobody is deleted or unsubscribed; invalid, duplicate and
# opted-out rows count as in the input); the guard refuses (exit 65,
# nothing changed) above --max-removals and for an empty input, and lets
# the same removals through when the cap is raised; --dry-run reports the
# plan and sends no removal; a run with a failed row removes nobody;
# kill -9 or SIGINT during a removal, then the same command: the activity
# is polled, never posted again, and the removals are reported; a removal
# the API refuses is reported `failed` (exit 1).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

ACT_MS=2500 # a removal activity completes this long after its POST
sb_start --rate 0 --daily-quota 0 --activity-ms $ACT_MS ||
    { not_ok "sandbox start"; finish; }

NK=40 # members that stay: k1..k40
# List members: k1..k40, gone1 (LIST only), gone2 (LIST and LIST2),
# inv (an invalid row's valid email); opt is unsubscribed (an opted-out row);
# other is on LIST2 only.  (An unsubscribed contact is on no list: opt
# only shows that an opted-out row does not disturb the mirror.)
seed() {
    jq -n --argjson n $NK --arg l "$LIST" --arg l2 "$LIST2" '{account: "demo",
        contacts: ([range(1; $n + 1) | {email: "k\(.)@example.com",
                    lists: [$l]}] +
                   [{email: "gone1@example.com", lists: [$l]},
                    {email: "gone2@example.com", lists: [$l, $l2]},
                    {email: "inv@example.com", lists: [$l]},
                    {email: "opt@example.com", permission: "unsubscribed"},
                    {email: "other@example.com", lists: [$l2]}])}' \
        >"$T/seed.json"
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d @"$T/seed.json" "$SB_URL/_sandbox/contacts" >/dev/null
}
# The input: k FROM..NK, then inv (invalid birthday month), opt, a
# duplicate of k40 in capitals, and a new contact.
csv() {
    {
        echo "email,birthday_month"
        for i in $(seq "$1" $NK); do echo "k$i@example.com,"; done
        echo "inv@example.com,13"
        echo "opt@example.com,"
        echo "K$NK@Example.com,"
        echo "new@example.com,"
    } >"$T/in.csv"
}
members() { # emails on list $1, sorted
    sb_state | jq -r --arg l "$1" '.accounts[]
        | select(.encoded_account_id == "a07e1demo0001") | .contacts[]
        | select(.deleted | not)
        | select((.lists_v3 + .lists_v2) | index($l)) | .email' | sort
}
removals_posted() {
    sb_state contacts=0 | jq '[.requests.by_endpoint | to_entries[]
        | select(.key | test("remove_list_memberships|removefromlists"))
        | .value] | add // 0'
}
polls() {
    sb_state contacts=0 | jq '[.requests.by_endpoint | to_entries[]
        | select(.key | test("activities/\\{id\\}")) | .value] | add // 0'
}
removed_lines() { # "email message" of the report's removal lines
    rep_body | awk -F, '$1 == "" && $2 == "" { print $3, $4, $9 }' | sort
}
mimp() { imp --list "$LIST" --mirror --poll-interval 1 --rate 0 "$@"; }

for api in $APIS; do
    use_api $api
    sb_reset
    rm -rf "$STATE_DIR"
    seed
    before_other=$(members "$LIST2")
    csv 1

    # ---- dry run: the plan, nothing sent ----
    mimp --dry-run "$T/in.csv"
    if [ $RC -eq 0 ] && [ "$(removals_posted)" -eq 0 ] &&
        [ "$(removed_lines | awk '$2 == "dry-run"' | wc -l)" -eq 2 ] &&
        removed_lines | grep -q "^gone1@example.com dry-run would remove from list $LIST\$" &&
        grep -q "mirror plan: list $LIST: 43 members, 2 not in the input" "$T/err" &&
        [ "$(members "$LIST" | wc -l)" -eq 43 ]; then
        ok "$api: --dry-run --mirror reports the plan, removes nobody"
    else
        not_ok "$api: --dry-run --mirror"; explain
    fi

    # ---- a run with a failed row removes nobody ----
    if [ $api = v3 ]; then m="POST /v3/contacts"; else m="POST /v2/contacts"; fi
    sb_faults "{\"faults\":[\"400_echo\"],\"match\":\"$m\"}"
    mimp "$T/in.csv"
    if [ $RC -eq 1 ] && [ "$(rep_count failed)" -eq 1 ] &&
        [ "$(removals_posted)" -eq 0 ] && [ -z "$(removed_lines)" ] &&
        grep -q -- "--mirror: no member was removed" "$T/err" &&
        [ "$(members "$LIST" | grep -c gone)" -eq 2 ]; then
        ok "$api: a failed row: nothing removed, exit 1"
    else
        not_ok "$api: a failed row"; explain
    fi
    rm -rf "$STATE_DIR" # or the next run reports that row failed again

    # ---- the mirror: the list ends equal to the input ----
    mimp "$T/in.csv"
    want=$( (seq 1 $NK | sed 's/^/k/; s/$/@example.com/'
        printf '%s\n' inv@example.com new@example.com) | sort)
    got=$(members "$LIST")
    perm=$(sb_state | jq -r '.accounts[] | .contacts[]
        | select(.email | test("^gone")) | "\(.permission) \(.deleted)"' | sort -u)
    if [ $RC -eq 0 ] && [ "$got" = "$want" ] &&
        [ "$(members "$LIST2")" = "$before_other" ] &&
        [ "$perm" = "implicit false" ] &&
        [ "$(removed_lines)" = "$(printf '%s\n' \
            "gone1@example.com removed removed from list $LIST" \
            "gone2@example.com removed removed from list $LIST")" ] &&
        [ "$(sum removed)" -eq 2 ] && [ "$(sum input_rows)" -eq $((NK + 4)) ] &&
        [ "$(rep_status $((NK + 1)))" = invalid ] &&
        [ "$(rep_status $((NK + 2)))" = opted-out ] &&
        [ "$(removals_posted)" -eq 1 ]; then
        ok "$api: --mirror: the list equals the input, the other list untouched"
    else
        not_ok "$api: --mirror"; explain
        echo "# got: $(echo $got | head -c 300)" >&2
    fi

    # ---- the guard ----
    csv 11 # k1..k10 left the source: 10 of 42 members, more than 10%
    posted=$(removals_posted)
    mimp "$T/in.csv"
    if [ $RC -eq 65 ] && [ "$(removals_posted)" -eq "$posted" ] &&
        [ "$(members "$LIST")" = "$want" ] && [ -z "$(removed_lines)" ] &&
        grep -q "list $LIST would lose 10 of its 42 members (23.8%), more than --max-removals 10% allows (4)" "$T/err" &&
        grep -q -- "--max-removals 10 (or 24%)" "$T/err" &&
        [ "$(sum exit_code)" -eq 65 ]; then
        ok "$api: guard: 10 of 42 refused (exit 65, nothing changed)"
    else
        not_ok "$api: guard"; explain
    fi
    echo email >"$T/empty.csv"
    mimp --max-removals 100% "$T/empty.csv"
    if [ $RC -eq 65 ] && [ "$(removals_posted)" -eq "$posted" ] &&
        [ "$(members "$LIST")" = "$want" ] &&
        grep -q "would lose all of its 42 members" "$T/err"; then
        ok "$api: guard: an empty input never empties a list"
    else
        not_ok "$api: guard, empty input"; explain
    fi

    # ---- kill -9 during a removal, then the same command ----
    # Killed at the removal's first poll: its activity is journalled and
    # still running (ACT_MS).  The next run polls it and posts nothing.
    kill_at_poll() { # [SIGNAL]: sets KRC, the run's exit code
        local p0 i
        p0=$(polls)
        CTCT_ACCESS_TOKEN=$TOKEN "$CTS" import --api "$API" --api-key "$KEY" \
            $(api_urls) --state "$STATE_DIR" --report "$T/r.csv" \
            --list "$LIST" --mirror --max-removals 10 --poll-interval 1 \
            --rate 0 "$T/in.csv" >/dev/null 2>"$T/err" &
        pid=$!
        for i in $(seq 1 200); do
            [ "$(polls)" -gt "$p0" ] && break
            kill -0 $pid 2>/dev/null || break
        done
        kill -"${1:-9}" $pid 2>/dev/null
        KRC=0
        wait $pid 2>/dev/null || KRC=$?
    }
    csv 11
    posted=$(removals_posted)
    kill_at_poll
    mimp --max-removals 10 "$T/in.csv"
    want10=$(echo "$want" | grep -v -E '^k([1-9]|10)@')
    if [ $RC -eq 0 ] && [ "$(removals_posted)" -eq $((posted + 1)) ] &&
        [ "$(members "$LIST")" = "$want10" ] &&
        [ "$(removed_lines | grep -c "removed from list $LIST (the removal an interrupted run started)")" -eq 10 ]; then
        ok "$api: kill -9 during a removal: resumed by polling it, not posted again"
    else
        not_ok "$api: kill -9 then resume (running activity)"; explain
    fi
    # The same, resumed after the activity completed: reported as done.
    csv 21
    posted=$(removals_posted)
    kill_at_poll
    sleep $((ACT_MS / 1000 + 1))
    mimp --max-removals 10 "$T/in.csv"
    want20=$(echo "$want" | grep -v -E '^k([1-9]|1[0-9]|20)@')
    if [ $RC -eq 0 ] && [ "$(removals_posted)" -eq $((posted + 1)) ] &&
        [ "$(members "$LIST")" = "$want20" ] &&
        [ "$(removed_lines | grep -c "removed from list $LIST by an interrupted run")" -eq 10 ] &&
        [ "$(sum removed)" -eq 10 ]; then
        ok "$api: kill -9, activity done meanwhile: reported, nothing posted"
    else
        not_ok "$api: kill -9 then resume (activity done)"; explain
    fi

    # ---- SIGINT while a removal runs: deferred, and the next run polls
    # the activity (kept in the journal at commit), never posts it again.
    csv 31
    posted=$(removals_posted)
    kill_at_poll INT
    deferred=$(removed_lines | grep -c "deferred not removed from list $LIST")
    mimp --max-removals 10 "$T/in.csv"
    want30=$(echo "$want" | grep -v -E '^k([1-9]|[12][0-9]|30)@')
    if [ $KRC -eq 75 ] && [ "$deferred" -eq 10 ] && [ $RC -eq 0 ] &&
        [ "$(removals_posted)" -eq $((posted + 1)) ] &&
        [ "$(members "$LIST")" = "$want30" ] &&
        [ "$(removed_lines | grep -c "removed removed from list $LIST")" -eq 10 ]; then
        ok "$api: SIGINT during a removal: deferred (75), then polled, not posted again"
    else
        not_ok "$api: SIGINT during a removal (exit $KRC, $deferred deferred)"; explain
    fi

    # ---- a removal the API refuses: `failed` lines, exit 1, and the next
    # run removes them ----
    csv 41 # only inv, opt, K40 and new: k31..k39 leave
    if [ $api = v3 ]; then
        m="POST /v3/activities/remove_list_memberships"
    else
        m="POST /v2/activities/removefromlists"
    fi
    sb_faults "{\"faults\":[\"400_echo\"],\"match\":\"$m\"}"
    mimp --max-removals 10 "$T/in.csv"
    failed=$(removed_lines | grep -c "failed not removed from list $LIST")
    frc=$RC
    cp "$T/r.csv" "$T/r1.csv"
    mimp --max-removals 10 "$T/in.csv"
    if [ $frc -eq 1 ] && [ "$failed" -eq 9 ] && [ $RC -eq 0 ] &&
        [ "$(members "$LIST")" = "$(printf '%s\n' inv@example.com \
            k$NK@example.com new@example.com)" ] &&
        [ "$(sum removed)" -eq 9 ] && ! grep -q -- "$TOKEN" "$T/r1.csv"; then
        ok "$api: a refused removal: failed lines (exit 1), removed by the next run"
    else
        not_ok "$api: a refused removal (exit $frc, $failed failed)"; explain
    fi
done
finish
