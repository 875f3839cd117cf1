/* error.c — error values and their text. */
#include "cts_util.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cts_secret.h"

static int vset(struct cts_error *err, int code, int exit_code, const char *fmt,
                va_list ap) __attribute__((format(printf, 4, 0)));
static int vset(struct cts_error *err, int code, int exit_code, const char *fmt,
                va_list ap)
{
    if (err == NULL)
        return code;
    size_t n;
    const char *const *secrets = cts_log_secrets(&n);

    err->code = code;
    err->exit_code = exit_code;
    /* The run's secrets are masked before the message is cut to msg (a
     * long URL must not leave part of a key at the cut), and the cut
     * falls between UTF-8 characters. */
    cts_redact_vformat(err->msg, sizeof(err->msg), secrets, n, fmt, ap);
    return code;
}

int cts_error_set(struct cts_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, err != NULL ? err->exit_code : 0, fmt, ap);
    va_end(ap);
    return code;
}

int cts_error_setx(struct cts_error *err, int code, int exit_code,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, exit_code, fmt, ap);
    va_end(ap);
    return code;
}

int cts_error_vsetx(struct cts_error *err, int code, int exit_code,
                    const char *fmt, va_list ap)
{
    return vset(err, code, exit_code, fmt, ap);
}

const char *cts_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case CTS_ECSV: return "malformed CSV";
    case CTS_EJSON: return "malformed JSON";
    case CTS_EHTTP: return "HTTP error";
    case CTS_ECONFIG: return "configuration error";
    case CTS_EUSAGE: return "usage error";
    case CTS_EAUTH: return "credentials rejected";
    case CTS_EDATA: return "bad input data";
    case CTS_ELOCKED: return "state is locked by another run";
    case CTS_EQUOTA: return "daily quota exhausted";
    case CTS_ETOOBIG: return "data too large";
    default: return uv_strerror(code);
    }
}
