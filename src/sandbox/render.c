/*
 * render.c — stored contacts as JSON (the v2 fixture shape, the v3
 * ContactResource with the sub-resources include= names, the
 * /_sandbox/state shape), the GET /contacts filters, and seeding a contact
 * from JSON (accounts file, POST /_sandbox/contacts).
 */
#include "sb_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void sb_iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, json_string(v));
}

static void set_nonempty(json_t *o, const char *k, const char *v)
{
    if (v && v[0])
        json_object_set_new(o, k, json_string(v));
}

static void set_time(json_t *o, const char *k, int64_t t)
{
    char buf[32];
    sb_iso_time(t, buf);
    set_str(o, k, buf);
}

/* numeric JSON for an all-digit id (the fixtures use numbers), else string */
static json_t *id_json(const char *id)
{
    long n;
    if (cts_parse_long(id, 0, 999999999999L, &n) == 0)
        return json_integer(n);
    return json_string(id);
}

static int has_address(const struct cview *v)
{
    return v->f[SB_CF_STREET][0] || v->f[SB_CF_CITY][0] ||
           v->f[SB_CF_STATE][0] || v->f[SB_CF_POSTAL_CODE][0] ||
           v->f[SB_CF_COUNTRY][0];
}

const char *const sb_phone_fields[] = {"phone_number", "kind", NULL};
const char *const sb_addr_fields[] = {"kind",        "street",  "city", "state",
                                      "postal_code", "country", NULL};

const char *sb_more_pack(json_t *owner, const char *key, json_t *arr,
                         const char *const *fields)
{
    json_t *more = json_array(), *item;
    size_t i;
    char *text;
    json_array_foreach(arr, i, item)
    {
        if (i == 0 || !json_is_object(item))
            continue;
        json_t *o = json_object();
        for (const char *const *f = fields; *f; f++) {
            json_t *v = json_object_get(item, *f);
            if (json_is_string(v) && json_string_length(v) > 0)
                json_object_set(o, *f, v);
        }
        json_array_append_new(more, o);
    }
    if (json_array_size(more) == 0) {
        json_decref(more);
        return NULL;
    }
    text = json_dumps(more, JSON_COMPACT);
    json_decref(more);
    if (text == NULL)
        return NULL;
    json_object_set_new(owner, key, json_string(text));
    free(text);
    return json_string_value(json_object_get(owner, key));
}

void sb_more_append(json_t *arr, const char *more)
{
    json_t *items, *item;
    size_t i;
    if (more == NULL || more[0] == '\0')
        return;
    items = json_loads(more, 0, NULL);
    json_array_foreach(items, i, item)
    {
        json_array_append(arr, item);
    }
    json_decref(items);
}

static int one_of(const char *s, const char *const *set)
{
    for (; s != NULL && *set; set++)
        if (strcmp(s, *set) == 0)
            return 1;
    return 0;
}

int sb_phone_kind_ok(const char *kind)
{
    static const char *const k[] = {"home", "work", "mobile", "other", NULL};
    return one_of(kind, k);
}

int sb_addr_kind_ok(const char *kind)
{
    static const char *const k[] = {"home", "work", "other", NULL};
    return one_of(kind, k);
}

const char *sb_addr_kind_v2(const char *kind)
{
    if (kind != NULL && strcmp(kind, "home") == 0)
        return "PERSONAL";
    if (kind != NULL && strcmp(kind, "other") == 0)
        return "UNKNOWN";
    return "BUSINESS";
}

const char *sb_addr_kind_v3(const char *address_type)
{
    if (address_type == NULL)
        return NULL;
    if (strcmp(address_type, "PERSONAL") == 0)
        return "home";
    if (strcmp(address_type, "BUSINESS") == 0)
        return "work";
    if (strcmp(address_type, "UNKNOWN") == 0)
        return "other";
    return NULL;
}

/* The kind shown for a stored first phone / address ("" → work). */
static const char *kind_or_work(const char *kind)
{
    return kind[0] ? kind : "work";
}

const char *sb_contact_v2_status(const struct sb_account *acct,
                                 sb_contact_ref ref)
{
    const struct sb_contact *c = &acct->store->c[ref];
    if (c->deleted)
        return "REMOVED";
    if (c->perm == SB_PERM_UNSUBSCRIBED)
        return "OPTOUT";
    if (c->perm == SB_PERM_PENDING)
        return "UNCONFIRMED";
    return "ACTIVE";
}

