/* test_mapper.c — header mapping, --map, per-field validation per API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_mapper.h"

struct fake_row {
    struct cts_row row;
    const char *f[16];
    size_t len[16];
};

static const struct cts_row *mkrow(struct fake_row *fr, long n, ...)
{
    va_list ap;
    const char *s;
    size_t k = 0;

    memset(fr, 0, sizeof(*fr));
    va_start(ap, n);
    while ((s = va_arg(ap, const char *)) != NULL && k < 16) {
        fr->f[k] = s;
        fr->len[k] = strlen(s);
        k++;
    }
    va_end(ap);
    fr->row.file = "t.csv";
    fr->row.row = n;
    fr->row.line = n + 1;
    fr->row.nfields = k;
    fr->row.fields = fr->f;
    fr->row.lens = fr->len;
    return &fr->row;
}

static struct cts_mapper *new_mapper(enum cts_api api, struct cts_map *maps,
                                     size_t nmaps, const struct cts_row *h,
                                     struct cts_error *err)
{
    struct cts_mapper_opts o = {api, maps, nmaps, "t.csv", 0};
    memset(err, 0, sizeof(*err));
    return cts_mapper_new(&o, h, err);
}

static void test_normalize(void **state)
{
    static const char *const cases[][2] = {
        {"  E-Mail Address ", "emailaddress"},
        {"\xEF\xBB\xBF"
         "Email",
         "email"},
        {"FIRST_NAME", "firstname"},
        {"Email Address *", "emailaddress"},
        {"*First Name*", "firstname"},
        {"first.name", "firstname"},
        {"Zip\xC2\xA0"
         "Code",
         "zipcode"},
        {"SOCI\xC3\x89T\xC3\x89", "soci\xC3\xA9t\xC3\xA9"},
        {"\xD0\x98\xD0\xBC\xD1\x8F", "\xD0\xB8\xD0\xBC\xD1\x8F"},
        {"", ""},
        {" \t ", ""},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *n = cts_header_normalize(cases[i][0]);
        assert_string_equal(n, cases[i][1]);
        free(n);
    }
}

static void test_aliases_and_describe(void **state)
{
    struct fake_row h;
    struct cts_error err;
    struct cts_mapper *m;
    const char *const *names;
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;
    m = new_mapper(CTS_API_V3, NULL, 0,
                   mkrow(&h, 0, "E-mail", "Given Name", "Surname",
                         "Organization", "Title", "Phone", "Street", "City",
                         "State", "Postcode", "Country", "Birthday Month",
                         "Birthday_Day", "Anniversary", "Notes", "", NULL),
                   &err);
    assert_non_null(m);
    assert_int_equal(cts_mapper_unmapped(m, &names), 1);
    assert_string_equal(names[0], "Notes");
    f = open_memstream(&text, &len);
    cts_mapper_describe(m, f);
    fclose(f);
    assert_non_null(strstr(text, "\"E-mail\" -> email\n"));
    assert_non_null(strstr(text, "\"Given Name\" -> first_name\n"));
    assert_non_null(strstr(text, "\"Organization\" -> company_name\n"));
    assert_non_null(strstr(text, "\"Postcode\" -> postal_code\n"));
    assert_non_null(strstr(text, "\"Notes\" -> (ignored)\n"));
    assert_non_null(strstr(text, "column 16 (no header) -> (ignored)\n"));
    free(text);
    cts_mapper_free(m);
}

/* Headers as real exports write them: each maps without --map, and the
 * columns that could mean several fields stay unmapped. */
