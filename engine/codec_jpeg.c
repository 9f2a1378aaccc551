/* JPEG through libjpeg-turbo: 8-bit baseline, progressive and arithmetic-coded files.
 *
 * Gray stays gray, YCbCr/RGB give RGB, CMYK/YCCK give RGB through r = (1 - c)(1 - k), reading
 * Adobe-marked files as inverted (Photoshop's convention). APP1 "Exif" and APP2 "ICC_PROFILE"
 * segments are handed to the caller (tsr__meta) and written back from e->meta on save.
 *
 * libjpeg reports errors through error_exit, which longjmps back to the one setjmp in
 * jpeg_run / jpeg_encode_run; their locals are set before it and never changed. A multi-scan
 * (progressive) file is decoded whole inside jpeg_start_decompress: its progress monitor counts
 * scans (a cap against decoding bombs) and checks for a cancel, leaving through the same longjmp.
 *
 * Warnings follow the load option fail_on (as vips's): ERROR fails on those that mean damaged
 * pixels, WARNING on every one, NONE on none (libjpeg fills what is missing with grey; what it
 * recovered from goes to d->recovered). libjpeg's working memory is capped (jpeg_mem_cap).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "codec.h"

#define JPEG_OUT_BYTES 65536

typedef struct jpegd jpegd;
typedef struct jpegd_err {
    struct jpeg_error_mgr pub;
    jpegd *p;
} jpegd_err;

/* Distinct warnings seen under fail_on none: the first text of each code, and how many. */
#define JPEG_MAX_WARN_KINDS 6
typedef struct jpeg_warn_kind {
    int code;
    unsigned count;
    char text[JMSG_LENGTH_MAX];
} jpeg_warn_kind;

struct jpegd {
    tsr__dec *d;
    struct jpeg_decompress_struct jd;
    jpegd_err jerr;
    struct jpeg_progress_mgr jprog;
    unsigned char *rows;
    const char *stage; /* what the decoder was reading, for messages */
    int jinput;        /* inside jpeg_start_decompress: the monitor checks for a cancel */
    int64_t jrows;     /* rows of scans decoded there since the last check */
    size_t mem_cap;    /* libjpeg's max_memory_to_use, 0 before the header is read */
    jpeg_warn_kind warns[JPEG_MAX_WARN_KINDS];
    int nwarns;
    unsigned other_warns; /* past JPEG_MAX_WARN_KINDS kinds */
    jmp_buf jb;
};

typedef struct jpege jpege;
typedef struct jpege_err {
    struct jpeg_error_mgr pub;
    jpege *p;
} jpege_err;

struct jpege {
    tsr__enc *e;
    struct jpeg_compress_struct jc;
    jpege_err jerr;
    struct jpeg_destination_mgr jdest;
    unsigned char *row;
    jmp_buf jb;
    unsigned char jbuf[JPEG_OUT_BYTES]; /* the destination's buffer */
};

/* Decoding ----------------------------------------------------------------------------------- */

/* libjpeg's working memory is capped at the decoded image's own size (float samples, which the
 * pixel limit already bounds) plus a margin for tables and row buffers (256 rows of each
 * component). A multi-scan (progressive) file keeps every DCT coefficient in memory, 2 bytes a
 * sample, padded to whole MCUs: less than the float image for any file an encoder writes, but
 * a crafted header (a thin image with 4x4 sampling factors) can ask for 16 times more. */
#define JPEG_MEM_MARGIN ((size_t)4 << 20)
#define JPEG_MEM_MARGIN_ROWS 256

