/* JPEG load option fail_on (error, warning, none, as vips's) and the cap on libjpeg's working
 * memory: a file cut mid-scan fails under error and loads grey-filled under none with a warning
 * saying what was recovered from; junk between markers (a benign warning) loads under error and
 * fails under warning; a progressive file whose coefficients need far more memory than its
 * pixels is refused with TSR_ERR_LIMIT. The files are made here with libjpeg. PNG follows the
 * same option: a bad IDAT CRC, a bad ancillary chunk CRC. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* A w x h JPEG of one flat colour (v in every component), baseline unless `scans` is given. */
static unsigned char *make_jpeg(int w, int h, int comps, int samp, unsigned char v,
                                const jpeg_scan_info *scans, int nscans, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    *len = 0;
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    for (int i = 0; i < comps; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = samp;
    if (scans) {
        c.scan_info = scans;
        c.num_scans = nscans;
    }
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * (size_t)comps);
    memset(row, v, (size_t)w * (size_t)comps);
    while (c.next_scanline < c.image_height) {
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

typedef struct warns {
    int n;
    char last[512];
} warns;

static void on_warn(void *user, const char *msg)
{
    warns *w = user;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

static tsr_status decode(const unsigned char *buf, size_t len, int fail_on, warns *w,
                         tsr_image **img, tsr__err *err)
{
    tsr__load_opts lo = {0};
    lo.fail_on = fail_on;
    tsr__io_ctl ctl = {0};
    ctl.warn = on_warn;
    ctl.user = w;
    tsr__err_clear(err);
    *img = NULL;
    return tsr__image_decode(buf, len, "x.jpg", 0, &lo, &ctl, img, err);
}

/* Cut mid-scan: error and warning refuse it; none loads it, the missing rows grey, and says so
 * once through the warn callback. */
static void truncated_mid_scan(void **state)
{
    unsigned long len;
    unsigned char *buf = make_jpeg(64, 64, 3, 1, 20, NULL, 0, &len);
    unsigned char *sos = memmem(buf, len, "\xff\xda", 2);
    assert_non_null(sos);
    size_t cut = (size_t)(sos - buf) + (len - (size_t)(sos - buf)) / 2; /* mid-scan */
    warns w = {0};
    tsr_image *img;
    tsr__err err;
    assert_int_equal(decode(buf, len, TSR_FAIL_ON_WARNING, &w, &img, &err), TSR_OK);
    tsr_image_free(img);
    assert_int_equal(w.n, 0);

    assert_int_equal(decode(buf, cut, TSR_FAIL_ON_ERROR, &w, &img, &err), TSR_ERR_DECODE);
    assert_null(img);
    assert_non_null(strstr(err.msg, "truncated JPEG file"));
    assert_int_equal(decode(buf, cut, TSR_FAIL_ON_WARNING, &w, &img, &err), TSR_ERR_DECODE);
    assert_non_null(strstr(err.msg, "Premature end of JPEG file"));
    assert_int_equal(w.n, 0);

    tsr_status rc = decode(buf, cut, TSR_FAIL_ON_NONE, &w, &img, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_non_null(img);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "recovered from: Premature end of JPEG file"));
    print_message("%s\n", w.last);
    /* The top row is the file's (20/255), the bottom one libjpeg's grey (128/255). */
    size_t plane = 64 * 64;
    assert_true(img->data[0] < 0.15f);
    assert_true(img->data[plane - 1] > 0.45f && img->data[plane - 1] < 0.55f);
    tsr_image_free(img);
    free(buf);
}

/* Junk bytes before a marker: libjpeg warns (JWRN_EXTRANEOUS_DATA), the pixels are whole. */
static void junk_between_markers(void **state)
{
    unsigned long len;
    unsigned char *buf = make_jpeg(32, 32, 3, 1, 200, NULL, 0, &len);
    /* The DQT marker after APP0: 4 junk bytes go before it. */
    unsigned char *dqt = memmem(buf, len, "\xff\xdb", 2);
    assert_non_null(dqt);
    size_t at = (size_t)(dqt - buf), n = len + 4;
    unsigned char *junk = malloc(n);
    memcpy(junk, buf, at);
    memcpy(junk + at, "\x12\x34\x56\x78", 4);
    memcpy(junk + at + 4, buf + at, len - at);
    warns w = {0};
    tsr_image *img;
    tsr__err err;
    assert_int_equal(decode(junk, n, TSR_FAIL_ON_ERROR, &w, &img, &err), TSR_OK);
    assert_int_equal(w.n, 0); /* silently, as before fail_on existed */
    tsr_image_free(img);
    assert_int_equal(decode(junk, n, TSR_FAIL_ON_WARNING, &w, &img, &err), TSR_ERR_DECODE);
    assert_null(img);
    assert_non_null(strstr(err.msg, "extraneous bytes before marker"));
    assert_non_null(strstr(err.msg, "fail_on warning"));
    assert_int_equal(decode(junk, n, TSR_FAIL_ON_NONE, &w, &img, &err), TSR_OK);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "extraneous bytes"));
    tsr_image_free(img);
    free(junk);
    free(buf);
}

