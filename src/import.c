/* import.c — `ctct-sync import`: every check that must pass before the first
 * write, then the pipeline, then the report, summary and exit code (§7). */
#include "cts_pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cts_account.h"
#include "cts_api.h"
#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_refresh.h"
#include "cts_report.h"
#include "cts_state.h"

char *cts_import_default_report(const char *input)
{
    const char *base;

    if (input == NULL || strcmp(input, "-") == 0)
        return cts_xstrdup("stdin.report.csv");
    base = strrchr(input, '/');
    base = base != NULL ? base + 1 : input;
    if (*base == '\0')
        base = "input";
    return cts_xasprintf("%s.report.csv", base);
}

/* Every input must exist and be readable before anything is sent, so a
 * typo in the third file does not leave the first two half imported. */
static int check_inputs(const struct cts_config *cfg, long *expected)
{
    size_t i, nstdin = 0;

    *expected = 0;
    if (cfg->ninputs == 0) {
        cts_log_error("import: no input FILE given (use - for stdin)");
        return CTS_EX_USAGE;
    }
    if (cfg->nlists == 0) {
        cts_log_error("import: at least one --list ID is required");
        return CTS_EX_USAGE;
    }
    for (i = 0; i < cfg->ninputs; i++) {
        const char *name = cfg->inputs[i];
        struct stat sb;
        char buf[65536];
        ssize_t n;
        int fd;

        if (strcmp(name, "-") == 0) {
            if (++nstdin > 1) {
                cts_log_error("import: stdin (-) given more than once");
                return CTS_EX_USAGE;
            }
            continue;
        }
        fd = open(name, O_RDONLY);
        if (fd < 0) {
            cts_log_error("%s: %s", name, strerror(errno));
            return CTS_EX_NOINPUT;
        }
        if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
            cts_log_error("%s: %s", name,
                          S_ISDIR(sb.st_mode) ? "is a directory"
                                              : strerror(errno));
            close(fd);
            return CTS_EX_NOINPUT;
        }
        /* Count lines of regular files: an upper bound of the rows, for
         * the email index size, the quota plan and the progress ETA.
         * Sequential 64 KiB reads: memory stays flat. */
        if (S_ISREG(sb.st_mode)) {
            while ((n = read(fd, buf, sizeof(buf))) > 0) {
                const char *p = buf, *end = buf + n;
                while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                    (*expected)++;
                    p++;
                }
            }
        }
        close(fd);
    }
    return 0;
}

/* v3 --map cf:NAME=HEADER: resolve every NAME to its custom_field_id before
 * the first write (an unknown name is a data error, exit 65). */
static int resolve_custom_fields(struct cts_config *cfg, struct cts_cf_ids *out)
{
    struct cts_http_req req;
    struct cts_error err = {0};
    struct cts_buf known;
    char *url;
    size_t i, nwanted = 0;
    int rc, ex = 0;

    for (i = 0; i < cfg->nmaps; i++)
        if (strncmp(cfg->maps[i].field, "cf:", 3) == 0)
            nwanted++;
    if (nwanted == 0 || cfg->api != CTS_API_V3)
        return 0;
    url =
        cts_api_url(cfg->base_url, "/contact_custom_fields", NULL, "limit=100");
    cts_http_req_init(&req);
    req.method = "GET";
    req.url = url;
    req.bearer = cfg->token;
    rc = cts_http_fetch(&req, NULL, &err);
    if (rc != 0) {
        cts_log_error("cannot read the account's custom fields: %s", err.msg);
        ex = CTS_EX_UNAVAILABLE;
        goto out;
    }
    if (req.status == 401) {
        cts_log_error("the API refused the access token (401) reading the "
                      "custom fields; get a new one with `ctct-sync auth`");
        ex = CTS_EX_NOPERM;
        goto out;
    }
    if (req.status != 200 ||
        cts_api_parse_custom_fields(req.resp.data, req.resp.len, out) != 0) {
        cts_log_error("cannot read the account's custom fields (HTTP %ld)",
                      req.status);
        ex = req.status >= 500 || req.status == 0 ? CTS_EX_UNAVAILABLE
                                                  : CTS_EX_DATAERR;
        goto out;
    }
    cts_buf_init(&known, 4096);
    for (i = 0; i < out->n; i++)
        cts_buf_appendf(&known, "%s%s", i > 0 ? ", " : "", out->v[i].name);
    for (i = 0; i < cfg->nmaps; i++) {
        const char *name = cfg->maps[i].field;
        if (strncmp(name, "cf:", 3) != 0)
            continue;
        if (cts_cf_ids_find(out, name + 3) == NULL) {
            cts_log_error("--map %s=%s: the account has no custom field "
                          "\"%s\" (known: %s)",
                          name, cfg->maps[i].header, name + 3,
                          known.len > 0 ? known.data : "none");
            ex = CTS_EX_DATAERR;
        }
    }
    cts_buf_free(&known);
out:
    cts_http_req_clear(&req);
    free(url);
    return ex;
}

