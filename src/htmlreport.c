/* htmlreport.c — the import's report as one self-contained HTML page. */
#include "cts_htmlreport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cts_fsio.h"

/* Bytes kept of each text of a row needing attention: enough for any real
 * address and the API's longest messages; an invalid cell can be 64 KiB. */
#define KEEP_FILE  240
#define KEEP_EMAIL 320
#define KEEP_KEY   120
#define KEEP_MSG   800

/* A row needing attention, as kept for the page (owned copies). */
struct arow {
    char *file;
    long row;
    enum cts_status status;
    int http_status;
    char *email;
    char *error_key;
    char *message;
};

struct cts_html {
    struct arow *rows;
    size_t n, cap, max;
    long attention; /* rows needing attention seen, kept or not */
};

/* ---- gathering ---- */

struct cts_html *cts_html_new(size_t max_rows)
{
    struct cts_html *h = cts_xcalloc(1, sizeof(*h));

    h->max = max_rows > 0 ? max_rows : CTS_HTML_MAX_ROWS;
    return h;
}

void cts_html_free(struct cts_html *h)
{
    size_t i;

    if (h == NULL)
        return;
    for (i = 0; i < h->n; i++) {
        free(h->rows[i].file);
        free(h->rows[i].email);
        free(h->rows[i].error_key);
        free(h->rows[i].message);
    }
    free(h->rows);
    free(h);
}

/* An owned copy of s cut to at most max bytes on a UTF-8 boundary, with
 * "…" when cut; NULL for NULL or "". */
static char *keep(const char *s, size_t max)
{
    size_t n;

    if (s == NULL || *s == '\0')
        return NULL;
    n = strlen(s);
    if (n <= max)
        return cts_xstrdup(s);
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return cts_xasprintf("%.*s\xe2\x80\xa6", (int)n, s);
}

static int needs_attention(enum cts_status st)
{
    return st == CTS_ST_INVALID || st == CTS_ST_FAILED || st == CTS_ST_DEFERRED;
}

void cts_html_add(struct cts_html *h, const struct cts_result *res)
{
    struct arow *a;

    if (!needs_attention(res->status))
        return;
    h->attention++;
    if (h->n >= h->max)
        return;
    if (h->n == h->cap) {
        h->cap = h->cap > 0 ? h->cap * 2 : 16;
        if (h->cap > h->max)
            h->cap = h->max;
        h->rows = cts_xrealloc(h->rows, h->cap * sizeof(*h->rows));
    }
    a = &h->rows[h->n++];
    a->file = keep(res->file, KEEP_FILE);
    a->row = res->row;
    a->status = res->status;
    a->http_status = res->http_status;
    a->email = keep(res->email, KEEP_EMAIL);
    a->error_key = keep(res->error_key, KEEP_KEY);
    a->message = keep(res->message, KEEP_MSG);
}

long cts_html_attention(const struct cts_html *h)
{
    return h != NULL ? h->attention : 0;
}

/* ---- writing HTML ---- */

/* Text from outside, made visible (controls and bidi formatting escaped,
 * as on the terminal) and then HTML-escaped, for element text and quoted
 * attribute values alike. */
