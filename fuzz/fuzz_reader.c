/*
 * fuzz_reader.c — libFuzzer target: CSV reader + mapper on arbitrary bytes.
 *
 * Input layout: byte 0 picks the chunk size the data is fed in (so chunk
 * boundaries land everywhere, as in libcsv's own tests), byte 1 picks the
 * delimiter, encoding, API generation and field cap; the rest is the file.
 * Every row goes through the mapper (built from the header) and every
 * field through the pure helpers, so their invariants are checked too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cts_email.h"
#include "cts_encoding.h"
#include "cts_mapper.h"
#include "cts_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
    enum cts_api api;
    struct cts_mapper *m;
    long rows;
};

static void check_utf8(const char *s, size_t n)
{
    /* The reader promises UTF-8, NUL-terminated, with the stated length. */
    if (s[n] != '\0' || cts_utf8_valid_prefix(s, n, NULL) != n)
        abort();
}

static int on_row(const struct cts_row *row, void *arg)
{
    struct fz *fz = arg;
    struct cts_error err;
    size_t i;

    for (i = 0; i < row->nfields; i++) {
        char *out = NULL;
        const char *why = NULL;
        uint32_t bad;

        check_utf8(row->fields[i], row->lens[i]);
        if (cts_email_normalize(row->fields[i], &out, &why) == 0) {
            /* Normalising twice changes nothing. */
            char *again = NULL;
            if (cts_email_normalize(out, &again, &why) != 0 ||
                strcmp(out, again) != 0)
                abort();
            free(again);
        } else if (why == NULL || out != NULL) {
            abort();
        }
        free(out);
        if (cts_latin1_fit(row->fields[i], &out, &bad) == 0)
            free(out);
    }
    if (row->row == 0) {
        struct cts_map maps[2] = {{(char *)"cf:Extra", (char *)"extra"},
                                  {(char *)"first_name", (char *)"vorname"}};
        struct cts_mapper_opts o = {fz->api, maps, 0, "fuzz", 0};

        if (fz->m != NULL)
            abort(); /* one header per input */
        /* With --map only when the header has those columns, so both
         * paths are fuzzed. */
        for (i = 0; i < row->nfields; i++) {
            char *n = cts_header_normalize(row->fields[i]);
            if (strcmp(n, "extra") == 0 || strcmp(n, "vorname") == 0)
                o.nmaps = 1 + (strcmp(n, "vorname") == 0);
            free(n);
        }
        memset(&err, 0, sizeof(err));
        fz->m = cts_mapper_new(&o, row, &err);
        if (fz->m == NULL && err.exit_code != CTS_EX_DATAERR)
            abort();
        return 0;
    }
    if (row->row != ++fz->rows)
        abort(); /* rows are numbered 1, 2, 3 ... without gaps */
    if (fz->m != NULL) {
        struct cts_contact c;
        int rc;

        memset(&c, 0, sizeof(c));
        memset(&err, 0, sizeof(err));
        rc = cts_mapper_map(fz->m, row, &c, &err);
        if (rc == 0 && (c.f[CTS_F_EMAIL] == NULL || row->problem != NULL))
            abort();
        if (rc != 0 && (rc != CTS_EDATA || err.msg[0] == '\0'))
            abort();
        (void)cts_mapper_email_cell(fz->m, row);
        cts_contact_free(&c);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int delims[4] = {0, ',', ';', '\t'};
    static const enum cts_encoding encs[4] = {CTS_ENC_AUTO, CTS_ENC_UTF8,
                                              CTS_ENC_CP1252, CTS_ENC_LATIN1};
    struct cts_reader_opts o;
    struct cts_reader *r;
    struct cts_error err;
    struct fz fz;
    size_t chunk, off;
    int rc = 0;

    if (size < 2)
        return 0;
    cts_log_set_level(CTS_LOG_ERROR); /* warnings would flood the log */
    chunk = (size_t)data[0] + 1;
    memset(&o, 0, sizeof(o));
    o.file = "fuzz";
    o.delimiter = delims[data[1] & 3];
    o.enc = encs[(data[1] >> 2) & 3];
    o.max_field = (data[1] & 0x20) ? 16 : 0; /* exercise the field cap */
    memset(&fz, 0, sizeof(fz));
    fz.api = (data[1] & 0x10) ? CTS_API_V2 : CTS_API_V3;
    data += 2;
    size -= 2;
    memset(&err, 0, sizeof(err));
    r = cts_reader_new(&o, on_row, &fz);
    for (off = 0; off < size && rc == 0; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        rc = cts_reader_feed(r, data + off, n, &err);
    }
    if (rc == 0)
        rc = cts_reader_finish(r, &err);
    if (rc != 0 && err.exit_code != CTS_EX_DATAERR)
        abort(); /* every failure of the reader is a data error */
    if (cts_reader_rows(r) != fz.rows)
        abort();
    (void)cts_reader_encoding(r);
    cts_reader_free(r);
    cts_mapper_free(fz.m);
    return 0;
}
