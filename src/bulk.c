/* bulk.c — bulk activities: chunking, polling decisions, activity errors
 * mapped back to rows (cts_bulk.h).  Requests go through the send engine
 * (cts_send.h); bodies are built by api.c. */
#include "cts_bulk.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <jansson.h>
#include <uv.h>

#include "cts_api.h"
#include "cts_send.h"
#include "cts_state.h"

#define DEF_MAX_ROWS  40000
#define DEF_MAX_BYTES 4000000
/* Activities take 30 s to 15 min; one still running after
 * this long is left to the next run (its rows stay journalled), so a stuck
 * activity cannot hold a cron job forever. */
#define MAX_POLL_MS (4ULL * 3600 * 1000)

/* A row of a chunk: 24 bytes, kept until it is reported. */
struct brow {
    uint64_t key; /* cts_state_email_key */
    uint32_t row; /* the pipeline's tag */
    uint32_t fp;
    uint32_t line; /* 1-based position in the activity's import_data */
    uint32_t pad;
};

/* An error the activity reported, mapped by line and/or email key. */
struct rowerr {
    uint32_t line; /* 0 when the error named no line */
    uint64_t key;  /* 0 when it named no email */
    char *msg;     /* owned */
};

enum ch_state {
    CH_FILLING = 0, /* rows being added */
    CH_READY,       /* sealed, waiting for its turn to be posted */
    CH_POSTING,     /* POST in the send engine (queued, in flight or
                       backing off) */
    CH_POLLING,     /* accepted; timer armed or GET in flight */
    CH_FINISHED     /* outcome known; rows delivered from `reported` on */
};

struct chunk {
    TAILQ_ENTRY(chunk) link;
    struct cts_bulk_run *b;
    enum ch_state state;
    uint32_t serial;
    int adopted; /* a killed run's activity: never posted here */
    int retired; /* removed from the list, close pending */
    int closes;  /* handle closes pending (timer, request's timer) */
    struct brow *rows;
    size_t n, cap, reported;
    struct cts_buf body; /* import_data items so far (no head/tail) */
    unsigned v2_cf_mask; /* v2: CUSTOM FIELD n columns used (bit n) */
    char *post_body;     /* the full body while the POST is in flight */
    char *activity_id;
    char *url;      /* POST */
    char *poll_url; /* GET /activities/{id} */
    int attempts;   /* POSTs */
    int poll_errors;
    uint64_t poll_since_ms;   /* polling began (0: not yet) */
    int req_busy;             /* sreq submitted, its done pending */
    uv_timer_t timer;         /* poll timer; data = chunk */
    struct cts_send_req sreq; /* the POST, then the polls; data = chunk */
    /* outcome */
    enum cts_status fin_status; /* for rows without their own error */
    int fin_permanent;
    int fin_journal; /* journal_done the rows (0: keep them pending) */
    int fin_http;
    char *fin_key, *fin_msg;
    struct rowerr *errs; /* sorted by line */
    struct rowerr **errs_by_key;
    size_t nerrs, nerrs_key;
};

TAILQ_HEAD(chunk_list, chunk);

struct cts_bulk_run {
    uv_loop_t *loop;
    const struct cts_config *cfg;
    struct cts_state *st;
    cts_bulk_result_cb on_result;
    cts_bulk_idle_cb on_idle;
    void *arg;
    size_t max_rows, max_bytes;
    uint64_t poll_ms;
    struct cts_send *send;
    uv_timer_t kick; /* deferred deliveries (never synchronous) */
    struct chunk_list chunks;
    struct chunk *filling;
    size_t head_len; /* CTS_API_BULK_HEAD */
    size_t tail_max; /* longest tail, for the size check */
    size_t in, out;  /* rows handed in / reported */
    int flushed, closing, idle_signalled;
    enum cts_bulk_stop stop;
    unsigned pending_closes;
    void (*closed)(void *arg);
    void *closed_arg;
    struct cts_bulk_stats stats;
};

static void post_next(struct cts_bulk_run *b);
static void deliver(struct cts_bulk_run *b);
static void on_timer(uv_timer_t *t);
static void on_kick(uv_timer_t *t);

/* ---- small helpers ---- */

static void kick(struct cts_bulk_run *b)
{
    if (!b->closing)
        uv_timer_start(&b->kick, on_kick, 0, 0);
}

