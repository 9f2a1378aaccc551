/* resize: see nodes/resize.c (semantics) and docs/NODES-resize.md. */
/* tsr_geom comes from kernels/common.clh, prepended at build. Every arithmetic step below is
 * mirrored operation for operation by the reference path in nodes/resize.c: keep them in step. */

/* Contraction into fma would round differently from the plain-C reference. */
#pragma OPENCL FP_CONTRACT OFF

#define RS_NEAREST 0
#define RS_BILINEAR 1
#define RS_BICUBIC 2
#define RS_MITCHELL 3
#define RS_LANCZOS3 4
#define RS_PI 3.14159265358979323846f

/* Filter support in input pixels at scale 1 (nearest has no taps). */
inline int rs_support(int filter)
{
    return filter == RS_BILINEAR ? 1 : (filter == RS_LANCZOS3 ? 3 : 2);
}

inline float rs_weight(int filter, float t)
{
    t = fabs(t);
    if (filter == RS_BILINEAR)
        return t < 1.0f ? 1.0f - t : 0.0f;
    if (filter == RS_BICUBIC) { /* Keys, a = -0.5 */
        if (t < 1.0f)
            return (1.5f * t - 2.5f) * t * t + 1.0f;
        if (t < 2.0f)
            return (((t - 5.0f) * t + 8.0f) * t - 4.0f) * -0.5f;
        return 0.0f;
    }
    if (filter == RS_MITCHELL) { /* Mitchell-Netravali, B = C = 1/3 */
        if (t < 1.0f)
            return ((7.0f * t - 12.0f) * t * t + 16.0f / 3.0f) / 6.0f;
        if (t < 2.0f)
            return (((-7.0f / 3.0f * t + 12.0f) * t - 20.0f) * t + 32.0f / 3.0f) / 6.0f;
        return 0.0f;
    }
    if (t >= 3.0f)
        return 0.0f;
    if (t == 0.0f)
        return 1.0f;
    float a = RS_PI * t;
    return 3.0f * sin(a) * sin(a / 3.0f) / (a * a);
}

inline long rs_floor_div(long a, long b)
{
    long q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Taps of output pixel o (absolute) on an axis of n_in -> n_out pixels: the input pixels i with
 * |t| < support, t = ((2i+1) n_out - (2o+1) n_in) / (2 max(n_in, n_out)), clamped to the
 * image. Integer arithmetic, so the window never depends on rounding. */
inline void rs_window(int filter, int o, int n_in, int n_out, int *lo, int *hi)
{
    long m = n_in > n_out ? n_in : n_out;
    long span = 2L * rs_support(filter) * m;
    long centre = (2L * o + 1) * n_in;
    long a = rs_floor_div(centre - span - n_out, 2L * n_out) + 1;
    long b = rs_floor_div(centre + span - n_out - 1, 2L * n_out);
    *lo = (int)(a < 0 ? 0 : a);
    *hi = (int)(b > n_in - 1 ? n_in - 1 : b);
}

/* Input pixel whose centre is nearest to output pixel o: floor((o + 0.5) n_in / n_out). */
inline int rs_nearest(int o, int n_in, int n_out)
{
    return (int)(((2L * o + 1) * n_in) / (2L * n_out));
}

__kernel void tsr_resize_nearest(__global const float *in, __global float *out, tsr_geom g,
                                 int out_img_w, int out_img_h, int channels)
{
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= g.out_w || y >= g.out_h)
        return;
    int sx = rs_nearest(g.out_x + x, g.img_w, out_img_w) - g.in_x;
    int sy = rs_nearest(g.out_y + y, g.img_h, out_img_h) - g.in_y;
    for (int c = 0; c < channels; c++)
        out[tsr_out_index(&g, c, x, y)] = in[((size_t)c * g.in_h + sy) * g.in_w + sx];
}

/* Each work item of the two passes below computes RS_PER_ITEM output pixels that share their
 * weights, so every weight (two sin calls for lanczos3) is evaluated once per item rather than
 * once per pixel. The pixels are `stride` apart so that neighbouring items still touch
 * neighbouring addresses. Per pixel the operations and their order are unchanged. Loops run a
 * constant count with guards inside, so that compilers can unroll them and keep acc in
 * registers instead of indexing private memory. */
