/* blur.gaussian: see nodes/blur.gaussian.c. */
/* tsr_geom, tsr_out_index come from kernels/common.clh, prepended at build. */

/* No fused multiply-add: each tap is the same rounded multiply and add as the C reference, so
 * conforming devices reproduce it bit for bit. */
#pragma OPENCL FP_CONTRACT OFF

/* Edge policies, numbered as in nodes/blur.gaussian.c. */
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

/* Horizontal pass over image rows y0 .. y0 + rows - 1 (all in the input region) into scratch
 * laid out as channels x rows x out_w. */
__kernel void tsr_blur_gaussian_h(__global const float *in, __global float *scratch, tsr_geom g,
                                  __constant float *w, int r, int edge, int y0, int rows)
{
    int x = get_global_id(0), j = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || j >= rows)
        return;
    __global const float *row = in + ((size_t)c * g.in_h + (y0 + j - g.in_y)) * g.in_w;
    float acc = 0.0f;
    for (int i = -r; i <= r; i++) {
        int sx = tsr_blur_edge(g.out_x + x + i, g.img_w, edge);
        float v = sx < 0 ? 0.0f : row[sx - g.in_x];
        acc += w[i + r] * v;
    }
    scratch[((size_t)c * rows + j) * g.out_w + x] = acc;
}

/* Vertical pass from scratch into the output rectangle. */
__kernel void tsr_blur_gaussian_v(__global const float *scratch, __global float *out, tsr_geom g,
                                  __constant float *w, int r, int edge, int y0, int rows)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    float acc = 0.0f;
    for (int i = -r; i <= r; i++) {
        int sy = tsr_blur_edge(g.out_y + y + i, g.img_h, edge);
        float v = sy < 0 ? 0.0f : scratch[((size_t)c * rows + (sy - y0)) * g.out_w + x];
        acc += w[i + r] * v;
    }
    out[tsr_out_index(&g, c, x, y)] = acc;
}
