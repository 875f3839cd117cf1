/* test_state.c — lock, journal replay (every torn length), store merge,
 * failures, fingerprints, dry-run and the daily quota with an injected clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cts_state.h"
#include "cts_util.h"
#include "testutil.h"

#define DAY0 1764288000L /* 2025-11-28T00:00:00Z */

struct fx {
    char dir[64];
    struct cts_state_params p;
};

static int setup(void **state)
{
    struct fx *f = cts_xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cts-state-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->p.dir = f->dir;
    f->p.api = CTS_API_V3;
    f->p.api_key = "demo-v3-client-00000000000001";
    f->p.account = "a07e1demo0001";
    f->p.now = DAY0 + 3600;
    f->p.daily_quota = 10000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static struct cts_state *must_open(const struct cts_state_params *p)
{
    struct cts_state *st = NULL;
    struct cts_error err = {0};
    int rc = cts_state_open(p, &st, &err);
    if (rc != 0)
        print_message("open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(st);
    return st;
}

static void commit_close(struct cts_state *st)
{
    struct cts_error err = {0};
    assert_int_equal(cts_state_commit(st, &err), 0);
    cts_state_close(st);
}

static char *spath(struct cts_state *st, const char *name)
{
    return cts_xasprintf("%s/%s", cts_state_path(st), name);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* ---- lock ---- */

static void test_lock_second_open(void **state)
{
    struct fx *f = *state;
    struct cts_state *a = must_open(&f->p), *b = NULL;
    struct cts_error err = {0};
    char pid[32];
    assert_int_equal(cts_state_open(&f->p, &b, &err), CTS_ELOCKED);
    assert_null(b);
    assert_int_equal(err.exit_code, CTS_EX_TEMPFAIL);
    snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));
    assert_non_null(strstr(err.msg, "started 20"));
    /* The key never appears in a path. */
    assert_null(strstr(cts_state_path(a), "demo-v3-client"));
    /* Another account has its own state and lock. */
    f->p.account = "other";
    b = must_open(&f->p);
    cts_state_close(b);
    f->p.account = "a07e1demo0001";
    cts_state_close(a);
    b = must_open(&f->p);
    cts_state_close(b);
}

static void test_lock_dead_holder(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = NULL;
    struct cts_error err = {0};
    int ready[2], status;
    char c, pid[32];
    pid_t child;
    assert_int_equal(pipe(ready), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct cts_state *cs = NULL;
        close(ready[0]);
        if (cts_state_open(&f->p, &cs, NULL) != 0)
            _exit(2);
        if (write(ready[1], "x", 1) != 1)
            _exit(3);
        pause(); /* hold the lock until killed */
        _exit(0);
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(cts_state_open(&f->p, &st, &err), CTS_ELOCKED);
    snprintf(pid, sizeof(pid), "pid %ld,", (long)child);
    assert_non_null(strstr(err.msg, pid));
    /* kill -9: the kernel releases the flock; the stale lock file (still
     * holding the dead pid) must not block. */
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    st = must_open(&f->p);
    cts_state_close(st);

    /* A holder that exits without closing. */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct cts_state *cs = NULL;
        _exit(cts_state_open(&f->p, &cs, NULL) == 0 ? 0 : 2);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(WEXITSTATUS(status), 0);
    st = must_open(&f->p);
    cts_state_close(st);
}

/* ---- duplicates, fingerprints ---- */

static void test_seen(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    uint32_t first = 0;
    assert_int_equal(cts_state_seen(st, "a@x.com", 1, &first), 0);
    assert_int_equal(cts_state_seen(st, "b@x.com", 2, &first), 0);
    assert_int_equal(cts_state_seen(st, "a@x.com", 3, &first), 1);
    assert_int_equal(first, 1);
    assert_int_equal(cts_state_seen(st, "b@x.com", 7, NULL), 1);
    cts_state_close(st);
}

static void test_fingerprint(void **state)
{
    struct cts_contact c;
    struct cts_custom_field cf[2] = {{"A", "1"}, {"B", "2"}};
    struct cts_custom_field cf2[2] = {{"B", "2"}, {"A", "1"}};
    char *l1[] = {"1", "2"}, *l2[] = {"2", "1"}, *l3[] = {"1"};
    uint32_t base, fp;
    (void)state;
    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "a@x.com";
    c.f[CTS_F_FIRST_NAME] = "Ann";
    base = cts_state_fingerprint(&c, l1, 2);
    assert_int_equal(cts_state_fingerprint(&c, l2, 2), base);
    assert_int_not_equal(cts_state_fingerprint(&c, l3, 1), base);
    c.f[CTS_F_FIRST_NAME] = "Anne";
    assert_int_not_equal(cts_state_fingerprint(&c, l1, 2), base);
    c.f[CTS_F_FIRST_NAME] = "";
    fp = cts_state_fingerprint(&c, l1, 2);
    c.f[CTS_F_FIRST_NAME] = NULL;
    assert_int_not_equal(cts_state_fingerprint(&c, l1, 2), fp);
    /* A value moved to another field is a change. */
    c.f[CTS_F_FIRST_NAME] = NULL;
    c.f[CTS_F_LAST_NAME] = "Ann";
    assert_int_not_equal(cts_state_fingerprint(&c, l1, 2), base);
    c.f[CTS_F_LAST_NAME] = NULL;
    c.f[CTS_F_FIRST_NAME] = "Ann";
    c.cf = cf;
    c.ncf = 2;
    fp = cts_state_fingerprint(&c, l1, 2);
    assert_int_not_equal(fp, base);
    c.cf = cf2;
    assert_int_equal(cts_state_fingerprint(&c, l1, 2), fp);
}

/* ---- store and journal ---- */

static void test_store_merge(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    struct cts_state_stats stats;
    char *store;
    /* Run 1: a and b confirmed, c deferred. */
    assert_int_equal(cts_state_lookup(st, "a@x.com", 11, NULL), CTS_SV_SEND);
    cts_state_journal_begin(st, "a@x.com", 1, 11);
    cts_state_journal_done(st, "a@x.com", 1, 11, CTS_ST_CREATED, 0, 201, NULL,
                           NULL);
    cts_state_journal_begin(st, "b@x.com", 2, 22);
    cts_state_journal_done(st, "b@x.com", 2, 22, CTS_ST_UPDATED, 0, 200, NULL,
                           NULL);
    cts_state_journal_done(st, "c@x.com", 3, 33, CTS_ST_DEFERRED, 0, 0, NULL,
                           NULL);
    store = spath(st, "store");
    commit_close(st);
    assert_int_equal(file_size(store), 32 + 2 * 12);

    /* Run 2: a changed and confirmed, d new; b untouched stays. */
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 11, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "b@x.com", 22, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "c@x.com", 33, NULL), CTS_SV_SEND);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 12, NULL), CTS_SV_SEND);
    cts_state_journal_done(st, "a@x.com", 1, 12, CTS_ST_UPDATED, 0, 200, NULL,
                           NULL);
    cts_state_journal_done(st, "d@x.com", 4, 44, CTS_ST_CREATED, 0, 200, NULL,
                           NULL);
    commit_close(st);
    assert_int_equal(file_size(store), 32 + 3 * 12);

    st = must_open(&f->p);
    cts_state_get_stats(st, &stats);
    assert_int_equal(stats.known, 3);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 11, NULL), CTS_SV_SEND);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 12, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "b@x.com", 22, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "d@x.com", 44, NULL),
                     CTS_SV_UNCHANGED);
    cts_state_close(st);

    /* --full sends everything. */
    f->p.full = 1;
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "b@x.com", 22, NULL), CTS_SV_SEND);
    cts_state_close(st);
    f->p.full = 0;

    /* A corrupt store is refused, not silently ignored. */
    {
        int fd = open(store, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "\x5a", 1, 40), 1);
        close(fd);
    }
    {
        struct cts_state *bad = NULL;
        struct cts_error err = {0};
        assert_int_equal(cts_state_open(&f->p, &bad, &err), CTS_EDATA);
        assert_non_null(strstr(err.msg, "corrupt"));
    }
    free(store);
}

