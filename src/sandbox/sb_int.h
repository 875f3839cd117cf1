/*
 * sb_int.h — sandbox internals shared by the core files (server, router,
 * model, limits, faults, admin, v2, v3).  oauth.c/jwt.c/bulk.c use sb.h only.
 */
#ifndef SB_INT_H
#define SB_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sb.h"

/* ---- HTTP/1.1 request parser (http.c): incremental, in place ----------- */

enum sb_http_rc {
    SB_HTTP_MORE = 0,      /* need more bytes */
    SB_HTTP_HEADERS = 1,   /* headers complete, body incomplete (Expect) */
    SB_HTTP_DONE = 2,      /* a whole request is parsed */
    SB_HTTP_BAD = -400,    /* malformed: reply 400 and close */
    SB_HTTP_TOOBIG = -413, /* Content-Length over the body cap */
    SB_HTTP_HDRBIG = -431, /* header block over SB_HEADER_CAP */
    SB_HTTP_LENREQ = -411, /* body without Content-Length (chunked) */
    SB_HTTP_VERSION = -505 /* not HTTP/1.x */
};

#define SB_MAX_HEADERS 64

struct sb_http_msg {
    /* Scan state: callers zero the struct before each new request. */
    size_t scanned;    /* bytes already searched for the header end */
    size_t header_len; /* bytes of request line + headers incl. CRLFCRLF */
    size_t content_length;
    int parsed; /* headers parsed in place */
    /* Results (point into the caller's buffer, NUL-terminated in place). */
    char *method, *target, *path, *query;
    int minor; /* HTTP/1.minor */
    struct sb_header headers[SB_MAX_HEADERS];
    size_t nheaders;
    int keep_alive; /* per version and Connection header */
    int expect_continue;
    char *body;
    size_t total_len; /* header_len + content_length when DONE */
    /* offsets from the request start of the fields above, so the caller may
     * move its buffer between SB_HTTP_HEADERS and SB_HTTP_DONE */
    size_t o_method, o_path, o_query, o_target;
    size_t o_hname[SB_MAX_HEADERS], o_hvalue[SB_MAX_HEADERS];
};

/* Parse the request at the start of buf[0..len).  Modifies the header
 * bytes in place (NUL-terminating method, path, query, header names and
 * values); the pointers in msg are valid when DONE is returned (the caller
 * NUL-terminates the body itself if it wants to).  Between calls the caller
 * may move the bytes (realloc, memmove) as long as the request still starts
 * at buf.  Returns an enum sb_http_rc. */
int sb_http_parse(struct sb_http_msg *msg, char *buf, size_t len);
/* Reason phrase for a status code ("OK", "Not Found", ...). */
const char *sb_http_reason(int status);
/* Decode %xx (and '+' as space when plus) in place; returns the new length.
 * Invalid escapes are kept literally. */
size_t sb_url_decode(char *s, size_t len, int plus);
/* Find name in a www-form/query string s and decode its value into a NEW
 * malloc'd string (or NULL when absent). */
char *sb_form_lookup(const char *s, size_t len, const char *name);

/* ---- rate limiter and quota (limits.c), injected clocks --------------- */

struct sb_ring { /* growable FIFO of microsecond timestamps, oldest first */
    uint64_t *t;
    size_t cap, head, len;
};

/* Which requests the 1-second window counts. */
enum sb_window {
    SB_WINDOW_ARRIVALS = 0, /* every arrival, refused ones too (default) */
    SB_WINDOW_ADMITTED      /* only the requests let through */
};

struct sb_limit_policy {
    long rate;  /* per key per second, 0 = off */
    long quota; /* per key per UTC day, 0 = off */
    enum sb_window window;
    long foreign_load; /* another client's requests/s on every key, 0 = none */
};

