/* Image files: PNG (libpng) and JPEG (libjpeg-turbo) to and from float32 planar host images.
 *
 * Decoding takes samples as stored, v / (2^depth - 1): no gamma, ICC profile, sBIT or EXIF
 * orientation is applied, so a pixel read and written back is the same pixel. PNG palettes
 * expand to RGB, tRNS to an alpha channel (as png_set_tRNS_to_alpha), 1/2/4-bit gray to 8 bits
 * (as png_set_expand_gray_1_2_4_to_8: k * 255 / (2^d - 1), so k / (2^d - 1) exactly); 16-bit
 * files stay 16-bit. JPEG: gray stays gray, YCbCr/RGB give RGB, CMYK/YCCK give RGB through
 * r = (1 - c)(1 - k), reading Adobe-marked files as inverted (Photoshop's convention).
 *
 * Library errors come back through setjmp/longjmp: each setjmp sits in a function whose only
 * local is a pointer to a context owned by its caller, so nothing the context holds is an
 * automatic object modified between setjmp and longjmp, and the caller frees it all.
 *
 * Cancel and progress (tsr__io_ctl) are checked between bands of rows, outside the libraries'
 * calls: a cancel returns like any other failure and leaves the cleanup to the same path. The
 * one exception is a multi-scan JPEG, whose whole input is decoded inside
 * jpeg_start_decompress: its progress monitor leaves through the error longjmp.
 *
 * Files are written to a temporary file beside the destination, registered in a fixed table
 * that tsr_cleanup_temp_files() (async-signal safe) empties with unlink().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "internal.h"

#define JPEG_DEFAULT_QUALITY 92
#define PNG_DEFAULT_COMPRESSION 6
#define JPEG_DEFAULT_SUBSAMPLING 420

/* Rows per band: at most 64, and about IO_BAND_BYTES of samples (less where a byte costs more:
 * deflate at high levels), so that a band of wide 16-bit RGBA rows stays well under 50 ms. A
 * row is never split: the libraries take whole rows. */
#define IO_BAND_ROWS 64
#define IO_BAND_BYTES ((size_t)256 << 10)

/* Rows done of rows in all passes, in bands: before the first row of each band it reports the
 * rows done so far (from the second band on) and asks whether to stop. */
typedef struct io_meter {
    const tsr__io_ctl *ctl;
    int64_t done, total;
    int64_t next; /* done at the start of the next band */
    int band;     /* rows per band */
} io_meter;

/* `cost`: how many times slower than decoding a byte of the row is (1 for decoders). */
static void meter_init(io_meter *m, const tsr__io_ctl *ctl, int64_t total, size_t rowbytes,
                       unsigned cost)
{
    m->ctl = ctl;
    m->done = 0;
    m->total = total;
    m->next = 0;
    size_t rows = rowbytes ? IO_BAND_BYTES / cost / rowbytes : IO_BAND_ROWS;
    m->band = rows < 1 ? 1 : rows > IO_BAND_ROWS ? IO_BAND_ROWS : (int)rows;
}

static int io_cancelled(const tsr__io_ctl *ctl)
{
    return ctl && ctl->cancelled && ctl->cancelled(ctl->user);
}

/* Call before each row; non-zero: cancelled, stop. */
static int meter_row(io_meter *m)
{
    if (m->done == m->next) {
        m->next += m->band;
        if (m->done > 0 && m->ctl && m->ctl->progress)
            m->ctl->progress(m->ctl->user, m->done, m->total);
        if (io_cancelled(m->ctl))
            return 1;
    }
    m->done++;
    return 0;
}

/* Once, when the whole image went through. */
static void meter_end(const io_meter *m)
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

/* ---------------------------------------------------------------------------------------------
 * Decoding */

typedef struct dec_jerr {
    struct jpeg_error_mgr pub;
    struct dec *d;
} dec_jerr;

typedef struct dec {
    FILE *fp;
    const char *name;
    uint64_t max_pixels;
    int header_only;
    const tsr__io_ctl *ctl;
    io_meter meter;
    tsr__err *err;
    tsr_status rc; /* non-zero once the message is set: the first error found wins */
    tsr_port_info info;
    tsr_image *img;
    unsigned char *rows;
    png_bytep *rowp;
    png_structp png;
    png_infop pinfo;
    int nomem;
    const char *stage; /* what the decoder was reading, for messages */
    struct jpeg_decompress_struct jd;
    dec_jerr jerr;
    struct jpeg_progress_mgr jprog;
    int jeof;      /* libjpeg ran out of data (JWRN_JPEG_EOF) */
    int jinput;    /* inside jpeg_start_decompress: the monitor checks for a cancel */
    int64_t jrows; /* rows of scans decoded there since the last check */
    jmp_buf jb;    /* JPEG only; libpng keeps its own */
} dec;

__attribute__((format(printf, 3, 4))) static tsr_status dfail(dec *d, tsr_status rc,
                                                              const char *fmt, ...)
{
    if (d->rc)
        return d->rc;
    va_list ap;
    va_start(ap, fmt);
    vfail(d->err, rc, d->name, fmt, ap);
    va_end(ap);
    d->rc = rc;
    return rc;
}

static tsr_status dcancel(dec *d)
{
    if (!d->rc)
        d->rc = tsr__seterr(d->err, TSR_ERR_CANCELLED, "cancelled while decoding '%s'", d->name);
    return d->rc;
}

