/* Sliced kernel launches (engine/launch.c): a cancel is noticed inside one long launch (a blur of
 * an untiled 4000x3000 image, a large convolution layer) well within a second; slices of any
 * size give the same bits as one launch (blur, resize, network layers, sizes that are not
 * multiples of the work group); small launches of a timed kernel stay one launch.
 *
 * TSR_LAUNCH_BENCH=1 instead times a 2000x2000 blur enqueued whole against the default 20 ms
 * slices and smaller forced ones, untiled and tiled, and prints the overhead; it asserts
 * nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"
#include "testutil.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* An engine of the test's own: a fresh launch state (no kernel timed yet), and the test may
 * point its context's cancel flag anywhere. */
static tsr_engine *fresh_engine(void)
{
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = getenv("TSR_TEST_DEVICE");
    char msg[1024] = "";
    tsr_engine *e = NULL;
    if (tsr_engine_new(&o, &e, msg, sizeof msg))
        fail_msg("cannot create engine: %s", msg);
    if (tsr_engine_is_ref(e)) {
        tsr_engine_free(e);
        fail_msg("TSR_DEVICE=ref is set: the launch tests need a device");
    }
    return e;
}

static tsr_node *blur_node(const char *sigma, const char *edge)
{
    char s[64], ed[64];
    snprintf(s, sizeof s, "sigma=%s", sigma);
    snprintf(ed, sizeof ed, "edge=%s", edge);
    const char *kv[] = {s, ed};
    return tu_node("blur.gaussian", kv, 2);
}

static int same_bits(const tsr_image *a, const tsr_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->data, b->data, tsr__image_bytes(a->width, a->height, a->channels)) == 0;
}

/* ---- cancel ---------------------------------------------------------------------------------- */

typedef struct canceller {
    int *flag;
    const tsr__ctx *ctx; /* non-NULL: the delay starts when ctx enqueues its next slice */
    double delay, t_cancel;
} canceller;

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void *cancel_later(void *arg)
{
    canceller *c = arg;
    if (c->ctx) { /* at most 60 s: a run that never slices fails its own assertions */
        uint64_t n0 = tsr__launch_counts_of(c->ctx).slices;
        for (int i = 0; i < 60000 && tsr__launch_counts_of(c->ctx).slices == n0; i++)
            sleep_s(0.001);
    }
    sleep_s(c->delay);
    c->t_cancel = now();
    __atomic_store_n(c->flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Blur an untiled 4000x3000x3 image with sigma 30 (seconds of work in two launches) on e's own
 * context, cancelled 200 ms after the start, or after the first slice when in_kernel (the
 * upload before it takes a while here). Returns the time from the cancel to the return. */
static double cancel_blur(tsr_engine *e, tsr_image *in, int in_kernel, const char *what)
{
    tsr_node *n = blur_node("30", "mirror");
    int flag = 0;
    e->ctx0.cancel = &flag;
    tsr__launch_counts c0 = tsr__launch_counts_of(&e->ctx0);
    canceller c = {&flag, in_kernel ? &e->ctx0 : NULL, 0.2, 0};
    pthread_t th;
    double t0 = now();
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &c), 0);
    tsr_image *out = NULL;
    tsr_status rc = tsr__run_node(e, n, &in, 0, 0, &out);
    double t_ret = now();
    pthread_join(th, NULL);
    e->ctx0.cancel = NULL;
    tsr__node_free(n);
    tsr__launch_counts c1 = tsr__launch_counts_of(&e->ctx0);
    double latency = t_ret - c.t_cancel;
    printf("cancel %s: returned %.3f s after the start, %.1f ms after the cancel (%llu slices "
           "in %llu sliced launches): %s\n",
           what, t_ret - t0, latency * 1e3, (unsigned long long)(c1.slices - c0.slices),
           (unsigned long long)(c1.sliced - c0.sliced), tsr_errmsg(e));
    if (rc != TSR_ERR_CANCELLED)
        tsr_image_free(out);
    assert_int_equal(rc, TSR_ERR_CANCELLED);
    assert_non_null(strstr(tsr_errmsg(e), "cancelled in node '"));
    assert_non_null(strstr(tsr_errmsg(e), "(blur.gaussian), kernel 'tsr_blur_gaussian_"));
    if (in_kernel)
        assert_true(c1.slices - c0.slices > 1);
    /* A loose bound for a shared 2-core machine; the design target is ~40 ms (the slice running
     * when the flag is set, plus the one queued behind it). */
    assert_true(latency < 1.0);
    return latency;
}

