/* Tiling under the graph executor (tsr_graph_run with forced tile sizes), on the OpenCL and the
 * reference engine:
 * - seamless tiles: for every processing node type of the registry and for chains with
 *   accumulated halos, the tiled output is bit-identical to the untiled one. Exact twice over:
 *   the float32 image that reaches the sink is compared bit for bit (graphrun.h captures it
 *   before any quantisation), and the 16-bit PNG written by image.save must be the same bytes.
 * - the planner: deterministic (same text twice, on a fresh engine, and equal to a pinned
 *   plan), strips before squares, the largest tile that fits, and a budget too small for the
 *   smallest tile refused before any pixel is read.
 * - memory: for several graphs and budgets from 16 MiB to 1 GiB, the pool's measured peak of
 *   held bytes never passes the budget, no allocation is refused, and the planner's estimate E
 *   is honest against the measured peak of bytes in use M: M <= E <= 1.1 M (ESTIMATE_FACTOR
 *   says why). */
#include "graphrun.h"

static char dir[512];

/* ---- seamless tiles, node by node ----------------------------------------------------------- */

/* Non-trivial params per processing node type. Every registered type that is neither a source
 * nor a sink must have at least one line: a new node fails this test until it is added. */
typedef struct node_case {
    const char *type;
    const char *params; /* YAML flow mapping */
    int channels;       /* of the source image */
} node_case;

static const node_case node_cases[] = {
    {"blur.gaussian", "{ sigma: 2.5, edge: mirror }", 3},
    {"blur.gaussian", "{ sigma: 1.2, edge: zero }", 4},
    {"blur.gaussian", "{ sigma: 0.7, edge: clamp }", 1},
    {"resize", "{ scale: 1.7, filter: lanczos3 }", 3},
    {"resize", "{ scale: 0.37, filter: mitchell }", 4},
    {"resize", "{ width: 90, filter: bicubic }", 2},
    {"resize", "{ width: 50, height: 70, filter: bilinear }", 3},
    {"resize", "{ scale: 2.3, filter: nearest }", 1},
    {"resize", "{ scale: 0.45, filter: nearest }", 3},
    {"resize", "{ scale: 0.6, filter: lanczos3 }", 3},
    {"adjust.brightness_contrast", "{ brightness: 0.15, contrast: -0.3 }", 3},
    {"adjust.brightness_contrast", "{ brightness: -0.2, contrast: 0.6, clamp: false }", 4},
    {"adjust.gamma", "{ gamma: 2.2 }", 4},
    {"adjust.gamma", "{ gamma: 0.45 }", 1},
    {"adjust.invert", "{ }", 2},
    {"adjust.invert", "{ }", 3},
    {"color.grayscale", "{ method: rec709 }", 3},
    {"color.grayscale", "{ method: average, keep_channels: true }", 4},
    {"color.grayscale", "{ method: rec601 }", 4},
    {"sharpen", "{ sigma: 1.5, amount: 1.2, threshold: 0.05, edge: mirror }", 3},
    {"sharpen", "{ sigma: 0.8, amount: 2.5, edge: zero }", 4},
    {"sharpen", "{ sigma: 3, amount: 0.7 }", 1},
};
#define N_NODE_CASES ((int)(sizeof node_cases / sizeof node_cases[0]))

/* Forced tile sizes, in each stage's output pixels; 4096 means the whole side (the planner clips
 * a forced size to the image), so 1 x 4096 is one-column strips. */
static const int tilings[][2] = {{7, 5}, {37, 19}, {64, 64}, {1, 4096}, {4096, 1}, {13, 4096}};
#define N_TILINGS ((int)(sizeof tilings / sizeof tilings[0]))

#define SRC_W 61 /* odd sizes: no tile size divides them */
#define SRC_H 47
#define TINY_W 11 /* for 1x1 tiles */
#define TINY_H 9

static int setup(void **state)
{
    gr_mkdtemp(dir, sizeof dir, "tiling");
    char path[700];
    for (int c = 1; c <= 4; c++) {
        snprintf(path, sizeof path, "%s/src%d.png", dir, c);
        gr_write_random_png(path, SRC_W, SRC_H, c, 100u + (uint32_t)c);
        snprintf(path, sizeof path, "%s/tiny%d.png", dir, c);
        gr_write_random_png(path, TINY_W, TINY_H, c, 200u + (uint32_t)c);
    }
    return 0;
}

static int teardown(void **state)
{
    gr_rmdir(dir);
    return 0;
}

/* Tiles the plan made for forced size tw x th: the sum over its stages. */
static int64_t planned_tiles(tsr_engine *e, tsr_graph *g, int tw, int th)
{
    tsr__plan p;
    assert_int_equal(tsr__plan_make(e, g, tw, th, &p), TSR_OK);
    int64_t n = 0;
    for (int i = 0; i < p.n_stages; i++) {
        const tsr_port_info *o = &g->nodes[p.stages[i].root].out_info[0];
        int w = tw < o->width ? tw : o->width, h = th < o->height ? th : o->height;
        n += (int64_t)((o->width + w - 1) / w) * ((o->height + h - 1) / h);
    }
    tsr__plan_clear(&p);
    return n;
}

/* Run the graph untiled, then with every tile size of the list: every captured sink must be
 * bit-identical to the untiled run, and the 16-bit PNG that the graph's "out" sink writes to
 * <dir>/out.png the same bytes. Returns the number of tiled runs. */
