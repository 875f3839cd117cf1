/*
 * store.c — the contact store of an account (layout in sb_store.h): the
 * email index, contact ids, create/merge/replace, delete, and the consent
 * rules every write goes through:
 *
 *  - a new contact gets the permission asked for (implicit by default),
 *    with opt_in_source = who acts and opt-in date now;
 *  - an unsubscribed contact leaves `unsubscribed` only when the contact
 *    acts (sign-up form, update_source Contact, ACTION_BY_VISITOR) or when
 *    the account lifts an opt-out the account itself made; each such move
 *    is logged as a re-subscription.  An account write that tries to lift
 *    the contact's own opt-out is ignored on that point and logged as
 *    refused;
 *  - an unsubscribed contact is on no list: becoming unsubscribed drops
 *    the memberships, and lists sent for one are ignored;
 *  - `deleted` is kept apart from the permission: deleting drops the list
 *    memberships, a later write revives the contact with its permission.
 */
#include "sb_store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct sb_store *sb_store_new(uint64_t salt)
{
    struct sb_store *s = cts_xcalloc(1, sizeof *s);
    s->salt = salt;
    return s;
}

void sb_store_free(struct sb_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->c[i].blob);
        if (s->reasons)
            free(s->reasons[i]);
    }
    free(s->reasons);
    free(s->c);
    free(s->slots);
    free(s);
}

/* ----------------------------------------------------------- the clock */

void sb_model_set_clock(struct sb_model *m, int64_t (*now)(void *), void *arg)
{
    m->clock = now;
    m->clock_arg = arg;
}

int64_t sb_model_now(const struct sb_model *m)
{
    return m->clock ? m->clock(m->clock_arg) : (int64_t)time(NULL);
}

/* --------------------------------------------------------- consent names */

static const char *const perm_names[] = {
    "",          "not_set",     "implicit", "explicit", "pending_confirmation",
    "temp_hold", "unsubscribed"};

const char *sb_perm_name(enum sb_perm p)
{
    return (unsigned)p < sizeof perm_names / sizeof *perm_names ? perm_names[p]
                                                                : "";
}

enum sb_perm sb_perm_parse(const char *name)
{
    for (size_t i = 1; name && i < sizeof perm_names / sizeof *perm_names; i++)
        if (strcmp(name, perm_names[i]) == 0)
            return (enum sb_perm)i;
    return SB_PERM_NONE;
}

const char *sb_actor_name(enum sb_actor a)
{
    return a == SB_ACTOR_ACCOUNT   ? "Account"
           : a == SB_ACTOR_CONTACT ? "Contact"
                                   : "";
}

/* -------------------------------------------------- re-subscription log */

static void log_resub(struct sb_model *m, const struct sb_account *acct,
                      const char *email, const char *via, enum sb_actor actor,
                      enum sb_actor opt_out_src, int refused)
{
    m->resubs = cts_xrealloc(m->resubs, (m->nresubs + 1) * sizeof *m->resubs);
    struct sb_resub *e = &m->resubs[m->nresubs++];
    e->account = cts_xstrdup(acct->encoded_account_id);
    e->email = cts_xstrdup(email);
    e->via = cts_xstrdup(via ? via : "");
    e->at = sb_model_now(m);
    e->actor = (uint8_t)actor;
    e->opt_out_src = (uint8_t)opt_out_src;
    e->refused = (uint8_t)refused;
}

void sb_resub_clear(struct sb_model *m)
{
    for (size_t i = 0; i < m->nresubs; i++) {
        free(m->resubs[i].account);
        free(m->resubs[i].email);
        free(m->resubs[i].via);
    }
    free(m->resubs);
    m->resubs = NULL;
    m->nresubs = 0;
}

json_t *sb_model_resubscriptions(const struct sb_model *m, int refused)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < m->nresubs; i++) {
        const struct sb_resub *e = &m->resubs[i];
        char at[32];
        if (!e->refused != !refused)
            continue;
        sb_iso_time(e->at, at);
        json_array_append_new(
            arr,
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "account", e->account,
                      "email", e->email, "via", e->via, "actor",
                      sb_actor_name((enum sb_actor)e->actor), "opt_out_source",
                      sb_actor_name((enum sb_actor)e->opt_out_src), "at", at));
    }
    return arr;
}

/* ------------------------------------------------------ contact store */

void sb_blob_decode(const char *blob, struct cview *v)
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
    size_t h = store_slot(s, key, (uint32_t)sb_hstr(key), &found);
    free(key);
    if (!found)
        return SB_ENOTFOUND;
    *ref = s->slots[h] - 1;
    return 0;
}