static void cancel_inside_one_launch(void **state)
{
    tsr_engine *e = fresh_engine();
    tsr_image *in = tu_random_image(4000, 3000, 3, 7);
    /* 200 ms after the start, wherever the run is then (here: often still uploading). */
    cancel_blur(e, in, 0, "200 ms after the start");
    tsr_engine_free(e);
    /* Inside the launch, kernels never timed: the first slices are the conservative ones. */
    e = fresh_engine();
    cancel_blur(e, in, 1, "inside the launch, cold");
    /* After a smaller blur with the same radius: slices from the measured rate. */
    tsr_image *small = tu_random_image(800, 600, 3, 8);
    tsr_node *n = blur_node("30", "mirror");
    tsr_image *out = tu_run(e, n, small, 0, 0);
    tsr_image_free(out);
    tsr_image_free(small);
    cancel_blur(e, in, 1, "inside the launch, warm");
    /* The flag is gone: the same context runs to the end again. */
    small = tu_random_image(97, 45, 3, 9);
    out = tu_run(e, n, small, 0, 0);
    tsr_image_free(out);
    tsr_image_free(small);
    tsr__node_free(n);
    tsr_image_free(in);
    tsr_engine_free(e);
}

/* ---- network layers -------------------------------------------------------------------------- */

static float *random_floats(size_t n, float scale, uint32_t seed)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(v);
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        v[i] = (float)((s >> 8) * (2.0 / 16777216.0) - 1.0) * scale;
    }
    return v;
}

/* A 3x3 "same" convolution ic -> oc with bias and leaky ReLU. */
static tsr_nn_layer conv_layer(int ic, int oc, uint32_t seed)
{
    tsr_nn_layer L;
    memset(&L, 0, sizeof L);
    L.type = TSR_NN_CONVOLUTION;
    L.name = "conv";
    L.n_in = L.n_out = 1;
    L.num_output = oc;
    L.num_input = ic;
    L.kernel_w = L.kernel_h = 3;
    L.dilation_w = L.dilation_h = L.stride_w = L.stride_h = 1;
    L.pad_top = L.pad_bottom = L.pad_left = L.pad_right = 1;
    L.height_scale = L.width_scale = 1.0f;
    L.upscale_factor = 1;
    L.activation = TSR_NN_ACT_LEAKY;
    L.activation_params[0] = 0.1f;
    L.n_weight = (size_t)oc * ic * 9;
    L.weight_data_size = (int)L.n_weight;
    L.weight = random_floats(L.n_weight, 0.2f, seed);
    L.bias_term = 1;
    L.n_bias = (size_t)oc;
    L.bias = random_floats(L.n_bias, 0.5f, seed + 1);
    return L;
}

/* The layer on e's own context over input `in` (ic x h x w); the output into out (oc x h x w
 * floats). Returns the layer's status (cancel included). */
static tsr_status run_layer(tsr_engine *e, const tsr_nn_layer *L, const float *in, int h, int w,
                            float *out)
{
    tsr_exec ex;
    tsr__exec_init(&ex, e, NULL);
    cl_command_queue q = e->cl->queue;
    tsr_nn_shape is = {3, L->num_input, h, w}, os = {3, L->num_output, h, w};
    size_t ibytes = tsr__nn_count(is) * sizeof(float), obytes = tsr__nn_count(os) * sizeof(float);
    size_t wbytes = tsr__nn_cl_weight_bytes(L), sbytes = tsr__nn_cl_scratch_bytes(L, &is, &os);
    cl_mem din = NULL, dout = NULL, wt = NULL, scratch = NULL;
    assert_int_equal(tsr__pool_alloc(e->pool, ibytes, &din, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, obytes, &dout, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, wbytes, &wt, tsr__eerr(e)), TSR_OK);
    if (sbytes)
        assert_int_equal(tsr__pool_alloc(e->pool, sbytes, &scratch, tsr__eerr(e)), TSR_OK);
    void *host = malloc(wbytes);
    assert_non_null(host);
    tsr__nn_cl_pack_weights(L, host);
    assert_int_equal(clEnqueueWriteBuffer(q, wt, CL_TRUE, 0, wbytes, host, 0, NULL, NULL),
                     CL_SUCCESS);
    free(host);
    assert_int_equal(clEnqueueWriteBuffer(q, din, CL_TRUE, 0, ibytes, in, 0, NULL, NULL),
                     CL_SUCCESS);
    tsr_status rc = tsr__nn_cl_layer(&ex, L, &din, &is, &dout, &os, wt, scratch);
    assert_int_equal(clFinish(q), CL_SUCCESS);
    if (!rc)
        assert_int_equal(clEnqueueReadBuffer(q, dout, CL_TRUE, 0, obytes, out, 0, NULL, NULL),
                         CL_SUCCESS);
    tsr__pool_release(e->pool, din);
    tsr__pool_release(e->pool, dout);
    tsr__pool_release(e->pool, wt);
    if (scratch)
        tsr__pool_release(e->pool, scratch);
    return rc;
}

