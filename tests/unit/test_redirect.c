/* test_redirect.c — URI parsing, redirect-URI diagnosis, error advice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cts_oauth.h"
#include "cts_redirect.h"

#define V3_AUTH "https://authz.constantcontact.com/oauth2/default/v1"
#define V2_AUTH "https://oauth2.constantcontact.com/oauth2"
#define GOOD    "http://127.0.0.1:53682/callback"

static void test_parse(void **state)
{
    struct cts_uri u;
    (void)state;
    assert_int_equal(cts_uri_parse("HTTP://LocalHost:8080/cb?x=1#f", &u), 0);
    assert_string_equal(u.scheme, "http");
    assert_string_equal(u.host, "localhost");
    assert_string_equal(u.port_str, "8080");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/cb");
    assert_string_equal(u.query, "x=1");
    assert_string_equal(u.fragment, "f");
    assert_true(cts_uri_is_loopback(&u));
    cts_uri_free(&u);

    assert_int_equal(cts_uri_parse("https://example.com", &u), 0);
    assert_int_equal(u.port, 443);
    assert_null(u.port_str);
    assert_string_equal(u.path, "");
    assert_false(cts_uri_is_loopback(&u));
    cts_uri_free(&u);

    assert_int_equal(cts_uri_parse("http://[::1]:9/x", &u), 0);
    assert_string_equal(u.host, "[::1]");
    assert_true(cts_uri_is_loopback(&u));
    cts_uri_free(&u);

    assert_int_equal(cts_uri_parse("http://127.1.2.3/", &u), 0);
    assert_true(cts_uri_is_loopback(&u));
    cts_uri_free(&u);
    assert_int_equal(cts_uri_parse("http://127.example.com/", &u), 0);
    assert_false(cts_uri_is_loopback(&u));
    cts_uri_free(&u);

    static const char *const bad[] = {"",
                                      "/callback",
                                      "callback",
                                      "127.0.0.1:8080/cb",
                                      "ftp://h/x",
                                      "http://",
                                      "http://:80/x",
                                      "http://h:/x",
                                      "http://h:0/x",
                                      "http://h:65536/x",
                                      "http://h:8a/x",
                                      "http://h x/",
                                      "http://h/ x",
                                      "http://h/x\n",
                                      "http://[::1/x",
                                      "mailto:a@b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cts_uri_parse(bad[i], &u), CTS_EUSAGE);
        assert_null(u.host);
    }
}

/* Run the check; return the problem and keep the text for asserts. */
static enum cts_redirect_problem chk(const char *uri, const char *reg,
                                     const char *auth, char **text)
{
    struct cts_buf b;
    enum cts_redirect_problem pb;
    cts_buf_init(&b, 0);
    pb = cts_redirect_check(uri, reg, auth, &b);
    *text = cts_buf_detach(&b);
    return pb;
}

static void test_good(void **state)
{
    char *t;
    (void)state;
    assert_int_equal(chk(GOOD, NULL, V3_AUTH, &t), CTS_REDIR_OK);
    assert_string_equal(t, "");
    free(t);
    assert_int_equal(chk(GOOD, GOOD, V3_AUTH, &t), CTS_REDIR_OK);
    free(t);
    assert_int_equal(chk("https://app.example.com/oauth/cb?tenant=7",
                         "https://app.example.com/oauth/cb?tenant=7", V2_AUTH,
                         &t),
                     CTS_REDIR_OK);
    free(t);
    /* The sandbox: same loopback host as the auth server, other port. */
    assert_int_equal(chk("http://127.0.0.1:40001/callback", NULL,
                         "http://127.0.0.1:40000/oauth2/default/v1", &t),
                     CTS_REDIR_OK);
    free(t);
}

