/* rejects.c — the rows that need a person, with their original columns
 * (cts_rejects.h).
 *
 * Why a second pass over the input rather than keeping each row's fields
 * until it settles: a row that is sent settles long after its batch is
 * gone (the batch's arena is reused), so its fields would have to be
 * copied for every row sent, on the hot path of every run, to serve the
 * few that fail.  Re-reading costs nothing when every row settles, one
 * streaming read of the inputs that have rejected rows otherwise, and
 * needs only the (file, row, problem) of those rows, which go to an
 * unlinked temporary file so that memory does not grow with them either.
 * Only inputs that cannot be read twice are copied as they are read.
 *
 * Temporary files, all unlinked at creation (nothing to clean up after a
 * crash) and mode 0600 (they hold addresses):
 *   list   one record per rejected row, in input order:
 *          u32 input, i64 row, u32 len, problem[len]
 *   body   the rows read back: u32 input, u32 nfields,
 *          nfields x (u32 len, bytes), u32 len, problem[len]
 *          (written before the header is known: the union of the
 *          headers and the widest row settle only at the end)
 *   tee    per input read from a stream: its bytes as read
 */
#include "cts_rejects.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cts_encoding.h"
#include "cts_fsio.h"
#include "cts_mapper.h"
#include "cts_reader.h"
#include "cts_report.h"

#define READ_CHUNK  (64 * 1024)
#define WRITE_FLUSH (64 * 1024)
#define STOP_READER 1 /* a reader callback's "enough": not an error */

struct input {
    const char *name; /* cfg->inputs[i], borrowed */
    int tee_fd;       /* copy of a stream, -1 when re-read by name */
    int tee_err;      /* the copy failed: a negated errno */
    int id_ok;        /* id holds the file as it was before the run */
    struct stat id;
    long kept;    /* rejected rows of this input */
    int *colmap;  /* header column -> union column, -1 = dropped */
    size_t ncols; /* columns of this input's header */
};

/* A column of the rejects file's header. */
struct ucol {
    char *name;   /* as written in the first input that has it */
    char *norm;   /* cts_header_normalize(name) */
    unsigned occ; /* its rank among same-norm columns of that input */
};

struct cts_rejects {
    const struct cts_config *cfg;
    struct input *in;
    size_t nin;
    size_t cur;   /* input of the last kept row (in order) */
    FILE *list;   /* see above; NULL until the first row */
    long count;   /* rows kept */
    int list_err; /* sticky: the list could not be written */
    struct ucol *cols;
    size_t ncols, capcols;
    size_t nextra; /* unnamed columns for cells beyond a row's header */
};

/* ---- temporary files ---- */

/* An unlinked temporary file, read-write, 0600, close-on-exec: a
 * descriptor or a negated errno. */
static int tmp_fd(void)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    int fd, e;

    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    path = cts_xasprintf("%s/ctct-sync-rejects.XXXXXX", dir);
    fd = mkstemp(path); /* 0600 by POSIX */
    e = errno;
    if (fd >= 0) {
        unlink(path);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    free(path);
    return fd >= 0 ? fd : -e;
}

static FILE *tmp_file(void)
{
    int fd = tmp_fd();
    FILE *fp;

    if (fd < 0) {
        errno = -fd;
        return NULL;
    }
    fp = fdopen(fd, "w+b");
    if (fp == NULL)
        close(fd);
    return fp;
}

static int put_u32(FILE *fp, uint32_t v)
{
    return fwrite(&v, sizeof(v), 1, fp) == 1 ? 0 : -1;
}

static int put_bytes(FILE *fp, const char *s, size_t n)
{
    if (put_u32(fp, (uint32_t)n) != 0)
        return -1;
    return n == 0 || fwrite(s, 1, n, fp) == n ? 0 : -1;
}

static int get_u32(FILE *fp, uint32_t *v)
{
    return fread(v, sizeof(*v), 1, fp) == 1 ? 0 : -1;
}

