/*
 * v3.c — the v3 endpoints ctct-sync uses: sign_up_form,
 * contacts POST/GET/PUT/DELETE, account summary, contact lists, custom
 * fields.  Error bodies are arrays of {error_key, error_message}; 401 and
 * 429 (server.c) are single objects.
 *
 * Consent: create_source / update_source say who acts (the store's rules
 * in store.c decide what a write may do to permission_to_send);
 * sign_up_form is the contact acting and makes every contact explicit.
 * GETs return core fields only unless include= names sub-resources; a PUT
 * keeps the sub-resources it is not sent.
 */
#include "sb_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VALID "contacts.api.validation.error"

/* Parse the body as a JSON object, or reply 400. */
static json_t *body_object(struct sb_req *req, struct sb_res *res)
{
    json_error_t jerr;
    json_t *j = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!j) {
        char msg[300];
        snprintf(msg, sizeof msg, "Malformed JSON: %s (line %d).", jerr.text,
                 jerr.line);
        sb_res_error_v3(res, 400, "contacts.api.bad.request", msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        sb_res_error_v3(res, 400, "contacts.api.bad.request",
                        "The request body must be a JSON object.");
        return NULL;
    }
    return j;
}

static void reply_errors(struct sb_res *res, json_t *errs)
{
    sb_res_json(res, 400, errs);
}

/* birthday_month/birthday_day: both or none, in range. */
static void birthday(json_t *o, struct sb_contact_in *in, json_t *errs)
{
    json_t *m = json_object_get(o, "birthday_month");
    json_t *d = json_object_get(o, "birthday_day");
    if (json_is_null(m))
        m = NULL;
    if (json_is_null(d))
        d = NULL;
    if (!m && !d)
        return;
    if (!m || !d) {
        sb_verr(errs, VALID,
                "birthday_month and birthday_day must be given together.");
        return;
    }
    if (!json_is_integer(m) || json_integer_value(m) < 1 ||
        json_integer_value(m) > 12) {
        sb_verr(errs, VALID, "birthday_month must be an integer 1-12.");
        return;
    }
    if (!json_is_integer(d) || json_integer_value(d) < 1 ||
        json_integer_value(d) > 31) {
        sb_verr(errs, VALID, "birthday_day must be an integer 1-31.");
        return;
    }
    in->birthday_month = (int)json_integer_value(m);
    in->birthday_day = (int)json_integer_value(d);
}

/* list_memberships: array of list ids (max 50) → indices into lists. */
static int list_ids(struct sb_account *acct, json_t *arr, size_t *out,
                    size_t *n, json_t *errs)
{
    size_t i;
    json_t *v;
    *n = 0;
    if (!json_is_array(arr)) {
        sb_verr(errs, VALID, "list_memberships must be an array of list ids.");
        return -1;
    }
    if (json_array_size(arr) > 50) {
        sb_verr(errs, VALID, "list_memberships allows at most 50 lists.");
        return -1;
    }
    json_array_foreach(arr, i, v)
    {
        long li =
            json_is_string(v) ? sb_list_find(acct, json_string_value(v)) : -1;
        /* v3 names lists by uuid only (sb_list_find also takes v2 ids) */
        if (li >= 0 &&
            strcasecmp(acct->lists[li].list_id, json_string_value(v)) != 0)
            li = -1;
        if (li < 0) {
            sb_verr(errs, VALID,
                    "list_memberships[%zu] is not a list of this "
                    "account.",
                    i);
            return -1;
        }
        out[(*n)++] = (size_t)li;
    }
    return 0;
}

/* custom_fields: [{custom_field_id, value}] */
static int custom_fields(struct sb_account *acct, json_t *arr, size_t max,
                         size_t *idx, const char **vals, size_t *n,
                         json_t *errs)
{
    size_t i;
    json_t *v;
    *n = 0;
    if (!json_is_array(arr)) {
        sb_verr(errs, VALID, "custom_fields must be an array.");
        return -1;
    }
    if (json_array_size(arr) > max) {
        sb_verr(errs, VALID, "custom_fields allows at most %zu items.", max);
        return -1;
    }
    json_array_foreach(arr, i, v)
    {
        const char *id =
            json_string_value(json_object_get(v, "custom_field_id"));
        long ci = id ? sb_cfield_find(acct, id) : -1;
        if (ci < 0) {
            sb_verr(errs, VALID,
                    "custom_fields[%zu].custom_field_id is not a custom field "
                    "of this account.",
                    i);
            return -1;
        }
        const char *val =
            sb_jfield(v, "value", 255, errs, VALID, "custom_fields[].");
        if (!val && json_array_size(errs))
            return -1;
        idx[*n] = (size_t)ci;
        vals[(*n)++] = val ? val : "";
    }
    return 0;
}

