/* export.c — `ctct-sync export`: the account's contacts as a CSV that
 * import maps back (see cts_export.h). */
#include "cts_export.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "cts_account.h"
#include "cts_api.h"
#include "cts_consent.h"
#include "cts_fetch.h"
#include "cts_http.h" /* cts_url_escape */
#include "cts_pager.h"
#include "cts_progress.h"
#include "cts_refresh.h"
#include "cts_report.h"
#include "cts_send.h"
#include "cts_state.h"

#define TICK_MS      100 /* progress redraw */
#define V3_MAX_LISTS 25  /* GET /contacts?lists= takes at most 25 ids */
#define V2_NCF       15  /* CustomField1..CustomField15 */
#define V3_INCLUDE                                                             \
    "custom_fields,list_memberships,phone_numbers,street_addresses"

const char *const cts_export_fixed[CTS_EXPORT_NFIXED] = {
    "email",   "first_name",     "last_name",    "job_title",  "company_name",
    "phone",   "street",         "city",         "state",      "zip",
    "country", "birthday_month", "birthday_day", "anniversary"};
const char *const cts_export_tail[CTS_EXPORT_NTAIL] = {
    "permission", "opt_out_date", "opt_out_reason", "lists"};

enum {
    C_EMAIL = 0,
    C_FIRST,
    C_LAST,
    C_JOB,
    C_COMPANY,
    C_PHONE,
    C_STREET,
    C_CITY,
    C_STATE,
    C_ZIP,
    C_COUNTRY,
    C_BMONTH,
    C_BDAY,
    C_ANNIV
};
enum { T_PERMISSION = 0, T_OPT_OUT_DATE, T_OPT_OUT_REASON, T_LISTS };

/* ---- one contact → cells ---- */

static const char *str_at(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL && *s != '\0' ? s : NULL;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? cts_xstrdup(s) : NULL;
}

/* A number or a numeric string (birthday parts) as text; NULL if absent. */
static char *number_text(const json_t *v)
{
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return cts_xasprintf("%lld", (long long)json_integer_value(v));
    return dup_or_null(json_string_value(v));
}

/* The ids of a list array (v3 strings, v2 objects {id} with a number or a
 * string id), joined with ';'. */
static char *join_lists(const json_t *lists)
{
    struct cts_buf b;
    const json_t *it;
    size_t i;

    cts_buf_init(&b, 0);
    json_array_foreach(lists, i, it)
    {
        const json_t *id = json_is_object(it) ? json_object_get(it, "id") : it;
        if (b.len > 0)
            cts_buf_putc(&b, ';');
        if (json_is_integer(id))
            cts_buf_appendf(&b, "%lld", (long long)json_integer_value(id));
        else if (json_is_string(id))
            cts_buf_appendf(&b, "%s", json_string_value(id));
    }
    if (b.len == 0) {
        cts_buf_free(&b);
        return NULL;
    }
    return cts_buf_detach(&b);
}

/* The cells of the custom fields: by v3 id (ids) or by v2 name. */
static void custom_cells(const json_t *cfs, const char *key,
                         const char *const *names, const char *const *ids,
                         size_t ncf, char **cells)
{
    const json_t *it;
    size_t i, k;

    json_array_foreach(cfs, i, it)
    {
        const char *who = str_at(it, key), *v = str_at(it, "value");
        if (who == NULL || v == NULL)
            continue;
        for (k = 0; k < ncf; k++) {
            const char *want = ids != NULL ? ids[k] : names[k];
            if (cells[k] == NULL && want != NULL && strcmp(want, who) == 0) {
                cells[k] = cts_xstrdup(v);
                break;
            }
        }
    }
}

/* The v2 status and opt-in source in the v3 permission words. */
static const char *v2_permission(const json_t *c, const json_t *em)
{
    const char *st = str_at(em, "status");
    const char *src = str_at(em, "opt_in_source");

    if (st == NULL)
        st = str_at(c, "status");
    if (st != NULL && strcmp(st, "OPTOUT") == 0)
        return "unsubscribed";
    if (st != NULL && strcmp(st, "UNCONFIRMED") == 0)
        return "pending_confirmation";
    return src != NULL && strcmp(src, "ACTION_BY_VISITOR") == 0 ? "explicit"
                                                                : "implicit";
}

