/*
 * model.c — the sandbox's data: apps (API keys / client ids), accounts with
 * their lists and custom fields, access and refresh tokens, and one contact
 * store per account.
 *
 * The contact store must hold a million contacts compactly: a contact is a
 * 40-byte record plus one packed allocation ("blob") holding its strings
 * back to back, NUL-separated, then its custom-field values; list
 * memberships are a 64-bit mask over the account's lists (so an account has
 * at most 64 lists).  Emails are indexed by an open-addressing table of
 * 32-bit record indices keyed by the lower-cased email.
 */
#include "sb_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SB_MAX_LISTS 64

struct sb_contact {
    char *blob;     /* SB_CF__COUNT strings, then (idx+1, value)* 0 */
    uint64_t lists; /* bit i = member of acct->lists[i] */
    uint32_t hash;  /* low bits of the email hash */
    uint32_t writes;
    uint32_t created_at; /* UNIX seconds (fits until 2106) */
    uint32_t updated_at;
    uint8_t bmonth, bday;
    uint8_t by_visitor; /* v2 opt_in_source */
    uint8_t deleted;
};

struct sb_store {
    struct sb_contact *c;
    size_t n, cap;
    uint32_t *slots; /* record index + 1; 0 = empty */
    size_t nslots;   /* power of two */
    uint64_t salt;   /* v3 contact_id derivation */
};

/* string-keyed chained hash for tokens (few thousand at most) */
struct tok_node {
    struct tok_node *next;
    void *val;
    const char *key; /* points into val */
};
struct tok_map {
    struct tok_node **b;
    size_t nb, n;
};

struct sb_model {
    struct sb_app **apps;
    size_t napps;
    struct sb_account **accts;
    size_t naccts;
    struct tok_map tokens;  /* struct sb_token */
    struct tok_map refresh; /* struct sb_refresh */
    uint64_t writes;
};

static uint64_t hstr(const char *s)
{
    return cts_hash64(s, strlen(s), 0x9e3779b97f4a7c15ull);
}

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
                size_t h = (size_t)(hstr(n->key) & (nb - 1));
                n->next = b[h];
                b[h] = n;
            }
        }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    struct tok_node *n = cts_xmalloc(sizeof *n);
    size_t h = (size_t)(hstr(key) & (m->nb - 1));
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
    size_t h = (size_t)(hstr(key) & (m->nb - 1));
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

static void store_free(struct sb_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->c[i].blob);
    free(s->c);
    free(s->slots);
    free(s);
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
    store_free(a->store);
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
    a->store = cts_xcalloc(1, sizeof *a->store);
    a->store->salt = hstr(enc);
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

static const char *const cf_names[SB_CF__COUNT] = {
    "email",     "first_name",  "last_name", "company_name",
    "job_title", "phone",       "street",    "city",
    "state",     "postal_code", "country",   "anniversary"};

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
        store_free(a->store);
        a->store = cts_xcalloc(1, sizeof *a->store);
        a->store->salt = salt;
        for (size_t l = 0; l < a->nlists; l++)
            a->lists[l].membership_count = 0;
    }
    for (size_t i = 0; i < m->napps; i++)
        sb_limit_reset(m->apps[i]->limit);
    m->writes = 0;
}

/* ------------------------------------------------------ contact store */

/* Decoded view of a blob: pointers into it. */
struct cview {
    const char *f[SB_CF__COUNT];
    size_t ncf;
    uint8_t cf_idx[256];
    const char *cf_val[256];
};

static void blob_decode(const char *blob, struct cview *v)
{
    const char *p = blob;
    for (int i = 0; i < SB_CF__COUNT; i++) {
        v->f[i] = p;
        p += strlen(p) + 1;
    }
    v->ncf = 0;
    while (*p) {
        v->cf_idx[v->ncf] = (uint8_t)(*(const unsigned char *)p - 1);
        p++;
        v->cf_val[v->ncf++] = p;
        p += strlen(p) + 1;
    }
}

