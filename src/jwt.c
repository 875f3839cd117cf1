/* jwt.c — the one JWT payload parser: claims of access tokens, signature
 * not checked (cts_jwt.h). */
#include "cts_jwt.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cts_util.h"

/* The base64url alphabet without padding (RFC 7515 section 2). */
static int is_b64url(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int cts_jwt_payload(const char *token, json_t **payload)
{
    const char *p1, *p2;
    char *raw;
    size_t rawlen = 0;
    json_t *root;

    *payload = NULL;
    if (token == NULL)
        return CTS_EJSON;
    p1 = strchr(token, '.');
    if (p1 == NULL)
        return CTS_EJSON;
    p2 = strchr(p1 + 1, '.');
    /* header.payload.signature: two dots, a header and a payload; the
     * signature may be empty (an unsecured JWT). */
    if (p2 == NULL || p1 == token || p2 == p1 + 1 ||
        strchr(p2 + 1, '.') != NULL)
        return CTS_EJSON;
    if (!is_b64url(token, (size_t)(p1 - token)) ||
        !is_b64url(p1 + 1, (size_t)(p2 - p1 - 1)) ||
        !is_b64url(p2 + 1, strlen(p2 + 1)))
        return CTS_EJSON;
    raw = cts_base64_decode(p1 + 1, (size_t)(p2 - p1 - 1), &rawlen);
    if (raw == NULL)
        return CTS_EJSON;
    /* Duplicate claims are ambiguous (RFC 7519 section 4): refuse them. */
    root = json_loadb(raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (!json_is_object(root)) {
        json_decref(root);
        return CTS_EJSON;
    }
    *payload = root;
    return 0;
}

/* A NumericDate claim: an integer, or a finite real in range (truncated).
 * 1 and *out set, or 0 when v is anything else. */
static int numeric_date(const json_t *v, long long *out)
{
    double d;
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v))
        return 0;
    d = json_real_value(v);
    /* Converting a double outside the target's range is undefined. */
    if (!isfinite(d) || d <= (double)LLONG_MIN || d >= (double)LLONG_MAX)
        return 0;
    *out = (long long)d;
    return 1;
}

int cts_jwt_claims(const char *token, char **cid, long long *exp)
{
    json_t *p, *c;
    int rc = cts_jwt_payload(token, &p);
    if (cid != NULL)
        *cid = NULL;
    if (exp != NULL)
        *exp = 0;
    if (rc != 0)
        return rc;
    c = json_object_get(p, "cid");
    if (cid != NULL && json_is_string(c))
        *cid = cts_xstrdup(json_string_value(c));
    if (exp != NULL && !numeric_date(json_object_get(p, "exp"), exp))
        *exp = 0;
    json_decref(p);
    return 0;
}

int cts_jwt_exp(const char *token, long *exp)
{
    json_t *p;
    long long e;
    int rc = cts_jwt_payload(token, &p);
    if (rc != 0)
        return rc;
    rc = numeric_date(json_object_get(p, "exp"), &e) && e >= LONG_MIN &&
                 e <= LONG_MAX
             ? 0
             : CTS_EJSON;
    if (rc == 0)
        *exp = (long)e;
    json_decref(p);
    return rc;
}
