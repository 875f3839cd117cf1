/*
 * state_int.h — internal to the state files (not a public contract): the
 * struct behind cts_state.h, the slot flags, the on-disk record formats
 * and the functions the files call in each other.
 *
 *   state.c          open/close, commit (the order of the writes), stats
 *   state_lock.c     the per key+account flock
 *   state_journal.c  journal records: write, coalesce, sync, replay
 *   state_store.c    the store and failed files: load, write; failures
 *   state_index.c    email keys, duplicates, fingerprints, lookups
 *   state_quota.c    the per-key daily quota file
 *   state_bulk.c     bulk chunks and activities in the journal
 *   state_mirror.c   --mirror removals in the journal, the run's input set
 *
 * All of them sit on cts_fsio.h for file I/O.
 */
#ifndef CTS_STATE_INT_H
#define CTS_STATE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cts_fsio.h"
#include "cts_state.h"
#include "cts_util.h"
#include "emailidx.h"

/* Slot flags (low 8 bits of kf).  CONF and FAIL are persisted in the
 * store; the others live for one run. */
#define F_CONF      0x01u /* fp = fingerprint of the last confirmed send */
#define F_FAIL      0x02u /* fp = fingerprint of a permanent failure */
#define F_DOUBT     0x04u /* a killed run began it without settling it */
#define F_RES_SHIFT 3     /* 2 bits: status confirmed by the killed run */
#define F_RES_MASK  (3u << F_RES_SHIFT)
#define F_BULK      0x20u /* the killed run's last record: part of a bulk chunk */
#define F_PERSIST   (F_CONF | F_FAIL)

/* ---- on-disk formats (native byte order: the state is machine-local) ---- */

#define STORE_MAGIC "CTSSTOR1"
struct store_hdr {
    char magic[8];
    uint64_t count;
    uint64_t run_id; /* the run whose commit wrote this file */
    uint64_t check;  /* hash64 of the records */
};
#define STORE_REC 12 /* uint64 kf (persisted flags only) + uint32 fp */

#define J_MAGIC 0x314a5443u /* "CTJ1" */
enum {
    J_OPEN = 1,
    J_BEGIN = 2,
    J_DONE = 3,
    J_BULK_BEGIN = 4,
    J_BULK_START = 5,
    J_MIRROR_BEGIN = 6,
    J_MIRROR_START = 7,
    J_MIRROR_END = 8
};
/* J_BULK_BEGIN: like BEGIN, http = chunk serial, payload = uint32 line of
 * the row in the chunk.  J_BULK_START: key = serial, payload = the
 * activity id the server returned.
 * J_MIRROR_BEGIN: a list member about to be removed: key = email key,
 * http = removal serial, payload = "list id\0email\0contact id".
 * J_MIRROR_START: key = serial, payload = the activity id.
 * J_MIRROR_END: key = serial, http = how it ended (enum cts_status). */
struct jrec {
    uint32_t magic;
    uint8_t type;
    uint8_t status; /* DONE: enum cts_status; bit 7 = permanent failure */
    uint16_t len;   /* payload bytes that follow */
    uint32_t row;
    uint32_t fp;
    uint64_t key; /* email key; OPEN: the run id */
    int32_t http;
    uint32_t check; /* hash of the record with check = 0, then payload */
};
#define J_PERMANENT 0x80u
struct failure {
    uint64_t key;
    uint32_t seq; /* load/replay order: the latest entry for a key wins */
    int http;
    char *error_key; /* owned, may be NULL */
    char *message;   /* owned, may be NULL */
};

/* Bulk rows of a killed run whose activity had started (replay). */
struct bulk_pending {
    uint64_t key;
    uint32_t fp;
    uint32_t serial;
    uint32_t line;
    uint32_t seq;
};
struct bulk_activity {
    uint32_t serial;
    char *id; /* owned */
};

/* --mirror removals of a killed run (replay, state_mirror.c). */
struct mirror_member {
    uint64_t key;
    uint32_t serial;
    char *list_id, *email, *contact_id; /* owned */
};
struct mirror_removal {
    uint32_t serial;
    char *activity_id; /* owned; NULL until started */
    int ended;         /* enum cts_status + 1; 0 = not ended */
};

struct cts_state {
    int dry_run, full;
    long now;
    long daily_quota;
    char *dir;   /* DIR/<api>-<h> */
    char *qpath; /* DIR/quota-<k> */
    int lock_fd; /* -1 in dry-run */
    int jfd;     /* journal, O_APPEND; -1 in dry-run */
    int qfd;     /* quota file; -1 if absent in dry-run */
    unsigned unsynced;
    uint64_t run_id;
    int committed;
    struct cts_emailidx ix;
    struct failure *fails;
    size_t nfails, capfails, sorted_fails;
    uint32_t fail_seq;
    struct cts_state_stats stats;
    struct cts_buf jbuf;
    /* Coalesced journal (cts_state_journal_coalesce): whole records not yet
     * written, how many, and a sticky write error. */
    struct cts_buf jout;
    unsigned jout_n;
    int coalesce, jerr;
    struct bulk_pending *bp;
    size_t nbp, capbp;
    struct bulk_activity *ba;
    size_t nba;
    uint32_t next_serial;
    int had_bulk; /* bulk records were replayed or written */
    struct mirror_member *mm;
    size_t nmm, capmm;
    struct mirror_removal *mr;
    size_t nmr;
    uint32_t mirror_serial; /* the last serial used */
};