int cts_bulk_choose(const struct cts_config *cfg, long rows_to_send,
                    long quota_remaining)
{
    if (cfg->bulk == CTS_BULK_ALWAYS)
        return 1;
    if (cfg->bulk == CTS_BULK_NEVER || rows_to_send <= 0)
        return 0;
    /* Per-contact costs at least one request a row: when the quota cannot
     * carry that, one bulk request per 40,000 rows can. */
    return rows_to_send > cfg->bulk_threshold || rows_to_send > quota_remaining;
}

/* ---- chunks ---- */

static void on_post_done(struct cts_send_req *r, struct cts_send_result *res);
static void on_poll_done(struct cts_send_req *r, struct cts_send_result *res);

static struct chunk *chunk_new(struct cts_bulk_run *b)
{
    struct chunk *c = cts_xcalloc(1, sizeof(*c));
    c->b = b;
    c->state = CH_FILLING;
    cts_buf_init(&c->body, 0);
    cts_send_req_init(&c->sreq);
    c->sreq.data = c;
    uv_timer_init(b->loop, &c->timer);
    c->timer.data = c;
    TAILQ_INSERT_TAIL(&b->chunks, c, link);
    return c;
}

static void chunk_free(struct chunk *c)
{
    size_t i;
    cts_buf_free(&c->body);
    for (i = 0; i < c->nerrs; i++)
        free(c->errs[i].msg);
    free(c->errs);
    free(c->errs_by_key);
    free(c->rows);
    free(c->post_body);
    free(c->activity_id);
    free(c->url);
    free(c->poll_url);
    free(c->fin_key);
    free(c->fin_msg);
    free(c);
}

static void maybe_closed(struct cts_bulk_run *b)
{
    struct chunk *c;
    if (!b->closing || b->pending_closes > 0)
        return;
    while ((c = TAILQ_FIRST(&b->chunks)) != NULL) {
        TAILQ_REMOVE(&b->chunks, c, link);
        chunk_free(c);
    }
    if (b->closed != NULL)
        b->closed(b->closed_arg);
    free(b);
}

static void chunk_handle_closed(struct chunk *c)
{
    struct cts_bulk_run *b = c->b;
    b->pending_closes--;
    if (--c->closes == 0 && c->retired)
        chunk_free(c); /* a finished chunk retired earlier */
    maybe_closed(b);
}

static void on_chunk_closed(uv_handle_t *h)
{
    chunk_handle_closed(h->data);
}

static void on_chunk_req_closed(uv_handle_t *h)
{
    struct cts_send_req *r = h->data;
    chunk_handle_closed(r->data);
}

/* Release the chunk's request (its response, its backoff timer). */
static void close_req(struct chunk *c)
{
    if (cts_send_req_close(&c->sreq, on_chunk_req_closed)) {
        c->closes++;
        c->b->pending_closes++;
    }
}

/* Close the chunk's handles; it is freed once they are closed (retired)
 * or with the run (maybe_closed).  A request still in flight is released
 * from its done (which the engine's close brings at the latest). */
static void close_chunk(struct chunk *c)
{
    struct cts_bulk_run *b = c->b;
    uv_timer_stop(&c->timer);
    c->closes++;
    b->pending_closes++;
    uv_close((uv_handle_t *)&c->timer, on_chunk_closed);
    if (c->req_busy && cts_send_cancel(b->send, &c->sreq) == 0)
        c->req_busy = 0;
    if (c->req_busy)
        b->pending_closes++; /* the done's */
    else
        close_req(c);
}

static void add_row(struct chunk *c, uint64_t key, uint32_t row, uint32_t fp,
                    uint32_t line)
{
    struct brow *r;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->rows = cts_xrealloc(c->rows, c->cap * sizeof(*c->rows));
    }
    r = &c->rows[c->n++];
    r->key = key;
    r->row = row;
    r->fp = fp;
    r->line = line;
    r->pad = 0;
    c->b->in++;
}

static void seal(struct cts_bulk_run *b)
{
    struct chunk *c = b->filling;
    if (c == NULL)
        return;
    b->filling = NULL;
    if (c->n == 0) {
        c->state = CH_FINISHED;
        kick(b);
        return;
    }
    c->state = CH_READY;
    post_next(b);
}

