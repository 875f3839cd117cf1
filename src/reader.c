/*
 * reader.c — streaming CSV reader: libcsv push parser → decoded rows.
 *
 * The only file that includes <csv.h>.  Data flows through three stages:
 *   1. start:   hold the first bytes until the BOM question is settled
 *               (UTF-8 BOM removed; a UTF-16 BOM switches on transcoding);
 *   2. sniff:   when no delimiter was given, hold bytes until the first
 *               non-blank line is complete and count , ; TAB | outside
 *               quotes in it;
 *   3. stream:  everything goes to csv_parse() in slices; cb_field copies
 *               raw field bytes (libcsv's buffer is valid only inside the
 *               callback), cb_record decodes them and calls the user.
 * Decoding happens per record after parsing: the delimiters, quotes and
 * line breaks are ASCII, which UTF-8, Windows-1252 and Latin-1 all share.
 */
#include "cts_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>
#include <uv.h>

#include "cts_email.h"
#include "cts_encoding.h"
#include "cts_util.h"

/* libcsv's parser states (libcsv.c; stable since 3.0): a quoted field is
 * still open at EOF when pstate == FIELD_BEGUN and quoted is set.
 * CSV_STRICT_FINI would tell us, but only together with CSV_STRICT, which
 * we do not want (it rejects the stray quotes real spreadsheets contain). */
#define LIBCSV_FIELD_BEGUN 2

#define SLICE             (32 * 1024) /* bytes per csv_parse call */
#define MAX_FIELDS        16384       /* Excel's column limit */
#define RECORD_FIELDS_CAP 16 /* a record holds ≤ 16 × max_field bytes */
#define SNIFF_MAX         (1024 * 1024) /* give up looking for the header's end */
#define SNIFF_HOLD        (64 * 1024)   /* bytes a zip or OLE2 file may need */

enum stage { ST_START = 0, ST_SNIFF, ST_STREAM, ST_DONE };
enum utf16 { U16_NONE = 0, U16_LE, U16_BE };

struct cts_reader {
    char *file;
    int delim;
    enum cts_encoding enc; /* as asked */
    enum cts_encoding cur; /* decoding in use now (UTF8/CP1252/LATIN1) */
    size_t max_field;
    cts_row_cb cb;
    void *arg;

    struct csv_parser p;
    enum stage stage;
    struct cts_buf pre; /* bytes held in stages START and SNIFF */
    int bom;
    enum utf16 u16;
    unsigned char u16c[4]; /* carried UTF-16 bytes between chunks */
    size_t u16n;
    struct cts_buf u16out;
    int first_chunk_checked;
    int u16_warned; /* UTF-16 repair warned about once */

    /* The record being assembled: raw field bytes, NUL after each. */
    struct cts_buf rec;
    size_t *off, *rawlen;
    size_t nf, cap;
    long nul_field;        /* 1-based field with a NUL byte, 0 = none */
    long big_field;        /* 1-based oversize field, 0 = none */
    int too_many;          /* more than MAX_FIELDS fields: the rest dropped */
    unsigned char *ignore; /* ignore[i]: nothing reads column i */
    size_t nignore;
    int dropped;       /* a value in an ignored column was dropped */
    int big_record;    /* the record outgrew its cap: later fields cut */
    int oversize;      /* the field now in libcsv's buffer was cut */
    size_t dropped_nl; /* line breaks in cut-away bytes */

    /* Decoded view handed to the callback. */
    struct cts_buf dec;
    const char **fields;
    size_t *lens;
    size_t *doff; /* offsets into dec while it may still move */
    size_t fcap;

    long line;     /* physical lines completed so far */
    int last_cr;   /* the previous terminator was a CR */
    long rec_line; /* line where the current record started */
    long rows;     /* data rows delivered */
    int header_seen;
    size_t header_nf;  /* header fields */
    size_t header_min; /* header fields without trailing unnamed ones */
    long switched_row; /* auto: row where cp1252 decoding began, 0 */
    int nonascii;      /* a delivered field held non-ASCII UTF-8 */
    int unterminated;
    int stopped; /* nonzero: the value returned from now on */
    int fatal_told;
    char fatal[300]; /* why the input stopped being read, for err */
    char **hname;    /* the header's names (trimmed), for messages */
    size_t nhname;
    char problem[300];
    char encdesc[96];
};

