/* The ncnn layers: the C reference (engine/nn_ref.c) against values worked out independently in
 * this file, and the device kernels (kernels/nn.cl) against the reference over awkward shapes
 * (channel counts 3, 5, 13, 67; sizes 1x1, 7x5, 33x17, 130x3) with random weights; the
 * Winograd path of 3x3 stride-1 convolutions and the direct kernels both.
 *
 * Tolerances: copies and per-element layers (Crop, Concat, PixelShuffle, Split-like copies,
 * PReLU, Scale, BinaryOp, Eltwise, pooling, InnerProduct without sigmoid, Interp) must match
 * bit for bit: the kernels do the same float operations in the same order with contraction off.
 * Convolution and Deconvolution sum in another order (taps outer, channels inner, with fma), so
 * each result may differ by a few units in the last place of the largest partial sums: they are
 * held to max |cl - ref| <= 1e-4 * (1 + max |ref|) over the tensor, ~1000 times float epsilon,
 * which the longest sums here (67 channels x 25 taps) stay far inside, while any wrong tap, lost
 * channel or misplaced pixel moves values by O(1). A sigmoid (device exp vs libm expf) gets the
 * same bound.
 *
 * TSR_NN_BENCH=1 instead times the convolution kernels on the device (GFLOP/s, a register-
 * blocked kernel against a naive one-output-per-item kernel) and asserts nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static uint32_t rng = 1;

static float rnd(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)((rng >> 8) * (2.0 / 16777216.0) - 1.0);
}

static tsr_nn_shape sh3(int c, int h, int w)
{
    return (tsr_nn_shape){3, c, h, w};
}

static tsr_nn_shape sh1(int c)
{
    return (tsr_nn_shape){1, c, 1, 1};
}

static tsr_nn_tensor tensor(tsr_nn_shape s)
{
    tsr_nn_tensor t = {s, calloc(tsr__nn_count(s) ? tsr__nn_count(s) : 1, sizeof(float))};
    assert_non_null(t.data);
    return t;
}

static tsr_nn_tensor random_tensor(tsr_nn_shape s)
{
    tsr_nn_tensor t = tensor(s);
    for (size_t i = 0; i < tsr__nn_count(s); i++)
        t.data[i] = rnd();
    return t;
}

static float *random_floats(size_t n, float scale)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = rnd() * scale;
    return v;
}

static tsr_nn_layer layer(tsr_nn_type type, int n_in)
{
    tsr_nn_layer L;
    memset(&L, 0, sizeof L);
    L.type = type;
    L.name = "test";
    L.n_in = n_in;
    L.n_out = 1;
    L.kernel_w = L.kernel_h = L.dilation_w = L.dilation_h = L.stride_w = L.stride_h = 1;
    L.height_scale = L.width_scale = 1.0f;
    L.upscale_factor = 1;
    return L;
}

/* Random weights for a Convolution/Deconvolution, scaled so that outputs stay near 1. */
static void conv_weights(tsr_nn_layer *L, int ic, int bias)
{
    L->num_input = ic;
    L->n_weight = (size_t)L->num_output * ic * L->kernel_h * L->kernel_w;
    L->weight_data_size = (int)L->n_weight;
    L->weight = random_floats(L->n_weight, 1.0f / sqrtf((float)(ic * L->kernel_h * L->kernel_w)));
    L->bias_term = bias;
    if (bias) {
        L->n_bias = (size_t)L->num_output;
        L->bias = random_floats(L->n_bias, 0.5f);
    }
}

static void free_weights(tsr_nn_layer *L)
{
    free(L->weight);
    free(L->bias);
    L->weight = L->bias = NULL;
}

/* Output shape, written from NCNN-FORMAT.md here (the loader's tsr__nn_layer_shape is tested on
 * its own). */
static tsr_nn_shape shape_of(const tsr_nn_layer *L, const tsr_nn_shape *in)
{
    tsr_nn_shape s = in[0];
    switch (L->type) {
    case TSR_NN_CONVOLUTION: {
        int pt = L->pad_top, pb = L->pad_bottom, pl = L->pad_left, pr = L->pad_right;
        int keh = L->dilation_h * (L->kernel_h - 1) + 1,
            kew = L->dilation_w * (L->kernel_w - 1) + 1;
        if (pl == -233 || pl == -234) {
            int th = keh + (s.h - 1) / L->stride_h * L->stride_h - s.h;
            int tw = kew + (s.w - 1) / L->stride_w * L->stride_w - s.w;
            th = th < 0 ? 0 : th, tw = tw < 0 ? 0 : tw;
            pt = th / 2, pb = th - th / 2, pl = tw / 2, pr = tw - tw / 2;
        }
        return sh3(L->num_output, (s.h + pt + pb - keh) / L->stride_h + 1,
                   (s.w + pl + pr - kew) / L->stride_w + 1);
    }
    case TSR_NN_DECONVOLUTION: {
        int fh =
            (s.h - 1) * L->stride_h + L->dilation_h * (L->kernel_h - 1) + 1 + L->output_pad_bottom;
        int fw =
            (s.w - 1) * L->stride_w + L->dilation_w * (L->kernel_w - 1) + 1 + L->output_pad_right;
        if (L->pad_left < 0 && L->output_w > 0)
            return sh3(L->num_output, L->output_h, L->output_w);
        return sh3(L->num_output, fh - L->pad_top - L->pad_bottom, fw - L->pad_left - L->pad_right);
    }
    case TSR_NN_PIXELSHUFFLE: {
        int r = L->upscale_factor;
        return sh3(s.c / (r * r), s.h * r, s.w * r);
    }
    case TSR_NN_INTERP:
        if (L->interp_out_h && L->interp_out_w)
            return sh3(s.c, L->interp_out_h, L->interp_out_w);
        return sh3(s.c, (int)((float)s.h * L->height_scale), (int)((float)s.w * L->width_scale));
    case TSR_NN_BINARYOP:
        if (L->n_in > 1 && in[1].dims == 3 && s.dims != 3)
            return in[1];
        return s;
    case TSR_NN_CONCAT: {
        for (int i = 1; i < L->n_in; i++)
            s.c += in[i].c;
        return s;
    }
    case TSR_NN_CROP: {
        int off[3];
        tsr__err err;
        assert_int_equal(tsr__nn_crop_box(L, in, off, &s, &err), TSR_OK);
        return s;
    }
    case TSR_NN_POOLING: return sh1(s.c);
    case TSR_NN_INNERPRODUCT: return sh1(L->num_output);
    default: return s;
    }
}

static double max_abs(const tsr_nn_tensor *t)
{
    double m = 0;
    for (size_t i = 0; i < tsr__nn_count(t->shape); i++)
        m = fmax(m, fabs(t->data[i]));
    return m;
}

