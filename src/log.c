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

static void vlog(enum cts_log_level l, const char *tag, const char *fmt,
                 va_list ap) __attribute__((format(printf, 3, 0)));
static void vlog(enum cts_log_level l, const char *tag, const char *fmt,
                 va_list ap)
{
    char line[2048];
    if (l > level)
        return;
    if (hook != NULL)
        hook(hook_arg);
    /* Masked before the line is cut to its buffer, so a long line never
     * ends in part of a secret. */
    cts_redact_vformat(line, sizeof(line), (const char *const *)secrets,
                       nsecrets, fmt, ap);
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
