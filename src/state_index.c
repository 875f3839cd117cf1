/*
 * state_index.c — the per-run view of the state (cts_state.h): email keys,
 * duplicates within the run, contact fingerprints and the verdict for a
 * row (send, unchanged, resumed, failed before, in doubt).  The table is
 * the email index (emailidx.h) that the store and the journal fill.
 */
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

#define EMAIL_SEED 0x63747373656d6c31ULL /* "ctssem l1" */
#define FP_SEED    0x6374737366703031ULL

uint64_t cts_state_email_key(const char *email)
{
    uint64_t k = cts_hash64(email, strlen(email), EMAIL_SEED) >> 8;
    return k == 0 ? 1 : k;
}

/* ---- email index, fingerprints, lookups ---- */

int cts_state_seen(struct cts_state *st, const char *email, uint32_t row,
                   uint32_t *first_row)
{
    return cts_state_seen_key(st, cts_state_email_key(email), row, first_row);
}

void cts_state_prefetch(const struct cts_state *st, uint64_t key)
{
    if (!st->committed)
        cts_emailidx_prefetch(&st->ix, key);
}

int cts_state_seen_key(struct cts_state *st, uint64_t key, uint32_t row,
                       uint32_t *first_row)
{
    struct cts_eslot *s = cts_emailidx_insert(&st->ix, key, NULL);
    if (s->row != 0) {
        if (first_row != NULL)
            *first_row = s->row;
        return 1;
    }
    s->row = row != 0 ? row : UINT32_MAX;
    return 0;
}

/*
 * The fingerprint hashes one canonical serialisation of the contact: per
 * item a tag byte, then the value and a NUL, or 0xff for an absent value,
 * so ("ab","c") and ("a","bc") and NULL vs "" all differ.  Bytes gather in
 * a small buffer hashed (chained) when it fills: one hash per row, not two
 * per field (it was a tenth of a million-row dry run).
 */
struct fpbuf {
    uint64_t h;
    size_t n;
    unsigned char b[512];
};

static void fp_flush(struct fpbuf *f)
{
    f->h = cts_hash64(f->b, f->n, f->h);
    f->n = 0;
}

static void fp_bytes(struct fpbuf *f, const void *p, size_t len)
{
    const unsigned char *c = p;

    while (len > 0) {
        size_t take = sizeof(f->b) - f->n;
        if (take > len)
            take = len;
        memcpy(f->b + f->n, c, take);
        f->n += take;
        c += take;
        len -= take;
        if (f->n == sizeof(f->b))
            fp_flush(f);
    }
}

/* fp_bytes for the usual case, inlined: the bytes fit in the buffer (most
 * rows fit whole; a call per tag byte was a twentieth of a dry run). */
static inline void fp_put(struct fpbuf *f, const void *p, size_t len)
{
    if (len <= sizeof(f->b) - f->n) {
        memcpy(f->b + f->n, p, len);
        f->n += len;
    } else {
        fp_bytes(f, p, len);
    }
}

static void hstr(struct fpbuf *f, unsigned char tag, const char *s)
{
    static const unsigned char absent = 0xff;

    fp_put(f, &tag, 1);
    if (s == NULL)
        fp_put(f, &absent, 1);
    else
        fp_put(f, s, strlen(s) + 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_cf(const void *a, const void *b)
{
    const struct cts_custom_field *x =
        *(const struct cts_custom_field *const *)a;
    const struct cts_custom_field *y =
        *(const struct cts_custom_field *const *)b;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

uint32_t cts_state_fingerprint(const struct cts_contact *c, char *const *lists,
                               size_t nlists)
{
    struct fpbuf f;
    size_t i;

    f.h = FP_SEED;
    f.n = 0;
    /* Tags: the field's index for fields, then 0xf0.. for the others. */
    for (i = 0; i < CTS_F__COUNT; i++)
        hstr(&f, (unsigned char)i, c->f[i]);
    if (c->ncf > 0) {
        const struct cts_custom_field **cf = cts_xmalloc(c->ncf * sizeof(*cf));
        for (i = 0; i < c->ncf; i++)
            cf[i] = &c->cf[i];
        qsort(cf, c->ncf, sizeof(*cf), cmp_cf);
        for (i = 0; i < c->ncf; i++) {
            hstr(&f, 0xf0, cf[i]->name);
            hstr(&f, 0xf1, cf[i]->value);
        }
        free(cf);
    }
    if (nlists == 1) {
        /* One list (the usual run): nothing to sort, nothing to copy. */
        hstr(&f, 0xf2, lists[0]);
    } else if (nlists > 1) {
        char **l = cts_xmalloc(nlists * sizeof(*l));
        memcpy(l, lists, nlists * sizeof(*l));
        qsort(l, nlists, sizeof(*l), cmp_str);
        for (i = 0; i < nlists; i++)
            hstr(&f, 0xf2, l[i]);
        free(l);
    }
    /* Only when set, so the fingerprints of every other row stay as they
     * were: a row that flips to opt_out is sent again. */
    if (c->opt_out)
        hstr(&f, 0xf3, c->opt_out_reason != NULL ? c->opt_out_reason : "");
    fp_flush(&f);
    return (uint32_t)(f.h ^ (f.h >> 32));
}

enum cts_state_verdict cts_state_lookup(struct cts_state *st, const char *email,
                                        uint32_t fp,
                                        struct cts_state_prev *prev)
{
    return cts_state_lookup_key(st, cts_state_email_key(email), fp, prev);
}

enum cts_state_verdict cts_state_lookup_key(struct cts_state *st, uint64_t key,
                                            uint32_t fp,
                                            struct cts_state_prev *prev)
{
    const struct cts_eslot *s =
        st->committed ? NULL : cts_emailidx_find(&st->ix, key);
    unsigned f, res;
    if (prev != NULL)
        memset(prev, 0, sizeof(*prev));
    if (s == NULL)
        return CTS_SV_SEND;
    f = (unsigned)(s->kf & CTS_EIX_FLAG_MASK);
    res = (f & F_RES_MASK) >> F_RES_SHIFT;
    /* The killed run's confirmations stand even under --full: re-running
     * the same command must not send them again. */
    if (res != 0 && s->fp == fp) {
        if (prev != NULL) {
            prev->status = res == 1   ? CTS_ST_CREATED
                           : res == 2 ? CTS_ST_UPDATED
                                      : CTS_ST_IMPORTED;
            prev->message = "settled by an interrupted run";
        }
        return CTS_SV_RESUMED;
    }
    if (f & F_DOUBT)
        return CTS_SV_SEND_IN_DOUBT;
    if (st->full || s->fp != fp)
        return CTS_SV_SEND;
    if (f & F_CONF)
        return CTS_SV_UNCHANGED;
    if (f & F_FAIL) {
        if (prev != NULL) {
            const struct failure *fl = cts_state_fail_find(st, key);
            prev->status = CTS_ST_FAILED;
            if (fl != NULL) {
                prev->http_status = fl->http;
                prev->error_key = fl->error_key;
                prev->message = fl->message;
            }
        }
        return CTS_SV_FAILED_BEFORE;
    }
    return CTS_SV_SEND;
}

int cts_state_unchanged(struct cts_state *st, const char *email, uint32_t fp)
{
    return cts_state_lookup(st, email, fp, NULL) == CTS_SV_UNCHANGED;
}

int cts_state_in_doubt(struct cts_state *st, const char *email)
{
    const struct cts_eslot *s =
        st->committed ? NULL
                      : cts_emailidx_find(&st->ix, cts_state_email_key(email));
    return s != NULL && (s->kf & F_DOUBT) != 0;
}
