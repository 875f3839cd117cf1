/*
 * cts_config.h — the resolved configuration of one run: credentials, CSV
 * intake, sending, results, state and OAuth options.
 *
 * config.c fills it from the command line, the environment, the config file
 * and the defaults (in that precedence) and validates it; every other module
 * only reads it.  All strings are owned by the struct and freed by
 * cts_config_free().
 */
#ifndef CTS_CONFIG_H
#define CTS_CONFIG_H

#include <stddef.h>

#include "cts_types.h"
#include "cts_util.h"

enum cts_command {
    CTS_CMD_NONE = 0,
    CTS_CMD_IMPORT,
    CTS_CMD_CHECK,
    CTS_CMD_LISTS,
    CTS_CMD_AUTH,
    CTS_CMD_EXPORT
};

/* export --status: which contacts. */
enum cts_export_status {
    CTS_EXPORT_ALL = 0,     /* every contact that is not deleted */
    CTS_EXPORT_ACTIVE,      /* permission implicit or explicit (v2 ACTIVE) */
    CTS_EXPORT_UNSUBSCRIBED /* permission unsubscribed (v2 OPTOUT) */
};

/* How --max-removals is given. */
enum cts_cap_kind {
    CTS_CAP_DEFAULT = 0, /* not given: 10% of each list */
    CTS_CAP_COUNT,       /* N members */
    CTS_CAP_PERCENT      /* P% of each list's members */
};

struct cts_config {
    enum cts_command command;

    /* credentials and account */
    enum cts_api api;
    char *api_key;
    char *token; /* from --token, env, or read from token_file */
    char *token_file;
    char *refresh_token;   /* v3, from token_file when present */
    long token_expires_at; /* unix time from token_file, 0 if unknown */
    char *client_secret;   /* --client-secret / CTCT_CLIENT_SECRET (auth) */
    char *account;
    char *base_url; /* without trailing slash */
    char *auth_url; /* without trailing slash */
    char *config_file;

    /* CSV intake */
    char **inputs; /* FILE... ("-" = stdin) */
    size_t ninputs;
    int delimiter; /* 0 = detect */
    enum cts_encoding encoding;
    struct cts_map *maps;
    size_t nmaps;
    int accept_typos; /* send addresses whose domain looks like a slip */

    /* sending */
    char **lists; /* --list ID, repeatable */
    size_t nlists;
    enum cts_mode mode;
    enum cts_permission permission; /* --permission, default implicit */
    double rate;                    /* requests/s; 0 = unlimited */
    long concurrency;
    long daily_quota;
    long retries;
    long timeout_ms; /* per request */
    int dry_run;
    enum cts_bulk bulk;
    long bulk_threshold;
    long poll_interval_s;
    /* --mirror: after the rows, members of each --list absent from the
     * input are taken off that list (cts_mirror.h) */
    int mirror;
    /* --max-removals N|P%: the most members a list may lose in one run;
     * CTS_CAP_DEFAULT (zero) is 10% of the list */
    enum cts_cap_kind max_removals_kind;
    double max_removals; /* members (COUNT) or percent (PERCENT) */

    /* results: report, summary, terminal output */
    char *report;      /* NULL = "<first input without .csv>.report.csv" */
    char *summary;     /* NULL = no summary file */
    char *rejects;     /* NULL = "<report base>.rejects.csv" beside the
                          report, written when a row needs a person */
    char *html;        /* --html: the HTML page; NULL = "<report>.html"
                          when stderr is a terminal (not --quiet) */
    int no_html;       /* --no-html: no page, even on a terminal */
    int outputs_known; /* every layer applied: report and summary are the
                          ones the user asked for, even if loading failed
                          later (the import then still writes them) */
    int quiet;
    int verbose;
    int progress; /* 1 when stderr is a terminal and not quiet */
    int json;     /* lists/check --json: machine-readable stdout */

    /* state directory (journal, fingerprints, quota) */
    char *state_dir;
    int full;

    /* export */
    enum cts_export_status export_status;
    char *since;  /* --since, as "YYYY-MM-DDTHH:MM:SSZ" (UTC); NULL = no
                     date limit */
    char *output; /* --output FILE; NULL = standard output */

