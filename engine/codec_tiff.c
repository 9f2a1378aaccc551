/* TIFF through libtiff: the first directory (page) only; later pages are ignored.
 *
 * Decoding takes 8 and 16-bit unsigned integer samples as stored, v / (2^depth - 1), and 32-bit
 * IEEE float samples exactly as stored (bit depth 32: not clamped, NaN and infinities kept), so
 * a float image written and read back is the same float32 pixels. Gray (min-is-black; min-is-
 * white is inverted, k -> 2^depth - 1 - k, or 1 - v for float), gray+alpha, RGB and RGBA;
 * contiguous or separate planes; strips or tiles; whatever compression libtiff decodes (none,
 * LZW, Deflate, PackBits, ...; JPEG-compressed YCbCr is read as RGB by libjpeg). 1, 2 and 4-bit
 * gray expand to 8 bits as PNG's do (k / (2^d - 1) exactly); palettes expand to RGB, 8-bit
 * when the colour map holds 8-bit values (every entry k * 257, k * 256 or under 256), else 16-bit.
 * The first extra sample is alpha, whatever ExtraSamples calls it; further extra samples are
 * dropped. Associated (premultiplied) alpha is un-premultiplied, c / a where a > 0 (integer
 * samples clamped to 1), so the image holds straight alpha as the engine expects. The ICC
 * profile tag is handed to the caller (tsr__meta), and the Orientation tag as
 * d->meta.orientation (not applied here). Anything else (CMYK, Lab, signed or 64-bit samples,
 * half floats) is refused as unsupported, naming what the file holds.
 *
 * A decompression bomb costs no more than the image: the pixel limit is checked on the header
 * before anything is allocated, strips are read one row at a time (TIFFReadScanline; libtiff
 * itself refuses strip byte counts past the end of the file), and a tile may not be larger
 * than the image's own float32 size (or 16 MiB, for small images in the usual 256x256 tiles).
 *
 * Encoding writes one contiguous directory: 8 or 16-bit unsigned (tsr__quantize) or 32-bit
 * IEEE float (the float32 samples copied exactly), gray, gray+alpha, RGB or RGBA with
 * unassociated alpha, strips of about 8 KiB (TIFFDefaultStripSize), compression none, LZW or
 * Deflate with the horizontal predictor for integers and the floating-point predictor for
 * floats (as vips does). e->meta's ICC profile goes into the ICC profile tag; an EXIF block is
 * not written. libtiff seeks and reads back what it wrote, so the file is built in a memory
 * buffer of ours and handed to tsr__enc_write once complete (a failed or cancelled encode
 * writes nothing). BigTIFF is written when the uncompressed pixels come near 4 GiB.
 *
 * libtiff never longjmps: every call returns its failure, and its messages come through
 * per-handle handlers (TIFFOpenOptionsSetErrorHandlerExtR, thread-safe) into our own buffer,
 * never to stderr; the first error is the one reported. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <tiffio.h>

#include "codec.h"

#define TIFF_MSG 512
/* Bytes of samples in a strip written (whole rows, at least one). */
#define TIFF_STRIP_BYTES ((size_t)256 << 10)
/* Smallest size a tile may have whatever the image: 16 MiB (a 1024x1024 RGBA float tile). */
#define TIFF_TILE_SLACK ((uint64_t)16 << 20)

/* What libtiff said, through the per-handle handlers. */
typedef struct tiff_msgs {
    char error[TIFF_MSG];   /* the first error */
    char warning[TIFF_MSG]; /* the first warning */
} tiff_msgs;

static void tiff_format_msg(char *dst, const char *module, const char *fmt, va_list ap)
{
    int n = module && *module ? snprintf(dst, TIFF_MSG, "%s: ", module) : 0;
    if (n < 0 || n >= TIFF_MSG)
        n = 0;
    vsnprintf(dst + n, TIFF_MSG - (size_t)n, fmt, ap);
    /* "%s: text" with the empty file name we give libtiff. */
    if (!strncmp(dst + n, ": ", 2))
        memmove(dst + n, dst + n + 2, strlen(dst + n + 2) + 1);
}

static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    tiff_msgs *m = user;
    if (!m->error[0])
        tiff_format_msg(m->error, module, fmt, ap);
    return 1; /* handled: libtiff's global handler (stderr) is not called */
}

static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    tiff_msgs *m = user;
    if (!m->warning[0])
        tiff_format_msg(m->warning, module, fmt, ap);
    return 1;
}

