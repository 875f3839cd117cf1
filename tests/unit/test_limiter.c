/*
 * test_limiter.c — the key's pace on a fake clock (no sleeping): even
 * spacing, never more than N in a window as the server counts arrivals,
 * slots held by requests that may open a connection, the margin learned
 * from round trips, throttling replies lowering the pace and its
 * recovery, --rate 0's adaptive cap, and a simulated server shared with
 * another client.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_limiter.h"

static uint64_t fake_now(void *arg)
{
    return *(uint64_t *)arg;
}

/* Deterministic xorshift so failures reproduce. */
static uint32_t rng(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* The largest number of times in any half-open window [t, t+w): the way a
 * server with a 1-second sliding window counts. */
static unsigned busiest(const uint64_t *t, size_t n, uint64_t w)
{
    size_t i, j = 0;
    unsigned best = 0;
    for (i = 0; i < n; i++) {
        while (t[i] - t[j] >= w)
            j++;
        if (i - j + 1 > best)
            best = (unsigned)(i - j + 1);
    }
    return best;
}

/* Starts are spaced evenly, (1000 + margin) / N ms apart: no burst. */
static void test_even_spacing(void **state)
{
    struct cts_limiter l;
    uint64_t now = 5000, prev = 0;
    int i;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(cts_limiter_wait_ms(&l),
                     (1000 + CTS_LIMITER_MARGIN_MS) / 4);
    now += (1000 + CTS_LIMITER_MARGIN_MS) / 4 - 1;
    assert_int_equal(cts_limiter_wait_ms(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    now += 1;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    /* A timer that always fires when told: every gap the same. */
    prev = now;
    for (i = 0; i < 40; i++) {
        now += cts_limiter_wait_ms(&l);
        assert_int_equal(cts_limiter_try_take(&l), 1);
        assert_int_equal(now - prev, (1000 + CTS_LIMITER_MARGIN_MS) / 4);
        assert_int_equal(cts_limiter_try_take(&l), 0);
        prev = now;
    }
    assert_int_equal(l.starts, 42);
    cts_limiter_free(&l);
}

static void test_off(void **state)
{
    struct cts_limiter l;
    uint64_t now = 0;
    int i;
    (void)state;
    cts_limiter_init(&l, 0, fake_now, &now);
    for (i = 0; i < 100000; i++)
        assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_wait_ms(&l), 0);
    cts_limiter_free(&l);
}

/* Random arrivals of demand over 10,000 starts: never more than N in any
 * 1000-ms window, even after adding up to margin-1 ms of network jitter
 * to each start (arrival at the server). */
static void random_demand(double rate, unsigned n, uint32_t seed)
{
    struct cts_limiter l;
    uint64_t now = 1000000, *starts, *arrivals;
    size_t k = 0, total = 10000;
    uint32_t s = seed;

    starts = calloc(total, sizeof(*starts));
    arrivals = calloc(total, sizeof(*arrivals));
    assert_non_null(starts);
    assert_non_null(arrivals);
    cts_limiter_init(&l, rate, fake_now, &now);
    while (k < total) {
        /* A mix of bursts (several asks at one instant), timer wake-ups
         * exactly when told, and idle gaps. */
        uint32_t r = rng(&s) % 10;
        if (r < 5) {
            unsigned burst = 1 + rng(&s) % 8, b;
            for (b = 0; b < burst && k < total; b++)
                if (cts_limiter_try_take(&l))
                    starts[k++] = now;
            now += rng(&s) % 50;
        } else if (r < 8) {
            now += cts_limiter_wait_ms(&l);
            if (cts_limiter_try_take(&l))
                starts[k++] = now;
            else
                fail_msg("try_take failed after wait_ms");
        } else {
            now += rng(&s) % 3000;
        }
    }
    for (k = 0; k < total; k++)
        arrivals[k] = starts[k] + rng(&s) % CTS_LIMITER_MARGIN_MS;
    /* Jitter can reorder arrivals; the server sees them sorted. */
    for (k = 1; k < total; k++) {
        size_t j = k;
        while (j > 0 && arrivals[j - 1] > arrivals[j]) {
            uint64_t t = arrivals[j];
            arrivals[j] = arrivals[j - 1];
            arrivals[j - 1] = t;
            j--;
        }
    }
    assert_true(busiest(starts, total, 1000) <= n);
    assert_true(busiest(arrivals, total, 1000) <= n);
    /* The margin too: never N + 1 in 1000 + margin ms. */
    assert_true(busiest(starts, total, 1000 + CTS_LIMITER_MARGIN_MS) <= n);
    /* Evenly: a start late by less than half an interval lets the next
     * keep its time, never sooner. */
    for (k = 1; k < total; k++)
        assert_true(2 * (starts[k] - starts[k - 1]) >=
                    (1000 + CTS_LIMITER_MARGIN_MS) / n);
    cts_limiter_free(&l);
    free(starts);
    free(arrivals);
}

static void test_random_rate4(void **state)
{
    (void)state;
    random_demand(4, 4, 2463534242u);
    random_demand(4, 4, 88172645u);
}

static void test_random_other_rates(void **state)
{
    (void)state;
    random_demand(1, 1, 1u);
    random_demand(10, 10, 7u);
    random_demand(20, 20, 99u);
    random_demand(2.5, 2, 42u); /* fractional: floor, never 3 in a second */
}

/* Unlimited demand, a timer that fires up to 2 ms late (a loaded loop):
 * achieved/allowed over 30 s and over 10 minutes stays >= 0.97. */
static void test_saturation_rate(void **state)
{
    static const double rates[] = {4, 10, 20};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        struct cts_limiter l;
        uint64_t t0 = 777, now = t0, count = 0;
        uint32_t s = 5;
        uint64_t spans[2] = {30000, 600000};
        size_t sp;
        for (sp = 0; sp < 2; sp++) {
            now = t0;
            count = 0;
            cts_limiter_init(&l, rates[i], fake_now, &now);
            while (now < t0 + spans[sp]) {
                while (cts_limiter_try_take(&l))
                    count++;
                now += cts_limiter_wait_ms(&l) + rng(&s) % 3;
            }
            {
                double achieved = (double)count / ((double)spans[sp] / 1000.0);
                if (achieved < 0.97 * rates[i])
                    fail_msg("rate %.0f over %llu ms: achieved %.3f/s",
                             rates[i], (unsigned long long)spans[sp], achieved);
            }
            cts_limiter_free(&l);
        }
    }
}

static void test_slow_rate(void **state)
{
    struct cts_limiter l;
    uint64_t now = 0;
    (void)state;
    cts_limiter_init(&l, 0.5, fake_now, &now); /* one per 2 s */
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(cts_limiter_wait_ms(&l),
                     2 * (1000 + CTS_LIMITER_MARGIN_MS));
    now += 2000 + CTS_LIMITER_MARGIN_MS;
    assert_int_equal(cts_limiter_try_take(&l), 0);
    now += CTS_LIMITER_MARGIN_MS;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    cts_limiter_free(&l);
}

static void test_pause_and_margin(void **state)
{
    struct cts_limiter l;
    uint64_t now = 100;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    cts_limiter_set_margin(&l, 0);
    cts_limiter_pause(&l, 1500);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(cts_limiter_wait_ms(&l), 1500);
    cts_limiter_pause(&l, 10); /* never shortens */
    assert_int_equal(cts_limiter_wait_ms(&l), 1500);
    now += 1500;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_wait_ms(&l), 250); /* margin 0 */
    cts_limiter_free(&l);
    cts_limiter_free(&l); /* idempotent */
}

