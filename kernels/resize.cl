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

/* Tap tables (rs_taps in nodes/resize.c), one buffer per axis, 32-bit words from `base`: for the
 * axis's count output pixels of this tile, lo[count] and n[count] (ints: first input pixel,
 * absolute, and number of taps), wsum[count], then count rows of k weights. */
#define RS_LO(t, base, j) as_int((t)[(base) + (j)])
#define RS_N(t, base, count, j) as_int((t)[(base) + (count) + (j)])
#define RS_WSUM(t, base, count, j) ((t)[(base) + 2 * (long)(count) + (j)])
#define RS_W(t, base, count, k, j) ((t) + (base) + 3 * (long)(count) + (long)(j) * (k))

/* Each work item of the two passes below computes several output pixels that share their taps
 * and weights, held in vectors: the vector arithmetic is element-wise, so per pixel it is the
 * reference's scalar operations in the reference's order, and it lets CPU implementations use
 * SIMD registers where a loop over the pixels stays scalar (PoCL does not vectorize across work
 * items whose loop counts come from memory). The channel loop is outermost so that the
 * accumulators stay in registers. */

/* Rows per work item of tsr_resize_h_gather. */
#define RS_PER_ITEM 8

/* Horizontal pass when shrinking (see tsr_resize_h for enlarging, and nodes/resize.c for the
 * choice): tmp holds `rows` input rows starting at image row row0, out_w columns wide (the output
 * tile's columns), planar per channel. Item (x, r) does RS_PER_ITEM consecutive rows
 * from r * RS_PER_ITEM at column x, which share taps and weights, as one vector; rows past the
 * end (in the last item of a column) repeat the last row and are not stored, so that the lanes
 * never branch apart. */
__kernel void tsr_resize_h_gather(__global const float *in, __global float *tmp, tsr_geom g,
                                  __global const float *tab, int k, int row0, int rows,
                                  int channels)
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

/* Rows per work item of the horizontal pass, and the multiple its transposed input's columns
 * are padded to: must match RS_ROWS_H in nodes/resize.c. */
#define RS_ROWS_H 16

/* Transposes rows row0 .. row0 + rows - 1 of the input region into tin, planar per channel, one
 * column of the region after the other, each column rows_t long (rows rounded up to RS_ROWS_H;
 * the padding repeats the last row). Item (x, b) does column x for RS_ROWS_H rows from
 * b * RS_ROWS_H: strided loads, one contiguous store. */
__kernel void tsr_resize_t(__global const float *in, __global float *tin, tsr_geom g, int row0,
                           int rows, int rows_t, int channels)
{
    int x = get_global_id(0), j0 = get_global_id(1) * RS_ROWS_H;
    if (x >= g.in_w || j0 >= rows_t)
        return;
    size_t plane = (size_t)g.in_w * g.in_h;
    for (int c = 0; c < channels; c++) {
        __global const float *src = in + c * plane + (size_t)(row0 - g.in_y) * g.in_w + x;
        float t[RS_ROWS_H];
        for (int p = 0; p < RS_ROWS_H; p++)
            t[p] = src[(size_t)min(j0 + p, rows - 1) * g.in_w];
        vstore16(vload16(0, t), 0, tin + ((size_t)c * g.in_w + x) * rows_t + j0);
    }
}

/* Horizontal pass when enlarging: tmp holds `rows` input rows starting at image row row0, out_w
 * columns wide (the output tile's columns), planar per channel. It reads the input transposed (tin,
 * see tsr_resize_t), so that item (x, b), output column x for RS_ROWS_H consecutive rows from b *
 * RS_ROWS_H, which share taps and weights, loads each tap's sixteen rows as one contiguous vector:
 * a gather of eight scalars per tap before. Rows past the end (in the last item of a column) are
 * computed from the padding and not stored. The vector arithmetic is element-wise, so per pixel it
 * is the reference's scalar operations in the reference's order. */
__kernel void tsr_resize_h(__global const float *tin, __global float *tmp, tsr_geom g,
                           __global const float *tab, int k, int rows, int rows_t, int channels)
{
    int x = get_global_id(0), r0 = get_global_id(1) * RS_ROWS_H;
    if (x >= g.out_w || r0 >= rows)
        return;
    int lo = RS_LO(tab, 0, x), n = RS_N(tab, 0, g.out_w, x);
    float wsum = RS_WSUM(tab, 0, g.out_w, x);
    __global const float *w = RS_W(tab, 0, g.out_w, k, x);
    for (int c = 0; c < channels; c++) {
        __global const float *src = tin + ((size_t)c * g.in_w + (lo - g.in_x)) * rows_t + r0;
        float16 acc = (float16)(0.0f);
        for (int i = 0; i < n; i++)
            acc += w[i] * vload16(0, src + (size_t)i * rows_t);
        acc = wsum != 0.0f ? acc / wsum : acc;
        __global float *dst = tmp + ((size_t)c * rows + r0) * g.out_w + x;
        float r[RS_ROWS_H];
        vstore16(acc, 0, r);
        if (r0 + RS_ROWS_H <= rows) {
            for (int p = 0; p < RS_ROWS_H; p++)
                dst[(size_t)p * g.out_w] = r[p];
        } else {
            for (int p = 0; p < rows - r0; p++)
                dst[(size_t)p * g.out_w] = r[p];
        }
    }
}

/* Output columns per work item of the vertical pass: must match RS_COLS_V in nodes/resize.c. */
#define RS_COLS_V 32

/* Vertical pass over tmp (see tsr_resize_h) into the output tile. All pixels of an output row
 * share one set of weights, so item (x, y) does RS_COLS_V neighbouring columns from
 * x * RS_COLS_V as two vectors of sixteen: contiguous loads and stores that CPUs run in SIMD
 * registers (two independent chains of adds) and GPUs as wide loads. Per pixel the operations
 * and their order are those of the reference; the last item of a row may be partial and does
 * its columns one by one. */
__kernel void tsr_resize_v(__global const float *tmp, __global float *out, tsr_geom g,
                           __global const float *tab, int k, int row0, int rows, int channels)
{
    int x0 = get_global_id(0) * RS_COLS_V, y = get_global_id(1);
    if (x0 >= g.out_w || y >= g.out_h)
        return;
    int lo = RS_LO(tab, 0, y), n = RS_N(tab, 0, g.out_h, y);
    float wsum = RS_WSUM(tab, 0, g.out_h, y);
    __global const float *w = RS_W(tab, 0, g.out_h, k, y);
    size_t plane = (size_t)rows * g.out_w;
    __global const float *src = tmp + (size_t)(lo - row0) * g.out_w + x0;
    if (x0 + RS_COLS_V <= g.out_w) {
        for (int c = 0; c < channels; c++) {
            float16 a0 = (float16)(0.0f), a1 = a0;
            __global const float *s = src + c * plane;
            for (int j = 0; j < n; j++, s += g.out_w) {
                float wj = w[j];
                a0 += wj * vload16(0, s);
                a1 += wj * vload16(1, s);
            }
            __global float *d = out + tsr_out_index(&g, c, x0, y);
            vstore16(wsum != 0.0f ? a0 / wsum : a0, 0, d);
            vstore16(wsum != 0.0f ? a1 / wsum : a1, 1, d);
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