#define RS_PER_ITEM 8

/* Horizontal pass: tmp holds `rows` input rows starting at image row row0, out_w columns wide
 * (the output tile's columns), planar per channel. Item (x, r) does rows r, r + stride, ... */
__kernel void tsr_resize_h(__global const float *in, __global float *tmp, tsr_geom g, int filter,
                           int out_img_w, int row0, int rows, int channels, int stride)
{
    int x = get_global_id(0), r0 = get_global_id(1);
    if (x >= g.out_w || r0 >= stride)
        return;
    int lo, hi;
    rs_window(filter, g.out_x + x, g.img_w, out_img_w, &lo, &hi);
    long m = g.img_w > out_img_w ? g.img_w : out_img_w;
    float den = (float)(2L * m);
    long step = 2L * out_img_w;
    long num = (2L * lo + 1) * out_img_w - (2L * (g.out_x + x) + 1) * g.img_w;
    size_t plane = (size_t)g.in_w * g.in_h;
    float acc[RS_PER_ITEM][4], wsum = 0.0f;
    for (int p = 0; p < RS_PER_ITEM; p++)
        for (int c = 0; c < 4; c++)
            acc[p][c] = 0.0f;
    for (int i = lo; i <= hi; i++, num += step) {
        float w = rs_weight(filter, (float)num / den);
        wsum += w;
        for (int p = 0; p < RS_PER_ITEM; p++) {
            int r = r0 + p * stride;
            size_t at = (size_t)(row0 + r - g.in_y) * g.in_w + (size_t)(i - g.in_x);
            for (int c = 0; c < 4; c++)
                if (r < rows && c < channels)
                    acc[p][c] += w * in[c * plane + at];
        }
    }
    for (int p = 0; p < RS_PER_ITEM; p++) {
        int r = r0 + p * stride;
        for (int c = 0; c < 4; c++)
            if (r < rows && c < channels)
                tmp[((size_t)c * rows + r) * g.out_w + x] =
                    wsum != 0.0f ? acc[p][c] / wsum : acc[p][c];
    }
}

/* Vertical pass over tmp (see tsr_resize_h) into the output tile. Item (x, y) does columns x,
 * x + stride, ... */
__kernel void tsr_resize_v(__global const float *tmp, __global float *out, tsr_geom g, int filter,
                           int out_img_h, int row0, int rows, int channels, int stride)
{
    int x0 = get_global_id(0), y = get_global_id(1);
    if (x0 >= stride || y >= g.out_h)
        return;
    int lo, hi;
    rs_window(filter, g.out_y + y, g.img_h, out_img_h, &lo, &hi);
    long m = g.img_h > out_img_h ? g.img_h : out_img_h;
    float den = (float)(2L * m);
    long step = 2L * out_img_h;
    long num = (2L * lo + 1) * out_img_h - (2L * (g.out_y + y) + 1) * g.img_h;
    size_t plane = (size_t)rows * g.out_w;
    float acc[RS_PER_ITEM][4], wsum = 0.0f;
    for (int p = 0; p < RS_PER_ITEM; p++)
        for (int c = 0; c < 4; c++)
            acc[p][c] = 0.0f;
    for (int j = lo; j <= hi; j++, num += step) {
        float w = rs_weight(filter, (float)num / den);
        wsum += w;
        size_t at = (size_t)(j - row0) * g.out_w;
        for (int p = 0; p < RS_PER_ITEM; p++) {
            int x = x0 + p * stride;
            for (int c = 0; c < 4; c++)
                if (x < g.out_w && c < channels)
                    acc[p][c] += w * tmp[c * plane + at + x];
        }
    }
    for (int p = 0; p < RS_PER_ITEM; p++) {
        int x = x0 + p * stride;
        for (int c = 0; c < 4; c++)
            if (x < g.out_w && c < channels)
                out[tsr_out_index(&g, c, x, y)] = wsum != 0.0f ? acc[p][c] / wsum : acc[p][c];
    }
}
