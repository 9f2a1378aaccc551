/* nn: the ncnn layers (NCNN-FORMAT.md section 4) on the device, launched by engine/nn_cl.c.
 * The plain-C definitions are in engine/nn_ref.c. Tensors are planar c x h x w float32 with no
 * padding between planes.
 *
 * Convolution and Deconvolution are register blocked: one work item computes N output channels
 * (one floatN, N = 4, 8 or 16 by the layer's channel count) for NN_PX output pixels of one row,
 * so every weight vector loaded is used NN_PX times and every input value N times. NN_PX is 16
 * on CPUs (16 accumulators fill AVX-512's 32 registers; measured 1.2-1.6x faster than 8 on PoCL)
 * and 4 on GPUs (16 x 16 floats of accumulators would spill there); engine/nn_cl.c picks. The weights
 * are packed by tsr__nn_cl_pack_weights as [oc / N][ky][kx][ic][N] (the tail block zero-padded)
 * followed by the bias as [oc / N][N]: the inner loop over input channels reads them
 * contiguously. No local memory: PoCL runs each work item as straight vector code, GPUs keep
 * the accumulators in registers. Sums run in (ky, kx, ic) order with fma, not the reference's
 * (ic, ky, kx): results agree within rounding (the tests' tolerance), not bit for bit. */

/* Everything but the convolutions rounds each multiply and add as the reference does, so the
 * copies, PReLU, Scale, BinaryOp, Eltwise and the Interp taps agree bit for bit. */
#pragma OPENCL FP_CONTRACT OFF

/* nn_act (the fused activations): kernels/common.clh. */

/* Stores the lanes of acc[NN_PX] (lane j = output channel oc0 + j) at output pixels
 * x0 + i * xstep of row y, for the channels below oc and the pixels below ow. */
#define NN_STORE(N, NN_PX)                                                                         \
    for (int i = 0; i < NN_PX; i++) {                                                              \
        int x = x0 + i * xstep;                                                                    \
        if (x >= ow)                                                                               \
            break;                                                                                 \
        float lanes[N];                                                                            \
        vstore##N(acc[i], 0, lanes);                                                               \
        for (int j = 0; j < N && oc0 + j < oc; j++)                                                \
            out[((size_t)(oc0 + j) * oh + y) * ow + x] = nn_act(lanes[j], act, p0, p1);            \
    }

/* One (ky, kx) tap over all input channels. ip: the input at the first pixel's tap in channel 0;
 * STEP: the input distance between neighbouring pixels of the block. */