    /* OAuth (`auth` command) */
    char *redirect_uri;
    char *registered_redirect_uri;
    int no_listen;
    int open_browser;
    int device_flow;
    char *scopes;

    /* Tests: a fixed "now" (unix seconds) from CTCT_SYNC_NOW, 0 = real clock.
     */
    long fixed_now;

    /* --help was given: main prints the command's usage and exits 0; the
     * rest of the struct is then only partly filled (no file, no env). */
    int help;
    /* The client_id recorded in the token file (v3), NULL if none; used to
     * refresh when --api-key is not given. */
    char *token_client_id;
};

/*
 * Parse argv for `command`'s options (argv[0] is the command name), merge in
 * the environment and the config file, apply defaults, validate.  On error
 * returns a negative code and fills err with a one-line message naming the
 * option and err->exit_code with 64 (usage) or 78 (configuration).
 * cfg is zeroed first; free with cts_config_free() in every case.
 */
int cts_config_load(struct cts_config *cfg, enum cts_command command, int argc,
                    char **argv, struct cts_error *err);
void cts_config_free(struct cts_config *cfg);

/* Current unix time, honouring cfg->fixed_now (cfg may be NULL). */
long cts_config_now(const struct cts_config *cfg);

/* "import", "check", "lists", "auth", "export" (static); NULL for CTS_CMD_NONE.
 */
const char *cts_command_name(enum cts_command command);
/* The command named by s, or CTS_CMD_NONE. */
enum cts_command cts_command_parse(const char *s);

/*
 * Refuse a URL we would send credentials to in clear text: only https://,
 * or http:// when the host is loopback (127.0.0.0/8, ::1, localhost).
 * `what` (borrowed) names the option in the message.  Returns 0 or
 * CTS_ECONFIG with err->exit_code 78.
 */
int cts_config_check_url(const char *what, const char *url,
                         struct cts_error *err);
/*
 * The same rule for the proxy libcurl would take from the environment
 * (http_proxy, all_proxy, ALL_PROXY; no_proxy/NO_PROXY exempts a host):
 * an http:// URL (loopback, by the rule above) must not be sent in clear
 * text through a proxy that is not loopback, unless that proxy is
 * https://.  An https:// URL is tunnelled (TLS end to end) and passes.
 * Returns 0 or CTS_ECONFIG with err->exit_code 78; the message names
 * the variable with the proxy's password masked.
 */
int cts_config_check_proxy(const char *what, const char *url,
                           struct cts_error *err);
/* 1 when host (no port, IPv6 without brackets) is a loopback name/address. */
int cts_host_is_loopback(const char *host);

/*
 * Refuse a secret-bearing file that group or others can access, like ssh:
 * "permissions 0644 for 'FILE' are too open; chmod 600 FILE".  Returns 0,
 * -errno when stat fails (message says so), or CTS_ECONFIG; err->exit_code
 * is 78 in both failure cases.
 */
int cts_config_check_perms(const char *path, struct cts_error *err);

/* Problems found together, most important first: each a paragraph (owned;
 * continuation lines begin with spaces) and the exit code it maps to. */
struct cts_config_problems {
    size_t n;
    struct cts_config_problem {
        int exit_code; /* 78, or 64 for options that cannot go together */
        char *text;
    } * v;
};
void cts_config_problems_init(struct cts_config_problems *p);
void cts_config_problems_free(struct cts_config_problems *p);

/*
 * Everything that would stop `ctct-sync auth`, found at once and before any
 * request: the redirect-URI diagnosis first (cts_redirect_check: the
 * authorization server's own URL, a mismatch with the registered URI, ...),
 * then --device on v2, a missing --api-key, a missing or unwritable
 * --token-file location, the v2 client secret, --scopes, and the URL and
 * proxy rules above for --auth-url and --base-url.  cts_config_load leaves
 * these to this function for `auth`.  Appends to out; returns the exit
 * code of the first problem, 0 when there is none.
 */
int cts_config_check_auth(const struct cts_config *cfg,
                          struct cts_config_problems *out);

#endif /* CTS_CONFIG_H */
