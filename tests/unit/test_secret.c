/* test_secret.c — the masking rule and the ways text is masked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_secret.h"
#include "cts_util.h"

#define ELL    "\xe2\x80\xa6"
#define KEY    "f98b207c-ta99b-4938-b523-3cc2895f5420"
#define V2_KEY "demo-v2-key-0000000000000001"
#define V2_TOK "demo-v2-token-000000000000000000001"

static void test_mask(void **state)
{
    char out[CTS_MASK_SIZE];
    (void)state;
    assert_string_equal(cts_mask(KEY, out), "f98b" ELL "5420");
    assert_string_equal(cts_mask("short", out), "****");
    assert_string_equal(cts_mask("exactly12chr", out), "****");
    assert_string_equal(cts_mask("exactly13chrs", out), "exac" ELL "chrs");
    assert_string_equal(cts_mask("", out), "****");
    assert_string_equal(cts_mask(NULL, out), "(none)");
}

static void test_redact_values(void **state)
{
    const char *secrets[] = {KEY, NULL, "short", "a b/c+d=efgh-ijkl"};
    char buf[256];
    (void)state;
    snprintf(buf, sizeof(buf), "GET /v2/lists?api_key=%s&x=%s short", KEY, KEY);
    cts_redact(buf, sizeof(buf), secrets, 4);
    assert_string_equal(buf, "GET /v2/lists?api_key=f98b" ELL "5420&x=f98b" ELL
                             "5420 short");
    /* The percent-encoded form, as the secret appears in a URL. */
    snprintf(buf, sizeof(buf), "token=a%%20b%%2Fc%%2Bd%%3Defgh-ijkl&y=1");
    cts_redact(buf, sizeof(buf), secrets, 4);
    assert_string_equal(buf, "token=a b/" ELL "ijkl&y=1");
    assert_int_equal(cts_redact_needed("x " KEY, secrets, 4), 1);
    assert_int_equal(cts_redact_needed("x short", secrets, 4), 0);
    assert_int_equal(cts_redact_needed("a%20b%2Fc%2Bd%3Defgh-ijkl", secrets, 4),
                     1);
    assert_int_equal(cts_redact_needed(NULL, secrets, 4), 0);
}

/* msg[512] as snprintf leaves it when "<before x's>KEY and more" was cut
 * at 511 bytes. */
static void cut_message(char msg[512], size_t before)
{
    char whole[600];
    memset(whole, 'x', before);
    memcpy(whole + before, KEY " and more", sizeof(KEY " and more"));
    memcpy(msg, whole, 511);
    msg[511] = '\0';
}

/* A message cut by snprintf at err->msg's 512 bytes can end in the first
 * part of a secret: that part is masked too. */
static void test_redact_cut_tail(void **state)
{
    const char *secrets[] = {V2_TOK, KEY};
    char msg[512];
    size_t i, len;
    (void)state;
    for (i = 4; i < strlen(KEY); i++) {
        /* i characters of KEY fit before the cut. */
        size_t before = sizeof(msg) - 1 - i;
        cut_message(msg, before);
        assert_int_equal(strlen(msg), sizeof(msg) - 1);
        len = cts_redact(msg, sizeof(msg), secrets, 2);
        assert_int_equal(len, strlen(msg));
        assert_true(len <= sizeof(msg) - 1);
        /* Nothing of the key past its first 4 characters and the masked
         * last 4 is left. */
        assert_null(strstr(msg, "f98b2"));
        assert_memory_equal(msg + before, "f98b", 4);
    }
    /* Three characters or fewer are not recognisable: left alone. */
    cut_message(msg, sizeof(msg) - 4);
    cts_redact(msg, sizeof(msg), secrets, 2);
    assert_string_equal(msg + sizeof(msg) - 4, "f98");
    /* A text that is not full was not cut: its end is not touched, even
     * when it looks like the start of a secret ("demo" of V2_TOK). */
    snprintf(msg, sizeof(msg), "account demo-v2-t");
    cts_redact(msg, sizeof(msg), secrets, 2);
    assert_string_equal(msg, "account demo-v2-t");
}

