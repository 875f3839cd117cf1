/*
 * cts_send.h — the send engine: every request an import makes to the API
 * (per-row writes and lookups, bulk POSTs and activity polls; list,
 * account and export reads can be made the same way) goes through one
 * engine, one cts_http transport, and these steps in this order:
 *
 *   two queues (requests submitted `again` — retries, a row's next step,
 *   throttled requests, bulk — before `fresh` ones, each in submit order)
 *   → the concurrency cap (cfg->concurrency requests in flight)
 *   → cts_limiter: the key's pace (cfg->rate starts per second, evenly
 *     spaced; retries take a slot too), never more than the rate in any
 *     1-second window as the server counts arrivals (a request that may
 *     open a new connection, or whose body is big, counts until its
 *     reply), lowered by
 *     throttling replies and recovering gradually
 *   → the local daily quota (cts_state_quota_take; in blocks when fast)
 *   → the request's own start hook (the pipeline journals the row there)
 *   → cts_http; before libcurl may write, the owner's before-I/O hook
 *     (the coalesced journal is written there)
 *   → the reply: cts_retry_classify; 401 → resend with the token a
 *     refresh (once per run, v3 with a refresh token) has replaced;
 *     429 quota → cts_state_quota_exhausted; throttling → the key's pace
 *     drops and the request goes back in line (Retry-After pauses every
 *     start; it does not use up --retries); transient failures → backoff
 *     on the request's own uv timer (Retry-After honoured) and back
 *     through the limiter, within --retries and the time budget
 *   → done(req, result) once per submit.
 *
 * Throttling without progress: when every reply for the stall time (10
 * minutes; the environment variable CTCT_SYNC_STALL_SECONDS overrides it,
 * a knob for tests) has been a throttling reply, the requests throttled,
 * queued or backing off end with CTS_SEND_STALLED, and so do requests
 * submitted later, until a reply that is not a throttling one.
 *
 * The engine decides nothing about rows or activities: what a reply means
 * (409 on a create, an activity's state) is the caller's, in its done
 * callback, which may ask for a retry (cts_send_retry) or submit the next
 * request.  Callbacks never run from cts_send_submit; they may run from
 * cts_send_pump, cts_send_stop and cts_send_close.  Not thread-safe.
 */
#ifndef CTS_SEND_H
#define CTS_SEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <uv.h>

#include "cts_config.h"
#include "cts_http.h"
#include "cts_limiter.h"
#include "cts_retry.h"
#include "cts_util.h"

struct cts_state;
struct cts_send;
struct cts_send_req;

/* How a submitted request ended. */
enum cts_send_end {
    CTS_SEND_REPLY = 0,   /* the exchange ended: res->oc says how (OK,
                             PERMANENT, QUOTA, AUTH; TRANSIENT/THROTTLED
                             only for no_retry requests) */
    CTS_SEND_GAVE_UP,     /* transient failures used up the retry budget */
    CTS_SEND_STALLED,     /* throttled without progress for the stall time: try
                             later */
    CTS_SEND_UNREACHABLE, /* gave up on connection failures without one
                             reply from the API since its first try: the
                             API went away */
    CTS_SEND_STOPPED,     /* cts_send_stop: not sent, or a transient
                             failure not retried */
    CTS_SEND_ABORTED,     /* in flight when the engine closed */
    CTS_SEND_NO_QUOTA,    /* the local daily quota is used up: not sent */
    CTS_SEND_REFUSED,     /* the start hook said no: not sent */
    CTS_SEND_FAILED       /* libcurl refused it (res->rc): not sent */
};

/* What done gets.  Strings borrowed for the call. */
struct cts_send_result {
    enum cts_send_end end;
    enum cts_outcome_class oc; /* class of the last exchange */
    int exchanged;             /* a reply or a transport failure came back
                                  for this done (r->http holds it) */
    int rc;                    /* CTS_SEND_FAILED: the error code */
    const char *reply_key;     /* the API's error_key, or NULL */
    const char *reply_message; /* the API's error message, or NULL */
    const char *error_key;     /* reply_key, else "timeout", "connect",
                                  "http.status.503"...; NULL when nothing
                                  was exchanged */
    const char *message;       /* reply_message, else libcurl's text or
                                  "HTTP 503"; NULL as error_key */
};

typedef void (*cts_send_done_cb)(struct cts_send_req *r,
                                 struct cts_send_result *res);

/*
 * One request.  Caller storage (embed it); cts_send_req_init before first
 * use, cts_send_req_close when done with it.  Set http.method, http.url,
 * http.body/body_len (cts_send_req_set) and http.idempotent, `done` and
 * optionally `start`, `data` and `no_retry`; every borrowed pointer stays
 * valid until done has run (libcurl's POSTFIELDS rule).  The engine sets
 * http.bearer and http.user.  Reusable after done (the next step of a row).
 */
struct cts_send_req {
    struct cts_http_req http; /* request; results of the last exchange */
    cts_send_done_cb done;    /* required */
    /* Optional: runs when the request has its slot and quota, right
     * before libcurl gets it (every try).  Nonzero: not sent, done runs
     * with CTS_SEND_REFUSED. */
    int (*start)(struct cts_send_req *r);
    void *data;   /* the caller's */
    int no_retry; /* deliver transient failures instead of retrying them
                     (activity polls keep their own cadence) */
    /* ---- results ---- */
    int tries;        /* submits to libcurl since cts_send_submit */
    int throttled;    /* of which answered by a throttling reply (they do
                         not count against --retries) */
    int sent;         /* submits to libcurl over the struct's life */
    int maybe_landed; /* some try since cts_send_submit was a write that
                         may have been stored (cts_http_req.maybe_landed) */
    /* ---- private to send.c ---- */
    TAILQ_ENTRY(cts_send_req) link;
    struct cts_send *s;
    int where; /* enum in send.c */
    uint64_t first_ms;
    uint64_t start_ms; /* the last try's start (limiter clock) */
    int cold;          /* the last try holds a limiter slot until done */
    int timer_inited;
    uv_timer_t timer; /* backoff; data = this request */
};

