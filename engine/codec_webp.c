/* WebP through libwebp: lossy (VP8, with or without an ALPH chunk) and lossless (VP8L) still
 * images, 8 bits a sample; RGB or RGBA (WebP has no gray: a gray image is written as RGB and
 * reads back as RGB). Animated files are refused (TSR_ERR_UNSUPPORTED): there is no frame to
 * choose that would not be a guess.
 *
 * Decoding reads the whole file (libwebp parses from memory; WEBP_MAX_FILE caps it; a size over
 * the pixel limit is refused from the first 64 KiB), reads the header with WebPGetFeatures, and
 * decodes through the incremental decoder (WebPIDecoder), feeding the bytes in steps sized from
 * the rows the previous steps gave, so that each step decodes about a band of rows: the cancel
 * is looked at between steps (a lossless stream that packs a band into very few bytes decodes
 * more rows in one step). Lossy pixels are libwebp's own YUV to RGB conversion (fancy
 * upsampling, no dithering), as dwebp and Pillow give them. ICCP and EXIF chunks (WebPDemux)
 * are handed to the caller; an EXIF chunk starting with "Exif\0\0" (some writers add the JPEG
 * prefix) has it removed.
 *
 * Encoding quantizes to 8-bit interleaved RGB(A), imports it into a WebPPicture and encodes to
 * memory (WebPMemoryWriter): lossy at e->o.quality (method 4: the same bytes as cwebp -q Q),
 * or lossless (e->o.lossless, "exact": colours under transparent pixels are kept). libwebp's
 * progress hook reports progress and stops the encoder on a cancel; the lossless encoder calls
 * it less often (a few hundred ms apart on a 3-megapixel image). With an ICC profile or an EXIF
 * block to embed, WebPMux assembles the VP8X file around the bitstream. Then the bytes go out
 * through tsr__enc_write. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "codec.h"

#define WEBP_MAX_SIDE 16383
/* Larger than any still WebP can usefully be (16383^2 pixels of lossless data stays well under
 * it): a bigger file is refused before it is read into memory. */
#define WEBP_MAX_FILE ((size_t)1 << 30)
/* The first step fed to the incremental decoder, and the least of any later one. */
#define WEBP_MIN_STEP ((size_t)4096)

/* Decoding ----------------------------------------------------------------------------------- */

/* The whole stream into a malloc'd buffer (*buf, *len); non-zero: failed, message set. */
static tsr_status webp_read_all(tsr__dec *d, unsigned char **buf, size_t *len)
{
    size_t cap = 65536, n = 0;
    unsigned char *b = malloc(cap);
    if (!b)
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory reading the WebP file");
    for (;;) {
        if (n == cap) {
            /* Up to one byte past the cap: reading that byte tells a file of exactly the cap
             * from a larger one. */
            size_t ncap = cap > WEBP_MAX_FILE / 2 ? WEBP_MAX_FILE + 1 : cap * 2;
            unsigned char *nb = n > WEBP_MAX_FILE ? NULL : realloc(b, ncap);
            if (!nb) {
                free(b);
                if (n > WEBP_MAX_FILE)
                    return tsr__dec_fail(d, TSR_ERR_LIMIT,
                                         "WebP file larger than %zu bytes (refused: expected a "
                                         "still image of at most %dx%d pixels)",
                                         WEBP_MAX_FILE, WEBP_MAX_SIDE, WEBP_MAX_SIDE);
                return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory reading the WebP file");
            }
            b = nb;
            cap = ncap;
        }
        size_t got = fread(b + n, 1, cap - n, d->fp);
        /* The size is in the first bytes: an image over the pixel limit is refused before
         * the rest of a large file is read. */
        WebPBitstreamFeatures f;
        if (n == 0 && got == cap && WebPGetFeatures(b, got, &f) == VP8_STATUS_OK &&
            tsr__dec_check_limit(d, (uint64_t)f.width, (uint64_t)f.height, "WebP")) {
            free(b);
            return d->rc;
        }
        n += got;
        if (got == 0) {
            if (ferror(d->fp)) {
                free(b);
                return tsr__dec_fail(d, TSR_ERR_IO, "read error: %s", strerror(errno));
            }
            break;
        }
    }
    *buf = b;
    *len = n;
    return TSR_OK;
}

