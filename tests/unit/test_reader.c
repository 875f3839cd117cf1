/*
 * test_reader.c — the CSV reader, fed at every chunk size, and the whole
 * tests/csv corpus checked at unit level (reader + mapper + the duplicate
 * rule: a repeated email is `duplicate`, the first row wins), so the
 * corpus is asserted even without the pipeline.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_encoding.h"
#include "cts_mapper.h"
#include "cts_reader.h"
#include "cts_util.h"

/* ---- collecting rows into one comparable string ---- */

struct collect {
    struct cts_buf out;
    long stop_at; /* stop the reader at this row (0 = never) */
    struct cts_reader *r;
};

/* Columns the next reads ignore once their header is seen (as the intake
 * does with the columns no field reads). */
static const unsigned char *g_ignore;
static size_t g_nignore;

static int on_collect(const struct cts_row *row, void *arg)
{
    struct collect *c = arg;
    size_t i;

    if (row->row == 0 && g_nignore > 0)
        cts_reader_ignore_columns(c->r, g_ignore, g_nignore);
    cts_buf_appendf(&c->out, "%ld@%ld", row->row, row->line);
    if (row->problem != NULL)
        cts_buf_appendf(&c->out, "!%s", row->problem);
    for (i = 0; i < row->nfields; i++) {
        /* Fields are NUL-terminated at their stated length. */
        assert_int_equal(row->fields[i][row->lens[i]], '\0');
        cts_buf_putc(&c->out, '|');
        cts_buf_append(&c->out, row->fields[i], row->lens[i]);
    }
    cts_buf_putc(&c->out, '\n');
    if (c->stop_at != 0 && row->row == c->stop_at)
        return 42;
    return 0;
}

/* Feed data in chunks of `chunk` bytes; returns the rows as text and the
 * final code, encoding and delimiter. */
static char *read_all(const void *data, size_t len, size_t chunk,
                      const struct cts_reader_opts *o, int *rc,
                      struct cts_error *err, char *enc, size_t enclen,
                      int *delim)
{
    struct collect c;
    struct cts_reader *r;
    size_t off;

    memset(&c, 0, sizeof(c));
    cts_buf_init(&c.out, 0);
    cts_buf_appendf(&c.out, "%s", "");
    r = cts_reader_new(o, on_collect, &c);
    c.r = r;
    *rc = 0;
    for (off = 0; off < len && *rc == 0; off += chunk)
        *rc = cts_reader_feed(r, (const char *)data + off,
                              len - off < chunk ? len - off : chunk, err);
    if (*rc == 0)
        *rc = cts_reader_finish(r, err);
    if (enc != NULL)
        snprintf(enc, enclen, "%s", cts_reader_encoding(r));
    if (delim != NULL)
        *delim = cts_reader_delimiter(r);
    cts_reader_free(r);
    return cts_buf_detach(&c.out);
}

static const struct cts_reader_opts auto_opts = {"t.csv", 0, CTS_ENC_AUTO, 0};

/* The libcsv test idea: every chunk size from 1 byte up gives the same
 * rows, the same result and the same encoding as one big feed. */
static void check_every_chunk(const char *data, size_t len,
                              const struct cts_reader_opts *o,
                              const char *expect)
{
    struct cts_error err;
    char enc0[96], enc[96];
    int rc0, rc, d0, d;
    char *whole, *got;
    size_t chunk;

    memset(&err, 0, sizeof(err));
    whole =
        read_all(data, len, len + 1, o, &rc0, &err, enc0, sizeof(enc0), &d0);
    if (expect != NULL && strcmp(whole, expect) != 0) {
        fprintf(stderr, "expected:\n%s\ngot:\n%s\n", expect, whole);
        fail();
    }
    for (chunk = 1; chunk <= len; chunk++) {
        memset(&err, 0, sizeof(err));
        got = read_all(data, len, chunk, o, &rc, &err, enc, sizeof(enc), &d);
        if (strcmp(got, whole) != 0 || rc != rc0 || strcmp(enc, enc0) != 0 ||
            d != d0) {
            fprintf(stderr,
                    "chunk %zu differs:\n%s\n(%s) vs whole:\n%s\n(%s)\n", chunk,
                    got, enc, whole, enc0);
            fail();
        }
        free(got);
    }
    free(whole);
}

static void test_basic_rows(void **state)
{
    static const char in[] =
        "email,name\r\na@b.co,\"x, y\"\r\n\r\nc@d.co,\"multi\nline\"\n";
    (void)state;
    check_every_chunk(in, sizeof(in) - 1, &auto_opts,
                      "0@1|email|name\n1@2|a@b.co|x, y\n"
                      "2@4|c@d.co|multi\nline\n");
}

