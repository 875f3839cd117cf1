/*
 * account.c — the account check (the token belongs to --api-key, and to
 * --account when given, before anything is written), the account's lists, and
 * the `check` and `lists` commands.
 *
 * Why this file exists: Constant Contact does not cross-check an API key
 * against an access token (a v2 key is only a query parameter and the
 * server never compares it with the token's), so a key of account A with a
 * token of account B silently writes into B.  Every write is therefore
 * preceded by cts_account_check, which compares what the server says about
 * the token with what the user configured, and refuses (exit 77) on any
 * difference.  All network calls are blocking (cts_http_fetch on a private
 * loop): they happen before the pipeline starts.
 */
#include "cts_account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cts_api.h"
#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_jwt.h"
#include "cts_oauth.h"
#include "cts_refresh.h"
#include "cts_secret.h"
#include "cts_url.h"

/* Response bodies of these calls are small; a hard cap protects us from a
 * misconfigured base URL that streams something huge. */
#define ACCOUNT_MAX_RESPONSE (4u << 20)

static void http_opts(const struct cts_config *cfg, struct cts_http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    o->connect_timeout_ms = o->timeout_ms < 10000 ? o->timeout_ms : 10000;
    o->max_response = ACCOUNT_MAX_RESPONSE;
    o->verbose = cfg->verbose;
}

static const char *api_name(enum cts_api api)
{
    return api == CTS_API_V2 ? "v2" : "v3";
}

/* The `ctct-sync auth` command line that fixes a credentials problem. */
static void auth_hint(const struct cts_config *cfg, char *buf, size_t n)
{
    snprintf(buf, n, "ctct-sync auth --api %s --api-key KEY --token-file %s",
             api_name(cfg->api),
             cfg->token_file != NULL ? cfg->token_file : "FILE");
}

/*
 * Map a reply that is not the expected 200 to an error: 5xx and transport
 * failures mean "try later / unreachable" (69), 401/403 mean the
 * credentials (77), 404/405 a wrong --base-url (78).  `what` names the
 * call for the message.
 */
static int reply_error(const struct cts_config *cfg, const char *what,
                       const char *url, struct cts_http_req *req,
                       struct cts_error *err)
{
    /* The URL is masked before it is formatted (v2's api_key). */
    char *key = NULL, *msg = NULL, *shown = cts_url_redact(url);
    char hint[300];
    int rc;

    cts_api_parse_error(req->resp.data != NULL ? req->resp.data : "",
                        req->resp.len, &key, &msg);
    auth_hint(cfg, hint, sizeof(hint));
    if (req->status == 401 || req->status == 403) {
        rc = cts_error_setx(
            err, CTS_EAUTH, CTS_EX_NOPERM,
            "%s was refused (HTTP %ld%s%s%s%s): the access token is "
            "invalid, expired or lacks a scope%s; get a new one with `%s`",
            what, req->status, key != NULL ? ", " : "", key != NULL ? key : "",
            msg != NULL ? ": " : "", msg != NULL ? msg : "",
            cfg->api == CTS_API_V3 ? " (needs account_read and contact_data)"
                                   : "",
            hint);
    } else if (req->status == 404 || req->status == 405) {
        /* No such endpoint: the base URL is wrong (a missing /v3, a v2
         * URL for v3), which waiting will not fix. */
        rc = cts_error_setx(
            err, CTS_EHTTP, CTS_EX_CONFIG,
            "%s at %s answered HTTP %ld%s%s; check --base-url: it must be "
            "the API root, such as %s",
            what, shown, req->status, msg != NULL ? ": " : "",
            msg != NULL ? msg : "",
            cfg->api == CTS_API_V2 ? "https://api.constantcontact.com/v2"
                                   : "https://api.cc.email/v3");
    } else {
        int later = req->status >= 500 || req->status == 429;
        rc = cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                            "%s at %s answered HTTP %ld%s%s%s", what, shown,
                            req->status, msg != NULL ? ": " : "",
                            msg != NULL ? msg : "",
                            later ? "; try again later" : "");
    }
    free(key);
    free(msg);
    free(shown);
    return rc;
}

