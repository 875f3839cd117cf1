/*
 * contacts.c — the contact-by-id handlers v2 and v3 share (GET, DELETE and
 * the storing end of PUT).  They differ only in how a contact is rendered
 * and in their error keys, which a struct sb_dialect carries.
 */
#include "sb_int.h"

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
