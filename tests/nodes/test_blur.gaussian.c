/* blur.gaussian: CL vs reference on awkward sizes, reference vs OpenCV goldens, tiled vs whole
 * (bit-identical), plan(), parameter ranges. */
#include "filters_golden.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 23}, {17, 1009}};

typedef struct blur_case {
    const char *sigma, *edge;
} blur_case;

/* Radius 2, 8, 30 and 100: the last two pass the small images' sizes, so mirror folds. */
static const blur_case params[] = {
    {"0.5", "clamp"}, {"2", "mirror"}, {"7.3", "zero"}, {"25", "mirror"}, {"1", "zero"}};

static int radius_of(double sigma)
{
    return (int)ceil(4.0 * sigma);
}

/* Each output is two passes of 2r+1 products summed in float with weights summing to 1; the
 * recursive-summation bound is (2r+1) * 2^-24 * max|v| per pass. The kernels disable
 * contraction and repeat the reference's operations in order, so PoCL matches bit for bit; the
 * bound (twice over, for the weight rounding) is what a device that fuses or flushes
 * subnormals anyway may differ by. A wrong tap, edge or row is off by ~1e-3 or more. */
static double blur_tol(double sigma, double max_abs)
{
    return 2.0 * (2 * radius_of(sigma) + 1) * FLT_EPSILON * (max_abs > 1 ? max_abs : 1);
}

static tsr_node *blur_node(const char *sigma, const char *edge)
{
    char s[64], e[64];
    snprintf(s, sizeof s, "sigma=%s", sigma);
    snprintf(e, sizeof e, "edge=%s", edge);
    const char *kv[] = {s, e};
    return tu_node("blur.gaussian", kv, 2);
}

static tsr_node *sweep_node(size_t p)
{
    return blur_node(params[p].sigma, params[p].edge);
}

static void sweep_describe(size_t p, char *buf, size_t len)
{
    snprintf(buf, len, "sigma=%s edge=%s", params[p].sigma, params[p].edge);
}

static tsr_image *sweep_input(const nc_point *pt)
{
    return tu_random_image(pt->w, pt->h, pt->ch, 11 + (uint32_t)(pt->s * 16 + pt->ch * 4 + pt->p));
}

/* The long thin images with the widest kernel only: the reference is O(r). */
static int sweep_omit(const nc_point *pt)
{
    return pt->w * pt->h > 20000 && pt->p == 3 && pt->ch > 1;
}

static nc_tol sweep_tol(const nc_point *pt, const tsr_image *in)
{
    return (nc_tol){blur_tol(atof(params[pt->p].sigma), 1.0), 0};
}

static void cl_matches_ref(void **state)
{
    static const nc_sweep sw = {
        .sizes = sizes,
        .n_sizes = sizeof sizes / sizeof sizes[0],
        .n_params = sizeof params / sizeof params[0],
        .make = sweep_node,
        .describe = sweep_describe,
        .input = sweep_input,
        .omit = sweep_omit,
        .tol_fn = sweep_tol,
    };
    nc_sweep_run(&sw);
}

/* The reference against OpenCV's GaussianBlur with the matching border (see the generator). */
static nc_tol golden_tol(const fg_case *c, const tsr_image *in)
{
    return (nc_tol){blur_tol(fg_param(c, "sigma"), fg_max_abs(in)), 0};
}

static void ref_matches_opencv(void **state)
{
    static const fg_golden g = {.node = "blur.gaussian", .min_cases = 16, .tol = golden_tol};
    fg_golden_run(&g);
}

/* Tiles read their halo in full-image coordinates and sum in the same order: same bits. The
 * halo is up to 160 pixels, past the tiles and (sigma 40) past the image, so mirror folds. */
