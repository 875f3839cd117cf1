/*
 * consent.c — permission to send: bodies and parsers of the consent-safe
 * path (see cts_consent.h).  Pure: jansson only.
 *
 * jansson rules obeyed throughout: json_object_set_new/json_array_append_new
 * take the value even when they fail; json_object_set/json_array_set add a
 * reference (a value may sit in several containers, never in a cycle);
 * strings from json_dumps are freed with free().
 */
#include "cts_consent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "cts_http.h" /* cts_url_escape */
#include "cts_pager.h"
#include "cts_url.h"

/* The API's limits on a contact (reference: ContactPutRequest). */
#define V3_MAX_LISTS    50
#define V3_MAX_CUSTOM   25
#define V3_MAX_PER_KIND 3 /* phone_numbers, street_addresses */

/* ---- small JSON helpers ---- */

static json_t *load(const char *body, size_t len)
{
    json_error_t jerr;

    if (body == NULL || len == 0)
        return NULL;
    return json_loadb(body, len, 0, &jerr);
}

static json_t *load_str(const char *s)
{
    return s != NULL ? load(s, strlen(s)) : NULL;
}

/* obj.key as a string (borrowed), or NULL. */
static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? cts_xstrdup(s) : NULL;
}

static int str_is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

/* Compact JSON text of o (owned), or NULL when out of memory. */
static char *dump(const json_t *o)
{
    return json_dumps(o, JSON_COMPACT);
}

static int oom(struct cts_error *err)
{
    return cts_error_set(err, UV_ENOMEM, "out of memory");
}

/* ---- v3: a new contact ---- */

char *cts_consent_v3_create_body(const struct cts_contact *c,
                                 char *const *lists, size_t nlists,
                                 const struct cts_cf_ids *cf,
                                 enum cts_permission perm,
                                 struct cts_error *err)
{
    char *body = cts_api_v3_contact_body(c, lists, nlists, cf, err);
    json_t *o;
    char *out;

    if (body == NULL || perm != CTS_PERM_EXPLICIT)
        return body;
    /* The contact's own sign-up: they are the source of the consent. */
    o = load_str(body);
    free(body);
    if (o == NULL ||
        json_object_set_new(o, "create_source", json_string("Contact")) != 0 ||
        json_object_set_new(json_object_get(o, "email_address"),
                            "permission_to_send",
                            json_string("explicit")) != 0) {
        json_decref(o);
        oom(err);
        return NULL;
    }
    out = dump(o);
    json_decref(o);
    if (out == NULL)
        oom(err);
    return out;
}

/* ---- v3: reading a contact ---- */

/* The email_address.opt_out_date of an unsubscribed v3 contact, or NULL;
 * *yes says whether it is unsubscribed at all. */
static const char *v3_unsubscribed(const json_t *contact, int *yes)
{
    const json_t *em = json_object_get(contact, "email_address");

    *yes = str_is(str_at(em, "permission_to_send"), "unsubscribed");
    return *yes ? str_at(em, "opt_out_date") : NULL;
}

int cts_consent_v3_opted_out(const char *contact_json, char **since)
{
    json_t *c = load_str(contact_json);
    const char *date;
    int yes;

    if (since != NULL)
        *since = NULL;
    if (!json_is_object(c)) {
        json_decref(c);
        return CTS_EJSON;
    }
    date = v3_unsubscribed(c, &yes);
    if (yes && since != NULL)
        *since = dup_or_null(date);
    json_decref(c);
    return yes;
}

int cts_consent_v3_deleted(const char *contact_json)
{
    json_t *c = load_str(contact_json);
    const char *at;
    int yes;

    if (!json_is_object(c)) {
        json_decref(c);
        return CTS_EJSON;
    }
    at = json_string_value(json_object_get(c, "deleted_at"));
    yes = at != NULL && at[0] != '\0';
    json_decref(c);
    return yes;
}

char *cts_consent_v3_search_query(const char *email)
{
    char *e = cts_url_escape(email);
    char *q = cts_xasprintf("email=%s&status=all&include=%s", e,
                            CTS_CONSENT_V3_INCLUDE);

    free(e);
    return q;
}

