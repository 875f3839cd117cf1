/*
 * oauth.c — `ctct-sync auth` (v2 server flow, v3 PKCE and device flows, the
 * loopback listener) and the v3 refresh with rotation (spec §9, reference
 * §1.5, §2.7).  The crash-safety design is described in cts_oauth.h.
 *
 * All network calls are blocking cts_http_fetch calls: they happen before
 * the pipeline's loop starts, or between its requests (the 401 case).  The
 * waits (1 request/s on the token endpoint, device-flow polling, the
 * browser timeout) run on private uv loops with timers, never sleep().
 */
#include "cts_oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_secret.h"
#include "cts_tokenfile.h"

#define DEFAULT_SCOPES         "contact_data account_read offline_access"
#define BROWSER_WAIT_S         300
#define DEFAULT_REQ_TIMEOUT_MS 30000 /* config.c's default for --timeout */
#define CALLBACK_MAX           16384 /* a browser's request head */
#define CRASH_HOOK             "CTCT_SYNC_TEST_CRASH_AFTER_REFRESH"

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

int cts_oauth_jwt_exp(const char *token, long *exp)
{
    const char *p1, *p2;
    char *payload;
    size_t n;
    json_t *root, *v;
    int rc = CTS_EJSON;

    if (token == NULL)
        return CTS_EJSON;
    p1 = strchr(token, '.');
    if (p1 == NULL)
        return CTS_EJSON;
    p2 = strchr(p1 + 1, '.');
    if (p2 == NULL)
        return CTS_EJSON;
    payload = cts_base64_decode(p1 + 1, (size_t)(p2 - p1 - 1), &n);
    if (payload == NULL)
        return CTS_EJSON;
    root = json_loadb(payload, n, 0, NULL);
    free(payload);
    v = json_object_get(root, "exp");
    if (json_is_integer(v)) {
        *exp = (long)json_integer_value(v);
        rc = 0;
    } else if (json_is_real(v)) {
        *exp = (long)json_real_value(v);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

char *cts_oauth_pkce_challenge(const char *verifier)
{
    uint8_t d[CTS_SHA256_LEN];
    cts_sha256(verifier, strlen(verifier), d);
    return cts_base64url_encode(d, sizeof(d));
}

/* A random URL-safe string of nbytes of entropy; owned. */
static char *random_token(size_t nbytes)
{
    uint8_t b[64];
    if (nbytes > sizeof(b))
        nbytes = sizeof(b);
    if (cts_random_bytes(b, nbytes) != 0)
        return NULL;
    return cts_base64url_encode(b, nbytes);
}

/* Real wall-clock time in milliseconds: the token endpoint's 1 request/s
 * is about real time, whatever CTCT_SYNC_NOW says. */
static uint64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_wait_timer(uv_timer_t *t)
{
    (void)t; /* nothing to do: the loop ends when the timer is done */
}

/* Wait ms milliseconds on a private loop's timer (the house rule: no
 * sleep() for timing). */
static void wait_ms(uint64_t ms)
{
    uv_loop_t loop;
    uv_timer_t t;
    if (ms == 0 || uv_loop_init(&loop) != 0)
        return;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_wait_timer, ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* Append "&key=value" (value escaped) to a form body. */
static void form_add(struct cts_buf *b, const char *key, const char *value)
{
    char *esc = cts_url_escape(value);
    cts_buf_appendf(b, "%s%s=%s", b->len > 0 ? "&" : "", key, esc);
    free(esc);
}

/* Scopes from the user ("a b", "a,b" or "a+b") joined with '+', the way
 * phpfui works around CC's scope parsing (reference §2.7); owned. */
static char *join_scopes(const char *scopes)
{
    struct cts_buf b;
    const char *p = scopes != NULL ? scopes : DEFAULT_SCOPES;
    cts_buf_init(&b, 0);
    while (*p != '\0') {
        size_t n;
        char *one, *esc;
        p += strspn(p, " ,+\t");
        n = strcspn(p, " ,+\t");
        if (n == 0)
            break;
        one = cts_xstrndup(p, n);
        esc = cts_url_escape(one);
        cts_buf_appendf(&b, "%s%s", b.len > 0 ? "+" : "", esc);
        free(esc);
        free(one);
        p += n;
    }
    return cts_buf_detach(&b);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The decoded value of key in a query string of length len (percent and
 * '+' decoding); owned, NULL when absent or badly escaped. */
static char *query_get(const char *q, size_t len, const char *key)
{
    const char *p = q, *end = q + len;
    size_t klen = strlen(key);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq != NULL ? eq : stop;
        if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
            struct cts_buf b;
            const char *v = eq != NULL ? eq + 1 : stop;
            cts_buf_init(&b, 0);
            cts_buf_append(&b, "", 0);
            while (v < stop) {
                if (*v == '%') {
                    int h, l;
                    if (stop - v < 3 || (h = hexval(v[1])) < 0 ||
                        (l = hexval(v[2])) < 0 || (h == 0 && l == 0)) {
                        cts_buf_free(&b);
                        return NULL;
                    }
                    cts_buf_putc(&b, (char)(h * 16 + l));
                    v += 3;
                } else {
                    cts_buf_putc(&b, *v == '+' ? ' ' : *v);
                    v++;
                }
            }
            return cts_buf_detach(&b);
        }
        p = stop + 1;
    }
    return NULL;
}

static void html_escape(struct cts_buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<': cts_buf_appendf(b, "&lt;"); break;
        case '>': cts_buf_appendf(b, "&gt;"); break;
        case '&': cts_buf_appendf(b, "&amp;"); break;
        case '"': cts_buf_appendf(b, "&quot;"); break;
        default: cts_buf_putc(b, *s);
        }
    }
}

/* The command that gets new tokens, for messages.  The key is shown
 * masked (spec §4: keys appear only as first 4 + last 4). */
static void auth_hint(const struct cts_config *cfg, struct cts_buf *b)
{
    char m[16];
    cts_buf_appendf(b,
                    "ctct-sync auth --api %s --api-key KEY --token-file "
                    "%s%s%s  (KEY: your API key %s)",
                    cfg->api == CTS_API_V2 ? "v2" : "v3",
                    cfg->token_file != NULL ? cfg->token_file : "FILE",
                    cfg->redirect_uri != NULL ? " --redirect-uri " : "",
                    cfg->redirect_uri != NULL ? cfg->redirect_uri : "",
                    cts_mask(cfg->api_key, m));
}

/* err from a cts_buf message. */
static int set_err_buf(struct cts_error *err, int code, int exit_code,
                       struct cts_buf *b)
{
    cts_error_setx(err, code, exit_code, "%s", b->data != NULL ? b->data : "");
    cts_buf_free(b);
    return code;
}

/* Rewrite err's message as before + message + after. */
static void wrap_err(struct cts_error *err, int code, int exit_code,
                     const char *before, const char *after)
{
    struct cts_buf b;
    if (err == NULL)
        return;
    cts_buf_init(&b, 0);
    cts_buf_appendf(&b, "%s%s%s", before, err->msg, after);
    set_err_buf(err, code, exit_code, &b);
}

