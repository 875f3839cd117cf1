/* test_api.c — request bodies and response parsers of api.c, against the
 * php-sdk v2 fixtures (tests/unit/fixtures) and hand-written v3 replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cts_api.h"
#include "cts_jwt.h"
#include "cts_util.h"

/* ---- helpers ---- */

static char *slurp(const char *name, size_t *len)
{
    char path[1024], *dir, *slash;
    const char *env = getenv("CTS_FIXTURES");
    FILE *f;
    struct cts_buf b;
    char chunk[4096];
    size_t n;

    if (env != NULL)
        snprintf(path, sizeof(path), "%s/%s", env, name);
    else {
        /* Next to this source file (the suite runs from the top dir). */
        dir = cts_xstrdup(__FILE__);
        slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(path, sizeof(path), "%s/fixtures/%s",
                 slash != NULL ? dir : ".", name);
        free(dir);
    }
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open fixture %s", path);
    cts_buf_init(&b, 0);
    for (;;) {
        n = fread(chunk, 1, sizeof(chunk), f);
        if (n == 0)
            break;
        cts_buf_append(&b, chunk, n);
    }
    fclose(f);
    *len = b.len;
    return cts_buf_detach(&b);
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", e.text, s);
    return j;
}

static const char *jstr(json_t *o, const char *path)
{
    /* path like "a.b" through objects */
    char buf[128], *p, *dot;
    json_t *cur = o;
    snprintf(buf, sizeof(buf), "%s", path);
    for (p = buf; p != NULL; p = dot) {
        dot = strchr(p, '.');
        if (dot != NULL)
            *dot++ = '\0';
        cur = json_object_get(cur, p);
    }
    return json_string_value(cur);
}

static void contact_set(struct cts_contact *c, enum cts_field f, const char *v)
{
    free(c->f[f]);
    c->f[f] = v != NULL ? cts_xstrdup(v) : NULL;
}

static void contact_full(struct cts_contact *c)
{
    memset(c, 0, sizeof(*c));
    contact_set(c, CTS_F_EMAIL, "jane@example.com");
    contact_set(c, CTS_F_FIRST_NAME, "Zo\xc3\xab");              /* Zoë */
    contact_set(c, CTS_F_LAST_NAME, "\xe6\x97\xa5\xe6\x9c\xac"); /* 日本 */
    contact_set(c, CTS_F_COMPANY_NAME, "Acme");
    contact_set(c, CTS_F_JOB_TITLE, "CTO");
    contact_set(c, CTS_F_PHONE, "555-1213");
    contact_set(c, CTS_F_STREET, "1 Main St");
    contact_set(c, CTS_F_CITY, "Waltham");
    contact_set(c, CTS_F_STATE, "ma");
    contact_set(c, CTS_F_POSTAL_CODE, "02451");
    contact_set(c, CTS_F_COUNTRY, "United States");
    contact_set(c, CTS_F_BIRTHDAY_MONTH, "7");
    contact_set(c, CTS_F_BIRTHDAY_DAY, "14");
    contact_set(c, CTS_F_ANNIVERSARY, "2010-06-01");
    c->ncf = 1;
    c->cf = cts_xcalloc(1, sizeof(*c->cf));
    c->cf[0].name = cts_xstrdup("favorite_color");
    c->cf[0].value = cts_xstrdup("blue \xe2\x80\x99"); /* U+2019 */
}

static void contact_min(struct cts_contact *c)
{
    memset(c, 0, sizeof(*c));
    contact_set(c, CTS_F_EMAIL, "min@example.com");
}

/* ---- fixtures ---- */

static void test_tokeninfo_fixture(void **state)
{
    size_t len;
    char *body = slurp("token_info.json", &len), *cid, *user;
    long exp;
    (void)state;
    assert_int_equal(cts_api_parse_tokeninfo(body, len, &cid, &user, &exp), 0);
    assert_string_equal(cid, "f98b207c-ta99b-4938-b523-3cc2895f5420");
    assert_string_equal(user, "ctcttest");
    assert_int_equal(exp, 315110295); /* a string in the fixture */
    free(cid);
    free(user);
    /* The documented integer form. */
    {
        const char *doc = "{\"client_id\":\"k\",\"expires_in\":285027367}";
        assert_int_equal(
            cts_api_parse_tokeninfo(doc, strlen(doc), &cid, &user, &exp), 0);
    }
    assert_string_equal(cid, "k");
    assert_null(user);
    assert_int_equal(exp, 285027367);
    free(cid);
    /* A reply without client_id is not a tokeninfo. */
    assert_int_equal(
        cts_api_parse_tokeninfo("{\"user_name\":\"x\"}", 17, &cid, &user, &exp),
        CTS_EJSON);
    assert_null(cid);
    assert_null(user);
    free(body);
}