/* A request that may open a connection holds its slot until its reply,
 * then counts from the reply's time: its arrival lies somewhere before. */
static void test_cold_holds_until_reply(void **state)
{
    struct cts_limiter l;
    uint64_t now = 0;
    (void)state;
    cts_limiter_init(&l, 2, fake_now, &now);
    cts_limiter_set_margin(&l, 20);
    assert_int_equal(cts_limiter_try_start(&l, 1), 1); /* held */
    now = 510;
    assert_int_equal(cts_limiter_try_start(&l, 0), 1); /* logged at 510 */
    /* Two in the window as far as we know: the next waits for the warm
     * one to leave it (the cold one is still out). */
    now = 1100;
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(cts_limiter_wait_ms(&l), 510 + 1020 - 1100);
    now = 1200;
    cts_limiter_release(&l); /* its reply: logged at 1200 */
    now = 1530;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_wait_ms(&l), 1200 + 1020 - 1530);
    /* Only held slots: nothing but a reply frees one. */
    now = 5000;
    assert_int_equal(cts_limiter_try_start(&l, 1), 1);
    now = 5600;
    assert_int_equal(cts_limiter_try_start(&l, 1), 1);
    now = 9000;
    assert_int_equal(cts_limiter_wait_ms(&l), CTS_LIMITER_WAIT_REPLY);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    cts_limiter_release(&l); /* logged at 9000; the other still held */
    assert_int_equal(cts_limiter_wait_ms(&l), 1020);
    cts_limiter_free(&l);
}

/* A reply rtt_ms after a start now. */
static void rtt(struct cts_limiter *l, uint64_t *now, uint64_t rtt_ms)
{
    uint64_t start = *now;
    *now += rtt_ms;
    cts_limiter_note_reply(l, start);
}