static TIFFOpenOptions *tiff_options(tiff_msgs *m)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (o) {
        TIFFOpenOptionsSetErrorHandlerExtR(o, tiff_on_error, m);
        TIFFOpenOptionsSetWarningHandlerExtR(o, tiff_on_warning, m);
    }
    return o;
}

static int tiff_no_map(thandle_t h, void **base, toff_t *size)
{
    return 0;
}

static void tiff_no_unmap(thandle_t h, void *base, toff_t size) {}

static int tiff_no_close(thandle_t h)
{
    return 0;
}

/* Decoding ----------------------------------------------------------------------------------- */

typedef struct tiffd {
    tsr__dec *d;
    TIFF *tif;
    tiff_msgs m;
    int read_errno; /* a read of d->fp failed (not a short read at the end) */
    unsigned char *buf;
    /* The layout, from the header. */
    uint32_t w, h;
    unsigned bps, spp; /* bits per sample, samples per pixel */
    unsigned unit;     /* samples per pixel in one strip or tile: spp, or 1 with separate planes */
    int separate;
    int color;   /* colour samples in the file: 1 or 3 (palette: 1, the index) */
    int alpha;   /* output channel of the file's first extra sample; -1: none */
    int isfloat; /* 32-bit IEEE float */
    int invert;  /* min-is-white */
    int palette; /* colour map: index -> RGB */
    int assoc;   /* the alpha is associated (premultiplied) */
    float maxv;  /* 2^bps - 1 */
    float cmap_div;
    const uint16_t *cmap[3];
    int cmap_shift; /* 8 when the colour map holds k * 257 or k * 256: k = entry >> 8 */
    int failed;     /* fail_on none: reads that failed, their rows left black */
    char first_failure[TIFF_MSG + 64];
} tiffd;

static tmsize_t tiffd_read(thandle_t h, void *buf, tmsize_t n)
{
    tiffd *p = h;
    if (n <= 0)
        return 0;
    size_t got = fread(buf, 1, (size_t)n, p->d->fp);
    if (got < (size_t)n && ferror(p->d->fp) && !p->read_errno)
        p->read_errno = errno ? errno : EIO;
    return (tmsize_t)got;
}

static tmsize_t tiffd_write(thandle_t h, void *buf, tmsize_t n)
{
    return -1;
}

static toff_t tiffd_seek(thandle_t h, toff_t off, int whence)
{
    tiffd *p = h;
    if (off > (toff_t)INT64_MAX && whence == SEEK_SET)
        return (toff_t)-1;
    if (fseeko(p->d->fp, (off_t)off, whence))
        return (toff_t)-1;
    off_t at = ftello(p->d->fp);
    return at < 0 ? (toff_t)-1 : (toff_t)at;
}

static toff_t tiffd_size(thandle_t h)
{
    tiffd *p = h;
    off_t at = ftello(p->d->fp), end = -1;
    if (at >= 0 && !fseeko(p->d->fp, 0, SEEK_END))
        end = ftello(p->d->fp);
    if (at >= 0)
        fseeko(p->d->fp, at, SEEK_SET);
    return end < 0 ? 0 : (toff_t)end;
}

/* A libtiff call failed: its message, or the read error under it. */
static tsr_status tiffd_fail(tiffd *p, const char *what)
{
    tsr__dec *d = p->d;
    if (p->read_errno)
        return tsr__dec_fail(d, TSR_ERR_IO, "read error: %s", strerror(p->read_errno));
    /* libtiff's "Read error ...; got N bytes, expected M": the data ends early. */
    int cut = strstr(p->m.error, "Read error") && strstr(p->m.error, "got ");
    return tsr__dec_fail(d, TSR_ERR_DECODE, "%s TIFF file: %s (while reading %s)",
                         cut ? "truncated" : "invalid",
                         p->m.error[0] ? p->m.error : "libtiff gave no reason", what);
}

/* The header's offset of the first directory, when it points past the end of the data: a file
 * cut short (libtiff only says it cannot read the directory). */
