/* The ncnn model loader (engine/nn_model.c): every bundled model loads with the counts, blob
 * names and geometry that ../shared/models/README.md states (an independent source), fp16
 * decoding and one known weight against tools/gen-nn-facts.py (numpy), layer shapes of every
 * type, named errors, and a seeded mutation run over real files that must never crash. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn.h"

#define MODELS "models/"
#define UPCONV "waifu2x-upconv_7_anime_style_art_rgb/scale2.0x_model"

static tsr_nn_model *load_ok(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", tu_shared(rel));
    tsr__err err;
    tsr__err_clear(&err);
    tsr_nn_model *m = NULL;
    if (tsr__nn_load(path, &m, &err))
        fail_msg("load %s: %s", path, err.msg);
    assert_non_null(m);
    return m;
}

/* ---- every model, against README.md --------------------------------------------------------- */

typedef struct model_fact {
    const char *rel; /* under models/, without .param */
    int layers, blobs;
    const char *in, *out;
    int counts[TSR_NN_TYPE_COUNT];
    /* Geometry: input (h_in, w_in) gives (h_out, w_out). */
    int h_in, w_in, h_out, w_out;
} model_fact;

#define C_(t) [TSR_NN_##t]
static const model_fact facts[] = {
    /* upconv_7: (T+14) in, 2T out. T = 50, 40. */
    {"waifu2x-upconv_7_anime_style_art_rgb/scale2.0x_model",
     8,
     8,
     "Input1",
     "Eltwise4",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 6, C_(DECONVOLUTION) = 1},
     64,
     54,
     100,
     80},
    {"waifu2x-upconv_7_photo/scale2.0x_model",
     8,
     8,
     "Input1",
     "Eltwise4",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 6, C_(DECONVOLUTION) = 1},
     64,
     54,
     100,
     80},
    /* cunet and Real-CUGAN x2: (T+36) in, 2T out, T even. T = 28, 20. */
    {"waifu2x-cunet/scale2.0x_model",
     59,
     71,
     "Input1",
     "Eltwise4",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 18, C_(DECONVOLUTION) = 4, C_(SPLIT) = 12, C_(POOLING) = 4,
      C_(INNERPRODUCT) = 8, C_(SCALE) = 4, C_(CROP) = 4, C_(ELTWISE) = 4},
     64,
     56,
     56,
     40},
    {"realcugan-se/up2x-no-denoise",
     55,
     63,
     "in0",
     "out0",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 18, C_(DECONVOLUTION) = 4, C_(SPLIT) = 8, C_(POOLING) = 4,
      C_(INNERPRODUCT) = 8, C_(BINARYOP) = 8, C_(CROP) = 4},
     64,
     56,
     56,
     40},
    /* x3: (T+28) in, 3T out, T a multiple of 4. T = 36, 24. */
    {"realcugan-se/up3x-no-denoise",
     55,
     63,
     "in0",
     "out0",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 18, C_(DECONVOLUTION) = 4, C_(SPLIT) = 8, C_(POOLING) = 4,
      C_(INNERPRODUCT) = 8, C_(BINARYOP) = 8, C_(CROP) = 4},
     64,
     52,
     108,
     72},
    /* x4: (T+38) in, 4T out. T = 26, 18. */
    {"realcugan-se/up4x-no-denoise",
     58,
     66,
     "in0",
     "out0",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 19, C_(DECONVOLUTION) = 4, C_(SPLIT) = 8, C_(POOLING) = 4,
      C_(INNERPRODUCT) = 8, C_(BINARYOP) = 8, C_(CROP) = 5, C_(PIXELSHUFFLE) = 1},
     64,
     56,
     104,
     72},
    {"realcugan-nose/up2x-no-denoise",
     35,
     39,
     "in0",
     "out0",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 18, C_(DECONVOLUTION) = 4, C_(SPLIT) = 4, C_(CROP) = 4,
      C_(BINARYOP) = 4},
     64,
     56,
     56,
     40},
    /* animevideov3: x4 is 4H, x2 2H, x3 floor(4H * 0.75) = 3H. */
    {"realesr-animevideov3/realesr-animevideov3-x2",
     41,
     42,
     "data",
     "output",
     {C_(INPUT) = 1, C_(SPLIT) = 1, C_(CONVOLUTION) = 18, C_(PRELU) = 17, C_(PIXELSHUFFLE) = 1,
      C_(INTERP) = 2, C_(BINARYOP) = 1},
     64,
     48,
     128,
     96},
    {"realesr-animevideov3/realesr-animevideov3-x3",
     41,
     42,
     "data",
     "output",
     {C_(INPUT) = 1, C_(SPLIT) = 1, C_(CONVOLUTION) = 18, C_(PRELU) = 17, C_(PIXELSHUFFLE) = 1,
      C_(INTERP) = 2, C_(BINARYOP) = 1},
     64,
     48,
     192,
     144},
    {"realesr-animevideov3/realesr-animevideov3-x4",
     40,
     41,
     "data",
     "output",
     {C_(INPUT) = 1, C_(SPLIT) = 1, C_(CONVOLUTION) = 18, C_(PRELU) = 17, C_(PIXELSHUFFLE) = 1,
      C_(INTERP) = 1, C_(BINARYOP) = 1},
     64,
     48,
     256,
     192},
    {"realesrgan-x4plus/realesrgan-x4plus",
     999,
     1782,
     "data",
     "output",
     {C_(INPUT) = 1, C_(CONVOLUTION) = 351, C_(SPLIT) = 276, C_(CONCAT) = 276, C_(ELTWISE) = 92,
      C_(BINARYOP) = 1, C_(INTERP) = 2},
     64,
     48,
     256,
     192},
};
#undef C_
#define N_FACTS ((int)(sizeof facts / sizeof facts[0]))

