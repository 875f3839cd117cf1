/*
 * fetch.c — the blocking fetch: one request on a private loop, retried
 * while the failure is transient.  For the calls made before or outside
 * the pipeline (account check, lists, token refresh, reading a list of
 * files from a URL).
 *
 * It sits above the transport (http.c), the retry policy (retry.c) and the
 * API's error vocabulary (api.c), so http.c needs neither of the other two.
 */
#include "cts_fetch.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cts_api.h"
#include "cts_limiter.h"
#include "cts_retry.h"
#include "cts_secret.h"
#include "cts_util.h"

#define DEFAULT_FETCH_RETRIES 3
#define DEFAULT_FETCH_BASE_MS 250
#define FETCH_CAP_MS          4000
/* A Retry-After longer than this is not waited for by the blocking fetch:
 * the reply goes back to the caller, who can explain it to the user. */
#define FETCH_MAX_RETRY_AFTER_S 10

/* How often a blocking fetch looks whether a signal asked it to stop. */
#define FETCH_SIGNAL_POLL_MS 50

/* The signal caught by cts_fetch_catch_signals, 0 while none was. */
static volatile sig_atomic_t caught;

/* cts_fetch_set_limiter: every try waits for a slot here; NULL = none. */
static struct cts_limiter *pace;

void cts_fetch_set_limiter(struct cts_limiter *l)
{
    pace = l;
}

uint64_t cts_fetch_clock_ms(void *clock_arg)
{
    (void)clock_arg;
    return uv_hrtime() / 1000000;
}

static void on_caught(int signum)
{
    caught = signum;
}

void cts_fetch_catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_caught;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART keeps plain reads going; libuv's poll still returns
     * EINTR, and the fetch's watch timer sees the flag. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cts_fetch_signal(void)
{
    return (int)caught;
}

struct fetch {
    uv_loop_t loop;
    struct cts_http http;
    uv_timer_t backoff;
    uv_timer_t slot;  /* waits for the limiter's next slot */
    uv_timer_t watch; /* polls `caught` */
    struct cts_http_req *req;
    int max_retries;
    uint64_t base_ms;
    int done;
    int rc;
};

static void on_fetch_done(struct cts_http_req *req, void *arg);
static void on_slot(uv_timer_t *t);

/* Send the request (again) once the limiter has a slot for it: a try
 * that waits is not sent yet, so a signal can still end it. */
static void send_paced(struct fetch *f)
{
    uint64_t wait;
    int rc;

    if (f->done)
        return;
    if (pace != NULL && !cts_limiter_try_take(pace)) {
        wait = cts_limiter_wait_ms(pace);
        uv_timer_start(&f->slot, on_slot, wait > 0 ? wait : 1, 0);
        return;
    }
    rc = cts_http_submit(&f->http, f->req, on_fetch_done, f);
    if (rc != 0) {
        f->rc = rc;
        f->done = 1;
    }
}

static void on_slot(uv_timer_t *t)
{
    send_paced(t->data);
}

static void on_backoff(uv_timer_t *t)
{
    send_paced(t->data);
}

/* How the blocking fetch treats this reply: CTS_OC_TRANSIENT or
 * CTS_OC_THROTTLED to try again, anything else to stop. */
static enum cts_outcome_class fetch_outcome(const struct cts_http_req *req)
{
    const char *m = req->method != NULL ? req->method : "GET";
    char *key = NULL;
    enum cts_outcome_class oc;

    if (req->maybe_landed && strcmp(m, "POST") == 0 && !req->idempotent)
        return CTS_OC_PERMANENT;
    if (req->transport_error == 0 && req->status != 403 && req->status != 408 &&
        req->status != 429 && req->status < 500)
        return CTS_OC_PERMANENT;
    if (req->transport_error == 0 && req->resp.data != NULL)
        cts_api_parse_error(req->resp.data, req->resp.len, &key, NULL);
    /* 403 is only a throttling signal in v2's mashery vocabulary. */
    oc = cts_retry_classify(req->status == 403 ? CTS_API_V2 : CTS_API_V3,
                            req->status, req->transport_error, key);
    free(key);
    return oc;
}

/* A caught signal ends the fetch (UV_ECANCELED); closing the transport
 * aborts the request in flight. */
static void on_watch(uv_timer_t *t)
{
    struct fetch *f = t->data;

    if (caught == 0 || f->done)
        return;
    f->rc = UV_ECANCELED;
    f->done = 1;
}

