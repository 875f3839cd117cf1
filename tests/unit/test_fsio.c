/* test_fsio.c — whole writes, mkdir -p, directory fsync and atomic
 * replacement: the old file survives every failure, no temp file is left
 * behind, and EINTR never turns into an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cts_fsio.h"

/*
 * Fault injection: this binary defines open() and fsync(), which the
 * library's calls then reach instead of libc's (the executable's
 * definitions come first in symbol lookup).  They fail with EINTR the
 * armed number of times for the armed path, then do the system call.
 */
static struct {
    const char *path; /* open: only this path */
    int open_eintr;   /* open calls still to fail */
    int fsync_eintr;  /* fsync calls still to fail */
    int open_calls;   /* opens of path seen */
    int flags;        /* the flags of the last open of path */
} inj;

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (inj.path != NULL && strcmp(path, inj.path) == 0) {
        inj.open_calls++;
        inj.flags = flags;
        if (inj.open_eintr > 0) {
            inj.open_eintr--;
            errno = EINTR;
            return -1;
        }
    }
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

int fsync(int fd)
{
    if (inj.fsync_eintr > 0) {
        inj.fsync_eintr--;
        errno = EINTR;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

struct fx {
    char dir[64];
    char path[128];
};

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    struct stat sb;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/cts-fsio-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/data", f->dir);
    memset(&inj, 0, sizeof(inj));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    memset(&inj, 0, sizeof(inj));
    rm_tree(f->dir);
    free(f);
    return 0;
}

static void put(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* The whole file as a string (static buffer). */
static const char *slurp(const char *path)
{
    static char buf[256];
    int fd = open(path, O_RDONLY);
    ssize_t n;
    assert_true(fd >= 0);
    n = cts_read_full(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

/* Directory entries other than . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_replace(void **state)
{
    struct fx *f = *state;
    struct stat before, after;
    const char *step = "unset";
    put(f->path, "old\n");
    assert_int_equal(stat(f->path, &before), 0);
    assert_int_equal(
        cts_file_replace(f->path, "new\n", 4, CTS_AFILE_UNIQUE, &step), 0);
    assert_null(step);
    assert_string_equal(slurp(f->path), "new\n");
    assert_int_equal(stat(f->path, &after), 0);
    /* Replaced by rename, not rewritten in place, and private. */
    assert_true(before.st_ino != after.st_ino);
    assert_int_equal(after.st_mode & 0777, 0600);
    assert_int_equal(entries(f->dir), 1);
}

/* A discarded replacement leaves the old file and no temp file. */
static void test_discard_keeps_old(void **state)
{
    struct fx *f = *state;
    struct cts_afile af;
    char tmp[160];
    put(f->path, "old\n");
    assert_int_equal(cts_afile_open(&af, f->path, CTS_AFILE_FIXED), 0);
    snprintf(tmp, sizeof(tmp), "%s/.data.tmp", f->dir);
    assert_int_equal(access(tmp, F_OK), 0); /* the fixed temp name */
    assert_int_equal(cts_afile_write(&af, "half", 4), 0);
    assert_int_equal(cts_afile_close(&af, 0), 0);
    assert_string_equal(slurp(f->path), "old\n");
    assert_int_equal(entries(f->dir), 1);
}

/* A write that fails (file size limit: EFBIG) leaves the old file whole,
 * names the step, and removes the temp file.  In a child process: the
 * limit would also hit the test's own output. */
static void test_write_failure_keeps_old(void **state)
{
    struct fx *f = *state;
    char big[4096];
    int status;
    pid_t pid;
    put(f->path, "old\n");
    memset(big, 'x', sizeof(big));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {1024, 1024};
        const char *step = NULL;
        int rc;
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(2);
        rc =
            cts_file_replace(f->path, big, sizeof(big), CTS_AFILE_FIXED, &step);
        _exit(rc == -EFBIG && step != NULL && strcmp(step, "write") == 0 ? 0
                                                                         : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(slurp(f->path), "old\n");
    assert_int_equal(entries(f->dir), 1);
}

/* A rename that fails (the target is a non-empty directory) leaves the
 * target as it was and no temp file. */
static void test_rename_failure_keeps_old(void **state)
{
    struct fx *f = *state;
    char inner[192];
    const char *step = NULL;
    int rc;
    assert_int_equal(mkdir(f->path, 0700), 0);
    snprintf(inner, sizeof(inner), "%s/keep", f->path);
    put(inner, "kept\n");
    rc = cts_file_replace(f->path, "new\n", 4, CTS_AFILE_UNIQUE, &step);
    assert_true(rc < 0);
    assert_string_equal(step, "rename");
    assert_string_equal(slurp(inner), "kept\n");
    assert_int_equal(entries(f->dir), 1);
    /* Creating the temp file fails in a missing directory. */
    snprintf(inner, sizeof(inner), "%s/no/such/file", f->dir);
    assert_int_equal(cts_file_replace(inner, "x", 1, CTS_AFILE_FIXED, &step),
                     -ENOENT);
    assert_string_equal(step, "create");
}

/* pwrite patches the file after the buffered writes (a header whose
 * checksum is known at the end). */
static void test_pwrite_patch(void **state)
{
    struct fx *f = *state;
    struct cts_afile af;
    assert_int_equal(cts_afile_open(&af, f->path, CTS_AFILE_FIXED), 0);
    assert_int_equal(cts_afile_write(&af, "HHHH", 4), 0);
    assert_int_equal(cts_afile_write(&af, "body\n", 5), 0);
    assert_int_equal(cts_afile_pwrite(&af, "head", 4, 0), 0);
    assert_int_equal(cts_afile_close(&af, 1), 0);
    assert_string_equal(slurp(f->path), "headbody\n");
}

/* Two writers of the same file get distinct unique temp files. */
static void test_unique_temps(void **state)
{
    struct fx *f = *state;
    struct cts_afile a, b;
    assert_int_equal(cts_afile_open(&a, f->path, CTS_AFILE_UNIQUE), 0);
    assert_int_equal(cts_afile_open(&b, f->path, CTS_AFILE_UNIQUE), 0);
    assert_string_not_equal(a.tmp, b.tmp);
    assert_int_equal(cts_afile_write(&a, "a", 1), 0);
    assert_int_equal(cts_afile_write(&b, "b", 1), 0);
    assert_int_equal(cts_afile_close(&a, 1), 0);
    assert_int_equal(cts_afile_close(&b, 1), 0);
    assert_string_equal(slurp(f->path), "b");
    assert_int_equal(entries(f->dir), 1);
}

/* EINTR from open and fsync is retried, the descriptor is O_CLOEXEC. */
static void test_fsync_dir_eintr(void **state)
{
    struct fx *f = *state;
    inj.path = f->dir;
    inj.open_eintr = 3;
    inj.fsync_eintr = 2;
    assert_int_equal(cts_fsync_dir(f->dir), 0);
    assert_int_equal(inj.open_calls, 4);
    assert_int_equal(inj.open_eintr, 0);
    assert_int_equal(inj.fsync_eintr, 0);
    assert_true((inj.flags & O_CLOEXEC) != 0);
    assert_true((inj.flags & O_DIRECTORY) != 0);
    inj.path = NULL;
    /* Real errors are reported, as negative errno. */
    put(f->path, "file\n");
    assert_int_equal(cts_fsync_dir(f->path), -ENOTDIR);
    assert_int_equal(cts_fsync_dir("/nonexistent/cts-fsio"), -ENOENT);
}

static void test_mkdir_p(void **state)
{
    struct fx *f = *state;
    char p[192];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
    assert_int_equal(cts_mkdir_p(p, 0700), 0);
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(cts_mkdir_p(p, 0700), 0); /* exists: fine */
    put(f->path, "file\n");
    snprintf(p, sizeof(p), "%s/sub", f->path);
    assert_int_equal(cts_mkdir_p(p, 0700), -ENOTDIR);
    assert_int_equal(cts_mkdir_p("", 0700), -ENOENT);
}

static void test_dirname(void **state)
{
    char *d;
    (void)state;
    d = cts_dirname("a/b/c");
    assert_string_equal(d, "a/b");
    free(d);
    d = cts_dirname("file");
    assert_string_equal(d, ".");
    free(d);
    d = cts_dirname("/file");
    assert_string_equal(d, "/");
    free(d);
}

/* Whole writes and reads across a pipe's short transfers. */
static void test_write_read_full(void **state)
{
    int p[2];
    char out[100000], in[100000];
    pid_t pid;
    int status;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(out); i++)
        out[i] = (char)(i * 7);
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        _exit(cts_write_all(p[1], out, sizeof(out)) == 0 ? 0 : 1);
    }
    close(p[1]);
    assert_int_equal(cts_read_full(p[0], in, sizeof(in)), (ssize_t)sizeof(in));
    assert_int_equal(cts_read_full(p[0], in, 1), 0); /* end of file */
    close(p[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_equal(in, out, sizeof(out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_keeps_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_keeps_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rename_failure_keeps_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pwrite_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_temps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_dir_eintr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
        cmocka_unit_test(test_dirname),
        cmocka_unit_test(test_write_read_full),
    };
    return cmocka_run_group_tests_name("fsio", tests, NULL, NULL);
}