static int check_seamless(tsr_engine *e, const char *yaml, const char *what, const int (*sizes)[2],
                          int n_sizes)
{
    char out[700], base[700];
    snprintf(out, sizeof out, "%s/out.png", dir);
    snprintf(base, sizeof base, "%s/base.png", dir);
    tsr_graph *g = gr_load(e, yaml);
    gr_result ref, r;
    gr_run(e, g, 0, 0, &ref);
    if (ref.rc)
        fail_msg("%s, untiled: %s", what, ref.msg);
    /* Untiled means one tile per stage. */
    assert_int_equal(gr_stat(ref.stats, "plan.tiles"), gr_stat(ref.stats, "plan.stages"));
    assert_true(ref.n_caps >= 1);
    assert_int_equal(rename(out, base), 0);
    for (int t = 0; t < n_sizes; t++) {
        int tw = sizes[t][0], th = sizes[t][1];
        gr_run(e, g, tw, th, &r);
        if (r.rc)
            fail_msg("%s, tiles %dx%d: %s", what, tw, th, r.msg);
        /* The forced size was really used. */
        assert_int_equal(gr_stat(r.stats, "plan.tiles"), planned_tiles(e, g, tw, th));
        assert_int_equal(r.n_caps, ref.n_caps);
        for (int i = 0; i < ref.n_caps; i++) {
            const tsr_image *a = ref.caps[i].img, *b = gr_cap_of(&r, ref.caps[i].id);
            if (!gr_same_bits(a, b))
                fail_msg("%s on %s, tiles %dx%d: sink '%s' differs from the untiled run (max "
                         "difference %g)",
                         what, tsr_engine_is_ref(e) ? "ref" : "OpenCL", tw, th, ref.caps[i].id,
                         tu_max_diff(a, b));
        }
        if (!gr_same_file(out, base))
            fail_msg("%s, tiles %dx%d: the PNG differs from the untiled one", what, tw, th);
        assert_int_equal(unlink(out), 0);
        gr_result_clear(&r);
    }
    assert_int_equal(unlink(base), 0);
    gr_result_clear(&ref);
    tsr_graph_free(g);
    return n_sizes;
}

static const char *node_yaml(char *buf, size_t len, const node_case *c, const char *stem)
{
    snprintf(
        buf, len,
        "version: 1\n"
        "nodes:\n"
        "  src: { type: image.load, params: { path: '%s/%s%d.png' } }\n"
        "  n: { type: %s, inputs: { image: src.image }, params: %s }\n"
        "  out: { type: image.save, inputs: { image: n.image },\n"
        "         params: { path: '%s/out.png', bit_depth: 16 } }\n"
        "  cap_n: { type: image.save, inputs: { image: n.image }, params: { path: cap_n.png } }\n",
        dir, stem, c->channels, c->type, c->params, dir);
    return buf;
}

static void every_node_type_has_a_case(void **state)
{
    int processing = 0;
    for (int i = 0; i < tsr__node_class_count; i++) {
        const tsr_node_class *cls = tsr__node_classes[i];
        if (cls->flags & (TSR_NODE_SOURCE | TSR_NODE_SINK | TSR_NODE_VALUE))
            continue;
        /* A node with a model input (upscale) has its tiling tests in test_upscale.c, on every
         * bundled model. */
        int model_input = 0;
        for (int p = 0; p < cls->n_inputs; p++)
            model_input |= cls->inputs[p].type == TSR_PORT_MODEL;
        if (model_input)
            continue;
        processing++;
        int found = 0;
        for (int k = 0; k < N_NODE_CASES; k++)
            found |= strcmp(node_cases[k].type, cls->name) == 0;
        if (!found)
            fail_msg("node type '%s' has no line in node_cases[] of %s: add one with "
                     "non-trivial params so that its tiling is tested",
                     cls->name, __FILE__);
    }
    assert_true(processing >= 6);
}

static void nodes_seamless(tsr_engine *e)
{
    char yaml[2048], what[256];
    int runs = 0;
    for (int k = 0; k < N_NODE_CASES; k++) {
        const node_case *c = &node_cases[k];
        snprintf(what, sizeof what, "%s %s (%d channels)", c->type, c->params, c->channels);
        runs += check_seamless(e, node_yaml(yaml, sizeof yaml, c, "src"), what, tilings, N_TILINGS);
        /* The extreme: one output pixel per tile. */
        static const int one[][2] = {{1, 1}};
        runs += check_seamless(e, node_yaml(yaml, sizeof yaml, c, "tiny"), what, one, 1);
    }
    printf("%d tiled runs on %s, all bit-identical to the untiled runs\n", runs,
           tsr_engine_is_ref(e) ? "the reference engine" : tsr_engine_device(e)->name);
}

static void nodes_seamless_cl(void **state)
{
    nodes_seamless(tu_engine_cl());
}

static void nodes_seamless_ref(void **state)
{
    nodes_seamless(tu_engine_ref());
}

/* ---- seamless tiles, chains ----------------------------------------------------------------- */