static char *side_path(const char *token_file, const char *suffix)
{
    return cts_xasprintf("%s%s", token_file, suffix);
}

/* ------------------------------------------------------------------ */
/* the token endpoint                                                  */

struct token_resp {
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

static void token_resp_clear(struct token_resp *r)
{
    if (r->access_token != NULL)
        memset(r->access_token, 0, strlen(r->access_token));
    if (r->refresh_token != NULL)
        memset(r->refresh_token, 0, strlen(r->refresh_token));
    free(r->access_token);
    free(r->refresh_token);
    free(r->error);
    free(r->error_description);
    free(r->device_code);
    free(r->user_code);
    free(r->verification_uri);
    free(r->verification_uri_complete);
    memset(r, 0, sizeof(*r));
}

static char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? cts_xstrdup(json_string_value(v)) : NULL;
}

/* v2 sends expires_in as a string ("308874923", reference §1.5). */
static long jlong(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    long n = 0;
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (json_is_string(v) &&
        cts_parse_long(json_string_value(v), 0, LONG_MAX, &n) == 0)
        return n;
    return 0;
}

/*
 * POST a form to url.  Never retried here: a token call spends a code or a
 * rotating refresh token, so repeating one blindly is wrong; callers decide.
 * Returns 0 when the server answered (any status, parsed into *out),
 * CTS_EHTTP (err filled) when it did not.
 */
static int post_form_once(const struct cts_config *cfg, const char *url,
                          const char *body, const char *basic_user,
                          const char *basic_pass, struct token_resp *out,
                          struct cts_error *err)
{
    struct cts_http_req req;
    struct cts_http_opts o;
    json_t *root;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&o, 0, sizeof(o));
    o.fetch_retries = -1;
    o.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 0;
    o.max_response = 64 * 1024;
    cts_http_req_init(&req);
    req.method = "POST";
    req.url = url;
    req.body = body;
    req.body_len = strlen(body);
    req.content_type = "application/x-www-form-urlencoded";
    req.basic_user = basic_user;
    req.basic_pass = basic_pass;
    rc = cts_http_fetch(&req, &o, err);
    out->status = req.status;
    out->transport_error = req.transport_error;
    out->maybe_landed = req.maybe_landed;
    out->retry_after_s = req.retry_after_s;
    if (rc != 0) {
        if (err != NULL)
            err->exit_code = CTS_EX_UNAVAILABLE;
        cts_http_req_clear(&req);
        return rc != CTS_EHTTP && rc != UV_ENOMEM ? CTS_EHTTP : rc;
    }
    root = json_loadb(req.resp.data != NULL ? req.resp.data : "", req.resp.len,
                      0, NULL);
    if (json_is_object(root)) {
        out->access_token = jstr(root, "access_token");
        out->refresh_token = jstr(root, "refresh_token");
        out->error = jstr(root, "error");
        out->error_description = jstr(root, "error_description");
        out->expires_in = jlong(root, "expires_in");
        out->interval = jlong(root, "interval");
        out->device_code = jstr(root, "device_code");
        out->user_code = jstr(root, "user_code");
        out->verification_uri = jstr(root, "verification_uri");
        out->verification_uri_complete =
            jstr(root, "verification_uri_complete");
    }
    json_decref(root);
    if (req.resp.data != NULL)
        memset(req.resp.data, 0, req.resp.len); /* it held tokens */
    cts_http_req_clear(&req);
    return 0;
}

/*
 * POST a form to a token endpoint.  Transport failures are not retried: a
 * token call spends a code or a rotating refresh token, so repeating one
 * that may have landed is wrong.  A 429 is retried once after Retry-After
 * (1 s when absent, at most 10 s): the endpoint allows 1 request/s per
 * client, and a throttled request was not processed, so nothing was spent.
 * Returns 0 when the server answered (any status, parsed into *out),
 * CTS_EHTTP (err filled, exit 69) when it did not.
 */
static int post_form(const struct cts_config *cfg, const char *url,
                     const char *body, const char *basic_user,
                     const char *basic_pass, struct token_resp *out,
                     struct cts_error *err)
{
    int rc = post_form_once(cfg, url, body, basic_user, basic_pass, out, err);
    if (rc == 0 && out->status == 429) {
        long ra = out->retry_after_s;
        ra = ra < 1 ? 1 : ra > 10 ? 10 : ra;
        cts_log_debug("token endpoint answered 429; retrying in %ld s", ra);
        token_resp_clear(out);
        wait_ms((uint64_t)ra * 1000u + 100u);
        rc = post_form_once(cfg, url, body, basic_user, basic_pass, out, err);
    }
    return rc;
}

/* Expiry of a freshly issued access token: the JWT's own exp when it has
 * one, else now + expires_in, else unknown (0). */
static long new_expiry(const struct cts_config *cfg, const struct token_resp *r)
{
    long exp = 0;
    if (r->access_token != NULL &&
        cts_oauth_jwt_exp(r->access_token, &exp) == 0)
        return exp;
    if (r->expires_in > 0)
        return cts_config_now(cfg) + r->expires_in;
    return 0;
}

/* Replace cfg's tokens with tok's (copies). */
static void adopt(struct cts_config *cfg, const struct cts_tokens *tok)
{
    if (tok->access_token != NULL) {
        free(cfg->token);
        cfg->token = cts_xstrdup(tok->access_token);
    }
    free(cfg->refresh_token);
    cfg->refresh_token =
        tok->refresh_token != NULL ? cts_xstrdup(tok->refresh_token) : NULL;
    cfg->token_expires_at = tok->expires_at;
}

/* ------------------------------------------------------------------ */
/* v3 refresh with rotation                                            */

/* First 16 hex digits of SHA-256(token): identifies a refresh token in the
 * intent record without storing it. */
