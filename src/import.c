/* import.c — `ctct-sync import`: every check that must pass before the first
 * write, then the pipeline, then the report, summary and exit code (the
 * sysexits codes of the README's table). */
#include "cts_pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cts_account.h"
#include "cts_api.h"
#include "cts_fetch.h"
#include "cts_fsio.h"
#include "cts_htmlreport.h"
#include "cts_http.h"
#include "cts_reader.h"
#include "cts_refresh.h"
#include "cts_rejects.h"
#include "cts_report.h"
#include "cts_state.h"

char *cts_import_default_report(const char *input)
{
    const char *base;
    size_t n;

    if (input == NULL || strcmp(input, "-") == 0)
        return cts_xstrdup("stdin.report.csv");
    base = strrchr(input, '/');
    base = base != NULL ? base + 1 : input;
    n = strlen(base);
    /* contacts.csv -> contacts.report.csv */
    if (n > 4 && cts_streq_nocase(base + n - 4, ".csv"))
        n -= 4;
    if (n == 0 || (n == 4 && cts_streq_nocase(base, ".csv")))
        return cts_xstrdup("input.report.csv");
    return cts_xasprintf("%.*s.report.csv", (int)n, base);
}

/* ---- the report and the summary: checked first, written on every exit */

/* Which file a path names, for "is it the same file": the file itself
 * when it exists (through symlinks), else its directory plus its name. */
struct file_id {
    int exists;
    dev_t dev;
    ino_t ino;
    const char *name; /* borrowed: the last component when !exists */
};

static void file_id_of(const char *path, struct file_id *id)
{
    struct stat st;
    char *dir;
    const char *slash = strrchr(path, '/');

    memset(id, 0, sizeof(*id));
    if (stat(path, &st) == 0) {
        id->exists = 1;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        return;
    }
    dir = cts_dirname(path);
    id->name = slash != NULL ? slash + 1 : path;
    if (stat(dir, &st) == 0) {
        id->dev = st.st_dev;
        id->ino = st.st_ino;
    }
    free(dir);
}

static int same_file(const struct file_id *a, const struct file_id *b)
{
    if (a->exists != b->exists || a->dev != b->dev || a->ino != b->ino)
        return 0;
    return a->exists || (a->ino != 0 && strcmp(a->name, b->name) == 0);
}

/*
 * The report or summary must not be an input (opening it for writing
 * would empty the CSV before it is read), nor each other: compared by
 * device and inode, so another spelling, a hard link or a symlink of the
 * same file is caught too.  Nothing has been opened for writing yet.
 * Returns 0 or CTS_EX_USAGE.
 */
static int check_outputs(const struct cts_config *cfg, const char *report)
{
    struct file_id rid, sid, iid;
    size_t i;

    memset(&sid, 0, sizeof(sid));
    file_id_of(report, &rid);
    if (cfg->summary != NULL) {
        file_id_of(cfg->summary, &sid);
        if (same_file(&rid, &sid)) {
            cts_log_error("--summary %s and the report %s are the same file; "
                          "give them different names",
                          cfg->summary, report);
            return CTS_EX_USAGE;
        }
    }
    for (i = 0; i < cfg->ninputs; i++) {
        const char *in = cfg->inputs[i];
        if (strcmp(in, "-") == 0)
            continue;
        file_id_of(in, &iid);
        if (!iid.exists)
            continue; /* missing: check_inputs says so (66) */
        if (same_file(&rid, &iid)) {
            cts_log_error("the report %s is the input file %s; writing it "
                          "would destroy the input — give --report another "
                          "name",
                          report, in);
            return CTS_EX_USAGE;
        }
        if (cfg->summary != NULL && same_file(&sid, &iid)) {
            cts_log_error("--summary %s is the input file %s; writing it "
                          "would destroy the input — give --summary another "
                          "name",
                          cfg->summary, in);
            return CTS_EX_USAGE;
        }
    }
    return 0;
}

