#!/usr/bin/env bash
# test_html.sh — the HTML page of an import (--html FILE, and by default
# beside the report on a terminal), checked structurally with python3's
# html.parser:
#   - every element is closed, in order; nothing in it fetches anything
#     (no http:// or https://, no src or href);
#   - the counts in the page are the --summary JSON's counts;
#   - the rows needing attention are the report's invalid and failed rows
#     (file, row, email), with the API's message for a failed one;
#   - a <script> in an input field and in the file name arrives escaped,
#     the token quoted by a careless server arrives masked;
#   - 0600; an input given as --html is refused (64); past 1,000 rows the
#     page says how many more there are;
#   - by default only on a terminal (script(1) fakes one), not with
#     --no-html or --quiet, and not when stderr is not a terminal (cron).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

if ! command -v python3 >/dev/null 2>&1; then
    echo "# SKIP: python3 is needed to parse the page"
    ok "SKIP test_html (no python3)"
    finish
fi

sb_start --rate 0 --daily-quota 0 || { not_ok "sandbox starts"; finish; }
use_api v3

# The checker: prints one "ok"/"bad: why" line per aspect.
cat >"$T/check.py" <<'EOF'
import csv, html.parser, json, sys

page_path, summary_path, report_path = sys.argv[1:4]
raw = open(page_path, encoding="utf-8").read()
VOID = {"meta", "br", "hr", "img", "input", "link"}

class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags = [], [], []
        self.legend, self.rows, self.cur, self.cell = {}, [], None, None
        self.more, self.input_rows, self.section = 0, None, None
        self.text = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "section":
            self.section = a.get("id")
            if a.get("id") == "counts":
                self.input_rows = int(a["data-input-rows"])
        if tag == "li" and self.section == "counts":
            self.legend[a["data-status"]] = int(a["data-count"])
        if tag == "tr" and "data-status" in a:
            self.cur = {"status": a["data-status"]}
        if tag == "td" and self.cur is not None:
            self.cell = a.get("class", "")
            self.cur.setdefault(self.cell, "")
        if tag == "p" and "data-more" in a:
            self.more = int(a["data-more"])
    def handle_startendtag(self, tag, attrs):
        self.errors.append("self-closing <%s/>" % tag)
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
            return
        self.stack.pop()
        if tag == "td":
            self.cell = None
        if tag == "tr" and self.cur is not None:
            self.rows.append(self.cur)
            self.cur = None
    def handle_data(self, data):
        self.text.append(data)
        if self.cur is not None and self.cell is not None:
            self.cur[self.cell] += data

p = P()
p.feed(raw)
p.close()
def say(name, good, why=""):
    print(("ok " if good else "bad ") + name + ("" if good else ": " + why))

say("well-formed", not p.errors and not p.stack and raw.startswith("<!DOCTYPE html>"),
    "; ".join(p.errors[:3]) + " open: %s" % p.stack)
say("no network", "http://" not in raw and "https://" not in raw and
    not any(k in ("src", "href") for _, a in p.tags for k in a) and
    not any(t in ("script", "link", "img", "iframe", "object") for t, _ in p.tags),
    "a URL, src/href or a fetching element")
say("inline CSS, print rules", any(t == "style" for t, _ in p.tags) and "@media print" in raw)

s = json.load(open(summary_path))
keys = ["created", "updated", "imported", "unchanged", "exists", "invalid",
        "duplicate", "failed", "deferred", "opted_out", "unsubscribed", "removed"]
want = {k.replace("_", "-"): s[k] for k in keys if s[k] != 0}
say("counts = summary", p.legend == want and p.input_rows == s["input_rows"],
    "page %s rows %s, summary %s rows %s" % (p.legend, p.input_rows, want, s["input_rows"]))

with open(report_path, encoding="utf-8-sig", newline="") as f:
    rep = [r for r in csv.DictReader(f) if r["status"] in ("invalid", "failed", "deferred")]
want_rows = [(r["file"], r["row"], r["email"], r["status"]) for r in rep]
got_rows = [(r.get("file", ""), r.get("row", ""), r.get("email", ""), r["status"]) for r in p.rows]
shown = len(got_rows)
say("attention rows = report's", got_rows == want_rows[:shown] and
    shown + p.more == len(want_rows) and shown == min(len(want_rows), 1000),
    "page %s... (%d + %d more), report %s... (%d)" % (got_rows[:3], shown, p.more, want_rows[:3], len(want_rows)))
fails = [r for r in rep if r["status"] == "failed"]
say("failed rows show the API's message",
    all(any(r["message"] in g.get("problem", "") for g in p.rows if g.get("row") == r["row"])
        for r in fails), "messages %s" % [r["message"] for r in fails])
say("every attention row says what to do",
    all(g.get("todo", "").strip() for g in p.rows), "an empty suggestion")
EOF

# checks NAME-PREFIX: run the checker on $T/r.html and turn its lines
# into cases.
checks() {
    python3 "$T/check.py" "$T/r.html" "$T/s.json" "$T/r.csv" >"$T/check.out" 2>&1 ||
        { not_ok "$1 checker ran" "$(tail -3 "$T/check.out")"; return; }
    while IFS= read -r line; do
        case "$line" in
        "ok "*) ok "$1 ${line#ok }" ;;
        "bad "*) not_ok "$1 ${line#bad }" ;;
        esac
    done <"$T/check.out"
}

