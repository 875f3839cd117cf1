/*
 * mapper.c — header mapping and row validation (see cts_mapper.h).
 *
 * Pure and allocation-light: one mapper per file, built from the header;
 * cts_mapper_map() copies only the cells it keeps into the contact.
 */
#include "cts_mapper.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cts_email.h"
#include "cts_encoding.h"
#include "cts_rejects.h"
#include "cts_typo.h"

#define MAX_CUSTOM  25
#define CF_FIELD(k) (CTS_F__MAPPABLE + (int)(k))

struct col {
    char *name;        /* as written, trimmed */
    char *norm;        /* normalised */
    int field;         /* -1 unmapped, enum cts_field, or CF_FIELD(k) */
    int by_map;        /* claimed by --map (for messages) */
    int perm;          /* an opt_out column holding permission words */
    const char *known; /* an export column import does not send: why */
};

struct cts_mapper {
    enum cts_api api;
    int accept_typos;
    char *file;
    size_t ncols;
    struct col *cols;
    int fcol[CTS_F__MAPPABLE]; /* column of each field, -1 if none */
    size_t ncf;
    char **cf_name; /* custom field names (after "cf:") */
    int *cf_col;
    const char **unmapped; /* borrowed from cols[].name */
    size_t nunmapped;
};

/* Aliases, already normalised (the common names — e-mail, email address,
 * given name, surname, company, zip, ... — plus a few obvious spellings, and
 * the headers of common exports: Outlook "E-mail Address", Google Contacts
 * "E-mail 1 - Value" / "Address 1 - Street", HubSpot "State/Region",
 * Salesforce "Mailing City").  Only names that cannot mean another field:
 * "Business Phone" and "Mobile Phone" stay unmapped (--map picks one), as
 * two columns claiming one field is an error, never a guess. */
