/* report.c — ordered result sink, Excel-safe CSV, summary JSON. */
#include "cts_report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "cts_htmlreport.h"
#include "cts_rejects.h"

/* A result that arrived before an earlier row: owned copies of its text. */
struct held {
    int used;
    long row;
    enum cts_status status;
    int http_status;
    int attempts;
    const char *file; /* borrowed: input names live for the whole run */
    char *email;
    char *contact_id;
    char *error_key;
    char *message;
};

struct cts_report {
    FILE *fp;
    int owns_fp;
    int err;           /* sticky write error, 0 while all is well */
    uint64_t next;     /* the seq the next written line must have */
    uint64_t nheld;    /* entries in use in ring */
    struct held *ring; /* slot (seq % cap) holds row seq while waiting */
    size_t cap;        /* power of two */
    struct cts_report_counts counts;
    struct cts_buf line; /* lines not yet handed to stdio (flush_lines) */
    int (*before_write)(void *arg); /* cts_report_set_before_write */
    void *before_write_arg;
    struct cts_rejects *rejects; /* cts_report_set_rejects */
    struct cts_html *html; /* cts_report_set_html: borrowed, may be NULL */
};

#define LINES_FLUSH (64 * 1024) /* bytes of lines per fwrite */

static const char header[] =
    "file,row,email,status,http_status,attempts,contact_id,error_key,"
    "message\r\n";

/* ---- CSV cells ---- */

/*
 * Write one text cell.  A leading '=', '+', '-', '@', TAB or CR would make
 * Excel or LibreOffice evaluate the cell as a formula (CSV injection), so
 * it gets a single quote in front, the OWASP advice.  RFC 4180: a cell
 * holding a comma, a quote, CR or LF is quoted and quotes are doubled.
 */
static void put_cell(struct cts_buf *b, const char *s)
{
    size_t n;
    int quote;
    const char *q;

    if (s == NULL || *s == '\0')
        return;
    n = strlen(s);
    quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        cts_buf_putc(b, '"');
    if (strchr("=+-@\t\r", *s) != NULL)
        cts_buf_putc(b, '\'');
    /* Whole spans between quotes: the report is written for every row. */
    while ((q = memchr(s, '"', n)) != NULL) {
        cts_buf_append(b, s, (size_t)(q - s) + 1);
        cts_buf_putc(b, '"');
        n -= (size_t)(q - s) + 1;
        s = q + 1;
    }
    cts_buf_append(b, s, n);
    if (quote)
        cts_buf_putc(b, '"');
}

void cts_report_cell(struct cts_buf *b, const char *s)
{
    put_cell(b, s);
}

void cts_report_set_rejects(struct cts_report *r, struct cts_rejects *rj)
{
    r->rejects = rj;
}

/* Decimal digits of v, appended (snprintf's format parsing was a tenth
 * of a dry run: three numbers on every line). */
static void put_long(struct cts_buf *b, long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--i] = '-';
    cts_buf_append(b, tmp + i, sizeof(tmp) - i);
}

static void put_str(struct cts_buf *b, const char *s)
{
    cts_buf_append(b, s, strlen(s));
}

/* Hand the lines gathered so far to stdio in one call, after the
 * before_write hook: a line reaches the file only after what the hook
 * makes durable (the pipeline's journal records of those rows). */
static int flush_lines(struct cts_report *r)
{
    struct cts_buf *b = &r->line;

    if (r->err == 0 && b->len > 0) {
        if (r->before_write != NULL)
            r->err = r->before_write(r->before_write_arg);
        if (r->err == 0 && fwrite(b->data, 1, b->len, r->fp) != b->len)
            r->err = errno != 0 ? -errno : UV_EIO;
    }
    cts_buf_reset(b);
    return r->err;
}

void cts_report_set_before_write(struct cts_report *r, int (*fn)(void *arg),
                                 void *arg)
{
    r->before_write = fn;
    r->before_write_arg = arg;
}

