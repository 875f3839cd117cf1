/*
 * config.c — command line, environment, config file and defaults → one
 * validated struct cts_config (precedence argv > env > file > defaults).
 *
 * How the layers are merged: argv is parsed first (getopt_long) into a
 * list of (option, value) pairs without touching cfg, because it may name
 * the config file; then the config file, the environment and the argv pairs
 * are applied in that order, each one overwriting what the layer below set.
 * Repeatable options (--list, --map) accumulate within a layer, and the
 * first value from a higher layer replaces the lower layer's set.
 */
#include "cts_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cts_contact.h"
#include "cts_fsio.h"
#include "cts_redirect.h"
#include "cts_secret.h"
#include "cts_tokenfile.h"

/* ---- the option table ---- */

enum opt_id {
    O_HELP = 'h',
    O_QUIET = 'q',
    O_VERBOSE = 'v',
    O_API = 256,
    O_API_KEY,
    O_TOKEN,
    O_TOKEN_FILE,
    O_ACCOUNT,
    O_BASE_URL,
    O_AUTH_URL,
    O_CONFIG,
    O_TIMEOUT,
    O_JSON,
    O_LIST,
    O_MODE,
    O_PERMISSION,
    O_RATE,
    O_CONCURRENCY,
    O_DAILY_QUOTA,
    O_RETRIES,
    O_REPORT,
    O_SUMMARY,
    O_STATE,
    O_FULL,
    O_BULK,
    O_BULK_THRESHOLD,
    O_POLL_INTERVAL,
    O_DRY_RUN,
    O_DELIMITER,
    O_ENCODING,
    O_MAP,
    O_REDIRECT_URI,
    O_REGISTERED_REDIRECT_URI,
    O_NO_LISTEN,
    O_OPEN,
    O_DEVICE,
    O_CLIENT_SECRET,
    O_SCOPES
};

#define C_IMPORT (1u << CTS_CMD_IMPORT)
#define C_CHECK  (1u << CTS_CMD_CHECK)
#define C_LISTS  (1u << CTS_CMD_LISTS)
#define C_AUTH   (1u << CTS_CMD_AUTH)
#define C_ALL    (C_IMPORT | C_CHECK | C_LISTS | C_AUTH)

enum { A_NONE = 0, A_REQ = 1 };

struct opt_def {
    const char *name;
    int id;
    int arg;       /* A_NONE: a flag; A_REQ: takes a value */
    unsigned cmds; /* which commands accept it on the command line */
    int in_file;   /* may appear in the config file */
};

