/*
 * test_send.c — the send engine against the real ctct-sandbox: --rate as
 * the server counts arrivals, a 503 retried (and not retried for a
 * no_retry request), a stop that ends queued requests unsent, the local
 * daily quota, a refused connection reported as unreachable, throttling
 * replies sent again without using up --retries, and throttling without
 * progress ending the waiting requests as stalled.
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

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "cts_api.h"
#include "cts_send.h"
#include "cts_state.h"
#include "cts_util.h"
#include "testutil.h"

#define V2_KEY   "demo-v2-key-0000000000000001"
#define V2_TOKEN "demo-v2-token-000000000000000000001"
#define NREQ     9

static pid_t sb_pid = -1;
static char sb_url[300], sb_path[1024], base[400];

static int setup(void **state)
{
    static const char *const args[] = {"--rate", "0", "--daily-quota", "0",
                                       NULL};
    const char *path = tu_sandbox_path(sb_path, sizeof(sb_path)), *why;
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
    *state = sb_url;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_sandbox_stop(&sb_pid);
    return 0;
}

/* The sandbox's count for the demo v2 key: requests or busiest_1s. */
static long key_stat(const char *what)
{
    json_t *s = tu_admin(sb_url, "GET", "/_sandbox/state?contacts=0", NULL);
    long n = (long)json_integer_value(json_object_get(
        json_object_get(json_object_get(s, "keys"), V2_KEY), what));
    json_decref(s);
    return n;
}

/* ---- harness ---- */

struct run {
    uv_loop_t loop;
    struct cts_config cfg;
    struct cts_send s;
    char *url;
    struct cts_send_req r[NREQ];
    enum cts_send_end end[NREQ];
    enum cts_outcome_class oc[NREQ];
    int done[NREQ];
    int ndone;
};

static void on_done(struct cts_send_req *r, struct cts_send_result *res)
{
    struct run *x = r->data;
    int i = (int)(r - x->r);
    x->end[i] = res->end;
    x->oc[i] = res->oc;
    x->done[i]++;
    x->ndone++;
}

