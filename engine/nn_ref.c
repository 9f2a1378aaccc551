/* The plain-C definition of every ncnn layer Tessera runs (NCNN-FORMAT.md section 4): the
 * reference path and what the device kernels (kernels/nn.cl) are tested against. Loops are
 * written for clarity, not speed; each sum runs in one fixed order, stated at the layer. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_geom.h"

static tsr_status layer_fail(const tsr_nn_layer *L, tsr_status rc, const char *what, tsr__err *err)
{
    return tsr__seterr(err, rc, "layer '%s' (type %d, line %d): %s", L->name ? L->name : "?",
                       (int)L->type, L->line, what);
}

/* ncnn's fused activations; the sigmoid clamps first so that expf never overflows. */
static float activate(float v, const tsr_nn_layer *L)
{
    switch (L->activation) {
    case TSR_NN_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case TSR_NN_ACT_LEAKY: return v > 0.0f ? v : v * L->activation_params[0];
    case TSR_NN_ACT_CLIP:
        if (v < L->activation_params[0])
            v = L->activation_params[0];
        if (v > L->activation_params[1])
            v = L->activation_params[1];
        return v;
    case TSR_NN_ACT_SIGMOID:
        v = fminf(fmaxf(v, -88.3762626647949f), 88.3762626647949f);
        return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}

static size_t plane_of(tsr_nn_shape s)
{
    return (size_t)s.h * (size_t)s.w;
}

/* out[p][y][x] = act(bias[p] + sum over q, ky, kx (in that order, kx fastest) of
 * in_pad[q][y*sh + ky*dh][x*sw + kx*dw] * W[p][q][ky][kx]); padding reads pad_value. Each output
 * plane accumulates tap by tap over whole rows (the same additions per pixel, in the same order,
 * as a loop per pixel, but in loops the compiler vectorizes). */
static tsr_status conv(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                       tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    int ic = tsr__nn_conv_in(L), kh = L->kernel_h, kw = L->kernel_w, pt, pl;
    if (ic != is.c || os.c != L->num_output)
        return layer_fail(L, TSR_ERR_INVALID, "channel counts do not match the weights", err);
    tsr__nn_conv_pads(L, &is, &os, &pt, &pl);
    for (int p = 0; p < os.c; p++) {
        float *o = out->data + p * plane_of(os);
        float b = L->bias_term && L->bias ? L->bias[p] : 0.0f;
        for (size_t i = 0; i < plane_of(os); i++)
            o[i] = b;
        for (int q = 0; q < ic; q++) {
            const float *src = in->data + q * plane_of(is);
            const float *w = L->weight + ((size_t)p * ic + q) * kh * kw;
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    float wv = w[ky * kw + kx];
                    for (int y = 0; y < os.h; y++) {
                        int iy = y * L->stride_h - pt + ky * L->dilation_h;
                        float *orow = o + (size_t)y * os.w;
                        const float *row = iy >= 0 && iy < is.h ? src + (size_t)iy * is.w : NULL;
                        int x0 = 0, x1 = os.w; /* the columns whose tap is inside the input */
                        int off = kx * L->dilation_w - pl;
                        while (x0 < os.w && x0 * L->stride_w + off < 0)
                            x0++;
                        while (x1 > x0 && (x1 - 1) * L->stride_w + off >= is.w)
                            x1--;
                        for (int x = 0; x < os.w; x++) {
                            float v = row && x >= x0 && x < x1 ? row[x * L->stride_w + off]
                                                               : L->pad_value;
                            orow[x] += v * wv;
                        }
                    }
                }
        }
        for (size_t i = 0; i < plane_of(os); i++)
            o[i] = activate(o[i], L);
    }
    return TSR_OK;
}

/* The scatter of NCNN-FORMAT.md as ncnn runs it: the full output starts at bias[p], every input
 * pixel (rows, columns, then input channels, then ky, kx) adds its products, then the trim and
 * the activation. */
