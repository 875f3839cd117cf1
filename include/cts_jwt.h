/*
 * cts_jwt.h — the claims of a JWT access token, read without verifying its
 * signature: ctct-sync only compares them with what it knows (the account
 * check: "cid" against the API key) or plans with them (the refresh: "exp");
 * the API verifies signatures.
 *
 * A token is taken for a JWT only when it is exactly three base64url
 * segments (RFC 7515 compact form, no padding, header and payload not
 * empty) whose middle one decodes to a JSON object without duplicate
 * members.  Anything else is an opaque token (CTS_EJSON).
 */
#ifndef CTS_JWT_H
#define CTS_JWT_H

#include <jansson.h>

/*
 * Decode the payload of token (borrowed).  Returns 0 with a new reference
 * in *payload (json_decref it), or CTS_EJSON (*payload = NULL) when token
 * is NULL or not a JWT as above.
 */
int cts_jwt_payload(const char *token, json_t **payload);

/*
 * The "cid" claim (owned copy in *cid, NULL when absent or not a string)
 * and the "exp" claim (*exp, 0 when absent or not a number) of token
 * (borrowed).  cid and exp may be NULL.  0, or CTS_EJSON when token is
 * not a JWT (then *cid = NULL, *exp = 0).
 */
int cts_jwt_claims(const char *token, char **cid, long long *exp);

/*
 * The "exp" claim of token (borrowed): 0 and *exp set, or CTS_EJSON when
 * token is not a JWT or has no numeric exp (*exp untouched).
 */
int cts_jwt_exp(const char *token, long *exp);

#endif /* CTS_JWT_H */
