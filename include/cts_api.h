/*
 * cts_api.h — Constant Contact request bodies and response parsers, v2 and
 * v3: contacts, tokeninfo, account summary, lists, OAuth tokens.  Pure JSON
 * work with jansson: no I/O.
 *
 * Ownership: every char * returned or stored through an out-pointer is
 * owned by the caller and freed with free(); json_t * outputs carry a new
 * reference (json_decref).  Inputs are borrowed.
 *
 * Errors: parsers return 0, or CTS_EJSON when the body is not JSON or lacks
 * the required member (they never crash on garbage, any length, no NUL
 * needed); on failure every out-pointer is set to NULL.  Body builders
 * return NULL with err filled (CTS_EDATA) when a value breaks an API limit
 * the mapper should already have caught.
 */
#ifndef CTS_API_H
#define CTS_API_H

#include <stddef.h>

#include <jansson.h>

#include "cts_contact.h"
#include "cts_types.h"
#include "cts_util.h"

/* ---- v3 custom field ids: name -> custom_field_id ---- */
struct cts_cf_id {
    char *name; /* owned */
    char *id;   /* owned (uuid) */
};
struct cts_cf_ids {
    struct cts_cf_id *v; /* owned array */
    size_t n;
};
/* Id for a custom field name (exact match first, then case-insensitive),
 * borrowed from m; NULL when unknown.  m may be NULL. */
const char *cts_cf_ids_find(const struct cts_cf_ids *m, const char *name);
void cts_cf_ids_free(struct cts_cf_ids *m); /* frees; NULL-safe */

/* ---- contact lists ---- */
struct cts_list_info {
    char *id;          /* owned; v2 ids are numbers, returned as strings */
    char *name;        /* owned, may be NULL */
    long member_count; /* -1 when the reply did not say */
};
void cts_list_info_free(struct cts_list_info *lists, size_t n);

/* ---- request bodies (owned JSON strings, compact, UTF-8 kept as is) ---- */

/*
 * v3 POST /contacts/sign_up_form (create or update by email), flat
 * shape: email_address (string), first_name, last_name, job_title,
 * company_name, phone_number, street_address{kind:"home",street,city,state,
 * postal_code,country}, birthday_month/birthday_day (integers, only as a
 * pair), anniversary, list_memberships[1..50], custom_fields
 * [{custom_field_id,value}] (names resolved through cf; a name missing
 * from cf is an error).  Absent fields are omitted, never sent as null.
 */
char *cts_api_v3_signup_body(const struct cts_contact *c, char *const *list_ids,
                             size_t nlists, const struct cts_cf_ids *cf,
                             struct cts_error *err);

/*
 * v3 POST /contacts (create only: 409 when the email exists): email_address
 * {address, permission_to_send:"implicit"}, create_source:"Account",
 * phone_numbers[{phone_number,kind:"home"}], street_addresses[{kind:"home",
 * ...}], list_memberships, custom_fields, birthday, anniversary.
 */
char *cts_api_v3_contact_body(const struct cts_contact *c,
                              char *const *list_ids, size_t nlists,
                              const struct cts_cf_ids *cf,
                              struct cts_error *err);

/*
 * v2 Contact for POST /contacts: email_addresses[{email_address}],
 * lists[{id}], first_name, last_name, company_name, job_title, work_phone,
 * addresses[{address_type:"PERSONAL", line1, city, state_code (US/CA
 * two-letter codes) or state, postal_code, country_code}],
 * custom_fields[{name,value}].  v2 has no birthday/anniversary on a
 * contact; those fields are left out.
 */
char *cts_api_v2_contact_body(const struct cts_contact *c, char *const *lists,
                              size_t nlists, struct cts_error *err);

/*
 * v2 PUT /contacts/{id} body: the existing contact (as returned by GET,
 * borrowed JSON text) with our non-empty fields set and `lists` merged
 * (existing lists kept, each new id added once; ids compared as strings,
 * so 9 and "9" match).  Returns an owned string, or NULL with err
 * (CTS_EJSON for a bad existing contact).
 */
char *cts_api_v2_merge_update(const char *existing_contact_json,
                              const struct cts_contact *c, char *const *lists,
                              size_t nlists, struct cts_error *err);

/* ---- bulk imports: v3 POST /activities/contacts_json_import, v2 POST
 * /activities/addcontacts.  A body is CTS_API_BULK_HEAD, the items joined
 * with ',', then the tail. ---- */