static tsr_status deconv(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                         tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    int ic = tsr__nn_conv_in(L), kh = L->kernel_h, kw = L->kernel_w, pt, pl;
    if (ic != is.c || os.c != L->num_output)
        return layer_fail(L, TSR_ERR_INVALID, "channel counts do not match the weights", err);
    tsr__nn_conv_pads(L, &is, &os, &pt, &pl);
    long long fh = (long long)(is.h - 1) * L->stride_h + (long long)L->dilation_h * (kh - 1) + 1 +
                   L->output_pad_bottom;
    long long fw = (long long)(is.w - 1) * L->stride_w + (long long)L->dilation_w * (kw - 1) + 1 +
                   L->output_pad_right;
    if (fh < pt + os.h || fw < pl + os.w)
        return layer_fail(L, TSR_ERR_INVALID, "output shape larger than the full output", err);
    size_t n;
    if (!tsr__mul_size((size_t)fh, (size_t)fw, &n) || !tsr__mul_size(n, sizeof(float), &n))
        return layer_fail(L, TSR_ERR_LIMIT, "full output size overflows", err);
    float *full = malloc(n);
    if (!full)
        return layer_fail(L, TSR_ERR_NOMEM, "no host memory for the full output plane", err);
    for (int p = 0; p < os.c; p++) {
        float b = L->bias_term && L->bias ? L->bias[p] : 0.0f;
        for (size_t i = 0; i < (size_t)fh * fw; i++)
            full[i] = b;
        for (int y = 0; y < is.h; y++)
            for (int x = 0; x < is.w; x++)
                for (int q = 0; q < ic; q++) {
                    float v = in->data[q * plane_of(is) + (size_t)y * is.w + x];
                    const float *w = L->weight + ((size_t)p * ic + q) * kh * kw;
                    for (int ky = 0; ky < kh; ky++) {
                        float *row = full + (size_t)(y * L->stride_h + ky * L->dilation_h) * fw +
                                     x * L->stride_w;
                        for (int kx = 0; kx < kw; kx++)
                            row[kx * L->dilation_w] += v * w[ky * kw + kx];
                    }
                }
        for (int y = 0; y < os.h; y++)
            for (int x = 0; x < os.w; x++)
                out->data[p * plane_of(os) + (size_t)y * os.w + x] =
                    activate(full[(size_t)(y + pt) * fw + x + pl], L);
    }
    free(full);
    return TSR_OK;
}

static tsr_status prelu(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                        tsr__err *err)
{
    tsr_nn_shape s = in->shape;
    if (L->n_weight < 1 || (L->n_weight > 1 && L->n_weight != (size_t)s.c))
        return layer_fail(L, TSR_ERR_INVALID, "slope count does not match the channels", err);
    for (int c = 0; c < s.c; c++) {
        float k = L->weight[L->n_weight > 1 ? c : 0];
        const float *src = in->data + c * plane_of(s);
        float *dst = out->data + c * plane_of(s);
        for (size_t i = 0; i < plane_of(s); i++)
            dst[i] = src[i] > 0.0f ? src[i] : src[i] * k;
    }
    return TSR_OK;
}

/* mode 0 (CRD): out[c][y*r+i][x*r+j] = in[c*r*r + i*r + j][y][x]; mode 1 (DCR):
 * in[(i*r + j)*C + c][y][x]. */
static tsr_status pixelshuffle(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                               const tsr_nn_tensor *out, tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    int r = L->upscale_factor;
    if (r < 1 || os.c * r * r != is.c || os.h != is.h * r || os.w != is.w * r)
        return layer_fail(L, TSR_ERR_INVALID, "shapes do not match the upscale factor", err);
    for (int c = 0; c < os.c; c++)
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                int q = L->pixelshuffle_mode ? (i * r + j) * os.c + c : c * r * r + i * r + j;
                const float *src = in->data + q * plane_of(is);
                for (int y = 0; y < is.h; y++)
                    for (int x = 0; x < is.w; x++)
                        out->data[c * plane_of(os) + (size_t)(y * r + i) * os.w + x * r + j] =
                            src[(size_t)y * is.w + x];
            }
    return TSR_OK;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

void tsr__nn_cubic(float t, float *w)
{
    /* Keys cubic, A = -0.75, written as ncnn's interpolate_cubic writes it. */
    const float A = -0.75f;
    float t0 = t + 1, t1 = t, t2 = 1 - t;
    w[0] = A * t0 * t0 * t0 - 5 * A * t0 * t0 + 8 * A * t0 - 4 * A;
    w[1] = (A + 2) * t1 * t1 * t1 - (A + 3) * t1 * t1 + 1;
    w[2] = (A + 2) * t2 * t2 * t2 - (A + 3) * t2 * t2 + 1;
    w[3] = 1.f - w[0] - w[1] - w[2];
}

