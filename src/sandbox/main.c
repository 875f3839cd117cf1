/*
 * main.c — ctct-sandbox: a local Constant Contact for tests and demos (the
 * v2 and v3 endpoints ctct-sync uses, with their rate limits and faults).
 *
 * argv → options; model (built-in demo account or --accounts FILE); routes;
 * listen; print the ready line; run the loop until SIGINT/SIGTERM, then
 * write --state-dump and exit 0.  Bad options exit 64 with one line.
 */
#include "sb_int.h"
#include "sb_oauth.h" /* --token-rate, --token-ttl, --activity-ms (sboauth) */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define DEMO_V3_CLIENT "demo-v3-client-00000000000001"
#define DEMO_IAT       1767225600LL /* 2026-01-01: fixed so the token is too */
#define DEMO_EXP       4102444800LL /* 2100-01-01 */

static const char usage_text[] =
    "usage: ctct-sandbox [--port N] [--host ADDR] [--accounts FILE]\n"
    "                    [--rate N] [--daily-quota N] [--fault-rate P]\n"
    "                    [--fault-seed N] [--latency-ms N] [--slow-ms N]\n"
    "                    [--state-dump FILE] [--faults FILE]\n"
    "                    [--token-rate N] [--token-ttl S] [--activity-ms N]\n"
    "                    [--window arrivals|admitted] [--foreign-load N]\n"
    "                    [--header-timeout-ms N] [--body-timeout-ms N]\n"
    "                    [--idle-timeout-ms N] [--max-connections N]\n"
    "                    [--max-body-total BYTES]\n"
    "                    [--print-demo-token] [--verbose] [--help]\n"
    "\n"
    "A local Constant Contact API (v2 and v3) for tests and benchmarks.\n"
    "  --port N          TCP port (0 = pick a free one; default 8080)\n"
    "  --host ADDR       listen address (default 127.0.0.1, loopback only)\n"
    "  --accounts FILE   accounts/apps/tokens JSON (default: built-in demo)\n"
    "  --rate N          requests per second per API key (default 4; 0 = off)\n"
    "  --daily-quota N   requests per UTC day per API key (default 10000;\n"
    "                    0 = off)\n"
    "  --window W        what the 1-second rate window counts: arrivals\n"
    "                    (default; refused requests count too, as on real\n"
    "                    gateways) or admitted (only requests let through)\n"
    "  --foreign-load N  another client spends N requests/s of every API\n"
    "                    key's rate (evenly spread; not the daily quota)\n"
    "  --fault-rate P    probability 0..1 of a random fault per API request\n"
    "  --fault-seed N    seed of the random faults (default 1)\n"
    "  --latency-ms N    delay every API reply by N ms\n"
    "  --slow-ms N       delay of a 'slow' fault (default 3000)\n"
    "  --state-dump FILE write /_sandbox/state JSON there on exit\n"
    "  --faults FILE     queue scripted faults "
    "({\"faults\":[...],\"match\":...})\n"
    "  --token-rate N    v3 token endpoint requests/s per client (default 1;\n"
    "                    0 = off)\n"
    "  --token-ttl S     v3 access token lifetime in seconds (default 86400)\n"
    "  --activity-ms N   time a bulk activity takes to complete (default 500)\n"
    "  --header-timeout-ms N  request line + headers must arrive within N ms\n"
    "                    of their first byte (default 10000; 0 = none)\n"
    "  --body-timeout-ms N  the body within N ms of the headers (default\n"
    "                    30000; 0 = none); late requests get 408, then close\n"
    "  --idle-timeout-ms N  close a keep-alive connection idle N ms, or one\n"
    "                    whose client reads no reply for N ms (default 60000)\n"
    "  --max-connections N  open connections at once (default 1000); then\n"
    "                    the longest-idle one closes, or the newcomer gets "
    "503\n"
    "  --max-body-total BYTES  request bodies held at once over all\n"
    "                    connections (default 67108864); over it, 503\n"
    "  --print-demo-token print the demo account's v3 access token and exit\n"
    "  --verbose         log each request to stderr\n"
    "Prints \"listening on http://HOST:PORT\" on stdout once ready.\n"
    "See doc/sandbox.md.\n";

struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    struct sb_server *srv;
    struct sb_model *model;
    const char *state_dump;
    int rc;
};

static int bad_usage(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ctct-sandbox: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    return CTS_EX_USAGE;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || *end || d < 0 || d > 1)
        return -1;
    *out = d;
    return 0;
}

static int write_state(struct app *a)
{
    json_t *st = sb_server_state(a->srv, 1, NULL);
    char *tmp = cts_xasprintf("%s.tmp", a->state_dump);
    int rc = json_dump_file(st, tmp, JSON_INDENT(1));
    json_decref(st);
    if (rc == 0 && rename(tmp, a->state_dump) != 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "ctct-sandbox: cannot write state dump %s\n",
                a->state_dump);
        remove(tmp);
    }
    free(tmp);
    return rc;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    (void)signum;
    if (a->state_dump && write_state(a) != 0)
        a->rc = CTS_EX_CANTCREAT;
    sb_server_close(a->srv);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

