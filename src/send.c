/* send.c — the send engine (cts_send.h): queues, concurrency cap, the
 * key's pace (cts_limiter), daily quota, start hook, libcurl, throttling,
 * retry and backoff, 401 refresh.  Knows nothing of rows or activities. */
#include "cts_send.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cts_api.h"
#include "cts_refresh.h"
#include "cts_state.h"

#define STALL_MS_DEFAULT 600000 /* 10 minutes of throttling, no progress */
#define BIG_BODY         16384  /* arrives only once uploaded: a bulk POST */

/* Where a request is: every change through set_where (curl's mstate). */
enum where {
    W_IDLE = 0,  /* not submitted, or done has run */
    W_QUEUED,    /* on `again` or `fresh`, waiting for the limiter */
    W_IN_FLIGHT, /* libcurl has it */
    W_BACKOFF    /* on `backoff`, its timer armed */
};

static const char *const where_names[] = {"IDLE", "QUEUED", "IN_FLIGHT",
                                          "BACKOFF"};

#define B(s) (1u << (s))
static const unsigned legal[] = {
    [W_IDLE] = B(W_QUEUED) | B(W_BACKOFF), /* cts_send_retry from done */
    [W_QUEUED] = B(W_IN_FLIGHT) | B(W_IDLE),
    [W_IN_FLIGHT] = B(W_BACKOFF) | B(W_QUEUED) | B(W_IDLE),
    [W_BACKOFF] = B(W_QUEUED) | B(W_IDLE),
};

static void set_where(struct cts_send_req *r, enum where to)
{
    /* An illegal transition is an engine bug, never an input condition. */
    assert((legal[r->where] & B(to)) != 0);
    if ((legal[r->where] & B(to)) == 0)
        cts_log_error("internal: request %s -> %s", where_names[r->where],
                      where_names[to]);
    r->where = (int)to;
}

static uint64_t clock_now(void *arg)
{
    uv_loop_t *loop = arg;
    /* uv_now is cached per loop iteration; the limiter needs the time the
     * request really starts, or a slow iteration would let a slot open
     * early as the server counts it. */
    uv_update_time(loop);
    return uv_now(loop);
}

/*
 * One request of the local daily quota.  The count lives in a locked file
 * (cts_state: flock, read, write, unlock per call), which costs more than
 * the request itself at thousands per second; so without a rate limit (or
 * above 50/s) requests are counted in blocks of 16 while more than 64
 * remain; the unused rest of the last block is given back at close.  A
 * run killed before that over-counts by at most 15 requests, never
 * under-counts.
 */
static int quota_take(struct cts_send *s)
{
    long want = 1;

    if (s->st == NULL)
        return 0;
    if (s->quota_credit > 0) {
        s->quota_credit--;
        return 0;
    }
    if ((s->cfg->rate <= 0 || s->cfg->rate > 50) &&
        cts_state_quota_remaining(s->st) > 64)
        want = 16;
    if (cts_state_quota_take(s->st, want) != 0)
        return CTS_EQUOTA;
    s->quota_credit = want - 1;
    return 0;
}

/* ---- ending a request ---- */

/* Text for a failure without an API error body. */
static void describe_failure(const struct cts_http_req *req, char *key,
                             size_t keylen, char *msg, size_t msglen)
{
    if (req->transport_error != CTS_XE_NONE) {
        snprintf(key, keylen, "%s", cts_xfer_error_name(req->transport_error));
        snprintf(msg, msglen, "%s",
                 req->errbuf[0] != '\0' ? req->errbuf : "transfer failed");
    } else {
        snprintf(key, keylen, "http.status.%ld", req->status);
        snprintf(msg, msglen, "HTTP %ld", req->status);
    }
}

/* Hand r back to its owner.  r must not be touched afterwards: done may
 * free it or submit it again. */
static void deliver(struct cts_send_req *r, struct cts_send_result *res)
{
    if (r->where != W_IDLE)
        set_where(r, W_IDLE);
    r->done(r, res);
}

