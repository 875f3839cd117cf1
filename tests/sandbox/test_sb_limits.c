/* test_sb_limits.c — ctct-sandbox's per-key sliding-window rate limit, daily
 * quota and busiest-1s statistic with an injected clock; fault queue
 * (order, endpoint matching, counts) and seeded random faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* the sandbox's sources are not in libcts.a: compile them in */
#include "sandbox/faults.c"
#include "sandbox/limits.c"

#define MS   1000ull
#define DAY0 (20000LL * 86400) /* some UTC midnight */

/* The policy of one check: rate, quota; the window and the foreign load
 * come from `win` and `foreign` in scope. */
#define POLICY(rate, quota)                                                    \
    (&(struct sb_limit_policy){(rate), (quota), win, foreign})

/* n requests from t0, step apart: how many were let through. */
static int let_through(struct sb_limit *l, const struct sb_limit_policy *p,
                       uint64_t t0, uint64_t step, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok +=
            sb_limit_check(l, p, t0 + (uint64_t)i * step, DAY0) == SB_LIMIT_OK;
    return ok;
}

static void test_rate_window_admitted(void **state)
{
    struct sb_limit l;
    enum sb_window win = SB_WINDOW_ADMITTED;
    long foreign = 0;
    (void)state;
    memset(&l, 0, sizeof l);
    /* 4 per second: the 5th in the same second is refused */
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            sb_limit_check(&l, POLICY(4, 0), 1000 * MS + i * MS, DAY0),
            SB_LIMIT_OK);
    assert_int_equal(
        sb_limit_check(&l, POLICY(4, 0), 1000 * MS + 500 * MS, DAY0),
        SB_LIMIT_RATE);
    /* the window is (now - 1 s, now]: at exactly +1 s the first one left */
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 1999 * MS, DAY0),
                     SB_LIMIT_RATE);
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 2000 * MS, DAY0),
                     SB_LIMIT_OK);
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 2000 * MS + 1, DAY0),
                     SB_LIMIT_RATE);
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 2001 * MS, DAY0),
                     SB_LIMIT_OK);
    /* refused requests do not use up an admitted window */
    assert_int_equal(l.throttled, 3);
    assert_int_equal(l.requests, 9);
    assert_int_equal(l.daily_used, 6);
    sb_limit_free(&l);
}

/* The default window counts every arrival, refused ones too: a client that
 * keeps sending while refused stays refused. */
static void test_rate_window_arrivals(void **state)
{
    struct sb_limit l;
    enum sb_window win = SB_WINDOW_ARRIVALS;
    long foreign = 0;
    (void)state;
    memset(&l, 0, sizeof l);
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            sb_limit_check(&l, POLICY(4, 0), 1000 * MS + i * MS, DAY0),
            SB_LIMIT_OK);
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 1500 * MS, DAY0),
                     SB_LIMIT_RATE);
    /* at +1 s the first admitted one left, but the refused arrival at 1.5 s
     * still fills the window (an admitted window would let this through) */
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 2000 * MS, DAY0),
                     SB_LIMIT_RATE);
    /* (1.6 s, 2.6 s] holds only the refused arrival at 2.0 s */
    assert_int_equal(sb_limit_check(&l, POLICY(4, 0), 2600 * MS, DAY0),
                     SB_LIMIT_OK);
    /* steady over-sending every 100 ms for 3 s: the first 4 of a fresh
     * window get through, then none while the arrivals keep coming */
    assert_int_equal(let_through(&l, POLICY(4, 0), 5000 * MS, 100 * MS, 30), 4);
    assert_int_equal(l.throttled, 2 + 26);
    assert_int_equal(l.daily_used, 4 + 1 + 4);
    sb_limit_free(&l);

    /* the same over-sending against an admitted window: 4 per second */
    struct sb_limit a;
    memset(&a, 0, sizeof a);
    win = SB_WINDOW_ADMITTED;
    assert_int_equal(let_through(&a, POLICY(4, 0), 5000 * MS, 100 * MS, 30),
                     12);
    sb_limit_free(&a);
}

/* Another client spending F requests/s of the key: a client at R requests/s
 * sees throttling exactly when R + F exceeds the rate. */
