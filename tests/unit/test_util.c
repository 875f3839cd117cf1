/* test_util.c — buffers, codecs, number parsing, URL escaping. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cts_util.h"

static void test_buf_cap(void **state)
{
    struct cts_buf b;
    (void)state;
    cts_buf_init(&b, 8);
    assert_int_equal(cts_buf_append(&b, "12345678", 8), 0);
    assert_int_equal(cts_buf_append(&b, "9", 1), CTS_ETOOBIG);
    assert_string_equal(b.data, "12345678");
    cts_buf_reset(&b);
    assert_int_equal(cts_buf_appendf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");
    cts_buf_free(&b);
}

static void test_sha256(void **state)
{
    uint8_t d[32];
    char hex[65];
    (void)state;
    cts_sha256("abc", 3, d);
    cts_hex(d, 32, hex);
    assert_string_equal(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cts_sha256("", 0, d);
    cts_hex(d, 32, hex);
    assert_string_equal(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* 56 bytes: the padding spills into a second block. */
    cts_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
               d);
    cts_hex(d, 32, hex);
    assert_string_equal(
        hex,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_pkce_rfc7636(void **state)
{
    /* RFC 7636 appendix B. */
    uint8_t d[32];
    char *enc;
    (void)state;
    cts_sha256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 43, d);
    enc = cts_base64url_encode(d, 32);
    assert_string_equal(enc, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    free(enc);
}

static void test_base64_roundtrip(void **state)
{
    size_t i, n;
    unsigned char raw[40];
    (void)state;
    for (i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 37 + 1);
    for (i = 0; i <= sizeof(raw); i++) {
        char *e = cts_base64url_encode(raw, i);
        char *d = cts_base64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, i);
        assert_memory_equal(d, raw, i);
        free(e);
        free(d);
    }
    {
        char *d = cts_base64_decode("eyJhIjoxfQ==", 12, &n);
        assert_non_null(d);
        assert_string_equal(d, "{\"a\":1}");
        free(d);
    }
    assert_null(cts_base64_decode("ab$c", 4, &n));
    assert_null(cts_base64_decode("a", 1, &n));
}