static tsr_status tiffd_open_failed(tiffd *p)
{
    unsigned char h[16];
    FILE *fp = p->d->fp;
    uint64_t size = tiffd_size(p), off = 0;
    if (!p->read_errno && !fseeko(fp, 0, SEEK_SET) && fread(h, 1, 16, fp) >= 8) {
        int le = h[0] == 'I', big = h[2] == 43 || h[3] == 43;
        int at = big ? 8 : 4, n = big ? 8 : 4;
        for (int i = 0; i < n; i++)
            off |= (uint64_t)h[at + (le ? i : n - 1 - i)] << (8 * i);
        if (off >= size)
            return tsr__dec_fail(p->d, TSR_ERR_DECODE,
                                 "truncated TIFF file: its first directory is at offset %llu, "
                                 "past the end of its %llu bytes",
                                 (unsigned long long)off, (unsigned long long)size);
    }
    return tiffd_fail(p, "the header and first directory");
}

static const char *tiff_photometric_name(unsigned ph)
{
    switch (ph) {
    case PHOTOMETRIC_MINISWHITE: return "min-is-white gray";
    case PHOTOMETRIC_MINISBLACK: return "min-is-black gray";
    case PHOTOMETRIC_RGB: return "RGB";
    case PHOTOMETRIC_PALETTE: return "palette";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_SEPARATED: return "separated (CMYK)";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: return "CIE L*a*b*";
    case PHOTOMETRIC_ICCLAB: return "ICC L*a*b*";
    case PHOTOMETRIC_ITULAB: return "ITU L*a*b*";
    case PHOTOMETRIC_CFA: return "colour filter array";
    case PHOTOMETRIC_LOGL: return "LogL";
    case PHOTOMETRIC_LOGLUV: return "LogLuv";
    default: return "unknown";
    }
}

static const char *tiff_sampleformat_name(unsigned f)
{
    switch (f) {
    case SAMPLEFORMAT_UINT: return "unsigned integer";
    case SAMPLEFORMAT_INT: return "signed integer";
    case SAMPLEFORMAT_IEEEFP: return "floating-point";
    case SAMPLEFORMAT_VOID: return "untyped";
    case SAMPLEFORMAT_COMPLEXINT: return "complex integer";
    case SAMPLEFORMAT_COMPLEXIEEEFP: return "complex floating-point";
    default: return "unknown";
    }
}

/* Sample i (counted from the row's start) of a row of p->bps-bit samples, as stored. */
static inline unsigned tiff_int_sample(const tiffd *p, const unsigned char *row, size_t i)
{
    switch (p->bps) {
    case 8: return row[i];
    case 16: {
        uint16_t v;
        memcpy(&v, row + 2 * i, 2); /* libtiff swapped it to host order */
        return v;
    }
    default: { /* 1, 2, 4: packed from the most significant bit */
        size_t bit = i * p->bps;
        return (unsigned)(row[bit >> 3] >> (8 - p->bps - (bit & 7))) & ((1u << p->bps) - 1);
    }
    }
}

/* n pixels of a strip or tile row (unit samples each; with separate planes, sample `plane`) into
 * output row y from column x0. */
static void tiff_row(tiffd *p, const unsigned char *src, uint32_t y, uint32_t x0, uint32_t n,
                     int plane)
{
    tsr_image *img = p->d->img;
    size_t plane_px = (size_t)img->width * (size_t)img->height;
    float *out = img->data + (size_t)y * img->width + x0;
    for (unsigned j = 0; j < p->unit; j++) {
        int s = p->separate ? plane : (int)j; /* the file's sample */
        int c = s < p->color ? s : s == p->color ? p->alpha : -1;
        if (c < 0)
            continue;
        int colour = s < p->color;
        if (p->palette) {
            for (uint32_t x = 0; x < n; x++) {
                unsigned k = tiff_int_sample(p, src, (size_t)x * p->unit + j);
                for (int k3 = 0; k3 < 3; k3++)
                    out[(size_t)k3 * plane_px + x] =
                        (float)(p->cmap[k3][k] >> p->cmap_shift) / p->cmap_div;
            }
            continue;
        }
        float *o = out + (size_t)c * plane_px;
        if (p->isfloat) {
            for (uint32_t x = 0; x < n; x++) {
                float v;
                memcpy(&v, src + 4 * ((size_t)x * p->unit + j), 4);
                o[x] = p->invert && colour ? 1.0f - v : v;
            }
        } else if (p->invert && colour) {
            unsigned mx = (1u << p->bps) - 1;
            for (uint32_t x = 0; x < n; x++)
                o[x] = (float)(mx - tiff_int_sample(p, src, (size_t)x * p->unit + j)) / p->maxv;
        } else {
            for (uint32_t x = 0; x < n; x++)
                o[x] = (float)tiff_int_sample(p, src, (size_t)x * p->unit + j) / p->maxv;
        }
    }
}

