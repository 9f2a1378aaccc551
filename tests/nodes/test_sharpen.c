/* sharpen: CL vs reference on awkward sizes, reference vs numpy/OpenCV goldens, tiled vs whole
 * (bit-identical), equal to blur.gaussian plus the formula, exact identities, plan() and the
 * measured device peak, parameter ranges. */
#include "filters_golden.h"

static const int sizes[][2] = {{1, 1}, {13, 7}, {127, 129}, {1031, 23}, {17, 1009}};

typedef struct sharpen_case {
    const char *sigma, *amount, *threshold, *edge;
} sharpen_case;

/* Radius 2, 8, 30 and 100 (the last two pass the small images' sizes, so mirror folds), amount
 * up to the maximum, thresholds that leave some samples alone and sharpen others. */
static const sharpen_case params[] = {{"0.5", "1", "0", "clamp"},
                                      {"2", "2.5", "0.03", "mirror"},
                                      {"7.3", "0.6", "0", "zero"},
                                      {"25", "4", "0.1", "mirror"},
                                      {"1", "10", "0.2", "zero"}};

static int radius_of(double sigma)
{
    return (int)ceil(4.0 * sigma);
}

/* The blur's bound, as in test_blur.gaussian.c: two passes of 2r+1 float products and sums with
 * weights summing to 1, twice over for the weight rounding. */
static double blur_tol(double sigma, double max_abs)
{
    return 2.0 * (2 * radius_of(sigma) + 1) * FLT_EPSILON * (max_abs > 1 ? max_abs : 1);
}

/* out = v + a*(v - b): an error e in b moves out by a*e; the subtraction, the product, the sum
 * and the other side's own rounding add at most (1 + 4a) half-ulps... of values up to
 * (1 + 2a) max|v|, bounded here by (1 + 4a) FLT_EPSILON max|v|. A wrong tap, edge or formula is
 * off by 1e-3 times the amount or more. */
static double sharpen_tol(double sigma, double amount, double max_abs)
{
    double m = max_abs > 1 ? max_abs : 1;
    return amount * blur_tol(sigma, max_abs) + (1 + 4 * amount) * FLT_EPSILON * m;
}

static tsr_node *sharpen_node(const sharpen_case *p)
{
    char s[64], a[64], t[64], e[64];
    snprintf(s, sizeof s, "sigma=%s", p->sigma);
    snprintf(a, sizeof a, "amount=%s", p->amount);
    snprintf(t, sizeof t, "threshold=%s", p->threshold);
    snprintf(e, sizeof e, "edge=%s", p->edge);
    const char *kv[] = {s, a, t, e};
    return tu_node("sharpen", kv, 4);
}

static tsr_node *blur_node(const sharpen_case *p)
{
    char s[64], e[64];
    snprintf(s, sizeof s, "sigma=%s", p->sigma);
    snprintf(e, sizeof e, "edge=%s", p->edge);
    const char *kv[] = {s, e};
    return tu_node("blur.gaussian", kv, 2);
}

/* Colour samples within tol of want; alpha samples equal to the input bit for bit. Where
 * `blurred` is given, a colour sample whose |in - blurred| lies within blur_err of the threshold
 * may take either branch (a device whose blur differs by a rounding may decide the other way),
 * but must still be one of the two. */
static void sharpen_check(const tsr_image *got, const tsr_image *want, const tsr_image *in,
                          const tsr_image *blurred, double amount, double threshold, double tol,
                          double blur_err, const char *what)
{
    nc_alpha_kept(in, got, what);
    size_t plane = (size_t)in->width * in->height;
    for (size_t i = 0; i < plane * nc_colour_planes(in->channels); i++) {
        double g = got->data[i], w = want->data[i], v = in->data[i];
        if (fabs(g - w) <= tol)
            continue;
        if (blurred && threshold > 0) {
            double d = v - blurred->data[i];
            if (fabs(fabs(d) - threshold) <= blur_err &&
                (fabs(g - v) <= tol || fabs(g - (v + amount * d)) <= tol))
                continue;
        }
        fail_msg("%s: channel %zu (%zu, %zu): got %.9g, expected %.9g (tolerance %.3g)", what,
                 i / plane, i % plane % in->width, i % plane / in->width, g, w, tol);
    }
}

static tsr_node *sweep_node(size_t p)
{
    return sharpen_node(&params[p]);
}

static void sweep_describe(size_t p, char *buf, size_t len)
{
    snprintf(buf, len, "sigma=%s amount=%s threshold=%s edge=%s", params[p].sigma, params[p].amount,
             params[p].threshold, params[p].edge);
}