/* The layer on the device: upload, pack weights, run, download into out (shape set). */
static void run_cl(const tsr_nn_layer *L, const tsr_nn_tensor *in, tsr_nn_tensor *out)
{
    tsr_engine *e = tu_engine_cl();
    tsr_exec ex;
    tsr__exec_init(&ex, e, NULL);
    cl_mem din[TSR_MAX_PORTS] = {0}, dout = NULL, w = NULL, scratch = NULL;
    tsr_nn_shape ins[TSR_MAX_PORTS];
    cl_command_queue q = e->cl->queue;
    for (int i = 0; i < L->n_in; i++) {
        ins[i] = in[i].shape;
        size_t bytes = tsr__nn_count(in[i].shape) * sizeof(float);
        assert_int_equal(tsr__pool_alloc(e->pool, bytes, &din[i], tsr__eerr(e)), TSR_OK);
        assert_int_equal(
            clEnqueueWriteBuffer(q, din[i], CL_TRUE, 0, bytes, in[i].data, 0, NULL, NULL),
            CL_SUCCESS);
    }
    size_t obytes = tsr__nn_count(out->shape) * sizeof(float);
    assert_int_equal(tsr__pool_alloc(e->pool, obytes, &dout, tsr__eerr(e)), TSR_OK);
    size_t wbytes = tsr__nn_cl_weight_bytes(L);
    if (wbytes) {
        void *host = malloc(wbytes);
        assert_non_null(host);
        tsr__nn_cl_pack_weights(L, host);
        assert_int_equal(tsr__pool_alloc(e->pool, wbytes, &w, tsr__eerr(e)), TSR_OK);
        assert_int_equal(clEnqueueWriteBuffer(q, w, CL_TRUE, 0, wbytes, host, 0, NULL, NULL),
                         CL_SUCCESS);
        free(host);
    }
    size_t sbytes = tsr__nn_cl_scratch_bytes(L, ins, &out->shape);
    if (sbytes)
        assert_int_equal(tsr__pool_alloc(e->pool, sbytes, &scratch, tsr__eerr(e)), TSR_OK);
    tsr_status rc = tsr__nn_cl_layer(&ex, L, din, ins, &dout, &out->shape, w, scratch);
    if (rc)
        fail_msg("tsr__nn_cl_layer: %s", tsr__eerr(e)->msg);
    assert_int_equal(clFinish(q), CL_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(q, dout, CL_TRUE, 0, obytes, out->data, 0, NULL, NULL),
                     CL_SUCCESS);
    for (int i = 0; i < L->n_in; i++)
        tsr__pool_release(e->pool, din[i]);
    tsr__pool_release(e->pool, dout);
    if (w)
        tsr__pool_release(e->pool, w);
    if (scratch)
        tsr__pool_release(e->pool, scratch);
}

static void run_ref(const tsr_nn_layer *L, const tsr_nn_tensor *in, tsr_nn_tensor *out)
{
    tsr__err err;
    tsr__err_clear(&err);
    if (tsr__nn_ref_layer(L, in, out, &err))
        fail_msg("tsr__nn_ref_layer: %s", err.msg);
}

/* Reference and device on the same inputs; exact or within the convolution tolerance. Frees
 * the inputs. Returns max |cl - ref| / (1 + max |ref|). */
static double check(const char *what, const tsr_nn_layer *L, tsr_nn_tensor *in, int exact)
{
    tsr_nn_shape ins[TSR_MAX_PORTS];
    for (int i = 0; i < L->n_in; i++)
        ins[i] = in[i].shape;
    tsr_nn_shape os = shape_of(L, ins);
    tsr_nn_tensor ref = tensor(os), cl = tensor(os);
    run_ref(L, in, &ref);
    run_cl(L, in, &cl);
    double scale = max_abs(&ref), tol = exact ? 0.0 : 1e-4 * (1.0 + scale), worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < tsr__nn_count(os); i++) {
        double d = fabs((double)ref.data[i] - cl.data[i]);
        int same = exact ? memcmp(&ref.data[i], &cl.data[i], sizeof(float)) == 0 : d <= tol;
        if (!same && !isnan(d)) {
            fail_msg("%s: output %dx%dx%d, element %zu: ref %.9g, cl %.9g (diff %.3g, tolerance "
                     "%.3g)",
                     what, os.c, os.h, os.w, i, ref.data[i], cl.data[i], d, tol);
        }
        if (isnan(d) || d > worst)
            worst = d, at = i;
    }
    assert_false(isnan(worst));
    (void)at;
    free(ref.data);
    free(cl.data);
    for (int i = 0; i < L->n_in; i++)
        free(in[i].data);
    return worst / (1.0 + scale);
}

/* ---- the reference against values worked out by hand ----------------------------------- */

static void ref_conv_by_hand(void **state)
{
    /* in[y][x] = 4y + x + 1 on 4x4, W[ky][kx] = 3ky + kx + 1, bias 0.5, no pad: out[y][x] =
     * 0.5 + sum in[y+ky][x+kx] W[ky][kx]; worked out: 348, 393 / 528, 573 (+0.5). */
    tsr_nn_layer L = layer(TSR_NN_CONVOLUTION, 1);
    L.num_output = 1;
    L.kernel_w = L.kernel_h = 3;
    float w[9], b = 0.5f, x[16], y[4];
    for (int i = 0; i < 9; i++)
        w[i] = (float)(i + 1);
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i + 1);
    L.weight = w, L.n_weight = 9, L.bias = &b, L.n_bias = 1, L.bias_term = 1;
    tsr_nn_tensor in = {sh3(1, 4, 4), x}, out = {sh3(1, 2, 2), y};
    run_ref(&L, &in, &out);
    assert_true(y[0] == 348.5f && y[1] == 393.5f && y[2] == 528.5f && y[3] == 573.5f);
    /* Pad 1 with pad_value 2: the corner sees 5 pad taps: 2*(1+2+3+4+7) + 1*5+2*6+5*8+6*9. */
    L.pad_left = L.pad_right = L.pad_top = L.pad_bottom = 1;
    L.pad_value = 2.0f;
    float z[16];
    out = (tsr_nn_tensor){sh3(1, 4, 4), z};
    run_ref(&L, &in, &out);
    assert_true(z[0] == 0.5f + 2 * (1 + 2 + 3 + 4 + 7) + 1 * 5 + 2 * 6 + 5 * 8 + 6 * 9);
    /* Stride 2, LeakyReLU 0.1 of a negative bias: (348 - 400) * 0.1 at (0, 0). */
    L.pad_left = L.pad_right = L.pad_top = L.pad_bottom = 0;
    L.stride_w = L.stride_h = 2;
    b = -400.0f;
    L.activation = TSR_NN_ACT_LEAKY;
    L.activation_params[0] = 0.1f;
    out = (tsr_nn_tensor){sh3(1, 1, 1), y};
    run_ref(&L, &in, &out);
    assert_true(fabsf(y[0] - (-5.2f)) < 1e-5f);
}

