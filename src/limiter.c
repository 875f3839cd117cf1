/*
 * limiter.c — sliding-log rate limiter for --rate.  See cts_limiter.h for
 * why a log of the last N start times rather than a token bucket: the
 * server counts arrivals in ANY 1-second window, and a bucket refilled
 * continuously lets N+1 requests land inside one such window.
 */
#include "cts_limiter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cts_util.h"

int cts_limiter_init(struct cts_limiter *l, double rate, cts_clock_fn now_ms,
                     void *clock_arg)
{
    memset(l, 0, sizeof(*l));
    l->rate = rate > 0 ? rate : 0;
    l->margin_ms = CTS_LIMITER_MARGIN_MS;
    l->now_ms = now_ms;
    l->clock_arg = clock_arg;
    if (l->rate <= 0)
        return 0;
    if (l->rate >= 1) {
        /* floor: a fractional rate such as 2.5/s must still never show 3
         * starts in one second. */
        double n = floor(l->rate);
        l->n = n > 1e6 ? 1000000u : (unsigned)n;
        l->window_ms = 1000;
    } else {
        l->n = 1;
        l->window_ms = (uint64_t)ceil(1000.0 / l->rate);
    }
    l->ring = cts_xcalloc(l->n, sizeof(*l->ring));
    return 0;
}

void cts_limiter_set_margin(struct cts_limiter *l, uint64_t margin_ms)
{
    l->margin_ms = margin_ms;
}

void cts_limiter_free(struct cts_limiter *l)
{
    if (l == NULL)
        return;
    free(l->ring);
    l->ring = NULL;
    l->count = l->head = 0;
}

/* Earliest time the next start is allowed. */
static uint64_t next_allowed(const struct cts_limiter *l)
{
    uint64_t t = 0;
    if (l->count == l->n)
        /* The ring is full: the new start would be the (N+1)th counted
         * with ring[head], so it must fall outside that start's window,
         * plus the margin for network jitter. */
        t = l->ring[l->head] + l->window_ms + l->margin_ms;
    return t > l->paused_until ? t : l->paused_until;
}

uint64_t cts_limiter_wait_ms(const struct cts_limiter *l)
{
    uint64_t now, t;
    if (l->rate <= 0)
        return 0;
    now = l->now_ms(l->clock_arg);
    t = next_allowed(l);
    return t > now ? t - now : 0;
}

int cts_limiter_try_take(struct cts_limiter *l)
{
    uint64_t now;
    if (l->rate <= 0) {
        l->starts++;
        return 1;
    }
    now = l->now_ms(l->clock_arg);
    if (next_allowed(l) > now)
        return 0;
    if (l->count < l->n) {
        l->ring[(l->head + l->count) % l->n] = now;
        l->count++;
    } else {
        /* Overwrite the oldest entry; the next oldest becomes head. */
        l->ring[l->head] = now;
        l->head = (l->head + 1) % l->n;
    }
    l->starts++;
    return 1;
}

void cts_limiter_pause(struct cts_limiter *l, uint64_t ms)
{
    uint64_t until;
    if (l->now_ms == NULL)
        return;
    until = l->now_ms(l->clock_arg) + ms;
    if (until > l->paused_until)
        l->paused_until = until;
}
