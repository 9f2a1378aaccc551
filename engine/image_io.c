/* Image files around the codecs (engine/codec.h): opening files and standard input, sniffing
 * the format, load options applied after decoding, the atomic save through a temporary file,
 * encoding to memory.
 *
 * Decoders take samples as stored (see each codec); what a load changes afterwards is stated
 * by its options (tsr__load_opts): EXIF orientation and ICC profile to sRGB.
 *
 * Cancel and progress (tsr__io_ctl) are checked between bands of rows, outside the libraries'
 * calls: a cancel returns like any other failure and leaves the cleanup to the same path.
 *
 * Files are written to a temporary file beside the destination, registered in a fixed table
 * that tsr_cleanup_temp_files() (async-signal safe) empties with unlink().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "meta.h"

#define JPEG_DEFAULT_QUALITY 92
#define PNG_DEFAULT_COMPRESSION 6
#define JPEG_DEFAULT_SUBSAMPLING 420
#define WEBP_DEFAULT_QUALITY 90

/* Every format, in the order sniffing tries them. */
static const tsr__codec *const codecs[] = {&tsr__codec_png, &tsr__codec_jpeg, &tsr__codec_webp,
                                           &tsr__codec_tiff};
#define N_CODECS (sizeof codecs / sizeof codecs[0])

const tsr__codec *tsr__codec_for(tsr_format f)
{
    for (size_t i = 0; i < N_CODECS; i++)
        if (codecs[i]->format == f)
            return codecs[i];
    return NULL;
}

/* The format a file name's extension names; TSR_FORMAT_AUTO when none does. */
tsr_format tsr__format_from_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (!dot || !dot[1])
        return TSR_FORMAT_AUTO;
    size_t n = strlen(dot + 1);
    for (size_t i = 0; i < N_CODECS; i++)
        for (const char *e = codecs[i]->exts; *e;) {
            size_t len = strcspn(e, "|");
            if (len == n && !strncasecmp(e, dot + 1, n))
                return codecs[i]->format;
            e += len + (e[len] == '|');
        }
    return TSR_FORMAT_AUTO;
}

/* The formats of the table, for messages. */
#define FORMAT_LIST "PNG, JPEG, WebP or TIFF"

const char *tsr__extension_list(void)
{
    return ".png, .jpg, .jpeg, .webp, .tif or .tiff";
}

/* `cost`: how many times slower than decoding a byte of the row is (1 for decoders). */
void tsr__meter_init(tsr__meter *m, const tsr__io_ctl *ctl, int64_t total, size_t rowbytes,
                     unsigned cost)
{
    m->ctl = ctl;
    m->done = 0;
    m->total = total;
    m->next = 0;
    size_t rows = rowbytes ? TSR_IO_BAND_BYTES / cost / rowbytes : TSR_IO_BAND_ROWS;
    m->band = rows < 1 ? 1 : rows > TSR_IO_BAND_ROWS ? TSR_IO_BAND_ROWS : (int)rows;
}

int tsr__io_cancelled(const tsr__io_ctl *ctl)
{
    return ctl && ctl->cancelled && ctl->cancelled(ctl->user);
}

/* Call before each row; non-zero: cancelled, stop. */
int tsr__meter_row(tsr__meter *m)
{
    if (m->done == m->next) {
        m->next += m->band;
        if (m->done > 0 && m->ctl && m->ctl->progress)
            m->ctl->progress(m->ctl->user, m->done, m->total);
        if (tsr__io_cancelled(m->ctl))
            return 1;
    }
    m->done++;
    return 0;
}

/* Once, when the whole image went through. */
void tsr__meter_end(const tsr__meter *m)
{
    if (m->ctl && m->ctl->progress)
        m->ctl->progress(m->ctl->user, m->total, m->total);
}

static tsr_status vfail(tsr__err *err, tsr_status rc, const char *name, const char *fmt, va_list ap)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    return tsr__seterr(err, rc, "%s: %s", name, text);
}

void tsr__meta_free(tsr__meta *m)
{
    free(m->icc);
    free(m->exif);
    memset(m, 0, sizeof *m);
}