/* The rejects file is none of the other files either (it is written
 * after the inputs are read, and reads them again).  A --rejects that is
 * one is refused (CTS_EX_USAGE); the default that is one (importing a
 * fixed NAME.rejects.csv with --report NAME.report.csv) is dropped with a
 * warning, never written over the file being imported.  0 otherwise. */
static int check_rejects(const struct cts_config *cfg, const char *rejects,
                         const char *report)
{
    struct file_id jid, oid;
    const char *other[2];
    size_t i;

    file_id_of(rejects, &jid);
    other[0] = report;
    other[1] = cfg->summary;
    for (i = 0; i < 2 + cfg->ninputs; i++) {
        const char *o = i < 2 ? other[i] : cfg->inputs[i - 2];
        if (o == NULL || strcmp(o, "-") == 0)
            continue;
        file_id_of(o, &oid);
        if (!same_file(&jid, &oid))
            continue;
        if (cfg->rejects == NULL) {
            cts_log_warn("the rejects file %s would be the %s %s: no rejects "
                         "file this run (give --rejects FILE)",
                         rejects, i == 0 ? "report" : "input file", o);
            return 1;
        }
        cts_log_error("the rejects file %s is the %s %s; give --rejects "
                      "another name",
                      rejects,
                      i == 0   ? "report"
                      : i == 1 ? "summary"
                               : "input file",
                      o);
        return CTS_EX_USAGE;
    }
    return 0;
}

/* The run's output files, open from the start (cts_report_file_open, not
 * emptied yet): their writability is known before anything is sent, and
 * whatever ends the run, they are rewritten — a failed run never leaves
 * the previous run's report or summary behind. */
struct outputs {
    char *report_path;  /* owned */
    char *rejects_path; /* owned; NULL: no rejects file (cts_rejects.h) */
    int report_fd;      /* -1 once handed to the sink, or when not open */
    int summary_fd;     /* -1 when there is no --summary (or not open) */
    struct cts_report *report; /* the sink, once the rows may come */
    char *html_path;           /* the HTML page, NULL for none (owned) */
    struct cts_html *html;     /* the page's rows, gathered by the sink */
    int html_written;          /* the page is there (the summary says so) */
};

/* ---- the HTML page: --html FILE, or beside the report on a terminal */

/* Which page to write, if any (owned path or NULL): --html FILE; else,
 * on a terminal run (stderr a terminal, not --quiet: cron gets none),
 * the report's name with .html, when the report is a regular file. */
static char *html_path_for(const struct cts_config *cfg, const char *report)
{
    struct stat st;

    if (cfg->no_html)
        return NULL;
    if (cfg->html != NULL)
        return cts_xstrdup(cfg->html);
    if (cfg->quiet || !isatty(STDERR_FILENO))
        return NULL;
    if (stat(report, &st) == 0 && !S_ISREG(st.st_mode))
        return NULL; /* /dev/stdout, a pipe: no file to stand beside */
    return cts_html_default_path(report);
}

/* The page's directory must take a new file (it is replaced by rename):
 * found before anything is sent, like an unwritable report (73).  The
 * default page is only dropped, with a warning.  0, -1 (dropped) or 73. */
static int check_html_dir(const struct cts_config *cfg, const char *html)
{
    struct stat st;
    char *dir = cts_dirname(html);
    int e = 0;

    if (stat(html, &st) == 0 && S_ISDIR(st.st_mode))
        e = EISDIR;
    else if (access(dir, W_OK | X_OK) != 0)
        e = errno;
    free(dir);
    if (e == 0)
        return 0;
    if (cfg->html == NULL) {
        cts_log_warn("no HTML report: cannot write %s: %s", html, strerror(e));
        return -1;
    }
    cts_log_error("cannot write the HTML report %s: %s", html, strerror(e));
    return CTS_EX_CANTCREAT;
}

