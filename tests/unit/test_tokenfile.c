/* test_tokenfile.c — token file parsing, permissions, atomic writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cts_tokenfile.h"

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cts-tokfile-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/token.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void put(const char *path, const char *text, mode_t mode)
{
    FILE *fp;
    unlink(path);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_read_json(void **state)
{
    struct fx *f = *state;
    struct cts_tokens t;
    struct cts_error err = {0};
    put(f->path,
        "{\"api\":\"v3\",\"access_token\":\"AT-1\",\"refresh_token\":\"RT-1\","
        "\"expires_at\":4102444800,\"client_id\":\"cid\",\"extra\":[1]}\n",
        0600);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), 0);
    assert_string_equal(t.api, "v3");
    assert_string_equal(t.access_token, "AT-1");
    assert_string_equal(t.refresh_token, "RT-1");
    assert_string_equal(t.client_id, "cid");
    assert_int_equal(t.expires_at, 4102444800L);
    assert_int_equal(t.bare, 0);
    cts_tokens_free(&t);
    assert_null(t.access_token);
}

static void test_read_bare(void **state)
{
    struct fx *f = *state;
    struct cts_tokens t;
    struct cts_error err = {0};
    put(f->path, "  demo-v2-token-000000000000000000001\r\n\n", 0600);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), 0);
    assert_string_equal(t.access_token, "demo-v2-token-000000000000000000001");
    assert_null(t.refresh_token);
    assert_int_equal(t.bare, 1);
    cts_tokens_free(&t);

    /* Two tokens (or a token with a space) are refused, not truncated. */
    put(f->path, "tok-one\ntok-two\n", 0600);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), CTS_ECONFIG);
    assert_int_equal(err.exit_code, CTS_EX_CONFIG);
    assert_null(strstr(err.msg, "tok-one"));
    put(f->path, "\n  \n", 0600);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), CTS_ECONFIG);
    assert_non_null(strstr(err.msg, "empty"));
}

static void test_permissions(void **state)
{
    struct fx *f = *state;
    struct cts_tokens t;
    struct cts_error err = {0};
    static const mode_t bad[] = {0640, 0604, 0660, 0644, 0610};
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put(f->path, "secret-token-value-1234\n", bad[i]);
        memset(&err, 0, sizeof(err));
        assert_int_equal(cts_tokenfile_read(f->path, &t, &err), CTS_ECONFIG);
        assert_int_equal(err.exit_code, CTS_EX_CONFIG);
        assert_non_null(strstr(err.msg, "chmod 600"));
        assert_null(strstr(err.msg, "secret-token"));
        assert_null(t.access_token);
    }
    put(f->path, "secret-token-value-1234\n", 0400);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), 0);
    cts_tokens_free(&t);
}

static void test_read_errors(void **state)
{
    struct fx *f = *state;
    struct cts_tokens t;
    struct cts_error err = {0};
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    assert_int_equal(cts_tokenfile_read(missing, &t, &err), CTS_ECONFIG);
    assert_non_null(strstr(err.msg, missing));

    put(f->path, "{\"access_token\": \"AT-secret\",", 0600);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), CTS_ECONFIG);
    assert_non_null(strstr(err.msg, "not valid JSON"));
    assert_null(strstr(err.msg, "AT-secret"));

    put(f->path, "{\"api\":\"v3\"}", 0600);
    assert_int_equal(cts_tokenfile_read(f->path, &t, &err), CTS_ECONFIG);
    assert_non_null(strstr(err.msg, "ctct-sync auth"));

    /* A directory is not a token file. */
    assert_int_equal(cts_tokenfile_read(f->dir, &t, &err), CTS_ECONFIG);
}

static void test_write_roundtrip(void **state)
{
    struct fx *f = *state;
    struct cts_tokens in = {0}, out;
    struct cts_error err = {0};
    struct stat st;
    DIR *d;
    struct dirent *e;
    int entries = 0;
    mode_t old = umask(0); /* a lax umask must not leak into the file */

    in.api = "v3";
    in.access_token = "AT-2";
    in.refresh_token = "RT-2";
    in.expires_at = 1800000000L;
    in.client_id = "cid-2";
    in.last_refresh_at = 1700000000L;
    /* Replace an existing, bare, file. */
    put(f->path, "old-token\n", 0600);
    assert_int_equal(cts_tokenfile_write(f->path, &in, &err), 0);
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(cts_tokenfile_read(f->path, &out, &err), 0);
    assert_string_equal(out.access_token, "AT-2");
    assert_string_equal(out.refresh_token, "RT-2");
    assert_string_equal(out.api, "v3");
    assert_string_equal(out.client_id, "cid-2");
    assert_int_equal(out.expires_at, 1800000000L);
    assert_int_equal(out.last_refresh_at, 1700000000L);
    cts_tokens_free(&out);

    /* No temporary file is left behind. */
    d = opendir(f->dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' || strlen(e->d_name) > 2)
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
}

/* The file is replaced by rename, never rewritten in place: a reader that
 * opened the old file keeps seeing the old contents in full. */
static void test_write_replaces_atomically(void **state)
{
    struct fx *f = *state;
    struct cts_tokens in = {0};
    struct cts_error err = {0};
    struct stat before, after;
    char buf[64];
    ssize_t n;
    int fd;

    put(f->path, "old-token-value\n", 0600);
    assert_int_equal(stat(f->path, &before), 0);
    fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    in.access_token = "new-token-value";
    assert_int_equal(cts_tokenfile_write(f->path, &in, &err), 0);
    assert_int_equal(stat(f->path, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "old-token-value\n");
}

static void test_write_fails_cleanly(void **state)
{
    struct fx *f = *state;
    struct cts_tokens in = {0};
    struct cts_error err = {0};
    char p[160];
    in.access_token = "AT-3";
    snprintf(p, sizeof(p), "%s/no/such/dir/token", f->dir);
    assert_int_equal(cts_tokenfile_write(p, &in, &err), CTS_ECONFIG);
    assert_int_equal(err.exit_code, CTS_EX_CONFIG);
    assert_non_null(strstr(err.msg, p));
    /* Renaming over a directory fails; the temp file must be removed. */
    snprintf(p, sizeof(p), "%s/adir", f->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(cts_tokenfile_write(p, &in, &err), CTS_ECONFIG);
    assert_int_equal(rmdir(p), 0);
    {
        DIR *d = opendir(f->dir);
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                n++;
        closedir(d);
        assert_int_equal(n, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_bare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces_atomically, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_cleanly, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("tokenfile", tests, NULL, NULL);
}
