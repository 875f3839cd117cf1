/*
 * cts_limiter.h — request-start rate limiter (--rate N: never more than N
 * requests start in any 1-second window, as the server counts arrivals).
 *
 * A sliding log: the times of the last N starts are kept in a ring, and a
 * new start is allowed only when the oldest of them is at least
 * window + margin ms old.  This never wastes a slot (N starts per
 * 1000+margin ms at full demand: 0.98 of the allowed rate with the default
 * 20 ms margin), allows an initial burst of N, and the margin absorbs
 * network jitter between our start and the server's arrival time.
 *
 * Pure: no timers and no I/O.  The clock is injected (production passes a
 * wrapper around uv_now; tests a fake clock), and the caller arms its own
 * single uv_timer for cts_limiter_wait_ms().  Retries must take a slot
 * too.
 */
#ifndef CTS_LIMITER_H
#define CTS_LIMITER_H

#include <stdint.h>

typedef uint64_t (*cts_clock_fn)(void *clock_arg);

#define CTS_LIMITER_MARGIN_MS 20

struct cts_limiter {
    double rate;        /* requests per second; <= 0 = unlimited */
    unsigned n;         /* starts allowed per window (ring size) */
    uint64_t window_ms; /* 1000, or 1000/rate for rates below 1 */
    uint64_t margin_ms;
    uint64_t *ring;        /* owned: start times, n entries */
    unsigned head;         /* index of the oldest entry once full */
    unsigned count;        /* entries used (<= n) */
    uint64_t paused_until; /* no starts before this time (throttle reply) */
    uint64_t starts;       /* total starts granted (statistics) */
    cts_clock_fn now_ms;
    void *clock_arg;
};

/*
 * Initialise l for `rate` requests/s (<= 0: off).  Rates >= 1 allow
 * floor(rate) starts per 1000 ms window; rates below 1 allow one start per
 * 1000/rate ms.  now_ms is borrowed (called with clock_arg); it must be
 * monotonic.  Returns 0 (allocation aborts on OOM, house policy).
 */
int cts_limiter_init(struct cts_limiter *l, double rate, cts_clock_fn now_ms,
                     void *clock_arg);
/* Change the jitter margin (default CTS_LIMITER_MARGIN_MS). */
void cts_limiter_set_margin(struct cts_limiter *l, uint64_t margin_ms);
/* Free the ring.  NULL-safe; l may be re-initialised afterwards. */
void cts_limiter_free(struct cts_limiter *l);

/* 1 = a request may start now (the slot is taken and recorded), 0 = wait
 * cts_limiter_wait_ms() and ask again.  Always 1 when the limiter is off. */
int cts_limiter_try_take(struct cts_limiter *l);

/* Milliseconds until try_take can succeed; 0 = now. */
uint64_t cts_limiter_wait_ms(const struct cts_limiter *l);

/* Hold all starts for ms from now (e.g. after a throttling reply or a
 * Retry-After that applies to the whole key).  Extends, never shortens. */
void cts_limiter_pause(struct cts_limiter *l, uint64_t ms);

#endif /* CTS_LIMITER_H */