/* v2 has one field per kind: work_phone (also for "other" and no kind),
 * home_phone, cell_phone (mobile); the first phone of a kind wins. */
static void v2_phones(json_t *o, const struct cview *v)
{
    json_t *phones = json_array(), *p;
    size_t i;
    set_str(o, "home_phone", "");
    set_str(o, "work_phone", "");
    set_str(o, "cell_phone", "");
    if (v->f[SB_CF_PHONE][0]) {
        p = json_object();
        set_str(p, "phone_number", v->f[SB_CF_PHONE]);
        set_str(p, "kind", kind_or_work(v->f[SB_CF_PHONE_KIND]));
        json_array_append_new(phones, p);
    }
    sb_more_append(phones, v->f[SB_CF_PHONES_MORE]);
    json_array_foreach(phones, i, p)
    {
        const char *kind = json_string_value(json_object_get(p, "kind"));
        const char *num = json_string_value(json_object_get(p, "phone_number"));
        const char *field = "work_phone";
        if (kind != NULL && strcmp(kind, "home") == 0)
            field = "home_phone";
        else if (kind != NULL && strcmp(kind, "mobile") == 0)
            field = "cell_phone";
        if (num != NULL && json_string_length(json_object_get(o, field)) == 0)
            set_str(o, field, num);
    }
    json_decref(phones);
}

static json_t *render_v2(struct sb_account *acct, sb_contact_ref r,
                         const struct sb_contact *c, const struct cview *v)
{
    const char *status = sb_contact_v2_status(acct, r);
    json_t *o = json_object();
    json_object_set_new(o, "id",
                        json_integer((json_int_t)(sb_v2_base(acct) + r + 1)));
    set_str(o, "status", status);
    set_str(o, "fax", "");
    json_t *addrs = json_array();
    if (has_address(v)) {
        json_t *a = json_object();
        set_str(a, "line1", v->f[SB_CF_STREET]);
        set_str(a, "line2", "");
        set_str(a, "line3", "");
        set_str(a, "city", v->f[SB_CF_CITY]);
        set_str(a, "address_type", sb_addr_kind_v2(v->f[SB_CF_ADDR_KIND]));
        /* two-letter US/CA codes go to state_code, the rest to state */
        if (strlen(v->f[SB_CF_STATE]) == 2) {
            set_str(a, "state_code", v->f[SB_CF_STATE]);
            set_str(a, "state", "");
        } else {
            set_str(a, "state_code", "");
            set_str(a, "state", v->f[SB_CF_STATE]);
        }
        set_str(a, "country_code", v->f[SB_CF_COUNTRY]);
        set_str(a, "postal_code", v->f[SB_CF_POSTAL_CODE]);
        set_str(a, "sub_postal_code", "");
        json_array_append_new(addrs, a);
    }
    json_object_set_new(o, "addresses", addrs);
    json_object_set_new(o, "notes", json_array());
    json_object_set_new(o, "confirmed", json_false());
    json_t *lists = json_array();
    for (size_t i = 0; i < acct->nlists && i < SB_MAX_LISTS; i++) {
        if (!(c->lists & (1ull << i)))
            continue;
        json_t *l = json_object();
        json_object_set_new(l, "id", id_json(acct->lists[i].id));
        set_str(l, "status", "ACTIVE");
        json_array_append_new(lists, l);
    }
    json_object_set_new(o, "lists", lists);
    set_str(o, "source", "API");
    json_t *em = json_object();
    set_str(em, "status", status);
    set_str(em, "confirm_status", "NO_CONFIRMATION_REQUIRED");
    set_str(em, "opt_in_source",
            c->opt_in_src == SB_ACTOR_CONTACT ? "ACTION_BY_VISITOR"
                                              : "ACTION_BY_OWNER");
    set_time(em, "opt_in_date", c->opt_in_at ? c->opt_in_at : c->created_at);
    if (c->perm == SB_PERM_UNSUBSCRIBED)
        set_time(em, "opt_out_date", c->opt_out_at);
    else
        set_str(em, "opt_out_date", "");
    set_str(em, "email_address", v->f[SB_CF_EMAIL]);
    json_t *ems = json_array();
    json_array_append_new(ems, em);
    json_object_set_new(o, "email_addresses", ems);
    set_str(o, "prefix_name", "");
    set_str(o, "first_name", v->f[SB_CF_FIRST_NAME]);
    set_str(o, "last_name", v->f[SB_CF_LAST_NAME]);
    set_str(o, "job_title", v->f[SB_CF_JOB_TITLE]);
    set_str(o, "company_name", v->f[SB_CF_COMPANY_NAME]);
    v2_phones(o, v);
    if (c->bmonth)
        json_object_set_new(o, "birthday_month", json_integer(c->bmonth));
    if (c->bday)
        json_object_set_new(o, "birthday_day", json_integer(c->bday));
    set_nonempty(o, "anniversary", v->f[SB_CF_ANNIVERSARY]);
    json_t *cfs = json_array();
    for (size_t i = 0; i < v->ncf; i++) {
        json_t *cf = json_object();
        char *name = cts_xasprintf("CustomField%u", v->cf_idx[i] + 1u);
        set_str(cf, "name", name);
        free(name);
        set_str(cf, "value", v->cf_val[i]);
        json_array_append_new(cfs, cf);
    }
    json_object_set_new(o, "custom_fields", cfs);
    set_str(o, "source_details", "ctct-sandbox");
    json_object_set_new(o, "source_is_url", json_false());
    set_time(o, "created_date", c->created_at);
    set_time(o, "modified_date", c->updated_at);
    return o;
}