static const char *const chains[] = {
    /* Accumulated halos in one stage: blur -> upscale -> blur -> pointwise. */
    "  a: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 3 } }\n"
    "  b: { type: resize, inputs: { image: a.image }, params: { scale: 1.5 } }\n"
    "  c: { type: blur.gaussian, inputs: { image: b.image },\n"
    "       params: { sigma: 1.2, edge: mirror } }\n"
    "  d: { type: adjust.gamma, inputs: { image: c.image }, params: { gamma: 1.8 } }\n"
    "  out: { type: image.save, inputs: { image: d.image },\n"
    "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
    "  cap_d: { type: image.save, inputs: { image: d.image }, params: { path: cap_d.png } }\n",
    /* Fan-out: the blur feeds two branches, so it is materialised and three stages run. */
    "  a: { type: blur.gaussian, inputs: { image: src.image },\n"
    "       params: { sigma: 2, edge: mirror } }\n"
    "  b: { type: resize, inputs: { image: a.image },\n"
    "       params: { scale: 0.5, filter: bilinear } }\n"
    "  c: { type: adjust.invert, inputs: { image: b.image } }\n"
    "  d: { type: adjust.brightness_contrast, inputs: { image: a.image },\n"
    "       params: { brightness: 0.1, contrast: 0.4 } }\n"
    "  out: { type: image.save, inputs: { image: c.image },\n"
    "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
    "  cap_c: { type: image.save, inputs: { image: c.image }, params: { path: cap_c.png } }\n"
    "  cap_d: { type: image.save, inputs: { image: d.image }, params: { path: cap_d.png } }\n"
    "  cap_a: { type: image.save, inputs: { image: a.image }, params: { path: cap_a.png } }\n",
    /* Ending in a downscale: the last node reads a large input area per output pixel. */
    "  a: { type: resize, inputs: { image: src.image },\n"
    "       params: { scale: 1.3, filter: bicubic } }\n"
    "  b: { type: blur.gaussian, inputs: { image: a.image }, params: { sigma: 1.5 } }\n"
    "  c: { type: adjust.brightness_contrast, inputs: { image: b.image },\n"
    "       params: { contrast: -0.25 } }\n"
    "  d: { type: resize, inputs: { image: c.image },\n"
    "       params: { scale: 0.37, filter: mitchell } }\n"
    "  out: { type: image.save, inputs: { image: d.image },\n"
    "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
    "  cap_d: { type: image.save, inputs: { image: d.image }, params: { path: cap_d.png } }\n",
    /* Channel change, width-only resize, zero edges, then a nearest reduction. */
    "  a: { type: color.grayscale, inputs: { image: src.image } }\n"
    "  b: { type: resize, inputs: { image: a.image }, params: { width: 150 } }\n"
    "  c: { type: blur.gaussian, inputs: { image: b.image },\n"
    "       params: { sigma: 0.8, edge: zero } }\n"
    "  d: { type: resize, inputs: { image: c.image },\n"
    "       params: { scale: 0.55, filter: nearest } }\n"
    "  e: { type: adjust.invert, inputs: { image: d.image } }\n"
    "  out: { type: image.save, inputs: { image: e.image },\n"
    "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
    "  cap_e: { type: image.save, inputs: { image: e.image }, params: { path: cap_e.png } }\n",
    /* The benchmark's chain: blur -> resize x2 -> sharpen. */
    "  a: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 1.1 } }\n"
    "  b: { type: resize, inputs: { image: a.image }, params: { scale: 2 } }\n"
    "  c: { type: sharpen, inputs: { image: b.image },\n"
    "       params: { sigma: 1.4, amount: 1.5, threshold: 0.02 } }\n"
    "  out: { type: image.save, inputs: { image: c.image },\n"
    "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
    "  cap_c: { type: image.save, inputs: { image: c.image }, params: { path: cap_c.png } }\n",
};
#define N_CHAINS ((int)(sizeof chains / sizeof chains[0]))

static void chains_seamless(tsr_engine *e)
{
    static const int sizes[][2] = {{7, 5}, {37, 19}, {64, 64}, {1, 4096}, {4096, 1}, {3, 2}};
    char yaml[4096], nodes[2048], what[64];
    for (int k = 0; k < N_CHAINS; k++)
        for (int ch = 3; ch <= 4; ch++) {
            snprintf(nodes, sizeof nodes, chains[k], dir);
            snprintf(yaml, sizeof yaml,
                     "version: 1\nnodes:\n"
                     "  src: { type: image.load, params: { path: '%s/src%d.png' } }\n%s",
                     dir, ch, nodes);
            snprintf(what, sizeof what, "chain %d (%d channels)", k + 1, ch);
            check_seamless(e, yaml, what, sizes, (int)(sizeof sizes / sizeof sizes[0]));
        }
}

static void chains_seamless_cl(void **state)
{
    chains_seamless(tu_engine_cl());
}

static void chains_seamless_ref(void **state)
{
    chains_seamless(tu_engine_ref());
}

/* ---- the planner -------------------------------------------------------------------------- */

/* A 1600x1200 RGB PNG, and a copy with its data cut in half for the planner's tests: the planner
 * reads headers only, so they must pass on it, and a test that read pixels would fail with a
 * decode error. The memory test runs the intact one. */
#define BIG_W 1600
#define BIG_H 1200

static void write_truncated(const char *good, const char *cut)
{
    size_t len;
    unsigned char *buf = tu_slurp(good, &len);
    FILE *f = fopen(cut, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len / 2, f), len / 2);
    assert_int_equal(fclose(f), 0);
    free(buf);
}