static void check_model(const model_fact *f)
{
    char rel[512];
    snprintf(rel, sizeof rel, MODELS "%s.param", f->rel);
    tsr_nn_model *m = load_ok(rel);
    if (m->n_layers != f->layers || m->n_blobs != f->blobs)
        fail_msg("%s: %d layers, %d blobs, expected %d, %d", f->rel, m->n_layers, m->n_blobs,
                 f->layers, f->blobs);
    assert_string_equal(m->blob_names[m->input_blob], f->in);
    assert_string_equal(m->blob_names[m->output_blob], f->out);
    assert_int_equal(m->in_channels, 3);
    assert_int_equal(m->out_channels, 3);
    int counts[TSR_NN_TYPE_COUNT] = {0};
    size_t floats = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_nn_layer *L = &m->layers[i];
        counts[L->type]++;
        assert_true(L->line == i + 3); /* no blank lines in these files */
        if (L->type == TSR_NN_CONVOLUTION || L->type == TSR_NN_DECONVOLUTION ||
            L->type == TSR_NN_INNERPRODUCT) {
            assert_non_null(L->weight);
            assert_true(L->n_weight == (size_t)L->weight_data_size);
            assert_true(L->n_bias == (L->bias_term ? (size_t)L->num_output : 0));
        }
        floats += L->n_weight + L->n_bias;
    }
    assert_true(m->weight_bytes == floats * sizeof(float));
    for (int t = 0; t < TSR_NN_TYPE_COUNT; t++)
        if (counts[t] != f->counts[t])
            fail_msg("%s: %d %s layers, expected %d", f->rel, counts[t],
                     tsr__nn_type_name((tsr_nn_type)t), f->counts[t]);
    for (int b = 0; b < m->n_blobs; b++) {
        assert_true(m->producer[b] >= 0 && m->producer[b] < m->n_layers);
        assert_true(m->last_reader[b] == -1 ? b == m->output_blob
                                            : m->last_reader[b] > m->producer[b]);
    }

    tsr_nn_shape *s = calloc((size_t)m->n_blobs, sizeof *s);
    assert_non_null(s);
    tsr__err err;
    tsr__err_clear(&err);
    if (tsr__nn_shapes(m, 3, f->h_in, f->w_in, s, &err))
        fail_msg("%s: shapes for 3x%dx%d: %s", f->rel, f->h_in, f->w_in, err.msg);
    tsr_nn_shape o = s[m->output_blob];
    if (o.dims != 3 || o.c != 3 || o.h != f->h_out || o.w != f->w_out)
        fail_msg("%s: 3x%dx%d gives %dx%dx%d (dims %d), expected 3x%dx%d", f->rel, f->h_in, f->w_in,
                 o.c, o.h, o.w, o.dims, f->h_out, f->w_out);
    for (int b = 0; b < m->n_blobs; b++)
        assert_true(s[b].dims == 1 || s[b].dims == 3);
    free(s);
    tsr__nn_free(m);
}

/* Every .param under models/ (found by listing, so a new one is not silently skipped) is in the
 * table above, and every entry checks out. */
static void all_models_load(void **state)
{
    tu_name_list dirs, params;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_shared("models"));
    tu_list_dir(dir, "", &dirs);
    int found = 0;
    for (int d = 0; d < dirs.n; d++) {
        char sub[4352];
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s", dir, dirs.name[d]);
        if (dirs.name[d][0] == '.' || stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        tu_list_dir(sub, ".param", &params);
        for (int p = 0; p < params.n; p++) {
            char rel[600];
            snprintf(rel, sizeof rel, "%s/%.*s", dirs.name[d],
                     (int)(strlen(params.name[p]) - strlen(".param")), params.name[p]);
            int known = 0;
            for (int i = 0; i < N_FACTS; i++)
                known |= strcmp(facts[i].rel, rel) == 0;
            if (!known)
                fail_msg("models/%s.param is not in this test's table", rel);
            found++;
        }
    }
    assert_int_equal(found, 11);
    for (int i = 0; i < N_FACTS; i++)
        check_model(&facts[i]);
}

