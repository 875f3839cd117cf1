/*
 * cts_state.h — cron-grade sync state: the per key+account lock,
 * the crash-safe journal and resume, incremental-sync fingerprints, the
 * per-run email index (duplicate detection) and the daily request quota.
 *
 * Layout on disk (DIR = --state, created mode 0700):
 *   DIR/<api>-<h>/lock       flock'd for the whole run; holds "pid START"
 *   DIR/<api>-<h>/store      sorted binary (email key, fingerprint) records,
 *                            12 bytes per contact + 32-byte header; replaced
 *                            atomically (write tmp, fsync, rename, fsync dir)
 *   DIR/<api>-<h>/failed     permanent failures: key, http status, error
 *                            key and message (text; small), replaced the same
 * way DIR/<api>-<h>/journal    append-only records of the current/killed run
 *   DIR/quota-<k>            requests used today by this API key (shared by
 *                            every account that uses the key; flock'd)
 * where <h> = hex of sha256(api \0 api_key \0 account)[0..8] and
 * <k> = hex of sha256(api \0 api_key)[0..8]: the raw key never appears in a
 * path or a file.
 *
 * How the pipeline uses it, per run:
 *
 *   cts_state_open()                 lock (CTS_ELOCKED -> exit 75 at once),
 *                                    load store, replay a leftover journal
 *   cts_state_reserve(n)             optional: size the email index once
 *   for each mapped row:
 *     cts_state_seen()               1 -> `duplicate` of *first_row, stop
 *     fp = cts_state_fingerprint()
 *     switch (cts_state_lookup(fp)):
 *       UNCHANGED     -> report `unchanged`, no request
 *       RESUMED       -> report prev.status (created/updated/imported) with
 *                        prev.message, no request (the killed run did it)
 *       FAILED_BEFORE -> report `failed` with prev.http_status/error_key/
 *                        message, no request (same data failed permanently)
 *       SEND_IN_DOUBT -> send idempotently (v3 sign_up_form is; v2 POST ->
 *                        409 -> GET -> PUT is); the killed run had it in flight
 *       SEND          -> send
 *     before the first request of a row:   cts_state_journal_begin()
 *     before each request (retries too):   cts_state_quota_take(1)
 *                                          (CTS_EQUOTA -> defer the rest)
 *     server quota error:                  cts_state_quota_exhausted()
 *     when the row settles, BEFORE its report line is written:
 *                                          cts_state_journal_done()
 *   every ~200 ms (pipeline's uv timer):   cts_state_flush()
 *   at the end (also after SIGINT/quota/401 stops): cts_state_commit()
 *   cts_state_close()
 *
 * Resume semantics (documented in doc/cron.md):
 *  - Every journal record reaches the kernel (write(2)) before the call
 *    returns — or, when coalescing, before the request it announces can
 *    leave and before its row's report line is written (see
 *    cts_state_journal_coalesce) — so `kill -9` loses nothing that
 *    matters; fdatasync happens every 4096
 *    records and in cts_state_flush() (power loss loses at most that batch,
 *    whose rows are then re-sent idempotently).
 *  - Rows the killed run confirmed (journal `done` with created/updated/
 *    imported) are reported by the next run with their ORIGINAL status and
 *    the message "settled by an interrupted run", attempts 0, no request;
 *    their fingerprints are merged into the store at commit.  Rows that
 *    were begun but not confirmed are SEND_IN_DOUBT.  Rows matched by email
 *    key + fingerprint, not by row number, so reordering the file is fine.
 *  - Transient failures and deferred rows record no fingerprint: the next
 *    run sends them again.  Permanent failures (4xx other than 401/408/429)
 *    record a "failed fingerprint": the next run reports the row `failed`
 *    again with the previous error and sends nothing, until its data (or
 *    lists) change; --full re-sends them.
 *
 * Quota planning: the pipeline knows the rows to send only after the
 * fingerprint lookups.  Suggested: for regular files count lines first
 * (cheap, an upper bound, also good for cts_state_reserve), print
 * "plan: up to N requests; M left of today's quota" from
 * cts_state_quota_remaining(), and let cts_state_quota_take() stop the run
 * exactly when the quota runs out (the rest become `deferred`, exit 75).
 *
 * Not thread-safe; use from the loop thread only.  Nothing here blocks for
 * long except fdatasync and the store load/commit (sequential I/O).
 */
#ifndef CTS_STATE_H
#define CTS_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "cts_contact.h"
#include "cts_types.h"
#include "cts_util.h"

struct cts_state;

