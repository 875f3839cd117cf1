/* test_consent.c — the consent-safe bodies and parsers of consent.c,
 * against hand-written v3 replies (tests/unit/fixtures/v3_*.json) and the
 * php-sdk v2 fixtures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cts_consent.h"
#include "testutil.h"

#define CF_SHOE   "9f3c1a52-0000-4000-8000-00000000c0de"
#define CF_COLOUR "9f3c1a52-0000-4000-8000-00000000b1e0"
#define CF_NEW    "9f3c1a52-0000-4000-8000-0000000000aa"
#define LIST_A    "07936f78-662a-11eb-af0a-fa163e56c9b0"
#define LIST_B    "1a2b3c4d-662a-11eb-af0a-fa163e56c9b0"
#define LIST_NEW  "99999999-662a-11eb-af0a-fa163e56c9b0"

/* ---- helpers ---- */

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", e.text, s);
    return j;
}

/* The value at a dotted path ("email_address.permission_to_send"). */
static json_t *at(json_t *j, const char *path)
{
    char buf[200], *p, *dot;
    snprintf(buf, sizeof(buf), "%s", path);
    for (p = buf; j != NULL; p = dot + 1) {
        dot = strchr(p, '.');
        if (dot != NULL)
            *dot = '\0';
        j = json_object_get(j, p);
        if (dot == NULL)
            break;
    }
    return j;
}

static const char *jstr(json_t *j, const char *path)
{
    return json_string_value(at(j, path));
}

/* The object of array a whose key is want, or NULL. */
static json_t *item_by(json_t *a, const char *key, const char *want)
{
    size_t i;
    json_t *it;
    json_array_foreach(a, i, it)
    {
        const char *v = json_string_value(json_object_get(it, key));
        if (v != NULL && strcmp(v, want) == 0)
            return it;
    }
    return NULL;
}

static int has_string(json_t *a, const char *want)
{
    size_t i;
    json_t *it;
    json_array_foreach(a, i, it)
    {
        if (json_is_string(it) && strcmp(json_string_value(it), want) == 0)
            return 1;
    }
    return 0;
}

/* The existing contact of the v3 search fixture (owned JSON text). */
static char *existing_v3(void)
{
    size_t len;
    char *body = tu_fixture("v3_search_include.json", &len);
    char *id, *json;
    assert_int_equal(cts_consent_v3_parse_search(body, len, &id, &json), 0);
    assert_string_equal(id, "1ec3a2f4-9c1c-11ee-8a1b-fa163e5c2b7e");
    free(id);
    free(body);
    return json;
}

/* The same contact with one member changed (owned JSON text). */
static char *existing_v3_with(const char *path, json_t *value)
{
    char *json = existing_v3(), *out;
    json_t *j = parse(json);
    char buf[100], *dot;
    json_t *parent = j;
    snprintf(buf, sizeof(buf), "%s", path);
    dot = strchr(buf, '.');
    if (dot != NULL) {
        *dot = '\0';
        parent = json_object_get(j, buf);
    }
    json_object_set_new(parent, dot != NULL ? dot + 1 : buf, value);
    out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    free(json);
    return out;
}

static struct cts_cf_id cf_v[] = {
    {"shoe", CF_SHOE}, {"colour", CF_COLOUR}, {"new", CF_NEW}};
static const struct cts_cf_ids cf_ids = {cf_v, 3};

/* ---- v3 search ---- */

static void test_v3_search(void **state)
{
    char *q, *id, *json;
    (void)state;
    q = cts_consent_v3_search_query("a+b@example.com");
    /* status=all: a 409 may come from a deleted contact, which the default
     * listing hides; include=: without it a PUT would drop sub-resources. */
    assert_string_equal(q, "email=a%2Bb%40example.com&status=all&include="
                           "custom_fields,list_memberships,phone_numbers,"
                           "street_addresses");
    free(q);
    assert_int_equal(
        cts_consent_v3_parse_search("{\"contacts\":[]}", 15, &id, &json), 0);
    assert_null(id);
    assert_null(json);
    assert_int_equal(cts_consent_v3_parse_search("<html>", 6, &id, &json),
                     CTS_EJSON);
    assert_int_equal(cts_consent_v3_parse_search("{\"contacts\":[{\"x\":1}]}",
                                                 22, &id, &json),
                     CTS_EJSON);
    assert_null(id);
    assert_null(json);
    json = existing_v3();
    assert_int_equal(cts_consent_v3_opted_out(json, NULL), 0);
    free(json);
}

