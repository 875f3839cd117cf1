/*
 * config_opt.c — the option table (which options exist, which commands
 * take them, which may appear in the config file) and what each value
 * does to struct cts_config, with the one-line error naming the option
 * in the words of its layer ("--rate", "FILE:LINE: rate", "CTCT_RATE").
 */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_consent.h"
#include "cts_contact.h"
#include "cts_fsio.h"
#include "cts_redirect.h"
#include "cts_secret.h"
#include "cts_tokenfile.h"
#include "cts_util.h"

/* ---- the option table ---- */

#define C_IMPORT (1u << CTS_CMD_IMPORT)
#define C_CHECK  (1u << CTS_CMD_CHECK)
#define C_LISTS  (1u << CTS_CMD_LISTS)
#define C_AUTH   (1u << CTS_CMD_AUTH)
#define C_EXPORT (1u << CTS_CMD_EXPORT)
#define C_ALL    (C_IMPORT | C_CHECK | C_LISTS | C_AUTH | C_EXPORT)
#define C_SEND   (C_IMPORT | C_EXPORT) /* commands with a send engine */

const struct opt_def cts_opts[] = {
    {"help", O_HELP, A_NONE, C_ALL, 0},
    {"quiet", O_QUIET, A_NONE, C_ALL, 1},
    {"verbose", O_VERBOSE, A_NONE, C_ALL, 1},
    {"api", O_API, A_REQ, C_ALL, 1},
    {"api-key", O_API_KEY, A_REQ, C_ALL, 1},
    {"token", O_TOKEN, A_REQ, C_IMPORT | C_CHECK | C_LISTS | C_EXPORT, 1},
    {"token-file", O_TOKEN_FILE, A_REQ, C_ALL, 1},
    {"account", O_ACCOUNT, A_REQ, C_ALL, 1},
    {"base-url", O_BASE_URL, A_REQ, C_ALL, 1},
    {"auth-url", O_AUTH_URL, A_REQ, C_ALL, 1},
    {"config", O_CONFIG, A_REQ, C_ALL, 0},
    {"timeout", O_TIMEOUT, A_REQ, C_ALL, 1},
    {"json", O_JSON, A_NONE, C_CHECK | C_LISTS, 0},
    {"list", O_LIST, A_REQ, C_SEND, 1},
    {"mode", O_MODE, A_REQ, C_IMPORT, 1},
    {"permission", O_PERMISSION, A_REQ, C_IMPORT, 1},
    {"rate", O_RATE, A_REQ, C_SEND, 1},
    {"concurrency", O_CONCURRENCY, A_REQ, C_SEND, 1},
    {"daily-quota", O_DAILY_QUOTA, A_REQ, C_SEND, 1},
    {"retries", O_RETRIES, A_REQ, C_SEND, 1},
    {"report", O_REPORT, A_REQ, C_IMPORT, 1},
    {"summary", O_SUMMARY, A_REQ, C_IMPORT, 1},
    {"rejects", O_REJECTS, A_REQ, C_IMPORT, 1},
    {"html", O_HTML, A_REQ, C_IMPORT, 1},
    {"no-html", O_NO_HTML, A_NONE, C_IMPORT, 1},
    {"state", O_STATE, A_REQ, C_SEND, 1},
    {"full", O_FULL, A_NONE, C_IMPORT, 1},
    {"bulk", O_BULK, A_REQ, C_IMPORT, 1},
    {"bulk-threshold", O_BULK_THRESHOLD, A_REQ, C_IMPORT, 1},
    {"poll-interval", O_POLL_INTERVAL, A_REQ, C_IMPORT, 1},
    {"mirror", O_MIRROR, A_NONE, C_IMPORT, 1},
    {"max-removals", O_MAX_REMOVALS, A_REQ, C_IMPORT, 1},
    {"dry-run", O_DRY_RUN, A_NONE, C_IMPORT, 1},
    {"accept-typos", O_ACCEPT_TYPOS, A_NONE, C_IMPORT, 1},
    {"delimiter", O_DELIMITER, A_REQ, C_IMPORT, 1},
    {"encoding", O_ENCODING, A_REQ, C_IMPORT, 1},
    {"map", O_MAP, A_REQ, C_IMPORT, 1},
    {"redirect-uri", O_REDIRECT_URI, A_REQ, C_AUTH, 1},
    {"registered-redirect-uri", O_REGISTERED_REDIRECT_URI, A_REQ, C_AUTH, 1},
    {"no-listen", O_NO_LISTEN, A_NONE, C_AUTH, 1},
    {"open", O_OPEN, A_NONE, C_AUTH, 1},
    {"device", O_DEVICE, A_NONE, C_AUTH, 1},
    {"client-secret", O_CLIENT_SECRET, A_REQ, C_AUTH, 1},
    {"scopes", O_SCOPES, A_REQ, C_AUTH, 1},
    /* what one export writes: the command line only */
    {"status", O_STATUS, A_REQ, C_EXPORT, 0},
    {"since", O_SINCE, A_REQ, C_EXPORT, 0},
    {"output", O_OUTPUT, A_REQ, C_EXPORT, 0},
};
const size_t cts_nopts = sizeof(cts_opts) / sizeof(cts_opts[0]);

