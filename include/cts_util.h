/*
 * cts_util.h — the vocabulary every module shares: exit codes, error values,
 * logging, allocation, growable buffers, hashing, codecs, URL escaping and
 * JSON numbers.  (Secret masking is cts_secret.h.)
 *
 * Error convention (libuv's): functions return 0 on success and a negative
 * code on failure.  System errors are libuv codes (UV_ENOMEM, UV_EIO, negated
 * errno); project codes are the CTS_E* values below, which cannot collide.
 * An optional trailing `struct cts_error *err` (may be NULL) receives a
 * one-line human message.
 */
#ifndef CTS_UTIL_H
#define CTS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifndef CTS_VERSION
#define CTS_VERSION "0.0.0"
#endif

/* ---- exit codes: sysexits.h values (README's table), the one list in the
 * code ---- */
enum cts_exit {
    CTS_EX_OK = 0,           /* every row settled */
    CTS_EX_FAILED = 1,       /* some rows failed */
    CTS_EX_USAGE = 64,       /* bad command line */
    CTS_EX_DATAERR = 65,     /* unreadable CSV, no email column, unknown list */
    CTS_EX_NOINPUT = 66,     /* input file missing */
    CTS_EX_UNAVAILABLE = 69, /* API unreachable */
    CTS_EX_SOFTWARE = 70,    /* internal error (a bug) */
    CTS_EX_CANTCREAT = 73,   /* report cannot be written */
    CTS_EX_TEMPFAIL = 75,    /* try later: deferred rows, quota, lock held */
    CTS_EX_NOPERM = 77,      /* credentials invalid/expired/mismatched */
    CTS_EX_CONFIG = 78       /* configuration error */
};

/* ---- project error codes (libuv's are > -4096) ---- */
enum {
    CTS_ECSV = -20001,    /* CSV syntax */
    CTS_EJSON = -20002,   /* malformed JSON from a peer */
    CTS_EHTTP = -20003,   /* HTTP-level failure */
    CTS_ECONFIG = -20004, /* bad configuration */
    CTS_EUSAGE = -20005,  /* bad command line */
    CTS_EAUTH = -20006,   /* credentials rejected or mismatched */
    CTS_EDATA = -20007,   /* bad input data (no email column, ...) */
    CTS_ELOCKED = -20008, /* state lock held by another run */
    CTS_EQUOTA = -20009,  /* daily quota exhausted */
    CTS_ETOOBIG = -20010  /* a capped buffer overflowed */
};

struct cts_error {
    int code;      /* a negative code as above, or 0 */
    int exit_code; /* the enum cts_exit this error maps to, 0 if unset */
    long row;      /* input data row the error is about, 0 if none */
    char msg[512];
};