/* ---- v3 new contact ---- */

static void test_v3_create_body(void **state)
{
    struct cts_contact c;
    char *lists[] = {LIST_A};
    struct cts_custom_field cfs[] = {{"shoe", "44"}};
    struct cts_error err = {0};
    char *body;
    json_t *j;
    (void)state;

    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "new@example.com";
    c.f[CTS_F_FIRST_NAME] = "New";
    c.cf = cfs;
    c.ncf = 1;
    /* An account import claims no consent beyond implicit. */
    body = cts_consent_v3_create_body(&c, lists, 1, &cf_ids, CTS_PERM_IMPLICIT,
                                      &err);
    assert_non_null(body);
    j = parse(body);
    assert_string_equal(jstr(j, "create_source"), "Account");
    assert_string_equal(jstr(j, "email_address.permission_to_send"),
                        "implicit");
    assert_string_equal(jstr(j, "email_address.address"), "new@example.com");
    json_decref(j);
    free(body);
    /* Each row is the contact's own sign-up: they are the source. */
    body = cts_consent_v3_create_body(&c, lists, 1, &cf_ids, CTS_PERM_EXPLICIT,
                                      &err);
    assert_non_null(body);
    j = parse(body);
    assert_string_equal(jstr(j, "create_source"), "Contact");
    assert_string_equal(jstr(j, "email_address.permission_to_send"),
                        "explicit");
    assert_string_equal(jstr(j, "first_name"), "New");
    assert_true(has_string(at(j, "list_memberships"), LIST_A));
    assert_non_null(
        item_by(at(j, "custom_fields"), "custom_field_id", CF_SHOE));
    json_decref(j);
    free(body);
    /* A row the body cannot carry is refused in both modes. */
    c.f[CTS_F_EMAIL] = NULL;
    assert_null(cts_consent_v3_create_body(&c, lists, 1, &cf_ids,
                                           CTS_PERM_EXPLICIT, &err));
    assert_int_equal(err.code, CTS_EDATA);
}

/* ---- v3 merge ---- */

