/*
 * oauth.c — ctct-sandbox's authorization servers, as Constant Contact
 * documents them: v2 server flow and tokeninfo, v3 authorization code with
 * PKCE, rotating refresh tokens and the device flow:
 *
 *   v2  GET  /oauth2/oauth/siteowner/authorize  server flow, auto-approve
 *       POST /oauth2/oauth/token                code → 10-year token
 *       POST /oauth2/tokeninfo.htm              client_id, user_name,
 *                                               expires_in
 *   v3  GET  /oauth2/default/v1/authorize       code (+PKCE S256)
 *       POST /oauth2/default/v1/token           code/refresh/device grants
 *       POST /oauth2/default/v1/device/authorize   device flow start
 *       GET  /oauth2/default/v1/device/verify   the "user visits" step
 *
 * There is no human in the sandbox: authorize approves at once as the
 * account named by &sandbox_user= (default: the first account), and
 * &sandbox_deny=1 plays a user who clicks "Deny".  Redirect URIs are
 * compared byte for byte with the app's registered ones, as the real
 * servers do; the error description names the first differing component
 * so a client's diagnosis can be tested.
 *
 * Time: code/device/refresh lifetimes use the sandbox clock (sb_now, which
 * tests can set); the token endpoint's 1 request/s limit and the device
 * flow's polling interval use the real monotonic clock (uv_hrtime),
 * because they are about request pacing.
 */
#include "sb_oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <uv.h>

#include "cts_util.h"
#include "sb.h"

#define CODE_TTL        300         /* authorization codes: 5 min, single use */
#define V2_TOKEN_TTL    315359999LL /* v2 tokens: 10 years (tokeninfo doc) */
#define REFRESH_IDLE    (180LL * 86400) /* refresh tokens die unused 180 days */
#define DEVICE_TTL      600             /* device codes */
#define DEVICE_INTERVAL 5    /* seconds between polls (RFC 8628 default) */
#define RATE_RING_MAX   1000 /* cap on --token-rate */

#define V2_AUTHORIZE "/oauth2/oauth/siteowner/authorize"
#define V2_TOKEN     "/oauth2/oauth/token"
#define V2_TOKENINFO "/oauth2/tokeninfo.htm"
#define V3_BASE      "/oauth2/default/v1"
#define V3_VERIFY    V3_BASE "/device/verify"

/* Settable before sb_oauth_register() (main.c's option parser). */
static struct sbo_options opts = {
    .token_rate = 1,
    .token_ttl = 86400,
    .activity_ms = 500,
};

const struct sbo_options *sbo_get_options(void)
{
    return &opts;
}

int sbo_set_option(const char *name, const char *value)
{
    long v;
    if (strcmp(name, "token-rate") == 0) {
        if (cts_parse_long(value, 0, RATE_RING_MAX, &v) != 0)
            return CTS_EUSAGE;
        opts.token_rate = v;
    } else if (strcmp(name, "token-ttl") == 0) {
        if (cts_parse_long(value, 1, 10L * 365 * 86400, &v) != 0)
            return CTS_EUSAGE;
        opts.token_ttl = v;
    } else if (strcmp(name, "activity-ms") == 0) {
        if (cts_parse_long(value, 0, 3600L * 1000, &v) != 0)
            return CTS_EUSAGE;
        opts.activity_ms = v;
    } else {
        return 1; /* not ours */
    }
    return 0;
}

/* An authorization code waiting for its exchange. */
struct code {
    struct code *next;
    char *code;
    enum sb_api api;
    char *client_id;
    char *redirect_uri;
    char *scope;     /* v3; "" for v2 */
    char *challenge; /* v3 PKCE S256 challenge, NULL when none */
    struct sb_account *acct;
    int64_t issued_at;
    int used;
    /* What the exchange issued, revoked if the code is replayed
     * (RFC 6749 §4.1.2: a reused code SHOULD revoke its tokens). */
    struct sb_token *tok;
    struct sb_refresh *refresh;
};

enum device_status { DEV_PENDING = 0, DEV_APPROVED, DEV_DENIED, DEV_DONE };

struct device {
    struct device *next;
    char *device_code;
    char *user_code;
    char *client_id;
    char *scope;
    struct sb_account *acct;
    enum device_status status;
    int64_t expires_at;    /* sandbox clock */
    unsigned interval;     /* seconds; grows by 5 on each slow_down */
    uint64_t last_poll_ms; /* monotonic; 0 = never polled */
};

/* Accepted token-endpoint requests of one client id in the last second. */
struct rate {
    struct rate *next;
    char *client_id;
    uint64_t *ring; /* opts.token_rate timestamps (ms), oldest at head */
    size_t head, n;
};

struct oauth {
    struct sb_server *srv;
    struct code *codes;
    struct device *devices;
    struct rate *rates;
};

