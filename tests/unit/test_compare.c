/* Image comparison: figures against numpy/scikit-image goldens (tools/gen-compare-golden.py),
 * SSIM against a direct (non-separable) plain-C evaluation, closed forms, shapes and edge cases. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN "tests/golden/io/"
#define CMP_GOLDEN "tests/golden/compare/compare.tsv"

static void close_rel(const char *what, double got, double want, double rel)
{
    if (isinf(want) && got == want)
        return;
    double tol = rel * fmax(fabs(want), 1e-300);
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.17g, expected %.17g (relative tolerance %g)", what, got, want, rel);
}

static tsr_compare_result compare_ok(const tsr_image *a, const tsr_image *b)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_compare_result r;
    if (tsr__image_compare(a, b, &r, &err))
        fail_msg("compare: %s", err.msg);
    return r;
}

/* Differences in levels are whole numbers and their mean one correctly rounded division, in
 * numpy as here: max and mean must be bit-identical. PSNR: the same formula, log10 of a different
 * but equal quotient, 1e-12 relative. SSIM: scikit-image filters the whole padded integer image
 * with scipy and crops, Tessera filters the valid region of the same levels scaled to 0..1; both
 * in double, the same window, so they differ by rounding (measured under 1e-15); 1e-9 absolute.
 * The 5x7 and 9x9 rows check the whole-image window against numpy's global SSIM, itself checked
 * against scikit-image's uniform 9x9 window by the generator. */
static void matches_skimage(void **state)
{
    FILE *f = fopen(CMP_GOLDEN, "r");
    assert_non_null(f);
    char line[1024];
    int rows = 0, small = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char pa[256], pb[256], psnr_s[64];
        int levels;
        double max_abs, mean_abs, ssim;
        assert_int_equal(sscanf(line, "%255s %255s %d %lf %lf %63s %lf", pa, pb, &levels, &max_abs,
                                &mean_abs, psnr_s, &ssim),
                         7);
        double psnr = strcmp(psnr_s, "inf") ? strtod(psnr_s, NULL) : INFINITY;
        tsr_image *a = tu_load(pa), *b = tu_load(pb);
        tsr_compare_result r = compare_ok(a, b);
        print_message("%s vs %s: levels %d max %.6f mean %.6f psnr %.6f ssim %.12f (off by "
                      "%.2g)\n",
                      pa, pb, r.levels, r.max_abs, r.mean_abs, r.psnr, r.ssim, r.ssim - ssim);
        assert_int_equal(r.levels, levels);
        if (r.max_abs != max_abs || r.mean_abs != mean_abs)
            fail_msg("%s vs %s: max %.17g mean %.17g, expected exactly %.17g and %.17g", pa, pb,
                     r.max_abs, r.mean_abs, max_abs, mean_abs);
        close_rel("psnr", r.psnr, psnr, 1e-12);
        if (!(fabs(r.ssim - ssim) <= 1e-9))
            fail_msg("%s vs %s: ssim %.17g, expected %.17g", pa, pb, r.ssim, ssim);
        small += a->width < 11 || a->height < 11;
        tsr_image_free(a);
        tsr_image_free(b);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 13);
    assert_int_equal(small, 3);
}

/* The unit of the differences and what a threshold of one level means: a one-level difference
 * is exactly 1 (not 1.000008), two levels exactly 2, at 8 and 16 bits; float images keep 1/255
 * units, unrounded. */