static void test_v3_merge_keeps_everything(void **state)
{
    struct cts_contact c;
    char *lists[] = {LIST_NEW};
    struct cts_custom_field cfs[] = {{"shoe", "44"}};
    char *json = existing_v3(), *body = NULL, *since = NULL;
    json_t *j, *a, *it;
    (void)state;

    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "jane@example.com";
    c.f[CTS_F_FIRST_NAME] = "Janet";
    c.f[CTS_F_PHONE] = "+1-555-0123";
    c.f[CTS_F_CITY] = "Boston";
    c.cf = cfs;
    c.ncf = 1;
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, &since, NULL),
        CTS_CONSENT_WRITE);
    assert_null(since);
    j = parse(body);
    /* The row's values... */
    assert_string_equal(jstr(j, "first_name"), "Janet");
    /* ...over everything the contact had. */
    assert_string_equal(jstr(j, "last_name"), "Doe");
    assert_string_equal(jstr(j, "job_title"), "CTO");
    assert_string_equal(jstr(j, "company_name"), "Acme");
    assert_int_equal(json_integer_value(at(j, "birthday_month")), 4);
    assert_int_equal(json_integer_value(at(j, "birthday_day")), 12);
    /* Permission exactly as the account holds it; the account updates. */
    assert_string_equal(jstr(j, "email_address.address"), "jane@example.com");
    assert_string_equal(jstr(j, "email_address.permission_to_send"),
                        "explicit");
    assert_int_equal(json_object_size(at(j, "email_address")), 2);
    assert_string_equal(jstr(j, "update_source"), "Account");
    assert_null(at(j, "create_source"));
    assert_null(at(j, "contact_id"));
    assert_null(at(j, "created_at"));
    /* Lists: the contact's two plus ours. */
    a = at(j, "list_memberships");
    assert_int_equal(json_array_size(a), 3);
    assert_true(has_string(a, LIST_A) && has_string(a, LIST_B) &&
                has_string(a, LIST_NEW));
    /* Custom fields by id: shoe replaced, colour kept. */
    a = at(j, "custom_fields");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(jstr(item_by(a, "custom_field_id", CF_SHOE), "value"),
                        "44");
    assert_string_equal(jstr(item_by(a, "custom_field_id", CF_COLOUR), "value"),
                        "blue");
    /* Phones: home replaced by the row's, work kept; no read-only ids. */
    a = at(j, "phone_numbers");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(jstr(item_by(a, "kind", "home"), "phone_number"),
                        "+1-555-0123");
    it = item_by(a, "kind", "work");
    assert_string_equal(jstr(it, "phone_number"), "+1-555-0100");
    assert_int_equal(json_object_size(it), 2);
    /* The home address takes the row's city and keeps its street. */
    a = at(j, "street_addresses");
    assert_int_equal(json_array_size(a), 1);
    it = json_array_get(a, 0);
    assert_string_equal(jstr(it, "city"), "Boston");
    assert_string_equal(jstr(it, "street"), "1 Main St");
    assert_string_equal(jstr(it, "postal_code"), "02451");
    assert_null(at(it, "street_address_id"));
    json_decref(j);
    free(body);
    free(json);
}

static void test_v3_merge_unchanged(void **state)
{
    struct cts_contact c;
    char *lists[] = {LIST_B};
    struct cts_custom_field cfs[] = {{"colour", "blue"}};
    char *json = existing_v3(), *body = (char *)"x";
    (void)state;

    /* Everything the row says the contact already holds: no PUT. */
    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "jane@example.com";
    c.f[CTS_F_FIRST_NAME] = "Jane";
    c.f[CTS_F_PHONE] = "+1-555-0199";
    c.f[CTS_F_CITY] = "Waltham";
    c.cf = cfs;
    c.ncf = 1;
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, NULL, NULL),
        CTS_CONSENT_UNCHANGED);
    assert_null(body);
    /* One new value is enough for a write. */
    c.f[CTS_F_JOB_TITLE] = "CEO";
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, NULL, NULL),
        CTS_CONSENT_WRITE);
    assert_non_null(strstr(body, "\"CEO\""));
    free(body);
    free(json);
}

static void test_v3_merge_refuses_unsubscribed(void **state)
{
    struct cts_contact c;
    char *lists[] = {LIST_NEW};
    char *json, *body = NULL, *since = NULL, msg[80];
    json_t *em;
    (void)state;

    em = json_pack("{s:s, s:s, s:s, s:s}", "address", "jane@example.com",
                   "permission_to_send", "unsubscribed", "opt_out_source",
                   "Contact", "opt_out_date", "2024-03-05T14:40:41Z");
    json = existing_v3_with("email_address", em);
    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "jane@example.com";
    c.f[CTS_F_FIRST_NAME] = "Janet";
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, &since, NULL),
        CTS_CONSENT_OPTED_OUT);
    assert_null(body);
    assert_string_equal(since, "2024-03-05T14:40:41Z");
    assert_string_equal(cts_consent_optout_message(since, msg, sizeof(msg)),
                        "unsubscribed since 2024-03-05; left alone");
    free(since);
    assert_int_equal(cts_consent_v3_opted_out(json, &since), 1);
    assert_string_equal(since, "2024-03-05T14:40:41Z");
    free(since);
    /* Unsubscribing them again is nothing to send either. */
    assert_int_equal(cts_consent_v3_unsubscribe(json, "x", &body, NULL),
                     CTS_CONSENT_OPTED_OUT);
    assert_null(body);
    free(json);
}

