/* optsync.c — the account's unsubscribed addresses, refreshed through the
 * send engine before any row is settled (see cts_optsync.h). */
#include "cts_optsync.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_api.h"
#include "cts_consent.h"

struct optsync {
    struct cts_send_req req; /* the page being asked for */
    struct cts_optsync_params p;
    struct cts_optouts *into; /* p.set, or a new set for a full fetch */
    char *url;                /* owned: the page's URL */
    int full;
    struct cts_optsync_result res;
};

static const char *v2_key(const struct optsync *os)
{
    return os->p.cfg->api == CTS_API_V2 ? os->p.cfg->api_key : NULL;
}

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

static void on_req_closed(uv_handle_t *h)
{
    free(h->data); /* the request is the struct's first member */
}

static void finish(struct optsync *os, enum cts_optsync_end end)
{
    os->res.end = end;
    os->res.count = cts_optouts_count(os->p.set);
    os->p.done(os->p.arg, &os->res);
    if (os->into != os->p.set)
        cts_optouts_free(os->into);
    free(os->url);
    if (!cts_send_req_close(&os->req, on_req_closed))
        free(os);
}

static void stop_with(struct optsync *os, enum cts_optsync_end end,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stop_with(struct optsync *os, enum cts_optsync_end end,
                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(os->res.msg, sizeof(os->res.msg), fmt, ap);
    va_end(ap);
    finish(os, end);
}

/* The refresh could not finish: go on with an earlier set, or not at all
 * (none: NONE or LATER, whether the API answered). */
static void failed(struct optsync *os, const char *why,
                   enum cts_optsync_end none)
{
    long last = cts_optouts_last_fetch(os->p.set);
    char when[32];

    if (last > 0) {
        cts_log_warn("cannot refresh the account's unsubscribed addresses "
                     "(%s): using the %zu listed on %s",
                     why, cts_optouts_count(os->p.set),
                     cts_consent_format_time(last, when, sizeof(when)));
        stop_with(os, CTS_OPTSYNC_STALE, "%s", why);
        return;
    }
    stop_with(os, none,
              "not sent: cannot list the account's unsubscribed contacts "
              "(%s), and nothing is sent without knowing who unsubscribed; "
              "run again later",
              why);
}

static void submit(struct optsync *os)
{
    cts_send_req_set(&os->req, "GET", os->url, NULL);
    if (cts_send_submit(os->p.send, &os->req, 1) != 0)
        stop_with(os, CTS_OPTSYNC_STOPPED, "not sent: the run stopped");
}

/* Every page arrived. */
static void complete(struct optsync *os)
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
                 cts_optouts_count(old), os->res.pages,
                 os->res.pages == 1 ? "" : "s");
    finish(os, CTS_OPTSYNC_FRESH);
}

/* A page's reply is OK: add its entries, then the next page or the end. */
static void take_page(struct optsync *os)
{
    const struct cts_http_req *h = &os->req.http;
    const struct cts_config *cfg = os->p.cfg;
    char *next = NULL, *url, why[640];
    struct cts_error err = {0};

    if (cts_consent_parse_optouts(cfg->api, h->resp.data, h->resp.len,
                                  cts_optouts_add_cb, os->into, &next,
                                  NULL) != 0) {
        snprintf(why, sizeof(why),
                 "page %ld of the listing is not the "
                 "expected JSON",
                 os->res.pages + 1);
        failed(os, why, CTS_OPTSYNC_NONE);
        return;
    }
    os->res.pages++;
    if (next == NULL) {
        complete(os);
        return;
    }
    /* The token goes only to --base-url's origin (cts_url_follow). */
    if (cts_consent_next_url(cfg->base_url, next, v2_key(os), &url, &err) !=
        0) {
        free(next);
        failed(os, err.msg, CTS_OPTSYNC_NONE);
        return;
    }
    free(next);
    free(os->url);
    os->url = url;
    submit(os);
}

static void on_page(struct cts_send_req *r, struct cts_send_result *res)
{
    struct optsync *os = r->data;
    char why[640];

    switch (res->end) {
    case CTS_SEND_REPLY: break;
    case CTS_SEND_NO_QUOTA:
        stop_with(os, CTS_OPTSYNC_QUOTA,
                  "not sent: the daily quota of %ld requests is used up; run "
                  "again after 00:00 UTC",
                  os->p.cfg->daily_quota);
        return;
    case CTS_SEND_GAVE_UP:
        snprintf(why, sizeof(why), "gave up after %d attempt%s: %s",
                 r->tries, r->tries == 1 ? "" : "s",
                 res->message != NULL ? res->message : "?");
        failed(os, why, CTS_OPTSYNC_LATER);
        return;
    case CTS_SEND_STALLED:
        failed(os,
               "throttled for 10 minutes without progress; another program "
               "may share the API key",
               CTS_OPTSYNC_LATER);
        return;
    case CTS_SEND_UNREACHABLE:
    case CTS_SEND_FAILED:
        snprintf(why, sizeof(why), "%s",
                 res->message != NULL ? res->message : cts_strerror(res->rc));
        failed(os, why, CTS_OPTSYNC_NONE);
        return;
    default:
        stop_with(os, CTS_OPTSYNC_STOPPED, "not sent: the run stopped");
        return;
    }
    switch (res->oc) {
    case CTS_OC_OK: take_page(os); return;
    case CTS_OC_AUTH:
        stop_with(os, CTS_OPTSYNC_AUTH,
                  "not sent: the API refused the access token (401%s%s); get "
                  "a new one with `ctct-sync auth`",
                  res->reply_key != NULL ? " " : "",
                  res->reply_key != NULL ? res->reply_key : "");
        return;
    case CTS_OC_QUOTA:
        stop_with(os, CTS_OPTSYNC_QUOTA,
                  "not sent: the API says the daily quota is used up (%s); "
                  "run again after 00:00 UTC",
                  res->reply_key != NULL ? res->reply_key : "quota");
        return;
    default:
        snprintf(why, sizeof(why), "HTTP %ld%s%s", r->http.status,
                 res->message != NULL ? ": " : "",
                 res->message != NULL ? res->message : "");
        failed(os, why, CTS_OPTSYNC_NONE);
        return;
    }
}

void cts_optsync_start(const struct cts_optsync_params *p)
{
    struct optsync *os = cts_xcalloc(1, sizeof(*os));
    struct cts_error err = {0};
    char buf[32], *q;
    const char *since = NULL;

    os->p = *p;
    cts_send_req_init(&os->req);
    os->req.done = on_page;
    os->req.data = os;
    if (p->dir != NULL && cts_optouts_load(p->set, p->dir, &err) != 0)
        cts_log_warn("%s (listing every unsubscribed address again)", err.msg);
    since = cts_optouts_since(p->set, p->now, buf, sizeof(buf));
    os->full = since == NULL;
    os->into = os->full ? cts_optouts_new() : p->set;
    q = cts_consent_optouts_query(p->cfg->api, since);
    os->url = cts_api_url(p->cfg->base_url, "/contacts", v2_key(os), q);
    free(q);
    submit(os);
}
