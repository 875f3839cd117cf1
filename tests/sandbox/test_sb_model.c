/* test_sb_model.c — ctct-sandbox's model (accounts file, tokens, contact
 * store: create/merge/replace/delete, append semantics, write counts, list
 * membership counts, ids, a large store), the router (specificity, captures,
 * 405) and the validators. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* the sandbox's sources are not in libcts.a: compile them in */
#include "sandbox/http.c"
#include "sandbox/limits.c"
#include "sandbox/model.c"
#include "sandbox/router.c"
#include "sandbox/valid.c"

static struct sb_model *demo(struct sb_account **acct)
{
    struct sb_model *m = sb_model_new();
    assert_int_equal(sb_model_load_demo(m), 0);
    *acct = sb_account_find(m, "demo");
    assert_non_null(*acct);
    return m;
}

static void test_demo_model(void **state)
{
    struct sb_account *a;
    (void)state;
    struct sb_model *m = demo(&a);
    assert_ptr_equal(sb_account_find(m, "a07e1demo0001"), a);
    assert_null(sb_account_find(m, "nobody"));
    assert_int_equal(a->nlists, 2);
    assert_int_equal(sb_list_find(a, "2"), 1);
    assert_int_equal(sb_list_find(a, "8C2B2D3E-0001-4000-8000-000000000001"),
                     0);
    assert_int_equal(sb_list_find(a, "3"), -1);
    assert_int_equal(sb_cfield_find(a, "favorite_color"), 0);
    assert_int_equal(sb_cfield_find(a, "CustomField2"), 1);
    assert_int_equal(sb_cfield_find(a, "custom_field_1"), 0);
    assert_int_equal(sb_cfield_find(a, "CustomField3"), -1);
    struct sb_app *app = sb_app_find(m, "demo-v3-client-00000000000001");
    assert_non_null(app);
    assert_int_equal(app->api, SB_API_V3);
    assert_true(app->device_flow);
    assert_true(sb_app_redirect_ok(app, "http://127.0.0.1:53682/callback"));
    assert_false(sb_app_redirect_ok(app, "https://127.0.0.1:53682/callback"));
    struct sb_token *t =
        sb_token_find(m, "demo-v2-token-000000000000000000001");
    assert_non_null(t);
    assert_ptr_equal(t->account, a);
    assert_int_equal(t->api, SB_API_V2);
    /* tokens: add, replace, find */
    sb_token_add(m, "tok-1", SB_API_V3, "demo-v3-client-00000000000001", a, 10,
                 20);
    sb_token_add(m, "tok-1", SB_API_V3, "demo-v3-client-00000000000001", a, 10,
                 30);
    assert_int_equal(sb_token_find(m, "tok-1")->expires_at, 30);
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        sb_token_add(m, name, SB_API_V2, "k", a, 0, i);
    }
    assert_int_equal(sb_token_find(m, "t321")->expires_at, 321);
    assert_null(sb_token_find(m, "t500"));
    struct sb_refresh *r = sb_refresh_add(m, "rt", "k", a, "scope", 5);
    assert_ptr_equal(sb_refresh_find(m, "rt"), r);
    assert_int_equal(r->used, 0);
    sb_model_free(m);
}

static int upsert(struct sb_model *m, struct sb_account *a, const char *email,
                  const char *first, const char *last, size_t list,
                  enum sb_upsert_mode mode, const char *id, int *created)
{
    struct sb_contact_in in;
    size_t lists[1] = {list};
    memset(&in, 0, sizeof in);
    in.f[SB_CF_EMAIL] = email;
    in.f[SB_CF_FIRST_NAME] = first;
    in.f[SB_CF_LAST_NAME] = last;
    if (list != (size_t)-1) {
        in.lists = lists;
        in.nlists = 1;
    }
    return sb_contact_upsert(m, a, &in, mode, id, NULL, created);
}

static json_t *state_of(struct sb_account *a, const char *email)
{
    sb_contact_ref r;
    if (sb_contact_by_email(a, email, &r) != 0)
        return NULL;
    return sb_contact_json(a, r, SB_RENDER_STATE);
}

