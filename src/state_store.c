/*
 * state_store.c — what the state keeps between runs (cts_state.h): the
 * store (sorted binary records of email key and fingerprint, with a
 * checksummed header naming the run that wrote it) and the failed file
 * (the last permanent failure per email key, as text).  Both are replaced
 * atomically at commit.
 */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

void cts_state_fails_sort(struct cts_state *st)
{
    if (st->nfails > 1)
        qsort(st->fails, st->nfails, sizeof(*st->fails), cmp_fail);
    st->sorted_fails = st->nfails;
}

const struct failure *cts_state_fail_find(const struct cts_state *st,
                                          uint64_t key)
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

int cts_state_failed_load(struct cts_state *st, const char *path)
{
    /* Never through a symlink planted in the state directory. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    if (f == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return e == ENOENT ? 0 : -e;
    }
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

/* The state lock makes this run the only writer: a fixed temporary name
 * (a crashed commit leaves one reusable file, not litter). */
int cts_state_afile_open(struct cts_afile *af, const char *dir,
                         const char *name)
{
    char *path = cts_xasprintf("%s/%s", dir, name);
    int rc = cts_afile_open(af, path, CTS_AFILE_FIXED);
    free(path);
    return rc;
}

/* ---- store ---- */

int cts_state_store_load(struct cts_state *st, const char *path,
                         uint64_t *run_id, struct cts_error *err)
{
    struct store_hdr h;
    struct stat sb;
    uint64_t check = 0, i;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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

int cts_state_failed_write(struct cts_state *st)
{
    struct cts_afile af;
    size_t i;
    int rc = cts_state_afile_open(&af, st->dir, "failed");
    if (rc != 0) {
        cts_afile_close(&af, 0);
        return rc;
    }
    cts_state_fails_sort(st);
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

/* Write the persisted slots of the index, sorted by key (the sort
 * consumes the index: the caller marks the state committed first). */
int cts_state_store_write(struct cts_state *st)
{
    struct cts_afile af;
    struct store_hdr h;
    size_t n, i, kept = 0;
    uint64_t check = 0;
    char rec[STORE_REC];
    int rc;

    n = cts_emailidx_sort(&st->ix);
    for (i = 0; i < n; i++) {
        if (st->ix.slots[i].kf & F_PERSIST)
            kept++;
    }
    rc = cts_state_afile_open(&af, st->dir, "store");
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
    return cts_afile_close(&af, rc == 0) != 0 && rc == 0 ? -EIO : rc;
}

void cts_state_fails_free(struct cts_state *st)
{
    size_t i;
    for (i = 0; i < st->nfails; i++) {
        free(st->fails[i].error_key);
        free(st->fails[i].message);
    }
    free(st->fails);
    st->fails = NULL;
    st->nfails = st->capfails = st->sorted_fails = 0;
}
