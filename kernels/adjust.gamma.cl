/* adjust.gamma: see nodes/adjust.gamma.c. */
/* tsr_geom, tsr_in_at, tsr_out_index come from kernels/common.clh, prepended at build. */

__kernel void tsr_adjust_gamma(__global const float *in, __global float *out, tsr_geom g,
                               int colour, float e)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    float v = tsr_in_at(in, &g, c, g.out_x + x, g.out_y + y);
    /* A comparison, not max(): NaN goes to 0 here as in the reference, whatever max() does. */
    if (c < colour)
        v = pow(v > 0.0f ? v : 0.0f, e);
    out[tsr_out_index(&g, c, x, y)] = v;
}
