/*
 * http.c — libcurl's multi interface driven by libuv (curl's
 * docs/examples/multi-uv.c).  The blocking fetch built on it is fetch.c.
 *
 * The loop owns the sockets: libcurl tells us which fds to watch through
 * cb_socket and when to wake it through cb_timer; libuv tells libcurl what
 * happened through curl_multi_socket_action, after which drain_done()
 * hands finished transfers back to their owners.
 *
 * This is the only file that includes <curl/curl.h>.
 */
#include "cts_http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "cts_secret.h"
#include "cts_util.h"

#define DEFAULT_MAX_IN_FLIGHT      4
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS         30000
#define DEFAULT_MAX_RESPONSE       (8u * 1024 * 1024)

/*
 * One watched socket, for the socket's whole life (not just one transfer).
 * Allocated in cb_socket the first time libcurl asks us to watch the fd,
 * closed in cb_closesocket when libcurl closes the fd, freed in
 * on_sock_closed (libuv: a handle's memory is released only in its close
 * callback).
 *
 * Why not close it on CURL_POLL_REMOVE, as multi-uv.c does: libcurl sends
 * REMOVE whenever a transfer ends, although the kept-alive connection
 * stays open for the next request.  Closing and re-creating the poll every
 * request cost five epoll_ctl calls and an ioctl per request (measured
 * with strace); keeping it, with an unchanged event mask, costs none.
 * Between transfers the poll is left running but unref'd (it must not keep
 * the loop alive), and any event on it then just stops it: an idle
 * connection only becomes readable when the server closes it, and libcurl
 * finds that out itself before reusing it.
 *
 * Only connection sockets get this treatment: they are created in
 * cb_opensocket and closed in cb_closesocket, so no context ever outlives
 * its fd.  Other sockets libcurl may ask us to watch (the threaded
 * resolver's socketpair, closed with a plain close() right after REMOVE)
 * are closed on REMOVE, as in multi-uv.c.
 */
struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct cts_http *http;
    int events;                   /* UV_READABLE/WRITABLE now polled; 0 =
                                     stopped */
    int active;                   /* libcurl is watching it (between the
                                     first IN/OUT and REMOVE) */
    int conn;                     /* a connection socket: opened through
                                     cb_opensocket, so its close is sure to
                                     come through cb_closesocket */
    struct sock_ctx *prev, *next; /* h->socks list: lookup and shutdown */
};

static void drain_done(struct cts_http *h);
static void maybe_closed(struct cts_http *h);

const char *cts_xfer_error_name(int xe)
{
    switch (xe) {
    case CTS_XE_NONE: return "none";
    case CTS_XE_TIMEOUT: return "timeout";
    case CTS_XE_CONNECT: return "connect";
    case CTS_XE_RESOLVE: return "resolve";
    case CTS_XE_SEND: return "send";
    case CTS_XE_RECV: return "recv";
    case CTS_XE_TLS: return "tls";
    case CTS_XE_TOOBIG: return "toobig";
    case CTS_XE_ABORTED: return "aborted";
    default: return "other";
    }
}

int cts_http_global_init(void)
{
    CURLcode cres = curl_global_init(CURL_GLOBAL_DEFAULT);
    return cres == CURLE_OK ? 0 : CTS_EHTTP;
}

void cts_http_global_cleanup(void)
{
    curl_global_cleanup();
}

void cts_http_req_init(struct cts_http_req *req)
{
    memset(req, 0, sizeof(*req));
    cts_buf_init(&req->resp, 0);
    req->retry_after_s = -1;
}

void cts_http_req_free(struct cts_http_req *req)
{
    if (req == NULL)
        return;
    cts_buf_free(&req->resp);
    if (req->priv_headers != NULL) {
        curl_slist_free_all(req->priv_headers);
        req->priv_headers = NULL;
    }
}

/* ---------------------------------------------------------------- */
/* libuv side: socket polls and the libcurl timeout timer           */

