/*
 * cts_mirror.h — `import --mirror`: once every row of the input has
 * settled, the members of each --list whose email is not in the input are
 * taken off that list, so that the list ends equal to the input.  Contacts
 * are never deleted or unsubscribed, and stay on their other lists.
 *
 *   1. list each list's members, page after page through the run's send
 *      engine (cts_pager.h):
 *        v3  GET {base}/contacts?lists=ID&status=all&limit=500
 *        v2  GET {base}/lists/ID/contacts?limit=500
 *   2. the plan: members whose email (normalised, keyed as the pipeline
 *      keys rows: cts_state_email_key) no input row has — valid rows,
 *      duplicates, opted-out rows and invalid rows with a valid email all
 *      count as "in the input";
 *   3. the guard: when any list would lose more than --max-removals (N
 *      members or P% of the list, default 10%), or all of its members, no
 *      list is changed: exit 65 with the counts and the flag to raise;
 *   4. --dry-run: the plan on stderr and in the report (status dry-run,
 *      "would remove from list ID"); nothing is sent;
 *   5. the removals, one request at a time, 500 members each:
 *        v3  POST /activities/remove_list_memberships
 *            {"source":{"contact_ids":[..]},"list_ids":["ID"]}
 *        v2  POST /activities/removefromlists
 *            {"import_data":[{"email_addresses":[..]}],"lists":["ID"],
 *             "column_names":["EMAIL"]}
 *      each activity polled (GET /activities/{id}, --poll-interval) until
 *      it completes; then one report line per member after the input rows
 *      (file and row empty, status `removed`, "removed from list ID").
 *
 * Nothing is removed after a run in which a row is `failed` or `deferred`,
 * or that stopped early (signal, quota, 401, CSV error): the exit code is
 * then the run's own.
 *
 * Journal (cts_state.h): a removal's members are journalled before its
 * POST leaves, its activity id when the server accepts it, and its end.  A
 * run killed during the removals is resumed by running the same command:
 * the lists are read again, a removal whose activity had started is
 * polled instead of posted again, members it already took off are
 * reported `removed` ("by an interrupted run"), and the plan is made
 * afresh from the current input, so nobody in the input is removed.
 *
 * Loop thread only.
 */
#ifndef CTS_MIRROR_H
#define CTS_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cts_config.h"
#include "cts_send.h"

struct cts_report;
struct cts_state;
struct cts_mirror;

/* The mirror phase is over.  rc 0: the removals (or none) are reported,
 * and the run's exit code follows from its report; otherwise the run
 * ends with exit_code and msg (borrowed for the call): 65 (the guard),
 * 69 (a list could not be read), 73 (the report), 75 (quota), 77 (401). */
typedef void (*cts_mirror_done_cb)(void *arg, int rc, int exit_code,
                                   const char *msg);

/*
 * A mirror for the run, or NULL when cfg->mirror is off (every function
 * below accepts NULL).  Everything is borrowed for the mirror's life;
 * report lines are given sequence numbers from cts_mirror_start's first.
 */
struct cts_mirror *cts_mirror_new(uv_loop_t *loop, struct cts_config *cfg,
                                  struct cts_send *send, struct cts_state *st,
                                  struct cts_report *report,
                                  cts_mirror_done_cb done, void *arg);

/* An input row the pipeline reports `invalid`: its email still counts as
 * in the input when it is a valid address. */
void cts_mirror_note(struct cts_mirror *m, const char *email);

/*
 * Every row has settled (first = the next report sequence number).
 * rows_ok: the run did not stop early.  Returns 0 when the mirror phase
 * is running (done runs later, from the loop), 1 when the run may end
 * now: no mirror, nothing to do (a row failed or was deferred: logged),
 * or the phase is over.
 */
int cts_mirror_start(struct cts_mirror *m, uint64_t first, int rows_ok);

/* The run is stopping (signal, fatal error): no new removal starts; the
 * ones not done are reported `deferred`.  Idempotent. */
void cts_mirror_stop(struct cts_mirror *m);

/* Close the mirror's timer and free it from the loop.  Not while its
 * request is in flight (close the send engine first). */
void cts_mirror_close(struct cts_mirror *m);

/* ---- pure parts (unit tests) ---- */

/*
 * The guard: 1 when taking `removals` of a list's `members` off it is
 * refused by --max-removals (cfg's kind and value; default 10%), or
 * because it would remove every member; 0 otherwise.  *limit (may be
 * NULL) = the most the cap allows for this list.
 */
int cts_mirror_refused(const struct cts_config *cfg, size_t members,
                       size_t removals, double *limit);

/*
 * One member of a listing page: v3 {contact_id, email_address:{address}},
 * v2 {id, email_addresses:[{email_address}]}.  0 with *email the
 * normalised address and *id the contact id (both owned; *id NULL when
 * absent), or CTS_EDATA when the member has no usable email address
 * (left alone).
 */
int cts_mirror_member(enum cts_api api, const json_t *item, char **email,
                      char **id);

/* The body of a removal of n members (v3 contact ids, v2 emails) from
 * list_id.  Owned. */
char *cts_mirror_removal_body(enum cts_api api, const char *list_id,
                              char *const *members, size_t n);

#endif /* CTS_MIRROR_H */
