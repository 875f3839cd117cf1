/* test_htmlreport.c — the HTML page: well-formed, escaped, counts,
 * bounded rows, suggestions, atomic 0600 write, the report sink's hook. */
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

#include "cts_htmlreport.h"
#include "cts_report.h"

static struct cts_result mk(long row, const char *email, enum cts_status st,
                            int http, const char *msg)
{
    struct cts_result r;

    memset(&r, 0, sizeof(r));
    r.file = "in.csv";
    r.row = row;
    r.email = email;
    r.status = st;
    r.http_status = http;
    r.message = msg;
    return r;
}

static const struct cts_html_list lists[] = {
    {"8c2b-0001", "General <i>Interest</i>"},
    {"8c2b-0002", NULL},
};
static char in1[] = "in.csv", in2[] = "o'brien.csv";
static char *const inputs[] = {in1, in2};

static void run_init(struct cts_html_run *run, struct cts_report_counts *c)
{
    memset(run, 0, sizeof(*run));
    run->api = "v3";
    run->account = "a07e1demo0001";
    run->organization = "Acme & <Sons>";
    run->lists = lists;
    run->nlists = 2;
    run->inputs = inputs;
    run->ninputs = 2;
    run->report_path = "in.report.csv";
    run->started = 1700000000;
    run->elapsed_s = 12.34;
    run->exit_code = 1;
    run->counts = c;
}

static char *render(const struct cts_html *h, const struct cts_html_run *run)
{
    struct cts_buf b;

    cts_buf_init(&b, 0);
    cts_html_render(h, run, &b);
    return cts_buf_detach(&b);
}

static int is_void(const char *name, size_t n)
{
    return (n == 4 && strncmp(name, "meta", 4) == 0) ||
           (n == 2 && strncmp(name, "br", 2) == 0);
}

/*
 * A strict little checker for the page's own dialect: every element
 * closed in order (void elements aside), attribute values double-quoted
 * with no '<' or '"' inside, no stray '<' or '>' in text (so nothing from
 * outside became markup), <style> content opaque.  Returns the number of
 * problems (0 = well formed) and the element count in *nelems.
 */