/* End r without an exchange (never sent, or withdrawn by a stop). */
static void end_unsent(struct cts_send_req *r, enum cts_send_end end, int rc)
{
    struct cts_send_result res;

    memset(&res, 0, sizeof(res));
    res.end = end;
    res.rc = rc;
    deliver(r, &res);
}

static void on_pump_timer(uv_timer_t *t)
{
    cts_send_pump(t->data);
}

/* Back in line for the next try (a retry, or a resend after a 401). */
static void requeue(struct cts_send *s, struct cts_send_req *r)
{
    set_where(r, W_QUEUED);
    TAILQ_INSERT_TAIL(&s->again, r, link);
}

static void on_backoff(uv_timer_t *t)
{
    struct cts_send_req *r = t->data;
    struct cts_send *s = r->s;

    TAILQ_REMOVE(&s->backoff, r, link);
    /* Back through the limiter: a retry spends rate budget like any
     * other request. */
    requeue(s, r);
    cts_send_pump(s);
}

/* Schedule the next try of a transiently failed r, or say why not. */
static int retry_or_end(struct cts_send *s, struct cts_send_req *r,
                        enum cts_outcome_class oc, struct cts_send_result *res)
{
    const struct cts_http_req *req = &r->http;
    uint64_t delay = 0;
    uint64_t elapsed = uv_now(s->loop) - r->first_ms;

    if (s->stopped) {
        res->end = CTS_SEND_STOPPED;
        return 0;
    }
    /* Tries answered by a throttling reply were not processed: they do not
     * use up the retries. */
    if (cts_retry_next(&s->policy, oc, r->tries - r->throttled, elapsed,
                       req->retry_after_s, cts_rng_next32(&s->rng), &delay)) {
        cts_log_debug(
            "%s: %s (%s), retry %d in %" PRIu64 " ms",
            req->method != NULL ? req->method : "GET", cts_outcome_name(oc),
            res->error_key != NULL ? res->error_key : "", r->tries, delay);
        s->retries++;
        set_where(r, W_BACKOFF);
        if (!r->timer_inited) {
            /* Initialised only for requests that need a retry: most never
             * do, and a handle costs a close round trip at free. */
            uv_timer_init(s->loop, &r->timer);
            r->timer.data = r;
            r->timer_inited = 1;
        }
        TAILQ_INSERT_TAIL(&s->backoff, r, link);
        uv_timer_start(&r->timer, on_backoff, delay, 0);
        return 1;
    }
    if ((req->transport_error == CTS_XE_CONNECT ||
         req->transport_error == CTS_XE_RESOLVE) &&
        s->last_reply_ms < r->first_ms) {
        /* Not one reply, from any request, since this one's first try:
         * every other request would now spend its whole retry budget the
         * same way (minutes each). */
        res->end = CTS_SEND_UNREACHABLE;
        return 0;
    }
    res->end = CTS_SEND_GAVE_UP;
    return 0;
}

/* The stall time has passed with nothing but throttling replies. */
static int stall_due(struct cts_send *s, uint64_t now)
{
    if (!s->stalled && s->streak_ms != 0 && now - s->streak_ms >= s->stall_ms) {
        s->stalled = 1;
        cts_log_info("throttled by the API for %" PRIu64 " s without one "
                     "request let through; the rest is left for a later run",
                     s->stall_ms / 1000);
    }
    return s->stalled;
}

/* End every request waiting to start (queued or backing off) with end. */
static void end_waiting(struct cts_send *s, enum cts_send_end end)
{
    struct cts_send_req *r;

    while ((r = TAILQ_FIRST(&s->again)) != NULL) {
        TAILQ_REMOVE(&s->again, r, link);
        end_unsent(r, end, 0);
    }
    while ((r = TAILQ_FIRST(&s->fresh)) != NULL) {
        TAILQ_REMOVE(&s->fresh, r, link);
        end_unsent(r, end, 0);
    }
    while ((r = TAILQ_FIRST(&s->backoff)) != NULL) {
        TAILQ_REMOVE(&s->backoff, r, link);
        uv_timer_stop(&r->timer);
        end_unsent(r, end, 0);
    }
}

