/* state.c — the state's open and close, and the commit that ends a run
 * (cts_state.h).  The concerns live in state_lock.c, state_journal.c,
 * state_store.c, state_index.c, state_quota.c and state_bulk.c over the
 * shared struct of state_int.h. */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * ssh's rule for its configuration, applied to the state: a directory
 * that someone else owns or may write to could have the journal, the
 * store or the lock swapped under us (a symlink to a victim, a forged
 * store that marks rows as sent).  nofollow: the directory must itself
 * not be a symlink (the per-account one, which only we create).  A
 * directory that does not exist passes (dry runs do not create it).
 * Returns 0 or CTS_ECONFIG with err filled (exit 78).
 */
static int check_dir(const char *dir, int nofollow, struct cts_error *err)
{
    struct stat sb;

    if ((nofollow ? lstat(dir, &sb) : stat(dir, &sb)) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode))
        return cts_error_setx(
            err, CTS_ECONFIG, CTS_EX_CONFIG,
            "the state directory %s is %s; remove it or "
            "choose another --state",
            dir, S_ISLNK(sb.st_mode) ? "a symbolic link" : "not a directory");
    if (sb.st_uid != geteuid())
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "the state directory %s belongs to uid %ld, "
                              "not to you; refusing to use it (choose "
                              "another --state)",
                              dir, (long)sb.st_uid);
    if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "permissions %04o for the state directory %s "
                              "are too open: others could replace its files; "
                              "chmod 700 %s",
                              (unsigned)(sb.st_mode & 07777), dir, dir);
    return 0;
}

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
    }
    rc = check_dir(p->dir, 0, err);
    if (rc == 0)
        rc = check_dir(st->dir, 1, err);
    if (rc != 0)
        goto fail;
    if (!st->dry_run) {
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
    cts_state_bulk_replay_end(st);
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
        st->jfd = open(
            path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
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
    cts_state_bulk_free(st);
    cts_state_mirror_free(st);
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
    if (rc == 0 && (st->had_bulk || st->nmr > 0))
        rc = cts_state_bulk_collect(st, &carry);
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
        rc = cts_state_bulk_keep(st, &carry);
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
