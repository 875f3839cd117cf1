/*
 * model.c — the sandbox's data: apps (API keys / client ids), accounts with
 * their lists and custom fields, access and refresh tokens, the accounts
 * file, and one contact store per account (store.c; layout in sb_store.h).
 */
#include "sb_store.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------------ maps */

static void map_put(struct tok_map *m, const char *key, void *val)
{
    if (m->n + 1 > m->nb) {
        size_t nb = m->nb ? m->nb * 2 : 64;
        struct tok_node **b = cts_xcalloc(nb, sizeof *b);
        for (size_t i = 0; i < m->nb; i++) {
            struct tok_node *n = m->b[i], *next;
            for (; n; n = next) {
                next = n->next;
                size_t h = (size_t)(sb_hstr(n->key) & (nb - 1));
                n->next = b[h];
                b[h] = n;
            }
        }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    struct tok_node *n = cts_xmalloc(sizeof *n);
    size_t h = (size_t)(sb_hstr(key) & (m->nb - 1));
    n->key = key;
    n->val = val;
    n->next = m->b[h];
    m->b[h] = n;
    m->n++;
}

static void *map_get(const struct tok_map *m, const char *key)
{
    if (!m->nb || !key)
        return NULL;
    size_t h = (size_t)(sb_hstr(key) & (m->nb - 1));
    for (struct tok_node *n = m->b[h]; n; n = n->next)
        if (strcmp(n->key, key) == 0)
            return n->val;
    return NULL;
}

static void map_free(struct tok_map *m, void (*fr)(void *))
{
    for (size_t i = 0; i < m->nb; i++) {
        struct tok_node *n = m->b[i], *next;
        for (; n; n = next) {
            next = n->next;
            fr(n->val);
            free(n);
        }
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

static void token_free(void *p)
{
    struct sb_token *t = p;
    free(t->token);
    free(t->api_key);
    free(t);
}

static void refresh_free(void *p)
{
    struct sb_refresh *r = p;
    free(r->token);
    free(r->api_key);
    free(r->scope);
    free(r);
}

/* ----------------------------------------------------------- model core */

struct sb_model *sb_model_new(void)
{
    return cts_xcalloc(1, sizeof(struct sb_model));
}

static void app_free(struct sb_app *a)
{
    free(a->api_key);
    free(a->secret);
    for (size_t i = 0; i < a->nredirect; i++)
        free(a->redirect_uris[i]);
    free(a->redirect_uris);
    if (a->limit) {
        sb_limit_free(a->limit);
        free(a->limit);
    }
    free(a);
}

static void account_free(struct sb_account *a)
{
    free(a->user_name);
    free(a->encoded_account_id);
    free(a->organization_name);
    free(a->contact_email);
    free(a->first_name);
    free(a->last_name);
    for (size_t i = 0; i < a->nlists; i++) {
        free(a->lists[i].id);
        free(a->lists[i].list_id);
        free(a->lists[i].name);
    }
    free(a->lists);
    for (size_t i = 0; i < a->ncfields; i++) {
        free(a->cfields[i].custom_field_id);
        free(a->cfields[i].name);
        free(a->cfields[i].label);
        free(a->cfields[i].type);
    }
    free(a->cfields);
    sb_store_free(a->store);
    free(a);
}

void sb_model_free(struct sb_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->napps; i++)
        app_free(m->apps[i]);
    free(m->apps);
    for (size_t i = 0; i < m->naccts; i++)
        account_free(m->accts[i]);
    free(m->accts);
    map_free(&m->tokens, token_free);
    map_free(&m->refresh, refresh_free);
    sb_resub_clear(m);
    free(m);
}

struct sb_app *sb_app_find(struct sb_model *m, const char *api_key)
{
    if (!api_key)
        return NULL;
    for (size_t i = 0; i < m->napps; i++)
        if (strcmp(m->apps[i]->api_key, api_key) == 0)
            return m->apps[i];
    return NULL;
}

int sb_app_redirect_ok(const struct sb_app *app, const char *uri)
{
    if (!app || !uri)
        return 0;
    for (size_t i = 0; i < app->nredirect; i++)
        if (strcmp(app->redirect_uris[i], uri) == 0)
            return 1;
    return 0;
}

struct sb_app *sb_model_app_at(struct sb_model *m, size_t i)
{
    return i < m->napps ? m->apps[i] : NULL;
}

size_t sb_model_app_count(const struct sb_model *m)
{
    return m->napps;
}

static struct sb_app *app_add(struct sb_model *m, const char *key,
                              const char *secret, enum sb_api api)
{
    struct sb_app *a = sb_app_find(m, key);
    if (a)
        return a;
    a = cts_xcalloc(1, sizeof *a);
    a->api_key = cts_xstrdup(key);
    a->secret = cts_xstrdup(secret ? secret : "");
    a->api = api;
    a->limit = cts_xcalloc(1, sizeof *a->limit);
    m->apps = cts_xrealloc(m->apps, (m->napps + 1) * sizeof *m->apps);
    m->apps[m->napps++] = a;
    return a;
}

struct sb_app *sb_model_app_ensure(struct sb_model *m, const char *api_key,
                                   enum sb_api api)
{
    return app_add(m, api_key, "", api);
}

static void app_add_redirect(struct sb_app *a, const char *uri)
{
    a->redirect_uris =
        cts_xrealloc(a->redirect_uris, (a->nredirect + 1) * sizeof(char *));
    a->redirect_uris[a->nredirect++] = cts_xstrdup(uri);
}

struct sb_account *sb_account_find(struct sb_model *m, const char *name_or_id)
{
    if (!name_or_id)
        return NULL;
    for (size_t i = 0; i < m->naccts; i++) {
        struct sb_account *a = m->accts[i];
        if (strcmp(a->user_name, name_or_id) == 0 ||
            strcmp(a->encoded_account_id, name_or_id) == 0)
            return a;
    }
    return NULL;
}

size_t sb_account_count(const struct sb_model *m)
{
    return m->naccts;
}

struct sb_account *sb_account_at(struct sb_model *m, size_t i)
{
    return i < m->naccts ? m->accts[i] : NULL;
}

static struct sb_account *account_add(struct sb_model *m, const char *user,
                                      const char *enc, const char *org,
                                      const char *email)
{
    struct sb_account *a = cts_xcalloc(1, sizeof *a);
    a->user_name = cts_xstrdup(user);
    a->encoded_account_id = cts_xstrdup(enc);
    a->organization_name = cts_xstrdup(org ? org : user);
    a->contact_email =
        email ? cts_xstrdup(email) : cts_xasprintf("owner@%s.example", user);
    a->first_name = cts_xstrdup("Account");
    a->last_name = cts_xstrdup("Owner");
    a->store = sb_store_new(sb_hstr(enc));
    a->index = m->naccts;
    m->accts = cts_xrealloc(m->accts, (m->naccts + 1) * sizeof *m->accts);
    m->accts[m->naccts++] = a;
    return a;
}

static void list_add(struct sb_account *a, const char *id, const char *uuid,
                     const char *name)
{
    a->lists = cts_xrealloc(a->lists, (a->nlists + 1) * sizeof *a->lists);
    struct sb_list *l = &a->lists[a->nlists++];
    l->id = cts_xstrdup(id);
    l->list_id = cts_xstrdup(uuid);
    l->name = cts_xstrdup(name);
    l->membership_count = 0;
}

static void cfield_add(struct sb_account *a, const char *id, const char *name,
                       const char *label)
{
    a->cfields =
        cts_xrealloc(a->cfields, (a->ncfields + 1) * sizeof *a->cfields);
    struct sb_custom_field *f = &a->cfields[a->ncfields++];
    f->custom_field_id = cts_xstrdup(id);
    f->name = cts_xstrdup(name);
    f->label = cts_xstrdup(label ? label : name);
    f->type = cts_xstrdup("string");
}

struct sb_token *sb_token_add(struct sb_model *m, const char *token,
                              enum sb_api api, const char *api_key,
                              struct sb_account *acct, int64_t issued_at,
                              int64_t expires_at)
{
    struct sb_token *t = map_get(&m->tokens, token);
    if (t) {
        free(t->api_key);
    } else {
        t = cts_xcalloc(1, sizeof *t);
        t->token = cts_xstrdup(token);
        map_put(&m->tokens, t->token, t);
    }
    t->api = api;
    t->api_key = cts_xstrdup(api_key ? api_key : "");
    t->account = acct;
    t->issued_at = issued_at;
    t->expires_at = expires_at;
    t->revoked = 0;
    return t;
}

struct sb_token *sb_token_find(struct sb_model *m, const char *token)
{
    return map_get(&m->tokens, token);
}

struct sb_refresh *sb_refresh_add(struct sb_model *m, const char *token,
                                  const char *api_key, struct sb_account *acct,
                                  const char *scope, int64_t now)
{
    struct sb_refresh *r = map_get(&m->refresh, token);
    if (r) {
        free(r->api_key);
        free(r->scope);
    } else {
        r = cts_xcalloc(1, sizeof *r);
        r->token = cts_xstrdup(token);
        map_put(&m->refresh, r->token, r);
    }
    r->api_key = cts_xstrdup(api_key ? api_key : "");
    r->account = acct;
    r->scope = cts_xstrdup(scope ? scope : "");
    r->issued_at = now;
    r->last_used_at = now;
    r->used = 0;
    return r;
}

struct sb_refresh *sb_refresh_find(struct sb_model *m, const char *token)
{
    return map_get(&m->refresh, token);
}

long sb_list_find(const struct sb_account *acct, const char *id)
{
    if (!id)
        return -1;
    for (size_t i = 0; i < acct->nlists; i++)
        if (strcmp(acct->lists[i].id, id) == 0 ||
            strcasecmp(acct->lists[i].list_id, id) == 0)
            return (long)i;
    return -1;
}

long sb_cfield_find(const struct sb_account *acct, const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < acct->ncfields; i++)
        if (strcasecmp(acct->cfields[i].custom_field_id, s) == 0 ||
            strcmp(acct->cfields[i].name, s) == 0)
            return (long)i;
    /* v2 names custom fields by position: CustomField1..15 /
     * custom_field_1..15 */
    const char *num = NULL;
    if (strncasecmp(s, "CustomField", 11) == 0)
        num = s + 11;
    else if (strncasecmp(s, "custom_field_", 13) == 0)
        num = s + 13;
    long n;
    if (num && cts_parse_long(num, 1, 15, &n) == 0 &&
        (size_t)n <= acct->ncfields)
        return n - 1;
    return -1;
}

static const char *const cf_names[SB_CF__COUNT] = {"email",
                                                   "first_name",
                                                   "last_name",
                                                   "company_name",
                                                   "job_title",
                                                   "phone",
                                                   "street",
                                                   "city",
                                                   "state",
                                                   "postal_code",
                                                   "country",
                                                   "anniversary",
                                                   "phone_kind",
                                                   "address_kind",
                                                   "more_phone_numbers",
                                                   "more_street_addresses"};

const char *sb_cf_name(enum sb_cf f)
{
    return (unsigned)f < SB_CF__COUNT ? cf_names[f] : "?";
}

uint64_t sb_model_writes(const struct sb_model *m)
{
    return m->writes;
}

void sb_model_reset(struct sb_model *m)
{
    for (size_t i = 0; i < m->naccts; i++) {
        struct sb_account *a = m->accts[i];
        uint64_t salt = a->store->salt;
        sb_store_free(a->store);
        a->store = sb_store_new(salt);
        for (size_t l = 0; l < a->nlists; l++)
            a->lists[l].membership_count = 0;
    }
    for (size_t i = 0; i < m->napps; i++)
        sb_limit_reset(m->apps[i]->limit);
    m->writes = 0;
    sb_resub_clear(m);
}

/* ------------------------------------------------------------ loading */

#define DEMO_V2_KEY   "demo-v2-key-0000000000000001"
#define DEMO_V2_TOKEN "demo-v2-token-000000000000000000001"
#define DEMO_V3_ID    "demo-v3-client-00000000000001"
#define DEMO_REDIRECT "http://127.0.0.1:53682/callback"

int sb_model_load_demo(struct sb_model *m)
{
    struct sb_app *a2 = app_add(m, DEMO_V2_KEY, "demo-v2-secret", SB_API_V2);
    app_add_redirect(a2, DEMO_REDIRECT);
    struct sb_app *a3 = app_add(m, DEMO_V3_ID, "demo-v3-secret", SB_API_V3);
    app_add_redirect(a3, DEMO_REDIRECT);
    a3->device_flow = 1;
    a3->refresh = SB_REFRESH_ROTATING;
    struct sb_account *acct = account_add(m, "demo", "a07e1demo0001",
                                          "Demo Company", "owner@demo.example");
    list_add(acct, "1", "8c2b2d3e-0001-4000-8000-000000000001",
             "General Interest");
    list_add(acct, "2", "8c2b2d3e-0002-4000-8000-000000000002", "Newsletter");
    cfield_add(acct, "6f1e0c3a-0001-4000-8000-00000000c001", "favorite_color",
               "Favorite color");
    cfield_add(acct, "6f1e0c3a-0002-4000-8000-00000000c002", "member_since",
               "Member since");
    sb_token_add(m, DEMO_V2_TOKEN, SB_API_V2, DEMO_V2_KEY, acct, 0, 0);
    return 0;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int load_app(struct sb_model *m, json_t *j, struct cts_error *err)
{
    const char *key = jstr(j, "api_key");
    if (!key)
        key = jstr(j, "client_id");
    const char *api = jstr(j, "api");
    if (!key || !api || (strcmp(api, "v2") && strcmp(api, "v3")))
        return cts_error_set(err, CTS_ECONFIG,
                             "app needs api_key and api \"v2\"|\"v3\"");
    if (sb_app_find(m, key))
        return cts_error_set(err, CTS_ECONFIG, "duplicate app %s", key);
    struct sb_app *a = app_add(m, key, jstr(j, "secret"),
                               api[1] == '2' ? SB_API_V2 : SB_API_V3);
    json_t *uris = json_object_get(j, "redirect_uris");
    size_t i;
    json_t *u;
    json_array_foreach(uris, i, u)
    {
        if (json_is_string(u))
            app_add_redirect(a, json_string_value(u));
    }
    const char *refresh = jstr(j, "refresh");
    if (refresh && strcmp(refresh, "long_lived") == 0)
        a->refresh = SB_REFRESH_LONG_LIVED;
    else if (refresh && strcmp(refresh, "rotating") != 0)
        return cts_error_set(err, CTS_ECONFIG,
                             "app %s: refresh must be rotating|long_lived",
                             key);
    a->device_flow = json_is_true(json_object_get(j, "device_flow"));
    return 0;
}

static int load_account(struct sb_model *m, json_t *j, struct cts_error *err)
{
    const char *user = jstr(j, "user_name");
    const char *enc = jstr(j, "encoded_account_id");
    if (!user || !enc)
        return cts_error_set(err, CTS_ECONFIG,
                             "account needs user_name and encoded_account_id");
    if (sb_account_find(m, user) || sb_account_find(m, enc))
        return cts_error_set(err, CTS_ECONFIG, "duplicate account %s", user);
    struct sb_account *a = account_add(
        m, user, enc, jstr(j, "organization_name"), jstr(j, "contact_email"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "lists"), i, v)
    {
        const char *id = jstr(v, "id"), *uuid = jstr(v, "list_id");
        const char *name = jstr(v, "name");
        json_t *idn = json_object_get(v, "id");
        char num[32];
        if (!id && json_is_integer(idn)) {
            snprintf(num, sizeof num, "%lld",
                     (long long)json_integer_value(idn));
            id = num;
        }
        if (!id || !uuid || !name)
            return cts_error_set(err, CTS_ECONFIG,
                                 "account %s: list needs id, list_id, name",
                                 user);
        if (a->nlists == SB_MAX_LISTS)
            return cts_error_set(err, CTS_ECONFIG,
                                 "account %s: at most %d lists", user,
                                 SB_MAX_LISTS);
        list_add(a, id, uuid, name);
    }
    json_array_foreach(json_object_get(j, "custom_fields"), i, v)
    {
        const char *id = jstr(v, "custom_field_id"), *name = jstr(v, "name");
        if (!id || !name)
            return cts_error_set(
                err, CTS_ECONFIG,
                "account %s: custom field needs custom_field_id, name", user);
        if (a->ncfields == 254)
            return cts_error_set(err, CTS_ECONFIG, "too many custom fields");
        cfield_add(a, id, name, jstr(v, "label"));
    }
    json_array_foreach(json_object_get(j, "tokens"), i, v)
    {
        const char *tok = jstr(v, "token"), *key = jstr(v, "api_key");
        const char *api = jstr(v, "api");
        json_t *exp = json_object_get(v, "expires_at");
        if (!tok || !key || !api)
            return cts_error_set(err, CTS_ECONFIG,
                                 "account %s: token needs token, api_key, api",
                                 user);
        enum sb_api k = strcmp(api, "v2") == 0 ? SB_API_V2 : SB_API_V3;
        if (!sb_app_find(m, key))
            app_add(m, key, "", k);
        sb_token_add(m, tok, k, key, a, 0,
                     json_is_integer(exp) ? json_integer_value(exp) : 0);
    }
    json_array_foreach(json_object_get(j, "contacts"), i, v)
    {
        if (sb_model_seed(m, a, v, err) != 0) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            return cts_error_set(err, CTS_ECONFIG,
                                 "account %s: contacts[%zu]: %.400s", user, i,
                                 msg);
        }
    }
    return 0;
}

int sb_model_load_file(struct sb_model *m, const char *path,
                       struct cts_error *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    int rc = 0;
    if (!root)
        return cts_error_set(err, CTS_ECONFIG, "%s:%d: %s", path, jerr.line,
                             jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return cts_error_set(err, CTS_ECONFIG, "%s: not a JSON object", path);
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "apps"), i, v)
    {
        if ((rc = load_app(m, v, err)) != 0)
            goto out;
    }
    json_array_foreach(json_object_get(root, "accounts"), i, v)
    {
        if ((rc = load_account(m, v, err)) != 0)
            goto out;
    }
    if (m->naccts == 0)
        rc = cts_error_set(err, CTS_ECONFIG, "%s: no accounts", path);
out:
    if (rc != 0 && err) {
        char tmp[sizeof err->msg + 4096];
        snprintf(tmp, sizeof tmp, "%s: %s", path, err->msg);
        memcpy(err->msg, tmp, sizeof err->msg - 1);
        err->msg[sizeof err->msg - 1] = '\0';
    }
    json_decref(root);
    return rc;
}