static int wanted(enum cts_export_status status, const char *perm)
{
    int unsub = perm != NULL && strcmp(perm, "unsubscribed") == 0;

    switch (status) {
    case CTS_EXPORT_ACTIVE:
        return perm != NULL &&
               (strcmp(perm, "implicit") == 0 || strcmp(perm, "explicit") == 0);
    case CTS_EXPORT_UNSUBSCRIBED: return unsub;
    default: return 1;
    }
}

int cts_export_cells(enum cts_api api, const json_t *c,
                     enum cts_export_status status, long since,
                     const char *const *cf_names, const char *const *cf_ids,
                     size_t ncf, char **cells)
{
    char **tail = cells + CTS_EXPORT_NFIXED + ncf;
    const json_t *em, *addr;
    const char *perm, *out_date, *phone;
    long t;

    if (api == CTS_API_V2) {
        em = json_array_get(json_object_get(c, "email_addresses"), 0);
        perm = v2_permission(c, em);
    } else {
        em = json_object_get(c, "email_address");
        perm = str_at(em, "permission_to_send");
    }
    if (!wanted(status, perm))
        return 0;
    out_date = str_at(em, "opt_out_date");
    if (status == CTS_EXPORT_UNSUBSCRIBED && since > 0 && out_date != NULL) {
        t = cts_consent_parse_time(out_date);
        if (t >= 0 && t < since)
            return 0;
    }
    memset(cells, 0,
           (CTS_EXPORT_NFIXED + ncf + CTS_EXPORT_NTAIL) * sizeof(*cells));
    cells[C_FIRST] = dup_or_null(str_at(c, "first_name"));
    cells[C_LAST] = dup_or_null(str_at(c, "last_name"));
    cells[C_JOB] = dup_or_null(str_at(c, "job_title"));
    cells[C_COMPANY] = dup_or_null(str_at(c, "company_name"));
    cells[C_BMONTH] = number_text(json_object_get(c, "birthday_month"));
    cells[C_BDAY] = number_text(json_object_get(c, "birthday_day"));
    cells[C_ANNIV] = dup_or_null(str_at(c, "anniversary"));
    tail[T_PERMISSION] = dup_or_null(perm);
    tail[T_OPT_OUT_DATE] = dup_or_null(out_date);
    if (api == CTS_API_V2) {
        cells[C_EMAIL] = dup_or_null(str_at(em, "email_address"));
        phone = str_at(c, "work_phone");
        if (phone == NULL)
            phone = str_at(c, "home_phone");
        if (phone == NULL)
            phone = str_at(c, "cell_phone");
        cells[C_PHONE] = dup_or_null(phone);
        addr = json_array_get(json_object_get(c, "addresses"), 0);
        cells[C_STREET] = dup_or_null(str_at(addr, "line1"));
        cells[C_CITY] = dup_or_null(str_at(addr, "city"));
        cells[C_STATE] = dup_or_null(str_at(addr, "state_code") != NULL
                                         ? str_at(addr, "state_code")
                                         : str_at(addr, "state"));
        cells[C_ZIP] = dup_or_null(str_at(addr, "postal_code"));
        cells[C_COUNTRY] = dup_or_null(str_at(addr, "country_code"));
        custom_cells(json_object_get(c, "custom_fields"), "name", cf_names,
                     NULL, ncf, cells + CTS_EXPORT_NFIXED);
        tail[T_LISTS] = join_lists(json_object_get(c, "lists"));
    } else {
        cells[C_EMAIL] = dup_or_null(str_at(em, "address"));
        cells[C_PHONE] = dup_or_null(
            str_at(json_array_get(json_object_get(c, "phone_numbers"), 0),
                   "phone_number"));
        addr = json_array_get(json_object_get(c, "street_addresses"), 0);
        cells[C_STREET] = dup_or_null(str_at(addr, "street"));
        cells[C_CITY] = dup_or_null(str_at(addr, "city"));
        cells[C_STATE] = dup_or_null(str_at(addr, "state"));
        cells[C_ZIP] = dup_or_null(str_at(addr, "postal_code"));
        cells[C_COUNTRY] = dup_or_null(str_at(addr, "country"));
        custom_cells(json_object_get(c, "custom_fields"), "custom_field_id",
                     cf_names, cf_ids, ncf, cells + CTS_EXPORT_NFIXED);
        tail[T_OPT_OUT_REASON] = dup_or_null(str_at(em, "opt_out_reason"));
        tail[T_LISTS] = join_lists(json_object_get(c, "list_memberships"));
    }
    if (cells[C_EMAIL] == NULL) {
        cts_export_cells_free(cells,
                              CTS_EXPORT_NFIXED + ncf + CTS_EXPORT_NTAIL);
        return 0;
    }
    return 1;
}