static void token_id(const char *token, char out[17])
{
    uint8_t d[CTS_SHA256_LEN];
    char hex[2 * CTS_SHA256_LEN + 1];
    cts_sha256(token, strlen(token), d);
    cts_hex(d, sizeof(d), hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

struct intent {
    int present;
    long started_at;
    char id[17];
};

static void intent_read(const char *path, struct intent *in)
{
    json_t *root = json_load_file(path, 0, NULL);
    json_t *v;
    memset(in, 0, sizeof(*in));
    if (root == NULL)
        return;
    v = json_object_get(root, "refresh_token_id");
    if (json_is_string(v) && strlen(json_string_value(v)) == 16) {
        in->present = 1;
        memcpy(in->id, json_string_value(v), 17);
        in->started_at = jlong(root, "started_at");
    }
    json_decref(root);
}

static int intent_write(const char *path, const char *refresh_token, long now,
                        struct cts_error *err)
{
    char id[17], text[256];
    int n;
    token_id(refresh_token, id);
    n = snprintf(text, sizeof(text),
                 "{\"refresh_token_id\":\"%s\",\"started_at\":%ld,"
                 "\"pid\":%ld}\n",
                 id, now, (long)getpid());
    return cts_file_write_atomic(path, text, (size_t)n, err);
}

static long token_expiry(const struct cts_config *cfg)
{
    long exp = 0;
    if (cfg->token != NULL && cts_oauth_jwt_exp(cfg->token, &exp) == 0)
        return exp;
    return cfg->token_expires_at;
}

/* 1 when tok's access token is still good at need_until. */
static int fresh_enough(const struct cts_tokens *tok, long need_until)
{
    long exp = 0;
    if (tok->access_token == NULL)
        return 0;
    if (cts_oauth_jwt_exp(tok->access_token, &exp) != 0)
        exp = tok->expires_at;
    return exp > need_until;
}

static int refresh_failed(const struct cts_config *cfg,
                          const struct token_resp *r, const struct intent *prev,
                          const char *spent_id, struct cts_error *err)
{
    struct cts_buf b;
    cts_buf_init(&b, 0);
    if (r->error != NULL && strcmp(r->error, "invalid_grant") == 0 &&
        prev->present && strcmp(prev->id, spent_id) == 0) {
        char when[64] = "an earlier run";
        time_t t = (time_t)prev->started_at;
        struct tm tm;
        if (prev->started_at > 0 && gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "a run at %Y-%m-%d %H:%M:%S UTC", &tm);
        cts_buf_appendf(
            &b,
            "the refresh token in %s was refused (invalid_grant): %s was "
            "interrupted while refreshing with this same token, after the "
            "server had replaced it; rotating refresh tokens work once, so "
            "the new one was lost and cannot be recovered. Authorize "
            "again: ",
            cfg->token_file, when);
        auth_hint(cfg, &b);
    } else if (r->error != NULL && strcmp(r->error, "invalid_grant") == 0) {
        cts_buf_appendf(
            &b,
            "the refresh token in %s was refused (invalid_grant"
            "%s%s): it was revoked, already used, or unused for "
            "180 days. Get new tokens: ",
            cfg->token_file, r->error_description != NULL ? ": " : "",
            r->error_description != NULL ? r->error_description : "");
        auth_hint(cfg, &b);
    } else {
        cts_buf_appendf(
            &b,
            "refreshing the v3 access token failed (HTTP %ld, "
            "%s%s%s). Check --api-key%s; to get new tokens, ",
            r->status, r->error != NULL ? r->error : "no error code",
            r->error_description != NULL ? ": " : "",
            r->error_description != NULL ? r->error_description : "",
            cfg->client_secret != NULL ? " and --client-secret" : "");
        auth_hint(cfg, &b);
    }
    return set_err_buf(err, CTS_EAUTH, CTS_EX_NOPERM, &b);
}

/*
 * The refresh itself, under the token file's lock.  force: refresh even if
 * the file's token looks fresh, unless another process already replaced
 * the token we were using (the 401 case).  need_until: the access token
 * must be valid until then (ensure_fresh).
 */
static int refresh_locked(struct cts_config *cfg, int force, long need_until,
                          struct cts_error *err)
{
    struct cts_tokens tok;
    struct token_resp r;
    struct intent prev;
    struct cts_buf body, msg;
    char *intent_path = side_path(cfg->token_file, ".refresh");
    char *url = NULL, spent_id[17];
    const char *client_id;
    uint64_t now_ms, next_ms;
    int rc;

    memset(&r, 0, sizeof(r));
    cts_buf_init(&body, 0);
    rc = cts_tokenfile_read(cfg->token_file, &tok, err);
    if (rc != 0)
        goto out;
    /* Another run may have refreshed while we waited for the lock: its
     * token is ours to use, and our refresh token is already spent. */
    if (tok.access_token != NULL &&
        (cfg->token == NULL || strcmp(tok.access_token, cfg->token) != 0) &&
        fresh_enough(&tok, force ? cts_config_now(cfg) : need_until)) {
        cts_log_info("using the access token another run saved in %s",
                     cfg->token_file);
        adopt(cfg, &tok);
        goto out;
    }
    if (!force && fresh_enough(&tok, need_until)) {
        adopt(cfg, &tok);
        goto out;
    }
    if (tok.refresh_token == NULL) {
        cts_buf_init(&msg, 0);
        cts_buf_appendf(&msg,
                        "the v3 access token has expired (or expires "
                        "during this run) and %s holds no refresh "
                        "token; get new tokens: ",
                        cfg->token_file);
        auth_hint(cfg, &msg);
        rc = set_err_buf(err, CTS_EAUTH, CTS_EX_NOPERM, &msg);
        goto out;
    }
    client_id = cfg->api_key != NULL ? cfg->api_key : tok.client_id;
    if (client_id == NULL) {
        rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                            "refreshing the token needs the API key (client "
                            "id): give --api-key or CTCT_API_KEY");
        goto out;
    }
    intent_read(intent_path, &prev);
    token_id(tok.refresh_token, spent_id);

    /* The token endpoint allows 1 request/s (reference §2.7); the last
     * call's time is in the file, rounded up to a whole second. */
    now_ms = real_ms();
    next_ms = tok.last_refresh_at > 0
                  ? (uint64_t)(tok.last_refresh_at + 1) * 1000u
                  : 0;
    /* A last_refresh_at in the future (clock changed, edited file) must
     * not make us wait for long: one second is the rule. */
    if (next_ms > now_ms + 1000u)
        next_ms = now_ms + 1000u;
    if (next_ms > now_ms) {
        cts_log_debug("token endpoint: waiting %llu ms (1 request/s)",
                      (unsigned long long)(next_ms - now_ms));
        wait_ms(next_ms - now_ms);
    }

    /* Intent first: if we die after the server answered, the next run can
     * explain why the refresh token is refused. */
    rc = intent_write(intent_path, tok.refresh_token, (long)time(NULL), err);
    if (rc != 0)
        goto out;

    url = cts_xasprintf("%s/token", cfg->auth_url);
    form_add(&body, "grant_type", "refresh_token");
    form_add(&body, "refresh_token", tok.refresh_token);
    if (cfg->client_secret == NULL)
        form_add(&body, "client_id", client_id);
    rc = post_form(cfg, url, body.data,
                   cfg->client_secret != NULL ? client_id : NULL,
                   cfg->client_secret, &r, err);
    /* Record the call's time before anything else can fail. */
    tok.last_refresh_at = (long)((real_ms() + 999) / 1000);
    if (rc == 0 && r.status == 200 && r.access_token != NULL &&
        getenv(CRASH_HOOK) != NULL && strcmp(getenv(CRASH_HOOK), "1") == 0)
        _exit(CTS_EX_SOFTWARE); /* test hook: die before the save */
    if (rc != 0) {
        /* No answer: the server may or may not have rotated the token.
         * Keep the intent record so a later invalid_grant is explained. */
        wrap_err(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                 "refreshing the v3 access token: no answer from the token "
                 "endpoint (",
                 ")");
        rc = CTS_EHTTP;
        goto out;
    }
    if (r.status == 200 && r.access_token != NULL) {
        /* Save before anything else: the old refresh token is spent. */
        free(tok.access_token);
        tok.access_token = cts_xstrdup(r.access_token);
        if (r.refresh_token != NULL) {
            /* Rotating: the response's token replaces the spent one.  A
             * long-lived refresh token is simply not returned again. */
            free(tok.refresh_token);
            tok.refresh_token = cts_xstrdup(r.refresh_token);
        }
        tok.expires_at = new_expiry(cfg, &r);
        if (tok.api == NULL)
            tok.api = cts_xstrdup("v3");
        if (tok.client_id == NULL)
            tok.client_id = cts_xstrdup(client_id);
        tok.bare = 0;
        rc = cts_tokenfile_write(cfg->token_file, &tok, err);
        if (rc != 0) {
            /* The new refresh token now exists only in memory; say so and
             * keep the intent record. */
            wrap_err(err, rc, CTS_EX_CONFIG,
                     "the token was refreshed but could not be saved (",
                     "); the old refresh token is now spent: run `ctct-sync "
                     "auth` after fixing the file");
            goto out;
        }
        unlink(intent_path);
        adopt(cfg, &tok);
        {
            char m[16];
            cts_log_info("refreshed the v3 access token (now %s), saved to %s",
                         cts_mask(tok.access_token, m), cfg->token_file);
        }
        rc = 0;
        goto out;
    }
    if (r.status >= 500 || r.status == 429) {
        /* The server failed before spending the token (it answered). */
        unlink(intent_path);
        rc = cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                            "refreshing the v3 access token: the token "
                            "endpoint answered HTTP %ld; try again later",
                            r.status);
        goto out;
    }
    rc = refresh_failed(cfg, &r, &prev, spent_id, err);
    /* Our own intent record for a token the server refused is noise, but
     * an earlier interrupted run's record keeps explaining the loss. */
    if (!(prev.present && strcmp(prev.id, spent_id) == 0))
        unlink(intent_path);
out:
    token_resp_clear(&r);
    if (body.data != NULL)
        memset(body.data, 0, body.len); /* it held the refresh token */
    cts_buf_free(&body);
    free(url);
    free(intent_path);
    cts_tokens_free(&tok);
    return rc;
}

