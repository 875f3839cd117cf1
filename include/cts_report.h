/*
 * cts_report.h — the result sink of an import: the per-row
 * report CSV written in input order, the run's counts, the --summary JSON,
 * and the closing summary line on stderr.  (The progress line on a terminal
 * is cts_progress.h.)
 *
 * The pipeline finishes rows out of order (concurrent requests, retries);
 * the sink takes each result with its sequence number (0-based over the
 * whole run, all input files together) and writes lines strictly in
 * sequence order, buffering the ones that arrive early.  The buffer holds
 * only the window between the oldest unwritten row and the newest finished
 * one, which the pipeline bounds with its high-water mark.
 *
 * The report is UTF-8 with a BOM, CRLF line ends, RFC 4180 quoting, and
 * every text cell beginning with '=', '+', '-', '@', TAB or CR is prefixed
 * with a single quote so spreadsheets do not read it as a formula.
 *
 * Write errors are sticky: after the first failed write every call returns
 * the same error (UV_EIO or the negated errno), and cts_report_close()
 * reports it too, so a full disk is never silent (exit 73).
 */
#ifndef CTS_REPORT_H
#define CTS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "cts_contact.h"
#include "cts_util.h"

/* The counts that end a run (summary JSON and stderr line). */
struct cts_report_counts {
    long input_rows;            /* rows written to the report */
    long status[CTS_ST__COUNT]; /* rows per final status */
    long requests;              /* HTTP requests made (set by the caller) */
    long throttled;             /* of which answered by a throttling
                                   reply (set by the caller) */
    long retries;               /* retried requests (set by the caller) */
};

struct cts_report;
struct cts_rejects;

/*
 * Append one CSV cell, s (borrowed; NULL or "" is an empty cell), to b:
 * RFC 4180 quoting, and the formula neutralising described above.  The
 * one cell writer of every CSV file the program writes.
 */
void cts_report_cell(struct cts_buf *b, const char *s);

/* Give every row's final result, as its line is written (input order),
 * to rj (borrowed; NULL: none) as well: the rejects file's rows. */
void cts_report_set_rejects(struct cts_report *r, struct cts_rejects *rj);

/*
 * Append one CSV cell to b as the report writes it: RFC 4180 quoting (a
 * cell holding a comma, a quote, CR or LF is quoted, quotes doubled), and
 * a cell beginning with '=', '+', '-', '@', TAB or CR prefixed with a
 * single quote so spreadsheets do not run it as a formula.  s borrowed;
 * NULL or "" appends nothing (an empty cell).
 */
void cts_report_cell(struct cts_buf *b, const char *s);

/*
 * Open path (borrowed) for writing the report or the summary (what names
 * it in messages: "report", "summary") WITHOUT emptying it, so that it
 * can be checked before anything is sent and written later: never
 * through a symbolic link (O_NOFOLLOW: refused with a message saying so),
 * created mode 0600 (it holds email addresses) while an existing file
 * keeps its mode, not a directory.  Returns the descriptor (owned,
 * O_CLOEXEC), or a negative code with err filled (exit code 73).
 */
int cts_report_file_open(const char *path, const char *what,
                         struct cts_error *err);

/*
 * Open the report at path (borrowed) as cts_report_file_open does, empty
 * it, and write the BOM and the header line.  Returns an owned sink, or
 * NULL with err filled (exit code 73) when the file cannot be created.
 */
struct cts_report *cts_report_open(const char *path, struct cts_error *err);

/* The same on fd (taken, from cts_report_file_open; closed on failure
 * too); path (borrowed) names it in messages.  A regular file is emptied
 * first. */
struct cts_report *cts_report_open_fd(int fd, const char *path,
                                      struct cts_error *err);

/*
 * Same as cts_report_open() on an already open stream (borrowed; it is
 * flushed but not closed by cts_report_close()).  For tests and stdout.
 */
struct cts_report *cts_report_open_stream(FILE *fp, struct cts_error *err);

