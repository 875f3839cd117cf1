/* test_report.c — ordered sink, CSV quoting and neutralising, summary. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cts_progress.h"
#include "cts_report.h"

struct fixture {
    FILE *fp;
    char *buf;
    size_t len;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->fp = open_memstream(&f->buf, &f->len);
    *state = f;
    return f->fp == NULL;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->fp != NULL)
        fclose(f->fp);
    free(f->buf);
    free(f);
    return 0;
}

static struct cts_result mk(long row, const char *email, enum cts_status st)
{
    struct cts_result r;
    memset(&r, 0, sizeof(r));
    r.file = "in.csv";
    r.row = row;
    r.email = email;
    r.status = st;
    return r;
}

/* The text after the BOM and header line. */
static const char *body(struct fixture *f)
{
    const char *p;
    fflush(f->fp);
    assert_true(f->len >= 3);
    assert_memory_equal(f->buf, "\xef\xbb\xbf", 3);
    p = strstr(f->buf, "message\r\n");
    assert_non_null(p);
    return p + strlen("message\r\n");
}

static void test_header_and_bom(void **state)
{
    struct fixture *f = *state;
    struct cts_error err = {0};
    struct cts_report *r = cts_report_open_stream(f->fp, &err);
    assert_non_null(r);
    fflush(f->fp);
    assert_string_equal(f->buf, "\xef\xbb\xbf"
                                "file,row,email,status,http_status,attempts,"
                                "contact_id,error_key,message\r\n");
    assert_int_equal(cts_report_close(r, &err), 0);
}

static void test_in_order_from_out_of_order(void **state)
{
    struct fixture *f = *state;
    struct cts_report *r = cts_report_open_stream(f->fp, NULL);
    struct cts_result a = mk(1, "a@x.io", CTS_ST_CREATED);
    struct cts_result b = mk(2, "b@x.io", CTS_ST_UPDATED);
    struct cts_result c = mk(3, "c@x.io", CTS_ST_FAILED);
    char ebuf[32];

    /* b is copied: scribbling on the caller's buffer must not show. */
    snprintf(ebuf, sizeof(ebuf), "b@x.io");
    b.email = ebuf;
    assert_int_equal(cts_report_put(r, 2, &c), 0);
    assert_int_equal(cts_report_put(r, 1, &b), 0);
    memset(ebuf, 'Z', 6);
    assert_int_equal(cts_report_written(r), 0);
    assert_int_equal(cts_report_held(r), 2);
    assert_int_equal(cts_report_put(r, 0, &a), 0);
    assert_int_equal(cts_report_written(r), 3);
    assert_int_equal(cts_report_held(r), 0);
    /* A seq already written is refused. */
    assert_int_equal(cts_report_put(r, 1, &b), CTS_EUSAGE);
    assert_string_equal(body(f), "in.csv,1,a@x.io,created,,0,,,\r\n"
                                 "in.csv,2,b@x.io,updated,,0,,,\r\n"
                                 "in.csv,3,c@x.io,failed,,0,,,\r\n");
    assert_int_equal(cts_report_counts(r)->input_rows, 3);
    assert_int_equal(cts_report_counts(r)->status[CTS_ST_FAILED], 1);
    assert_int_equal(cts_report_close(r, NULL), 0);
}

