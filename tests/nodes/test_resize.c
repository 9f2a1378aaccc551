/* resize: CL vs reference on awkward sizes, tiled vs whole, Pillow and libvips goldens
 * (tests/golden/resize, made by tools/gen-resize-golden.py), shape inference, plan, params. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN "tests/golden/resize/"

static const char *const filters[] = {"nearest", "bilinear", "bicubic", "mitchell", "lanczos3"};
#define N_FILTERS 5

/* ---- helpers ------------------------------------------------------------------------------- */

/* A .f32 golden of tests/golden/resize (format in its README.md). */
static tsr_image *load_f32(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, GOLDEN "%s", name);
    return tu_read_f32(path);
}

static tsr_node *make(const char *filter, const char *size1, const char *size2)
{
    char fbuf[64];
    snprintf(fbuf, sizeof fbuf, "filter=%s", filter);
    const char *kv[3] = {fbuf, size1, size2};
    return tu_node("resize", kv, size2 ? 3 : 2);
}

static void expect_close(const tsr_image *a, const tsr_image *b, double tol, const char *what)
{
    double d = tu_max_diff(a, b);
    if (!(d <= tol))
        fail_msg("%s: max |diff| %.3g > %.3g", what, d, tol);
}

static void free3(tsr_image *a, tsr_image *b, tsr_image *c)
{
    tsr_image_free(a);
    tsr_image_free(b);
    tsr_image_free(c);
}

/* ---- CL against the reference -------------------------------------------------------------- */

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 9}};

/* PoCL, the device CI runs, divides correctly rounded like C. */
static int device_is_pocl(void)
{
    return strstr(tsr_engine_device(tu_engine_cl())->platform, "Portable Computing Language") !=
           NULL;
}

static void cl_matches_ref(void **state)
{
    double worst = 0;
    /* Both paths read the same host-built weight tables and run the same float32 operations in
     * the same order (the kernels disable contraction), so where division is correctly rounded
     * the outputs are the same bits. Elsewhere OpenCL allows 2.5 ulp on the final division by the
     * weight sum (and a GPU may flush subnormals): a relative error of a few 1e-7 on outputs
     * within about [-0.3, 1.3], so 1e-5 leaves a wide margin while a wrong tap or weight moves
     * outputs by 1e-2 or more. nearest copies samples: any difference is a bug. */
    double tol = device_is_pocl() ? 0.0 : 1e-5;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0];
        char width[32];
        snprintf(width, sizeof width, "width=%d", w + w / 2 + 2);
        const char *factors[] = {"scale=1.7", "scale=0.37", "scale=3", width};
        for (int ch = 1; ch <= 4; ch++) {
            tsr_image *in = tu_random_image(w, sizes[s][1], ch, 11 + (uint32_t)(s * 4 + ch));
            for (int f = 0; f < N_FILTERS; f++)
                for (int k = 0; k < 4; k++) {
                    tsr_node *n = make(filters[f], factors[k], NULL);
                    tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
                    tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
                    char what[128];
                    snprintf(what, sizeof what, "%s %s on %dx%dx%d", filters[f], factors[k], w,
                             sizes[s][1], ch);
                    expect_close(ref, cl, f == 0 ? 0.0 : tol, what);
                    double d = tu_max_diff(ref, cl);
                    worst = d > worst ? d : worst;
                    tsr_image_free(ref);
                    tsr_image_free(cl);
                    tsr__node_free(n);
                }
            tsr_image_free(in);
        }
    }
    print_message("resize: largest CL vs reference difference %.3g\n", worst);
}

/* ---- tiling -------------------------------------------------------------------------------- */