static tsr_status check_limit(dec *d, uint64_t w, uint64_t h, const char *what)
{
    uint64_t max = d->max_pixels ? d->max_pixels : TSR_DEFAULT_MAX_PIXELS;
    if (w == 0 || h == 0)
        return dfail(d, TSR_ERR_DECODE, "%s header gives an empty image (%llux%llu)", what,
                     (unsigned long long)w, (unsigned long long)h);
    if (w > INT_MAX || h > INT_MAX || w * h > max)
        return dfail(d, TSR_ERR_LIMIT,
                     "%s image of %llux%llu = %llu pixels exceeds the limit of %llu pixels", what,
                     (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                     (unsigned long long)max);
    return TSR_OK;
}

/* PNG ---------------------------------------------------------------------------------------- */

static void png_on_error(png_structp png, png_const_charp msg)
{
    dec *d = png_get_error_ptr(png);
    if (d->nomem)
        dfail(d, TSR_ERR_NOMEM, "out of memory while decoding PNG");
    else
        dfail(d, TSR_ERR_DECODE, "invalid PNG file: %s (while reading %s)", msg, d->stage);
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary chunks, unknown profiles) do not change the pixels: stay quiet, the
 * library never prints. */
static void png_on_warning(png_structp png, png_const_charp msg) {}

static png_voidp png_on_malloc(png_structp png, png_alloc_size_t size)
{
    png_voidp p = malloc(size);
    if (!p) {
        dec *d = png_get_mem_ptr(png);
        d->nomem = 1;
    }
    return p;
}

static void png_on_free(png_structp png, png_voidp p)
{
    free(p);
}

static void png_on_read(png_structp png, png_bytep buf, size_t len)
{
    dec *d = png_get_io_ptr(png);
    if (fread(buf, 1, len, d->fp) == len)
        return;
    if (ferror(d->fp))
        dfail(d, TSR_ERR_IO, "read error: %s", strerror(errno));
    else
        dfail(d, TSR_ERR_DECODE, "truncated PNG file (expected more data before IEND)");
    png_error(png, "read failed");
}

static void png_to_float(dec *d, int y, const unsigned char *row)
{
    tsr_image *img = d->img;
    size_t w = (size_t)img->width, ch = (size_t)img->channels;
    size_t plane = w * (size_t)img->height;
    float *out = img->data + (size_t)y * w;
    if (d->info.bit_depth == 16) {
        for (size_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++) {
                const unsigned char *s = row + 2 * (x * ch + c);
                out[c * plane + x] = (float)((unsigned)s[0] << 8 | s[1]) / 65535.0f;
            }
    } else {
        for (size_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++)
                out[c * plane + x] = (float)row[x * ch + c] / 255.0f;
    }
}

static tsr_status png_run(dec *d)
{
    if (setjmp(png_jmpbuf(d->png)))
        return d->rc ? d->rc : dfail(d, TSR_ERR_DECODE, "invalid PNG file");
    /* libpng's own default caps each side at 10^6: the engine's pixel limit is the one that
     * decides, with its own message. */
    png_set_user_limits(d->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_sig_bytes(d->png, 8);
    d->stage = "the chunks before the image data";
    png_read_info(d->png, d->pinfo);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(d->png, d->pinfo, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (check_limit(d, w, h, "PNG"))
        return d->rc;
    int trns = png_get_valid(d->png, d->pinfo, PNG_INFO_tRNS) != 0;
    int ch;
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY: ch = 1 + trns; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: ch = 2; break;
    case PNG_COLOR_TYPE_PALETTE: ch = 3 + trns; break;
    case PNG_COLOR_TYPE_RGB: ch = 3 + trns; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: ch = 4; break;
    default: return dfail(d, TSR_ERR_DECODE, "invalid PNG colour type %d", ctype);
    }
    d->info.width = (int)w;
    d->info.height = (int)h;
    d->info.channels = ch;
    d->info.bit_depth = depth == 16 ? 16 : 8;
    if (d->header_only)
        return TSR_OK;

    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(d->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(d->png);
    if (trns)
        png_set_tRNS_to_alpha(d->png);
    int passes = png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->pinfo);

    size_t rowbytes = png_get_rowbytes(d->png, d->pinfo), want;
    if (!tsr__mul_size((size_t)w * (size_t)ch, (size_t)d->info.bit_depth / 8, &want) ||
        rowbytes != want || png_get_channels(d->png, d->pinfo) != ch)
        return dfail(d, TSR_ERR_INTERNAL, "PNG row layout is %zu bytes, expected %zu", rowbytes,
                     want);
    tsr_status rc = tsr_image_new((int)w, (int)h, ch, &d->img);
    if (rc)
        return dfail(d, rc, "cannot allocate a %ux%u image", (unsigned)w, (unsigned)h);
    d->img->bit_depth = d->info.bit_depth;

    /* Interlaced passes fill every row several times, so they need the whole image; a plain
     * file streams through one row. */
    size_t nrows = passes > 1 ? h : 1, total;
    if (!tsr__mul_size(rowbytes, nrows, &total) || !(d->rows = malloc(total)) ||
        !(d->rowp = malloc(nrows * sizeof *d->rowp)))
        return dfail(d, TSR_ERR_NOMEM, "out of memory for %zu PNG rows", nrows);
    for (size_t y = 0; y < nrows; y++)
        d->rowp[y] = d->rows + y * rowbytes;
    d->stage = "the image data";
    if (passes > 1) {
        /* What png_read_image does, pass by pass. libpng is called for every row of every pass
         * and skips rows outside the pass; progress counts the rows each pass really holds.
         * A row is final once the last pass went over it. */
        int64_t rows = 0;
        for (int p = 0; p < passes; p++)
            if (PNG_PASS_COLS(w, p) > 0)
                rows += PNG_PASS_ROWS(h, p);
        meter_init(&d->meter, d->ctl, rows, rowbytes, 1);
        for (int p = 0; p < passes; p++) {
            int nonempty = PNG_PASS_COLS(w, p) > 0;
            for (png_uint_32 y = 0; y < h; y++) {
                if (nonempty && PNG_ROW_IN_INTERLACE_PASS(y, p) && meter_row(&d->meter))
                    return dcancel(d);
                png_read_row(d->png, d->rowp[y], NULL);
                if (p == passes - 1)
                    png_to_float(d, (int)y, d->rowp[y]);
            }
        }
    } else {
        meter_init(&d->meter, d->ctl, h, rowbytes, 1);
        for (png_uint_32 y = 0; y < h; y++) {
            if (meter_row(&d->meter))
                return dcancel(d);
            png_read_row(d->png, d->rows, NULL);
            png_to_float(d, (int)y, d->rows);
        }
    }
    /* Reading to IEND is what tells a complete file from one cut after its last IDAT. */
    d->stage = "the chunks after the image data, up to IEND";
    png_read_end(d->png, NULL);
    meter_end(&d->meter);
    return TSR_OK;
}

static tsr_status png_decode(dec *d)
{
    d->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, d, png_on_error, png_on_warning, d,
                                      png_on_malloc, png_on_free);
    if (!d->png || !(d->pinfo = png_create_info_struct(d->png)))
        return dfail(d, TSR_ERR_NOMEM, "out of memory creating the PNG decoder");
    png_set_read_fn(d->png, d, png_on_read);
    return png_run(d);
}

/* JPEG --------------------------------------------------------------------------------------- */

static void jpeg_fail_from_lib(j_common_ptr cinfo, tsr_status rc)
{
    dec *d = ((dec_jerr *)cinfo->err)->d;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    if (rc == TSR_ERR_IO)
        dfail(d, rc, "read error: %s", strerror(errno));
    else if (rc == TSR_ERR_NOMEM)
        dfail(d, rc, "out of memory while decoding JPEG: %s", text);
    else if (rc == TSR_ERR_UNSUPPORTED)
        dfail(d, rc,
              "unsupported JPEG (expected 8-bit baseline, progressive or arithmetic "
              "coding): %s",
              text);
    else
        dfail(d, rc, "invalid JPEG file: %s (while reading %s)", text, d->stage);
    longjmp(d->jb, 1);
}

static void jpeg_on_error(j_common_ptr cinfo)
{
    tsr_status rc = TSR_ERR_DECODE;
    switch (cinfo->err->msg_code) {
    case JERR_BAD_PRECISION:
    case JERR_ARITH_NOTIMPL: rc = TSR_ERR_UNSUPPORTED; break;
    case JERR_OUT_OF_MEMORY: rc = TSR_ERR_NOMEM; break;
    case JERR_FILE_READ: rc = TSR_ERR_IO; break;
    default: break;
    }
    jpeg_fail_from_lib(cinfo, rc);
}

/* libjpeg reports a truncated file or damaged entropy-coded data as a warning and goes on with
 * grey or garbage blocks; those pixels are not the file's, so they fail the decode. A file
 * missing only its EOI marker (every row decoded) and other warnings (junk between markers, odd
 * JFIF versions) leave the pixels intact and are let through. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level != -1)
        return;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF: {
        dec *d = ((dec_jerr *)cinfo->err)->d;
        /* Every row is out and only the EOI marker is missing: the pixels are all the file's
         * (vips and browsers load such files too). */
        j_decompress_ptr dc = (j_decompress_ptr)cinfo;
        if (dc->output_height > 0 && dc->output_scanline >= dc->output_height)
            return;
        /* With one scan, data that ends where the EOI should be is the whole image; with
         * several (progressive), it may as well be the first of the scans: refused. */
        d->jeof =
            dc->global_state >= 202 /* DSTATE_START: header read */ && !jpeg_has_multiple_scans(dc);
        dfail(d, TSR_ERR_DECODE, "truncated JPEG file (expected more data before EOI)");
        longjmp(d->jb, 1);
    }
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE: jpeg_fail_from_lib(cinfo, TSR_ERR_DECODE); break;
    default: break;
    }
}

