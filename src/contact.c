/* contact.c — names of fields and statuses; copying and clearing a contact. */
#include "cts_contact.h"

#include <stdlib.h>
#include <string.h>

#include "cts_util.h"

static const char *const field_names[CTS_F__MAPPABLE] = {
    "email",        "first_name",  "last_name", "company_name",
    "job_title",    "phone",       "street",    "city",
    "state",        "postal_code", "country",   "birthday_month",
    "birthday_day", "anniversary", "opt_out",   "opt_out_reason"};

static const char *const status_names[CTS_ST__COUNT] = {
    "created",   "updated",      "imported", "unchanged", "exists",
    "invalid",   "duplicate",    "failed",   "deferred",  "dry-run",
    "opted-out", "unsubscribed", "removed"};

const char *cts_field_name(enum cts_field f)
{
    return (unsigned)f < CTS_F__MAPPABLE ? field_names[f] : "?";
}

const char *cts_status_name(enum cts_status s)
{
    return (unsigned)s < CTS_ST__COUNT ? status_names[s] : "?";
}

int cts_status_parse(const char *name)
{
    int i;
    for (i = 0; i < CTS_ST__COUNT; i++)
        if (strcmp(name, status_names[i]) == 0)
            return i;
    return -1;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? cts_xstrdup(s) : NULL;
}

void cts_contact_copy(struct cts_contact *dst, const struct cts_contact *src)
{
    size_t i;

    memset(dst, 0, sizeof(*dst));
    for (i = 0; i < CTS_F__COUNT; i++)
        dst->f[i] = dup_or_null(src->f[i]);
    if (src->ncf > 0) {
        dst->cf = cts_xcalloc(src->ncf, sizeof(*dst->cf));
        for (i = 0; i < src->ncf; i++) {
            dst->cf[i].name = dup_or_null(src->cf[i].name);
            dst->cf[i].value = dup_or_null(src->cf[i].value);
        }
        dst->ncf = src->ncf;
    }
    dst->opt_out = src->opt_out;
    dst->opt_out_reason = dup_or_null(src->opt_out_reason);
}

void cts_contact_free(struct cts_contact *c)
{
    size_t i;
    if (c == NULL)
        return;
    for (i = 0; i < CTS_F__COUNT; i++) {
        free(c->f[i]);
        c->f[i] = NULL;
    }
    for (i = 0; i < c->ncf; i++) {
        free(c->cf[i].name);
        free(c->cf[i].value);
    }
    free(c->cf);
    c->cf = NULL;
    c->ncf = 0;
    free(c->opt_out_reason);
    c->opt_out_reason = NULL;
    c->opt_out = 0;
}