static struct oauth *state_of(struct sb_req *req)
{
    return *sb_server_slot(req->server, SB_SLOT_OAUTH);
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* A random URL-safe string of n random bytes (n*4/3 characters). */
static char *random_token(size_t n)
{
    uint8_t buf[48];
    if (n > sizeof(buf))
        n = sizeof(buf);
    if (cts_random_bytes(buf, n) != 0)
        abort(); /* no randomness: a test server cannot go on meaningfully */
    return cts_base64url_encode(buf, n);
}

/* Parameters come from the form body when there is one, else from the
 * query string: the PHP SDK puts the v2 token call's parameters in the
 * query, and Constant Contact's documented v3 device-flow poll does the
 * same. */
static const char *param(struct sb_req *req, const char *name)
{
    const char *v = NULL;
    if (req->body_len > 0 &&
        sb_req_content_type_is(req, "application/x-www-form-urlencoded"))
        v = sb_form_get(req, name);
    if (v == NULL)
        v = sb_query_get(req, name);
    return v;
}

static int nonempty(const char *s)
{
    return s != NULL && *s != '\0';
}

/*
 * Check uri against app's registered redirect URIs.  Returns 1 when one
 * matches exactly; otherwise fills res with 400 redirect_uri_mismatch
 * naming the closest registered URI and what differs, and returns 0.
 */
static int redirect_ok(const struct sb_app *app, const char *uri,
                       struct sb_res *res)
{
    const char *best = NULL, *what = "uri";
    int best_score = -2;
    size_t i;
    char *desc;