/* The v3 email_address sub-object: permission and its provenance. */
static json_t *email_v3(struct sb_account *acct, sb_contact_ref r,
                        const struct sb_contact *c, const struct cview *v)
{
    json_t *em = json_object();
    set_str(em, "address", v->f[SB_CF_EMAIL]);
    set_str(em, "permission_to_send", sb_perm_name((enum sb_perm)c->perm));
    set_time(em, "created_at", c->created_at);
    set_time(em, "updated_at", c->updated_at);
    set_str(em, "opt_in_source",
            sb_actor_name((enum sb_actor)(c->opt_in_src ? c->opt_in_src
                                                        : SB_ACTOR_ACCOUNT)));
    set_time(em, "opt_in_date", c->opt_in_at ? c->opt_in_at : c->created_at);
    if (c->perm == SB_PERM_UNSUBSCRIBED) {
        const char *reason = sb_contact_reason(acct, r);
        set_str(em, "opt_out_source",
                sb_actor_name((enum sb_actor)c->opt_out_src));
        set_time(em, "opt_out_date", c->opt_out_at);
        json_object_set_new(em, "opt_out_reason",
                            reason ? json_string(reason) : json_null());
    }
    set_str(em, "confirm_status",
            c->perm == SB_PERM_PENDING ? "pending" : "off");
    return em;
}

