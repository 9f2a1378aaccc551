/* The plain-C definition of every layer type (../shared/models/NCNN-FORMAT.md section 4): the
 * reference path of the upscale node and what tests/unit/test_nn_layers.c holds the OpenCL
 * kernels to. fp32 throughout; each output sums in a fixed order: bias, then input channels,
 * then kernel rows, then kernel columns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

static float activate(const tsr_nn_layer *L, float v)
{
    switch (L->activation) {
    case TSR_NN_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case TSR_NN_ACT_LEAKY:
        return v > 0.0f ? v : v * L->activation_params[0];
    case TSR_NN_ACT_CLIP:
        return v < L->activation_params[0]   ? L->activation_params[0]
               : v > L->activation_params[1] ? L->activation_params[1]
                                             : v;
    case TSR_NN_ACT_SIGMOID:
        v = v < -88.3762626647949f ? -88.3762626647949f : (v > 88.3762626647949f ? 88.3762626647949f : v);
        return 1.0f / (1.0f + expf(-v));
    default:
        return v;
    }
}

static tsr_status fail(tsr__err *err, const tsr_nn_layer *L, const char *what)
{
    return tsr__seterr(err, TSR_ERR_INVALID, "layer '%s' (%s): %s", L->name,
                       tsr__nn_type_name(L->type), what);
}

/* Output plane p accumulates bias, then every input channel's kernel taps, in order; the loops
 * run over whole output rows so the compiler vectorizes them. */
static tsr_status convolution(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                              const tsr_nn_tensor *out, tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    int top, bottom, left, right;
    tsr__nn_pads(L, &is, &top, &bottom, &left, &right);
    int kw = L->kernel_w, kh = L->kernel_h, sw = L->stride_w, sh = L->stride_h;
    int dw = L->dilation_w, dh = L->dilation_h, nin = L->num_input;
    if (nin != is.c || os.c != L->num_output)
        return fail(err, L, "channel counts differ from the layer's");
    size_t plane = (size_t)os.h * os.w;
    for (int p = 0; p < os.c; p++) {
        float *o = out->data + p * plane;
        float b = L->bias_term ? L->bias[p] : 0.0f;
        for (size_t i = 0; i < plane; i++)
            o[i] = b;
        for (int q = 0; q < nin; q++) {
            const float *src = in->data + (size_t)q * is.h * is.w;
            const float *w = L->weight + ((size_t)p * nin + q) * kh * kw;
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    float wv = w[ky * kw + kx];
                    for (int y = 0; y < os.h; y++) {
                        int iy = y * sh + ky * dh - top;
                        float *orow = o + (size_t)y * os.w;
                        if (iy < 0 || iy >= is.h) {
                            for (int x = 0; x < os.w; x++)
                                orow[x] += L->pad_value * wv;
                            continue;
                        }
                        const float *row = src + (size_t)iy * is.w;
                        for (int x = 0; x < os.w; x++) {
                            int ix = x * sw + kx * dw - left;
                            float v = ix >= 0 && ix < is.w ? row[ix] : L->pad_value;
                            orow[x] += v * wv;
                        }
                    }
                }
        }
        for (size_t i = 0; i < plane; i++)
            o[i] = activate(L, o[i]);
    }
    return TSR_OK;
}

/* Transposed convolution as the format defines it: every input pixel scatters its kernel into
 * the full output (bias first), the activation, then the trim. */
static tsr_status deconvolution(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                                const tsr_nn_tensor *out, tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    int top, bottom, left, right;
    tsr__nn_pads(L, &is, &top, &bottom, &left, &right);
    int kw = L->kernel_w, kh = L->kernel_h, sw = L->stride_w, sh = L->stride_h;
    int dw = L->dilation_w, dh = L->dilation_h, nin = L->num_input;
    int fw = (is.w - 1) * sw + dw * (kw - 1) + 1 + L->output_pad_right;
    int fh = (is.h - 1) * sh + dh * (kh - 1) + 1 + L->output_pad_bottom;
    if (nin != is.c || os.c != L->num_output || os.w + left > fw || os.h + top > fh)
        return fail(err, L, "shapes differ from the layer's");
    float *full = malloc((size_t)fw * fh * sizeof(float));
    if (!full)
        return tsr__seterr(err, TSR_ERR_NOMEM, "layer '%s': out of host memory", L->name);
    for (int p = 0; p < os.c; p++) {
        float b = L->bias_term ? L->bias[p] : 0.0f;
        for (size_t i = 0; i < (size_t)fw * fh; i++)
            full[i] = b;
        for (int q = 0; q < nin; q++) {
            const float *src = in->data + (size_t)q * is.h * is.w;
            const float *w = L->weight + ((size_t)p * nin + q) * kh * kw;
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    float wv = w[ky * kw + kx];
                    for (int y = 0; y < is.h; y++) {
                        float *frow = full + (size_t)(y * sh + ky * dh) * fw + kx * dw;
                        const float *row = src + (size_t)y * is.w;
                        for (int x = 0; x < is.w; x++)
                            frow[x * sw] += row[x] * wv;
                    }
                }
        }
        float *o = out->data + (size_t)p * os.h * os.w;
        for (int y = 0; y < os.h; y++)
            for (int x = 0; x < os.w; x++)
                o[(size_t)y * os.w + x] = activate(L, full[(size_t)(y + top) * fw + x + left]);
    }
    free(full);
    return TSR_OK;
}

