/*
 * server.c — ctct-sandbox's HTTP/1.1 server on libuv.
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
#include "sb_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define READ_CHUNK  (64 * 1024)
#define OUT_HIGH    (1024 * 1024) /* stop reading above this much unsent */
#define SCRATCH_LEN 1024

struct hook {
    void (*fn)(void *);
    void *arg;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    struct sb_server *srv;
    struct conn *prev, *next;
    char *rbuf;
    size_t rlen, rcap, rpos; /* rpos: start of the current request */
    struct sb_http_msg msg;
    struct cts_buf out, outw; /* filling / being written */
    int writing;
    int reading;
    int busy;         /* a request is being served */
    int ext_pending;  /* the handler deferred; waiting for sb_req_done */
    int in_process;   /* inside conn_process's loop (no recursion) */
    int close_after;  /* close once out is flushed */
    int closing;      /* uv_close issued */
    int handles_open; /* tcp + timer */
    int sent_continue;
    int peer_loopback;
    /* the request being served */
    struct sb_req req;
    struct sb_res res;
    struct sb_route *route;
    enum sb_fault fault;
    char saved;    /* byte overwritten by the body's NUL */
    char **allocs; /* strings handed to the handler, freed at finish */
    size_t nallocs, callocs;
    char scratch[SCRATCH_LEN];
    char *claim_email; /* sign_up_form in-flight claim */
    size_t claim_acct;
    uint64_t started_us;
};

struct sb_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct sb_options opt;
    struct sb_model *model;
    struct sb_router *router;
    struct sb_faults *faults;
    char base_url[64];
    int port;
    int64_t clock; /* 0 = real time */
    int closing;
    struct conn *conns;
    uint64_t total;
    uint64_t by_status[600];
    void *slots[SB_SLOT__COUNT];
    struct hook *on_reset, *on_close;
    size_t nreset, nclose;
    char date[64];
    time_t date_at;
};

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void read_start(struct conn *c);

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

