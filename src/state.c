/* state.c — lock, journal, fingerprint store and daily quota (cts_state.h). */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void hash_name(const char *a, const char *b, const char *c, char out[17])
{
    struct cts_buf in;
    uint8_t d[CTS_SHA256_LEN];
    cts_buf_init(&in, 0);
    cts_buf_append(&in, a, strlen(a) + 1);
    cts_buf_append(&in, b, strlen(b) + 1);
    if (c != NULL)
        cts_buf_append(&in, c, strlen(c) + 1);
    cts_sha256(in.data, in.len, d);
    cts_hex(d, 8, out);
    cts_buf_free(&in);
}

/* ---- bulk pending rows (replay) ---- */

void cts_state_bulk_replay_start(struct cts_state *st, const struct jrec *r,
                                 const char *payload)
{
    if ((uint32_t)r->key >= st->next_serial)
        st->next_serial = (uint32_t)r->key + 1;
    st->ba = cts_xrealloc(st->ba, (st->nba + 1) * sizeof(*st->ba));
    st->ba[st->nba].serial = (uint32_t)r->key;
    st->ba[st->nba].id = cts_xstrndup(payload, r->len);
    st->nba++;
}

void cts_state_bulk_replay_begin(struct cts_state *st, const struct jrec *r,
                                 const char *payload)
{
    struct bulk_pending *b;
    if ((uint32_t)r->http >= st->next_serial)
        st->next_serial = (uint32_t)r->http + 1;
    if (st->nbp == st->capbp) {
        st->capbp = st->capbp ? st->capbp * 2 : 64;
        st->bp = cts_xrealloc(st->bp, st->capbp * sizeof(*st->bp));
    }
    b = &st->bp[st->nbp];
    b->key = r->key;
    b->fp = r->fp;
    b->serial = (uint32_t)r->http;
    b->line = 0;
    if (r->len >= 4)
        memcpy(&b->line, payload, 4);
    b->seq = (uint32_t)st->nbp;
    st->nbp++;
}

static const char *bulk_activity_id(const struct cts_state *st, uint32_t serial)
{
    size_t i;
    for (i = st->nba; i > 0; i--) {
        if (st->ba[i - 1].serial == serial)
            return st->ba[i - 1].id;
    }
    return NULL;
}