/* Mark a chunk finished; rows are delivered by deliver(). */
static void finish(struct chunk *c, enum cts_status st, int permanent,
                   int journal, int http, const char *ekey, const char *msg)
{
    uv_timer_stop(&c->timer);
    /* A request still waiting for its slot is not sent any more. */
    if (c->req_busy && cts_send_cancel(c->b->send, &c->sreq) == 0)
        c->req_busy = 0;
    c->state = CH_FINISHED;
    c->fin_status = st;
    c->fin_permanent = permanent;
    c->fin_journal = journal;
    c->fin_http = http;
    free(c->fin_key);
    free(c->fin_msg);
    c->fin_key = ekey != NULL ? cts_xstrdup(ekey) : NULL;
    c->fin_msg = msg != NULL ? cts_xstrdup(msg) : NULL;
    free(c->post_body);
    c->post_body = NULL;
    cts_buf_free(&c->body);
    kick(c->b);
}

static void stop_all(struct cts_bulk_run *b, enum cts_bulk_stop why, int http,
                     const char *msg)
{
    struct chunk *c;
    if (b->stop == CTS_BULK_STOP_NONE)
        b->stop = why;
    if (b->filling != NULL) {
        b->filling->state = CH_READY;
        b->filling = NULL;
    }
    for (c = TAILQ_FIRST(&b->chunks); c != NULL; c = TAILQ_NEXT(c, link)) {
        if (c->state == CH_FINISHED)
            continue;
        /* Rows of an accepted activity stay journalled: the next run polls
         * it.  Rows never accepted are settled as deferred. */
        finish(c, CTS_ST_DEFERRED, 0, c->activity_id == NULL, http, NULL,
               c->activity_id != NULL
                   ? "bulk activity still running; the next run collects "
                     "its result"
                   : msg);
    }
    kick(b);
}

/* ---- activity errors ---- */

static int cmp_err_line(const void *x, const void *y)
{
    const struct rowerr *a = x, *b = y;
    return a->line < b->line ? -1 : a->line > b->line;
}

static int cmp_err_key(const void *x, const void *y)
{
    const struct rowerr *a = *(struct rowerr *const *)x;
    const struct rowerr *b = *(struct rowerr *const *)y;
    return a->key < b->key ? -1 : a->key > b->key;
}

static void add_err(struct chunk *c, uint32_t line, uint64_t key,
                    const char *msg)
{
    c->errs = cts_xrealloc(c->errs, (c->nerrs + 1) * sizeof(*c->errs));
    c->errs[c->nerrs].line = line;
    c->errs[c->nerrs].key = key;
    c->errs[c->nerrs].msg =
        cts_xstrdup(msg != NULL ? msg : "rejected by the bulk activity");
    c->nerrs++;
}

/* "Line 355: Invalid email" → 355 and the text after ": " (the shape that
 * crashed the PHP SDK, issue 145); 0 when the string has no line. */
static uint32_t parse_line_prefix(const char *s, const char **rest)
{
    char *end;
    long n;
    *rest = s;
    if (strncmp(s, "Line ", 5) != 0 && strncmp(s, "line ", 5) != 0)
        return 0;
    n = strtol(s + 5, &end, 10);
    if (end == s + 5 || n <= 0 || n > INT32_MAX)
        return 0;
    while (*end == ':' || *end == ' ')
        end++;
    *rest = end;
    return (uint32_t)n;
}

static void parse_errors(struct chunk *c, json_t *arr)
{
    size_t i;
    json_t *e;
    if (!json_is_array(arr))
        return;
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e)) {
            const char *rest;
            uint32_t line = parse_line_prefix(json_string_value(e), &rest);
            add_err(c, line, 0, rest);
        } else if (json_is_object(e)) {
            json_t *ln = json_object_get(e, "line_number");
            const char *em =
                json_string_value(json_object_get(e, "email_address"));
            const char *msg = json_string_value(json_object_get(e, "message"));
            uint32_t line = 0;
            long n;
            if (cts_json_int(ln, 1, UINT32_MAX, &n) == 0)
                line = (uint32_t)n;
            /* Emails are matched in the normalised (trimmed, lower-case)
             * form the mapper produced. */
            if (em != NULL && *em != '\0') {
                char *low = cts_xstrdup(em), *p;
                for (p = low; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
                add_err(c, line, cts_state_email_key(low), msg);
                free(low);
            } else {
                add_err(c, line, 0, msg);
            }
        }
    }
    if (c->nerrs > 1)
        qsort(c->errs, c->nerrs, sizeof(*c->errs), cmp_err_line);
    c->errs_by_key = cts_xmalloc((c->nerrs + 1) * sizeof(*c->errs_by_key));
    for (i = 0; i < c->nerrs; i++) {
        if (c->errs[i].key != 0)
            c->errs_by_key[c->nerrs_key++] = &c->errs[i];
    }
    if (c->nerrs_key > 1)
        qsort(c->errs_by_key, c->nerrs_key, sizeof(*c->errs_by_key),
              cmp_err_key);
}