static void test_token_fixture(void **state)
{
    size_t len;
    char *body = slurp("get_access_token.json", &len);
    struct cts_api_token t;
    const char *v3 = "{\"access_token\":\"eyJ.a.b\",\"refresh_token\":\"r1\","
                     "\"token_type\":\"Bearer\",\"expires_in\":86400,"
                     "\"scope\":\"contact_data offline_access\"}";
    (void)state;
    assert_int_equal(cts_api_parse_token(body, len, &t), 0);
    assert_string_equal(t.access_token, "v6574b42-a5bc-4574-a87f-5c9d1202e316");
    assert_null(t.refresh_token);
    assert_string_equal(t.token_type, "Bearer");
    assert_int_equal(t.expires_in, 308874923);
    cts_api_token_free(&t);
    assert_int_equal(cts_api_parse_token(v3, strlen(v3), &t), 0);
    assert_string_equal(t.refresh_token, "r1");
    assert_int_equal(t.expires_in, 86400);
    assert_string_equal(t.scope, "contact_data offline_access");
    cts_api_token_free(&t);
    assert_int_equal(
        cts_api_parse_token("{\"error\":\"invalid_grant\"}", 25, &t),
        CTS_EJSON);
    cts_api_token_free(&t);
    free(body);
}

static void test_contact_fixtures(void **state)
{
    size_t len;
    char *body, *id, *json;
    json_t *c;
    (void)state;
    body = slurp("get_contact.json", &len);
    assert_int_equal(cts_api_v2_parse_contact_id(body, len, &id), 0);
    assert_string_equal(id, "238"); /* a number in the reply */
    free(id);
    free(body);

    body = slurp("get_contacts.json", &len);
    assert_int_equal(cts_api_v2_parse_search(body, len, &id, &json), 0);
    assert_string_equal(id, "230");
    c = parse(json);
    assert_string_equal(jstr(c, "status"), "REMOVED");
    json_decref(c);
    free(id);
    free(json);
    free(body);

    body = slurp("get_contacts_no_next.json", &len);
    assert_int_equal(cts_api_v2_parse_search(body, len, &id, NULL), 0);
    assert_string_equal(id, "230");
    free(id);
    free(body);

    /* No match: success with NULL outputs. */
    assert_int_equal(
        cts_api_v2_parse_search("{\"meta\":{},\"results\":[]}", 24, &id, &json),
        0);
    assert_null(id);
    assert_null(json);

    body = slurp("post_add_contacts.json", &len);
    assert_int_equal(cts_api_v2_parse_contact_id(body, len, &id), 0);
    assert_string_equal(id, "a07e1il69qzhdby44ro");
    free(id);
    free(body);
}

