/*
 * test_http.c — http.c against the real ctct-sandbox (started on port 0,
 * killed in teardown; h2o's spawn_server guard).  Deterministic faults are
 * scripted through POST /_sandbox/faults; nothing depends on timing luck.
 *
 * The sandbox binary: $CTS_SANDBOX, else $BUILD/ctct-sandbox, else
 * build/ctct-sandbox.  Missing binary: every case is skipped with a
 * message (a missing build is not a transport failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "cts_api.h"
#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_util.h"
#include "testutil.h"

#define V2_KEY   "demo-v2-key-0000000000000001"
#define V2_TOKEN "demo-v2-token-000000000000000000001"

static pid_t sb_pid = -1;
static char sb_url[300];
static char sb_path[1024];

/* ---- sandbox guard (testutil.h) ---- */

static int sb_start(void **state, const char *slow_ms)
{
    /* --rate 0: these cases test the transport, not throttling. */
    const char *args[] = {"--rate", "0", "--slow-ms", slow_ms, NULL};
    const char *why;

    (void)state;
    tu_sandbox_path(sb_path, sizeof(sb_path));
    sb_pid = tu_sandbox_start(sb_path, args, sb_url, sizeof(sb_url), &why);
    if (sb_pid < 0 && access(sb_path, X_OK) != 0) {
        fprintf(stderr, "# SKIP: %s: %s\n", sb_path, why);
        return -1;
    }
    if (sb_pid < 0)
        fail_msg("%s: %s", sb_path, why);
    return 0;
}