static char *blob_encode(const char *const f[SB_CF__COUNT], size_t ncf,
                         const uint8_t *cf_idx, const char *const *cf_val,
                         size_t *outlen)
{
    size_t n = 1;
    for (int i = 0; i < SB_CF__COUNT; i++)
        n += strlen(f[i] ? f[i] : "") + 1;
    for (size_t i = 0; i < ncf; i++)
        n += 2 + strlen(cf_val[i]);
    char *b = cts_xmalloc(n), *p = b;
    for (int i = 0; i < SB_CF__COUNT; i++) {
        size_t l = strlen(f[i] ? f[i] : "");
        memcpy(p, f[i] ? f[i] : "", l);
        p[l] = '\0';
        p += l + 1;
    }
    for (size_t i = 0; i < ncf; i++) {
        size_t l = strlen(cf_val[i]);
        *p++ = (char)(cf_idx[i] + 1);
        memcpy(p, cf_val[i], l + 1);
        p += l + 1;
    }
    *p++ = '\0';
    *outlen = (size_t)(p - b);
    return b;
}

static size_t blob_len(const char *blob)
{
    const char *p = blob;
    for (int i = 0; i < SB_CF__COUNT; i++)
        p += strlen(p) + 1;
    while (*p) {
        p++;
        p += strlen(p) + 1;
    }
    return (size_t)(p - blob) + 1;
}

static char *lower_dup(const char *s)
{
    char *d = cts_xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static void store_index_grow(struct sb_store *s)
{
    size_t ns = s->nslots ? s->nslots * 2 : 1024;
    uint32_t *slots = cts_xcalloc(ns, sizeof *slots);
    for (size_t i = 0; i < s->n; i++) {
        size_t h = s->c[i].hash & (ns - 1);
        while (slots[h])
            h = (h + 1) & (ns - 1);
        slots[h] = (uint32_t)(i + 1);
    }
    free(s->slots);
    s->slots = slots;
    s->nslots = ns;
}

/* Slot holding lower-cased `email` (found) or the empty slot to use. */
static size_t store_slot(const struct sb_store *s, const char *email,
                         uint32_t hash, int *found)
{
    size_t h = hash & (s->nslots - 1);
    *found = 0;
    while (s->slots[h]) {
        const struct sb_contact *c = &s->c[s->slots[h] - 1];
        if (c->hash == hash && strcmp(c->blob, email) == 0) {
            *found = 1;
            return h;
        }
        h = (h + 1) & (s->nslots - 1);
    }
    return h;
}

/* Remove slot h (linear probing deletion with back-shift). */
static void store_slot_remove(struct sb_store *s, size_t h)
{
    size_t mask = s->nslots - 1, i = h, j = h;
    s->slots[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->slots[j])
            return;
        size_t k = s->c[s->slots[j] - 1].hash & mask;
        /* move j back to i if k is cyclically outside (i, j] */
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            s->slots[i] = s->slots[j];
            s->slots[j] = 0;
            i = j;
        }
    }
}

int sb_contact_by_email(struct sb_account *acct, const char *email,
                        sb_contact_ref *ref)
{
    struct sb_store *s = acct->store;
    if (!email || !s->nslots)
        return SB_ENOTFOUND;
    char *key = lower_dup(email);
    int found;
    size_t h = store_slot(s, key, (uint32_t)hstr(key), &found);
    free(key);
    if (!found)
        return SB_ENOTFOUND;
    *ref = s->slots[h] - 1;
    return 0;
}

static uint64_t v2_base(const struct sb_account *acct)
{
    return (uint64_t)(acct->index + 1) * 100000000ull;
}

static void v3_id(const struct sb_account *acct, size_t idx, char out[40])
{
    uint64_t r = cts_hash64(&idx, sizeof idx, acct->store->salt);
    snprintf(out, 40, "%08x-%04x-4%03x-%x%03x-%012llx", (unsigned)(r >> 32),
             (unsigned)((r >> 16) & 0xffff), (unsigned)(r & 0xfff),
             8 + (unsigned)((r >> 12) & 3), (unsigned)((r >> 20) & 0xfff),
             (unsigned long long)(idx + 1));
}