static json_t *render_v3(struct sb_account *acct, sb_contact_ref r,
                         const struct sb_contact *c, const struct cview *v,
                         unsigned inc)
{
    char id[40];
    json_t *o = json_object();
    sb_v3_id(acct, r, id);
    set_str(o, "contact_id", id);
    json_object_set_new(o, "email_address", email_v3(acct, r, c, v));
    set_nonempty(o, "first_name", v->f[SB_CF_FIRST_NAME]);
    set_nonempty(o, "last_name", v->f[SB_CF_LAST_NAME]);
    set_nonempty(o, "job_title", v->f[SB_CF_JOB_TITLE]);
    set_nonempty(o, "company_name", v->f[SB_CF_COMPANY_NAME]);
    if (c->bmonth)
        json_object_set_new(o, "birthday_month", json_integer(c->bmonth));
    if (c->bday)
        json_object_set_new(o, "birthday_day", json_integer(c->bday));
    set_nonempty(o, "anniversary", v->f[SB_CF_ANNIVERSARY]);
    set_str(o, "create_source",
            sb_actor_name((enum sb_actor)(c->create_src ? c->create_src
                                                        : SB_ACTOR_ACCOUNT)));
    set_str(o, "update_source",
            sb_actor_name((enum sb_actor)(c->update_src ? c->update_src
                                                        : SB_ACTOR_ACCOUNT)));
    set_time(o, "created_at", c->created_at);
    set_time(o, "updated_at", c->updated_at);
    if (c->deleted)
        set_time(o, "deleted_at", c->updated_at);
    if (inc & SB_INC_LIST_MEMBERSHIPS) {
        json_t *lists = json_array();
        for (size_t i = 0; i < acct->nlists && i < SB_MAX_LISTS; i++)
            if (c->lists & (1ull << i))
                json_array_append_new(lists,
                                      json_string(acct->lists[i].list_id));
        json_object_set_new(o, "list_memberships", lists);
    }
    if (inc & SB_INC_CUSTOM_FIELDS) {
        json_t *cfs = json_array();
        for (size_t i = 0; i < v->ncf; i++) {
            json_t *cf = json_object();
            set_str(cf, "custom_field_id",
                    acct->cfields[v->cf_idx[i]].custom_field_id);
            set_str(cf, "value", v->cf_val[i]);
            json_array_append_new(cfs, cf);
        }
        json_object_set_new(o, "custom_fields", cfs);
    }
    if (inc & SB_INC_PHONE_NUMBERS) {
        json_t *phones = json_array();
        if (v->f[SB_CF_PHONE][0]) {
            json_t *p = json_object();
            set_str(p, "phone_number", v->f[SB_CF_PHONE]);
            set_str(p, "kind", kind_or_work(v->f[SB_CF_PHONE_KIND]));
            json_array_append_new(phones, p);
        }
        sb_more_append(phones, v->f[SB_CF_PHONES_MORE]);
        json_object_set_new(o, "phone_numbers", phones);
    }
    if (inc & SB_INC_STREET_ADDRESSES) {
        json_t *addrs = json_array();
        if (has_address(v)) {
            json_t *a = json_object();
            set_str(a, "kind", kind_or_work(v->f[SB_CF_ADDR_KIND]));
            set_nonempty(a, "street", v->f[SB_CF_STREET]);
            set_nonempty(a, "city", v->f[SB_CF_CITY]);
            set_nonempty(a, "state", v->f[SB_CF_STATE]);
            set_nonempty(a, "postal_code", v->f[SB_CF_POSTAL_CODE]);
            set_nonempty(a, "country", v->f[SB_CF_COUNTRY]);
            json_array_append_new(addrs, a);
        }
        sb_more_append(addrs, v->f[SB_CF_ADDRS_MORE]);
        json_object_set_new(o, "street_addresses", addrs);
    }
    if (inc & SB_INC_TAGGINGS)
        json_object_set_new(o, "taggings", json_array());
    if (inc & SB_INC_NOTES)
        json_object_set_new(o, "notes", json_array());
    return o;
}

static json_t *render_state(struct sb_account *acct, sb_contact_ref r,
                            const struct sb_contact *c, const struct cview *v)
{
    char id[40];
    json_t *o = json_object();
    sb_v3_id(acct, r, id);
    set_str(o, "id", id);
    json_object_set_new(o, "id_v2",
                        json_integer((json_int_t)(sb_v2_base(acct) + r + 1)));
    for (int i = 0; i < SB_CF__COUNT; i++) {
        if (i == SB_CF_ANNIVERSARY)
            continue;
        set_str(o, sb_cf_name((enum sb_cf)i), v->f[i]);
    }
    json_object_set_new(o, "birthday_month",
                        c->bmonth ? json_integer(c->bmonth) : json_null());
    json_object_set_new(o, "birthday_day",
                        c->bday ? json_integer(c->bday) : json_null());
    set_str(o, "anniversary", v->f[SB_CF_ANNIVERSARY]);
    json_t *l2 = json_array(), *l3 = json_array();
    for (size_t i = 0; i < acct->nlists && i < SB_MAX_LISTS; i++) {
        if (!(c->lists & (1ull << i)))
            continue;
        json_array_append_new(l2, json_string(acct->lists[i].id));
        json_array_append_new(l3, json_string(acct->lists[i].list_id));
    }
    json_object_set_new(o, "lists_v2", l2);
    json_object_set_new(o, "lists_v3", l3);
    json_t *cfs = json_object();
    for (size_t i = 0; i < v->ncf; i++)
        set_str(cfs, acct->cfields[v->cf_idx[i]].name, v->cf_val[i]);
    json_object_set_new(o, "custom_fields", cfs);
    set_str(o, "permission", sb_perm_name((enum sb_perm)c->perm));
    set_str(o, "opt_in_source", sb_actor_name((enum sb_actor)c->opt_in_src));
    if (c->perm == SB_PERM_UNSUBSCRIBED) {
        const char *reason = sb_contact_reason(acct, r);
        set_str(o, "opt_out_source",
                sb_actor_name((enum sb_actor)c->opt_out_src));
        set_time(o, "opt_out_date", c->opt_out_at);
        json_object_set_new(o, "opt_out_reason",
                            reason ? json_string(reason) : json_null());
    }
    json_object_set_new(o, "deleted", json_boolean(c->deleted));
    json_object_set_new(o, "writes", json_integer(c->writes));
    return o;
}

