/*
 * contacts.c — the contact handlers v2 and v3 share: by id (GET, DELETE and
 * the storing end of PUT), which differ only in how a contact is rendered
 * and in their error keys (a struct sb_dialect), and the cursor paging of
 * contact listings.
 */
#include "sb_int.h"

#include <stdlib.h>
#include <string.h>

const struct sb_dialect sb_dialect_v2 = {
    SB_RENDER_V2,
    sb_res_error_v2,
    "http.status.not_found",
    "The requested contact was not found.",
    "http.status.email_address.conflict",
    "Another contact has this email address.",
};

const struct sb_dialect sb_dialect_v3 = {
    SB_RENDER_V3,
    sb_res_error_v3,
    "contacts.api.not_found",
    "Contact not found.",
    "contacts.api.conflict",
    "Validation failed: EmailAddress is not unique",
};

int sb_reply_contact_get(struct sb_req *req, struct sb_res *res,
                         const struct sb_dialect *d)
{
    sb_contact_ref ref;
    if (sb_contact_by_id(req->account, req->params[0], &ref) != 0) {
        d->error(res, 404, d->not_found_key, d->not_found_msg);
        return SB_REPLY;
    }
    sb_res_json(res, 200, sb_contact_json(req->account, ref, d->render));
    return SB_REPLY;
}

int sb_reply_contact_delete(struct sb_req *req, struct sb_res *res,
                            const struct sb_dialect *d)
{
    sb_contact_ref ref;
    if (sb_contact_by_id(req->account, req->params[0], &ref) != 0 ||
        sb_contact_delete(sb_server_model(req->server), req->account, ref) !=
            0) {
        d->error(res, 404, d->not_found_key, d->not_found_msg);
        return SB_REPLY;
    }
    sb_res_text(res, 204, "application/json", "", 0);
    return SB_REPLY;
}

int sb_reply_contact_replace(struct sb_req *req, struct sb_res *res,
                             const struct sb_dialect *d,
                             struct sb_contact_in *in)
{
    sb_contact_ref ref;
    int rc = sb_contact_upsert(sb_server_model(req->server), req->account, in,
                               SB_UPSERT_REPLACE, req->params[0], &ref, NULL);
    if (rc == SB_EEXIST) {
        d->error(res, 409, d->conflict_key, d->conflict_msg);
        return SB_REPLY;
    }
    if (rc != 0) {
        d->error(res, 404, d->not_found_key, d->not_found_msg);
        return SB_REPLY;
    }
    sb_res_json(res, 200, sb_contact_json(req->account, ref, d->render));
    return SB_REPLY;
}

/* ------------------------------------------------- paged contact lists */

int sb_page_open(struct sb_req *req, const char *cursor_name,
                 struct sb_page *pg)
{
    const char *cursor = sb_query_get(req, cursor_name);
    pg->start = 0;
    pg->base = NULL;
    if (!cursor) {
        pg->base = cts_xstrdup(req->query);
        return 0;
    }
    size_t n;
    char *dec = cts_base64_decode(cursor, strlen(cursor), &n);
    const char *amp;
    long pos;
    char num[24];
    if (!dec || strlen(dec) != n || strncmp(dec, "pos=", 4) != 0 ||
        (amp = strchr(dec, '&')) == NULL ||
        (size_t)(amp - dec - 4) >= sizeof num) {
        free(dec);
        return -1;
    }
    memcpy(num, dec + 4, (size_t)(amp - dec - 4));
    num[amp - dec - 4] = '\0';
    if (cts_parse_long(num, 0, 1L << 40, &pos) != 0) {
        free(dec);
        return -1;
    }
    pg->start = (size_t)pos;
    pg->base = cts_xstrdup(amp + 1);
    free(dec);
    return 0;
}

char *sb_page_param(const struct sb_page *pg, const char *name)
{
    return sb_form_lookup(pg->base, strlen(pg->base), name);
}

size_t sb_page_scan(struct sb_account *acct, const struct sb_query *q,
                    const struct sb_page *pg, size_t limit,
                    json_t *(*render)(struct sb_account *, sb_contact_ref,
                                      void *),
                    void *arg, json_t *out)
{
    size_t n = sb_contact_count(acct), i;
    for (i = pg->start; i < n; i++) {
        if (!sb_contact_match(acct, i, q))
            continue;
        if (json_array_size(out) == limit)
            return i;
        json_array_append_new(out, render(acct, i, arg));
    }
    return (size_t)-1;
}

char *sb_page_link(const struct sb_page *pg, const char *path,
                   const char *cursor_name, size_t next)
{
    char *plain = cts_xasprintf("pos=%zu&%s", next, pg->base);
    char *tok = cts_base64url_encode(plain, strlen(plain));
    char *link = cts_xasprintf("%s?%s=%s", path, cursor_name, tok);
    free(plain);
    free(tok);
    return link;
}

void sb_page_close(struct sb_page *pg)
{
    free(pg->base);
    pg->base = NULL;
}