/* "truncated WebP file ..." or "invalid WebP file: ..." for a libwebp status. */
static tsr_status webp_dec_status(tsr__dec *d, VP8StatusCode st, size_t len, const char *stage)
{
    switch (st) {
    case VP8_STATUS_NOT_ENOUGH_DATA:
    case VP8_STATUS_SUSPENDED:
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "truncated WebP file (%zu bytes, expected more data in %s)", len,
                             stage);
    case VP8_STATUS_OUT_OF_MEMORY:
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory while decoding WebP");
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED,
                             "unsupported WebP feature in %s (expected a VP8 or VP8L still image)",
                             stage);
    case VP8_STATUS_USER_ABORT:
        /* No hook of ours can abort: the incremental decoder answers this when a row fails
         * (damaged alpha data, for one). */
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid WebP file: rows could not be decoded in %s (damaged alpha "
                             "or image data)",
                             stage);
    default:
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "invalid WebP file: bad bitstream in %s (status %d)", stage, (int)st);
    }
}

/* ICCP and EXIF chunks into d->meta. The demuxer takes partial data too (a probe of a cut file
 * still gets the chunks before the cut); a file it can not parse has no metadata to give, and
 * its damage is the decoder's to report. */
static tsr_status webp_read_meta(tsr__dec *d, const unsigned char *buf, size_t len)
{
    WebPData data = {buf, len};
    WebPDemuxState state;
    WebPDemuxer *dmx = WebPDemuxPartial(&data, &state);
    if (!dmx)
        return TSR_OK;
    tsr_status rc = TSR_OK;
    /* The chunks are looked for whatever the VP8X flags say (a writer may forget a flag). */
    WebPChunkIterator it;
    if (WebPDemuxGetChunk(dmx, "ICCP", 1, &it)) {
        if (it.chunk.size &&
            tsr__meta_set(&d->meta.icc, &d->meta.icc_len, it.chunk.bytes, it.chunk.size))
            rc = tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for the ICC profile");
        WebPDemuxReleaseChunkIterator(&it);
    }
    if (!rc && WebPDemuxGetChunk(dmx, "EXIF", 1, &it)) {
        const unsigned char *p = it.chunk.bytes;
        size_t n = it.chunk.size;
        if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) {
            p += 6;
            n -= 6;
        }
        if (n && tsr__meta_set(&d->meta.exif, &d->meta.exif_len, p, n))
            rc = tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for the EXIF block");
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(dmx);
    return rc;
}

/* Rows [from, to) of the decoded 8-bit interleaved buffer into d->img, one meter step each. */
static int webp_rows_to_float(tsr__dec *d, const unsigned char *rgb, int stride, int from, int to)
{
    tsr_image *img = d->img;
    size_t w = (size_t)img->width, ch = (size_t)img->channels;
    size_t plane = w * (size_t)img->height;
    for (int y = from; y < to; y++) {
        if (tsr__meter_row(&d->meter))
            return 1;
        const unsigned char *s = rgb + (size_t)y * (size_t)stride;
        float *out = img->data + (size_t)y * w;
        for (size_t x = 0; x < w; x++)
            for (size_t c = 0; c < ch; c++)
                out[c * plane + x] = (float)s[x * ch + c] / 255.0f;
    }
    return 0;
}

/* *out is the decoder's output buffer, owned by the caller: WebPIDelete the decoder first,
 * then WebPFreeDecBuffer it (libwebp allocates its pixels there). */
