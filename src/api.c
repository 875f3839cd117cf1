/*
 * api.c — Constant Contact JSON: request bodies and response parsers
 * (v2 contacts, lists, tokeninfo; v3 contacts, sign_up_form, lists, account
 * summary, token).  Pure: jansson only.
 *
 * jansson rules obeyed throughout: json_object_set_new / json_array_append_new
 * take the value even when they fail; strings from json_dumps are freed
 * with free(); json_loadb needs no NUL terminator, so bodies of any length
 * (including NULL/0) are safe to parse.
 */
#include "cts_api.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "cts_util.h"

/* ---------------------------------------------------------------- */
/* helpers                                                          */

static json_t *load(const char *body, size_t len)
{
    json_error_t jerr;
    if (body == NULL || len == 0)
        return NULL;
    /* DECODE_ANY: an error reply can be a bare string in the wild. */
    return json_loadb(body, len, JSON_DECODE_ANY, &jerr);
}

/* Owned copy of a string member, or of an integer member printed in
 * decimal (v2 ids are numbers in replies, strings in requests). */
static char *member_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return cts_xstrndup(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return cts_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return NULL;
}

/* A number that may arrive as a JSON number or a numeric string (the
 * php-sdk tokeninfo fixture has "expires_in":"315110295"). */
static long member_long(const json_t *obj, const char *key, long dflt)
{
    long out;
    if (cts_json_int(json_object_get(obj, key), LONG_MIN, LONG_MAX, &out) != 0)
        return dflt;
    return out;
}

/* Number of UTF-8 code points (the API's limits count characters). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Set obj[key] = s when s is non-empty; 0, or CTS_EDATA when s is longer
 * than max characters (max 0 = no limit). */
static int put_str(json_t *obj, const char *key, const char *s, size_t max,
                   struct cts_error *err)
{
    json_t *v;
    if (s == NULL || *s == '\0')
        return 0;
    if (max != 0 && utf8_chars(s) > max)
        return cts_error_set(err, CTS_EDATA, "%s is longer than %zu characters",
                             key, max);
    /* json_string validates UTF-8; the mapper has already converted the
     * input, so a failure here is a bug upstream, not silently dropped. */
    v = json_string(s);
    if (v == NULL)
        return cts_error_set(err, CTS_EDATA, "%s is not valid UTF-8", key);
    if (json_object_set_new(obj, key, v) != 0)
        return cts_error_set(err, UV_ENOMEM, "out of memory");
    return 0;
}

static char *dump(json_t *root, struct cts_error *err)
{
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s == NULL)
        cts_error_set(err, UV_ENOMEM, "out of memory serialising JSON");
    return s;
}

static const char *F(const struct cts_contact *c, enum cts_field f)
{
    const char *s = c->f[f];
    return s != NULL && *s != '\0' ? s : NULL;
}

/* birthday_month/day as integers, only as a pair (both APIs require it). */
static int put_birthday(json_t *obj, const struct cts_contact *c,
                        struct cts_error *err)
{
    const char *m = F(c, CTS_F_BIRTHDAY_MONTH), *d = F(c, CTS_F_BIRTHDAY_DAY);
    long mv, dv;
    if (m == NULL && d == NULL)
        return 0;
    if (m == NULL || d == NULL)
        return cts_error_set(err, CTS_EDATA,
                             "birthday_month and birthday_day go together");
    if (cts_parse_long(m, 1, 12, &mv) != 0)
        return cts_error_set(err, CTS_EDATA, "birthday_month is not 1-12");
    if (cts_parse_long(d, 1, 31, &dv) != 0)
        return cts_error_set(err, CTS_EDATA, "birthday_day is not 1-31");
    if (json_object_set_new(obj, "birthday_month", json_integer(mv)) != 0 ||
        json_object_set_new(obj, "birthday_day", json_integer(dv)) != 0)
        return cts_error_set(err, UV_ENOMEM, "out of memory");
    return 0;
}