static const char *email_of(json_t *o, size_t max, json_t *errs, int nested)
{
    const char *e;
    if (nested) {
        json_t *ea = json_object_get(o, "email_address");
        if (!json_is_object(ea)) {
            if (ea)
                sb_verr(errs, VALID, "email_address must be an object.");
            return NULL;
        }
        e = sb_jfield(ea, "address", max, errs, VALID, "email_address.");
    } else {
        e = sb_jfield(o, "email_address", max, errs, VALID, "");
    }
    if (e && !sb_email_ok(e)) {
        sb_verr(errs, VALID, "email_address is not a valid email address.");
        return NULL;
    }
    return e;
}

/* ---------------------------------------------------------- sign_up_form */

static int h_sign_up_form(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    json_t *o = body_object(req, res);
    if (!o)
        return SB_REPLY;
    json_t *errs = json_array();
    struct sb_contact_in in;
    size_t lists[64], cfi[64];
    const char *cfv[64];
    memset(&in, 0, sizeof in);

    const char *email = email_of(o, 50, errs, 0);
    if (!email && !json_array_size(errs))
        sb_verr(errs, VALID, "email_address is required.");
    in.f[SB_CF_EMAIL] = email;
    in.f[SB_CF_FIRST_NAME] = sb_jfield(o, "first_name", 50, errs, VALID, "");
    in.f[SB_CF_LAST_NAME] = sb_jfield(o, "last_name", 50, errs, VALID, "");
    in.f[SB_CF_JOB_TITLE] = sb_jfield(o, "job_title", 50, errs, VALID, "");
    in.f[SB_CF_COMPANY_NAME] =
        sb_jfield(o, "company_name", 50, errs, VALID, "");
    in.f[SB_CF_PHONE] = sb_jfield(o, "phone_number", 25, errs, VALID, "");
    in.f[SB_CF_ANNIVERSARY] = sb_jfield(o, "anniversary", 10, errs, VALID, "");
    birthday(o, &in, errs);
    json_t *sa = json_object_get(o, "street_address");
    if (sa && !json_is_null(sa)) {
        if (!json_is_object(sa)) {
            sb_verr(errs, VALID, "street_address must be an object.");
        } else {
            const char *kind =
                sb_jfield(sa, "kind", 0, errs, VALID, "street_address.");
            in.f[SB_CF_ADDR_KIND] = kind;
            if (!sb_addr_kind_ok(kind))
                sb_verr(errs, VALID,
                        "street_address.kind is required "
                        "(home, work or other).");
            in.f[SB_CF_STREET] =
                sb_jfield(sa, "street", 255, errs, VALID, "street_address.");
            in.f[SB_CF_CITY] =
                sb_jfield(sa, "city", 50, errs, VALID, "street_address.");
            in.f[SB_CF_STATE] =
                sb_jfield(sa, "state", 50, errs, VALID, "street_address.");
            in.f[SB_CF_POSTAL_CODE] = sb_jfield(sa, "postal_code", 50, errs,
                                                VALID, "street_address.");
            in.f[SB_CF_COUNTRY] =
                sb_jfield(sa, "country", 50, errs, VALID, "street_address.");
        }
    }
    json_t *lm = json_object_get(o, "list_memberships");
    if (!lm || json_array_size(lm) == 0) {
        sb_verr(errs, VALID, "list_memberships is required (1 to 50 lists).");
    } else if (list_ids(acct, lm, lists, &in.nlists, errs) == 0) {
        in.lists = lists;
    }
    json_t *cf = json_object_get(o, "custom_fields");
    if (cf && !json_is_null(cf) &&
        custom_fields(acct, cf, 50, cfi, cfv, &in.ncf, errs) == 0) {
        in.cf_idx = cfi;
        in.cf_values = cfv;
    }
    if (json_array_size(errs)) {
        json_decref(o);
        reply_errors(res, errs);
        return SB_REPLY;
    }
    json_decref(errs);
    if (sb_inflight_claim(req, email) != 0) {
        json_decref(o);
        sb_res_error_v3(res, 409, "contacts.api.conflict",
                        "You sent simultaneous requests that are attempting "
                        "to modify the same contact.");
        return SB_REPLY;
    }
    /* the form's visitor acts: new and existing contacts become explicit
     * (Confirmed Opt-in off), which re-subscribes an unsubscribed one */
    in.perm = SB_PERM_EXPLICIT;
    in.actor = SB_ACTOR_CONTACT;
    in.via = "POST /v3/contacts/sign_up_form";
    sb_contact_ref ref;
    int created = 0;
    int rc = sb_contact_upsert(sb_server_model(req->server), acct, &in,
                               SB_UPSERT_MERGE, NULL, &ref, &created);
    json_decref(o);
    if (rc != 0) {
        sb_res_error_v3(res, 500, "server_error", cts_strerror(rc));
        return SB_REPLY;
    }
    json_t *c = sb_contact_json(acct, ref, SB_RENDER_V3);
    json_t *out =
        json_pack("{s:O,s:s}", "contact_id", json_object_get(c, "contact_id"),
                  "action", created ? "created" : "updated");
    json_decref(c);
    sb_res_json(res, created ? 201 : 200, out);
    return SB_REPLY;
}

