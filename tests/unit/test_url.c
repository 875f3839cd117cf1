/* test_url.c — cts_url_follow: the next-page links a pager may follow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_url.h"

static void follows(const char *base, const char *link, const char *want)
{
    struct cts_error err = {0};
    char *out = NULL;
    int rc = cts_url_follow(base, link, &out, &err);
    if (rc != 0)
        fail_msg("%s + %s refused: %s", base, link, err.msg);
    assert_string_equal(out, want);
    free(out);
}

static void refuses(const char *base, const char *link)
{
    struct cts_error err = {0};
    char *out = (char *)"untouched";
    assert_int_equal(cts_url_follow(base, link, &out, &err), CTS_EHTTP);
    assert_null(out);
    assert_int_equal(err.exit_code, CTS_EX_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "next-page link"));
}

/* Paths, queries and relative references resolve against the base. */
static void test_resolves_relative_links(void **state)
{
    (void)state;
    follows("https://api.cc.email/v3", "/v3/contact_lists?cursor=abc",
            "https://api.cc.email/v3/contact_lists?cursor=abc");
    follows("http://127.0.0.1:8080/v3", "/v3/contacts?cursor=x",
            "http://127.0.0.1:8080/v3/contacts?cursor=x");
    follows("https://api.cc.email/v3/", "contacts?cursor=x",
            "https://api.cc.email/v3/contacts?cursor=x");
    follows("https://api.cc.email/v3", "contacts?cursor=x",
            "https://api.cc.email/contacts?cursor=x");
    follows("https://api.cc.email", "contacts",
            "https://api.cc.email/contacts");
    follows("https://api.cc.email/v3/contacts?limit=5", "?cursor=y",
            "https://api.cc.email/v3/contacts?cursor=y");
    follows("https://api.cc.email/v3", "//api.cc.email/v3/x",
            "https://api.cc.email/v3/x");
}

/* Absolute links of the same origin, spelled differently, are followed. */
static void test_same_origin_absolute(void **state)
{
    (void)state;
    follows("https://api.cc.email/v3", "https://api.cc.email/v3/x?c=1",
            "https://api.cc.email/v3/x?c=1");
    follows("https://api.cc.email/v3", "HTTPS://API.CC.email:443/v3/x",
            "HTTPS://API.CC.email:443/v3/x");
    follows("http://127.0.0.1:9/v3", "http://127.0.0.1:9/v3/x",
            "http://127.0.0.1:9/v3/x");
}

/* Another scheme, host or port, user info, or a doubtful character: the
 * token must not go there. */
static void test_refuses_other_origins(void **state)
{
    (void)state;
    refuses("http://127.0.0.1:8080/v3", "http://other-host/steal?cursor=1");
    refuses("http://127.0.0.1:8080/v3", "http://127.0.0.1:8081/v3/x");
    refuses("http://127.0.0.1:8080/v3", "http://127.0.0.2:8080/v3/x");
    refuses("https://api.cc.email/v3", "http://api.cc.email/v3/x");
    refuses("https://api.cc.email/v3", "https://api.cc.email:8443/v3/x");
    refuses("https://api.cc.email/v3", "https://api.cc.email.evil.io/v3/x");
    refuses("https://api.cc.email/v3", "//evil.example/v3/x");
    refuses("https://api.cc.email/v3", "https://u:p@api.cc.email/v3/x");
    refuses("https://api.cc.email/v3", "https://evil.example\\@api.cc.email/");
    refuses("https://api.cc.email/v3", "ftp://api.cc.email/v3/x");
    refuses("https://api.cc.email/v3", "javascript:alert(1)");
    refuses("https://api.cc.email/v3", "/v3/x\r\nHost: evil");
    refuses("https://api.cc.email/v3", "");
}

/* The refusal names the link with secret values masked. */
static void test_message_masks_secrets(void **state)
{
    struct cts_error err = {0};
    char *out;
    (void)state;
    assert_int_equal(cts_url_follow("https://api.constantcontact.com/v2",
                                    "https://evil.example/v2/contacts?api_key="
                                    "abcdefghijklmnopqrstuvwxyz",
                                    &out, &err),
                     CTS_EHTTP);
    assert_non_null(strstr(err.msg, "https://evil.example/v2/contacts"));
    assert_null(strstr(err.msg, "abcdefghijklmnopqrstuvwxyz"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolves_relative_links),
        cmocka_unit_test(test_same_origin_absolute),
        cmocka_unit_test(test_refuses_other_origins),
        cmocka_unit_test(test_message_masks_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
