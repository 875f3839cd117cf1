/*
 * test_pager.c — paged listings: which next links are followed (the origin
 * of --base-url only, so the token and the api_key never leave it; v2 gets
 * its api_key back, v3 none; an empty link is the last page), and the
 * pager against the real ctct-sandbox: every page of a v3 and a v2
 * listing reaches the page callback once, a callback that says stop ends
 * the listing there, and a refused token ends it as AUTH.
 *
 * The sandbox binary: $CTS_SANDBOX, else $BUILD/ctct-sandbox, else
 * build/ctct-sandbox; missing: the live cases are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "cts_pager.h"
#include "cts_send.h"
#include "cts_util.h"
#include "testutil.h"

#define V2_KEY   "demo-v2-key-0000000000000001"
#define V2_TOKEN "demo-v2-token-000000000000000000001"
#define NSEED    5

static pid_t sb_pid = -1;
static char sb_url[300], sb_path[1024];

/* ---- the next link ---- */

static json_t *page(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);

    assert_non_null(j);
    return j;
}

static void test_next_link(void **state)
{
    json_t *v3 = page("{\"contacts\":[],\"_links\":{\"next\":{\"href\":"
                      "\"/v3/contacts?cursor=abc\"}}}");
    json_t *v2 = page("{\"results\":[],\"meta\":{\"pagination\":{"
                      "\"next_link\":\"/v2/contacts?next=xyz\"}}}");
    json_t *last = page("{\"contacts\":[],\"_links\":{\"next\":{\"href\":"
                        "\"\"}},\"meta\":{\"pagination\":{}}}");

    (void)state;
    assert_string_equal(cts_pager_next_link(CTS_API_V3, v3),
                        "/v3/contacts?cursor=abc");
    assert_string_equal(cts_pager_next_link(CTS_API_V2, v2),
                        "/v2/contacts?next=xyz");
    /* each API's own place only */
    assert_null(cts_pager_next_link(CTS_API_V2, v3));
    assert_null(cts_pager_next_link(CTS_API_V3, v2));
    assert_null(cts_pager_next_link(CTS_API_V3, last));
    assert_null(cts_pager_next_link(CTS_API_V2, last));
    assert_null(cts_pager_next_link(CTS_API_V3, NULL));
    json_decref(v3);
    json_decref(v2);
    json_decref(last);
}

static void test_next_url_origin(void **state)
{
    static const char *const refused[] = {
        "https://evil.example/v3/contacts?cursor=abc",
        "//evil.example/v3/contacts?cursor=abc",
        "http://api.cc.email/v3/contacts?cursor=abc", /* downgrade */
        "https://api.cc.email:8443/v3/contacts?cursor=abc",
        "https://user:pw@api.cc.email/v3/contacts?cursor=abc",
    };
    struct cts_error err = {0};
    char *url = (char *)"unset", text[300];
    json_t *j;
    size_t i;

    (void)state;
    j = page("{\"_links\":{\"next\":{\"href\":\"/v3/contacts?cursor=abc\"}}}");
    assert_int_equal(cts_pager_next_url(CTS_API_V3, "https://api.cc.email/v3",
                                        NULL, j, &url, &err),
                     0);
    assert_string_equal(url, "https://api.cc.email/v3/contacts?cursor=abc");
    free(url);
    json_decref(j);

    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"_links\":{\"next\":{\"href\":\"%s\"}}}", refused[i]);
        j = page(text);
        memset(&err, 0, sizeof(err));
        url = (char *)"unset";
        assert_int_equal(cts_pager_next_url(CTS_API_V3,
                                            "https://api.cc.email/v3", NULL, j,
                                            &url, &err),
                         CTS_EHTTP);
        assert_null(url);
        assert_int_equal(err.exit_code, CTS_EX_UNAVAILABLE);
        json_decref(j);
    }

    /* v2: the api_key goes back on (the link carries only `next`) */
    j = page("{\"meta\":{\"pagination\":{\"next_link\":"
             "\"/v2/lists/1/contacts?next=xyz\"}}}");
    assert_int_equal(cts_pager_next_url(CTS_API_V2,
                                        "https://api.constantcontact.com/v2",
                                        "KEY", j, &url, &err),
                     0);
    assert_string_equal(url, "https://api.constantcontact.com/v2/lists/1/"
                             "contacts?next=xyz&api_key=KEY");
    free(url);
    json_decref(j);

    /* the last page */
    j = page("{\"contacts\":[]}");
    url = (char *)"unset";
    assert_int_equal(cts_pager_next_url(CTS_API_V3, "https://api.cc.email/v3",
                                        NULL, j, &url, &err),
                     0);
    assert_null(url);
    json_decref(j);
}

/* ---- against the sandbox ---- */

static int setup(void **state)
{
    static const char *const args[] = {"--rate", "0", "--daily-quota", "0",
                                       NULL};
    const char *path = tu_sandbox_path(sb_path, sizeof(sb_path)), *why;
    json_t *r;

    *state = NULL;
    if (access(path, X_OK) != 0) {
        fprintf(stderr, "# SKIP: sandbox binary %s not found\n", path);
        return 0;
    }
    sb_pid = tu_sandbox_start(path, args, sb_url, sizeof(sb_url), &why);
    if (sb_pid < 0) {
        fprintf(stderr, "# %s: %s\n", path, why);
        return -1;
    }
    r = tu_admin(
        sb_url, "POST", "/_sandbox/contacts",
        "{\"account\":\"demo\",\"contacts\":["
        "{\"email\":\"p1@example.com\"},{\"email\":\"p2@example.com\"},"
        "{\"email\":\"p3@example.com\"},{\"email\":\"p4@example.com\"},"
        "{\"email\":\"p5@example.com\"}]}");
    json_decref(r);
    *state = sb_url;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_sandbox_stop(&sb_pid);
    return 0;
}