struct cts_reader *cts_reader_new(const struct cts_reader_opts *o,
                                  cts_row_cb cb, void *arg)
{
    struct cts_reader *r = cts_xcalloc(1, sizeof(*r));

    r->file = cts_xstrdup(o->file != NULL ? o->file : "-");
    r->delim = o->delimiter;
    r->enc = o->enc;
    r->cur = o->enc == CTS_ENC_AUTO ? CTS_ENC_UTF8 : o->enc;
    r->max_field = o->max_field != 0 ? o->max_field : CTS_READER_MAX_FIELD;
    r->cb = cb;
    r->arg = arg;
    cts_buf_init(&r->pre, 0);
    cts_buf_init(&r->u16out, 0);
    cts_buf_init(&r->rec, 0);
    cts_buf_init(&r->dec, 0);
    /* CSV_APPEND_NULL: fields arrive NUL-terminated (we still copy them).
     * CSV_REPALL_NL: every unquoted CR/LF is reported, which is how we
     * count physical lines, blank ones included. */
    if (csv_init(&r->p, CSV_APPEND_NULL | CSV_REPALL_NL) != 0) {
        cts_log_error("out of memory initialising libcsv");
        abort();
    }
    /* libcsv grows its field buffer by blk_size per step: make it large
     * enough that long fields do not cost thousands of reallocs. */
    csv_set_blk_size(&r->p, 16384);
    return r;
}

void cts_reader_free(struct cts_reader *r)
{
    if (r == NULL)
        return;
    csv_free(&r->p);
    cts_buf_free(&r->pre);
    cts_buf_free(&r->u16out);
    cts_buf_free(&r->rec);
    cts_buf_free(&r->dec);
    free(r->off);
    free(r->rawlen);
    free(r->fields);
    free(r->lens);
    free(r->doff);
    free(r->ignore);
    while (r->nhname > 0)
        free(r->hname[--r->nhname]);
    free(r->hname);
    free(r->file);
    free(r);
}

void cts_reader_ignore_columns(struct cts_reader *r,
                               const unsigned char *ignore, size_t n)
{
    free(r->ignore);
    r->ignore = NULL;
    r->nignore = 0;
    if (n == 0)
        return;
    r->ignore = cts_xmalloc(n);
    memcpy(r->ignore, ignore, n);
    r->nignore = n;
}

/* 1 when nothing reads the value of column i (0-based). */
static int ignored(const struct cts_reader *r, size_t i)
{
    return i < r->nignore && r->ignore[i] != 0;
}

int cts_reader_delimiter(const struct cts_reader *r)
{
    return r->stage >= ST_STREAM ? r->delim : 0;
}

long cts_reader_rows(const struct cts_reader *r)
{
    return r->rows;
}

const char *cts_reader_encoding(const struct cts_reader *r)
{
    struct cts_reader *w = (struct cts_reader *)r;

    if (r->u16 != U16_NONE)
        snprintf(w->encdesc, sizeof(w->encdesc), "%s (converted)",
                 r->u16 == U16_LE ? "utf-16le" : "utf-16be");
    else if (r->switched_row > 0)
        snprintf(w->encdesc, sizeof(w->encdesc),
                 "utf-8, then cp1252 from row %ld (converted)",
                 r->switched_row);
    else if (r->cur == CTS_ENC_UTF8)
        snprintf(w->encdesc, sizeof(w->encdesc), "utf-8%s",
                 r->bom ? " (BOM)" : "");
    else
        snprintf(w->encdesc, sizeof(w->encdesc), "%s (converted)",
                 cts_encoding_name(r->cur));
    return w->encdesc;
}

/* ---- record assembly (libcsv callbacks) ---- */

static size_t count_breaks(const unsigned char *s, size_t n)
{
    size_t i, k = 0;

    /* Most fields hold no line break: let memchr say so quickly. */
    if (memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] == '\n')
            k++;
        else if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
            k++;
    }
    return k;
}

/* Does b[0..len) hold a byte below 0x0E (NUL, CR, LF among them)?  Eight
 * bytes a step with the "has a byte less than n" bit trick (exact as a
 * yes/no answer for n <= 128): every field of every row passes here. */
static int has_low_byte(const unsigned char *b, size_t len)
{
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (((w - 0x0E0E0E0E0E0E0E0EULL) & ~w & 0x8080808080808080ULL) != 0)
            return 1;
    }
    for (; i < len; i++)
        if (b[i] < 0x0E)
            return 1;
    return 0;
}

