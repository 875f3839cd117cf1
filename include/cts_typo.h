/*
 * cts_typo.h — catching slips in an address's domain before it bounces
 * (typo.c).  Pure functions, no allocation but the returned suggestion.
 *
 * Two kinds of slip are caught, both on ASCII domains only:
 *   - one edit (a letter inserted, dropped or changed, or two neighbours
 *     swapped) away from one of a few very common mailbox domains:
 *     gmail.com, googlemail.com, yahoo.com, yahoo.co.uk, hotmail.com,
 *     hotmail.co.uk, outlook.com, icloud.com, comcast.net, verizon.net,
 *     sbcglobal.net, bellsouth.net ("gmial.com", "hotmail.co",
 *     "yahoo.cm" → the common one);
 *   - a last label that is a known slip of .com, .net, .org or .edu and is
 *     itself no top-level domain (".con", ".cmo", ".comm", ".c0m", ".nte",
 *     ".ogr", ...; the table is in typo.c and the README).
 * A domain in the list of known real ones (the common domains, their real
 * neighbours such as mail.com, email.com, ymail.com and cloud.com, and the
 * short ones such as aol.com, msn.com, me.com and live.com, whose
 * one-letter neighbours are real companies) is never a slip.  Short
 * domains are never targets for the same reason: aon.com, ge.com and
 * ms.com are one letter from aol.com, me.com and msn.com.
 */
#ifndef CTS_TYPO_H
#define CTS_TYPO_H

#include <stddef.h>

/*
 * The domain a slip of domain[0..n) most likely meant, written into
 * buf[0..size) NUL-terminated, or NULL when domain is not a slip (or the
 * suggestion does not fit).  domain must be lower case (as
 * cts_email_normalize leaves it); borrowed.  Returns buf or NULL.
 */
const char *cts_typo_domain(const char *domain, size_t n, char *buf,
                            size_t size);

/*
 * The whole address a slip in addr's domain most likely meant ("ann@gmial.com"
 * → "ann@gmail.com"), or NULL when the domain is not a slip.  addr is a
 * normalised address (cts_email_normalize), borrowed.  Returns an owned
 * string (free with free()).
 */
char *cts_typo_suggest(const char *addr);

#endif /* CTS_TYPO_H */
