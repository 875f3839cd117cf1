/*
 * cts_reader.h — streaming CSV intake: bytes in, decoded rows out.
 *
 * Push-based and incremental (libcsv underneath): the caller feeds chunks of
 * any size as they arrive (e.g. from uv_fs_read callbacks) and the reader
 * calls back once per record, synchronously, from inside cts_reader_feed()
 * or cts_reader_finish().  Memory is bounded by the largest record, never
 * by the number of rows (a field is capped at max_field bytes, a record
 * at 16 × max_field bytes and 16384 fields).
 *
 * Row numbering (as a person counts rows; the report's row column): the
 * header is row 0; data row N is the Nth non-blank record after the
 * header.  A record spanning several physical lines (quoted newlines) is
 * one row, as in a spreadsheet.
 * Blank records (an empty line, or a line of only delimiters/whitespace) are
 * skipped and not counted.  `line` gives the physical line where the record
 * starts, for messages.
 *
 * Text: every field delivered is UTF-8 and NUL-terminated.  Input is decoded
 * per cts_reader_opts.enc (see cts_encoding_*); a UTF-8 BOM at the start of
 * the input is removed; a UTF-16 BOM switches to UTF-16 decoding.  Bytes
 * that cannot be decoded are never dropped: the row gets a problem instead.
 */
#ifndef CTS_READER_H
#define CTS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "cts_types.h"
#include "cts_util.h"

/* Default cap on one field's size in bytes (after decoding). */
#define CTS_READER_MAX_FIELD (64 * 1024)

/* One record.  Borrowed by the callback: every pointer is valid only for
 * the duration of the call; copy what you keep. */
struct cts_row {
    const char *file; /* as given in the options, "-" for stdin */
    long row;         /* 0 = header, then 1-based data row (see above) */
    long line;        /* 1-based physical line where the record starts */
    size_t nfields;
    const char *const *fields; /* nfields UTF-8, NUL-terminated strings */
    const size_t *lens;        /* byte length of each field */
    /* NULL, or why the row cannot be trusted, naming a column by its
     * header (by its number when the header gives it no name): "expected
     * 5 fields, found 7", "NUL byte in column \"Notes\"", "column
     * \"Notes\" is longer than 65,536 bytes", "row longer than 1,048,576
     * bytes", "more than 16384 fields (...)", "invalid UTF-8 in column 4
     * (byte 0xE9); try --encoding cp1252", "unterminated quoted field
     * (record opened on line N)".  Such rows are still delivered (cut
     * fields empty) so that each appears in the report.  A column given
     * to cts_reader_ignore_columns never makes a problem. */
    const char *problem;
};

/* Called once per record, header included, synchronously from inside
 * cts_reader_feed()/cts_reader_finish().  Return 0 to go on; a nonzero
 * value stops the reader: the current feed/finish call returns that value
 * unchanged (so a negative code the callback chose propagates) and the
 * reader delivers nothing more. */
typedef int (*cts_row_cb)(const struct cts_row *row, void *arg);

struct cts_reader_opts {
    const char *file;      /* borrowed; copied; used in rows and messages */
    int delimiter;         /* 0 = detect from the header line */
    enum cts_encoding enc; /* CTS_ENC_AUTO, _UTF8, _CP1252, _LATIN1 */
    size_t max_field;      /* 0 = CTS_READER_MAX_FIELD */
};

struct cts_reader;

/*
 * Create a reader.  o and its strings are borrowed (copied as needed); cb
 * and arg are kept.  Returns an owned reader (free with cts_reader_free);
 * never NULL (allocation failure aborts, libcsv init failure too).
 */
struct cts_reader *cts_reader_new(const struct cts_reader_opts *o,
                                  cts_row_cb cb, void *arg);

/*
 * Feed len bytes (borrowed; not kept after the call).  Complete records are
 * delivered to the callback synchronously before this returns; the last
 * incomplete record is held until more data or cts_reader_finish().
 * Returns 0; the callback's nonzero value when it stopped the reader;
 * UV_ENOMEM/CTS_ECSV on a libcsv failure (err filled).  After a nonzero
 * return, further feeds return the same code and deliver nothing.
 */
int cts_reader_feed(struct cts_reader *r, const void *data, size_t len,
                    struct cts_error *err);

/*
 * End of input: deliver the last record (if any).  Returns 0, or:
 *  - CTS_EDATA, exit_code 65, "no header row" when the input held no
 *    record at all (empty file, only blank lines, only a BOM);
 *  - CTS_ECSV, exit_code 65, when the input ended inside a quoted field:
 *    every complete record was delivered first, then the broken tail as a
 *    row whose problem is "unterminated quoted field (opened on line N)",
 *    and err->row names that row;
 *  - the callback's nonzero value if it stopped the reader.
 */
int cts_reader_finish(struct cts_reader *r, struct cts_error *err);

/*
 * Columns whose values nobody reads (they map to no field): a value there
 * that is longer than max_field or holds a NUL byte is delivered empty
 * instead of making its row invalid, and is never held in memory whole.
 * ignore[i] nonzero for column i (0-based); borrowed (copied); columns at
 * n and beyond are read.  May be called from inside the callback, e.g.
 * once the header row is known.
 */
void cts_reader_ignore_columns(struct cts_reader *r,
                               const unsigned char *ignore, size_t n);

/*
 * Is data[0..len), the first bytes of an input, something else than CSV
 * text?  at_eof: no more bytes will come.  Returns:
 *   0          it can be text;
 *   1          more bytes are needed to tell (only while they may begin a
 *              known binary format, at most 64 KiB of a zip or OLE2 file);
 *   CTS_EDATA  it is not: err (exit_code 65) says what it is in one line,
 *              naming file (borrowed), and for a workbook (.xlsx, .xls,
 *              .ods) how to save it as CSV from Excel, LibreOffice and
 *              Google Sheets: "data.xlsx: an Excel workbook (.xlsx), not a
 *              CSV text file: open it and save it as CSV (...)", else
 *              "FILE: not a CSV text file (a ZIP archive)".
 * Recognised by the bytes, never by the name.  The reader applies it to
 * the first bytes it is fed (a stream too); a first line holding NUL bytes
 * is refused the same way ("not a CSV text file (its first line holds NUL
 * bytes: ...)").
 */
int cts_reader_sniff(const char *file, const void *data, size_t len, int at_eof,
                     struct cts_error *err);

/* What the input was decoded from, for the summary and stderr:
 * "utf-8", "utf-8 (BOM)", "cp1252 (converted)", "latin1 (converted)",
 * "utf-16le (converted)", or for a stream in auto mode that turned out
 * not to be UTF-8 after some rows "utf-8, then cp1252 from row N".
 * Borrowed; valid until the next feed or free. */
const char *cts_reader_encoding(const struct cts_reader *r);

/* The delimiter in use (detected or given); 0 before the header is seen. */
int cts_reader_delimiter(const struct cts_reader *r);

/* Data rows delivered so far (header excluded). */
long cts_reader_rows(const struct cts_reader *r);

/* Free the reader; NULL-safe.  Never call from inside its own callback. */
void cts_reader_free(struct cts_reader *r);

#endif /* CTS_READER_H */