static void test_export_headers(void **state)
{
    static const char *const expect[][2] = {
        {"\"E-mail Address\" -> email\n", "outlook"},
        {"\"Business Phone\" -> (ignored)\n", "outlook"},
        {"\"E-mail 1 - Value\" -> email\n", "google"},
        {"\"Address 1 - Street\" -> street\n", "google"},
        {"\"Organization 1 - Name\" -> company_name\n", "google"},
        {"\"State/Region\" -> state\n", "hubspot"},
        {"\"Country/Region\" -> country\n", "hubspot"},
        {"\"Mailing Zip/Postal Code\" -> postal_code\n", "salesforce"},
        {"\"Prénom\" -> first_name\n", "french"},
        {"\"NOM\" -> last_name\n", "french"},
        {"\"Société\" -> company_name\n", "french"},
        {"\"Code postal\" -> postal_code\n", "french"},
        {"\"E-Mail-Adresse\" -> email\n", "german"},
        {"\"PLZ\" -> postal_code\n", "german"},
        {"\"Straße\" -> street\n", "german"},
        {"\"Correo electrónico\" -> email\n", "spanish"},
        {"\"Código Postal\" -> postal_code\n", "spanish"},
    };
    struct fake_row h;
    struct cts_error err;
    struct cts_mapper *m[7];
    char *text[7] = {NULL};
    size_t len, i, k;
    FILE *f;
    (void)state;
    m[0] = new_mapper(CTS_API_V3, NULL, 0,
                      mkrow(&h, 0, "First Name", "Last Name", "Company",
                            "Job Title", "Business Phone", "Mobile Phone",
                            "E-mail Address", NULL),
                      &err);
    assert_non_null(m[0]);
    m[1] = new_mapper(CTS_API_V3, NULL, 0,
                      mkrow(&h, 0, "Given Name", "Family Name",
                            "E-mail 1 - Value", "Phone 1 - Value",
                            "Organization 1 - Name", "Organization 1 - Title",
                            "Address 1 - Street", "Address 1 - City", NULL),
                      &err);
    assert_non_null(m[1]);
    m[2] =
        new_mapper(CTS_API_V3, NULL, 0,
                   mkrow(&h, 0, "Email", "First Name", "Last Name",
                         "Phone Number", "Street Address", "City",
                         "State/Region", "Postal Code", "Country/Region", NULL),
                   &err);
    assert_non_null(m[2]);
    m[3] = new_mapper(CTS_API_V3, NULL, 0,
                      mkrow(&h, 0, "Salutation", "First Name", "Last Name",
                            "Title", "Email", "Mailing Street", "Mailing City",
                            "Mailing State/Province", "Mailing Zip/Postal Code",
                            "Mailing Country", NULL),
                      &err);
    assert_non_null(m[3]);
    m[4] = new_mapper(CTS_API_V3, NULL, 0,
                      mkrow(&h, 0, "Courriel", "Prénom", "NOM", "Société",
                            "Ville", "Code postal", "Pays", NULL),
                      &err);
    assert_non_null(m[4]);
    m[5] = new_mapper(CTS_API_V3, NULL, 0,
                      mkrow(&h, 0, "Vorname", "Nachname", "E-Mail-Adresse",
                            "Firma", "Straße", "PLZ", "Ort", "Land", NULL),
                      &err);
    assert_non_null(m[5]);
    m[6] =
        new_mapper(CTS_API_V3, NULL, 0,
                   mkrow(&h, 0, "Nombre", "Apellidos", "Correo electrónico",
                         "Empresa", "Teléfono", "Código Postal", "País", NULL),
                   &err);
    assert_non_null(m[6]);
    for (i = 0; i < 7; i++) {
        f = open_memstream(&text[i], &len);
        cts_mapper_describe(m[i], f);
        fclose(f);
    }
    for (k = 0; k < sizeof(expect) / sizeof(expect[0]); k++) {
        static const char *const kinds[] = {"outlook",    "google", "hubspot",
                                            "salesforce", "french", "german",
                                            "spanish"};
        for (i = 0; strcmp(kinds[i], expect[k][1]) != 0; i++)
            ;
        if (strstr(text[i], expect[k][0]) == NULL)
            fail_msg("%s export: missing %s in\n%s", expect[k][1], expect[k][0],
                     text[i]);
    }
    for (i = 0; i < 7; i++) {
        free(text[i]);
        cts_mapper_free(m[i]);
    }
}

