/*
 * cts_protocol.h — the per-row request protocol: which requests a row
 * makes, one after the other, through the send engine, and what their
 * replies mean for the row.  Consent first: a contact who is unsubscribed
 * in the account is never written, and an existing contact's permission
 * is sent back as the account holds it (cts_consent.h).
 *
 *   v3 (--permission implicit, the default)
 *       POST /contacts (create_source Account, implicit)   → 201 created
 *         409 → GET /contacts?email=&status=all&include=...
 *             → unsubscribed: opted-out, nothing written
 *             → the same data: unchanged, nothing written
 *             → PUT /contacts/{id} merged (lists, custom fields, phones,
 *               addresses kept; permission unchanged)     → updated
 *             → no contact found: the POST once more, then failed
 *       --mode create: 409 → exists
 *   v3 --permission explicit (each row is the contact's own sign-up)
 *       POST /contacts/sign_up_form (409: transient, retry)
 *       --mode create: POST /contacts (create_source Contact, explicit)
 *   v2  POST /contacts?action_by=ACTION_BY_OWNER (VISITOR when explicit)
 *         409 → GET /contacts?email= → OPTOUT: opted-out; the same data:
 *               unchanged; else PUT /contacts/{id}?action_by=... merged
 *       --mode create: 409 → exists
 *   rows the file marks opt_out (any mode and permission)
 *       v3  GET as above → none: opted-out (nothing added); unsubscribed
 *           already: opted-out; else PUT unsubscribed     → unsubscribed
 *       v2  GET ?email= → none or OPTOUT: opted-out; else
 *           DELETE /contacts/{id}                         → unsubscribed
 *
 * Each request is one step (enum cts_proto_step); a step's reply either
 * settles the row or names the next step (next_step in protocol.c): a new
 * step is a new enum value, its request line in start_step and its reply
 * in handle_ok (or the 409 switch).
 *
 * `failed` is only for what the API refused for good (a 4xx about the
 * row, a reply that cannot be merged); transient failures that outlast
 * the retries end the row `deferred` with the last error, for the next
 * run to send again.
 *
 * The row ends through the owner's done(job, end) exactly once after
 * cts_protocol_start returned 0; the job's result fields (status,
 * http_status, contact_id, error_key, message, permanent, attempts) are
 * filled by then.  done never runs from inside cts_protocol_start.
 */
#ifndef CTS_PROTOCOL_H
#define CTS_PROTOCOL_H

#include "cts_config.h"
#include "cts_job.h"
#include "cts_pipeline.h" /* enum cts_stop */
#include "cts_send.h"
#include "cts_util.h"

struct cts_cf_ids;

enum cts_proto_step {
    CTS_STEP_V3_SIGNUP = 0, /* POST /contacts/sign_up_form (explicit) */
    CTS_STEP_V3_POST,       /* POST /contacts */
    CTS_STEP_V3_GET,        /* GET /contacts?email= (409, or an opt_out
                               row's look-up) */
    CTS_STEP_V3_PUT,        /* PUT /contacts/{id}: merged or unsubscribe */
    CTS_STEP_V2_POST,       /* POST /contacts?action_by=... */
    CTS_STEP_V2_GET,        /* GET /contacts?email= (409, or opt_out) */
    CTS_STEP_V2_PUT,        /* PUT /contacts/{id} with lists merged */
    CTS_STEP_V2_DELETE      /* DELETE /contacts/{id}: opt an opt_out row
                               out */
};

/* How a row ended.  why borrowed for the call. */
struct cts_proto_end {
    enum cts_status status; /* CREATED, UPDATED, UNCHANGED, EXISTS,
                               OPTED_OUT, UNSUBSCRIBED, FAILED or
                               DEFERRED */
    enum cts_stop stop;     /* NONE, or why sending must stop now: QUOTA,
                               AUTH, UNREACHABLE, LATER (throttled without
                               progress) or FATAL (row DEFERRED) */
    int rc;                 /* FATAL: the error code */
    const char *why;        /* the stop's message, or NULL */
};

typedef void (*cts_proto_done_cb)(void *arg, struct cts_job *j,
                                  const struct cts_proto_end *end);

/* Embeddable; fields private to protocol.c. */
struct cts_protocol {
    const struct cts_config *cfg;
    const struct cts_cf_ids *cf;
    struct cts_send *send;
    cts_proto_done_cb done;
    void *arg;
    char *url_create; /* shared URL of every row's first request */
};

/* cfg, cf (may be NULL: no cf: mapping) and send borrowed for the
 * object's life; done required. */
void cts_protocol_init(struct cts_protocol *pr, const struct cts_config *cfg,
                       const struct cts_cf_ids *cf, struct cts_send *send,
                       cts_proto_done_cb done, void *arg);
void cts_protocol_free(struct cts_protocol *pr);

/* What a dry run says the row c would get (static text). */
const char *cts_protocol_dry_run(const struct cts_config *cfg,
                                 const struct cts_contact *c);

/* Build the row's first request.  0, or CTS_EDATA with err filled (the
 * body cannot be built: the row is invalid). */
int cts_protocol_prepare(struct cts_protocol *pr, struct cts_job *j,
                         struct cts_error *err);

/* Send the prepared row.  0 (done follows), or UV_ECANCELED when the
 * engine has stopped (done never runs: defer the row yourself). */
int cts_protocol_start(struct cts_protocol *pr, struct cts_job *j);

#endif /* CTS_PROTOCOL_H */
