/*
 * sb.h — ctct-sandbox internal interfaces: the HTTP request/response views
 * handlers see, route registration, the data model (apps/keys, accounts,
 * tokens, lists, custom fields, contacts), the sandbox clock, and the hooks
 * the OAuth/JWT/bulk modules (oauth.c, jwt.c, bulk.c) plug in through.
 *
 * Threading: everything runs on the one libuv loop; nothing is locked.
 *
 * Ownership, unless a comment says otherwise:
 *  - every `const char *` a function returns is BORROWED, valid until the
 *    request is finished (request views) or the object is freed (model);
 *  - every `const char *` passed in is copied by the callee;
 *  - model objects (struct sb_app, sb_account, sb_token, ...) are owned by
 *    the model and live until the sandbox exits (tokens too: a reset keeps
 *    them); never free them.
 */
#ifndef SB_H
#define SB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cts_util.h"

struct sb_server;
struct sb_model;
struct sb_conn;

/* ------------------------------------------------------------------------
 * HTTP request view
 * ------------------------------------------------------------------------ */

enum sb_api { SB_API_NONE = 0, SB_API_V2 = 2, SB_API_V3 = 3 };

#define SB_MAX_PARAMS 4
#define SB_HEADER_CAP (16 * 1024)        /* request line + headers: 431/400 */
#define SB_BODY_CAP   (16 * 1024 * 1024) /* Content-Length above: 413 */

struct sb_header {
    const char *name;  /* as received, NUL-terminated */
    const char *value; /* leading/trailing blanks trimmed */
};

struct sb_req {
    struct sb_server *server;
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* raw path, without the query ("/v2/contacts") */
    const char *query;  /* raw query after '?', "" when none (never NULL) */
    const struct sb_header *headers;
    size_t nheaders;
    const char *body; /* NUL-terminated for convenience; "" when none */
    size_t body_len;
    int peer_loopback; /* 1 when the peer is 127.0.0.0/8 or ::1 */
    /* Captures of "{name}" segments of the matched route pattern, in order,
     * %xx-decoded ("/v2/activities/{id}" → params[0] = the id). */
    const char *params[SB_MAX_PARAMS];
    size_t nparams;
    /* Route pattern that matched ("/v3/contacts/{id}"), for logs/stats. */
    const char *route;
    /* Filled by the server before the handler runs on SB_ROUTE_V2/V3 routes
     * (authenticated API calls); NULL on other routes. */
    struct sb_app *app;         /* v2: app of ?api_key=; v3: token's client */
    struct sb_account *account; /* the account the token belongs to */
    struct sb_token *token;
    void *priv; /* server's own per-request state; do not touch */
};

/* Value of query parameter `name`, %xx and '+' decoded; NULL if absent
 * ("" if present without a value).  The first occurrence wins.  The string
 * lives as long as the request. */
const char *sb_query_get(struct sb_req *req, const char *name);
/* Same for an application/x-www-form-urlencoded request body (does not check
 * the Content-Type; see sb_req_content_type_is). */
const char *sb_form_get(struct sb_req *req, const char *name);
/* Header value by case-insensitive name (first occurrence), or NULL. */
const char *sb_header_get(const struct sb_req *req, const char *name);
/* 1 if Content-Type's media type (before ';') equals `type` ignoring case. */
int sb_req_content_type_is(const struct sb_req *req, const char *type);
/* Bearer token of the Authorization header (borrowed), or NULL. */
const char *sb_req_bearer(const struct sb_req *req);
/* Parse the body as JSON; returns a NEW reference or NULL (invalid JSON). */
json_t *sb_req_json(const struct sb_req *req);

/* ------------------------------------------------------------------------
 * Response builder
 * ------------------------------------------------------------------------ */

struct sb_res {
    int status;             /* default 200 */
    char content_type[64];  /* default "application/json" */
    struct cts_buf body;    /* owned by the server; append freely */
    struct cts_buf headers; /* extra lines "Name: value\r\n" */
    int close;              /* 1: "Connection: close" then close */
    int drop;               /* 1: close the socket without replying */
};

/* Add a header line (value printf-formatted).  Do not add Content-Length,
 * Content-Type, Connection or Date: the server writes those. */
