/* The upscale node with the bundled models: output against ncnn's own (tests/golden/models, made
 * by tools/gen-model-golden.py), tiled against untiled under `overlap: exact`, the per-tile
 * estimate against the pool's measured peak, models loaded once per engine, a budget too small
 * for the weights, and cancel between layers. */
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "../unit/graphrun.h"
#include "netrun.h"

#define GOLDEN "tests/golden/models/"

/* Model folders and the .param inside them, by golden name prefix. */
typedef struct model_case {
    const char *name;  /* golden prefix */
    const char *param; /* under ../shared/models */
} model_case;

static const model_case models[] = {
    {"waifu2x-upconv_7_anime_style_art_rgb",
     "models/waifu2x-upconv_7_anime_style_art_rgb/scale2.0x_model.param"},
    {"waifu2x-upconv_7_photo", "models/waifu2x-upconv_7_photo/scale2.0x_model.param"},
    {"waifu2x-cunet", "models/waifu2x-cunet/scale2.0x_model.param"},
    {"realcugan-se-up2x", "models/realcugan-se/up2x-no-denoise.param"},
    {"realcugan-se-up3x", "models/realcugan-se/up3x-no-denoise.param"},
    {"realcugan-se-up4x", "models/realcugan-se/up4x-no-denoise.param"},
    {"realcugan-nose-up2x", "models/realcugan-nose/up2x-no-denoise.param"},
    {"realesr-animevideov3-x2", "models/realesr-animevideov3/realesr-animevideov3-x2.param"},
    {"realesr-animevideov3-x3", "models/realesr-animevideov3/realesr-animevideov3-x3.param"},
    {"realesr-animevideov3-x4", "models/realesr-animevideov3/realesr-animevideov3-x4.param"},
    {"realesrgan-x4plus", "models/realesrgan-x4plus/realesrgan-x4plus.param"},
};
#define N_MODELS (int)(sizeof models / sizeof models[0])

static tsr__model *model_of(tsr_engine *e, const model_case *c)
{
    tsr__model *m = NULL;
    int loaded;
    char path[1024];
    snprintf(path, sizeof path, "%s", tu_shared(c->param));
    if (tsr__model_get(e, path, &m, &loaded, tsr__eerr(e)))
        fail_msg("%s: %s", c->name, tsr_errmsg(e));
    return m;
}

static tsr_image *upscale(tsr_engine *e, tsr__model *m, tsr_image *in, const char *overlap,
                          int tile_w, int tile_h)
{
    char kv[64];
    snprintf(kv, sizeof kv, "overlap=%s", overlap);
    const char *params[] = {kv};
    tsr_node *n = tu_node("upscale", params, 1);
    tsr_port_info values[2] = {{0}, {.type = TSR_PORT_MODEL, .model = m}};
    tsr_image *inputs[2] = {in, NULL};
    tsr_image *out = NULL;
    tsr_status rc = tsr__run_node_v(e, n, inputs, values, tile_w, tile_h, &out);
    tsr__node_free(n);
    if (rc)
        fail_msg("upscale: %s", tsr_errmsg(e));
    return out;
}

/* 8-bit samples of a and b that differ by more than one level, and the largest difference. */
static size_t count_over_one_level(const tsr_image *a, const tsr_image *b, int *max_levels,
                                   size_t *differ)
{
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->channels, b->channels);
    size_t n = (size_t)a->width * a->height * a->channels, over = 0;
    *max_levels = 0;
    *differ = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)lrintf(a->data[i] * 255.0f) - (int)lrintf(b->data[i] * 255.0f));
        *max_levels = d > *max_levels ? d : *max_levels;
        over += d > 1;
        *differ += d > 0;
    }
    return over;
}

/* Every golden of every model: at most one level apart on at least 99.9 % of the samples
 * (fp32 throughout; ncnn's own winograd/sgemm/direct paths differ by that much between
 * themselves, tests/golden/models/README.md). `ref`: the reference engine, only for the cheap
 * models (the C reference of a large network takes minutes). */