static tsr_status webp_run(tsr__dec *d, const unsigned char *buf, size_t len, WebPDecBuffer *out,
                           WebPIDecoder **idec)
{
    /* The RIFF size says where the file ends: a file cut anywhere short of it is refused, even
     * after its image chunk (as a PNG cut before IEND is), since the decoder alone would let a
     * file that lost its trailing EXIF chunk through. Bytes after it are ignored (libwebp). */
    if (len < 12)
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "truncated WebP file (%zu bytes, too short for its header)", len);
    uint64_t riff = 8 + ((uint64_t)buf[4] | (uint64_t)buf[5] << 8 | (uint64_t)buf[6] << 16 |
                         (uint64_t)buf[7] << 24);
    /* fail_on none: what the bytes hold is decoded, the rows past the cut left black. */
    int lenient = d->lo.fail_on == TSR_FAIL_ON_NONE;
    if (riff > len && !lenient)
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "truncated WebP file (%zu bytes, expected %llu from its RIFF header)",
                             len, (unsigned long long)riff);
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(buf, len, &f);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA)
        return tsr__dec_fail(d, TSR_ERR_DECODE,
                             "truncated WebP file (%zu bytes, expected more data in its header)",
                             len);
    if (st != VP8_STATUS_OK)
        return tsr__dec_fail(d, st == VP8_STATUS_OUT_OF_MEMORY ? TSR_ERR_NOMEM : TSR_ERR_DECODE,
                             "invalid WebP file: bad header (expected a RIFF WEBP file with a "
                             "VP8, VP8L or VP8X chunk)");
    if (tsr__dec_check_limit(d, (uint64_t)f.width, (uint64_t)f.height, "WebP"))
        return d->rc;
    if (f.has_animation)
        return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED,
                             "animated WebP is not supported (expected a still image)");
    d->info.width = f.width;
    d->info.height = f.height;
    d->info.channels = f.has_alpha ? 4 : 3;
    d->info.bit_depth = 8;
    if (webp_read_meta(d, buf, len) || d->header_only)
        return d->rc;

    if (tsr__io_cancelled(d->ctl))
        return tsr__dec_cancel(d);
    tsr_status rc = tsr_image_new(f.width, f.height, d->info.channels, &d->img);
    if (rc)
        return tsr__dec_fail(d, rc, "cannot allocate a %dx%d image", f.width, f.height);
    d->img->bit_depth = 8;
    size_t rowbytes = (size_t)f.width * (size_t)d->info.channels;
    out->colorspace = f.has_alpha ? MODE_RGBA : MODE_RGB; /* straight alpha, as stored */
    /* libwebp allocates the 8-bit output in *out as the header is parsed. */
    if (!(*idec = WebPINewDecoder(out)))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory creating the WebP decoder");

    tsr__meter_init(&d->meter, d->ctl, f.height, rowbytes, 1);
    /* Steps of bytes sized to give about one band of rows each, from the bytes per row seen so
     * far; a step that gave no row (headers, a partition or a lossless row group not yet
     * complete) doubles the next one. */
    size_t fed = 0, step = WEBP_MIN_STEP;
    int done = 0;
    for (;;) {
        size_t n = len - fed < step ? len - fed : step;
        fed += n;
        st = WebPIUpdate(*idec, buf, fed);
        int last_y = 0, ow = 0, oh = 0, stride = 0;
        const unsigned char *rgb = WebPIDecGetRGB(*idec, &last_y, &ow, &oh, &stride);
        if (rgb && (ow != f.width || oh != f.height))
            return tsr__dec_fail(d, TSR_ERR_INTERNAL, "WebP output is %dx%d, its header %dx%d", ow,
                                 oh, f.width, f.height);
        if (rgb && last_y > done) {
            if (webp_rows_to_float(d, rgb, stride, done, last_y))
                return tsr__dec_cancel(d);
            size_t per_row = n / (size_t)(last_y - done) + 1;
            step = per_row * (size_t)d->meter.band;
            step = step < WEBP_MIN_STEP ? WEBP_MIN_STEP : step;
            done = last_y;
        } else if (step < len) {
            step *= 2;
        }
        if (st == VP8_STATUS_OK)
            break;
        if (st != VP8_STATUS_SUSPENDED)
            return webp_dec_status(d, st, len, "the image data");
        if (fed == len && lenient) {
            size_t w = (size_t)f.width, plane = w * (size_t)f.height;
            for (int c = 0; c < d->info.channels; c++)
                memset(d->img->data + (size_t)c * plane + (size_t)done * w, 0,
                       (size_t)(f.height - done) * w * sizeof(float));
            snprintf(d->recovered, sizeof d->recovered,
                     "recovered from: truncated WebP file (%zu bytes, expected %llu; %d of %d "
                     "rows decoded, the rest left black)",
                     len, (unsigned long long)riff, done, f.height);
            done = f.height;
            break;
        }
        if (fed == len)
            return webp_dec_status(d, VP8_STATUS_NOT_ENOUGH_DATA, len, "the image data");
        if (tsr__io_cancelled(d->ctl))
            return tsr__dec_cancel(d);
    }
    if (done != f.height)
        return tsr__dec_fail(d, TSR_ERR_INTERNAL, "WebP decoder gave %d rows of %d", done,
                             f.height);
    if (riff > len && !d->recovered[0]) /* cut after the image data: every row is there */
        snprintf(d->recovered, sizeof d->recovered,
                 "recovered from: truncated WebP file (%zu bytes, expected %llu; every row "
                 "decoded)",
                 len, (unsigned long long)riff);
    tsr__meter_end(&d->meter);
    return TSR_OK;
}

