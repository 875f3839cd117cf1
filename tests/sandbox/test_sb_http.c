/* test_sb_http.c — ctct-sandbox's HTTP/1.1 request parser fed at every chunk
 * size from 1 byte up (pipelined requests, bodies, Expect: 100-continue,
 * bad requests), the way server.c feeds it: a buffer that grows (and
 * moves) between calls, requests consumed from its front. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* http.c lives in the sandbox binary, not in libcts.a: compile it in. */
#include "sandbox/http.c"

struct seen {
    char line[4096]; /* "METHOD path ?query |h1=v1|h2=v2 #body" per request */
    int n;           /* requests parsed */
    int headers_before_body; /* SB_HTTP_HEADERS seen for a request */
    int expect;
    int keep_alive_last;
    int error; /* first negative rc */
};

static void describe(struct seen *s, const struct sb_http_msg *m)
{
    char one[2048];
    int o =
        snprintf(one, sizeof one, "%s %s ?%s", m->method, m->path, m->query);
    for (size_t i = 0; i < m->nheaders && o < (int)sizeof one; i++)
        o += snprintf(one + o, sizeof one - (size_t)o, " |%s=%s",
                      m->headers[i].name, m->headers[i].value);
    if (o < (int)sizeof one)
        snprintf(one + o, sizeof one - (size_t)o, " #%.*s\n",
                 (int)m->content_length, m->body);
    strncat(s->line, one, sizeof s->line - strlen(s->line) - 1);
}

/* Feed input in chunks of `chunk` bytes through a buffer reallocated to the
 * exact size at every step (so ASan catches any stale pointer). */
static void feed(const char *input, size_t len, size_t chunk, struct seen *s)
{
    char *buf = NULL;
    size_t have = 0, off = 0;
    struct sb_http_msg msg;
    memset(s, 0, sizeof *s);
    memset(&msg, 0, sizeof msg);
    while (off < len || have) {
        size_t n = len - off < chunk ? len - off : chunk;
        char *nb = malloc(have + n + 1);
        assert_non_null(nb);
        if (have)
            memcpy(nb, buf, have);
        memcpy(nb + have, input + off, n);
        free(buf);
        buf = nb;
        have += n;
        off += n;
        for (;;) {
            int rc = have ? sb_http_parse(&msg, buf, have) : SB_HTTP_MORE;
            if (rc < 0) {
                s->error = rc;
                free(buf);
                return;
            }
            if (rc == SB_HTTP_HEADERS) {
                s->headers_before_body = 1;
                s->expect |= msg.expect_continue;
            }
            if (rc != SB_HTTP_DONE)
                break;
            s->expect |= msg.expect_continue;
            s->keep_alive_last = msg.keep_alive;
            describe(s, &msg);
            s->n++;
            memmove(buf, buf + msg.total_len, have - msg.total_len);
            have -= msg.total_len;
            memset(&msg, 0, sizeof msg);
        }
        if (n == 0)
            break; /* input exhausted with an incomplete request */
    }
    free(buf);
}

static const char pipelined[] =
    "GET /v3/contacts?email=a%40b.com&status=all HTTP/1.1\r\n"
    "Host: x\r\nAuthorization:   Bearer tok  \r\n\r\n"
    "POST /v2/contacts?api_key=k HTTP/1.1\r\n"
    "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    "{\"a\":\"b\\r\\n\"}"
    "\r\n" /* a stray CRLF between requests is tolerated */
    "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n";

static const char pipelined_want[] =
    "GET /v3/contacts ?email=a%40b.com&status=all |Host=x "
    "|Authorization=Bearer tok #\n"
    "POST /v2/contacts ?api_key=k |Content-Type=application/json "
    "|Content-Length=13 #{\"a\":\"b\\r\\n\"}\n"
    "GET /x ? |Connection=close #\n";

static void test_pipelined_every_chunk_size(void **state)
{
    (void)state;
    size_t len = strlen(pipelined);
    for (size_t chunk = 1; chunk <= len; chunk++) {
        struct seen s;
        feed(pipelined, len, chunk, &s);
        if (s.error || s.n != 3 || strcmp(s.line, pipelined_want) != 0)
            fail_msg("chunk %zu: error %d, %d requests:\n%s", chunk, s.error,
                     s.n, s.line);
        assert_int_equal(s.keep_alive_last, 0);
    }
}

static void test_expect_continue(void **state)
{
    (void)state;
    static const char req[] =
        "POST /v3/contacts/sign_up_form HTTP/1.1\r\nExpect: 100-continue\r\n"
        "Content-Length: 20\r\n\r\n{\"email_address\":1}\n";
    size_t len = strlen(req), hdr = strstr(req, "\r\n\r\n") + 4 - req;
    for (size_t chunk = 1; chunk <= len; chunk++) {
        struct seen s;
        feed(req, len, chunk, &s);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.n, 1);
        assert_true(s.expect);
        /* whenever the headers arrive before the whole body, the parser
         * says so (the server then sends 100 Continue) */
        if (chunk < len && ((hdr + chunk - 1) / chunk) * chunk < len)
            assert_true(s.headers_before_body);
    }
}

