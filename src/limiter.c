/*
 * limiter.c — request-start pacing for one API key (cts_limiter.h).
 *
 * Why both a window log and an even pace: the server counts arrivals in
 * ANY 1-second window, so the log of the latest N arrival bounds is what
 * proves the limit (a token bucket refilled continuously lets N+1 land in
 * one window); spacing starts evenly spends the budget without bursts, so
 * another client sharing the key meets a steady load, and one late timer
 * costs one start, not a window's worth.
 */
#include "cts_limiter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cts_util.h"

#define CUT_FACTOR      0.85 /* multiplicative decrease */
#define CUT_FLOOR       0.7  /* thr: at least 0.7 x the pace throttled */
#define PROBE_LO        0.9  /* of the throttled pace: fast recovery up to */
#define PLATEAU_S       20.0 /* then up to the throttled pace in this time */
#define GROW_FAST       0.1  /* of ref per second */
#define UNCAP_FACTOR    4.0  /* --rate 0: the cap goes at 4 x ref */
#define RTT_SAMPLES_MIN 8

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
         * arrivals in one second. */
        double n = floor(l->rate);
        l->n = n > 1e6 ? 1000000u : (unsigned)n;
        l->window_ms = 1000;
    } else {
        l->n = 1;
        l->window_ms = (uint64_t)ceil(1000.0 / l->rate);
    }
    l->fixed = (double)l->n * 1000.0 / (double)l->window_ms;
    l->ref = l->fixed;
    l->ring = cts_xcalloc(l->n, sizeof(*l->ring));
    return 0;
}

void cts_limiter_set_margin(struct cts_limiter *l, uint64_t margin_ms)
{
    l->margin_ms = margin_ms;
    l->margin_fixed = 1;
}

void cts_limiter_free(struct cts_limiter *l)
{
    if (l == NULL)
        return;
    free(l->ring);
    l->ring = NULL;
    l->count = l->head = l->held = 0;
}

static uint64_t now_of(const struct cts_limiter *l)
{
    return l->now_ms != NULL ? l->now_ms(l->clock_arg) : 0;
}

/* Add an arrival bound at its place in time (the ring stays oldest first;
 * starts, at now, go at the end).  Only the latest n bounds matter. */
static void log_push(struct cts_limiter *l, uint64_t t)
{
    unsigned i;

    if (l->n == 0)
        return;
    if (l->count == l->n) {
        if (t <= l->ring[l->head])
            return;
        l->head = (l->head + 1) % l->n; /* the oldest goes */
        l->count--;
    }
    for (i = l->count; i > 0; i--) {
        uint64_t prev = l->ring[(l->head + i - 1) % l->n];
        if (prev <= t)
            break;
        l->ring[(l->head + i) % l->n] = prev;
    }
    l->ring[(l->head + i) % l->n] = t;
    l->count++;
}

/* A start logged at `from` may have arrived as late as `to`: move it. */
static void log_move(struct cts_limiter *l, uint64_t from, uint64_t to)
{
    unsigned i;

    for (i = l->count; i > 0; i--)
        if (l->ring[(l->head + i - 1) % l->n] == from)
            break;
    if (i > 0) {
        for (; i < l->count; i++)
            l->ring[(l->head + i - 1) % l->n] = l->ring[(l->head + i) % l->n];
        l->count--;
    }
    log_push(l, to);
}

static double cap_pace(const struct cts_limiter *l, double p)
{
    if (l->fixed > 0)
        return p < l->fixed ? p : l->fixed;
    /* --rate 0: the adaptive cap has grown well past what was throttled. */
    return p >= UNCAP_FACTOR * l->ref ? 0 : p;
}

/* The pace at time now: --rate, or recovering from the last cut:
 * quickly to just below the pace that was throttled, slowly (a plateau)
 * up to it, then quickly again (the other client may have gone). */