/* Reverse order across several ring growths: every row once, in order. */
static void test_ring_growth(void **state)
{
    struct fixture *f = *state;
    struct cts_report *r = cts_report_open_stream(f->fp, NULL);
    const long n = 1000;
    long i, row;
    const char *p;

    for (i = n - 1; i >= 0; i--) {
        struct cts_result x = mk(i + 1, "e@x.io", CTS_ST_CREATED);
        assert_int_equal(cts_report_put(r, (uint64_t)i, &x), 0);
    }
    assert_int_equal(cts_report_written(r), n);
    p = body(f);
    for (row = 1; row <= n; row++) {
        char want[64];
        int k = snprintf(want, sizeof(want), "in.csv,%ld,", row);
        assert_memory_equal(p, want, (size_t)k);
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    assert_int_equal(*p, '\0');
    assert_int_equal(cts_report_close(r, NULL), 0);
}

/* Interleaved pattern: odd rows first, then even, with a wrap-around. */
static void test_ring_interleaved(void **state)
{
    struct fixture *f = *state;
    struct cts_report *r = cts_report_open_stream(f->fp, NULL);
    long i;
    for (i = 1; i < 300; i += 2) {
        struct cts_result x = mk(i + 1, "o@x.io", CTS_ST_CREATED);
        assert_int_equal(cts_report_put(r, (uint64_t)i, &x), 0);
    }
    for (i = 0; i < 300; i += 2) {
        struct cts_result x = mk(i + 1, "e@x.io", CTS_ST_CREATED);
        assert_int_equal(cts_report_put(r, (uint64_t)i, &x), 0);
        assert_int_equal(cts_report_written(r), (uint64_t)i + 2);
    }
    assert_int_equal(cts_report_counts(r)->input_rows, 300);
    assert_int_equal(cts_report_close(r, NULL), 0);
}

static void test_quoting_and_neutralising(void **state)
{
    struct fixture *f = *state;
    struct cts_report *r = cts_report_open_stream(f->fp, NULL);
    struct cts_result x = mk(7, "=cmd|' /C calc'!A0", CTS_ST_INVALID);

    x.file = "a,b.csv";
    x.http_status = 400;
    x.attempts = 2;
    x.contact_id = "-12";
    x.error_key = "@key";
    x.message = "say \"hi\"\nthen +1";
    assert_int_equal(cts_report_put(r, 0, &x), 0);
    x = mk(8, "\tx@y.io", CTS_ST_INVALID);
    x.message = "\rlead";
    assert_int_equal(cts_report_put(r, 1, &x), 0);
    x = mk(9, "plain@y.io", CTS_ST_CREATED);
    x.message = "Ünïcödé, kept";
    assert_int_equal(cts_report_put(r, 2, &x), 0);
    assert_string_equal(body(f),
                        "\"a,b.csv\",7,'=cmd|' /C calc'!A0,invalid,400,2,"
                        "'-12,'@key,\"say \"\"hi\"\"\nthen +1\"\r\n"
                        "in.csv,8,'\tx@y.io,invalid,,0,,,\"'\rlead\"\r\n"
                        "in.csv,9,plain@y.io,created,,0,,,"
                        "\"Ünïcödé, kept\"\r\n");
    assert_int_equal(cts_report_close(r, NULL), 0);
}

/* A gap at close is reported, and the held rows are still written. */
static void test_gap_at_close(void **state)
{
    struct fixture *f = *state;
    struct cts_report *r = cts_report_open_stream(f->fp, NULL);
    struct cts_result x = mk(2, "b@x.io", CTS_ST_CREATED);
    struct cts_error err = {0};

    assert_int_equal(cts_report_put(r, 1, &x), 0);
    assert_int_not_equal(cts_report_close(r, &err), 0);
    assert_int_equal(err.exit_code, CTS_EX_SOFTWARE);
    assert_string_equal(body(f), "in.csv,2,b@x.io,created,,0,,,\r\n");
}

static void test_unwritable_path(void **state)
{
    struct cts_error err = {0};
    (void)state;
    assert_null(cts_report_open("/nonexistent-dir/x/report.csv", &err));
    assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/report.csv"));
}

/* A disk that is full: at open (/dev/full takes no byte, and the header
 * goes out at once), or later in the run (a file size limit lets the
 * header in and refuses a later block of lines).  Either way the run must
 * hear of it, exit 73. */
static void test_full_disk(void **state)
{
    struct cts_error err = {0};
    struct cts_report *r;
    struct cts_result x = mk(1, "a@x.io", CTS_ST_CREATED);
    char path[] = "/tmp/cts-report-full-XXXXXX";
    struct rlimit old, lim;
    void (*oldsig)(int);
    long i;
    int rc = 0, fd;
    (void)state;

    r = cts_report_open("/dev/full", &err);
    if (r != NULL) {
        assert_int_not_equal(cts_report_close(r, &err), 0);
    }
    assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 16 * 1024; /* the header fits, 64 KiB of lines do not */
    oldsig = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    memset(&err, 0, sizeof(err));
    r = cts_report_open(path, &err);
    for (i = 0; r != NULL && i < 20000 && rc == 0; i++) {
        x.row = i + 1;
        rc = cts_report_put(r, (uint64_t)i, &x);
    }
    if (r != NULL)
        rc = cts_report_close(r, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    unlink(path);
    assert_non_null(r); /* the header fitted */
    assert_int_not_equal(rc, 0);
    assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);
}

/* The before-write hook: a report file's lines reach the file only after
 * the hook ran (the pipeline writes the rows' journal records there), and
 * a failing hook is a write error (exit 73). */
struct hook_seen {
    const char *path;
    int calls, fail;
    long lines_in_file; /* data lines in the file when the hook last ran */
};

static long data_lines(const char *path)
{
    FILE *fp = fopen(path, "rb");
    long n = 0;
    int c;
    if (fp == NULL)
        return -1;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n > 0 ? n - 1 : 0; /* minus the header line */
}

static int hook(void *arg)
{
    struct hook_seen *h = arg;
    h->calls++;
    h->lines_in_file = data_lines(h->path);
    return h->fail ? -5 : 0;
}

static void test_before_write_hook(void **state)
{
    struct cts_error err = {0};
    char path[] = "/tmp/cts-report-XXXXXX";
    struct hook_seen h = {path, 0, 0, -1};
    struct cts_result x = mk(1, "a@x.io", CTS_ST_CREATED);
    struct cts_report *r;
    long i, n = 3000; /* > 64 KiB of lines: at least one block mid-run */
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    close(fd);
    r = cts_report_open(path, &err);
    assert_non_null(r);
    cts_report_set_before_write(r, hook, &h);
    for (i = 0; i < n; i++) {
        x.row = i + 1;
        assert_int_equal(cts_report_put(r, (uint64_t)i, &x), 0);
        /* Whenever the hook ran, no line it covers was in the file yet. */
        assert_true(h.calls == 0 || h.lines_in_file < i + 1);
    }
    assert_true(h.calls >= 1);
    assert_true(data_lines(path) < n); /* the tail waits for close */
    assert_int_equal(cts_report_close(r, &err), 0);
    assert_true(h.lines_in_file < n);
    assert_int_equal(data_lines(path), n);

    /* A hook that fails stops the lines and fails the close. */
    h.fail = 1;
    r = cts_report_open(path, &err);
    assert_non_null(r);
    cts_report_set_before_write(r, hook, &h);
    assert_int_equal(cts_report_put(r, 0, &x), 0);
    assert_int_not_equal(cts_report_close(r, &err), 0);
    assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);
    assert_int_equal(data_lines(path), 0);
    unlink(path);
}