const char *sb_header_get(const struct sb_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int sb_req_content_type_is(const struct sb_req *req, const char *type)
{
    const char *ct = sb_header_get(req, "Content-Type");
    size_t tl = strlen(type);
    if (!ct)
        return 0;
    if (strncasecmp(ct, type, tl) != 0)
        return 0;
    return ct[tl] == '\0' || ct[tl] == ';' || ct[tl] == ' ';
}

const char *sb_req_bearer(const struct sb_req *req)
{
    const char *a = sb_header_get(req, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return *a ? a : NULL;
}

json_t *sb_req_json(const struct sb_req *req)
{
    return json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
}

/* ------------------------------------------------------------ responses */

void sb_res_header(struct sb_res *res, const char *name, const char *fmt, ...)
{
    va_list ap;
    char val[2048];
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    /* never let a value break the header block */
    for (char *p = val; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    cts_buf_appendf(&res->headers, "%s: %s\r\n", name, val);
}

void sb_res_text(struct sb_res *res, int status, const char *content_type,
                 const char *body, size_t len)
{
    res->status = status;
    snprintf(res->content_type, sizeof res->content_type, "%s",
             content_type ? content_type : "text/plain");
    cts_buf_reset(&res->body);
    if (len)
        cts_buf_append(&res->body, body, len);
}

void sb_res_json(struct sb_res *res, int status, json_t *json)
{
    res->status = status;
    snprintf(res->content_type, sizeof res->content_type, "application/json");
    cts_buf_reset(&res->body);
    if (!json) {
        cts_buf_append(&res->body, "null", 4);
        return;
    }
    char *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        cts_buf_append(&res->body, s, strlen(s));
        free(s);
    }
    json_decref(json);
}

static json_t *err_obj(const char *key, const char *msg)
{
    return json_pack("{s:s,s:s}", "error_key", key ? key : "", "error_message",
                     msg ? msg : "");
}

void sb_res_error_v2(struct sb_res *res, int status, const char *key,
                     const char *msg)
{
    json_t *a = json_array();
    json_array_append_new(a, err_obj(key, msg));
    sb_res_json(res, status, a);
}

void sb_res_error_v3(struct sb_res *res, int status, const char *key,
                     const char *msg)
{
    sb_res_error_v2(res, status, key, msg);
}

void sb_res_error_v3_obj(struct sb_res *res, int status, const char *key,
                         const char *msg)
{
    sb_res_json(res, status, err_obj(key, msg));
}

void sb_res_oauth_error(struct sb_res *res, int status, const char *error,
                        const char *desc)
{
    sb_res_json(res, status,
                json_pack("{s:s,s:s}", "error", error ? error : "",
                          "error_description", desc ? desc : ""));
}

void sb_res_redirect(struct sb_res *res, const char *url)
{
    sb_res_text(res, 302, "text/plain", "", 0);
    sb_res_header(res, "Location", "%s", url);
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

/* ------------------------------------------------------------- writing */

static const char *http_date(struct sb_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_at = now;
    }
    return srv->date;
}

static void serialize(struct conn *c, const struct sb_res *res)
{
    struct cts_buf *o = &c->out;
    cts_buf_appendf(o,
                    "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: ctct-sandbox\r\n"
                    "Content-Type: %s\r\nContent-Length: %zu\r\n",
                    res->status, sb_http_reason(res->status), http_date(c->srv),
                    res->content_type[0] ? res->content_type : "text/plain",
                    res->body.len);
    if (res->headers.len)
        cts_buf_append(o, res->headers.data, res->headers.len);
    if (res->close)
        cts_buf_append(o, "Connection: close\r\n\r\n", 21);
    else
        cts_buf_append(o, "\r\n", 2);
    if (res->body.len)
        cts_buf_append(o, res->body.data, res->body.len);
}

static void on_write(uv_write_t *wr, int status)
{
    struct conn *c = wr->data;
    c->writing = 0;
    cts_buf_reset(&c->outw);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->closing)
        return;
    if (c->out.len) {
        conn_flush(c);
        return;
    }
    if (c->close_after) {
        conn_close(c);
        return;
    }
    /* resume reading/processing held back by output pressure */
    if (!c->busy)
        conn_process(c);
}

static void conn_flush(struct conn *c)
{
    if (c->writing || c->closing || !c->out.len)
        return;
    struct cts_buf tmp = c->outw;
    c->outw = c->out;
    c->out = tmp;
    uv_buf_t b = uv_buf_init(c->outw.data, (unsigned)c->outw.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        cts_buf_reset(&c->outw);
        conn_close(c);
        return;
    }
    c->writing = 1;
}

/* ------------------------------------------------------------- closing */

static void conn_free(struct conn *c)
{
    struct sb_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (size_t i = 0; i < c->nallocs; i++)
        free(c->allocs[i]);
    free(c->allocs);
    free(c->claim_email);
    free(c->rbuf);
    cts_buf_free(&c->out);
    cts_buf_free(&c->outw);
    cts_buf_free(&c->res.body);
    cts_buf_free(&c->res.headers);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    /* a request deferred by its handler keeps the conn until sb_req_done;
     * one waiting on our own timer is simply abandoned */
    if (--c->handles_open == 0 && !c->ext_pending)
        conn_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
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
            serialize(c, &c->res);
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
    if (c->msg.total_len)
        c->rbuf[c->rpos + c->msg.total_len] = c->saved;
    c->rpos += c->msg.total_len;
    memset(&c->msg, 0, sizeof c->msg);
    c->busy = 0;
    c->sent_continue = 0;
    if (c->closing) {
        if (c->handles_open == 0)
            conn_free(c);
        return;
    }
    if (drop) {
        conn_close(c);
        return;
    }
    if (c->res.close)
        c->close_after = 1;
    /* inside conn_process's loop the loop goes on by itself; a deferred
     * completion restarts it */
    if (!c->in_process)
        conn_process(c);
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

static void reset_res(struct sb_res *res)
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

static int apply_limits(struct conn *c)
{
    struct sb_server *srv = c->srv;
    int v2 = (c->route->flags & SB_ROUTE_V2) != 0;
    int rc = sb_limit_check(c->req.app->limit, uv_hrtime() / 1000, sb_now(srv),
                            srv->opt.rate, srv->opt.daily_quota);
    if (rc == SB_LIMIT_OK)
        return 0;
    if (rc == SB_LIMIT_RATE) {
        if (v2)
            sb_res_error_v2(&c->res, 403, "mashery.not.authorized.over.qps",
                            "The Mashery account associated with this "
                            "request is over its queries-per-second quota.");
        else
            sb_res_error_v3_obj(&c->res, 429, "throttled", "Too Many Requests");
    } else {
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

/* Serve the parsed request in c->msg. */
static void serve(struct conn *c)
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
    reset_res(&c->res);
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
            if (api == SB_API_V2)
                sb_res_error_v2(&c->res, 403, "mashery.not.authorized.over.qps",
                                "The Mashery account associated with this "
                                "request is over its queries-per-second "
                                "quota.");
            else
                sb_res_error_v3_obj(&c->res, 429, "throttled",
                                    "Too Many Requests");
            reply_ready(c);
            return;
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

static void read_stop(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* Reply to a request we could not parse, then close. */
static void bad_request(struct conn *c, int rc)
{
    int status = -rc;
    const char *msg = "Bad request.";
    if (status == 413)
        msg = "Request body too large.";
    else if (status == 431)
        msg = "Request header fields too large.";
    else if (status == 411)
        msg = "Content-Length required (chunked bodies are not supported).";
    else if (status == 505)
        msg = "HTTP version not supported.";
    reset_res(&c->res);
    sb_res_error_v2(&c->res, status, "http.status.bad_request", msg);
    c->res.close = 1;
    c->srv->total++;
    c->srv->by_status[status]++;
    serialize(c, &c->res);
    c->close_after = 1;
    c->rlen = c->rpos = 0;
    memset(&c->msg, 0, sizeof c->msg);
    read_stop(c);
    conn_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    if (c->rcap - c->rlen < READ_CHUNK + 1) {
        c->rcap = c->rlen + READ_CHUNK + 1;
        c->rbuf = cts_xrealloc(c->rbuf, c->rcap);
    }
    /* keep one spare byte for the body's NUL */
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (n < 0) {
        /* EOF or error: finish writing what we have, then close */
        read_stop(c);
        if (c->writing || c->out.len)
            c->close_after = 1;
        else
            conn_close(c);
        return;
    }
    c->rlen += (size_t)n;
    conn_process(c);
}

/* Serve every complete request in the buffer, in order. */
static void conn_process(struct conn *c)
{
    if (c->in_process)
        return;
    c->in_process = 1;
    while (!c->busy && !c->closing && !c->close_after) {
        if (c->out.len + c->outw.len > OUT_HIGH) {
            /* the client is not reading its replies: wait for on_write */
            break;
        }
        size_t avail = c->rlen - c->rpos;
        if (avail == 0)
            break;
        int rc = sb_http_parse(&c->msg, c->rbuf + c->rpos, avail);
        if (rc < 0) {
            bad_request(c, rc);
            break;
        }
        if (rc == SB_HTTP_MORE)
            break;
        if (rc == SB_HTTP_HEADERS) {
            if (c->msg.expect_continue && !c->sent_continue) {
                cts_buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                c->sent_continue = 1;
            }
            break;
        }
        serve(c);
    }
    c->in_process = 0;
    if (c->closing) {
        if (c->handles_open == 0 && !c->ext_pending)
            conn_free(c);
        return;
    }
    /* compact: move the unparsed rest to the front */
    if (!c->busy && c->rpos) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        /* the header scan position is relative to the request start, which
         * moved with it */
        c->rpos = 0;
    }
    conn_flush(c);
    if (c->busy || c->close_after || c->out.len + c->outw.len > OUT_HIGH)
        read_stop(c);
    else
        read_start(c);
}

static void read_start(struct conn *c)
{
    if (!c->reading && !c->closing) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

static int peer_is_loopback(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            return a->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static void on_connection(uv_stream_t *l, int status)
{
    struct sb_server *srv = l->data;
    if (status < 0 || srv->closing)
        return;
    struct conn *c = cts_xcalloc(1, sizeof *c);
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    cts_buf_init(&c->out, 0);
    cts_buf_init(&c->outw, 0);
    cts_buf_init(&c->res.body, 0);
    cts_buf_init(&c->res.headers, 0);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->peer_loopback = peer_is_loopback(&c->tcp);
    read_start(c);
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

int sb_server_listen(struct sb_server *srv, struct cts_error *err)
{
    struct sockaddr_storage ss;
    const char *host = srv->opt.host ? srv->opt.host : "127.0.0.1";
    int rc;
    if (uv_ip4_addr(host, srv->opt.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, srv->opt.port, (struct sockaddr_in6 *)&ss) != 0)
        return cts_error_set(err, CTS_EUSAGE, "bad --host address: %s", host);
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
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
        conn_close(c);
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
    for (size_t i = 0; i < sb_router_count(srv->router); i++)
        sb_router_at(srv->router, i)->hits = 0;
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
    }
    json_object_set_new(req, "by_status", bs);
    json_object_set_new(req, "by_endpoint", be);
    json_object_set_new(st, "requests", req);

    json_t *keys = json_object();
    for (size_t i = 0; i < sb_model_app_count(srv->model); i++) {
        struct sb_app *app = sb_model_app_at(srv->model, i);
        struct sb_limit *l = app->limit;
        json_object_set_new(keys, app->api_key,
                            json_pack("{s:I,s:I,s:I,s:I}", "requests",
                                      (json_int_t)l->requests, "busiest_1s",
                                      (json_int_t)l->busiest_1s, "throttled",
                                      (json_int_t)l->throttled, "daily_used",
                                      (json_int_t)l->daily_used));
    }
    json_object_set_new(st, "keys", keys);

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