static const struct {
    enum cts_field f;
    const char *norm;
} aliases[] = {
    {CTS_F_EMAIL, "email"},
    {CTS_F_EMAIL, "emailaddress"},
    {CTS_F_FIRST_NAME, "firstname"},
    {CTS_F_FIRST_NAME, "givenname"},
    {CTS_F_LAST_NAME, "lastname"},
    {CTS_F_LAST_NAME, "surname"},
    {CTS_F_LAST_NAME, "familyname"},
    {CTS_F_COMPANY_NAME, "companyname"},
    {CTS_F_COMPANY_NAME, "company"},
    {CTS_F_COMPANY_NAME, "organization"},
    {CTS_F_COMPANY_NAME, "organisation"},
    {CTS_F_JOB_TITLE, "jobtitle"},
    {CTS_F_JOB_TITLE, "title"},
    {CTS_F_PHONE, "phone"},
    {CTS_F_PHONE, "phonenumber"},
    {CTS_F_STREET, "street"},
    {CTS_F_STREET, "streetaddress"},
    {CTS_F_CITY, "city"},
    {CTS_F_STATE, "state"},
    {CTS_F_STATE, "province"},
    {CTS_F_POSTAL_CODE, "postalcode"},
    {CTS_F_POSTAL_CODE, "zip"},
    {CTS_F_POSTAL_CODE, "zipcode"},
    {CTS_F_POSTAL_CODE, "postcode"},
    {CTS_F_COUNTRY, "country"},
    {CTS_F_BIRTHDAY_MONTH, "birthdaymonth"},
    {CTS_F_BIRTHDAY_DAY, "birthdayday"},
    {CTS_F_ANNIVERSARY, "anniversary"},
    /* exports */
    {CTS_F_EMAIL, "email1value"},
    {CTS_F_EMAIL, "primaryemail"},
    {CTS_F_FIRST_NAME, "first"},
    {CTS_F_FIRST_NAME, "fname"},
    {CTS_F_FIRST_NAME, "forename"},
    {CTS_F_LAST_NAME, "last"},
    {CTS_F_LAST_NAME, "lname"},
    {CTS_F_COMPANY_NAME, "organizationname"},
    {CTS_F_COMPANY_NAME, "organization1name"},
    {CTS_F_COMPANY_NAME, "employer"},
    {CTS_F_JOB_TITLE, "position"},
    {CTS_F_JOB_TITLE, "organization1title"},
    {CTS_F_PHONE, "telephone"},
    {CTS_F_PHONE, "phone1value"},
    {CTS_F_PHONE, "primaryphone"},
    {CTS_F_STREET, "address"},
    {CTS_F_STREET, "address1"},
    {CTS_F_STREET, "addressline1"},
    {CTS_F_STREET, "address1street"},
    {CTS_F_STREET, "mailingstreet"},
    {CTS_F_CITY, "town"},
    {CTS_F_CITY, "address1city"},
    {CTS_F_CITY, "mailingcity"},
    {CTS_F_STATE, "state/region"},
    {CTS_F_STATE, "state/province"},
    {CTS_F_STATE, "region"},
    {CTS_F_STATE, "address1region"},
    {CTS_F_STATE, "mailingstate/province"},
    {CTS_F_POSTAL_CODE, "zip/postalcode"},
    {CTS_F_POSTAL_CODE, "address1postalcode"},
    {CTS_F_POSTAL_CODE, "mailingzip/postalcode"},
    {CTS_F_COUNTRY, "country/region"},
    {CTS_F_COUNTRY, "address1country"},
    {CTS_F_COUNTRY, "mailingcountry"},
    /* French, German and Spanish spreadsheets (Excel writes the headers
     * in the user's language): folded as above, accents kept. */
    {CTS_F_EMAIL, "courriel"},
    {CTS_F_EMAIL, "adresseemail"},
    {CTS_F_EMAIL, "emailadresse"},
    {CTS_F_EMAIL, "correo"},
    {CTS_F_EMAIL, "correoelectrónico"},
    {CTS_F_FIRST_NAME, "prénom"},
    {CTS_F_FIRST_NAME, "vorname"},
    {CTS_F_FIRST_NAME, "nombre"},
    {CTS_F_LAST_NAME, "nom"},
    {CTS_F_LAST_NAME, "nomdefamille"},
    {CTS_F_LAST_NAME, "nachname"},
    {CTS_F_LAST_NAME, "apellido"},
    {CTS_F_LAST_NAME, "apellidos"},
    {CTS_F_COMPANY_NAME, "société"},
    {CTS_F_COMPANY_NAME, "entreprise"},
    {CTS_F_COMPANY_NAME, "firma"},
    {CTS_F_COMPANY_NAME, "unternehmen"},
    {CTS_F_COMPANY_NAME, "empresa"},
    {CTS_F_JOB_TITLE, "fonction"},
    {CTS_F_JOB_TITLE, "poste"},
    {CTS_F_JOB_TITLE, "cargo"},
    {CTS_F_PHONE, "téléphone"},
    {CTS_F_PHONE, "telefon"},
    {CTS_F_PHONE, "teléfono"},
    {CTS_F_STREET, "adresse"},
    {CTS_F_STREET, "rue"},
    {CTS_F_STREET, "straße"},
    {CTS_F_STREET, "strasse"},
    {CTS_F_STREET, "dirección"},
    {CTS_F_STREET, "calle"},
    {CTS_F_CITY, "ville"},
    {CTS_F_CITY, "ort"},
    {CTS_F_CITY, "stadt"},
    {CTS_F_CITY, "ciudad"},
    {CTS_F_STATE, "bundesland"},
    {CTS_F_STATE, "provincia"},
    {CTS_F_POSTAL_CODE, "codepostal"},
    {CTS_F_POSTAL_CODE, "plz"},
    {CTS_F_POSTAL_CODE, "postleitzahl"},
    {CTS_F_POSTAL_CODE, "códigopostal"},
    {CTS_F_COUNTRY, "pays"},
    {CTS_F_COUNTRY, "land"},
    {CTS_F_COUNTRY, "país"},
    /* Opt-outs: CRM exports (Salesforce "Email Opt Out" and its API name
     * HasOptedOutOfEmail, HubSpot "Unsubscribed from all email", Dynamics
     * "Do not allow Emails", Zoho "Email Opt Out").  Never "subscribed"
     * or "status": those say the opposite or something else. */
    {CTS_F_OPT_OUT, "optout"},
    {CTS_F_OPT_OUT, "optedout"},
    {CTS_F_OPT_OUT, "emailoptout"},
    {CTS_F_OPT_OUT, "emailoptedout"},
    {CTS_F_OPT_OUT, "hasoptedoutofemail"},
    {CTS_F_OPT_OUT, "unsubscribed"},
    {CTS_F_OPT_OUT, "unsubscribe"},
    {CTS_F_OPT_OUT, "emailunsubscribed"},
    {CTS_F_OPT_OUT, "unsubscribedfromallemail"},
    {CTS_F_OPT_OUT, "donotemail"},
    {CTS_F_OPT_OUT, "donotallowemails"},
    {CTS_F_OPT_OUT, "donotallowemail"},
    /* ctct-sync export writes the consent as the v3 permission word
     * (read with its own vocabulary, see permission_value). */
    {CTS_F_OPT_OUT, "permission"},
    {CTS_F_OPT_OUT, "permissiontosend"},
    {CTS_F_OPT_OUT_REASON, "optoutreason"},
    {CTS_F_OPT_OUT_REASON, "optedoutreason"},
    {CTS_F_OPT_OUT_REASON, "emailoptoutreason"},
    {CTS_F_OPT_OUT_REASON, "unsubscribereason"},
    {CTS_F_OPT_OUT_REASON, "unsubscribedreason"},
};

size_t cts_field_max(enum cts_api api, enum cts_field f)
{
    switch (f) {
    case CTS_F_EMAIL:
        /* v3 bulk import and sign_up_form take ≤ 50 (POST /contacts 80,
         * but a run may choose bulk); v2 email_address ≤ 80. */
        return api == CTS_API_V2 ? 80 : 50;
    case CTS_F_PHONE: return 25;
    case CTS_F_STREET: return 255;
    case CTS_F_ANNIVERSARY: return 10;
    case CTS_F_OPT_OUT_REASON: return 255;
    case CTS_F_BIRTHDAY_MONTH:
    case CTS_F_BIRTHDAY_DAY: return 2;
    default: return 50;
    }
}

/* Simple lower-casing for header names beyond ASCII: Latin-1, Latin
 * Extended-A, Greek and Cyrillic capitals, so that "SOCIÉTÉ" matches
 * "Société" (full Unicode case folding is not needed for headers). */