static void ref_deconv_by_hand(void **state)
{
    /* 2x2 stride 2 on [[1,2],[3,4]] with W [[1,2],[3,4]], bias 0.5: each input pixel becomes its
     * own 2x2 block v * W + 0.5. */
    tsr_nn_layer L = layer(TSR_NN_DECONVOLUTION, 1);
    L.num_output = 1;
    L.kernel_w = L.kernel_h = 2;
    L.stride_w = L.stride_h = 2;
    float w[4] = {1, 2, 3, 4}, b = 0.5f, x[4] = {1, 2, 3, 4}, y[16];
    L.weight = w, L.n_weight = 4, L.bias = &b, L.n_bias = 1, L.bias_term = 1;
    tsr_nn_tensor in = {sh3(1, 2, 2), x}, out = {sh3(1, 4, 4), y};
    run_ref(&L, &in, &out);
    static const float want[16] = {1, 2, 2, 4, 3, 4, 6, 8, 3, 6, 4, 8, 9, 12, 12, 16};
    for (int i = 0; i < 16; i++)
        assert_true(y[i] == want[i] + 0.5f);
    /* 3x3 stride 1 pad 1 (overlapping taps) equals a pad-1 convolution with the kernel turned by
     * 180 degrees: checked on a 1x3 row with W row 1 = [1, 10, 100] and others 0. */
    float w3[9] = {0, 0, 0, 1, 10, 100, 0, 0, 0}, r[3] = {1, 2, 3}, o[3];
    L.kernel_w = L.kernel_h = 3;
    L.stride_w = L.stride_h = 1;
    L.pad_left = L.pad_right = L.pad_top = L.pad_bottom = 1;
    L.weight = w3, L.n_weight = 9, L.bias_term = 0, L.bias = NULL;
    in = (tsr_nn_tensor){sh3(1, 1, 3), r};
    out = (tsr_nn_tensor){sh3(1, 1, 3), o};
    run_ref(&L, &in, &out);
    /* full[x + kx] += r[x] W[kx]; trimmed by one: o[j] = sum r[x] W[j + 1 - x]. */
    assert_true(o[0] == 1 * 10 + 2 * 1 && o[1] == 1 * 100 + 2 * 10 + 3 * 1 &&
                o[2] == 2 * 100 + 3 * 10);
}

static void ref_pixelshuffle_mapping(void **state)
{
    int r = 3, C = 2, H = 2, W = 3;
    tsr_nn_tensor in = tensor(sh3(C * r * r, H, W)), out = tensor(sh3(C, H * r, W * r));
    for (int q = 0; q < C * r * r; q++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                in.data[(q * H + y) * W + x] = (float)(100 * q + 10 * y + x);
    for (int mode = 0; mode < 2; mode++) {
        tsr_nn_layer L = layer(TSR_NN_PIXELSHUFFLE, 1);
        L.upscale_factor = r;
        L.pixelshuffle_mode = mode;
        run_ref(&L, &in, &out);
        for (int c = 0; c < C; c++)
            for (int Y = 0; Y < H * r; Y++)
                for (int X = 0; X < W * r; X++) {
                    int i = Y % r, j = X % r, y = Y / r, x = X / r;
                    int q = mode == 0 ? c * r * r + i * r + j : (i * r + j) * C + c;
                    assert_true(out.data[(c * H * r + Y) * W * r + X] == 100 * q + 10 * y + x);
                }
    }
    free(in.data);
    free(out.data);
}

/* Keys' cubic weight of a tap at distance d, A = -0.75 (the OpenCV/PyTorch kernel). */
static double keys(double d)
{
    const double A = -0.75;
    d = fabs(d);
    if (d <= 1)
        return (A + 2) * d * d * d - (A + 3) * d * d + 1;
    if (d < 2)
        return A * d * d * d - 5 * A * d * d + 8 * A * d - 4 * A;
    return 0;
}

static void ref_interp_by_hand(void **state)
{
    /* Nearest x2 of a 2x3 map: every value becomes a 2x2 block. */
    tsr_nn_layer L = layer(TSR_NN_INTERP, 1);
    L.resize_type = TSR_NN_INTERP_NEAREST;
    L.height_scale = L.width_scale = 2.0f;
    float x6[6] = {1, 2, 3, 4, 5, 6}, y24[24];
    tsr_nn_tensor in = {sh3(1, 2, 3), x6}, out = {sh3(1, 4, 6), y24};
    run_ref(&L, &in, &out);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++)
            assert_true(y24[y * 6 + x] == x6[(y / 2) * 3 + x / 2]);
    /* Bilinear 1x2 -> 1x4 of [0, 4], half-pixel centres, edges clamped: 0, 1, 3, 4. */
    L.resize_type = TSR_NN_INTERP_BILINEAR;
    L.height_scale = 1.0f;
    float x2[2] = {0, 4}, y4[4];
    in = (tsr_nn_tensor){sh3(1, 1, 2), x2};
    out = (tsr_nn_tensor){sh3(1, 1, 4), y4};
    run_ref(&L, &in, &out);
    assert_true(y4[0] == 0 && y4[1] == 1 && y4[2] == 3 && y4[3] == 4);
    /* Bicubic 1x5 -> 1x9 and 1x9 -> 1x4 against the textbook form: taps at distances from the
     * sample point fx = (dx + 0.5) * in/out - 0.5, indices clamped, in double. */
    L.resize_type = TSR_NN_INTERP_BICUBIC;
    float src[9] = {1, 4, 2, 8, -3, 0.5f, 7, 7, -1}, dst[9];
    int sizes[2][2] = {{5, 9}, {9, 4}};
    for (int k = 0; k < 2; k++) {
        int n = sizes[k][0], m = sizes[k][1];
        L.interp_out_h = 1;
        L.interp_out_w = m;
        in = (tsr_nn_tensor){sh3(1, 1, n), src};
        out = (tsr_nn_tensor){sh3(1, 1, m), dst};
        run_ref(&L, &in, &out);
        for (int dx = 0; dx < m; dx++) {
            double fx = (dx + 0.5) * n / m - 0.5, want = 0;
            int s = (int)floor(fx);
            for (int t = s - 1; t <= s + 2; t++)
                want += keys(fx - t) * src[t < 0 ? 0 : (t >= n ? n - 1 : t)];
            assert_true(fabs(dst[dx] - want) < 1e-5);
        }
    }
    /* align_corner: the ends land exactly on the ends. */
    L.align_corner = 1;
    L.interp_out_w = 9;
    in = (tsr_nn_tensor){sh3(1, 1, 5), src};
    out = (tsr_nn_tensor){sh3(1, 1, 9), dst};
    run_ref(&L, &in, &out);
    assert_true(dst[0] == src[0] && dst[8] == src[4] && dst[4] == src[2]);
}