static void test_bom_and_delimiters(void **state)
{
    static const char bom[] = "\xEF\xBB\xBF"
                              "e;n\nx@y.z;1\n";
    static const char tab[] = "e\tn, m\tz\nx@y.z\t 1 \t\n";
    static const char pipe[] = "\"a|b\"|c,d|e\n1|2|3\n";
    static const char one[] = "email\nq@r.st\n";
    (void)state;
    check_every_chunk(bom, sizeof(bom) - 1, &auto_opts,
                      "0@1|e|n\n1@2|x@y.z|1\n");
    /* With TAB as the delimiter a tab is not trimmed as padding, spaces
     * still are. */
    check_every_chunk(tab, sizeof(tab) - 1, &auto_opts,
                      "0@1|e|n, m|z\n1@2|x@y.z|1|\n");
    check_every_chunk(pipe, sizeof(pipe) - 1, &auto_opts,
                      "0@1|a|b|c,d|e\n1@2|1|2|3\n");
    check_every_chunk(one, sizeof(one) - 1, &auto_opts,
                      "0@1|email\n1@2|q@r.st\n");
}

static void test_explicit_delimiter_wins(void **state)
{
    static const char in[] = "a;b,c,d\n1;2,3,4\n";
    struct cts_reader_opts o = auto_opts;
    (void)state;
    o.delimiter = ';';
    check_every_chunk(in, sizeof(in) - 1, &o, "0@1|a|b,c,d\n1@2|1|2,3,4\n");
    check_every_chunk(in, sizeof(in) - 1, &auto_opts,
                      "0@1|a;b|c|d\n1@2|1;2|3|4\n");
}

static void test_line_endings(void **state)
{
    static const char in[] = "h\r\n1\n2\r3\r\n\r\n\r4\n\"5\r\n5\"\r6";
    (void)state;
    check_every_chunk(in, sizeof(in) - 1, &auto_opts,
                      "0@1|h\n1@2|1\n2@3|2\n3@4|3\n4@7|4\n5@8|5\r\n5\n"
                      "6@10|6\n");
}

static void test_field_counts(void **state)
{
    static const char in[] = "a,b,\n1,2\n1,2,\n1,2,,\n1\n1,2,3\n";
    (void)state;
    check_every_chunk(in, sizeof(in) - 1, &auto_opts,
                      "0@1|a|b|\n1@2|1|2\n2@3|1|2|\n3@4|1|2||\n"
                      "4@5!expected 2 fields, found 1|1\n"
                      "5@6|1|2|3\n");
}

static void test_extra_nonempty_field(void **state)
{
    static const char in[] = "a,b\n1,2,3\n";
    (void)state;
    check_every_chunk(in, sizeof(in) - 1, &auto_opts,
                      "0@1|a|b\n1@2!expected 2 fields, found 3|1|2|3\n");
}

static void test_nul_and_huge(void **state)
{
    static const char nul[] = "a,b\nx,y\0z\nq,r\n";
    struct cts_reader_opts o = auto_opts;
    struct cts_buf big;
    size_t i;
    (void)state;
    check_every_chunk(nul, sizeof(nul) - 1, &auto_opts,
                      "0@1|a|b\n1@2!NUL byte in column \"b\"|x|y\0z\n"
                      "2@3|q|r\n");
    /* A small cap so that every chunk size is cheap to try. */
    o.max_field = 8;
    cts_buf_init(&big, 0);
    cts_buf_appendf(&big, "a,b\n1,\"");
    for (i = 0; i < 40; i++)
        cts_buf_appendf(&big, "%c", i == 20 ? '\n' : 'x');
    cts_buf_appendf(&big, "\"  \n2,123456789  \n3,\"12345678\"\n4,5\n");
    /* A row whose only content is cut is still a row, not a blank. */
    cts_buf_appendf(&big, ",\"123456789\"\n");
    check_every_chunk(big.data, big.len, &o,
                      "0@1|a|b\n1@2!column \"b\" is longer than 8 bytes|1|\n"
                      "2@4!column \"b\" is longer than 8 bytes|2|\n"
                      "3@5|3|12345678\n4@6|4|5\n"
                      "5@7!column \"b\" is longer than 8 bytes||\n");
    cts_buf_free(&big);
}

/* Problems name a column by its header; by its number when it has none. */
static void test_column_names(void **state)
{
    struct cts_reader_opts o = auto_opts;
    static const char in[] = "email,Notes,\n"
                             "a@b.co,123456789,\n"
                             "c@d.co,x,123456789\n";
    static const char nul[] = "email,Notes\na@b.co,x\0y\n";
    static const char hdr[] = "A header written as a whole sentence about "
                              "what the column holds";
    struct cts_buf b, want;
    size_t i;
    (void)state;
    o.max_field = 8;
    check_every_chunk(in, sizeof(in) - 1, &o,
                      "0@1|email|Notes|\n"
                      "1@2!column \"Notes\" is longer than 8 bytes|a@b.co||\n"
                      "2@3!column 3 is longer than 8 bytes|c@d.co|x|\n");
    check_every_chunk(nul, sizeof(nul) - 1, &auto_opts,
                      "0@1|email|Notes\n"
                      "1@2!NUL byte in column \"Notes\"|a@b.co|x\0y\n");
    /* A long header is cut at 60 bytes; sizes read as people write them. */
    o.max_field = 1000;
    cts_buf_init(&b, 0);
    cts_buf_init(&want, 0);
    cts_buf_appendf(&b, "email,%s\na@b.co,", hdr);
    for (i = 0; i < 1001; i++)
        cts_buf_putc(&b, 'x');
    cts_buf_putc(&b, '\n');
    cts_buf_appendf(&want,
                    "0@1|email|%s\n1@2!column \"A header written as a whole "
                    "sentence about what the column h...\" is longer than "
                    "1,000 bytes|a@b.co|\n",
                    hdr);
    check_every_chunk(b.data, b.len, &o, want.data);
    cts_buf_free(&b);
    cts_buf_free(&want);
}

