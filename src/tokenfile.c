/* tokenfile.c — token files: strict-permission read, atomic durable write. */
#include "cts_tokenfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "cts_fsio.h"

#define TOKENFILE_MAX (64 * 1024)

/* Every token-file failure is a configuration error (exit 78). */
static int fail(struct cts_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct cts_error *err, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = cts_error_vsetx(err, CTS_ECONFIG, CTS_EX_CONFIG, fmt, ap);
    va_end(ap);
    return rc;
}

/* Read the whole (small) file from fd into an owned buffer. */
static int slurp(int fd, const char *path, char **out, size_t *outlen,
                 struct cts_error *err)
{
    int rc = cts_read_fd_max(fd, TOKENFILE_MAX, out, outlen);

    if (rc == CTS_ETOOBIG)
        return fail(err, "token file %s is too large (%s)", path,
                    "over 64 KiB; it should hold a few tokens");
    if (rc != 0)
        return fail(err, "cannot read token file %s: %s", path,
                    cts_strerror(rc));
    return 0;
}

static char *dup_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return cts_xstrdup(json_string_value(v));
}

/* A number member that may also be written as a decimal string. */
static long long_member(json_t *obj, const char *key)
{
    long n;
    return cts_json_int(json_object_get(obj, key), 0, LONG_MAX, &n) == 0 ? n
                                                                         : 0;
}

static int parse_json(const char *text, size_t len, const char *path,
                      struct cts_tokens *out, struct cts_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    char why[200];

    if (root == NULL || !json_is_object(root)) {
        /* jansson's message quotes no input text, so no secret leaks. */
        snprintf(why, sizeof(why), "line %d: %s", jerr.line,
                 root == NULL ? jerr.text : "not a JSON object");
        json_decref(root);
        return fail(err, "token file %s is not valid JSON (%s)", path, why);
    }
    out->api = dup_member(root, "api");
    out->access_token = dup_member(root, "access_token");
    out->refresh_token = dup_member(root, "refresh_token");
    out->client_id = dup_member(root, "client_id");
    out->expires_at = long_member(root, "expires_at");
    out->last_refresh_at = long_member(root, "last_refresh_at");
    json_decref(root);
    if (out->access_token == NULL && out->refresh_token == NULL)
        return fail(err, "token file %s holds %s", path,
                    "neither \"access_token\" nor \"refresh_token\"; "
                    "get tokens with `ctct-sync auth`");
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

static int parse_bare(const char *text, size_t len, const char *path,
                      struct cts_tokens *out, struct cts_error *err)
{
    size_t i = 0, start, end;

    while (i < len && is_space(text[i]))
        i++;
    start = i;
    while (i < len && !is_space(text[i]))
        i++;
    end = i;
    /* Only trailing blanks may follow: a second token or a token with a
     * space inside is a mistake we should not silently truncate. */
    while (i < len && is_space(text[i]))
        i++;
    if (start == end)
        return fail(err, "token file %s is empty%s", path,
                    "; get a token with `ctct-sync auth`");
    if (i != len)
        return fail(err, "token file %s %s", path,
                    "holds more than one line or word; a bare token file "
                    "must hold just the token (or use the JSON form)");
    if (memchr(text + start, '\0', end - start) != NULL)
        return fail(err, "token file %s %s", path, "contains a NUL byte");
    out->access_token = cts_xstrndup(text + start, end - start);
    out->bare = 1;
    return 0;
}

int cts_tokenfile_read(const char *path, struct cts_tokens *out,
                       struct cts_error *err)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0, i = 0;
    int fd, rc;

    memset(out, 0, sizeof(*out));
    if (path == NULL || path[0] == '\0')
        return fail(err, "token file name is empty");
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail(err, "cannot open token file %s: %s", path,
                    strerror(errno));
    /* fstat the descriptor we read, not the name: no race with a swap. */
    if (fstat(fd, &st) != 0) {
        rc = fail(err, "cannot stat token file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(err, "token file %s %s", path, "is not a regular file");
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        char why[160];
        snprintf(why, sizeof(why),
                 "permissions %04o are too open: it holds credentials and "
                 "must be accessible only by you; run: chmod 600 ",
                 (unsigned)(st.st_mode & 07777));
        rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                            "UNPROTECTED TOKEN FILE %s: %s%s", path, why, path);
        goto out;
    }
    rc = slurp(fd, path, &text, &len, err);
    if (rc != 0)
        goto out;
    while (i < len && is_space(text[i]))
        i++;
    if (i < len && text[i] == '{')
        rc = parse_json(text, len, path, out, err);
    else
        rc = parse_bare(text, len, path, out, err);
out:
    if (text != NULL) {
        /* The buffer held secrets; do not leave them in freed memory. */
        memset(text, 0, len);
        free(text);
    }
    close(fd);
    if (rc != 0)
        cts_tokens_free(out);
    return rc;
}

