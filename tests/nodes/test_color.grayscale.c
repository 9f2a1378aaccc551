/* color.grayscale: CL vs reference on awkward sizes and every channel count, the reference vs
 * OpenCV cvtColor (rec601) and numpy (rec709, average), keep_channels, tiled vs whole, params. */
#include "filters_golden.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 17}};
static const char *methods[] = {"rec601", "rec709", "average"};
/* The weights as documented, in float, applied in the documented order. */
static const float weights[3][3] = {
    {0.299f, 0.587f, 0.114f}, {0.2126f, 0.7152f, 0.0722f}, {1 / 3.0f, 1 / 3.0f, 1 / 3.0f}};

static tsr_node *gray_node(const char *method, int keep)
{
    char km[64], kk[64];
    snprintf(km, sizeof km, "method=%s", method);
    snprintf(kk, sizeof kk, "keep_channels=%s", keep ? "true" : "false");
    const char *kv[] = {km, kk};
    return tu_node("color.grayscale", kv, 2);
}

/* The kernel disables contraction and repeats the reference's three products and two sums, so
 * PoCL matches bit for bit; a device that fuses them anyway differs by at most one rounding of
 * each partial sum: 4 * FLT_EPSILON * max|v| (the weights sum to 1). */
#define CL_TOL(max_abs) (4.0 * FLT_EPSILON * ((max_abs) > 1 ? (max_abs) : 1))

static void cl_matches_ref(void **state)
{
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ch = 1; ch <= 4; ch++)
            for (int m = 0; m < 3; m++)
                for (int keep = 0; keep <= 1; keep++) {
                    tsr_node *n = gray_node(methods[m], keep);
                    tsr_image *in = tu_random_image(sizes[s][0], sizes[s][1], ch,
                                                    9 + (uint32_t)(s * 64 + ch * 8 + m * 2 + keep));
                    tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
                    tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
                    char what[96];
                    snprintf(what, sizeof what, "%dx%dx%d method=%s keep=%d", sizes[s][0],
                             sizes[s][1], ch, methods[m], keep);
                    int want_ch = ch < 3 || keep ? ch : ch - 2;
                    assert_int_equal(ref->channels, want_ch);
                    fg_check(cl, ref, CL_TOL(1.0), 0, what);
                    /* The definition: grey planes hold the weighted sum, alpha is copied, and
                     * grey input passes through; all exact in float. */
                    size_t plane = (size_t)in->width * in->height;
                    const float *w = weights[m];
                    for (size_t i = 0; i < plane; i++) {
                        const float *p = in->data + i;
                        if (ch < 3) {
                            for (int c = 0; c < ch; c++)
                                assert_true(ref->data[c * plane + i] == p[c * plane]);
                            continue;
                        }
                        float g = w[0] * p[0] + w[1] * p[plane] + w[2] * p[2 * plane];
                        int grey = keep ? 3 : 1;
                        for (int c = 0; c < grey; c++)
                            assert_true(ref->data[c * plane + i] == g);
                        if (ch == 4)
                            assert_true(ref->data[grey * plane + i] == p[3 * plane]);
                    }
                    tsr_image_free(in);
                    tsr_image_free(ref);
                    tsr_image_free(cl);
                    tsr__node_free(n);
                }
}

/* OpenCV's float RGB2GRAY uses the same float weights but its own order and vector code;
 * numpy evaluates rec709/average in float64 with exact 1/3. Either way a few roundings of a
 * sum bounded by max|v|: 4 * FLT_EPSILON * max(1, max|v|). */
static void ref_matches_opencv_numpy(void **state)
{
    fg_case cases[16];
    int n_cases = fg_cases("color.grayscale", cases, 16);
    assert_true(n_cases >= 4);
    for (int i = 0; i < n_cases; i++) {
        tsr_node *n = tu_node("color.grayscale", cases[i].kv, cases[i].n_kv);
        tsr_image *in = fg_read(cases[i].input), *want = fg_read(cases[i].output);
        tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
        tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
        char what[160];
        snprintf(what, sizeof what, "ref vs %s", cases[i].output);
        fg_check(ref, want, CL_TOL(fg_max_abs(in)), 0, what);
        snprintf(what, sizeof what, "cl vs %s", cases[i].output);
        fg_check(cl, want, CL_TOL(fg_max_abs(in)), 0, what);
        tsr_image_free(in);
        tsr_image_free(want);
        tsr_image_free(ref);
        tsr_image_free(cl);
        tsr__node_free(n);
    }
}

static void tiled_equals_whole(void **state)
{
    for (int keep = 0; keep <= 1; keep++) {
        tsr_node *n = gray_node("rec709", keep);
        tsr_image *in = tu_random_image(127, 129, 4, 99);
        tsr_image *whole = tu_run(tu_engine_ref(), n, in, 0, 0);
        tsr_image *whole_cl = tu_run(tu_engine_cl(), n, in, 0, 0);
        tsr_image *tiled = tu_run(tu_engine_ref(), n, in, 37, 19);
        tsr_image *tiled_cl = tu_run(tu_engine_cl(), n, in, 7, 5);
        fg_check(tiled, whole, 0, 0, "ref tiles 37x19");
        fg_check(tiled_cl, whole_cl, 0, 0, "cl tiles 7x5");
        tsr_image_free(in);
        tsr_image_free(whole);
        tsr_image_free(whole_cl);
        tsr_image_free(tiled);
        tsr_image_free(tiled_cl);
        tsr__node_free(n);
    }
}

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"method=bt2020", "method=", "method=REC601", "keep_channels=maybe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsr__err err;
        tsr__err_clear(&err);
        tsr_node *n = NULL;
        if (tsr__node_make("color.grayscale", &bad[i], 1, &n, &err) == TSR_OK)
            fail_msg("color.grayscale accepted %s", bad[i]);
        assert_null(n);
        assert_true(err.msg[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),
        cmocka_unit_test(ref_matches_opencv_numpy),
        cmocka_unit_test(tiled_equals_whole),
        cmocka_unit_test(bad_params_rejected),
    };
    return cmocka_run_group_tests_name("color.grayscale", tests, NULL, NULL);
}
