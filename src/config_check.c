/*
 * config_check.c — the rules a configured path or URL must pass, shared by
 * config.c and the commands (cts_config.h): a config or token file readable
 * by others is refused (as ssh does), plain http only to loopback, and the
 * same rule for the proxy a URL would go through.
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
