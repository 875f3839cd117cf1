/*
 * bulk.c — ctct-sandbox's bulk activities (add contacts and remove list
 * members, v2 and v3):
 *
 *   v2  POST /v2/activities/addcontacts            201 {id,type,error_count,
 *       POST /v2/activities/removefromlists             contact_count}
 *       GET  /v2/activities/{id}   status QUEUED → RUNNING → COMPLETE,
 *                                  errors[] {message,line_number,email_address}
 *   v3  POST /v3/activities/contacts_json_import   201 ActivityImport
 *       POST /v3/activities/remove_list_memberships 201 ActivityListsMembership
 *       GET  /v3/activities/{id}   state initialized → processing → completed,
 *                                  activity_errors[] strings
 *
 * Imports keep an existing contact's permission and make new contacts
 * implicit (opted in by the account); removals take contacts off lists and
 * never delete or unsubscribe anyone.
 *
 * An activity runs on its own uv timer: it is queued when posted, starts
 * after a third of --activity-ms, upserts its rows in two halves (so a poll
 * can see percent_done between 0 and 100) and completes at --activity-ms.
 * Rows are merged into the account non-destructively (SB_UPSERT_MERGE),
 * which counts writes in /_sandbox/state like the per-contact endpoints.
 *
 * Row numbers in errors ("line_number", "Line N:") are 1-based positions
 * in import_data: that is what a client maps back to its chunk.
 *
 * Limits as documented: at most 40,000 rows (400 beyond); a v2 body over
 * 4 MB is refused, a v3 body over 4 MB is imported only up to the row that
 * crosses 4 MB, the rest silently dropped; at most 1,000 unfinished
 * activities per account (v3 429).
 */
#include "sb_int.h"
#include "sb_oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "cts_util.h"
#include "sb.h"

#define MAX_ROWS   40000
#define MAX_BYTES  (4 * 1024 * 1024)
#define MAX_QUEUED 1000
#define MAX_LISTS  50

enum act_state { ACT_QUEUED = 0, ACT_RUNNING, ACT_DONE };
/* What an activity does with each of its rows. */
enum act_kind {
    KIND_IMPORT = 0, /* upsert a contact (addcontacts, contacts_json_import) */
    KIND_REMOVE      /* take a contact off the lists (removefromlists: rows
                        are emails; remove_list_memberships: contact ids) */
};

/* v2 column_names that admit a property (anything undeclared is ignored,
 * per the v2 doc); EMAIL is always taken. */
enum {
    COL_FIRST = 1 << 0,
    COL_LAST = 1 << 1,
    COL_JOB = 1 << 2,
    COL_COMPANY = 1 << 3,
    COL_PHONE = 1 << 4,
    COL_STREET = 1 << 5,
    COL_CITY = 1 << 6,
    COL_STATE = 1 << 7,
    COL_COUNTRY = 1 << 8,
    COL_ZIP = 1 << 9,
    COL_BDAY = 1 << 10,
    COL_BMONTH = 1 << 11,
    COL_ANNIV = 1 << 12,
    COL_CUSTOM = 1 << 13 /* some CUSTOM FIELD n: see cf_allowed */
};

struct activity {
    /* Separate allocation, closed as soon as the activity completes: a
     * finished activity holds no libuv handle, so the loop can end and
     * uv_loop_close() succeeds at shutdown (the hooks run after uv_run). */
    uv_timer_t *timer; /* timer->data = this; NULL once done */
    struct activity *next;
    struct bulk *bulk;
    char *id;
    enum sb_api api;
    struct sb_account *acct;
    enum act_state state;
    enum act_kind kind;
    json_t *rows;  /* owned until done */
    size_t *lists; /* indices in acct->lists */
    size_t nlists;
    unsigned cols;       /* v2 declared columns */
    unsigned cf_allowed; /* v2: bit n-1 = CUSTOM FIELD n declared */
    size_t total, done, errors, imported;
    json_t *errs; /* v2: objects; v3: strings */
    int64_t created_at, started_at, finished_at;
};

struct bulk {
    struct sb_server *srv;
    struct activity *acts;
};