void cts_export_cells_free(char **cells, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(cells[i]);
        cells[i] = NULL;
    }
}

/* ---- the output ---- */

struct output {
    FILE *fp;
    char *path;  /* --output, NULL = stdout */
    char *tmp;   /* the temporary file beside path */
    int err;     /* sticky errno of a failed write */
    int started; /* something was written */
};

/* The temporary file beside --output, created now: an unwritable place
 * is found before any request (73). */
static int output_open(struct output *o, const char *path)
{
    int fd;

    memset(o, 0, sizeof(*o));
    if (path == NULL || strcmp(path, "-") == 0) {
        o->fp = stdout;
        return 0;
    }
    o->path = cts_xstrdup(path);
    o->tmp = cts_xasprintf("%s.XXXXXX", path);
    fd = mkstemp(o->tmp); /* mode 0600: it holds email addresses */
    if (fd < 0) {
        cts_log_error("cannot write %s: %s", path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return CTS_EX_CANTCREAT;
    }
    o->fp = fdopen(fd, "w");
    if (o->fp == NULL) {
        cts_log_error("cannot write %s: %s", path, strerror(errno));
        close(fd);
        return CTS_EX_CANTCREAT;
    }
    return 0;
}

static void output_write(struct output *o, struct cts_buf *b)
{
    if (o->err == 0 && b->len > 0 &&
        fwrite(b->data, 1, b->len, o->fp) != b->len)
        o->err = errno != 0 ? errno : EIO;
    o->started = 1;
    cts_buf_reset(b);
}

/* Finish the output: on success (ok) flush, sync and rename over --output;
 * otherwise remove the temporary file.  Returns 0 or 73. */
static int output_close(struct output *o, int ok)
{
    int ex = 0;

    if (o->fp == NULL)
        goto out;
    if (ok && o->err == 0 && fflush(o->fp) != 0)
        o->err = errno;
    if (o->path == NULL) {
        if (ok && (o->err != 0 || ferror(o->fp))) {
            cts_log_error("cannot write to standard output: %s",
                          strerror(o->err != 0 ? o->err : EIO));
            ex = CTS_EX_CANTCREAT;
        }
        goto out;
    }
    if (ok && o->err == 0 && fsync(fileno(o->fp)) != 0)
        o->err = errno;
    if (fclose(o->fp) != 0 && o->err == 0)
        o->err = errno;
    o->fp = NULL;
    if (ok && o->err == 0 && rename(o->tmp, o->path) != 0)
        o->err = errno;
    if (ok && o->err != 0) {
        cts_log_error("cannot write %s: %s", o->path, strerror(o->err));
        ex = CTS_EX_CANTCREAT;
    }
    if (!ok || ex != 0)
        unlink(o->tmp);
out:
    free(o->path);
    free(o->tmp);
    memset(o, 0, sizeof(*o));
    return ex;
}

/* ---- the run ---- */

struct export
{
    uv_loop_t loop;
    struct cts_config *cfg;
    struct cts_send send;
    int send_inited;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    int handles_inited;
    struct cts_progress progress;
    int show_progress;

    struct output out;
    struct cts_buf line;
    long since; /* cfg->since as Unix seconds, 0 = none */

    /* the custom field columns: names (owned), v3 ids (owned) */
    char **cf_names, **cf_ids;
    size_t ncf;
    char **cells; /* scratch: one line's cells */

    json_t *seen;     /* contact ids already written (several v2 lists) */
    size_t next_list; /* v2: the next --list to page */
    long written, total, pages;

    int finished;
    int exit_code;
};

static void stop(struct export *x, int exit_code)
{
    if (x->exit_code == 0)
        x->exit_code = exit_code;
    x->finished = 1;
    if (x->handles_inited) {
        x->handles_inited = 0;
        uv_close((uv_handle_t *)&x->sigint, NULL);
        uv_close((uv_handle_t *)&x->sigterm, NULL);
        uv_close((uv_handle_t *)&x->tick, NULL);
    }
    /* Nothing is queued or in flight once the pager has ended: closing
     * the engine only releases its handles. */
    if (x->send_inited) {
        x->send_inited = 0;
        cts_send_close(&x->send);
    }
}

static void put_header(struct export *x)
{
    size_t i;
    char *h;

    cts_buf_append(&x->line, "\xEF\xBB\xBF", 3); /* BOM, as the report */
    for (i = 0; i < CTS_EXPORT_NFIXED; i++) {
        if (i > 0)
            cts_buf_putc(&x->line, ',');
        cts_report_cell(&x->line, cts_export_fixed[i]);
    }
    for (i = 0; i < x->ncf; i++) {
        h = cts_xasprintf("cf:%s", x->cf_names[i]);
        cts_buf_putc(&x->line, ',');
        cts_report_cell(&x->line, h);
        free(h);
    }
    for (i = 0; i < CTS_EXPORT_NTAIL; i++) {
        cts_buf_putc(&x->line, ',');
        cts_report_cell(&x->line, cts_export_tail[i]);
    }
    cts_buf_append(&x->line, "\r\n", 2);
    output_write(&x->out, &x->line);
}

/* A contact seen on an earlier list (v2, several --list) is not written
 * again: its lists cell already names every list it is on. */
static int already_written(struct export *x, const json_t *c)
{
    const json_t *id = json_object_get(c, "id");
    char key[32];

    if (x->seen == NULL || !json_is_integer(id))
        return 0;
    snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(id));
    if (json_object_get(x->seen, key) != NULL)
        return 1;
    json_object_set_new(x->seen, key, json_true());
    return 0;
}

