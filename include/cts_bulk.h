/*
 * cts_bulk.h — bulk imports: v3 POST
 * /activities/contacts_json_import, v2 POST /activities/addcontacts, polled
 * with GET /activities/{id} every
 * --poll-interval on a uv timer, errors mapped back to rows, every step
 * journalled through cts_state so a resumed run polls the activity it
 * already started instead of posting the rows again.
 *
 * How the pipeline uses it (one struct cts_bulk_run per run, on its loop):
 *
 *   cts_bulk_new()                       when cts_bulk_choose() says so
 *   per row to send (verdict SEND / SEND_IN_DOUBT):
 *     if cts_state_bulk_pending(st, email, fp, &id, &line):
 *         cts_bulk_adopt(b, row, email, fp, id, line)   (killed run's activity)
 *     else
 *         cts_bulk_add(b, row, contact, fp)             (copied; CTS_EDATA ->
 *                                                        report the row
 * invalid) end of input:                        cts_bulk_flush() on_result(row,
 * status, ...)          exactly once per row handed in: imported  — in a
 * completed activity without an error; failed    — the activity named the row
 * (permanent: the state keeps a failed fingerprint), or the server refused
 * the chunk or the activity ended failed (not permanent: the next run sends
 * it again); deferred  — quota, 401, the POST's or the polls' retries used
 * up on transient failures, throttled without progress, or cts_bulk_stop()
 * before the row settled (the next run sends it again, or polls the
 * activity that accepted it). when cts_bulk_outstanding() == 0
 * (on_idle runs then): cts_bulk_close()
 *
 * The bulk module journals its rows itself (cts_state_bulk_begin /
 * bulk_started / journal_done): the pipeline must not journal them.  Every
 * POST and poll goes through the run's send engine (cts_send.h), so it
 * passes the same rate limiter, arrival gate, daily quota, retry rules and
 * journal hook as every other request; a POST's transient failures are
 * retried there, a failed poll is repeated at the poll interval.  Chunks
 * are posted one at a time; bodies come from cts_api_bulk_item/_tail.
 *
 * Chunks: at most max_rows contacts (40,000) and a body under max_bytes
 * (4,000,000 bytes: the API drops what lies beyond 4 MB).  Memory: the
 * chunk being filled holds its JSON body (< 4 MB, freed once the server
 * accepted it) and 24 bytes per row until the row is reported.
 *
 * Callbacks (on_result, on_idle) never run synchronously from the calls
 * below; they run from the loop.  Not thread-safe.
 */
#ifndef CTS_BULK_H
#define CTS_BULK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cts_config.h"
#include "cts_contact.h"
#include "cts_util.h"

struct cts_bulk_run;
struct cts_send;
struct cts_state;

/* One row's outcome.  Strings borrowed for the duration of the call. */
struct cts_bulk_result {
    uint32_t row;            /* the tag given to add/adopt */
    enum cts_status status;  /* imported, failed or deferred */
    int http_status;         /* last HTTP status of the row's activity */
    int attempts;            /* requests that carried this row (POSTs) */
    const char *activity_id; /* may be NULL (never accepted) */
    const char *error_key;   /* may be NULL */
    const char *message;     /* may be NULL */
};

typedef void (*cts_bulk_result_cb)(void *arg, const struct cts_bulk_result *r);
/* Every row handed in so far is reported (after flush: the work is done). */
typedef void (*cts_bulk_idle_cb)(void *arg);

enum cts_bulk_stop {
    CTS_BULK_STOP_NONE = 0,
    CTS_BULK_STOP_QUOTA, /* daily quota (local count or server): exit 75 */
    CTS_BULK_STOP_AUTH,  /* 401: exit 77 */
    CTS_BULK_STOP_USER,  /* cts_bulk_stop() */
    CTS_BULK_STOP_LATER  /* throttled without progress: exit 75 */
};

