/* mirror.c — `import --mirror`: the listing, the plan, the guard, the
 * removals and their journal (see cts_mirror.h). */
#include "cts_mirror.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_api.h"
#include "cts_email.h"
#include "cts_pager.h"
#include "cts_report.h"
#include "cts_state.h"

#define CHUNK       500              /* members per removal request */
#define MAX_POLL_MS (30 * 60 * 1000) /* then: deferred, next run */
#define DEFAULT_PCT 10.0             /* --max-removals default */
#define PLAN_SHOWN  20               /* dry run: emails shown per list */

/* A member of a list that the input does not have. */
struct member {
    char *email; /* normalised, owned */
    char *id;    /* contact id, owned; may be NULL (v2 removes by email) */
    uint64_t key;
    int taken; /* handled by the journal of a killed run */
};

struct mlist {
    const char *id; /* cfg->lists[i] */
    size_t members; /* listed, with an email */
    size_t skipped; /* listed without a usable email: left alone */
    struct member *absent;
    size_t n, cap;
};

/* One removal request (or a killed run's removal, polled). */
struct removal {
    size_t list;
    struct member *m; /* borrowed from the list, or owned when adopted */
    size_t n;
    int adopted;       /* a killed run's activity: m owned */
    char *activity_id; /* owned */
    uint32_t serial;
};

enum phase { PH_IDLE = 0, PH_LISTING, PH_REMOVING, PH_ENDING, PH_OVER };

struct cts_mirror {
    uv_loop_t *loop;
    struct cts_config *cfg;
    struct cts_send *send;
    struct cts_state *st;
    struct cts_report *report;
    cts_mirror_done_cb done;
    void *arg;

    uv_timer_t timer; /* polls, and delivering done from the loop */
    struct cts_send_req req;
    int req_busy, stopped, closing, closes;
    enum phase phase;
    uint64_t seq;

    uint64_t *noted; /* keys of invalid rows' valid emails, sorted late */
    size_t nnoted, capnoted;
    int noted_sorted;

    struct mlist *lists;
    size_t nlists, cur;
    struct removal *rm;
    size_t nrm, currm;

    /* the removal in progress */
    char *body, *url;
    uint64_t poll_since;
    int poll_errors, post_http, attempts;

    /* the end */
    int rc, exit_code;
    char msg[2048];
};

static void next_removal(struct cts_mirror *m);

/* ---- pure parts ---- */

int cts_mirror_refused(const struct cts_config *cfg, size_t members,
                       size_t removals, double *limit)
{
    double lim;

    if (cfg->max_removals_kind == CTS_CAP_COUNT)
        lim = cfg->max_removals;
    else
        lim = (double)members *
              (cfg->max_removals_kind == CTS_CAP_PERCENT ? cfg->max_removals
                                                         : DEFAULT_PCT) /
              100.0;
    if (limit != NULL)
        *limit = lim;
    if (removals == 0)
        return 0;
    /* An empty or truncated input never empties a list. */
    return (double)removals > lim || removals >= members;
}

int cts_mirror_member(enum cts_api api, const json_t *item, char **email,
                      char **id)
{
    const char *raw, *why;
    const json_t *v;
    char buf[32];

    *email = NULL;
    *id = NULL;
    if (api == CTS_API_V3) {
        raw = json_string_value(
            json_object_get(json_object_get(item, "email_address"), "address"));
        v = json_object_get(item, "contact_id");
    } else {
        const json_t *e0 =
            json_array_get(json_object_get(item, "email_addresses"), 0);
        raw = json_string_value(json_object_get(e0, "email_address"));
        v = json_object_get(item, "id");
    }
    if (raw == NULL || cts_email_normalize(raw, email, &why) != 0)
        return CTS_EDATA;
    if (json_is_string(v) && json_string_length(v) > 0) {
        *id = cts_xstrdup(json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        *id = cts_xstrdup(buf);
    }
    return 0;
}

char *cts_mirror_removal_body(enum cts_api api, const char *list_id,
                              char *const *members, size_t n)
{
    json_t *o, *arr = json_array();
    char *s;
    size_t i;

    for (i = 0; i < n; i++) {
        if (api == CTS_API_V3)
            json_array_append_new(arr, json_string(members[i]));
        else
            json_array_append_new(
                arr, json_pack("{s:[s]}", "email_addresses", members[i]));
    }
    if (api == CTS_API_V3)
        o = json_pack("{s:{s:o},s:[s]}", "source", "contact_ids", arr,
                      "list_ids", list_id);
    else
        o = json_pack("{s:o,s:[s],s:[s]}", "import_data", arr, "lists", list_id,
                      "column_names", "EMAIL");
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        abort();
    return s;
}

/* ---- life ---- */

struct cts_mirror *cts_mirror_new(uv_loop_t *loop, struct cts_config *cfg,
                                  struct cts_send *send, struct cts_state *st,
                                  struct cts_report *report,
                                  cts_mirror_done_cb done, void *arg)
{
    struct cts_mirror *m;

    if (!cfg->mirror)
        return NULL;
    m = cts_xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->cfg = cfg;
    m->send = send;
    m->st = st;
    m->report = report;
    m->done = done;
    m->arg = arg;
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    cts_send_req_init(&m->req);
    m->req.data = m;
    return m;
}

static void free_members(struct member *a, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(a[i].email);
        free(a[i].id);
    }
    free(a);
}

