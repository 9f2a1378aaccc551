/* PNG saving, the bytes themselves: every sample quantized exactly (read back with libpng, not
 * with our decoder), with the rows packed inline (images of one band of rows) and by the packing
 * thread (taller ones), and a write failure in the middle of an image, while that thread runs. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera-png-save-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* round(clamp(v, 0, 1) * maxval), halves up, NaN -> 0, in long double: v * maxval + 0.5 is
 * exact there (24 + 16 significant bits), so the floor is the exactly rounded level. */
static unsigned expected_level(float v, unsigned maxval)
{
    if (isnan(v) || v <= 0.0f)
        return 0;
    if (v >= 1.0f)
        return maxval;
    return (unsigned)floorl((long double)v * maxval + 0.5L);
}

/* Sample i of a test image: the special values, then values one float step either side of the
 * rounding boundaries (k + 0.5) / maxval, then plain levels; the pattern repeats. */
static float sample_value(size_t i, unsigned maxval)
{
    static const float specials[] = {NAN,    -NAN, INFINITY, -INFINITY, 0.0f,        -0.0f,
                                     -0.25f, 1.0f, 1.5f,     1e-40f,    0.99999994f, 5e-8f};
    size_t n = sizeof specials / sizeof specials[0];
    size_t j = i % 997;
    if (j < n)
        return specials[j];
    unsigned k = (unsigned)((j * 7919u) % maxval);
    float edge = (float)((k + 0.5) / maxval);
    switch (j % 3) {
    case 0: return nextafterf(edge, 0.0f);
    case 1: return nextafterf(edge, 2.0f);
    default: return (float)k / (float)maxval;
    }
}

/* Decode path with libpng into interleaved 8/16-bit samples (16-bit as big-endian pairs). */
static unsigned char *read_png_raw(const char *path, int *w, int *h, int *ch, int *depth)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng cannot read %s", path);
    png_init_io(png, f);
    png_read_info(png, info);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    *ch = png_get_channels(png, info);
    *depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    unsigned char *buf = malloc(rowbytes * (size_t)*h);
    assert_non_null(buf);
    for (int y = 0; y < *h; y++)
        png_read_row(png, buf + rowbytes * (size_t)y, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return buf;
}

static void bytes_are_exact_levels(void **state)
{
    /* 16 rows are one band (packed inline); 83 rows are five bands and a partial one. */
    static const int heights[] = {16, 83};
    for (int hi = 0; hi < 2; hi++)
        for (int depth = 8; depth <= 16; depth += 8)
            for (int ch = 1; ch <= 4; ch++) {
                int w = 37, h = heights[hi];
                unsigned maxval = depth == 16 ? 65535 : 255;
                tsr_image *img = NULL;
                assert_int_equal(tsr_image_new(w, h, ch, &img), TSR_OK);
                size_t n = (size_t)w * h * ch;
                for (size_t i = 0; i < n; i++)
                    img->data[i] = sample_value(i, maxval);
                char path[128];
                snprintf(path, sizeof path, "%s/q-%d-%d-%d.png", tmpdir, h, depth, ch);
                tsr_save_options so;
                tsr_save_options_init(&so);
                so.bit_depth = depth;
                so.compression = (ch + depth) % 10; /* filtered and unfiltered levels */
                tsr_engine *e = tu_engine_ref();
                if (tsr_image_write(e, img, path, &so) != TSR_OK)
                    fail_msg("%s: %s", path, tsr_errmsg(e));
                int rw, rh, rch, rdepth;
                unsigned char *raw = read_png_raw(path, &rw, &rh, &rch, &rdepth);
                assert_int_equal(rw, w);
                assert_int_equal(rh, h);
                assert_int_equal(rch, ch);
                assert_int_equal(rdepth, depth);
                size_t plane = (size_t)w * h;
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int c = 0; c < ch; c++) {
                            size_t s = ((size_t)y * w + x) * ch + c;
                            unsigned got =
                                depth == 16 ? (unsigned)raw[2 * s] << 8 | raw[2 * s + 1] : raw[s];
                            float v = img->data[c * plane + (size_t)y * w + x];
                            unsigned want = expected_level(v, maxval);
                            if (got != want)
                                fail_msg("%s (%d,%d) channel %d: %.9g saved as %u, expected %u",
                                         path, x, y, c, (double)v, got, want);
                        }
                free(raw);
                tsr_image_free(img);
            }
}

/* A file size limit makes a write fail partway through a tall image, with the packing thread
 * busy or waiting: the save reports it, leaves no file, and (under the sanitizers) leaks
 * nothing and joins the thread. */
static void write_error_mid_image(void **state)
{
    int w = 512, h = 512;
    tsr_image *img = tu_random_image(w, h, 3, 77); /* noise: deflate cannot shrink it much */
    char path[128];
    snprintf(path, sizeof path, "%s/cut.png", tmpdir);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tsr_save_options so;
    tsr_save_options_init(&so);
    so.compression = 0;
    tsr_engine *e = tu_engine_ref();
    tsr_status rc = tsr_image_write(e, img, path, &so);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, TSR_ERR_IO);
    assert_non_null(strstr(tsr_errmsg(e), "write error"));
    assert_int_equal(access(path, F_OK), -1);
    /* The same image saves once the limit is gone. */
    assert_int_equal(tsr_image_write(e, img, path, &so), TSR_OK);
    assert_int_equal(access(path, F_OK), 0);
    tsr_image_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_are_exact_levels),
        cmocka_unit_test(write_error_mid_image),
    };
    return cmocka_run_group_tests_name("png_save", tests, setup, teardown);
}