static void on_sock_closed(uv_handle_t *handle)
{
    struct sock_ctx *ctx = handle->data;
    struct cts_http *h = ctx->http;
    free(ctx);
    h->pending_closes--;
    maybe_closed(h);
}

static void sock_unlink_close(struct cts_http *h, struct sock_ctx *ctx)
{
    if (ctx->prev != NULL)
        ctx->prev->next = ctx->next;
    else
        h->socks = ctx->next;
    if (ctx->next != NULL)
        ctx->next->prev = ctx->prev;
    ctx->prev = ctx->next = NULL;
    uv_poll_stop(&ctx->poll);
    h->pending_closes++;
    uv_close((uv_handle_t *)&ctx->poll, on_sock_closed);
}

/*
 * The one way libcurl is driven: the owner's before_io hook first (it may
 * refuse: then nothing is sent), then curl_multi_socket_action on fd (or
 * CURL_SOCKET_TIMEOUT), then hand back whatever finished — every time,
 * not only when the running count changed: a timeout is how many
 * transfers (connect failures, timeouts) finish.
 */
static void drive(struct cts_http *h, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mres;

    if (h->before_io != NULL && h->before_io(h->before_io_arg) != 0)
        return;
    mres = curl_multi_socket_action(h->multi, fd, flags, &running);
    if (mres != CURLM_OK)
        cts_log_error("libcurl: %s", curl_multi_strerror(mres));
    drain_done(h);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct sock_ctx *ctx = poll->data;
    int flags = 0;

    if (!ctx->active) {
        /* An idle kept-alive connection woke up (the server closed it):
         * libcurl is not interested, so stop polling rather than spin. */
        uv_poll_stop(&ctx->poll);
        ctx->events = 0;
        return;
    }
    /* A poll error (e.g. the peer reset the connection) is reported to
     * libcurl as CSELECT_ERR so it fails the transfer itself. */
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* ctx may be closed by cb_socket during this call; its memory stays
     * valid until on_sock_closed, and we do not touch it afterwards. */
    drive(ctx->http, ctx->fd, flags);
}

