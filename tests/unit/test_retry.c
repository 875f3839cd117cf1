/* test_retry.c — classification table and delay bounds of retry.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_http.h"
#include "cts_retry.h"

struct row {
    enum cts_api api;
    long status;
    int xe;
    const char *key;
    enum cts_outcome_class want;
};

static const struct row table[] = {
    /* success */
    {CTS_API_V3, 200, 0, NULL, CTS_OC_OK},
    {CTS_API_V3, 201, 0, NULL, CTS_OC_OK},
    {CTS_API_V2, 204, 0, NULL, CTS_OC_OK},
    /* v3 429 bodies: single objects, throttled (per second) or
     * quota_exceeded (daily) */
    {CTS_API_V3, 429, 0, "throttled", CTS_OC_THROTTLED},
    {CTS_API_V3, 429, 0, "quota_exceeded", CTS_OC_QUOTA},
    {CTS_API_V3, 429, 0, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 429, 0, "too_many_activities", CTS_OC_TRANSIENT},
    /* v2 403 Mashery bodies: over.qps (per second), over.ratelimit
     * (daily) */
    {CTS_API_V2, 403, 0, "mashery.not.authorized.over.qps", CTS_OC_THROTTLED},
    {CTS_API_V2, 403, 0, "mashery.not.authorized.over.ratelimit", CTS_OC_QUOTA},
    {CTS_API_V2, 403, 0, "mashery.not.authorized.inactive", CTS_OC_PERMANENT},
    {CTS_API_V3, 403, 0, NULL, CTS_OC_PERMANENT},
    /* auth */
    {CTS_API_V3, 401, 0, "unauthorized", CTS_OC_AUTH},
    {CTS_API_V2, 401, 0, "http.status.authentication.invalid_token",
     CTS_OC_AUTH},
    /* transient statuses: the curl tool's list */
    {CTS_API_V3, 408, 0, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 500, 0, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V2, 502, 0, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 503, 0, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 504, 0, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 501, 0, NULL, CTS_OC_PERMANENT},
    {CTS_API_V3, 505, 0, NULL, CTS_OC_PERMANENT},
    /* permanent row errors */
    {CTS_API_V3, 400, 0, "contacts.api.validation.error", CTS_OC_PERMANENT},
    {CTS_API_V3, 404, 0, NULL, CTS_OC_PERMANENT},
    {CTS_API_V2, 409, 0, "http.status.email_address.conflict",
     CTS_OC_PERMANENT},
    {CTS_API_V3, 415, 0, NULL, CTS_OC_PERMANENT},
    {CTS_API_V3, 302, 0, NULL, CTS_OC_PERMANENT},
    /* transport classes: a transport error wins over any status */
    {CTS_API_V3, 0, CTS_XE_TIMEOUT, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 0, CTS_XE_CONNECT, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 0, CTS_XE_RESOLVE, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 0, CTS_XE_SEND, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V2, 0, CTS_XE_RECV, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 200, CTS_XE_RECV, NULL, CTS_OC_TRANSIENT},
    {CTS_API_V3, 0, CTS_XE_TLS, NULL, CTS_OC_PERMANENT},
    {CTS_API_V3, 200, CTS_XE_TOOBIG, NULL, CTS_OC_PERMANENT},
    {CTS_API_V3, 0, CTS_XE_OTHER, NULL, CTS_OC_PERMANENT},
    {CTS_API_V3, 0, CTS_XE_ABORTED, NULL, CTS_OC_PERMANENT},
};

static void test_classify_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        enum cts_outcome_class got = cts_retry_classify(
            table[i].api, table[i].status, table[i].xe, table[i].key);
        if (got != table[i].want)
            fail_msg("row %zu: status %ld xe %d key %s: got %s, want %s", i,
                     table[i].status, table[i].xe,
                     table[i].key ? table[i].key : "-", cts_outcome_name(got),
                     cts_outcome_name(table[i].want));
    }
}