static int setup(void **state)
{
    if (sb_start(state, "1500") != 0)
        *state = NULL;
    else
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

static void add_faults(const char *faults_json, const char *match)
{
    char *body =
        cts_xasprintf("{\"faults\":%s,\"match\":\"%s\"}", faults_json, match);
    json_decref(admin("POST", "/_sandbox/faults", body));
    free(body);
}

static long state_contacts(void)
{
    json_t *s = admin("GET", "/_sandbox/state?contacts=0", NULL);
    json_t *accts = json_object_get(s, "accounts"), *a;
    size_t i;
    long n = 0;
    json_array_foreach(accts, i, a) n +=
        (long)json_integer_value(json_object_get(a, "contact_count"));
    json_decref(s);
    return n;
}

static char *v2_url(const char *path)
{
    char *base = cts_xasprintf("%s/v2", sb_url);
    char *u = cts_api_url(base, path, V2_KEY, NULL);
    free(base);
    return u;
}

/* ---- async harness ---- */

struct harness {
    uv_loop_t loop;
    struct cts_http http;
    int done;
    int closed;
};

static void on_closed(struct cts_http *h)
{
    struct harness *hs =
        (struct harness *)((char *)h - offsetof(struct harness, http));
    hs->closed = 1;
}

static void on_done_count(struct cts_http_req *req, void *arg)
{
    struct harness *hs = arg;
    (void)req;
    hs->done++;
}

static void harness_init(struct harness *hs, long max_in_flight,
                         long timeout_ms)
{
    struct cts_http_opts o;
    memset(hs, 0, sizeof(*hs));
    memset(&o, 0, sizeof(o));
    o.max_in_flight = max_in_flight;
    o.timeout_ms = timeout_ms;
    assert_int_equal(uv_loop_init(&hs->loop), 0);
    assert_int_equal(cts_http_init(&hs->http, &hs->loop, &o), 0);
}

/* libuv's MAKE_VALGRIND_HAPPY: close everything, run, the loop must close. */
static void harness_close(struct harness *hs)
{
    cts_http_close(&hs->http, on_closed);
    assert_int_equal(uv_run(&hs->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(hs->closed, 1);
    assert_int_equal(uv_loop_close(&hs->loop), 0);
}

/* ---- cases ---- */

static void test_round_trip(void **state)
{
    struct cts_http_req r;
    struct cts_error err = {0};
    char *url;
    size_t n;
    struct cts_list_info *lists;
    TU_NEED_SANDBOX();

    url = v2_url("/lists");
    cts_http_req_init(&r);
    r.url = url;
    r.bearer = V2_TOKEN;
    assert_int_equal(cts_http_fetch(&r, NULL, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.transport_error, 0);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(
        cts_api_parse_lists(CTS_API_V2, r.resp.data, r.resp.len, &lists, &n),
        0);
    assert_true(n >= 2);
    assert_string_equal(lists[0].id, "1");
    cts_list_info_free(lists, n);
    cts_http_req_free(&r);

    /* Without the bearer: a 401 is a reply, not a transport failure, and
     * is not retried. */
    cts_http_req_init(&r);
    r.url = url;
    assert_int_equal(cts_http_fetch(&r, NULL, &err), 0);
    assert_int_equal(r.status, 401);
    assert_int_equal(r.attempts, 1);
    cts_http_req_free(&r);
    free(url);
}

static void test_keepalive_reuse(void **state)
{
    struct harness hs;
    struct cts_http_req r;
    char *url;
    int i;
    TU_NEED_SANDBOX();

    url = v2_url("/lists");
    harness_init(&hs, 1, 0);
    cts_http_req_init(&r);
    r.url = url;
    r.bearer = V2_TOKEN;
    for (i = 0; i < 5; i++) {
        hs.done = 0;
        cts_buf_reset(&r.resp);
        assert_int_equal(cts_http_submit(&hs.http, &r, on_done_count, &hs), 0);
        /* The callback never runs inside submit (libuv's rule). */
        assert_int_equal(hs.done, 0);
        assert_int_equal(cts_http_in_flight(&hs.http), 1);
        while (hs.done == 0)
            uv_run(&hs.loop, UV_RUN_ONCE);
        assert_int_equal(r.status, 200);
        assert_int_equal(cts_http_in_flight(&hs.http), 0);
        /* The first request opens the connection, the rest reuse it. */
        assert_int_equal(r.connection_reused, i > 0);
    }
    assert_int_equal(hs.http.requests, 5);
    assert_int_equal(hs.http.reused, 4);
    cts_http_req_free(&r);
    harness_close(&hs);
    free(url);
}

static void test_concurrency_cap(void **state)
{
    enum { N = 24, CAP = 4 };
    struct harness hs;
    struct cts_http_req r[N];
    char *url;
    int i;
    TU_NEED_SANDBOX();

    url = v2_url("/lists");
    harness_init(&hs, CAP, 0);
    for (i = 0; i < N; i++) {
        cts_http_req_init(&r[i]);
        r[i].url = url;
        r[i].bearer = V2_TOKEN;
        assert_int_equal(cts_http_submit(&hs.http, &r[i], on_done_count, &hs),
                         0);
    }
    assert_int_equal(cts_http_in_flight(&hs.http), N);
    while (hs.done < N)
        uv_run(&hs.loop, UV_RUN_ONCE);
    for (i = 0; i < N; i++) {
        assert_int_equal(r[i].status, 200);
        cts_http_req_free(&r[i]);
    }
    /* All N went over at most CAP connections: libcurl queued the rest
     * and reused the kept-alive ones. */
    assert_int_equal(hs.http.requests, N);
    assert_true(hs.http.requests - hs.http.reused <= CAP);
    assert_true(hs.http.reused >= N - CAP);
    harness_close(&hs);
    free(url);
}

/* A blocking GET of url with the v2 demo token: a reply with `status`
 * after `attempts` tries. */
static void fetch_expect(const char *url, const struct cts_http_opts *o,
                         long status, int attempts)
{
    struct cts_http_req r;
    struct cts_error err = {0};

    cts_http_req_init(&r);
    r.url = url;
    r.bearer = V2_TOKEN;
    assert_int_equal(cts_http_fetch(&r, o, &err), 0);
    assert_int_equal(r.status, status);
    assert_int_equal(r.attempts, attempts);
    cts_http_req_free(&r);
}

static void test_503_then_200(void **state)
{
    struct cts_http_opts o = {0};
    char *url;
    TU_NEED_SANDBOX();

    add_faults("[\"503\"]", "GET /v2/lists");
    url = v2_url("/lists");
    o.fetch_base_ms = 10;
    fetch_expect(url, &o, 200, 2);

    /* With retries off, the 503 comes back to the caller. */
    add_faults("[\"503\"]", "GET /v2/lists");
    o.fetch_retries = -1;
    fetch_expect(url, &o, 503, 1);
    free(url);
}

static void test_drop_after_maybe_landed(void **state)
{
    struct harness hs;
    struct cts_http_req r;
    const char *body = "{\"email_addresses\":[{\"email_address\":"
                       "\"landed@example.com\"}],\"lists\":[{\"id\":\"1\"}]}";
    char *url;
    long before;
    TU_NEED_SANDBOX();

    before = state_contacts();
    add_faults("[\"drop_after\"]", "POST /v2/contacts");
    url = v2_url("/contacts");
    harness_init(&hs, 2, 0);
    cts_http_req_init(&r);
    r.method = "POST";
    r.url = url;
    r.body = body;
    r.body_len = strlen(body);
    r.bearer = V2_TOKEN;
    assert_int_equal(cts_http_submit(&hs.http, &r, on_done_count, &hs), 0);
    while (hs.done == 0)
        uv_run(&hs.loop, UV_RUN_ONCE);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.transport_error, CTS_XE_RECV);
    assert_int_equal(r.maybe_landed, 1);
    assert_true(r.errbuf[0] != '\0');
    /* ...and it did land. */
    assert_int_equal(state_contacts(), before + 1);

    /* The blocking fetch does not repeat such a POST on its own. */
    {
        struct cts_http_req r2;
        struct cts_error err = {0};
        add_faults("[\"drop_after\"]", "POST /v2/contacts");
        cts_http_req_init(&r2);
        r2.method = "POST";
        r2.url = url;
        r2.body =
            "{\"email_addresses\":[{\"email_address\":\"l2@example.com\"}],"
            "\"lists\":[{\"id\":\"1\"}]}";
        r2.body_len = strlen(r2.body);
        r2.bearer = V2_TOKEN;
        assert_int_equal(cts_http_fetch(&r2, NULL, &err), CTS_EHTTP);
        assert_int_equal(r2.attempts, 1);
        assert_int_equal(r2.maybe_landed, 1);
        assert_int_equal(state_contacts(), before + 2);
        cts_http_req_free(&r2);
    }

    /* A GET that breaks is never "maybe landed". */
    add_faults("[\"drop_after\"]", "GET /v2/lists");
    cts_http_req_free(&r);
    cts_http_req_init(&r);
    free(url);
    url = v2_url("/lists");
    r.url = url;
    r.bearer = V2_TOKEN;
    hs.done = 0;
    assert_int_equal(cts_http_submit(&hs.http, &r, on_done_count, &hs), 0);
    while (hs.done == 0)
        uv_run(&hs.loop, UV_RUN_ONCE);
    assert_int_equal(r.transport_error, CTS_XE_RECV);
    assert_int_equal(r.maybe_landed, 0);
    cts_http_req_free(&r);
    harness_close(&hs);
    free(url);
}

static void test_hang_timeout(void **state)
{
    struct harness hs;
    struct cts_http_req r;
    char *url;
    TU_NEED_SANDBOX();

    /* The sandbox holds a `slow` reply 1500 ms (--slow-ms in setup); a
     * 300 ms request timeout must fire first. */
    add_faults("[\"slow\"]", "GET /v2/lists");
    url = v2_url("/lists");
    harness_init(&hs, 1, 300);
    cts_http_req_init(&r);
    r.url = url;
    r.bearer = V2_TOKEN;
    assert_int_equal(cts_http_submit(&hs.http, &r, on_done_count, &hs), 0);
    while (hs.done == 0)
        uv_run(&hs.loop, UV_RUN_ONCE);
    assert_int_equal(r.transport_error, CTS_XE_TIMEOUT);
    assert_int_equal(r.status, 0);
    assert_true(r.elapsed_ms >= 250);
    cts_http_req_free(&r);
    harness_close(&hs);
    free(url);
}

static void test_connection_refused(void **state)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd, port;
    char url[128];
    struct cts_http_req r;
    struct cts_error err = {0};
    struct cts_http_opts o = {0};
    (void)state;

    /* A port nothing listens on: bind port 0, read it, close it. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/lists", port);

    cts_http_req_init(&r);
    r.url = url;
    o.fetch_retries = 2;
    o.fetch_base_ms = 5;
    assert_int_equal(cts_http_fetch(&r, &o, &err), CTS_EHTTP);
    assert_int_equal(r.transport_error, CTS_XE_CONNECT);
    assert_int_equal(r.attempts, 3); /* transient: retried twice */
    assert_int_equal(err.code, CTS_EHTTP);
    assert_non_null(strstr(err.msg, "127.0.0.1"));
    cts_http_req_free(&r);
}

static void on_done_close(struct cts_http_req *req, void *arg)
{
    struct harness *hs = arg;
    (void)req;
    hs->done++;
}

static void test_close_aborts_in_flight(void **state)
{
    struct harness hs;
    struct cts_http_req r[3];
    char *url;
    int i;
    TU_NEED_SANDBOX();

    add_faults("[\"slow\",\"slow\",\"slow\"]", "GET /v2/lists");
    url = v2_url("/lists");
    harness_init(&hs, 3, 0);
    for (i = 0; i < 3; i++) {
        cts_http_req_init(&r[i]);
        r[i].url = url;
        r[i].bearer = V2_TOKEN;
        assert_int_equal(cts_http_submit(&hs.http, &r[i], on_done_close, &hs),
                         0);
    }
    /* Let the requests go out, then shut down under them. */
    for (i = 0; i < 20; i++)
        uv_run(&hs.loop, UV_RUN_NOWAIT);
    cts_http_close(&hs.http, on_closed);
    /* Aborted callbacks ran synchronously, exactly once each. */
    assert_int_equal(hs.done, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(r[i].transport_error, CTS_XE_ABORTED);
        cts_http_req_free(&r[i]);
    }
    /* Submitting to a closing transport is refused, callback never runs. */
    cts_http_req_init(&r[0]);
    r[0].url = url;
    assert_int_equal(cts_http_submit(&hs.http, &r[0], on_done_close, &hs),
                     UV_EINVAL);
    assert_int_equal(uv_run(&hs.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(hs.closed, 1);
    assert_int_equal(hs.done, 3);
    assert_int_equal(uv_loop_close(&hs.loop), 0);
    free(url);
}

static void test_bad_method(void **state)
{
    struct harness hs;
    struct cts_http_req r;
    (void)state;
    harness_init(&hs, 1, 0);
    cts_http_req_init(&r);
    r.method = "BREW";
    r.url = "http://127.0.0.1:1/";
    assert_int_equal(cts_http_submit(&hs.http, &r, on_done_count, &hs),
                     UV_EINVAL);
    r.method = NULL;
    r.url = NULL;
    assert_int_equal(cts_http_submit(&hs.http, &r, on_done_count, &hs),
                     UV_EINVAL);
    assert_int_equal(cts_http_in_flight(&hs.http), 0);
    harness_close(&hs);
    assert_int_equal(hs.done, 0);
    cts_http_req_free(&r);
}

/* A transport failure's message names the URL, never the v2 key. */
static void test_error_message_masks_key(void **state)
{
    struct cts_http_req r;
    struct cts_error err = {0};
    struct cts_http_opts o = {0};
    char *url = cts_api_url("http://127.0.0.1:1/v2", "/lists", V2_KEY, NULL);
    (void)state;
    cts_http_req_init(&r);
    r.url = url;
    r.bearer = V2_TOKEN;
    o.fetch_retries = -1;
    assert_int_equal(cts_http_fetch(&r, &o, &err), CTS_EHTTP);
    assert_non_null(strstr(err.msg, "127.0.0.1:1/v2/lists?api_key=demo"));
    assert_null(strstr(err.msg, V2_KEY));
    cts_http_req_free(&r);
    free(url);
}

/* v2 throttling (403 over.qps) is retried by the blocking fetch. */
static void test_fetch_retries_throttle(void **state)
{
    struct cts_http_req r;
    struct cts_error err = {0};
    struct cts_http_opts o = {0};
    char *url;
    TU_NEED_SANDBOX();

    add_faults("[\"429\"]", "GET /v2/lists");
    url = v2_url("/lists");
    cts_http_req_init(&r);
    r.url = url;
    r.bearer = V2_TOKEN;
    o.fetch_base_ms = 5;
    assert_int_equal(cts_http_fetch(&r, &o, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    cts_http_req_free(&r);
    free(url);
}

/* With a limiter set, every try waits for its slot and counts: starts are
 * spaced evenly (at 2/s, a start holds the next back half a second), and
 * a retried request takes two slots. */
static void test_fetch_counts_against_limiter(void **state)
{
    static struct cts_limiter l; /* outlives a failed assertion */
    struct cts_http_opts o = {0};
    uint64_t t0;
    char *url;
    TU_NEED_SANDBOX();

    cts_limiter_init(&l, 2, cts_fetch_clock_ms, NULL);
    t0 = cts_fetch_clock_ms(NULL);
    assert_true(cts_limiter_try_take(&l));
    assert_false(cts_limiter_try_take(&l));
    cts_fetch_set_limiter(&l);
    url = v2_url("/lists");
    fetch_expect(url, NULL, 200, 1);
    assert_true(cts_fetch_clock_ms(NULL) - t0 >= 500);
    assert_int_equal(l.starts, 2);

    /* (add_faults is a fetch too: not counted here.) */
    cts_fetch_set_limiter(NULL);
    add_faults("[\"503\"]", "GET /v2/lists");
    cts_fetch_set_limiter(&l);
    o.fetch_base_ms = 5;
    fetch_expect(url, &o, 200, 2);
    assert_int_equal(l.starts, 4);
    cts_fetch_set_limiter(NULL);
    cts_limiter_free(&l);
    free(url);
}

/*
 * Retry-After, against a one-shot scripted peer on the test's own loop
 * (the sandbox never sends the header): each connection gets the next
 * canned reply and is closed.
 */
struct canned {
    uv_tcp_t server;
    uv_tcp_t client;
    uv_write_t wr;
    const char *reply;
    char buf[4096];
    size_t got;
    int closed_count;
};

static void on_canned_closed(uv_handle_t *h)
{
    struct canned *c = h->data;
    c->closed_count++;
}

static void on_canned_written(uv_write_t *w, int status)
{
    struct canned *c = w->data;
    (void)status;
    uv_close((uv_handle_t *)&c->client, on_canned_closed);
}

static void canned_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct canned *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->buf + c->got, (unsigned)(sizeof(c->buf) - c->got - 1));
}

static void on_canned_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct canned *c = st->data;
    uv_buf_t out;
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)&c->client, on_canned_closed);
        return;
    }
    c->got += (size_t)n;
    c->buf[c->got] = '\0';
    if (strstr(c->buf, "\r\n\r\n") == NULL)
        return;
    uv_read_stop(st);
    out = uv_buf_init((char *)c->reply, (unsigned)strlen(c->reply));
    c->wr.data = c;
    uv_write(&c->wr, st, &out, 1, on_canned_written);
}

