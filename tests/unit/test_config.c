/* test_config.c — option parsing table, precedence (argv > env > file >
 * defaults), config file syntax and permissions, token file, loopback
 * rule, and that secrets never appear in error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cts_config.h"

static char tmpdir[256];

static const char *const env_names[] = {
    "CTCT_API",        "CTCT_API_KEY",   "CTCT_ACCESS_TOKEN",
    "CTCT_TOKEN_FILE", "CTCT_ACCOUNT",   "CTCT_BASE_URL",
    "CTCT_AUTH_URL",   "CTCT_CONFIG",    "CTCT_CLIENT_SECRET",
    "CTCT_SYNC_NOW",   "CTCT_PERMISSION"};

static void clear_env(void)
{
    size_t i;
    for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
}

static int setup(void **state)
{
    char *d;
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/cts-config-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    d = mkdtemp(tmpdir);
    assert_non_null(d);
    /* Never read the user's real config. */
    setenv("XDG_CONFIG_HOME", tmpdir, 1);
    setenv("XDG_STATE_HOME", tmpdir, 1);
    clear_env();
    return 0;
}

static int teardown(void **state)
{
    char cmd[400];
    (void)state;
    clear_env();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

/* Write a file under tmpdir with the given mode; returns its path
 * (static buffer per call site is fine for these tests). */
static const char *write_file(const char *name, const char *text, int mode)
{
    static char path[2][400];
    static int which;
    FILE *f;
    char *p = path[which++ % 2];
    snprintf(p, 400, "%s/%s", tmpdir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, (mode_t)mode), 0);
    return p;
}

/* Write the default config file ($XDG_CONFIG_HOME/ctct-sync/config). */
static void write_default_config(const char *text)
{
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/ctct-sync", tmpdir);
    mkdir(dir, 0700);
    write_file("ctct-sync/config", text, 0600);
}

/* Load with a NULL-terminated argument list (argv[0] = the command). */
static int load(struct cts_config *cfg, enum cts_command cmd,
                struct cts_error *err, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *a;
    argv[argc++] = (char *)cts_command_name(cmd);
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 63)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 0, sizeof(*err));
    return cts_config_load(cfg, cmd, argc, argv, err);
}

#define TOK        "--token", "tok-aaaaaaaaaaaaaaaaaaaa-zz99"
#define IMPORT_MIN TOK, "--list", "1"

/* ---- the option table: every option, valid and invalid ---- */

struct case_ {
    const char *opt;
    const char *value; /* NULL for a flag */
    int ok;            /* 1 valid, 0 usage error (64) */
};

static const struct case_ import_cases[] = {
    {"--api", "v2", 1},
    {"--api", "v3", 1},
    {"--api", "v4", 0},
    {"--api-key", "key-0123456789abc", 1},
    {"--api-key", "", 0},
    {"--token-file", "/nonexistent/only-used-when-no-token", 1},
    {"--account", "acme", 1},
    {"--base-url", "https://api.example.com/v3/", 1},
    /* The scheme is case-insensitive; an unusable URL is a configuration
     * error (78) whatever is wrong with it. */
    {"--base-url", "HTTPS://api.example.com/v3", 1},
    {"--base-url", "ftp://x", -78},
    {"--base-url", "HTTP://api.example.com/v3", -78},
    {"--base-url", "http://api.example.com/v3", -78},
    {"--base-url", "https://", -78},
    {"--auth-url", "https://auth.example.com/oauth2", 1},
    {"--auth-url", "Https://auth.example.com/oauth2", 1},
    {"--auth-url", "example.com", -78},
    {"--auth-url", "FTP://auth.example.com/", -78},
    {"--timeout", "2.5", 1},
    {"--timeout", "0", 0},
    {"--timeout", "abc", 0},
    {"--list", "2", 1},
    {"--mode", "create", 1},
    {"--mode", "upsert", 1},
    {"--mode", "merge", 0},
    {"--permission", "implicit", 1},
    {"--permission", "explicit", 1},
    {"--permission", "Explicit", 1},
    {"--permission", "opt-in", 0},
    {"--permission", "", 0},
    {"--rate", "0.5", 1},
    {"--rate", "0", 1},
    {"--rate", "-1", 0},
    {"--rate", "4x", 0},
    {"--rate", "nan", 0},
    {"--concurrency", "64", 1},
    {"--concurrency", "0", 0},
    {"--concurrency", "9999", 0},
    {"--daily-quota", "20000", 1},
    {"--daily-quota", "ten", 0},
    {"--retries", "0", 1},
    {"--retries", "-2", 0},
    {"--report", "out.csv", 1},
    {"--summary", "s.json", 1},
    {"--state", "/tmp/st", 1},
    {"--full", NULL, 1},
    {"--bulk", "always", 1},
    {"--bulk", "never", 1},
    {"--bulk", "sometimes", 0},
    {"--bulk-threshold", "500", 1},
    {"--bulk-threshold", "0", 0},
    {"--poll-interval", "5", 1},
    {"--poll-interval", "5s", 0},
    {"--dry-run", NULL, 1},
    {"--quiet", NULL, 1},
    {"--verbose", NULL, 1},
    {"--delimiter", ";", 1},
    {"--delimiter", "tab", 1},
    {"--delimiter", "\\t", 1},
    {"--delimiter", "|", 1},
    {"--delimiter", ":", 0},
    {"--encoding", "cp1252", 1},
    {"--encoding", "latin1", 1},
    {"--encoding", "utf-8", 1},
    {"--encoding", "ebcdic", 0},
    {"--map", "email=E-Mail Address", 1},
    {"--map", "cf:Shoe Size=Size", 1},
    {"--map", "shoe=Size", 0},
    {"--map", "email", 0},
    {"--map", "email=", 0},
    {"--map", "opt_out=Unsubscribed", 1},
    {"--map", "opt_out_reason=Why", 1},
    {"--config", "/nonexistent/explicit", -78},
    {"--redirect-uri", "http://localhost:8080/cb", 0}, /* auth only */
    {"--json", NULL, 0},                               /* check/lists */
    {"--no-such-option", NULL, 0},
};