/*
 * Give the sink the final result of row number seq (0-based, whole run).
 * res and its strings are borrowed for the call only (the sink copies what
 * it keeps).  Rows are written as soon as every earlier seq has arrived.
 * Returns 0, CTS_EUSAGE if seq was already given (a programmer error the
 * caller should assert against), or a sticky write error.
 */
int cts_report_put(struct cts_report *r, uint64_t seq,
                   const struct cts_result *res);

/*
 * fn(arg) runs before each block of lines is handed to the file (lines
 * are buffered in blocks of 64 KiB, and the rest at close; a sink on the
 * caller's stream hands over each line), so the owner
 * can make durable first what a report line promises (the pipeline pushes
 * its coalesced journal: a row's `done` record precedes its line).
 * A non-zero return becomes the sink's sticky write error.
 */
void cts_report_set_before_write(struct cts_report *r, int (*fn)(void *arg),
                                 void *arg);

/* Hand every row written from now on, its message masked, to h
 * (borrowed; NULL stops it), which gathers the HTML page
 * (cts_htmlreport.h).  h must outlive the sink or be unset first. */
struct cts_html;
void cts_report_set_html(struct cts_report *r, struct cts_html *h);

/* Number of the next row the sink is waiting for (= rows written). */
uint64_t cts_report_written(const struct cts_report *r);
/* Rows received but held back waiting for an earlier one. */
uint64_t cts_report_held(const struct cts_report *r);

/* The counts so far (borrowed pointer into the sink; requests and retries
 * are the caller's to fill before writing the summary). */
struct cts_report_counts *cts_report_counts(struct cts_report *r);

/*
 * Flush and close the report.  Fails (and fills err, exit code 73) if any
 * write, fflush, ferror or fclose failed, or if rows are still held back
 * (a gap in the sequence is a pipeline bug; the held rows are written
 * anyway, in order, so nothing is lost).  Frees the sink in every case.
 */
int cts_report_close(struct cts_report *r, struct cts_error *err);

/*
 * Write the --summary JSON to path (borrowed; opened as by
 * cts_report_file_open, then emptied): exactly these keys in this
 * order: api, account, input_rows, created, updated, imported, unchanged,
 * exists, invalid, duplicate, failed, deferred, opted_out, unsubscribed,
 * removed, requests, retries, elapsed_s, exit_code.  api is "v2" or "v3";
 * account may be NULL (written as null).  Returns 0, or a negative code
 * with err filled (exit code 73).
 */
int cts_report_write_summary(const char *path,
                             const struct cts_report_counts *c, const char *api,
                             const char *account, double elapsed_s,
                             int exit_code, struct cts_error *err);

/* The same on fd (taken, from cts_report_file_open, closed in every case;
 * a regular file is emptied first); path (borrowed) names it in
 * messages. */
int cts_report_write_summary_fd(int fd, const char *path,
                                const struct cts_report_counts *c,
                                const char *api, const char *account,
                                double elapsed_s, int exit_code,
                                struct cts_error *err);

/*
 * Format the one-line summary (without prefix or newline) into out:
 * "N rows: A created, B updated, ... ; R requests, T retries, 1.2 s".
 * Zero counts other than created/updated/failed are left out to keep the
 * line short; opted-out, unsubscribed and removed rows are said in words
 * ("2 opted out (unsubscribed in the account, left alone)").  Returns
 * out.
 */
char *cts_report_summary_line(const struct cts_report_counts *c,
                              double elapsed_s, char *out, size_t outlen);

/*
 * The message of a `duplicate` row: "same email as row 12" when the first
 * row with that email is in the same file, else "same email as FILE row
 * 12".  first is that row's sequence number (0-based over the run),
 * file_seq[k] the sequence number of file k's first row (for files up to
 * file_idx), inputs the file names.  Written to buf (n bytes); returns
 * buf.
 */
char *cts_report_dup_message(char *const *inputs, const uint64_t *file_seq,
                             size_t file_idx, uint64_t first, char *buf,
                             size_t n);

#endif /* CTS_REPORT_H */
