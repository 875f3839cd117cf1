/*
 * cts_mapper.h — from a CSV row to a validated contact.
 *
 * Pure: no I/O except cts_mapper_describe() and cts_mapper_log_header().  Built
 * once per input file from its header row (cts_row.row == 0), then applied to
 * every data row.
 *
 * Header matching: names are normalised (Unicode BOM/NBSP/whitespace
 * trimmed, ASCII case folded, spaces '_' '-' '.' '*' removed) and compared with
 * the canonical field names and the aliases in mapper.c.  --map FIELD=HEADER
 * and --map cf:NAME=HEADER match HEADER by the same normalisation and win
 * over aliases.  Columns that nothing claims are "unmapped" (the pipeline
 * lists them once on stderr).  A column with an empty name (trailing
 * delimiter) is ignored silently.
 *
 * Validation (limits in characters, per API generation, from Constant
 * Contact's API documentation; where v2 documents nothing the v3 limit is
 * used):
 *   email          v3 ≤ 50 (sign_up_form and bulk), v2 ≤ 80; local part ≤ 64
 *   first_name, last_name, company_name, job_title        ≤ 50
 *   phone          ≤ 25 (v3 sign_up_form; v2 documents no limit, same used)
 *   street ≤ 255; city, state, postal_code, country ≤ 50
 *   birthday_month 1–12 and birthday_day 1–31, each requires the other
 *   anniversary    ≤ 10: YYYY-MM-DD, MM/DD/YYYY, M/D/YYYY, YYYY/MM/DD
 *   custom field value ≤ 255; at most 25 custom fields
 * Opt-outs: a column mapped to opt_out (aliases: opt out, opted out, email
 * opt out, unsubscribed, unsubscribe, do not email, HasOptedOutOfEmail,
 * ...) is yes (yes y true 1 x unsubscribed "opted out", any case) or no
 * (empty no n false 0); any other value makes the row invalid, the message
 * naming the column and the value.  A yes row is only an unsubscription:
 * contact.opt_out = 1, the email and opt_out_reason (≤ 255 characters, cut
 * beyond) are kept and the other columns are neither read nor checked.
 * v2 text must fit ISO-8859-1: the mapper transliterates
 *   ’ ‘ ‚ ′ → '   “ ” „ ″ → "   – — ‒ − → -   … → ...   € → EUR
 *   • → *   ™ → (TM)   NBSP/thin/zero-width spaces → space / nothing
 * (never in the email address) and marks the row invalid for any other
 * character above U+00FF, naming the column and the code point
 * ("column \"First Name\": character U+0141 is outside ISO-8859-1, which
 * the v2 API rejects").
 */
#ifndef CTS_MAPPER_H
#define CTS_MAPPER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cts_contact.h"
#include "cts_reader.h"
#include "cts_types.h"
#include "cts_util.h"

struct cts_mapper_opts {
    enum cts_api api;
    const struct cts_map *maps; /* borrowed (copied); may be NULL */
    size_t nmaps;
    const char *file; /* borrowed (copied); for messages */
    int accept_typos; /* 0: an address whose domain looks like a slip
                         (cts_typo.h) makes its row invalid */
};

struct cts_mapper;

/*
 * Build the mapping for one file from its header row (borrowed).  Returns
 * an owned mapper, or NULL with err->code = CTS_EDATA and err->exit_code =
 * 65 and one of:
 *   "no email column (headers seen: Name, Mail, Phone)"
 *   "header \"E-mail\" is claimed by both email and cf:contact"
 *   "--map first_name=Vorname: no such header (headers seen: ...)"
 *   "--map nickname=Nick: unknown field (fields: email, first_name, ...)"
 *   "columns \"Email\" and \"E-Mail\" both map to email"
 * or CTS_EDATA when the header row itself has a problem (e.g. NUL byte).
 */
struct cts_mapper *cts_mapper_new(const struct cts_mapper_opts *o,
                                  const struct cts_row *header,
                                  struct cts_error *err);

/*
 * Map and validate one data row (borrowed).  out must be zeroed or cleared
 * by the caller; the caller always calls cts_contact_free(out) afterwards.
 * Returns:
 *   0          a valid contact in out (email normalised, never NULL);
 *   CTS_EDATA  the row is invalid: err->msg is the reason, naming the
 *              column by its header and, when the header does not say it,
 *              the field it feeds ("column \"Email\": no '@'",
 *              "column \"Vorname\" (first_name) is longer than 50
 *              characters", "column \"E-mail\": did you mean
 *              ann@gmail.com? ...", or the reader's row->problem),
 *              err->row = row->row; out still holds what could be read
 *              (out->f[CTS_F_EMAIL] = the trimmed raw email cell when there
 *              is one) for the report.
 */
int cts_mapper_map(const struct cts_mapper *m, const struct cts_row *row,
                   struct cts_contact *out, struct cts_error *err);

/* Allocator for cts_mapper_map_with: n bytes aligned for a pointer, or
 * abort (never NULL).  arg is the caller's. */
typedef void *(*cts_mapper_alloc_fn)(void *arg, size_t n);

/*
 * cts_mapper_map with every string of out, and out->cf, taken from
 * alloc(alloc_arg, n) instead of malloc: for a caller that keeps many
 * contacts in one arena and drops them at once.  Such a contact is NOT
 * passed to cts_contact_free (the caller owns the memory).  Temporary
 * copies made while validating are malloc'd and freed inside the call.
 * alloc NULL is cts_mapper_map.  Same results and errors.
 */
int cts_mapper_map_with(const struct cts_mapper *m, const struct cts_row *row,
                        struct cts_contact *out, cts_mapper_alloc_fn alloc,
                        void *alloc_arg, struct cts_error *err);

/* The raw email cell of a row (borrowed from row), or NULL if the row has
 * no such column.  For reporting rows the reader flagged. */
const char *cts_mapper_email_cell(const struct cts_mapper *m,
                                  const struct cts_row *row);

/* Print the mapping for --dry-run, one line per column:
 *   "  \"E-mail Address\" -> email" / "  \"Notes\" -> (ignored)". */
void cts_mapper_describe(const struct cts_mapper *m, FILE *f);

/* What a file's header gives, on stderr through the log (file and header
 * names escaped): the columns that map to nothing (one info line), and
 * with describe the whole mapping ("FILE: column mapping:" and
 * cts_mapper_describe).  file borrowed. */
void cts_mapper_log_header(const struct cts_mapper *m, const char *file,
                           int describe);

/* 1 when column col (0-based) feeds a field, 0 when nothing reads it
 * (unmapped, unnamed, or beyond the header). */
int cts_mapper_column_used(const struct cts_mapper *m, size_t col);

/* Header names (as written, trimmed) that map to nothing; *names is
 * borrowed from the mapper.  Returns the count. */
size_t cts_mapper_unmapped(const struct cts_mapper *m,
                           const char *const **names);

/* Free; NULL-safe. */
void cts_mapper_free(struct cts_mapper *m);

/* Maximum length in characters of a field for an API generation. */
size_t cts_field_max(enum cts_api api, enum cts_field f);

/* ---- pure helpers (exposed for tests and the fuzzer) ---- */

/* Header-name normalisation (described above) into an owned string. */
char *cts_header_normalize(const char *name);

/*
 * Make UTF-8 text fit ISO-8859-1 for v2 with the table above.  Returns 0
 * and *out (owned; a copy even when unchanged), or CTS_EDATA with *bad =
 * the first code point that has no Latin-1 form and *out = NULL.
 */
int cts_latin1_fit(const char *in, char **out, uint32_t *bad);

#endif /* CTS_MAPPER_H */