static void test_create_merge_replace(void **state)
{
    struct sb_account *a;
    int created = -1;
    (void)state;
    struct sb_model *m = demo(&a);

    assert_int_equal(upsert(m, a, "Ann@Example.COM", "Ann", NULL, 0,
                            SB_UPSERT_CREATE, NULL, &created),
                     0);
    assert_int_equal(created, 1);
    assert_int_equal(upsert(m, a, "ann@example.com", "X", NULL, 0,
                            SB_UPSERT_CREATE, NULL, NULL),
                     SB_EEXIST);
    assert_int_equal(
        upsert(m, a, NULL, "X", NULL, 0, SB_UPSERT_MERGE, NULL, NULL),
        CTS_EDATA);
    /* merge: given fields overwrite, absent ones stay, lists append */
    assert_int_equal(upsert(m, a, "ANN@example.com", NULL, "Lee", 1,
                            SB_UPSERT_MERGE, NULL, &created),
                     0);
    assert_int_equal(created, 0);
    json_t *j = state_of(a, "ann@example.com");
    assert_string_equal(json_string_value(json_object_get(j, "email")),
                        "ann@example.com");
    assert_string_equal(json_string_value(json_object_get(j, "first_name")),
                        "Ann");
    assert_string_equal(json_string_value(json_object_get(j, "last_name")),
                        "Lee");
    assert_int_equal(json_array_size(json_object_get(j, "lists_v2")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "writes")), 2);
    json_decref(j);
    assert_int_equal(a->lists[0].membership_count, 1);
    assert_int_equal(a->lists[1].membership_count, 1);
    /* an identical merge changes nothing: no write counted */
    uint64_t w = sb_model_writes(m);
    assert_int_equal(upsert(m, a, "ann@example.com", "Ann", NULL, 1,
                            SB_UPSERT_MERGE, NULL, NULL),
                     0);
    assert_int_equal(sb_model_writes(m), w);

    /* custom fields append / overwrite by field */
    struct sb_contact_in in;
    size_t cfi[2] = {1, 0};
    const char *cfv[2] = {"2020", "blue"};
    memset(&in, 0, sizeof in);
    in.f[SB_CF_EMAIL] = "ann@example.com";
    in.cf_idx = cfi;
    in.cf_values = cfv;
    in.ncf = 1;
    assert_int_equal(
        sb_contact_upsert(m, a, &in, SB_UPSERT_MERGE, NULL, NULL, NULL), 0);
    cfv[0] = "2021";
    in.ncf = 2;
    assert_int_equal(
        sb_contact_upsert(m, a, &in, SB_UPSERT_MERGE, NULL, NULL, NULL), 0);
    j = state_of(a, "ann@example.com");
    json_t *cf = json_object_get(j, "custom_fields");
    assert_string_equal(json_string_value(json_object_get(cf, "member_since")),
                        "2021");
    assert_string_equal(
        json_string_value(json_object_get(cf, "favorite_color")), "blue");
    const char *id = json_string_value(json_object_get(j, "id"));
    char idbuf[64];
    snprintf(idbuf, sizeof idbuf, "%s", id);
    long v2id = (long)json_integer_value(json_object_get(j, "id_v2"));
    json_decref(j);

    /* ids: v3 uuid and v2 number both find it; junk does not */
    sb_contact_ref r;
    assert_int_equal(sb_contact_by_id(a, idbuf, &r), 0);
    char v2s[32];
    snprintf(v2s, sizeof v2s, "%ld", v2id);
    sb_contact_ref r2;
    assert_int_equal(sb_contact_by_id(a, v2s, &r2), 0);
    assert_int_equal(r, r2);
    idbuf[0] = idbuf[0] == 'a' ? 'b' : 'a';
    assert_int_equal(sb_contact_by_id(a, idbuf, &r2), SB_ENOTFOUND);
    assert_int_equal(sb_contact_by_id(a, "12", &r2), SB_ENOTFOUND);
    assert_int_equal(sb_contact_by_id(a, "", &r2), SB_ENOTFOUND);

    /* replace: absent fields cleared, lists as given, email may change */
    assert_int_equal(upsert(m, a, "bob@example.com", "Bob", NULL, 0,
                            SB_UPSERT_CREATE, NULL, NULL),
                     0);
    assert_int_equal(upsert(m, a, "bob@example.com", "Ann2", NULL, 1,
                            SB_UPSERT_REPLACE, v2s, NULL),
                     SB_EEXIST);
    assert_int_equal(upsert(m, a, "ann.new@example.com", "Ann2", NULL, 1,
                            SB_UPSERT_REPLACE, v2s, NULL),
                     0);
    assert_null(state_of(a, "ann@example.com"));
    j = state_of(a, "ann.new@example.com");
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "last_name")), "");
    assert_int_equal(json_array_size(json_object_get(j, "lists_v2")), 1);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(j, "lists_v2"), 0)),
        "2");
    json_decref(j);
    assert_int_equal(a->lists[0].membership_count, 1); /* bob */
    assert_int_equal(a->lists[1].membership_count, 1); /* ann */
    assert_int_equal(upsert(m, a, "x@example.com", NULL, NULL, 0,
                            SB_UPSERT_REPLACE, "999999999", NULL),
                     SB_ENOTFOUND);

    /* delete: hidden from counts, revived by a merge */
    assert_int_equal(sb_contact_delete(m, a, r), 0);
    assert_true(sb_contact_is_deleted(a, r));
    assert_int_equal(sb_contact_delete(m, a, r), SB_ENOTFOUND);
    assert_int_equal(a->lists[1].membership_count, 0);
    assert_int_equal(upsert(m, a, "ann.new@example.com", NULL, NULL, 0,
                            SB_UPSERT_MERGE, NULL, &created),
                     0);
    assert_int_equal(created, 0);
    assert_false(sb_contact_is_deleted(a, r));
    assert_int_equal(sb_contact_count(a), 2);

    /* renderers */
    j = sb_contact_json(a, r, SB_RENDER_V2);
    assert_true(json_is_integer(json_object_get(j, "id")));
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(j, "email_addresses"), 0),
            "email_address")),
        "ann.new@example.com");
    json_decref(j);
    j = sb_contact_json(a, r, SB_RENDER_V3);
    assert_true(json_is_string(json_object_get(j, "contact_id")));
    assert_int_equal(json_array_size(json_object_get(j, "list_memberships")),
                     2);
    json_decref(j);
    assert_null(sb_contact_json(a, 99, SB_RENDER_V3));

    sb_model_reset(m);
    assert_int_equal(sb_contact_count(a), 0);
    assert_null(state_of(a, "bob@example.com"));
    assert_int_equal(a->lists[0].membership_count, 0);
    sb_model_free(m);
}