static void test_map_option(void **state)
{
    struct fake_row h, r;
    struct cts_error err;
    struct cts_mapper *m;
    struct cts_contact c;
    struct cts_map maps[] = {{(char *)"email", (char *)"courriel"},
                             {(char *)"First Name", (char *)"PRENOM"},
                             {(char *)"cf:Colour", (char *)"fav colour"},
                             {(char *)"last_name", (char *)"Nom"}};
    const char *const *names;
    (void)state;
    /* --map beats the alias: "Email" stays unmapped, not an error. */
    m = new_mapper(
        CTS_API_V3, maps, 4,
        mkrow(&h, 0, "Email", "Courriel", "Prenom", "Fav_Colour", "Nom", NULL),
        &err);
    assert_non_null(m);
    assert_int_equal(cts_mapper_unmapped(m, &names), 1);
    assert_string_equal(names[0], "Email");
    memset(&c, 0, sizeof(c));
    assert_int_equal(cts_mapper_map(m,
                                    mkrow(&r, 1, "old@x.com", " New@X.com ",
                                          "Ana", "red", "Silva", NULL),
                                    &c, &err),
                     0);
    assert_string_equal(c.f[CTS_F_EMAIL], "new@x.com");
    assert_string_equal(c.f[CTS_F_FIRST_NAME], "Ana");
    assert_string_equal(c.f[CTS_F_LAST_NAME], "Silva");
    assert_int_equal(c.ncf, 1);
    assert_string_equal(c.cf[0].name, "Colour");
    assert_string_equal(c.cf[0].value, "red");
    assert_string_equal(cts_mapper_email_cell(m, &r.row), " New@X.com ");
    cts_contact_free(&c);
    /* An empty custom field value is simply not sent. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(
        cts_mapper_map(m, mkrow(&r, 2, "", "b@x.com", "", "", "", NULL), &c,
                       &err),
        0);
    assert_int_equal(c.ncf, 0);
    assert_null(c.f[CTS_F_FIRST_NAME]);
    cts_contact_free(&c);
    cts_mapper_free(m);
}

static void expect_header_error(struct cts_map *maps, size_t nmaps,
                                const struct cts_row *h, const char *msg)
{
    struct cts_error err;
    struct cts_mapper *m = new_mapper(CTS_API_V3, maps, nmaps, h, &err);

    assert_null(m);
    assert_int_equal(err.code, CTS_EDATA);
    assert_int_equal(err.exit_code, CTS_EX_DATAERR);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", err.msg, msg);
}

static void test_header_errors(void **state)
{
    struct fake_row h;
    struct cts_map twice[] = {{(char *)"email", (char *)"Mail"},
                              {(char *)"cf:backup", (char *)"mail"}};
    struct cts_map missing[] = {{(char *)"first_name", (char *)"Vorname"}};
    struct cts_map unknown[] = {{(char *)"nickname", (char *)"Mail"}};
    struct cts_map dupfield[] = {{(char *)"email", (char *)"Mail"},
                                 {(char *)"email", (char *)"Other"}};
    struct cts_map emptycf[] = {{(char *)"cf:", (char *)"Mail"}};
    struct cts_map many[26];
    char names[26][16];
    const char *hdr[27];
    struct fake_row big;
    size_t i;
    (void)state;
    expect_header_error(NULL, 0, mkrow(&h, 0, "Name", "Phone", NULL),
                        "no email column (headers seen: \"Name\", \"Phone\")");
    expect_header_error(twice, 2, mkrow(&h, 0, "Mail", "Name", NULL),
                        "header \"Mail\" is claimed by both email and "
                        "cf:backup");
    expect_header_error(missing, 1, mkrow(&h, 0, "email", "Name", NULL),
                        "--map first_name=Vorname: no such header (headers "
                        "seen: \"email\", \"Name\")");
    expect_header_error(unknown, 1, mkrow(&h, 0, "Mail", NULL),
                        "unknown field");
    expect_header_error(dupfield, 2, mkrow(&h, 0, "Mail", "Other", NULL),
                        "mapped twice");
    expect_header_error(emptycf, 1, mkrow(&h, 0, "Mail", NULL),
                        "empty custom field name");
    expect_header_error(NULL, 0, mkrow(&h, 0, "Email", "E-mail", "Name", NULL),
                        "columns \"Email\" and \"E-mail\" both map to email");
    expect_header_error(twice, 1, mkrow(&h, 0, "Mail", "MAIL", NULL),
                        "more than one column");
    h.row.problem = "NUL byte in field 1";
    mkrow(&h, 0, "email", NULL);
    h.row.problem = "NUL byte in field 1";
    expect_header_error(NULL, 0, &h.row, "header row: NUL byte");
    /* At most 25 custom fields (the API's limit per contact). */
    memset(&big, 0, sizeof(big));
    hdr[0] = "email";
    for (i = 0; i < 26; i++) {
        snprintf(names[i], sizeof(names[i]), "c%zu", i);
        many[i].field = cts_xasprintf("cf:%s", names[i]);
        many[i].header = names[i];
        hdr[i + 1] = names[i];
    }
    big.row.nfields = 27;
    big.row.fields = hdr;
    {
        size_t lens[27];
        for (i = 0; i < 27; i++)
            lens[i] = strlen(hdr[i]);
        big.row.lens = lens;
        expect_header_error(many, 26, &big.row, "more than 25 custom fields");
    }
    for (i = 0; i < 26; i++)
        free(many[i].field);
}

/* Map one row under a header, return the rc and the message. */
static int map1(enum cts_api api, const struct cts_row *h,
                const struct cts_row *r, struct cts_contact *c, char *msg)
{
    struct cts_error err;
    struct cts_mapper *m = new_mapper(api, NULL, 0, h, &err);
    int rc;

    assert_non_null(m);
    memset(c, 0, sizeof(*c));
    memset(&err, 0, sizeof(err));
    rc = cts_mapper_map(m, r, c, &err);
    snprintf(msg, 512, "%s", err.msg);
    if (rc != 0)
        assert_int_equal(err.row, r->row);
    cts_mapper_free(m);
    return rc;
}