/* A column nobody reads: a huge value or a NUL byte there is dropped, not
 * a problem; the same in a read column still is. */
static void test_ignored_columns(void **state)
{
    static const unsigned char ign[] = {0, 1};
    struct cts_reader_opts o = auto_opts;
    struct cts_buf in;
    size_t i;
    (void)state;
    o.max_field = 8;
    cts_buf_init(&in, 0);
    cts_buf_appendf(&in, "email,notes,name\na@b.co,\"");
    for (i = 0; i < 100; i++)
        cts_buf_appendf(&in, "%c", i == 50 ? '\n' : 'n');
    cts_buf_appendf(&in, "\",Ann\nc@d.co,x");
    cts_buf_putc(&in, 0);
    cts_buf_appendf(&in, "y,Cy\ne@f.co,ok,123456789\n,");
    /* A row whose only value was dropped is still a row, not a blank. */
    for (i = 0; i < 20; i++)
        cts_buf_putc(&in, 'z');
    cts_buf_appendf(&in, ",\n");
    g_ignore = ign;
    g_nignore = sizeof(ign);
    check_every_chunk(in.data, in.len, &o,
                      "0@1|email|notes|name\n"
                      "1@2|a@b.co||Ann\n"
                      "2@4|c@d.co||Cy\n"
                      "3@5!column \"name\" is longer than 8 bytes|e@f.co|ok|\n"
                      "4@6|||\n");
    g_ignore = NULL;
    g_nignore = 0;
    cts_buf_free(&in);
}

/* Every chunk size: the input is refused before any row, with err saying
 * what it is. */
static void check_refused(const void *data, size_t len, const char *what)
{
    struct cts_error err;
    size_t chunk;
    char *got;
    int rc;

    for (chunk = 1; chunk <= len + 1; chunk++) {
        memset(&err, 0, sizeof(err));
        got = read_all(data, len, chunk, &auto_opts, &rc, &err, NULL, 0, NULL);
        if (rc != CTS_EDATA || err.exit_code != 65 || got[0] != '\0' ||
            strstr(err.msg, what) == NULL)
            fail_msg("chunk %zu: rc %d, rows \"%s\", message \"%s\" lacks "
                     "\"%s\"",
                     chunk, rc, got, err.msg, what);
        free(got);
    }
}

/* A zip local file header for an entry name, stored, with its data. */
static void zip_entry(struct cts_buf *b, const char *name, const char *data)
{
    unsigned char h[30];
    size_t nl = strlen(name), dl = strlen(data);

    memset(h, 0, sizeof(h));
    memcpy(h, "PK\x03\x04", 4);
    h[4] = 20;
    h[18] = h[22] = (unsigned char)dl; /* sizes (< 256 here) */
    h[26] = (unsigned char)nl;
    cts_buf_append(b, h, sizeof(h));
    cts_buf_append(b, name, nl);
    cts_buf_append(b, data, dl);
}

static void test_workbooks_refused(void **state)
{
    static const char save_as[] =
        "open it and save it as CSV (Excel: File \xE2\x86\x92 Save As "
        "\xE2\x86\x92 CSV UTF-8; LibreOffice: File \xE2\x86\x92 Save As "
        "\xE2\x86\x92 Text CSV; Google Sheets: File \xE2\x86\x92 Download";
    struct cts_buf b;
    struct cts_error err;
    unsigned char ole[1024];
    size_t i;
    (void)state;

    cts_buf_init(&b, 0);
    zip_entry(&b, "[Content_Types].xml", "<Types/>");
    zip_entry(&b, "_rels/.rels", "<Relationships/>");
    zip_entry(&b, "xl/workbook.xml", "<workbook/>");
    check_refused(b.data, b.len,
                  "t.csv: an Excel workbook (.xlsx), not a CSV text file");
    check_refused(b.data, b.len, save_as);
    b.len = 0;
    zip_entry(&b, "mimetype", "application/vnd.oasis.opendocument.spreadsheet");
    zip_entry(&b, "content.xml", "<office:document-content/>");
    check_refused(b.data, b.len,
                  "an OpenDocument spreadsheet (.ods), not a "
                  "CSV text file: open it and save it as CSV");
    b.len = 0;
    zip_entry(&b, "word/document.xml", "<w:document/>");
    check_refused(b.data, b.len,
                  "t.csv: not a CSV text file (a Word document (.docx))");
    b.len = 0;
    zip_entry(&b, "photo.jpg", "jpeg");
    check_refused(b.data, b.len, "t.csv: not a CSV text file (a ZIP archive)");
    cts_buf_free(&b);
    /* OLE2: the header, then a directory entry "Workbook" in UTF-16LE. */
    memset(ole, 0, sizeof(ole));
    memcpy(ole, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8);
    for (i = 0; i < 8; i++)
        ole[512 + 2 * i] = (unsigned char)"Workbook"[i];
    check_refused(ole, sizeof(ole),
                  "an Excel 97-2003 workbook (.xls), not a "
                  "CSV text file: open it and save it as");
    /* Other binaries: what they are, and no spreadsheet advice. */
    check_refused("%PDF-1.7\n%\xE2\xE3\n", 12,
                  "t.csv: not a CSV text file (a PDF document)");
    check_refused("\x1F\x8B\x08\x00\x00\x00", 6, "(a gzip-compressed file)");
    check_refused("\x7F"
                  "ELF\x02\x01\x01\x00\x00\x00\n",
                  11, "not a CSV text file (its first line holds NUL bytes");
    check_refused("e\0m\0a\0i\0l\0\n\0", 12,
                  "UTF-16 text without a byte-order");
    /* Text that merely starts like a signature is read as text. */
    check_every_chunk("PK\nx\n", 5, &auto_opts, "0@1|PK\n1@2|x\n");
    check_every_chunk("P", 1, &auto_opts, "0@1|P\n");
    assert_int_equal(cts_reader_sniff("t.csv", "P", 1, 0, &err), 1);
    assert_int_equal(cts_reader_sniff("t.csv", "email\n", 6, 0, &err), 0);
    assert_int_equal(cts_reader_sniff("t.csv", "PK\x03\x04", 4, 0, &err), 1);
    assert_int_equal(cts_reader_sniff("t.csv", "PK\x03\x04", 4, 1, &err),
                     CTS_EDATA);
}