static void test_auth_server(void **state)
{
    char *t;
    (void)state;
    /* The seed's mistake, with the real v2 and v3 servers... */
    assert_int_equal(
        chk(V2_AUTH "/oauth/siteowner/authorize", NULL, V2_AUTH, &t),
        CTS_REDIR_AUTH_SERVER);
    assert_non_null(strstr(t, "authorization server"));
    assert_non_null(strstr(t, "OWN callback"));
    assert_non_null(strstr(t, GOOD));
    free(t);
    assert_int_equal(
        chk("https://authz.constantcontact.com/callback", NULL, NULL, &t),
        CTS_REDIR_AUTH_SERVER);
    free(t);
    /* ... a known CC host even when --auth-url points elsewhere ... */
    assert_int_equal(chk("https://oauth2.constantcontact.com/cb", NULL,
                         "http://127.0.0.1:40000/oauth2", &t),
                     CTS_REDIR_AUTH_SERVER);
    free(t);
    /* ... and the sandbox (same host and port as --auth-url). */
    assert_int_equal(chk("http://127.0.0.1:40000/oauth2/callback", NULL,
                         "http://127.0.0.1:40000/oauth2", &t),
                     CTS_REDIR_AUTH_SERVER);
    free(t);
    /* A registered URI that is right is offered as the fix... */
    assert_int_equal(chk(V3_AUTH "/authorize", GOOD, V3_AUTH, &t),
                     CTS_REDIR_AUTH_SERVER);
    assert_non_null(strstr(t, "registered redirect URI is " GOOD));
    free(t);
    /* ... one that names the authorization server is the same mistake,
     * made in the developer portal or the config file. */
    assert_int_equal(chk(GOOD, V3_AUTH "/authorize", V3_AUTH, &t),
                     CTS_REDIR_AUTH_SERVER);
    assert_non_null(strstr(t, "the registered redirect URI"));
    assert_non_null(strstr(t, "developer portal"));
    free(t);
    assert_int_equal(chk(V3_AUTH "/x", V3_AUTH "/y", V3_AUTH, &t),
                     CTS_REDIR_AUTH_SERVER);
    assert_null(strstr(t, "pass that"));
    free(t);
}

static void test_shape_mistakes(void **state)
{
    char *t;
    (void)state;
    assert_int_equal(chk(NULL, NULL, V3_AUTH, &t), CTS_REDIR_MISSING);
    free(t);
    assert_int_equal(chk("/callback", NULL, V3_AUTH, &t), CTS_REDIR_MALFORMED);
    assert_non_null(strstr(t, "absolute"));
    free(t);
    assert_int_equal(chk("localhost:53682/callback", NULL, V3_AUTH, &t),
                     CTS_REDIR_MALFORMED);
    free(t);
    assert_int_equal(chk("http://u:p@127.0.0.1:1/cb", NULL, V3_AUTH, &t),
                     CTS_REDIR_MALFORMED);
    free(t);
    assert_int_equal(chk(GOOD "#top", NULL, V3_AUTH, &t), CTS_REDIR_FRAGMENT);
    assert_non_null(strstr(t, "fragment"));
    free(t);
    assert_int_equal(chk("http://app.example.com/cb", NULL, V3_AUTH, &t),
                     CTS_REDIR_HTTP_REMOTE);
    assert_non_null(strstr(t, "https://"));
    free(t);
    assert_int_equal(chk(GOOD "?state=abc", NULL, V3_AUTH, &t),
                     CTS_REDIR_RESERVED_QUERY);
    free(t);
    assert_int_equal(chk(GOOD "?x=1&code=2", NULL, V3_AUTH, &t),
                     CTS_REDIR_RESERVED_QUERY);
    free(t);
    /* "codex" is not "code". */
    assert_int_equal(chk(GOOD "?codex=1", NULL, V3_AUTH, &t), CTS_REDIR_OK);
    free(t);
    assert_int_equal(chk(GOOD, "127.0.0.1/cb", V3_AUTH, &t),
                     CTS_REDIR_REG_MALFORMED);
    free(t);
}

