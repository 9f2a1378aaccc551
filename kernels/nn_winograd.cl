/* nn_winograd: 3x3 stride-1 dilation-1 Convolution as Winograd F(4x4, 3x3), launched by
 * engine/nn_cl.c (every other convolution runs the direct kernels of kernels/nn.cl).
 *
 * The output is cut into 4x4 tiles, tiles_x per tile row (a multiple of 4: the tiles past the
 * output's width are computed and not stored), T in all, numbered row by row; tile t reads the
 * 6x6 input patch at (4 * (t / tiles_x) - pt, 4 * (t % tiles_x) - pl), pad_value outside the
 * input. With the transforms of Lavin & Gray (points 0, +-1, +-2, infinity):
 *   V = B^T d B      per tile and input channel (wino_in4: four tiles of a row, float4 lanes)
 *   M[k] = U[k] V[k] for each of the 36 positions k: (oc x ic) times (ic x tiles), register
 *                    blocked like the direct kernels: N output channels (one floatN) by NN_PX
 *                    tiles per block (wino_gemm_ocN_pxP)
 *   Y = A^T M A + bias, activation, the tile's pixels inside the output (wino_out4: four
 *                    output channels, float4 lanes)
 * U = G g G^T is computed once per model when the weights are packed (engine/nn_cl.c), stored
 * [36][oc / N][ic][N] (the tail block zero-padded) followed by the bias [ocp], ocp = oc rounded
 * up to N.
 *
 * Two ways to run the three steps over one scratch buffer:
 *   GPUs: three launches over a chunk of tiles: V [36][ic][Tp] (positions vks apart), then M
 *         [36][Tp][ocp] (positions mks apart) at moff; Tp: the chunk padded, the tiles past it
 *         are zeros in V, so the products need no bounds checks.
 *   CPUs: one launch, tsr_nn_wino_fused_ocN: a work item takes 16 tiles through all three steps
 *         in its own slice of the scratch (V of those tiles, then M of one block of output
 *         channels at a time), which stays in the core's cache: the three-pass form streams V
 *         and M through memory and measured no faster than the direct kernel on PoCL.
 * Both take the tiles in chunks of at most 2048 (engine/nn_cl.c), one set of launches each,
 * so that the scratch stays a bounded multiple of the channels, not of the image.
 * Winograd output is the same sum as the direct convolution, not the same rounding: the
 * transforms multiply values by up to 8 (A) and 5 (B) before the sums cancel, so results carry a
 * few times the direct kernel's rounding error (tests/unit/test_nn_layers.c states the bound). */

/* nn_act (the fused activations): kernels/common.clh. */

/* r = B^T d for one column of six values (s: the stride between them in d and r). */
#define WINO_BT(d, r, s)                                                                           \
    do {                                                                                           \
        float4 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];   \
        r[0] = 4.0f * d0 - 5.0f * d2 + d4;                                                         \
        r[s] = -4.0f * (d1 + d2) + d3 + d4;                                                        \
        r[2 * s] = 4.0f * (d1 - d2) - d3 + d4;                                                     \
        r[3 * s] = 2.0f * (d3 - d1) - d2 + d4;                                                     \
        r[4 * s] = 2.0f * (d1 - d3) - d2 + d4;                                                     \
        r[5 * s] = 4.0f * d1 - 5.0f * d3 + d5;                                                     \
    } while (0)

/* Input transform of tiles t .. t+3 (one tile row) in channel q: the 36 float4 at
 * vp + k * kstride (zeros past T). */
void wino_in4(__global const float *in, __global float *vp, size_t kstride, int q, int t, int ih,
              int iw, int tiles_x, int T, int pt, int pl, float pad_value)
{
    if (t >= T) {
        for (int k = 0; k < 36; k++)
            vstore4((float4)(0.0f), 0, vp + k * kstride);
        return;
    }
    int y0 = (t / tiles_x) * 4 - pt, x0 = (t % tiles_x) * 4 - pl;
    int inside = x0 >= 0 && x0 + 18 <= iw;
    __global const float *src = in + (size_t)q * ih * iw;
    float4 d[36], e[36];
    for (int r = 0; r < 6; r++) {
        int y = y0 + r;
        float seg[18];
        if (y >= 0 && y < ih && inside) {
            for (int c = 0; c < 18; c++)
                seg[c] = src[(size_t)y * iw + x0 + c];
        } else {
            int yok = y >= 0 && y < ih;
            for (int c = 0; c < 18; c++) {
                int x = x0 + c;
                seg[c] = yok && x >= 0 && x < iw ? src[(size_t)y * iw + x] : pad_value;
            }
        }
        for (int c = 0; c < 6; c++)
            d[r * 6 + c] = (float4)(seg[c], seg[c + 4], seg[c + 8], seg[c + 12]);
    }
    for (int c = 0; c < 6; c++) /* columns: e = B^T d */
        WINO_BT((d + c), (e + c), 6);
    for (int r = 0; r < 6; r++) /* rows: d = e B */
        WINO_BT((e + r * 6), (d + r * 6), 1);
    for (int k = 0; k < 36; k++)
        vstore4(d[k], 0, vp + k * kstride);
}