static void test_parse_long(void **state)
{
    long v;
    (void)state;
    assert_int_equal(cts_parse_long("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cts_parse_long("101", 0, 100, &v), CTS_EUSAGE);
    assert_int_equal(cts_parse_long("4x", 0, 100, &v), CTS_EUSAGE);
    assert_int_equal(cts_parse_long("", 0, 100, &v), CTS_EUSAGE);
    assert_int_equal(cts_parse_long(" 4", 0, 100, &v), CTS_EUSAGE);
    assert_int_equal(cts_parse_long("99999999999999999999", 0, 100, &v),
                     CTS_EUSAGE);
}

static void test_hash64(void **state)
{
    (void)state;
    assert_true(cts_hash64("a", 1, 0) != cts_hash64("b", 1, 0));
    assert_true(cts_hash64("a", 1, 0) != cts_hash64("a", 1, 1));
    assert_true(cts_hash64("a", 1, 7) == cts_hash64("a", 1, 7));
}

static void test_url_escape(void **state)
{
    char *e;
    (void)state;
    e = cts_url_escape("a+b@c.d é&=");
    assert_string_equal(e, "a%2Bb%40c.d%20%C3%A9%26%3D");
    free(e);
    e = cts_url_escape("AZaz09-._~ /?");
    assert_string_equal(e, "AZaz09-._~%20%2F%3F");
    free(e);
    e = cts_url_escape(NULL);
    assert_string_equal(e, "");
    free(e);
}

/* expires_in and ids come as numbers or numeric strings depending on the
 * API generation and the server. */
static void test_json_int(void **state)
{
    json_t *o = json_loads("{\"i\":315110295,\"s\":\"315110295\",\"r\":3600.0,"
                           "\"neg\":-5,\"bad\":\"12x\",\"sp\":\" 1\","
                           "\"big\":\"99999999999999999999\",\"b\":true,"
                           "\"n\":null,\"huge\":1e300}",
                           0, NULL);
    long v = 7;
    (void)state;
    assert_non_null(o);
    assert_int_equal(cts_json_int(json_object_get(o, "i"), 0, LONG_MAX, &v), 0);
    assert_int_equal(v, 315110295);
    v = 0;
    assert_int_equal(cts_json_int(json_object_get(o, "s"), 0, LONG_MAX, &v), 0);
    assert_int_equal(v, 315110295);
    assert_int_equal(cts_json_int(json_object_get(o, "r"), 0, LONG_MAX, &v), 0);
    assert_int_equal(v, 3600);
    assert_int_equal(cts_json_int(json_object_get(o, "neg"), -10, 10, &v), 0);
    assert_int_equal(v, -5);
    /* Out of range, malformed or of another type: an error, v untouched. */
    v = 7;
    assert_int_equal(cts_json_int(json_object_get(o, "neg"), 0, 10, &v),
                     CTS_EJSON);
    assert_int_equal(cts_json_int(json_object_get(o, "i"), 0, 1000, &v),
                     CTS_EJSON);
    assert_int_equal(cts_json_int(json_object_get(o, "bad"), 0, 99, &v),
                     CTS_EJSON);
    assert_int_equal(cts_json_int(json_object_get(o, "sp"), 0, 99, &v),
                     CTS_EJSON);
    assert_int_equal(
        cts_json_int(json_object_get(o, "big"), LONG_MIN, LONG_MAX, &v),
        CTS_EJSON);
    assert_int_equal(
        cts_json_int(json_object_get(o, "huge"), LONG_MIN, LONG_MAX, &v),
        CTS_EJSON);
    assert_int_equal(cts_json_int(json_object_get(o, "b"), 0, 99, &v),
                     CTS_EJSON);
    assert_int_equal(cts_json_int(json_object_get(o, "n"), 0, 99, &v),
                     CTS_EJSON);
    assert_int_equal(cts_json_int(NULL, 0, 99, &v), CTS_EJSON);
    assert_int_equal(v, 7);
    json_decref(o);
}

/* What reaches a terminal from input: controls escaped, text kept. */
static void visible_is(const char *in, const char *want)
{
    char *got = cts_log_visible(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_log_visible(void **state)
{
    struct cts_buf b;
    (void)state;
    visible_is("plain Ünïcode ✓", "plain Ünïcode ✓");
    visible_is("\x1b]2;PWNED\x07tail", "\\x1b]2;PWNED\\x07tail");
    visible_is("a\rb\nc\td\x7f", "a\\x0db\\x0ac\\x09d\\x7f");
    /* C1 controls in UTF-8 (CSI, OSC) and a bidi override. */
    visible_is("x\xc2\x9b"
               "31mred\xc2\x9d",
               "x\\u009b31mred\\u009d");
    visible_is("abc\xe2\x80\xae"
               "def",
               "abc\\u202edef");
    /* Bytes that are not UTF-8 (a lone C1 byte, a truncated sequence). */
    visible_is("\x9b\xe2\x80", "\\x9b\\xe2\\x80");
    visible_is(NULL, "");
    /* In a log line a newline that starts an indented continuation is
     * the message's own; any other newline is escaped. */
    cts_buf_init(&b, 0);
    cts_buf_append_visible(&b, "one\n  two\nthree\n", 16, 1);
    assert_string_equal(b.data, "one\n  two\\x0athree\\x0a");
    cts_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_log_visible),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_pkce_rfc7636),
        cmocka_unit_test(test_base64_roundtrip),
        cmocka_unit_test(test_parse_long),
        cmocka_unit_test(test_hash64),
        cmocka_unit_test(test_url_escape),
        cmocka_unit_test(test_json_int),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