static void test_foreign_load(void **state)
{
    enum sb_window win = SB_WINDOW_ARRIVALS;
    long foreign;
    int ok;
    (void)state;
    for (foreign = 0; foreign <= 3; foreign++) {
        struct sb_limit l;
        memset(&l, 0, sizeof l);
        /* the client: 2 requests/s, evenly, for 10 s */
        int refused =
            20 - let_through(&l, POLICY(4, 0), 7000 * MS, 500 * MS, 20);
        if (foreign <= 2)
            assert_int_equal(refused, 0); /* 2 + F <= 4 */
        else
            assert_true(refused >= 19); /* 2 + 3 > 4: all but the first */
        /* the other client's arrivals are simulated, evenly spread: F per
         * second of the 10 s, plus the window it had already filled */
        assert_true(l.foreign >= (uint64_t)foreign * 10 &&
                    l.foreign <= (uint64_t)foreign * 11 + 1);
        /* busiest_1s is the client's own */
        assert_int_equal(l.busiest_1s, 2);
        sb_limit_free(&l);
    }

    /* exactly F foreign arrivals in any 1-second window, even after a long
     * pause: the client has rate - F left */
    foreign = 3;
    struct sb_limit b;
    memset(&b, 0, sizeof b);
    assert_int_equal(sb_limit_check(&b, POLICY(10, 0), 100000 * MS, DAY0),
                     SB_LIMIT_OK);
    uint64_t t = 100000 * MS + 3600 * 1000 * MS + 123457;
    assert_int_equal(let_through(&b, POLICY(10, 0), t, 0, 10), 7);
    /* the hour in between was skipped, not replayed */
    assert_true(b.foreign <= 7);
    sb_limit_free(&b);

    /* admitted window: the client gets what the other client leaves */
    win = SB_WINDOW_ADMITTED;
    struct sb_limit a;
    memset(&a, 0, sizeof a);
    /* 3 foreign arrivals already in the window */
    assert_int_equal(let_through(&a, POLICY(4, 0), 50000 * MS, 0, 8), 1);
    /* sending every 100 ms for 30 s: 4 - 3 = 1 request per second */
    ok = let_through(&a, POLICY(4, 0), 50100 * MS, 100 * MS, 300);
    assert_true(ok >= 29 && ok <= 31);
    sb_limit_free(&a);
}

static void test_busiest_counts_arrivals(void **state)
{
    struct sb_limit l;
    enum sb_window win = SB_WINDOW_ARRIVALS;
    long foreign = 0;
    (void)state;
    memset(&l, 0, sizeof l);
    /* 10 arrivals within 900 ms (6 of them refused), later 3 spread out */
    for (int i = 0; i < 10; i++)
        sb_limit_check(&l, POLICY(4, 0), 5000 * MS + (uint64_t)i * 100 * MS,
                       DAY0);
    for (int i = 0; i < 3; i++)
        sb_limit_check(&l, POLICY(4, 0), 9000 * MS + (uint64_t)i * 2000 * MS,
                       DAY0);
    assert_int_equal(l.busiest_1s, 10);
    assert_int_equal(l.throttled, 6);
    /* a client pacing itself at 4/s exactly never looks busier than 4 */
    struct sb_limit p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < 100; i++)
        assert_int_equal(
            sb_limit_check(&p, POLICY(4, 0), (uint64_t)i * 250 * MS, DAY0),
            SB_LIMIT_OK);
    assert_int_equal(p.busiest_1s, 4);
    assert_int_equal(p.throttled, 0);
    sb_limit_free(&l);
    sb_limit_free(&p);
}

static void test_quota_per_utc_day(void **state)
{
    struct sb_limit l;
    enum sb_window win = SB_WINDOW_ARRIVALS;
    long foreign = 0;
    (void)state;
    memset(&l, 0, sizeof l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sb_limit_check(&l, POLICY(0, 3),
                                        (uint64_t)i * 2000 * MS, DAY0 + 3600),
                         SB_LIMIT_OK);
    assert_int_equal(sb_limit_check(&l, POLICY(0, 3), 10000 * MS, DAY0 + 86399),
                     SB_LIMIT_QUOTA);
    /* quota wins over rate when both are exceeded */
    assert_int_equal(sb_limit_check(&l, POLICY(1, 3), 10000 * MS, DAY0 + 86399),
                     SB_LIMIT_QUOTA);
    /* 00:00:00 UTC: a new day */
    assert_int_equal(sb_limit_check(&l, POLICY(0, 3), 20000 * MS, DAY0 + 86400),
                     SB_LIMIT_OK);
    assert_int_equal(l.daily_used, 1);
    assert_int_equal(l.throttled, 2);
    sb_limit_free(&l);
}

static void test_limits_off(void **state)
{
    struct sb_limit l;
    enum sb_window win = SB_WINDOW_ARRIVALS;
    long foreign = 0;
    (void)state;
    memset(&l, 0, sizeof l);
    for (int i = 0; i < 50000; i++)
        assert_int_equal(sb_limit_check(&l, POLICY(0, 0), 7 * MS, DAY0),
                         SB_LIMIT_OK);
    assert_int_equal(l.busiest_1s, 50000);
    assert_int_equal(l.window.len, 0); /* nothing kept when rate is off */
    sb_limit_reset(&l);
    assert_int_equal(l.requests, 0);
    assert_int_equal(l.busiest_1s, 0);
}