static const struct opt_def opts[] = {
    {"help", O_HELP, A_NONE, C_ALL, 0},
    {"quiet", O_QUIET, A_NONE, C_ALL, 1},
    {"verbose", O_VERBOSE, A_NONE, C_ALL, 1},
    {"api", O_API, A_REQ, C_ALL, 1},
    {"api-key", O_API_KEY, A_REQ, C_ALL, 1},
    {"token", O_TOKEN, A_REQ, C_IMPORT | C_CHECK | C_LISTS, 1},
    {"token-file", O_TOKEN_FILE, A_REQ, C_ALL, 1},
    {"account", O_ACCOUNT, A_REQ, C_ALL, 1},
    {"base-url", O_BASE_URL, A_REQ, C_ALL, 1},
    {"auth-url", O_AUTH_URL, A_REQ, C_ALL, 1},
    {"config", O_CONFIG, A_REQ, C_ALL, 0},
    {"timeout", O_TIMEOUT, A_REQ, C_ALL, 1},
    {"json", O_JSON, A_NONE, C_CHECK | C_LISTS, 0},
    {"list", O_LIST, A_REQ, C_IMPORT, 1},
    {"mode", O_MODE, A_REQ, C_IMPORT, 1},
    {"permission", O_PERMISSION, A_REQ, C_IMPORT, 1},
    {"rate", O_RATE, A_REQ, C_IMPORT, 1},
    {"concurrency", O_CONCURRENCY, A_REQ, C_IMPORT, 1},
    {"daily-quota", O_DAILY_QUOTA, A_REQ, C_IMPORT, 1},
    {"retries", O_RETRIES, A_REQ, C_IMPORT, 1},
    {"report", O_REPORT, A_REQ, C_IMPORT, 1},
    {"summary", O_SUMMARY, A_REQ, C_IMPORT, 1},
    {"state", O_STATE, A_REQ, C_IMPORT, 1},
    {"full", O_FULL, A_NONE, C_IMPORT, 1},
    {"bulk", O_BULK, A_REQ, C_IMPORT, 1},
    {"bulk-threshold", O_BULK_THRESHOLD, A_REQ, C_IMPORT, 1},
    {"poll-interval", O_POLL_INTERVAL, A_REQ, C_IMPORT, 1},
    {"dry-run", O_DRY_RUN, A_NONE, C_IMPORT, 1},
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
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt_def *opt_by_id(int id)
{
    size_t i;
    for (i = 0; i < NOPTS; i++)
        if (opts[i].id == id)
            return &opts[i];
    return NULL;
}

/* Config-file keys: the long option name with '_' or '-' alike. */
static const struct opt_def *opt_by_key(const char *key)
{
    size_t i, j;
    for (i = 0; i < NOPTS; i++) {
        const char *n = opts[i].name;
        for (j = 0; n[j] != '\0' && key[j] != '\0'; j++) {
            char k = key[j] == '_' ? '-' : key[j];
            if (k != n[j])
                break;
        }
        if (n[j] == '\0' && key[j] == '\0')
            return &opts[i];
    }
    return NULL;
}

/* ---- layers ---- */

enum layer { L_DEFAULT = 0, L_FILE, L_ENV, L_ARGV };

struct loader {
    struct cts_config *cfg;
    enum layer layer;
    const char *where; /* "FILE:LINE" for file values, env name for env */
    int lists_layer;   /* layer that set the current cfg->lists, -1 none */
    int maps_layer;
    int api_set;     /* api came from a layer (not the token file) */
    int token_layer; /* layer of token / token_file, -1 none */
    int token_argv;  /* --token was on the command line */
    int secret_argv; /* --client-secret was on the command line */
};

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

static void set_str(char **dst, const char *value)
{
    free(*dst);
    *dst = cts_xstrdup(value);
}

/* Paths from the config file or the environment get "~/" expanded, as the
 * shell does for the command line. */
static void set_path(const struct loader *ld, char **dst, const char *value)
{
    const char *home = getenv("HOME");
    if (ld->layer != L_ARGV && strncmp(value, "~/", 2) == 0 && home != NULL &&
        home[0] == '/') {
        free(*dst);
        *dst = cts_xasprintf("%s%s", home, value + 1);
        return;
    }
    set_str(dst, value);
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

static void clear_lists(struct cts_config *cfg)
{
    size_t i;
    for (i = 0; i < cfg->nlists; i++)
        free(cfg->lists[i]);
    free(cfg->lists);
    cfg->lists = NULL;
    cfg->nlists = 0;
}

static void clear_maps(struct cts_config *cfg)
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

/* Apply one option value from the loader's current layer. */
static int apply(struct loader *ld, const struct opt_def *o, const char *value,
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
    case O_NO_LISTEN:
    case O_OPEN:
    case O_DEVICE:
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
        else if (o->id == O_NO_LISTEN)
            cfg->no_listen = b;
        else if (o->id == O_OPEN)
            cfg->open_browser = b;
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
    case O_API_KEY: set_str(&cfg->api_key, value); return 0;
    case O_TOKEN:
        set_str(&cfg->token, value);
        ld->token_layer = (int)ld->layer;
        if (ld->layer == L_ARGV)
            ld->token_argv = 1;
        return 0;
    case O_TOKEN_FILE: set_path(ld, &cfg->token_file, value); return 0;
    case O_ACCOUNT:
        if (value[0] == '\0') {
            free(cfg->account);
            cfg->account = NULL;
        } else {
            set_str(&cfg->account, value);
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
    case O_CONFIG: set_str(&cfg->config_file, value); return 0;
    case O_TIMEOUT:
        if (parse_double(value, 0.001, 86400, &d) != 0)
            return bad_value(ld, o, shown,
                             "expected seconds between 0.001 and 86400", err);
        cfg->timeout_ms = (long)(d * 1000.0 + 0.5);
        return 0;
    case O_LIST:
        if ((int)ld->layer != ld->lists_layer) {
            clear_lists(cfg);
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
    case O_REPORT: set_path(ld, &cfg->report, value); return 0;
    case O_SUMMARY: set_path(ld, &cfg->summary, value); return 0;
    case O_STATE: set_path(ld, &cfg->state_dir, value); return 0;
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
            clear_maps(cfg);
            ld->maps_layer = (int)ld->layer;
        }
        cfg->maps =
            cts_xrealloc(cfg->maps, (cfg->nmaps + 1) * sizeof(*cfg->maps));
        cfg->maps[cfg->nmaps++] = m;
        return 0;
    }
    case O_REDIRECT_URI:
        set_str(&cfg->redirect_uri, value);
        /* In the config file, redirect_uri is the URI registered
         * for the app, so it is also what --redirect-uri is checked
         * against. */
        if (ld->layer == L_FILE)
            set_str(&cfg->registered_redirect_uri, value);
        return 0;
    case O_REGISTERED_REDIRECT_URI:
        set_str(&cfg->registered_redirect_uri, value);
        return 0;
    case O_CLIENT_SECRET:
        set_str(&cfg->client_secret, value);
        if (ld->layer == L_ARGV)
            ld->secret_argv = 1;
        return 0;
    case O_SCOPES: set_str(&cfg->scopes, value); return 0;
    default: break;
    }
    return cts_error_setx(err, CTS_EUSAGE, CTS_EX_SOFTWARE,
                          "option --%s is not handled", o->name);
}

/* ---- defaults ---- */

static char *home_dir(void)
{
    const char *h = getenv("HOME");
    return cts_xstrdup(h != NULL && h[0] == '/' ? h : ".");
}

static char *default_config_path(void)
{
    const char *x = getenv("XDG_CONFIG_HOME");
    char *home, *p;
    if (x != NULL && x[0] == '/')
        return cts_xasprintf("%s/ctct-sync/config", x);
    home = home_dir();
    p = cts_xasprintf("%s/.config/ctct-sync/config", home);
    free(home);
    return p;
}

static char *default_state_dir(void)
{
    const char *x = getenv("XDG_STATE_HOME");
    char *home, *p;
    if (x != NULL && x[0] == '/')
        return cts_xasprintf("%s/ctct-sync", x);
    home = home_dir();
    p = cts_xasprintf("%s/.local/state/ctct-sync", home);
    free(home);
    return p;
}

static void set_defaults(struct cts_config *cfg, enum cts_command command)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->command = command;
    cfg->api = CTS_API_V3;
    cfg->rate = 4.0;
    cfg->concurrency = 4;
    cfg->daily_quota = 10000;
    cfg->retries = 6;
    cfg->timeout_ms = 30000;
    cfg->bulk = CTS_BULK_AUTO;
    cfg->bulk_threshold = 1000;
    cfg->poll_interval_s = 10;
    cfg->mode = CTS_MODE_UPSERT;
    cfg->permission = CTS_PERM_IMPLICIT;
}

