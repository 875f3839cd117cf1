/*
 * cts_email.h — email normalisation and lenient validation (email.c).
 *
 * Lenient on purpose: we accept what real mail systems deliver to and
 * reject only what cannot be an address.  Per-API length limits are the
 * mapper's job.  Pure functions.
 */
#ifndef CTS_EMAIL_H
#define CTS_EMAIL_H

#include <stddef.h>

/*
 * Normalise and validate an email address: trim ASCII and
 * Unicode spaces (NBSP, tabs, zero-width), lower-case ASCII letters, then
 * check it.  Accepts + tags, apostrophes, subdomains, UTF-8 (IDN) domain
 * labels and quoted local parts; rejects no '@', a second unquoted '@',
 * spaces or control characters inside, empty local part or domain, a
 * domain without a dot, leading/trailing/double dots, labels starting or
 * ending with '-', local part over 64 or whole address over 254 bytes.
 * Per-API length limits are the mapper's job.
 * On success returns 0 and *out (owned, free with free()).  On failure
 * returns CTS_EDATA, *out = NULL and *why = static text ("no '@'").
 */
int cts_email_normalize(const char *in, char **out, const char **why);

/* Trim ASCII whitespace and Unicode spaces (NBSP, U+2000–U+200D, U+202F,
 * U+205F, U+2060, U+3000, BOM) at both ends of in[0..*len): returns the
 * start of the trimmed span inside in (borrowed) and updates *len. */
const char *cts_trim_span(const char *in, size_t *len);

#endif /* CTS_EMAIL_H */
