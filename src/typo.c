/*
 * typo.c — slips in an address's domain (see cts_typo.h).
 *
 * A bounce costs the account sender reputation, so an address at
 * "gmial.com" is worth a question before it is sent.  But a false alarm
 * keeps a real person off the list, so the rules are narrow: a handful of
 * very common mailbox domains, long enough that their one-letter
 * neighbours are not real companies, and top-level slips that are no
 * top-level domain at all.  The lists are small on purpose; the README
 * shows them.
 */
#include "cts_typo.h"

#include <stdlib.h>
#include <string.h>

#include "cts_util.h"

/* The targets: a domain one edit away from one of these is taken for it.
 * Most common first: the first that matches wins. */
static const char *const common[] = {
    "gmail.com",     "yahoo.com",     "hotmail.com",    "outlook.com",
    "icloud.com",    "comcast.net",   "googlemail.com", "yahoo.co.uk",
    "hotmail.co.uk", "sbcglobal.net", "verizon.net",    "bellsouth.net",
};

/* Real domains one edit away from a target: never slips.  Mail services
 * named "<letter>mail" (ymail.com is Yahoo's own), Citrix's cloud.com. */
static const char *const real[] = {
    "amail.com", "cloud.com", "cmail.com", "email.com", "mail.com",
    "qmail.com", "tmail.com", "wahoo.com", "xmail.com", "ymail.com",
};

/* Top-level slips, none of them a top-level domain (checked in
 * test_typo against the Public Suffix List): the last label and what it
 * meant.  .cm (Cameroon), .co (Colombia), .om (Oman), .ne (Niger) and
 * .bet are real and absent on purpose. */
static const struct {
    const char *slip, *meant;
} tld_slips[] = {
    {"con", "com"}, {"cmo", "com"}, {"comm", "com"}, {"c0m", "com"},
    {"ocm", "com"}, {"vom", "com"}, {"xom", "com"},  {"coom", "com"},
    {"cpm", "com"}, {"cim", "com"}, {"ccom", "com"}, {"comn", "com"},
    {"clm", "com"}, {"cmm", "com"}, {"copm", "com"}, {"nte", "net"},
    {"ent", "net"}, {"ner", "net"}, {"nett", "net"}, {"met", "net"},
    {"ney", "net"}, {"ogr", "org"}, {"rog", "org"},  {"orgg", "org"},
    {"prg", "org"}, {"irg", "org"}, {"eud", "edu"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *const *list, size_t n, const char *d, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strlen(list[i]) == len && memcmp(list[i], d, len) == 0)
            return 1;
    return 0;
}

/* Is s[0..ls) exactly one edit from t: one byte inserted, dropped or
 * changed, or two neighbours swapped (Damerau's four slips)? */
static int one_edit(const char *s, size_t ls, const char *t, size_t lt)
{
    size_t i = 0, m = ls < lt ? ls : lt;

    if (ls > lt + 1 || lt > ls + 1)
        return 0;
    while (i < m && s[i] == t[i])
        i++;
    if (ls == lt) {
        if (i == ls)
            return 0; /* equal */
        if (memcmp(s + i + 1, t + i + 1, ls - i - 1) == 0)
            return 1; /* changed */
        return i + 1 < ls && s[i] == t[i + 1] && s[i + 1] == t[i] &&
               memcmp(s + i + 2, t + i + 2, ls - i - 2) == 0; /* swapped */
    }
    if (ls > lt)
        return memcmp(s + i + 1, t + i, ls - i - 1) == 0; /* inserted */
    return memcmp(s + i, t + i + 1, lt - i - 1) == 0;     /* dropped */
}

static const char *put(char *buf, size_t size, const char *s, size_t n)
{
    if (n + 1 > size)
        return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

const char *cts_typo_domain(const char *domain, size_t n, char *buf,
                            size_t size)
{
    const char *dot;
    size_t i, base;
    char fixed[256];
    int slipped = 0;

    /* IDN domains are left alone: their neighbours are not ASCII ones. */
    for (i = 0; i < n; i++)
        if ((unsigned char)domain[i] >= 0x80)
            return NULL;
    if (n == 0 || n >= sizeof(fixed) || in_list(real, NELEM(real), domain, n))
        return NULL;
    memcpy(fixed, domain, n);
    fixed[n] = '\0';
    /* A top-level slip first: "gmial.con" → "gmial.com", then below. */
    dot = strrchr(fixed, '.');
    if (dot != NULL) {
        base = (size_t)(dot - fixed) + 1;
        for (i = 0; i < NELEM(tld_slips); i++) {
            if (strcmp(fixed + base, tld_slips[i].slip) != 0)
                continue;
            if (base + strlen(tld_slips[i].meant) + 1 > sizeof(fixed))
                return NULL;
            memcpy(fixed + base, tld_slips[i].meant,
                   strlen(tld_slips[i].meant) + 1);
            n = strlen(fixed);
            slipped = 1;
            break;
        }
    }
    if (!in_list(real, NELEM(real), fixed, n))
        for (i = 0; i < NELEM(common); i++)
            if (one_edit(fixed, n, common[i], strlen(common[i])))
                return put(buf, size, common[i], strlen(common[i]));
    return slipped ? put(buf, size, fixed, n) : NULL;
}

char *cts_typo_suggest(const char *addr)
{
    const char *at = strrchr(addr, '@');
    char dom[256], *out;
    size_t local;

    if (at == NULL)
        return NULL;
    if (cts_typo_domain(at + 1, strlen(at + 1), dom, sizeof(dom)) == NULL)
        return NULL;
    local = (size_t)(at - addr) + 1;
    out = cts_xmalloc(local + strlen(dom) + 1);
    memcpy(out, addr, local);
    memcpy(out + local, dom, strlen(dom) + 1);
    return out;
}