/*
 * A throttling reply: "not processed, slow down".  The limiter has
 * lowered the key's pace; r goes back in line (honouring Retry-After for
 * every start) without using up its retries.  1 = requeued; 0 with
 * res->end set (STOPPED, STALLED).
 */
static int throttled_again(struct cts_send *s, struct cts_send_req *r,
                           struct cts_send_result *res, uint64_t now)
{
    const struct cts_http_req *req = &r->http;

    if (s->stopped) {
        res->end = CTS_SEND_STOPPED;
        return 0;
    }
    if (stall_due(s, now)) {
        res->end = CTS_SEND_STALLED;
        return 0;
    }
    if (req->retry_after_s >= 0)
        cts_limiter_pause(&s->lim,
                          cts_retry_delay_ms(1, req->retry_after_s, 0, 0, 0));
    r->throttled++;
    cts_log_debug("%s: throttled (%s), again at %.2f requests/s",
                  req->method != NULL ? req->method : "GET",
                  res->error_key != NULL ? res->error_key : "",
                  cts_limiter_pace(&s->lim));
    requeue(s, r);
    return 1;
}

/* What the reply says about the key's pace and about progress. */
static void note_reply(struct cts_send *s, struct cts_send_req *r,
                       enum cts_outcome_class oc, uint64_t now)
{
    if (r->http.status <= 0)
        return;
    s->last_reply_ms = now;
    if (oc == CTS_OC_THROTTLED) {
        s->throttled++;
        if (s->streak_ms == 0)
            s->streak_ms = now;
        cts_limiter_note_throttled(&s->lim, r->start_ms);
    } else {
        s->streak_ms = 0;
        s->stalled = 0;
        cts_limiter_note_ok(&s->lim);
    }
}

/* A 401: resend with the token a refresh has put in place.  1 = requeued. */
static int auth_again(struct cts_send *s, struct cts_send_req *r)
{
    struct cts_config *cfg = s->cfg;
    struct cts_error err = {0};

    if (s->stopped)
        return 0;
    if (r->http.bearer != s->bearer) {
        /* Sent with the token a refresh has replaced since: resend. */
        requeue(s, r);
        return 1;
    }
    if (s->refreshed || cfg->api != CTS_API_V3 || cfg->refresh_token == NULL)
        return 0;
    s->refreshed = 1;
    /* Blocking, on the OAuth module's private loop: a token call is rare
     * (once per run at most) and other requests would meet the same 401
     * meanwhile anyway. */
    if (cts_oauth_refresh(cfg, &err) == 0 && cfg->token != NULL) {
        free(s->old_bearer);
        s->old_bearer = s->bearer;
        s->bearer = cts_xstrdup(cfg->token);
        cts_log_info("the access token was refused (401); refreshed it and "
                     "going on");
        requeue(s, r);
        return 1;
    }
    cts_log_error("%s", err.msg);
    return 0;
}

