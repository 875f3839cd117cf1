/*
 * encoding.c — strict UTF-8 validation and single-byte → UTF-8 conversion.
 *
 * Pure functions (plus one file pre-scan).  The UTF-8 rules are RFC 3629's
 * table: no overlong forms, no surrogates (U+D800–DFFF), nothing above
 * U+10FFFF.  Speed matters (every byte of every import passes here), so
 * ASCII runs are skipped eight bytes at a time.
 */
#include "cts_encoding.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Windows-1252 0x80–0x9F.  The five bytes Windows leaves undefined map to
 * the C1 control of the same value, as MultiByteToWideChar does, so a
 * round trip never loses a byte. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

size_t cts_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    uint32_t v;
    size_t n, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    if (len < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    /* Overlong 3- and 4-byte forms, surrogates, and > U+10FFFF. */
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Would the bytes s[0..len) (len < needed) be a valid start of a sequence
 * if more bytes came?  Used to tell "cut by the chunk" from "invalid". */
static int could_complete(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n, i;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (len >= n)
        return 0;
    for (i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* Second-byte ranges that rule out overlongs/surrogates/too-large. */
    if (len >= 2) {
        if (c == 0xE0 && s[1] < 0xA0)
            return 0;
        if (c == 0xED && s[1] > 0x9F)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;
        if (c == 0xF4 && s[1] > 0x8F)
            return 0;
    }
    return 1;
}

size_t cts_utf8_valid_prefix(const void *data, size_t len, int *incomplete)
{
    const unsigned char *s = data;
    size_t i = 0, n;
    uint32_t cp;

    if (incomplete != NULL)
        *incomplete = 0;
    while (i < len) {
        /* ASCII fast path: 8 bytes with no high bit at once. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) != 0)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        n = cts_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            if (incomplete != NULL)
                *incomplete = could_complete(s + i, len - i);
            return i;
        }
        i += n;
    }
    return len;
}

size_t cts_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;

    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int cts_encoding_to_utf8(enum cts_encoding enc, const void *data, size_t len,
                         struct cts_buf *b)
{
    const unsigned char *s = data;
    size_t i = 0, run;
    int rc;

    while (i < len) {
        /* Copy ASCII runs in one append. */
        run = i;
        while (run < len && s[run] < 0x80)
            run++;
        if (run > i) {
            rc = cts_buf_append(b, s + i, run - i);
            if (rc != 0)
                return rc;
            i = run;
            if (i >= len)
                break;
        }
        {
            uint32_t cp = s[i];
            char tmp[4];
            size_t n;

            if (enc == CTS_ENC_CP1252 && cp >= 0x80 && cp <= 0x9F)
                cp = cp1252_high[cp - 0x80];
            n = cts_utf8_encode(cp, tmp);
            rc = cts_buf_append(b, tmp, n);
            if (rc != 0)
                return rc;
            i++;
        }
    }
    return 0;
}

const char *cts_encoding_name(enum cts_encoding enc)
{
    switch (enc) {
    case CTS_ENC_AUTO: return "auto";
    case CTS_ENC_UTF8: return "utf-8";
    case CTS_ENC_CP1252: return "cp1252";
    case CTS_ENC_LATIN1: return "latin1";
    }
    return "?";
}

int cts_encoding_detect_fd(int fd, const char *name, enum cts_encoding *out,
                           struct cts_error *err)
{
    unsigned char buf[65536 + 4];
    size_t carry = 0, valid;
    off_t off = 0;
    ssize_t n;
    struct stat sb;
    int incomplete, rc = 0;

    *out = CTS_ENC_AUTO;
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        return cts_error_set(err, rc, "%s: %s", name, strerror(-rc));
    }
    /* A stream cannot be read twice: the reader decides as it goes. */
    if (!S_ISREG(sb.st_mode))
        return 0;
    for (;;) {
        if (off >= CTS_ENCODING_SCAN_MAX)
            return 0; /* undecided: the reader decides as it goes */
        /* pread: the descriptor's offset stays at the start. */
        n = pread(fd, buf + carry, 65536, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            return cts_error_set(err, rc, "%s: %s", name, strerror(-rc));
        }
        if (off == 0 && n >= 2 &&
            ((buf[0] == 0xFF && buf[1] == 0xFE) ||
             (buf[0] == 0xFE && buf[1] == 0xFF))) {
            *out = CTS_ENC_UTF8; /* UTF-16: the reader decodes it itself */
            return 0;
        }
        off += n;
        if (n == 0) {
            /* A sequence cut by EOF is invalid: not UTF-8. */
            *out = carry > 0 ? CTS_ENC_CP1252 : CTS_ENC_UTF8;
            return 0;
        }
        valid = cts_utf8_valid_prefix(buf, carry + (size_t)n, &incomplete);
        if (valid < carry + (size_t)n && !incomplete) {
            *out = CTS_ENC_CP1252;
            return 0;
        }
        /* Keep the truncated tail (≤ 3 bytes) for the next block. */
        carry = carry + (size_t)n - valid;
        memmove(buf, buf + valid, carry);
    }
}

int cts_encoding_detect_file(const char *path, enum cts_encoding *out,
                             struct cts_error *err)
{
    int fd, rc;

    *out = CTS_ENC_AUTO;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        return cts_error_set(err, rc, "%s: %s", path, strerror(-rc));
    }
    rc = cts_encoding_detect_fd(fd, path, out, err);
    close(fd);
    return rc;
}