/* Permissions other than unsubscribed go back as they are, and none is
 * invented when the contact has none. */
static void test_v3_merge_other_permissions(void **state)
{
    static const char *const perms[] = {
        "implicit", "explicit", "pending_confirmation", "temp_hold", "not_set"};
    struct cts_contact c;
    char *lists[] = {LIST_NEW};
    char *json, *body;
    json_t *j;
    size_t i;
    (void)state;

    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "jane@example.com";
    for (i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
        json = existing_v3_with("email_address.permission_to_send",
                                json_string(perms[i]));
        assert_int_equal(cts_consent_v3_merge(json, &c, lists, 1, &cf_ids,
                                              &body, NULL, NULL),
                         CTS_CONSENT_WRITE);
        j = parse(body);
        assert_string_equal(jstr(j, "email_address.permission_to_send"),
                            perms[i]);
        json_decref(j);
        free(body);
        free(json);
    }
    json = existing_v3_with("email_address",
                            json_pack("{s:s}", "address", "jane@example.com"));
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, NULL, NULL),
        CTS_CONSENT_WRITE);
    j = parse(body);
    assert_null(at(j, "email_address.permission_to_send"));
    json_decref(j);
    free(body);
    free(json);
}

static void test_v3_merge_limits_and_errors(void **state)
{
    struct cts_contact c;
    char *lists[] = {LIST_NEW};
    struct cts_custom_field unknown[] = {{"nope", "1"}};
    struct cts_error err;
    char *json, *body;
    json_t *j, *many;
    size_t i;
    (void)state;

    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "jane@example.com";
    memset(&err, 0, sizeof(err));
    assert_int_equal(cts_consent_v3_merge("not json", &c, lists, 1, &cf_ids,
                                          &body, NULL, &err),
                     CTS_EJSON);
    assert_int_equal(cts_consent_v3_merge("{\"first_name\":\"x\"}", &c, lists,
                                          1, &cf_ids, &body, NULL, &err),
                     CTS_EJSON);
    assert_null(body);

    /* A custom field the account does not have. */
    json = existing_v3();
    c.cf = unknown;
    c.ncf = 1;
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, NULL, &err),
        CTS_EDATA);
    assert_non_null(strstr(err.msg, "nope"));
    c.cf = NULL;
    c.ncf = 0;
    free(json);

    /* Already on 50 lists: one more would break the API's limit. */
    many = json_array();
    for (i = 0; i < 50; i++) {
        char id[40];
        snprintf(id, sizeof(id), "list-%zu", i);
        json_array_append_new(many, json_string(id));
    }
    json = existing_v3_with("list_memberships", many);
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, NULL, &err),
        CTS_EDATA);
    assert_non_null(strstr(err.msg, "51 list_memberships"));
    free(json);

    /* Three phones, none "home": the row's cannot be added, and the
     * contact's three are kept rather than one dropped. */
    json = existing_v3_with("phone_numbers",
                            json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]",
                                      "phone_number", "1", "kind", "work",
                                      "phone_number", "2", "kind", "mobile",
                                      "phone_number", "3", "kind", "other"));
    c.f[CTS_F_PHONE] = "+1-555-0123";
    c.f[CTS_F_FIRST_NAME] = "Janet";
    assert_int_equal(
        cts_consent_v3_merge(json, &c, lists, 1, &cf_ids, &body, NULL, &err),
        CTS_CONSENT_WRITE);
    j = parse(body);
    assert_int_equal(json_array_size(at(j, "phone_numbers")), 3);
    assert_null(item_by(at(j, "phone_numbers"), "kind", "home"));
    json_decref(j);
    free(body);
    free(json);

    /* A contact read without include=: no sub-resources are invented, and
     * the row's lists are all it would be on (the caller must include). */
    c.f[CTS_F_PHONE] = NULL;
    assert_int_equal(
        cts_consent_v3_merge("{\"contact_id\":\"x\",\"email_address\":"
                             "{\"address\":\"jane@example.com\","
                             "\"permission_to_send\":\"implicit\"}}",
                             &c, lists, 1, &cf_ids, &body, NULL, &err),
        CTS_CONSENT_WRITE);
    j = parse(body);
    assert_null(at(j, "custom_fields"));
    assert_null(at(j, "phone_numbers"));
    assert_int_equal(json_array_size(at(j, "list_memberships")), 1);
    json_decref(j);
    free(body);
}