/* Take <token_file>.lock (exclusive) so that two runs never spend the same
 * rotating refresh token.  Returns the fd or a negative code. */
static int lock_token_file(const struct cts_config *cfg, struct cts_error *err)
{
    char *path = side_path(cfg->token_file, ".lock");
    int fd, e;
    do
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        e = errno;
        cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                       "cannot create lock file %s: %s", path, strerror(e));
        free(path);
        return CTS_ECONFIG;
    }
    /* Blocking: the holder releases it within one token call (bounded by
     * the request timeout). */
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            e = errno;
            close(fd);
            cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                           "cannot lock %s: %s", path, strerror(e));
            free(path);
            return CTS_ECONFIG;
        }
    }
    free(path);
    return fd;
}

static int do_refresh(struct cts_config *cfg, int force, long need_until,
                      struct cts_error *err)
{
    int fd, rc;
    if (cfg->token_file == NULL) {
        struct cts_buf b;
        cts_buf_init(&b, 0);
        cts_buf_appendf(&b, "the v3 access token has expired (or expires "
                            "during this run) and there is no token file "
                            "with a refresh token; get new tokens: ");
        auth_hint(cfg, &b);
        return set_err_buf(err, CTS_EAUTH, CTS_EX_NOPERM, &b);
    }
    fd = lock_token_file(cfg, err);
    if (fd < 0)
        return fd;
    rc = refresh_locked(cfg, force, need_until, err);
    close(fd); /* releases the flock */
    return rc;
}

int cts_oauth_ensure_fresh(struct cts_config *cfg, long planned_seconds,
                           struct cts_error *err)
{
    long now, exp, need_until;

    if (cfg->api != CTS_API_V3)
        return 0;
    now = cts_config_now(cfg);
    if (planned_seconds < 0)
        planned_seconds = 0;
    /* v3 access tokens live 24 h: a run planned longer than that cannot be
     * covered by any token, and refreshing a nearly new token at every
     * start would only spend calls.  The pipeline refreshes on a 401. */
    if (planned_seconds > CTS_OAUTH_MAX_PLAN_S)
        planned_seconds = CTS_OAUTH_MAX_PLAN_S;
    need_until = now + planned_seconds + CTS_OAUTH_MARGIN_S;
    exp = token_expiry(cfg);
    if (cfg->token != NULL && exp == 0)
        return 0; /* opaque token, unknown expiry: the account call decides */
    if (cfg->token != NULL && exp > need_until)
        return 0;
    if (cfg->refresh_token == NULL) {
        struct cts_buf b;
        char when[64];
        time_t t = (time_t)exp;
        struct tm tm;
        if (cfg->token != NULL && exp > now) {
            /* Still valid now: let the run start; a 401 later is handled
             * by the pipeline.  Warn so cron users learn about it. */
            cts_log_warn("the v3 access token expires in %ld s, before this "
                         "run is expected to end, and there is no refresh "
                         "token to renew it",
                         exp - now);
            return 0;
        }
        cts_buf_init(&b, 0);
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        else
            snprintf(when, sizeof(when), "%ld", exp);
        cts_buf_appendf(&b,
                        "the v3 access token expired at %s and %s; get new "
                        "tokens: ",
                        when,
                        cfg->token_file != NULL
                            ? "the token file holds no refresh token"
                            : "there is no token file with a refresh token");
        auth_hint(cfg, &b);
        return set_err_buf(err, CTS_EAUTH, CTS_EX_NOPERM, &b);
    }
    return do_refresh(cfg, 0, need_until, err);
}

int cts_oauth_refresh(struct cts_config *cfg, struct cts_error *err)
{
    if (cfg->api != CTS_API_V3)
        return cts_error_setx(err, CTS_EAUTH, CTS_EX_NOPERM,
                              "v2 access tokens cannot be refreshed; get a "
                              "new one with `ctct-sync auth --api v2`");
    return do_refresh(cfg, 1, 0, err);
}

/* ------------------------------------------------------------------ */
/* `ctct-sync auth`                                                    */

struct auth {
    struct cts_config *cfg;
    const char *redirect;   /* the redirect URI used (borrowed from cfg) */
    const char *registered; /* borrowed, may be NULL */
    struct cts_uri ru;      /* parsed redirect */
    char *state;
    char *verifier;     /* v3 PKCE */
    int exit_code;      /* result */
    struct cts_buf msg; /* the result's explanation (stderr and page) */
};

/* Exchange code for tokens and write the token file.  Fills a->exit_code
 * and a->msg. */