int sb_contact_by_id(struct sb_account *acct, const char *id,
                     sb_contact_ref *ref)
{
    struct sb_store *s = acct->store;
    if (!id || !*id)
        return SB_ENOTFOUND;
    size_t len = strlen(id);
    if (len == 36) {
        unsigned long long idx1 = strtoull(id + 24, NULL, 16);
        if (idx1 < 1 || idx1 > s->n)
            return SB_ENOTFOUND;
        char want[40];
        v3_id(acct, (size_t)(idx1 - 1), want);
        if (strcasecmp(want, id) != 0)
            return SB_ENOTFOUND;
        *ref = (size_t)(idx1 - 1);
        return 0;
    }
    long n;
    if (cts_parse_long(id, 1, 999999999999L, &n) != 0)
        return SB_ENOTFOUND;
    uint64_t base = v2_base(acct);
    if ((uint64_t)n <= base || (uint64_t)n - base > s->n)
        return SB_ENOTFOUND;
    *ref = (size_t)((uint64_t)n - base - 1);
    return 0;
}

size_t sb_contact_count(const struct sb_account *acct)
{
    return acct->store->n;
}

uint32_t sb_contact_writes(const struct sb_account *acct, sb_contact_ref ref)
{
    return ref < acct->store->n ? acct->store->c[ref].writes : 0;
}

static void adjust_counts(struct sb_account *acct, uint64_t old, uint64_t neu)
{
    for (size_t i = 0; i < acct->nlists && i < SB_MAX_LISTS; i++) {
        uint64_t bit = 1ull << i;
        if ((old & bit) && !(neu & bit))
            acct->lists[i].membership_count--;
        else if (!(old & bit) && (neu & bit))
            acct->lists[i].membership_count++;
    }
}