static int on_contacts(void *arg, json_t *root, json_t *items, long index)
{
    struct export *x = arg;
    size_t i, k, n = CTS_EXPORT_NFIXED + x->ncf + CTS_EXPORT_NTAIL;
    const json_t *c;

    (void)index;
    x->pages++;
    if (x->total == 0)
        x->total =
            (long)json_integer_value(json_object_get(root, "contacts_count"));
    json_array_foreach(items, i, c)
    {
        if (!cts_export_cells(x->cfg->api, c, x->cfg->export_status, x->since,
                              (const char *const *)x->cf_names,
                              (const char *const *)x->cf_ids, x->ncf,
                              x->cells) ||
            already_written(x, c)) {
            cts_export_cells_free(x->cells, n);
            continue;
        }
        for (k = 0; k < n; k++) {
            if (k > 0)
                cts_buf_putc(&x->line, ',');
            cts_report_cell(&x->line, x->cells[k]);
        }
        cts_buf_append(&x->line, "\r\n", 2);
        cts_export_cells_free(x->cells, n);
        x->written++;
    }
    output_write(&x->out, &x->line);
    /* A full disk ends the export now, not after the last page. */
    return x->out.err != 0;
}

static void list_next(struct export *x);

/* How a listing ended: the next v2 list, or the end of the run. */
static void on_listed(void *arg, const struct cts_pager_result *r)
{
    struct export *x = arg;

    switch (r->end) {
    case CTS_PAGER_DONE:
        if (x->cfg->api == CTS_API_V2 && x->next_list < x->cfg->nlists) {
            list_next(x);
            return;
        }
        stop(x, 0);
        return;
    case CTS_PAGER_CANCELLED:
        cts_log_error("cannot write %s: %s",
                      x->out.path != NULL ? x->out.path : "standard output",
                      strerror(x->out.err));
        stop(x, CTS_EX_CANTCREAT);
        return;
    case CTS_PAGER_AUTH:
        cts_log_error("%s; get a new one with `ctct-sync auth`", r->msg);
        stop(x, CTS_EX_NOPERM);
        return;
    case CTS_PAGER_QUOTA:
        cts_log_error("%s; run again after 00:00 UTC", r->msg);
        stop(x, CTS_EX_TEMPFAIL);
        return;
    case CTS_PAGER_STOPPED: stop(x, CTS_EX_TEMPFAIL); return;
    case CTS_PAGER_LATER:
        cts_log_error("cannot list the contacts: %s; run again later", r->msg);
        stop(x, CTS_EX_TEMPFAIL);
        return;
    default:
        cts_log_error("cannot list the contacts: %s", r->msg);
        stop(x, CTS_EX_UNAVAILABLE);
        return;
    }
}

