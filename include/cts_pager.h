/*
 * cts_pager.h — reading a paged listing of the API through the run's send
 * engine, one page after the other, so that every page counts against the
 * limiter, the arrival gate and the daily quota like any other request:
 *
 *   v3  GET {base}{path}?{query}            then each _links.next.href
 *   v2  GET {base}{path}?api_key=..&{query} then each
 *                                              meta.pagination.next_link
 *                                              (plus api_key)
 *
 * Each page's reply is parsed (JSON) and handed to the caller's page
 * callback with its items array (v3 "contacts", v2 "results", or the key
 * the caller names); the caller decides what to keep.  A next link is
 * followed only on the origin (scheme, host, port) of --base-url
 * (cts_url_follow): the token and the api_key are never sent elsewhere.
 * The listing ends when a page has no next link, or at the first failure;
 * one done callback says how.
 *
 * Loop thread only.
 */
#ifndef CTS_PAGER_H
#define CTS_PAGER_H

#include <stddef.h>

#include <jansson.h>

#include "cts_config.h"
#include "cts_send.h"
#include "cts_util.h"

/* How a listing ended. */
enum cts_pager_end {
    CTS_PAGER_DONE = 0, /* every page arrived (the last had no next link) */
    CTS_PAGER_FAILED,   /* a page could not be had: no reply, 5xx or
                           timeouts after the retries, another 4xx, a reply
                           that is not the listing, a next link off the
                           --base-url origin (exit 69 for a caller that
                           must stop) */
    CTS_PAGER_AUTH,     /* 401 that the run's one token refresh did not
                           cure (exit 77) */
    CTS_PAGER_QUOTA,    /* the daily quota is used up, locally or as the
                           API says (exit 75) */
    CTS_PAGER_STOPPED,  /* the engine stopped first (signal, error) */
    CTS_PAGER_CANCELLED /* the page callback said stop */
};

struct cts_pager_result {
    enum cts_pager_end end;
    long pages;    /* pages received and handed to the page callback */
    long items;    /* items on those pages */
    long status;   /* HTTP status of the last reply, 0 if none */
    char msg[768]; /* why, for every end but DONE and CANCELLED, without
                      a prefix ("HTTP 500: ...", "the API refused the
                      access token (401 unauthorized)"); "" otherwise */
};

/*
 * One page: root is the parsed reply, items its array of entries (both
 * borrowed for the call: json_incref what you keep); index counts pages
 * from 0.  Return 0 to go on to the next page, nonzero to stop the
 * listing (done then runs with CTS_PAGER_CANCELLED).
 */
typedef int (*cts_pager_page_cb)(void *arg, json_t *root, json_t *items,
                                 long index);

/* Runs exactly once, from the loop; r borrowed for the call. */
typedef void (*cts_pager_done_cb)(void *arg, const struct cts_pager_result *r);

struct cts_pager_params {
    const struct cts_config *cfg; /* borrowed: api, base_url, api_key,
                                     daily_quota (messages) */
    struct cts_send *send;        /* borrowed: the run's engine */
    const char *path;             /* "/contacts", "/lists/ID/contacts";
                                     read by cts_pager_start only */
    const char *query;            /* escaped query of the first page
                                     ("status=all&limit=500"), without
                                     api_key; may be NULL; read by
                                     cts_pager_start only */
    const char *items_key;        /* the reply's array; NULL = "contacts"
                                     (v3) or "results" (v2); copied */
    int again;                    /* submit the pages `again` (ahead of
                                     fresh requests) or fresh */
    cts_pager_page_cb page;       /* required */
    cts_pager_done_cb done;       /* required */
    void *arg;
};

/*
 * Start the listing: the first page is submitted to p->send.  Returns 0
 * (done runs exactly once, later, from the loop; everything the pager
 * allocates is freed by itself after done returns) or UV_ECANCELED when
 * the engine refuses requests (stopped or closing): then done never runs.
 */
int cts_pager_start(const struct cts_pager_params *p);

/* The next page's link as the API wrote it: v3 root._links.next.href, v2
 * root.meta.pagination.next_link; borrowed from root; NULL when absent or
 * empty (the last page). */
const char *cts_pager_next_link(enum cts_api api, const json_t *root);

/*
 * The next page's URL from a parsed page (cts_pager_next_link), resolved
 * against base_url and accepted only on its origin (cts_url_follow), plus
 * api_key (v2; NULL for v3).
 * Returns 0 with *url owned, or 0 with *url NULL when the page is the last
 * (no link, or an empty one); CTS_EHTTP with err naming the link (exit
 * code 69) and *url NULL when the link leaves the origin.
 */
int cts_pager_next_url(enum cts_api api, const char *base_url,
                       const char *api_key, const json_t *root, char **url,
                       struct cts_error *err);

#endif /* CTS_PAGER_H */
