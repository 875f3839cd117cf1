/*
 * state_journal.c — the journal of the current run (cts_state.h): records
 * written before a request leaves and when a row settles, coalesced when
 * the pipeline asks, synced in batches, and replayed by the next run when
 * this one was killed.
 *
 * Records are self-checking (struct jrec in state_int.h) and appended with
 * O_APPEND: once write(2) returned they are in the page cache and a kill -9
 * cannot lose them; fdatasync covers power loss every J_SYNC_EVERY records
 * and at every cts_state_flush.
 */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fdatasync at least this often (records); the pipeline also syncs every
 * ~200 ms.  Power loss loses at most that much, and those rows are only
 * re-sent (idempotently).  At thousands of rows a second a sync every 256
 * records cost ~2.5% of a run's CPU; this bound makes the timer the usual
 * trigger. */
#define J_SYNC_EVERY 4096
/* Coalesced records are written at the latest when this much is pending. */
#define JOUT_MAX (64 * 1024)
/* Payload caps: the report line has the full text. */
#define J_PAYLOAD_MAX 1000
#define J_EKEY_MAX    200

uint32_t cts_state_jcheck(const struct jrec *r, const char *payload)
{
    struct jrec tmp = *r;
    uint64_t h;
    tmp.check = 0;
    h = cts_hash64(&tmp, sizeof(tmp), 0x6a);
    if (r->len > 0)
        h = cts_hash64(payload, r->len, h);
    return (uint32_t)(h ^ (h >> 32));
}

/* ---- writing ---- */

/* Append a record whose payload is st->jbuf to the pending records, and
 * write them unless coalescing. */
static int jappend(struct cts_state *st, uint8_t type, uint8_t status,
                   uint64_t key, uint32_t row, uint32_t fp, int http)
{
    struct jrec r;
    memset(&r, 0, sizeof(r));
    r.magic = J_MAGIC;
    r.type = type;
    r.status = status;
    r.len = (uint16_t)st->jbuf.len;
    r.row = row;
    r.fp = fp;
    r.key = key;
    r.http = http;
    r.check = cts_state_jcheck(&r, st->jbuf.data);
    /* Records go out whole, in order, one write(2) per record or (when
     * coalescing) per batch. */
    cts_buf_append(&st->jout, &r, sizeof(r));
    if (r.len > 0)
        cts_buf_append(&st->jout, st->jbuf.data, r.len);
    st->jout_n++;
    /* Only the per-row records (and the members of a removal, pushed
     * before its POST leaves) are coalesced: bulk and run records keep
     * their one write each (bulk.c posts on its own schedule). */
    if (st->coalesce &&
        (type == J_BEGIN || type == J_DONE || type == J_MIRROR_BEGIN) &&
        st->jout.len < JOUT_MAX)
        return 0;
    return cts_state_journal_push(st);
}

int cts_state_jwrite(struct cts_state *st, uint8_t type, uint64_t key,
                     uint32_t row, uint32_t fp, int http, const void *payload,
                     size_t len)
{
    cts_buf_reset(&st->jbuf);
    if (len > 0)
        cts_buf_append(&st->jbuf, payload,
                       len < J_PAYLOAD_MAX ? len : J_PAYLOAD_MAX);
    return jappend(st, type, 0, key, row, fp, http);
}

int cts_state_journal_push(struct cts_state *st)
{
    int rc;
    if (st == NULL || st->jout_n == 0)
        return 0;
    if (st->jerr != 0)
        return st->jerr;
    rc = cts_write_all(st->jfd, st->jout.data, st->jout.len);
    if (rc != 0) {
        /* Part of a record may be on disk: replay cuts a torn tail, but
         * nothing may follow it, so every later push fails too. */
        st->jerr = rc;
        return rc;
    }
    cts_buf_reset(&st->jout);
    st->unsynced += st->jout_n;
    st->jout_n = 0;
    if (st->unsynced >= J_SYNC_EVERY)
        return cts_state_flush(st);
    return 0;
}

