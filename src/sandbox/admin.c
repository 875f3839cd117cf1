/*
 * admin.c — the /_sandbox/ endpoints tests drive the sandbox with: state
 * (with the re-subscription log), reset, faults, clock, token minting,
 * seeding contacts, and a contact unsubscribing by themselves (as if they
 * had clicked SafeUnsubscribe).  Loopback peers only (server.c), not
 * counted in the request statistics, never rate-limited or faulted.
 */
#include "sb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *body_json(struct sb_req *req, struct sb_res *res)
{
    json_error_t jerr;
    json_t *j = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!j) {
        char msg[300];
        snprintf(msg, sizeof msg, "invalid JSON: %s", jerr.text);
        sb_res_error_v3(res, 400, "bad_request", msg);
    }
    return j;
}

static int h_state(struct sb_req *req, struct sb_res *res)
{
    const char *contacts = sb_query_get(req, "contacts");
    const char *account = sb_query_get(req, "account");
    int with = !(contacts && strcmp(contacts, "0") == 0);
    if (account && !sb_account_find(sb_server_model(req->server), account)) {
        sb_res_error_v3(res, 404, "not_found", "no such account");
        return SB_REPLY;
    }
    json_t *st = sb_server_state(req->server, with, account);
    struct sb_model *m = sb_server_model(req->server);
    json_object_set_new(st, "resubscriptions", sb_model_resubscriptions(m, 0));
    json_object_set_new(st, "refused_resubscriptions",
                        sb_model_resubscriptions(m, 1));
    sb_res_json(res, 200, st);
    return SB_REPLY;
}

/* The account a body names ("account": user_name or encoded id), or the
 * first one; NULL after a 404 reply. */
static struct sb_account *body_account(struct sb_req *req, struct sb_res *res,
                                       json_t *j)
{
    struct sb_model *m = sb_server_model(req->server);
    const char *acc = json_string_value(json_object_get(j, "account"));
    struct sb_account *a = acc ? sb_account_find(m, acc) : sb_account_at(m, 0);
    if (!a)
        sb_res_error_v3(res, 404, "not_found", "no such account");
    return a;
}

/* POST /_sandbox/contacts {"account":…,"contacts":[{…}]}: seed contacts
 * (doc/sandbox.md) without counting writes.  All or nothing is not
 * promised: the first bad contact stops the seeding with a 400 naming it. */
static int h_seed(struct sb_req *req, struct sb_res *res)
{
    struct sb_model *m = sb_server_model(req->server);
    struct cts_error err = {0};
    json_t *j = body_json(req, res), *v;
    size_t i;
    if (!j)
        return SB_REPLY;
    struct sb_account *a = body_account(req, res, j);
    json_t *cs = json_object_get(j, "contacts");
    if (a && !json_is_array(cs)) {
        sb_res_error_v3(res, 400, "bad_request",
                        "expected {\"account\":…,\"contacts\":[…]}");
        a = NULL;
    }
    json_t *ids = json_array();
    json_array_foreach(a ? cs : NULL, i, v)
    {
        sb_contact_ref ref;
        if (sb_model_seed(m, a, v, &err) != 0) {
            char msg[sizeof err.msg + 32];
            snprintf(msg, sizeof msg, "contacts[%zu]: %s", i, err.msg);
            sb_res_error_v3(res, 400, "bad_request", msg);
            a = NULL;
            break;
        }
        sb_contact_by_email(a, json_string_value(json_object_get(v, "email")),
                            &ref);
        json_t *c = sb_contact_json(a, ref, SB_RENDER_STATE);
        json_array_append_new(ids, json_pack("{s:O,s:O,s:O}", "email",
                                             json_object_get(c, "email"), "id",
                                             json_object_get(c, "id"), "id_v2",
                                             json_object_get(c, "id_v2")));
        json_decref(c);
    }
    if (a)
        sb_res_json(res, 200, json_pack("{s:o}", "contacts", ids));
    else
        json_decref(ids);
    json_decref(j);
    return SB_REPLY;
}

/* POST /_sandbox/unsubscribe {"account":…,"email":…,"reason":…}: the
 * contact clicks SafeUnsubscribe (permission unsubscribed, opt_out_source
 * Contact, date now, off every list).  Not a client write. */