static void cb_field(void *s, size_t len, void *data)
{
    struct cts_reader *r = data;
    size_t start;

    if (r->stopped != 0)
        return;
    /* Bound a record's memory too, not only each field's: a line of a
     * million commas must not cost a million offsets.  The row is
     * reported invalid, so nothing is silently lost. */
    if (r->nf >= MAX_FIELDS) {
        r->too_many = 1;
        r->dropped_nl += count_breaks(s, len);
        return;
    }
    if (r->nf == r->cap) {
        r->cap = r->cap != 0 ? r->cap * 2 : 32;
        r->off = cts_xrealloc(r->off, r->cap * sizeof(*r->off));
        r->rawlen = cts_xrealloc(r->rawlen, r->cap * sizeof(*r->rawlen));
    }
    if (r->nf == 0)
        r->rec_line = r->line + 1;
    /* One pass for the rare bytes: NUL (a problem) and CR/LF (a quoted
     * line break moves the physical line on). */
    if (has_low_byte(s, len)) {
        r->dropped_nl += count_breaks(s, len);
        if (memchr(s, 0, len) != NULL) {
            if (ignored(r, r->nf)) {
                r->dropped = 1; /* read by nobody: dropped, no problem */
                len = 0;
            } else if (r->nul_field == 0)
                r->nul_field = (long)r->nf + 1;
        }
    }
    if (r->oversize || len > r->max_field) {
        /* Keep nothing of a field we refuse anyway, or that nobody reads
         * (a huge note in an unmapped column costs the row nothing). */
        r->oversize = 0;
        if (ignored(r, r->nf))
            r->dropped = 1;
        else if (r->big_field == 0)
            r->big_field = (long)r->nf + 1;
        len = 0;
    } else if (r->rec.len + len > r->max_field * RECORD_FIELDS_CAP) {
        r->big_record = 1;
        len = 0;
    }
    /* libcsv's buffer is valid only inside this callback: copy it. */
    start = r->rec.len;
    /* CSV_APPEND_NULL put a NUL at s[len]: copy it along in one append
     * (unless the field was emptied above). */
    if (cts_buf_append(&r->rec, len > 0 ? s : "", len + 1) != 0)
        abort(); /* unlimited buffer: only allocation can fail, and aborts */
    r->off[r->nf] = start;
    r->rawlen[r->nf] = len;
    r->nf++;
}

static void reset_record(struct cts_reader *r)
{
    r->nf = 0;
    r->rec.len = 0;
    r->nul_field = 0;
    r->big_field = 0;
    r->too_many = 0;
    r->big_record = 0;
    r->dropped = 0;
}

static void ensure_fields(struct cts_reader *r, size_t n)
{
    if (n <= r->fcap)
        return;
    r->fcap = n < 32 ? 32 : n * 2;
    r->fields = cts_xrealloc(r->fields, r->fcap * sizeof(*r->fields));
    r->lens = cts_xrealloc(r->lens, r->fcap * sizeof(*r->lens));
    r->doff = cts_xrealloc(r->doff, r->fcap * sizeof(*r->doff));
}