static void test_record_caps(void **state)
{
    struct cts_reader_opts o = auto_opts;
    struct cts_buf in;
    struct cts_error err;
    char *got;
    int rc;
    size_t i;
    (void)state;
    /* 16 × max_field bytes per record: with max_field 4, 64 bytes. */
    o.max_field = 4;
    cts_buf_init(&in, 0);
    cts_buf_appendf(&in, "a,b\n");
    for (i = 0; i < 30; i++)
        cts_buf_appendf(&in, "%s1234", i > 0 ? "," : "");
    cts_buf_appendf(&in, "\nx,y\n");
    check_every_chunk(in.data, in.len, &o, NULL);
    got = read_all(in.data, in.len, 7, &o, &rc, &err, NULL, 0, NULL);
    assert_non_null(strstr(got, "1@2!row longer than 64 bytes|1234|"));
    assert_non_null(strstr(got, "2@3|x|y\n"));
    free(got);
    /* More than 16384 fields: the row says so and the next row is fine. */
    cts_buf_reset(&in);
    cts_buf_appendf(&in, "a,b\n");
    for (i = 0; i < 20000; i++)
        cts_buf_appendf(&in, ",");
    cts_buf_appendf(&in, "q\nx,y\n");
    got = read_all(in.data, in.len, 4096, &auto_opts, &rc, &err, NULL, 0, NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(got, "1@2!more than 16384 fields"));
    assert_non_null(strstr(got, "2@3|x|y\n"));
    free(got);
    cts_buf_free(&in);
}

static void test_unterminated(void **state)
{
    static const char in[] = "e,n\na@b.c,1\nd@e.f,\"open\ng@h.i,2\n";
    struct cts_error err;
    int rc;
    char *got;
    (void)state;
    check_every_chunk(in, sizeof(in) - 1, &auto_opts,
                      "0@1|e|n\n1@2|a@b.c|1\n"
                      "2@3!unterminated quoted field (record opened on line "
                      "3)|d@e.f|open\ng@h.i,2\n\n");
    memset(&err, 0, sizeof(err));
    got = read_all(in, sizeof(in) - 1, 5, &auto_opts, &rc, &err, NULL, 0, NULL);
    assert_int_equal(rc, CTS_ECSV);
    assert_int_equal(err.exit_code, CTS_EX_DATAERR);
    assert_int_equal(err.row, 2);
    assert_non_null(strstr(err.msg, "unterminated quoted field"));
    free(got);
}

static void test_empty_inputs(void **state)
{
    static const char *const ins[] = {"", "\xEF\xBB\xBF", "\n\n\r\n", " , ,\n",
                                      "\xFF\xFE"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        struct cts_error err;
        int rc;
        char *got;
        memset(&err, 0, sizeof(err));
        got = read_all(ins[i], strlen(ins[i]), 1, &auto_opts, &rc, &err, NULL,
                       0, NULL);
        assert_string_equal(got, "");
        assert_int_equal(rc, CTS_EDATA);
        assert_int_equal(err.exit_code, CTS_EX_DATAERR);
        assert_non_null(strstr(err.msg, "no header row"));
        free(got);
    }
}

