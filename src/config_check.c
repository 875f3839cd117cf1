/*
 * config_check.c — the rules a configured path or URL must pass, shared by
 * config.c and the commands (cts_config.h): a config or token file readable
 * by others is refused (as ssh does), plain http only to loopback, and the
 * same rule for the proxy a URL would go through; and for `auth`, every
 * problem of its configuration gathered into one list.
 */
#include "cts_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cts_redirect.h"
#include "cts_secret.h"

int cts_config_check_perms(const char *path, struct cts_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        return cts_error_setx(err, -e, CTS_EX_CONFIG, "cannot read '%s': %s",
                              path, strerror(e));
    }
    /* ssh's rule for private keys: nobody but the owner may touch it. */
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "permissions %04o for '%s' are too open; "
                              "chmod 600 %s",
                              (unsigned)(st.st_mode & 07777), path, path);
    return 0;
}

int cts_host_is_loopback(const char *host)
{
    unsigned char a4[4], a6[16];
    static const unsigned char v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0, 0, 0, 0, 0, 1};
    if (host == NULL)
        return 0;
    if (cts_streq_nocase(host, "localhost") ||
        cts_streq_nocase(host, "localhost."))
        return 1;
    if (inet_pton(AF_INET, host, a4) == 1)
        return a4[0] == 127;
    if (inet_pton(AF_INET6, host, a6) == 1)
        return memcmp(a6, v6_loop, 16) == 0;
    return 0;
}

int cts_config_check_url(const char *what, const char *url,
                         struct cts_error *err)
{
    struct cts_uri u;
    size_t n;
    int rc = 0;

    if (url == NULL)
        return 0;
    /* cts_uri_parse: an absolute http(s) URL with a host, the scheme
     * compared case-insensitively (RFC 3986), no spaces or controls. */
    if (cts_uri_parse(url, &u) != 0)
        return cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                              "%s '%s' must be an https:// URL with a host",
                              what, url);
    if (strcmp(u.scheme, "http") == 0) {
        /* The loopback test wants an IPv6 address without brackets. */
        char host[256];
        n = strlen(u.host);
        if (u.host[0] == '[' && n >= 2 && n - 2 < sizeof(host))
            snprintf(host, sizeof(host), "%.*s", (int)(n - 2), u.host + 1);
        else
            snprintf(host, sizeof(host), "%s", u.host);
        if (!cts_host_is_loopback(host))
            rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                                "%s '%s' is plain http:// to a host that is "
                                "not loopback; credentials would travel in "
                                "clear text — use https://",
                                what, url);
    }
    cts_uri_free(&u);
    return rc;
}

/* 1 when no_proxy (borrowed, libcurl's syntax: comma-separated names,
 * domain suffixes, "*") exempts host.  Only the forms that certainly
 * match are recognised: a miss here means "proxied", the safe side. */
static int no_proxy_matches(const char *no_proxy, const char *host)
{
    const char *p = no_proxy;
    size_t hl = strlen(host);

    while (p != NULL && *p != '\0') {
        size_t n;
        while (*p == ' ' || *p == ',')
            p++;
        n = strcspn(p, ", ");
        if (n == 1 && *p == '*')
            return 1;
        if (n > 0 && *p == '.') {
            p++;
            n--;
        }
        if (n > 0 && n <= hl && strncasecmp(host + hl - n, p, n) == 0 &&
            (n == hl || host[hl - n - 1] == '.'))
            return 1;
        p += n;
    }
    return 0;
}

int cts_config_check_proxy(const char *what, const char *url,
                           struct cts_error *err)
{
    struct cts_uri u;
    const char *proxy = NULL, *var = NULL, *np, *h, *end, *at;
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    char host[256], target[256];
    size_t i, n;
    int plain, rc = 0;

