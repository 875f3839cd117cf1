/*
 * conn.c — ctct-sandbox's connections: accepting them, reading into one
 * growing buffer, handing complete requests to server.c, writing replies,
 * and the guards a server listening on a port needs:
 *
 *  - a deadline per phase: the request line and headers must arrive within
 *    --header-timeout-ms of their first byte (or of the accept), the body
 *    within --body-timeout-ms of the headers, a keep-alive connection may
 *    idle --idle-timeout-ms between requests, and a reply the client does
 *    not read for --idle-timeout-ms closes the connection.  The deadlines
 *    are absolute, so a client trickling bytes does not push them back;
 *  - --max-connections: at the cap the longest-idle keep-alive connection
 *    is closed to make room, else the newcomer gets 503;
 *  - --max-body-total: request bodies are reserved against one budget for
 *    all connections when their headers arrive; over it, 503;
 *  - every error reply is followed by a lingering close (FIN, then drain
 *    the client's remaining bytes) so the client reads the reply instead of
 *    a connection reset.
 * A closed connection returns all its memory; an idle one keeps no read
 * buffer.
 */
#include "sb_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINGER_MS 2000 /* the most a closing connection drains */

static void conn_flush(struct conn *c);
static void conn_arm(struct conn *c);
static void read_start(struct conn *c);
static void read_stop(struct conn *c);

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

void sb_conn_serialize(struct conn *c, const struct sb_res *res)
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

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the drain ends at EOF or at the linger deadline */
}

/* The last reply is out: send FIN, then read and discard until the client
 * closes or LINGER_MS pass.  Closing at once with unread bytes would reset
 * the connection, and the client could lose the reply. */
static void conn_linger(struct conn *c)
{
    if (c->eof || c->lingering) {
        sb_conn_close(c);
        return;
    }
    c->lingering = 1;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        sb_conn_close(c);
        return;
    }
    c->rlen = c->rpos = 0;
    c->phase = CONN_LINGER;
    c->phase_due = uv_now(c->srv->loop) + LINGER_MS;
    read_start(c);
    conn_arm(c);
}

static void on_write(uv_write_t *wr, int status)
{
    struct conn *c = wr->data;
    c->writing = 0;
    cts_buf_reset(&c->outw);
    if (status < 0) {
        sb_conn_close(c);
        return;
    }
    if (c->closing)
        return;
    if (c->out.len) {
        conn_flush(c);
    } else if (c->close_after) {
        conn_linger(c);
        return;
    } else if (!c->busy) {
        /* resume reading/processing held back by output pressure */
        sb_conn_process(c);
        return;
    }
    conn_arm(c);
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
        sb_conn_close(c);
        return;
    }
    c->writing = 1;
    if (c->srv->opt.idle_timeout_ms > 0)
        c->write_due =
            uv_now(c->srv->loop) + (uint64_t)c->srv->opt.idle_timeout_ms;
}

/* ------------------------------------------------------------- closing */

void sb_conn_release_body(struct conn *c)
{
    c->srv->body_held -= c->body_held;
    c->body_held = 0;
}

void sb_conn_free(struct conn *c)
{
    struct sb_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sb_conn_release_body(c);
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
        sb_conn_free(c);
}

void sb_conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->srv->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->deadline, on_handle_closed);
}

/* Reply `status` with a JSON error body (the array shape both APIs use),
 * drop what was read of the request, and close once the reply is out. */
static void refuse(struct conn *c, int status, const char *key, const char *msg)
{
    sb_res_reset(&c->res);
    sb_res_error_v2(&c->res, status, key, msg);
    if (status == 503)
        sb_res_header(&c->res, "Retry-After", "1");
    c->res.close = 1;
    c->srv->total++;
    c->srv->by_status[status]++;
    sb_conn_serialize(c, &c->res);
    sb_conn_release_body(c);
    c->close_after = 1;
    c->rlen = c->rpos = 0;
    memset(&c->msg, 0, sizeof c->msg);
    read_stop(c);
    conn_flush(c);
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
    refuse(c, status, "http.status.bad_request", msg);
}

/* ----------------------------------------------------------- deadlines */

static void set_phase(struct conn *c, enum conn_phase phase, long timeout_ms)
{
    if (c->phase == phase)
        return; /* the deadline runs from the phase's start */
    c->phase = phase;
    c->phase_due =
        timeout_ms > 0 ? uv_now(c->srv->loop) + (uint64_t)timeout_ms : 0;
}

static void on_deadline(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct sb_server *srv = c->srv;
    uint64_t now = uv_now(srv->loop);

    if (c->closing)
        return;
    if (c->writing && c->write_due && c->write_due <= now) {
        sb_log(srv, "closing a connection whose client reads no replies");
        srv->cstats.timed_out++;
        sb_conn_close(c);
        return;
    }
    if (c->phase == CONN_BUSY || !c->phase_due || c->phase_due > now ||
        (c->close_after && !c->lingering)) {
        conn_arm(c);
        return;
    }
    if (c->phase == CONN_LINGER) {
        sb_conn_close(c);
    } else if (c->phase == CONN_IDLE) {
        srv->cstats.idle_closed++;
        sb_conn_close(c);
    } else if (c->rlen == c->rpos) {
        /* connected, and sent nothing */
        srv->cstats.timed_out++;
        sb_conn_close(c);
    } else {
        sb_log(srv, "request incomplete after the %s timeout: 408",
               c->phase == CONN_BODY ? "body" : "header");
        srv->cstats.timed_out++;
        refuse(c, 408, "http.status.request_timeout",
               c->phase == CONN_BODY
                   ? "The request body did not arrive in time."
                   : "The request headers did not arrive in time.");
        conn_arm(c);
    }
}