static double pace_at(const struct cts_limiter *l, uint64_t now)
{
    double t, p, fast, lo, dt;

    if (!l->adapting)
        return l->fixed;
    t = now > l->cut_ms ? (double)(now - l->cut_ms) / 1000.0 : 0;
    fast = GROW_FAST * l->ref;
    lo = PROBE_LO * l->thr;
    p = l->cut_to;
    if (p < lo) {
        dt = (lo - p) / fast;
        if (t <= dt)
            return cap_pace(l, p + fast * t);
        p = lo;
        t -= dt;
    }
    if (p < l->thr) {
        if (t <= PLATEAU_S)
            return cap_pace(l, p + (l->thr - p) * t / PLATEAU_S);
        p = l->thr;
        t -= PLATEAU_S;
    }
    return cap_pace(l, p + fast * t);
}

static uint64_t interval_ms(const struct cts_limiter *l, double pace)
{
    return (uint64_t)ceil((1000.0 + (double)l->margin_ms) / pace);
}

/* Earliest time the next start is allowed; CTS_LIMITER_WAIT_REPLY when
 * only a release can free a slot. */
static uint64_t next_allowed(const struct cts_limiter *l, uint64_t now)
{
    uint64_t t = l->paused_until;

    if (l->n > 0 && l->count + l->held >= l->n) {
        /* Fewer than n - held logged bounds may lie within the window:
         * the one at index count + held - n (oldest first) must leave. */
        unsigned k;
        uint64_t e;
        if (l->held >= l->n)
            return CTS_LIMITER_WAIT_REPLY;
        k = l->count + l->held - l->n;
        e = l->ring[(l->head + k) % l->n] + l->window_ms + l->margin_ms;
        if (e > t)
            t = e;
    }
    if (pace_at(l, now) > 0 && l->next_ms > t)
        t = l->next_ms;
    return t;
}

uint64_t cts_limiter_wait_ms(const struct cts_limiter *l)
{
    uint64_t now = now_of(l), t = next_allowed(l, now);

    if (t == CTS_LIMITER_WAIT_REPLY)
        return t;
    return t > now ? t - now : 0;
}

int cts_limiter_try_start(struct cts_limiter *l, int cold)
{
    uint64_t now = now_of(l);
    double p;

    if (next_allowed(l, now) > now)
        return 0;
    if (l->n > 0) {
        if (cold)
            l->held++;
        else
            log_push(l, now);
    }
    p = pace_at(l, now);
    if (p > 0) {
        /* From the schedule, not from now, while the start is less than
         * half an interval late (a loaded loop's timer): the lateness is
         * not lost for good, and the window log still bounds the catch-up.
         * Later than that (nothing to send meanwhile) the schedule starts
         * afresh: no burst after a quiet spell. */
        uint64_t iv = interval_ms(l, p);
        uint64_t base = l->next_ms + iv / 2 > now ? l->next_ms : now;
        l->next_ms = base + iv;
    }
    if (l->adapting && l->fixed > 0 && p >= l->fixed)
        l->adapting = 0; /* recovered */
    l->last_start_ms = now;
    l->starts++;
    return 1;
}

int cts_limiter_try_take(struct cts_limiter *l)
{
    return cts_limiter_try_start(l, 0);
}

void cts_limiter_release(struct cts_limiter *l)
{
    if (l->held == 0)
        return;
    l->held--;
    log_push(l, now_of(l));
}

void cts_limiter_seed(struct cts_limiter *l, unsigned count, uint64_t t)
{
    unsigned i;
    for (i = 0; i < count && i < l->n; i++)
        log_push(l, t);
}

void cts_limiter_pause(struct cts_limiter *l, uint64_t ms)
{
    uint64_t until;
    if (l->now_ms == NULL)
        return;
    until = now_of(l) + ms;
    if (until > l->paused_until)
        l->paused_until = until;
}