int tsr__meta_set(unsigned char **dst, size_t *dst_len, const void *src, size_t len)
{
    unsigned char *p = len ? malloc(len) : NULL;
    if (len && !p)
        return -1;
    if (len)
        memcpy(p, src, len);
    free(*dst);
    *dst = p;
    *dst_len = len;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding */

tsr_status tsr__dec_vfail(tsr__dec *d, tsr_status rc, const char *fmt, va_list ap)
{
    if (d->rc)
        return d->rc;
    vfail(d->err, rc, d->name, fmt, ap);
    d->rc = rc;
    return rc;
}

tsr_status tsr__dec_fail(tsr__dec *d, tsr_status rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr__dec_vfail(d, rc, fmt, ap);
    va_end(ap);
    return d->rc;
}

tsr_status tsr__dec_cancel(tsr__dec *d)
{
    if (!d->rc)
        d->rc = tsr__seterr(d->err, TSR_ERR_CANCELLED, "cancelled while decoding '%s'", d->name);
    return d->rc;
}

tsr_status tsr__dec_check_limit(tsr__dec *d, uint64_t w, uint64_t h, const char *what)
{
    uint64_t max = d->max_pixels ? d->max_pixels : TSR_DEFAULT_MAX_PIXELS;
    if (w == 0 || h == 0)
        return tsr__dec_fail(d, TSR_ERR_DECODE, "%s header gives an empty image (%llux%llu)", what,
                             (unsigned long long)w, (unsigned long long)h);
    if (w > INT_MAX || h > INT_MAX || w * h > max)
        return tsr__dec_fail(d, TSR_ERR_LIMIT,
                             "%s image of %llux%llu = %llu pixels exceeds the limit of %llu "
                             "pixels",
                             what, (unsigned long long)w, (unsigned long long)h,
                             (unsigned long long)(w * h), (unsigned long long)max);
    return TSR_OK;
}

/* Sniff the format from the first bytes and run the matching decoder; meta: the file's
 * metadata moves there on success (NULL: dropped). */
static tsr_status decode_once(FILE *fp, const char *name, uint64_t max_pixels, int header_only,
                              const tsr__load_opts *lo, const tsr__io_ctl *ctl, tsr_port_info *info,
                              tsr_image **out, tsr__meta *meta, tsr__err *err, int *eof_only)
{
    tsr__dec *d = calloc(1, sizeof *d);
    if (!d)
        return tsr__seterr(err, TSR_ERR_NOMEM, "%s: out of memory", name);
    d->fp = fp;
    d->name = name;
    d->max_pixels = max_pixels;
    d->header_only = header_only;
    if (lo)
        d->lo = *lo;
    d->ctl = ctl;
    d->err = err;

    tsr_status rc;
    unsigned char sig[16];
    size_t n = fread(sig, 1, sizeof sig, fp);
    const tsr__codec *codec = NULL, *cut = NULL;
    for (size_t i = 0; n && i < N_CODECS && !codec; i++) {
        int s = codecs[i]->sniff(sig, n);
        if (s > 0)
            codec = codecs[i];
        else if (s < 0 && !cut)
            cut = codecs[i];
    }
    if (n < sizeof sig && ferror(fp)) {
        rc = tsr__dec_fail(d, TSR_ERR_IO, "read error: %s", strerror(errno));
    } else if (n == 0) {
        rc = tsr__dec_fail(d, TSR_ERR_DECODE, "empty file (expected a %s image)", FORMAT_LIST);
    } else if (codec) {
        if (fseek(fp, 0, SEEK_SET))
            rc = tsr__dec_fail(d, TSR_ERR_IO, "cannot seek: %s", strerror(errno));
        else
            rc = codec->decode(d);
        if (!rc)
            rc = tsr__dec_apply_meta(d); /* orientation, colour */
    } else if (cut) {
        rc = tsr__dec_fail(d, TSR_ERR_DECODE,
                           "truncated %s file (%zu bytes, too short for its header)", cut->name, n);
    } else {
        rc = tsr__dec_fail(d, TSR_ERR_DECODE,
                           "not a %s file (expected the PNG signature 89 50 4E 47 0D 0A 1A 0A, "
                           "the JPEG marker FF D8 FF, RIFF....WEBP, or the TIFF header II*\\0 / "
                           "MM\\0*)",
                           FORMAT_LIST);
    }
    if (!rc && !header_only && d->recovered[0] && ctl && ctl->warn)
        ctl->warn(ctl->user, d->recovered);
    if (!rc) {
        if (info)
            *info = d->info;
        if (out)
            *out = d->img;
        if (meta) {
            *meta = d->meta;
            memset(&d->meta, 0, sizeof d->meta);
        }
    } else {
        tsr_image_free(d->img);
    }
    tsr__meta_free(&d->meta);
    *eof_only = d->eof_only;
    free(d);
    return rc;
}

/* A single-scan JPEG that ran out of data is tried once more with an EOI marker appended: when
 * that is all it lacked, it loads, as vips and browsers load it; otherwise (data missing inside
 * the scan) the first error stands. A progressive file cut between scans can not be told from
 * one missing only its EOI, so it stays refused. */
static tsr_status decode_stream(FILE *fp, const char *name, uint64_t max_pixels, int header_only,
                                const tsr__load_opts *lo, const tsr__io_ctl *ctl,
                                tsr_port_info *info, tsr_image **out, tsr__meta *meta,
                                tsr__err *err)
{
    int jeof = 0;
    tsr_status rc =
        decode_once(fp, name, max_pixels, header_only, lo, ctl, info, out, meta, err, &jeof);
    if (rc != TSR_ERR_DECODE || !jeof || fseek(fp, 0, SEEK_END))
        return rc;
    long size = ftell(fp);
    unsigned char *buf = size > 0 && size < (1L << 30) ? malloc((size_t)size + 2) : NULL;
    if (!buf || fseek(fp, 0, SEEK_SET) || fread(buf, 1, (size_t)size, fp) != (size_t)size) {
        free(buf);
        return rc;
    }
    buf[size] = 0xFF;
    buf[size + 1] = 0xD9;
    tsr__err first = *err;
    FILE *mf = fmemopen(buf, (size_t)size + 2, "rb");
    tsr_status again =
        mf ? decode_once(mf, name, max_pixels, header_only, lo, ctl, info, out, meta, err, &jeof)
           : rc;
    if (mf)
        fclose(mf);
    free(buf);
    if (again) {
        *err = first;
        return rc;
    }
    return TSR_OK;
}

/* Standard input ("-" as a load path) is read once, whole, and kept: inference reads the header
 * and the run the pixels from the same bytes (a pipe can not be read twice). */
#define STDIN_MAX ((size_t)1 << 31)
static pthread_mutex_t stdin_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *stdin_buf;
static size_t stdin_len;
static int stdin_read;

static tsr_status stdin_bytes(const unsigned char **buf, size_t *len, tsr__err *err)
{
    tsr_status rc = TSR_OK;
    pthread_mutex_lock(&stdin_mu);
    if (!stdin_read) {
        size_t cap = 1 << 20;
        stdin_buf = malloc(cap);
        while (stdin_buf) {
            if (stdin_len == cap) {
                unsigned char *b = cap < STDIN_MAX ? realloc(stdin_buf, cap * 2) : NULL;
                if (!b) {
                    rc = cap < STDIN_MAX ? tsr__seterr(err, TSR_ERR_NOMEM, "<stdin>: out of memory")
                                         : tsr__seterr(err, TSR_ERR_LIMIT,
                                                       "<stdin>: more than %zu bytes", STDIN_MAX);
                    break;
                }
                stdin_buf = b;
                cap *= 2;
            }
            size_t n = fread(stdin_buf + stdin_len, 1, cap - stdin_len, stdin);
            stdin_len += n;
            if (n == 0) {
                if (ferror(stdin))
                    rc = tsr__seterr(err, TSR_ERR_IO, "<stdin>: read error: %s", strerror(errno));
                break;
            }
        }
        if (!stdin_buf && !rc)
            rc = tsr__seterr(err, TSR_ERR_NOMEM, "<stdin>: out of memory");
        stdin_read = !rc;
        if (rc) {
            free(stdin_buf);
            stdin_buf = NULL;
            stdin_len = 0;
        }
    }
    *buf = stdin_buf;
    *len = stdin_len;
    pthread_mutex_unlock(&stdin_mu);
    return rc;
}

/* What a path names when it is not a regular file, for messages. */
static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

tsr_status tsr__fopen_regular(const char *path, FILE **out, tsr__err *err)
{
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever; the
     * check is on the opened descriptor, so the file cannot be swapped after it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return tsr__seterr(err, TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int en = errno;
        close(fd);
        return tsr__seterr(err, TSR_ERR_IO, "%s: cannot open: %s", path, strerror(en));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tsr__seterr(err, TSR_ERR_IO, "%s: cannot read: %s, not a regular file", path,
                           file_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    FILE *f = fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        int en = errno;
        close(fd);
        return tsr__seterr(err, en == ENOMEM ? TSR_ERR_NOMEM : TSR_ERR_IO, "%s: cannot open: %s",
                           path, strerror(en));
    }
    *out = f;
    return TSR_OK;
}

static tsr_status decode_file(const char *path, uint64_t max_pixels, int header_only,
                              const tsr__load_opts *lo, const tsr__io_ctl *ctl, tsr_port_info *info,
                              tsr_image **out, tsr__meta *meta, tsr__err *err)
{
    if (!path)
        return tsr__seterr(err, TSR_ERR_INVALID, "image path is NULL");
    if (strcmp(path, "-") == 0) {
        const unsigned char *buf;
        size_t len;
        tsr_status rc = stdin_bytes(&buf, &len, err);
        if (rc)
            return rc;
        if (len == 0)
            return tsr__seterr(err, TSR_ERR_DECODE, "<stdin>: no data");
        FILE *mf = fmemopen((void *)buf, len, "rb");
        if (!mf)
            return tsr__seterr(err, TSR_ERR_NOMEM, "<stdin>: %s", strerror(errno));
        rc = decode_stream(mf, "<stdin>", max_pixels, header_only, lo, ctl, info, out, meta, err);
        fclose(mf);
        return rc;
    }
    FILE *fp;
    tsr_status rc = tsr__fopen_regular(path, &fp, err);
    if (rc)
        return rc;
    rc = decode_stream(fp, path, max_pixels, header_only, lo, ctl, info, out, meta, err);
    fclose(fp); /* read-only: a close error cannot lose data */
    return rc;
}

tsr_status tsr__image_probe(const char *path, uint64_t max_pixels, const tsr__load_opts *lo,
                            tsr_port_info *info, tsr__err *err)
{
    if (!info)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__image_probe: info is NULL");
    return decode_file(path, max_pixels, 1, lo, NULL, info, NULL, NULL, err);
}

tsr_status tsr__image_read_meta(const char *path, tsr__meta *out, tsr__err *err)
{
    memset(out, 0, sizeof *out);
    tsr_port_info info;
    tsr__load_opts lo = {.orientation = TSR_ORIENT_IGNORE, .colour = TSR_COLOUR_KEEP};
    return decode_file(path, UINT64_MAX, 1, &lo, NULL, &info, NULL, out, err);
}

tsr_status tsr__image_load(const char *path, uint64_t max_pixels, const tsr__load_opts *lo,
                           const tsr__io_ctl *ctl, tsr_image **out, tsr__err *err)
{
    if (!out)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__image_load: out is NULL");
    *out = NULL;
    return decode_file(path, max_pixels, 0, lo, ctl, NULL, out, NULL, err);
}

tsr_status tsr__image_decode(const unsigned char *buf, size_t len, const char *name,
                             uint64_t max_pixels, const tsr__load_opts *lo, const tsr__io_ctl *ctl,
                             tsr_image **out, tsr__err *err)
{
    if (!name)
        name = "<memory>";
    if (!out || (!buf && len))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: tsr__image_decode: NULL argument", name);
    *out = NULL;
    if (len == 0) /* fmemopen may refuse an empty buffer */
        return tsr__seterr(err, TSR_ERR_DECODE, "%s: empty file (expected a %s image)", name,
                           FORMAT_LIST);
    /* One decoder over a stdio stream serves both files and memory. */
    FILE *fp = fmemopen((void *)buf, len, "rb");
    if (!fp)
        return tsr__seterr(err, errno == ENOMEM ? TSR_ERR_NOMEM : TSR_ERR_IO,
                           "%s: cannot open a memory stream: %s", name, strerror(errno));
    tsr_status rc = decode_stream(fp, name, max_pixels, 0, lo, ctl, NULL, out, NULL, err);
    fclose(fp);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

tsr_status tsr__enc_fail(tsr__enc *e, tsr_status rc, const char *fmt, ...)
{
    if (e->rc)
        return e->rc;
    va_list ap;
    va_start(ap, fmt);
    vfail(e->err, rc, e->path, fmt, ap);
    va_end(ap);
    e->rc = rc;
    return rc;
}

tsr_status tsr__enc_cancel(tsr__enc *e)
{
    if (!e->rc)
        e->rc = tsr__seterr(e->err, TSR_ERR_CANCELLED, "cancelled while encoding '%s'", e->path);
    return e->rc;
}

int tsr__enc_write(tsr__enc *e, const void *buf, size_t len)
{
    if (e->fp) {
        if (fwrite(buf, 1, len, e->fp) == len)
            return 0;
        tsr__enc_fail(e, TSR_ERR_IO, "write error: %s", strerror(errno));
        return -1;
    }
    if (len > e->mem_cap - e->mem_len) {
        size_t cap = e->mem_cap ? e->mem_cap : 65536;
        while (cap - e->mem_len < len) {
            if (cap > SIZE_MAX / 2) {
                tsr__enc_fail(e, TSR_ERR_NOMEM, "encoded image larger than memory can hold");
                return -1;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(e->mem, cap);
        if (!p) {
            tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory for %zu bytes of encoded image", cap);
            return -1;
        }
        e->mem = p;
        e->mem_cap = cap;
    }
    memcpy(e->mem + e->mem_len, buf, len);
    e->mem_len += len;
    return 0;
}

/* Temporary files being written, for tsr_cleanup_temp_files(), which may run in a signal
 * handler: a fixed table, atomics only, nothing to allocate or lock on its side.
 *
 * A slot goes FREE -> CLAIMED (its owner alone writes the path) -> ACTIVE (published: the
 * cleanup may unlink it) -> FREE. The cleanup holds an ACTIVE slot as BUSY while it reads the
 * path, so that the owner cannot free the slot and another save reuse it under the cleanup's
 * feet; the owner waits that out (a single unlink) before freeing it. The path is published
 * right after the file is created, so a signal in the few instructions between the two can
 * still leave one file behind. A save that finds no free slot (TMP_SLOTS saves at once) or whose
 * name does not fit runs unregistered. */
#define TMP_SLOTS 64
#define TMP_PATH_BYTES 4096

enum { SLOT_FREE = 0, SLOT_CLAIMED, SLOT_ACTIVE, SLOT_BUSY };

static struct tmp_slot {
    atomic_int state;
    char path[TMP_PATH_BYTES];
} tmp_slots[TMP_SLOTS];

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "tsr_cleanup_temp_files needs a lock-free atomic_int");

/* A slot for a path of `bytes` bytes (NUL included), CLAIMED; -1 if none. */
static int tmp_claim(size_t bytes)
{
    if (bytes > TMP_PATH_BYTES)
        return -1;
    for (int i = 0; i < TMP_SLOTS; i++) {
        int want = SLOT_FREE;
        if (atomic_load_explicit(&tmp_slots[i].state, memory_order_relaxed) == SLOT_FREE &&
            atomic_compare_exchange_strong_explicit(&tmp_slots[i].state, &want, SLOT_CLAIMED,
                                                    memory_order_acquire, memory_order_relaxed))
            return i;
    }
    return -1;
}

/* Free the slot once its file is renamed or removed (or was never created). */
static void tmp_release(int slot)
{
    if (slot < 0)
        return;
    atomic_int *st = &tmp_slots[slot].state;
    for (;;) {
        int want = SLOT_ACTIVE;
        if (atomic_compare_exchange_weak_explicit(st, &want, SLOT_FREE, memory_order_release,
                                                  memory_order_relaxed))
            return;
        if (want == SLOT_CLAIMED) {
            atomic_store_explicit(st, SLOT_FREE, memory_order_release);
            return;
        }
        if (want == SLOT_BUSY)
            sched_yield();
    }
}

void tsr_cleanup_temp_files(void)
{
    int saved = errno;
    for (int i = 0; i < TMP_SLOTS; i++) {
        int want = SLOT_ACTIVE;
        if (atomic_compare_exchange_strong_explicit(&tmp_slots[i].state, &want, SLOT_BUSY,
                                                    memory_order_acquire, memory_order_relaxed)) {
            unlink(tmp_slots[i].path);
            atomic_store_explicit(&tmp_slots[i].state, SLOT_ACTIVE, memory_order_release);
        }
    }
    errno = saved;
}

/* Create ".<base>.XXXXXX.tmp" beside path with O_EXCL (what mkstemp does), but with mode 0666
 * so the umask applies and the result gets the permissions of any newly created file. The name
 * is registered for tsr_cleanup_temp_files in *slot_out (-1: not registered) until
 * tmp_release. */
static tsr_status tmp_create(const char *path, char **tmp_out, int *fd_out, int *slot_out,
                             tsr__err *err)
{
    static atomic_uint counter;
    static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    *slot_out = -1;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = (size_t)(base - path), baselen = strlen(base);
    if (baselen == 0 || !strcmp(base, ".") || !strcmp(base, ".."))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: not a file name", path);
    size_t len = dirlen + baselen + sizeof "..XXXXXX.tmp";
    if (len < baselen)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: path too long", path);
    char *tmp = malloc(len);
    if (!tmp)
        return tsr__seterr(err, TSR_ERR_NOMEM, "%s: out of memory", path);
    int slot = tmp_claim(len);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec ^
                 ((uint64_t)atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull);
    for (int attempt = 0; attempt < 100; attempt++) {
        char suffix[7];
        for (int i = 0; i < 6; i++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            suffix[i] = digits[(x * 0x2545F4914F6CDD1Dull >> 40) % (sizeof digits - 1)];
        }
        suffix[6] = 0;
        snprintf(tmp, len, "%.*s.%s.%s.tmp", (int)dirlen, path, base, suffix);
        if (slot >= 0)
            memcpy(tmp_slots[slot].path, tmp, strlen(tmp) + 1);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            if (slot >= 0)
                atomic_store_explicit(&tmp_slots[slot].state, SLOT_ACTIVE, memory_order_release);
            *tmp_out = tmp;
            *fd_out = fd;
            *slot_out = slot;
            return TSR_OK;
        }
        if (errno != EEXIST) {
            int e = errno;
            /* The directory without its trailing slash, except for "/" itself. */
            int shown = dirlen > 1 ? (int)dirlen - 1 : 1;
            tsr__seterr(err, TSR_ERR_IO, "%s: cannot create a file in directory '%.*s': %s", path,
                        shown, dirlen ? path : ".", strerror(e));
            tmp_release(slot);
            free(tmp);
            return TSR_ERR_IO;
        }
    }
    tmp_release(slot);
    free(tmp);
    return tsr__seterr(err, TSR_ERR_IO, "%s: cannot find a free temporary file name", path);
}

void tsr_save_options_init(tsr_save_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    /* 0 is a real zlib level (stored), so "default" needs another value. */
    opt->compression = -1;
    opt->background[0] = opt->background[1] = opt->background[2] = 1.0f;
}

uint32_t tsr__format_max_side(tsr_format f)
{
    const tsr__codec *c = tsr__codec_for(f);
    return c ? c->max_side : 0;
}

const char *tsr__format_name(tsr_format f)
{
    const tsr__codec *c = tsr__codec_for(f);
    return c ? c->name : "unknown";
}

/* Fill defaults and check ranges; every field is checked whatever the format, so a bad value
 * is caught where it is set, not when the format changes. */
static tsr_status resolve_options(const tsr_image *img, const char *path, tsr_save_options *o,
                                  tsr__err *err)
{
    if (o->format == TSR_FORMAT_AUTO) {
        o->format = tsr__format_from_path(path);
        if (o->format == TSR_FORMAT_AUTO) {
            const char *slash = strrchr(path, '/');
            const char *ext = strrchr(slash ? slash + 1 : path, '.');
            return tsr__seterr(err, TSR_ERR_UNSUPPORTED,
                               "%s: unknown image file extension '%s' (expected %s)", path,
                               ext ? ext : "", tsr__extension_list());
        }
    }
    const tsr__codec *c = tsr__codec_for(o->format);
    if (!c)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: unknown format %d", path, (int)o->format);
    if (o->bit_depth == 0)
        o->bit_depth = img->bit_depth > 8 && (c->depths >> img->bit_depth & 1) ? img->bit_depth : 8;
    if (o->bit_depth < 1 || o->bit_depth > 32 || !(c->depths >> o->bit_depth & 1))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: bit depth %d (expected %s for %s)", path,
                           o->bit_depth,
                           c->depths == (1u << 8)              ? "8"
                           : c->depths == (1u << 8 | 1u << 16) ? "8 or 16"
                                                               : "8, 16 or 32",
                           c->name);
    for (int k = 0; k < 3; k++)
        if (!(o->background[k] >= 0.0f && o->background[k] <= 1.0f))
            return tsr__seterr(err, TSR_ERR_INVALID,
                               "%s: background component %d is %g (expected 0..1)", path, k,
                               (double)o->background[k]);
    if (o->quality == 0)
        o->quality = o->format == TSR_FORMAT_WEBP ? WEBP_DEFAULT_QUALITY : JPEG_DEFAULT_QUALITY;
    if (o->quality < 1 || o->quality > 100)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: quality %d (expected 1..100)", path,
                           o->quality);
    if (o->compression == -1)
        o->compression = PNG_DEFAULT_COMPRESSION;
    if (o->compression < 0 || o->compression > 9)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: PNG compression %d (expected 0..9)", path,
                           o->compression);
    if (o->subsampling == 0)
        o->subsampling = JPEG_DEFAULT_SUBSAMPLING;
    if (o->subsampling != 444 && o->subsampling != 422 && o->subsampling != 420)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: chroma subsampling %d (expected 444, 422 or 420)", path,
                           o->subsampling);
    if (o->lossless != 0 && o->lossless != 1)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: lossless %d (expected 0 or 1)", path,
                           o->lossless);
    if (o->tiff_compression == TSR_TIFF_DEFAULT)
        o->tiff_compression = TSR_TIFF_DEFLATE;
    if (o->tiff_compression < TSR_TIFF_NONE || o->tiff_compression > TSR_TIFF_DEFLATE)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: TIFF compression %d (expected none, LZW or Deflate)", path,
                           (int)o->tiff_compression);
    if ((o->icc_len && !o->icc) || (o->exif_len && !o->exif))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: metadata length without data", path);
    return TSR_OK;
}