static void test_failures(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    struct cts_state_prev prev;
    cts_state_journal_begin(st, "bad@x.com", 1, 5);
    cts_state_journal_done(st, "bad@x.com", 1, 5, CTS_ST_FAILED, 1, 400,
                           "json.field.invalid", "Bad\tphone\nnumber");
    cts_state_journal_begin(st, "flaky@x.com", 2, 6);
    cts_state_journal_done(st, "flaky@x.com", 2, 6, CTS_ST_FAILED, 0, 503,
                           "server", "unavailable");
    commit_close(st);

    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "bad@x.com", 5, &prev),
                     CTS_SV_FAILED_BEFORE);
    assert_int_equal(prev.status, CTS_ST_FAILED);
    assert_int_equal(prev.http_status, 400);
    assert_string_equal(prev.error_key, "json.field.invalid");
    assert_string_equal(prev.message, "Bad phone number");
    /* Changed data is tried again; transient failures are retried. */
    assert_int_equal(cts_state_lookup(st, "bad@x.com", 7, NULL), CTS_SV_SEND);
    assert_int_equal(cts_state_lookup(st, "flaky@x.com", 6, NULL), CTS_SV_SEND);
    /* Success later supersedes the failure. */
    cts_state_journal_done(st, "bad@x.com", 1, 7, CTS_ST_UPDATED, 0, 200, NULL,
                           NULL);
    commit_close(st);
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "bad@x.com", 7, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "bad@x.com", 5, NULL), CTS_SV_SEND);
    cts_state_close(st);
}