static void on_timeout(uv_timer_t *timer)
{
    drive(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* A context watching fd s, linked into h->socks.  NULL on failure (a
 * libcurl callback reports failure instead of aborting, so this one
 * allocation is checked, not cts_x*). */
static struct sock_ctx *sock_new(struct cts_http *h, curl_socket_t s)
{
    struct sock_ctx *ctx = calloc(1, sizeof(*ctx));
    int rc;
    if (ctx == NULL)
        return NULL;
    rc = uv_poll_init_socket(h->loop, &ctx->poll, s);
    if (rc != 0) {
        cts_log_error("uv_poll_init_socket: %s", uv_strerror(rc));
        free(ctx);
        return NULL;
    }
    ctx->fd = s;
    ctx->http = h;
    ctx->poll.data = ctx;
    ctx->next = h->socks;
    if (ctx->next != NULL)
        ctx->next->prev = ctx;
    h->socks = ctx;
    return ctx;
}

/*
 * CURLMOPT_SOCKETFUNCTION.  libcurl forbids calling socket_action (or
 * anything that drives transfers) from here; curl_multi_assign is allowed.
 */
static int cb_socket(CURL *easy, curl_socket_t s, int action, void *userp,
                     void *socketp)
{
    struct cts_http *h = userp;
    struct sock_ctx *ctx = socketp;
    int events = 0, rc;

    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (ctx == NULL)
            return 0;
        curl_multi_assign(h->multi, s, NULL);
        ctx->active = 0;
        if (!ctx->conn) {
            sock_unlink_close(h, ctx);
            return 0;
        }
        /* An idle connection: keep the poll (see struct sock_ctx) but never
         * let it keep the loop alive, and never poll an idle socket for
         * writable (always true: a busy loop). */
        uv_unref((uv_handle_t *)&ctx->poll);
        if (ctx->events & UV_WRITABLE) {
            uv_poll_stop(&ctx->poll);
            ctx->events = 0;
        }
        return 0;
    }
    if (ctx == NULL) {
        /* A connection libcurl opened (cb_opensocket) or used before. */
        for (ctx = h->socks; ctx != NULL; ctx = ctx->next)
            if (ctx->fd == s)
                break;
    }
    if (ctx == NULL) {
        ctx = sock_new(h, s);
        if (ctx == NULL)
            return -1;
    }
    if (!ctx->active) {
        ctx->active = 1;
        uv_ref((uv_handle_t *)&ctx->poll);
        curl_multi_assign(h->multi, s, ctx);
    }
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    /* uv_poll_start re-registers the fd with epoll even for an unchanged
     * mask (a DEL and an ADD), so only call it when the mask changes.
     * Starting an active poll again only changes its mask: one uv_poll_t
     * per fd, as libuv requires. */
    if (events == ctx->events)
        return 0;
    rc = uv_poll_start(&ctx->poll, events, on_poll);
    if (rc != 0) {
        cts_log_error("uv_poll_start: %s", uv_strerror(rc));
        ctx->events = 0;
        return -1;
    }
    ctx->events = events;
    return 0;
}

/*
 * CURLOPT_OPENSOCKETFUNCTION: create the connection socket and its poll
 * context now, marked as a connection (see struct sock_ctx).
 */
static curl_socket_t cb_opensocket(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *address)
{
    struct cts_http *h = clientp;
    struct sock_ctx *ctx;
    curl_socket_t s;

    (void)purpose;
    s = socket(address->family, address->socktype, address->protocol);
    if (s == CURL_SOCKET_BAD)
        return CURL_SOCKET_BAD;
    ctx = sock_new(h, s);
    if (ctx == NULL) {
        close(s);
        return CURL_SOCKET_BAD;
    }
    ctx->conn = 1;
    return s;
}

/*
 * CURLOPT_CLOSESOCKETFUNCTION: the only reliable "this fd is gone" signal
 * for a connection (REMOVE also means "idle").  libuv forbids closing an
 * fd under an active poll, so the poll is stopped and closed first, then
 * the fd.
 */
static int cb_closesocket(void *clientp, curl_socket_t item)
{
    struct cts_http *h = clientp;
    struct sock_ctx *ctx;

    for (ctx = h->socks; ctx != NULL; ctx = ctx->next)
        if (ctx->fd == item) {
            sock_unlink_close(h, ctx);
            break;
        }
    return close(item);
}

/*
 * CURLMOPT_TIMERFUNCTION: -1 stops the timer, anything else is a one-shot
 * start.  0 ("as soon as possible") stays 0: libuv runs a 0 ms timer on
 * the next loop iteration, never from inside uv_timer_start, so libcurl is
 * still not re-entered from its own callback (the reason multi-uv.c maps 0
 * to 1 ms), and we avoid up to 1 ms of idle latency per request, which
 * at 64 connections costs a measurable share of throughput.
 */
static int cb_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct cts_http *h = userp;
    (void)multi;
    if (timeout_ms < 0 || h->closing) {
        uv_timer_stop(&h->timer);
        return 0;
    }
    uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---------------------------------------------------------------- */
/* easy handles                                                     */

static size_t cb_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct cts_http_req *req = userdata;
    size_t n = size * nmemb;
    /* Returning less than n makes libcurl fail with CURLE_WRITE_ERROR,
     * which finish() reports as CTS_XE_TOOBIG: the cap protects memory. */
    if (cts_buf_append(&req->resp, ptr, n) != 0)
        return 0;
    return n;
}

/* CURLOPT_DEBUGFUNCTION for --verbose: request and status lines only, and
 * never the Authorization or Proxy-Authorization header, nor a proxy's
 * password in libcurl's own words (secrets are never printed). */
