/*
 * state_quota.c — the daily request quota (cts_state.h): per API key and
 * UTC day, shared by every run and account that uses the key.  The file
 * DIR/quota-<k> holds one fixed-size record, read and replaced under
 * flock.
 */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int cts_state_quota_open(struct cts_state *st, struct cts_error *err)
{
    int rc;
    if (!st->dry_run)
        st->qfd =
            open(st->qpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    else
        st->qfd = open(st->qpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    /* A dry run reads the quota if there is one and creates nothing. */
    if (st->qfd < 0 && (!st->dry_run || errno != ENOENT)) {
        rc = -errno;
        return cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", st->qpath,
                              strerror(-rc));
    }
    return 0;
}

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