/* A killed run: records written, no commit (close without commit acts like
 * kill -9 for the files). */
static char *killed_run(struct fx *f, long *jsize)
{
    struct cts_state *st = must_open(&f->p);
    char *j = spath(st, "journal");
    cts_state_journal_begin(st, "r1@x.com", 1, 101);
    cts_state_journal_done(st, "r1@x.com", 1, 101, CTS_ST_CREATED, 0, 200, NULL,
                           NULL);
    cts_state_journal_begin(st, "r2@x.com", 2, 102);
    cts_state_journal_done(st, "r2@x.com", 2, 102, CTS_ST_FAILED, 1, 400,
                           "json.max.length.violation", "too long");
    cts_state_journal_begin(st, "r3@x.com", 3, 103);
    cts_state_journal_done(st, "r3@x.com", 3, 103, CTS_ST_UPDATED, 0, 200, NULL,
                           NULL);
    cts_state_journal_begin(st, "r4@x.com", 4, 104); /* in flight */
    cts_state_close(st);
    *jsize = file_size(j);
    return j;
}

static void test_resume(void **state)
{
    struct fx *f = *state;
    struct cts_state_prev prev;
    struct cts_state_stats stats;
    long jsize;
    char *j = killed_run(f, &jsize);
    struct cts_state *st = must_open(&f->p);
    cts_state_get_stats(st, &stats);
    assert_int_equal(stats.resumed, 2);
    assert_int_equal(stats.in_doubt, 1);
    assert_int_equal(cts_state_lookup(st, "r1@x.com", 101, &prev),
                     CTS_SV_RESUMED);
    assert_int_equal(prev.status, CTS_ST_CREATED);
    assert_int_equal(cts_state_lookup(st, "r3@x.com", 103, &prev),
                     CTS_SV_RESUMED);
    assert_int_equal(prev.status, CTS_ST_UPDATED);
    assert_int_equal(cts_state_lookup(st, "r2@x.com", 102, &prev),
                     CTS_SV_FAILED_BEFORE);
    assert_string_equal(prev.error_key, "json.max.length.violation");
    assert_int_equal(cts_state_lookup(st, "r4@x.com", 104, NULL),
                     CTS_SV_SEND_IN_DOUBT);
    assert_true(cts_state_in_doubt(st, "r4@x.com"));
    assert_false(cts_state_in_doubt(st, "r1@x.com"));
    /* Changed since the killed run: sent normally. */
    assert_int_equal(cts_state_lookup(st, "r1@x.com", 999, NULL), CTS_SV_SEND);
    cts_state_journal_done(st, "r4@x.com", 4, 104, CTS_ST_UPDATED, 0, 200, NULL,
                           NULL);
    commit_close(st);
    assert_int_equal(file_size(j), -1); /* journal removed at commit */

    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "r1@x.com", 101, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "r3@x.com", 103, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "r4@x.com", 104, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "r2@x.com", 102, NULL),
                     CTS_SV_FAILED_BEFORE);
    cts_state_close(st);
    free(j);
}