static int set_str(json_t *obj, const char *key, const char *val)
{
    if (val == NULL)
        return 0;
    /* json_object_set_new takes the value even when it fails. */
    return json_object_set_new(obj, key, json_string(val)) == 0 ? 0 : UV_ENOMEM;
}

static int set_long(json_t *obj, const char *key, long val)
{
    if (val <= 0)
        return 0;
    return json_object_set_new(obj, key, json_integer(val)) == 0 ? 0
                                                                 : UV_ENOMEM;
}

int cts_file_write_atomic(const char *path, const char *data, size_t len,
                          struct cts_error *err)
{
    const char *step = NULL;
    int rc;

    if (path == NULL || path[0] == '\0')
        return fail(err, "file name is empty");
    /* A unique temporary name: two `auth` runs may replace the same file
     * at once, and each must rename only what it wrote. */
    rc = cts_file_replace(path, data, len, CTS_AFILE_UNIQUE, &step);
    if (rc == 0)
        return 0;
    if (strcmp(step, "create") == 0)
        return fail(err, "cannot create a temporary file next to %s: %s", path,
                    strerror(-rc));
    if (strcmp(step, "rename") == 0)
        return fail(err, "cannot replace %s: %s", path, strerror(-rc));
    if (strcmp(step, "sync-dir") == 0)
        return fail(err, "cannot sync the directory of %s: %s", path,
                    strerror(-rc));
    return fail(err, "cannot write %s: %s", path, strerror(-rc));
}

int cts_tokenfile_write(const char *path, const struct cts_tokens *tok,
                        struct cts_error *err)
{
    json_t *root;
    char *text = NULL;
    size_t len;
    int rc;

    if (path == NULL || path[0] == '\0')
        return fail(err, "token file name is empty");
    root = json_object();
    if (root == NULL)
        return cts_error_setx(err, UV_ENOMEM, CTS_EX_SOFTWARE, "out of memory");
    rc = set_str(root, "api", tok->api);
    if (rc == 0)
        rc = set_str(root, "access_token", tok->access_token);
    if (rc == 0)
        rc = set_str(root, "refresh_token", tok->refresh_token);
    if (rc == 0)
        rc = set_long(root, "expires_at", tok->expires_at);
    if (rc == 0)
        rc = set_str(root, "client_id", tok->client_id);
    if (rc == 0)
        rc = set_long(root, "last_refresh_at", tok->last_refresh_at);
    if (rc == 0)
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
        return cts_error_setx(err, UV_ENOMEM, CTS_EX_SOFTWARE, "out of memory");
    len = strlen(text);
    text[len] = '\n'; /* json_dumps' NUL becomes the final newline */
    rc = cts_file_write_atomic(path, text, len + 1, err);
    /* The buffer held secrets; do not leave them in freed memory. */
    memset(text, 0, len + 1);
    free(text); /* json_dumps output is released with free() */
    return rc;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

void cts_tokens_free(struct cts_tokens *tok)
{
    if (tok == NULL)
        return;
    free(tok->api);
    free_secret(tok->access_token);
    free_secret(tok->refresh_token);
    free(tok->client_id);
    memset(tok, 0, sizeof(*tok));
}
