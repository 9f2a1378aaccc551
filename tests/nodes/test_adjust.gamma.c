/* adjust.gamma: CL vs reference on awkward sizes, reference vs numpy goldens, alpha and
 * out-of-range values, tiled vs whole, parameter ranges. */
#include "filters_golden.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 17}};
static const char *gammas[] = {"0.01", "0.45", "1", "2.2", "10"};

static tsr_node *gamma_node(const char *g)
{
    char kv[64];
    snprintf(kv, sizeof kv, "gamma=%s", g);
    const char *p = kv;
    return tu_node("adjust.gamma", &p, 1);
}

/* OpenCL 1.2 allows pow 16 ulp of error and glibc's powf is within 1 ulp, so the two paths may
 * differ by 17 ulp of the result (an ulp of x is at most FLT_EPSILON * |x|). FLT_MIN absolute
 * covers devices that flush subnormal results (gamma 0.01 raises to the 100th power) to 0. */
#define CL_REL (17.0 * FLT_EPSILON)
#define CL_ABS FLT_MIN

static void cl_matches_ref(void **state)
{
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ch = 1; ch <= 4; ch++)
            for (size_t g = 0; g < sizeof gammas / sizeof gammas[0]; g++) {
                tsr_node *n = gamma_node(gammas[g]);
                /* Colour in [-0.25, 1.25): negatives must become 0, values above 1 stay. */
                tsr_image *in = fg_random_range(sizes[s][0], sizes[s][1], ch,
                                                3 + (uint32_t)(s * 32 + ch * 8 + g), -0.25f, 1.25f);
                tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
                tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
                char what[96];
                snprintf(what, sizeof what, "%dx%dx%d gamma=%s", sizes[s][0], sizes[s][1], ch,
                         gammas[g]);
                fg_check(cl, ref, CL_ABS, CL_REL, what);
                /* The definition, sample by sample: alpha copied bit for bit, negatives to 0,
                 * and pow from libm in double within 1 ulp of the float result. */
                size_t plane = (size_t)in->width * in->height;
                int colour = ch == 2 || ch == 4 ? ch - 1 : ch;
                double e = (float)(1.0 / atof(gammas[g]));
                for (int c = 0; c < ch; c++)
                    for (size_t i = 0; i < plane; i++) {
                        float v = in->data[c * plane + i], r = ref->data[c * plane + i];
                        if (c >= colour) {
                            assert_true(r == v);
                            continue;
                        }
                        double want = v > 0 ? pow(v, e) : 0.0;
                        if (!(fabs(r - want) <= FLT_EPSILON * want + FLT_MIN))
                            fail_msg("%s: pow(%.9g, %.9g) = %.9g, reference %.9g", what, v, e, want,
                                     r);
                    }
                tsr_image_free(in);
                tsr_image_free(ref);
                tsr_image_free(cl);
                tsr__node_free(n);
            }
}

/* The reference against numpy (float64 pow, exponent float32(1/gamma), rounded once): glibc's
 * powf is within 1 ulp and the golden within 1/2 ulp, so 2 ulp of the value. */
static void ref_matches_numpy(void **state)
{
    fg_case cases[16];
    int n_cases = fg_cases("adjust.gamma", cases, 16);
    assert_true(n_cases >= 4);
    for (int i = 0; i < n_cases; i++) {
        tsr_node *n = tu_node("adjust.gamma", cases[i].kv, cases[i].n_kv);
        tsr_image *in = fg_read(cases[i].input), *want = fg_read(cases[i].output);
        tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
        tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
        char what[160];
        snprintf(what, sizeof what, "ref vs %s", cases[i].output);
        fg_check(ref, want, FLT_MIN, 2.0 * FLT_EPSILON, what);
        snprintf(what, sizeof what, "cl vs %s", cases[i].output);
        fg_check(cl, want, CL_ABS, CL_REL + 2.0 * FLT_EPSILON, what);
        tsr_image_free(in);
        tsr_image_free(want);
        tsr_image_free(ref);
        tsr_image_free(cl);
        tsr__node_free(n);
    }
}

static void tiled_equals_whole(void **state)
{
    tsr_node *n = gamma_node("2.2");
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
    static const char *bad[] = {"gamma=-1", "gamma=0", "gamma=0.005", "gamma=10.5", "gamma=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsr__err err;
        tsr__err_clear(&err);
        tsr_node *n = NULL;
        if (tsr__node_make("adjust.gamma", &bad[i], 1, &n, &err) == TSR_OK)
            fail_msg("adjust.gamma accepted %s", bad[i]);
        assert_null(n);
        assert_true(err.msg[0] != 0);
    }
    static const char *good[] = {"gamma=0.01", "gamma=10"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        tsr__node_free(tu_node("adjust.gamma", &good[i], 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),
        cmocka_unit_test(ref_matches_numpy),
        cmocka_unit_test(tiled_equals_whole),
        cmocka_unit_test(bad_params_rejected),
    };
    return cmocka_run_group_tests_name("adjust.gamma", tests, NULL, NULL);
}
