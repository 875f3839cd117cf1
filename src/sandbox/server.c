/*
 * server.c — ctct-sandbox's HTTP/1.1 server on libuv: the server object,
 * the request cycle, and the /_sandbox/state document.  Connection I/O and
 * its guards (timeouts, caps) live in conn.c; response builders in
 * response.c.
 *
 * One struct conn per TCP connection owns a read buffer, the request being
 * served (at most one at a time: pipelined requests are answered in order)
 * and two write buffers (one being written, one filling), so a keep-alive
 * connection serves requests without per-request allocations in the server
 * itself.  While a request is deferred (latency, slow fault, a handler that
 * answers later) the connection stops reading; that keeps request views
 * pointing into a buffer that cannot move.
 *
 * API routes (SB_ROUTE_V2/V3) go through, in order: authentication, daily
 * quota and rate limit (per API key), fault injection, the handler, then
 * --latency-ms before the reply is written.
 */
#include "sb_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ----------------------------------------------------------- utilities */

int64_t sb_now(const struct sb_server *srv)
{
    return srv->clock ? srv->clock : (int64_t)time(NULL);
}

void sb_server_set_clock(struct sb_server *srv, int64_t now)
{
    srv->clock = now;
}

struct sb_model *sb_server_model(struct sb_server *srv)
{
    return srv->model;
}

const char *sb_server_base_url(const struct sb_server *srv)
{
    return srv->base_url;
}

struct uv_loop_s *sb_server_loop(struct sb_server *srv)
{
    return srv->loop;
}

void **sb_server_slot(struct sb_server *srv, enum sb_slot slot)
{
    return &srv->slots[(unsigned)slot < SB_SLOT__COUNT ? slot : 0];
}

static void hook_add(struct hook **v, size_t *n, void (*fn)(void *), void *arg)
{
    *v = cts_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[*n].fn = fn;
    (*v)[*n].arg = arg;
    (*n)++;
}

void sb_server_on_reset(struct sb_server *srv, void (*fn)(void *), void *arg)
{
    hook_add(&srv->on_reset, &srv->nreset, fn, arg);
}

void sb_server_on_close(struct sb_server *srv, void (*fn)(void *), void *arg)
{
    hook_add(&srv->on_close, &srv->nclose, fn, arg);
}

