/* test_jwt.c — the one JWT payload parser (cts_jwt.h): what counts as a
 * JWT, the cid and exp claims, and the tokens that must read as opaque. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cts_jwt.h"
#include "cts_util.h"

/* "HEADER.base64url(payload).SIG"; owned. */
static char *tok_of(const char *payload)
{
    char *p = cts_base64url_encode(payload, strlen(payload));
    char *t = cts_xasprintf("eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p);
    free(p);
    return t;
}

/* Moved from test_redirect.c with the function it tests. */
static void test_jwt_exp(void **state)
{
    long exp = 0;
    char *payload, *tok;
    const char *j1 = "{\"cid\":\"x\",\"exp\":4102444800}";
    const char *j2 = "{\"cid\":\"x\"}";
    (void)state;
    payload = cts_base64url_encode(j1, strlen(j1));
    tok = cts_xasprintf("eyJhbGciOiJIUzI1NiJ9.%s.sig", payload);
    assert_int_equal(cts_jwt_exp(tok, &exp), 0);
    assert_int_equal(exp, 4102444800L);
    free(tok);
    free(payload);
    payload = cts_base64url_encode(j2, strlen(j2));
    tok = cts_xasprintf("a.%s.b", payload);
    assert_int_equal(cts_jwt_exp(tok, &exp), CTS_EJSON);
    free(tok);
    free(payload);
    assert_int_equal(cts_jwt_exp("demo-v2-token-0001", &exp), CTS_EJSON);
    assert_int_equal(cts_jwt_exp("a.!!!.b", &exp), CTS_EJSON);
    assert_int_equal(cts_jwt_exp(NULL, &exp), CTS_EJSON);
}

static void test_claims(void **state)
{
    char *t = tok_of("{\"cid\":\"client-1\",\"exp\":1700000000}");
    char *cid = NULL;
    long long exp = -1;
    long e = 0;
    json_t *p = NULL;
    (void)state;
    assert_int_equal(cts_jwt_claims(t, &cid, &exp), 0);
    assert_string_equal(cid, "client-1");
    assert_int_equal(exp, 1700000000LL);
    free(cid);
    assert_int_equal(cts_jwt_claims(t, NULL, NULL), 0);
    assert_int_equal(cts_jwt_exp(t, &e), 0);
    assert_int_equal(e, 1700000000L);
    assert_int_equal(cts_jwt_payload(t, &p), 0);
    assert_true(json_is_object(p));
    json_decref(p);
    free(t);
}

/* A JWT without exp (or with a non-numeric one) is still a JWT for the
 * claims, but has no expiry. */
static void test_missing_exp(void **state)
{
    const char *docs[] = {
        "{\"cid\":\"c\"}", "{\"cid\":\"c\",\"exp\":\"1700000000\"}",
        "{\"cid\":\"c\",\"exp\":null}", "{\"cid\":\"c\",\"exp\":1e300}"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char *t = tok_of(docs[i]), *cid = NULL;
        long long exp = -1;
        long e = 42;
        assert_int_equal(cts_jwt_claims(t, &cid, &exp), 0);
        assert_string_equal(cid, "c");
        assert_int_equal(exp, 0);
        assert_int_equal(cts_jwt_exp(t, &e), CTS_EJSON);
        assert_int_equal(e, 42); /* untouched */
        free(cid);
        free(t);
    }
}

/* A fractional NumericDate is allowed (RFC 7519) and truncated. */
static void test_real_exp(void **state)
{
    char *t = tok_of("{\"exp\":1700000000.75}");
    long e = 0;
    (void)state;
    assert_int_equal(cts_jwt_exp(t, &e), 0);
    assert_int_equal(e, 1700000000L);
    free(t);
}

/* A cid that is not a string is absent. */
static void test_cid_types(void **state)
{
    char *t = tok_of("{\"cid\":12345,\"exp\":1}");
    char *cid = (char *)"unset";
    long long exp = 0;
    (void)state;
    assert_int_equal(cts_jwt_claims(t, &cid, &exp), 0);
    assert_null(cid);
    assert_int_equal(exp, 1);
    free(t);
}

/* Payloads that decode but are not one JSON object without duplicates. */
static void test_not_json_object(void **state)
{
    const char *docs[] = {"not json",
                          "[1,2]",
                          "\"str\"",
                          "42",
                          "",
                          "{\"exp\":1,\"exp\":2}",
                          "{\"exp\":1} trailing"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char *p = cts_base64url_encode(docs[i], strlen(docs[i]));
        char *t = cts_xasprintf("eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p);
        char *cid = (char *)"unset";
        long long exp = -1;
        long e = 42;
        json_t *j = (json_t *)t;
        assert_int_equal(cts_jwt_payload(t, &j), CTS_EJSON);
        assert_null(j);
        assert_int_equal(cts_jwt_claims(t, &cid, &exp), CTS_EJSON);
        assert_null(cid);
        assert_int_equal(exp, 0);
        assert_int_equal(cts_jwt_exp(t, &e), CTS_EJSON);
        free(t);
        free(p);
    }
}

/* Shapes and alphabets that are not the JWS compact form: each case is
 * the text before and after a valid payload segment. */
static void test_bad_shape(void **state)
{
    char *p = cts_base64url_encode("{\"exp\":1}", 9);
    static const char *const cases[][2] = {
        {"", ""},       /* payload alone */
        {"h.", ""},     /* two segments */
        {"h.", ".s.x"}, /* four */
        {".", ".s"},    /* empty header */
        {"h.", ".s="},  /* padding in the signature */
        {"h.", "=.s"},  /* padding in the payload */
        {"h+.", ".s"},  /* base64 (not url) alphabet in the header */
        {"h.", ".s/"},  /* ... and in the signature */
        {"h.", "!.s"},  /* not base64 at all */
        {"h.", "A.s"},  /* a lone sextet: not a whole byte */
        {"h.", " .s"},  /* a space */
    };
    size_t i;
    long e = 0;
    json_t *j;
    char *t;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t = cts_xasprintf("%s%s%s", cases[i][0], p, cases[i][1]);
        j = NULL;
        if (cts_jwt_payload(t, &j) != CTS_EJSON)
            fail_msg("accepted as a JWT: %s", t);
        assert_null(j);
        free(t);
    }
    assert_int_equal(cts_jwt_payload("h..s", &j), CTS_EJSON);
    /* An unsecured JWT (empty signature) is still a JWT. */
    t = cts_xasprintf("h.%s.", p);
    assert_int_equal(cts_jwt_exp(t, &e), 0);
    assert_int_equal(e, 1);
    free(t);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_exp),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_missing_exp),
        cmocka_unit_test(test_real_exp),
        cmocka_unit_test(test_cid_types),
        cmocka_unit_test(test_not_json_object),
        cmocka_unit_test(test_bad_shape),
    };
    return cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
}
