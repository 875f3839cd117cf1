/*
 * emailidx.h — internal to the state files, optouts.c and their unit tests:
 * the compact open-addressing table of 56-bit email keys used for duplicate
 * detection, incremental-sync fingerprints and the set of unsubscribed
 * addresses.
 *
 * A slot is 16 bytes: kf = key << 8 | flags (0 = empty; keys are never 0),
 * fp (a 32-bit fingerprint) and row (the run's first row tag, 0 = not seen
 * in this run).  Linear probing, load factor <= 0.85, capacity not a power
 * of two (position = multiply-high "fastrange"), so a reserved table for
 * one million emails is 1.18 M slots = 18.8 MB instead of the 32 MB a
 * power-of-two table would need.  No deletion: a run only adds.
 */
#ifndef CTS_EMAILIDX_H
#define CTS_EMAILIDX_H

#include <stddef.h>
#include <stdint.h>

#define CTS_EIX_KEY_BITS  56
#define CTS_EIX_FLAG_MASK 0xffu

struct cts_eslot {
    uint64_t kf;  /* key << 8 | flags; 0 = empty */
    uint32_t fp;  /* confirmed (or failed) fingerprint */
    uint32_t row; /* first row of this run, 0 = not seen */
};

struct cts_emailidx {
    struct cts_eslot *slots; /* owned */
    size_t cap;
    size_t n;
};

static inline uint64_t cts_eslot_key(const struct cts_eslot *s)
{
    return s->kf >> 8;
}

void cts_emailidx_init(struct cts_emailidx *ix);
void cts_emailidx_free(struct cts_emailidx *ix);
/* Make room for `total` entries without growing again. */
void cts_emailidx_reserve(struct cts_emailidx *ix, size_t total);
/* The slot holding key (non-zero, < 2^56), or NULL. */
struct cts_eslot *cts_emailidx_find(const struct cts_emailidx *ix,
                                    uint64_t key);
/* The slot for key, created empty (flags 0, fp 0, row 0) if new; *created
 * (may be NULL) says which.  The pointer is valid until the next insert. */
struct cts_eslot *cts_emailidx_insert(struct cts_emailidx *ix, uint64_t key,
                                      int *created);
/* Start loading key's home slot into the cache (a hint; no effect). */
void cts_emailidx_prefetch(const struct cts_emailidx *ix, uint64_t key);
/* Move the entries to the front, sorted by key, and return their count.
 * The table is no longer a hash table afterwards (only free is allowed). */
size_t cts_emailidx_sort(struct cts_emailidx *ix);
/* Bytes of memory held. */
size_t cts_emailidx_bytes(const struct cts_emailidx *ix);

#endif /* CTS_EMAILIDX_H */
