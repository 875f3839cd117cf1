/* util.c — small helpers shared by every layer: URL escaping, reading
 * numbers out of JSON replies, and the run's random generator. */
#include "cts_util.h"

#include <math.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

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

json_t *cts_json_array_member(json_t *o, const char *key)
{
    json_t *a = json_object_get(o, key);

    if (json_is_array(a))
        return a;
    a = json_array();
    if (a == NULL || json_object_set_new(o, key, a) != 0)
        return NULL;
    return a;
}

/* xorshift64*: backoff jitter only needs to differ per run, not be secret. */
void cts_rng_init(struct cts_rng *r)
{
    if (cts_random_bytes(&r->s, sizeof(r->s)) != 0 || r->s == 0)
        r->s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)uv_hrtime();
}

uint32_t cts_rng_next32(struct cts_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1DULL) >> 32);
}