static void tiled_equals_whole(void **state)
{
    tsr_image *in = tu_random_image(127, 129, 3, 99);
    const char *factors[][2] = {
        {"scale=1.7", NULL}, {"scale=0.37", NULL}, {"width=300", "height=50"}};
    for (int f = 0; f < N_FILTERS; f++)
        for (int k = 0; k < 3; k++) {
            tsr_node *n = make(filters[f], factors[k][0], factors[k][1]);
            char what[128];
            snprintf(what, sizeof what, "%s %s %s", filters[f], factors[k][0],
                     factors[k][1] ? factors[k][1] : "");
            /* Weights come from absolute coordinates only, so every tiling computes each output
             * pixel with the very same operations: bit-identical. */
            tsr_image *whole = tu_run(tu_engine_ref(), n, in, 0, 0);
            tsr_image *t1 = tu_run(tu_engine_ref(), n, in, 37, 19);
            tsr_image *t2 = tu_run(tu_engine_ref(), n, in, 7, 5);
            expect_close(whole, t1, 0.0, what);
            expect_close(whole, t2, 0.0, what);
            free3(whole, t1, t2);
            whole = tu_run(tu_engine_cl(), n, in, 0, 0);
            t1 = tu_run(tu_engine_cl(), n, in, 37, 19);
            t2 = tu_run(tu_engine_cl(), n, in, 7, 5);
            expect_close(whole, t1, 0.0, what);
            expect_close(whole, t2, 0.0, what);
            free3(whole, t1, t2);
            tsr__node_free(n);
        }
    tsr_image_free(in);
}

/* ---- Pillow -------------------------------------------------------------------------------- */

static const struct {
    const char *input;
    int w, h;
} pil_cases[] = {
    {"photo", 83, 62}, {"photo", 24, 18}, {"noise", 133, 84}, {"noise", 59, 37}, {"noise", 150, 40},
};

static void matches_pillow(void **state)
{
    int checked = 0;
    for (size_t i = 0; i < sizeof pil_cases / sizeof pil_cases[0]; i++) {
        char name[128], wbuf[32], hbuf[32];
        snprintf(name, sizeof name, "in-%s.f32", pil_cases[i].input);
        tsr_image *in = load_f32(name);
        snprintf(wbuf, sizeof wbuf, "width=%d", pil_cases[i].w);
        snprintf(hbuf, sizeof hbuf, "height=%d", pil_cases[i].h);
        for (int f = 0; f < N_FILTERS; f++) {
            if (strcmp(filters[f], "mitchell") == 0)
                continue; /* Pillow has none: checked against libvips below */
            /* Pillow's NEAREST goes either way at exact ties, so the generator writes it only for
             * tie-free sizes (the even-sized photo always has ties). */
            if (f == 0 && strcmp(pil_cases[i].input, "photo") == 0)
                continue;
            snprintf(name, sizeof name, "pil-%s-%s-%dx%d.f32", filters[f], pil_cases[i].input,
                     pil_cases[i].w, pil_cases[i].h);
            tsr_image *gold = load_f32(name);
            tsr_node *n = make(filters[f], wbuf, hbuf);
            tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
            tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
            /* Pillow (mode F) computes weights and sums in double and stores its horizontal pass
             * as float32, like us; our weights are float32 (relative error ~1e-7 each) and the
             * sums float32 over at most ~20 taps here. 1e-5 is ~30x what that can add up to on
             * [0,1] data; an error of convention (grid, support, edge rule) shows as 1e-2. */
            double tol = f == 0 ? 0.0 : 1e-5;
            expect_close(ref, gold, tol, name);
            expect_close(cl, gold, tol, name);
            free3(gold, ref, cl);
            tsr__node_free(n);
            checked++;
        }
        tsr_image_free(in);
    }
    assert_int_equal(checked, 5 * 3 + 3); /* 3 filters x 5 cases, NEAREST on the noise cases */
}

/* ---- libvips (reductions) ------------------------------------------------------------------ */

static int support_of(const char *filter)
{
    return strcmp(filter, "bilinear") == 0 ? 1 : (strcmp(filter, "lanczos3") == 0 ? 3 : 2);
}

/* Whether every tap of output pixel o lies inside the input (independent of nodes/resize.c: the
 * window is centre +- support * n_in / n_out in input pixels, for a reduction). */
static int interior(int o, int n_in, int n_out, int support)
{
    double centre = (o + 0.5) * n_in / n_out - 0.5, reach = support * (double)n_in / n_out;
    return centre - reach > -1.0 && centre + reach < n_in;
}