/* libcurl finished one try (from cts_http's drain loop). */
static void on_http_done(struct cts_http_req *req, void *arg)
{
    struct cts_send_req *r = arg;
    struct cts_send *s = r->s;
    struct cts_send_result res;
    char *ek = NULL, *em = NULL;
    char key[64], msg[300];
    uint64_t now = clock_now(s->loop);

    /* First, before anything can start another request: a request that
     * may have opened a connection has arrived by now. */
    if (r->cold) {
        cts_limiter_release(&s->lim);
        r->cold = 0;
    } else if (req->status > 0) {
        cts_limiter_note_reply(&s->lim, r->start_ms);
    } else {
        cts_limiter_seed(&s->lim, 1, now); /* arrived, if at all, by now */
    }
    /* A failed transfer may have cost its connection: the next request
     * beyond those in flight may open one. */
    if (req->transport_error != CTS_XE_NONE && s->conns > 0)
        s->conns--;
    /* Sticky: libcurl itself may resend a POST on a new connection, so a
     * later reply of this request may be about our own stored write. */
    if (req->maybe_landed)
        r->maybe_landed = 1;
    memset(&res, 0, sizeof(res));
    res.exchanged = 1;
    if (req->transport_error == CTS_XE_ABORTED) {
        res.end = CTS_SEND_ABORTED;
        deliver(r, &res);
        goto out;
    }
    /* Error bodies come in both shapes (array, single object for v3 429);
     * the error_key decides throttling vs quota for the classifier. */
    if (req->transport_error == CTS_XE_NONE && req->status >= 300)
        cts_api_parse_error(req->resp.data != NULL ? req->resp.data : "",
                            req->resp.len, &ek, &em);
    res.oc =
        cts_retry_classify(s->cfg->api, req->status, req->transport_error, ek);
    note_reply(s, r, res.oc, now);
    if (res.oc != CTS_OC_OK) {
        describe_failure(req, key, sizeof(key), msg, sizeof(msg));
        res.reply_key = ek;
        res.reply_message = em;
        res.error_key = ek != NULL ? ek : key;
        res.message = em != NULL ? em : msg;
    }
    switch (res.oc) {
    case CTS_OC_AUTH:
        if (auth_again(s, r))
            goto out;
        break;
    case CTS_OC_QUOTA:
        if (s->st != NULL)
            cts_state_quota_exhausted(s->st);
        break;
    case CTS_OC_THROTTLED:
        if (r->no_retry && !s->stopped)
            break;
        if (throttled_again(s, r, &res, now))
            goto out;
        break;
    case CTS_OC_TRANSIENT:
        if (r->no_retry && !s->stopped)
            break;
        if (retry_or_end(s, r, res.oc, &res))
            goto out;
        break;
    default: break;
    }
    deliver(r, &res);
out:
    free(ek);
    free(em);
    cts_send_pump(s);
}

/* r took its limiter slot but will not be sent. */
static void end_not_started(struct cts_send *s, struct cts_send_req *r,
                            enum cts_send_end end, int rc)
{
    if (r->cold) {
        cts_limiter_release(&s->lim);
        r->cold = 0;
    }
    end_unsent(r, end, rc);
}

/* Hand r to libcurl once it has its slot: quota, start hook, submit. */
static void start(struct cts_send *s, struct cts_send_req *r)
{
    int rc;

    /* The local daily count (across runs) is taken per request, retries
     * and follow-up requests included, as the server counts them. */
    if (quota_take(s) != 0) {
        end_not_started(s, r, CTS_SEND_NO_QUOTA, 0);
        return;
    }
    if (r->start != NULL && r->start(r) != 0) {
        end_not_started(s, r, CTS_SEND_REFUSED, 0);
        return;
    }
    if (r->tries == 0)
        r->first_ms = uv_now(s->loop);
    /* The bearer is borrowed until done: s->bearer lives for the whole
     * run (after a refresh the previous copy is kept in old_bearer). */
    r->http.bearer = s->bearer;
    r->http.user = r;
    set_where(r, W_IN_FLIGHT);
    rc = cts_http_submit(&s->http, &r->http, on_http_done, r);
    if (rc != 0) {
        end_not_started(s, r, CTS_SEND_FAILED, rc);
        return;
    }
    r->tries++;
    r->sent++;
    s->requests++;
}

/* ---- public ---- */

/* CTCT_SYNC_STALL_SECONDS (a knob for tests), else 10 minutes. */
static uint64_t stall_ms_from_env(void)
{
    const char *v = getenv("CTCT_SYNC_STALL_SECONDS");
    char *end;
    unsigned long long n;

    if (v == NULL || *v < '0' || *v > '9')
        return STALL_MS_DEFAULT;
    n = strtoull(v, &end, 10);
    if (*end != '\0' || n > 86400ULL * 365)
        return STALL_MS_DEFAULT;
    return n > 0 ? (uint64_t)n * 1000 : 1;
}

int cts_send_init(struct cts_send *s, const struct cts_send_params *p,
                  struct cts_error *err)
{
    struct cts_config *cfg = p->cfg;
    struct cts_http_opts ho;
    int rc;