static int check_html(const char *p, int *nelems)
{
    const char *stack[64];
    size_t stackn[64];
    int depth = 0, bad = 0;

    *nelems = 0;
    if (strncmp(p, "<!DOCTYPE html>", 15) != 0)
        return 1;
    p += 15;
    while (*p != '\0') {
        const char *name;
        size_t n;
        int closing;
        if (*p == '>') {
            bad++;
            p++;
            continue;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        p++;
        closing = *p == '/';
        if (closing)
            p++;
        name = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
            p++;
        n = (size_t)(p - name);
        if (n == 0)
            return bad + 1; /* a '<' that starts no tag */
        /* attributes: name="value" */
        while (*p != '>' && *p != '\0') {
            if (*p == '"') {
                p++;
                while (*p != '"' && *p != '\0') {
                    if (*p == '<')
                        bad++;
                    p++;
                }
                if (*p == '\0')
                    return bad + 1;
            } else if (*p == '<' || *p == '\'') {
                bad++;
            }
            p++;
        }
        if (*p != '>')
            return bad + 1;
        p++;
        if (closing) {
            if (depth == 0 || stackn[depth - 1] != n ||
                strncmp(stack[depth - 1], name, n) != 0)
                return bad + 1;
            depth--;
            continue;
        }
        (*nelems)++;
        if (is_void(name, n))
            continue;
        if (depth == 64)
            return bad + 1;
        stack[depth] = name;
        stackn[depth++] = n;
        if (n == 5 && strncmp(name, "style", 5) == 0) {
            const char *end = strstr(p, "</style>");
            if (end == NULL)
                return bad + 1;
            p = end;
        }
    }
    return bad + depth;
}

/* The number after `key="` following the first occurrence of `at`, or -1. */
static long attr_after(const char *page, const char *at, const char *key)
{
    const char *p = strstr(page, at);
    char pat[64];

    if (p == NULL)
        return -1;
    snprintf(pat, sizeof(pat), "%s=\"", key);
    p = strstr(p, pat);
    return p != NULL ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    const char *p = hay;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

/* Text from the input, the API and the command line is never markup. */
static void test_escaped_and_well_formed(void **state)
{
    struct cts_html *h = cts_html_new(0);
    struct cts_report_counts c;
    struct cts_html_run run;
    struct cts_result r;
    char *page;
    int nel;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.input_rows = 3;
    c.status[CTS_ST_INVALID] = 2;
    c.status[CTS_ST_FAILED] = 1;
    run_init(&run, &c);
    r = mk(1, "<script>alert(1)</script>@x.com", CTS_ST_INVALID, 0,
           "email: invalid character before '@'");
    cts_html_add(h, &r);
    r = mk(2, "a\"b@x.com", CTS_ST_INVALID, 0, "<img src=x onerror=alert(2)>");
    cts_html_add(h, &r);
    r = mk(3, "ok@x.com", CTS_ST_FAILED, 400,
           "first_name \"<b>\" & more \x1b]2;owned\x07 \xe2\x80\xae");
    cts_html_add(h, &r);
    page = render(h, &run);

    assert_int_equal(check_html(page, &nel), 0);
    assert_true(nel > 20);
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "<img"));
    assert_null(strstr(page, "<b>"));
    assert_null(strstr(page, "<i>"));
    assert_null(strstr(page, "<Sons>"));
    assert_non_null(
        strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;@x.com"));
    assert_non_null(strstr(page, "a&quot;b@x.com"));
    assert_non_null(strstr(page, "General &lt;i&gt;Interest&lt;/i&gt;"));
    assert_non_null(strstr(page, "Acme &amp; &lt;Sons&gt;"));
    assert_non_null(strstr(page, "o&#39;brien.csv"));
    /* A terminal escape or a right-to-left override cannot hide text. */
    assert_null(strchr(page, '\x1b'));
    assert_null(strstr(page, "\xe2\x80\xae"));
    assert_non_null(strstr(page, "\\x1b]2;owned\\x07"));
    assert_non_null(strstr(page, "\\u202e"));
    /* Nothing to fetch: no script, no URL anywhere (the page's own
     * attributes are always quoted; "src=x" above is escaped text). */
    assert_null(strstr(page, "http://"));
    assert_null(strstr(page, "https://"));
    assert_null(strstr(page, "src=\""));
    assert_null(strstr(page, "href=\""));
    assert_null(strstr(page, "url("));
    assert_non_null(strstr(page, "@media print"));
    free(page);
    cts_html_free(h);
}

/* The bar and legend: one entry per non-zero status with its count. */
static void test_counts(void **state)
{
    struct cts_report_counts c;
    struct cts_html_run run;
    char *page;
    int s, nel;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.status[CTS_ST_CREATED] = 1234;
    c.status[CTS_ST_UNCHANGED] = 5;
    c.status[CTS_ST_DUPLICATE] = 1;
    c.status[CTS_ST_OPTED_OUT] = 7;
    c.status[CTS_ST_REMOVED] = 2;
    c.input_rows = 1234 + 5 + 1 + 7 + 2;
    c.requests = 1300;
    run_init(&run, &c);
    run.exit_code = 0;
    page = render(NULL, &run);
    assert_int_equal(check_html(page, &nel), 0);
    assert_int_equal(
        attr_after(page, "<section id=\"counts\"", "data-input-rows"), 1249);
    for (s = 0; s < CTS_ST__COUNT; s++) {
        char at[64];
        snprintf(at, sizeof(at), "<li data-status=\"%s\"",
                 cts_status_name((enum cts_status)s));
        if (c.status[s] == 0) {
            assert_null(strstr(page, at));
            continue;
        }
        assert_int_equal(attr_after(page, at, "data-count"), c.status[s]);
        /* The bar's segment: as wide as its count. */
        snprintf(at, sizeof(at), "<span class=\"s-%s\" style=\"flex-grow:%ld\"",
                 cts_status_name((enum cts_status)s), c.status[s]);
        assert_non_null(strstr(page, at));
    }
    /* Big numbers are grouped; the consent and mirror notes say them. */
    assert_non_null(strstr(page, "1,234"));
    assert_non_null(strstr(page, "id=\"consent\""));
    assert_non_null(strstr(page, "7 contacts are"));
    assert_non_null(strstr(page, "2 memberships were"));
    assert_non_null(strstr(page, "Every row settled"));
    assert_non_null(
        strstr(page, "None: no row is invalid, failed or deferred"));
    free(page);

    /* No opted-out, unsubscribed or removed rows: no such section. */
    c.status[CTS_ST_OPTED_OUT] = c.status[CTS_ST_REMOVED] = 0;
    page = render(NULL, &run);
    assert_null(strstr(page, "id=\"consent\""));
    free(page);
}

/* At most max_rows rows are kept; the page counts the rest. */
static void test_capped(void **state)
{
    struct cts_html *h = cts_html_new(3);
    struct cts_report_counts c;
    struct cts_html_run run;
    struct cts_result r;
    char *page;
    long i;
    int nel;

    (void)state;
    memset(&c, 0, sizeof(c));
    for (i = 1; i <= 9; i++) {
        enum cts_status st = i % 3 == 0 ? CTS_ST_CREATED : CTS_ST_INVALID;
        r = mk(i, "x@y", st, 0, "email: no dot in the domain");
        cts_html_add(h, &r);
        c.status[st]++;
        c.input_rows++;
    }
    assert_int_equal(cts_html_attention(h), 6);
    run_init(&run, &c);
    page = render(h, &run);
    assert_int_equal(check_html(page, &nel), 0);
    assert_int_equal(count_of(page, "<tr data-status="), 3);
    assert_int_equal(attr_after(page, "<p class=\"more\"", "data-more"), 3);
    assert_non_null(strstr(page, "3 more rows: see the CSV report"));
    /* The first rows are the ones kept: rows 1, 2 and 4. */
    assert_non_null(strstr(page, "<td class=\"row\">4</td>"));
    assert_null(strstr(page, "<td class=\"row\">5</td>"));
    free(page);
    cts_html_free(h);
}

/* Huge cells are cut on a UTF-8 boundary, so memory stays bounded. */
static void test_long_text_cut(void **state)
{
    struct cts_html *h = cts_html_new(0);
    struct cts_report_counts c;
    struct cts_html_run run;
    struct cts_result r;
    size_t n = 70000, i;
    char *big = malloc(n + 2);
    char *page;
    const char *p;

    (void)state;
    big[0] = 'a'; /* shifts every "é" to an odd offset */
    for (i = 1; i + 1 < n; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[i] = '\0';
    memset(&c, 0, sizeof(c));
    c.status[CTS_ST_INVALID] = 1;
    c.input_rows = 1;
    r = mk(1, big, CTS_ST_INVALID, 0, big);
    cts_html_add(h, &r);
    run_init(&run, &c);
    page = render(h, &run);
    assert_true(strlen(page) < 20000);
    assert_non_null(strstr(page, "\xe2\x80\xa6")); /* the "…" of a cut */
    for (p = page; *p != '\0'; p++)
        if (*p == '\xc3')
            assert_int_equal((unsigned char)p[1], 0xa9);
    free(page);
    free(big);
    cts_html_free(h);
}

/* Each row needing attention says what to do, in plain words. */
static void test_suggestions(void **state)
{
    struct cts_html *h = cts_html_new(0);
    struct cts_report_counts c;
    struct cts_html_run run;
    struct cts_result r;
    char *page;

    (void)state;
    memset(&c, 0, sizeof(c));
    r = mk(1, "bad", CTS_ST_INVALID, 0, "email: no '@'");
    cts_html_add(h, &r);
    r = mk(2, "a@b.co", CTS_ST_FAILED, 400,
           "first_name is longer than the API allows");
    cts_html_add(h, &r);
    r = mk(3, "c@d.co", CTS_ST_FAILED, 503, "Service unavailable");
    cts_html_add(h, &r);
    r = mk(4, "e@f.co", CTS_ST_DEFERRED, 0, NULL);
    cts_html_add(h, &r);
    c.status[CTS_ST_INVALID] = 1;
    c.status[CTS_ST_FAILED] = 2;
    c.status[CTS_ST_DEFERRED] = 1;
    c.input_rows = 4;
    run_init(&run, &c);
    run.exit_code = 75;
    page = render(h, &run);
    assert_non_null(strstr(page, "Fix the address in the file and re-import."));
    assert_non_null(strstr(page, "first_name is longer than the API allows"));
    assert_non_null(strstr(page, "(HTTP 400)"));
    assert_non_null(strstr(page, "Constant Contact refused the row"));
    assert_non_null(strstr(page, "A server or network error"));
    assert_non_null(strstr(page, "not sent in this run"));
    assert_non_null(strstr(page, "run the same command again later"));
    assert_non_null(strstr(page, "Not finished: 1 row was deferred"));
    free(page);
    cts_html_free(h);
}

/* A run that stopped before the account check still makes a page. */
static void test_stopped_early(void **state)
{
    struct cts_report_counts c;
    struct cts_html_run run;
    char *page;
    int nel;

    (void)state;
    memset(&c, 0, sizeof(c));
    run_init(&run, &c);
    run.account = run.organization = NULL;
    run.lists = NULL;
    run.nlists = 0;
    run.exit_code = 77;
    page = render(NULL, &run);
    assert_int_equal(check_html(page, &nel), 0);
    assert_non_null(strstr(page, "exit 77: credentials refused"));
    assert_non_null(strstr(page, "not checked"));
    assert_non_null(strstr(page, "No row was reported"));
    free(page);
}

static void test_default_path(void **state)
{
    static const char *cases[][2] = {
        {"contacts.report.csv", "contacts.report.html"},
        {"out/r.CSV", "out/r.html"},
        {"report", "report.html"},
        {"dir.csv/x", "dir.csv/x.html"},
        {"d/.csv", "d/.csv.html"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = cts_html_default_path(cases[i][0]);
        assert_string_equal(p, cases[i][1]);
        free(p);
    }
}

/* Written 0600 by rename: a symbolic link there is replaced, its target
 * untouched; no temporary file is left behind. */
static void test_write_file(void **state)
{
    char dir[] = "/tmp/cts-html-XXXXXX";
    char path[256], victim[256], cmd[300];
    struct cts_report_counts c;
    struct cts_html_run run;
    struct cts_error err = {0};
    struct stat st;
    FILE *fp;
    char buf[16] = {0};

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/r.html", dir);
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    fp = fopen(victim, "w");
    fputs("keep", fp);
    fclose(fp);
    assert_int_equal(symlink(victim, path), 0);
    memset(&c, 0, sizeof(c));
    run_init(&run, &c);
    assert_int_equal(cts_html_write(NULL, &run, path, &err), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    fp = fopen(victim, "r");
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_string_equal(buf, "keep");
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) = 2", dir);
    assert_int_equal(system(cmd), 0);
    /* A directory in the way: an error that names the file (exit 73). */
    snprintf(path, sizeof(path), "%s/sub", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_true(cts_html_write(NULL, &run, path, &err) < 0);
    assert_int_equal(err.exit_code, 73);
    assert_non_null(strstr(err.msg, "HTML report"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The report sink hands each written row over, in order and masked. */
static void test_report_hook(void **state)
{
    static const char secret[] = "tok-SECRET-0123456789abcdef";
    struct cts_html *h = cts_html_new(0);
    struct cts_report_counts c;
    struct cts_html_run run;
    struct cts_error err = {0};
    struct cts_report *rep;
    struct cts_result r;
    char *buf = NULL, *page;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    char msg[128];

    (void)state;
    cts_log_add_secret(secret);
    rep = cts_report_open_stream(fp, &err);
    assert_non_null(rep);
    cts_report_set_html(rep, h);
    /* Out of order: rows wait in the sink, then reach the page in order. */
    snprintf(msg, sizeof(msg), "refused with token %s", secret);
    r = mk(3, "c@d.co", CTS_ST_FAILED, 400, msg);
    assert_int_equal(cts_report_put(rep, 2, &r), 0);
    r = mk(2, "nope", CTS_ST_INVALID, 0, "email: no '@'");
    assert_int_equal(cts_report_put(rep, 1, &r), 0);
    r = mk(1, "a@b.co", CTS_ST_CREATED, 201, NULL);
    assert_int_equal(cts_report_put(rep, 0, &r), 0);
    assert_int_equal(cts_html_attention(h), 2);
    c = *cts_report_counts(rep);
    assert_int_equal(cts_report_close(rep, &err), 0);
    run_init(&run, &c);
    page = render(h, &run);
    assert_null(strstr(page, "SECRET"));
    assert_non_null(strstr(page, "refused with token tok-"));
    assert_true(strstr(page, "<td class=\"row\">2</td>") <
                strstr(page, "<td class=\"row\">3</td>"));
    assert_int_equal(
        attr_after(page, "<li data-status=\"created\"", "data-count"), 1);
    free(page);
    fclose(fp);
    free(buf);
    cts_html_free(h);
    cts_log_clear_secrets();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaped_and_well_formed),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_capped),
        cmocka_unit_test(test_long_text_cut),
        cmocka_unit_test(test_suggestions),
        cmocka_unit_test(test_stopped_early),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_report_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