static int write_line(struct cts_report *r, const char *file, long row,
                      const char *email, enum cts_status status,
                      int http_status, int attempts, const char *contact_id,
                      const char *error_key, const char *message)
{
    /* Lines gather in one buffer for the whole report file, handed to
     * stdio when it passes LINES_FLUSH: no allocation per row once it has
     * grown, and one fwrite for hundreds of lines.  A stream the caller
     * gave (stdout, tests) gets each line at once, as it always did. */
    struct cts_buf *b = &r->line;
    char *masked;

    if (r->err != 0)
        return r->err;
    put_cell(b, file);
    cts_buf_putc(b, ',');
    /* Row 0: a line that is no input row (a --mirror removal). */
    if (row > 0)
        put_long(b, row);
    cts_buf_putc(b, ',');
    put_cell(b, email);
    cts_buf_putc(b, ',');
    put_str(b, cts_status_name(status));
    cts_buf_putc(b, ',');
    if (http_status > 0)
        put_long(b, http_status);
    cts_buf_putc(b, ',');
    put_long(b, attempts);
    cts_buf_putc(b, ',');
    put_cell(b, contact_id);
    cts_buf_putc(b, ',');
    put_cell(b, error_key);
    cts_buf_putc(b, ',');
    /* The message may quote a URL or the server's words: the run's secrets
     * are masked here as on the terminal (a copy only when one is there). */
    masked = cts_log_redacted(message);
    put_cell(b, masked != NULL ? masked : message);
    cts_buf_append(b, "\r\n", 2);
    /* The HTML page and the rejects file see the row as the report shows
     * it, masked; their own errors are their own: the report goes on. */
    if (r->html != NULL || (r->rejects != NULL && cts_rejects_wanted(status))) {
        struct cts_result res = {
            file,       row,         email,
            status,     http_status, attempts,
            contact_id, error_key,   masked != NULL ? masked : message};
        if (r->html != NULL)
            cts_html_add(r->html, &res);
        if (r->rejects != NULL && cts_rejects_wanted(status))
            cts_rejects_add(r->rejects, &res, res.message);
    }
    free(masked);
    /* Buffered like stdio's own buffer was; ferror() is checked again at
     * close, but a failed fwrite is caught here so the run can stop early
     * (exit 73). */
    if (!r->owns_fp || b->len >= LINES_FLUSH)
        flush_lines(r);
    if (r->err == 0) {
        if (row > 0)
            r->counts.input_rows++;
        if ((unsigned)status < CTS_ST__COUNT)
            r->counts.status[status]++;
    }
    return r->err;
}

static struct cts_report *sink_new(FILE *fp, int owns, struct cts_error *err)
{
    struct cts_report *r = cts_xcalloc(1, sizeof(*r));

    r->fp = fp;
    r->owns_fp = owns;
    r->cap = 64;
    r->ring = cts_xcalloc(r->cap, sizeof(*r->ring));
    cts_buf_init(&r->line, 0);
    /* The BOM tells Excel the file is UTF-8 (it assumes the ANSI code page
     * otherwise and garbles every accented name). */
    if (fwrite("\xef\xbb\xbf", 1, 3, fp) != 3 ||
        fwrite(header, 1, sizeof(header) - 1, fp) != sizeof(header) - 1) {
        cts_error_setx(err, UV_EIO, CTS_EX_CANTCREAT,
                       "cannot write the report: %s", strerror(errno));
        if (owns)
            fclose(fp);
        free(r->ring);
        free(r);
        return NULL;
    }
    return r;
}

int cts_report_file_open(const char *path, const char *what,
                         struct cts_error *err)
{
    struct stat st;
    int fd;

    /* O_NOFOLLOW: a symlink planted where the file goes (link.csv ->
     * victim) is refused, never written through.  0600 when created (it
     * holds email addresses); an existing file keeps its mode. */
    do
        fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                  S_IRUSR | S_IWUSR);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == ELOOP)
        return cts_error_setx(err, UV_ELOOP, CTS_EX_CANTCREAT,
                              "the %s %s is a symbolic link; refusing to "
                              "write through it (remove the link or choose "
                              "another file)",
                              what, path);
    if (fd < 0)
        return cts_error_setx(err, -errno, CTS_EX_CANTCREAT,
                              "cannot create the %s %s: %s", what, path,
                              strerror(errno));
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        return cts_error_setx(err, -e, CTS_EX_CANTCREAT,
                              "cannot create the %s %s: %s", what, path,
                              strerror(e));
    }
    return fd;
}

