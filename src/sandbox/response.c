/*
 * response.c — the parts of the request/response views that need no
 * connection: header lookups on a request, and the response builders
 * (status, JSON and text bodies, error shapes of v2, v3 and OAuth).
 */
#include "sb_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *sb_header_get(const struct sb_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int sb_req_content_type_is(const struct sb_req *req, const char *type)
{
    const char *ct = sb_header_get(req, "Content-Type");
    size_t tl = strlen(type);
    if (!ct)
        return 0;
    if (strncasecmp(ct, type, tl) != 0)
        return 0;
    return ct[tl] == '\0' || ct[tl] == ';' || ct[tl] == ' ';
}

const char *sb_req_bearer(const struct sb_req *req)
{
    const char *a = sb_header_get(req, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return *a ? a : NULL;
}

json_t *sb_req_json(const struct sb_req *req)
{
    return json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
}

/* ------------------------------------------------------------ responses */

void sb_res_header(struct sb_res *res, const char *name, const char *fmt, ...)
{
    va_list ap;
    char val[2048];
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    /* never let a value break the header block */
    for (char *p = val; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    cts_buf_appendf(&res->headers, "%s: %s\r\n", name, val);
}

void sb_res_text(struct sb_res *res, int status, const char *content_type,
                 const char *body, size_t len)
{
    res->status = status;
    snprintf(res->content_type, sizeof res->content_type, "%s",
             content_type ? content_type : "text/plain");
    cts_buf_reset(&res->body);
    if (len)
        cts_buf_append(&res->body, body, len);
}

void sb_res_json(struct sb_res *res, int status, json_t *json)
{
    res->status = status;
    snprintf(res->content_type, sizeof res->content_type, "application/json");
    cts_buf_reset(&res->body);
    if (!json) {
        cts_buf_append(&res->body, "null", 4);
        return;
    }
    char *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        cts_buf_append(&res->body, s, strlen(s));
        free(s);
    }
    json_decref(json);
}

static json_t *err_obj(const char *key, const char *msg)
{
    return json_pack("{s:s,s:s}", "error_key", key ? key : "", "error_message",
                     msg ? msg : "");
}

void sb_res_error_v2(struct sb_res *res, int status, const char *key,
                     const char *msg)
{
    json_t *a = json_array();
    json_array_append_new(a, err_obj(key, msg));
    sb_res_json(res, status, a);
}

void sb_res_error_v3(struct sb_res *res, int status, const char *key,
                     const char *msg)
{
    sb_res_error_v2(res, status, key, msg);
}

void sb_res_error_v3_obj(struct sb_res *res, int status, const char *key,
                         const char *msg)
{
    sb_res_json(res, status, err_obj(key, msg));
}

void sb_res_oauth_error(struct sb_res *res, int status, const char *error,
                        const char *desc)
{
    sb_res_json(res, status,
                json_pack("{s:s,s:s}", "error", error ? error : "",
                          "error_description", desc ? desc : ""));
}

void sb_res_redirect(struct sb_res *res, const char *url)
{
    sb_res_text(res, 302, "text/plain", "", 0);
    sb_res_header(res, "Location", "%s", url);
}