/* Formatting masks first, then cuts: no cut position leaves a part of the
 * secret beyond what the mask shows. */
static int vformat(char *buf, size_t cap, const char *const *s, size_t n,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int vformat(char *buf, size_t cap, const char *const *s, size_t n,
                   const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = cts_redact_vformat(buf, cap, s, n, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_redact_vformat(void **state)
{
    const char *secrets[] = {KEY};
    char msg[512], pad[600];
    int before, len;
    (void)state;
    memset(pad, 'y', sizeof(pad));
    for (before = 470; before < 511; before++) {
        len = vformat(msg, sizeof(msg), secrets, 1, "%.*s?api_key=%s&z=1",
                      before, pad, KEY);
        assert_int_equal(len, (int)strlen(msg));
        assert_true(len < (int)sizeof(msg));
        assert_null(strstr(msg, "f98b2"));
        assert_null(strstr(msg, "3cc2"));
    }
    /* A short line is formatted and masked in place. */
    len = vformat(msg, sizeof(msg), secrets, 1, "key %s ok", KEY);
    assert_string_equal(msg, "key f98b" ELL "5420 ok");
    assert_int_equal(len, (int)strlen(msg));
    /* The cut never splits the mask's "…" (valid UTF-8 stays valid). */
    len = vformat(msg, 7, secrets, 1, "%s", KEY);
    assert_string_equal(msg, "f98b");
}

static void test_url_redact(void **state)
{
    char *r;
    (void)state;
    r = cts_url_redact("http://h/v2/contacts?api_key=" V2_KEY
                       "&email=a%40b.c&access_token=" V2_TOK);
    assert_null(strstr(r, V2_KEY));
    assert_null(strstr(r, V2_TOK));
    assert_non_null(strstr(r, "api_key=demo" ELL "0001&email=a%40b.c"));
    assert_non_null(strstr(r, "access_token=demo" ELL "0001"));
    free(r);
    /* A form body, and names that merely end like a secret one. */
    r = cts_url_redact("grant_type=refresh_token&refresh_token=rt-0123456789abc"
                       "&xcode=keep");
    assert_string_equal(r, "grant_type=refresh_token&refresh_token=rt-0" ELL
                           "9abc&xcode=keep");
    free(r);
    r = cts_url_redact(NULL);
    assert_string_equal(r, "");
    free(r);
    /* Part of a request line: the value ends at the space. */
    r = cts_redact_params("GET /v2/lists?api_key=" V2_KEY " HTTP/1.1", 40);
    assert_string_equal(r, "GET /v2/lists?api_key=demo" ELL "0000");
    free(r);
}

/* The report and other non-log output use the log's registered secrets. */
static void test_log_redacted(void **state)
{
    char *m;
    (void)state;
    cts_log_add_secret(V2_TOK);
    cts_log_add_secret("short");
    assert_null(cts_log_redacted("nothing secret here, short"));
    assert_null(cts_log_redacted(NULL));
    m = cts_log_redacted("HTTP 500 for ?access_token=" V2_TOK);
    assert_non_null(m);
    assert_string_equal(m, "HTTP 500 for ?access_token=demo" ELL "0001");
    free(m);
    /* A whole message is not a cut one: its end stays as it is. */
    m = cts_log_redacted(V2_TOK " demo-v2-tok");
    assert_string_equal(m, "demo" ELL "0001 demo-v2-tok");
    free(m);
    cts_log_clear_secrets();
    assert_null(cts_log_redacted("?access_token=" V2_TOK));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_redact_values),
        cmocka_unit_test(test_redact_cut_tail),
        cmocka_unit_test(test_redact_vformat),
        cmocka_unit_test(test_url_redact),
        cmocka_unit_test(test_log_redacted),
    };
    return cmocka_run_group_tests_name("secret", tests, NULL, NULL);
}
