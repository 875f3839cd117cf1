/*
 * main.c — ctct-sync's entry point: argv → struct cts_config, global
 * init, run one command, map the result to an exit code (sysexits).
 *
 * Exit codes are decided in one place (the end of main) from the command's
 * return value; every error path funnels through the single `out:` label.
 */
#include <stdio.h>
#include <string.h>

#include "cts_account.h"
#include "cts_config.h"
#include "cts_export.h"
#include "cts_http.h"
#include "cts_oauth.h"
#include "cts_pipeline.h"
#include "cts_util.h"

/* ---- usage texts (synopsis form, OpenBSD style) ---- */

static const char usage_top[] =
    "usage: ctct-sync import [options] FILE...\n"
    "       ctct-sync check  [options]\n"
    "       ctct-sync lists  [options]\n"
    "       ctct-sync auth   [options]\n"
    "       ctct-sync export [options]\n"
    "       ctct-sync --help | --version\n"
    "\n"
    "Import or sync contacts from CSV files into Constant Contact (API v2 "
    "or v3),\n"
    "after checking that the access token belongs to the API key's "
    "account.\n"
    "\n"
    "commands:\n"
    "  import   import or sync contacts from CSV files (\"-\" = stdin)\n"
    "  check    verify the credentials; print account, key, expiry; write "
    "nothing\n"
    "  lists    print the account's contact lists (id, name, member count)\n"
    "  auth     obtain tokens with OAuth2\n"
    "  export   write the account's contacts (a list, or the unsubscribed) "
    "as CSV\n"
    "\n"
    "Run 'ctct-sync COMMAND --help' for a command's options; see "
    "ctct-sync(1).\n";

/* Credentials first (the account check is the point of the tool), then
 * the options every command shares.  `auth` has no --token. */
static const char usage_creds[] =
    "credentials (command line > environment > config file > defaults):\n"
    "  --api v2|v3            API generation (CTCT_API; default v3)\n"
    "  --api-key KEY          v2 api_key / v3 OAuth client id "
    "(CTCT_API_KEY)\n"
    "  --token-file FILE      file holding the token, mode 0600 "
    "(CTCT_TOKEN_FILE)\n";

static const char usage_token[] =
    "  --token TOKEN          access token (CTCT_ACCESS_TOKEN; visible in "
    "ps: prefer\n"
    "                         --token-file or the environment)\n";

static const char usage_common[] =
    "  --account ID           expected account: v2 user_name, v3 "
    "encoded_account_id\n"
    "                         (CTCT_ACCOUNT)\n"
    "  --base-url URL         API base (CTCT_BASE_URL; default\n"
    "                         https://api.cc.email/v3, or for v2\n"
    "                         https://api.constantcontact.com/v2)\n"
    "  --auth-url URL         OAuth base (CTCT_AUTH_URL)\n"
    "  --config FILE          config file (CTCT_CONFIG; default\n"
    "                         $XDG_CONFIG_HOME/ctct-sync/config)\n"
    "  --timeout SECONDS      per-request timeout (default 30)\n"
    "  -q, --quiet            errors only\n"
    "  -v, --verbose          debug messages (secrets stay masked)\n"
    "  -h, --help             this help\n";

static const char usage_exit_import[] =
    "exit status: 0 every row settled, 1 some rows failed, 64 usage, 65 "
    "data error\n"
    "(bad CSV, no email column, unknown list), 66 input missing, 69 API "
    "unreachable,\n"
    "73 report cannot be written, 75 try later (deferred rows, daily "
    "quota, lock\n"
    "held), 77 credentials invalid/expired/mismatched, 78 configuration "
    "error.\n";

static const char usage_exit_check[] =
    "exit status: 0 the token belongs to the key (and account), 64 usage, "
    "69 API\n"
    "unreachable, 73 output cannot be written, 77 credentials invalid, "
    "expired or\n"
    "mismatched, 78 configuration error (missing credentials, file "
    "permissions).\n";