static void tiled_equals_whole(void **state)
{
    static const blur_case tp[] = {{"1.3", "clamp"}, {"3", "mirror"},  {"2.2", "zero"},
                                   {"12", "mirror"}, {"40", "mirror"}, {"40", "zero"}};
    static const int tiles[][2] = {{37, 19}, {7, 5}};
    for (size_t p = 0; p < sizeof tp / sizeof tp[0]; p++) {
        int ch = 3 + (int)(p % 2);
        tsr_node *n = blur_node(tp[p].sigma, tp[p].edge);
        tsr_image *in = tu_random_image(127, 129, ch, 99 + (uint32_t)p);
        char label[96];
        snprintf(label, sizeof label, "sigma=%s edge=%s ch=%d", tp[p].sigma, tp[p].edge, ch);
        /* 7x5 tiles with a 321-tap kernel redo 65 times the work: left to the 37x19 run. */
        for (size_t t = 0; t < (atof(tp[p].sigma) > 20 ? 1 : 2); t++)
            nc_tiled_equals_whole(n, in, tiles[t], tiles[t], label);
        tsr_image_free(in);
        tsr__node_free(n);
    }
}

/* Properties that hold exactly: sigma 0.01 has taps {0, 1, 0} (the outer ones underflow), so it
 * is the identity; a constant image stays constant under clamp and mirror up to rounding. */
static void identity_and_constant(void **state)
{
    tsr_node *n = blur_node("0.01", "zero");
    tsr_image *in = tu_random_image(31, 17, 4, 5);
    tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
    tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
    nc_check(ref, in, 0, 0, "sigma 0.01 ref");
    nc_check(cl, in, 0, 0, "sigma 0.01 cl");
    tsr_image_free(ref);
    tsr_image_free(cl);
    tsr__node_free(n);
    for (size_t i = 0; i < (size_t)in->width * in->height * in->channels; i++)
        in->data[i] = 0.625f;
    const char *edges[] = {"clamp", "mirror"};
    for (int e = 0; e < 2; e++) {
        n = blur_node("6", edges[e]);
        ref = tu_run(tu_engine_ref(), n, in, 0, 0);
        nc_check(ref, in, blur_tol(6, 1), 0, edges[e]);
        tsr_image_free(ref);
        tsr__node_free(n);
    }
    /* zero: a constant image darkens towards the border and keeps its value in the middle. */
    n = blur_node("2", "zero");
    ref = tu_run(tu_engine_ref(), n, in, 0, 0);
    assert_true(ref->data[0] < 0.625f * 0.5f); /* corner: about a quarter of the mass inside */
    assert_true(fabsf(ref->data[8 * in->width + 15] - 0.625f) < 1e-6f);
    tsr_image_free(ref);
    tsr__node_free(n);
    tsr_image_free(in);
}

static void plan_grows_by_radius(void **state)
{
    tsr_node *n = blur_node("2.5", "mirror"); /* r = 10 */
    tsr_port_info info = {.width = 100, .height = 50, .channels = 3, .bit_depth = 8};
    tsr_rect out = {20, 0, 30, 16};
    tsr_plan p;
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &info, &out, &p);
    assert_int_equal(p.in[0].x, 10);
    assert_int_equal(p.in[0].y, -10);
    assert_int_equal(p.in[0].w, 50);
    assert_int_equal(p.in[0].h, 36);
    assert_int_equal(p.bufs[0].bytes, 21 * sizeof(float));
    /* Scratch: rows 0..25 (the top halo lies outside the image) x 30 columns x 3 channels. */
    assert_int_equal(p.bufs[1].bytes, (size_t)26 * 30 * 3 * sizeof(float));
    tsr__node_free(n);
}

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"sigma=0",   "sigma=-1", "sigma=0.009", "sigma=100.5",
                                "edge=wrap", "edge=",    "sigma=abc"};
    static const char *good[] = {"sigma=0.01", "sigma=100", "edge=mirror"};
    nc_params_checked("blur.gaussian", bad, sizeof bad / sizeof bad[0], good,
                      sizeof good / sizeof good[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),       cmocka_unit_test(ref_matches_opencv),
        cmocka_unit_test(tiled_equals_whole),   cmocka_unit_test(identity_and_constant),
        cmocka_unit_test(plan_grows_by_radius), cmocka_unit_test(bad_params_rejected),
    };
    return cmocka_run_group_tests_name("blur.gaussian", tests, NULL, NULL);
}