static void test_summary_json(void **state)
{
    struct cts_report_counts c;
    struct cts_error err = {0};
    char path[] = "/tmp/cts-summary-XXXXXX";
    static const char *keys[] = {
        "api",      "account",   "input_rows", "created",      "updated",
        "imported", "unchanged", "exists",     "invalid",      "duplicate",
        "failed",   "deferred",  "opted_out",  "unsubscribed", "removed",
        "requests", "throttled", "retries",    "elapsed_s",    "exit_code"};
    json_t *j;
    json_error_t jerr;
    const char *k;
    json_t *v;
    size_t i = 0;
    int fd;
    (void)state;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    memset(&c, 0, sizeof(c));
    c.input_rows = 10;
    c.status[CTS_ST_CREATED] = 6;
    c.status[CTS_ST_INVALID] = 3;
    c.status[CTS_ST_DEFERRED] = 1;
    c.status[CTS_ST_OPTED_OUT] = 4;
    c.status[CTS_ST_UNSUBSCRIBED] = 2;
    c.requests = 9;
    c.retries = 2;
    assert_int_equal(
        cts_report_write_summary(path, &c, "v3", "acct1", 1.25, 75, &err), 0);
    j = json_load_file(path, JSON_PRESERVE_ORDER, &jerr);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), sizeof(keys) / sizeof(keys[0]));
    json_object_foreach(j, k, v)
    {
        assert_string_equal(k, keys[i]);
        i++;
    }
    assert_string_equal(json_string_value(json_object_get(j, "api")), "v3");
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 6);
    assert_int_equal(json_integer_value(json_object_get(j, "deferred")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "opted_out")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "unsubscribed")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 75);
    assert_true(json_real_value(json_object_get(j, "elapsed_s")) > 1.2);
    json_decref(j);
    unlink(path);
    close(fd);

    assert_int_not_equal(cts_report_write_summary("/nonexistent/s.json", &c,
                                                  "v2", NULL, 0, 0, &err),
                         0);
    assert_int_equal(err.exit_code, CTS_EX_CANTCREAT);
}

