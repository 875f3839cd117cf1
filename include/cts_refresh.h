/*
 * cts_refresh.h — the v3 access token refresh with rotation: before a run
 * when the token expires too soon (`check`, `import`), and once mid-run
 * when the API answers 401 (the pipeline).
 *
 * The call: POST {auth}/token grant_type=refresh_token.  Refresh tokens
 * may rotate (single use): the new one is written to the token file
 * atomically before anything else happens.
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
 * The network call is a blocking cts_http_fetch (private loop); no
 * secret is ever printed (cts_mask).
 */
#ifndef CTS_REFRESH_H
#define CTS_REFRESH_H

#include "cts_config.h"
#include "cts_util.h"

/* Seconds of slack added to the planned run duration when deciding
 * whether an access token must be refreshed before a run. */
#define CTS_OAUTH_MARGIN_S 120
/* Planned durations are capped at 20 h: v3 access tokens live 24 h, so a
 * longer run needs the mid-run refresh (cts_oauth_refresh) anyway. */
#define CTS_OAUTH_MAX_PLAN_S (20L * 3600)

/*
 * Before a run expected to last planned_seconds: when cfg->api is v3 and
 * the access token (JWT "exp", else cfg->token_expires_at) has expired or
 * expires before now + planned_seconds (at most CTS_OAUTH_MAX_PLAN_S) +
 * CTS_OAUTH_MARGIN_S, and the token file holds a refresh token, refresh
 * once (see above) and update cfg (token, refresh_token,
 * token_expires_at).  Does nothing and returns 0 for v2, for a token that
 * is fresh enough, and for a token whose expiry is unknown (an opaque
 * token is then checked by the account call).
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

#endif /* CTS_REFRESH_H */