#define CTS_API_BULK_HEAD "{\"import_data\":["

/*
 * One contact as an import_data item, compact JSON: v3 flat {"email",
 * "first_name", ..., "birthday_month" (a number when it is one), "cf:<name>"};
 * v2 {email_addresses[], first_name, ..., work_phone, addresses[{line1, city,
 * state_code (free text), postal_code, country_code, address_type}],
 * custom_fields[{name:"custom_field_N",value}]} (only CustomField1..15;
 * *cf_mask gets bit N for each, for the tail's columns).  Returns an owned
 * string, or NULL when the contact cannot be written (invalid UTF-8).
 */
char *cts_api_bulk_item(enum cts_api api, const struct cts_contact *c,
                        unsigned *cf_mask);

/* What follows the items: v3 `],"list_ids":[...]}`; v2
 * `],"lists":[...],"column_names":[...]}` naming the base columns and the
 * CUSTOM FIELD n of cf_mask.  Returns an owned string. */
char *cts_api_bulk_tail(enum cts_api api, char *const *lists, size_t nlists,
                        unsigned cf_mask);

/* ---- response parsers ---- */

/*
 * Error bodies: the v2/v3 array [{error_key,error_message}], the single
 * object {error_key,error_message} (v3 429), OAuth {error,
 * error_description}, and bulk {message} objects / plain strings.  The
 * first entry wins.  Either output may be NULL when absent; returns
 * CTS_EJSON when neither was found.
 */
int cts_api_parse_error(const char *body, size_t len, char **error_key,
                        char **message);

/* v3 sign_up_form reply {"contact_id","action"}; action may be NULL. */
int cts_api_v3_parse_signup(const char *body, size_t len, char **contact_id,
                            char **action);

/* v3 contact resource {"contact_id",...} (POST /contacts reply). */
int cts_api_v3_parse_contact_id(const char *body, size_t len,
                                char **contact_id);

/* v2 contact {"id":238 or "238",...} → "238". */
int cts_api_v2_parse_contact_id(const char *body, size_t len, char **id);

/*
 * v2 GET /contacts?email= reply {"meta":...,"results":[contact...]}.
 * Found: *id and *contact_json (the first result re-serialised, owned).
 * Not found (empty results): returns 0 with both NULL.
 */
int cts_api_v2_parse_search(const char *body, size_t len, char **id,
                            char **contact_json);

/* v2 tokeninfo {"client_id","user_name","expires_in"}; expires_in may be a
 * number or a numeric string (the php-sdk fixture); -1 when absent.
 * client_id is required; user_name may come back NULL. */
int cts_api_parse_tokeninfo(const char *body, size_t len, char **client_id,
                            char **user_name, long *expires_in);

/* v3 GET /account/summary → encoded_account_id (required) and
 * organization_name (may be NULL). */
int cts_api_parse_account_summary(const char *body, size_t len,
                                  char **encoded_account_id,
                                  char **organization_name);

/* Lists: v2 a bare array [{id,name,contact_count,...}]; v3
 * {"lists":[{list_id,name,membership_count}]}.  *lists owned (free with
 * cts_list_info_free). */
int cts_api_parse_lists(enum cts_api api, const char *body, size_t len,
                        struct cts_list_info **lists, size_t *n);

/* v3 GET /contact_custom_fields {"custom_fields":[{custom_field_id,name,
 * label,...}]} into out (cleared first). */
int cts_api_parse_custom_fields(const char *body, size_t len,
                                struct cts_cf_ids *out);

/* OAuth token endpoint reply (v2 and v3). */
struct cts_api_token {
    char *access_token;  /* required */
    char *refresh_token; /* v3 with offline_access; else NULL */
    char *token_type;
    char *scope;
    long expires_in; /* number or numeric string; -1 when absent */
};
int cts_api_parse_token(const char *body, size_t len,
                        struct cts_api_token *out);
void cts_api_token_free(struct cts_api_token *t); /* NULL-safe */

/* ---- URLs ---- */

/*
 * base + path, plus "?api_key=KEY" (v2; api_key NULL for v3) and the
 * already-escaped query (may be NULL), joined with '?'/'&' correctly.
 * Returns an owned string.  The key is escaped.
 */
char *cts_api_url(const char *base, const char *path, const char *api_key,
                  const char *query);

#endif /* CTS_API_H */
