/* test_mirror.c — the pure parts of `import --mirror`: the guard's
 * arithmetic (--max-removals N|P%, never empty a list), the option's
 * values, a listing member's email and id, the removal bodies (v3, v2),
 * the removals in the journal (what a resumed run finds), the run's input
 * set, and the report's removal lines (no file, no row, not an input row).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_config.h"
#include "cts_mirror.h"
#include "cts_report.h"
#include "cts_state.h"
#include "testutil.h"

#define L1 "8c2b2d3e-0001-4000-8000-000000000001"

/* ---- the guard ---- */

static int refused(enum cts_cap_kind kind, double v, size_t members,
                   size_t removals)
{
    struct cts_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_removals_kind = kind;
    cfg.max_removals = v;
    return cts_mirror_refused(&cfg, members, removals, NULL);
}

static void test_guard_default(void **state)
{
    struct cts_config cfg;
    double lim = -1;

    (void)state;
    /* 10% of each list by default */
    assert_int_equal(refused(CTS_CAP_DEFAULT, 0, 100, 10), 0);
    assert_int_equal(refused(CTS_CAP_DEFAULT, 0, 100, 11), 1);
    assert_int_equal(refused(CTS_CAP_DEFAULT, 0, 10, 1), 0);
    assert_int_equal(refused(CTS_CAP_DEFAULT, 0, 10, 2), 1);
    /* a small list: 10% of 5 is half a member */
    assert_int_equal(refused(CTS_CAP_DEFAULT, 0, 5, 1), 1);
    /* nothing to remove is never refused */
    assert_int_equal(refused(CTS_CAP_DEFAULT, 0, 0, 0), 0);
    assert_int_equal(refused(CTS_CAP_COUNT, 0, 7, 0), 0);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(cts_mirror_refused(&cfg, 10000, 100, &lim), 0);
    assert_true(lim > 999.9 && lim < 1000.1);
}

static void test_guard_caps(void **state)
{
    (void)state;
    assert_int_equal(refused(CTS_CAP_COUNT, 3, 100, 3), 0);
    assert_int_equal(refused(CTS_CAP_COUNT, 3, 100, 4), 1);
    assert_int_equal(refused(CTS_CAP_COUNT, 0, 100, 1), 1);
    assert_int_equal(refused(CTS_CAP_PERCENT, 50, 10, 5), 0);
    assert_int_equal(refused(CTS_CAP_PERCENT, 50, 10, 6), 1);
    assert_int_equal(refused(CTS_CAP_PERCENT, 12.5, 8, 1), 0);
    /* whatever the cap, a list is never emptied (an empty or truncated
     * input) */
    assert_int_equal(refused(CTS_CAP_PERCENT, 100, 5, 4), 0);
    assert_int_equal(refused(CTS_CAP_PERCENT, 100, 5, 5), 1);
    assert_int_equal(refused(CTS_CAP_COUNT, 1000, 1, 1), 1);
}

/* ---- the options ---- */

static int load(struct cts_config *cfg, struct cts_error *err, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    const char *a;

    /* The token from the environment: on argv it draws a warning. */
    setenv("CTCT_ACCESS_TOKEN", "tok-aaaaaaaaaaaaaaaaaaaa-zz99", 1);
    argv[argc++] = "import";
    argv[argc++] = "--list";
    argv[argc++] = "1";
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 30)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc++] = "in.csv";
    argv[argc] = NULL;
    memset(err, 0, sizeof(*err));
    return cts_config_load(cfg, CTS_CMD_IMPORT, argc, argv, err);
}

static void test_options(void **state)
{
    static const char *const bad[] = {"abc",  "-1",  "101%", "%",
                                      "10%%", "5.5", "1e3x", "ten%"};
    struct cts_config cfg;
    struct cts_error err;
    size_t i;

    (void)state;
    assert_int_equal(load(&cfg, &err, NULL), 0);
    assert_int_equal(cfg.mirror, 0);
    assert_int_equal(cfg.max_removals_kind, CTS_CAP_DEFAULT);
    cts_config_free(&cfg);

    assert_int_equal(load(&cfg, &err, "--mirror", "--max-removals", "25", NULL),
                     0);
    assert_int_equal(cfg.mirror, 1);
    assert_int_equal(cfg.max_removals_kind, CTS_CAP_COUNT);
    assert_true(cfg.max_removals == 25.0);
    cts_config_free(&cfg);

    assert_int_equal(load(&cfg, &err, "--max-removals", "12.5%", NULL), 0);
    assert_int_equal(cfg.max_removals_kind, CTS_CAP_PERCENT);
    assert_true(cfg.max_removals == 12.5);
    cts_config_free(&cfg);

    assert_int_equal(load(&cfg, &err, "--max-removals", "0", NULL), 0);
    assert_int_equal(cfg.max_removals_kind, CTS_CAP_COUNT);
    assert_true(cfg.max_removals == 0.0);
    cts_config_free(&cfg);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(load(&cfg, &err, "--max-removals", bad[i], NULL),
                             0);
        assert_int_equal(err.exit_code, 64);
        assert_non_null(strstr(err.msg, "--max-removals"));
        cts_config_free(&cfg);
    }
}