static void test_lists_fixtures(void **state)
{
    size_t len, n;
    char *body = slurp("get_lists.json", &len);
    struct cts_list_info *l;
    const char *v3 =
        "{\"lists\":[{\"list_id\":\"8c2b2d3e-0001-4000-8000-000000000001\","
        "\"name\":\"General Interest\",\"membership_count\":12},"
        "{\"list_id\":\"x2\",\"name\":\"N\"}],\"lists_count\":2}";
    (void)state;
    assert_int_equal(cts_api_parse_lists(CTS_API_V2, body, len, &l, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, "1");
    assert_string_equal(l[0].name, "General Interest");
    assert_int_equal(l[0].member_count, 17);
    assert_string_equal(l[1].id, "3");
    assert_int_equal(l[1].member_count, 18);
    cts_list_info_free(l, n);
    /* The v2 list array is not a v3 reply and vice versa. */
    assert_int_equal(cts_api_parse_lists(CTS_API_V3, body, len, &l, &n),
                     CTS_EJSON);
    assert_null(l);
    free(body);

    assert_int_equal(cts_api_parse_lists(CTS_API_V3, v3, strlen(v3), &l, &n),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, "8c2b2d3e-0001-4000-8000-000000000001");
    assert_int_equal(l[0].member_count, 12);
    assert_int_equal(l[1].member_count, -1);
    cts_list_info_free(l, n);

    assert_int_equal(
        cts_api_parse_lists(CTS_API_V3, "{\"lists\":[]}", 12, &l, &n), 0);
    assert_int_equal(n, 0);
    cts_list_info_free(l, n);
}

static void test_errors(void **state)
{
    static const struct {
        const char *body, *key, *msg;
    } cases[] = {
        {"[{\"error_key\":\"mashery.not.authorized.over.qps\",\"error_"
         "message\":"
         "\"over its queries-per-second quota.\"}]",
         "mashery.not.authorized.over.qps",
         "over its queries-per-second quota."},
        {"{\"error_key\":\"throttled\",\"error_message\":\"Too Many "
         "Requests\"}",
         "throttled", "Too Many Requests"},
        {"{\"error\":\"invalid_grant\",\"error_description\":\"The refresh "
         "token is invalid or expired.\"}",
         "invalid_grant", "The refresh token is invalid or expired."},
        {"[{\"error_key\":\"a\"},{\"error_key\":\"b\"}]", "a", NULL},
        {"{\"errors\":[\"Line 355: Invalid email\"]}", NULL,
         "Line 355: Invalid email"},
        {"\"just a string\"", NULL, "just a string"},
        {"[{\"error_key\":\"http.status.bad_request\",\"error_message\":"
         "\"Bad request.\"}]",
         "http.status.bad_request", "Bad request."},
    };
    size_t i, len;
    char *key, *msg, *body;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(cts_api_parse_error(cases[i].body,
                                             strlen(cases[i].body), &key, &msg),
                         0);
        if (cases[i].key == NULL)
            assert_null(key);
        else
            assert_string_equal(key, cases[i].key);
        if (cases[i].msg == NULL)
            assert_null(msg);
        else
            assert_string_equal(msg, cases[i].msg);
        free(key);
        free(msg);
    }
    /* Bulk activity errors (objects with message). */
    body = slurp("get_activity.json", &len);
    assert_int_equal(cts_api_parse_error(body, len, &key, &msg), 0);
    assert_null(key);
    assert_string_equal(msg, "test@roving.com (not found in subscriber list)");
    free(msg);
    free(body);
    /* Not an error body. */
    assert_int_equal(cts_api_parse_error("{\"id\":1}", 8, &key, &msg),
                     CTS_EJSON);
    assert_null(key);
    assert_null(msg);
    assert_int_equal(cts_api_parse_error("[]", 2, &key, NULL), CTS_EJSON);
    assert_int_equal(cts_api_parse_error("<html>503</html>", 16, &key, &msg),
                     CTS_EJSON);
    /* NULL outputs are allowed. */
    assert_int_equal(
        cts_api_parse_error(cases[0].body, strlen(cases[0].body), NULL, NULL),
        0);
}

static void test_v3_replies(void **state)
{
    const char *su = "{\"contact_id\":\"c-1\",\"action\":\"created\"}";
    const char *acct = "{\"encoded_account_id\":\"a07e1demo0001\","
                       "\"organization_name\":\"Demo Company\","
                       "\"contact_email\":\"x@y\"}";
    const char *cf = "{\"custom_fields\":[{\"custom_field_id\":\"u1\","
                     "\"name\":\"favorite_color\",\"label\":\"Favorite\"},"
                     "{\"custom_field_id\":\"u2\",\"label\":\"Only Label\"},"
                     "{\"name\":\"no id\"}]}";
    char *a, *b;
    struct cts_cf_ids m = {0};
    (void)state;
    assert_int_equal(cts_api_v3_parse_signup(su, strlen(su), &a, &b), 0);
    assert_string_equal(a, "c-1");
    assert_string_equal(b, "created");
    free(a);
    free(b);
    assert_int_equal(
        cts_api_v3_parse_signup("{\"contact_id\":\"c\"}", 18, &a, &b), 0);
    assert_null(b);
    free(a);
    assert_int_equal(cts_api_v3_parse_contact_id(su, strlen(su), &a), 0);
    free(a);
    assert_int_equal(cts_api_parse_account_summary(acct, strlen(acct), &a, &b),
                     0);
    assert_string_equal(a, "a07e1demo0001");
    assert_string_equal(b, "Demo Company");
    free(a);
    free(b);
    assert_int_equal(cts_api_parse_account_summary("{}", 2, &a, &b), CTS_EJSON);
    assert_null(a);
    assert_null(b);

    assert_int_equal(cts_api_parse_custom_fields(cf, strlen(cf), &m), 0);
    assert_int_equal(m.n, 2);
    assert_string_equal(cts_cf_ids_find(&m, "favorite_color"), "u1");
    assert_string_equal(cts_cf_ids_find(&m, "FAVORITE_COLOR"), "u1");
    assert_string_equal(cts_cf_ids_find(&m, "Only Label"), "u2");
    assert_null(cts_cf_ids_find(&m, "nope"));
    assert_null(cts_cf_ids_find(NULL, "nope"));
    cts_cf_ids_free(&m);
    assert_int_equal(m.n, 0);
}

