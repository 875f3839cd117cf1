/* util.c — small helpers shared by every layer: URL escaping and reading
 * numbers out of JSON replies. */
#include "cts_util.h"

#include <math.h>
#include <string.h>

#include <jansson.h>

char *cts_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n, i, o = 0;
    char *out;

    if (s == NULL)
        s = "";
    n = strlen(s);
    /* Worst case every byte becomes %XX. */
    out = cts_xmalloc(3 * n + 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* RFC 3986 unreserved characters stay as they are (what
         * curl_easy_escape does); everything else is percent-encoded. */
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xF];
        }
    }
    out[o] = '\0';
    return out;
}

int cts_json_int(const struct json_t *v, long min, long max, long *out)
{
    long n;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
            return CTS_EJSON;
        n = (long)i;
    } else if (json_is_real(v)) {
        /* Some servers write whole numbers as 3600.0. */
        double d = json_real_value(v);
        if (!isfinite(d) || d < (double)min || d >= (double)max + 1.0)
            return CTS_EJSON;
        n = (long)d;
    } else if (json_is_string(v)) {
        if (cts_parse_long(json_string_value(v), min, max, &n) != 0)
            return CTS_EJSON;
    } else {
        return CTS_EJSON;
    }
    *out = n;
    return 0;
}