/* --------------------------------------------- contacts POST / PUT body */

/* phone_numbers (an array of at most 3): each item checked, the first in
 * the flat fields, the others packed into SB_CF_PHONES_MORE. */
static void phones_in(json_t *o, json_t *ph, struct sb_contact_in *in,
                      json_t *errs)
{
    json_t *p;
    size_t i;
    json_array_foreach(ph, i, p)
    {
        const char *num =
            sb_jfield(p, "phone_number", 25, errs, VALID, "phone_numbers[].");
        const char *kind =
            sb_jfield(p, "kind", 0, errs, VALID, "phone_numbers[].");
        if (kind && !sb_phone_kind_ok(kind))
            sb_verr(errs, VALID,
                    "phone_numbers[].kind must be home, work, mobile or "
                    "other.");
        if (i == 0) {
            in->f[SB_CF_PHONE] = num;
            in->f[SB_CF_PHONE_KIND] = kind;
        }
    }
    in->f[SB_CF_PHONES_MORE] =
        sb_more_pack(o, "\x1fsb_more_phones", ph, sb_phone_fields);
}

/* street_addresses (at most 3), the same way; kind is required. */
static void addresses_in(json_t *o, json_t *sa, struct sb_contact_in *in,
                         json_t *errs)
{
    static const char *const P = "street_addresses[].";
    json_t *a;
    size_t i;
    json_array_foreach(sa, i, a)
    {
        const char *kind = sb_jfield(a, "kind", 0, errs, VALID, P);
        const char *f[5] = {
            sb_jfield(a, "street", 255, errs, VALID, P),
            sb_jfield(a, "city", 50, errs, VALID, P),
            sb_jfield(a, "state", 50, errs, VALID, P),
            sb_jfield(a, "postal_code", 50, errs, VALID, P),
            sb_jfield(a, "country", 50, errs, VALID, P),
        };
        if (!sb_addr_kind_ok(kind))
            sb_verr(errs, VALID,
                    "street_addresses[].kind is required (home, work or "
                    "other).");
        if (i == 0) {
            in->f[SB_CF_ADDR_KIND] = kind;
            in->f[SB_CF_STREET] = f[0];
            in->f[SB_CF_CITY] = f[1];
            in->f[SB_CF_STATE] = f[2];
            in->f[SB_CF_POSTAL_CODE] = f[3];
            in->f[SB_CF_COUNTRY] = f[4];
        }
    }
    in->f[SB_CF_ADDRS_MORE] =
        sb_more_pack(o, "\x1fsb_more_addresses", sa, sb_addr_fields);
}

