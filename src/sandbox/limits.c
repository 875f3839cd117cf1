/*
 * limits.c — per-key rate limit (a 1-second sliding window) and daily quota
 * (per UTC day of the sandbox clock), plus the busiest-1-second statistic of
 * the client's own arrivals that tests use to prove a client never exceeded
 * its rate.  Clocks are parameters so unit tests inject them.
 *
 * The window counts either every arrival (refused ones too, as real API
 * gateways do) or only admitted requests.  A simulated other client sharing
 * the key ("foreign load", F requests/s) adds virtual arrivals evenly spread
 * in time: the k-th one is at origin + k/F s.  They are computed when the
 * key is next consulted, so no timer runs, and they count in the window (not
 * in the daily quota, nor in busiest_1s).
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

/* Time of the k-th foreign arrival: origin + ceil(k * 1 s / F). */
static uint64_t foreign_at(const struct sb_limit *l, uint64_t k, uint64_t f)
{
    return l->f_origin + (k * WINDOW_US + f - 1) / f;
}

/* Add the foreign arrivals up to now to the window, in time order. */
static void foreign_catch_up(struct sb_limit *l,
                             const struct sb_limit_policy *p, uint64_t now)
{
    uint64_t f = (uint64_t)p->foreign_load;
    if (!l->f_started) {
        /* the other client has been running all along: its arrivals
         * already fill the window that ends now */
        l->f_origin = now >= WINDOW_US ? now - WINDOW_US : 0;
        l->f_next = 1;
        l->f_started = 1;
    }
    /* arrivals that already left the window need not be replayed */
    if (now >= l->f_origin + WINDOW_US) {
        uint64_t gone = (now - WINDOW_US - l->f_origin) * f / WINDOW_US;
        if (l->f_next <= gone)
            l->f_next = gone + 1;
    }
    for (;;) {
        uint64_t t = foreign_at(l, l->f_next, f);
        if (t > now)
            break;
        l->f_next++;
        l->foreign++;
        ring_expire(&l->window, t);
        if (p->window == SB_WINDOW_ADMITTED &&
            l->window.len >= (size_t)p->rate) {
            l->foreign_refused++;
            continue;
        }
        ring_push(&l->window, t);
    }
}

int sb_limit_check(struct sb_limit *l, const struct sb_limit_policy *p,
                   uint64_t now_us, int64_t now_s)
{
    int64_t day = now_s >= 0 ? now_s / 86400 : -1 - (-now_s - 1) / 86400;
    int arrivals = p->window == SB_WINDOW_ARRIVALS;
    int quota_hit;

    l->requests++;
    ring_expire(&l->arrived, now_us);
    ring_push(&l->arrived, now_us);
    if (l->arrived.len > l->busiest_1s)
        l->busiest_1s = l->arrived.len;

    if (day != l->day) {
        l->day = day;
        l->daily_used = 0;
    }
    if (p->rate > 0) {
        if (p->foreign_load > 0)
            foreign_catch_up(l, p, now_us);
        ring_expire(&l->window, now_us);
        if (arrivals)
            ring_push(&l->window, now_us); /* refused or not, it counts */
    }
    quota_hit = p->quota > 0 && l->daily_used >= (uint64_t)p->quota;
    if (quota_hit) {
        l->throttled++;
        return SB_LIMIT_QUOTA;
    }
    /* arrivals: this request is already in the window */
    if (p->rate > 0 && (arrivals ? l->window.len > (size_t)p->rate
                                 : l->window.len >= (size_t)p->rate)) {
        l->throttled++;
        return SB_LIMIT_RATE;
    }
    if (p->rate > 0 && !arrivals)
        ring_push(&l->window, now_us);
    l->daily_used++;
    return SB_LIMIT_OK;
}

const char *sb_window_name(enum sb_window w)
{
    return w == SB_WINDOW_ADMITTED ? "admitted" : "arrivals";
}

int sb_window_parse(const char *s, enum sb_window *out)
{
    if (strcmp(s, "arrivals") == 0)
        *out = SB_WINDOW_ARRIVALS;
    else if (strcmp(s, "admitted") == 0)
        *out = SB_WINDOW_ADMITTED;
    else
        return -1;
    return 0;
}

void sb_limit_reset(struct sb_limit *l)
{
    if (!l)
        return;
    free(l->window.t);
    free(l->arrived.t);
    memset(l, 0, sizeof *l);
}

void sb_limit_free(struct sb_limit *l)
{
    sb_limit_reset(l);
}