/* ---- v3 unsubscribe ---- */

static void test_v3_unsubscribe(void **state)
{
    char *json = existing_v3(), *body;
    json_t *j;
    (void)state;

    assert_int_equal(
        cts_consent_v3_unsubscribe(json, "asked by phone", &body, NULL),
        CTS_CONSENT_WRITE);
    j = parse(body);
    assert_string_equal(jstr(j, "email_address.permission_to_send"),
                        "unsubscribed");
    assert_string_equal(jstr(j, "email_address.opt_out_reason"),
                        "asked by phone");
    assert_string_equal(jstr(j, "email_address.address"), "jane@example.com");
    /* On the contact's behalf: the source is Contact. */
    assert_string_equal(jstr(j, "update_source"), "Contact");
    /* A PUT replaces the top-level fields: the contact's are sent back. */
    assert_string_equal(jstr(j, "first_name"), "Jane");
    assert_string_equal(jstr(j, "company_name"), "Acme");
    assert_int_equal(json_array_size(at(j, "list_memberships")), 2);
    json_decref(j);
    free(body);

    assert_int_equal(cts_consent_v3_unsubscribe(json, NULL, &body, NULL),
                     CTS_CONSENT_WRITE);
    j = parse(body);
    assert_true(json_is_null(at(j, "email_address.opt_out_reason")));
    json_decref(j);
    free(body);
    free(json);
    assert_int_equal(cts_consent_v3_unsubscribe("[]", NULL, &body, NULL),
                     CTS_EJSON);
    assert_null(body);
}

/* ---- v2 ---- */

static void test_v2(void **state)
{
    struct cts_contact c;
    char *lists9[] = {"9"}, *lists10[] = {"10"};
    char *json, *body, *since, *optout;
    size_t len;
    json_t *j, *a;
    (void)state;

    assert_string_equal(cts_consent_v2_action_by(CTS_PERM_IMPLICIT),
                        "action_by=ACTION_BY_OWNER");
    assert_string_equal(cts_consent_v2_action_by(CTS_PERM_EXPLICIT),
                        "action_by=ACTION_BY_VISITOR");

    json = tu_fixture("get_contact.json", &len);
    assert_int_equal(cts_consent_v2_opted_out(json, &since), 0);
    assert_null(since);

    /* Same name, already on list 9: nothing to send. */
    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "john+smith@gmail.com";
    c.f[CTS_F_FIRST_NAME] = "John";
    assert_int_equal(
        cts_consent_v2_merge(json, &c, lists9, 1, &body, NULL, NULL),
        CTS_CONSENT_UNCHANGED);
    assert_null(body);
    /* A new list: both lists, the rest as it was (status included). */
    assert_int_equal(
        cts_consent_v2_merge(json, &c, lists10, 1, &body, NULL, NULL),
        CTS_CONSENT_WRITE);
    j = parse(body);
    a = at(j, "lists");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(jstr(j, "last_name"), "Smith");
    assert_string_equal(jstr(j, "status"), "ACTIVE");
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(at(j, "email_addresses"), 0), "opt_in_source")),
        "ACTION_BY_VISITOR");
    json_decref(j);
    free(body);

    /* Opted out (on the contact or on its address): never merged. */
    j = parse(json);
    json_object_set_new(j, "status", json_string("OPTOUT"));
    optout = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_int_equal(
        cts_consent_v2_merge(optout, &c, lists10, 1, &body, &since, NULL),
        CTS_CONSENT_OPTED_OUT);
    assert_null(body);
    assert_string_equal(since, "2012-03-29T14:59:25.427Z");
    free(since);
    free(optout);
    j = parse(json);
    json_object_set_new(json_array_get(at(j, "email_addresses"), 0), "status",
                        json_string("OPTOUT"));
    optout = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_int_equal(cts_consent_v2_opted_out(optout, NULL), 1);
    free(optout);
    assert_int_equal(cts_consent_v2_opted_out("nope", NULL), CTS_EJSON);
    assert_int_not_equal(
        cts_consent_v2_merge("nope", &c, lists10, 1, &body, NULL, NULL), 0);
    free(json);

    body = cts_consent_contact_path("238");
    assert_string_equal(body, "contacts/238");
    free(body);
    body = cts_consent_contact_path("a/b");
    assert_string_equal(body, "contacts/a%2Fb");
    free(body);
}

