/*
 * state_bulk.c — bulk chunks in the state (cts_state.h): the journal
 * records that tie a row to its chunk and a chunk to the activity the
 * server started, so that a resumed run polls an activity instead of
 * posting its rows again, and so that activities still open at commit
 * survive in a fresh journal.
 */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- replay ---- */

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
void cts_state_bulk_replay_end(struct cts_state *st)
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

/* ---- commit ---- */

/*
 * Bulk rows still open at commit (their activity is running; the run
 * stopped for the quota or a signal) must survive the journal's removal,
 * or the next run would post them again instead of polling; so must the
 * --mirror removals whose activity still runs.  Collect the
 * journal's BULK_START records and the BULK_BEGIN records of rows whose
 * last event is still that begin (F_BULK), in journal order.
 */
int cts_state_bulk_collect(struct cts_state *st, struct cts_buf *carry)
{
    char *path = cts_xasprintf("%s/journal", st->dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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
        } else if (r.type == J_MIRROR_BEGIN || r.type == J_MIRROR_START) {
            /* A removal whose activity still runs: the next run polls it
             * instead of posting it again. */
            if (!cts_state_mirror_open(st, r.type == J_MIRROR_BEGIN
                                               ? (uint32_t)r.http
                                               : (uint32_t)r.key))
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
int cts_state_bulk_keep(struct cts_state *st, const struct cts_buf *carry)
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

void cts_state_bulk_free(struct cts_state *st)
{
    size_t i;
    for (i = 0; i < st->nba; i++)
        free(st->ba[i].id);
    free(st->ba);
    free(st->bp);
    st->ba = NULL;
    st->bp = NULL;
    st->nba = st->nbp = st->capbp = 0;
}