static void jpeg_fail_from_lib(j_common_ptr cinfo, tsr_status rc)
{
    jpegd *p = ((jpegd_err *)cinfo->err)->p;
    tsr__dec *d = p->d;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    if (rc == TSR_ERR_IO)
        tsr__dec_fail(d, rc, "read error: %s", strerror(errno));
    else if (rc == TSR_ERR_LIMIT && !p->mem_cap) /* the JPEGMEM environment variable's cap */
        tsr__dec_fail(d, rc, "JPEG needs more decoder working memory than $JPEGMEM allows: %s",
                      text);
    else if (rc == TSR_ERR_LIMIT)
        tsr__dec_fail(d, rc,
                      "JPEG needs more decoder working memory than its cap of %zu KiB (the "
                      "decoded image's size plus a margin; a multi-scan file keeps every "
                      "coefficient in memory)",
                      p->mem_cap >> 10);
    else if (rc == TSR_ERR_NOMEM)
        tsr__dec_fail(d, rc, "out of memory while decoding JPEG: %s", text);
    else if (rc == TSR_ERR_UNSUPPORTED)
        tsr__dec_fail(d, rc,
                      "unsupported JPEG (expected 8-bit baseline, progressive or arithmetic "
                      "coding): %s",
                      text);
    else
        tsr__dec_fail(d, rc, "invalid JPEG file: %s (while reading %s)", text, p->stage);
    longjmp(p->jb, 1);
}

static void jpeg_on_error(j_common_ptr cinfo)
{
    tsr_status rc = TSR_ERR_DECODE;
    switch (cinfo->err->msg_code) {
    case JERR_BAD_PRECISION:
    case JERR_ARITH_NOTIMPL: rc = TSR_ERR_UNSUPPORTED; break;
    /* Past max_memory_to_use, libjpeg-turbo (no backing store) asks for one and fails with
     * JERR_NO_BACKING_STORE; a malloc that fails gives JERR_OUT_OF_MEMORY. */
    case JERR_NO_BACKING_STORE: rc = TSR_ERR_LIMIT; break;
    case JERR_OUT_OF_MEMORY: rc = TSR_ERR_NOMEM; break;
    case JERR_FILE_READ: rc = TSR_ERR_IO; break;
    default: break;
    }
    jpeg_fail_from_lib(cinfo, rc);
}

/* Under fail_on none, remember a warning for d->recovered: the first text of each kind, counted. */
static void jpeg_note_warning(jpegd *p, j_common_ptr cinfo)
{
    int code = cinfo->err->msg_code;
    for (int i = 0; i < p->nwarns; i++)
        if (p->warns[i].code == code) {
            p->warns[i].count++;
            return;
        }
    if (p->nwarns == JPEG_MAX_WARN_KINDS) {
        p->other_warns++;
        return;
    }
    jpeg_warn_kind *k = &p->warns[p->nwarns++];
    k->code = code;
    k->count = 1;
    (*cinfo->err->format_message)(cinfo, k->text);
}

/* "recovered from: Premature end of JPEG file; Corrupt JPEG data: bad Huffman code (3 times)" */
static void jpeg_write_recovered(jpegd *p)
{
    tsr__dec *d = p->d;
    if (!p->nwarns)
        return;
    size_t cap = sizeof d->recovered, n = 0;
    int w = snprintf(d->recovered, cap, "recovered from:");
    n = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < p->nwarns && n < cap; i++) {
        const jpeg_warn_kind *k = &p->warns[i];
        w = k->count > 1 ? snprintf(d->recovered + n, cap - n, "%s %s (%u times)", i ? ";" : "",
                                    k->text, k->count)
                         : snprintf(d->recovered + n, cap - n, "%s %s", i ? ";" : "", k->text);
        n += w > 0 ? (size_t)w : 0;
    }
    if (p->other_warns && n < cap)
        snprintf(d->recovered + n, cap - n, "; %u other warnings", p->other_warns);
}

