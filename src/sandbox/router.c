/*
 * router.c — method + path → handler.  Patterns are split on '/': literal
 * segments, "{name}" captures one segment, a final "*" matches the rest.
 * The most specific match wins (literal > capture > star, segment by
 * segment from the left), so "/v3/contacts/sign_up_form" beats
 * "/v3/contacts/{id}" whatever the registration order.
 */
#include "sb_int.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 16

struct sb_router {
    struct sb_route *r;
    size_t n;
};

struct sb_router *sb_router_new(void)
{
    return cts_xcalloc(1, sizeof(struct sb_router));
}

void sb_router_free(struct sb_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->r[i].method);
        free(r->r[i].pattern);
        free(r->r[i].endpoint);
    }
    free(r->r);
    free(r);
}

int sb_router_add(struct sb_router *r, const char *method, const char *pattern,
                  sb_handler_fn handler, unsigned flags)
{
    size_t caps = 0, segs = 0;
    if (!method || !*method || !pattern || pattern[0] != '/' || !handler)
        return CTS_EUSAGE;
    for (const char *p = pattern; *p; p++) {
        if (*p == '/')
            segs++;
        if (*p == '{')
            caps++;
    }
    if (caps > SB_MAX_PARAMS || segs > MAX_SEGS)
        return CTS_EUSAGE;
    const char *star = strchr(pattern, '*');
    if (star && (star[1] != '\0' || star[-1] != '/'))
        return CTS_EUSAGE;
    /* same method and pattern again: the later registration replaces the
     * earlier one (lets oauth.c take over a route admin.c offers) */
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->r[i].method, method) == 0 &&
            strcmp(r->r[i].pattern, pattern) == 0) {
            r->r[i].handler = handler;
            r->r[i].flags = flags;
            return 0;
        }
    }
    r->r = cts_xrealloc(r->r, (r->n + 1) * sizeof *r->r);
    struct sb_route *rt = &r->r[r->n++];
    rt->method = cts_xstrdup(method);
    rt->pattern = cts_xstrdup(pattern);
    rt->endpoint = cts_xasprintf("%s %s", method, pattern);
    rt->handler = handler;
    rt->flags = flags;
    rt->hits = 0;
    return 0;
}

/* Match path against pattern; returns a specificity score > 0 or 0.  Param
 * segment spans go to starts/lens. */
static uint64_t match(const char *pattern, const char *path,
                      const char **starts, size_t *lens, size_t *ncap)
{
    const char *p = pattern, *s = path;
    uint64_t score = 1;
    int seg = 0;
    *ncap = 0;
    while (*p == '/' && *s == '/') {
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        uint64_t w;
        if (pl == 1 && p[0] == '*') {
            for (int i = seg; i < MAX_SEGS; i++)
                score *= 3;
            return score;
        }
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0)
                return 0;
            starts[*ncap] = s;
            lens[(*ncap)++] = sl;
            w = 1;
        } else {
            if (pl != sl || memcmp(p, s, pl) != 0)
                return 0;
            w = 2;
        }
        score = score * 3 + w;
        seg++;
        p += pl;
        s += sl;
    }
    if (*p != '\0' || *s != '\0')
        return 0;
    for (int i = seg; i < MAX_SEGS; i++)
        score *= 3;
    return score;
}

size_t sb_router_count(const struct sb_router *r)
{
    return r->n;
}

struct sb_route *sb_router_at(struct sb_router *r, size_t i)
{
    return i < r->n ? &r->r[i] : NULL;
}

int sb_router_match(struct sb_router *r, const char *method, const char *path,
                    struct sb_route **route, const char **params,
                    size_t *nparams, char *scratch, size_t scratch_len,
                    char *allow, size_t allow_len)
{
    struct sb_route *best = NULL;
    uint64_t best_score = 0;
    const char *bstarts[SB_MAX_PARAMS];
    size_t blens[SB_MAX_PARAMS], bn = 0;
    int any_path = 0;

    if (allow_len)
        allow[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const char *starts[SB_MAX_PARAMS];
        size_t lens[SB_MAX_PARAMS], n;
        uint64_t sc = match(r->r[i].pattern, path, starts, lens, &n);
        if (!sc)
            continue;
        any_path = 1;
        if (strcmp(r->r[i].method, method) != 0)
            continue;
        if (sc > best_score) {
            best_score = sc;
            best = &r->r[i];
            memcpy(bstarts, starts, n * sizeof *starts);
            memcpy(blens, lens, n * sizeof *lens);
            bn = n;
        }
    }
    if (!best) {
        if (!any_path)
            return SB_MATCH_NOPATH;
        /* collect the methods that would have matched (most specific path
         * pattern only would be more exact; all is good enough) */
        size_t o = 0;
        for (size_t i = 0; i < r->n; i++) {
            const char *st[SB_MAX_PARAMS];
            size_t ln[SB_MAX_PARAMS], n;
            if (!match(r->r[i].pattern, path, st, ln, &n))
                continue;
            if (allow_len && !strstr(allow, r->r[i].method)) {
                int w = snprintf(allow + o, allow_len - o, "%s%s",
                                 o ? ", " : "", r->r[i].method);
                if (w > 0 && (size_t)w < allow_len - o)
                    o += (size_t)w;
            }
        }
        return SB_MATCH_NOMETHOD;
    }
    *route = best;
    *nparams = 0;
    size_t used = 0;
    for (size_t i = 0; i < bn; i++) {
        if (used + blens[i] + 1 > scratch_len)
            return SB_MATCH_NOPATH;
        char *d = scratch + used;
        memcpy(d, bstarts[i], blens[i]);
        size_t l = sb_url_decode(d, blens[i], 0);
        d[l] = '\0';
        params[(*nparams)++] = d;
        used += blens[i] + 1;
    }
    return SB_MATCH_OK;
}