/* ContactPostRequest / ContactPutRequest → in.  Returns 0 or -1 (errs). */
static int contact_body(struct sb_account *acct, json_t *o,
                        struct sb_contact_in *in, size_t *lists, size_t *cfi,
                        const char **cfv, json_t *errs)
{
    json_t *ea = json_object_get(o, "email_address");
    const char *perm =
        sb_jfield(ea, "permission_to_send", 0, errs, VALID, "email_address.");
    if (perm && (in->perm = sb_perm_parse(perm)) == SB_PERM_NONE)
        sb_verr(errs, VALID,
                "email_address.permission_to_send must be explicit, "
                "implicit, not_set, pending_confirmation, temp_hold or "
                "unsubscribed.");
    in->opt_out_reason =
        sb_jfield(ea, "opt_out_reason", 255, errs, VALID, "email_address.");
    in->f[SB_CF_EMAIL] = email_of(o, 80, errs, 1);
    in->f[SB_CF_FIRST_NAME] = sb_jfield(o, "first_name", 50, errs, VALID, "");
    in->f[SB_CF_LAST_NAME] = sb_jfield(o, "last_name", 50, errs, VALID, "");
    in->f[SB_CF_JOB_TITLE] = sb_jfield(o, "job_title", 50, errs, VALID, "");
    in->f[SB_CF_COMPANY_NAME] =
        sb_jfield(o, "company_name", 50, errs, VALID, "");
    in->f[SB_CF_ANNIVERSARY] = sb_jfield(o, "anniversary", 10, errs, VALID, "");
    birthday(o, in, errs);
    /* sub-resources not sent are kept by a PUT */
    json_t *ph = json_object_get(o, "phone_numbers");
    if (!ph)
        in->keep |= 1u << SB_CF_PHONE | 1u << SB_CF_PHONE_KIND |
                    1u << SB_CF_PHONES_MORE;
    if (ph && !json_is_null(ph)) {
        if (!json_is_array(ph) || json_array_size(ph) > 3)
            sb_verr(errs, VALID,
                    "phone_numbers must be an array of at most "
                    "3 items.");
        else
            phones_in(o, ph, in, errs);
    }
    json_t *sa = json_object_get(o, "street_addresses");
    if (!sa)
        in->keep |= 1u << SB_CF_STREET | 1u << SB_CF_CITY | 1u << SB_CF_STATE |
                    1u << SB_CF_POSTAL_CODE | 1u << SB_CF_COUNTRY |
                    1u << SB_CF_ADDR_KIND | 1u << SB_CF_ADDRS_MORE;
    if (sa && !json_is_null(sa)) {
        if (!json_is_array(sa) || json_array_size(sa) > 3)
            sb_verr(errs, VALID,
                    "street_addresses must be an array of at "
                    "most 3 items.");
        else
            addresses_in(o, sa, in, errs);
    }
    json_t *lm = json_object_get(o, "list_memberships");
    if (lm && !json_is_null(lm) &&
        list_ids(acct, lm, lists, &in->nlists, errs) == 0)
        in->lists = lists;
    json_t *cf = json_object_get(o, "custom_fields");
    if (cf && !json_is_null(cf) &&
        custom_fields(acct, cf, 25, cfi, cfv, &in->ncf, errs) == 0) {
        in->cf_idx = cfi;
        in->cf_values = cfv;
    }
    return json_array_size(errs) ? -1 : 0;
}

static int h_contacts_post(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    json_t *o = body_object(req, res);
    if (!o)
        return SB_REPLY;
    json_t *errs = json_array();
    struct sb_contact_in in;
    size_t lists[64], cfi[64];
    const char *cfv[64];
    memset(&in, 0, sizeof in);
    const char *cs = sb_jfield(o, "create_source", 0, errs, VALID, "");
    if (!cs || (strcmp(cs, "Contact") && strcmp(cs, "Account")))
        sb_verr(errs, VALID, "create_source is required (Contact or Account).");
    contact_body(acct, o, &in, lists, cfi, cfv, errs);
    /* the sandbox keys contacts by email: an email is required here (the
     * real API also accepts a name or SMS channel alone) */
    if (!in.f[SB_CF_EMAIL] && !json_array_size(errs))
        sb_verr(errs, VALID, "email_address.address is required.");
    if (json_array_size(errs)) {
        json_decref(o);
        reply_errors(res, errs);
        return SB_REPLY;
    }
    json_decref(errs);
    /* create_source says who acts; without permission_to_send a contact
     * the account adds is implicit, one who signs up is explicit */
    in.actor = strcmp(cs, "Contact") == 0 ? SB_ACTOR_CONTACT : SB_ACTOR_ACCOUNT;
    in.perm_new =
        in.actor == SB_ACTOR_CONTACT ? SB_PERM_EXPLICIT : SB_PERM_IMPLICIT;
    in.via = "POST /v3/contacts";
    sb_contact_ref ref;
    int rc = sb_contact_upsert(sb_server_model(req->server), acct, &in,
                               SB_UPSERT_CREATE, NULL, &ref, NULL);
    json_decref(o);
    if (rc == SB_EEXIST) {
        sb_res_error_v3(res, 409, "contacts.api.conflict",
                        "Validation failed: EmailAddress is not unique");
        return SB_REPLY;
    }
    if (rc != 0) {
        sb_res_error_v3(res, 500, "server_error", cts_strerror(rc));
        return SB_REPLY;
    }
    sb_res_json(res, 201, sb_contact_json(acct, ref, SB_RENDER_V3));
    return SB_REPLY;
}

