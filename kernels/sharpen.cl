/* sharpen: see nodes/sharpen.c. The blur (kernels/blur.gaussian.cl) has already written the
 * blurred colour planes into `out`; this pass turns them into the sharpened result in place. */
/* tsr_geom, tsr_out_index come from kernels/common.clh, prepended at build. */

/* No fused multiply-add: the same two roundings as the C reference, so conforming devices
 * reproduce it bit for bit and a tiled run matches the whole image. */
#pragma OPENCL FP_CONTRACT OFF

/* Output columns per work item: must match SHARPEN_COLS in nodes/sharpen.c. Sixteen columns run
 * as one vector (one AVX-512 register on PoCL); a partial last item does its columns one by one.
 * Output pixels lie inside the image, so the input is read without clamping. */
#define TSR_SHARPEN_COLS 16

/* Each work item reads and then writes its own output samples only, so in-place is safe. */
__kernel void tsr_sharpen(__global const float *in, __global float *out, tsr_geom g, int colour,
                          float amount, float threshold)
{
    int x = get_global_id(0) * TSR_SHARPEN_COLS, y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    __global const float *src =
        in + ((size_t)c * g.in_h + (g.out_y + y - g.in_y)) * g.in_w + (g.out_x + x - g.in_x);
    __global float *dst = out + tsr_out_index(&g, c, x, y);
    if (x + TSR_SHARPEN_COLS <= g.out_w) {
        float16 v = vload16(0, src);
        if (c >= colour) {
            vstore16(v, 0, dst);
            return;
        }
        float16 d = v - vload16(0, dst);
        vstore16(select(v + amount * d, v, fabs(d) < (float16)(threshold)), 0, dst);
        return;
    }
    for (int k = 0; k < g.out_w - x; k++) {
        float v = src[k];
        if (c >= colour) {
            dst[k] = v;
            continue;
        }
        float d = v - dst[k];
        dst[k] = fabs(d) < threshold ? v : v + amount * d;
    }
}
