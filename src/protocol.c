/* protocol.c — the per-row request protocol, v3 and v2 (cts_protocol.h). */
#include "cts_protocol.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_api.h"
#include "cts_consent.h"
#include "cts_http.h"

static void on_send_done(struct cts_send_req *r, struct cts_send_result *res);

static const char *v2_key(const struct cts_protocol *pr)
{
    return pr->cfg->api == CTS_API_V2 ? pr->cfg->api_key : NULL;
}

/* v3 upserts through sign_up_form only when each row is the contact's own
 * sign-up: that endpoint sets every existing contact to explicit, even
 * one who unsubscribed. */
static int uses_signup(const struct cts_config *cfg)
{
    return cfg->api == CTS_API_V3 && cfg->permission == CTS_PERM_EXPLICIT &&
           cfg->mode != CTS_MODE_CREATE;
}

void cts_protocol_init(struct cts_protocol *pr, const struct cts_config *cfg,
                       const struct cts_cf_ids *cf, struct cts_send *send,
                       cts_proto_done_cb done, void *arg)
{
    memset(pr, 0, sizeof(*pr));
    pr->cfg = cfg;
    pr->cf = cf;
    pr->send = send;
    pr->done = done;
    pr->arg = arg;
    if (cfg->api == CTS_API_V2)
        pr->url_create = cts_api_url(cfg->base_url, "/contacts", cfg->api_key,
                                     cts_consent_v2_action_by(cfg->permission));
    else if (uses_signup(cfg))
        pr->url_create =
            cts_api_url(cfg->base_url, "/contacts/sign_up_form", NULL, NULL);
    else
        pr->url_create = cts_api_url(cfg->base_url, "/contacts", NULL, NULL);
}

void cts_protocol_free(struct cts_protocol *pr)
{
    free(pr->url_create);
    pr->url_create = NULL;
}

const char *cts_protocol_dry_run(const struct cts_config *cfg,
                                 const struct cts_contact *c)
{
    if (c != NULL && c->opt_out)
        return "would look the contact up and unsubscribe it (nothing is "
               "added when it is not in the account)";
    if (cfg->bulk == CTS_BULK_ALWAYS)
        return "would import it in a bulk activity";
    if (cfg->mode == CTS_MODE_CREATE)
        return "would POST /contacts (exists if it does)";
    if (uses_signup(cfg))
        return "would POST /contacts/sign_up_form (--permission explicit)";
    return "would POST /contacts (if it exists: GET, then PUT merged, "
           "unless it is unsubscribed)";
}

/* j->url = the search of the row's email: v3 GET
 * /contacts?email=&status=all&include=..., v2 GET /contacts?email=. */
static void set_search_url(const struct cts_protocol *pr, struct cts_job *j)
{
    const struct cts_config *cfg = pr->cfg;
    char *q, *esc;

    if (cfg->api == CTS_API_V3) {
        q = cts_consent_v3_search_query(j->c.f[CTS_F_EMAIL]);
    } else {
        esc = cts_url_escape(j->c.f[CTS_F_EMAIL]);
        q = cts_xasprintf("email=%s", esc);
        free(esc);
    }
    free(j->url);
    j->url = cts_api_url(cfg->base_url, "/contacts", v2_key(pr), q);
    free(q);
}

/* j->url = /contacts/{id}[?query] of the contact the search found. */
static void set_contact_url(const struct cts_protocol *pr, struct cts_job *j,
                            const char *id, const char *query)
{
    char *path = cts_consent_contact_path(id);

    free(j->url);
    j->url = cts_api_url(pr->cfg->base_url, path, v2_key(pr), query);
    free(path);
}

int cts_protocol_prepare(struct cts_protocol *pr, struct cts_job *j,
                         struct cts_error *err)
{
    const struct cts_config *cfg = pr->cfg;
    int v3 = cfg->api == CTS_API_V3;

    if (j->c.opt_out) {
        /* Unsubscribing starts with finding the contact: nobody is
         * created just to be unsubscribed. */
        set_search_url(pr, j);
        j->step = v3 ? CTS_STEP_V3_GET : CTS_STEP_V2_GET;
        return 0;
    }
    if (uses_signup(cfg)) {
        j->step = CTS_STEP_V3_SIGNUP;
        j->body =
            cts_api_v3_signup_body(&j->c, cfg->lists, cfg->nlists, pr->cf, err);
    } else if (v3) {
        j->step = CTS_STEP_V3_POST;
        j->body = cts_consent_v3_create_body(&j->c, cfg->lists, cfg->nlists,
                                             pr->cf, cfg->permission, err);
    } else {
        j->step = CTS_STEP_V2_POST;
        j->body = cts_api_v2_contact_body(&j->c, cfg->lists, cfg->nlists, err);
    }
    return j->body != NULL ? 0 : CTS_EDATA;
}

