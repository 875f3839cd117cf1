/*
 * cts_limiter.h — request-start pacing for one API key (--rate N: never
 * more than N requests in any 1-second window as the server counts
 * arrivals, yet close to N; throttling replies slow it down).
 *
 * Three rules decide when the next request may start:
 *
 *  - The window: a log of the latest N arrival bounds.  A request sent on
 *    a warm connection arrives a roughly constant time after its start,
 *    so its start is logged; one that may open a new connection or has a
 *    big body to upload ("cold": it may arrive any time before its reply)
 *    holds a slot until its reply (cts_limiter_release), and the reply
 *    time is logged then.  A start is allowed while fewer than N logged
 *    bounds lie within the last window + margin ms, held slots included.
 *    This is the hard bound.
 *  - The pace: starts are spaced evenly, (1000 + margin) / pace ms apart,
 *    so the key's budget is spent evenly, never in bursts.  The pace is
 *    --rate (floor(N) per second, or N below 1), or lower while adapting.
 *  - Pauses (Retry-After on a throttling reply): no start before then.
 *
 * The margin absorbs how much the delay between our start and the
 * server's arrival varies.  A reply slower than the fastest by more than
 * the margin says its request may have arrived that much later: its entry
 * in the log moves to that bound.  The margin is learned from the round trips
 * of warm requests: CTS_LIMITER_MARGIN_MIN_MS plus three times the smoothed
 * excess of a round trip over the fastest one seen (CTS_LIMITER_MARGIN_MS
 * until 8 samples), at most CTS_LIMITER_MARGIN_MAX_MS.
 *
 * Throttling replies (cts_limiter_note_throttled) mean the key is shared
 * or the margin was too small: the pace drops to 0.85 x the lower of the
 * pace and the rate the key let our requests through lately (but at
 * least 0.7 x the pace; once per second of the server's window), then
 * recovers with time: quickly (10 % of the reference rate per second) to
 * 0.9 x the pace that was throttled, over 20 s up to that pace, then
 * quickly again up to --rate.  With --rate 0 the first throttling reply
 * installs such a cap, which goes once it has grown to 4 x the reference
 * (the largest pace throttled).
 *
 * Pure: no timers and no I/O.  The clock is injected (production passes a
 * wrapper around uv_now; tests a fake clock), and the caller arms its own
 * single uv_timer for cts_limiter_wait_ms().  Retries take a slot too.
 */
#ifndef CTS_LIMITER_H
#define CTS_LIMITER_H

#include <stdint.h>

typedef uint64_t (*cts_clock_fn)(void *clock_arg);

#define CTS_LIMITER_MARGIN_MS     20  /* until round trips are known */
#define CTS_LIMITER_MARGIN_MIN_MS 15  /* learned margin: floor */
#define CTS_LIMITER_MARGIN_MAX_MS 250 /* learned margin: ceiling */
#define CTS_LIMITER_MIN_PACE      0.1 /* starts/s: adapting never goes lower */
#define CTS_LIMITER_WAIT_REPLY    UINT64_MAX /* only a release frees a slot */
#define CTS_LIMITER_OK_RING       128

struct cts_limiter {
    double rate;        /* --rate; <= 0 = no fixed cap */
    double fixed;       /* the fixed pace, starts/s; 0 = none */
    unsigned n;         /* arrivals allowed per window (ring size); 0 = off */
    uint64_t window_ms; /* 1000, or 1000/rate for rates below 1 */
    uint64_t margin_ms; /* current margin */
    int margin_fixed;   /* set by cts_limiter_set_margin: not learned */
    uint64_t *ring;     /* owned: arrival bounds, n entries, oldest first */
    unsigned head;      /* index of the oldest entry */
    unsigned count;     /* entries used (<= n) */
    unsigned held;      /* slots held until a reply (cts_limiter_release) */
    uint64_t paused_until; /* no starts before this time (Retry-After) */
    uint64_t next_ms;      /* the pace: no start before this time */
    uint64_t last_start_ms;
    uint64_t starts;    /* total starts granted (statistics) */
    uint64_t throttles; /* throttling replies noted (statistics) */
    uint64_t cuts;      /* of which lowered the pace (statistics) */
    /* adapting to throttling replies */
    int adapting;
    double thr;      /* the pace that was throttled */
    double cut_to;   /* the pace right after the cut */
    double ref;      /* reference rate: --rate, or the largest thr */
    uint64_t cut_ms; /* when; 0 = never */
    /* round trips of warm requests */
    uint64_t rtt_min;
    double rtt_excess;
    unsigned rtt_n;
    /* admitted (not throttled) replies, for the rate the key allows us */
    uint64_t ok_ring[CTS_LIMITER_OK_RING];
    unsigned ok_head, ok_count;
    cts_clock_fn now_ms;
    void *clock_arg;
};

/*
 * Initialise l for `rate` requests/s (<= 0: no fixed cap).  Rates >= 1
 * allow floor(rate) arrivals per 1000 ms window; rates below 1 allow one
 * per 1000/rate ms.  now_ms is borrowed (called with clock_arg); it must be
 * monotonic.  Returns 0 (allocation aborts on OOM, house policy).
 */
int cts_limiter_init(struct cts_limiter *l, double rate, cts_clock_fn now_ms,
                     void *clock_arg);
/* Fix the margin (tests; default: learned from round trips). */
void cts_limiter_set_margin(struct cts_limiter *l, uint64_t margin_ms);
/* Free the ring.  NULL-safe; l may be re-initialised afterwards. */
void cts_limiter_free(struct cts_limiter *l);

/* Requests of this key already made at time t (the server still counts
 * them): they enter the window log as arrivals at t. */
void cts_limiter_seed(struct cts_limiter *l, unsigned count, uint64_t t);

/*
 * 1 = a request may start now (the slot is taken), 0 = wait
 * cts_limiter_wait_ms() and ask again.  cold: the request may open a new
 * connection, so its arrival is known only by its reply: it holds a slot
 * until cts_limiter_release.  Always 1 while neither a fixed rate nor an
 * adaptive cap nor a pause applies.
 */
int cts_limiter_try_start(struct cts_limiter *l, int cold);
/* cts_limiter_try_start(l, 0). */
int cts_limiter_try_take(struct cts_limiter *l);
/* A cold request's reply (or failure) came: its slot is logged now. */
void cts_limiter_release(struct cts_limiter *l);

/* Milliseconds until a start can succeed; 0 = now; CTS_LIMITER_WAIT_REPLY
 * when only a release can free a slot. */
uint64_t cts_limiter_wait_ms(const struct cts_limiter *l);

/* Hold all starts for ms from now (Retry-After for the whole key).
 * Extends, never shortens. */
void cts_limiter_pause(struct cts_limiter *l, uint64_t ms);

/* A warm request started at start_ms got its reply now: its round trip
 * feeds the margin, and one slower than the fastest by more than the
 * margin moves its log entry to its later arrival bound (start + the
 * excess). */
void cts_limiter_note_reply(struct cts_limiter *l, uint64_t start_ms);
/* A reply that was not a throttling one: the key admitted a request. */
void cts_limiter_note_ok(struct cts_limiter *l);
/* A throttling reply to a request started at start_ms.  Returns 1 when it
 * lowered the pace, 0 when an earlier cut already answered it (the request
 * started before, or within one window after, the last cut). */
int cts_limiter_note_throttled(struct cts_limiter *l, uint64_t start_ms);

/* The pace now, starts/s; 0 = none (no fixed rate, not adapting). */
double cts_limiter_pace(const struct cts_limiter *l);

#endif /* CTS_LIMITER_H */