static void test_delay_full_jitter_bounds(void **state)
{
    int attempt;
    uint32_t r;
    (void)state;
    for (attempt = 1; attempt <= 12; attempt++) {
        uint64_t ceil = 1000ull << attempt;
        uint64_t lo = UINT64_MAX, hi = 0;
        if (ceil > 60000)
            ceil = 60000;
        for (r = 0; r < 4000; r++) {
            uint32_t rnd = r * 1073741u + 12345u; /* spread over 2^32 */
            uint64_t d = cts_retry_delay_ms(attempt, -1, 1000, 60000, rnd);
            assert_true(d >= 1);
            assert_true(d < ceil);
            if (d < lo)
                lo = d;
            if (d > hi)
                hi = d;
        }
        /* Full jitter really spreads over [0, ceil): not a constant. */
        assert_true(lo < ceil / 10);
        assert_true(hi > ceil - ceil / 10);
    }
    /* Extremes of the random input. */
    assert_int_equal(cts_retry_delay_ms(1, -1, 1000, 60000, 0), 1);
    assert_int_equal(cts_retry_delay_ms(1, -1, 1000, 60000, UINT32_MAX), 1999);
    assert_true(cts_retry_delay_ms(60, -1, 1000, 60000, UINT32_MAX) < 60000);
    /* Huge attempt counts do not overflow. */
    assert_true(cts_retry_delay_ms(1000, -1, 1000, 60000, UINT32_MAX) <= 60000);
}

static void test_delay_retry_after(void **state)
{
    (void)state;
    assert_int_equal(cts_retry_delay_ms(1, 0, 1000, 60000, 77), 0);
    assert_int_equal(cts_retry_delay_ms(1, 3, 1000, 60000, 77), 3000);
    /* Longer than our cap: the server's word wins... */
    assert_int_equal(cts_retry_delay_ms(1, 120, 1000, 60000, 77), 120000);
    /* ...up to one hour. */
    assert_int_equal(cts_retry_delay_ms(1, 86400, 1000, 60000, 77),
                     CTS_RETRY_AFTER_MAX_MS);
    assert_int_equal(cts_retry_delay_ms(1, 2147483647L, 1000, 60000, 77),
                     CTS_RETRY_AFTER_MAX_MS);
}

static void test_next_budget(void **state)
{
    struct cts_retry_policy p;
    uint64_t d;
    int a;
    (void)state;
    cts_retry_policy_default(&p);
    assert_int_equal(p.max_retries, 6);
    /* Attempts 1..6 may retry, the 7th attempt is the last. */
    for (a = 1; a <= 6; a++) {
        assert_int_equal(
            cts_retry_next(&p, CTS_OC_TRANSIENT, a, 0, -1, 0x80000000u, &d), 1);
        assert_true(d >= 1 && d <= 60000);
    }
    assert_int_equal(cts_retry_next(&p, CTS_OC_TRANSIENT, 7, 0, -1, 1, &d), 0);
    /* Final classes never retry. */
    assert_int_equal(cts_retry_next(&p, CTS_OC_OK, 1, 0, -1, 1, &d), 0);
    assert_int_equal(cts_retry_next(&p, CTS_OC_PERMANENT, 1, 0, -1, 1, &d), 0);
    assert_int_equal(cts_retry_next(&p, CTS_OC_QUOTA, 1, 0, -1, 1, &d), 0);
    assert_int_equal(cts_retry_next(&p, CTS_OC_AUTH, 1, 0, -1, 1, &d), 0);
    /* Throttling waits out the API's 1-second window. */
    assert_int_equal(cts_retry_next(&p, CTS_OC_THROTTLED, 1, 0, -1, 0, &d), 1);
    assert_true(d >= 1000);
    /* ...unless the server said exactly how long. */
    assert_int_equal(cts_retry_next(&p, CTS_OC_THROTTLED, 1, 0, 2, 0, &d), 1);
    assert_int_equal(d, 2000);
    /* Time budget. */
    p.max_elapsed_ms = 10000;
    assert_int_equal(cts_retry_next(&p, CTS_OC_TRANSIENT, 1, 9990, 5, 0, &d),
                     0);
    assert_int_equal(cts_retry_next(&p, CTS_OC_TRANSIENT, 1, 1000, 5, 0, &d),
                     1);
    assert_int_equal(d, 5000);
}

static void test_midnight(void **state)
{
    (void)state;
    /* 2026-11-28T00:00:00Z = 1795824000 */
    assert_int_equal(cts_retry_ms_until_utc_midnight(1795824000), 86400000u);
    assert_int_equal(cts_retry_ms_until_utc_midnight(1795824000 + 86399),
                     1000u);
    assert_int_equal(cts_retry_ms_until_utc_midnight(1795824000 + 3600),
                     82800000u);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cts_outcome_name(CTS_OC_THROTTLED), "throttled");
    assert_string_equal(cts_outcome_name(CTS_OC_QUOTA), "quota");
    assert_string_equal(cts_xfer_error_name(CTS_XE_TIMEOUT), "timeout");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_delay_full_jitter_bounds),
        cmocka_unit_test(test_delay_retry_after),
        cmocka_unit_test(test_next_budget),
        cmocka_unit_test(test_midnight),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