static void test_large_store(void **state)
{
    struct sb_account *a;
    char email[64];
    (void)state;
    struct sb_model *m = demo(&a);
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        snprintf(email, sizeof email, "user%d@example.com", i);
        assert_int_equal(upsert(m, a, email, "F", "L", (size_t)(i % 2),
                                SB_UPSERT_MERGE, NULL, NULL),
                         0);
    }
    assert_int_equal(sb_contact_count(a), n);
    for (int i = 0; i < n; i += 997) {
        sb_contact_ref r;
        snprintf(email, sizeof email, "USER%d@example.com", i);
        assert_int_equal(sb_contact_by_email(a, email, &r), 0);
        assert_int_equal(r, (size_t)i);
    }
    assert_int_equal(
        a->lists[0].membership_count + a->lists[1].membership_count, n);
    /* email changes move index entries (back-shift deletion) */
    for (int i = 0; i < 1000; i++) {
        char id[32], ne[64];
        snprintf(id, sizeof id, "%llu", 100000000ull + (unsigned)i + 1);
        snprintf(ne, sizeof ne, "moved%d@example.com", i);
        assert_int_equal(
            upsert(m, a, ne, "F", "L", 0, SB_UPSERT_REPLACE, id, NULL), 0);
    }
    for (int i = 0; i < n; i += 101) {
        sb_contact_ref r;
        snprintf(email, sizeof email, "user%d@example.com", i);
        assert_int_equal(sb_contact_by_email(a, email, &r) == 0, i >= 1000);
        snprintf(email, sizeof email, "moved%d@example.com", i);
        assert_int_equal(sb_contact_by_email(a, email, &r) == 0, i < 1000);
    }
    sb_model_free(m);
}

