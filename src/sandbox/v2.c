/*
 * v2.c — the v2 endpoints ctct-sync uses: contacts
 * POST/GET/PUT/DELETE, lists and their members, in the php-sdk fixture
 * shapes.  Errors are arrays of {error_key, error_message}.
 *
 * Consent: ACTION_BY_OWNER (the default) is the account acting, and the
 * API refuses its PUT of an OPTOUT contact (400); ACTION_BY_VISITOR is the
 * contact acting and, with a non-empty lists array, opts an OPTOUT contact
 * back in (logged as a re-subscription); DELETE opts the contact out.
 */
#include "sb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD "http.status.bad_request"

static json_t *body_object(struct sb_req *req, struct sb_res *res)
{
    json_t *j = json_loadb(req->body, req->body_len, 0, NULL);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        sb_res_error_v2(res, 400, BAD, "Bad request.");
        return NULL;
    }
    if (!sb_json_latin1(j)) {
        json_decref(j);
        sb_res_error_v2(res, 400, "json.payload.contains_invalid_characters",
                        "The request contains text outside character set "
                        "ISO-8859-1.");
        return NULL;
    }
    return j;
}

static int action_by(struct sb_req *req, struct sb_res *res, int *visitor)
{
    const char *a = sb_query_get(req, "action_by");
    *visitor = 0;
    if (!a)
        return 0;
    if (strcmp(a, "ACTION_BY_VISITOR") == 0) {
        *visitor = 1;
        return 0;
    }
    if (strcmp(a, "ACTION_BY_OWNER") == 0)
        return 0;
    sb_res_error_v2(res, 400, "query.param.invalid",
                    "action_by must be ACTION_BY_OWNER or ACTION_BY_VISITOR.");
    return -1;
}

/* work_phone, home_phone, cell_phone → the contact's phones (v3 kinds
 * work, home, mobile): the first given in the flat fields, the others
 * packed into SB_CF_PHONES_MORE. */
static void phones_in(json_t *o, struct sb_contact_in *in, json_t *errs)
{
    static const char *const names[] = {"work_phone", "home_phone",
                                        "cell_phone"};
    static const char *const kinds[] = {"work", "home", "mobile"};
    json_t *all = json_array();
    for (size_t i = 0; i < 3; i++) {
        const char *v =
            sb_jfield(o, names[i], 50, errs, "json.max.length.exceeded", "");
        if (!v || !*v)
            continue;
        if (!in->f[SB_CF_PHONE]) {
            in->f[SB_CF_PHONE] = v;
            in->f[SB_CF_PHONE_KIND] = kinds[i];
        }
        json_t *p = json_object();
        json_object_set_new(p, "phone_number", json_string(v));
        json_object_set_new(p, "kind", json_string(kinds[i]));
        json_array_append_new(all, p);
    }
    in->f[SB_CF_PHONES_MORE] =
        sb_more_pack(o, "\x1fsb_more_phones", all, sb_phone_fields);
    json_decref(all);
}