void cts_state_journal_coalesce(struct cts_state *st, int on)
{
    if (st == NULL)
        return;
    st->coalesce = on;
    if (!on)
        (void)cts_state_journal_push(st);
}

int cts_state_flush(struct cts_state *st)
{
    int rc;
    if (st == NULL || st->jfd < 0)
        return 0;
    /* What is synced must first be written. */
    if (st->jout_n > 0) {
        rc = cts_state_journal_push(st);
        if (rc != 0)
            return rc;
    }
    if (st->unsynced == 0)
        return 0;
    st->unsynced = 0;
    return fdatasync(st->jfd) != 0 ? -errno : 0;
}

int cts_state_journal_begin(struct cts_state *st, const char *email,
                            uint32_t row, uint32_t fp)
{
    if (st->dry_run || st->jfd < 0)
        return 0;
    return cts_state_jwrite(st, J_BEGIN, cts_state_email_key(email), row, fp, 0,
                            NULL, 0);
}

int cts_state_journal_done(struct cts_state *st, const char *email,
                           uint32_t row, uint32_t fp, enum cts_status status,
                           int permanent, int http_status,
                           const char *error_key, const char *message)
{
    return cts_state_journal_done_key(st, cts_state_email_key(email), row, fp,
                                      status, permanent, http_status, error_key,
                                      message);
}

/*
 * After a row ends with this status the account holds what the row says,
 * so its fingerprint is confirmed: written (created, updated, imported),
 * found already holding it all (unchanged), or unsubscribed as the row
 * asked.  The last two have no resumed status of their own: after a kill
 * they read "unchanged since the last run".
 */
static int confirms(int status)
{
    return status == CTS_ST_CREATED || status == CTS_ST_UPDATED ||
           status == CTS_ST_IMPORTED || status == CTS_ST_UNCHANGED ||
           status == CTS_ST_UNSUBSCRIBED;
}

int cts_state_journal_done_key(struct cts_state *st, uint64_t key, uint32_t row,
                               uint32_t fp, enum cts_status status,
                               int permanent, int http_status,
                               const char *error_key, const char *message)
{
    struct cts_eslot *s;
    unsigned flags;
    int rc, perm_fail = status == CTS_ST_FAILED && permanent;
    if (st->dry_run || st->jfd < 0)
        return 0;
    cts_buf_reset(&st->jbuf);
    if (perm_fail) {
        /* Payload: "error_key\0message". */
        if (error_key != NULL)
            cts_buf_append(&st->jbuf, error_key,
                           strnlen(error_key, J_EKEY_MAX));
        cts_buf_putc(&st->jbuf, '\0');
        if (message != NULL)
            cts_buf_append(&st->jbuf, message, strnlen(message, J_PAYLOAD_MAX));
    }
    rc = jappend(st, J_DONE, (uint8_t)(status | (perm_fail ? J_PERMANENT : 0)),
                 key, row, fp, http_status);
    if (rc != 0 || st->committed)
        return rc;
    /* Mirror the record in memory for the commit; the resumed bits are
     * dropped (they describe the killed run, not this one). */
    s = cts_emailidx_insert(&st->ix, key, NULL);
    s->kf &= ~(uint64_t)F_BULK;
    flags = (unsigned)(s->kf & CTS_EIX_FLAG_MASK);
    if (confirms(status)) {
        if (!(flags & F_CONF))
            st->stats.known++;
        flags = F_CONF;
        s->fp = fp;
    } else if (perm_fail) {
        if (flags & F_CONF)
            st->stats.known--;
        flags = F_FAIL;
        s->fp = fp;
        cts_state_fail_add(st, key, http_status, error_key, message);
    } else {
        return 0;
    }
    s->kf = (s->kf & ~(uint64_t)CTS_EIX_FLAG_MASK) | flags;
    return 0;
}

/* ---- replay ---- */