/* Start one listing; done (on_listed) always runs. */
static void list_start(struct export *x, const char *path, const char *query,
                       const char *items_key, cts_pager_page_cb page,
                       cts_pager_done_cb done)
{
    struct cts_pager_params p = {.cfg = x->cfg,
                                 .send = &x->send,
                                 .path = path,
                                 .query = query,
                                 .items_key = items_key,
                                 .page = page,
                                 .done = done,
                                 .arg = x};

    if (cts_pager_start(&p) != 0)
        stop(x, CTS_EX_TEMPFAIL); /* the engine stopped: a signal */
}

/* The query of the contacts listing (escaped); owned. */
static char *contacts_query(const struct export *x, int with_status)
{
    const struct cts_config *cfg = x->cfg;
    int v2 = cfg->api == CTS_API_V2;
    struct cts_buf q;
    char *e;
    size_t i;

    cts_buf_init(&q, 0);
    cts_buf_appendf(&q, "limit=500");
    if (!v2)
        cts_buf_appendf(&q, "&include=%s&include_count=true", V3_INCLUDE);
    if (with_status && cfg->export_status == CTS_EXPORT_ACTIVE)
        cts_buf_appendf(&q, "&status=%s", v2 ? "ACTIVE" : "active");
    else if (with_status && cfg->export_status == CTS_EXPORT_UNSUBSCRIBED)
        cts_buf_appendf(&q, "&status=%s", v2 ? "OPTOUT" : "unsubscribed");
    if (!v2 && cfg->nlists > 0) {
        cts_buf_appendf(&q, "&lists=");
        for (i = 0; i < cfg->nlists; i++) {
            e = cts_url_escape(cfg->lists[i]);
            cts_buf_appendf(&q, "%s%s", i > 0 ? "," : "", e);
            free(e);
        }
    }
    if (cfg->since != NULL) {
        e = cts_url_escape(cfg->since);
        cts_buf_appendf(&q, "&%s=%s", v2 ? "modified_since" : "updated_after",
                        e);
        free(e);
    }
    return cts_buf_detach(&q);
}

/* v2: the next --list's members, or every contact without --list. */
static void list_next(struct export *x)
{
    char *q, *path, *e;

    if (x->cfg->nlists == 0) {
        q = contacts_query(x, 1);
        list_start(x, "/contacts", q, NULL, on_contacts, on_listed);
        free(q);
        return;
    }
    /* The list members endpoint takes no status: on_contacts filters. */
    q = contacts_query(x, 0);
    e = cts_url_escape(x->cfg->lists[x->next_list++]);
    path = cts_xasprintf("/lists/%s/contacts", e);
    list_start(x, path, q, NULL, on_contacts, on_listed);
    free(path);
    free(e);
    free(q);
}

static void contacts_start(struct export *x)
{
    char *q;

    x->cells = cts_xcalloc(CTS_EXPORT_NFIXED + x->ncf + CTS_EXPORT_NTAIL,
                           sizeof(*x->cells));
    put_header(x);
    if (x->cfg->api == CTS_API_V2) {
        if (x->cfg->nlists > 1)
            x->seen = json_object();
        list_next(x);
        return;
    }
    q = contacts_query(x, 1);
    list_start(x, "/contacts", q, NULL, on_contacts, on_listed);
    free(q);
}

/* v3: the account's custom fields name the cf: columns. */
static int on_custom_fields(void *arg, json_t *root, json_t *items, long index)
{
    struct export *x = arg;
    const json_t *it;
    size_t i;

    (void)root;
    (void)index;
    json_array_foreach(items, i, it)
    {
        const char *id = str_at(it, "custom_field_id");
        const char *name = str_at(it, "name");
        if (id == NULL || name == NULL)
            continue;
        x->cf_names = cts_xrealloc(x->cf_names, (x->ncf + 1) * sizeof(char *));
        x->cf_ids = cts_xrealloc(x->cf_ids, (x->ncf + 1) * sizeof(char *));
        x->cf_names[x->ncf] = cts_xstrdup(name);
        x->cf_ids[x->ncf] = cts_xstrdup(id);
        x->ncf++;
    }
    return 0;
}

