/* log.c — one-line messages on stderr, and secret masking. */
#include "cts_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "ctct-sync";
static enum cts_log_level level = CTS_LOG_INFO;
static void (*hook)(void *);
static void *hook_arg;

void cts_log_set_prog(const char *p) { prog = p; }
void cts_log_set_level(enum cts_log_level l) { level = l; }
enum cts_log_level cts_log_get_level(void) { return level; }

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
    if (s == NULL || strlen(s) < 8 || nsecrets == MAX_SECRETS)
        return;
    secrets[nsecrets++] = cts_xstrdup(s);
}

void cts_log_clear_secrets(void)
{
    while (nsecrets > 0)
        free(secrets[--nsecrets]);
}

static void redact(char *line, size_t cap)
{
    size_t i;
    for (i = 0; i < nsecrets; i++) {
        size_t slen = strlen(secrets[i]);
        char *hit;
        char mask[16];
        cts_mask(secrets[i], mask);
        while ((hit = strstr(line, secrets[i])) != NULL) {
            size_t mlen = strlen(mask);
            size_t tail = strlen(hit + slen) + 1;
            /* A mask is shorter than its secret ("****" for 8-12
             * characters, 11 bytes for longer ones): the line shrinks. */
            if (mlen > slen || (size_t)(hit - line) + mlen + tail > cap)
                break;
            memmove(hit + mlen, hit + slen, tail);
            memcpy(hit, mask, mlen);
        }
    }
}

__attribute__((format(printf, 3, 0))) static void
vlog(enum cts_log_level l, const char *tag, const char *fmt, va_list ap)
{
    char line[2048];
    if (l > level)
        return;
    if (hook != NULL)
        hook(hook_arg);
    vsnprintf(line, sizeof(line), fmt, ap);
    redact(line, sizeof(line));
    /* One write per line so lines from concurrent processes do not mix. */
    fprintf(stderr, "%s: %s%s\n", prog, tag, line);
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

char *cts_mask(const char *secret, char out[static 16])
{
    size_t n;
    if (secret == NULL) {
        snprintf(out, 16, "(none)");
        return out;
    }
    n = strlen(secret);
    if (n <= 12) {
        snprintf(out, 16, "****");
        return out;
    }
    /* "…" is 3 bytes in UTF-8: 4 + 3 + 4 + NUL = 12 bytes. */
    snprintf(out, 16, "%.4s\xe2\x80\xa6%s", secret, secret + n - 4);
    return out;
}
