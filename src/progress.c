/* progress.c — the progress line on a terminal. */
#include "cts_progress.h"

#include <stdio.h>
#include <string.h>

void cts_progress_init(struct cts_progress *p, FILE *fp, uint64_t now_ms)
{
    memset(p, 0, sizeof(*p));
    p->fp = fp;
    p->start_ms = now_ms;
}

int cts_progress_update(struct cts_progress *p, uint64_t now_ms, long done,
                        long total, long requests, long retries)
{
    double secs;
    char eta[32] = "";
    char pct[16] = "";
    char tot[32] = "";

    /* At most ten redraws a second: enough to look live, cheap on a slow
     * terminal. */
    if (p->shown && now_ms - p->last_ms < 100)
        return 0;
    p->last_ms = now_ms;
    secs = (double)(now_ms - p->start_ms) / 1000.0;
    if (total > 0) {
        if (done > total)
            total = done;
        snprintf(tot, sizeof(tot), "/%ld", total);
        snprintf(pct, sizeof(pct), " (%d%%)", (int)(100.0 * done / total));
        if (done > 0 && secs > 0.5) {
            long left = (long)(secs * (double)(total - done) / done + 0.5);
            snprintf(eta, sizeof(eta), " | ETA %ld:%02ld", left / 60,
                     left % 60);
        }
    }
    /* \r returns to the start, \033[K erases what a longer line left. */
    fprintf(p->fp, "\r\033[Krows %ld%s%s | %.1f req/s | %ld retries%s", done,
            tot, pct, secs > 0 ? requests / secs : 0.0, retries, eta);
    fflush(p->fp);
    p->shown = 1;
    return 1;
}

void cts_progress_clear(void *arg)
{
    struct cts_progress *p = arg;

    if (p == NULL || !p->shown)
        return;
    fputs("\r\033[K", p->fp);
    fflush(p->fp);
    p->shown = 0;
}