static void goldens_on(tsr_engine *e, int ref)
{
    int checked = 0;
    tu_name_list list;
    tu_list_dir(GOLDEN, ".out.png", &list);
    for (int i = 0; i < list.n; i++) {
        const model_case *mc = NULL;
        for (int k = 0; k < N_MODELS; k++)
            if (!strncmp(list.name[i], models[k].name, strlen(models[k].name)) &&
                list.name[i][strlen(models[k].name)] == '-' &&
                (!mc || strlen(models[k].name) > strlen(mc->name)))
                mc = &models[k];
        if (!mc)
            fail_msg("golden %s names no bundled model", list.name[i]);
        /* The reference engine on the cheap cases: every crop of upconv_7 (gray and RGBA
         * included), one of the valid-convolution Real-CUGAN and one with a bicubic layer. */
        if (ref && !strstr(list.name[i], "upconv_7_anime") &&
            !(strstr(list.name[i], "monarch") &&
              (strstr(mc->name, "realcugan-nose") || strstr(mc->name, "animevideov3-x2"))))
            continue;
        char stem[512], path[600];
        snprintf(stem, sizeof stem, "%s", list.name[i]);
        stem[strlen(stem) - strlen(".out.png")] = 0;
        snprintf(path, sizeof path, GOLDEN "%s.in.png", stem);
        tsr_image *in = tu_load(path);
        snprintf(path, sizeof path, GOLDEN "%s.out.png", stem);
        tsr_image *want = tu_load(path);
        tsr__model *m = model_of(e, mc);
        tsr_image *got = upscale(e, m, in, "auto", 0, 0);
        int worst;
        size_t differ, over = count_over_one_level(got, want, &worst, &differ);
        size_t n = (size_t)got->width * got->height * got->channels;
        print_message("%-58s %zu of %zu samples differ, max %d level%s\n", stem, differ, n, worst,
                      worst == 1 ? "" : "s");
        if (over * 1000 > n)
            fail_msg("%s: %zu of %zu samples are more than one level from ncnn's (max %d)", stem,
                     over, n, worst);
        checked++;
        tsr_image_free(got);
        tsr_image_free(want);
        tsr_image_free(in);
    }
    assert_true(checked >= (ref ? 6 : 20));
}

static void goldens_cl(void **state)
{
    goldens_on(tu_engine_cl(), 0);
}

static void goldens_ref(void **state)
{
    goldens_on(tu_engine_ref(), 1);
}

/* The raw network output in fp32 against ncnn's, before rounding: tighter than 8-bit. */
static void raw_output_close(void **state)
{
    static const struct {
        const char *stem;
        int model;
    } cases[] = {{"waifu2x-upconv_7_anime_style_art_rgb-monarch29x23", 0},
                 {"realesr-animevideov3-x4-comic24x20", 9}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, GOLDEN "%s.out.f32", cases[i].stem);
        tsr_image *want = tu_read_f32(path);
        snprintf(path, sizeof path, GOLDEN "%s.in.png", cases[i].stem);
        tsr_image *in = tu_load(path);
        tsr_engine *engines[2] = {tu_engine_cl(), tu_engine_ref()};
        for (int k = 0; k < 2; k++) {
            tsr_engine *e = engines[k];
            tsr__model *m = model_of(e, &models[cases[i].model]);
            tsr_image *raw = NULL;
            if (tsr__net_raw(e, m, in, &raw))
                fail_msg("%s: %s", cases[i].stem, tsr_errmsg(e));
            double worst = tu_max_diff(raw, want);
            print_message("%s %s: raw fp32 output within %.3g of ncnn's\n", cases[i].stem,
                          k ? "ref" : "cl", worst);
            /* ncnn's own direct and winograd paths differ by up to 5e-6 here (README). */
            assert_true(worst < 2e-5);
            tsr_image_free(raw);
        }
        tsr_image_free(in);
        tsr_image_free(want);
    }
}

