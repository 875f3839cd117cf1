/*
 * http.c — HTTP/1.1 request parsing for ctct-sandbox.
 *
 * The parser works in place on the connection's read buffer: it searches for
 * the end of the header block (remembering how far it already looked, so a
 * request arriving one byte at a time costs O(n), not O(n^2)), then splits
 * the request line and header lines with NULs.  Lines end with CRLF or a
 * bare LF (RFC 9112 §2.2 allows accepting it); a bare CR inside a line is
 * an error.  Bodies are Content-Length
 * only; Transfer-Encoding gets 411 (our clients never send chunked bodies).
 */
#include "sb_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_tchar(int c)
{
    /* RFC 9110 token characters */
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return s;
}

static int has_token(const char *value, const char *token)
{
    /* comma-separated, case-insensitive token list ("keep-alive, Upgrade") */
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *q = p;
        while (*q && *q != ',')
            q++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p = q;
    }
    return 0;
}

/* The line at p ends at the next LF, before end; a CR just before the LF is
 * part of the line ending.  NUL-terminates the line, sets *next past the LF
 * and returns the line's end, or NULL when no LF comes before end. */
static char *cut_line(char *p, char *end, char **next)
{
    char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf)
        return NULL;
    *next = lf + 1;
    if (lf > p && lf[-1] == '\r')
        lf--;
    *lf = '\0';
    return lf;
}

static int parse_headers(struct sb_http_msg *msg, char *buf, char *end)
{
    /* end: the start of the blank line that ends the header block */
    char *p = buf, *next;
    char *eol = cut_line(p, end, &next);
    int have_cl = 0, connection_close = 0, connection_keep = 0;

    if (!eol)
        return SB_HTTP_BAD;
    /* request line: METHOD SP target SP HTTP/1.x */
    char *sp1 = strchr(p, ' ');
    if (!sp1 || sp1 == p)
        return SB_HTTP_BAD;
    for (char *c = p; c < sp1; c++)
        if (!is_tchar((unsigned char)*c))
            return SB_HTTP_BAD;
    *sp1 = '\0';
    msg->method = p;
    char *target = sp1 + 1;
    char *sp2 = strchr(target, ' ');
    if (!sp2 || sp2 == target)
        return SB_HTTP_BAD;
    *sp2 = '\0';
    const char *ver = sp2 + 1;
    if (strncmp(ver, "HTTP/", 5) != 0)
        return SB_HTTP_BAD;
    for (const char *c = ver; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f)
            return SB_HTTP_BAD; /* a bare CR, a blank */
    if (strcmp(ver, "HTTP/1.1") == 0)
        msg->minor = 1;
    else if (strcmp(ver, "HTTP/1.0") == 0)
        msg->minor = 0;
    else
        return SB_HTTP_VERSION;
    if (target[0] != '/')
        return SB_HTTP_BAD;
    for (char *c = target; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f)
            return SB_HTTP_BAD;
    msg->target = target;
    char *hash = strchr(target, '#');
    if (hash)
        *hash = '\0';
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        msg->query = q + 1;
    } else {
        msg->query = target + strlen(target); /* "" */
    }
    msg->path = target;

    /* header lines */
    p = next;
    while (p < end) {
        eol = cut_line(p, end, &next);
        if (!eol)
            return SB_HTTP_BAD;
        if (*p == ' ' || *p == '\t')
            return SB_HTTP_BAD; /* obsolete line folding */
        char *colon = strchr(p, ':');
        if (!colon || colon == p)
            return SB_HTTP_BAD;
        for (char *c = p; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return SB_HTTP_BAD;
        *colon = '\0';
        for (char *c = colon + 1; c < eol; c++)
            if (*c == '\0' || *c == '\r' || *c == '\n')
                return SB_HTTP_BAD;
        char *value = trim(colon + 1, eol);
        if (msg->nheaders == SB_MAX_HEADERS)
            return SB_HTTP_HDRBIG;
        msg->headers[msg->nheaders].name = p;
        msg->headers[msg->nheaders].value = value;
        msg->nheaders++;

        if (strcasecmp(p, "Content-Length") == 0) {
            char *e;
            if (!isdigit((unsigned char)value[0]))
                return SB_HTTP_BAD;
            errno = 0;
            unsigned long long n = strtoull(value, &e, 10);
            if (*e != '\0' || errno != 0)
                return SB_HTTP_BAD;
            if (have_cl && n != msg->content_length)
                return SB_HTTP_BAD;
            if (n > SB_BODY_CAP)
                return SB_HTTP_TOOBIG;
            msg->content_length = (size_t)n;
            have_cl = 1;
        } else if (strcasecmp(p, "Transfer-Encoding") == 0) {
            return SB_HTTP_LENREQ;
        } else if (strcasecmp(p, "Connection") == 0) {
            if (has_token(value, "close"))
                connection_close = 1;
            if (has_token(value, "keep-alive"))
                connection_keep = 1;
        } else if (strcasecmp(p, "Expect") == 0) {
            if (strcasecmp(value, "100-continue") != 0)
                return SB_HTTP_BAD; /* 417 would be exact; 400 is safe */
            msg->expect_continue = msg->minor >= 1;
        }
        p = next;
    }
    if (connection_close)
        msg->keep_alive = 0;
    else if (msg->minor >= 1)
        msg->keep_alive = 1;
    else
        msg->keep_alive = connection_keep;
    return 0;
}