static int cb_debug(CURL *easy, curl_infotype type, char *data, size_t size,
                    void *userp)
{
    size_t n;
    (void)easy;
    (void)userp;
    if (type != CURLINFO_HEADER_OUT && type != CURLINFO_HEADER_IN &&
        type != CURLINFO_TEXT)
        return 0;
    while (size > 0) {
        const char *nl = memchr(data, '\n', size);
        n = nl != NULL ? (size_t)(nl - data) + 1 : size;
        if (n > 1 &&
            !(n >= 14 && strncasecmp(data, "authorization:", 14) == 0) &&
            !(n >= 20 && strncasecmp(data, "proxy-authorization:", 20) == 0)) {
            /* The request line carries v2's api_key in its query; the
             * proxy URL libcurl names carries its user:password.  Masked
             * whole, then cut to 300 bytes (a cut key would be masked as
             * a shorter value, showing middle characters of the key). */
            char *line = cts_redact_params(data, n);
            size_t len = strlen(line);
            if (len > 300) {
                len = 300;
                while (len > 0 && ((unsigned char)line[len] & 0xC0) == 0x80)
                    len--;
                line[len] = '\0';
            }
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len > 0)
                cts_log_debug("http %s %s",
                              type == CURLINFO_HEADER_OUT  ? ">"
                              : type == CURLINFO_HEADER_IN ? "<"
                                                           : "*",
                              line);
            free(line);
        }
        data += n;
        size -= n;
    }
    return 0;
}

/*
 * Options that are the same for every request of this transport are set
 * once, when the handle is created; easy_setup sets every per-request
 * option on each use.  Reused handles are deliberately not passed through
 * curl_easy_reset: measured, the reset and re-setting every option cost
 * about a tenth of the client's CPU per request at 64 connections.
 */
static CURL *easy_new(struct cts_http *h)
{
    CURL *easy = curl_easy_init();
    CURLcode cres = CURLE_OK;

    if (easy == NULL)
        return NULL;
#define SET(opt, val)                                                          \
    do {                                                                       \
        if (cres == CURLE_OK)                                                  \
            cres = curl_easy_setopt(easy, opt, val);                           \
    } while (0)
    /* No signals: we are single-threaded on a loop, but libcurl would
     * otherwise use SIGALRM for resolver timeouts. */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, cb_write);
    SET(CURLOPT_USERAGENT, h->user_agent);
    /* HTTP/1.1 keep-alive: one request per connection at a time, so the
     * connection cap equals the concurrency cap (--concurrency). */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_OPENSOCKETFUNCTION, cb_opensocket);
    SET(CURLOPT_OPENSOCKETDATA, h);
    SET(CURLOPT_CLOSESOCKETFUNCTION, cb_closesocket);
    SET(CURLOPT_CLOSESOCKETDATA, h);
    /* TLS verification stays at libcurl's secure defaults: never turned
     * off, there is no option for it. */
    if (h->opts.verbose) {
        SET(CURLOPT_DEBUGFUNCTION, cb_debug);
        SET(CURLOPT_VERBOSE, 1L);
    }
#undef SET
    if (cres != CURLE_OK) {
        cts_log_error("libcurl option: %s", curl_easy_strerror(cres));
        curl_easy_cleanup(easy);
        return NULL;
    }
    return easy;
}

static CURL *easy_acquire(struct cts_http *h)
{
    if (h->neasy_free > 0)
        return h->easy_free[--h->neasy_free];
    return easy_new(h);
}

static void easy_release(struct cts_http *h, CURL *easy)
{
    size_t cap = (size_t)h->opts.max_in_flight + 4;
    if (h->closing || h->neasy_free >= cap) {
        curl_easy_cleanup(easy);
        return;
    }
    if (h->neasy_free == h->easy_free_cap) {
        h->easy_free_cap = h->easy_free_cap != 0 ? h->easy_free_cap * 2 : 8;
        h->easy_free =
            cts_xrealloc(h->easy_free, h->easy_free_cap * sizeof(void *));
    }
    h->easy_free[h->neasy_free++] = easy;
}