static void test_option_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(import_cases) / sizeof(import_cases[0]); i++) {
        const struct case_ *c = &import_cases[i];
        struct cts_config cfg;
        struct cts_error err;
        int rc;
        if (c->value != NULL)
            rc = load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "--api-key",
                      "key-for-v2-000000", c->opt, c->value, "in.csv", NULL);
        else
            rc = load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "--api-key",
                      "key-for-v2-000000", c->opt, "in.csv", NULL);
        if (c->ok == 1) {
            if (rc != 0)
                fail_msg("%s %s: unexpected error: %s", c->opt,
                         c->value != NULL ? c->value : "", err.msg);
        } else {
            int want = c->ok == 0 ? 64 : -c->ok;
            if (rc == 0)
                fail_msg("%s %s: accepted", c->opt,
                         c->value != NULL ? c->value : "");
            if (err.exit_code != want)
                fail_msg("%s %s: exit %d, want %d (%s)", c->opt,
                         c->value != NULL ? c->value : "", err.exit_code, want,
                         err.msg);
            /* One line, naming the option. */
            assert_null(strchr(err.msg, '\n'));
            if (c->ok == 0 && strstr(err.msg, c->opt) == NULL)
                fail_msg("message does not name %s: %s", c->opt, err.msg);
        }
        cts_config_free(&cfg);
    }
}

static void test_values_parsed(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "--rate",
                          "0.5", "--delimiter", "tab", "--list", "2", "--map",
                          "cf:Size=Shoe", "--timeout", "1.5", "--base-url",
                          "https://x.example/v3//", "a.csv", "b.csv", NULL),
                     0);
    assert_true(cfg.rate > 0.49 && cfg.rate < 0.51);
    assert_int_equal(cfg.delimiter, '\t');
    assert_int_equal(cfg.nlists, 2);
    assert_string_equal(cfg.lists[0], "1");
    assert_string_equal(cfg.lists[1], "2");
    assert_int_equal(cfg.nmaps, 1);
    assert_string_equal(cfg.maps[0].field, "cf:Size");
    assert_string_equal(cfg.maps[0].header, "Shoe");
    assert_int_equal(cfg.timeout_ms, 1500);
    assert_string_equal(cfg.base_url, "https://x.example/v3");
    assert_int_equal(cfg.ninputs, 2);
    assert_string_equal(cfg.inputs[1], "b.csv");
    cts_config_free(&cfg);
}