/* Coalescing: records wait in memory until a push, then reach the file
 * whole and in order, in one go; a long wait is bounded (64 KiB). */
static void test_coalesce(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    char *j = spath(st, "journal");
    struct cts_state_stats stats;
    long before, after, grown;
    char email[32];
    int i;

    cts_state_journal_coalesce(st, 1);
    before = file_size(j);
    cts_state_journal_begin(st, "r1@x.com", 1, 101);
    cts_state_journal_done(st, "r1@x.com", 1, 101, CTS_ST_CREATED, 0, 200, NULL,
                           NULL);
    cts_state_journal_begin(st, "r4@x.com", 4, 104);
    assert_int_equal(file_size(j), before); /* held */
    assert_int_equal(cts_state_journal_push(st), 0);
    after = file_size(j);
    assert_true(after > before);
    assert_int_equal(cts_state_journal_push(st), 0); /* nothing pending */
    assert_int_equal(file_size(j), after);
    /* Held records never wait for more than 64 KiB of others. */
    for (i = 0; i < 5000 && file_size(j) == after; i++) {
        snprintf(email, sizeof(email), "n%d@x.com", i);
        cts_state_journal_begin(st, email, (uint32_t)(10 + i), 7);
    }
    grown = file_size(j) - after;
    assert_true(grown > 0 && grown <= 64 * 1024 + 64);
    /* Leaving coalescing writes the rest. */
    cts_state_journal_coalesce(st, 0);
    cts_state_journal_done(st, "zz@x.com", 99999, 7, CTS_ST_CREATED, 0, 200,
                           NULL, NULL);
    assert_true(file_size(j) > after + grown);
    /* A killed run's pushed records read back as without coalescing. */
    cts_state_close(st);
    st = must_open(&f->p);
    cts_state_get_stats(st, &stats);
    assert_int_equal(stats.resumed, 2);
    assert_int_equal(cts_state_lookup(st, "r1@x.com", 101, NULL),
                     CTS_SV_RESUMED);
    assert_int_equal(cts_state_lookup(st, "r4@x.com", 104, NULL),
                     CTS_SV_SEND_IN_DOUBT);
    assert_int_equal(cts_state_lookup(st, "n0@x.com", 7, NULL),
                     CTS_SV_SEND_IN_DOUBT);
    cts_state_close(st);
    free(j);
}

/* Commit succeeded, then the process died before removing the journal: the
 * next run must not report those rows as "settled by an interrupted run". */
static void test_commit_then_crash(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    char *j = spath(st, "journal"), *copy;
    char buf[4096];
    ssize_t n;
    int in, out;
    cts_state_journal_done(st, "z@x.com", 1, 9, CTS_ST_CREATED, 0, 200, NULL,
                           NULL);
    cts_state_flush(st);
    copy = cts_xasprintf("%s.copy", j);
    in = open(j, O_RDONLY);
    out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    n = read(in, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    commit_close(st);
    assert_int_equal(rename(copy, j), 0);
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "z@x.com", 9, NULL),
                     CTS_SV_UNCHANGED);
    cts_state_close(st);
    free(copy);
    free(j);
}

/* Truncate the killed run's journal at every byte length: open must never
 * fail, apply exactly the complete records, and cut the torn tail. */