/* Under overlap exact, tiles equal the untiled run: bit for bit on the reference engine; on the
 * device the same 8-bit values on at least 99.99 % of the samples, never more than one level. */
static void exact_tiles(void **state)
{
    static const int cases[] = {0, 6, 9};
    tsr_image *src = tu_load(tu_shared("testdata/set14/comic.png"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const model_case *mc = &models[cases[i]];
        tsr_engine *engines[2] = {tu_engine_ref(), tu_engine_cl()};
        /* The reference engine's convolutions are slow: the x4 compact net on the device only. */
        for (int k = cases[i] == 9 ? 1 : 0; k < 2; k++) {
            tsr_engine *e = engines[k];
            tsr__model *m = model_of(e, mc);
            /* A 52x38 crop (30x22 on the slow reference engine): odd sizes, tiles that straddle
             * the alignment grid. */
            int w = k ? 52 : 30, h = k ? 38 : 22;
            tsr_image *in = NULL;
            assert_int_equal(tsr_image_new(w, h, 3, &in), TSR_OK);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < h; y++)
                    memcpy(in->data + ((size_t)c * h + y) * w,
                           src->data + ((size_t)c * src->height + 20 + y) * src->width + 30,
                           (size_t)w * sizeof(float));
            tsr_image *whole = upscale(e, m, in, "exact", 0, 0);
            static const int tiles[][2] = {{40, 24}, {56, 40}, {24, 72}};
            for (int t = 0; t < 3; t++) {
                int tw = k ? tiles[t][0] : tiles[t][0] / 2 + 2,
                    th = k ? tiles[t][1] : tiles[t][1] / 2;
                tsr_image *tiled = upscale(e, m, in, "exact", tw, th);
                int worst;
                size_t differ, n = (size_t)whole->width * whole->height * whole->channels;
                size_t over = count_over_one_level(tiled, whole, &worst, &differ);
                print_message("%s %s tiles %dx%d: %zu of %zu samples differ (max %d)\n", mc->name,
                              k ? "cl" : "ref", tw, th, differ, n, worst);
                if (!k)
                    assert_true(gr_same_bits(tiled, whole));
                else
                    assert_true(over == 0 && differ * 10000 <= n);
                tsr_image_free(tiled);
            }
            tsr_image_free(whole);
            tsr_image_free(in);
        }
    }
    tsr_image_free(src);
}

/* Under the default overlap (auto), the largest tiled-vs-untiled difference per model, on the
 * device with 2x2 tiles: exact models (valid convolutions, compact nets whose receptive field is
 * cheap) must not move; models with global pooling use the whole-image statistics (syncgap) and
 * may move by float rounding only; x4plus keeps the original padding of 10 pixels (its receptive
 * field is hundreds of pixels) and shows the seams the original program has. */
static void auto_tiles_measured(void **state)
{
    tsr_engine *e = tu_engine_cl();
    tsr_image *src = tu_load(tu_shared("testdata/set14/comic.png"));
    for (int k = 0; k < N_MODELS; k++) {
        int big = strstr(models[k].name, "x4plus") != NULL;
        int w = big ? 24 : 60, h = big ? 20 : 44;
        tsr_image *in = NULL;
        assert_int_equal(tsr_image_new(w, h, 3, &in), TSR_OK);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                memcpy(in->data + ((size_t)c * h + y) * w,
                       src->data + ((size_t)c * src->height + 30 + y) * src->width + 40,
                       (size_t)w * sizeof(float));
        tsr__model *m = model_of(e, &models[k]);
        int exact;
        tsr__net_context(m, TSR_NET_OVERLAP_AUTO, &exact);
        tsr_image *whole = upscale(e, m, in, "auto", 0, 0);
        int tw = (w * m->scale + 1) / 2, th = (h * m->scale + 1) / 2;
        tsr_image *tiled = upscale(e, m, in, "auto", tw, th);
        int worst;
        size_t differ, n = (size_t)whole->width * whole->height * whole->channels;
        count_over_one_level(tiled, whole, &worst, &differ);
        print_message("%-26s auto=%-5s 2x2 tiles: %zu of %zu samples differ, max %d level%s\n",
                      models[k].name,
                      exact       ? "exact"
                      : m->global ? "sync"
                                  : "pad",
                      differ, n, worst, worst == 1 ? "" : "s");
        if (exact)
            assert_true(worst <= 1 && differ * 10000 <= n);
        else if (m->global)
            assert_true(worst <= 2 && differ * 1000 <= n);
        tsr_image_free(tiled);
        tsr_image_free(whole);
        tsr_image_free(in);
    }
    tsr_image_free(src);
}

