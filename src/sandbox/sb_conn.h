/*
 * sb_conn.h — what server.c (server, request cycle, state) and conn.c
 * (connection I/O, timeouts, caps) share: the server and connection
 * structs and the few calls between the two files.
 */
#ifndef SB_CONN_H
#define SB_CONN_H

#include <time.h>

#include "sb_int.h"

#define READ_CHUNK  (64 * 1024)
#define OUT_HIGH    (1024 * 1024) /* stop reading above this much unsent */
#define SCRATCH_LEN 1024

struct hook {
    void (*fn)(void *);
    void *arg;
};

/* What a connection waits for; each phase has its own deadline. */
enum conn_phase {
    CONN_HEADERS = 0, /* the request line and headers (also a fresh conn) */
    CONN_BODY,        /* the rest of the body */
    CONN_BUSY,        /* a request is being served: no deadline */
    CONN_IDLE,        /* keep-alive, between requests */
    CONN_LINGER       /* closing: draining the client's last bytes */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;    /* --latency-ms, slow faults */
    uv_timer_t deadline; /* header, body, idle and write timeouts */
    uv_write_t wreq;
    uv_shutdown_t sreq; /* FIN after the last reply (lingering close) */
    struct sb_server *srv;
    struct conn *prev, *next;
    char *rbuf;
    size_t rlen, rcap, rpos; /* rpos: start of the current request */
    struct sb_http_msg msg;
    struct cts_buf out, outw; /* filling / being written */
    int writing;
    int reading;
    int busy;         /* a request is being served */
    int ext_pending;  /* the handler deferred; waiting for sb_req_done */
    int in_process;   /* inside conn_process's loop (no recursion) */
    int close_after;  /* close once out is flushed */
    int closing;      /* uv_close issued */
    int handles_open; /* tcp + timer + deadline */
    int sent_continue;
    int peer_loopback;
    int eof;       /* the client closed its side */
    int lingering; /* last reply sent, FIN sent, draining until EOF */
    enum conn_phase phase;
    uint64_t phase_due; /* uv_now() ms when the phase times out */
    uint64_t write_due; /* uv_now() ms when a pending write times out */
    size_t body_held;   /* bytes of the server's body budget held */
    /* the request being served */
    struct sb_req req;
    struct sb_res res;
    struct sb_route *route;
    enum sb_fault fault;
    char saved;    /* byte overwritten by the body's NUL */
    char **allocs; /* strings handed to the handler, freed at finish */
    size_t nallocs, callocs;
    char scratch[SCRATCH_LEN];
    char *claim_email; /* sign_up_form in-flight claim */
    size_t claim_acct;
    uint64_t started_us;
};

/* Connection counters of /_sandbox/state ("server"). */
struct conn_stats {
    uint64_t accepted;
    uint64_t refused;      /* over --max-connections, none idle to close */
    uint64_t idle_closed;  /* keep-alive expired, or closed to make room */
    uint64_t timed_out;    /* incomplete request or stalled write */
    uint64_t body_refused; /* 503: --max-body-total reached */
};

struct sb_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct sb_options opt;
    struct sb_model *model;
    struct sb_router *router;
    struct sb_faults *faults;
    char base_url[64];
    int port;
    int64_t clock; /* 0 = real time */
    int closing;
    struct conn *conns;
    size_t nconns;    /* open (not closing) connections */
    size_t body_held; /* request body bytes reserved, all connections */
    struct conn_stats cstats;
    uint64_t total;
    uint64_t by_status[600];
    void *slots[SB_SLOT__COUNT];
    struct hook *on_reset, *on_close;
    size_t nreset, nclose;
    char date[64];
    time_t date_at;
};

/* conn.c */
void sb_conn_on_connection(uv_stream_t *listener, int status);
/* Serve every complete request in the buffer, in order, then read on. */
void sb_conn_process(struct conn *c);
void sb_conn_close(struct conn *c);
void sb_conn_free(struct conn *c);
/* Append the reply (status line, headers, body) to c->out. */
void sb_conn_serialize(struct conn *c, const struct sb_res *res);
/* The request is over: give back its share of the body budget. */
void sb_conn_release_body(struct conn *c);

/* server.c */
/* Serve the request parsed in c->msg (sets c->busy). */
void sb_conn_serve(struct conn *c);
void sb_res_reset(struct sb_res *res);

#endif /* SB_CONN_H */