static int unreachable(const char *what, const char *url, struct cts_error *err)
{
    /* cts_http_fetch filled err with libcurl's words; keep them.  The URL
     * is masked before it is formatted (v2's api_key is in the query). */
    char detail[sizeof(err->msg)];
    char *shown = cts_url_redact(url);
    int rc;
    snprintf(detail, sizeof(detail), "%s", err->msg);
    rc = cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                        "cannot reach %s at %s: %s", what, shown, detail);
    free(shown);
    return rc;
}

/* The configured secrets, masked in every message the account check
 * leaves in err: messages built from URLs (v2 puts the api_key in the
 * query) or from libcurl's and the server's words must not carry a secret
 * to the terminal.  The messages that name a URL mask it before it is
 * formatted; this is the last line of defence, and it also masks a secret
 * cut at the end of a message that did not fit err->msg. */
static void redact_secrets(const struct cts_config *cfg, struct cts_error *err)
{
    const char *secrets[3];
    if (err == NULL)
        return;
    secrets[0] = cfg->api_key;
    secrets[1] = cfg->token;
    secrets[2] = cfg->refresh_token;
    cts_redact(err->msg, sizeof(err->msg), secrets, 3);
}

void cts_account_info_free(struct cts_account_info *info)
{
    if (info == NULL)
        return;
    free(info->account);
    free(info->organization);
    free(info->contact_email);
    free(info->client_id);
    memset(info, 0, sizeof(*info));
}

/* ---- v2: tokeninfo ---- */

static int check_v2(struct cts_config *cfg, struct cts_account_info *out,
                    struct cts_error *err)
{
    struct cts_http_opts o;
    struct cts_http_req req;
    char *url = NULL, *esc = NULL, *body = NULL;
    char *client_id = NULL, *user_name = NULL;
    long expires_in = -1;
    char m1[CTS_MASK_SIZE], m2[CTS_MASK_SIZE], hint[300];
    int rc;

    if (cfg->api_key == NULL)
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "no API key: the v2 API needs --api-key");
    http_opts(cfg, &o);
    cts_http_req_init(&req);
    url = cts_xasprintf("%s/tokeninfo.htm", cfg->auth_url);
    /* The documented primary form: the token in a form body, never in the
     * URL (Constant Contact's tokeninfo documentation), so it does not end
     * up in any access log. */
    esc = cts_url_escape(cfg->token);
    body = cts_xasprintf("access_token=%s", esc);
    req.method = "POST";
    req.url = url;
    req.body = body;
    req.body_len = strlen(body);
    req.content_type = "application/x-www-form-urlencoded";
    req.idempotent = 1; /* tokeninfo only reads */
    rc = cts_http_fetch(&req, &o, err);
    if (rc != 0) {
        rc = unreachable("the v2 tokeninfo service", url, err);
        goto out;
    }
    auth_hint(cfg, hint, sizeof(hint));
    if (req.status == 404 || req.status == 400 || req.status == 401) {
        json_t *jwt = NULL;
        int v3_token = cts_jwt_payload(cfg->token, &jwt) == 0;
        json_decref(jwt);
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token %s is invalid or expired "
                            "(tokeninfo answered HTTP %ld)%s; get a new one "
                            "with `%s`",
                            cts_mask(cfg->token, m1), req.status,
                            v3_token ? " — it looks like a v3 (JWT) token: "
                                       "drop --api v2"
                                     : "",
                            hint);
        goto out;
    }
    if (req.status != 200) {
        rc = reply_error(cfg, "the v2 tokeninfo call", url, &req, err);
        goto out;
    }
    if (cts_api_parse_tokeninfo(req.resp.data, req.resp.len, &client_id,
                                &user_name, &expires_in) != 0) {
        rc = cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                            "the v2 tokeninfo call at %s gave an unexpected "
                            "reply (no client_id)",
                            url);
        goto out;
    }
    /* The seed of the project: the server happily accepts a key and a
     * token from different applications; we refuse here. */
    if (strcmp(client_id, cfg->api_key) != 0) {
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token was issued for API key %s, "
                            "but --api-key is %s; a key and a token must "
                            "come from the same application — get a token "
                            "for this key with `%s`",
                            cts_mask(client_id, m1), cts_mask(cfg->api_key, m2),
                            hint);
        goto out;
    }
    if (cfg->account != NULL &&
        (user_name == NULL || strcmp(user_name, cfg->account) != 0)) {
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token belongs to account '%s', but "
                            "--account is '%s'; nothing was written — use "
                            "a token of account '%s' (`%s`) or fix "
                            "--account",
                            user_name != NULL ? user_name : "(unknown)",
                            cfg->account, cfg->account, hint);
        goto out;
    }
    if (expires_in == 0) {
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token %s has expired; get a new one "
                            "with `%s`",
                            cts_mask(cfg->token, m1), hint);
        goto out;
    }
    out->api = CTS_API_V2;
    out->account = user_name;
    user_name = NULL;
    out->client_id = client_id;
    client_id = NULL;
    out->expires_at = expires_in > 0 ? cts_config_now(cfg) + expires_in : 0;
    rc = 0;