const struct opt_def *cts_opt_by_id(int id)
{
    size_t i;
    for (i = 0; i < cts_nopts; i++)
        if (cts_opts[i].id == id)
            return &cts_opts[i];
    return NULL;
}

const struct opt_def *cts_opt_by_key(const char *key)
{
    size_t i, j;
    for (i = 0; i < cts_nopts; i++) {
        const char *n = cts_opts[i].name;
        for (j = 0; n[j] != '\0' && key[j] != '\0'; j++) {
            char k = key[j] == '_' ? '-' : key[j];
            if (k != n[j])
                break;
        }
        if (n[j] == '\0' && key[j] == '\0')
            return &cts_opts[i];
    }
    return NULL;
}

/* Format "the option" for messages in the words of its layer. */
static void opt_label(const struct loader *ld, const struct opt_def *o,
                      char *buf, size_t n)
{
    if (ld->layer == L_ARGV)
        snprintf(buf, n, "--%s", o->name);
    else if (ld->layer == L_FILE)
        snprintf(buf, n, "%s: %s", ld->where, o->name);
    else
        snprintf(buf, n, "%s", ld->where);
}

static int bad_value(const struct loader *ld, const struct opt_def *o,
                     const char *value, const char *why, struct cts_error *err)
{
    char label[300];
    opt_label(ld, o, label, sizeof(label));
    if (ld->layer == L_ARGV)
        return cts_error_setx(err, CTS_EUSAGE, CTS_EX_USAGE,
                              "invalid value '%s' for %s: %s", value, label,
                              why);
    return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                          "invalid value '%s' for %s: %s", value, label, why);
}

/* Secrets must not be echoed back in an error message. */
static int is_secret(int id)
{
    return id == O_TOKEN || id == O_CLIENT_SECRET || id == O_API_KEY;
}

void cts_opt_set_str(char **dst, const char *value)
{
    free(*dst);
    *dst = cts_xstrdup(value);
}

/* Paths from the config file or the environment get "~/" expanded, as the
 * shell does for the command line. */
void cts_opt_set_path(const struct loader *ld, char **dst, const char *value)
{
    const char *home = getenv("HOME");
    if (ld->layer != L_ARGV && strncmp(value, "~/", 2) == 0 && home != NULL &&
        home[0] == '/') {
        free(*dst);
        *dst = cts_xasprintf("%s%s", home, value + 1);
        return;
    }
    cts_opt_set_str(dst, value);
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    double d;
    if (s == NULL || *s == '\0')
        return CTS_EUSAGE;
    errno = 0;
    d = strtod(s, &end);
    if (errno != 0 || *end != '\0' || end == s || !isfinite(d) || d < min ||
        d > max)
        return CTS_EUSAGE;
    *out = d;
    return 0;
}