    for (i = 0; i < app->nredirect; i++) {
        const char *d = sbo_redirect_mismatch(app->redirect_uris[i], uri);
        int score;
        if (d == NULL)
            return 1;
        /* Name the registered URI the caller most likely meant: the one
         * sharing the most components with what was sent. */
        score = sbo_redirect_score(app->redirect_uris[i], uri);
        if (score > best_score) {
            best_score = score;
            best = app->redirect_uris[i];
            what = d;
        }
    }
    if (!nonempty(uri))
        desc = cts_xasprintf("The redirect_uri parameter is missing.");
    else if (best == NULL)
        desc = cts_xasprintf("redirect_uri '%s' does not match: no redirect "
                             "URI is registered for this client.",
                             uri);
    else
        desc = cts_xasprintf("redirect_uri '%s' does not match the registered "
                             "redirect URI '%s' (the %s differs; the match "
                             "must be exact).",
                             uri, best, what);
    sb_res_oauth_error(res, 400, "redirect_uri_mismatch", desc);
    free(desc);
    return 0;
}

/* Append "name=value" (value URL-encoded) to a redirect URL. */
static void add_qp(struct cts_buf *b, const char *name, const char *value)
{
    char *enc = sbo_url_encode(value);
    cts_buf_appendf(b, "%c%s=%s", strchr(b->data, '?') != NULL ? '&' : '?',
                    name, enc);
    free(enc);
}

static void redirect_error(struct sb_res *res, const char *uri,
                           const char *error, const char *desc,
                           const char *state)
{
    struct cts_buf b;
    cts_buf_init(&b, 0);
    cts_buf_appendf(&b, "%s", uri);
    add_qp(&b, "error", error);
    add_qp(&b, "error_description", desc);
    if (state != NULL)
        add_qp(&b, "state", state);
    sb_res_redirect(res, b.data);
    cts_buf_free(&b);
}

/* The account that "logs in": &sandbox_user=, else the first one. */
static struct sb_account *login_account(struct sb_req *req)
{
    struct sb_model *m = sb_server_model(req->server);
    const char *u = sb_query_get(req, "sandbox_user");
    if (nonempty(u))
        return sb_account_find(m, u);
    return sb_account_count(m) > 0 ? sb_account_at(m, 0) : NULL;
}

static int denied(struct sb_req *req)
{
    const char *d = sb_query_get(req, "sandbox_deny");
    return d != NULL && strcmp(d, "0") != 0;
}

static void no_store(struct sb_res *res)
{
    /* RFC 6749 §5.1: token responses must not be cached. */
    sb_res_header(res, "Cache-Control", "no-store");
    sb_res_header(res, "Pragma", "no-cache");
}

static struct code *code_new(struct oauth *oa, enum sb_api api,
                             const char *client_id, const char *redirect_uri,
                             const char *scope, const char *challenge,
                             struct sb_account *acct, int64_t now)
{
    struct code *c = cts_xcalloc(1, sizeof(*c));
    c->code = random_token(24);
    c->api = api;
    c->client_id = cts_xstrdup(client_id);
    c->redirect_uri = cts_xstrdup(redirect_uri);
    c->scope = cts_xstrdup(scope != NULL ? scope : "");
    c->challenge = challenge != NULL ? cts_xstrdup(challenge) : NULL;
    c->acct = acct;
    c->issued_at = now;
    c->next = oa->codes;
    oa->codes = c;
    return c;
}

static void code_free(struct code *c)
{
    free(c->code);
    free(c->client_id);
    free(c->redirect_uri);
    free(c->scope);
    free(c->challenge);
    free(c);
}

/*
 * Find a code by value, pruning codes that can no longer matter on the way
 * (expired for more than a lifetime: a replay of those is just "invalid").
 */
static struct code *code_find(struct oauth *oa, const char *value, int64_t now)
{
    struct code **pp = &oa->codes, *found = NULL;
    while (*pp != NULL) {
        struct code *c = *pp;
        if (now - c->issued_at > 2 * CODE_TTL) {
            *pp = c->next;
            code_free(c);
            continue;
        }
        if (found == NULL && value != NULL && strcmp(c->code, value) == 0)
            found = c;
        pp = &c->next;
    }
    return found;
}

/* ------------------------------------------------------------------------
 * v2
 * ------------------------------------------------------------------------ */

static int v2_authorize(struct sb_req *req, struct sb_res *res)
{
    struct oauth *oa = state_of(req);
    struct sb_model *m = sb_server_model(req->server);
    const char *client_id = sb_query_get(req, "client_id");
    const char *redirect_uri = sb_query_get(req, "redirect_uri");
    const char *rtype = sb_query_get(req, "response_type");
    const char *st = sb_query_get(req, "state");
    struct sb_app *app = nonempty(client_id) ? sb_app_find(m, client_id) : NULL;
    struct sb_account *acct;
    struct code *c;
    struct cts_buf b;

    /* Until the client and its redirect URI are known good, errors cannot
     * be sent to the redirect URI (RFC 6749 §4.1.2.1): reply directly. */
    if (app == NULL || app->api != SB_API_V2) {
        sb_res_oauth_error(res, 400, "invalid_client",
                           "Unknown client_id (API key).");
        return SB_REPLY;
    }
    if (!redirect_ok(app, redirect_uri, res))
        return SB_REPLY;
    if (rtype == NULL || strcmp(rtype, "code") != 0) {
        redirect_error(res, redirect_uri, "unsupported_response_type",
                       "Only response_type=code is supported by the sandbox.",
                       st);
        return SB_REPLY;
    }
    if (denied(req)) {
        redirect_error(res, redirect_uri, "access_denied",
                       "The resource owner or authorization server denied "
                       "the request.",
                       st);
        return SB_REPLY;
    }
    acct = login_account(req);
    if (acct == NULL) {
        sb_res_oauth_error(res, 400, "invalid_request",
                           "sandbox_user names no account of the sandbox.");
        return SB_REPLY;
    }
    c = code_new(oa, SB_API_V2, client_id, redirect_uri, NULL, NULL, acct,
                 sb_now(req->server));
    cts_buf_init(&b, 0);
    cts_buf_appendf(&b, "%s", redirect_uri);
    add_qp(&b, "code", c->code);
    add_qp(&b, "username", acct->user_name);
    if (st != NULL)
        add_qp(&b, "state", st);
    sb_res_redirect(res, b.data);
    cts_buf_free(&b);
    sb_log(req->server, "oauth v2: code for %s issued to client",
           acct->user_name);
    return SB_REPLY;
}

static int v2_token(struct sb_req *req, struct sb_res *res)
{
    struct oauth *oa = state_of(req);
    struct sb_model *m = sb_server_model(req->server);
    const char *grant = param(req, "grant_type");
    const char *client_id = param(req, "client_id");
    const char *secret = param(req, "client_secret");
    const char *code = param(req, "code");
    const char *redirect_uri = param(req, "redirect_uri");
    struct sb_app *app = nonempty(client_id) ? sb_app_find(m, client_id) : NULL;
    int64_t now = sb_now(req->server);
    struct code *c;
    struct sb_token *tok;
    char *access;
    json_t *j;

    if (app == NULL || app->api != SB_API_V2 || secret == NULL ||
        strcmp(secret, app->secret) != 0) {
        sb_res_oauth_error(res, 401, "invalid_client",
                           "Client authentication failed (client_id or "
                           "client_secret).");
        return SB_REPLY;
    }
    if (grant == NULL || strcmp(grant, "authorization_code") != 0) {
        sb_res_oauth_error(res, 400, "unsupported_grant_type",
                           "grant_type must be authorization_code.");
        return SB_REPLY;
    }
    c = code_find(oa, code, now);
    if (c == NULL || c->api != SB_API_V2 ||
        strcmp(c->client_id, client_id) != 0 || now - c->issued_at > CODE_TTL ||
        c->used) {
        if (c != NULL && c->used && c->tok != NULL)
            c->tok->revoked = 1;
        sb_res_oauth_error(res, 400, "invalid_grant",
                           "The authorization code is invalid, expired or "
                           "already used.");
        return SB_REPLY;
    }
    if (redirect_uri == NULL || strcmp(redirect_uri, c->redirect_uri) != 0) {
        char *desc = cts_xasprintf(
            "redirect_uri '%s' differs from the one of the authorization "
            "request '%s'.",
            redirect_uri != NULL ? redirect_uri : "", c->redirect_uri);
        sb_res_oauth_error(res, 400, "redirect_uri_mismatch", desc);
        free(desc);
        return SB_REPLY;
    }
    c->used = 1;
    {
        /* v2 tokens are opaque UUID-like strings (fixture:
         * "v6574b42-a5bc-4574-a87f-5c9d1202e316"). */
        uint8_t r[16];
        char hex[33];
        if (cts_random_bytes(r, sizeof(r)) != 0)
            abort();
        cts_hex(r, sizeof(r), hex);
        access = cts_xasprintf("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
                               hex + 12, hex + 16, hex + 20);
    }
    tok = sb_token_add(m, access, SB_API_V2, client_id, c->acct, now,
                       now + V2_TOKEN_TTL);
    c->tok = tok;
    j = json_pack("{s:s, s:I, s:s}", "access_token", access, "expires_in",
                  (json_int_t)V2_TOKEN_TTL, "token_type", "Bearer");
    free(access);
    no_store(res);
    sb_res_json(res, 200, j);
    return SB_REPLY;
}

static int v2_tokeninfo(struct sb_req *req, struct sb_res *res)
{
    struct sb_model *m = sb_server_model(req->server);
    const char *accept = sb_header_get(req, "Accept");
    const char *token = NULL;
    struct sb_token *tok;
    int64_t now = sb_now(req->server), left;
    json_t *j;

    /* 415 when a body comes in anything but form encoding (doc). */
    if (req->body_len > 0 &&
        !sb_req_content_type_is(req, "application/x-www-form-urlencoded")) {
        sb_res_oauth_error(res, 415, "unsupported_media_type",
                           "Use Content-Type "
                           "application/x-www-form-urlencoded.");
        return SB_REPLY;
    }
    /* 406 only for an Accept that rules JSON out (curl's default is
     * "*" "/" "*", which allows it). */
    if (accept != NULL && strstr(accept, "json") == NULL &&
        strstr(accept, "*/*") == NULL &&
        strstr(accept, "application/*") == NULL) {
        sb_res_oauth_error(res, 406, "not_acceptable",
                           "The Accept header must allow application/json.");
        return SB_REPLY;
    }
    token = param(req, "access_token");
    tok = nonempty(token) ? sb_token_find(m, token) : NULL;
    /* v2 tokeninfo knows only v2 tokens; a v3 JWT is "invalid" there. */
    if (tok == NULL || tok->api != SB_API_V2 || tok->revoked ||
        (tok->expires_at != 0 && tok->expires_at <= now)) {
        sb_res_oauth_error(res, 404, "invalid_token",
                           "The access token is invalid or expired.");
        return SB_REPLY;
    }
    left = tok->expires_at != 0 ? tok->expires_at - now : V2_TOKEN_TTL;
    j = json_pack("{s:s, s:s, s:I}", "client_id", tok->api_key, "user_name",
                  tok->account != NULL ? tok->account->user_name : "",
                  "expires_in", (json_int_t)left);
    sb_res_json(res, 200, j);
    return SB_REPLY;
}

/* ------------------------------------------------------------------------
 * v3
 * ------------------------------------------------------------------------ */

static const char *const SCOPES[] = {
    "contact_data",   "account_read", "account_update", "campaign_data",
    "offline_access", "openid",       "profile",        NULL,
};

/* 1 if every space-separated scope is known and there is at least one. */
static int scope_ok(const char *scope)
{
    const char *s = scope;
    int n = 0;
    if (s == NULL)
        return 0;
    while (*s != '\0') {
        size_t len = strcspn(s, " "), i;
        int known = 0;
        if (len > 0) {
            for (i = 0; SCOPES[i] != NULL; i++)
                if (strlen(SCOPES[i]) == len && memcmp(SCOPES[i], s, len) == 0)
                    known = 1;
            if (!known)
                return 0;
            n++;
        }
        s += len;
        while (*s == ' ')
            s++;
    }
    return n > 0;
}

static int has_scope(const char *scope, const char *want)
{
    size_t wl = strlen(want);
    const char *s = scope;
    if (s == NULL)
        return 0;
    while (*s != '\0') {
        size_t len = strcspn(s, " ");
        if (len == wl && memcmp(s, want, wl) == 0)
            return 1;
        s += len;
        while (*s == ' ')
            s++;
    }
    return 0;
}

static int v3_authorize(struct sb_req *req, struct sb_res *res)
{
    struct oauth *oa = state_of(req);
    struct sb_model *m = sb_server_model(req->server);
    const char *client_id = sb_query_get(req, "client_id");
    const char *redirect_uri = sb_query_get(req, "redirect_uri");
    const char *rtype = sb_query_get(req, "response_type");
    const char *scope = sb_query_get(req, "scope");
    const char *st = sb_query_get(req, "state");
    const char *chal = sb_query_get(req, "code_challenge");
    const char *method = sb_query_get(req, "code_challenge_method");
    struct sb_app *app = nonempty(client_id) ? sb_app_find(m, client_id) : NULL;
    struct sb_account *acct;
    struct code *c;
    struct cts_buf b;

    if (app == NULL || app->api != SB_API_V3) {
        sb_res_oauth_error(res, 400, "invalid_client", "Unknown client_id.");
        return SB_REPLY;
    }
    if (!redirect_ok(app, redirect_uri, res))
        return SB_REPLY;
    /* From here on errors travel back on the redirect URI. */
    if (rtype == NULL || strcmp(rtype, "code") != 0) {
        redirect_error(res, redirect_uri, "unsupported_response_type",
                       "The response type is not supported by the "
                       "authorization server. Configured response types: "
                       "[code].",
                       st);
        return SB_REPLY;
    }
    if (!nonempty(st)) {
        redirect_error(res, redirect_uri, "invalid_request",
                       "The authentication request has an invalid 'state' "
                       "parameter.",
                       NULL);
        return SB_REPLY;
    }
    if (!scope_ok(scope)) {
        redirect_error(res, redirect_uri, "invalid_scope",
                       "One or more scopes are not configured for the "
                       "authorization server resource.",
                       st);
        return SB_REPLY;
    }
    if (chal != NULL &&
        (method == NULL || strcmp(method, "S256") != 0 || strlen(chal) != 43)) {
        redirect_error(res, redirect_uri, "invalid_request",
                       "PKCE requires code_challenge_method=S256 and a "
                       "43-character code_challenge.",
                       st);
        return SB_REPLY;
    }
    if (chal == NULL && method != NULL) {
        redirect_error(res, redirect_uri, "invalid_request",
                       "code_challenge_method without code_challenge.", st);
        return SB_REPLY;
    }
    if (denied(req)) {
        redirect_error(res, redirect_uri, "access_denied",
                       "User denied access.", st);
        return SB_REPLY;
    }
    acct = login_account(req);
    if (acct == NULL) {
        sb_res_oauth_error(res, 400, "invalid_request",
                           "sandbox_user names no account of the sandbox.");
        return SB_REPLY;
    }
    c = code_new(oa, SB_API_V3, client_id, redirect_uri, scope, chal, acct,
                 sb_now(req->server));
    cts_buf_init(&b, 0);
    cts_buf_appendf(&b, "%s", redirect_uri);
    add_qp(&b, "code", c->code);
    add_qp(&b, "state", st);
    sb_res_redirect(res, b.data);
    cts_buf_free(&b);
    return SB_REPLY;
}

/*
 * The token endpoint's per-client pace: Constant Contact allows 1 request/s
 * there (more gets 429).
 * Returns 1 and records the request when it may go ahead.  Only accepted
 * requests count, so a client that waits a second always gets through.
 */
static int rate_ok(struct oauth *oa, const char *client_id)
{
    struct rate *r;
    uint64_t now = mono_ms();
    size_t cap = (size_t)opts.token_rate;

    if (cap == 0)
        return 1;
    for (r = oa->rates; r != NULL; r = r->next)
        if (strcmp(r->client_id, client_id) == 0)
            break;
    if (r == NULL) {
        r = cts_xcalloc(1, sizeof(*r));
        r->client_id = cts_xstrdup(client_id);
        r->ring = cts_xcalloc(cap, sizeof(*r->ring));
        r->next = oa->rates;
        oa->rates = r;
    }
    /* Forget requests older than the 1-second window. */
    while (r->n > 0 && now - r->ring[r->head] >= 1000) {
        r->head = (r->head + 1) % cap;
        r->n--;
    }
    if (r->n >= cap)
        return 0;
    r->ring[(r->head + r->n) % cap] = now;
    r->n++;
    return 1;
}

/* Client authentication of the v3 token endpoint: Basic (confidential
 * client) or a client_id parameter (public client, PKCE).  Sets *app and
 * *authenticated (1 when a secret was presented and checked); on failure
 * fills res and returns -1. */
static int v3_client(struct sb_req *req, struct sb_res *res,
                     struct sb_app **app, int *authenticated)
{
    struct sb_model *m = sb_server_model(req->server);
    const char *auth = sb_header_get(req, "Authorization");
    const char *cid = param(req, "client_id");
    const char *secret = param(req, "client_secret");
    char *id = NULL, *sec = NULL;
    int rc = -1;