/* A length-prefixed string into b (NUL-terminated). */
static int get_bytes(FILE *fp, struct cts_buf *b)
{
    uint32_t n;

    cts_buf_reset(b);
    if (get_u32(fp, &n) != 0)
        return -1;
    while (n > 0) {
        char tmp[4096];
        size_t k = n < sizeof(tmp) ? n : sizeof(tmp);
        if (fread(tmp, 1, k, fp) != k)
            return -1;
        cts_buf_append(b, tmp, k);
        n -= (uint32_t)k;
    }
    return cts_buf_append(b, "", 0);
}

/* ---- collecting ---- */

struct cts_rejects *cts_rejects_new(const struct cts_config *cfg)
{
    struct cts_rejects *rj = cts_xcalloc(1, sizeof(*rj));
    size_t i;

    rj->cfg = cfg;
    rj->nin = cfg->ninputs;
    rj->in = cts_xcalloc(rj->nin > 0 ? rj->nin : 1, sizeof(*rj->in));
    for (i = 0; i < rj->nin; i++) {
        struct input *in = &rj->in[i];
        in->name = cfg->inputs[i];
        in->tee_fd = -1;
        /* Read again after the run only if it is the same file then. */
        in->id_ok = strcmp(in->name, "-") != 0 &&
                    stat(in->name, &in->id) == 0 && S_ISREG(in->id.st_mode);
    }
    return rj;
}

void cts_rejects_free(struct cts_rejects *rj)
{
    size_t i;

    if (rj == NULL)
        return;
    for (i = 0; i < rj->nin; i++) {
        if (rj->in[i].tee_fd >= 0)
            close(rj->in[i].tee_fd);
        free(rj->in[i].colmap);
    }
    for (i = 0; i < rj->ncols; i++) {
        free(rj->cols[i].name);
        free(rj->cols[i].norm);
    }
    if (rj->list != NULL)
        fclose(rj->list);
    free(rj->cols);
    free(rj->in);
    free(rj);
}

int cts_rejects_tee_start(struct cts_rejects *rj, size_t file_idx, int fd)
{
    struct input *in;
    struct stat st;
    int tfd;

    if (rj == NULL || file_idx >= rj->nin)
        return 0;
    in = &rj->in[file_idx];
    if (strcmp(in->name, "-") != 0 && fstat(fd, &st) == 0 &&
        S_ISREG(st.st_mode))
        return 0; /* read again by name */
    in->id_ok = 0;
    if (in->tee_fd >= 0)
        return in->tee_err == 0;
    tfd = tmp_fd();
    if (tfd < 0) {
        in->tee_err = tfd;
        return 0;
    }
    in->tee_fd = tfd;
    return 1;
}

void cts_rejects_tee(struct cts_rejects *rj, size_t file_idx, const void *data,
                     size_t len)
{
    struct input *in = &rj->in[file_idx];

    if (in->tee_fd >= 0 && in->tee_err == 0)
        in->tee_err = cts_write_all(in->tee_fd, data, len);
}

int cts_rejects_wanted(enum cts_status status)
{
    return status == CTS_ST_INVALID || status == CTS_ST_FAILED;
}

char *cts_rejects_problem(const struct cts_result *res, const char *message,
                          char *out, size_t outlen)
{
    const char *msg = message != NULL ? message : res->message;
    const char *key = res->error_key;

    if (msg != NULL && msg[0] == '\0')
        msg = NULL;
    if (res->status == CTS_ST_FAILED && res->http_status >= 400) {
        /* The API's words, after who said them and its code: a person
         * reads the message, support needs the key. */
        snprintf(out, outlen, "refused by Constant Contact (HTTP %d%s%s)%s%s",
                 res->http_status, key != NULL ? ", " : "",
                 key != NULL ? key : "", msg != NULL ? ": " : "",
                 msg != NULL ? msg : "");
    } else if (msg != NULL) {
        snprintf(out, outlen, "%s", msg);
    } else {
        snprintf(out, outlen, "%s",
                 res->status == CTS_ST_FAILED ? "the API refused it"
                                              : "invalid row");
    }
    return out;
}