static void test_defaults(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    char want[400];
    (void)state;
    assert_int_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "x.csv", NULL), 0);
    assert_int_equal(cfg.api, CTS_API_V3);
    assert_string_equal(cfg.base_url, "https://api.cc.email/v3");
    assert_string_equal(cfg.auth_url,
                        "https://authz.constantcontact.com/oauth2/default/v1");
    assert_true(cfg.rate > 3.99 && cfg.rate < 4.01);
    assert_int_equal(cfg.concurrency, 4);
    assert_int_equal(cfg.daily_quota, 10000);
    assert_int_equal(cfg.retries, 6);
    assert_int_equal(cfg.bulk, CTS_BULK_AUTO);
    assert_int_equal(cfg.bulk_threshold, 1000);
    assert_int_equal(cfg.poll_interval_s, 10);
    assert_int_equal(cfg.delimiter, 0);
    assert_int_equal(cfg.mode, CTS_MODE_UPSERT);
    assert_int_equal(cfg.permission, CTS_PERM_IMPLICIT);
    snprintf(want, sizeof(want), "%s/ctct-sync", tmpdir);
    assert_string_equal(cfg.state_dir, want);
    cts_config_free(&cfg);

    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, "--api", "v2",
                          "--api-key", "k", NULL),
                     0);
    assert_string_equal(cfg.base_url, "https://api.constantcontact.com/v2");
    assert_string_equal(cfg.auth_url,
                        "https://oauth2.constantcontact.com/oauth2");
    cts_config_free(&cfg);
}

/* ---- precedence ---- */

static void test_precedence(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    write_default_config("# defaults for the nightly sync\n"
                         "api = v2\n"
                         "api_key = file-key-0000000000\n"
                         "account = file-account\n"
                         "rate = 2\n"
                         "concurrency = 3\n"
                         "list = 10\n"
                         "list = 11\n"
                         "dry-run = true\n");

    /* file > defaults */
    assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, TOK, "a.csv", NULL), 0);
    assert_int_equal(cfg.api, CTS_API_V2);
    assert_string_equal(cfg.api_key, "file-key-0000000000");
    assert_true(cfg.rate > 1.99 && cfg.rate < 2.01);
    assert_int_equal(cfg.concurrency, 3);
    assert_int_equal(cfg.nlists, 2); /* repeatable keys accumulate */
    assert_int_equal(cfg.dry_run, 1);
    assert_string_equal(cfg.base_url, "https://api.constantcontact.com/v2");
    cts_config_free(&cfg);

    /* env > file */
    setenv("CTCT_API_KEY", "env-key-1111111111", 1);
    setenv("CTCT_ACCOUNT", "env-account", 1);
    assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, TOK, "a.csv", NULL), 0);
    assert_string_equal(cfg.api_key, "env-key-1111111111");
    assert_string_equal(cfg.account, "env-account");
    assert_true(cfg.rate > 1.99 && cfg.rate < 2.01);
    cts_config_free(&cfg);

    /* argv > env > file; argv's --list replaces the file's lists */
    assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, TOK, "--api-key",
                          "argv-key-22222222", "--rate", "7", "--list", "99",
                          "a.csv", NULL),
                     0);
    assert_string_equal(cfg.api_key, "argv-key-22222222");
    assert_string_equal(cfg.account, "env-account");
    assert_true(cfg.rate > 6.99 && cfg.rate < 7.01);
    assert_int_equal(cfg.nlists, 1);
    assert_string_equal(cfg.lists[0], "99");
    cts_config_free(&cfg);

    /* --config names another file; CTCT_CONFIG too (argv wins) */
    write_file("other.conf", "rate = 9\n", 0600);
    write_file("env.conf", "rate = 8\n", 0600);
    {
        char other[400], envc[400];
        snprintf(other, sizeof(other), "%s/other.conf", tmpdir);
        snprintf(envc, sizeof(envc), "%s/env.conf", tmpdir);
        setenv("CTCT_CONFIG", envc, 1);
        assert_int_equal(
            load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "a.csv", NULL), 0);
        assert_true(cfg.rate > 7.99 && cfg.rate < 8.01);
        assert_int_equal(cfg.api, CTS_API_V3); /* default file not read */
        cts_config_free(&cfg);
        assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN,
                              "--config", other, "a.csv", NULL),
                         0);
        assert_true(cfg.rate > 8.99 && cfg.rate < 9.01);
        cts_config_free(&cfg);
    }
}

static void test_env_errors(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    setenv("CTCT_API", "v9", 1);
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "CTCT_API"));
    cts_config_free(&cfg);
    unsetenv("CTCT_API");

    setenv("CTCT_SYNC_NOW", "yesterday", 1);
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    cts_config_free(&cfg);
    setenv("CTCT_SYNC_NOW", "1700000000", 1);
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, NULL), 0);
    assert_int_equal(cts_config_now(&cfg), 1700000000L);
    cts_config_free(&cfg);
}

/* --permission from every layer: argv > CTCT_PERMISSION > the file's
 * `permission =`; a bad value names where it came from. */