/* ---- listing the unsubscribed ---- */

struct seen {
    int n;
    char email[8][64];
    char date[8][40];
};

static void on_optout(void *arg, const char *email, const char *date)
{
    struct seen *s = arg;
    assert_true(s->n < 8);
    snprintf(s->email[s->n], sizeof(s->email[0]), "%s", email);
    snprintf(s->date[s->n], sizeof(s->date[0]), "%s",
             date != NULL ? date : "-");
    s->n++;
}

static void test_optout_listing(void **state)
{
    struct seen s;
    char *body, *next, *q, *url;
    size_t len, count;
    (void)state;

    q = cts_consent_optouts_query(CTS_API_V3, NULL);
    assert_string_equal(q, "status=unsubscribed&limit=500");
    free(q);
    q = cts_consent_optouts_query(CTS_API_V3, "2024-03-05T13:40:41Z");
    assert_string_equal(q, "status=unsubscribed&limit=500&updated_after="
                           "2024-03-05T13%3A40%3A41Z");
    free(q);
    q = cts_consent_optouts_query(CTS_API_V2, "2024-03-05T13:40:41Z");
    assert_string_equal(q, "status=OPTOUT&limit=500&modified_since="
                           "2024-03-05T13%3A40%3A41Z");
    free(q);

    /* v3: only the unsubscribed entries, and the cursor of the next page. */
    memset(&s, 0, sizeof(s));
    body = tu_fixture("v3_unsubscribed_page1.json", &len);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V3, body, len, on_optout,
                                               &s, &next, &count),
                     0);
    free(body);
    assert_int_equal(count, 2);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.email[0], "Gone@Example.com");
    assert_string_equal(s.date[0], "2024-03-05T14:40:41Z");
    assert_string_equal(s.email[1], "left@example.com");
    assert_string_equal(s.date[1], "-");
    assert_string_equal(next, "/v3/contacts?cursor=bGltaXQ9MyZuZXh0PTM=");
    assert_int_equal(
        cts_consent_next_url("https://api.cc.email/v3", next, NULL, &url, NULL),
        0);
    assert_string_equal(url, "https://api.cc.email/v3/contacts?cursor="
                             "bGltaXQ9MyZuZXh0PTM=");
    free(url);
    assert_int_equal(cts_consent_next_url("http://127.0.0.1:8080/v3/", next,
                                          NULL, &url, NULL),
                     0);
    assert_string_equal(url, "http://127.0.0.1:8080/v3/contacts?cursor="
                             "bGltaXQ9MyZuZXh0PTM=");
    free(url);
    free(next);
    body = tu_fixture("v3_unsubscribed_page2.json", &len);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V3, body, len, on_optout,
                                               &s, &next, NULL),
                     0);
    free(body);
    assert_null(next);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.email[2], "bye@example.org");

    /* v2: the php-sdk page holds REMOVED and ACTIVE contacts (as a server
     * that ignored status=OPTOUT would send): nobody is taken as opted
     * out, and the next link is read. */
    memset(&s, 0, sizeof(s));
    body = tu_fixture("get_contacts.json", &len);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V2, body, len, on_optout,
                                               &s, &next, &count),
                     0);
    free(body);
    assert_int_equal(count, 0);
    assert_string_equal(next, "/v2/contacts?next=c3RhcnRBdD0zJmxpbWl0PTI");
    assert_int_equal(cts_consent_next_url("https://api.constantcontact.com/v2",
                                          next, "key123", &url, NULL),
                     0);
    assert_string_equal(url, "https://api.constantcontact.com/v2/contacts?"
                             "next=c3RhcnRBdD0zJmxpbWl0PTI&api_key=key123");
    free(url);
    free(next);
    body = (char *)"{\"meta\":{\"pagination\":{}},\"results\":["
                   "{\"id\":1,\"status\":\"OPTOUT\",\"email_addresses\":[{"
                   "\"status\":\"OPTOUT\",\"opt_out_date\":"
                   "\"2012-06-18T13:13:46.974Z\",\"email_address\":"
                   "\"out@roving.com\"}]},"
                   "{\"id\":2,\"status\":\"ACTIVE\",\"email_addresses\":[{"
                   "\"status\":\"ACTIVE\",\"email_address\":\"in@roving.com\"}"
                   "]}]}";
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V2, body, strlen(body),
                                               on_optout, &s, &next, &count),
                     0);
    assert_int_equal(count, 1);
    assert_string_equal(s.email[0], "out@roving.com");
    assert_string_equal(s.date[0], "2012-06-18T13:13:46.974Z");
    assert_null(next);

    /* Not a listing. */
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V3, "[]", 2, on_optout,
                                               &s, &next, &count),
                     CTS_EJSON);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V2, "{}", 2, on_optout,
                                               &s, &next, &count),
                     CTS_EJSON);
    assert_int_equal(cts_consent_parse_optouts(CTS_API_V3, NULL, 0, on_optout,
                                               &s, &next, NULL),
                     CTS_EJSON);
    assert_int_equal(
        cts_consent_next_url("https://api.cc.email/v3",
                             "https://api.cc.email/v3/contacts?cursor=x", NULL,
                             &url, NULL),
        0);
    assert_string_equal(url, "https://api.cc.email/v3/contacts?cursor=x");
    free(url);
    /* A link to another host is refused, not taken as the last page: the
     * api_key would go with it. */
    {
        struct cts_error err = {0};
        assert_int_equal(
            cts_consent_next_url("https://api.constantcontact.com/v2",
                                 "https://evil.example/v2/contacts?next=x",
                                 "key123", &url, &err),
            CTS_EHTTP);
        assert_null(url);
        assert_non_null(strstr(err.msg, "evil.example"));
    }
}