static void test_validation(void **state)
{
    struct fake_row h, r;
    struct cts_contact c;
    char msg[512], long51[52], email51[60];
    (void)state;
    mkrow(&h, 0, "email", "first_name", "phone", "birthday_month",
          "birthday_day", "anniversary", NULL);
    memset(long51, 'x', 51);
    long51[51] = '\0';
    /* 50 two-byte characters are 50 characters, not 100. */
    {
        char e50[101];
        size_t i;
        for (i = 0; i < 50; i++)
            memcpy(e50 + 2 * i, "\xC3\xA9", 2);
        e50[100] = '\0';
        assert_int_equal(map1(CTS_API_V3, &h.row,
                              mkrow(&r, 1, "a@b.co", e50, "", "", "", "", NULL),
                              &c, msg),
                         0);
        cts_contact_free(&c);
    }
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 2, "a@b.co", long51, "", "", "", "", NULL),
                          &c, msg),
                     CTS_EDATA);
    assert_string_equal(msg,
                        "column \"first_name\" is longer than 50 characters");
    /* Even an invalid row keeps its (normalised or raw) email. */
    assert_string_equal(c.f[CTS_F_EMAIL], "a@b.co");
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 3, "a@b.co", "",
                                "12345678901234567890123456", "", "", "", NULL),
                          &c, msg),
                     CTS_EDATA);
    assert_string_equal(msg, "column \"phone\" is longer than 25 characters");
    cts_contact_free(&c);
    /* Email length: 51 characters is too long for v3, fine for v2. */
    memset(email51, 'e', 51);
    memcpy(email51 + 51 - 8, "@x.co.uk", 8);
    email51[51] = '\0';
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 4, email51, "", "", "", "", "", NULL), &c,
                          msg),
                     CTS_EDATA);
    assert_non_null(
        strstr(msg, "column \"email\" is longer than 50 characters"));
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V2, &h.row,
                          mkrow(&r, 4, email51, "", "", "", "", "", NULL), &c,
                          msg),
                     0);
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 5, "  ", "Jo", "", "", "", "", NULL), &c,
                          msg),
                     CTS_EDATA);
    assert_string_equal(msg, "column \"email\" is empty");
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 6, "Bad Mail", "", "", "", "", "", NULL),
                          &c, msg),
                     CTS_EDATA);
    assert_string_equal(msg, "column \"email\": contains a space");
    assert_string_equal(c.f[CTS_F_EMAIL], "Bad Mail");
    cts_contact_free(&c);
    /* Birthdays and anniversaries. */
    assert_int_equal(
        map1(CTS_API_V3, &h.row,
             mkrow(&r, 7, "a@b.co", "", "", "02", "29", "2016-02-29", NULL), &c,
             msg),
        0);
    assert_string_equal(c.f[CTS_F_BIRTHDAY_MONTH], "02");
    assert_string_equal(c.f[CTS_F_ANNIVERSARY], "2016-02-29");
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 8, "a@b.co", "", "", "4", "31", "", NULL),
                          &c, msg),
                     CTS_EDATA);
    assert_non_null(strstr(msg, "month 4 has no day 31"));
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 9, "a@b.co", "", "", "", "5", "", NULL), &c,
                          msg),
                     CTS_EDATA);
    assert_string_equal(msg, "column \"birthday_day\" is given without "
                             "birthday_month");
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 10, "a@b.co", "", "", "May", "5", "", NULL),
                          &c, msg),
                     CTS_EDATA);
    assert_non_null(
        strstr(msg, "column \"birthday_month\": \"May\" is not a month"));
    cts_contact_free(&c);
    {
        static const char *const good[] = {"12/31/1999", "1/2/2003",
                                           "2003/01/02", "1999-7-4"};
        static const char *const bad[] = {
            "31/12/1999", "1999-02-30", "2003-1-2-3",  "yesterday",
            "1850-01-01", "12/31/99",   "2020-01-01x", "01-02-2003x"};
        size_t i;
        for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
            assert_int_equal(
                map1(CTS_API_V3, &h.row,
                     mkrow(&r, 11, "a@b.co", "", "", "", "", good[i], NULL), &c,
                     msg),
                0);
            cts_contact_free(&c);
        }
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            if (map1(CTS_API_V3, &h.row,
                     mkrow(&r, 12, "a@b.co", "", "", "", "", bad[i], NULL), &c,
                     msg) != CTS_EDATA)
                fail_msg("anniversary %s accepted", bad[i]);
            assert_non_null(strstr(msg, "anniversary"));
            cts_contact_free(&c);
        }
    }
    /* A row the reader flagged is invalid with the reader's words. */
    mkrow(&r, 13, "a@b.co", "x", NULL);
    r.row.problem = "expected 6 fields, found 2";
    assert_int_equal(map1(CTS_API_V3, &h.row, &r.row, &c, msg), CTS_EDATA);
    assert_string_equal(msg, "expected 6 fields, found 2");
    assert_string_equal(c.f[CTS_F_EMAIL], "a@b.co");
    cts_contact_free(&c);
}