/* Contact JSON (fixture shape) → in.  0 or -1 with errs filled. */
static int contact_in(struct sb_account *acct, json_t *o,
                      struct sb_contact_in *in, size_t *lists, size_t *cfi,
                      const char **cfv, json_t *errs)
{
    json_t *ems = json_object_get(o, "email_addresses");
    json_t *em0 = json_array_get(ems, 0);
    json_t *ea = json_object_get(em0, "email_address");
    if (!json_is_string(ea)) {
        sb_verr(errs, "json.field.email_addresses.missing",
                "At least one email_address is required.");
    } else if (!sb_email_ok(json_string_value(ea)) ||
               strlen(json_string_value(ea)) > 80) {
        sb_verr(errs, "json.email.invalid", "The email address %s is invalid.",
                json_string_value(ea));
    } else {
        in->f[SB_CF_EMAIL] = json_string_value(ea);
    }
    in->f[SB_CF_FIRST_NAME] =
        sb_jfield(o, "first_name", 50, errs, "json.max.length.exceeded", "");
    in->f[SB_CF_LAST_NAME] =
        sb_jfield(o, "last_name", 50, errs, "json.max.length.exceeded", "");
    in->f[SB_CF_JOB_TITLE] =
        sb_jfield(o, "job_title", 50, errs, "json.max.length.exceeded", "");
    in->f[SB_CF_COMPANY_NAME] =
        sb_jfield(o, "company_name", 50, errs, "json.max.length.exceeded", "");
    phones_in(o, in, errs);
    in->f[SB_CF_ANNIVERSARY] =
        sb_jfield(o, "anniversary", 10, errs, "json.max.length.exceeded", "");
    json_t *bm = json_object_get(o, "birthday_month");
    json_t *bd = json_object_get(o, "birthday_day");
    if (json_is_string(bm))
        in->birthday_month = (int)strtol(json_string_value(bm), NULL, 10);
    else if (json_is_integer(bm))
        in->birthday_month = (int)json_integer_value(bm);
    if (json_is_string(bd))
        in->birthday_day = (int)strtol(json_string_value(bd), NULL, 10);
    else if (json_is_integer(bd))
        in->birthday_day = (int)json_integer_value(bd);
    if (in->birthday_month < 0 || in->birthday_month > 12 ||
        in->birthday_day < 0 || in->birthday_day > 31)
        sb_verr(errs, "json.field.birthday.invalid",
                "birthday_month must be 1-12 and birthday_day 1-31.");

    json_t *addr = json_array_get(json_object_get(o, "addresses"), 0);
    if (json_is_object(addr)) {
        const char *k = "json.max.length.exceeded";
        in->f[SB_CF_STREET] = sb_jfield(addr, "line1", 100, errs, k, "");
        in->f[SB_CF_CITY] = sb_jfield(addr, "city", 50, errs, k, "");
        const char *sc = sb_jfield(addr, "state_code", 2, errs, k, "");
        const char *st = sb_jfield(addr, "state", 50, errs, k, "");
        in->f[SB_CF_STATE] = sc && *sc ? sc : st;
        in->f[SB_CF_POSTAL_CODE] =
            sb_jfield(addr, "postal_code", 25, errs, k, "");
        in->f[SB_CF_COUNTRY] = sb_jfield(addr, "country_code", 2, errs, k, "");
        in->f[SB_CF_ADDR_KIND] = sb_addr_kind_v3(
            json_string_value(json_object_get(addr, "address_type")));
    }

    json_t *ls = json_object_get(o, "lists");
    size_t i;
    json_t *v;
    in->nlists = 0;
    if (json_is_array(ls)) {
        in->lists = lists;
        json_array_foreach(ls, i, v)
        {
            json_t *id = json_object_get(v, "id");
            char num[32];
            const char *s = json_string_value(id);
            if (json_is_integer(id)) {
                snprintf(num, sizeof num, "%lld",
                         (long long)json_integer_value(id));
                s = num;
            }
            long li = s ? sb_list_find(acct, s) : -1;
            if (li < 0 || i >= 64) {
                sb_verr(errs, "json.field.lists.id.invalid",
                        "List %s does not exist.", s ? s : "(missing id)");
                break;
            }
            lists[in->nlists++] = (size_t)li;
        }
    }
    json_t *cfs = json_object_get(o, "custom_fields");
    if (json_is_array(cfs)) {
        in->cf_idx = cfi;
        in->cf_values = cfv;
        json_array_foreach(cfs, i, v)
        {
            const char *name = json_string_value(json_object_get(v, "name"));
            long ci = name ? sb_cfield_find(acct, name) : -1;
            if (ci < 0 || i >= 15) {
                sb_verr(errs, "json.field.custom_fields.name.invalid",
                        "Custom field %s is not valid.",
                        name ? name : "(missing name)");
                break;
            }
            const char *val =
                sb_jfield(v, "value", 50, errs, "json.max.length.exceeded", "");
            cfi[in->ncf] = (size_t)ci;
            cfv[in->ncf++] = val ? val : "";
        }
    }
    return json_array_size(errs) ? -1 : 0;
}

static int h_contacts_post(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    int visitor;
    if (action_by(req, res, &visitor) != 0)
        return SB_REPLY;
    json_t *o = body_object(req, res);
    if (!o)
        return SB_REPLY;
    json_t *errs = json_array();
    struct sb_contact_in in;
    size_t lists[64], cfi[16];
    const char *cfv[16];
    memset(&in, 0, sizeof in);
    if (contact_in(acct, o, &in, lists, cfi, cfv, errs) == 0 && in.nlists == 0)
        sb_verr(errs, "json.field.lists.missing",
                "A contact must be assigned to at least one contact list.");
    if (json_array_size(errs)) {
        json_decref(o);
        sb_res_json(res, 400, errs);
        return SB_REPLY;
    }
    json_decref(errs);
    /* ACTION_BY_VISITOR: the contact signs up (explicit); the default
     * ACTION_BY_OWNER: the account adds them (implicit) */
    in.actor = visitor ? SB_ACTOR_CONTACT : SB_ACTOR_ACCOUNT;
    in.perm_new = visitor ? SB_PERM_EXPLICIT : SB_PERM_IMPLICIT;
    in.via = "POST /v2/contacts";
    sb_contact_ref ref;
    int rc = sb_contact_upsert(sb_server_model(req->server), acct, &in,
                               SB_UPSERT_CREATE, NULL, &ref, NULL);
    if (rc == SB_EEXIST) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Email address %s is already in use. You cannot create a "
                 "new contact with the same email address.",
                 in.f[SB_CF_EMAIL]);
        json_decref(o);
        sb_res_error_v2(res, 409, "http.status.email_address.conflict", msg);
        return SB_REPLY;
    }
    json_decref(o);
    if (rc != 0) {
        sb_res_error_v2(res, 500, "http.status.internal_server_error",
                        cts_strerror(rc));
        return SB_REPLY;
    }
    sb_res_json(res, 201, sb_contact_json(acct, ref, SB_RENDER_V2));
    return SB_REPLY;
}

