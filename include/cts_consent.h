/*
 * cts_consent.h — permission to send: the request bodies and reply parsers
 * of the consent-safe per-contact path (v3 and v2), of unsubscribing a
 * contact on their behalf, and of listing the account's unsubscribed
 * contacts.  Pure JSON work with jansson: no I/O.
 *
 * The rules (CAN-SPAM, CASL and Constant Contact's terms) they encode:
 *  - only a contact can re-subscribe themself, so a contact who is
 *    unsubscribed (v3 permission_to_send "unsubscribed", v2 status OPTOUT)
 *    is never written: the merge functions refuse with
 *    CTS_CONSENT_OPTED_OUT and the caller reports the row `opted-out`;
 *  - an account import never claims consent it was not given: new v3
 *    contacts are POSTed with create_source "Account" and
 *    permission_to_send "implicit" (cts_api_v3_contact_body), new v2
 *    contacts with action_by=ACTION_BY_OWNER, and an existing contact's
 *    permission is sent back exactly as the account holds it;
 *  - updating never loses data: a v3 PUT replaces every top-level field,
 *    so the body is the existing contact (read with
 *    include=custom_fields,list_memberships,phone_numbers,street_addresses)
 *    with the row's values laid over it.
 *
 * The per-contact sequences these serve (implicit permission):
 *   v3  POST /contacts (cts_api_v3_contact_body) → 201 created
 *       → 409: GET /contacts?cts_consent_v3_search_query()
 *         → cts_consent_v3_parse_search → cts_consent_v3_merge
 *         → PUT /contacts/{id} (cts_consent_contact_path) or nothing
 *   v2  POST /contacts?action_by=ACTION_BY_OWNER (cts_api_v2_contact_body)
 *       → 409: GET /contacts?email= (cts_api_v2_parse_search)
 *         → cts_consent_v2_merge → PUT /contacts/{id}?action_by=... or
 *           nothing
 *   opt_out rows: v3 GET as above → cts_consent_v3_unsubscribe → PUT;
 *                 v2 GET → cts_consent_v2_opted_out → DELETE /contacts/{id}
 *
 * Ownership: every char * returned or stored through an out-pointer is
 * owned by the caller (free()); inputs are borrowed.  Parsers never crash
 * on garbage (any length, no NUL needed) and return CTS_EJSON for a body
 * that is not the expected JSON, with every out-pointer set to NULL.
 */
#ifndef CTS_CONSENT_H
#define CTS_CONSENT_H

#include <stddef.h>

#include <jansson.h>

#include "cts_api.h"
#include "cts_config.h"
#include "cts_contact.h"
#include "cts_util.h"

/* What a merge or unsubscribe decided. */
enum cts_consent_rc {
    CTS_CONSENT_WRITE = 0,     /* *body is the request to send */
    CTS_CONSENT_UNCHANGED = 1, /* the contact already holds it all */
    CTS_CONSENT_OPTED_OUT = 2  /* unsubscribed in the account: send nothing */
};

/* v3 include= for reading a contact whole before a PUT. */
#define CTS_CONSENT_V3_INCLUDE                                                 \
    "custom_fields,list_memberships,phone_numbers,street_addresses"

/* ---- v3 ---- */

/*
 * The POST /contacts body of a new contact (cts_api_v3_contact_body):
 * CTS_PERM_IMPLICIT keeps its create_source "Account" and
 * permission_to_send "implicit"; CTS_PERM_EXPLICIT (each row is the
 * contact's own sign-up) sends create_source "Contact" and
 * permission_to_send "explicit".  Owned, or NULL with err.
 */
char *cts_consent_v3_create_body(const struct cts_contact *c,
                                 char *const *lists, size_t nlists,
                                 const struct cts_cf_ids *cf,
                                 enum cts_permission perm,
                                 struct cts_error *err);

/* "email=<escaped>&status=all&include=CTS_CONSENT_V3_INCLUDE": status=all
 * also finds deleted contacts (a 409 on POST may be one). Owned. */
char *cts_consent_v3_search_query(const char *email);

