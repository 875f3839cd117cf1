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

#define EMAIL_SEED 0x63747373656d6c31ULL /* "ctssem l1" */
#define FP_SEED    0x6374737366703031ULL

uint64_t cts_state_email_key(const char *email)
{
    uint64_t k = cts_hash64(email, strlen(email), EMAIL_SEED) >> 8;
    return k == 0 ? 1 : k;
}

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


/* ---- failures ---- */

void cts_state_fail_add(struct cts_state *st, uint64_t key, int http,
                        const char *ekey, const char *msg)
{
    struct failure *f;
    if (st->nfails == st->capfails) {
        st->capfails = st->capfails ? st->capfails * 2 : 16;
        st->fails = cts_xrealloc(st->fails, st->capfails * sizeof(*f));
    }
    f = &st->fails[st->nfails++];
    f->key = key;
    f->seq = st->fail_seq++;
    f->http = http;
    f->error_key = ekey != NULL && *ekey ? cts_xstrdup(ekey) : NULL;
    f->message = msg != NULL && *msg ? cts_xstrdup(msg) : NULL;
}

static int cmp_fail(const void *a, const void *b)
{
    const struct failure *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void fails_sort(struct cts_state *st)
{
    if (st->nfails > 1)
        qsort(st->fails, st->nfails, sizeof(*st->fails), cmp_fail);
    st->sorted_fails = st->nfails;
}

/* The latest failure recorded for key among the sorted ones, or NULL. */
static const struct failure *fail_find(const struct cts_state *st, uint64_t key)
{
    size_t lo = 0, hi = st->sorted_fails;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->fails[mid].key <= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && st->fails[lo - 1].key == key)
        return &st->fails[lo - 1];
    return NULL;
}

/* Text fields of the failed file: tabs and newlines would break lines. */
static void put_clean(struct cts_buf *b, const char *s)
{
    if (s == NULL)
        return;
    for (; *s; s++)
        cts_buf_putc(b, *s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

static char *dup_field(const char *s, size_t n)
{
    return n == 0 ? NULL : cts_xstrndup(s, n);
}

static int load_failed(struct cts_state *st, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    while ((len = getline(&line, &cap, f)) > 0) {
        char *t1, *t2, *t3, *end;
        unsigned long long key;
        long http;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        t1 = strchr(line, '\t');
        t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
        t3 = t2 != NULL ? strchr(t2 + 1, '\t') : NULL;
        if (t3 == NULL)
            continue; /* not ours; a hand-edited line is ignored */
        errno = 0;
        key = strtoull(line, &end, 16);
        if (errno != 0 || end != t1 || key == 0)
            continue;
        http = strtol(t1 + 1, &end, 10);
        if (end != t2)
            continue;
        cts_state_fail_add(st, (uint64_t)key, (int)http, NULL, NULL);
        st->fails[st->nfails - 1].error_key =
            dup_field(t2 + 1, (size_t)(t3 - t2 - 1));
        st->fails[st->nfails - 1].message = dup_field(t3 + 1, strlen(t3 + 1));
    }
    free(line);
    fclose(f);
    return 0;
}

/* Start replacing DIR/name; see cts_afile_open.  The state lock makes
 * this run the only writer, so the temporary name is fixed. */
static int open_in(struct cts_afile *af, const char *dir, const char *name)
{
    char *path = cts_xasprintf("%s/%s", dir, name);
    int rc = cts_afile_open(af, path, CTS_AFILE_FIXED);
    free(path);
    return rc;
}

/* ---- store ---- */

static int load_store(struct cts_state *st, const char *path, uint64_t *run_id,
                      struct cts_error *err)
{
    struct store_hdr h;
    struct stat sb;
    uint64_t check = 0, i;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    *run_id = 0;
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        return cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                              strerror(-rc));
    }
    if (fstat(fd, &sb) != 0 || cts_read_full(fd, &h, sizeof(h)) != sizeof(h) ||
        memcmp(h.magic, STORE_MAGIC, 8) != 0 ||
        (uint64_t)sb.st_size != sizeof(h) + h.count * STORE_REC) {
        rc = CTS_EDATA;
        goto corrupt;
    }
    cts_emailidx_reserve(&st->ix, (size_t)h.count);
    buf = cts_xmalloc(STORE_REC * 4096);
    for (i = 0; i < h.count;) {
        size_t want = (size_t)(h.count - i < 4096 ? h.count - i : 4096);
        ssize_t got = cts_read_full(fd, buf, want * STORE_REC);
        size_t k;
        if (got != (ssize_t)(want * STORE_REC)) {
            rc = CTS_EDATA;
            goto corrupt;
        }
        for (k = 0; k < want; k++) {
            uint64_t kf;
            uint32_t fp;
            struct cts_eslot *s;
            memcpy(&kf, buf + k * STORE_REC, 8);
            memcpy(&fp, buf + k * STORE_REC + 8, 4);
            check = cts_hash64(buf + k * STORE_REC, STORE_REC, check);
            if ((kf >> 8) == 0) {
                rc = CTS_EDATA;
                goto corrupt;
            }
            s = cts_emailidx_insert(&st->ix, kf >> 8, NULL);
            s->kf = kf & ~(uint64_t)(CTS_EIX_FLAG_MASK & ~F_PERSIST);
            s->fp = fp;
            if (kf & F_CONF)
                st->stats.known++;
        }
        i += want;
    }
    if (check != h.check) {
        rc = CTS_EDATA;
        goto corrupt;
    }
    *run_id = h.run_id;
    free(buf);
    close(fd);
    return 0;
corrupt:
    free(buf);
    close(fd);
    /* Refuse rather than silently re-send everything: the user decides
     * (delete the file for a full resend). */
    return cts_error_setx(err, rc, CTS_EX_CANTCREAT,
                          "%s: the state store is corrupt; remove it to "
                          "resend every contact (or restore a backup)",
                          path);
}