static void put_text(struct cts_buf *out, const char *s)
{
    struct cts_buf v;
    size_t i, from = 0;

    if (s == NULL || *s == '\0')
        return;
    cts_buf_init(&v, 0);
    cts_buf_append_visible(&v, s, strlen(s), 0);
    for (i = 0; i < v.len; i++) {
        const char *rep;
        switch (v.data[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        cts_buf_append(out, v.data + from, i - from);
        cts_buf_append(out, rep, strlen(rep));
        from = i + 1;
    }
    cts_buf_append(out, v.data + from, v.len - from);
    cts_buf_free(&v);
}

/* Our own markup (never text from outside). */
static void put(struct cts_buf *out, const char *s)
{
    cts_buf_append(out, s, strlen(s));
}

/* 1234567 → "1,234,567" into buf (at least 32 bytes). */
static const char *fmt_count(long v, char *buf, size_t len)
{
    char digits[24];
    size_t n, i, o = 0;

    snprintf(digits, sizeof(digits), "%ld", v < 0 ? -v : v);
    n = strlen(digits);
    if (v < 0 && o + 1 < len)
        buf[o++] = '-';
    for (i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static void put_count(struct cts_buf *out, long v)
{
    char buf[32];

    put(out, fmt_count(v, buf, sizeof(buf)));
}

/* "N row" / "N rows". */
static void put_rows(struct cts_buf *out, long v, const char *one,
                     const char *many)
{
    put_count(out, v);
    cts_buf_putc(out, ' ');
    put(out, v == 1 ? one : many);
}

static void put_duration(struct cts_buf *out, double s)
{
    long whole = (long)(s + 0.5);

    if (s < 60.0)
        cts_buf_appendf(out, "%.1f s", s);
    else if (whole < 3600)
        cts_buf_appendf(out, "%ld min %ld s", whole / 60, whole % 60);
    else
        cts_buf_appendf(out, "%ld h %ld min", whole / 3600,
                        (whole % 3600) / 60);
}

/* The start in UTC and in the machine's local time. */
static void put_started(struct cts_buf *out, long started)
{
    time_t t = (time_t)started;
    struct tm tm;
    char utc[64] = "?", local[80] = "?";

    if (gmtime_r(&t, &tm) != NULL)
        strftime(utc, sizeof(utc), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (localtime_r(&t, &tm) != NULL)
        strftime(local, sizeof(local), "%Y-%m-%d %H:%M:%S %Z", &tm);
    put_text(out, utc);
    if (strcmp(utc, local) != 0) {
        put(out, " <span class=\"muted\">(");
        put_text(out, local);
        put(out, " local time)</span>");
    }
}

static const char *exit_meaning(int ex)
{
    switch (ex) {
    case 0: return "every row settled";
    case 1: return "some rows failed";
    case 64: return "usage error";
    case 65: return "data error";
    case 66: return "input file missing";
    case 69: return "Constant Contact unreachable";
    case 70: return "internal error";
    case 73: return "an output file could not be written";
    case 75: return "try again later";
    case 77: return "credentials refused";
    case 78: return "configuration error";
    default: return "see the message on the terminal";
    }
}

/* What a status means, for the legend's tooltips. */
static const char *status_gloss(enum cts_status st)
{
    switch (st) {
    case CTS_ST_CREATED: return "new contacts added";
    case CTS_ST_UPDATED: return "existing contacts updated";
    case CTS_ST_IMPORTED: return "sent in a bulk import";
    case CTS_ST_UNCHANGED: return "same as the last run: nothing sent";
    case CTS_ST_EXISTS: return "already in the account (--mode create)";
    case CTS_ST_INVALID: return "not sent: the row needs fixing";
    case CTS_ST_DUPLICATE: return "same email as an earlier row";
    case CTS_ST_FAILED: return "Constant Contact did not accept the row";
    case CTS_ST_DEFERRED: return "not sent yet: run again later";
    case CTS_ST_DRY_RUN: return "would be sent (dry run)";
    case CTS_ST_OPTED_OUT: return "unsubscribed in the account: left alone";
    case CTS_ST_UNSUBSCRIBED: return "unsubscribed as the file asked";
    case CTS_ST_REMOVED: return "taken off a mirrored list";
    default: return "";
    }
}

/* Plain words for what to do about a row needing attention. */
static const char *suggestion(const struct arow *a)
{
    const char *m = a->message != NULL ? a->message : "";

    if (a->status == CTS_ST_DEFERRED)
        return "Nothing was sent for this row yet: run the same command "
               "again later (rows already done are not sent twice).";
    if (a->status == CTS_ST_INVALID) {
        if (strstr(m, "did you mean") != NULL)
            return "Probably a typo in the address: fix it in the file and "
                   "re-import (or re-import with --accept-typos if the "
                   "address is right as it is).";
        if (strncmp(m, "email", 5) == 0 || m[0] == '\0')
            return "Fix the address in the file and re-import.";
        return "Fix this value in the file and re-import.";
    }
    if (a->http_status == 401 || a->http_status == 403)
        return "The credentials were refused: run 'ctct-sync check', then "
               "the same command again.";
    if (a->http_status == 429)
        return "Constant Contact asked to slow down: run the same command "
               "again later.";
    if (a->http_status == 0 || a->http_status >= 500)
        return "A server or network error outlasted the retries: run the "
               "same command again later.";
    if (a->http_status == 404)
        return "Constant Contact did not find what this row refers to (a "
               "list or contact removed meanwhile?): check, then re-import.";
    return "Constant Contact refused the row as it is: correct what its "
           "message names in the file, then re-import.";
}

static const char style[] =
    "*{box-sizing:border-box}"
    "html{color-scheme:light}"
    "body{margin:0;background:#f3f4f6;color:#1f2328;"
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica "
    "Neue',Arial,sans-serif}"
    "main{max-width:1120px;margin:0 auto;padding:28px 36px 36px;"
    "background:#fff;min-height:100vh}"
    "h1{font-size:24px;margin:0 0 2px}"
    "h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid #d8dee4}"
    ".sub{color:#57606a;margin:0}"
    ".muted{color:#57606a}"
    ".verdict{margin:16px 0 18px;padding:10px 14px;border-radius:6px;"
    "border-left:6px solid}"
    ".v-ok{background:#e9f7ef;border-color:#1a7f37}"
    ".v-warn{background:#fff8e5;border-color:#bf8700}"
    ".v-bad{background:#ffebe9;border-color:#cf222e}"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;"
    "gap:4px 20px;margin:0}"
    "dl.facts dt{color:#57606a}"
    "dl.facts dd{margin:0;overflow-wrap:anywhere}"
    ".bar{display:flex;height:30px;border-radius:5px;overflow:hidden;"
    "border:1px solid #d0d7de;background:#eaeef2}"
    ".bar span{display:block;min-width:4px;flex-basis:0;flex-shrink:1}"
    ".bar span+span{border-left:1px solid #fff}"
    ".legend{list-style:none;padding:0;margin:12px 0 0;display:flex;"
    "flex-wrap:wrap;gap:8px 26px}"
    ".legend li{display:flex;align-items:center;gap:7px}"
    ".sw{display:inline-block;width:13px;height:13px;border-radius:3px}"
    ".n{font-weight:600;font-variant-numeric:tabular-nums}"
    "table{border-collapse:collapse;width:100%;font-size:13.5px}"
    "th,td{text-align:left;vertical-align:top;padding:6px 8px;"
    "border-bottom:1px solid #d8dee4}"
    "th{background:#f6f8fa;font-weight:600}"
    "td.row{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    "td.file,td.email,td.problem{overflow-wrap:anywhere}"
    "td.file{min-width:7em}"
    "td.email{min-width:15em;font-family:ui-monospace,SFMono-Regular,Menlo,"
    "Consolas,monospace;font-size:12.5px}"
    ".st{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;"
    "font-size:12px;white-space:nowrap}"
    ".more{margin-top:10px;color:#57606a}"
    "ul.notes{padding-left:20px}"
    "footer{margin-top:32px;color:#6e7781;font-size:12.5px}"
    ".s-created{background:#2da44e}"
    ".s-updated{background:#218bff}"
    ".s-imported{background:#116329}"
    ".s-unchanged{background:#8c959f}"
    ".s-exists{background:#afb8c1}"
    ".s-invalid{background:#e16f24}"
    ".s-duplicate{background:#d4a72c}"
    ".s-failed{background:#cf222e}"
    ".s-deferred{background:#8250df}"
    ".s-dry-run{background:#54aeff}"
    ".s-opted-out{background:#57606a}"
    ".s-unsubscribed{background:#24292f}"
    ".s-removed{background:#0a3069}"
    "@media print{"
    "*{-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    "body{background:#fff;font-size:10.5pt}"
    "main{max-width:none;padding:0;min-height:0}"
    "h2{break-after:avoid}"
    "tr{break-inside:avoid}"
    "thead{display:table-header-group}"
    "}";

/* The one-sentence verdict at the top and its colour. */
static void put_verdict(struct cts_buf *out, const struct cts_html_run *run)
{
    const long *st = run->counts->status;
    long fix = st[CTS_ST_INVALID];

    if (run->dry_run && run->exit_code == 0) {
        put(out, "<p class=\"verdict v-ok\"><strong>Dry run: nothing was "
                 "sent.</strong> The counts say what each row would get.");
    } else if (run->exit_code == 0) {
        put(out, "<p class=\"verdict v-ok\"><strong>Every row settled.");
        put(out, "</strong>");
    } else if (run->exit_code == 1) {
        put(out, "<p class=\"verdict v-bad\"><strong>");
        put_rows(out, st[CTS_ST_FAILED], "row", "rows");
        put(out, st[CTS_ST_FAILED] == 1
                     ? " failed</strong>: Constant Contact did not accept "
                       "it (below)."
                     : " failed</strong>: Constant Contact did not accept "
                       "them (below).");
        put(out, " Every other row settled.");
    } else if (run->exit_code == 75) {
        put(out, "<p class=\"verdict v-warn\"><strong>Not finished");
        if (st[CTS_ST_DEFERRED] > 0) {
            put(out, ": ");
            put_rows(out, st[CTS_ST_DEFERRED], "row was", "rows were");
            put(out, " deferred");
        }
        put(out, ".</strong> Run the same command again later; rows "
                 "already done are not sent twice.");
    } else {
        cts_buf_appendf(out,
                        "<p class=\"verdict v-bad\"><strong>The run stopped "
                        "(exit %d: %s).</strong> The message on the "
                        "terminal says why.",
                        run->exit_code, exit_meaning(run->exit_code));
    }
    if (fix > 0) {
        put(out, " ");
        put_rows(out, fix, "row needs", "rows need");
        put(out, " fixing in the file (below).");
    }
    put(out, "</p>\n");
}

static void put_facts(struct cts_buf *out, const struct cts_html_run *run)
{
    size_t i;

    put(out, "<dl class=\"facts\">\n<dt>Account</dt><dd>");
    if (run->account == NULL) {
        put(out, "<span class=\"muted\">not checked (the run stopped "
                 "before the account check)</span>");
    } else if (run->organization != NULL) {
        put_text(out, run->organization);
        put(out, " <span class=\"muted\">(");
        put_text(out, run->account);
        put(out, ")</span>");
    } else {
        put_text(out, run->account);
    }
    cts_buf_appendf(out, " <span class=\"muted\">· API %s</span></dd>\n",
                    run->api != NULL && strcmp(run->api, "v2") == 0 ? "v2"
                                                                    : "v3");
    put(out, run->nlists == 1 ? "<dt>List</dt><dd>" : "<dt>Lists</dt><dd>");
    for (i = 0; i < run->nlists; i++) {
        const struct cts_html_list *l = &run->lists[i];
        if (i > 0)
            put(out, ", ");
        if (l->name != NULL) {
            put_text(out, l->name);
            put(out, " <span class=\"muted\">(");
            put_text(out, l->id);
            put(out, ")</span>");
        } else {
            put_text(out, l->id);
        }
    }
    put(out, "</dd>\n");
    put(out, run->ninputs == 1 ? "<dt>Input</dt><dd>" : "<dt>Inputs</dt><dd>");
    for (i = 0; i < run->ninputs; i++) {
        if (i > 0)
            put(out, ", ");
        if (strcmp(run->inputs[i], "-") == 0)
            put(out, "standard input");
        else
            put_text(out, run->inputs[i]);
    }
    put(out, "</dd>\n<dt>Started</dt><dd>");
    put_started(out, run->started);
    put(out, "</dd>\n<dt>Took</dt><dd>");
    put_duration(out, run->elapsed_s);
    put(out, " <span class=\"muted\">· ");
    put_rows(out, run->counts->requests, "request", "requests");
    put(out, ", ");
    put_rows(out, run->counts->retries, "retry", "retries");
    put(out, "</span></dd>\n");
    cts_buf_appendf(out, "<dt>Exit status</dt><dd>%d · %s</dd>\n",
                    run->exit_code, exit_meaning(run->exit_code));
    if (run->report_path != NULL) {
        put(out, "<dt>CSV report</dt><dd>");
        put_text(out, run->report_path);
        put(out, " <span class=\"muted\">(every row, for a spreadsheet)"
                 "</span></dd>\n");
    }
    put(out, "</dl>\n");
}

/* The bar and its legend: one segment per non-zero status, as wide as
 * its share (flex-grow = the count, so the shares need no rounding). */
static void put_counts(struct cts_buf *out, const struct cts_html_run *run)
{
    const struct cts_report_counts *c = run->counts;
    long total = 0;
    int s;

    for (s = 0; s < CTS_ST__COUNT; s++)
        total += c->status[s];
    cts_buf_appendf(out, "<section id=\"counts\" data-input-rows=\"%ld\">\n",
                    c->input_rows);
    put(out, "<h2>Results: ");
    put_rows(out, c->input_rows, "row", "rows");
    put(out, "</h2>\n");
    if (total == 0) {
        put(out, "<p class=\"muted\">No row was reported.</p>\n"
                 "</section>\n");
        return;
    }
    put(out, "<div class=\"bar\" role=\"img\" aria-label=\"rows by "
             "status\">");
    for (s = 0; s < CTS_ST__COUNT; s++) {
        const char *name = cts_status_name((enum cts_status)s);
        if (c->status[s] == 0)
            continue;
        cts_buf_appendf(out,
                        "<span class=\"s-%s\" style=\"flex-grow:%ld\" "
                        "title=\"%s: %ld\"></span>",
                        name, c->status[s], name, c->status[s]);
    }
    put(out, "</div>\n<ul class=\"legend\">\n");
    for (s = 0; s < CTS_ST__COUNT; s++) {
        const char *name = cts_status_name((enum cts_status)s);
        double pct;
        if (c->status[s] == 0)
            continue;
        pct = 100.0 * (double)c->status[s] / (double)total;
        cts_buf_appendf(out,
                        "<li data-status=\"%s\" data-count=\"%ld\" "
                        "title=\"%s\"><span class=\"sw s-%s\"></span>%s "
                        "<span class=\"n\">",
                        name, c->status[s], status_gloss((enum cts_status)s),
                        name, name);
        put_count(out, c->status[s]);
        if (pct < 0.1)
            put(out, "</span> <span class=\"muted\">(&lt;0.1%)</span></li>\n");
        else
            cts_buf_appendf(out,
                            "</span> <span class=\"muted\">(%.*f%%)</span>"
                            "</li>\n",
                            pct < 10.0 && pct != (long)pct ? 1 : 0, pct);
    }
    put(out, "</ul>\n</section>\n");
}

static void put_attention(struct cts_buf *out, const struct cts_html *h,
                          const struct cts_html_run *run)
{
    const long *st = run->counts->status;
    long total = st[CTS_ST_INVALID] + st[CTS_ST_FAILED] + st[CTS_ST_DEFERRED];
    long shown = h != NULL ? (long)h->n : 0;
    size_t i;

    put(out, "<section id=\"attention\">\n<h2>Rows needing attention");
    if (total > 0) {
        put(out, " (");
        put_count(out, total);
        put(out, ")");
    }
    put(out, "</h2>\n");
    if (total == 0) {
        put(out, "<p>None: no row is invalid, failed or deferred.</p>\n"
                 "</section>\n");
        return;
    }
    put(out, "<table>\n<thead><tr><th>File</th><th>Row</th><th>Email</th>"
             "<th>Status</th><th>Problem</th><th>What to do</th></tr>"
             "</thead>\n<tbody>\n");
    for (i = 0; h != NULL && i < h->n; i++) {
        const struct arow *a = &h->rows[i];
        const char *name = cts_status_name(a->status);
        cts_buf_appendf(out, "<tr data-status=\"%s\"><td class=\"file\">",
                        name);
        put_text(out, a->file);
        cts_buf_appendf(
            out, "</td><td class=\"row\">%ld</td><td class=\"email\">", a->row);
        put_text(out, a->email);
        cts_buf_appendf(out,
                        "</td><td><span class=\"st s-%s\">%s</span></td>"
                        "<td class=\"problem\">",
                        name, name);
        if (a->message != NULL)
            put_text(out, a->message);
        else if (a->error_key != NULL)
            put_text(out, a->error_key);
        else if (a->http_status > 0)
            cts_buf_appendf(out, "HTTP %d", a->http_status);
        else if (a->status == CTS_ST_DEFERRED)
            put(out, "not sent in this run");
        if (a->status == CTS_ST_FAILED && a->http_status > 0 &&
            a->message != NULL)
            cts_buf_appendf(out, " <span class=\"muted\">(HTTP %d)</span>",
                            a->http_status);
        put(out, "</td><td class=\"todo\">");
        put_text(out, suggestion(a));
        put(out, "</td></tr>\n");
    }
    put(out, "</tbody>\n</table>\n");
    if (total > shown) {
        cts_buf_appendf(out, "<p class=\"more\" data-more=\"%ld\">… and ",
                        total - shown);
        put_rows(out, total - shown, "more row", "more rows");
        put(out, ": see the CSV report");
        if (run->report_path != NULL) {
            put(out, " ");
            put_text(out, run->report_path);
        }
        put(out, " (every row is there).</p>\n");
    }
    put(out, "</section>\n");
}

/* Consent and mirror outcomes, said in words when there are any. */
static void put_notes(struct cts_buf *out, const struct cts_html_run *run)
{
    static const struct {
        enum cts_status st;
        const char *one, *many; /* the subject, by count */
        const char *rest;
    } notes[] = {
        {CTS_ST_OPTED_OUT, "contact is", "contacts are",
         " unsubscribed</strong> in the account: left alone, nothing was "
         "sent. Only a contact can subscribe again, from a sign-up form."},
        {CTS_ST_UNSUBSCRIBED, "contact was", "contacts were",
         " unsubscribed</strong> because the file marks them as opted out."},
        {CTS_ST_REMOVED, "membership was", "memberships were",
         " removed</strong> from mirrored lists (on the list, not in the "
         "file). The contacts themselves stay in the account."},
    };
    const long *st = run->counts->status;
    size_t i;
    int any = 0;

    for (i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
        long n = st[notes[i].st];
        if (n == 0)
            continue;
        if (!any)
            put(out, "<section id=\"consent\">\n<h2>Opt-outs and lists</h2>\n"
                     "<ul class=\"notes\">\n");
        any = 1;
        cts_buf_appendf(out,
                        "<li data-status=\"%s\" data-count=\"%ld\">"
                        "<strong>",
                        cts_status_name(notes[i].st), n);
        put_rows(out, n, notes[i].one, notes[i].many);
        put(out, notes[i].rest);
        put(out, "</li>\n");
    }
    if (any)
        put(out, "</ul>\n</section>\n");
}

void cts_html_render(const struct cts_html *h, const struct cts_html_run *run,
                     struct cts_buf *out)
{
    size_t i;

    put(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
             "<meta charset=\"utf-8\">\n"
             "<meta name=\"viewport\" content=\"width=device-width, "
             "initial-scale=1\">\n<title>ctct-sync import");
    for (i = 0; i < run->ninputs && i < 3; i++) {
        put(out, i == 0 ? ": " : ", ");
        put_text(out, run->inputs[i]);
    }
    put(out, "</title>\n<style>");
    put(out, style);
    put(out, "</style>\n</head>\n<body>\n<main>\n<header>\n"
             "<h1>Import report</h1>\n<p class=\"sub\">");
    put_started(out, run->started);
    put(out, "</p>\n</header>\n");
    put_verdict(out, run);
    put_facts(out, run);
    put_counts(out, run);
    put_attention(out, h, run);
    put_notes(out, run);
    put(out, "<footer>Made by ctct-sync " CTS_VERSION);
    if (run->report_path != NULL) {
        put(out, ". The CSV report ");
        put_text(out, run->report_path);
        put(out, " lists every row");
    }
    put(out, ".</footer>\n</main>\n</body>\n</html>\n");
}

int cts_html_write(const struct cts_html *h, const struct cts_html_run *run,
                   const char *path, struct cts_error *err)
{
    struct cts_afile af;
    struct cts_buf page;
    char *dir;
    int rc, rc2;

    cts_buf_init(&page, 0);
    cts_html_render(h, run, &page);
    /* Temporary file and rename: a reader (a browser reloading the tab)
     * sees the old page or the new one, never half of one. */
    rc = cts_afile_open(&af, path, CTS_AFILE_UNIQUE);
    if (rc == 0)
        rc = cts_afile_write(&af, page.data, page.len);
    rc2 = cts_afile_close(&af, rc == 0);
    if (rc == 0)
        rc = rc2;
    cts_buf_free(&page);
    if (rc == 0) {
        dir = cts_dirname(path);
        rc = cts_fsync_dir(dir);
        free(dir);
    }
    if (rc != 0)
        return cts_error_setx(err, rc, CTS_EX_CANTCREAT,
                              "cannot write the HTML report %s: %s", path,
                              cts_strerror(rc));
    return 0;
}

char *cts_html_default_path(const char *report_path)
{
    size_t n = strlen(report_path);
    const char *slash = strrchr(report_path, '/');
    size_t base = slash != NULL ? (size_t)(slash - report_path) + 1 : 0;

    /* "x.csv" → "x.html"; a bare ".csv" keeps its name. */
    if (n - base > 4 && cts_streq_nocase(report_path + n - 4, ".csv"))
        n -= 4;
    return cts_xasprintf("%.*s.html", (int)n, report_path);
}
