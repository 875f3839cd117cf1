#!/bin/bash
# test_optouts.sh — the account's unsubscribed addresses are known before
# the first row is settled, API v3 and v2, per-contact and bulk: an account
# with 1,100 unsubscribed contacts (3 listing pages of 500) and active ones;
# a CSV mixing unsubscribed, active and new addresses → the unsubscribed
# rows are `opted-out` with no write, nobody is re-subscribed, the state
# directory keeps the set; the next run asks only for what changed
# (updated_after / modified_since: one page) and still catches a contact
# who unsubscribed in between; --dry-run shows `opted-out` and writes
# nothing; the listing keeps to --rate; a next link to another origin is
# refused (no earlier set: nothing sent, exit 69; with one: a warning).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/test_import.inc"

NU=1100 # unsubscribed contacts seeded: 3 pages of 500
sb_start --rate 0 --daily-quota 0 --activity-ms 300 ||
    { not_ok "sandbox start"; finish; }

# Seed NU unsubscribed (u1..) and 20 active (a1..) contacts, all last
# updated two days ago (so a refresh with the one-hour margin skips them).
seed() {
    local old=$(($(date +%s) - 2 * 86400))
    jq -n --argjson n $NU --argjson t $old --arg l "$1" '{account: "demo",
        contacts: ([range(1; $n + 1) | {email: "u\(.)@example.com",
                    permission: "unsubscribed", updated_at: $t}] +
                   [range(1; 21) | {email: "a\(.)@example.com",
                    lists: [$l], updated_at: $t}])}' >"$T/seed.json"
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d @"$T/seed.json" "$SB_URL/_sandbox/contacts" >/dev/null
}
# Rows: 5 unsubscribed (one far into the third page), 4 active, 4 new.
csv() {
    {
        echo "email,first_name"
        for e in u1 a1 n1 u600 a2 n2 u1100 a3 n3 U7 a4 n4 u42; do
            echo "$e@example.com,F$e"
        done
    } >"$T/in.csv"
}
OPTED="u1100@example.com u1@example.com u42@example.com u600@example.com u7@example.com"
listings() {
    sb_state contacts=0 | jq --arg e "GET /$API/contacts" '.requests.by_endpoint[$e] // 0'
}
# Writes the sandbox stored for the unsubscribed emails of the CSV, and
# whether any of them is on a list or no longer unsubscribed.
opted_touched() {
    sb_state | jq '[.accounts[] | select(.encoded_account_id == "a07e1demo0001")
        | .contacts[] | select(.email | test("^u(1|7|42|600|1100)@"))
        | select(.writes != 0 or .permission != "unsubscribed" or
                 ((.lists_v3 + .lists_v2) | length) != 0)] | length'
}
resubs() { sb_state contacts=0 | jq '.resubscriptions | length'; }
unsubscribe() {
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"account\":\"demo\",\"email\":\"$1\"}" \
        "$SB_URL/_sandbox/unsubscribe" >/dev/null
}