static void test_encodings(void **state)
{
    static const char cp[] = "n\nJos\xE9 \x93q\x94 \x80\x81\n";
    static const char u8[] = "n\nJos\xC3\xA9\n";
    static const char late[] = "n\nplain\nJos\xE9\n";
    static const char late_mixed[] = "n\nJos\xC3\xA9\nJos\xE9\n";
    struct cts_reader_opts o = auto_opts;
    struct cts_error err;
    char enc[96];
    int rc;
    char *got;
    (void)state;
    check_every_chunk(cp, sizeof(cp) - 1, &auto_opts,
                      "0@1|n\n1@2|Jos\xC3\xA9 \xE2\x80\x9Cq\xE2\x80\x9D "
                      "\xE2\x82\xAC\xC2\x81\n");
    got = read_all(cp, sizeof(cp) - 1, 100, &auto_opts, &rc, &err, enc,
                   sizeof(enc), NULL);
    assert_string_equal(enc, "cp1252 (converted)");
    free(got);
    check_every_chunk(u8, sizeof(u8) - 1, &auto_opts,
                      "0@1|n\n1@2|Jos\xC3\xA9\n");
    /* Pure ASCII before the first bad byte: the whole input is cp1252,
     * whatever the chunking. */
    check_every_chunk(late, sizeof(late) - 1, &auto_opts,
                      "0@1|n\n1@2|plain\n2@3|Jos\xC3\xA9\n");
    /* Real UTF-8 then a cp1252 byte in a later chunk: the switch is
     * named in the encoding description. */
    got = read_all(late_mixed, sizeof(late_mixed) - 1, 9, &auto_opts, &rc, &err,
                   enc, sizeof(enc), NULL);
    assert_string_equal(got, "0@1|n\n1@2|Jos\xC3\xA9\n2@3|Jos\xC3\xA9\n");
    assert_string_equal(enc, "utf-8, then cp1252 from row 2 (converted)");
    free(got);
    /* latin1: 0x80-0x9F are the C1 controls, not cp1252 punctuation. */
    o.enc = CTS_ENC_LATIN1;
    check_every_chunk("n\n\x80\xE9\n", 5, &o, "0@1|n\n1@2|\xC2\x80\xC3\xA9\n");
    /* strict utf-8: the row says what is wrong, the text stays readable. */
    o.enc = CTS_ENC_UTF8;
    check_every_chunk("n\nJos\xE9\n", 7, &o,
                      "0@1|n\n1@2!invalid UTF-8 in column \"n\" (byte 0xE9); "
                      "try "
                      "--encoding cp1252|Jos\xC3\xA9\n");
}

static void test_utf16(void **state)
{
    /* "e\tn\r\nx\t\xF0\x9F\x98\x80\r\n" as UTF-16LE and BE with BOMs. */
    static const char le[] = "\xFF\xFE"
                             "e\0\t\0n\0\r\0\n\0x\0\t\0"
                             "\x3D\xD8\x00\xDE\r\0\n\0";
    static const char be[] = "\xFE\xFF"
                             "\0e\0\t\0n\0\r\0\n\0x\0\t"
                             "\xD8\x3D\xDE\x00\0\r\0\n";
    char enc[96];
    int rc;
    struct cts_error err;
    char *got;
    (void)state;
    check_every_chunk(le, sizeof(le) - 1, &auto_opts,
                      "0@1|e|n\n1@2|x|\xF0\x9F\x98\x80\n");
    check_every_chunk(be, sizeof(be) - 1, &auto_opts,
                      "0@1|e|n\n1@2|x|\xF0\x9F\x98\x80\n");
    got = read_all(le, sizeof(le) - 1, 3, &auto_opts, &rc, &err, enc,
                   sizeof(enc), NULL);
    assert_string_equal(enc, "utf-16le (converted)");
    free(got);
}

static void test_callback_stops(void **state)
{
    static const char in[] = "h\n1\n2\n3\n";
    struct collect c;
    struct cts_reader *r;
    struct cts_error err;
    (void)state;
    memset(&c, 0, sizeof(c));
    cts_buf_init(&c.out, 0);
    c.stop_at = 2;
    r = cts_reader_new(&auto_opts, on_collect, &c);
    assert_int_equal(cts_reader_feed(r, in, sizeof(in) - 1, &err), 42);
    assert_int_equal(cts_reader_feed(r, "4\n", 2, &err), 42);
    assert_int_equal(cts_reader_finish(r, &err), 42);
    assert_string_equal(c.out.data, "0@1|h\n1@2|1\n2@3|2\n");
    assert_int_equal(cts_reader_rows(r), 2);
    cts_reader_free(r);
    cts_buf_free(&c.out);
}

/* ---- the corpus ---- */

struct fieldcheck {
    long row;
    char name[64];
    char value[256];
};

struct expect {
    char args[512];
    int exit_code;
    char error[512];
    char encoding[96];
    long lines[32];
    size_t nlines;
    struct fieldcheck fields[16];
    size_t nfields;
    char rows[64][4][300];
    size_t nrows;
};

/* Bounded copy that never warns about truncation (the corpus lines are
 * short; a cut would show as a mismatch anyway). */
static void copy(char *dst, size_t n, const char *src)
{
    size_t k = strlen(src);

    if (k >= n)
        k = n - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
}