/* libjpeg reports a truncated file or damaged entropy-coded data as a warning and goes on with
 * grey or garbage blocks; under fail_on error those pixels are not the file's, so they fail the
 * decode. A file missing only its EOI marker (every row decoded) and other warnings (junk
 * between markers, odd JFIF versions) leave the pixels intact and are let through. fail_on
 * warning fails on every warning; fail_on none on none, noting it for d->recovered. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level != -1)
        return;
    jpegd *p = ((jpegd_err *)cinfo->err)->p;
    tsr__dec *d = p->d;
    if (d->lo.fail_on == TSR_FAIL_ON_NONE) {
        jpeg_note_warning(p, cinfo);
        return;
    }
    if (d->lo.fail_on == TSR_FAIL_ON_WARNING) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, text);
        tsr__dec_fail(d, TSR_ERR_DECODE, "JPEG warning (fail_on warning): %s (while reading %s)",
                      text, p->stage);
        longjmp(p->jb, 1);
    }
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF: {
        /* Every row is out and only the EOI marker is missing: the pixels are all the file's
         * (vips and browsers load such files too). */
        j_decompress_ptr dc = (j_decompress_ptr)cinfo;
        if (dc->output_height > 0 && dc->output_scanline >= dc->output_height)
            return;
        /* With one scan, data that ends where the EOI should be is the whole image; with
         * several (progressive), it may as well be the first of the scans: refused. */
        d->eof_only =
            dc->global_state >= 202 /* DSTATE_START: header read */ && !jpeg_has_multiple_scans(dc);
        tsr__dec_fail(d, TSR_ERR_DECODE, "truncated JPEG file (expected more data before EOI)");
        longjmp(p->jb, 1);
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
    jpegd *p = ((jpegd_err *)cinfo->err)->p;
    tsr__dec *d = p->d;
    if (p->jd.input_scan_number > JPEG_MAX_SCANS) {
        tsr__dec_fail(d, TSR_ERR_DECODE,
                      "JPEG with more than %d scans (refused as a decoding bomb)", JPEG_MAX_SCANS);
        longjmp(p->jb, 1);
    }
    if (!p->jinput)
        return;
    p->jrows += (int64_t)p->jd.max_v_samp_factor * DCTSIZE;
    if (p->jrows < d->meter.band)
        return;
    p->jrows = 0;
    if (tsr__io_cancelled(d->ctl)) {
        tsr__dec_cancel(d);
        longjmp(p->jb, 1);
    }
}

/* The first APP1 "Exif\0\0" segment, and the ICC profile its APP2 segments hold (libjpeg
 * checks their sequence numbers and count; a broken sequence is no profile); non-zero: no
 * memory. */
static int jpeg_read_meta(jpegd *p)
{
    tsr__meta *m = &p->d->meta;
    for (jpeg_saved_marker_ptr k = p->jd.marker_list; k && !m->exif; k = k->next)
        if (k->marker == JPEG_APP0 + 1 && k->data_length > 6 && !memcmp(k->data, "Exif\0", 6) &&
            tsr__meta_set(&m->exif, &m->exif_len, k->data + 6, k->data_length - 6))
            return -1;
    JOCTET *icc = NULL;
    unsigned icc_len = 0;
    if (jpeg_read_icc_profile(&p->jd, &icc, &icc_len) && icc) {
        free(m->icc);
        m->icc = icc;
        m->icc_len = icc_len;
    }
    return 0;
}