static int h_unsubscribe(struct sb_req *req, struct sb_res *res)
{
    json_t *j = body_json(req, res);
    if (!j)
        return SB_REPLY;
    struct sb_account *a = body_account(req, res, j);
    const char *email = json_string_value(json_object_get(j, "email"));
    const char *reason = json_string_value(json_object_get(j, "reason"));
    sb_contact_ref ref;
    if (a && (!email || sb_contact_by_email(a, email, &ref) != 0)) {
        sb_res_error_v3(res, 404, "not_found", "no contact with that email");
        a = NULL;
    }
    if (a) {
        sb_contact_unsubscribe(sb_server_model(req->server), a, ref,
                               SB_ACTOR_CONTACT, reason, 0);
        sb_res_json(res, 200, sb_contact_json(a, ref, SB_RENDER_STATE));
    }
    json_decref(j);
    return SB_REPLY;
}

static int h_reset(struct sb_req *req, struct sb_res *res)
{
    sb_server_reset(req->server);
    sb_res_json(res, 200, json_pack("{s:b}", "reset", 1));
    return SB_REPLY;
}

static int h_faults(struct sb_req *req, struct sb_res *res)
{
    struct cts_error err = {0};
    json_t *j = body_json(req, res);
    if (!j)
        return SB_REPLY;
    struct sb_faults *f = sb_server_faults(req->server);
    if (sb_faults_load_json(f, j, &err) != 0) {
        json_decref(j);
        sb_res_error_v3(res, 400, "bad_request", err.msg);
        return SB_REPLY;
    }
    json_decref(j);
    sb_res_json(
        res, 200,
        json_pack("{s:I}", "pending", (json_int_t)sb_faults_pending(f)));
    return SB_REPLY;
}

static int h_faults_clear(struct sb_req *req, struct sb_res *res)
{
    struct sb_faults *f = sb_server_faults(req->server);
    /* drop the queue only: injected counts stay until /_sandbox/reset */
    sb_faults_drop_queue(f);
    sb_res_json(res, 200, json_pack("{s:i}", "pending", 0));
    return SB_REPLY;
}

static int h_clock(struct sb_req *req, struct sb_res *res)
{
    json_t *j = body_json(req, res);
    if (!j)
        return SB_REPLY;
    json_t *now = json_object_get(j, "now");
    if (!json_is_integer(now) || json_integer_value(now) < 0) {
        json_decref(j);
        sb_res_error_v3(res, 400, "bad_request",
                        "expected {\"now\":EPOCH} (0 = real time)");
        return SB_REPLY;
    }
    sb_server_set_clock(req->server, (int64_t)json_integer_value(now));
    json_decref(j);
    sb_res_json(res, 200,
                json_pack("{s:I}", "now", (json_int_t)sb_now(req->server)));
    return SB_REPLY;
}

/* Built-in v3 token when jwt.c is not linked: an unsigned-looking JWT with
 * the same claims (the sandbox only looks tokens up in its table). */
char *sb_mint_v3(struct sb_server *srv, const char *client_id,
                 const struct sb_account *acct, int64_t iat, int64_t exp)
{
    if (sb_jwt_mint)
        return sb_jwt_mint(srv, client_id, acct, iat, exp);
    json_t *p =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "aud", "https://api.cc.email/v3",
                  "cid", client_id, "sub", acct->user_name, "platform_user_id",
                  acct->encoded_account_id, "iat", (json_int_t)iat, "exp",
                  (json_int_t)exp);
    char *ps = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(p);
    char *h = cts_base64url_encode("{\"alg\":\"none\",\"typ\":\"JWT\"}", 27);
    char *b = cts_base64url_encode(ps, strlen(ps));
    uint8_t mac[CTS_SHA256_LEN];
    cts_sha256(ps, strlen(ps), mac);
    char *s = cts_base64url_encode(mac, sizeof mac);
    char *tok = cts_xasprintf("%s.%s.%s", h, b, s);
    free(ps);
    free(h);
    free(b);
    free(s);
    return tok;
}

static char *random_token(const char *prefix)
{
    uint8_t rnd[18];
    char hex[37];
    if (cts_random_bytes(rnd, sizeof rnd) != 0) {
        static uint64_t ctr;
        uint64_t v = cts_hash64(&ctr, sizeof ctr, (uint64_t)time(NULL));
        ctr++;
        memset(rnd, 0, sizeof rnd);
        memcpy(rnd, &v, sizeof v);
    }
    cts_hex(rnd, sizeof rnd, hex);
    return cts_xasprintf("%s%s", prefix, hex);
}