static void jpeg_on_output(j_common_ptr cinfo) {}

/* A multi-scan (progressive) file is decoded whole inside jpeg_start_decompress, which calls
 * the monitor before each step of input (about one iMCU row of one scan): count those rows and
 * look for a cancel once per band, leaving like an error does. */
/* More scans than any encoder writes (progressive files have about 10; libjpeg-turbo's fuzzers
 * stop at 500): each scan walks the whole image again, so a small file of thousands of scans
 * is a decoding bomb (711 KB of 2000 scans took 58 s). */
#define JPEG_MAX_SCANS 200

static void jpeg_on_progress(j_common_ptr cinfo)
{
    dec *d = ((dec_jerr *)cinfo->err)->d;
    if (d->jd.input_scan_number > JPEG_MAX_SCANS) {
        dfail(d, TSR_ERR_DECODE, "JPEG with more than %d scans (refused as a decoding bomb)",
              JPEG_MAX_SCANS);
        longjmp(d->jb, 1);
    }
    if (!d->jinput)
        return;
    d->jrows += (int64_t)d->jd.max_v_samp_factor * DCTSIZE;
    if (d->jrows < d->meter.band)
        return;
    d->jrows = 0;
    if (io_cancelled(d->ctl)) {
        dcancel(d);
        longjmp(d->jb, 1);
    }
}

