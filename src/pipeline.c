/* pipeline.c — the import loop: wires reader, mapper, state, limiter, http,
 * retry and report; owns the job state machine, backpressure and shutdown.
 * Only this file knows every stage (style C1). */
#include "cts_pipeline.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cts_api.h"
#include "cts_bulk.h"
#include "cts_contact.h"
#include "cts_http.h"
#include "cts_intake.h"
#include "cts_limiter.h"
#include "cts_mapper.h"
#include "cts_oauth.h"
#include "cts_reader.h"
#include "cts_report.h"
#include "cts_retry.h"
#include "cts_state.h"

#define TICK_MS        100  /* progress redraw and journal flush period */
#define FLUSH_EVERY    2    /* journal fdatasync every 2 ticks (200 ms) */
#define GRACE_MIN_MS   5000 /* SIGINT: in-flight requests get this long */
#define GATE_MARGIN_MS 5    /* ms rounding of uv_now vs the server's clock */
#define WAIT_REPLY     UINT64_MAX

/* ---- the job state machine (style C7) ---- */

enum job_state {
    JS_READ = 0,
    JS_MAPPED,
    JS_QUEUED,
    JS_WAIT_TOKEN,
    JS_IN_FLIGHT,
    JS_BACKOFF,
    JS_DONE,
    JS_REPORTED
};

static const char *const state_names[] = {"READ",       "MAPPED",    "QUEUED",
                                          "WAIT_TOKEN", "IN_FLIGHT", "BACKOFF",
                                          "DONE",       "REPORTED"};

#define B(s) (1u << (s))
/* legal[from] is the set of states a job may move to from `from`. */
static const unsigned legal[] = {
    [JS_READ] = B(JS_MAPPED) | B(JS_DONE),
    [JS_MAPPED] = B(JS_QUEUED) | B(JS_DONE),
    [JS_QUEUED] = B(JS_WAIT_TOKEN) | B(JS_DONE),
    [JS_WAIT_TOKEN] = B(JS_IN_FLIGHT) | B(JS_DONE),
    [JS_IN_FLIGHT] = B(JS_BACKOFF) | B(JS_WAIT_TOKEN) | B(JS_DONE),
    [JS_BACKOFF] = B(JS_WAIT_TOKEN) | B(JS_DONE),
    [JS_DONE] = B(JS_REPORTED),
    [JS_REPORTED] = 0,
};

/* Which request a job makes next. */
enum job_step {
    STEP_V3_SIGNUP = 0, /* POST /contacts/sign_up_form (upsert) */
    STEP_V3_CREATE,     /* POST /contacts (--mode create) */
    STEP_V2_POST,       /* POST /contacts?action_by=ACTION_BY_OWNER */
    STEP_V2_GET,        /* GET /contacts?email= (after a 409) */
    STEP_V2_PUT         /* PUT /contacts/{id} with lists merged */
};

struct pipeline;

struct cts_job {
    TAILQ_ENTRY(cts_job) link; /* on send_q, retry_q or backoff_q */
    struct pipeline *p;
    uint64_t seq;     /* 0-based over the run: report order */
    long row;         /* 1-based data row in its file */
    const char *file; /* borrowed from cfg->inputs */
    enum job_state state;
    enum job_step step;
    struct cts_contact c;   /* mapped; owned unless c_borrowed */
    int c_borrowed;         /* c's strings are the batch's (see "reading"):
                               only while the row settles synchronously */
    uint32_t fp;            /* fingerprint (cts_state) */
    char *body;             /* owned; the POSTFIELDS of the current step
                               belong to the job until done_cb runs */
    char *url;              /* owned; per-row URLs (v2 GET/PUT) */
    int attempts;           /* HTTP requests made for this row */
    int step_tries;         /* tries of the current step (retry budget) */
    uint64_t step_start_ms; /* first try of the current step */
    int maybe_landed;       /* a create whose reply was lost may exist */
    int journaled;          /* cts_state_journal_begin done */
    int timer_inited;       /* backoff timer initialised (lazily) */
    uv_timer_t timer;       /* per-job backoff; closed before free */
    struct cts_http_req req;
    /* result */
    enum cts_status status;
    int http_status;
    int permanent; /* failed with a permanent error */
    char *contact_id;
    char *error_key;
    char *message;          /* owned; wins over smsg */
    const char *smsg;       /* borrowed text that outlives the job (string
                               literals, the state's messages): most rows
                               of a dry or incremental run settle with one
                               of a few fixed texts, not worth a copy */
    struct cts_job *spare;  /* link on the pipeline's spare list */
};

TAILQ_HEAD(job_q, cts_job);

struct pipeline {
    uv_loop_t loop;
    struct cts_config *cfg;
    struct cts_report *report;
    struct cts_state *st;
    const struct cts_cf_ids *cf;

    /* stages */
    struct cts_http http;
    int http_inited;
    int http_closing;
    struct cts_limiter lim;
    struct cts_retry_policy policy;
    uv_timer_t pump_timer; /* armed for the limiter's next slot */
    uv_timer_t tick_timer; /* progress line, journal flush */
    uv_timer_t grace_timer;
    uv_signal_t sigint, sigterm;
    int handles_inited;
    int handles_closing;
    struct job_q send_q;    /* QUEUED, in input order */
    struct job_q retry_q;   /* WAIT_TOKEN again: retries and next steps */
    struct job_q backoff_q; /* BACKOFF: timer armed */
    long live;              /* jobs allocated and not yet freed */
    struct cts_job *spare;  /* freed jobs kept for reuse (no timer) */
    unsigned nspare;

    /* reading (cts_intake.h: its own thread) */
    struct cts_intake in;
    int intake_inited;
    uint64_t *file_seq; /* first seq of each file (dup messages) */
    uint64_t next_seq;
    uint64_t high, low; /* backpressure marks, unreported rows */

    /* arrival gate: completion times of the last n requests (see
     * gate_wait); n = the limiter's starts per window, 0 = off */
    uint64_t *done_ring;
    unsigned done_n, done_head, done_count;

    /* sending */
    char *url_create; /* shared URL of the row's first request */
    char *bearer;     /* current access token (copy) */
    char *old_bearer; /* kept alive for requests still using it */
    int refreshed;
    long requests;
    long retries;
    long quota_credit;      /* requests already counted, not yet made */
    uint64_t last_reply_ms; /* last HTTP reply of any kind */
    uint64_t rng;

    /* stopping */
    enum cts_stop stop;
    char stop_msg[512];
    int signals;
    int fatal_rc;
    struct cts_error fatal;
    int finishing;

    /* bulk (--bulk always, or auto once it pays; see "bulk" below) */
    struct cts_bulk_run *bulk;
    int bulk_decided;   /* --bulk auto: the choice has been made */
    uint64_t to_send;   /* rows that reached the send decision */
    struct job_q bulk_q; /* QUEUED rows handed to bulk, in input order */

    /* progress */
    int show_progress;
    struct cts_progress progress;
    uv_mutex_t progress_mx; /* progress vs. log lines from the intake thread */
    long expected_rows;
    unsigned ticks;
};

