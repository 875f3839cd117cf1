/*
 * testutil.h — helpers shared by unit tests that need the real world:
 * a ctct-sandbox started on port 0 for a test group and always stopped
 * (h2o's spawn_server guard), and removing a temporary tree.
 * Header-only (static inline functions): each test binary is one .c file.
 * Include it after <cmocka.h> (tu_admin and TU_NEED_SANDBOX use it).
 */
#ifndef CTS_TESTUTIL_H
#define CTS_TESTUTIL_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_util.h"

/* The sandbox binary: $CTS_SANDBOX, else $BUILD/ctct-sandbox, else
 * build/ctct-sandbox.  Returns buf. */
static inline const char *tu_sandbox_path(char *buf, size_t n)
{
    const char *env = getenv("CTS_SANDBOX"), *build = getenv("BUILD");
    if (env != NULL && *env != '\0')
        snprintf(buf, n, "%s", env);
    else
        snprintf(buf, n, "%s/ctct-sandbox",
                 build != NULL && *build != '\0' ? build : "build");
    return buf;
}

/*
 * Start `path --port 0 ARGS...` (args NULL-terminated, at most 12) and wait
 * for its ready line; write "http://127.0.0.1:PORT" to url.  Returns the
 * pid, or -1 (then *why says what went wrong).  Its stdout goes to a file,
 * not a pipe: it must never block on (or die of) a pipe nobody drains.
 */
static inline pid_t tu_sandbox_start(const char *path, const char *const *args,
                                     char *url, size_t urlsz, const char **why)
{
    char out[] = "/tmp/cts-test-sb.XXXXXX";
    char line[256];
    const char *argv[16];
    size_t i, n = 0;
    pid_t pid;
    int fd, tries;

    *why = "cannot start the sandbox";
    if (access(path, X_OK) != 0) {
        *why = "sandbox binary not found (set CTS_SANDBOX or BUILD)";
        return -1;
    }
    argv[n++] = path;
    argv[n++] = "--port";
    argv[n++] = "0";
    for (i = 0; args != NULL && args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fd = mkstemp(out);
    if (fd < 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fd);
        unlink(out);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, 1);
        close(fd);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    /* Poll the file for the ready line (up to 30 s on a loaded machine);
     * this wait is for start-up only, no assertion depends on it. */
    line[0] = '\0';
    for (tries = 0; tries < 3000; tries++) {
        FILE *f = fopen(out, "r");
        int got = f != NULL && fgets(line, sizeof(line), f) != NULL &&
                  strchr(line, '\n') != NULL;
        if (f != NULL)
            fclose(f);
        if (got || waitpid(pid, NULL, WNOHANG) != 0)
            break;
        usleep(10000);
    }
    unlink(out);
    if (strncmp(line, "listening on http://127.0.0.1:", 30) != 0) {
        *why = "the sandbox printed no ready line";
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return -1;
    }
    line[strcspn(line, "\r\n")] = '\0';
    snprintf(url, urlsz, "%s", line + strlen("listening on "));
    return pid;
}

/* Stop a sandbox started above (NULL-safe on -1); sets *pid to -1. */
static inline void tu_sandbox_stop(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
    }
    *pid = -1;
}

/* rm -rf of a test's temporary tree. */
static inline void tu_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char sub[1024];
        int n;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n = snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (n > 0 && (size_t)n < sizeof(sub))
            tu_rm_rf(sub);
    }
    closedir(d);
    rmdir(path);
}

/* In a test of a group whose setup left *state NULL (no sandbox): skip. */
#define TU_NEED_SANDBOX()                                                      \
    do {                                                                       \
        if (*state == NULL) {                                                  \
            skip();                                                            \
            return;                                                            \
        }                                                                      \
    } while (0)

/* Blocking admin call to the sandbox at base (faults, state, reset)
 * through the code under test; fails the test unless it answers 200.
 * Returns the owned JSON reply ({} for an empty body). */
static inline json_t *tu_admin(const char *base, const char *method,
                               const char *path, const char *body)
{
    struct cts_http_req r;
    struct cts_error err = {0};
    char *url = cts_xasprintf("%s%s", base, path);
    json_t *j;
    json_error_t je;

    cts_http_req_init(&r);
    r.method = method;
    r.url = url;
    r.body = body;
    r.body_len = body != NULL ? strlen(body) : 0;
    if (cts_http_fetch(&r, NULL, &err) != 0)
        fail_msg("%s %s: %s", method, path, err.msg);
    if (r.status != 200)
        fail_msg("%s %s: HTTP %ld %s", method, path, r.status,
                 r.resp.data != NULL ? r.resp.data : "");
    j = r.resp.data != NULL ? json_loads(r.resp.data, 0, &je) : json_object();
    assert_non_null(j);
    cts_http_req_free(&r);
    free(url);
    return j;
}

/* The bytes of tests/unit/fixtures/NAME ($CTS_FIXTURES/NAME when set; NAME
 * itself when it is an absolute path), NUL terminated; *len (may be NULL) =
 * their count.  Owned (free).  Fails the test when the file cannot be
 * read. */
static inline char *tu_fixture(const char *name, size_t *len)
{
    char path[1024], chunk[4096];
    const char *env = getenv("CTS_FIXTURES");
    struct cts_buf b;
    FILE *f;
    size_t n;

    if (name[0] == '/')
        snprintf(path, sizeof(path), "%s", name);
    else if (env != NULL)
        snprintf(path, sizeof(path), "%s/%s", env, name);
    else
        /* Next to this header (the suite runs from the top directory). */
        snprintf(path, sizeof(path), "%.*sfixtures/%s",
                 (int)(strrchr(__FILE__, '/') != NULL
                           ? strrchr(__FILE__, '/') - __FILE__ + 1
                           : 0),
                 __FILE__, name);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open fixture %s", path);
    cts_buf_init(&b, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        cts_buf_append(&b, chunk, n);
    fclose(f);
    if (len != NULL)
        *len = b.len;
    return cts_buf_detach(&b);
}

#endif /* CTS_TESTUTIL_H */
