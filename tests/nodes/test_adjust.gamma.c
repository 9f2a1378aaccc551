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

static tsr_node *sweep_node(size_t g)
{
    return gamma_node(gammas[g]);
}

static void sweep_describe(size_t g, char *buf, size_t len)
{
    snprintf(buf, len, "gamma=%s", gammas[g]);
}

/* Colour in [-0.25, 1.25): negatives must become 0, values above 1 stay. */
static tsr_image *sweep_input(const nc_point *pt)
{
    return fg_random_range(pt->w, pt->h, pt->ch, 3 + (uint32_t)(pt->s * 32 + pt->ch * 8 + pt->p),
                           -0.25f, 1.25f);
}

/* The definition, sample by sample: alpha copied bit for bit, negatives to 0, and pow from
 * libm in double within 1 ulp of the float result. */
static void sweep_check(const nc_point *pt, const tsr_image *in, const tsr_image *ref,
                        const char *what)
{
    nc_alpha_kept(in, ref, what);
    size_t colour = (size_t)in->width * in->height * nc_colour_planes(pt->ch);
    double e = (float)(1.0 / atof(gammas[pt->p]));
    for (size_t i = 0; i < colour; i++) {
        float v = in->data[i], r = ref->data[i];
        double want = v > 0 ? pow(v, e) : 0.0;
        if (!(fabs(r - want) <= FLT_EPSILON * want + FLT_MIN))
            fail_msg("%s: pow(%.9g, %.9g) = %.9g, reference %.9g", what, v, e, want, r);
    }
}

static void cl_matches_ref(void **state)
{
    static const nc_sweep sw = {
        .sizes = sizes,
        .n_sizes = sizeof sizes / sizeof sizes[0],
        .n_params = sizeof gammas / sizeof gammas[0],
        .make = sweep_node,
        .describe = sweep_describe,
        .input = sweep_input,
        .tol = {CL_ABS, CL_REL},
        .check = sweep_check,
    };
    nc_sweep_run(&sw);
}

/* The reference against numpy (float64 pow, exponent float32(1/gamma), rounded once): glibc's
 * powf is within 1 ulp and the golden within 1/2 ulp, so 2 ulp of the value. */
static void ref_matches_numpy(void **state)
{
    static const fg_golden g = {
        .node = "adjust.gamma",
        .min_cases = 4,
        .ref_tol = {FLT_MIN, 2.0 * FLT_EPSILON},
        .cl_tol = {CL_ABS, CL_REL + 2.0 * FLT_EPSILON},
    };
    fg_golden_run(&g);
}

static void tiled_equals_whole(void **state)
{
    tsr_node *n = gamma_node("2.2");
    tsr_image *in = tu_random_image(127, 129, 4, 99);
    nc_tiled_equals_whole(n, in, (const int[2]){37, 19}, (const int[2]){7, 5}, NULL);
    tsr_image_free(in);
    tsr__node_free(n);
}

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"gamma=-1", "gamma=0", "gamma=0.005", "gamma=10.5", "gamma=x"};
    static const char *good[] = {"gamma=0.01", "gamma=10"};
    nc_params_checked("adjust.gamma", bad, sizeof bad / sizeof bad[0], good,
                      sizeof good / sizeof good[0]);
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
