/*
 * oauth.c — `ctct-sync auth` (cts_oauth.h): the v2 server flow, the v3
 * PKCE and device flows, the loopback listener that receives the browser's
 * redirect, and the paste fallback.  The token endpoint calls are in
 * oauth_token.c; the refresh of v3 tokens is refresh.c.
 *
 * The waits (the browser timeout, device-flow polling) run on private uv
 * loops with timers, never sleep().
 */
#include "cts_oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cts_fetch.h"
#include "cts_http.h"
#include "cts_redirect.h"
#include "cts_secret.h"
#include "cts_tokenfile.h"
#include "oauth_int.h"

#define DEFAULT_SCOPES         "contact_data account_read offline_access"
#define BROWSER_WAIT_S         300
#define DEFAULT_REQ_TIMEOUT_MS 30000 /* config.c's default for --timeout */
#define CALLBACK_MAX           16384 /* a browser's request head */

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

/* Scopes from the user ("a b", "a,b" or "a+b") joined with '+', the way
 * phpfui works around CC's scope parsing; owned. */
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

/* ---- `ctct-sync auth` ---- */

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
    struct cts_oauth_resp r;
    struct cts_error err = {0};
    struct cts_tokens tok;
    char *url;
    int v2 = cfg->api == CTS_API_V2, rc;

    cts_buf_init(&body, 0);
    memset(&tok, 0, sizeof(tok));
    cts_oauth_form_add(&body, "grant_type", "authorization_code");
    cts_oauth_form_add(&body, "code", code);
    cts_oauth_form_add(&body, "redirect_uri", a->redirect);
    if (v2) {
        /* v2 takes the secret in the parameters; we send
         * them in the body, never in a URL that could be logged. */
        url = cts_xasprintf("%s/oauth/token", cfg->auth_url);
        cts_oauth_form_add(&body, "client_id", cfg->api_key);
        cts_oauth_form_add(&body, "client_secret", cfg->client_secret);
    } else {
        url = cts_xasprintf("%s/token", cfg->auth_url);
        cts_oauth_form_add(&body, "client_id", cfg->api_key);
        cts_oauth_form_add(&body, "code_verifier", a->verifier);
    }
    rc = cts_oauth_post_form(cfg, url, body.data,
                             !v2 && cfg->client_secret != NULL ? cfg->api_key
                                                               : NULL,
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
        cts_oauth_resp_clear(&r);
        return;
    }
    tok.api = cts_xstrdup(v2 ? "v2" : "v3");
    tok.access_token = r.access_token;
    tok.refresh_token = r.refresh_token;
    r.access_token = r.refresh_token = NULL; /* moved into tok */
    tok.expires_at = 0;
    {
        struct cts_oauth_resp tmp = {0};
        tmp.access_token = tok.access_token;
        tmp.expires_in = r.expires_in;
        tok.expires_at = cts_oauth_new_expiry(cfg, &tmp);
    }
    tok.client_id = cts_xstrdup(cfg->api_key);
    if (!v2)
        tok.last_refresh_at = cts_oauth_call_time();
    rc = cts_tokenfile_write(cfg->token_file, &tok, &err);
    if (rc != 0) {
        a->exit_code = err.exit_code != 0 ? err.exit_code : CTS_EX_CANTCREAT;
        cts_buf_appendf(&a->msg, "got tokens but could not save them: %s",
                        err.msg);
    } else {
        char m1[16], m2[16], when[64] = "unknown";
        time_t t = (time_t)tok.expires_at;
        struct tm tm;
        /* A fresh authorization supersedes an interrupted refresh. */
        cts_oauth_intent_remove(cfg->token_file);
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
    cts_oauth_resp_clear(&r);
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
    struct conn *prev, *next; /* the listener's open connections */
    struct cts_buf in;
    char *out;
    int responded;
};

struct listener {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t timer; /* the browser wait */
    uv_timer_t drain; /* after the end: answers still being written */
    struct auth *a;
    struct conn *conns;
    size_t nconns;
    int finished; /* callback handled or timed out: stop listening */
    int timed_out;
};

/* Connections held at once (a browser opens a few); more are closed at
 * once rather than kept. */
#define CONNS_MAX 32
/* How long, once the wait is over, an answer may take to be written. */
#define DRAIN_MS 2000

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct listener *l = c->l;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    l->nconns--;
    cts_buf_free(&c->in);
    free(c->out);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/*
 * The wait is over (the callback arrived, or the time ran out): stop
 * accepting and close every connection that is not answering something,
 * except keep (the callback's own, may be NULL).  A browser's idle
 * keep-alive or preconnect socket, or a half-sent request, must not keep
 * `auth` running: the peer decides nothing about when we end.
 */
static void stop_listening(struct listener *l, struct conn *keep)
{
    struct conn *c, *next;
    if (l->finished)
        return;
    l->finished = 1;
    uv_close((uv_handle_t *)&l->server, NULL);
    uv_close((uv_handle_t *)&l->timer, NULL);
    for (c = l->conns; c != NULL; c = next) {
        next = c->next;
        if (c != keep && !c->responded)
            conn_close(c);
    }
}