/* Keep --max-connections under the open-file limit, with room for the
 * listener, stdio and files, so the cap answers 503 before accept fails. */
static void clamp_connections(struct sb_options *opt)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur <= 64)
        return;
    if ((rlim_t)opt->max_connections > rl.rlim_cur - 32)
        opt->max_connections = (long)(rl.rlim_cur - 32);
}

/* The demo account's v3 token: deterministic (fixed iat/exp), registered in
 * the model; OWNED. */
static char *demo_token(struct sb_server *srv, struct sb_model *m)
{
    struct sb_account *acct = sb_account_find(m, "demo");
    if (!acct || !sb_app_find(m, DEMO_V3_CLIENT))
        return NULL;
    char *tok = sb_mint_v3(srv, DEMO_V3_CLIENT, acct, DEMO_IAT, DEMO_EXP);
    sb_token_add(m, tok, SB_API_V3, DEMO_V3_CLIENT, acct, DEMO_IAT, DEMO_EXP);
    return tok;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},
        {"accounts", required_argument, NULL, 'a'},
        {"rate", required_argument, NULL, 'r'},
        {"daily-quota", required_argument, NULL, 'q'},
        {"fault-rate", required_argument, NULL, 'f'},
        {"fault-seed", required_argument, NULL, 's'},
        {"latency-ms", required_argument, NULL, 'l'},
        {"slow-ms", required_argument, NULL, 'S'},
        {"state-dump", required_argument, NULL, 'd'},
        {"faults", required_argument, NULL, 'F'},
        {"print-demo-token", no_argument, NULL, 'T'},
        {"verbose", no_argument, NULL, 'v'},
        {"token-rate", required_argument, NULL, 'R'},
        {"token-ttl", required_argument, NULL, 'L'},
        {"activity-ms", required_argument, NULL, 'A'},
        {"window", required_argument, NULL, 'w'},
        {"foreign-load", required_argument, NULL, 'g'},
        {"header-timeout-ms", required_argument, NULL, 'x'},
        {"body-timeout-ms", required_argument, NULL, 'b'},
        {"idle-timeout-ms", required_argument, NULL, 'i'},
        {"max-connections", required_argument, NULL, 'm'},
        {"max-body-total", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct sb_options opt;
    struct cts_error err = {0};
    struct app a;
    int print_token = 0, c;
    long n;

    memset(&opt, 0, sizeof opt);
    memset(&a, 0, sizeof a);
    opt.host = "127.0.0.1";
    opt.port = 8080;
    opt.limits.rate = 4;
    opt.limits.quota = 10000;
    opt.limits.window = SB_WINDOW_ARRIVALS;
    opt.header_timeout_ms = 10000;
    opt.body_timeout_ms = 30000;
    opt.idle_timeout_ms = 60000;
    opt.max_connections = 1000;
    opt.max_body_total = 64u * 1024 * 1024;
    opt.fault_seed = 1;
    opt.slow_ms = 3000;
    cts_log_set_prog("ctct-sandbox");
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (cts_parse_long(optarg, 0, 65535, &n) != 0)
                return bad_usage("bad --port: %s", optarg);
            opt.port = (int)n;
            break;
        case 'H': opt.host = optarg; break;
        case 'a': opt.accounts = optarg; break;
        case 'r':
            if (cts_parse_long(optarg, 0, 1000000000L, &n) != 0)
                return bad_usage("bad --rate: %s", optarg);
            opt.limits.rate = n;
            break;
        case 'q':
            if (cts_parse_long(optarg, 0, 1000000000000L, &n) != 0)
                return bad_usage("bad --daily-quota: %s", optarg);
            opt.limits.quota = n;
            break;
        case 'f':
            if (parse_double(optarg, &opt.fault_rate) != 0)
                return bad_usage("bad --fault-rate (0..1): %s", optarg);
            break;
        case 's':
            if (cts_parse_long(optarg, 0, 0x7fffffffffffffffL, &n) != 0)
                return bad_usage("bad --fault-seed: %s", optarg);
            opt.fault_seed = (uint64_t)n;
            break;
        case 'l':
            if (cts_parse_long(optarg, 0, 600000, &n) != 0)
                return bad_usage("bad --latency-ms: %s", optarg);
            opt.latency_ms = n;
            break;
        case 'S':
            if (cts_parse_long(optarg, 0, 600000, &n) != 0)
                return bad_usage("bad --slow-ms: %s", optarg);
            opt.slow_ms = n;
            break;
        case 'w':
            if (sb_window_parse(optarg, &opt.limits.window) != 0)
                return bad_usage("bad --window (arrivals|admitted): %s",
                                 optarg);
            break;
        case 'g':
            if (cts_parse_long(optarg, 0, 100000, &n) != 0)
                return bad_usage("bad --foreign-load (0..100000): %s", optarg);
            opt.limits.foreign_load = n;
            break;
        case 'x':
        case 'b':
        case 'i': {
            long *to = c == 'x'   ? &opt.header_timeout_ms
                       : c == 'b' ? &opt.body_timeout_ms
                                  : &opt.idle_timeout_ms;
            const char *name = c == 'x'   ? "header-timeout-ms"
                               : c == 'b' ? "body-timeout-ms"
                                          : "idle-timeout-ms";
            if (cts_parse_long(optarg, 0, 86400000L, to) != 0)
                return bad_usage("bad --%s: %s", name, optarg);
            break;
        }
        case 'm':
            if (cts_parse_long(optarg, 1, 1000000L, &n) != 0)
                return bad_usage("bad --max-connections: %s", optarg);
            opt.max_connections = n;
            break;
        case 'M':
            if (cts_parse_long(optarg, 1, 1L << 40, &n) != 0)
                return bad_usage("bad --max-body-total: %s", optarg);
            opt.max_body_total = (size_t)n;
            break;
        case 'd': opt.state_dump = optarg; break;
        case 'F': opt.faults_file = optarg; break;
        case 'T': print_token = 1; break;
        case 'v': opt.verbose = 1; break;
        case 'R':
        case 'L':
        case 'A': {
            /* Options of oauth.c/bulk.c, kept there (sb_oauth.h). */
            const char *name = c == 'R'   ? "token-rate"
                               : c == 'L' ? "token-ttl"
                                          : "activity-ms";
            if (sbo_set_option(name, optarg) != 0)
                return bad_usage("bad --%s: %s", name, optarg);
            break;
        }
        case 'h': fputs(usage_text, stdout); return CTS_EX_OK;
        default:
            return bad_usage("unknown or incomplete option: %s",
                             argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument: %s", argv[optind]);

    signal(SIGPIPE, SIG_IGN);
    clamp_connections(&opt);
    a.model = sb_model_new();
    if (opt.accounts)
        a.rc = sb_model_load_file(a.model, opt.accounts, &err);
    else
        a.rc = sb_model_load_demo(a.model);
    if (a.rc != 0) {
        fprintf(stderr, "ctct-sandbox: %s\n", err.msg);
        sb_model_free(a.model);
        return CTS_EX_CONFIG;
    }
    if (uv_loop_init(&a.loop) != 0) {
        sb_model_free(a.model);
        return CTS_EX_SOFTWARE;
    }
    a.srv = sb_server_new(&opt, a.model, &a.loop);
    char *tok = demo_token(a.srv, a.model);
    if (print_token) {
        int rc = CTS_EX_OK;
        if (tok)
            printf("%s\n", tok);
        else {
            fprintf(stderr, "ctct-sandbox: no demo account/client\n");
            rc = CTS_EX_CONFIG;
        }
        free(tok);
        sb_server_free(a.srv);
        uv_loop_close(&a.loop);
        sb_model_free(a.model);
        return rc;
    }
    free(tok);
    if (opt.faults_file) {
        json_error_t jerr;
        json_t *j = json_load_file(opt.faults_file, 0, &jerr);
        if (!j || sb_faults_load_json(sb_server_faults(a.srv), j, &err) != 0) {
            fprintf(stderr, "ctct-sandbox: %s: %s\n", opt.faults_file,
                    j ? err.msg : jerr.text);
            json_decref(j);
            a.rc = CTS_EX_CONFIG;
            goto out;
        }
        json_decref(j);
    }
    sb_admin_register(a.srv);
    sb_v2_register(a.srv);
    sb_v3_register(a.srv);
    if (sb_oauth_register)
        sb_oauth_register(a.srv);
    if (sb_bulk_register)
        sb_bulk_register(a.srv);
    if (sb_server_listen(a.srv, &err) != 0) {
        fprintf(stderr, "ctct-sandbox: %s\n", err.msg);
        a.rc = err.code == CTS_EUSAGE ? CTS_EX_USAGE : CTS_EX_UNAVAILABLE;
        sb_server_close(a.srv);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        goto out;
    }
    a.state_dump = opt.state_dump;
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    printf("listening on %s\n", sb_server_base_url(a.srv));
    if (fflush(stdout) != 0) {
        a.rc = CTS_EX_SOFTWARE;
        on_signal(&a.sigterm, SIGTERM);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
out:
    sb_server_free(a.srv);
    if (uv_loop_close(&a.loop) != 0)
        fprintf(stderr, "ctct-sandbox: loop not empty at exit\n");
    sb_model_free(a.model);
    return a.rc;
}
