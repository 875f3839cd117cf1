/* intake.c — reading an import's input on a helper thread, in batches of
 * mapped rows handed to the owner on the loop thread (cts_intake.h).
 *
 * Input is read, parsed (reader.c), mapped and validated (mapper.c), and
 * its rows' email keys and fingerprints computed (pure functions of
 * cts_state) by a work item on the intake thread, which fills a batch.
 * The owner then settles the batch's rows in input order on the loop
 * thread.  There are two batches: as soon as one is handed back, the next
 * work item is queued into the other, so while the loop settles one batch
 * a second core reads the next.
 *
 * One dedicated thread rather than libuv's threadpool: the pool hands
 * successive items to different threads, so the reader's and libcsv's
 * state, the mapper and malloc's per-thread caches were cold for every
 * item (measured: the intake side cost twice its single-thread time).
 * The loop posts a semaphore to start an item; the thread answers with
 * uv_async_send, whose callback runs on the loop thread (the libuv way for
 * another thread to wake a loop; both order the memory hand-over).
 *
 * At most one work item is queued at a time, and the reader, mapper, fd
 * and read buffer of the current file are used only by it while it is
 * queued (read_pending).  Whatever happens on the loop (errors, stops, the
 * end of a file) waits for a queued item to come back before the file is
 * closed.  Backpressure: while the owner says full no new item is queued,
 * and a batch that was already read waits (ready) until it resumes. */
#include "cts_intake.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cts_encoding.h"
#include "cts_mapper.h"
#include "cts_reader.h"
#include "cts_rejects.h"
#include "cts_state.h"

/* A work item reads and parses up to BATCH_BYTES or BATCH_ROWS rows,
 * whichever comes first, feeding the reader FEED_SLICE bytes at a time:
 * big enough that the hand-overs between threads (a wake-up each way) are
 * rare, while a batch's memory stays bounded even for rows of two bytes
 * (at most BATCH_ROWS + one slice of rows). */
#define READ_CHUNK  (128 * 1024)
#define FEED_SLICE  (16 * 1024)
#define BATCH_BYTES (256 * 1024)
#define BATCH_ROWS  4096
/* A run that sends settles a batch into jobs (each with its contact and
 * request body) faster than they can be sent: smaller batches keep those
 * within about the backpressure window, as when one 64 KiB read was
 * settled at a time (4096-row batches cost ~6 MiB more at 1M rows sent),
 * and cost nothing there, where the requests, not the intake, set the
 * pace. */
#define SEND_FEED_SLICE (4 * 1024)
#define SEND_BATCH_ROWS 256

/*
 * The strings of a batch's contacts live in an arena of blocks that never
 * move (pointers stay valid while it grows) and are reused batch after
 * batch; the mapper allocates them there (cts_mapper_map_with).  Why not
 * malloc'd strings: they would be allocated by the intake thread and freed
 * by the loop thread, which glibc's per-thread caches do not serve (that
 * cross-thread malloc/free was a quarter of the run), and even freed on
 * the intake thread they cost a malloc and free per field.  A row that
 * outlives its batch (one to send) gets its own copy from the owner.
 */
#define ARENA_BLOCK (64 * 1024)

struct cts_intake_ablock {
    struct cts_intake_ablock *next;
    size_t cap, used;
    char data[]; /* cap bytes */
};

static void *arena_alloc(struct cts_intake_batch *a, size_t n)
{
    struct cts_intake_ablock *b = a->acur;

    n = (n + 7) & ~(size_t)7; /* keeps cf arrays aligned */
    while (b != NULL && b->used + n > b->cap) {
        b = b->next;
        if (b != NULL)
            b->used = 0;
    }
    if (b == NULL) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = cts_xmalloc(sizeof(*b) + cap);
        b->cap = cap;
        b->used = 0;
        b->next = NULL;
        /* Appended at the end, so a reset reuses blocks in order. */
        if (a->ahead == NULL) {
            a->ahead = b;
        } else {
            struct cts_intake_ablock *t = a->ahead;
            while (t->next != NULL)
                t = t->next;
            t->next = b;
        }
    }
    a->acur = b;
    b->used += n;
    return b->data + b->used - n;
}

/* cts_mapper_alloc_fn over a batch's arena. */
static void *arena_alloc_cb(void *arg, size_t n)
{
    return arena_alloc(arg, n);
}