/* ---- a listing member ---- */

static void member(enum cts_api api, const char *js, int want_rc,
                   const char *want_email, const char *want_id)
{
    json_t *j = json_loads(js, 0, NULL);
    char *email = NULL, *id = NULL;

    assert_non_null(j);
    assert_int_equal(cts_mirror_member(api, j, &email, &id), want_rc);
    if (want_email == NULL)
        assert_null(email);
    else
        assert_string_equal(email, want_email);
    if (want_id == NULL)
        assert_null(id);
    else
        assert_string_equal(id, want_id);
    free(email);
    free(id);
    json_decref(j);
}

static void test_member(void **state)
{
    (void)state;
    member(CTS_API_V3,
           "{\"contact_id\":\"c-1\",\"email_address\":{\"address\":"
           "\" Ann@Example.COM \",\"permission_to_send\":\"implicit\"}}",
           0, "ann@example.com", "c-1");
    member(CTS_API_V2,
           "{\"id\":\"1001\",\"status\":\"ACTIVE\",\"email_addresses\":"
           "[{\"email_address\":\"Bob@Example.com\"}]}",
           0, "bob@example.com", "1001");
    member(CTS_API_V2,
           "{\"id\":1002,\"email_addresses\":[{\"email_address\":"
           "\"c@example.com\"}]}",
           0, "c@example.com", "1002");
    /* no email (an SMS-only contact), or not an address: left alone */
    member(CTS_API_V3, "{\"contact_id\":\"c-2\"}", CTS_EDATA, NULL, NULL);
    member(CTS_API_V3,
           "{\"contact_id\":\"c-3\",\"email_address\":{\"address\":\"x\"}}",
           CTS_EDATA, NULL, NULL);
    member(CTS_API_V2, "{\"id\":\"9\",\"email_addresses\":[]}", CTS_EDATA, NULL,
           NULL);
}

/* ---- the removal bodies ---- */

static void body_is(enum cts_api api, char *const *items, size_t n,
                    const char *want)
{
    char *s = cts_mirror_removal_body(api, L1, items, n);
    json_t *got = json_loads(s, 0, NULL), *exp = json_loads(want, 0, NULL);

    assert_non_null(got);
    assert_non_null(exp);
    if (!json_equal(got, exp))
        fail_msg("body %s, expected %s", s, want);
    json_decref(got);
    json_decref(exp);
    free(s);
}

static void test_bodies(void **state)
{
    char *ids[] = {"c-1", "c-2"};
    char *emails[] = {"a@example.com", "b@example.com"};

    (void)state;
    body_is(CTS_API_V3, ids, 2,
            "{\"source\":{\"contact_ids\":[\"c-1\",\"c-2\"]},"
            "\"list_ids\":[\"" L1 "\"]}");
    body_is(CTS_API_V2, emails, 2,
            "{\"import_data\":[{\"email_addresses\":[\"a@example.com\"]},"
            "{\"email_addresses\":[\"b@example.com\"]}],"
            "\"lists\":[\"" L1 "\"],\"column_names\":[\"EMAIL\"]}");
}

/* ---- the journal and the input set ---- */

struct fx {
    char dir[64];
    struct cts_state_params p;
};

