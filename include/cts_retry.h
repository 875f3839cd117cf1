/*
 * cts_retry.h — pure retry policy (the curl tool's rules: 5xx, timeouts and
 * connection errors retry with doubling backoff and full jitter).
 *
 * No I/O, no clock, no allocation: the caller supplies the status, the
 * transport class (enum cts_xfer_error from cts_http.h), the parsed
 * error_key and a random number, and gets a class and a delay back.
 */
#ifndef CTS_RETRY_H
#define CTS_RETRY_H

#include <stdint.h>
#include <time.h>

#include "cts_types.h"

enum cts_outcome_class {
    CTS_OC_OK = 0,    /* 2xx */
    CTS_OC_TRANSIENT, /* 408, 429 (other), 500/502/503/504, timeouts,
                         connection errors (the curl tool's list) */
    CTS_OC_THROTTLED, /* v3 429 throttled; v2 403 ...over.qps: slow down
                         (not processed: the send engine sends it again
                         at a lower pace, not counted as a retry) */
    CTS_OC_QUOTA,     /* v3 429 quota_exceeded; v2 403 ...over.ratelimit:
                         stop sending, defer the rest (exit 75) */
    CTS_OC_AUTH,      /* 401: refresh once or stop (exit 77) */
    CTS_OC_PERMANENT  /* other 4xx, TLS, bad URL, oversized reply: the row
                         fails with the API's error_key */
};

/* "ok", "transient", "throttled", "quota", "auth", "permanent". */
const char *cts_outcome_name(enum cts_outcome_class oc);

/*
 * Classify one exchange.  transport_error != 0 (no HTTP reply) wins over
 * status.  error_key (borrowed, may be NULL) is the parsed error_key of the
 * body (cts_api_parse_error); it decides between throttling and quota.
 * Note 409 is PERMANENT here; the v2 upsert path handles it before asking.
 */
enum cts_outcome_class cts_retry_classify(enum cts_api api, long status,
                                          int transport_error,
                                          const char *error_key);

/* Longest Retry-After we honour: 1 hour.  Longer values are clamped to it
 * (a server asking for more is treated like a quota stop by the caller,
 * who can compare retry_after_s with this). */
#define CTS_RETRY_AFTER_MAX_MS 3600000ULL

/*
 * Delay before retry number `attempt` (1 = the first retry).
 * With retry_after_s >= 0 (header present): retry_after_s * 1000 ms, even
 * when that exceeds cap_ms (the server knows best), clamped to
 * CTS_RETRY_AFTER_MAX_MS; 0 stays 0.
 * Otherwise full jitter: uniform in [0, min(cap_ms, base_ms * 2^attempt))
 * using rnd (any 32-bit random value), but at least 1 ms.
 */
uint64_t cts_retry_delay_ms(int attempt, long retry_after_s, uint64_t base_ms,
                            uint64_t cap_ms, uint32_t rnd);

/* A retry budget: attempts and total time (--retries, default 6; backoff
 * base 1 s, cap 60 s). */
struct cts_retry_policy {
    int max_retries;         /* retries after the first attempt */
    uint64_t base_ms;        /* 1000 */
    uint64_t cap_ms;         /* 60000 */
    uint64_t max_elapsed_ms; /* 0 = unlimited */
};

/* Fill p with the defaults (6, 1000, 60000, 0). */
void cts_retry_policy_default(struct cts_retry_policy *p);

/*
 * Decide whether to retry after `attempts` attempts (>= 1) that have taken
 * elapsed_ms so far, given the class of the last one.  Returns 1 and sets
 * *delay_ms when a retry should be scheduled, 0 when the outcome is final
 * (OK, PERMANENT, QUOTA, AUTH, budget used up, or the delay would exceed
 * the remaining time budget).  THROTTLED without Retry-After waits at least
 * 1 s (the API's window) before its jitter.
 */
int cts_retry_next(const struct cts_retry_policy *p, enum cts_outcome_class oc,
                   int attempts, uint64_t elapsed_ms, long retry_after_s,
                   uint32_t rnd, uint64_t *delay_ms);

/* Milliseconds from unix time `now` until the next 00:00:00 UTC (the daily
 * quota reset of both API generations); always > 0. */
uint64_t cts_retry_ms_until_utc_midnight(time_t now);

#endif /* CTS_RETRY_H */
