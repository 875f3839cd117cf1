/*
 * sb_store.h — the data model's internals shared by model.c (apps,
 * accounts, tokens, loading), store.c (the contact store and its consent
 * rules) and render.c (contact JSON, queries, seeding).  Nothing else
 * includes it.
 *
 * The contact store must hold a million contacts compactly: a contact is a
 * 48-byte record plus one packed allocation ("blob") holding its strings
 * back to back, NUL-separated, then its custom-field values; list
 * memberships are a 64-bit mask over the account's lists (so an account has
 * at most 64 lists).  Emails are indexed by an open-addressing table of
 * 32-bit record indices keyed by the lower-cased email.
 */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <string.h>

#include "sb_int.h"

#define SB_MAX_LISTS 64

struct sb_contact {
    char *blob;     /* SB_CF__COUNT strings, then (idx+1, value)* 0 */
    uint64_t lists; /* bit i = member of acct->lists[i] */
    uint32_t hash;  /* low bits of the email hash */
    uint32_t writes;
    uint32_t created_at; /* UNIX seconds (fits until 2106) */
    uint32_t updated_at;
    uint32_t opt_in_at, opt_out_at; /* 0 = never */
    uint8_t bmonth, bday;
    uint8_t deleted;
    uint8_t perm;        /* enum sb_perm, never NONE */
    uint8_t opt_in_src;  /* enum sb_actor */
    uint8_t opt_out_src; /* enum sb_actor; NONE unless unsubscribed */
    uint8_t create_src, update_src;
};

struct sb_store {
    struct sb_contact *c;
    size_t n, cap;
    char **reasons;  /* opt-out reasons by record, NULL until one is set */
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

/* One entry of the re-subscription log. */
struct sb_resub {
    char *account, *email, *via;
    int64_t at;
    uint8_t actor, opt_out_src, refused;
};

struct sb_model {
    struct sb_app **apps;
    size_t napps;
    struct sb_account **accts;
    size_t naccts;
    struct tok_map tokens;  /* struct sb_token */
    struct tok_map refresh; /* struct sb_refresh */
    uint64_t writes;
    int64_t (*clock)(void *);
    void *clock_arg;
    struct sb_resub *resubs;
    size_t nresubs;
};

static inline uint64_t sb_hstr(const char *s)
{
    return cts_hash64(s, strlen(s), 0x9e3779b97f4a7c15ull);
}

/* Decoded view of a blob: pointers into it. */
struct cview {
    const char *f[SB_CF__COUNT];
    size_t ncf;
    uint8_t cf_idx[256];
    const char *cf_val[256];
};

/* store.c */
void sb_blob_decode(const char *blob, struct cview *v);
void sb_store_free(struct sb_store *s);
struct sb_store *sb_store_new(uint64_t salt);
void sb_resub_clear(struct sb_model *m);
uint64_t sb_v2_base(const struct sb_account *acct);
void sb_v3_id(const struct sb_account *acct, size_t idx, char out[40]);
const char *sb_contact_reason(const struct sb_account *acct,
                              sb_contact_ref ref);

/* render.c */
void sb_iso_time(int64_t t, char out[32]);

#endif /* SB_STORE_H */