static const struct rowerr *err_for(const struct chunk *c, const struct brow *r)
{
    size_t lo = 0, hi = c->nerrs_key;
    /* By email first: an error naming the address is unambiguous. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->errs_by_key[mid]->key < r->key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->nerrs_key && c->errs_by_key[lo]->key == r->key)
        return c->errs_by_key[lo];
    lo = 0;
    hi = c->nerrs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->errs[mid].line < r->line)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->nerrs && c->errs[lo].line == r->line && r->line != 0 &&
        c->errs[lo].key == 0)
        return &c->errs[lo];
    return NULL;
}

/* ---- delivery ---- */

static void deliver_chunk(struct cts_bulk_run *b, struct chunk *c)
{
    while (c->reported < c->n && !b->closing) {
        const struct brow *r = &c->rows[c->reported++];
        const struct rowerr *e = err_for(c, r);
        struct cts_bulk_result res;
        memset(&res, 0, sizeof(res));
        res.row = r->row;
        res.activity_id = c->activity_id;
        res.attempts = c->attempts;
        res.http_status = c->fin_http;
        if (e != NULL) {
            res.status = CTS_ST_FAILED;
            res.error_key = "bulk.activity_error";
            res.message = e->msg;
            b->stats.failed++;
            /* The activity rejected this row's data: permanent. */
            cts_state_journal_done_key(b->st, r->key, r->row, r->fp,
                                       CTS_ST_FAILED, 1, res.http_status,
                                       res.error_key, res.message);
        } else {
            res.status = c->fin_status;
            res.error_key = c->fin_key;
            res.message = c->fin_msg;
            if (res.status == CTS_ST_IMPORTED)
                b->stats.imported++;
            else if (res.status == CTS_ST_FAILED)
                b->stats.failed++;
            else
                b->stats.deferred++;
            if (c->fin_journal)
                cts_state_journal_done_key(
                    b->st, r->key, r->row, r->fp, res.status, c->fin_permanent,
                    res.http_status, res.error_key, res.message);
        }
        b->out++;
        b->on_result(b->arg, &res);
    }
}

static void deliver(struct cts_bulk_run *b)
{
    struct chunk *c, *next;
    for (c = TAILQ_FIRST(&b->chunks); c != NULL && !b->closing; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state != CH_FINISHED)
            continue;
        deliver_chunk(b, c);
        /* Adopted chunks stay: more of their rows may still be read. */
        if (!c->adopted && c->reported == c->n && !c->req_busy && !b->closing) {
            TAILQ_REMOVE(&b->chunks, c, link);
            c->retired = 1;
            close_chunk(c);
        }
    }
    if (!b->closing && b->flushed && b->in == b->out) {
        if (!b->idle_signalled && b->on_idle != NULL) {
            b->idle_signalled = 1;
            b->on_idle(b->arg);
        }
    } else {
        b->idle_signalled = 0;
    }
    post_next(b);
}

static void on_kick(uv_timer_t *t)
{
    deliver(t->data);
}

/* ---- requests (through the send engine) ---- */

static char *url_for(const struct cts_bulk_run *b, const char *path)
{
    const struct cts_config *cfg = b->cfg;
    return cts_api_url(cfg->base_url, path,
                       cfg->api == CTS_API_V2 ? cfg->api_key : NULL, NULL);
}

