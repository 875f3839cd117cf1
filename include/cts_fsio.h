/*
 * cts_fsio.h — the small file-I/O layer under the state and the token
 * files: whole writes and reads that survive EINTR, mkdir -p, the fsync of
 * a directory, and atomic replacement of a file.
 *
 * Atomic replacement is the usual sequence: write a temporary file in the
 * same directory (rename(2) is atomic only within one file system), fsync
 * it, rename it over the target, and fsync the directory so the rename
 * itself survives a power failure.  After a crash the target holds either
 * the old or the new contents, never a mix.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; none allocates memory it does not free or hand over.
 */
#ifndef CTS_FSIO_H
#define CTS_FSIO_H

#include <stddef.h>
#include <sys/types.h>

#include "cts_util.h"

/* Write all len bytes of data (borrowed) to fd, retrying short writes and
 * EINTR.  0 or a negative errno. */
int cts_write_all(int fd, const void *data, size_t len);

/* Read up to len bytes from fd into buf, retrying short reads and EINTR;
 * stops early only at end of file.  The count read, or a negative errno. */
ssize_t cts_read_full(int fd, void *buf, size_t len);

/* Read fd to its end into *out (owned, NUL-terminated; *len bytes), at
 * most max bytes: a file (or a stream such as /dev/zero) that holds more
 * fails with CTS_ETOOBIG after reading only max + 1 bytes or so.  EINTR
 * is retried.  0, CTS_ETOOBIG or a negative errno; *out NULL on failure. */
int cts_read_fd_max(int fd, size_t max, char **out, size_t *len);

/* Create path (borrowed) and its missing parents with mode (existing ones
 * are left as they are).  0 or a negative errno. */
int cts_mkdir_p(const char *path, mode_t mode);

/* The directory part of path (borrowed): "." when there is none, "/" for
 * a file in the root.  Returns an owned string. */
char *cts_dirname(const char *path);

/* fsync the directory dir (borrowed), so that renames and unlinks in it
 * are durable.  The descriptor is opened O_CLOEXEC; open and fsync are
 * retried on EINTR.  A file system that cannot fsync a directory (EINVAL)
 * counts as success.  0 or a negative errno. */
int cts_fsync_dir(const char *dir);

/* ---- atomic replacement ---- */

/* How the temporary file is named (cts_afile_open flags). */
enum {
    /* "<dir>/.<name>.tmp", removed when it exists and created anew
     * (O_EXCL | O_NOFOLLOW): for files only one process writes (under a
     * lock), so a crashed writer leaves no litter beyond one file. */
    CTS_AFILE_FIXED = 0,
    /* "<dir>/.<name>.tmp.XXXXXX", created exclusively: for files several
     * processes may replace at once (token files). */
    CTS_AFILE_UNIQUE = 1
};

/* A file being replaced.  Caller storage; fields are private. */
struct cts_afile {
    char *path; /* the target */
    char *tmp;  /* the temporary file, NULL once renamed or removed */
    int fd;     /* the temporary file's descriptor, -1 once closed */
    int error;  /* the first failure (sticky): later steps are skipped */
    struct cts_buf buf; /* writes gathered into large write(2) calls */
};

/*
 * Start replacing path (borrowed): create the temporary file, mode 0600
 * whatever the umask, O_CLOEXEC.  flags: CTS_AFILE_FIXED or
 * CTS_AFILE_UNIQUE.  0 or a negative errno; call cts_afile_close() in
 * both cases (it is a no-op on a failed open, apart from freeing).
 */
int cts_afile_open(struct cts_afile *af, const char *path, int flags);

/* Append len bytes of data (borrowed); buffered.  0 or a negative errno. */
int cts_afile_write(struct cts_afile *af, const void *data, size_t len);

/* Write len bytes of data (borrowed) at offset off of the temporary file,
 * after what is buffered (e.g. to patch a header whose checksum is known
 * only at the end).  0 or a negative errno. */
int cts_afile_pwrite(struct cts_afile *af, const void *data, size_t len,
                     off_t off);

/* Write what is buffered, fsync and close the temporary file (fsync before
 * rename: otherwise a crash can leave the new name on an empty file).
 * Optional: cts_afile_close(af, 1) does it too; calling it first tells a
 * failed write apart from a failed rename.  0 or a negative errno. */
int cts_afile_sync(struct cts_afile *af);

/*
 * Finish.  commit = 1: sync (unless done) and rename the temporary file
 * over the target; commit = 0: discard it.  The directory is NOT fsync'd
 * (a caller replacing several files syncs it once: cts_fsync_dir).  The
 * temporary file never survives a failure or a discard.  Frees what
 * cts_afile_open allocated.  0 or the negative errno of the first failure.
 */
int cts_afile_close(struct cts_afile *af, int commit);

/*
 * Replace path (borrowed) with len bytes of data (borrowed) in one go:
 * open (flags as above), write, sync, rename, fsync the directory.
 * 0 or a negative errno; *step (may be NULL) names the step that failed:
 * "create", "write", "rename" or "sync-dir".
 */
int cts_file_replace(const char *path, const void *data, size_t len, int flags,
                     const char **step);

#endif /* CTS_FSIO_H */
