/* optouts.c — the account's unsubscribed addresses (see cts_optouts.h). */
#include "cts_optouts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cts_consent.h"   /* cts_consent_parse_time, _format_time */
#include "cts_email.h"     /* cts_email_normalize */
#include "cts_state.h"     /* cts_state_email_key */
#include "cts_tokenfile.h" /* cts_file_write_atomic */
#include "emailidx.h"

#define FILE_NAME  "optouts"
#define MAGIC      "CTSOPT01"
#define HDR_SIZE   48
#define REC_SIZE   12
#define CHECK_SEED 0x6f70746f75747331ULL /* "optouts1" */

struct cts_optouts {
    struct cts_emailidx ix; /* slot.fp = opt-out date, Unix s (0 unknown) */
    long last_fetch;
    long last_full;
    long newest;
};

/* The header, in native byte order like the state's store (the file never
 * leaves the machine that wrote it). */
struct hdr {
    char magic[8];
    uint64_t count;
    int64_t last_fetch;
    int64_t last_full;
    int64_t newest;
    uint64_t check;
};
_Static_assert(sizeof(struct hdr) == HDR_SIZE, "optouts header layout");

struct cts_optouts *cts_optouts_new(void)
{
    struct cts_optouts *s = cts_xcalloc(1, sizeof(*s));

    cts_emailidx_init(&s->ix);
    return s;
}

void cts_optouts_free(struct cts_optouts *s)
{
    if (s == NULL)
        return;
    cts_emailidx_free(&s->ix);
    free(s);
}

void cts_optouts_swap(struct cts_optouts *a, struct cts_optouts *b)
{
    struct cts_optouts t = *a;

    *a = *b;
    *b = t;
}

static void reset(struct cts_optouts *s)
{
    cts_emailidx_free(&s->ix);
    s->last_fetch = s->last_full = s->newest = 0;
}

/* Dates are kept in 32 bits: Unix seconds until 2106. */
static uint32_t date32(long t)
{
    return t > 0 && (unsigned long)t <= UINT32_MAX ? (uint32_t)t : 0;
}

static void put_key(struct cts_optouts *s, uint64_t key, long since)
{
    struct cts_eslot *slot = cts_emailidx_insert(&s->ix, key, NULL);
    uint32_t d = date32(since);

    /* Opted out, back, out again: the latest date is the one that holds. */
    if (d > slot->fp)
        slot->fp = d;
    if (since > s->newest)
        s->newest = since;
}

int cts_optouts_add(struct cts_optouts *s, const char *email, long since)
{
    char *norm = NULL;
    const char *why;

    /* The same normalisation as a row's email, so the keys match. */
    if (email == NULL || cts_email_normalize(email, &norm, &why) != 0)
        return 0;
    put_key(s, cts_state_email_key(norm), since);
    free(norm);
    return 1;
}

void cts_optouts_add_cb(void *arg, const char *email, const char *opt_out_date)
{
    long t = opt_out_date != NULL ? cts_consent_parse_time(opt_out_date) : 0;

    (void)cts_optouts_add(arg, email, t > 0 ? t : 0);
}

int cts_optouts_find_key(const struct cts_optouts *s, uint64_t key, long *since)
{
    const struct cts_eslot *slot = cts_emailidx_find(&s->ix, key);

    if (slot == NULL)
        return 0;
    if (since != NULL)
        *since = (long)slot->fp;
    return 1;
}

const char *cts_optouts_lookup(const struct cts_optouts *s, const char *email,
                               char *buf, size_t n)
{
    char iso[32];
    long since;

    if (!cts_optouts_find_key(s, cts_state_email_key(email), &since))
        return NULL;
    cts_consent_format_time(since, iso, sizeof(iso));
    /* The day only: "2024-03-05T14:40:41Z" -> "2024-03-05". */
    snprintf(buf, n, "%.10s", iso);
    return buf;
}

size_t cts_optouts_count(const struct cts_optouts *s)
{
    return s->ix.n;
}

const char *cts_optouts_since(const struct cts_optouts *s, long now, char *buf,
                              size_t n)
{
    if (s->last_full <= 0 || s->last_fetch <= 0 ||
        now - s->last_full >= CTS_OPTOUTS_FULL_EVERY)
        return NULL;
    return cts_consent_format_time(s->last_fetch - CTS_OPTOUTS_MARGIN, buf, n);
}