static void submit(struct chunk *c, const char *method, const char *url,
                   const char *body, int poll)
{
    struct cts_bulk_run *b = c->b;

    cts_send_req_set(&c->sreq, method, url, body);
    /* An import is create-or-update by email: repeating a POST that may
     * have landed costs an activity, never a duplicate contact. */
    c->sreq.http.idempotent = 1;
    /* A poll that fails is repeated at the poll interval, not retried. */
    c->sreq.no_retry = poll;
    c->sreq.done = poll ? on_poll_done : on_post_done;
    b->stats.requests++;
    if (cts_send_submit(b->send, &c->sreq, 1) != 0) {
        /* The engine has stopped: so does every activity's sending. */
        stop_all(b, CTS_BULK_STOP_USER, 0, "stopped before it was sent");
        return;
    }
    c->req_busy = 1;
}

static void post_next(struct cts_bulk_run *b)
{
    struct chunk *c;
    char *tail;
    if (b->closing || b->stop != CTS_BULK_STOP_NONE)
        return;
    for (c = TAILQ_FIRST(&b->chunks); c != NULL; c = TAILQ_NEXT(c, link)) {
        if (c->state == CH_POSTING)
            return; /* one POST at a time */
    }
    for (c = TAILQ_FIRST(&b->chunks); c != NULL; c = TAILQ_NEXT(c, link)) {
        if (c->state == CH_READY)
            break;
    }
    if (c == NULL)
        return;
    if (c->post_body == NULL) {
        tail = cts_api_bulk_tail(b->cfg->api, b->cfg->lists, b->cfg->nlists,
                                 c->v2_cf_mask);
        c->post_body = cts_xasprintf("%s%s%s", CTS_API_BULK_HEAD,
                                     c->body.data ? c->body.data : "", tail);
        free(tail);
        cts_buf_free(&c->body);
    }
    if (c->url == NULL)
        c->url = url_for(b, b->cfg->api == CTS_API_V3
                                ? "/activities/contacts_json_import"
                                : "/activities/addcontacts");
    c->state = CH_POSTING;
    submit(c, "POST", c->url, c->post_body, 0);
}

/* A request's done while the run closes: release it now. */
static int closing_done(struct chunk *c)
{
    struct cts_bulk_run *b = c->b;
    if (!b->closing)
        return 0;
    close_req(c);
    b->pending_closes--; /* the done's (close_chunk) */
    maybe_closed(b);
    return 1;
}

/* Transient failures outlasted the retries: nothing is wrong with the
 * rows, so they are deferred.  An accepted activity's rows stay
 * journalled (the next run polls it); a chunk never accepted is sent
 * again by the next run. */
static void gave_up(struct chunk *c, const struct cts_send_result *res)
{
    const struct cts_http_req *req = &c->sreq.http;
    const char *why = res->message != NULL ? res->message : "no reply";
    char m[400];

    if (c->activity_id != NULL) {
        snprintf(m, sizeof(m),
                 "the bulk activity could not be polled (%s); the next run "
                 "collects its result",
                 why);
        finish(c, CTS_ST_DEFERRED, 0, 0, (int)req->status, res->error_key, m);
        return;
    }
    snprintf(m, sizeof(m),
             "bulk import not sent: gave up after %d attempt%s: %s; sent "
             "by the next run",
             c->sreq.tries, c->sreq.tries == 1 ? "" : "s", why);
    finish(c, CTS_ST_DEFERRED, 0, 1, (int)req->status, res->error_key, m);
}

/* The request ended without an answer to judge: 1 when that settles it
 * (the quota is used up, sending stopped, or the retries are used up). */
static int unanswered(struct chunk *c, const struct cts_send_result *res)
{
    struct cts_bulk_run *b = c->b;
    char m[128];

    switch (res->end) {
    case CTS_SEND_NO_QUOTA:
        if (c->state == CH_POSTING)
            c->state = CH_READY;
        stop_all(b, CTS_BULK_STOP_QUOTA, 0,
                 "daily quota exhausted; sent by the next run");
        return 1;
    case CTS_SEND_FAILED:
        snprintf(m, sizeof(m), "cannot start the request: %s",
                 cts_strerror(res->rc));
        finish(c, CTS_ST_FAILED, 0, 1, 0, NULL, m);
        return 1;
    case CTS_SEND_STOPPED:
    case CTS_SEND_ABORTED:
    case CTS_SEND_REFUSED:
        if (c->state == CH_POSTING)
            c->state = CH_READY;
        stop_all(b, CTS_BULK_STOP_USER, 0, "stopped before it was sent");
        return 1;
    case CTS_SEND_STALLED:
        /* The key stays throttled: no chunk gets through for now.
         * Activities already accepted stay journalled (stop_all). */
        if (c->state == CH_POSTING)
            c->state = CH_READY;
        stop_all(b, CTS_BULK_STOP_LATER, 0,
                 "not sent: throttled for 10 minutes without progress "
                 "(another program may share the API key); sent by the next "
                 "run");
        return 1;
    case CTS_SEND_GAVE_UP:
    case CTS_SEND_UNREACHABLE: gave_up(c, res); return 1;
    case CTS_SEND_REPLY:
    default: return 0;
    }
}