/*
 * GET /contacts?email= reply {"contacts":[contact...],...}: the first
 * contact's contact_id and the contact itself re-serialised (owned).  No
 * contact: returns 0 with both NULL.
 */
int cts_consent_v3_parse_search(const char *body, size_t len, char **contact_id,
                                char **contact_json);

/*
 * Is this v3 contact (a ContactResource, NUL-terminated JSON) unsubscribed
 * (email_address.permission_to_send "unsubscribed")?  Returns 1 with
 * *since = its email_address.opt_out_date (owned; NULL when absent), 0
 * when not, or CTS_EJSON.  since may be NULL.
 */
int cts_consent_v3_opted_out(const char *contact_json, char **since);

/* v3: is the contact deleted (a "deleted_at" date; only a search with
 * status=all finds one)?  1, 0, or CTS_EJSON. */
int cts_consent_v3_deleted(const char *contact_json);

/*
 * The PUT /contacts/{id} body that updates the existing contact
 * (contact_json, NUL-terminated, read with CTS_CONSENT_V3_INCLUDE) with the
 * row c and the lists:
 *   - first_name, last_name, job_title, company_name, birthday, anniversary
 *     from the row where it has them, else the contact's own;
 *   - email_address {address, permission_to_send} exactly as the account
 *     holds them (never changed by an import); update_source "Account";
 *   - list_memberships: the contact's lists plus the new ones (≤ 50);
 *   - custom_fields merged by custom_field_id (the row's value replaces
 *     that field's, the others stay; ≤ 25);
 *   - phone_numbers / street_addresses kept; the one of the kind the row
 *     carries ("home") takes the row's values (an address member the row
 *     lacks, e.g. the street when the file has only a city column, stays);
 *     with no such entry the row's is added, unless the contact already
 *     has the API's maximum of 3 (then the contact's are kept as they are);
 *   - taggings and notes, when the contact has them, sent back as they are.
 * Row values are shaped and checked by cts_api_v3_contact_body (custom
 * field names resolved through cf).
 * Returns CTS_CONSENT_WRITE with *body (owned), CTS_CONSENT_UNCHANGED
 * (*body NULL: the PUT would change nothing), CTS_CONSENT_OPTED_OUT (*body
 * NULL, *since as cts_consent_v3_opted_out; since may be NULL), CTS_EJSON
 * when contact_json is not a contact with an email address, or CTS_EDATA
 * (err says why: an unknown custom field, more than 50 lists...).
 */
int cts_consent_v3_merge(const char *contact_json, const struct cts_contact *c,
                         char *const *lists, size_t nlists,
                         const struct cts_cf_ids *cf, char **body, char **since,
                         struct cts_error *err);

/*
 * The PUT /contacts/{id} body that unsubscribes the existing contact on
 * their behalf (they asked by phone, in the CRM, in the source file): the
 * contact as it is, with email_address.permission_to_send "unsubscribed",
 * email_address.opt_out_reason = reason (borrowed; NULL sends null) and
 * update_source "Contact".  Returns CTS_CONSENT_WRITE with *body, or
 * CTS_CONSENT_OPTED_OUT (*body NULL) when the contact already is
 * unsubscribed, or CTS_EJSON.
 */
int cts_consent_v3_unsubscribe(const char *contact_json, const char *reason,
                               char **body, struct cts_error *err);

/* ---- v2 ---- */

/* The action_by query parameter: "action_by=ACTION_BY_OWNER" for
 * implicit, "action_by=ACTION_BY_VISITOR" for explicit (static). */
const char *cts_consent_v2_action_by(enum cts_permission p);

/*
 * Is this v2 contact (NUL-terminated JSON) opted out (status OPTOUT, on the
 * contact or its first email address)?  1 with *since =
 * email_addresses[0].opt_out_date (owned, may be NULL), 0, or CTS_EJSON.
 */
int cts_consent_v2_opted_out(const char *contact_json, char **since);

/*
 * The PUT /contacts/{id} body for an existing v2 contact:
 * cts_api_v2_merge_update (everything kept, the row's fields set, lists
 * merged), refused for an opted-out contact.  Returns CTS_CONSENT_WRITE
 * with *body, CTS_CONSENT_UNCHANGED, CTS_CONSENT_OPTED_OUT (with *since as
 * cts_consent_v2_opted_out; since may be NULL), or a negative code with
 * err.  An opt_out row is not merged: DELETE /contacts/{id} opts it out.
 */