static void test_v2_latin1(void **state)
{
    struct fake_row h, r;
    struct cts_contact c;
    char msg[512], *out;
    uint32_t bad = 0;
    (void)state;
    assert_int_equal(cts_latin1_fit("D\xE2\x80\x99"
                                    "Arcy \xE2\x80\x9C"
                                    "a"
                                    "\xE2\x80\x9D \xE2\x80\x93 \xE2\x80\x94 "
                                    "\xE2\x80\xA6 \xE2\x82\xAC"
                                    "5 caf\xC3\xA9"
                                    "\xE2\x80\x8B",
                                    &out, &bad),
                     0);
    assert_string_equal(out, "D'Arcy \"a\" - - ... EUR5 caf\xC3\xA9");
    free(out);
    assert_int_equal(cts_latin1_fit("\xC5\x81ukasz", &out, &bad), CTS_EDATA);
    assert_null(out);
    assert_int_equal(bad, 0x141);
    assert_int_equal(cts_latin1_fit("\xF0\x9F\x98\x80", &out, &bad), CTS_EDATA);
    assert_int_equal(bad, 0x1F600);
    mkrow(&h, 0, "email", "last_name", "company", NULL);
    assert_int_equal(map1(CTS_API_V2, &h.row,
                          mkrow(&r, 1, "a@b.co", "O\xE2\x80\x99Neil",
                                "\xE2\x80\x9CQ\xE2\x80\x9D", NULL),
                          &c, msg),
                     0);
    assert_string_equal(c.f[CTS_F_LAST_NAME], "O'Neil");
    assert_string_equal(c.f[CTS_F_COMPANY_NAME], "\"Q\"");
    cts_contact_free(&c);
    /* v3 keeps the text as it is. */
    assert_int_equal(map1(CTS_API_V3, &h.row,
                          mkrow(&r, 1, "a@b.co", "O\xE2\x80\x99Neil", "", NULL),
                          &c, msg),
                     0);
    assert_string_equal(c.f[CTS_F_LAST_NAME], "O\xE2\x80\x99Neil");
    cts_contact_free(&c);
    assert_int_equal(map1(CTS_API_V2, &h.row,
                          mkrow(&r, 2, "a@b.co", "\xC5\x81ukasz", "", NULL), &c,
                          msg),
                     CTS_EDATA);
    assert_string_equal(msg,
                        "column \"last_name\": character U+0141 is outside "
                        "ISO-8859-1, which the v2 API rejects");
    cts_contact_free(&c);
    /* An address is never transliterated for v2: refused instead. */
    assert_int_equal(
        map1(CTS_API_V2, &h.row,
             mkrow(&r, 3, "o\xE2\x80\x99neil@example.com", "", "", NULL), &c,
             msg),
        CTS_EDATA);
    assert_string_equal(msg, "column \"email\": character U+2019 is outside "
                             "ISO-8859-1, which the v2 API rejects");
    cts_contact_free(&c);
    /* IDN emails cannot go to v2. */
    assert_int_equal(
        map1(CTS_API_V2, &h.row,
             mkrow(&r, 3, "a@\xD0\xBF\xD1\x80.example", "", "", NULL), &c, msg),
        CTS_EDATA);
    assert_non_null(strstr(msg, "column \"email\": character U+043F"));
    cts_contact_free(&c);
}

/* A bump allocator over a fixed buffer that counts its calls. */
struct bump {
    char buf[4096];
    size_t used;
    int calls;
};

static void *bump_alloc(void *arg, size_t n)
{
    struct bump *b = arg;
    void *p;

    n = (n + 7) & ~(size_t)7;
    assert_true(b->used + n <= sizeof(b->buf));
    p = b->buf + b->used;
    b->used += n;
    b->calls++;
    return p;
}

static int in_bump(const struct bump *b, const void *p)
{
    return (const char *)p >= b->buf && (const char *)p < b->buf + b->used;
}

/* cts_mapper_map_with gives the same contact and errors as cts_mapper_map,
 * with every string (and the custom field array) from the allocator. */
