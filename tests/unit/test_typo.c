/* test_typo.c — slips in an address's domain are caught with the address
 * meant, and real domains never are (a corpus of thousands, and every
 * top-level domain). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_typo.h"

static void slip(const char *domain, const char *meant)
{
    char buf[256];
    const char *got = cts_typo_domain(domain, strlen(domain), buf, sizeof(buf));

    if (got == NULL)
        fail_msg("\"%s\" not caught (meant %s)", domain, meant);
    if (strcmp(got, meant) != 0)
        fail_msg("\"%s\": suggested %s, expected %s", domain, got, meant);
}

static void fine(const char *domain)
{
    char buf[256];
    const char *got = cts_typo_domain(domain, strlen(domain), buf, sizeof(buf));

    if (got != NULL)
        fail_msg("real domain \"%s\" taken for a slip of %s", domain, got);
}

static void test_one_edit(void **state)
{
    (void)state;
    /* transpositions */
    slip("gmial.com", "gmail.com");
    slip("gamil.com", "gmail.com");
    slip("hotmial.com", "hotmail.com");
    slip("yahoo.ocm", "yahoo.com");
    slip("outlook.cmo", "outlook.com");
    slip("iclodu.com", "icloud.com");
    slip("comcsat.net", "comcast.net");
    /* deletions */
    slip("gmai.com", "gmail.com");
    slip("gmal.com", "gmail.com");
    slip("yaho.com", "yahoo.com");
    slip("hotmai.com", "hotmail.com");
    slip("outlok.com", "outlook.com");
    slip("iclod.com", "icloud.com");
    slip("gmail.co", "gmail.com");
    slip("hotmail.co", "hotmail.com");
    slip("gmail.cm", "gmail.com");
    slip("yahoo.om", "yahoo.com");
    slip("sbcglobl.net", "sbcglobal.net");
    slip("yahoo.co.k", "yahoo.co.uk");
    /* insertions */
    slip("gmaill.com", "gmail.com");
    slip("yahooo.com", "yahoo.com");
    slip("hottmail.com", "hotmail.com");
    slip("googlemaill.com", "googlemail.com");
    slip("hotmail.co.ukk", "hotmail.co.uk");
    slip("verizon.nett", "verizon.net");
    /* substitutions */
    slip("gmsil.com", "gmail.com");
    slip("yshoo.com", "yahoo.com");
    slip("hotmail.cim", "hotmail.com");
    slip("outlool.com", "outlook.com");
    slip("bellsoutj.net", "bellsouth.net");
    slip("comcast.met", "comcast.net");
}

static void test_tld_slips(void **state)
{
    static const char *const com[] = {"con", "cmo", "comm", "c0m", "ocm",
                                      "vom", "xom", "coom", "cpm", "cim"};
    char d[64], want[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(com) / sizeof(com[0]); i++) {
        snprintf(d, sizeof(d), "acme-widgets.%s", com[i]);
        slip(d, "acme-widgets.com");
    }
    slip("isp.nte", "isp.net");
    slip("isp.ent", "isp.net");
    slip("charity.ogr", "charity.org");
    slip("charity.rog", "charity.org");
    slip("mail.school.eud", "mail.school.edu");
    slip("example.co.uk.con", "example.co.uk.com");
    /* Two slips at once: the top level, then the common domain. */
    slip("gmial.con", "gmail.com");
    slip("yahooo.cmo", "yahoo.com");
    /* A top-level slip of a real neighbour stays that neighbour. */
    slip("mail.con", "mail.com");
    slip("aol.con", "aol.com");
    /* The suggestion must fit the caller's buffer. */
    assert_null(cts_typo_domain("gmial.com", 9, want, 9));
    assert_non_null(cts_typo_domain("gmial.com", 9, want, 10));
}

static void test_real_domains(void **state)
{
    (void)state;
    /* The common domains themselves, their real neighbours and the short
     * domains whose neighbours are real companies. */
    fine("gmail.com");
    fine("yahoo.co.uk");
    fine("mail.com");
    fine("email.com");
    fine("ymail.com");
    fine("cloud.com");
    fine("gmx.com");
    fine("aim.com");
    fine("mac.com");
    fine("me.com");
    fine("msn.com");
    fine("live.com");
    fine("aon.com");
    fine("ao.com");
    fine("ge.com");
    fine("ms.com");
    fine("hotmail.fr");
    fine("yahoo.fr");
    fine("outlook.fr");
    fine("yahoo.co.jp");
    fine("hotmail.com.br");
    fine("yahoo.ca");
    fine("mx.gmail.com");
    /* Real top-level domains that look like slips. */
    fine("example.cm");
    fine("example.co");
    fine("example.om");
    fine("example.ne");
    fine("example.bet");
    /* IDN domains are left alone. */
    fine("gma\xC3\xADl.com");
    fine("");
}

static void test_suggest_address(void **state)
{
    char *s;

    (void)state;
    s = cts_typo_suggest("ann.lee+news@gmial.com");
    assert_non_null(s);
    assert_string_equal(s, "ann.lee+news@gmail.com");
    free(s);
    s = cts_typo_suggest("\"a@b\"@hotmail.con");
    assert_non_null(s);
    assert_string_equal(s, "\"a@b\"@hotmail.com");
    free(s);
    assert_null(cts_typo_suggest("ann@gmail.com"));
    assert_null(cts_typo_suggest("no-at-sign"));
}

/* Lines of a file under tests/data (the suite runs from the top dir), with
 * comments and blank lines skipped; calls fn on each. */
static size_t each_line(const char *name, void (*fn)(const char *line))
{
    char path[512], line[512];
    char *dir = strdup(__FILE__), *slash;
    size_t n = 0, len;
    FILE *f;

    assert_non_null(dir);
    slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(path, sizeof(path), "%s/../data/%s", slash != NULL ? dir : ".",
             name);
    free(dir);
    f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        fn(line);
        n++;
    }
    fclose(f);
    return n;
}

static void fine_tld(const char *tld)
{
    char d[300];

    snprintf(d, sizeof(d), "example.%s", tld);
    fine(d);
}

static void test_corpus_no_false_positive(void **state)
{
    (void)state;
    /* Thousands of real mail providers, company and university domains. */
    assert_true(each_line("real_domains.txt", fine) > 10000);
    /* No real top-level domain is taken for a slip. */
    assert_true(each_line("tlds.txt", fine_tld) > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_edit),
        cmocka_unit_test(test_tld_slips),
        cmocka_unit_test(test_real_domains),
        cmocka_unit_test(test_suggest_address),
        cmocka_unit_test(test_corpus_no_false_positive),
    };
    return cmocka_run_group_tests_name("typo", tests, NULL, NULL);
}
