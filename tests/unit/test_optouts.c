/* test_optouts.c — the set of the account's unsubscribed addresses: adding
 * from listing pages, lookups by email and by key, the refresh window, and
 * the file in the state directory (round trip, damage, no address in
 * clear). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cts_consent.h"
#include "cts_optouts.h"
#include "cts_state.h"
#include "testutil.h"

#define T0 1709649641L /* 2024-03-05T14:40:41Z */

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/cts-optouts-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) == NULL;
}

static int teardown(void **state)
{
    (void)state;
    tu_rm_rf(dir);
    return 0;
}

static char *file_path(void)
{
    static char p[300];
    snprintf(p, sizeof(p), "%s/optouts", dir);
    return p;
}

/* Whether the n bytes of p hold the text s (memmem is a GNU extension). */
static int holds(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s), i;
    for (i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0)
            return 1;
    return 0;
}

static void test_add_and_lookup(void **state)
{
    struct cts_optouts *s = cts_optouts_new();
    char day[CTS_OPTOUTS_DATE_LEN];
    long since = -1;
    (void)state;

    assert_int_equal(cts_optouts_count(s), 0);
    assert_null(cts_optouts_lookup(s, "a@b.co", day, sizeof(day)));
    /* Addresses as the API writes them match rows as the mapper gives
     * them (trimmed, lower-cased). */
    assert_int_equal(cts_optouts_add(s, " Gone@Example.COM ", T0), 1);
    assert_int_equal(cts_optouts_add(s, "nodate@example.com", 0), 1);
    assert_int_equal(cts_optouts_add(s, "not an address", T0), 0);
    assert_int_equal(cts_optouts_add(s, NULL, T0), 0);
    assert_int_equal(cts_optouts_count(s), 2);
    assert_string_equal(
        cts_optouts_lookup(s, "gone@example.com", day, sizeof(day)),
        "2024-03-05");
    assert_string_equal(
        cts_optouts_lookup(s, "nodate@example.com", day, sizeof(day)), "");
    assert_null(cts_optouts_lookup(s, "here@example.com", day, sizeof(day)));
    assert_int_equal(cts_optouts_find_key(
                         s, cts_state_email_key("gone@example.com"), &since),
                     1);
    assert_int_equal(since, T0);
    assert_int_equal(cts_optouts_find_key(
                         s, cts_state_email_key("here@example.com"), &since),
                     0);
    /* Seen again: once in the set, with the later date. */
    assert_int_equal(cts_optouts_add(s, "gone@example.com", T0 - 86400), 1);
    assert_int_equal(cts_optouts_add(s, "gone@example.com", T0 + 86400), 1);
    assert_int_equal(cts_optouts_count(s), 2);
    assert_string_equal(
        cts_optouts_lookup(s, "gone@example.com", day, sizeof(day)),
        "2024-03-06");
    assert_int_equal(cts_optouts_newest(s), T0 + 86400);
    cts_optouts_free(s);
    cts_optouts_free(NULL);
}

/* The listing pages feed the set directly. */
static void test_from_pages(void **state)
{
    struct cts_optouts *s = cts_optouts_new();
    char day[CTS_OPTOUTS_DATE_LEN], *body, *next;
    size_t len;
    (void)state;

    body = tu_fixture("v3_unsubscribed_page1.json", &len);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V3, body, len,
                                               cts_optouts_add_cb, s, &next,
                                               NULL),
                     0);
    free(body);
    free(next);
    body = tu_fixture("v3_unsubscribed_page2.json", &len);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V3, body, len,
                                               cts_optouts_add_cb, s, &next,
                                               NULL),
                     0);
    free(body);
    assert_null(next);
    assert_int_equal(cts_optouts_count(s), 3);
    assert_string_equal(
        cts_optouts_lookup(s, "gone@example.com", day, sizeof(day)),
        "2024-03-05");
    assert_string_equal(
        cts_optouts_lookup(s, "left@example.com", day, sizeof(day)), "");
    /* 2025-01-31T23:59:59.500-05:00 is 1 February in UTC. */
    assert_string_equal(
        cts_optouts_lookup(s, "bye@example.org", day, sizeof(day)),
        "2025-02-01");
    assert_null(
        cts_optouts_lookup(s, "still-here@example.com", day, sizeof(day)));
    cts_optouts_free(s);
}

/* Never fetched or a stale full fetch: everything; else the changes since
 * the last fetch, with a margin. */
static void test_refresh_window(void **state)
{
    struct cts_optouts *s = cts_optouts_new();
    char buf[32];
    (void)state;

    assert_null(cts_optouts_since(s, T0, buf, sizeof(buf)));
    cts_optouts_fetched(s, T0, 1);
    assert_int_equal(cts_optouts_last_full(s), T0);
    assert_string_equal(cts_optouts_since(s, T0 + 60, buf, sizeof(buf)),
                        "2024-03-05T13:40:41Z");
    /* A refresh moves the window, not the full fetch. */
    cts_optouts_fetched(s, T0 + 86400, 0);
    assert_int_equal(cts_optouts_last_full(s), T0);
    assert_int_equal(cts_optouts_last_fetch(s), T0 + 86400);
    assert_string_equal(cts_optouts_since(s, T0 + 86400 + 60, buf, sizeof(buf)),
                        "2024-03-06T13:40:41Z");
    /* A week after the last full fetch: a full one again. */
    assert_null(
        cts_optouts_since(s, T0 + CTS_OPTOUTS_FULL_EVERY, buf, sizeof(buf)));
    cts_optouts_free(s);
}

