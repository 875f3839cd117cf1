/*
 * test_bulk.c — bulk.c against the real ctct-sandbox: v3 and v2 chunks,
 * polling, activity errors mapped back to rows (strings "Line N: ..." and
 * {line_number, email_address} objects), a 503 on the POST retried, and a
 * killed run's activity polled (not re-posted) by the next run.
 *
 * The sandbox binary: $CTS_SANDBOX, else $BUILD/ctct-sandbox, else
 * build/ctct-sandbox; missing: every case is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "cts_api.h"
#include "cts_bulk.h"
#include "cts_http.h"
#include "cts_send.h"
#include "cts_state.h"
#include "cts_util.h"
#include "testutil.h"

#define V3_CID   "demo-v3-client-00000000000001"
#define V3_L1    "8c2b2d3e-0001-4000-8000-000000000001"
#define V2_KEY   "demo-v2-key-0000000000000001"
#define V2_TOKEN "demo-v2-token-000000000000000000001"

static pid_t sb_pid = -1;
static char sb_url[300], sb_path[1024], v3_token[2048], base[400];
static char state_dir[64];

static int setup(void **state)
{
    static const char *const args[] = {
        "--rate", "0", "--daily-quota", "0", "--activity-ms", "100", NULL};
    const char *path = tu_sandbox_path(sb_path, sizeof(sb_path)), *why;
    char *cmd;
    FILE *p;
    *state = NULL;
    if (access(path, X_OK) != 0) {
        fprintf(stderr, "# SKIP: sandbox binary %s not found\n", path);
        return 0;
    }
    cmd = cts_xasprintf("'%s' --print-demo-token", path);
    p = popen(cmd, "r");
    free(cmd);
    if (p == NULL || fgets(v3_token, sizeof(v3_token), p) == NULL) {
        if (p != NULL)
            pclose(p);
        return -1;
    }
    pclose(p);
    v3_token[strcspn(v3_token, "\r\n")] = '\0';
    sb_pid = tu_sandbox_start(path, args, sb_url, sizeof(sb_url), &why);
    if (sb_pid < 0) {
        fprintf(stderr, "# %s: %s\n", path, why);
        return -1;
    }
    *state = sb_url;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_sandbox_stop(&sb_pid);
    return 0;
}

static json_t *admin(const char *method, const char *path, const char *body)
{
    return tu_admin(sb_url, method, path, body);
}

static long endpoint_count(const char *ep)
{
    json_t *s = admin("GET", "/_sandbox/state?contacts=0", NULL);
    long n = (long)json_integer_value(json_object_get(
        json_object_get(json_object_get(s, "requests"), "by_endpoint"), ep));
    json_decref(s);
    return n;
}

/* The stored first_name of email in the demo account, or NULL (owned). */
static char *stored_first_name(const char *email)
{
    json_t *s = admin("GET", "/_sandbox/state?account=demo", NULL);
    json_t *cs = json_object_get(
               json_array_get(json_object_get(s, "accounts"), 0), "contacts"),
           *c;
    size_t i;
    char *out = NULL;
    json_array_foreach(cs, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "email")), email) ==
            0) {
            const char *fn =
                json_string_value(json_object_get(c, "first_name"));
            out = cts_xstrdup(fn != NULL ? fn : "");
        }
    }
    json_decref(s);
    return out;
}

/* ---- harness ---- */

#define MAXROWS 64
struct run {
    uv_loop_t loop;
    struct cts_config cfg;
    char *lists[1];
    struct cts_state *st;
    struct cts_send send; /* the requests' engine, as in the pipeline */
    struct cts_bulk_run *b;
    int got[MAXROWS + 1];
    enum cts_status status[MAXROWS + 1];
    char msg[MAXROWS + 1][128];
    int attempts[MAXROWS + 1];
    int idle, closed;
};

static void on_result(void *arg, const struct cts_bulk_result *r)
{
    struct run *x = arg;
    assert_true(r->row >= 1 && r->row <= MAXROWS);
    x->got[r->row]++;
    x->status[r->row] = r->status;
    x->attempts[r->row] = r->attempts;
    snprintf(x->msg[r->row], sizeof(x->msg[0]), "%s",
             r->message != NULL ? r->message : "");
}

static void on_idle(void *arg)
{
    ((struct run *)arg)->idle = 1;
}

static void on_bulk_closed(void *arg)
{
    ((struct run *)arg)->closed = 1;
}

