#!/bin/bash
# test_input_msgs.sh — what a marketer's file gets told (issue 15 items 2,
# 4 and 6): an address at a slip of a common domain is `invalid` with the
# address meant (--accept-typos sends it); messages name columns by their
# header; a huge value in a column no field reads costs its row nothing
# and memory stays flat; a workbook (.xlsx, .ods, .xls) or other binary
# file is refused (65) before anything is sent, saying how to save a CSV.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox start"; finish; }
use_api v3
DATA="$TOP/tests/data"

# The report's message for data row N (the last column; it may hold
# commas, never a newline here).
rep_msg() { rep_body | awk -F, -v r="$1" '$2 == r' | cut -d, -f9-; }
sb_requests() {
    sb_state 'contacts=0' | jq '[.requests.by_endpoint[]] | add // 0'
}

# --- typos: invalid with the address meant, unless --accept-typos.
printf 'Email,Name\nAnn@GMIAL.com,Ann\nbo@acme.con,Bo\ncy@gmail.com,Cy\ndi@mail.com,Di\n' \
    >"$T/typos.csv"
imp --list "$LIST" "$T/typos.csv"
check "typos: gmial.com and .con are invalid, gmail.com and mail.com created" \
    eval '[ "$RC" = 0 ] && [ "$(rep_status 1)" = invalid ] &&
          [ "$(rep_status 2)" = invalid ] && [ "$(rep_status 3)" = created ] &&
          [ "$(rep_status 4)" = created ]'
check "typos: the message gives the whole address meant" \
    eval 'rep_msg 1 | grep -qF "did you mean ann@gmail.com?" &&
          rep_msg 1 | grep -qF -- "--accept-typos" &&
          rep_msg 2 | grep -qF "did you mean bo@acme.com?"'
check "typos: nothing was sent for them" \
    eval '[ "$(sb_emails | tr "\n" " ")" = "cy@gmail.com di@mail.com " ]'
imp --list "$LIST" --accept-typos "$T/typos.csv"
check "typos: --accept-typos sends them as written" \
    eval '[ "$RC" = 0 ] && [ "$(rep_status 1)" = created ] &&
          [ "$(rep_status 2)" = created ] && sb_emails | grep -qx "ann@gmial.com" &&
          sb_emails | grep -qx "bo@acme.con"'

# --- messages name the column by its header.
long51=$(printf 'x%.0s' $(seq 1 51))
huge=$(head -c 70000 /dev/zero | tr '\0' y)
{
    printf 'E-mail,Vorname,Notes\n'
    printf 'a1@example.com,%s,\n' "$long51"
    printf 'a2@example.com,"%s",\n' "$huge"
    printf 'a3@example.com,Jo\0e,\n'
    printf 'a4@example.com,Ann,ok\n'
} >"$T/cols.csv"
sb_reset
imp --list "$LIST" --map first_name=Vorname "$T/cols.csv"
check "columns: too long for the field, named by header and field" \
    eval '[ "$(rep_status 1)" = invalid ] &&
          [ "$(rep_msg 1)" = "\"column \"\"Vorname\"\" (first_name) is longer than 50 characters\"" ]'
check "columns: over the reader's cap, named by header" \
    eval '[ "$(rep_status 2)" = invalid ] &&
          [ "$(rep_msg 2)" = "\"column \"\"Vorname\"\" is longer than 65,536 bytes\"" ]'
check "columns: a NUL byte, named by header" \
    eval '[ "$(rep_status 3)" = invalid ] &&
          [ "$(rep_msg 3)" = "\"NUL byte in column \"\"Vorname\"\"\"" ] &&
          [ "$(rep_status 4)" = created ] && ! grep -q "field [0-9]" "$T/r.csv"'

# --- a huge value in a column no field reads: the row is created, and
# memory does not grow with the value.
# huge_row BYTES FILE: one row whose unmapped Notes column holds BYTES.
huge_row() {
    {
        printf 'email,first_name,Notes\nbig@example.com,Big,"'
        head -c "$1" /dev/zero | tr '\0' n
        printf '"\nsmall@example.com,Small,short\n'
    } >"$2"
}
huge_row 5000000 "$T/note5m.csv"
sb_reset
imp --list "$LIST" "$T/note5m.csv"
check "unmapped: a 5 MB note does not make its row invalid" \
    eval '[ "$RC" = 0 ] && [ "$(rep_status 1)" = created ] &&
          [ "$(rep_status 2)" = created ] && sb_emails | grep -qx big@example.com'
