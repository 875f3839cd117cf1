/*
 * cts_pipeline.h — the import pipeline and the `import` command.
 *
 * One libuv loop drives every stage after intake; only pipeline.c knows
 * them all:
 *
 *   cts_intake (its own thread: read(2) → cts_reader → cts_mapper, in
 *   batches) → the row decisions (invalid, duplicate, unchanged, resumed,
 *   dry run: cts_state) → a cts_job per row → cts_protocol (the row's
 *   requests, v3 or v2) or cts_bulk (activities) → cts_send (the one send
 *   engine: gate, limiter, quota, cts_http, retries) → cts_report (ordered
 *   sink), the journal written before each request can leave.
 *
 * Intake runs one batch at a time (up to 4096 rows in a dry run, ~256 when
 * sending), handed to the loop through a semaphore, a mutex and uv_async;
 * everything after it runs on the loop thread (make tsan checks it).  A
 * job's states are cts_job.h's, a request's are the engine's.
 *
 * Backpressure: no new intake batch is started while more than
 * 4 × concurrency + 256 rows are unreported, and intake resumes at half
 * that, so memory does not grow with the input.
 *
 * Stops: the daily quota (server reply or local count) and a 401 that a
 * refresh cannot cure stop sending; SIGINT/SIGTERM too, after in-flight
 * requests finish (grace period).  The reader still reads to the end so that
 * every row is reported once; rows not sent become `deferred`.  A second
 * signal stops reading at once.
 */
#ifndef CTS_PIPELINE_H
#define CTS_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "cts_config.h"
#include "cts_util.h"

struct cts_report;
struct cts_state;
struct cts_cf_ids;

/* Why sending stopped before the input was exhausted. */
enum cts_stop {
    CTS_STOP_NONE = 0,
    CTS_STOP_QUOTA,  /* daily quota spent: rest deferred, exit 75 */
    CTS_STOP_AUTH,   /* 401 without a (working) refresh: rest deferred, 77 */
    CTS_STOP_SIGNAL, /* SIGINT/SIGTERM: rest deferred, exit 75 */
    CTS_STOP_FATAL,  /* run error (report write, CSV header, input): err */
    CTS_STOP_UNREACHABLE, /* a row used up its retries without a single
                             reply from the API (connection refused, name
                             unknown): rest deferred, exit 69 */
    CTS_STOP_LATER        /* the API answered but would not serve us for
                             now (throttled without progress, or the
                             listing of unsubscribed contacts used up its
                             retries): rest deferred, exit 75 */
};

struct cts_rejects;

struct cts_pipeline_params {
    /* Borrowed.  cfg->token may be replaced when a 401 triggers the one
     * refresh the run allows (cts_oauth_refresh). */
    struct cts_config *cfg;
    struct cts_report *report;   /* borrowed: the sink */
    struct cts_rejects *rejects; /* borrowed, may be NULL: copies the
                                    inputs that cannot be read twice */
    struct cts_state *state;     /* borrowed, required (email index) */
    const struct cts_cf_ids *cf; /* borrowed; v3 custom field ids; NULL
                                    when no cf: mapping */
    long expected_rows;          /* estimate for the progress line;
                                    0 = unknown */
    int preflight;               /* requests just made for this key
                                    (account check, lists): the server
                                    counts them in the same 1-second
                                    window as the first rows */
    uint64_t preflight_done_ms;  /* when they ended, uv_hrtime()/1e6
                                    (the loop's clock); 0 = now */
};

struct cts_pipeline_outcome {
    enum cts_stop stop;
    long requests;        /* HTTP requests made for rows */
    long retries;         /* of which repeats after a failure */
    long throttled;       /* throttling replies */
    int csv_error;        /* the input ended inside a quoted field (the
                             broken tail is reported `invalid`): exit 65 */
    char message[800];    /* why sending stopped, or the CSV error; "" */
    const char *encoding; /* static text: "utf-8", "cp1252 (converted)"...
                             of the last file, or NULL */
};

/*
 * Run the pipeline over cfg->inputs on a private loop until every row is
 * reported (or a fatal error), then close every handle (uv_loop_close()
 * returns 0).  Fills *out in every case.
 *
 * Returns 0 when the input was read to the end — rows may still be
 * `failed` or `deferred` (see out->stop) — or a negative code with err
 * filled and err->exit_code set when the run could not go on: 65 (no
 * header, no email column, bad --map), 66 (input unreadable), 73 (report
 * write failed), 70 (internal error).
 */
int cts_pipeline_run(const struct cts_pipeline_params *pp,
                     struct cts_pipeline_outcome *out, struct cts_error *err);

/*
 * `ctct-sync import`: check the inputs, the credentials and the account
 * (also in --dry-run), the lists and v3 custom fields, lock the state, run
 * the pipeline, write the report, the --summary JSON and the summary line.
 * Returns the exit code (enum cts_exit).  cfg borrowed (see above for the
 * token).
 *
 * Under --quiet the closing summary line is printed only when the exit
 * code is not 0, so a cron job that succeeded stays silent.
 */
int cts_cmd_import(struct cts_config *cfg);

/* Default report path for an input name (borrowed): the basename without
 * its ".csv" plus ".report.csv" in the current directory (contacts.csv
 * gives contacts.report.csv); "-" gives "stdin.report.csv".  Returns an
 * owned string. */
char *cts_import_default_report(const char *input);

/* An import that failed before cts_cmd_import ran (a configuration error
 * once the command line was read, exit_code 78): write the header-only
 * report and the summary saying exit_code, unless a report or summary
 * path names an input.  Returns exit_code. */
int cts_import_failed(const struct cts_config *cfg, int exit_code);

#endif /* CTS_PIPELINE_H */