static tsr_status webp_decode(tsr__dec *d)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (webp_read_all(d, &buf, &len))
        return d->rc;
    WebPIDecoder *idec = NULL;
    WebPDecBuffer out;
    tsr_status rc;
    if (!WebPInitDecBuffer(&out))
        rc = tsr__dec_fail(d, TSR_ERR_INTERNAL, "libwebp version mismatch (WebPInitDecBuffer)");
    else
        rc = webp_run(d, buf, len, &out, &idec);
    if (idec)
        WebPIDelete(idec);
    WebPFreeDecBuffer(&out);
    free(buf);
    return rc;
}

/* Encoding ----------------------------------------------------------------------------------- */

typedef struct webpe {
    tsr__enc *e;
    int64_t reported; /* progress last reported */
    int cancelled;
} webpe;

/* Encoding runs after quantization: its percent maps to rows h..2h of the meter's 2h. */
static int webp_on_progress(int percent, const WebPPicture *pic)
{
    webpe *p = pic->user_data;
    tsr__enc *e = p->e;
    if (tsr__io_cancelled(e->ctl)) {
        p->cancelled = 1;
        return 0;
    }
    int64_t h = e->img->height;
    int64_t done = h + h * (percent < 0 ? 0 : percent > 100 ? 100 : percent) / 100;
    if (done > p->reported && e->ctl && e->ctl->progress) {
        p->reported = done;
        e->ctl->progress(e->ctl->user, done, 2 * h);
    }
    return 1;
}

static tsr_status webp_enc_status(tsr__enc *e, const WebPPicture *pic)
{
    switch (pic->error_code) {
    case VP8_ENC_ERROR_OUT_OF_MEMORY:
    case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY:
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory while encoding WebP");
    case VP8_ENC_ERROR_BAD_DIMENSION:
        return tsr__enc_fail(e, TSR_ERR_LIMIT,
                             "a %dx%d image is larger than WebP allows (%d pixels a side)",
                             pic->width, pic->height, WEBP_MAX_SIDE);
    case VP8_ENC_ERROR_USER_ABORT: return tsr__enc_cancel(e);
    default:
        return tsr__enc_fail(e, TSR_ERR_INTERNAL, "WebP encoder error %d", (int)pic->error_code);
    }
}

/* The encoded bitstream, wrapped with the ICCP and EXIF chunks when there are any, out
 * through tsr__enc_write. */
static tsr_status webp_write(tsr__enc *e, const WebPMemoryWriter *w)
{
    if (!e->meta.icc_len && !e->meta.exif_len)
        return tsr__enc_write(e, w->mem, w->size) ? e->rc : TSR_OK;
    WebPMux *mux = WebPMuxNew();
    if (!mux)
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory creating the WebP muxer");
    WebPData image = {w->mem, w->size}, out = {NULL, 0};
    WebPMuxError me = WebPMuxSetImage(mux, &image, 0);
    if (me == WEBP_MUX_OK && e->meta.icc_len) {
        WebPData icc = {e->meta.icc, e->meta.icc_len};
        me = WebPMuxSetChunk(mux, "ICCP", &icc, 0);
    }
    if (me == WEBP_MUX_OK && e->meta.exif_len) {
        WebPData exif = {e->meta.exif, e->meta.exif_len};
        me = WebPMuxSetChunk(mux, "EXIF", &exif, 0);
    }
    if (me == WEBP_MUX_OK)
        me = WebPMuxAssemble(mux, &out);
    tsr_status rc = TSR_OK;
    if (me == WEBP_MUX_MEMORY_ERROR)
        rc = tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory adding metadata to the WebP file");
    else if (me != WEBP_MUX_OK)
        rc = tsr__enc_fail(e, TSR_ERR_INTERNAL, "WebP muxer error %d adding metadata", (int)me);
    else if (tsr__enc_write(e, out.bytes, out.size))
        rc = e->rc;
    WebPDataClear(&out);
    WebPMuxDelete(mux);
    return rc;
}

/* e->img as 8-bit interleaved RGB or RGBA (gray expanded) into rgb, metered; 1: cancelled. */
static int webp_pack(tsr__enc *e, unsigned char *rgb, int out_ch)
{
    const tsr_image *img = e->img;
    size_t w = (size_t)img->width, ch = (size_t)img->channels;
    size_t plane = w * (size_t)img->height;
    int gray = ch <= 2, alpha = ch == 2 || ch == 4;
    for (size_t y = 0; y < (size_t)img->height; y++) {
        if (tsr__meter_row(&e->meter))
            return 1;
        const float *in = img->data + y * w;
        unsigned char *o = rgb + y * w * (size_t)out_ch;
        for (size_t x = 0; x < w; x++, o += out_ch) {
            for (int c = 0; c < 3; c++)
                o[c] = (unsigned char)tsr__quantize(in[(gray ? 0 : (size_t)c) * plane + x], 255);
            if (alpha)
                o[3] = (unsigned char)tsr__quantize(in[(ch - 1) * plane + x], 255);
        }
    }
    return 0;
}