/* The caret sits under the first differing character. */
static void assert_caret(const char *t, const char *given)
{
    const char *l1 = strstr(t, "--redirect-uri:   ");
    const char *l3 = strstr(t, "^ first difference");
    const char *nl;
    const char *reg = strstr(t, "registered:       ");
    size_t col_uri, col_caret, i = 0;
    assert_non_null(l1);
    assert_non_null(l3);
    assert_non_null(reg);
    reg += strlen("registered:       ");
    while (given[i] != '\0' && given[i] == reg[i])
        i++;
    nl = l1;
    while (nl > t && nl[-1] != '\n')
        nl--;
    col_uri = (size_t)(l1 - nl) + strlen("--redirect-uri:   ");
    nl = l3;
    while (nl > t && nl[-1] != '\n')
        nl--;
    col_caret = (size_t)(l3 - nl);
    assert_int_equal(col_caret, col_uri + i);
}

static void test_registered_mismatch(void **state)
{
    static const struct {
        const char *given, *reg;
        enum cts_redirect_problem pb;
    } cases[] = {
        {"http://localhost:53682/callback", GOOD, CTS_REDIR_LOCALHOST},
        {GOOD, "http://localhost:53682/callback", CTS_REDIR_LOCALHOST},
        {"https://app.example.com/cb", "http://app.example.com/cb",
         CTS_REDIR_SCHEME},
        {"https://app.example.com/cb", "https://www.example.com/cb",
         CTS_REDIR_HOST},
        {"http://127.0.0.1:53683/callback", GOOD, CTS_REDIR_PORT},
        {"https://app.example.com:443/cb", "https://app.example.com/cb",
         CTS_REDIR_PORT},
        {"http://127.0.0.1:53682/callback/", GOOD, CTS_REDIR_PATH},
        {"http://127.0.0.1:53682/oauth", GOOD, CTS_REDIR_PATH},
        {GOOD "?a=1", GOOD, CTS_REDIR_QUERY},
        {"https://app.example.com/c%62", "https://app.example.com/cb",
         CTS_REDIR_PATH},
        {"https://App.example.com/cb", "https://app.example.com/cb",
         CTS_REDIR_DIFFERENT},
    };
    size_t i;
    char *t;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(chk(cases[i].given, cases[i].reg, V3_AUTH, &t),
                         cases[i].pb);
        assert_non_null(strstr(t, cases[i].reg));
        assert_non_null(strstr(t, cases[i].given));
        assert_caret(t, cases[i].given);
        free(t);
    }
}

static void test_explain(void **state)
{
    struct cts_buf b;
    (void)state;
    cts_buf_init(&b, 0);
    cts_oauth_explain("redirect_uri_mismatch", "no match",
                      "http://localhost:1/cb", "http://127.0.0.1:1/cb", &b);
    assert_non_null(strstr(b.data, "redirect_uri_mismatch"));
    assert_non_null(strstr(b.data, "no match"));
    assert_non_null(strstr(b.data, "http://localhost:1/cb"));
    assert_non_null(strstr(b.data, "^ first difference"));
    cts_buf_reset(&b);
    cts_oauth_explain("invalid_grant", NULL, NULL, NULL, &b);
    assert_non_null(strstr(b.data, "ctct-sync auth"));
    assert_non_null(strstr(b.data, "already used"));
    cts_buf_reset(&b);
    cts_oauth_explain("access_denied", NULL, NULL, NULL, &b);
    assert_non_null(strstr(b.data, "Allow"));
    cts_buf_reset(&b);
    cts_oauth_explain("invalid_client", NULL, NULL, NULL, &b);
    assert_non_null(strstr(b.data, "--api-key"));
    cts_buf_reset(&b);
    cts_oauth_explain("weird", NULL, NULL, NULL, &b);
    assert_non_null(strstr(b.data, "\"weird\""));
    cts_buf_free(&b);
}

/* RFC 7636 appendix B. */
static void test_pkce_vector(void **state)
{
    char *c;
    (void)state;
    c = cts_oauth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_string_equal(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_auth_server),
        cmocka_unit_test(test_shape_mistakes),
        cmocka_unit_test(test_registered_mismatch),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_pkce_vector),
    };
    return cmocka_run_group_tests_name("redirect", tests, NULL, NULL);
}