static void pump(struct pipeline *p);
static void bulk_take(struct pipeline *p, struct cts_job *j);
static void bulk_start(struct pipeline *p);
static void bulk_maybe_start(struct pipeline *p);
static void maybe_finish(struct pipeline *p);
static void job_settle(struct cts_job *j, enum cts_status st);
static void stop_sending(struct pipeline *p, enum cts_stop why, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static void cancel_backoffs(struct pipeline *p);
static void abort_soon(struct pipeline *p);

static void job_set_state(struct cts_job *j, enum job_state to)
{
    /* An illegal transition is a pipeline bug, never an input condition. */
    assert((legal[j->state] & B(to)) != 0);
    if ((legal[j->state] & B(to)) == 0)
        cts_log_error("internal: row %ld: %s -> %s", j->row,
                      state_names[j->state], state_names[to]);
    cts_log_debug("%s:%ld: %s -> %s", j->file, j->row, state_names[j->state],
                  state_names[to]);
    j->state = to;
}

/* xorshift64*: jitter only needs to be different per run, not secret. */
static uint32_t rnd32(struct pipeline *p)
{
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return (uint32_t)((p->rng * 2685821657736338717ULL) >> 32);
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

static uint64_t unreported(const struct pipeline *p)
{
    return p->next_seq - cts_report_written(p->report);
}

/* ---- jobs: creation, result, reporting, freeing ---- */

#define SPARE_MAX 64 /* freed jobs kept for reuse: a row costs no malloc */

static struct cts_job *job_new(struct pipeline *p, size_t file_idx, long row)
{
    struct cts_job *j = p->spare;

    if (j != NULL) {
        p->spare = j->spare;
        p->nspare--;
        memset(j, 0, sizeof(*j));
    } else {
        j = cts_xcalloc(1, sizeof(*j));
    }

    j->p = p;
    j->seq = p->next_seq++;
    j->row = row;
    j->file = p->cfg->inputs[file_idx];
    j->state = JS_READ;
    cts_http_req_init(&j->req);
    p->live++;
    return j;
}

static void on_job_timer_closed(uv_handle_t *h)
{
    struct cts_job *j = h->data;
    /* The last handle of the job is closed: only now may it be freed
     * (libuv: memory of a handle stays in use until its close callback). */
    free(j);
}

static void job_free(struct cts_job *j)
{
    struct pipeline *p = j->p;

    if (!j->c_borrowed)
        cts_contact_clear(&j->c);
    cts_http_req_clear(&j->req);
    free(j->body);
    free(j->url);
    free(j->contact_id);
    free(j->error_key);
    free(j->message);
    p->live--;
    if (j->timer_inited) {
        uv_close((uv_handle_t *)&j->timer, on_job_timer_closed);
    } else if (p->nspare < SPARE_MAX) {
        /* No handle was ever initialised in it: reusable at once. */
        j->spare = p->spare;
        p->spare = j;
        p->nspare++;
    } else {
        free(j);
    }
}

static void spares_free(struct pipeline *p)
{
    struct cts_job *j;

    while ((j = p->spare) != NULL) {
        p->spare = j->spare;
        free(j);
    }
    p->nspare = 0;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src != NULL ? cts_xstrdup(src) : NULL;
}

/* The progress line is drawn by the loop (on_tick) and erased before any
 * log line (cts_log's hook), which the intake thread writes too (reader
 * warnings): the mutex keeps the two from touching it at once. */
static void progress_clear_locked(void *arg)
{
    struct pipeline *p = arg;

    uv_mutex_lock(&p->progress_mx);
    cts_progress_clear(&p->progress);
    uv_mutex_unlock(&p->progress_mx);
}

/* The row's message is text that lives longer than the job (see smsg). */
static void set_static_msg(struct cts_job *j, const char *text)
{
    free(j->message);
    j->message = NULL;
    j->smsg = text;
}

static const char *job_message(const struct cts_job *j)
{
    return j->message != NULL ? j->message : j->smsg;
}

/* Record a failure of the whole run (first one wins) and stop. */
static void fatal(struct pipeline *p, int rc, int exit_code, const char *msg)
{
    if (p->fatal_rc == 0) {
        p->fatal_rc = rc;
        cts_error_setx(&p->fatal, rc, exit_code, "%s", msg);
    }
    stop_sending(p, CTS_STOP_FATAL, "%s", msg);
    if (p->intake_inited)
        cts_intake_stop(&p->in);
    abort_soon(p);
}

/* DONE → journal → sink → REPORTED → free. */
static void job_report(struct cts_job *j)
{
    struct pipeline *p = j->p;
    struct cts_result res;
    int rc;

    /* cts_state: the journal learns how the row settled before its report
     * line can exist, so a crash never leaves a reported row unjournaled. */
    if (j->journaled) {
        rc = cts_state_journal_done(
            p->st, j->c.f[CTS_F_EMAIL], (uint32_t)(j->seq + 1), j->fp,
            j->status, j->permanent, j->http_status, j->error_key,
            job_message(j));
        if (rc != 0)
            fatal(p, rc, CTS_EX_CANTCREAT, "cannot write the state journal");
    }
    memset(&res, 0, sizeof(res));
    res.file = j->file;
    res.row = j->row;
    res.email = j->c.f[CTS_F_EMAIL];
    res.status = j->status;
    res.http_status = j->http_status;
    res.attempts = j->attempts;
    res.contact_id = j->contact_id;
    res.error_key = j->error_key;
    res.message = job_message(j);
    rc = cts_report_put(p->report, j->seq, &res);
    job_set_state(j, JS_REPORTED);
    job_free(j);
    if (rc != 0 && p->fatal_rc == 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot write the report: %s",
                 cts_strerror(rc));
        fatal(p, rc, rc == CTS_EUSAGE ? CTS_EX_SOFTWARE : CTS_EX_CANTCREAT,
              msg);
    }
    /* Backpressure: the reader waits until the window has drained to the
     * low-water mark (hysteresis avoids one read per finished row). */
    if (cts_intake_paused(&p->in) && unreported(p) <= p->low)
        cts_intake_resume(&p->in);
    maybe_finish(p);
}

static void job_settle(struct cts_job *j, enum cts_status st)
{
    j->status = st;
    job_set_state(j, JS_DONE);
    job_report(j);
}

static void job_fail(struct cts_job *j, int permanent, const char *key,
                     const char *msg)
{
    j->permanent = permanent;
    set_str(&j->error_key, key);
    set_str(&j->message, msg);
    job_settle(j, CTS_ST_FAILED);
}

static void job_defer(struct cts_job *j)
{
    if (job_message(j) == NULL)
        set_str(&j->message, j->p->stop_msg[0] != '\0'
                                 ? j->p->stop_msg
                                 : "not sent: the run stopped early");
    job_settle(j, CTS_ST_DEFERRED);
}

/* ---- stopping ---- */

static void stop_sending(struct pipeline *p, enum cts_stop why, const char *fmt,
                         ...)
{
    struct cts_job *j;
    va_list ap;

    if (p->stop != CTS_STOP_NONE) {
        /* A fatal error still wins over an earlier, softer stop. */
        if (why != CTS_STOP_FATAL || p->stop == CTS_STOP_FATAL)
            return;
    }
    p->stop = why;
    va_start(ap, fmt);
    vsnprintf(p->stop_msg, sizeof(p->stop_msg), fmt, ap);
    va_end(ap);
    if (p->handles_inited)
        uv_timer_stop(&p->pump_timer);
    /* Every row still waiting becomes `deferred`; in-flight requests finish
     * and keep their result (a write that landed is reported as such). */
    while ((j = TAILQ_FIRST(&p->retry_q)) != NULL) {
        TAILQ_REMOVE(&p->retry_q, j, link);
        job_defer(j);
    }
    while ((j = TAILQ_FIRST(&p->send_q)) != NULL) {
        TAILQ_REMOVE(&p->send_q, j, link);
        job_defer(j);
    }
    cancel_backoffs(p);
    /* Bulk rows settle from the loop (deferred, or kept journalled when
     * their activity is already running). */
    if (p->bulk != NULL)
        cts_bulk_stop(p->bulk);
}

/* Cancel every backoff timer: those rows are deferred. */
static void cancel_backoffs(struct pipeline *p)
{
    struct cts_job *j;

    while ((j = TAILQ_FIRST(&p->backoff_q)) != NULL) {
        TAILQ_REMOVE(&p->backoff_q, j, link);
        uv_timer_stop(&j->timer);
        job_defer(j);
    }
}

/* ---- sending ---- */

static const char *v2_key(const struct pipeline *p)
{
    return p->cfg->api == CTS_API_V2 ? p->cfg->api_key : NULL;
}

/* Build the first request of a row.  Returns 0 or CTS_EDATA (the body
 * could not be built: the row is invalid, err says why). */
static int job_prepare(struct cts_job *j, struct cts_error *err)
{
    struct pipeline *p = j->p;
    const struct cts_config *cfg = p->cfg;

    if (cfg->api == CTS_API_V3) {
        if (cfg->mode == CTS_MODE_CREATE) {
            j->step = STEP_V3_CREATE;
            j->body = cts_api_v3_contact_body(&j->c, cfg->lists, cfg->nlists,
                                              p->cf, err);
        } else {
            j->step = STEP_V3_SIGNUP;
            j->body = cts_api_v3_signup_body(&j->c, cfg->lists, cfg->nlists,
                                             p->cf, err);
        }
    } else {
        j->step = STEP_V2_POST;
        j->body = cts_api_v2_contact_body(&j->c, cfg->lists, cfg->nlists, err);
    }
    return j->body != NULL ? 0 : CTS_EDATA;
}

static void on_http_done(struct cts_http_req *req, void *arg);

/*
 * Hand the job's current step to libcurl.  Returns 0 (on_http_done runs
 * exactly once, later) or the submit error, in which case the callback
 * never runs and the job is still ours (libuv's rule, cts_http.h).
 */
static int start_request(struct cts_job *j)
{
    struct pipeline *p = j->p;
    struct cts_http_req *r = &j->req;
    int rc;

    if (j->step_tries == 0)
        j->step_start_ms = uv_now(&p->loop);
    r->method = "POST";
    r->url = p->url_create;
    r->body = j->body;
    r->content_type = NULL;
    if (j->step == STEP_V2_GET) {
        r->method = "GET";
        r->url = j->url;
        r->body = NULL;
    } else if (j->step == STEP_V2_PUT) {
        r->method = "PUT";
        r->url = j->url;
    }
    /* libcurl's POSTFIELDS rule: the body is not copied, so it belongs to
     * the job until on_http_done; j->body is only replaced between steps. */
    r->body_len = r->body != NULL ? strlen(r->body) : 0;
    /* The bearer is borrowed until done_cb: p->bearer lives for the whole
     * run (after a refresh the previous copy is kept in old_bearer). */
    r->bearer = p->bearer;
    r->user = j;
    cts_buf_reset(&r->resp);
    job_set_state(j, JS_IN_FLIGHT);
    rc = cts_http_submit(&p->http, r, on_http_done, j);
    if (rc == 0) {
        j->attempts++;
        j->step_tries++;
        p->requests++;
    }
    return rc;
}

/*
 * One request of the local daily quota.  The count lives in a locked file
 * (cts_state: flock, read, write, unlock per call), which costs more than
 * the request itself at thousands per second; so without a rate limit (or
 * above 50/s) requests are counted in blocks of 16 while more than 64
 * remain; the unused rest of the last block is given back at the end of
 * the run.  A run killed before that over-counts by at most 15 requests,
 * never under-counts.
 */
static int quota_take(struct pipeline *p)
{
    long want = 1;

    if (p->quota_credit > 0) {
        p->quota_credit--;
        return 0;
    }
    if ((p->cfg->rate <= 0 || p->cfg->rate > 50) &&
        cts_state_quota_remaining(p->st) > 64)
        want = 16;
    if (cts_state_quota_take(p->st, want) != 0)
        return CTS_EQUOTA;
    p->quota_credit = want - 1;
    return 0;
}

/* Start one job's request if the limiter and the quota allow.  Returns 1
 * when the job left the queue (started, or settled), 0 when the limiter
 * said wait (the job stays at the head in WAIT_TOKEN). */
static int try_start(struct pipeline *p, struct cts_job *j, struct job_q *q)
{
    int rc;

    if (j->state == JS_QUEUED)
        job_set_state(j, JS_WAIT_TOKEN);
    if (!cts_limiter_try_take(&p->lim))
        return 0;
    TAILQ_REMOVE(q, j, link);
    /* The local daily count (across runs) is taken per request, retries
     * and v2 follow-up requests included, as the server counts them. */
    if (quota_take(p) != 0) {
        stop_sending(p, CTS_STOP_QUOTA,
                     "not sent: the daily quota of %ld requests is used up; "
                     "run again after 00:00 UTC",
                     p->cfg->daily_quota);
        job_defer(j);
        return 1;
    }
    /* cts_state: the intent to send is journaled before the first request
     * leaves, so a killed run knows this row may have landed. */
    if (!j->journaled) {
        rc = cts_state_journal_begin(p->st, j->c.f[CTS_F_EMAIL],
                                     (uint32_t)(j->seq + 1), j->fp);
        if (rc != 0) {
            fatal(p, rc, CTS_EX_CANTCREAT, "cannot write the state journal");
            job_defer(j);
            return 1;
        }
        j->journaled = 1;
    }
    rc = start_request(j);
    if (rc != 0) {
        char msg[256];
        /* A refused submit is a libcurl multi error: style C4 stops the
         * run for it rather than failing rows one by one. */
        snprintf(msg, sizeof(msg), "cannot start a request: %s",
                 cts_strerror(rc));
        fatal(p, rc, CTS_EX_SOFTWARE, msg);
        job_defer(j);
    }
    return 1;
}

/* cts_http's and cts_report's hook: write the coalesced journal before
 * libcurl may send or a report block is written.  A failure stops the run
 * (without a journal it is not crash-safe) and nothing more is sent. */
static int journal_push(void *arg)
{
    struct pipeline *p = arg;
    int rc = cts_state_journal_push(p->st);

    if (rc != 0 && p->fatal_rc == 0)
        fatal(p, rc, CTS_EX_CANTCREAT, "cannot write the state journal");
    return rc;
}

static void on_pump_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* Remember when a request's reply (or failure) came back. */
static void note_done_at(struct pipeline *p, uint64_t now)
{
    if (p->done_n == 0)
        return;
    if (p->done_count < p->done_n) {
        p->done_ring[(p->done_head + p->done_count) % p->done_n] = now;
        p->done_count++;
    } else {
        p->done_ring[p->done_head] = now;
        p->done_head = (p->done_head + 1) % p->done_n;
    }
}

static void note_done(struct pipeline *p)
{
    if (p->done_n > 0)
        note_done_at(p, clock_now(&p->loop));
}

/*
 * The arrival gate (spec §6: "as the server counts them").  The limiter
 * spaces our *starts*, but the server counts *arrivals*, and on a busy
 * machine the delay between the two varies by more than any fixed margin
 * (a request started first may arrive late, next to one started a window
 * later).  A request's arrival is known to lie between its start and its
 * reply, so counting every request in flight plus every request whose
 * reply came back within the last window bounds the arrivals the server
 * can see in any window: a start is allowed only while that count is
 * below n.  Returns 0 (go), WAIT_REPLY (only a reply can free a slot) or
 * the ms until the oldest counted reply leaves the window.
 */
static uint64_t gate_wait(struct pipeline *p)
{
    uint64_t now, win;
    unsigned in_flight, recent = 0, i, k;

    if (p->done_n == 0)
        return 0;
    in_flight = cts_http_in_flight(&p->http);
    if (in_flight >= p->done_n)
        return WAIT_REPLY;
    now = clock_now(&p->loop);
    win = p->lim.window_ms + GATE_MARGIN_MS;
    /* Replies are recorded in time order: the recent ones are the newest. */
    for (i = p->done_count; i > 0; i--) {
        uint64_t t = p->done_ring[(p->done_head + i - 1) % p->done_n];
        if (t + win <= now)
            break;
        recent++;
    }
    if (in_flight + recent < p->done_n)
        return 0;
    /* The k-th oldest of the recent replies must leave the window. */
    k = in_flight + recent - p->done_n; /* 0-based */
    {
        uint64_t t =
            p->done_ring[(p->done_head + (p->done_count - recent) + k) %
                         p->done_n];
        return t + win > now ? t + win - now : 1;
    }
}

/*
 * Start waiting jobs while a connection is free and the limiter has a slot;
 * otherwise arm the one pump timer for the limiter's next slot (never a
 * busy loop).  Retries and next steps go first: they hold older rows, and
 * the ordered report is waiting for them.  Never two requests for one
 * email in flight: duplicates are settled before they reach a queue, and a
 * row's steps run one after the other.
 */
static void pump(struct pipeline *p)
{
    for (;;) {
        struct job_q *q;
        struct cts_job *j;

        if (p->stop != CTS_STOP_NONE || p->http_closing)
            return;
        if (cts_http_in_flight(&p->http) >= (unsigned)p->cfg->concurrency)
            return;
        q = !TAILQ_EMPTY(&p->retry_q) ? &p->retry_q : &p->send_q;
        j = TAILQ_FIRST(q);
        if (j == NULL)
            return;
        {
            uint64_t gw = gate_wait(p);
            if (gw == WAIT_REPLY)
                return; /* on_http_done pumps again */
            if (gw > 0) {
                if (!uv_is_active((uv_handle_t *)&p->pump_timer))
                    uv_timer_start(&p->pump_timer, on_pump_timer, gw, 0);
                return;
            }
        }
        if (!try_start(p, j, q)) {
            uint64_t wait = cts_limiter_wait_ms(&p->lim);
            if (!uv_is_active((uv_handle_t *)&p->pump_timer))
                uv_timer_start(&p->pump_timer, on_pump_timer,
                               wait > 0 ? wait : 1, 0);
            return;
        }
    }
}

/* Put a job back in line for its next request (retry or next step). */
static void requeue(struct cts_job *j)
{
    job_set_state(j, JS_WAIT_TOKEN);
    TAILQ_INSERT_TAIL(&j->p->retry_q, j, link);
}

static void next_step(struct cts_job *j, enum job_step step)
{
    j->step = step;
    j->step_tries = 0;
    if (j->p->stop != CTS_STOP_NONE) {
        job_defer(j);
        return;
    }
    requeue(j);
}

static void on_backoff(uv_timer_t *t)
{
    struct cts_job *j = t->data;
    struct pipeline *p = j->p;

    TAILQ_REMOVE(&p->backoff_q, j, link);
    /* Back through the limiter: a retry spends rate budget (style C7). */
    requeue(j);
    pump(p);
}

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

static void handle_retry(struct cts_job *j, const struct cts_http_req *req,
                         enum cts_outcome_class oc, const char *ek,
                         const char *em)
{
    struct pipeline *p = j->p;
    uint64_t delay = 0;
    uint64_t elapsed = uv_now(&p->loop) - j->step_start_ms;
    char key[64], msg[300];

    describe_failure(req, key, sizeof(key), msg, sizeof(msg));
    if (p->stop != CTS_STOP_NONE) {
        set_str(&j->error_key, ek != NULL ? ek : key);
        job_defer(j);
        return;
    }
    if (cts_retry_next(&p->policy, oc, j->step_tries, elapsed,
                       req->retry_after_s, rnd32(p), &delay)) {
        if (oc == CTS_OC_THROTTLED) {
            /* Throttling is per API key: every request would meet it, so
             * hold all starts, not only this row's. */
            cts_limiter_pause(&p->lim, req->retry_after_s >= 0
                                           ? (uint64_t)req->retry_after_s * 1000
                                           : 1000);
        }
        cts_log_debug("%s:%ld: %s (%s), retry %d in %" PRIu64 " ms", j->file,
                      j->row, cts_outcome_name(oc), ek != NULL ? ek : key,
                      j->step_tries, delay);
        p->retries++;
        job_set_state(j, JS_BACKOFF);
        if (!j->timer_inited) {
            /* Initialised only for rows that need a retry: most rows never
             * do, and a handle costs a close round trip at free. */
            uv_timer_init(&p->loop, &j->timer);
            j->timer.data = j;
            j->timer_inited = 1;
        }
        TAILQ_INSERT_TAIL(&p->backoff_q, j, link);
        uv_timer_start(&j->timer, on_backoff, delay, 0);
        return;
    }
    if ((req->transport_error == CTS_XE_CONNECT ||
         req->transport_error == CTS_XE_RESOLVE) &&
        p->last_reply_ms < j->step_start_ms) {
        /* The API went away: not one reply, from any request, since this
         * row's first try.  Every other row would now spend its whole
         * retry budget the same way (minutes each), so stop here: the
         * rest is deferred and the run exits 69. */
        stop_sending(p, CTS_STOP_UNREACHABLE,
                     "not sent: the API stopped answering (%s); run again "
                     "later",
                     msg);
        set_str(&j->error_key, key);
        job_defer(j);
        return;
    }
    {
        char full[512];
        snprintf(full, sizeof(full), "gave up after %d attempts: %s",
                 j->step_tries, em != NULL ? em : msg);
        job_fail(j, 0, ek != NULL ? ek : key, full);
    }
}

static void handle_auth(struct cts_job *j, const struct cts_http_req *req,
                        const char *ek)
{
    struct pipeline *p = j->p;
    struct cts_config *cfg = p->cfg;
    struct cts_error err = {0};

    if (req->bearer != p->bearer && p->stop == CTS_STOP_NONE) {
        /* Sent with the token a refresh has replaced since: just resend. */
        requeue(j);
        return;
    }
    if (!p->refreshed && cfg->api == CTS_API_V3 && cfg->refresh_token != NULL &&
        p->stop == CTS_STOP_NONE) {
        p->refreshed = 1;
        /* Blocking, on the OAuth module's private loop: a token call is
         * rare (once per run at most) and other rows would meet the same
         * 401 meanwhile anyway. */
        if (cts_oauth_refresh(cfg, &err) == 0 && cfg->token != NULL) {
            free(p->old_bearer);
            p->old_bearer = p->bearer;
            p->bearer = cts_xstrdup(cfg->token);
            cts_log_info("the access token was refused (401); refreshed it "
                         "and going on");
            requeue(j);
            return;
        }
        cts_log_error("%s", err.msg);
    }
    stop_sending(p, CTS_STOP_AUTH,
                 "not sent: the API refused the access token (401%s%s); get "
                 "a new one with `ctct-sync auth`",
                 ek != NULL ? " " : "", ek != NULL ? ek : "");
    set_str(&j->error_key, ek);
    job_defer(j);
}

/* A 409 on a create: the email is already in the account. */
static void handle_conflict(struct cts_job *j, const char *ek, const char *em)
{
    struct pipeline *p = j->p;
    const struct cts_config *cfg = p->cfg;

    if (j->step == STEP_V2_POST && cfg->mode != CTS_MODE_CREATE) {
        /* v2 upsert: look the contact up by email, then PUT with the lists
         * merged (reference §1.4).  Also right when our own earlier POST
         * landed and its reply was lost (libcurl may even have resent it
         * on a new connection by itself, reference §5): never a failure,
         * never a second contact. */
        char *q, *esc = cts_url_escape(j->c.f[CTS_F_EMAIL]);
        q = cts_xasprintf("email=%s", esc);
        free(esc);
        free(j->url);
        j->url = cts_api_url(cfg->base_url, "/contacts", v2_key(p), q);
        free(q);
        next_step(j, STEP_V2_GET);
        return;
    }
    if (j->maybe_landed) {
        /* --mode create, and an earlier attempt of ours may have stored it:
         * the 409 is our own contact. */
        set_str(&j->message, "stored by an earlier attempt whose reply was "
                             "lost (the retry found it existing)");
        job_settle(j, CTS_ST_CREATED);
        return;
    }
    set_str(&j->error_key, ek);
    set_str(&j->message,
            em != NULL ? em : "the contact already exists (--mode create)");
    job_settle(j, CTS_ST_EXISTS);
}

static void handle_ok(struct cts_job *j, const struct cts_http_req *req)
{
    struct pipeline *p = j->p;
    const struct cts_config *cfg = p->cfg;
    const char *body = req->resp.data != NULL ? req->resp.data : "";
    char *id = NULL, *action = NULL, *existing = NULL, *merged, *path, *esc;
    struct cts_error err = {0};

    /* A 2xx is a settled write even when the reply cannot be parsed: the
     * contact id is then left empty rather than the row failed (a retry
     * would only write the same data again). */
    switch (j->step) {
    case STEP_V3_SIGNUP:
        /* sign_up_form: 201 created, 200 updated (reference §2.3).  The
         * body's `action` has no documented values; a server that answers
         * 200 with an action naming a creation is believed too. */
        cts_api_v3_parse_signup(body, req->resp.len, &id, &action);
        j->contact_id = id;
        {
            int created = req->status == 201 ||
                          (action != NULL && strstr(action, "creat") != NULL);
            free(action);
            job_settle(j, created ? CTS_ST_CREATED : CTS_ST_UPDATED);
        }
        return;
    case STEP_V3_CREATE:
        cts_api_v3_parse_contact_id(body, req->resp.len, &id);
        j->contact_id = id;
        job_settle(j, CTS_ST_CREATED);
        return;
    case STEP_V2_POST:
        cts_api_v2_parse_contact_id(body, req->resp.len, &id);
        j->contact_id = id;
        job_settle(j, CTS_ST_CREATED);
        return;
    case STEP_V2_GET:
        /* The 409's contact: merge our fields and lists into what the
         * account holds (a v2 PUT replaces the whole contact). */
        if (cts_api_v2_parse_search(body, req->resp.len, &id, &existing) != 0 ||
            id == NULL) {
            free(id);
            free(existing);
            job_fail(j, 0, "contacts.search.not_found",
                     "the API said the email exists (409) but a search by "
                     "email found no contact");
            return;
        }
        merged = cts_api_v2_merge_update(existing, &j->c, cfg->lists,
                                         cfg->nlists, &err);
        free(existing);
        if (merged == NULL) {
            free(id);
            job_fail(j, 1, "contacts.merge", err.msg);
            return;
        }
        free(j->body);
        j->body = merged;
        esc = cts_url_escape(id);
        path = cts_xasprintf("/contacts/%s", esc);
        free(esc);
        free(j->url);
        j->url = cts_api_url(cfg->base_url, path, v2_key(p),
                             "action_by=ACTION_BY_OWNER");
        free(path);
        free(j->contact_id);
        j->contact_id = id;
        next_step(j, STEP_V2_PUT);
        return;
    case STEP_V2_PUT: job_settle(j, CTS_ST_UPDATED); return;
    }
}

/* libcurl finished one request of a job (from cts_http's drain loop). */
static void on_http_done(struct cts_http_req *req, void *arg)
{
    struct cts_job *j = arg;
    struct pipeline *p = j->p;
    char *ek = NULL, *em = NULL;
    char key[64], msg[300];
    enum cts_outcome_class oc;

    /* First, before anything can start another request: the reply frees an
     * arrival-gate slot one window from now. */
    note_done(p);
    if (req->status > 0)
        p->last_reply_ms = uv_now(&p->loop);
    j->http_status = (int)req->status;
    /* Sticky: once a create may have landed, a later 409 on this row is
     * our own contact (reference §5: libcurl itself may resend a POST). */
    if (req->maybe_landed && j->step != STEP_V2_GET)
        j->maybe_landed = 1;
    if (req->transport_error == CTS_XE_ABORTED) {
        set_str(&j->message, "not confirmed: the run stopped while this "
                             "request was in flight");
        job_defer(j);
        goto out;
    }
    /* Error bodies come in both shapes (array, single object for v3 429);
     * the error_key decides throttling vs quota for the classifier. */
    if (req->transport_error == CTS_XE_NONE && req->status >= 300)
        cts_api_parse_error(req->resp.data != NULL ? req->resp.data : "",
                            req->resp.len, &ek, &em);
    if (req->transport_error == CTS_XE_NONE && req->status == 409) {
        if (j->step == STEP_V3_SIGNUP) {
            /* sign_up_form's 409 means simultaneous changes to one contact
             * (reference §2.3): transient, try again. */
            handle_retry(j, req, CTS_OC_TRANSIENT, ek, em);
            goto out;
        }
        if (j->step == STEP_V2_POST || j->step == STEP_V3_CREATE) {
            handle_conflict(j, ek, em);
            goto out;
        }
    }
    oc = cts_retry_classify(p->cfg->api, req->status, req->transport_error, ek);
    switch (oc) {
    case CTS_OC_OK: handle_ok(j, req); break;
    case CTS_OC_AUTH: handle_auth(j, req, ek); break;
    case CTS_OC_QUOTA:
        cts_state_quota_exhausted(p->st);
        stop_sending(p, CTS_STOP_QUOTA,
                     "not sent: the API says the daily quota is used up "
                     "(%s); run again after 00:00 UTC",
                     ek != NULL ? ek : "quota");
        set_str(&j->error_key, ek);
        job_defer(j);
        break;
    case CTS_OC_THROTTLED:
    case CTS_OC_TRANSIENT: handle_retry(j, req, oc, ek, em); break;
    case CTS_OC_PERMANENT:
    default:
        describe_failure(req, key, sizeof(key), msg, sizeof(msg));
        job_fail(j, req->transport_error == CTS_XE_NONE, ek != NULL ? ek : key,
                 em != NULL ? em : msg);
        break;
    }
out:
    free(ek);
    free(em);
    pump(p);
}

/* ---- rows from intake (cts_intake.h) ---- */

/* Message naming the row that first had this email (state row tag). */
static void dup_message(struct pipeline *p, struct cts_job *j, size_t file_idx,
                        uint32_t tag)
{
    uint64_t first = (uint64_t)tag - 1;
    size_t k = file_idx;
    char buf[512];

    while (k > 0 && p->file_seq[k] > first)
        k--;
    if (k == file_idx)
        snprintf(buf, sizeof(buf), "same email as row %" PRIu64,
                 first - p->file_seq[k] + 1);
    else
        snprintf(buf, sizeof(buf), "same email as %s row %" PRIu64,
                 p->cfg->inputs[k], first - p->file_seq[k] + 1);
    set_str(&j->message, buf);
}

/* The header row of a file was read (its mapping built by intake). */
static int header_done(struct pipeline *p, const struct cts_intake_batch *b)
{
    const struct cts_config *cfg = p->cfg;
    const char *file = cfg->inputs[b->file_idx];
    const char *const *names = NULL;
    size_t n, i;

    if (b->header_rc != 0) {
        fatal(p, b->header_rc, b->herr.exit_code, b->herr.msg);
        return CTS_EDATA;
    }
    p->file_seq[b->file_idx] = p->next_seq;
    /* The mapper is only read here while the next work item may map rows
     * with it: both sides treat it as const. */
    n = cts_mapper_unmapped(b->mapper, &names);
    if (n > 0) {
        struct cts_buf buf;
        cts_buf_init(&buf, 4096);
        for (i = 0; i < n; i++)
            cts_buf_appendf(&buf, "%s\"%s\"", i > 0 ? ", " : "", names[i]);
        cts_log_info("%s: ignoring columns that map to no field: %s", file,
                     buf.data != NULL ? buf.data : "");
        cts_buf_free(&buf);
    }
    if (cfg->dry_run && !cfg->quiet) {
        progress_clear_locked(p);
        fprintf(stderr, "%s: %s: column mapping:\n", "ctct-sync", file);
        cts_mapper_describe(b->mapper, stderr);
    }
    return 0;
}

/* The job outlives its batch: give it an owned copy of its contact. */
static void job_own_contact(struct cts_job *j)
{
    struct cts_contact c;

    if (!j->c_borrowed)
        return;
    cts_contact_copy(&c, &j->c);
    j->c = c;
    j->c_borrowed = 0;
}

/* Loop side: decide what happens to one mapped row. */
static void settle_row(struct pipeline *p, struct cts_intake_batch *b,
                       struct cts_intake_row *m)
{
    const struct cts_config *cfg = p->cfg;
    struct cts_job *j = job_new(p, b->file_idx, m->row);
    struct cts_error err = {0};
    struct cts_state_prev prev;
    uint32_t first = 0;

    /* Borrowed from the batch while the row settles here and now; a row
     * that goes on to be sent takes its own copy first. */
    j->c = m->c;
    j->c_borrowed = 1;
    if (m->invalid) {
        set_str(&j->message, cts_intake_row_msg(b, m));
        job_settle(j, CTS_ST_INVALID);
        return;
    }
    job_set_state(j, JS_MAPPED);
    j->fp = m->fp;
    if (cts_state_seen_key(p->st, m->key, (uint32_t)(j->seq + 1), &first)) {
        dup_message(p, j, b->file_idx, first);
        job_settle(j, CTS_ST_DUPLICATE);
        return;
    }
    memset(&prev, 0, sizeof(prev));
    switch (cts_state_lookup_key(p->st, m->key, j->fp, &prev)) {
    case CTS_SV_UNCHANGED:
        set_static_msg(j, "unchanged since the last run (--full sends it)");
        job_settle(j, CTS_ST_UNCHANGED);
        return;
    case CTS_SV_RESUMED:
        /* prev.message is the state's, valid until it closes. */
        set_static_msg(j, prev.message != NULL
                              ? prev.message
                              : "settled by an interrupted run");
        job_settle(j, prev.status);
        return;
    case CTS_SV_FAILED_BEFORE:
        j->http_status = prev.http_status;
        set_str(&j->error_key, prev.error_key);
        set_str(&j->message, prev.message);
        job_settle(j, CTS_ST_FAILED);
        return;
    case CTS_SV_SEND_IN_DOUBT:
        /* A killed run had it in flight: treat as maybe stored, so a 409
         * on a create is our own contact, not a failure. */
        j->maybe_landed = 1;
        break;
    case CTS_SV_SEND: break;
    }
    if (cfg->dry_run) {
        /* The mapper has validated the row against the API's limits; the
         * request body itself is not built (it would only be thrown away,
         * and it is most of a dry run's cost). */
        set_static_msg(j,
                cfg->bulk == CTS_BULK_ALWAYS
                    ? "would import it in a bulk activity"
                : cfg->api == CTS_API_V2
                    ? (cfg->mode == CTS_MODE_CREATE
                           ? "would POST /contacts (exists if it does)"
                           : "would POST /contacts (GET and PUT if it "
                             "exists)")
                : cfg->mode == CTS_MODE_CREATE
                    ? "would POST /contacts"
                    : "would POST /contacts/sign_up_form");
        job_settle(j, CTS_ST_DRY_RUN);
        return;
    }
    if (p->stop != CTS_STOP_NONE) {
        job_defer(j);
        return;
    }
    job_own_contact(j);
    p->to_send++;
    if (p->bulk == NULL && !p->bulk_decided && cfg->bulk == CTS_BULK_AUTO)
        bulk_maybe_start(p);
    if (p->bulk != NULL) {
        /* cts_bulk builds its own rows: no per-contact body. */
        bulk_take(p, j);
        return;
    }
    if (job_prepare(j, &err) != 0) {
        set_str(&j->message, err.msg);
        job_settle(j, CTS_ST_INVALID);
        return;
    }
    job_set_state(j, JS_QUEUED);
    TAILQ_INSERT_TAIL(&p->send_q, j, link);
}

#define PREFETCH_AHEAD 8 /* rows whose index slot is loading meanwhile */

/* intake's on_batch: the header (if any), then every row of a batch in
 * order; a fatal error drops the rest (as the reader used to stop
 * delivering). */
static void on_batch(void *arg, struct cts_intake_batch *b)
{
    struct pipeline *p = arg;
    size_t i;

    if (b->header) {
        b->header = 0;
        if (header_done(p, b) != 0)
            return;
    }
    /* The email index is much larger than the caches and each new email
     * lands on a random slot: asking for the slots a few rows ahead
     * overlaps those misses instead of waiting for each in turn. */
    for (i = 0; i < b->n && i < PREFETCH_AHEAD; i++)
        if (!b->rows[i].invalid)
            cts_state_prefetch(p->st, b->rows[i].key);
    for (i = 0; i < b->n; i++) {
        size_t ahead = i + PREFETCH_AHEAD;
        if (p->stop == CTS_STOP_FATAL)
            return;
        if (ahead < b->n && !b->rows[ahead].invalid)
            cts_state_prefetch(p->st, b->rows[ahead].key);
        settle_row(p, b, &b->rows[i]);
    }
}

/* intake's on_error: reading cannot go on (the first error wins). */
static void on_intake_error(void *arg, int rc, int exit_code, const char *msg)
{
    struct pipeline *p = arg;

    if (p->fatal_rc == 0)
        fatal(p, rc, exit_code, msg);
}

/* intake's on_settled: start what the batch queued. */
static void on_settled(void *arg)
{
    pump(arg);
}

/* intake's full: backpressure (style C7): above the high-water mark of
 * unreported rows the next rows wait for the report to catch up. */
static int intake_full(void *arg)
{
    struct pipeline *p = arg;

    if (unreported(p) <= p->high)
        return 0;
    /* A bulk chunk fills only while reading goes on: post it. */
    if (p->bulk != NULL)
        cts_bulk_seal(p->bulk);
    return 1;
}

/* intake's on_done: every row has been read (or reading stopped). */
static void on_read_done(void *arg)
{
    struct pipeline *p = arg;

    if (p->bulk != NULL)
        cts_bulk_flush(p->bulk);
    maybe_finish(p);
}

/* ---- bulk (helper "state"; cts_bulk.h) ----
 *
 * With --bulk always, rows that would be sent go to bulk.c instead of the
 * send queue: QUEUED on bulk_q until their activity settles them (bulk.c
 * journals them itself, so j->journaled stays 0).  Rows of a killed run's
 * activity are adopted: their result is polled, not posted again.
 * --bulk auto switches to bulk as soon as the rows to send are expected to
 * exceed --bulk-threshold or the remaining daily quota (cts_bulk_choose,
 * spec §8); see bulk_maybe_start for how "rows to send" is estimated.
 */

#define BULK_PIPE_ROWS 5000 /* rows per chunk here: bounds the jobs held */

static void bulk_on_result(void *arg, const struct cts_bulk_result *r)
{
    struct pipeline *p = arg;
    struct cts_job *j;

    /* Results come mostly in input order: the search is short. */
    for (j = TAILQ_FIRST(&p->bulk_q); j != NULL; j = TAILQ_NEXT(j, link))
    {
        if ((uint32_t)(j->seq + 1) == r->row)
            break;
    }
    if (j == NULL)
        return;
    TAILQ_REMOVE(&p->bulk_q, j, link);
    j->http_status = r->http_status;
    j->attempts = r->attempts;
    set_str(&j->error_key, r->error_key);
    set_str(&j->message, r->message);
    if (r->status == CTS_ST_DEFERRED && p->stop == CTS_STOP_NONE) {
        enum cts_bulk_stop why = cts_bulk_stopped(p->bulk);
        if (why == CTS_BULK_STOP_QUOTA)
            stop_sending(p, CTS_STOP_QUOTA, "%s",
                         r->message != NULL ? r->message
                                            : "daily quota exhausted");
        else if (why == CTS_BULK_STOP_AUTH)
            stop_sending(p, CTS_STOP_AUTH, "%s",
                         r->message != NULL ? r->message : "401");
    }
    job_settle(j, r->status);
}

static void bulk_take(struct pipeline *p, struct cts_job *j)
{
    struct cts_error err = {0};
    const char *id = NULL;
    uint32_t line = 0;
    uint32_t tag = (uint32_t)(j->seq + 1);
    int rc;

    job_set_state(j, JS_QUEUED);
    TAILQ_INSERT_TAIL(&p->bulk_q, j, link);
    if (j->maybe_landed &&
        cts_state_bulk_pending(p->st, j->c.f[CTS_F_EMAIL], j->fp, &id, &line))
        rc = cts_bulk_adopt(p->bulk, tag, j->c.f[CTS_F_EMAIL], j->fp, id, line);
    else
        rc = cts_bulk_add(p->bulk, tag, &j->c, j->fp, &err);
    if (rc == 0)
        return;
    TAILQ_REMOVE(&p->bulk_q, j, link);
    if (rc == UV_ECANCELED) {
        job_defer(j);
    } else {
        set_str(&j->message, err.msg);
        job_settle(j, CTS_ST_INVALID);
    }
}

static void bulk_start(struct pipeline *p)
{
    struct cts_bulk_params bp;
    struct cts_error err = {0};

    memset(&bp, 0, sizeof(bp));
    bp.loop = &p->loop;
    bp.cfg = p->cfg;
    bp.state = p->st;
    bp.on_result = bulk_on_result;
    bp.arg = p;
    bp.max_rows = BULK_PIPE_ROWS;
    if (cts_bulk_new(&bp, &p->bulk, &err) != 0) {
        cts_log_warn("bulk unavailable (%s); sending contact by contact",
                     err.msg);
        p->bulk = NULL;
        return;
    }
    /* Two chunks may wait for their activities while a third fills. */
    p->high = 2 * BULK_PIPE_ROWS + 256;
    p->low = BULK_PIPE_ROWS;
}

/*
 * --bulk auto.  The rows to send are not known in advance: an incremental
 * run sends only what changed.  So estimate them from what has been seen:
 * the rows that reached the send decision so far, plus the rows still to
 * read at the same proportion (expected_rows counts the input's lines).
 * With no stored fingerprint at all (a first import, or --full) every valid
 * row will be sent, and the estimate is trusted at once; otherwise only
 * after a sample of rows.  Evaluated at each row to send until it says
 * bulk: a first import of a big file goes to bulk from its first row, a
 * nightly sync that changes a handful of rows stays per-contact, and one
 * that changes thousands moves to bulk after the sample (rows already
 * queued still go per-contact).
 */
#define BULK_SAMPLE_ROWS 256

static void bulk_maybe_start(struct pipeline *p)
{
    const struct cts_config *cfg = p->cfg;
    struct cts_state_stats ss;
    uint64_t read = p->next_seq, left, estimate;
    long quota;

    cts_state_get_stats(p->st, &ss);
    if (ss.known > 0 && !cfg->full && read < BULK_SAMPLE_ROWS &&
        !cts_intake_finished(&p->in) &&
        (p->expected_rows <= 0 || read < (uint64_t)p->expected_rows))
        return;
    left = p->expected_rows > 0 && (uint64_t)p->expected_rows > read
               ? (uint64_t)p->expected_rows - read
               : 0;
    estimate = p->to_send + (read > 0 ? left * p->to_send / read : 0);
    quota = cfg->daily_quota > 0 ? cts_state_quota_remaining(p->st)
                                 : (long)estimate;
    if (!cts_bulk_choose(cfg, (long)estimate, quota))
        return;
    p->bulk_decided = 1;
    cts_log_info("about %llu rows to send: importing them in bulk "
                 "activities (--bulk never sends contact by contact)",
                 (unsigned long long)estimate);
    bulk_start(p);
}

/* ---- timers, signals, shutdown ---- */

static void on_tick(uv_timer_t *t)
{
    struct pipeline *p = t->data;

    if (p->show_progress) {
        uv_mutex_lock(&p->progress_mx);
        cts_progress_update(&p->progress, uv_now(&p->loop),
                            (long)cts_report_written(p->report),
                            p->expected_rows, p->requests, p->retries);
        uv_mutex_unlock(&p->progress_mx);
    }
    /* Journal records reach the kernel at once; fdatasync is batched here
     * (cts_state.h). */
    if (++p->ticks % FLUSH_EVERY == 0 && cts_state_flush(p->st) != 0)
        fatal(p, UV_EIO, CTS_EX_CANTCREAT, "cannot sync the state journal");
}

/* Remove whatever is still in flight: cts_http_close runs their done
 * callbacks (aborted → deferred).  Never called from inside cts_http's
 * own callbacks: only from a timer. */
static void on_grace(uv_timer_t *t)
{
    struct pipeline *p = t->data;

    if (p->http_closing)
        return;
    if (cts_http_in_flight(&p->http) > 0)
        cts_log_warn("abandoning %u request%s still in flight",
                     cts_http_in_flight(&p->http),
                     cts_http_in_flight(&p->http) == 1 ? "" : "s");
    p->http_closing = 1;
    cts_http_close(&p->http, NULL);
    maybe_finish(p);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct pipeline *p = h->data;
    uint64_t grace = (uint64_t)p->cfg->timeout_ms;

    p->signals++;
    if (p->signals == 1) {
        cts_log_warn("%s: letting requests in flight finish; the rest is "
                     "deferred (signal again to stop at once)",
                     signum == SIGINT ? "interrupted" : "terminated");
        stop_sending(p, CTS_STOP_SIGNAL,
                     "not sent: the run was interrupted (signal %d)", signum);
        if (grace < GRACE_MIN_MS)
            grace = GRACE_MIN_MS;
        uv_timer_start(&p->grace_timer, on_grace, grace, 0);
    } else {
        /* Second signal: stop reading now (the report then lacks the rows
         * not read yet) and abandon what is in flight. */
        cts_log_warn("stopping at once; the report is incomplete");
        uv_timer_start(&p->grace_timer, on_grace, 0, 0);
        cts_intake_stop(&p->in);
    }
}

static void shutdown_handles(struct pipeline *p)
{
    if (p->handles_inited && !p->handles_closing) {
        p->handles_closing = 1;
        uv_close((uv_handle_t *)&p->pump_timer, NULL);
        uv_close((uv_handle_t *)&p->tick_timer, NULL);
        uv_close((uv_handle_t *)&p->grace_timer, NULL);
        cts_intake_close(&p->in);
        uv_close((uv_handle_t *)&p->sigint, NULL);
        uv_close((uv_handle_t *)&p->sigterm, NULL);
    }
    /* Style C6.7: nothing queued, in flight or backing off any more, so
     * cts_http_close only cleans up (curl_multi_cleanup, header lists,
     * timer and socket polls). */
    if (p->http_inited && !p->http_closing) {
        p->http_closing = 1;
        cts_http_close(&p->http, NULL);
    }
    if (p->bulk != NULL) {
        struct cts_bulk_stats bs;
        cts_bulk_get_stats(p->bulk, &bs);
        p->requests += bs.requests;
        p->retries += bs.retries;
        cts_bulk_close(p->bulk, NULL, NULL);
        p->bulk = NULL;
    }
}

static void maybe_finish(struct pipeline *p)
{
    if (p->finishing || !cts_intake_finished(&p->in) || p->live > 0)
        return;
    p->finishing = 1;
    shutdown_handles(p);
}

/* A fatal error aborts in-flight requests from the next loop turn (we may
 * be inside an http callback now). */
static void abort_soon(struct pipeline *p)
{
    if (p->handles_inited && !p->handles_closing && !p->http_closing)
        uv_timer_start(&p->grace_timer, on_grace, 0, 0);
}

int cts_pipeline_run(const struct cts_pipeline_params *pp,
                     struct cts_pipeline_outcome *out, struct cts_error *err)
{
    struct cts_config *cfg = pp->cfg;
    struct pipeline *p;
    struct cts_http_opts ho;
    int rc;

    memset(out, 0, sizeof(*out));
    p = cts_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    p->report = pp->report;
    p->st = pp->state;
    p->cf = pp->cf;
    p->expected_rows = pp->expected_rows;
    TAILQ_INIT(&p->send_q);
    TAILQ_INIT(&p->retry_q);
    TAILQ_INIT(&p->backoff_q);
    TAILQ_INIT(&p->bulk_q);
    if (cfg->concurrency < 1)
        cfg->concurrency = 1;
    /* The out-of-order window of the report is bounded by this mark. */
    p->high = 4 * (uint64_t)cfg->concurrency + 256;
    p->low = p->high / 2;
    p->file_seq = cts_xcalloc(cfg->ninputs + 1, sizeof(*p->file_seq));
    if (cts_random_bytes(&p->rng, sizeof(p->rng)) != 0 || p->rng == 0)
        p->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)uv_hrtime();
    cts_retry_policy_default(&p->policy);
    p->policy.max_retries = cfg->retries >= 0 ? (int)cfg->retries : 0;

    /* A private loop, not uv_default_loop(): the account check and OAuth
     * calls run their own loops, and this one must close to 0 at the end
     * (style C6.7) whatever they did. */
    rc = uv_loop_init(&p->loop);
    if (rc != 0) {
        cts_error_setx(err, rc, CTS_EX_SOFTWARE, "cannot start the loop: %s",
                       uv_strerror(rc));
        free(p->file_seq);
        free(p);
        return rc;
    }
    if (uv_mutex_init(&p->progress_mx) != 0) {
        cts_log_error("out of resources creating a mutex");
        abort();
    }
    cts_limiter_init(&p->lim, cfg->rate, clock_now, &p->loop);
    if (cfg->rate > 0) {
        /* The arrival gate covers the jitter the limiter's margin was for,
         * so the margin only has to absorb clock rounding. */
        cts_limiter_set_margin(&p->lim, GATE_MARGIN_MS);
        p->done_n = p->lim.n;
        p->done_ring = cts_xcalloc(p->done_n, sizeof(*p->done_ring));
        /* The server's window already holds the account check's requests;
         * a full first burst on top of them would be throttled (spec §6:
         * as the server counts them).  They enter the gate with the time
         * they ended (uv_now is uv_hrtime in ms: the same clock). */
        for (int i = 0; i < pp->preflight; i++)
            note_done_at(p, pp->preflight_done_ms != 0 ? pp->preflight_done_ms
                                                       : clock_now(&p->loop));
    }
    memset(&ho, 0, sizeof(ho));
    ho.max_in_flight = cfg->concurrency;
    ho.timeout_ms = cfg->timeout_ms;
    ho.verbose = cfg->verbose;
    rc = cts_http_init(&p->http, &p->loop, &ho);
    if (rc != 0) {
        cts_error_setx(err, rc, CTS_EX_SOFTWARE,
                       "cannot start the HTTP client: %s", cts_strerror(rc));
        goto out;
    }
    p->http_inited = 1;
    /* One journal write per loop turn instead of two per row (a begin and
     * a done): the records wait in memory until libcurl is about to send
     * or a report block is about to be written (cts_state.h). */
    cts_state_journal_coalesce(p->st, 1);
    cts_http_set_before_io(&p->http, journal_push, p);
    cts_report_set_before_write(p->report, journal_push, p);
    if (!cfg->dry_run && cfg->bulk == CTS_BULK_ALWAYS)
        bulk_start(p);
    if (cfg->api == CTS_API_V2)
        p->url_create = cts_api_url(cfg->base_url, "/contacts", cfg->api_key,
                                    "action_by=ACTION_BY_OWNER");
    else if (cfg->mode == CTS_MODE_CREATE)
        p->url_create = cts_api_url(cfg->base_url, "/contacts", NULL, NULL);
    else
        p->url_create =
            cts_api_url(cfg->base_url, "/contacts/sign_up_form", NULL, NULL);
    p->bearer = cts_xstrdup(cfg->token != NULL ? cfg->token : "");

    uv_timer_init(&p->loop, &p->pump_timer);
    uv_timer_init(&p->loop, &p->tick_timer);
    uv_timer_init(&p->loop, &p->grace_timer);
    uv_signal_init(&p->loop, &p->sigint);
    uv_signal_init(&p->loop, &p->sigterm);
    p->pump_timer.data = p;
    p->tick_timer.data = p;
    p->grace_timer.data = p;
    p->sigint.data = p;
    p->sigterm.data = p;
    p->handles_inited = 1;
    uv_signal_start(&p->sigint, on_signal, SIGINT);
    uv_signal_start(&p->sigterm, on_signal, SIGTERM);

    p->show_progress = cfg->progress && !cfg->quiet;
    {
        struct cts_intake_params ip;
        memset(&ip, 0, sizeof(ip));
        ip.loop = &p->loop;
        ip.cfg = cfg;
        ip.on_batch = on_batch;
        ip.on_error = on_intake_error;
        ip.on_settled = on_settled;
        ip.full = intake_full;
        ip.on_done = on_read_done;
        ip.arg = p;
        cts_intake_init(&p->in, &ip);
        p->intake_inited = 1;
    }
    cts_progress_init(&p->progress, stderr, uv_now(&p->loop));
    if (p->show_progress)
        cts_log_set_hook(progress_clear_locked, p);
    uv_timer_start(&p->tick_timer, on_tick, TICK_MS, TICK_MS);

    cts_intake_start(&p->in);

    /* Everything happens in callbacks from here; uv_run returns once the
     * last handle is closed (shutdown_handles, from maybe_finish). */
    uv_run(&p->loop, UV_RUN_DEFAULT);

    /* Requests counted in a block (quota_take) but never made go back to
     * today's count, so a run over-counts by nothing. */
    if (p->quota_credit > 0) {
        cts_state_quota_release(p->st, p->quota_credit);
        p->quota_credit = 0;
    }

out:
    /* The report outlives p: from here its lines need no hook, because
     * every journal record is written now. */
    cts_report_set_before_write(p->report, NULL, NULL);
    if (cts_state_journal_push(p->st) != 0 && p->fatal_rc == 0)
        fatal(p, UV_EIO, CTS_EX_CANTCREAT, "cannot write the state journal");
    cts_state_journal_coalesce(p->st, 0);
    if (p->show_progress) {
        progress_clear_locked(p);
        cts_log_set_hook(NULL, NULL);
    }
    if (!p->http_inited) {
        /* Nothing but the loop to close. */
    } else if (p->fatal_rc != 0) {
        rc = p->fatal_rc;
        if (err != NULL)
            *err = p->fatal;
    }
    /* Style C6.7: every handle is closed, so the loop must close cleanly;
     * anything else is a leak of ours. */
    if (uv_loop_close(&p->loop) != 0) {
        assert(!"loop not idle at exit");
        cts_log_error("internal: event loop not idle at exit");
        if (rc == 0)
            rc = cts_error_setx(err, UV_EBUSY, CTS_EX_SOFTWARE,
                                "internal error: event loop not idle");
    }
    out->stop = p->stop == CTS_STOP_FATAL ? CTS_STOP_FATAL : p->stop;
    out->requests = p->requests;
    out->retries = p->retries;
    out->csv_error = cts_intake_csv_error(&p->in) != NULL;
    out->encoding = cts_intake_encoding(&p->in);
    if (p->stop != CTS_STOP_NONE)
        snprintf(out->message, sizeof(out->message), "%s", p->stop_msg);
    else if (out->csv_error)
        snprintf(out->message, sizeof(out->message), "%s",
                 cts_intake_csv_error(&p->in));
    cts_limiter_close(&p->lim);
    free(p->done_ring);
    free(p->url_create);
    free(p->bearer);
    free(p->old_bearer);
    free(p->file_seq);
    spares_free(p);
    uv_mutex_destroy(&p->progress_mx);
    free(p);
    return rc;
}