static void ref_small_layers_by_hand(void **state)
{
    /* Global average and max, PReLU with one slope, Scale with bias, InnerProduct. */
    float x[6] = {1, -2, 3, -4, 5, 6}, y[6];
    tsr_nn_tensor in = {sh3(2, 1, 3), x}, out = {sh1(2), y};
    tsr_nn_layer L = layer(TSR_NN_POOLING, 1);
    L.global_pooling = 1;
    L.pooling_type = 1;
    run_ref(&L, &in, &out);
    assert_true(y[0] == 2.0f / 3.0f && y[1] == 7.0f / 3.0f);
    L.pooling_type = 0;
    run_ref(&L, &in, &out);
    assert_true(y[0] == 3 && y[1] == 6);
    L = layer(TSR_NN_PRELU, 1);
    float slope = 0.25f;
    L.weight = &slope, L.n_weight = 1;
    out = (tsr_nn_tensor){sh3(2, 1, 3), y};
    run_ref(&L, &in, &out);
    assert_true(y[1] == -0.5f && y[2] == 3 && y[3] == -1);
    L = layer(TSR_NN_SCALE, 1);
    float k[2] = {2, 3}, bias[2] = {1, -1};
    L.weight = k, L.n_weight = 2, L.bias = bias, L.n_bias = 2, L.bias_term = 1;
    L.scale_data_size = 2;
    run_ref(&L, &in, &out);
    assert_true(y[0] == 3 && y[2] == 7 && y[3] == -13 && y[5] == 17);
    L = layer(TSR_NN_INNERPRODUCT, 1);
    float w[12] = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2};
    L.num_output = 2, L.weight = w, L.n_weight = 12, L.bias = bias, L.bias_term = 1;
    L.activation = TSR_NN_ACT_RELU;
    out = (tsr_nn_tensor){sh1(2), y};
    run_ref(&L, &in, &out);
    assert_true(y[0] == 10 && y[1] == 12);
    /* BinaryOp MUL of a 2x1x3 map by a per-channel vector. */
    L = layer(TSR_NN_BINARYOP, 2);
    L.op = TSR_NN_BIN_MUL;
    tsr_nn_tensor two[2] = {in, {sh1(2), k}};
    out = (tsr_nn_tensor){sh3(2, 1, 3), y};
    run_ref(&L, two, &out);
    assert_true(y[0] == 2 && y[1] == -4 && y[3] == -12 && y[5] == 18);
}