/* Configure easy for req.  Returns 0, UV_EINVAL or CTS_EHTTP. */
static int easy_setup(struct cts_http *h, CURL *easy, struct cts_http_req *req)
{
    const char *m = req->method != NULL ? req->method : "GET";
    int has_body = req->body != NULL;
    const char *ct = req->content_type;
    struct curl_slist *hdrs = h->headers_json;
    CURLcode cres = CURLE_OK;
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : h->opts.timeout_ms;

#define SET(opt, val)                                                          \
    do {                                                                       \
        if (cres == CURLE_OK)                                                  \
            cres = curl_easy_setopt(easy, opt, val);                           \
    } while (0)

    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PRIVATE, req);
    SET(CURLOPT_ERRORBUFFER, req->errbuf);
    SET(CURLOPT_TIMEOUT_MS, timeout);
    SET(CURLOPT_WRITEDATA, req);

    /* Every method-related option is set explicitly, because the handle
     * may carry the previous request's (no curl_easy_reset, see above):
     * HTTPGET first returns the handle to a plain GET. */
    SET(CURLOPT_HTTPGET, 1L);
    if (strcmp(m, "GET") == 0) {
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
        has_body = 0;
    } else if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
               strcmp(m, "DELETE") == 0 || strcmp(m, "PATCH") == 0) {
        SET(CURLOPT_CUSTOMREQUEST, strcmp(m, "POST") != 0 ? m : NULL);
        if (has_body || strcmp(m, "DELETE") != 0) {
            /* POSTFIELDS is not copied: the body belongs to the request
             * until CURLMSG_DONE (header contract: borrowed until done). */
            SET(CURLOPT_POSTFIELDSIZE_LARGE,
                (curl_off_t)(has_body ? req->body_len : 0));
            SET(CURLOPT_POSTFIELDS, has_body ? req->body : "");
        }
    } else {
        return UV_EINVAL;
    }

    /* Headers: two shared lists cover JSON and form bodies (freed only
     * after curl_multi_cleanup); any other content type gets its own list,
     * freed by cts_http_req_free or the next submit. */
    if (has_body && ct != NULL && strcmp(ct, "application/json") != 0) {
        if (strcmp(ct, "application/x-www-form-urlencoded") == 0) {
            hdrs = h->headers_form;
        } else {
            char line[256];
            struct curl_slist *l = NULL, *t;
            snprintf(line, sizeof(line), "Content-Type: %s", ct);
            t = curl_slist_append(l, "Accept: application/json");
            if (t != NULL) {
                l = t;
                t = curl_slist_append(l, "Expect:");
            }
            if (t != NULL) {
                l = t;
                t = curl_slist_append(l, line);
            }
            if (t == NULL) {
                curl_slist_free_all(l);
                return UV_ENOMEM;
            }
            l = t;
            req->priv_headers = l;
            hdrs = l;
        }
    }
    /* GET (and a DELETE without body) sends no body: no Content-Type to
     * announce.  A body-less POST/PUT keeps the JSON list, or libcurl would
     * announce its form-urlencoded default. */
    if (!has_body && hdrs == h->headers_json &&
        (strcmp(m, "GET") == 0 || strcmp(m, "DELETE") == 0))
        hdrs = h->headers_plain;
    SET(CURLOPT_HTTPHEADER, hdrs);

    /* Credentials are always (re)set, so one request's token can never
     * ride along on the next request of a reused handle. */
    SET(CURLOPT_XOAUTH2_BEARER, req->bearer);
    SET(CURLOPT_USERNAME, req->basic_user);
    SET(CURLOPT_PASSWORD, req->basic_user != NULL
                              ? (req->basic_pass != NULL ? req->basic_pass : "")
                              : NULL);
    if (req->bearer != NULL)
        /* libcurl sends a lone Bearer scheme pre-emptively; no
         * per-request header list needed. */
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    else
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
#undef SET
    if (cres != CURLE_OK) {
        cts_log_error("libcurl option: %s", curl_easy_strerror(cres));
        return cres == CURLE_OUT_OF_MEMORY ? UV_ENOMEM : CTS_EHTTP;
    }
    return 0;
}