static void expect_error(const char *req, int want)
{
    size_t len = strlen(req);
    for (size_t chunk = 1; chunk <= len; chunk++) {
        struct seen s;
        feed(req, len, chunk, &s);
        if (s.error != want)
            fail_msg("%s: chunk %zu: got %d want %d", req, chunk, s.error,
                     want);
    }
}

static void test_bad_requests(void **state)
{
    (void)state;
    expect_error("GARBAGE\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET x HTTP/1.1\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x HTTP/2.0\r\n\r\n", SB_HTTP_VERSION);
    expect_error("GET /x FTP/1.1\r\n\r\n", SB_HTTP_BAD);
    expect_error("G(T /x HTTP/1.1\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x HTTP/1.1\r\nNoColon\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x HTTP/1.1\r\n: empty\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x HTTP/1.1\r\nBad Name: 1\r\n\r\n", SB_HTTP_BAD);
    expect_error("POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", SB_HTTP_BAD);
    expect_error("POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", SB_HTTP_BAD);
    expect_error("POST /x HTTP/1.1\r\nContent-Length: 1\r\n"
                 "Content-Length: 2\r\n\r\nab",
                 SB_HTTP_BAD);
    expect_error("POST /x HTTP/1.1\r\nContent-Length: 16777217\r\n\r\n",
                 SB_HTTP_TOOBIG);
    expect_error("POST /x HTTP/1.1\r\nContent-Length: "
                 "99999999999999999999999\r\n\r\n",
                 SB_HTTP_BAD);
    expect_error("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                 SB_HTTP_LENREQ);
    expect_error("POST /x HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", SB_HTTP_BAD);
    expect_error("GET /x\x01y HTTP/1.1\r\n\r\n", SB_HTTP_BAD);
    /* a NUL byte anywhere in the header block */
    static const char nul[] = "GET /x HTTP/1.1\r\nA: \0b\r\n\r\n";
    for (size_t chunk = 1; chunk < sizeof nul; chunk++) {
        struct seen s;
        feed(nul, sizeof nul - 1, chunk, &s);
        assert_int_equal(s.error, SB_HTTP_BAD);
    }
}

static void test_caps(void **state)
{
    (void)state;
    /* header block over 16 KiB, never terminated: 431 once past the cap */
    size_t len = SB_HEADER_CAP + 100;
    char *big = malloc(len + 1);
    assert_non_null(big);
    memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
    memset(big + 20, 'a', len - 20);
    big[len] = '\0';
    struct seen s;
    feed(big, len, 4096, &s);
    assert_int_equal(s.error, SB_HTTP_HDRBIG);
    /* terminated but too big */
    memcpy(big + len - 4, "\r\n\r\n", 4);
    feed(big, len, 7000, &s);
    assert_int_equal(s.error, SB_HTTP_HDRBIG);
    free(big);
    /* too many headers */
    struct cts_buf b;
    cts_buf_init(&b, 0);
    cts_buf_appendf(&b, "GET /x HTTP/1.1\r\n");
    for (int i = 0; i < SB_MAX_HEADERS + 1; i++)
        cts_buf_appendf(&b, "H%d: v\r\n", i);
    cts_buf_appendf(&b, "\r\n");
    feed(b.data, b.len, b.len, &s);
    assert_int_equal(s.error, SB_HTTP_HDRBIG);
    cts_buf_free(&b);
}

/* Lines may end with a bare LF (RFC 9112 §2.2 lets a recipient accept it):
 * such requests are parsed, never left waiting for a CRLF that never
 * comes; a bare CR inside a line stays an error. */
static const char bare_lf[] =
    "GET /a HTTP/1.1\nHost: x\n\n"
    "POST /b?k=1 HTTP/1.1\r\nContent-Length: 2\n\r\nhi"
    "\n" /* a stray LF between requests */
    "GET /c HTTP/1.1\nConnection: close\r\n\n";

static const char bare_lf_want[] = "GET /a ? |Host=x #\n"
                                   "POST /b ?k=1 |Content-Length=2 #hi\n"
                                   "GET /c ? |Connection=close #\n";

static void test_bare_lf(void **state)
{
    (void)state;
    size_t len = strlen(bare_lf);
    for (size_t chunk = 1; chunk <= len; chunk++) {
        struct seen s;
        feed(bare_lf, len, chunk, &s);
        if (s.error || s.n != 3 || strcmp(s.line, bare_lf_want) != 0)
            fail_msg("chunk %zu: error %d, %d requests:\n%s", chunk, s.error,
                     s.n, s.line);
        assert_int_equal(s.keep_alive_last, 0);
    }
    expect_error("GET /x HTTP/1.1\nA: b\rc\n\n", SB_HTTP_BAD);
    expect_error("GET /x HTTP/1.1\r\r\n\r\n", SB_HTTP_BAD);
}

static void test_keep_alive_rules(void **state)
{
    (void)state;
    struct seen s;
    const char *r10 = "GET /x HTTP/1.0\r\n\r\n";
    feed(r10, strlen(r10), 64, &s);
    assert_int_equal(s.keep_alive_last, 0);
    const char *r10k = "GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    feed(r10k, strlen(r10k), 64, &s);
    assert_int_equal(s.keep_alive_last, 1);
    const char *r11 = "GET /x HTTP/1.1\r\n\r\n";
    feed(r11, strlen(r11), 64, &s);
    assert_int_equal(s.keep_alive_last, 1);
    const char *r11c = "GET /x HTTP/1.1\r\nConnection: TE, close\r\n\r\n";
    feed(r11c, strlen(r11c), 64, &s);
    assert_int_equal(s.keep_alive_last, 0);
}

static void test_incomplete_is_more(void **state)
{
    (void)state;
    struct sb_http_msg m;
    char buf[64] = "GET /x HTTP/1.1\r\nHost: a\r\n";
    memset(&m, 0, sizeof m);
    assert_int_equal(sb_http_parse(&m, buf, strlen(buf)), SB_HTTP_MORE);
    char body[] = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
    memset(&m, 0, sizeof m);
    assert_int_equal(sb_http_parse(&m, body, strlen(body)), SB_HTTP_HEADERS);
}

static void test_url_decode_and_form(void **state)
{
    (void)state;
    char s1[] = "a%40b.com+x%2";
    size_t n = sb_url_decode(s1, strlen(s1), 1);
    assert_int_equal(n, 11);
    assert_memory_equal(s1, "a@b.com x%2", 11);
    char s2[] = "a+b%zz";
    n = sb_url_decode(s2, strlen(s2), 0);
    assert_memory_equal(s2, "a+b%zz", n);

    const char *q = "email=a%40b.com&status=all&flag&e%6Dpty=&x=1+2";
    char *v = sb_form_lookup(q, strlen(q), "email");
    assert_string_equal(v, "a@b.com");
    free(v);
    v = sb_form_lookup(q, strlen(q), "flag");
    assert_string_equal(v, "");
    free(v);
    v = sb_form_lookup(q, strlen(q), "empty");
    assert_string_equal(v, "");
    free(v);
    v = sb_form_lookup(q, strlen(q), "x");
    assert_string_equal(v, "1 2");
    free(v);
    assert_null(sb_form_lookup(q, strlen(q), "missing"));
    assert_null(sb_form_lookup("", 0, "a"));
    /* only the given length is read */
    v = sb_form_lookup("a=1&b=2", 3, "b");
    assert_null(v);
}

/* Mutated requests: whatever the bytes, the parser never crashes or reads
 * out of bounds (ASan build), and the outcome does not depend on how the
 * bytes were split. */
static void test_mutations_chunk_independent(void **state)
{
    (void)state;
    size_t len = strlen(pipelined);
    char *m = malloc(len + 1);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    assert_non_null(m);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(m, pipelined, len + 1);
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            static const char pool[] = "\r\n :/?%0aZ\x01\xff";
            m[x % len] = pool[(x >> 32) % (sizeof pool - 1)];
        }
        struct seen whole, bytes, mid;
        feed(m, len, len, &whole);
        feed(m, len, 1, &bytes);
        feed(m, len, 1 + (size_t)(x % 17), &mid);
        if (whole.error != bytes.error || whole.n != bytes.n ||
            strcmp(whole.line, bytes.line) != 0 || mid.error != whole.error ||
            strcmp(mid.line, whole.line) != 0)
            fail_msg("iteration %d: whole %d/%d bytes %d/%d mid %d/%d", iter,
                     whole.error, whole.n, bytes.error, bytes.n, mid.error,
                     mid.n);
    }
    free(m);
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(sb_http_reason(201), "Created");
    assert_string_equal(sb_http_reason(429), "Too Many Requests");
    assert_string_equal(sb_http_reason(599), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_every_chunk_size),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_incomplete_is_more),
        cmocka_unit_test(test_url_decode_and_form),
        cmocka_unit_test(test_mutations_chunk_independent),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