struct sb_limit {
    struct sb_ring window;  /* what the rate limit counts (last second) */
    struct sb_ring arrived; /* the client's arrivals (busiest_1s) */
    uint64_t requests;      /* arrivals */
    uint64_t busiest_1s;
    uint64_t throttled; /* rejected by rate or quota */
    uint64_t daily_used;
    int64_t day; /* UTC day number daily_used counts */
    /* foreign load: the k-th simulated arrival is at f_origin + k s / F */
    uint64_t f_origin, f_next;
    int f_started;
    uint64_t foreign;         /* simulated arrivals so far */
    uint64_t foreign_refused; /* of those, not admitted (admitted window) */
};

enum sb_limit_rc { SB_LIMIT_OK = 0, SB_LIMIT_RATE = 1, SB_LIMIT_QUOTA = 2 };

/* Record an arrival at now_us (monotonic µs) on epoch second now_s and
 * decide per policy.  Only admitted requests count toward the day's quota;
 * the window counts per p->window, plus the foreign load's arrivals. */
int sb_limit_check(struct sb_limit *l, const struct sb_limit_policy *p,
                   uint64_t now_us, int64_t now_s);
void sb_limit_reset(struct sb_limit *l);
void sb_limit_free(struct sb_limit *l);
/* "arrivals" / "admitted"; parse returns 0 or -1 (unknown name). */
const char *sb_window_name(enum sb_window w);
int sb_window_parse(const char *s, enum sb_window *out);

/* ---- faults (faults.c) ------------------------------------------------ */

enum sb_fault {
    SB_FAULT_NONE = 0,
    SB_FAULT_500,
    SB_FAULT_503,
    SB_FAULT_429,
    SB_FAULT_DROP_BEFORE,
    SB_FAULT_DROP_AFTER,
    SB_FAULT_SLOW,
    SB_FAULT_400_ECHO, /* a 400 whose message quotes the request's token */
    SB_FAULT__COUNT
};

struct sb_faults;
struct sb_faults *sb_faults_new(double rate, uint64_t seed);
void sb_faults_free(struct sb_faults *f);
/* Parse a kind name ("503", "drop_after", ...); SB_FAULT_NONE if unknown. */
enum sb_fault sb_fault_parse(const char *name);
const char *sb_fault_name(enum sb_fault k);
/* Queue a scripted fault; match ("POST /v3/contacts/sign_up_form", by route
 * pattern or concrete path) may be NULL = any API request. */
void sb_faults_push(struct sb_faults *f, enum sb_fault k, const char *match);
/* Load {"faults":[...],"match":...} or an array of such objects. */
int sb_faults_load_json(struct sb_faults *f, json_t *j, struct cts_error *err);
/* The fault for this API request (scripted queue first, then random). */
enum sb_fault sb_faults_next(struct sb_faults *f, const char *method,
                             const char *route, const char *path);
void sb_faults_clear(struct sb_faults *f); /* drop the queue and counters */
void sb_faults_drop_queue(struct sb_faults *f); /* drop the queue only */
uint64_t sb_faults_count(const struct sb_faults *f, enum sb_fault k);
size_t sb_faults_pending(const struct sb_faults *f);

/* ---- model (model.c) -------------------------------------------------- */

struct sb_model *sb_model_new(void);
void sb_model_free(struct sb_model *m);
/* Built-in demo account and apps (common brief).  Returns 0. */
int sb_model_load_demo(struct sb_model *m);
/* Accounts file (doc/sandbox.md).  0 or CTS_ECONFIG with err. */
int sb_model_load_file(struct sb_model *m, const char *path,
                       struct cts_error *err);
struct sb_app *sb_model_app_at(struct sb_model *m, size_t i);
/* The app of api_key, registered (no secret, no redirect URIs) if new. */
struct sb_app *sb_model_app_ensure(struct sb_model *m, const char *api_key,
                                   enum sb_api api);