static void mirror_free(struct cts_mirror *m)
{
    size_t i;

    for (i = 0; i < m->nrm; i++) {
        if (m->rm[i].adopted)
            free_members(m->rm[i].m, m->rm[i].n);
        free(m->rm[i].activity_id);
    }
    for (i = 0; i < m->nlists; i++)
        free_members(m->lists[i].absent, m->lists[i].n);
    free(m->rm);
    free(m->lists);
    free(m->noted);
    free(m->body);
    free(m->url);
    free(m);
}

static void on_closed(uv_handle_t *h)
{
    struct cts_mirror *m = h->data;

    if (--m->closes == 0)
        mirror_free(m);
}

void cts_mirror_close(struct cts_mirror *m)
{
    if (m == NULL || m->closing)
        return;
    m->closing = 1;
    m->closes = 1;
    uv_close((uv_handle_t *)&m->timer, on_closed);
    /* The request's own backoff timer, if it ever had one, is freed
     * the same way; its data must be m for on_closed. */
    if (cts_send_req_close(&m->req, on_closed)) {
        m->req.timer.data = m;
        m->closes++;
    }
}

void cts_mirror_note(struct cts_mirror *m, const char *email)
{
    char *norm = NULL;
    const char *why;

    if (m == NULL || email == NULL ||
        cts_email_normalize(email, &norm, &why) != 0)
        return;
    if (m->nnoted == m->capnoted) {
        m->capnoted = m->capnoted ? m->capnoted * 2 : 64;
        m->noted = cts_xrealloc(m->noted, m->capnoted * sizeof(*m->noted));
    }
    m->noted[m->nnoted++] = cts_state_email_key(norm);
    m->noted_sorted = 0;
    free(norm);
}

/* ---- the end ---- */

static void on_done_timer(uv_timer_t *t)
{
    struct cts_mirror *m = t->data;

    m->phase = PH_OVER;
    m->done(m->arg, m->rc, m->exit_code, m->msg);
}

/* The phase is over: done runs from the loop, never from inside a send
 * callback or cts_mirror_start. */