json_t *sb_contact_json(struct sb_account *acct, sb_contact_ref ref,
                        enum sb_render how)
{
    if (ref >= acct->store->n)
        return NULL;
    const struct sb_contact *c = &acct->store->c[ref];
    struct cview v;
    sb_blob_decode(c->blob, &v);
    switch (how) {
    case SB_RENDER_V2: return render_v2(acct, ref, c, &v);
    case SB_RENDER_V3: return render_v3(acct, ref, c, &v, SB_INC_ALL);
    default: return render_state(acct, ref, c, &v);
    }
}

json_t *sb_contact_json_v3(struct sb_account *acct, sb_contact_ref ref,
                           unsigned include)
{
    if (ref >= acct->store->n)
        return NULL;
    const struct sb_contact *c = &acct->store->c[ref];
    struct cview v;
    sb_blob_decode(c->blob, &v);
    return render_v3(acct, ref, c, &v, include);
}

/* ------------------------------------------------------------- queries */

/* Match one comma-separated item of csv against names[]; the bit of the
 * matching name is or-ed into *mask.  -1 on an unknown or empty item. */
static int csv_mask(const char *csv, const char *const *names,
                    const unsigned *bits, unsigned *mask)
{
    const char *p = csv;
    *mask = 0;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        size_t i;
        for (i = 0; names[i]; i++)
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0)
                break;
        if (!names[i])
            return -1;
        *mask |= bits[i];
        if (!e)
            return 0;
        p = e + 1;
    }
}

int sb_include_parse(const char *s, unsigned *mask)
{
    static const char *const names[] = {"custom_fields",
                                        "list_memberships",
                                        "phone_numbers",
                                        "street_addresses",
                                        "taggings",
                                        "notes",
                                        NULL};
    static const unsigned bits[] = {
        SB_INC_CUSTOM_FIELDS,    SB_INC_LIST_MEMBERSHIPS, SB_INC_PHONE_NUMBERS,
        SB_INC_STREET_ADDRESSES, SB_INC_TAGGINGS,         SB_INC_NOTES};
    if (!s) {
        *mask = 0;
        return 0;
    }
    return csv_mask(s, names, bits, mask);
}

int sb_status_parse(const char *csv, unsigned *mask)
{
    static const char *const names[] = {"all",
                                        "active",
                                        "deleted",
                                        "not_set",
                                        "pending_confirmation",
                                        "temp_hold",
                                        "unsubscribed",
                                        NULL};
    static const unsigned bits[] = {
        SB_ST_ALL,     SB_ST_ACTIVE,    SB_ST_DELETED,     SB_ST_NOT_SET,
        SB_ST_PENDING, SB_ST_TEMP_HOLD, SB_ST_UNSUBSCRIBED};
    return csv_mask(csv, names, bits, mask);
}

static unsigned status_of(const struct sb_contact *c)
{
    if (c->deleted)
        return SB_ST_DELETED;
    switch (c->perm) {
    case SB_PERM_IMPLICIT:
    case SB_PERM_EXPLICIT: return SB_ST_ACTIVE;
    case SB_PERM_PENDING: return SB_ST_PENDING;
    case SB_PERM_TEMP_HOLD: return SB_ST_TEMP_HOLD;
    case SB_PERM_UNSUBSCRIBED: return SB_ST_UNSUBSCRIBED;
    default: return SB_ST_NOT_SET;
    }
}

int sb_contact_match(const struct sb_account *acct, sb_contact_ref ref,
                     const struct sb_query *q)
{
    if (ref >= acct->store->n)
        return 0;
    const struct sb_contact *c = &acct->store->c[ref];
    if (q->status && !(q->status & status_of(c)))
        return 0;
    if (q->v2_status && strcmp(q->v2_status, sb_contact_v2_status(acct, ref)))
        return 0;
    if (q->lists && !(c->lists & q->lists))
        return 0;
    if ((q->updated_after && c->updated_at <= q->updated_after) ||
        (q->updated_before && c->updated_at >= q->updated_before) ||
        (q->modified_since && c->updated_at < q->modified_since) ||
        (q->created_after && c->created_at <= q->created_after) ||
        (q->created_before && c->created_at >= q->created_before))
        return 0;
    if ((q->optout_after || q->optout_before) &&
        (c->perm != SB_PERM_UNSUBSCRIBED ||
         (q->optout_after && c->opt_out_at <= q->optout_after) ||
         (q->optout_before && c->opt_out_at >= q->optout_before)))
        return 0;
    return 1;
}

