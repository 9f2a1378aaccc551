/* adjust.invert: CL vs reference on awkward sizes, reference vs the formula, tiled vs whole. */
#include "testutil.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 17}};

static void cl_matches_ref(void **state)
{
    tsr_node *n = tu_node("adjust.invert", NULL, 0);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ch = 1; ch <= 4; ch++) {
            tsr_image *in = tu_random_image(sizes[s][0], sizes[s][1], ch, 7 + (uint32_t)s);
            tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
            tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
            /* 1 - v is exact in float32 for v in [0,1): any difference is a kernel bug. */
            assert_true(tu_max_diff(ref, cl) == 0.0);
            /* The reference against the formula, alpha kept. */
            size_t plane = (size_t)in->width * in->height;
            int colour = ch == 2 || ch == 4 ? ch - 1 : ch;
            for (int c = 0; c < ch; c++)
                for (size_t i = 0; i < plane; i++) {
                    float v = in->data[c * plane + i];
                    assert_true(ref->data[c * plane + i] == (c < colour ? 1.0f - v : v));
                }
            tsr_image_free(in);
            tsr_image_free(ref);
            tsr_image_free(cl);
        }
    tsr__node_free(n);
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