static void prelu(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    tsr_nn_shape s = in->shape;
    size_t plane = (size_t)s.h * s.w;
    for (int c = 0; c < s.c; c++) {
        float k = L->num_slope > 1 ? L->weight[c] : L->weight[0];
        const float *a = in->data + c * plane;
        float *o = out->data + c * plane;
        for (size_t i = 0; i < plane; i++)
            o[i] = a[i] > 0.0f ? a[i] : a[i] * k;
    }
}

static void pixelshuffle(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    int r = L->upscale_factor;
    for (int c = 0; c < os.c; c++)
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                int q = L->pixelshuffle_mode ? (i * r + j) * os.c + c : c * r * r + i * r + j;
                const float *src = in->data + (size_t)q * is.h * is.w;
                for (int y = 0; y < is.h; y++)
                    for (int x = 0; x < is.w; x++)
                        out->data[((size_t)c * os.h + y * r + i) * os.w + x * r + j] =
                            src[(size_t)y * is.w + x];
            }
}

/* Taps of one axis for Interp: first source index and weights (1, 2 or 4 of them). */
typedef struct taps {
    int *lo;
    float *w; /* 4 per output pixel */
} taps;

static void cubic(float t, float *w)
{
    const float A = -0.75f;
    float t1 = t + 1.0f, u = 1.0f - t;
    w[0] = ((A * t1 - 5.0f * A) * t1 + 8.0f * A) * t1 - 4.0f * A;
    w[1] = ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;
    w[2] = ((A + 2.0f) * u - (A + 3.0f)) * u * u + 1.0f;
    w[3] = 1.0f - w[0] - w[1] - w[2];
}

static int make_taps(const tsr_nn_layer *L, int n, int out_n, float scale, taps *t)
{
    t->lo = malloc((size_t)out_n * sizeof *t->lo);
    t->w = malloc((size_t)out_n * 4 * sizeof *t->w);
    if (!t->lo || !t->w)
        return 0;
    int fixed = L->interp_out_h > 0 || L->interp_out_w > 0;
    float inv = fixed ? (float)n / (float)out_n : 1.0f / scale;
    double ratio = (double)n / out_n;
    for (int d = 0; d < out_n; d++) {
        float *w = t->w + 4 * d;
        memset(w, 0, 4 * sizeof *w);
        if (L->resize_type == TSR_NN_INTERP_NEAREST) {
            int s = (int)(d * inv);
            t->lo[d] = s < n - 1 ? s : n - 1;
            w[0] = 1.0f;
            continue;
        }
        float f = L->align_corner ? (out_n > 1 ? (float)((double)d * (n - 1) / (out_n - 1)) : 0.0f)
                                  : (float)((d + 0.5) * ratio - 0.5);
        int s = (int)floorf(f);
        float fr = f - (float)s;
        if (L->resize_type == TSR_NN_INTERP_BILINEAR) {
            t->lo[d] = s;
            w[0] = 1.0f - fr;
            w[1] = fr;
        } else {
            t->lo[d] = s - 1;
            cubic(fr, w);
        }
    }
    return 1;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Separable: every output row is first resampled horizontally from the source rows it needs,
 * then the rows are combined vertically; taps outside the image read the edge pixel. */
static tsr_status interp(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                         tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    taps tx = {0}, ty = {0};
    int k = L->resize_type == TSR_NN_INTERP_BICUBIC ? 4 : L->resize_type == TSR_NN_INTERP_BILINEAR ? 2 : 1;
    float *rows = malloc((size_t)os.w * 4 * sizeof(float));
    tsr_status rc = TSR_OK;
    if (!rows || !make_taps(L, is.w, os.w, L->width_scale, &tx) ||
        !make_taps(L, is.h, os.h, L->height_scale, &ty)) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "layer '%s': out of host memory", L->name);
        goto done;
    }
    for (int c = 0; c < os.c; c++) {
        const float *src = in->data + (size_t)c * is.h * is.w;
        float *dst = out->data + (size_t)c * os.h * os.w;
        for (int y = 0; y < os.h; y++) {
            for (int j = 0; j < k; j++) {
                const float *row = src + (size_t)clampi(ty.lo[y] + j, 0, is.h - 1) * is.w;
                for (int x = 0; x < os.w; x++) {
                    const float *w = tx.w + 4 * x;
                    float acc = 0.0f;
                    for (int i = 0; i < k; i++)
                        acc += row[clampi(tx.lo[x] + i, 0, is.w - 1)] * w[i];
                    rows[(size_t)j * os.w + x] = acc;
                }
            }
            const float *w = ty.w + 4 * y;
            for (int x = 0; x < os.w; x++) {
                float acc = 0.0f;
                for (int j = 0; j < k; j++)
                    acc += rows[(size_t)j * os.w + x] * w[j];
                dst[(size_t)y * os.w + x] = acc;
            }
        }
    }