/* Every parser, fed every prefix of every fixture and some junk: never a
 * crash, never a leak (ASan/valgrind), CTS_EJSON for what is not JSON. */
static void feed_all(const char *body, size_t len)
{
    char *a, *b;
    long l;
    size_t n;
    struct cts_list_info *li;
    struct cts_cf_ids m = {0};
    struct cts_api_token t;
    int rc;

    rc = cts_api_parse_error(body, len, &a, &b);
    assert_true(rc == 0 || rc == CTS_EJSON);
    free(a);
    free(b);
    if (cts_api_v3_parse_signup(body, len, &a, &b) == 0) {
        free(a);
        free(b);
    }
    if (cts_api_v2_parse_contact_id(body, len, &a) == 0)
        free(a);
    if (cts_api_v2_parse_search(body, len, &a, &b) == 0) {
        free(a);
        free(b);
    }
    if (cts_api_parse_tokeninfo(body, len, &a, &b, &l) == 0) {
        free(a);
        free(b);
    }
    if (cts_api_parse_account_summary(body, len, &a, &b) == 0) {
        free(a);
        free(b);
    }
    if (cts_api_parse_lists(CTS_API_V2, body, len, &li, &n) == 0)
        cts_list_info_free(li, n);
    if (cts_api_parse_lists(CTS_API_V3, body, len, &li, &n) == 0)
        cts_list_info_free(li, n);
    cts_api_parse_custom_fields(body, len, &m);
    cts_cf_ids_free(&m);
    cts_api_parse_token(body, len, &t);
    cts_api_token_free(&t);
}

static void test_garbage(void **state)
{
    static const char *names[] = {
        "token_info.json",        "get_access_token.json",
        "get_contact.json",       "get_contacts.json",
        "get_lists.json",         "get_activity.json",
        "get_activities.json",    "get_list.json",
        "post_add_contacts.json", "get_contacts_no_next.json"};
    static const char *junk[] = {"",
                                 "{",
                                 "[",
                                 "nul",
                                 "{\"a\":",
                                 "[{\"error_key\":1}]",
                                 "{\"results\":7}",
                                 "{\"results\":[1,2]}",
                                 "{\"lists\":{}}",
                                 "\xff\xfe\x00\x01",
                                 "[[[[[[",
                                 "{\"client_id\":null}",
                                 "{\"id\":1.5}",
                                 "{\"id\":{}}"};
    size_t i, k, len;
    char *a;
    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *body = slurp(names[i], &len);
        for (k = 0; k <= len; k++)
            feed_all(body, k);
        /* A strict prefix of an object or array is never valid JSON. */
        for (k = 1; k + 1 < len; k++)
            assert_int_equal(cts_api_v2_parse_contact_id(body, k, &a),
                             CTS_EJSON);
        free(body);
    }
    for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        feed_all(junk[i], strlen(junk[i]));
    feed_all(NULL, 0);
    assert_int_equal(cts_api_v2_parse_contact_id("{\"id\":{}}", 9, &a),
                     CTS_EJSON);
    assert_int_equal(
        cts_api_v2_parse_search("{\"results\":[{}]}", 16, &a, NULL), CTS_EJSON);
}

/* ---- bodies ---- */

