/*
 * redirect.c — redirect-URI parsing and diagnosis, and plain-words
 * explanations of OAuth error codes.  Pure: no I/O, no globals.
 *
 * Authorization servers compare the redirect URI byte for byte with the one
 * registered for the API key (one user got
 * redirect_uri_mismatch just by switching http to https).  So the checks
 * here compare the strings as written; parsing only serves to name the
 * component that differs and to recognise the well-known mistakes.
 */
#include "cts_redirect.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void cts_uri_free(struct cts_uri *u)
{
    if (u == NULL)
        return;
    free(u->scheme);
    free(u->host);
    free(u->port_str);
    free(u->path);
    free(u->query);
    free(u->fragment);
    memset(u, 0, sizeof(*u));
}

static int host_char(int c)
{
    /* RFC 3986 reg-name: unreserved / pct-encoded / sub-delims (minus the
     * ones that would confuse a listener or a shell). */
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
           c == '%';
}

int cts_uri_parse(const char *s, struct cts_uri *out)
{
    const char *p, *auth, *auth_end, *host_end, *at, *q;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->port = -1;
    if (s == NULL || s[0] == '\0')
        return CTS_EUSAGE;
    /* Spaces and control characters are never valid in a URI; a pasted
     * value with a stray newline is the usual cause. */
    for (i = 0; s[i] != '\0'; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
            return CTS_EUSAGE;
    if (!isalpha((unsigned char)s[0]))
        return CTS_EUSAGE;
    for (p = s;
         isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'; p++)
        ;
    if (strncmp(p, "://", 3) != 0)
        return CTS_EUSAGE; /* relative, or "host:port/..." without scheme */
    out->scheme = cts_xstrndup(s, (size_t)(p - s));
    for (i = 0; out->scheme[i] != '\0'; i++)
        out->scheme[i] = (char)tolower((unsigned char)out->scheme[i]);
    if (strcmp(out->scheme, "http") != 0 && strcmp(out->scheme, "https") != 0)
        goto bad;

    auth = p + 3;
    auth_end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(auth_end - auth));
    if (at != NULL) {
        out->has_userinfo = 1;
        auth = at + 1;
    }
    if (*auth == '[') {
        host_end = memchr(auth, ']', (size_t)(auth_end - auth));
        if (host_end == NULL)
            goto bad;
        host_end++;
        for (q = auth + 1; q < host_end - 1; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                goto bad;
    } else {
        host_end = auth;
        while (host_end < auth_end && *host_end != ':') {
            if (!host_char((unsigned char)*host_end))
                goto bad;
            host_end++;
        }
    }
    if (host_end == auth)
        goto bad;
    out->host = cts_xstrndup(auth, (size_t)(host_end - auth));
    for (i = 0; out->host[i] != '\0'; i++)
        out->host[i] = (char)tolower((unsigned char)out->host[i]);
    if (host_end < auth_end) {
        char *end;
        long port;
        if (*host_end != ':' || host_end + 1 == auth_end)
            goto bad;
        out->port_str =
            cts_xstrndup(host_end + 1, (size_t)(auth_end - host_end - 1));
        for (i = 0; out->port_str[i] != '\0'; i++)
            if (!isdigit((unsigned char)out->port_str[i]))
                goto bad;
        port = strtol(out->port_str, &end, 10);
        if (*end != '\0' || port < 1 || port > 65535)
            goto bad;
        out->port = port;
    } else {
        out->port = strcmp(out->scheme, "https") == 0 ? 443 : 80;
    }

    p = auth_end;
    q = p + strcspn(p, "?#");
    out->path = cts_xstrndup(p, (size_t)(q - p));
    p = q;
    if (*p == '?') {
        q = p + 1 + strcspn(p + 1, "#");
        out->query = cts_xstrndup(p + 1, (size_t)(q - p - 1));
        p = q;
    }
    if (*p == '#')
        out->fragment = cts_xstrdup(p + 1);
    return 0;
bad:
    cts_uri_free(out);
    out->port = -1;
    return CTS_EUSAGE;
}

static int is_loopback_host(const char *h)
{
    if (h == NULL)
        return 0;
    if (strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0)
        return 1;
    /* 127.0.0.0/8: four dotted decimal parts starting with 127. */
    if (strncmp(h, "127.", 4) == 0) {
        const char *p = h + 4;
        int parts = 2, digits = 0;
        while (*p != '\0') {
            if (*p == '.') {
                if (digits == 0)
                    return 0;
                parts++;
                digits = 0;
            } else if (!isdigit((unsigned char)*p)) {
                return 0;
            } else {
                digits++;
            }
            p++;
        }
        return parts == 4 && digits > 0;
    }
    return 0;
}

int cts_uri_is_loopback(const struct cts_uri *u)
{
    return u != NULL && is_loopback_host(u->host);
}

/* Hosts of Constant Contact's authorization servers, past and present. */
static const char *const cc_auth_hosts[] = {
    "oauth2.constantcontact.com",   "authz.constantcontact.com",
    "identity.constantcontact.com", "idfed.constantcontact.com",
    "login.constantcontact.com",    NULL};

/* 1 when u is on one of Constant Contact's authorization hosts, or on the
 * host and port of the configured authorization server a (may be NULL). */
static int at_auth_server(const struct cts_uri *u, const struct cts_uri *a)
{
    size_t i;
    for (i = 0; cc_auth_hosts[i] != NULL; i++)
        if (strcmp(u->host, cc_auth_hosts[i]) == 0)
            return 1;
    return a != NULL && strcmp(u->host, a->host) == 0 && u->port == a->port;
}

/* Append "  label: uri" twice and a caret under the first difference. */
static void side_by_side(struct cts_buf *why, const char *given,
                         const char *registered)
{
    size_t i = 0;
    while (given[i] != '\0' && given[i] == registered[i])
        i++;
    cts_buf_appendf(why,
                    "\n    --redirect-uri:   %s"
                    "\n    registered:       %s"
                    "\n                      %*s^ first difference",
                    given, registered, (int)i, "");
}

static int query_has_reserved(const char *query)
{
    static const char *const keys[] = {"code", "state", "error", NULL};
    const char *p = query;
    size_t i, n;
    while (p != NULL && *p != '\0') {
        n = strcspn(p, "=&");
        for (i = 0; keys[i] != NULL; i++)
            if (n == strlen(keys[i]) && strncmp(p, keys[i], n) == 0)
                return 1;
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
    return 0;
}

static int streq0(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

#define EXAMPLE_URI "http://127.0.0.1:53682/callback"

static enum cts_redirect_problem compare_registered(const char *given,
                                                    const struct cts_uri *g,
                                                    const char *registered,
                                                    const struct cts_uri *r,
                                                    struct cts_buf *why)
{
    enum cts_redirect_problem pb;
    const char *what;

    if (strcmp(given, registered) == 0)
        return CTS_REDIR_OK;
    if (g->host != NULL && r->host != NULL && is_loopback_host(g->host) &&
        is_loopback_host(r->host) &&
        (strcmp(g->host, "localhost") == 0) !=
            (strcmp(r->host, "localhost") == 0)) {
        pb = CTS_REDIR_LOCALHOST;
        what = "uses \"localhost\" where the registered URI uses a loopback "
               "address (or the other way round). They reach the same "
               "machine, but the authorization server compares the text "
               "and answers redirect_uri_mismatch";
    } else if (!streq0(g->scheme, r->scheme)) {
        pb = CTS_REDIR_SCHEME;
        what = "has a different scheme (http vs https) from the registered "
               "URI; the match is exact, scheme included";
    } else if (!streq0(g->host, r->host)) {
        pb = CTS_REDIR_HOST;
        what = "has a different host from the registered URI";
    } else if (!streq0(g->port_str, r->port_str)) {
        pb = CTS_REDIR_PORT;
        what = "has a different port from the registered URI (a port "
               "written out and a default port left out also differ)";
    } else if (!streq0(g->path, r->path)) {
        pb = CTS_REDIR_PATH;
        what = "has a different path from the registered URI (a trailing "
               "slash counts)";
    } else if (!streq0(g->query, r->query)) {
        pb = CTS_REDIR_QUERY;
        what = "has a different query string from the registered URI; the "
               "authorization server compares it too, so it breaks the "
               "match";
    } else {
        pb = CTS_REDIR_DIFFERENT;
        what = "is not written exactly like the registered URI (upper/lower "
               "case or escaping); the authorization server compares the "
               "text byte for byte";
    }
    if (why != NULL) {
        cts_buf_appendf(why, "the redirect URI %s:", what);
        side_by_side(why, given, registered);
        cts_buf_appendf(
            why, "\n  Use exactly the URI registered for your API key in the "
                 "developer portal (or register this one there).");
    }
    return pb;
}

enum cts_redirect_problem cts_redirect_check(const char *redirect_uri,
                                             const char *registered,
                                             const char *auth_url,
                                             struct cts_buf *why)
{
    struct cts_uri g, r, a;
    enum cts_redirect_problem pb = CTS_REDIR_OK;
    int auth_ok, reg_ok;

    memset(&r, 0, sizeof(r));
    memset(&a, 0, sizeof(a));
    if (redirect_uri == NULL || redirect_uri[0] == '\0') {
        if (why != NULL)
            cts_buf_appendf(
                why,
                "no redirect URI: pass --redirect-uri with your "
                "application's own callback, exactly as registered for "
                "your API key in the developer portal, e.g. %s",
                EXAMPLE_URI);
        return CTS_REDIR_MISSING;
    }
    if (cts_uri_parse(redirect_uri, &g) != 0) {
        if (why != NULL)
            cts_buf_appendf(
                why,
                "--redirect-uri \"%s\" is not an absolute http:// or "
                "https:// URI (scheme://host[:port]/path, no spaces); "
                "it must be your application's callback exactly as "
                "registered, e.g. %s",
                redirect_uri, EXAMPLE_URI);
        return CTS_REDIR_MALFORMED;
    }
    if (g.has_userinfo) {
        pb = CTS_REDIR_MALFORMED;
        if (why != NULL)
            cts_buf_appendf(why,
                            "--redirect-uri %s contains user:password@; "
                            "a redirect URI never carries credentials",
                            redirect_uri);
        goto out;
    }

    /* The seed's mistake: the redirect URI named the authorization server,
     * so the browser was sent back to the server and the flow looped. */
    auth_ok = auth_url != NULL && cts_uri_parse(auth_url, &a) == 0;
    reg_ok = registered != NULL && registered[0] != '\0' &&
             cts_uri_parse(registered, &r) == 0;
    if (at_auth_server(&g, auth_ok ? &a : NULL)) {
        pb = CTS_REDIR_AUTH_SERVER;
        if (why != NULL) {
            cts_buf_appendf(
                why,
                "--redirect-uri %s points at the authorization server "
                "(%s) itself.\n"
                "  The redirect URI is where the browser is sent back WITH "
                "the authorization code: your application's OWN callback, "
                "exactly as registered for your API key in the developer "
                "portal, e.g. %s (ctct-sync listens there itself). Pointing "
                "it at the authorization server makes the flow loop and end "
                "in redirect_uri_mismatch.",
                redirect_uri, auth_ok ? auth_url : g.host, EXAMPLE_URI);
            if (reg_ok && !at_auth_server(&r, auth_ok ? &a : NULL))
                cts_buf_appendf(why,
                                "\n  The registered redirect URI is %s: "
                                "pass that as --redirect-uri.",
                                registered);
        }
        goto out;
    }
    /* The same mistake made in the developer portal (or the config's
     * redirect_uri): no --redirect-uri can match it and still work. */
    if (reg_ok && at_auth_server(&r, auth_ok ? &a : NULL)) {
        pb = CTS_REDIR_AUTH_SERVER;
        if (why != NULL)
            cts_buf_appendf(
                why,
                "the registered redirect URI %s (--registered-redirect-uri "
                "or the config's redirect_uri) points at the authorization "
                "server itself.\n"
                "  The application's redirect URI must be its OWN callback, "
                "where the browser brings the authorization code back: "
                "register one such as %s in the developer portal, then pass "
                "it as --redirect-uri.",
                registered, EXAMPLE_URI);
        goto out;
    }
    if (g.fragment != NULL) {
        pb = CTS_REDIR_FRAGMENT;
        if (why != NULL)
            cts_buf_appendf(why,
                            "--redirect-uri %s has a #fragment; OAuth 2.0 "
                            "forbids fragments in redirect URIs (RFC 6749 "
                            "3.1.2). Remove everything from '#'.",
                            redirect_uri);
        goto out;
    }
    if (strcmp(g.scheme, "http") == 0 && !cts_uri_is_loopback(&g)) {
        pb = CTS_REDIR_HTTP_REMOTE;
        if (why != NULL)
            cts_buf_appendf(
                why,
                "--redirect-uri %s uses plain http:// to a host other than "
                "this machine: the authorization code would travel "
                "unencrypted, and Constant Contact only accepts http:// for "
                "loopback callbacks. Use https:// for a remote callback, or "
                "a loopback one such as %s.",
                redirect_uri, EXAMPLE_URI);
        goto out;
    }
    if (g.query != NULL && query_has_reserved(g.query)) {
        pb = CTS_REDIR_RESERVED_QUERY;
        if (why != NULL)
            cts_buf_appendf(
                why,
                "--redirect-uri %s already has code=, state= or error= in "
                "its query string; the authorization server appends those "
                "itself, so the callback would receive two of them. Use the "
                "registered callback without them.",
                redirect_uri);
        goto out;
    }
    if (registered != NULL && registered[0] != '\0') {
        if (!reg_ok) {
            pb = CTS_REDIR_REG_MALFORMED;
            if (why != NULL)
                cts_buf_appendf(why,
                                "the registered redirect URI \"%s\" "
                                "(--registered-redirect-uri or the config's "
                                "redirect_uri) is not an absolute http:// or "
                                "https:// URI; copy it from the developer "
                                "portal.",
                                registered);
            goto out;
        }
        pb = compare_registered(redirect_uri, &g, registered, &r, why);
    }
out:
    cts_uri_free(&g);
    cts_uri_free(&r);
    cts_uri_free(&a);
    return pb;
}

void cts_oauth_explain(const char *error, const char *description,
                       const char *redirect_uri, const char *registered,
                       struct cts_buf *out)
{
    const char *e = error != NULL ? error : "(none)";

    cts_buf_appendf(out, "the authorization server answered \"%s\"", e);
    if (description != NULL && description[0] != '\0')
        cts_buf_appendf(out, " (%s)", description);
    cts_buf_appendf(out, ".\n  ");
    if (strcmp(e, "redirect_uri_mismatch") == 0) {
        cts_buf_appendf(
            out, "The redirect URI sent does not match the one registered "
                 "for this API key. The match is exact: scheme (http/https), "
                 "host (localhost is not 127.0.0.1), port and path.");
        if (redirect_uri != NULL && registered != NULL &&
            strcmp(redirect_uri, registered) != 0)
            side_by_side(out, redirect_uri, registered);
        else if (redirect_uri != NULL)
            cts_buf_appendf(out,
                            "\n    --redirect-uri:   %s"
                            "\n  Open your application in the developer "
                            "portal, copy its redirect URI and pass it as "
                            "--redirect-uri (and --registered-redirect-uri "
                            "to have ctct-sync compare them).",
                            redirect_uri);
    } else if (strcmp(e, "invalid_grant") == 0) {
        cts_buf_appendf(
            out, "The authorization code or refresh token was refused: it "
                 "expired, was already used (codes live 5 minutes and work "
                 "once; rotating refresh tokens work once), was issued to "
                 "another API key or redirect URI, or the PKCE verifier does "
                 "not match. Run `ctct-sync auth` again to get new tokens.");
    } else if (strcmp(e, "access_denied") == 0) {
        cts_buf_appendf(
            out, "Access was declined on the Constant Contact consent page "
                 "(or the user may not grant it). Run `ctct-sync auth` "
                 "again and choose Allow, signed in as the account's "
                 "owner.");
    } else if (strcmp(e, "invalid_client") == 0 ||
               strcmp(e, "unauthorized_client") == 0) {
        cts_buf_appendf(
            out, "The API key (client id) or client secret was not "
                 "accepted, or the application is not enabled for this "
                 "flow (PKCE or device flow are settings of the app). Check "
                 "--api-key and --client-secret against the developer "
                 "portal.");
    } else if (strcmp(e, "invalid_scope") == 0) {
        cts_buf_appendf(out, "The scopes requested are not allowed for this "
                             "application; use the default scopes "
                             "(contact_data account_read offline_access).");
    } else if (strcmp(e, "expired_token") == 0) {
        cts_buf_appendf(out, "The device code expired before the code was "
                             "entered; run `ctct-sync auth --device` again "
                             "and complete it sooner.");
    } else {
        cts_buf_appendf(out, "Run `ctct-sync auth` again; if it persists, "
                             "check the application's settings in the "
                             "developer portal.");
    }
}
