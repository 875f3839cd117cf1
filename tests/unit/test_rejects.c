/* test_rejects.c — the rejects file: rows read back with their columns,
 * the problem column, headers of several inputs, streams, stale files. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cts_config.h"
#include "cts_mapper.h"
#include "cts_rejects.h"
#include "cts_report.h"

struct fx {
    char dir[64];
    char *inputs[3];
    struct cts_config cfg;
    char *out;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_rejects.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->cfg.inputs = f->inputs;
    f->cfg.encoding = CTS_ENC_AUTO;
    f->out = cts_xasprintf("%s/out.csv", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    size_t i;
    char *cmd = cts_xasprintf("rm -rf '%s'", f->dir);

    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(cmd);
    for (i = 0; i < f->cfg.ninputs; i++)
        free(f->inputs[i]);
    free(f->out);
    free(f);
    return 0;
}

/* Write an input file named name in the fixture's directory; it becomes
 * the next input of the run. */
static const char *input(struct fx *f, const char *name, const char *text)
{
    char *path = cts_xasprintf("%s/%s", f->dir, name);
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    f->inputs[f->cfg.ninputs++] = path;
    return path;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);
    size_t n;

    if (fp == NULL) {
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void add(struct cts_rejects *rj, const char *file, long row,
                enum cts_status st, int http, const char *key, const char *msg)
{
    struct cts_result r;

    memset(&r, 0, sizeof(r));
    r.file = file;
    r.row = row;
    r.status = st;
    r.http_status = http;
    r.error_key = key;
    r.message = msg;
    assert_int_equal(cts_rejects_add(rj, &r, NULL), 0);
}

/* Write the rejects and compare the whole file. */
static void expect_file(struct fx *f, struct cts_rejects *rj, long rows,
                        const char *want)
{
    struct cts_error err = {0};
    long n = -1;
    char *got;

    assert_int_equal(cts_rejects_write(rj, f->out, &n, &err), 0);
    assert_int_equal(n, rows);
    got = slurp(f->out);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_rows_with_columns(void **state)
{
    struct fx *f = *state;
    const char *in = input(f, "in.csv",
                           "\xef\xbb\xbf"
                           "Email,Name,Phone\r\n"
                           "a@x.com,A,1\r\n"
                           "bad,\"B, the \"\"second\"\"\",+1 555\r\n"
                           "c@x.com,C,3\r\n"
                           "\r\n"
                           "d@x.com,\"multi\nline\",=1+1\r\n");
    struct cts_rejects *rj = cts_rejects_new(&f->cfg);
    struct stat st;

    (void)in;
    add(rj, f->inputs[0], 1, CTS_ST_CREATED, 201, NULL, NULL);
    add(rj, f->inputs[0], 2, CTS_ST_INVALID, 0, NULL, "email: no '@'");
    add(rj, f->inputs[0], 3, CTS_ST_DUPLICATE, 0, NULL, "same as row 1");
    add(rj, f->inputs[0], 4, CTS_ST_FAILED, 400, "json.field.invalid",
        "Phone is wrong");
    assert_int_equal(cts_rejects_count(rj), 2);
    /* Blank lines are not rows; a quoted newline stays in its row. */
    expect_file(f, rj, 2,
                "\xef\xbb\xbf"
                "Email,Name,Phone,ctct_sync_problem\r\n"
                "bad,\"B, the \"\"second\"\"\",'+1 555,email: no '@'\r\n"
                "d@x.com,\"multi\nline\",'=1+1,\"refused by Constant "
                "Contact (HTTP 400, json.field.invalid): Phone is wrong\"\r\n");
    assert_int_equal(stat(f->out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cts_rejects_free(rj);
}

static void test_none_removes_stale(void **state)
{
    struct fx *f = *state;
    struct cts_rejects *rj;
    struct cts_error err = {0};
    char *link = cts_xasprintf("%s/link.csv", f->dir);
    long n = -1;
    FILE *fp;

    input(f, "in.csv", "email\na@x.com\n");
    fp = fopen(f->out, "w");
    fputs("an earlier run's rejects\n", fp);
    fclose(fp);
    rj = cts_rejects_new(&f->cfg);
    add(rj, f->inputs[0], 1, CTS_ST_DEFERRED, 0, NULL, "later");
    assert_int_equal(cts_rejects_write(rj, f->out, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(access(f->out, F_OK), -1);
    /* Never a device, nor through a link. */
    assert_int_equal(symlink("/dev/null", link), 0);
    assert_int_equal(cts_rejects_write(rj, link, &n, &err), 0);
    assert_int_equal(cts_rejects_write(rj, "/dev/null", &n, &err), 0);
    assert_int_equal(access("/dev/null", F_OK), 0);
    assert_int_equal(access(link, F_OK), 0);
    cts_rejects_free(rj);
    free(link);
}

static void test_union_of_headers(void **state)
{
    struct fx *f = *state;
    struct cts_rejects *rj;

    /* "first_name" and "First Name" are one column (normalised as the
     * mapper reads them); a new column is appended; an old problem column
     * is dropped; a row longer than its header keeps its extra cells. */
    input(f, "a.csv", "Email,First Name\nx1,A\ny@x.com,B\n");
    input(f, "b.csv",
          "first_name,e-mail,Zip,ctct_sync_problem\n"
          "C,x2,123,old problem\n");
    input(f, "c.csv", "email\nx3,extra,cells\n");
    rj = cts_rejects_new(&f->cfg);
    add(rj, f->inputs[0], 1, CTS_ST_INVALID, 0, NULL, "p1");
    add(rj, f->inputs[0], 2, CTS_ST_CREATED, 0, NULL, NULL);
    add(rj, f->inputs[1], 1, CTS_ST_INVALID, 0, NULL, "p2");
    add(rj, f->inputs[2], 1, CTS_ST_INVALID, 0, NULL,
        "expected 1 fields, found 3");
    expect_file(f, rj, 3,
                "\xef\xbb\xbf"
                "Email,First Name,Zip,,,ctct_sync_problem\r\n"
                "x1,A,,,,p1\r\n"
                "x2,C,123,,,p2\r\n"
                "x3,,,extra,cells,\"expected 1 fields, found 3\"\r\n");
    cts_rejects_free(rj);
}

static void test_changed_input_left_out(void **state)
{
    struct fx *f = *state;
    struct cts_rejects *rj;
    struct cts_error err = {0};
    long n = -1;
    FILE *fp;

    input(f, "in.csv", "email\nbad\n");
    rj = cts_rejects_new(&f->cfg);
    add(rj, f->inputs[0], 1, CTS_ST_INVALID, 0, NULL, "email: no '@'");
    /* Rewritten during the run: its row 1 may be another row now. */
    fp = fopen(f->inputs[0], "w");
    fputs("email\nsomeone.else@x.com, with more\n", fp);
    fclose(fp);
    assert_int_equal(cts_rejects_write(rj, f->out, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(access(f->out, F_OK), -1);
    cts_rejects_free(rj);
}

static void test_stream_copied(void **state)
{
    struct fx *f = *state;
    struct cts_rejects *rj;
    const char text[] = "email;city\nok@x.com;Oslo\nbad;Paris\n";
    int fds[2];

    f->inputs[f->cfg.ninputs++] = cts_xstrdup("-");
    f->cfg.delimiter = 0; /* detected, as when read the first time */
    rj = cts_rejects_new(&f->cfg);
    assert_int_equal(pipe(fds), 0);
    /* A pipe cannot be read twice: the reader copies what it reads. */
    assert_int_equal(cts_rejects_tee_start(rj, 0, fds[0]), 1);
    cts_rejects_tee(rj, 0, text, 20);
    cts_rejects_tee(rj, 0, text + 20, sizeof(text) - 1 - 20);
    close(fds[0]);
    close(fds[1]);
    add(rj, "-", 2, CTS_ST_INVALID, 0, NULL, "email: no '@'");
    expect_file(f, rj, 1,
                "\xef\xbb\xbf"
                "email,city,ctct_sync_problem\r\n"
                "bad,Paris,email: no '@'\r\n");
    cts_rejects_free(rj);
}

static void test_regular_file_not_copied(void **state)
{
    struct fx *f = *state;
    struct cts_rejects *rj;
    int fd;

    input(f, "in.csv", "email\nbad\n");
    rj = cts_rejects_new(&f->cfg);
    fd = open(f->inputs[0], O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(cts_rejects_tee_start(rj, 0, fd), 0);
    close(fd);
    cts_rejects_free(rj);
}

static void test_problem_words(void **state)
{
    struct cts_result r;
    char buf[256];

    (void)state;
    memset(&r, 0, sizeof(r));
    r.status = CTS_ST_INVALID;
    r.message = "first_name: longer than 50 characters";
    assert_string_equal(cts_rejects_problem(&r, NULL, buf, sizeof(buf)),
                        "first_name: longer than 50 characters");
    r.status = CTS_ST_FAILED;
    r.http_status = 400;
    r.error_key = "contacts.api.validation.error";
    r.message = "Street is too long";
    assert_string_equal(cts_rejects_problem(&r, NULL, buf, sizeof(buf)),
                        "refused by Constant Contact (HTTP 400, "
                        "contacts.api.validation.error): Street is too long");
    /* The masked text the report passes wins over the raw message. */
    assert_string_equal(cts_rejects_problem(&r, "masked", buf, sizeof(buf)),
                        "refused by Constant Contact (HTTP 400, "
                        "contacts.api.validation.error): masked");
    r.error_key = NULL;
    r.message = NULL;
    assert_string_equal(cts_rejects_problem(&r, NULL, buf, sizeof(buf)),
                        "refused by Constant Contact (HTTP 400)");
    r.http_status = 0;
    r.message = "gave up after 7 attempts: timeout";
    assert_string_equal(cts_rejects_problem(&r, NULL, buf, sizeof(buf)),
                        "gave up after 7 attempts: timeout");
    assert_true(cts_rejects_wanted(CTS_ST_INVALID));
    assert_true(cts_rejects_wanted(CTS_ST_FAILED));
    assert_false(cts_rejects_wanted(CTS_ST_DEFERRED));
    assert_false(cts_rejects_wanted(CTS_ST_DUPLICATE));
    assert_false(cts_rejects_wanted(CTS_ST_OPTED_OUT));
}

static void test_default_path(void **state)
{
    char *p;

    (void)state;
    p = cts_rejects_default_path("contacts.report.csv");
    assert_string_equal(p, "contacts.rejects.csv");
    free(p);
    p = cts_rejects_default_path("out/r.csv");
    assert_string_equal(p, "out/r.rejects.csv");
    free(p);
    p = cts_rejects_default_path("out/REPORT");
    assert_string_equal(p, "out/REPORT.rejects.csv");
    free(p);
    /* Nothing is "beside" a device. */
    assert_null(cts_rejects_default_path("/dev/null"));
}

static void test_report_hands_rows_over(void **state)
{
    struct fx *f = *state;
    struct cts_rejects *rj;
    struct cts_report *rep;
    struct cts_error err = {0};
    struct cts_result r;
    FILE *fp = tmpfile();

    input(f, "in.csv", "email\nbad1\nok@x.com\nbad3\n");
    rj = cts_rejects_new(&f->cfg);
    rep = cts_report_open_stream(fp, &err);
    assert_non_null(rep);
    cts_report_set_rejects(rep, rj);
    memset(&r, 0, sizeof(r));
    r.file = f->inputs[0];
    /* Out of order: the report writes (and hands over) in input order. */
    r.row = 3;
    r.status = CTS_ST_INVALID;
    r.message = "three";
    assert_int_equal(cts_report_put(rep, 2, &r), 0);
    r.row = 2;
    r.status = CTS_ST_CREATED;
    r.message = NULL;
    assert_int_equal(cts_report_put(rep, 1, &r), 0);
    assert_int_equal(cts_rejects_count(rj), 0);
    r.row = 1;
    r.status = CTS_ST_INVALID;
    r.message = "one";
    assert_int_equal(cts_report_put(rep, 0, &r), 0);
    assert_int_equal(cts_rejects_count(rj), 2);
    assert_int_equal(cts_report_close(rep, &err), 0);
    fclose(fp);
    expect_file(f, rj, 2,
                "\xef\xbb\xbf"
                "email,ctct_sync_problem\r\n"
                "bad1,one\r\n"
                "bad3,three\r\n");
    cts_rejects_free(rj);
}

/* A rejects file imported again: its problem column is known (not an
 * "ignored column"), and the quote that neutralised a cell comes off. */
static void test_mapper_reads_rejects_file(void **state)
{
    const char *hf[] = {"Email", "Phone", "Notes", "ctct_sync_problem"};
    size_t hl[] = {5, 5, 5, 17};
    const char *rf[] = {"'-bob@x.com", "'+1 555", "'=2", "email: no '@'"};
    size_t rl[] = {11, 7, 3, 13};
    struct cts_row h = {"r.csv", 0, 1, 4, hf, hl, NULL};
    struct cts_row r = {"r.csv", 1, 2, 4, rf, rl, NULL};
    struct cts_mapper_opts mo;
    struct cts_mapper *m;
    struct cts_contact c;
    struct cts_error err = {0};
    const char *const *names;

    (void)state;
    memset(&mo, 0, sizeof(mo));
    mo.api = CTS_API_V3;
    mo.file = "r.csv";
    m = cts_mapper_new(&mo, &h, &err);
    assert_non_null(m);
    assert_int_equal(cts_mapper_unmapped(m, &names), 1);
    assert_string_equal(names[0], "Notes");
    memset(&c, 0, sizeof(c));
    assert_int_equal(cts_mapper_map(m, &r, &c, &err), 0);
    assert_string_equal(c.f[CTS_F_EMAIL], "-bob@x.com");
    assert_string_equal(c.f[CTS_F_PHONE], "+1 555");
    cts_contact_free(&c);
    cts_mapper_free(m);
    /* Any other file too: the quote before a formula character is what a
     * spreadsheet-safe writer (ours: report, export, rejects) added, not
     * part of the value, so an export imports back unchanged. */
    hf[3] = "Comment";
    hl[3] = 7;
    m = cts_mapper_new(&mo, &h, &err);
    assert_non_null(m);
    memset(&c, 0, sizeof(c));
    rf[0] = "bob@x.com";
    rl[0] = 9;
    assert_int_equal(cts_mapper_map(m, &r, &c, &err), 0);
    assert_string_equal(c.f[CTS_F_PHONE], "+1 555");
    cts_contact_free(&c);
    cts_mapper_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_with_columns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_none_removes_stale, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_union_of_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_input_left_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regular_file_not_copied, setup,
                                        teardown),
        cmocka_unit_test(test_problem_words),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_mapper_reads_rejects_file),
        cmocka_unit_test_setup_teardown(test_report_hands_rows_over, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
