#!/bin/bash
# test_import.sh — `ctct-sync import` end to end against ctct-sandbox, API v3
# and v2: the report against the sandbox's truth, incremental re-runs,
# the v2 409 → GET → PUT path, --mode create, --dry-run, unknown lists,
# the seed case (key of one account, token of another), and the exit codes
# for empty/missing input, an unwritable report and an unreachable API.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }

for api in $APIS; do
    use_api $api
    sb_reset
    STATE_DIR="$T/state-$api"

    # --- happy path: 40 rows, 4 invalid (rows 9,18,27,36), 3 duplicates
    # of row 1 (rows 11,22,33), 33 new contacts.
    gen 40 5 --invalid-every 9 --dup-every 11
    imp --list "$LIST" --rate 0 "$T/in.csv"
    if [ "$RC" = 0 ]; then ok "$api import exit 0"; else not_ok "$api import exit 0"; explain; fi
    check "$api report: BOM and header" rep_header_ok
    check "$api report: 40 rows, in order, each once" \
        eval '[ "$(rep_rows)" = 40 ] && rep_in_order'
    check "$api report: 33 created, 4 invalid, 3 duplicate" \
        eval '[ "$(rep_count created)" = 33 ] && [ "$(rep_count invalid)" = 4 ] &&
              [ "$(rep_count duplicate)" = 3 ]'
    check "$api report: row 9 invalid, row 22 duplicate names row 1" \
        eval '[ "$(rep_status 9)" = invalid ] &&
              rep_body | grep -q "^[^,]*,22,.*,duplicate,.*row 1"'
    check "$api sandbox holds exactly the created emails" \
        eval '[ "$(sb_emails)" = "$(rep_emails created)" ]'
    if [ $api = v3 ]; then lkey=lists_v3; else lkey=lists_v2; fi
    check "$api every stored contact is on the list, written once" \
        eval "sb_state | jq -e --arg l '$LIST' '[.accounts[]
              | select(.encoded_account_id == \"a07e1demo0001\") | .contacts[]
              | select((.$lkey | index(\$l)) == null or .writes != 1)]
              | length == 0' >/dev/null"
    # Fields arrive: row 1's first name and city are what the CSV says.
    row1=$(sed -n 2p "$T/in.csv")
    fn1=$(echo "$row1" | cut -d, -f2)
    city1=$(echo "$row1" | cut -d, -f5)
    em1=$(echo "$row1" | cut -d, -f1)
    check "$api fields of row 1 stored" \
        eval "sb_state | jq -e --arg e '$em1' --arg f '$fn1' --arg c '$city1' '
              [.accounts[].contacts[] | select(.email == \$e)][0]
              | .first_name == \$f and .city == \$c' >/dev/null"
    check "$api summary JSON: counts add up and match the report" \
        eval 'sum_adds_up && [ "$(sum input_rows)" = 40 ] &&
              [ "$(sum created)" = 33 ] && [ "$(sum requests)" = 34 ] &&
              [ "$(sum exit_code)" = 0 ] && [ "$(sum api)" = '$api' ] &&
              [ "$(sum account)" != null ]'
    check "$api stderr ends with the summary line" \
        eval 'tail -1 "$T/err" | grep -q "summary: 40 rows: 33 created"'

    # --- same file again: the state says unchanged; nothing is sent.
    w0=$(sb_contact_writes_attempted)
    imp --list "$LIST" --rate 0 "$T/in.csv"
    check "$api re-run: 33 unchanged, no write request, exit 0" \
        eval '[ "$RC" = 0 ] && [ "$(rep_count unchanged)" = 33 ] &&
              [ "$(sb_contact_writes_attempted)" = "$w0" ]'

    # --- --full with a second list: updates (v2: 409 → GET → PUT, lists
    # merged), no second contact.
    imp --list "$LIST" --list "$LIST2" --rate 0 --full "$T/in.csv"
    check "$api --full with a new list: 33 updated, exit 0" \
        eval '[ "$RC" = 0 ] && [ "$(rep_count updated)" = 33 ]'
    check "$api update kept one contact per email, both lists" \
        eval "[ \"\$(sb_emails)\" = \"\$(rep_emails updated)\" ] &&
              sb_state | jq -e --arg a '$LIST' --arg b '$LIST2' '[.accounts[].contacts[]
              | select((.$lkey | index(\$a)) == null or (.$lkey | index(\$b)) == null)]
              | length == 0' >/dev/null"
    if [ $api = v2 ]; then
        check "v2 update went through GET by email and PUT" \
            eval "sb_state 'contacts=0' | jq -e '(.requests.by_endpoint[\"GET /v2/contacts\"] // 0) >= 33
                  and ([.requests.by_endpoint | to_entries[] | select(.key | test(\"^PUT /v2/contacts\")) | .value] | add) >= 33' >/dev/null"
    fi

    # --- --mode create on existing contacts: exists, no update.
    gen 3 5
    imp --list "$LIST" --rate 0 --full --mode create "$T/in.csv"
    check "$api --mode create on existing contacts: exists, exit 0" \
        eval '[ "$RC" = 0 ] && [ "$(rep_count exists)" = 3 ]'

    # --- dry run on an empty account: mapping shown, nothing written.
    sb_reset
    gen 10 6 --invalid-every 4
    imp --list "$LIST" --rate 0 --dry-run "$T/in.csv"
    check "$api dry-run: exit 0, 8 dry-run + 2 invalid, zero writes" \
        eval '[ "$RC" = 0 ] && [ "$(rep_count dry-run)" = 8 ] &&
              [ "$(rep_count invalid)" = 2 ] && [ "$(sb_writes)" = 0 ] &&
              [ "$(sb_contact_writes_attempted)" = 0 ]'
    check "$api dry-run prints the column mapping" \
        grep -q '"Email Address" -> email' "$T/err"

    # --- unknown list id: 65 before any write, valid ids listed.
    imp --list "$LIST" --list 999999 --rate 0 "$T/in.csv"
    if [ "$RC" = 65 ] && [ "$(sb_contact_writes_attempted)" = 0 ] &&
        grep -q "999999" "$T/err" && grep -q -- "$LIST" "$T/err"; then
        ok "$api unknown list: exit 65, no write, ids listed"
    else
        not_ok "$api unknown list: exit 65, no write, ids listed"; explain
    fi

    # --- empty file: no header row → 65; header only → 0 rows, exit 0.
    : >"$T/empty.csv"
    imp --list "$LIST" --rate 0 "$T/empty.csv"
    check "$api empty file: exit 65" eval '[ "$RC" = 65 ]'
    head -1 "$T/in.csv" >"$T/header.csv"
    imp --list "$LIST" --rate 0 "$T/header.csv"
    check "$api header only: exit 0, 0 rows" \
        eval '[ "$RC" = 0 ] && [ "$(rep_rows)" = 0 ] && [ "$(sum input_rows)" = 0 ]'

    # --- missing input: 66, nothing sent.
    imp --list "$LIST" --rate 0 "$T/in.csv" "$T/no-such.csv"
    check "$api missing input: exit 66, no write" \
        eval '[ "$RC" = 66 ] && [ "$(sb_contact_writes_attempted)" = 0 ]'

    # --- report cannot be written: 73 before any write.
    CTCT_ACCESS_TOKEN=$TOKEN cts import --api "$API" --api-key "$KEY" \
        $(api_urls) --state "$STATE_DIR" --report "$T/no/such/dir/r.csv" \
        --list "$LIST" --rate 0 "$T/in.csv"
    check "$api unwritable report: exit 73, no write" \
        eval '[ "$RC" = 73 ] && [ "$(sb_contact_writes_attempted)" = 0 ]'

    # --- stdin: "-" reads standard input, report stdin.report.csv in cwd.
    sb_reset
    gen 5 7
    (cd "$T" && CTCT_ACCESS_TOKEN=$TOKEN "$CTS" import --api "$API" \
        --api-key "$KEY" $(api_urls) --state "$STATE_DIR-stdin" \
        --list "$LIST" --rate 0 - <"$T/in.csv" >/dev/null 2>"$T/err")
    check "$api stdin: default report stdin.report.csv, 5 created" \
        eval '[ "$(tail -n +2 "$T/stdin.report.csv" | grep -c ",created,")" = 5 ]'
    rm -f "$T/stdin.report.csv"

    # --- API unreachable (nothing listens on port 1): 69.
    CTCT_ACCESS_TOKEN=$TOKEN cts import --api "$API" --api-key "$KEY" \
        --base-url "http://127.0.0.1:1/$API" --auth-url "http://127.0.0.1:1/oauth2" \
        --state "$STATE_DIR" --report "$T/r.csv" --list "$LIST" "$T/in.csv"
    check "$api connection refused: exit 69" eval '[ "$RC" = 69 ]'
done

# --- several files: each with its own header and delimiter, one report
# in input order, duplicates found across files.
sb_reset
STATE_DIR="$T/state-multi"
"$GEN" 3 41 >"$T/fa.csv"
printf 'E-mail;Vorname;Nachname\nuser2.s41@example.com;X;Y\nneu@example.com;Z;W\n' >"$T/fb.csv"
imp --list "$LIST" --rate 0 "$T/fa.csv" "$T/fb.csv"
if [ "$RC" = 0 ] && [ "$(rep_rows)" = 5 ] &&
    [ "$(rep_body | cut -d, -f1,2,4 | tr '\n' ' ')" = "$T/fa.csv,1,created $T/fa.csv,2,created $T/fa.csv,3,created $T/fb.csv,1,duplicate $T/fb.csv,2,created " ] &&
    rep_body | grep -q "same email as $T/fa.csv row 2" &&
    [ "$(sb_emails | wc -l)" = 4 ]; then
    ok "two files: one report in input order, duplicate across files named"
else
    not_ok "two files: one report in input order, duplicate across files named"; explain
fi

# --- malformed CSV: a quote opened in the last row and never closed.
# The rows before it are sent, the broken tail is reported `invalid`, and
# the run exits 65 (data error) with the file and row named.
sb_reset
STATE_DIR="$T/state-badcsv"
printf 'Email,First Name\na1@example.com,A\na2@example.com,B\na3@example.com,"C\n' >"$T/bad.csv"
imp --list "$LIST" --rate 0 "$T/bad.csv"
if [ "$RC" = 65 ] && [ "$(rep_rows)" = 3 ] && [ "$(rep_count created)" = 2 ] &&
    [ "$(rep_status 3)" = invalid ] && grep -q "bad.csv.*row 3" "$T/err" &&
    [ "$(sum exit_code)" = 65 ]; then
    ok "unterminated quote at the end: earlier rows sent, tail invalid, exit 65"
else
    not_ok "unterminated quote at the end: earlier rows sent, tail invalid, exit 65"; explain
fi

# --- --quiet (errors only): silent when every row settled; the summary
# line still shows when the exit code is not 0.
sb_reset
STATE_DIR="$T/state-quiet"
gen 5 10
imp --list "$LIST" --rate 0 --quiet "$T/in.csv"
check "--quiet: exit 0 prints nothing" eval '[ "$RC" = 0 ] && [ ! -s "$T/err" ]'
imp --list "$LIST" --rate 0 --quiet --daily-quota 1 --bulk never --full "$T/in.csv"
check "--quiet: exit 75 still prints the error and the summary line" \
    eval '[ "$RC" = 75 ] && grep -q "summary: 5 rows" "$T/err"'

# --- progress line: only on a terminal, at most 10 updates a second,
# erased before the summary line; never when stderr is a file.
use_api v3
sb_reset
STATE_DIR="$T/state-progress"
gen 20 9
imp --list "$LIST" --rate 10 "$T/in.csv"
check "no progress line when stderr is not a terminal" \
    eval '[ "$RC" = 0 ] && ! grep -q "$(printf "\r")" "$T/err"'
if command -v script >/dev/null; then
    sb_reset
    rm -rf "$T/state-progress"
    # script(1) gives ctct-sync a pseudo-terminal as stderr.
    CTCT_ACCESS_TOKEN=$TOKEN script -qec "'$CTS' import --api v3 --api-key $KEY \
        $(api_urls) --state '$T/state-progress' --report '$T/r.csv' \
        --list $LIST --rate 10 '$T/in.csv'" /dev/null >"$T/pty.out" 2>&1
    n=$(tr '\r' '\n' <"$T/pty.out" | grep -c '^.\[Krows [0-9]*/20')
    el=$(tr '\r' '\n' <"$T/pty.out" | sed -n 's/.*summary: .*, \([0-9.]*\) s;.*/\1/p')
    if [ "$n" -ge 2 ] && awk -v n="$n" -v s="${el:-0}" 'BEGIN { exit !(n <= 10 * s + 2) }' &&
        tr '\r' '\n' <"$T/pty.out" | grep -q "^.\[Kctct-sync: summary: 20 rows"; then
        ok "progress line on a terminal: $n updates in ${el}s, erased before the summary"
    else
        not_ok "progress line on a terminal" "$n updates in ${el}s"
        cat -v "$T/pty.out" | head -5 | sed 's/^/#   /'
    fi
else
    ok "progress line on a terminal # SKIP no script(1)"
fi

# --- the seed case: the API key of account A (acme) with a token of
# account B (globex).  Exit 77, nothing written anywhere, and the message
# names both keys masked, never in full.  Its own sandbox with two
# accounts; a matching pair first, so a broken set-up cannot pass as 77.
sb_stop
cat >"$T/accounts.json" <<'JSON'
{"apps": [
  {"api": "v3", "api_key": "acme-v3-client-0000000000001"},
  {"api": "v3", "api_key": "globex-v3-client-000000000001"},
  {"api": "v2", "api_key": "acme-v2-key-00000000000000001"},
  {"api": "v2", "api_key": "globex-v2-key-0000000000000001"}],
 "accounts": [
  {"user_name": "acme", "encoded_account_id": "a07e1acme0001",
   "lists": [{"id": "1", "list_id": "8c2b2d3e-00a1-4000-8000-000000000001", "name": "Acme news"}],
   "tokens": [{"token": "acme-v2-token-00000000000000000001", "api": "v2",
               "api_key": "acme-v2-key-00000000000000001"}]},
  {"user_name": "globex", "encoded_account_id": "a07e1globex01",
   "lists": [{"id": "1", "list_id": "8c2b2d3e-00b1-4000-8000-000000000001", "name": "Globex news"}],
   "tokens": [{"token": "globex-v2-token-0000000000000000001", "api": "v2",
               "api_key": "globex-v2-key-0000000000000001"}]}]}
JSON
sb_start --rate 0 --daily-quota 0 --accounts "$T/accounts.json" ||
    { not_ok "sandbox start (two accounts)"; finish; }
gen 5 8
mint_v3() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"api\":\"v3\",\"api_key\":\"$1\",\"account\":\"$2\",\"expires_in\":86400}" \
        "$SB_URL/_sandbox/token" | jq -r .access_token
}
for api in $APIS; do
    API=$api
    if [ $api = v3 ]; then
        key_a=acme-v3-client-0000000000001
        tok_a=$(mint_v3 "$key_a" acme)
        tok_b=$(mint_v3 globex-v3-client-000000000001 globex)
        LIST=8c2b2d3e-00a1-4000-8000-000000000001
    else
        key_a=acme-v2-key-00000000000000001
        tok_a=acme-v2-token-00000000000000000001
        tok_b=globex-v2-token-0000000000000000001
        LIST=1
    fi
    KEY=$key_a
    STATE_DIR="$T/state-seed-$api"
    TOKEN=$tok_a imp --list "$LIST" --rate 0 "$T/in.csv"
    if [ "$RC" = 0 ] && [ "$(rep_count created)" = 5 ]; then
        ok "$api acme key + acme token: exit 0, 5 created"
    else
        not_ok "$api acme key + acme token: exit 0, 5 created"; explain
    fi
    sb_reset
    TOKEN=$tok_b imp --list "$LIST" --rate 0 "$T/in.csv"
    if [ "$RC" = 77 ] && [ "$(sb_contact_writes_attempted)" = 0 ] &&
        [ "$(sb_json '[.accounts[].contact_count] | add')" = 0 ] &&
        grep -q "${key_a:0:4}" "$T/err" &&
        ! grep -qF -- "$key_a" "$T/err" && ! grep -qF -- "$tok_b" "$T/err"; then
        ok "$api seed case: acme key + globex token → exit 77, nothing written, secrets masked"
    else
        not_ok "$api seed case: acme key + globex token → exit 77, nothing written, secrets masked"
        explain
    fi
    # Also in --dry-run: the check runs before anything else.
    TOKEN=$tok_b imp --list "$LIST" --rate 0 --dry-run "$T/in.csv"
    check "$api seed case in --dry-run: exit 77" eval '[ "$RC" = 77 ]'
    # --account pins the account: acme's own pair with --account globex.
    TOKEN=$tok_a imp --list "$LIST" --rate 0 --account globex "$T/in.csv"
    check "$api --account of another account: exit 77, nothing written" \
        eval '[ "$RC" = 77 ] && [ "$(sb_contact_writes_attempted)" = 0 ]'
done

finish
