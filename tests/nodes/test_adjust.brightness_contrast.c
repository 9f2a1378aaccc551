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

static void cl_matches_ref(void **state)
{
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ch = 1; ch <= 4; ch++)
            for (size_t p = 0; p < sizeof params / sizeof params[0]; p++) {
                tsr_node *n = bc_node(params[p].b, params[p].c, params[p].clamp);
                tsr_image *in = fg_random_range(sizes[s][0], sizes[s][1], ch,
                                                5 + (uint32_t)(s * 64 + ch * 8 + p), -0.25f, 1.25f);
                tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
                tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
                char what[96];
                snprintf(what, sizeof what, "%dx%dx%d b=%s c=%s clamp=%s", sizes[s][0], sizes[s][1],
                         ch, params[p].b, params[p].c, params[p].clamp);
                fg_check(cl, ref, cl_tol(atof(params[p].c), 1.25), 0, what);
                /* Alpha is copied bit for bit; clamped colour stays in 0..1. */
                size_t plane = (size_t)in->width * in->height;
                int colour = ch == 2 || ch == 4 ? ch - 1 : ch;
                for (int c = 0; c < ch; c++)
                    for (size_t i = 0; i < plane; i++) {
                        float r = ref->data[c * plane + i];
                        if (c >= colour)
                            assert_true(r == in->data[c * plane + i]);
                        else if (params[p].clamp[0] == 't')
                            assert_true(r >= 0.0f && r <= 1.0f);
                    }
                tsr_image_free(in);
                tsr_image_free(ref);
                tsr_image_free(cl);
                tsr__node_free(n);
            }
}

/* The reference against GIMP's map evaluated in float64 by numpy. Tessera rounds b and the
 * slope to float and computes in float: a few roundings, the one before the slope amplified
 * by it, so 8 * FLT_EPSILON * (1 + slope) * max(1, |v|). */
static void ref_matches_numpy(void **state)
{
    fg_case cases[16];
    int n_cases = fg_cases("adjust.brightness_contrast", cases, 16);
    assert_true(n_cases >= 5);
    for (int i = 0; i < n_cases; i++) {
        tsr_node *n = tu_node("adjust.brightness_contrast", cases[i].kv, cases[i].n_kv);
        tsr_image *in = fg_read(cases[i].input), *want = fg_read(cases[i].output);
        double m = fg_max_abs(in) > 1 ? fg_max_abs(in) : 1;
        double tol = 8.0 * FLT_EPSILON * (1.0 + slope_of(fg_param(&cases[i], "contrast"))) * m;
        tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
        tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
        char what[160];
        snprintf(what, sizeof what, "ref vs %s", cases[i].output);
        fg_check(ref, want, tol, 0, what);
        snprintf(what, sizeof what, "cl vs %s", cases[i].output);
        fg_check(cl, want, tol, 0, what);
        tsr_image_free(in);
        tsr_image_free(want);
        tsr_image_free(ref);
        tsr_image_free(cl);
        tsr__node_free(n);
    }
}

/* Defaults are the identity up to the rounding of (v - 0.5) + 0.5 (at most FLT_EPSILON/2 for
 * v in 0..1); contrast -1 is flat mid-grey; contrast 1 is a threshold at 0.5. */
static void defaults_and_extremes(void **state)
{
    tsr_image *in = tu_random_image(61, 33, 3, 17);
    size_t n_s = (size_t)in->width * in->height * in->channels;
    tsr_node *n = tu_node("adjust.brightness_contrast", NULL, 0);
    tsr_image *out = tu_run(tu_engine_ref(), n, in, 0, 0);
    fg_check(out, in, FLT_EPSILON / 2, 0, "defaults");
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

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"brightness=1.5", "brightness=-1.01", "contrast=2", "contrast=-1.1",
                                "clamp=maybe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsr__err err;
        tsr__err_clear(&err);
        tsr_node *n = NULL;
        if (tsr__node_make("adjust.brightness_contrast", &bad[i], 1, &n, &err) == TSR_OK)
            fail_msg("adjust.brightness_contrast accepted %s", bad[i]);
        assert_null(n);
        assert_true(err.msg[0] != 0);
    }
    static const char *good[] = {"brightness=-1", "brightness=1", "contrast=-1", "contrast=1",
                                 "clamp=false"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        tsr__node_free(tu_node("adjust.brightness_contrast", &good[i], 1));
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