static tsr_status check_image(const tsr_image *img, const char *name, tsr__err *err)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0 || img->channels < 1 ||
        img->channels > 4)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: no image, or an image with %d channels "
                           "(expected 1 to 4)",
                           name, img ? img->channels : 0);
    return TSR_OK;
}

static tsr__enc *enc_new(const tsr_image *img, const char *name, const tsr_save_options *opt,
                         const tsr__io_ctl *ctl, tsr__err *err)
{
    tsr__enc *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->path = name;
    e->err = err;
    e->ctl = ctl;
    e->img = img;
    if (opt)
        e->o = *opt;
    else
        tsr_save_options_init(&e->o);
    return e;
}

static void enc_free(tsr__enc *e)
{
    tsr__meta_free(&e->meta);
    free(e->mem);
    free(e);
}

static tsr_status encode(tsr__enc *e)
{
    if ((e->o.icc_len && tsr__meta_set(&e->meta.icc, &e->meta.icc_len, e->o.icc, e->o.icc_len)) ||
        (e->o.exif_len &&
         tsr__meta_set(&e->meta.exif, &e->meta.exif_len, e->o.exif, e->o.exif_len)))
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory for metadata");
    return tsr__codec_for(e->o.format)->encode(e);
}

/* The file a symbolic link at path names (links followed to the end; a dangling last link
 * names the file to create), malloc'd; NULL when path is not a link. */