/* A reply slower than the fastest by more than the margin: its request
 * may have arrived that much later, and the next starts keep a window
 * from that later time. */
static void test_slow_reply_moves_its_arrival(void **state)
{
    struct cts_limiter l;
    uint64_t now = 10000, s0;
    int i;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    cts_limiter_set_margin(&l, 20);
    for (i = 0; i < 10; i++)
        rtt(&l, &now, 400);
    now += 5000;
    s0 = now;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    now = s0 + 255;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    now = s0 + 510;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    now = s0 + 600; /* the first one's reply: 200 ms slower than ever */
    cts_limiter_note_reply(&l, s0);
    now = s0 + 665; /* the second's: 10 ms slower, within the margin */
    cts_limiter_note_reply(&l, s0 + 255);
    now = s0 + 765;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    /* By the pace the next could go at s0 + 1020; by the first one's
     * latest arrival, s0 + 200, not before s0 + 1220. */
    now = s0 + 1020;
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(cts_limiter_wait_ms(&l), 200);
    cts_limiter_free(&l);
}

/* Steady round trips shrink the margin (the pace nears the rate); a
 * jittery connection widens it. */
static void test_margin_learned(void **state)
{
    struct cts_limiter l;
    uint64_t now = 0;
    uint32_t s = 3;
    int i;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    assert_int_equal(l.margin_ms, CTS_LIMITER_MARGIN_MS);
    for (i = 0; i < 40; i++)
        rtt(&l, &now, 400 + rng(&s) % 2);
    assert_true(l.margin_ms >= CTS_LIMITER_MARGIN_MIN_MS);
    assert_true(l.margin_ms <= CTS_LIMITER_MARGIN_MIN_MS + 3);
    for (i = 0; i < 40; i++)
        rtt(&l, &now, 400 + rng(&s) % 80);
    assert_true(l.margin_ms >= 60);
    for (i = 0; i < 40; i++)
        rtt(&l, &now, 100000);
    assert_int_equal(l.margin_ms, CTS_LIMITER_MARGIN_MAX_MS);
    cts_limiter_free(&l);
}

/* Take every slot for ms, an admitted reply for each start. */
static void run_for(struct cts_limiter *l, uint64_t *now, uint64_t ms)
{
    uint64_t end = *now + ms;
    while (*now < end) {
        uint64_t w = cts_limiter_wait_ms(l);
        if (w > 0) {
            *now += w;
            continue;
        }
        assert_int_equal(cts_limiter_try_take(l), 1);
        cts_limiter_note_ok(l);
    }
}

/* A throttling reply lowers the pace for every start (once per window of
 * the server), which then comes back to --rate with quiet time. */
static void test_throttle_cut_and_recovery(void **state)
{
    struct cts_limiter l;
    uint64_t now = 1000, cut_at;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    cts_limiter_set_margin(&l, 0);
    run_for(&l, &now, 5000);
    assert_true(cts_limiter_pace(&l) == 4.0);
    /* Four admitted in the last second: 0.85 x 4. */
    assert_int_equal(cts_limiter_note_throttled(&l, now - 100), 1);
    cut_at = now;
    assert_true(fabs(cts_limiter_pace(&l) - 3.4) < 1e-9);
    /* ceil(1000 / 3.4) after the last start, 250 ms ago. */
    assert_int_equal(cts_limiter_wait_ms(&l), 295 - 250);
    /* Requests started before the cut, or in the second after it, were
     * answered by that cut. */
    assert_int_equal(cts_limiter_note_throttled(&l, now - 50), 0);
    now += 900;
    assert_int_equal(cts_limiter_note_throttled(&l, now - 10), 0);
    assert_int_equal(l.cuts, 1);
    assert_int_equal(l.throttles, 3);
    /* Quickly back to 0.9 x 4, then slowly over 20 s. */
    now = cut_at + 500;
    assert_true(fabs(cts_limiter_pace(&l) - 3.6) < 1e-6);
    now = cut_at + 10500;
    assert_true(fabs(cts_limiter_pace(&l) - 3.8) < 1e-6);
    now = cut_at + 20500;
    assert_true(cts_limiter_pace(&l) == 4.0);
    /* Spacing follows the pace all along. */
    now = cut_at + 1000;
    run_for(&l, &now, 5000);
    assert_true(l.adapting);
    now = cut_at + 60000;
    run_for(&l, &now, 1000);
    assert_int_equal(l.adapting, 0);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_wait_ms(&l), 250);
    /* A later throttling reply cuts again. */
    assert_int_equal(cts_limiter_note_throttled(&l, now - 300), 1);
    assert_int_equal(l.cuts, 2);
    cts_limiter_free(&l);
}