struct cts_state_params {
    const char *dir; /* --state DIR (borrowed); created 0700 if missing */
    enum cts_api api;
    const char *api_key; /* borrowed; only its hash is kept */
    /* The account as VERIFIED by the account check (v2 user_name, v3
     * encoded_account_id), so runs with and without --account share
     * state.  Borrowed; NULL is treated as "". */
    const char *account;
    long now;             /* cts_config_now(cfg): honours CTCT_SYNC_NOW */
    long daily_quota;     /* cfg->daily_quota; <= 0 = unlimited */
    size_t expected_rows; /* sizing hint for the email index; 0 = unknown */
    /* --dry-run: no lock, nothing created or written; the store and a
     * leftover journal are read (so `unchanged` is predicted right), the
     * quota is read but never taken.  A missing DIR is an empty state. */
    int dry_run;
    int full; /* --full: lookup never says UNCHANGED/FAILED_BEFORE */
};

/*
 * Open (and lock) the state.  On success *out is an owned object to pass to
 * cts_state_close().  Errors:
 *   CTS_ELOCKED  another run holds the lock; err->msg names its pid and
 *                start time, err->exit_code = 75.  Never waits.
 *   negative errno (UV_EACCES, ...) the directory or a file cannot be
 *                created/read; err->exit_code = 73.
 * A stale lock of a dead process never blocks (flock is released by the
 * kernel).  A torn or corrupt journal tail is ignored (and truncated away
 * unless dry_run); a corrupt store is an error (CTS_EDATA, exit 73) rather
 * than a silent full resend.
 */
int cts_state_open(const struct cts_state_params *p, struct cts_state **out,
                   struct cts_error *err);

/* Release the lock and free everything (NULL-safe).  Does NOT commit: a run
 * that is closed without cts_state_commit() leaves its journal behind and
 * is resumed like a killed run. */
void cts_state_close(struct cts_state *st);

/* The per key+account directory (borrowed; valid until close). */
const char *cts_state_path(const struct cts_state *st);

/* Size the email index for a run of `rows` emails: max(known, rows) plus
 * 1/8 of min(known, rows) for new ones (a nightly file is mostly the
 * emails the store knows).
 * Beyond that the index grows by 1.5x, and a growth step briefly holds the
 * old and the new table.  cts_state_params.expected_rows does the same at
 * open, before the store is loaded. */
void cts_state_reserve(struct cts_state *st, size_t rows);

/* ---- email index and duplicates ---- */

/* The 56-bit key an email is known by (hash of the normalised email). */
uint64_t cts_state_email_key(const char *email);

/*
 * Mark `email` (normalised, borrowed) as seen in this run at `row` (an
 * opaque non-zero tag chosen by the pipeline, e.g. the 1-based row number
 * or (file index << 24 | row)).  Returns 1 and sets *first_row (may be
 * NULL) when the email was already seen earlier in this run (the row is a
 * `duplicate`), 0 when it is new.
 *
 * Memory: open addressing, 16 bytes a slot (56-bit email key + 8 flag bits,
 * 32-bit fingerprint, 32-bit row), load factor <= 0.85; emails known from
 * the store share the table: 18.8 bytes an email at full load, and a
 * reserve for one million (1.125 M with slack) is 21.2 MB.  Two different
 * emails with the same 56-bit key (probability ~ n^2 / 2^57: 7e-6 at one
 * million) would be treated as the same email: the second reported `duplicate`.
 */
int cts_state_seen(struct cts_state *st, const char *email, uint32_t row,
                   uint32_t *first_row);
/* The same for an email known by its key (cts_state_email_key), so that a
 * row hashes its email once for seen, lookup and the journal. */
int cts_state_seen_key(struct cts_state *st, uint64_t key, uint32_t row,
                       uint32_t *first_row);
/* A hint, no effect on results: the index slot of key will be needed soon
 * (cts_state_seen_key), start loading it into the cache now.  The table is
 * much larger than the caches and every new email lands on a random slot,
 * so overlapping that miss with other work of the row pays. */
void cts_state_prefetch(const struct cts_state *st, uint64_t key);

/* ---- fingerprints and incremental sync ---- */

/*
 * 32-bit fingerprint of what would be sent for a contact: every field in
 * enum cts_field order (absent and empty distinguished), custom fields
 * sorted by name, and the list ids sorted.  contact and lists borrowed.
 * A change goes unnoticed with probability 2^-32 per changed row.
 */
uint32_t cts_state_fingerprint(const struct cts_contact *c, char *const *lists,
                               size_t nlists);

