/*
 * cts_job.h — one data row's unit of work and its pool.
 *
 * A job is created for every data row the pipeline settles and lives until
 * its report line is written.  Its state only changes through
 * cts_job_set_state, which asserts the transition (curl's mstate):
 *
 *   READ → MAPPED → SENDING (cts_protocol: one request at a time through
 *                            the send engine, step after step)
 *                 → BULK    (a bulk activity carries it: cts_bulk)
 *        → DONE → REPORTED
 *
 * (READ/MAPPED → DONE for rows that are not sent: invalid, duplicate,
 * unchanged, dry-run, deferred.)  Where a request is — queued, in flight,
 * backing off — is the send engine's (cts_send.h).
 *
 * Freed jobs are kept for reuse (a row costs no malloc); a job whose
 * request ever needed a backoff timer is freed after that timer's close.
 * Not thread-safe: the loop thread only.
 */
#ifndef CTS_JOB_H
#define CTS_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "cts_config.h"
#include "cts_contact.h"
#include "cts_send.h"

enum cts_job_state {
    CTS_JS_READ = 0,
    CTS_JS_MAPPED,
    CTS_JS_SENDING,
    CTS_JS_BULK,
    CTS_JS_DONE,
    CTS_JS_REPORTED
};

struct cts_jobs;

struct cts_job {
    TAILQ_ENTRY(cts_job) link; /* the owner's list (bulk rows) */
    struct cts_jobs *pool;
    void *owner;      /* the pool's owner (cts_jobs_init) */
    uint64_t seq;     /* 0-based over the run: report order */
    long row;         /* 1-based data row in its file */
    const char *file; /* borrowed from cfg->inputs */
    enum cts_job_state state;
    struct cts_contact c; /* mapped; owned unless c_borrowed */
    int c_borrowed;       /* c's strings are intake's batch's: only while
                             the row settles synchronously */
    uint32_t fp;          /* fingerprint (cts_state) */
    int maybe_landed;     /* a create whose reply was lost may exist */
    int journaled;        /* cts_state_journal_begin done */
    int attempts;         /* HTTP requests made for this row */
    /* the request protocol's (protocol.c) */
    int step;     /* which request comes next */
    int reposted; /* the create was sent again after a 409 whose search
                     found no contact */
    char *body;   /* owned; the current step's body, the job's until the
                     request's done (libcurl's POSTFIELDS rule) */
    char *url;    /* owned; per-row URLs (v2 GET/PUT) */
    struct cts_send_req sr;
    /* result */
    enum cts_status status;
    int http_status;
    int permanent; /* failed with a permanent error */
    char *contact_id;
    char *error_key;
    char *message;         /* owned; wins over smsg */
    const char *smsg;      /* borrowed text that outlives the job (string
                              literals, the state's messages): most rows
                              of a dry or incremental run settle with one
                              of a few fixed texts, not worth a copy */
    struct cts_job *spare; /* link on the pool's spare list */
};

/* The pool: embeddable. */
struct cts_jobs {
    struct cts_job *spare; /* freed jobs kept for reuse (no timer) */
    unsigned nspare;
    long live; /* jobs allocated and not yet freed */
    void *owner;
};

void cts_jobs_init(struct cts_jobs *js, void *owner);
/* Free the spare jobs (live ones are the caller's to free first). */
void cts_jobs_free(struct cts_jobs *js);

/* A zeroed job in state READ for data row `row` of `file` (borrowed),
 * report position seq.  Never NULL (aborts on OOM). */
struct cts_job *cts_job_new(struct cts_jobs *js, uint64_t seq, const char *file,
                            long row);
/* Free what the job owns and the job (kept for reuse, or freed after its
 * request's timer has closed).  Its request must not be submitted. */
void cts_job_free(struct cts_job *j);

/* The one way a job's state changes; asserts the transition and logs it
 * at debug level. */
void cts_job_set_state(struct cts_job *j, enum cts_job_state to);

/* Replace *dst with a copy of src (NULL allowed). */
void cts_job_set_str(char **dst, const char *src);
/* The row's message is `text`, which outlives the job (see smsg). */
void cts_job_set_static_msg(struct cts_job *j, const char *text);
/* The row's message (owned or static), or NULL. */
const char *cts_job_message(const struct cts_job *j);

/* The job outlives intake's batch: give it an owned copy of its contact. */
void cts_job_own_contact(struct cts_job *j);

#endif /* CTS_JOB_H */