/* Unescape \r \n \\ and \uXXXX (as UTF-8) in place. */
static void unescape(char *s)
{
    char *o = s;

    while (*s != '\0') {
        if (s[0] == '\\' && s[1] == 'r') {
            *o++ = '\r';
            s += 2;
        } else if (s[0] == '\\' && s[1] == 'n') {
            *o++ = '\n';
            s += 2;
        } else if (s[0] == '\\' && s[1] == 'u') {
            char hex[5];
            memcpy(hex, s + 2, 4);
            hex[4] = '\0';
            o += cts_utf8_encode((uint32_t)strtoul(hex, NULL, 16), o);
            s += 6;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
}

/* row,email,status,message — email may be quoted; message is the rest. */
static void split_row(const char *line, char out[4][300])
{
    const char *p = line;
    int f;

    for (f = 0; f < 4; f++) {
        size_t k = 0;
        if (f == 3) {
            copy(out[3], 300, p);
            break;
        }
        if (*p == '"') {
            p++;
            while (*p != '\0') {
                if (p[0] == '"' && p[1] == '"') {
                    out[f][k++] = '"';
                    p += 2;
                } else if (p[0] == '"') {
                    p++;
                    break;
                } else {
                    out[f][k++] = *p++;
                }
            }
        } else {
            while (*p != '\0' && *p != ',')
                out[f][k++] = *p++;
        }
        out[f][k] = '\0';
        if (*p == ',')
            p++;
    }
}

static void load_expect(const char *path, struct expect *e)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    assert_non_null(f);
    memset(e, 0, sizeof(*e));
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "# args: ", 8) == 0) {
            copy(e->args, sizeof(e->args), line + 8);
        } else if (strncmp(line, "# exit: ", 8) == 0) {
            e->exit_code = (int)strtol(line + 8, NULL, 10);
        } else if (strncmp(line, "# error: ", 9) == 0) {
            copy(e->error, sizeof(e->error), line + 9);
        } else if (strncmp(line, "# encoding: ", 12) == 0) {
            copy(e->encoding, sizeof(e->encoding), line + 12);
        } else if (strncmp(line, "# line: ", 8) == 0) {
            char *p = line + 8, *end;
            while (*p != '\0' && e->nlines < 32) {
                e->lines[e->nlines++] = strtol(p, &end, 10);
                p = end;
                while (*p == ' ')
                    p++;
            }
        } else if (strncmp(line, "# field: ", 9) == 0) {
            struct fieldcheck *fc = &e->fields[e->nfields++];
            char *p = line + 9, *sp = strchr(p, ' '), *eq;
            assert_non_null(sp);
            fc->row = strtol(p, NULL, 10);
            eq = strchr(sp + 1, '=');
            assert_non_null(eq);
            snprintf(fc->name, sizeof(fc->name), "%.*s", (int)(eq - sp - 1),
                     sp + 1);
            copy(fc->value, sizeof(fc->value), eq + 1);
            unescape(fc->value);
        } else if (line[0] != '#' && line[0] != '\0') {
            split_row(line, e->rows[e->nrows++]);
        }
    }
    fclose(f);
}

/* The run options a corpus file asks for, parsed from "# args:". */
struct runopts {
    struct cts_reader_opts ro;
    enum cts_api api;
    struct cts_map maps[8];
    size_t nmaps;
    char words[16][128];
};

static void parse_args(char *args, struct runopts *o)
{
    char *w[16];
    size_t n = 0, i;
    char *tok = args, *end;

    memset(o, 0, sizeof(*o));
    o->api = CTS_API_V3;
    o->ro.enc = CTS_ENC_AUTO;
    while (*tok != '\0' && n < 16) {
        end = strchr(tok, ' ');
        if (end != NULL)
            *end = '\0';
        copy(o->words[n], sizeof(o->words[n]), tok);
        w[n] = o->words[n];
        n++;
        if (end == NULL)
            break;
        tok = end + 1;
    }
    for (i = 0; i + 1 < n; i += 2) {
        if (strcmp(w[i], "--api") == 0) {
            o->api = strcmp(w[i + 1], "v2") == 0 ? CTS_API_V2 : CTS_API_V3;
        } else if (strcmp(w[i], "--encoding") == 0) {
            o->ro.enc = strcmp(w[i + 1], "latin1") == 0   ? CTS_ENC_LATIN1
                        : strcmp(w[i + 1], "cp1252") == 0 ? CTS_ENC_CP1252
                        : strcmp(w[i + 1], "utf-8") == 0  ? CTS_ENC_UTF8
                                                          : CTS_ENC_AUTO;
        } else if (strcmp(w[i], "--delimiter") == 0) {
            o->ro.delimiter = strcmp(w[i + 1], "tab") == 0 ? '\t' : w[i + 1][0];
        } else if (strcmp(w[i], "--map") == 0) {
            char *eq = strchr(w[i + 1], '=');
            assert_non_null(eq);
            *eq = '\0';
            o->maps[o->nmaps].field = w[i + 1];
            o->maps[o->nmaps].header = eq + 1;
            o->nmaps++;
        } else {
            fail_msg("unknown corpus arg %s", w[i]);
        }
    }
}

struct corpus_run {
    struct runopts *o;
    const char *file;
    struct cts_reader *r;
    struct cts_mapper *m;
    int exit_code;
    char error[600];
    char result[64][4][300];
    size_t nres;
    long lines[64];
    struct contact_copy {
        char *f[CTS_F__COUNT];
        char *cf[8][2];
        size_t ncf;
    } contacts[64];
    char *seen[64];
    long seen_row[64];
    size_t nseen;
};