/* ---- the config file ---- */

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* A config file holds a few dozen settings: anything bigger is a mistake
 * (or /dev/zero), refused before it costs memory. */
#define CONFIG_FILE_MAX (1024 * 1024)

static int load_file(struct loader *ld, const char *path, int explicit_path,
                     struct cts_error *err)
{
    char *text = NULL, *line, *next;
    size_t len = 0;
    long lineno = 0;
    char where[300];
    int fd, rc = 0;

    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT && !explicit_path)
            return 0; /* the default file is optional */
        return cts_error_setx(err, -e, CTS_EX_CONFIG,
                              "cannot read config file '%s': %s", path,
                              strerror(e));
    }
    rc = cts_config_check_perms(path, err);
    if (rc != 0)
        goto out;
    rc = cts_read_fd_max(fd, CONFIG_FILE_MAX, &text, &len);
    if (rc == CTS_ETOOBIG) {
        rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                            "config file '%s' is larger than 1 MiB; a config "
                            "file holds a few settings — is it the right "
                            "file?",
                            path);
        goto out;
    }
    if (rc != 0) {
        rc = cts_error_setx(err, rc, CTS_EX_CONFIG,
                            "cannot read config file '%s': %s", path,
                            cts_strerror(rc));
        goto out;
    }
    ld->layer = L_FILE;
    for (line = text; line != NULL && rc == 0; line = next) {
        char *s, *eq, *key, *value;
        const struct opt_def *o;
        next = memchr(line, '\n', len - (size_t)(line - text));
        if (next != NULL)
            *next++ = '\0';
        else if (*line == '\0')
            break;
        lineno++;
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        snprintf(where, sizeof(where), "%s:%ld", path, lineno);
        eq = strchr(s, '=');
        if (eq == NULL) {
            rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                                "%s: expected 'name = value'", where);
            goto out;
        }
        *eq = '\0';
        key = trim(s);
        value = trim(eq + 1);
        /* Optional quotes around a value, as in many config dialects. */
        if (strlen(value) >= 2 &&
            ((value[0] == '"' && value[strlen(value) - 1] == '"') ||
             (value[0] == '\'' && value[strlen(value) - 1] == '\''))) {
            value[strlen(value) - 1] = '\0';
            value++;
        }
        o = opt_by_key(key);
        if (o == NULL || !o->in_file) {
            rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                                "%s: unknown setting '%s'", where, key);
            goto out;
        }
        ld->where = where;
        rc = apply(ld, o, o->arg == A_NONE && *value == '\0' ? "true" : value,
                   err);
    }