static void test_permission(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    write_default_config("permission = explicit\n");
    assert_int_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "a.csv", NULL), 0);
    assert_int_equal(cfg.permission, CTS_PERM_EXPLICIT);
    cts_config_free(&cfg);
    assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN,
                          "--permission", "implicit", "a.csv", NULL),
                     0);
    assert_int_equal(cfg.permission, CTS_PERM_IMPLICIT);
    cts_config_free(&cfg);

    write_default_config("permission = implicit\n");
    setenv("CTCT_PERMISSION", "explicit", 1);
    assert_int_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "a.csv", NULL), 0);
    assert_int_equal(cfg.permission, CTS_PERM_EXPLICIT);
    cts_config_free(&cfg);

    setenv("CTCT_PERMISSION", "sure", 1);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "a.csv", NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "CTCT_PERMISSION"));
    assert_non_null(strstr(err.msg, "expected implicit or explicit"));
    cts_config_free(&cfg);
    unsetenv("CTCT_PERMISSION");

    write_default_config("permission = opt-in\n");
    assert_int_not_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, IMPORT_MIN, "a.csv", NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "config:1: permission"));
    cts_config_free(&cfg);
    write_default_config("");

    /* An import option: check does not take it on the command line. */
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--permission", "implicit", NULL),
        0);
    assert_int_equal(err.exit_code, 64);
    cts_config_free(&cfg);
}

/* ---- the config file: syntax, unknown keys, permissions ---- */

static void test_file_syntax(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    const char *p;
    (void)state;

    p = write_file("bad1.conf", "# ok\nrate = 3\nthis line is wrong\n", 0600);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config", p, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "bad1.conf:3:"));
    cts_config_free(&cfg);

    p = write_file("bad2.conf", "\n\nfrobnicate = 1\n", 0600);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config", p, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "bad2.conf:3:"));
    assert_non_null(strstr(err.msg, "frobnicate"));
    cts_config_free(&cfg);

    p = write_file("bad3.conf", "rate = 3\nconcurrency = lots\n", 0600);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config", p, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "bad3.conf:2"));
    assert_non_null(strstr(err.msg, "concurrency"));
    cts_config_free(&cfg);

    /* Quotes and spaces around values are accepted. */
    p = write_file("good.conf",
                   "  api_key   =   \"quoted-key-000000\"  \n"
                   "base_url = http://127.0.0.1:8080/v3\n",
                   0600);
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config", p, NULL),
                     0);
    assert_string_equal(cfg.api_key, "quoted-key-000000");
    assert_string_equal(cfg.base_url, "http://127.0.0.1:8080/v3");
    cts_config_free(&cfg);

    /* A missing explicit file is an error; a missing default is fine. */
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config",
                              "/nonexistent/ctct.conf", NULL),
                         0);
    assert_int_equal(err.exit_code, 78);
    cts_config_free(&cfg);
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, NULL), 0);
    cts_config_free(&cfg);
}

static void test_file_permissions(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    const char *p;
    char want[600];
    (void)state;
    p = write_file("open.conf", "rate = 3\n", 0644);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config", p, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    snprintf(want, sizeof(want),
             "permissions 0644 for '%s' are too open; chmod 600 %s", p, p);
    assert_string_equal(err.msg, want);
    cts_config_free(&cfg);

    p = write_file("group.conf", "rate = 3\n", 0640);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--config", p, NULL), 0);
    assert_non_null(strstr(err.msg, "0640"));
    cts_config_free(&cfg);
}

/* ---- the token file ---- */

static void test_token_file(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    const char *p;
    (void)state;
    p = write_file(
        "tok.json",
        "{\"api\":\"v2\",\"access_token\":\"file-token-abcdefgh1234\","
        "\"expires_at\":4102444800,\"client_id\":\"cid-1\"}\n",
        0600);
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, "--token-file", p,
                          "--api-key", "k-0000000000000", NULL),
                     0);
    assert_string_equal(cfg.token, "file-token-abcdefgh1234");
    assert_int_equal(cfg.token_expires_at, 4102444800L);
    assert_int_equal(cfg.api, CTS_API_V2); /* from the file: no --api */
    cts_config_free(&cfg);

    /* --api beats the file's api; --token beats the token file. */
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, "--token-file", p, "--api",
                          "v3", "--token", "argv-token-xxxxxxxx", NULL),
                     0);
    assert_int_equal(cfg.api, CTS_API_V3);
    assert_string_equal(cfg.token, "argv-token-xxxxxxxx");
    cts_config_free(&cfg);

    p = write_file("bare.tok", "bare-token-0123456789\n", 0600);
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, "--token-file", p, NULL),
                     0);
    assert_string_equal(cfg.token, "bare-token-0123456789");
    cts_config_free(&cfg);

    p = write_file("open.tok", "bare-token-0123456789\n", 0604);
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, "--token-file", p, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "too open"));
    assert_null(strstr(err.msg, "bare-token-0123456789"));
    cts_config_free(&cfg);

    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, "--token-file",
                              "/nonexistent/t.json", NULL),
                         0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "ctct-sync auth"));
    cts_config_free(&cfg);

    /* auth writes the token file: a missing one is fine there. */
    assert_int_equal(load(&cfg, CTS_CMD_AUTH, &err, "--api-key", "k",
                          "--token-file", "/nonexistent/t.json", NULL),
                     0);
    assert_null(cfg.token);
    cts_config_free(&cfg);
}