/* ---- quota file ---- */

/* Content: "DAY USED EXHAUSTED\n", padded to a fixed size so that pwrite
 * at offset 0 always replaces the whole record. */
#define QREC 48

static void quota_read(int fd, long *day, long *used, int *exh)
{
    char b[QREC + 1];
    ssize_t n = pread(fd, b, QREC, 0);
    char *p, *end;
    *day = -1;
    *used = 0;
    *exh = 0;
    if (n <= 0)
        return;
    b[n] = '\0';
    p = b;
    *day = strtol(p, &end, 10);
    if (end == p)
        goto bad;
    p = end;
    *used = strtol(p, &end, 10);
    if (end == p)
        goto bad;
    p = end;
    *exh = (int)strtol(p, &end, 10);
    return;
bad:
    *day = -1;
    *used = 0;
    *exh = 0;
}

static int quota_write(int fd, long day, long used, int exh)
{
    char b[QREC];
    int n = snprintf(b, sizeof(b), "%ld %ld %d", day, used, exh);
    memset(b + n, ' ', sizeof(b) - (size_t)n - 1);
    b[QREC - 1] = '\n';
    return pwrite(fd, b, QREC, 0) == QREC ? 0 : -errno;
}

int cts_state_quota_take(struct cts_state *st, long n)
{
    long day, used;
    int exh, rc = 0;
    if (st->dry_run || st->qfd < 0 || n <= 0)
        return 0;
    /* flock serialises runs of other accounts that share this API key. */
    if (flock(st->qfd, LOCK_EX) != 0)
        return -errno;
    quota_read(st->qfd, &day, &used, &exh);
    if (day != st->now / 86400) {
        day = st->now / 86400;
        used = 0;
        exh = 0;
    }
    if (exh || (st->daily_quota > 0 && used + n > st->daily_quota))
        rc = CTS_EQUOTA;
    else
        rc = quota_write(st->qfd, day, used + n, 0);
    flock(st->qfd, LOCK_UN);
    return rc;
}

