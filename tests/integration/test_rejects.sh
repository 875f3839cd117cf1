#!/bin/bash
# test_rejects.sh — the rejects file (issue 15): the rows that need a
# person with their original columns and a ctct_sync_problem column; fixed
# and imported again with the same state, everything settles; a 400 from
# the API lands there (masked); formula cells neutralised and restored on
# re-import; no rejected row, no file (a stale one removed); stdin and
# pipes; several inputs with different headers; --dry-run.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }
use_api v3
STATE_DIR="$T/state-rj"
RJ="$T/r.rejects.csv" # the default beside --report $T/r.csv

# body FILE: without BOM and CRs.
body() { sed '1s/^\xef\xbb\xbf//' "$1" | tr -d '\r'; }
has_bom() { [ "$(head -c 3 "$1" | od -An -tx1 | tr -d ' ')" = efbbbf ]; }
mode_of() { stat -c %a "$1"; }

long=$(printf 'L%.0s' $(seq 1 60))
cat >"$T/in.csv" <<EOF
Email,First Name,Phone,Notes
ann@example.com,Ann,+1 555 0100,first
bob-at-example.com,Bob,+1 555 0101,"has, a comma"
carl@example.com,$long,-42,"=HYPERLINK(""http://x"")"
dan@example.com,Dan,,
ann@example.com,Ann again,,a duplicate
eve@example.com,Eve,,"two
lines"
EOF
# Row 1 (the first POST) is refused: a 400 whose message quotes the token.
sb_faults '{"faults":["400_echo"],"match":"POST /v3/contacts"}'
imp --list "$LIST" --rate 0 --concurrency 1 --bulk never "$T/in.csv"
check "import: exit 1 (a failed row), 2 invalid, 1 duplicate" \
    eval '[ "$RC" = 1 ] && [ "$(rep_status 1)" = failed ] &&
          [ "$(rep_count invalid)" = 2 ] && [ "$(rep_count duplicate)" = 1 ]'
check "rejects: written beside the report, 0600, UTF-8 BOM" \
    eval '[ -f "$RJ" ] && [ "$(mode_of "$RJ")" = 600 ] && has_bom "$RJ"'
check "rejects: the input's header plus ctct_sync_problem" \
    eval '[ "$(body "$RJ" | head -1)" = "Email,First Name,Phone,Notes,ctct_sync_problem" ]'
check "rejects: exactly the failed and invalid rows, in input order" \
    eval '[ "$(body "$RJ" | tail -n +2 | cut -d, -f1)" = "ann@example.com
bob-at-example.com
carl@example.com" ]'
check "rejects: every line CRLF-terminated (RFC 4180)" \
    eval '[ "$(grep -c $'"'"'\r$'"'"' "$RJ")" = 4 ]'
check "rejects: original columns kept (quoted comma, phone neutralised)" \
    eval 'body "$RJ" | grep -qxF "bob-at-example.com,Bob,'"'"'+1 555 0101,\"has, a comma\",\"column \"\"Email\"\": no '"'"'@'"'"'\""'
check "rejects: field too long says which field, formula cells neutralised" \
    eval 'body "$RJ" | grep -qxF "carl@example.com,$long,'"'"'-42,\"'"'"'=HYPERLINK(\"\"http://x\"\")\",\"column \"\"First Name\"\" is longer than 50 characters\""'
check "rejects: the API's refusal in words, its token masked" \
    eval 'body "$RJ" | grep "^ann@example.com,Ann," |
              grep -q "refused by Constant Contact (HTTP 400" &&
          ! grep -qF "$TOKEN" "$RJ" && grep -qF "${TOKEN:0:4}…${TOKEN: -4}" "$RJ"'
check "rejects: duplicate, created and multi-line rows are not in it" \
    eval '! grep -q "Ann again\|dan@\|eve@" "$RJ"'
check "summary line names the rejects file and its rows" \
    eval 'tail -1 "$T/err" | grep -qF "rejects: $RJ (3 rows to fix)"'

# --- fix them (the person edits the file) and import it as it is.
sed -e 's/bob-at-example.com/bob@example.com/' -e "s/$long/Carl/" \
    -e 's/^ann@example.com,Ann,/ann@example.com,Annie,/' "$RJ" >"$T/fixed.csv"
imp --list "$LIST" --rate 0 --bulk never --rejects "$RJ" "$T/fixed.csv"
if [ "$RC" = 0 ]; then ok "re-import: exit 0"; else not_ok "re-import: exit 0"; explain; fi
check "re-import: the 3 rows settle (created), nothing else" \
    eval '[ "$(rep_rows)" = 3 ] && [ "$(rep_count created)" = 3 ]'