static void test_fault_queue(void **state)
{
    (void)state;
    struct sb_faults *f = sb_faults_new(0, 1);
    sb_faults_push(f, SB_FAULT_503, NULL);
    sb_faults_push(f, SB_FAULT_DROP_AFTER, "POST /v3/contacts/sign_up_form");
    sb_faults_push(f, SB_FAULT_500, NULL);
    assert_int_equal(sb_faults_pending(f), 3);
    /* in order; a matched entry waits for its endpoint */
    assert_int_equal(
        sb_faults_next(f, "GET", "/v3/contact_lists", "/v3/contact_lists"),
        SB_FAULT_503);
    assert_int_equal(
        sb_faults_next(f, "GET", "/v3/contact_lists", "/v3/contact_lists"),
        SB_FAULT_500);
    assert_int_equal(
        sb_faults_next(f, "GET", "/v3/contact_lists", "/v3/contact_lists"),
        SB_FAULT_NONE);
    assert_int_equal(sb_faults_next(f, "POST", "/v3/contacts/sign_up_form",
                                    "/v3/contacts/sign_up_form"),
                     SB_FAULT_DROP_AFTER);
    assert_int_equal(sb_faults_pending(f), 0);
    /* match by route pattern or by concrete path */
    sb_faults_push(f, SB_FAULT_SLOW, "PUT /v3/contacts/{id}");
    sb_faults_push(f, SB_FAULT_429, "PUT /v2/contacts/7");
    assert_int_equal(
        sb_faults_next(f, "PUT", "/v2/contacts/{id}", "/v2/contacts/7"),
        SB_FAULT_429);
    assert_int_equal(
        sb_faults_next(f, "GET", "/v3/contacts/{id}", "/v3/contacts/x"),
        SB_FAULT_NONE);
    assert_int_equal(
        sb_faults_next(f, "PUT", "/v3/contacts/{id}", "/v3/contacts/x"),
        SB_FAULT_SLOW);
    assert_int_equal(sb_faults_count(f, SB_FAULT_503), 1);
    assert_int_equal(sb_faults_count(f, SB_FAULT_SLOW), 1);
    sb_faults_clear(f);
    assert_int_equal(sb_faults_count(f, SB_FAULT_503), 0);
    sb_faults_free(f);
}

static void test_fault_json(void **state)
{
    (void)state;
    struct sb_faults *f = sb_faults_new(0, 1);
    struct cts_error err = {0};
    json_t *j = json_loads("{\"faults\":[\"500\",\"drop_before\"],"
                           "\"match\":\"POST /v2/contacts\"}",
                           0, NULL);
    assert_int_equal(sb_faults_load_json(f, j, &err), 0);
    json_decref(j);
    assert_int_equal(sb_faults_pending(f), 2);
    j = json_loads("[{\"faults\":[\"slow\"]},{\"faults\":[\"429\"]}]", 0, NULL);
    assert_int_equal(sb_faults_load_json(f, j, &err), 0);
    json_decref(j);
    assert_int_equal(sb_faults_pending(f), 4);
    /* an unknown kind rejects the whole request */
    j = json_loads("{\"faults\":[\"503\",\"boom\"]}", 0, NULL);
    assert_int_not_equal(sb_faults_load_json(f, j, &err), 0);
    json_decref(j);
    assert_int_equal(sb_faults_pending(f), 4);
    j = json_loads("{\"faults\":\"503\"}", 0, NULL);
    assert_int_not_equal(sb_faults_load_json(f, j, &err), 0);
    json_decref(j);
    assert_int_equal(sb_fault_parse("drop_after"), SB_FAULT_DROP_AFTER);
    assert_int_equal(sb_fault_parse("nope"), SB_FAULT_NONE);
    assert_string_equal(sb_fault_name(SB_FAULT_503), "503");
    sb_faults_free(f);
}

static void test_random_faults_seeded(void **state)
{
    (void)state;
    struct sb_faults *a = sb_faults_new(0.3, 42), *b = sb_faults_new(0.3, 42);
    int hits = 0;
    for (int i = 0; i < 10000; i++) {
        enum sb_fault x = sb_faults_next(a, "GET", "/x", "/x");
        enum sb_fault y = sb_faults_next(b, "GET", "/x", "/x");
        assert_int_equal(x, y);
        /* random faults never throttle, nor echo the token (both are
         * scripted only) */
        assert_true(x != SB_FAULT_429 && x != SB_FAULT_400_ECHO);
        hits += x != SB_FAULT_NONE;
    }
    /* 30 % of 10000 with a wide margin */
    assert_true(hits > 2500 && hits < 3500);
    for (int k = SB_FAULT_500; k < SB_FAULT__COUNT; k++)
        if (k != SB_FAULT_429 && k != SB_FAULT_400_ECHO)
            assert_true(sb_faults_count(a, (enum sb_fault)k) > 300);
    sb_faults_free(a);
    sb_faults_free(b);
    struct sb_faults *none = sb_faults_new(0, 1);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sb_faults_next(none, "GET", "/x", "/x"),
                         SB_FAULT_NONE);
    sb_faults_free(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_window_admitted),
        cmocka_unit_test(test_rate_window_arrivals),
        cmocka_unit_test(test_foreign_load),
        cmocka_unit_test(test_busiest_counts_arrivals),
        cmocka_unit_test(test_quota_per_utc_day),
        cmocka_unit_test(test_limits_off),
        cmocka_unit_test(test_fault_queue),
        cmocka_unit_test(test_fault_json),
        cmocka_unit_test(test_random_faults_seeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