static uint32_t fold(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c < 0xC0)
        return c;
    if (c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c >= 0x100 && c <= 0x137 && (c & 1) == 0)
        return c + 1;
    if (c >= 0x139 && c <= 0x148 && (c & 1) == 1)
        return c + 1;
    if (c >= 0x14A && c <= 0x177 && (c & 1) == 0)
        return c + 1;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x179 && c <= 0x17E && (c & 1) == 1)
        return c + 1;
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
        return c + 32;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    return c;
}

char *cts_header_normalize(const char *name)
{
    size_t n = strlen(name), i = 0, k = 0;
    const char *s = cts_trim_span(name, &n);
    /* Folding never makes a character longer in these ranges except
     * U+0178 (2 bytes) -> U+00FF (2 bytes): n + 1 bytes suffice. */
    char *out = cts_xmalloc(n + 1);

    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t sp = n - i, len;
        const char *t;
        uint32_t cp;

        /* A space/BOM inside the name (pasted) is dropped like ' '. */
        t = cts_trim_span(s + i, &sp);
        if (t != s + i) {
            i = (size_t)(t - s);
            continue;
        }
        /* '*' is how import templates and form exports mark a required
         * column ("Email Address *"); it never tells columns apart. */
        if (c == ' ' || c == '_' || c == '-' || c == '.' || c == '\t' ||
            c == '*') {
            i++;
            continue;
        }
        len = cts_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (len == 0) {
            out[k++] = (char)c; /* not UTF-8: keep the byte as it is */
            i++;
            continue;
        }
        cp = fold(cp);
        /* Same length before and after in every folded range above. */
        k += cts_utf8_encode(cp, out + k);
        i += len;
    }
    out[k] = '\0';
    return out;
}

/* Columns of `ctct-sync export` that an import reads past on purpose:
 * the API keeps them itself, and saying so is not "ignoring" them. */
static const struct {
    const char *norm;
    const char *why;
} export_only[] = {
    {"optoutdate", "not imported: Constant Contact dates an unsubscribe"},
    {"lists", "not imported: --list decides the lists"},
};

static const char *export_only_why(const char *norm)
{
    size_t i;

    for (i = 0; i < sizeof(export_only) / sizeof(export_only[0]); i++)
        if (strcmp(export_only[i].norm, norm) == 0)
            return export_only[i].why;
    return NULL;
}

static int is_permission(const char *norm)
{
    return strcmp(norm, "permission") == 0 ||
           strcmp(norm, "permissiontosend") == 0;
}

static int field_by_norm(const char *norm)
{
    size_t i;

    for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(aliases[i].norm, norm) == 0)
            return (int)aliases[i].f;
    return -1;
}

/* The canonical field a --map FIELD names: "first_name", "First Name",
 * "firstname" all work; aliases do not (a field, not a header). */
static int field_by_name(const char *name)
{
    char *norm = cts_header_normalize(name);
    int f, found = -1;

    for (f = 0; f < CTS_F__MAPPABLE; f++) {
        char *cn = cts_header_normalize(cts_field_name((enum cts_field)f));
        if (strcmp(cn, norm) == 0)
            found = f;
        free(cn);
    }
    free(norm);
    return found;
}

static const char *field_label(const struct cts_mapper *m, int field, char *buf,
                               size_t len)
{
    if (field < CTS_F__MAPPABLE)
        return cts_field_name((enum cts_field)field);
    snprintf(buf, len, "cf:%s", m->cf_name[field - CTS_F__MAPPABLE]);
    return buf;
}

static void headers_seen(const struct cts_mapper *m, struct cts_buf *b)
{
    size_t i, shown = 0;

    for (i = 0; i < m->ncols; i++) {
        if (m->cols[i].name[0] == '\0')
            continue;
        if (shown == 20) {
            cts_buf_appendf(b, ", ... (%zu columns)", m->ncols);
            break;
        }
        cts_buf_appendf(b, "%s\"%s\"", shown > 0 ? ", " : "", m->cols[i].name);
        shown++;
    }
    if (shown == 0)
        cts_buf_appendf(b, "none");
}

static const char *all_fields(void)
{
    return "email, first_name, last_name, company_name, job_title, phone, "
           "street, city, state, postal_code, country, birthday_month, "
           "birthday_day, anniversary, opt_out, opt_out_reason, cf:NAME";
}