int sb_http_parse(struct sb_http_msg *msg, char *buf, size_t len)
{
    if (!msg->parsed) {
        /* Tolerate empty lines before a request (RFC 9112 §2.2): they are
         * part of this request's bytes, consumed with it.  Lines end with
         * LF, optionally preceded by CR (a bare LF is accepted). */
        size_t start = msg->scanned >= 3 ? msg->scanned - 3 : 0;
        size_t lead = 0, blank = 0, hend = 0;
        for (;;) {
            if (lead < len && buf[lead] == '\n')
                lead += 1;
            else if (lead + 1 < len && buf[lead] == '\r' &&
                     buf[lead + 1] == '\n')
                lead += 2;
            else
                break;
        }
        if (start < lead)
            start = lead;
        /* the header block ends with an empty line: LF LF or LF CR LF */
        for (size_t i = start; i < len; i++) {
            if (buf[i] == '\0')
                return SB_HTTP_BAD;
            if (buf[i] != '\n' || i + 1 >= len)
                continue;
            if (buf[i + 1] == '\n') {
                blank = i + 1;
                hend = i + 2;
                break;
            }
            if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n') {
                blank = i + 1;
                hend = i + 3;
                break;
            }
        }
        if (!hend) {
            msg->scanned = len;
            if (len > SB_HEADER_CAP)
                return SB_HTTP_HDRBIG;
            /* A request line that cannot become valid: fail early instead
             * of waiting for 16 KiB of garbage (a lone CR may still become
             * an empty line). */
            if (len - lead == 1 && buf[lead] == '\r')
                return SB_HTTP_MORE;
            for (size_t i = lead; i < len && i < lead + 32; i++) {
                unsigned char c = (unsigned char)buf[i];
                if (c == ' ')
                    break;
                if (!is_tchar(c))
                    return SB_HTTP_BAD;
            }
            return SB_HTTP_MORE;
        }
        msg->header_len = hend;
        if (msg->header_len > SB_HEADER_CAP)
            return SB_HTTP_HDRBIG;
        int rc = parse_headers(msg, buf + lead, buf + blank);
        if (rc != 0)
            return rc;
        msg->parsed = 1;
        msg->o_method = (size_t)(msg->method - buf);
        msg->o_path = (size_t)(msg->path - buf);
        msg->o_query = (size_t)(msg->query - buf);
        msg->o_target = (size_t)(msg->target - buf);
        for (size_t i = 0; i < msg->nheaders; i++) {
            msg->o_hname[i] = (size_t)(msg->headers[i].name - buf);
            msg->o_hvalue[i] = (size_t)(msg->headers[i].value - buf);
        }
    }
    /* re-derive the pointers: buf may have moved since the headers came */
    msg->method = buf + msg->o_method;
    msg->path = buf + msg->o_path;
    msg->query = buf + msg->o_query;
    msg->target = buf + msg->o_target;
    for (size_t i = 0; i < msg->nheaders; i++) {
        msg->headers[i].name = buf + msg->o_hname[i];
        msg->headers[i].value = buf + msg->o_hvalue[i];
    }
    if (len - msg->header_len < msg->content_length)
        return SB_HTTP_HEADERS;
    msg->body = buf + msg->header_len;
    msg->total_len = msg->header_len + msg->content_length;
    return SB_HTTP_DONE;
}

const char *sb_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t sb_url_decode(char *s, size_t len, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < len &&
            (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            s[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (plus && s[i] == '+') {
            s[o++] = ' ';
        } else {
            s[o++] = s[i];
        }
    }
    if (o < len)
        s[o] = '\0';
    return o;
}

char *sb_form_lookup(const char *s, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        /* names are compared decoded: copy the key only when it has '%' */
        char kbuf[128];
        size_t kl = (size_t)(ke - p);
        if (kl < sizeof kbuf) {
            memcpy(kbuf, p, kl);
            kl = sb_url_decode(kbuf, kl, 1);
            if (kl == nl && memcmp(kbuf, name, nl) == 0) {
                const char *v = eq ? eq + 1 : pe;
                size_t vl = (size_t)(pe - v);
                char *out = cts_xstrndup(v, vl);
                size_t n = sb_url_decode(out, vl, 1);
                out[n] = '\0';
                return out;
            }
        }
        p = amp ? amp + 1 : end;
    }
    return NULL;
}