out:
    free(client_id);
    free(user_name);
    free(body);
    free(esc);
    free(url);
    cts_http_req_free(&req);
    return rc;
}

/* ---- v3: JWT claims, then /account/summary ---- */

static int account_summary(struct cts_config *cfg, struct cts_http_req *req,
                           char **urlp, struct cts_error *err)
{
    struct cts_http_opts o;
    http_opts(cfg, &o);
    cts_http_req_init(req);
    *urlp = cts_xasprintf("%s/account/summary", cfg->base_url);
    req->method = "GET";
    req->url = *urlp;
    req->bearer = cfg->token;
    return cts_http_fetch(req, &o, err);
}

static int check_v3(struct cts_config *cfg, struct cts_account_info *out,
                    struct cts_error *err)
{
    struct cts_http_req req;
    char *url = NULL, *cid = NULL, *acct = NULL, *org = NULL;
    long long exp = 0;
    long now = cts_config_now(cfg);
    char m1[CTS_MASK_SIZE], m2[CTS_MASK_SIZE], hint[300];
    int rc, is_jwt;

    cts_http_req_init(&req);
    auth_hint(cfg, hint, sizeof(hint));
    /* An expired or expiring JWT is refreshed first when the token file
     * holds a refresh token (OAuth module; a no-op for a fresh token, and
     * after import's own call with the run's planned duration). */
    {
        char *before = cfg->token != NULL ? cts_xstrdup(cfg->token) : NULL;
        rc = cts_oauth_ensure_fresh(cfg, 0, err);
        if (rc == 0 && cfg->token != NULL &&
            (before == NULL || strcmp(before, cfg->token) != 0))
            out->refreshed = 1;
        free(before);
        if (rc != 0)
            goto out;
    }
    if (cfg->token == NULL) {
        rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                            "no access token; get one with `%s`", hint);
        goto out;
    }

    /* An opaque (non-JWT) token has no claims: the account call alone
     * checks it. */
    is_jwt = cts_jwt_claims(cfg->token, &cid, &exp) == 0;
    if (is_jwt && cid != NULL && cfg->api_key != NULL &&
        strcmp(cid, cfg->api_key) != 0) {
        rc =
            cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                           "the access token was issued for API key %s, "
                           "but --api-key is %s; a key and a token must "
                           "come from the same application — get a token "
                           "for this key with `%s`",
                           cts_mask(cid, m1), cts_mask(cfg->api_key, m2), hint);
        goto out;
    }
    if (is_jwt && exp > 0 && exp <= (long long)now) {
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token %s expired %lld s ago and "
                            "could not be refreshed; get a new one with "
                            "`%s`",
                            cts_mask(cfg->token, m1), (long long)now - exp,
                            hint);
        goto out;
    }
    if (is_jwt && cid == NULL && cfg->api_key != NULL)
        cts_log_debug("the access token names no client id (cid); only the "
                      "account is checked");

    rc = account_summary(cfg, &req, &url, err);
    if (rc != 0) {
        rc = unreachable("the v3 API", url, err);
        goto out;
    }
    /* A 401 for a token we did not just refresh: refresh once (revoked or
     * clock skew) when a refresh token exists, then ask again. */
    if (req.status == 401 && cfg->refresh_token != NULL && !out->refreshed) {
        cts_http_req_free(&req);
        free(url);
        url = NULL;
        rc = cts_oauth_refresh(cfg, err);
        if (rc != 0)
            goto out;
        out->refreshed = 1;
        rc = account_summary(cfg, &req, &url, err);
        if (rc != 0) {
            rc = unreachable("the v3 API", url, err);
            goto out;
        }
    }
    if (req.status == 401) {
        /* A common slip: a v2 token used with the default --api v3. */
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token %s was rejected by %s (HTTP "
                            "401: invalid, revoked or expired)%s; get a new "
                            "one with `%s`",
                            cts_mask(cfg->token, m1), url,
                            is_jwt ? ""
                                   : " — it is not a v3 (JWT) token; if it "
                                     "is a v2 token, add --api v2",
                            hint);
        goto out;
    }
    if (req.status != 200) {
        rc = reply_error(cfg, "GET /account/summary", url, &req, err);
        goto out;
    }
    if (cts_api_parse_account_summary(req.resp.data, req.resp.len, &acct,
                                      &org) != 0) {
        rc = cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                            "GET %s gave an unexpected reply (no "
                            "encoded_account_id)",
                            url);
        goto out;
    }
    if (cfg->account != NULL && strcmp(acct, cfg->account) != 0) {
        rc = cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                            "the access token belongs to account '%s'%s%s%s, "
                            "but --account is '%s'; nothing was written — "
                            "use a token of account '%s' (`%s`) or fix "
                            "--account",
                            acct, org != NULL ? " (" : "",
                            org != NULL ? org : "", org != NULL ? ")" : "",
                            cfg->account, cfg->account, hint);
        goto out;
    }
    out->api = CTS_API_V3;
    out->account = acct;
    acct = NULL;
    out->organization = org;
    org = NULL;
    out->client_id = cid;
    cid = NULL;
    out->expires_at = exp > 0 ? (long)exp : cfg->token_expires_at;
    rc = 0;