static void test_torn_journal(void **state)
{
    struct fx *f = *state;
    long jsize, len;
    char *j = killed_run(f, &jsize);
    char *full = cts_xmalloc((size_t)jsize);
    int fd = open(j, O_RDONLY);
    long bounds[16];
    int nb = 0;
    assert_true(fd >= 0);
    assert_int_equal(read(fd, full, (size_t)jsize), jsize);
    close(fd);
    /* Record boundaries: 32-byte headers + payload length at offset 6. */
    for (len = 0; len < jsize && nb < 16;) {
        uint16_t plen;
        memcpy(&plen, full + len + 6, 2);
        len += 32 + plen;
        bounds[nb++] = len;
    }
    assert_int_equal(bounds[nb - 1], jsize);
    for (len = 0; len <= jsize; len++) {
        struct cts_state *st;
        struct cts_state_stats stats;
        int complete = 0, k;
        long after;
        fd = open(j, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, full, (size_t)len), len);
        /* A torn tail may also hold garbage, not just be short. */
        if (len % 3 == 0 && len < jsize)
            assert_int_equal(write(fd, "\xde\xad", 2), 2);
        close(fd);
        for (k = 0; k < nb; k++)
            if (bounds[k] <= len)
                complete = k + 1;
        st = must_open(&f->p);
        cts_state_get_stats(st, &stats);
        assert_int_equal(stats.journal_records, (size_t)complete);
        /* Records: OPEN, B1, D1, B2, D2, B3, D3, B4. */
        assert_int_equal(cts_state_lookup(st, "r1@x.com", 101, NULL),
                         complete >= 3   ? CTS_SV_RESUMED
                         : complete == 2 ? CTS_SV_SEND_IN_DOUBT
                                         : CTS_SV_SEND);
        assert_int_equal(cts_state_lookup(st, "r4@x.com", 104, NULL),
                         complete >= 8 ? CTS_SV_SEND_IN_DOUBT : CTS_SV_SEND);
        /* Torn tail cut, then this run's OPEN record appended. */
        after = file_size(j);
        assert_int_equal(after, (complete ? bounds[complete - 1] : 0) + 32);
        cts_state_close(st);
    }
    free(full);
    free(j);
}

static void test_dry_run(void **state)
{
    struct fx *f = *state;
    struct cts_state *st, *holder;
    char *missing = cts_xasprintf("%s/not-yet", f->dir);
    long jsize;
    char *j;
    /* A missing state dir stays missing. */
    f->p.dir = missing;
    f->p.dry_run = 1;
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 1, NULL), CTS_SV_SEND);
    assert_int_equal(cts_state_quota_take(st, 5), 0);
    commit_close(st);
    assert_int_equal(file_size(missing), -1);
    f->p.dir = f->dir;
    f->p.dry_run = 0;

    j = killed_run(f, &jsize);
    /* Dry-run works next to a running holder and sees its journal. */
    holder = must_open(&f->p);
    f->p.dry_run = 1;
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "r1@x.com", 101, NULL),
                     CTS_SV_RESUMED);
    cts_state_journal_done(st, "q@x.com", 1, 1, CTS_ST_CREATED, 0, 200, NULL,
                           NULL);
    commit_close(st);
    cts_state_close(holder);
    f->p.dry_run = 0;
    /* The holder's journal is still there (it did not commit). */
    assert_true(file_size(j) > 0);
    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "q@x.com", 1, NULL), CTS_SV_SEND);
    cts_state_close(st);
    free(missing);
    free(j);
}

/* ---- bulk rows across a kill ---- */