static void test_map_with_allocator(void **state)
{
    struct cts_map maps[] = {{"cf:colour", "Colour"}};
    struct fake_row h, r;
    struct cts_error err;
    struct cts_contact a, b;
    struct cts_mapper *m;
    struct bump *bp = calloc(1, sizeof(*bp));
    int f, rc;
    (void)state;
    assert_non_null(bp);
    mkrow(&h, 0, "Email", "Last Name", "Company", "Colour", NULL);
    m = new_mapper(CTS_API_V2, maps, 1, &h.row, &err);
    assert_non_null(m);
    /* Valid: email normalised, v2 transliteration, a custom field. */
    mkrow(&r, 1, "  Ann@Example.COM ", "O\xE2\x80\x99Neil", "", "red", NULL);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(cts_mapper_map(m, &r.row, &a, NULL), 0);
    assert_int_equal(cts_mapper_map_with(m, &r.row, &b, bump_alloc, bp, NULL),
                     0);
    for (f = 0; f < CTS_F__COUNT; f++) {
        if (a.f[f] == NULL) {
            assert_null(b.f[f]);
            continue;
        }
        assert_string_equal(a.f[f], b.f[f]);
        assert_true(in_bump(bp, b.f[f]));
    }
    assert_string_equal(b.f[CTS_F_EMAIL], "ann@example.com");
    assert_string_equal(b.f[CTS_F_LAST_NAME], "O'Neil");
    assert_int_equal(b.ncf, 1);
    assert_true(in_bump(bp, b.cf));
    assert_string_equal(b.cf[0].name, "colour");
    assert_string_equal(b.cf[0].value, "red");
    assert_true(in_bump(bp, b.cf[0].name) && in_bump(bp, b.cf[0].value));
    assert_true(bp->calls >= 5);
    cts_contact_free(&a);
    /* cts_contact_copy: owned strings that outlive the arena. */
    {
        struct cts_contact c;
        cts_contact_copy(&c, &b);
        memset(bp->buf, 'Z', bp->used);
        assert_false(in_bump(bp, c.f[CTS_F_EMAIL]) || in_bump(bp, c.cf));
        assert_string_equal(c.f[CTS_F_EMAIL], "ann@example.com");
        assert_string_equal(c.f[CTS_F_LAST_NAME], "O'Neil");
        assert_null(c.f[CTS_F_COMPANY_NAME]);
        assert_int_equal(c.ncf, 1);
        assert_string_equal(c.cf[0].name, "colour");
        assert_string_equal(c.cf[0].value, "red");
        cts_contact_free(&c);
    }
    /* Invalid: same message, and the raw email cell is kept. */
    mkrow(&r, 2, "x@y.co", "\xC5\x81ukasz", "", "", NULL);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&err, 0, sizeof(err));
    rc = cts_mapper_map(m, &r.row, &a, &err);
    assert_int_equal(rc, CTS_EDATA);
    assert_int_equal(cts_mapper_map_with(m, &r.row, &b, bump_alloc, bp, &err),
                     CTS_EDATA);
    assert_string_equal(err.msg,
                        "column \"Last Name\": character U+0141 is outside "
                        "ISO-8859-1, which the v2 API rejects");
    assert_string_equal(b.f[CTS_F_EMAIL], "x@y.co");
    assert_true(in_bump(bp, b.f[CTS_F_EMAIL]));
    cts_contact_free(&a);
    cts_mapper_free(m);
    free(bp);
}

/* Opt-out columns: every alias maps, yes/no spellings, a bad value names
 * the column and the value, and a yes row carries only the unsubscription
 * (its other cells cannot make it invalid). */
