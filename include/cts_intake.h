/*
 * cts_intake.h — reading an import's input: files → cts_reader (libcsv) →
 * cts_mapper → batches of mapped rows, on a helper thread, handed to the
 * owner on the loop thread in input order.
 *
 * One work item at a time reads and parses up to a batch of rows on the
 * intake thread (reader, mapper, email key and fingerprint are pure), while
 * the loop settles the batch before it: two batches alternate.  The owner
 * sees each batch through on_batch, on the loop thread; it never touches
 * the reader, the mapper or the file, and intake never calls anything of
 * the owner's but the callbacks below.  If the thread cannot be created
 * the same steps run on the loop thread (each batch handed over from its
 * own loop turn).
 *
 * Per batch, in this order (all on the loop thread, never synchronously
 * from the cts_intake_* call that caused them, except cts_intake_start's
 * and the stops' on_error/on_done):
 *
 *   on_batch(b)      the rows (and the file's header, b->header): settle them
 *   on_error(...)    the batch ended in an error: reading stops
 *   on_settled()     the batch is handled: start what it queued
 *   full()           not at the end of a file: nonzero holds reading until
 *                    cts_intake_resume (backpressure)
 *   on_done()        once, when reading is over (every file read, an
 *                    error, cts_intake_stop or cts_intake_stop_reading)
 *
 * Lifetime (libuv): cts_intake_init on caller storage, cts_intake_start,
 * ... , cts_intake_close once reading is over and nothing is busy; the
 * storage must stay valid until the loop has run the handles' closes.
 * Not thread-safe: every call from the loop thread.
 */
#ifndef CTS_INTAKE_H
#define CTS_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cts_config.h"
#include "cts_contact.h"
#include "cts_util.h"

struct cts_mapper;
struct cts_reader;
struct cts_rejects;
struct cts_intake_ablock; /* arena block, private to intake.c */

/* One mapped data row.  c's strings live in the batch's arena: valid while
 * on_batch runs; copy what outlives it (cts_contact_copy). */
struct cts_intake_row {
    long row;             /* 1-based data row in its file */
    int invalid;          /* the mapper refused it: cts_intake_row_msg */
    size_t msg;           /* offset of that message in the batch's msgs */
    uint64_t key;         /* cts_state_email_key (valid rows) */
    uint32_t fp;          /* cts_state_fingerprint (valid rows) */
    struct cts_contact c; /* not owned */
};

struct cts_intake_batch {
    /* ---- for the owner, during on_batch ---- */
    size_t file_idx;       /* the rows' file: cfg->inputs[file_idx] */
    int header;            /* the file's header row was read: see first */
    int header_rc;         /* 0, or the mapper refused the header, and */
    struct cts_error herr; /*   why (file name included); no rows then */
    const struct cts_mapper *mapper; /* the file's mapping (header_rc 0) */
    struct cts_intake_row *rows;     /* in input order */
    size_t n;
    struct cts_buf msgs; /* NUL-terminated messages of invalid rows */

    /* ---- private to intake.c ---- */
    size_t cap;
    int eof;                                /* read(2) said end of file */
    int rerr;                               /* read(2) failed: -errno */
    int rc;                                 /* cts_reader_feed's result */
    struct cts_error err;                   /* its message */
    struct cts_intake_ablock *ahead, *acur; /* string arena */
};

/* The refusal message of an invalid row (borrowed from the batch). */
static inline const char *cts_intake_row_msg(const struct cts_intake_batch *b,
                                             const struct cts_intake_row *m)
{
    return b->msgs.data + m->msg;
}

struct cts_intake_params {
    uv_loop_t *loop; /* borrowed */
    /* Borrowed for the object's life, read-only (also from the intake
     * thread): inputs, ninputs, delimiter, encoding, api, maps, lists
     * (fingerprints), dry_run (batch size). */
    const struct cts_config *cfg;
    void (*on_batch)(void *arg, struct cts_intake_batch *b); /* required */
    void (*on_error)(void *arg, int rc, int exit_code,
                     const char *msg); /* required */
    void (*on_settled)(void *arg);     /* may be NULL */
    int (*full)(void *arg);            /* may be NULL */
    void (*on_done)(void *arg);        /* required */
    void *arg;
    /* Borrowed, may be NULL: an input that cannot be read twice (stdin,
     * a pipe) is copied there as it is read (cts_rejects_tee), so that
     * its rejected rows can be written with their columns. */
    struct cts_rejects *rejects;
};

