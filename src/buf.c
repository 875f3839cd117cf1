/* buf.c — growable byte buffer with a hard cap (curl's dynbuf idea). */
#include "cts_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cts_buf_init(struct cts_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int grow(struct cts_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1, cap;
    if (b->max != 0 && b->len + extra > b->max)
        return CTS_ETOOBIG;
    if (need <= b->cap)
        return 0;
    cap = b->cap != 0 ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = cts_xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int cts_buf_append(struct cts_buf *b, const void *data, size_t len)
{
    /* Only a capped buffer or one without room needs grow(): the reader
     * appends every field of every row here. */
    if (b->max != 0 || b->len + len + 1 > b->cap) {
        int rc = grow(b, len);
        if (rc != 0)
            return rc;
    }
    if (len != 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cts_buf_putc(struct cts_buf *b, char c)
{
    return cts_buf_append(b, &c, 1);
}

int cts_buf_appendf(struct cts_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CTS_ETOOBIG;
    rc = grow(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cts_buf_reset(struct cts_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *cts_buf_detach(struct cts_buf *b)
{
    char *p = b->data != NULL ? b->data : cts_xstrdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void cts_buf_free(struct cts_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