static int on_corpus_row(const struct cts_row *row, void *arg)
{
    struct corpus_run *cr = arg;
    struct cts_error err;
    struct cts_contact c;
    size_t i, k;
    int rc;

    memset(&err, 0, sizeof(err));
    if (row->row == 0) {
        struct cts_mapper_opts mo = {cr->o->api, cr->o->maps, cr->o->nmaps,
                                     cr->file, 0};
        unsigned char ign[64];
        cr->m = cts_mapper_new(&mo, row, &err);
        if (cr->m == NULL) {
            cr->exit_code = err.exit_code;
            copy(cr->error, sizeof(cr->error), err.msg);
            return CTS_EDATA;
        }
        /* As the intake does: what no field reads cannot spoil a row. */
        for (i = 0; i < row->nfields && i < sizeof(ign); i++)
            ign[i] = !cts_mapper_column_used(cr->m, i);
        cts_reader_ignore_columns(cr->r, ign, i);
        return 0;
    }
    assert_true(row->row >= 1 && row->row <= 64);
    k = cr->nres++;
    assert_int_equal((long)k + 1, row->row);
    cr->lines[k] = row->line;
    memset(&c, 0, sizeof(c));
    rc = cts_mapper_map(cr->m, row, &c, &err);
    snprintf(cr->result[k][0], 300, "%ld", row->row);
    copy(cr->result[k][1], 300,
         c.f[CTS_F_EMAIL] != NULL ? c.f[CTS_F_EMAIL] : "");
    if (rc != 0) {
        snprintf(cr->result[k][2], 300, "invalid");
        copy(cr->result[k][3], 300, err.msg);
    } else {
        /* An email seen earlier in the run is a duplicate (the first wins). */
        snprintf(cr->result[k][2], 300, "dry-run");
        for (i = 0; i < cr->nseen; i++) {
            if (strcmp(cr->seen[i], c.f[CTS_F_EMAIL]) == 0) {
                snprintf(cr->result[k][2], 300, "duplicate");
                snprintf(cr->result[k][3], 300, "duplicate of row %ld",
                         cr->seen_row[i]);
            }
        }
        if (strcmp(cr->result[k][2], "dry-run") == 0) {
            cr->seen[cr->nseen] = cts_xstrdup(c.f[CTS_F_EMAIL]);
            cr->seen_row[cr->nseen++] = row->row;
        }
        for (i = 0; i < CTS_F__COUNT; i++)
            cr->contacts[k].f[i] = c.f[i] != NULL ? cts_xstrdup(c.f[i]) : NULL;
        for (i = 0; i < c.ncf && i < 8; i++) {
            cr->contacts[k].cf[i][0] = cts_xstrdup(c.cf[i].name);
            cr->contacts[k].cf[i][1] = cts_xstrdup(c.cf[i].value);
        }
        cr->contacts[k].ncf = c.ncf < 8 ? c.ncf : 8;
    }
    cts_contact_free(&c);
    return 0;
}

static void corpus_free(struct corpus_run *cr)
{
    size_t i, j;

    for (i = 0; i < 64; i++) {
        for (j = 0; j < CTS_F__COUNT; j++)
            free(cr->contacts[i].f[j]);
        for (j = 0; j < cr->contacts[i].ncf; j++) {
            free(cr->contacts[i].cf[j][0]);
            free(cr->contacts[i].cf[j][1]);
        }
    }
    for (i = 0; i < cr->nseen; i++)
        free(cr->seen[i]);
    cts_mapper_free(cr->m);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct cts_buf b;
    char tmp[4096];
    size_t n;

    assert_non_null(f);
    cts_buf_init(&b, 0);
    cts_buf_append(&b, "", 0);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        cts_buf_append(&b, tmp, n);
    fclose(f);
    *len = b.len;
    return cts_buf_detach(&b);
}

static const char *corpus_dir(void)
{
    const char *d = getenv("CTS_CSV_CORPUS");
    return d != NULL ? d : "tests/csv";
}

static int run_one(const char *dir, const char *name, size_t chunk)
{
    char path[1024], enc[96];
    struct expect *e = cts_xcalloc(1, sizeof(*e));
    struct corpus_run *cr = cts_xcalloc(1, sizeof(*cr));
    struct runopts o;
    struct cts_reader *r;
    struct cts_error err;
    enum cts_encoding detected;
    char *data;
    size_t len, off, i, j;
    int rc = 0, bad = 0;

    snprintf(path, sizeof(path), "%s/%s.expected", dir, name);
    load_expect(path, e);
    parse_args(e->args, &o);
    snprintf(path, sizeof(path), "%s/%s.csv", dir, name);
    o.ro.file = path;
    /* As the pipeline does for regular files in auto mode. */
    if (o.ro.enc == CTS_ENC_AUTO) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(cts_encoding_detect_file(path, &detected, &err), 0);
        o.ro.enc = detected;
    }
    data = slurp(path, &len);
    cr->o = &o;
    cr->file = path;
    memset(&err, 0, sizeof(err));
    r = cts_reader_new(&o.ro, on_corpus_row, cr);
    cr->r = r;
    for (off = 0; off < len && rc == 0; off += chunk)
        rc = cts_reader_feed(r, data + off,
                             len - off < chunk ? len - off : chunk, &err);
    if (rc == 0)
        rc = cts_reader_finish(r, &err);
    snprintf(enc, sizeof(enc), "%s", cts_reader_encoding(r));
    cts_reader_free(r);
    free(data);
    if (rc != 0 && cr->exit_code == 0) {
        cr->exit_code = err.exit_code;
        copy(cr->error, sizeof(cr->error), err.msg);
    }

