/*
 * cts_oauth.h — OAuth2 for ctct-sync (spec §9): the `auth` command, the v3
 * token refresh used by `check` / `import`, and the redirect-URI diagnosis.
 *
 * Flows (reference §1.5, §2.7):
 *   v2  authorization code:  {auth}/oauth/siteowner/authorize → code →
 *       POST {auth}/oauth/token (client_id, client_secret, code,
 *       redirect_uri); no refresh token, 10-year access token.
 *   v3  authorization code + PKCE S256: {auth}/authorize → code →
 *       POST {auth}/token (client_id, code_verifier, redirect_uri);
 *       scopes "contact_data+account_read+offline_access".
 *   v3  device flow (--device): POST {auth}/device/authorize, then poll
 *       POST {auth}/token with the server's interval, honouring slow_down.
 *   v3  refresh: POST {auth}/token grant_type=refresh_token.  Refresh tokens
 *       may rotate (single use): the new one is written to the token file
 *       atomically before anything else happens.
 *
 * Crash between refresh and save (why it cannot be made fully safe, and
 * what we do): the server consumes a rotating refresh token the moment it
 * answers, and the replacement exists only in that answer.  If the process
 * dies (or the connection drops) after the server answered and before the
 * file is replaced, no client-side design can get the new token back.  We
 * therefore (1) take an exclusive lock <token_file>.lock so two runs never
 * spend the same refresh token, and re-read the file under the lock (the
 * other run may have refreshed already); (2) write an intent record
 * <token_file>.refresh (0600, atomic: time, pid, SHA-256 prefix of the
 * refresh token being spent — never the token) before the call; (3) on
 * success replace the token file before anything else, then remove the
 * intent; (4) when a later refresh is rejected with invalid_grant and the
 * intent record names the same refresh token, the message says that an
 * earlier run was interrupted mid-refresh, that the token cannot be
 * recovered, and gives the exact `ctct-sync auth` command (exit 77).
 * Test hook: CTCT_SYNC_TEST_CRASH_AFTER_REFRESH=1 makes the process
 * _exit(70) after the server answered and before the save.
 *
 * The token endpoint allows 1 request/s: the time of our last call is kept
 * in the token file ("last_refresh_at") and a refresh waits on a uv timer
 * until a full second has passed.
 *
 * Every function that talks to the network uses cts_http_fetch (blocking,
 * private loop) and never prints a secret (cts_mask).
 */
#ifndef CTS_OAUTH_H
#define CTS_OAUTH_H

#include <stddef.h>

#include "cts_config.h"
#include "cts_util.h"

/* Seconds of slack added to the planned run duration when deciding
 * whether an access token must be refreshed before a run. */
#define CTS_OAUTH_MARGIN_S 120
/* Planned durations are capped at 20 h: v3 access tokens live 24 h, so a
 * longer run needs the mid-run refresh (cts_oauth_refresh) anyway. */
#define CTS_OAUTH_MAX_PLAN_S (20L * 3600)

/*
 * `ctct-sync auth`: validate the redirect URI (exit 78 before any request
 * when it is wrong), run the v2 or v3 flow, write cfg->token_file (0600,
 * atomic; required) and print a short summary (tokens masked).  Returns
 * the §7 exit code: 0, 64 (usage), 69 (server unreachable), 75 (timed out
 * waiting for the browser), 77 (denied / rejected by the server), 78
 * (configuration).  cfg borrowed.
 */
int cts_cmd_auth(struct cts_config *cfg);

/*
 * Before a run expected to last planned_seconds: when cfg->api is v3 and
 * the access token (JWT "exp", else cfg->token_expires_at) has expired or
 * expires before now + planned_seconds (at most CTS_OAUTH_MAX_PLAN_S) +
 * CTS_OAUTH_MARGIN_S, and the token file holds a refresh token, refresh
 * once (see above) and update cfg (token, refresh_token, token_expires_at).  Does nothing and returns 0
 * for v2, for a token that is fresh enough, and for a token whose expiry
 * is unknown (an opaque token is then checked by the account call).
 * An expired token without a refresh token: CTS_EAUTH, exit 77, with the
 * `ctct-sync auth` command to run.  Errors: CTS_EAUTH (77: refresh
 * rejected), CTS_EHTTP (69: token endpoint unreachable or 5xx),
 * CTS_ECONFIG (78: token file unreadable or unwritable).  cfg borrowed.
 */
int cts_oauth_ensure_fresh(struct cts_config *cfg, long planned_seconds,
                           struct cts_error *err);

/*
 * Refresh the v3 access token now (the pipeline calls it once when the API
 * answers 401 mid-run).  Same locking, intent record, 1 request/s spacing
 * and errors as cts_oauth_ensure_fresh; if another process refreshed the
 * file since cfg was loaded, its newer token is adopted without a call.
 * CTS_EAUTH (77) when there is no refresh token.  cfg borrowed.
 */
int cts_oauth_refresh(struct cts_config *cfg, struct cts_error *err);

/*
 * The "exp" claim of a JWT access token (payload decoded, signature not
 * checked).  Returns 0 and sets *exp, or CTS_EJSON when token (borrowed)
 * is not a JWT with a numeric exp.
 */
int cts_oauth_jwt_exp(const char *token, long *exp);

/* PKCE S256: base64url(sha256(verifier)); returns an owned string. */
char *cts_oauth_pkce_challenge(const char *verifier);

/* ---- redirect URIs (redirect.c: pure, no I/O) ---- */

/* A parsed absolute URI.  All strings owned (NULL when absent); free with
 * cts_uri_clear.  host is lower-cased; IPv6 hosts keep their brackets. */
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
void cts_uri_clear(struct cts_uri *u);
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

#endif /* CTS_OAUTH_H */