static void on_canned_conn(uv_stream_t *srv, int status)
{
    struct canned *c = srv->data;
    assert_int_equal(status, 0);
    uv_tcp_init(srv->loop, &c->client);
    c->client.data = c;
    c->got = 0;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&c->client), 0);
    uv_read_start((uv_stream_t *)&c->client, canned_alloc, on_canned_read);
}

/* One exchange with the canned peer: r (url filled in here) gets `reply`;
 * the request as the peer read it is copied to seen. */
static void canned_exchange(const char *reply, struct cts_http_req *r,
                            char *seen, size_t seenlen)
{
    struct harness hs;
    struct canned c;
    struct sockaddr_in sa;
    int len = sizeof(sa);
    char url[64];

    memset(&c, 0, sizeof(c));
    c.reply = reply;
    harness_init(&hs, 1, 0);
    uv_tcp_init(&hs.loop, &c.server);
    c.server.data = &c;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&c.server, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&c.server, 4, on_canned_conn), 0);
    uv_tcp_getsockname(&c.server, (struct sockaddr *)&sa, &len);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    r->url = url;
    assert_int_equal(cts_http_submit(&hs.http, r, on_done_count, &hs), 0);
    while (hs.done == 0)
        uv_run(&hs.loop, UV_RUN_ONCE);
    r->url = NULL;
    snprintf(seen, seenlen, "%s", c.buf);
    uv_close((uv_handle_t *)&c.server, NULL);
    harness_close(&hs);
}