static void big_sources(char *good, char *cut, size_t len)
{
    snprintf(good, len, "%s/big.png", dir);
    snprintf(cut, len, "%s/big-cut.png", dir);
    if (gr_exists(good))
        return;
    /* A smooth gradient with a little noise: compresses, so writing and reading it is cheap. */
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new(BIG_W, BIG_H, 3, &img), TSR_OK);
    uint32_t s = 7;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < BIG_H; y++)
            for (int x = 0; x < BIG_W; x++) {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                img->data[((size_t)c * BIG_H + y) * BIG_W + x] =
                    (float)((x + 2 * y + 600 * c) % 4000) / 4000.0f + (float)(s >> 24) / 4096.0f;
            }
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.compression = 1;
    assert_int_equal(tsr_image_write(tu_engine_ref(), img, good, &o), TSR_OK);
    tsr_image_free(img);
    write_truncated(good, cut);
}

/* Three stages: blur materialised for two branches, one of them upscaling. */
static const char *plan_graph_fmt =
    "version: 1\n"
    "nodes:\n"
    "  src: { type: image.load, params: { path: '%1$s' } }\n"
    "  blur: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 3 } }\n"
    "  up: { type: resize, inputs: { image: blur.image }, params: { scale: 1.5 } }\n"
    "  gam: { type: adjust.gamma, inputs: { image: up.image }, params: { gamma: 2.2 } }\n"
    "  inv: { type: adjust.invert, inputs: { image: blur.image } }\n"
    "  out1: { type: image.save, inputs: { image: gam.image }, params: { path: '%2$s/o1.png' } }\n"
    "  out2: { type: image.save, inputs: { image: inv.image }, params: { path: '%2$s/o2.png' } }\n";

/* The plan of plan_graph_fmt at 16 MiB. It depends only on the graph, the image size and the
 * budget (and the device's largest allocation, far above these buffers on any OpenCL device), so
 * it is the same on every machine; if the estimate model changes on purpose, update this text
 * from `tessera run --dry-run --vram-limit 16M` on the graph. */
static const char *pinned_plan = "budget: 16777216 bytes (16.0 MiB)\n"
                                 "host: images peak 97920000 bytes (93.4 MiB) at node 'inv'\n"
                                 "stage 1: blur\n"
                                 "  output 1600x1200, 3 channels\n"
                                 "  tile 1600x248, 5 tiles\n"
                                 "  estimated peak 15728896 bytes (15.0 MiB)\n"
                                 "stage 2: up -> gam\n"
                                 "  output 2400x1800, 3 channels\n"
                                 "  tile 2400x192, 10 tiles\n"
                                 "  estimated peak 16358400 bytes (15.6 MiB)\n"
                                 "stage 3: inv\n"
                                 "  output 1600x1200, 3 channels\n"
                                 "  tile 1600x432, 3 tiles\n"
                                 "  estimated peak 16777216 bytes (16.0 MiB)\n";

/* The plan's text without its "host estimate:" line, which depends on the device (a CPU
 * device's buffers are host memory) and on the host's memory (the default host budget). */
static char *plan_text(tsr_engine *e, tsr_graph *g)
{
    char *text = NULL;
    if (tsr_graph_plan_text(e, g, NULL, &text))
        fail_msg("plan: %s", tsr_errmsg(e));
    char *h = strstr(text, "\nhost estimate: ");
    assert_non_null(h);
    char *end = strchr(h + 1, '\n');
    assert_non_null(end);
    memmove(h, end, strlen(end) + 1);
    return text;
}

/* The host estimate of plan_graph_fmt, computed by hand. Sources S = 1600x1200x3 float32, the
 * upscaled L = 2400x1800x3. Execution order src, blur, up -> gam, inv, out1, out2:
 *   src   S, plus the PNG decoder's worst case (1 byte a sample): S + S/4
 *   blur  its output S while src is read: 2S; src freed (its only reader is done): S
 *   gam   its output L while blur is read: S + L; blur still has a reader (inv)
 *   inv   its output S: 2S + L, the peak; blur freed after its second reader: S + L
 *   out1, out2: PNG encoders stream rows (nothing counted); gam, then inv freed.
 * Then the host budget: one byte below the estimate refuses the plan with TSR_ERR_LIMIT and the
 * figures, the estimate itself plans. */