/* Colour past 0..1 on odd cases: the node must not clamp. */
static tsr_image *sweep_input(const nc_point *pt)
{
    uint32_t seed = 31 + (uint32_t)(pt->s * 16 + pt->ch * 4 + pt->p);
    return pt->p % 2 ? fg_random_range(pt->w, pt->h, pt->ch, seed, -0.5f, 1.5f)
                     : tu_random_image(pt->w, pt->h, pt->ch, seed);
}

/* The long thin images with the widest kernel only: the reference is O(r). */
static int sweep_omit(const nc_point *pt)
{
    return pt->w * pt->h > 20000 && pt->p == 3 && pt->ch > 1;
}

/* A sample near the threshold may take either branch on a device whose blur rounds otherwise:
 * the reference blur tells which samples are near. */
static void sweep_compare(const nc_point *pt, tsr_image *in, const tsr_image *ref,
                          const tsr_image *cl, const char *what)
{
    const sharpen_case *pc = &params[pt->p];
    tsr_node *b = blur_node(pc);
    tsr_image *blurred = tu_run(tu_engine_ref(), b, in, 0, 0);
    double sigma = atof(pc->sigma), amount = atof(pc->amount), m = fg_max_abs(in);
    sharpen_check(cl, ref, in, blurred, amount, atof(pc->threshold), sharpen_tol(sigma, amount, m),
                  blur_tol(sigma, m), what);
    tsr_image_free(blurred);
    tsr__node_free(b);
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
        .compare = sweep_compare,
    };
    nc_sweep_run(&sw);
}

/* The reference (and the device) against numpy/OpenCV: cv2.GaussianBlur with the matching
 * border, then the formula in float64 (see tools/gen-filter-golden.py, which also refuses a
 * threshold that some sample lies too close to, so no branch flip is tolerated here). */
static nc_tol golden_tol(const fg_case *c, const tsr_image *in)
{
    double sigma = fg_param(c, "sigma"), amount = fg_param(c, "amount");
    return (nc_tol){sharpen_tol(sigma, amount, fg_max_abs(in)), 0};
}

static void golden_compare(const fg_case *c, const tsr_image *in, const tsr_image *got,
                           const tsr_image *want, nc_tol tol, const char *what)
{
    sharpen_check(got, want, in, NULL, fg_param(c, "amount"), fg_param(c, "threshold"), tol.abs, 0,
                  what);
}

static void ref_matches_opencv(void **state)
{
    static const fg_golden g = {
        .node = "sharpen", .min_cases = 7, .tol = golden_tol, .compare = golden_compare};
    fg_golden_run(&g);
}

/* Tiles read their halo in full-image coordinates and compute in the same order: same bits. The
 * halo is up to 160 pixels, past the tiles and (sigma 40) past the image, so mirror folds. */
static void tiled_equals_whole(void **state)
{
    static const sharpen_case tp[] = {
        {"1.3", "1", "0", "clamp"},   {"3", "2", "0.05", "mirror"}, {"2.2", "0.5", "0", "zero"},
        {"12", "3", "0.1", "mirror"}, {"40", "1", "0", "mirror"},   {"40", "10", "0.02", "zero"},
    };
    static const int tiles[][2] = {{37, 19}, {7, 5}};
    for (size_t p = 0; p < sizeof tp / sizeof tp[0]; p++) {
        int ch = 1 + (int)(p % 4);
        tsr_node *n = sharpen_node(&tp[p]);
        tsr_image *in = fg_random_range(127, 129, ch, 77 + (uint32_t)p, -0.25f, 1.25f);
        char label[128];
        snprintf(label, sizeof label, "sigma=%s amount=%s threshold=%s edge=%s ch=%d", tp[p].sigma,
                 tp[p].amount, tp[p].threshold, tp[p].edge, ch);
        /* 7x5 tiles with a 321-tap kernel redo 65 times the work: left to the 37x19 run. */
        for (size_t t = 0; t < (atof(tp[p].sigma) > 20 ? 1 : 2); t++)
            nc_tiled_equals_whole(n, in, tiles[t], tiles[t], label);
        tsr_image_free(in);
        tsr__node_free(n);
    }
}

/* sharpen is blur.gaussian's output put through the formula in float, bit for bit: the same
 * blur code, then one rounding per operation. */