void cts_limiter_note_reply(struct cts_limiter *l, uint64_t start_ms)
{
    uint64_t now = now_of(l);
    uint64_t rtt_ms = now > start_ms ? now - start_ms : 0;
    double excess, m;

    if (l->rtt_n == 0 || rtt_ms < l->rtt_min)
        l->rtt_min = rtt_ms;
    /* A round trip e ms slower than the fastest may have arrived up to e
     * ms later than its start says (the server, or the way there, was
     * slow): beyond the margin, that later bound enters the log. */
    if (l->n > 0 && l->rtt_n > 0 && rtt_ms - l->rtt_min > l->margin_ms)
        log_move(l, start_ms, start_ms + (rtt_ms - l->rtt_min));
    excess = (double)(rtt_ms - l->rtt_min);
    /* Smoothed like TCP's RTTVAR (gain 1/8), so one slow reply widens the
     * margin for a few seconds rather than for the run. */
    l->rtt_excess =
        l->rtt_n == 0 ? excess : l->rtt_excess + (excess - l->rtt_excess) / 8;
    l->rtt_n++;
    if (l->margin_fixed)
        return;
    m = CTS_LIMITER_MARGIN_MIN_MS + 3 * l->rtt_excess;
    if (l->rtt_n < RTT_SAMPLES_MIN && m < CTS_LIMITER_MARGIN_MS)
        m = CTS_LIMITER_MARGIN_MS;
    if (m > CTS_LIMITER_MARGIN_MAX_MS)
        m = CTS_LIMITER_MARGIN_MAX_MS;
    l->margin_ms = (uint64_t)ceil(m);
}

void cts_limiter_note_ok(struct cts_limiter *l)
{
    uint64_t now = now_of(l);

    if (l->ok_count < CTS_LIMITER_OK_RING) {
        l->ok_ring[(l->ok_head + l->ok_count) % CTS_LIMITER_OK_RING] = now;
        l->ok_count++;
    } else {
        l->ok_ring[l->ok_head] = now;
        l->ok_head = (l->ok_head + 1) % CTS_LIMITER_OK_RING;
    }
}

/*
 * The rate at which the key let our requests through lately: from the
 * admitted replies of the last 2 s, (k - 1) over the time they span
 * (exact for evenly spaced replies, where a count in a window is off by
 * one at its edges), but never more than one more than the count of the
 * last second (a burst of replies spans nearly no time).
 */
static double admitted_rate(const struct cts_limiter *l, uint64_t now)
{
    unsigned i, k = 0, last_s = 0;
    uint64_t newest = 0, oldest = 0;
    double r;

    for (i = l->ok_count; i > 0; i--) {
        uint64_t t = l->ok_ring[(l->ok_head + i - 1) % CTS_LIMITER_OK_RING];
        if (t + 2000 <= now)
            break;
        if (k == 0)
            newest = t;
        oldest = t;
        k++;
        if (t + 1000 + 2 * l->margin_ms > now)
            last_s++;
    }
    if (k < 2 || newest - oldest < 100)
        return (double)last_s + (last_s > 0);
    r = (double)(k - 1) * 1000.0 / (double)(newest - oldest);
    return r < last_s + 1 ? r : last_s + 1;
}

int cts_limiter_note_throttled(struct cts_limiter *l, uint64_t start_ms)
{
    uint64_t now = now_of(l), until;
    double p, seen, thr;

    l->throttles++;
    /* The server's window still held the arrivals from before the last
     * cut for one second: those replies were answered by that cut. */
    if (l->cuts > 0 && start_ms < l->cut_ms + 1000)
        return 0;
    p = pace_at(l, now);
    seen = admitted_rate(l, now);
    thr = p > 0 && p < seen ? p : seen;
    if (seen <= 0) /* nothing let through lately: no measure but ours */
        thr = p > 0 ? p : 1.0;
    if (p > 0 && thr < CUT_FLOOR * p) /* a few refusals in a row: noise */
        thr = CUT_FLOOR * p;
    if (thr < CTS_LIMITER_MIN_PACE)
        thr = CTS_LIMITER_MIN_PACE;
    l->thr = thr;
    l->cut_to = CUT_FACTOR * thr;
    if (l->cut_to < CTS_LIMITER_MIN_PACE)
        l->cut_to = CTS_LIMITER_MIN_PACE;
    if (l->fixed <= 0 && thr > l->ref)
        l->ref = thr;
    if (l->fixed <= 0 && l->ref < 1)
        l->ref = 1;
    l->cut_ms = now;
    l->adapting = 1;
    l->cuts++;
    /* The next start one new interval after the last one. */
    until = l->last_start_ms + interval_ms(l, l->cut_to);
    if (until > l->next_ms)
        l->next_ms = until;
    return 1;
}

double cts_limiter_pace(const struct cts_limiter *l)
{
    return pace_at(l, now_of(l));
}