static void test_v3_signup_body(void **state)
{
    struct cts_contact c;
    char *lists[] = {"L1", "L2"};
    struct cts_cf_ids m;
    struct cts_cf_id one = {"favorite_color", "cf-uuid"};
    struct cts_error err = {0};
    char *s;
    json_t *j, *a;
    (void)state;
    m.v = &one;
    m.n = 1;
    contact_full(&c);
    s = cts_api_v3_signup_body(&c, lists, 2, &m, &err);
    assert_non_null(s);
    j = parse(s);
    assert_string_equal(jstr(j, "email_address"), "jane@example.com");
    /* UTF-8 kept byte for byte (no \u escapes in the wire text). */
    assert_non_null(strstr(s, "\"first_name\":\"Zo\xc3\xab\""));
    assert_string_equal(jstr(j, "last_name"), "\xe6\x97\xa5\xe6\x9c\xac");
    assert_string_equal(jstr(j, "phone_number"), "555-1213");
    assert_string_equal(jstr(j, "street_address.kind"), "home");
    assert_string_equal(jstr(j, "street_address.street"), "1 Main St");
    assert_string_equal(jstr(j, "street_address.country"), "United States");
    assert_int_equal(json_integer_value(json_object_get(j, "birthday_month")),
                     7);
    assert_int_equal(json_integer_value(json_object_get(j, "birthday_day")),
                     14);
    assert_string_equal(jstr(j, "anniversary"), "2010-06-01");
    a = json_object_get(j, "list_memberships");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 1)), "L2");
    a = json_object_get(j, "custom_fields");
    assert_int_equal(json_array_size(a), 1);
    assert_string_equal(jstr(json_array_get(a, 0), "custom_field_id"),
                        "cf-uuid");
    assert_string_equal(jstr(json_array_get(a, 0), "value"),
                        "blue \xe2\x80\x99");
    /* The flat shape: no nested email object, no plural arrays. */
    assert_null(json_object_get(j, "email_addresses"));
    assert_null(json_object_get(j, "street_addresses"));
    json_decref(j);
    free(s);

    /* Unknown custom field name: an error naming it. */
    m.n = 0;
    s = cts_api_v3_signup_body(&c, lists, 2, &m, &err);
    assert_null(s);
    assert_int_equal(err.code, CTS_EDATA);
    assert_non_null(strstr(err.msg, "favorite_color"));
    cts_contact_free(&c);
    free(c.cf);

    /* Minimal contact: nothing but the email and the lists. */
    contact_min(&c);
    s = cts_api_v3_signup_body(&c, lists, 1, NULL, &err);
    assert_non_null(s);
    assert_string_equal(s, "{\"email_address\":\"min@example.com\","
                           "\"list_memberships\":[\"L1\"]}");
    free(s);
    /* Lists are required. */
    assert_null(cts_api_v3_signup_body(&c, lists, 0, NULL, &err));
    cts_contact_free(&c);
}