/* The page must not be an input, the report or the summary (64). */
static int check_html(const struct cts_config *cfg, const char *report,
                      const char *html)
{
    struct file_id hid, oid;
    size_t i;

    file_id_of(html, &hid);
    file_id_of(report, &oid);
    if (same_file(&hid, &oid)) {
        cts_log_error("--html %s and the report %s are the same file; give "
                      "them different names",
                      html, report);
        return CTS_EX_USAGE;
    }
    if (cfg->summary != NULL) {
        file_id_of(cfg->summary, &oid);
        if (same_file(&hid, &oid)) {
            cts_log_error("--html %s and --summary %s are the same file; "
                          "give them different names",
                          html, cfg->summary);
            return CTS_EX_USAGE;
        }
    }
    for (i = 0; i < cfg->ninputs; i++) {
        if (strcmp(cfg->inputs[i], "-") == 0)
            continue;
        file_id_of(cfg->inputs[i], &oid);
        if (oid.exists && same_file(&hid, &oid)) {
            cts_log_error("--html %s is the input file %s; writing it would "
                          "destroy the input — give --html another name",
                          html, cfg->inputs[i]);
            return CTS_EX_USAGE;
        }
    }
    return 0;
}

/* Write the page (if any) for a run that ended with ex; returns ex, or
 * 73 when an asked-for page (--html) cannot be written and ex was 0/1
 * (the default page only warns).  info and lists may be empty. */
static int outputs_html(const struct cts_config *cfg, struct outputs *o,
                        const struct cts_report_counts *counts,
                        const struct cts_account_info *info,
                        const struct cts_list_set *lists, long started,
                        double elapsed, int ex)
{
    struct cts_error err = {0};
    struct cts_html_run run;
    struct cts_html_list *hl;
    size_t i, j;

    if (o->html_path == NULL)
        return ex;
    hl = cts_xcalloc(cfg->nlists + 1, sizeof(*hl));
    for (i = 0; i < cfg->nlists; i++) {
        hl[i].id = cfg->lists[i];
        for (j = 0; lists != NULL && j < lists->n; j++)
            if (lists->items[j].id != NULL &&
                strcmp(lists->items[j].id, cfg->lists[i]) == 0)
                hl[i].name = lists->items[j].name;
    }
    memset(&run, 0, sizeof(run));
    run.api = cfg->api == CTS_API_V2 ? "v2" : "v3";
    run.account = info != NULL ? info->account : NULL;
    run.organization = info != NULL ? info->organization : NULL;
    run.lists = hl;
    run.nlists = cfg->nlists;
    run.inputs = cfg->inputs;
    run.ninputs = cfg->ninputs;
    run.report_path = o->report_path;
    run.started = started;
    run.elapsed_s = elapsed;
    run.exit_code = ex;
    run.dry_run = cfg->dry_run;
    run.counts = counts;
    if (cts_html_write(o->html, &run, o->html_path, &err) != 0) {
        if (cfg->html != NULL) {
            cts_log_error("%s", err.msg);
            if (ex == CTS_EX_OK || ex == CTS_EX_FAILED)
                ex = CTS_EX_CANTCREAT;
        } else {
            cts_log_warn("%s", err.msg);
        }
    } else {
        o->html_written = 1;
    }
    free(hl);
    return ex;
}

/* The run's report as the summary line names it (owned, made visible):
 * "r.csv", or "r.csv and r.html" when the page was written. */
static char *outputs_shown(const struct outputs *o)
{
    char *r = cts_log_visible(o->report_path), *h, *both;

    if (!o->html_written)
        return r;
    h = cts_log_visible(o->html_path);
    both = cts_xasprintf("%s and %s", r, h);
    free(r);
    free(h);
    return both;
}

/* Open both; 0, CTS_EX_USAGE (same file as an input) or
 * CTS_EX_CANTCREAT (the summary then still gets written if it can). */