TAILQ_HEAD(cts_send_q, cts_send_req);

struct cts_send_params {
    uv_loop_t *loop; /* borrowed */
    /* Borrowed for the engine's life: api, rate, concurrency, retries,
     * timeout_ms, verbose, daily_quota, refresh_token; token is read at
     * init and replaced by the run's one refresh (cts_oauth_refresh). */
    struct cts_config *cfg;
    struct cts_state *state;     /* borrowed: the quota; NULL = none */
    int (*before_io)(void *arg); /* cts_http_set_before_io; may be NULL */
    void *before_io_arg;
    int preflight;              /* requests just made for this key (the
                                   server counts them in the window of the
                                   first requests here) */
    uint64_t preflight_done_ms; /* when they ended, uv_hrtime()/1e6;
                                   0 = now */
    uint64_t retry_base_ms;     /* backoff base; 0 = 1000 (tests less) */
    uint64_t stall_ms;          /* throttled without progress this long:
                                   CTS_SEND_STALLED; 0 = the environment's
                                   CTCT_SYNC_STALL_SECONDS, else 10 min */
};

/* Embeddable; fields private to send.c except the statistics. */
struct cts_send {
    uv_loop_t *loop;
    struct cts_config *cfg;
    struct cts_state *st;
    struct cts_http http;
    struct cts_limiter lim;
    struct cts_retry_policy policy;
    struct cts_rng rng;
    uv_timer_t pump_timer; /* the limiter's next slot */
    struct cts_send_q again, fresh, backoff;
    unsigned max_in_flight;
    unsigned conns;   /* connections libcurl probably holds open */
    char *bearer;     /* current access token (copy) */
    char *old_bearer; /* kept alive for requests still using it */
    int refreshed;
    long quota_credit; /* requests counted in the quota, not yet made */
    uint64_t last_reply_ms;
    uint64_t stall_ms;  /* see cts_send_params */
    uint64_t streak_ms; /* first throttling reply since the last other
                           reply; 0 = none */
    int stalled;        /* the stall time passed: queued requests end */
    int stopped, closing, pumping;
    /* statistics, read-only */
    long requests;  /* submitted to libcurl */
    long retries;   /* of which repeats after a transient failure */
    long throttled; /* throttling replies (429 throttled, 403 over.qps) */
};

/*
 * Initialise s: transport, limiter, retry policy.  p copied.
 * Returns 0, or UV_ENOMEM / CTS_EHTTP with err filled (nothing to close).
 */
int cts_send_init(struct cts_send *s, const struct cts_send_params *p,
                  struct cts_error *err);

/* Zero r and initialise its response buffer. */
void cts_send_req_init(struct cts_send_req *r);
/* Set the request line: method ("GET", "POST", "PUT"), url and body (NULL
 * for none), all borrowed until done. */
void cts_send_req_set(struct cts_send_req *r, const char *method,
                      const char *url, const char *body);
/*
 * Free what r owns (the last response) and close its backoff timer if one
 * was ever started.  Returns 1 when a close was started: cb runs from the
 * loop with the timer (timer.data = r), free the storage there; 0 when
 * the storage may be freed or reused now.  Never while r is submitted.
 */
int cts_send_req_close(struct cts_send_req *r, uv_close_cb cb);

/*
 * Queue r (borrowed until done), `again` (1: before every fresh request)
 * or fresh (0).  Returns 0 (done runs exactly once, never from inside this
 * call) or UV_ECANCELED after cts_send_stop/close (done never runs).  The
 * request starts from the next pump: cts_send_pump, or the loop's next
 * turn.
 */
int cts_send_submit(struct cts_send *s, struct cts_send_req *r, int again);

/*
 * From r's done, for a reply the caller judges transient although the
 * classifier did not (sign_up_form's 409): retry it as a transient
 * failure.  Returns 1 (scheduled: done runs again later) or 0 with
 * res->end set to why not (STOPPED, GAVE_UP or UNREACHABLE).
 */
int cts_send_retry(struct cts_send *s, struct cts_send_req *r,
                   struct cts_send_result *res);

/* Withdraw r if it is queued or backing off (done does not run).  0, or
 * UV_EBUSY while it is in flight (done will run). */
int cts_send_cancel(struct cts_send *s, struct cts_send_req *r);

/* Start queued requests while the cap and the limiter allow;
 * otherwise arm the one timer for the next slot.  Done callbacks of
 * requests that cannot start (quota, start hook) run from here. */
void cts_send_pump(struct cts_send *s);

/* Stop sending: every queued or backing-off request ends now with
 * CTS_SEND_STOPPED; in-flight ones finish (and are not retried); later
 * submits fail.  Idempotent. */
void cts_send_stop(struct cts_send *s);

unsigned cts_send_in_flight(const struct cts_send *s);

/*
 * Stop, then close the transport: requests in flight end now with
 * CTS_SEND_ABORTED, and the unused quota block goes back.  The handles
 * close from the loop: keep s until the loop has run them.  Idempotent.
 */
void cts_send_close(struct cts_send *s);

#endif /* CTS_SEND_H */