uint64_t sb_v2_base(const struct sb_account *acct)
{
    return (uint64_t)(acct->index + 1) * 100000000ull;
}

void sb_v3_id(const struct sb_account *acct, size_t idx, char out[40])
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
        sb_v3_id(acct, (size_t)(idx1 - 1), want);
        if (strcasecmp(want, id) != 0)
            return SB_ENOTFOUND;
        *ref = (size_t)(idx1 - 1);
        return 0;
    }
    long n;
    if (cts_parse_long(id, 1, 999999999999L, &n) != 0)
        return SB_ENOTFOUND;
    uint64_t base = sb_v2_base(acct);
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

static void reason_set(struct sb_store *s, sb_contact_ref r, const char *reason)
{
    if (!s->reasons) {
        if (!reason)
            return;
        s->reasons = cts_xcalloc(s->cap, sizeof *s->reasons);
    }
    free(s->reasons[r]);
    s->reasons[r] = reason ? cts_xstrdup(reason) : NULL;
}

const char *sb_contact_reason(const struct sb_account *acct, sb_contact_ref ref)
{
    const struct sb_store *s = acct->store;
    return s->reasons && ref < s->n ? s->reasons[ref] : NULL;
}

/* The permission a write leaves; sets *resub / *refused (see the top). */
static enum sb_perm decide(const struct sb_contact *c,
                           const struct sb_contact_in *in, enum sb_actor actor,
                           int *resub, int *refused)
{
    enum sb_perm want = in->perm;
    *resub = *refused = 0;
    if (want == SB_PERM_NONE)
        want = c              ? (enum sb_perm)c->perm
               : in->perm_new ? in->perm_new
                              : SB_PERM_IMPLICIT;
    if (c && c->perm == SB_PERM_UNSUBSCRIBED && want != SB_PERM_UNSUBSCRIBED) {
        if (actor == SB_ACTOR_CONTACT || c->opt_out_src == SB_ACTOR_ACCOUNT) {
            *resub = 1;
        } else {
            *refused = 1;
            want = SB_PERM_UNSUBSCRIBED;
        }
    }
    return want;
}

/* Apply a permission change to a stored contact (dates, sources). */
static void set_perm(struct sb_store *s, sb_contact_ref r, enum sb_perm want,
                     enum sb_actor actor, const char *reason, uint32_t now)
{
    struct sb_contact *c = &s->c[r];
    if (want == c->perm)
        return;
    if (want == SB_PERM_UNSUBSCRIBED) {
        c->opt_out_src = (uint8_t)actor;
        c->opt_out_at = now;
        reason_set(s, r, reason);
    } else if (c->perm == SB_PERM_UNSUBSCRIBED) {
        c->opt_out_src = SB_ACTOR_NONE;
        c->opt_out_at = 0;
        reason_set(s, r, NULL);
        c->opt_in_src = (uint8_t)actor;
        c->opt_in_at = now;
    }
    c->perm = (uint8_t)want;
}

