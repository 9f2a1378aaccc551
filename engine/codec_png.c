/* PNG through libpng: 1/2/4/8/16-bit gray, gray+alpha, palette, RGB, RGBA; interlaced or not.
 *
 * Decoding takes samples as stored, v / (2^depth - 1): no gamma or sBIT is applied, so a pixel
 * read and written back is the same pixel. Palettes expand to RGB, tRNS to an alpha channel (as
 * png_set_tRNS_to_alpha), 1/2/4-bit gray to 8 bits (as png_set_expand_gray_1_2_4_to_8:
 * k * 255 / (2^d - 1), so k / (2^d - 1) exactly); 16-bit files stay 16-bit. iCCP and eXIf
 * chunks are handed to the caller (tsr__meta); on save they are written back from e->meta, and a
 * file without a profile is tagged sRGB (the sRGB chunk, perceptual intent).
 *
 * libpng reports errors through its longjmp: each setjmp sits in a function whose locals are
 * set before it and never changed, pointing at state owned by the caller, which frees it all.
 * Encoding quantizes rows on a second thread, bands ahead of the thread that filters and
 * deflates them. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "codec.h"

typedef struct pngd {
    tsr__dec *d;
    png_structp png;
    png_infop pinfo;
    unsigned char *rows;
    png_bytep *rowp;
    int nomem;
    const char *stage; /* what the decoder was reading, for messages */
    unsigned warnings; /* under fail_on none: how many, and the first one's text */
    char first_warning[160];
} pngd;

/* Decoding ----------------------------------------------------------------------------------- */

static void png_on_error(png_structp png, png_const_charp msg)
{
    pngd *p = png_get_error_ptr(png);
    tsr__dec *d = p->d;
    if (p->nomem)
        tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory while decoding PNG");
    else
        tsr__dec_fail(d, TSR_ERR_DECODE, "invalid PNG file: %s (while reading %s)", msg, p->stage);
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary chunks, unknown profiles) do not change the pixels: stay quiet, the
 * library never prints. */
static void png_on_warning(png_structp png, png_const_charp msg) {}

/* Decoding follows fail_on: error stays quiet on warnings; warning fails on any; none also
 * takes benign errors and CRC errors as warnings (png_decode) and notes them for d->recovered. */
static void png_on_dwarning(png_structp png, png_const_charp msg)
{
    pngd *p = png_get_error_ptr(png);
    tsr__dec *d = p->d;
    if (d->lo.fail_on == TSR_FAIL_ON_WARNING) {
        tsr__dec_fail(d, TSR_ERR_DECODE, "PNG warning (fail_on warning): %s (while reading %s)",
                      msg, p->stage);
        png_longjmp(png, 1);
    }
    if (d->lo.fail_on == TSR_FAIL_ON_NONE && !p->warnings++)
        snprintf(p->first_warning, sizeof p->first_warning, "%s", msg);
}

static png_voidp png_on_malloc(png_structp png, png_alloc_size_t size)
{
    png_voidp p = malloc(size);
    if (!p) {
        pngd *p = png_get_mem_ptr(png);
        p->nomem = 1;
    }
    return p;
}

static void png_on_free(png_structp png, png_voidp p)
{
    free(p);
}

static void png_on_read(png_structp png, png_bytep buf, size_t len)
{
    tsr__dec *d = ((pngd *)png_get_io_ptr(png))->d;
    if (fread(buf, 1, len, d->fp) == len)
        return;
    if (ferror(d->fp))
        tsr__dec_fail(d, TSR_ERR_IO, "read error: %s", strerror(errno));
    else
        tsr__dec_fail(d, TSR_ERR_DECODE, "truncated PNG file (expected more data before IEND)");
    png_error(png, "read failed");
}

static void png_to_float(tsr__dec *d, int y, const unsigned char *row)
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

/* iCCP and eXIf, from the chunks before the image data (what a header-only probe sees too);
 * non-zero: no memory. */