static char *default_state_dir(void)
{
    const char *x = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");

    if (x != NULL && *x == '/')
        return cts_xasprintf("%s/ctct-sync", x);
    return cts_xasprintf("%s/.local/state/ctct-sync",
                         home != NULL ? home : ".");
}

/*
 * The one place where a run's outcome becomes its §7 exit code.  Order:
 * a run error first, then credentials (77), the API gone away mid-run
 * (69), then "try later" (75), then a malformed CSV tail (65), then
 * failed rows (1).
 */
static int exit_code_for(int run_rc, const struct cts_error *run_err,
                         const struct cts_pipeline_outcome *po,
                         const struct cts_report_counts *c)
{
    if (run_rc != 0)
        return run_err->exit_code != 0 ? run_err->exit_code : CTS_EX_SOFTWARE;
    if (po->stop == CTS_STOP_AUTH)
        return CTS_EX_NOPERM;
    if (po->stop == CTS_STOP_UNREACHABLE)
        return CTS_EX_UNAVAILABLE;
    if (po->stop == CTS_STOP_QUOTA || po->stop == CTS_STOP_SIGNAL ||
        c->status[CTS_ST_DEFERRED] > 0)
        return CTS_EX_TEMPFAIL;
    if (po->csv_error)
        return CTS_EX_DATAERR;
    if (c->status[CTS_ST_FAILED] > 0)
        return CTS_EX_FAILED;
    return CTS_EX_OK;
}