static int has_high_byte(const char *s, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if ((w & 0x8080808080808080ULL) != 0)
            return 1;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* Decode every field of the record into r->dec (or point at r->rec when
 * the bytes are already valid UTF-8).  Returns the 1-based index of the
 * first field that is not valid UTF-8 under a strict utf-8 setting, with
 * *badbyte set, else 0. */
static long decode_record(struct cts_reader *r, unsigned *badbyte)
{
    size_t i, valid;
    long bad = 0;
    int incomplete;
    enum cts_encoding use = r->cur;

    ensure_fields(r, r->nf);
    /* auto: the first field that is not UTF-8 switches the rest of the
     * input (this record included) to Windows-1252, once. */
    if (use == CTS_ENC_UTF8) {
        for (i = 0; i < r->nf; i++) {
            const unsigned char *s =
                (const unsigned char *)r->rec.data + r->off[i];
            valid = cts_utf8_valid_prefix(s, r->rawlen[i], &incomplete);
            if (valid < r->rawlen[i]) {
                if (r->enc == CTS_ENC_AUTO && r->u16 == U16_NONE) {
                    r->cur = use = CTS_ENC_CP1252;
                    /* If everything before was ASCII, reading it as cp1252
                     * would have given the same text: the whole input is
                     * simply cp1252, whatever the chunking was. */
                    if (r->nonascii) {
                        r->switched_row = r->rows + 1;
                        cts_log_warn("%s: not valid UTF-8 from row %ld "
                                     "(line %ld); reading the rest as "
                                     "Windows-1252",
                                     r->file, r->switched_row, r->rec_line);
                    }
                } else if (bad == 0) {
                    bad = (long)i + 1;
                    *badbyte = s[valid];
                }
                break;
            }
        }
    }
    if (use == CTS_ENC_UTF8 && bad == 0) {
        for (i = 0; i < r->nf; i++) {
            r->fields[i] = r->rec.data + r->off[i];
            r->lens[i] = r->rawlen[i];
        }
        if (!r->nonascii && r->enc == CTS_ENC_AUTO)
            r->nonascii = has_high_byte(r->rec.data, r->rec.len);
        return 0;
    }
    /* Convert into dec; a strict-UTF-8 row with a bad field is shown as
     * Windows-1252 so the report has readable text (the row is invalid). */
    r->dec.len = 0;
    for (i = 0; i < r->nf; i++) {
        r->doff[i] = r->dec.len;
        if (cts_encoding_to_utf8(use == CTS_ENC_UTF8 ? CTS_ENC_CP1252 : use,
                                 r->rec.data + r->off[i], r->rawlen[i],
                                 &r->dec) != 0 ||
            cts_buf_putc(&r->dec, 0) != 0)
            abort();
        r->lens[i] = r->dec.len - 1 - r->doff[i];
    }
    for (i = 0; i < r->nf; i++)
        r->fields[i] = r->dec.data + r->doff[i];
    return bad;
}

static int is_blank(const struct cts_reader *r)
{
    size_t i;

    /* Fields emptied because they were too big were not blank. */
    if (r->big_field != 0 || r->too_many || r->big_record || r->dropped)
        return 0;
    for (i = 0; i < r->nf; i++)
        if (r->rawlen[i] != 0)
            return 0;
    return 1;
}

/* "65,536": sizes in messages read as people write them. */
static void thousands(size_t v, char *buf, size_t size)
{
    char digits[32];
    size_t n, i, o = 0;

    n = (size_t)snprintf(digits, sizeof(digits), "%zu", v);
    for (i = 0; i < n && o + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* How a problem names column col (1-based): by its header as written
 * (cut at 60 bytes, never inside a character), or by its number when the
 * header gives it no name (or while reading the header itself). */
static void col_name(const struct cts_reader *r, long col, char *buf,
                     size_t size)
{
    const char *name = (size_t)col <= r->nhname ? r->hname[col - 1] : "";
    size_t n = strlen(name), cut = n > 60 ? 60 : n;

    while (cut < n && cut > 0 && ((unsigned char)name[cut] & 0xC0) == 0x80)
        cut--;
    if (n == 0)
        snprintf(buf, size, "column %ld", col);
    else
        snprintf(buf, size, "column \"%.*s%s\"", (int)cut, name,
                 cut < n ? "..." : "");
}

/* Keep the header's names (trimmed) for the data rows' messages. */
static void keep_header_names(struct cts_reader *r)
{
    size_t i;

    r->hname = cts_xcalloc(r->nf > 0 ? r->nf : 1, sizeof(*r->hname));
    for (i = 0; i < r->nf; i++) {
        size_t n = r->lens[i];
        const char *s = cts_trim_span(r->fields[i], &n);
        r->hname[i] = cts_xstrndup(s, n);
    }
    r->nhname = r->nf;
}

/* The value returned once reading stopped; fills err the first time the
 * input itself was refused (r->fatal). */
static int stopped_rc(struct cts_reader *r, struct cts_error *err)
{
    if (r->fatal[0] != '\0' && !r->fatal_told) {
        r->fatal_told = 1;
        cts_error_setx(err, r->stopped, CTS_EX_DATAERR, "%s", r->fatal);
    }
    return r->stopped;
}

static void cb_record(int c, void *data)
{
    struct cts_reader *r = data;
    struct cts_row row;
    unsigned badbyte = 0;
    long badutf;
    int rc;
    char col[100], num[32];

    if (r->stopped != 0)
        return;
    /* Line accounting: with CSV_REPALL_NL, a CRLF arrives as a record end
     * at CR and then an empty record at LF; count that pair once. */
    r->line += (long)r->dropped_nl;
    r->dropped_nl = 0;
    if (c == '\n') {
        if (!(r->last_cr && r->nf == 0))
            r->line++;
        r->last_cr = 0;
    } else if (c == '\r') {
        r->line++;
        r->last_cr = 1;
    } else {
        r->last_cr = 0;
    }
    if (r->nf == 0 || is_blank(r)) {
        reset_record(r);
        return;
    }

    /* A first line with a NUL byte is no CSV header: a binary file, or
     * UTF-16 text without its byte-order mark. */
    if (!r->header_seen && r->nul_field != 0) {
        snprintf(r->fatal, sizeof(r->fatal),
                 "%s: not a CSV text file (its first line holds NUL bytes: "
                 "binary data, or UTF-16 text without a byte-order mark); "
                 "save it as CSV UTF-8",
                 r->file);
        r->stopped = CTS_EDATA;
        reset_record(r);
        return;
    }
    badutf = decode_record(r, &badbyte);
    memset(&row, 0, sizeof(row));
    row.file = r->file;
    row.line = r->rec_line;
    row.nfields = r->nf;
    row.fields = r->fields;
    row.lens = r->lens;
    r->problem[0] = '\0';
    if (r->unterminated && c == -1) {
        snprintf(r->problem, sizeof(r->problem),
                 "unterminated quoted field (record opened on line %ld)",
                 r->rec_line);
    } else if (r->big_field != 0) {
        col_name(r, r->big_field, col, sizeof(col));
        thousands(r->max_field, num, sizeof(num));
        snprintf(r->problem, sizeof(r->problem), "%s is longer than %s bytes",
                 col, num);
    } else if (r->too_many) {
        snprintf(r->problem, sizeof(r->problem),
                 "more than %d fields (the rest were not read)", MAX_FIELDS);
    } else if (r->big_record) {
        thousands(r->max_field * RECORD_FIELDS_CAP, num, sizeof(num));
        snprintf(r->problem, sizeof(r->problem), "row longer than %s bytes",
                 num);
    } else if (r->nul_field != 0) {
        col_name(r, r->nul_field, col, sizeof(col));
        snprintf(r->problem, sizeof(r->problem), "NUL byte in %s", col);
    } else if (badutf != 0) {
        col_name(r, badutf, col, sizeof(col));
        snprintf(r->problem, sizeof(r->problem),
                 "invalid UTF-8 in %s (byte 0x%02X); try --encoding cp1252",
                 col, badbyte);
    }

    if (!r->header_seen) {
        size_t n = r->nf;

        r->header_seen = 1;
        r->header_nf = r->nf;
        keep_header_names(r);
        /* Trailing unnamed columns (a trailing delimiter) are optional in
         * data rows. */
        while (n > 1 && r->lens[n - 1] == 0)
            n--;
        r->header_min = n;
        row.row = 0;
    } else {
        row.row = ++r->rows;
        if (r->problem[0] == '\0' &&
            (r->nf < r->header_min || r->nf > r->header_nf)) {
            /* Extra fields are tolerated only when empty (a trailing
             * delimiter in data rows): nothing is lost by ignoring them. */
            size_t i, extra = 0;
            for (i = r->header_nf; i < r->nf; i++)
                if (r->lens[i] != 0)
                    extra++;
            if (r->nf < r->header_min || extra > 0)
                snprintf(r->problem, sizeof(r->problem),
                         "expected %zu fields, found %zu", r->header_min,
                         r->nf);
        }
    }
    row.problem = r->problem[0] != '\0' ? r->problem : NULL;
    rc = r->cb(&row, r->arg);
    if (rc != 0)
        r->stopped = rc;
    reset_record(r);
}

/* ---- stage 3: feed libcsv ---- */

static int parse(struct cts_reader *r, const unsigned char *s, size_t len,
                 struct cts_error *err)
{
    while (len > 0 && r->stopped == 0) {
        size_t n = len < SLICE ? len : SLICE;

        if (csv_parse(&r->p, s, n, cb_field, cb_record, r) != n) {
            int e = csv_error(&r->p);
            r->stopped = e == CSV_ENOMEM ? UV_ENOMEM : CTS_ECSV;
            cts_error_setx(err, r->stopped, CTS_EX_DATAERR, "%s: %s", r->file,
                           csv_strerror(e));
            return r->stopped;
        }
        /* Bound memory: a field that outgrew max_field is cut here and
         * reported when it ends.  libcsv keeps entry_pos in the struct
         * between calls, so shrinking it is safe as long as the tail it
         * will still look at stays: after a closing quote it later drops
         * `spaces + 1` bytes (the spaces and the quote), in an unquoted
         * field `spaces` bytes.  Keep spaces + 1 bytes at the end, and
         * cut only when what remains after dropping them is too long. */
        if (r->p.entry_pos > r->max_field + r->p.spaces + 1) {
            size_t keep = r->p.spaces + 1;
            size_t cut;
            if (keep > r->p.entry_pos)
                keep = r->p.entry_pos;
            cut = r->p.entry_pos - keep;
            r->dropped_nl += count_breaks(r->p.entry_buf, cut);
            memmove(r->p.entry_buf, r->p.entry_buf + cut, keep);
            r->p.entry_pos = keep;
            r->oversize = 1;
        }
        s += n;
        len -= n;
    }
    return stopped_rc(r, err);
}

/* ---- stage 2: delimiter detection ---- */

/* Look for the end of the first non-blank line outside quotes in
 * pre[0..len).  Returns 1 and sets *delim when decided. */
static int sniff(const unsigned char *s, size_t len, int at_eof, int *delim)
{
    size_t i, counts[4] = {0, 0, 0, 0};
    static const unsigned char cands[4] = {',', ';', '\t', '|'};
    int inq = 0, nonblank = 0, k, best;

    for (i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c == '"') {
            inq = !inq;
            nonblank = 1;
            continue;
        }
        if (inq)
            continue;
        if (c == '\n' || c == '\r') {
            if (nonblank)
                goto decide;
            continue;
        }
        if (c != ' ' && c != '\t')
            nonblank = 1;
        for (k = 0; k < 4; k++)
            if (c == cands[k])
                counts[k]++;
    }
    if (!at_eof && len < SNIFF_MAX)
        return 0;
decide:
    /* The most frequent candidate wins; ties go to the earlier one in
     * , ; TAB | order; a one-column file is comma-separated. */
    best = 0;
    for (k = 1; k < 4; k++)
        if (counts[k] > counts[best])
            best = k;
    *delim = cands[best];
    return 1;
}

static int start_stream(struct cts_reader *r, struct cts_error *err)
{
    int rc;

    /* libcsv trims spaces and tabs around unquoted fields, but tests for
     * the delimiter first, so a TAB delimiter still separates fields; its
     * built-in test is inline (a custom is_space costs a call per byte). */
    csv_set_delim(&r->p, (unsigned char)r->delim);
    r->stage = ST_STREAM;
    rc = parse(r, (const unsigned char *)r->pre.data, r->pre.len, err);
    cts_buf_free(&r->pre);
    return rc;
}

/* Decoded (post-BOM, post-UTF-16) bytes enter here. */
static int take(struct cts_reader *r, const unsigned char *s, size_t len,
                int at_eof, struct cts_error *err)
{
    /* auto on a stream: decide on the first chunk — if it is not UTF-8
     * (a sequence cut at its end does not count) read all as cp1252. */
    if (!r->first_chunk_checked && (len > 0 || at_eof)) {
        r->first_chunk_checked = 1;
        if (r->enc == CTS_ENC_AUTO && r->u16 == U16_NONE) {
            int inc;
            size_t v = cts_utf8_valid_prefix(s, len, &inc);
            if (v < len && !(inc && !at_eof))
                r->cur = CTS_ENC_CP1252;
        }
    }
    if (r->stage == ST_STREAM)
        return parse(r, s, len, err);
    /* ST_SNIFF */
    if (cts_buf_append(&r->pre, s, len) != 0)
        abort();
    if (r->delim == 0 && !sniff((const unsigned char *)r->pre.data, r->pre.len,
                                at_eof, &r->delim))
        return 0;
    return start_stream(r, err);
}

/* UTF-16 → UTF-8 for the bytes of one chunk (with a carried remainder).
 * Unpaired surrogates become U+FFFD, and are logged: nothing else in a
 * UTF-16 file can be undecodable. */
static void utf16_convert(struct cts_reader *r, const unsigned char *s,
                          size_t len)
{
    size_t i = 0;
    char tmp[4];

    r->u16out.len = 0;
    while (i < len || r->u16n >= 2) {
        unsigned u, lo;
        while (r->u16n < 4 && i < len)
            r->u16c[r->u16n++] = s[i++];
        if (r->u16n < 2)
            break;
        u = r->u16 == U16_LE ? (unsigned)(r->u16c[0] | (r->u16c[1] << 8))
                             : (unsigned)((r->u16c[0] << 8) | r->u16c[1]);
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (r->u16n < 4)
                break; /* wait for the low surrogate */
            lo = r->u16 == U16_LE ? (unsigned)(r->u16c[2] | (r->u16c[3] << 8))
                                  : (unsigned)((r->u16c[2] << 8) | r->u16c[3]);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                cts_buf_append(&r->u16out, tmp, cts_utf8_encode(cp, tmp));
                r->u16n = 0;
                continue;
            }
            u = 0xFFFD;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            u = 0xFFFD;
        }
        if (u == 0xFFFD && !r->u16_warned) {
            r->u16_warned = 1;
            cts_log_warn("%s: unpaired UTF-16 surrogate replaced by U+FFFD",
                         r->file);
        }
        cts_buf_append(&r->u16out, tmp, cts_utf8_encode(u, tmp));
        memmove(r->u16c, r->u16c + 2, r->u16n - 2);
        r->u16n -= 2;
    }
}

