/* url.c — resolving and vetting the links a server hands back (cts_url.h). */
#include "cts_url.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cts_redirect.h"
#include "cts_secret.h"

/* Length of "scheme:" at the start of s (letters first, RFC 3986), or 0
 * when s does not start with a scheme (a path or a query). */
static size_t scheme_len(const char *s)
{
    const char *p = s;

    if (!isalpha((unsigned char)*p))
        return 0;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return *p == ':' ? (size_t)(p - s) + 1 : 0;
}

/* The absolute form of link relative to base (both borrowed); owned. */
static char *resolve(const char *base, const char *link)
{
    const char *auth = strstr(base, "://");
    const char *path, *end, *slash;

    if (scheme_len(link) > 0)
        return cts_xstrdup(link);
    if (auth == NULL)
        return cts_xstrdup(link); /* base is validated: cannot happen */
    auth += 3;
    path = auth + strcspn(auth, "/?#");
    if (link[0] == '/' && link[1] == '/') /* network-path reference */
        return cts_xasprintf("%.*s%s", (int)(auth - 2 - base), base, link);
    if (link[0] == '/')
        return cts_xasprintf("%.*s%s", (int)(path - base), base, link);
    end = path + strcspn(path, "?#");
    if (link[0] == '?')
        return cts_xasprintf("%.*s%s", (int)(end - base), base, link);
    /* A relative path replaces the last segment of the base's path. */
    slash = end;
    while (slash > path && slash[-1] != '/')
        slash--;
    if (slash == path)
        return cts_xasprintf("%.*s/%s", (int)(path - base), base, link);
    return cts_xasprintf("%.*s%s", (int)(slash - base), base, link);
}

/* 1 when a and b (parsed) have the same origin and a has no user info. */
static int same_origin(const struct cts_uri *a, const struct cts_uri *b)
{
    return !a->has_userinfo && strcmp(a->scheme, b->scheme) == 0 &&
           strcmp(a->host, b->host) == 0 && a->port == b->port;
}

int cts_url_follow(const char *base_url, const char *link, char **out,
                   struct cts_error *err)
{
    struct cts_uri b, l;
    char *abs = NULL, *shown;
    int ok = 0;
    size_t i;

    *out = NULL;
    memset(&b, 0, sizeof(b));
    memset(&l, 0, sizeof(l));
    /* A backslash is a path separator to some URL parsers and not to
     * others: a link that needs one is not worth the doubt. */
    for (i = 0; link != NULL && link[i] != '\0'; i++)
        if ((unsigned char)link[i] <= 0x20 || link[i] == 0x7f ||
            link[i] == '\\')
            break;
    if (link != NULL && link[0] != '\0' && link[i] == '\0' &&
        base_url != NULL) {
        abs = resolve(base_url, link);
        ok = cts_uri_parse(base_url, &b) == 0 && cts_uri_parse(abs, &l) == 0 &&
             same_origin(&l, &b);
    }
    cts_uri_free(&b);
    cts_uri_free(&l);
    if (ok) {
        *out = abs;
        return 0;
    }
    free(abs);
    shown = cts_url_redact(link != NULL ? link : "");
    cts_error_setx(err, CTS_EHTTP, CTS_EX_UNAVAILABLE,
                   "the server's next-page link '%.200s%s' is not on %s "
                   "(the scheme, host and port of --base-url); not followed, "
                   "so the credentials were not sent there",
                   shown, strlen(shown) > 200 ? "..." : "",
                   base_url != NULL ? base_url : "--base-url");
    free(shown);
    return CTS_EHTTP;
}