static void run_open(struct run *x, const char *url_base, double rate,
                     long concurrency, long retries, struct cts_state *st)
{
    struct cts_send_params p;
    struct cts_error err = {0};
    int i;
    memset(x, 0, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->cfg.api = CTS_API_V2;
    x->cfg.api_key = V2_KEY;
    x->cfg.token = V2_TOKEN;
    x->cfg.rate = rate;
    x->cfg.concurrency = concurrency;
    x->cfg.retries = retries;
    x->cfg.timeout_ms = 10000;
    snprintf(base, sizeof(base), "%s/v2", url_base);
    x->url = cts_api_url(base, "/lists", V2_KEY, NULL);
    memset(&p, 0, sizeof(p));
    p.loop = &x->loop;
    p.cfg = &x->cfg;
    p.state = st;
    p.retry_base_ms = 20;
    assert_int_equal(cts_send_init(&x->s, &p, &err), 0);
    for (i = 0; i < NREQ; i++) {
        cts_send_req_init(&x->r[i]);
        cts_send_req_set(&x->r[i], "GET", x->url, NULL);
        x->r[i].done = on_done;
        x->r[i].data = x;
    }
}

/* Run the loop until n requests are done (bounded by iterations). */
static void run_until(struct run *x, int n)
{
    int i;
    for (i = 0; i < 200000 && x->ndone < n; i++)
        uv_run(&x->loop, UV_RUN_ONCE);
    assert_int_equal(x->ndone, n);
}

static void run_close(struct run *x)
{
    int i;
    cts_send_close(&x->s);
    for (i = 0; i < NREQ; i++)
        cts_send_req_close(&x->r[i], NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    free(x->url);
}

static void faults(const char *json)
{
    json_decref(tu_admin(sb_url, "POST", "/_sandbox/faults", json));
}

/* ---- cases ---- */

/* More requests than the rate allows in a second, 4 at a time: every one
 * arrives, and no 1-second window of the server holds more than 3. */
static void test_rate_as_server_counts(void **state)
{
    struct run x;
    int i;
    TU_NEED_SANDBOX();
    json_decref(tu_admin(sb_url, "POST", "/_sandbox/reset", NULL));
    run_open(&x, sb_url, 3, 4, 3, NULL);
    for (i = 0; i < NREQ; i++)
        assert_int_equal(cts_send_submit(&x.s, &x.r[i], 0), 0);
    run_until(&x, NREQ);
    for (i = 0; i < NREQ; i++) {
        assert_int_equal(x.done[i], 1);
        assert_int_equal(x.end[i], CTS_SEND_REPLY);
        assert_int_equal(x.oc[i], CTS_OC_OK);
    }
    assert_int_equal(x.s.requests, NREQ);
    assert_int_equal(key_stat("requests"), NREQ);
    assert_true(key_stat("busiest_1s") <= 3);
    run_close(&x);
}

/* A 503 is retried by the engine, done runs once with the success; a
 * no_retry request gets the 503 itself. */
static void test_transient_retried_or_delivered(void **state)
{
    struct run x;
    TU_NEED_SANDBOX();
    run_open(&x, sb_url, 0, 2, 3, NULL);
    faults("{\"faults\":[\"503\"],\"match\":\"GET /v2/lists\"}");
    assert_int_equal(cts_send_submit(&x.s, &x.r[0], 0), 0);
    run_until(&x, 1);
    assert_int_equal(x.end[0], CTS_SEND_REPLY);
    assert_int_equal(x.oc[0], CTS_OC_OK);
    assert_int_equal(x.r[0].tries, 2);
    assert_int_equal(x.s.retries, 1);

    faults("{\"faults\":[\"503\"],\"match\":\"GET /v2/lists\"}");
    x.r[1].no_retry = 1;
    assert_int_equal(cts_send_submit(&x.s, &x.r[1], 0), 0);
    run_until(&x, 2);
    assert_int_equal(x.end[1], CTS_SEND_REPLY);
    assert_int_equal(x.oc[1], CTS_OC_TRANSIENT);
    assert_int_equal(x.r[1].http.status, 503);
    assert_int_equal(x.r[1].tries, 1);
    run_close(&x);
}

/* One at a time, `again` before fresh ones; the stop ends the two still
 * queued without sending them, the one in flight finishes, and later
 * submits are refused. */
static void test_stop_ends_queued(void **state)
{
    struct run x;
    long before;
    TU_NEED_SANDBOX();
    before = key_stat("requests");
    run_open(&x, sb_url, 0, 1, 3, NULL);
    assert_int_equal(cts_send_submit(&x.s, &x.r[0], 0), 0);
    assert_int_equal(cts_send_submit(&x.s, &x.r[1], 0), 0);
    assert_int_equal(cts_send_submit(&x.s, &x.r[2], 1), 0);
    assert_int_equal(x.ndone, 0); /* never from inside submit */
    cts_send_pump(&x.s);
    assert_int_equal(cts_send_in_flight(&x.s), 1);
    cts_send_stop(&x.s);
    assert_int_equal(x.ndone, 2);
    assert_int_equal(x.done[2], 0);
    assert_int_equal(x.end[0], CTS_SEND_STOPPED);
    assert_int_equal(x.end[1], CTS_SEND_STOPPED);
    assert_int_equal(cts_send_submit(&x.s, &x.r[3], 0), UV_ECANCELED);
    run_until(&x, 3);
    assert_int_equal(x.end[2], CTS_SEND_REPLY);
    assert_int_equal(x.oc[2], CTS_OC_OK);
    assert_int_equal(key_stat("requests") - before, 1);
    run_close(&x);
}

/* The local daily quota: one request allowed, the second never sent. */
static void test_local_quota(void **state)
{
    char dir[] = "/tmp/cts-send-state.XXXXXX";
    struct cts_state_params sp;
    struct cts_state *st;
    struct run x;
    long before;
    TU_NEED_SANDBOX();
    assert_non_null(mkdtemp(dir));
    memset(&sp, 0, sizeof(sp));
    sp.dir = dir;
    sp.api = CTS_API_V2;
    sp.api_key = V2_KEY;
    sp.account = "demo";
    sp.now = 1893456000;
    sp.daily_quota = 1;
    assert_int_equal(cts_state_open(&sp, &st, NULL), 0);
    before = key_stat("requests");
    run_open(&x, sb_url, 0, 2, 3, st);
    assert_int_equal(cts_send_submit(&x.s, &x.r[0], 0), 0);
    assert_int_equal(cts_send_submit(&x.s, &x.r[1], 0), 0);
    run_until(&x, 2);
    assert_int_equal(x.end[0], CTS_SEND_REPLY);
    assert_int_equal(x.end[1], CTS_SEND_NO_QUOTA);
    assert_int_equal(key_stat("requests") - before, 1);
    run_close(&x);
    cts_state_close(st);
    tu_rm_rf(dir);
}

/* Nothing listens: the retries are used up without a single reply. */
static void test_unreachable(void **state)
{
    struct run x;
    (void)state;
    run_open(&x, "http://127.0.0.1:1", 0, 1, 1, NULL);
    assert_int_equal(cts_send_submit(&x.s, &x.r[0], 0), 0);
    run_until(&x, 1);
    assert_int_equal(x.end[0], CTS_SEND_UNREACHABLE);
    assert_int_equal(x.r[0].tries, 2);
    run_close(&x);
}

/* Throttling replies (v2 403 over.qps) are "not processed": the request
 * goes again, at a lower pace, even with --retries 0. */
static void test_throttled_not_a_retry(void **state)
{
    struct run x;
    TU_NEED_SANDBOX();
    json_decref(tu_admin(sb_url, "POST", "/_sandbox/reset", NULL));
    run_open(&x, sb_url, 0, 2, 0, NULL);
    faults("{\"faults\":[\"429\",\"429\"],\"match\":\"GET /v2/lists\"}");
    assert_int_equal(cts_send_submit(&x.s, &x.r[0], 0), 0);
    run_until(&x, 1);
    assert_int_equal(x.end[0], CTS_SEND_REPLY);
    assert_int_equal(x.oc[0], CTS_OC_OK);
    assert_int_equal(x.r[0].tries, 3);
    assert_int_equal(x.r[0].throttled, 2);
    assert_int_equal(x.s.throttled, 2);
    assert_int_equal(x.s.retries, 0);
    /* --rate 0, yet the key now has a pace. */
    assert_true(cts_limiter_pace(&x.s.lim) > 0);
    run_close(&x);
}

/* Nothing but throttling replies for the stall time (1 s here, through
 * the test knob): the requests waiting end stalled, and so does one
 * submitted afterwards, without being sent. */
static void test_stall(void **state)
{
    struct run x;
    long before;
    int i;
    TU_NEED_SANDBOX();
    json_decref(tu_admin(sb_url, "POST", "/_sandbox/reset", NULL));
    setenv("CTCT_SYNC_STALL_SECONDS", "1", 1);
    run_open(&x, sb_url, 0, 1, 6, NULL);
    unsetenv("CTCT_SYNC_STALL_SECONDS");
    assert_int_equal(x.s.stall_ms, 1000);
    faults("{\"faults\":[\"429\",\"429\",\"429\",\"429\",\"429\",\"429\","
           "\"429\",\"429\",\"429\",\"429\"],\"match\":\"GET /v2/lists\"}");
    for (i = 0; i < 3; i++)
        assert_int_equal(cts_send_submit(&x.s, &x.r[i], 0), 0);
    run_until(&x, 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(x.end[i], CTS_SEND_STALLED);
    assert_true(x.s.throttled >= 1);
    assert_int_equal(x.s.retries, 0);
    before = key_stat("requests");
    assert_int_equal(cts_send_submit(&x.s, &x.r[3], 0), 0);
    run_until(&x, 4);
    assert_int_equal(x.end[3], CTS_SEND_STALLED);
    assert_int_equal(key_stat("requests"), before);
    run_close(&x);
    json_decref(tu_admin(sb_url, "DELETE", "/_sandbox/faults", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_as_server_counts),
        cmocka_unit_test(test_transient_retried_or_delivered),
        cmocka_unit_test(test_stop_ends_queued),
        cmocka_unit_test(test_local_quota),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_throttled_not_a_retry),
        cmocka_unit_test(test_stall),
    };
    cts_http_global_init();
    return cmocka_run_group_tests_name("send", tests, setup, teardown);
}
