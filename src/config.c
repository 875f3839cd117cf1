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
#include "config_int.h"

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
        o = cts_opt_by_key(key);
        if (o == NULL || !o->in_file) {
            rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                                "%s: unknown setting '%s'", where, key);
            goto out;
        }
        ld->where = where;
        rc = cts_opt_apply(
            ld, o, o->arg == A_NONE && *value == '\0' ? "true" : value, err);
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
        rc = cts_opt_apply(ld, cts_opt_by_id(env_opts[i].id), v, err);
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
        cts_opt_set_str(&cfg->token, tok.access_token);
    if (tok.refresh_token != NULL)
        cts_opt_set_str(&cfg->refresh_token, tok.refresh_token);
    cfg->token_expires_at = tok.expires_at;
    if (tok.client_id != NULL)
        cts_opt_set_str(&cfg->token_client_id, tok.client_id);
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

/* getopt_long's table for the options this command takes; free() it. */
static struct option *long_options(enum cts_command command)
{
    struct option *lopts = cts_xcalloc(cts_nopts + 1, sizeof(*lopts));
    unsigned bit = 1u << command;
    size_t i, n = 0;

    for (i = 0; i < cts_nopts; i++) {
        if ((cts_opts[i].cmds & bit) == 0)
            continue;
        lopts[n].name = cts_opts[i].name;
        lopts[n].has_arg =
            cts_opts[i].arg == A_REQ ? required_argument : no_argument;
        lopts[n].flag = NULL;
        lopts[n].val = cts_opts[i].id;
        n++;
    }
    return lopts; /* calloc: the last entry is all zero */
}

/* Parse argv into pairs (borrowed) and positional inputs.  getopt_long
 * keeps global state, so optind is reset to 0 (glibc: full re-init) and
 * error printing is off: our messages name the option in one line. */
static int parse_argv(enum cts_command command, int argc, char **argv,
                      const struct option *lopts, struct argv_pair **pairs,
                      size_t *npairs, struct cts_config *cfg,
                      struct cts_error *err)
{
    size_t i;
    int c, rc = 0;
    unsigned bit = 1u << command;

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
                    const struct opt_def *o = cts_opt_by_key(name + 2);
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
        (*pairs)[*npairs].o = cts_opt_by_id(c);
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
    case CTS_CMD_EXPORT: return "export";
    default: return NULL;
    }
}

enum cts_command cts_command_parse(const char *s)
{
    int c;
    if (s == NULL)
        return CTS_CMD_NONE;
    for (c = CTS_CMD_IMPORT; c <= CTS_CMD_EXPORT; c++)
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
    /* Only v2 calls need the key (auth's problems: config_check.c). */
    return cts_error_setx(
        err, CTS_ECONFIG, CTS_EX_CONFIG,
        "no API key: the v2 API needs --api-key (or CTCT_API_KEY, or api_key "
        "in the config file) — create one on the Constant Contact developer "
        "portal (https://app.constantcontact.com/pages/dma/portal/); to try "
        "the tool without an account, run `make demo` or use the sandbox's "
        "demo account");
}

int cts_config_load(struct cts_config *cfg, enum cts_command command, int argc,
                    char **argv, struct cts_error *err)
{
    struct loader ld;
    struct argv_pair *pairs = NULL;
    struct option *lopts;
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

    lopts = long_options(command);
    rc = parse_argv(command, argc, argv, lopts, &pairs, &npairs, cfg, err);
    free(lopts);
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
        cts_opt_set_path(&ld, &cfile, env);
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
        rc = cts_opt_apply(&ld, pairs[i].o, pairs[i].o->arg == A_NONE ? "1" : v,
                           err);
        if (rc != 0)
            goto out;
    }
    cfg->outputs_known = 1;
    /* An export takes its lists from its own command line: a config
     * file's `list =` is the import's, and would hide every other contact
     * (the unsubscribed are on no list at all). */
    if (command == CTS_CMD_EXPORT && ld.lists_layer != L_ARGV)
        cts_opt_clear_lists(cfg);

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
    if (cfg->state_dir == NULL)
        cfg->state_dir = default_state_dir();
    cfg->progress = !cfg->quiet && isatty(STDERR_FILENO);

    /* `auth` reports every problem of its configuration at once, the
     * redirect URI's first (cts_config_check_auth, which cts_cmd_auth runs
     * before anything else): the URL rules and the credentials are left to
     * it.  The other commands stop at the first one. */
    if (command != CTS_CMD_AUTH) {
        /* A v3 token file may hold only a refresh token: the account
         * check then refreshes before anything else. */
        int have_token = cfg->token != NULL ||
                         (cfg->api == CTS_API_V3 && cfg->refresh_token != NULL);
        rc = cts_config_check_url("--base-url", cfg->base_url, err);
        if (rc == 0)
            rc = cts_config_check_url("--auth-url", cfg->auth_url, err);
        if (rc == 0)
            rc = cts_config_check_proxy("--base-url", cfg->base_url, err);
        if (rc == 0)
            rc = cts_config_check_proxy("--auth-url", cfg->auth_url, err);
        if (rc != 0)
            goto out;
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
    cts_opt_clear_maps(cfg);
    cts_opt_clear_lists(cfg);
    free(cfg->report);
    free(cfg->summary);
    free(cfg->rejects);
    free(cfg->html);
    free(cfg->state_dir);
    free(cfg->redirect_uri);
    free(cfg->registered_redirect_uri);
    free(cfg->scopes);
    free(cfg->since);
    free(cfg->output);
    free(cfg->token_client_id);
    memset(cfg, 0, sizeof(*cfg));
}
