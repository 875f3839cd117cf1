/*
 * cts_account.h — the account check (run before any write) and the
 * account's lists, plus the `check` and `lists` commands.
 *
 * The check exists because the Constant Contact API does not cross-check an
 * API key against an access token: a key of account A with a token of
 * account B writes into B without any error.  Before any write, the client
 * proves that the token was issued for the configured key (v2 tokeninfo
 * `client_id`, v3 JWT `cid`) and, when --account is given, that it belongs to
 * that account (v2 `user_name`, v3 `/account/summary` `encoded_account_id`).
 *
 * All calls here are blocking (cts_http_fetch); they run before the
 * pipeline's loop starts.  Every failure fills err (may be NULL) with a
 * one-line message whose secrets are masked (cts_mask) and sets
 * err->exit_code to the sysexits code: 77 credentials invalid, expired or
 * mismatched, 69 API unreachable or answering 5xx, 78 configuration
 * (missing credentials), 65 unknown list id.
 */
#ifndef CTS_ACCOUNT_H
#define CTS_ACCOUNT_H

#include <stddef.h>

#include "cts_api.h"
#include "cts_config.h"
#include "cts_util.h"

/* Who the token belongs to.  All strings owned; NULL when unknown. */
struct cts_account_info {
    enum cts_api api;
    char *account;       /* v2 user_name, v3 encoded_account_id */
    char *organization;  /* v3 organization_name (v2: NULL) */
    char *contact_email; /* v3 contact_email (v2: NULL) */
    char *client_id;     /* key the token was issued for: v2 tokeninfo
                            client_id, v3 JWT cid; NULL for an opaque v3
                            token */
    long expires_at;     /* unix time the token expires, 0 if unknown */
    int refreshed;       /* 1 when the check refreshed the v3 token first */
};

/* Free the strings of info (not the struct); NULL-safe, idempotent. */
void cts_account_info_free(struct cts_account_info *info);

/*
 * Run the account check for cfg->api.  Returns 0 and fills *out
 * (owned; clear with cts_account_info_free) when the token is valid and
 * matches cfg->api_key and cfg->account (each when set); otherwise a
 * negative code (CTS_EAUTH, CTS_ECONFIG, CTS_EHTTP, ...) with err->exit_code
 * set, and *out zeroed.  cfg is borrowed; it is written to only when a v3
 * token is refreshed through the OAuth module (cfg->token and friends are
 * then replaced and the token file rewritten by that module).
 * Nothing is ever written to the account.
 */
int cts_account_check(struct cts_config *cfg, struct cts_account_info *out,
                      struct cts_error *err);

/* The account's contact lists (struct cts_list_info is in cts_api.h: id,
 * name, member_count — -1 when the API did not say). */
struct cts_list_set {
    struct cts_list_info *items; /* owned array of n */
    size_t n;
};

/* Free the lists (not the struct); NULL-safe. */
void cts_list_set_free(struct cts_list_set *set);

/*
 * Fetch every list of the account (v2 GET {base}/lists?api_key=…, v3
 * GET {base}/contact_lists?include_membership_count=all, following the v3
 * pagination).  Fills *out (owned) and returns 0, or a negative code with
 * err->exit_code set (77 on 401, 69 unreachable/5xx).  cfg is borrowed.
 * Call after cts_account_check.
 */
int cts_account_fetch_lists(const struct cts_config *cfg,
                            struct cts_list_set *out, struct cts_error *err);

/*
 * Check that every id in cfg->lists exists in *lists (borrowed).  Returns 0,
 * or CTS_EDATA with err->exit_code 65 and a message naming the unknown ids
 * and the valid ones ("id (name)").  An empty cfg->lists is accepted here;
 * `import` itself requires at least one --list.
 */
int cts_account_check_lists(const struct cts_config *cfg,
                            const struct cts_list_set *lists,
                            struct cts_error *err);

/*
 * `ctct-sync check`: run the check and print (stdout) who the token belongs
 * to — api, account, organization, key and token masked, expiry.  Writes
 * nothing.  Returns the exit code (0, 69, 77, 78).  cfg borrowed.
 */
int cts_cmd_check(struct cts_config *cfg);

/*
 * `ctct-sync lists`: run the check, then print the lists as aligned columns
 * ID NAME MEMBERS, or as a JSON array with --json (cfg->json).  Returns the
 * exit code, as cts_cmd_check does.  cfg borrowed.
 */
int cts_cmd_lists(struct cts_config *cfg);

#endif /* CTS_ACCOUNT_H */