/* A progressive 3-component file 1 pixel wide and 65500 tall with 4x4 sampling factors: each
 * component's coefficients are padded to 4 blocks a row, 12 MiB in all for 65500 pixels
 * (0.75 MiB as floats). Refused with TSR_ERR_LIMIT naming the cap; the same size sampled 1x1
 * (0.5 MiB of coefficients) loads. */
static void memory_cap(void **state)
{
    jpeg_scan_info scans[6] = {{0}};
    for (int i = 0; i < 6; i++) {
        scans[i].comps_in_scan = 1; /* one component a scan: 4x4 sampling fits an MCU */
        scans[i].component_index[0] = i / 2;
        scans[i].Ss = i % 2 ? 1 : 0;
        scans[i].Se = i % 2 ? 63 : 0;
    }
    unsigned long len;
    unsigned char *ok = make_jpeg(1, 65500, 3, 1, 90, scans, 6, &len);
    warns w = {0};
    tsr_image *img;
    tsr__err err;
    assert_int_equal(decode(ok, len, TSR_FAIL_ON_ERROR, &w, &img, &err), TSR_OK);
    tsr_image_free(img);
    free(ok);
    unsigned char *bomb = make_jpeg(1, 65500, 3, 4, 90, scans, 6, &len);
    assert_true(len < 100000);
    assert_int_equal(decode(bomb, len, TSR_FAIL_ON_ERROR, &w, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    assert_non_null(strstr(err.msg, "working memory than its cap of"));
    print_message("%s\n", err.msg);
    assert_int_equal(decode(bomb, len, TSR_FAIL_ON_NONE, &w, &img, &err), TSR_ERR_LIMIT);
    free(bomb);
}

static unsigned char *slurp_png(size_t *len, size_t *idat_end)
{
    unsigned char *buf = tu_slurp("tests/golden/io/cmp_a.png", len);
    unsigned char *iend = memmem(buf, *len, "IEND", 4);
    assert_non_null(iend);
    *idat_end = (size_t)(iend - buf) - 4; /* the last chunk before IEND is the IDAT */
    assert_memory_equal(memmem(buf, *len, "IDAT", 4), "IDAT", 4);
    return buf;
}

/* A wrong IDAT CRC: error and warning refuse it, none loads it and says so. */
static void png_idat_crc(void **state)
{
    size_t len, end;
    unsigned char *buf = slurp_png(&len, &end);
    buf[end - 1] ^= 0x55;
    warns w = {0};
    tsr_image *img;
    tsr__err err;
    assert_int_equal(decode(buf, len, TSR_FAIL_ON_ERROR, &w, &img, &err), TSR_ERR_DECODE);
    assert_non_null(strstr(err.msg, "CRC error"));
    assert_int_equal(decode(buf, len, TSR_FAIL_ON_WARNING, &w, &img, &err), TSR_ERR_DECODE);
    assert_int_equal(decode(buf, len, TSR_FAIL_ON_NONE, &w, &img, &err), TSR_OK);
    assert_non_null(img);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "recovered from: IDAT: CRC error"));
    tsr_image_free(img);
    free(buf);
}

/* A tEXt chunk with a wrong CRC: libpng warns and drops it, the pixels are whole. */
static void png_ancillary_crc(void **state)
{
    size_t len, end;
    unsigned char *buf = slurp_png(&len, &end);
    static const unsigned char text[] = {0, 0, 0, 3, 't', 'E', 'X', 't', 'a', 0, 'b', 1, 2, 3, 4};
    size_t at = 8 + 25; /* after the signature and IHDR */
    unsigned char *ins = malloc(len + sizeof text);
    memcpy(ins, buf, at);
    memcpy(ins + at, text, sizeof text);
    memcpy(ins + at + sizeof text, buf + at, len - at);
    warns w = {0};
    tsr_image *img;
    tsr__err err;
    assert_int_equal(decode(ins, len + sizeof text, TSR_FAIL_ON_ERROR, &w, &img, &err), TSR_OK);
    assert_int_equal(w.n, 0);
    tsr_image_free(img);
    assert_int_equal(decode(ins, len + sizeof text, TSR_FAIL_ON_WARNING, &w, &img, &err),
                     TSR_ERR_DECODE);
    assert_non_null(strstr(err.msg, "CRC error"));
    assert_non_null(strstr(err.msg, "fail_on warning"));
    free(ins);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(truncated_mid_scan), cmocka_unit_test(junk_between_markers),
        cmocka_unit_test(memory_cap),         cmocka_unit_test(png_idat_crc),
        cmocka_unit_test(png_ancillary_crc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