static tsr_status jpeg_run(dec *d)
{
    if (setjmp(d->jb))
        return d->rc ? d->rc : dfail(d, TSR_ERR_DECODE, "invalid JPEG file");
    d->stage = "the header";
    jpeg_create_decompress(&d->jd);
    jpeg_stdio_src(&d->jd, d->fp);
    jpeg_read_header(&d->jd, TRUE);
    if (check_limit(d, d->jd.image_width, d->jd.image_height, "JPEG"))
        return d->rc;
    if (d->jd.data_precision != 8)
        return dfail(d, TSR_ERR_UNSUPPORTED, "%d-bit JPEG is not supported (expected 8-bit)",
                     d->jd.data_precision);
    int ch;
    switch (d->jd.jpeg_color_space) {
    case JCS_GRAYSCALE:
        d->jd.out_color_space = JCS_GRAYSCALE;
        ch = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        d->jd.out_color_space = JCS_RGB;
        ch = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        d->jd.out_color_space = JCS_CMYK;
        ch = 3;
        break;
    default:
        return dfail(d, TSR_ERR_UNSUPPORTED,
                     "JPEG with %d components in an unknown colour space (expected gray, "
                     "YCbCr, RGB, CMYK or YCCK)",
                     d->jd.num_components);
    }
    d->info.width = (int)d->jd.image_width;
    d->info.height = (int)d->jd.image_height;
    d->info.channels = ch;
    d->info.bit_depth = 8;
    if (d->header_only)
        return TSR_OK;

    d->stage = "the image data";
    size_t samples;
    if (!tsr__mul_size(d->jd.image_width, d->jd.out_color_space == JCS_CMYK ? 4 : ch, &samples))
        return dfail(d, TSR_ERR_LIMIT, "JPEG row too long");
    meter_init(&d->meter, d->ctl, d->info.height, samples, 1);
    d->jprog.progress_monitor = jpeg_on_progress; /* scans are counted, cancels checked */
    d->jd.progress = &d->jprog;
    d->jinput = 1;
    jpeg_start_decompress(&d->jd);
    d->jinput = 0;
    int ncomp = d->jd.output_components;
    if ((int)d->jd.output_width != d->info.width || (int)d->jd.output_height != d->info.height ||
        ncomp != (d->jd.out_color_space == JCS_CMYK ? 4 : ch))
        return dfail(d, TSR_ERR_INTERNAL, "JPEG output layout differs from its header");
    tsr_status rc = tsr_image_new(d->info.width, d->info.height, ch, &d->img);
    if (rc)
        return dfail(d, rc, "cannot allocate a %dx%d image", d->info.width, d->info.height);
    d->img->bit_depth = 8;
    size_t w = (size_t)d->info.width, plane = w * (size_t)d->info.height, rowbytes;
    if (!tsr__mul_size(w, (size_t)ncomp, &rowbytes) || !(d->rows = malloc(rowbytes)))
        return dfail(d, TSR_ERR_NOMEM, "out of memory for a JPEG row");
    int inverted = d->jd.saw_Adobe_marker;
    while (d->jd.output_scanline < d->jd.output_height) {
        size_t y = d->jd.output_scanline;
        JSAMPROW row = d->rows;
        if (meter_row(&d->meter))
            return dcancel(d);
        if (jpeg_read_scanlines(&d->jd, &row, 1) != 1)
            return dfail(d, TSR_ERR_DECODE, "JPEG decoder returned no scanline");
        float *out = d->img->data + y * w;
        const unsigned char *s = d->rows;
        if (ncomp == 4) {
            for (size_t x = 0; x < w; x++, s += 4) {
                float k = s[3] / 255.0f;
                for (int c = 0; c < 3; c++) {
                    float v = s[c] / 255.0f;
                    out[(size_t)c * plane + x] = inverted ? v * k : (1.0f - v) * (1.0f - k);
                }
            }
        } else {
            for (size_t x = 0; x < w; x++)
                for (int c = 0; c < ncomp; c++)
                    out[(size_t)c * plane + x] = *s++ / 255.0f;
        }
    }
    d->stage = "the end of the file, up to EOI";
    jpeg_finish_decompress(&d->jd);
    meter_end(&d->meter);
    return TSR_OK;
}

static tsr_status jpeg_decode(dec *d)
{
    d->jd.err = jpeg_std_error(&d->jerr.pub);
    d->jerr.pub.error_exit = jpeg_on_error;
    d->jerr.pub.emit_message = jpeg_on_message;
    d->jerr.pub.output_message = jpeg_on_output;
    d->jerr.d = d;
    return jpeg_run(d);
}

/* Sniff the format from the first bytes and run the matching decoder. */
static tsr_status decode_once(FILE *fp, const char *name, uint64_t max_pixels, int header_only,
                              const tsr__io_ctl *ctl, tsr_port_info *info, tsr_image **out,
                              tsr__err *err, int *jeof)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    dec *d = calloc(1, sizeof *d);
    if (!d)
        return tsr__seterr(err, TSR_ERR_NOMEM, "%s: out of memory", name);
    d->fp = fp;
    d->name = name;
    d->max_pixels = max_pixels;
    d->header_only = header_only;
    d->ctl = ctl;
    d->err = err;

    tsr_status rc;
    unsigned char sig[8];
    size_t n = fread(sig, 1, sizeof sig, fp);
    if (n < sizeof sig && ferror(fp)) {
        rc = dfail(d, TSR_ERR_IO, "read error: %s", strerror(errno));
    } else if (n == 0) {
        rc = dfail(d, TSR_ERR_DECODE, "empty file (expected a PNG or JPEG image)");
    } else if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) {
        if (fseek(fp, 0, SEEK_SET))
            rc = dfail(d, TSR_ERR_IO, "cannot seek: %s", strerror(errno));
        else
            rc = jpeg_decode(d);
    } else if (n == sizeof sig && !memcmp(sig, png_sig, sizeof sig)) {
        rc = png_decode(d);
    } else if (!memcmp(sig, png_sig, n)) {
        rc = dfail(d, TSR_ERR_DECODE, "truncated PNG file (expected the 8-byte signature)");
    } else if (n < 3 && sig[0] == 0xFF && (n == 1 || sig[1] == 0xD8)) {
        rc = dfail(d, TSR_ERR_DECODE, "truncated JPEG file (expected more than %zu bytes)", n);
    } else {
        rc = dfail(d, TSR_ERR_DECODE,
                   "not a PNG or JPEG file (expected the PNG signature "
                   "89 50 4E 47 0D 0A 1A 0A or the JPEG marker FF D8 FF)");
    }

    if (d->png)
        png_destroy_read_struct(&d->png, d->pinfo ? &d->pinfo : NULL, NULL);
    jpeg_destroy_decompress(&d->jd);
    free(d->rows);
    free(d->rowp);
    if (!rc) {
        if (info)
            *info = d->info;
        if (out)
            *out = d->img;
    } else {
        tsr_image_free(d->img);
    }
    *jeof = d->jeof;
    free(d);
    return rc;
}