static void test_v3_limits(void **state)
{
    struct cts_contact c;
    char *lists[] = {"L1"};
    struct cts_error err = {0};
    char name[256], *s;
    size_t i;
    (void)state;
    contact_min(&c);
    /* 50 two-byte characters are 50 characters, not 100. */
    for (i = 0; i < 50; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[100] = '\0';
    contact_set(&c, CTS_F_FIRST_NAME, name);
    s = cts_api_v3_signup_body(&c, lists, 1, NULL, &err);
    assert_non_null(s);
    free(s);
    memcpy(name + 100, "x", 2);
    contact_set(&c, CTS_F_FIRST_NAME, name);
    assert_null(cts_api_v3_signup_body(&c, lists, 1, NULL, &err));
    assert_int_equal(err.code, CTS_EDATA);
    assert_non_null(strstr(err.msg, "first_name"));
    contact_set(&c, CTS_F_FIRST_NAME, NULL);
    /* Birthday: a pair of integers in range. */
    contact_set(&c, CTS_F_BIRTHDAY_MONTH, "13");
    contact_set(&c, CTS_F_BIRTHDAY_DAY, "1");
    assert_null(cts_api_v3_signup_body(&c, lists, 1, NULL, &err));
    contact_set(&c, CTS_F_BIRTHDAY_MONTH, NULL);
    assert_null(cts_api_v3_signup_body(&c, lists, 1, NULL, &err));
    assert_non_null(strstr(err.msg, "birthday"));
    contact_set(&c, CTS_F_BIRTHDAY_DAY, NULL);
    /* A phone over 25 characters. */
    contact_set(&c, CTS_F_PHONE, "12345678901234567890123456");
    assert_null(cts_api_v3_signup_body(&c, lists, 1, NULL, &err));
    assert_non_null(strstr(err.msg, "phone_number"));
    cts_contact_free(&c);
}

static void test_v3_contact_body(void **state)
{
    struct cts_contact c;
    char *lists[] = {"L1"};
    struct cts_cf_id one = {"favorite_color", "cf-uuid"};
    struct cts_cf_ids m = {&one, 1};
    char *s;
    json_t *j, *a;
    (void)state;
    contact_full(&c);
    s = cts_api_v3_contact_body(&c, lists, 1, &m, NULL);
    assert_non_null(s);
    j = parse(s);
    assert_string_equal(jstr(j, "email_address.address"), "jane@example.com");
    assert_string_equal(jstr(j, "email_address.permission_to_send"),
                        "implicit");
    assert_string_equal(jstr(j, "create_source"), "Account");
    a = json_object_get(j, "phone_numbers");
    assert_string_equal(jstr(json_array_get(a, 0), "phone_number"), "555-1213");
    a = json_object_get(j, "street_addresses");
    assert_string_equal(jstr(json_array_get(a, 0), "city"), "Waltham");
    json_decref(j);
    free(s);
    cts_contact_free(&c);
    free(c.cf);
}

static void test_v2_contact_body(void **state)
{
    struct cts_contact c;
    char *lists[] = {"1", "2"};
    char *s;
    json_t *j, *a;
    (void)state;
    contact_full(&c);
    s = cts_api_v2_contact_body(&c, lists, 2, NULL);
    assert_non_null(s);
    j = parse(s);
    a = json_object_get(j, "email_addresses");
    assert_string_equal(jstr(json_array_get(a, 0), "email_address"),
                        "jane@example.com");
    a = json_object_get(j, "lists");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(jstr(json_array_get(a, 0), "id"), "1");
    assert_string_equal(jstr(j, "work_phone"), "555-1213");
    a = json_object_get(j, "addresses");
    assert_string_equal(jstr(json_array_get(a, 0), "address_type"), "PERSONAL");
    assert_string_equal(jstr(json_array_get(a, 0), "line1"), "1 Main St");
    assert_string_equal(jstr(json_array_get(a, 0), "state_code"), "MA");
    assert_null(jstr(json_array_get(a, 0), "state"));
    assert_string_equal(jstr(json_array_get(a, 0), "country_code"), "us");
    a = json_object_get(j, "custom_fields");
    assert_string_equal(jstr(json_array_get(a, 0), "name"), "favorite_color");
    /* v2 contacts have no birthday fields. */
    assert_null(json_object_get(j, "birthday_month"));
    json_decref(j);
    free(s);

    /* Outside US/CA the state is free text. */
    contact_set(&c, CTS_F_COUNTRY, "DE");
    contact_set(&c, CTS_F_STATE, "BY");
    s = cts_api_v2_contact_body(&c, lists, 1, NULL);
    j = parse(s);
    a = json_object_get(j, "addresses");
    assert_string_equal(jstr(json_array_get(a, 0), "state"), "BY");
    assert_string_equal(jstr(json_array_get(a, 0), "country_code"), "de");
    json_decref(j);
    free(s);
    cts_contact_free(&c);
    free(c.cf);

    contact_min(&c);
    s = cts_api_v2_contact_body(&c, lists, 1, NULL);
    assert_string_equal(s, "{\"email_addresses\":[{\"email_address\":"
                           "\"min@example.com\"}],\"lists\":[{\"id\":\"1\"}]}");
    free(s);
    cts_contact_free(&c);
}

static void test_v2_merge(void **state)
{
    size_t len;
    char *existing = slurp("get_contact.json", &len);
    struct cts_contact c;
    char *lists[] = {"10", "9", "10"};
    struct cts_error err = {0};
    char *s;
    json_t *j, *a, *old;
    size_t i, nine = 0, ten = 0;
    (void)state;
    old = parse(existing);
    contact_min(&c);
    contact_set(&c, CTS_F_FIRST_NAME, "Jos\xc3\xa9");
    contact_set(&c, CTS_F_CITY, "Boston");
    s = cts_api_v2_merge_update(existing, &c, lists, 3, &err);
    assert_non_null(s);
    j = parse(s);
    a = json_object_get(j, "lists");
    for (i = 0; i < json_array_size(a); i++) {
        json_t *id = json_object_get(json_array_get(a, i), "id");
        if ((json_is_integer(id) && json_integer_value(id) == 9) ||
            (json_is_string(id) && strcmp(json_string_value(id), "9") == 0))
            nine++;
        if (json_is_string(id) && strcmp(json_string_value(id), "10") == 0)
            ten++;
    }
    /* Existing list 9 kept once, new list 10 added once. */
    assert_int_equal(nine, 1);
    assert_int_equal(ten, 1);
    assert_int_equal(json_array_size(a),
                     json_array_size(json_object_get(old, "lists")) + 1);
    assert_string_equal(jstr(j, "first_name"), "Jos\xc3\xa9");
    /* What the row does not mention stays as it was. */
    assert_string_equal(jstr(j, "last_name"), jstr(old, "last_name"));
    assert_true(
        json_equal(json_object_get(j, "notes"), json_object_get(old, "notes")));
    assert_true(json_equal(json_object_get(j, "email_addresses"),
                           json_object_get(old, "email_addresses")));
    a = json_object_get(j, "addresses");
    assert_string_equal(jstr(json_array_get(a, 0), "city"), "Boston");
    assert_string_equal(jstr(json_array_get(a, 0), "line1"), "1601 Trapelo Rd");
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 238);
    json_decref(j);
    free(s);

    assert_null(cts_api_v2_merge_update("not json", &c, lists, 1, &err));
    assert_int_equal(err.code, CTS_EJSON);
    assert_null(cts_api_v2_merge_update(NULL, &c, lists, 1, &err));
    json_decref(old);
    free(existing);
    cts_contact_free(&c);
}

