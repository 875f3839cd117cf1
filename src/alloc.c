/* alloc.c — allocation that aborts on failure: a batch CLI cannot recover
 * from running out of memory, so we say so and stop (h2o/redis policy). */
#include "cts_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "ctct-sync: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *cts_xmalloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *cts_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb != 0 ? nmemb : 1, size != 0 ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *cts_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n != 0 ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *cts_xstrdup(const char *s)
{
    return cts_xstrndup(s, strlen(s));
}

char *cts_xstrndup(const char *s, size_t n)
{
    char *p = cts_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cts_xasprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    int n;
    char *p;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    p = cts_xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