/* fail_on none: a read that failed leaves its rows black and is reported once. */
static tsr_status tiffd_read_failed(tiffd *p, const char *what, uint32_t y0, uint32_t rows,
                                    uint32_t x0, uint32_t n, int plane)
{
    if (p->d->lo.fail_on != TSR_FAIL_ON_NONE || p->read_errno)
        return tiffd_fail(p, what);
    if (!p->failed++)
        snprintf(p->first_failure, sizeof p->first_failure, "%s (while reading %s)",
                 p->m.error[0] ? p->m.error : "libtiff gave no reason", what);
    p->m.error[0] = 0;
    tsr_image *img = p->d->img;
    size_t plane_px = (size_t)img->width * (size_t)img->height;
    int only = !p->separate ? -1 : plane < p->color ? plane : p->alpha;
    for (int c = 0; c < img->channels; c++) {
        if (only >= 0 && c != only)
            continue;
        for (uint32_t r = 0; r < rows; r++)
            memset(img->data + (size_t)c * plane_px + (size_t)(y0 + r) * img->width + x0, 0,
                   n * sizeof(float));
    }
    return TSR_OK;
}

static tsr_status tiffd_strips(tiffd *p, uint64_t rowbytes, int planes)
{
    tsr__dec *d = p->d;
    if (!(p->buf = malloc((size_t)rowbytes)))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for a TIFF row");
    tsr__meter_init(&d->meter, d->ctl, (int64_t)p->h * planes, (size_t)rowbytes, 1);
    for (int s = 0; s < planes; s++)
        for (uint32_t y = 0; y < p->h; y++) {
            if (tsr__meter_row(&d->meter))
                return tsr__dec_cancel(d);
            if (TIFFReadScanline(p->tif, p->buf, y, (uint16_t)s) < 0) {
                char what[64];
                snprintf(what, sizeof what, "row %u", (unsigned)y);
                if (tiffd_read_failed(p, what, y, 1, 0, p->w, s))
                    return d->rc;
                continue;
            }
            tiff_row(p, p->buf, y, 0, p->w, s);
        }
    return TSR_OK;
}

static tsr_status tiffd_tiles(tiffd *p, uint64_t rowbytes, int planes)
{
    tsr__dec *d = p->d;
    uint32_t tw = 0, th = 0;
    if (!TIFFGetField(p->tif, TIFFTAG_TILEWIDTH, &tw) ||
        !TIFFGetField(p->tif, TIFFTAG_TILELENGTH, &th) || !tw || !th)
        return tsr__dec_fail(d, TSR_ERR_DECODE, "invalid TIFF file: tiles without a tile size");
    uint64_t trow = ((uint64_t)tw * p->unit * p->bps + 7) / 8, tbytes = trow * th;
    uint64_t img_bytes = (uint64_t)p->w * p->h * (uint64_t)d->img->channels * sizeof(float);
    if (tbytes > (img_bytes > TIFF_TILE_SLACK ? img_bytes : TIFF_TILE_SLACK))
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "TIFF tiles of %ux%u pixels (%llu bytes each) are out of proportion "
                             "to the %ux%u image (expected tiles no larger than the image)",
                             (unsigned)tw, (unsigned)th, (unsigned long long)tbytes, (unsigned)p->w,
                             (unsigned)p->h);
    if ((uint64_t)TIFFTileSize64(p->tif) != tbytes)
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid TIFF file: tiles of %llu bytes (expected %llu for %ux%u "
                             "pixels)",
                             (unsigned long long)TIFFTileSize64(p->tif), (unsigned long long)tbytes,
                             (unsigned)tw, (unsigned)th);
    if (!(p->buf = malloc((size_t)tbytes)))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for a TIFF tile");
    tsr__meter_init(&d->meter, d->ctl, p->h, (size_t)rowbytes * planes, 1);
    for (uint32_t ty = 0; ty < p->h; ty += th) {
        uint32_t rows = p->h - ty < th ? p->h - ty : th;
        for (uint32_t r = 0; r < rows; r++)
            if (tsr__meter_row(&d->meter))
                return tsr__dec_cancel(d);
        for (int s = 0; s < planes; s++)
            for (uint32_t tx = 0; tx < p->w; tx += tw) {
                uint32_t n = p->w - tx < tw ? p->w - tx : tw;
                if (TIFFReadTile(p->tif, p->buf, tx, ty, 0, (uint16_t)s) < 0) {
                    char what[64];
                    snprintf(what, sizeof what, "the tile at %u,%u", (unsigned)tx, (unsigned)ty);
                    if (tiffd_read_failed(p, what, ty, rows, tx, n, s))
                        return d->rc;
                    continue;
                }
                for (uint32_t r = 0; r < rows; r++)
                    tiff_row(p, p->buf + r * trow, ty + r, tx, n, s);
            }
        /* The last band: ty += th could wrap around for a tile taller than what is left. */
        if (th >= p->h - ty)
            break;
    }
    return TSR_OK;
}