int cts_consent_v3_parse_search(const char *body, size_t len, char **contact_id,
                                char **contact_json)
{
    json_t *root = load(body, len), *contacts, *first;
    int rc = CTS_EJSON;

    *contact_id = NULL;
    *contact_json = NULL;
    contacts = json_object_get(root, "contacts");
    if (json_is_array(contacts)) {
        rc = 0;
        first = json_array_get(contacts, 0);
        if (first != NULL) {
            const char *id = str_at(first, "contact_id");
            if (id == NULL) {
                rc = CTS_EJSON;
            } else {
                *contact_json = dump(first);
                if (*contact_json == NULL)
                    rc = UV_ENOMEM;
                else
                    *contact_id = cts_xstrdup(id);
            }
        }
    }
    json_decref(root);
    return rc;
}

/* ---- v3: the PUT body ---- */

/* dst[key] = the array src[key] with each object item cut down to the
 * members a PUT takes (the GET adds ids and timestamps); nothing when src
 * has no such array. */
static int copy_items(json_t *dst, json_t *src, const char *key,
                      const char *const *members, size_t nmembers)
{
    json_t *in = json_object_get(src, key), *out, *item;
    size_t i, k;

    if (!json_is_array(in))
        return 0;
    out = json_array();
    if (out == NULL || json_object_set_new(dst, key, out) != 0)
        return -1;
    json_array_foreach(in, i, item)
    {
        json_t *o;
        if (!json_is_object(item))
            continue;
        o = json_object();
        if (o == NULL || json_array_append_new(out, o) != 0)
            return -1;
        for (k = 0; k < nmembers; k++) {
            json_t *v = json_object_get(item, members[k]);
            if (v != NULL && !json_is_null(v) &&
                json_object_set(o, members[k], v) != 0)
                return -1;
        }
    }
    return 0;
}

/* Top-level fields a PUT replaces (absent ones become null). */
static const char *const v3_scalars[] = {
    "first_name",  "last_name",      "job_title",   "company_name",
    "anniversary", "birthday_month", "birthday_day"};

/*
 * The existing contact as a PUT body: what the account holds, nothing
 * changed, with update_source.  NULL when the contact has no address (not
 * a contact) or on out of memory.
 */