static void test_opt_out(void **state)
{
    static const char *const opt_headers[] = {"opt_out",
                                              "Opt Out",
                                              "Opted Out",
                                              "Email Opt Out",
                                              "Email Opt-Out",
                                              "Unsubscribed",
                                              "Unsubscribe",
                                              "Do Not Email",
                                              "DoNotEmail",
                                              "HasOptedOutOfEmail",
                                              "Unsubscribed from all email",
                                              "Do not allow Emails"};
    static const char *const yes[] = {"yes",       "Y",        "TRUE",
                                      "1",         " x ",      "Unsubscribed",
                                      "opted out", "Opted Out"};
    static const char *const no[] = {"", "no", "N", "False", "0", "  "};
    struct fake_row h, r;
    struct cts_error err;
    struct cts_contact c;
    struct cts_mapper *m;
    char *text = NULL, *reason;
    size_t len = 0, i;
    FILE *f;
    (void)state;

    for (i = 0; i < sizeof(opt_headers) / sizeof(opt_headers[0]); i++) {
        mkrow(&h, 0, "Email", opt_headers[i], NULL);
        m = new_mapper(CTS_API_V3, NULL, 0, &h.row, &err);
        assert_non_null(m);
        mkrow(&r, 1, "a@b.co", "yes", NULL);
        memset(&c, 0, sizeof(c));
        assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), 0);
        if (c.opt_out != 1)
            fail_msg("header \"%s\" did not map to opt_out", opt_headers[i]);
        cts_contact_free(&c);
        cts_mapper_free(m);
    }

    mkrow(&h, 0, "Email", "First Name", "Birthday Month", "Unsubscribed",
          "Unsubscribe Reason", NULL);
    m = new_mapper(CTS_API_V3, NULL, 0, &h.row, &err);
    assert_non_null(m);
    f = open_memstream(&text, &len);
    cts_mapper_describe(m, f);
    fclose(f);
    assert_non_null(strstr(text, "\"Unsubscribed\" -> opt_out\n"));
    assert_non_null(strstr(text, "\"Unsubscribe Reason\" -> opt_out_reason\n"));
    free(text);

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        mkrow(&r, 1, " Ann@B.co ", "Ann", "14", yes[i], "asked by phone", NULL);
        memset(&c, 0, sizeof(c));
        memset(&err, 0, sizeof(err));
        /* The month 14 would make any other row invalid. */
        if (cts_mapper_map(m, &r.row, &c, &err) != 0)
            fail_msg("\"%s\": %s", yes[i], err.msg);
        assert_int_equal(c.opt_out, 1);
        assert_string_equal(c.f[CTS_F_EMAIL], "ann@b.co");
        assert_null(c.f[CTS_F_FIRST_NAME]);
        assert_string_equal(c.opt_out_reason, "asked by phone");
        cts_contact_free(&c);
        assert_null(c.opt_out_reason);
    }
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        mkrow(&r, 1, "ann@b.co", "Ann", "", no[i], "ignored", NULL);
        memset(&c, 0, sizeof(c));
        assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), 0);
        assert_int_equal(c.opt_out, 0);
        assert_null(c.opt_out_reason);
        assert_string_equal(c.f[CTS_F_FIRST_NAME], "Ann");
        cts_contact_free(&c);
    }
    /* A "no" row is validated as usual. */
    mkrow(&r, 3, "ann@b.co", "Ann", "14", "no", "", NULL);
    memset(&c, 0, sizeof(c));
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_non_null(strstr(err.msg, "column \"Birthday Month\": \"14\""));
    cts_contact_free(&c);
    /* Neither yes nor no: invalid, naming the column as written. */
    mkrow(&r, 4, "ann@b.co", "Ann", "", " maybe ", "", NULL);
    memset(&c, 0, sizeof(c));
    memset(&err, 0, sizeof(err));
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_int_equal(err.row, 4);
    assert_true(strncmp(err.msg,
                        "column \"Unsubscribed\" (opt_out) says \"maybe\"",
                        strlen("column \"Unsubscribed\" (opt_out) says "
                               "\"maybe\"")) == 0);
    assert_int_equal(c.opt_out, 0);
    cts_contact_free(&c);
    /* An opt-out row with a bad email is still invalid (no one to
     * unsubscribe). */
    mkrow(&r, 5, "not-an-email", "", "", "yes", "", NULL);
    memset(&c, 0, sizeof(c));
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_true(strncmp(err.msg, "column \"Email\":", 15) == 0);
    cts_contact_free(&c);
    /* A reason over 255 characters is cut at 255, never split inside a
     * character. */
    reason = malloc(2 * 300 + 1);
    assert_non_null(reason);
    for (i = 0; i < 300; i++)
        memcpy(reason + 2 * i, "\xC3\xA9", 2);
    reason[600] = '\0';
    mkrow(&r, 6, "ann@b.co", "", "", "yes", reason, NULL);
    memset(&c, 0, sizeof(c));
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), 0);
    assert_int_equal(strlen(c.opt_out_reason), 2 * 255);
    cts_contact_free(&c);
    free(reason);
    cts_mapper_free(m);

    /* --map opt_out=HEADER claims a column no alias knows. */
    {
        struct cts_map maps[] = {{"opt_out", "Bounce Flag"},
                                 {"opt_out_reason", "Why"}};
        mkrow(&h, 0, "Email", "Bounce Flag", "Why", NULL);
        m = new_mapper(CTS_API_V2, maps, 2, &h.row, &err);
        assert_non_null(m);
        mkrow(&r, 1, "a@b.co", "X", "spam", NULL);
        memset(&c, 0, sizeof(c));
        assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), 0);
        assert_int_equal(c.opt_out, 1);
        assert_string_equal(c.opt_out_reason, "spam");
        /* A copy keeps the flag and the reason. */
        {
            struct cts_contact d;
            cts_contact_copy(&d, &c);
            assert_int_equal(d.opt_out, 1);
            assert_string_equal(d.opt_out_reason, "spam");
            assert_ptr_not_equal(d.opt_out_reason, c.opt_out_reason);
            cts_contact_free(&d);
        }
        cts_contact_free(&c);
        cts_mapper_free(m);
    }
    /* Two opt-out columns: an error, as for any field. */
    mkrow(&h, 0, "Email", "Unsubscribed", "Do Not Email", NULL);
    assert_null(new_mapper(CTS_API_V3, NULL, 0, &h.row, &err));
    assert_non_null(strstr(err.msg, "both map to opt_out"));
}

static void test_field_limits(void **state)
{
    (void)state;
    assert_int_equal(cts_field_max(CTS_API_V3, CTS_F_EMAIL), 50);
    assert_int_equal(cts_field_max(CTS_API_V2, CTS_F_EMAIL), 80);
    assert_int_equal(cts_field_max(CTS_API_V3, CTS_F_FIRST_NAME), 50);
    assert_int_equal(cts_field_max(CTS_API_V3, CTS_F_PHONE), 25);
    assert_int_equal(cts_field_max(CTS_API_V3, CTS_F_STREET), 255);
    assert_int_equal(cts_field_max(CTS_API_V3, CTS_F_CITY), 50);
}