size_t sb_model_app_count(const struct sb_model *m);
/* Empty every store (contacts, counters); keeps accounts, apps, tokens. */
void sb_model_reset(struct sb_model *m);
uint64_t sb_model_writes(const struct sb_model *m);
/* v3 DELETE: mark deleted and drop its list memberships (the permission
 * is kept apart); 0 or SB_ENOTFOUND. */
int sb_contact_delete(struct sb_model *m, struct sb_account *acct,
                      sb_contact_ref ref);
int sb_contact_is_deleted(const struct sb_account *acct, sb_contact_ref ref);
/* Per-contact write counter and created/updated helpers for renderers. */
uint32_t sb_contact_writes(const struct sb_account *acct, sb_contact_ref ref);

/* ---- consent (store.c) ------------------------------------------------ */

enum sb_perm sb_contact_perm(const struct sb_account *acct, sb_contact_ref ref);
enum sb_actor sb_contact_opt_out_source(const struct sb_account *acct,
                                        sb_contact_ref ref);
/* Unsubscribe (permission unsubscribed, opt_out_source `by`, opt-out date
 * now, reason; list memberships dropped).  count_write 0 for the admin
 * hooks (a contact clicking SafeUnsubscribe is not a client write).
 * 0, or SB_ENOTFOUND. */
int sb_contact_unsubscribe(struct sb_model *m, struct sb_account *acct,
                           sb_contact_ref ref, enum sb_actor by,
                           const char *reason, int count_write);
/* Take the contact off the lists of `mask` (bit i = acct->lists[i]); the
 * contact and its other lists stay.  1 if it was on one of them, else 0. */
int sb_contact_remove_lists(struct sb_model *m, struct sb_account *acct,
                            sb_contact_ref ref, uint64_t mask);
uint64_t sb_contact_lists(const struct sb_account *acct, sb_contact_ref ref);

/* The store's clock (UNIX seconds): the sandbox clock once admin.c hooks
 * it up, time(NULL) before. */
void sb_model_set_clock(struct sb_model *m, int64_t (*now)(void *), void *arg);
int64_t sb_model_now(const struct sb_model *m);
/* Every re-subscription since the start or the last reset (refused = 0),
 * or every refused one (an account write that tried to lift a contact's
 * own unsubscribe): [{"account","email","via","actor","opt_out_source",
 * "at"}].  NEW reference. */
json_t *sb_model_resubscriptions(const struct sb_model *m, int refused);
/* Seed one contact from its /_sandbox/contacts JSON (doc/sandbox.md):
 * email, names, permission, opt-in/out sources, lists, custom fields,
 * phones, street address, deleted.  Not counted as a write, never logged
 * as a re-subscription.  0 or CTS_EDATA with err. */
int sb_model_seed(struct sb_model *m, struct sb_account *acct, json_t *j,
                  struct cts_error *err);

/* ---- contact queries (render.c) --------------------------------------- */

/* v3 GET /contacts status= categories; a contact is in exactly one. */
enum {
    SB_ST_ACTIVE = 1 << 0, /* implicit or explicit */
    SB_ST_DELETED = 1 << 1,
    SB_ST_NOT_SET = 1 << 2,
    SB_ST_PENDING = 1 << 3,
    SB_ST_TEMP_HOLD = 1 << 4,
    SB_ST_UNSUBSCRIBED = 1 << 5,
    SB_ST_ALL = (1 << 6) - 1,
    SB_ST_DEFAULT = SB_ST_ALL & ~SB_ST_DELETED /* without status= */
};
/* Comma-separated v3 status values → mask; -1 for an unknown value. */
int sb_status_parse(const char *csv, unsigned *mask);
struct sb_query {
    unsigned status;       /* SB_ST_* (v3); 0 = any */
    const char *v2_status; /* "ACTIVE", "OPTOUT", ... (v2); NULL = any */
    uint64_t lists;        /* member of one of these; 0 = no list condition */
    /* UNIX seconds, 0 = no bound (after: strictly later; since: same or
     * later; before: strictly earlier) */
    int64_t updated_after, updated_before, modified_since;
    int64_t created_after, created_before, optout_after, optout_before;
};
int sb_contact_match(const struct sb_account *acct, sb_contact_ref ref,
                     const struct sb_query *q);
