/*
 * cts_htmlreport.h — an import's report as one HTML page for a person:
 * the account and lists, when and how long, the counts as a bar by status,
 * the rows that need someone (invalid, failed, deferred) with their problem
 * and what to do about it, and the opted-out, unsubscribed and removed
 * counts when there are any.
 *
 * The page is gathered while the CSV report is written: the report sink
 * hands every row it writes to cts_html_add (cts_report_set_html), which
 * keeps the rows needing attention up to a cap, each text cut to a bounded
 * length, so memory stays bounded whatever the input's size.  The counts
 * are the report's own counts.  (Reading the finished CSV back instead
 * would fail when the report is standard output or a device, and would
 * have to guess where the report's formula guard — a quote put before a
 * cell starting with '=', '+', '-' or '@' — was added.)
 *
 * The page is self-contained: inline CSS, no script, nothing to fetch (no
 * font, image or link), readable printed.  Every text that comes from the
 * input, the API or the command line (file names, emails, messages, list
 * names) is HTML-escaped, with control and bidirectional-formatting
 * characters shown as \xNN / \uNNNN.  Messages reach the page masked (the
 * sink masks them for the CSV first).
 */
#ifndef CTS_HTMLREPORT_H
#define CTS_HTMLREPORT_H

#include <stddef.h>

#include "cts_contact.h"
#include "cts_report.h"
#include "cts_util.h"

/* Rows needing attention kept for the page; the rest are counted and the
 * page points at the CSV report for them. */
#define CTS_HTML_MAX_ROWS 1000

struct cts_html;

/* A list the run adds contacts to. */
struct cts_html_list {
    const char *id;
    const char *name; /* NULL when the account's lists are not known */
};

/* What the page says about the run (all borrowed). */
struct cts_html_run {
    const char *api;          /* "v2" or "v3" */
    const char *account;      /* NULL: the run ended before the check */
    const char *organization; /* NULL when unknown (v2) */
    const struct cts_html_list *lists;
    size_t nlists;
    char *const *inputs; /* the input files ("-": standard input) */
    size_t ninputs;
    const char *report_path; /* the CSV report; NULL: not written */
    long started;            /* unix seconds */
    double elapsed_s;
    int exit_code;
    int dry_run;
    const struct cts_report_counts *counts;
};

/* A new, empty page that keeps at most max_rows rows needing attention
 * (0: CTS_HTML_MAX_ROWS).  Returns an owned object (aborts when out of
 * memory). */
struct cts_html *cts_html_new(size_t max_rows);

/* Free h and what it keeps; NULL-safe. */
void cts_html_free(struct cts_html *h);

/*
 * Take one written report row (res and its strings borrowed for the call;
 * res->message already masked).  Rows that are invalid, failed or deferred
 * are kept (their text copied, cut at a bounded length on a UTF-8
 * boundary) until max_rows are kept, then only counted.  Other rows are
 * ignored: the counts come from the report.
 */
void cts_html_add(struct cts_html *h, const struct cts_result *res);

/* Rows needing attention given to cts_html_add (kept or not). */
long cts_html_attention(const struct cts_html *h);

/* Append the whole page for run (borrowed) to out.  h may be NULL (no
 * row needing attention is listed then, e.g. a run that ended before its
 * rows). */
void cts_html_render(const struct cts_html *h, const struct cts_html_run *run,
                     struct cts_buf *out);

/*
 * Render the page and write it to path (borrowed) atomically: a
 * temporary file in the same directory, mode 0600 (it holds email
 * addresses), synced, then renamed over path (a symbolic link at path is
 * replaced, never written through).  Returns 0, or a negative code with
 * err filled (exit code 73).
 */
int cts_html_write(const struct cts_html *h, const struct cts_html_run *run,
                   const char *path, struct cts_error *err);

/*
 * The page's default name for a CSV report at report_path (borrowed):
 * its ".csv" replaced by ".html" ("contacts.report.csv" →
 * "contacts.report.html"), ".html" added when it has none.  Returns an
 * owned string.
 */
char *cts_html_default_path(const char *report_path);

#endif /* CTS_HTMLREPORT_H */