static json_t *string_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    size_t i;
    if (a == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* v3 custom_fields [{custom_field_id, value}] (names resolved via cf). */
static int put_v3_custom_fields(json_t *obj, const struct cts_contact *c,
                                const struct cts_cf_ids *cf, size_t maxn,
                                struct cts_error *err)
{
    json_t *a, *item;
    size_t i;
    if (c->ncf == 0)
        return 0;
    if (c->ncf > maxn)
        return cts_error_set(err, CTS_EDATA, "more than %zu custom fields",
                             maxn);
    a = json_array();
    if (a == NULL || json_object_set_new(obj, "custom_fields", a) != 0)
        return cts_error_set(err, UV_ENOMEM, "out of memory");
    for (i = 0; i < c->ncf; i++) {
        const char *id = cts_cf_ids_find(cf, c->cf[i].name);
        int rc;
        if (c->cf[i].value == NULL || c->cf[i].value[0] == '\0')
            continue;
        if (id == NULL)
            return cts_error_set(err, CTS_EDATA,
                                 "custom field \"%s\" does not exist in the "
                                 "account",
                                 c->cf[i].name);
        item = json_object();
        if (item == NULL || json_array_append_new(a, item) != 0)
            return cts_error_set(err, UV_ENOMEM, "out of memory");
        if (json_object_set_new(item, "custom_field_id", json_string(id)) != 0)
            return cts_error_set(err, UV_ENOMEM, "out of memory");
        rc = put_str(item, "value", c->cf[i].value, 255, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The v3 address object {kind:"home", street, city, state, postal_code,
 * country}; NULL (no error) when the contact has no address field. */
static int v3_address(const struct cts_contact *c, json_t **out,
                      struct cts_error *err)
{
    json_t *a;
    int rc = 0;
    *out = NULL;
    if (F(c, CTS_F_STREET) == NULL && F(c, CTS_F_CITY) == NULL &&
        F(c, CTS_F_STATE) == NULL && F(c, CTS_F_POSTAL_CODE) == NULL &&
        F(c, CTS_F_COUNTRY) == NULL)
        return 0;
    a = json_object();
    if (a == NULL || json_object_set_new(a, "kind", json_string("home")) != 0) {
        json_decref(a);
        return cts_error_set(err, UV_ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = put_str(a, "street", F(c, CTS_F_STREET), 255, err);
    if (rc == 0)
        rc = put_str(a, "city", F(c, CTS_F_CITY), 50, err);
    if (rc == 0)
        rc = put_str(a, "state", F(c, CTS_F_STATE), 50, err);
    if (rc == 0)
        rc = put_str(a, "postal_code", F(c, CTS_F_POSTAL_CODE), 50, err);
    if (rc == 0)
        rc = put_str(a, "country", F(c, CTS_F_COUNTRY), 50, err);
    if (rc != 0) {
        json_decref(a);
        return rc;
    }
    *out = a;
    return 0;
}

static int check_lists(size_t nlists, struct cts_error *err)
{
    if (nlists == 0)
        return cts_error_set(err, CTS_EDATA, "at least one list is required");
    if (nlists > 50)
        return cts_error_set(err, CTS_EDATA, "more than 50 lists");
    return 0;
}

/* Fields common to both v3 bodies (names, job title, company: ≤ 50
 * characters each in POST /contacts and sign_up_form). */
static int put_v3_names(json_t *o, const struct cts_contact *c,
                        struct cts_error *err)
{
    int rc = put_str(o, "first_name", F(c, CTS_F_FIRST_NAME), 50, err);
    if (rc == 0)
        rc = put_str(o, "last_name", F(c, CTS_F_LAST_NAME), 50, err);
    if (rc == 0)
        rc = put_str(o, "job_title", F(c, CTS_F_JOB_TITLE), 50, err);
    if (rc == 0)
        rc = put_str(o, "company_name", F(c, CTS_F_COMPANY_NAME), 50, err);
    if (rc == 0)
        rc = put_birthday(o, c, err);
    if (rc == 0)
        rc = put_str(o, "anniversary", F(c, CTS_F_ANNIVERSARY), 10, err);
    return rc;
}

/* ---------------------------------------------------------------- */
/* bodies                                                           */

char *cts_api_v3_signup_body(const struct cts_contact *c, char *const *list_ids,
                             size_t nlists, const struct cts_cf_ids *cf,
                             struct cts_error *err)
{
    json_t *o, *addr = NULL, *lists;
    int rc;

    if (F(c, CTS_F_EMAIL) == NULL) {
        cts_error_set(err, CTS_EDATA, "email is required");
        return NULL;
    }
    rc = check_lists(nlists, err);
    if (rc != 0)
        return NULL;
    o = json_object();
    if (o == NULL) {
        cts_error_set(err, UV_ENOMEM, "out of memory");
        return NULL;
    }
    /* sign_up_form is flat: email_address is a plain string (≤ 50). */
    rc = put_str(o, "email_address", F(c, CTS_F_EMAIL), 50, err);
    if (rc == 0)
        rc = put_v3_names(o, c, err);
    if (rc == 0)
        rc = put_str(o, "phone_number", F(c, CTS_F_PHONE), 25, err);
    if (rc == 0)
        rc = v3_address(c, &addr, err);
    if (rc == 0 && addr != NULL &&
        json_object_set_new(o, "street_address", addr) != 0)
        rc = cts_error_set(err, UV_ENOMEM, "out of memory");
    if (rc == 0) {
        lists = string_array(list_ids, nlists);
        if (lists == NULL ||
            json_object_set_new(o, "list_memberships", lists) != 0)
            rc = cts_error_set(err, UV_ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = put_v3_custom_fields(o, c, cf, 50, err);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump(o, err);
}

char *cts_api_v3_contact_body(const struct cts_contact *c,
                              char *const *list_ids, size_t nlists,
                              const struct cts_cf_ids *cf,
                              struct cts_error *err)
{
    json_t *o, *em, *addr = NULL, *a, *ph, *lists;
    int rc;

    if (F(c, CTS_F_EMAIL) == NULL) {
        cts_error_set(err, CTS_EDATA, "email is required");
        return NULL;
    }
    rc = check_lists(nlists, err);
    if (rc != 0)
        return NULL;
    o = json_object();
    em = json_object();
    if (o == NULL || em == NULL ||
        json_object_set_new(o, "email_address", em)) {
        json_decref(o);
        cts_error_set(err, UV_ENOMEM, "out of memory");
        return NULL;
    }
    rc = put_str(em, "address", F(c, CTS_F_EMAIL), 80, err);
    if (rc == 0 && json_object_set_new(em, "permission_to_send",
                                       json_string("implicit")) != 0)
        rc = cts_error_set(err, UV_ENOMEM, "out of memory");
    if (rc == 0 &&
        json_object_set_new(o, "create_source", json_string("Account")) != 0)
        rc = cts_error_set(err, UV_ENOMEM, "out of memory");
    if (rc == 0)
        rc = put_v3_names(o, c, err);
    if (rc == 0 && F(c, CTS_F_PHONE) != NULL) {
        a = json_array();
        ph = json_object();
        if (a == NULL || ph == NULL ||
            json_object_set_new(o, "phone_numbers", a) != 0 ||
            json_array_append_new(a, ph) != 0 ||
            json_object_set_new(ph, "kind", json_string("home")) != 0) {
            if (json_object_get(o, "phone_numbers") != a)
                json_decref(ph);
            rc = cts_error_set(err, UV_ENOMEM, "out of memory");
        } else
            rc = put_str(ph, "phone_number", F(c, CTS_F_PHONE), 25, err);
    }
    if (rc == 0)
        rc = v3_address(c, &addr, err);
    if (rc == 0 && addr != NULL) {
        a = json_array();
        if (a == NULL || json_object_set_new(o, "street_addresses", a) != 0 ||
            json_array_append_new(a, addr) != 0)
            rc = cts_error_set(err, UV_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        lists = string_array(list_ids, nlists);
        if (lists == NULL ||
            json_object_set_new(o, "list_memberships", lists) != 0)
            rc = cts_error_set(err, UV_ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = put_v3_custom_fields(o, c, cf, 25, err);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump(o, err);
}

/* v2 country_code: ISO 3166 two-letter codes pass through (lower-case, as
 * the API returns them); a few common spelled-out names are mapped. */
static const char *v2_country_code(const char *country, char buf[3])
{
    static const struct {
        const char *name, *code;
    } names[] = {
        {"united states", "us"},
        {"united states of america", "us"},
        {"usa", "us"},
        {"u.s.a.", "us"},
        {"u.s.", "us"},
        {"canada", "ca"},
        {"united kingdom", "gb"},
        {"great britain", "gb"},
        {"uk", "gb"},
        {"germany", "de"},
        {"france", "fr"},
        {"australia", "au"},
        {"mexico", "mx"},
        {"ireland", "ie"},
        {"spain", "es"},
        {"italy", "it"},
        {"netherlands", "nl"},
        {"india", "in"},
    };
    size_t i;
    if (country == NULL)
        return NULL;
    if (strlen(country) == 2 && isalpha((unsigned char)country[0]) &&
        isalpha((unsigned char)country[1])) {
        buf[0] = (char)tolower((unsigned char)country[0]);
        buf[1] = (char)tolower((unsigned char)country[1]);
        buf[2] = '\0';
        return buf;
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (cts_streq_nocase(country, names[i].name))
            return names[i].code;
    return NULL;
}

/* Fill a v2 address object from c (fields present in c only). */
static int v2_fill_address(json_t *a, const struct cts_contact *c,
                           struct cts_error *err)
{
    char cc[3];
    const char *code = v2_country_code(F(c, CTS_F_COUNTRY), cc);
    const char *st = F(c, CTS_F_STATE);
    int rc = 0;

    if (json_object_get(a, "address_type") == NULL &&
        json_object_set_new(a, "address_type", json_string("PERSONAL")) != 0)
        return cts_error_set(err, UV_ENOMEM, "out of memory");
    rc = put_str(a, "line1", F(c, CTS_F_STREET), 0, err);
    if (rc == 0)
        rc = put_str(a, "city", F(c, CTS_F_CITY), 0, err);
    if (rc == 0)
        rc = put_str(a, "postal_code", F(c, CTS_F_POSTAL_CODE), 0, err);
    if (rc == 0 && code != NULL)
        rc = put_str(a, "country_code", code, 0, err);
    if (rc == 0 && st != NULL) {
        /* state_code is only for US/CA two-letter codes; any other state
         * goes to the free-text `state` (v2 address fields). */
        int usca = code != NULL &&
                   (strcmp(code, "us") == 0 || strcmp(code, "ca") == 0);
        if ((usca || code == NULL) && strlen(st) == 2 &&
            isalpha((unsigned char)st[0]) && isalpha((unsigned char)st[1])) {
            char up[3] = {(char)toupper((unsigned char)st[0]),
                          (char)toupper((unsigned char)st[1]), '\0'};
            rc = put_str(a, "state_code", up, 0, err);
        } else {
            rc = put_str(a, "state", st, 0, err);
        }
    }
    return rc;
}

static int v2_has_address(const struct cts_contact *c)
{
    return F(c, CTS_F_STREET) != NULL || F(c, CTS_F_CITY) != NULL ||
           F(c, CTS_F_STATE) != NULL || F(c, CTS_F_POSTAL_CODE) != NULL ||
           F(c, CTS_F_COUNTRY) != NULL;
}

/* Top-level v2 fields shared by POST and the PUT merge. */
static int v2_put_fields(json_t *o, const struct cts_contact *c,
                         struct cts_error *err)
{
    int rc = put_str(o, "first_name", F(c, CTS_F_FIRST_NAME), 0, err);
    if (rc == 0)
        rc = put_str(o, "last_name", F(c, CTS_F_LAST_NAME), 0, err);
    if (rc == 0)
        rc = put_str(o, "company_name", F(c, CTS_F_COMPANY_NAME), 0, err);
    if (rc == 0)
        rc = put_str(o, "job_title", F(c, CTS_F_JOB_TITLE), 0, err);
    if (rc == 0)
        rc = put_str(o, "work_phone", F(c, CTS_F_PHONE), 0, err);
    return rc;
}

/* Set or add each custom field {name, value} in the array a. */
static int v2_merge_custom_fields(json_t *a, const struct cts_contact *c,
                                  struct cts_error *err)
{
    size_t i, j;
    for (i = 0; i < c->ncf; i++) {
        json_t *item = NULL, *it;
        if (c->cf[i].value == NULL || c->cf[i].value[0] == '\0')
            continue;
        json_array_foreach(a, j, it)
        {
            const char *nm = json_string_value(json_object_get(it, "name"));
            if (nm != NULL && cts_streq_nocase(nm, c->cf[i].name)) {
                item = it;
                break;
            }
        }
        if (item == NULL) {
            item = json_object();
            if (item == NULL || json_array_append_new(a, item) != 0 ||
                json_object_set_new(item, "name", json_string(c->cf[i].name)) !=
                    0)
                return cts_error_set(err, UV_ENOMEM, "out of memory");
        }
        if (put_str(item, "value", c->cf[i].value, 0, err) != 0)
            return err != NULL ? err->code : CTS_EDATA;
    }
    return 0;
}

/* Add each list id not yet present to lists [{id},...]. */
static int v2_merge_lists(json_t *a, char *const *lists, size_t nlists,
                          struct cts_error *err)
{
    size_t i, j;
    for (i = 0; i < nlists; i++) {
        json_t *it, *item;
        int found = 0;
        json_array_foreach(a, j, it)
        {
            char *id = member_str(it, "id");
            if (id != NULL && strcmp(id, lists[i]) == 0)
                found = 1;
            free(id);
            if (found)
                break;
        }
        if (found)
            continue;
        item = json_object();
        if (item == NULL || json_array_append_new(a, item) != 0 ||
            json_object_set_new(item, "id", json_string(lists[i])) != 0)
            return cts_error_set(err, UV_ENOMEM, "out of memory");
    }
    return 0;
}

char *cts_api_v2_contact_body(const struct cts_contact *c, char *const *lists,
                              size_t nlists, struct cts_error *err)
{
    json_t *o, *a, *em;
    int rc;

    if (F(c, CTS_F_EMAIL) == NULL) {
        cts_error_set(err, CTS_EDATA, "email is required");
        return NULL;
    }
    rc = check_lists(nlists, err);
    if (rc != 0)
        return NULL;
    o = json_object();
    if (o == NULL) {
        cts_error_set(err, UV_ENOMEM, "out of memory");
        return NULL;
    }
    a = cts_json_array_member(o, "email_addresses");
    em = json_object();
    if (a == NULL || em == NULL || json_array_append_new(a, em) != 0) {
        rc = cts_error_set(err, UV_ENOMEM, "out of memory");
        goto out;
    }
    rc = put_str(em, "email_address", F(c, CTS_F_EMAIL), 80, err);
    if (rc != 0)
        goto out;
    a = cts_json_array_member(o, "lists");
    if (a == NULL) {
        rc = cts_error_set(err, UV_ENOMEM, "out of memory");
        goto out;
    }
    rc = v2_merge_lists(a, lists, nlists, err);
    if (rc == 0)
        rc = v2_put_fields(o, c, err);
    if (rc == 0 && v2_has_address(c)) {
        json_t *addr = json_object();
        a = cts_json_array_member(o, "addresses");
        if (a == NULL || addr == NULL || json_array_append_new(a, addr) != 0)
            rc = cts_error_set(err, UV_ENOMEM, "out of memory");
        else
            rc = v2_fill_address(addr, c, err);
    }
    if (rc == 0 && c->ncf > 0) {
        a = cts_json_array_member(o, "custom_fields");
        rc = a == NULL ? cts_error_set(err, UV_ENOMEM, "out of memory")
                       : v2_merge_custom_fields(a, c, err);
    }
out:
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump(o, err);
}

char *cts_api_v2_merge_update(const char *existing_contact_json,
                              const struct cts_contact *c, char *const *lists,
                              size_t nlists, struct cts_error *err)
{
    json_t *o, *a;
    int rc;

    o = existing_contact_json != NULL
            ? load(existing_contact_json, strlen(existing_contact_json))
            : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        cts_error_set(err, CTS_EJSON, "the existing contact is not JSON");
        return NULL;
    }
    /* Keep everything the account already holds (email addresses, status,
     * other lists, notes); only overwrite what the row says. */
    rc = v2_put_fields(o, c, err);
    if (rc == 0) {
        a = cts_json_array_member(o, "lists");
        rc = a == NULL ? cts_error_set(err, UV_ENOMEM, "out of memory")
                       : v2_merge_lists(a, lists, nlists, err);
    }
    if (rc == 0 && v2_has_address(c)) {
        json_t *addr;
        a = cts_json_array_member(o, "addresses");
        if (a == NULL) {
            rc = cts_error_set(err, UV_ENOMEM, "out of memory");
        } else {
            /* Update the first address in place (v2 keeps one per type);
             * add one when the contact has none. */
            addr = json_array_get(a, 0);
            if (!json_is_object(addr)) {
                addr = json_object();
                if (addr == NULL || json_array_append_new(a, addr) != 0)
                    rc = cts_error_set(err, UV_ENOMEM, "out of memory");
            }
            if (rc == 0)
                rc = v2_fill_address(addr, c, err);
        }
    }
    if (rc == 0 && c->ncf > 0) {
        a = cts_json_array_member(o, "custom_fields");
        rc = a == NULL ? cts_error_set(err, UV_ENOMEM, "out of memory")
                       : v2_merge_custom_fields(a, c, err);
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump(o, err);
}

/* ---------------------------------------------------------------- */
/* bulk imports (v3 contacts_json_import, v2 addcontacts)           */

/* A number when the whole value is one (birthday month/day), else text. */
static int put_int_or_str(json_t *o, const char *k, const char *v)
{
    char *end;
    long n;
    if (v == NULL || *v == '\0')
        return 0;
    n = strtol(v, &end, 10);
    if (*end == '\0' && end != v)
        return json_object_set_new(o, k, json_integer(n));
    return put_str(o, k, v, 0, NULL);
}

/* v2 custom fields are CustomField1..15: accept "custom_field_3",
 * "CustomField3", "custom field 3"; 0 when the name is not one. */
static int v2_cf_number(const char *name)
{
    const char *p = name;
    const char *want = "customfield";
    long n;
    char *end;
    for (; *want != '\0'; p++) {
        if (*p == '_' || *p == ' ' || *p == '-')
            continue;
        if (tolower((unsigned char)*p) != *want)
            return 0;
        want++;
    }
    while (*p == '_' || *p == ' ' || *p == '-')
        p++;
    n = strtol(p, &end, 10);
    return *end == '\0' && end != p && n >= 1 && n <= 15 ? (int)n : 0;
}

static int bulk_item_v3(json_t *o, const struct cts_contact *c)
{
    static const char *const names[CTS_F__COUNT] = {
        "email",        "first_name", "last_name", "company_name",
        "job_title",    "phone",      "street",    "city",
        "state",        "zip",        "country",   "birthday_month",
        "birthday_day", "anniversary"};
    size_t i;
    int rc = 0;
    for (i = 0; i < CTS_F__COUNT && rc == 0; i++) {
        if (i == CTS_F_BIRTHDAY_MONTH || i == CTS_F_BIRTHDAY_DAY)
            rc = put_int_or_str(o, names[i], c->f[i]);
        else
            rc = put_str(o, names[i], c->f[i], 0, NULL);
    }
    /* The v3 import takes custom fields by name as "cf:<name>". */
    for (i = 0; i < c->ncf && rc == 0; i++) {
        char *k = cts_xasprintf("cf:%s", c->cf[i].name);
        rc = put_str(o, k, c->cf[i].value, 0, NULL);
        free(k);
    }
    return rc;
}

static int bulk_item_v2(json_t *o, const struct cts_contact *c,
                        unsigned *cf_mask)
{
    json_t *a = json_array(), *addr, *cfs;
    size_t i;
    int rc = 0;
    rc |= json_array_append_new(a, json_string(c->f[CTS_F_EMAIL]));
    rc |= json_object_set_new(o, "email_addresses", a);
    rc |= put_str(o, "first_name", c->f[CTS_F_FIRST_NAME], 0, NULL);
    rc |= put_str(o, "last_name", c->f[CTS_F_LAST_NAME], 0, NULL);
    rc |= put_str(o, "company_name", c->f[CTS_F_COMPANY_NAME], 0, NULL);
    rc |= put_str(o, "job_title", c->f[CTS_F_JOB_TITLE], 0, NULL);
    rc |= put_str(o, "work_phone", c->f[CTS_F_PHONE], 0, NULL);
    rc |= put_str(o, "birthday_month", c->f[CTS_F_BIRTHDAY_MONTH], 0, NULL);
    rc |= put_str(o, "birthday_day", c->f[CTS_F_BIRTHDAY_DAY], 0, NULL);
    rc |= put_str(o, "anniversary", c->f[CTS_F_ANNIVERSARY], 0, NULL);
    if (c->f[CTS_F_STREET] || c->f[CTS_F_CITY] || c->f[CTS_F_STATE] ||
        c->f[CTS_F_POSTAL_CODE] || c->f[CTS_F_COUNTRY]) {
        addr = json_object();
        rc |= put_str(addr, "line1", c->f[CTS_F_STREET], 0, NULL);
        rc |= put_str(addr, "city", c->f[CTS_F_CITY], 0, NULL);
        /* Bulk state_code is free text (50 characters), unlike the
         * contact resource's two-letter code. */
        rc |= put_str(addr, "state_code", c->f[CTS_F_STATE], 0, NULL);
        rc |= put_str(addr, "postal_code", c->f[CTS_F_POSTAL_CODE], 0, NULL);
        rc |= put_str(addr, "country_code", c->f[CTS_F_COUNTRY], 0, NULL);
        rc |= put_str(addr, "address_type", "PERSONAL", 0, NULL);
        a = json_array();
        rc |= json_array_append_new(a, addr);
        rc |= json_object_set_new(o, "addresses", a);
    }
    if (c->ncf > 0) {
        cfs = json_array();
        for (i = 0; i < c->ncf; i++) {
            int n = v2_cf_number(c->cf[i].name);
            json_t *f;
            char nm[32];
            if (n == 0 || c->cf[i].value == NULL)
                continue; /* v2 has only CustomField1..15 */
            snprintf(nm, sizeof(nm), "custom_field_%d", n);
            f = json_object();
            rc |= put_str(f, "name", nm, 0, NULL);
            rc |= put_str(f, "value", c->cf[i].value, 0, NULL);
            rc |= json_array_append_new(cfs, f);
            *cf_mask |= 1u << n;
        }
        rc |= json_object_set_new(o, "custom_fields", cfs);
    }
    return rc;
}

char *cts_api_bulk_item(enum cts_api api, const struct cts_contact *c,
                        unsigned *cf_mask)
{
    json_t *o = json_object();
    char *s = NULL;
    if (o != NULL && (api == CTS_API_V3 ? bulk_item_v3(o, c)
                                        : bulk_item_v2(o, c, cf_mask)) == 0)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

char *cts_api_bulk_tail(enum cts_api api, char *const *lists, size_t nlists,
                        unsigned cf_mask)
{
    static const char *const base[] = {
        "EMAIL",           "FIRST NAME", "LAST NAME",
        "COMPANY NAME",    "JOB TITLE",  "WORK PHONE",
        "ADDRESS LINE 1",  "CITY",       "US STATE/CA PROVINCE",
        "ZIP/POSTAL CODE", "COUNTRY",    "BIRTHDAY_MONTH",
        "BIRTHDAY_DAY",    "ANNIVERSARY"};
    json_t *a = string_array(lists, nlists);
    char *l = json_dumps(a, JSON_COMPACT), *cn, *out;
    size_t i;
    int n;
    json_decref(a);
    if (api == CTS_API_V3) {
        out = cts_xasprintf("],\"list_ids\":%s}", l);
        free(l);
        return out;
    }
    a = json_array();
    for (i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        json_array_append_new(a, json_string(base[i]));
    for (n = 1; n <= 15; n++) {
        if (cf_mask & (1u << n)) {
            char nm[32];
            snprintf(nm, sizeof(nm), "CUSTOM FIELD %d", n);
            json_array_append_new(a, json_string(nm));
        }
    }
    cn = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    out = cts_xasprintf("],\"lists\":%s,\"column_names\":%s}", l, cn);
    free(l);
    free(cn);
    return out;
}

/* ---------------------------------------------------------------- */
/* parsers                                                          */

static void take_first_error(const json_t *e, char **key, char **msg)
{
    if (json_is_string(e)) {
        /* Bulk activity errors can be plain strings (php-sdk #145). */
        if (*msg == NULL)
            *msg = cts_xstrdup(json_string_value(e));
        return;
    }
    if (!json_is_object(e))
        return;
    if (*key == NULL)
        *key = member_str(e, "error_key");
    if (*key == NULL)
        *key = member_str(e, "error"); /* OAuth */
    if (*msg == NULL)
        *msg = member_str(e, "error_message");
    if (*msg == NULL)
        *msg = member_str(e, "error_description");
    if (*msg == NULL)
        *msg = member_str(e, "message");
}

int cts_api_parse_error(const char *body, size_t len, char **error_key,
                        char **message)
{
    json_t *root = load(body, len), *e;
    char *key = NULL, *msg = NULL;
    size_t i;

    if (error_key != NULL)
        *error_key = NULL;
    if (message != NULL)
        *message = NULL;
    if (json_is_array(root)) {
        json_array_foreach(root, i, e)
        {
            take_first_error(e, &key, &msg);
            if (key != NULL || msg != NULL)
                break;
        }
    } else if (json_is_object(root)) {
        take_first_error(root, &key, &msg);
        /* Some wrappers nest the list: {"errors":[...]} */
        if (key == NULL && msg == NULL) {
            e = json_object_get(root, "errors");
            if (json_is_array(e) && json_array_size(e) > 0)
                take_first_error(json_array_get(e, 0), &key, &msg);
        }
    } else if (json_is_string(root)) {
        take_first_error(root, &key, &msg);
    }
    json_decref(root);
    if (key == NULL && msg == NULL)
        return CTS_EJSON;
    if (error_key != NULL)
        *error_key = key;
    else
        free(key);
    if (message != NULL)
        *message = msg;
    else
        free(msg);
    return 0;
}

/* Parse an object and copy one required string member. */
static int one_member(const char *body, size_t len, const char *name,
                      char **out)
{
    json_t *root = load(body, len);
    *out = NULL;
    if (json_is_object(root))
        *out = member_str(root, name);
    json_decref(root);
    return *out != NULL ? 0 : CTS_EJSON;
}

int cts_api_v3_parse_signup(const char *body, size_t len, char **contact_id,
                            char **action)
{
    json_t *root = load(body, len);
    *contact_id = NULL;
    if (action != NULL)
        *action = NULL;
    if (json_is_object(root)) {
        *contact_id = member_str(root, "contact_id");
        if (*contact_id != NULL && action != NULL)
            *action = member_str(root, "action");
    }
    json_decref(root);
    return *contact_id != NULL ? 0 : CTS_EJSON;
}

int cts_api_v3_parse_contact_id(const char *body, size_t len, char **contact_id)
{
    return one_member(body, len, "contact_id", contact_id);
}

int cts_api_v2_parse_contact_id(const char *body, size_t len, char **id)
{
    return one_member(body, len, "id", id);
}

int cts_api_v2_parse_search(const char *body, size_t len, char **id,
                            char **contact_json)
{
    json_t *root = load(body, len), *results, *first;
    int rc = CTS_EJSON;

    *id = NULL;
    if (contact_json != NULL)
        *contact_json = NULL;
    results = json_object_get(root, "results");
    if (json_is_array(results)) {
        rc = 0;
        first = json_array_get(results, 0);
        if (first != NULL) {
            *id = json_is_object(first) ? member_str(first, "id") : NULL;
            if (*id == NULL)
                rc = CTS_EJSON;
            else if (contact_json != NULL) {
                *contact_json = json_dumps(first, JSON_COMPACT);
                if (*contact_json == NULL) {
                    free(*id);
                    *id = NULL;
                    rc = UV_ENOMEM;
                }
            }
        }
    }
    json_decref(root);
    return rc;
}

int cts_api_parse_tokeninfo(const char *body, size_t len, char **client_id,
                            char **user_name, long *expires_in)
{
    json_t *root = load(body, len);
    *client_id = NULL;
    if (user_name != NULL)
        *user_name = NULL;
    if (expires_in != NULL)
        *expires_in = -1;
    if (json_is_object(root)) {
        *client_id = member_str(root, "client_id");
        if (*client_id != NULL) {
            if (user_name != NULL)
                *user_name = member_str(root, "user_name");
            if (expires_in != NULL)
                *expires_in = member_long(root, "expires_in", -1);
        }
    }
    json_decref(root);
    return *client_id != NULL ? 0 : CTS_EJSON;
}

int cts_api_parse_account_summary(const char *body, size_t len,
                                  char **encoded_account_id,
                                  char **organization_name)
{
    json_t *root = load(body, len);
    *encoded_account_id = NULL;
    if (organization_name != NULL)
        *organization_name = NULL;
    if (json_is_object(root)) {
        *encoded_account_id = member_str(root, "encoded_account_id");
        if (*encoded_account_id != NULL && organization_name != NULL)
            *organization_name = member_str(root, "organization_name");
    }
    json_decref(root);
    return *encoded_account_id != NULL ? 0 : CTS_EJSON;
}

void cts_list_info_free(struct cts_list_info *lists, size_t n)
{
    size_t i;
    if (lists == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(lists[i].id);
        free(lists[i].name);
    }
    free(lists);
}

int cts_api_parse_lists(enum cts_api api, const char *body, size_t len,
                        struct cts_list_info **lists, size_t *n)
{
    json_t *root = load(body, len), *arr, *it;
    struct cts_list_info *v = NULL;
    size_t i, k = 0;

    *lists = NULL;
    *n = 0;
    arr = api == CTS_API_V2 ? root : json_object_get(root, "lists");
    if (!json_is_array(arr)) {
        json_decref(root);
        return CTS_EJSON;
    }
    v = cts_xcalloc(json_array_size(arr) + 1, sizeof(*v));
    json_array_foreach(arr, i, it)
    {
        char *id;
        if (!json_is_object(it))
            continue;
        id = member_str(it, api == CTS_API_V2 ? "id" : "list_id");
        if (id == NULL)
            continue;
        v[k].id = id;
        v[k].name = member_str(it, "name");
        v[k].member_count = member_long(
            it, api == CTS_API_V2 ? "contact_count" : "membership_count", -1);
        k++;
    }
    json_decref(root);
    *lists = v;
    *n = k;
    return 0;
}

const char *cts_cf_ids_find(const struct cts_cf_ids *m, const char *name)
{
    size_t i;
    if (m == NULL || name == NULL)
        return NULL;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0)
            return m->v[i].id;
    for (i = 0; i < m->n; i++)
        if (cts_streq_nocase(m->v[i].name, name))
            return m->v[i].id;
    return NULL;
}

void cts_cf_ids_free(struct cts_cf_ids *m)
{
    size_t i;
    if (m == NULL)
        return;
    for (i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].id);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

int cts_api_parse_custom_fields(const char *body, size_t len,
                                struct cts_cf_ids *out)
{
    json_t *root = load(body, len), *arr, *it;
    size_t i, k = 0;

    cts_cf_ids_free(out);
    arr = json_object_get(root, "custom_fields");
    if (!json_is_array(arr)) {
        json_decref(root);
        return CTS_EJSON;
    }
    out->v = cts_xcalloc(json_array_size(arr) + 1, sizeof(*out->v));
    json_array_foreach(arr, i, it)
    {
        char *id = member_str(it, "custom_field_id");
        /* `name` is the API's key for a field; older replies and the
         * bulk vocabulary use the label, so fall back to it. */
        char *name = member_str(it, "name");
        if (name == NULL)
            name = member_str(it, "label");
        if (id == NULL || name == NULL) {
            free(id);
            free(name);
            continue;
        }
        out->v[k].id = id;
        out->v[k].name = name;
        k++;
    }
    out->n = k;
    json_decref(root);
    return 0;
}

int cts_api_parse_token(const char *body, size_t len, struct cts_api_token *out)
{
    json_t *root = load(body, len);
    memset(out, 0, sizeof(*out));
    out->expires_in = -1;
    if (json_is_object(root)) {
        out->access_token = member_str(root, "access_token");
        if (out->access_token != NULL) {
            out->refresh_token = member_str(root, "refresh_token");
            out->token_type = member_str(root, "token_type");
            out->scope = member_str(root, "scope");
            out->expires_in = member_long(root, "expires_in", -1);
        }
    }
    json_decref(root);
    return out->access_token != NULL ? 0 : CTS_EJSON;
}

void cts_api_token_free(struct cts_api_token *t)
{
    if (t == NULL)
        return;
    free(t->access_token);
    free(t->refresh_token);
    free(t->token_type);
    free(t->scope);
    memset(t, 0, sizeof(*t));
    t->expires_in = -1;
}

char *cts_api_url(const char *base, const char *path, const char *api_key,
                  const char *query)
{
    struct cts_buf b;
    size_t blen = base != NULL ? strlen(base) : 0;
    char sep;

    cts_buf_init(&b, 0);
    /* Join with exactly one slash whatever the user's --base-url ends in. */
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    cts_buf_append(&b, base != NULL ? base : "", blen);
    if (path != NULL && *path != '\0') {
        if (*path != '/')
            cts_buf_putc(&b, '/');
        cts_buf_append(&b, path, strlen(path));
    }
    sep = strchr(b.data != NULL ? b.data : "", '?') != NULL ? '&' : '?';
    if (api_key != NULL) {
        char *k = cts_url_escape(api_key);
        cts_buf_appendf(&b, "%capi_key=%s", sep, k);
        free(k);
        sep = '&';
    }
    if (query != NULL && *query != '\0')
        cts_buf_appendf(&b, "%c%s", sep, query);
    return cts_buf_detach(&b);
}