#define NN_TAP_FAST(N, STEP, NN_PX)                                                                \
    for (int q = 0; q < ic; q++) {                                                                 \
        float##N wv = vload##N(0, wp);                                                             \
        wp += N;                                                                                   \
        for (int i = 0; i < NN_PX; i++)                                                            \
            acc[i] = fma((float##N)(ip[i * (STEP)]), wv, acc[i]);                                  \
        ip += plane;                                                                               \
    }

/* The same where some pixels' taps fall outside the input: ok[i] says which read, the others
 * read `fill` (pad_value for a convolution; deconvolution taps outside add nothing). */
#define NN_TAP_EDGE(N, NN_PX)                                                                      \
    for (int q = 0; q < ic; q++) {                                                                 \
        float##N wv = vload##N(0, wp);                                                             \
        wp += N;                                                                                   \
        for (int i = 0; i < NN_PX; i++) {                                                          \
            if (ok[i])                                                                             \
                acc[i] = fma((float##N)(ip[off[i]]), wv, acc[i]);                                  \
            else if (fill_any)                                                                     \
                acc[i] = fma((float##N)(fill), wv, acc[i]);                                        \
        }                                                                                          \
        ip += plane;                                                                               \
    }

/* Convolution. Work item (gx, y, b): output row y, pixels gx*NN_PX .. +NN_PX-1, channels
 * b*N .. b*N+N-1. pads: top, left (resolved); k: kernel w, h, dilation w, h; s: stride w, h. */
#define NN_CONV_KERNEL(N, NN_PX)                                                                   \
    __kernel void tsr_nn_conv_oc##N##_px##NN_PX(                                                   \
        __global const float *in, __global float *out, __global const float *w, int ic, int ih,    \
        int iw, int oc, int oh, int ow, int kw, int kh, int dw, int dh, int sw, int sh, int pt,    \
        int pl, float pad_value, int act, float p0, float p1)                                      \
    {                                                                                              \
        int x0 = get_global_id(0) * NN_PX, y = get_global_id(1), b = get_global_id(2);             \
        if (x0 >= ow || y >= oh)                                                                   \
            return;                                                                                \
        int oc0 = b * N, xstep = 1, nb = (oc + N - 1) / N, fill_any = pad_value != 0.0f;           \
        size_t plane = (size_t)ih * iw;                                                            \
        float fill = pad_value;                                                                    \
        __global const float *wp = w + (size_t)b * kh * kw * ic * N;                               \
        float##N acc[NN_PX];                                                                       \
        float##N bias = vload##N(0, w + (size_t)nb * kh * kw * ic * N + (size_t)b * N);            \
        for (int i = 0; i < NN_PX; i++)                                                            \
            acc[i] = bias;                                                                         \
        int iy0 = y * sh - pt, ix0 = x0 * sw - pl;                                                 \
        for (int ky = 0; ky < kh; ky++) {                                                          \
            int iy = iy0 + ky * dh;                                                                \
            if (iy < 0 || iy >= ih) {                                                              \
                if (!fill_any) {                                                                   \
                    wp += (size_t)kw * ic * N;                                                     \
                    continue;                                                                      \
                }                                                                                  \
            }                                                                                      \
            int yok = iy >= 0 && iy < ih;                                                          \
            for (int kx = 0; kx < kw; kx++) {                                                      \
                int ix = ix0 + kx * dw;                                                            \
                if (yok && ix >= 0 && ix + (NN_PX - 1) * sw < iw) {                                \
                    __global const float *ip = in + (size_t)iy * iw + ix;                          \
                    if (sw == 1) {                                                                 \
                        NN_TAP_FAST(N, 1, NN_PX)                                                   \
                    } else {                                                                       \
                        NN_TAP_FAST(N, sw, NN_PX)                                                  \
                    }                                                                              \
                } else {                                                                           \
                    int ok[NN_PX], off[NN_PX];                                                     \
                    for (int i = 0; i < NN_PX; i++) {                                              \
                        int xi = ix + i * sw;                                                      \
                        ok[i] = yok && xi >= 0 && xi < iw;                                         \
                        off[i] = ok[i] ? xi : 0;                                                   \
                    }                                                                              \
                    __global const float *ip = in + (size_t)(yok ? iy : 0) * iw;                   \
                    NN_TAP_EDGE(N, NN_PX)                                                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        NN_STORE(N, NN_PX)                                                                         \
    }

NN_CONV_KERNEL(4, 4)
NN_CONV_KERNEL(8, 4)
NN_CONV_KERNEL(16, 4)
NN_CONV_KERNEL(4, 16)
NN_CONV_KERNEL(8, 16)
NN_CONV_KERNEL(16, 16)

/* Deconvolution as a gather: full-output pixel (fy, fx) sums in[q][iy][ix] * W[p][q][ky][kx]
 * over the taps with fy = iy*sh + ky*dh, fx = ix*sw + kx*dw. A work item's NN_PX pixels are sw
 * apart (x0, x0 + sw, ...): they share the phase, so one set of (ky, kx) taps serves all of them
 * with neighbouring input columns. Work item (g, y, b): phase g % sw, block g / sw. pt, pl: rows
 * and columns trimmed from the top and left of the full output. */
#define NN_DECONV_KERNEL(N, NN_PX)                                                                 \
    __kernel void tsr_nn_deconv_oc##N##_px##NN_PX(                                                 \
        __global const float *in, __global float *out, __global const float *w, int ic, int ih,    \
        int iw, int oc, int oh, int ow, int kw, int kh, int dw, int dh, int sw, int sh, int pt,    \
        int pl, int act, float p0, float p1)                                                       \
    {                                                                                              \
        int g = get_global_id(0), y = get_global_id(1), b = get_global_id(2);                      \
        int xstep = sw, x0 = g % sw + (g / sw) * NN_PX * sw;                                       \
        if (x0 >= ow || y >= oh)                                                                   \
            return;                                                                                \
        int oc0 = b * N, nb = (oc + N - 1) / N, fill_any = 0;                                      \
        float fill = 0.0f;                                                                         \
        size_t plane = (size_t)ih * iw;                                                            \
        __global const float *wb = w + (size_t)b * kh * kw * ic * N;                               \
        float##N acc[NN_PX];                                                                       \
        float##N bias = vload##N(0, w + (size_t)nb * kh * kw * ic * N + (size_t)b * N);            \
        for (int i = 0; i < NN_PX; i++)                                                            \
            acc[i] = bias;                                                                         \
        int fy = y + pt, fx = x0 + pl;                                                             \
        for (int ky = 0; ky < kh; ky++) {                                                          \
            int ty = fy - ky * dh;                                                                 \
            if (ty < 0 || ty % sh)                                                                 \
                continue;                                                                          \
            int iy = ty / sh;                                                                      \
            if (iy >= ih)                                                                          \
                continue;                                                                          \
            for (int kx = 0; kx < kw; kx++) {                                                      \
                int tx = fx - kx * dw;                                                             \
                int r = tx % sw;                                                                   \
                if (r != 0)                                                                        \
                    continue;                                                                      \
                int ix = tx / sw; /* exact: tx is a multiple of sw */                              \
                __global const float *wp = wb + ((size_t)ky * kw + kx) * ic * N;                   \
                if (ix >= 0 && ix + NN_PX - 1 < iw) {                                              \
                    __global const float *ip = in + (size_t)iy * iw + ix;                          \
                    NN_TAP_FAST(N, 1, NN_PX)                                                       \
                } else {                                                                           \
                    int ok[NN_PX], off[NN_PX];                                                     \
                    for (int i = 0; i < NN_PX; i++) {                                              \
                        ok[i] = ix + i >= 0 && ix + i < iw;                                        \
                        off[i] = ok[i] ? ix + i : 0;                                               \
                    }                                                                              \
                    __global const float *ip = in + (size_t)iy * iw;                               \
                    NN_TAP_EDGE(N, NN_PX)                                                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        NN_STORE(N, NN_PX)                                                                         \
    }

NN_DECONV_KERNEL(4, 4)
NN_DECONV_KERNEL(8, 4)
NN_DECONV_KERNEL(16, 4)
NN_DECONV_KERNEL(4, 16)
NN_DECONV_KERNEL(8, 16)
NN_DECONV_KERNEL(16, 16)

/* PReLU: slopes[c], or slopes[0] for all when ns == 1. */
__kernel void tsr_nn_prelu(__global const float *in, __global float *out,
                           __global const float *slopes, int plane, int ns)
{
    int i = get_global_id(0), c = get_global_id(2);
    if (i >= plane)
        return;
    size_t at = (size_t)c * plane + i;
    float v = in[at], k = slopes[ns > 1 ? c : 0];
    out[at] = v > 0.0f ? v : v * k;
}

/* PixelShuffle: one output pixel per item; mode 0 CRD, mode 1 DCR. */
__kernel void tsr_nn_pixelshuffle(__global const float *in, __global float *out, int ih, int iw,
                                  int r, int oc, int mode)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    int ow = iw * r, oh = ih * r;
    if (x >= ow || y >= oh)
        return;
    int i = y % r, j = x % r;
    int q = mode ? (i * r + j) * oc + c : c * r * r + i * r + j;
    out[((size_t)c * oh + y) * ow + x] = in[((size_t)q * ih + y / r) * iw + x / r];
}

/* Interp from the host's tap tables (tsr__nn_interp_taps): xi/xa[ow*4], yi/ya[oh*4]. The same
 * multiplies and adds in the same order as the reference. */
__kernel void tsr_nn_interp(__global const float *in, __global float *out,
                            __global const int *tab, int ih, int iw, int oh, int ow, int tx,
                            int ty)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= ow || y >= oh)
        return;
    __global const int *xi = tab, *yi = tab + (size_t)ow * 4;
    __global const float *xa = (__global const float *)(tab + (size_t)(ow + oh) * 4);
    __global const float *ya = xa + (size_t)ow * 4;
    __global const float *src = in + (size_t)c * ih * iw;
    float acc = 0.0f;
    for (int r = 0; r < ty; r++) {
        __global const float *row = src + (size_t)yi[y * 4 + r] * iw;
        float h = row[xi[x * 4]] * xa[x * 4];
        for (int t = 1; t < tx; t++)
            h += row[xi[x * 4 + t]] * xa[x * 4 + t];
        acc = r ? acc + h * ya[y * 4 + r] : h * ya[y * 4];
    }
    out[((size_t)c * oh + y) * ow + x] = acc;
}

float nn_binop(int op, float a, float b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return fmax(a, b);
    default: return fmin(a, b);
    }
}

/* BinaryOp with broadcasting: a and b are a_c x a_h x a_w and b_c x b_h x b_w, each dimension
 * either the output's or 1. with_scalar: b is unused, s is the operand. */
__kernel void tsr_nn_binary(__global const float *a, __global const float *b,
                            __global float *out, int op, int oh, int ow, int ac, int ah, int aw,
                            int bc, int bh, int bw, int with_scalar, float s)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= ow || y >= oh)
        return;
    size_t ia = ((size_t)(ac > 1 ? c : 0) * ah + (ah > 1 ? y : 0)) * aw + (aw > 1 ? x : 0);
    float vb = s;
    if (!with_scalar)
        vb = b[((size_t)(bc > 1 ? c : 0) * bh + (bh > 1 ? y : 0)) * bw + (bw > 1 ? x : 0)];
    out[((size_t)c * oh + y) * ow + x] = nn_binop(op, a[ia], vb);
}

/* Eltwise, one input at a time: first = 1: out = x0 op x1 (with c0, c1 for SUM with coeffs),
 * then out = out op x (with c1) for each later input. op: 0 PROD, 1 SUM, 2 MAX. */
__kernel void tsr_nn_eltwise(__global const float *x0, __global const float *x1,
                             __global float *out, int n, int op, int first, int coeffs, float c0,
                             float c1)
{
    int i = get_global_id(0);
    if (i >= n)
        return;
    float y;
    if (first)
        y = coeffs ? x0[i] * c0 : x0[i];
    else
        y = out[i];
    float v = x1[i];
    if (op == 0)
        y = y * v;
    else if (op == 2)
        y = fmax(y, v);
    else
        y = coeffs ? y + v * c1 : y + v;
    out[i] = y;
}

/* Global pooling, one channel per item: max from the first value, average as sum / count. */
__kernel void tsr_nn_global_pool(__global const float *in, __global float *out, int c, int plane,
                                 int avg)
{
    int q = get_global_id(0);
    if (q >= c)
        return;
    __global const float *src = in + (size_t)q * plane;
    float acc = avg ? 0.0f : src[0];
    for (int i = 0; i < plane; i++)
        acc = avg ? acc + src[i] : fmax(acc, src[i]);
    out[q] = avg ? acc / (float)plane : acc;
}

/* InnerProduct: w = W[no][n] then bias[no]. One output per item, summed in input order. */
__kernel void tsr_nn_innerproduct(__global const float *in, __global float *out,
                                  __global const float *w, int n, int no, int act, float p0,
                                  float p1)
{
    int p = get_global_id(0);
    if (p >= no)
        return;
    __global const float *wr = w + (size_t)p * n;
    float acc = w[(size_t)no * n + p];
    for (int i = 0; i < n; i++)
        acc += wr[i] * in[i];
    out[p] = nn_act(acc, act, p0, p1);
}

/* Scale: y = x * k[c] (+ bias[c] when has_bias, read from k + c_count). */
__kernel void tsr_nn_scale(__global const float *in, __global const float *k, __global float *out,
                           int plane, int nc, int has_bias)
{
    int i = get_global_id(0), c = get_global_id(2);
    if (i >= plane)
        return;
    size_t at = (size_t)c * plane + i;
    out[at] = has_bias ? in[at] * k[c] + k[nc + c] : in[at] * k[c];
}
