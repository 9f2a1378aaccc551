/* blur.gaussian: see nodes/blur.gaussian.c. Launched by tsr__gauss_cl (engine/nodeutil.c) for
 * every node that blurs: blur.gaussian and sharpen. */
/* tsr_geom, tsr_out_index come from kernels/common.clh, prepended at build. */

/* No fused multiply-add: each tap is the same rounded multiply and add as the C reference, so
 * conforming devices reproduce it bit for bit. */
#pragma OPENCL FP_CONTRACT OFF

/* Edge policies, numbered as TSR_EDGE_* in engine/nodeutil.h. */
#define TSR_EDGE_CLAMP 0
#define TSR_EDGE_MIRROR 1
#define TSR_EDGE_ZERO 2

/* Full-image coordinate v folded into 0..n-1 under the edge policy; -1 reads as 0. Mirror is
 * reflect-101 repeated as often as a radius larger than the image needs (period 2(n-1)). */
int tsr_blur_edge(int v, int n, int edge)
{
    if (v >= 0 && v < n)
        return v;
    if (edge == TSR_EDGE_ZERO)
        return -1;
    if (edge == TSR_EDGE_CLAMP)
        return v < 0 ? 0 : n - 1;
    if (n == 1)
        return 0;
    int p = 2 * (n - 1);
    v %= p;
    if (v < 0)
        v += p;
    return v >= n ? p - v : v;
}

/* Both passes compute TSR_BLUR_COLS adjacent output columns per work item: on CPU devices the
 * eight sums run side by side in one vector register instead of one serial chain of adds (4x
 * faster than one column per item on PoCL), on GPUs the loads get wider. Each lane still adds
 * its taps one by one in the reference's order. Must match GAUSS_COLS in engine/nodeutil.c. */
#define TSR_BLUR_COLS 8

/* One horizontal sum with the edge policy applied per tap (near the left and right edges). */
float tsr_blur_h_edge(__global const float *row, const tsr_geom *g, __constant float *w, int r,
                      int edge, int ix)
{
    float acc = 0.0f;
    for (int i = -r; i <= r; i++) {
        int sx = tsr_blur_edge(ix + i, g->img_w, edge);
        float v = sx < 0 ? 0.0f : row[sx - g->in_x];
        acc += w[i + r] * v;
    }
    return acc;
}

/* Horizontal pass over image rows y0 .. y0 + rows - 1 (all in the input region) into scratch
 * laid out as channels x rows x out_w. */
__kernel void tsr_blur_gaussian_h(__global const float *in, __global float *scratch, tsr_geom g,
                                  __constant float *w, int r, int edge, int y0, int rows)
{
    int x = get_global_id(0) * TSR_BLUR_COLS, j = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || j >= rows)
        return;
    __global const float *row = in + ((size_t)c * g.in_h + (y0 + j - g.in_y)) * g.in_w;
    __global float *dst = scratch + ((size_t)c * rows + j) * g.out_w + x;
    int ix = g.out_x + x, last = TSR_BLUR_COLS - 1;
    if (x + last < g.out_w && ix - r >= 0 && ix + last + r < g.img_w) {
        __global const float *s = row + (ix - r - g.in_x);
        float8 acc = (float8)(0.0f);
        for (int i = 0; i <= 2 * r; i++)
            acc += w[i] * vload8(0, s + i);
        vstore8(acc, 0, dst);
        return;
    }
    for (int k = 0; k < TSR_BLUR_COLS && x + k < g.out_w; k++)
        dst[k] = tsr_blur_h_edge(row, &g, w, r, edge, ix + k);
}

/* Vertical pass from scratch into the output rectangle. The edge policy picks one scratch row
 * per tap, the same for every column of the work item. */
__kernel void tsr_blur_gaussian_v(__global const float *scratch, __global float *out, tsr_geom g,
                                  __constant float *w, int r, int edge, int y0, int rows)
{
    int x = get_global_id(0) * TSR_BLUR_COLS, y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    __global const float *col = scratch + (size_t)c * rows * g.out_w + x;
    __global float *dst = out + tsr_out_index(&g, c, x, y);
    int iy = g.out_y + y;
    if (x + TSR_BLUR_COLS - 1 < g.out_w) {
        float8 acc = (float8)(0.0f);
        if (iy - r >= 0 && iy + r < g.img_h) {
            __global const float *s = col + (size_t)(iy - r - y0) * g.out_w;
            for (int i = 0; i <= 2 * r; i++)
                acc += w[i] * vload8(0, s + (size_t)i * g.out_w);
        } else {
            for (int i = -r; i <= r; i++) {
                int sy = tsr_blur_edge(iy + i, g.img_h, edge);
                float8 v = (float8)(0.0f);
                if (sy >= 0)
                    v = vload8(0, col + (size_t)(sy - y0) * g.out_w);
                acc += w[i + r] * v;
            }
        }
        vstore8(acc, 0, dst);
        return;
    }
    for (int k = 0; x + k < g.out_w; k++) {
        float acc = 0.0f;
        for (int i = -r; i <= r; i++) {
            int sy = tsr_blur_edge(iy + i, g.img_h, edge);
            float v = sy < 0 ? 0.0f : col[(size_t)(sy - y0) * g.out_w + k];
            acc += w[i + r] * v;
        }
        dst[k] = acc;
    }
}