static int h_token(struct sb_req *req, struct sb_res *res)
{
    struct sb_model *m = sb_server_model(req->server);
    json_t *j = body_json(req, res);
    if (!j)
        return SB_REPLY;
    const char *api = json_string_value(json_object_get(j, "api"));
    const char *key = json_string_value(json_object_get(j, "api_key"));
    const char *acc = json_string_value(json_object_get(j, "account"));
    json_t *ei = json_object_get(j, "expires_in");
    int v2 = api && strcmp(api, "v2") == 0;
    if (!api || (!v2 && strcmp(api, "v3") != 0) ||
        (ei && !json_is_integer(ei))) {
        json_decref(j);
        sb_res_error_v3(res, 400, "bad_request",
                        "expected {\"api\":\"v2\"|\"v3\",\"api_key\":...,"
                        "\"account\":...,\"expires_in\":N}");
        return SB_REPLY;
    }
    struct sb_account *acct =
        acc ? sb_account_find(m, acc) : sb_account_at(m, 0);
    if (!acct) {
        json_decref(j);
        sb_res_error_v3(res, 404, "not_found", "no such account");
        return SB_REPLY;
    }
    enum sb_api k = v2 ? SB_API_V2 : SB_API_V3;
    struct sb_app *app = key ? sb_app_find(m, key) : NULL;
    if (!app && key) {
        /* tests mint tokens for any key: an unknown one becomes an app of
         * that API (no secret, no redirect URIs) with its own limits */
        app = sb_model_app_ensure(m, key, k);
    }
    for (size_t i = 0; !app && i < sb_model_app_count(m); i++)
        if (sb_model_app_at(m, i)->api == k)
            app = sb_model_app_at(m, i); /* default: first app of that API */
    if (!app) {
        json_decref(j);
        sb_res_error_v3(res, 400, "bad_request", "no app of that API");
        return SB_REPLY;
    }
    int64_t now = sb_now(req->server);
    int64_t expires_in =
        ei ? (int64_t)json_integer_value(ei) : (v2 ? 315359999 : 86400);
    int64_t exp = now + expires_in;
    char *tok = v2 ? random_token("sbx2-")
                   : sb_mint_v3(req->server, app->api_key, acct, now, exp);
    sb_token_add(m, tok, k, app->api_key, acct, now, exp);
    json_t *out =
        json_pack("{s:s,s:s,s:I,s:s,s:s}", "access_token", tok, "token_type",
                  "Bearer", "expires_in", (json_int_t)expires_in, "api_key",
                  app->api_key, "account", acct->encoded_account_id);
    if (!v2) {
        char *rt = random_token("sbx3r-");
        sb_refresh_add(m, rt, app->api_key, acct,
                       "contact_data account_read offline_access", now);
        json_object_set_new(out, "refresh_token", json_string(rt));
        free(rt);
    }
    free(tok);
    json_decref(j);
    sb_res_json(res, 200, out);
    return SB_REPLY;
}

static int64_t server_clock(void *srv)
{
    return sb_now(srv);
}

void sb_admin_register(struct sb_server *srv)
{
    unsigned a = SB_ROUTE_ADMIN;
    /* contacts' dates follow the sandbox clock (POST /_sandbox/clock) */
    sb_model_set_clock(sb_server_model(srv), server_clock, srv);
    sb_route_add(srv, "POST", "/_sandbox/contacts", h_seed, a);
    sb_route_add(srv, "POST", "/_sandbox/unsubscribe", h_unsubscribe, a);
    sb_route_add(srv, "GET", "/_sandbox/state", h_state, a);
    sb_route_add(srv, "POST", "/_sandbox/reset", h_reset, a);
    sb_route_add(srv, "POST", "/_sandbox/faults", h_faults, a);
    sb_route_add(srv, "DELETE", "/_sandbox/faults", h_faults_clear, a);
    sb_route_add(srv, "POST", "/_sandbox/clock", h_clock, a);
    sb_route_add(srv, "POST", "/_sandbox/token", h_token, a);
}
