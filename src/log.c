/* log.c — one-line messages on stderr, with the run's secrets masked. */
#include "cts_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_secret.h"

static const char *prog = "ctct-sync";
static enum cts_log_level level = CTS_LOG_INFO;
static void (*hook)(void *);
static void *hook_arg;

void cts_log_set_prog(const char *p)
{
    prog = p;
}
void cts_log_set_level(enum cts_log_level l)
{
    level = l;
}
enum cts_log_level cts_log_get_level(void)
{
    return level;
}

void cts_log_set_hook(void (*h)(void *arg), void *arg)
{
    hook = h;
    hook_arg = arg;
}

/* Secrets registered by main (key, tokens): masked in every line, as a
 * last line of defence for messages built from URLs or library text. */
#define MAX_SECRETS 8
static char *secrets[MAX_SECRETS];
static size_t nsecrets;

void cts_log_add_secret(const char *s)
{
    /* Values too short to look for are dropped here, so they do not take
     * one of the slots (cts_redact would skip them anyway). */
    if (s == NULL || strlen(s) < CTS_SECRET_MIN || nsecrets == MAX_SECRETS)
        return;
    secrets[nsecrets++] = cts_xstrdup(s);
}

void cts_log_clear_secrets(void)
{
    while (nsecrets > 0)
        free(secrets[--nsecrets]);
}

const char *const *cts_log_secrets(size_t *n)
{
    *n = nsecrets;
    return (const char *const *)secrets;
}

char *cts_log_redacted(const char *s)
{
    const char *const *list = (const char *const *)secrets;
    size_t len;
    char *copy;
    if (!cts_redact_needed(s, list, nsecrets))
        return NULL;
    /* One spare byte: the copy is whole, not cut, so cts_redact must not
     * treat its end as the cut end of a longer text. */
    len = strlen(s);
    copy = cts_xmalloc(len + 2);
    memcpy(copy, s, len + 1);
    cts_redact(copy, len + 2, list, nsecrets);
    return copy;
}

/* Length of the UTF-8 sequence at s[0..n) and its code point, or 0 when
 * the bytes are not a well-formed (shortest-form) sequence. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned long *cp)
{
    size_t len, i;
    unsigned long c;

    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        c = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        c = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && c < 0x800) ||
        (len == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* Characters a terminal acts on or that reorder what it shows: C1
 * controls and the bidirectional formatting characters. */
static int is_format_char(unsigned long c)
{
    return (c >= 0x80 && c <= 0x9F) || c == 0x200E || c == 0x200F ||
           (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

void cts_buf_append_visible(struct cts_buf *b, const char *s, size_t n,
                            int keep_nl)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        unsigned long cp = 0;
        size_t len = 1;
        int esc;
        if (u[i] < 0x20 || u[i] == 0x7F)
            /* A newline that starts an indented continuation line is the
             * message's own layout; any other control is escaped. */
            esc = !(keep_nl && u[i] == '\n' && i + 1 < n &&
                    (u[i + 1] == ' ' || u[i + 1] == '\t'));
        else if (u[i] < 0x80)
            esc = 0;
        else {
            len = utf8_seq(u + i, n - i, &cp);
            esc = len == 0 || is_format_char(cp);
            if (len == 0)
                len = 1;
        }
        if (!esc) {
            i += len;
            run += len;
            continue;
        }
        cts_buf_append(b, s + i - run, run);
        run = 0;
        if (cp != 0)
            cts_buf_appendf(b, "\\u%04lx", cp);
        else
            cts_buf_appendf(b, "\\x%02x", u[i]);
        i += len;
    }
    cts_buf_append(b, s + i - run, run);
}

char *cts_log_visible(const char *s)
{
    struct cts_buf b;

    cts_buf_init(&b, 0);
    cts_buf_append_visible(&b, s != NULL ? s : "", s != NULL ? strlen(s) : 0,
                           0);
    return cts_buf_detach(&b);
}

static void vlog(enum cts_log_level l, const char *tag, const char *fmt,
                 va_list ap) __attribute__((format(printf, 3, 0)));
static void vlog(enum cts_log_level l, const char *tag, const char *fmt,
                 va_list ap)
{
    char line[2048];
    struct cts_buf out;
    int n;
    if (l > level)
        return;
    if (hook != NULL)
        hook(hook_arg);
    /* Masked before the line is cut to its buffer, so a long line never
     * ends in part of a secret. */
    n = cts_redact_vformat(line, sizeof(line), (const char *const *)secrets,
                           nsecrets, fmt, ap);
    /* Messages echo input (CSV headers, values, server words): a control
     * character in them must not drive the terminal (ESC ]2; retitles
     * it, CR overwrites the line), so they are shown escaped. */
    cts_buf_init(&out, 0);
    cts_buf_appendf(&out, "%s: %s", prog, tag);
    cts_buf_append_visible(&out, line, n > 0 ? (size_t)n : 0, 1);
    cts_buf_putc(&out, '\n');
    /* One write per line so lines from concurrent processes do not mix. */
    fwrite(out.data, 1, out.len, stderr);
    cts_buf_free(&out);
}

#define DEFINE_LOG(name, lvl, tag)                                             \
    void name(const char *fmt, ...)                                            \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        vlog(lvl, tag, fmt, ap);                                               \
        va_end(ap);                                                            \
    }

DEFINE_LOG(cts_log_error, CTS_LOG_ERROR, "")
DEFINE_LOG(cts_log_warn, CTS_LOG_WARN, "warning: ")
DEFINE_LOG(cts_log_info, CTS_LOG_INFO, "")
DEFINE_LOG(cts_log_debug, CTS_LOG_DEBUG, "debug: ")
