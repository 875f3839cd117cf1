/*
 * valid.c — small validators shared by the v2 and v3 handlers: UTF-8
 * character counts for the API's length limits, the v2 ISO-8859-1 rule,
 * email syntax, and collecting several validation errors into one reply.
 */
#include "sb_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Decode one UTF-8 sequence; returns its length or 0 when invalid. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) {
        *cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
        return *cp >= 0x80 ? 2 : 0;
    }
    if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 &&
        (s[2] & 0xc0) == 0x80) {
        *cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) |
              (s[2] & 0x3f);
        return *cp >= 0x800 ? 3 : 0;
    }
    if ((s[0] & 0xf8) == 0xf0 && (s[1] & 0xc0) == 0x80 &&
        (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80) {
        *cp = ((uint32_t)(s[0] & 0x07) << 18) |
              ((uint32_t)(s[1] & 0x3f) << 12) | ((uint32_t)(s[2] & 0x3f) << 6) |
              (s[3] & 0x3f);
        return *cp >= 0x10000 && *cp <= 0x10ffff ? 4 : 0;
    }
    return 0;
}

size_t sb_utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        uint32_t cp;
        size_t l = utf8_next(p, &cp);
        if (!l)
            return (size_t)-1;
        p += l;
        n++;
    }
    return n;
}

int sb_is_latin1(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        size_t l = utf8_next(p, &cp);
        if (!l || cp > 0xff)
            return 0;
        p += l;
    }
    return 1;
}

int sb_json_latin1(json_t *j)
{
    size_t i;
    const char *k;
    json_t *v;
    switch (json_typeof(j)) {
    case JSON_STRING: return sb_is_latin1(json_string_value(j));
    case JSON_ARRAY:
        json_array_foreach(j, i, v)
        {
            if (!sb_json_latin1(v))
                return 0;
        }
        return 1;
    case JSON_OBJECT:
        json_object_foreach(j, k, v)
        {
            if (!sb_is_latin1(k) || !sb_json_latin1(v))
                return 0;
        }
        return 1;
    default: return 1;
    }
}

int sb_email_ok(const char *s)
{
    size_t len = strlen(s);
    const char *at = strchr(s, '@');
    if (len == 0 || len > 254 || !at || at == s || strchr(at + 1, '@'))
        return 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7f || c == ',' || c == ';' || c == '<' ||
            c == '>' || c == '(' || c == ')' || c == '[' || c == ']' ||
            c == '\\' || c == '"')
            return 0;
    }
    const char *dom = at + 1;
    const char *dot = strrchr(dom, '.');
    if (!dot || dot == dom || dot[1] == '\0' || strlen(dot + 1) < 2)
        return 0;
    if (dom[0] == '.' || strstr(dom, "..") || s[0] == '.' || at[-1] == '.' ||
        strstr(s, ".."))
        return 0;
    return 1;
}

void sb_verr(json_t *errs, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(
        errs, json_pack("{s:s,s:s}", "error_key", key, "error_message", msg));
}

const char *sb_jfield(json_t *obj, const char *name, size_t max, json_t *errs,
                      const char *key, const char *prefix)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        sb_verr(errs, key, "%s%s must be a string.", prefix ? prefix : "",
                name);
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = sb_utf8_chars(s);
    if (n == (size_t)-1 || strlen(s) != json_string_length(v)) {
        sb_verr(errs, key, "%s%s is not valid text.", prefix ? prefix : "",
                name);
        return NULL;
    }
    if (max && n > max) {
        sb_verr(errs, key, "%s%s exceeds the maximum length of %zu.",
                prefix ? prefix : "", name, max);
        return NULL;
    }
    return s;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* n digits at *p into *out; advances *p.  -1 when not n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int sb_parse_iso8601(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
    const char *p = s;
    if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
        *p++ != '-' || digits(&p, 2, &d) || mo < 1 || mo > 12 || d < 1 ||
        d > 31)
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &se))
                return -1;
        }
        if (*p == '.')
            for (p++; *p >= '0' && *p <= '9'; p++)
                ;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p++ == '-' ? -1 : 1;
            if (digits(&p, 2, &oh))
                return -1;
            if (*p == ':')
                p++;
            if (digits(&p, 2, &om))
                return -1;
        }
        if (h > 23 || mi > 59 || se > 60)
            return -1;
    }
    if (*p)
        return -1;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
           mi * 60 + se - sign * (oh * 3600 + om * 60);
    return 0;
}