/* Associated alpha to straight: c / a where a > 0. */
static void tiff_unpremultiply(tiffd *p)
{
    tsr_image *img = p->d->img;
    size_t n = (size_t)img->width * (size_t)img->height;
    const float *a = img->data + (size_t)p->alpha * n;
    for (int c = 0; c < p->alpha; c++) {
        float *v = img->data + (size_t)c * n;
        for (size_t i = 0; i < n; i++)
            if (a[i] > 0.0f) {
                v[i] /= a[i];
                if (!p->isfloat && v[i] > 1.0f)
                    v[i] = 1.0f;
            }
    }
}

static tsr_status tiff_run(tiffd *p)
{
    tsr__dec *d = p->d;
    TIFF *tif = p->tif;
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, bps = 1, fmt = SAMPLEFORMAT_UINT, photo = 0, planar = PLANARCONFIG_CONTIG;
    uint16_t comp = COMPRESSION_NONE;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h))
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid TIFF file: no image width or length (expected both tags)");
    if (tsr__dec_check_limit(d, w, h, "TIFF"))
        return d->rc;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo))
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid TIFF file: no photometric interpretation tag");

    switch (photo) {
    case PHOTOMETRIC_MINISWHITE: p->invert = 1; /* fall through */
    case PHOTOMETRIC_MINISBLACK: p->color = 1; break;
    case PHOTOMETRIC_RGB: p->color = 3; break;
    case PHOTOMETRIC_PALETTE:
        p->color = 1;
        p->palette = 1;
        break;
    case PHOTOMETRIC_YCBCR:
        if (comp == COMPRESSION_JPEG) { /* libjpeg converts to RGB */
            if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
                return tiffd_fail(p, "the JPEG colour mode");
            p->color = 3;
            break;
        }
        /* fall through */
    default:
        return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED,
                             "TIFF photometric interpretation %s (%u) is not supported (expected "
                             "gray, RGB, palette, or JPEG-compressed YCbCr)",
                             tiff_photometric_name(photo), (unsigned)photo);
    }
    if (spp < p->color)
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid TIFF file: %u samples per pixel for %s (expected at least "
                             "%d)",
                             (unsigned)spp, tiff_photometric_name(photo), p->color);
    if (fmt == SAMPLEFORMAT_VOID)
        fmt = SAMPLEFORMAT_UINT;
    p->isfloat = fmt == SAMPLEFORMAT_IEEEFP && bps == 32;
    int uint_ok = fmt == SAMPLEFORMAT_UINT && (bps == 8 || (bps == 16 && !p->palette) ||
                                               ((bps == 1 || bps == 2 || bps == 4) && spp == 1));
    if ((!uint_ok && !p->isfloat) || (p->isfloat && p->palette) || (p->palette && spp != 1))
        return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED,
                             "TIFF with %u-bit %s samples, %u per pixel (%s), is not supported "
                             "(expected 8 or 16-bit unsigned integer or 32-bit float samples, "
                             "or 1, 2 or 4-bit gray, or a palette of up to 8 bits without "
                             "alpha)",
                             (unsigned)bps, tiff_sampleformat_name(fmt), (unsigned)spp,
                             tiff_photometric_name(photo));
    p->w = w;
    p->h = h;
    p->bps = bps;
    p->spp = spp;
    p->separate = planar == PLANARCONFIG_SEPARATE && spp > 1;
    p->unit = p->separate ? 1 : spp;
    p->maxv = (float)((1u << (bps < 32 ? bps : 16)) - 1);
    int out_color = p->palette ? 3 : p->color;
    p->alpha = spp > p->color ? out_color : -1;
    if (p->alpha >= 0) {
        uint16_t n = 0, *types = NULL;
        if (TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &n, &types) && n > 0 && types)
            p->assoc = types[0] == EXTRASAMPLE_ASSOCALPHA;
    }
    int depth = p->isfloat ? 32 : bps == 16 ? 16 : 8;
    if (p->palette) {
        uint16_t *r, *g, *b;
        if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b))
            return tsr__dec_fail(d, TSR_ERR_DECODE,
                                 "invalid TIFF file: a palette image "
                                 "without a colour map");
        p->cmap[0] = r;
        p->cmap[1] = g;
        p->cmap[2] = b;
        /* 8-bit writers store k * 257 (libtiff's tools) or k * 256 (Pillow), old ones k. */
        int by257 = 1, by256 = 1, small = 1;
        for (unsigned c = 0; c < 3; c++)
            for (unsigned k = 0; k < 1u << bps; k++) {
                by257 &= p->cmap[c][k] % 257 == 0;
                by256 &= p->cmap[c][k] % 256 == 0;
                small &= p->cmap[c][k] < 256;
            }
        depth = by257 || by256 || small ? 8 : 16;
        p->cmap_shift = by257 || by256 ? 8 : 0;
        p->cmap_div = depth == 8 ? 255.0f : 65535.0f;
    }
    d->info.width = (int)w;
    d->info.height = (int)h;
    d->info.channels = out_color + (p->alpha >= 0);
    d->info.bit_depth = depth;

    uint32_t icc_len = 0;
    void *icc = NULL;
    if (TIFFGetField(tif, TIFFTAG_ICCPROFILE, &icc_len, &icc) && icc && icc_len &&
        tsr__meta_set(&d->meta.icc, &d->meta.icc_len, icc, icc_len))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for the ICC profile");
    uint16_t orient = 0;
    if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &orient) && orient >= 1 && orient <= 8)
        d->meta.orientation = orient;
    if (d->header_only)
        return TSR_OK;

    /* Bytes of one row of a strip or tile unit, as libtiff will hand it over. */
    uint64_t rowbytes = ((uint64_t)w * p->unit * bps + 7) / 8;
    int tiled = TIFFIsTiled(tif);
    if (!tiled && (uint64_t)TIFFScanlineSize64(tif) != rowbytes)
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid TIFF file: rows of %llu bytes (expected %llu for %u pixels "
                             "of %u %u-bit samples)",
                             (unsigned long long)TIFFScanlineSize64(tif),
                             (unsigned long long)rowbytes, (unsigned)w, p->unit, (unsigned)bps);
    tsr_status rc = tsr_image_new((int)w, (int)h, d->info.channels, &d->img);
    if (rc)
        return tsr__dec_fail(d, rc, "cannot allocate a %ux%u image", (unsigned)w, (unsigned)h);
    d->img->bit_depth = depth;
    /* With separate planes, the planes past colour and alpha are not read. */
    int planes = p->separate ? p->color + (p->alpha >= 0) : 1;
    rc = tiled ? tiffd_tiles(p, rowbytes, planes) : tiffd_strips(p, rowbytes, planes);
    if (rc)
        return rc;
    if (p->assoc)
        tiff_unpremultiply(p);
    if (p->failed)
        snprintf(d->recovered, sizeof d->recovered,
                 "TIFF: %d rows or tiles could not be read and were left black; the first: %.160s",
                 p->failed, p->first_failure);
    if (d->lo.fail_on == TSR_FAIL_ON_WARNING && p->m.warning[0])
        return tsr__dec_fail(d, TSR_ERR_DECODE, "TIFF warning (fail_on warning): %s", p->m.warning);
    tsr__meter_end(&d->meter);
    return TSR_OK;
}