/* ---- through the graph executor ---------------------------------------------------------------
 */

static char dir[64];

static void graph_yaml(char *yaml, size_t len, const char *model, const char *in,
                       const char *overlap)
{
    snprintf(yaml, len,
             "version: 1\n"
             "nodes:\n"
             "  src: { type: image.load, params: { path: '%s' } }\n"
             "  net: { type: model.load, params: { path: '%s' } }\n"
             "  up: { type: upscale, inputs: { image: src.image, model: net.model },\n"
             "        params: { overlap: '%s' } }\n"
             "  cap_out: { type: image.save, inputs: { image: up.image },\n"
             "             params: { path: '%s/out.png' } }\n",
             in, model, overlap, dir);
}

/* For every bundled model at three tile sizes, the planner's estimate (resident weights, the
 * blob slots, uploads and outputs, pool rounding) is within 10 % of the pool's measured peak. */
static void estimate_is_honest(void **state)
{
    char in[128], small[128];
    snprintf(in, sizeof in, "%s/in.png", dir);
    snprintf(small, sizeof small, "%s/small.png", dir);
    gr_write_random_png(in, 64, 48, 3, 11);
    gr_write_random_png(small, 12, 8, 3, 15);
    for (int k = 0; k < N_MODELS; k++) {
        int big = strstr(models[k].name, "x4plus") != NULL;
        static const int tiles[][2] = {{32, 32}, {64, 48}, {96, 64}};
        for (int t = 0; t < (big ? 1 : 3); t++) {
            tsr_engine *e = gr_engine(0);
            char yaml[2048];
            /* x4plus (18 million multiply-adds an input pixel) on a 12x8 input: two tiles. */
            graph_yaml(yaml, sizeof yaml, tu_shared(models[k].param), big ? small : in, "auto");
            tsr_graph *g = gr_load(e, yaml);
            gr_result r;
            memset(&r, 0, sizeof r);
            r.discard = 1;
            int tw = big ? 32 : tiles[t][0], th = big ? 32 : tiles[t][1];
            gr_run_ex(e, g, tw, th, 1, &r);
            if (r.rc)
                fail_msg("%s: %s", models[k].name, r.msg);
            tsr_pool_stats st;
            assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
            double est = (double)gr_stat(r.stats, "plan.estimate_bytes");
            double peak = (double)st.peak_in_use_bytes;
            print_message("%-26s tile %3dx%-3d estimate %10.0f  measured peak %10.0f  (%+.1f%%)\n",
                          models[k].name, tw, th, est, peak, 100.0 * (est - peak) / peak);
            assert_true(est <= 1.1 * peak && est >= 0.9 * peak);
            gr_result_clear(&r);
            tsr_graph_free(g);
            tsr_engine_free(e);
        }
    }
}