void sb_log(const struct sb_server *srv, const char *fmt, ...)
{
    va_list ap;
    if (!srv->opt.verbose)
        return;
    va_start(ap, fmt);
    fputs("ctct-sandbox: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

struct sb_faults *sb_server_faults(struct sb_server *srv)
{
    return srv->faults;
}

const struct sb_options *sb_server_options(const struct sb_server *srv)
{
    return &srv->opt;
}

int sb_server_port(const struct sb_server *srv)
{
    return srv->port;
}

int sb_route_add(struct sb_server *srv, const char *method, const char *pattern,
                 sb_handler_fn handler, unsigned flags)
{
    return sb_router_add(srv->router, method, pattern, handler, flags);
}

/* ------------------------------------------------------- request views */

static struct conn *req_conn(const struct sb_req *req)
{
    return (struct conn *)req->priv;
}

static const char *keep(struct sb_req *req, char *s)
{
    struct conn *c = req_conn(req);
    if (!s)
        return NULL;
    if (c->nallocs == c->callocs) {
        c->callocs = c->callocs ? c->callocs * 2 : 8;
        c->allocs = cts_xrealloc(c->allocs, c->callocs * sizeof(char *));
    }
    c->allocs[c->nallocs++] = s;
    return s;
}

const char *sb_query_get(struct sb_req *req, const char *name)
{
    return keep(req, sb_form_lookup(req->query, strlen(req->query), name));
}

const char *sb_form_get(struct sb_req *req, const char *name)
{
    return keep(req, sb_form_lookup(req->body, req->body_len, name));
}

/* ---------------------------------------------------------- in-flight */

int sb_inflight_claim(struct sb_req *req, const char *email)
{
    struct conn *c = req_conn(req);
    struct sb_server *srv = c->srv;
    size_t acct = req->account ? req->account->index : 0;
    for (struct conn *o = srv->conns; o; o = o->next) {
        if (o != c && o->busy && o->claim_email && o->claim_acct == acct &&
            strcasecmp(o->claim_email, email) == 0)
            return -1;
    }
    free(c->claim_email);
    c->claim_email = cts_xstrdup(email);
    c->claim_acct = acct;
    return 0;
}

/* ------------------------------------------------------ request cycle */

static void count_status(struct sb_server *srv, const struct conn *c,
                         int status)
{
    if (c->route && (c->route->flags & SB_ROUTE_ADMIN))
        return;
    if (status >= 100 && status < 600)
        srv->by_status[status]++;
}

/* The request is over: send (or drop) its reply, release its state, and go
 * on with the next pipelined request. */
static void finish_request(struct conn *c)
{
    struct sb_server *srv = c->srv;
    int drop = c->res.drop || c->fault == SB_FAULT_DROP_AFTER;

    if (!c->closing) {
        if (drop) {
            sb_log(srv, "%s %s -> (dropped)", c->req.method, c->req.path);
        } else {
            count_status(srv, c, c->res.status);
            sb_conn_serialize(c, &c->res);
            sb_log(srv, "%s %s -> %d", c->req.method, c->req.path,
                   c->res.status);
        }
    }
    /* release the request */
    for (size_t i = 0; i < c->nallocs; i++)
        free(c->allocs[i]);
    c->nallocs = 0;
    free(c->claim_email);
    c->claim_email = NULL;
    sb_conn_release_body(c);
    if (c->msg.total_len)
        c->rbuf[c->rpos + c->msg.total_len] = c->saved;
    c->rpos += c->msg.total_len;
    memset(&c->msg, 0, sizeof c->msg);
    c->busy = 0;
    c->sent_continue = 0;
    if (c->closing) {
        if (c->handles_open == 0)
            sb_conn_free(c);
        return;
    }
    if (drop) {
        sb_conn_close(c);
        return;
    }
    if (c->res.close)
        c->close_after = 1;
    /* inside conn_process's loop the loop goes on by itself; a deferred
     * completion restarts it */
    if (!c->in_process)
        sb_conn_process(c);
}

static void on_delay(uv_timer_t *t)
{
    struct conn *c = t->data;
    finish_request(c);
}

/* The handler's reply is ready: apply --latency-ms / slow, then finish. */
static void reply_ready(struct conn *c)
{
    struct sb_server *srv = c->srv;
    uint64_t delay = 0;
    if (c->route && (c->route->flags & (SB_ROUTE_V2 | SB_ROUTE_V3)))
        delay += (uint64_t)srv->opt.latency_ms;
    if (c->fault == SB_FAULT_SLOW)
        delay += (uint64_t)srv->opt.slow_ms;
    if (delay && !c->closing) {
        c->busy = 1;
        uv_timer_start(&c->timer, on_delay, delay, 0);
        return;
    }
    finish_request(c);
}

void sb_req_done(struct sb_req *req)
{
    struct conn *c = req_conn(req);
    c->ext_pending = 0;
    reply_ready(c);
}

void sb_res_reset(struct sb_res *res)
{
    res->status = 200;
    snprintf(res->content_type, sizeof res->content_type, "application/json");
    cts_buf_reset(&res->body);
    cts_buf_reset(&res->headers);
    res->close = 0;
    res->drop = 0;
}

static int is_v2_path(const char *p)
{
    return strncmp(p, "/v2/", 4) == 0;
}

static void err_for(struct conn *c, int api, int status, const char *key,
                    const char *msg)
{
    if (api == SB_API_V2)
        sb_res_error_v2(&c->res, status, key, msg);
    else
        sb_res_error_v3(&c->res, status, key, msg);
}

/* Authentication for API routes; 0 = go on, else the reply is set. */
static int authenticate(struct conn *c)
{
    struct sb_server *srv = c->srv;
    struct sb_req *req = &c->req;
    int64_t now = sb_now(srv);
    const char *bearer = sb_req_bearer(req);
    struct sb_token *tok = bearer ? sb_token_find(srv->model, bearer) : NULL;

    if (c->route->flags & SB_ROUTE_V2) {
        const char *key = sb_query_get(req, "api_key");
        struct sb_app *app = key ? sb_app_find(srv->model, key) : NULL;
        if (!app || app->api != SB_API_V2) {
            sb_res_error_v2(&c->res, 403, "mashery.not.authorized.inactive",
                            "Account Inactive");
            return -1;
        }
        /* like the real v2, the token decides the account; key and token
         * are not cross-checked */
        if (!tok || tok->api != SB_API_V2 || tok->revoked ||
            (tok->expires_at && tok->expires_at <= now)) {
            sb_res_error_v2(&c->res, 401,
                            "http.status.authentication.invalid_token",
                            "Invalid token.");
            return -1;
        }
        req->app = app;
    } else {
        if (!tok || tok->api != SB_API_V3 || tok->revoked ||
            (tok->expires_at && tok->expires_at <= now)) {
            sb_res_error_v3_obj(&c->res, 401, "unauthorized", "Unauthorized");
            return -1;
        }
        req->app = sb_app_find(srv->model, tok->api_key);
        if (!req->app) {
            sb_res_error_v3_obj(&c->res, 401, "unauthorized", "Unauthorized");
            return -1;
        }
    }
    req->token = tok;
    req->account = tok->account;
    if (!req->account) {
        err_for(c, c->route->flags & SB_ROUTE_V2 ? SB_API_V2 : SB_API_V3, 401,
                "unauthorized", "Token has no account");
        return -1;
    }
    return 0;
}

/* The throttling reply of the route's API (rate limit or injected fault). */
static void throttle_reply(struct conn *c, int v2)
{
    c->route->throttled++;
    if (v2)
        sb_res_error_v2(&c->res, 403, "mashery.not.authorized.over.qps",
                        "The Mashery account associated with this "
                        "request is over its queries-per-second quota.");
    else
        sb_res_error_v3_obj(&c->res, 429, "throttled", "Too Many Requests");
}

static int apply_limits(struct conn *c)
{
    struct sb_server *srv = c->srv;
    int v2 = (c->route->flags & SB_ROUTE_V2) != 0;
    int rc = sb_limit_check(c->req.app->limit, &srv->opt.limits,
                            uv_hrtime() / 1000, sb_now(srv));
    if (rc == SB_LIMIT_OK)
        return 0;
    if (rc == SB_LIMIT_RATE) {
        throttle_reply(c, v2);
    } else {
        c->route->throttled++;
        if (v2)
            sb_res_error_v2(&c->res, 403,
                            "mashery.not.authorized.over.ratelimit",
                            "The Mashery account associated with this "
                            "request is over its rate limit quota.");
        else
            sb_res_error_v3_obj(&c->res, 429, "quota_exceeded",
                                "Limit Exceeded");
    }
    return -1;
}

void sb_conn_serve(struct conn *c)
{
    struct sb_server *srv = c->srv;
    struct sb_req *req = &c->req;
    struct sb_http_msg *m = &c->msg;
    char allow[128];

    memset(req, 0, sizeof *req);
    req->server = srv;
    req->priv = c;
    req->method = m->method;
    req->path = m->path;
    req->query = m->query;
    req->headers = m->headers;
    req->nheaders = m->nheaders;
    c->saved = c->rbuf[c->rpos + m->total_len];
    c->rbuf[c->rpos + m->total_len] = '\0';
    req->body = m->body;
    req->body_len = m->content_length;
    req->peer_loopback = c->peer_loopback;
    sb_res_reset(&c->res);
    c->res.close = !m->keep_alive || srv->closing;
    c->route = NULL;
    c->fault = SB_FAULT_NONE;
    c->busy = 1;
    c->started_us = uv_hrtime() / 1000;

    int api = is_v2_path(req->path) ? SB_API_V2 : SB_API_V3;
    int mr = sb_router_match(srv->router, req->method, req->path, &c->route,
                             req->params, &req->nparams, c->scratch,
                             sizeof c->scratch, allow, sizeof allow);
    if (mr != SB_MATCH_OK) {
        c->route = NULL;
        srv->total++;
        if (mr == SB_MATCH_NOMETHOD) {
            err_for(c, api, 405, "http.status.method_not_allowed",
                    "Method not allowed.");
            sb_res_header(&c->res, "Allow", "%s", allow);
        } else {
            err_for(c, api, 404,
                    api == SB_API_V2 ? "http.status.not_found" : "not_found",
                    "The requested resource was not found.");
        }
        reply_ready(c);
        return;
    }
    req->route = c->route->pattern;
    unsigned fl = c->route->flags;
    if (!(fl & SB_ROUTE_ADMIN)) {
        srv->total++;
        c->route->hits++;
    }
    if (fl & SB_ROUTE_ADMIN && !c->peer_loopback) {
        err_for(c, SB_API_V3, 403, "forbidden",
                "The sandbox admin API answers loopback peers only.");
        reply_ready(c);
        return;
    }
    if (fl & (SB_ROUTE_V2 | SB_ROUTE_V3)) {
        api = fl & SB_ROUTE_V2 ? SB_API_V2 : SB_API_V3;
        if (authenticate(c) != 0 || apply_limits(c) != 0) {
            reply_ready(c);
            return;
        }
        c->fault = sb_faults_next(srv->faults, req->method, c->route->pattern,
                                  req->path);
        switch (c->fault) {
        case SB_FAULT_DROP_BEFORE:
            sb_log(srv, "%s %s -> fault drop_before", req->method, req->path);
            c->res.drop = 1;
            finish_request(c);
            return;
        case SB_FAULT_500:
            err_for(c, api, 500, "http.status.internal_server_error",
                    "Internal server error (injected fault).");
            reply_ready(c);
            return;
        case SB_FAULT_503:
            err_for(c, api, 503, "http.status.service_unavailable",
                    "Service unavailable (injected fault).");
            reply_ready(c);
            return;
        case SB_FAULT_429:
            throttle_reply(c, api == SB_API_V2);
            reply_ready(c);
            return;
        case SB_FAULT_400_ECHO: {
            /* A careless server that quotes what it was sent: the client
             * must mask it wherever the message lands. */
            char msg[600];
            const char *tok = sb_req_bearer(req);
            snprintf(msg, sizeof(msg),
                     "Bad request (injected fault): not accepted with "
                     "token %.500s",
                     tok != NULL ? tok : "(none)");
            err_for(c, api, 400, "http.status.bad_request", msg);
            reply_ready(c);
            return;
        }
        default: break;
        }
    }
    if ((fl & SB_ROUTE_JSON_BODY) &&
        (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) &&
        !sb_req_content_type_is(req, "application/json")) {
        if (api == SB_API_V2)
            sb_res_error_v2(&c->res, 415, "http.status.unsupported_media_type",
                            "Content-Type must be application/json.");
        else
            sb_res_error_v3(&c->res, 415, "unsupported_media_type",
                            "payload must be in JSON format, and "
                            "Content-Type must be application/json");
        reply_ready(c);
        return;
    }
    if (c->route->handler(req, &c->res) == SB_DEFER) {
        c->ext_pending = 1;
        return; /* the handler calls sb_req_done() */
    }
    reply_ready(c);
}

/* --------------------------------------------------------------- server */

struct sb_server *sb_server_new(const struct sb_options *opt,
                                struct sb_model *model, uv_loop_t *loop)
{
    struct sb_server *srv = cts_xcalloc(1, sizeof *srv);
    srv->opt = *opt;
    srv->loop = loop;
    srv->model = model;
    srv->router = sb_router_new();
    srv->faults = sb_faults_new(opt->fault_rate, opt->fault_seed);
    return srv;
}

/* Per-route counters start at zero (router.c leaves them to the server). */
static void zero_route_counts(struct sb_server *srv)
{
    for (size_t i = 0; i < sb_router_count(srv->router); i++) {
        sb_router_at(srv->router, i)->hits = 0;
        sb_router_at(srv->router, i)->throttled = 0;
    }
}

int sb_server_listen(struct sb_server *srv, struct cts_error *err)
{
    struct sockaddr_storage ss;
    const char *host = srv->opt.host ? srv->opt.host : "127.0.0.1";
    int rc;
    if (uv_ip4_addr(host, srv->opt.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, srv->opt.port, (struct sockaddr_in6 *)&ss) != 0)
        return cts_error_set(err, CTS_EUSAGE, "bad --host address: %s", host);
    zero_route_counts(srv);
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511,
                       sb_conn_on_connection);
    if (rc != 0)
        return cts_error_set(err, rc, "cannot listen on %s:%d: %s", host,
                             srv->opt.port, uv_strerror(rc));
    int len = sizeof ss;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    srv->port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        snprintf(srv->base_url, sizeof srv->base_url, "http://[%s]:%d", host,
                 srv->port);
    else
        snprintf(srv->base_url, sizeof srv->base_url, "http://%s:%d", host,
                 srv->port);
    return 0;
}

void sb_server_close(struct sb_server *srv)
{
    if (srv->closing)
        return;
    srv->closing = 1;
    if (srv->listener.loop)
        uv_close((uv_handle_t *)&srv->listener, NULL);
    for (struct conn *c = srv->conns; c; c = c->next)
        sb_conn_close(c);
}

void sb_server_free(struct sb_server *srv)
{
    if (!srv)
        return;
    for (size_t i = srv->nclose; i-- > 0;)
        srv->on_close[i].fn(srv->on_close[i].arg);
    free(srv->on_close);
    free(srv->on_reset);
    sb_router_free(srv->router);
    sb_faults_free(srv->faults);
    free(srv);
}

void sb_server_reset(struct sb_server *srv)
{
    sb_model_reset(srv->model);
    sb_faults_clear(srv->faults);
    srv->total = 0;
    memset(srv->by_status, 0, sizeof srv->by_status);
    memset(&srv->cstats, 0, sizeof srv->cstats);
    zero_route_counts(srv);
    for (size_t i = 0; i < srv->nreset; i++)
        srv->on_reset[i].fn(srv->on_reset[i].arg);
}

json_t *sb_server_state(struct sb_server *srv, int with_contacts,
                        const char *account)
{
    json_t *st = json_object();
    json_t *accts = json_array();
    for (size_t i = 0; i < sb_account_count(srv->model); i++) {
        struct sb_account *a = sb_account_at(srv->model, i);
        if (account && strcmp(account, a->user_name) != 0 &&
            strcmp(account, a->encoded_account_id) != 0)
            continue;
        json_t *ja = json_object();
        json_object_set_new(ja, "user_name", json_string(a->user_name));
        json_object_set_new(ja, "encoded_account_id",
                            json_string(a->encoded_account_id));
        size_t n = sb_contact_count(a), live = 0;
        json_t *cs = with_contacts ? json_array() : NULL;
        for (size_t r = 0; r < n; r++) {
            if (!sb_contact_is_deleted(a, r))
                live++;
            if (cs)
                json_array_append_new(cs,
                                      sb_contact_json(a, r, SB_RENDER_STATE));
        }
        json_object_set_new(ja, "contact_count",
                            json_integer((json_int_t)live));
        if (cs)
            json_object_set_new(ja, "contacts", cs);
        json_array_append_new(accts, ja);
    }
    json_object_set_new(st, "accounts", accts);

    json_t *req = json_object(), *bs = json_object(), *be = json_object();
    json_t *bt = json_object();
    json_object_set_new(req, "total", json_integer((json_int_t)srv->total));
    for (int s = 100; s < 600; s++) {
        if (!srv->by_status[s])
            continue;
        char k[16];
        snprintf(k, sizeof k, "%d", s);
        json_object_set_new(bs, k, json_integer((json_int_t)srv->by_status[s]));
    }
    for (size_t i = 0; i < sb_router_count(srv->router); i++) {
        struct sb_route *r = sb_router_at(srv->router, i);
        if (r->hits)
            json_object_set_new(be, r->endpoint,
                                json_integer((json_int_t)r->hits));
        if (r->throttled)
            json_object_set_new(bt, r->endpoint,
                                json_integer((json_int_t)r->throttled));
    }
    json_object_set_new(req, "by_status", bs);
    json_object_set_new(req, "by_endpoint", be);
    json_object_set_new(req, "throttled_by_endpoint", bt);
    json_object_set_new(st, "requests", req);

    const struct sb_limit_policy *lp = &srv->opt.limits;
    json_object_set_new(st, "limits",
                        json_pack("{s:I,s:I,s:s,s:I}", "rate",
                                  (json_int_t)lp->rate, "daily_quota",
                                  (json_int_t)lp->quota, "window",
                                  sb_window_name(lp->window), "foreign_load",
                                  (json_int_t)lp->foreign_load));

    json_t *keys = json_object();
    for (size_t i = 0; i < sb_model_app_count(srv->model); i++) {
        struct sb_app *app = sb_model_app_at(srv->model, i);
        struct sb_limit *l = app->limit;
        json_object_set_new(keys, app->api_key,
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                                      (json_int_t)l->requests, "busiest_1s",
                                      (json_int_t)l->busiest_1s, "throttled",
                                      (json_int_t)l->throttled, "daily_used",
                                      (json_int_t)l->daily_used, "foreign",
                                      (json_int_t)l->foreign, "foreign_refused",
                                      (json_int_t)l->foreign_refused));
    }
    json_object_set_new(st, "keys", keys);

    const struct conn_stats *cs = &srv->cstats;
    json_t *sv = json_object();
    json_object_set_new(sv, "connections",
                        json_integer((json_int_t)srv->nconns));
    json_object_set_new(sv, "max_connections",
                        json_integer((json_int_t)srv->opt.max_connections));
    json_object_set_new(sv, "accepted", json_integer((json_int_t)cs->accepted));
    json_object_set_new(sv, "refused", json_integer((json_int_t)cs->refused));
    json_object_set_new(sv, "idle_closed",
                        json_integer((json_int_t)cs->idle_closed));
    json_object_set_new(sv, "timed_out",
                        json_integer((json_int_t)cs->timed_out));
    json_object_set_new(sv, "body_bytes_held",
                        json_integer((json_int_t)srv->body_held));
    json_object_set_new(sv, "max_body_total",
                        json_integer((json_int_t)srv->opt.max_body_total));
    json_object_set_new(sv, "body_refused",
                        json_integer((json_int_t)cs->body_refused));
    json_object_set_new(st, "server", sv);

    json_t *f = json_object();
    for (int k = SB_FAULT_500; k < SB_FAULT__COUNT; k++)
        json_object_set_new(f, sb_fault_name((enum sb_fault)k),
                            json_integer((json_int_t)sb_faults_count(
                                srv->faults, (enum sb_fault)k)));
    json_object_set_new(
        f, "pending", json_integer((json_int_t)sb_faults_pending(srv->faults)));
    json_object_set_new(st, "faults", f);
    json_object_set_new(st, "writes",
                        json_integer((json_int_t)sb_model_writes(srv->model)));
    json_object_set_new(st, "now", json_integer((json_int_t)sb_now(srv)));
    return st;
}