static tsr_status tiff_decode(tsr__dec *d)
{
    tiffd *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory creating the TIFF decoder");
    p->d = d;
    tsr_status rc;
    TIFFOpenOptions *opts = tiff_options(&p->m);
    if (!opts) {
        rc = tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory creating the TIFF decoder");
    } else {
        /* "m": no memory mapping (there is no file to map); the name is empty so that libtiff's
         * messages do not repeat the one tsr__dec_fail puts first. */
        p->tif = TIFFClientOpenExt("", "rm", p, tiffd_read, tiffd_write, tiffd_seek, tiff_no_close,
                                   tiffd_size, tiff_no_map, tiff_no_unmap, opts);
        TIFFOpenOptionsFree(opts);
        rc = p->tif ? tiff_run(p) : tiffd_open_failed(p);
    }
    if (p->tif)
        TIFFClose(p->tif);
    free(p->buf);
    free(p);
    return rc;
}

/* Encoding ----------------------------------------------------------------------------------- */

/* The file as libtiff writes it: a growing buffer with a position, read back and seeked over. */
typedef struct tiffe {
    tsr__enc *e;
    tiff_msgs m;
    unsigned char *buf;
    uint64_t len, cap, pos;
    int nomem;
    unsigned char *row;
} tiffe;