int cts_consent_v2_merge(const char *contact_json, const struct cts_contact *c,
                         char *const *lists, size_t nlists, char **body,
                         char **since, struct cts_error *err);

/* ---- both ---- */

/* "contacts/<escaped id>" for PUT and DELETE (join with cts_api_url).
 * Owned. */
char *cts_consent_contact_path(const char *contact_id);

/* ---- the account's unsubscribed contacts ---- */

/*
 * Query of one listing of unsubscribed contacts, 500 a page:
 *   v3 "status=unsubscribed&limit=500[&updated_after=SINCE]"
 *   v2 "status=OPTOUT&limit=500[&modified_since=SINCE]"
 * for GET /contacts.  since (ISO-8601, borrowed) may be NULL: everyone.
 * Owned.
 */
char *cts_consent_optouts_query(enum cts_api api, const char *since);

/* Called once per unsubscribed contact of a page: email as the API wrote
 * it, opt_out_date (ISO-8601) or NULL.  Both borrowed for the call. */
typedef void (*cts_consent_optout_fn)(void *arg, const char *email,
                                      const char *opt_out_date);

/*
 * fn for each entry of one page's items array (v3 "contacts", v2
 * "results"; borrowed) that really is unsubscribed (v3 permission_to_send
 * "unsubscribed", v2 status OPTOUT), synchronously.  Returns how many.
 */
size_t cts_consent_take_optouts(enum cts_api api, const json_t *items,
                                cts_consent_optout_fn fn, void *arg);

/*
 * Parse one page of the listing: v3 {"contacts":[{email_address:{address,
 * permission_to_send, opt_out_date}}], "_links":{"next":{"href"}}}, v2
 * {"results":[{status, email_addresses:[{email_address, opt_out_date}]}],
 * "meta":{"pagination":{"next_link"}}}.  fn runs (synchronously) for each
 * entry that really is unsubscribed (v3 permission_to_send "unsubscribed",
 * v2 status OPTOUT): a server that ignored the status filter never makes
 * an active contact look opted out.  *next = the next page's link (owned;
 * NULL on the last page); *count (may be NULL) = entries passed to fn.
 * Returns 0 or CTS_EJSON (fn may have run for earlier entries).
 */
int cts_consent_parse_optouts(enum cts_api api, const char *body, size_t len,
                              cts_consent_optout_fn fn, void *arg, char **next,
                              size_t *count);

/*
 * The URL of the next page: a link the API gave (an absolute URL, or a
 * path such as "/v3/contacts?cursor=..." joined to the scheme and host of
 * base_url), plus api_key for v2 (NULL for v3), in *url (owned).  The link
 * is followed only on base_url's scheme, host and port (cts_url_follow):
 * anything else returns CTS_EHTTP with err naming the link (exit code 69)
 * and *url NULL, never "no next page".  0 on success.
 */
int cts_consent_next_url(const char *base_url, const char *next,
                         const char *api_key, char **url,
                         struct cts_error *err);

/* ---- dates and messages ---- */

/*
 * ISO-8601 date-time as the APIs write it ("2024-03-05T14:40:41.271Z",
 * "2024-03-05T14:40:41+01:00", "2024-03-05") to Unix seconds; -1 when it
 * is not one.
 */
long cts_consent_parse_time(const char *iso);

/* Unix seconds to "YYYY-MM-DDTHH:MM:SSZ" in buf (≥ 21 bytes); returns buf
 * ("" for t ≤ 0). */
char *cts_consent_format_time(long t, char *buf, size_t n);

/*
 * The report message of an opted-out row: "unsubscribed since 2024-03-05;
 * left alone" (the date part of since, an ISO-8601 date or date-time), or
 * "unsubscribed; left alone" when since is NULL or not a date.  Returns
 * buf.
 */
char *cts_consent_optout_message(const char *since, char *buf, size_t n);

#endif /* CTS_CONSENT_H */