static void host_estimate_by_hand(void **state)
{
    char good[700], cut[700], yaml[4096];
    big_sources(good, cut, sizeof good);
    snprintf(yaml, sizeof yaml, plan_graph_fmt, cut, dir);
    const size_t S = (size_t)BIG_W * BIG_H * 3 * 4, L = (size_t)2400 * 1800 * 3 * 4;
    size_t need = 0;
    for (int round = 0; round < 3; round++) {
        tsr_engine_options o;
        tsr_engine_options_init(&o);
        o.device = getenv("TSR_TEST_DEVICE");
        o.vram_limit = 16u << 20;
        o.mem_limit = round == 0 ? 0 : round == 1 ? need - 1 : need;
        char msg[1024] = "";
        tsr_engine *e = NULL;
        if (tsr_engine_new(&o, &e, msg, sizeof msg))
            fail_msg("engine: %s", msg);
        tsr_graph *g = gr_load(e, yaml);
        assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
        tsr__plan p;
        tsr_status rc = tsr__plan_make(e, g, 0, 0, &p);
        if (round == 1) {
            assert_int_equal(rc, TSR_ERR_LIMIT);
            char want[256];
            snprintf(want, sizeof want, "needs about %zu bytes", need);
            assert_non_null(strstr(tsr_errmsg(e), want));
            snprintf(want, sizeof want, "over the host budget of %zu bytes", need - 1);
            assert_non_null(strstr(tsr_errmsg(e), want));
            assert_non_null(strstr(tsr_errmsg(e), "at node 'inv'"));
        } else {
            if (rc)
                fail_msg("plan: %s", tsr_errmsg(e));
            assert_int_equal(BIG_W, 1600);
            assert_int_equal(BIG_H, 1200);
            assert_int_equal(p.host_peak, 2 * S + L);
            assert_string_equal(g->nodes[p.host_peak_node].id, "inv");
            assert_int_equal(p.device_peak, 16777216); /* the largest stage estimate */
            /* Pinned staging buffers are counted at their cap, and an OpenCL CPU device's
             * buffers (host memory) at the sum of the stage estimates, at most the budget. */
            assert_int_equal(p.staging, 64u << 20); /* the staging pool's default cap */
            size_t sum = 0; /* every stage's blocks may stay cached, up to the pool's cap */
            for (int i = 0; i < p.n_stages; i++)
                sum += p.stages[i].estimate;
            size_t dev = !p.host_device ? 0 : sum < (16u << 20) ? sum : 16u << 20;
            assert_int_equal(p.device_host, dev);
            assert_int_equal(p.host_need, 2 * S + L + p.staging + dev);
            need = p.host_need;
            if (round == 0)
                assert_int_equal(p.mem_limit, tsr_engine_mem_limit(e));
            else
                assert_int_equal(p.mem_limit, need);
            tsr__plan_clear(&p);
        }
        tsr_graph_free(g);
        tsr_engine_free(e);
    }
}

static void planner_is_deterministic(void **state)
{
    char good[700], cut[700], yaml[4096];
    big_sources(good, cut, sizeof good);
    snprintf(yaml, sizeof yaml, plan_graph_fmt, cut, dir);
    tsr_engine *e1 = gr_engine(16u << 20), *e2 = gr_engine(16u << 20);
    tsr_graph *g1 = gr_load(e1, yaml), *g2 = gr_load(e1, yaml), *g3 = gr_load(e2, yaml);
    char *t1 = plan_text(e1, g1), *t2 = plan_text(e1, g1), *t3 = plan_text(e1, g2),
         *t4 = plan_text(e2, g3);
    assert_string_equal(t1, t2); /* the same graph twice */
    assert_string_equal(t1, t3); /* the same file loaded again */
    assert_string_equal(t1, t4); /* on a fresh engine */
    if (strcmp(t1, pinned_plan) != 0)
        fail_msg("the plan differs from the pinned one:\n%s\nexpected:\n%s", t1, pinned_plan);
    /* Dry runs emit the same plan as JSON, read no pixel (the source's data is cut in half) and
     * write nothing. */
    tsr_run_options o;
    memset(&o, 0, sizeof o);
    o.dry_run = 1;
    o.event = gr_event;
    gr_result r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    o.user = &r1;
    assert_int_equal(tsr_graph_run(e1, g1, &o), TSR_OK);
    o.user = &r2;
    assert_int_equal(tsr_graph_run(e2, g3, &o), TSR_OK);
    assert_int_equal(r1.n_plan, 1);
    assert_int_equal(r1.n_stage, 0);
    assert_string_equal(r1.plan_json, r2.plan_json);
    assert_non_null(strstr(r1.plan_json, "\"root\":\"gam\",\"nodes\":[\"up\",\"gam\"],"
                                         "\"tile_width\":2400,\"tile_height\":192,\"tiles\":10,"
                                         "\"estimate_bytes\":16358400}"));
    assert_int_equal(gr_count_files(dir), 10); /* src1-4, tiny1-4, big, big-cut */
    tsr_free(t1);
    tsr_free(t2);
    tsr_free(t3);
    tsr_free(t4);
    tsr_graph_free(g1);
    tsr_graph_free(g2);
    tsr_graph_free(g3);
    tsr_engine_free(e1);
    tsr_engine_free(e2);
}

/* A kept output (image.output) outlives its last reader: src (S) feeds inv -> image.output and
 * gam -> image.save. src: S (+ S/4 decoding); inv: 2S; out keeps inv whole; gam: 3S, the peak
 * (2S had inv been freed after out). */
