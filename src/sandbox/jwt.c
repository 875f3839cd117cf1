/*
 * jwt.c — pure OAuth primitives of ctct-sandbox: HMAC-SHA256, HS256 JWTs,
 * PKCE S256, exact redirect-URI matching, URL encoding.  No libuv, no
 * server state: everything here is a function of its arguments, which is
 * what lets tests/sandbox/test_jwt.c include this file directly.
 */
#include "sb_oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cts_util.h"
#include "sb.h"

#define HMAC_BLOCK 64

void sbo_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                     uint8_t out[32])
{
    uint8_t k[HMAC_BLOCK], pad[HMAC_BLOCK], inner[CTS_SHA256_LEN];
    uint8_t *buf;
    size_t i;

    /* RFC 2104: keys longer than the block are hashed first, shorter ones
     * are zero-padded to the block size. */
    memset(k, 0, sizeof(k));
    if (klen > HMAC_BLOCK)
        cts_sha256(key, klen, k);
    else if (klen > 0)
        memcpy(k, key, klen);

    /* inner = H((K ^ ipad) || msg); cts_sha256 is one-shot, so the pad and
     * the message are laid out in one buffer. */
    buf = cts_xmalloc(HMAC_BLOCK +
                      (mlen > CTS_SHA256_LEN ? mlen : CTS_SHA256_LEN));
    for (i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    memcpy(buf, pad, HMAC_BLOCK);
    if (mlen > 0)
        memcpy(buf + HMAC_BLOCK, msg, mlen);
    cts_sha256(buf, HMAC_BLOCK + mlen, inner);

    /* outer = H((K ^ opad) || inner) */
    for (i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    memcpy(buf, pad, HMAC_BLOCK);
    memcpy(buf + HMAC_BLOCK, inner, CTS_SHA256_LEN);
    cts_sha256(buf, HMAC_BLOCK + CTS_SHA256_LEN, out);
    free(buf);
}

static char *b64_json(json_t *obj)
{
    /* JSON_PRESERVE_ORDER keeps insertion order, so equal claims always
     * serialise to equal bytes (the demo token must be reproducible). */
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *enc;
    if (s == NULL)
        abort(); /* only allocation can fail for these objects */
    enc = cts_base64url_encode(s, strlen(s));
    free(s); /* json_dumps output is freed with free() */
    return enc;
}

static char *sign(const char *secret, const char *data, size_t len)
{
    uint8_t mac[32];
    sbo_hmac_sha256(secret, strlen(secret), data, len, mac);
    return cts_base64url_encode(mac, sizeof(mac));
}

char *sbo_jwt_encode(const char *secret, const struct sbo_jwt_claims *c)
{
    json_t *hdr = json_object(), *pl = json_object(), *scp = json_array();
    char *h, *p, *sig, *signing, *tok;

    if (hdr == NULL || pl == NULL || scp == NULL)
        abort();
    json_object_set_new(hdr, "alg", json_string("HS256"));
    json_object_set_new(hdr, "typ", json_string("JWT"));
    json_object_set_new(hdr, "kid", json_string("ctct-sandbox"));

    if (c->scope != NULL) {
        const char *s = c->scope;
        while (*s != '\0') {
            size_t n = strcspn(s, " +");
            if (n > 0)
                json_array_append_new(scp, json_stringn(s, n));
            s += n;
            if (*s != '\0')
                s++;
        }
    }
    json_object_set_new(pl, "iss", json_string(SBO_JWT_ISS));
    json_object_set_new(pl, "aud", json_string(SBO_JWT_AUD));
    json_object_set_new(pl, "cid", json_string(c->cid ? c->cid : ""));
    json_object_set_new(pl, "sub", json_string(c->sub ? c->sub : ""));
    json_object_set_new(
        pl, "platform_user_id",
        json_string(c->platform_user_id ? c->platform_user_id : ""));
    json_object_set_new(pl, "iat", json_integer(c->iat));
    json_object_set_new(pl, "exp", json_integer(c->exp));
    json_object_set_new(pl, "scp", scp);
    json_object_set_new(pl, "jti", json_string(c->jti ? c->jti : ""));

    h = b64_json(hdr);
    p = b64_json(pl);
    json_decref(hdr);
    json_decref(pl);
    signing = cts_xasprintf("%s.%s", h, p);
    sig = sign(secret, signing, strlen(signing));
    tok = cts_xasprintf("%s.%s", signing, sig);
    free(h);
    free(p);
    free(sig);
    free(signing);
    return tok;
}

static json_t *decode_part(const char *s, size_t len)
{
    size_t n;
    char *raw = cts_base64_decode(s, len, &n);
    json_t *j;
    if (raw == NULL)
        return NULL;
    j = json_loadb(raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Compare without an early exit, so timing says nothing about where two
 * signatures differ (habit more than need in a sandbox). */
static int consttime_eq(const char *a, const char *b, size_t len)
{
    unsigned char d = 0;
    size_t i;
    for (i = 0; i < len; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int sbo_jwt_decode(const char *secret, const char *token, json_t **payload)
{
    const char *d1, *d2;
    json_t *hdr = NULL, *pl = NULL;
    char *sig = NULL;
    int rc = SBO_JWT_EFORMAT;
    json_t *alg;

    if (payload != NULL)
        *payload = NULL;
    if (token == NULL)
        return SBO_JWT_EFORMAT;
    d1 = strchr(token, '.');
    if (d1 == NULL)
        return SBO_JWT_EFORMAT;
    d2 = strchr(d1 + 1, '.');
    if (d2 == NULL || strchr(d2 + 1, '.') != NULL || d1 == token ||
        d2 == d1 + 1 || d2[1] == '\0')
        return SBO_JWT_EFORMAT;

    hdr = decode_part(token, (size_t)(d1 - token));
    pl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (hdr == NULL || pl == NULL)
        goto out;
    alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0) {
        /* Refusing anything but HS256 closes the classic "alg":"none"
         * hole. */
        rc = SBO_JWT_EALG;
        goto out;
    }
    /* Our encoder is canonical (base64url, no padding), so comparing the
     * encoded MAC is exact and also rejects padded or re-encoded forms. */
    sig = sign(secret, token, (size_t)(d2 - token));
    if (strlen(sig) != strlen(d2 + 1) ||
        !consttime_eq(sig, d2 + 1, strlen(sig))) {
        rc = SBO_JWT_ESIGNATURE;
        goto out;
    }
    rc = SBO_JWT_OK;
    if (payload != NULL) {
        *payload = pl;
        pl = NULL;
    }
out:
    free(sig);
    json_decref(hdr);
    json_decref(pl);
    return rc;
}

int sbo_pkce_s256_ok(const char *verifier, const char *challenge)
{
    uint8_t d[CTS_SHA256_LEN];
    size_t n, i;
    char *enc;
    int ok;

    if (verifier == NULL || challenge == NULL)
        return 0;
    /* RFC 7636 §4.1: 43..128 characters of [A-Z a-z 0-9 - . _ ~]. */
    n = strlen(verifier);
    if (n < 43 || n > 128)
        return 0;
    for (i = 0; i < n; i++) {
        char c = verifier[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
              c == '~'))
            return 0;
    }
    cts_sha256(verifier, n, d);
    enc = cts_base64url_encode(d, sizeof(d));
    ok = strcmp(enc, challenge) == 0;
    free(enc);
    return ok;
}

/* The pieces of an absolute URI, as spans into the original string. */
struct uri {
    const char *scheme, *host, *port, *path, *query, *frag;
    size_t scheme_n, host_n, port_n, path_n, query_n, frag_n;
    int has_query, has_frag;
};

static int split_uri(const char *s, struct uri *u)
{
    const char *p, *auth_end, *colon;
    memset(u, 0, sizeof(*u));
    p = strstr(s, "://");
    if (p == NULL || p == s)
        return -1;
    u->scheme = s;
    u->scheme_n = (size_t)(p - s);
    p += 3;
    auth_end = p + strcspn(p, "/?#");
    if (auth_end == p)
        return -1;
    /* user@ is not used by redirect URIs; keep it in the host span so a
     * difference there is still reported. */
    colon = NULL;
    if (*p == '[') { /* IPv6 literal: the port colon follows ']' */
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        if (rb == NULL)
            return -1;
        if (rb + 1 < auth_end && rb[1] == ':')
            colon = rb + 1;
    } else {
        colon = memchr(p, ':', (size_t)(auth_end - p));
    }
    u->host = p;
    u->host_n = (size_t)((colon != NULL ? colon : auth_end) - p);
    if (colon != NULL) {
        u->port = colon + 1;
        u->port_n = (size_t)(auth_end - colon - 1);
    }
    p = auth_end;
    u->path = p;
    u->path_n = strcspn(p, "?#");
    p += u->path_n;
    if (*p == '?') {
        u->has_query = 1;
        u->query = p + 1;
        u->query_n = strcspn(p + 1, "#");
        p += 1 + u->query_n;
    }
    if (*p == '#') {
        u->has_frag = 1;
        u->frag = p + 1;
        u->frag_n = strlen(p + 1);
    }
    return 0;
}

static int span_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

const char *sbo_redirect_mismatch(const char *registered, const char *given)
{
    struct uri r, g;
    if (registered == NULL || given == NULL)
        return "uri";
    if (strcmp(registered, given) == 0)
        return NULL;
    /* Not equal: name the first component that differs, so the error
     * description (and ctct-sync's diagnosis) can say what to fix. */
    if (split_uri(registered, &r) != 0 || split_uri(given, &g) != 0)
        return "uri";
    if (!span_eq(r.scheme, r.scheme_n, g.scheme, g.scheme_n))
        return "scheme";
    if (!span_eq(r.host, r.host_n, g.host, g.host_n))
        return "host";
    if (!span_eq(r.port, r.port_n, g.port, g.port_n) ||
        (r.port == NULL) != (g.port == NULL))
        return "port";
    if (!span_eq(r.path, r.path_n, g.path, g.path_n))
        return "path";
    if (r.has_query != g.has_query ||
        !span_eq(r.query, r.query_n, g.query, g.query_n))
        return "query";
    return "fragment";
}

int sbo_redirect_score(const char *registered, const char *given)
{
    struct uri r, g;
    int n = 0;
    if (registered == NULL || given == NULL || split_uri(registered, &r) != 0 ||
        split_uri(given, &g) != 0)
        return -1;
    n += span_eq(r.scheme, r.scheme_n, g.scheme, g.scheme_n);
    n += span_eq(r.host, r.host_n, g.host, g.host_n);
    n += span_eq(r.port, r.port_n, g.port, g.port_n) &&
         (r.port == NULL) == (g.port == NULL);
    n += span_eq(r.path, r.path_n, g.path, g.path_n);
    n += r.has_query == g.has_query &&
         span_eq(r.query, r.query_n, g.query, g.query_n);
    n +=
        r.has_frag == g.has_frag && span_eq(r.frag, r.frag_n, g.frag, g.frag_n);
    return n;
}

char *sbo_url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i;
    char *out = cts_xmalloc(3 * n + 1), *o = out;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/*
 * sb.h's hook: the access token of POST /_sandbox/token and the demo token.
 * Deterministic by contract (same inputs, same token), so the jti is a hash
 * of the inputs rather than random; the OAuth flows in oauth.c call
 * sbo_jwt_encode with a random jti instead.  The scopes are those
 * ctct-sync asks for.  srv is unused: the secret is fixed (see sb_oauth.h).
 */
char *sb_jwt_mint(struct sb_server *srv, const char *client_id,
                  const struct sb_account *acct, int64_t iat, int64_t exp)
{
    struct sbo_jwt_claims c;
    char jti[40];
    char *seed;
    uint64_t h;

    (void)srv;
    seed = cts_xasprintf("%s|%s|%lld|%lld", client_id,
                         acct != NULL ? acct->encoded_account_id : "",
                         (long long)iat, (long long)exp);
    h = cts_hash64(seed, strlen(seed), 0x5bd1e995u);
    free(seed);
    snprintf(jti, sizeof(jti), "sb-%016llx", (unsigned long long)h);

    memset(&c, 0, sizeof(c));
    c.cid = client_id;
    c.sub = acct != NULL ? acct->user_name : "";
    c.platform_user_id = acct != NULL ? acct->encoded_account_id : "";
    c.iat = iat;
    c.exp = exp;
    c.scope = SBO_DEFAULT_SCOPE;
    c.jti = jti;
    return sbo_jwt_encode(SBO_JWT_SECRET, &c);
}
