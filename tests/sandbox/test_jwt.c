/* test_jwt.c — the sandbox's pure OAuth primitives: HMAC-SHA256 (RFC 4231),
 * HS256 JWT round trip and tamper detection (plus the jwt.io vector), PKCE
 * S256 (RFC 7636 appendix B), exact redirect-URI matching, URL encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* jwt.c lives in the sandbox binary, not in libcts.a: compile it in. */
#include "sandbox/jwt.c"

static void hex_of(const uint8_t *d, char out[65])
{
    cts_hex(d, 32, out);
}

static void test_hmac_rfc4231(void **state)
{
    uint8_t key[131], mac[32];
    char hex[65];
    (void)state;

    /* Test case 1: 20-byte 0x0b key. */
    memset(key, 0x0b, 20);
    sbo_hmac_sha256(key, 20, "Hi There", 8, mac);
    hex_of(mac, hex);
    assert_string_equal(
        hex,
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    /* Test case 2: short key. */
    sbo_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    hex_of(mac, hex);
    assert_string_equal(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* Test case 6: key longer than the block is hashed first. */
    memset(key, 0xaa, 131);
    sbo_hmac_sha256(key, 131,
                    "Test Using Larger Than Block-Size Key - Hash Key First",
                    54, mac);
    hex_of(mac, hex);
    assert_string_equal(
        hex,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_jwt_known_vector(void **state)
{
    /* The HS256 example of jwt.io, produced by an independent encoder. */
    const char *tok =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2Mj"
        "M5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    json_t *pl = NULL;
    (void)state;
    assert_int_equal(sbo_jwt_decode("your-256-bit-secret", tok, &pl),
                     SBO_JWT_OK);
    assert_non_null(pl);
    assert_string_equal(json_string_value(json_object_get(pl, "name")),
                        "John Doe");
    assert_int_equal(json_integer_value(json_object_get(pl, "iat")),
                     1516239022);
    json_decref(pl);
    assert_int_equal(sbo_jwt_decode("another-secret", tok, &pl),
                     SBO_JWT_ESIGNATURE);
    assert_null(pl);
}

static const struct sbo_jwt_claims CLAIMS = {
    .cid = "demo-v3-client-00000000000001",
    .sub = "demo",
    .platform_user_id = "a07e1demo0001",
    .iat = 1767225600,
    .exp = 4102444800LL,
    .scope = "contact_data account_read offline_access",
    .jti = "jti-1",
};

static void test_jwt_round_trip(void **state)
{
    char *t1 = sbo_jwt_encode(SBO_JWT_SECRET, &CLAIMS);
    char *t2 = sbo_jwt_encode(SBO_JWT_SECRET, &CLAIMS);
    json_t *pl = NULL, *hdr;
    size_t n;
    char *raw;
    (void)state;

    /* Deterministic: the demo token depends on it. */
    assert_string_equal(t1, t2);
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, t1, &pl), SBO_JWT_OK);
    assert_string_equal(json_string_value(json_object_get(pl, "cid")),
                        CLAIMS.cid);
    assert_string_equal(json_string_value(json_object_get(pl, "aud")),
                        "https://api.cc.email/v3");
    assert_string_equal(json_string_value(json_object_get(pl, "iss")),
                        "ctct-sandbox");
    assert_string_equal(
        json_string_value(json_object_get(pl, "platform_user_id")),
        "a07e1demo0001");
    assert_int_equal(json_integer_value(json_object_get(pl, "exp")),
                     4102444800LL);
    assert_int_equal(json_array_size(json_object_get(pl, "scp")), 3);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(pl, "scp"), 2)),
        "offline_access");
    json_decref(pl);

    /* Header as the brief fixes it. */
    raw = cts_base64_decode(t1, strcspn(t1, "."), &n);
    assert_non_null(raw);
    hdr = json_loads(raw, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")),
                        "HS256");
    assert_string_equal(json_string_value(json_object_get(hdr, "kid")),
                        "ctct-sandbox");
    json_decref(hdr);
    free(raw);

    /* Different claims, different token. */
    {
        struct sbo_jwt_claims c = CLAIMS;
        char *t3;
        c.jti = "jti-2";
        t3 = sbo_jwt_encode(SBO_JWT_SECRET, &c);
        assert_string_not_equal(t1, t3);
        free(t3);
    }
    free(t1);
    free(t2);
}

static void test_jwt_tamper(void **state)
{
    char *t = sbo_jwt_encode(SBO_JWT_SECRET, &CLAIMS);
    char *p1 = strchr(t, '.') + 1;
    char *p2 = strchr(p1, '.') + 1;
    json_t *pl = (json_t *)1;
    char *forged, *body;
    size_t i;
    (void)state;

    /* Flip each character of the payload and of the signature in turn:
     * every single change must be caught. */
    for (i = 0; t[i] != '\0'; i++) {
        char save = t[i];
        if (&t[i] < p1 || t[i] == '.')
            continue;
        t[i] = (char)(save == 'A' ? 'B' : 'A');
        assert_int_not_equal(sbo_jwt_decode(SBO_JWT_SECRET, t, &pl),
                             SBO_JWT_OK);
        assert_null(pl);
        t[i] = save;
    }
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, t, NULL), SBO_JWT_OK);

    /* Wrong key. */
    assert_int_equal(sbo_jwt_decode("not-the-secret", t, NULL),
                     SBO_JWT_ESIGNATURE);

    /* Signature stripped, or alg "none". */
    *(p2 - 1) = '\0';
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, t, NULL), SBO_JWT_EFORMAT);
    *(p2 - 1) = '.';
    body = cts_base64url_encode("{\"alg\":\"none\",\"typ\":\"JWT\"}", 26);
    forged = cts_xasprintf("%s.%.*s.", body, (int)(p2 - p1 - 1), p1);
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, forged, NULL),
                     SBO_JWT_EFORMAT);
    free(forged);
    forged = cts_xasprintf("%s.%.*s.%s", body, (int)(p2 - p1 - 1), p1, p2);
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, forged, NULL),
                     SBO_JWT_EALG);
    free(forged);
    free(body);

    /* Garbage. */
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, "", NULL), SBO_JWT_EFORMAT);
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, "a.b.c.d", NULL),
                     SBO_JWT_EFORMAT);
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET,
                                    "demo-v2-token-000000000000000000001",
                                    NULL),
                     SBO_JWT_EFORMAT);
    assert_int_equal(sbo_jwt_decode(SBO_JWT_SECRET, "e30.W10.abc", NULL),
                     SBO_JWT_EFORMAT); /* payload "[]" is not an object */
    free(t);
}