static char *link_target(const char *path)
{
    struct stat st;
    if (lstat(path, &st) || !S_ISLNK(st.st_mode))
        return NULL;
    char *real = realpath(path, NULL);
    if (real)
        return real;
    char buf[4096], dir[4096];
    const char *cur = path;
    char *out = NULL;
    for (int hops = 0; hops < 40; hops++) { /* dangling: follow the text of each link */
        ssize_t n = readlink(cur, buf, sizeof buf - 1);
        if (n < 0)
            break;
        buf[n] = 0;
        char next[8200];
        tsr__dir_of(cur, dir, sizeof dir);
        if (buf[0] == '/')
            snprintf(next, sizeof next, "%s", buf);
        else
            snprintf(next, sizeof next, "%s/%s", dir, buf);
        free(out);
        if (!(out = strdup(next)))
            return NULL;
        if (lstat(out, &st) || !S_ISLNK(st.st_mode))
            return out;
        cur = out;
    }
    return out;
}

/* "-": the encoded bytes to standard output, in one write once the encoding is complete (a
 * failed or cancelled encode writes nothing). */
static tsr_status save_stdout(const tsr_image *img, const tsr_save_options *opt,
                              const tsr__io_ctl *ctl, tsr__err *err)
{
    void *buf = NULL;
    size_t len = 0;
    tsr_status rc = tsr__image_encode(img, opt, ctl, &buf, &len, err);
    if (rc) {
        tsr__err_prefix(err, "<stdout>: ");
        return rc;
    }
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout))
        rc = tsr__seterr(err, TSR_ERR_IO, "<stdout>: write error: %s", strerror(errno));
    free(buf);
    return rc;
}

