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

/* Both passes compute TSR_BLUR_COLS adjacent output columns of TSR_BLUR_ROWS rows per work
 * item. On CPU devices the sixteen columns' sums run side by side in one vector register (one
 * AVX-512 register, two AVX2 ones), and the rows are independent chains of adds, so the adds of
 * one row do not wait for the latency of the one before (a single chain ran at the add's latency,
 * not its throughput: 2.5x slower on PoCL). On GPUs the loads get wider. Each lane still adds its
 * taps one by one in the reference's order. Must match GAUSS_COLS and GAUSS_ROWS in
 * engine/nodeutil.c. */
#define TSR_BLUR_COLS 16
#define TSR_BLUR_ROWS 4

/* The first n <= TSR_BLUR_COLS lanes of acc to d (a tile's last columns may be fewer). */
void tsr_blur_store(float16 acc, __global float *d, int n)
{
    if (n == TSR_BLUR_COLS) {
        vstore16(acc, 0, d);
    } else {
        float t[TSR_BLUR_COLS];
        vstore16(acc, 0, t);
        for (int m = 0; m < n; m++)
            d[m] = t[m];
    }
}

/* Horizontal sums of the n <= TSR_BLUR_COLS columns from image column ix of one row, with the
 * edge policy applied where a tap reaches past the image (lanes from n on are 0). A tap that
 * stays inside the image for all lanes is one vector load; only the others gather lane by lane,
 * so an item at the image's edge costs a few times an interior one, not sixteen. */
float16 tsr_blur_h_edge(__global const float *row, const tsr_geom *g, __constant float *w, int r,
                        int edge, int ix, int n)
{
    float16 acc = (float16)(0.0f);
    for (int i = 0; i <= 2 * r; i++) {
        int lo = ix + i - r;
        float16 v;
        if (n == TSR_BLUR_COLS && lo >= 0 && lo + TSR_BLUR_COLS <= g->img_w) {
            v = vload16(0, row + (lo - g->in_x));
        } else {
            float t[TSR_BLUR_COLS];
            for (int m = 0; m < TSR_BLUR_COLS; m++) {
                int sx = m < n ? tsr_blur_edge(lo + m, g->img_w, edge) : -1;
                t[m] = sx < 0 ? 0.0f : row[sx - g->in_x];
            }
            v = vload16(0, t);
        }
        acc += w[i] * v;
    }
    return acc;
}

/* Horizontal pass over image rows y0 .. y0 + rows - 1 (all in the input region) into scratch
 * laid out as channels x rows x out_w. An item's rows past `rows` (the last item of a column)
 * read the last row again and are not stored, so that the lanes never branch apart. */
__kernel void tsr_blur_gaussian_h(__global const float *in, __global float *scratch, tsr_geom g,
                                  __constant float *w, int r, int edge, int y0, int rows)
{
    int x = get_global_id(0) * TSR_BLUR_COLS, j0 = get_global_id(1) * TSR_BLUR_ROWS,
        c = get_global_id(2);
    if (x >= g.out_w || j0 >= rows)
        return;
    __global const float *plane = in + (size_t)c * g.in_h * g.in_w;
    __global float *dst = scratch + ((size_t)c * rows + j0) * g.out_w + x;
    int ix = g.out_x + x, last = TSR_BLUR_COLS - 1;
    if (x + last < g.out_w && ix - r >= 0 && ix + last + r < g.img_w) {
        size_t st = (size_t)g.in_w;
        __global const float *s = plane + (size_t)(y0 + j0 - g.in_y) * st + (ix - r - g.in_x);
        /* Rows past the end repeat the last one (offsets d1..d3 shrink to it). */
        size_t d1 = (size_t)min(1, rows - 1 - j0) * st, d2 = (size_t)min(2, rows - 1 - j0) * st,
               d3 = (size_t)min(3, rows - 1 - j0) * st;
        float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i <= 2 * r; i++) {
            float wi = w[i];
            a0 += wi * vload16(0, s + i);
            a1 += wi * vload16(0, s + d1 + i);
            a2 += wi * vload16(0, s + d2 + i);
            a3 += wi * vload16(0, s + d3 + i);
        }
        vstore16(a0, 0, dst);
        if (j0 + 1 < rows)
            vstore16(a1, 0, dst + (size_t)g.out_w);
        if (j0 + 2 < rows)
            vstore16(a2, 0, dst + 2 * (size_t)g.out_w);
        if (j0 + 3 < rows)
            vstore16(a3, 0, dst + 3 * (size_t)g.out_w);
        return;
    }
    int n = min(TSR_BLUR_COLS, g.out_w - x);
    for (int k = 0; k < TSR_BLUR_ROWS && j0 + k < rows; k++) {
        __global const float *row = plane + (size_t)(y0 + j0 + k - g.in_y) * g.in_w;
        float16 acc = tsr_blur_h_edge(row, &g, w, r, edge, ix, n);
        __global float *d = dst + (size_t)k * g.out_w;
        tsr_blur_store(acc, d, n);
    }
}

