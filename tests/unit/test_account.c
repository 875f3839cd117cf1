/*
 * test_account.c — the lists pager follows only links on --base-url's
 * origin: a page whose `_links.next.href` points at another host (here:
 * another port) is an error naming the link, and that host receives no
 * request, so never the bearer token.
 *
 * The API is a forked one-shot peer on a loopback port (the sandbox
 * always answers with its own paths); the "other host" is a listening
 * socket nobody accepts on: a connection attempt would be queued in its
 * backlog, which poll() then reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cts_account.h"
#include "cts_config.h"
#include "cts_http.h"

/* A loopback listening socket on a free port; its port in *port. */
static int listen_any(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Child: answer one request on fd with body, then exit. */
static void serve_once(int fd, const char *body)
{
    char buf[8192], reply[8192];
    size_t got = 0;
    int c;

    alarm(20); /* never outlive a broken test */
    c = accept(fd, NULL, NULL);
    if (c < 0)
        _exit(1);
    while (got < sizeof(buf) - 1) {
        ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    snprintf(reply, sizeof(reply),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(body), body);
    if (write(c, reply, strlen(reply)) < 0)
        _exit(1);
    close(c);
    _exit(0);
}

static void test_foreign_next_link_refused(void **state)
{
    struct cts_config cfg;
    struct cts_list_set lists;
    struct cts_error err = {0};
    char base[64], body[512];
    struct pollfd pfd;
    int api_port, other_port, api_fd, other_fd, st;
    pid_t pid;
    (void)state;

    api_fd = listen_any(&api_port);
    other_fd = listen_any(&other_port);
    snprintf(body, sizeof(body),
             "{\"lists\":[{\"list_id\":\"l1\",\"name\":\"One\","
             "\"membership_count\":1}],\"_links\":{\"next\":{\"href\":"
             "\"http://127.0.0.1:%d/steal?cursor=1\"}}}",
             other_port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        serve_once(api_fd, body);
    close(api_fd);

    memset(&cfg, 0, sizeof(cfg));
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v3", api_port);
    cfg.api = CTS_API_V3;
    cfg.base_url = base;
    cfg.token = (char *)"bearer-token-for-the-test-000";
    cfg.timeout_ms = 5000;
    assert_int_equal(cts_account_fetch_lists(&cfg, &lists, &err), CTS_EHTTP);
    assert_int_equal(err.exit_code, CTS_EX_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "/steal?cursor=1"));
    assert_int_equal(lists.n, 0);

    /* Nothing knocked at the other port. */
    pfd.fd = other_fd;
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 0), 0);
    close(other_fd);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_next_link_refused),
    };
    signal(SIGPIPE, SIG_IGN);
    cts_http_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
