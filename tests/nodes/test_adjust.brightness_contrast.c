/* adjust.brightness_contrast: CL vs reference on awkward sizes, reference vs numpy goldens of
 * GIMP's curve, defaults, the contrast extremes, tiled vs whole, parameter ranges. */
#include "filters_golden.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 17}};

typedef struct bc_case {
    const char *b, *c, *clamp;
} bc_case;

static const bc_case params[] = {{"0.3", "0.2", "true"},   {"-0.4", "0.5", "true"},
                                 {"0.5", "-0.7", "false"}, {"-1", "0", "true"},
                                 {"1", "0.99", "true"},    {"0", "-1", "false"}};

static tsr_node *bc_node(const char *b, const char *c, const char *clamp)
{
    char kb[64], kc[64], kl[64];
    snprintf(kb, sizeof kb, "brightness=%s", b);
    snprintf(kc, sizeof kc, "contrast=%s", c);
    snprintf(kl, sizeof kl, "clamp=%s", clamp);
    const char *kv[] = {kb, kc, kl};
    return tu_node("adjust.brightness_contrast", kv, 3);
}

static double slope_of(double contrast)
{
    return tan((contrast + 1.0) * M_PI / 4.0);
}

/* The kernel disables contraction and repeats the reference's float operations, so PoCL
 * matches bit for bit. A device that fuses the two multiply-adds anyway differs by one rounding
 * of each, the first amplified by the slope: 4 * FLT_EPSILON * (1 + slope) * max(1, |v|). */
static double cl_tol(double contrast, double max_abs)
{
    return 4.0 * FLT_EPSILON * (1.0 + slope_of(contrast)) * (max_abs > 1 ? max_abs : 1);
}

static tsr_node *sweep_node(size_t p)
{
    return bc_node(params[p].b, params[p].c, params[p].clamp);
}

static void sweep_describe(size_t p, char *buf, size_t len)
{
    snprintf(buf, len, "b=%s c=%s clamp=%s", params[p].b, params[p].c, params[p].clamp);
}

static tsr_image *sweep_input(const nc_point *pt)
{
    return fg_random_range(pt->w, pt->h, pt->ch, 5 + (uint32_t)(pt->s * 64 + pt->ch * 8 + pt->p),
                           -0.25f, 1.25f);
}

/* The inputs reach 1.25. */
static nc_tol sweep_tol(const nc_point *pt, const tsr_image *in)
{
    return (nc_tol){cl_tol(atof(params[pt->p].c), 1.25), 0};
}

/* Alpha is copied bit for bit; clamped colour stays in 0..1. */
static void sweep_check(const nc_point *pt, const tsr_image *in, const tsr_image *ref,
                        const char *what)
{
    nc_alpha_kept(in, ref, what);
    size_t colour = (size_t)in->width * in->height * nc_colour_planes(pt->ch);
    if (params[pt->p].clamp[0] == 't')
        for (size_t i = 0; i < colour; i++)
            assert_true(ref->data[i] >= 0.0f && ref->data[i] <= 1.0f);
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
        .tol_fn = sweep_tol,
        .check = sweep_check,
    };
    nc_sweep_run(&sw);
}

/* The reference against GIMP's map evaluated in float64 by numpy. Tessera rounds b and the
 * slope to float and computes in float: a few roundings, the one before the slope amplified
 * by it, so 8 * FLT_EPSILON * (1 + slope) * max(1, |v|). */
static nc_tol golden_tol(const fg_case *c, const tsr_image *in)
{
    double m = fg_max_abs(in) > 1 ? fg_max_abs(in) : 1;
    return (nc_tol){8.0 * FLT_EPSILON * (1.0 + slope_of(fg_param(c, "contrast"))) * m, 0};
}

static void ref_matches_numpy(void **state)
{
    static const fg_golden g = {
        .node = "adjust.brightness_contrast", .min_cases = 5, .tol = golden_tol};
    fg_golden_run(&g);
}

/* Defaults are the identity up to the rounding of (v - 0.5) + 0.5 (at most FLT_EPSILON/2 for
 * v in 0..1); contrast -1 is flat mid-grey; contrast 1 is a threshold at 0.5. */
static void defaults_and_extremes(void **state)
{
    tsr_image *in = tu_random_image(61, 33, 3, 17);
    size_t n_s = (size_t)in->width * in->height * in->channels;
    tsr_node *n = tu_node("adjust.brightness_contrast", NULL, 0);
    tsr_image *out = tu_run(tu_engine_ref(), n, in, 0, 0);
    nc_check(out, in, FLT_EPSILON / 2, 0, "defaults");
    tsr_image_free(out);
    tsr__node_free(n);

    n = bc_node("0.6", "-1", "false");
    out = tu_run(tu_engine_cl(), n, in, 0, 0);
    for (size_t i = 0; i < n_s; i++)
        assert_true(out->data[i] == 0.5f);
    tsr_image_free(out);
    tsr__node_free(n);

    n = bc_node("0", "1", "true");
    tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
    tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
    for (size_t i = 0; i < n_s; i++) {
        float v = in->data[i], want = v > 0.5f ? 1.0f : (v < 0.5f ? 0.0f : 0.5f);
        assert_true(ref->data[i] == want);
        assert_true(cl->data[i] == want);
    }
    tsr_image_free(ref);
    tsr_image_free(cl);
    tsr__node_free(n);
    tsr_image_free(in);
}

static void tiled_equals_whole(void **state)
{
    tsr_node *n = bc_node("-0.2", "0.4", "true");
    tsr_image *in = tu_random_image(127, 129, 4, 99);
    nc_tiled_equals_whole(n, in, (const int[2]){37, 19}, (const int[2]){7, 5}, NULL);
    tsr_image_free(in);
    tsr__node_free(n);
}

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"brightness=1.5", "brightness=-1.01", "contrast=2", "contrast=-1.1",
                                "clamp=maybe"};
    static const char *good[] = {"brightness=-1", "brightness=1", "contrast=-1", "contrast=1",
                                 "clamp=false"};
    nc_params_checked("adjust.brightness_contrast", bad, sizeof bad / sizeof bad[0], good,
                      sizeof good / sizeof good[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),        cmocka_unit_test(ref_matches_numpy),
        cmocka_unit_test(defaults_and_extremes), cmocka_unit_test(tiled_equals_whole),
        cmocka_unit_test(bad_params_rejected),
    };
    return cmocka_run_group_tests_name("adjust.brightness_contrast", tests, NULL, NULL);
}