out:
    if (text != NULL) {
        /* It may hold an api_key or a client secret. */
        memset(text, 0, len);
        free(text);
    }
    close(fd);
    ld->where = NULL;
    return rc;
}

/* ---- the environment ---- */

static const struct {
    const char *env;
    int id;
} env_opts[] = {
    {"CTCT_API", O_API},
    {"CTCT_API_KEY", O_API_KEY},
    {"CTCT_ACCESS_TOKEN", O_TOKEN},
    {"CTCT_TOKEN_FILE", O_TOKEN_FILE},
    {"CTCT_ACCOUNT", O_ACCOUNT},
    {"CTCT_BASE_URL", O_BASE_URL},
    {"CTCT_AUTH_URL", O_AUTH_URL},
    {"CTCT_CLIENT_SECRET", O_CLIENT_SECRET},
    {"CTCT_PERMISSION", O_PERMISSION},
};

static int load_env(struct loader *ld, struct cts_error *err)
{
    size_t i;
    int rc;
    ld->layer = L_ENV;
    for (i = 0; i < sizeof(env_opts) / sizeof(env_opts[0]); i++) {
        const char *v = getenv(env_opts[i].env);
        if (v == NULL || *v == '\0')
            continue;
        ld->where = env_opts[i].env;
        rc = apply(ld, opt_by_id(env_opts[i].id), v, err);
        if (rc != 0)
            return rc;
    }
    ld->where = NULL;
    return 0;
}

/* ---- the token file ---- */

/* Fill the token fields from the token file (cts_tokenfile_read: JSON or
 * a bare one-line token, refused when group/others can read it). */
static int read_token_file(struct loader *ld, const char *path,
                           struct cts_error *err)
{
    struct cts_config *cfg = ld->cfg;
    struct cts_tokens tok;
    struct stat st;
    int rc;

    /* A missing file is the common first-run mistake: say how to get one. */
    if (stat(path, &st) != 0 && errno == ENOENT)
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "token file '%s' does not exist; get a token "
                              "with `ctct-sync auth --api %s --api-key KEY "
                              "--token-file %s`",
                              path, cfg->api == CTS_API_V2 ? "v2" : "v3", path);
    /* Same words as for the config file (ssh's), before reading a byte. */
    rc = cts_config_check_perms(path, err);
    if (rc != 0)
        return rc;
    rc = cts_tokenfile_read(path, &tok, err);
    if (rc != 0) {
        cts_tokens_free(&tok);
        if (err != NULL)
            err->exit_code = CTS_EX_CONFIG;
        return rc;
    }
    if (tok.access_token != NULL)
        set_str(&cfg->token, tok.access_token);
    if (tok.refresh_token != NULL)
        set_str(&cfg->refresh_token, tok.refresh_token);
    cfg->token_expires_at = tok.expires_at;
    if (tok.client_id != NULL)
        set_str(&cfg->token_client_id, tok.client_id);
    /* The file says which API generation issued the token; it counts only
     * when no layer chose --api. */
    if (tok.api != NULL && !ld->api_set) {
        if (strcmp(tok.api, "v2") == 0)
            cfg->api = CTS_API_V2;
        else if (strcmp(tok.api, "v3") == 0)
            cfg->api = CTS_API_V3;
    }
    cts_tokens_free(&tok);
    return 0;
}