void cts_optouts_fetched(struct cts_optouts *s, long started, int full)
{
    s->last_fetch = started;
    if (full)
        s->last_full = started;
}

long cts_optouts_last_fetch(const struct cts_optouts *s)
{
    return s->last_fetch;
}

long cts_optouts_last_full(const struct cts_optouts *s)
{
    return s->last_full;
}

long cts_optouts_newest(const struct cts_optouts *s)
{
    return s->newest;
}

/* ---- the file ---- */

static void rec_put(unsigned char *p, const struct cts_eslot *slot)
{
    uint64_t kf = cts_eslot_key(slot) << 8;

    memcpy(p, &kf, 8);
    memcpy(p + 8, &slot->fp, 4);
}

int cts_optouts_save(const struct cts_optouts *s, const char *dir,
                     struct cts_error *err)
{
    size_t len = HDR_SIZE + s->ix.n * REC_SIZE, i, k = 0;
    unsigned char *buf = cts_xmalloc(len), *p = buf + HDR_SIZE;
    char *path = cts_xasprintf("%s/%s", dir, FILE_NAME);
    struct hdr h;
    int rc;

    memset(&h, 0, sizeof(h));
    memcpy(h.magic, MAGIC, 8);
    h.count = s->ix.n;
    h.last_fetch = s->last_fetch;
    h.last_full = s->last_full;
    h.newest = s->newest;
    h.check = CHECK_SEED;
    for (i = 0; i < s->ix.cap; i++) {
        if (s->ix.slots[i].kf == 0)
            continue;
        rec_put(p + k * REC_SIZE, &s->ix.slots[i]);
        h.check = cts_hash64(p + k * REC_SIZE, REC_SIZE, h.check);
        k++;
    }
    memcpy(buf, &h, HDR_SIZE);
    rc = cts_file_write_atomic(path, (const char *)buf, len, err);
    /* A state file: its failure is the state directory's (73), not a
     * configuration error. */
    if (rc != 0 && err != NULL)
        err->exit_code = CTS_EX_CANTCREAT;
    free(path);
    free(buf);
    return rc;
}

int cts_optouts_load(struct cts_optouts *s, const char *dir,
                     struct cts_error *err)
{
    char *path = cts_xasprintf("%s/%s", dir, FILE_NAME);
    unsigned char *chunk = NULL;
    FILE *f;
    struct hdr h;
    struct stat st;
    uint64_t check = CHECK_SEED, i = 0;
    int rc = 0;

    reset(s);
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = errno == ENOENT
                 ? 0
                 : cts_error_setx(err, -errno, CTS_EX_CANTCREAT,
                                  "cannot read %s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    /* The size must match the count before anything is sized by it. */
    if (fstat(fileno(f), &st) != 0 || fread(&h, 1, HDR_SIZE, f) != HDR_SIZE ||
        memcmp(h.magic, MAGIC, 8) != 0 ||
        h.count > ((uint64_t)st.st_size - HDR_SIZE) / REC_SIZE ||
        (uint64_t)st.st_size != HDR_SIZE + h.count * REC_SIZE)
        goto corrupt;
    cts_emailidx_reserve(&s->ix, (size_t)h.count);
    chunk = cts_xmalloc(4096 * REC_SIZE);
    while (i < h.count) {
        size_t want = h.count - i < 4096 ? (size_t)(h.count - i) : 4096, k;
        if (fread(chunk, REC_SIZE, want, f) != want)
            goto corrupt;
        for (k = 0; k < want; k++) {
            uint64_t kf;
            uint32_t d;
            memcpy(&kf, chunk + k * REC_SIZE, 8);
            memcpy(&d, chunk + k * REC_SIZE + 8, 4);
            check = cts_hash64(chunk + k * REC_SIZE, REC_SIZE, check);
            if ((kf >> 8) == 0)
                goto corrupt;
            put_key(s, kf >> 8, (long)d);
        }
        i += want;
    }
    if (check != h.check)
        goto corrupt;
    s->last_fetch = (long)h.last_fetch;
    s->last_full = (long)h.last_full;
    s->newest = (long)h.newest;
    goto out;
corrupt:
    /* A cache of the account's data: fetching it again repairs it. */
    reset(s);
    rc = cts_error_setx(err, CTS_EDATA, CTS_EX_CANTCREAT,
                        "%s is damaged; the unsubscribed addresses will be "
                        "fetched again",
                        path);
out:
    free(chunk);
    fclose(f);
    free(path);
    return rc;
}