static int push(struct cts_reader *r, const unsigned char *s, size_t len,
                int at_eof, struct cts_error *err)
{
    if (r->u16 != U16_NONE) {
        utf16_convert(r, s, len);
        if (at_eof && r->u16n > 0) {
            /* An odd trailing byte or lone high surrogate at EOF. */
            cts_log_warn("%s: truncated UTF-16 at end of file replaced by "
                         "U+FFFD",
                         r->file);
            cts_buf_append(&r->u16out, "\xEF\xBF\xBD", 3);
            r->u16n = 0;
        }
        return take(r, (const unsigned char *)r->u16out.data, r->u16out.len,
                    at_eof, err);
    }
    return take(r, s, len, at_eof, err);
}

/* ---- stage 0: is it text at all? ---- */

/* Does b[0..n) begin with p[0..pn)? */
static int begins(const unsigned char *b, size_t n, const char *p, size_t pn)
{
    return n >= pn && memcmp(b, p, pn) == 0;
}

/* Does b[0..n) hold the ASCII word w written in UTF-16LE (as OLE2
 * directory entries name their streams)? */
static int has_utf16(const unsigned char *b, size_t n, const char *w)
{
    size_t i, k, wn = strlen(w);

    for (i = 0; i + 2 * wn <= n; i++) {
        for (k = 0; k < wn; k++)
            if (b[i + 2 * k] != (unsigned char)w[k] || b[i + 2 * k + 1] != 0)
                break;
        if (k == wn)
            return 1;
    }
    return 0;
}

