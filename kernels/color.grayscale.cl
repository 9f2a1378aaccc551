/* color.grayscale: see nodes/color.grayscale.c. */
/* tsr_geom, tsr_in_at, tsr_out_index come from kernels/common.clh, prepended at build. */

/* No fused multiply-add, so that the weighted sum rounds exactly as the C reference does. */
#pragma OPENCL FP_CONTRACT OFF

/* One work item per pixel writes every output plane: in_ch < 3 is a copy; otherwise grey goes
 * to plane 0 (or planes 0-2 when out_ch == in_ch) and alpha, if any, to the last plane. */
__kernel void tsr_color_grayscale(__global const float *in, __global float *out, tsr_geom g,
                                  int in_ch, int out_ch, float wr, float wg, float wb)
{
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= g.out_w || y >= g.out_h)
        return;
    int ix = g.out_x + x, iy = g.out_y + y;
    if (in_ch < 3) {
        for (int c = 0; c < in_ch; c++)
            out[tsr_out_index(&g, c, x, y)] = tsr_in_at(in, &g, c, ix, iy);
        return;
    }
    float v = wr * tsr_in_at(in, &g, 0, ix, iy) + wg * tsr_in_at(in, &g, 1, ix, iy) +
              wb * tsr_in_at(in, &g, 2, ix, iy);
    int grey = out_ch == in_ch ? 3 : 1;
    for (int c = 0; c < grey; c++)
        out[tsr_out_index(&g, c, x, y)] = v;
    if (in_ch == 4)
        out[tsr_out_index(&g, grey, x, y)] = tsr_in_at(in, &g, 3, ix, iy);
}