static void test_pkce(void **state)
{
    (void)state;
    /* RFC 7636 appendix B. */
    assert_true(
        sbo_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    /* One character off in either. */
    assert_false(
        sbo_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
                         "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    assert_false(
        sbo_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    /* The plain method (verifier == challenge) is not S256. */
    assert_false(
        sbo_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
    /* Too short, bad characters, missing. */
    assert_false(sbo_pkce_s256_ok("short", "x"));
    assert_false(
        sbo_pkce_s256_ok("dBjftJeZ4CVP+mB92K27uhbUJU1p1r/wW1gFWFOEjXk",
                         "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    assert_false(sbo_pkce_s256_ok(NULL, "x"));
    assert_false(
        sbo_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", NULL));
}

static void test_redirect_match(void **state)
{
    const char *reg = "http://127.0.0.1:8765/callback";
    (void)state;
    assert_null(sbo_redirect_mismatch(reg, reg));
    assert_string_equal(
        sbo_redirect_mismatch(reg, "https://127.0.0.1:8765/callback"),
        "scheme");
    assert_string_equal(
        sbo_redirect_mismatch(reg, "http://localhost:8765/callback"), "host");
    assert_string_equal(
        sbo_redirect_mismatch(reg, "http://127.0.0.1:8766/callback"), "port");
    assert_string_equal(sbo_redirect_mismatch(reg, "http://127.0.0.1/callback"),
                        "port");
    assert_string_equal(
        sbo_redirect_mismatch(reg, "http://127.0.0.1:8765/callback/"), "path");
    assert_string_equal(
        sbo_redirect_mismatch(reg, "http://127.0.0.1:8765/Callback"), "path");
    assert_string_equal(
        sbo_redirect_mismatch(reg, "http://127.0.0.1:8765/callback?x=1"),
        "query");
    assert_string_equal(sbo_redirect_mismatch("http://127.0.0.1:8765/cb?a=1",
                                              "http://127.0.0.1:8765/cb?a=2"),
                        "query");
    assert_string_equal(
        sbo_redirect_mismatch(reg, "http://127.0.0.1:8765/callback#f"),
        "fragment");
    /* No normalisation: case, default ports and escapes all count. */
    assert_string_equal(
        sbo_redirect_mismatch(reg, "HTTP://127.0.0.1:8765/callback"), "scheme");
    assert_string_equal(sbo_redirect_mismatch("https://example.com/cb",
                                              "https://example.com:443/cb"),
                        "port");
    assert_string_equal(sbo_redirect_mismatch("https://example.com/a%20b",
                                              "https://example.com/a b"),
                        "path");
    assert_string_equal(sbo_redirect_mismatch(reg, "/callback"), "uri");
    assert_string_equal(sbo_redirect_mismatch(reg, ""), "uri");
    assert_string_equal(sbo_redirect_mismatch(reg, NULL), "uri");
    assert_string_equal(
        sbo_redirect_mismatch("http://[::1]:8765/cb", "http://[::1]:8766/cb"),
        "port");
}

static void test_redirect_score(void **state)
{
    const char *reg = "http://127.0.0.1:8765/callback";
    (void)state;
    assert_int_equal(sbo_redirect_score(reg, reg), 6);
    assert_int_equal(sbo_redirect_score(reg, "https://127.0.0.1:8765/callback"),
                     5);
    assert_int_equal(
        sbo_redirect_score("https://app.example.com/oauth/cb?tenant=7",
                           "https://127.0.0.1:8765/callback"),
        2); /* scheme and fragment (none) */
    assert_int_equal(sbo_redirect_score(reg, "/callback"), -1);
    assert_int_equal(sbo_redirect_score(NULL, reg), -1);
}

static void test_url_encode(void **state)
{
    char *v = sbo_url_encode("http://h:1/p?q=a b&c~");
    (void)state;
    assert_string_equal(v, "http%3A%2F%2Fh%3A1%2Fp%3Fq%3Da%20b%26c~");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_jwt_known_vector),
        cmocka_unit_test(test_jwt_round_trip),
        cmocka_unit_test(test_jwt_tamper),
        cmocka_unit_test(test_pkce),
        cmocka_unit_test(test_redirect_match),
        cmocka_unit_test(test_redirect_score),
        cmocka_unit_test(test_url_encode),
    };
    return cmocka_run_group_tests_name("sandbox_jwt", tests, NULL, NULL);
}