/* A zip file: what its entries' names (plain text in each local header)
 * say it is, or NULL while none has told. */
static const char *zip_kind(const unsigned char *b, size_t n, int *sheet)
{
    static const char ods[] = "application/vnd.oasis.opendocument.spreadsheet";
    static const char odf[] = "application/vnd.oasis.opendocument.";
    size_t i;

    for (i = 0; i + 30 <= n; i++) {
        const unsigned char *name = b + i + 30, *data;
        size_t nl, xl;

        if (memcmp(b + i, "PK\x03\x04", 4) != 0)
            continue;
        nl = (size_t)b[i + 26] | (size_t)b[i + 27] << 8;
        xl = (size_t)b[i + 28] | (size_t)b[i + 29] << 8;
        if (i + 30 + nl > n)
            break;
        if (begins(name, nl, "xl/", 3)) {
            *sheet = 1;
            return "an Excel workbook (.xlsx)";
        }
        if (begins(name, nl, "word/", 5))
            return "a Word document (.docx)";
        if (begins(name, nl, "ppt/", 4))
            return "a PowerPoint presentation (.pptx)";
        /* OpenDocument: a first entry "mimetype", stored, says it all. */
        data = name + nl + xl;
        if (nl == 8 && memcmp(name, "mimetype", 8) == 0) {
            size_t at = (size_t)(data - b), left = at < n ? n - at : 0;
            if (left < sizeof(ods) - 1)
                return NULL; /* not all there yet */
            if (begins(data, left, ods, sizeof(ods) - 1)) {
                *sheet = 1;
                return "an OpenDocument spreadsheet (.ods)";
            }
            if (begins(data, left, odf, sizeof(odf) - 1))
                return "an OpenDocument file";
        }
    }
    return NULL;
}

