/*
 * cts_optouts.h — the account's unsubscribed email addresses, known before
 * a run sends anything, so that their rows cost no write (status
 * `opted-out`) and bulk chunks leave them out.
 *
 * In memory: the 56-bit email keys of cts_state_email_key (the hash the
 * state's fingerprints use, so a row's key serves both) with each one's
 * opt-out date, in the compact open-addressing table of emailidx.h: 16
 * bytes an address.  On disk: DIR/optouts in the per key+account state
 * directory (cts_state_path), replaced atomically (temporary file, fsync,
 * rename, fsync of the directory), holding no address in clear:
 *   48-byte header: "CTSOPT01", count, last fetch, last full fetch, newest
 *   opt-out date (Unix seconds, 0 = never/unknown), checksum;
 *   then count records of 12 bytes: key << 8 (u64), opt-out date (u32).
 *
 * How a run keeps it fresh (a refresh costs one request when nobody new
 * unsubscribed):
 *
 *   s = cts_optouts_new();
 *   cts_optouts_load(s, dir, &err);            (missing file: empty)
 *   since = cts_optouts_since(s, now, buf, sizeof(buf));
 *   if since is NULL (never fetched, or the last full fetch is older than
 *   CTS_OPTOUTS_FULL_EVERY): fetch everything into a NEW set and keep the
 *   old one until the last page arrived; else add the changes to s:
 *     GET /contacts?cts_consent_optouts_query(api, since), then each page
 *     cts_consent_parse_optouts(api, body, len, cts_optouts_add_cb, set,
 *                               &next, NULL) and cts_consent_next_url()
 *   after the last page: cts_optouts_fetched(set, started, full);
 *                        cts_optouts_save(set, dir, &err);
 *   per row: cts_optouts_find_key(set, key, &since) (or _lookup by email)
 *
 * A refresh (updated_after / modified_since) only adds: a contact who
 * re-subscribed themself leaves the set at the next full fetch (weekly).
 * The set errs toward leaving people alone, never toward writing to them.
 *
 * Not thread-safe; no I/O except load and save.
 */
#ifndef CTS_OPTOUTS_H
#define CTS_OPTOUTS_H

#include <stddef.h>
#include <stdint.h>

#include "cts_util.h"

/* A full fetch at least this often (seconds): drops re-subscribed people. */
#define CTS_OPTOUTS_FULL_EVERY (7L * 86400)
/* A refresh asks from this long before the last fetch started (seconds):
 * covers a clock that differs from the server's and changes the API
 * indexes late. */
#define CTS_OPTOUTS_MARGIN 3600L
/* Bytes for a date written by cts_optouts_lookup ("YYYY-MM-DD"). */
#define CTS_OPTOUTS_DATE_LEN 11

struct cts_optouts;

/* An empty set (never fetched).  Owned; free with cts_optouts_free. */
struct cts_optouts *cts_optouts_new(void);
/* NULL-safe. */
void cts_optouts_free(struct cts_optouts *s);

/*
 * Replace s's content with DIR/optouts (dir borrowed).  A missing file
 * leaves s empty and returns 0.  A file that is not ours or is damaged
 * leaves s empty and never fetched (the next fetch is a full one) and
 * returns CTS_EDATA with err saying so, to warn about; an unreadable one
 * returns -errno.  err->exit_code is 73 in both cases.
 */
int cts_optouts_load(struct cts_optouts *s, const char *dir,
                     struct cts_error *err);

/* Write s to DIR/optouts atomically and durably (mode 0600).  Returns 0 or
 * a negative code with err filled (exit code 73). */
int cts_optouts_save(const struct cts_optouts *s, const char *dir,
                     struct cts_error *err);

/*
 * Add an unsubscribed address (borrowed; normalised here like a row's:
 * trimmed, lower-cased; an address the mapper would refuse is ignored)
 * with its opt-out date in Unix seconds (0 = unknown).  Adding it again
 * keeps the later date.  Returns 1 when added or updated, 0 when ignored.
 */
int cts_optouts_add(struct cts_optouts *s, const char *email, long since);

/* cts_consent_optout_fn for cts_consent_parse_optouts: arg is the set,
 * opt_out_date an ISO-8601 date-time or NULL. */
void cts_optouts_add_cb(void *arg, const char *email, const char *opt_out_date);

/* Is the address with this key (cts_state_email_key) unsubscribed?  1 with
 * *since (may be NULL) = its opt-out date (0 = unknown), or 0. */
int cts_optouts_find_key(const struct cts_optouts *s, uint64_t key,
                         long *since);

/*
 * Is email (already normalised, as the mapper gives it) unsubscribed?
 * NULL when not; else buf (≥ CTS_OPTOUTS_DATE_LEN bytes) holding the
 * opt-out day "YYYY-MM-DD", or "" when the date is unknown.
 */
const char *cts_optouts_lookup(const struct cts_optouts *s, const char *email,
                               char *buf, size_t n);

/* Exchange the contents of a and b (a full fetch fills a new set and
 * takes the old one's place only once it is complete). */
void cts_optouts_swap(struct cts_optouts *a, struct cts_optouts *b);

/* Number of addresses in the set. */
size_t cts_optouts_count(const struct cts_optouts *s);

/*
 * What the next fetch asks for: NULL when it must be a full one (never
 * fetched, or the last full fetch is older than CTS_OPTOUTS_FULL_EVERY at
 * now), else the ISO-8601 time (in buf, ≥ 21 bytes) CTS_OPTOUTS_MARGIN
 * before the last fetch started, for updated_after / modified_since.
 */
const char *cts_optouts_since(const struct cts_optouts *s, long now, char *buf,
                              size_t n);

/* Record a fetch that got every page: started = when it began (Unix
 * seconds), full = 1 for a fetch without `since`. */
void cts_optouts_fetched(struct cts_optouts *s, long started, int full);

/* When the last fetch / last full fetch began, and the newest opt-out date
 * seen (Unix seconds; 0 = never / none). */
long cts_optouts_last_fetch(const struct cts_optouts *s);
long cts_optouts_last_full(const struct cts_optouts *s);
long cts_optouts_newest(const struct cts_optouts *s);

#endif /* CTS_OPTOUTS_H */