/* ---- missing credentials, usage vs configuration ---- */

static void test_missing_credentials(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "ctct-sync auth"));
    assert_non_null(strstr(err.msg, "make demo"));
    cts_config_free(&cfg);

    assert_int_not_equal(
        load(&cfg, CTS_CMD_LISTS, &err, TOK, "--api", "v2", NULL), 0);
    assert_int_equal(err.exit_code, 78);
    assert_non_null(strstr(err.msg, "developer portal"));
    cts_config_free(&cfg);

    /* v3 needs no key: the token alone can be checked. */
    assert_int_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, NULL), 0);
    cts_config_free(&cfg);

    /* Usage errors come first: import without files or lists → 64. */
    assert_int_not_equal(load(&cfg, CTS_CMD_IMPORT, &err, "--list", "1", NULL),
                         0);
    assert_int_equal(err.exit_code, 64);
    cts_config_free(&cfg);
    assert_int_not_equal(load(&cfg, CTS_CMD_IMPORT, &err, "a.csv", NULL), 0);
    assert_int_equal(err.exit_code, 64);
    assert_non_null(strstr(err.msg, "--list"));
    cts_config_free(&cfg);

    /* Extra arguments where none are taken. */
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, "extra", NULL),
                         0);
    assert_int_equal(err.exit_code, 64);
    cts_config_free(&cfg);

    /* --help wins and reads nothing else. */
    assert_int_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, "--rate", "x", "--help", NULL), 0);
    assert_int_equal(cfg.help, 1);
    cts_config_free(&cfg);
}

/* ---- auth: every problem of the configuration at once ---- */

/* Load `auth` with the given arguments (it must load: auth's problems are
 * not loading errors) and collect its problems into *p; returns the exit
 * code cts_config_check_auth gives. */
static int auth_problems(struct cts_config_problems *p, ...)
{
    struct cts_config cfg;
    struct cts_error err;
    char *argv[32];
    int argc = 0, ex;
    va_list ap;
    const char *a;
    argv[argc++] = "auth";
    va_start(ap, p);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_equal(cts_config_load(&cfg, CTS_CMD_AUTH, argc, argv, &err), 0);
    cts_config_problems_init(p);
    ex = cts_config_check_auth(&cfg, p);
    cts_config_free(&cfg);
    return ex;
}

#define V3_AUTH_URL "https://authz.constantcontact.com/oauth2/default/v1"
#define GOOD_URI    "http://127.0.0.1:53682/callback"