/* v2 status: REMOVED (deleted), OPTOUT, UNCONFIRMED or ACTIVE. */
const char *sb_contact_v2_status(const struct sb_account *acct,
                                 sb_contact_ref ref);

/* ---- in-flight emails (v3 sign_up_form 409) ---------------------------- */
/* 0 if registered, -1 if that (account,email) is already being processed.
 * The entry is removed automatically when the request finishes. */
int sb_inflight_claim(struct sb_req *req, const char *email);

/* ---- server (server.c) ------------------------------------------------ */

struct sb_options {
    const char *host;
    int port;
    const char *accounts;
    /* --rate, --daily-quota, --window, --foreign-load */
    struct sb_limit_policy limits;
    double fault_rate;
    uint64_t fault_seed;
    long latency_ms;
    long slow_ms;
    const char *state_dump;
    const char *faults_file;
    int verbose;
    /* connection guards (0 = off for the timeouts) */
    long header_timeout_ms; /* request line + headers, from the first byte */
    long body_timeout_ms;   /* the body, from the end of the headers */
    long idle_timeout_ms;   /* keep-alive between requests; a stalled write */
    long max_connections;   /* open at once; then idle ones close, or 503 */
    size_t max_body_total;  /* body bytes buffered at once, all conns: 503 */
};

struct sb_server *sb_server_new(const struct sb_options *opt,
                                struct sb_model *model, uv_loop_t *loop);
/* Bind and listen; prints nothing.  0 or a libuv error. */
int sb_server_listen(struct sb_server *srv, struct cts_error *err);
int sb_server_port(const struct sb_server *srv);
/* Stop accepting, close all connections and handles (async). */
void sb_server_close(struct sb_server *srv);
void sb_server_free(struct sb_server *srv);
struct sb_faults *sb_server_faults(struct sb_server *srv);
const struct sb_options *sb_server_options(const struct sb_server *srv);
void sb_server_set_clock(struct sb_server *srv, int64_t now);
void sb_server_reset(struct sb_server *srv);
/* The /_sandbox/state document (NEW reference). */
json_t *sb_server_state(struct sb_server *srv, int with_contacts,
                        const char *account);

/* ---- router (router.c) ----------------------------------------------- */

struct sb_router;
struct sb_route {
    char *method;
    char *pattern;
    char *endpoint; /* "METHOD pattern" for stats */
    sb_handler_fn handler;
    unsigned flags;
    uint64_t hits;      /* requests routed here (state.requests.by_endpoint) */
    uint64_t throttled; /* throttling replies (throttled_by_endpoint) */
};
struct sb_router *sb_router_new(void);
void sb_router_free(struct sb_router *r);
int sb_router_add(struct sb_router *r, const char *method, const char *pattern,
                  sb_handler_fn handler, unsigned flags);
enum { SB_MATCH_OK = 0, SB_MATCH_NOPATH = -1, SB_MATCH_NOMETHOD = -2 };
size_t sb_router_count(const struct sb_router *r);
struct sb_route *sb_router_at(struct sb_router *r, size_t i);
/* Match method+path.  On OK sets *route and params (decoded copies written
 * into the scratch buffer `scratch` of size `scratch_len`); on NOMETHOD
 * writes the allowed methods ("GET, PUT") into allow.  Returns SB_MATCH_*. */
int sb_router_match(struct sb_router *r, const char *method, const char *path,
                    struct sb_route **route, const char **params,
                    size_t *nparams, char *scratch, size_t scratch_len,
                    char *allow, size_t allow_len);

/* ---- validation helpers (valid.c) ------------------------------------ */