enum cts_state_verdict {
    CTS_SV_SEND = 0,      /* new or changed: send */
    CTS_SV_SEND_IN_DOUBT, /* a killed run had it in flight: send idempotently */
    CTS_SV_UNCHANGED,     /* last confirmed send had the same fingerprint */
    CTS_SV_RESUMED,       /* confirmed by the killed run (journal) */
    CTS_SV_FAILED_BEFORE  /* same data failed permanently before */
};

/* What to report for RESUMED / FAILED_BEFORE.  Strings borrowed from st,
 * valid until close; NULL when unknown. */
struct cts_state_prev {
    enum cts_status status; /* RESUMED: created/updated/imported; else failed */
    int http_status;        /* FAILED_BEFORE: the status of the failure */
    const char *error_key;
    const char *message;
};

/* Decide what to do with a row whose email is `email` and fingerprint fp.
 * prev may be NULL. */
enum cts_state_verdict cts_state_lookup(struct cts_state *st, const char *email,
                                        uint32_t fp,
                                        struct cts_state_prev *prev);
/* The same for an email known by its key (cts_state_email_key). */
enum cts_state_verdict cts_state_lookup_key(struct cts_state *st, uint64_t key,
                                            uint32_t fp,
                                            struct cts_state_prev *prev);
/* Shorthands: lookup(...) == UNCHANGED, lookup(...) == SEND_IN_DOUBT. */
int cts_state_unchanged(struct cts_state *st, const char *email, uint32_t fp);
int cts_state_in_doubt(struct cts_state *st, const char *email);

/* ---- journal ---- */

/*
 * Record the intent to send row `row` (email, fp) — call before its first
 * request leaves.  0 or a negative errno (the run should stop: without a
 * journal it is not crash-safe).  No-op in dry-run.
 */
int cts_state_journal_begin(struct cts_state *st, const char *email,
                            uint32_t row, uint32_t fp);

/*
 * Record how a row settled, before its report line is written.  status:
 *   created/updated/imported  -> fingerprint confirmed (not sent again);
 *   unchanged/unsubscribed    -> the same (the account already held the
 *                                row, or the row's opt-out is done); after
 *                                a kill they read unchanged, not resumed;
 *   failed with permanent=1   -> failed fingerprint + http_status,
 *                                error_key, message (borrowed, copied);
 *   anything else (failed transient, deferred, exists, ...) -> nothing is
 *                                remembered; the next run tries again.
 * 0 or a negative errno.  No-op in dry-run.
 */
int cts_state_journal_done(struct cts_state *st, const char *email,
                           uint32_t row, uint32_t fp, enum cts_status status,
                           int permanent, int http_status,
                           const char *error_key, const char *message);

/* The same, for a row known by its email key (cts_state_email_key). */
int cts_state_journal_done_key(struct cts_state *st, uint64_t key, uint32_t row,
                               uint32_t fp, enum cts_status status,
                               int permanent, int http_status,
                               const char *error_key, const char *message);

/*
 * Coalescing (on=1): journal records are kept in memory and written in
 * one write(2) by cts_state_journal_push(), at the latest when 64 KiB are
 * pending.  The caller then owns the ordering rules that one write per
 * record gave for free: push before any request can leave (a `begin` must
 * be in the kernel before its request is on the wire) and before any
 * report byte reaches the kernel (a row's `done` before its report line).
 * The pipeline does both through cts_http's and cts_report's hooks.
 * on=0 pushes what is pending and goes back to one write per record.
 */
void cts_state_journal_coalesce(struct cts_state *st, int on);

/* Write the pending journal records (one write(2)).  0, or the negative
 * errno of the failed write; after a failure every push fails (part of a
 * record may be on disk, and nothing may follow a torn record). */
int cts_state_journal_push(struct cts_state *st);

/* fdatasync the journal if records were written since the last sync
 * (pending coalesced records are pushed first).
 * Call from a ~200 ms timer; cheap when nothing changed. */
int cts_state_flush(struct cts_state *st);

/*
 * End of run: merge the fingerprints into the store and the failures into
 * the failed file (each: write tmp, fsync, rename, fsync dir), then remove
 * the journal.  Call also when the run stopped early (quota, SIGINT, 401):
 * confirmed rows stay confirmed.  After commit only cts_state_close() and
 * the quota functions may be called (the email index is consumed by the
 * in-place sort).  No-op in dry-run.  0 or negative errno (err filled).
 */
int cts_state_commit(struct cts_state *st, struct cts_error *err);

/* ---- daily quota (per API key per UTC day, across runs and accounts) ---- */