struct cts_bulk_params {
    uv_loop_t *loop; /* borrowed: the poll timers */
    /* Borrowed for the object's life: api, base_url, api_key, lists,
     * poll_interval_s, retries. */
    const struct cts_config *cfg;
    struct cts_send *send;        /* borrowed, required: every request */
    struct cts_state *state;      /* borrowed: journal */
    cts_bulk_result_cb on_result; /* required */
    cts_bulk_idle_cb on_idle;     /* may be NULL */
    void *arg;
    size_t max_rows;  /* 0 = 40000 */
    size_t max_bytes; /* 0 = 4000000 */
    uint64_t poll_ms; /* 0 = cfg->poll_interval_s * 1000 */
};

/*
 * --bulk auto|never|always: 1 when `rows_to_send` rows should go through
 * bulk: always; auto when they exceed cfg->bulk_threshold or the requests
 * left today (`quota_remaining`, LONG_MAX when unlimited).
 */
int cts_bulk_choose(const struct cts_config *cfg, long rows_to_send,
                    long quota_remaining);

/* Create the bulk sender.  *out owned; close with cts_bulk_close.
 * Returns 0 (err unused; allocation failures abort). */
int cts_bulk_new(const struct cts_bulk_params *p, struct cts_bulk_run **out,
                 struct cts_error *err);

/*
 * Queue a contact (borrowed; what is needed is copied into the chunk's
 * body).  A full chunk is posted.  Returns 0; CTS_EDATA (err filled, the
 * row was not taken) when the contact alone exceeds max_bytes or cannot be
 * expressed; UV_ECANCELED after a stop (the row was not taken: report it
 * deferred yourself).
 */
int cts_bulk_add(struct cts_bulk_run *b, uint32_t row,
                 const struct cts_contact *c, uint32_t fp,
                 struct cts_error *err);

/* A row of a killed run's activity (from cts_state_bulk_pending): its
 * result is read from that activity (polled until done).  email and
 * activity_id borrowed.  0 or UV_ECANCELED as above. */
int cts_bulk_adopt(struct cts_bulk_run *b, uint32_t row, const char *email,
                   uint32_t fp, const char *activity_id, uint32_t line);

/* End of input: post the partly filled chunk. */
void cts_bulk_flush(struct cts_bulk_run *b);
/* Post the partly filled chunk now, more input may follow (the pipeline's
 * backpressure paused reading: the chunk would otherwise never fill). */
void cts_bulk_seal(struct cts_bulk_run *b);

/* Stop: unposted rows become deferred (journal_done), rows of running
 * activities become deferred in this report but stay journalled, so the
 * next run polls their activity.  Results are delivered from the loop. */
void cts_bulk_stop(struct cts_bulk_run *b);

/* Rows handed in and not yet reported. */
size_t cts_bulk_outstanding(const struct cts_bulk_run *b);
/* Why sending stopped (CTS_BULK_STOP_NONE if it did not). */
enum cts_bulk_stop cts_bulk_stopped(const struct cts_bulk_run *b);

struct cts_bulk_stats {
    long requests;   /* POSTs and polls submitted to the send engine */
    long retries;    /* POST tries after the first (the engine's retries) */
    long activities; /* accepted by the server */
    long imported, failed, deferred;
};
void cts_bulk_get_stats(const struct cts_bulk_run *b,
                        struct cts_bulk_stats *out);

/*
 * Close: stops (as cts_bulk_stop, but rows still outstanding are NOT
 * reported: call it when outstanding is 0, or accept that), withdraws its
 * requests still waiting in the send engine and closes the timers;
 * `closed` runs from the loop when every handle is closed and every
 * request in flight has come back (close the engine to abort those),
 * after which b is freed.  b must not be used after this call.
 */
void cts_bulk_close(struct cts_bulk_run *b, void (*closed)(void *arg),
                    void *arg);

#endif /* CTS_BULK_H */