    if (url == NULL || cts_uri_parse(url, &u) != 0)
        return 0;
    /* https:// goes through a proxy as a CONNECT tunnel: TLS end to end. */
    plain = strcmp(u.scheme, "http") == 0;
    n = strlen(u.host);
    if (u.host[0] == '[' && n >= 2)
        snprintf(target, sizeof(target), "%.*s", (int)(n - 2), u.host + 1);
    else
        snprintf(target, sizeof(target), "%s", u.host);
    cts_uri_free(&u);
    if (!plain)
        return 0;
    /* libcurl's choice for an http:// URL: http_proxy (lower case only),
     * then all_proxy / ALL_PROXY, unless no_proxy / NO_PROXY exempts the
     * host. */
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]) && proxy == NULL; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && *v != '\0') {
            proxy = v;
            var = vars[i];
        }
    }
    if (proxy == NULL)
        return 0;
    np = getenv("no_proxy");
    if (np == NULL || *np == '\0')
        np = getenv("NO_PROXY");
    if (np != NULL && no_proxy_matches(np, target))
        return 0;
    /* The proxy's host: after "scheme://" and "user:password@". */
    h = strstr(proxy, "://");
    if (h != NULL && h - proxy == 5 && strncasecmp(proxy, "https", 5) == 0)
        return 0; /* an https proxy: the hop to it is encrypted */
    h = h != NULL ? h + 3 : proxy;
    end = h + strcspn(h, "/?#");
    for (at = h; at < end; at++)
        if (*at == '@')
            h = at + 1;
    if (*h == '[') {
        h++;
        n = strcspn(h, "]");
    } else {
        n = strcspn(h, ":/?#");
    }
    snprintf(host, sizeof(host), "%.*s", (int)(n < 255 ? n : 255), h);
    if (!cts_host_is_loopback(host)) {
        char *shown = cts_url_redact(proxy);
        rc = cts_error_setx(err, CTS_ECONFIG, CTS_EX_CONFIG,
                            "%s '%s' is plain http://, and %s=%s sends it "
                            "through a proxy that is not loopback: the "
                            "credentials would travel in clear text — use "
                            "https://, an https:// or loopback proxy, or "
                            "add %s to no_proxy",
                            what, url, var, shown, target);
        free(shown);
    }
    return rc;
}

/* ---- `auth`: every problem at once ---- */

void cts_config_problems_init(struct cts_config_problems *p)
{
    memset(p, 0, sizeof(*p));
}

void cts_config_problems_free(struct cts_config_problems *p)
{
    size_t i;
    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++)
        free(p->v[i].text);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

/* Take text (owned) as the next problem. */
static void add_problem(struct cts_config_problems *p, int exit_code,
                        char *text)
{
    p->v = cts_xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
    p->v[p->n].exit_code = exit_code;
    p->v[p->n].text = text;
    p->n++;
}

/* A URL or proxy rule's refusal (err filled) as the next problem. */
static void add_error(struct cts_config_problems *p, int rc,
                      const struct cts_error *err)
{
    if (rc != 0)
        add_problem(p, err->exit_code != 0 ? err->exit_code : CTS_EX_CONFIG,
                    cts_xstrdup(err->msg));
}

/* Constant Contact's v3 scopes; ctct-sync itself needs the first two. */
static const char *const v3_scopes[] = {"contact_data",
                                        "account_read",
                                        "offline_access",
                                        "campaign_data",
                                        "account_update",
                                        "billing_data",
                                        NULL};

/* --scopes ("a b", "a,b" or "a+b"): at least one, every one known, and the
 * two ctct-sync's own calls need. */
static void check_scopes(const char *scopes, struct cts_config_problems *p)
{
    const char *s = scopes;
    int have_contact = 0, have_account = 0, any = 0;

    while (*s != '\0') {
        size_t n, i;
        s += strspn(s, " ,+\t");
        n = strcspn(s, " ,+\t");
        if (n == 0)
            break;
        any = 1;
        for (i = 0; v3_scopes[i] != NULL; i++)
            if (strlen(v3_scopes[i]) == n && strncmp(s, v3_scopes[i], n) == 0)
                break;
        if (v3_scopes[i] == NULL)
            add_problem(p, CTS_EX_CONFIG,
                        cts_xasprintf("--scopes: '%.*s' is not a Constant "
                                      "Contact scope (the server would "
                                      "answer invalid_scope); the scopes "
                                      "are contact_data, account_read, "
                                      "offline_access, campaign_data, "
                                      "account_update and billing_data",
                                      (int)(n < 80 ? n : 80), s));
        have_contact |= i == 0;
        have_account |= i == 1;
        s += n;
    }
    if (!any)
        add_problem(p, CTS_EX_CONFIG,
                    cts_xstrdup("--scopes is empty; leave it out for the "
                                "default (contact_data account_read "
                                "offline_access)"));
    else if (!have_contact || !have_account)
        add_problem(
            p, CTS_EX_CONFIG,
            cts_xasprintf("--scopes lacks %s: ctct-sync needs "
                          "contact_data (to import) and "
                          "account_read (for the account check); "
                          "add %s",
                          !have_contact ? "contact_data" : "account_read",
                          !have_contact && !have_account ? "both" : "it"));
}