struct run {
    uv_loop_t loop;
    struct cts_config cfg;
    struct cts_send s;
    char base[400];
    char *v3_token;
    long stop_after; /* pages; 0 = never */
    long pages, items;
    char emails[1024];
    int done;
    struct cts_pager_result res;
};

static int on_page(void *arg, json_t *root, json_t *items, long index)
{
    struct run *x = arg;
    const char *key = x->cfg.api == CTS_API_V2 ? "email_addresses" : NULL;
    json_t *it;
    size_t i, n;

    assert_non_null(root);
    assert_int_equal(index, x->pages);
    x->pages++;
    json_array_foreach(items, i, it)
    {
        const char *e =
            key != NULL ? json_string_value(json_object_get(
                              json_array_get(json_object_get(it, key), 0),
                              "email_address"))
                        : json_string_value(json_object_get(
                              json_object_get(it, "email_address"), "address"));
        n = strlen(x->emails);
        snprintf(x->emails + n, sizeof(x->emails) - n, "%s ",
                 e != NULL ? e : "?");
        x->items++;
    }
    return x->stop_after > 0 && x->pages >= x->stop_after;
}

static void on_done(void *arg, const struct cts_pager_result *r)
{
    struct run *x = arg;

    x->done++;
    x->res = *r;
}

static void run_list(struct run *x, enum cts_api api, const char *token,
                     long stop_after)
{
    struct cts_send_params p;
    struct cts_error err = {0};
    int i;

    memset(x, 0, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->cfg.api = api;
    x->cfg.api_key = api == CTS_API_V2 ? (char *)V2_KEY : NULL;
    x->cfg.token = (char *)token;
    x->cfg.concurrency = 4;
    x->cfg.retries = 2;
    x->cfg.timeout_ms = 10000;
    snprintf(x->base, sizeof(x->base), "%s/%s", sb_url,
             api == CTS_API_V2 ? "v2" : "v3");
    x->cfg.base_url = x->base;
    x->stop_after = stop_after;
    memset(&p, 0, sizeof(p));
    p.loop = &x->loop;
    p.cfg = &x->cfg;
    p.retry_base_ms = 20;
    assert_int_equal(cts_send_init(&x->s, &p, &err), 0);
    assert_int_equal(
        cts_pager_start(&(struct cts_pager_params){
            .cfg = &x->cfg,
            .send = &x->s,
            .path = "/contacts",
            .query = api == CTS_API_V2 ? "limit=2" : "status=all&limit=2",
            .page = on_page,
            .done = on_done,
            .arg = x}),
        0);
    for (i = 0; i < 200000 && x->done == 0; i++)
        uv_run(&x->loop, UV_RUN_ONCE);
    assert_int_equal(x->done, 1);
    cts_send_close(&x->s);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    /* done ran once only */
    assert_int_equal(x->done, 1);
}

static char *v3_token(void)
{
    json_t *r = tu_admin(sb_url, "POST", "/_sandbox/token",
                         "{\"api\":\"v3\",\"account\":\"demo\"}");
    char *t =
        cts_xstrdup(json_string_value(json_object_get(r, "access_token")));

    json_decref(r);
    return t;
}

/* Five contacts, two a page: three pages, each contact once, in order. */
static void test_every_page(void **state)
{
    struct run x;
    char *tok;

    TU_NEED_SANDBOX();
    tok = v3_token();
    run_list(&x, CTS_API_V3, tok, 0);
    assert_int_equal(x.res.end, CTS_PAGER_DONE);
    assert_int_equal(x.res.pages, 3);
    assert_int_equal(x.res.items, NSEED);
    assert_int_equal(x.pages, 3);
    assert_string_equal(x.emails, "p1@example.com p2@example.com "
                                  "p3@example.com p4@example.com "
                                  "p5@example.com ");
    /* v2: the same through meta.pagination.next_link plus the api_key */
    run_list(&x, CTS_API_V2, V2_TOKEN, 0);
    assert_int_equal(x.res.end, CTS_PAGER_DONE);
    assert_int_equal(x.res.pages, 3);
    assert_int_equal(x.items, NSEED);
    assert_string_equal(x.emails, "p1@example.com p2@example.com "
                                  "p3@example.com p4@example.com "
                                  "p5@example.com ");
    free(tok);
}

/* The page callback's stop ends the listing: no further page is asked. */
static void test_cancelled(void **state)
{
    struct run x;
    char *tok;

    TU_NEED_SANDBOX();
    tok = v3_token();
    run_list(&x, CTS_API_V3, tok, 1);
    assert_int_equal(x.res.end, CTS_PAGER_CANCELLED);
    assert_int_equal(x.res.pages, 1);
    assert_int_equal(x.s.requests, 1);
    free(tok);
}

/* A token the API refuses: AUTH, and the page callback never runs. */
static void test_auth(void **state)
{
    struct run x;

    TU_NEED_SANDBOX();
    run_list(&x, CTS_API_V3, "not-a-token", 0);
    assert_int_equal(x.res.end, CTS_PAGER_AUTH);
    assert_int_equal(x.res.status, 401);
    assert_int_equal(x.pages, 0);
    assert_non_null(strstr(x.res.msg, "refused the access token"));
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_next_link),
        cmocka_unit_test(test_next_url_origin),
    };
    const struct CMUnitTest live[] = {
        cmocka_unit_test(test_every_page),
        cmocka_unit_test(test_cancelled),
        cmocka_unit_test(test_auth),
    };
    int rc = cmocka_run_group_tests_name("pager", pure, NULL, NULL);

    return rc +
           cmocka_run_group_tests_name("pager_sandbox", live, setup, teardown);
}
