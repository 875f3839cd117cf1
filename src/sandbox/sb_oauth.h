/*
 * sb_oauth.h — ctct-sandbox's OAuth pieces (helper "sboauth"): the pure
 * primitives in jwt.c (HMAC-SHA256, HS256 JWTs, PKCE S256, exact
 * redirect-URI matching, URL encoding) and the route registration of
 * oauth.c (v2 /oauth2/..., v3 /oauth2/default/v1/..., POST /_sandbox/token)
 * and bulk.c (v2 and v3 bulk activities).
 *
 * jwt.c depends on nothing but cts_util.h and jansson, so unit tests can
 * include it directly (tests/sandbox/test_jwt.c).
 */
#ifndef SB_OAUTH_H
#define SB_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ---- options (ctct-sandbox command line) ---- */
struct sbo_options {
    long token_rate;  /* --token-rate: v3 token requests/s per client id
                         (0 = unlimited; default 1, as the real endpoint) */
    long token_ttl;   /* --token-ttl: v3 access token lifetime, s (86400) */
    long activity_ms; /* --activity-ms: bulk activity run time, ms (500) */
};
/*
 * Set option `name` (without "--") from its string value, before
 * sb_oauth_register/sb_bulk_register run.  Returns 0, CTS_EUSAGE for a bad
 * value, or 1 when the name is not one of the options above.
 */
int sbo_set_option(const char *name, const char *value);
/* The current options (borrowed, static storage). */
const struct sbo_options *sbo_get_options(void);

/* ---- HMAC-SHA256 (RFC 2104 over cts_sha256) ---- */
/* key and msg are borrowed; out receives the 32-byte MAC. */
void sbo_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                     uint8_t out[32]);

/* ---- HS256 JWTs ---- */
/* Fixed signing secret of the sandbox: tokens must be reproducible (the
 * demo token is minted deterministically) and the sandbox is a test
 * server, not an identity provider. */
#define SBO_JWT_SECRET "ctct-sandbox-hs256-signing-secret"
#define SBO_JWT_ISS    "ctct-sandbox"
#define SBO_JWT_AUD    "https://api.cc.email/v3"
/* Scopes of minted test tokens (POST /_sandbox/token, the demo token). */
#define SBO_DEFAULT_SCOPE "contact_data account_read offline_access"

struct sbo_jwt_claims {
    const char *cid;              /* client id (the v3 "API key") */
    const char *sub;              /* subject (the user) */
    const char *platform_user_id; /* the account's user id */
    long long iat;
    long long exp;
    const char *scope; /* space-separated scopes, become "scp":[...] */
    const char *jti;   /* unique token id */
};

/*
 * Encode a signed JWT: base64url(header).base64url(payload).base64url(mac),
 * header {"alg":"HS256","typ":"JWT","kid":"ctct-sandbox"}, payload
 * {iss,aud,cid,sub,platform_user_id,iat,exp,scp,jti} in that order, so the
 * same claims always give the same token.  secret and c are borrowed.
 * Returns an owned string, never NULL (allocation failure aborts).
 */
char *sbo_jwt_encode(const char *secret, const struct sbo_jwt_claims *c);

/* sbo_jwt_decode results */
enum {
    SBO_JWT_OK = 0,
    SBO_JWT_EFORMAT = -1,   /* not three base64url parts of JSON objects */
    SBO_JWT_EALG = -2,      /* header alg is not HS256 */
    SBO_JWT_ESIGNATURE = -3 /* signature does not verify */
};

/*
 * Verify token's HS256 signature with secret and decode its payload.
 * token and secret are borrowed.  On SBO_JWT_OK *payload (if not NULL)
 * receives a new reference the caller must json_decref; on failure it is
 * set to NULL.  Expiry is NOT checked here: the caller compares "exp"
 * with the sandbox clock.
 */
int sbo_jwt_decode(const char *secret, const char *token, json_t **payload);

/* ---- PKCE (RFC 7636) ---- */
/*
 * 1 when base64url(sha256(verifier)) equals challenge (method S256), 0
 * otherwise (also when either is NULL or the verifier is outside RFC
 * 7636's 43..128 unreserved characters).
 */
int sbo_pkce_s256_ok(const char *verifier, const char *challenge);

/* ---- redirect URIs ---- */
/*
 * Compare a requested redirect URI with a registered one the way the
 * authorization servers do: byte for byte, nothing normalised.  Returns
 * NULL when they are identical, otherwise a static phrase naming the first
 * component that differs ("scheme", "host", "port", "path", "query",
 * "fragment" or "uri" when one of them is not an absolute URI), for the
 * error_description.  Both strings are borrowed.
 */
const char *sbo_redirect_mismatch(const char *registered, const char *given);

/*
 * How alike two URIs are: the number of components (scheme, host, port,
 * path, query, fragment) that are identical, 0..6; -1 when either is not
 * an absolute URI.  Picks the registered URI a mistaken one was meant to
 * be, for the error message.  Both strings are borrowed.
 */
int sbo_redirect_score(const char *registered, const char *given);

/* ---- URL encoding ---- */
/* Percent-encode s for a query value (RFC 3986 unreserved kept); owned. */
char *sbo_url_encode(const char *s);

#endif /* SB_OAUTH_H */
