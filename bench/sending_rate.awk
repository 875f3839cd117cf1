# sending_rate.awk — requests per second a ctct-sandbox let through while a
# run was sending, from its --verbose stderr with each line prefixed by
# the time it was written ("1765050000.123 ctct-sandbox: POST /v3/contacts
# -> 201"; the reply's time: arrival + --latency-ms).  Counted from the
# first contact write (the account and list checks before it go one at a
# time) to the last reply; throttled replies (429, 403) are not counted.
# Prints the rate, e.g. "3.912".  Used by scripts/bench and
# tests/integration/test_pace.sh.
$2 == "ctct-sandbox:" && ($3 == "POST" || $3 == "PUT") && $4 ~ /^\/v[23]\/contacts/ { go = 1 }
go && $2 == "ctct-sandbox:" && $NF != 429 && $NF != 403 {
    if (!n++) t0 = $1
    t1 = $1
}
END { printf "%.3f\n", (t1 > t0 ? (n - 1) / (t1 - t0) : 0) }