static void print_usage(enum cts_command cmd, FILE *out)
{
    switch (cmd) {
    case CTS_CMD_IMPORT:
        fputs("usage: ctct-sync import [options] --list ID [--list ID...] "
              "FILE...\n"
              "\n"
              "Import or sync the contacts of CSV FILEs (\"-\" = standard "
              "input) into the\n"
              "given lists, after the account check; write a per-row "
              "report.\n"
              "\n",
              out);
        fputs(usage_creds, out);
        fputs(usage_token, out);
        fputs(usage_common, out);
        fputs(
            "\n"
            "sending:\n"
            "  --list ID              list to add contacts to (repeatable; "
            "required)\n"
            "  --mode upsert|create   create or update (default), or create "
            "only\n"
            "  --permission implicit|explicit  what the rows' people gave "
            "(default\n"
            "                         implicit: an import by the account; "
            "explicit: each\n"
            "                         row is the contact's own sign-up); "
            "unsubscribed\n"
            "                         contacts are left alone either way "
            "(CTCT_PERMISSION)\n"
            "  --rate N               requests per second, decimals allowed, "
            "0 = off\n"
            "                         (default 4)\n"
            "  --concurrency N        requests in flight (default 4)\n"
            "  --daily-quota N        requests per API key per UTC day "
            "(default 10000)\n"
            "  --retries N            retries of a transient failure "
            "(default 6)\n"
            "  --bulk auto|never|always  bulk activities (default auto)\n"
            "  --bulk-threshold N     rows above which auto uses bulk "
            "(default 1000)\n"
            "  --poll-interval SECONDS  bulk activity polling (default 10)\n"
            "  --dry-run              check, read and validate; send no "
            "write\n"
            "  --mirror               then take list members absent from "
            "the input off\n"
            "                         the --list lists (never deleted "
            "nor unsubscribed)\n"
            "  --max-removals N|P%    the most members a list may lose "
            "(default 10%)\n"
            "\n"
            "input:\n"
            "  --delimiter C          ',' ';' '|' or tab (default: "
            "detected)\n"
            "  --encoding E           utf-8, cp1252, latin1 or auto "
            "(default auto)\n"
            "  --map FIELD=HEADER     map a column to a field; cf:NAME=HEADER "
            "for a custom\n"
            "                         field (repeatable)\n"
            "  --accept-typos         send addresses whose domain looks like "
            "a slip\n"
            "                         (gmial.com, .con) as written\n"
            "\n"
            "results and state:\n"
            "  --report FILE          per-row report (default NAME.report.csv "
            "for NAME.csv)\n"
            "  --summary FILE         JSON summary of the run\n"
            "  --rejects FILE         invalid and failed rows with a problem "
            "column, to fix\n"
            "                         and import again (default "
            "NAME.rejects.csv beside\n"
            "                         the report, when there are any)\n"
            "  --html FILE            the report as one HTML page (default "
            "on a terminal:\n"
            "                         the report's name with .html)\n"
            "  --no-html              no HTML page, even on a terminal\n"
            "  --state DIR            lock, journal, fingerprints, daily "
            "count (default\n"
            "                         $XDG_STATE_HOME/ctct-sync)\n"
            "  --full                 send unchanged rows too\n"
            "\n",
            out);
        fputs(usage_exit_import, out);
        break;
    case CTS_CMD_CHECK:
        fputs("usage: ctct-sync check [options]\n"
              "\n"
              "Verify that the access token is valid, was issued for the "
              "API key and (with\n"
              "--account) belongs to that account; print who it belongs "
              "to.  Writes nothing.\n"
              "\n",
              out);
        fputs(usage_creds, out);
        fputs(usage_token, out);
        fputs(usage_common, out);
        fputs("  --json                 print the result as JSON\n\n", out);
        fputs(usage_exit_check, out);
        break;
    case CTS_CMD_LISTS:
        fputs("usage: ctct-sync lists [options]\n"
              "\n"
              "Run the account check, then print the account's contact "
              "lists: id, name and\n"
              "member count, as aligned columns (or JSON with --json).  The "
              "ids are what\n"
              "'ctct-sync import --list ID' takes.\n"
              "\n",
              out);
        fputs(usage_creds, out);
        fputs(usage_token, out);
        fputs(usage_common, out);
        fputs("  --json                 print a JSON array of {id, name, "
              "member_count}\n\n",
              out);
        fputs(usage_exit_check, out);
        break;
    case CTS_CMD_AUTH:
        fputs("usage: ctct-sync auth [options] --api-key KEY --token-file "
              "FILE\n"
              "\n"
              "Obtain an access token with OAuth2 and save it to the token "
              "file (mode 0600).\n"
              "v2: authorization code; v3: authorization code with PKCE, or "
              "the device flow.\n"
              "\n",
              out);
        fputs(usage_creds, out);
        fputs(usage_common, out);
        fputs("  --redirect-uri URI     the app's own callback, as registered\n"
              "  --registered-redirect-uri URI  what the developer portal "
              "holds (config:\n"
              "                         redirect_uri), to explain mismatches "
              "early\n"
              "  --no-listen            print the URL; paste the redirected "
              "URL on stdin\n"
              "  --open                 open the browser\n"
              "  --device               v3 device flow\n"
              "  --client-secret S      v2 client secret (CTCT_CLIENT_SECRET)\n"
              "  --scopes \"S...\"        v3 scopes (default contact_data "
              "account_read\n"
              "                         offline_access)\n"
              "\n"
              "exit status: 0 tokens saved, 64 usage, 69 server unreachable, "
              "75 timed out\n"
              "waiting for the browser, 77 denied or rejected, 78 "
              "configuration error (bad\n"
              "redirect URI, token file not writable).\n",
              out);
        break;
    case CTS_CMD_EXPORT:
        fputs("usage: ctct-sync export [options] [--list ID...] [--status "
              "all|active|unsubscribed]\n"
              "                        [--since DATE] [--output FILE]\n"
              "\n"
              "Run the account check, then write the account's contacts as "
              "CSV: the members\n"
              "of the lists, the unsubscribed, or all; the columns are the "
              "ones 'ctct-sync\n"
              "import' maps back.  Read page by page under the rate limit; "
              "nothing is kept\n"
              "between runs.\n"
              "\n",
              out);
        fputs(usage_creds, out);
        fputs(usage_token, out);
        fputs(usage_common, out);
        fputs("\n"
              "what to write:\n"
              "  --list ID              members of this list (repeatable: "
              "each contact once;\n"
              "                         command line only; default every "
              "contact)\n"
              "  --status S             all (default), active or "
              "unsubscribed\n"
              "  --since DATE           changed since DATE (YYYY-MM-DD or "
              "ISO-8601, UTC);\n"
              "                         with --status unsubscribed: "
              "unsubscribed since DATE\n"
              "  --output FILE          write FILE (replaced only when "
              "complete; default\n"
              "                         standard output)\n"
              "\n"
              "sending:\n"
              "  --rate N               requests per second (default 4)\n"
              "  --concurrency N        requests in flight (default 4)\n"
              "  --daily-quota N        requests per API key per UTC day "
              "(default 10000)\n"
              "  --retries N            retries of a transient failure "
              "(default 6)\n"
              "  --state DIR            where the daily count is kept "
              "(default\n"
              "                         $XDG_STATE_HOME/ctct-sync)\n"
              "\n"
              "exit status: 0 written, 64 usage, 65 unknown list, 69 API "
              "unreachable, 73 output\n"
              "cannot be written, 75 try later (daily quota, signal, lock "
              "held), 77 credentials\n"
              "invalid/expired/mismatched, 78 configuration error.\n",
              out);
        break;
    default: fputs(usage_top, out); break;
    }
}

