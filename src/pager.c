/* pager.c — a paged listing read through the send engine, page after page
 * (see cts_pager.h). */
#include "cts_pager.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_api.h"
#include "cts_url.h"

struct pager {
    struct cts_send_req req; /* the page being asked for; first member */
    struct cts_pager_params p;
    char *items_key; /* owned copies of the params' strings */
    char *url;       /* owned: the page's URL */
    struct cts_pager_result res;
};

static const char *v2_key(const struct cts_config *cfg)
{
    return cfg->api == CTS_API_V2 ? cfg->api_key : NULL;
}

/* obj.key as a string (borrowed), or NULL. */
static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

const char *cts_pager_next_link(enum cts_api api, const json_t *root)
{
    const char *link;

    if (api == CTS_API_V2)
        link =
            str_at(json_object_get(json_object_get(root, "meta"), "pagination"),
                   "next_link");
    else
        link = str_at(json_object_get(json_object_get(root, "_links"), "next"),
                      "href");
    return link != NULL && *link != '\0' ? link : NULL;
}

int cts_pager_next_url(enum cts_api api, const char *base_url,
                       const char *api_key, const json_t *root, char **url,
                       struct cts_error *err)
{
    const char *link = cts_pager_next_link(api, root);
    char *abs;
    int rc;

    *url = NULL;
    if (link == NULL)
        return 0;
    /* The token goes only to --base-url's origin. */
    rc = cts_url_follow(base_url, link, &abs, err);
    if (rc != 0)
        return rc;
    *url = cts_api_url(abs, NULL, api_key, NULL);
    free(abs);
    return 0;
}

/* ---- the listing ---- */

static void on_req_closed(uv_handle_t *h)
{
    free(h->data); /* the request is the struct's first member */
}

static void finish(struct pager *pg, enum cts_pager_end end)
{
    pg->res.end = end;
    pg->p.done(pg->p.arg, &pg->res);
    free(pg->items_key);
    free(pg->url);
    if (!cts_send_req_close(&pg->req, on_req_closed))
        free(pg);
}

static void stop_with(struct pager *pg, enum cts_pager_end end, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

static void stop_with(struct pager *pg, enum cts_pager_end end, const char *fmt,
                      ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(pg->res.msg, sizeof(pg->res.msg), fmt, ap);
    va_end(ap);
    finish(pg, end);
}

static int submit(struct pager *pg)
{
    cts_send_req_set(&pg->req, "GET", pg->url, NULL);
    return cts_send_submit(pg->p.send, &pg->req, pg->p.again);
}

/* A page's reply is OK: hand it over, then the next page or the end. */
static void take_page(struct pager *pg)
{
    const struct cts_http_req *h = &pg->req.http;
    const struct cts_config *cfg = pg->p.cfg;
    struct cts_error err = {0};
    json_error_t jerr;
    json_t *root, *items;
    char *next = NULL;
    int rc;

    root = h->resp.len > 0 ? json_loadb(h->resp.data, h->resp.len, 0, &jerr)
                           : NULL;
    items = json_object_get(root, pg->items_key);
    if (!json_is_array(items)) {
        json_decref(root);
        stop_with(pg, CTS_PAGER_FAILED,
                  "page %ld of the listing is not the expected JSON",
                  pg->res.pages + 1);
        return;
    }
    /* The link is checked before the page is used: a page that points
     * off the origin is a reply we cannot trust to be the listing. */
    rc = cts_pager_next_url(cfg->api, cfg->base_url, v2_key(cfg), root, &next,
                            &err);
    if (rc != 0) {
        json_decref(root);
        stop_with(pg, CTS_PAGER_FAILED, "%s", err.msg);
        return;
    }
    pg->res.pages++;
    pg->res.items += (long)json_array_size(items);
    rc = pg->p.page(pg->p.arg, root, items, pg->res.pages - 1);
    json_decref(root);
    if (rc != 0) {
        free(next);
        finish(pg, CTS_PAGER_CANCELLED);
        return;
    }
    if (next == NULL) {
        finish(pg, CTS_PAGER_DONE);
        return;
    }
    free(pg->url);
    pg->url = next;
    if (submit(pg) != 0)
        stop_with(pg, CTS_PAGER_STOPPED, "the run stopped");
}

static void on_page(struct cts_send_req *r, struct cts_send_result *res)
{
    struct pager *pg = r->data;
    const char *m = res->message;

    pg->res.status = res->exchanged ? r->http.status : 0;
    switch (res->end) {
    case CTS_SEND_REPLY: break;
    case CTS_SEND_NO_QUOTA:
        stop_with(pg, CTS_PAGER_QUOTA,
                  "the daily quota of %ld requests is used up",
                  pg->p.cfg->daily_quota);
        return;
    case CTS_SEND_GAVE_UP:
    case CTS_SEND_UNREACHABLE:
    case CTS_SEND_FAILED:
        stop_with(pg, CTS_PAGER_FAILED, "%s",
                  m != NULL ? m : cts_strerror(res->rc));
        return;
    default: stop_with(pg, CTS_PAGER_STOPPED, "the run stopped"); return;
    }
    switch (res->oc) {
    case CTS_OC_OK: take_page(pg); return;
    case CTS_OC_AUTH:
        stop_with(pg, CTS_PAGER_AUTH,
                  "the API refused the access token (401%s%s)",
                  res->reply_key != NULL ? " " : "",
                  res->reply_key != NULL ? res->reply_key : "");
        return;
    case CTS_OC_QUOTA:
        stop_with(pg, CTS_PAGER_QUOTA,
                  "the API says the daily quota is used up (%s)",
                  res->reply_key != NULL ? res->reply_key : "quota");
        return;
    default:
        stop_with(pg, CTS_PAGER_FAILED, "HTTP %ld%s%s", r->http.status,
                  m != NULL ? ": " : "", m != NULL ? m : "");
        return;
    }
}

int cts_pager_start(const struct cts_pager_params *p)
{
    struct pager *pg = cts_xcalloc(1, sizeof(*pg));
    const char *key = p->items_key;

    pg->p = *p;
    if (key == NULL)
        key = p->cfg->api == CTS_API_V2 ? "results" : "contacts";
    pg->items_key = cts_xstrdup(key);
    pg->url = cts_api_url(p->cfg->base_url, p->path, v2_key(p->cfg), p->query);
    /* The params' strings are the caller's: only the copies are kept. */
    pg->p.path = NULL;
    pg->p.query = NULL;
    pg->p.items_key = pg->items_key;
    cts_send_req_init(&pg->req);
    pg->req.done = on_page;
    pg->req.data = pg;
    if (submit(pg) != 0) {
        free(pg->items_key);
        free(pg->url);
        cts_send_req_close(&pg->req, NULL); /* no timer was ever started */
        free(pg);
        return UV_ECANCELED;
    }
    return 0;
}