static void test_auth_problems(void **state)
{
    struct cts_config_problems p;
    char tok[400];
    (void)state;
    snprintf(tok, sizeof(tok), "%s/t.json", tmpdir);

    /* The seed's mistake with nothing else given: the redirect URI's
     * explanation comes first, then the key, then the token file. */
    assert_int_equal(
        auth_problems(&p, "--redirect-uri", V3_AUTH_URL "/authorize", NULL),
        78);
    assert_int_equal(p.n, 3);
    assert_non_null(strstr(p.v[0].text, "authorization server"));
    assert_non_null(strstr(p.v[1].text, "no API key"));
    assert_non_null(strstr(p.v[1].text, "developer portal"));
    assert_non_null(strstr(p.v[2].text, "--token-file"));
    cts_config_problems_free(&p);

    /* A bad --auth-url no longer stops loading: it is one more item, after
     * the redirect URI's. */
    assert_int_equal(auth_problems(&p, "--api-key", "k", "--token-file", tok,
                                   "--redirect-uri", GOOD_URI "/",
                                   "--registered-redirect-uri", GOOD_URI,
                                   "--auth-url", "http://oauth.example.com",
                                   NULL),
                     78);
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(p.v[0].text, "different path"));
    assert_non_null(strstr(p.v[1].text, "--auth-url"));
    cts_config_problems_free(&p);

    /* v2: the client secret; a token file whose directory is missing. */
    snprintf(tok, sizeof(tok), "%s/nodir/t.json", tmpdir);
    assert_int_equal(auth_problems(&p, "--api", "v2", "--api-key", "k",
                                   "--token-file", tok, "--redirect-uri",
                                   GOOD_URI, NULL),
                     78);
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(p.v[0].text, "does not exist"));
    assert_non_null(strstr(p.v[1].text, "client secret"));
    cts_config_problems_free(&p);
    /* ... and a token file that is a directory. */
    assert_int_equal(auth_problems(&p, "--api-key", "k", "--token-file", tmpdir,
                                   "--redirect-uri", GOOD_URI, NULL),
                     78);
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.v[0].text, "is a directory"));
    cts_config_problems_free(&p);

    /* --device on v2 is a usage error: its exit code wins when first; the
     * device flow needs no redirect URI. */
    snprintf(tok, sizeof(tok), "%s/t.json", tmpdir);
    assert_int_equal(
        auth_problems(&p, "--api", "v2", "--device", "--token-file", tok, NULL),
        64);
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(p.v[0].text, "--device"));
    assert_non_null(strstr(p.v[1].text, "no API key"));
    cts_config_problems_free(&p);
    assert_int_equal(auth_problems(&p, "--device", "--api-key", "k",
                                   "--token-file", tok, NULL),
                     0);
    assert_int_equal(p.n, 0);
    cts_config_problems_free(&p);

    /* Scopes: unknown ones, an empty list, and the two ctct-sync needs. */
    assert_int_equal(auth_problems(&p, "--api-key", "k", "--token-file", tok,
                                   "--redirect-uri", GOOD_URI, "--scopes",
                                   "contact_data+account_read+campaign_data",
                                   NULL),
                     0);
    cts_config_problems_free(&p);
    assert_int_equal(auth_problems(&p, "--api-key", "k", "--token-file", tok,
                                   "--redirect-uri", GOOD_URI, "--scopes",
                                   "contact_data,account_reed", NULL),
                     78);
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(p.v[0].text, "'account_reed'"));
    assert_non_null(strstr(p.v[1].text, "lacks account_read"));
    cts_config_problems_free(&p);
    assert_int_equal(auth_problems(&p, "--api-key", "k", "--token-file", tok,
                                   "--redirect-uri", GOOD_URI, "--scopes",
                                   " , ", NULL),
                     78);
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.v[0].text, "empty"));
    cts_config_problems_free(&p);

    /* All fine: nothing, and 0. */
    assert_int_equal(auth_problems(&p, "--api-key", "k", "--token-file", tok,
                                   "--redirect-uri", GOOD_URI, NULL),
                     0);
    assert_int_equal(p.n, 0);
    cts_config_problems_free(&p);
}

/* ---- secrets never echoed ---- */

static void test_secrets_not_echoed(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, "--tokn=supersecret-123456789", NULL),
        0);
    assert_int_equal(err.exit_code, 64);
    assert_null(strstr(err.msg, "supersecret"));
    assert_non_null(strstr(err.msg, "--tokn"));
    cts_config_free(&cfg);

    assert_int_not_equal(
        load(&cfg, CTS_CMD_CHECK, &err, TOK, "--api-key", "", NULL), 0);
    assert_non_null(strstr(err.msg, "(hidden)"));
    cts_config_free(&cfg);
}

/* ---- the loopback rule ---- */

static void test_loopback_rule(void **state)
{
    struct cts_error err;
    static const struct {
        const char *url;
        int ok;
    } cases[] = {
        {"https://api.cc.email/v3", 1},    {"http://127.0.0.1:8080/v3", 1},
        {"http://127.9.9.9/v3", 1},        {"http://localhost:1234", 1},
        {"http://LOCALHOST/v2", 1},        {"http://[::1]:8080/v3", 1},
        {"http://user@127.0.0.1:99/", 1},  {"http://api.cc.email/v3", 0},
        {"http://128.0.0.1/v3", 0},        {"http://localhost.evil.com/v3", 0},
        {"http://127.0.0.1.evil.com/", 0}, {"http://[::2]/", 0},
        {"http://evil.com@127.0.0.1/", 1}, /* host is 127.0.0.1 */
        {"http://127.0.0.1@evil.com/", 0}, /* host is evil.com */
        {"ftp://127.0.0.1/", 0},           {"https://", 0},
        {"HTTPS://api.cc.email/v3", 1},    {"HtTp://127.0.0.1:8/v3", 1},
        {"HTTP://api.cc.email/v3", 0},     {"FTP://api.cc.email/", 0},
        {"https://api.cc.email /v3", 0},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;
        memset(&err, 0, sizeof(err));
        rc = cts_config_check_url("--base-url", cases[i].url, &err);
        if ((rc == 0) != cases[i].ok)
            fail_msg("%s: rc %d (%s)", cases[i].url, rc, err.msg);
        if (rc != 0)
            assert_int_equal(err.exit_code, 78);
    }
    assert_true(cts_host_is_loopback("127.0.0.1"));
    assert_true(cts_host_is_loopback("::1"));
    assert_false(cts_host_is_loopback("10.0.0.1"));
}