static void equals_blur_then_formula(void **state)
{
    static const sharpen_case cases[] = {{"1.7", "2.5", "0", "mirror"},
                                         {"0.8", "6", "0.04", "zero"}};
    for (size_t p = 0; p < 2; p++) {
        tsr_node *n = sharpen_node(&cases[p]), *b = blur_node(&cases[p]);
        tsr_image *in = fg_random_range(53, 41, 4, 123 + (uint32_t)p, -0.5f, 1.5f);
        float amount = (float)atof(cases[p].amount), threshold = (float)atof(cases[p].threshold);
        tsr_engine *engines[2] = {tu_engine_ref(), tu_engine_cl()};
        for (int e = 0; e < 2; e++) {
            tsr_image *got = tu_run(engines[e], n, in, 0, 0);
            tsr_image *want = tu_run(engines[e], b, in, 0, 0);
            size_t plane = (size_t)in->width * in->height;
            for (size_t i = 0; i < plane * 4; i++) {
                float v = in->data[i], d = v - want->data[i];
                want->data[i] = i >= plane * 3 ? v : (fabsf(d) < threshold ? v : v + amount * d);
            }
            nc_check(got, want, 0, 0,
                     e ? "cl vs blur.gaussian + formula" : "ref vs blur + formula");
            tsr_image_free(got);
            tsr_image_free(want);
        }
        tsr_image_free(in);
        tsr__node_free(n);
        tsr__node_free(b);
    }
}

/* The threshold is inclusive: a sample whose |in - blur| equals it exactly is sharpened, as
 * documented. The threshold is taken from the blur itself ("%.9g" reads back the same float). */
static void threshold_is_inclusive(void **state)
{
    static const sharpen_case bc = {"1.2", "2", "0", "clamp"};
    tsr_node *b = blur_node(&bc);
    tsr_image *in = tu_random_image(9, 7, 1, 4242);
    tsr_image *blurred = tu_run(tu_engine_ref(), b, in, 0, 0);
    size_t at = 0;
    for (size_t i = 1; i < 63; i++)
        if (fabsf(in->data[i] - blurred->data[i]) > fabsf(in->data[at] - blurred->data[at]))
            at = i;
    float d = in->data[at] - blurred->data[at];
    char t[64];
    snprintf(t, sizeof t, "%.9g", fabsf(d));
    const sharpen_case c = {"1.2", "2", t, "clamp"};
    tsr_node *n = sharpen_node(&c);
    tsr_engine *engines[2] = {tu_engine_ref(), tu_engine_cl()};
    for (int e = 0; e < 2; e++) {
        tsr_image *got = tu_run(engines[e], n, in, 0, 0);
        for (size_t i = 0; i < 63; i++) {
            float v = in->data[i], w = i == at ? v + 2.0f * d : v;
            if (memcmp(&got->data[i], &w, sizeof w) != 0)
                fail_msg("%s, threshold %s: sample %zu got %.9g, expected %.9g", e ? "cl" : "ref",
                         t, i, got->data[i], w);
        }
        tsr_image_free(got);
    }
    tsr_image_free(blurred);
    tsr_image_free(in);
    tsr__node_free(n);
    tsr__node_free(b);
}

/* Exact identities: amount 0 adds (+-)0; threshold 1 leaves every sample of a 0..1 image alone
 * (|in - blur| < 1 there); sigma 0.01 blurs to the input itself, so in - blur is 0. */
static void identities(void **state)
{
    static const sharpen_case cases[] = {{"3", "0", "0", "clamp"},
                                         {"5", "0", "0.3", "zero"},
                                         {"2", "10", "1", "mirror"},
                                         {"0.01", "7", "0", "zero"}};
    tsr_image *in = tu_random_image(45, 23, 4, 9);
    for (size_t p = 0; p < sizeof cases / sizeof cases[0]; p++) {
        tsr_node *n = sharpen_node(&cases[p]);
        tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
        tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
        char what[160];
        snprintf(what, sizeof what, "ref sigma=%s amount=%s threshold=%s", cases[p].sigma,
                 cases[p].amount, cases[p].threshold);
        nc_check(ref, in, 0, 0, what);
        what[0] = 'c', what[1] = 'l', what[2] = ' ';
        nc_check(cl, in, 0, 0, what);
        tsr_image_free(ref);
        tsr_image_free(cl);
        tsr__node_free(n);
    }
    /* A constant image has nothing to sharpen under clamp and mirror, up to the blur's rounding;
     * zero darkens the blur at the border, so the border brightens (overshoot, not clamped). */
    for (size_t i = 0; i < (size_t)in->width * in->height * in->channels; i++)
        in->data[i] = 0.625f;
    static const sharpen_case flat[] = {{"6", "3", "0", "clamp"}, {"6", "3", "0", "mirror"}};
    for (int e = 0; e < 2; e++) {
        tsr_node *n = sharpen_node(&flat[e]);
        tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
        nc_check(ref, in, sharpen_tol(6, 3, 1), 0, flat[e].edge);
        tsr_image_free(ref);
        tsr__node_free(n);
    }
    static const sharpen_case zero = {"2", "1", "0", "zero"};
    tsr_node *n = sharpen_node(&zero);
    tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
    assert_true(ref->data[0] > 0.625f * 1.5f); /* corner: blur about a quarter, 0.625 + ~0.47 */
    assert_true(fabsf(ref->data[11 * in->width + 22] - 0.625f) < 1e-6f);
    tsr_image_free(ref);
    tsr__node_free(n);
    tsr_image_free(in);
}

