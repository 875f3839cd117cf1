/* job.c — a row's unit of work: state machine and pool (cts_job.h). */
#include "cts_job.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

static const char *const state_names[] = {"READ", "MAPPED", "SENDING",
                                          "BULK", "DONE",   "REPORTED"};

#define B(s) (1u << (s))
/* legal[from] is the set of states a job may move to from `from`. */
static const unsigned legal[] = {
    [CTS_JS_READ] = B(CTS_JS_MAPPED) | B(CTS_JS_DONE),
    [CTS_JS_MAPPED] = B(CTS_JS_SENDING) | B(CTS_JS_BULK) | B(CTS_JS_DONE),
    [CTS_JS_SENDING] = B(CTS_JS_DONE),
    [CTS_JS_BULK] = B(CTS_JS_DONE),
    [CTS_JS_DONE] = B(CTS_JS_REPORTED),
    [CTS_JS_REPORTED] = 0,
};

void cts_job_set_state(struct cts_job *j, enum cts_job_state to)
{
    /* An illegal transition is a pipeline bug, never an input condition. */
    assert((legal[j->state] & B(to)) != 0);
    if ((legal[j->state] & B(to)) == 0)
        cts_log_error("internal: row %ld: %s -> %s", j->row,
                      state_names[j->state], state_names[to]);
    cts_log_debug("%s:%ld: %s -> %s", j->file, j->row, state_names[j->state],
                  state_names[to]);
    j->state = to;
}

#define SPARE_MAX 64 /* freed jobs kept for reuse: a row costs no malloc */

void cts_jobs_init(struct cts_jobs *js, void *owner)
{
    memset(js, 0, sizeof(*js));
    js->owner = owner;
}

void cts_jobs_free(struct cts_jobs *js)
{
    struct cts_job *j;

    while ((j = js->spare) != NULL) {
        js->spare = j->spare;
        free(j);
    }
    js->nspare = 0;
}

struct cts_job *cts_job_new(struct cts_jobs *js, uint64_t seq, const char *file,
                            long row)
{
    struct cts_job *j = js->spare;

    if (j != NULL) {
        js->spare = j->spare;
        js->nspare--;
        memset(j, 0, sizeof(*j));
    } else {
        j = cts_xcalloc(1, sizeof(*j));
    }
    j->pool = js;
    j->owner = js->owner;
    j->seq = seq;
    j->row = row;
    j->file = file;
    j->state = CTS_JS_READ;
    cts_send_req_init(&j->sr);
    js->live++;
    return j;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct cts_send_req *r = h->data;
    /* The last handle of the job is closed: only now may it be freed
     * (libuv: memory of a handle stays in use until its close callback). */
    free((char *)r - offsetof(struct cts_job, sr));
}

void cts_job_free(struct cts_job *j)
{
    struct cts_jobs *js = j->pool;

    if (!j->c_borrowed)
        cts_contact_free(&j->c);
    free(j->body);
    free(j->url);
    free(j->contact_id);
    free(j->error_key);
    free(j->message);
    js->live--;
    if (cts_send_req_close(&j->sr, on_timer_closed)) {
        /* freed by on_timer_closed */
    } else if (js->nspare < SPARE_MAX) {
        /* No handle was ever initialised in it: reusable at once. */
        j->spare = js->spare;
        js->spare = j;
        js->nspare++;
    } else {
        free(j);
    }
}

void cts_job_set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src != NULL ? cts_xstrdup(src) : NULL;
}

void cts_job_set_static_msg(struct cts_job *j, const char *text)
{
    free(j->message);
    j->message = NULL;
    j->smsg = text;
}

const char *cts_job_message(const struct cts_job *j)
{
    return j->message != NULL ? j->message : j->smsg;
}

void cts_job_own_contact(struct cts_job *j)
{
    struct cts_contact c;

    if (!j->c_borrowed)
        return;
    cts_contact_copy(&c, &j->c);
    j->c = c;
    j->c_borrowed = 0;
}