/* ---- dates and messages ---- */

static void test_dates(void **state)
{
    char buf[80];
    (void)state;
    assert_int_equal(cts_consent_parse_time("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(cts_consent_parse_time("2024-03-05T14:40:41Z"),
                     1709649641L);
    assert_int_equal(cts_consent_parse_time("2024-03-05T14:40:41.271Z"),
                     1709649641L);
    assert_int_equal(cts_consent_parse_time("2024-03-05T15:40:41+01:00"),
                     1709649641L);
    assert_int_equal(cts_consent_parse_time("2024-03-05T09:40:41-0500"),
                     1709649641L);
    assert_int_equal(cts_consent_parse_time("2024-03-05"), 1709596800L);
    assert_int_equal(cts_consent_parse_time("2000-02-29T12:00:00Z"),
                     951825600L);
    assert_int_equal(cts_consent_parse_time(""), -1);
    assert_int_equal(cts_consent_parse_time("2024-13-05"), -1);
    assert_int_equal(cts_consent_parse_time("2024-03-05T25:00:00Z"), -1);
    assert_int_equal(cts_consent_parse_time("2024-03-05T14:40:41Zjunk"), -1);
    assert_int_equal(cts_consent_parse_time("yesterday"), -1);
    assert_int_equal(cts_consent_parse_time(NULL), -1);
    assert_string_equal(cts_consent_format_time(1709649641L, buf, sizeof(buf)),
                        "2024-03-05T14:40:41Z");
    assert_string_equal(cts_consent_format_time(0, buf, sizeof(buf)), "");
    assert_string_equal(cts_consent_optout_message("2012-06-18T13:13:46.974Z",
                                                   buf, sizeof(buf)),
                        "unsubscribed since 2012-06-18; left alone");
    assert_string_equal(
        cts_consent_optout_message("2024-03-05", buf, sizeof(buf)),
        "unsubscribed since 2024-03-05; left alone");
    assert_string_equal(cts_consent_optout_message(NULL, buf, sizeof(buf)),
                        "unsubscribed; left alone");
    assert_string_equal(cts_consent_optout_message("", buf, sizeof(buf)),
                        "unsubscribed; left alone");
    assert_string_equal(cts_consent_optout_message("soon", buf, sizeof(buf)),
                        "unsubscribed; left alone");
}

static void count_only(void *arg, const char *email, const char *date)
{
    (void)email;
    (void)date;
    ++*(size_t *)arg;
}

/* Prefixes of every reply, in an exact-size buffer (no NUL, so ASan
 * sees a read past the end): the parsers and builders fail cleanly, and
 * their out-pointers are NULL when they do. */
static void test_truncated_replies(void **state)
{
    static const char *const files[] = {
        "v3_search_include.json", "v3_unsubscribed_page1.json",
        "get_contacts.json", "get_contact.json"};
    struct cts_contact c;
    char *lists[] = {LIST_NEW};
    size_t f, n;
    (void)state;

    memset(&c, 0, sizeof(c));
    c.f[CTS_F_EMAIL] = "jane@example.com";
    c.f[CTS_F_PHONE] = "1";
    for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t len;
        char *full = tu_fixture(files[f], &len);
        /* Every length at first, then every 7th: fast under ASan. */
        for (n = 0; n <= len; n += n < 256 ? 1 : 7) {
            char *buf = malloc(n > 0 ? n : 1), *z = malloc(n + 1);
            char *a = NULL, *b = NULL, *next = NULL;
            size_t k = 0;
            int rc;
            assert_non_null(buf);
            assert_non_null(z);
            memcpy(buf, full, n);
            memcpy(z, full, n);
            z[n] = '\0';
            rc = cts_consent_v3_parse_search(buf, n, &a, &b);
            if (rc != 0 && (a != NULL || b != NULL))
                fail_msg("%s[0..%zu): outputs on failure", files[f], n);
            free(a);
            free(b);
            rc = cts_consent_parse_optouts(n % 2 ? CTS_API_V2 : CTS_API_V3, buf,
                                           n, count_only, &k, &next, NULL);
            if (rc != 0 && next != NULL)
                fail_msg("%s[0..%zu): next on failure", files[f], n);
            free(next);
            rc = cts_consent_v3_merge(z, &c, lists, 1, &cf_ids, &a, &b, NULL);
            if (rc < 0 && (a != NULL || b != NULL))
                fail_msg("%s[0..%zu): merge outputs on failure", files[f], n);
            free(a);
            free(b);
            rc = cts_consent_v3_unsubscribe(z, "r", &a, NULL);
            assert_true(rc != CTS_CONSENT_WRITE || a != NULL);
            free(a);
            rc = cts_consent_v2_merge(z, &c, lists, 1, &a, &b, NULL);
            if (rc < 0 && (a != NULL || b != NULL))
                fail_msg("%s[0..%zu): v2 merge outputs on failure", files[f],
                         n);
            free(a);
            free(b);
            free(buf);
            free(z);
        }
        free(full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v3_search),
        cmocka_unit_test(test_v3_create_body),
        cmocka_unit_test(test_v3_merge_keeps_everything),
        cmocka_unit_test(test_v3_merge_unchanged),
        cmocka_unit_test(test_v3_merge_refuses_unsubscribed),
        cmocka_unit_test(test_v3_merge_other_permissions),
        cmocka_unit_test(test_v3_merge_limits_and_errors),
        cmocka_unit_test(test_v3_unsubscribe),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_optout_listing),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_truncated_replies),
    };
    return cmocka_run_group_tests_name("consent", tests, NULL, NULL);
}