/* Empty the file open on fd (a regular file; a device such as /dev/null
 * is written as it is) and hand it to stdio at offset 0. */
static FILE *file_restart(int fd, const char *mode)
{
    struct stat st;
    FILE *fp;

    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0))
        return NULL;
    fp = fdopen(fd, mode);
    return fp;
}

struct cts_report *cts_report_open_fd(int fd, const char *path,
                                      struct cts_error *err)
{
    FILE *fp = file_restart(fd, "wb");

    if (fp == NULL) {
        int e = errno;
        close(fd);
        cts_error_setx(err, -e, CTS_EX_CANTCREAT,
                       "cannot create the report %s: %s", path, strerror(e));
        return NULL;
    }
    /* The sink gathers lines itself and writes LINES_FLUSH bytes at a
     * time (64 KiB writes instead of stdio's 4 KiB: a million-row report
     * is 16x fewer system calls), so a second stdio buffer would only copy
     * every byte once more.  (Errors still surface at fflush/fclose.) */
    setvbuf(fp, NULL, _IONBF, 0);
    return sink_new(fp, 1, err);
}

struct cts_report *cts_report_open(const char *path, struct cts_error *err)
{
    int fd = cts_report_file_open(path, "report", err);

    return fd >= 0 ? cts_report_open_fd(fd, path, err) : NULL;
}

struct cts_report *cts_report_open_stream(FILE *fp, struct cts_error *err)
{
    return sink_new(fp, 0, err);
}

static void held_clear(struct held *h)
{
    free(h->email);
    free(h->contact_id);
    free(h->error_key);
    free(h->message);
    memset(h, 0, sizeof(*h));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? cts_xstrdup(s) : NULL;
}

/* Grow the ring so that seq fits: entries move to their new slot. */
static void ring_grow(struct cts_report *r, uint64_t seq)
{
    size_t ncap = r->cap, i;
    struct held *nring;

    while (seq - r->next >= ncap)
        ncap *= 2;
    nring = cts_xcalloc(ncap, sizeof(*nring));
    for (i = 0; i < r->cap; i++) {
        uint64_t s;
        if (!r->ring[i].used)
            continue;
        /* The slot's seq is the one in [next, next+cap) congruent to i. */
        s = r->next + ((i - (r->next % r->cap)) & (r->cap - 1));
        nring[s & (ncap - 1)] = r->ring[i];
    }
    free(r->ring);
    r->ring = nring;
    r->cap = ncap;
}

/* Write every held row that is now next in line. */
static int drain(struct cts_report *r)
{
    for (;;) {
        struct held *h = &r->ring[r->next & (r->cap - 1)];
        int rc;
        if (!h->used)
            return r->err;
        rc = write_line(r, h->file, h->row, h->email, h->status, h->http_status,
                        h->attempts, h->contact_id, h->error_key, h->message);
        held_clear(h);
        r->nheld--;
        r->next++;
        if (rc != 0)
            return rc;
    }
}

int cts_report_put(struct cts_report *r, uint64_t seq,
                   const struct cts_result *res)
{
    struct held *h;

    if (seq < r->next)
        return CTS_EUSAGE;
    if (seq == r->next) {
        /* The common case: in order, no copy. */
        int rc = write_line(r, res->file, res->row, res->email, res->status,
                            res->http_status, res->attempts, res->contact_id,
                            res->error_key, res->message);
        r->next++;
        if (rc != 0)
            return rc;
        return r->nheld > 0 ? drain(r) : 0;
    }
    if (seq - r->next >= r->cap)
        ring_grow(r, seq);
    h = &r->ring[seq & (r->cap - 1)];
    if (h->used)
        return CTS_EUSAGE;
    h->used = 1;
    h->row = res->row;
    h->status = res->status;
    h->http_status = res->http_status;
    h->attempts = res->attempts;
    h->file = res->file;
    h->email = dup_or_null(res->email);
    h->contact_id = dup_or_null(res->contact_id);
    h->error_key = dup_or_null(res->error_key);
    h->message = dup_or_null(res->message);
    r->nheld++;
    return r->err;
}

