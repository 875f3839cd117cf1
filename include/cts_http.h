/*
 * cts_http.h — HTTP transport: libcurl's multi interface driven by a libuv
 * loop (curl's docs/examples/multi-uv.c pattern).  The blocking one-shot
 * fetch for the calls made before and outside the pipeline is cts_fetch.h.
 *
 * http.c is the only file that includes <curl/curl.h>; the curl handles in
 * struct cts_http are therefore opaque pointers here.
 *
 * Threading: none.  Everything runs on the loop given to cts_http_init.
 *
 * Lifetime (libuv rules):
 *   cts_http_init      on caller storage (embed it in your struct);
 *   cts_http_submit    0 = done_cb runs exactly once, later, never from
 *                      inside cts_http_submit; < 0 = done_cb never runs and
 *                      the caller still owns the request;
 *   cts_http_close     when done with it; `closed` runs from the loop once
 *                      the timer handle and every socket poll are closed.
 *                      Free the storage only in `closed`.
 */
#ifndef CTS_HTTP_H
#define CTS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cts_util.h"

/* Transport failure classes (req->transport_error); 0 means the exchange
 * completed and req->status holds the HTTP status.  The raw CURLcode is in
 * req->curl_code, the libcurl message in req->errbuf. */
enum cts_xfer_error {
    CTS_XE_NONE = 0,
    CTS_XE_TIMEOUT, /* CURLE_OPERATION_TIMEDOUT (connect or transfer) */
    CTS_XE_CONNECT, /* CURLE_COULDNT_CONNECT: refused, unreachable */
    CTS_XE_RESOLVE, /* CURLE_COULDNT_RESOLVE_HOST / _PROXY */
    CTS_XE_SEND,    /* CURLE_SEND_ERROR */
    CTS_XE_RECV,    /* CURLE_RECV_ERROR, CURLE_GOT_NOTHING, PARTIAL_FILE */
    CTS_XE_TLS,     /* certificate / handshake problems: never retried */
    CTS_XE_TOOBIG,  /* response exceeded opts.max_response */
    CTS_XE_ABORTED, /* cts_http_close ran while the request was in flight */
    CTS_XE_OTHER    /* anything else libcurl reports (bad URL, ...) */
};

/* Short name of a transport class ("timeout", "connect", ...). */
const char *cts_xfer_error_name(int xe);

struct cts_http_opts {
    long max_in_flight;      /* concurrency cap; also the connection cap
                                (MAX_TOTAL/HOST_CONNECTIONS); 0 = 4 */
    long connect_timeout_ms; /* 0 = 10000 */
    long timeout_ms;         /* whole request; 0 = 30000 */
    size_t max_response;     /* response body cap; 0 = 8 MiB */
    const char *user_agent;  /* borrowed for the call; NULL = ctct-sync/VER */
    int verbose;             /* log request lines at debug level (the
                                Authorization header is never logged) */
    /* cts_http_fetch (cts_fetch.h) only: retries of transient failures (a few,
     * short backoff on a uv timer).  0 = default 3; negative = no retry. */
    int fetch_retries;
    uint64_t fetch_base_ms; /* backoff base; 0 = 250 */
};

struct cts_http_req; /* below */
typedef void (*cts_http_done_cb)(struct cts_http_req *req, void *arg);

/*
 * One request.  Caller-owned storage; initialise with cts_http_req_init (or
 * zero it and set the fields), then set the request fields.  Every borrowed
 * pointer must stay valid until done_cb has run (libcurl's POSTFIELDS rule:
 * the body is not copied).  A request may be resubmitted after done_cb;
 * submit empties resp (keeping its storage) and resets every result.
 */
struct cts_http_req {
    /* ---- request (all borrowed) ---- */
    const char *method; /* "GET" (default when NULL), "POST", "PUT",
                           "DELETE" */
    const char *url;    /* full URL, query already escaped */
    const char *body;   /* NULL = no body */
    size_t body_len;
    const char *content_type; /* NULL = application/json when body != NULL */
    const char *bearer;       /* Authorization: Bearer <bearer>, or NULL */
    const char *basic_user;   /* Authorization: Basic (OAuth token calls) */
    const char *basic_pass;
    int idempotent;  /* a POST that is safe to repeat even if it
                        may have landed (tokeninfo); GET, PUT and
                        DELETE are always idempotent */
    long timeout_ms; /* per-request override; 0 = opts.timeout_ms */
    void *user;      /* for the caller; never touched */