/* Run one command; each returns its exit code (sysexits, README's table). */
static int run(struct cts_config *cfg)
{
    switch (cfg->command) {
    case CTS_CMD_IMPORT: return cts_cmd_import(cfg);
    case CTS_CMD_CHECK: return cts_cmd_check(cfg);
    case CTS_CMD_LISTS: return cts_cmd_lists(cfg);
    case CTS_CMD_AUTH: return cts_cmd_auth(cfg);
    case CTS_CMD_EXPORT: return cts_cmd_export(cfg);
    default: return CTS_EX_SOFTWARE;
    }
}

int main(int argc, char **argv)
{
    struct cts_config cfg;
    struct cts_error err;
    enum cts_command cmd;
    int rc = CTS_EX_OK;
    int loaded = 0;
    int http_ready = 0;

    memset(&cfg, 0, sizeof(cfg));
    memset(&err, 0, sizeof(err));
    cts_log_set_prog("ctct-sync");

    if (argc < 2) {
        fputs(usage_top, stderr);
        rc = CTS_EX_USAGE;
        goto out;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        /* "ctct-sync help import" is the same as "ctct-sync import --help". */
        cmd = argc > 2 ? cts_command_parse(argv[2]) : CTS_CMD_NONE;
        print_usage(cmd, stdout);
        goto out;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("ctct-sync %s\n", CTS_VERSION);
        goto out;
    }
    cmd = cts_command_parse(argv[1]);
    if (cmd == CTS_CMD_NONE) {
        cts_log_error("%s '%s'. Try 'ctct-sync --help'",
                      argv[1][0] == '-' ? "unknown option" : "unknown command",
                      argv[1]);
        rc = CTS_EX_USAGE;
        goto out;
    }

    loaded = 1;
    if (cts_config_load(&cfg, cmd, argc - 1, argv + 1, &err) != 0) {
        cts_log_error("%s", err.msg);
        rc = err.exit_code != 0 ? err.exit_code : CTS_EX_USAGE;
        /* A configuration error once the command line is known (no token,
         * a refused URL or proxy): the report and summary still say how
         * the run ended, so a stale one from an earlier run never stays. */
        if (cmd == CTS_CMD_IMPORT && cfg.outputs_known && rc == CTS_EX_CONFIG)
            cts_import_failed(&cfg, rc);
        goto out;
    }
    if (cfg.help) {
        print_usage(cmd, stdout);
        goto out;
    }
    /* Whatever a message is built from (URLs with ?api_key=, libcurl's
     * words), these never reach the terminal in full. */
    cts_log_add_secret(cfg.api_key);
    cts_log_add_secret(cfg.token);
    cts_log_add_secret(cfg.refresh_token);
    cts_log_add_secret(cfg.client_secret);
    cts_log_set_level(cfg.quiet     ? CTS_LOG_ERROR
                      : cfg.verbose ? CTS_LOG_DEBUG
                                    : CTS_LOG_INFO);

    /* libcurl's global init is not thread-safe and must run once, before
     * any easy handle exists: here, at the very start of real work. */
    if (cts_http_global_init() != 0) {
        cts_log_error("cannot initialise libcurl");
        rc = CTS_EX_SOFTWARE;
        goto out;
    }
    http_ready = 1;

    rc = run(&cfg);

out:
    if (http_ready)
        cts_http_global_cleanup();
    if (loaded)
        cts_config_free(&cfg);
    cts_log_clear_secrets();
    /* A failed write to stdout (a full disk, a closed pipe) is an error,
     * not a success with half the output (jq's rule). */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == CTS_EX_OK) {
            cts_log_error("cannot write to standard output");
            rc = CTS_EX_CANTCREAT;
        }
    }
    return rc;
}