/* A single-scan JPEG that ran out of data is tried once more with an EOI marker appended: when
 * that is all it lacked, it loads, as vips and browsers load it; otherwise (data missing inside
 * the scan) the first error stands. A progressive file cut between scans can not be told from
 * one missing only its EOI, so it stays refused. */
static tsr_status decode_stream(FILE *fp, const char *name, uint64_t max_pixels, int header_only,
                                const tsr__io_ctl *ctl, tsr_port_info *info, tsr_image **out,
                                tsr__err *err)
{
    int jeof = 0;
    tsr_status rc = decode_once(fp, name, max_pixels, header_only, ctl, info, out, err, &jeof);
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
        mf ? decode_once(mf, name, max_pixels, header_only, ctl, info, out, err, &jeof) : rc;
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
                              const tsr__io_ctl *ctl, tsr_port_info *info, tsr_image **out,
                              tsr__err *err)
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
        rc = decode_stream(mf, "<stdin>", max_pixels, header_only, ctl, info, out, err);
        fclose(mf);
        return rc;
    }
    FILE *fp;
    tsr_status rc = tsr__fopen_regular(path, &fp, err);
    if (rc)
        return rc;
    rc = decode_stream(fp, path, max_pixels, header_only, ctl, info, out, err);
    fclose(fp); /* read-only: a close error cannot lose data */
    return rc;
}

tsr_status tsr__image_probe(const char *path, uint64_t max_pixels, tsr_port_info *info,
                            tsr__err *err)
{
    if (!info)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__image_probe: info is NULL");
    return decode_file(path, max_pixels, 1, NULL, info, NULL, err);
}

tsr_status tsr__image_load(const char *path, uint64_t max_pixels, const tsr__io_ctl *ctl,
                           tsr_image **out, tsr__err *err)
{
    if (!out)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__image_load: out is NULL");
    *out = NULL;
    return decode_file(path, max_pixels, 0, ctl, NULL, out, err);
}