/* ---- the command line ---- */

struct argv_pair {
    const struct opt_def *o;
    const char *value; /* borrowed from argv */
};

static int usage_error(enum cts_command command, struct cts_error *err,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int usage_error(enum cts_command command, struct cts_error *err,
                       const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cts_error_setx(err, CTS_EUSAGE, CTS_EX_USAGE,
                          "%s. Try 'ctct-sync %s --help'", msg,
                          cts_command_name(command));
}

/* Parse argv into pairs (borrowed) and positional inputs.  getopt_long
 * keeps global state, so optind is reset to 0 (glibc: full re-init) and
 * error printing is off: our messages name the option in one line. */
static int parse_argv(enum cts_command command, int argc, char **argv,
                      struct argv_pair **pairs, size_t *npairs,
                      struct cts_config *cfg, struct cts_error *err)
{
    struct option lopts[NOPTS + 1];
    size_t i, n = 0;
    int c, rc = 0;
    unsigned bit = 1u << command;

    for (i = 0; i < NOPTS; i++) {
        if ((opts[i].cmds & bit) == 0)
            continue;
        lopts[n].name = opts[i].name;
        lopts[n].has_arg =
            opts[i].arg == A_REQ ? required_argument : no_argument;
        lopts[n].flag = NULL;
        lopts[n].val = opts[i].id;
        n++;
    }
    memset(&lopts[n], 0, sizeof(lopts[n]));

    *pairs = cts_xcalloc((size_t)argc + 1, sizeof(**pairs));
    *npairs = 0;
    optind = 0;
    opterr = 0;
    for (;;) {
        int longidx = -1;
        c = getopt_long(argc, argv, ":hqv", lopts, &longidx);
        if (c == -1)
            break;
        if (c == '?') {
            const char *bad = argv[optind - 1];
            if (optopt != 0 && optopt < 256) {
                char s[3] = {'-', (char)optopt, '\0'};
                return usage_error(command, err, "unknown option '%s'", s);
            }
            if (bad != NULL && strncmp(bad, "--", 2) == 0) {
                /* Show the option without any "=value" (it may be a
                 * secret). */
                char name[100];
                size_t k = strcspn(bad, "=");
                snprintf(name, sizeof(name), "%.*s", (int)(k < 90 ? k : 90),
                         bad);
                {
                    const struct opt_def *o = opt_by_key(name + 2);
                    if (o != NULL && (o->cmds & bit) == 0)
                        return usage_error(command, err,
                                           "option '%s' is not used by "
                                           "'ctct-sync %s'",
                                           name, cts_command_name(command));
                }
                return usage_error(command, err,
                                   "unknown or ambiguous option '%s'", name);
            }
            return usage_error(command, err, "unknown option '%s'",
                               bad != NULL ? bad : "?");
        }
        if (c == ':') {
            const char *bad = argv[optind - 1];
            char name[100];
            size_t k = bad != NULL ? strcspn(bad, "=") : 0;
            snprintf(name, sizeof(name), "%.*s", (int)(k < 90 ? k : 90),
                     bad != NULL ? bad : "?");
            return usage_error(command, err, "option '%s' needs a value", name);
        }
        (*pairs)[*npairs].o = opt_by_id(c);
        (*pairs)[*npairs].value = optarg;
        (*npairs)++;
        if (c == O_HELP)
            cfg->help = 1;
    }
    if (cfg->help)
        return 0;
    if (optind < argc) {
        if (command != CTS_CMD_IMPORT)
            return usage_error(command, err, "unexpected argument '%s'",
                               argv[optind]);
        cfg->ninputs = (size_t)(argc - optind);
        cfg->inputs = cts_xcalloc(cfg->ninputs, sizeof(*cfg->inputs));
        for (i = 0; i < cfg->ninputs; i++)
            cfg->inputs[i] = cts_xstrdup(argv[optind + (int)i]);
    }
    return rc;
}

/* ---- public ---- */

const char *cts_command_name(enum cts_command command)
{
    switch (command) {
    case CTS_CMD_IMPORT: return "import";
    case CTS_CMD_CHECK: return "check";
    case CTS_CMD_LISTS: return "lists";
    case CTS_CMD_AUTH: return "auth";
    default: return NULL;
    }
}

enum cts_command cts_command_parse(const char *s)
{
    int c;
    if (s == NULL)
        return CTS_CMD_NONE;
    for (c = CTS_CMD_IMPORT; c <= CTS_CMD_AUTH; c++)
        if (strcmp(s, cts_command_name((enum cts_command)c)) == 0)
            return (enum cts_command)c;
    return CTS_CMD_NONE;
}

long cts_config_now(const struct cts_config *cfg)
{
    if (cfg != NULL && cfg->fixed_now > 0)
        return cfg->fixed_now;
    return (long)time(NULL);
}

static int missing_credentials(const struct cts_config *cfg,
                               struct cts_error *err)
{
    const char *api = cfg->api == CTS_API_V2 ? "v2" : "v3";
    if (cfg->token == NULL)
        return cts_error_setx(
            err, CTS_ECONFIG, CTS_EX_CONFIG,
            "no access token: run `ctct-sync auth --api %s --api-key KEY "
            "--token-file FILE` to get one, then pass --token-file FILE "
            "(or set CTCT_TOKEN_FILE / CTCT_ACCESS_TOKEN); to try the tool "
            "without an account, run `make demo` or use the sandbox's demo "
            "account (see doc/sandbox.md)",
            api);
    return cts_error_setx(
        err, CTS_ECONFIG, CTS_EX_CONFIG,
        "no API key: %s needs --api-key (or CTCT_API_KEY, or api_key in the "
        "config file) — create one on the Constant Contact developer portal "
        "(https://app.constantcontact.com/pages/dma/portal/); to try the "
        "tool without an account, run `make demo` or use the sandbox's demo "
        "account",
        cfg->api == CTS_API_V2 ? "the v2 API" : "`ctct-sync auth`");
}

int cts_config_load(struct cts_config *cfg, enum cts_command command, int argc,
                    char **argv, struct cts_error *err)
{
    struct loader ld;
    struct argv_pair *pairs = NULL;
    size_t npairs = 0, i;
    char *cfile = NULL;
    int explicit_cfile = 0;
    const char *env;
    int rc;

    set_defaults(cfg, command);
    memset(&ld, 0, sizeof(ld));
    ld.cfg = cfg;
    ld.lists_layer = -1;
    ld.maps_layer = -1;
    ld.token_layer = -1;

    if (command == CTS_CMD_NONE || argc < 1) {
        rc = cts_error_setx(err, CTS_EUSAGE, CTS_EX_USAGE, "no command");
        goto out;
    }

    rc = parse_argv(command, argc, argv, &pairs, &npairs, cfg, err);
    if (rc != 0 || cfg->help)
        goto out;

    /* Which config file: --config > CTCT_CONFIG > the XDG default. */
    for (i = 0; i < npairs; i++)
        if (pairs[i].o->id == O_CONFIG) {
            free(cfile);
            cfile = cts_xstrdup(pairs[i].value);
            explicit_cfile = 1;
        }
    env = getenv("CTCT_CONFIG");
    if (cfile == NULL && env != NULL && *env != '\0') {
        ld.layer = L_ENV;
        set_path(&ld, &cfile, env);
        explicit_cfile = 1;
    }
    if (cfile == NULL)
        cfile = default_config_path();
    rc = load_file(&ld, cfile, explicit_cfile, err);
    if (rc != 0)
        goto out;
    cfg->config_file = cfile;
    cfile = NULL;

    rc = load_env(&ld, err);
    if (rc != 0)
        goto out;

    ld.layer = L_ARGV;
    for (i = 0; i < npairs; i++) {
        const char *v = pairs[i].value;
        if (pairs[i].o->id == O_CONFIG)
            continue;
        rc = apply(&ld, pairs[i].o, pairs[i].o->arg == A_NONE ? "1" : v, err);
        if (rc != 0)
            goto out;
    }
    cfg->outputs_known = 1;

    env = getenv("CTCT_SYNC_NOW");
    if (env != NULL && *env != '\0') {
        long now;
        if (cts_parse_long(env, 1, 100000000000L, &now) != 0) {
            rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                                "invalid value '%s' for CTCT_SYNC_NOW: "
                                "expected unix seconds",
                                env);
            goto out;
        }
        cfg->fixed_now = now;
    }

    if (cfg->verbose && cfg->quiet)
        cfg->verbose = 0; /* --quiet wins: cron wants errors only */

    /* Usage errors come before configuration errors. */
    if (command == CTS_CMD_IMPORT && cfg->ninputs == 0) {
        rc = usage_error(command, err, "%s",
                         "no input: give one or more CSV FILEs ('-' for "
                         "standard input)");
        goto out;
    }
    if (command == CTS_CMD_IMPORT && cfg->nlists == 0) {
        rc = usage_error(command, err, "%s",
                         "import needs at least one --list ID (see "
                         "'ctct-sync lists' for the ids)");
        goto out;
    }

    /* The token file fills the token only when no layer gave one: a
     * --token is an explicit choice.  `auth` writes the file, never reads
     * it here. */
    if (cfg->token == NULL && cfg->token_file != NULL &&
        command != CTS_CMD_AUTH) {
        rc = read_token_file(&ld, cfg->token_file, err);
        if (rc != 0)
            goto out;
    }

    if (cfg->base_url == NULL)
        cfg->base_url = cts_xstrdup(cfg->api == CTS_API_V2
                                        ? "https://api.constantcontact.com/v2"
                                        : "https://api.cc.email/v3");
    if (cfg->auth_url == NULL)
        cfg->auth_url = cts_xstrdup(
            cfg->api == CTS_API_V2
                ? "https://oauth2.constantcontact.com/oauth2"
                : "https://authz.constantcontact.com/oauth2/default/v1");
    rc = cts_config_check_url("--base-url", cfg->base_url, err);
    if (rc != 0)
        goto out;
    rc = cts_config_check_url("--auth-url", cfg->auth_url, err);
    if (rc != 0)
        goto out;
    rc = cts_config_check_proxy("--base-url", cfg->base_url, err);
    if (rc == 0)
        rc = cts_config_check_proxy("--auth-url", cfg->auth_url, err);
    if (rc != 0)
        goto out;
    if (cfg->state_dir == NULL)
        cfg->state_dir = default_state_dir();
    cfg->progress = !cfg->quiet && isatty(STDERR_FILENO);

    if (command == CTS_CMD_AUTH) {
        if (cfg->api_key == NULL) {
            rc = missing_credentials(cfg, err);
            goto out;
        }
    } else {
        /* A v3 token file may hold only a refresh token: the account
         * check then refreshes before anything else. */
        int have_token = cfg->token != NULL ||
                         (cfg->api == CTS_API_V3 && cfg->refresh_token != NULL);
        if (!have_token || (cfg->api == CTS_API_V2 && cfg->api_key == NULL)) {
            rc = missing_credentials(cfg, err);
            goto out;
        }
    }

    /* Warn once, after validation, so a failing command line stays one
     * line. */
    if (!cfg->quiet && ld.token_argv)
        cts_log_warn("--token on the command line is visible to other "
                     "users in `ps`; prefer --token-file or "
                     "CTCT_ACCESS_TOKEN");
    if (!cfg->quiet && ld.secret_argv)
        cts_log_warn("--client-secret on the command line is visible to "
                     "other users in `ps`; prefer CTCT_CLIENT_SECRET or the "
                     "config file");
    rc = 0;
out:
    free(pairs);
    free(cfile);
    return rc;
}

void cts_config_free(struct cts_config *cfg)
{
    size_t i;
    if (cfg == NULL)
        return;
    free(cfg->api_key);
    free(cfg->token);
    free(cfg->token_file);
    free(cfg->refresh_token);
    free(cfg->client_secret);
    free(cfg->account);
    free(cfg->base_url);
    free(cfg->auth_url);
    free(cfg->config_file);
    for (i = 0; i < cfg->ninputs; i++)
        free(cfg->inputs[i]);
    free(cfg->inputs);
    clear_maps(cfg);
    clear_lists(cfg);
    free(cfg->report);
    free(cfg->summary);
    free(cfg->state_dir);
    free(cfg->redirect_uri);
    free(cfg->registered_redirect_uri);
    free(cfg->scopes);
    free(cfg->token_client_id);
    memset(cfg, 0, sizeof(*cfg));
}