static void test_url_refused_via_load(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    (void)state;
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, "--base-url",
                              "http://api.example.com/v3", NULL),
                         0);
    assert_int_equal(err.exit_code, 78);
    cts_config_free(&cfg);
    assert_int_not_equal(load(&cfg, CTS_CMD_CHECK, &err, TOK, "--api", "v2",
                              "--api-key", "k", "--auth-url",
                              "http://oauth.example.com", NULL),
                         0);
    assert_int_equal(err.exit_code, 78);
    cts_config_free(&cfg);
}

/* The shipped example must parse (copied to 0600: git checks files out
 * 0644, which the loader rightly refuses). */
static void test_sample_config(void **state)
{
    struct cts_config cfg;
    struct cts_error err;
    FILE *f;
    char text[8192];
    size_t n;
    const char *p;
    char want[600];
    (void)state;
    f = fopen("samples/ctct-sync.conf", "r");
    if (f == NULL)
        skip();
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    p = write_file("sample.conf", text, 0600);
    setenv("HOME", tmpdir, 1);
    assert_int_equal(
        load(&cfg, CTS_CMD_IMPORT, &err, TOK, "--config", p, "a.csv", NULL), 0);
    assert_int_equal(cfg.api, CTS_API_V3);
    assert_int_equal(cfg.nlists, 1);
    assert_non_null(cfg.account);
    snprintf(want, sizeof(want), "%s/.config/ctct-sync/token", tmpdir);
    assert_string_equal(cfg.token_file, want); /* "~/" expanded */
    cts_config_free(&cfg);
}

/* Registered secrets are masked in every log line (URLs with ?api_key=). */
static void test_log_redaction(void **state)
{
    char path[400], buf[1024];
    FILE *f;
    size_t n;
    int saved;
    (void)state;
    snprintf(path, sizeof(path), "%s/stderr.txt", tmpdir);
    fflush(stderr);
    saved = dup(2);
    f = fopen(path, "w");
    assert_non_null(f);
    dup2(fileno(f), 2);
    cts_log_add_secret("f98b207c-ta99b-4938-b523-3cc2895f5420");
    cts_log_add_secret("short");
    cts_log_error("GET /v2/lists?api_key=f98b207c-ta99b-4938-b523-3cc2895f5420"
                  "&x=f98b207c-ta99b-4938-b523-3cc2895f5420 short");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    cts_log_clear_secrets();
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_null(strstr(buf, "f98b207c-ta99b"));
    assert_non_null(strstr(buf, "api_key=f98b\xe2\x80\xa6"
                                "5420&x=f98b"));
    assert_non_null(strstr(buf, " short")); /* under 8 chars: not a secret */
}

/* export: its own options, the common ones it shares with import, and a
 * config file's `list =` (the import's) never narrowing an export. */