static void start_polling(struct chunk *c, uint64_t delay)
{
    uint64_t now = uv_now(c->b->loop);
    if (c->poll_since_ms == 0)
        c->poll_since_ms = now ? now : 1;
    else if (now - c->poll_since_ms > MAX_POLL_MS) {
        finish(c, CTS_ST_DEFERRED, 0, 0, c->fin_http, "bulk.activity_slow",
               "the bulk activity is still running; the next run collects "
               "its result");
        return;
    }
    c->state = CH_POLLING;
    uv_timer_start(&c->timer, on_timer, delay, 0);
}

static void on_post_done(struct cts_send_req *r, struct cts_send_result *res)
{
    struct chunk *c = r->data;
    struct cts_bulk_run *b = c->b;
    const struct cts_http_req *req = &r->http;
    c->req_busy = 0;
    c->attempts += r->tries;
    if (r->tries > 1)
        b->stats.retries += r->tries - 1;
    if (closing_done(c) || c->state != CH_POSTING)
        return;
    if (unanswered(c, res)) {
        /* settled above */
    } else if (res->end == CTS_SEND_REPLY && res->oc == CTS_OC_OK) {
        json_t *j = json_loadb(req->resp.data ? req->resp.data : "",
                               req->resp.len, 0, NULL);
        const char *id = json_string_value(json_object_get(
            j, b->cfg->api == CTS_API_V3 ? "activity_id" : "id"));
        if (id == NULL || *id == '\0') {
            finish(c, CTS_ST_FAILED, 0, 1, (int)req->status, "bulk.bad_reply",
                   "the bulk reply had no activity id");
        } else {
            c->activity_id = cts_xstrdup(id);
            c->fin_http = (int)req->status;
            b->stats.activities++;
            /* Journalled before polling: a killed run's successor polls
             * this activity instead of posting the rows again. */
            cts_state_bulk_started(b->st, c->serial, id);
            cts_state_flush(b->st);
            free(c->post_body);
            c->post_body = NULL;
            start_polling(c, b->poll_ms);
        }
        json_decref(j);
    } else if (res->end == CTS_SEND_REPLY && res->oc == CTS_OC_QUOTA) {
        c->state = CH_READY;
        stop_all(b, CTS_BULK_STOP_QUOTA, (int)req->status,
                 "daily quota exhausted; sent by the next run");
    } else if (res->end == CTS_SEND_REPLY && res->oc == CTS_OC_AUTH) {
        c->state = CH_READY;
        stop_all(b, CTS_BULK_STOP_AUTH, (int)req->status,
                 "the access token was rejected (401)");
    } else {
        char m[300];
        snprintf(m, sizeof(m), "bulk import not accepted: %s",
                 res->reply_message != NULL ? res->reply_message
                 : req->transport_error
                     ? cts_xfer_error_name(req->transport_error)
                     : "HTTP error");
        /* A refused chunk is not a verdict on each row's data: transient,
         * so the next run sends the rows again. */
        finish(c, CTS_ST_FAILED, 0, 1, (int)req->status, res->reply_key, m);
    }
    post_next(b);
}

static void poll_once(struct chunk *c)
{
    struct cts_bulk_run *b = c->b;
    if (c->poll_url == NULL) {
        char *esc = cts_url_escape(c->activity_id);
        char *path = cts_xasprintf("/activities/%s", esc);
        c->poll_url = url_for(b, path);
        free(path);
        free(esc);
    }
    submit(c, "GET", c->poll_url, NULL, 1);
}