static void batch_clear(struct cts_intake_batch *b)
{
    b->n = 0;
    b->acur = b->ahead;
    if (b->acur != NULL)
        b->acur->used = 0;
    cts_buf_reset(&b->msgs);
    b->eof = 0;
    b->rerr = 0;
    b->rc = 0;
    b->header = 0;
    b->header_rc = 0;
    b->mapper = NULL;
}

static struct cts_intake_batch *batch_new(void)
{
    struct cts_intake_batch *b = cts_xcalloc(1, sizeof(*b));

    cts_buf_init(&b->msgs, 0);
    return b;
}

static void batch_free(struct cts_intake_batch *b)
{
    struct cts_intake_ablock *a;

    if (b == NULL)
        return;
    cts_buf_free(&b->msgs);
    while ((a = b->ahead) != NULL) {
        b->ahead = a->next;
        free(a);
    }
    free(b->rows);
    free(b);
}

/* ---- the work item (intake thread, or the loop when inline) ---- */

/* Build the file's mapping from its header row.  The mapper is pure; what
 * the owner must do about it (print it, or stop the run) waits in the
 * batch. */
static int intake_header(struct cts_intake *in, struct cts_intake_batch *b,
                         const struct cts_row *row)
{
    const struct cts_config *cfg = in->p.cfg;
    struct cts_mapper_opts mo;
    struct cts_error err = {0};
    unsigned char *ign;
    size_t i;

    memset(&mo, 0, sizeof(mo));
    mo.api = cfg->api;
    mo.maps = cfg->maps;
    mo.nmaps = cfg->nmaps;
    mo.file = row->file;
    mo.accept_typos = cfg->accept_typos;
    b->header = 1;
    in->mapper = cts_mapper_new(&mo, row, &err);
    if (in->mapper == NULL) {
        b->header_rc = err.code != 0 ? err.code : CTS_EDATA;
        /* The mapper's message already starts with the file name. */
        cts_error_setx(&b->herr, b->header_rc,
                       err.exit_code != 0 ? err.exit_code : CTS_EX_DATAERR,
                       "%s", err.msg);
        return CTS_EDATA; /* stops this file's reader */
    }
    /* A column no field reads cannot make a row invalid: a huge note
     * there is dropped by the reader, never held. */
    ign = cts_xmalloc(row->nfields > 0 ? row->nfields : 1);
    for (i = 0; i < row->nfields; i++)
        ign[i] = (unsigned char)!cts_mapper_column_used(in->mapper, i);
    cts_reader_ignore_columns(in->reader, ign, row->nfields);
    free(ign);
    /* Only read by the owner while the next work item may map rows with
     * it: both sides treat it as const. */
    b->mapper = in->mapper;
    return 0;
}

/* Reader callback, synchronously from cts_reader_feed/finish. */
static int cb_row(const struct cts_row *row, void *arg)
{
    struct cts_intake *in = arg;
    struct cts_intake_batch *b = in->filling;
    struct cts_error err = {0};
    struct cts_intake_row *m;

    if (row->row == 0)
        return intake_header(in, b, row);
    if (b->n == b->cap) {
        b->cap = b->cap != 0 ? b->cap * 2 : 1024;
        b->rows = cts_xrealloc(b->rows, b->cap * sizeof(*b->rows));
    }
    m = &b->rows[b->n++];
    memset(m, 0, sizeof(*m));
    m->row = row->row;
    /* The mapper also turns the reader's problems into an invalid row. */
    if (cts_mapper_map_with(in->mapper, row, &m->c, arena_alloc_cb, b, &err) !=
        0) {
        m->invalid = 1;
        m->msg = b->msgs.len;
        if (cts_buf_append(&b->msgs, err.msg, strlen(err.msg) + 1) != 0)
            abort();
        return 0;
    }
    /* Pure functions of the row: done here, off the loop thread. */
    m->key = cts_state_email_key(m->c.f[CTS_F_EMAIL]);
    m->fp = cts_state_fingerprint(&m->c, in->p.cfg->lists, in->p.cfg->nlists);
    return 0;
}

/* 1 once the loop asked the queued work item to come back at once. */
static int halted(struct cts_intake *in)
{
    int h;

    if (in->inline_intake)
        return in->halt;
    uv_mutex_lock(&in->mx);
    h = in->halt;
    uv_mutex_unlock(&in->mx);
    return h;
}

