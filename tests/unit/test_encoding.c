/* test_encoding.c — strict UTF-8, Windows-1252 / Latin-1 conversion and the
 * file pre-scan that decides `auto`. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cts_encoding.h"
#include "cts_reader.h"

static size_t valid(const char *s, size_t n, int *inc)
{
    return cts_utf8_valid_prefix(s, n, inc);
}

static void test_utf8_rules(void **state)
{
    int inc;
    (void)state;
    /* Valid: ASCII, 2, 3, 4 bytes, the extremes. */
    assert_int_equal(valid("plain ascii text!", 17, &inc), 17);
    assert_int_equal(valid("\xC2\x80\xDF\xBF", 4, &inc), 4);
    assert_int_equal(
        valid("\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF", 12, &inc),
        12);
    assert_int_equal(valid("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 8, &inc), 8);
    /* Overlongs. */
    assert_int_equal(valid("ab\xC0\xAF", 4, &inc), 2);
    assert_int_equal(inc, 0);
    assert_int_equal(valid("\xC1\xBF", 2, &inc), 0);
    assert_int_equal(valid("\xE0\x9F\xBF", 3, &inc), 0);
    assert_int_equal(valid("\xF0\x8F\xBF\xBF", 4, &inc), 0);
    /* Surrogates and > U+10FFFF. */
    assert_int_equal(valid("x\xED\xA0\x80", 4, &inc), 1);
    assert_int_equal(valid("\xED\xBF\xBF", 3, &inc), 0);
    assert_int_equal(valid("\xF4\x90\x80\x80", 4, &inc), 0);
    assert_int_equal(valid("\xF5\x80\x80\x80", 4, &inc), 0);
    assert_int_equal(valid("\xFF", 1, &inc), 0);
    /* Lone continuation; bad continuation. */
    assert_int_equal(valid("a\x80", 2, &inc), 1);
    assert_int_equal(inc, 0);
    assert_int_equal(valid("\xE2\x28\xA1", 3, &inc), 0);
    /* Truncated at the end: incomplete, not invalid... */
    assert_int_equal(valid("abc\xE2\x82", 5, &inc), 3);
    assert_int_equal(inc, 1);
    assert_int_equal(valid("abc\xF0", 4, &inc), 3);
    assert_int_equal(inc, 1);
    /* ...unless the start already rules it out. */
    assert_int_equal(valid("abc\xE0\x80", 5, &inc), 3);
    assert_int_equal(inc, 0);
    assert_int_equal(valid("abc\xED\xA0", 5, &inc), 3);
    assert_int_equal(inc, 0);
    assert_int_equal(valid("abc\xF4\x90", 5, &inc), 3);
    assert_int_equal(inc, 0);
    /* The ASCII fast path must not skip a high byte at any offset. */
    {
        char buf[40];
        size_t i;
        for (i = 0; i < sizeof(buf); i++) {
            memset(buf, 'a', sizeof(buf));
            buf[i] = (char)0xFF;
            assert_int_equal(valid(buf, sizeof(buf), NULL), i);
        }
    }
}

/* Every code point round-trips through encode/decode; every invalid
 * one (surrogates) is refused by the decoder. */
static void test_codepoint_roundtrip(void **state)
{
    uint32_t cp, back;
    char out[4];
    size_t n;
    (void)state;
    for (cp = 0; cp <= 0x10FFFF; cp++) {
        n = cts_utf8_encode(cp, out);
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            assert_int_equal(cts_utf8_decode((unsigned char *)out, n, &back),
                             0);
            continue;
        }
        assert_int_equal(cts_utf8_decode((unsigned char *)out, n, &back), n);
        assert_int_equal(back, cp);
        assert_int_equal(valid(out, n, NULL), n);
    }
}

