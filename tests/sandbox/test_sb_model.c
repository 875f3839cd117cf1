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
#include "sandbox/render.c"
#include "sandbox/router.c"
#include "sandbox/store.c"
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

    /* delete: drops the memberships, revived by a merge (with only the
     * lists of that write) */
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
                     1);
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

/* ---------------------------------------------------------- consent */

static int64_t fake_now = 1700000000;
static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

/* Write email with permission perm (NONE = keep) by actor. */
static int consent_write(struct sb_model *m, struct sb_account *a,
                         const char *email, enum sb_upsert_mode mode,
                         enum sb_perm perm, enum sb_actor actor, long list,
                         const char *id)
{
    struct sb_contact_in in;
    size_t lists[1] = {(size_t)list};
    memset(&in, 0, sizeof in);
    in.f[SB_CF_EMAIL] = email;
    in.perm = perm;
    in.actor = actor;
    in.via = "test";
    if (list >= 0) {
        in.lists = lists;
        in.nlists = 1;
    }
    return sb_contact_upsert(m, a, &in, mode, id, NULL, NULL);
}

static enum sb_perm perm_of(struct sb_account *a, const char *email)
{
    sb_contact_ref r;
    assert_int_equal(sb_contact_by_email(a, email, &r), 0);
    return sb_contact_perm(a, r);
}

static size_t log_len(struct sb_model *m, int refused)
{
    json_t *j = sb_model_resubscriptions(m, refused);
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

static void test_consent_rules(void **state)
{
    struct sb_account *a;
    sb_contact_ref r;
    char id[40];
    (void)state;
    struct sb_model *m = demo(&a);
    sb_model_set_clock(m, fake_clock, NULL);

    /* a new contact is implicit, opted in by the account, now */
    assert_int_equal(consent_write(m, a, "a@example.com", SB_UPSERT_CREATE,
                                   SB_PERM_NONE, SB_ACTOR_NONE, 0, NULL),
                     0);
    assert_int_equal(perm_of(a, "a@example.com"), SB_PERM_IMPLICIT);
    assert_int_equal(sb_contact_by_email(a, "a@example.com", &r), 0);
    json_t *j = sb_contact_json_v3(a, r, 0);
    json_t *em = json_object_get(j, "email_address");
    assert_string_equal(json_string_value(json_object_get(em, "opt_in_source")),
                        "Account");
    assert_string_equal(json_string_value(json_object_get(em, "opt_in_date")),
                        "2023-11-14T22:13:20.000Z");
    assert_null(json_object_get(j, "list_memberships"));
    json_decref(j);

    /* the contact unsubscribes: off every list, the membership counted out */
    assert_int_equal(a->lists[0].membership_count, 1);
    fake_now += 60;
    assert_int_equal(
        sb_contact_unsubscribe(m, a, r, SB_ACTOR_CONTACT, "bye", 0), 0);
    assert_int_equal(sb_contact_lists(a, r), 0);
    assert_int_equal(a->lists[0].membership_count, 0);
    assert_int_equal(sb_contact_opt_out_source(a, r), SB_ACTOR_CONTACT);
    assert_int_equal(sb_model_writes(m), 1); /* the admin hook is no write */

    /* the account cannot lift it: ignored, lists dropped, logged refused */
    sb_v3_id(a, r, id);
    assert_int_equal(consent_write(m, a, "a@example.com", SB_UPSERT_REPLACE,
                                   SB_PERM_IMPLICIT, SB_ACTOR_ACCOUNT, 1, id),
                     0);
    assert_int_equal(perm_of(a, "a@example.com"), SB_PERM_UNSUBSCRIBED);
    assert_int_equal(sb_contact_lists(a, r), 0);
    assert_int_equal(log_len(m, 0), 0);
    assert_int_equal(log_len(m, 1), 1);
    /* nor does an import (permission kept, no list) */
    assert_int_equal(consent_write(m, a, "a@example.com", SB_UPSERT_MERGE,
                                   SB_PERM_NONE, SB_ACTOR_ACCOUNT, 0, NULL),
                     0);
    assert_int_equal(perm_of(a, "a@example.com"), SB_PERM_UNSUBSCRIBED);
    assert_int_equal(sb_contact_lists(a, r), 0);
    /* the contact may: a re-subscription, logged with its provenance */
    assert_int_equal(consent_write(m, a, "a@example.com", SB_UPSERT_MERGE,
                                   SB_PERM_EXPLICIT, SB_ACTOR_CONTACT, 0, NULL),
                     0);
    assert_int_equal(perm_of(a, "a@example.com"), SB_PERM_EXPLICIT);
    assert_int_equal(sb_contact_lists(a, r), 1);
    j = sb_model_resubscriptions(m, 0);
    assert_int_equal(json_array_size(j), 1);
    json_t *e = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(e, "email")),
                        "a@example.com");
    assert_string_equal(json_string_value(json_object_get(e, "actor")),
                        "Contact");
    assert_string_equal(json_string_value(json_object_get(e, "opt_out_source")),
                        "Contact");
    json_decref(j);

    /* an opt-out the account made, the account may lift */
    assert_int_equal(sb_contact_unsubscribe(m, a, r, SB_ACTOR_ACCOUNT, NULL, 1),
                     0);
    assert_int_equal(consent_write(m, a, "a@example.com", SB_UPSERT_REPLACE,
                                   SB_PERM_IMPLICIT, SB_ACTOR_ACCOUNT, -1, id),
                     0);
    assert_int_equal(perm_of(a, "a@example.com"), SB_PERM_IMPLICIT);
    assert_int_equal(log_len(m, 0), 2);

    /* deleted is kept apart: a revived contact keeps its permission */
    assert_int_equal(sb_contact_unsubscribe(m, a, r, SB_ACTOR_CONTACT, NULL, 1),
                     0);
    assert_int_equal(sb_contact_delete(m, a, r), 0);
    assert_int_equal(consent_write(m, a, "a@example.com", SB_UPSERT_MERGE,
                                   SB_PERM_NONE, SB_ACTOR_ACCOUNT, 0, NULL),
                     0);
    assert_false(sb_contact_is_deleted(a, r));
    assert_int_equal(perm_of(a, "a@example.com"), SB_PERM_UNSUBSCRIBED);

    /* list removal keeps the contact and its other lists */
    assert_int_equal(consent_write(m, a, "b@example.com", SB_UPSERT_CREATE,
                                   SB_PERM_EXPLICIT, SB_ACTOR_CONTACT, 0, NULL),
                     0);
    assert_int_equal(consent_write(m, a, "b@example.com", SB_UPSERT_MERGE,
                                   SB_PERM_NONE, SB_ACTOR_ACCOUNT, 1, NULL),
                     0);
    assert_int_equal(sb_contact_by_email(a, "b@example.com", &r), 0);
    assert_int_equal(sb_contact_remove_lists(m, a, r, 1), 1);
    assert_int_equal(sb_contact_remove_lists(m, a, r, 1), 0);
    assert_int_equal(sb_contact_lists(a, r), 2);
    assert_int_equal(perm_of(a, "b@example.com"), SB_PERM_EXPLICIT);

    sb_model_reset(m);
    assert_int_equal(log_len(m, 0) + log_len(m, 1), 0);
    sb_model_free(m);
}