static void on_custom_fields_done(void *arg, const struct cts_pager_result *r)
{
    struct export *x = arg;

    if (r->end == CTS_PAGER_DONE) {
        contacts_start(x);
        return;
    }
    if (r->end == CTS_PAGER_FAILED) {
        cts_log_error("cannot read the account's custom fields: %s", r->msg);
        stop(x, CTS_EX_UNAVAILABLE);
        return;
    }
    on_listed(arg, r);
}

static void on_tick(uv_timer_t *t)
{
    struct export *x = t->data;

    cts_progress_update(&x->progress, uv_now(&x->loop), x->written, x->total,
                        x->send.requests, x->send.retries);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct export *x = h->data;

    cts_log_warn("%s: the export stops; nothing is written",
                 signum == SIGINT ? "interrupted" : "terminated");
    x->exit_code = CTS_EX_TEMPFAIL;
    /* The pager's request ends STOPPED (queued) or comes back and is not
     * followed (in flight): on_listed then closes everything. */
    cts_send_stop(&x->send);
}

/* The loop part: the listings through one engine, then every handle
 * closed.  Returns the exit code. */
static int run(struct export *x, struct cts_state *st, int preflight,
               uint64_t preflight_done_ms)
{
    struct cts_send_params sp;
    struct cts_error err = {0};
    int rc;

    rc = uv_loop_init(&x->loop);
    if (rc != 0) {
        cts_log_error("cannot start the loop: %s", uv_strerror(rc));
        return CTS_EX_SOFTWARE;
    }
    memset(&sp, 0, sizeof(sp));
    sp.loop = &x->loop;
    sp.cfg = x->cfg;
    sp.state = st;
    sp.preflight = preflight;
    sp.preflight_done_ms = preflight_done_ms;
    rc = cts_send_init(&x->send, &sp, &err);
    if (rc != 0) {
        cts_log_error("%s", err.msg);
        uv_loop_close(&x->loop);
        return err.exit_code != 0 ? err.exit_code : CTS_EX_SOFTWARE;
    }
    x->send_inited = 1;
    uv_signal_init(&x->loop, &x->sigint);
    uv_signal_init(&x->loop, &x->sigterm);
    uv_timer_init(&x->loop, &x->tick);
    x->sigint.data = x->sigterm.data = x->tick.data = x;
    x->handles_inited = 1;
    uv_signal_start(&x->sigint, on_signal, SIGINT);
    uv_signal_start(&x->sigterm, on_signal, SIGTERM);
    x->show_progress = x->cfg->progress && !x->cfg->quiet;
    cts_progress_init(&x->progress, stderr, uv_now(&x->loop));
    if (x->show_progress) {
        cts_log_set_hook(cts_progress_clear, &x->progress);
        uv_timer_start(&x->tick, on_tick, TICK_MS, TICK_MS);
    }

    if (x->cfg->api == CTS_API_V2) {
        for (x->ncf = 0; x->ncf < V2_NCF; x->ncf++) {
            x->cf_names =
                cts_xrealloc(x->cf_names, (x->ncf + 1) * sizeof(char *));
            x->cf_names[x->ncf] = cts_xasprintf("CustomField%zu", x->ncf + 1);
        }
        contacts_start(x);
    } else {
        list_start(x, "/contact_custom_fields", "limit=100", "custom_fields",
                   on_custom_fields, on_custom_fields_done);
    }
    uv_run(&x->loop, UV_RUN_DEFAULT);

    if (x->show_progress) {
        cts_progress_clear(&x->progress);
        cts_log_set_hook(NULL, NULL);
    }
    if (uv_loop_close(&x->loop) != 0) {
        cts_log_error("internal: event loop not idle at exit");
        return CTS_EX_SOFTWARE;
    }
    return x->exit_code;
}

static void export_free(struct export *x)
{
    size_t i;

    for (i = 0; i < x->ncf; i++) {
        free(x->cf_names[i]);
        if (x->cf_ids != NULL)
            free(x->cf_ids[i]);
    }
    free(x->cf_names);
    free(x->cf_ids);
    free(x->cells);
    json_decref(x->seen);
    cts_buf_free(&x->line);
}