for api in $APIS; do
    use_api $api
    csv
    for mode in never always; do
        sb_reset
        seed "$LIST" || { not_ok "$api seed"; continue; }
        STATE_DIR="$T/state-$api-$mode"
        imp --list "$LIST" --bulk $mode --poll-interval 1 "$T/in.csv"
        check "$api --bulk $mode: exit 0, 5 opted-out rows, the others sent" \
            eval '[ "$RC" = 0 ] && [ "$(rep_count opted-out)" = 5 ] &&
                  [ "$(rep_emails opted-out | tr "\n" " ")" = "$OPTED " ] &&
                  [ "$(sum opted_out)" = 5 ] &&
                  [ "$(rep_emails opted-out created updated imported | wc -l)" = 13 ]' ||
            explain
        check "$api --bulk $mode: opted-out message says since when" \
            eval 'rep_body | grep -q ",u1100@example.com,opted-out,.*unsubscribed since 20[0-9-]*; left alone"'
        check "$api --bulk $mode: no write for unsubscribed rows, no re-subscription" \
            eval '[ "$(opted_touched)" = 0 ] && [ "$(resubs)" = 0 ]'
        # (per contact: each of the 4 active rows also GETs after its 409)
        gets=3
        [ $mode = never ] && gets=7
        check "$api --bulk $mode: 3 listing pages, the info line says so" \
            eval '[ "$(listings)" = $gets ] &&
                  grep -q "$NU addresses in the account are unsubscribed (refreshed: 3 pages)" "$T/err"'
        check "$api --bulk $mode: stderr summary counts opted out" \
            eval 'tail -1 "$T/err" | grep -q "5 opted out"'
        check "$api --bulk $mode: the state directory holds the set" \
            eval 'ls "$STATE_DIR"/*/optouts >/dev/null 2>&1'
    done

    # The next run: one listing request (updated_after / modified_since),
    # and a contact who unsubscribed meanwhile is caught.
    unsubscribe a4@example.com
    l0=$(listings)
    w0=$(sb_contact_writes_attempted)
    imp --list "$LIST" --bulk never -v "$T/in.csv"
    if [ $api = v3 ]; then since=updated_after; else since=modified_since; fi
    check "$api re-run: one listing request, with $since" \
        eval '[ $(($(listings) - l0)) = 1 ] && grep -q "> GET /$api/contacts?.*&$since=" "$T/err" &&
              grep -q "refreshed: 1 page)" "$T/err"'
    check "$api re-run: unsubscribed meanwhile → opted-out, no write" \
        eval '[ "$RC" = 0 ] && [ "$(rep_status 11)" = opted-out ] &&
              [ "$(rep_count opted-out)" = 6 ] && [ "$(rep_count unchanged)" = 7 ] &&
              [ "$(sb_contact_writes_attempted)" = "$w0" ]' || explain

    # --dry-run with no saved set: lists, shows opted-out, writes nothing.
    sb_reset
    seed "$LIST"
    STATE_DIR="$T/state-$api-dry"
    imp --list "$LIST" --dry-run "$T/in.csv"
    check "$api --dry-run: opted-out rows shown, nothing written" \
        eval '[ "$RC" = 0 ] && [ "$(rep_count opted-out)" = 5 ] &&
              [ "$(rep_count dry-run)" = 8 ] && [ "$(sb_writes)" = 0 ]' || explain

    # The listing goes through the limiter: --rate 2 with 3 pages.
    sb_reset
    seed "$LIST"
    STATE_DIR="$T/state-$api-rate"
    printf 'email\nu1@example.com\nu600@example.com\n' >"$T/u.csv"
    imp --list "$LIST" --rate 2 --bulk never "$T/u.csv"
    check "$api --rate 2: busiest 1-second window ≤ 2" \
        eval '[ "$RC" = 0 ] && [ "$(sb_state contacts=0 | jq --arg k "$KEY" ".keys[\$k].busiest_1s")" -le 2 ]' ||
        explain
done

# A next link to another origin is refused: a proxy in front of the
# sandbox rewrites the listing's next link to a foreign host.
cat >"$T/proxy.py" <<'EOF'
import http.server, re, sys, urllib.request, urllib.error
UP = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def fwd(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        hd = {k: v for k, v in self.headers.items()
              if k.lower() in ("authorization", "content-type", "accept")}
        req = urllib.request.Request(UP + self.path, data=body, headers=hd,
                                     method=self.command)
        try:
            r = urllib.request.urlopen(req)
            code, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, data = e.code, e.read()
        if "status=unsubscribed" in self.path or "status=OPTOUT" in self.path:
            data = re.sub(rb'"(/v[23]/contacts\?)', rb'"http://evil.example:8443\1', data)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_DELETE = fwd
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$T/proxy.py" "$SB_URL" >"$T/proxy.port" 2>"$T/proxy.log" &
PROXY_PID=$!
_pids="$_pids $PROXY_PID"
for i in $(seq 1 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
PROXY_URL="http://127.0.0.1:$(cat "$T/proxy.port")"
use_api v3
sb_reset
seed "$LIST"
STATE_DIR="$T/state-foreign"
w0=$(sb_contact_writes_attempted)
# shellcheck disable=SC2046
CTCT_ACCESS_TOKEN=$TOKEN cts import --api v3 --api-key "$KEY" \
    --base-url "$PROXY_URL/v3" --state "$STATE_DIR" --report "$T/r.csv" \
    --list "$LIST" --bulk never "$T/in.csv"
check "foreign next link, no earlier set: refused, nothing sent, exit 69" \
    eval '[ "$RC" = 69 ] && grep -q "evil.example:8443/v3/contacts" "$T/err" &&
          [ "$(sb_contact_writes_attempted)" = "$w0" ] &&
          [ "$(rep_count deferred)" = 13 ]' || explain
# With the set a direct run saved: a warning, and the run goes on with it
# (8 days later, so that the fetch is a full one, with next links).
imp --list "$LIST" --bulk never "$T/in.csv"
CTCT_ACCESS_TOKEN=$TOKEN CTCT_SYNC_NOW=$(($(date +%s) + 8 * 86400)) cts import \
    --api v3 --api-key "$KEY" --base-url "$PROXY_URL/v3" --state "$STATE_DIR" \
    --report "$T/r.csv" --list "$LIST" --bulk never "$T/in.csv"
check "foreign next link, earlier set: warning, rows still opted-out" \
    eval '[ "$RC" = 0 ] && grep -q "warning: cannot refresh.*evil.example" "$T/err" &&
          [ "$(rep_count opted-out)" = 5 ]' || explain
kill $PROXY_PID 2>/dev/null

finish
