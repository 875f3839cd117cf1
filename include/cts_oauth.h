/*
 * cts_oauth.h — the `auth` command: get OAuth2 tokens for ctct-sync and
 * save them in the token file.  The refresh of v3 tokens is cts_refresh.h;
 * the redirect-URI diagnosis is cts_redirect.h.
 *
 * Flows:
 *   v2  authorization code:  {auth}/oauth/siteowner/authorize → code →
 *       POST {auth}/oauth/token (client_id, client_secret, code,
 *       redirect_uri); no refresh token, 10-year access token.
 *   v3  authorization code + PKCE S256: {auth}/authorize → code →
 *       POST {auth}/token (client_id, code_verifier, redirect_uri);
 *       scopes "contact_data+account_read+offline_access".
 *   v3  device flow (--device): POST {auth}/device/authorize, then poll
 *       POST {auth}/token with the server's interval, honouring slow_down.
 *   v3  refresh: see cts_refresh.h.
 *
 * The listener, the browser wait and the device-flow polling run on
 * private uv loops; no secret is ever printed (cts_mask).
 */
#ifndef CTS_OAUTH_H
#define CTS_OAUTH_H

#include <stddef.h>

#include "cts_config.h"
/* The refresh used to be declared here: callers that include only this
 * header keep compiling.  New code includes cts_refresh.h. */
#include "cts_refresh.h"
#include "cts_util.h"

/*
 * `ctct-sync auth`: list every configuration problem at once, the redirect
 * URI's first (cts_config_check_auth; exit 78, or 64, before any request),
 * run the v2 or v3 flow, write cfg->token_file (0600, atomic; required) and
 * print a short summary (tokens masked).  The loopback listener ends when
 * the code has arrived or the wait timed out, closing whatever
 * connections a browser still holds.  Returns
 * the exit code: 0, 64 (usage), 69 (server unreachable), 75 (timed out
 * waiting for the browser), 77 (denied / rejected by the server), 78
 * (configuration).  cfg borrowed.
 */
int cts_cmd_auth(struct cts_config *cfg);

/* PKCE S256: base64url(sha256(verifier)); returns an owned string. */
char *cts_oauth_pkce_challenge(const char *verifier);

#endif /* CTS_OAUTH_H */