static tmsize_t tiffe_write(thandle_t h, void *src, tmsize_t n)
{
    tiffe *p = h;
    if (n < 0)
        return -1;
    uint64_t end = p->pos + (uint64_t)n;
    if (end < p->pos || end > SIZE_MAX / 2) {
        p->nomem = 1;
        return -1;
    }
    if (end > p->cap) {
        uint64_t cap = p->cap ? p->cap : 65536;
        while (cap < end)
            cap *= 2;
        unsigned char *b = realloc(p->buf, (size_t)cap);
        if (!b) {
            p->nomem = 1;
            return -1;
        }
        p->buf = b;
        p->cap = cap;
    }
    if (p->pos > p->len) /* a seek past the end: the gap reads as zeros */
        memset(p->buf + p->len, 0, (size_t)(p->pos - p->len));
    memcpy(p->buf + p->pos, src, (size_t)n);
    p->pos = end;
    if (end > p->len)
        p->len = end;
    return n;
}

static tmsize_t tiffe_read(thandle_t h, void *dst, tmsize_t n)
{
    tiffe *p = h;
    if (n <= 0 || p->pos >= p->len)
        return 0;
    uint64_t k = p->len - p->pos < (uint64_t)n ? p->len - p->pos : (uint64_t)n;
    memcpy(dst, p->buf + p->pos, (size_t)k);
    p->pos += k;
    return (tmsize_t)k;
}

static toff_t tiffe_seek(thandle_t h, toff_t off, int whence)
{
    tiffe *p = h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? p->pos : p->len;
    uint64_t to = base + off; /* toff_t wraps: a negative offset subtracts */
    if ((int64_t)to < 0)
        return (toff_t)-1;
    p->pos = to;
    return to;
}

static toff_t tiffe_size(thandle_t h)
{
    return ((tiffe *)h)->len;
}

static tsr_status tiffe_fail(tiffe *p, const char *what)
{
    tsr__enc *e = p->e;
    if (p->nomem)
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory while encoding TIFF");
    return tsr__enc_fail(e, TSR_ERR_INTERNAL, "TIFF encoder error: %s (while writing %s)",
                         p->m.error[0] ? p->m.error : "libtiff gave no reason", what);
}

/* Row y of img as TIFF stores it: interleaved samples in host order. */
static void tiff_pack_row(const tsr_image *img, int depth, size_t y, unsigned char *d)
{
    size_t w = (size_t)img->width, ch = (size_t)img->channels;
    size_t plane = w * (size_t)img->height;
    const float *in = img->data + y * w;
    if (depth == 32) {
        float *o = (float *)(void *)d;
        for (size_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++)
                *o++ = in[c * plane + x];
    } else if (depth == 16) {
        uint16_t *o = (uint16_t *)(void *)d;
        for (size_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++)
                *o++ = (uint16_t)tsr__quantize(in[c * plane + x], 65535);
    } else {
        for (size_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++)
                *d++ = (unsigned char)tsr__quantize(in[c * plane + x], 255);
    }
}

