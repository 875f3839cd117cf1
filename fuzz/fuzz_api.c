/*
 * fuzz_api.c — libFuzzer target: the API response parsers of cts_api.h
 * (transport's api.c) on arbitrary bytes.
 *
 * Byte 0 picks the parser; the rest is the body, copied into an exact-size
 * heap buffer without a NUL so that ASan catches any read past `len` (the
 * parsers promise they need no terminator).  Outputs are checked against
 * the header's contract: on failure every out-pointer is NULL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cts_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_be_null_on_failure(int rc, const void *a, const void *b)
{
    if (rc != 0 && (a != NULL || b != NULL))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body, *a = NULL, *b = NULL, *z;
    unsigned sel;
    size_t len;
    long l = 0;
    int rc;

    if (size < 1)
        return 0;
    sel = data[0];
    len = size - 1;
    body = malloc(len > 0 ? len : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, len);
    switch (sel % 12) {
    case 0:
        rc = cts_api_parse_error(body, len, &a, &b);
        must_be_null_on_failure(rc, a, b);
        break;
    case 1:
        rc = cts_api_v3_parse_signup(body, len, &a, &b);
        must_be_null_on_failure(rc, a, b);
        if (rc == 0 && a == NULL)
            abort(); /* contact_id is required */
        break;
    case 2:
        rc = cts_api_v3_parse_contact_id(body, len, &a);
        must_be_null_on_failure(rc, a, NULL);
        break;
    case 3:
        rc = cts_api_v2_parse_contact_id(body, len, &a);
        must_be_null_on_failure(rc, a, NULL);
        break;
    case 4:
        rc = cts_api_v2_parse_search(body, len, &a, &b);
        must_be_null_on_failure(rc, a, b);
        break;
    case 5:
        rc = cts_api_parse_tokeninfo(body, len, &a, &b, &l);
        must_be_null_on_failure(rc, a, b);
        if (rc == 0 && a == NULL)
            abort(); /* client_id is required */
        break;
    case 6:
        rc = cts_api_parse_account_summary(body, len, &a, &b);
        must_be_null_on_failure(rc, a, b);
        break;
    case 7:
    case 8: {
        struct cts_list_info *lists = NULL;
        size_t n = 0, i;
        rc = cts_api_parse_lists(sel % 12 == 7 ? CTS_API_V2 : CTS_API_V3, body,
                                 len, &lists, &n);
        if (rc == 0)
            for (i = 0; i < n; i++)
                if (lists[i].id == NULL)
                    abort();
        cts_list_info_free(lists, n);
        break;
    }
    case 9: {
        struct cts_cf_ids cf;
        memset(&cf, 0, sizeof(cf));
        rc = cts_api_parse_custom_fields(body, len, &cf);
        if (rc == 0 && cf.n > 0)
            (void)cts_cf_ids_find(&cf, cf.v[0].name);
        cts_cf_ids_free(&cf);
        break;
    }
    case 10: {
        struct cts_api_token t;
        memset(&t, 0, sizeof(t));
        rc = cts_api_parse_token(body, len, &t);
        if (rc == 0 && t.access_token == NULL)
            abort();
        cts_api_token_free(&t);
        break;
    }
    default: {
        /* JWT claims and the v2 merge take NUL-terminated text. */
        struct cts_contact c;
        struct cts_error err;
        char *lists[1] = {(char *)"7"};
        long long exp = 0;
        char *m;
        z = malloc(len + 1);
        if (z == NULL)
            break;
        memcpy(z, body, len);
        z[len] = '\0';
        rc = cts_jwt_claims(z, &a, &exp);
        must_be_null_on_failure(rc, a, NULL);
        memset(&c, 0, sizeof(c));
        c.f[CTS_F_EMAIL] = (char *)"x@example.com";
        c.f[CTS_F_FIRST_NAME] = (char *)"Jos\xC3\xA9";
        m = cts_api_v2_merge_update(z, &c, lists, 1, &err);
        free(m);
        free(z);
        break;
    }
    }
    free(a);
    free(b);
    free(body);
    return 0;
}