static void exchange_code(struct auth *a, const char *code)
{
    struct cts_config *cfg = a->cfg;
    struct cts_buf body;
    struct token_resp r;
    struct cts_error err = {0};
    struct cts_tokens tok;
    char *url;
    int v2 = cfg->api == CTS_API_V2, rc;

    cts_buf_init(&body, 0);
    memset(&tok, 0, sizeof(tok));
    form_add(&body, "grant_type", "authorization_code");
    form_add(&body, "code", code);
    form_add(&body, "redirect_uri", a->redirect);
    if (v2) {
        /* v2 takes the secret in the parameters (reference §1.5); we send
         * them in the body, never in a URL that could be logged. */
        url = cts_xasprintf("%s/oauth/token", cfg->auth_url);
        form_add(&body, "client_id", cfg->api_key);
        form_add(&body, "client_secret", cfg->client_secret);
    } else {
        url = cts_xasprintf("%s/token", cfg->auth_url);
        form_add(&body, "client_id", cfg->api_key);
        form_add(&body, "code_verifier", a->verifier);
    }
    rc = post_form(cfg, url, body.data,
                   !v2 && cfg->client_secret != NULL ? cfg->api_key : NULL,
                   !v2 ? cfg->client_secret : NULL, &r, &err);
    memset(body.data, 0, body.len);
    cts_buf_free(&body);
    free(url);
    if (rc != 0) {
        a->exit_code = CTS_EX_UNAVAILABLE;
        cts_buf_appendf(&a->msg, "exchanging the code failed: %s", err.msg);
        return;
    }
    if (r.status != 200 || r.access_token == NULL) {
        a->exit_code = r.status >= 500   ? CTS_EX_UNAVAILABLE
                       : r.status == 429 ? CTS_EX_TEMPFAIL
                                         : CTS_EX_NOPERM;
        cts_buf_appendf(&a->msg,
                        "exchanging the code failed (HTTP %ld): ", r.status);
        cts_oauth_explain(r.error != NULL ? r.error : "(no error code)",
                          r.error_description, a->redirect, a->registered,
                          &a->msg);
        token_resp_clear(&r);
        return;
    }
    tok.api = cts_xstrdup(v2 ? "v2" : "v3");
    tok.access_token = r.access_token;
    tok.refresh_token = r.refresh_token;
    r.access_token = r.refresh_token = NULL; /* moved into tok */
    tok.expires_at = 0;
    {
        struct token_resp tmp = {0};
        tmp.access_token = tok.access_token;
        tmp.expires_in = r.expires_in;
        tok.expires_at = new_expiry(cfg, &tmp);
    }
    tok.client_id = cts_xstrdup(cfg->api_key);
    if (!v2)
        tok.last_refresh_at = (long)((real_ms() + 999) / 1000);
    rc = cts_tokenfile_write(cfg->token_file, &tok, &err);
    if (rc != 0) {
        a->exit_code = err.exit_code != 0 ? err.exit_code : CTS_EX_CANTCREAT;
        cts_buf_appendf(&a->msg, "got tokens but could not save them: %s",
                        err.msg);
    } else {
        char m1[16], m2[16], when[64] = "unknown";
        time_t t = (time_t)tok.expires_at;
        struct tm tm;
        char *intent = side_path(cfg->token_file, ".refresh");
        /* A fresh authorization supersedes an interrupted refresh. */
        unlink(intent);
        free(intent);
        if (tok.expires_at > 0 && gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        a->exit_code = CTS_EX_OK;
        cts_buf_appendf(
            &a->msg,
            "tokens saved to %s (mode 0600): access token %s, "
            "expires %s%s%s",
            cfg->token_file, cts_mask(tok.access_token, m1), when,
            tok.refresh_token != NULL ? ", refresh token " : "",
            tok.refresh_token != NULL ? cts_mask(tok.refresh_token, m2) : "");
    }
    cts_tokens_free(&tok);
    token_resp_clear(&r);
}

/* Handle the redirect's query string (from the listener or a paste). */
static void handle_callback(struct auth *a, const char *query, size_t len)
{
    char *code = query_get(query, len, "code");
    char *state = query_get(query, len, "state");
    char *error = query_get(query, len, "error");
    char *desc = query_get(query, len, "error_description");

    if (error != NULL) {
        a->exit_code = CTS_EX_NOPERM;
        cts_buf_appendf(&a->msg, "authorization failed: ");
        cts_oauth_explain(error, desc, a->redirect, a->registered, &a->msg);
    } else if (state == NULL || strcmp(state, a->state) != 0) {
        /* RFC 6749 10.12: a redirect whose state we did not issue may be a
         * forged request (CSRF); its code must not be used. */
        a->exit_code = CTS_EX_NOPERM;
        cts_buf_appendf(&a->msg,
                        "the redirect's state %s the one ctct-sync sent, so "
                        "it does not answer this request (an old browser "
                        "tab, or a forged redirect); nothing was exchanged. "
                        "Run `ctct-sync auth` again and use the new URL.",
                        state == NULL ? "is missing; it must equal"
                                      : "does not match");
    } else if (code == NULL || code[0] == '\0') {
        a->exit_code = CTS_EX_NOPERM;
        cts_buf_appendf(&a->msg, "the redirect carries no authorization "
                                 "code; run `ctct-sync auth` again");
    } else {
        exchange_code(a, code);
    }
    if (code != NULL)
        memset(code, 0, strlen(code));
    free(code);
    free(state);
    free(error);
    free(desc);
}

/* ---- the loopback listener ---- */

struct listener;
struct conn {
    uv_tcp_t tcp;
    uv_write_t wr;
    struct listener *l;
    struct cts_buf in;
    char *out;
    int responded;
};

struct listener {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t timer;
    struct auth *a;
    int finished; /* callback handled or timed out: stop listening */
    int timed_out;
};

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    cts_buf_free(&c->in);
    free(c->out);
    free(c);
}

static void stop_listening(struct listener *l)
{
    if (l->finished)
        return;
    l->finished = 1;
    uv_close((uv_handle_t *)&l->server, NULL);
    uv_close((uv_handle_t *)&l->timer, NULL);
}

