/* log.c — one-line messages on stderr, and secret masking. */
#include "cts_util.h"

#include <stdio.h>
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

static void vlog(enum cts_log_level l, const char *tag, const char *fmt,
                 va_list ap)
{
    char line[2048];
    if (l > level)
        return;
    if (hook != NULL)
        hook(hook_arg);
    vsnprintf(line, sizeof(line), fmt, ap);
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
