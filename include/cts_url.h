/*
 * cts_url.h — following a link a server hands back (the next page of a
 * listing: v3 `_links.next.href`, v2 `meta.pagination.next_link`).
 *
 * Every pager goes through cts_url_follow: the access token (and v2's
 * api_key) is sent only to the scheme, host and port of --base-url, so a
 * server (or anything in between) that answers with a link elsewhere
 * cannot make us hand the credentials to another host, nor downgrade
 * https to http.
 */
#ifndef CTS_URL_H
#define CTS_URL_H

#include "cts_util.h"

/*
 * Resolve link (borrowed: an absolute URL, "//host/path", "/path",
 * "?query" or a relative path) against base_url (borrowed, the validated
 * --base-url), and accept it only when it has base_url's origin: the
 * same scheme, host and port (scheme and host compared case-insensitively,
 * an absent port read as the scheme's default) and no user:password@.
 * On success *out is the absolute URL (owned) and 0 is returned.
 * Otherwise *out is NULL and CTS_EHTTP is returned with err naming the
 * link (secret query values masked) and exit code 69: a reply that points
 * elsewhere is not a reply we can use.
 */
int cts_url_follow(const char *base_url, const char *link, char **out,
                   struct cts_error *err);

#endif /* CTS_URL_H */
