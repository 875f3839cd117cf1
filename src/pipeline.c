/* pipeline.c — the import: wires intake, the row decisions (state,
 * duplicates, dry run), the request protocol or bulk, the send engine and
 * the report; owns backpressure, signals and shutdown.  Only this file
 * knows every stage; the stages know only what comes after them.
 *
 * A row's way: intake (its thread) → on_batch → settle_row: a job; settled
 * at once (invalid, duplicate, unchanged, dry run, deferred), or handed to
 * cts_protocol (→ cts_send → cts_http) or to cts_bulk → on_row_done /
 * bulk_on_result → job_settle → job_report: journal, report, free. */
#include "cts_pipeline.h"

#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <uv.h>

#include "cts_bulk.h"
#include "cts_contact.h"
#include "cts_intake.h"
#include "cts_job.h"
#include "cts_mapper.h"
#include "cts_mirror.h"
#include "cts_optsync.h"
#include "cts_progress.h"
#include "cts_protocol.h"
#include "cts_report.h"
#include "cts_send.h"
#include "cts_state.h"

#define TICK_MS      100  /* progress redraw and journal flush period */
#define FLUSH_EVERY  2    /* journal fdatasync every 2 ticks (200 ms) */
#define GRACE_MIN_MS 5000 /* SIGINT: in-flight requests get this long */

TAILQ_HEAD(job_q, cts_job);

struct pipeline {
    uv_loop_t loop;
    struct cts_config *cfg;
    struct cts_report *report;
    struct cts_state *st;

    /* stages */
    struct cts_intake in; /* reading, on its own thread */
    int intake_inited;
    struct cts_jobs jobs;      /* one job per row until reported */
    struct cts_protocol proto; /* a row's requests */
    struct cts_send send;      /* every request of the run */
    int send_inited;
    int send_closing;
    uv_timer_t tick_timer; /* progress line, journal flush */
    uv_timer_t grace_timer;
    uv_signal_t sigint, sigterm;
    int handles_inited;
    int handles_closing;

    uint64_t *file_seq; /* first seq of each file (dup messages) */
    uint64_t next_seq;
    uint64_t high, low; /* backpressure marks, unreported rows */

    /* stopping */
    enum cts_stop stop;
    char stop_msg[512];
    int signals;
    int fatal_rc;
    struct cts_error fatal;
    int finishing;

    /* bulk (--bulk always, or auto once it pays; see "bulk" below) */
    struct cts_bulk_run *bulk;
    int bulk_decided;    /* --bulk auto: the choice has been made */
    uint64_t to_send;    /* rows that reached the send decision */
    struct job_q bulk_q; /* rows handed to bulk, in input order */

    /* the account's unsubscribed addresses (cts_optsync.h) */
    struct cts_optouts *optouts;
    int opt_ready; /* known: rows may be settled */
    int opt_dirty; /* the run unsubscribed someone: save at the end */
    struct cts_mirror *mirror; /* --mirror: after every row (cts_mirror.h) */

    /* progress */
    int show_progress;
    struct cts_progress progress;
    uv_mutex_t progress_mx; /* progress vs. log lines from the intake thread */
    long expected_rows;
    unsigned ticks;
};