    memset(s, 0, sizeof(*s));
    s->loop = p->loop;
    s->cfg = cfg;
    s->st = p->state;
    s->max_in_flight = cfg->concurrency > 0 ? (unsigned)cfg->concurrency : 1;
    TAILQ_INIT(&s->again);
    TAILQ_INIT(&s->fresh);
    TAILQ_INIT(&s->backoff);
    memset(&ho, 0, sizeof(ho));
    ho.max_in_flight = (long)s->max_in_flight;
    ho.timeout_ms = cfg->timeout_ms;
    ho.verbose = cfg->verbose;
    rc = cts_http_init(&s->http, s->loop, &ho);
    if (rc != 0)
        return cts_error_setx(err, rc, CTS_EX_SOFTWARE,
                              "cannot start the HTTP client: %s",
                              cts_strerror(rc));
    cts_http_set_before_io(&s->http, p->before_io, p->before_io_arg);
    cts_rng_init(&s->rng);
    cts_retry_policy_default(&s->policy);
    s->policy.max_retries = cfg->retries >= 0 ? (int)cfg->retries : 0;
    if (p->retry_base_ms > 0)
        s->policy.base_ms = p->retry_base_ms;
    cts_limiter_init(&s->lim, cfg->rate, clock_now, s->loop);
    /* The server's window already holds the preflight requests.  They
     * enter the limiter's log with the time they ended (uv_now is
     * uv_hrtime in ms: the same clock). */
    if (p->preflight > 0)
        cts_limiter_seed(&s->lim, (unsigned)p->preflight,
                         p->preflight_done_ms != 0 ? p->preflight_done_ms
                                                   : clock_now(s->loop));
    s->stall_ms = p->stall_ms != 0 ? p->stall_ms : stall_ms_from_env();
    s->bearer = cts_xstrdup(cfg->token != NULL ? cfg->token : "");
    uv_timer_init(s->loop, &s->pump_timer);
    s->pump_timer.data = s;
    return 0;
}

void cts_send_req_init(struct cts_send_req *r)
{
    memset(r, 0, sizeof(*r));
    cts_http_req_init(&r->http);
}

void cts_send_req_set(struct cts_send_req *r, const char *method,
                      const char *url, const char *body)
{
    r->http.method = method;
    r->http.url = url;
    /* libcurl's POSTFIELDS rule: the body is not copied, so it belongs to
     * the caller until done. */
    r->http.body = body;
    r->http.body_len = body != NULL ? strlen(body) : 0;
}

int cts_send_req_close(struct cts_send_req *r, uv_close_cb cb)
{
    assert(r->where == W_IDLE);
    cts_http_req_free(&r->http);
    if (!r->timer_inited)
        return 0;
    /* libuv: the handle's memory stays in use until its close callback. */
    uv_close((uv_handle_t *)&r->timer, cb);
    return 1;
}

int cts_send_submit(struct cts_send *s, struct cts_send_req *r, int again)
{
    if (s->stopped || s->closing)
        return UV_ECANCELED;
    r->s = s;
    r->tries = 0;
    r->throttled = 0;
    r->maybe_landed = 0;
    set_where(r, W_QUEUED);
    TAILQ_INSERT_TAIL(again ? &s->again : &s->fresh, r, link);
    /* Started from the next pump; if none is due, from the next turn. */
    if (!uv_is_active((uv_handle_t *)&s->pump_timer))
        uv_timer_start(&s->pump_timer, on_pump_timer, 0, 0);
    return 0;
}

int cts_send_retry(struct cts_send *s, struct cts_send_req *r,
                   struct cts_send_result *res)
{
    /* The same submit goes on: its tries and time budget count on. */
    return retry_or_end(s, r, CTS_OC_TRANSIENT, res);
}

static int on_queue(const struct cts_send_q *q, const struct cts_send_req *r)
{
    const struct cts_send_req *x;

    for (x = TAILQ_FIRST(q); x != NULL; x = TAILQ_NEXT(x, link))
        if (x == r)
            return 1;
    return 0;
}

