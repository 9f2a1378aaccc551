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

/* Param set p: method p / 2, keep_channels p % 2. */
static tsr_node *sweep_node(size_t p)
{
    return gray_node(methods[p / 2], (int)(p % 2));
}

static void sweep_describe(size_t p, char *buf, size_t len)
{
    snprintf(buf, len, "method=%s keep=%d", methods[p / 2], (int)(p % 2));
}

static tsr_image *sweep_input(const nc_point *pt)
{
    return tu_random_image(pt->w, pt->h, pt->ch, 9 + (uint32_t)(pt->s * 64 + pt->ch * 8 + pt->p));
}

/* The definition: grey planes hold the weighted sum, alpha is copied, and grey input passes
 * through; all exact in float. */
static void sweep_check(const nc_point *pt, const tsr_image *in, const tsr_image *ref,
                        const char *what)
{
    int ch = pt->ch, keep = (int)(pt->p % 2);
    int want_ch = ch < 3 || keep ? ch : ch - 2;
    assert_int_equal(ref->channels, want_ch);
    size_t plane = (size_t)in->width * in->height;
    const float *w = weights[pt->p / 2];
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
}

static void cl_matches_ref(void **state)
{
    static const nc_sweep sw = {
        .sizes = sizes,
        .n_sizes = sizeof sizes / sizeof sizes[0],
        .n_params = 2 * sizeof methods / sizeof methods[0],
        .make = sweep_node,
        .describe = sweep_describe,
        .input = sweep_input,
        .tol = {CL_TOL(1.0), 0},
        .check = sweep_check,
    };
    nc_sweep_run(&sw);
}

/* OpenCV's float RGB2GRAY uses the same float weights but its own order and vector code;
 * numpy evaluates rec709/average in float64 with exact 1/3. Either way a few roundings of a
 * sum bounded by max|v|: 4 * FLT_EPSILON * max(1, max|v|). */
static nc_tol golden_tol(const fg_case *c, const tsr_image *in)
{
    return (nc_tol){CL_TOL(fg_max_abs(in)), 0};
}

static void ref_matches_opencv_numpy(void **state)
{
    static const fg_golden g = {.node = "color.grayscale", .min_cases = 4, .tol = golden_tol};
    fg_golden_run(&g);
}

static void tiled_equals_whole(void **state)
{
    for (int keep = 0; keep <= 1; keep++) {
        tsr_node *n = gray_node("rec709", keep);
        tsr_image *in = tu_random_image(127, 129, 4, 99);
        nc_tiled_equals_whole(n, in, (const int[2]){37, 19}, (const int[2]){7, 5}, NULL);
        tsr_image_free(in);
        tsr__node_free(n);
    }
}

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"method=bt2020", "method=", "method=REC601", "keep_channels=maybe"};
    nc_params_checked("color.grayscale", bad, sizeof bad / sizeof bad[0], NULL, 0);
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
