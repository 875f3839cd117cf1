/*
 * cts_redirect.h — redirect URIs for the `auth` command: parsing, the
 * diagnosis of the usual mistakes before anything is sent, and plain-words
 * explanations of OAuth error codes.  Pure: no I/O, no globals.
 */
#ifndef CTS_REDIRECT_H
#define CTS_REDIRECT_H

#include "cts_util.h"

/* A parsed absolute URI.  All strings owned (NULL when absent); free with
 * cts_uri_free.  host is lower-cased; IPv6 hosts keep their brackets. */
struct cts_uri {
    char *scheme; /* lower-cased, e.g. "http" */
    char *host;
    char *port_str; /* as written, NULL when absent */
    long port;      /* explicit or the scheme's default (80/443), -1 */
    char *path;     /* "" when absent */
    char *query;    /* without '?', NULL when absent */
    char *fragment; /* without '#', NULL when absent */
    int has_userinfo;
};

/* Parse s (borrowed) as an absolute http(s) URI.  Returns 0, or CTS_EUSAGE
 * for a relative or malformed URI (out is then cleared). */
int cts_uri_parse(const char *s, struct cts_uri *out);
void cts_uri_free(struct cts_uri *u);
/* 1 when host is 127.0.0.1 (any 127/8), [::1] or "localhost". */
int cts_uri_is_loopback(const struct cts_uri *u);

/* The mistakes cts_redirect_check recognises (first one found wins). */
enum cts_redirect_problem {
    CTS_REDIR_OK = 0,
    CTS_REDIR_MISSING,        /* no redirect URI at all */
    CTS_REDIR_MALFORMED,      /* relative, unparsable, not http(s) */
    CTS_REDIR_AUTH_SERVER,    /* points at the authorization server */
    CTS_REDIR_FRAGMENT,       /* has a #fragment (forbidden by RFC 6749) */
    CTS_REDIR_HTTP_REMOTE,    /* http:// to a non-loopback host */
    CTS_REDIR_RESERVED_QUERY, /* query carries code/state/error itself */
    CTS_REDIR_REG_MALFORMED,  /* the registered URI itself is malformed */
    CTS_REDIR_LOCALHOST,      /* localhost vs 127.0.0.1 (or ::1) */
    CTS_REDIR_SCHEME,         /* differs from the registered one in ... */
    CTS_REDIR_HOST,
    CTS_REDIR_PORT,
    CTS_REDIR_PATH,
    CTS_REDIR_QUERY,
    CTS_REDIR_DIFFERENT /* same parts, different text (case, %XX) */
};

/*
 * Diagnose redirect_uri before anything is sent.  registered (the URI
 * registered in the developer portal: --registered-redirect-uri or config
 * redirect_uri) and auth_url (the authorization server's base URL) may be
 * NULL.  All strings borrowed.  When a problem is found, an explanation in
 * plain words (with both URIs side by side and a caret under the first
 * difference when they differ) is appended to why (may be NULL).
 * Returns the problem found, CTS_REDIR_OK when none.
 */
enum cts_redirect_problem cts_redirect_check(const char *redirect_uri,
                                             const char *registered,
                                             const char *auth_url,
                                             struct cts_buf *why);

/*
 * Explain an OAuth error answer ("redirect_uri_mismatch", "invalid_grant",
 * "access_denied", "invalid_client", ...) in plain words with what to do
 * next; description (the server's error_description), redirect_uri and
 * registered may be NULL.  Appends to out.  All strings borrowed.
 */
void cts_oauth_explain(const char *error, const char *description,
                       const char *redirect_uri, const char *registered,
                       struct cts_buf *out);

#endif /* CTS_REDIRECT_H */
