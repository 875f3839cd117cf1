/* optsync.c — the account's unsubscribed addresses, refreshed through the
 * send engine before any row is settled (see cts_optsync.h). */
#include "cts_optsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_api.h"
#include "cts_consent.h"
#include "cts_pager.h"

/* ---- the row decision and saving ---- */

int cts_optsync_row(const struct cts_optouts *set, uint64_t key, int opt_out,
                    char *msg, size_t n)
{
    char iso[32], m[128];
    long since = 0;

    if (set == NULL || !cts_optouts_find_key(set, key, &since))
        return 0;
    cts_consent_optout_message(cts_consent_format_time(since, iso, sizeof(iso)),
                               m, sizeof(m));
    snprintf(msg, n, "%s%s", opt_out ? "already " : "", m);
    return 1;
}

int cts_optsync_save(const struct cts_optouts *set, const char *dir)
{
    struct cts_error err = {0};
    int rc = cts_optouts_save(set, dir, &err);

    if (rc != 0)
        cts_log_warn("cannot save the unsubscribed addresses (the next run "
                     "lists them all again): %s",
                     err.msg);
    return rc;
}

/* ---- the listing ---- */

struct optsync {
    struct cts_optsync_params p;
    struct cts_optouts *into; /* p.set, or a new set for a full fetch */
    int full;
};

static void finish(struct optsync *os, const struct cts_optsync_result *res)
{
    struct cts_optsync_result r = *res;

    r.count = cts_optouts_count(os->p.set);
    os->p.done(os->p.arg, &r);
    if (os->into != os->p.set)
        cts_optouts_free(os->into);
    free(os);
}

/* The refresh could not finish: go on with an earlier set, or not at all. */
static void failed(struct optsync *os, struct cts_optsync_result *r,
                   const char *why)
{
    long last = cts_optouts_last_fetch(os->p.set);
    char when[32];

    if (last > 0) {
        cts_log_warn("cannot refresh the account's unsubscribed addresses "
                     "(%s): using the %zu listed on %s",
                     why, cts_optouts_count(os->p.set),
                     cts_consent_format_time(last, when, sizeof(when)));
        r->end = CTS_OPTSYNC_STALE;
        snprintf(r->msg, sizeof(r->msg), "%s", why);
        return;
    }
    r->end = CTS_OPTSYNC_NONE;
    snprintf(r->msg, sizeof(r->msg),
             "not sent: cannot list the account's unsubscribed contacts "
             "(%.600s), and nothing is sent without knowing who unsubscribed; "
             "run again later",
             why);
}

/* Every page arrived. */
static void complete(struct optsync *os, long pages)
{
    struct cts_optouts *old = os->p.set;

    if (os->full) {
        /* The new set replaces the old only now. */
        cts_optouts_swap(old, os->into);
    }
    cts_optouts_fetched(old, os->p.now, os->full);
    if (os->p.save && os->p.dir != NULL)
        cts_optsync_save(old, os->p.dir);
    cts_log_info("%zu addresses in the account are unsubscribed (refreshed: "
                 "%ld page%s)",
                 cts_optouts_count(old), pages, pages == 1 ? "" : "s");
}

/* A page of the listing: add its unsubscribed entries. */
static int on_page(void *arg, json_t *root, json_t *items, long index)
{
    struct optsync *os = arg;

    (void)root;
    (void)index;
    cts_consent_take_optouts(os->p.cfg->api, items, cts_optouts_add_cb,
                             os->into);
    return 0;
}

static void on_listed(void *arg, const struct cts_pager_result *pr)
{
    struct optsync *os = arg;
    struct cts_optsync_result r;

    memset(&r, 0, sizeof(r));
    r.pages = pr->pages;
    switch (pr->end) {
    case CTS_PAGER_DONE:
        complete(os, pr->pages);
        r.end = CTS_OPTSYNC_FRESH;
        break;
    case CTS_PAGER_FAILED: failed(os, &r, pr->msg); break;
    case CTS_PAGER_AUTH:
        r.end = CTS_OPTSYNC_AUTH;
        snprintf(r.msg, sizeof(r.msg),
                 "not sent: %.600s; get a new one with `ctct-sync auth`",
                 pr->msg);
        break;
    case CTS_PAGER_QUOTA:
        r.end = CTS_OPTSYNC_QUOTA;
        snprintf(r.msg, sizeof(r.msg),
                 "not sent: %.600s; run again after 00:00 UTC", pr->msg);
        break;
    default:
        r.end = CTS_OPTSYNC_STOPPED;
        snprintf(r.msg, sizeof(r.msg), "not sent: the run stopped");
        break;
    }
    finish(os, &r);
}

void cts_optsync_start(const struct cts_optsync_params *p)
{
    struct optsync *os = cts_xcalloc(1, sizeof(*os));
    struct cts_error err = {0};
    struct cts_optsync_result r;
    char buf[32], *q;
    const char *since = NULL;
    int rc;

    os->p = *p;
    if (p->dir != NULL && cts_optouts_load(p->set, p->dir, &err) != 0)
        cts_log_warn("%s (listing every unsubscribed address again)", err.msg);
    since = cts_optouts_since(p->set, p->now, buf, sizeof(buf));
    os->full = since == NULL;
    os->into = os->full ? cts_optouts_new() : p->set;
    q = cts_consent_optouts_query(p->cfg->api, since);
    rc = cts_pager_start(&(struct cts_pager_params){.cfg = p->cfg,
                                                    .send = p->send,
                                                    .path = "/contacts",
                                                    .query = q,
                                                    .again = 1,
                                                    .page = on_page,
                                                    .done = on_listed,
                                                    .arg = os});
    free(q);
    if (rc != 0) {
        memset(&r, 0, sizeof(r));
        r.end = CTS_OPTSYNC_STOPPED;
        snprintf(r.msg, sizeof(r.msg), "not sent: the run stopped");
        finish(os, &r);
    }
}