/* ------------------------------------------------------------- seeding */

static const char *seed_str(json_t *j, const char *k, struct cts_error *err,
                            int *bad)
{
    json_t *v = json_object_get(j, k);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        cts_error_set(err, CTS_EDATA, "%s must be a string", k);
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

static enum sb_actor seed_actor(json_t *j, const char *k, enum sb_actor dflt,
                                struct cts_error *err, int *bad)
{
    const char *s = seed_str(j, k, err, bad);
    if (!s)
        return dflt;
    if (strcmp(s, "Account") == 0)
        return SB_ACTOR_ACCOUNT;
    if (strcmp(s, "Contact") == 0)
        return SB_ACTOR_CONTACT;
    cts_error_set(err, CTS_EDATA, "%s must be Account or Contact", k);
    *bad = 1;
    return dflt;
}

/* "updated_at": ISO-8601 or UNIX seconds; 0 when absent, -1 when bad. */
static int64_t seed_time(json_t *j, const char *k, struct cts_error *err)
{
    json_t *v = json_object_get(j, k);
    int64_t t;
    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return (int64_t)json_integer_value(v);
    if (json_is_string(v) && sb_parse_iso8601(json_string_value(v), &t) == 0)
        return t;
    cts_error_set(err, CTS_EDATA, "%s must be ISO-8601 or UNIX seconds", k);
    return -1;
}

static int seed_keys_ok(json_t *j, struct cts_error *err)
{
    static const char *const known[] = {"email",          "first_name",
                                        "last_name",      "company_name",
                                        "job_title",      "anniversary",
                                        "birthday_month", "birthday_day",
                                        "permission",     "opt_in_source",
                                        "opt_out_source", "opt_out_reason",
                                        "create_source",  "deleted",
                                        "lists",          "custom_fields",
                                        "phone",          "phone_numbers",
                                        "street_address", "created_at",
                                        "updated_at",     NULL};
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        size_t i;
        for (i = 0; known[i]; i++)
            if (strcmp(k, known[i]) == 0)
                break;
        if (!known[i])
            return cts_error_set(err, CTS_EDATA, "unknown key \"%s\"", k);
    }
    return 0;
}

