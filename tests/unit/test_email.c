/* test_email.c — email normalisation: what real mail systems accept passes,
 * what cannot be an address fails with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_email.h"
#include "cts_encoding.h"
#include "cts_mapper.h"

static void ok(const char *in, const char *want)
{
    char *out = (char *)"unset";
    const char *why = NULL;
    int rc = cts_email_normalize(in, &out, &why);

    if (rc != 0)
        fail_msg("\"%s\" rejected: %s", in, why);
    assert_string_equal(out, want);
    free(out);
}

static void bad(const char *in, const char *reason)
{
    char *out = (char *)"unset";
    const char *why = NULL;
    int rc = cts_email_normalize(in, &out, &why);

    if (rc == 0)
        fail_msg("\"%s\" accepted as \"%s\"", in, out);
    assert_int_equal(rc, CTS_EDATA);
    assert_null(out);
    assert_non_null(why);
    if (strstr(why, reason) == NULL)
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", in, why, reason);
}

static void test_accepts(void **state)
{
    (void)state;
    ok("jane@example.com", "jane@example.com");
    ok("  Jane.Doe@Example.COM\t", "jane.doe@example.com");
    ok("\xC2\xA0john@example.com\xC2\xA0", "john@example.com"); /* NBSP */
    ok("\xE2\x80\x8Bzw@example.com\xEF\xBB\xBF",
       "zw@example.com"); /* ZWSP, BOM */
    ok("first.last+tag@example.com", "first.last+tag@example.com");
    ok("o'brien@example.ie", "o'brien@example.ie");
    ok("user@mail.sub.example.co.uk", "user@mail.sub.example.co.uk");
    ok("J\xC3\xB6rg@B\xC3\xBC"
       "cher.example",
       "j\xC3\xB6rg@b\xC3\xBC"
       "cher.example");
    ok("\"john..doe\"@example.com", "\"john..doe\"@example.com");
    ok("\"a@b\"@example.com", "\"a@b\"@example.com");
    ok("x@xn--bcher-kva.example", "x@xn--bcher-kva.example");
    ok("a_b-c!#$%&*/=?^`{|}~@example.org", "a_b-c!#$%&*/=?^`{|}~@example.org");
    ok("1@2.3", "1@2.3");
    ok("foo..bar@docomo.ne.jp", "foo..bar@docomo.ne.jp");
}

static void test_rejects(void **state)
{
    char local[70], domain[300];
    (void)state;
    bad("", "empty");
    bad(" \t\xC2\xA0 ", "empty");
    bad("no-at.example.com", "no '@'");
    bad("two@@example.com", "more than one '@'");
    bad("a@b@example.com", "more than one '@'");
    bad("has space@example.com", "space");
    bad("a@exa\xC2\xA0mple.com", "space");
    bad("a\x01@example.com", "control");
    /* C1 controls and invisible format characters: U+009D (OSC), U+0085,
     * U+00AD, a bidi override, an isolate, U+2028 and a tag character. */
    bad("a\xC2\x9D"
        "b@example.com",
        "control");
    bad("ab@exa\xC2\x85"
        "mple.com",
        "control");
    bad("a\xC2\xAD"
        "b@example.com",
        "control");
    bad("a\xE2\x80\xAE"
        "b@example.com",
        "control");
    bad("a\xE2\x81\xA6"
        "b@example.com",
        "control");
    bad("a\xE2\x80\xA8"
        "b@example.com",
        "control");
    bad("a\xF3\xA0\x80\x81"
        "b@example.com",
        "control");
    bad("@example.com", "nothing before '@'");
    bad("local@", "nothing after '@'");
    bad("user@localhost", "no dot");
    bad("user@.example.com", "starts with a dot");
    bad("user@example.com.", "ends with a dot");
    bad("user@example..com", "two dots");
    bad(".user@example.com", "dot");
    bad("user.@example.com", "dot");
    bad("user@-example.com", "starts with '-'");
    bad("user@example-.com", "ends with '-'");
    bad("user@exa_mple.com", "invalid character");
    bad("us,er@example.com", "invalid character");
    bad("<user@example.com>", "invalid character");
    bad("Jane <jane@example.com>", "space");
    bad("user@[192.168.0.1]", "IP address");
    bad("\"open@example.com", "unterminated");
    bad("\"q\"x@example.com", "after the quoted");
    bad("\"\"@example.com", "nothing before");
    bad("a\"b@example.com", "quote");
    bad("j\xC3@example.com", "UTF-8");
    memset(local, 'a', 65);
    local[65] = '\0';
    snprintf(domain, sizeof(domain), "%s@example.com", local);
    bad(domain, "64");
    local[64] = '\0';
    snprintf(domain, sizeof(domain), "%s@example.com", local);
    ok(domain, domain);
    memset(domain, 'b', 250);
    memcpy(domain, "a@", 2);
    memcpy(domain + 60, ".", 1);
    memcpy(domain + 120, ".", 1);
    memcpy(domain + 180, ".", 1);
    memcpy(domain + 240, ".", 1);
    domain[250] = '\0';
    ok(domain, domain);
    memset(domain + 250, 'c', 5);
    domain[255] = '\0';
    bad(domain, "254");
    memset(domain, 'd', 70);
    memcpy(domain, "a@", 2);
    memcpy(domain + 66, ".com", 5);
    bad(domain, "63");
}