static void apply_record(struct cts_state *st, const struct jrec *r,
                         const char *payload)
{
    struct cts_eslot *s;
    unsigned flags;
    if (r->type == J_OPEN || r->key == 0)
        return;
    if (r->type >= J_MIRROR_BEGIN) {
        cts_state_mirror_replay(st, r, payload);
        return;
    }
    if (r->type >= J_BULK_BEGIN)
        st->had_bulk = 1;
    if (r->type == J_BULK_START) {
        cts_state_bulk_replay_start(st, r, payload);
        return;
    }
    s = cts_emailidx_insert(&st->ix, r->key, NULL);
    flags = (unsigned)(s->kf & CTS_EIX_FLAG_MASK);
    if (r->type == J_BEGIN) {
        flags = (flags | F_DOUBT) & ~F_BULK;
    } else if (r->type == J_BULK_BEGIN) {
        flags |= F_DOUBT | F_BULK;
        cts_state_bulk_replay_begin(st, r, payload);
    } else {
        int status = r->status & 0x7f;
        unsigned res = 0;
        flags &= ~F_BULK;
        if (status == CTS_ST_CREATED)
            res = 1;
        else if (status == CTS_ST_UPDATED)
            res = 2;
        else if (status == CTS_ST_IMPORTED)
            res = 3;
        if (confirms(status)) {
            if (!(flags & F_CONF))
                st->stats.known++;
            flags = F_CONF | (res << F_RES_SHIFT);
            s->fp = r->fp;
        } else if (status == CTS_ST_FAILED && (r->status & J_PERMANENT)) {
            const char *ekey = payload;
            size_t n = strnlen(payload, r->len);
            const char *msg = n < r->len ? payload + n + 1 : "";
            if (flags & F_CONF)
                st->stats.known--;
            flags = F_FAIL;
            s->fp = r->fp;
            cts_state_fail_add(st, r->key, r->http, ekey, msg);
        }
        /* Other statuses (transient failure, deferred, exists) leave the
         * slot as it was: an in-flight write may still have landed. */
    }
    s->kf = (s->kf & ~(uint64_t)CTS_EIX_FLAG_MASK) | flags;
}

int cts_state_jnext(int fd, struct jrec *r, char *payload)
{
    ssize_t got = cts_read_full(fd, r, sizeof(*r));
    if (got != (ssize_t)sizeof(*r) || r->magic != J_MAGIC || r->type < J_OPEN ||
        r->type > J_MIRROR_END)
        return 0;
    if (r->len > 0 && cts_read_full(fd, payload, r->len) != (ssize_t)r->len)
        return 0;
    payload[r->len] = '\0';
    return cts_state_jcheck(r, payload) == r->check;
}

/*
 * Replay a leftover journal.  Records are self-checking; the first torn or
 * corrupt one ends the replay (a kill -9 mid-write leaves at most one torn
 * record at the tail).  *valid_end gets the offset to truncate to, or -1
 * when the journal is already in the store.  Two passes, so memory does not
 * grow with the journal: the first finds the last OPEN record (the journal
 * of a run that committed but died before removing it ends in the store's
 * run id: nothing to resume), the second applies the records.
 */
int cts_state_journal_replay(struct cts_state *st, const char *path,
                             uint64_t store_run, off_t *valid_end)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char *payload;
    struct jrec r;
    uint64_t last_open = 0;
    off_t off = 0;
    size_t nrec = 0;
    *valid_end = 0;
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    payload = cts_xmalloc(65536 + 1);
    while (cts_state_jnext(fd, &r, payload)) {
        off += (off_t)(sizeof(r) + r.len);
        if (r.type == J_OPEN)
            last_open = r.key;
        nrec++;
    }
    *valid_end = off;
    if (store_run != 0 && last_open == store_run) {
        *valid_end = -1;
        goto out;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        int rc = -errno;
        free(payload);
        close(fd);
        return rc;
    }
    while (nrec > 0 && cts_state_jnext(fd, &r, payload)) {
        apply_record(st, &r, payload);
        nrec--;
        st->stats.journal_records++;
    }
out:
    free(payload);
    close(fd);
    return 0;
}