static void host_estimate_keeps_outputs(void **state)
{
    char good[700], cut[700], yaml[4096];
    big_sources(good, cut, sizeof good);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n"
             "  src: { type: image.load, params: { path: '%s' } }\n"
             "  inv: { type: adjust.invert, inputs: { image: src.image } }\n"
             "  out: { type: image.output, inputs: { image: inv.image } }\n"
             "  gam: { type: adjust.gamma, inputs: { image: src.image }, params: { gamma: 2 } }\n"
             "  save: { type: image.save, inputs: { image: gam.image }, params: { path: '%s/k.png' "
             "} }\n",
             cut, dir);
    const size_t S = (size_t)BIG_W * BIG_H * 3 * 4;
    tsr_engine *e = gr_engine(16u << 20);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    tsr__plan p;
    if (tsr__plan_make(e, g, 0, 0, &p))
        fail_msg("plan: %s", tsr_errmsg(e));
    assert_int_equal(p.host_peak, 3 * S);
    assert_string_equal(g->nodes[p.host_peak_node].id, "gam");
    tsr__plan_clear(&p);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* Against a real run: the peak of host image bytes alive at once (tsr_image_new and the last
 * tsr_image_free, counted by engine/image.c) while plan_graph_fmt runs equals the planner's
 * host_peak, 2S + L (the PNG decoder's row buffers, counted only at the source, are below it). */
static void host_estimate_matches_a_run(void **state)
{
    char good[700], cut[700], yaml[4096];
    big_sources(good, cut, sizeof good);
    snprintf(yaml, sizeof yaml, plan_graph_fmt, good, dir);
    const size_t S = (size_t)BIG_W * BIG_H * 3 * 4, L = (size_t)2400 * 1800 * 3 * 4;
    tsr_engine *e = gr_engine(256u << 20);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    tsr__plan p;
    if (tsr__plan_make(e, g, 0, 0, &p))
        fail_msg("plan: %s", tsr_errmsg(e));
    size_t planned = p.host_peak;
    tsr__plan_clear(&p);
    size_t base = tsr__image_live_bytes();
    tsr__image_reset_peak();
    if (tsr_graph_run(e, g, NULL))
        fail_msg("run: %s", tsr_errmsg(e));
    size_t measured = tsr__image_peak_bytes() - base;
    print_message("host images: planned %zu, measured %zu bytes\n", planned, measured);
    assert_int_equal(planned, 2 * S + L);
    assert_int_equal(measured, planned);
    assert_int_equal(tsr__image_live_bytes(), base); /* every image freed */
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* Estimate of one stage's forced tw x th grid (the planner's own figure). */
static size_t forced_estimate(tsr_engine *e, tsr_graph *g, int tw, int th)
{
    tsr__plan p;
    assert_int_equal(tsr__plan_make(e, g, tw, th, &p), TSR_OK);
    assert_int_equal(p.n_stages, 1);
    size_t est = p.stages[0].estimate;
    tsr__plan_clear(&p);
    return est;
}

/* The planner's choice under `budget`. */
static tsr__stage chosen(const char *yaml, size_t budget)
{
    tsr_engine *e = gr_engine(budget);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    tsr__plan p;
    if (tsr__plan_make(e, g, 0, 0, &p))
        fail_msg("plan under %zu bytes: %s", budget, tsr_errmsg(e));
    assert_int_equal(p.n_stages, 1);
    tsr__stage s = p.stages[0];
    s.nodes = NULL;
    tsr__plan_clear(&p);
    tsr_graph_free(g);
    tsr_engine_free(e);
    return s;
}

static void strips_before_squares(void **state)
{
    char good[700], cut[700], yaml[2048];
    big_sources(good, cut, sizeof good);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n"
             "  src: { type: image.load, params: { path: '%s' } }\n"
             "  b: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 2 } }\n"
             "  i: { type: adjust.invert, inputs: { image: b.image } }\n"
             "  out: { type: image.save, inputs: { image: i.image }, params: { path: x.png } }\n",
             cut);
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    size_t whole = forced_estimate(e, g, BIG_W, BIG_H);
    size_t strip200 = forced_estimate(e, g, BIG_W, 200);
    size_t strip16 = forced_estimate(e, g, BIG_W, 16);

    /* Room for the whole image: one tile. */
    tsr__stage s = chosen(yaml, whole);
    assert_int_equal(s.tile_w, BIG_W);
    assert_int_equal(s.tile_h, BIG_H);
    assert_int_equal(s.tiles, 1);

    /* Room for a 200-row strip: full-width strips, as tall as fit (multiples of 8). */
    s = chosen(yaml, strip200);
    assert_int_equal(s.tile_w, BIG_W);
    assert_true(s.tile_h >= 200 && s.tile_h < BIG_H && s.tile_h % 8 == 0);
    assert_true(s.estimate <= strip200);
    assert_true(forced_estimate(e, g, BIG_W, s.tile_h + 8) > strip200);
    printf("budget %zu: strips %dx%d, %lld tiles, estimate %zu\n", strip200, s.tile_w, s.tile_h,
           (long long)s.tiles, s.estimate);

    /* No room for a 16-row strip: near-square tiles, as large as fit. */
    s = chosen(yaml, strip16 - 1);
    assert_true(s.tile_w < BIG_W);
    assert_int_equal(s.tile_w, s.tile_h);
    assert_true(s.tile_w >= 16 && s.tile_w % 8 == 0);
    assert_true(s.estimate < strip16);
    assert_true(forced_estimate(e, g, s.tile_w + 8, s.tile_h + 8) > strip16 - 1);
    printf("budget %zu: squares %dx%d, %lld tiles, estimate %zu\n", strip16 - 1, s.tile_w, s.tile_h,
           (long long)s.tiles, s.estimate);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* A budget under what a 16x16 tile needs: the run fails in the planner, before the source is
 * decoded (its data is truncated: reading it would be TSR_ERR_DECODE) and before any output. */
static void budget_too_small_fails_before_pixels(void **state)
{
    char good[700], cut[700], yaml[2048], out[700];
    snprintf(good, sizeof good, "%s/small.png", dir);
    snprintf(cut, sizeof cut, "%s/small-cut.png", dir);
    snprintf(out, sizeof out, "%s/never.png", dir);
    gr_write_random_png(good, 200, 150, 3, 77);
    write_truncated(good, cut);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n"
             "  src: { type: image.load, params: { path: '%s' } }\n"
             "  b: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 3 } }\n"
             "  r: { type: resize, inputs: { image: b.image }, params: { scale: 1.5 } }\n"
             "  out: { type: image.save, inputs: { image: r.image }, params: { path: '%s' } }\n",
             cut, out);

    /* What the smallest tile needs, from the planner with a roomy budget. */
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    size_t need = forced_estimate(e, g, TSR_MIN_TILE, TSR_MIN_TILE);
    /* Control: with room, the run gets to the pixels and the truncated data is refused. */
    assert_int_equal(tsr_graph_run(e, g, NULL), TSR_ERR_DECODE);
    assert_false(gr_exists(out));
    tsr_graph_free(g);
    tsr_engine_free(e);

    e = gr_engine(need - 1);
    g = gr_load(e, yaml);
    gr_result r;
    gr_run(e, g, 0, 0, &r);
    assert_int_equal(r.rc, TSR_ERR_DEVICE_NOMEM);
    char figure[64];
    snprintf(figure, sizeof figure, "needs about %zu bytes", need);
    if (!strstr(r.msg, "smallest tile (16x16)") || !strstr(r.msg, figure) ||
        !strstr(r.msg, "--vram-limit"))
        fail_msg("message does not say what the smallest tile needs (%zu bytes): %s", need, r.msg);
    assert_int_equal(r.n_plan, 0);
    assert_int_equal(r.n_stage, 0);
    assert_false(gr_exists(out));
    tsr_pool_stats st;
    assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
    assert_int_equal(st.allocations, 0);
    gr_result_clear(&r);
    tsr_graph_free(g);
    tsr_engine_free(e);
    assert_int_equal(unlink(good), 0);
    assert_int_equal(unlink(cut), 0);
}