/* The token file is written at the end of the flow: a directory that does
 * not exist or cannot be written would waste the authorization (a code
 * lives 5 minutes and works once). */
static void check_token_dir(const char *path, struct cts_config_problems *p)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    struct stat st;

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        add_problem(p, CTS_EX_CONFIG,
                    cts_xasprintf("--token-file '%s' is a directory; name "
                                  "the file to save the tokens in, e.g. "
                                  "%s%sctct-token.json",
                                  path, path,
                                  path[strlen(path) - 1] == '/' ? "" : "/"));
        return;
    }
    if (slash == NULL)
        dir = cts_xstrdup(".");
    else if (slash == path)
        dir = cts_xstrdup("/");
    else
        dir = cts_xstrndup(path, (size_t)(slash - path));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        add_problem(p, CTS_EX_CONFIG,
                    cts_xasprintf("--token-file '%s': the directory '%s' "
                                  "does not exist; create it (mkdir -p "
                                  "%s) or choose another path",
                                  path, dir, dir));
    else if (access(dir, W_OK | X_OK) != 0)
        add_problem(p, CTS_EX_CONFIG,
                    cts_xasprintf("--token-file '%s': the directory '%s' "
                                  "is not writable by this user; the "
                                  "tokens could not be saved",
                                  path, dir));
    free(dir);
}

int cts_config_check_auth(const struct cts_config *cfg,
                          struct cts_config_problems *out)
{
    struct cts_error err;
    size_t first = out->n;
    int v2 = cfg->api == CTS_API_V2, rc;

    /* First, because the wrong redirect URI is the mistake that costs a
     * browser round trip and ends in redirect_uri_mismatch. */
    if (!cfg->device_flow) {
        const char *redirect = cfg->redirect_uri != NULL
                                   ? cfg->redirect_uri
                                   : cfg->registered_redirect_uri;
        struct cts_buf why;
        cts_buf_init(&why, 0);
        if (cts_redirect_check(redirect, cfg->registered_redirect_uri,
                               cfg->auth_url, &why) != CTS_REDIR_OK)
            add_problem(out, CTS_EX_CONFIG,
                        cts_xasprintf("bad redirect URI: %s", why.data));
        cts_buf_free(&why);
    } else if (v2) {
        add_problem(out, CTS_EX_USAGE,
                    cts_xstrdup("--device: the device flow exists only for "
                                "v3 (use --api v3, or leave --device out "
                                "for the v2 server flow)"));
    }
    if (cfg->api_key == NULL)
        add_problem(out, CTS_EX_CONFIG,
                    cts_xstrdup("no API key: auth needs the application's "
                                "API key (client id): --api-key KEY, "
                                "CTCT_API_KEY or api_key in the config "
                                "file; it is shown with the application on "
                                "the Constant Contact developer portal "
                                "(https://app.constantcontact.com/pages/dma/"
                                "portal/)"));
    if (cfg->token_file == NULL)
        add_problem(out, CTS_EX_CONFIG,
                    cts_xstrdup("no token file: auth needs --token-file "
                                "FILE (or CTCT_TOKEN_FILE, or token_file in "
                                "the config file) to save the tokens in"));
    else
        check_token_dir(cfg->token_file, out);
    if (v2 && !cfg->device_flow && cfg->client_secret == NULL)
        add_problem(out, CTS_EX_CONFIG,
                    cts_xstrdup("no client secret: the v2 server flow "
                                "needs it: CTCT_CLIENT_SECRET, "
                                "client_secret in the config file, or "
                                "--client-secret (shown with the API key "
                                "on the developer portal)"));
    if (!v2 && cfg->scopes != NULL)
        check_scopes(cfg->scopes, out);
    rc = cts_config_check_url("--auth-url", cfg->auth_url, &err);
    add_error(out, rc, &err);
    if (rc == 0) {
        rc = cts_config_check_proxy("--auth-url", cfg->auth_url, &err);
        add_error(out, rc, &err);
    }
    rc = cts_config_check_url("--base-url", cfg->base_url, &err);
    add_error(out, rc, &err);
    if (rc == 0) {
        rc = cts_config_check_proxy("--base-url", cfg->base_url, &err);
        add_error(out, rc, &err);
    }
    return out->n > first ? out->v[first].exit_code : 0;
}