static long retry_after_of(const char *reply)
{
    struct cts_http_req r;
    char seen[4096];
    long ra;

    cts_http_req_init(&r);
    canned_exchange(reply, &r, seen, sizeof(seen));
    assert_int_equal(r.status, 429);
    assert_int_equal(r.transport_error, 0);
    assert_string_equal(r.resp.data, "{}");
    ra = r.retry_after_s;
    cts_http_req_free(&r);
    return ra;
}

/* A GET announces no Content-Type (it has no body); a JSON body does. */
static void test_content_type_only_with_body(void **state)
{
    static const char ok[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    struct cts_http_req r;
    char seen[4096];
    (void)state;

    cts_http_req_init(&r);
    r.bearer = "t0k3n-for-the-test";
    canned_exchange(ok, &r, seen, sizeof(seen));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(seen, "GET /x HTTP/1.1\r\n"));
    assert_non_null(strstr(seen, "Accept: application/json\r\n"));
    assert_non_null(strstr(seen, "Authorization: Bearer t0k3n-for-the-test"));
    assert_null(strstr(seen, "Content-Type"));
    cts_http_req_free(&r);

    cts_http_req_init(&r);
    r.method = "POST";
    r.body = "{\"a\":1}";
    r.body_len = strlen(r.body);
    canned_exchange(ok, &r, seen, sizeof(seen));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(seen, "POST /x HTTP/1.1\r\n"));
    assert_non_null(strstr(seen, "Content-Type: application/json\r\n"));
    assert_null(strstr(seen, "Expect:")); /* no 100-continue round trip */
    cts_http_req_free(&r);
}