static void on_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    (void)status; /* the browser may have gone; nothing to do either way */
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void respond(struct conn *c, int code, const char *reason,
                    const char *title, const char *text)
{
    struct cts_buf page, all;
    uv_buf_t buf;

    cts_buf_init(&page, 0);
    cts_buf_appendf(&page, "<!doctype html><html><head><meta charset=\"utf-8\">"
                           "<title>ctct-sync: ");
    html_escape(&page, title);
    cts_buf_appendf(&page, "</title></head><body style=\"font-family:sans-"
                           "serif;max-width:40em;margin:3em auto\"><h1>");
    html_escape(&page, title);
    cts_buf_appendf(&page, "</h1><pre style=\"white-space:pre-wrap\">");
    html_escape(&page, text);
    cts_buf_appendf(&page, "</pre><p>You can close this window and return "
                           "to the terminal.</p></body></html>\n");
    cts_buf_init(&all, 0);
    cts_buf_appendf(&all,
                    "HTTP/1.1 %d %s\r\nContent-Type: text/html; "
                    "charset=utf-8\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    code, reason, page.len);
    cts_buf_append(&all, page.data, page.len);
    cts_buf_free(&page);
    c->out = cts_buf_detach(&all);
    buf = uv_buf_init(c->out, (unsigned)strlen(c->out));
    c->responded = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = cts_xmalloc(suggested);
    buf->len = suggested;
}

/* A full request head is in c->in: route it. */
static void on_request(struct conn *c)
{
    struct listener *l = c->l;
    struct auth *a = l->a;
    const char *line = c->in.data, *sp1, *sp2, *q;
    size_t plen;

    sp1 = strchr(line, ' ');
    sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || sp2 > strstr(line, "\r\n")) {
        respond(c, 400, "Bad Request", "Bad request", "Not an HTTP request.");
        return;
    }
    if ((size_t)(sp1 - line) != 3 || memcmp(line, "GET", 3) != 0) {
        respond(c, 405, "Method Not Allowed", "Method not allowed",
                "This is ctct-sync's OAuth callback; it only answers GET.");
        return;
    }
    q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
    plen = (size_t)((q != NULL ? q : sp2) - (sp1 + 1));
    /* Only the registered path is the callback; a browser also asks for
     * /favicon.ico, which must not end the wait. */
    if (l->finished ||
        plen != strlen(a->ru.path[0] != '\0' ? a->ru.path : "/") ||
        memcmp(sp1 + 1, a->ru.path[0] != '\0' ? a->ru.path : "/", plen) != 0) {
        respond(c, 404, "Not Found", "Not found",
                l->finished ? "ctct-sync has already received the "
                              "authorization."
                            : "This is ctct-sync's OAuth callback; this "
                              "path is not it.");
        return;
    }
    stop_listening(l);
    if (q == NULL)
        handle_callback(a, "", 0);
    else
        handle_callback(a, q + 1, (size_t)(sp2 - q - 1));
    if (a->exit_code == CTS_EX_OK)
        respond(c, 200, "OK", "Authorization complete", a->msg.data);
    else
        respond(c, 400, "Bad Request", "Authorization failed", a->msg.data);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n > 0 && !c->responded) {
        if (cts_buf_append(&c->in, buf->base, (size_t)n) != 0) {
            respond(c, 431, "Request Header Fields Too Large", "Bad request",
                    "The request is too large.");
        } else if (strstr(c->in.data, "\r\n\r\n") != NULL) {
            /* Read the whole head first: closing with unread data would
             * reset the connection and lose our answer. */
            on_request(c);
        }
    } else if (n < 0 && !c->responded) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct conn *c;
    if (status < 0 || l->finished)
        return;
    c = cts_xcalloc(1, sizeof(*c));
    c->l = l;
    cts_buf_init(&c->in, CALLBACK_MAX);
    uv_tcp_init(&l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_browser_timeout(uv_timer_t *t)
{
    struct listener *l = t->data;
    l->timed_out = 1;
    stop_listening(l);
}

static void on_proc_closed(uv_handle_t *h);

/* Close what is still open after the wait (a browser's idle keep-alive
 * connection, a still-running xdg-open), each with the close callback that
 * frees its storage (libuv: free only in the close callback). */
static void on_walk_close(uv_handle_t *h, void *arg)
{
    struct listener *l = arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_PROCESS)
        uv_close(h, on_proc_closed);
    else if (h->type == UV_TCP && h != (uv_handle_t *)&l->server)
        uv_close(h, on_conn_closed);
    else
        uv_close(h, NULL);
}

/* How long to wait for the browser: --timeout when the user changed it
 * from the per-request default, else 300 s; CTCT_SYNC_AUTH_TIMEOUT (s)
 * overrides both (tests). */
static uint64_t browser_wait_ms(const struct cts_config *cfg)
{
    const char *env = getenv("CTCT_SYNC_AUTH_TIMEOUT");
    long s;
    if (env != NULL && cts_parse_long(env, 1, 86400, &s) == 0)
        return (uint64_t)s * 1000u;
    if (cfg->timeout_ms > 0 && cfg->timeout_ms != DEFAULT_REQ_TIMEOUT_MS)
        return (uint64_t)cfg->timeout_ms;
    return (uint64_t)BROWSER_WAIT_S * 1000u;
}

static void open_browser(uv_loop_t *loop, const char *url);

/* Listen on the redirect URI's host:port, print the URL, wait. */
static int run_listener(struct auth *a, const char *auth_url_text)
{
    struct listener l;
    struct sockaddr_storage ss;
    const char *host = a->ru.host;
    char h6[64];
    uint64_t wait = browser_wait_ms(a->cfg);
    int rc;

    memset(&l, 0, sizeof(l));
    l.a = a;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1"; /* what localhost resolves to for a browser */
    if (host[0] == '[') {
        snprintf(h6, sizeof(h6), "%.*s", (int)strlen(host) - 2, host + 1);
        rc = uv_ip6_addr(h6, (int)a->ru.port, (struct sockaddr_in6 *)&ss);
    } else {
        rc = uv_ip4_addr(host, (int)a->ru.port, (struct sockaddr_in *)&ss);
    }
    if (rc == 0)
        rc = uv_loop_init(&l.loop);
    if (rc != 0) {
        cts_log_error("cannot listen on %s: %s", a->redirect, uv_strerror(rc));
        return CTS_EX_CONFIG;
    }
    uv_tcp_init(&l.loop, &l.server);
    uv_timer_init(&l.loop, &l.timer);
    l.server.data = &l;
    l.timer.data = &l;
    /* Bind before printing the URL: a fast browser must find us there. */
    rc = uv_tcp_bind(&l.server, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l.server, 16, on_connection);
    if (rc != 0) {
        cts_log_error("cannot listen on %s:%ld for the redirect URI %s: %s%s",
                      a->ru.host, a->ru.port, a->redirect, uv_strerror(rc),
                      rc == UV_EADDRINUSE
                          ? " (another program uses that port; stop it, or "
                            "register and use a redirect URI with another "
                            "port)"
                          : "");
        uv_close((uv_handle_t *)&l.server, NULL);
        uv_close((uv_handle_t *)&l.timer, NULL);
        uv_run(&l.loop, UV_RUN_DEFAULT);
        uv_loop_close(&l.loop);
        return rc == UV_EADDRINUSE ? CTS_EX_TEMPFAIL : CTS_EX_CONFIG;
    }
    printf("Open this URL in a browser to authorize ctct-sync:\n\n  %s\n\n",
           auth_url_text);
    fflush(stdout);
    cts_log_info("waiting up to %llu s for the browser to come back to %s",
                 (unsigned long long)(wait / 1000), a->redirect);
    uv_timer_start(&l.timer, on_browser_timeout, wait, 0);
    if (a->cfg->open_browser)
        open_browser(&l.loop, auth_url_text);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    /* Close anything still open (a browser's idle keep-alive socket). */
    uv_walk(&l.loop, on_walk_close, &l);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&l.loop) != 0)
        cts_log_debug("listener loop did not close cleanly");
    if (l.timed_out) {
        cts_buf_appendf(&a->msg,
                        "no redirect arrived at %s within %llu s; nothing "
                        "was authorized.  If the browser showed "
                        "redirect_uri_mismatch, this URI is not the one "
                        "registered for the API key: pass the registered "
                        "one with --registered-redirect-uri to compare.  "
                        "Run `ctct-sync auth` again (use --no-listen to "
                        "paste the redirected URL instead, e.g. on a "
                        "machine without a browser)",
                        a->redirect, (unsigned long long)(wait / 1000));
        return CTS_EX_TEMPFAIL;
    }
    return a->exit_code;
}

static void on_proc_closed(uv_handle_t *h)
{
    free(h);
}

static void on_spawn_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)status;
    (void)sig;
    uv_close((uv_handle_t *)p, on_proc_closed);
}

