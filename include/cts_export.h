/*
 * cts_export.h — `ctct-sync export`: the account's contacts (the members
 * of --list lists, the unsubscribed, or all) as a CSV that `import` maps
 * back column for column:
 *
 *   email,first_name,last_name,job_title,company_name,phone,street,city,
 *   state,zip,country,birthday_month,birthday_day,anniversary,cf:NAME...,
 *   permission,opt_out_date,opt_out_reason,lists
 *
 * UTF-8 with a BOM, CRLF, RFC 4180 quoting, formula cells neutralised as
 * in the report (cts_report_cell).  permission is the v3 word (implicit,
 * explicit, pending_confirmation, unsubscribed, ...; v2 statuses are
 * written with the same words); lists is the contact's list ids joined
 * with ';'.  The custom field columns are the account's (v3
 * GET /contact_custom_fields) or v2's CustomField1..CustomField15.
 *
 * After the account check (as import and check do), the listing is read
 * page after page through a send engine of its own (cts_pager), so every
 * page counts against --rate, the arrival gate and the daily quota:
 *   v3  GET /contacts?include=...&limit=500[&lists=IDS][&status=...]
 *       [&updated_after=SINCE]  then each _links.next.href
 *   v2  GET /contacts?limit=500[&status=...][&modified_since=SINCE], or
 *       GET /lists/{id}/contacts?limit=500[&modified_since=SINCE] per
 *       list  then each meta.pagination.next_link
 * Every contact is checked against --status again on our side (a server
 * that ignores a filter never puts an active contact among the
 * unsubscribed), appears once however many of the lists it is on, and
 * with --status unsubscribed --since only when it unsubscribed since then.
 *
 * Nothing is journalled: a run that stops starts over next time.  With
 * --output FILE the CSV goes to a temporary file beside FILE, renamed
 * over it only when every page arrived (never half a file).
 */
#ifndef CTS_EXPORT_H
#define CTS_EXPORT_H

#include <jansson.h>

#include "cts_config.h"
#include "cts_util.h"

/* The columns before the custom fields, and after them. */
#define CTS_EXPORT_NFIXED 14
#define CTS_EXPORT_NTAIL  4
extern const char *const cts_export_fixed[CTS_EXPORT_NFIXED];
extern const char *const cts_export_tail[CTS_EXPORT_NTAIL];

/*
 * One contact of a listing page (borrowed) as the cells of one CSV line:
 * cells[0..CTS_EXPORT_NFIXED) the fixed columns, then one per name of
 * cf_names (borrowed, the header's cf:NAME columns without "cf:"), then
 * the CTS_EXPORT_NTAIL tail columns.  cf_ids (borrowed, may be NULL) maps
 * v3 custom_field_id → name (cf_ids[i] is the id of cf_names[i]); v2
 * custom fields carry their names.  Each cell is owned (NULL = empty);
 * free them with cts_export_cells_free.  Returns 1 when the contact
 * belongs in the export (its status is the one asked for and, for
 * unsubscribed with since > 0, it unsubscribed at or after since), else 0
 * with nothing allocated.
 */
int cts_export_cells(enum cts_api api, const json_t *contact,
                     enum cts_export_status status, long since,
                     const char *const *cf_names, const char *const *cf_ids,
                     size_t ncf, char **cells);
void cts_export_cells_free(char **cells, size_t n);

/*
 * `ctct-sync export`.  Returns the exit code: 0 every page written, 64
 * usage (more than 25 --list with v3), 65 unknown --list id, 69 the API
 * unreachable or not answering the listing, 73 the output cannot be
 * written, 75 the daily quota or a signal stopped it (or another run
 * holds the state lock), 77 credentials, 78 configuration.  cfg borrowed
 * (its token may be replaced by the run's one refresh).
 */
int cts_cmd_export(struct cts_config *cfg);

#endif /* CTS_EXPORT_H */
