/* fsio.c — EINTR-safe whole reads and writes, mkdir -p, directory fsync and
 * atomic file replacement (cts_fsio.h). */
#define _GNU_SOURCE /* mkostemp: an exclusive temp file opened O_CLOEXEC */
#include "cts_fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes gather in the buffer up to this size before a write(2). */
#define AFILE_CHUNK 65536

int cts_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

ssize_t cts_read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int cts_read_fd_max(int fd, size_t max, char **out, size_t *len)
{
    struct cts_buf b;
    char chunk[4096];
    ssize_t n;

    *out = NULL;
    *len = 0;
    cts_buf_init(&b, max);
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = -errno;
            cts_buf_free(&b);
            return rc;
        }
        if (n == 0)
            break;
        if (cts_buf_append(&b, chunk, (size_t)n) != 0) {
            /* What was read may be secret (a token file): wipe it. */
            if (b.data != NULL)
                memset(b.data, 0, b.len);
            cts_buf_free(&b);
            return CTS_ETOOBIG;
        }
    }
    *len = b.len;
    *out = cts_buf_detach(&b);
    return 0;
}

int cts_mkdir_p(const char *path, mode_t mode)
{
    char *tmp, *p;
    int rc = 0;
    if (path[0] == '\0')
        return -ENOENT;
    tmp = cts_xstrdup(path);
    for (p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    free(tmp);
    return rc;
}

char *cts_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return cts_xstrdup(".");
    if (slash == path)
        return cts_xstrdup("/");
    return cts_xstrndup(path, (size_t)(slash - path));
}

int cts_fsync_dir(const char *dir)
{
    int fd, rc = 0;
    do
        fd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    /* Some file systems refuse fsync on a directory (EINVAL): the renames
     * are then as durable as that file system makes them. */
    while (fsync(fd) != 0) {
        if (errno == EINTR)
            continue;
        if (errno != EINVAL)
            rc = -errno;
        break;
    }
    close(fd);
    return rc;
}

/* ---- atomic replacement ---- */

/* Record the first failure; later steps are skipped. */
static int afile_fail(struct cts_afile *af, int rc)
{
    if (af->error == 0)
        af->error = rc;
    return rc;
}

int cts_afile_open(struct cts_afile *af, const char *path, int flags)
{
    char *dir = cts_dirname(path);
    const char *base = strrchr(path, '/');
    int fd;

    base = base != NULL ? base + 1 : path;
    af->path = cts_xstrdup(path);
    af->error = 0;
    cts_buf_init(&af->buf, 0);
    if (flags & CTS_AFILE_UNIQUE) {
        af->tmp = cts_xasprintf("%s/.%s.tmp.XXXXXX", dir, base);
        fd = mkostemp(af->tmp, O_CLOEXEC); /* mode 0600, O_EXCL */
    } else {
        af->tmp = cts_xasprintf("%s/.%s.tmp", dir, base);
        /* A leftover of a crashed writer is removed and the file created
         * anew, exclusively: whatever sits at that name (a symlink
         * planted there included) is never opened or written through. */
        if (unlink(af->tmp) != 0 && errno != ENOENT) {
            fd = -1;
        } else {
            do
                fd = open(af->tmp,
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          0600);
            while (fd < 0 && errno == EINTR);
        }
    }
    free(dir);
    af->fd = fd;
    if (fd < 0) {
        int rc = -errno;
        free(af->tmp);
        af->tmp = NULL; /* nothing was created */
        return afile_fail(af, rc);
    }
    /* 0600 whatever the umask (or the mode of a leftover temp file): the
     * files hold credentials or the state of an account. */
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
        return afile_fail(af, -errno);
    return 0;
}

/* Write out what is buffered. */
static int afile_flush(struct cts_afile *af)
{
    int rc;
    if (af->error != 0)
        return af->error;
    if (af->buf.len == 0)
        return 0;
    rc = cts_write_all(af->fd, af->buf.data, af->buf.len);
    cts_buf_reset(&af->buf);
    return rc != 0 ? afile_fail(af, rc) : 0;
}

int cts_afile_write(struct cts_afile *af, const void *data, size_t len)
{
    if (af->error != 0)
        return af->error;
    cts_buf_append(&af->buf, data, len);
    return af->buf.len >= AFILE_CHUNK ? afile_flush(af) : 0;
}

int cts_afile_pwrite(struct cts_afile *af, const void *data, size_t len,
                     off_t off)
{
    const char *p = data;
    int rc = afile_flush(af);
    while (rc == 0 && len > 0) {
        ssize_t w = pwrite(af->fd, p, len, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = afile_fail(af, -errno);
            break;
        }
        p += w;
        off += w;
        len -= (size_t)w;
    }
    return rc;
}

int cts_afile_sync(struct cts_afile *af)
{
    int rc;
    if (af->fd < 0)
        return af->error;
    rc = afile_flush(af);
    if (rc == 0 && fsync(af->fd) != 0)
        rc = afile_fail(af, -errno);
    if (close(af->fd) != 0 && rc == 0)
        rc = afile_fail(af, -errno);
    af->fd = -1;
    return rc;
}

int cts_afile_close(struct cts_afile *af, int commit)
{
    int rc = 0;
    if (commit) {
        rc = cts_afile_sync(af);
        if (rc == 0 && af->tmp != NULL) {
            if (rename(af->tmp, af->path) == 0) {
                free(af->tmp);
                af->tmp = NULL; /* renamed: nothing to clean up */
            } else {
                rc = afile_fail(af, -errno);
            }
        }
    } else if (af->fd >= 0) {
        close(af->fd);
        af->fd = -1;
    }
    if (af->tmp != NULL) {
        unlink(af->tmp);
        free(af->tmp);
        af->tmp = NULL;
    }
    cts_buf_free(&af->buf);
    free(af->path);
    af->path = NULL;
    return rc;
}

int cts_file_replace(const char *path, const void *data, size_t len, int flags,
                     const char **step)
{
    struct cts_afile af;
    const char *where = "create";
    char *dir;
    int rc = cts_afile_open(&af, path, flags);

    if (rc == 0) {
        where = "write";
        rc = cts_afile_write(&af, data, len);
        if (rc == 0)
            rc = cts_afile_sync(&af);
        if (rc == 0)
            where = "rename";
    }
    if (rc == 0)
        rc = cts_afile_close(&af, 1);
    else
        cts_afile_close(&af, 0);
    if (rc == 0) {
        /* Without the directory fsync the rename itself may be lost in a
         * power failure, leaving the old file. */
        where = "sync-dir";
        dir = cts_dirname(path);
        rc = cts_fsync_dir(dir);
        free(dir);
    }
    if (step != NULL)
        *step = rc != 0 ? where : NULL;
    return rc;
}
