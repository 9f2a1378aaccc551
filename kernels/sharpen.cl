/* sharpen: see nodes/sharpen.c. The blur (kernels/blur.gaussian.cl) has already written the
 * blurred colour planes into `out`; this pass turns them into the sharpened result in place. */
/* tsr_geom, tsr_in_at, tsr_out_index come from kernels/common.clh, prepended at build. */

/* No fused multiply-add: the same two roundings as the C reference, so conforming devices
 * reproduce it bit for bit and a tiled run matches the whole image. */
#pragma OPENCL FP_CONTRACT OFF

/* Each work item reads and then writes its own output sample only, so in-place is safe. */
__kernel void tsr_sharpen(__global const float *in, __global float *out, tsr_geom g, int colour,
                          float amount, float threshold)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    float v = tsr_in_at(in, &g, c, g.out_x + x, g.out_y + y);
    size_t i = tsr_out_index(&g, c, x, y);
    if (c >= colour) {
        out[i] = v;
        return;
    }
    float d = v - out[i];
    out[i] = fabs(d) < threshold ? v : v + amount * d;
}