/* --max-removals: "N" members or "P%" of each list (0 allowed: no
 * removal at all). */
static int parse_cap(const char *s, enum cts_cap_kind *kind, double *out)
{
    size_t n = strlen(s);
    char num[32];
    long l;

    if (n > 1 && s[n - 1] == '%' && n < sizeof(num)) {
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (parse_double(num, 0, 100, out) != 0)
            return -1;
        *kind = CTS_CAP_PERCENT;
        return 0;
    }
    if (cts_parse_long(s, 0, 1000000000L, &l) != 0)
        return -1;
    *kind = CTS_CAP_COUNT;
    *out = (double)l;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (s == NULL || strcmp(s, "1") == 0 || cts_streq_nocase(s, "true") ||
        cts_streq_nocase(s, "yes") || cts_streq_nocase(s, "on")) {
        *out = 1;
        return 0;
    }
    if (strcmp(s, "0") == 0 || cts_streq_nocase(s, "false") ||
        cts_streq_nocase(s, "no") || cts_streq_nocase(s, "off")) {
        *out = 0;
        return 0;
    }
    return CTS_EUSAGE;
}

static int parse_delimiter(const char *s, int *out)
{
    if (strcmp(s, ",") == 0 || strcmp(s, ";") == 0 || strcmp(s, "|") == 0 ||
        strcmp(s, "\t") == 0) {
        *out = (unsigned char)s[0];
        return 0;
    }
    if (cts_streq_nocase(s, "tab") || strcmp(s, "\\t") == 0) {
        *out = '\t';
        return 0;
    }
    if (cts_streq_nocase(s, "comma")) {
        *out = ',';
        return 0;
    }
    if (cts_streq_nocase(s, "semicolon")) {
        *out = ';';
        return 0;
    }
    if (cts_streq_nocase(s, "pipe")) {
        *out = '|';
        return 0;
    }
    return CTS_EUSAGE;
}

static int parse_encoding(const char *s, enum cts_encoding *out)
{
    if (cts_streq_nocase(s, "auto"))
        *out = CTS_ENC_AUTO;
    else if (cts_streq_nocase(s, "utf-8") || cts_streq_nocase(s, "utf8"))
        *out = CTS_ENC_UTF8;
    else if (cts_streq_nocase(s, "cp1252") ||
             cts_streq_nocase(s, "windows-1252"))
        *out = CTS_ENC_CP1252;
    else if (cts_streq_nocase(s, "latin1") || cts_streq_nocase(s, "iso-8859-1"))
        *out = CTS_ENC_LATIN1;
    else
        return CTS_EUSAGE;
    return 0;
}

/* --map FIELD=HEADER or cf:NAME=HEADER; FIELD must be a contact field. */
static int parse_map(const char *s, struct cts_map *out, const char **why)
{
    const char *eq = strchr(s, '=');
    size_t flen;
    int f;
    if (eq == NULL || eq == s || eq[1] == '\0') {
        *why = "expected FIELD=HEADER";
        return CTS_EUSAGE;
    }
    flen = (size_t)(eq - s);
    if (flen > 3 && strncmp(s, "cf:", 3) == 0) {
        out->field = cts_xstrndup(s, flen);
        out->header = cts_xstrdup(eq + 1);
        return 0;
    }
    for (f = 0; f < CTS_F__MAPPABLE; f++) {
        const char *n = cts_field_name((enum cts_field)f);
        if (strlen(n) == flen && strncmp(n, s, flen) == 0) {
            out->field = cts_xstrndup(s, flen);
            out->header = cts_xstrdup(eq + 1);
            return 0;
        }
    }
    *why = "unknown FIELD (email, first_name, last_name, company_name, "
           "job_title, phone, street, city, state, postal_code, country, "
           "birthday_month, birthday_day, anniversary, opt_out, "
           "opt_out_reason, or cf:NAME)";
    return CTS_EUSAGE;
}