void cts_report_set_html(struct cts_report *r, struct cts_html *h)
{
    r->html = h;
}

uint64_t cts_report_written(const struct cts_report *r)
{
    return r->next;
}

uint64_t cts_report_held(const struct cts_report *r)
{
    return r->nheld;
}

struct cts_report_counts *cts_report_counts(struct cts_report *r)
{
    return &r->counts;
}

int cts_report_close(struct cts_report *r, struct cts_error *err)
{
    int rc = 0;
    int gap = 0;
    size_t i;

    if (r == NULL)
        return 0;
    /* Held rows behind a gap: write them in order rather than lose them. */
    while (r->nheld > 0) {
        gap = 1;
        if (!r->ring[r->next & (r->cap - 1)].used) {
            r->next++;
            continue;
        }
        drain(r);
        if (r->err != 0)
            break;
    }
    for (i = 0; i < r->cap; i++)
        if (r->ring[i].used)
            held_clear(&r->ring[i]);
    flush_lines(r);
    cts_buf_free(&r->line);
    /* jq's rule: a write error surfaces at flush or close, check both. */
    if (fflush(r->fp) != 0 && r->err == 0)
        r->err = errno != 0 ? -errno : UV_EIO;
    if (ferror(r->fp) && r->err == 0)
        r->err = UV_EIO;
    if (r->owns_fp && fclose(r->fp) != 0 && r->err == 0)
        r->err = errno != 0 ? -errno : UV_EIO;
    if (r->err != 0)
        rc =
            cts_error_setx(err, r->err, CTS_EX_CANTCREAT,
                           "cannot write the report: %s", cts_strerror(r->err));
    else if (gap)
        rc = cts_error_setx(err, CTS_EUSAGE, CTS_EX_SOFTWARE,
                            "internal error: report rows missing");
    free(r->ring);
    free(r);
    return rc;
}

/* ---- summary ---- */

int cts_report_write_summary(const char *path,
                             const struct cts_report_counts *c, const char *api,
                             const char *account, double elapsed_s,
                             int exit_code, struct cts_error *err)
{
    int fd = cts_report_file_open(path, "summary", err);

    if (fd < 0)
        return fd;
    return cts_report_write_summary_fd(fd, path, c, api, account, elapsed_s,
                                       exit_code, err);
}

int cts_report_write_summary_fd(int fd, const char *path,
                                const struct cts_report_counts *c,
                                const char *api, const char *account,
                                double elapsed_s, int exit_code,
                                struct cts_error *err)
{
    /* The documented key order; JSON_PRESERVE_ORDER keeps it.  Keys are
     * the status names with '_' for '-' (JSON keys scripts can dot). */
    static const struct {
        enum cts_status st;
        const char *key;
    } order[] = {
        {CTS_ST_CREATED, "created"},
        {CTS_ST_UPDATED, "updated"},
        {CTS_ST_IMPORTED, "imported"},
        {CTS_ST_UNCHANGED, "unchanged"},
        {CTS_ST_EXISTS, "exists"},
        {CTS_ST_INVALID, "invalid"},
        {CTS_ST_DUPLICATE, "duplicate"},
        {CTS_ST_FAILED, "failed"},
        {CTS_ST_DEFERRED, "deferred"},
        {CTS_ST_OPTED_OUT, "opted_out"},
        {CTS_ST_UNSUBSCRIBED, "unsubscribed"},
        {CTS_ST_REMOVED, "removed"},
    };
    json_t *o = json_object();
    FILE *fp = NULL;
    int rc = 0;
    size_t i;