static void test_retry_after_header(void **state)
{
    (void)state;
#define REPLY(extra)                                                           \
    "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n" extra            \
    "Connection: close\r\n\r\n{}"
    assert_int_equal(retry_after_of(REPLY("Retry-After: 7\r\n")), 7);
    /* Present but zero is not the same as absent. */
    assert_int_equal(retry_after_of(REPLY("Retry-After: 0\r\n")), 0);
    assert_int_equal(retry_after_of(REPLY("")), -1);
#undef REPLY
    {
        /* The HTTP-date form (RFC 9110), an hour ahead: seconds from now. */
        char reply[256], date[64];
        time_t later = time(NULL) + 3600;
        struct tm tm;
        long ra;
        gmtime_r(&later, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(reply, sizeof(reply),
                 "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n"
                 "Retry-After: %s\r\nConnection: close\r\n\r\n{}",
                 date);
        ra = retry_after_of(reply);
        assert_true(ra >= 3590 && ra <= 3600);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_concurrency_cap),
        cmocka_unit_test(test_503_then_200),
        cmocka_unit_test(test_drop_after_maybe_landed),
        cmocka_unit_test(test_hang_timeout),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_close_aborts_in_flight),
        cmocka_unit_test(test_bad_method),
        cmocka_unit_test(test_fetch_retries_throttle),
        cmocka_unit_test(test_fetch_counts_against_limiter),
        cmocka_unit_test(test_retry_after_header),
        cmocka_unit_test(test_content_type_only_with_body),
        cmocka_unit_test(test_error_message_masks_key),
    };
    int rc;
    signal(SIGPIPE, SIG_IGN);
    cts_http_global_init();
    rc = cmocka_run_group_tests_name("http", tests, setup, teardown);
    cts_http_global_cleanup();
    return rc;
}
