/*
 * faults.c — fault injection: a FIFO of scripted faults (POST
 * /_sandbox/faults, --faults FILE), each optionally bound to one endpoint,
 * consumed in order by the next matching API requests; then random faults
 * at --fault-rate from a seeded generator (splitmix64), so a run is
 * reproducible.  Counts what it injected for /_sandbox/state.
 */
#include "sb_int.h"

#include <stdlib.h>
#include <string.h>

struct queued {
    enum sb_fault kind;
    char *match; /* NULL = any */
};

struct sb_faults {
    struct queued *q;
    size_t head, len, cap;
    double rate;
    uint64_t rng;
    uint64_t count[SB_FAULT__COUNT];
};

static const char *const names[SB_FAULT__COUNT] = {
    "none",        "500",        "503",  "429",
    "drop_before", "drop_after", "slow", "400_echo"};

struct sb_faults *sb_faults_new(double rate, uint64_t seed)
{
    struct sb_faults *f = cts_xcalloc(1, sizeof *f);
    f->rate = rate;
    f->rng = seed;
    return f;
}

void sb_faults_drop_queue(struct sb_faults *f)
{
    for (size_t i = 0; i < f->len; i++)
        free(f->q[(f->head + i) % f->cap].match);
    f->head = f->len = 0;
}

void sb_faults_clear(struct sb_faults *f)
{
    sb_faults_drop_queue(f);
    memset(f->count, 0, sizeof f->count);
}

void sb_faults_free(struct sb_faults *f)
{
    if (!f)
        return;
    sb_faults_clear(f);
    free(f->q);
    free(f);
}

enum sb_fault sb_fault_parse(const char *name)
{
    for (int i = 1; i < SB_FAULT__COUNT; i++)
        if (name && strcmp(name, names[i]) == 0)
            return (enum sb_fault)i;
    return SB_FAULT_NONE;
}

const char *sb_fault_name(enum sb_fault k)
{
    return (unsigned)k < SB_FAULT__COUNT ? names[k] : "none";
}

void sb_faults_push(struct sb_faults *f, enum sb_fault k, const char *match)
{
    if (f->len == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 16;
        struct queued *nq = cts_xmalloc(ncap * sizeof *nq);
        for (size_t i = 0; i < f->len; i++)
            nq[i] = f->q[(f->head + i) % f->cap];
        free(f->q);
        f->q = nq;
        f->cap = ncap;
        f->head = 0;
    }
    struct queued *e = &f->q[(f->head + f->len) % f->cap];
    e->kind = k;
    e->match = match && *match ? cts_xstrdup(match) : NULL;
    f->len++;
}

static int load_one(struct sb_faults *f, json_t *o, struct cts_error *err)
{
    json_t *list = json_object_get(o, "faults");
    json_t *m = json_object_get(o, "match");
    size_t i;
    json_t *v;
    if (!json_is_array(list) || (m && !json_is_string(m) && !json_is_null(m)))
        return cts_error_set(err, CTS_EUSAGE,
                             "expected {\"faults\":[...],\"match\":\"...\"}");
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) ||
            sb_fault_parse(json_string_value(v)) == SB_FAULT_NONE)
            return cts_error_set(err, CTS_EUSAGE,
                                 "unknown fault kind at index %zu (kinds: "
                                 "500 503 429 drop_before drop_after slow)",
                                 i);
    }
    json_array_foreach(list, i, v)
    {
        sb_faults_push(f, sb_fault_parse(json_string_value(v)),
                       json_is_string(m) ? json_string_value(m) : NULL);
    }
    return 0;
}

int sb_faults_load_json(struct sb_faults *f, json_t *j, struct cts_error *err)
{
    if (json_is_object(j))
        return load_one(f, j, err);
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            int rc = load_one(f, v, err);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    return cts_error_set(err, CTS_EUSAGE, "faults: expected an object");
}

static int matches(const char *match, const char *method, const char *route,
                   const char *path)
{
    if (!match)
        return 1;
    size_t ml = strlen(method);
    if (strncmp(match, method, ml) != 0 || match[ml] != ' ')
        return 0;
    const char *p = match + ml + 1;
    return strcmp(p, route) == 0 || strcmp(p, path) == 0;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum sb_fault sb_faults_next(struct sb_faults *f, const char *method,
                             const char *route, const char *path)
{
    for (size_t i = 0; i < f->len; i++) {
        size_t at = (f->head + i) % f->cap;
        if (!matches(f->q[at].match, method, route, path))
            continue;
        enum sb_fault k = f->q[at].kind;
        free(f->q[at].match);
        /* remove entry i, keeping the order of the rest */
        for (size_t j = i; j + 1 < f->len; j++)
            f->q[(f->head + j) % f->cap] = f->q[(f->head + j + 1) % f->cap];
        f->len--;
        f->count[k]++;
        return k;
    }
    if (f->rate > 0) {
        double u = (double)(splitmix(&f->rng) >> 11) / 9007199254740992.0;
        if (u < f->rate) {
            /* random faults: the five kinds the brief names, not 429 */
            static const enum sb_fault kinds[] = {
                SB_FAULT_500, SB_FAULT_503, SB_FAULT_DROP_BEFORE,
                SB_FAULT_DROP_AFTER, SB_FAULT_SLOW};
            enum sb_fault k = kinds[splitmix(&f->rng) % 5];
            f->count[k]++;
            return k;
        }
    }
    return SB_FAULT_NONE;
}

uint64_t sb_faults_count(const struct sb_faults *f, enum sb_fault k)
{
    return (unsigned)k < SB_FAULT__COUNT ? f->count[k] : 0;
}

size_t sb_faults_pending(const struct sb_faults *f)
{
    return f->len;
}