long cts_state_quota_remaining(struct cts_state *st)
{
    long day, used, left;
    int exh;
    if (st->qfd < 0)
        return st->daily_quota > 0 ? st->daily_quota : LONG_MAX;
    if (flock(st->qfd, LOCK_SH) != 0)
        return 0;
    quota_read(st->qfd, &day, &used, &exh);
    flock(st->qfd, LOCK_UN);
    if (day != st->now / 86400) {
        used = 0;
        exh = 0;
    }
    if (exh)
        return 0;
    if (st->daily_quota <= 0)
        return LONG_MAX;
    left = st->daily_quota - used;
    return left < 0 ? 0 : left;
}

void cts_state_quota_release(struct cts_state *st, long n)
{
    long day, used;
    int exh;
    if (st->dry_run || st->qfd < 0 || n <= 0)
        return;
    if (flock(st->qfd, LOCK_EX) != 0)
        return;
    quota_read(st->qfd, &day, &used, &exh);
    /* Only today's count: after midnight the taken block was yesterday's. */
    if (day == st->now / 86400)
        quota_write(st->qfd, day, used > n ? used - n : 0, exh);
    flock(st->qfd, LOCK_UN);
}

void cts_state_quota_exhausted(struct cts_state *st)
{
    long day, used;
    int exh;
    if (st->dry_run || st->qfd < 0)
        return;
    if (flock(st->qfd, LOCK_EX) != 0)
        return;
    quota_read(st->qfd, &day, &used, &exh);
    if (day != st->now / 86400) {
        day = st->now / 86400;
        used = 0;
    }
    quota_write(st->qfd, day, used, 1);
    flock(st->qfd, LOCK_UN);
}

void cts_state_set_now(struct cts_state *st, long now)
{
    st->now = now;
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
        st->qfd = open(st->qpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    } else {
        st->qfd = open(st->qpath, O_RDONLY | O_CLOEXEC);
    }
    if (st->qfd < 0 && (!st->dry_run || errno != ENOENT)) {
        rc = -errno;
        cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", st->qpath,
                       strerror(-rc));
        goto fail;
    }

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
    rc = load_store(st, path, &store_run, err);
    free(path);
    if (rc != 0)
        goto fail;
    path = cts_xasprintf("%s/failed", st->dir);
    rc = load_failed(st, path);
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
    fails_sort(st);
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
    for (i = 0; i < st->nfails; i++) {
        free(st->fails[i].error_key);
        free(st->fails[i].message);
    }
    free(st->fails);
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

/* ---- email index, fingerprints, lookups ---- */

int cts_state_seen(struct cts_state *st, const char *email, uint32_t row,
                   uint32_t *first_row)
{
    return cts_state_seen_key(st, cts_state_email_key(email), row, first_row);
}

void cts_state_prefetch(const struct cts_state *st, uint64_t key)
{
    if (!st->committed)
        cts_emailidx_prefetch(&st->ix, key);
}

int cts_state_seen_key(struct cts_state *st, uint64_t key, uint32_t row,
                       uint32_t *first_row)
{
    struct cts_eslot *s = cts_emailidx_insert(&st->ix, key, NULL);
    if (s->row != 0) {
        if (first_row != NULL)
            *first_row = s->row;
        return 1;
    }
    s->row = row != 0 ? row : UINT32_MAX;
    return 0;
}

/*
 * The fingerprint hashes one canonical serialisation of the contact: per
 * item a tag byte, then the value and a NUL, or 0xff for an absent value,
 * so ("ab","c") and ("a","bc") and NULL vs "" all differ.  Bytes gather in
 * a small buffer hashed (chained) when it fills: one hash per row, not two
 * per field (it was a tenth of a million-row dry run).
 */
struct fpbuf {
    uint64_t h;
    size_t n;
    unsigned char b[512];
};

static void fp_flush(struct fpbuf *f)
{
    f->h = cts_hash64(f->b, f->n, f->h);
    f->n = 0;
}

static void fp_bytes(struct fpbuf *f, const void *p, size_t len)
{
    const unsigned char *c = p;

    while (len > 0) {
        size_t take = sizeof(f->b) - f->n;
        if (take > len)
            take = len;
        memcpy(f->b + f->n, c, take);
        f->n += take;
        c += take;
        len -= take;
        if (f->n == sizeof(f->b))
            fp_flush(f);
    }
}

/* fp_bytes for the usual case, inlined: the bytes fit in the buffer (most
 * rows fit whole; a call per tag byte was a twentieth of a dry run). */
