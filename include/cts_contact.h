/*
 * cts_contact.h — the data that flows through the pipeline: a mapped
 * contact, a row's final status, and one line of the report.
 *
 * Shared by reader/mapper (who produce contacts), the pipeline (who sends
 * them), state (fingerprints) and report (who writes results).
 */
#ifndef CTS_CONTACT_H
#define CTS_CONTACT_H

#include <stddef.h>
#include <stdint.h>

/* Contact fields a CSV column can map to, in report/fingerprint
 * order.  Names are the canonical field names used by --map. */
enum cts_field {
    CTS_F_EMAIL = 0,
    CTS_F_FIRST_NAME,
    CTS_F_LAST_NAME,
    CTS_F_COMPANY_NAME,
    CTS_F_JOB_TITLE,
    CTS_F_PHONE,
    CTS_F_STREET,
    CTS_F_CITY,
    CTS_F_STATE,
    CTS_F_POSTAL_CODE,
    CTS_F_COUNTRY,
    CTS_F_BIRTHDAY_MONTH,
    CTS_F_BIRTHDAY_DAY,
    CTS_F_ANNIVERSARY,
    CTS_F__COUNT,
    /* Columns that steer the row rather than hold a value of the contact:
     * they live beside f[] (struct cts_contact.opt_out/.opt_out_reason),
     * so request bodies and fingerprints that walk f[] stay as they were.
     * opt_out: the row asks that the contact be unsubscribed. */
    CTS_F_OPT_OUT = CTS_F__COUNT,
    CTS_F_OPT_OUT_REASON,
    CTS_F__MAPPABLE /* every name --map FIELD= accepts */
};

struct cts_custom_field {
    char *name;  /* owned; the name after "cf:" in --map */
    char *value; /* owned, UTF-8 */
};

/* A validated, normalised contact.  All strings owned, UTF-8, NULL when the
 * column is absent or the cell empty; f[CTS_F_EMAIL] is never NULL for a
 * contact that the mapper accepted (trimmed, lower-cased). */
struct cts_contact {
    char *f[CTS_F__COUNT];
    struct cts_custom_field *cf;
    size_t ncf;
    /* The row says "unsubscribe this person" (an opt_out column that is
     * true).  Such a contact carries only its email and the reason: no
     * other value is sent for it. */
    int opt_out;
    char *opt_out_reason; /* owned like f[]; NULL when absent or empty */
};

/* Free the strings a contact owns (not the struct); NULL-safe. */
void cts_contact_free(struct cts_contact *c);
/* Fill dst with owned copies of src's strings (src is only read: its
 * memory may be someone else's, e.g. an arena); clear dst with
 * cts_contact_free. */
void cts_contact_copy(struct cts_contact *dst, const struct cts_contact *src);
/* Canonical name of a field ("email", "first_name", ... "opt_out",
 * "opt_out_reason"); any value below CTS_F__MAPPABLE. */
const char *cts_field_name(enum cts_field f);

/* The final status of a data row (the report's status column), in report
 * spelling order. */
enum cts_status {
    CTS_ST_CREATED = 0,
    CTS_ST_UPDATED,
    CTS_ST_IMPORTED,
    CTS_ST_UNCHANGED,
    CTS_ST_EXISTS,
    CTS_ST_INVALID,
    CTS_ST_DUPLICATE,
    CTS_ST_FAILED,
    CTS_ST_DEFERRED,
    CTS_ST_DRY_RUN,
    CTS_ST_OPTED_OUT,    /* unsubscribed in the account: left alone */
    CTS_ST_UNSUBSCRIBED, /* this run unsubscribed it (the file said so) */
    CTS_ST_REMOVED,      /* a --mirror list member absent from the input,
                            taken off that list */
    CTS_ST__COUNT
};

/* "created", "updated", ... "dry-run", "opted-out", "unsubscribed",
 * "removed". */
const char *cts_status_name(enum cts_status s);
/* Parse a status name; returns -1 when unknown. */
int cts_status_parse(const char *name);

/* One line of the report.  Strings are borrowed by the report writer for
 * the duration of the call that receives the result. */
struct cts_result {
    const char *file;  /* input file name as given ("-" for stdin) */
    long row;          /* 1-based data row (header excluded) */
    const char *email; /* normalised email or the raw cell; may be NULL */
    enum cts_status status;
    int http_status;        /* last HTTP status, 0 if no request */
    int attempts;           /* requests made for this row */
    const char *contact_id; /* may be NULL */
    const char *error_key;  /* may be NULL */
    const char *message;    /* may be NULL */
};

#endif /* CTS_CONTACT_H */