# --- a run with created, invalid, duplicate and failed rows; a <script>
# in a field and in the file name.
IN="$T/sign-ups <script>&.csv"
cat >"$IN" <<'EOF'
email,first_name,last_name
ada@example.com,Ada,Lovelace
grace@example.com,<script>alert(1)</script>,Hopper
not-an-email,Bad,Row
ada@example.com,Ada,Again
"<script>alert(2)</script>@evil.example",X,Y
linus@example.org,Linus,T
EOF
# The first contact POST is refused with a 400 whose message quotes the
# bearer token (the client must mask it).
sb_faults '{"faults":["400_echo"],"match":"POST /v3/contacts"}'
imp --list "$LIST" --rate 0 --concurrency 1 --html "$T/r.html" "$IN"
check "exit 1 (a row failed)" eval '[ "$RC" = 1 ]'
check "page written" test -s "$T/r.html"
check "page is 0600" eval '[ "$(stat -c %a "$T/r.html")" = 600 ]'
check "the summary line, last, names the page" \
    eval 'tail -1 "$T/err" | grep -qF "summary: 6 rows" &&
          tail -1 "$T/err" | grep -qF "report: $T/r.csv and $T/r.html;" &&
          tail -1 "$T/err" | grep -qF "(exit 1)"'
checks "v3"
check "report has 1 failed, 2 invalid" \
    eval '[ "$(rep_count failed)" = 1 ] && [ "$(rep_count invalid)" = 2 ]'
check "<script> from the input is escaped, never markup" \
    eval '! grep -qi "<script" "$T/r.html" &&
          grep -qF "&lt;script&gt;alert(2)&lt;/script&gt;@evil.example" "$T/r.html" &&
          grep -qF "sign-ups &lt;script&gt;&amp;.csv" "$T/r.html"'
check "the token never appears" eval '! grep -qF "$TOKEN" "$T/r.html" &&
    ! grep -qF "${TOKEN:20:30}" "$T/r.html"'
check "account and list named" \
    eval 'grep -q "a07e1demo0001" "$T/r.html" && grep -q "$LIST" "$T/r.html"'
check "no temporary file left" \
    eval '[ -z "$(find "$T" -maxdepth 1 -name ".r.html.tmp*")" ]'

# --- v2, a clean run: the page says so and still matches the summary.
use_api v2
STATE_DIR="$T/state-v2"
gen 20 7 --invalid-every 7
imp --list "$LIST" --rate 0 --html "$T/r.html" "$T/in.csv"
check "v2 exit 0" eval '[ "$RC" = 0 ]'
checks "v2"
check "v2 page: every row settled" grep -q "Every row settled" "$T/r.html"
use_api v3
STATE_DIR="$T/state"

# --- past the cap: 1,000 rows listed, the rest counted.
{
    echo "email,first_name"
    for i in $(seq 1 1003); do echo "bad$i-at-example.com,N$i"; done
} >"$T/many.csv"
imp --list "$LIST" --rate 0 --html "$T/r.html" "$T/many.csv"
check "1,003 invalid rows: exit 0" eval '[ "$RC" = 0 ]'
checks "capped"
check "capped page says 3 more" grep -q 'data-more="3"' "$T/r.html"

# --- an input given as --html is refused before anything is written.
cp "$IN" "$T/keep.csv"
imp --list "$LIST" --rate 0 --html "$T/keep.csv" "$T/keep.csv"
check "--html = the input → 64, input intact" \
    eval '[ "$RC" = 64 ] && cmp -s "$IN" "$T/keep.csv" && grep -q -- "--html" "$T/err"'
mkdir -p "$T/adir"
imp --list "$LIST" --rate 0 --html "$T/adir" "$T/in.csv"
check "--html a directory → 73 before anything is sent" \
    eval '[ "$RC" = 73 ] && grep -q "HTML report" "$T/err" &&
          [ "$(sum requests)" = 0 ]'

# --- the default: beside the report, only on a terminal.
rm -f "$T/r.html" "$T/r2.html"
CTCT_ACCESS_TOKEN=$TOKEN "$CTS" import --api v3 --api-key "$KEY" $(api_urls) \
    --state "$STATE_DIR" --report "$T/r2.csv" --list "$LIST" --rate 0 "$T/in.csv" \
    >/dev/null 2>&1 || true
check "not a terminal (cron): no page by default" test ! -e "$T/r2.html"
if command -v script >/dev/null 2>&1 && script -qc true /dev/null >/dev/null 2>&1; then
    tty_run() { # ARGS...: ctct-sync import on a pseudo-terminal
        local cmd q=""
        for a in "$CTS" import --api v3 --api-key "$KEY" $(api_urls) \
            --state "$STATE_DIR" --list "$LIST" --rate 0 "$@"; do
            q="$q $(printf '%q' "$a")"
        done
        CTCT_ACCESS_TOKEN=$TOKEN script -qec "$q" /dev/null >"$T/tty.out" 2>&1 || true
    }
    tty_run --report "$T/r2.csv" "$T/in.csv"
    check "terminal: <report>.html by default, 0600" \
        eval '[ -s "$T/r2.html" ] && [ "$(stat -c %a "$T/r2.html")" = 600 ] &&
              grep -q "report: .*r2.csv and .*r2.html" "$T/tty.out"'
    rm -f "$T/r2.html"
    tty_run --report "$T/r2.csv" --no-html "$T/in.csv"
    check "terminal with --no-html: no page" test ! -e "$T/r2.html"
    tty_run --report "$T/r2.csv" --quiet "$T/in.csv"
    check "terminal with --quiet: no page" test ! -e "$T/r2.html"
else
    echo "# SKIP: script(1) cannot fake a terminal here; the default-on-a-terminal case is not checked"
fi

finish