done:
    free(rows);
    free(tx.lo);
    free(tx.w);
    free(ty.lo);
    free(ty.w);
    return rc;
}

/* A blob as (c, h, w) for broadcasting: a vector matching the other operand's channels is
 * per-channel (c, 1, 1), any other vector lies along w. */
static void as3(tsr_nn_shape s, tsr_nn_shape other, int d[3])
{
    if (s.dims == 3) {
        d[0] = s.c, d[1] = s.h, d[2] = s.w;
    } else if (other.dims == 3 && s.c == other.c) {
        d[0] = s.c, d[1] = 1, d[2] = 1;
    } else {
        d[0] = 1, d[1] = 1, d[2] = s.c;
    }
}

static float binop(int op, float a, float b)
{
    switch (op) {
    case TSR_NN_BIN_ADD:
        return a + b;
    case TSR_NN_BIN_SUB:
        return a - b;
    case TSR_NN_BIN_MUL:
        return a * b;
    case TSR_NN_BIN_DIV:
        return a / b;
    case TSR_NN_BIN_MAX:
        return a > b ? a : b;
    default:
        return a < b ? a : b;
    }
}

static tsr_status binaryop(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                           tsr__err *err)
{
    size_t n = tsr__nn_count(out->shape);
    if (L->with_scalar || L->n_in == 1) {
        for (size_t i = 0; i < n; i++)
            out->data[i] = binop(L->op, in[0].data[i], L->b);
        return TSR_OK;
    }
    int a[3], b[3];
    as3(in[0].shape, in[1].shape, a);
    as3(in[1].shape, in[0].shape, b);
    int o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = a[i] > b[i] ? a[i] : b[i];
        if ((a[i] != o[i] && a[i] != 1) || (b[i] != o[i] && b[i] != 1))
            return fail(err, L, "shapes do not broadcast");
    }
    if ((size_t)o[0] * o[1] * o[2] != n)
        return fail(err, L, "output shape differs from the broadcast shape");
    for (int c = 0; c < o[0]; c++)
        for (int y = 0; y < o[1]; y++)
            for (int x = 0; x < o[2]; x++) {
                size_t ia = ((size_t)(a[0] > 1 ? c : 0) * a[1] + (a[1] > 1 ? y : 0)) * a[2] +
                            (a[2] > 1 ? x : 0);
                size_t ib = ((size_t)(b[0] > 1 ? c : 0) * b[1] + (b[1] > 1 ? y : 0)) * b[2] +
                            (b[2] > 1 ? x : 0);
                out->data[((size_t)c * o[1] + y) * o[2] + x] =
                    binop(L->op, in[0].data[ia], in[1].data[ib]);
            }
    return TSR_OK;
}

static void eltwise(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    size_t n = tsr__nn_count(out->shape);
    int coeffs = L->op == TSR_NN_ELT_SUM && L->n_coeffs >= L->n_in;
    for (size_t i = 0; i < n; i++) {
        float v = coeffs ? in[0].data[i] * L->coeffs[0] : in[0].data[i];
        for (int k = 1; k < L->n_in; k++) {
            float x = in[k].data[i];
            if (L->op == TSR_NN_ELT_PROD)
                v *= x;
            else if (L->op == TSR_NN_ELT_MAX)
                v = x > v ? x : v;
            else
                v += coeffs ? x * L->coeffs[k] : x;
        }
        out->data[i] = v;
    }
}