static int fail(struct cts_mapper *m, struct cts_error *err, int with_headers,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(struct cts_mapper *m, struct cts_error *err, int with_headers,
                const char *fmt, ...)
{
    struct cts_buf msg;
    char text[800];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cts_buf_init(&msg, 0);
    cts_buf_appendf(&msg, "%s", text);
    if (with_headers) {
        cts_buf_appendf(&msg, " (headers seen: ");
        headers_seen(m, &msg);
        cts_buf_appendf(&msg, ")");
    }
    cts_error_setx(err, CTS_EDATA, CTS_EX_DATAERR, "%s: %s", m->file, msg.data);
    cts_buf_free(&msg);
    return CTS_EDATA;
}

/* Column col holds custom field name (copied). */
static void add_cf(struct cts_mapper *m, const char *name, int col)
{
    size_t k = m->ncf++;

    m->cf_name = cts_xrealloc(m->cf_name, m->ncf * sizeof(char *));
    m->cf_col = cts_xrealloc(m->cf_col, m->ncf * sizeof(int));
    m->cf_name[k] = cts_xstrdup(name);
    m->cf_col[k] = col;
    m->cols[col].field = CF_FIELD(k);
}

static int apply_map(struct cts_mapper *m, const struct cts_map *map,
                     struct cts_error *err)
{
    char *norm;
    size_t i;
    int field = -1, col = -1, cf = 0;
    char other[300];

    if (strncmp(map->field, "cf:", 3) == 0) {
        if (map->field[3] == '\0')
            return fail(m, err, 0, "--map %s=%s: empty custom field name",
                        map->field, map->header);
        if (m->ncf == MAX_CUSTOM)
            return fail(m, err, 0, "--map %s=%s: more than %d custom fields",
                        map->field, map->header, MAX_CUSTOM);
        cf = 1;
    } else {
        field = field_by_name(map->field);
        if (field < 0)
            return fail(m, err, 0, "--map %s=%s: unknown field (fields: %s)",
                        map->field, map->header, all_fields());
        if (m->fcol[field] >= 0)
            return fail(m, err, 0, "--map %s=%s: the field is mapped twice",
                        map->field, map->header);
    }
    norm = cts_header_normalize(map->header);
    for (i = 0; i < m->ncols; i++) {
        if (norm[0] != '\0' && strcmp(m->cols[i].norm, norm) == 0) {
            if (col >= 0) {
                free(norm);
                return fail(m, err, 0,
                            "--map %s=%s: more than one column has that "
                            "header",
                            map->field, map->header);
            }
            col = (int)i;
        }
    }
    free(norm);
    if (col < 0)
        return fail(m, err, 1, "--map %s=%s: no such header", map->field,
                    map->header);
    if (m->cols[col].field >= 0)
        return fail(m, err, 0, "header \"%s\" is claimed by both %s and %s",
                    m->cols[col].name,
                    field_label(m, m->cols[col].field, other, sizeof(other)),
                    map->field);
    if (cf) {
        add_cf(m, map->field + 3, col);
    } else {
        m->fcol[field] = col;
        m->cols[col].field = field;
    }
    m->cols[col].by_map = 1;
    return 0;
}

/* Column i's header "cf:NAME" (any case of "cf:") claims custom field
 * NAME, unless --map already gave NAME a column.  0, or CTS_EDATA past the
 * custom field limit. */
static int cf_header(struct cts_mapper *m, size_t i, struct cts_error *err)
{
    const char *name = m->cols[i].name;
    size_t k;

    if (strlen(name) <= 3 || (name[0] != 'c' && name[0] != 'C') ||
        (name[1] != 'f' && name[1] != 'F') || name[2] != ':')
        return 0;
    for (k = 0; k < m->ncf; k++)
        if (strcmp(m->cf_name[k], name + 3) == 0)
            return 0;
    if (m->ncf == MAX_CUSTOM)
        return fail(m, err, 0, "column \"%s\": more than %d custom fields",
                    name, MAX_CUSTOM);
    add_cf(m, name + 3, (int)i);
    return 0;
}

struct cts_mapper *cts_mapper_new(const struct cts_mapper_opts *o,
                                  const struct cts_row *header,
                                  struct cts_error *err)
{
    struct cts_mapper *m = cts_xcalloc(1, sizeof(*m));
    size_t i;
    int f;

    m->api = o->api;
    m->accept_typos = o->accept_typos;
    m->file = cts_xstrdup(o->file != NULL ? o->file : "-");
    for (f = 0; f < CTS_F__MAPPABLE; f++)
        m->fcol[f] = -1;
    m->ncols = header->nfields;
    m->cols = cts_xcalloc(m->ncols > 0 ? m->ncols : 1, sizeof(*m->cols));
    for (i = 0; i < m->ncols; i++) {
        size_t n = header->lens[i];
        const char *s = cts_trim_span(header->fields[i], &n);
        m->cols[i].name = cts_xstrndup(s, n);
        m->cols[i].norm = cts_header_normalize(m->cols[i].name);
        m->cols[i].field = -1;
    }
    if (header->problem != NULL) {
        fail(m, err, 0, "header row: %s", header->problem);
        goto fail;
    }
    /* --map first: it overrides aliases. */
    for (i = 0; i < o->nmaps; i++)
        if (apply_map(m, &o->maps[i], err) != 0)
            goto fail;
    /* A "cf:NAME" header (as export writes them) is custom field NAME. */
    for (i = 0; i < m->ncols; i++)
        if (m->cols[i].field < 0 && cf_header(m, i, err) != 0)
            goto fail;
    /* Then aliases, for columns and fields --map left free. */
    for (i = 0; i < m->ncols; i++) {
        struct col *c = &m->cols[i];
        if (c->field >= 0 || c->norm[0] == '\0')
            continue;
        c->known = export_only_why(c->norm);
        if (c->known != NULL)
            continue;
        f = field_by_norm(c->norm);
        if (f < 0)
            continue;
        if (m->fcol[f] >= 0) {
            if (m->cols[m->fcol[f]].by_map)
                continue; /* --map chose another column: this one idles */
            fail(m, err, 0,
                 "columns \"%s\" and \"%s\" both map to %s; choose one "
                 "with --map %s=HEADER",
                 m->cols[m->fcol[f]].name, c->name,
                 cts_field_name((enum cts_field)f),
                 cts_field_name((enum cts_field)f));
            goto fail;
        }
        m->fcol[f] = (int)i;
        c->field = f;
    }
    for (i = 0; i < m->ncols; i++)
        m->cols[i].perm =
            m->cols[i].field == CTS_F_OPT_OUT && is_permission(m->cols[i].norm);
    if (m->fcol[CTS_F_EMAIL] < 0) {
        fail(m, err, 1, "no email column");
        goto fail;
    }
    m->unmapped = cts_xcalloc(m->ncols > 0 ? m->ncols : 1, sizeof(char *));
    for (i = 0; i < m->ncols; i++) {
        if (m->cols[i].field >= 0 || m->cols[i].name[0] == '\0')
            continue;
        /* The problem column of a rejects file imported again: known,
         * ignored without a word. */
        if (strcmp(m->cols[i].norm, CTS_REJECTS_PROBLEM_NORM) != 0 &&
            m->cols[i].known == NULL)
            m->unmapped[m->nunmapped++] = m->cols[i].name;
    }
    return m;
fail:
    cts_mapper_free(m);
    return NULL;
}

void cts_mapper_free(struct cts_mapper *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->ncols; i++) {
        free(m->cols[i].name);
        free(m->cols[i].norm);
    }
    for (i = 0; i < m->ncf; i++)
        free(m->cf_name[i]);
    free(m->cols);
    free(m->cf_name);
    free(m->cf_col);
    free(m->unmapped);
    free(m->file);
    free(m);
}