static void nn_slices_match_whole(void **state)
{
    tsr_engine *e = tu_engine_cl();
    static const int shapes[][4] = {{5, 13, 67, 45}, {16, 8, 130, 3}, {3, 16, 1, 1}};
    static const size_t caps[] = {1, 3000};
    int cases = 0;
    for (int wino = 0; wino < 2; wino++)
        for (int px = 4; px <= 16; px += 12)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int ic = shapes[s][0], oc = shapes[s][1], h = shapes[s][2], w = shapes[s][3];
                tsr__nn_cl_no_winograd = !wino;
                tsr__nn_cl_px = px;
                tsr_nn_layer L = conv_layer(ic, oc, 3 + (uint32_t)s);
                float *in = random_floats((size_t)ic * h * w, 1.0f, 11 + (uint32_t)s);
                size_t n = (size_t)oc * h * w;
                float *whole = malloc(n * sizeof(float)), *sliced = malloc(n * sizeof(float));
                assert_true(whole && sliced);
                tsr__launch_whole = 1;
                assert_int_equal(run_layer(e, &L, in, h, w, whole), TSR_OK);
                tsr__launch_whole = 0;
                for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
                    tsr__launch_max_items = caps[c];
                    memset(sliced, 0xff, n * sizeof(float));
                    assert_int_equal(run_layer(e, &L, in, h, w, sliced), TSR_OK);
                    tsr__launch_max_items = 0;
                    if (memcmp(whole, sliced, n * sizeof(float)))
                        fail_msg("conv %d->%d %dx%d (winograd %d, px %d) differs in slices of "
                                 "at most %zu items",
                                 ic, oc, h, w, wino, px, caps[c]);
                    cases++;
                }
                free(whole);
                free(sliced);
                free(in);
                free(L.weight);
                free(L.bias);
            }
    tsr__nn_cl_no_winograd = 0;
    tsr__nn_cl_px = 0;
    printf("network layers: %d sliced runs bit-identical to whole launches\n", cases);
}

/* A direct 3x3 convolution 32 -> 32 over 1024x768 (about 15 GFLOP in one launch): cancelled
 * 80 ms after its first slice (the layer takes about 0.4 s here, with or without ASan). */
static void nn_cancel_inside_one_layer(void **state)
{
    tsr_engine *e = fresh_engine();
    int ic = 32, oc = 32, h = 768, w = 1024;
    tsr__nn_cl_no_winograd = 1;
    tsr_nn_layer L = conv_layer(ic, oc, 5);
    float *in = random_floats((size_t)ic * h * w, 1.0f, 17);
    float *out = malloc((size_t)oc * h * w * sizeof(float));
    assert_non_null(out);
    int flag = 0;
    e->ctx0.cancel = &flag;
    canceller c = {&flag, &e->ctx0, 0.08, 0};
    pthread_t th;
    double t0 = now();
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &c), 0);
    tsr_status rc = run_layer(e, &L, in, h, w, out);
    double t_ret = now();
    pthread_join(th, NULL);
    e->ctx0.cancel = NULL;
    tsr__nn_cl_no_winograd = 0;
    tsr__launch_counts n = tsr__launch_counts_of(&e->ctx0);
    double latency = t_ret - c.t_cancel;
    printf("cancel in a layer: returned %.3f s after the start, %.1f ms after the cancel (%llu "
           "slices): %s\n",
           t_ret - t0, latency * 1e3, (unsigned long long)n.slices, tsr_errmsg(e));
    assert_int_equal(rc, TSR_ERR_CANCELLED);
    assert_non_null(strstr(tsr_errmsg(e), "kernel 'tsr_nn_conv_oc"));
    assert_true(n.slices > 1);
    assert_true(latency < 1.0);
    free(in);
    free(out);
    free(L.weight);
    free(L.bias);
    tsr_engine_free(e);
}