static void test_export(void **state)
{
    static const struct case_ cases[] = {
        {"--status", "all", 1},
        {"--status", "Unsubscribed", 1},
        {"--status", "active", 1},
        {"--status", "optout", 0},
        {"--since", "2024-03-05", 1},
        {"--since", "2024-03-05T14:40:41+01:00", 1},
        {"--since", "yesterday", 0},
        {"--since", "2024-13-01", 0},
        {"--output", "out.csv", 1},
        {"--list", "1", 1},
        {"--rate", "2", 1},
        {"--concurrency", "2", 1},
        {"--daily-quota", "500", 1},
        {"--retries", "3", 1},
        {"--state", "/tmp/st", 1},
        {"--timeout", "5", 1},
        {"--report", "r.csv", 0}, /* import only */
        {"--dry-run", NULL, 0},
        {"--map", "email=E", 0},
        {"--json", NULL, 0},
    };
    struct cts_config cfg;
    struct cts_error err;
    size_t i;
    int rc;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct case_ *c = &cases[i];
        if (c->value != NULL)
            rc = load(&cfg, CTS_CMD_EXPORT, &err, TOK, c->opt, c->value, NULL);
        else
            rc = load(&cfg, CTS_CMD_EXPORT, &err, TOK, c->opt, NULL);
        if (c->ok && rc != 0)
            fail_msg("%s %s: unexpected error: %s", c->opt,
                     c->value != NULL ? c->value : "", err.msg);
        if (!c->ok &&
            (rc == 0 || err.exit_code != 64 || strstr(err.msg, c->opt) == NULL))
            fail_msg("%s %s: want exit 64 naming it, got %d: %s", c->opt,
                     c->value != NULL ? c->value : "", err.exit_code, err.msg);
        cts_config_free(&cfg);
    }

    /* Defaults: everyone, no date, standard output. */
    assert_int_equal(load(&cfg, CTS_CMD_EXPORT, &err, TOK, NULL), 0);
    assert_int_equal(cfg.export_status, CTS_EXPORT_ALL);
    assert_null(cfg.since);
    assert_null(cfg.output);
    assert_int_equal(cfg.nlists, 0);
    assert_true(cfg.rate > 3.99 && cfg.rate < 4.01);
    cts_config_free(&cfg);

    /* --since is kept as the UTC date-time the API is asked with. */
    assert_int_equal(load(&cfg, CTS_CMD_EXPORT, &err, TOK, "--status",
                          "unsubscribed", "--since",
                          "2024-03-05T14:40:41+01:00", "--list", "a", "--list",
                          "b", NULL),
                     0);
    assert_int_equal(cfg.export_status, CTS_EXPORT_UNSUBSCRIBED);
    assert_string_equal(cfg.since, "2024-03-05T13:40:41Z");
    assert_int_equal(cfg.nlists, 2);
    cts_config_free(&cfg);
    assert_int_equal(
        load(&cfg, CTS_CMD_EXPORT, &err, TOK, "--since", "2024-03-05", NULL),
        0);
    assert_string_equal(cfg.since, "2024-03-05T00:00:00Z");
    cts_config_free(&cfg);

    /* The config file's list is the import's: an export ignores it (the
     * unsubscribed are on no list), but takes its rate.  status, since
     * and output are command-line only. */
    write_default_config("list = 7\nrate = 2\n");
    assert_int_equal(load(&cfg, CTS_CMD_EXPORT, &err, TOK, NULL), 0);
    assert_int_equal(cfg.nlists, 0);
    assert_true(cfg.rate > 1.99 && cfg.rate < 2.01);
    cts_config_free(&cfg);
    assert_int_equal(load(&cfg, CTS_CMD_IMPORT, &err, TOK, "a.csv", NULL), 0);
    assert_int_equal(cfg.nlists, 1);
    cts_config_free(&cfg);
    assert_int_equal(load(&cfg, CTS_CMD_EXPORT, &err, TOK, "--list", "9", NULL),
                     0);
    assert_int_equal(cfg.nlists, 1);
    assert_string_equal(cfg.lists[0], "9");
    cts_config_free(&cfg);
    write_default_config("status = unsubscribed\n");
    assert_int_not_equal(load(&cfg, CTS_CMD_EXPORT, &err, TOK, NULL), 0);
    assert_int_equal(err.exit_code, 78);
    cts_config_free(&cfg);
    write_default_config("");

    /* An export takes no FILE argument. */
    assert_int_not_equal(load(&cfg, CTS_CMD_EXPORT, &err, TOK, "x.csv", NULL),
                         0);
    assert_int_equal(err.exit_code, 64);
    cts_config_free(&cfg);
}

static void test_commands(void **state)
{
    (void)state;
    assert_int_equal(cts_command_parse("export"), CTS_CMD_EXPORT);
    assert_string_equal(cts_command_name(CTS_CMD_EXPORT), "export");
    assert_int_equal(cts_command_parse("import"), CTS_CMD_IMPORT);
    assert_int_equal(cts_command_parse("lists"), CTS_CMD_LISTS);
    assert_int_equal(cts_command_parse("sync"), CTS_CMD_NONE);
    assert_string_equal(cts_command_name(CTS_CMD_AUTH), "auth");
}

int main(void)
{
    /* The --token warning is expected in most cases; keep output quiet. */
    cts_log_set_level(CTS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_option_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_parsed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_credentials, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_problems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_not_echoed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loopback_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_refused_via_load, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sample_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_redaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
