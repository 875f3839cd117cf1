/*
 * config_int.h — what config.c (the layers: defaults, file, environment,
 * argv) and config_opt.c (the option table and what each value does)
 * share.  Private to those two files.
 */
#ifndef CTS_CONFIG_INT_H
#define CTS_CONFIG_INT_H

#include <stddef.h>

#include "cts_config.h"

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
    O_REJECTS,
    O_HTML,
    O_NO_HTML,
    O_STATE,
    O_FULL,
    O_BULK,
    O_BULK_THRESHOLD,
    O_POLL_INTERVAL,
    O_MIRROR,
    O_MAX_REMOVALS,
    O_DRY_RUN,
    O_ACCEPT_TYPOS,
    O_DELIMITER,
    O_ENCODING,
    O_MAP,
    O_REDIRECT_URI,
    O_REGISTERED_REDIRECT_URI,
    O_NO_LISTEN,
    O_OPEN,
    O_DEVICE,
    O_CLIENT_SECRET,
    O_SCOPES,
    O_STATUS,
    O_SINCE,
    O_OUTPUT
};

enum { A_NONE = 0, A_REQ = 1 };

struct opt_def {
    const char *name;
    int id;
    int arg;       /* A_NONE: a flag; A_REQ: takes a value */
    unsigned cmds; /* which commands accept it on the command line */
    int in_file;   /* may appear in the config file */
};

extern const struct opt_def cts_opts[];
extern const size_t cts_nopts;

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

/* The option with this id (getopt's val), or NULL. */
const struct opt_def *cts_opt_by_id(int id);

/* Config-file keys: the long option name with '_' or '-' alike; NULL when
 * no option has that name. */
const struct opt_def *cts_opt_by_key(const char *key);

/* Apply one option value from the loader's current layer. */
int cts_opt_apply(struct loader *ld, const struct opt_def *o, const char *value,
                  struct cts_error *err);

/* *dst = a copy of value (the old one freed). */
void cts_opt_set_str(char **dst, const char *value);

/* Like cts_opt_set_str; paths from the config file or the environment
 * get "~/" expanded, as the shell does for the command line. */
void cts_opt_set_path(const struct loader *ld, char **dst, const char *value);

/* Free and forget cfg->lists / cfg->maps. */
void cts_opt_clear_lists(struct cts_config *cfg);
void cts_opt_clear_maps(struct cts_config *cfg);

#endif /* CTS_CONFIG_INT_H */
