/* test_limiter.c — the sliding-log limiter on a fake clock (no sleeping). */
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

static void test_burst_then_wait(void **state)
{
    struct cts_limiter l;
    uint64_t now = 5000;
    int i;
    (void)state;
    cts_limiter_init(&l, 4, fake_now, &now);
    for (i = 0; i < 4; i++)
        assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(cts_limiter_wait_ms(&l), 1000 + CTS_LIMITER_MARGIN_MS);
    now += 1000 + CTS_LIMITER_MARGIN_MS - 1;
    assert_int_equal(cts_limiter_wait_ms(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    now += 1;
    assert_int_equal(cts_limiter_wait_ms(&l), 0);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 0);
    assert_int_equal(l.starts, 8);
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
    /* Exactly the contract: N starts (not fewer: no wasted slots) in a
     * window of 1000 + margin ms, never N + 1. */
    assert_int_equal(busiest(starts, total, 1000 + CTS_LIMITER_MARGIN_MS), n);
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
    assert_int_equal(cts_limiter_wait_ms(&l), 2000 + CTS_LIMITER_MARGIN_MS);
    now += 2000 + CTS_LIMITER_MARGIN_MS;
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
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_try_take(&l), 1);
    assert_int_equal(cts_limiter_wait_ms(&l), 1000); /* margin 0 */
    cts_limiter_free(&l);
    cts_limiter_free(&l); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_random_rate4),
        cmocka_unit_test(test_random_other_rates),
        cmocka_unit_test(test_saturation_rate),
        cmocka_unit_test(test_slow_rate),
        cmocka_unit_test(test_pause_and_margin),
    };
    return cmocka_run_group_tests_name("limiter", tests, NULL, NULL);
}