int sb_contact_upsert(struct sb_model *m, struct sb_account *acct,
                      const struct sb_contact_in *in, enum sb_upsert_mode mode,
                      const char *id, sb_contact_ref *ref, int *created)
{
    struct sb_store *s = acct->store;
    sb_contact_ref r = 0;
    int exists = 0, rc;
    char *email = NULL;

    if (!s->nslots)
        store_index_grow(s);
    if (mode == SB_UPSERT_REPLACE) {
        rc = sb_contact_by_id(acct, id, &r);
        if (rc != 0)
            return rc;
        exists = 1;
    }
    if (in->f[SB_CF_EMAIL] && in->f[SB_CF_EMAIL][0]) {
        email = lower_dup(in->f[SB_CF_EMAIL]);
    } else if (mode != SB_UPSERT_REPLACE) {
        return CTS_EDATA;
    }
    if (email) {
        sb_contact_ref other;
        if (sb_contact_by_email(acct, email, &other) == 0) {
            if (mode == SB_UPSERT_CREATE ||
                (mode == SB_UPSERT_REPLACE && other != r)) {
                free(email);
                return SB_EEXIST;
            }
            if (mode == SB_UPSERT_MERGE) {
                r = other;
                exists = 1;
            }
        }
    }

    /* lists */
    uint64_t lists = 0;
    for (size_t i = 0; i < in->nlists; i++)
        if (in->lists[i] < acct->nlists && in->lists[i] < SB_MAX_LISTS)
            lists |= 1ull << in->lists[i];

    struct cview old;
    const char *f[SB_CF__COUNT];
    uint8_t cf_idx[256];
    const char *cf_val[256];
    size_t ncf = 0;
    struct sb_contact *c = exists ? &s->c[r] : NULL;

    if (c) {
        blob_decode(c->blob, &old);
    } else {
        memset(&old, 0, sizeof old);
        for (int i = 0; i < SB_CF__COUNT; i++)
            old.f[i] = "";
    }
    for (int i = 0; i < SB_CF__COUNT; i++) {
        if (i == SB_CF_EMAIL)
            f[i] = email ? email : old.f[i];
        else if (mode == SB_UPSERT_MERGE)
            f[i] = in->f[i] && in->f[i][0] ? in->f[i] : old.f[i];
        else
            f[i] = in->f[i] ? in->f[i] : "";
    }
    /* custom fields: merge appends/overwrites; replace takes what is given
     * (or keeps the old ones when none are given, as v3 PUT does for
     * sub-resources) */
    int replace_cf = mode != SB_UPSERT_MERGE && in->cf_idx != NULL;
    if (!replace_cf) {
        for (size_t i = 0; i < old.ncf; i++) {
            cf_idx[ncf] = old.cf_idx[i];
            cf_val[ncf++] = old.cf_val[i];
        }
    }
    for (size_t i = 0; i < in->ncf && ncf < 255; i++) {
        if (in->cf_idx[i] >= acct->ncfields || in->cf_idx[i] > 254)
            continue;
        size_t k;
        for (k = 0; k < ncf; k++)
            if (cf_idx[k] == in->cf_idx[i])
                break;
        cf_idx[k] = (uint8_t)in->cf_idx[i];
        cf_val[k] = in->cf_values[i] ? in->cf_values[i] : "";
        if (k == ncf)
            ncf++;
    }

    size_t nlen;
    char *blob = blob_encode(f, ncf, cf_idx, cf_val, &nlen);
    uint64_t new_lists;
    int bm, bd;
    if (mode == SB_UPSERT_MERGE) {
        new_lists = (c ? c->lists : 0) | lists;
        bm = in->birthday_month ? in->birthday_month : (c ? c->bmonth : 0);
        bd = in->birthday_day ? in->birthday_day : (c ? c->bday : 0);
    } else if (mode == SB_UPSERT_REPLACE) {
        new_lists = in->lists ? lists : c->lists;
        bm = in->birthday_month;
        bd = in->birthday_day;
    } else {
        new_lists = lists;
        bm = in->birthday_month;
        bd = in->birthday_day;
    }
    uint32_t now = (uint32_t)time(NULL);
    if (c) {
        int changed = nlen != blob_len(c->blob) ||
                      memcmp(blob, c->blob, nlen) != 0 ||
                      new_lists != c->lists || bm != c->bmonth ||
                      bd != c->bday || c->deleted;
        if (changed) {
            if (strcmp(blob, c->blob) != 0) {
                /* email changed: re-index */
                int found;
                size_t h = store_slot(s, c->blob, c->hash, &found);
                if (found)
                    store_slot_remove(s, h);
                c->hash = (uint32_t)hstr(blob);
                h = store_slot(s, blob, c->hash, &found);
                s->slots[h] = (uint32_t)(r + 1);
            }
            adjust_counts(acct, c->deleted ? 0 : c->lists, new_lists);
            free(c->blob);
            c->blob = blob;
            c->lists = new_lists;
            c->bmonth = (uint8_t)bm;
            c->bday = (uint8_t)bd;
            c->deleted = 0;
            c->writes++;
            c->updated_at = now;
            m->writes++;
        } else {
            free(blob);
        }
        if (created)
            *created = 0;
    } else {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->c = cts_xrealloc(s->c, s->cap * sizeof *s->c);
        }
        if ((s->n + 1) * 2 > s->nslots)
            store_index_grow(s);
        r = s->n++;
        c = &s->c[r];
        memset(c, 0, sizeof *c);
        c->blob = blob;
        c->hash = (uint32_t)hstr(email);
        c->lists = new_lists;
        c->bmonth = (uint8_t)bm;
        c->bday = (uint8_t)bd;
        c->writes = 1;
        c->created_at = c->updated_at = now;
        c->by_visitor = in->source && strcmp(in->source, "v2-visitor") == 0;
        int found;
        size_t h = store_slot(s, email, c->hash, &found);
        s->slots[h] = (uint32_t)(r + 1);
        adjust_counts(acct, 0, new_lists);
        m->writes++;
        if (created)
            *created = 1;
    }
    free(email);
    if (ref)
        *ref = r;
    return 0;
}

int sb_contact_delete(struct sb_model *m, struct sb_account *acct,
                      sb_contact_ref ref)
{
    struct sb_store *s = acct->store;
    if (ref >= s->n || s->c[ref].deleted)
        return SB_ENOTFOUND;
    adjust_counts(acct, s->c[ref].lists, 0);
    s->c[ref].deleted = 1;
    s->c[ref].writes++;
    m->writes++;
    return 0;
}