/* ---- slices give the same bits --------------------------------------------------------------- */

/* Whole launches, then slices capped at each of `caps` work items, then the default sizes: the
 * same bits every time, and the smallest cap really cuts. */
static void check_node(tsr_engine *e, const tsr_node *n, tsr_image *in, const char *what)
{
    static const size_t caps[] = {1, 700, 5000, 100000, 0}; /* 0: the default sizes */
    tsr__launch_whole = 1;
    tsr_image *whole = tu_run(e, n, in, 0, 0);
    tsr__launch_whole = 0;
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        tsr__launch_max_items = caps[c];
        tsr__launch_counts c0 = tsr__launch_counts_of(&e->ctx0);
        tsr_image *sliced = tu_run(e, n, in, 0, 0);
        tsr__launch_counts c1 = tsr__launch_counts_of(&e->ctx0);
        tsr__launch_max_items = 0;
        int same = same_bits(whole, sliced), big = sliced->width * sliced->height > 256;
        tsr_image_free(sliced);
        if (!same)
            fail_msg("%s on %dx%dx%d: slices of at most %zu items differ from one launch", what,
                     in->width, in->height, in->channels, caps[c]);
        if (c == 0 && big) /* one work group per slice: more than one group, more than 1 slice */
            assert_true(c1.slices - c0.slices >= 2);
    }
    tsr_image_free(whole);
}

static const int odd_sizes[][2] = {{1, 1}, {13, 7}, {1031, 23}, {17, 1009}, {333, 250}};

static void blur_slices_match_whole(void **state)
{
    tsr_engine *e = tu_engine_cl();
    static const char *const sig[][2] = {{"0.5", "clamp"}, {"7.3", "zero"}, {"30", "mirror"}};
    for (size_t s = 0; s < sizeof odd_sizes / sizeof odd_sizes[0]; s++)
        for (size_t p = 0; p < sizeof sig / sizeof sig[0]; p++) {
            int ch = 1 + (int)((s + p) % 4);
            tsr_image *in = tu_random_image(odd_sizes[s][0], odd_sizes[s][1], ch, 21 + (uint32_t)s);
            tsr_node *n = blur_node(sig[p][0], sig[p][1]);
            char what[64];
            snprintf(what, sizeof what, "blur sigma=%s edge=%s", sig[p][0], sig[p][1]);
            check_node(e, n, in, what);
            tsr__node_free(n);
            tsr_image_free(in);
        }
}

static void resize_slices_match_whole(void **state)
{
    tsr_engine *e = tu_engine_cl();
    static const char *const cases[][3] = {{"filter=lanczos3", "width=301", "height=203"},
                                           {"filter=bilinear", "scale=0.37", NULL},
                                           {"filter=bicubic", "width=1000", "height=31"},
                                           {"filter=nearest", "scale=1.7", NULL}};
    for (size_t s = 1; s < sizeof odd_sizes / sizeof odd_sizes[0]; s++)
        for (size_t p = 0; p < sizeof cases / sizeof cases[0]; p++) {
            tsr_image *in = tu_random_image(odd_sizes[s][0], odd_sizes[s][1], 3, 31 + (uint32_t)s);
            const char *kv[] = {cases[p][0], cases[p][1], cases[p][2]};
            tsr_node *n = tu_node("resize", kv, cases[p][2] ? 3 : 2);
            char what[96];
            snprintf(what, sizeof what, "resize %s %s %s", cases[p][0], cases[p][1],
                     cases[p][2] ? cases[p][2] : "");
            check_node(e, n, in, what);
            tsr__node_free(n);
            tsr_image_free(in);
        }
}

/* ---- small launches stay whole --------------------------------------------------------------- */

/* A 256x256 blur: two launches of a few thousand work items (16x4 pixels each), well under a
 * millisecond, of more than one work group (a launch of one group is never sliced). The
 * first run times the kernels (never seen: sliced to time them); after that they are
 * enqueued whole, with no wait. A slice slowed down by another process can make the next run
 * slice again (and re-time): of five runs, at least four must be whole. */