/* --open: hand the URL to xdg-open; never by default (spec §9). */
static void open_browser(uv_loop_t *loop, const char *url)
{
    uv_process_options_t o;
    uv_process_t *p = cts_xcalloc(1, sizeof(*p));
    char *args[3];
    uv_stdio_container_t stdio[3];
    int rc, i;

    args[0] = "xdg-open";
    args[1] = (char *)url;
    args[2] = NULL;
    for (i = 0; i < 3; i++)
        stdio[i].flags = UV_IGNORE;
    memset(&o, 0, sizeof(o));
    o.file = "xdg-open";
    o.args = args;
    o.exit_cb = on_spawn_exit;
    o.stdio = stdio;
    o.stdio_count = 3;
    rc = uv_spawn(loop, p, &o);
    if (rc != 0) {
        cts_log_warn("cannot start xdg-open (%s); open the URL yourself",
                     uv_strerror(rc));
        /* libuv: a failed uv_spawn still initialised the handle. */
        uv_close((uv_handle_t *)p, on_proc_closed);
        return;
    }
    uv_unref((uv_handle_t *)p); /* the browser's life is not our wait */
}

/* --no-listen (or a non-loopback redirect URI): read the redirected URL
 * from standard input. */
static int run_paste(struct auth *a, const char *auth_url_text)
{
    char line[8192];
    const char *q;
    size_t n;

    printf("Open this URL in a browser to authorize ctct-sync:\n\n  %s\n\n"
           "After approving, the browser is sent to %s…; copy that whole "
           "address from the address bar and paste it here:\n",
           auth_url_text, a->redirect);
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL) {
        cts_buf_appendf(&a->msg, "no redirected URL was pasted on standard "
                                 "input; nothing was authorized");
        return CTS_EX_NOPERM;
    }
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    q = strchr(line, '?');
    if (q == NULL) {
        cts_buf_appendf(&a->msg,
                        "the pasted text is not the redirected URL (it has "
                        "no ?code=…&state=… part); paste the whole address "
                        "the browser shows after approving");
        memset(line, 0, sizeof(line));
        return CTS_EX_NOPERM;
    }
    if (q != line) {
        /* A full URL: it must be our redirect URI (else the user pasted
         * the authorization URL or another page). */
        size_t plen = (size_t)(q - line);
        if (plen != strlen(a->redirect) -
                        (a->ru.query != NULL ? strlen(a->ru.query) + 1 : 0) ||
            strncmp(line, a->redirect, plen) != 0)
            cts_log_warn("the pasted URL does not start with the redirect "
                         "URI %s; using its query anyway",
                         a->redirect);
    }
    q++;
    handle_callback(a, q, strlen(q));
    memset(line, 0, sizeof(line)); /* it held the code */
    return a->exit_code;
}

/* ---- device flow (v3) ---- */

struct device_poll {
    struct auth *a;
    uv_timer_t timer;
    char *url, *body;
    long interval_s;
    long deadline; /* unix time the device code expires */
    int done;
};

static void on_device_tick(uv_timer_t *t)
{
    struct device_poll *d = t->data;
    struct auth *a = d->a;
    struct token_resp r;
    struct cts_error err = {0};
    int rc;

    rc = post_form(a->cfg, d->url, d->body, NULL, NULL, &r, &err);
    if (rc != 0) {
        a->exit_code = CTS_EX_UNAVAILABLE;
        cts_buf_appendf(&a->msg, "polling the token endpoint failed: %s",
                        err.msg);
        goto stop;
    }
    if (r.status == 200 && r.access_token != NULL) {
        struct cts_tokens tok;
        memset(&tok, 0, sizeof(tok));
        tok.api = cts_xstrdup("v3");
        tok.access_token = cts_xstrdup(r.access_token);
        tok.refresh_token =
            r.refresh_token != NULL ? cts_xstrdup(r.refresh_token) : NULL;
        tok.expires_at = new_expiry(a->cfg, &r);
        tok.client_id = cts_xstrdup(a->cfg->api_key);
        tok.last_refresh_at = (long)((real_ms() + 999) / 1000);
        rc = cts_tokenfile_write(a->cfg->token_file, &tok, &err);
        if (rc != 0) {
            a->exit_code = err.exit_code != 0 ? err.exit_code : CTS_EX_CONFIG;
            cts_buf_appendf(&a->msg, "got tokens but could not save them: %s",
                            err.msg);
        } else {
            char m[16];
            char *intent = side_path(a->cfg->token_file, ".refresh");
            unlink(intent);
            free(intent);
            a->exit_code = CTS_EX_OK;
            cts_buf_appendf(
                &a->msg, "tokens saved to %s (mode 0600): access token %s%s",
                a->cfg->token_file, cts_mask(tok.access_token, m),
                tok.refresh_token != NULL ? ", with a refresh token" : "");
        }
        cts_tokens_free(&tok);
        goto stop;
    }
    if (r.error != NULL && strcmp(r.error, "authorization_pending") == 0) {
        /* keep polling at the same interval */
    } else if (r.error != NULL && strcmp(r.error, "slow_down") == 0) {
        /* RFC 8628 3.5: add 5 seconds to the interval for this and all
         * later requests. */
        d->interval_s += 5;
        cts_log_debug("device flow: slow_down, polling every %ld s",
                      d->interval_s);
    } else if (r.status == 429) {
        d->interval_s += 1;
    } else {
        a->exit_code = r.status >= 500 ? CTS_EX_UNAVAILABLE : CTS_EX_NOPERM;
        cts_buf_appendf(&a->msg,
                        "device authorization failed (HTTP %ld): ", r.status);
        cts_oauth_explain(r.error, r.error_description, NULL, NULL, &a->msg);
        goto stop;
    }
    token_resp_clear(&r);
    if ((long)time(NULL) + d->interval_s > d->deadline) {
        a->exit_code = CTS_EX_TEMPFAIL;
        cts_buf_appendf(&a->msg, "the device code expired before it was "
                                 "approved; run `ctct-sync auth --device` "
                                 "again");
        uv_close((uv_handle_t *)t, NULL);
        return;
    }
    uv_timer_start(t, on_device_tick, (uint64_t)d->interval_s * 1000u, 0);
    return;
stop:
    token_resp_clear(&r);
    uv_close((uv_handle_t *)t, NULL);
}