    *app = NULL;
    *authenticated = 0;
    if (auth != NULL && strncasecmp(auth, "Basic ", 6) == 0) {
        size_t n;
        char *raw = cts_base64_decode(auth + 6, strlen(auth + 6), &n);
        char *colon = raw != NULL ? memchr(raw, ':', n) : NULL;
        if (colon != NULL) {
            id = cts_xstrndup(raw, (size_t)(colon - raw));
            sec = cts_xstrdup(colon + 1);
        }
        free(raw);
        if (id == NULL)
            goto fail;
        if (cid != NULL && strcmp(cid, id) != 0)
            goto fail;
    } else if (nonempty(cid)) {
        id = cts_xstrdup(cid);
        if (secret != NULL)
            sec = cts_xstrdup(secret); /* client_secret_post */
    } else {
        goto fail;
    }
    *app = sb_app_find(m, id);
    if (*app == NULL || (*app)->api != SB_API_V3)
        goto fail;
    if (sec != NULL) {
        if (strcmp(sec, (*app)->secret) != 0 || (*app)->secret[0] == '\0')
            goto fail;
        *authenticated = 1;
    }
    rc = 0;
    goto out;
fail:
    *app = NULL;
    sb_res_oauth_error(res, 401, "invalid_client",
                       "Client authentication failed. Either the client or "
                       "the client credentials are invalid.");
out:
    free(id);
    free(sec);
    return rc;
}

/* Mint and register an access token (+ a refresh token when the scope has
 * offline_access) and write the token response. */
static void issue_v3(struct sb_req *req, struct sb_res *res,
                     const struct sb_app *app, struct sb_account *acct,
                     const char *scope, const char *reuse_refresh,
                     struct sb_token **tok_out, struct sb_refresh **ref_out)
{
    struct sb_model *m = sb_server_model(req->server);
    int64_t now = sb_now(req->server);
    struct sbo_jwt_claims c;
    struct sb_token *tok;
    struct sb_refresh *rf = NULL;
    char *jti = random_token(12), *access;
    json_t *j;