tsr_status tsr__image_save(const tsr_image *img, const char *path, const tsr_save_options *opt,
                           const tsr__io_ctl *ctl, tsr__err *err)
{
    if (!path)
        return tsr__seterr(err, TSR_ERR_INVALID, "image path is NULL");
    if (strcmp(path, "-") == 0)
        return save_stdout(img, opt, ctl, err);
    tsr_status rc = check_image(img, path, err);
    if (rc)
        return rc;
    tsr__enc *e = enc_new(img, path, opt, ctl, err);
    if (!e)
        return tsr__seterr(err, TSR_ERR_NOMEM, "%s: out of memory", path);
    char *tmp = NULL, *dest = NULL;
    const char *target = path;
    int fd = -1, slot = -1;
    rc = resolve_options(img, path, &e->o, err);
    if (rc)
        goto fail;
    /* A symbolic link is written through: the temporary file goes beside the file it names,
     * and replaces that file (as vips and ImageMagick write through links). */
    dest = link_target(path);
    target = dest ? dest : path;
    rc = tmp_create(target, &tmp, &fd, &slot, err);
    if (rc)
        goto fail;
    /* Replacing a regular file keeps its permissions, never its setuid, setgid or sticky bits;
     * lstat: a symlink is not the regular file it points to. */
    struct stat st;
    /* target is the file itself (links resolved): permissions come only from a regular file
     * being replaced, and never the setuid/setgid/sticky bits. */
    if (lstat(target, &st) == 0 && S_ISREG(st.st_mode) && fchmod(fd, st.st_mode & 0777)) {
        rc = tsr__enc_fail(e, TSR_ERR_IO, "cannot set permissions on the temporary file: %s",
                           strerror(errno));
        goto fail;
    }
    if (!(e->fp = fdopen(fd, "wb"))) {
        rc = tsr__enc_fail(e, errno == ENOMEM ? TSR_ERR_NOMEM : TSR_ERR_IO,
                           "cannot open a stream: %s", strerror(errno));
        goto fail;
    }
    fd = -1;
    rc = encode(e);
    if (rc)
        goto fail;
    if (fflush(e->fp) || ferror(e->fp)) {
        rc = tsr__enc_fail(e, TSR_ERR_IO, "write error: %s", strerror(errno));
        goto fail;
    }
    int closed = fclose(e->fp);
    e->fp = NULL;
    if (closed) {
        rc = tsr__enc_fail(e, TSR_ERR_IO, "write error on close: %s", strerror(errno));
        goto fail;
    }
    if (rename(tmp, target)) {
        rc = tsr__enc_fail(e, TSR_ERR_IO, "cannot replace the file: %s", strerror(errno));
        goto fail;
    }
    free(tmp);
    tmp = NULL;

fail:
    if (e->fp)
        fclose(e->fp);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    tmp_release(slot); /* after the rename or the unlink: the name is gone */
    enc_free(e);
    free(dest);
    return rc;
}