static long quota_for_next_open; /* 0 = unlimited */
static long now_for_next_open = 1893456000;

static void run_open(struct run *x, enum cts_api api, size_t max_rows)
{
    struct cts_state_params sp;
    struct cts_send_params ep;
    struct cts_bulk_params bp;
    struct cts_error err = {0};
    memset(x, 0, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->cfg.api = api;
    snprintf(base, sizeof(base), "%s/%s", sb_url,
             api == CTS_API_V3 ? "v3" : "v2");
    x->cfg.base_url = base;
    x->cfg.api_key = api == CTS_API_V3 ? V3_CID : V2_KEY;
    x->cfg.token = api == CTS_API_V3 ? v3_token : V2_TOKEN;
    x->lists[0] = api == CTS_API_V3 ? V3_L1 : "1";
    x->cfg.lists = x->lists;
    x->cfg.nlists = 1;
    x->cfg.retries = 3;
    x->cfg.timeout_ms = 10000;
    x->cfg.poll_interval_s = 1;
    x->cfg.concurrency = 2;
    memset(&sp, 0, sizeof(sp));
    sp.dir = state_dir;
    sp.api = api;
    sp.api_key = x->cfg.api_key;
    sp.account = "demo";
    sp.now = now_for_next_open;
    sp.daily_quota = quota_for_next_open;
    assert_int_equal(cts_state_open(&sp, &x->st, &err), 0);
    memset(&ep, 0, sizeof(ep));
    ep.loop = &x->loop;
    ep.cfg = &x->cfg;
    ep.state = x->st;
    ep.retry_base_ms = 20;
    assert_int_equal(cts_send_init(&x->send, &ep, &err), 0);
    memset(&bp, 0, sizeof(bp));
    bp.loop = &x->loop;
    bp.cfg = &x->cfg;
    bp.send = &x->send;
    bp.state = x->st;
    bp.on_result = on_result;
    bp.on_idle = on_idle;
    bp.arg = x;
    bp.max_rows = max_rows;
    bp.poll_ms = 50;
    assert_int_equal(cts_bulk_new(&bp, &x->b, &err), 0);
}

/* Run the loop until idle (bounded by iterations, not by time). */
static void run_until_idle(struct run *x)
{
    int i;
    for (i = 0; i < 200000 && !x->idle; i++)
        uv_run(&x->loop, UV_RUN_ONCE);
    assert_true(x->idle);
}

static void run_close(struct run *x, int commit)
{
    struct cts_error err = {0};
    cts_bulk_close(x->b, on_bulk_closed, x);
    cts_send_close(&x->send); /* aborts a poll still in flight */
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_true(x->closed);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    if (commit)
        assert_int_equal(cts_state_commit(x->st, &err), 0);
    cts_state_close(x->st);
}

static void add(struct run *x, uint32_t row, const char *email,
                const char *first)
{
    struct cts_contact c;
    struct cts_error err = {0};
    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = (char *)email;
    c.f[CTS_F_FIRST_NAME] = (char *)first;
    c.f[CTS_F_CITY] = "Springfield";
    assert_int_equal(cts_bulk_add(x->b, row, &c, row * 7u, &err), 0);
}

static int state_setup(void **state)
{
    (void)state;
    snprintf(state_dir, sizeof(state_dir), "/tmp/cts-bulk-state.XXXXXX");
    return mkdtemp(state_dir) == NULL ? -1 : 0;
}

static int state_teardown(void **state)
{
    (void)state;
    tu_rm_rf(state_dir);
    return 0;
}

/* ---- cases ---- */

static void test_v3_chunks_and_errors(void **state)
{
    struct run x;
    struct cts_bulk_stats stats;
    long posts0;
    char *fn;
    int i;
    TU_NEED_SANDBOX();
    posts0 = endpoint_count("POST /v3/activities/contacts_json_import");
    run_open(&x, CTS_API_V3, 3);
    add(&x, 1, "bulk1@example.com", "One");
    add(&x, 2, "bulk2@example.com", "Two");
    add(&x, 3, "bad@@example.com", "Bad"); /* line 3 of chunk 1 */
    add(&x, 4, "bulk4@example.com", "Four");
    add(&x, 5, "bulk5@example.com", "Five");
    add(&x, 6, "bulk6@example.com", "Six");
    add(&x, 7, "bulk7@example.com", "Seven");
    assert_int_equal(cts_bulk_outstanding(x.b), 7);
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    for (i = 1; i <= 7; i++) {
        assert_int_equal(x.got[i], 1);
        assert_int_equal(x.status[i], i == 3 ? CTS_ST_FAILED : CTS_ST_IMPORTED);
    }
    assert_non_null(strstr(x.msg[3], "Invalid email"));
    cts_bulk_get_stats(x.b, &stats);
    assert_int_equal(stats.activities, 3);
    assert_int_equal(stats.imported, 6);
    assert_int_equal(stats.failed, 1);
    assert_int_equal(
        endpoint_count("POST /v3/activities/contacts_json_import") - posts0, 3);
    fn = stored_first_name("bulk7@example.com");
    assert_non_null(fn);
    assert_string_equal(fn, "Seven");
    free(fn);
    run_close(&x, 1);

    /* The state learnt it: imported rows unchanged, the bad one failed. */
    {
        struct cts_state_params sp;
        struct cts_state *st;
        memset(&sp, 0, sizeof(sp));
        sp.dir = state_dir;
        sp.api = CTS_API_V3;
        sp.api_key = V3_CID;
        sp.account = "demo";
        sp.now = 1893456000;
        assert_int_equal(cts_state_open(&sp, &st, NULL), 0);
        assert_int_equal(cts_state_lookup(st, "bulk5@example.com", 35, NULL),
                         CTS_SV_UNCHANGED);
        assert_int_equal(cts_state_lookup(st, "bad@@example.com", 21, NULL),
                         CTS_SV_FAILED_BEFORE);
        cts_state_close(st);
    }
}

static void test_v2_error_objects(void **state)
{
    struct run x;
    TU_NEED_SANDBOX();
    run_open(&x, CTS_API_V2, 0);
    add(&x, 1, "v2bulk1@example.com", "Ann");
    add(&x, 2, "not-an-email", "Bad");
    add(&x, 3, "v2bulk3@example.com", "Cy");
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    assert_int_equal(x.status[1], CTS_ST_IMPORTED);
    assert_int_equal(x.status[2], CTS_ST_FAILED);
    assert_int_equal(x.status[3], CTS_ST_IMPORTED);
    assert_int_equal(x.got[1] + x.got[2] + x.got[3], 3);
    run_close(&x, 1);
}

static void test_post_503_retried(void **state)
{
    struct run x;
    long posts0;
    TU_NEED_SANDBOX();
    json_decref(admin("POST", "/_sandbox/faults",
                      "{\"faults\":[\"503\",\"drop_before\"],\"match\":"
                      "\"POST /v3/activities/contacts_json_import\"}"));
    posts0 = endpoint_count("POST /v3/activities/contacts_json_import");
    run_open(&x, CTS_API_V3, 0);
    add(&x, 1, "retry1@example.com", "R1");
    add(&x, 2, "retry2@example.com", "R2");
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    assert_int_equal(x.status[1], CTS_ST_IMPORTED);
    assert_int_equal(x.status[2], CTS_ST_IMPORTED);
    /* 503 then a dropped connection: at least one retry of ours (libcurl
     * may itself repeat a request whose kept-alive connection was
     * dropped); the server saw all three. */
    assert_true(x.attempts[1] >= 2);
    assert_true(endpoint_count("POST /v3/activities/contacts_json_import") -
                    posts0 >=
                3);
    run_close(&x, 1);
}

/* The POST's 503s outlast the retries: the rows are deferred with the
 * reason (not failed), nothing is stopped, and the state keeps nothing
 * for them, so the next run sends them again. */
static void test_post_gives_up_deferred(void **state)
{
    struct run x;
    struct cts_error err = {0};
    struct cts_state *st;
    struct cts_state_params sp;
    TU_NEED_SANDBOX();
    json_decref(
        admin("POST", "/_sandbox/faults",
              "{\"faults\":[\"503\",\"503\",\"503\",\"503\"],"
              "\"match\":\"POST /v3/activities/contacts_json_import\"}"));
    run_open(&x, CTS_API_V3, 0);
    add(&x, 1, "later1@example.com", "L1");
    add(&x, 2, "later2@example.com", "L2");
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    assert_int_equal(x.status[1], CTS_ST_DEFERRED);
    assert_int_equal(x.status[2], CTS_ST_DEFERRED);
    assert_int_equal(x.attempts[1], 4);
    assert_non_null(strstr(x.msg[1], "gave up after 4 attempts"));
    assert_int_equal(cts_bulk_stopped(x.b), CTS_BULK_STOP_NONE);
    run_close(&x, 1);

    memset(&sp, 0, sizeof(sp));
    sp.dir = state_dir;
    sp.api = CTS_API_V3;
    sp.api_key = V3_CID;
    sp.account = "demo";
    sp.now = 1893456000;
    assert_int_equal(cts_state_open(&sp, &st, &err), 0);
    assert_int_equal(cts_state_lookup(st, "later1@example.com", 7, NULL),
                     CTS_SV_SEND);
    cts_state_close(st);
}

/* A run dies after its activity was accepted: the next run polls the
 * activity (no second POST) and reports the rows from it. */
static void test_resume_polls_activity(void **state)
{
    struct run x;
    long posts0, posts1;
    const char *id = NULL;
    uint32_t line = 0;
    int i;
    TU_NEED_SANDBOX();
    posts0 = endpoint_count("POST /v3/activities/contacts_json_import");
    run_open(&x, CTS_API_V3, 0);
    add(&x, 1, "res1@example.com", "A");
    add(&x, 2, "res2@example.com", "B");
    add(&x, 3, "res3@example.com", "C");
    cts_bulk_flush(x.b);
    /* Until the POST is accepted, then "kill" (close without results). */
    for (i = 0; i < 100000; i++) {
        struct cts_bulk_stats s;
        cts_bulk_get_stats(x.b, &s);
        if (s.activities == 1)
            break;
        uv_run(&x.loop, UV_RUN_ONCE);
    }
    assert_int_equal(x.got[1] + x.got[2] + x.got[3], 0);
    run_close(&x, 0);
    posts1 = endpoint_count("POST /v3/activities/contacts_json_import");
    assert_int_equal(posts1 - posts0, 1);

    run_open(&x, CTS_API_V3, 0);
    for (i = 1; i <= 3; i++) {
        char email[64];
        snprintf(email, sizeof(email), "res%d@example.com", i);
        assert_int_equal(cts_state_lookup(x.st, email, (uint32_t)i * 7u, NULL),
                         CTS_SV_SEND_IN_DOUBT);
        assert_int_equal(
            cts_state_bulk_pending(x.st, email, (uint32_t)i * 7u, &id, &line),
            1);
        assert_int_equal(line, (uint32_t)i);
        assert_int_equal(
            cts_bulk_adopt(x.b, (uint32_t)i, email, (uint32_t)i * 7u, id, line),
            0);
    }
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    for (i = 1; i <= 3; i++) {
        assert_int_equal(x.got[i], 1);
        assert_int_equal(x.status[i], CTS_ST_IMPORTED);
    }
    assert_int_equal(endpoint_count("POST /v3/activities/contacts_json_import"),
                     posts1);
    run_close(&x, 1);
}

/* The local daily quota runs out while the activity is running: its rows
 * are deferred but stay journalled across the commit; the next day's run
 * polls the activity (no second POST) and reports them imported. */
static void test_quota_while_polling(void **state)
{
    struct run x;
    long posts0;
    const char *id = NULL;
    uint32_t line = 0;
    int i;
    TU_NEED_SANDBOX();
    posts0 = endpoint_count("POST /v3/activities/contacts_json_import");
    quota_for_next_open = 1; /* the POST, and no poll */
    run_open(&x, CTS_API_V3, 0);
    add(&x, 1, "quota1@example.com", "Q1");
    add(&x, 2, "quota2@example.com", "Q2");
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    assert_int_equal(cts_bulk_stopped(x.b), CTS_BULK_STOP_QUOTA);
    for (i = 1; i <= 2; i++) {
        assert_int_equal(x.got[i], 1);
        assert_int_equal(x.status[i], CTS_ST_DEFERRED);
    }
    run_close(&x, 1); /* a clean end: the journal keeps the open activity */
    assert_int_equal(
        endpoint_count("POST /v3/activities/contacts_json_import") - posts0, 1);

    /* Next day; room for several polls (the activity may still run). */
    now_for_next_open += 86400;
    quota_for_next_open = 50;
    run_open(&x, CTS_API_V3, 0);
    for (i = 1; i <= 2; i++) {
        char email[64];
        snprintf(email, sizeof(email), "quota%d@example.com", i);
        assert_int_equal(
            cts_state_bulk_pending(x.st, email, (uint32_t)i * 7u, &id, &line),
            1);
        assert_int_equal(
            cts_bulk_adopt(x.b, (uint32_t)i, email, (uint32_t)i * 7u, id, line),
            0);
    }
    cts_bulk_flush(x.b);
    run_until_idle(&x);
    for (i = 1; i <= 2; i++) {
        if (x.status[i] != CTS_ST_IMPORTED)
            print_message("row %d: %s\n", i, x.msg[i]);
        assert_int_equal(x.status[i], CTS_ST_IMPORTED);
    }
    assert_int_equal(
        endpoint_count("POST /v3/activities/contacts_json_import") - posts0, 1);
    run_close(&x, 1);
    quota_for_next_open = 0;
    now_for_next_open = 1893456000;
}

static void test_choose(void **state)
{
    struct cts_config cfg;
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.bulk = CTS_BULK_AUTO;
    cfg.bulk_threshold = 1000;
    assert_false(cts_bulk_choose(&cfg, 10, 10000));
    assert_true(cts_bulk_choose(&cfg, 1001, 10000));
    assert_true(cts_bulk_choose(&cfg, 500, 400)); /* beyond today's quota */
    assert_false(cts_bulk_choose(&cfg, 0, 0));
    cfg.bulk = CTS_BULK_NEVER;
    assert_false(cts_bulk_choose(&cfg, 100000, 1));
    cfg.bulk = CTS_BULK_ALWAYS;
    assert_true(cts_bulk_choose(&cfg, 1, 10000));
}

/* The import bodies (pure): v3 flat items with numbers where the API
 * wants them and custom fields by name; v2 items whose custom fields
 * declare their columns in the tail. */
static void test_bodies(void **state)
{
    struct cts_contact c;
    struct cts_custom_field cf[2] = {{"Custom Field 3", "gold"},
                                     {"Shoe size", "42"}};
    char *lists[2] = {"L1", "L2"};
    unsigned mask = 0;
    char *s;
    (void)state;
    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "ann@example.com";
    c.f[CTS_F_FIRST_NAME] = "Ann";
    c.f[CTS_F_BIRTHDAY_MONTH] = "7";
    c.f[CTS_F_CITY] = "Springfield";
    c.cf = cf;
    c.ncf = 2;
    s = cts_api_bulk_item(CTS_API_V3, &c, &mask);
    assert_string_equal(s, "{\"email\":\"ann@example.com\",\"first_name\":"
                           "\"Ann\",\"city\":\"Springfield\","
                           "\"birthday_month\":7,\"cf:Custom Field 3\":"
                           "\"gold\",\"cf:Shoe size\":\"42\"}");
    free(s);
    s = cts_api_bulk_item(CTS_API_V2, &c, &mask);
    assert_non_null(strstr(s, "\"email_addresses\":[\"ann@example.com\"]"));
    assert_non_null(strstr(s, "\"addresses\":[{\"city\":\"Springfield\","
                              "\"address_type\":\"PERSONAL\"}]"));
    assert_non_null(strstr(s, "\"custom_fields\":[{\"name\":"
                              "\"custom_field_3\",\"value\":\"gold\"}]"));
    assert_int_equal(mask, 1u << 3); /* "Shoe size" is no v2 field */
    free(s);
    s = cts_api_bulk_tail(CTS_API_V3, lists, 2, 0);
    assert_string_equal(s, "],\"list_ids\":[\"L1\",\"L2\"]}");
    free(s);
    s = cts_api_bulk_tail(CTS_API_V2, lists, 1, mask);
    assert_non_null(strstr(s, "],\"lists\":[\"L1\"],\"column_names\":["
                              "\"EMAIL\","));
    assert_non_null(strstr(s, "\"ANNIVERSARY\",\"CUSTOM FIELD 3\"]}"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test_setup_teardown(test_v3_chunks_and_errors, state_setup,
                                        state_teardown),
        cmocka_unit_test_setup_teardown(test_v2_error_objects, state_setup,
                                        state_teardown),
        cmocka_unit_test_setup_teardown(test_post_503_retried, state_setup,
                                        state_teardown),
        cmocka_unit_test_setup_teardown(test_post_gives_up_deferred,
                                        state_setup, state_teardown),
        cmocka_unit_test_setup_teardown(test_resume_polls_activity, state_setup,
                                        state_teardown),
        cmocka_unit_test_setup_teardown(test_quota_while_polling, state_setup,
                                        state_teardown),
    };
    cts_http_global_init();
    return cmocka_run_group_tests_name("bulk", tests, setup, teardown);
}