static void plan_grows_by_radius(void **state)
{
    static const sharpen_case c = {"2.5", "1", "0", "mirror"}; /* r = 10 */
    tsr_node *n = sharpen_node(&c);
    tsr_port_info info = {.width = 100, .height = 50, .channels = 4, .bit_depth = 8};
    tsr_rect out = {20, 0, 30, 16};
    tsr_plan p;
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &info, &out, &p);
    assert_int_equal(p.in[0].x, 10);
    assert_int_equal(p.in[0].y, -10);
    assert_int_equal(p.in[0].w, 50);
    assert_int_equal(p.in[0].h, 36);
    assert_int_equal(p.bufs[0].bytes, 21 * sizeof(float));
    /* Scratch: rows 0..25 (the top halo lies outside the image) x 30 columns x 3 colour planes:
     * alpha is copied, not blurred. */
    assert_int_equal(p.bufs[1].bytes, (size_t)26 * 30 * 3 * sizeof(float));
    info.channels = 1;
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &info, &out, &p);
    assert_int_equal(p.bufs[1].bytes, (size_t)26 * 30 * 1 * sizeof(float));
    tsr__node_free(n);
}

/* What the device really held at its peak, on a fresh engine whose pool has nothing cached:
 * input and output buffers plus exactly what plan() declared, each rounded to the pool's size
 * class as the planner counts them (the taps, RUN, and the scratch, TILE). */
static void plan_matches_device_peak(void **state)
{
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = getenv("TSR_TEST_DEVICE");
    char msg[1024] = "";
    tsr_engine *e = NULL;
    if (tsr_engine_new(&o, &e, msg, sizeof msg) != TSR_OK)
        fail_msg("cannot create engine: %s", msg);
    assert_false(tsr_engine_is_ref(e));
    static const sharpen_case c = {"3.1", "1.5", "0.01", "mirror"};
    tsr_node *n = sharpen_node(&c);
    tsr_image *in = tu_random_image(61, 47, 4, 3);
    tsr_port_info info = {.width = 61, .height = 47, .channels = 4, .bit_depth = 8};
    tsr_rect whole = {0, 0, 61, 47};
    tsr_plan p;
    memset(&p, 0, sizeof p);
    n->cls->plan(n, &info, &whole, &p);
    tsr_image *out = tu_run(e, n, in, 0, 0);
    tsr_pool_stats st;
    assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
    size_t image = tsr__pool_class_size((size_t)61 * 47 * 4 * sizeof(float));
    assert_int_equal(st.peak_in_use_bytes, 2 * image + tsr__pool_class_size(p.bufs[0].bytes) +
                                               tsr__pool_class_size(p.bufs[1].bytes));
    tsr_image_free(out);
    tsr_image_free(in);
    tsr__node_free(n);
    tsr_engine_free(e);
}

static void bad_params_rejected(void **state)
{
    static const char *bad[] = {"sigma=0",     "sigma=0.009", "sigma=100.5",     "amount=-0.01",
                                "amount=10.5", "amount=abc",  "threshold=-1e-9", "threshold=1.01",
                                "threshold=",  "edge=wrap",   "edge=reflect101", "strength=1"};
    static const char *good[] = {"sigma=0.01",  "sigma=100",   "amount=0",    "amount=10",
                                 "threshold=0", "threshold=1", "edge=mirror", "edge=zero"};
    nc_params_checked("sharpen", bad, sizeof bad / sizeof bad[0], good,
                      sizeof good / sizeof good[0]);
    /* Defaults: sigma 1, amount 1, threshold 0, clamp. */
    tsr_node *n = tu_node("sharpen", NULL, 0);
    assert_true(n->params[0].num == 1.0 && n->params[1].num == 1.0 && n->params[2].num == 0.0);
    assert_int_equal(n->params[3].ival, 0);
    tsr__node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cl_matches_ref),         cmocka_unit_test(ref_matches_opencv),
        cmocka_unit_test(tiled_equals_whole),     cmocka_unit_test(equals_blur_then_formula),
        cmocka_unit_test(threshold_is_inclusive), cmocka_unit_test(identities),
        cmocka_unit_test(plan_grows_by_radius),   cmocka_unit_test(plan_matches_device_peak),
        cmocka_unit_test(bad_params_rejected),
    };
    return cmocka_run_group_tests_name("sharpen", tests, NULL, NULL);
}