/* The input a result belongs to: rows come in input order, so from the
 * current one on (the pointer is cfg->inputs[i]; the name is the
 * fallback, from the current input only forward). */
static size_t input_of(struct cts_rejects *rj, const char *file)
{
    size_t i;

    for (i = rj->cur; i < rj->nin; i++)
        if (rj->in[i].name == file)
            return i;
    for (i = rj->cur; i < rj->nin; i++)
        if (file != NULL && strcmp(rj->in[i].name, file) == 0)
            return i;
    return rj->nin;
}

int cts_rejects_add(struct cts_rejects *rj, const struct cts_result *res,
                    const char *message)
{
    char problem[1024];
    size_t i;
    int64_t row = res->row;

    if (!cts_rejects_wanted(res->status))
        return 0;
    if (rj->list_err != 0)
        return rj->list_err;
    i = input_of(rj, res->file);
    if (i >= rj->nin)
        return 0; /* not a row of an input (a programmer error) */
    rj->cur = i;
    if (rj->list == NULL && (rj->list = tmp_file()) == NULL) {
        rj->list_err = errno != 0 ? -errno : UV_EIO;
        return rj->list_err;
    }
    cts_rejects_problem(res, message, problem, sizeof(problem));
    if (put_u32(rj->list, (uint32_t)i) != 0 ||
        fwrite(&row, sizeof(row), 1, rj->list) != 1 ||
        put_bytes(rj->list, problem, strlen(problem)) != 0) {
        rj->list_err = errno != 0 ? -errno : UV_EIO;
        return rj->list_err;
    }
    rj->in[i].kept++;
    rj->count++;
    return 0;
}

long cts_rejects_count(const struct cts_rejects *rj)
{
    return rj != NULL ? rj->count : 0;
}

char *cts_rejects_default_path(const char *report)
{
    struct stat st;
    size_t n = strlen(report);

    if (stat(report, &st) == 0 && !S_ISREG(st.st_mode))
        return NULL;
    if (n > 11 && cts_streq_nocase(report + n - 11, ".report.csv"))
        n -= 11;
    else if (n > 4 && cts_streq_nocase(report + n - 4, ".csv"))
        n -= 4;
    return cts_xasprintf("%.*s.rejects.csv", (int)n, report);
}

/* ---- reading the inputs back ---- */

/* The next record of the list. */
struct rec {
    int have;
    uint32_t idx;
    int64_t row;
    struct cts_buf problem;
};

static void rec_next(FILE *list, struct rec *r)
{
    r->have = get_u32(list, &r->idx) == 0 &&
              fread(&r->row, sizeof(r->row), 1, list) == 1 &&
              get_bytes(list, &r->problem) == 0;
}

struct pass {
    struct cts_rejects *rj;
    size_t idx;
    struct rec *next;
    FILE *body;
    int body_err;
    long found;
};

/* Union column for the occ-th column normalised to norm; added when new
 * (name and norm taken). */
static size_t union_col(struct cts_rejects *rj, char *name, char *norm,
                        unsigned occ)
{
    size_t i;

    for (i = 0; i < rj->ncols; i++)
        if (rj->cols[i].occ == occ && strcmp(rj->cols[i].norm, norm) == 0) {
            free(name);
            free(norm);
            return i;
        }
    if (rj->ncols == rj->capcols) {
        rj->capcols = rj->capcols != 0 ? 2 * rj->capcols : 16;
        rj->cols = cts_xrealloc(rj->cols, rj->capcols * sizeof(*rj->cols));
    }
    rj->cols[rj->ncols].name = name;
    rj->cols[rj->ncols].norm = norm;
    rj->cols[rj->ncols].occ = occ;
    return rj->ncols++;
}

/* An input's header: where each of its columns goes in the rejects file.
 * Names are matched normalised (as the mapper reads them), so "First
 * Name" in one file and "first_name" in another share a column; the
 * problem column of an earlier rejects file is dropped (a new one ends
 * every row). */