/* ---- memory: the cap holds and the estimate is honest ------------------------------------- */

static const char *const mem_graphs[] = {
    /* Upscale after a wide blur: one stage, 3000x2250 out. */
    "  a: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 3 } }\n"
    "  b: { type: resize, inputs: { image: a.image }, params: { scale: 1.5 } }\n"
    "  cap_b: { type: image.save, inputs: { image: b.image }, params: { path: cap_b.png } }\n",
    /* Reduce first, then filter. */
    "  a: { type: resize, inputs: { image: src.image },\n"
    "       params: { scale: 0.5, filter: mitchell } }\n"
    "  b: { type: blur.gaussian, inputs: { image: a.image }, params: { sigma: 2 } }\n"
    "  c: { type: adjust.invert, inputs: { image: b.image } }\n"
    "  cap_c: { type: image.save, inputs: { image: c.image }, params: { path: cap_c.png } }\n",
    /* Fan-out: three stages. */
    "  a: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 1.5 } }\n"
    "  b: { type: adjust.gamma, inputs: { image: a.image }, params: { gamma: 0.8 } }\n"
    "  c: { type: resize, inputs: { image: a.image },\n"
    "       params: { scale: 0.75, filter: bicubic } }\n"
    "  cap_b: { type: image.save, inputs: { image: b.image }, params: { path: cap_b.png } }\n"
    "  cap_c: { type: image.save, inputs: { image: c.image }, params: { path: cap_c.png } }\n",
};
#define N_MEM_GRAPHS ((int)(sizeof mem_graphs / sizeof mem_graphs[0]))

/* Largest "estimate_bytes" of the stages in a plan event. */
static size_t plan_event_estimate(const char *json)
{
    size_t best = 0;
    for (const char *p = json; (p = strstr(p, "\"estimate_bytes\":")); p++) {
        size_t v = (size_t)strtoull(p + strlen("\"estimate_bytes\":"), NULL, 10);
        best = v > best ? v : best;
    }
    return best;
}

/* How far the estimate may exceed the measured peak. The estimate is the peak of the very
 * buffers the executor allocates (each at its largest size over the stage's grid, rounded to its
 * pool class, which is all a request can take since the pool reuses only blocks of the same
 * class), so it is an upper bound; it is above the measured peak only where the model's buffer
 * lifetimes overlap more than the executor's. Measured here: equal in every run (ratio 1.000);
 * 1.1 leaves room for rounding in future nodes' scratch without letting a real over-estimate
 * through. */
#define ESTIMATE_FACTOR 1.1

