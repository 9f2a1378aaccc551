/* adjust.brightness_contrast: see nodes/adjust.brightness_contrast.c. */
/* tsr_geom, tsr_in_at, tsr_out_index come from kernels/common.clh, prepended at build. */

/* No fused multiply-add, so that the curve rounds exactly as the C reference does. */
#pragma OPENCL FP_CONTRACT OFF

__kernel void tsr_adjust_brightness_contrast(__global const float *in, __global float *out,
                                             tsr_geom g, int colour, float b, float slope,
                                             int clamp)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    float v = tsr_in_at(in, &g, c, g.out_x + x, g.out_y + y);
    if (c < colour) {
        v = b < 0.0f ? v * (1.0f + b) : v + (1.0f - v) * b;
        v = (v - 0.5f) * slope + 0.5f;
        if (clamp)
            v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
    out[tsr_out_index(&g, c, x, y)] = v;
}
