/*
 * refresh.c — the v3 token refresh with rotation (cts_refresh.h): used by
 * `check` and `import` before a run when the access token is expiring,
 * and by the pipeline once on a 401.  The crash-safety design (lock,
 * intent record, save before anything else) is described in
 * cts_refresh.h.
 */
#include "cts_refresh.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cts_jwt.h"
#include "cts_secret.h"
#include "cts_tokenfile.h"
#include "oauth_int.h"

#define CRASH_HOOK "CTCT_SYNC_TEST_CRASH_AFTER_REFRESH"

/* The command that gets new tokens, for messages.  The key is shown
 * masked (keys appear only as first 4 + last 4). */
static void auth_hint(const struct cts_config *cfg, struct cts_buf *b)
{
    char m[CTS_MASK_SIZE];
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

void cts_oauth_intent_remove(const char *token_file)
{
    char *intent = side_path(token_file, ".refresh");
    unlink(intent);
    free(intent);
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
        in->started_at = cts_oauth_jlong(root, "started_at");
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
    if (cfg->token != NULL && cts_jwt_exp(cfg->token, &exp) == 0)
        return exp;
    return cfg->token_expires_at;
}

/* 1 when tok's access token is still good at need_until. */
static int fresh_enough(const struct cts_tokens *tok, long need_until)
{
    long exp = 0;
    if (tok->access_token == NULL)
        return 0;
    if (cts_jwt_exp(tok->access_token, &exp) != 0)
        exp = tok->expires_at;
    return exp > need_until;
}

static int refresh_failed(const struct cts_config *cfg,
                          const struct cts_oauth_resp *r,
                          const struct intent *prev, const char *spent_id,
                          struct cts_error *err)
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
    struct cts_oauth_resp r;
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

    /* The token endpoint allows 1 request/s; the last
     * call's time is in the file, rounded up to a whole second. */
    now_ms = cts_oauth_real_ms();
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
        cts_oauth_wait_ms(next_ms - now_ms);
    }

    /* Intent first: if we die after the server answered, the next run can
     * explain why the refresh token is refused. */
    rc = intent_write(intent_path, tok.refresh_token, (long)time(NULL), err);
    if (rc != 0)
        goto out;

    url = cts_xasprintf("%s/token", cfg->auth_url);
    cts_oauth_form_add(&body, "grant_type", "refresh_token");
    cts_oauth_form_add(&body, "refresh_token", tok.refresh_token);
    if (cfg->client_secret == NULL)
        cts_oauth_form_add(&body, "client_id", client_id);
    rc = cts_oauth_post_form(cfg, url, body.data,
                             cfg->client_secret != NULL ? client_id : NULL,
                             cfg->client_secret, &r, err);
    /* Record the call's time before anything else can fail. */
    tok.last_refresh_at = cts_oauth_call_time();
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
        tok.expires_at = cts_oauth_new_expiry(cfg, &r);
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
            char m[CTS_MASK_SIZE];
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
    cts_oauth_resp_clear(&r);
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