static void on_drained(uv_timer_t *t)
{
    struct listener *l = t->data;
    struct conn *c, *next;
    for (c = l->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
}

/* Give the answers being written DRAIN_MS to leave, then close them.  The
 * timer does not hold the loop: it ends as soon as they are written. */
static void start_drain(struct listener *l)
{
    uv_update_time(&l->loop); /* the code exchange may have blocked */
    uv_timer_start(&l->drain, on_drained, DRAIN_MS, 0);
    uv_unref((uv_handle_t *)&l->drain);
}

static void on_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    (void)status; /* the browser may have gone; nothing to do either way */
    conn_close(c);
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
        conn_close(c);
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
    stop_listening(l, c);
    if (q == NULL)
        handle_callback(a, "", 0);
    else
        handle_callback(a, q + 1, (size_t)(sp2 - q - 1));
    if (a->exit_code == CTS_EX_OK)
        respond(c, 200, "OK", "Authorization complete", a->msg.data);
    else
        respond(c, 400, "Bad Request", "Authorization failed", a->msg.data);
    start_drain(l);
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
        conn_close(c);
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
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    /* Accept even past the cap: a connection left pending would stop
     * libuv from accepting the browser's next one. */
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        l->nconns > CONNS_MAX ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_browser_timeout(uv_timer_t *t)
{
    struct listener *l = t->data;
    l->timed_out = 1;
    stop_listening(l, NULL);
    start_drain(l);
}

static void on_proc_closed(uv_handle_t *h);

/* Close what is still open once the loop has ended (the drain timer, a
 * still-running xdg-open), each with the close callback that frees its
 * storage (libuv: free only in the close callback). */
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
    uv_timer_init(&l.loop, &l.drain);
    l.server.data = &l;
    l.timer.data = &l;
    l.drain.data = &l;
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
        uv_close((uv_handle_t *)&l.drain, NULL);
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

/* --open: hand the URL to xdg-open; never by default. */
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
    struct cts_oauth_resp r;
    struct cts_error err = {0};
    int rc;

    rc = cts_oauth_post_form(a->cfg, d->url, d->body, NULL, NULL, &r, &err);
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
        tok.expires_at = cts_oauth_new_expiry(a->cfg, &r);
        tok.client_id = cts_xstrdup(a->cfg->api_key);
        tok.last_refresh_at = cts_oauth_call_time();
        rc = cts_tokenfile_write(a->cfg->token_file, &tok, &err);
        if (rc != 0) {
            a->exit_code = err.exit_code != 0 ? err.exit_code : CTS_EX_CONFIG;
            cts_buf_appendf(&a->msg, "got tokens but could not save them: %s",
                            err.msg);
        } else {
            char m[16];
            cts_oauth_intent_remove(a->cfg->token_file);
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
    cts_oauth_resp_clear(&r);
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
    cts_oauth_resp_clear(&r);
    uv_close((uv_handle_t *)t, NULL);
}

static int run_device(struct auth *a)
{
    struct cts_config *cfg = a->cfg;
    struct cts_oauth_resp r;
    struct cts_error err = {0};
    struct cts_buf body;
    struct device_poll d;
    uv_loop_t loop;
    char *url, *scopes;
    int rc;

    cts_buf_init(&body, 0);
    cts_oauth_form_add(&body, "client_id", cfg->api_key);
    scopes = join_scopes(cfg->scopes);
    /* join_scopes escaped each scope already; '+' is a space in a form. */
    cts_buf_appendf(&body, "&scope=%s", scopes);
    free(scopes);
    url = cts_xasprintf("%s/device/authorize", cfg->auth_url);
    rc = cts_oauth_post_form(cfg, url, body.data, NULL, NULL, &r, &err);
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
        cts_oauth_resp_clear(&r);
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
    cts_oauth_form_add(&body, "grant_type",
                       "urn:ietf:params:oauth:grant-type:device_code");
    cts_oauth_form_add(&body, "device_code", r.device_code);
    cts_oauth_form_add(&body, "client_id", cfg->api_key);
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
    cts_oauth_resp_clear(&r);
    free(d.url);
    memset(d.body, 0, strlen(d.body));
    free(d.body);
    return a->exit_code;
}

/* Print the problems cts_config_check_auth found: one alone as it is,
 * several as a numbered list in their order (the redirect URI's first). */
static void log_problems(const struct cts_config_problems *p)
{
    size_t i;
    if (p->n == 1) {
        cts_log_error("%s", p->v[0].text);
        return;
    }
    cts_log_error("auth cannot start: %zu problems in the configuration "
                  "(nothing was sent); fix them in this order:",
                  p->n);
    for (i = 0; i < p->n; i++) {
        /* Continuation lines go under the item's text, past "  1. ". */
        struct cts_buf item;
        const char *t = p->v[i].text, *nl;
        cts_buf_init(&item, 0);
        while ((nl = strchr(t, '\n')) != NULL) {
            cts_buf_append(&item, t, (size_t)(nl - t) + 1);
            cts_buf_appendf(&item, "   ");
            t = nl + 1;
        }
        cts_buf_appendf(&item, "%s", t);
        cts_log_error("  %zu. %s", i + 1, item.data);
        cts_buf_free(&item);
    }
}

int cts_cmd_auth(struct cts_config *cfg)
{
    struct auth a;
    struct cts_buf url;
    struct cts_config_problems pbs;
    char *scopes = NULL, *challenge = NULL, *esc;
    int ex;

    memset(&a, 0, sizeof(a));
    a.cfg = cfg;
    cts_buf_init(&a.msg, 0);
    /* Every problem at once, before the browser or any request. */
    cts_config_problems_init(&pbs);
    ex = cts_config_check_auth(cfg, &pbs);
    if (ex != 0) {
        log_problems(&pbs);
        cts_config_problems_free(&pbs);
        return ex;
    }
    cts_config_problems_free(&pbs);
    if (cfg->device_flow) {
        ex = run_device(&a);
        goto out;
    }

    a.registered = cfg->registered_redirect_uri;
    a.redirect = cfg->redirect_uri != NULL ? cfg->redirect_uri : a.registered;
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
    cts_uri_free(&a.ru);
    free(a.state);
    if (a.verifier != NULL)
        memset(a.verifier, 0, strlen(a.verifier));
    free(a.verifier);
    free(scopes);
    free(challenge);
    cts_buf_free(&a.msg);
    return ex;
}