/* An OLE2 compound file (Office 97-2003): its directory names the
 * streams, when it is among the bytes seen. */
static const char *ole2_kind(const unsigned char *b, size_t n, int *sheet)
{
    if (has_utf16(b, n, "Workbook") || has_utf16(b, n, "Book")) {
        *sheet = 1;
        return "an Excel 97-2003 workbook (.xls)";
    }
    if (has_utf16(b, n, "EncryptedPackage")) {
        *sheet = 1;
        return "a password-protected Office file";
    }
    if (has_utf16(b, n, "WordDocument"))
        return "a Word 97-2003 document (.doc)";
    return NULL;
}

int cts_reader_sniff(const char *file, const void *data, size_t len, int at_eof,
                     struct cts_error *err)
{
    static const struct {
        const char *sig;
        size_t n;
        const char *what; /* NULL: looked into */
    } sigs[] = {
        {"PK\x03\x04", 4, NULL},
        {"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8, NULL},
        {"\x1F\x8B", 2, "a gzip-compressed file"},
        {"%PDF-", 5, "a PDF document"},
        {"\x89PNG\r\n\x1A\n", 8, "a PNG image"},
        {"\xFF\xD8\xFF", 3, "a JPEG image"},
        {"GIF8", 4, "a GIF image"},
        {"7z\xBC\xAF\x27\x1C", 6, "a 7-Zip archive"},
        {"Rar!\x1A\x07", 6, "a RAR archive"},
    };
    const unsigned char *b = data;
    const char *what;
    size_t i, k;
    int sheet = 0;

    if (len == 0)
        return at_eof ? 0 : 1;
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        k = len < sigs[i].n ? len : sigs[i].n;
        if (memcmp(b, sigs[i].sig, k) != 0)
            continue;
        if (k < sigs[i].n) {
            if (!at_eof)
                return 1; /* could still be this one */
            continue;
        }
        what = sigs[i].what;
        if (i == 0)
            what = zip_kind(b, len, &sheet);
        else if (i == 1)
            what = ole2_kind(b, len, &sheet);
        if (what == NULL && !at_eof && len < SNIFF_HOLD)
            return 1;
        if (what == NULL && i == 0)
            what = "a ZIP archive";
        else if (what == NULL) {
            /* Most often an .xls whose directory lies further on. */
            sheet = 1;
            what = "a Microsoft Office 97-2003 file (.xls or .doc)";
        }
        if (!sheet)
            return cts_error_setx(err, CTS_EDATA, CTS_EX_DATAERR,
                                  "%s: not a CSV text file (%s)", file, what);
        return cts_error_setx(
            err, CTS_EDATA, CTS_EX_DATAERR,
            "%s: %s, not a CSV text file: open it and save it as CSV "
            "(Excel: File \xE2\x86\x92 Save As \xE2\x86\x92 CSV UTF-8; "
            "LibreOffice: File \xE2\x86\x92 Save As \xE2\x86\x92 Text CSV; "
            "Google Sheets: File \xE2\x86\x92 Download \xE2\x86\x92 "
            "Comma Separated Values), then import the .csv",
            file, what);
    }
    return 0;
}