static int map_cres(CURLcode cres)
{
    switch (cres) {
    case CURLE_OK: return CTS_XE_NONE;
    case CURLE_OPERATION_TIMEDOUT: return CTS_XE_TIMEOUT;
    case CURLE_COULDNT_CONNECT: return CTS_XE_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return CTS_XE_RESOLVE;
    case CURLE_SEND_ERROR: return CTS_XE_SEND;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return CTS_XE_RECV;
    case CURLE_WRITE_ERROR: return CTS_XE_TOOBIG;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE: return CTS_XE_TLS;
    default: return CTS_XE_OTHER;
    }
}

static void active_remove(struct cts_http *h, struct cts_http_req *req)
{
    size_t i;
    for (i = 0; i < h->nactive; i++) {
        if (h->active[i] == req) {
            h->active[i] = h->active[--h->nactive];
            return;
        }
    }
}

/* Fill req's results from its finished easy handle, release the handle
 * and run the owner's callback (the last thing: it may free req). */
static void finish(struct cts_http *h, struct cts_http_req *req, CURL *easy,
                   CURLcode cres)
{
    long status = 0, connects = 0, reqsize = 0;
    curl_off_t ra = 0, up = 0;
    struct curl_header *hdr = NULL;
    const char *m = req->method != NULL ? req->method : "GET";
    int write_method = strcmp(m, "GET") != 0;
    cts_http_done_cb cb = req->priv_cb;
    void *arg = req->priv_arg;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    /* CURLINFO_RETRY_AFTER is 0 both for "Retry-After: 0" and for no
     * header; the header API tells the two apart. */
    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &hdr) ==
        CURLHE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra);
        req->retry_after_s = (long)ra;
    } else {
        req->retry_after_s = -1;
    }

    req->curl_code = (int)cres;
    req->transport_error = map_cres(cres);
    req->status = status;
    if (cres != CURLE_OK && req->errbuf[0] == '\0')
        snprintf(req->errbuf, sizeof(req->errbuf), "%s",
                 curl_easy_strerror(cres));
    /* A request was written on this connection (reqsize > 0) without
     * opening a new one: keep-alive reuse. */
    req->connection_reused = reqsize > 0 && connects == 0;
    /*
     * "Maybe landed": a write whose request and whole body went out, but
     * whose reply never arrived completely.  The server may have stored it,
     * so a retry must not be a blind create (libcurl may even have resent
     * it on a new connection by itself, and the 409 be our own contact).
     */
    req->maybe_landed =
        write_method && reqsize > 0 &&
        (size_t)up >= (req->body != NULL ? req->body_len : 0) &&
        (cres == CURLE_GOT_NOTHING || cres == CURLE_RECV_ERROR ||
         cres == CURLE_SEND_ERROR || cres == CURLE_OPERATION_TIMEDOUT ||
         cres == CURLE_PARTIAL_FILE);
    req->elapsed_ms = uv_now(h->loop) - req->priv_start_ms;

    h->requests++;
    if (req->connection_reused)
        h->reused++;
    req->priv_easy = NULL;
    req->priv_http = NULL;
    easy_release(h, easy);
    if (cb != NULL)
        cb(req, arg);
}

/*
 * Hand every finished transfer back.  The easy handle and result are read
 * out of the CURLMsg before remove_handle (which invalidates it).  Owners
 * may submit again or even close the transport from their callback, so
 * the loop re-checks `closing` each round.
 */
static void drain_done(struct cts_http *h)
{
    CURLMsg *msg;
    int left = 0;

    while (!h->closing) {
        CURL *easy;
        CURLcode cres;
        struct cts_http_req *req = NULL;

        msg = curl_multi_info_read(h->multi, &left);
        if (msg == NULL)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        easy = msg->easy_handle;
        cres = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
        curl_multi_remove_handle(h->multi, easy);
        active_remove(h, req);
        h->in_flight--;
        finish(h, req, easy, cres);
    }
}

/* ---------------------------------------------------------------- */
/* public API                                                       */