static int h_contact_put(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    sb_contact_ref ref;
    if (sb_contact_by_id(acct, req->params[0], &ref) != 0) {
        sb_dialect_v3.error(res, 404, sb_dialect_v3.not_found_key,
                            sb_dialect_v3.not_found_msg);
        return SB_REPLY;
    }
    json_t *o = body_object(req, res);
    if (!o)
        return SB_REPLY;
    json_t *errs = json_array();
    struct sb_contact_in in;
    size_t lists[64], cfi[64];
    const char *cfv[64];
    memset(&in, 0, sizeof in);
    const char *us = sb_jfield(o, "update_source", 0, errs, VALID, "");
    if (!us || (strcmp(us, "Contact") && strcmp(us, "Account")))
        sb_verr(errs, VALID, "update_source is required (Contact or Account).");
    contact_body(acct, o, &in, lists, cfi, cfv, errs);
    if (!in.f[SB_CF_EMAIL] && !json_array_size(errs))
        sb_verr(errs, VALID, "email_address.address is required.");
    if (json_array_size(errs)) {
        json_decref(o);
        reply_errors(res, errs);
        return SB_REPLY;
    }
    json_decref(errs);
    in.actor = strcmp(us, "Contact") == 0 ? SB_ACTOR_CONTACT : SB_ACTOR_ACCOUNT;
    if (in.actor == SB_ACTOR_CONTACT && sb_contact_is_deleted(acct, ref)) {
        json_decref(o);
        sb_res_error_v3(res, 400, VALID,
                        "To restore a deleted contact the update_source "
                        "must be Account.");
        return SB_REPLY;
    }
    in.via = "PUT /v3/contacts/{contact_id}";
    int rc = sb_reply_contact_replace(req, res, &sb_dialect_v3, &in);
    json_decref(o); /* after the store: in's strings point into o */
    return rc;
}

static int bad_request(struct sb_res *res, const char *msg)
{
    sb_res_error_v3(res, 400, "contacts.api.bad.request", msg);
    return SB_REPLY;
}

/* GET /contacts/{id}[?include=...]: core fields, plus the sub-resources
 * include= names. */
static int h_contact_get(struct sb_req *req, struct sb_res *res)
{
    unsigned inc;
    sb_contact_ref ref;
    if (sb_include_parse(sb_query_get(req, "include"), &inc) != 0)
        return bad_request(res, "include accepts custom_fields, "
                                "list_memberships, phone_numbers, "
                                "street_addresses, taggings, notes.");
    if (sb_contact_by_id(req->account, req->params[0], &ref) != 0) {
        sb_res_error_v3(res, 404, sb_dialect_v3.not_found_key,
                        sb_dialect_v3.not_found_msg);
        return SB_REPLY;
    }
    sb_res_json(res, 200, sb_contact_json_v3(req->account, ref, inc));
    return SB_REPLY;
}

static int h_contact_delete(struct sb_req *req, struct sb_res *res)
{
    return sb_reply_contact_delete(req, res, &sb_dialect_v3);
}

static json_t *render_inc(struct sb_account *acct, sb_contact_ref ref,
                          void *arg)
{
    return sb_contact_json_v3(acct, ref, *(const unsigned *)arg);
}