    /* ---- results, valid when done_cb runs (or fetch returns) ---- */
    long status;           /* HTTP status, 0 if none received */
    int transport_error;   /* enum cts_xfer_error */
    int curl_code;         /* raw CURLcode, 0 = CURLE_OK */
    char errbuf[256];      /* libcurl's message, "" when none */
    struct cts_buf resp;   /* response body (NUL-terminated); owned by
                              the request, freed by cts_http_req_free */
    long retry_after_s;    /* Retry-After in seconds, -1 when absent */
    int connection_reused; /* 1 = sent on a kept-alive connection */
    int maybe_landed;      /* 1 = a POST/PUT whose body was fully sent
                              but no complete reply came back: the write
                              may have been stored, do not blindly
                              repeat a create */
    int attempts;          /* cts_http_fetch: tries made (>= 1) */
    uint64_t elapsed_ms;   /* submit → done, loop clock */

    /* ---- private to http.c ---- */
    void *priv_easy;    /* CURL * while in flight */
    void *priv_headers; /* per-request curl_slist, if any */
    struct cts_http *priv_http;
    cts_http_done_cb priv_cb;
    void *priv_arg;
    uint64_t priv_start_ms;
};

/* One transport per run.  Embeddable; fields are private to http.c. */
struct cts_http {
    uv_loop_t *loop;
    uv_timer_t timer;    /* libcurl's single timeout timer (data = self) */
    void *multi;         /* CURLM * */
    void *headers_json;  /* shared curl_slist: Accept, Expect:, JSON CT */
    void *headers_form;  /* shared curl_slist: form-urlencoded CT */
    void *headers_plain; /* shared curl_slist: Accept, Expect: (no body) */
    void **easy_free;    /* reusable CURL * handles (no per-request init) */
    size_t neasy_free, easy_free_cap;
    struct cts_http_opts opts;
    char *user_agent; /* owned copy */
    unsigned in_flight;
    int closing;
    unsigned pending_closes; /* timer + socket polls still closing */
    void (*closed_cb)(struct cts_http *h);
    struct cts_http_req **active; /* in-flight requests, for close/abort */
    size_t nactive, active_cap;
    void *socks;                 /* list of live socket contexts (uv_poll_t) */
    uint64_t requests;           /* statistics: requests completed */
    uint64_t reused;             /*   of which on a kept-alive connection */
    int (*before_io)(void *arg); /* cts_http_set_before_io */
    void *before_io_arg;
};

/* curl_global_init / cleanup: call once from main (not thread-safe).
 * Returns 0 or CTS_EHTTP. */
int cts_http_global_init(void);
void cts_http_global_cleanup(void);

/*
 * Initialise h on loop.  o is copied (may be NULL for defaults).
 * Returns 0, UV_ENOMEM or CTS_EHTTP; on failure nothing needs closing.
 */
int cts_http_init(struct cts_http *h, uv_loop_t *loop,
                  const struct cts_http_opts *o);

/*
 * Start req (borrowed until cb).  Resets the result fields and empties
 * req->resp.  Never blocks;
 * the request is handed to libcurl at once, which queues it internally if
 * max_in_flight connections are busy (callers normally keep
 * cts_http_in_flight() below the cap themselves).
 * Returns 0 (cb runs exactly once, asynchronously), UV_EINVAL (no URL,
 * unknown method, closing), UV_ENOMEM or CTS_EHTTP (libcurl refused);
 * on error cb never runs.
 */
int cts_http_submit(struct cts_http *h, struct cts_http_req *req,
                    cts_http_done_cb cb, void *arg);

/*
 * fn(arg) runs before every call that lets libcurl put bytes on the wire
 * (curl_multi_socket_action), so the owner can make a request's
 * precondition durable first — the pipeline writes its coalesced journal
 * there.  A non-zero return skips that call (the owner is stopping, e.g.
 * the journal cannot be written: nothing may be sent).  NULL removes it.
 */
void cts_http_set_before_io(struct cts_http *h, int (*fn)(void *arg),
                            void *arg);

/* Requests submitted whose done_cb has not run yet. */
unsigned cts_http_in_flight(const struct cts_http *h);

/*
 * Shut down: requests still in flight are removed and their done_cb runs
 * synchronously with transport_error CTS_XE_ABORTED; then
 * curl_multi_cleanup (it may still call the socket callback, so the polls
 * outlive it), the shared header lists are freed, and the timer and socket
 * polls are closed.  `closed` (may be NULL) runs from the loop when
 * the last handle has closed; only then may h's storage be freed.
 */
void cts_http_close(struct cts_http *h, void (*closed)(struct cts_http *h));

/* Zero req and initialise its response buffer. */
void cts_http_req_init(struct cts_http_req *req);
/* Free what a request owns (the response body); the request may be reused
 * after cts_http_req_init.  NULL-safe. */
void cts_http_req_free(struct cts_http_req *req);

#endif /* CTS_HTTP_H */
