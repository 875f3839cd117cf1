/*
 * email.c — email normalisation (trimmed, lower-cased) and lenient
 * validation (an @, no spaces or controls, a dot in the domain, the API's
 * lengths).
 *
 * Lenient on purpose: over-strict validators are a top complaint about
 * import tools.  We accept what real mail systems deliver to (+ tags,
 * apostrophes, subdomains, UTF-8 local parts and IDN domains in UTF-8,
 * quoted local parts) and reject only what cannot be an address.  IDN
 * domains are kept in UTF-8 (no punycode): both API generations take the
 * address as a JSON string.
 */
#include "cts_email.h"

#include <stdlib.h>
#include <string.h>

#include "cts_encoding.h"
#include "cts_util.h"

/* Length of a Unicode space/invisible character at s (UTF-8), else 0:
 * NBSP, the U+2000 spaces, zero-width space/joiners, narrow NBSP, word
 * joiner, ideographic space and BOM — all seen pasted around addresses. */
static size_t uspace_len(const unsigned char *s, size_t n)
{
    /* Fast exit: every such character starts with 0xC2, 0xE2, 0xE3 or
     * 0xEF. */
    if (n < 2 || s[0] < 0xC2)
        return 0;
    if (n >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
        return 2;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 &&
        (s[2] <= 0x8D || s[2] == 0xAF))
        return 3; /* U+2000–U+200D, U+202F */
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 &&
        (s[2] == 0x9F || s[2] == 0xA0))
        return 3; /* U+205F, U+2060 */
    if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
        return 3; /* U+3000 */
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        return 3; /* U+FEFF */
    return 0;
}

/* Length of a C1 control (U+0080–U+009F) or an invisible format
 * character at s (UTF-8), else 0: the soft hyphen, the bidirectional
 * marks, embeddings, overrides and isolates, the line and paragraph
 * separators, interlinear annotations and tag characters.  None belongs
 * in an address, and some reorder or hide what a person reads. */
static size_t format_len(const unsigned char *s, size_t n)
{
    if (n >= 2 && s[0] == 0xC2 && (s[1] <= 0x9F || s[1] == 0xAD))
        return 2; /* U+0080–U+009F, U+00AD */
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 &&
        (s[2] == 0x8E || s[2] == 0x8F || (s[2] >= 0xA8 && s[2] <= 0xAE)))
        return 3; /* U+200E, U+200F, U+2028–U+202E */
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] >= 0xA0 && s[2] <= 0xAF)
        return 3; /* U+2060–U+206F */
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBF && s[2] >= 0xB9 && s[2] <= 0xBB)
        return 3; /* U+FFF9–U+FFFB */
    if (n >= 4 && s[0] == 0xF3 && s[1] == 0xA0 && s[2] <= 0x81)
        return 4; /* U+E0000–U+E007F */
    return 0;
}

static int ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

const char *cts_trim_span(const char *in, size_t *len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = *len, k;

    for (;;) {
        if (n > 0 && ascii_space(s[0])) {
            s++;
            n--;
        } else if ((k = uspace_len(s, n)) != 0) {
            s += k;
            n -= k;
        } else {
            break;
        }
    }
    for (;;) {
        if (n > 0 && ascii_space(s[n - 1])) {
            n--;
            continue;
        }
        /* Every Unicode space above is 2 or 3 bytes long. */
        if (n >= 2 && uspace_len(s + n - 2, 2) == 2) {
            n -= 2;
            continue;
        }
        if (n >= 3 && uspace_len(s + n - 3, 3) == 3) {
            n -= 3;
            continue;
        }
        break;
    }
    *len = n;
    return (const char *)s;
}

/* RFC 5322 atext plus '.', and any non-ASCII byte (RFC 6531 SMTPUTF8). */
static int local_char_ok(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return strchr("!#$%&'*+/=?^_`{|}~-.", c) != NULL && c != '\0';
}