int sb_contact_is_deleted(const struct sb_account *acct, sb_contact_ref ref)
{
    return ref < acct->store->n && acct->store->c[ref].deleted;
}

/* ---------------------------------------------------------- rendering */

static void iso_time(uint32_t t, char out[32])
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

/* numeric JSON for an all-digit id (the fixtures use numbers), else string */
static json_t *id_json(const char *id)
{
    long n;
    if (cts_parse_long(id, 0, 999999999999L, &n) == 0)
        return json_integer(n);
    return json_string(id);
}

static json_t *render_v2(struct sb_account *acct, sb_contact_ref r,
                         const struct sb_contact *c, const struct cview *v)
{
    char created[32], modified[32];
    json_t *o = json_object();
    iso_time(c->created_at, created);
    iso_time(c->updated_at, modified);
    json_object_set_new(o, "id",
                        json_integer((json_int_t)(v2_base(acct) + r + 1)));
    set_str(o, "status", c->deleted ? "OPTOUT" : "ACTIVE");
    set_str(o, "fax", "");
    json_t *addrs = json_array();
    if (v->f[SB_CF_STREET][0] || v->f[SB_CF_CITY][0] || v->f[SB_CF_STATE][0] ||
        v->f[SB_CF_POSTAL_CODE][0] || v->f[SB_CF_COUNTRY][0]) {
        json_t *a = json_object();
        set_str(a, "line1", v->f[SB_CF_STREET]);
        set_str(a, "line2", "");
        set_str(a, "line3", "");
        set_str(a, "city", v->f[SB_CF_CITY]);
        set_str(a, "address_type", "BUSINESS");
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
    /* an opted-out / deleted contact shows no list memberships */
    uint64_t shown = c->deleted ? 0 : c->lists;
    for (size_t i = 0; i < acct->nlists && i < SB_MAX_LISTS; i++) {
        if (!(shown & (1ull << i)))
            continue;
        json_t *l = json_object();
        json_object_set_new(l, "id", id_json(acct->lists[i].id));
        set_str(l, "status", "ACTIVE");
        json_array_append_new(lists, l);
    }
    json_object_set_new(o, "lists", lists);
    set_str(o, "source", "API");
    json_t *em = json_object();
    set_str(em, "status", c->deleted ? "OPTOUT" : "ACTIVE");
    set_str(em, "confirm_status", "NO_CONFIRMATION_REQUIRED");
    set_str(em, "opt_in_source",
            c->by_visitor ? "ACTION_BY_VISITOR" : "ACTION_BY_OWNER");
    set_str(em, "opt_in_date", created);
    set_str(em, "email_address", v->f[SB_CF_EMAIL]);
    json_t *ems = json_array();
    json_array_append_new(ems, em);
    json_object_set_new(o, "email_addresses", ems);
    set_str(o, "prefix_name", "");
    set_str(o, "first_name", v->f[SB_CF_FIRST_NAME]);
    set_str(o, "last_name", v->f[SB_CF_LAST_NAME]);
    set_str(o, "job_title", v->f[SB_CF_JOB_TITLE]);
    set_str(o, "company_name", v->f[SB_CF_COMPANY_NAME]);
    set_str(o, "home_phone", "");
    set_str(o, "work_phone", v->f[SB_CF_PHONE]);
    set_str(o, "cell_phone", "");
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
    set_str(o, "created_date", created);
    set_str(o, "modified_date", modified);
    return o;
}

static json_t *render_v3(struct sb_account *acct, sb_contact_ref r,
                         const struct sb_contact *c, const struct cview *v)
{
    char created[32], modified[32], id[40];
    json_t *o = json_object();
    iso_time(c->created_at, created);
    iso_time(c->updated_at, modified);
    v3_id(acct, r, id);
    set_str(o, "contact_id", id);
    json_t *em = json_object();
    set_str(em, "address", v->f[SB_CF_EMAIL]);
    set_str(em, "permission_to_send", c->deleted ? "unsubscribed" : "explicit");
    set_str(em, "created_at", created);
    set_str(em, "updated_at", modified);
    set_str(em, "opt_in_source", "Contact");
    set_str(em, "opt_in_date", created);
    set_str(em, "confirm_status", "off");
    json_object_set_new(o, "email_address", em);
    set_nonempty(o, "first_name", v->f[SB_CF_FIRST_NAME]);
    set_nonempty(o, "last_name", v->f[SB_CF_LAST_NAME]);
    set_nonempty(o, "job_title", v->f[SB_CF_JOB_TITLE]);
    set_nonempty(o, "company_name", v->f[SB_CF_COMPANY_NAME]);
    if (c->bmonth)
        json_object_set_new(o, "birthday_month", json_integer(c->bmonth));
    if (c->bday)
        json_object_set_new(o, "birthday_day", json_integer(c->bday));
    set_nonempty(o, "anniversary", v->f[SB_CF_ANNIVERSARY]);
    set_str(o, "create_source", "Contact");
    set_str(o, "created_at", created);
    set_str(o, "updated_at", modified);
    if (c->deleted)
        set_str(o, "deleted_at", modified);
    json_t *lists = json_array();
    uint64_t shown = c->deleted ? 0 : c->lists;
    for (size_t i = 0; i < acct->nlists && i < SB_MAX_LISTS; i++)
        if (shown & (1ull << i))
            json_array_append_new(lists, json_string(acct->lists[i].list_id));
    json_object_set_new(o, "list_memberships", lists);
    json_t *cfs = json_array();
    for (size_t i = 0; i < v->ncf; i++) {
        json_t *cf = json_object();
        set_str(cf, "custom_field_id",
                acct->cfields[v->cf_idx[i]].custom_field_id);
        set_str(cf, "value", v->cf_val[i]);
        json_array_append_new(cfs, cf);
    }
    json_object_set_new(o, "custom_fields", cfs);
    json_t *phones = json_array();
    if (v->f[SB_CF_PHONE][0]) {
        json_t *p = json_object();
        set_str(p, "phone_number", v->f[SB_CF_PHONE]);
        set_str(p, "kind", "work");
        json_array_append_new(phones, p);
    }
    json_object_set_new(o, "phone_numbers", phones);
    json_t *addrs = json_array();
    if (v->f[SB_CF_STREET][0] || v->f[SB_CF_CITY][0] || v->f[SB_CF_STATE][0] ||
        v->f[SB_CF_POSTAL_CODE][0] || v->f[SB_CF_COUNTRY][0]) {
        json_t *a = json_object();
        set_str(a, "kind", "work");
        set_nonempty(a, "street", v->f[SB_CF_STREET]);
        set_nonempty(a, "city", v->f[SB_CF_CITY]);
        set_nonempty(a, "state", v->f[SB_CF_STATE]);
        set_nonempty(a, "postal_code", v->f[SB_CF_POSTAL_CODE]);
        set_nonempty(a, "country", v->f[SB_CF_COUNTRY]);
        json_array_append_new(addrs, a);
    }
    json_object_set_new(o, "street_addresses", addrs);
    return o;
}

static json_t *render_state(struct sb_account *acct, sb_contact_ref r,
                            const struct sb_contact *c, const struct cview *v)
{
    char id[40];
    json_t *o = json_object();
    v3_id(acct, r, id);
    set_str(o, "id", id);
    json_object_set_new(o, "id_v2",
                        json_integer((json_int_t)(v2_base(acct) + r + 1)));
    for (int i = 0; i < SB_CF__COUNT; i++) {
        if (i == SB_CF_ANNIVERSARY)
            continue;
        set_str(o, cf_names[i], v->f[i]);
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
    blob_decode(c->blob, &v);
    switch (how) {
    case SB_RENDER_V2: return render_v2(acct, ref, c, &v);
    case SB_RENDER_V3: return render_v3(acct, ref, c, &v);
    default: return render_state(acct, ref, c, &v);
    }
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