static void set_halt(struct cts_intake *in)
{
    if (in->inline_intake) {
        in->halt = 1;
        return;
    }
    uv_mutex_lock(&in->mx);
    in->halt = 1;
    uv_mutex_unlock(&in->mx);
}

/* A stream may stay silent for ever: wait for input in short slices, so
 * that a stop is seen within one.  0 when stopped. */
static int wait_readable(struct cts_intake *in)
{
    struct pollfd pfd;
    int r;

    for (;;) {
        if (halted(in))
            return 0;
        pfd.fd = in->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        r = poll(&pfd, 1, 100);
        if (r > 0 || (r < 0 && errno != EINTR))
            return 1; /* input, end or error: read(2) tells which */
    }
}

/* Read and turn input into mapped rows.  Touches only the batch, the
 * file's fd, read buffer, reader and mapper, and the read-only
 * configuration. */
static void work_fill(struct cts_intake *in)
{
    struct cts_intake_batch *b = in->filling;
    size_t fed = 0, n;
    ssize_t got;

    while (b->n < in->batch_rows && fed < BATCH_BYTES) {
        if (in->rpos == in->rlen) {
            /* Stopped: the rows read so far go back, nothing more is
             * read.  (The inline fallback never waits.) */
            if (halted(in) ||
                (in->stream && !in->inline_intake && !wait_readable(in)))
                return;
            /* From the current position: works for stdin and pipes. */
            do {
                got = read(in->fd, in->rbuf, READ_CHUNK);
            } while (got < 0 && errno == EINTR);
            if (got <= 0) {
                b->rerr = got < 0 ? -errno : 0;
                b->eof = got == 0;
                return;
            }
            /* Only this thread touches this input's copy while it is
             * read (cts_rejects_tee). */
            if (in->tee)
                cts_rejects_tee(in->p.rejects, in->file_idx, in->rbuf,
                                (size_t)got);
            in->rpos = 0;
            in->rlen = (size_t)got;
        }
        n = in->rlen - in->rpos < in->feed_slice ? in->rlen - in->rpos
                                                 : in->feed_slice;
        b->rc = cts_reader_feed(in->reader, in->rbuf + in->rpos, n, &b->err);
        in->rpos += n;
        fed += n;
        if (b->rc != 0)
            return;
    }
}

/* The intake thread: one work item per post of `go`. */
static void intake_main(void *arg)
{
    struct cts_intake *in = arg;

    for (;;) {
        uv_sem_wait(&in->go);
        if (in->quit)
            return;
        work_fill(in);
        /* The mutex publishes the batch to the loop thread (the async
         * alone would too, through libuv's atomics, but this way the
         * hand-over is visible to tools such as ThreadSanitizer). */
        uv_mutex_lock(&in->mx);
        in->item_back = 1;
        uv_mutex_unlock(&in->mx);
        uv_async_send(&in->back);
    }
}

/* ---- the loop side ---- */

static void intake_step(struct cts_intake *in);
static void read_next(struct cts_intake *in);

static void fail(struct cts_intake *in, int rc, int exit_code, const char *msg)
{
    in->stop = 1;
    in->p.on_error(in->p.arg, rc, exit_code, msg);
}

/* Close the current input and drop its reader and mapper (each file has
 * its own header, delimiter and encoding).  Never while a work item is
 * queued: it is using them. */
