/*
 * cts_fetch.h — one HTTP request, blocking, with a few quick retries of
 * transient failures (fetch.c, on top of cts_http), paced by the run's
 * rate limiter when one is set.  Used before and outside the pipeline:
 * the account check, the lists, token calls.
 */
#ifndef CTS_FETCH_H
#define CTS_FETCH_H

#include <stdint.h>

#include "cts_http.h"
#include "cts_limiter.h"
#include "cts_util.h"

/*
 * Blocking convenience: run req on a private loop, retrying transient
 * failures (connection errors, timeouts, 408, 429 and v2 403 throttling
 * but not the quota replies, 500/502/503/504) up to opts.fetch_retries
 * times with a short jittered backoff (Retry-After up to 10 s honoured; a
 * longer one ends the retries and the reply is returned).
 * A POST that may have landed is only repeated when req->idempotent.
 * Returns 0 when an HTTP reply was received (any status: check
 * req->status), CTS_EHTTP with err filled when none was (transport
 * failure after the retries; the message names the URL with secrets
 * masked by cts_url_redact), UV_EINVAL / UV_ENOMEM.  req->resp holds the
 * last reply's body; call cts_http_req_free afterwards.
 */
int cts_http_fetch(struct cts_http_req *req, const struct cts_http_opts *o,
                   struct cts_error *err);

/*
 * Every try of every blocking fetch from now on (retries too) first waits
 * for a slot of l (borrowed; NULL: no limiter), so the requests made
 * before the pipeline count against the same --rate as the run's own.  l
 * must run on cts_fetch_clock_ms (or any clock of uv_hrtime's origin: the
 * send engine's uv_now is one).  Not thread-safe: the main thread only.
 */
void cts_fetch_set_limiter(struct cts_limiter *l);
/* uv_hrtime() in milliseconds: the clock for cts_fetch_set_limiter's
 * limiter (clock_arg unused). */
uint64_t cts_fetch_clock_ms(void *clock_arg);

/*
 * From now on SIGINT and SIGTERM do not end the process: they are
 * recorded, and a blocking fetch running or started afterwards stops
 * within 50 ms, returning UV_ECANCELED (err says which signal).  For the
 * requests before the pipeline (which installs its own handlers): the
 * caller then ends the run cleanly (exit 75, report and summary written).
 */
void cts_fetch_catch_signals(void);
/* The signal number recorded since cts_fetch_catch_signals, or 0. */
int cts_fetch_signal(void);

#endif /* CTS_FETCH_H */