static void take_header(struct cts_rejects *rj, struct input *in,
                        const struct cts_row *row)
{
    size_t j, k;
    char **norms = cts_xcalloc(row->nfields + 1, sizeof(*norms));

    free(in->colmap);
    in->ncols = row->nfields;
    in->colmap = cts_xcalloc(row->nfields + 1, sizeof(*in->colmap));
    for (j = 0; j < row->nfields; j++) {
        unsigned occ = 0;
        norms[j] = cts_header_normalize(row->fields[j]);
        if (strcmp(norms[j], CTS_REJECTS_PROBLEM_NORM) == 0) {
            in->colmap[j] = -1;
            continue;
        }
        for (k = 0; k < j; k++)
            occ += strcmp(norms[k], norms[j]) == 0;
        in->colmap[j] = (int)union_col(rj, cts_xstrdup(row->fields[j]),
                                       cts_xstrdup(norms[j]), occ);
    }
    for (j = 0; j < row->nfields; j++)
        free(norms[j]);
    free(norms);
}

static int cb_row(const struct cts_row *row, void *arg)
{
    struct pass *ps = arg;
    struct cts_rejects *rj = ps->rj;
    struct rec *r = ps->next;
    size_t j;

    if (row->row == 0) {
        take_header(rj, &rj->in[ps->idx], row);
        return 0;
    }
    while (r->have && r->idx == ps->idx && r->row < row->row)
        rec_next(rj->list, r); /* not found: counted by the caller */
    if (!r->have || r->idx != ps->idx)
        return STOP_READER; /* this input's rows are all found */
    if (r->row != row->row)
        return 0;
    if (row->nfields > rj->in[ps->idx].ncols &&
        row->nfields - rj->in[ps->idx].ncols > rj->nextra)
        rj->nextra = row->nfields - rj->in[ps->idx].ncols;
    if (put_u32(ps->body, (uint32_t)ps->idx) != 0 ||
        put_u32(ps->body, (uint32_t)row->nfields) != 0)
        ps->body_err = 1;
    for (j = 0; j < row->nfields && !ps->body_err; j++)
        if (put_bytes(ps->body, row->fields[j], strlen(row->fields[j])) != 0)
            ps->body_err = 1;
    if (!ps->body_err &&
        put_bytes(ps->body, r->problem.data, r->problem.len) != 0)
        ps->body_err = 1;
    ps->found++;
    rec_next(rj->list, r);
    return ps->body_err ? UV_EIO : 0;
}

/* Open input idx for reading again: its copy, or the file by name when
 * it is the file that was read.  A descriptor (the copy's is borrowed:
 * *owned 0) or -1 with why filled. */
static int reopen(struct cts_rejects *rj, struct input *in,
                  enum cts_encoding *enc, int *owned, char *why, size_t n)
{
    struct cts_error err = {0};
    struct stat st;
    int fd;

    *enc = rj->cfg->encoding;
    *owned = 0;
    if (in->tee_fd >= 0 || in->tee_err != 0) {
        if (in->tee_err != 0 || lseek(in->tee_fd, 0, SEEK_SET) != 0) {
            snprintf(why, n, "its copy could not be kept: %s",
                     cts_strerror(in->tee_err != 0 ? in->tee_err : -errno));
            return -1;
        }
        /* Read as the intake read it: a stream's encoding is decided as
         * it goes, never by a pre-scan. */
        return in->tee_fd;
    }
    do
        fd = open(in->name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf(why, n, "cannot open it again: %s", strerror(errno));
        return -1;
    }
    if (!in->id_ok || fstat(fd, &st) != 0 || st.st_dev != in->id.st_dev ||
        st.st_ino != in->id.st_ino || st.st_size != in->id.st_size ||
        st.st_mtim.tv_sec != in->id.st_mtim.tv_sec ||
        st.st_mtim.tv_nsec != in->id.st_mtim.tv_nsec) {
        snprintf(why, n, "it changed during the run");
        close(fd);
        return -1;
    }
    /* The intake's decision for a regular file, made again on the same
     * bytes: the same rows come out. */
    if (*enc == CTS_ENC_AUTO &&
        cts_encoding_detect_fd(fd, in->name, enc, &err) != 0) {
        snprintf(why, n, "%s", err.msg);
        close(fd);
        return -1;
    }
    *owned = 1;
    return fd;
}