static void matches_libvips(void **state)
{
    static const char *const vfilters[] = {"bilinear", "bicubic", "mitchell", "lanczos3"};
    static const int vsizes[][2] = {{32, 24}, {39, 29}, {24, 18}};
    tsr_image *in = load_f32("in-photo.f32");
    for (int s = 0; s < 3; s++)
        for (int f = 0; f < 4; f++) {
            char name[128], wbuf[32], hbuf[32];
            int w = vsizes[s][0], h = vsizes[s][1], sup = support_of(vfilters[f]);
            snprintf(name, sizeof name, "vips-%s-photo-%dx%d.f32", vfilters[f], w, h);
            snprintf(wbuf, sizeof wbuf, "width=%d", w);
            snprintf(hbuf, sizeof hbuf, "height=%d", h);
            tsr_image *gold = load_f32(name);
            tsr_node *n = make(vfilters[f], wbuf, hbuf);
            tsr_image *out = tu_run(tu_engine_ref(), n, in, 0, 0);
            assert_int_equal(out->width, w);
            assert_int_equal(out->height, h);
            /* libvips extends edges where we drop outside taps, so only pixels whose taps are
             * all inside count. It also rounds every sampling position to 1/64 pixel (the
             * generator reproduces its output to 1e-7 with exactly that model). For 64x48 ->
             * 32x24 the positions lie on that grid, so float32 rounding is all that is left
             * (1e-5). Otherwise a shift of up to 1/128 pixel moves the weights by up to
             * ~1/128 * sum|k'| ~ 1%, times the local contrast of the photo: measured up to
             * 3.4e-3 (mean 3.7e-4); we allow 6e-3 and a mean of 1e-3. Swapping any two of the
             * four kernels moves these outputs by 2.3e-2 to 0.15 (mean 4e-3 or more). */
            double tol = s == 0 ? 1e-5 : 6e-3, mean_tol = s == 0 ? 1e-6 : 1e-3;
            double max = 0, sum = 0;
            size_t count = 0, plane = (size_t)w * h;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++) {
                        if (!interior(x, 64, w, sup) || !interior(y, 48, h, sup))
                            continue;
                        size_t i = c * plane + (size_t)y * w + x;
                        double d = fabs((double)out->data[i] - gold->data[i]);
                        max = d > max ? d : max;
                        sum += d;
                        count++;
                    }
            if (count < 100 || !(max <= tol) || !(sum / count <= mean_tol))
                fail_msg("%s: %zu interior samples, max %.3g (tol %.3g), mean %.3g (tol %.3g)",
                         name, count, max, tol, sum / (double)count, mean_tol);
            tsr_image_free(gold);
            tsr_image_free(out);
            tsr__node_free(n);
        }
    tsr_image_free(in);
}

/* ---- nearest rule, shapes, plan, params ---------------------------------------------------- */

/* 2 -> 7 pixels: output 3 samples the input at exactly 1.0 - 0.5, halfway between the two
 * centres; we take the higher pixel (floor of (o + 0.5) * 2 / 7 = 1). Pillow gives 0 there
 * because it accumulates the position in double. */
static void nearest_tie_rule(void **state)
{
    tsr_image *in = NULL;
    assert_int_equal(tsr_image_new(2, 1, 1, &in), TSR_OK);
    in->data[0] = 10.0f;
    in->data[1] = 20.0f;
    tsr_node *n = make("nearest", "width=7", "height=1");
    tsr_image *out = tu_run(tu_engine_ref(), n, in, 0, 0);
    const float want[7] = {10, 10, 10, 20, 20, 20, 20};
    for (int i = 0; i < 7; i++)
        assert_true(out->data[i] == want[i]);
    tsr_image_free(out);
    tsr_image_free(in);
    tsr__node_free(n);
}