static void test_bulk_resume(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    const char *id = NULL;
    uint32_t s1, s2, line = 0;
    struct cts_state_prev prev;
    s1 = cts_state_bulk_serial(st);
    assert_int_equal(cts_state_bulk_begin(st, "a@x.com", 1, 11, s1, 1), 0);
    assert_int_equal(cts_state_bulk_begin(st, "b@x.com", 2, 12, s1, 2), 0);
    assert_int_equal(cts_state_bulk_begin(st, "c@x.com", 3, 13, s1, 3), 0);
    assert_int_equal(cts_state_bulk_started(st, s1, "act-0001"), 0);
    s2 = cts_state_bulk_serial(st);
    assert_true(s2 > s1);
    /* Chunk 2 was never accepted (killed during its POST). */
    assert_int_equal(cts_state_bulk_begin(st, "d@x.com", 4, 14, s2, 1), 0);
    cts_state_journal_done(st, "a@x.com", 1, 11, CTS_ST_IMPORTED, 0, 0, NULL,
                           NULL);
    cts_state_close(st); /* killed */

    st = must_open(&f->p);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 11, &prev),
                     CTS_SV_RESUMED);
    assert_int_equal(prev.status, CTS_ST_IMPORTED);
    assert_int_equal(cts_state_bulk_pending(st, "a@x.com", 11, &id, &line), 0);
    assert_int_equal(cts_state_bulk_pending(st, "b@x.com", 12, &id, &line), 1);
    assert_string_equal(id, "act-0001");
    assert_int_equal(line, 2);
    assert_int_equal(cts_state_bulk_pending(st, "b@x.com", 99, NULL, NULL), 0);
    assert_int_equal(cts_state_lookup(st, "c@x.com", 13, NULL),
                     CTS_SV_SEND_IN_DOUBT);
    /* Not accepted: just in doubt, sent again (imports are upserts). */
    assert_int_equal(cts_state_bulk_pending(st, "d@x.com", 14, NULL, NULL), 0);
    assert_int_equal(cts_state_lookup(st, "d@x.com", 14, NULL),
                     CTS_SV_SEND_IN_DOUBT);
    /* Serials stay unique across the resume. */
    assert_true(cts_state_bulk_serial(st) > s2);
    /* This run collects b and dies too. */
    cts_state_journal_done(st, "b@x.com", 2, 12, CTS_ST_IMPORTED, 0, 0, NULL,
                           NULL);
    cts_state_close(st);

    st = must_open(&f->p);
    assert_int_equal(cts_state_bulk_pending(st, "b@x.com", 12, NULL, NULL), 0);
    assert_int_equal(cts_state_lookup(st, "b@x.com", 12, NULL), CTS_SV_RESUMED);
    assert_int_equal(cts_state_bulk_pending(st, "c@x.com", 13, &id, &line), 1);
    assert_int_equal(line, 3);
    /* A failed activity settles its rows (transient): no longer pending. */
    cts_state_journal_done(st, "c@x.com", 3, 13, CTS_ST_FAILED, 0, 0, NULL,
                           NULL);
    cts_state_close(st);
    st = must_open(&f->p);
    assert_int_equal(cts_state_bulk_pending(st, "c@x.com", 13, NULL, NULL), 0);
    commit_close(st);
    st = must_open(&f->p);
    assert_int_equal(cts_state_bulk_pending(st, "c@x.com", 13, NULL, NULL), 0);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 11, NULL),
                     CTS_SV_UNCHANGED);
    cts_state_close(st);
}

/* A run that stops (quota, SIGINT) while an activity is still running
 * commits; the next run must still poll that activity. */