static int cmp_bp(const void *a, const void *b)
{
    const struct bulk_pending *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Keep, per email, the latest bulk record, and only when the row was not
 * settled afterwards (F_BULK still set) and its activity had started. */
static void bulk_pending_finish(struct cts_state *st)
{
    size_t i, j = 0;
    if (st->next_serial == 0)
        st->next_serial = 1;
    if (st->nbp == 0)
        return;
    qsort(st->bp, st->nbp, sizeof(*st->bp), cmp_bp);
    for (i = 0; i < st->nbp; i++) {
        const struct cts_eslot *s;
        if (i + 1 < st->nbp && st->bp[i + 1].key == st->bp[i].key)
            continue;
        s = cts_emailidx_find(&st->ix, st->bp[i].key);
        if (s == NULL || !(s->kf & F_BULK) ||
            bulk_activity_id(st, st->bp[i].serial) == NULL)
            continue;
        st->bp[j++] = st->bp[i];
    }
    st->nbp = j;
}

uint32_t cts_state_bulk_serial(struct cts_state *st)
{
    return st->next_serial++;
}

int cts_state_bulk_begin(struct cts_state *st, const char *email, uint32_t row,
                         uint32_t fp, uint32_t serial, uint32_t line)
{
    uint64_t key;
    int rc;
    if (st->dry_run || st->jfd < 0)
        return 0;
    key = cts_state_email_key(email);
    rc = cts_state_jwrite(st, J_BULK_BEGIN, key, row, fp, (int)serial, &line,
                          sizeof(line));
    if (rc == 0 && !st->committed) {
        /* Mirrored so the commit knows which bulk rows are still open. */
        struct cts_eslot *s = cts_emailidx_insert(&st->ix, key, NULL);
        s->kf |= F_BULK;
        st->had_bulk = 1;
    }
    return rc;
}

int cts_state_bulk_started(struct cts_state *st, uint32_t serial,
                           const char *activity_id)
{
    if (st->dry_run || st->jfd < 0)
        return 0;
    return cts_state_jwrite(st, J_BULK_START, serial, 0, 0, 0, activity_id,
                            strlen(activity_id));
}

int cts_state_bulk_pending(struct cts_state *st, const char *email, uint32_t fp,
                           const char **activity_id, uint32_t *line)
{
    uint64_t key = cts_state_email_key(email);
    size_t lo = 0, hi = st->nbp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->bp[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == st->nbp || st->bp[lo].key != key || st->bp[lo].fp != fp)
        return 0;
    if (activity_id != NULL)
        *activity_id = bulk_activity_id(st, st->bp[lo].serial);
    if (line != NULL)
        *line = st->bp[lo].line;
    return 1;
}

/* Entries to size the table for, for a run of `rows` emails next to
 * `known` ones.  A nightly sync mostly re-reads the emails it knows, so the
 * union is near max(known, rows), not their sum; slack of 1/8 of the
 * overlap covers new ones (none is needed with an empty store), and a file
 * of mostly new emails makes the table grow (1.5x). */
static size_t index_target(size_t known, size_t rows)
{
    size_t hi = known > rows ? known : rows, lo = known > rows ? rows : known;
    return hi + lo / 8;
}

/* ---- open / close ---- */


int cts_state_open(const struct cts_state_params *p, struct cts_state **out,
                   struct cts_error *err)
{
    struct cts_state *st = cts_xcalloc(1, sizeof(*st));
    const char *api = p->api == CTS_API_V2 ? "v2" : "v3";
    char h[17], k[17];
    char *path = NULL;
    uint64_t store_run = 0;
    off_t valid_end = 0;
    int rc;

    *out = NULL;
    st->dry_run = p->dry_run;
    st->full = p->full;
    st->now = p->now;
    st->daily_quota = p->daily_quota;
    st->lock_fd = st->jfd = st->qfd = -1;
    cts_emailidx_init(&st->ix);
    cts_buf_init(&st->jbuf, 0);
    cts_buf_init(&st->jout, 0);
    hash_name(api, p->api_key ? p->api_key : "", p->account ? p->account : "",
              h);
    hash_name(api, p->api_key ? p->api_key : "", NULL, k);
    st->dir = cts_xasprintf("%s/%s-%s", p->dir, api, h);
    st->qpath = cts_xasprintf("%s/quota-%s", p->dir, k);

    if (!st->dry_run) {
        rc = cts_mkdir_p(st->dir, 0700);
        if (rc != 0) {
            cts_error_setx(err, rc, CTS_EX_CANTCREAT,
                           "cannot create the state directory %s: %s", st->dir,
                           strerror(-rc));
            goto fail;
        }
        rc = cts_state_lock_take(st, err);
        if (rc != 0)
            goto fail;
    }
    rc = cts_state_quota_open(st, err);
    if (rc != 0)
        goto fail;

    path = cts_xasprintf("%s/store", st->dir);
    {
        /* Size the index once for the store and this run together: a
         * later growth would hold the old and the new table at once. */
        struct stat sb;
        size_t known = 0;
        if (stat(path, &sb) == 0 &&
            sb.st_size > (off_t)sizeof(struct store_hdr))
            known = (size_t)(sb.st_size - (off_t)sizeof(struct store_hdr)) /
                    STORE_REC;
        if (known > 0 || p->expected_rows > 0)
            cts_emailidx_reserve(&st->ix,
                                 index_target(known, p->expected_rows));
    }
    rc = cts_state_store_load(st, path, &store_run, err);
    free(path);
    if (rc != 0)
        goto fail;
    path = cts_xasprintf("%s/failed", st->dir);
    rc = cts_state_failed_load(st, path);
    if (rc != 0) {
        cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                       strerror(-rc));
        free(path);
        goto fail;
    }
    free(path);

    path = cts_xasprintf("%s/journal", st->dir);
    rc = cts_state_journal_replay(st, path, store_run, &valid_end);
    if (rc != 0) {
        cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                       strerror(-rc));
        free(path);
        goto fail;
    }
    cts_state_fails_sort(st);
    bulk_pending_finish(st);
    if (st->ix.n > 0) {
        /* Only a loaded store or journal can hold such flags; an empty
         * table is skipped, since reading it would fault in every page of
         * a reserve that the run then fills at random. */
        size_t i;
        for (i = 0; i < st->ix.cap; i++) {
            unsigned f = (unsigned)(st->ix.slots[i].kf & CTS_EIX_FLAG_MASK);
            if (st->ix.slots[i].kf == 0)
                continue;
            if (f & F_RES_MASK)
                st->stats.resumed++;
            if (f & F_DOUBT)
                st->stats.in_doubt++;
        }
    }
    if (!st->dry_run) {
        uint8_t rid[8];
        /* Drop a torn tail so new records follow the last good one, or the
         * whole journal when the store already holds it. */
        if (valid_end < 0) {
            unlink(path);
        } else if (truncate(path, valid_end) != 0 && errno != ENOENT) {
            rc = -errno;
            cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                           strerror(-rc));
            free(path);
            goto fail;
        }
        st->jfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (st->jfd < 0) {
            rc = -errno;
            cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                           strerror(-rc));
            free(path);
            goto fail;
        }
        if (cts_random_bytes(rid, sizeof(rid)) == 0)
            memcpy(&st->run_id, rid, 8);
        else
            st->run_id = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
        st->run_id |= 1; /* 0 means "no run" in the store header */
        rc = cts_state_jwrite(st, J_OPEN, st->run_id, 0, 0, 0, NULL, 0);
        if (rc != 0) {
            cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                           strerror(-rc));
            free(path);
            goto fail;
        }
    }
    free(path);
    *out = st;
    return 0;