/* Read input idx again and copy its rejected rows to the body. */
static int read_back(struct cts_rejects *rj, size_t idx, struct rec *r,
                     FILE *body)
{
    struct input *in = &rj->in[idx];
    struct cts_reader_opts o;
    struct cts_reader *rd;
    struct cts_error err = {0};
    struct pass ps;
    enum cts_encoding enc;
    char why[600];
    char *buf;
    ssize_t got;
    int fd, owned, rc = 0;

    memset(&ps, 0, sizeof(ps));
    ps.rj = rj;
    ps.idx = idx;
    ps.next = r;
    ps.body = body;
    why[0] = '\0';
    fd = reopen(rj, in, &enc, &owned, why, sizeof(why));
    if (fd >= 0) {
        memset(&o, 0, sizeof(o));
        o.file = in->name;
        o.delimiter = rj->cfg->delimiter;
        o.enc = enc;
        rd = cts_reader_new(&o, cb_row, &ps);
        buf = cts_xmalloc(READ_CHUNK);
        for (;;) {
            do
                got = read(fd, buf, READ_CHUNK);
            while (got < 0 && errno == EINTR);
            if (got < 0) {
                snprintf(why, sizeof(why), "cannot read it again: %s",
                         strerror(errno));
                break;
            }
            rc = got > 0 ? cts_reader_feed(rd, buf, (size_t)got, &err)
                         : cts_reader_finish(rd, &err);
            if (got == 0 || rc != 0)
                break;
        }
        free(buf);
        cts_reader_free(rd);
        if (owned)
            close(fd);
    }
    if (ps.body_err)
        return UV_EIO;
    /* Rows not met: skipped here, said once. */
    while (r->have && r->idx == idx)
        rec_next(rj->list, r);
    if (ps.found < in->kept)
        cts_log_warn("%s: %ld rejected row%s left out of the rejects file "
                     "(%s); see the report",
                     in->name, in->kept - ps.found,
                     in->kept - ps.found == 1 ? "" : "s",
                     why[0] != '\0' ? why : "not found when read again");
    return 0;
}

/* ---- writing ---- */

static int flush_out(int fd, struct cts_buf *b, int force)
{
    int rc = 0;

    if (b->len > 0 && (force || b->len >= WRITE_FLUSH))
        rc = cts_write_all(fd, b->data, b->len);
    if (force || b->len >= WRITE_FLUSH)
        cts_buf_reset(b);
    return rc;
}

/* The header line: the union of the headers, unnamed columns for the
 * widest row's extra cells, the problem column. */
static void put_header(struct cts_rejects *rj, struct cts_buf *b)
{
    size_t i;

    cts_buf_append(b, "\xef\xbb\xbf", 3);
    for (i = 0; i < rj->ncols + rj->nextra; i++) {
        if (i < rj->ncols)
            cts_report_cell(b, rj->cols[i].name);
        cts_buf_putc(b, ',');
    }
    cts_report_cell(b, CTS_REJECTS_PROBLEM);
    cts_buf_append(b, "\r\n", 2);
}

/* Copy the body's rows to the rejects file, each cell under its column. */
static int put_rows(struct cts_rejects *rj, FILE *body, int fd,
                    struct cts_buf *b, long *written)
{
    size_t width = rj->ncols + rj->nextra, j, k;
    struct cts_buf *vals = cts_xcalloc(width + 1, sizeof(*vals));
    const char **cells = cts_xcalloc(width + 1, sizeof(*cells));
    struct cts_buf field;
    uint32_t idx, nf;
    int rc = 0;