static void test_save_and_load(void **state)
{
    struct cts_optouts *s = cts_optouts_new(), *t = cts_optouts_new();
    struct cts_error err;
    char day[CTS_OPTOUTS_DATE_LEN], email[64], *bytes;
    struct stat st;
    size_t len, i;
    (void)state;

    /* Missing file: an empty set, no error. */
    memset(&err, 0, sizeof(err));
    assert_int_equal(cts_optouts_load(t, dir, &err), 0);
    assert_int_equal(cts_optouts_count(t), 0);

    for (i = 0; i < 5000; i++) {
        snprintf(email, sizeof(email), "user%zu@example.com", i);
        assert_int_equal(cts_optouts_add(s, email, T0 + (long)i), 1);
    }
    assert_int_equal(cts_optouts_add(s, "secret.person@example.com", 0), 1);
    cts_optouts_fetched(s, T0 + 100, 1);
    cts_optouts_fetched(s, T0 + 200, 0);
    assert_int_equal(cts_optouts_save(s, dir, &err), 0);
    assert_int_equal(stat(file_path(), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 48 + 5001 * 12);
    /* Keys and dates only: no address in clear on disk. */
    bytes = tu_fixture(file_path(), &len);
    assert_false(holds(bytes, len, "secret.person"));
    assert_false(holds(bytes, len, "example.com"));

    /* A second load replaces what the set held. */
    assert_int_equal(cts_optouts_add(t, "stale@example.com", T0), 1);
    assert_int_equal(cts_optouts_load(t, dir, &err), 0);
    assert_int_equal(cts_optouts_count(t), 5001);
    assert_null(cts_optouts_lookup(t, "stale@example.com", day, sizeof(day)));
    assert_string_equal(
        cts_optouts_lookup(t, "secret.person@example.com", day, sizeof(day)),
        "");
    for (i = 0; i < 5000; i += 499) {
        long since = 0;
        snprintf(email, sizeof(email), "user%zu@example.com", i);
        assert_int_equal(
            cts_optouts_find_key(t, cts_state_email_key(email), &since), 1);
        assert_int_equal(since, T0 + (long)i);
    }
    assert_int_equal(cts_optouts_last_fetch(t), T0 + 200);
    assert_int_equal(cts_optouts_last_full(t), T0 + 100);
    assert_int_equal(cts_optouts_newest(t), T0 + 4999);

    /* Damage: one flipped byte in a record, a cut file, someone else's
     * file.  Each loads as an empty, never-fetched set (the next fetch is
     * a full one) with a message naming the file. */
    {
        static const char *const what[] = {"flip", "cut", "magic"};
        for (i = 0; i < 3; i++) {
            char buf[32];
            FILE *f = fopen(file_path(), "wb");
            assert_non_null(f);
            if (i == 0) {
                bytes[48 + 12 * 7 + 3] ^= 0x40;
                assert_int_equal(fwrite(bytes, 1, len, f), len);
                bytes[48 + 12 * 7 + 3] ^= 0x40;
            } else if (i == 1) {
                assert_int_equal(fwrite(bytes, 1, len - 5, f), len - 5);
            } else {
                assert_int_equal(fwrite("{\"token\":1}", 1, 11, f), 11);
            }
            fclose(f);
            memset(&err, 0, sizeof(err));
            if (cts_optouts_load(t, dir, &err) != CTS_EDATA)
                fail_msg("%s: not refused", what[i]);
            assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);
            assert_non_null(strstr(err.msg, file_path()));
            assert_int_equal(cts_optouts_count(t), 0);
            assert_null(cts_optouts_since(t, T0 + 300, buf, sizeof(buf)));
        }
    }
    free(bytes);

    /* An unwritable directory: an error naming the file. */
    memset(&err, 0, sizeof(err));
    assert_int_not_equal(cts_optouts_save(s, "/nonexistent/dir", &err), 0);
    assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);
    cts_optouts_free(s);
    cts_optouts_free(t);
}

/* An empty set round-trips too (an account nobody left). */
static void test_empty_round_trip(void **state)
{
    struct cts_optouts *s = cts_optouts_new();
    struct cts_error err;
    char buf[32];
    (void)state;
    memset(&err, 0, sizeof(err));
    cts_optouts_fetched(s, T0, 1);
    assert_int_equal(cts_optouts_save(s, dir, &err), 0);
    cts_optouts_free(s);
    s = cts_optouts_new();
    assert_int_equal(cts_optouts_load(s, dir, &err), 0);
    assert_int_equal(cts_optouts_count(s), 0);
    assert_string_equal(cts_optouts_since(s, T0 + 10, buf, sizeof(buf)),
                        "2024-03-05T13:40:41Z");
    cts_optouts_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_lookup),
        cmocka_unit_test(test_from_pages),
        cmocka_unit_test(test_refresh_window),
        cmocka_unit_test_setup_teardown(test_save_and_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests_name("optouts", tests, NULL, NULL);
}