static void test_jwt(void **state)
{
    const char *payload =
        "{\"cid\":\"demo-v3-client-00000000000001\","
        "\"exp\":4102444800,\"aud\":\"https://api.cc.email/v3\"}";
    char *h = cts_base64url_encode("{\"alg\":\"HS256\"}", 15);
    char *p = cts_base64url_encode(payload, strlen(payload));
    char *tok = cts_xasprintf("%s.%s.sig", h, p), *bad, *cid;
    long long exp;
    json_t *j;
    (void)state;
    assert_int_equal(cts_jwt_payload(tok, &j), 0);
    assert_string_equal(jstr(j, "aud"), "https://api.cc.email/v3");
    json_decref(j);
    assert_int_equal(cts_jwt_claims(tok, &cid, &exp), 0);
    assert_string_equal(cid, "demo-v3-client-00000000000001");
    assert_int_equal(exp, 4102444800LL);
    free(cid);
    /* Opaque tokens and broken ones. */
    assert_int_equal(cts_jwt_payload("demo-v2-token-000000000000000000001", &j),
                     CTS_EJSON);
    assert_null(j);
    assert_int_equal(cts_jwt_payload("a..c", &j), CTS_EJSON);
    assert_int_equal(cts_jwt_payload("a.b.c.d", &j), CTS_EJSON);
    assert_int_equal(cts_jwt_payload(NULL, &j), CTS_EJSON);
    bad = cts_xasprintf("%s.%s.sig", h, h + 1); /* not base64 of JSON */
    assert_int_equal(cts_jwt_claims(bad, &cid, &exp), CTS_EJSON);
    assert_null(cid);
    free(bad);
    free(tok);
    free(h);
    free(p);
}

static void test_url(void **state)
{
    char *u;
    (void)state;
    u = cts_api_url("http://127.0.0.1:9/v2/", "/contacts", "k y&", NULL);
    assert_string_equal(u, "http://127.0.0.1:9/v2/contacts?api_key=k%20y%26");
    free(u);
    u = cts_api_url("http://h/v2", "contacts", "k", "email=a%40b.c");
    assert_string_equal(u, "http://h/v2/contacts?api_key=k&email=a%40b.c");
    free(u);
    u = cts_api_url("https://api.cc.email/v3", "/contacts/sign_up_form", NULL,
                    NULL);
    assert_string_equal(u, "https://api.cc.email/v3/contacts/sign_up_form");
    free(u);
    u = cts_api_url("http://h/v3", "/lists?limit=1000", NULL, "x=1");
    assert_string_equal(u, "http://h/v3/lists?limit=1000&x=1");
    free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokeninfo_fixture),
        cmocka_unit_test(test_token_fixture),
        cmocka_unit_test(test_contact_fixtures),
        cmocka_unit_test(test_lists_fixtures),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_v3_replies),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_v3_signup_body),
        cmocka_unit_test(test_v3_limits),
        cmocka_unit_test(test_v3_contact_body),
        cmocka_unit_test(test_v2_contact_body),
        cmocka_unit_test(test_v2_merge),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_url),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