static inline void fp_put(struct fpbuf *f, const void *p, size_t len)
{
    if (len <= sizeof(f->b) - f->n) {
        memcpy(f->b + f->n, p, len);
        f->n += len;
    } else {
        fp_bytes(f, p, len);
    }
}

static void hstr(struct fpbuf *f, unsigned char tag, const char *s)
{
    static const unsigned char absent = 0xff;

    fp_put(f, &tag, 1);
    if (s == NULL)
        fp_put(f, &absent, 1);
    else
        fp_put(f, s, strlen(s) + 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_cf(const void *a, const void *b)
{
    const struct cts_custom_field *x =
        *(const struct cts_custom_field *const *)a;
    const struct cts_custom_field *y =
        *(const struct cts_custom_field *const *)b;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

uint32_t cts_state_fingerprint(const struct cts_contact *c, char *const *lists,
                               size_t nlists)
{
    struct fpbuf f;
    size_t i;

    f.h = FP_SEED;
    f.n = 0;
    /* Tags: the field's index for fields, then 0xf0.. for the others. */
    for (i = 0; i < CTS_F__COUNT; i++)
        hstr(&f, (unsigned char)i, c->f[i]);
    if (c->ncf > 0) {
        const struct cts_custom_field **cf = cts_xmalloc(c->ncf * sizeof(*cf));
        for (i = 0; i < c->ncf; i++)
            cf[i] = &c->cf[i];
        qsort(cf, c->ncf, sizeof(*cf), cmp_cf);
        for (i = 0; i < c->ncf; i++) {
            hstr(&f, 0xf0, cf[i]->name);
            hstr(&f, 0xf1, cf[i]->value);
        }
        free(cf);
    }
    if (nlists == 1) {
        /* One list (the usual run): nothing to sort, nothing to copy. */
        hstr(&f, 0xf2, lists[0]);
    } else if (nlists > 1) {
        char **l = cts_xmalloc(nlists * sizeof(*l));
        memcpy(l, lists, nlists * sizeof(*l));
        qsort(l, nlists, sizeof(*l), cmp_str);
        for (i = 0; i < nlists; i++)
            hstr(&f, 0xf2, l[i]);
        free(l);
    }
    fp_flush(&f);
    return (uint32_t)(f.h ^ (f.h >> 32));
}

enum cts_state_verdict cts_state_lookup(struct cts_state *st, const char *email,
                                        uint32_t fp,
                                        struct cts_state_prev *prev)
{
    return cts_state_lookup_key(st, cts_state_email_key(email), fp, prev);
}

enum cts_state_verdict cts_state_lookup_key(struct cts_state *st, uint64_t key,
                                            uint32_t fp,
                                            struct cts_state_prev *prev)
{
    const struct cts_eslot *s =
        st->committed ? NULL : cts_emailidx_find(&st->ix, key);
    unsigned f, res;
    if (prev != NULL)
        memset(prev, 0, sizeof(*prev));
    if (s == NULL)
        return CTS_SV_SEND;
    f = (unsigned)(s->kf & CTS_EIX_FLAG_MASK);
    res = (f & F_RES_MASK) >> F_RES_SHIFT;
    /* The killed run's confirmations stand even under --full: re-running
     * the same command must not send them again. */
    if (res != 0 && s->fp == fp) {
        if (prev != NULL) {
            prev->status = res == 1   ? CTS_ST_CREATED
                           : res == 2 ? CTS_ST_UPDATED
                                      : CTS_ST_IMPORTED;
            prev->message = "settled by an interrupted run";
        }
        return CTS_SV_RESUMED;
    }
    if (f & F_DOUBT)
        return CTS_SV_SEND_IN_DOUBT;
    if (st->full || s->fp != fp)
        return CTS_SV_SEND;
    if (f & F_CONF)
        return CTS_SV_UNCHANGED;
    if (f & F_FAIL) {
        if (prev != NULL) {
            const struct failure *fl = fail_find(st, key);
            prev->status = CTS_ST_FAILED;
            if (fl != NULL) {
                prev->http_status = fl->http;
                prev->error_key = fl->error_key;
                prev->message = fl->message;
            }
        }
        return CTS_SV_FAILED_BEFORE;
    }
    return CTS_SV_SEND;
}

int cts_state_unchanged(struct cts_state *st, const char *email, uint32_t fp)
{
    return cts_state_lookup(st, email, fp, NULL) == CTS_SV_UNCHANGED;
}

int cts_state_in_doubt(struct cts_state *st, const char *email)
{
    const struct cts_eslot *s =
        st->committed ? NULL
                      : cts_emailidx_find(&st->ix, cts_state_email_key(email));
    return s != NULL && (s->kf & F_DOUBT) != 0;
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
    int rc = open_in(&af, st->dir, "journal");
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

static int write_failed(struct cts_state *st)
{
    struct cts_afile af;
    size_t i;
    int rc = open_in(&af, st->dir, "failed");
    if (rc != 0) {
        cts_afile_close(&af, 0);
        return rc;
    }
    fails_sort(st);
    for (i = 0; i < st->nfails && rc == 0; i++) {
        const struct failure *f = &st->fails[i];
        const struct cts_eslot *s;
        struct cts_buf line;
        /* Only the latest entry per key, and only while the store still
         * says "failed" (a later success supersedes it). */
        if (i + 1 < st->nfails && st->fails[i + 1].key == f->key)
            continue;
        s = cts_emailidx_find(&st->ix, f->key);
        if (s == NULL || !(s->kf & F_FAIL))
            continue;
        cts_buf_init(&line, 0);
        cts_buf_appendf(&line, "%016llx\t%d\t", (unsigned long long)f->key,
                        f->http);
        put_clean(&line, f->error_key);
        cts_buf_putc(&line, '\t');
        put_clean(&line, f->message);
        cts_buf_putc(&line, '\n');
        rc = cts_afile_write(&af, line.data, line.len);
        cts_buf_free(&line);
    }
    return cts_afile_close(&af, rc == 0) != 0 ? -EIO : rc;
}

int cts_state_commit(struct cts_state *st, struct cts_error *err)
{
    struct cts_afile af;
    struct store_hdr h;
    size_t n, i, kept = 0;
    uint64_t check = 0;
    char rec[STORE_REC];
    char *jpath;
    int rc;
    struct cts_buf carry;
    if (st->dry_run || st->committed)
        return 0;
    cts_buf_init(&carry, 0);
    rc = cts_state_flush(st);
    if (rc == 0)
        rc = write_failed(st);
    if (rc == 0 && st->had_bulk)
        rc = collect_open_bulk(st, &carry);
    if (rc != 0) {
        cts_buf_free(&carry);
        return cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s/failed: %s",
                              st->dir, cts_strerror(rc));
    }
    st->committed = 1;
    n = cts_emailidx_sort(&st->ix);
    for (i = 0; i < n; i++) {
        if (st->ix.slots[i].kf & F_PERSIST)
            kept++;
    }
    rc = open_in(&af, st->dir, "store");
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, STORE_MAGIC, 8);
    h.count = kept;
    h.run_id = st->run_id;
    /* The header's checksum is only known at the end: write a placeholder
     * and patch it once the records are written. */
    if (rc == 0)
        rc = cts_afile_write(&af, &h, sizeof(h));
    for (i = 0; i < n && rc == 0; i++) {
        const struct cts_eslot *s = &st->ix.slots[i];
        uint64_t kf = s->kf & ~(uint64_t)(CTS_EIX_FLAG_MASK & ~F_PERSIST);
        if (!(s->kf & F_PERSIST))
            continue;
        memcpy(rec, &kf, 8);
        memcpy(rec + 8, &s->fp, 4);
        check = cts_hash64(rec, STORE_REC, check);
        rc = cts_afile_write(&af, rec, STORE_REC);
    }
    /* Chained per 12-byte record, as the loader checks it. */
    h.check = check;
    if (rc == 0)
        rc = cts_afile_pwrite(&af, &h, sizeof(h), 0);
    rc = cts_afile_close(&af, rc == 0) != 0 && rc == 0 ? -EIO : rc;
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