/* The GET /contacts query (first page's or the cursor's) → q, limit,
 * include.  NULL, or the message of a 400. */
static const char *contacts_query(struct sb_account *acct,
                                  const struct sb_page *pg, struct sb_query *q,
                                  long *limit, unsigned *inc, int *count,
                                  char **email)
{
    static const struct {
        const char *name;
        size_t off;
    } dates[] = {{"updated_after", offsetof(struct sb_query, updated_after)},
                 {"updated_before", offsetof(struct sb_query, updated_before)},
                 {"created_after", offsetof(struct sb_query, created_after)},
                 {"created_before", offsetof(struct sb_query, created_before)},
                 {"optout_after", offsetof(struct sb_query, optout_after)},
                 {"optout_before", offsetof(struct sb_query, optout_before)}};
    const char *why = NULL;
    char *status = sb_page_param(pg, "status");
    char *lim = sb_page_param(pg, "limit");
    char *include = sb_page_param(pg, "include");
    char *ic = sb_page_param(pg, "include_count");
    char *lists = sb_page_param(pg, "lists");
    memset(q, 0, sizeof *q);
    q->status = SB_ST_DEFAULT;
    *limit = 50;
    *inc = 0;
    *email = sb_page_param(pg, "email");
    *count = ic && strcmp(ic, "true") == 0;
    if (status && sb_status_parse(status, &q->status) != 0)
        why = "status accepts all, active, deleted, not_set, "
              "pending_confirmation, temp_hold, unsubscribed.";
    else if (lim && cts_parse_long(lim, 1, 500, limit) != 0)
        why = "limit must be 1 to 500.";
    else if (sb_include_parse(include, inc) != 0)
        why = "include accepts custom_fields, list_memberships, "
              "phone_numbers, street_addresses, taggings, notes.";
    for (size_t i = 0; !why && i < sizeof dates / sizeof *dates; i++) {
        int64_t t;
        char *v = sb_page_param(pg, dates[i].name);
        if (v && sb_parse_iso8601(v, &t) != 0)
            why = "dates must be ISO-8601 (2024-01-31T10:00:00Z).";
        else if (v)
            *(int64_t *)(void *)((char *)q + dates[i].off) = t;
        free(v);
    }
    size_t n = 0;
    for (char *p = why ? NULL : lists, *e; p && !why; p = e ? e + 1 : NULL) {
        e = strchr(p, ',');
        if (e)
            *e = '\0';
        long li = sb_list_find(acct, p);
        if (++n > 25)
            why = "lists accepts at most 25 list ids.";
        else if (li < 0 || strcasecmp(acct->lists[li].list_id, p) != 0)
            why = "lists names a list that does not exist.";
        else
            q->lists |= 1ull << li;
    }
    free(status);
    free(lim);
    free(include);
    free(ic);
    free(lists);
    return why;
}

/* GET /contacts: email, status, lists, updated/created/optout dates,
 * include, include_count, limit (1-500, 50); cursor paging through
 * _links.next.href. */
static int h_contacts_get(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    struct sb_page pg;
    struct sb_query q;
    long limit;
    unsigned inc;
    int count;
    char *email = NULL;
    if (sb_page_open(req, "cursor", &pg) != 0)
        return bad_request(res, "cursor is invalid.");
    const char *why =
        contacts_query(acct, &pg, &q, &limit, &inc, &count, &email);
    if (why) {
        free(email);
        sb_page_close(&pg);
        return bad_request(res, why);
    }
    json_t *arr = json_array(), *out = json_object();
    size_t total = 0;
    if (email) {
        sb_contact_ref ref;
        if (sb_contact_by_email(acct, email, &ref) == 0 &&
            sb_contact_match(acct, ref, &q))
            json_array_append_new(arr, sb_contact_json_v3(acct, ref, inc));
        total = json_array_size(arr);
    } else {
        size_t next =
            sb_page_scan(acct, &q, &pg, (size_t)limit, render_inc, &inc, arr);
        if (next != (size_t)-1) {
            char *href = sb_page_link(&pg, "/v3/contacts", "cursor", next);
            json_object_set_new(out, "_links",
                                json_pack("{s:{s:s}}", "next", "href", href));
            free(href);
        }
        for (size_t i = 0; count && i < sb_contact_count(acct); i++)
            total += (size_t)sb_contact_match(acct, i, &q);
    }
    json_object_set_new(out, "contacts", arr);
    if (count)
        json_object_set_new(out, "contacts_count",
                            json_integer((json_int_t)total));
    free(email);
    sb_page_close(&pg);
    sb_res_json(res, 200, out);
    return SB_REPLY;
}