static void on_fetch_done(struct cts_http_req *req, void *arg)
{
    struct fetch *f = arg;
    uint32_t rnd = 0;
    uint64_t delay;
    enum cts_outcome_class oc;

    req->attempts++;
    if (f->rc == UV_ECANCELED) /* aborted by on_watch: no retry */
        return;
    oc = fetch_outcome(req);
    if (req->attempts <= f->max_retries &&
        (oc == CTS_OC_TRANSIENT || oc == CTS_OC_THROTTLED) &&
        req->retry_after_s <= FETCH_MAX_RETRY_AFTER_S) {
        if (cts_random_bytes(&rnd, sizeof(rnd)) != 0)
            rnd = (uint32_t)uv_hrtime();
        delay = cts_retry_delay_ms(req->attempts, req->retry_after_s,
                                   f->base_ms, FETCH_CAP_MS, rnd);
        /* Throttling means "this second is full" and a server counts every
         * arrival, refused ones too: a retry within the same second would
         * only be refused again and keep the window full. */
        if (oc == CTS_OC_THROTTLED && req->retry_after_s < 0)
            delay += 1000;
        if (cts_log_get_level() >= CTS_LOG_DEBUG) {
            char *u = cts_url_redact(req->url);
            cts_log_debug("retrying %s in %llu ms (%s, status %ld)", u,
                          (unsigned long long)delay,
                          cts_xfer_error_name(req->transport_error),
                          req->status);
            free(u);
        }
        /* The retry starts from a timer, never from inside the drain. */
        uv_timer_start(&f->backoff, on_backoff, delay, 0);
        return;
    }
    f->done = 1;
}

static void on_fetch_closed(struct cts_http *h)
{
    (void)h;
}

int cts_http_fetch(struct cts_http_req *req, const struct cts_http_opts *o,
                   struct cts_error *err)
{
    struct fetch f;
    struct cts_http_opts opts;
    char *url;
    int rc;

    memset(&f, 0, sizeof(f));
    memset(&opts, 0, sizeof(opts));
    if (o != NULL)
        opts = *o;
    opts.max_in_flight = 1;
    f.req = req;
    f.max_retries = opts.fetch_retries == 0  ? DEFAULT_FETCH_RETRIES
                    : opts.fetch_retries < 0 ? 0
                                             : opts.fetch_retries;
    f.base_ms =
        opts.fetch_base_ms != 0 ? opts.fetch_base_ms : DEFAULT_FETCH_BASE_MS;
    req->attempts = 0;

    rc = uv_loop_init(&f.loop);
    if (rc != 0)
        return cts_error_set(err, rc, "uv_loop_init: %s", uv_strerror(rc));
    rc = cts_http_init(&f.http, &f.loop, &opts);
    if (rc != 0) {
        uv_loop_close(&f.loop);
        return cts_error_set(err, rc, "cannot start HTTP: %s",
                             cts_strerror(rc));
    }
    uv_timer_init(&f.loop, &f.backoff);
    f.backoff.data = &f;
    uv_timer_init(&f.loop, &f.slot);
    f.slot.data = &f;
    uv_timer_init(&f.loop, &f.watch);
    f.watch.data = &f;
    uv_timer_start(&f.watch, on_watch, FETCH_SIGNAL_POLL_MS,
                   FETCH_SIGNAL_POLL_MS);

    /* Messages name the URL with secrets masked (v2 carries api_key in
     * the query string). */
    url = cts_url_redact(req->url != NULL ? req->url : "(no URL)");
    if (caught != 0) {
        rc = UV_ECANCELED;
    } else {
        send_paced(&f);
        rc = f.done ? f.rc : 0;
    }
    if (rc == UV_ECANCELED) {
        cts_error_set(err, rc, "%s: interrupted by signal %d", url,
                      (int)caught);
    } else if (rc != 0) {
        cts_error_set(err, rc, "cannot send %s: %s", url, cts_strerror(rc));
    } else {
        /* Each uv_run returns when nothing is left to do; done is set by
         * the last callback, a pending backoff keeps the loop alive. */
        while (!f.done)
            if (uv_run(&f.loop, UV_RUN_ONCE) == 0 && !f.done)
                break;
        rc = f.rc;
        if (rc == 0 && !f.done)
            rc = cts_error_set(err, CTS_EHTTP, "internal: %s stalled", url);
        else if (rc == 0 && req->transport_error != 0)
            rc = cts_error_set(err, CTS_EHTTP, "%s %s: %s",
                               req->method != NULL ? req->method : "GET", url,
                               req->errbuf);
        else if (rc == UV_ECANCELED)
            cts_error_set(err, rc, "%s: interrupted by signal %d", url,
                          (int)caught);
        else if (rc != 0)
            cts_error_set(err, rc, "cannot send %s: %s", url, cts_strerror(rc));
    }
    free(url);

    uv_close((uv_handle_t *)&f.backoff, NULL);
    uv_close((uv_handle_t *)&f.slot, NULL);
    uv_close((uv_handle_t *)&f.watch, NULL);
    cts_http_close(&f.http, on_fetch_closed);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&f.loop) != 0)
        cts_log_error("internal: HTTP loop did not close cleanly");
    return rc;
}