/* A folder with one .param loads; one with several is refused, naming them all. */
static void load_from_folder(void **state)
{
    tsr_nn_model *m = load_ok(MODELS "waifu2x-cunet");
    assert_int_equal(m->n_layers, 59);
    tsr__nn_free(m);

    tsr__err err;
    tsr__err_clear(&err);
    char path[4096];
    snprintf(path, sizeof path, "%s", tu_shared(MODELS "realcugan-se"));
    assert_int_equal(tsr__nn_load(path, &m, &err), TSR_ERR_INVALID);
    assert_null(m);
    tu_assert_msg_has(&err, "up2x-no-denoise.param");
    tu_assert_msg_has(&err, "up3x-no-denoise.param");
    tu_assert_msg_has(&err, "up4x-no-denoise.param");
    tu_assert_msg_has(&err, "3 .param files");

    snprintf(path, sizeof path, "%s", tu_shared(MODELS "README.md"));
    assert_int_equal(tsr__nn_load(path, &m, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "not a .param");
    snprintf(path, sizeof path, "%s", tu_shared(MODELS "no-such.param"));
    assert_int_equal(tsr__nn_load(path, &m, &err), TSR_ERR_IO);
    tu_assert_msg_has(&err, "no-such.param");
}

/* ---- fp16 and one known weight -----------------------------------------------------------------
 */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void fp16_decoding(void **state)
{
    assert_true(tsr__nn_half_to_float(0x3C00) == 1.0f);
    assert_true(tsr__nn_half_to_float(0xC000) == -2.0f);
    assert_true(tsr__nn_half_to_float(0x3555) == 0x1.554p-2f);
    assert_true(tsr__nn_half_to_float(0x7BFF) == 65504.0f);
    assert_true(tsr__nn_half_to_float(0x0001) == 0x1p-24f);     /* smallest subnormal */
    assert_true(tsr__nn_half_to_float(0x03FF) == 0x1.ff8p-15f); /* largest subnormal */
    assert_true(tsr__nn_half_to_float(0x0400) == 0x1p-14f);     /* smallest normal */
    assert_true(tsr__nn_half_to_float(0x8001) == -0x1p-24f);
    assert_true(bits_of(tsr__nn_half_to_float(0x0000)) == 0);
    assert_true(bits_of(tsr__nn_half_to_float(0x8000)) == 0x80000000u); /* -0 keeps its sign */
    assert_true(isinf(tsr__nn_half_to_float(0x7C00)) && tsr__nn_half_to_float(0x7C00) > 0);
    assert_true(isinf(tsr__nn_half_to_float(0xFC00)) && tsr__nn_half_to_float(0xFC00) < 0);
    assert_true(isnan(tsr__nn_half_to_float(0x7E00)));
    assert_true(isnan(tsr__nn_half_to_float(0x7C01)));
    assert_true(isnan(tsr__nn_half_to_float(0xFFFF)));
    /* Every finite half widens exactly: compare with a plain formula. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        int e = (h >> 10) & 0x1f, mant = h & 0x3ff;
        if (e == 0x1f)
            continue;
        double v = e ? ldexp(1024 + mant, e - 25) : ldexp(mant, -24);
        if (h & 0x8000)
            v = -v;
        if (tsr__nn_half_to_float((uint16_t)h) != (float)v)
            fail_msg("half 0x%04X: got %a, expected %a", h,
                     (double)tsr__nn_half_to_float((uint16_t)h), v);
    }
}

/* Output of `python3 tools/gen-nn-facts.py` (numpy reading the .bin at fixed byte offsets):
 *   W0: 0x2562 = 0.0210266113 (bits 0x3CAC4000)
 *   W1: 0x2DF2 = 0.0928955078 (bits 0x3DBE4000)
 *   W2: 0x289B = 0.0359802246 (bits 0x3D136000)
 *   W3: 0x2CA3 = 0.0724487305 (bits 0x3D946000)
 *   B0: 0.272966623 (bits 0x3E8BC248) */
static void known_weights(void **state)
{
    static const uint32_t w_bits[4] = {0x3CAC4000u, 0x3DBE4000u, 0x3D136000u, 0x3D946000u};
    tsr_nn_model *m = load_ok(MODELS UPCONV ".param");
    const tsr_nn_layer *L = &m->layers[1];
    assert_string_equal(L->name, "conv1_layer");
    assert_int_equal(L->num_output, 16);
    assert_int_equal(L->num_input, 3);
    assert_int_equal(L->kernel_w, 3);
    assert_int_equal(L->kernel_h, 3);
    assert_int_equal(L->activation, TSR_NN_ACT_LEAKY);
    assert_true(L->activation_params[0] == 0.1f);
    for (int i = 0; i < 4; i++)
        if (bits_of(L->weight[i]) != w_bits[i])
            fail_msg("conv1 weight %d: bits 0x%08X, expected 0x%08X", i, bits_of(L->weight[i]),
                     w_bits[i]);
    assert_true(bits_of(L->bias[0]) == 0x3E8BC248u);
    tsr__nn_free(m);
}

/* ---- layer shapes ------------------------------------------------------------------------------
 */

static tsr_nn_shape map3(int c, int h, int w)
{
    tsr_nn_shape s = {3, c, h, w};
    return s;
}

static tsr_nn_shape vec1(int c)
{
    tsr_nn_shape s = {1, c, 1, 1};
    return s;
}

static tsr_nn_layer conv(tsr_nn_type t, int nin, int nout, int k, int stride, int pad)
{
    tsr_nn_layer L;
    memset(&L, 0, sizeof L);
    L.type = t;
    L.name = "L";
    L.n_in = L.n_out = 1;
    L.num_input = nin;
    L.num_output = nout;
    L.kernel_w = L.kernel_h = k;
    L.dilation_w = L.dilation_h = 1;
    L.stride_w = L.stride_h = stride;
    L.pad_left = L.pad_right = L.pad_top = L.pad_bottom = pad;
    return L;
}

static tsr_nn_layer plain(tsr_nn_type t, int n_in)
{
    tsr_nn_layer L;
    memset(&L, 0, sizeof L);
    L.type = t;
    L.name = "L";
    L.n_in = n_in;
    L.n_out = 1;
    return L;
}

static void shape_is(const tsr_nn_layer *L, const tsr_nn_shape *in, tsr_nn_shape want)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_nn_shape out[4];
    memset(out, 0, sizeof out);
    if (tsr__nn_layer_shape(L, in, out, &err))
        fail_msg("%s: %s", tsr__nn_type_name(L->type), err.msg);
    if (out[0].dims != want.dims || out[0].c != want.c || out[0].h != want.h || out[0].w != want.w)
        fail_msg("%s: got %d:%dx%dx%d, expected %d:%dx%dx%d", tsr__nn_type_name(L->type),
                 out[0].dims, out[0].c, out[0].h, out[0].w, want.dims, want.c, want.h, want.w);
}

static void shape_fails(const tsr_nn_layer *L, const tsr_nn_shape *in, const char *s1,
                        const char *s2)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_nn_shape out[4];
    assert_int_equal(tsr__nn_layer_shape(L, in, out, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "layer 'L'");
    if (s1)
        tu_assert_msg_has(&err, s1);
    if (s2)
        tu_assert_msg_has(&err, s2);
}

static void layer_shapes(void **state)
{
    /* Convolution: valid, padded, stride 2, SAME_UPPER / SAME_LOWER. */
    tsr_nn_layer L = conv(TSR_NN_CONVOLUTION, 3, 8, 3, 1, 0);
    tsr_nn_shape in[3] = {map3(3, 10, 12)};
    shape_is(&L, in, map3(8, 8, 10));
    in[0] = map3(4, 10, 12);
    shape_fails(&L, in, "4x10x12", "expected 3");
    in[0] = map3(3, 2, 12);
    shape_fails(&L, in, "3x2x12", "kernel");
    L = conv(TSR_NN_CONVOLUTION, 3, 8, 3, 1, 1);
    in[0] = map3(3, 10, 12);
    shape_is(&L, in, map3(8, 10, 12));
    L = conv(TSR_NN_CONVOLUTION, 3, 8, 2, 2, 0);
    in[0] = map3(3, 9, 8);
    shape_is(&L, in, map3(8, 4, 4));
    int t, b, l, r;
    L = conv(TSR_NN_CONVOLUTION, 3, 8, 3, 2, -233);
    in[0] = map3(3, 7, 8); /* totals: h 3+6-7 = 2, w 3+6-8 = 1 */
    shape_is(&L, in, map3(8, 4, 4));
    tsr__nn_pads(&L, in, &t, &b, &l, &r);
    assert_true(t == 1 && b == 1 && l == 0 && r == 1);
    L = conv(TSR_NN_CONVOLUTION, 3, 8, 3, 2, -234);
    shape_is(&L, in, map3(8, 4, 4));
    tsr__nn_pads(&L, in, &t, &b, &l, &r);
    assert_true(t == 1 && b == 1 && l == 1 && r == 0);

    /* Deconvolution: pads trim (waifu2x 4x4/2 pad 3: 2n-4), output pad, fixed output size. */
    L = conv(TSR_NN_DECONVOLUTION, 8, 3, 4, 2, 3);
    in[0] = map3(8, 10, 20);
    shape_is(&L, in, map3(3, 16, 36));
    L = conv(TSR_NN_DECONVOLUTION, 8, 3, 5, 3, 2); /* Real-CUGAN x3: 3n-2 */
    shape_is(&L, in, map3(3, 28, 58));
    L = conv(TSR_NN_DECONVOLUTION, 8, 3, 2, 2, 0);
    L.output_pad_right = L.output_pad_bottom = 1;
    shape_is(&L, in, map3(3, 21, 41));
    L = conv(TSR_NN_DECONVOLUTION, 8, 3, 3, 2, -233);
    L.output_w = 40, L.output_h = 20; /* full 21x41: cut 1 each */
    shape_is(&L, in, map3(3, 20, 40));
    tsr__nn_pads(&L, in, &t, &b, &l, &r);
    assert_true(t == 0 && b == 1 && l == 0 && r == 1);
    L.pad_left = L.pad_right = L.pad_top = L.pad_bottom = -234;
    tsr__nn_pads(&L, in, &t, &b, &l, &r);
    assert_true(t == 1 && b == 0 && l == 1 && r == 0);
    L.output_w = 42;
    shape_fails(&L, in, "larger than the full output", "8x10x20");
    L = conv(TSR_NN_DECONVOLUTION, 8, 3, 4, 2, 3);
    in[0] = map3(8, 1, 20); /* 2*1-4 < 1 */
    shape_fails(&L, in, "8x1x20", NULL);

    /* PixelShuffle, Interp, Pooling, PReLU. */
    L = plain(TSR_NN_PIXELSHUFFLE, 1);
    L.upscale_factor = 2;
    in[0] = map3(12, 5, 6);
    shape_is(&L, in, map3(3, 10, 12));
    in[0] = map3(10, 5, 6);
    shape_fails(&L, in, "10x5x6", "multiple of 4");
    L = plain(TSR_NN_INTERP, 1);
    L.resize_type = TSR_NN_INTERP_BICUBIC;
    L.height_scale = L.width_scale = 0.75f;
    in[0] = map3(3, 7, 12); /* (int)(7 * 0.75) = 5 */
    shape_is(&L, in, map3(3, 5, 9));
    L.interp_out_h = 11, L.interp_out_w = 13;
    shape_is(&L, in, map3(3, 11, 13));
    L = plain(TSR_NN_POOLING, 1);
    L.global_pooling = 1;
    shape_is(&L, in, vec1(3));
    L = plain(TSR_NN_PRELU, 1);
    L.num_slope = 3;
    shape_is(&L, in, map3(3, 7, 12));
    L.num_slope = 4;
    shape_fails(&L, in, "3x7x12", "num_slope");

    /* BinaryOp: equal shapes, a per-channel vector either side, size-1 broadcast, mismatch. */
    L = plain(TSR_NN_BINARYOP, 2);
    L.op = TSR_NN_BIN_MUL;
    in[0] = map3(64, 8, 9), in[1] = vec1(64);
    shape_is(&L, in, map3(64, 8, 9));
    in[0] = vec1(64), in[1] = map3(64, 8, 9);
    shape_is(&L, in, map3(64, 8, 9));
    in[0] = map3(64, 8, 9), in[1] = map3(64, 1, 1);
    shape_is(&L, in, map3(64, 8, 9));
    in[0] = map3(64, 8, 9), in[1] = map3(64, 8, 9);
    shape_is(&L, in, map3(64, 8, 9));
    in[1] = vec1(32);
    shape_fails(&L, in, "64x8x9", "[32]");
    in[1] = map3(64, 8, 8);
    shape_fails(&L, in, "64x8x9", "64x8x8");

    /* Eltwise, Concat, Split. */
    L = plain(TSR_NN_ELTWISE, 2);
    L.op = TSR_NN_ELT_SUM;
    in[0] = map3(4, 6, 6), in[1] = map3(4, 6, 6);
    shape_is(&L, in, map3(4, 6, 6));
    in[1] = map3(4, 6, 5);
    shape_fails(&L, in, "4x6x6", "4x6x5");
    L = plain(TSR_NN_CONCAT, 3);
    in[0] = map3(4, 6, 6), in[1] = map3(5, 6, 6), in[2] = map3(1, 6, 6);
    shape_is(&L, in, map3(10, 6, 6));
    L.axis = -3;
    shape_is(&L, in, map3(10, 6, 6));
    in[2] = map3(1, 6, 7);
    shape_fails(&L, in, "1x6x7", "4x6x6");
    L.axis = -1;
    in[2] = map3(1, 6, 6);
    shape_fails(&L, in, "axis -1", "channels");
    L = plain(TSR_NN_SPLIT, 1);
    L.n_out = 3;
    {
        tsr__err err;
        tsr_nn_shape out[3];
        in[0] = map3(4, 6, 7);
        assert_int_equal(tsr__nn_layer_shape(&L, in, out, &err), TSR_OK);
        for (int i = 0; i < 3; i++)
            assert_true(out[i].dims == 3 && out[i].c == 4 && out[i].h == 6 && out[i].w == 7);
    }

    /* InnerProduct flattens; Scale with a second input or its own data. */
    L = plain(TSR_NN_INNERPRODUCT, 1);
    L.num_output = 8, L.num_input = 64;
    in[0] = vec1(64);
    shape_is(&L, in, vec1(8));
    in[0] = map3(16, 2, 2);
    shape_is(&L, in, vec1(8));
    in[0] = vec1(60);
    shape_fails(&L, in, "[60]", "64");
    L = plain(TSR_NN_SCALE, 2);
    L.scale_data_size = -233;
    in[0] = map3(8, 4, 4), in[1] = vec1(8);
    shape_is(&L, in, map3(8, 4, 4));
    in[1] = vec1(7);
    shape_fails(&L, in, "[7]", "8x4x4");
    L = plain(TSR_NN_SCALE, 1);
    L.scale_data_size = 8;
    shape_is(&L, in, map3(8, 4, 4));

    /* Crop: reference form with offsets, slice form (negative axes, -233, clamping, negative
     * starts), legacy offsets. */
    int oc, oy, ox;
    L = plain(TSR_NN_CROP, 2);
    L.woffset = 4, L.hoffset = 3;
    in[0] = map3(8, 20, 30), in[1] = map3(8, 10, 12);
    shape_is(&L, in, map3(8, 10, 12));
    tsr__nn_crop_offsets(&L, in, &oc, &oy, &ox);
    assert_true(oc == 0 && oy == 3 && ox == 4);
    L.woffset = 19;
    shape_fails(&L, in, "8x20x30", "width");
    L = plain(TSR_NN_CROP, 1);
    L.n_starts = L.n_ends = L.n_axes = 2;
    L.starts[0] = L.starts[1] = 4;
    L.ends[0] = L.ends[1] = -4;
    L.axes[0] = -2, L.axes[1] = -1;
    in[0] = map3(8, 20, 30);
    shape_is(&L, in, map3(8, 12, 22));
    tsr__nn_crop_offsets(&L, in, &oc, &oy, &ox);
    assert_true(oc == 0 && oy == 4 && ox == 4);
    L.axes[0] = 1, L.axes[1] = 2; /* Real-CUGAN nose writes the same crop this way */
    shape_is(&L, in, map3(8, 12, 22));
    L.starts[0] = -233, L.ends[0] = 1000; /* from the start; the end clamps to 20 */
    L.starts[1] = -10, L.ends[1] = -233;  /* the last 10 columns */
    shape_is(&L, in, map3(8, 20, 10));
    tsr__nn_crop_offsets(&L, in, &oc, &oy, &ox);
    assert_true(oc == 0 && oy == 0 && ox == 20);
    L.n_axes = 0; /* axes 0, 1: channels and rows */
    L.starts[0] = 2, L.ends[0] = 5, L.starts[1] = 1, L.ends[1] = 0;
    shape_is(&L, in, map3(3, 19, 30));
    L.starts[0] = 6, L.ends[0] = 5;
    shape_fails(&L, in, "8x20x30", "channels");
    L.axes[0] = 1, L.axes[1] = -2, L.n_axes = 2; /* the same axis twice */
    shape_fails(&L, in, "8x20x30", "distinct");
    L = plain(TSR_NN_CROP, 1);
    L.woffset = 2, L.woffset2 = 3, L.hoffset = 1, L.outh = 5, L.coffset = 1;
    shape_is(&L, in, map3(7, 5, 25));
    tsr__nn_crop_offsets(&L, in, &oc, &oy, &ox);
    assert_true(oc == 1 && oy == 1 && ox == 2);
    L.woffset = 27;
    shape_fails(&L, in, "8x20x30", NULL);
}

/* ---- errors with names and lines ------------------------------------------------------------- */

typedef struct files {
    char *param;
    size_t param_len;
    unsigned char *bin;
    size_t bin_len;
} files;

static files read_model(const char *rel)
{
    files f;
    char path[4096];
    snprintf(path, sizeof path, "%s.param", tu_shared(rel));
    f.param = (char *)tu_slurp(path, &f.param_len);
    f.param[f.param_len] = 0; /* the spare byte: the text edits use string functions */
    snprintf(path, sizeof path, "%s.bin", tu_shared(rel));
    f.bin = tu_slurp(path, &f.bin_len);
    return f;
}

static void free_files(files *f)
{
    free(f->param);
    free(f->bin);
}

static tsr_status parse(const char *param, size_t plen, const unsigned char *bin, size_t blen,
                        tsr__err *err)
{
    tsr_nn_model *m = NULL;
    tsr__err_clear(err);
    tsr_status rc = tsr__nn_parse(param, plen, bin, blen, "m.param", "m.bin", &m, err);
    if (rc)
        assert_null(m);
    tsr__nn_free(m);
    return rc;
}

/* The text with line `line` (1-based) replaced by `with`; malloc'ed. */
static char *replace_line(const char *text, int line, const char *with)
{
    size_t n = strlen(text), wl = strlen(with);
    char *out = malloc(n + wl + 2);
    assert_non_null(out);
    const char *p = text;
    for (int i = 1; i < line; i++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    const char *e = strchr(p, '\n');
    size_t head = (size_t)(p - text);
    memcpy(out, text, head);
    memcpy(out + head, with, wl);
    strcpy(out + head + wl, e ? e : "");
    return out;
}

static tsr_status parse_edit(const files *f, int line, const char *with, tsr__err *err)
{
    char *text = replace_line(f->param, line, with);
    tsr_status rc = parse(text, strlen(text), f->bin, f->bin_len, err);
    free(text);
    return rc;
}

static void named_errors(void **state)
{
    files f = read_model(MODELS UPCONV);
    tsr__err err;
    assert_int_equal(parse(f.param, f.param_len, f.bin, f.bin_len, &err), TSR_OK);

    /* Line 3 is Input, 4 conv1_layer, 5 conv2_layer ... 10 conv7_layer. Unknown type: */
    assert_int_equal(parse_edit(&f, 5,
                                "Frobnicate conv2_layer 1 1 conv1_conv1_relu_layer "
                                "conv2_conv2_relu_layer 0=64",
                                &err),
                     TSR_ERR_UNSUPPORTED);
    tu_assert_msg_has(&err, "m.param:5: layer 'conv2_layer' (Frobnicate)");
    tu_assert_msg_has(&err, "unknown layer type 'Frobnicate'");

    /* conv2 reading conv3's output, which line 6 makes. */
    assert_int_equal(parse_edit(&f, 5,
                                "Convolution conv2_layer 1 1 conv3_conv3_relu_layer "
                                "conv2_conv2_relu_layer 0=32 1=3 5=1 6=4608",
                                &err),
                     TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.param:5: layer 'conv2_layer' (Convolution)");
    tu_assert_msg_has(&err, "'conv3_conv3_relu_layer' is not produced by an earlier layer");

    /* One fp32 short: the last layer's bias (3 floats) lacks 4 bytes. */
    assert_int_equal(parse(f.param, f.param_len, f.bin, f.bin_len - 4, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.bin");
    tu_assert_msg_has(&err, "layer 'conv7_layer' (Deconvolution, m.param:10)");
    tu_assert_msg_has(&err, "bias needs 12 bytes");
    tu_assert_msg_has(&err, "only 8 available");

    /* Four bytes too many. */
    unsigned char *longer = calloc(f.bin_len + 4, 1);
    assert_non_null(longer);
    memcpy(longer, f.bin, f.bin_len);
    assert_int_equal(parse(f.param, f.param_len, longer, f.bin_len + 4, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.bin: 4 bytes left over after the last layer");
    free(longer);

    /* Header errors. */
    assert_int_equal(parse_edit(&f, 1, "7767518", &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.param:1: bad magic '7767518'");
    assert_int_equal(parse_edit(&f, 2, "9 8", &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.param:2: layer count mismatch");
    tu_assert_msg_has(&err, "says 9 layers, the file has 8");
    assert_int_equal(parse_edit(&f, 2, "8 9", &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "blob count mismatch");
    assert_int_equal(parse_edit(&f, 2, "8 7", &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.param:10: layer 'conv7_layer'");
    tu_assert_msg_has(&err, "the 7 blobs the header declares");
    assert_int_equal(parse(f.param, 0, f.bin, f.bin_len, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.param:0: the file ends before the magic number");

    /* Layer-line errors, each with its line and layer. */
    static const struct {
        const char *line5; /* replaces conv2_layer */
        const char *want;
    } bad[] = {
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 5=1 "
         "6=4607",
         "weight_data_size (key 6) is 4607, expected a positive multiple of "
         "num_output*kernel_w*kernel_h = 288"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 1=3 6=4608",
         "num_output (key 0) is missing"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=65 "
         "6=4608",
         "kernel_w (key 1) is 65, expected 0..64"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 5=1 "
         "6=4608 40=1",
         "parameter key 40 out of range"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 0=32 "
         "1=3 6=4608",
         "key 0 given twice"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3.0 "
         "6=4608",
         "kernel_w (key 1) is the float 3, expected an integer"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 8=1",
         "int8_scale_term (key 8) is not supported"},
        {"Convolution conv2_layer 2 1 conv1_conv1_relu_layer Input1 conv2_conv2_relu_layer 0=32 "
         "1=3 6=4608 19=1",
         "input count '2' is not valid, expected 1..1"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 -23310=2,0.1",
         "key 10: array has 1 elements, expected 2 as declared"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 -23310=99,0.1",
         "key 10: array of 99 elements, expected at most 16"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 9=2",
         "activation_params (key 10) has 0 elements, expected at least 1"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=99999999999",
         "value '99999999999' is out of range"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 x",
         "malformed parameter 'x', expected <key>=<value>"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv1_conv1_relu_layer 0=32",
         "output blob 'conv1_conv1_relu_layer' is already produced by layer 'conv1_layer' (line "
         "4)"},
        {"Convolution conv1_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608",
         "layer name is already used on line 4"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "4=-1 6=4608",
         "pads (left -1, right -1, top -1, bottom -1) are not supported"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer", "line has 1 blob names, expected "
                                                               "1 inputs and 1 outputs"},
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 2=\"x\"",
         "string value"},
        /* Valid text, but conv2 now wants 4 input channels where conv1 gives 16. */
        {"Convolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=1152",
         "input 16x?x? has 16 channels, expected 4 (num_input)"},
        {"Pooling conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=1",
         "Pooling that is not global is not supported, expected 4=1"},
        {"Concat conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=1",
         "Concat on axis 1 is not supported, expected 0 (channels)"},
        {"PixelShuffle conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=2 1=2",
         "mode (key 1) 2 is not supported, expected 0 (CRD) or 1 (DCR)"},
        {"Interp conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=1 5=1",
         "dynamic_target_size (key 5) is not supported"},
        {"Interp conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=7",
         "resize_type (key 0) 7 is not supported"},
        {"BinaryOp conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=6",
         "op_type (key 0) 6 is not supported"},
        {"Eltwise conv2_layer 2 1 conv1_conv1_relu_layer Input1 conv2_conv2_relu_layer 0=1 "
         "-23301=3,1,1,1",
         "coeffs (key 1) has 3 elements, expected 2"},
        {"Deconvolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 28=1",
         "dynamic_weight (key 28) is not supported"},
        {"Split conv2_layer 1 0 conv1_conv1_relu_layer", "output count '0' is not valid"},
        {"Deconvolution conv2_layer 1 1 conv1_conv1_relu_layer conv2_conv2_relu_layer 0=32 1=3 "
         "6=4608 20=40",
         "output_w/output_h (keys 20/21) 40 x 40 with pads 0, expected both set and pads -233"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsr_status rc = parse_edit(&f, 5, bad[i].line5, &err);
        if (rc == TSR_OK || !strstr(err.msg, "m.param:5: layer 'conv") ||
            !strstr(err.msg, bad[i].want))
            fail_msg("line 5 = %s\n  gave %s: %s\n  expected \"m.param:5: layer 'conv...\" and "
                     "\"%s\"",
                     bad[i].line5, tsr_status_str(rc), err.msg, bad[i].want);
    }
    /* Control bytes are refused with their line. */
    char *ctl = replace_line(f.param, 7, "Convolution conv4_layer\x01");
    assert_int_equal(parse(ctl, strlen(ctl), f.bin, f.bin_len, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "m.param:7: byte 0x01");
    free(ctl);
    /* New-style arrays and blank lines are accepted: the same model loads. */
    char *alt = replace_line(f.param, 4,
                             "\nConvolution conv1_layer 1 1 Input1 conv1_conv1_relu_layer 0=16 "
                             "1=3 5=1 6=432 9=2 10=0.1,0.5\r");
    assert_int_equal(parse(alt, strlen(alt), f.bin, f.bin_len, &err), TSR_OK);
    free(alt);

    /* Weight tags: int8 refused by name; fp32-tagged data of the wrong size runs out. */
    unsigned char *b = malloc(f.bin_len);
    assert_non_null(b);
    memcpy(b, f.bin, f.bin_len);
    memcpy(b, "\x38\x4B\x0D\x00", 4);
    assert_int_equal(parse(f.param, f.param_len, b, f.bin_len, &err), TSR_ERR_UNSUPPORTED);
    tu_assert_msg_has(&err, "layer 'conv1_layer' (Convolution, m.param:4): int8 weights");
    memcpy(b, "\0\0\0\0", 4);
    assert_int_not_equal(parse(f.param, f.param_len, b, f.bin_len, &err), TSR_OK);
    tu_assert_msg_has(&err, "m.bin");
    free(b);
    free_files(&f);
}

/* fp16, fp32 (tag 0 and 0x0002C056) and table-quantised weights decode to the same values; a
 * two-layer model built here. */
static void weight_encodings(void **state)
{
    /* 6=2 with num_output 1 and a 1x1 kernel means 2 input channels; the hint says 1. */
    static const char param[] = "7767517\n2 2\nInput in 0 1 data 2=1\n"
                                "Convolution c 1 1 data out 0=1 1=1 5=1 6=2\n";
    tsr__err err;
    unsigned char bin[2048];
    memset(bin, 0, sizeof bin);
    memcpy(bin, "\x47\x6B\x30\x01\x00\x3C\x00\xC0", 8); /* fp16 1, -2 */
    memcpy(bin + 8, "\x00\x00\x00\x3F", 4);             /* bias 0.5 */
    assert_int_equal(parse(param, strlen(param), bin, 12, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "has 1 channels, expected 2");

    static const char param2[] = "7767517\n2 2\nInput in 0 1 data 2=2\n"
                                 "Convolution c 1 1 data out 0=1 1=1 5=1 6=2\n";
    static const unsigned char tags[3][4] = {{0, 0, 0, 0}, {0x56, 0xC0, 0x02, 0x00}, {1, 2, 3, 4}};
    for (int t = -1; t < 3; t++) {
        size_t n;
        memset(bin, 0, sizeof bin);
        if (t < 0) {
            memcpy(bin, "\x47\x6B\x30\x01\x00\x3C\x00\xC0", 8);
            n = 8;
        } else if (t < 2) {
            memcpy(bin, tags[t], 4);
            memcpy(bin + 4, "\x00\x00\x80\x3F\x00\x00\x00\xC0", 8); /* 1.0f, -2.0f */
            n = 12;
        } else {
            memcpy(bin, tags[t], 4);
            memcpy(bin + 4 + 7 * 4, "\x00\x00\x80\x3F", 4);   /* table[7] = 1 */
            memcpy(bin + 4 + 200 * 4, "\x00\x00\x00\xC0", 4); /* table[200] = -2 */
            bin[4 + 1024] = 7, bin[4 + 1025] = 200;           /* indices, padded to 4 */
            n = 4 + 1024 + 4;
        }
        memcpy(bin + n, "\x00\x00\x00\x3F", 4);
        tsr_nn_model *m = NULL;
        tsr__err_clear(&err);
        if (tsr__nn_parse(param2, strlen(param2), bin, n + 4, "w.param", "w.bin", &m, &err))
            fail_msg("tag case %d: %s", t, err.msg);
        const tsr_nn_layer *L = &m->layers[1];
        assert_true(L->n_weight == 2 && L->weight[0] == 1.0f && L->weight[1] == -2.0f);
        assert_true(L->n_bias == 1 && L->bias[0] == 0.5f);
        assert_int_equal(m->in_channels, 2);
        assert_int_equal(m->out_channels, 1);
        assert_true(m->weight_bytes == 12);
        tsr__nn_free(m);
        /* One byte short anywhere in the layer is an error naming it. */
        assert_int_equal(parse(param2, strlen(param2), bin, n + 3, &err), TSR_ERR_INVALID);
        tu_assert_msg_has(&err, "layer 'c' (Convolution, m.param:4)");
    }
}

/* ---- mutations ----------------------------------------------------------------------------------
 */

static uint32_t rng_state;

static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)rnd() % n : 0;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_put(buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Line starts of text[0..len) into starts (n + 1 entries, the last = len). */
static int line_starts(const char *t, size_t len, size_t *starts, int max)
{
    int n = 0;
    starts[n++] = 0;
    for (size_t i = 0; i < len && n < max; i++)
        if (t[i] == '\n' && i + 1 < len)
            starts[n++] = i + 1;
    starts[n] = len;
    return n;
}

/* One mutation of p (text) or b (binary); describes itself in what. */
static void mutate(buf *p, buf *b, char *what, size_t wlen)
{
    static const char *const numbers[] = {
        "2147483647", "-2147483648", "99999999999", "-1",     "0",      "65537", "-233",
        "-23300",     "1e39",        "3.5",         "-23331", "100001", "7"};
    static size_t starts[2048];
    int kind = (int)rnd_below(11);
    switch (kind) {
    case 0: { /* truncate the .bin */
        size_t at = rnd_below(b->len);
        snprintf(what, wlen, "truncate .bin to %zu of %zu bytes", at, b->len);
        b->len = at;
        break;
    }
    case 1: { /* append to the .bin */
        size_t n = 1 + rnd_below(16);
        unsigned char extra[16];
        for (size_t i = 0; i < n; i++)
            extra[i] = (unsigned char)rnd();
        snprintf(what, wlen, "append %zu bytes to the .bin", n);
        buf_put(b, extra, n);
        break;
    }
    case 2: { /* flip bytes of the .param */
        int n = 1 + (int)rnd_below(3);
        snprintf(what, wlen, "flip %d .param bytes, first at %zu", n, (size_t)0);
        for (int i = 0; i < n && p->len; i++) {
            size_t at = rnd_below(p->len);
            if (i == 0)
                snprintf(what, wlen, "flip %d .param bytes, first at %zu", n, at);
            p->p[at] ^= (char)(1 + rnd_below(255));
        }
        break;
    }
    case 3: { /* flip bytes of the .bin, a weight tag now and then */
        int n = 1 + (int)rnd_below(8);
        size_t first = rnd_below(b->len);
        snprintf(what, wlen, "flip %d .bin bytes, first at %zu", n, first);
        for (int i = 0; i < n && b->len; i++) {
            size_t at = i ? rnd_below(b->len) : first;
            b->p[at] ^= (char)(1 + rnd_below(255));
        }
        break;
    }
    case 4:
    case 5:
    case 6: { /* delete, duplicate, swap lines */
        int n = line_starts(p->p, p->len, starts, 2000);
        int a = (int)rnd_below((size_t)n), c = (int)rnd_below((size_t)n);
        buf out = {0};
        for (int i = 0; i < n; i++) {
            int src = i;
            if (kind == 6)
                src = i == a ? c : i == c ? a : i;
            size_t len = starts[src + 1] - starts[src];
            const char *s = p->p + starts[src];
            if (kind == 4 && i == a)
                continue;
            buf_put(&out, s, len);
            if (len && s[len - 1] != '\n')
                buf_put(&out, "\n", 1);
            if (kind == 5 && i == a)
                buf_put(&out, s, len);
        }
        snprintf(what, wlen, "%s line %d%s%d",
                 kind == 4   ? "delete"
                 : kind == 5 ? "duplicate"
                             : "swap",
                 a + 1, kind == 6 ? " with " : "", kind == 6 ? c + 1 : 0);
        free(p->p);
        *p = out;
        break;
    }
    case 7:
    case 8: { /* replace a number with a hostile one */
        size_t at = rnd_below(p->len);
        while (at < p->len && !(p->p[at] >= '0' && p->p[at] <= '9'))
            at++;
        if (at == p->len)
            at = 0;
        size_t s = at, e = at;
        while (s > 0 && ((p->p[s - 1] >= '0' && p->p[s - 1] <= '9') || p->p[s - 1] == '-'))
            s--;
        while (e < p->len && p->p[e] >= '0' && p->p[e] <= '9')
            e++;
        const char *num = numbers[rnd_below(sizeof numbers / sizeof numbers[0])];
        buf out = {0};
        buf_put(&out, p->p, s);
        buf_put(&out, num, strlen(num));
        buf_put(&out, p->p + e, p->len - e);
        snprintf(what, wlen, "replace the number at byte %zu with %s", s, num);
        free(p->p);
        *p = out;
        break;
    }
    case 9: { /* truncate the .param mid-line */
        size_t at = rnd_below(p->len);
        snprintf(what, wlen, "truncate .param to %zu of %zu bytes", at, p->len);
        p->len = at;
        break;
    }
    default: { /* retag a weight array */
        static const uint32_t tagv[] = {0x000D4B38u, 0, 0x0002C056u, 0x01306B47u, 0x12345678u};
        uint32_t tag = tagv[rnd_below(5)];
        snprintf(what, wlen, "set the first weight tag to 0x%08X", tag);
        if (b->len >= 4)
            for (int i = 0; i < 4; i++)
                b->p[i] = (char)(tag >> (8 * i));
        break;
    }
    }
}

static void mutate_model(const char *rel, int runs, uint32_t seed, int *ok, int *bad)
{
    files f = read_model(rel);
    rng_state = seed;
    for (int r = 0; r < runs; r++) {
        buf p = {0}, b = {0};
        buf_put(&p, f.param, f.param_len);
        buf_put(&b, f.bin, f.bin_len);
        char what[160];
        int n = 1 + (int)rnd_below(3);
        char all[512] = "";
        for (int k = 0; k < n; k++) {
            mutate(&p, &b, what, sizeof what);
            size_t al = strlen(all);
            snprintf(all + al, sizeof all - al, "%s%s", k ? "; " : "", what);
        }
        tsr__err err;
        tsr__err_clear(&err);
        tsr_nn_model *m = NULL;
        tsr_status rc = tsr__nn_parse(p.p, p.len, (unsigned char *)b.p, b.len, "mut.param",
                                      "mut.bin", &m, &err);
        if (rc == TSR_OK) {
            (*ok)++;
            assert_non_null(m);
            tsr_nn_shape *s = calloc((size_t)m->n_blobs, sizeof *s);
            assert_non_null(s);
            tsr__err_clear(&err);
            rc = tsr__nn_shapes(m, m->in_channels, 40, 40, s, &err);
            if (rc && (rc != TSR_ERR_INVALID || !strstr(err.msg, "mut.param:")))
                fail_msg("%s run %d (%s): shapes gave %s: %s", rel, r, all, tsr_status_str(rc),
                         err.msg);
            free(s);
            tsr__nn_free(m);
        } else {
            (*bad)++;
            assert_null(m);
            int named = strstr(err.msg, "mut.param") || strstr(err.msg, "mut.bin");
            int lined = 1;
            if (strstr(err.msg, "layer '")) {
                const char *q = strstr(err.msg, "mut.param:");
                lined = q && q[10] >= '0' && q[10] <= '9';
            }
            if (!named || !lined || err.msg[0] == 0)
                fail_msg("%s run %d (%s): %s without the file name or line: %s", rel, r, all,
                         tsr_status_str(rc), err.msg);
        }
        free(p.p);
        free(b.p);
    }
    free_files(&f);
}

/* The most layers allowed, as a chain of Splits: name lookups must not be quadratic, and an
 * error on the last line still names it. */
static void large_graph(void **state)
{
    enum { N = 100000 };
    buf t = {0};
    char line[128];
    int n = snprintf(line, sizeof line, "7767517\n%d %d\nInput in 0 1 b0 2=3\n", N, N);
    buf_put(&t, line, (size_t)n);
    for (int i = 1; i < N; i++) {
        n = snprintf(line, sizeof line, "Split s%d 1 1 b%d b%d\n", i, i - 1, i);
        buf_put(&t, line, (size_t)n);
    }
    tsr__err err;
    tsr__err_clear(&err);
    tsr_nn_model *m = NULL;
    assert_int_equal(tsr__nn_parse(t.p, t.len, NULL, 0, "big.param", "big.bin", &m, &err), TSR_OK);
    assert_int_equal(m->n_layers, N);
    assert_int_equal(m->output_blob, N - 1);
    assert_int_equal(m->out_channels, 3);
    tsr__nn_free(m);
    /* The last line reads a blob nobody made. */
    t.p[t.len - 9] = 'x'; /* b99998 -> b9999x */
    assert_int_equal(tsr__nn_parse(t.p, t.len, NULL, 0, "big.param", "big.bin", &m, &err),
                     TSR_ERR_INVALID);
    n = snprintf(line, sizeof line, "big.param:%d: layer 's%d' (Split)", N + 2, N - 1);
    tu_assert_msg_has(&err, line);
    unsigned char one = 0;
    t.p[t.len - 9] = '8';
    assert_int_equal(tsr__nn_parse(t.p, t.len, &one, 1, "big.param", "big.bin", &m, &err),
                     TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "big.bin: 1 bytes left over");
    /* One layer too many is refused from the header, before anything is built. */
    memcpy(t.p + 8, "100001", 6);
    assert_int_equal(tsr__nn_parse(t.p, t.len, NULL, 0, "big.param", "big.bin", &m, &err),
                     TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "big.param:2: bad header");
    free(t.p);
}

static void mutations_fail_cleanly(void **state)
{
    int ok = 0, bad = 0;
    mutate_model(MODELS UPCONV, 600, 12345u, &ok, &bad);
    mutate_model(MODELS "realcugan-nose/up2x-no-denoise", 300, 777u, &ok, &bad);
    mutate_model(MODELS "waifu2x-cunet/scale2.0x_model", 200, 4242u, &ok, &bad);
    print_message("mutations: %d clean loads, %d errors\n", ok, bad);
    /* Both outcomes occur: the mutations are neither all harmless nor all fatal. */
    if (ok < 30 || bad < 500)
        fail_msg("%d clean loads, %d errors: the mutations are not doing their job", ok, bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(all_models_load),        cmocka_unit_test(load_from_folder),
        cmocka_unit_test(fp16_decoding),          cmocka_unit_test(known_weights),
        cmocka_unit_test(layer_shapes),           cmocka_unit_test(named_errors),
        cmocka_unit_test(weight_encodings),       cmocka_unit_test(large_graph),
        cmocka_unit_test(mutations_fail_cleanly),
    };
    return cmocka_run_group_tests_name("nn_model", tests, NULL, NULL);
}
