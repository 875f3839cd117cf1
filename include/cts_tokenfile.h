/*
 * cts_tokenfile.h — reading and atomically writing OAuth token files.
 *
 * A token file is either JSON, mode 0600:
 *   {"api":"v3","access_token":"…","refresh_token":"…","expires_at":EPOCH,
 *    "client_id":"…"}
 * (every member optional except that one of access_token / refresh_token
 * must be present; unknown members are ignored), or a file holding one line:
 * a bare access token.  ctct-sync also keeps "last_refresh_at" (the time of
 * its last call to the token endpoint, which allows 1 request/s).
 *
 * Like ssh with a private key, a token file readable or writable by group or
 * others is refused: it holds credentials.
 */
#ifndef CTS_TOKENFILE_H
#define CTS_TOKENFILE_H

#include <stddef.h>

#include "cts_util.h"

/* The contents of a token file.  All strings are owned by the struct (NULL
 * when absent) and released by cts_tokens_free(). */
struct cts_tokens {
    char *api;            /* "v2", "v3" or NULL (bare token, or not stated) */
    char *access_token;   /* NULL only when a refresh token is present */
    char *refresh_token;  /* v3 only */
    long expires_at;      /* unix time the access token expires, 0 = unknown */
    char *client_id;      /* the API key the tokens were issued for */
    long last_refresh_at; /* unix time of our last token-endpoint call, 0 */
    int bare;             /* 1 when the file held a bare one-line token */
};

/*
 * Read the token file at path (borrowed) into out (caller storage, zeroed
 * first; free with cts_tokens_free() in every case).
 * Errors (all with err->exit_code = 78, CTS_EX_CONFIG):
 *   CTS_ECONFIG  missing or unreadable file, group/other permission bits set,
 *                not a regular file, larger than 64 KiB, malformed JSON,
 *                neither access_token nor refresh_token, or more than one
 *                non-empty line in a bare-token file.
 * Messages name the file and never contain a token.
 */
int cts_tokenfile_read(const char *path, struct cts_tokens *out,
                       struct cts_error *err);

/*
 * Write tok (borrowed) to path (borrowed) as JSON, atomically and durably:
 * a temporary file in the same directory created with mode 0600, fsync,
 * rename over path, fsync of the directory.  After a crash path holds
 * either the old or the new contents, never a mix.  A bare token is written
 * as JSON too.  Returns 0, or CTS_ECONFIG (exit 78, CTS_EX_CONFIG) with a
 * message naming the file and the system error; the temporary file is
 * removed on failure.
 */
int cts_tokenfile_write(const char *path, const struct cts_tokens *tok,
                        struct cts_error *err);

/*
 * Replace the file at path (borrowed) with len bytes of data (borrowed),
 * atomically and durably, mode 0600 (the same temp/fsync/rename/dir-fsync
 * sequence).  Used for the token file and its side files.  Returns 0 or
 * CTS_ECONFIG (exit 78) with a message naming the file.
 */
int cts_file_write_atomic(const char *path, const char *data, size_t len,
                          struct cts_error *err);

/* Free the strings of tok and zero it; NULL is a no-op. */
void cts_tokens_free(struct cts_tokens *tok);

#endif /* CTS_TOKENFILE_H */