static struct bulk *bulk_of(struct sb_req *req)
{
    return *sb_server_slot(req->server, SB_SLOT_BULK);
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void timer_release(struct activity *a)
{
    if (a->timer == NULL)
        return;
    /* The handle's memory goes in its close callback (libuv's rule). */
    uv_timer_stop(a->timer);
    uv_close((uv_handle_t *)a->timer, on_timer_closed);
    a->timer = NULL;
}

static void act_free(struct activity *a)
{
    timer_release(a);
    free(a->id);
    free(a->lists);
    json_decref(a->rows);
    json_decref(a->errs);
    free(a);
}

/* ------------------------------------------------------------------------
 * Row → model
 * ------------------------------------------------------------------------ */

/* A deliberately plain address check (the real rules are unpublished):
 * one '@' with text on both sides, a dot inside the domain, no blanks. */
static int email_ok(const char *s)
{
    const char *at, *dot;
    size_t n, i;
    if (s == NULL)
        return 0;
    n = strlen(s);
    if (n < 3 || n > 80)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    at = strchr(s, '@');
    if (at == NULL || at == s || strchr(at + 1, '@') != NULL)
        return 0;
    dot = strrchr(at + 1, '.');
    if (dot == NULL || dot == at + 1 || dot[1] == '\0' ||
        strstr(at + 1, "..") != NULL)
        return 0;
    return 1;
}

static const char *str_of(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* 1..max from an integer or a numeric string; 0 when absent; -1 invalid. */
static int small_int(json_t *v, int max)
{
    long n;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        n = (long)json_integer_value(v);
    else if (json_is_string(v) && json_string_length(v) == 0)
        return 0;
    else if (!json_is_string(v) ||
             cts_parse_long(json_string_value(v), 1, max, &n) != 0)
        return -1;
    return n >= 1 && n <= max ? (int)n : -1;
}

#define MAX_CF 25

/* Gathers one row's sb_contact_in with its borrowed strings. */
struct row {
    struct sb_contact_in in;
    size_t cf_idx[MAX_CF];
    const char *cf_val[MAX_CF];
};

static void add_error(struct activity *a, size_t line, const char *email,
                      const char *what)
{
    if (a->api == SB_API_V2) {
        json_array_append_new(
            a->errs, json_pack("{s:s, s:I, s:s}", "message", what,
                               "line_number", (json_int_t)line, "email_address",
                               email != NULL ? email : ""));
    } else {
        char *s = cts_xasprintf("Line %zu: %s", line, what);
        json_array_append_new(a->errs, json_string(s));
        free(s);
    }
    a->errors++;
}

static int cf_add(struct activity *a, struct row *r, const char *name,
                  const char *value)
{
    long idx = sb_cfield_find(a->acct, name);
    if (idx < 0 || r->in.ncf >= MAX_CF)
        return -1;
    r->cf_idx[r->in.ncf] = (size_t)idx;
    r->cf_val[r->in.ncf] = value;
    r->in.ncf++;
    return 0;
}

/* v2 item: {email_addresses:[..], first_name, ..., addresses:[{..}],
 * custom_fields:[{name,value}]}.  Returns NULL or an error message. */
static const char *row_v2(struct activity *a, json_t *item, struct row *r)
{
    json_t *emails = json_object_get(item, "email_addresses");
    json_t *e0 = json_array_get(emails, 0), *addr, *cfs, *cf;
    const char *email = json_is_object(e0)
                            ? str_of(json_object_get(e0, "email_address"))
                            : str_of(e0);
    unsigned c = a->cols;
    size_t i;
    int n;

    r->in.f[SB_CF_EMAIL] = email;
    if (email == NULL || *email == '\0')
        return "Email address is required";
    if (!email_ok(email))
        return "Invalid email address";
    if (c & COL_FIRST)
        r->in.f[SB_CF_FIRST_NAME] = str_of(json_object_get(item, "first_name"));
    if (c & COL_LAST)
        r->in.f[SB_CF_LAST_NAME] = str_of(json_object_get(item, "last_name"));
    if (c & COL_JOB)
        r->in.f[SB_CF_JOB_TITLE] = str_of(json_object_get(item, "job_title"));
    if (c & COL_COMPANY)
        r->in.f[SB_CF_COMPANY_NAME] =
            str_of(json_object_get(item, "company_name"));
    if (c & COL_PHONE) {
        const char *p = str_of(json_object_get(item, "work_phone"));
        r->in.f[SB_CF_PHONE_KIND] = "work";
        if (p == NULL || *p == '\0') {
            p = str_of(json_object_get(item, "home_phone"));
            r->in.f[SB_CF_PHONE_KIND] = "home";
        }
        r->in.f[SB_CF_PHONE] = p;
        if (p == NULL || *p == '\0')
            r->in.f[SB_CF_PHONE_KIND] = NULL;
    }
    if (c & COL_ANNIV)
        r->in.f[SB_CF_ANNIVERSARY] =
            str_of(json_object_get(item, "anniversary"));
    if (c & COL_BMONTH) {
        n = small_int(json_object_get(item, "birthday_month"), 12);
        if (n < 0)
            return "Invalid birthday month";
        r->in.birthday_month = n;
    }
    if (c & COL_BDAY) {
        n = small_int(json_object_get(item, "birthday_day"), 31);
        if (n < 0)
            return "Invalid birthday day";
        r->in.birthday_day = n;
    }
    addr = json_array_get(json_object_get(item, "addresses"), 0);
    if (json_is_object(addr)) {
        const char *st = str_of(json_object_get(addr, "state_code"));
        if (st == NULL || *st == '\0')
            st = str_of(json_object_get(addr, "state"));
        r->in.f[SB_CF_ADDR_KIND] =
            sb_addr_kind_v3(str_of(json_object_get(addr, "address_type")));
        if (c & COL_STREET)
            r->in.f[SB_CF_STREET] = str_of(json_object_get(addr, "line1"));
        if (c & COL_CITY)
            r->in.f[SB_CF_CITY] = str_of(json_object_get(addr, "city"));
        if (c & COL_STATE)
            r->in.f[SB_CF_STATE] = st;
        if (c & COL_COUNTRY)
            r->in.f[SB_CF_COUNTRY] =
                str_of(json_object_get(addr, "country_code"));
        if (c & COL_ZIP)
            r->in.f[SB_CF_POSTAL_CODE] =
                str_of(json_object_get(addr, "postal_code"));
    }
    cfs = json_object_get(item, "custom_fields");
    json_array_foreach(cfs, i, cf)
    {
        const char *name = str_of(json_object_get(cf, "name"));
        const char *val = str_of(json_object_get(cf, "value"));
        long idx;
        if (name == NULL || val == NULL)
            continue;
        idx = sb_cfield_find(a->acct, name);
        /* Declared as CUSTOM FIELD n?  Otherwise ignored like any
         * undeclared property. */
        if (idx < 0 || idx >= 32 || !(a->cf_allowed & (1u << idx)))
            continue;
        if (cf_add(a, r, name, val) != 0)
            return "Too many custom fields";
    }
    return NULL;
}

/* v3 item: the flat vocabulary ("email", "first_name", ..., "cf:name"). */
static const char *row_v3(struct activity *a, json_t *item, struct row *r,
                          char *msg, size_t msglen)
{
    static const char *const PHONES[] = {"phone",       "work_phone",
                                         "home_phone",  "mobile_phone",
                                         "other_phone", NULL};
    static const char *const KINDS[] = {NULL, "work", "home", "mobile",
                                        "other"};
    const char *email = str_of(json_object_get(item, "email"));
    const char *key;
    json_t *v;
    size_t i;
    int n;

    r->in.f[SB_CF_EMAIL] = email;
    if ((email == NULL || *email == '\0') &&
        str_of(json_object_get(item, "sms_number")) != NULL)
        /* The real API takes SMS-only contacts; the sandbox's store is
         * keyed by email, so it says so instead of pretending. */
        return "SMS-only contacts (sms_number without email) are not "
               "supported by the sandbox";
    if (email == NULL || *email == '\0')
        return "Email address is required";
    if (!email_ok(email))
        return "Invalid email address";
    r->in.f[SB_CF_FIRST_NAME] = str_of(json_object_get(item, "first_name"));
    r->in.f[SB_CF_LAST_NAME] = str_of(json_object_get(item, "last_name"));
    r->in.f[SB_CF_JOB_TITLE] = str_of(json_object_get(item, "job_title"));
    r->in.f[SB_CF_COMPANY_NAME] = str_of(json_object_get(item, "company_name"));
    r->in.f[SB_CF_ANNIVERSARY] = str_of(json_object_get(item, "anniversary"));
    for (i = 0; PHONES[i] != NULL && r->in.f[SB_CF_PHONE] == NULL; i++) {
        r->in.f[SB_CF_PHONE] = str_of(json_object_get(item, PHONES[i]));
        r->in.f[SB_CF_PHONE_KIND] = KINDS[i];
    }
    r->in.f[SB_CF_STREET] = str_of(json_object_get(item, "street"));
    r->in.f[SB_CF_CITY] = str_of(json_object_get(item, "city"));
    r->in.f[SB_CF_STATE] = str_of(json_object_get(item, "state"));
    r->in.f[SB_CF_POSTAL_CODE] = str_of(json_object_get(item, "zip"));
    r->in.f[SB_CF_COUNTRY] = str_of(json_object_get(item, "country"));
    n = small_int(json_object_get(item, "birthday_month"), 12);
    if (n < 0)
        return "Invalid birthday_month";
    r->in.birthday_month = n;
    n = small_int(json_object_get(item, "birthday_day"), 31);
    if (n < 0)
        return "Invalid birthday_day";
    r->in.birthday_day = n;
    json_object_foreach(item, key, v)
    {
        if (strncmp(key, "cf:", 3) != 0)
            continue;
        if (!json_is_string(v)) {
            snprintf(msg, msglen, "Invalid value for custom field '%s'",
                     key + 3);
            return msg;
        }
        /* v3 bulk import: a "cf:NAME" custom field must already exist. */
        if (sb_cfield_find(a->acct, key + 3) < 0) {
            snprintf(msg, msglen, "Unknown custom field '%s'", key + 3);
            return msg;
        }
        if (cf_add(a, r, key + 3, json_string_value(v)) != 0)
            return "More than 25 custom fields";
    }
    return NULL;
}

static void import_row(struct activity *a, size_t i)
{
    struct sb_model *m = sb_server_model(a->bulk->srv);
    json_t *item = json_array_get(a->rows, i);
    struct row r;
    char msg[160];
    const char *err;

    memset(&r, 0, sizeof(r));
    if (!json_is_object(item)) {
        add_error(a, i + 1, NULL, "Not a contact object");
        return;
    }
    err = a->api == SB_API_V2 ? row_v2(a, item, &r)
                              : row_v3(a, item, &r, msg, sizeof(msg));
    if (err != NULL) {
        add_error(a, i + 1, r.in.f[SB_CF_EMAIL], err);
        return;
    }
    r.in.lists = a->lists;
    r.in.nlists = a->nlists;
    r.in.cf_idx = r.cf_idx;
    r.in.cf_values = r.cf_val;
    /* an import keeps an existing contact's permission and makes new ones
     * implicit, opted in by the account */
    r.in.actor = SB_ACTOR_ACCOUNT;
    r.in.perm_new = SB_PERM_IMPLICIT;
    r.in.via = a->api == SB_API_V2 ? "POST /v2/activities/addcontacts"
                                   : "POST /v3/activities/contacts_json_import";
    if (sb_contact_upsert(m, a->acct, &r.in, SB_UPSERT_MERGE, NULL, NULL,
                          NULL) != 0) {
        add_error(a, i + 1, r.in.f[SB_CF_EMAIL], "Contact could not be saved");
        return;
    }
    a->imported++;
}

/* Take one contact off the activity's lists.  v2 rows are emails and a
 * contact on none of the lists is an error row, as the real activity
 * reports it ("x (not found in subscriber list)"); v3 rows are contact ids
 * and only an unknown id is an error. */
static void remove_row(struct activity *a, size_t i)
{
    struct sb_model *m = sb_server_model(a->bulk->srv);
    const char *key = str_of(json_array_get(a->rows, i));
    uint64_t mask = 0;
    sb_contact_ref ref;
    int found;

    for (size_t l = 0; l < a->nlists; l++)
        if (a->lists[l] < 64)
            mask |= 1ull << a->lists[l];
    found = key != NULL &&
            (a->api == SB_API_V2 ? sb_contact_by_email(a->acct, key, &ref)
                                 : sb_contact_by_id(a->acct, key, &ref)) == 0;
    if (a->api == SB_API_V2) {
        if (!found || !sb_contact_remove_lists(m, a->acct, ref, mask)) {
            char *msg = cts_xasprintf("%s (not found in subscriber list)",
                                      key != NULL ? key : "");
            json_array_append_new(
                a->errs, json_pack("{s:s, s:i, s:s}", "message", msg,
                                   "line_number", 0, "email_address", ""));
            free(msg);
            a->errors++;
            return;
        }
    } else {
        if (!found) {
            add_error(a, i + 1, NULL, "Contact not found");
            return;
        }
        sb_contact_remove_lists(m, a->acct, ref, mask);
    }
    a->imported++;
}

/* ------------------------------------------------------------------------
 * The activity state machine (one timer per activity)
 * ------------------------------------------------------------------------ */

static uint64_t step_ms(void)
{
    return (uint64_t)sbo_get_options()->activity_ms / 3;
}

static void on_tick(uv_timer_t *t)
{
    struct activity *a = t->data;
    int64_t now = sb_now(a->bulk->srv);
    size_t chunk, end;

    switch (a->state) {
    case ACT_QUEUED:
        a->state = ACT_RUNNING;
        a->started_at = now;
        break;
    case ACT_RUNNING:
        /* Two halves, so a poll can catch percent_done in between. */
        chunk = (a->total + 1) / 2;
        end = a->done + chunk < a->total ? a->done + chunk : a->total;
        for (; a->done < end; a->done++) {
            if (a->kind == KIND_REMOVE)
                remove_row(a, a->done);
            else
                import_row(a, a->done);
        }
        if (a->done >= a->total) {
            a->state = ACT_DONE;
            a->finished_at = now;
            json_decref(a->rows); /* the rows are no longer needed */
            a->rows = NULL;
            timer_release(a);
            sb_log(a->bulk->srv, "bulk %s: %zu rows, %zu errors", a->id,
                   a->total, a->errors);
            return;
        }
        break;
    case ACT_DONE: return;
    }
    uv_timer_start(a->timer, on_tick, step_ms(), 0);
}

static int percent(const struct activity *a)
{
    if (a->state == ACT_DONE || a->total == 0)
        return a->state == ACT_DONE ? 100 : 0;
    return (int)(a->done * 100 / a->total);
}

static char *new_id(enum sb_api api)
{
    uint8_t r[16];
    char hex[33];
    if (cts_random_bytes(r, sizeof(r)) != 0)
        abort();
    if (api == SB_API_V2) {
        /* v2 ids look like "a07e1il69qzhdby44ro". */
        static const char AL[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        char id[20];
        size_t i;
        memcpy(id, "a07e1", 5);
        for (i = 5; i < 19; i++)
            id[i] = AL[r[i - 5] % (sizeof(AL) - 1)];
        id[19] = '\0';
        return cts_xstrdup(id);
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* UUID v4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    cts_hex(r, sizeof(r), hex);
    return cts_xasprintf("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
                         hex + 16, hex + 20);
}

static struct activity *act_new(struct sb_req *req, enum sb_api api,
                                json_t *rows, size_t *lists, size_t nlists)
{
    struct bulk *b = bulk_of(req);
    struct activity *a = cts_xcalloc(1, sizeof(*a));
    int rc;

    a->bulk = b;
    a->id = new_id(api);
    a->api = api;
    a->acct = req->account;
    a->rows = rows;
    a->lists = lists;
    a->nlists = nlists;
    a->total = json_array_size(rows);
    a->errs = json_array();
    a->created_at = sb_now(req->server);
    a->timer = cts_xmalloc(sizeof(*a->timer));
    rc = uv_timer_init(sb_server_loop(req->server), a->timer);
    if (rc != 0 || a->errs == NULL)
        abort(); /* uv_timer_init cannot fail on a live loop */
    a->timer->data = a;
    uv_timer_start(a->timer, on_tick, step_ms(), 0);
    a->next = b->acts;
    b->acts = a;
    return a;
}

static size_t unfinished(struct bulk *b, const struct sb_account *acct)
{
    struct activity *a;
    size_t n = 0;
    for (a = b->acts; a != NULL; a = a->next)
        if (a->acct == acct && a->state != ACT_DONE)
            n++;
    return n;
}

static struct activity *act_find(struct sb_req *req, enum sb_api api)
{
    struct activity *a;
    const char *id = req->nparams > 0 ? req->params[0] : "";
    for (a = bulk_of(req)->acts; a != NULL; a = a->next)
        if (a->api == api && a->acct == req->account && strcmp(a->id, id) == 0)
            return a;
    return NULL;
}

/* ------------------------------------------------------------------------
 * v2
 * ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bit;
} COLS[] = {
    {"EMAIL", 0},
    {"EMAIL ADDRESS", 0},
    {"FIRST NAME", COL_FIRST},
    {"LAST NAME", COL_LAST},
    {"JOB TITLE", COL_JOB},
    {"COMPANY NAME", COL_COMPANY},
    {"WORK PHONE", COL_PHONE},
    {"HOME PHONE", COL_PHONE},
    {"ADDRESS LINE 1", COL_STREET},
    {"CITY", COL_CITY},
    {"STATE", COL_STATE},
    {"US STATE/CA PROVINCE", COL_STATE},
    {"COUNTRY", COL_COUNTRY},
    {"ZIP/POSTAL CODE", COL_ZIP},
    {"BIRTHDAY_DAY", COL_BDAY},
    {"BIRTHDAY_MONTH", COL_BMONTH},
    {"ANNIVERSARY", COL_ANNIV},
};

static void parse_columns(json_t *names, unsigned *cols, unsigned *cf)
{
    size_t i, k;
    json_t *v;
    *cols = 0;
    *cf = 0;
    json_array_foreach(names, i, v)
    {
        const char *s = str_of(v);
        long n;
        if (s == NULL)
            continue;
        for (k = 0; k < sizeof(COLS) / sizeof(COLS[0]); k++)
            if (cts_streq_nocase(s, COLS[k].name))
                *cols |= COLS[k].bit;
        if (strncasecmp(s, "CUSTOM FIELD ", 13) == 0 &&
            cts_parse_long(s + 13, 1, 32, &n) == 0)
            *cf |= 1u << (n - 1);
    }
}

/* Resolve list ids (strings or numbers) to indices; NULL + *bad set to the
 * offending id on failure. */
static size_t *resolve_lists(const struct sb_account *acct, json_t *ids,
                             size_t *n, char *bad, size_t badlen)
{
    size_t *out = cts_xcalloc(json_array_size(ids) + 1, sizeof(*out));
    size_t i;
    json_t *v;
    *n = 0;
    json_array_foreach(ids, i, v)
    {
        char buf[64];
        const char *id = str_of(v);
        long idx;
        if (json_is_integer(v)) {
            snprintf(buf, sizeof(buf), "%lld",
                     (long long)json_integer_value(v));
            id = buf;
        }
        idx = id != NULL ? sb_list_find(acct, id) : -1;
        if (idx < 0) {
            snprintf(bad, badlen, "%s", id != NULL ? id : "(not a string)");
            free(out);
            return NULL;
        }
        out[(*n)++] = (size_t)idx;
    }
    return out;
}

/* What every v2 activity POST checks: a JSON body of at most 4 MB, 1 to
 * max_rows rows of import_data, existing lists, room in the queue.  On
 * success sets *lidx (owned) and *nl and returns import_data (borrowed
 * from *body); else NULL after replying.  *body is the parsed body (NULL
 * when it was not parsed) for the caller to release. */
static json_t *v2_activity_body(struct sb_req *req, struct sb_res *res,
                                json_t **body, size_t max_rows,
                                const char *too_many, size_t **lidx, size_t *nl)
{
    json_t *rows, *lists;
    char bad[64], msg[160];

    *body = NULL;
    if (req->body_len > MAX_BYTES) {
        sb_res_error_v2(res, 400, "json.max.length.violation",
                        "The request body exceeds the 4 MB limit of a bulk "
                        "activity.");
        return NULL;
    }
    *body = sb_req_json(req);
    if (!json_is_object(*body)) {
        sb_res_error_v2(res, 400, "json.parse.error",
                        "The request body is not a JSON object.");
        return NULL;
    }
    rows = json_object_get(*body, "import_data");
    lists = json_object_get(*body, "lists");
    if (!json_is_array(rows) || json_array_size(rows) == 0) {
        sb_res_error_v2(res, 400, "json.field.import_data.required",
                        "import_data must be a non-empty array.");
        return NULL;
    }
    if (json_array_size(rows) > max_rows) {
        sb_res_error_v2(res, 400, "json.max.length.violation", too_many);
        return NULL;
    }
    if (!json_is_array(lists) || json_array_size(lists) == 0) {
        sb_res_error_v2(res, 400, "json.field.lists.required",
                        "lists must name at least one contact list.");
        return NULL;
    }
    *lidx = resolve_lists(req->account, lists, nl, bad, sizeof(bad));
    if (*lidx == NULL) {
        snprintf(msg, sizeof(msg), "List %s does not exist.", bad);
        sb_res_error_v2(res, 400, "json.field.lists.invalid", msg);
        return NULL;
    }
    if (unfinished(bulk_of(req), req->account) >= MAX_QUEUED) {
        free(*lidx);
        sb_res_error_v2(res, 403, "activity.limit.exceeded",
                        "You exceeded 1,000 queued activities for this "
                        "account.");
        return NULL;
    }
    return rows;
}

static const char *v2_type(const struct activity *a)
{
    return a->kind == KIND_REMOVE ? "REMOVE_CONTACTS_FROM_LISTS"
                                  : "ADD_CONTACTS";
}

static int v2_created(struct sb_res *res, const struct activity *a)
{
    sb_res_json(res, 201,
                json_pack("{s:s, s:s, s:i, s:I}", "id", a->id, "type",
                          v2_type(a), "error_count", 0, "contact_count",
                          (json_int_t)a->total));
    return SB_REPLY;
}

static int v2_addcontacts(struct sb_req *req, struct sb_res *res)
{
    json_t *body, *rows;
    struct activity *a;
    size_t *lidx, nl;

    rows = v2_activity_body(req, res, &body, MAX_ROWS,
                            "An activity is limited to 40,000 contacts.", &lidx,
                            &nl);
    if (rows == NULL) {
        json_decref(body);
        return SB_REPLY;
    }
    if (!json_is_array(json_object_get(body, "column_names"))) {
        free(lidx);
        json_decref(body);
        sb_res_error_v2(res, 400, "json.field.column_names.required",
                        "column_names is required (it may be empty).");
        return SB_REPLY;
    }
    a = act_new(req, SB_API_V2, json_incref(rows), lidx, nl);
    parse_columns(json_object_get(body, "column_names"), &a->cols,
                  &a->cf_allowed);
    json_decref(body);
    return v2_created(res, a);
}

/*
 * POST /v2/activities/removefromlists: {"import_data":[{"email_addresses":
 * ["a@example.com"]},...],"lists":["1",...]} — at most 20,000 contacts and
 * 4 MB.  The contacts stay, on their other lists, with their status.
 */
static int v2_removefromlists(struct sb_req *req, struct sb_res *res)
{
    json_t *body, *rows, *emails, *item;
    struct activity *a;
    size_t *lidx, nl, i;

    rows = v2_activity_body(req, res, &body, 20000,
                            "An activity is limited to 20,000 contacts.", &lidx,
                            &nl);
    if (rows == NULL) {
        json_decref(body);
        return SB_REPLY;
    }
    emails = json_array();
    json_array_foreach(rows, i, item)
    {
        json_t *e0 =
            json_array_get(json_object_get(item, "email_addresses"), 0);
        const char *e = json_is_object(e0)
                            ? str_of(json_object_get(e0, "email_address"))
                            : str_of(e0);
        json_array_append_new(emails, json_string(e != NULL ? e : ""));
    }
    json_decref(body);
    a = act_new(req, SB_API_V2, emails, lidx, nl);
    a->kind = KIND_REMOVE;
    return v2_created(res, a);
}

static const char *v2_status(const struct activity *a)
{
    switch (a->state) {
    case ACT_QUEUED: return "QUEUED";
    case ACT_RUNNING: return "RUNNING";
    default: return "COMPLETE";
    }
}

static int v2_activity(struct sb_req *req, struct sb_res *res)
{
    struct activity *a = act_find(req, SB_API_V2);
    char t[32];
    json_t *j;

    if (a == NULL) {
        sb_res_error_v2(res, 404, "http.status.not_found",
                        "The requested activity was not found.");
        return SB_REPLY;
    }
    j = json_pack("{s:s, s:s, s:s, s:O, s:[], s:s}", "id", a->id, "type",
                  v2_type(a), "status", v2_status(a), "errors", a->errs,
                  "warnings", "file_name", "");
    iso_time(a->created_at, t);
    json_object_set_new(j, "created_date", json_string(t));
    if (a->state != ACT_QUEUED) {
        iso_time(a->started_at, t);
        json_object_set_new(j, "start_date", json_string(t));
    }
    if (a->state == ACT_DONE) {
        iso_time(a->finished_at, t);
        json_object_set_new(j, "finish_date", json_string(t));
    }
    json_object_set_new(j, "error_count", json_integer((json_int_t)a->errors));
    json_object_set_new(j, "contact_count", json_integer((json_int_t)a->total));
    sb_res_json(res, 200, j);
    return SB_REPLY;
}

/* ------------------------------------------------------------------------
 * v3
 * ------------------------------------------------------------------------ */

static const char *v3_state(const struct activity *a)
{
    switch (a->state) {
    case ACT_QUEUED: return "initialized";
    case ACT_RUNNING: return "processing";
    default: return "completed";
    }
}

static json_t *v3_json(const struct activity *a)
{
    char t[32], *href = cts_xasprintf("/v3/activities/%s", a->id);
    json_t *j, *st;

    iso_time(a->created_at, t);
    j = json_pack("{s:s, s:s, s:s, s:i, s:O}", "activity_id", a->id, "state",
                  v3_state(a), "created_at", t, "percent_done", percent(a),
                  "activity_errors", a->errs);
    iso_time(a->state == ACT_DONE      ? a->finished_at
             : a->state == ACT_RUNNING ? a->started_at
                                       : a->created_at,
             t);
    json_object_set_new(j, "updated_at", json_string(t));
    if (a->state != ACT_QUEUED) {
        iso_time(a->started_at, t);
        json_object_set_new(j, "started_at", json_string(t));
    }
    if (a->state == ACT_DONE) {
        iso_time(a->finished_at, t);
        json_object_set_new(j, "completed_at", json_string(t));
    }
    if (a->kind == KIND_REMOVE)
        st =
            json_pack("{s:I, s:I, s:I}", "items_total_count",
                      (json_int_t)a->total, "items_completed_count",
                      (json_int_t)a->done, "list_count", (json_int_t)a->nlists);
    else
        st = json_pack(
            "{s:I, s:I, s:I, s:I, s:i, s:i, s:I}", "items_total_count",
            (json_int_t)a->total, "items_completed_count", (json_int_t)a->done,
            "person_count", (json_int_t)a->imported, "error_count",
            (json_int_t)a->errors, "correctable_count", 0,
            "cannot_add_to_list_count", 0, "list_count", (json_int_t)a->nlists);
    json_object_set_new(j, "status", st);
    json_object_set_new(j, "_links",
                        json_pack("{s:{s:s}}", "self", "href", href));
    free(href);
    return j;
}

/*
 * The 4 MB rule: the real API "only imports the first 4 MB and drops the
 * remaining data".  Rows are measured by their compact serialisation (never
 * longer than what a compact client sent), and the first row whose end
 * lies past 4 MB is dropped with all that follow.
 */
static void drop_past_4mb(json_t *rows, size_t body_len)
{
    size_t i, pos = sizeof("{\"import_data\":[") - 1;
    if (body_len <= MAX_BYTES)
        return;
    for (i = 0; i < json_array_size(rows); i++) {
        char *s = json_dumps(json_array_get(rows, i), JSON_COMPACT);
        pos += (s != NULL ? strlen(s) : 0) + 1;
        free(s);
        if (pos > MAX_BYTES)
            break;
    }
    while (json_array_size(rows) > i)
        json_array_remove(rows, json_array_size(rows) - 1);
}

/* A v3 activity's list_ids (1 to 50 existing lists) → indices (owned),
 * once the account has room in its queue; NULL after replying. */
static size_t *v3_target_lists(struct sb_req *req, struct sb_res *res,
                               json_t *lists, size_t *nl)
{
    size_t *lidx;
    char bad[64], msg[160];
    if (!json_is_array(lists) || json_array_size(lists) == 0 ||
        json_array_size(lists) > MAX_LISTS) {
        sb_res_error_v3(res, 400, "activity.validation.error",
                        "list_ids must hold 1 to 50 list ids.");
        return NULL;
    }
    lidx = resolve_lists(req->account, lists, nl, bad, sizeof(bad));
    if (lidx == NULL) {
        snprintf(msg, sizeof(msg), "List %s does not exist.", bad);
        sb_res_error_v3(res, 400, "activity.validation.error", msg);
        return NULL;
    }
    if (unfinished(bulk_of(req), req->account) >= MAX_QUEUED) {
        free(lidx);
        sb_res_error_v3_obj(res, 429, "too_many_requests",
                            "Too many requests. You exceeded 1,000 queued "
                            "activities for this user account.");
        return NULL;
    }
    return lidx;
}

static int v3_json_import(struct sb_req *req, struct sb_res *res)
{
    json_t *body = sb_req_json(req), *rows, *lists;
    struct activity *a;
    size_t *lidx, nl;

    if (!json_is_object(body)) {
        sb_res_error_v3(res, 400, "activity.validation.error",
                        "The request body is not a JSON object.");
        goto out;
    }
    rows = json_object_get(body, "import_data");
    lists = json_object_get(body, "list_ids");
    if (!json_is_array(rows) || json_array_size(rows) == 0) {
        sb_res_error_v3(res, 400, "activity.validation.error",
                        "import_data must be a non-empty array.");
        goto out;
    }
    if (json_array_size(rows) > MAX_ROWS) {
        sb_res_error_v3(res, 400, "activity.validation.error",
                        "The total number of contacts in the JSON payload "
                        "cannot exceed 40,000.");
        goto out;
    }
    lidx = v3_target_lists(req, res, lists, &nl);
    if (lidx == NULL)
        goto out;
    drop_past_4mb(rows, req->body_len);
    a = act_new(req, SB_API_V3, json_incref(rows), lidx, nl);
    sb_res_json(res, 201, v3_json(a));
out:
    json_decref(body);
    return SB_REPLY;
}

/* The contact ids a remove_list_memberships source names: contact_ids as
 * given, or the members of source.list_ids / every active contact, less
 * exclude.contact_ids.  NULL with msg set when the body is invalid. */
static json_t *remove_source(struct sb_account *acct, json_t *body,
                             const char **msg)
{
    json_t *src = json_object_get(body, "source");
    json_t *ids = json_object_get(src, "contact_ids");
    json_t *lists = json_object_get(src, "list_ids");
    json_t *all = json_object_get(src, "all_active_contacts");
    json_t *excl =
        json_object_get(json_object_get(body, "exclude"), "contact_ids");
    json_t *out, *v;
    struct sb_query q;
    size_t i, n = (ids != NULL) + (lists != NULL) + json_is_true(all) +
                  (json_object_get(src, "tag_ids") != NULL) +
                  (json_object_get(src, "engagement_level") != NULL);

    if (!json_is_object(src) || n != 1) {
        *msg = "source must name exactly one of contact_ids, list_ids, "
               "all_active_contacts, tag_ids, engagement_level.";
        return NULL;
    }
    if (ids != NULL) {
        if (!json_is_array(ids) || json_array_size(ids) == 0 ||
            json_array_size(ids) > 500) {
            *msg = "source.contact_ids must hold 1 to 500 contact ids.";
            return NULL;
        }
        json_array_foreach(ids, i, v)
        {
            if (!json_is_string(v)) {
                *msg = "source.contact_ids must be strings.";
                return NULL;
            }
        }
        return json_incref(ids);
    }
    if (lists == NULL && !json_is_true(all)) {
        *msg = "The sandbox supports the contact_ids, list_ids and "
               "all_active_contacts sources only.";
        return NULL;
    }
    memset(&q, 0, sizeof(q));
    if (lists != NULL) {
        if (!json_is_array(lists) || json_array_size(lists) == 0 ||
            json_array_size(lists) > MAX_LISTS) {
            *msg = "source.list_ids must hold 1 to 50 list ids.";
            return NULL;
        }
        json_array_foreach(lists, i, v)
        {
            long li = sb_list_find(acct, str_of(v));
            if (li < 0 || li >= 64) {
                *msg = "source.list_ids names a list that does not exist.";
                return NULL;
            }
            q.lists |= 1ull << li;
        }
        q.status = SB_ST_DEFAULT;
    } else {
        q.status = SB_ST_ACTIVE;
    }
    out = json_array();
    for (i = 0; i < sb_contact_count(acct); i++) {
        char id[48];
        size_t k;
        json_t *c, *e;
        int skip = 0;
        if (!sb_contact_match(acct, i, &q))
            continue;
        c = sb_contact_json_v3(acct, i, 0);
        snprintf(id, sizeof(id), "%s",
                 json_string_value(json_object_get(c, "contact_id")));
        json_decref(c);
        json_array_foreach(excl, k, e)
        {
            if (str_of(e) != NULL && strcasecmp(str_of(e), id) == 0)
                skip = 1;
        }
        if (!skip)
            json_array_append_new(out, json_string(id));
    }
    return out;
}

/*
 * POST /v3/activities/remove_list_memberships:
 * {"source":{"contact_ids":[<=500]} | {"list_ids":[..]} |
 *  {"all_active_contacts":true}, "exclude":{"contact_ids":[..]},
 *  "list_ids":[<=50]} → 201 ActivityListsMembership.  The contacts stay,
 * with their permission and their other lists.
 */
static int v3_remove_lists(struct sb_req *req, struct sb_res *res)
{
    json_t *body = sb_req_json(req), *rows;
    struct activity *a;
    size_t *lidx, nl;
    const char *why = NULL;

    if (!json_is_object(body)) {
        sb_res_error_v3(res, 400, "activity.validation.error",
                        "The request body is not a JSON object.");
        goto out;
    }
    lidx = v3_target_lists(req, res, json_object_get(body, "list_ids"), &nl);
    if (lidx == NULL)
        goto out;
    rows = remove_source(req->account, body, &why);
    if (rows == NULL) {
        free(lidx);
        sb_res_error_v3(res, 400, "activity.validation.error", why);
        goto out;
    }
    a = act_new(req, SB_API_V3, rows, lidx, nl);
    a->kind = KIND_REMOVE;
    sb_res_json(res, 201, v3_json(a));
out:
    json_decref(body);
    return SB_REPLY;
}

static int v3_activity(struct sb_req *req, struct sb_res *res)
{
    struct activity *a = act_find(req, SB_API_V3);
    if (a == NULL) {
        sb_res_error_v3(res, 404, "activity.not_found",
                        "The requested activity was not found.");
        return SB_REPLY;
    }
    sb_res_json(res, 200, v3_json(a));
    return SB_REPLY;
}

/* ------------------------------------------------------------------------
 * Registration and lifetime
 * ------------------------------------------------------------------------ */

static void drop_all(void *arg)
{
    /* A reset empties the accounts: activities (and their pending
     * timers) go too, so none writes into the fresh store afterwards. */
    struct bulk *b = arg;
    while (b->acts != NULL) {
        struct activity *a = b->acts;
        b->acts = a->next;
        act_free(a);
    }
}

static void on_close(void *arg)
{
    struct bulk *b = arg;
    drop_all(b);
    *sb_server_slot(b->srv, SB_SLOT_BULK) = NULL;
    free(b);
}

void sb_bulk_register(struct sb_server *srv)
{
    struct bulk *b = cts_xcalloc(1, sizeof(*b));
    b->srv = srv;
    *sb_server_slot(srv, SB_SLOT_BULK) = b;
    sb_server_on_reset(srv, drop_all, b);
    sb_server_on_close(srv, on_close, b);

    sb_route_add(srv, "POST", "/v2/activities/addcontacts", v2_addcontacts,
                 SB_ROUTE_V2 | SB_ROUTE_JSON_BODY);
    sb_route_add(srv, "POST", "/v2/activities/removefromlists",
                 v2_removefromlists, SB_ROUTE_V2 | SB_ROUTE_JSON_BODY);
    sb_route_add(srv, "GET", "/v2/activities/{id}", v2_activity, SB_ROUTE_V2);
    sb_route_add(srv, "POST", "/v3/activities/contacts_json_import",
                 v3_json_import, SB_ROUTE_V3 | SB_ROUTE_JSON_BODY);
    sb_route_add(srv, "POST", "/v3/activities/remove_list_memberships",
                 v3_remove_lists, SB_ROUTE_V3 | SB_ROUTE_JSON_BODY);
    sb_route_add(srv, "GET", "/v3/activities/{id}", v3_activity, SB_ROUTE_V3);
}