int sb_contact_upsert(struct sb_model *m, struct sb_account *acct,
                      const struct sb_contact_in *in, enum sb_upsert_mode mode,
                      const char *id, sb_contact_ref *ref, int *created)
{
    struct sb_store *s = acct->store;
    sb_contact_ref r = 0;
    int exists = 0, rc;
    char *email = NULL;
    enum sb_actor actor = in->actor ? in->actor : SB_ACTOR_ACCOUNT;

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
        sb_blob_decode(c->blob, &old);
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
        else if (in->keep & (1u << i))
            f[i] = old.f[i];
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
    int resub, refused;
    enum sb_perm want = decide(c, in, actor, &resub, &refused);
    if (want == SB_PERM_UNSUBSCRIBED)
        new_lists = 0; /* an unsubscribed contact is on no list */
    uint32_t now = (uint32_t)sb_model_now(m);
    if (c) {
        int changed = nlen != blob_len(c->blob) ||
                      memcmp(blob, c->blob, nlen) != 0 ||
                      new_lists != c->lists || bm != c->bmonth ||
                      bd != c->bday || c->deleted || want != c->perm;
        enum sb_actor was_out = (enum sb_actor)c->opt_out_src;
        if (changed) {
            if (strcmp(blob, c->blob) != 0) {
                /* email changed: re-index */
                int found;
                size_t h = store_slot(s, c->blob, c->hash, &found);
                if (found)
                    store_slot_remove(s, h);
                c->hash = (uint32_t)sb_hstr(blob);
                h = store_slot(s, blob, c->hash, &found);
                s->slots[h] = (uint32_t)(r + 1);
            }
            adjust_counts(acct, c->lists, new_lists);
            free(c->blob);
            c->blob = blob;
            c->lists = new_lists;
            c->bmonth = (uint8_t)bm;
            c->bday = (uint8_t)bd;
            c->deleted = 0;
            set_perm(s, r, want, actor, in->opt_out_reason, now);
            c->update_src = (uint8_t)actor;
            c->writes++;
            c->updated_at = now;
            m->writes++;
        } else {
            free(blob);
        }
        if (resub || refused)
            log_resub(m, acct, c->blob, in->via, actor, was_out, refused);
        if (created)
            *created = 0;
    } else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 256;
            s->c = cts_xrealloc(s->c, cap * sizeof *s->c);
            if (s->reasons) {
                s->reasons = cts_xrealloc(s->reasons, cap * sizeof *s->reasons);
                memset(s->reasons + s->cap, 0,
                       (cap - s->cap) * sizeof *s->reasons);
            }
            s->cap = cap;
        }
        if ((s->n + 1) * 2 > s->nslots)
            store_index_grow(s);
        r = s->n++;
        c = &s->c[r];
        memset(c, 0, sizeof *c);
        c->blob = blob;
        c->hash = (uint32_t)sb_hstr(email);
        c->lists = new_lists;
        c->bmonth = (uint8_t)bm;
        c->bday = (uint8_t)bd;
        c->writes = 1;
        c->created_at = c->updated_at = now;
        c->perm = (uint8_t)want;
        c->opt_in_src = c->create_src = c->update_src = (uint8_t)actor;
        c->opt_in_at = now;
        if (want == SB_PERM_UNSUBSCRIBED) {
            c->opt_out_src = (uint8_t)actor;
            c->opt_out_at = now;
            reason_set(s, r, in->opt_out_reason);
        }
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
    struct sb_contact *c = &s->c[ref];
    adjust_counts(acct, c->lists, 0);
    c->lists = 0;
    c->deleted = 1;
    c->update_src = SB_ACTOR_ACCOUNT;
    c->updated_at = (uint32_t)sb_model_now(m);
    c->writes++;
    m->writes++;
    return 0;
}

int sb_contact_is_deleted(const struct sb_account *acct, sb_contact_ref ref)
{
    return ref < acct->store->n && acct->store->c[ref].deleted;
}

enum sb_perm sb_contact_perm(const struct sb_account *acct, sb_contact_ref ref)
{
    return ref < acct->store->n ? (enum sb_perm)acct->store->c[ref].perm
                                : SB_PERM_NONE;
}

enum sb_actor sb_contact_opt_out_source(const struct sb_account *acct,
                                        sb_contact_ref ref)
{
    return ref < acct->store->n ? (enum sb_actor)acct->store->c[ref].opt_out_src
                                : SB_ACTOR_NONE;
}

uint64_t sb_contact_lists(const struct sb_account *acct, sb_contact_ref ref)
{
    return ref < acct->store->n ? acct->store->c[ref].lists : 0;
}

int sb_contact_unsubscribe(struct sb_model *m, struct sb_account *acct,
                           sb_contact_ref ref, enum sb_actor by,
                           const char *reason, int count_write)
{
    struct sb_store *s = acct->store;
    if (ref >= s->n)
        return SB_ENOTFOUND;
    struct sb_contact *c = &s->c[ref];
    uint32_t now = (uint32_t)sb_model_now(m);
    set_perm(s, ref, SB_PERM_UNSUBSCRIBED, by ? by : SB_ACTOR_ACCOUNT, reason,
             now);
    adjust_counts(acct, c->lists, 0);
    c->lists = 0;
    c->updated_at = now;
    c->update_src = (uint8_t)(by ? by : SB_ACTOR_ACCOUNT);
    if (count_write) {
        c->writes++;
        m->writes++;
    }
    return 0;
}

int sb_contact_remove_lists(struct sb_model *m, struct sb_account *acct,
                            sb_contact_ref ref, uint64_t mask)
{
    struct sb_store *s = acct->store;
    if (ref >= s->n || !(s->c[ref].lists & mask))
        return 0;
    struct sb_contact *c = &s->c[ref];
    adjust_counts(acct, c->lists, c->lists & ~mask);
    c->lists &= ~mask;
    c->updated_at = (uint32_t)sb_model_now(m);
    c->update_src = SB_ACTOR_ACCOUNT;
    c->writes++;
    m->writes++;
    return 1;
}
