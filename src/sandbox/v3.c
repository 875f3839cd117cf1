/*
 * v3.c — the v3 endpoints ctct-sync uses (reference §2): sign_up_form,
 * contacts POST/GET/PUT/DELETE, account summary, contact lists, custom
 * fields.  Error bodies are arrays of {error_key, error_message}; 401 and
 * 429 (server.c) are single objects.
 */
#include "sb_int.h"

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
            if (!kind || (strcmp(kind, "home") && strcmp(kind, "work") &&
                          strcmp(kind, "other")))
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
    in.source = "v3";
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

/* ContactPostRequest / ContactPutRequest → in.  Returns 0 or -1 (errs). */
static int contact_body(struct sb_account *acct, json_t *o,
                        struct sb_contact_in *in, size_t *lists, size_t *cfi,
                        const char **cfv, json_t *errs)
{
    in->f[SB_CF_EMAIL] = email_of(o, 80, errs, 1);
    in->f[SB_CF_FIRST_NAME] = sb_jfield(o, "first_name", 50, errs, VALID, "");
    in->f[SB_CF_LAST_NAME] = sb_jfield(o, "last_name", 50, errs, VALID, "");
    in->f[SB_CF_JOB_TITLE] = sb_jfield(o, "job_title", 50, errs, VALID, "");
    in->f[SB_CF_COMPANY_NAME] =
        sb_jfield(o, "company_name", 50, errs, VALID, "");
    in->f[SB_CF_ANNIVERSARY] = sb_jfield(o, "anniversary", 10, errs, VALID, "");
    birthday(o, in, errs);
    json_t *ph = json_object_get(o, "phone_numbers");
    if (ph && !json_is_null(ph)) {
        if (!json_is_array(ph) || json_array_size(ph) > 3)
            sb_verr(errs, VALID,
                    "phone_numbers must be an array of at most "
                    "3 items.");
        else if (json_array_size(ph))
            in->f[SB_CF_PHONE] =
                sb_jfield(json_array_get(ph, 0), "phone_number", 25, errs,
                          VALID, "phone_numbers[].");
    }
    json_t *sa = json_object_get(o, "street_addresses");
    if (sa && !json_is_null(sa)) {
        if (!json_is_array(sa) || json_array_size(sa) > 3) {
            sb_verr(errs, VALID,
                    "street_addresses must be an array of at "
                    "most 3 items.");
        } else if (json_array_size(sa)) {
            json_t *a = json_array_get(sa, 0);
            const char *kind =
                sb_jfield(a, "kind", 0, errs, VALID, "street_addresses[].");
            if (!kind)
                sb_verr(errs, VALID, "street_addresses[].kind is required.");
            in->f[SB_CF_STREET] =
                sb_jfield(a, "street", 255, errs, VALID, "street_addresses[].");
            in->f[SB_CF_CITY] =
                sb_jfield(a, "city", 50, errs, VALID, "street_addresses[].");
            in->f[SB_CF_STATE] =
                sb_jfield(a, "state", 50, errs, VALID, "street_addresses[].");
            in->f[SB_CF_POSTAL_CODE] = sb_jfield(a, "postal_code", 50, errs,
                                                 VALID, "street_addresses[].");
            in->f[SB_CF_COUNTRY] =
                sb_jfield(a, "country", 50, errs, VALID, "street_addresses[].");
        }
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
    in.source = "v3";
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
    in.source = "v3";
    int rc = sb_reply_contact_replace(req, res, &sb_dialect_v3, &in);
    json_decref(o); /* after the store: in's strings point into o */
    return rc;
}

static int h_contact_get(struct sb_req *req, struct sb_res *res)
{
    return sb_reply_contact_get(req, res, &sb_dialect_v3);
}

static int h_contact_delete(struct sb_req *req, struct sb_res *res)
{
    return sb_reply_contact_delete(req, res, &sb_dialect_v3);
}

static int h_contacts_get(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    const char *email = sb_query_get(req, "email");
    const char *status = sb_query_get(req, "status");
    const char *lim = sb_query_get(req, "limit");
    const char *cursor = sb_query_get(req, "cursor");
    int all = status && strcmp(status, "all") == 0;
    int deleted_only = status && strcmp(status, "deleted") == 0;
    long limit = 50, start = 0;
    if (lim && cts_parse_long(lim, 1, 500, &limit) != 0) {
        sb_res_error_v3(res, 400, "contacts.api.bad.request",
                        "limit must be 1 to 500.");
        return SB_REPLY;
    }
    if (cursor && cts_parse_long(cursor, 0, 1L << 40, &start) != 0) {
        sb_res_error_v3(res, 400, "contacts.api.bad.request",
                        "cursor is invalid.");
        return SB_REPLY;
    }
    json_t *arr = json_array();
    json_t *out = json_object();
    if (email) {
        sb_contact_ref ref;
        if (sb_contact_by_email(acct, email, &ref) == 0) {
            int del = sb_contact_is_deleted(acct, ref);
            if (all || (deleted_only && del) || (!deleted_only && !del))
                json_array_append_new(arr,
                                      sb_contact_json(acct, ref, SB_RENDER_V3));
        }
    } else {
        size_t n = sb_contact_count(acct), i;
        for (i = (size_t)start; i < n && (long)json_array_size(arr) < limit;
             i++) {
            int del = sb_contact_is_deleted(acct, i);
            if (all || (deleted_only && del) || (!deleted_only && !del))
                json_array_append_new(arr,
                                      sb_contact_json(acct, i, SB_RENDER_V3));
        }
        if (i < n) {
            char href[128];
            snprintf(href, sizeof href, "/v3/contacts?cursor=%zu&limit=%ld%s",
                     i, limit, all ? "&status=all" : "");
            json_object_set_new(out, "_links",
                                json_pack("{s:{s:s}}", "next", "href", href));
        }
    }
    json_object_set_new(out, "contacts_count",
                        json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(out, "contacts", arr);
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
