/*
 * secret.c — masking secrets for display: the one rule (cts_mask) and the
 * two ways text is searched for secrets (by value, by parameter name).
 */
#include "cts_secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_util.h"

/* "…" in UTF-8. */
#define ELLIPSIS     "\xe2\x80\xa6"
#define SHORT_SECRET 12

static char *mask_span(const char *s, size_t n, char out[CTS_MASK_SIZE])
{
    if (n <= SHORT_SECRET) {
        snprintf(out, CTS_MASK_SIZE, "****");
        return out;
    }
    /* 4 + 3 + 4 + NUL = 12 bytes. */
    snprintf(out, CTS_MASK_SIZE, "%.4s" ELLIPSIS "%.4s", s, s + n - 4);
    return out;
}

char *cts_mask(const char *secret, char out[static CTS_MASK_SIZE])
{
    if (secret == NULL) {
        snprintf(out, CTS_MASK_SIZE, "(none)");
        return out;
    }
    return mask_span(secret, strlen(secret), out);
}

/* The percent-encoded form of s when it differs from s (owned), else NULL:
 * keys and tokens are mostly unreserved characters, which need no copy. */
static char *escaped_form(const char *s)
{
    static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "abcdefghijklmnopqrstuvwxyz"
                                     "0123456789-._~";
    if (s[strspn(s, unreserved)] == '\0')
        return NULL;
    return cts_url_escape(s);
}

/* Replace every occurrence of value in buf by mask; returns the new length.
 * mask is not longer than value, so the text only moves left. */
static size_t replace_all(char *buf, size_t len, const char *value,
                          const char *mask)
{
    size_t vlen = strlen(value), mlen = strlen(mask);
    char *hit = strstr(buf, value);
    while (hit != NULL) {
        size_t tail = len - (size_t)(hit - buf) - vlen + 1; /* with NUL */
        memmove(hit + mlen, hit + vlen, tail);
        memcpy(hit, mask, mlen);
        len -= vlen - mlen;
        hit = strstr(hit + mlen, value);
    }
    return len;
}

/* Length of the longest proper prefix of value, of 4 or more characters,
 * that buf[0..len) ends with; 0 when none. */
static size_t cut_prefix_len(const char *buf, size_t len, const char *value)
{
    size_t t, vlen = strlen(value);
    for (t = vlen - 1 < len ? vlen - 1 : len; t >= 4; t--)
        if (memcmp(buf + len - t, value, t) == 0)
            return t;
    return 0;
}

/* Copy src into dst[cap] (cap > 0), cutting at a UTF-8 character boundary
 * when it does not fit.  Returns the length copied. */
static size_t copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) {
        len = cap - 1;
        /* Never end inside a multi-byte character (the mask's "…"). */
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memmove(dst, src, len);
    dst[len] = '\0';
    return len;
}

/* One secret value (raw or encoded) with its mask; cut: buf was cut. */
static size_t redact_value(char *buf, size_t len, const char *value,
                           const char *mask, int cut)
{
    size_t t;
    len = replace_all(buf, len, value, mask);
    if (!cut)
        return len;
    /* The cut-off start of the secret gets as much of the mask as fits in
     * its place: the buffer is full, so nothing may grow. */
    t = cut_prefix_len(buf, len, value);
    if (t > 0)
        len = len - t + copy_cut(buf + len - t, t + 1, mask, strlen(mask));
    return len;
}

static size_t redact(char *buf, const char *const *secrets, size_t n, int cut)
{
    size_t i, len = strlen(buf);
    for (i = 0; i < n; i++) {
        const char *s = secrets[i];
        char mask[CTS_MASK_SIZE], *esc;
        if (s == NULL || strlen(s) < CTS_SECRET_MIN)
            continue;
        cts_mask(s, mask);
        len = redact_value(buf, len, s, mask, cut);
        /* The same secret as it appears in a URL or a form body. */
        esc = escaped_form(s);
        if (esc != NULL) {
            len = redact_value(buf, len, esc, mask, cut);
            free(esc);
        }
    }
    return len;
}

size_t cts_redact(char *buf, size_t cap, const char *const *secrets, size_t n)
{
    if (buf == NULL || cap == 0)
        return 0;
    return redact(buf, secrets, n, strlen(buf) == cap - 1);
}