static struct curl_slist *shared_headers(const char *ct)
{
    struct curl_slist *l = NULL, *t;
    /* Expect: disabled so a POST body goes out with the headers instead of
     * waiting a round trip (or a second) for 100-continue. */
    const char *lines[3] = {"Accept: application/json", "Expect:", ct};
    size_t i;
    for (i = 0; i < (ct != NULL ? 3u : 2u); i++) {
        t = curl_slist_append(l, lines[i]);
        if (t == NULL) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = t;
    }
    return l;
}

int cts_http_init(struct cts_http *h, uv_loop_t *loop,
                  const struct cts_http_opts *o)
{
    CURLMcode mres = CURLM_OK;
    int rc;

    memset(h, 0, sizeof(*h));
    if (o != NULL)
        h->opts = *o;
    if (h->opts.max_in_flight <= 0)
        h->opts.max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    if (h->opts.connect_timeout_ms <= 0)
        h->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (h->opts.timeout_ms <= 0)
        h->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (h->opts.max_response == 0)
        h->opts.max_response = DEFAULT_MAX_RESPONSE;
    h->user_agent = h->opts.user_agent != NULL
                        ? cts_xstrdup(h->opts.user_agent)
                        : cts_xstrdup("ctct-sync/" CTS_VERSION);
    h->opts.user_agent = NULL; /* borrowed pointer not kept */
    h->loop = loop;

    h->headers_json = shared_headers("Content-Type: application/json");
    h->headers_form =
        shared_headers("Content-Type: application/x-www-form-urlencoded");
    h->headers_plain = shared_headers(NULL);
    h->multi = curl_multi_init();
    if (h->headers_json == NULL || h->headers_form == NULL ||
        h->headers_plain == NULL || h->multi == NULL) {
        rc = UV_ENOMEM;
        goto fail;
    }
    rc = uv_timer_init(loop, &h->timer);
    if (rc != 0)
        goto fail;
    /* Set explicitly: on_timeout finds the transport through it (curl
     * commit c722346518 fixed exactly this omission in multi-uv.c). */
    h->timer.data = h;

    mres = curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, cb_socket);
    if (mres == CURLM_OK)
        mres = curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    if (mres == CURLM_OK)
        mres = curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, cb_timer);
    if (mres == CURLM_OK)
        mres = curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    /* The concurrency cap is also the connection cap: libcurl queues
     * transfers beyond it internally instead of opening more sockets. */
    if (mres == CURLM_OK)
        mres = curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                                 h->opts.max_in_flight);
    if (mres == CURLM_OK)
        mres = curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                                 h->opts.max_in_flight);
    /* Keep every connection of the pool open between requests. */
    if (mres == CURLM_OK)
        mres = curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
                                 h->opts.max_in_flight);
    if (mres != CURLM_OK) {
        /* The timer was initialised: it must go through uv_close, so the
         * failure path runs a normal (callback-less) close. */
        cts_log_error("libcurl multi: %s", curl_multi_strerror(mres));
        cts_http_close(h, NULL);
        return CTS_EHTTP;
    }
    return 0;

fail:
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->headers_json);
    curl_slist_free_all(h->headers_form);
    curl_slist_free_all(h->headers_plain);
    free(h->user_agent);
    memset(h, 0, sizeof(*h));
    return rc;
}