static void infer_sizes(void **state)
{
    static const struct {
        const char *kv1, *kv2;
        int in_w, in_h, ch, w, h;
        tsr_status rc;
    } cases[] = {
        {"scale=0.37", NULL, 97, 61, 1, 36, 23, TSR_OK}, /* 35.89, 22.57 rounded */
        {"scale=1.7", NULL, 64, 48, 4, 109, 82, TSR_OK}, /* 108.8, 81.6 */
        {"scale=0.001", NULL, 13, 7, 2, 1, 1, TSR_OK},   /* at least 1 */
        {"width=80", NULL, 64, 48, 3, 80, 60, TSR_OK},   /* aspect kept */
        {"height=30", NULL, 64, 48, 3, 40, 30, TSR_OK},
        {"width=50", "height=70", 64, 48, 3, 50, 70, TSR_OK},
        {"width=1", NULL, 1000, 1, 1, 1, 1, TSR_OK},
        {"scale=64", NULL, 20000, 100, 1, 0, 0, TSR_ERR_LIMIT},            /* side 1280000 */
        {"width=1048576", "height=1048576", 8, 8, 1, 0, 0, TSR_ERR_LIMIT}, /* 2^40 pixels */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_node *n = make("bicubic", cases[i].kv1, cases[i].kv2);
        tsr_port_info in = {.width = cases[i].in_w,
                            .height = cases[i].in_h,
                            .channels = cases[i].ch,
                            .bit_depth = 16},
                      out = {0};
        tsr__err err;
        tsr__err_clear(&err);
        tsr_status rc = n->cls->infer(n, &in, &out, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s %s): status %d, expected %d: %s", i, cases[i].kv1,
                     cases[i].kv2 ? cases[i].kv2 : "", rc, cases[i].rc, err.msg);
        if (rc == TSR_OK) {
            assert_int_equal(out.width, cases[i].w);
            assert_int_equal(out.height, cases[i].h);
            assert_int_equal(out.channels, cases[i].ch);
            assert_int_equal(out.bit_depth, 16);
        } else {
            assert_true(err.msg[0] != 0);
        }
        tsr__node_free(n);
    }
}

static void plan_rects(void **state)
{
    tsr_port_info in = {.width = 64, .height = 48, .channels = 3, .bit_depth = 8};
    tsr_plan p;
    /* x2 bilinear: output 10 samples input 4.75 (taps 4, 5), output 17 samples 8.25 (8, 9);
     * rows 20..23 sample 9.75..11.25 (taps 9..12). */
    tsr_node *n = make("bilinear", "width=128", NULL);
    tsr_rect r = {10, 20, 8, 4};
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &in, &r, &p);
    assert_int_equal(p.in[0].x, 4);
    assert_int_equal(p.in[0].w, 6);
    assert_int_equal(p.in[0].y, 9);
    assert_int_equal(p.in[0].h, 4);
    /* Scratch: 8 columns x 4 rows x 3 channels; then the tap tables, a row of k weights plus
     * (first tap, count, weight sum) per output column and row. A triangle of half-width 1
     * input pixel covers k = 2 pixels at most. Then the input region transposed for the
     * horizontal pass when enlarging, 6 columns of 4 rows padded to 16. Four buffers, all per
     * tile. */
    assert_int_equal(p.n_bufs, 4);
    assert_int_equal(p.bufs[0].bytes, (size_t)8 * 4 * 3 * 4);
    assert_int_equal(p.bufs[1].bytes, (size_t)8 * (2 + 3) * 4);
    assert_int_equal(p.bufs[2].bytes, (size_t)4 * (2 + 3) * 4);
    assert_int_equal(p.bufs[3].bytes, (size_t)6 * 16 * 3 * 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p.bufs[i].life, TSR_BUF_TILE);
    tsr__node_free(n);
    /* /2 lanczos3: support 6 input pixels around 0.5 and 62.5: taps -5..6 and 57..68, clipped. */
    n = make("lanczos3", "scale=0.5", NULL);
    r = (tsr_rect){0, 23, 1, 1};
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &in, &r, &p);
    assert_int_equal(p.in[0].x, 0);
    assert_int_equal(p.in[0].w, 7);
    assert_int_equal(p.in[0].y, 41);
    assert_int_equal(p.in[0].h, 7);
    /* Widened by 2, lanczos3 spans 12 input pixels on both axes: k = 12. */
    assert_int_equal(p.bufs[0].bytes, (size_t)1 * 7 * 3 * 4);
    assert_int_equal(p.bufs[1].bytes, (size_t)1 * (12 + 3) * 4);
    assert_int_equal(p.bufs[2].bytes, (size_t)1 * (12 + 3) * 4);
    assert_int_equal(p.n_bufs, 3); /* shrinking: no transposed input */
    tsr__node_free(n);
    /* nearest needs no scratch: one pixel per output pixel. */
    n = make("nearest", "scale=3", NULL);
    r = (tsr_rect){3, 3, 3, 3};
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &in, &r, &p);
    assert_int_equal(p.in[0].x, 1);
    assert_int_equal(p.in[0].w, 1);
    assert_int_equal(p.n_bufs, 0);
    tsr__node_free(n);
}