tsr_status tsr__image_encode(const tsr_image *img, const tsr_save_options *opt,
                             const tsr__io_ctl *ctl, void **buf, size_t *len, tsr__err *err)
{
    static const char name[] = "memory";
    if (!buf || !len)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: tsr__image_encode: NULL argument", name);
    *buf = NULL;
    *len = 0;
    /* No file name to take the format from. */
    if (!opt || !tsr__codec_for(opt->format))
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: format %d (expected TSR_FORMAT_PNG, _JPEG, _WEBP or _TIFF)", name,
                           opt ? (int)opt->format : -1);
    tsr_status rc = check_image(img, name, err);
    if (rc)
        return rc;
    tsr__enc *e = enc_new(img, name, opt, ctl, err);
    if (!e)
        return tsr__seterr(err, TSR_ERR_NOMEM, "%s: out of memory", name);
    rc = resolve_options(img, name, &e->o, err);
    if (!rc)
        rc = encode(e);
    if (!rc) {
        /* The buffer grew by doubling: give the slack back (keep it if that fails). */
        unsigned char *fit = e->mem_cap - e->mem_len > 4096 ? realloc(e->mem, e->mem_len) : NULL;
        *buf = fit ? fit : e->mem;
        *len = e->mem_len;
        e->mem = NULL;
    }
    enc_free(e);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Public wrappers */

tsr_status tsr_image_read(tsr_engine *e, const char *path, tsr_image **out)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    return tsr__image_load(path, e->max_pixels, NULL, NULL, out, tsr__eerr(e));
}

tsr_status tsr_image_write(tsr_engine *e, const tsr_image *img, const char *path,
                           const tsr_save_options *opt)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    return tsr__image_save(img, path, opt, NULL, tsr__eerr(e));
}

tsr_status tsr_image_decode(tsr_engine *e, const void *buf, size_t len, tsr_image **out)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    return tsr__image_decode(buf, len, "memory", e->max_pixels, NULL, NULL, out, tsr__eerr(e));
}

tsr_status tsr_image_encode(tsr_engine *e, const tsr_image *img, const tsr_save_options *opt,
                            void **buf, size_t *len)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    return tsr__image_encode(img, opt, NULL, buf, len, tsr__eerr(e));
}