out:
    free(cid);
    free(acct);
    free(org);
    free(url);
    cts_http_req_free(&req);
    return rc;
}

int cts_account_check(struct cts_config *cfg, struct cts_account_info *out,
                      struct cts_error *err)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (cfg->token == NULL &&
        !(cfg->api == CTS_API_V3 && cfg->refresh_token != NULL))
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "no access token: run `ctct-sync auth` to get "
                              "one, or try the sandbox's demo account "
                              "(`make demo`)");
    rc = cfg->api == CTS_API_V2 ? check_v2(cfg, out, err)
                                : check_v3(cfg, out, err);
    if (rc != 0) {
        cts_account_info_free(out);
        redact_secrets(cfg, err);
    }
    return rc;
}

/* ---- lists ---- */

void cts_list_set_free(struct cts_list_set *set)
{
    if (set == NULL)
        return;
    cts_list_info_free(set->items, set->n);
    set->items = NULL;
    set->n = 0;
}

/* v3 pagination: {"_links":{"next":{"href":"/v3/contact_lists?cursor=…"}}}.
 * *next = the next page's absolute URL (owned), NULL at the last page.
 * The link is followed only on --base-url's origin (cts_url_follow):
 * otherwise 0 is not returned and err says why. */
static int v3_next_url(const char *base, const char *body, size_t len,
                       char **next, struct cts_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    const char *href;
    int rc = 0;

    *next = NULL;
    if (root == NULL)
        return 0;
    href = json_string_value(json_object_get(
        json_object_get(json_object_get(root, "_links"), "next"), "href"));
    if (href != NULL && *href != '\0')
        rc = cts_url_follow(base, href, next, err);
    json_decref(root);
    return rc;
}

int cts_account_fetch_lists(const struct cts_config *cfg,
                            struct cts_list_set *out, struct cts_error *err)
{
    struct cts_http_opts o;
    struct cts_http_req req;
    char *url;
    int rc = 0, pages = 0;