static void on_poll_done(struct cts_send_req *r, struct cts_send_result *res)
{
    struct chunk *c = r->data;
    struct cts_bulk_run *b = c->b;
    const struct cts_http_req *req = &r->http;
    c->req_busy = 0;
    if (closing_done(c))
        return;
    if (c->state != CH_POLLING) {
        kick(b);
        return;
    }
    if (unanswered(c, res))
        return;
    if (res->oc == CTS_OC_OK) {
        json_t *j = json_loadb(req->resp.data ? req->resp.data : "",
                               req->resp.len, 0, NULL);
        const char *state = json_string_value(
            json_object_get(j, b->cfg->api == CTS_API_V3 ? "state" : "status"));
        c->poll_errors = 0;
        if (state == NULL) {
            c->poll_errors++;
            start_polling(c, b->poll_ms);
        } else if (strcmp(state, "completed") == 0 ||
                   strcmp(state, "COMPLETE") == 0) {
            parse_errors(c, json_object_get(j, b->cfg->api == CTS_API_V3
                                                   ? "activity_errors"
                                                   : "errors"));
            finish(c, CTS_ST_IMPORTED, 0, 1, c->fin_http ? c->fin_http : 200,
                   NULL, NULL);
        } else if (strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0 ||
                   strcmp(state, "timed_out") == 0 ||
                   strcmp(state, "ERROR") == 0) {
            char m[128];
            snprintf(m, sizeof(m), "bulk activity %s ended %s", c->activity_id,
                     state);
            finish(c, CTS_ST_FAILED, 0, 1, (int)req->status,
                   "bulk.activity_failed", m);
        } else {
            start_polling(c, b->poll_ms);
        }
        json_decref(j);
    } else if (res->oc == CTS_OC_QUOTA) {
        stop_all(b, CTS_BULK_STOP_QUOTA, (int)req->status,
                 "daily quota exhausted; sent by the next run");
    } else if (res->oc == CTS_OC_AUTH) {
        stop_all(b, CTS_BULK_STOP_AUTH, (int)req->status,
                 "the access token was rejected (401)");
    } else if (req->status == 404) {
        /* Gone (activities are kept 10-14 days): send the rows again. */
        finish(c, CTS_ST_FAILED, 0, 1, 404, "bulk.activity_unknown",
               "the bulk activity is no longer known to the server");
    } else if (res->oc == CTS_OC_THROTTLED) {
        /* "Slow down", not a failure: the poll interval is the slowing. */
        start_polling(c, b->poll_ms);
    } else if (++c->poll_errors > (b->cfg->retries > 0 ? b->cfg->retries : 6)) {
        /* Keep the rows journalled: the next run polls again. */
        finish(c, CTS_ST_DEFERRED, 0, 0, (int)req->status, res->reply_key,
               "the bulk activity could not be polled; the next run "
               "collects its result");
    } else {
        start_polling(c, b->poll_ms);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct chunk *c = t->data;
    if (c->b->closing)
        return;
    if (c->state == CH_POLLING && !c->req_busy)
        poll_once(c);
}

/* ---- public ---- */

int cts_bulk_new(const struct cts_bulk_params *p, struct cts_bulk_run **out,
                 struct cts_error *err)
{
    struct cts_bulk_run *b = cts_xcalloc(1, sizeof(*b));
    char *t;
    (void)err;
    *out = NULL;
    b->loop = p->loop;
    b->cfg = p->cfg;
    b->st = p->state;
    b->on_result = p->on_result;
    b->on_idle = p->on_idle;
    b->arg = p->arg;
    b->max_rows = p->max_rows ? p->max_rows : DEF_MAX_ROWS;
    b->max_bytes = p->max_bytes ? p->max_bytes : DEF_MAX_BYTES;
    b->poll_ms = p->poll_ms ? p->poll_ms
                            : (uint64_t)(p->cfg->poll_interval_s > 0
                                             ? p->cfg->poll_interval_s
                                             : 10) *
                                  1000;
    b->send = p->send;
    TAILQ_INIT(&b->chunks);
    uv_timer_init(b->loop, &b->kick);
    b->kick.data = b;
    b->head_len = strlen(CTS_API_BULK_HEAD);
    /* Worst case tail: every custom field column declared. */
    t = cts_api_bulk_tail(b->cfg->api, b->cfg->lists, b->cfg->nlists, 0xfffeu);
    b->tail_max = strlen(t);
    free(t);
    *out = b;
    return 0;
}

int cts_bulk_add(struct cts_bulk_run *b, uint32_t row,
                 const struct cts_contact *c, uint32_t fp,
                 struct cts_error *err)
{
    struct chunk *ch;
    unsigned mask = 0;
    char *s;
    size_t len;
    if (b->stop != CTS_BULK_STOP_NONE || b->closing)
        return UV_ECANCELED;
    s = cts_api_bulk_item(b->cfg->api, c, &mask);
    if (s == NULL)
        return cts_error_set(err, CTS_EDATA,
                             "the contact cannot be written as bulk JSON");
    len = strlen(s);
    if (b->head_len + len + b->tail_max >= b->max_bytes) {
        free(s);
        return cts_error_set(err, CTS_EDATA,
                             "the contact alone exceeds the bulk size limit");
    }
    ch = b->filling;
    if (ch != NULL &&
        (ch->n >= b->max_rows ||
         b->head_len + ch->body.len + 1 + len + b->tail_max >= b->max_bytes)) {
        seal(b);
        ch = NULL;
    }
    if (ch == NULL) {
        ch = b->filling = chunk_new(b);
        ch->serial = cts_state_bulk_serial(b->st);
    }
    if (ch->n > 0)
        cts_buf_putc(&ch->body, ',');
    cts_buf_append(&ch->body, s, len);
    free(s);
    ch->v2_cf_mask |= mask;
    add_row(ch, cts_state_email_key(c->f[CTS_F_EMAIL]), row, fp,
            (uint32_t)ch->n + 1);
    /* Intent before the POST can leave (the chunk's line = position). */
    cts_state_bulk_begin(b->st, c->f[CTS_F_EMAIL], row, fp, ch->serial,
                         (uint32_t)ch->n);
    if (ch->n >= b->max_rows)
        seal(b);
    return 0;
}

int cts_bulk_adopt(struct cts_bulk_run *b, uint32_t row, const char *email,
                   uint32_t fp, const char *activity_id, uint32_t line)
{
    struct chunk *c;
    if (b->stop != CTS_BULK_STOP_NONE || b->closing)
        return UV_ECANCELED;
    for (c = TAILQ_FIRST(&b->chunks); c != NULL; c = TAILQ_NEXT(c, link)) {
        if (c->adopted && strcmp(c->activity_id, activity_id) == 0)
            break;
    }
    if (c == NULL) {
        c = chunk_new(b);
        c->adopted = 1;
        c->activity_id = cts_xstrdup(activity_id);
        c->attempts = 0;
        /* Poll at once: the activity has had time since the killed run. */
        start_polling(c, 0);
    }
    add_row(c, cts_state_email_key(email), row, fp, line);
    if (c->state == CH_FINISHED)
        kick(b);
    return 0;
}

void cts_bulk_flush(struct cts_bulk_run *b)
{
    if (b->closing)
        return;
    b->flushed = 1;
    seal(b);
    kick(b);
}

void cts_bulk_seal(struct cts_bulk_run *b)
{
    if (!b->closing)
        seal(b);
}

void cts_bulk_stop(struct cts_bulk_run *b)
{
    if (b->closing)
        return;
    stop_all(b, CTS_BULK_STOP_USER, 0, "stopped before it was sent");
}

size_t cts_bulk_outstanding(const struct cts_bulk_run *b)
{
    return b->in - b->out;
}

enum cts_bulk_stop cts_bulk_stopped(const struct cts_bulk_run *b)
{
    return b->stop;
}

void cts_bulk_get_stats(const struct cts_bulk_run *b,
                        struct cts_bulk_stats *out)
{
    *out = b->stats;
}

static void on_kick_closed(uv_handle_t *h)
{
    struct cts_bulk_run *b = h->data;
    b->pending_closes--;
    maybe_closed(b);
}

void cts_bulk_close(struct cts_bulk_run *b, void (*closed)(void *arg),
                    void *arg)
{
    struct chunk *c;
    b->closing = 1;
    b->closed = closed;
    b->closed_arg = arg;
    /* Requests waiting in the engine are withdrawn; one in flight is
     * released from its done (the engine's close aborts it). */
    for (c = TAILQ_FIRST(&b->chunks); c != NULL; c = TAILQ_NEXT(c, link))
        close_chunk(c);
    uv_timer_stop(&b->kick);
    b->pending_closes++;
    uv_close((uv_handle_t *)&b->kick, on_kick_closed);
}
