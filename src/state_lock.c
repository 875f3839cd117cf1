/* state_lock.c — the per key+account lock of the state (cts_state.h):
 * flock'd for the whole run, holding "pid START" for the message a second
 * run prints. */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void fmt_utc(long t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%ld", t);
}

int cts_state_lock_take(struct cts_state *st, struct cts_error *err)
{
    char *path = cts_xasprintf("%s/lock", st->dir);
    char info[128], when[32];
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
        cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                       strerror(-rc));
        goto out;
    }
    /* flock, not a pid file: the kernel drops it when the holder dies, so
     * a stale lock of a killed run never blocks. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n;
        long pid = 0, started = 0;
        char *p, *end;
        if (errno != EWOULDBLOCK) {
            rc = -errno;
            cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                           strerror(-rc));
            close(fd);
            goto out;
        }
        n = pread(fd, info, sizeof(info) - 1, 0);
        info[n > 0 ? n : 0] = '\0';
        p = info;
        pid = strtol(p, &end, 10);
        if (end != p) {
            p = end;
            started = strtol(p, &end, 10);
        }
        if (pid > 0 && started > 0) {
            fmt_utc(started, when);
            rc = cts_error_setx(err, CTS_ELOCKED, CTS_EX_TEMPFAIL,
                                "another run (pid %ld, started %s) holds the "
                                "state lock %s; try again later",
                                pid, when, path);
        } else {
            rc = cts_error_setx(err, CTS_ELOCKED, CTS_EX_TEMPFAIL,
                                "another run holds the state lock %s (it is "
                                "starting); try again later",
                                path);
        }
        close(fd);
        goto out;
    }
    {
        int n = snprintf(info, sizeof(info), "%ld %ld\n", (long)getpid(),
                         (long)time(NULL));
        if (ftruncate(fd, 0) != 0 || pwrite(fd, info, (size_t)n, 0) != n) {
            rc = -errno;
            cts_error_setx(err, rc, CTS_EX_CANTCREAT, "%s: %s", path,
                           strerror(-rc));
            close(fd);
            goto out;
        }
    }
    st->lock_fd = fd;
out:
    free(path);
    return rc;
}