static void small_launches_stay_whole(void **state)
{
    tsr_engine *e = fresh_engine();
    tsr_image *in = tu_random_image(256, 256, 3, 41);
    tsr_node *n = blur_node("2", "clamp");
    tsr__launch_counts c0 = tsr__launch_counts_of(&e->ctx0);
    tsr_image *out = tu_run(e, n, in, 0, 0);
    tsr_image_free(out);
    tsr__launch_counts c1 = tsr__launch_counts_of(&e->ctx0);
    assert_int_equal(c1.sliced - c0.sliced, 2);
    int whole_runs = 0;
    for (int i = 0; i < 5; i++) {
        c0 = tsr__launch_counts_of(&e->ctx0);
        out = tu_run(e, n, in, 0, 0);
        tsr_image_free(out);
        c1 = tsr__launch_counts_of(&e->ctx0);
        assert_int_equal(c1.launches - c0.launches, 2);
        whole_runs += c1.sliced == c0.sliced;
    }
    assert_true(whole_runs >= 4);
    tsr__node_free(n);
    tsr_image_free(in);
    tsr_engine_free(e);
}

/* ---- TSR_LAUNCH_BENCH=1: the cost of slicing ------------------------------------------------- */

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Wall seconds; *cpu: the process's CPU seconds (this thread and the device's). */
static double time_blur(tsr_engine *e, const tsr_node *n, tsr_image *in, int tile, double *cpu)
{
    double t0 = now(), c0 = cpu_s();
    tsr_image *out = tu_run(e, n, in, tile, tile);
    double t = now() - t0;
    if (cpu)
        *cpu = cpu_s() - c0;
    tsr_image_free(out);
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Untiled and in 256x256 tiles: whole launches (as before slicing), the default 20 ms slices,
 * and slices forced down to 2^14 work items (1-5 ms here), interleaved, 7 runs each: the best
 * and the median wall time, and the best CPU time of the process (host and device threads;
 * less sensitive to other processes than wall time, on a shared machine). */
static void bench(void **state)
{
    enum { REPS = 7, MODES = 3 };
    static const char *const mode_name[MODES] = {"whole", "20 ms slices", "2^14-item slices"};
    tsr_engine *e = fresh_engine();
    static const char *const sigmas[] = {"3", "10", "30"};
    tsr_image *in = tu_random_image(2000, 2000, 3, 51);
    for (int tile = 0; tile <= 256; tile += 256)
        for (size_t s = 0; s < sizeof sigmas / sizeof sigmas[0]; s++) {
            tsr_node *n = blur_node(sigmas[s], "mirror");
            time_blur(e, n, in, tile, NULL); /* builds, times the kernels, warms the pool */
            double t[MODES][REPS], cpu[MODES][REPS];
            uint64_t slices[MODES] = {0, 0, 0};
            for (int r = 0; r < REPS; r++)
                for (int m = 0; m < MODES; m++) {
                    tsr__launch_whole = m == 0;
                    tsr__launch_max_items = m == 2 ? 16384 : 0;
                    tsr__launch_counts c0 = tsr__launch_counts_of(&e->ctx0);
                    t[m][r] = time_blur(e, n, in, tile, &cpu[m][r]);
                    slices[m] = tsr__launch_counts_of(&e->ctx0).slices - c0.slices;
                }
            tsr__launch_whole = 0;
            tsr__launch_max_items = 0;
            for (int m = 0; m < MODES; m++) {
                qsort(t[m], REPS, sizeof(double), cmp_double);
                qsort(cpu[m], REPS, sizeof(double), cmp_double);
            }
            printf("blur 2000x2000x3 sigma %-2s %s:", sigmas[s],
                   tile ? "256x256 tiles" : "untiled");
            for (int m = 0; m < MODES; m++)
                printf("\n  %-16s %4llu slices: %7.1f ms (median %7.1f) %+5.1f%%, cpu %7.1f ms "
                       "%+5.1f%%",
                       mode_name[m], (unsigned long long)slices[m], t[m][0] * 1e3,
                       t[m][REPS / 2] * 1e3, (t[m][0] / t[0][0] - 1) * 100, cpu[m][0] * 1e3,
                       (cpu[m][0] / cpu[0][0] - 1) * 100);
            printf("\n");
            tsr__node_free(n);
        }
    tsr_image_free(in);
    tsr_engine_free(e);
}

int main(void)
{
    const char *b = getenv("TSR_LAUNCH_BENCH");
    if (b && *b && strcmp(b, "0")) {
        const struct CMUnitTest t[] = {cmocka_unit_test(bench)};
        return cmocka_run_group_tests(t, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_launches_stay_whole), cmocka_unit_test(blur_slices_match_whole),
        cmocka_unit_test(resize_slices_match_whole), cmocka_unit_test(nn_slices_match_whole),
        cmocka_unit_test(cancel_inside_one_launch),  cmocka_unit_test(nn_cancel_inside_one_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