static void concat(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    size_t at = 0;
    for (int k = 0; k < L->n_in; k++) {
        size_t n = tsr__nn_count(in[k].shape);
        memcpy(out->data + at, in[k].data, n * sizeof(float));
        at += n;
    }
}

static void crop(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    tsr_nn_shape shapes[2] = {in[0].shape, L->n_in > 1 ? in[1].shape : in[0].shape};
    int oc, oy, ox;
    tsr__nn_crop_offsets(L, shapes, &oc, &oy, &ox);
    tsr_nn_shape is = in[0].shape, os = out->shape;
    if (is.dims == 1) {
        memcpy(out->data, in[0].data + oc, (size_t)os.c * sizeof(float));
        return;
    }
    for (int c = 0; c < os.c; c++)
        for (int y = 0; y < os.h; y++)
            memcpy(out->data + ((size_t)c * os.h + y) * os.w,
                   in[0].data + ((size_t)(c + oc) * is.h + y + oy) * is.w + ox,
                   (size_t)os.w * sizeof(float));
}

static void pooling(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    tsr_nn_shape s = in->shape;
    size_t plane = (size_t)s.h * s.w;
    for (int c = 0; c < s.c; c++) {
        const float *a = in->data + c * plane;
        float v = L->pooling_type == 0 ? a[0] : 0.0f;
        for (size_t i = 0; i < plane; i++)
            v = L->pooling_type == 0 ? (a[i] > v ? a[i] : v) : v + a[i];
        out->data[c] = L->pooling_type == 0 ? v : v / (float)plane;
    }
}

static void innerproduct(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    size_t nin = tsr__nn_count(in->shape);
    for (int p = 0; p < L->num_output; p++) {
        const float *w = L->weight + (size_t)p * nin;
        float v = L->bias_term ? L->bias[p] : 0.0f;
        for (size_t i = 0; i < nin; i++)
            v += w[i] * in->data[i];
        out->data[p] = activate(L, v);
    }
}

static void scale(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out)
{
    tsr_nn_shape s = in[0].shape;
    size_t plane = s.dims == 3 ? (size_t)s.h * s.w : 1;
    for (int c = 0; c < s.c; c++) {
        float k = L->scale_data_size == -233 ? in[1].data[c] : L->weight[c];
        float b = L->scale_data_size != -233 && L->bias_term ? L->bias[c] : 0.0f;
        const float *a = in[0].data + c * plane;
        float *o = out->data + c * plane;
        for (size_t i = 0; i < plane; i++)
            o[i] = L->scale_data_size != -233 && L->bias_term ? a[i] * k + b : a[i] * k;
    }
}

tsr_status tsr__nn_ref_layer(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                             const tsr_nn_tensor *out, tsr__err *err)
{
    switch (L->type) {
    case TSR_NN_INPUT:
        return TSR_OK;
    case TSR_NN_CONVOLUTION:
        return convolution(L, &in[0], &out[0], err);
    case TSR_NN_DECONVOLUTION:
        return deconvolution(L, &in[0], &out[0], err);
    case TSR_NN_PRELU:
        prelu(L, &in[0], &out[0]);
        return TSR_OK;
    case TSR_NN_PIXELSHUFFLE:
        pixelshuffle(L, &in[0], &out[0]);
        return TSR_OK;
    case TSR_NN_INTERP:
        return interp(L, &in[0], &out[0], err);
    case TSR_NN_BINARYOP:
        return binaryop(L, in, &out[0], err);
    case TSR_NN_ELTWISE:
        eltwise(L, in, &out[0]);
        return TSR_OK;
    case TSR_NN_CONCAT:
        concat(L, in, &out[0]);
        return TSR_OK;
    case TSR_NN_CROP:
        crop(L, in, &out[0]);
        return TSR_OK;
    case TSR_NN_SPLIT:
        for (int k = 0; k < L->n_out; k++)
            if (out[k].data != in[0].data)
                memcpy(out[k].data, in[0].data, tsr__nn_count(in[0].shape) * sizeof(float));
        return TSR_OK;
    case TSR_NN_POOLING:
        pooling(L, &in[0], &out[0]);
        return TSR_OK;
    case TSR_NN_INNERPRODUCT:
        innerproduct(L, &in[0], &out[0]);
        return TSR_OK;
    case TSR_NN_SCALE:
        scale(L, in, &out[0]);
        return TSR_OK;
    default:
        return fail(err, L, "no reference for this layer type");
    }
}