static int setup(void **state)
{
    struct fx *f = cts_xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/cts-mirror-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->p.dir = f->dir;
    f->p.api = CTS_API_V3;
    f->p.api_key = "demo-v3-client-00000000000001";
    f->p.account = "a07e1demo0001";
    f->p.now = 1767225600L;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static struct cts_state *must_open(const struct cts_state_params *p)
{
    struct cts_state *st = NULL;
    struct cts_error err = {0};

    assert_int_equal(cts_state_open(p, &st, &err), 0);
    return st;
}

static void test_journal(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    struct cts_state_removal r;
    struct cts_error err = {0};
    uint32_t s1, s2;

    s1 = cts_state_mirror_serial(st);
    assert_int_equal(cts_state_mirror_begin(st, s1, L1, "a@example.com", "c-1"),
                     0);
    assert_int_equal(cts_state_mirror_begin(st, s1, L1, "b@example.com", NULL),
                     0);
    assert_int_equal(cts_state_mirror_started(st, s1, "act-1"), 0);
    s2 = cts_state_mirror_serial(st);
    assert_true(s2 != s1 && s1 != 0);
    assert_int_equal(cts_state_mirror_begin(st, s2, "2", "c@example.com", "9"),
                     0);
    assert_int_equal(cts_state_mirror_ended(st, s1, CTS_ST_REMOVED), 0);
    cts_state_close(st); /* killed: no commit */

    st = must_open(&f->p);
    assert_int_equal(cts_state_mirror_count(st), 3);
    cts_state_mirror_get(st, 0, &r);
    assert_string_equal(r.list_id, L1);
    assert_string_equal(r.email, "a@example.com");
    assert_string_equal(r.contact_id, "c-1");
    assert_string_equal(r.activity_id, "act-1");
    assert_true(r.key == cts_state_email_key("a@example.com"));
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.status, CTS_ST_REMOVED);
    cts_state_mirror_get(st, 1, &r);
    assert_string_equal(r.email, "b@example.com");
    assert_null(r.contact_id);
    assert_int_equal(r.ended, 1);
    cts_state_mirror_get(st, 2, &r);
    assert_string_equal(r.list_id, "2");
    assert_null(r.activity_id); /* never accepted */
    assert_int_equal(r.ended, 0);
    /* a new removal never reuses a journalled serial */
    assert_true(cts_state_mirror_serial(st) > s2);
    /* a run that ends commits: the next one finds nothing */
    assert_int_equal(cts_state_commit(st, &err), 0);
    cts_state_close(st);
    st = must_open(&f->p);
    assert_int_equal(cts_state_mirror_count(st), 0);
    cts_state_close(st);
}

static void test_in_run(void **state)
{
    struct fx *f = *state;
    struct cts_state *st = must_open(&f->p);
    struct cts_error err = {0};
    uint64_t a = cts_state_email_key("a@example.com");
    uint64_t b = cts_state_email_key("b@example.com");

    assert_int_equal(cts_state_seen_key(st, a, 1, NULL), 0);
    assert_int_equal(cts_state_journal_done_key(st, a, 1, 7, CTS_ST_CREATED, 0,
                                                201, NULL, NULL),
                     0);
    assert_int_equal(cts_state_in_run(st, a), 1);
    assert_int_equal(cts_state_in_run(st, b), 0);
    assert_int_equal(cts_state_commit(st, &err), 0);
    cts_state_close(st);
    /* known from an earlier run is not "in this run's input" */
    st = must_open(&f->p);
    assert_int_equal(cts_state_in_run(st, a), 0);
    cts_state_close(st);
}

/* ---- the report ---- */

static void test_report_lines(void **state)
{
    struct cts_error err = {0};
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    struct cts_report *r;
    struct cts_result res;
    const struct cts_report_counts *c;

    (void)state;
    assert_non_null(fp);
    r = cts_report_open_stream(fp, &err);
    assert_non_null(r);
    memset(&res, 0, sizeof(res));
    res.file = "in.csv";
    res.row = 1;
    res.email = "a@example.com";
    res.status = CTS_ST_CREATED;
    res.http_status = 201;
    res.attempts = 1;
    assert_int_equal(cts_report_put(r, 0, &res), 0);
    memset(&res, 0, sizeof(res));
    res.email = "gone@example.com";
    res.status = CTS_ST_REMOVED;
    res.http_status = 201;
    res.attempts = 1;
    res.contact_id = "c-9";
    res.message = "removed from list " L1;
    assert_int_equal(cts_report_put(r, 1, &res), 0);
    c = cts_report_counts(r);
    assert_int_equal(c->input_rows, 1);
    assert_int_equal(c->status[CTS_ST_REMOVED], 1);
    assert_int_equal(cts_report_close(r, &err), 0);
    fclose(fp);
    assert_non_null(strstr(buf, "\r\n,,gone@example.com,removed,201,1,c-9,,"
                                "removed from list " L1 "\r\n"));
    free(buf);
}

static void test_dup_message(void **state)
{
    char *inputs[] = {"a.csv", "b.csv"};
    uint64_t file_seq[] = {0, 10};
    char buf[128];

    (void)state;
    assert_string_equal(
        cts_report_dup_message(inputs, file_seq, 0, 4, buf, sizeof(buf)),
        "same email as row 5");
    assert_string_equal(
        cts_report_dup_message(inputs, file_seq, 1, 12, buf, sizeof(buf)),
        "same email as row 3");
    assert_string_equal(
        cts_report_dup_message(inputs, file_seq, 1, 3, buf, sizeof(buf)),
        "same email as a.csv row 4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_default),
        cmocka_unit_test(test_guard_caps),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_member),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_run, setup, teardown),
        cmocka_unit_test(test_report_lines),
        cmocka_unit_test(test_dup_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