#define MISMATCH(...)                                                          \
    do {                                                                       \
        fprintf(stderr, "corpus %s (chunk %zu): ", name, chunk);               \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        bad++;                                                                 \
    } while (0)

    if (cr->exit_code != e->exit_code)
        MISMATCH("exit %d, expected %d (%s)", cr->exit_code, e->exit_code,
                 cr->error);
    if (e->error[0] != '\0' && strstr(cr->error, e->error) == NULL)
        MISMATCH("error \"%s\" lacks \"%s\"", cr->error, e->error);
    if (e->encoding[0] != '\0' && strcmp(enc, e->encoding) != 0)
        MISMATCH("encoding \"%s\", expected \"%s\"", enc, e->encoding);
    if (cr->nres != e->nrows)
        MISMATCH("%zu rows, expected %zu", cr->nres, e->nrows);
    for (i = 0; i < cr->nres && i < e->nrows; i++) {
        for (j = 0; j < 3; j++)
            if (strcmp(cr->result[i][j], e->rows[i][j]) != 0)
                MISMATCH("row %zu column %zu: \"%s\", expected \"%s\"", i + 1,
                         j, cr->result[i][j], e->rows[i][j]);
        if (e->rows[i][3][0] != '\0' &&
            strstr(cr->result[i][3], e->rows[i][3]) == NULL)
            MISMATCH("row %zu message \"%s\" lacks \"%s\"", i + 1,
                     cr->result[i][3], e->rows[i][3]);
    }
    for (i = 0; i < e->nlines; i++)
        if (i < cr->nres && cr->lines[i] != e->lines[i])
            MISMATCH("row %zu on line %ld, expected %ld", i + 1, cr->lines[i],
                     e->lines[i]);
    for (i = 0; i < e->nfields; i++) {
        struct fieldcheck *fc = &e->fields[i];
        struct contact_copy *cc;
        const char *got = NULL;
        int f;
        if (fc->row < 1 || (size_t)fc->row > cr->nres) {
            MISMATCH("field check on missing row %ld", fc->row);
            continue;
        }
        cc = &cr->contacts[fc->row - 1];
        if (strncmp(fc->name, "cf:", 3) == 0) {
            for (j = 0; j < cc->ncf; j++)
                if (strcmp(cc->cf[j][0], fc->name + 3) == 0)
                    got = cc->cf[j][1];
        } else {
            for (f = 0; f < CTS_F__COUNT; f++)
                if (strcmp(cts_field_name((enum cts_field)f), fc->name) == 0)
                    got = cc->f[f];
        }
        if (strcmp(got != NULL ? got : "", fc->value) != 0)
            MISMATCH("row %ld %s = \"%s\", expected \"%s\"", fc->row, fc->name,
                     got != NULL ? got : "(null)", fc->value);
    }
#undef MISMATCH
    corpus_free(cr);
    free(cr);
    free(e);
    return bad;
}

static void test_corpus(void **state)
{
    const char *dir = corpus_dir();
    DIR *d = opendir(dir);
    struct dirent *de;
    static const size_t chunks[] = {1, 2, 3, 5, 64, 4096, 1 << 20};
    int files = 0, bad = 0;
    size_t c;
    (void)state;

    assert_non_null(d);
    /* Keep stderr quiet: the corpus warns on purpose. */
    cts_log_set_level(CTS_LOG_ERROR);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        char name[256];
        if (n < 5 || strcmp(de->d_name + n - 4, ".csv") != 0)
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)(n - 4), de->d_name);
        files++;
        for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
            bad += run_one(dir, name, chunks[c]);
        /* Small files: every chunk size from 1 byte up to the whole file
         * (libcsv's own test idea), so no boundary is left untried. */
        {
            char path[1024];
            size_t len, k;
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            free(slurp(path, &len));
            for (k = 4; len <= 4096 && k <= len && bad == 0; k++)
                bad += run_one(dir, name, k);
        }
    }
    closedir(d);
    cts_log_set_level(CTS_LOG_WARN);
    assert_true(files >= 25);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_rows),
        cmocka_unit_test(test_bom_and_delimiters),
        cmocka_unit_test(test_explicit_delimiter_wins),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_field_counts),
        cmocka_unit_test(test_extra_nonempty_field),
        cmocka_unit_test(test_nul_and_huge),
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_ignored_columns),
        cmocka_unit_test(test_workbooks_refused),
        cmocka_unit_test(test_record_caps),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_utf16),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