check "re-import: the problem column is not an 'ignored column'" \
    eval '! grep -q "ctct_sync_problem" "$T/err" && grep -q "\"Notes\"" "$T/err"'
check "re-import: no row to fix, so the earlier rejects file is gone" \
    eval '[ ! -e "$RJ" ] && ! tail -1 "$T/err" | grep -q "rejects:"'
check "re-import: neutralised cells arrive as they were (+1 555, -42)" \
    eval 'sb_state | jq -e "[.accounts[].contacts[]
              | select(.email == \"bob@example.com\" or .email == \"carl@example.com\")
              | .phone] | sort == [\"+1 555 0101\", \"-42\"]" >/dev/null'

# --- no rejected row: no file.
printf 'email,first_name\nzed@example.com,Zed\n' >"$T/clean.csv"
imp --list "$LIST" --rate 0 "$T/clean.csv"
check "all rows settle: exit 0, no rejects file" \
    eval '[ "$RC" = 0 ] && [ ! -e "$RJ" ]'

# --- the rejects file may not be an input, the report or the summary.
imp --list "$LIST" --rate 0 --rejects "$T/in.csv" "$T/in.csv"
check "--rejects naming the input: 64, input untouched" \
    eval '[ "$RC" = 64 ] && grep -q "rejects file" "$T/err" &&
          head -1 "$T/in.csv" | grep -q "^Email,First Name"'
imp --list "$LIST" --rate 0 --rejects "$T/r.csv" "$T/in.csv"
check "--rejects naming the report: 64" eval '[ "$RC" = 64 ]'
# The default beside --report r.csv is r.rejects.csv: importing that very
# file (fixed) with the same command line must not write over it.
printf 'email,city\nbad,Rome\n' >"$RJ"
imp --list "$LIST" --rate 0 --dry-run "$RJ"
check "default rejects file = the input: left alone, said, run goes on" \
    eval '[ "$RC" = 0 ] && grep -q "no rejects file this run" "$T/err" &&
          [ "$(tr -d "\r" <"$RJ")" = "email,city
bad,Rome" ]'
rm -f "$RJ"

# --- stdin and a pipe cannot be read twice: copied as they are read.
printf 'email,city\nnot-an-email,Paris\nok1@example.com,Oslo\n' >"$T/s.csv"
imp --list "$LIST" --rate 0 --rejects "$T/stdin.rj.csv" - <"$T/s.csv"
check "stdin: the rejected row with its columns" \
    eval '[ "$(body "$T/stdin.rj.csv")" = "email,city,ctct_sync_problem
not-an-email,Paris,\"column \"\"email\"\": no '"'"'@'"'"'\"" ]'
# shellcheck disable=SC2002
cat "$T/s.csv" | imp --list "$LIST" --rate 0 --rejects "$T/pipe.rj.csv" -
check "pipe: the rejected row with its columns" \
    eval '[ "$(body "$T/pipe.rj.csv" | tail -1)" = "not-an-email,Paris,\"column \"\"email\"\": no '"'"'@'"'"'\"" ]'

# --- several inputs, different headers: one file, the union of headers,
# each value under its own column name.
printf 'Email,City\nx1,Rome\n' >"$T/a.csv"
printf 'e-mail,Zip,city\nx2,12345,Bern\n' >"$T/b.csv"
imp --list "$LIST" --rate 0 --dry-run --rejects "$T/two.rj.csv" "$T/a.csv" "$T/b.csv"
check "two inputs: one header (union), rows under their columns" \
    eval '[ "$(body "$T/two.rj.csv")" = "Email,City,Zip,ctct_sync_problem
x1,Rome,,\"column \"\"Email\"\": no '"'"'@'"'"'\"
x2,Bern,12345,\"column \"\"e-mail\"\": no '"'"'@'"'"'\"" ]'

# --- a rejects file whose rows fail again: one problem column, the new one.
cp "$T/stdin.rj.csv" "$T/again.csv"
imp --list "$LIST" --rate 0 --dry-run --rejects "$T/again.rj.csv" "$T/again.csv"
check "a rejects file that still fails: one problem column, the new problem" \
    eval '[ "$(body "$T/again.rj.csv")" = "email,city,ctct_sync_problem
not-an-email,Paris,\"column \"\"email\"\": no '"'"'@'"'"'\"" ]'

finish
