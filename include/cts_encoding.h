/*
 * cts_encoding.h — strict UTF-8 validation and single-byte to UTF-8
 * conversion (encoding.c): pure functions, plus one file pre-scan.
 */
#ifndef CTS_ENCODING_H
#define CTS_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "cts_types.h"
#include "cts_util.h"

/* The pre-scan reads at most this much of a file. */
#define CTS_ENCODING_SCAN_MAX (64 * 1024 * 1024)

/*
 * Pre-scan the regular file open on fd (name for messages) so that `auto`
 * decides once for the whole file before the first row is delivered:
 * *out = CTS_ENC_UTF8 when the whole file is valid UTF-8, else
 * CTS_ENC_CP1252.  (A UTF-16 BOM also gives CTS_ENC_UTF8: the reader
 * handles UTF-16 itself.)  Reads with pread in 64 KiB blocks, so memory is
 * flat and the descriptor's offset does not move.  Anything but a regular
 * file (a pipe, FIFO, terminal, /dev/zero), which cannot be read twice,
 * is not read at all, and a file whose first CTS_ENCODING_SCAN_MAX bytes
 * are valid UTF-8 is not read further: *out = CTS_ENC_AUTO then, and the
 * reader decides as it goes, as for stdin.  Returns 0 or a negated errno
 * (err filled).  The intake calls it in auto mode and passes the result
 * as cts_reader_opts.enc.
 */
int cts_encoding_detect_fd(int fd, const char *name, enum cts_encoding *out,
                           struct cts_error *err);

/* cts_encoding_detect_fd on the file at path (opened and closed here). */
int cts_encoding_detect_file(const char *path, enum cts_encoding *out,
                             struct cts_error *err);

/*
 * Length of the longest valid UTF-8 prefix of s[0..len) (strict: no
 * overlongs, no surrogates, nothing above U+10FFFF).  If *incomplete is
 * non-NULL it is set to 1 when the only defect is a truncated sequence at
 * the very end (more bytes could complete it), else 0.
 */
size_t cts_utf8_valid_prefix(const void *s, size_t len, int *incomplete);

/* Decode one code point at s (len > 0): returns its length and sets *cp, or
 * returns 0 for an invalid/truncated sequence. */
size_t cts_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* Append the UTF-8 encoding of cp (≤ U+10FFFF) to out; returns its length.
 * out must have room for 4 bytes. */
size_t cts_utf8_encode(uint32_t cp, char *out);

/*
 * Convert single-byte text to UTF-8, appending to b.  CTS_ENC_CP1252 uses
 * Windows-1252 (0x80–0x9F per the Windows table; the five undefined bytes
 * 0x81 0x8D 0x8F 0x90 0x9D become U+0081 … as Windows' own converter does,
 * so nothing is dropped); CTS_ENC_LATIN1 is ISO-8859-1 (byte = code point).
 * Returns 0 or the cts_buf error.
 */
int cts_encoding_to_utf8(enum cts_encoding enc, const void *s, size_t len,
                         struct cts_buf *b);

/* Display name of an encoding: "auto", "utf-8", "cp1252", "latin1". */
const char *cts_encoding_name(enum cts_encoding enc);

#endif /* CTS_ENCODING_H */