static int h_contact_put(struct sb_req *req, struct sb_res *res)
{
    struct sb_account *acct = req->account;
    sb_contact_ref ref;
    int visitor;
    if (sb_contact_by_id(acct, req->params[0], &ref) != 0) {
        sb_dialect_v2.error(res, 404, sb_dialect_v2.not_found_key,
                            sb_dialect_v2.not_found_msg);
        return SB_REPLY;
    }
    if (action_by(req, res, &visitor) != 0)
        return SB_REPLY;
    json_t *o = body_object(req, res);
    if (!o)
        return SB_REPLY;
    json_t *errs = json_array();
    struct sb_contact_in in;
    size_t lists[64], cfi[16];
    const char *cfv[16];
    memset(&in, 0, sizeof in);
    contact_in(acct, o, &in, lists, cfi, cfv, errs);
    if (json_array_size(errs)) {
        json_decref(o);
        sb_res_json(res, 400, errs);
        return SB_REPLY;
    }
    json_decref(errs);
    /* "lists as given": an absent lists array leaves no list */
    if (!in.lists)
        in.lists = lists;
    if (visitor && in.nlists == 0) {
        json_decref(o);
        sb_res_error_v2(res, 400,
                        "query.param.action_by.is_not_valid_for.delete",
                        "The action_by value is not valid for contact "
                        "deletion.");
        return SB_REPLY;
    }
    if (!visitor && sb_contact_perm(acct, ref) == SB_PERM_UNSUBSCRIBED) {
        /* only the contact can opt back in: the API refuses an owner's
         * PUT of an OPTOUT contact */
        json_decref(o);
        sb_res_error_v2(res, 400, BAD,
                        "The contact is opted out (OPTOUT): only the contact "
                        "can opt back in (action_by=ACTION_BY_VISITOR).");
        return SB_REPLY;
    }
    in.actor = visitor ? SB_ACTOR_CONTACT : SB_ACTOR_ACCOUNT;
    in.perm = visitor ? SB_PERM_EXPLICIT : SB_PERM_NONE;
    in.via = "PUT /v2/contacts/{id}";
    int rc = sb_reply_contact_replace(req, res, &sb_dialect_v2, &in);
    json_decref(o); /* after the store: in's strings point into o */
    return rc;
}

static int h_contact_get(struct sb_req *req, struct sb_res *res)
{
    return sb_reply_contact_get(req, res, &sb_dialect_v2);
}

/* DELETE /contacts/{id} opts the contact out (OPTOUT, off every list),
 * the account acting. */
static int h_contact_delete(struct sb_req *req, struct sb_res *res)
{
    sb_contact_ref ref;
    if (sb_contact_by_id(req->account, req->params[0], &ref) != 0 ||
        sb_contact_unsubscribe(sb_server_model(req->server), req->account, ref,
                               SB_ACTOR_ACCOUNT, NULL, 1) != 0) {
        sb_dialect_v2.error(res, 404, sb_dialect_v2.not_found_key,
                            sb_dialect_v2.not_found_msg);
        return SB_REPLY;
    }
    sb_res_text(res, 204, "application/json", "", 0);
    return SB_REPLY;
}

static json_t *render_v2(struct sb_account *acct, sb_contact_ref ref, void *arg)
{
    (void)arg;
    return sb_contact_json(acct, ref, SB_RENDER_V2);
}

/* A paged v2 listing: email (GET /contacts only), status, modified_since,
 * limit (1-500, 50), next; list >= 0 restricts to that list's members. */