int cts_send_cancel(struct cts_send *s, struct cts_send_req *r)
{
    switch (r->where) {
    case W_QUEUED:
        /* On one of the two queues: TAILQ_REMOVE needs the right head. */
        if (on_queue(&s->again, r))
            TAILQ_REMOVE(&s->again, r, link);
        else
            TAILQ_REMOVE(&s->fresh, r, link);
        break;
    case W_BACKOFF:
        uv_timer_stop(&r->timer);
        TAILQ_REMOVE(&s->backoff, r, link);
        break;
    case W_IN_FLIGHT: return UV_EBUSY;
    default: return 0;
    }
    set_where(r, W_IDLE);
    return 0;
}

void cts_send_pump(struct cts_send *s)
{
    /* A done callback run from here may submit and pump again: the loop
     * below picks those up. */
    if (s->pumping)
        return;
    s->pumping = 1;
    for (;;) {
        struct cts_send_q *q;
        struct cts_send_req *r;
        uint64_t wait;
        unsigned in_flight;
        int cold;

        if (s->stopped || s->closing)
            break;
        if (s->streak_ms != 0 && stall_due(s, clock_now(s->loop))) {
            end_waiting(s, CTS_SEND_STALLED);
            break;
        }
        in_flight = cts_http_in_flight(&s->http);
        if (in_flight >= s->max_in_flight)
            break; /* a reply pumps again */
        /* Retries and next steps go first: they hold older rows, and the
         * ordered report is waiting for them. */
        q = !TAILQ_EMPTY(&s->again) ? &s->again : &s->fresh;
        r = TAILQ_FIRST(q);
        if (r == NULL)
            break;
        wait = cts_limiter_wait_ms(&s->lim);
        if (wait == CTS_LIMITER_WAIT_REPLY)
            break; /* on_http_done pumps again */
        /* libcurl keeps its connections: a request beyond those it has
         * held at once so far opens a new one, and arrives only after the
         * handshake; a big body arrives once it is uploaded.  The limiter
         * counts those until their reply. */
        cold = s->lim.n > 0 &&
               (in_flight >= s->conns || r->http.body_len > BIG_BODY);
        if (wait == 0 && !cts_limiter_try_start(&s->lim, cold))
            wait = 1;
        if (wait > 0) {
            /* One timer for the next slot (or the stall check), never a
             * busy loop. */
            if (s->streak_ms != 0) {
                uint64_t now = clock_now(s->loop),
                         due = s->streak_ms + s->stall_ms;
                if (due <= now + wait)
                    wait = due > now ? due - now : 1;
            }
            if (!uv_is_active((uv_handle_t *)&s->pump_timer))
                uv_timer_start(&s->pump_timer, on_pump_timer, wait, 0);
            break;
        }
        TAILQ_REMOVE(q, r, link);
        r->cold = cold;
        r->start_ms = clock_now(s->loop);
        if (in_flight >= s->conns)
            s->conns = in_flight + 1;
        start(s, r);
    }
    s->pumping = 0;
}

void cts_send_stop(struct cts_send *s)
{
    if (s->stopped)
        return;
    s->stopped = 1;
    if (!s->closing)
        uv_timer_stop(&s->pump_timer);
    /* Every request still waiting ends now; in-flight ones finish and keep
     * their result (a write that landed is reported as such). */
    end_waiting(s, CTS_SEND_STOPPED);
}

unsigned cts_send_in_flight(const struct cts_send *s)
{
    return cts_http_in_flight(&s->http);
}

void cts_send_close(struct cts_send *s)
{
    if (s->closing)
        return;
    cts_send_stop(s);
    s->closing = 1;
    uv_close((uv_handle_t *)&s->pump_timer, NULL);
    /* Style C6.7: cts_http_close aborts what is still in flight (their
     * done runs now), then curl_multi_cleanup, header lists, timer and
     * socket polls. */
    cts_http_close(&s->http, NULL);
    /* Requests counted in a block (quota_take) but never made go back to
     * today's count, so a run over-counts by nothing. */
    if (s->quota_credit > 0 && s->st != NULL) {
        cts_state_quota_release(s->st, s->quota_credit);
        s->quota_credit = 0;
    }
    cts_limiter_free(&s->lim);
    free(s->bearer);
    free(s->old_bearer);
    s->bearer = s->old_bearer = NULL;
}
