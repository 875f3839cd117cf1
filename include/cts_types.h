/*
 * cts_types.h — the small enums every layer shares: which API generation,
 * how rows are sent (upsert or create, bulk or not), the input encoding and
 * a column mapping.
 *
 * They live apart from cts_config.h so that a module that only needs to
 * say "v2 or v3" does not depend on the whole run configuration.  No
 * functions, no includes: any header can include this one.
 */
#ifndef CTS_TYPES_H
#define CTS_TYPES_H

/* API generation (--api). */
enum cts_api { CTS_API_V3 = 0, CTS_API_V2 = 2 };

/* --mode: create-or-update, or create only. */
enum cts_mode { CTS_MODE_UPSERT = 0, CTS_MODE_CREATE };
/* What the people in the rows gave: implicit (an import by the account;
 * new contacts implicit, nobody's permission changed) or explicit (each
 * row is the contact's own sign-up). */
enum cts_permission { CTS_PERM_IMPLICIT = 0, CTS_PERM_EXPLICIT };

/* --bulk: when to use the bulk import activities. */
enum cts_bulk { CTS_BULK_AUTO = 0, CTS_BULK_NEVER, CTS_BULK_ALWAYS };

/* --encoding of the input files. */
enum cts_encoding {
    CTS_ENC_AUTO = 0,
    CTS_ENC_UTF8,
    CTS_ENC_CP1252,
    CTS_ENC_LATIN1
};

/* One --map FIELD=HEADER or --map cf:NAME=HEADER (strings owned by the
 * struct cts_config that holds it). */
struct cts_map {
    char *field;  /* "email", "first_name", ... or "cf:NAME" */
    char *header; /* the CSV header as written by the user */
};

#endif /* CTS_TYPES_H */
