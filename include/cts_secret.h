/*
 * cts_secret.h — the one way secrets (API keys, access and refresh tokens,
 * client secrets, authorization codes) are shown: masked.
 *
 * The rule, used by the log, the account check, the HTTP layer and the
 * report alike:
 *   - 13 characters or more: the first 4 and the last 4 characters around
 *     "…" ("f98b…5420");
 *   - 1 to 12 characters: "****" (too short to show any part of it);
 *   - NULL: "(none)".
 * Characters are bytes: keys and tokens are ASCII.
 *
 * Text that may hold a secret is masked by value (cts_redact: the caller
 * knows the secrets) or by position (cts_url_redact: values of secret
 * query or form parameters).  A value is looked for only when it has at
 * least CTS_SECRET_MIN characters; shorter ones would match ordinary
 * words, and no real key or token is that short.
 */
#ifndef CTS_SECRET_H
#define CTS_SECRET_H

#include <stdarg.h>
#include <stddef.h>

/* Bytes that hold any mask with its NUL. */
#define CTS_MASK_SIZE 16
/* Shortest value cts_redact looks for. */
#define CTS_SECRET_MIN 8

/* Mask secret (borrowed, may be NULL) by the rule above into out, a
 * NUL-terminated string of at most CTS_MASK_SIZE bytes.  Returns out. */
char *cts_mask(const char *secret, char out[static CTS_MASK_SIZE]);

/*
 * Replace in buf (a NUL-terminated string in cap bytes) every occurrence
 * of each secret, and of its percent-encoded form as it appears in URLs
 * and form bodies, by cts_mask(secret).  secrets[0..n) are borrowed;
 * NULL entries and values shorter than CTS_SECRET_MIN are skipped.
 * A mask is never longer than what it replaces, so buf only shrinks.
 *
 * A message cut by snprintf can end in the first part of a secret.  When
 * buf is full (strlen(buf) == cap - 1, the mark of a cut), a secret's
 * first 4 or more characters at the very end are replaced too, by the
 * secret's mask cut to the same length at a character boundary (so the
 * line still shows no more than the first 4 and last 4 characters).
 * Returns the new length of buf.
 */
size_t cts_redact(char *buf, size_t cap, const char *const *secrets, size_t n);

/* 1 when s (borrowed) contains one of secrets[0..n) (or its percent-encoded
 * form) that cts_redact would mask, else 0. */
int cts_redact_needed(const char *s, const char *const *secrets, size_t n);

/*
 * vsnprintf into buf[cap] with the secrets masked BEFORE the text is cut
 * to cap: a message longer than buf is formatted whole on the heap, masked
 * by cts_redact, then copied and cut at a UTF-8 character boundary.  So a
 * cut message never ends in part of a secret.  Returns the length written
 * (< cap), or a negative value when vsnprintf fails (buf is then "").
 */
int cts_redact_vformat(char *buf, size_t cap, const char *const *secrets,
                       size_t n, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/*
 * Copy of s[0..len) (a URL, a query string or a form body) with the value
 * of every secret parameter (api_key, access_token, refresh_token,
 * client_secret, code, code_verifier, token, device_code) masked by
 * cts_mask.  A parameter counts at the start of s or after '?' or '&';
 * its value ends at '&', ' ', '#', CR or LF.  The password of a URL's
 * user:password@ (after "://") becomes "****" too (a proxy URL as
 * libcurl's verbose text names it).  Returns an owned string.
 */
char *cts_redact_params(const char *s, size_t len);

/* cts_redact_params over the whole of url; NULL gives "".  Owned. */
char *cts_url_redact(const char *url);

#endif /* CTS_SECRET_H */