int cts_cmd_import(struct cts_config *cfg)
{
    struct cts_error err = {0};
    struct cts_account_info info;
    struct cts_list_set lists;
    struct cts_cf_ids cf;
    struct cts_state_params sp;
    struct cts_state *st = NULL;
    struct cts_report *report = NULL;
    struct cts_report_counts counts;
    struct cts_pipeline_params pp;
    struct cts_pipeline_outcome po;
    char *report_path = NULL, *state_dir = NULL;
    uint64_t t0 = uv_hrtime();
    uint64_t preflight_done_ms = 0;
    double elapsed;
    long expected = 0;
    int ex, rc;
    char line[512];

    memset(&info, 0, sizeof(info));
    memset(&lists, 0, sizeof(lists));
    memset(&cf, 0, sizeof(cf));
    memset(&counts, 0, sizeof(counts));
    memset(&po, 0, sizeof(po));

    ex = check_inputs(cfg, &expected);
    if (ex != 0)
        goto out;

    /* v3: a token that would expire during the run is refreshed now, when
     * nothing is in flight (the planned duration is the row estimate at
     * the configured rate). */
    rc = cts_oauth_ensure_fresh(
        cfg, cfg->rate > 0 ? (long)(expected / cfg->rate) : 0, &err);
    if (rc != 0) {
        cts_log_error("%s", err.msg);
        ex = err.exit_code != 0 ? err.exit_code : CTS_EX_NOPERM;
        goto out;
    }

    /* The seed of the project: prove the token belongs to the key (and the
     * account) before anything is written — in --dry-run too. */
    rc = cts_account_check(cfg, &info, &err);
    if (rc != 0) {
        cts_log_error("%s", err.msg);
        ex = err.exit_code != 0 ? err.exit_code : CTS_EX_NOPERM;
        goto out;
    }

    /* Unknown list ids are found before the first write (exit 65). */
    if (cfg->nlists > 0) {
        rc = cts_account_fetch_lists(cfg, &lists, &err);
        if (rc == 0)
            rc = cts_account_check_lists(cfg, &lists, &err);
        if (rc != 0) {
            cts_log_error("%s", err.msg);
            ex = err.exit_code != 0 ? err.exit_code : CTS_EX_DATAERR;
            goto out;
        }
    }
    ex = resolve_custom_fields(cfg, &cf);
    if (ex != 0)
        goto out;

    preflight_done_ms = uv_hrtime() / 1000000;

    /* The lock: a second run on the same key+account exits 75 at once. */
    state_dir = cfg->state_dir != NULL ? cts_xstrdup(cfg->state_dir)
                                       : default_state_dir();
    memset(&sp, 0, sizeof(sp));
    sp.dir = state_dir;
    sp.api = cfg->api;
    sp.api_key = cfg->api_key;
    sp.account = info.account;
    sp.now = cts_config_now(cfg);
    sp.daily_quota = cfg->daily_quota;
    sp.expected_rows = (size_t)expected;
    sp.dry_run = cfg->dry_run;
    sp.full = cfg->full;
    rc = cts_state_open(&sp, &st, &err);
    if (rc != 0) {
        cts_log_error("%s", err.msg);
        ex = err.exit_code != 0 ? err.exit_code : CTS_EX_CANTCREAT;
        goto out;
    }
    if (expected > 0)
        cts_state_reserve(st, (size_t)expected);
    /* The plan (spec §8): what this run may cost against today's quota.
     * Rows are counted by lines, so this is an upper bound; unchanged rows
     * cost nothing, and bulk costs one request per chunk plus polls. */
    if (!cfg->dry_run && cfg->daily_quota > 0) {
        long rows = expected > (long)cfg->ninputs
                        ? expected - (long)cfg->ninputs
                        : 0;
        long left = cts_state_quota_remaining(st);
        if (left < rows)
            cts_log_warn("plan: up to %ld rows to send, %ld requests left of "
                         "today's quota of %ld; rows beyond it will be "
                         "deferred (exit 75) unless bulk is used",
                         rows, left, cfg->daily_quota);
        else
            cts_log_info("plan: up to %ld rows to send, %ld requests left "
                         "of today's quota of %ld: enough",
                         rows, left, cfg->daily_quota);
    }

    report_path = cfg->report != NULL
                      ? cts_xstrdup(cfg->report)
                      : cts_import_default_report(cfg->inputs[0]);
    report = cts_report_open(report_path, &err);
    if (report == NULL) {
        cts_log_error("%s", err.msg);
        ex = CTS_EX_CANTCREAT;
        goto out;
    }

    memset(&pp, 0, sizeof(pp));
    pp.cfg = cfg;
    pp.report = report;
    pp.state = st;
    pp.cf = cf.n > 0 ? &cf : NULL;
    /* Account check + lists (+ custom fields): requests the server has
     * just counted against this key. */
    pp.preflight = 2 + (cfg->nlists > 0) + (cf.n > 0);
    pp.preflight_done_ms = preflight_done_ms;
    pp.expected_rows =
        expected > (long)cfg->ninputs ? expected - (long)cfg->ninputs : 0;
    memset(&err, 0, sizeof(err));
    rc = cts_pipeline_run(&pp, &po, &err);
    if (rc != 0)
        cts_log_error("%s", err.msg);
    else if (po.stop != CTS_STOP_NONE && po.message[0] != '\0')
        cts_log_error("%s", po.message);

    counts = *cts_report_counts(report);
    ex = exit_code_for(rc, &err, &po, &counts);

    /* Confirmed rows stay confirmed even after an early stop (cts_state). */
    if (cts_state_commit(st, &err) != 0) {
        cts_log_error("cannot save the sync state: %s", err.msg);
        if (ex == CTS_EX_OK || ex == CTS_EX_FAILED)
            ex = CTS_EX_CANTCREAT;
    }

    /* jq's rule: a report that could not be written fully is an error,
     * whatever happened to the rows. */
    memset(&err, 0, sizeof(err));
    rc = cts_report_close(report, &err);
    report = NULL;
    if (rc != 0) {
        cts_log_error("%s: %s", report_path, err.msg);
        ex = err.exit_code != 0 ? err.exit_code : CTS_EX_CANTCREAT;
    }
    counts.requests = po.requests;
    counts.retries = po.retries;
    elapsed = (double)(uv_hrtime() - t0) / 1e9;

    if (cfg->summary != NULL) {
        memset(&err, 0, sizeof(err));
        if (cts_report_write_summary(cfg->summary, &counts,
                                     cfg->api == CTS_API_V2 ? "v2" : "v3",
                                     info.account, elapsed, ex, &err) != 0) {
            cts_log_error("%s", err.msg);
            if (ex == CTS_EX_OK || ex == CTS_EX_FAILED)
                ex = CTS_EX_CANTCREAT;
        }
    }
    /* The closing line.  --quiet means errors only: a run that settled
     * every row (exit 0) prints nothing, so cron mails only on trouble. */
    if (!cfg->quiet || ex != CTS_EX_OK) {
        cts_report_summary_line(&counts, elapsed, line, sizeof(line));
        fprintf(stderr, "ctct-sync: %s%s: %s; report: %s%s%s (exit %d)\n",
                cfg->dry_run ? "dry run " : "", "summary", line, report_path,
                po.encoding != NULL && strcmp(po.encoding, "utf-8") != 0
                    ? "; input read as "
                    : "",
                po.encoding != NULL && strcmp(po.encoding, "utf-8") != 0
                    ? po.encoding
                    : "",
                ex);
    }

out:
    if (report != NULL)
        cts_report_close(report, NULL);
    cts_state_close(st);
    cts_cf_ids_clear(&cf);
    cts_list_set_clear(&lists);
    cts_account_info_clear(&info);
    free(report_path);
    free(state_dir);
    return ex;
}
