/*
 * limits.c — per-key rate limit (1-second sliding window of accepted
 * requests) and daily quota (per UTC day of the sandbox clock), plus the
 * busiest-1-second statistic of arrivals that tests use to prove a client
 * never exceeded its rate.  Clocks are parameters so unit tests inject them.
 */
#include "sb_int.h"

#include <stdlib.h>
#include <string.h>

#define WINDOW_US 1000000ull

static void ring_push(struct sb_ring *r, uint64_t t)
{
    if (r->len == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        uint64_t *nt = cts_xmalloc(ncap * sizeof *nt);
        for (size_t i = 0; i < r->len; i++)
            nt[i] = r->t[(r->head + i) % r->cap];
        free(r->t);
        r->t = nt;
        r->cap = ncap;
        r->head = 0;
    }
    r->t[(r->head + r->len) % r->cap] = t;
    r->len++;
}

/* Drop entries at or before now - 1 s: the window is (now - 1 s, now]. */
static void ring_expire(struct sb_ring *r, uint64_t now)
{
    while (r->len && r->t[r->head] + WINDOW_US <= now) {
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
}

int sb_limit_check(struct sb_limit *l, uint64_t now_us, int64_t now_s,
                   long rate, long quota)
{
    int64_t day = now_s >= 0 ? now_s / 86400 : -1 - (-now_s - 1) / 86400;

    l->requests++;
    ring_expire(&l->arrived, now_us);
    ring_push(&l->arrived, now_us);
    if (l->arrived.len > l->busiest_1s)
        l->busiest_1s = l->arrived.len;

    if (day != l->day) {
        l->day = day;
        l->daily_used = 0;
    }
    if (quota > 0 && l->daily_used >= (uint64_t)quota) {
        l->throttled++;
        return SB_LIMIT_QUOTA;
    }
    ring_expire(&l->accepted, now_us);
    if (rate > 0 && l->accepted.len >= (size_t)rate) {
        l->throttled++;
        return SB_LIMIT_RATE;
    }
    if (rate > 0)
        ring_push(&l->accepted, now_us);
    l->daily_used++;
    return SB_LIMIT_OK;
}

void sb_limit_reset(struct sb_limit *l)
{
    if (!l)
        return;
    free(l->accepted.t);
    free(l->arrived.t);
    memset(l, 0, sizeof *l);
}

void sb_limit_free(struct sb_limit *l)
{
    if (!l)
        return;
    free(l->accepted.t);
    free(l->arrived.t);
    memset(l, 0, sizeof *l);
}