static void test_summary_line(void **state)
{
    struct cts_report_counts c;
    char line[256];
    (void)state;
    memset(&c, 0, sizeof(c));
    c.input_rows = 5;
    c.status[CTS_ST_CREATED] = 3;
    c.status[CTS_ST_DUPLICATE] = 2;
    c.requests = 4;
    c.retries = 1;
    assert_string_equal(cts_report_summary_line(&c, 2.04, line, sizeof(line)),
                        "5 rows: 3 created, 0 updated, 2 duplicate, 0 failed;"
                        " 4 requests, 0 throttled, 1 retries, 2.0 s");
    /* Consent outcomes are said in words, and only when they happened. */
    c.input_rows = 9;
    c.status[CTS_ST_OPTED_OUT] = 3;
    c.status[CTS_ST_UNSUBSCRIBED] = 1;
    assert_string_equal(cts_report_summary_line(&c, 2.04, line, sizeof(line)),
                        "9 rows: 3 created, 0 updated, 2 duplicate, 0 failed,"
                        " 3 opted out (unsubscribed in the account, left"
                        " alone), 1 unsubscribed (as the file asked);"
                        " 4 requests, 0 throttled, 1 retries, 2.0 s");
}

/* The consent statuses are report statuses like the others, and rows in
 * them are settled: they count, they are not failures. */
static void test_consent_statuses(void **state)
{
    struct fixture *f = *state;
    struct cts_error err = {0};
    struct cts_report *r = cts_report_open_stream(f->fp, &err);
    struct cts_result a = mk(1, "gone@x.co", CTS_ST_OPTED_OUT);
    struct cts_result b = mk(2, "bye@x.co", CTS_ST_UNSUBSCRIBED);
    struct cts_result c = mk(3, "old@x.co", CTS_ST_REMOVED);
    assert_non_null(r);
    a.message = "unsubscribed since 2024-03-05; left alone";
    b.http_status = 200;
    b.attempts = 2;
    assert_int_equal(cts_report_put(r, 0, &a), 0);
    assert_int_equal(cts_report_put(r, 2, &c), 0);
    assert_int_equal(cts_report_put(r, 1, &b), 0);
    assert_string_equal(body(f),
                        "in.csv,1,gone@x.co,opted-out,,0,,,unsubscribed since "
                        "2024-03-05; left alone\r\n"
                        "in.csv,2,bye@x.co,unsubscribed,200,2,,,\r\n"
                        "in.csv,3,old@x.co,removed,,0,,,\r\n");
    assert_int_equal(cts_report_counts(r)->status[CTS_ST_OPTED_OUT], 1);
    assert_int_equal(cts_report_counts(r)->status[CTS_ST_UNSUBSCRIBED], 1);
    assert_int_equal(cts_report_counts(r)->status[CTS_ST_REMOVED], 1);
    assert_int_equal(cts_status_parse("opted-out"), CTS_ST_OPTED_OUT);
    assert_int_equal(cts_status_parse("unsubscribed"), CTS_ST_UNSUBSCRIBED);
    assert_int_equal(cts_status_parse("removed"), CTS_ST_REMOVED);
    assert_int_equal(cts_report_close(r, &err), 0);
}

static void test_progress_rate_limit(void **state)
{
    struct fixture *f = *state;
    struct cts_progress p;
    (void)state;
    cts_progress_init(&p, f->fp, 1000);
    assert_int_equal(cts_progress_update(&p, 1000, 0, 100, 0, 0), 1);
    /* Within 100 ms: not redrawn (≤ 10 updates per second). */
    assert_int_equal(cts_progress_update(&p, 1050, 1, 100, 1, 0), 0);
    assert_int_equal(cts_progress_update(&p, 2000, 50, 100, 50, 2), 1);
    fflush(f->fp);
    assert_non_null(strstr(f->buf, "rows 50/100 (50%)"));
    assert_non_null(strstr(f->buf, "50.0 req/s"));
    assert_non_null(strstr(f->buf, "ETA 0:01"));
    cts_progress_clear(&p);
    fflush(f->fp);
    assert_int_equal(p.shown, 0);
    assert_string_equal(f->buf + f->len - 4, "\r\033[K");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_header_and_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_order_from_out_of_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ring_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoting_and_neutralising, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gap_at_close, setup, teardown),
        cmocka_unit_test(test_unwritable_path),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_before_write_hook),
        cmocka_unit_test(test_summary_json),
        cmocka_unit_test(test_summary_line),
        cmocka_unit_test_setup_teardown(test_consent_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_rate_limit, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
