/* resize: see nodes/resize.c (semantics) and docs/NODES-resize.md. */
/* tsr_geom comes from kernels/common.clh, prepended at build. The weights come from the host
 * (rs_taps_make in nodes/resize.c, the reference path's own tables); every arithmetic step below
 * is mirrored operation for operation by the reference path: keep them in step. */

/* Contraction into fma would round differently from the plain-C reference. */
#pragma OPENCL FP_CONTRACT OFF

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

/* Tap tables (rs_taps in nodes/resize.c), one buffer per axis, 32-bit words from `base`: for the axis's count output pixels of this tile, lo[count]
 * and n[count] (ints: first input pixel, absolute, and number of taps), wsum[count], then count
 * rows of k weights. */
#define RS_LO(t, base, j) as_int((t)[(base) + (j)])
#define RS_N(t, base, count, j) as_int((t)[(base) + (count) + (j)])
#define RS_WSUM(t, base, count, j) ((t)[(base) + 2 * (long)(count) + (j)])
#define RS_W(t, base, count, k, j) ((t) + (base) + 3 * (long)(count) + (long)(j) * (k))

/* Each work item of the two passes below computes RS_PER_ITEM output pixels that share their
 * taps and weights, held as one float8 per channel: the vector arithmetic is element-wise, so per
 * pixel it is the reference's scalar operations in the reference's order, and it lets CPU
 * implementations use SIMD registers where a loop over the pixels stays scalar (PoCL does not
 * vectorize across work items whose loop counts come from memory). The channel loop is outermost
 * so that the accumulator stays in a register. */
#define RS_PER_ITEM 8

/* Horizontal pass: tmp holds `rows` input rows starting at image row row0, out_w columns wide
 * (the output tile's columns), planar per channel. Item (x, r) does RS_PER_ITEM consecutive rows
 * from r * RS_PER_ITEM at column x, which share taps and weights, as one vector; rows past the
 * end (in the last item of a column) repeat the last row and are not stored, so that the lanes
 * never branch apart. */
__kernel void tsr_resize_h(__global const float *in, __global float *tmp, tsr_geom g,
                           __global const float *tab, int k, int row0, int rows, int channels)
{
    int x = get_global_id(0), r0 = get_global_id(1) * RS_PER_ITEM;
    if (x >= g.out_w || r0 >= rows)
        return;
    int lo = RS_LO(tab, 0, x), n = RS_N(tab, 0, g.out_w, x);
    float wsum = RS_WSUM(tab, 0, g.out_w, x);
    __global const float *w = RS_W(tab, 0, g.out_w, k, x);
    size_t plane = (size_t)g.in_w * g.in_h;
    __global const float *src[RS_PER_ITEM];
    for (int p = 0; p < RS_PER_ITEM; p++)
        src[p] = in + (size_t)(row0 + min(r0 + p, rows - 1) - g.in_y) * g.in_w + (lo - g.in_x);
    for (int c = 0; c < channels; c++) {
        float8 acc = (float8)(0.0f);
        for (int i = 0; i < n; i++) {
            size_t at = c * plane + i;
            acc += w[i] * (float8)(src[0][at], src[1][at], src[2][at], src[3][at], src[4][at],
                                   src[5][at], src[6][at], src[7][at]);
        }
        acc = wsum != 0.0f ? acc / wsum : acc;
        __global float *dst = tmp + ((size_t)c * rows + r0) * g.out_w + x;
        float r[RS_PER_ITEM];
        vstore8(acc, 0, r);
        for (int p = 0; p < RS_PER_ITEM; p++)
            if (r0 + p < rows)
                dst[(size_t)p * g.out_w] = r[p];
    }
}

/* Vertical pass over tmp (see tsr_resize_h) into the output tile. All pixels of an output row
 * share one set of weights, so item (x, y) does RS_PER_ITEM neighbouring columns from x *
 * RS_PER_ITEM as one vector: contiguous loads and stores that CPUs run in SIMD registers and
 * GPUs as wide loads. Per pixel the operations and their order are those of the reference; the
 * last item of a row may be partial and does its columns one by one. */
__kernel void tsr_resize_v(__global const float *tmp, __global float *out, tsr_geom g,
                           __global const float *tab, int k, int row0, int rows, int channels)
{
    int x0 = get_global_id(0) * RS_PER_ITEM, y = get_global_id(1);
    if (x0 >= g.out_w || y >= g.out_h)
        return;
    int lo = RS_LO(tab, 0, y), n = RS_N(tab, 0, g.out_h, y);
    float wsum = RS_WSUM(tab, 0, g.out_h, y);
    __global const float *w = RS_W(tab, 0, g.out_h, k, y);
    size_t plane = (size_t)rows * g.out_w;
    __global const float *src = tmp + (size_t)(lo - row0) * g.out_w + x0;
    if (x0 + RS_PER_ITEM <= g.out_w) {
        for (int c = 0; c < channels; c++) {
            float8 acc = (float8)(0.0f);
            for (int j = 0; j < n; j++)
                acc += w[j] * vload8(0, src + c * plane + (size_t)j * g.out_w);
            vstore8(wsum != 0.0f ? acc / wsum : acc, 0, out + tsr_out_index(&g, c, x0, y));
        }
        return;
    }
    for (int x = 0; x < g.out_w - x0; x++)
        for (int c = 0; c < channels; c++) {
            float acc = 0.0f;
            for (int j = 0; j < n; j++)
                acc += w[j] * src[c * plane + (size_t)j * g.out_w + x];
            out[tsr_out_index(&g, c, x0 + x, y)] = wsum != 0.0f ? acc / wsum : acc;
        }
}