fail:
    cts_state_close(st);
    return rc;
}

void cts_state_close(struct cts_state *st)
{
    size_t i;
    if (st == NULL)
        return;
    if (st->jfd >= 0) {
        cts_state_flush(st);
        close(st->jfd);
    }
    if (st->qfd >= 0)
        close(st->qfd);
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* releases the flock */
    cts_state_fails_free(st);
    for (i = 0; i < st->nba; i++)
        free(st->ba[i].id);
    free(st->ba);
    free(st->bp);
    cts_emailidx_free(&st->ix);
    cts_buf_free(&st->jbuf);
    cts_buf_free(&st->jout);
    free(st->dir);
    free(st->qpath);
    free(st);
}

const char *cts_state_path(const struct cts_state *st)
{
    return st->dir;
}

void cts_state_reserve(struct cts_state *st, size_t rows)
{
    if (!st->committed)
        cts_emailidx_reserve(&st->ix, index_target(st->ix.n, rows));
}

/* ---- commit ---- */

/*
 * Bulk rows still open at commit (their activity is running; the run
 * stopped for the quota or a signal) must survive the journal's removal,
 * or the next run would post them again instead of polling.  Collect the
 * journal's BULK_START records and the BULK_BEGIN records of rows whose
 * last event is still that begin (F_BULK), in journal order.
 */
static int collect_open_bulk(struct cts_state *st, struct cts_buf *carry)
{
    char *path = cts_xasprintf("%s/journal", st->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *payload;
    struct jrec r;
    size_t begins = 0;
    free(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    payload = cts_xmalloc(65536 + 1);
    while (cts_state_jnext(fd, &r, payload)) {
        if (r.type == J_BULK_BEGIN) {
            const struct cts_eslot *s = cts_emailidx_find(&st->ix, r.key);
            if (s == NULL || !(s->kf & F_BULK))
                continue;
            begins++;
        } else if (r.type != J_BULK_START) {
            continue;
        }
        cts_buf_append(carry, &r, sizeof(r));
        cts_buf_append(carry, payload, r.len);
    }
    free(payload);
    close(fd);
    if (begins == 0)
        cts_buf_reset(carry);
    return 0;
}

/* Replace the journal by a fresh one that holds only `carry` (behind an
 * OPEN record with a new run id, so it is not mistaken for the committed
 * run's journal). */
static int write_carried_journal(struct cts_state *st,
                                 const struct cts_buf *carry)
{
    struct cts_afile af;
    struct jrec r;
    uint8_t rid[8];
    int rc = cts_state_afile_open(&af, st->dir, "journal");
    memset(&r, 0, sizeof(r));
    r.magic = J_MAGIC;
    r.type = J_OPEN;
    if (cts_random_bytes(rid, sizeof(rid)) == 0)
        memcpy(&r.key, rid, 8);
    r.key = (r.key ^ st->run_id) | 1;
    if (r.key == st->run_id)
        r.key ^= 2;
    r.check = cts_state_jcheck(&r, "");
    if (rc == 0)
        rc = cts_afile_write(&af, &r, sizeof(r));
    if (rc == 0)
        rc = cts_afile_write(&af, carry->data, carry->len);
    return cts_afile_close(&af, rc == 0) != 0 && rc == 0 ? -EIO : rc;
}

int cts_state_commit(struct cts_state *st, struct cts_error *err)
{
    char *jpath;
    int rc;
    struct cts_buf carry;
    if (st->dry_run || st->committed)
        return 0;
    cts_buf_init(&carry, 0);
    rc = cts_state_flush(st);
    if (rc == 0)
        rc = cts_state_failed_write(st);
    if (rc == 0 && st->had_bulk)
        rc = collect_open_bulk(st, &carry);
    if (rc != 0) {
        cts_buf_free(&carry);
        return cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s/failed: %s",
                              st->dir, cts_strerror(rc));
    }
    st->committed = 1;
    rc = cts_state_store_write(st);
    if (rc != 0) {
        cts_buf_free(&carry);
        return cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s/store: %s",
                              st->dir, cts_strerror(rc));
    }
    /* The store now holds everything the journal said (and names this run,
     * so a crash before the unlink is recognised at the next open). */
    jpath = cts_xasprintf("%s/journal", st->dir);
    if (st->jfd >= 0) {
        close(st->jfd);
        st->jfd = -1;
    }
    if (carry.len > 0) {
        rc = write_carried_journal(st, &carry);
        if (rc != 0)
            cts_log_warn("%s: cannot keep the open bulk activities (%s); "
                         "their rows will be sent again",
                         jpath, cts_strerror(rc));
    } else {
        unlink(jpath);
    }
    cts_buf_free(&carry);
    free(jpath);
    return cts_fsync_dir(st->dir);
}

void cts_state_get_stats(const struct cts_state *st,
                         struct cts_state_stats *out)
{
    *out = st->stats;
    out->index_bytes = cts_emailidx_bytes(&st->ix);
}