static void test_cp1252_table(void **state)
{
    struct cts_buf b;
    uint32_t seen[256];
    size_t i, j, off = 0;
    unsigned char all[256];
    (void)state;
    for (i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    cts_buf_init(&b, 0);
    assert_int_equal(cts_encoding_to_utf8(CTS_ENC_CP1252, all, 256, &b), 0);
    /* The result is valid UTF-8 and has 256 distinct code points: no byte
     * was dropped or merged with another. */
    assert_int_equal(valid(b.data, b.len, NULL), b.len);
    for (i = 0; i < 256; i++) {
        size_t n = cts_utf8_decode((unsigned char *)b.data + off, b.len - off,
                                   &seen[i]);
        assert_true(n > 0);
        off += n;
        for (j = 0; j < i; j++)
            assert_true(seen[j] != seen[i]);
    }
    assert_int_equal(off, b.len);
    assert_int_equal(seen[0x80], 0x20AC);
    assert_int_equal(seen[0x81], 0x0081);
    assert_int_equal(seen[0x8D], 0x008D);
    assert_int_equal(seen[0x8F], 0x008F);
    assert_int_equal(seen[0x90], 0x0090);
    assert_int_equal(seen[0x92], 0x2019);
    assert_int_equal(seen[0x93], 0x201C);
    assert_int_equal(seen[0x96], 0x2013);
    assert_int_equal(seen[0x9D], 0x009D);
    assert_int_equal(seen[0x9F], 0x0178);
    assert_int_equal(seen[0xE9], 0x00E9);
    assert_int_equal(seen[0x41], 'A');
    cts_buf_reset(&b);
    assert_int_equal(cts_encoding_to_utf8(CTS_ENC_LATIN1, all, 256, &b), 0);
    off = 0;
    for (i = 0; i < 256; i++) {
        uint32_t cp;
        off += cts_utf8_decode((unsigned char *)b.data + off, b.len - off, &cp);
        assert_int_equal(cp, i);
    }
    cts_buf_free(&b);
    assert_string_equal(cts_encoding_name(CTS_ENC_CP1252), "cp1252");
    assert_string_equal(cts_encoding_name(CTS_ENC_AUTO), "auto");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_detect_file(void **state)
{
    char path[] = "/tmp/cts-enc-XXXXXX";
    enum cts_encoding enc;
    struct cts_error err;
    char *big;
    size_t n = 65536 * 2 + 10;
    int fd;
    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    memset(&err, 0, sizeof(err));

    write_file(path, "email\nJos\xC3\xA9\n", 12);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_UTF8);
    write_file(path, "email\nJos\xE9\n", 11);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_CP1252);
    /* A sequence cut at EOF is not UTF-8. */
    write_file(path, "email\nJos\xC3", 10);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_CP1252);
    /* A sequence across the 64 KiB read boundary is fine; a bad byte far
     * into the file is found. */
    big = malloc(n);
    assert_non_null(big);
    memset(big, 'a', n);
    memcpy(big + 65535, "\xE2\x82\xAC", 3);
    write_file(path, big, n);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_UTF8);
    big[n - 2] = (char)0x92;
    write_file(path, big, n);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_CP1252);
    free(big);
    /* UTF-16 is the reader's business: not "cp1252". */
    write_file(path,
               "\xFF\xFE"
               "e\0\n\0",
               6);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_UTF8);
    unlink(path);
    assert_int_equal(cts_encoding_detect_file(path, &enc, &err), -ENOENT);
    assert_non_null(strstr(err.msg, path));
}

/* A stream cannot be read twice: the pre-scan leaves it unread and auto. */
static void test_detect_stream(void **state)
{
    struct cts_error err;
    enum cts_encoding enc = CTS_ENC_UTF8;
    char got[16];
    int fds[2];

    (void)state;
    memset(&err, 0, sizeof(err));
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "email\nJos\xE9\n", 11), 11);
    close(fds[1]);
    assert_int_equal(cts_encoding_detect_fd(fds[0], "pipe", &enc, &err), 0);
    assert_int_equal(enc, CTS_ENC_AUTO);
    assert_int_equal(read(fds[0], got, sizeof(got)), 11);
    assert_memory_equal(got, "email\nJos\xE9\n", 11);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_rules),
        cmocka_unit_test(test_codepoint_roundtrip),
        cmocka_unit_test(test_cp1252_table),
        cmocka_unit_test(test_detect_file),
        cmocka_unit_test(test_detect_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