static void test_idempotent(void **state)
{
    static const char *const in[] = {"  A+B@Example.com ", "o'x@Y.Z",
                                     "\"Q..Q\"@X.Y"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char *a, *b;
        const char *why;
        assert_int_equal(cts_email_normalize(in[i], &a, &why), 0);
        assert_int_equal(cts_email_normalize(a, &b, &why), 0);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
}

static void test_trim_span(void **state)
{
    static const char s[] = "\xE3\x80\x80 \xE2\x80\xAF x y \xE2\x81\xA0\t";
    size_t n = sizeof(s) - 1;
    const char *t;
    (void)state;
    t = cts_trim_span(s, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(t, "x y", 3);
    n = 0;
    t = cts_trim_span("", &n);
    assert_int_equal(n, 0);
    /* A lone lead byte of a Unicode space at the end is data, not space. */
    n = 3;
    t = cts_trim_span("ab\xC2", &n);
    assert_int_equal(n, 3);
}

/* Chaos: random strings built from the pieces that matter, checked
 * against the contracts (deterministic PRNG, so failures reproduce). */
static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_chaos(void **state)
{
    static const char *const piece[] = {"a",
                                        "Z",
                                        "0",
                                        "@",
                                        ".",
                                        "-",
                                        "+",
                                        "'",
                                        "\"",
                                        " ",
                                        "\t",
                                        "_",
                                        ",",
                                        "\xC2\xA0",
                                        "\xE2\x80\x8B",
                                        "\xC3\xA9",
                                        "\xC3\x89",
                                        "\x80",
                                        "\xFF",
                                        "\xE2\x80\x99",
                                        "\xF0\x9F\x98\x80",
                                        "\\",
                                        "[",
                                        "x.y",
                                        "example.com",
                                        "\xEF\xBB\xBF",
                                        "\x01",
                                        "\xC5\x81"};
    const size_t np = sizeof(piece) / sizeof(piece[0]);
    char buf[256];
    int iter;
    (void)state;
    for (iter = 0; iter < 200000; iter++) {
        size_t len = 0, k, n = rnd() % 24;
        char *out = NULL, *again = NULL, *norm;
        const char *why = NULL;
        uint32_t bad;
        buf[0] = '\0';
        for (k = 0; k < n; k++) {
            const char *p = piece[rnd() % np];
            size_t pl = strlen(p);
            if (len + pl >= sizeof(buf))
                break;
            memcpy(buf + len, p, pl);
            len += pl;
        }
        buf[len] = '\0';
        if (cts_email_normalize(buf, &out, &why) == 0) {
            size_t i;
            assert_non_null(out);
            assert_non_null(strchr(out, '@'));
            assert_int_equal(cts_utf8_valid_prefix(out, strlen(out), NULL),
                             strlen(out));
            for (i = 0; out[i] != '\0'; i++)
                assert_false(out[i] >= 'A' && out[i] <= 'Z');
            assert_int_equal(cts_email_normalize(out, &again, &why), 0);
            assert_string_equal(out, again);
            free(again);
            free(out);
        } else {
            assert_null(out);
            assert_non_null(why);
        }
        norm = cts_header_normalize(buf);
        assert_null(strpbrk(norm, " _-.\t"));
        free(norm);
        if (cts_latin1_fit(buf, &out, &bad) == 0) {
            size_t i = 0, m = strlen(out);
            while (i < m) {
                uint32_t cp;
                size_t step =
                    cts_utf8_decode((unsigned char *)out + i, m - i, &cp);
                assert_true(step > 0);
                assert_true(cp <= 0xFF);
                i += step;
            }
            free(out);
        } else {
            assert_null(out);
            assert_true(bad > 0xFF ||
                        cts_utf8_valid_prefix(buf, len, NULL) < len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),    cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_idempotent), cmocka_unit_test(test_trim_span),
        cmocka_unit_test(test_chaos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