static int outputs_open(const struct cts_config *cfg, struct outputs *o)
{
    struct cts_error err = {0};
    int ex;

    o->report_fd = -1;
    o->summary_fd = -1;
    o->report = NULL;
    o->report_path = cfg->report != NULL
                         ? cts_xstrdup(cfg->report)
                         : cts_import_default_report(cfg->inputs[0]);
    ex = check_outputs(cfg, o->report_path);
    if (ex != 0)
        return ex;
    o->rejects_path = cfg->rejects != NULL
                          ? cts_xstrdup(cfg->rejects)
                          : cts_rejects_default_path(o->report_path);
    ex = o->rejects_path != NULL
             ? check_rejects(cfg, o->rejects_path, o->report_path)
             : 0;
    if (ex == CTS_EX_USAGE)
        return ex;
    if (ex != 0) {
        free(o->rejects_path);
        o->rejects_path = NULL;
    }
    o->html_path = html_path_for(cfg, o->report_path);
    if (o->html_path != NULL) {
        ex = check_html(cfg, o->report_path, o->html_path);
        if (ex != 0)
            return ex;
    }
    if (cfg->summary != NULL) {
        o->summary_fd = cts_report_file_open(cfg->summary, "summary", &err);
        if (o->summary_fd < 0) {
            cts_log_error("%s", err.msg);
            return CTS_EX_CANTCREAT;
        }
    }
    o->report_fd = cts_report_file_open(o->report_path, "report", &err);
    if (o->report_fd < 0) {
        cts_log_error("%s", err.msg);
        return CTS_EX_CANTCREAT;
    }
    ex = o->html_path != NULL ? check_html_dir(cfg, o->html_path) : 0;
    if (ex != 0) {
        free(o->html_path);
        o->html_path = NULL;
        return ex > 0 ? ex : 0;
    }
    if (o->html_path != NULL)
        o->html = cts_html_new(0);
    return 0;
}

/* The report sink on the file opened up front (emptied now). */
static struct cts_report *outputs_report(struct outputs *o,
                                         struct cts_error *err)
{
    int fd = o->report_fd;

    o->report_fd = -1;
    if (fd < 0)
        return NULL;
    o->report = cts_report_open_fd(fd, o->report_path, err);
    if (o->report != NULL && o->html != NULL)
        cts_report_set_html(o->report, o->html);
    return o->report;
}

/* A run that ended before its first row: the report says only its header
 * (no row's status is known).  Returns 0 or CTS_EX_CANTCREAT. */
static int outputs_empty_report(struct outputs *o)
{
    struct cts_error err = {0};
    struct cts_report *r;

    if (o->report_fd < 0)
        return 0;
    r = outputs_report(o, &err);
    o->report = NULL;
    if (r == NULL || cts_report_close(r, &err) != 0) {
        cts_log_error("%s", err.msg);
        return CTS_EX_CANTCREAT;
    }
    return 0;
}

static void outputs_close(struct outputs *o)
{
    if (o->report != NULL)
        cts_report_close(o->report, NULL);
    cts_html_free(o->html);
    free(o->html_path);
    if (o->report_fd >= 0)
        close(o->report_fd);
    if (o->summary_fd >= 0)
        close(o->summary_fd);
    free(o->report_path);
    free(o->rejects_path);
    memset(o, 0, sizeof(*o));
}

/* Write the summary (if --summary) with the run's real exit code ex;
 * returns ex, or 73 when the summary cannot be written and ex was 0/1. */
static int outputs_summary(const struct cts_config *cfg, struct outputs *o,
                           const struct cts_report_counts *counts,
                           const char *account, double elapsed, int ex)
{
    struct cts_error err = {0};
    int fd = o->summary_fd;

    o->summary_fd = -1;
    if (fd < 0)
        return ex;
    if (cts_report_write_summary_fd(fd, cfg->summary, counts,
                                    cfg->api == CTS_API_V2 ? "v2" : "v3",
                                    account, elapsed, ex, &err) != 0) {
        cts_log_error("%s", err.msg);
        if (ex == CTS_EX_OK || ex == CTS_EX_FAILED)
            ex = CTS_EX_CANTCREAT;
    }
    return ex;
}