int cts_redact_needed(const char *s, const char *const *secrets, size_t n)
{
    size_t i;
    if (s == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        char *esc;
        int hit;
        if (secrets[i] == NULL || strlen(secrets[i]) < CTS_SECRET_MIN)
            continue;
        if (strstr(s, secrets[i]) != NULL)
            return 1;
        esc = escaped_form(secrets[i]);
        hit = esc != NULL && strstr(s, esc) != NULL;
        free(esc);
        if (hit)
            return 1;
    }
    return 0;
}

int cts_redact_vformat(char *buf, size_t cap, const char *const *secrets,
                       size_t n, const char *fmt, va_list ap)
{
    va_list aq;
    char *whole;
    int len;

    if (cap == 0)
        return -1;
    va_copy(aq, ap);
    len = vsnprintf(buf, cap, fmt, ap);
    if (len < 0) {
        buf[0] = '\0';
    } else if ((size_t)len < cap) {
        /* It fit: nothing was cut, mask in place. */
        len = (int)redact(buf, secrets, n, 0);
    } else {
        /* Too long for buf: mask the whole text first, then cut it, so the
         * cut can fall inside a mask but never inside a secret. */
        whole = cts_xmalloc((size_t)len + 1);
        vsnprintf(whole, (size_t)len + 1, fmt, aq);
        len = (int)redact(whole, secrets, n, 0);
        len = (int)copy_cut(buf, cap, whole, (size_t)len);
        free(whole);
    }
    va_end(aq);
    return len;
}

/* Query/form parameters whose values are secrets. */
static const char *const secret_params[] = {
    "api_key=", "access_token=",  "refresh_token=", "client_secret=",
    "code=",    "code_verifier=", "token=",         "device_code=",
};

/* The secret parameter name starting at s[0..n), or NULL. */
static const char *secret_param_at(const char *s, size_t n)
{
    size_t k;
    for (k = 0; k < sizeof(secret_params) / sizeof(*secret_params); k++) {
        size_t pl = strlen(secret_params[k]);
        if (n >= pl && memcmp(s, secret_params[k], pl) == 0)
            return secret_params[k];
    }
    return NULL;
}

/* At s[0..n), just after "://": when the authority carries
 * user:password@, *pass and *at are the offsets of the password and of
 * the '@' that ends it (the last one: a password may hold '@'); else 0. */
static int find_password(const char *s, size_t n, size_t *pass, size_t *at)
{
    size_t i;

    *pass = 0;
    *at = 0;
    for (i = 0; i < n && strchr("/?#'\" \t\r\n", s[i]) == NULL; i++) {
        if (s[i] == '@')
            *at = i;
        else if (s[i] == ':' && *pass == 0)
            *pass = i + 1;
    }
    return *pass > 0 && *at >= *pass;
}

char *cts_redact_params(const char *s, size_t n)
{
    struct cts_buf b;
    size_t i = 0, pass, at;

    cts_buf_init(&b, 0);
    while (i < n) {
        int at_param = i == 0 || s[i - 1] == '?' || s[i - 1] == '&';
        const char *hit = at_param ? secret_param_at(s + i, n - i) : NULL;
        if (hit != NULL) {
            size_t pl = strlen(hit), end = i + pl;
            char masked[CTS_MASK_SIZE];
            while (end < n && s[end] != '&' && s[end] != ' ' && s[end] != '#' &&
                   s[end] != '\r' && s[end] != '\n')
                end++;
            cts_buf_append(&b, s + i, pl);
            mask_span(s + i + pl, end - i - pl, masked);
            cts_buf_append(&b, masked, strlen(masked));
            i = end;
            continue;
        }
        /* A URL's user:password@ (a proxy's, as libcurl's verbose text
         * names it): the user stays, the password never shows. */
        if (i >= 3 && memcmp(s + i - 3, "://", 3) == 0 &&
            find_password(s + i, n - i, &pass, &at)) {
            cts_buf_append(&b, s + i, pass);
            cts_buf_append(&b, "****", 4);
            i += at;
            continue;
        }
        cts_buf_putc(&b, s[i]);
        i++;
    }
    return cts_buf_detach(&b);
}

char *cts_url_redact(const char *url)
{
    return cts_redact_params(url != NULL ? url : "",
                             url != NULL ? strlen(url) : 0);
}