static void close_file(struct cts_intake *in)
{
    uv_fs_t req;

    assert(!in->read_pending);
    if (in->fd_open && in->fd != 0) {
        /* Synchronous close (no callback): a local file, instant. */
        uv_fs_close(in->p.loop, &req, in->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    in->fd_open = 0;
    cts_reader_free(in->reader);
    in->reader = NULL;
    cts_mapper_free(in->mapper);
    in->mapper = NULL;
}

static void finish_reading(struct cts_intake *in)
{
    if (in->done)
        return;
    /* A chunk read but not settled is dropped, as the rows an early stop
     * never read. */
    if (in->ready != NULL) {
        batch_clear(in->ready);
        in->ready = NULL;
    }
    close_file(in);
    in->done = 1;
    in->p.on_done(in->p.arg);
}

static int open_file(struct cts_intake *in)
{
    const struct cts_config *cfg = in->p.cfg;
    const char *name = cfg->inputs[in->file_idx];
    struct cts_reader_opts o;
    struct cts_error err = {0};
    enum cts_encoding enc = cfg->encoding;
    char msg[700];
    struct stat sb;
    uv_fs_t req;
    int rc;

    if (strcmp(name, "-") == 0) {
        in->fd = 0;
    } else {
        /* Opened once: a pipe, FIFO or /dev/fd/N cannot be read twice.
         * A FIFO with no writer yet would block open(2) on the loop
         * thread, deaf to signals: opened O_NONBLOCK (which returns at
         * once), then made blocking again, it waits for its writer in
         * the intake's poll slices (wait_readable), where a stop is seen. */
        rc = uv_fs_open(in->p.loop, &req, name, O_RDONLY | O_NONBLOCK, 0, NULL);
        uv_fs_req_cleanup(&req);
        if (rc >= 0) {
            int fl = fcntl(rc, F_GETFL);
            if (fl == -1 || fcntl(rc, F_SETFL, fl & ~O_NONBLOCK) == -1) {
                int e = -errno;
                close(rc);
                rc = e;
            }
        }
        if (rc < 0) {
            snprintf(msg, sizeof(msg), "cannot open %s: %s", name,
                     uv_strerror(rc));
            fail(in, rc, CTS_EX_NOINPUT, msg);
            return rc;
        }
        in->fd = rc;
        in->fd_open = 1;
        if (enc == CTS_ENC_AUTO) {
            /* Decide the encoding once per regular file, before the first
             * row, so a late non-UTF-8 byte cannot split the file into two
             * encodings (cts_reader.h).  Streams stay `auto`. */
            rc = cts_encoding_detect_fd(in->fd, name, &enc, &err);
            if (rc != 0) {
                snprintf(msg, sizeof(msg), "%s", err.msg);
                close_file(in);
                fail(in, rc, CTS_EX_NOINPUT, msg);
                return rc;
            }
        }
    }
    in->fd_open = 1;
    in->stream = fstat(in->fd, &sb) != 0 || !S_ISREG(sb.st_mode);
    in->tee = in->p.rejects != NULL &&
              cts_rejects_tee_start(in->p.rejects, in->file_idx, in->fd);
    in->rpos = in->rlen = 0;
    /* A new reader per file: row numbers restart at 1 and the header row
     * builds that file's mapping (intake_header). */
    memset(&o, 0, sizeof(o));
    o.file = name;
    o.delimiter = cfg->delimiter;
    o.enc = enc;
    in->reader = cts_reader_new(&o, cb_row, in);
    return 0;
}

/* The work item is back: its batch is the loop's now. */
static void filled(struct cts_intake *in)
{
    in->read_pending = 0;
    in->ready = in->filling;
    in->filling = NULL;
    intake_step(in);
}

static void on_item_back(uv_async_t *h)
{
    struct cts_intake *in = h->data;
    int back;

    /* One item at a time, so sends never coalesce over a needed one. */
    uv_mutex_lock(&in->mx);
    back = in->item_back;
    in->item_back = 0;
    uv_mutex_unlock(&in->mx);
    if (back && in->read_pending)
        filled(in);
}

static void on_feed_timer(uv_timer_t *t)
{
    struct cts_intake *in = t->data;

    if (in->inline_done) {
        /* The inline item's hand-back, one loop turn later (as from the
         * thread), so no callback runs inside its caller. */
        in->inline_done = 0;
        filled(in);
        return;
    }
    intake_step(in);
}

/* Queue the next chunk unless one is queued, a batch is being handed
 * over, backpressure holds the reader, or a chunk already read waits. */
static void read_next(struct cts_intake *in)
{
    struct cts_intake_batch *b;

    if (in->read_pending || in->busy || in->paused || in->done || !in->fd_open)
        return;
    if (in->stop) {
        finish_reading(in);
        return;
    }
    if (in->ready != NULL) {
        /* Resumed (from a row's report): settle it from its own turn of
         * the loop, not inside whichever callback reported that row. */
        uv_timer_start(&in->feed_timer, on_feed_timer, 0, 0);
        return;
    }
    if (in->no_more) {
        finish_reading(in); /* every row read was handed over */
        return;
    }
    b = in->bat[0] != in->settling ? in->bat[0] : in->bat[1];
    batch_clear(b);
    b->file_idx = in->file_idx;
    in->filling = b;
    in->read_pending = 1;
    if (in->inline_intake) {
        work_fill(in);
        in->inline_done = 1;
        uv_timer_start(&in->feed_timer, on_feed_timer, 0, 0);
        return;
    }
    uv_sem_post(&in->go);
}

/* Hand a batch to the owner. */
static void hand_over(struct cts_intake *in, struct cts_intake_batch *b)
{
    in->settling = b;
    in->busy = 1;
    in->p.on_batch(in->p.arg, b);
    in->busy = 0;
    in->settling = NULL;
}

static void settled(struct cts_intake *in)
{
    if (in->p.on_settled != NULL)
        in->p.on_settled(in->p.arg);
}

static void end_of_file(struct cts_intake *in, struct cts_intake_batch *b)
{
    const char *name = in->p.cfg->inputs[in->file_idx];
    struct cts_error err = {0};
    const char *enc;
    int rc;

    /* Nothing is queued now: the last record is delivered and settled
     * here, on the loop. */
    batch_clear(b);
    b->file_idx = in->file_idx;
    in->filling = b;
    in->busy = 1;
    rc = cts_reader_finish(in->reader, &err);
    in->busy = 0;
    in->filling = NULL;
    hand_over(in, b);
    batch_clear(b);
    if (in->stop || in->no_more) {
        finish_reading(in);
        return;
    }
    if (rc == CTS_ECSV) {
        /* Every complete row was delivered and the broken tail reported
         * `invalid`; the run goes on and exits 65 at the end. */
        in->csv_error = 1;
        /* The reader's message already names the file and row. */
        snprintf(in->csv_msg, sizeof(in->csv_msg), "%s", err.msg);
        cts_log_error("%s", in->csv_msg);
    } else if (rc != 0) {
        char msg[700];
        snprintf(msg, sizeof(msg), "%s", err.msg);
        fail(in, rc, err.exit_code != 0 ? err.exit_code : CTS_EX_DATAERR, msg);
        finish_reading(in);
        return;
    }
    enc = cts_reader_encoding(in->reader);
    if (enc != NULL && strstr(enc, "convert") != NULL)
        cts_log_info("%s: read as %s", name, enc);
    if (enc != NULL)
        in->encoding = strstr(enc, "utf-16") != NULL   ? "utf-16 (converted)"
                       : strstr(enc, "cp1252") != NULL ? "cp1252 (converted)"
                       : strstr(enc, "latin1") != NULL ? "latin1 (converted)"
                                                       : "utf-8";
    close_file(in);
    in->file_idx++;
    if (in->file_idx >= in->p.cfg->ninputs || open_file(in) != 0) {
        finish_reading(in);
        return;
    }
    read_next(in);
}

/* Settle the rows that were read, if nothing holds them back. */
static void intake_step(struct cts_intake *in)
{
    struct cts_intake_batch *b = in->ready;

    if (b == NULL || in->busy || in->read_pending)
        return;
    if (in->stop) {
        finish_reading(in);
        return;
    }
    if (in->paused)
        return; /* read_next, on the owner's resume */
    in->ready = NULL;
    /* The next rows are read and parsed while these settle. */
    in->settling = b;
    if (b->rc == 0 && !b->eof && b->rerr == 0 && !in->no_more)
        read_next(in);
    hand_over(in, b);
    in->busy = 1; /* errors and stops below wait for the end of this */
    if (b->rc != 0)
        fail(in, b->rc,
             b->err.exit_code != 0 ? b->err.exit_code : CTS_EX_DATAERR,
             b->err.msg);
    if (b->rerr != 0) {
        char msg[700];
        snprintf(msg, sizeof(msg), "cannot read %s: %s",
                 in->p.cfg->inputs[in->file_idx], uv_strerror(b->rerr));
        fail(in, b->rerr, CTS_EX_NOINPUT, msg);
    }
    in->busy = 0;
    if (in->stop) {
        batch_clear(b);
        /* Now, or once the item queued above is back. */
        if (!in->read_pending)
            finish_reading(in);
        return;
    }
    if (b->eof) {
        end_of_file(in, b);
        settled(in);
        return;
    }
    batch_clear(b);
    settled(in);
    if (in->no_more) {
        /* Its rows were the last: now, or once the queued item is back
         * and handed over too. */
        if (!in->read_pending && !in->done)
            finish_reading(in);
        return;
    }
    /* Backpressure: above the owner's high-water mark the next rows wait
     * for it to catch up. */
    if (in->p.full != NULL && in->p.full(in->p.arg))
        in->paused = 1;
    else
        read_next(in);
}

/* ---- public ---- */

int cts_intake_init(struct cts_intake *in, const struct cts_intake_params *p)
{
    memset(in, 0, sizeof(*in));
    in->p = *p;
    in->bat[0] = batch_new();
    in->bat[1] = batch_new();
    in->batch_rows = p->cfg->dry_run ? BATCH_ROWS : SEND_BATCH_ROWS;
    in->feed_slice = p->cfg->dry_run ? FEED_SLICE : SEND_FEED_SLICE;
    in->rbuf = cts_xmalloc(READ_CHUNK);
    uv_timer_init(p->loop, &in->feed_timer);
    in->feed_timer.data = in;
    /* The thread; on failure intake runs inline. */
    if (uv_sem_init(&in->go, 0) != 0) {
        in->inline_intake = 1;
        return 0;
    }
    if (uv_mutex_init(&in->mx) != 0) {
        uv_sem_destroy(&in->go);
        in->inline_intake = 1;
        return 0;
    }
    uv_async_init(p->loop, &in->back, on_item_back);
    in->back.data = in;
    if (uv_thread_create(&in->tid, intake_main, in) != 0) {
        cts_log_debug("no intake thread: reading on the loop thread");
        uv_close((uv_handle_t *)&in->back, NULL);
        uv_mutex_destroy(&in->mx);
        uv_sem_destroy(&in->go);
        in->inline_intake = 1;
        return 0;
    }
    in->thread_started = 1;
    return 0;
}

void cts_intake_start(struct cts_intake *in)
{
    if (open_file(in) == 0)
        read_next(in);
    else
        finish_reading(in);
}

void cts_intake_resume(struct cts_intake *in)
{
    if (!in->paused)
        return;
    in->paused = 0;
    read_next(in);
}

int cts_intake_paused(const struct cts_intake *in)
{
    return in->paused;
}

void cts_intake_stop(struct cts_intake *in)
{
    in->stop = 1;
    set_halt(in);
    if (!in->read_pending && !in->busy && !in->done)
        finish_reading(in);
}

void cts_intake_stop_reading(struct cts_intake *in)
{
    if (in->no_more || in->stop || in->done)
        return;
    in->no_more = 1;
    set_halt(in);
    if (!in->fd_open)
        return; /* not started: cts_intake_start ends at once */
    if (in->busy || in->read_pending)
        return; /* intake_step ends reading once that batch is settled */
    if (in->ready != NULL) {
        /* Read but not settled: settled first (after a resume when
         * backpressure holds it). */
        if (!in->paused)
            uv_timer_start(&in->feed_timer, on_feed_timer, 0, 0);
        return;
    }
    finish_reading(in);
}

int cts_intake_finished(const struct cts_intake *in)
{
    return in->done && !in->busy;
}

const char *cts_intake_encoding(const struct cts_intake *in)
{
    return in->encoding;
}

const char *cts_intake_csv_error(const struct cts_intake *in)
{
    return in->csv_error ? in->csv_msg : NULL;
}

void cts_intake_close(struct cts_intake *in)
{
    if (in->closed)
        return;
    in->closed = 1;
    /* Nothing is queued (reading is over): the thread waits on `go`. */
    if (in->thread_started) {
        in->quit = 1;
        uv_sem_post(&in->go);
        uv_thread_join(&in->tid);
        uv_mutex_destroy(&in->mx);
        uv_sem_destroy(&in->go);
        uv_close((uv_handle_t *)&in->back, NULL);
        in->thread_started = 0;
    }
    uv_close((uv_handle_t *)&in->feed_timer, NULL);
    if (in->fd_open && !in->read_pending)
        close_file(in);
    cts_reader_free(in->reader);
    in->reader = NULL;
    cts_mapper_free(in->mapper);
    in->mapper = NULL;
    batch_free(in->bat[0]);
    batch_free(in->bat[1]);
    in->bat[0] = in->bat[1] = NULL;
    free(in->rbuf);
    in->rbuf = NULL;
}