void cts_opt_clear_lists(struct cts_config *cfg)
{
    size_t i;
    for (i = 0; i < cfg->nlists; i++)
        free(cfg->lists[i]);
    free(cfg->lists);
    cfg->lists = NULL;
    cfg->nlists = 0;
}

void cts_opt_clear_maps(struct cts_config *cfg)
{
    size_t i;
    for (i = 0; i < cfg->nmaps; i++) {
        free(cfg->maps[i].field);
        free(cfg->maps[i].header);
    }
    free(cfg->maps);
    cfg->maps = NULL;
    cfg->nmaps = 0;
}

int cts_opt_apply(struct loader *ld, const struct opt_def *o, const char *value,
                  struct cts_error *err)
{
    struct cts_config *cfg = ld->cfg;
    const char *shown = is_secret(o->id) ? "(hidden)" : value;
    const char *why = NULL;
    long l;
    double d;
    int b;

    if (o->arg == A_REQ && value != NULL && value[0] == '\0' &&
        o->id != O_ACCOUNT)
        return bad_value(ld, o, shown, "empty value", err);

    switch (o->id) {
    case O_HELP: cfg->help = 1; return 0;
    case O_QUIET:
    case O_VERBOSE:
    case O_JSON:
    case O_FULL:
    case O_DRY_RUN:
    case O_ACCEPT_TYPOS:
    case O_MIRROR:
    case O_NO_LISTEN:
    case O_OPEN:
    case O_DEVICE:
    case O_NO_HTML:
        if (parse_bool(value, &b) != 0)
            return bad_value(ld, o, shown, "expected true or false", err);
        if (o->id == O_QUIET)
            cfg->quiet = b;
        else if (o->id == O_VERBOSE)
            cfg->verbose = b;
        else if (o->id == O_JSON)
            cfg->json = b;
        else if (o->id == O_FULL)
            cfg->full = b;
        else if (o->id == O_DRY_RUN)
            cfg->dry_run = b;
        else if (o->id == O_ACCEPT_TYPOS)
            cfg->accept_typos = b;
        else if (o->id == O_MIRROR)
            cfg->mirror = b;
        else if (o->id == O_NO_LISTEN)
            cfg->no_listen = b;
        else if (o->id == O_OPEN)
            cfg->open_browser = b;
        else if (o->id == O_NO_HTML)
            cfg->no_html = b;
        else
            cfg->device_flow = b;
        return 0;
    case O_API:
        if (cts_streq_nocase(value, "v3") || strcmp(value, "3") == 0)
            cfg->api = CTS_API_V3;
        else if (cts_streq_nocase(value, "v2") || strcmp(value, "2") == 0)
            cfg->api = CTS_API_V2;
        else
            return bad_value(ld, o, shown, "expected v2 or v3", err);
        ld->api_set = 1;
        return 0;
    case O_API_KEY: cts_opt_set_str(&cfg->api_key, value); return 0;
    case O_TOKEN:
        cts_opt_set_str(&cfg->token, value);
        ld->token_layer = (int)ld->layer;
        if (ld->layer == L_ARGV)
            ld->token_argv = 1;
        return 0;
    case O_TOKEN_FILE: cts_opt_set_path(ld, &cfg->token_file, value); return 0;
    case O_ACCOUNT:
        if (value[0] == '\0') {
            free(cfg->account);
            cfg->account = NULL;
        } else {
            cts_opt_set_str(&cfg->account, value);
        }
        return 0;
    case O_BASE_URL:
    case O_AUTH_URL: {
        /* Stored without trailing slashes so "{base}/path" joins cleanly,
         * and with the scheme in lower case ("HTTPS://" is the same URL);
         * whether it is an acceptable URL at all is a configuration
         * question, answered once by cts_config_check_url (exit 78). */
        size_t n = strlen(value), k;
        char **dst = o->id == O_BASE_URL ? &cfg->base_url : &cfg->auth_url;
        while (n > 0 && value[n - 1] == '/')
            n--;
        free(*dst);
        *dst = cts_xstrndup(value, n);
        k = strcspn(*dst, ":/?#");
        if ((*dst)[k] == ':')
            while (k-- > 0)
                (*dst)[k] = (char)tolower((unsigned char)(*dst)[k]);
        return 0;
    }
    case O_CONFIG: cts_opt_set_str(&cfg->config_file, value); return 0;
    case O_TIMEOUT:
        if (parse_double(value, 0.001, 86400, &d) != 0)
            return bad_value(ld, o, shown,
                             "expected seconds between 0.001 and 86400", err);
        cfg->timeout_ms = (long)(d * 1000.0 + 0.5);
        return 0;
    case O_LIST:
        if ((int)ld->layer != ld->lists_layer) {
            cts_opt_clear_lists(cfg);
            ld->lists_layer = (int)ld->layer;
        }
        cfg->lists =
            cts_xrealloc(cfg->lists, (cfg->nlists + 1) * sizeof(*cfg->lists));
        cfg->lists[cfg->nlists++] = cts_xstrdup(value);
        return 0;
    case O_MODE:
        if (strcmp(value, "upsert") == 0)
            cfg->mode = CTS_MODE_UPSERT;
        else if (strcmp(value, "create") == 0)
            cfg->mode = CTS_MODE_CREATE;
        else
            return bad_value(ld, o, shown, "expected upsert or create", err);
        return 0;
    case O_PERMISSION:
        if (cts_streq_nocase(value, "implicit"))
            cfg->permission = CTS_PERM_IMPLICIT;
        else if (cts_streq_nocase(value, "explicit"))
            cfg->permission = CTS_PERM_EXPLICIT;
        else
            return bad_value(ld, o, shown, "expected implicit or explicit",
                             err);
        return 0;
    case O_RATE:
        if (parse_double(value, 0, 100000, &d) != 0)
            return bad_value(ld, o, shown,
                             "expected requests per second, 0 (off) or "
                             "more, e.g. 4 or 0.5",
                             err);
        cfg->rate = d;
        return 0;
    case O_CONCURRENCY:
        if (cts_parse_long(value, 1, 1024, &l) != 0)
            return bad_value(ld, o, shown, "expected 1 to 1024", err);
        cfg->concurrency = l;
        return 0;
    case O_DAILY_QUOTA:
        if (cts_parse_long(value, 1, 1000000000L, &l) != 0)
            return bad_value(ld, o, shown, "expected 1 to 1000000000", err);
        cfg->daily_quota = l;
        return 0;
    case O_RETRIES:
        if (cts_parse_long(value, 0, 100, &l) != 0)
            return bad_value(ld, o, shown, "expected 0 to 100", err);
        cfg->retries = l;
        return 0;
    case O_REPORT: cts_opt_set_path(ld, &cfg->report, value); return 0;
    case O_SUMMARY: cts_opt_set_path(ld, &cfg->summary, value); return 0;
    case O_REJECTS: cts_opt_set_path(ld, &cfg->rejects, value); return 0;
    case O_HTML:
        /* A later layer's --html wins over an earlier no_html. */
        cts_opt_set_path(ld, &cfg->html, value);
        cfg->no_html = 0;
        return 0;
    case O_STATE: cts_opt_set_path(ld, &cfg->state_dir, value); return 0;
    case O_BULK:
        if (strcmp(value, "auto") == 0)
            cfg->bulk = CTS_BULK_AUTO;
        else if (strcmp(value, "never") == 0)
            cfg->bulk = CTS_BULK_NEVER;
        else if (strcmp(value, "always") == 0)
            cfg->bulk = CTS_BULK_ALWAYS;
        else
            return bad_value(ld, o, shown, "expected auto, never or always",
                             err);
        return 0;
    case O_BULK_THRESHOLD:
        if (cts_parse_long(value, 1, 1000000000L, &l) != 0)
            return bad_value(ld, o, shown, "expected 1 or more rows", err);
        cfg->bulk_threshold = l;
        return 0;
    case O_POLL_INTERVAL:
        if (cts_parse_long(value, 1, 3600, &l) != 0)
            return bad_value(ld, o, shown, "expected 1 to 3600 seconds", err);
        cfg->poll_interval_s = l;
        return 0;
    case O_MAX_REMOVALS:
        if (parse_cap(value, &cfg->max_removals_kind, &cfg->max_removals) != 0)
            return bad_value(ld, o, shown,
                             "expected a number of members (e.g. 50) or a "
                             "percentage of each list (e.g. 10%)",
                             err);
        return 0;
    case O_DELIMITER:
        if (parse_delimiter(value, &cfg->delimiter) != 0)
            return bad_value(ld, o, shown, "expected ',' ';' '|' or tab", err);
        return 0;
    case O_ENCODING:
        if (parse_encoding(value, &cfg->encoding) != 0)
            return bad_value(ld, o, shown,
                             "expected utf-8, cp1252, latin1 or auto", err);
        return 0;
    case O_MAP: {
        struct cts_map m;
        if (parse_map(value, &m, &why) != 0)
            return bad_value(ld, o, shown, why, err);
        if ((int)ld->layer != ld->maps_layer) {
            cts_opt_clear_maps(cfg);
            ld->maps_layer = (int)ld->layer;
        }
        cfg->maps =
            cts_xrealloc(cfg->maps, (cfg->nmaps + 1) * sizeof(*cfg->maps));
        cfg->maps[cfg->nmaps++] = m;
        return 0;
    }
    case O_REDIRECT_URI:
        cts_opt_set_str(&cfg->redirect_uri, value);
        /* In the config file, redirect_uri is the URI registered
         * for the app, so it is also what --redirect-uri is checked
         * against. */
        if (ld->layer == L_FILE)
            cts_opt_set_str(&cfg->registered_redirect_uri, value);
        return 0;
    case O_REGISTERED_REDIRECT_URI:
        cts_opt_set_str(&cfg->registered_redirect_uri, value);
        return 0;
    case O_CLIENT_SECRET:
        cts_opt_set_str(&cfg->client_secret, value);
        if (ld->layer == L_ARGV)
            ld->secret_argv = 1;
        return 0;
    case O_SCOPES: cts_opt_set_str(&cfg->scopes, value); return 0;
    case O_STATUS:
        if (cts_streq_nocase(value, "all"))
            cfg->export_status = CTS_EXPORT_ALL;
        else if (cts_streq_nocase(value, "active"))
            cfg->export_status = CTS_EXPORT_ACTIVE;
        else if (cts_streq_nocase(value, "unsubscribed"))
            cfg->export_status = CTS_EXPORT_UNSUBSCRIBED;
        else
            return bad_value(ld, o, shown,
                             "expected all, active or unsubscribed", err);
        return 0;
    case O_SINCE: {
        /* Kept as the UTC date-time the API is asked with. */
        char iso[32];
        long t = cts_consent_parse_time(value);
        if (t <= 0)
            return bad_value(ld, o, shown,
                             "expected a date YYYY-MM-DD or an ISO-8601 "
                             "date-time such as 2024-03-05T14:40:41Z",
                             err);
        cts_opt_set_str(&cfg->since,
                        cts_consent_format_time(t, iso, sizeof(iso)));
        return 0;
    }
    case O_OUTPUT: cts_opt_set_path(ld, &cfg->output, value); return 0;
    default: break;
    }
    return cts_error_setx(err, CTS_EUSAGE, CTS_EX_SOFTWARE,
                          "option --%s is not handled", o->name);
}