static const char *check_domain(const unsigned char *d, size_t n)
{
    size_t i, label = 0, dots = 0;

    if (n == 0)
        return "nothing after '@'";
    if (d[0] == '[')
        return "IP address literals are not accepted";
    if (d[0] == '.')
        return "domain starts with a dot";
    if (d[n - 1] == '.')
        return "domain ends with a dot";
    for (i = 0; i < n; i++) {
        unsigned char c = d[i];
        if (c == '.') {
            if (label == 0)
                return "two dots in a row in the domain";
            if (d[i - 1] == '-')
                return "domain label ends with '-'";
            dots++;
            label = 0;
            continue;
        }
        if (c == '-' && label == 0)
            return "domain label starts with '-'";
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-'))
            return "invalid character in the domain";
        if (++label > 63)
            return "domain label longer than 63 characters";
    }
    if (d[n - 1] == '-')
        return "domain label ends with '-'";
    if (dots == 0)
        return "no dot in the domain";
    return NULL;
}

int cts_email_normalize(const char *in, char **out, const char **why)
{
    const unsigned char *s;
    size_t n, i, at, local_len;
    char *copy;
    const char *w = NULL;

    *out = NULL;
    *why = NULL;
    n = strlen(in);
    s = (const unsigned char *)cts_trim_span(in, &n);
    if (n == 0) {
        *why = "empty";
        return CTS_EDATA;
    }
    if (cts_utf8_valid_prefix(s, n, NULL) != n) {
        *why = "not valid UTF-8";
        return CTS_EDATA;
    }
    /* Spaces and controls anywhere inside (outside a quoted local part,
     * where RFC 5321 allows them but no list server does) are errors. */
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c > ' ' && c < 0x7F)
            continue; /* the common case, decided in one test */
        if (c < 0x20 || c == 0x7F || format_len(s + i, n - i) != 0) {
            *why = "contains a control character";
            return CTS_EDATA;
        }
        if (c == ' ' || uspace_len(s + i, n - i) != 0) {
            *why = "contains a space";
            return CTS_EDATA;
        }
    }
    /* Find the '@' that ends the local part, skipping a quoted one. */
    if (s[0] == '"') {
        for (i = 1; i < n; i++) {
            if (s[i] == '\\' && i + 1 < n) {
                i++;
                continue;
            }
            if (s[i] == '"')
                break;
        }
        if (i >= n) {
            *why = "unterminated quoted local part";
            return CTS_EDATA;
        }
        if (i + 1 >= n || s[i + 1] != '@') {
            *why = i + 1 >= n ? "no '@'" : "text after the quoted local part";
            return CTS_EDATA;
        }
        if (i == 1) {
            *why = "nothing before '@'";
            return CTS_EDATA;
        }
        at = i + 1;
    } else {
        const unsigned char *p = memchr(s, '@', n);
        if (p == NULL) {
            *why = "no '@'";
            return CTS_EDATA;
        }
        at = (size_t)(p - s);
        if (at == 0) {
            *why = "nothing before '@'";
            return CTS_EDATA;
        }
        for (i = 0; i < at; i++) {
            if (!local_char_ok(s[i])) {
                *why = s[i] == '"' ? "misplaced quote in the local part"
                                   : "invalid character before '@'";
                return CTS_EDATA;
            }
        }
        if (s[0] == '.' || s[at - 1] == '.') {
            *why = "local part starts or ends with a dot";
            return CTS_EDATA;
        }
    }
    local_len = at;
    if (memchr(s + at + 1, '@', n - at - 1) != NULL) {
        *why = "more than one '@'";
        return CTS_EDATA;
    }
    if (local_len > 64) {
        *why = "part before '@' longer than 64 characters";
        return CTS_EDATA;
    }
    if (n > 254) {
        *why = "longer than 254 characters";
        return CTS_EDATA;
    }
    w = check_domain(s + at + 1, n - at - 1);
    if (w != NULL) {
        *why = w;
        return CTS_EDATA;
    }
    copy = cts_xstrndup((const char *)s, n);
    /* Lower-case ASCII only: non-ASCII case folding needs Unicode tables,
     * and duplicates in IDN case variants are vanishingly rare. */
    for (i = 0; i < n; i++)
        if (copy[i] >= 'A' && copy[i] <= 'Z')
            copy[i] = (char)(copy[i] - 'A' + 'a');
    *out = copy;
    return 0;
}