static void exact_levels(void **state)
{
    static const struct {
        const char *a, *b;
        int levels;
        double max;
    } cases[] = {
        {"tests/golden/compare/l8_a.png", "tests/golden/compare/l8_b1.png", 255, 1},
        {"tests/golden/compare/l8_a.png", "tests/golden/compare/l8_b2.png", 255, 2},
        {"tests/golden/compare/l16_a.png", "tests/golden/compare/l16_b1.png", 65535, 1},
        {"tests/golden/compare/l16_a.png", "tests/golden/compare/l16_b2.png", 65535, 2},
        {"tests/golden/compare/l16_b2.png", "tests/golden/compare/l8_b1.png", 255, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_image *a = tu_load(cases[i].a), *b = tu_load(cases[i].b);
        tsr_compare_result r = compare_ok(a, b);
        assert_int_equal(r.levels, cases[i].levels);
        assert_true(r.max_abs == cases[i].max);
        r = compare_ok(b, a); /* symmetric, the mixed pair included */
        assert_int_equal(r.levels, cases[i].levels);
        assert_true(r.max_abs == cases[i].max);
        tsr_image_free(a);
        tsr_image_free(b);
    }
    /* 0 vs 1/255 in float (bit depth 0): one 1/255 unit, from float32 1/255, so not exactly 1. */
    tsr_image *x, *y;
    assert_int_equal(tsr_image_new(3, 2, 1, &x), TSR_OK);
    assert_int_equal(tsr_image_new(3, 2, 1, &y), TSR_OK);
    for (int i = 0; i < 6; i++) {
        x->data[i] = 0;
        y->data[i] = i == 4 ? 1.0f / 255.0f : 0;
    }
    tsr_compare_result r = compare_ok(x, y);
    assert_int_equal(r.levels, 0);
    close_rel("float max_abs", r.max_abs, (double)(1.0f / 255.0f) * 255.0, 1e-15);
    /* The same pixels marked as decoded from 8-bit files: exactly one level. */
    x->bit_depth = y->bit_depth = 8;
    r = compare_ok(x, y);
    assert_int_equal(r.levels, 255);
    assert_true(r.max_abs == 1.0);
    /* One 8-bit image against a float one: 1/255 units, nothing rounded. */
    y->bit_depth = 0;
    y->data[4] = 0.5f / 255.0f;
    r = compare_ok(x, y);
    assert_int_equal(r.levels, 0);
    close_rel("mixed max_abs", r.max_abs, (double)(0.5f / 255.0f) * 255.0, 1e-15);
    tsr_image_free(x);
    tsr_image_free(y);
}

/* SSIM straight from its definition: for each valid pixel, the 11x11 Gaussian-weighted moments
 * summed directly (no separable passes, no ring buffer). */
static double ssim_direct(const tsr_image *a, const tsr_image *b)
{
    double g[11], sum = 0;
    for (int i = 0; i < 11; i++) {
        g[i] = exp(-0.5 * (i - 5) * (i - 5) / 2.25);
        sum += g[i];
    }
    int w = a->width, h = a->height;
    size_t plane = (size_t)w * h;
    double total = 0;
    for (int c = 0; c < a->channels; c++) {
        const float *x = a->data + c * plane, *y = b->data + c * plane;
        double s = 0;
        for (int py = 5; py < h - 5; py++)
            for (int px = 5; px < w - 5; px++) {
                double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
                for (int j = -5; j <= 5; j++)
                    for (int i = -5; i <= 5; i++) {
                        double wt = g[j + 5] * g[i + 5] / (sum * sum);
                        double u = x[(size_t)(py + j) * w + px + i];
                        double v = y[(size_t)(py + j) * w + px + i];
                        mx += wt * u;
                        my += wt * v;
                        mxx += wt * u * u;
                        myy += wt * v * v;
                        mxy += wt * u * v;
                    }
                double c1 = 1e-4, c2 = 9e-4;
                s += (2 * mx * my + c1) * (2 * (mxy - mx * my) + c2) /
                     ((mx * mx + my * my + c1) * (mxx - mx * mx + myy - my * my + c2));
            }
        total += s / ((double)(w - 10) * (h - 10));
    }
    return total / a->channels;
}

static void ssim_matches_direct(void **state)
{
    static const int shapes[][3] = {{11, 11, 1}, {23, 19, 3}, {40, 12, 4}, {17, 31, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        tsr_image *a = tu_random_image(shapes[s][0], shapes[s][1], shapes[s][2], 11);
        tsr_image *b = tu_random_image(shapes[s][0], shapes[s][1], shapes[s][2], 12);
        /* Mix, so the pair is correlated and SSIM is far from 0. */
        size_t n = (size_t)shapes[s][0] * shapes[s][1] * shapes[s][2];
        for (size_t i = 0; i < n; i++)
            b->data[i] = 0.8f * a->data[i] + 0.2f * b->data[i];
        tsr_compare_result r = compare_ok(a, b);
        double want = ssim_direct(a, b);
        print_message("%dx%dx%d: ssim %.12f, direct %.12f\n", shapes[s][0], shapes[s][1],
                      shapes[s][2], r.ssim, want);
        /* Same double arithmetic, different summation order. */
        assert_true(fabs(r.ssim - want) <= 1e-12);
        assert_true(r.ssim > 0.5 && r.ssim < 1.0);
        tsr_image_free(a);
        tsr_image_free(b);
    }
}

static tsr_image *constant(int w, int h, int ch, float v)
{
    tsr_image *img;
    assert_int_equal(tsr_image_new(w, h, ch, &img), TSR_OK);
    for (size_t i = 0; i < (size_t)w * h * ch; i++)
        img->data[i] = v;
    return img;
}

/* Two flat images 0.25 and 0.75: |d| = 0.5 everywhere, MSE 0.25, PSNR 10 log10(4); the SSIM
 * windows have no variance, so SSIM = (2 * 0.25 * 0.75 + C1) / (0.25^2 + 0.75^2 + C1). */
static void closed_forms(void **state)
{
    tsr_image *a = constant(16, 13, 3, 0.25f), *b = constant(16, 13, 3, 0.75f);
    tsr_compare_result r = compare_ok(a, b);
    close_rel("max_abs", r.max_abs, 127.5, 1e-12);
    close_rel("mean_abs", r.mean_abs, 127.5, 1e-12);
    close_rel("psnr", r.psnr, 10 * log10(4.0), 1e-12);
    close_rel("ssim", r.ssim, (0.375 + 1e-4) / (0.625 + 1e-4), 1e-12);
    assert_int_equal(r.levels, 0);
    tsr_image_free(a);
    tsr_image_free(b);
}

static void identical(void **state)
{
    tsr_image *a = tu_load(GOLDEN "cmp_a.png");
    tsr_compare_result r = compare_ok(a, a);
    assert_true(r.max_abs == 0.0 && r.mean_abs == 0.0);
    assert_true(isinf(r.psnr) && r.psnr > 0);
    assert_true(r.ssim == 1.0);
    tsr_image_free(a);
    /* Narrower than 11 (but 30 high): the whole image is the one window, uniform weights. */
    tsr_image *s = tu_random_image(10, 30, 2, 3), *t = tu_random_image(10, 30, 2, 4);
    for (size_t i = 0; i < 600; i++)
        t->data[i] = 0.6f * s->data[i] + 0.4f * t->data[i];
    r = compare_ok(s, s);
    assert_true(r.ssim == 1.0);
    r = compare_ok(s, t);
    double want = 0;
    for (int c = 0; c < 2; c++) {
        double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
        for (int i = 0; i < 300; i++) {
            double u = s->data[c * 300 + i], v = t->data[c * 300 + i];
            mx += u / 300;
            my += v / 300;
            mxx += u * u / 300;
            myy += v * v / 300;
            mxy += u * v / 300;
        }
        want += (2 * mx * my + 1e-4) * (2 * (mxy - mx * my) + 9e-4) /
                ((mx * mx + my * my + 1e-4) * (mxx - mx * mx + myy - my * my + 9e-4)) / 2;
    }
    print_message("10x30x2: global ssim %.15f, direct %.15f\n", r.ssim, want);
    assert_true(fabs(r.ssim - want) <= 1e-12);
    assert_true(r.ssim > 0.5 && r.ssim < 1.0);
    assert_true(isfinite(r.psnr) && r.max_abs > 0);
    tsr_image_free(s);
    tsr_image_free(t);
}

static void nan_counts_as_infinite(void **state)
{
    tsr_image *a = constant(12, 12, 1, 0.5f), *b = constant(12, 12, 1, 0.5f);
    b->data[7] = NAN;
    tsr_compare_result r = compare_ok(a, b);
    assert_true(isinf(r.max_abs) && isinf(r.mean_abs));
    assert_true(r.psnr < 0 && isinf(r.psnr));
    assert_true(isnan(r.ssim));
    tsr_image_free(a);
    tsr_image_free(b);
}

static void shape_mismatch(void **state)
{
    static const int shapes[][3] = {{8, 8, 4}, {9, 8, 3}, {8, 9, 3}, {8, 8, 1}};
    tsr_image *a = constant(8, 8, 3, 0.5f);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        tsr_image *b = constant(shapes[s][0], shapes[s][1], shapes[s][2], 0.5f);
        tsr__err err;
        tsr__err_clear(&err);
        tsr_compare_result r;
        assert_int_equal(tsr__image_compare(a, b, &r, &err), TSR_ERR_INVALID);
        assert_non_null(strstr(err.msg, "8x8 with 3 channels"));
        tsr_image_free(b);
    }
    tsr__err err;
    tsr__err_clear(&err);
    tsr_compare_result r;
    assert_int_equal(tsr__image_compare(a, NULL, &r, &err), TSR_ERR_INVALID);
    tsr_image_free(a);
}

static void public_wrapper(void **state)
{
    tsr_engine *e = tu_engine_ref();
    tsr_image *a = tu_load(GOLDEN "cmp_a.png"), *b = tu_load(GOLDEN "cmp_b.png");
    tsr_image *g = constant(48, 40, 1, 0.5f);
    tsr_compare_result r;
    assert_int_equal(tsr_image_compare(e, a, g, &r), TSR_ERR_INVALID);
    assert_non_null(strstr(tsr_errmsg(e), "differ in shape"));
    assert_int_equal(tsr_image_compare(e, a, b, &r), TSR_OK);
    assert_string_equal(tsr_errmsg(e), "");
    assert_true(r.psnr > 40 && r.psnr < 45);
    tsr_image_free(a);
    tsr_image_free(b);
    tsr_image_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_skimage),     cmocka_unit_test(exact_levels),
        cmocka_unit_test(ssim_matches_direct), cmocka_unit_test(closed_forms),
        cmocka_unit_test(identical),           cmocka_unit_test(nan_counts_as_infinite),
        cmocka_unit_test(shape_mismatch),      cmocka_unit_test(public_wrapper),
    };
    return cmocka_run_group_tests_name("compare", tests, NULL, NULL);
}