static void test_accounts_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sb-accounts-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *doc =
        "{\"apps\":[{\"api_key\":\"k2\",\"secret\":\"s\",\"api\":\"v2\","
        "\"redirect_uris\":[\"https://x/cb\"]},"
        "{\"api_key\":\"c3\",\"api\":\"v3\",\"refresh\":\"long_lived\","
        "\"device_flow\":true}],"
        "\"accounts\":[{\"user_name\":\"u\",\"encoded_account_id\":\"e\","
        "\"lists\":[{\"id\":7,\"list_id\":\"uuid-7\",\"name\":\"Seven\"}],"
        "\"custom_fields\":[{\"custom_field_id\":\"cf\",\"name\":\"n\"}],"
        "\"tokens\":[{\"token\":\"t2\",\"api_key\":\"k2\",\"api\":\"v2\"},"
        "{\"token\":\"t3\",\"api_key\":\"c3\",\"api\":\"v3\","
        "\"expires_at\":99}]}]}";
    assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    struct sb_model *m = sb_model_new();
    struct cts_error err = {0};
    assert_int_equal(sb_model_load_file(m, path, &err), 0);
    struct sb_account *a = sb_account_find(m, "u");
    assert_non_null(a);
    assert_string_equal(a->lists[0].id, "7");
    assert_int_equal(sb_app_find(m, "c3")->refresh, SB_REFRESH_LONG_LIVED);
    assert_true(sb_app_redirect_ok(sb_app_find(m, "k2"), "https://x/cb"));
    assert_int_equal(sb_token_find(m, "t3")->expires_at, 99);
    sb_model_free(m);

    const char *bad[] = {
        "[]",
        "{\"accounts\":[]}",
        "{\"accounts\":[{\"user_name\":\"u\"}]}",
        "{\"apps\":[{\"api_key\":\"k\",\"api\":\"v9\"}],\"accounts\":[]}",
        ("{\"accounts\":[{\"user_name\":\"u\",\"encoded_account_id\":\"e\","
         "\"lists\":[{\"id\":\"1\"}]}]}"),
        "{not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        m = sb_model_new();
        memset(&err, 0, sizeof err);
        assert_int_equal(sb_model_load_file(m, path, &err), CTS_ECONFIG);
        assert_non_null(strstr(err.msg, path));
        sb_model_free(m);
    }
    unlink(path);
}

static int h_a(struct sb_req *req, struct sb_res *res)
{
    (void)req;
    (void)res;
    return 1;
}
static int h_b(struct sb_req *req, struct sb_res *res)
{
    (void)req;
    (void)res;
    return 2;
}