static tsr_status webp_encode_run(tsr__enc *e, WebPPicture *pic, WebPMemoryWriter *w,
                                  unsigned char **rgb)
{
    const tsr_image *img = e->img;
    if (img->width > WEBP_MAX_SIDE || img->height > WEBP_MAX_SIDE)
        return tsr__enc_fail(e, TSR_ERR_LIMIT,
                             "a %dx%d image is larger than WebP allows (%d pixels a side)",
                             img->width, img->height, WEBP_MAX_SIDE);
    WebPConfig config;
    if (!WebPConfigPreset(&config, WEBP_PRESET_DEFAULT, (float)e->o.quality))
        return tsr__enc_fail(e, TSR_ERR_INTERNAL, "libwebp version mismatch (WebPConfigInit)");
    config.method = 4;
    if (e->o.lossless) {
        config.lossless = 1;
        config.quality = 75; /* effort, as cwebp -lossless */
        config.exact = 1;    /* colours under alpha 0 are pixels too */
    }
    if (!WebPValidateConfig(&config))
        return tsr__enc_fail(e, TSR_ERR_INTERNAL, "invalid WebP encoder configuration");

    int alpha = img->channels == 2 || img->channels == 4, out_ch = alpha ? 4 : 3;
    size_t rowbytes = (size_t)img->width * (size_t)out_ch, total;
    if (!tsr__mul_size(rowbytes, (size_t)img->height, &total) || !(*rgb = malloc(total)))
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory for %dx%d 8-bit pixels", img->width,
                             img->height);
    /* Quantizing is rows 0..h of the meter, encoding (the progress hook) rows h..2h. */
    tsr__meter_init(&e->meter, e->ctl, 2 * (int64_t)img->height, rowbytes, 1);
    if (webp_pack(e, *rgb, out_ch))
        return tsr__enc_cancel(e);

    pic->width = img->width;
    pic->height = img->height;
    pic->use_argb = config.lossless; /* lossy imports straight to YUV */
    int ok = alpha ? WebPPictureImportRGBA(pic, *rgb, (int)rowbytes)
                   : WebPPictureImportRGB(pic, *rgb, (int)rowbytes);
    free(*rgb);
    *rgb = NULL;
    if (!ok)
        return webp_enc_status(e, pic);
    webpe p = {e, img->height, 0};
    pic->writer = WebPMemoryWrite;
    pic->custom_ptr = w;
    pic->progress_hook = webp_on_progress;
    pic->user_data = &p;
    if (!WebPEncode(&config, pic))
        return p.cancelled ? tsr__enc_cancel(e) : webp_enc_status(e, pic);
    if (tsr__io_cancelled(e->ctl))
        return tsr__enc_cancel(e);
    if (webp_write(e, w))
        return e->rc;
    tsr__meter_end(&e->meter);
    return TSR_OK;
}

static tsr_status webp_encode(tsr__enc *e)
{
    WebPPicture pic;
    WebPMemoryWriter w;
    if (!WebPPictureInit(&pic))
        return tsr__enc_fail(e, TSR_ERR_INTERNAL, "libwebp version mismatch (WebPPictureInit)");
    WebPMemoryWriterInit(&w);
    unsigned char *rgb = NULL;
    tsr_status rc = webp_encode_run(e, &pic, &w, &rgb);
    free(rgb);
    WebPPictureFree(&pic);
    WebPMemoryWriterClear(&w);
    return rc;
}

static int webp_sniff(const unsigned char *sig, size_t n)
{
    /* "RIFF", the little-endian size, "WEBP". */
    if (n >= 4 && memcmp(sig, "RIFF", 4))
        return 0;
    if (n < 4)
        return memcmp(sig, "RIFF", n) ? 0 : -1;
    if (n >= 12)
        return memcmp(sig + 8, "WEBP", 4) ? 0 : 1;
    return n <= 8 || !memcmp(sig + 8, "WEBP", n - 8) ? -1 : 0;
}

const tsr__codec tsr__codec_webp = {
    .format = TSR_FORMAT_WEBP,
    .name = "WebP",
    .exts = "webp",
    .sniff = webp_sniff,
    .decode = webp_decode,
    .encode = webp_encode,
    .max_side = WEBP_MAX_SIDE,
    .depths = 1u << 8,
    .alpha = 1,
};