    if (o == NULL) {
        close(fd);
        return cts_error_setx(err, UV_ENOMEM, CTS_EX_CANTCREAT,
                              "out of memory writing the summary");
    }
    /* json_object_set_new takes the value even when it fails. */
    json_object_set_new(o, "api", json_string(api));
    json_object_set_new(o, "account",
                        account != NULL ? json_string(account) : json_null());
    json_object_set_new(o, "input_rows", json_integer(c->input_rows));
    for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        json_object_set_new(o, order[i].key,
                            json_integer(c->status[order[i].st]));
    json_object_set_new(o, "requests", json_integer(c->requests));
    json_object_set_new(o, "throttled", json_integer(c->throttled));
    json_object_set_new(o, "retries", json_integer(c->retries));
    /* Milliseconds are enough and keep the file stable to read. */
    json_object_set_new(o, "elapsed_s",
                        json_real((double)(long)(elapsed_s * 1000.0) / 1000.0));
    json_object_set_new(o, "exit_code", json_integer(exit_code));

    fp = fd >= 0 ? file_restart(fd, "w") : NULL;
    if (fp == NULL) {
        rc = cts_error_setx(err, -errno, CTS_EX_CANTCREAT,
                            "cannot create the summary %s: %s", path,
                            strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    if (json_dumpf(o, fp,
                   JSON_PRESERVE_ORDER | JSON_INDENT(2) |
                       JSON_REAL_PRECISION(12)) != 0 ||
        fputc('\n', fp) == EOF || fflush(fp) != 0 || ferror(fp)) {
        rc = cts_error_setx(err, UV_EIO, CTS_EX_CANTCREAT,
                            "cannot write the summary %s: %s", path,
                            strerror(errno));
    }
    if (fclose(fp) != 0 && rc == 0)
        rc = cts_error_setx(err, UV_EIO, CTS_EX_CANTCREAT,
                            "cannot write the summary %s: %s", path,
                            strerror(errno));
out:
    json_decref(o);
    return rc;
}

char *cts_report_summary_line(const struct cts_report_counts *c,
                              double elapsed_s, char *out, size_t outlen)
{
    struct cts_buf b;
    int s;

    cts_buf_init(&b, 0);
    cts_buf_appendf(&b, "%ld rows:", c->input_rows);
    for (s = 0; s < CTS_ST__COUNT; s++) {
        /* Always show created/updated/failed so a glance gives the gist. */
        if (c->status[s] == 0 && s != CTS_ST_CREATED && s != CTS_ST_UPDATED &&
            s != CTS_ST_FAILED)
            continue;
        /* Consent outcomes in words: why those contacts got nothing. */
        if (s == CTS_ST_OPTED_OUT)
            cts_buf_appendf(&b,
                            " %ld opted out (unsubscribed in the "
                            "account, left alone),",
                            c->status[s]);
        else if (s == CTS_ST_UNSUBSCRIBED)
            cts_buf_appendf(&b, " %ld unsubscribed (as the file asked),",
                            c->status[s]);
        else if (s == CTS_ST_REMOVED)
            cts_buf_appendf(&b, " %ld removed from the list,", c->status[s]);
        else
            cts_buf_appendf(&b, " %ld %s,", c->status[s], cts_status_name(s));
    }
    b.data[--b.len] = '\0'; /* the last comma */
    cts_buf_appendf(&b, "; %ld requests, %ld throttled, %ld retries, %.1f s",
                    c->requests, c->throttled, c->retries, elapsed_s);
    snprintf(out, outlen, "%s", b.data);
    cts_buf_free(&b);
    return out;
}

char *cts_report_dup_message(char *const *inputs, const uint64_t *file_seq,
                             size_t file_idx, uint64_t first, char *buf,
                             size_t n)
{
    size_t k = file_idx;

    while (k > 0 && file_seq[k] > first)
        k--;
    if (k == file_idx)
        snprintf(buf, n, "same email as row %llu",
                 (unsigned long long)(first - file_seq[k] + 1));
    else
        snprintf(buf, n, "same email as %s row %llu", inputs[k],
                 (unsigned long long)(first - file_seq[k] + 1));
    return buf;
}