/* ---- state_lock.c ---- */

/* Take DIR/lock (st->dir) without waiting; sets st->lock_fd.  0,
 * CTS_ELOCKED (err names the holder, exit 75) or a negative errno. */
int cts_state_lock_take(struct cts_state *st, struct cts_error *err);

/* ---- state_store.c ---- */

/* Start replacing DIR/name (cts_afile_open; fixed temp name: the lock
 * makes this run the only writer). */
int cts_state_afile_open(struct cts_afile *af, const char *dir,
                         const char *name);
/* Load the store at path into st->ix; *run_id = the run that wrote it (0
 * when absent).  0, or CTS_EDATA / a negative errno with err filled. */
int cts_state_store_load(struct cts_state *st, const char *path,
                         uint64_t *run_id, struct cts_error *err);
/* Write the store from st->ix (sorted in place: the index is consumed).
 * 0 or a negative errno. */
int cts_state_store_write(struct cts_state *st);
/* Load / write the failed file (DIR/failed).  0 or a negative errno. */
int cts_state_failed_load(struct cts_state *st, const char *path);
int cts_state_failed_write(struct cts_state *st);
/* Remember a permanent failure of key (strings borrowed, copied). */
void cts_state_fail_add(struct cts_state *st, uint64_t key, int http,
                        const char *ekey, const char *msg);
/* Sort the failures so cts_state_fail_find sees every one. */
void cts_state_fails_sort(struct cts_state *st);
/* The latest failure recorded for key among the sorted ones, or NULL. */
const struct failure *cts_state_fail_find(const struct cts_state *st,
                                          uint64_t key);
void cts_state_fails_free(struct cts_state *st);

/* ---- state_journal.c ---- */

/* Append a record whose payload is len bytes of payload (borrowed, capped
 * at 1000; may be NULL when len is 0).  Written at once, or kept for
 * cts_state_journal_push when coalescing a per-row record.  0 or a
 * negative errno. */
int cts_state_jwrite(struct cts_state *st, uint8_t type, uint64_t key,
                     uint32_t row, uint32_t fp, int http, const void *payload,
                     size_t len);
/* The check value of record r with its payload. */
uint32_t cts_state_jcheck(const struct jrec *r, const char *payload);
/* Read the next valid record from fd into r and payload (65537 bytes);
 * 0 at the end of the valid part (EOF, torn or corrupt record), 1 when a
 * record was read. */
int cts_state_jnext(int fd, struct jrec *r, char *payload);
/* Replay the journal at path into st (see state_journal.c).  *valid_end
 * gets the offset to truncate to, or -1 when the store already holds the
 * journal.  0 or a negative errno. */
int cts_state_journal_replay(struct cts_state *st, const char *path,
                             uint64_t store_run, off_t *valid_end);

/* ---- state_quota.c ---- */

/* Open st->qpath (created unless dry-run; a missing file is fine in
 * dry-run).  0, or a negative errno with err filled. */
int cts_state_quota_open(struct cts_state *st, struct cts_error *err);

/* ---- state_bulk.c ---- */

/* Replay a J_BULK_BEGIN / J_BULK_START record. */
void cts_state_bulk_replay_begin(struct cts_state *st, const struct jrec *r,
                                 const char *payload);
void cts_state_bulk_replay_start(struct cts_state *st, const struct jrec *r,
                                 const char *payload);
/* After the replay: keep the rows whose activity is still open. */
void cts_state_bulk_replay_end(struct cts_state *st);
/* At commit: the journal records of the bulk activities still open, to
 * keep in a fresh journal (empty when none).  0 or a negative errno. */
int cts_state_bulk_collect(struct cts_state *st, struct cts_buf *carry);
/* Replace the journal by one holding only carry.  0 or a negative errno. */
int cts_state_bulk_keep(struct cts_state *st, const struct cts_buf *carry);
void cts_state_bulk_free(struct cts_state *st);

/* ---- state_mirror.c ---- */

/* Replay a J_MIRROR_* record. */
void cts_state_mirror_replay(struct cts_state *st, const struct jrec *r,
                             const char *payload);
void cts_state_mirror_free(struct cts_state *st);
/* 1 when removal `serial` has an activity that has not ended: its
 * records are kept at commit (cts_state_bulk_collect). */
int cts_state_mirror_open(const struct cts_state *st, uint32_t serial);

#endif /* CTS_STATE_INT_H */