/* Count n requests against today's quota (now = st's clock).  0, or
 * CTS_EQUOTA when fewer than n remain (nothing counted).  Always 0 when the
 * quota is unlimited or in dry-run. */
int cts_state_quota_take(struct cts_state *st, long n);
/* Requests left today (LONG_MAX when unlimited). */
long cts_state_quota_remaining(struct cts_state *st);
/* Give back n requests taken with cts_state_quota_take but never made
 * (a caller that takes blocks returns the unused rest at the end).  Same
 * UTC day only; never below 0. */
void cts_state_quota_release(struct cts_state *st, long n);
/* The server said the daily quota is spent: remember it for today. */
void cts_state_quota_exhausted(struct cts_state *st);
/* Change the clock (tests, and a run that crosses midnight UTC). */
void cts_state_set_now(struct cts_state *st, long now);

/* ---- bulk activities (used by bulk.c) ---- */

/* A chunk serial unique within this state's journal (survives resumes). */
uint32_t cts_state_bulk_serial(struct cts_state *st);
/*
 * Journal row `row` (email borrowed, fp) as line `line` (1-based position
 * in import_data) of bulk chunk `serial`, before the chunk is posted.  It
 * makes the row in doubt like cts_state_journal_begin.  Settle it with
 * cts_state_journal_done.  0 or negative errno; no-op in dry-run.
 */
int cts_state_bulk_begin(struct cts_state *st, const char *email, uint32_t row,
                         uint32_t fp, uint32_t serial, uint32_t line);
/* The server accepted chunk `serial` as activity `activity_id` (borrowed):
 * a resumed run polls it instead of posting the rows again. */
int cts_state_bulk_started(struct cts_state *st, uint32_t serial,
                           const char *activity_id);
/*
 * 1 when `email` with fingerprint fp was in an activity that a killed run
 * started and did not settle: *activity_id (borrowed from st, valid until
 * close) and *line (its line in that activity) say where to find its
 * result.  0 otherwise.  (Such a row's lookup verdict is SEND_IN_DOUBT;
 * without bulk it may simply be sent again: imports are upserts.)
 */
int cts_state_bulk_pending(struct cts_state *st, const char *email, uint32_t fp,
                           const char **activity_id, uint32_t *line);

/* ---- --mirror: the run's input and journalled removals (state_mirror.c) */

/* 1 when an email with this key (cts_state_email_key) was seen in this
 * run (cts_state_seen_key), 0 otherwise.  Valid until commit. */
int cts_state_in_run(const struct cts_state *st, uint64_t key);

/* A new removal serial, unique within this state's journal (survives
 * resumes; never 0). */
uint32_t cts_state_mirror_serial(struct cts_state *st);
/*
 * Journal a list member about to be taken off list_id by removal
 * `serial`, before the removal is posted (email normalised; contact_id
 * may be NULL; all borrowed).  Coalesced like a row's begin: pushed before
 * the request leaves.  0 or a negative errno; no-op in dry-run.
 */
int cts_state_mirror_begin(struct cts_state *st, uint32_t serial,
                           const char *list_id, const char *email,
                           const char *contact_id);
/* The server accepted removal `serial` as activity_id (borrowed). */
int cts_state_mirror_started(struct cts_state *st, uint32_t serial,
                             const char *activity_id);
/* Removal `serial` ended: status removed, failed or deferred. */
int cts_state_mirror_ended(struct cts_state *st, uint32_t serial,
                           enum cts_status status);

/* A member that a killed run journalled for removal (strings borrowed
 * from st, valid until close). */
struct cts_state_removal {
    const char *list_id;
    const char *email;
    const char *contact_id;  /* NULL when unknown */
    const char *activity_id; /* NULL: never accepted (the POST may or may
                                not have landed) */
    uint64_t key;            /* cts_state_email_key(email) */
    uint32_t serial;
    int ended; /* the removal ended, with status */
    enum cts_status status;
};
/* How many members the replayed journal holds, and the i-th (journal
 * order). */
size_t cts_state_mirror_count(const struct cts_state *st);
void cts_state_mirror_get(const struct cts_state *st, size_t i,
                          struct cts_state_removal *out);

/* ---- figures for logs and the summary ---- */
struct cts_state_stats {
    size_t known;           /* emails with a stored fingerprint */
    size_t resumed;         /* rows confirmed by a killed run (journal) */
    size_t in_doubt;        /* rows a killed run had in flight */
    size_t journal_records; /* replayed from a leftover journal */
    size_t index_bytes;     /* memory of the email index */
};
void cts_state_get_stats(const struct cts_state *st,
                         struct cts_state_stats *out);

#endif /* CTS_STATE_H */