int tsr__nn_interp_taps(const tsr_nn_layer *L, int height, int n_in, int n_out, int *idx, float *wt)
{
    if (L->resize_type == TSR_NN_INTERP_NEAREST) {
        /* ncnn: the fixed size's ratio in float, else 1/scale in float. */
        int fixed = height ? L->interp_out_h : L->interp_out_w;
        float s =
            fixed ? (float)n_in / (float)n_out : 1.0f / (height ? L->height_scale : L->width_scale);
        for (int d = 0; d < n_out; d++) {
            int i = (int)((float)d * s);
            idx[d * 4] = i < n_in - 1 ? i : n_in - 1;
            wt[d * 4] = 1.0f;
        }
        return 1;
    }
    double scale = (double)n_in / n_out;
    if (L->align_corner)
        scale = n_out > 1 ? (double)(n_in - 1) / (n_out - 1) : 0.0;
    int taps = L->resize_type == TSR_NN_INTERP_BICUBIC ? 4 : 2;
    for (int d = 0; d < n_out; d++) {
        float f = L->align_corner ? (float)(d * scale) : (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        float t = f - (float)s;
        int *ix = idx + d * 4;
        float *w = wt + d * 4;
        if (taps == 2) {
            ix[0] = clampi(s, 0, n_in - 1);
            ix[1] = clampi(s + 1, 0, n_in - 1);
            w[0] = 1.0f - t;
            w[1] = t;
            continue;
        }
        tsr__nn_cubic(t, w);
        for (int k = 0; k < 4; k++)
            ix[k] = clampi(s - 1 + k, 0, n_in - 1);
    }
    return taps;
}

/* Separable as ncnn: each tap row is first resized horizontally (taps summed left to right),
 * then the rows are combined top to bottom: out = sum_r (sum_t in[y_r][x_t] * a_t) * b_r. */
static tsr_status interp(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                         tsr__err *err)
{
    tsr_nn_shape is = in->shape, os = out->shape;
    if (is.dims != 3 || os.c != is.c)
        return layer_fail(L, TSR_ERR_UNSUPPORTED, "Interp needs a 3-D input", err);
    if (L->resize_type < TSR_NN_INTERP_NEAREST || L->resize_type > TSR_NN_INTERP_BICUBIC)
        return layer_fail(L, TSR_ERR_UNSUPPORTED, "unknown resize_type", err);
    int *xi = malloc(sizeof(int) * 4 * ((size_t)os.w + os.h));
    float *xa = malloc(sizeof(float) * 4 * ((size_t)os.w + os.h));
    if (!xi || !xa) {
        free(xi);
        free(xa);
        return layer_fail(L, TSR_ERR_NOMEM, "no host memory for the tap tables", err);
    }
    int *yi = xi + 4 * (size_t)os.w;
    float *ya = xa + 4 * (size_t)os.w;
    int tx = tsr__nn_interp_taps(L, 0, is.w, os.w, xi, xa);
    int ty = tsr__nn_interp_taps(L, 1, is.h, os.h, yi, ya);
    for (int c = 0; c < os.c; c++) {
        const float *src = in->data + c * plane_of(is);
        for (int y = 0; y < os.h; y++)
            for (int x = 0; x < os.w; x++) {
                float acc = 0.0f;
                for (int r = 0; r < ty; r++) {
                    const float *row = src + (size_t)yi[y * 4 + r] * is.w;
                    float h = row[xi[x * 4]] * xa[x * 4];
                    for (int t = 1; t < tx; t++)
                        h += row[xi[x * 4 + t]] * xa[x * 4 + t];
                    acc = r ? acc + h * ya[y * 4 + r] : h * ya[y * 4];
                }
                out->data[c * plane_of(os) + (size_t)y * os.w + x] = acc;
            }
    }
    free(xi);
    free(xa);
    return TSR_OK;
}

static float binop(int op, float a, float b)
{
    switch (op) {
    case TSR_NN_BIN_ADD: return a + b;
    case TSR_NN_BIN_SUB: return a - b;
    case TSR_NN_BIN_MUL: return a * b;
    case TSR_NN_BIN_DIV: return a / b;
    case TSR_NN_BIN_MAX: return fmaxf(a, b);
    default: return fminf(a, b);
    }
}

/* A BinaryOp operand as c x h x w against the other operand: a vector as long as the other's
 * channels is per channel (C x 1 x 1), any other vector runs along w. */
void tsr__nn_bin_dims(tsr_nn_shape x, tsr_nn_shape other, int d[3])
{
    if (x.dims == 3) {
        d[0] = x.c, d[1] = x.h, d[2] = x.w;
    } else if (other.dims == 3 && x.c == other.c) {
        d[0] = x.c, d[1] = 1, d[2] = 1;
    } else {
        d[0] = 1, d[1] = 1, d[2] = x.c;
    }
}

static tsr_status binaryop(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                           tsr__err *err)
{
    if (L->op < TSR_NN_BIN_ADD || L->op > TSR_NN_BIN_MIN)
        return layer_fail(L, TSR_ERR_UNSUPPORTED, "unsupported op_type", err);
    if (L->with_scalar || L->n_in < 2) {
        for (size_t i = 0; i < tsr__nn_count(in[0].shape); i++)
            out->data[i] = binop(L->op, in[0].data[i], L->b);
        return TSR_OK;
    }
    int a[3], b[3], o[3] = {out->shape.c, out->shape.h, out->shape.w};
    tsr__nn_bin_dims(in[0].shape, in[1].shape, a);
    tsr__nn_bin_dims(in[1].shape, in[0].shape, b);
    if (out->shape.dims == 1)
        o[0] = 1, o[1] = 1, o[2] = out->shape.c; /* two vectors: along w */
    for (int k = 0; k < 3; k++)
        if ((a[k] != o[k] && a[k] != 1) || (b[k] != o[k] && b[k] != 1))
            return layer_fail(L, TSR_ERR_INVALID, "operand shapes do not broadcast", err);
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

/* Inputs folded in order: y = x0 op x1, then y = y op x2, ... (SUM: c0*x0 + c1*x1 + ...). */
static tsr_status eltwise(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                          tsr__err *err)
{
    size_t n = tsr__nn_count(out->shape);
    if (L->n_in < 2)
        return layer_fail(L, TSR_ERR_INVALID, "Eltwise needs at least 2 inputs", err);
    for (int k = 0; k < L->n_in; k++)
        if (tsr__nn_count(in[k].shape) != n)
            return layer_fail(L, TSR_ERR_INVALID, "Eltwise inputs differ in shape", err);
    int coeffs = L->op == TSR_NN_ELT_SUM && L->n_coeffs > 0;
    if (coeffs && L->n_coeffs < L->n_in)
        return layer_fail(L, TSR_ERR_INVALID, "fewer coeffs than inputs", err);
    for (size_t i = 0; i < n; i++) {
        float y = coeffs ? in[0].data[i] * L->coeffs[0] : in[0].data[i];
        for (int k = 1; k < L->n_in; k++) {
            float v = in[k].data[i];
            if (L->op == TSR_NN_ELT_PROD)
                y = y * v;
            else if (L->op == TSR_NN_ELT_MAX)
                y = fmaxf(y, v);
            else
                y = coeffs ? y + v * L->coeffs[k] : y + v;
        }
        out->data[i] = y;
    }
    return TSR_OK;
}

static tsr_status concat(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                         tsr__err *err)
{
    int dims = out->shape.dims;
    if (!(L->axis == 0 || L->axis == -dims))
        return layer_fail(L, TSR_ERR_UNSUPPORTED, "Concat only along channels (axis 0)", err);
    size_t at = 0;
    for (int k = 0; k < L->n_in; k++) {
        size_t n = tsr__nn_count(in[k].shape);
        if (at + n > tsr__nn_count(out->shape))
            return layer_fail(L, TSR_ERR_INVALID, "inputs larger than the output", err);
        memcpy(out->data + at, in[k].data, n * sizeof(float));
        at += n;
    }
    return TSR_OK;
}

static tsr_status crop(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                       tsr__err *err)
{
    tsr_nn_shape ins[2] = {in[0].shape, L->n_in > 1 ? in[1].shape : in[0].shape}, box;
    int off[3];
    tsr_status rc = tsr__nn_crop_box(L, ins, off, &box, err);
    if (rc)
        return rc;
    if (tsr__nn_count(box) != tsr__nn_count(out->shape))
        return layer_fail(L, TSR_ERR_INVALID, "output shape differs from the crop box", err);
    tsr_nn_shape is = in[0].shape;
    int ih = is.dims == 3 ? is.h : 1, iw = is.dims == 3 ? is.w : 1;
    for (int c = 0; c < box.c; c++)
        for (int y = 0; y < box.h; y++)
            memcpy(out->data + ((size_t)c * box.h + y) * box.w,
                   in[0].data + ((size_t)(c + off[0]) * ih + y + off[1]) * iw + off[2],
                   (size_t)box.w * sizeof(float));
    return TSR_OK;
}

/* max from the first value; average as sum (in order) / count. */
static tsr_status pooling(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                          tsr__err *err)
{
    if (!L->global_pooling || L->pooling_type < 0 || L->pooling_type > 1)
        return layer_fail(L, TSR_ERR_UNSUPPORTED, "only global max/avg pooling", err);
    tsr_nn_shape s = in->shape;
    size_t n = plane_of(s);
    for (int c = 0; c < s.c; c++) {
        const float *src = in->data + c * n;
        float acc = L->pooling_type == 0 ? src[0] : 0.0f;
        for (size_t i = 0; i < n; i++)
            acc = L->pooling_type == 0 ? fmaxf(acc, src[i]) : acc + src[i];
        out->data[c] = L->pooling_type == 0 ? acc : acc / (float)n;
    }
    return TSR_OK;
}

static tsr_status innerproduct(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                               const tsr_nn_tensor *out, tsr__err *err)
{
    size_t n = tsr__nn_count(in->shape);
    if (L->num_output < 1 || L->n_weight != n * (size_t)L->num_output)
        return layer_fail(L, TSR_ERR_INVALID, "input size does not match the weights", err);
    for (int p = 0; p < L->num_output; p++) {
        float acc = L->bias_term && L->bias ? L->bias[p] : 0.0f;
        const float *w = L->weight + (size_t)p * n;
        for (size_t i = 0; i < n; i++)
            acc += w[i] * in->data[i];
        out->data[p] = activate(acc, L);
    }
    return TSR_OK;
}

static tsr_status scale(const tsr_nn_layer *L, const tsr_nn_tensor *in, const tsr_nn_tensor *out,
                        tsr__err *err)
{
    tsr_nn_shape s = in[0].shape;
    const float *k = L->scale_data_size == -233 ? in[1].data : L->weight;
    size_t nk = L->scale_data_size == -233 ? tsr__nn_count(in[1].shape) : L->n_weight;
    if (!k || nk != (size_t)s.c)
        return layer_fail(L, TSR_ERR_INVALID, "scale count does not match the channels", err);
    int bias = L->scale_data_size != -233 && L->bias_term && L->bias;
    for (int c = 0; c < s.c; c++) {
        const float *src = in[0].data + c * plane_of(s);
        float *dst = out->data + c * plane_of(s);
        for (size_t i = 0; i < plane_of(s); i++)
            dst[i] = bias ? src[i] * k[c] + L->bias[c] : src[i] * k[c];
    }
    return TSR_OK;
}

tsr_status tsr__nn_ref_layer(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                             const tsr_nn_tensor *out, tsr__err *err)
{
    switch (L->type) {
    case TSR_NN_CONVOLUTION: return conv(L, in, out, err);
    case TSR_NN_DECONVOLUTION: return deconv(L, in, out, err);
    case TSR_NN_PRELU: return prelu(L, in, out, err);
    case TSR_NN_PIXELSHUFFLE: return pixelshuffle(L, in, out, err);
    case TSR_NN_INTERP: return interp(L, in, out, err);
    case TSR_NN_BINARYOP: return binaryop(L, in, out, err);
    case TSR_NN_ELTWISE: return eltwise(L, in, out, err);
    case TSR_NN_CONCAT: return concat(L, in, out, err);
    case TSR_NN_CROP: return crop(L, in, out, err);
    case TSR_NN_SPLIT:
        for (int k = 0; k < L->n_out; k++)
            memcpy(out[k].data, in[0].data, tsr__nn_count(in[0].shape) * sizeof(float));
        return TSR_OK;
    case TSR_NN_POOLING: return pooling(L, in, out, err);
    case TSR_NN_INNERPRODUCT: return innerproduct(L, in, out, err);
    case TSR_NN_SCALE: return scale(L, in, out, err);
    default: return layer_fail(L, TSR_ERR_UNSUPPORTED, "no reference for this layer type", err);
    }
}