    memset(&c, 0, sizeof(c));
    c.cid = app->api_key;
    c.sub = acct->user_name;
    c.platform_user_id = acct->encoded_account_id;
    c.iat = now;
    c.exp = now + opts.token_ttl;
    c.scope = scope;
    c.jti = jti;
    access = sbo_jwt_encode(SBO_JWT_SECRET, &c);
    tok = sb_token_add(m, access, SB_API_V3, app->api_key, acct, now,
                       now + opts.token_ttl);
    j = json_pack("{s:s, s:I, s:s, s:s}", "token_type", "Bearer", "expires_in",
                  (json_int_t)opts.token_ttl, "access_token", access, "scope",
                  scope);
    if (reuse_refresh != NULL) {
        json_object_set_new(j, "refresh_token", json_string(reuse_refresh));
    } else if (has_scope(scope, "offline_access")) {
        char *rt = random_token(30);
        rf = sb_refresh_add(m, rt, app->api_key, acct, scope, now);
        json_object_set_new(j, "refresh_token", json_string(rt));
        free(rt);
    }
    free(access);
    free(jti);
    no_store(res);
    sb_res_json(res, 200, j);
    if (tok_out != NULL)
        *tok_out = tok;
    if (ref_out != NULL)
        *ref_out = rf;
}

static int grant_code(struct sb_req *req, struct sb_res *res,
                      struct sb_app *app, int authenticated)
{
    struct oauth *oa = state_of(req);
    int64_t now = sb_now(req->server);
    const char *code = param(req, "code");
    const char *redirect_uri = param(req, "redirect_uri");
    const char *verifier = param(req, "code_verifier");
    struct code *c = code_find(oa, code, now);