/* Embeddable; fields private to intake.c. */
struct cts_intake {
    struct cts_intake_params p;
    size_t file_idx;
    uv_file fd;
    int fd_open;
    struct cts_reader *reader;
    struct cts_mapper *mapper;
    struct cts_intake_batch *bat[2];   /* owned */
    struct cts_intake_batch *filling;  /* the one the work item fills */
    struct cts_intake_batch *settling; /* the one the owner settles */
    struct cts_intake_batch *ready;    /* filled, waiting for the loop */
    size_t batch_rows;                 /* rows per work item (about), and */
    size_t feed_slice;                 /*   bytes fed to the reader at once */
    char *rbuf;                        /* input not fed yet: */
    size_t rpos, rlen;                 /*   rbuf[rpos, rlen) */
    uv_timer_t feed_timer; /* ready/inline hand-over on its own turn */
    int inline_intake;     /* fill on the loop thread, not the thread */
    int inline_done;       /* an inline fill awaits its hand-back */
    uv_thread_t tid;
    uv_sem_t go;     /* posted: fill `filling` (or quit) */
    uv_async_t back; /* sent by the thread: the item is back */
    uv_mutex_t mx;   /* guards item_back */
    int item_back;   /* the thread finished the queued item */
    int thread_started;
    int quit;
    int read_pending; /* a fill is queued: reader, mapper, fd busy */
    int busy;         /* a batch is being handed over (callbacks run) */
    int stop;         /* stop reading as soon as nothing is busy */
    int no_more;      /* read nothing more; settle what was read */
    int halt;         /* guarded by mx: the queued item returns at once */
    int stream;       /* fd is not a regular file: poll before reading */
    int tee;          /* the bytes read are copied to p.rejects */
    int paused;
    int done;
    int closed;
    const char *encoding; /* label of the last file read to its end */
    int csv_error;
    char csv_msg[800];
};

/*
 * Initialise in: buffers, the loop handles and the intake thread (reading
 * runs inline when it cannot be created).  p copied.  Returns 0 (allocation
 * failures abort, house policy).  Nothing is read before cts_intake_start.
 */
int cts_intake_init(struct cts_intake *in, const struct cts_intake_params *p);

/* Open the first input and start reading.  A file that cannot be opened
 * is reported through on_error and on_done before this returns. */
void cts_intake_start(struct cts_intake *in);

/* Backpressure: full() returned nonzero; read again (no-op otherwise). */
void cts_intake_resume(struct cts_intake *in);
/* 1 while full() holds reading. */
int cts_intake_paused(const struct cts_intake *in);

/* Stop reading: at once, or as soon as the batch being read or handed
 * over is back (it is dropped).  on_done follows.  Idempotent. */
void cts_intake_stop(struct cts_intake *in);

/* Read nothing more, but hand over every row already read: the batch
 * being read comes back early (even from a stream that stays silent, within
 * about 100 ms) and is settled like any other, then on_done follows (at
 * once when nothing is read or waiting; before cts_intake_start, that
 * start reads nothing and ends at once).  For a signal: rows not read yet
 * are never read, rows read are all settled.  Idempotent. */
void cts_intake_stop_reading(struct cts_intake *in);

/* 1 once reading is over and no batch is being handed over. */
int cts_intake_finished(const struct cts_intake *in);

/* "utf-8", "cp1252 (converted)", ... of the last file read to its end, or
 * NULL (static text). */
const char *cts_intake_encoding(const struct cts_intake *in);

/* The input ended inside a quoted field (the broken tail was delivered as
 * an invalid row; reading went on): its message, or NULL. */
const char *cts_intake_csv_error(const struct cts_intake *in);

/*
 * Once finished: join the thread, close the handles (their closes run
 * from the loop: keep the storage until it has run) and free the buffers.
 * Idempotent.
 */
void cts_intake_close(struct cts_intake *in);

#endif /* CTS_INTAKE_H */