/* A second run of the same graph on the same engine reads no model file and uploads nothing. */
static void model_loaded_once(void **state)
{
    char in[128], yaml[2048];
    snprintf(in, sizeof in, "%s/in.png", dir);
    gr_write_random_png(in, 20, 16, 3, 12);
    graph_yaml(yaml, sizeof yaml, tu_shared(models[0].param), in, "auto");
    tsr_engine *e = gr_engine(0);
    for (int run = 0; run < 2; run++) {
        tsr_graph *g = gr_load(e, yaml);
        gr_result r;
        memset(&r, 0, sizeof r);
        gr_run(e, g, 0, 0, &r);
        assert_int_equal(r.rc, TSR_OK);
        assert_int_equal(gr_stat(r.stats, "models.loaded"), run == 0 ? 1 : 0);
        assert_int_equal(gr_stat(r.stats, "models.uploaded"), run == 0 ? 1 : 0);
        assert_true(gr_stat(r.stats, "models.resident_bytes") > 1000000);
        gr_result_clear(&r);
        tsr_graph_free(g);
    }
    tsr_engine_free(e);
}

/* A budget that cannot hold the weights and the smallest tile fails before any pixel moves,
 * saying how many bytes the model needs. */
static void budget_below_weights(void **state)
{
    char in[128], yaml[2048];
    snprintf(in, sizeof in, "%s/in.png", dir);
    gr_write_random_png(in, 20, 16, 3, 13);
    graph_yaml(yaml, sizeof yaml, tu_shared(models[2].param), in, "auto"); /* cunet, 2.7 MB */
    tsr_engine *e = gr_engine(1u << 20);
    tsr_graph *g = gr_load(e, yaml);
    gr_result r;
    memset(&r, 0, sizeof r);
    gr_run(e, g, 0, 0, &r);
    assert_int_equal(r.rc, TSR_ERR_DEVICE_NOMEM);
    assert_non_null(strstr(r.msg, "resident weights"));
    print_message("%s\n", r.msg);
    tsr_pool_stats st;
    assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
    assert_int_equal(st.peak_in_use_bytes, 0); /* nothing was uploaded */
    gr_result_clear(&r);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

typedef struct cancel_arg {
    tsr_engine *e;
    int delay_ms;
} cancel_arg;

static void *cancel_later(void *p)
{
    cancel_arg *a = p;
    struct timespec ts = {0, a->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    tsr_engine_interrupt(a->e);
    return NULL;
}

/* A cancel arriving while a network runs stops it between two layers. */
static void cancel_between_layers(void **state)
{
    char in[128], yaml[2048];
    snprintf(in, sizeof in, "%s/in.png", dir);
    gr_write_random_png(in, 64, 64, 3, 14);
    graph_yaml(yaml, sizeof yaml, tu_shared(models[10].param), in, "auto"); /* x4plus, 999 */
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = gr_load(e, yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    cancel_arg a = {e, 300};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &a), 0);
    gr_result r;
    memset(&r, 0, sizeof r);
    gr_run(e, g, 0, 0, &r);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, TSR_ERR_CANCELLED);
    /* Between two layers, inside one (a sliced launch), or while the tile's input goes to the
     * device (where 300 ms lands depends on the machine): the message names where it stopped. */
    if (!strstr(r.msg, "after layer") && !strstr(r.msg, "kernel '") && !strstr(r.msg, "'up'"))
        fail_msg("the message does not say where the network stopped: %s", r.msg);
    print_message("%s\n", r.msg);
    gr_result_clear(&r);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

static int setup(void **state)
{
    gr_mkdtemp(dir, sizeof dir, "tsr-upscale");
    return 0;
}

static int teardown(void **state)
{
    gr_rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(goldens_cl),
        cmocka_unit_test(goldens_ref),
        cmocka_unit_test(raw_output_close),
        cmocka_unit_test(exact_tiles),
        cmocka_unit_test(auto_tiles_measured),
        cmocka_unit_test(estimate_is_honest),
        cmocka_unit_test(model_loaded_once),
        cmocka_unit_test(budget_below_weights),
        cmocka_unit_test(cancel_between_layers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