static tsr_status jpeg_run(jpegd *p)
{
    tsr__dec *const d = p->d; /* set before the setjmp, never changed */
    if (setjmp(p->jb))
        return d->rc ? d->rc : tsr__dec_fail(d, TSR_ERR_DECODE, "invalid JPEG file");
    p->stage = "the header";
    jpeg_create_decompress(&p->jd);
    jpeg_stdio_src(&p->jd, d->fp);
    jpeg_save_markers(&p->jd, JPEG_APP0 + 1, 0xFFFF);
    jpeg_save_markers(&p->jd, JPEG_APP0 + 2, 0xFFFF);
    jpeg_read_header(&p->jd, TRUE);
    if (jpeg_read_meta(p))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for JPEG metadata");
    if (tsr__dec_check_limit(d, p->jd.image_width, p->jd.image_height, "JPEG"))
        return d->rc;
    if (p->jd.data_precision != 8)
        return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED,
                             "%d-bit JPEG is not supported (expected 8-bit)", p->jd.data_precision);
    int ch;
    switch (p->jd.jpeg_color_space) {
    case JCS_GRAYSCALE:
        p->jd.out_color_space = JCS_GRAYSCALE;
        ch = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        p->jd.out_color_space = JCS_RGB;
        ch = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        p->jd.out_color_space = JCS_CMYK;
        ch = 3;
        break;
    default:
        return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED,
                             "JPEG with %d components in an unknown colour space (expected gray, "
                             "YCbCr, RGB, CMYK or YCCK)",
                             p->jd.num_components);
    }
    d->info.width = (int)p->jd.image_width;
    d->info.height = (int)p->jd.image_height;
    d->info.channels = ch;
    d->info.bit_depth = 8;
    if (d->header_only)
        return TSR_OK;

    p->stage = "the image data";
    /* Working memory: the decoded image's own size plus a margin (JPEG_MEM_MARGIN). */
    size_t cap, rows;
    if (!tsr__mul_size((size_t)d->info.width * (size_t)d->info.height, (size_t)ch * sizeof(float),
                       &cap) ||
        !tsr__mul_size((size_t)d->info.width * JPEG_MEM_MARGIN_ROWS, (size_t)p->jd.num_components,
                       &rows) ||
        cap > SIZE_MAX / 4 || rows > SIZE_MAX / 4)
        return tsr__dec_fail(d, TSR_ERR_LIMIT, "JPEG image too large for memory");
    p->mem_cap = cap + rows + JPEG_MEM_MARGIN;
    if (p->mem_cap > (size_t)LONG_MAX)
        p->mem_cap = (size_t)LONG_MAX;
    p->jd.mem->max_memory_to_use = (long)p->mem_cap;
    size_t samples;
    if (!tsr__mul_size(p->jd.image_width, p->jd.out_color_space == JCS_CMYK ? 4 : ch, &samples))
        return tsr__dec_fail(d, TSR_ERR_LIMIT, "JPEG row too long");
    tsr__meter_init(&d->meter, d->ctl, d->info.height, samples, 1);
    p->jprog.progress_monitor = jpeg_on_progress; /* scans are counted, cancels checked */
    p->jd.progress = &p->jprog;
    p->jinput = 1;
    jpeg_start_decompress(&p->jd);
    p->jinput = 0;
    int ncomp = p->jd.output_components;
    if ((int)p->jd.output_width != d->info.width || (int)p->jd.output_height != d->info.height ||
        ncomp != (p->jd.out_color_space == JCS_CMYK ? 4 : ch))
        return tsr__dec_fail(d, TSR_ERR_INTERNAL, "JPEG output layout differs from its header");
    tsr_status rc = tsr_image_new(d->info.width, d->info.height, ch, &d->img);
    if (rc)
        return tsr__dec_fail(d, rc, "cannot allocate a %dx%d image", d->info.width, d->info.height);
    d->img->bit_depth = 8;
    size_t w = (size_t)d->info.width, plane = w * (size_t)d->info.height, rowbytes;
    if (!tsr__mul_size(w, (size_t)ncomp, &rowbytes) || !(p->rows = malloc(rowbytes)))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory for a JPEG row");
    int inverted = p->jd.saw_Adobe_marker;
    while (p->jd.output_scanline < p->jd.output_height) {
        size_t y = p->jd.output_scanline;
        JSAMPROW row = p->rows;
        if (tsr__meter_row(&d->meter))
            return tsr__dec_cancel(d);
        if (jpeg_read_scanlines(&p->jd, &row, 1) != 1)
            return tsr__dec_fail(d, TSR_ERR_DECODE, "JPEG decoder returned no scanline");
        float *out = d->img->data + y * w;
        const unsigned char *s = p->rows;
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
    p->stage = "the end of the file, up to EOI";
    jpeg_finish_decompress(&p->jd);
    jpeg_write_recovered(p);
    tsr__meter_end(&d->meter);
    return TSR_OK;
}

