/* codec.c — SHA-256 (FIPS 180-4, for PKCE S256), a fast 64-bit hash,
 * base64/base64url, hex, random bytes and number parsing.  Written here so
 * neither binary needs libcrypto. */
#include "cts_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0];
    b = h[1];
    c = h[2];
    d = h[3];
    e = h[4];
    f = h[5];
    g = h[6];
    hh = h[7];
    for (i = 0; i < 64; i++) {
        t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
             K[i] + w[i];
        t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
             ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void cts_sha256(const void *data, size_t len, uint8_t out[CTS_SHA256_LEN])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    uint8_t tail[128];
    size_t rest = len % 64, full = len - rest, tlen;
    uint64_t bits = (uint64_t)len * 8;
    size_t i;

    for (i = 0; i < full; i += 64)
        sha256_block(h, p + i);
    memset(tail, 0, sizeof(tail));
    if (rest != 0)
        memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    tlen = rest < 56 ? 64 : 128;
    for (i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tlen == 128)
        sha256_block(h, tail + 64);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static uint64_t rotl64(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

/* Murmur3-style mixing of one 64-bit word. */
static uint64_t mix_word(uint64_t w)
{
    w *= 0x87c37b91114253d5ULL;
    w = rotl64(w, 31);
    return w * 0x4cf5ad432745937fULL;
}

/* Eight bytes as a little-endian word.  One load on the usual machine:
 * GCC at -O2 does not merge the byte-by-byte form, which made the loop
 * below a twelfth of a dry run. */
static uint64_t load_le64(const uint8_t *p)
{
    uint64_t w;

    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

uint64_t cts_hash64(const void *data, size_t len, uint64_t seed)
{
    /* Eight bytes a step (byte-wise FNV was a fifth of a dry run's time:
     * every row hashes its email and its fingerprint).  Words are read
     * little-endian so stored keys mean the same on every machine. */
    const uint8_t *p = data;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * ((uint64_t)len + 1)), w;
    size_t i;

    while (len >= 8) {
        w = load_le64(p);
        h ^= mix_word(w);
        h = rotl64(h, 27) * 5 + 0x52dce729;
        p += 8;
        len -= 8;
    }
    w = 0;
    for (i = 0; i < len; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h ^= mix_word(w);
    /* splitmix64 finaliser: full avalanche of the last word. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *cts_base64url_encode(const void *data, size_t len)
{
    const uint8_t *p = data;
    char *out = cts_xmalloc(len / 3 * 4 + 5), *o = out;
    size_t i;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
        *o++ = B64URL[(v >> 6) & 63];
        *o++ = B64URL[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
        *o++ = B64URL[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

char *cts_base64_decode(const char *s, size_t slen, size_t *outlen)
{
    char *out = cts_xmalloc(slen / 4 * 3 + 4);
    size_t n = 0, i;
    uint32_t acc = 0;
    int bits = 0;
    for (i = 0; i < slen; i++) {
        int v;
        if (s[i] == '=') {
            /* Padding may only be followed by more padding. */
            size_t j;
            for (j = i; j < slen; j++)
                if (s[j] != '=')
                    goto fail;
            break;
        }
        v = b64val((unsigned char)s[i]);
        if (v < 0)
            goto fail;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)(acc >> bits & 0xff);
        }
    }
    if (bits >= 6) /* a lone sextet cannot encode a byte */
        goto fail;
    out[n] = '\0';
    if (outlen != NULL)
        *outlen = n;
    return out;
fail:
    free(out);
    return NULL;
}

void cts_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

int cts_random_bytes(void *buf, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd < 0)
        return -errno;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            close(fd);
            return e;
        }
        got += (size_t)n;
    }
    close(fd);
    return 0;
}

int cts_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return CTS_EUSAGE;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return CTS_EUSAGE;
    *out = v;
    return 0;
}

int cts_streq_nocase(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}