static void ref_crop_forms(void **state)
{
    tsr_nn_shape in[2] = {sh3(6, 10, 12), sh3(2, 3, 4)}, out;
    int off[3];
    tsr__err err;
    /* Reference form: B's size at the given offsets. */
    tsr_nn_layer L = layer(TSR_NN_CROP, 2);
    L.woffset = 4, L.hoffset = 4;
    assert_int_equal(tsr__nn_crop_box(&L, in, off, &out, &err), TSR_OK);
    assert_true(off[0] == 0 && off[1] == 4 && off[2] == 4 && out.c == 2 && out.h == 3 &&
                out.w == 4);
    /* Slice form: 4 off every side of h and w (axes -2, -1). */
    L = layer(TSR_NN_CROP, 1);
    L.n_starts = L.n_ends = L.n_axes = 2;
    L.starts[0] = L.starts[1] = 4;
    L.ends[0] = L.ends[1] = -4;
    L.axes[0] = -2, L.axes[1] = -1;
    assert_int_equal(tsr__nn_crop_box(&L, in, off, &out, &err), TSR_OK);
    assert_true(off[1] == 4 && off[2] == 4 && out.c == 6 && out.h == 2 && out.w == 4);
    /* Channels 1..3 by a slice with -233 meaning "to the end" clamped by the end 4. */
    L.n_starts = L.n_ends = 1, L.n_axes = 0;
    L.starts[0] = 1, L.ends[0] = 4;
    assert_int_equal(tsr__nn_crop_box(&L, in, off, &out, &err), TSR_OK);
    assert_true(off[0] == 1 && out.c == 3 && out.h == 10 && out.w == 12);
    /* Legacy: offsets, far-end offsets and a size. */
    L = layer(TSR_NN_CROP, 1);
    L.woffset = 1, L.woffset2 = 2, L.hoffset = 3, L.outh = 5, L.coffset = 2;
    assert_int_equal(tsr__nn_crop_box(&L, in, off, &out, &err), TSR_OK);
    assert_true(off[0] == 2 && off[1] == 3 && off[2] == 1 && out.c == 4 && out.h == 5 &&
                out.w == 9);
    /* A box leaving the input is refused with the layer's name. */
    L.hoffset = 10;
    assert_int_equal(tsr__nn_crop_box(&L, in, off, &out, &err), TSR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'test'"));
}

/* ---- device against reference ---------------------------------------------------------- */

static void conv_cases_px(void);
static void deconv_cases_px(void);

typedef struct conv_case {
    int ic, oc, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
    float pad_value;
    int act, h, w, bias;
} conv_case;

static void conv_cases(void **state)
{
    for (int v = 0; v < 2; v++) {
        tsr__nn_cl_px = v ? 4 : 16; /* both kernel variants (CPU and GPU blocking) */
        for (int direct = 0; direct < 2; direct++) { /* 3x3 stride 1: Winograd, then direct */
            tsr__nn_cl_no_winograd = direct;
            conv_cases_px();
        }
        tsr__nn_cl_no_winograd = 0;
        deconv_cases_px();
    }
    tsr__nn_cl_px = 0;
}

/* Winograd F(4x4, 3x3) (kernels/nn_winograd.cl) on awkward shapes: channel counts that fill no
 * block (3, 5, 13, 67) or exactly (64), sizes below one tile (1x1, 3x3), partial tiles on both
 * axes (7x5, 33x17), a tall thin one (130x3, one tile column padded to four); pad 0 and 1,
 * asymmetric pads, a nonzero pad_value; with and without bias, LeakyReLU; an output of more
 * tiles than one chunk; both the fused (CPU) and the three-launch (GPU) forms. The same tolerance
 * as the direct kernels, 1e-4 * (1 + max |ref|): the transforms scale values by up to 5 (B) and 8
 * (A) before the sums cancel, which costs a few bits over the direct sum, still far inside it (the
 * largest error seen is printed; about 1e-6 here, against O(1) for a wrong tap or tile). */
static void winograd_cases(void **state)
{
    static const int chans[][2] = {{3, 64},  {64, 3},  {5, 13}, {13, 5},
                                   {64, 64}, {67, 67}, {64, 48}};
    static const int sizes[][2] = {{1, 1}, {3, 3}, {7, 5}, {33, 17}, {130, 3}};
    static const int pads[][4] = {{1, 1, 1, 1}, {0, 0, 0, 0}, {2, 0, 0, 2}};
    double worst = 0;
    int n = 0;
    for (int v = 0; v < 2; v++) {
        tsr__nn_cl_px = v ? 4 : 16;
        for (size_t c = 0; c < sizeof chans / sizeof chans[0]; c++)
            for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
                for (size_t p = 0; p < sizeof pads / sizeof pads[0]; p++) {
                    int h = sizes[z][0], w = sizes[z][1];
                    if (h + pads[p][0] + pads[p][1] < 3 || w + pads[p][2] + pads[p][3] < 3)
                        continue; /* no output */
                    if ((chans[c][0] > 13 || chans[c][1] > 13) && z == 4 && p == 2)
                        continue; /* keeps the reference's share of the run short */
                    tsr_nn_layer L = layer(TSR_NN_CONVOLUTION, 1);
                    L.num_output = chans[c][1];
                    L.kernel_h = L.kernel_w = 3, L.stride_h = L.stride_w = 1;
                    L.dilation_h = L.dilation_w = 1;
                    L.pad_top = pads[p][0], L.pad_bottom = pads[p][1];
                    L.pad_left = pads[p][2], L.pad_right = pads[p][3];
                    L.pad_value = p == 2 && c % 2 ? -0.5f : 0.0f;
                    L.activation = (c + z) % 2 ? TSR_NN_ACT_LEAKY : TSR_NN_ACT_NONE;
                    L.activation_params[0] = 0.1f;
                    conv_weights(&L, chans[c][0], (c + z + p) % 2 == 0);
                    tsr_nn_tensor in = random_tensor(sh3(chans[c][0], h, w));
                    char what[96];
                    snprintf(what, sizeof what, "winograd %d->%d %dx%d pads %d%d%d%d px %d",
                             chans[c][0], chans[c][1], h, w, pads[p][0], pads[p][1], pads[p][2],
                             pads[p][3], tsr__nn_cl_px);
                    worst = fmax(worst, check(what, &L, &in, 0));
                    free_weights(&L);
                    n++;
                }
    }
    /* More tiles than one chunk (2048): 48 x 50 tiles, the second chunk partial. */
    for (int v = 0; v < 2; v++) {
        tsr__nn_cl_px = v ? 4 : 16;
        tsr_nn_layer L = layer(TSR_NN_CONVOLUTION, 1);
        L.num_output = 5;
        L.kernel_h = L.kernel_w = 3, L.stride_h = L.stride_w = 1;
        L.dilation_h = L.dilation_w = 1;
        L.pad_top = L.pad_bottom = L.pad_left = L.pad_right = 1;
        L.activation = TSR_NN_ACT_LEAKY;
        L.activation_params[0] = 0.1f;
        conv_weights(&L, 4, 1);
        tsr_nn_tensor in = random_tensor(sh3(4, 200, 180));
        worst = fmax(worst, check("winograd over two chunks", &L, &in, 0));
        free_weights(&L);
        n++;
    }
    tsr__nn_cl_px = 0;
    printf("winograd: %d cases, max |cl - ref| / (1 + max |ref|) = %.3g\n", n, worst);
}

static void conv_cases_px(void)
{
    static const conv_case cases[] = {
        {3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, TSR_NN_ACT_RELU, 7, 5, 1},
        {13, 67, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, TSR_NN_ACT_LEAKY, 33, 17, 1},
        {67, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, TSR_NN_ACT_NONE, 9, 13, 0},
        {5, 3, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, TSR_NN_ACT_NONE, 4, 130, 1},
        {8, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, TSR_NN_ACT_SIGMOID, 1, 1, 1},
        {4, 12, 3, 3, 1, 1, 2, 2, 2, 1, 0, 3, 0.5f, TSR_NN_ACT_CLIP, 9, 11, 1},
        {64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, TSR_NN_ACT_LEAKY, 16, 20, 1},
        {16, 48, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, TSR_NN_ACT_NONE, 12, 19, 1},
        {7, 4, 3, 5, 2, 1, 1, 1, -233, -233, -233, -233, 0, TSR_NN_ACT_NONE, 8, 7, 1},
        {3, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, TSR_NN_ACT_RELU, 130, 3, 1},
        {5, 9, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, -1.0f, TSR_NN_ACT_NONE, 11, 23, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        tsr_nn_layer L = layer(TSR_NN_CONVOLUTION, 1);
        L.num_output = c->oc;
        L.kernel_h = c->kh, L.kernel_w = c->kw, L.stride_h = c->sh, L.stride_w = c->sw;
        L.dilation_h = c->dh, L.dilation_w = c->dw;
        L.pad_top = c->pt, L.pad_bottom = c->pb, L.pad_left = c->pl, L.pad_right = c->pr;
        L.pad_value = c->pad_value;
        L.activation = c->act;
        L.activation_params[0] = c->act == TSR_NN_ACT_CLIP ? -0.3f : 0.1f;
        L.activation_params[1] = 0.4f;
        conv_weights(&L, c->ic, c->bias);
        tsr_nn_tensor in = random_tensor(sh3(c->ic, c->h, c->w));
        char what[64];
        snprintf(what, sizeof what, "convolution case %zu", i);
        check(what, &L, &in, 0);
        free_weights(&L);
    }
}

static void deconv_cases_px(void)
{
    static const conv_case cases[] = {
        {13, 5, 4, 4, 2, 2, 1, 1, 3, 3, 3, 3, 0, TSR_NN_ACT_NONE, 7, 5, 1},
        {8, 12, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, TSR_NN_ACT_LEAKY, 9, 3, 1},
        {6, 3, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 0, TSR_NN_ACT_NONE, 5, 4, 1},
        {3, 17, 3, 3, 2, 2, 2, 2, 0, 0, 0, 0, 0, TSR_NN_ACT_RELU, 6, 7, 1},
        {67, 64, 4, 4, 2, 2, 1, 1, 3, 3, 3, 3, 0, TSR_NN_ACT_NONE, 11, 10, 1},
        {5, 9, 4, 4, 2, 2, 1, 1, 0, 0, 0, 0, 0, TSR_NN_ACT_SIGMOID, 1, 1, 0},
        {4, 7, 3, 2, 3, 1, 1, 1, 1, 0, 0, 1, 0, TSR_NN_ACT_NONE, 5, 13, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        tsr_nn_layer L = layer(TSR_NN_DECONVOLUTION, 1);
        L.num_output = c->oc;
        L.kernel_h = c->kh, L.kernel_w = c->kw, L.stride_h = c->sh, L.stride_w = c->sw;
        L.dilation_h = c->dh, L.dilation_w = c->dw;
        L.pad_top = c->pt, L.pad_bottom = c->pb, L.pad_left = c->pl, L.pad_right = c->pr;
        L.activation = c->act;
        L.activation_params[0] = 0.1f;
        if (i == 3) /* output_pad: one more row and column past the last tap */
            L.output_pad_right = L.output_pad_bottom = 1;
        conv_weights(&L, c->ic, c->bias);
        tsr_nn_tensor in = random_tensor(sh3(c->ic, c->h, c->w));
        char what[64];
        snprintf(what, sizeof what, "deconvolution case %zu", i);
        check(what, &L, &in, 0);
        free_weights(&L);
    }
    /* output_w/output_h with SAME_UPPER and SAME_LOWER: the excess split both ways. */
    for (int mode = -234; mode <= -233; mode++) {
        tsr_nn_layer L = layer(TSR_NN_DECONVOLUTION, 1);
        L.num_output = 5;
        L.kernel_h = L.kernel_w = 3, L.stride_h = L.stride_w = 2;
        L.pad_top = L.pad_bottom = L.pad_left = L.pad_right = mode;
        L.output_w = 12, L.output_h = 9;
        conv_weights(&L, 3, 1);
        tsr_nn_tensor in = random_tensor(sh3(3, 5, 6));
        check("deconvolution with output_w/h", &L, &in, 0);
        free_weights(&L);
    }
}

static void elementwise_cases(void **state)
{
    /* PReLU, one slope and one per channel. */
    for (int per = 0; per < 2; per++) {
        tsr_nn_layer L = layer(TSR_NN_PRELU, 1);
        L.n_weight = per ? 13 : 1;
        L.weight = random_floats(L.n_weight, 0.5f);
        tsr_nn_tensor in = random_tensor(sh3(13, 7, 5));
        check("prelu", &L, &in, 1);
        free_weights(&L);
    }
    /* Scale: own weights with and without bias, and the -233 two-input form. */
    for (int bias = 0; bias < 2; bias++) {
        tsr_nn_layer L = layer(TSR_NN_SCALE, 1);
        L.scale_data_size = 67;
        L.n_weight = 67;
        L.weight = random_floats(67, 2.0f);
        L.bias_term = bias;
        L.n_bias = bias ? 67 : 0;
        L.bias = bias ? random_floats(67, 1.0f) : NULL;
        tsr_nn_tensor in = random_tensor(sh3(67, 3, 5));
        check("scale", &L, &in, 1);
        free_weights(&L);
    }
    tsr_nn_layer L = layer(TSR_NN_SCALE, 2);
    L.scale_data_size = -233;
    tsr_nn_tensor two[2] = {random_tensor(sh3(13, 33, 17)), random_tensor(sh1(13))};
    check("scale -233", &L, two, 1);
    /* BinaryOp: every op on equal shapes, a map times a channel vector both ways, a scalar. */
    for (int op = TSR_NN_BIN_ADD; op <= TSR_NN_BIN_MIN; op++) {
        L = layer(TSR_NN_BINARYOP, 2);
        L.op = op;
        two[0] = random_tensor(sh3(5, 7, 5));
        two[1] = random_tensor(sh3(5, 7, 5));
        check("binaryop", &L, two, 1);
    }
    L = layer(TSR_NN_BINARYOP, 2);
    L.op = TSR_NN_BIN_MUL;
    two[0] = random_tensor(sh3(67, 5, 7));
    two[1] = random_tensor(sh1(67));
    check("binaryop map x vector", &L, two, 1);
    L.op = TSR_NN_BIN_SUB;
    two[0] = random_tensor(sh1(13));
    two[1] = random_tensor(sh3(13, 1, 1));
    check("binaryop vector - 1x1 map", &L, two, 1);
    two[0] = random_tensor(sh1(3));
    two[1] = random_tensor(sh3(3, 33, 17));
    check("binaryop vector - map", &L, two, 1);
    L = layer(TSR_NN_BINARYOP, 1);
    L.op = TSR_NN_BIN_DIV, L.with_scalar = 1, L.b = 3.0f;
    two[0] = random_tensor(sh3(3, 130, 3));
    check("binaryop scalar", &L, two, 1);
    /* Eltwise: SUM with coeffs over 3 inputs, plain SUM, PROD, MAX. */
    for (int op = 0; op < 4; op++) {
        L = layer(TSR_NN_ELTWISE, op == 3 ? 3 : 2);
        L.op = op == 3 ? TSR_NN_ELT_SUM : op;
        if (op == 3) {
            L.n_coeffs = 3;
            L.coeffs[0] = 0.2f, L.coeffs[1] = 1.0f, L.coeffs[2] = -0.7f;
        }
        tsr_nn_tensor in[3];
        for (int i = 0; i < L.n_in; i++)
            in[i] = random_tensor(sh3(5, 33, 17));
        check("eltwise", &L, in, 1);
    }
}

static void resampling_cases(void **state)
{
    /* PixelShuffle both modes. */
    for (int mode = 0; mode < 2; mode++) {
        tsr_nn_layer L = layer(TSR_NN_PIXELSHUFFLE, 1);
        L.upscale_factor = mode ? 4 : 2;
        L.pixelshuffle_mode = mode;
        tsr_nn_tensor in = random_tensor(sh3(mode ? 48 : 12, 7, 5));
        check("pixelshuffle", &L, &in, 1);
    }
    /* Interp: nearest by scale and by size, bilinear and bicubic up and down, align_corner. */
    struct {
        int type;
        float hs, ws;
        int oh, ow, align, h, w;
    } cases[] = {
        {TSR_NN_INTERP_NEAREST, 4.0f, 4.0f, 0, 0, 0, 7, 5},
        {TSR_NN_INTERP_NEAREST, 1.0f, 1.0f, 10, 3, 0, 7, 5},
        {TSR_NN_INTERP_BILINEAR, 2.0f, 2.0f, 0, 0, 0, 33, 17},
        {TSR_NN_INTERP_BILINEAR, 0.5f, 0.5f, 0, 0, 1, 33, 17},
        {TSR_NN_INTERP_BICUBIC, 4.0f, 4.0f, 0, 0, 0, 7, 5},
        {TSR_NN_INTERP_BICUBIC, 0.75f, 0.5f, 0, 0, 0, 33, 17},
        {TSR_NN_INTERP_BICUBIC, 1.0f, 1.0f, 5, 9, 1, 1, 1},
        {TSR_NN_INTERP_BICUBIC, 1.0f, 1.0f, 13, 2, 0, 3, 130},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_nn_layer L = layer(TSR_NN_INTERP, 1);
        L.resize_type = cases[i].type;
        L.height_scale = cases[i].hs, L.width_scale = cases[i].ws;
        L.interp_out_h = cases[i].oh, L.interp_out_w = cases[i].ow;
        L.align_corner = cases[i].align;
        tsr_nn_tensor in = random_tensor(sh3(3, cases[i].h, cases[i].w));
        char what[32];
        snprintf(what, sizeof what, "interp case %zu", i);
        check(what, &L, &in, 1);
    }
}

static void structural_cases(void **state)
{
    /* Concat of maps and of vectors. */
    tsr_nn_layer L = layer(TSR_NN_CONCAT, 3);
    tsr_nn_tensor in[3] = {random_tensor(sh3(3, 7, 5)), random_tensor(sh3(5, 7, 5)),
                           random_tensor(sh3(13, 7, 5))};
    check("concat", &L, in, 1);
    L.n_in = 2;
    in[0] = random_tensor(sh1(67));
    in[1] = random_tensor(sh1(3));
    check("concat vectors", &L, in, 1);
    /* Crop: reference form, slice forms, legacy form, a vector. */
    L = layer(TSR_NN_CROP, 2);
    L.woffset = 4, L.hoffset = 3, L.coffset = 1;
    in[0] = random_tensor(sh3(13, 33, 17));
    in[1] = random_tensor(sh3(5, 20, 9));
    check("crop reference", &L, in, 1);
    L = layer(TSR_NN_CROP, 1);
    L.n_starts = L.n_ends = L.n_axes = 2;
    L.starts[0] = L.starts[1] = 4;
    L.ends[0] = L.ends[1] = -4;
    L.axes[0] = 1, L.axes[1] = 2;
    in[0] = random_tensor(sh3(5, 33, 17));
    check("crop slice", &L, in, 1);
    L.n_starts = L.n_ends = L.n_axes = 3;
    L.starts[0] = -3, L.ends[0] = -233, L.axes[0] = 0;
    L.axes[1] = 1;
    L.starts[2] = -233, L.ends[2] = 2, L.axes[2] = -1;
    in[0] = random_tensor(sh3(67, 9, 130));
    check("crop slice 3 axes", &L, in, 1);
    L = layer(TSR_NN_CROP, 1);
    L.woffset = 2, L.woffset2 = 1, L.hoffset = 1, L.outh = 3, L.coffset2 = 2;
    in[0] = random_tensor(sh3(13, 7, 5));
    check("crop legacy", &L, in, 1);
    L = layer(TSR_NN_CROP, 1);
    L.woffset = 5, L.outw = 7;
    in[0] = random_tensor(sh1(67));
    check("crop vector", &L, in, 1);
    /* Split copies (the device path copies too, though the executor aliases). */
    L = layer(TSR_NN_SPLIT, 1);
    in[0] = random_tensor(sh3(3, 130, 3));
    check("split", &L, in, 1);
}

static void reduction_cases(void **state)
{
    for (int type = 0; type < 2; type++) {
        tsr_nn_layer L = layer(TSR_NN_POOLING, 1);
        L.global_pooling = 1, L.pooling_type = type;
        tsr_nn_tensor in = random_tensor(sh3(67, 7, 5));
        check("global pooling", &L, &in, 1);
        in = random_tensor(sh3(13, 33, 17));
        check("global pooling", &L, &in, 1);
    }
    /* InnerProduct on a vector (SE blocks: ReLU, Sigmoid) and on a flattened map. */
    int acts[3] = {TSR_NN_ACT_RELU, TSR_NN_ACT_SIGMOID, TSR_NN_ACT_NONE};
    tsr_nn_shape shapes[3] = {sh1(67), sh1(13), sh3(3, 7, 5)};
    int outs[3] = {13, 67, 5};
    for (int i = 0; i < 3; i++) {
        tsr_nn_layer L = layer(TSR_NN_INNERPRODUCT, 1);
        L.num_output = outs[i];
        L.activation = acts[i];
        L.n_weight = tsr__nn_count(shapes[i]) * outs[i];
        L.weight = random_floats(L.n_weight, 0.3f);
        L.bias_term = i != 2;
        L.n_bias = L.bias_term ? (size_t)outs[i] : 0;
        L.bias = L.bias_term ? random_floats(L.n_bias, 0.5f) : NULL;
        tsr_nn_tensor in = random_tensor(shapes[i]);
        check("innerproduct", &L, &in, acts[i] != TSR_NN_ACT_SIGMOID);
        free_weights(&L);
    }
}

/* ---- speed (TSR_NN_BENCH=1) -------------------------------------------------------------- */

/* One output per work item, weights as loaded: what the register blocking is measured against. */
static const char naive_src[] =
    "__kernel void naive_conv(__global const float *in, __global float *out,\n"
    "    __global const float *w, __global const float *bias, int ic, int ih, int iw, int oc,\n"
    "    int oh, int ow, int k, int pad)\n"
    "{\n"
    "    int x = get_global_id(0), y = get_global_id(1), p = get_global_id(2);\n"
    "    if (x >= ow || y >= oh) return;\n"
    "    float acc = bias[p];\n"
    "    for (int q = 0; q < ic; q++)\n"
    "        for (int ky = 0; ky < k; ky++) {\n"
    "            int iy = y - pad + ky;\n"
    "            if (iy < 0 || iy >= ih) continue;\n"
    "            for (int kx = 0; kx < k; kx++) {\n"
    "                int ix = x - pad + kx;\n"
    "                if (ix < 0 || ix >= iw) continue;\n"
    "                acc += in[(q * ih + iy) * iw + ix] * w[((p * ic + q) * k + ky) * k + kx];\n"
    "            }\n"
    "        }\n"
    "    out[(p * oh + y) * ow + x] = acc;\n"
    "}\n";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Seconds per run of the layer on the device (best of `reps` after one warm-up). */
static double time_layer(const tsr_nn_layer *L, tsr_nn_shape is, tsr_nn_shape os, int reps)
{
    tsr_engine *e = tu_engine_cl();
    tsr_exec ex;
    tsr__exec_init(&ex, e, NULL);
    cl_mem in, out, w, scratch = NULL;
    size_t wbytes = tsr__nn_cl_weight_bytes(L), sbytes = tsr__nn_cl_scratch_bytes(L, &is, &os);
    if (sbytes)
        assert_int_equal(tsr__pool_alloc(e->pool, sbytes, &scratch, tsr__eerr(e)), TSR_OK);
    void *host = malloc(wbytes);
    assert_non_null(host);
    tsr__nn_cl_pack_weights(L, host);
    assert_int_equal(tsr__pool_alloc(e->pool, tsr__nn_count(is) * 4, &in, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, tsr__nn_count(os) * 4, &out, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, wbytes, &w, tsr__eerr(e)), TSR_OK);
    assert_int_equal(clEnqueueWriteBuffer(e->cl->queue, w, CL_TRUE, 0, wbytes, host, 0, NULL, NULL),
                     CL_SUCCESS);
    free(host);
    double best = 1e9;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        assert_int_equal(tsr__nn_cl_layer(&ex, L, &in, &is, &out, &os, w, scratch), TSR_OK);
        assert_int_equal(clFinish(e->cl->queue), CL_SUCCESS);
        if (r && now() - t0 < best)
            best = now() - t0;
    }
    tsr__pool_release(e->pool, in);
    tsr__pool_release(e->pool, out);
    tsr__pool_release(e->pool, w);
    if (scratch)
        tsr__pool_release(e->pool, scratch);
    return best;
}

static double time_naive(int ic, int oc, int h, int w, int reps)
{
    tsr_engine *e = tu_engine_cl();
    const char *s = naive_src;
    size_t len = sizeof naive_src - 1;
    cl_program prog;
    assert_int_equal(tsr__cl_build_source(e->cl, "naive", 1, &s, &len, &prog, tsr__eerr(e)),
                     TSR_OK);
    cl_int st;
    cl_kernel k = clCreateKernel(prog, "naive_conv", &st);
    assert_int_equal(st, CL_SUCCESS);
    cl_mem in, out, wt, b;
    assert_int_equal(tsr__pool_alloc(e->pool, (size_t)ic * h * w * 4, &in, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, (size_t)oc * h * w * 4, &out, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, (size_t)oc * ic * 9 * 4, &wt, tsr__eerr(e)), TSR_OK);
    assert_int_equal(tsr__pool_alloc(e->pool, (size_t)oc * 4, &b, tsr__eerr(e)), TSR_OK);
    cl_int a[8] = {ic, h, w, oc, h, w, 3, 1};
    clSetKernelArg(k, 0, sizeof in, &in);
    clSetKernelArg(k, 1, sizeof out, &out);
    clSetKernelArg(k, 2, sizeof wt, &wt);
    clSetKernelArg(k, 3, sizeof b, &b);
    for (int i = 0; i < 8; i++)
        assert_int_equal(clSetKernelArg(k, 4 + i, sizeof(cl_int), &a[i]), CL_SUCCESS);
    size_t global[3] = {(size_t)w, (size_t)h, (size_t)oc}, local[3] = {16, 16, 1};
    double best = 1e9;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        assert_int_equal(
            clEnqueueNDRangeKernel(e->cl->queue, k, 3, NULL, global, local, 0, NULL, NULL),
            CL_SUCCESS);
        assert_int_equal(clFinish(e->cl->queue), CL_SUCCESS);
        if (r && now() - t0 < best)
            best = now() - t0;
    }
    tsr__pool_release(e->pool, in);
    tsr__pool_release(e->pool, out);
    tsr__pool_release(e->pool, wt);
    tsr__pool_release(e->pool, b);
    clReleaseKernel(k);
    clReleaseProgram(prog);
    return best;
}

static void bench(void **state)
{
    struct {
        const char *name;
        tsr_nn_type type;
        int ic, oc, k, s, pad, h, w;
    } cases[] = {
        {"conv 3x3 64->64 pad 1", TSR_NN_CONVOLUTION, 64, 64, 3, 1, 1, 128, 128},
        {"conv 3x3 64->64 valid", TSR_NN_CONVOLUTION, 64, 64, 3, 1, 0, 128, 128},
        {"conv 2x2 s2 64->64", TSR_NN_CONVOLUTION, 64, 64, 2, 2, 0, 128, 128},
        {"conv 3x3 3->64 pad 1", TSR_NN_CONVOLUTION, 3, 64, 3, 1, 1, 128, 128},
        {"conv 3x3 64->3 pad 1", TSR_NN_CONVOLUTION, 64, 3, 3, 1, 1, 128, 128},
        {"conv 3x3 64->48 pad 1", TSR_NN_CONVOLUTION, 64, 48, 3, 1, 1, 128, 128},
        {"conv 3x3 64->12 pad 1", TSR_NN_CONVOLUTION, 64, 12, 3, 1, 1, 128, 128},
        {"conv 3x3 16->32 pad 1", TSR_NN_CONVOLUTION, 16, 32, 3, 1, 1, 128, 128},
        {"conv 3x3 64->64 pad 1", TSR_NN_CONVOLUTION, 64, 64, 3, 1, 1, 512, 512},
        {"conv 3x3 128->128 valid", TSR_NN_CONVOLUTION, 128, 128, 3, 1, 0, 128, 128},
        {"conv 3x3 128->256 valid", TSR_NN_CONVOLUTION, 128, 256, 3, 1, 0, 128, 128},
        {"deconv 4x4 s2 p3 64->64", TSR_NN_DECONVOLUTION, 64, 64, 4, 2, 3, 64, 64},
        {"deconv 2x2 s2 64->64", TSR_NN_DECONVOLUTION, 64, 64, 2, 2, 0, 64, 64},
        {"deconv 5x5 s3 p2 64->3", TSR_NN_DECONVOLUTION, 64, 3, 5, 3, 2, 64, 64},
        {"deconv 4x4 s2 p3 64->3", TSR_NN_DECONVOLUTION, 64, 3, 4, 2, 3, 64, 64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_nn_layer L = layer(cases[i].type, 1);
        L.num_output = cases[i].oc;
        L.kernel_w = L.kernel_h = cases[i].k;
        L.stride_w = L.stride_h = cases[i].s;
        L.pad_left = L.pad_right = L.pad_top = L.pad_bottom = cases[i].pad;
        L.activation = TSR_NN_ACT_LEAKY;
        L.activation_params[0] = 0.1f;
        conv_weights(&L, cases[i].ic, 1);
        tsr_nn_shape is = sh3(cases[i].ic, cases[i].h, cases[i].w), os = shape_of(&L, &is);
        /* Useful multiply-adds: a deconvolution's full output counts each input tap once;
         * Winograd's rate is counted in the direct convolution's multiply-adds. */
        double macs = L.type == TSR_NN_CONVOLUTION
                          ? (double)tsr__nn_count(os) * cases[i].ic * cases[i].k * cases[i].k
                          : (double)tsr__nn_count(is) * cases[i].oc * cases[i].k * cases[i].k;
        int wino = L.type == TSR_NN_CONVOLUTION && cases[i].k == 3 && cases[i].s == 1;
        for (int direct = wino; direct >= 0; direct--) {
            tsr__nn_cl_no_winograd = direct;
            double t = time_layer(&L, is, os, 5);
            printf("%-26s %4dx%-4d %8.2f ms %7.1f GFLOP/s%s\n", cases[i].name, cases[i].w,
                   cases[i].h, t * 1e3, 2 * macs / t * 1e-9,
                   !wino    ? ""
                   : direct ? "  direct"
                            : "  winograd");
        }
        tsr__nn_cl_no_winograd = 0;
        free_weights(&L);
    }
    double t = time_naive(64, 64, 128, 128, 2);
    printf("%-26s %4dx%-4d %8.2f ms %7.1f GFLOP/s\n", "naive conv 3x3 64->64 pad1", 128, 128,
           t * 1e3, 2.0 * 64 * 64 * 9 * 128 * 128 / t * 1e-9);
}

int main(void)
{
    if (getenv("TSR_NN_BENCH")) {
        const struct CMUnitTest b[] = {cmocka_unit_test(bench)};
        return cmocka_run_group_tests_name("nn_layers bench", b, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ref_conv_by_hand),
        cmocka_unit_test(ref_deconv_by_hand),
        cmocka_unit_test(ref_pixelshuffle_mapping),
        cmocka_unit_test(ref_interp_by_hand),
        cmocka_unit_test(ref_small_layers_by_hand),
        cmocka_unit_test(ref_crop_forms),
        cmocka_unit_test(conv_cases),
        cmocka_unit_test(winograd_cases),
        cmocka_unit_test(elementwise_cases),
        cmocka_unit_test(resampling_cases),
        cmocka_unit_test(structural_cases),
        cmocka_unit_test(reduction_cases),
    };
    return cmocka_run_group_tests_name("nn_layers", tests, NULL, NULL);
}