/* Fill err (may be NULL) with code and a printf-style message; returns code. */
int cts_error_set(struct cts_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like cts_error_set, also recording the exit code the failure maps to. */
int cts_error_setx(struct cts_error *err, int code, int exit_code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The va_list form of cts_error_setx, for wrappers. */
int cts_error_vsetx(struct cts_error *err, int code, int exit_code,
                    const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Static text for a project or libuv error code. */
const char *cts_strerror(int code);

/* ---- logging: stderr, "ctct-sync: message" ---- */
enum cts_log_level {
    CTS_LOG_ERROR = 0,
    CTS_LOG_WARN = 1,
    CTS_LOG_INFO = 2,
    CTS_LOG_DEBUG = 3
};
/* Program name used as the message prefix (borrowed; default "ctct-sync"). */
void cts_log_set_prog(const char *prog);
void cts_log_set_level(enum cts_log_level level);
enum cts_log_level cts_log_get_level(void);
void cts_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cts_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cts_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cts_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Register a secret (copied; NULL ignored) that every later log line shows
 * masked (cts_redact: values of CTS_SECRET_MIN or more characters, also
 * percent-encoded), up to 8.  main registers the key and tokens; clear
 * frees them at exit. */
void cts_log_add_secret(const char *s);
void cts_log_clear_secrets(void);
/* The registered secrets (borrowed, *n of them), for messages built
 * outside the log (cts_error_set masks them before cutting). */
const char *const *cts_log_secrets(size_t *n);
/* An owned copy of s with the registered secrets masked, or NULL when s
 * (borrowed, may be NULL) holds none, so the caller uses s as it is.  For
 * text that leaves the process other than through the log (the report). */
char *cts_log_redacted(const char *s);
struct cts_buf; /* below */
/*
 * Text from outside (CSV headers and values, file names, server words)
 * made safe to show on a terminal: C0 controls, DEL and bytes that are
 * not UTF-8 become "\xNN"; C1 controls (U+0080-U+009F) and the
 * bidirectional formatting characters become "\uNNNN".  Every log line
 * passes through it (keep_nl = 1 there: a newline followed by a space or
 * tab, a message's own continuation line, is kept).
 * cts_buf_append_visible appends s[0..n) (borrowed) to b;
 * cts_log_visible returns an owned copy of s (NULL is "").
 */
void cts_buf_append_visible(struct cts_buf *b, const char *s, size_t n,
                            int keep_nl);
char *cts_log_visible(const char *s);
/* Hook called before a log line is written (the progress line clears itself).
 */
void cts_log_set_hook(void (*hook)(void *arg), void *arg);

/* ---- allocation: abort with a message on failure (h2o/redis policy) ---- */
void *cts_xmalloc(size_t n);
void *cts_xcalloc(size_t nmemb, size_t size);
void *cts_xrealloc(void *p, size_t n);
char *cts_xstrdup(const char *s);
char *cts_xstrndup(const char *s, size_t n);
/* asprintf that aborts on failure; returns an owned string. */
char *cts_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- growable byte buffer with an optional hard cap (curl's dynbuf) ---- */
struct cts_buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max; /* 0 = unlimited; appends past max fail with CTS_ETOOBIG */
};
void cts_buf_init(struct cts_buf *b, size_t max);
int cts_buf_append(struct cts_buf *b, const void *data, size_t len);
int cts_buf_appendf(struct cts_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cts_buf_putc(struct cts_buf *b, char c);
void cts_buf_reset(struct cts_buf *b); /* len = 0, keeps storage */
/* Hand the data to the caller (owned, NUL-terminated, never NULL). */
char *cts_buf_detach(struct cts_buf *b);
void cts_buf_free(struct cts_buf *b);

/* ---- hashing and codecs (codec.c) ---- */
#define CTS_SHA256_LEN 32
void cts_sha256(const void *data, size_t len, uint8_t out[CTS_SHA256_LEN]);
/* 64-bit FNV-1a-style hash with a final avalanche (not cryptographic). */
uint64_t cts_hash64(const void *data, size_t len, uint64_t seed);
/* base64url without padding; returns an owned string. */
char *cts_base64url_encode(const void *data, size_t len);
/* Accepts base64url or base64, with or without padding. Returns an owned
 * buffer (NUL-terminated for convenience) and its length, or NULL. */
char *cts_base64_decode(const char *s, size_t slen, size_t *outlen);
/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void cts_hex(const uint8_t *data, size_t len, char *out);
/* Fill buf with len bytes from the system's random source; 0 or -errno. */
int cts_random_bytes(void *buf, size_t len);

/* ---- random numbers for jitter (util.c): xorshift64*, different per run,
 * not secret ---- */
struct cts_rng {
    uint64_t s; /* never 0 */
};
/* Seed r from the system's random source (the clock if it fails). */
void cts_rng_init(struct cts_rng *r);
/* The next 32 random bits. */
uint32_t cts_rng_next32(struct cts_rng *r);

/* ---- small string helpers ---- */
/* Parse a whole decimal string into [min,max]; 0 or CTS_EUSAGE. */
int cts_parse_long(const char *s, long min, long max, long *out);
/* Case-insensitive ASCII equality. */
int cts_streq_nocase(const char *a, const char *b);
/* Percent-encode s (borrowed; NULL is "") for a URL query value or a form
 * body: every byte but the RFC 3986 unreserved ones (A-Z a-z 0-9 - . _ ~)
 * becomes %XX, like curl_easy_escape.  Returns an owned string, never NULL. */
char *cts_url_escape(const char *s);

/* ---- JSON (util.c) ---- */
struct json_t; /* <jansson.h> */
/*
 * Read a number that a reply may write as a JSON integer, a real (whole
 * part taken) or a string of decimal digits ("expires_in":"315110295" in
 * v2 tokeninfo).  v is borrowed and may be NULL.  Returns 0 with *out set
 * when the value is within [min, max], else CTS_EJSON (absent, another
 * type, not a whole decimal string, out of range) and *out untouched.
 */
int cts_json_int(const struct json_t *v, long min, long max, long *out);
/* The array member `key` of object o (borrowed), added empty when absent or
 * not an array.  Returns it (borrowed from o), or NULL when out of memory. */
struct json_t *cts_json_array_member(struct json_t *o, const char *key);

#endif /* CTS_UTIL_H */