static void cap_holds_and_estimate_is_honest(void **state)
{
    char good[700], cut[700], yaml[4096];
    big_sources(good, cut, sizeof good);
    static const uint64_t limits[] = {16ull << 20, 64ull << 20, 256ull << 20, 1ull << 30};
    printf("%-6s %-6s %6s %12s %12s %12s %6s %4s\n", "graph", "limit", "tiles", "estimate",
           "peak_in_use", "peak_held", "ratio", "oom");
    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        tsr_engine *e = gr_engine(limits[l]);
        assert_int_equal(tsr_engine_vram_limit(e), limits[l]);
        /* The graphs run one after the other on one engine: cached blocks of a run carry over
         * into the next, as in a long-lived process, and must stay under the cap too. */
        for (int k = 0; k < N_MEM_GRAPHS; k++) {
            snprintf(yaml, sizeof yaml,
                     "version: 1\nnodes:\n"
                     "  src: { type: image.load, params: { path: '%s' } }\n%s",
                     good, mem_graphs[k]);
            tsr_graph *g = gr_load(e, yaml);
            gr_result r;
            gr_run_ex(e, g, 0, 0, 1, &r);
            if (r.rc)
                fail_msg("graph %d at %llu MiB: %s", k + 1, (unsigned long long)(limits[l] >> 20),
                         r.msg);
            tsr_pool_stats st;
            assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
            size_t est = (size_t)gr_stat(r.stats, "plan.estimate_bytes");
            unsigned long long tiles = gr_stat(r.stats, "plan.tiles");
            printf("%-6d %4lluM %6llu %12zu %12llu %12llu %6.3f %4llu\n", k + 1,
                   (unsigned long long)(limits[l] >> 20), tiles, est,
                   (unsigned long long)st.peak_in_use_bytes, (unsigned long long)st.peak_held_bytes,
                   (double)est / (double)st.peak_in_use_bytes, (unsigned long long)st.oom_events);
            assert_int_equal(st.cap_bytes, limits[l]);
            assert_true(st.peak_held_bytes <= limits[l]);
            assert_true(st.peak_in_use_bytes <= st.peak_held_bytes);
            assert_int_equal(st.in_use_bytes, 0);
            assert_true(est <= limits[l]);
            assert_int_equal(plan_event_estimate(r.plan_json), est);
            /* Honest in both directions. */
            assert_true(st.peak_in_use_bytes <= est);
            assert_true((double)est <= ESTIMATE_FACTOR * (double)st.peak_in_use_bytes);
            /* A plan that fits is never refused: cached blocks are given back first, and what
             * is in use stays under the estimate. */
            assert_int_equal(st.oom_events, 0);
            assert_int_equal(gr_stat(r.stats, "plan.downgrades"), 0);
            if (limits[l] == 16ull << 20)
                assert_true(tiles > gr_stat(r.stats, "plan.stages")); /* really tiled */
            gr_result_clear(&r);
            tsr_graph_free(g);
        }
        tsr_engine_free(e);
    }
}

/* The speed target: on this CPU device (PoCL) a stage too big for it is tiled under it, the
 * output identical to one tile; a stage whose smallest tile exceeds it is planned under the
 * budget; TSR_TILE_TARGET sets it, "none" removes it, garbage is refused at engine creation. */
static void tile_target(void **state)
{
    char good[700], cut[700], yaml[2048];
    big_sources(good, cut, sizeof good);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n"
             "  src: { type: image.load, params: { path: '%s' } }\n"
             "  b: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 2 } }\n"
             "  out: { type: image.save, inputs: { image: b.image }, params: { path: x.png } }\n",
             good);
    setenv("TSR_TILE_TARGET", "4M", 1);
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    tsr__plan p;
    assert_int_equal(tsr__plan_make(e, g, 0, 0, &p), TSR_OK);
    assert_int_equal(p.target, 4u << 20);
    assert_true(p.stages[0].tiles > 1);
    assert_true(p.stages[0].estimate <= 4u << 20);
    tsr__plan_clear(&p);
    tsr_graph_free(g);
    tsr_engine_free(e);
    /* Smaller than any tile: the budget decides, as without a target (one tile here). */
    setenv("TSR_TILE_TARGET", "1K", 1);
    e = gr_engine(0);
    g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    assert_int_equal(tsr__plan_make(e, g, 0, 0, &p), TSR_OK);
    assert_int_equal(p.stages[0].tiles, 1);
    tsr__plan_clear(&p);
    tsr_graph_free(g);
    tsr_engine_free(e);
    /* The default on a CPU device: twice its cache, at least 32 MiB. */
    unsetenv("TSR_TILE_TARGET");
    e = gr_engine(0);
    const tsr_device_info *di = tsr_engine_device(e);
    if (!di->is_gpu) {
        uint64_t want = 2 * (di->cache_size ? di->cache_size : 8u << 20);
        if (want < 32u << 20)
            want = 32u << 20;
        g = gr_load(e, yaml);
        assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
        assert_int_equal(tsr__plan_make(e, g, 0, 0, &p), TSR_OK);
        assert_int_equal(p.target, want < p.budget ? want : 0);
        tsr__plan_clear(&p);
        tsr_graph_free(g);
    }
    tsr_engine_free(e);
    /* Refused with its name. */
    setenv("TSR_TILE_TARGET", "lots", 1);
    tsr_engine_options o;
    memset(&o, 0, sizeof o);
    tsr_engine *bad = NULL;
    char msg[512] = "";
    assert_int_not_equal(tsr_engine_new(&o, &bad, msg, sizeof msg), TSR_OK);
    assert_null(bad);
    assert_non_null(strstr(msg, "TSR_TILE_TARGET"));
    setenv("TSR_TILE_TARGET", "none", 1);
}

int main(void)
{
    /* The budget tests pin plans made under the budget alone. */
    setenv("TSR_TILE_TARGET", "none", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tile_target),
        cmocka_unit_test(every_node_type_has_a_case),
        cmocka_unit_test(nodes_seamless_cl),
        cmocka_unit_test(nodes_seamless_ref),
        cmocka_unit_test(chains_seamless_cl),
        cmocka_unit_test(chains_seamless_ref),
        cmocka_unit_test(planner_is_deterministic),
        cmocka_unit_test(host_estimate_by_hand),
        cmocka_unit_test(host_estimate_keeps_outputs),
        cmocka_unit_test(host_estimate_matches_a_run),
        cmocka_unit_test(strips_before_squares),
        cmocka_unit_test(budget_too_small_fails_before_pixels),
        cmocka_unit_test(cap_holds_and_estimate_is_honest),
    };
    return cmocka_run_group_tests_name("tiling", tests, setup, teardown);
}