    memset(out, 0, sizeof(*out));
    http_opts(cfg, &o);
    if (cfg->api == CTS_API_V2)
        url = cts_api_url(cfg->base_url, "/lists", cfg->api_key, NULL);
    else
        url = cts_api_url(cfg->base_url, "/contact_lists", NULL,
                          "include_membership_count=all&limit=1000");
    while (url != NULL) {
        struct cts_list_info *items = NULL;
        size_t n = 0;
        char *next = NULL;

        cts_http_req_init(&req);
        req.method = "GET";
        req.url = url;
        req.bearer = cfg->token;
        rc = cts_http_fetch(&req, &o, err);
        if (rc != 0) {
            rc = unreachable("the lists endpoint", url, err);
        } else if (req.status != 200) {
            rc = reply_error(cfg, "listing the contact lists", url, &req, err);
        } else if (cts_api_parse_lists(cfg->api, req.resp.data, req.resp.len,
                                       &items, &n) != 0) {
            char *shown = cts_url_redact(url);
            rc = cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                                "GET %s gave an unexpected reply (no lists)",
                                shown);
            free(shown);
        } else {
            out->items =
                cts_xrealloc(out->items, (out->n + n) * sizeof(*out->items));
            memcpy(out->items + out->n, items, n * sizeof(*items));
            out->n += n;
            free(items); /* the strings moved to out->items */
            /* A server that keeps answering "next" must not loop us
             * forever: 100 pages of 1000 is far beyond any account. */
            if (cfg->api == CTS_API_V3 && ++pages < 100)
                rc = v3_next_url(cfg->base_url, req.resp.data, req.resp.len,
                                 &next, err);
        }
        cts_http_req_free(&req);
        free(url);
        url = next;
        if (rc != 0) {
            free(url);
            break;
        }
    }
    if (rc != 0) {
        cts_list_set_free(out);
        redact_secrets(cfg, err);
    }
    return rc;
}

int cts_account_check_lists(const struct cts_config *cfg,
                            const struct cts_list_set *lists,
                            struct cts_error *err)
{
    struct cts_buf unknown, valid;
    size_t i, j;
    int rc = 0;

    cts_buf_init(&unknown, 0);
    cts_buf_init(&valid, 0);
    for (i = 0; i < cfg->nlists; i++) {
        int found = 0;
        for (j = 0; j < lists->n && !found; j++)
            found = strcmp(cfg->lists[i], lists->items[j].id) == 0;
        if (!found)
            cts_buf_appendf(&unknown, "%s%s", unknown.len > 0 ? ", " : "",
                            cfg->lists[i]);
    }
    if (unknown.len > 0) {
        for (j = 0; j < lists->n; j++)
            cts_buf_appendf(&valid, "%s%s (%s)", j > 0 ? ", " : "",
                            lists->items[j].id,
                            lists->items[j].name != NULL ? lists->items[j].name
                                                         : "unnamed");
        rc = cts_error_setx(
            err, CTS_EDATA, CTS_EX_DATAERR,
            "unknown list id%s %s; nothing was written; "
            "valid ids: %s",
            strchr(unknown.data, ',') != NULL ? "s" : "", unknown.data,
            valid.len > 0 ? valid.data : "none (the account has no lists)");
    }
    cts_buf_free(&unknown);
    cts_buf_free(&valid);
    return rc;
}

/* ---- the commands ---- */

static void format_time(long t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(buf, n, "unknown");
        return;
    }
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int report_failure(const struct cts_error *err)
{
    cts_log_error("%s", err->msg);
    return err->exit_code != 0 ? err->exit_code : CTS_EX_SOFTWARE;
}