static tsr_status tiff_encode_run(tiffe *p, TIFF *tif)
{
    tsr__enc *e = p->e;
    const tsr_image *img = e->img;
    int depth = e->o.bit_depth, ch = img->channels;
    size_t rowbytes;
    if (!tsr__mul_size((size_t)img->width * (size_t)ch, (size_t)depth / 8, &rowbytes) ||
        !(p->row = malloc(rowbytes)))
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory for a TIFF row");
    /* Strips of about TIFF_STRIP_BYTES: libtiff's own default (8 KiB) costs LZW and Deflate
     * 5-15% in size on photos, each strip starting its dictionary afresh. */
    uint32_t strip_rows = (uint32_t)(TIFF_STRIP_BYTES / rowbytes);
    if (strip_rows < 1)
        strip_rows = 1;
    if (strip_rows > (uint32_t)img->height)
        strip_rows = (uint32_t)img->height;
    uint16_t comp = e->o.tiff_compression == TSR_TIFF_NONE  ? COMPRESSION_NONE
                    : e->o.tiff_compression == TSR_TIFF_LZW ? COMPRESSION_LZW
                                                            : COMPRESSION_ADOBE_DEFLATE;
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)img->width) &&
             TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)img->height) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)ch) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)depth) &&
             TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT,
                          depth == 32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
                          ch >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, comp);
    if (ok && (ch == 2 || ch == 4)) {
        uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        ok = TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    if (ok && comp != COMPRESSION_NONE)
        ok = TIFFSetField(tif, TIFFTAG_PREDICTOR,
                          depth == 32 ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL);
    if (ok)
        ok = TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, strip_rows));
    if (ok && e->meta.icc && e->meta.icc_len) {
        if (e->meta.icc_len > UINT32_MAX)
            return tsr__enc_fail(e, TSR_ERR_INVALID,
                                 "ICC profile of %zu bytes (expected at "
                                 "most 4 GiB for TIFF)",
                                 e->meta.icc_len);
        ok = TIFFSetField(tif, TIFFTAG_ICCPROFILE, (uint32_t)e->meta.icc_len, e->meta.icc);
    }
    if (!ok)
        return tiffe_fail(p, "the header");
    /* LZW and Deflate cost about twice what packing a row does. */
    tsr__meter_init(&e->meter, e->ctl, img->height, rowbytes, comp == COMPRESSION_NONE ? 1 : 2);
    for (uint32_t y = 0; y < (uint32_t)img->height; y++) {
        if (tsr__meter_row(&e->meter))
            return tsr__enc_cancel(e);
        tiff_pack_row(img, depth, y, p->row);
        if (TIFFWriteScanline(tif, p->row, y, 0) < 0) {
            char what[64];
            snprintf(what, sizeof what, "row %u", (unsigned)y);
            return tiffe_fail(p, what);
        }
    }
    if (!TIFFWriteDirectory(tif))
        return tiffe_fail(p, "the directory");
    tsr__meter_end(&e->meter);
    return TSR_OK;
}

static tsr_status tiff_encode(tsr__enc *e)
{
    tiffe *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory creating the TIFF encoder");
    p->e = e;
    const tsr_image *img = e->img;
    /* Classic TIFF offsets are 32-bit: BigTIFF once the pixels alone come near 4 GiB
     * (compression may not bring them under). "l": little-endian, whatever the host. */
    uint64_t raw = (uint64_t)img->width * (uint64_t)img->height * (uint64_t)img->channels *
                   (uint64_t)(e->o.bit_depth / 8);
    const char *mode = raw > ((uint64_t)15 << 28) ? "w8l" : "wl";
    tsr_status rc;
    TIFFOpenOptions *opts = tiff_options(&p->m);
    TIFF *tif = NULL;
    if (!opts) {
        rc = tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory creating the TIFF encoder");
    } else {
        tif = TIFFClientOpenExt("", mode, p, tiffe_read, tiffe_write, tiffe_seek, tiff_no_close,
                                tiffe_size, tiff_no_map, tiff_no_unmap, opts);
        TIFFOpenOptionsFree(opts);
        rc = tif ? tiff_encode_run(p, tif) : tiffe_fail(p, "the file header");
    }
    if (tif)
        TIFFClose(tif);
    if (!rc) {
        if (!e->fp && !e->mem) { /* to memory: hand our buffer over rather than copy it */
            e->mem = p->buf;
            e->mem_len = (size_t)p->len;
            e->mem_cap = (size_t)p->cap;
            p->buf = NULL;
        } else if (tsr__enc_write(e, p->buf, (size_t)p->len)) {
            rc = e->rc;
        }
    }
    free(p->buf);
    free(p->row);
    free(p);
    return rc;
}

static int tiff_sniff(const unsigned char *sig, size_t n)
{
    static const unsigned char sigs[4][4] = {
        {'I', 'I', 42, 0}, {'M', 'M', 0, 42}, {'I', 'I', 43, 0}, {'M', 'M', 0, 43}};
    size_t m = n < 4 ? n : 4;
    for (int i = 0; i < 4; i++)
        if (!memcmp(sig, sigs[i], m))
            return n >= 4 ? 1 : -1;
    return 0;
}

const tsr__codec tsr__codec_tiff = {
    .format = TSR_FORMAT_TIFF,
    .name = "TIFF",
    .exts = "tif|tiff",
    .sniff = tiff_sniff,
    .decode = tiff_decode,
    .encode = tiff_encode,
    /* TIFF holds 32-bit sides; the engine's images are int-sized. */
    .max_side = INT_MAX,
    .depths = 1u << 8 | 1u << 16 | (uint64_t)1 << 32,
    .alpha = 1,
};
