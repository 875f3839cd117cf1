/* test_optsync.c — the pure parts of refreshing the account's unsubscribed
 * addresses: which next links may be followed (the origin of --base-url
 * only, so the token never leaves it), the row decision and its message,
 * and a full fetch replacing the old set only when swapped in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cts_optouts.h"
#include "cts_optsync.h"
#include "cts_state.h"

#define T0 1709649641L /* 2024-03-05T14:40:41Z */

static void test_row_decision(void **state)
{
    struct cts_optouts *s = cts_optouts_new();
    char msg[160];

    (void)state;
    assert_int_equal(cts_optouts_add(s, "gone@example.com", T0), 1);
    assert_int_equal(cts_optouts_add(s, "nodate@example.com", 0), 1);
    assert_int_equal(cts_optsync_row(s, cts_state_email_key("gone@example.com"),
                                     0, msg, sizeof(msg)),
                     1);
    assert_string_equal(msg, "unsubscribed since 2024-03-05; left alone");
    /* a row asking to unsubscribe someone already unsubscribed */
    assert_int_equal(cts_optsync_row(s, cts_state_email_key("gone@example.com"),
                                     1, msg, sizeof(msg)),
                     1);
    assert_string_equal(msg,
                        "already unsubscribed since 2024-03-05; left alone");
    assert_int_equal(cts_optsync_row(s,
                                     cts_state_email_key("nodate@example.com"),
                                     0, msg, sizeof(msg)),
                     1);
    assert_string_equal(msg, "unsubscribed; left alone");
    assert_int_equal(cts_optsync_row(s, cts_state_email_key("here@example.com"),
                                     0, msg, sizeof(msg)),
                     0);
    assert_int_equal(cts_optsync_row(NULL,
                                     cts_state_email_key("gone@example.com"), 0,
                                     msg, sizeof(msg)),
                     0);
    cts_optouts_free(s);
}

static void test_swap(void **state)
{
    struct cts_optouts *old = cts_optouts_new(), *fresh = cts_optouts_new();
    char buf[CTS_OPTOUTS_DATE_LEN];

    (void)state;
    assert_int_equal(cts_optouts_add(old, "back@example.com", T0), 1);
    cts_optouts_fetched(old, T0, 1);
    assert_int_equal(cts_optouts_add(fresh, "new@example.com", T0), 1);
    cts_optouts_swap(old, fresh);
    /* someone who re-subscribed leaves with the full fetch */
    assert_null(cts_optouts_lookup(old, "back@example.com", buf, sizeof(buf)));
    assert_non_null(
        cts_optouts_lookup(old, "new@example.com", buf, sizeof(buf)));
    assert_int_equal(cts_optouts_last_full(old), 0);
    assert_int_equal(cts_optouts_last_full(fresh), T0);
    cts_optouts_free(old);
    cts_optouts_free(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_decision),
        cmocka_unit_test(test_swap),
    };
    return cmocka_run_group_tests_name("optsync", tests, NULL, NULL);
}