int cts_cmd_check(struct cts_config *cfg)
{
    struct cts_account_info info;
    struct cts_error err;
    char mkey[CTS_MASK_SIZE], mtok[CTS_MASK_SIZE], mcid[CTS_MASK_SIZE];
    char when[32];
    long now = cts_config_now(cfg);
    int rc;

    memset(&err, 0, sizeof(err));
    if (cts_account_check(cfg, &info, &err) != 0)
        return report_failure(&err);
    format_time(info.expires_at, when, sizeof(when));
    cts_mask(cfg->api_key, mkey);
    cts_mask(cfg->token, mtok);
    cts_mask(info.client_id, mcid);
    if (cfg->json) {
        json_t *o = json_pack(
            "{s:s, s:s?, s:s?, s:s?, s:s?, s:s, s:s?, s:I, s:b}", "api",
            api_name(info.api), "account", info.account, "organization",
            info.organization, "api_key", cfg->api_key != NULL ? mkey : NULL,
            "token_issued_for", info.client_id != NULL ? mcid : NULL,
            "access_token", mtok, "expires", info.expires_at > 0 ? when : NULL,
            "expires_at", (json_int_t)info.expires_at, "ok", 1);
        char *s = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
        if (s == NULL) {
            json_decref(o);
            cts_log_error("out of memory");
            cts_account_info_free(&info);
            return CTS_EX_SOFTWARE;
        }
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("ok: the access token belongs to %s%s%s\n",
               info.account != NULL ? info.account : "(unknown account)",
               info.organization != NULL ? " — " : "",
               info.organization != NULL ? info.organization : "");
        printf("  api:           %s (%s)\n", api_name(info.api), cfg->base_url);
        printf("  account:       %s%s\n",
               info.account != NULL ? info.account : "(unknown)",
               cfg->account != NULL ? " (matches --account)" : "");
        if (info.organization != NULL)
            printf("  organization:  %s\n", info.organization);
        if (cfg->api_key != NULL)
            printf("  api key:       %s%s\n", mkey,
                   info.client_id != NULL ? " (the token was issued for it)"
                                          : "");
        else if (info.client_id != NULL)
            printf("  api key:       not given; the token was issued for "
                   "%s\n",
                   mcid);
        printf("  access token:  %s\n", mtok);
        if (info.expires_at > 0)
            printf("  expires:       %s (in %ld days)\n", when,
                   (info.expires_at - now) / 86400);
        else
            printf("  expires:       unknown\n");
    }
    rc = CTS_EX_OK;
    cts_account_info_free(&info);
    return rc;
}

/* Display width of a UTF-8 string: count the bytes that start a code point
 * (good enough for column alignment of names). */
static size_t utf8_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* Print s with control characters (tab, newline) turned into spaces, so a
 * list name cannot break the columns. */
static void put_clean(const char *s)
{
    for (; *s != '\0'; s++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

int cts_cmd_lists(struct cts_config *cfg)
{
    struct cts_account_info info;
    struct cts_list_set set;
    struct cts_error err;
    size_t i, wid = 2, wname = 4;

    memset(&err, 0, sizeof(err));
    memset(&set, 0, sizeof(set));
    if (cts_account_check(cfg, &info, &err) != 0)
        return report_failure(&err);
    if (cts_account_fetch_lists(cfg, &set, &err) != 0) {
        cts_account_info_free(&info);
        return report_failure(&err);
    }
    if (cfg->json) {
        json_t *arr = json_array();
        char *s;
        for (i = 0; arr != NULL && i < set.n; i++) {
            json_t *o = json_pack("{s:s, s:s?, s:I}", "id", set.items[i].id,
                                  "name", set.items[i].name, "member_count",
                                  (json_int_t)set.items[i].member_count);
            if (o == NULL || json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        s = arr != NULL ? json_dumps(arr, JSON_INDENT(2)) : NULL;
        json_decref(arr);
        if (s == NULL) {
            cts_log_error("out of memory");
            cts_list_set_free(&set);
            cts_account_info_free(&info);
            return CTS_EX_SOFTWARE;
        }
        printf("%s\n", s);
        free(s);
    } else {
        for (i = 0; i < set.n; i++) {
            size_t w = strlen(set.items[i].id);
            if (w > wid)
                wid = w;
            w = set.items[i].name != NULL ? utf8_width(set.items[i].name) : 0;
            if (w > wname)
                wname = w;
        }
        printf("%-*s  %-*s  %7s\n", (int)wid, "ID", (int)wname, "NAME",
               "MEMBERS");
        for (i = 0; i < set.n; i++) {
            const char *name =
                set.items[i].name != NULL ? set.items[i].name : "";
            size_t pad = wname - utf8_width(name);
            printf("%-*s  ", (int)wid, set.items[i].id);
            put_clean(name);
            printf("%*s  ", (int)pad, "");
            if (set.items[i].member_count >= 0)
                printf("%7ld\n", set.items[i].member_count);
            else
                printf("%7s\n", "?");
        }
        if (!cfg->quiet)
            cts_log_info("%zu list%s in account %s", set.n,
                         set.n == 1 ? "" : "s",
                         info.account != NULL ? info.account : "?");
    }
    cts_list_set_free(&set);
    cts_account_info_free(&info);
    return CTS_EX_OK;
}
