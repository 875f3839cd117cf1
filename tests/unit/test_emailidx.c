/* test_emailidx.c — the compact email index: correctness, growth, sort, and
 * the memory of one million entries (measured, not just computed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_state.h"
#include "cts_util.h"
#include "emailidx.h"

#if defined(__SANITIZE_ADDRESS__)
#define RSS_BUDGET_KIB (24 * 1024)
#elif defined(__SANITIZE_THREAD__)
/* ThreadSanitizer shadows every byte the table touches several times. */
#define RSS_BUDGET_KIB (160 * 1024)
#else
#define RSS_BUDGET_KIB (20 * 1024)
#endif

static uint64_t key_of(size_t i)
{
    char email[64];
    snprintf(email, sizeof(email), "user%zu@example.com", i);
    return cts_state_email_key(email);
}

static void test_insert_find(void **state)
{
    struct cts_emailidx ix;
    int created = -1;
    size_t i;
    (void)state;
    cts_emailidx_init(&ix);
    assert_null(cts_emailidx_find(&ix, 42));
    /* Without reserve: grows through several rehashes, keeps every entry. */
    for (i = 0; i < 20000; i++) {
        struct cts_eslot *s = cts_emailidx_insert(&ix, key_of(i), &created);
        assert_int_equal(created, 1);
        s->row = (uint32_t)i + 1;
        s->fp = (uint32_t)(i * 7);
    }
    assert_int_equal(ix.n, 20000);
    for (i = 0; i < 20000; i++) {
        struct cts_eslot *s = cts_emailidx_find(&ix, key_of(i));
        assert_non_null(s);
        assert_int_equal(s->row, i + 1);
        assert_int_equal(s->fp, (uint32_t)(i * 7));
    }
    assert_null(cts_emailidx_find(&ix, key_of(20000)));
    cts_emailidx_insert(&ix, key_of(5), &created);
    assert_int_equal(created, 0);
    assert_int_equal(ix.n, 20000);
    /* Load factor stays <= 0.85. */
    assert_true(ix.n * 100 <= ix.cap * 85);
    cts_emailidx_free(&ix);
}

static void test_sort(void **state)
{
    struct cts_emailidx ix;
    size_t i, n;
    (void)state;
    cts_emailidx_init(&ix);
    for (i = 0; i < 5000; i++)
        cts_emailidx_insert(&ix, key_of(i), NULL)->fp = (uint32_t)i;
    n = cts_emailidx_sort(&ix);
    assert_int_equal(n, 5000);
    for (i = 1; i < n; i++)
        assert_true(cts_eslot_key(&ix.slots[i - 1]) <
                    cts_eslot_key(&ix.slots[i]));
    cts_emailidx_free(&ix);
}

static long rss_kb(void)
{
    /* VmRSS from /proc/self/status: what the 32 MiB budget is about. */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void test_million(void **state)
{
    struct cts_emailidx ix;
    size_t i, dup = 0;
    long before, after;
    (void)state;
    before = rss_kb();
    cts_emailidx_init(&ix);
    cts_emailidx_reserve(&ix, 1000000);
    for (i = 0; i < 1000000; i++) {
        int created;
        struct cts_eslot *s = cts_emailidx_insert(&ix, key_of(i), &created);
        if (!created)
            dup++;
        s->row = (uint32_t)i + 1;
    }
    after = rss_kb();
    /* 56-bit keys: a collision among a million is ~7e-6 likely. */
    assert_int_equal(dup, 0);
    assert_int_equal(ix.n, 1000000);
    /* Reserved once: 1,000,000 / 0.85 slots of 16 bytes, ~18.8 MB. */
    assert_true(cts_emailidx_bytes(&ix) <= 19u * 1000 * 1000);
    print_message("email index: %zu entries, %zu bytes (%.1f B/email), "
                  "RSS +%ld KiB\n",
                  ix.n, cts_emailidx_bytes(&ix),
                  (double)cts_emailidx_bytes(&ix) / (double)ix.n,
                  after - before);
    /* The table itself is 18,383 KiB; ASan adds 1/8 of shadow memory. */
    if (before > 0 && after > 0)
        assert_true(after - before <= RSS_BUDGET_KIB);
    for (i = 0; i < 1000000; i += 997)
        assert_int_equal(cts_emailidx_find(&ix, key_of(i))->row, i + 1);
    /* The commit's in-place sort: no second copy of the table. */
    before = rss_kb();
    assert_int_equal(cts_emailidx_sort(&ix), 1000000);
    after = rss_kb();
    for (i = 1; i < 1000000; i++)
        assert_true(cts_eslot_key(&ix.slots[i - 1]) <
                    cts_eslot_key(&ix.slots[i]));
    if (before > 0 && after > 0)
        assert_true(after - before <= 1024);
    cts_emailidx_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find),
        cmocka_unit_test(test_sort),
        cmocka_unit_test(test_million),
    };
    return cmocka_run_group_tests_name("emailidx", tests, NULL, NULL);
}