static void test_queries_and_seed(void **state)
{
    struct sb_account *a;
    struct cts_error err = {0};
    unsigned mask;
    int64_t t;
    (void)state;
    struct sb_model *m = demo(&a);
    sb_model_set_clock(m, fake_clock, NULL);

    assert_int_equal(sb_status_parse("unsubscribed,deleted", &mask), 0);
    assert_int_equal(mask, SB_ST_UNSUBSCRIBED | SB_ST_DELETED);
    assert_int_equal(sb_status_parse("all", &mask), 0);
    assert_int_equal(mask, SB_ST_ALL);
    assert_int_equal(sb_status_parse("explicit", &mask), -1);
    assert_int_equal(sb_status_parse("active,", &mask), -1);
    assert_int_equal(sb_include_parse("list_memberships,notes", &mask), 0);
    assert_int_equal(mask, SB_INC_LIST_MEMBERSHIPS | SB_INC_NOTES);
    assert_int_equal(sb_include_parse("lists", &mask), -1);

    assert_int_equal(sb_parse_iso8601("2024-05-01T10:00:00Z", &t), 0);
    assert_int_equal(t, 1714557600);
    assert_int_equal(sb_parse_iso8601("2024-05-01T12:00:00.123+02:00", &t), 0);
    assert_int_equal(t, 1714557600);
    assert_int_equal(sb_parse_iso8601("2024-05-01", &t), 0);
    assert_int_equal(t, 1714521600);
    assert_int_equal(sb_parse_iso8601("2024-13-01", &t), -1);
    assert_int_equal(sb_parse_iso8601("2024-05-01T10:00Zx", &t), -1);

    json_t *seed = json_loads(
        "[{\"email\":\"s1@example.com\",\"permission\":\"unsubscribed\","
        "\"opt_out_reason\":\"no\",\"lists\":[\"1\"],"
        "\"updated_at\":\"2020-01-01T00:00:00Z\"},"
        "{\"email\":\"s2@example.com\",\"lists\":[1,\"2\"],"
        "\"custom_fields\":{\"favorite_color\":\"red\"},\"phone\":\"555\"},"
        "{\"email\":\"s3@example.com\",\"deleted\":true}]",
        0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(seed, i, v)
    {
        assert_int_equal(sb_model_seed(m, a, v, &err), 0);
    }
    assert_int_equal(sb_model_writes(m), 0);
    json_t *bad =
        json_loads("{\"email\":\"s4@example.com\",\"lists\":[\"9\"]}", 0, NULL);
    assert_int_equal(sb_model_seed(m, a, bad, &err), CTS_EDATA);
    json_decref(bad);
    json_decref(seed);

    struct sb_query q;
    memset(&q, 0, sizeof q);
    q.status = SB_ST_UNSUBSCRIBED;
    assert_true(sb_contact_match(a, 0, &q));
    assert_false(sb_contact_match(a, 1, &q));
    assert_int_equal(sb_contact_lists(a, 0), 0); /* unsubscribed: no list */
    q.status = SB_ST_DEFAULT;
    assert_false(sb_contact_match(a, 2, &q)); /* deleted */
    q.status = SB_ST_ACTIVE;
    q.lists = 2;
    assert_true(sb_contact_match(a, 1, &q));
    q.lists = 0;
    q.status = 0;
    q.updated_after = 1600000000; /* after 2020: s2, s3 only */
    assert_false(sb_contact_match(a, 0, &q));
    assert_true(sb_contact_match(a, 1, &q));
    memset(&q, 0, sizeof q);
    q.v2_status = "OPTOUT";
    assert_true(sb_contact_match(a, 0, &q));
    assert_string_equal(sb_contact_v2_status(a, 2), "REMOVED");
    assert_string_equal(sb_contact_v2_status(a, 1), "ACTIVE");
    sb_model_free(m);
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
        cmocka_unit_test(test_consent_rules),
        cmocka_unit_test(test_queries_and_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