static tsr_status jpeg_decode(tsr__dec *d)
{
    jpegd *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory creating the JPEG decoder");
    p->d = d;
    p->jd.err = jpeg_std_error(&p->jerr.pub);
    p->jerr.pub.error_exit = jpeg_on_error;
    p->jerr.pub.emit_message = jpeg_on_message;
    p->jerr.pub.output_message = jpeg_on_output;
    p->jerr.p = p;
    tsr_status rc = jpeg_run(p);
    jpeg_destroy_decompress(&p->jd);
    free(p->rows);
    free(p);
    return rc;
}

/* Encoding ----------------------------------------------------------------------------------- */

static void jpeg_on_werror(j_common_ptr cinfo)
{
    jpege *p = ((jpege_err *)cinfo->err)->p;
    tsr__enc *e = p->e;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    switch (cinfo->err->msg_code) {
    case JERR_FILE_WRITE: tsr__enc_fail(e, TSR_ERR_IO, "write error: %s", strerror(errno)); break;
    case JERR_OUT_OF_MEMORY:
        tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory encoding JPEG: %s", text);
        break;
    default: tsr__enc_fail(e, TSR_ERR_INTERNAL, "JPEG encoder error: %s", text); break;
    }
    longjmp(p->jb, 1);
}

static void jpeg_on_wmessage(j_common_ptr cinfo, int level) {}

/* The destination: JPEG_OUT_BYTES at a time through enc_write, to a file or to memory, so that
 * both get the same bytes. */
static void jpeg_dest_init(j_compress_ptr cinfo)
{
    jpege *p = ((jpege_err *)cinfo->err)->p;
    p->jdest.next_output_byte = p->jbuf;
    p->jdest.free_in_buffer = sizeof p->jbuf;
}

static boolean jpeg_dest_empty(j_compress_ptr cinfo)
{
    jpege *p = ((jpege_err *)cinfo->err)->p;
    tsr__enc *e = p->e;
    if (tsr__enc_write(e, p->jbuf, sizeof p->jbuf))
        ERREXIT(cinfo, JERR_FILE_WRITE);
    p->jdest.next_output_byte = p->jbuf;
    p->jdest.free_in_buffer = sizeof p->jbuf;
    return TRUE;
}

static void jpeg_dest_term(j_compress_ptr cinfo)
{
    jpege *p = ((jpege_err *)cinfo->err)->p;
    tsr__enc *e = p->e;
    size_t n = sizeof p->jbuf - p->jdest.free_in_buffer;
    if (n && tsr__enc_write(e, p->jbuf, n))
        ERREXIT(cinfo, JERR_FILE_WRITE);
}