/* Work item (g, q): tiles tbase + 4g .. +3 (V columns 4g .. 4g+3), input channel q; tiles
 * from tend on are zeros. */
__kernel void tsr_nn_wino_in(__global const float *in, __global float *v, int ic, int ih, int iw,
                             int tiles_x, int tbase, int tend, int Tp, ulong vks, int pt, int pl,
                             float pad_value)
{
    int t = get_global_id(0) * 4, q = get_global_id(1);
    if (t >= Tp || q >= ic)
        return;
    wino_in4(in, v + (size_t)q * Tp + t, vks, q, tbase + t, ih, iw, tiles_x, tend, pt, pl,
             pad_value);
}

/* One block of a product: N output channels (weights wp: [ic][N]) by NN_PX tiles (vp: row q
 * at vp + q * vrow), stored as NN_PX floatN at mp + i * mrow. */
#define WINO_GEMM_BLOCK(N, NN_PX)                                                                  \
    void wino_gemm_oc##N##_px##NN_PX(__global const float *wp, __global const float *vp,           \
                                     size_t vrow, int ic, __global float *mp, size_t mrow)         \
    {                                                                                              \
        float##N acc[NN_PX];                                                                       \
        for (int i = 0; i < NN_PX; i++)                                                            \
            acc[i] = (float##N)(0.0f);                                                             \
        for (int q = 0; q < ic; q++) {                                                             \
            float##N wv = vload##N(0, wp);                                                         \
            wp += N;                                                                               \
            for (int i = 0; i < NN_PX; i++)                                                        \
                acc[i] = fma((float##N)(vp[i]), wv, acc[i]);                                       \
            vp += vrow;                                                                            \
        }                                                                                          \
        for (int i = 0; i < NN_PX; i++)                                                            \
            vstore##N(acc[i], 0, mp + (size_t)i * mrow);                                           \
    }

/* The products over all tiles. Work item (g, k, z): tiles g*NN_PX .. +NN_PX-1, position k,
 * output-channel blocks z*nbi .. z*nbi+nbi-1. */
#define WINO_GEMM_KERNEL(N, NN_PX)                                                                 \
    WINO_GEMM_BLOCK(N, NN_PX)                                                                      \
    __kernel void tsr_nn_wino_gemm_oc##N##_px##NN_PX(                                              \
        __global const float *u, __global float *scratch, ulong vks, ulong moff, ulong mks,        \
        int ic, int Tp, int ocp, int nbi)                                                          \
    {                                                                                              \
        int t0 = get_global_id(0) * NN_PX, k = get_global_id(1), b0 = get_global_id(2) * nbi;      \
        if (t0 >= Tp || k >= 36)                                                                   \
            return;                                                                                \
        int nb = ocp / N;                                                                          \
        for (int b = b0; b < b0 + nbi && b < nb; b++)                                              \
            wino_gemm_oc##N##_px##NN_PX(u + ((size_t)k * nb + b) * ic * N, scratch + k * vks + t0, \
                                        Tp, ic,                                                    \
                                        scratch + moff + k * mks + (size_t)t0 * ocp + b * N, ocp); \
    }

WINO_GEMM_KERNEL(4, 4)
WINO_GEMM_KERNEL(8, 4)
WINO_GEMM_KERNEL(16, 4)
WINO_GEMM_BLOCK(4, 16)
WINO_GEMM_BLOCK(8, 16)
WINO_GEMM_BLOCK(16, 16)

/* r = A^T m for one column of six values (s: the stride in m; r: four values, stride s). */
#define WINO_AT(m, r, s)                                                                           \
    do {                                                                                           \
        float4 m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];   \
        float4 s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;                         \
        r[0] = m0 + s12 + s34;                                                                     \
        r[s] = d12 + 2.0f * d34;                                                                   \
        r[2 * s] = s12 + 4.0f * s34;                                                               \
        r[3 * s] = d12 + 8.0f * d34 + m5;                                                          \
    } while (0)

/* Output transform of one tile t, channels p .. p+3 (those below oc): M at mp + k * kstride
 * (float4 each), bias at bias4 (4 values). */