int cts_mapper_column_used(const struct cts_mapper *m, size_t col)
{
    return col < m->ncols && m->cols[col].field >= 0;
}

size_t cts_mapper_unmapped(const struct cts_mapper *m,
                           const char *const **names)
{
    *names = m->unmapped;
    return m->nunmapped;
}

void cts_mapper_describe(const struct cts_mapper *m, FILE *f)
{
    size_t i;
    char buf[300];

    for (i = 0; i < m->ncols; i++) {
        const struct col *c = &m->cols[i];
        /* Headers are input: escaped before they reach a terminal. */
        char *name = cts_log_visible(c->name);
        if (c->name[0] == '\0')
            fprintf(f, "  column %zu (no header) -> (ignored)\n", i + 1);
        else if (c->field < 0 && c->known != NULL)
            fprintf(f, "  \"%s\" -> (%s)\n", name, c->known);
        else if (c->field < 0 && strcmp(c->norm, CTS_REJECTS_PROBLEM_NORM) == 0)
            fprintf(f, "  \"%s\" -> (ignored: the rejects file's problem)\n",
                    name);
        else if (c->field < 0)
            fprintf(f, "  \"%s\" -> (ignored)\n", name);
        else
            fprintf(f, "  \"%s\" -> %s%s\n", name,
                    field_label(m, c->field, buf, sizeof(buf)),
                    c->by_map ? " (--map)" : "");
        free(name);
    }
}

const char *cts_mapper_email_cell(const struct cts_mapper *m,
                                  const struct cts_row *row)
{
    int col = m->fcol[CTS_F_EMAIL];

    if (col < 0 || (size_t)col >= row->nfields)
        return NULL;
    return row->fields[col];
}

/* ---- v2: ISO-8859-1 ---- */

static const char *translit(uint32_t cp)
{
    switch (cp) {
    case 0x2018:
    case 0x2019:
    case 0x201A:
    case 0x201B:
    case 0x2032: return "'";
    case 0x201C:
    case 0x201D:
    case 0x201E:
    case 0x201F:
    case 0x2033: return "\"";
    case 0x2010:
    case 0x2011:
    case 0x2012:
    case 0x2013:
    case 0x2014:
    case 0x2015:
    case 0x2212: return "-";
    case 0x2026: return "...";
    case 0x20AC: return "EUR";
    case 0x2022: return "*";
    case 0x2122: return "(TM)";
    case 0x2039: return "<";
    case 0x203A: return ">";
    case 0x2000:
    case 0x2001:
    case 0x2002:
    case 0x2003:
    case 0x2004:
    case 0x2005:
    case 0x2006:
    case 0x2007:
    case 0x2008:
    case 0x2009:
    case 0x200A:
    case 0x202F:
    case 0x205F:
    case 0x3000: return " ";
    case 0x200B:
    case 0x200C:
    case 0x200D:
    case 0x2060:
    case 0xFEFF: return "";
    default: return NULL;
    }
}

int cts_latin1_fit(const char *in, char **out, uint32_t *bad)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = strlen(in), i = 0;
    struct cts_buf b;

    *out = NULL;
    cts_buf_init(&b, 0);
    while (i < n) {
        uint32_t cp;
        size_t k = cts_utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            /* Not UTF-8 (cannot come from the reader): refuse the byte. */
            *bad = s[i];
            cts_buf_free(&b);
            return CTS_EDATA;
        }
        if (cp <= 0xFF) {
            cts_buf_append(&b, s + i, k);
        } else {
            const char *t = translit(cp);
            if (t == NULL) {
                *bad = cp;
                cts_buf_free(&b);
                return CTS_EDATA;
            }
            cts_buf_append(&b, t, strlen(t));
        }
        i += k;
    }
    *out = cts_buf_detach(&b);
    return 0;
}