static int run_device(struct auth *a)
{
    struct cts_config *cfg = a->cfg;
    struct token_resp r;
    struct cts_error err = {0};
    struct cts_buf body;
    struct device_poll d;
    uv_loop_t loop;
    char *url, *scopes;
    int rc;

    cts_buf_init(&body, 0);
    form_add(&body, "client_id", cfg->api_key);
    scopes = join_scopes(cfg->scopes);
    /* join_scopes escaped each scope already; '+' is a space in a form. */
    cts_buf_appendf(&body, "&scope=%s", scopes);
    free(scopes);
    url = cts_xasprintf("%s/device/authorize", cfg->auth_url);
    rc = post_form(cfg, url, body.data, NULL, NULL, &r, &err);
    free(url);
    cts_buf_free(&body);
    if (rc != 0) {
        cts_buf_appendf(&a->msg, "starting the device flow failed: %s",
                        err.msg);
        return CTS_EX_UNAVAILABLE;
    }
    if (r.status != 200 || r.device_code == NULL || r.user_code == NULL) {
        cts_buf_appendf(&a->msg,
                        "starting the device flow failed (HTTP "
                        "%ld): ",
                        r.status);
        cts_oauth_explain(r.error != NULL ? r.error : "(no device code)",
                          r.error_description, NULL, NULL, &a->msg);
        rc = r.status >= 500 ? CTS_EX_UNAVAILABLE : CTS_EX_NOPERM;
        token_resp_clear(&r);
        return rc;
    }
    printf("To authorize ctct-sync, open\n\n  %s\n\nand enter the code  %s\n",
           r.verification_uri != NULL ? r.verification_uri : "(no URL given)",
           r.user_code);
    if (r.verification_uri_complete != NULL)
        printf("\nor open this URL, which fills the code in:\n\n  %s\n",
               r.verification_uri_complete);
    fflush(stdout);

    memset(&d, 0, sizeof(d));
    d.a = a;
    d.interval_s = r.interval > 0 ? r.interval : 5;
    d.deadline = (long)time(NULL) + (r.expires_in > 0 ? r.expires_in : 600);
    d.url = cts_xasprintf("%s/token", cfg->auth_url);
    cts_buf_init(&body, 0);
    form_add(&body, "grant_type",
             "urn:ietf:params:oauth:grant-type:device_code");
    form_add(&body, "device_code", r.device_code);
    form_add(&body, "client_id", cfg->api_key);
    d.body = cts_buf_detach(&body);

    a->exit_code = CTS_EX_SOFTWARE;
    rc = uv_loop_init(&loop);
    if (rc != 0) {
        cts_buf_appendf(&a->msg, "cannot start an event loop: %s",
                        uv_strerror(rc));
    } else {
        uv_timer_init(&loop, &d.timer);
        d.timer.data = &d;
        /* RFC 8628 3.4: wait the interval before the first poll. */
        uv_timer_start(&d.timer, on_device_tick, (uint64_t)d.interval_s * 1000u,
                       0);
        if (cfg->open_browser && r.verification_uri_complete != NULL)
            open_browser(&loop, r.verification_uri_complete);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    token_resp_clear(&r);
    free(d.url);
    memset(d.body, 0, strlen(d.body));
    free(d.body);
    return a->exit_code;
}

int cts_cmd_auth(struct cts_config *cfg)
{
    struct auth a;
    struct cts_buf why, url;
    enum cts_redirect_problem pb;
    char *scopes = NULL, *challenge = NULL, *esc;
    int ex;

    memset(&a, 0, sizeof(a));
    a.cfg = cfg;
    cts_buf_init(&a.msg, 0);
    if (cfg->api_key == NULL) {
        cts_log_error("auth needs the API key (client id): --api-key KEY or "
                      "CTCT_API_KEY; it is shown in the developer portal");
        return CTS_EX_CONFIG;
    }
    if (cfg->token_file == NULL) {
        cts_log_error("auth needs --token-file FILE (or CTCT_TOKEN_FILE) to "
                      "save the tokens in");
        return CTS_EX_CONFIG;
    }
    if (cfg->device_flow) {
        if (cfg->api == CTS_API_V2) {
            cts_log_error("--device: the device flow exists only for v3 "
                          "(use --api v3)");
            return CTS_EX_USAGE;
        }
        ex = run_device(&a);
        goto out;
    }
    if (cfg->api == CTS_API_V2 && cfg->client_secret == NULL) {
        cts_log_error("the v2 server flow needs the client secret: "
                      "CTCT_CLIENT_SECRET or --client-secret (shown with the "
                      "API key in the developer portal)");
        return CTS_EX_CONFIG;
    }

    /* The diagnosis comes before anything is sent (spec §9). */
    a.registered = cfg->registered_redirect_uri;
    a.redirect = cfg->redirect_uri != NULL ? cfg->redirect_uri : a.registered;
    cts_buf_init(&why, 0);
    pb = cts_redirect_check(a.redirect, a.registered, cfg->auth_url, &why);
    if (pb != CTS_REDIR_OK) {
        cts_log_error("bad redirect URI: %s", why.data);
        cts_buf_free(&why);
        cts_buf_free(&a.msg);
        return CTS_EX_CONFIG;
    }
    cts_buf_free(&why);
    if (cts_uri_parse(a.redirect, &a.ru) != 0) { /* checked above */
        cts_buf_free(&a.msg);
        return CTS_EX_SOFTWARE;
    }

    a.state = random_token(16);
    a.verifier = random_token(32); /* 43 characters: RFC 7636 minimum */
    if (a.state == NULL || a.verifier == NULL) {
        cts_log_error("cannot read the system's random source");
        ex = CTS_EX_SOFTWARE;
        goto out;
    }
    cts_buf_init(&url, 0);
    if (cfg->api == CTS_API_V2) {
        cts_buf_appendf(&url, "%s/oauth/siteowner/authorize?response_type=code",
                        cfg->auth_url);
        esc = cts_url_escape(cfg->api_key);
        cts_buf_appendf(&url, "&client_id=%s", esc);
        free(esc);
        esc = cts_url_escape(a.redirect);
        cts_buf_appendf(&url, "&redirect_uri=%s&state=%s", esc, a.state);
        free(esc);
    } else {
        esc = cts_url_escape(cfg->api_key);
        cts_buf_appendf(&url, "%s/authorize?client_id=%s", cfg->auth_url, esc);
        free(esc);
        esc = cts_url_escape(a.redirect);
        scopes = join_scopes(cfg->scopes);
        challenge = cts_oauth_pkce_challenge(a.verifier);
        cts_buf_appendf(&url,
                        "&redirect_uri=%s&response_type=code&scope=%s"
                        "&state=%s&code_challenge=%s"
                        "&code_challenge_method=S256",
                        esc, scopes, a.state, challenge);
        free(esc);
    }
    if (cts_uri_is_loopback(&a.ru) && !cfg->no_listen) {
        ex = run_listener(&a, url.data);
    } else {
        if (!cfg->no_listen)
            cts_log_info("%s is not on this machine, so ctct-sync cannot "
                         "receive the redirect itself; paste it instead",
                         a.redirect);
        if (cfg->open_browser)
            cts_log_warn("--open is ignored with --no-listen");
        ex = run_paste(&a, url.data);
    }
    cts_buf_free(&url);
out:
    if (ex == CTS_EX_OK) {
        if (a.msg.data != NULL && !cfg->quiet)
            fprintf(stderr, "ctct-sync: %s\n", a.msg.data);
    } else if (a.msg.data != NULL && a.msg.len > 0) {
        cts_log_error("%s", a.msg.data);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cts_log_error("cannot write to standard output");
        if (ex == CTS_EX_OK)
            ex = CTS_EX_CANTCREAT;
    }
    cts_uri_clear(&a.ru);
    free(a.state);
    if (a.verifier != NULL)
        memset(a.verifier, 0, strlen(a.verifier));
    free(a.verifier);
    free(scopes);
    free(challenge);
    cts_buf_free(&a.msg);
    return ex;
}