static void bulk_take(struct pipeline *p, struct cts_job *j);
static void bulk_start(struct pipeline *p);
static void bulk_maybe_start(struct pipeline *p);
static void maybe_finish(struct pipeline *p);
static void stop_sending(struct pipeline *p, enum cts_stop why, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static void abort_soon(struct pipeline *p);

static uint64_t unreported(const struct pipeline *p)
{
    return p->next_seq - cts_report_written(p->report);
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

/* ---- a row's end: DONE → journal → report → REPORTED → free ---- */

static void job_report(struct cts_job *j)
{
    struct pipeline *p = j->owner;
    struct cts_result res;
    char *masked;
    int rc;

    /* A message may quote the server's words, which may quote our token:
     * masked once here for both the state's failed file and the report. */
    masked = cts_log_redacted(cts_job_message(j));
    if (masked != NULL) {
        free(j->message);
        j->message = masked;
    }
    /* cts_state: the journal learns how the row settled before its report
     * line can exist, so a crash never leaves a reported row unjournaled. */
    if (j->journaled) {
        rc = cts_state_journal_done(p->st, j->c.f[CTS_F_EMAIL],
                                    (uint32_t)(j->seq + 1), j->fp, j->status,
                                    j->permanent, j->http_status, j->error_key,
                                    cts_job_message(j));
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
    res.message = cts_job_message(j);
    rc = cts_report_put(p->report, j->seq, &res);
    cts_job_set_state(j, CTS_JS_REPORTED);
    cts_job_free(j);
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
    cts_job_set_state(j, CTS_JS_DONE);
    job_report(j);
}

static void job_defer(struct cts_job *j)
{
    struct pipeline *p = j->owner;

    if (cts_job_message(j) == NULL)
        cts_job_set_str(&j->message, p->stop_msg[0] != '\0'
                                         ? p->stop_msg
                                         : "not sent: the run stopped early");
    job_settle(j, CTS_ST_DEFERRED);
}

/* ---- stopping ---- */

static void stop_sending(struct pipeline *p, enum cts_stop why, const char *fmt,
                         ...)
{
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
    /* Every request still waiting ends now (its row deferred); in-flight
     * requests finish and keep their result (a write that landed is
     * reported as such). */
    if (p->send_inited)
        cts_send_stop(&p->send);
    /* Bulk rows settle from the loop (deferred, or kept journalled when
     * their activity is already running). */
    if (p->bulk != NULL)
        cts_bulk_stop(p->bulk);
    cts_mirror_stop(p->mirror);
}

/* ---- sending a row (cts_protocol) ---- */

/* The send engine's start hook of a row's requests: the intent to send is
 * journaled before the first request leaves, so a killed run knows this
 * row may have landed.  Without a journal the run is not crash-safe:
 * nothing is sent then. */
static int journal_begin(struct cts_send_req *r)
{
    struct cts_job *j =
        (struct cts_job *)((char *)r - offsetof(struct cts_job, sr));
    struct pipeline *p = j->owner;
    int rc;

    if (j->journaled)
        return 0;
    rc = cts_state_journal_begin(p->st, j->c.f[CTS_F_EMAIL],
                                 (uint32_t)(j->seq + 1), j->fp);
    if (rc != 0) {
        fatal(p, rc, CTS_EX_CANTCREAT, "cannot write the state journal");
        return rc;
    }
    j->journaled = 1;
    return 0;
}

/* cts_protocol's done: the row's requests are over. */
static void on_row_done(void *arg, struct cts_job *j,
                        const struct cts_proto_end *e)
{
    struct pipeline *p = arg;

    if (e->stop == CTS_STOP_FATAL)
        fatal(p, e->rc, CTS_EX_SOFTWARE, e->why);
    else if (e->stop != CTS_STOP_NONE)
        stop_sending(p, e->stop, "%s", e->why);
    /* Known from now on: the next run need not look them up. */
    if (e->status == CTS_ST_UNSUBSCRIBED &&
        cts_optouts_add(p->optouts, j->c.f[CTS_F_EMAIL],
                        cts_config_now(p->cfg)))
        p->opt_dirty = 1;
    if (e->status == CTS_ST_DEFERRED)
        job_defer(j);
    else
        job_settle(j, e->status);
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

/* ---- rows from intake (cts_intake.h) ---- */

/* The header row of a file was read (its mapping built by intake). */
static int header_done(struct pipeline *p, const struct cts_intake_batch *b)
{
    const struct cts_config *cfg = p->cfg;
    const char *file = cfg->inputs[b->file_idx];

    if (b->header_rc != 0) {
        fatal(p, b->header_rc, b->herr.exit_code, b->herr.msg);
        return CTS_EDATA;
    }
    p->file_seq[b->file_idx] = p->next_seq;
    /* The mapper is only read here while the next work item may map rows
     * with it: both sides treat it as const. */
    cts_mapper_log_header(b->mapper, file, cfg->dry_run && !cfg->quiet);
    return 0;
}

static void settle_row(struct pipeline *p, struct cts_intake_batch *b,
                       struct cts_intake_row *m)
{
    const struct cts_config *cfg = p->cfg;
    struct cts_job *j =
        cts_job_new(&p->jobs, p->next_seq++, cfg->inputs[b->file_idx], m->row);
    struct cts_error err = {0};
    struct cts_state_prev prev;
    uint32_t first = 0;
    char msg[512];

    /* Borrowed from the batch while the row settles here and now; a row
     * that goes on to be sent takes its own copy first. */
    j->c = m->c;
    j->c_borrowed = 1;
    if (m->invalid) {
        cts_mirror_note(p->mirror, m->c.f[CTS_F_EMAIL]); /* still input */
        cts_job_set_str(&j->message, cts_intake_row_msg(b, m));
        job_settle(j, CTS_ST_INVALID);
        return;
    }
    cts_job_set_state(j, CTS_JS_MAPPED);
    j->fp = m->fp;
    if (cts_state_seen_key(p->st, m->key, (uint32_t)(j->seq + 1), &first)) {
        cts_job_set_str(&j->message, cts_report_dup_message(
                                         cfg->inputs, p->file_seq, b->file_idx,
                                         first - 1ull, msg, sizeof(msg)));
        job_settle(j, CTS_ST_DUPLICATE);
        return;
    }
    /* Unsubscribed in the account: nothing is sent, nothing recorded. */
    if (p->opt_ready &&
        cts_optsync_row(p->optouts, m->key, m->c.opt_out, msg, sizeof(msg))) {
        cts_job_set_str(&j->message, msg);
        job_settle(j, CTS_ST_OPTED_OUT);
        return;
    }
    memset(&prev, 0, sizeof(prev));
    switch (cts_state_lookup_key(p->st, m->key, j->fp, &prev)) {
    case CTS_SV_UNCHANGED:
        cts_job_set_static_msg(j, "unchanged since the last run (--full "
                                  "sends it)");
        job_settle(j, CTS_ST_UNCHANGED);
        return;
    case CTS_SV_RESUMED:
        /* prev.message is the state's, valid until it closes. */
        cts_job_set_static_msg(j, prev.message != NULL
                                      ? prev.message
                                      : "settled by an interrupted run");
        job_settle(j, prev.status);
        return;
    case CTS_SV_FAILED_BEFORE:
        j->http_status = prev.http_status;
        cts_job_set_str(&j->error_key, prev.error_key);
        cts_job_set_str(&j->message, prev.message);
        job_settle(j, CTS_ST_FAILED);
        return;
    case CTS_SV_SEND_IN_DOUBT:
        /* A killed run had it in flight: treat as maybe stored, so a 409
         * on a create is our own contact, not a failure. */
        j->maybe_landed = 1;
        break;
    case CTS_SV_SEND: break;
    }
    if (!p->opt_ready) { /* not known who unsubscribed: send nothing */
        job_defer(j);
        return;
    }
    if (cfg->dry_run) {
        /* The mapper has validated the row against the API's limits; the
         * request body itself is not built (it would only be thrown away,
         * and it is most of a dry run's cost). */
        cts_job_set_static_msg(j, cts_protocol_dry_run(cfg, &j->c));
        job_settle(j, CTS_ST_DRY_RUN);
        return;
    }
    if (p->stop != CTS_STOP_NONE) {
        job_defer(j);
        return;
    }
    cts_job_own_contact(j);
    p->to_send++;
    if (p->bulk == NULL && !p->bulk_decided && cfg->bulk == CTS_BULK_AUTO)
        bulk_maybe_start(p);
    if (p->bulk != NULL && !j->c.opt_out) {
        /* cts_bulk builds its own rows: no per-contact body.  A bulk
         * import cannot unsubscribe: opt_out rows go per-contact. */
        bulk_take(p, j);
        return;
    }
    if (cts_protocol_prepare(&p->proto, j, &err) != 0) {
        cts_job_set_str(&j->message, err.msg);
        job_settle(j, CTS_ST_INVALID);
        return;
    }
    cts_job_set_state(j, CTS_JS_SENDING);
    j->sr.start = journal_begin;
    if (cts_protocol_start(&p->proto, j) != 0)
        job_defer(j);
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
    struct pipeline *p = arg;

    cts_send_pump(&p->send);
}

/* intake's full: backpressure, so memory stays bounded whatever the input's
 * size: above the high-water mark of
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
 * send engine: on bulk_q until their activity settles them (bulk.c
 * journals them itself, so j->journaled stays 0).  Rows of a killed run's
 * activity are adopted: their result is polled, not posted again.
 * --bulk auto switches to bulk as soon as the rows to send are expected to
 * exceed --bulk-threshold or the remaining daily quota (cts_bulk_choose);
 * see bulk_maybe_start for how "rows to send" is estimated.
 */

#define BULK_PIPE_ROWS 5000 /* rows per chunk here: bounds the jobs held */

static void bulk_on_result(void *arg, const struct cts_bulk_result *r)
{
    static const enum cts_stop stops[] = {
        [CTS_BULK_STOP_QUOTA] = CTS_STOP_QUOTA,
        [CTS_BULK_STOP_AUTH] = CTS_STOP_AUTH,
        [CTS_BULK_STOP_LATER] = CTS_STOP_LATER};
    struct pipeline *p = arg;
    struct cts_job *j;

    /* Results come mostly in input order: the search is short. */
    for (j = TAILQ_FIRST(&p->bulk_q); j != NULL; j = TAILQ_NEXT(j, link)) {
        if ((uint32_t)(j->seq + 1) == r->row)
            break;
    }
    if (j == NULL)
        return;
    TAILQ_REMOVE(&p->bulk_q, j, link);
    j->http_status = r->http_status;
    j->attempts = r->attempts;
    cts_job_set_str(&j->error_key, r->error_key);
    cts_job_set_str(&j->message, r->message);
    if (r->status == CTS_ST_DEFERRED && p->stop == CTS_STOP_NONE &&
        stops[cts_bulk_stopped(p->bulk)] != CTS_STOP_NONE)
        stop_sending(p, stops[cts_bulk_stopped(p->bulk)], "%s",
                     r->message != NULL ? r->message : "bulk stopped");
    job_settle(j, r->status);
}

static void bulk_take(struct pipeline *p, struct cts_job *j)
{
    struct cts_error err = {0};
    const char *id = NULL;
    uint32_t line = 0;
    uint32_t tag = (uint32_t)(j->seq + 1);
    int rc;

    cts_job_set_state(j, CTS_JS_BULK);
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
        cts_job_set_str(&j->message, err.msg);
        job_settle(j, CTS_ST_INVALID);
    }
}

static void bulk_start(struct pipeline *p)
{
    struct cts_bulk_params bp;

    memset(&bp, 0, sizeof(bp));
    bp.loop = &p->loop;
    bp.cfg = p->cfg;
    bp.send = &p->send;
    bp.state = p->st;
    bp.on_result = bulk_on_result;
    bp.arg = p;
    bp.max_rows = BULK_PIPE_ROWS;
    cts_bulk_new(&bp, &p->bulk, NULL);
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

/* The unsubscribed addresses are known (or cannot be): read the rows. */
static void on_optsync_done(void *arg, const struct cts_optsync_result *r)
{
    static const enum cts_stop stops[] = {[CTS_OPTSYNC_NONE] =
                                              CTS_STOP_UNREACHABLE,
                                          [CTS_OPTSYNC_AUTH] = CTS_STOP_AUTH,
                                          [CTS_OPTSYNC_QUOTA] = CTS_STOP_QUOTA,
                                          [CTS_OPTSYNC_LATER] = CTS_STOP_LATER};
    struct pipeline *p = arg;

    p->opt_ready = r->end == CTS_OPTSYNC_FRESH || r->end == CTS_OPTSYNC_STALE;
    if (!p->opt_ready && r->end != CTS_OPTSYNC_STOPPED)
        stop_sending(p, stops[r->end], "%s", r->msg);
    if (!cts_intake_finished(&p->in))
        cts_intake_start(&p->in);
}

/* ---- timers, signals, shutdown ---- */

static void on_tick(uv_timer_t *t)
{
    struct pipeline *p = t->data;

    if (p->show_progress) {
        uv_mutex_lock(&p->progress_mx);
        cts_progress_update(
            &p->progress, uv_now(&p->loop), (long)cts_report_written(p->report),
            p->expected_rows, p->send.requests, p->send.retries);
        uv_mutex_unlock(&p->progress_mx);
    }
    /* Journal records reach the kernel at once; fdatasync is batched here
     * (cts_state.h). */
    if (++p->ticks % FLUSH_EVERY == 0 && cts_state_flush(p->st) != 0)
        fatal(p, UV_EIO, CTS_EX_CANTCREAT, "cannot sync the state journal");
}

/* Remove whatever is still in flight: closing the engine runs their done
 * callbacks (aborted → deferred).  Never called from inside cts_http's
 * own callbacks: only from a timer. */
static void on_grace(uv_timer_t *t)
{
    struct pipeline *p = t->data;
    unsigned n;

    if (p->send_closing)
        return;
    n = cts_send_in_flight(&p->send);
    if (n > 0)
        cts_log_warn("abandoning %u request%s still in flight", n,
                     n == 1 ? "" : "s");
    p->send_closing = 1;
    cts_send_close(&p->send);
    maybe_finish(p);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct pipeline *p = h->data;
    uint64_t grace = (uint64_t)p->cfg->timeout_ms;

    p->signals++;
    if (p->signals == 1) {
        cts_log_warn("%s: reading stops; requests in flight finish, the "
                     "rows read are deferred (signal again to stop at once)",
                     signum == SIGINT ? "interrupted" : "terminated");
        stop_sending(p, CTS_STOP_SIGNAL,
                     "not sent: the run was interrupted (signal %d)", signum);
        /* Rows not read yet are never read (the input may never end);
         * every row read is still reported. */
        cts_intake_stop_reading(&p->in);
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
        uv_close((uv_handle_t *)&p->tick_timer, NULL);
        uv_close((uv_handle_t *)&p->grace_timer, NULL);
        cts_intake_close(&p->in);
        uv_close((uv_handle_t *)&p->sigint, NULL);
        uv_close((uv_handle_t *)&p->sigterm, NULL);
    }
    /* Style C6.7: nothing queued, in flight or backing off any more, so
     * closing the engine only cleans up (curl_multi_cleanup, header lists,
     * timers and socket polls). */
    if (p->send_inited && !p->send_closing) {
        p->send_closing = 1;
        cts_send_close(&p->send);
    }
    if (p->bulk != NULL) {
        /* Its requests came back when the engine closed above. */
        cts_bulk_close(p->bulk, NULL, NULL);
        p->bulk = NULL;
    }
    cts_mirror_close(p->mirror);
}

static void maybe_finish(struct pipeline *p)
{
    if (p->finishing || !cts_intake_finished(&p->in) || p->jobs.live > 0 ||
        !cts_mirror_start(p->mirror, p->next_seq,
                          p->stop == CTS_STOP_NONE && !p->fatal_rc &&
                              cts_intake_csv_error(&p->in) == NULL))
        return;
    p->finishing = 1;
    shutdown_handles(p);
}

/* cts_mirror's done: the removals after the rows are over. */
static void on_mirror_done(void *arg, int rc, int exit_code, const char *msg)
{
    if (rc != 0)
        fatal(arg, rc, exit_code, msg);
    maybe_finish(arg);
}

/* A fatal error aborts in-flight requests from the next loop turn (we may
 * be inside an http callback now). */
static void abort_soon(struct pipeline *p)
{
    if (p->handles_inited && !p->handles_closing && !p->send_closing)
        uv_timer_start(&p->grace_timer, on_grace, 0, 0);
}

int cts_pipeline_run(const struct cts_pipeline_params *pp,
                     struct cts_pipeline_outcome *out, struct cts_error *err)
{
    struct cts_config *cfg = pp->cfg;
    struct pipeline *p;
    struct cts_send_params sp;
    struct cts_intake_params ip;
    int rc;

    memset(out, 0, sizeof(*out));
    p = cts_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    p->report = pp->report;
    p->st = pp->state;
    p->expected_rows = pp->expected_rows;
    TAILQ_INIT(&p->bulk_q);
    cts_jobs_init(&p->jobs, p);
    if (cfg->concurrency < 1)
        cfg->concurrency = 1;
    /* The out-of-order window of the report is bounded by this mark. */
    p->high = 4 * (uint64_t)cfg->concurrency + 256;
    p->low = p->high / 2;
    p->file_seq = cts_xcalloc(cfg->ninputs + 1, sizeof(*p->file_seq));

    /* A private loop, not uv_default_loop(): the account check and OAuth
     * calls run their own loops, and this one must close to 0 at the end
     * (every handle closed: uv_loop_close() == 0) whatever they did. */
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
    /* One engine for every request of the run, its preflight included in
     * the first window.  One journal write per loop turn instead of two
     * per row (a begin and a done): the records wait in memory until
     * libcurl is about to send or a report block is about to be written
     * (cts_state.h). */
    memset(&sp, 0, sizeof(sp));
    sp.loop = &p->loop;
    sp.cfg = cfg;
    sp.state = p->st;
    sp.before_io = journal_push;
    sp.before_io_arg = p;
    sp.preflight = pp->preflight;
    sp.preflight_done_ms = pp->preflight_done_ms;
    rc = cts_send_init(&p->send, &sp, err);
    if (rc != 0)
        goto out;
    p->send_inited = 1;
    cts_state_journal_coalesce(p->st, 1);
    cts_report_set_before_write(p->report, journal_push, p);
    cts_protocol_init(&p->proto, cfg, pp->cf, &p->send, on_row_done, p);
    if (!cfg->dry_run && cfg->bulk == CTS_BULK_ALWAYS)
        bulk_start(p);
    p->mirror = cts_mirror_new(&p->loop, cfg, &p->send, p->st, p->report,
                               on_mirror_done, p);

    uv_timer_init(&p->loop, &p->tick_timer);
    uv_timer_init(&p->loop, &p->grace_timer);
    uv_signal_init(&p->loop, &p->sigint);
    uv_signal_init(&p->loop, &p->sigterm);
    p->tick_timer.data = p;
    p->grace_timer.data = p;
    p->sigint.data = p;
    p->sigterm.data = p;
    p->handles_inited = 1;
    uv_signal_start(&p->sigint, on_signal, SIGINT);
    uv_signal_start(&p->sigterm, on_signal, SIGTERM);

    p->show_progress = cfg->progress && !cfg->quiet;
    memset(&ip, 0, sizeof(ip));
    ip.loop = &p->loop;
    ip.cfg = cfg;
    ip.on_batch = on_batch;
    ip.on_error = on_intake_error;
    ip.on_settled = on_settled;
    ip.full = intake_full;
    ip.on_done = on_read_done;
    ip.arg = p;
    ip.rejects = pp->rejects;
    cts_intake_init(&p->in, &ip);
    p->intake_inited = 1;
    cts_progress_init(&p->progress, stderr, uv_now(&p->loop));
    if (p->show_progress)
        cts_log_set_hook(progress_clear_locked, p);
    uv_timer_start(&p->tick_timer, on_tick, TICK_MS, TICK_MS);

    /* No row is settled before the unsubscribed addresses are known. */
    p->optouts = cts_optouts_new();
    cts_optsync_start(&(struct cts_optsync_params){.cfg = cfg,
                                                   .send = &p->send,
                                                   .set = p->optouts,
                                                   .dir = cts_state_path(p->st),
                                                   .save = !cfg->dry_run,
                                                   .now = cts_config_now(cfg),
                                                   .done = on_optsync_done,
                                                   .arg = p});

    /* Everything happens in callbacks from here; uv_run returns once the
     * last handle is closed (shutdown_handles, from maybe_finish). */
    uv_run(&p->loop, UV_RUN_DEFAULT);

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
    if (p->send_inited && p->fatal_rc != 0) {
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
    out->stop = p->stop;
    /* Every request of the run, bulk POSTs and polls included. */
    out->requests = p->send.requests;
    out->retries = p->send.retries;
    out->throttled = p->send.throttled;
    out->csv_error = cts_intake_csv_error(&p->in) != NULL;
    out->encoding = cts_intake_encoding(&p->in);
    if (p->stop != CTS_STOP_NONE)
        snprintf(out->message, sizeof(out->message), "%s", p->stop_msg);
    else if (out->csv_error)
        snprintf(out->message, sizeof(out->message), "%s",
                 cts_intake_csv_error(&p->in));
    if (p->opt_dirty && !cfg->dry_run)
        cts_optsync_save(p->optouts, cts_state_path(p->st));
    cts_optouts_free(p->optouts);
    cts_protocol_free(&p->proto);
    free(p->file_seq);
    cts_jobs_free(&p->jobs);
    uv_mutex_destroy(&p->progress_mx);
    free(p);
    return rc;
}
