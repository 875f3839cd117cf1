/*
 * retry.c — pure retry policy (the curl tool's rules: transient codes,
 * Retry-After, doubling backoff with a cap, full jitter).
 */
#include "cts_retry.h"

#include <string.h>

#include "cts_http.h" /* enum cts_xfer_error */

const char *cts_outcome_name(enum cts_outcome_class oc)
{
    switch (oc) {
    case CTS_OC_OK: return "ok";
    case CTS_OC_TRANSIENT: return "transient";
    case CTS_OC_THROTTLED: return "throttled";
    case CTS_OC_QUOTA: return "quota";
    case CTS_OC_AUTH: return "auth";
    case CTS_OC_PERMANENT: return "permanent";
    }
    return "unknown";
}

static int key_is(const char *key, const char *want)
{
    return key != NULL && strcmp(key, want) == 0;
}

enum cts_outcome_class cts_retry_classify(enum cts_api api, long status,
                                          int transport_error,
                                          const char *error_key)
{
    /* No reply at all: the curl tool's transient list (timeouts, refused
     * or reset connections, empty replies, DNS); TLS problems, oversized
     * replies and malformed URLs will not get better by retrying. */
    switch (transport_error) {
    case CTS_XE_NONE: break;
    case CTS_XE_TIMEOUT:
    case CTS_XE_CONNECT:
    case CTS_XE_RESOLVE:
    case CTS_XE_SEND:
    case CTS_XE_RECV: return CTS_OC_TRANSIENT;
    default: return CTS_OC_PERMANENT;
    }

    if (status >= 200 && status < 300)
        return CTS_OC_OK;
    if (status == 401)
        return CTS_OC_AUTH;
    if (status == 429) {
        /* v3 answers 429 for both the per-second limit ("throttled") and
         * the daily quota ("quota_exceeded"); the single-object body's
         * error_key tells them apart. */
        if (key_is(error_key, "quota_exceeded"))
            return CTS_OC_QUOTA;
        if (key_is(error_key, "throttled"))
            return CTS_OC_THROTTLED;
        /* 429 "too many queued activities" and unknown keys: back off. */
        return CTS_OC_TRANSIENT;
    }
    if (status == 403) {
        /* v2: Mashery answers 403 for both limits, over.qps (per second)
         * and over.ratelimit (daily). */
        if (key_is(error_key, "mashery.not.authorized.over.qps"))
            return CTS_OC_THROTTLED;
        if (key_is(error_key, "mashery.not.authorized.over.ratelimit"))
            return CTS_OC_QUOTA;
        (void)api;
        return CTS_OC_PERMANENT;
    }
    /* The curl tool's list: 501 Not Implemented or 505 will not change
     * on a second try. */
    if (status == 408 || status == 500 || status == 502 || status == 503 ||
        status == 504)
        return CTS_OC_TRANSIENT;
    /* 1xx/3xx should not reach us (no redirects are followed) and every
     * other 4xx is the row's own fault. */
    return CTS_OC_PERMANENT;
}

uint64_t cts_retry_delay_ms(int attempt, long retry_after_s, uint64_t base_ms,
                            uint64_t cap_ms, uint32_t rnd)
{
    uint64_t ceiling;
    int i;

    if (retry_after_s >= 0) {
        /* The server's word wins over our cap, within one hour. */
        uint64_t ms = (uint64_t)retry_after_s * 1000u;
        if ((uint64_t)retry_after_s > CTS_RETRY_AFTER_MAX_MS / 1000u)
            ms = CTS_RETRY_AFTER_MAX_MS;
        return ms;
    }
    if (attempt < 1)
        attempt = 1;
    if (base_ms == 0)
        base_ms = 1;
    /* base * 2^attempt without overflow: stop doubling at the cap. */
    ceiling = base_ms;
    for (i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (cap_ms != 0 && ceiling > cap_ms)
        ceiling = cap_ms;
    /* Full jitter (AWS architecture blog): uniform in [0, ceiling). */
    ceiling = (uint64_t)(((uint64_t)rnd * ceiling) >> 32);
    return ceiling > 0 ? ceiling : 1;
}

void cts_retry_policy_default(struct cts_retry_policy *p)
{
    p->max_retries = 6;
    p->base_ms = 1000;
    p->cap_ms = 60000;
    p->max_elapsed_ms = 0;
}

int cts_retry_next(const struct cts_retry_policy *p, enum cts_outcome_class oc,
                   int attempts, uint64_t elapsed_ms, long retry_after_s,
                   uint32_t rnd, uint64_t *delay_ms)
{
    uint64_t d;

    *delay_ms = 0;
    if (oc != CTS_OC_TRANSIENT && oc != CTS_OC_THROTTLED)
        return 0;
    if (attempts > p->max_retries)
        return 0;
    d = cts_retry_delay_ms(attempts, retry_after_s, p->base_ms, p->cap_ms, rnd);
    /* Throttling means "this second is full": waiting less than the
     * API's 1-second window would just be throttled again. */
    if (oc == CTS_OC_THROTTLED && retry_after_s < 0)
        d += 1000;
    if (p->max_elapsed_ms != 0 && elapsed_ms + d > p->max_elapsed_ms)
        return 0;
    *delay_ms = d;
    return 1;
}

uint64_t cts_retry_ms_until_utc_midnight(time_t now)
{
    long long secs = (long long)now % 86400;
    if (secs < 0)
        secs += 86400;
    return (uint64_t)(86400 - secs) * 1000u;
}