# Peak memory with a 1 KB note and with a 30 MB one: the same within a
# few MB (the value is never held whole).
if [ -x /usr/bin/time ]; then
    huge_row 1000 "$T/note1k.csv"
    huge_row 30000000 "$T/note30m.csv"
    # max_rss FILE: peak resident KiB of a dry run on FILE.
    max_rss() {
        CTCT_ACCESS_TOKEN=$TOKEN /usr/bin/time -f '%M' -o "$T/rss" $VALGRIND \
            "$CTS" import --api "$API" --api-key "$KEY" $(api_urls) \
            --state "$T/state-rss" --report "$T/r.csv" --list "$LIST" \
            --dry-run "$1" >/dev/null 2>&1
        tail -1 "$T/rss"
    }
    small=$(max_rss "$T/note1k.csv")
    big=$(max_rss "$T/note30m.csv")
    check "unmapped: a 30 MB note costs < 10 MB of memory ($small KiB vs $big KiB)" \
        eval '[ "$(rep_status 1)" = dry-run ] && [ $((big - small)) -lt 10240 ]'
    rm -f "$T/note30m.csv"
else
    ok "unmapped: memory # skip: no /usr/bin/time"
fi

# --- workbooks and other binaries: refused before anything is sent.
save_as='Excel: File → Save As → CSV UTF-8; LibreOffice: File → Save As → Text CSV; Google Sheets: File → Download → Comma Separated Values'
for kind in "xlsx:an Excel workbook (.xlsx)" "ods:an OpenDocument spreadsheet (.ods)" \
    "xls:an Excel 97-2003 workbook (.xls)"; do
    ext=${kind%%:*}
    what=${kind#*:}
    # The name says nothing: the bytes do.
    cp "$DATA/contacts.$ext" "$T/contacts-$ext.csv"
    sb_reset
    imp --list "$LIST" "$T/contacts-$ext.csv"
    check "workbook .$ext: exit 65 saying what it is and how to save a CSV" \
        eval '[ "$RC" = 65 ] &&
              grep -qF "contacts-$ext.csv: $what, not a CSV text file" "$T/err" &&
              grep -qF "$save_as" "$T/err" && [ "$(grep -c "not a CSV" "$T/err")" = 1 ] &&
              ! grep -q "NUL byte" "$T/err"'
    check "workbook .$ext: refused before any request" \
        eval '[ "$(sb_requests)" = 0 ]'
done
sb_reset
imp --list "$LIST" - <"$DATA/contacts.xlsx"
check "workbook on stdin: exit 65 with the same message, nothing written" \
    eval '[ "$RC" = 65 ] &&
          grep -qF "an Excel workbook (.xlsx), not a CSV text file" "$T/err" &&
          grep -qF "$save_as" "$T/err" && [ "$(sb_contact_writes_attempted)" = 0 ]'
# A plain zip archive (one stored entry, a.txt) and a gzip file.
printf 'PK\003\004\024\000\000\000\000\000\000\000\000\000\000\000\000\000\001\000\000\000\001\000\000\000\005\000\000\000a.txtx' \
    >"$T/plain.csv"
printf 'PK\005\006\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' \
    >>"$T/plain.csv"
sb_reset
imp --list "$LIST" "$T/plain.csv"
check "zip: exit 65, not a CSV text file (a ZIP archive), no spreadsheet advice" \
    eval '[ "$RC" = 65 ] && grep -qF "plain.csv: not a CSV text file (a ZIP archive)" "$T/err" &&
          ! grep -q "Save As" "$T/err" && [ "$(sb_requests)" = 0 ]'
printf 'email\na@example.com\n' | gzip -c >"$T/gz.csv"
imp --list "$LIST" "$T/gz.csv"
check "gzip: exit 65, not a CSV text file (a gzip-compressed file)" \
    eval '[ "$RC" = 65 ] && grep -qF "not a CSV text file (a gzip-compressed file)" "$T/err"'

finish