tsr_status tsr__image_decode(const unsigned char *buf, size_t len, const char *name,
                             uint64_t max_pixels, const tsr__io_ctl *ctl, tsr_image **out,
                             tsr__err *err)
{
    if (!name)
        name = "<memory>";
    if (!out || (!buf && len))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: tsr__image_decode: NULL argument", name);
    *out = NULL;
    if (len == 0) /* fmemopen may refuse an empty buffer */
        return tsr__seterr(err, TSR_ERR_DECODE, "%s: empty file (expected a PNG or JPEG image)",
                           name);
    /* One decoder over a stdio stream serves both files and memory. */
    FILE *fp = fmemopen((void *)buf, len, "rb");
    if (!fp)
        return tsr__seterr(err, errno == ENOMEM ? TSR_ERR_NOMEM : TSR_ERR_IO,
                           "%s: cannot open a memory stream: %s", name, strerror(errno));
    tsr_status rc = decode_stream(fp, name, max_pixels, 0, ctl, NULL, out, err);
    fclose(fp);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct enc_jerr {
    struct jpeg_error_mgr pub;
    struct enc *e;
} enc_jerr;

/* PNG rows are quantized on a second thread, bands of rows ahead of the thread that filters and
 * deflates them: at the fast levels (0-2) the two cost about the same. */
#define PNG_BAND_ROWS 16
#define PNG_BANDS 4

typedef struct png_pipe {
    const tsr_image *img;
    int depth;
    size_t rowbytes;
    unsigned char *buf; /* PNG_BANDS bands of PNG_BAND_ROWS packed rows, a ring */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;   /* the thread runs: join it */
    int stop;      /* the writer gave up: the thread returns */
    int64_t made;  /* bands packed */
    int64_t taken; /* bands written out, whose slots may be packed again */
} png_pipe;

#define JPEG_OUT_BYTES 65536

typedef struct enc {
    FILE *fp;           /* the temporary file; NULL: encoding to memory (mem) */
    unsigned char *mem; /* malloc'd, mem_len of mem_cap bytes used */
    size_t mem_len, mem_cap;
    const char *path; /* for messages: the destination, or "memory" */
    tsr__err *err;
    tsr_status rc;
    const tsr__io_ctl *ctl;
    io_meter meter;
    const tsr_image *img;
    tsr_save_options o;
    unsigned char *row;
    png_pipe pipe;
    png_structp png;
    png_infop pinfo;
    int nomem;
    struct jpeg_compress_struct jc;
    enc_jerr jerr;
    struct jpeg_destination_mgr jdest;
    jmp_buf jb;
    unsigned char jbuf[JPEG_OUT_BYTES]; /* the JPEG destination's buffer */
} enc;

__attribute__((format(printf, 3, 4))) static tsr_status efail(enc *e, tsr_status rc,
                                                              const char *fmt, ...)
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

static tsr_status ecancel(enc *e)
{
    if (!e->rc)
        e->rc = tsr__seterr(e->err, TSR_ERR_CANCELLED, "cancelled while encoding '%s'", e->path);
    return e->rc;
}

/* Encoded bytes out, to the file or the memory buffer; non-zero (message set) on failure. */
static int enc_write(enc *e, const void *buf, size_t len)
{
    if (e->fp) {
        if (fwrite(buf, 1, len, e->fp) == len)
            return 0;
        efail(e, TSR_ERR_IO, "write error: %s", strerror(errno));
        return -1;
    }
    if (len > e->mem_cap - e->mem_len) {
        size_t cap = e->mem_cap ? e->mem_cap : 65536;
        while (cap - e->mem_len < len) {
            if (cap > SIZE_MAX / 2) {
                efail(e, TSR_ERR_NOMEM, "encoded image larger than memory can hold");
                return -1;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(e->mem, cap);
        if (!p) {
            efail(e, TSR_ERR_NOMEM, "out of memory for %zu bytes of encoded image", cap);
            return -1;
        }
        e->mem = p;
        e->mem_cap = cap;
    }
    memcpy(e->mem + e->mem_len, buf, len);
    e->mem_len += len;
    return 0;
}

/* round(clamp(v, 0, 1) * maxval); NaN and negatives give 0. Double, so that k / maxval read
 * back from a 16-bit file maps to k again. */
static inline unsigned quantize(float v, unsigned maxval)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 1.0f)
        return maxval;
    return (unsigned)((double)v * maxval + 0.5);
}

static void png_on_werror(png_structp png, png_const_charp msg)
{
    enc *e = png_get_error_ptr(png);
    if (e->nomem)
        efail(e, TSR_ERR_NOMEM, "out of memory while encoding PNG");
    else
        efail(e, TSR_ERR_INTERNAL, "PNG encoder error: %s", msg);
    png_longjmp(png, 1);
}

static png_voidp png_on_wmalloc(png_structp png, png_alloc_size_t size)
{
    png_voidp p = malloc(size);
    if (!p) {
        enc *e = png_get_mem_ptr(png);
        e->nomem = 1;
    }
    return p;
}

static void png_on_write(png_structp png, png_bytep buf, size_t len)
{
    enc *e = png_get_io_ptr(png);
    if (enc_write(e, buf, len))
        png_error(png, "write failed");
}

static void png_on_flush(png_structp png) {}

/* Row y of img as PNG stores it: interleaved samples, 16-bit big-endian. */
static void png_pack_row(const tsr_image *img, int depth, size_t y, unsigned char *d)
{
    size_t w = (size_t)img->width, ch = (size_t)img->channels;
    size_t plane = w * (size_t)img->height;
    const float *in = img->data + y * w;
    for (size_t x = 0; x < w; x++)
        for (size_t c = 0; c < ch; c++) {
            float v = in[c * plane + x];
            if (depth == 16) {
                unsigned q = quantize(v, 65535);
                *d++ = (unsigned char)(q >> 8);
                *d++ = (unsigned char)q;
            } else {
                *d++ = (unsigned char)quantize(v, 255);
            }
        }
}

static unsigned char *png_pipe_band(png_pipe *p, int64_t band)
{
    return p->buf + (size_t)(band % PNG_BANDS) * PNG_BAND_ROWS * p->rowbytes;
}

static void *png_pipe_main(void *arg)
{
    png_pipe *p = arg;
    size_t h = (size_t)p->img->height;
    int64_t bands = (int64_t)((h + PNG_BAND_ROWS - 1) / PNG_BAND_ROWS);
    for (int64_t b = 0; b < bands; b++) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && b - p->taken >= PNG_BANDS)
            pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        unsigned char *d = png_pipe_band(p, b);
        for (size_t y = (size_t)b * PNG_BAND_ROWS; y < h && y < (size_t)(b + 1) * PNG_BAND_ROWS;
             y++, d += p->rowbytes)
            png_pack_row(p->img, p->depth, y, d);
        pthread_mutex_lock(&p->mu);
        p->made = b + 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

/* Start the packing thread for images of more than one band. Anything short of that (no memory,
 * no thread) leaves p->started 0 and the writer packs its rows itself: same bytes, one core. */
static void png_pipe_start(png_pipe *p, const tsr_image *img, int depth, size_t rowbytes)
{
    size_t bytes;
    memset(p, 0, sizeof *p);
    p->img = img;
    p->depth = depth;
    p->rowbytes = rowbytes;
    if (img->height <= PNG_BAND_ROWS ||
        !tsr__mul_size(rowbytes, (size_t)PNG_BAND_ROWS * PNG_BANDS, &bytes) ||
        !(p->buf = malloc(bytes)))
        return;
    if (pthread_mutex_init(&p->mu, NULL))
        goto fail;
    if (pthread_cond_init(&p->cv, NULL)) {
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    if (pthread_create(&p->thread, NULL, png_pipe_main, p)) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    p->started = 1;
    return;
fail:
    free(p->buf);
    p->buf = NULL;
}

/* Stop (if the writer gave up early) and join the thread; free the ring. Safe to call twice. */
static void png_pipe_end(png_pipe *p)
{
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        p->started = 0;
    }
    free(p->buf);
    p->buf = NULL;
}

/* The packed row y: from the thread's ring, or packed here into e->row. */
static unsigned char *png_next_row(enc *e, size_t y)
{
    png_pipe *p = &e->pipe;
    if (!p->started) {
        png_pack_row(e->img, e->o.bit_depth, y, e->row);
        return e->row;
    }
    int64_t b = (int64_t)(y / PNG_BAND_ROWS);
    if (y % PNG_BAND_ROWS == 0) { /* a new band: the previous one is written, its slot free */
        pthread_mutex_lock(&p->mu);
        p->taken = b;
        pthread_cond_broadcast(&p->cv);
        while (p->made <= b)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    return png_pipe_band(p, b) + (y % PNG_BAND_ROWS) * p->rowbytes;
}

static tsr_status png_encode_run(enc *e)
{
    if (setjmp(png_jmpbuf(e->png)))
        return e->rc ? e->rc : efail(e, TSR_ERR_INTERNAL, "PNG encoder failed");
    static const int ctypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                  PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    const tsr_image *img = e->img;
    int depth = e->o.bit_depth;
    size_t w = (size_t)img->width, ch = (size_t)img->channels, rowbytes;
    if (!tsr__mul_size(w * ch, (size_t)depth / 8, &rowbytes) || !(e->row = malloc(rowbytes)))
        return efail(e, TSR_ERR_NOMEM, "out of memory for a PNG row");
    png_set_IHDR(e->png, e->pinfo, (png_uint_32)img->width, (png_uint_32)img->height, depth,
                 ctypes[ch], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(e->png, e->o.compression);
    /* Adaptive row filtering costs more than fast deflate itself: levels 0-2 ask for speed
     * (libvips writes unfiltered by default), levels 3-9 for size. */
    png_set_filter(e->png, PNG_FILTER_TYPE_BASE,
                   e->o.compression <= 2 ? PNG_FILTER_NONE : PNG_ALL_FILTERS);
    png_write_info(e->png, e->pinfo);
    /* Deflate's effort per byte grows with the level: up to 10x from 1 to 9 on photos, and
     * more on some regular patterns. */
    unsigned cost = e->o.compression <= 3 ? 1 : e->o.compression <= 6 ? 2 : 8;
    meter_init(&e->meter, e->ctl, img->height, rowbytes, cost);
    png_pipe_start(&e->pipe, img, depth, rowbytes);
    for (size_t y = 0; y < (size_t)img->height; y++) {
        if (meter_row(&e->meter))
            return ecancel(e);
        png_write_row(e->png, png_next_row(e, y));
    }
    png_write_end(e->png, NULL);
    meter_end(&e->meter);
    return TSR_OK;
}

static tsr_status png_encode(enc *e)
{
    e->png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, e, png_on_werror, png_on_warning, e,
                                       png_on_wmalloc, png_on_free);
    if (!e->png || !(e->pinfo = png_create_info_struct(e->png)))
        return efail(e, TSR_ERR_NOMEM, "out of memory creating the PNG encoder");
    png_set_write_fn(e->png, e, png_on_write, png_on_flush);
    /* What was decoded can be written back: lift libpng's 10^6-per-side default here too. */
    png_set_user_limits(e->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    tsr_status rc = png_encode_run(e);
    png_pipe_end(&e->pipe); /* also after a longjmp out of libpng mid-image */
    return rc;
}

static void jpeg_on_werror(j_common_ptr cinfo)
{
    enc *e = ((enc_jerr *)cinfo->err)->e;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    switch (cinfo->err->msg_code) {
    case JERR_FILE_WRITE: efail(e, TSR_ERR_IO, "write error: %s", strerror(errno)); break;
    case JERR_OUT_OF_MEMORY:
        efail(e, TSR_ERR_NOMEM, "out of memory encoding JPEG: %s", text);
        break;
    default: efail(e, TSR_ERR_INTERNAL, "JPEG encoder error: %s", text); break;
    }
    longjmp(e->jb, 1);
}

static void jpeg_on_wmessage(j_common_ptr cinfo, int level) {}

/* The destination: JPEG_OUT_BYTES at a time through enc_write, to a file or to memory, so that
 * both get the same bytes. */
static void jpeg_dest_init(j_compress_ptr cinfo)
{
    enc *e = ((enc_jerr *)cinfo->err)->e;
    e->jdest.next_output_byte = e->jbuf;
    e->jdest.free_in_buffer = sizeof e->jbuf;
}

static boolean jpeg_dest_empty(j_compress_ptr cinfo)
{
    enc *e = ((enc_jerr *)cinfo->err)->e;
    if (enc_write(e, e->jbuf, sizeof e->jbuf))
        ERREXIT(cinfo, JERR_FILE_WRITE);
    e->jdest.next_output_byte = e->jbuf;
    e->jdest.free_in_buffer = sizeof e->jbuf;
    return TRUE;
}

static void jpeg_dest_term(j_compress_ptr cinfo)
{
    enc *e = ((enc_jerr *)cinfo->err)->e;
    size_t n = sizeof e->jbuf - e->jdest.free_in_buffer;
    if (n && enc_write(e, e->jbuf, n))
        ERREXIT(cinfo, JERR_FILE_WRITE);
}

static tsr_status jpeg_encode_run(enc *e)
{
    if (setjmp(e->jb))
        return e->rc ? e->rc : efail(e, TSR_ERR_INTERNAL, "JPEG encoder failed");
    jpeg_create_compress(&e->jc);
    e->jdest.init_destination = jpeg_dest_init;
    e->jdest.empty_output_buffer = jpeg_dest_empty;
    e->jdest.term_destination = jpeg_dest_term;
    e->jc.dest = &e->jdest;
    const tsr_image *img = e->img;
    /* JPEG has no alpha channel: an image with alpha is flattened onto the background colour
     * (straight alpha: v * a + bg * (1 - a)), never dropped with the colours under it. */
    int ncomp = img->channels <= 2 ? 1 : 3, alpha = img->channels == 2 || img->channels == 4;
    e->jc.image_width = (JDIMENSION)img->width;
    e->jc.image_height = (JDIMENSION)img->height;
    e->jc.input_components = ncomp;
    e->jc.in_color_space = ncomp == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&e->jc);
    jpeg_set_quality(&e->jc, e->o.quality, TRUE);
    if (ncomp == 3) {
        e->jc.comp_info[0].h_samp_factor = e->o.subsampling == 444 ? 1 : 2;
        e->jc.comp_info[0].v_samp_factor = e->o.subsampling == 420 ? 2 : 1;
        for (int c = 1; c < 3; c++)
            e->jc.comp_info[c].h_samp_factor = e->jc.comp_info[c].v_samp_factor = 1;
    }
    size_t w = (size_t)img->width, plane = w * (size_t)img->height, rowbytes;
    if (!tsr__mul_size(w, (size_t)ncomp, &rowbytes) || !(e->row = malloc(rowbytes)))
        return efail(e, TSR_ERR_NOMEM, "out of memory for a JPEG row");
    meter_init(&e->meter, e->ctl, img->height, rowbytes, 1);
    jpeg_start_compress(&e->jc, TRUE);
    while (e->jc.next_scanline < e->jc.image_height) {
        if (meter_row(&e->meter))
            return ecancel(e);
        const float *in = img->data + (size_t)e->jc.next_scanline * w;
        unsigned char *d = e->row;
        for (size_t x = 0; x < w; x++) {
            float a = alpha ? in[(size_t)ncomp * plane + x] : 1.0f;
            a = a < 0 ? 0 : a > 1 ? 1 : a;
            for (int c = 0; c < ncomp; c++) {
                float v = in[(size_t)c * plane + x];
                if (alpha)
                    v = v * a + e->o.background[c] * (1.0f - a);
                *d++ = (unsigned char)quantize(v, 255);
            }
        }
        JSAMPROW row = e->row;
        jpeg_write_scanlines(&e->jc, &row, 1);
    }
    jpeg_finish_compress(&e->jc);
    meter_end(&e->meter);
    return TSR_OK;
}

static tsr_status jpeg_encode(enc *e)
{
    e->jc.err = jpeg_std_error(&e->jerr.pub);
    e->jerr.pub.error_exit = jpeg_on_werror;
    e->jerr.pub.emit_message = jpeg_on_wmessage;
    e->jerr.pub.output_message = jpeg_on_output;
    e->jerr.e = e;
    return jpeg_encode_run(e);
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

static int ext_is(const char *ext, const char *want)
{
    return ext && !strcasecmp(ext, want);
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

/* Fill defaults and check ranges; every field is checked whatever the format, so a bad value
 * is caught where it is set, not when the format changes. */
static tsr_status resolve_options(const tsr_image *img, const char *path, tsr_save_options *o,
                                  tsr__err *err)
{
    if (o->format == TSR_FORMAT_AUTO) {
        const char *slash = strrchr(path, '/');
        const char *ext = strrchr(slash ? slash + 1 : path, '.');
        if (ext_is(ext, ".png"))
            o->format = TSR_FORMAT_PNG;
        else if (ext_is(ext, ".jpg") || ext_is(ext, ".jpeg"))
            o->format = TSR_FORMAT_JPEG;
        else
            return tsr__seterr(err, TSR_ERR_UNSUPPORTED,
                               "%s: unknown image file extension '%s' (expected .png, .jpg or "
                               ".jpeg)",
                               path, ext ? ext : "");
    } else if (o->format != TSR_FORMAT_PNG && o->format != TSR_FORMAT_JPEG) {
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: unknown format %d", path, (int)o->format);
    }
    if (o->bit_depth == 0)
        o->bit_depth = o->format == TSR_FORMAT_PNG && img->bit_depth == 16 ? 16 : 8;
    if (o->bit_depth != 8 && !(o->bit_depth == 16 && o->format == TSR_FORMAT_PNG))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: bit depth %d (expected %s)", path,
                           o->bit_depth, o->format == TSR_FORMAT_PNG ? "8 or 16" : "8 for JPEG");
    for (int c = 0; c < 3; c++)
        if (!(o->background[c] >= 0.0f && o->background[c] <= 1.0f))
            return tsr__seterr(err, TSR_ERR_INVALID,
                               "%s: background component %d is %g (expected 0..1)", path, c,
                               (double)o->background[c]);
    if (o->quality == 0)
        o->quality = JPEG_DEFAULT_QUALITY;
    if (o->quality < 1 || o->quality > 100)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: JPEG quality %d (expected 1..100)", path,
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

static enc *enc_new(const tsr_image *img, const char *name, const tsr_save_options *opt,
                    const tsr__io_ctl *ctl, tsr__err *err)
{
    enc *e = calloc(1, sizeof *e);
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

static void enc_free(enc *e)
{
    if (e->png)
        png_destroy_write_struct(&e->png, e->pinfo ? &e->pinfo : NULL);
    jpeg_destroy_compress(&e->jc);
    free(e->row);
    free(e->mem);
    free(e);
}

static tsr_status encode(enc *e)
{
    return e->o.format == TSR_FORMAT_PNG ? png_encode(e) : jpeg_encode(e);
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
    enc *e = enc_new(img, path, opt, ctl, err);
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
        rc = efail(e, TSR_ERR_IO, "cannot set permissions on the temporary file: %s",
                   strerror(errno));
        goto fail;
    }
    if (!(e->fp = fdopen(fd, "wb"))) {
        rc = efail(e, errno == ENOMEM ? TSR_ERR_NOMEM : TSR_ERR_IO, "cannot open a stream: %s",
                   strerror(errno));
        goto fail;
    }
    fd = -1;
    rc = encode(e);
    if (rc)
        goto fail;
    if (fflush(e->fp) || ferror(e->fp)) {
        rc = efail(e, TSR_ERR_IO, "write error: %s", strerror(errno));
        goto fail;
    }
    int closed = fclose(e->fp);
    e->fp = NULL;
    if (closed) {
        rc = efail(e, TSR_ERR_IO, "write error on close: %s", strerror(errno));
        goto fail;
    }
    if (rename(tmp, target)) {
        rc = efail(e, TSR_ERR_IO, "cannot replace the file: %s", strerror(errno));
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
    if (!opt || (opt->format != TSR_FORMAT_PNG && opt->format != TSR_FORMAT_JPEG))
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: format %d (expected TSR_FORMAT_PNG or TSR_FORMAT_JPEG)", name,
                           opt ? (int)opt->format : -1);
    tsr_status rc = check_image(img, name, err);
    if (rc)
        return rc;
    enc *e = enc_new(img, name, opt, ctl, err);
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
    return tsr__image_load(path, e->max_pixels, NULL, out, tsr__eerr(e));
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
    return tsr__image_decode(buf, len, "memory", e->max_pixels, NULL, out, tsr__eerr(e));
}

tsr_status tsr_image_encode(tsr_engine *e, const tsr_image *img, const tsr_save_options *opt,
                            void **buf, size_t *len)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    return tsr__image_encode(img, opt, NULL, buf, len, tsr__eerr(e));
}