static int list_contacts(struct sb_req *req, struct sb_res *res, long list,
                         const char *path)
{
    struct sb_account *acct = req->account;
    struct sb_page pg;
    struct sb_query q;
    long limit = 50;
    const char *why = NULL;
    if (sb_page_open(req, "next", &pg) != 0) {
        sb_res_error_v2(res, 400, "query.param.invalid", "next is invalid.");
        return SB_REPLY;
    }
    char *email = list < 0 ? sb_page_param(&pg, "email") : NULL;
    char *status = sb_page_param(&pg, "status");
    char *lim = sb_page_param(&pg, "limit");
    char *since = sb_page_param(&pg, "modified_since");
    memset(&q, 0, sizeof q);
    if (list >= 0)
        q.lists = 1ull << list;
    if (lim && cts_parse_long(lim, 1, 500, &limit) != 0)
        why = "limit must be 1 to 500.";
    else if (status && strcmp(status, "ACTIVE") && strcmp(status, "OPTOUT") &&
             strcmp(status, "REMOVED") && strcmp(status, "UNCONFIRMED"))
        why = "status must be ACTIVE, OPTOUT, REMOVED or UNCONFIRMED.";
    else if (since && sb_parse_iso8601(since, &q.modified_since) != 0)
        why = "modified_since must be an ISO-8601 date.";
    q.v2_status = status;
    json_t *results = json_array(), *pag = json_object();
    if (!why && email) {
        sb_contact_ref ref;
        if (sb_contact_by_email(acct, email, &ref) == 0 &&
            sb_contact_match(acct, ref, &q))
            json_array_append_new(results,
                                  sb_contact_json(acct, ref, SB_RENDER_V2));
    } else if (!why) {
        size_t next = sb_page_scan(acct, &q, &pg, (size_t)limit, render_v2,
                                   NULL, results);
        if (next != (size_t)-1) {
            char *link = sb_page_link(&pg, path, "next", next);
            json_object_set_new(pag, "next_link", json_string(link));
            free(link);
        }
    }
    free(email);
    free(status);
    free(lim);
    free(since);
    sb_page_close(&pg);
    if (why) {
        json_decref(results);
        json_decref(pag);
        sb_res_error_v2(res, 400, "query.param.invalid", why);
        return SB_REPLY;
    }
    sb_res_json(res, 200,
                json_pack("{s:{s:o},s:o}", "meta", "pagination", pag, "results",
                          results));
    return SB_REPLY;
}

static int h_contacts_get(struct sb_req *req, struct sb_res *res)
{
    return list_contacts(req, res, -1, "/v2/contacts");
}

/* GET /lists/{id}/contacts: the list's members, paged. */
static int h_list_contacts(struct sb_req *req, struct sb_res *res)
{
    long i = sb_list_find(req->account, req->params[0]);
    if (i < 0) {
        sb_res_error_v2(res, 404, "http.status.not_found",
                        "The requested list was not found.");
        return SB_REPLY;
    }
    char *path =
        cts_xasprintf("/v2/lists/%s/contacts", req->account->lists[i].id);
    int rc = list_contacts(req, res, i, path);
    free(path);
    return rc;
}

static json_t *list_json(const struct sb_list *l)
{
    long n;
    json_t *id = cts_parse_long(l->id, 0, 999999999999L, &n) == 0
                     ? json_integer(n)
                     : json_string(l->id);
    return json_pack("{s:o,s:s,s:s,s:I,s:b,s:s,s:s}", "id", id, "name", l->name,
                     "status", "ACTIVE", "contact_count",
                     (json_int_t)l->membership_count, "opt_in_default", 0,
                     "created_date", "2024-01-01T00:00:00.000Z",
                     "modified_date", "2024-01-01T00:00:00.000Z");
}

static int h_lists(struct sb_req *req, struct sb_res *res)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < req->account->nlists; i++)
        json_array_append_new(arr, list_json(&req->account->lists[i]));
    sb_res_json(res, 200, arr);
    return SB_REPLY;
}

static int h_list_get(struct sb_req *req, struct sb_res *res)
{
    long i = sb_list_find(req->account, req->params[0]);
    if (i < 0) {
        sb_res_error_v2(res, 404, "http.status.not_found",
                        "The requested list was not found.");
        return SB_REPLY;
    }
    sb_res_json(res, 200, list_json(&req->account->lists[i]));
    return SB_REPLY;
}

void sb_v2_register(struct sb_server *srv)
{
    unsigned w = SB_ROUTE_V2 | SB_ROUTE_JSON_BODY;
    sb_route_add(srv, "POST", "/v2/contacts", h_contacts_post, w);
    sb_route_add(srv, "GET", "/v2/contacts", h_contacts_get, SB_ROUTE_V2);
    sb_route_add(srv, "GET", "/v2/contacts/{id}", h_contact_get, SB_ROUTE_V2);
    sb_route_add(srv, "PUT", "/v2/contacts/{id}", h_contact_put, w);
    sb_route_add(srv, "DELETE", "/v2/contacts/{id}", h_contact_delete,
                 SB_ROUTE_V2);
    sb_route_add(srv, "GET", "/v2/lists", h_lists, SB_ROUTE_V2);
    sb_route_add(srv, "GET", "/v2/lists/{id}", h_list_get, SB_ROUTE_V2);
    sb_route_add(srv, "GET", "/v2/lists/{id}/contacts", h_list_contacts,
                 SB_ROUTE_V2);
}