/* The request line of the job's current step.  The body (j->body) is
 * only replaced between steps: libcurl does not copy it. */
static void start_step(struct cts_protocol *pr, struct cts_job *j)
{
    switch ((enum cts_proto_step)j->step) {
    case CTS_STEP_V3_GET:
    case CTS_STEP_V2_GET: cts_send_req_set(&j->sr, "GET", j->url, NULL); break;
    case CTS_STEP_V3_PUT:
    case CTS_STEP_V2_PUT:
        cts_send_req_set(&j->sr, "PUT", j->url, j->body);
        break;
    case CTS_STEP_V2_DELETE:
        cts_send_req_set(&j->sr, "DELETE", j->url, NULL);
        break;
    case CTS_STEP_V3_SIGNUP:
    case CTS_STEP_V3_POST:
    case CTS_STEP_V2_POST:
    default: cts_send_req_set(&j->sr, "POST", pr->url_create, j->body); break;
    }
    j->sr.done = on_send_done;
    j->sr.data = pr;
}

int cts_protocol_start(struct cts_protocol *pr, struct cts_job *j)
{
    start_step(pr, j);
    return cts_send_submit(pr->send, &j->sr, 0);
}

/* ---- ending a row ---- */

static void end_row(struct cts_protocol *pr, struct cts_job *j,
                    enum cts_status st)
{
    struct cts_proto_end e;

    memset(&e, 0, sizeof(e));
    e.status = st;
    j->status = st;
    pr->done(pr->arg, j, &e);
}