static void test_router(void **state)
{
    (void)state;
    struct sb_router *r = sb_router_new();
    struct sb_route *rt;
    const char *params[SB_MAX_PARAMS];
    size_t np;
    char scratch[256], allow[64];

    assert_int_equal(sb_router_add(r, "GET", "/v3/contacts/{id}", h_a, 0), 0);
    assert_int_equal(
        sb_router_add(r, "POST", "/v3/contacts/sign_up_form", h_b, 0), 0);
    assert_int_equal(sb_router_add(r, "PUT", "/v3/contacts/{id}", h_b, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/static/*", h_b, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "/a/{x}/b/{y}", h_a, 0), 0);
    assert_int_equal(sb_router_add(r, "GET", "no-slash", h_a, 0), CTS_EUSAGE);
    assert_int_equal(sb_router_add(r, "GET", "/x*", h_a, 0), CTS_EUSAGE);
    assert_int_equal(sb_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}", h_a, 0),
                     CTS_EUSAGE);

    /* literal beats capture regardless of registration order */
    assert_int_equal(sb_router_match(r, "POST", "/v3/contacts/sign_up_form",
                                     &rt, params, &np, scratch, sizeof scratch,
                                     allow, sizeof allow),
                     SB_MATCH_OK);
    assert_ptr_equal(rt->handler, h_b);
    assert_int_equal(np, 0);
    /* capture, %-decoded */
    assert_int_equal(sb_router_match(r, "GET", "/v3/contacts/a%2Fb", &rt,
                                     params, &np, scratch, sizeof scratch,
                                     allow, sizeof allow),
                     SB_MATCH_OK);
    assert_int_equal(np, 1);
    assert_string_equal(params[0], "a/b");
    assert_string_equal(rt->endpoint, "GET /v3/contacts/{id}");
    assert_int_equal(sb_router_match(r, "GET", "/a/1/b/2", &rt, params, &np,
                                     scratch, sizeof scratch, allow,
                                     sizeof allow),
                     SB_MATCH_OK);
    assert_int_equal(np, 2);
    assert_string_equal(params[1], "2");
    /* prefix */
    assert_int_equal(sb_router_match(r, "GET", "/static/x/y.css", &rt, params,
                                     &np, scratch, sizeof scratch, allow,
                                     sizeof allow),
                     SB_MATCH_OK);
    /* 405 with Allow, 404 */
    assert_int_equal(sb_router_match(r, "DELETE", "/v3/contacts/1", &rt, params,
                                     &np, scratch, sizeof scratch, allow,
                                     sizeof allow),
                     SB_MATCH_NOMETHOD);
    assert_string_equal(allow, "GET, PUT");
    assert_int_equal(sb_router_match(r, "GET", "/v3/contacts/", &rt, params,
                                     &np, scratch, sizeof scratch, allow,
                                     sizeof allow),
                     SB_MATCH_NOPATH);
    assert_int_equal(sb_router_match(r, "GET", "/v3/contacts/1/x", &rt, params,
                                     &np, scratch, sizeof scratch, allow,
                                     sizeof allow),
                     SB_MATCH_NOPATH);
    /* re-registering replaces the handler */
    assert_int_equal(sb_router_add(r, "GET", "/v3/contacts/{id}", h_b, 0), 0);
    assert_int_equal(sb_router_count(r), 5);
    sb_router_match(r, "GET", "/v3/contacts/1", &rt, params, &np, scratch,
                    sizeof scratch, allow, sizeof allow);
    assert_ptr_equal(rt->handler, h_b);
    sb_router_free(r);
}

static void test_validators(void **state)
{
    (void)state;
    assert_int_equal(sb_utf8_chars("abc"), 3);
    assert_int_equal(sb_utf8_chars("é’😀"), 3);
    assert_int_equal(sb_utf8_chars("\xff"), (size_t)-1);
    assert_int_equal(sb_utf8_chars("\xc0\xaf"), (size_t)-1); /* overlong */
    assert_true(sb_is_latin1("José Ñandú"));
    assert_false(sb_is_latin1("O’Brien"));
    assert_true(sb_email_ok("a.b+c@example.co.uk"));
    assert_false(sb_email_ok("a@b"));
    assert_false(sb_email_ok("a b@example.com"));
    assert_false(sb_email_ok("@example.com"));
    assert_false(sb_email_ok("a@@example.com"));
    assert_false(sb_email_ok("a..b@example.com"));
    assert_false(sb_email_ok(""));
    json_t *errs = json_array();
    json_t *o = json_pack("{s:s,s:i}", "name", "ééé", "num", 3);
    assert_string_equal(sb_jfield(o, "name", 3, errs, "k", ""), "ééé");
    assert_null(sb_jfield(o, "name", 2, errs, "k", ""));
    assert_null(sb_jfield(o, "num", 0, errs, "k", ""));
    assert_null(sb_jfield(o, "absent", 0, errs, "k", ""));
    assert_int_equal(json_array_size(errs), 2);
    json_decref(o);
    json_decref(errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_model),
        cmocka_unit_test(test_create_merge_replace),
        cmocka_unit_test(test_large_store),
        cmocka_unit_test(test_accounts_file),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_validators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
