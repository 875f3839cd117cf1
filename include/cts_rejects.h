/*
 * cts_rejects.h — the rejects file: the input rows that need a person
 * (status `invalid` or `failed`) with their original columns and header,
 * plus a last column `ctct_sync_problem` saying what is wrong, ready to be
 * fixed and imported again.  UTF-8 with a BOM, CRLF, RFC 4180 quoting and
 * the report's formula neutralising (cts_report_cell).
 *
 * How the original columns are found without holding rows in memory: the
 * report hands each row's final result here in input order
 * (cts_rejects_add); only the rejected ones are kept, as (file, row,
 * problem) records in a temporary file.  After the run cts_rejects_write
 * reads each input that has rejected rows once more, streaming, with the
 * reader options of the run (delimiter, encoding), and copies those rows.
 * An input that cannot be read twice (stdin, a pipe, a FIFO) is copied to
 * a temporary file while it is read (cts_rejects_tee_start/_tee).  Memory
 * stays bounded by one row and one header per input; the temporary files
 * are unlinked at once and live in $TMPDIR (else /tmp).
 *
 * Several inputs make one rejects file: its header is the union of the
 * inputs' headers (columns matched by normalised name, the first file's
 * spelling and order, new names appended), so each row keeps its values
 * under their own column names and the file imports as one.  Cells of a
 * row beyond its header (a row with too many fields) go to unnamed
 * columns before the problem column.  An input's own `ctct_sync_problem`
 * column (a rejects file imported again) is replaced by the new one.
 */
#ifndef CTS_REJECTS_H
#define CTS_REJECTS_H

#include <stddef.h>

#include "cts_config.h"
#include "cts_contact.h"
#include "cts_util.h"

/* The last column's header; cts_header_normalize of it is
 * CTS_REJECTS_PROBLEM_NORM (how the mapper recognises it). */
#define CTS_REJECTS_PROBLEM      "ctct_sync_problem"
#define CTS_REJECTS_PROBLEM_NORM "ctctsyncproblem"

struct cts_rejects;

/*
 * A collector for one run.  cfg (borrowed, for the collector's life:
 * inputs, ninputs, delimiter, encoding) is read, never changed.  Regular
 * input files are identified now (device, inode, size, modification
 * time) so that one changed during the run is not copied from.  Returns
 * an owned collector (allocation failure aborts).
 */
struct cts_rejects *cts_rejects_new(const struct cts_config *cfg);

/* Free the collector and its temporary files; NULL-safe. */
void cts_rejects_free(struct cts_rejects *rj);

/*
 * Input file_idx is about to be read from fd (borrowed).  When it cannot
 * be read again after the run (stdin, or fd is not a regular file), a
 * temporary copy is started and 1 is returned: the reader then passes
 * every byte it reads to cts_rejects_tee.  0 otherwise (nothing to do).
 * Call from the thread that owns the collector, before the first read.
 */
int cts_rejects_tee_start(struct cts_rejects *rj, size_t file_idx, int fd);

/*
 * Append len bytes (borrowed) read from input file_idx to its copy.
 * May be called from another thread (the intake thread): it touches only
 * that input's copy, which nothing else uses until reading is over.  A
 * failed write is remembered: that input's rows are then missing from
 * the rejects file, and cts_rejects_write says so.
 */
void cts_rejects_tee(struct cts_rejects *rj, size_t file_idx, const void *data,
                     size_t len);

/* 1 when status is one a person must act on: invalid, failed. */
int cts_rejects_wanted(enum cts_status status);

/*
 * Format the problem column for a result (borrowed) into out: invalid
 * rows keep their message ("email: no '@'"); failed rows say who refused
 * and why ("refused by Constant Contact (HTTP 400, json.field.invalid):
 * ...").  message (borrowed, may be NULL) is the text to use instead of
 * res->message (the report passes it masked).  Returns out.
 */
char *cts_rejects_problem(const struct cts_result *res, const char *message,
                          char *out, size_t outlen);

/*
 * The final result of one row (borrowed), in input order: kept when
 * cts_rejects_wanted(res->status).  res->file must be one of cfg->inputs
 * (the pointer, or the same name).  message as in cts_rejects_problem.
 * Returns 0, or a negative code when the temporary file cannot be written
 * (sticky; cts_rejects_write then fails too).
 */
int cts_rejects_add(struct cts_rejects *rj, const struct cts_result *res,
                    const char *message);

/* Rows kept so far. */
long cts_rejects_count(const struct cts_rejects *rj);

/*
 * The rejects file beside a report (borrowed): "DIR/NAME.rejects.csv" for
 * "DIR/NAME.report.csv" or "DIR/NAME.csv", else "REPORT.rejects.csv".
 * Returns an owned string, or NULL when the report exists and is not a
 * regular file (/dev/null, a FIFO): there is no "beside" then.
 */
char *cts_rejects_default_path(const char *report);

/*
 * Write the rejects file at path (borrowed) when rows were kept: created
 * mode 0600 (an existing file keeps its mode), never through a symbolic
 * link, emptied, then the header and the rows.  When no row was kept,
 * nothing is created and a regular file left at path by an earlier run
 * is removed, so the file exists exactly when this run has rows for a
 * person.  *written (may be NULL) gets the rows written; rows that could
 * not be read back (an input changed during the run, a failed copy) are
 * left out with a warning naming the input.  Returns 0, or a negative
 * code with err filled (exit code 73).
 */
int cts_rejects_write(struct cts_rejects *rj, const char *path, long *written,
                      struct cts_error *err);

#endif /* CTS_REJECTS_H */
