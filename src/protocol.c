/* protocol.c — the per-row request protocol, v3 and v2 (cts_protocol.h). */
#include "cts_protocol.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cts_api.h"
#include "cts_http.h"

static void on_send_done(struct cts_send_req *r, struct cts_send_result *res);

static const char *v2_key(const struct cts_protocol *pr)
{
    return pr->cfg->api == CTS_API_V2 ? pr->cfg->api_key : NULL;
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
                                     "action_by=ACTION_BY_OWNER");
    else if (cfg->mode == CTS_MODE_CREATE)
        pr->url_create = cts_api_url(cfg->base_url, "/contacts", NULL, NULL);
    else
        pr->url_create =
            cts_api_url(cfg->base_url, "/contacts/sign_up_form", NULL, NULL);
}

void cts_protocol_free(struct cts_protocol *pr)
{
    free(pr->url_create);
    pr->url_create = NULL;
}

const char *cts_protocol_dry_run(const struct cts_config *cfg)
{
    if (cfg->bulk == CTS_BULK_ALWAYS)
        return "would import it in a bulk activity";
    if (cfg->api == CTS_API_V2)
        return cfg->mode == CTS_MODE_CREATE
                   ? "would POST /contacts (exists if it does)"
                   : "would POST /contacts (GET and PUT if it exists)";
    return cfg->mode == CTS_MODE_CREATE ? "would POST /contacts"
                                        : "would POST /contacts/sign_up_form";
}

int cts_protocol_prepare(struct cts_protocol *pr, struct cts_job *j,
                         struct cts_error *err)
{
    const struct cts_config *cfg = pr->cfg;

    if (cfg->api == CTS_API_V3) {
        if (cfg->mode == CTS_MODE_CREATE) {
            j->step = CTS_STEP_V3_CREATE;
            j->body = cts_api_v3_contact_body(&j->c, cfg->lists, cfg->nlists,
                                              pr->cf, err);
        } else {
            j->step = CTS_STEP_V3_SIGNUP;
            j->body = cts_api_v3_signup_body(&j->c, cfg->lists, cfg->nlists,
                                             pr->cf, err);
        }
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
    case CTS_STEP_V2_GET: cts_send_req_set(&j->sr, "GET", j->url, NULL); break;
    case CTS_STEP_V2_PUT:
        cts_send_req_set(&j->sr, "PUT", j->url, j->body);
        break;
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

    if (j->step == CTS_STEP_V2_POST && cfg->mode != CTS_MODE_CREATE) {
        /* v2 upsert: look the contact up by email, then PUT with the lists
         * merged.  Also right when our own earlier POST landed and its
         * reply was lost (libcurl may even have resent it on a new
         * connection by itself): never a failure, never a second
         * contact. */
        char *q, *esc = cts_url_escape(j->c.f[CTS_F_EMAIL]);
        q = cts_xasprintf("email=%s", esc);
        free(esc);
        free(j->url);
        j->url = cts_api_url(cfg->base_url, "/contacts", v2_key(pr), q);
        free(q);
        next_step(pr, j, CTS_STEP_V2_GET);
        return;
    }
    if (j->maybe_landed) {
        /* --mode create, and an earlier attempt of ours may have stored it:
         * the 409 is our own contact. */
        cts_job_set_str(&j->message, "stored by an earlier attempt whose "
                                     "reply was lost (the retry found it "
                                     "existing)");
        end_row(pr, j, CTS_ST_CREATED);
        return;
    }
    cts_job_set_str(&j->error_key, res->reply_key);
    cts_job_set_str(&j->message,
                    res->reply_message != NULL
                        ? res->reply_message
                        : "the contact already exists (--mode create)");
    end_row(pr, j, CTS_ST_EXISTS);
}

static void handle_ok(struct cts_protocol *pr, struct cts_job *j)
{
    const struct cts_config *cfg = pr->cfg;
    const struct cts_http_req *req = &j->sr.http;
    const char *body = req->resp.data != NULL ? req->resp.data : "";
    char *id = NULL, *action = NULL, *existing = NULL, *merged, *path, *esc;
    struct cts_error err = {0};
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
    case CTS_STEP_V3_CREATE:
        cts_api_v3_parse_contact_id(body, req->resp.len, &id);
        j->contact_id = id;
        end_row(pr, j, CTS_ST_CREATED);
        return;
    case CTS_STEP_V2_POST:
        cts_api_v2_parse_contact_id(body, req->resp.len, &id);
        j->contact_id = id;
        end_row(pr, j, CTS_ST_CREATED);
        return;
    case CTS_STEP_V2_GET:
        /* The 409's contact: merge our fields and lists into what the
         * account holds (a v2 PUT replaces the whole contact). */
        if (cts_api_v2_parse_search(body, req->resp.len, &id, &existing) != 0 ||
            id == NULL) {
            free(id);
            free(existing);
            end_fail(pr, j, 0, "contacts.search.not_found",
                     "the API said the email exists (409) but a search by "
                     "email found no contact");
            return;
        }
        merged = cts_api_v2_merge_update(existing, &j->c, cfg->lists,
                                         cfg->nlists, &err);
        free(existing);
        if (merged == NULL) {
            free(id);
            end_fail(pr, j, 1, "contacts.merge", err.msg);
            return;
        }
        free(j->body);
        j->body = merged;
        esc = cts_url_escape(id);
        path = cts_xasprintf("/contacts/%s", esc);
        free(esc);
        free(j->url);
        j->url = cts_api_url(cfg->base_url, path, v2_key(pr),
                             "action_by=ACTION_BY_OWNER");
        free(path);
        free(j->contact_id);
        j->contact_id = id;
        next_step(pr, j, CTS_STEP_V2_PUT);
        return;
    case CTS_STEP_V2_PUT: end_row(pr, j, CTS_ST_UPDATED); return;
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
        /* A refused submit is a libcurl multi error: style C4 stops the
         * run for it rather than failing rows one by one. */
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
        snprintf(full, sizeof(full), "gave up after %d attempts: %s",
                 j->sr.tries, res->message);
        end_fail(pr, j, 0, res->error_key, full);
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
        if (r->maybe_landed && j->step != CTS_STEP_V2_GET)
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
        if (j->step == CTS_STEP_V2_POST || j->step == CTS_STEP_V3_CREATE) {
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
    default:
        end_fail(pr, j, req->transport_error == CTS_XE_NONE, res->error_key,
                 res->message);
        return;
    }
}
