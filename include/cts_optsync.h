/*
 * cts_optsync.h — knowing the account's unsubscribed addresses before the
 * first row is settled: load the set saved in the state directory, then
 * refresh it through the send engine (so every listing page counts against
 * the limiter, the arrival gate and the quota like any other request).
 *
 *   v3  GET {base}/contacts?status=unsubscribed&limit=500[&updated_after=]
 *       then each _links.next.href
 *   v2  GET {base}/contacts?status=OPTOUT&limit=500[&modified_since=]
 *       &api_key= then each meta.pagination.next_link
 *
 * One page after the other.  A full fetch (cts_optouts_since says when)
 * fills a new set and replaces the old one only after the last page; a
 * refresh adds to the set in place.  A next link must stay on the origin
 * (scheme, host, port) of --base-url: the token is never sent elsewhere.
 *
 * When the refresh fails (no reply, 5xx after the retries, a reply that is
 * not the listing, a foreign link): with a set an earlier run fetched, a
 * warning and the run goes on with it; with none, the run must send
 * nothing (CTS_OPTSYNC_NONE: the caller defers every row, exit 69; or
 * CTS_OPTSYNC_LATER when the API did answer, with transient errors or
 * throttling: exit 75) — never write to people without knowing who
 * unsubscribed.
 *
 * Loop thread only.
 */
#ifndef CTS_OPTSYNC_H
#define CTS_OPTSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "cts_config.h"
#include "cts_optouts.h"
#include "cts_send.h"

/* How the refresh ended. */
enum cts_optsync_end {
    CTS_OPTSYNC_FRESH = 0, /* every page arrived: the set is current */
    CTS_OPTSYNC_STALE,     /* the refresh failed (warned): the set an
                              earlier run saved is used */
    CTS_OPTSYNC_NONE,      /* the refresh failed and there is no earlier
                              set: send nothing (exit 69) */
    CTS_OPTSYNC_AUTH,      /* 401 the run's one token refresh did not
                              cure: stop (exit 77) */
    CTS_OPTSYNC_QUOTA,     /* the daily quota is used up: stop (exit 75) */
    CTS_OPTSYNC_STOPPED,   /* the engine stopped first (signal, error) */
    CTS_OPTSYNC_LATER      /* as NONE, but the API answered: transient
                              failures outlasted the retries, or the key
                              stayed throttled (exit 75) */
};

struct cts_optsync_result {
    enum cts_optsync_end end;
    long pages;    /* listing pages received */
    size_t count;  /* addresses in the set now */
    char msg[768]; /* why, for every end but FRESH; "" otherwise */
};

typedef void (*cts_optsync_done_cb)(void *arg,
                                    const struct cts_optsync_result *r);

struct cts_optsync_params {
    const struct cts_config *cfg; /* borrowed: api, base_url, api_key */
    struct cts_send *send;        /* borrowed: the run's engine */
    struct cts_optouts *set;      /* borrowed: loaded from dir, then
                                     refreshed in place */
    const char *dir;              /* the per key+account state directory
                                     (cts_state_path), borrowed; NULL =
                                     nothing saved */
    int save;                     /* write dir/optouts after the refresh
                                     (not in a dry run) */
    long now;                     /* Unix seconds: when the fetch starts */
    cts_optsync_done_cb done;     /* required; runs exactly once */
    void *arg;
};

/*
 * Load dir/optouts into p->set (a damaged file is warned about and the
 * fetch is a full one) and start the refresh.  done runs once, from the
 * loop, or from this call when the engine refuses the first request
 * (CTS_OPTSYNC_STOPPED).  Everything it allocates is freed by itself
 * after done.
 */
void cts_optsync_start(const struct cts_optsync_params *p);

/*
 * The row decision: is the address with this key (cts_state_email_key)
 * unsubscribed in the account?  1 with msg = the row's report message
 * ("unsubscribed since 2024-03-05; left alone"; for a row that asks to
 * unsubscribe, opt_out != 0: "already unsubscribed since 2024-03-05; left
 * alone"), else 0.  set may be NULL (0).
 */
int cts_optsync_row(const struct cts_optouts *set, uint64_t key, int opt_out,
                    char *msg, size_t n);

/* Write set to dir/optouts; a failure is a warning (the set is a cache:
 * the next run fetches it whole).  Returns 0 or the negative code. */
int cts_optsync_save(const struct cts_optouts *set, const char *dir);

#endif /* CTS_OPTSYNC_H */
