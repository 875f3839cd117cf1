/*
 * oauth_int.h — internal to the OAuth files (not a public contract): the
 * token endpoint client that the `auth` command (oauth.c) and the token
 * refresh (refresh.c) share, implemented in oauth_token.c.
 */
#ifndef CTS_OAUTH_INT_H
#define CTS_OAUTH_INT_H

#include <stdint.h>

#include <jansson.h>

#include "cts_config.h"
#include "cts_util.h"

/* A token endpoint's answer.  Strings owned (NULL when absent); release
 * with cts_oauth_resp_clear, which also wipes the tokens. */
struct cts_oauth_resp {
    long status;
    int transport_error;
    int maybe_landed;
    long retry_after_s;
    char *access_token, *refresh_token, *error, *error_description;
    long expires_in; /* 0 when absent */
    long interval;   /* device flow, 0 when absent */
    char *device_code, *user_code, *verification_uri,
        *verification_uri_complete;
};
void cts_oauth_resp_clear(struct cts_oauth_resp *r);

/*
 * POST the form body (borrowed) to a token endpoint url (borrowed), with
 * HTTP basic authentication when basic_user is not NULL.  Transport
 * failures are not retried (a token call spends a code or a rotating
 * refresh token); a 429 is retried once after Retry-After.  Returns 0 when
 * the server answered (any status, parsed into *out), CTS_EHTTP (err
 * filled, exit 69) when it did not.
 */
int cts_oauth_post_form(const struct cts_config *cfg, const char *url,
                        const char *body, const char *basic_user,
                        const char *basic_pass, struct cts_oauth_resp *out,
                        struct cts_error *err);

/* Append "&key=value" (value escaped) to a form body. */
void cts_oauth_form_add(struct cts_buf *b, const char *key, const char *value);

/* Expiry of a freshly issued access token: the JWT's own exp when it has
 * one, else now + expires_in, else unknown (0). */
long cts_oauth_new_expiry(const struct cts_config *cfg,
                          const struct cts_oauth_resp *r);

/* Real wall-clock time in milliseconds: the token endpoint's 1 request/s
 * is about real time, whatever CTCT_SYNC_NOW says. */
uint64_t cts_oauth_real_ms(void);
/* The time of a token-endpoint call for "last_refresh_at": real time
 * rounded up to a whole second. */
long cts_oauth_call_time(void);
/* Wait ms milliseconds on a private loop's timer (no sleep() for timing). */
void cts_oauth_wait_ms(uint64_t ms);

/* A number member that may also be a decimal string (v2 sends expires_in
 * as "308874923"); 0 when absent or malformed. */
long cts_oauth_jlong(json_t *o, const char *k);

/* Remove <token_file>.refresh, the record of an interrupted refresh (a
 * fresh authorization supersedes it).  refresh.c. */
void cts_oauth_intent_remove(const char *token_file);

#endif /* CTS_OAUTH_INT_H */