static void end_stop(struct cts_protocol *pr, struct cts_job *j,
                     enum cts_stop stop, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Sending must stop (the row is deferred with the run's stop message). */
static void end_stop(struct cts_protocol *pr, struct cts_job *j,
                     enum cts_stop stop, int rc, const char *fmt, ...)
{
    struct cts_proto_end e;
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    memset(&e, 0, sizeof(e));
    e.status = CTS_ST_DEFERRED;
    e.stop = stop;
    e.rc = rc;
    e.why = why;
    j->status = CTS_ST_DEFERRED;
    pr->done(pr->arg, j, &e);
}

static void end_fail(struct cts_protocol *pr, struct cts_job *j, int permanent,
                     const char *key, const char *msg)
{
    j->permanent = permanent;
    cts_job_set_str(&j->error_key, key);
    cts_job_set_str(&j->message, msg);
    end_row(pr, j, CTS_ST_FAILED);
}

/* Not settled for now, through no fault of the row: the next run sends
 * it again (the journal keeps nothing for a deferred row). */
static void end_later(struct cts_protocol *pr, struct cts_job *j,
                      const char *key, const char *msg)
{
    cts_job_set_str(&j->error_key, key);
    cts_job_set_str(&j->message, msg);
    end_row(pr, j, CTS_ST_DEFERRED);
}

/* The row ends with a fixed message (a literal). */
static void end_with(struct cts_protocol *pr, struct cts_job *j,
                     enum cts_status st, const char *text)
{
    cts_job_set_static_msg(j, text);
    end_row(pr, j, st);
}

/* The row's next request: back in line before fresh rows. */
static void next_step(struct cts_protocol *pr, struct cts_job *j,
                      enum cts_proto_step step)
{
    j->step = (int)step;
    start_step(pr, j);
    if (cts_send_submit(pr->send, &j->sr, 1) != 0)
        end_row(pr, j, CTS_ST_DEFERRED); /* the engine has stopped */
}

/* A 409 on a create: the email is already in the account. */
static void handle_conflict(struct cts_protocol *pr, struct cts_job *j,
                            const struct cts_send_result *res)
{
    const struct cts_config *cfg = pr->cfg;

    if (cfg->mode != CTS_MODE_CREATE) {
        /* Upsert: read the contact whole, then write it back merged (or
         * not at all).  Also right when our own earlier POST landed and
         * its reply was lost (libcurl may even have resent it on a new
         * connection by itself): never a failure, never a second
         * contact. */
        set_search_url(pr, j);
        next_step(pr, j,
                  cfg->api == CTS_API_V3 ? CTS_STEP_V3_GET : CTS_STEP_V2_GET);
        return;
    }
    if (j->maybe_landed) {
        /* --mode create, and an earlier attempt of ours may have stored it:
         * the 409 is our own contact. */
        end_with(pr, j, CTS_ST_CREATED,
                 "stored by an earlier attempt whose reply was lost (the "
                 "retry found it existing)");
        return;
    }
    cts_job_set_str(&j->error_key, res->reply_key);
    cts_job_set_str(&j->message,
                    res->reply_message != NULL
                        ? res->reply_message
                        : "the contact already exists (--mode create)");
    end_row(pr, j, CTS_ST_EXISTS);
}

/* The search by email found no contact. */
static void handle_not_found(struct cts_protocol *pr, struct cts_job *j)
{
    int v3 = j->step == CTS_STEP_V3_GET;

    if (j->c.opt_out) {
        end_with(pr, j, CTS_ST_OPTED_OUT, "not in the account; nothing added");
        return;
    }
    if (!j->reposted) {
        /* The 409's contact is gone (deleted meanwhile): create it once
         * more. */
        j->reposted = 1;
        next_step(pr, j, v3 ? CTS_STEP_V3_POST : CTS_STEP_V2_POST);
        return;
    }
    end_fail(pr, j, 0, "contacts.search.not_found",
             "the API said the email exists (409), but a search by email "
             "found no contact, twice");
}

/*
 * What to do with the contact the search found (contact: its JSON): for an
 * opt_out row, unsubscribe it; otherwise merge the row into it.  Returns a
 * cts_consent_rc or a negative code; *put = the PUT body (NULL for v2's
 * DELETE and when nothing is written), *since = the opt-out date.
 */
static int decide(struct cts_protocol *pr, struct cts_job *j,
                  const char *contact, char **put, char **since,
                  struct cts_error *err)
{
    const struct cts_config *cfg = pr->cfg;
    int rc;

    *put = NULL;
    *since = NULL;
    if (j->step == CTS_STEP_V3_GET) {
        if (!j->c.opt_out)
            return cts_consent_v3_merge(contact, &j->c, cfg->lists, cfg->nlists,
                                        pr->cf, put, since, err);
        rc = cts_consent_v3_unsubscribe(contact, j->c.opt_out_reason, put, err);
        if (rc == CTS_CONSENT_OPTED_OUT)
            (void)cts_consent_v3_opted_out(contact, since);
        return rc;
    }
    if (!j->c.opt_out)
        return cts_consent_v2_merge(contact, &j->c, cfg->lists, cfg->nlists,
                                    put, since, err);
    rc = cts_consent_v2_opted_out(contact, since);
    if (rc < 0)
        return cts_error_set(err, rc, "the contact found is not JSON");
    return rc == 1 ? CTS_CONSENT_OPTED_OUT : CTS_CONSENT_WRITE;
}

/* The reply of the search by email (after a 409, or an opt_out row's
 * look-up). */
static void handle_found(struct cts_protocol *pr, struct cts_job *j,
                         const char *body, size_t len)
{
    const struct cts_config *cfg = pr->cfg;
    int v3 = j->step == CTS_STEP_V3_GET;
    char *id = NULL, *contact = NULL, *put = NULL, *since = NULL;
    struct cts_error err = {0};
    enum cts_proto_step next;
    char msg[160], text[128];
    int rc;

    rc = v3 ? cts_consent_v3_parse_search(body, len, &id, &contact)
            : cts_api_v2_parse_search(body, len, &id, &contact);
    if (rc != 0) {
        end_fail(pr, j, 0, "contacts.search",
                 "cannot read the reply of the search by email");
        return;
    }
    if (id == NULL) {
        free(contact);
        handle_not_found(pr, j);
        return;
    }
    free(j->contact_id);
    j->contact_id = id;
    if (v3 && j->c.opt_out && cts_consent_v3_deleted(contact) == 1) {
        /* Deleted gets no email, and writing to it would restore it: the
         * row asks for no mail, so nothing is sent (as for an address the
         * account does not have). */
        free(contact);
        cts_job_set_str(&j->message, "deleted in the account; nothing sent "
                                     "(it gets no email, and unsubscribing "
                                     "it would restore it)");
        end_row(pr, j, CTS_ST_OPTED_OUT);
        return;
    }
    rc = decide(pr, j, contact, &put, &since, &err);
    free(contact);
    switch (rc) {
    case CTS_CONSENT_WRITE:
        /* The POST body is no longer needed: the PUT's replaces it. */
        free(j->body);
        j->body = put;
        if (v3) {
            set_contact_url(pr, j, id, NULL);
            next = CTS_STEP_V3_PUT;
        } else if (j->c.opt_out) {
            set_contact_url(pr, j, id, NULL);
            next = CTS_STEP_V2_DELETE;
        } else {
            set_contact_url(pr, j, id,
                            cts_consent_v2_action_by(cfg->permission));
            next = CTS_STEP_V2_PUT;
        }
        next_step(pr, j, next);
        break;
    case CTS_CONSENT_UNCHANGED:
        if (j->maybe_landed)
            end_with(pr, j, CTS_ST_CREATED,
                     "stored by an earlier attempt whose reply was lost (the "
                     "retry found it in the account as sent)");
        else
            end_with(pr, j, CTS_ST_UNCHANGED,
                     "already up to date in the account");
        break;
    case CTS_CONSENT_OPTED_OUT:
        /* Unsubscribed in the account: only the contact can undo that. */
        cts_consent_optout_message(since, text, sizeof(text));
        snprintf(msg, sizeof(msg), "%s%s", j->c.opt_out ? "already " : "",
                 text);
        cts_job_set_str(&j->message, msg);
        end_row(pr, j, CTS_ST_OPTED_OUT);
        break;
    case CTS_EJSON:
        end_fail(pr, j, 0, "contacts.search",
                 err.msg[0] != '\0' ? err.msg
                                    : "the contact found cannot be read");
        break;
    default:
        /* The row cannot be laid over the contact (an unknown custom
         * field, too many lists...): it would fail again. */
        end_fail(pr, j, 1, "contacts.merge",
                 err.msg[0] != '\0' ? err.msg : "cannot merge the row");
        break;
    }
    free(since);
}

static void handle_ok(struct cts_protocol *pr, struct cts_job *j)
{
    const struct cts_http_req *req = &j->sr.http;
    const char *body = req->resp.data != NULL ? req->resp.data : "";
    char *id = NULL, *action = NULL;
    int created;

    /* A 2xx is a settled write even when the reply cannot be parsed: the
     * contact id is then left empty rather than the row failed (a retry
     * would only write the same data again). */
    switch ((enum cts_proto_step)j->step) {
    case CTS_STEP_V3_SIGNUP:
        /* sign_up_form: 201 created, 200 updated.  The body's `action` has
         * no documented values; a server that answers 200 with an action
         * naming a creation is believed too. */
        cts_api_v3_parse_signup(body, req->resp.len, &id, &action);
        j->contact_id = id;
        created = req->status == 201 ||
                  (action != NULL && strstr(action, "creat") != NULL);
        free(action);
        end_row(pr, j, created ? CTS_ST_CREATED : CTS_ST_UPDATED);
        return;
    case CTS_STEP_V3_POST:
        cts_api_v3_parse_contact_id(body, req->resp.len, &id);
        free(j->contact_id);
        j->contact_id = id;
        end_row(pr, j, CTS_ST_CREATED);
        return;
    case CTS_STEP_V2_POST:
        cts_api_v2_parse_contact_id(body, req->resp.len, &id);
        free(j->contact_id);
        j->contact_id = id;
        end_row(pr, j, CTS_ST_CREATED);
        return;
    case CTS_STEP_V3_GET:
    case CTS_STEP_V2_GET: handle_found(pr, j, body, req->resp.len); return;
    case CTS_STEP_V3_PUT:
        end_row(pr, j, j->c.opt_out ? CTS_ST_UNSUBSCRIBED : CTS_ST_UPDATED);
        return;
    case CTS_STEP_V2_PUT: end_row(pr, j, CTS_ST_UPDATED); return;
    case CTS_STEP_V2_DELETE: end_row(pr, j, CTS_ST_UNSUBSCRIBED); return;
    }
}

/* The request ended without a reply to judge (not sent, stopped, given
 * up): what that means for the row. */
static void handle_end(struct cts_protocol *pr, struct cts_job *j,
                       const struct cts_send_result *res)
{
    char full[512];

    switch (res->end) {
    case CTS_SEND_ABORTED:
        cts_job_set_str(&j->message, "not confirmed: the run stopped while "
                                     "this request was in flight");
        end_row(pr, j, CTS_ST_DEFERRED);
        return;
    case CTS_SEND_NO_QUOTA:
        end_stop(pr, j, CTS_STOP_QUOTA, 0,
                 "not sent: the daily quota of %ld requests is used up; run "
                 "again after 00:00 UTC",
                 pr->cfg->daily_quota);
        return;
    case CTS_SEND_FAILED:
        /* A refused submit is a libcurl multi error, a fault of the run
         * and not of the row: stop the run rather than fail rows one by
         * one. */
        end_stop(pr, j, CTS_STOP_FATAL, res->rc, "cannot start a request: %s",
                 cts_strerror(res->rc));
        return;
    case CTS_SEND_UNREACHABLE:
        /* The API went away: the rest is deferred and the run exits 69. */
        cts_job_set_str(&j->error_key, res->error_key);
        end_stop(pr, j, CTS_STOP_UNREACHABLE, 0,
                 "not sent: the API stopped answering (%s); run again later",
                 res->message);
        return;
    case CTS_SEND_GAVE_UP:
        /* Transient failures (5xx, timeouts, dropped connections) say
         * nothing about the row: the next run sends it again. */
        snprintf(full, sizeof(full), "gave up after %d attempt%s: %s",
                 j->sr.tries, j->sr.tries == 1 ? "" : "s",
                 res->message != NULL ? res->message : "?");
        end_later(pr, j, res->error_key, full);
        return;
    case CTS_SEND_STALLED:
        /* The key stays throttled (another program may be using it): no
         * row will get through for now, so the run stops here. */
        cts_job_set_str(&j->error_key, res->error_key);
        end_stop(pr, j, CTS_STOP_LATER, 0,
                 "not sent: throttled for 10 minutes without progress (%s; "
                 "another program may share the API key); try later",
                 res->error_key != NULL ? res->error_key : "throttled");
        return;
    case CTS_SEND_STOPPED:
        if (res->exchanged)
            cts_job_set_str(&j->error_key, res->error_key);
        end_row(pr, j, CTS_ST_DEFERRED);
        return;
    case CTS_SEND_REFUSED: /* the start hook stopped the run */
    default: end_row(pr, j, CTS_ST_DEFERRED); return;
    }
}

/* The engine finished one of the row's requests. */
static void on_send_done(struct cts_send_req *r, struct cts_send_result *res)
{
    struct cts_protocol *pr = r->data;
    struct cts_job *j =
        (struct cts_job *)((char *)r - offsetof(struct cts_job, sr));
    const struct cts_http_req *req = &r->http;

    j->attempts = r->sent;
    if (res->exchanged) {
        j->http_status = (int)req->status;
        /* Sticky: once a create may have landed, a later 409 on this row
         * is our own contact (libcurl itself may resend a POST). */
        if (r->maybe_landed &&
            (j->step == CTS_STEP_V3_POST || j->step == CTS_STEP_V2_POST))
            j->maybe_landed = 1;
    }
    if (res->end != CTS_SEND_REPLY) {
        handle_end(pr, j, res);
        return;
    }
    if (req->transport_error == CTS_XE_NONE && req->status == 409) {
        if (j->step == CTS_STEP_V3_SIGNUP) {
            /* sign_up_form's 409 means simultaneous changes to one
             * contact: transient, try again. */
            if (!cts_send_retry(pr->send, r, res))
                handle_end(pr, j, res);
            return;
        }
        if (j->step == CTS_STEP_V2_POST || j->step == CTS_STEP_V3_POST) {
            handle_conflict(pr, j, res);
            return;
        }
    }
    switch (res->oc) {
    case CTS_OC_OK: handle_ok(pr, j); return;
    case CTS_OC_AUTH:
        cts_job_set_str(&j->error_key, res->reply_key);
        end_stop(pr, j, CTS_STOP_AUTH, 0,
                 "not sent: the API refused the access token (401%s%s); get "
                 "a new one with `ctct-sync auth`",
                 res->reply_key != NULL ? " " : "",
                 res->reply_key != NULL ? res->reply_key : "");
        return;
    case CTS_OC_QUOTA:
        cts_job_set_str(&j->error_key, res->reply_key);
        end_stop(pr, j, CTS_STOP_QUOTA, 0,
                 "not sent: the API says the daily quota is used up (%s); run "
                 "again after 00:00 UTC",
                 res->reply_key != NULL ? res->reply_key : "quota");
        return;
    case CTS_OC_TRANSIENT:
    case CTS_OC_THROTTLED:
        /* Only a request that asked not to be retried gets these. */
        end_later(pr, j, res->error_key, res->message);
        return;
    case CTS_OC_PERMANENT:
    default:
        end_fail(pr, j, req->transport_error == CTS_XE_NONE, res->error_key,
                 res->message);
        return;
    }
}