/* One vertical sum of TSR_BLUR_COLS columns (n of them when n < TSR_BLUR_COLS) at image row iy
 * with the edge policy applied per tap. */
float16 tsr_blur_v_edge(__global const float *col, const tsr_geom *g, __constant float *w, int r,
                        int edge, int y0, int iy, int n)
{
    float16 acc = (float16)(0.0f);
    for (int i = -r; i <= r; i++) {
        int sy = tsr_blur_edge(iy + i, g->img_h, edge);
        float16 v = (float16)(0.0f);
        if (sy >= 0) {
            __global const float *src = col + (size_t)(sy - y0) * g->out_w;
            if (n == TSR_BLUR_COLS) {
                v = vload16(0, src);
            } else {
                float t[TSR_BLUR_COLS];
                for (int m = 0; m < TSR_BLUR_COLS; m++)
                    t[m] = m < n ? src[m] : 0.0f;
                v = vload16(0, t);
            }
        }
        acc += w[i + r] * v;
    }
    return acc;
}

/* Vertical pass from scratch into the output rectangle. The edge policy picks one scratch row
 * per tap, the same for every column of the work item. */
__kernel void tsr_blur_gaussian_v(__global const float *scratch, __global float *out, tsr_geom g,
                                  __constant float *w, int r, int edge, int y0, int rows)
{
    int x = get_global_id(0) * TSR_BLUR_COLS, y = get_global_id(1) * TSR_BLUR_ROWS,
        c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    __global const float *col = scratch + (size_t)c * rows * g.out_w + x;
    __global float *dst = out + tsr_out_index(&g, c, x, y);
    int iy = g.out_y + y, n = min(TSR_BLUR_COLS, g.out_w - x);
    if (n == TSR_BLUR_COLS && y + TSR_BLUR_ROWS <= g.out_h && iy - r >= 0 &&
        iy + TSR_BLUR_ROWS - 1 + r < g.img_h) {
        size_t st = (size_t)g.out_w;
        __global const float *s = col + (size_t)(iy - r - y0) * st;
        float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i <= 2 * r; i++, s += st) {
            float wi = w[i];
            a0 += wi * vload16(0, s);
            a1 += wi * vload16(0, s + st);
            a2 += wi * vload16(0, s + 2 * st);
            a3 += wi * vload16(0, s + 3 * st);
        }
        vstore16(a0, 0, dst);
        vstore16(a1, 0, dst + st);
        vstore16(a2, 0, dst + 2 * st);
        vstore16(a3, 0, dst + 3 * st);
        return;
    }
    for (int k = 0; k < TSR_BLUR_ROWS && y + k < g.out_h; k++) {
        float16 acc = tsr_blur_v_edge(col, &g, w, r, edge, y0, iy + k, n);
        __global float *d = dst + (size_t)k * g.out_w;
        tsr_blur_store(acc, d, n);
    }
}