/* Stage 1: settle the BOM once 3 bytes (or EOF) are there. */
static int start(struct cts_reader *r, const unsigned char *s, size_t len,
                 int at_eof, struct cts_error *err)
{
    const unsigned char *b;
    size_t n, skip = 0;
    int rc;

    if (cts_buf_append(&r->pre, s, len) != 0)
        abort();
    n = r->pre.len;
    b = (const unsigned char *)r->pre.data;
    /* A workbook or other binary file is refused before any row. */
    rc = cts_reader_sniff(r->file, b, n, at_eof, err);
    if (rc == 1)
        return 0; /* hold the bytes until it can tell */
    if (rc != 0) {
        r->stopped = rc;
        r->fatal_told = 1;
        return rc;
    }
    if (n < 3 && !at_eof) {
        /* Undecided only while the bytes so far are a BOM prefix. */
        static const unsigned char u8bom[3] = {0xEF, 0xBB, 0xBF};
        if (n == 0 || memcmp(b, u8bom, n) == 0 ||
            (n == 1 && (b[0] == 0xFF || b[0] == 0xFE)))
            return 0;
    }
    if (n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) {
        r->bom = 1;
        skip = 3;
    } else if (n >= 2 && b[0] == 0xFF && b[1] == 0xFE) {
        r->u16 = U16_LE;
        r->cur = CTS_ENC_UTF8;
        skip = 2;
    } else if (n >= 2 && b[0] == 0xFE && b[1] == 0xFF) {
        r->u16 = U16_BE;
        r->cur = CTS_ENC_UTF8;
        skip = 2;
    }
    /* Move the held bytes out of pre: the next stages reuse it. */
    {
        struct cts_buf held = r->pre;
        cts_buf_init(&r->pre, 0);
        r->stage = r->delim != 0 ? ST_STREAM : ST_SNIFF;
        if (r->stage == ST_STREAM)
            csv_set_delim(&r->p, (unsigned char)r->delim);
        rc = push(r, (const unsigned char *)held.data + skip, n - skip, at_eof,
                  err);
        cts_buf_free(&held);
    }
    return rc;
}

int cts_reader_feed(struct cts_reader *r, const void *data, size_t len,
                    struct cts_error *err)
{
    if (r->stopped != 0)
        return r->stopped;
    if (r->stage == ST_DONE)
        return cts_error_set(err, CTS_ECSV, "%s: fed after finish", r->file);
    if (r->stage == ST_START)
        return start(r, data, len, 0, err);
    return push(r, data, len, 0, err);
}

int cts_reader_finish(struct cts_reader *r, struct cts_error *err)
{
    int rc;

    if (r->stopped != 0)
        return r->stopped;
    if (r->stage == ST_DONE)
        return 0;
    if (r->stage == ST_START)
        rc = start(r, NULL, 0, 1, err);
    else
        rc = push(r, NULL, 0, 1, err);
    if (rc != 0)
        return rc;
    if (r->stage == ST_SNIFF) {
        /* Not reached normally (take() decides at EOF); be safe. */
        if (r->delim == 0)
            r->delim = ',';
        rc = start_stream(r, err);
        if (rc != 0)
            return rc;
    }
    r->unterminated = r->p.pstate == LIBCSV_FIELD_BEGUN && r->p.quoted;
    if (csv_fini(&r->p, cb_field, cb_record, r) != 0) {
        int e = csv_error(&r->p);
        rc = e == CSV_ENOMEM ? UV_ENOMEM : CTS_ECSV;
        return cts_error_setx(err, rc, CTS_EX_DATAERR, "%s: %s", r->file,
                              csv_strerror(e));
    }
    r->stage = ST_DONE;
    if (r->stopped != 0)
        return stopped_rc(r, err);
    if (!r->header_seen)
        return cts_error_setx(err, CTS_EDATA, CTS_EX_DATAERR,
                              "%s: no header row (the file is empty)", r->file);
    if (r->unterminated && r->rows == 0)
        return cts_error_setx(err, CTS_ECSV, CTS_EX_DATAERR,
                              "%s: unterminated quoted field in the header "
                              "row (line %ld)",
                              r->file, r->rec_line);
    if (r->unterminated) {
        rc = cts_error_setx(err, CTS_ECSV, CTS_EX_DATAERR,
                            "%s: row %ld (line %ld): unterminated quoted "
                            "field at end of file; the %ld rows before it "
                            "were read",
                            r->file, r->rows, r->rec_line, r->rows - 1);
        if (err != NULL)
            err->row = r->rows;
        return rc;
    }
    return 0;
}