void wino_out4(__global const float *mp, size_t kstride, __global const float *bias4,
               __global float *out, int p, int t, int oc, int oh, int ow, int tiles_x, int act,
               float p0, float p1)
{
    int y0 = (t / tiles_x) * 4, x0 = (t % tiles_x) * 4;
    if (x0 >= ow) /* the tiles that pad a tile row to a multiple of 4 */
        return;
    float4 m[36], e[24]; /* e: A^T m, 4 rows of 6 */
    for (int k = 0; k < 36; k++)
        m[k] = vload4(0, mp + k * kstride);
    for (int c = 0; c < 6; c++)
        WINO_AT((m + c), (e + c), 6);
    float4 bv = vload4(0, bias4);
    for (int r = 0; r < 4 && y0 + r < oh; r++) {
        float4 y[4];
        WINO_AT((e + r * 6), y, 1);
        for (int c = 0; c < 4 && x0 + c < ow; c++) {
            float lanes[4];
            vstore4(bv + y[c], 0, lanes);
            for (int j = 0; j < 4 && p + j < oc; j++)
                out[((size_t)(p + j) * oh + y0 + r) * ow + x0 + c] =
                    nn_act(lanes[j], act, p0, p1);
        }
    }
}

/* Work item (g, t): channels 4g .. 4g+3, M row t < tn: tile tbase + t. The bias is at
 * w + boff (ocp values). */
__kernel void tsr_nn_wino_out(__global const float *scratch, ulong moff, ulong mks,
                              __global const float *w, ulong boff, __global float *out, int oc,
                              int oh, int ow, int tiles_x, int tbase, int tn, int ocp, int act,
                              float p0, float p1)
{
    int p = get_global_id(0) * 4, t = get_global_id(1);
    if (p >= oc || t >= tn)
        return;
    wino_out4(scratch + moff + (size_t)t * ocp + p, mks, w + boff + p, out, p, tbase + t, oc, oh,
              ow, tiles_x, act, p0, p1);
}

/* All three steps for 16 tiles. Work item g: tiles tbase + 16g .. +15 (those below tend), in
 * the scratch slice at
 * scratch + g * slice: V [36][ic][16] (positions ic * 16 + 16 apart), then M of one block of N
 * output channels, [36][16][N] (positions 16 * N + 16 apart; the 16 floats keep the 36 rows out
 * of one cache set). Block by block, the products of the 36 positions and the output
 * transform: V (about 300 KB for 128 channels) and M (37 KB) stay in the core's cache. */
#define WINO_FUSED_KERNEL(N)                                                                       \
    __kernel void tsr_nn_wino_fused_oc##N(                                                         \
        __global const float *in, __global const float *u, __global float *scratch, ulong slice,   \
        __global float *out, int ic, int ih, int iw, int oc, int oh, int ow, int tiles_x,          \
        int tbase, int tend, int ocp, int pt, int pl, float pad_value, int act, float p0,          \
        float p1)                                                                                  \
    {                                                                                              \
        int g = get_global_id(0), t0 = tbase + g * 16;                                             \
        if (t0 >= tend)                                                                            \
            return;                                                                                \
        int nb = ocp / N;                                                                          \
        size_t vks = (size_t)ic * 16 + 16, mks = 16 * N + 16;                                      \
        __global float *v = scratch + g * slice, *m = v + 36 * vks;                                \
        for (int q = 0; q < ic; q++)                                                               \
            for (int j = 0; j < 16; j += 4)                                                        \
                wino_in4(in, v + q * 16 + j, vks, q, t0 + j, ih, iw, tiles_x, tend, pt, pl,        \
                         pad_value);                                                               \
        __global const float *bias = u + (size_t)36 * ocp * ic;                                    \
        for (int b = 0; b < nb; b++) {                                                             \
            for (int k = 0; k < 36; k++)                                                           \
                wino_gemm_oc##N##_px16(u + ((size_t)k * nb + b) * ic * N, v + k * vks, 16, ic,     \
                                       m + k * mks, N);                                            \
            for (int i = 0; i < 16 && t0 + i < tend; i++)                                          \
                for (int p = b * N; p < b * N + N && p < oc; p += 4)                               \
                    wino_out4(m + i * N + (p - b * N), mks, bias + p, out, p, t0 + i, oc, oh, ow,  \
                              tiles_x, act, p0, p1);                                               \
        }                                                                                          \
    }

WINO_FUSED_KERNEL(4)
WINO_FUSED_KERNEL(8)
WINO_FUSED_KERNEL(16)