    if (c == NULL || c->api != SB_API_V3 ||
        strcmp(c->client_id, app->api_key) != 0 ||
        now - c->issued_at > CODE_TTL || c->used) {
        if (c != NULL && c->used) {
            if (c->tok != NULL)
                c->tok->revoked = 1;
            if (c->refresh != NULL)
                c->refresh->used = 1;
        }
        sb_res_oauth_error(res, 400, "invalid_grant",
                           "The authorization code is invalid or has "
                           "expired.");
        return SB_REPLY;
    }
    if (redirect_uri == NULL || strcmp(redirect_uri, c->redirect_uri) != 0) {
        sb_res_oauth_error(res, 400, "invalid_grant",
                           "The 'redirect_uri' does not match the redirection "
                           "URI used in the authorization request.");
        return SB_REPLY;
    }
    if (c->challenge != NULL) {
        if (!sbo_pkce_s256_ok(verifier, c->challenge)) {
            sb_res_oauth_error(res, 400, "invalid_grant",
                               "PKCE verification failed: the code_verifier "
                               "does not match the code_challenge.");
            return SB_REPLY;
        }
    } else if (!authenticated) {
        /* Without PKCE only a confidential client may redeem a code. */
        sb_res_oauth_error(res, 401, "invalid_client",
                           "Client authentication failed: no client secret "
                           "and no PKCE code_verifier.");
        return SB_REPLY;
    } else if (verifier != NULL) {
        sb_res_oauth_error(res, 400, "invalid_request",
                           "code_verifier given but the authorization request "
                           "had no code_challenge.");
        return SB_REPLY;
    }
    c->used = 1;
    issue_v3(req, res, app, c->acct, c->scope, NULL, &c->tok, &c->refresh);
    return SB_REPLY;
}

static int grant_refresh(struct sb_req *req, struct sb_res *res,
                         struct sb_app *app)
{
    struct sb_model *m = sb_server_model(req->server);
    int64_t now = sb_now(req->server);
    const char *value = param(req, "refresh_token");
    struct sb_refresh *rf = nonempty(value) ? sb_refresh_find(m, value) : NULL;

    if (rf == NULL || rf->used || strcmp(rf->api_key, app->api_key) != 0 ||
        now - rf->last_used_at > REFRESH_IDLE) {
        sb_res_oauth_error(res, 400, "invalid_grant",
                           "The refresh token is invalid or expired.");
        return SB_REPLY;
    }
    if (app->refresh == SB_REFRESH_LONG_LIVED) {
        rf->last_used_at = now;
        issue_v3(req, res, app, rf->account, rf->scope, rf->token, NULL, NULL);
    } else {
        /* Rotating: this one is spent; the response carries its successor
         * (sb_refresh_add inside issue_v3, the scope has offline_access). */
        rf->used = 1;
        rf->last_used_at = now;
        issue_v3(req, res, app, rf->account, rf->scope, NULL, NULL, NULL);
    }
    return SB_REPLY;
}

static struct device *device_by(struct oauth *oa, const char *device_code,
                                const char *user_code)
{
    struct device *d;
    for (d = oa->devices; d != NULL; d = d->next) {
        if (device_code != NULL && strcmp(d->device_code, device_code) == 0)
            return d;
        if (user_code != NULL && strcmp(d->user_code, user_code) == 0)
            return d;
    }
    return NULL;
}

static int grant_device(struct sb_req *req, struct sb_res *res,
                        struct sb_app *app)
{
    struct oauth *oa = state_of(req);
    const char *dc = param(req, "device_code");
    struct device *d = nonempty(dc) ? device_by(oa, dc, NULL) : NULL;
    uint64_t now_ms = mono_ms();
    uint64_t last;