static void finish(struct cts_mirror *m, int rc, int exit_code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void finish(struct cts_mirror *m, int rc, int exit_code, const char *fmt,
                   ...)
{
    va_list ap;

    if (m->phase >= PH_ENDING)
        return;
    m->phase = PH_ENDING;
    m->rc = rc;
    m->exit_code = exit_code;
    va_start(ap, fmt);
    vsnprintf(m->msg, sizeof(m->msg), fmt, ap);
    va_end(ap);
    uv_timer_stop(&m->timer);
    uv_timer_start(&m->timer, on_done_timer, 0, 0);
}

/* ---- report lines ---- */

static int put_line(struct cts_mirror *m, const struct member *mb,
                    enum cts_status status, int http, int attempts,
                    const char *error_key, const char *msg)
{
    struct cts_result res;
    int rc;

    memset(&res, 0, sizeof(res));
    res.email = mb->email;
    res.status = status;
    res.http_status = http;
    res.attempts = attempts;
    res.contact_id = mb->id;
    res.error_key = error_key;
    res.message = msg;
    rc = cts_report_put(m->report, m->seq++, &res);
    if (rc != 0)
        finish(m, rc, CTS_EX_CANTCREAT, "cannot write the report: %s",
               cts_strerror(rc));
    return rc;
}

/* ---- the input ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int in_input(struct cts_mirror *m, uint64_t key)
{
    if (cts_state_in_run(m->st, key))
        return 1;
    if (m->nnoted == 0)
        return 0;
    if (!m->noted_sorted) {
        qsort(m->noted, m->nnoted, sizeof(*m->noted), cmp_u64);
        m->noted_sorted = 1;
    }
    return bsearch(&key, m->noted, m->nnoted, sizeof(*m->noted), cmp_u64) !=
           NULL;
}

/* ---- the listing ---- */

static void list_next(struct cts_mirror *m);
static void plan(struct cts_mirror *m);

static int on_page(void *arg, json_t *root, json_t *items, long index)
{
    struct cts_mirror *m = arg;
    struct mlist *l = &m->lists[m->cur];
    size_t i;
    json_t *it;

    (void)root;
    (void)index;
    json_array_foreach(items, i, it)
    {
        char *email, *id;
        uint64_t key;

        if (cts_mirror_member(m->cfg->api, it, &email, &id) != 0) {
            l->skipped++;
            continue;
        }
        l->members++;
        key = cts_state_email_key(email);
        if (in_input(m, key) || (m->cfg->api == CTS_API_V3 && id == NULL)) {
            free(email);
            free(id);
            continue;
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->absent = cts_xrealloc(l->absent, l->cap * sizeof(*l->absent));
        }
        l->absent[l->n].email = email;
        l->absent[l->n].id = id;
        l->absent[l->n].key = key;
        l->absent[l->n].taken = 0;
        l->n++;
    }
    return 0;
}

static void on_list_done(void *arg, const struct cts_pager_result *r)
{
    struct cts_mirror *m = arg;
    const char *id = m->lists[m->cur].id;

    if (r->end == CTS_PAGER_STOPPED || r->end == CTS_PAGER_CANCELLED) {
        /* The run is stopping: its own exit code says why. */
        finish(m, 0, 0, "--mirror: stopped while listing the members");
        return;
    }
    if (r->end != CTS_PAGER_DONE) {
        int quota = r->end == CTS_PAGER_QUOTA, auth = r->end == CTS_PAGER_AUTH;
        int later = r->end == CTS_PAGER_LATER;

        finish(m,
               auth    ? CTS_EAUTH
               : quota ? CTS_EQUOTA
                       : CTS_EHTTP,
               auth               ? CTS_EX_NOPERM
               : (quota || later) ? CTS_EX_TEMPFAIL
                                  : CTS_EX_UNAVAILABLE,
               "--mirror: cannot list the members of list %s (%s); nothing "
               "was removed%s",
               id, r->msg,
               quota   ? "; run again after 00:00 UTC"
               : later ? "; run again later"
                       : "");
        return;
    }
    if (m->lists[m->cur].skipped > 0)
        cts_log_info("list %s: %zu members without a usable email address "
                     "are left alone",
                     id, m->lists[m->cur].skipped);
    m->cur++;
    list_next(m);
}

static void list_next(struct cts_mirror *m)
{
    struct cts_pager_params pp;
    char *esc, *path, *query;
    int rc;

    if (m->stopped) {
        finish(m, 0, 0, "--mirror: stopped");
        return;
    }
    if (m->cur == m->nlists) {
        plan(m);
        return;
    }
    esc = cts_url_escape(m->lists[m->cur].id);
    if (m->cfg->api == CTS_API_V3) {
        path = cts_xstrdup("/contacts");
        query = cts_xasprintf("lists=%s&status=all&limit=500", esc);
    } else {
        path = cts_xasprintf("/lists/%s/contacts", esc);
        query = cts_xstrdup("limit=500");
    }
    memset(&pp, 0, sizeof(pp));
    pp.cfg = m->cfg;
    pp.send = m->send;
    pp.path = path;
    pp.query = query;
    pp.again = 1;
    pp.page = on_page;
    pp.done = on_list_done;
    pp.arg = m;
    rc = cts_pager_start(&pp);
    free(esc);
    free(path);
    free(query);
    if (rc != 0)
        finish(m, 0, 0, "--mirror: stopped");
}

/* ---- the plan and the guard ---- */

static int cmp_key(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int cmp_email(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    return strcmp(x->email, y->email);
}

static const char *cap_text(const struct cts_config *cfg, char *buf, size_t n)
{
    if (cfg->max_removals_kind == CTS_CAP_COUNT)
        snprintf(buf, n, "%.0f", cfg->max_removals);
    else
        snprintf(buf, n, "%g%%",
                 cfg->max_removals_kind == CTS_CAP_PERCENT ? cfg->max_removals
                                                           : DEFAULT_PCT);
    return buf;
}

/* The most members the cap lets a list of `members` lose. */
static size_t allowed(double lim, size_t members)
{
    size_t a = lim <= 0 ? 0 : (size_t)lim;

    return members > 0 && a >= members ? members - 1 : a;
}

/* The guard's verdict over every list: 0, or 1 with msg explaining. */
static int guard(struct cts_mirror *m, char *msg, size_t n)
{
    struct cts_buf b;
    char cap[32];
    size_t i, most = 0, pct = 0;
    int refused = 0;

    cts_buf_init(&b, 0);
    cap_text(m->cfg, cap, sizeof(cap));
    for (i = 0; i < m->nlists; i++) {
        const struct mlist *l = &m->lists[i];
        double lim;

        if (!cts_mirror_refused(m->cfg, l->members, l->n, &lim))
            continue;
        refused = 1;
        if (l->n >= l->members) {
            cts_buf_appendf(&b,
                            "; list %s would lose all of its %zu members (an "
                            "empty or truncated input never empties a list)",
                            l->id, l->members);
            continue;
        }
        cts_buf_appendf(&b,
                        "; list %s would lose %zu of its %zu members "
                        "(%.1f%%), more than --max-removals %s allows (%zu)",
                        l->id, l->n, l->members,
                        100.0 * (double)l->n / (double)l->members, cap,
                        allowed(lim, l->members));
        if (l->n > most)
            most = l->n;
        if ((100 * l->n + l->members - 1) / l->members > pct)
            pct = (100 * l->n + l->members - 1) / l->members;
    }
    if (refused && most > 0)
        snprintf(msg, n,
                 "--mirror refused, no list was changed%s. If the input "
                 "really is complete, raise the cap: --max-removals %zu (or "
                 "%zu%%)",
                 b.data, most, pct);
    else if (refused)
        snprintf(msg, n,
                 "--mirror refused, no list was changed%s. Check the "
                 "input",
                 b.data);
    cts_buf_free(&b);
    return refused;
}

/* Dry run: the plan on stderr and in the report. */
static void show_plan(struct cts_mirror *m)
{
    char msg[300], cap[32];
    size_t i, k;

    cap_text(m->cfg, cap, sizeof(cap));
    for (i = 0; i < m->nlists; i++) {
        struct mlist *l = &m->lists[i];
        double lim;

        cts_mirror_refused(m->cfg, l->members, l->n, &lim);
        cts_log_info("mirror plan: list %s: %zu members, %zu not in the "
                     "input would be removed (--max-removals %s allows %zu)",
                     l->id, l->members, l->n, cap, allowed(lim, l->members));
        snprintf(msg, sizeof(msg), "would remove from list %s", l->id);
        for (k = 0; k < l->n; k++) {
            if (k < PLAN_SHOWN)
                cts_log_info("  would remove %s", l->absent[k].email);
            if (put_line(m, &l->absent[k], CTS_ST_DRY_RUN, 0, 0, NULL, msg) !=
                0)
                return;
        }
        if (l->n > PLAN_SHOWN)
            cts_log_info("  ... and %zu more (see the report)",
                         l->n - PLAN_SHOWN);
    }
}

static struct mlist *list_by_id(struct cts_mirror *m, const char *id)
{
    size_t i;

    for (i = 0; i < m->nlists; i++)
        if (strcmp(m->lists[i].id, id) == 0)
            return &m->lists[i];
    return NULL;
}

static struct removal *add_removal(struct cts_mirror *m)
{
    m->rm = cts_xrealloc(m->rm, (m->nrm + 1) * sizeof(*m->rm));
    memset(&m->rm[m->nrm], 0, sizeof(*m->rm));
    return &m->rm[m->nrm++];
}

struct gone {
    size_t list;
    const struct cts_state_removal *r;
};

static int cmp_gone(const void *a, const void *b)
{
    const struct gone *x = a, *y = b;
    int c = x->list < y->list ? -1 : x->list > y->list;
    return c != 0 ? c : strcmp(x->r->email, y->r->email);
}

/*
 * What a killed run journalled: members it took off (no longer on the
 * list, not in the input) are reported once; a removal whose activity it
 * started and did not see end is polled, and its members still on the
 * list are not posted again.  Everything else is planned afresh from the
 * lists as they are now.
 */
static int resume(struct cts_mirror *m)
{
    size_t i, n = cts_state_mirror_count(m->st), ng = 0;
    struct cts_state_removal *rs;
    struct gone *g;
    char msg[300];
    int rc = 0;

    if (n == 0)
        return 0;
    rs = cts_xcalloc(n, sizeof(*rs));
    g = cts_xcalloc(n, sizeof(*g));
    for (i = 0; i < n; i++) {
        struct cts_state_removal *r = &rs[i];
        struct mlist *l;
        struct member key = {0}, *hit;
        struct removal *rm;
        size_t k;

        cts_state_mirror_get(m->st, i, r);
        l = list_by_id(m, r->list_id);
        if (l == NULL)
            continue;
        key.key = r->key;
        hit = l->n > 0
                  ? bsearch(&key, l->absent, l->n, sizeof(*l->absent), cmp_key)
                  : NULL;
        if (hit == NULL) {
            /* Off the list now, and not in the input: that run's removal
             * took it off (unless the removal was refused). */
            if (!in_input(m, r->key) &&
                (!r->ended || r->status == CTS_ST_REMOVED)) {
                g[ng].list = (size_t)(l - m->lists);
                g[ng++].r = r;
            }
            continue;
        }
        if (hit->taken || r->activity_id == NULL || r->ended)
            continue;
        /* Still a member while its activity may be running: poll it. */
        for (k = 0; k < m->nrm; k++)
            if (m->rm[k].serial == r->serial)
                break;
        rm = k < m->nrm ? &m->rm[k] : NULL;
        if (rm == NULL) {
            rm = add_removal(m);
            rm->list = (size_t)(l - m->lists);
            rm->adopted = 1;
            rm->serial = r->serial;
            rm->activity_id = cts_xstrdup(r->activity_id);
        }
        rm->m = cts_xrealloc(rm->m, (rm->n + 1) * sizeof(*rm->m));
        rm->m[rm->n].email = cts_xstrdup(hit->email);
        rm->m[rm->n].id = hit->id != NULL ? cts_xstrdup(hit->id) : NULL;
        rm->m[rm->n].key = hit->key;
        rm->m[rm->n].taken = 1;
        rm->n++;
        hit->taken = 1;
    }
    /* A started removal not polled here has no member left on the list
     * that the input lacks: it is over. */
    for (i = 0; i < n && rc == 0; i++) {
        size_t k;

        if (rs[i].activity_id == NULL || rs[i].ended)
            continue;
        for (k = 0; k < m->nrm && m->rm[k].serial != rs[i].serial; k++)
            ;
        if (k == m->nrm && (i == 0 || rs[i - 1].serial != rs[i].serial))
            rc = cts_state_mirror_ended(m->st, rs[i].serial, CTS_ST_REMOVED);
    }
    /* Reported once each, whatever the journal repeats. */
    qsort(g, ng, sizeof(*g), cmp_gone);
    for (i = 0; i < ng && rc == 0; i++) {
        struct member mb;

        if (i > 0 && g[i].list == g[i - 1].list &&
            g[i].r->key == g[i - 1].r->key)
            continue;
        memset(&mb, 0, sizeof(mb));
        mb.email = (char *)g[i].r->email;
        mb.id = (char *)g[i].r->contact_id;
        snprintf(msg, sizeof(msg), "removed from list %s by an interrupted run",
                 m->lists[g[i].list].id);
        rc = put_line(m, &mb, CTS_ST_REMOVED, 0, 0, NULL, msg);
    }
    free(g);
    free(rs);
    return rc;
}

static void plan(struct cts_mirror *m)
{
    size_t i, k;
    int refused;

    for (i = 0; i < m->nlists; i++)
        if (m->lists[i].n > 0)
            qsort(m->lists[i].absent, m->lists[i].n, sizeof(struct member),
                  cmp_key);
    refused = guard(m, m->msg, sizeof(m->msg));
    if (m->cfg->dry_run || refused) {
        char why[sizeof(m->msg)];

        snprintf(why, sizeof(why), "%s", m->msg);
        for (i = 0; i < m->nlists; i++)
            if (m->lists[i].n > 0)
                qsort(m->lists[i].absent, m->lists[i].n, sizeof(struct member),
                      cmp_email);
        if (m->cfg->dry_run)
            show_plan(m);
        if (refused)
            finish(m, CTS_EDATA, CTS_EX_DATAERR, "%s", why);
        else
            finish(m, 0, 0, "dry run: nothing removed");
        return;
    }
    if (resume(m) != 0)
        return;
    /* The members left, in order of email, CHUNK at a time. */
    for (i = 0; i < m->nlists; i++) {
        struct mlist *l = &m->lists[i];
        size_t from = 0;

        if (l->n == 0)
            continue;
        qsort(l->absent, l->n, sizeof(struct member), cmp_email);
        /* Taken members (a killed run's activity) go to the end. */
        for (k = 0; k < l->n; k++) {
            if (l->absent[k].taken)
                continue;
            if (from != k) {
                struct member t = l->absent[from];
                l->absent[from] = l->absent[k];
                l->absent[k] = t;
            }
            from++;
        }
        for (k = 0; k < from; k += CHUNK) {
            struct removal *rm = add_removal(m);
            rm->list = i;
            rm->m = &l->absent[k];
            rm->n = from - k < CHUNK ? from - k : CHUNK;
        }
    }
    m->phase = PH_REMOVING;
    m->currm = 0;
    next_removal(m);
}

/* ---- the removals ---- */

static void on_post_done(struct cts_send_req *r, struct cts_send_result *res);
static void on_poll_done(struct cts_send_req *r, struct cts_send_result *res);

/* Removal i ended with status for every member (journal, then report). */
static int settle(struct cts_mirror *m, size_t i, enum cts_status st, int http,
                  const char *ekey, const char *why)
{
    struct removal *rm = &m->rm[i];
    const char *id = m->lists[rm->list].id;
    char msg[600];
    size_t k;

    /* A deferred removal whose activity runs stays open in the journal
     * (kept at commit): the next run polls it instead of posting again. */
    if (rm->serial != 0 &&
        !(st == CTS_ST_DEFERRED && rm->activity_id != NULL) &&
        cts_state_mirror_ended(m->st, rm->serial, st) != 0) {
        finish(m, UV_EIO, CTS_EX_CANTCREAT, "cannot write the state journal");
        return -1;
    }
    if (st == CTS_ST_REMOVED)
        snprintf(msg, sizeof(msg), "removed from list %s%s", id,
                 rm->adopted ? " (the removal an interrupted run started)"
                             : "");
    else
        snprintf(msg, sizeof(msg), "not removed from list %s: %s", id, why);
    for (k = 0; k < rm->n; k++)
        if (put_line(m, &rm->m[k], st, http, m->attempts, ekey, msg) != 0)
            return -1;
    return 0;
}

/* The removals from i on are not made: deferred, and the phase ends. */
static void defer_rest(struct cts_mirror *m, int http, const char *ekey,
                       const char *why)
{
    size_t i;

    for (i = m->currm; i < m->nrm; i++) {
        if (i > m->currm)
            m->attempts = 0;
        if (settle(m, i, CTS_ST_DEFERRED, i == m->currm ? http : 0, ekey,
                   why) != 0)
            return;
    }
    m->currm = m->nrm;
    finish(m, 0, 0, "--mirror: %s", why);
}

static int submit(struct cts_mirror *m, const char *method, int poll)
{
    cts_send_req_set(&m->req, method, m->url, poll ? NULL : m->body);
    /* Taking members off a list twice changes nothing. */
    m->req.http.idempotent = 1;
    m->req.no_retry = poll;
    m->req.done = poll ? on_poll_done : on_post_done;
    if (cts_send_submit(m->send, &m->req, 1) != 0) {
        defer_rest(m, 0, NULL, "the run stopped before it was sent");
        return -1;
    }
    m->req_busy = 1;
    return 0;
}

static void on_poll_timer(uv_timer_t *t)
{
    struct cts_mirror *m = t->data;
    struct removal *rm = &m->rm[m->currm];
    char *esc, *path;

    free(m->url);
    esc = cts_url_escape(rm->activity_id);
    path = cts_xasprintf("/activities/%s", esc);
    m->url =
        cts_api_url(m->cfg->base_url, path,
                    m->cfg->api == CTS_API_V2 ? m->cfg->api_key : NULL, NULL);
    free(path);
    free(esc);
    submit(m, "GET", 1);
}

static void poll_later(struct cts_mirror *m, uint64_t delay)
{
    uint64_t now = uv_now(m->loop);

    if (m->stopped) {
        defer_rest(m, m->post_http, NULL,
                   "the run stopped while the removal ran; the next run "
                   "checks the list again");
        return;
    }
    if (m->poll_since == 0) {
        m->poll_since = now ? now : 1;
    } else if (now - m->poll_since > MAX_POLL_MS) {
        defer_rest(m, m->post_http, "mirror.activity_slow",
                   "the removal activity is still running; the next run "
                   "checks the list again");
        return;
    }
    uv_timer_start(&m->timer, on_poll_timer, delay, 0);
}

static uint64_t poll_ms(const struct cts_mirror *m)
{
    return (uint64_t)(m->cfg->poll_interval_s > 0 ? m->cfg->poll_interval_s
                                                  : 10) *
           1000;
}

static void next_removal(struct cts_mirror *m)
{
    struct removal *rm;
    char **items;
    size_t k;

    if (m->phase != PH_REMOVING)
        return;
    if (m->stopped) {
        defer_rest(m, 0, NULL, "the run stopped before it was sent");
        return;
    }
    if (m->currm == m->nrm) {
        finish(m, 0, 0, "--mirror: done");
        return;
    }
    rm = &m->rm[m->currm];
    m->poll_since = 0;
    m->poll_errors = 0;
    m->attempts = 0;
    m->post_http = 0;
    if (rm->adopted) {
        cts_log_info("polling the removal from list %s that an interrupted "
                     "run started (%zu members)",
                     m->lists[rm->list].id, rm->n);
        poll_later(m, 0);
        return;
    }
    /* Journalled before the POST can leave (the journal is pushed before
     * any request is written): a killed run's successor knows. */
    rm->serial = cts_state_mirror_serial(m->st);
    items = cts_xcalloc(rm->n, sizeof(*items));
    for (k = 0; k < rm->n; k++) {
        if (cts_state_mirror_begin(m->st, rm->serial, m->lists[rm->list].id,
                                   rm->m[k].email, rm->m[k].id) != 0) {
            free(items);
            finish(m, UV_EIO, CTS_EX_CANTCREAT,
                   "cannot write the state journal");
            return;
        }
        items[k] = m->cfg->api == CTS_API_V3 ? rm->m[k].id : rm->m[k].email;
    }
    free(m->body);
    m->body = cts_mirror_removal_body(m->cfg->api, m->lists[rm->list].id, items,
                                      rm->n);
    free(items);
    free(m->url);
    m->url = cts_api_url(
        m->cfg->base_url,
        m->cfg->api == CTS_API_V3 ? "/activities/remove_list_memberships"
                                  : "/activities/removefromlists",
        m->cfg->api == CTS_API_V2 ? m->cfg->api_key : NULL, NULL);
    submit(m, "POST", 0);
}

/* A request ended without a reply to judge: 1 when that settled it. */
static int unanswered(struct cts_mirror *m, const struct cts_send_result *res)
{
    char why[300];

    switch (res->end) {
    case CTS_SEND_REPLY: return 0;
    case CTS_SEND_NO_QUOTA:
        defer_rest(m, 0, "quota_exceeded",
                   "the daily quota is used up; run again after 00:00 UTC");
        return 1;
    case CTS_SEND_GAVE_UP:
    case CTS_SEND_STALLED:
    case CTS_SEND_UNREACHABLE:
        snprintf(why, sizeof(why), "%s; run again later",
                 res->message != NULL ? res->message : "no reply");
        defer_rest(m, (int)m->req.http.status, res->error_key, why);
        return 1;
    case CTS_SEND_FAILED:
        snprintf(why, sizeof(why), "cannot start the request: %s",
                 cts_strerror(res->rc));
        defer_rest(m, 0, NULL, why);
        return 1;
    default:
        defer_rest(m, 0, NULL, "the run stopped before it was sent");
        return 1;
    }
}

/* 401 and the API's quota stop the removals: 1 when res was one. */
static int stop_reply(struct cts_mirror *m, const struct cts_send_result *res,
                      int http)
{
    if (res->oc == CTS_OC_AUTH) {
        finish(m, CTS_EAUTH, CTS_EX_NOPERM,
               "--mirror: the API refused the access token (401); get a "
               "new one with `ctct-sync auth`");
        defer_rest(m, http, res->reply_key,
                   "the API refused the access token (401)");
        return 1;
    }
    if (res->oc == CTS_OC_QUOTA) {
        defer_rest(m, http, res->reply_key,
                   "the daily quota is used up; run again after 00:00 UTC");
        return 1;
    }
    return 0;
}

static void on_post_done(struct cts_send_req *r, struct cts_send_result *res)
{
    struct cts_mirror *m = r->data;
    struct removal *rm = &m->rm[m->currm];
    const struct cts_http_req *h = &r->http;
    json_t *j;
    const char *id;
    char why[600];

    m->req_busy = 0;
    m->attempts += r->tries;
    if (m->phase != PH_REMOVING || unanswered(m, res))
        return;
    m->post_http = (int)h->status;
    if (stop_reply(m, res, m->post_http))
        return;
    if (res->oc != CTS_OC_OK) {
        /* Refused: these members stay; the other removals go on. */
        snprintf(why, sizeof(why), "%s",
                 res->message != NULL ? res->message : "refused");
        if (settle(m, m->currm, CTS_ST_FAILED, m->post_http, res->error_key,
                   why) != 0)
            return;
        m->currm++;
        next_removal(m);
        return;
    }
    j = json_loadb(h->resp.data ? h->resp.data : "", h->resp.len, 0, NULL);
    id = json_string_value(
        json_object_get(j, m->cfg->api == CTS_API_V3 ? "activity_id" : "id"));
    if (id == NULL || *id == '\0') {
        json_decref(j);
        if (settle(m, m->currm, CTS_ST_FAILED, m->post_http, "mirror.bad_reply",
                   "the reply named no activity") != 0)
            return;
        m->currm++;
        next_removal(m);
        return;
    }
    rm->activity_id = cts_xstrdup(id);
    json_decref(j);
    /* Journalled before polling: a killed run's successor polls it. */
    if (cts_state_mirror_started(m->st, rm->serial, rm->activity_id) != 0 ||
        cts_state_flush(m->st) != 0) {
        finish(m, UV_EIO, CTS_EX_CANTCREAT, "cannot write the state journal");
        return;
    }
    poll_later(m, poll_ms(m));
}

static void on_poll_done(struct cts_send_req *r, struct cts_send_result *res)
{
    struct cts_mirror *m = r->data;
    const struct cts_http_req *h = &r->http;
    const char *state;
    json_t *j;
    char why[300];

    m->req_busy = 0;
    if (m->phase != PH_REMOVING || unanswered(m, res))
        return;
    if (stop_reply(m, res, (int)h->status))
        return;
    if (res->oc != CTS_OC_OK) {
        if (++m->poll_errors > (m->cfg->retries > 0 ? m->cfg->retries : 6))
            defer_rest(m, (int)h->status, res->error_key,
                       "the removal activity could not be polled; the next "
                       "run checks the list again");
        else
            poll_later(m, poll_ms(m));
        return;
    }
    j = json_loadb(h->resp.data ? h->resp.data : "", h->resp.len, 0, NULL);
    state = json_string_value(
        json_object_get(j, m->cfg->api == CTS_API_V3 ? "state" : "status"));
    if (state != NULL &&
        (strcmp(state, "completed") == 0 || strcmp(state, "COMPLETE") == 0)) {
        json_decref(j);
        if (settle(m, m->currm, CTS_ST_REMOVED,
                   m->post_http ? m->post_http : 200, NULL, NULL) != 0)
            return;
        m->currm++;
        next_removal(m);
        return;
    }
    if (state != NULL &&
        (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0 ||
         strcmp(state, "timed_out") == 0 || strcmp(state, "ERROR") == 0)) {
        snprintf(why, sizeof(why), "the removal activity %s ended %s",
                 m->rm[m->currm].activity_id, state);
        json_decref(j);
        if (settle(m, m->currm, CTS_ST_FAILED, (int)h->status,
                   "mirror.activity_failed", why) != 0)
            return;
        m->currm++;
        next_removal(m);
        return;
    }
    json_decref(j);
    poll_later(m, poll_ms(m));
}

/* ---- the phase ---- */

int cts_mirror_start(struct cts_mirror *m, uint64_t first, int rows_ok)
{
    const struct cts_report_counts *c;
    size_t i;

    if (m == NULL || m->phase == PH_OVER)
        return 1;
    if (m->phase != PH_IDLE)
        return 0;
    c = cts_report_counts(m->report);
    if (!rows_ok || m->stopped || c->status[CTS_ST_FAILED] > 0 ||
        c->status[CTS_ST_DEFERRED] > 0) {
        m->phase = PH_OVER;
        cts_log_warn("--mirror: no member was removed from any list: "
                     "%s; the next complete run removes them",
                     !rows_ok || m->stopped
                         ? "the run stopped early"
                         : "some rows failed or were deferred");
        return 1;
    }
    m->seq = first;
    m->lists = cts_xcalloc(m->cfg->nlists + 1, sizeof(*m->lists));
    for (i = 0; i < m->cfg->nlists; i++)
        if (list_by_id(m, m->cfg->lists[i]) == NULL) /* once each */
            m->lists[m->nlists++].id = m->cfg->lists[i];
    m->phase = PH_LISTING;
    m->cur = 0;
    list_next(m);
    return 0;
}

void cts_mirror_stop(struct cts_mirror *m)
{
    if (m == NULL || m->stopped)
        return;
    m->stopped = 1;
    /* Waiting to poll: the removal is left to the next run. */
    if (m->phase == PH_REMOVING && !m->req_busy && m->currm < m->nrm) {
        uv_timer_stop(&m->timer);
        defer_rest(m, m->post_http, NULL,
                   "the run stopped while the removal ran; the next run "
                   "checks the list again");
    }
}