/* What the device really held at its peak, on a fresh engine whose pool has nothing cached:
 * input and output buffers plus the buffers plan() declared (scratch image and two tap
 * tables), each rounded to the pool's size class as the planner counts them. The reduction has
 * tables larger than its scratch image, the enlargement the reverse. */
static void plan_matches_device_peak(void **state)
{
    static const struct {
        const char *filter, *size;
        int w, h, ch;
    } cases[] = {{"lanczos3", "scale=0.1", 97, 61, 1}, {"bicubic", "scale=2.5", 61, 47, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_engine_options o;
        tsr_engine_options_init(&o);
        o.device = getenv("TSR_TEST_DEVICE");
        char msg[1024] = "";
        tsr_engine *e = NULL;
        if (tsr_engine_new(&o, &e, msg, sizeof msg) != TSR_OK)
            fail_msg("cannot create engine: %s", msg);
        assert_false(tsr_engine_is_ref(e));
        tsr_node *n = make(cases[i].filter, cases[i].size, NULL);
        tsr_image *in = tu_random_image(cases[i].w, cases[i].h, cases[i].ch, 5);
        tsr_port_info info = {.width = cases[i].w,
                              .height = cases[i].h,
                              .channels = cases[i].ch,
                              .bit_depth = 8},
                      oi;
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(n->cls->infer(n, &info, &oi, &err), TSR_OK);
        tsr_rect whole = {0, 0, oi.width, oi.height};
        tsr_plan p;
        memset(&p, 0, sizeof p);
        n->cls->plan(n, &info, &whole, &p);
        tsr_image *out = tu_run(e, n, in, 0, 0);
        tsr_pool_stats st;
        assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
        size_t in_b = tsr__pool_class_size((size_t)cases[i].w * cases[i].h * cases[i].ch * 4);
        size_t out_b = tsr__pool_class_size((size_t)oi.width * oi.height * oi.channels * 4);
        size_t planned = 0;
        for (int b = 0; b < p.n_bufs; b++)
            planned += tsr__pool_class_size(p.bufs[b].bytes);
        assert_int_equal(st.peak_in_use_bytes, in_b + out_b + planned);
        tsr_image_free(out);
        tsr_image_free(in);
        tsr__node_free(n);
        tsr_engine_free(e);
    }
}

/* Either the node maker (which validates) or the class's check must refuse, with a message. */
static void expect_param_error(const char *const *kv, int n_kv)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_node *n = NULL;
    tsr_status rc = tsr__node_make("resize", kv, n_kv, &n, &err);
    if (rc == TSR_OK) {
        rc = n->cls->check(n, &err);
        tsr__node_free(n);
    }
    assert_int_equal(rc, TSR_ERR_GRAPH);
    assert_non_null(strstr(err.msg, "resize"));
}

static void param_errors(void **state)
{
    const char *both[] = {"scale=2", "width=10"};
    const char *both_h[] = {"height=10", "scale=0.5"};
    const char *none[] = {"filter=bicubic"};
    expect_param_error(both, 2);
    expect_param_error(both_h, 2);
    expect_param_error(none, 1);
    expect_param_error(NULL, 0);
    /* The same checks guard inference, which tsr__run_node reaches without validation. */
    tsr_node *n = NULL;
    tsr__err err;
    tsr__err_clear(&err);
    if (tsr__node_make("resize", none, 1, &n, &err) == TSR_OK) {
        tsr_port_info in = {.width = 8, .height = 8, .channels = 1}, out;
        assert_int_equal(n->cls->infer(n, &in, &out, &err), TSR_ERR_GRAPH);
        tsr__node_free(n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),   cmocka_unit_test(tiled_equals_whole),
        cmocka_unit_test(matches_pillow),   cmocka_unit_test(matches_libvips),
        cmocka_unit_test(nearest_tie_rule), cmocka_unit_test(infer_sizes),
        cmocka_unit_test(plan_rects),       cmocka_unit_test(plan_matches_device_peak),
        cmocka_unit_test(param_errors),
    };
    return cmocka_run_group_tests_name("resize", tests, NULL, NULL);
}