static void test_bulk_open_at_commit(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    const char *id = NULL;
    uint32_t s1, line = 0;
    s1 = cts_state_bulk_serial(st);
    cts_state_journal_begin(st, "p@x.com", 1, 1);
    cts_state_journal_done(st, "p@x.com", 1, 1, CTS_ST_CREATED, 0, 200, NULL,
                           NULL);
    cts_state_bulk_begin(st, "a@x.com", 2, 11, s1, 1);
    cts_state_bulk_begin(st, "b@x.com", 3, 12, s1, 2);
    cts_state_bulk_started(st, s1, "act-open");
    cts_state_journal_done(st, "a@x.com", 2, 11, CTS_ST_IMPORTED, 0, 0, NULL,
                           NULL);
    commit_close(st);

    st = must_open(&f->p);
    /* Committed rows are plain unchanged (not "resumed"). */
    assert_int_equal(cts_state_lookup(st, "p@x.com", 1, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_lookup(st, "a@x.com", 11, NULL),
                     CTS_SV_UNCHANGED);
    assert_int_equal(cts_state_bulk_pending(st, "a@x.com", 11, NULL, NULL), 0);
    assert_int_equal(cts_state_bulk_pending(st, "b@x.com", 12, &id, &line), 1);
    assert_string_equal(id, "act-open");
    assert_int_equal(line, 2);
    cts_state_journal_done(st, "b@x.com", 3, 12, CTS_ST_IMPORTED, 0, 0, NULL,
                           NULL);
    commit_close(st);
    st = must_open(&f->p);
    assert_int_equal(cts_state_bulk_pending(st, "b@x.com", 12, NULL, NULL), 0);
    assert_int_equal(cts_state_lookup(st, "b@x.com", 12, NULL),
                     CTS_SV_UNCHANGED);
    {
        char *j = spath(st, "journal");
        cts_state_close(st);
        assert_int_equal(file_size(j), 32); /* only this run's OPEN */
        free(j);
    }
}

/* ---- quota ---- */

static void test_quota_days(void **state)
{
    struct fx *f = *state;
    struct cts_state *st, *other;
    f->p.daily_quota = 5;
    st = must_open(&f->p);
    assert_int_equal(cts_state_quota_remaining(st), 5);
    assert_int_equal(cts_state_quota_take(st, 3), 0);
    assert_int_equal(cts_state_quota_take(st, 3), CTS_EQUOTA);
    assert_int_equal(cts_state_quota_remaining(st), 2);
    cts_state_close(st);

    /* Counted across runs, and across accounts sharing the key. */
    f->p.account = "second-account";
    other = must_open(&f->p);
    assert_int_equal(cts_state_quota_remaining(other), 2);
    assert_int_equal(cts_state_quota_take(other, 1), 0);
    cts_state_close(other);
    f->p.account = "a07e1demo0001";
    st = must_open(&f->p);
    assert_int_equal(cts_state_quota_take(st, 1), 0);
    assert_int_equal(cts_state_quota_take(st, 1), CTS_EQUOTA);
    assert_int_equal(cts_state_quota_remaining(st), 0);

    /* A block taken but not all used is given back (same day only). */
    cts_state_quota_release(st, 1);
    assert_int_equal(cts_state_quota_remaining(st), 1);
    assert_int_equal(cts_state_quota_take(st, 1), 0);
    cts_state_quota_release(st, 100); /* never below zero */
    assert_int_equal(cts_state_quota_remaining(st), 5);
    assert_int_equal(cts_state_quota_take(st, 5), 0);

    /* Next UTC day: a fresh count. */
    cts_state_set_now(st, DAY0 + 86400);
    assert_int_equal(cts_state_quota_remaining(st), 5);
    assert_int_equal(cts_state_quota_take(st, 1), 0);
    /* The server says the day is spent: believed until midnight. */
    cts_state_quota_exhausted(st);
    assert_int_equal(cts_state_quota_remaining(st), 0);
    assert_int_equal(cts_state_quota_take(st, 1), CTS_EQUOTA);
    cts_state_set_now(st, DAY0 + 2 * 86400 - 1);
    assert_int_equal(cts_state_quota_take(st, 1), CTS_EQUOTA);
    cts_state_set_now(st, DAY0 + 2 * 86400);
    assert_int_equal(cts_state_quota_take(st, 1), 0);
    cts_state_close(st);

    /* Another key has its own count. */
    f->p.api_key = "another-key-000000000000001";
    f->p.now = DAY0 + 86400;
    st = must_open(&f->p);
    assert_int_equal(cts_state_quota_remaining(st), 5);
    cts_state_close(st);

    /* Unlimited. */
    f->p.daily_quota = 0;
    st = must_open(&f->p);
    assert_int_equal(cts_state_quota_remaining(st), LONG_MAX);
    assert_int_equal(cts_state_quota_take(st, 1000000), 0);
    cts_state_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lock_second_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_dead_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test_setup_teardown(test_store_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_then_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_torn_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_open_at_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quota_days, setup, teardown),
    };
    return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