    if (d == NULL || strcmp(d->client_id, app->api_key) != 0 ||
        d->status == DEV_DONE) {
        sb_res_oauth_error(res, 400, "invalid_grant",
                           "The device code is invalid or has already been "
                           "used.");
        return SB_REPLY;
    }
    if (sb_now(req->server) >= d->expires_at) {
        sb_res_oauth_error(res, 400, "expired_token",
                           "The device code has expired.");
        return SB_REPLY;
    }
    last = d->last_poll_ms;
    d->last_poll_ms = now_ms;
    switch (d->status) {
    case DEV_DENIED:
        d->status = DEV_DONE;
        sb_res_oauth_error(res, 400, "access_denied",
                           "The user denied the authorization request.");
        return SB_REPLY;
    case DEV_APPROVED:
        d->status = DEV_DONE;
        issue_v3(req, res, app, d->acct, d->scope, NULL, NULL, NULL);
        return SB_REPLY;
    default: break;
    }
    /* RFC 8628 §3.5: slow_down is "pending, and poll less often"; the
     * interval then grows by 5 seconds. */
    if (last != 0 && now_ms - last < (uint64_t)d->interval * 1000) {
        d->interval += 5;
        sb_res_oauth_error(res, 400, "slow_down",
                           "The client is polling too quickly; increase the "
                           "interval by 5 seconds.");
        return SB_REPLY;
    }
    sb_res_oauth_error(res, 400, "authorization_pending",
                       "The device authorization is pending. Please try "
                       "again later.");
    return SB_REPLY;
}

static int v3_token(struct sb_req *req, struct sb_res *res)
{
    struct oauth *oa = state_of(req);
    const char *grant;
    struct sb_app *app;
    int authenticated;

    if (req->body_len > 0 &&
        !sb_req_content_type_is(req, "application/x-www-form-urlencoded")) {
        sb_res_oauth_error(res, 400, "invalid_request",
                           "The token request must be form-encoded "
                           "(application/x-www-form-urlencoded).");
        return SB_REPLY;
    }
    if (v3_client(req, res, &app, &authenticated) != 0)
        return SB_REPLY;
    if (!rate_ok(oa, app->api_key)) {
        sb_res_header(res, "Retry-After", "1");
        sb_res_oauth_error(res, 429, "too_many_requests",
                           "Too many requests to the token endpoint for this "
                           "client (limit: 1 request per second).");
        return SB_REPLY;
    }
    grant = param(req, "grant_type");
    if (grant != NULL && strcmp(grant, "authorization_code") == 0)
        return grant_code(req, res, app, authenticated);
    if (grant != NULL && strcmp(grant, "refresh_token") == 0)
        return grant_refresh(req, res, app);
    if (grant != NULL &&
        strcmp(grant, "urn:ietf:params:oauth:grant-type:device_code") == 0)
        return grant_device(req, res, app);
    sb_res_oauth_error(res, 400, "unsupported_grant_type",
                       "The grant_type is not supported.");
    return SB_REPLY;
}

static int v3_device_authorize(struct sb_req *req, struct sb_res *res)
{
    static const char ALPHA[] = "BCDFGHJKLMNPQRSTVWXZ"; /* RFC 8628 §6.1 */
    struct oauth *oa = state_of(req);
    struct sb_model *m = sb_server_model(req->server);
    const char *cid = param(req, "client_id");
    const char *scope = param(req, "scope");
    struct sb_app *app = nonempty(cid) ? sb_app_find(m, cid) : NULL;
    struct device *d;
    uint8_t r[8];
    char uc[10];
    size_t i, k = 0;
    char *uri, *complete;
    json_t *j;

    if (app == NULL || app->api != SB_API_V3) {
        sb_res_oauth_error(res, 401, "invalid_client",
                           "Client authentication failed.");
        return SB_REPLY;
    }
    if (!app->device_flow) {
        sb_res_oauth_error(res, 400, "unauthorized_client",
                           "The client is not authorized to use the device "
                           "flow.");
        return SB_REPLY;
    }
    if (!scope_ok(scope)) {
        sb_res_oauth_error(res, 400, "invalid_scope",
                           "One or more scopes are not configured for the "
                           "authorization server resource.");
        return SB_REPLY;
    }
    if (cts_random_bytes(r, sizeof(r)) != 0)
        abort();
    for (i = 0; i < sizeof(r); i++) {
        if (i == 4)
            uc[k++] = '-';
        uc[k++] = ALPHA[r[i] % (sizeof(ALPHA) - 1)];
    }
    uc[k] = '\0';

    d = cts_xcalloc(1, sizeof(*d));
    d->device_code = random_token(30);
    d->user_code = cts_xstrdup(uc);
    d->client_id = cts_xstrdup(cid);
    d->scope = cts_xstrdup(scope);
    d->status = DEV_PENDING;
    d->expires_at = sb_now(req->server) + DEVICE_TTL;
    d->interval = DEVICE_INTERVAL;
    d->next = oa->devices;
    oa->devices = d;

    uri = cts_xasprintf("%s%s", sb_server_base_url(req->server), V3_VERIFY);
    complete = cts_xasprintf("%s?user_code=%s", uri, uc);
    j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "device_code",
                  d->device_code, "user_code", uc, "verification_uri", uri,
                  "verification_uri_complete", complete, "expires_in",
                  DEVICE_TTL, "interval", DEVICE_INTERVAL);
    free(uri);
    free(complete);
    no_store(res);
    sb_res_json(res, 200, j);
    return SB_REPLY;
}