/* ---- row mapping ---- */

static size_t count_chars(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Where the strings of a mapped contact come from: malloc (owned by the
 * contact), or the caller's allocator (cts_mapper_map_with). */
struct salloc {
    cts_mapper_alloc_fn fn; /* NULL: cts_xmalloc, freed by contact_clear */
    void *arg;
};

static void *s_alloc(const struct salloc *a, size_t n)
{
    return a->fn != NULL ? a->fn(a->arg, n) : cts_xmalloc(n);
}

static char *s_strndup(const struct salloc *a, const char *s, size_t n)
{
    char *d = s_alloc(a, n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* *v (from s_alloc) becomes t (malloc'd, taken). */
static void s_replace(const struct salloc *a, char **v, char *t)
{
    if (a->fn == NULL) {
        free(*v);
        *v = t;
        return;
    }
    /* The caller's memory is not freed piecemeal: copy into it. */
    *v = s_strndup(a, t, strlen(t));
    free(t);
}

/* The trimmed cell of a column, or NULL when absent or empty.  The quote
 * that neutralised a formula-like value (the report's rule: before '='
 * '+' '-' '@' TAB CR; our export and rejects files write it) is taken off
 * again, so a phone "+1 555" written as "'+1 555" comes back as it was. */
static char *cell(const struct salloc *a, const struct cts_row *row, int col)
{
    size_t n;
    const char *s;

    if (col < 0 || (size_t)col >= row->nfields)
        return NULL;
    n = row->lens[col];
    s = cts_trim_span(row->fields[col], &n);
    /* A quote a spreadsheet-safe writer (our report, export and rejects
     * file) put before '=', '+', '-', '@', TAB or CR is not part of the
     * value. */
    if (n >= 2 && s[0] == '\'' && strchr("=+-@\t\r", s[1]) != NULL) {
        s++;
        n--;
        s = cts_trim_span(s, &n);
    }
    if (n == 0)
        return NULL;
    return s_strndup(a, s, n);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int days_in(long month)
{
    static const int d[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d[month - 1];
}

/* Anniversary: YYYY-MM-DD, YYYY/MM/DD, MM/DD/YYYY or M/D/YYYY (the v3 API
 * takes ≤ 10 characters, "MM/DD/YYYY, YYYY-MM-DD and similar"). */
static int check_date(const char *s)
{
    long part[3], y, mo, d;
    size_t len[3];
    char sep = 0;
    const char *p = s;
    char *end;
    int i;

    if (strlen(s) > 10)
        return -1;
    for (i = 0; i < 3; i++) {
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        errno = 0;
        part[i] = strtol(p, &end, 10);
        len[i] = (size_t)(end - p);
        if (errno != 0)
            return -1;
        if (i < 2) {
            if ((*end != '-' && *end != '/') || (sep != 0 && *end != sep))
                return -1;
            sep = *end;
            p = end + 1;
        } else if (*end != '\0') {
            return -1;
        }
    }
    if (len[0] == 4 && len[1] <= 2 && len[2] <= 2) {
        y = part[0];
        mo = part[1];
        d = part[2];
    } else if (len[2] == 4 && len[0] <= 2 && len[1] <= 2) {
        mo = part[0];
        d = part[1];
        y = part[2];
    } else {
        return -1;
    }
    if (y < 1900 || y > 2100 || mo < 1 || mo > 12 || d < 1 || d > days_in(mo))
        return -1;
    return 0;
}

/* Bytes of s[0..n) that hold at most max bytes without splitting a UTF-8
 * character (for quoting a cell in a message). */
static size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* Case-insensitive equality of the span s[0..n) and the ASCII word w. */
static int span_is(const char *s, size_t n, const char *w)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (w[i] == '\0')
            return 0;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)w[i])
            return 0;
    }
    return w[n] == '\0';
}

/* An opt_out cell: 1 true, 0 false (empty too), -1 neither.  Compared in
 * place on the trimmed span: a yes/no costs no allocation per row. */
static int opt_out_value(const char *s, size_t n)
{
    static const char *const yes[] = {
        "yes", "y", "true", "1", "x", "unsubscribed", "opted out", "opted-out"};
    static const char *const no[] = {"no", "n", "false", "0"};
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (span_is(s, n, yes[i]))
            return 1;
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (span_is(s, n, no[i]))
            return 0;
    return -1;
}

/* A permission cell (export's column): unsubscribed is an opt-out, the
 * other v3 words (and empty) are not; -1 for anything else, so that a
 * CRM's "permission: yes" is never read as either. */
static int permission_value(const char *s, size_t n)
{
    static const char *const no[] = {
        "implicit", "explicit", "pending_confirmation", "temp_hold", "not_set"};
    size_t i;

    if (n == 0)
        return 0;
    if (span_is(s, n, "unsubscribed"))
        return 1;
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (span_is(s, n, no[i]))
            return 0;
    return -1;
}

/* How a row's message names a column: by its header as the person wrote
 * it, and by the field it feeds when the header does not already say so
 * (normalised): `column "Vorname" (first_name)`, `column "E-mail
 * Address"`. */
static void col_label(const struct cts_mapper *m, int col, const char *field,
                      char *buf, size_t size)
{
    const char *name = m->cols[col].name;
    size_t n = strlen(name), cut = utf8_prefix(name, n, 60);
    char *fn =
        cts_header_normalize(strncmp(field, "cf:", 3) == 0 ? field + 3 : field);

    snprintf(buf, size, "column \"%.*s%s\"", (int)cut, name,
             cut < n ? "..." : "");
    if (strstr(m->cols[col].norm, fn) == NULL)
        snprintf(buf + strlen(buf), size - strlen(buf), " (%s)", field);
    free(fn);
}

/* The row is invalid: err->msg is the column's label followed by fmt,
 * which starts with its own separator (": no '@'", " is empty"). */
static int invalid(const struct cts_mapper *m, struct cts_error *err,
                   const struct cts_row *row, int col, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int invalid(const struct cts_mapper *m, struct cts_error *err,
                   const struct cts_row *row, int col, const char *field,
                   const char *fmt, ...)
{
    char label[200], msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    col_label(m, col, field, label, sizeof(label));
    cts_error_setx(err, CTS_EDATA, 0, "%s%s", label, msg);
    if (err != NULL)
        err->row = row->row;
    return CTS_EDATA;
}

/* v2: make the value Latin-1 (transliterating), or say which character
 * cannot be sent. */
static int check_value(const struct cts_mapper *m, const struct salloc *a,
                       const struct cts_row *row, char **v, int col,
                       const char *field, size_t max, struct cts_error *err)
{
    char *t;
    uint32_t bad = 0;

    /* v2: make the value Latin-1 (transliterating), or say which
     * character cannot be sent. */
    if (m->api == CTS_API_V2) {
        if (cts_latin1_fit(*v, &t, &bad) != 0)
            return invalid(m, err, row, col, field,
                           ": character U+%04X is outside ISO-8859-1, which "
                           "the v2 API rejects",
                           (unsigned)bad);
        s_replace(a, v, t);
    }
    if (count_chars(*v) > max)
        return invalid(m, err, row, col, field,
                       " is longer than %zu characters", max);
    return 0;
}

int cts_mapper_map(const struct cts_mapper *m, const struct cts_row *row,
                   struct cts_contact *out, struct cts_error *err)
{
    return cts_mapper_map_with(m, row, out, NULL, NULL, err);
}

int cts_mapper_map_with(const struct cts_mapper *m, const struct cts_row *row,
                        struct cts_contact *out, cts_mapper_alloc_fn alloc,
                        void *alloc_arg, struct cts_error *err)
{
    struct salloc sa = {alloc, alloc_arg};
    const struct salloc *a = &sa;
    const char *why;
    char *norm;
    int f, ecol = m->fcol[CTS_F_EMAIL];
    long bm = 0, bd = 0;
    size_t k;

    /* The raw email first, so that even a broken row has it. */
    out->f[CTS_F_EMAIL] = cell(a, row, m->fcol[CTS_F_EMAIL]);
    if (row->problem != NULL) {
        cts_error_setx(err, CTS_EDATA, 0, "%s", row->problem);
        if (err != NULL)
            err->row = row->row;
        return CTS_EDATA;
    }
    if (out->f[CTS_F_EMAIL] == NULL)
        return invalid(m, err, row, ecol, "email", " is empty");
    if (cts_email_normalize(out->f[CTS_F_EMAIL], &norm, &why) != 0)
        return invalid(m, err, row, ecol, "email", ": %s", why);
    s_replace(a, &out->f[CTS_F_EMAIL], norm);
    norm = out->f[CTS_F_EMAIL];
    if (count_chars(norm) > cts_field_max(m->api, CTS_F_EMAIL))
        return invalid(m, err, row, ecol, "email",
                       " is longer than %zu characters (the API limit)",
                       cts_field_max(m->api, CTS_F_EMAIL));
    /* A slip in a common domain bounces, and bounces cost the account its
     * sender reputation: ask first, unless told to send as written. */
    if (!m->accept_typos) {
        char *meant = cts_typo_suggest(norm);
        if (meant != NULL) {
            invalid(m, err, row, ecol, "email",
                    ": did you mean %s? (\"%s\" looks like a typo; "
                    "--accept-typos sends it as written)",
                    meant, strrchr(norm, '@') + 1);
            free(meant);
            return CTS_EDATA;
        }
    }
    /* v2: an address is never transliterated (a changed address is another
     * mailbox), only refused when it has characters outside Latin-1. */
    if (m->api == CTS_API_V2) {
        const unsigned char *p = (const unsigned char *)out->f[CTS_F_EMAIL];
        size_t n = strlen(out->f[CTS_F_EMAIL]), i = 0, step;
        uint32_t cp = 0;
        for (; i < n; i += step) {
            step = cts_utf8_decode(p + i, n - i, &cp);
            if (step == 0 || cp > 0xFF)
                return invalid(m, err, row, ecol, "email",
                               ": character U+%04X is outside ISO-8859-1, "
                               "which the v2 API rejects",
                               (unsigned)(step == 0 ? p[i] : cp));
        }
    }

    if (m->fcol[CTS_F_OPT_OUT] >= 0 &&
        (size_t)m->fcol[CTS_F_OPT_OUT] < row->nfields) {
        int col = m->fcol[CTS_F_OPT_OUT];
        size_t n = row->lens[col];
        const char *v = cts_trim_span(row->fields[col], &n);
        out->opt_out =
            m->cols[col].perm ? permission_value(v, n) : opt_out_value(v, n);
        if (out->opt_out < 0) {
            out->opt_out = 0;
            return invalid(
                m, err, row, col, "opt_out", " says \"%.*s\", which is %s",
                (int)utf8_prefix(v, n, 60), v,
                m->cols[col].perm
                    ? "not a permission (unsubscribed, or implicit, "
                      "explicit, pending_confirmation, temp_hold, not_set, "
                      "empty)"
                    : "neither yes (yes, y, true, 1, x, unsubscribed, opted "
                      "out) nor no (no, n, false, 0, empty)");
        }
    }
    if (out->opt_out) {
        /* Only the unsubscription is sent for this row: its other values
         * are neither used nor able to make it invalid (someone who asked
         * to be unsubscribed is, whatever else the row holds). */
        char *r = cell(a, row, m->fcol[CTS_F_OPT_OUT_REASON]);
        if (r != NULL) {
            /* Too long a reason is cut, not a reason to ignore the row. */
            size_t max = cts_field_max(m->api, CTS_F_OPT_OUT_REASON);
            size_t i, chars = 0;
            for (i = 0; r[i] != '\0'; i++)
                if (((unsigned char)r[i] & 0xC0) != 0x80 && chars++ == max) {
                    r[i] = '\0';
                    break;
                }
        }
        out->opt_out_reason = r;
        return 0;
    }

    for (f = CTS_F_EMAIL + 1; f < CTS_F__COUNT; f++) {
        const char *name;
        if (m->fcol[f] < 0)
            continue;
        out->f[f] = cell(a, row, m->fcol[f]);
        if (out->f[f] == NULL)
            continue;
        name = cts_field_name((enum cts_field)f);
        if (f == CTS_F_BIRTHDAY_MONTH) {
            if (parse_int(out->f[f], 1, 12, &bm) != 0)
                return invalid(m, err, row, m->fcol[f], name,
                               ": \"%s\" is not a month 1-12", out->f[f]);
            continue;
        }
        if (f == CTS_F_BIRTHDAY_DAY) {
            if (parse_int(out->f[f], 1, 31, &bd) != 0)
                return invalid(m, err, row, m->fcol[f], name,
                               ": \"%s\" is not a day 1-31", out->f[f]);
            continue;
        }
        if (f == CTS_F_ANNIVERSARY) {
            if (check_date(out->f[f]) != 0)
                return invalid(m, err, row, m->fcol[f], name,
                               ": \"%s\" is not a date (YYYY-MM-DD or "
                               "MM/DD/YYYY)",
                               out->f[f]);
            continue;
        }
        if (check_value(m, a, row, &out->f[f], m->fcol[f], name,
                        cts_field_max(m->api, (enum cts_field)f), err) != 0)
            return CTS_EDATA;
    }
    if ((bm != 0) != (bd != 0)) {
        f = bm != 0 ? CTS_F_BIRTHDAY_MONTH : CTS_F_BIRTHDAY_DAY;
        return invalid(m, err, row, m->fcol[f], cts_field_name(f),
                       " is given without %s",
                       bm != 0 ? "birthday_day" : "birthday_month");
    }
    if (bm != 0 && bd > days_in(bm))
        return invalid(m, err, row, m->fcol[CTS_F_BIRTHDAY_DAY], "birthday_day",
                       ": month %ld has no day %ld", bm, bd);

    if (m->ncf > 0) {
        out->cf = s_alloc(a, m->ncf * sizeof(*out->cf));
        memset(out->cf, 0, m->ncf * sizeof(*out->cf));
        for (k = 0; k < m->ncf; k++) {
            char *v = cell(a, row, m->cf_col[k]);
            char label[300];
            if (v == NULL)
                continue;
            out->cf[out->ncf].name =
                s_strndup(a, m->cf_name[k], strlen(m->cf_name[k]));
            out->cf[out->ncf].value = v;
            out->ncf++;
            snprintf(label, sizeof(label), "cf:%s", m->cf_name[k]);
            if (check_value(m, a, row, &out->cf[out->ncf - 1].value,
                            m->cf_col[k], label, 255, err) != 0)
                return CTS_EDATA;
        }
    }
    return 0;
}

void cts_mapper_log_header(const struct cts_mapper *m, const char *file,
                           int describe)
{
    const char *const *names = NULL;
    size_t i, n = cts_mapper_unmapped(m, &names);

    if (n > 0) {
        struct cts_buf buf;
        cts_buf_init(&buf, 4096);
        for (i = 0; i < n; i++)
            cts_buf_appendf(&buf, "%s\"%s\"", i > 0 ? ", " : "", names[i]);
        cts_log_info("%s: ignoring columns that map to no field: %s", file,
                     buf.data != NULL ? buf.data : "");
        cts_buf_free(&buf);
    }
    if (describe) {
        /* The log line clears a progress line first (its hook). */
        cts_log_info("%s: column mapping:", file);
        cts_mapper_describe(m, stderr);
    }
}