static int png_read_meta(pngd *p)
{
    tsr__meta *m = &p->d->meta;
    png_charp name;
    int method;
    png_bytep icc, exif;
    png_uint_32 icc_len, exif_len;
    if (png_get_iCCP(p->png, p->pinfo, &name, &method, &icc, &icc_len) && icc_len &&
        tsr__meta_set(&m->icc, &m->icc_len, icc, icc_len))
        return -1;
    if (png_get_eXIf_1(p->png, p->pinfo, &exif_len, &exif) && exif_len &&
        tsr__meta_set(&m->exif, &m->exif_len, exif, exif_len))
        return -1;
    return 0;
}

static tsr_status png_run(pngd *p)
{
    tsr__dec *const d = p->d; /* set before the setjmp, never changed */
    if (setjmp(png_jmpbuf(p->png)))
        return d->rc ? d->rc : tsr__dec_fail(d, TSR_ERR_DECODE, "invalid PNG file");
    /* libpng's own default caps each side at 10^6: the engine's pixel limit is the one that
     * decides, with its own message. */
    png_set_user_limits(p->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    p->stage = "the chunks before the image data";
    png_read_info(p->png, p->pinfo);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(p->png, p->pinfo, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (tsr__dec_check_limit(d, w, h, "PNG"))
        return d->rc;
    int trns = png_get_valid(p->png, p->pinfo, PNG_INFO_tRNS) != 0;
    int ch;
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY: ch = 1 + trns; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: ch = 2; break;
    case PNG_COLOR_TYPE_PALETTE: ch = 3 + trns; break;
    case PNG_COLOR_TYPE_RGB: ch = 3 + trns; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: ch = 4; break;
    default: return tsr__dec_fail(d, TSR_ERR_DECODE, "invalid PNG colour type %d", ctype);
    }
    d->info.width = (int)w;
    d->info.height = (int)h;
    d->info.channels = ch;
    d->info.bit_depth = depth == 16 ? 16 : 8;
    if (png_read_meta(p))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for PNG metadata");
    if (d->header_only)
        return TSR_OK;

    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(p->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(p->png);
    if (trns)
        png_set_tRNS_to_alpha(p->png);
    int passes = png_set_interlace_handling(p->png);
    png_read_update_info(p->png, p->pinfo);

    size_t rowbytes = png_get_rowbytes(p->png, p->pinfo), want;
    if (!tsr__mul_size((size_t)w * (size_t)ch, (size_t)d->info.bit_depth / 8, &want) ||
        rowbytes != want || png_get_channels(p->png, p->pinfo) != ch)
        return tsr__dec_fail(d, TSR_ERR_INTERNAL, "PNG row layout is %zu bytes, expected %zu",
                             rowbytes, want);
    tsr_status rc = tsr_image_new((int)w, (int)h, ch, &d->img);
    if (rc)
        return tsr__dec_fail(d, rc, "cannot allocate a %ux%u image", (unsigned)w, (unsigned)h);
    d->img->bit_depth = d->info.bit_depth;

    /* Interlaced passes fill every row several times, so they need the whole image; a plain
     * file streams through one row. */
    size_t nrows = passes > 1 ? h : 1, total;
    if (!tsr__mul_size(rowbytes, nrows, &total) || !(p->rows = malloc(total)) ||
        !(p->rowp = malloc(nrows * sizeof *p->rowp)))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for %zu PNG rows", nrows);
    for (size_t y = 0; y < nrows; y++)
        p->rowp[y] = p->rows + y * rowbytes;
    p->stage = "the image data";
    if (passes > 1) {
        /* What png_read_image does, pass by pass. libpng is called for every row of every pass
         * and skips rows outside the pass; progress counts the rows each pass really holds.
         * A row is final once the last pass went over it. */
        int64_t rows = 0;
        for (int pass = 0; pass < passes; pass++)
            if (PNG_PASS_COLS(w, pass) > 0)
                rows += PNG_PASS_ROWS(h, pass);
        tsr__meter_init(&d->meter, d->ctl, rows, rowbytes, 1);
        for (int pass = 0; pass < passes; pass++) {
            int nonempty = PNG_PASS_COLS(w, pass) > 0;
            for (png_uint_32 y = 0; y < h; y++) {
                if (nonempty && PNG_ROW_IN_INTERLACE_PASS(y, pass) && tsr__meter_row(&d->meter))
                    return tsr__dec_cancel(d);
                png_read_row(p->png, p->rowp[y], NULL);
                if (pass == passes - 1)
                    png_to_float(d, (int)y, p->rowp[y]);
            }
        }
    } else {
        tsr__meter_init(&d->meter, d->ctl, h, rowbytes, 1);
        for (png_uint_32 y = 0; y < h; y++) {
            if (tsr__meter_row(&d->meter))
                return tsr__dec_cancel(d);
            png_read_row(p->png, p->rows, NULL);
            png_to_float(d, (int)y, p->rows);
        }
    }
    /* Reading to IEND is what tells a complete file from one cut after its last IDAT. */
    p->stage = "the chunks after the image data, up to IEND";
    png_read_end(p->png, NULL);
    if (p->warnings > 1)
        snprintf(d->recovered, sizeof d->recovered, "recovered from: %s; %u more PNG warnings",
                 p->first_warning, p->warnings - 1);
    else if (p->warnings)
        snprintf(d->recovered, sizeof d->recovered, "recovered from: %s", p->first_warning);
    tsr__meter_end(&d->meter);
    return TSR_OK;
}

static tsr_status png_decode(tsr__dec *d)
{
    pngd *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory creating the PNG decoder");
    p->d = d;
    tsr_status rc;
    p->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, p, png_on_error, png_on_dwarning, p,
                                      png_on_malloc, png_on_free);
    if (!p->png || !(p->pinfo = png_create_info_struct(p->png))) {
        rc = tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory creating the PNG decoder");
    } else {
        png_set_read_fn(p->png, p, png_on_read);
        if (d->lo.fail_on == TSR_FAIL_ON_NONE) {
            png_set_crc_action(p->png, PNG_CRC_WARN_USE, PNG_CRC_WARN_USE);
            png_set_benign_errors(p->png, 1);
        }
        rc = png_run(p);
    }
    if (p->png)
        png_destroy_read_struct(&p->png, p->pinfo ? &p->pinfo : NULL, NULL);
    free(p->rows);
    free(p->rowp);
    free(p);
    return rc;
}

/* Encoding ----------------------------------------------------------------------------------- */

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

typedef struct pnge {
    tsr__enc *e;
    png_structp png;
    png_infop pinfo;
    unsigned char *row;
    png_pipe pipe;
    int nomem;
} pnge;

static void png_on_werror(png_structp png, png_const_charp msg)
{
    pnge *p = png_get_error_ptr(png);
    tsr__enc *e = p->e;
    if (p->nomem)
        tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory while encoding PNG");
    else
        tsr__enc_fail(e, TSR_ERR_INTERNAL, "PNG encoder error: %s", msg);
    png_longjmp(png, 1);
}

static png_voidp png_on_wmalloc(png_structp png, png_alloc_size_t size)
{
    png_voidp p = malloc(size);
    if (!p) {
        pnge *p = png_get_mem_ptr(png);
        p->nomem = 1;
    }
    return p;
}

static void png_on_write(png_structp png, png_bytep buf, size_t len)
{
    tsr__enc *e = ((pnge *)png_get_io_ptr(png))->e;
    if (tsr__enc_write(e, buf, len))
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
                unsigned q = tsr__quantize(v, 65535);
                *d++ = (unsigned char)(q >> 8);
                *d++ = (unsigned char)q;
            } else {
                *d++ = (unsigned char)tsr__quantize(v, 255);
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

/* The packed row y: from the thread's ring, or packed here into p->row. */
static unsigned char *png_next_row(pnge *pe, size_t y)
{
    tsr__enc *e = pe->e;
    png_pipe *p = &pe->pipe;
    if (!p->started) {
        png_pack_row(e->img, e->o.bit_depth, y, pe->row);
        return pe->row;
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

static tsr_status png_encode_run(pnge *p)
{
    tsr__enc *const e = p->e; /* set before the setjmp, never changed */
    if (setjmp(png_jmpbuf(p->png)))
        return e->rc ? e->rc : tsr__enc_fail(e, TSR_ERR_INTERNAL, "PNG encoder failed");
    static const int ctypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                  PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    const tsr_image *img = e->img;
    int depth = e->o.bit_depth;
    size_t w = (size_t)img->width, ch = (size_t)img->channels, rowbytes;
    if (!tsr__mul_size(w * ch, (size_t)depth / 8, &rowbytes) || !(p->row = malloc(rowbytes)))
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory for a PNG row");
    png_set_IHDR(p->png, p->pinfo, (png_uint_32)img->width, (png_uint_32)img->height, depth,
                 ctypes[ch], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(p->png, e->o.compression);
    /* Adaptive row filtering costs more than fast deflate itself: levels 0-2 ask for speed
     * (libvips writes unfiltered by default), levels 3-9 for size. */
    png_set_filter(p->png, PNG_FILTER_TYPE_BASE,
                   e->o.compression <= 2 ? PNG_FILTER_NONE : PNG_ALL_FILTERS);
    /* A profile given is embedded (libpng drops one whose header it finds broken); without one
     * the pixels are sRGB and say so. */
    if (e->meta.icc && e->meta.icc_len <= PNG_UINT_31_MAX)
        png_set_iCCP(p->png, p->pinfo, "ICC profile", PNG_COMPRESSION_TYPE_BASE, e->meta.icc,
                     (png_uint_32)e->meta.icc_len);
    else
        png_set_sRGB(p->png, p->pinfo, PNG_sRGB_INTENT_PERCEPTUAL);
    if (e->meta.exif && e->meta.exif_len <= PNG_UINT_31_MAX)
        png_set_eXIf_1(p->png, p->pinfo, (png_uint_32)e->meta.exif_len, e->meta.exif);
    png_write_info(p->png, p->pinfo);
    /* Deflate's effort per byte grows with the level: up to 10x from 1 to 9 on photos, and
     * more on some regular patterns. */
    unsigned cost = e->o.compression <= 3 ? 1 : e->o.compression <= 6 ? 2 : 8;
    tsr__meter_init(&e->meter, e->ctl, img->height, rowbytes, cost);
    png_pipe_start(&p->pipe, img, depth, rowbytes);
    for (size_t y = 0; y < (size_t)img->height; y++) {
        if (tsr__meter_row(&e->meter))
            return tsr__enc_cancel(e);
        png_write_row(p->png, png_next_row(p, y));
    }
    png_write_end(p->png, NULL);
    tsr__meter_end(&e->meter);
    return TSR_OK;
}

static tsr_status png_encode(tsr__enc *e)
{
    pnge *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory creating the PNG encoder");
    p->e = e;
    tsr_status rc;
    p->png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, p, png_on_werror, png_on_warning, p,
                                       png_on_wmalloc, png_on_free);
    if (!p->png || !(p->pinfo = png_create_info_struct(p->png))) {
        rc = tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory creating the PNG encoder");
    } else {
        png_set_write_fn(p->png, p, png_on_write, png_on_flush);
        /* What was decoded can be written back: lift libpng's 10^6-per-side default here too. */
        png_set_user_limits(p->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
        rc = png_encode_run(p);
    }
    png_pipe_end(&p->pipe); /* also after a longjmp out of libpng mid-image */
    if (p->png)
        png_destroy_write_struct(&p->png, p->pinfo ? &p->pinfo : NULL);
    free(p->row);
    free(p);
    return rc;
}

static int png_sniff(const unsigned char *sig, size_t n)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= sizeof png_sig)
        return memcmp(sig, png_sig, sizeof png_sig) ? 0 : 1;
    return memcmp(sig, png_sig, n) ? 0 : -1;
}

const tsr__codec tsr__codec_png = {
    .format = TSR_FORMAT_PNG,
    .name = "PNG",
    .exts = "png",
    .sniff = png_sniff,
    .decode = png_decode,
    .encode = png_encode,
    .max_side = 2147483647u,
    .depths = 1u << 8 | 1u << 16,
    .alpha = 1,
};