/* -------------------------------------------------- account and lists */

static int h_account_summary(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *a = req->account;
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "encoded_account_id",
        a->encoded_account_id, "contact_email", a->contact_email,
        "contact_phone", "555-555-0100", "country_code", "US", "state_code",
        "MA", "organization_name", a->organization_name, "organization_phone",
        "555-555-0100", "time_zone_id", "US/Eastern", "first_name",
        a->first_name, "last_name", a->last_name);
    json_object_set_new(o, "website", json_string("https://example.com"));
    sb_res_json(res, 200, o);
    return SB_REPLY;
}

static int h_contact_lists(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *a = req->account;
    json_t *arr = json_array();
    for (size_t i = 0; i < a->nlists; i++) {
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:I}", "list_id",
                           a->lists[i].list_id, "name", a->lists[i].name,
                           "description", "", "favorite", 0, "created_at",
                           "2024-01-01T00:00:00Z", "updated_at",
                           "2024-01-01T00:00:00Z", "membership_count",
                           (json_int_t)a->lists[i].membership_count));
    }
    sb_res_json(res, 200,
                json_pack("{s:o,s:I}", "lists", arr, "lists_count",
                          (json_int_t)a->nlists));
    return SB_REPLY;
}

static int h_list_get(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *a = req->account;
    long i = sb_list_find(a, req->params[0]);
    if (i >= 0 && strcasecmp(a->lists[i].list_id, req->params[0]) != 0)
        i = -1; /* v3 names lists by uuid only */
    if (i < 0) {
        sb_res_error_v3(res, 404, "contact_lists.api.not_found",
                        "List not found.");
        return SB_REPLY;
    }
    sb_res_json(res, 200,
                json_pack("{s:s,s:s,s:s,s:b,s:I}", "list_id",
                          a->lists[i].list_id, "name", a->lists[i].name,
                          "description", "", "favorite", 0, "membership_count",
                          (json_int_t)a->lists[i].membership_count));
    return SB_REPLY;
}

static int h_custom_fields(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *a = req->account;
    json_t *arr = json_array();
    for (size_t i = 0; i < a->ncfields; i++)
        json_array_append_new(
            arr,
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "custom_field_id",
                      a->cfields[i].custom_field_id, "name", a->cfields[i].name,
                      "label", a->cfields[i].label, "type", a->cfields[i].type,
                      "created_at", "2024-01-01T00:00:00Z", "updated_at",
                      "2024-01-01T00:00:00Z"));
    sb_res_json(res, 200, json_pack("{s:o}", "custom_fields", arr));
    return SB_REPLY;
}

void sb_v3_register(struct sb_server *srv)
{
    unsigned w = SB_ROUTE_V3 | SB_ROUTE_JSON_BODY;
    sb_route_add(srv, "POST", "/v3/contacts/sign_up_form", h_sign_up_form, w);
    sb_route_add(srv, "POST", "/v3/contacts", h_contacts_post, w);
    sb_route_add(srv, "GET", "/v3/contacts", h_contacts_get, SB_ROUTE_V3);
    sb_route_add(srv, "GET", "/v3/contacts/{id}", h_contact_get, SB_ROUTE_V3);
    sb_route_add(srv, "PUT", "/v3/contacts/{id}", h_contact_put, w);
    sb_route_add(srv, "DELETE", "/v3/contacts/{id}", h_contact_delete,
                 SB_ROUTE_V3);
    sb_route_add(srv, "GET", "/v3/account/summary", h_account_summary,
                 SB_ROUTE_V3);
    sb_route_add(srv, "GET", "/v3/contact_lists", h_contact_lists, SB_ROUTE_V3);
    sb_route_add(srv, "GET", "/v3/contact_lists/{id}", h_list_get, SB_ROUTE_V3);
    sb_route_add(srv, "GET", "/v3/contact_custom_fields", h_custom_fields,
                 SB_ROUTE_V3);
}
