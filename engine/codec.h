/* Image codecs: one file per format (engine/codec_*.c) behind one table (tsr__codecs).
 *
 * engine/image_io.c owns everything around a codec: opening files and standard input, sniffing
 * the format from the first bytes, the load options applied after decoding (EXIF orientation,
 * ICC to sRGB), temporary files and the atomic rename, encoding to memory. A codec only turns
 * bytes into a float32 planar tsr_image and back:
 *
 *  - decode(d) reads d->fp from its start. It fills d->info from the header and checks the
 *    size with tsr__dec_check_limit before allocating anything; with d->header_only it stops
 *    there. Otherwise it allocates d->img (tsr_image_new), fills it row band by row band
 *    (tsr__meter_row before each row: non-zero means cancelled, return tsr__dec_cancel(d)),
 *    and calls tsr__meter_end once. It stores samples as v / (2^depth - 1) (float: as is),
 *    sets d->img->bit_depth (8, 16, or 32 for float), and hands any ICC profile and EXIF block
 *    it finds to d->meta (malloc'd; the caller frees them), in header_only mode too (the
 *    orientation decides the size a probe reports). Errors go through tsr__dec_fail
 *    (the first one wins); a codec frees its own library state before returning, whatever
 *    happened, and leaves d->img to the caller.
 *  - encode(e) writes e->img with the resolved options e->o through tsr__enc_write (a file or
 *    memory), checking tsr__meter_row per row, and embeds e->meta's ICC profile and EXIF block
 *    where the format can hold them.
 */
#ifndef TSR_CODEC_H
#define TSR_CODEC_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "internal.h"

/* Rows per band: at most 64, and about IO_BAND_BYTES of samples (less where a byte costs more:
 * deflate at high levels), so that a band of wide 16-bit RGBA rows stays well under 50 ms. A
 * row is never split: the libraries take whole rows. */
#define TSR_IO_BAND_ROWS 64
#define TSR_IO_BAND_BYTES ((size_t)256 << 10)

/* Rows done of rows in all passes, in bands: before the first row of each band it reports the
 * rows done so far (from the second band on) and asks whether to stop. */
typedef struct tsr__meter {
    const tsr__io_ctl *ctl;
    int64_t done, total;
    int64_t next; /* done at the start of the next band */
    int band;     /* rows per band */
} tsr__meter;

/* `cost`: how many times slower than decoding a byte of the row is (1 for decoders). */
void tsr__meter_init(tsr__meter *m, const tsr__io_ctl *ctl, int64_t total, size_t rowbytes,
                     unsigned cost);
/* Call before each row; non-zero: cancelled, stop. */
int tsr__meter_row(tsr__meter *m);
/* Once, when the whole image went through. */
void tsr__meter_end(const tsr__meter *m);
int tsr__io_cancelled(const tsr__io_ctl *ctl);

/* Metadata carried beside the pixels: malloc'd blocks, NULL when absent. `exif` is the TIFF
 * structure that follows "Exif\0\0" in a JPEG APP1 segment (starting at "II*\0" or "MM\0*"). */
typedef struct tsr__meta {
    unsigned char *icc;
    size_t icc_len;
    unsigned char *exif;
    size_t exif_len;
    /* 1..8 when the format states the orientation outside an EXIF block (TIFF's own
     * Orientation tag); 0: take it from `exif`, if any. */
    int orientation;
} tsr__meta;

void tsr__meta_free(tsr__meta *m);
/* Copy len bytes into a fresh block at *dst (freeing what was there); non-zero: no memory. */
int tsr__meta_set(unsigned char **dst, size_t *dst_len, const void *src, size_t len);

typedef struct tsr__dec {
    FILE *fp;
    const char *name; /* for messages */
    uint64_t max_pixels;
    int header_only;
    tsr__load_opts lo;
    const tsr__io_ctl *ctl;
    tsr__meter meter;
    tsr__err *err;
    tsr_status rc; /* non-zero once the message is set: the first error found wins */
    tsr_port_info info;
    tsr_image *img;
    tsr__meta meta;
    int eof_only; /* JPEG: the data ended where one more EOI marker would complete a scan */
    /* What the decoder recovered from (fail_on none or warning let it through), for the
     * warning the caller reports; empty when nothing. */
    char recovered[256];
} tsr__dec;

typedef struct tsr__enc {
    FILE *fp;           /* the temporary file; NULL: encoding to memory (mem) */
    unsigned char *mem; /* malloc'd, mem_len of mem_cap bytes used */
    size_t mem_len, mem_cap;
    const char *path; /* for messages: the destination, or "memory" */
    tsr__err *err;
    tsr_status rc;
    const tsr__io_ctl *ctl;
    tsr__meter meter;
    const tsr_image *img;
    tsr_save_options o; /* resolved: no field left at its "default" value */
    tsr__meta meta;     /* to embed */
} tsr__enc;

typedef struct tsr__codec {
    tsr_format format;
    const char *name; /* "PNG" */
    const char *exts; /* "png", "jpg|jpeg": file extensions, lower case, '|'-separated */
    /* 1: these first bytes (n of them, n <= 16) start a file of this format; -1: they could be
     * the start of one cut short; 0: not this format. */
    int (*sniff)(const unsigned char *sig, size_t n);
    tsr_status (*decode)(tsr__dec *d);
    tsr_status (*encode)(tsr__enc *e);
    uint32_t max_side; /* pixels a side the format can hold */
    uint64_t depths;   /* bit depths it writes: bit 8, 16, 32 set ((uint64_t)1 << 32 ...) */
    int alpha;         /* it stores alpha */
} tsr__codec;

extern const tsr__codec tsr__codec_png, tsr__codec_jpeg, tsr__codec_webp, tsr__codec_tiff;

__attribute__((format(printf, 3, 4))) tsr_status tsr__dec_fail(tsr__dec *d, tsr_status rc,
                                                               const char *fmt, ...);
tsr_status tsr__dec_vfail(tsr__dec *d, tsr_status rc, const char *fmt, va_list ap);
tsr_status tsr__dec_cancel(tsr__dec *d);
/* The header's size against the format's own sanity and the pixel limit; `what`: "PNG". */
tsr_status tsr__dec_check_limit(tsr__dec *d, uint64_t w, uint64_t h, const char *what);

__attribute__((format(printf, 3, 4))) tsr_status tsr__enc_fail(tsr__enc *e, tsr_status rc,
                                                               const char *fmt, ...);
tsr_status tsr__enc_cancel(tsr__enc *e);
/* Encoded bytes out, to the file or the memory buffer; non-zero (message set) on failure. */
int tsr__enc_write(tsr__enc *e, const void *buf, size_t len);

/* round(clamp(v, 0, 1) * maxval); NaN and negatives give 0. Double, so that k / maxval read
 * back from a 16-bit file maps to k again. */
static inline unsigned tsr__quantize(float v, unsigned maxval)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 1.0f)
        return maxval;
    return (unsigned)((double)v * maxval + 0.5);
}

#endif