int sb_model_seed(struct sb_model *m, struct sb_account *acct, json_t *j,
                  struct cts_error *err)
{
    struct sb_contact_in in;
    size_t lists[SB_MAX_LISTS], cfi[256];
    const char *cfv[256];
    int bad = 0;
    memset(&in, 0, sizeof in);
    if (!json_is_object(j))
        return cts_error_set(err, CTS_EDATA, "a contact must be an object");
    if (seed_keys_ok(j, err) != 0)
        return CTS_EDATA;
    static const struct {
        const char *key;
        enum sb_cf f;
    } strs[] = {
        {"email", SB_CF_EMAIL},         {"first_name", SB_CF_FIRST_NAME},
        {"last_name", SB_CF_LAST_NAME}, {"company_name", SB_CF_COMPANY_NAME},
        {"job_title", SB_CF_JOB_TITLE}, {"anniversary", SB_CF_ANNIVERSARY},
        {"phone", SB_CF_PHONE}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        in.f[strs[i].f] = seed_str(j, strs[i].key, err, &bad);
    if (bad)
        return CTS_EDATA;
    if (!in.f[SB_CF_EMAIL] || !sb_email_ok(in.f[SB_CF_EMAIL]))
        return cts_error_set(err, CTS_EDATA, "email missing or invalid");
    json_t *ph = json_array_get(json_object_get(j, "phone_numbers"), 0);
    if (ph && !in.f[SB_CF_PHONE]) {
        in.f[SB_CF_PHONE] =
            json_string_value(json_object_get(ph, "phone_number"));
        in.f[SB_CF_PHONE_KIND] = json_string_value(json_object_get(ph, "kind"));
    }
    json_t *sa = json_object_get(j, "street_address");
    if (json_is_object(sa)) {
        in.f[SB_CF_ADDR_KIND] = seed_str(sa, "kind", err, &bad);
        in.f[SB_CF_STREET] = seed_str(sa, "street", err, &bad);
        in.f[SB_CF_CITY] = seed_str(sa, "city", err, &bad);
        in.f[SB_CF_STATE] = seed_str(sa, "state", err, &bad);
        in.f[SB_CF_POSTAL_CODE] = seed_str(sa, "postal_code", err, &bad);
        in.f[SB_CF_COUNTRY] = seed_str(sa, "country", err, &bad);
    }
    json_t *bm = json_object_get(j, "birthday_month");
    json_t *bd = json_object_get(j, "birthday_day");
    in.birthday_month = json_is_integer(bm) ? (int)json_integer_value(bm) : 0;
    in.birthday_day = json_is_integer(bd) ? (int)json_integer_value(bd) : 0;
    if (in.birthday_month < 0 || in.birthday_month > 12 ||
        in.birthday_day < 0 || in.birthday_day > 31)
        return cts_error_set(err, CTS_EDATA, "birthday out of range");

    const char *perm = seed_str(j, "permission", err, &bad);
    in.perm = perm ? sb_perm_parse(perm) : SB_PERM_IMPLICIT;
    if (in.perm == SB_PERM_NONE)
        return cts_error_set(err, CTS_EDATA,
                             "permission must be implicit, explicit, "
                             "pending_confirmation, temp_hold, not_set or "
                             "unsubscribed");
    enum sb_actor in_src =
        seed_actor(j, "opt_in_source", SB_ACTOR_ACCOUNT, err, &bad);
    enum sb_actor out_src =
        seed_actor(j, "opt_out_source", SB_ACTOR_CONTACT, err, &bad);
    enum sb_actor create_src =
        seed_actor(j, "create_source", in_src, err, &bad);
    in.opt_out_reason = seed_str(j, "opt_out_reason", err, &bad);
    in.actor = in_src;

    size_t i;
    json_t *v;
    in.lists = lists;
    json_array_foreach(json_object_get(j, "lists"), i, v)
    {
        char num[32];
        const char *id = json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            id = num;
        }
        long li = sb_list_find(acct, id);
        if (li < 0 || in.nlists == SB_MAX_LISTS)
            return cts_error_set(err, CTS_EDATA, "unknown list %s",
                                 id ? id : "(not a string)");
        lists[in.nlists++] = (size_t)li;
    }
    const char *name;
    in.cf_idx = cfi;
    in.cf_values = cfv;
    json_object_foreach(json_object_get(j, "custom_fields"), name, v)
    {
        long ci = sb_cfield_find(acct, name);
        if (ci < 0 || !json_is_string(v) || in.ncf == 255)
            return cts_error_set(err, CTS_EDATA, "unknown custom field %s",
                                 name);
        cfi[in.ncf] = (size_t)ci;
        cfv[in.ncf++] = json_string_value(v);
    }
    int64_t created = seed_time(j, "created_at", err);
    int64_t updated = seed_time(j, "updated_at", err);
    if (bad || created < 0 || updated < 0)
        return CTS_EDATA;

    uint64_t writes = m->writes;
    sb_contact_ref r;
    int rc = sb_contact_upsert(m, acct, &in, SB_UPSERT_CREATE, NULL, &r, NULL);
    if (rc == SB_EEXIST)
        return cts_error_set(err, CTS_EDATA, "%s already exists",
                             in.f[SB_CF_EMAIL]);
    if (rc != 0)
        return cts_error_set(err, CTS_EDATA, "%s", cts_strerror(rc));
    struct sb_contact *c = &acct->store->c[r];
    m->writes = writes; /* seeding is not a client write */
    c->writes = 0;
    c->create_src = c->update_src = (uint8_t)create_src;
    if (c->perm == SB_PERM_UNSUBSCRIBED)
        c->opt_out_src = (uint8_t)out_src;
    if (created)
        c->created_at = c->opt_in_at = (uint32_t)created;
    if (updated)
        c->updated_at = (uint32_t)updated;
    if (c->opt_out_at && updated)
        c->opt_out_at = (uint32_t)updated;
    if (json_is_true(json_object_get(j, "deleted"))) {
        sb_contact_delete(m, acct, r);
        m->writes = writes;
        c->writes = 0;
        if (updated)
            c->updated_at = (uint32_t)updated;
    }
    return 0;
}