/* --rate 0: no cap until a throttling reply installs one from what the
 * key let through; the cap grows and goes away. */
static void test_rate0_adaptive_cap(void **state)
{
    struct cts_limiter l;
    uint64_t now = 1000;
    int i;
    (void)state;
    cts_limiter_init(&l, 0, fake_now, &now);
    for (i = 0; i < 1000; i++)
        assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_true(cts_limiter_pace(&l) == 0);
    /* Three let through at once (a burst): at most one more than that
     * per second. */
    for (i = 0; i < 3; i++)
        cts_limiter_note_ok(&l);
    now += 10;
    assert_int_equal(cts_limiter_note_throttled(&l, now - 5), 1);
    assert_true(fabs(cts_limiter_pace(&l) - 3.4) < 1e-9);
    /* One interval (ceil(1020 / 3.4)) after the last start. */
    assert_int_equal(cts_limiter_wait_ms(&l), 300 - 10);
    now += 290;
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    /* 1020 / 3.4, a little less as the pace grows back already. */
    assert_in_range(cts_limiter_wait_ms(&l), 285, 300);
    now += 5000;
    assert_true(cts_limiter_pace(&l) > 3.4);
    assert_true(cts_limiter_pace(&l) < 4);
    now += 60000;
    assert_true(cts_limiter_pace(&l) == 0); /* grown past 4 x 4: gone */
    for (i = 0; i < 100; i++)
        assert_int_equal(cts_limiter_try_take(&l), 1);
    cts_limiter_free(&l);
}

/*
 * A server counting arrivals in a sliding 1-second window (refused ones
 * too), 4 per second, shared with another client sending 2 per second
 * evenly; 100 ms round trips.  Our limiter at --rate 4 with every
 * throttled request sent again: over 3 minutes it gets >= 0.8 of the 2
 * per second left, and throttling replies stay under 5 % of the requests
 * let through.
 */
#define SIM_MS  180000
#define SIM_CAP 2048
static void test_shared_key_simulated(void **state)
{
    struct cts_limiter l;
    uint64_t now, win[64], arrive[SIM_CAP], reply[SIM_CAP], start[SIM_CAP];
    int refused[SIM_CAP];
    size_t nwin = 0, wh = 0, nreq = 0, i;
    long ok = 0, throttled = 0;
    uint32_t s = 11;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    for (now = 0; now < SIM_MS; now++) {
        int foreign = now % 500 == 0;
        /* Arrivals in time order, the other client's first. */
        for (i = 0; i < nreq + (size_t)foreign; i++) {
            int ours = i < nreq;
            if (ours && arrive[i] != now)
                continue;
            while (nwin > 0 && win[wh] + 1000 <= now) {
                wh = (wh + 1) % 64;
                nwin--;
            }
            win[(wh + nwin) % 64] = now;
            nwin++;
            if (ours) {
                refused[i] = nwin > 4;
                reply[i] = now + 50;
            }
        }
        for (i = 0; i < nreq; i++) {
            if (reply[i] != now)
                continue;
            if (refused[i]) {
                throttled++;
                cts_limiter_note_throttled(&l, start[i]);
            } else {
                ok++;
                cts_limiter_note_ok(&l);
            }
            cts_limiter_note_reply(&l, start[i]);
        }
        if (nreq < SIM_CAP && cts_limiter_try_take(&l)) {
            start[nreq] = now;
            arrive[nreq] = now + 50 + rng(&s) % 3;
            reply[nreq] = 0;
            nreq++;
        }
    }
    if (ok < (long)(0.8 * 2 * SIM_MS / 1000))
        fail_msg("let through %ld in %d s: %.2f/s of 2", ok, SIM_MS / 1000,
                 (double)ok * 1000 / SIM_MS);
    if (throttled > ok / 20)
        fail_msg("%ld throttled for %ld let through", throttled, ok);
    print_message("shared key: %.2f/s let through, %ld throttled\n",
                  (double)ok * 1000 / SIM_MS, throttled);
    cts_limiter_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_even_spacing),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_random_rate4),
        cmocka_unit_test(test_random_other_rates),
        cmocka_unit_test(test_saturation_rate),
        cmocka_unit_test(test_slow_rate),
        cmocka_unit_test(test_pause_and_margin),
        cmocka_unit_test(test_cold_holds_until_reply),
        cmocka_unit_test(test_margin_learned),
        cmocka_unit_test(test_slow_reply_moves_its_arrival),
        cmocka_unit_test(test_throttle_cut_and_recovery),
        cmocka_unit_test(test_rate0_adaptive_cap),
        cmocka_unit_test(test_shared_key_simulated),
    };
    return cmocka_run_group_tests_name("limiter", tests, NULL, NULL);
}