    cts_buf_init(&field, 0);
    for (j = 0; j <= width; j++)
        cts_buf_init(&vals[j], 0);
    rewind(body);
    while (rc == 0 && get_u32(body, &idx) == 0 && get_u32(body, &nf) == 0 &&
           idx < rj->nin) {
        const struct input *in = &rj->in[idx];
        for (j = 0; j < width; j++)
            cells[j] = NULL;
        for (j = 0; j < nf; j++) {
            if (get_bytes(body, &field) != 0) {
                rc = UV_EIO;
                break;
            }
            if (j < in->ncols && in->colmap[j] < 0)
                continue; /* an earlier problem column */
            k = j < in->ncols ? (size_t)in->colmap[j]
                              : rj->ncols + (j - in->ncols);
            cts_buf_reset(&vals[k]);
            cts_buf_append(&vals[k], field.data, field.len + 1);
            cells[k] = vals[k].data;
        }
        if (rc != 0 || get_bytes(body, &field) != 0) {
            rc = UV_EIO;
            break;
        }
        for (j = 0; j < width; j++) {
            cts_report_cell(b, cells[j]);
            cts_buf_putc(b, ',');
        }
        cts_report_cell(b, field.data);
        cts_buf_append(b, "\r\n", 2);
        (*written)++;
        rc = flush_out(fd, b, 0);
    }
    for (j = 0; j <= width; j++)
        cts_buf_free(&vals[j]);
    cts_buf_free(&field);
    free(vals);
    free(cells);
    return rc;
}

/* No rejected row: no file, and an earlier run's is removed (a regular
 * file only: never a device such as /dev/null, nor through a link). */
static void remove_stale(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0)
        cts_log_debug("removed %s: no row needs a person this time", path);
}

int cts_rejects_write(struct cts_rejects *rj, const char *path, long *written,
                      struct cts_error *err)
{
    struct rec r;
    struct cts_buf b;
    struct stat st;
    FILE *body = NULL;
    long n = 0;
    size_t i;
    int fd = -1, rc = 0;

    if (written != NULL)
        *written = 0;
    if (rj->list_err != 0)
        return cts_error_setx(err, rj->list_err, CTS_EX_CANTCREAT,
                              "cannot keep the rejected rows: %s",
                              cts_strerror(rj->list_err));
    memset(&r, 0, sizeof(r));
    cts_buf_init(&r.problem, 0);
    cts_buf_init(&b, 0);
    if (rj->count > 0) {
        body = tmp_file();
        if (body == NULL || fflush(rj->list) != 0) {
            rc = cts_error_setx(err, UV_EIO, CTS_EX_CANTCREAT,
                                "cannot write the rejects file %s: %s", path,
                                strerror(errno));
            goto out;
        }
        rewind(rj->list);
        rec_next(rj->list, &r);
        /* Inputs in order, each read once, only those with rows. */
        while (rc == 0 && r.have && r.idx < rj->nin) {
            i = r.idx;
            rc = read_back(rj, i, &r, body);
        }
        if (rc == 0 && fflush(body) != 0)
            rc = UV_EIO;
        if (rc != 0) {
            rc = cts_error_setx(err, rc, CTS_EX_CANTCREAT,
                                "cannot write the rejects file %s: %s", path,
                                cts_strerror(rc));
            goto out;
        }
    }
    if (body == NULL || ftell(body) == 0) {
        remove_stale(path);
        goto out;
    }
    fd = cts_report_file_open(path, "rejects file", err);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, 0) != 0) {
        rc = -errno;
        goto io_error;
    }
    put_header(rj, &b);
    rc = put_rows(rj, body, fd, &b, &n);
    if (rc == 0)
        rc = flush_out(fd, &b, 1);
    if (rc != 0)
        goto io_error;
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        goto io_error;
    }
    fd = -1;
    if (written != NULL)
        *written = n;
    goto out;
io_error:
    rc = cts_error_setx(err, rc, CTS_EX_CANTCREAT,
                        "cannot write the rejects file %s: %s", path,
                        cts_strerror(rc));
out:
    if (fd >= 0)
        close(fd);
    if (body != NULL)
        fclose(body);
    cts_buf_free(&r.problem);
    cts_buf_free(&b);
    return rc;
}
