/*
 * oauth_token.c — the token endpoint client shared by the `auth` command
 * and the token refresh (oauth_int.h): form bodies, the POST with its one
 * 429 retry, the parsed answer, and the real-time waits the endpoint's
 * 1 request/s asks for.
 *
 * Calls are blocking cts_http_fetch calls: they happen before the
 * pipeline's loop starts, or between its requests (the 401 case).  Waits
 * run on private uv loops with timers, never sleep().
 */
#include "oauth_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_jwt.h"

uint64_t cts_oauth_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

long cts_oauth_call_time(void)
{
    return (long)((cts_oauth_real_ms() + 999) / 1000);
}

static void on_wait_timer(uv_timer_t *t)
{
    (void)t; /* nothing to do: the loop ends when the timer is done */
}

void cts_oauth_wait_ms(uint64_t ms)
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

void cts_oauth_form_add(struct cts_buf *b, const char *key, const char *value)
{
    char *esc = cts_url_escape(value);
    cts_buf_appendf(b, "%s%s=%s", b->len > 0 ? "&" : "", key, esc);
    free(esc);
}

void cts_oauth_resp_clear(struct cts_oauth_resp *r)
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

/* v2 sends expires_in as a string ("308874923"). */
long cts_oauth_jlong(json_t *o, const char *k)
{
    long n;
    return cts_json_int(json_object_get(o, k), 0, LONG_MAX, &n) == 0 ? n : 0;
}

/*
 * POST a form to url.  Never retried here: a token call spends a code or a
 * rotating refresh token, so repeating one blindly is wrong; callers decide.
 * Returns 0 when the server answered (any status, parsed into *out),
 * CTS_EHTTP (err filled) when it did not.
 */
static int post_form_once(const struct cts_config *cfg, const char *url,
                          const char *body, const char *basic_user,
                          const char *basic_pass, struct cts_oauth_resp *out,
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
        cts_http_req_free(&req);
        return rc != CTS_EHTTP && rc != UV_ENOMEM ? CTS_EHTTP : rc;
    }
    root = json_loadb(req.resp.data != NULL ? req.resp.data : "", req.resp.len,
                      0, NULL);
    if (json_is_object(root)) {
        out->access_token = jstr(root, "access_token");
        out->refresh_token = jstr(root, "refresh_token");
        out->error = jstr(root, "error");
        out->error_description = jstr(root, "error_description");
        out->expires_in = cts_oauth_jlong(root, "expires_in");
        out->interval = cts_oauth_jlong(root, "interval");
        out->device_code = jstr(root, "device_code");
        out->user_code = jstr(root, "user_code");
        out->verification_uri = jstr(root, "verification_uri");
        out->verification_uri_complete =
            jstr(root, "verification_uri_complete");
    }
    json_decref(root);
    if (req.resp.data != NULL)
        memset(req.resp.data, 0, req.resp.len); /* it held tokens */
    cts_http_req_free(&req);
    return 0;
}

/* A 429 is retried once after Retry-After (1 s when absent, at most
 * 10 s): the endpoint allows 1 request/s per client, and a throttled
 * request was not processed, so nothing was spent. */
int cts_oauth_post_form(const struct cts_config *cfg, const char *url,
                        const char *body, const char *basic_user,
                        const char *basic_pass, struct cts_oauth_resp *out,
                        struct cts_error *err)
{
    int rc = post_form_once(cfg, url, body, basic_user, basic_pass, out, err);
    if (rc == 0 && out->status == 429) {
        long ra = out->retry_after_s;
        ra = ra < 1 ? 1 : ra > 10 ? 10 : ra;
        cts_log_debug("token endpoint answered 429; retrying in %ld s", ra);
        cts_oauth_resp_clear(out);
        cts_oauth_wait_ms((uint64_t)ra * 1000u + 100u);
        rc = post_form_once(cfg, url, body, basic_user, basic_pass, out, err);
    }
    return rc;
}

long cts_oauth_new_expiry(const struct cts_config *cfg,
                          const struct cts_oauth_resp *r)
{
    long exp = 0;
    if (r->access_token != NULL && cts_jwt_exp(r->access_token, &exp) == 0)
        return exp;
    if (r->expires_in > 0)
        return cts_config_now(cfg) + r->expires_in;
    return 0;
}
