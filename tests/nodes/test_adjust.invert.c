/* adjust.invert: CL vs reference on awkward sizes, reference vs the formula, tiled vs whole. */
#include "nodecheck.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 17}};

static tsr_image *sweep_input(const nc_point *pt)
{
    return tu_random_image(pt->w, pt->h, pt->ch, 7 + (uint32_t)pt->s);
}

/* The reference against the formula, alpha kept. */
static void sweep_check(const nc_point *pt, const tsr_image *in, const tsr_image *ref,
                        const char *what)
{
    nc_alpha_kept(in, ref, what);
    size_t colour = (size_t)in->width * in->height * nc_colour_planes(pt->ch);
    for (size_t i = 0; i < colour; i++)
        assert_true(ref->data[i] == 1.0f - in->data[i]);
}

/* 1 - v is exact in float32 for v in [0,1): any difference is a kernel bug, so tolerance 0. */
static void cl_matches_ref(void **state)
{
    static const nc_sweep sw = {
        .node = "adjust.invert",
        .sizes = sizes,
        .n_sizes = sizeof sizes / sizeof sizes[0],
        .input = sweep_input,
        .tol = {0, 0},
        .check = sweep_check,
    };
    nc_sweep_run(&sw);
}

static void tiled_equals_whole(void **state)
{
    tsr_node *n = tu_node("adjust.invert", NULL, 0);
    tsr_image *in = tu_random_image(127, 129, 3, 99);
    tsr_image *whole = tu_run(tu_engine_ref(), n, in, 0, 0);
    tsr_image *tiled = tu_run(tu_engine_ref(), n, in, 37, 19);
    tsr_image *tiled_cl = tu_run(tu_engine_cl(), n, in, 7, 5);
    assert_true(tu_max_diff(whole, tiled) == 0.0);
    assert_true(tu_max_diff(whole, tiled_cl) == 0.0);
    tsr_image_free(in);
    tsr_image_free(whole);
    tsr_image_free(tiled);
    tsr_image_free(tiled_cl);
    tsr__node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),
        cmocka_unit_test(tiled_equals_whole),
    };
    return cmocka_run_group_tests_name("adjust.invert", tests, NULL, NULL);
}