/* Messages name the column as the person wrote its header, and the field
 * when the header does not say it. */
static void test_column_names(void **state)
{
    struct cts_map maps[] = {{(char *)"first_name", (char *)"Vorname"},
                             {(char *)"cf:colour", (char *)"Lieblingsfarbe"}};
    struct fake_row h, r;
    struct cts_contact c;
    struct cts_error err;
    struct cts_mapper *m;
    char long51[52], cf256[257];
    const char *longhdr = "A very long header that somebody wrote as a "
                          "sentence to explain what the column holds";

    (void)state;
    memset(long51, 'x', 51);
    long51[51] = '\0';
    memset(cf256, 'c', 256);
    cf256[256] = '\0';
    mkrow(&h, 0, "E-Mail Address", "Vorname", "Lieblingsfarbe", "Zip", longhdr,
          NULL);
    m = new_mapper(CTS_API_V3, maps, 2, &h.row, &err);
    assert_non_null(m);
    memset(&c, 0, sizeof(c));
    mkrow(&r, 1, "a@b.co", long51, "", "", "", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_string_equal(err.msg, "column \"Vorname\" (first_name) is longer "
                                 "than 50 characters");
    cts_contact_free(&c);
    mkrow(&r, 2, "a@b.co", "", cf256, "", "", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_string_equal(err.msg, "column \"Lieblingsfarbe\" (cf:colour) is "
                                 "longer than 255 characters");
    cts_contact_free(&c);
    mkrow(&r, 3, "a@", "", "", "", "", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_string_equal(err.msg,
                        "column \"E-Mail Address\": nothing after '@'");
    cts_contact_free(&c);
    /* Which columns anything reads: the unmapped one is not. */
    assert_true(cts_mapper_column_used(m, 0));
    assert_true(cts_mapper_column_used(m, 3));
    assert_false(cts_mapper_column_used(m, 4));
    assert_false(cts_mapper_column_used(m, 5));
    cts_mapper_free(m);
    /* A long header is cut in the message. */
    {
        struct cts_map m2[] = {{(char *)"last_name", (char *)longhdr}};
        mkrow(&h, 0, "email", longhdr, NULL);
        m = new_mapper(CTS_API_V3, m2, 1, &h.row, &err);
        assert_non_null(m);
        mkrow(&r, 1, "a@b.co", long51, NULL);
        assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
        assert_string_equal(err.msg,
                            "column \"A very long header that somebody wrote "
                            "as a sentence to expl...\" (last_name) is longer "
                            "than 50 characters");
        cts_contact_free(&c);
        cts_mapper_free(m);
    }
}

/* An address at a slip of a common domain is invalid with the address
 * meant, unless the run accepts typos. */
static void test_typos(void **state)
{
    struct fake_row h, r;
    struct cts_contact c;
    struct cts_error err;
    struct cts_mapper_opts o = {CTS_API_V3, NULL, 0, "t.csv", 0};
    struct cts_mapper *m;

    (void)state;
    mkrow(&h, 0, "Email", "Name", NULL);
    m = cts_mapper_new(&o, &h.row, &err);
    assert_non_null(m);
    memset(&c, 0, sizeof(c));
    memset(&err, 0, sizeof(err));
    mkrow(&r, 1, " Ann.Lee@GMIAL.com ", "Ann", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_int_equal(err.row, 1);
    assert_string_equal(err.msg,
                        "column \"Email\": did you mean ann.lee@gmail.com? "
                        "(\"gmial.com\" looks like a typo; --accept-typos "
                        "sends it as written)");
    /* The report still shows the address as normalised. */
    assert_string_equal(c.f[CTS_F_EMAIL], "ann.lee@gmial.com");
    cts_contact_free(&c);
    mkrow(&r, 2, "bo@acme.con", "Bo", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), CTS_EDATA);
    assert_non_null(strstr(err.msg, "did you mean bo@acme.com?"));
    cts_contact_free(&c);
    mkrow(&r, 3, "cy@ymail.com", "Cy", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), 0);
    cts_contact_free(&c);
    cts_mapper_free(m);

    o.accept_typos = 1;
    m = cts_mapper_new(&o, &h.row, &err);
    assert_non_null(m);
    mkrow(&r, 1, "ann.lee@gmial.com", "Ann", NULL);
    assert_int_equal(cts_mapper_map(m, &r.row, &c, &err), 0);
    assert_string_equal(c.f[CTS_F_EMAIL], "ann.lee@gmial.com");
    cts_contact_free(&c);
    cts_mapper_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_aliases_and_describe),
        cmocka_unit_test(test_export_headers),
        cmocka_unit_test(test_map_option),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_v2_latin1),
        cmocka_unit_test(test_map_with_allocator),
        cmocka_unit_test(test_opt_out),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_typos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