/* (Re)start the deadline timer for the earliest deadline that applies. */
static void conn_arm(struct conn *c)
{
    uint64_t due = 0, now;
    if (c->closing)
        return;
    if (c->phase != CONN_BUSY && (!c->close_after || c->lingering))
        due = c->phase_due;
    if (c->writing && c->write_due && (!due || c->write_due < due))
        due = c->write_due;
    if (!due) {
        uv_timer_stop(&c->deadline);
        return;
    }
    now = uv_now(c->srv->loop);
    uv_timer_start(&c->deadline, on_deadline, due > now ? due - now : 0, 0);
}

/* The phase after processing: what the connection now waits for. */
static void update_phase(struct conn *c)
{
    const struct sb_options *o = &c->srv->opt;
    if (c->lingering)
        return;
    if (c->busy)
        set_phase(c, CONN_BUSY, 0);
    else if (c->rlen > c->rpos && c->msg.parsed)
        set_phase(c, CONN_BODY, o->body_timeout_ms);
    else if (c->rlen > c->rpos)
        set_phase(c, CONN_HEADERS, o->header_timeout_ms);
    else if (c->phase != CONN_HEADERS)
        /* a fresh connection stays in CONN_HEADERS: it owes a request */
        set_phase(c, CONN_IDLE, o->idle_timeout_ms);
}

/* ------------------------------------------------------------- reading */

/* Reserve the body of the request whose headers just arrived against the
 * budget of all connections; 0 = go on, -1 = over (reply sent). */
static int hold_body(struct conn *c)
{
    struct sb_server *srv = c->srv;
    size_t len = c->msg.content_length;
    if (c->body_held || len == 0)
        return 0;
    if (srv->opt.max_body_total > 0 &&
        (len > srv->opt.max_body_total ||
         srv->body_held > srv->opt.max_body_total - len)) {
        srv->cstats.body_refused++;
        sb_log(srv, "request bodies over --max-body-total: 503");
        refuse(c, 503, "http.status.service_unavailable",
               "The sandbox holds too many request bodies; retry later.");
        return -1;
    }
    c->body_held = len;
    srv->body_held += len;
    return 0;
}

static void read_stop(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
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
        c->eof = 1;
        read_stop(c);
        if (c->writing || c->out.len)
            c->close_after = 1;
        else
            sb_conn_close(c);
        return;
    }
    if (c->lingering) {
        c->rlen = 0; /* drained */
        return;
    }
    c->rlen += (size_t)n;
    sb_conn_process(c);
}

void sb_conn_process(struct conn *c)
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
        if (hold_body(c) != 0)
            break;
        if (rc == SB_HTTP_HEADERS) {
            if (c->msg.expect_continue && !c->sent_continue) {
                cts_buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                c->sent_continue = 1;
            }
            break;
        }
        c->phase = CONN_BUSY; /* whatever follows starts a new phase */
        sb_conn_serve(c);
    }
    c->in_process = 0;
    if (c->closing) {
        if (c->handles_open == 0 && !c->ext_pending)
            sb_conn_free(c);
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
    if (!c->busy && c->rlen == 0 && c->rbuf) {
        /* nothing pending: an idle connection keeps no read buffer */
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
    conn_flush(c);
    if (c->busy || c->close_after || c->out.len + c->outw.len > OUT_HIGH)
        read_stop(c);
    else
        read_start(c);
    update_phase(c);
    conn_arm(c);
}

static void read_start(struct conn *c)
{
    if (!c->reading && !c->closing) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

/* ----------------------------------------------------------- accepting */

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

/* At --max-connections: close the keep-alive connection idle the longest.
 * 1 if one was closed. */
static int close_longest_idle(struct sb_server *srv)
{
    struct conn *oldest = NULL;
    for (struct conn *c = srv->conns; c; c = c->next)
        if (!c->closing && c->phase == CONN_IDLE && !c->writing &&
            !c->out.len && (!oldest || c->phase_due < oldest->phase_due))
            oldest = c;
    if (!oldest)
        return 0;
    srv->cstats.idle_closed++;
    sb_conn_close(oldest);
    return 1;
}

void sb_conn_on_connection(uv_stream_t *l, int status)
{
    struct sb_server *srv = l->data;
    if (status < 0 || srv->closing)
        return;
    int full = srv->opt.max_connections > 0 &&
               srv->nconns >= (size_t)srv->opt.max_connections &&
               !close_longest_idle(srv);
    struct conn *c = cts_xcalloc(1, sizeof *c);
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    uv_timer_init(srv->loop, &c->deadline);
    c->tcp.data = c->timer.data = c->deadline.data = c;
    c->handles_open = 3;
    cts_buf_init(&c->out, 0);
    cts_buf_init(&c->outw, 0);
    cts_buf_init(&c->res.body, 0);
    cts_buf_init(&c->res.headers, 0);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        sb_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->peer_loopback = peer_is_loopback(&c->tcp);
    c->phase = CONN_HEADERS;
    if (srv->opt.header_timeout_ms > 0)
        c->phase_due = uv_now(srv->loop) + (uint64_t)srv->opt.header_timeout_ms;
    if (full) {
        srv->cstats.refused++;
        sb_log(srv, "over --max-connections: 503");
        refuse(c, 503, "http.status.service_unavailable",
               "Too many connections; retry later.");
    } else {
        srv->cstats.accepted++;
        read_start(c);
    }
    conn_arm(c);
}