/* The page a user's browser would show; auto-approves (or denies). */
static int v3_device_verify(struct sb_req *req, struct sb_res *res)
{
    static const char OK[] = "<!doctype html><title>ctct-sandbox</title>"
                             "<p>Device activated. You can close this "
                             "window.</p>\n";
    static const char DENY[] = "<!doctype html><title>ctct-sandbox</title>"
                               "<p>Access denied.</p>\n";
    static const char BAD[] = "<!doctype html><title>ctct-sandbox</title>"
                              "<p>Unknown or expired code.</p>\n";
    struct oauth *oa = state_of(req);
    const char *uc = sb_query_get(req, "user_code");
    struct device *d = nonempty(uc) ? device_by(oa, NULL, uc) : NULL;
    struct sb_account *acct;

    if (d == NULL || d->status != DEV_PENDING ||
        sb_now(req->server) >= d->expires_at) {
        sb_res_text(res, 404, "text/html; charset=utf-8", BAD, sizeof(BAD) - 1);
        return SB_REPLY;
    }
    if (denied(req)) {
        d->status = DEV_DENIED;
        sb_res_text(res, 200, "text/html; charset=utf-8", DENY,
                    sizeof(DENY) - 1);
        return SB_REPLY;
    }
    acct = login_account(req);
    if (acct == NULL) {
        sb_res_text(res, 404, "text/html; charset=utf-8", BAD, sizeof(BAD) - 1);
        return SB_REPLY;
    }
    d->acct = acct;
    d->status = DEV_APPROVED;
    sb_res_text(res, 200, "text/html; charset=utf-8", OK, sizeof(OK) - 1);
    return SB_REPLY;
}

/* ------------------------------------------------------------------------
 * Registration and lifetime
 * ------------------------------------------------------------------------ */

static void on_reset(void *arg)
{
    /* A reset zeroes counters: the token endpoint's pace starts afresh.
     * Codes, device grants and tokens survive, like the model's tokens. */
    struct oauth *oa = arg;
    while (oa->rates != NULL) {
        struct rate *r = oa->rates;
        oa->rates = r->next;
        free(r->client_id);
        free(r->ring);
        free(r);
    }
}

static void on_close(void *arg)
{
    struct oauth *oa = arg;
    on_reset(oa);
    while (oa->codes != NULL) {
        struct code *c = oa->codes;
        oa->codes = c->next;
        code_free(c);
    }
    while (oa->devices != NULL) {
        struct device *d = oa->devices;
        oa->devices = d->next;
        free(d->device_code);
        free(d->user_code);
        free(d->client_id);
        free(d->scope);
        free(d);
    }
    *sb_server_slot(oa->srv, SB_SLOT_OAUTH) = NULL;
    free(oa);
}

void sb_oauth_register(struct sb_server *srv)
{
    struct oauth *oa = cts_xcalloc(1, sizeof(*oa));
    oa->srv = srv;
    *sb_server_slot(srv, SB_SLOT_OAUTH) = oa;
    sb_server_on_reset(srv, on_reset, oa);
    sb_server_on_close(srv, on_close, oa);

    sb_route_add(srv, "GET", V2_AUTHORIZE, v2_authorize, SB_ROUTE_PUBLIC);
    sb_route_add(srv, "POST", V2_TOKEN, v2_token, SB_ROUTE_PUBLIC);
    sb_route_add(srv, "POST", V2_TOKENINFO, v2_tokeninfo, SB_ROUTE_PUBLIC);
    sb_route_add(srv, "GET", V3_BASE "/authorize", v3_authorize,
                 SB_ROUTE_PUBLIC);
    sb_route_add(srv, "POST", V3_BASE "/token", v3_token, SB_ROUTE_PUBLIC);
    sb_route_add(srv, "POST", V3_BASE "/device/authorize", v3_device_authorize,
                 SB_ROUTE_PUBLIC);
    sb_route_add(srv, "GET", V3_VERIFY, v3_device_verify, SB_ROUTE_PUBLIC);
}
