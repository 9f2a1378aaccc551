/* adjust.invert: see nodes/adjust.invert.c. */
/* tsr_geom, tsr_in_at, tsr_out_index come from kernels/common.clh, prepended at build. */

__kernel void tsr_adjust_invert(__global const float *in, __global float *out, tsr_geom g,
                                int colour)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    float v = tsr_in_at(in, &g, c, g.out_x + x, g.out_y + y);
    out[tsr_out_index(&g, c, x, y)] = c < colour ? 1.0f - v : v;
}
