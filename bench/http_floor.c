/*
 * http_floor.c — the transport's ceiling, for scripts/bench.
 *
 * Sends N sign_up_form POSTs (unique emails) through cts_http — the same
 * libcurl multi on libuv, the same options and keep-alive pool as the
 * pipeline — with `conc` in flight, and nothing else: no CSV, no mapping,
 * no journal, no report.  Its rate is what any ctct-sync built on this
 * libcurl can reach on this machine; scripts/bench prints it beside the
 * pipeline's rate and wrk's, so the gap between the pipeline and wrk can
 * be split into "ours" and "libcurl's".
 *
 *   http_floor URL TOKEN LIST N CONC    (prints "N requests in S s")
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cts_http.h"
#include "cts_util.h"

struct floor {
    struct cts_http http;
    struct cts_http_req *reqs;
    char **bodies;
    const char *url, *token, *list;
    long n, sent, done, failed;
};

static void submit_next(struct floor *f, struct cts_http_req *r);

static void on_done(struct cts_http_req *r, void *arg)
{
    struct floor *f = arg;

    f->done++;
    if (r->transport_error != CTS_XE_NONE || r->status >= 300)
        f->failed++;
    if (f->sent < f->n)
        submit_next(f, r);
    else if (f->done == f->n)
        cts_http_close(&f->http, NULL);
}

static void submit_next(struct floor *f, struct cts_http_req *r)
{
    size_t slot = (size_t)(r - f->reqs);

    free(f->bodies[slot]);
    /* Built per request, as the pipeline does (one allocation). */
    f->bodies[slot] = cts_xasprintf(
        "{\"email_address\":\"floor%ld@example.com\",\"first_name\":\"F\","
        "\"list_memberships\":[\"%s\"]}",
        f->sent, f->list);
    r->method = "POST";
    r->url = f->url;
    r->body = f->bodies[slot];
    r->body_len = strlen(r->body);
    r->bearer = f->token;
    f->sent++;
    if (cts_http_submit(&f->http, r, on_done, f) != 0) {
        fprintf(stderr, "http_floor: submit failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    struct floor f;
    struct cts_http_opts o;
    uv_loop_t loop;
    long conc, i;
    uint64_t t0;
    double s;

    if (argc != 6) {
        fprintf(stderr, "usage: http_floor URL TOKEN LIST N CONC\n");
        return 64;
    }
    memset(&f, 0, sizeof(f));
    f.url = argv[1];
    f.token = argv[2];
    f.list = argv[3];
    f.n = strtol(argv[4], NULL, 10);
    conc = strtol(argv[5], NULL, 10);
    if (f.n < 1 || conc < 1 || conc > 1024)
        return 64;
    if (cts_http_global_init() != 0)
        return 70;
    uv_loop_init(&loop);
    memset(&o, 0, sizeof(o));
    o.max_in_flight = conc;
    if (cts_http_init(&f.http, &loop, &o) != 0)
        return 70;
    f.reqs = cts_xcalloc((size_t)conc, sizeof(*f.reqs));
    f.bodies = cts_xcalloc((size_t)conc, sizeof(*f.bodies));
    for (i = 0; i < conc; i++)
        cts_http_req_init(&f.reqs[i]);
    t0 = uv_hrtime();
    for (i = 0; i < conc && f.sent < f.n; i++)
        submit_next(&f, &f.reqs[i]);
    uv_run(&loop, UV_RUN_DEFAULT);
    s = (double)(uv_hrtime() - t0) / 1e9;
    printf("%ld requests in %.3f s = %.0f req/s (%ld failed)\n", f.done, s,
           (double)f.done / s, f.failed);
    for (i = 0; i < conc; i++) {
        cts_http_req_free(&f.reqs[i]);
        free(f.bodies[i]);
    }
    free(f.reqs);
    free(f.bodies);
    uv_loop_close(&loop);
    cts_http_global_cleanup();
    return f.failed == 0 ? 0 : 1;
}