int cts_import_failed(const struct cts_config *cfg, int exit_code)
{
    struct outputs o;
    struct cts_report_counts counts;
    int ex;

    memset(&o, 0, sizeof(o));
    memset(&counts, 0, sizeof(counts));
    if (cfg->ninputs == 0)
        return exit_code;
    ex = outputs_open(cfg, &o);
    if (ex == CTS_EX_USAGE) {
        outputs_close(&o);
        return exit_code;
    }
    outputs_empty_report(&o);
    outputs_html(cfg, &o, &counts, NULL, NULL, cts_config_now(cfg), 0,
                 exit_code);
    outputs_summary(cfg, &o, &counts, NULL, 0, exit_code);
    outputs_close(&o);
    return exit_code;
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
        struct cts_error err = {0};
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
        /* A stream (pipe, FIFO, <(...), terminal) is only read once, by
         * the intake: opening it here could take or lose its data. */
        if (stat(name, &sb) == 0 && !S_ISREG(sb.st_mode) &&
            !S_ISDIR(sb.st_mode)) {
            if (access(name, R_OK) == 0)
                continue;
            cts_log_error("%s: %s", name, strerror(errno));
            return CTS_EX_NOINPUT;
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
            int first = 1;
            while ((n = read(fd, buf, sizeof(buf))) > 0) {
                const char *p = buf, *end = buf + n;
                /* A workbook given for a CSV is refused before anything is
                 * sent, saying how to save it as CSV. */
                if (first &&
                    cts_reader_sniff(name, buf, (size_t)n, 1, &err) != 0) {
                    cts_log_error("%s", err.msg);
                    close(fd);
                    return CTS_EX_DATAERR;
                }
                first = 0;
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

/* Does the header line of a regular input file name a custom field
 * ("cf:NAME", as `ctct-sync export` writes)?  Streams are read once, by
 * the intake: their headers are not looked at here. */
static int header_has_cf(const struct cts_config *cfg)
{
    char buf[8192];
    size_t i, j;
    ssize_t n;
    int fd, yes = 0;

    for (i = 0; i < cfg->ninputs && !yes; i++) {
        struct stat sb;
        if (stat(cfg->inputs[i], &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        fd = open(cfg->inputs[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (j = 0; n > 2 && j + 2 < (size_t)n && buf[j] != '\n'; j++)
            if ((buf[j] == 'c' || buf[j] == 'C') &&
                (buf[j + 1] == 'f' || buf[j + 1] == 'F') && buf[j + 2] == ':')
                yes = 1;
    }
    return yes;
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
    if (cfg->api != CTS_API_V3 || (nwanted == 0 && !header_has_cf(cfg)))
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
    cts_http_req_free(&req);
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
 * The one place where a run's outcome becomes its exit code.  Order:
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
        po->stop == CTS_STOP_LATER || c->status[CTS_ST_DEFERRED] > 0)
        return CTS_EX_TEMPFAIL;
    if (po->csv_error)
        return CTS_EX_DATAERR;
    if (c->status[CTS_ST_FAILED] > 0)
        return CTS_EX_FAILED;
    return CTS_EX_OK;
}

/* A signal caught before the pipeline took over (cts_fetch_catch_signals):
 * the run stops before its first row, exit 75. */
static int interrupted(const char *when)
{
    int sig = cts_fetch_signal();

    if (sig == 0)
        return 0;
    cts_log_error("%s (signal %d) %s; nothing was sent",
                  sig == SIGINT ? "interrupted" : "terminated", sig, when);
    return CTS_EX_TEMPFAIL;
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
    struct cts_rejects *rejects = NULL;
    long nrejects = 0;
    struct cts_report_counts counts;
    struct cts_pipeline_params pp;
    struct cts_pipeline_outcome po;
    struct cts_limiter pre;
    struct outputs outs;
    char *state_dir = NULL, *shown;
    uint64_t t0 = uv_hrtime();
    long started = cts_config_now(cfg);
    uint64_t preflight_done_ms = 0;
    double elapsed;
    long expected = 0;
    int ex, rc, ran = 0;
    char line[512];

    memset(&info, 0, sizeof(info));
    memset(&lists, 0, sizeof(lists));
    memset(&cf, 0, sizeof(cf));
    memset(&counts, 0, sizeof(counts));
    memset(&po, 0, sizeof(po));
    memset(&outs, 0, sizeof(outs));
    memset(&pre, 0, sizeof(pre));
    outs.report_fd = outs.summary_fd = -1;

    if (cfg->ninputs == 0 || cfg->nlists == 0)
        return check_inputs(cfg, &expected); /* 64, says why */
    /* The report and summary first: an input given as --report is refused
     * before any file is opened for writing (64), and an unwritable
     * summary is found before anything is sent (73). */
    ex = outputs_open(cfg, &outs);
    if (ex == CTS_EX_USAGE) {
        outputs_close(&outs);
        return ex;
    }
    if (ex != 0)
        goto finish;

    /* From the first request on, SIGINT/SIGTERM end the run cleanly (75,
     * report and summary written) instead of killing it; the pipeline
     * installs its own handlers when it starts. */
    cts_fetch_catch_signals();
    /* The requests before the pipeline (token refresh, account check,
     * lists, custom fields) are paced by --rate like the run's own, and
     * the engine starts from what they used of the key's window. */
    cts_limiter_init(&pre, cfg->rate, cts_fetch_clock_ms, NULL);
    cts_fetch_set_limiter(&pre);

    ex = check_inputs(cfg, &expected);
    if (ex != 0)
        goto finish;

    /* v3: a token that would expire during the run is refreshed now, when
     * nothing is in flight (the planned duration is the row estimate at
     * the configured rate). */
    rc = cts_oauth_ensure_fresh(
        cfg, cfg->rate > 0 ? (long)(expected / cfg->rate) : 0, &err);
    if (rc != 0) {
        ex = interrupted("while refreshing the token");
        if (ex == 0) {
            cts_log_error("%s", err.msg);
            ex = err.exit_code != 0 ? err.exit_code : CTS_EX_NOPERM;
        }
        goto finish;
    }

    /* The seed of the project: prove the token belongs to the key (and the
     * account) before anything is written — in --dry-run too. */
    rc = cts_account_check(cfg, &info, &err);
    if (rc != 0) {
        ex = interrupted("during the account check");
        if (ex == 0) {
            cts_log_error("%s", err.msg);
            ex = err.exit_code != 0 ? err.exit_code : CTS_EX_NOPERM;
        }
        goto finish;
    }

    /* Unknown list ids are found before the first write (exit 65). */
    if (cfg->nlists > 0) {
        rc = cts_account_fetch_lists(cfg, &lists, &err);
        if (rc == 0)
            rc = cts_account_check_lists(cfg, &lists, &err);
        if (rc != 0) {
            ex = interrupted("while reading the lists");
            if (ex == 0) {
                cts_log_error("%s", err.msg);
                ex = err.exit_code != 0 ? err.exit_code : CTS_EX_DATAERR;
            }
            goto finish;
        }
    }
    ex = resolve_custom_fields(cfg, &cf);
    if (ex == 0)
        ex = interrupted("before the first row");
    else if (cts_fetch_signal() != 0)
        ex = interrupted("while reading the custom fields");
    if (ex != 0)
        goto finish;

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
        /* The run holding the lock may be writing this very report: its
         * file is left alone (the summary still tells this run's end). */
        if (rc == CTS_ELOCKED) {
            close(outs.report_fd);
            outs.report_fd = -1;
            free(outs.html_path);
            outs.html_path = NULL;
        }
        goto finish;
    }
    if (expected > 0)
        cts_state_reserve(st, (size_t)expected);
    /* The plan: what this run may cost against today's quota (and so
     * whether --bulk auto should choose bulk).
     * Rows are counted by lines, so this is an upper bound; unchanged rows
     * cost nothing, and bulk costs one request per chunk plus polls. */
    if (!cfg->dry_run && cfg->daily_quota > 0) {
        long rows =
            expected > (long)cfg->ninputs ? expected - (long)cfg->ninputs : 0;
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

    report = outputs_report(&outs, &err);
    if (report == NULL) {
        cts_log_error("%s", err.msg);
        ex = CTS_EX_CANTCREAT;
        goto finish;
    }

    /* The rows for a person, written after the run from what the report
     * is given (cts_rejects.h). */
    rejects = cts_rejects_new(cfg);
    cts_report_set_rejects(report, rejects);

    memset(&pp, 0, sizeof(pp));
    pp.cfg = cfg;
    pp.report = report;
    pp.rejects = rejects;
    pp.state = st;
    pp.cf = cf.n > 0 ? &cf : NULL;
    /* Every try of the requests above: the server has just counted
     * them against this key. */
    pp.preflight = (int)pre.starts;
    pp.preflight_done_ms = preflight_done_ms;
    pp.expected_rows =
        expected > (long)cfg->ninputs ? expected - (long)cfg->ninputs : 0;
    memset(&err, 0, sizeof(err));
    rc = cts_pipeline_run(&pp, &po, &err);
    ran = 1;
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
    outs.report = NULL;
    if (rc != 0) {
        cts_log_error("%s: %s", outs.report_path, err.msg);
        ex = err.exit_code != 0 ? err.exit_code : CTS_EX_CANTCREAT;
    }
    memset(&err, 0, sizeof(err));
    if (outs.rejects_path != NULL &&
        cts_rejects_write(rejects, outs.rejects_path, &nrejects, &err) != 0) {
        cts_log_error("%s", err.msg);
        if (ex == CTS_EX_OK || ex == CTS_EX_FAILED)
            ex = CTS_EX_CANTCREAT;
    }

finish:
    /* Every way out writes the report (header only when the run ended
     * before its rows: no row's status is known) and the summary with
     * the real exit code. */
    if (!ran && outputs_empty_report(&outs) != 0 &&
        (ex == CTS_EX_OK || ex == CTS_EX_FAILED))
        ex = CTS_EX_CANTCREAT;
    counts.requests = po.requests;
    counts.retries = po.retries;
    counts.throttled = po.throttled;
    elapsed = (double)(uv_hrtime() - t0) / 1e9;
    ex = outputs_html(cfg, &outs, &counts, &info, &lists, started, elapsed, ex);
    ex = outputs_summary(cfg, &outs, &counts, info.account, elapsed, ex);
    /* The closing line.  --quiet means errors only: a run that settled
     * every row (exit 0) prints nothing, so cron mails only on trouble. */
    if (!cfg->quiet || ex != CTS_EX_OK) {
        cts_report_summary_line(&counts, elapsed, line, sizeof(line));
        shown = outputs_shown(&outs);
        if (nrejects > 0) {
            /* The file a person opens next: named with its row count. */
            char *rj = cts_log_visible(outs.rejects_path);
            char *s = cts_xasprintf("%s; rejects: %s (%ld row%s to fix)", shown,
                                    rj, nrejects, nrejects == 1 ? "" : "s");
            free(rj);
            free(shown);
            shown = s;
        }
        fprintf(stderr, "ctct-sync: %s%s: %s; report: %s%s%s (exit %d)\n",
                cfg->dry_run ? "dry run " : "", "summary", line, shown,
                po.encoding != NULL && strcmp(po.encoding, "utf-8") != 0
                    ? "; input read as "
                    : "",
                po.encoding != NULL && strcmp(po.encoding, "utf-8") != 0
                    ? po.encoding
                    : "",
                ex);
        free(shown);
    }

    cts_fetch_set_limiter(NULL);
    cts_limiter_free(&pre);
    outputs_close(&outs);
    cts_rejects_free(rejects);
    cts_state_close(st);
    cts_cf_ids_free(&cf);
    cts_list_set_free(&lists);
    cts_account_info_free(&info);
    free(state_dir);
    return ex;
}
