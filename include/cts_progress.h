/*
 * cts_progress.h — the progress line of an import on a terminal (the
 * caller decides whether stderr is one): rows done, rate, retries, ETA,
 * redrawn in place at most ten times a second.
 */
#ifndef CTS_PROGRESS_H
#define CTS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct cts_progress {
    FILE *fp;          /* borrowed, normally stderr */
    uint64_t last_ms;  /* time of the last drawn update */
    uint64_t start_ms; /* time the run started */
    int shown;         /* a line is on the screen and must be cleared */
};

/* Prepare p for drawing on fp (borrowed) from now_ms on. */
void cts_progress_init(struct cts_progress *p, FILE *fp, uint64_t now_ms);

/*
 * Redraw "rows done/total (pct) | N req/s | R retries | ETA m:ss" unless the
 * previous update was less than 100 ms ago (at most 10 per second).  total
 * is an estimate and may be 0 (unknown: no percentage, no ETA).  Returns 1
 * when it drew.
 */
int cts_progress_update(struct cts_progress *p, uint64_t now_ms, long done,
                        long total, long requests, long retries);

/* Erase the line if one is shown (used as the log hook; arg is the
 * struct cts_progress *). */
void cts_progress_clear(void *arg);

#endif /* CTS_PROGRESS_H */