/* Characters (UTF-8 code points) in s; invalid UTF-8 → (size_t)-1. */
size_t sb_utf8_chars(const char *s);
/* 1 if every code point of s is <= 0xFF (ISO-8859-1). */
int sb_is_latin1(const char *s);
/* 1 if every string anywhere in j is ISO-8859-1. */
int sb_json_latin1(json_t *j);
/* A plausible email: local@domain.tld, no blanks, <= 254 bytes. */
int sb_email_ok(const char *s);
/* ISO-8601 date or date-time ("2024-05-01", "2024-05-01T10:00:00Z",
 * fractions, +hh:mm offsets) → UNIX seconds; 0 or -1. */
int sb_parse_iso8601(const char *s, int64_t *out);
/* Collected validation errors: a JSON array of {error_key, error_message}. */
void sb_verr(json_t *errs, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Optional string member: NULL if absent/null; sets *bad (and an error)
 * when present but not a string or longer than max characters. */
const char *sb_jfield(json_t *obj, const char *name, size_t max, json_t *errs,
                      const char *key, const char *prefix);

/* ---- contact handlers both API generations share (contacts.c) --------- */
/* What differs between v2 and v3 for one contact by id: the rendering and
 * the error vocabulary. */
struct sb_dialect {
    enum sb_render render;
    void (*error)(struct sb_res *res, int status, const char *key,
                  const char *msg);
    const char *not_found_key, *not_found_msg;
    const char *conflict_key, *conflict_msg;
};
extern const struct sb_dialect sb_dialect_v2, sb_dialect_v3;
/* GET /contacts/{id}: 200 with the contact, or 404. */
int sb_reply_contact_get(struct sb_req *req, struct sb_res *res,
                         const struct sb_dialect *d);
/* DELETE /contacts/{id}: 204, or 404. */
int sb_reply_contact_delete(struct sb_req *req, struct sb_res *res,
                            const struct sb_dialect *d);
/* PUT /contacts/{id} once the body is validated: replace the contact's
 * fields with *in (borrowed; its strings must outlive the call), then 200
 * with the contact, 409 when the new email belongs to another contact, or
 * 404. */
int sb_reply_contact_replace(struct sb_req *req, struct sb_res *res,
                             const struct sb_dialect *d,
                             struct sb_contact_in *in);

/* Paged listings (v2 GET /contacts and /lists/{id}/contacts, v3 GET
 * /contacts).  The next link carries only the cursor: an opaque token
 * holding the position and the first page's query, as the real APIs'
 * next links do.  sb_page_open: the query of the first page, or the one
 * the cursor parameter `cursor_name` holds (-1 when the token is invalid);
 * sb_page_param: that query's parameter, decoded (OWNED, NULL if absent);
 * sb_page_scan: appends to `out` the rendered matches of q from the
 * page's position, at most `limit`; returns the position of the next
 * match, or (size_t)-1 when there is none; sb_page_link: OWNED
 * "path?cursor_name=token" for position `next`. */
struct sb_page {
    char *base;
    size_t start;
};
int sb_page_open(struct sb_req *req, const char *cursor_name,
                 struct sb_page *pg);
char *sb_page_param(const struct sb_page *pg, const char *name);
size_t sb_page_scan(struct sb_account *acct, const struct sb_query *q,
                    const struct sb_page *pg, size_t limit,
                    json_t *(*render)(struct sb_account *, sb_contact_ref,
                                      void *),
                    void *arg, json_t *out);
char *sb_page_link(const struct sb_page *pg, const char *path,
                   const char *cursor_name, size_t next);
void sb_page_close(struct sb_page *pg);

/* ---- handler registration per module ---------------------------------- */
void sb_v2_register(struct sb_server *srv);
void sb_v3_register(struct sb_server *srv);
void sb_admin_register(struct sb_server *srv);
/* Fallback v3 token minting when jwt.c is absent (admin.c); OWNED. */
char *sb_mint_v3(struct sb_server *srv, const char *client_id,
                 const struct sb_account *acct, int64_t iat, int64_t exp);

#endif /* SB_INT_H */