void sb_res_header(struct sb_res *res, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Status + JSON body; STEALS the reference to json (NULL → "null"). */
void sb_res_json(struct sb_res *res, int status, json_t *json);
/* Status + body bytes copied as is with the given content type. */
void sb_res_text(struct sb_res *res, int status, const char *content_type,
                 const char *body, size_t len);
/* v2 error: [{"error_key":key,"error_message":msg}] */
void sb_res_error_v2(struct sb_res *res, int status, const char *key,
                     const char *msg);
/* v3 error, array form: [{"error_key":key,"error_message":msg}] */
void sb_res_error_v3(struct sb_res *res, int status, const char *key,
                     const char *msg);
/* v3 error, single-object form (429 throttled/quota_exceeded, 401):
 * {"error_key":key,"error_message":msg} */
void sb_res_error_v3_obj(struct sb_res *res, int status, const char *key,
                         const char *msg);
/* OAuth error: {"error":error,"error_description":desc} */
void sb_res_oauth_error(struct sb_res *res, int status, const char *error,
                        const char *desc);
/* 302 with Location: url (empty body). */
void sb_res_redirect(struct sb_res *res, const char *url);

/* ------------------------------------------------------------------------
 * Routes
 * ------------------------------------------------------------------------ */

/* Handler return values. */
enum {
    SB_REPLY = 0, /* res is complete: send it now */
    SB_DEFER = 1  /* keep req/res alive; the handler (or a timer it started)
                     fills res later and calls sb_req_done(req) exactly once */
};
typedef int (*sb_handler_fn)(struct sb_req *req, struct sb_res *res);

/* Route flags: what the server does before calling the handler. */
enum {
    SB_ROUTE_PUBLIC = 0,        /* nothing (OAuth endpoints, tokeninfo) */
    SB_ROUTE_V2 = 1 << 0,       /* ?api_key= + Bearer v2 token; v2 error shapes;
                                   rate limit, daily quota, faults, --latency-ms */
    SB_ROUTE_V3 = 1 << 1,       /* Bearer v3 JWT known and unexpired; v3 shapes;
                                   rate limit, daily quota, faults, --latency-ms */
    SB_ROUTE_ADMIN = 1 << 2,    /* /_sandbox/ paths: loopback peers only, not
                                   counted    in by_endpoint or rate/quota */
    SB_ROUTE_JSON_BODY = 1 << 3 /* POST/PUT must be application/json: else
                                   415 in the route's error shape */
};

/*
 * Register `handler` for `method` and `pattern`.  Pattern segments:
 *   "/v2/contacts"        exact
 *   "/v2/contacts/{id}"   "{...}" matches one non-empty segment, captured
 *                         into req->params[] (%xx-decoded)
 *   "/static/" + "*"     a final "*" segment matches any rest (prefix)
 * Exact segments win over "{}" which win over "*" (most specific first).
 * A path matching a pattern with a different method gets 405 (with Allow);
 * no match gets 404 in the v2/v3 shape by path prefix.  Call before
 * sb_server_listen().  Returns 0 or CTS_EUSAGE (bad pattern, too many
 * captures).  method and pattern are copied.
 */
int sb_route_add(struct sb_server *srv, const char *method, const char *pattern,
                 sb_handler_fn handler, unsigned flags);

/* Finish a deferred request: send res (or drop per res->drop).  If the client
 * went away meanwhile the reply is discarded; req/res are freed either way,
 * do not touch them afterwards. */
void sb_req_done(struct sb_req *req);

/* ------------------------------------------------------------------------
 * Server-wide services
 * ------------------------------------------------------------------------ */

/* The sandbox clock (UNIX seconds): the real time, or the value set by
 * POST /_sandbox/clock {"now":EPOCH} ({"now":0} returns to real time). */
int64_t sb_now(const struct sb_server *srv);
struct sb_model *sb_server_model(struct sb_server *srv);
/* "http://127.0.0.1:PORT" once listening (borrowed). */
const char *sb_server_base_url(const struct sb_server *srv);
/* The server's libuv loop (for timers of deferred handlers). */
struct uv_loop_s *sb_server_loop(struct sb_server *srv);
/* Per-module private state slots (oauth.c, bulk.c own what they store) and
 * hooks called on POST /_sandbox/reset and at shutdown (in reverse order of
 * registration).  fn(arg) must not reply or touch requests. */
enum sb_slot { SB_SLOT_OAUTH = 0, SB_SLOT_BULK, SB_SLOT_JWT, SB_SLOT__COUNT };
void **sb_server_slot(struct sb_server *srv, enum sb_slot slot);
void sb_server_on_reset(struct sb_server *srv, void (*fn)(void *), void *arg);
void sb_server_on_close(struct sb_server *srv, void (*fn)(void *), void *arg);
/* Log to stderr when --verbose ("ctct-sandbox: ..."). */
void sb_log(const struct sb_server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------
 * Model: apps (API keys / client ids), accounts, tokens
 * ------------------------------------------------------------------------ */

enum sb_refresh_mode { SB_REFRESH_ROTATING = 0, SB_REFRESH_LONG_LIVED };

struct sb_app {
    char *api_key; /* v2 API key or v3 client id */
    char *secret;  /* client secret ("" when none) */
    enum sb_api api;
    char **redirect_uris; /* registered, exact-match */
    size_t nredirect;
    enum sb_refresh_mode refresh;
    int device_flow;        /* 1 if the app may use the device flow */
    struct sb_limit *limit; /* rate/quota state (limits.c) */
};

struct sb_list {
    char *id;      /* v2 numeric id as a string ("1") */
    char *list_id; /* v3 uuid */
    char *name;
    size_t membership_count; /* maintained by the contact store */
};

struct sb_custom_field {
    char *custom_field_id; /* v3 uuid */
    char *name;            /* v3 name; v2 uses "CustomField1".. by position */
    char *label;
    char *type; /* "string" */
};

struct sb_account {
    char *user_name;          /* v2 tokeninfo user_name */
    char *encoded_account_id; /* v3 account summary */
    char *organization_name;
    char *contact_email;
    char *first_name, *last_name;
    struct sb_list *lists;
    size_t nlists;
    struct sb_custom_field *cfields;
    size_t ncfields;
    struct sb_store *store; /* contacts (model.c) */
    size_t index;           /* position in the model */
};

struct sb_token {
    char *token; /* the access token string */
    enum sb_api api;
    char *api_key; /* v2 key / v3 client id it was issued to */
    struct sb_account *account;
    int64_t issued_at;
    int64_t expires_at; /* UNIX seconds; 0 = never */
    int revoked;        /* set by oauth.c if it revokes */
};

/* Refresh tokens (v3 OAuth).  `used` is set when a rotating token has been
 * exchanged; sboauth decides the policy, the model only stores. */
struct sb_refresh {
    char *token;
    char *api_key;
    struct sb_account *account;
    char *scope; /* may be "" */
    int64_t issued_at;
    int64_t last_used_at; /* expiry: unused for 180 days */
    int used;
};

struct sb_app *sb_app_find(struct sb_model *m, const char *api_key);
/* 1 if uri is one of app's registered redirect URIs (exact match). */
int sb_app_redirect_ok(const struct sb_app *app, const char *uri);
/* Account by user_name OR encoded_account_id; NULL if none. */
struct sb_account *sb_account_find(struct sb_model *m, const char *name_or_id);
size_t sb_account_count(const struct sb_model *m);
struct sb_account *sb_account_at(struct sb_model *m, size_t i);

/* Register an access token (copied).  Replaces an existing token with the
 * same string.  Returns the model's token (borrowed). */
struct sb_token *sb_token_add(struct sb_model *m, const char *token,
                              enum sb_api api, const char *api_key,
                              struct sb_account *acct, int64_t issued_at,
                              int64_t expires_at);
/* Token by exact string, or NULL.  Does NOT check expiry/revocation. */
struct sb_token *sb_token_find(struct sb_model *m, const char *token);

struct sb_refresh *sb_refresh_add(struct sb_model *m, const char *token,
                                  const char *api_key, struct sb_account *acct,
                                  const char *scope, int64_t now);
struct sb_refresh *sb_refresh_find(struct sb_model *m, const char *token);

/* ------------------------------------------------------------------------
 * Model: lists, custom fields, contacts
 * ------------------------------------------------------------------------ */

/* List by v2 id or v3 list_id; returns its index in acct->lists or -1. */
long sb_list_find(const struct sb_account *acct, const char *id);
/* Custom field by v3 custom_field_id, name, or v2 "CustomFieldN"/
 * "custom_field_N" (N = 1-based position); index or -1. */
long sb_cfield_find(const struct sb_account *acct, const char *id_or_name);

/* Contact string fields (the sandbox's flat vocabulary; /_sandbox/state
 * uses these names). */
enum sb_cf {
    SB_CF_EMAIL = 0, /* lower-cased key */
    SB_CF_FIRST_NAME,
    SB_CF_LAST_NAME,
    SB_CF_COMPANY_NAME,
    SB_CF_JOB_TITLE,
    SB_CF_PHONE,
    SB_CF_STREET,
    SB_CF_CITY,
    SB_CF_STATE,
    SB_CF_POSTAL_CODE,
    SB_CF_COUNTRY,
    SB_CF_ANNIVERSARY,
    SB_CF_PHONE_KIND,  /* the first phone's kind: home, work, mobile, other
                          ("" = not given: shown as work) */
    SB_CF_ADDR_KIND,   /* the first address's kind: home, work, other */
    SB_CF_PHONES_MORE, /* the 2nd and 3rd phone_numbers items ("" = none),
                          as sb_more_pack keeps them */
    SB_CF_ADDRS_MORE,  /* the 2nd and 3rd street_addresses items, the same */
    SB_CF__COUNT
};
const char *sb_cf_name(enum sb_cf f); /* "email", "first_name", ... */

/* A contact holds up to 3 phones and 3 addresses: the first in the flat
 * fields above, the others as compact JSON text (an array of the items'
 * known string members, `fields`, NULL-terminated).  sb_more_pack returns
 * that text for arr's items after the first, NULL when there are none; the
 * text lives as long as `owner` (kept there under a private key). */
const char *sb_more_pack(json_t *owner, const char *key, json_t *arr,
                         const char *const *fields);
/* Append to arr the items a *_MORE text holds (nothing for "" or NULL). */
void sb_more_append(json_t *arr, const char *more);
/* 1 when kind is one of the v3 phone kinds (home, work, mobile, other) /
 * address kinds (home, work, other). */
int sb_phone_kind_ok(const char *kind);
int sb_addr_kind_ok(const char *kind);
/* v2 ↔ v3 address kinds: PERSONAL home, BUSINESS work, UNKNOWN other. */
const char *sb_addr_kind_v2(const char *kind);
const char *sb_addr_kind_v3(const char *address_type);
extern const char *const sb_phone_fields[]; /* phone_number, kind */
extern const char *const sb_addr_fields[];  /* kind, street, city, ... */

/* Permission to send email (v3 email_address.permission_to_send).  NONE
 * means "not given" in a write and never describes a stored contact. */
enum sb_perm {
    SB_PERM_NONE = 0,
    SB_PERM_NOT_SET,
    SB_PERM_IMPLICIT,
    SB_PERM_EXPLICIT,
    SB_PERM_PENDING, /* pending_confirmation */
    SB_PERM_TEMP_HOLD,
    SB_PERM_UNSUBSCRIBED
};
/* "not_set", "implicit", ... ("" for NONE) / the value for a name, or
 * SB_PERM_NONE when the name is not a permission. */
const char *sb_perm_name(enum sb_perm p);
enum sb_perm sb_perm_parse(const char *name);

/* Who acts: v3 create_source / update_source / opt_in_source /
 * opt_out_source (Account or Contact); v2 ACTION_BY_OWNER is the account,
 * ACTION_BY_VISITOR the contact. */
enum sb_actor { SB_ACTOR_NONE = 0, SB_ACTOR_ACCOUNT, SB_ACTOR_CONTACT };
const char *sb_actor_name(enum sb_actor a); /* "Account", "Contact", "" */

/* A write to the contact store (all borrowed by the call). */
struct sb_contact_in {
    /* NULL = not given.  MERGE keeps the stored value for NULL and "";
     * REPLACE clears it for both, unless its bit is in `keep`. */
    const char *f[SB_CF__COUNT];
    unsigned keep;      /* REPLACE: bit (1u << SB_CF_x) keeps the stored field
                           (v3 PUT without phone_numbers / street_addresses) */
    int birthday_month; /* 0 = not given */
    int birthday_day;
    /* list indices in acct->lists; lists == NULL means "not given" (REPLACE
     * then keeps the stored lists), non-NULL with nlists 0 means "none" */
    const size_t *lists;
    size_t nlists;
    /* custom field indices in acct->cfields + values; cf_idx NULL = not
     * given (same rule as lists) */
    const size_t *cf_idx;
    const char *const *cf_values;
    size_t ncf;
    /* Consent.  perm: the permission asked for (new and existing contacts),
     * NONE = keep the stored one; perm_new: a new contact's permission when
     * perm is NONE (NONE = implicit).  actor: who acts (Account when NONE).
     * The store never lets the account lift an unsubscribe the contact made
     * (the permission stays unsubscribed, logged as refused); any other
     * move out of unsubscribed is a re-subscription, logged with `via`. */
    enum sb_perm perm;
    enum sb_perm perm_new;
    enum sb_actor actor;
    const char *opt_out_reason; /* with perm UNSUBSCRIBED; may be NULL */
    const char *via; /* "POST /v3/contacts/sign_up_form": for the logs */
};

enum sb_upsert_mode {
    SB_UPSERT_CREATE = 0, /* fail with SB_EEXIST if the
                             email exists (v2/v3 POST /contacts) */
    SB_UPSERT_MERGE,      /* create, or update: given fields overwrite, lists
                             and custom fields appended (sign_up_form, bulk) */
    SB_UPSERT_REPLACE     /* update by id only: all fields replaced (absent =
                             cleared, except `keep`); lists / custom fields
                             replaced when given (v2/v3 PUT); revives a
                             deleted contact */
};
#define SB_EEXIST    (-21001) /* email already in the account */
#define SB_ENOTFOUND (-21002) /* contact id unknown */

/* Opaque handle of a stored contact (index in the account's store). */
typedef size_t sb_contact_ref;

/*
 * Create or update a contact of acct per mode.  For SB_UPSERT_REPLACE, `id`
 * is the contact's v2 id or v3 contact_id and in->f[SB_CF_EMAIL] may change
 * the email; otherwise id is NULL and the email is required.  Counts a
 * write (contact and global) when anything changed.  On success sets *ref
 * and *created (1 new, 0 updated/unchanged) when non-NULL.  Returns 0,
 * SB_EEXIST, SB_ENOTFOUND, or CTS_EDATA (missing email).
 */
int sb_contact_upsert(struct sb_model *m, struct sb_account *acct,
                      const struct sb_contact_in *in, enum sb_upsert_mode mode,
                      const char *id, sb_contact_ref *ref, int *created);
/* Find by email (case-insensitive) / by v2 id or v3 contact_id; 0 or
 * SB_ENOTFOUND. */
int sb_contact_by_email(struct sb_account *acct, const char *email,
                        sb_contact_ref *ref);
int sb_contact_by_id(struct sb_account *acct, const char *id,
                     sb_contact_ref *ref);
/* Render a stored contact: NEW reference.  v2 = the fixture shape
 * (id, status, email_addresses[], lists[], custom_fields[] ...); v3 = the
 * ContactResource shape (contact_id, email_address{}, list_memberships ...)
 * with every sub-resource; state = the /_sandbox/state shape. */
enum sb_render { SB_RENDER_V2 = 0, SB_RENDER_V3, SB_RENDER_STATE };
json_t *sb_contact_json(struct sb_account *acct, sb_contact_ref ref,
                        enum sb_render how);
/* v3 sub-resources a GET names in include= (absent ones are left out). */
enum {
    SB_INC_CUSTOM_FIELDS = 1 << 0,
    SB_INC_LIST_MEMBERSHIPS = 1 << 1,
    SB_INC_PHONE_NUMBERS = 1 << 2,
    SB_INC_STREET_ADDRESSES = 1 << 3,
    SB_INC_TAGGINGS = 1 << 4,
    SB_INC_NOTES = 1 << 5,
    SB_INC_ALL = (1 << 6) - 1
};
/* Parse an include= value ("custom_fields,list_memberships"); 0 or -1 for
 * an unknown name.  NULL gives 0 (core fields only). */
int sb_include_parse(const char *s, unsigned *mask);
json_t *sb_contact_json_v3(struct sb_account *acct, sb_contact_ref ref,
                           unsigned include);
size_t sb_contact_count(const struct sb_account *acct);

/* ------------------------------------------------------------------------
 * Hooks implemented by sboauth's files (weak: the sandbox runs without them)
 * ------------------------------------------------------------------------ */

/* oauth.c: register /oauth2/... routes (v2 authorize/token/tokeninfo, v3
 * /oauth2/default/v1/authorize, /token, /device/authorize). */
void sb_oauth_register(struct sb_server *srv) __attribute__((weak));
/* bulk.c: register /v2/activities/addcontacts, /v2/activities/{id},
 * /v3/activities/contacts_json_import, /v3/activities/{id} (use
 * SB_ROUTE_V2/V3 so auth, limits and faults apply). */
void sb_bulk_register(struct sb_server *srv) __attribute__((weak));
/* POST /_sandbox/token is served by admin.c (both APIs): it mints with
 * sb_jwt_mint (v3) or random strings (v2), registers the token with
 * sb_token_add, and for v3 also a refresh token with sb_refresh_add. */
/* jwt.c: mint a v3 access token (RS256-shaped JWT, deterministic for the
 * same inputs) with claims cid=client_id, sub/platform_user_id from the
 * account, aud="https://api.cc.email/v3", iat, exp.  Returns an OWNED
 * string.  The server registers it with sb_token_add (the minter does not).
 * Used for the demo token at start and by POST /_sandbox/token; when jwt.c
 * is absent admin.c uses a built-in fallback with the same claims. */
char *sb_jwt_mint(struct sb_server *srv, const char *client_id,
                  const struct sb_account *acct, int64_t iat, int64_t exp)
    __attribute__((weak));

#endif /* SB_H */
