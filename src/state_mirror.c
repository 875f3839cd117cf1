/*
 * state_mirror.c — --mirror in the state (cts_state.h): whether an email
 * was in this run's input, and the journal records of list removals, so
 * that a resumed run polls a removal a killed run started instead of
 * posting it again, and reports what that run removed.
 */
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

int cts_state_in_run(const struct cts_state *st, uint64_t key)
{
    const struct cts_eslot *s;

    if (st->committed)
        return 0;
    s = cts_emailidx_find(&st->ix, key);
    return s != NULL && s->row != 0;
}

/* ---- replay ---- */

static struct mirror_removal *removal(struct cts_state *st, uint32_t serial,
                                      int create)
{
    size_t i;

    for (i = st->nmr; i > 0; i--)
        if (st->mr[i - 1].serial == serial)
            return &st->mr[i - 1];
    if (!create)
        return NULL;
    st->mr = cts_xrealloc(st->mr, (st->nmr + 1) * sizeof(*st->mr));
    memset(&st->mr[st->nmr], 0, sizeof(*st->mr));
    st->mr[st->nmr].serial = serial;
    return &st->mr[st->nmr++];
}

void cts_state_mirror_replay(struct cts_state *st, const struct jrec *r,
                             const char *payload)
{
    uint32_t serial =
        r->type == J_MIRROR_BEGIN ? (uint32_t)r->http : (uint32_t)r->key;
    struct mirror_removal *m = removal(st, serial, 1);
    struct mirror_member *mm;
    size_t a, b;

    if (serial > st->mirror_serial)
        st->mirror_serial = serial;
    if (r->type == J_MIRROR_START) {
        free(m->activity_id);
        m->activity_id = cts_xstrndup(payload, r->len);
        return;
    }
    if (r->type == J_MIRROR_END) {
        m->ended = r->http + 1;
        return;
    }
    /* "list id\0email\0contact id" */
    a = strnlen(payload, r->len);
    b = a < r->len ? strnlen(payload + a + 1, r->len - a - 1) : 0;
    if (a == 0 || a + 1 + b > r->len || b == 0)
        return;
    if (st->nmm == st->capmm) {
        st->capmm = st->capmm ? st->capmm * 2 : 64;
        st->mm = cts_xrealloc(st->mm, st->capmm * sizeof(*st->mm));
    }
    mm = &st->mm[st->nmm++];
    mm->key = r->key;
    mm->serial = serial;
    mm->list_id = cts_xstrndup(payload, a);
    mm->email = cts_xstrndup(payload + a + 1, b);
    mm->contact_id = a + 1 + b + 1 < r->len ? cts_xstrndup(payload + a + b + 2,
                                                           r->len - (a + b + 2))
                                            : NULL;
}

void cts_state_mirror_free(struct cts_state *st)
{
    size_t i;

    for (i = 0; i < st->nmm; i++) {
        free(st->mm[i].list_id);
        free(st->mm[i].email);
        free(st->mm[i].contact_id);
    }
    for (i = 0; i < st->nmr; i++)
        free(st->mr[i].activity_id);
    free(st->mm);
    free(st->mr);
    st->mm = NULL;
    st->mr = NULL;
    st->nmm = st->capmm = st->nmr = 0;
}

size_t cts_state_mirror_count(const struct cts_state *st)
{
    return st->nmm;
}

void cts_state_mirror_get(const struct cts_state *st, size_t i,
                          struct cts_state_removal *out)
{
    const struct mirror_member *mm = &st->mm[i];
    const struct mirror_removal *m = NULL;
    size_t k;

    for (k = st->nmr; k > 0 && m == NULL; k--)
        if (st->mr[k - 1].serial == mm->serial)
            m = &st->mr[k - 1];
    memset(out, 0, sizeof(*out));
    out->list_id = mm->list_id;
    out->email = mm->email;
    out->contact_id = mm->contact_id;
    out->key = mm->key;
    out->serial = mm->serial;
    if (m != NULL) {
        out->activity_id = m->activity_id;
        out->ended = m->ended != 0;
        out->status =
            m->ended != 0 ? (enum cts_status)(m->ended - 1) : CTS_ST_DEFERRED;
    }
}

/* ---- writing ---- */

uint32_t cts_state_mirror_serial(struct cts_state *st)
{
    return ++st->mirror_serial;
}

int cts_state_mirror_begin(struct cts_state *st, uint32_t serial,
                           const char *list_id, const char *email,
                           const char *contact_id)
{
    struct cts_buf b;
    int rc;

    if (st->dry_run || st->jfd < 0)
        return 0;
    cts_buf_init(&b, 0);
    cts_buf_append(&b, list_id, strlen(list_id) + 1);
    cts_buf_append(&b, email, strlen(email) + 1);
    if (contact_id != NULL)
        cts_buf_append(&b, contact_id, strlen(contact_id));
    rc = cts_state_jwrite(st, J_MIRROR_BEGIN, cts_state_email_key(email), 0, 0,
                          (int)serial, b.data, b.len);
    cts_buf_free(&b);
    return rc;
}

/* Removals are also kept in memory, so the commit knows which activities
 * are still running (cts_state_mirror_open). */
int cts_state_mirror_started(struct cts_state *st, uint32_t serial,
                             const char *activity_id)
{
    struct mirror_removal *m;

    if (st->dry_run || st->jfd < 0)
        return 0;
    m = removal(st, serial, 1);
    free(m->activity_id);
    m->activity_id = cts_xstrdup(activity_id);
    return cts_state_jwrite(st, J_MIRROR_START, serial, 0, 0, 0, activity_id,
                            strlen(activity_id));
}

int cts_state_mirror_ended(struct cts_state *st, uint32_t serial,
                           enum cts_status status)
{
    if (st->dry_run || st->jfd < 0)
        return 0;
    removal(st, serial, 1)->ended = (int)status + 1;
    return cts_state_jwrite(st, J_MIRROR_END, serial, 0, 0, (int)status, NULL,
                            0);
}

int cts_state_mirror_open(const struct cts_state *st, uint32_t serial)
{
    size_t i;

    for (i = st->nmr; i > 0; i--)
        if (st->mr[i - 1].serial == serial)
            return st->mr[i - 1].activity_id != NULL && !st->mr[i - 1].ended;
    return 0;
}