static tsr_status jpeg_encode_run(jpege *p)
{
    tsr__enc *const e = p->e; /* set before the setjmp, never changed */
    if (setjmp(p->jb))
        return e->rc ? e->rc : tsr__enc_fail(e, TSR_ERR_INTERNAL, "JPEG encoder failed");
    jpeg_create_compress(&p->jc);
    p->jdest.init_destination = jpeg_dest_init;
    p->jdest.empty_output_buffer = jpeg_dest_empty;
    p->jdest.term_destination = jpeg_dest_term;
    p->jc.dest = &p->jdest;
    const tsr_image *img = e->img;
    /* JPEG has no alpha channel: an image with alpha is flattened onto the background colour
     * (straight alpha: v * a + bg * (1 - a)), never dropped with the colours under it. */
    int ncomp = img->channels <= 2 ? 1 : 3, alpha = img->channels == 2 || img->channels == 4;
    p->jc.image_width = (JDIMENSION)img->width;
    p->jc.image_height = (JDIMENSION)img->height;
    p->jc.input_components = ncomp;
    p->jc.in_color_space = ncomp == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&p->jc);
    jpeg_set_quality(&p->jc, e->o.quality, TRUE);
    if (ncomp == 3) {
        p->jc.comp_info[0].h_samp_factor = e->o.subsampling == 444 ? 1 : 2;
        p->jc.comp_info[0].v_samp_factor = e->o.subsampling == 420 ? 2 : 1;
        for (int c = 1; c < 3; c++)
            p->jc.comp_info[c].h_samp_factor = p->jc.comp_info[c].v_samp_factor = 1;
    }
    size_t w = (size_t)img->width, plane = w * (size_t)img->height, rowbytes;
    if (!tsr__mul_size(w, (size_t)ncomp, &rowbytes) || !(p->row = malloc(rowbytes)))
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory for a JPEG row");
    /* An APP1 segment holds 65533 bytes: "Exif\0\0" and the block. */
    if (e->meta.exif_len > 65533 - 6)
        return tsr__enc_fail(e, TSR_ERR_INVALID,
                             "EXIF block of %zu bytes does not fit in a JPEG APP1 segment (at "
                             "most 65527)",
                             e->meta.exif_len);
    tsr__meter_init(&e->meter, e->ctl, img->height, rowbytes, 1);
    jpeg_start_compress(&p->jc, TRUE);
    if (e->meta.exif) {
        jpeg_write_m_header(&p->jc, JPEG_APP0 + 1, (unsigned)e->meta.exif_len + 6);
        for (size_t i = 0; i < e->meta.exif_len + 6; i++)
            jpeg_write_m_byte(&p->jc, i < 6 ? "Exif\0"[i] : e->meta.exif[i - 6]);
    }
    if (e->meta.icc && e->meta.icc_len <= 0xFFFFFFFFu)
        jpeg_write_icc_profile(&p->jc, e->meta.icc, (unsigned)e->meta.icc_len);
    while (p->jc.next_scanline < p->jc.image_height) {
        if (tsr__meter_row(&e->meter))
            return tsr__enc_cancel(e);
        const float *in = img->data + (size_t)p->jc.next_scanline * w;
        unsigned char *d = p->row;
        for (size_t x = 0; x < w; x++) {
            float a = alpha ? in[(size_t)ncomp * plane + x] : 1.0f;
            a = a < 0 ? 0 : a > 1 ? 1 : a;
            for (int c = 0; c < ncomp; c++) {
                float v = in[(size_t)c * plane + x];
                if (alpha)
                    v = v * a + e->o.background[c] * (1.0f - a);
                *d++ = (unsigned char)tsr__quantize(v, 255);
            }
        }
        JSAMPROW row = p->row;
        jpeg_write_scanlines(&p->jc, &row, 1);
    }
    jpeg_finish_compress(&p->jc);
    tsr__meter_end(&e->meter);
    return TSR_OK;
}

static tsr_status jpeg_encode(tsr__enc *e)
{
    jpege *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__enc_fail(e, TSR_ERR_NOMEM, "out of memory creating the JPEG encoder");
    p->e = e;
    p->jc.err = jpeg_std_error(&p->jerr.pub);
    p->jerr.pub.error_exit = jpeg_on_werror;
    p->jerr.pub.emit_message = jpeg_on_wmessage;
    p->jerr.pub.output_message = jpeg_on_output;
    p->jerr.p = p;
    tsr_status rc = jpeg_encode_run(p);
    jpeg_destroy_compress(&p->jc);
    free(p->row);
    free(p);
    return rc;
}

static int jpeg_sniff(const unsigned char *sig, size_t n)
{
    static const unsigned char soi[3] = {0xFF, 0xD8, 0xFF};
    if (n >= sizeof soi)
        return memcmp(sig, soi, sizeof soi) ? 0 : 1;
    return memcmp(sig, soi, n) ? 0 : -1;
}

const tsr__codec tsr__codec_jpeg = {
    .format = TSR_FORMAT_JPEG,
    .name = "JPEG",
    .exts = "jpg|jpeg",
    .sniff = jpeg_sniff,
    .decode = jpeg_decode,
    .encode = jpeg_encode,
    .max_side = 65500,
    .depths = 1u << 8,
    .alpha = 0,
};