int cts_http_submit(struct cts_http *h, struct cts_http_req *req,
                    cts_http_done_cb cb, void *arg)
{
    CURL *easy;
    CURLMcode mres;
    int rc;

    if (h->closing || req->url == NULL)
        return UV_EINVAL;
    /* Reset results so a resubmitted request never shows stale ones. */
    req->status = 0;
    req->transport_error = 0;
    req->curl_code = 0;
    req->errbuf[0] = '\0';
    req->retry_after_s = -1;
    req->connection_reused = 0;
    req->maybe_landed = 0;
    req->elapsed_ms = 0;
    cts_buf_reset(&req->resp);
    req->resp.max = h->opts.max_response;
    if (req->priv_headers != NULL) {
        curl_slist_free_all(req->priv_headers);
        req->priv_headers = NULL;
    }

    easy = easy_acquire(h);
    if (easy == NULL)
        return UV_ENOMEM;
    rc = easy_setup(h, easy, req);
    if (rc != 0) {
        easy_release(h, easy);
        return rc;
    }
    req->priv_easy = easy;
    req->priv_http = h;
    req->priv_cb = cb;
    req->priv_arg = arg;
    req->priv_start_ms = uv_now(h->loop);

    if (h->nactive == h->active_cap) {
        h->active_cap = h->active_cap != 0 ? h->active_cap * 2 : 16;
        h->active = cts_xrealloc(h->active, h->active_cap * sizeof(*h->active));
    }
    /* add_handle only arms the timer (cb_timer with 0 → 1 ms), so the
     * transfer starts from the loop and cb never runs synchronously. */
    mres = curl_multi_add_handle(h->multi, easy);
    if (mres != CURLM_OK) {
        cts_log_error("libcurl: %s", curl_multi_strerror(mres));
        req->priv_easy = NULL;
        req->priv_http = NULL;
        easy_release(h, easy);
        return mres == CURLM_OUT_OF_MEMORY ? UV_ENOMEM : CTS_EHTTP;
    }
    h->active[h->nactive++] = req;
    h->in_flight++;
    return 0;
}

void cts_http_set_before_io(struct cts_http *h, int (*fn)(void *arg), void *arg)
{
    h->before_io = fn;
    h->before_io_arg = arg;
}

unsigned cts_http_in_flight(const struct cts_http *h)
{
    return h->in_flight;
}

static void maybe_closed(struct cts_http *h)
{
    void (*closed)(struct cts_http *);
    if (!h->closing || h->pending_closes != 0)
        return;
    closed = h->closed_cb;
    h->closed_cb = NULL;
    if (closed != NULL)
        closed(h); /* last: it may free h */
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct cts_http *h = handle->data;
    h->pending_closes--;
    maybe_closed(h);
}

void cts_http_close(struct cts_http *h, void (*closed)(struct cts_http *h))
{
    size_t i;

    if (h->closing)
        return;
    h->closing = 1;
    h->closed_cb = closed;

    /* Abort what is still in flight; owners hear about it now, with the
     * multi still alive, because they may own the bodies libcurl reads. */
    while (h->nactive > 0) {
        struct cts_http_req *req = h->active[--h->nactive];
        CURL *easy = req->priv_easy;
        cts_http_done_cb cb = req->priv_cb;
        curl_multi_remove_handle(h->multi, easy);
        curl_easy_cleanup(easy);
        h->in_flight--;
        req->priv_easy = NULL;
        req->priv_http = NULL;
        req->status = 0;
        req->transport_error = CTS_XE_ABORTED;
        snprintf(req->errbuf, sizeof(req->errbuf), "aborted at shutdown");
        if (cb != NULL)
            cb(req, req->priv_arg);
    }
    free(h->active);
    h->active = NULL;
    h->active_cap = 0;

    /* 1. curl_multi_cleanup may still call cb_socket(REMOVE), so the loop
     *    and the socket contexts must be alive while it runs. */
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    h->multi = NULL;
    for (i = 0; i < h->neasy_free; i++)
        curl_easy_cleanup(h->easy_free[i]);
    free(h->easy_free);
    h->easy_free = NULL;
    h->neasy_free = h->easy_free_cap = 0;
    /* 2. The shared header lists only after curl_multi_cleanup. */
    curl_slist_free_all(h->headers_json);
    curl_slist_free_all(h->headers_form);
    curl_slist_free_all(h->headers_plain);
    h->headers_json = h->headers_form = h->headers_plain = NULL;
    free(h->user_agent);
    h->user_agent = NULL;
    /* curl_multi_cleanup closed every connection through cb_closesocket;
     * anything left (a socket closed by other means) is closed here so no
     * handle outlives the transport. */
    while (h->socks != NULL)
        sock_unlink_close(h, h->socks);
    /* 3. The timer; `closed` runs when it and every poll are closed. */
    uv_timer_stop(&h->timer);
    h->pending_closes++;
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}