/* The closing line on stderr (--quiet: only when the export failed). */
static void summary_line(const struct cts_config *cfg, const struct export *x,
                         int ex, int started, double secs)
{
    int to_file = cfg->output != NULL && strcmp(cfg->output, "-") != 0;
    char *shown = to_file ? cts_log_visible(cfg->output) : NULL;

    if (ex == 0)
        fprintf(stderr,
                "ctct-sync: export: %ld contact%s written to %s (%ld page%s, "
                "%ld request%s, %.1fs)\n",
                x->written, x->written == 1 ? "" : "s",
                to_file ? shown : "standard output", x->pages,
                x->pages == 1 ? "" : "s", x->send.requests,
                x->send.requests == 1 ? "" : "s", secs);
    else
        fprintf(stderr, "ctct-sync: export stopped: %s (exit %d)\n",
                to_file || !started ? "nothing was written"
                                    : "the output is incomplete",
                ex);
    free(shown);
}

/* A failed preflight step: the signal that interrupted it (75), or its
 * own exit code. */
static int preflight_failed(const struct cts_error *err, int fallback)
{
    int sig = cts_fetch_signal();

    if (sig != 0) {
        cts_log_error("%s (signal %d); nothing was written",
                      sig == SIGINT ? "interrupted" : "terminated", sig);
        return CTS_EX_TEMPFAIL;
    }
    cts_log_error("%s", err->msg);
    return err->exit_code != 0 ? err->exit_code : fallback;
}

int cts_cmd_export(struct cts_config *cfg)
{
    struct cts_error err = {0};
    struct cts_account_info info;
    struct cts_list_set lists;
    struct cts_state_params sp;
    struct cts_state *st = NULL;
    struct export x;
    int ex, rc, started;
    uint64_t t0 = uv_hrtime();

    memset(&info, 0, sizeof(info));
    memset(&lists, 0, sizeof(lists));
    memset(&x, 0, sizeof(x));
    x.cfg = cfg;
    cts_buf_init(&x.line, 0);
    if (cfg->since != NULL)
        x.since = cts_consent_parse_time(cfg->since);

    if (cfg->api == CTS_API_V3 && cfg->nlists > V3_MAX_LISTS) {
        cts_log_error("export: at most %d --list with API v3 (one listing "
                      "asks for them all). Try 'ctct-sync export --help'",
                      V3_MAX_LISTS);
        return CTS_EX_USAGE;
    }
    ex = output_open(&x.out, cfg->output);
    if (ex != 0)
        goto out;
    cts_fetch_catch_signals();

    /* Prove the token belongs to the key (and the account) first, as
     * import and check do. */
    rc = cts_oauth_ensure_fresh(cfg, 0, &err);
    if (rc == 0)
        rc = cts_account_check(cfg, &info, &err);
    if (rc != 0) {
        ex = preflight_failed(&err, CTS_EX_NOPERM);
        goto out;
    }
    if (cfg->nlists > 0) {
        rc = cts_account_fetch_lists(cfg, &lists, &err);
        if (rc == 0)
            rc = cts_account_check_lists(cfg, &lists, &err);
        if (rc != 0) {
            ex = preflight_failed(&err, CTS_EX_DATAERR);
            goto out;
        }
    }

    /* The daily quota is counted in the state directory (and the lock
     * keeps an import of the same key and account from running at the
     * same time); nothing else there is written. */
    memset(&sp, 0, sizeof(sp));
    sp.dir = cfg->state_dir;
    sp.api = cfg->api;
    sp.api_key = cfg->api_key;
    sp.account = info.account;
    sp.now = cts_config_now(cfg);
    sp.daily_quota = cfg->daily_quota;
    rc = cts_state_open(&sp, &st, &err);
    if (rc != 0) {
        cts_log_error("%s", err.msg);
        ex = err.exit_code != 0 ? err.exit_code : CTS_EX_CANTCREAT;
        goto out;
    }

    ex = run(&x, st, 2 + (cfg->nlists > 0), uv_hrtime() / 1000000);
    if (ex == 0 && x.out.err != 0)
        ex = CTS_EX_CANTCREAT;
out:
    started = x.out.started;
    rc = output_close(&x.out, ex == 0);
    if (ex == 0)
        ex = rc;
    if (!cfg->quiet || ex != 0)
        summary_line(cfg, &x, ex, started, (double)(uv_hrtime() - t0) / 1e9);
    cts_state_close(st);
    export_free(&x);
    cts_list_set_free(&lists);
    cts_account_info_free(&info);
    return ex;
}