static json_t *v3_put_base(json_t *ex, const char *update_source)
{
    static const char *const cf[] = {"custom_field_id", "value"};
    static const char *const ph[] = {"phone_number", "kind"};
    static const char *const sa[] = {"kind",  "street",      "city",
                                     "state", "postal_code", "country"};
    static const char *const keep[] = {"list_memberships", "taggings", "notes"};
    json_t *em = json_object_get(ex, "email_address");
    json_t *addr = json_object_get(em, "address");
    json_t *perm = json_object_get(em, "permission_to_send");
    json_t *o, *e;
    size_t i;
    int rc = 0;

    if (!json_is_string(addr))
        return NULL;
    o = json_object();
    e = json_object();
    if (o == NULL || e == NULL || json_object_set_new(o, "email_address", e)) {
        json_decref(o);
        return NULL;
    }
    /* The permission goes back exactly as the account holds it: an import
     * never grants or withdraws consent. */
    rc |= json_object_set(e, "address", addr);
    if (json_is_string(perm))
        rc |= json_object_set(e, "permission_to_send", perm);
    for (i = 0; i < sizeof(v3_scalars) / sizeof(v3_scalars[0]); i++) {
        json_t *v = json_object_get(ex, v3_scalars[i]);
        if (json_is_string(v) || json_is_integer(v))
            rc |= json_object_set(o, v3_scalars[i], v);
    }
    rc |= json_object_set_new(o, "update_source", json_string(update_source));
    rc |= copy_items(o, ex, "custom_fields", cf, 2);
    rc |= copy_items(o, ex, "phone_numbers", ph, 2);
    rc |= copy_items(o, ex, "street_addresses", sa, 6);
    for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        json_t *v = json_object_get(ex, keep[i]);
        if (json_is_array(v))
            rc |= json_object_set_new(o, keep[i], json_deep_copy(v));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Index of the object in a whose `key` is the string want, or -1. */
static long find_by(const json_t *a, const char *key, const char *want)
{
    size_t i;
    const json_t *it;

    if (want == NULL)
        return -1;
    json_array_foreach(a, i, it)
    {
        if (str_is(str_at(it, key), want))
            return (long)i;
    }
    return -1;
}

/* Index of the item of a equal to item (id NULL) or with the same member
 * id, or -1. */
static long find_same(const json_t *a, const json_t *item, const char *id)
{
    size_t i;
    const json_t *it;

    if (id != NULL)
        return find_by(a, id, str_at(item, id));
    json_array_foreach(a, i, it)
    {
        if (json_equal(it, item))
            return (long)i;
    }
    return -1;
}

/* How merge_array treats an item of the row that matches one of put's. */
enum on_match {
    REPLACE, /* lists, custom fields: the row's item; over max: refused */
    UPDATE   /* phones, addresses (by kind): the row's members over the
                entry's (a street the file has no column for stays); a new
                kind only while there is room, the contact's kept */
};

/* The row's array `key` laid into put's, items matched by member id (or
 * whole, id NULL).  Returns 0, or CTS_EDATA (more than max items for
 * REPLACE: the API would refuse it) or UV_ENOMEM with err. */
static int merge_array(json_t *put, json_t *row, const char *key,
                       const char *id, enum on_match how, size_t max,
                       struct cts_error *err)
{
    json_t *ra = json_object_get(row, key), *pa, *item;
    size_t i;

    if (!json_is_array(ra) || json_array_size(ra) == 0)
        return 0;
    pa = cts_json_array_member(put, key);
    if (pa == NULL)
        return oom(err);
    json_array_foreach(ra, i, item)
    {
        long at = find_same(pa, item, id);
        int rc = 0;
        if (at >= 0 && how == UPDATE)
            rc = json_object_update(json_array_get(pa, (size_t)at), item);
        else if (at >= 0)
            rc = json_array_set(pa, (size_t)at, item);
        else if (how == REPLACE || json_array_size(pa) < max)
            rc = json_array_append(pa, item);
        if (rc != 0)
            return oom(err);
    }
    if (json_array_size(pa) > max)
        return cts_error_set(err, CTS_EDATA,
                             "the contact would have %zu %s; the API allows "
                             "%zu",
                             json_array_size(pa), key, max);
    return 0;
}

/* Lay the row's values (a POST /contacts body, parsed) over put. */
static int v3_lay_over(json_t *put, json_t *row, struct cts_error *err)
{
    size_t i;
    int rc;

    for (i = 0; i < sizeof(v3_scalars) / sizeof(v3_scalars[0]); i++) {
        json_t *v = json_object_get(row, v3_scalars[i]);
        if (v != NULL && json_object_set(put, v3_scalars[i], v) != 0)
            return oom(err);
    }
    /* Lists: the contact's own plus ours, never fewer.  Custom fields by
     * id: the row's value replaces that field's only. */
    rc = merge_array(put, row, "list_memberships", NULL, REPLACE, V3_MAX_LISTS,
                     err);
    if (rc == 0)
        rc = merge_array(put, row, "custom_fields", "custom_field_id", REPLACE,
                         V3_MAX_CUSTOM, err);
    if (rc == 0)
        rc = merge_array(put, row, "phone_numbers", "kind", UPDATE,
                         V3_MAX_PER_KIND, err);
    if (rc == 0)
        rc = merge_array(put, row, "street_addresses", "kind", UPDATE,
                         V3_MAX_PER_KIND, err);
    return rc;
}

int cts_consent_v3_merge(const char *contact_json, const struct cts_contact *c,
                         char *const *lists, size_t nlists,
                         const struct cts_cf_ids *cf, char **body, char **since,
                         struct cts_error *err)
{
    struct cts_error local = {0};
    struct cts_error *e = err != NULL ? err : &local;
    json_t *ex = load_str(contact_json), *base = NULL, *put = NULL;
    json_t *row = NULL;
    char *rowbody = NULL;
    const char *date;
    int rc, yes;

    *body = NULL;
    if (since != NULL)
        *since = NULL;
    if (!json_is_object(ex)) {
        rc = cts_error_set(e, CTS_EJSON, "the existing contact is not JSON");
        goto out;
    }
    date = v3_unsubscribed(ex, &yes);
    if (yes) {
        if (since != NULL)
            *since = dup_or_null(date);
        rc = CTS_CONSENT_OPTED_OUT;
        goto out;
    }
    base = v3_put_base(ex, "Account");
    if (base == NULL) {
        rc = cts_error_set(e, CTS_EJSON,
                           "the existing contact has no email address");
        goto out;
    }
    /* The row's values in their API shape, checked the same way as for a
     * new contact: one place knows how a row becomes v3 JSON. */
    rowbody = cts_api_v3_contact_body(c, lists, nlists, cf, e);
    if (rowbody == NULL) {
        rc = e->code != 0 ? e->code : CTS_EDATA;
        goto out;
    }
    row = load_str(rowbody);
    put = json_deep_copy(base);
    if (row == NULL || put == NULL) {
        rc = oom(e);
        goto out;
    }
    rc = v3_lay_over(put, row, e);
    if (rc != 0)
        goto out;
    if (json_equal(put, base)) {
        rc = CTS_CONSENT_UNCHANGED;
        goto out;
    }
    *body = dump(put);
    rc = *body != NULL ? CTS_CONSENT_WRITE : oom(e);
out:
    free(rowbody);
    json_decref(row);
    json_decref(put);
    json_decref(base);
    json_decref(ex);
    return rc;
}

int cts_consent_v3_unsubscribe(const char *contact_json, const char *reason,
                               char **body, struct cts_error *err)
{
    json_t *ex = load_str(contact_json), *put = NULL, *em, *why;
    int rc, yes = 0;

    *body = NULL;
    if (json_is_object(ex))
        (void)v3_unsubscribed(ex, &yes);
    if (yes) {
        rc = CTS_CONSENT_OPTED_OUT;
        goto out;
    }
    put = json_is_object(ex) ? v3_put_base(ex, "Contact") : NULL;
    if (put == NULL) {
        rc = cts_error_set(err, CTS_EJSON, "the existing contact is not JSON");
        goto out;
    }
    /* On the contact's behalf: they asked, so the source is Contact. */
    em = json_object_get(put, "email_address");
    why = reason != NULL ? json_string(reason) : NULL;
    if (json_object_set_new(em, "permission_to_send",
                            json_string("unsubscribed")) != 0 ||
        json_object_set_new(em, "opt_out_reason",
                            why != NULL ? why : json_null()) != 0) {
        rc = oom(err);
        goto out;
    }
    *body = dump(put);
    rc = *body != NULL ? CTS_CONSENT_WRITE : oom(err);
out:
    json_decref(put);
    json_decref(ex);
    return rc;
}

/* ---- v2 ---- */

const char *cts_consent_v2_action_by(enum cts_permission p)
{
    /* OWNER never brings an opted-out contact back; VISITOR is the
     * contact's own action (a sign-up) and sends the welcome email. */
    return p == CTS_PERM_EXPLICIT ? "action_by=ACTION_BY_VISITOR"
                                  : "action_by=ACTION_BY_OWNER";
}

/* The first email address of a v2 contact (borrowed), or NULL. */
static json_t *v2_email(const json_t *contact)
{
    return json_array_get(json_object_get(contact, "email_addresses"), 0);
}

static int v2_is_optout(const json_t *contact)
{
    return str_is(str_at(contact, "status"), "OPTOUT") ||
           str_is(str_at(v2_email(contact), "status"), "OPTOUT");
}

int cts_consent_v2_opted_out(const char *contact_json, char **since)
{
    json_t *c = load_str(contact_json);
    int yes;

    if (since != NULL)
        *since = NULL;
    if (!json_is_object(c)) {
        json_decref(c);
        return CTS_EJSON;
    }
    yes = v2_is_optout(c);
    if (yes && since != NULL)
        *since = dup_or_null(str_at(v2_email(c), "opt_out_date"));
    json_decref(c);
    return yes;
}

int cts_consent_v2_merge(const char *contact_json, const struct cts_contact *c,
                         char *const *lists, size_t nlists, char **body,
                         char **since, struct cts_error *err)
{
    json_t *before = NULL, *after = NULL;
    char *merged;
    int rc;

    *body = NULL;
    rc = cts_consent_v2_opted_out(contact_json, since);
    if (rc < 0)
        return cts_error_set(err, rc, "the existing contact is not JSON");
    if (rc == 1)
        return CTS_CONSENT_OPTED_OUT;
    merged = cts_api_v2_merge_update(contact_json, c, lists, nlists, err);
    if (merged == NULL)
        return err != NULL && err->code != 0 ? err->code : CTS_EDATA;
    before = load_str(contact_json);
    after = load_str(merged);
    if (after == NULL) {
        rc = oom(err);
    } else if (json_equal(before, after)) {
        rc = CTS_CONSENT_UNCHANGED;
    } else {
        *body = merged;
        merged = NULL;
        rc = CTS_CONSENT_WRITE;
    }
    free(merged);
    json_decref(before);
    json_decref(after);
    return rc;
}

char *cts_consent_contact_path(const char *contact_id)
{
    char *e = cts_url_escape(contact_id);
    char *p = cts_xasprintf("contacts/%s", e);

    free(e);
    return p;
}

/* ---- listing the unsubscribed ---- */

char *cts_consent_optouts_query(enum cts_api api, const char *since)
{
    const char *base = api == CTS_API_V2 ? "status=OPTOUT&limit=500"
                                         : "status=unsubscribed&limit=500";
    char *e, *q;

    if (since == NULL || *since == '\0')
        return cts_xstrdup(base);
    e = cts_url_escape(since);
    q = cts_xasprintf("%s&%s=%s", base,
                      api == CTS_API_V2 ? "modified_since" : "updated_after",
                      e);
    free(e);
    return q;
}

size_t cts_consent_take_optouts(enum cts_api api, const json_t *items,
                                cts_consent_optout_fn fn, void *arg)
{
    const json_t *it;
    size_t i, n = 0;

    json_array_foreach(items, i, it)
    {
        const char *email, *date;
        int yes;
        if (api == CTS_API_V2) {
            yes = v2_is_optout(it);
            email = str_at(v2_email(it), "email_address");
            date = str_at(v2_email(it), "opt_out_date");
        } else {
            date = v3_unsubscribed(it, &yes);
            email = str_at(json_object_get(it, "email_address"), "address");
        }
        if (!yes || email == NULL)
            continue;
        fn(arg, email, date);
        n++;
    }
    return n;
}

int cts_consent_parse_optouts(enum cts_api api, const char *body, size_t len,
                              cts_consent_optout_fn fn, void *arg, char **next,
                              size_t *count)
{
    json_t *root = load(body, len), *items;
    const char *link;
    size_t n;

    *next = NULL;
    if (count != NULL)
        *count = 0;
    items = json_object_get(root, api == CTS_API_V2 ? "results" : "contacts");
    if (!json_is_array(items)) {
        json_decref(root);
        return CTS_EJSON;
    }
    n = cts_consent_take_optouts(api, items, fn, arg);
    link = cts_pager_next_link(api, root);
    if (link != NULL)
        *next = cts_xstrdup(link);
    if (count != NULL)
        *count = n;
    json_decref(root);
    return 0;
}

int cts_consent_next_url(const char *base_url, const char *next,
                         const char *api_key, char **url, struct cts_error *err)
{
    char *abs;
    int rc = cts_url_follow(base_url, next, &abs, err);

    *url = NULL;
    if (rc != 0)
        return rc;
    *url = cts_api_url(abs, NULL, api_key, NULL);
    free(abs);
    return 0;
}

/* ---- dates ---- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil): timegm(3) is not POSIX. */
static long days_from_civil(long y, long m, long d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n decimal digits at *p into *out, advancing *p; -1 if not digits. */
static int digits(const char **p, int n, long *out)
{
    long v = 0;
    int i;

    for (i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

long cts_consent_parse_time(const char *iso)
{
    const char *p = iso;
    long y, mo, d, h = 0, mi = 0, s = 0, oh = 0, om = 0, sign = 0;

    if (p == NULL || digits(&p, 4, &y) != 0 || *p++ != '-' ||
        digits(&p, 2, &mo) != 0 || *p++ != '-' || digits(&p, 2, &d) != 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) != 0 || *p++ != ':' || digits(&p, 2, &mi) != 0)
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &s) != 0)
                return -1;
            if (*p == '.' || *p == ',') {
                p++;
                if (*p < '0' || *p > '9')
                    return -1;
                while (*p >= '0' && *p <= '9')
                    p++;
            }
        }
        if (h > 23 || mi > 59 || s > 60)
            return -1;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p++ == '-' ? -1 : 1;
            if (digits(&p, 2, &oh) != 0)
                return -1;
            if (*p == ':')
                p++;
            if (*p != '\0' && digits(&p, 2, &om) != 0)
                return -1;
            if (oh > 23 || om > 59)
                return -1;
        }
    }
    if (*p != '\0')
        return -1;
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
           sign * (oh * 3600 + om * 60);
}

char *cts_consent_format_time(long t, char *buf, size_t n)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (n == 0)
        return buf;
    buf[0] = '\0';
    if (t > 0 && gmtime_r(&tt, &tm) != NULL &&
        strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        buf[0] = '\0';
    return buf;
}

char *cts_consent_optout_message(const char *since, char *buf, size_t n)
{
    char day[11] = "";

    /* The day is enough for a person; the time is the API's clock. */
    if (since != NULL && strlen(since) >= 10) {
        memcpy(day, since, 10);
        if (cts_consent_parse_time(day) < 0)
            day[0] = '\0';
    }
    if (day[0] != '\0')
        snprintf(buf, n, "unsubscribed since %s; left alone", day);
    else
        snprintf(buf, n, "unsubscribed; left alone");
    return buf;
}
