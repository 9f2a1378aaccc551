/* upscale: the pre- and post-processing around a network (engine/netrun.c holds the C reference
 * of each kernel). The network's layers are kernels/nn.cl. */

/* Must match netgeo_cl in engine/netrun.c. */
typedef struct tsr_netgeo {
    int src_x, src_y, src_w, src_h;
    int img_w, img_h, src_c;
    int win_x, win_y, win_w, win_h;
    int out_x, out_y, out_w, out_h;
    int net_w, net_h, ox, oy;
    int scale, edge, residual, out_c;
} tsr_netgeo;

/* Edge rules: 0 replicates the edge pixel, 1 reflects without repeating it. */
inline int net_edge_map(int x, int n, int rule)
{
    if (x >= 0 && x < n)
        return x;
    if (rule == 0 || n == 1)
        return x < 0 ? 0 : n - 1;
    int period = 2 * (n - 1);
    x %= period;
    if (x < 0)
        x += period;
    return x >= n ? period - x : x;
}

inline int net_colour(int channels)
{
    return channels == 2 || channels == 4 ? channels - 1 : channels;
}

/* The network's input: window pixel (x, y) of channel c, from the source region under the edge
 * rule; gray sources feed all three channels. */
__kernel void tsr_net_window(__global const float *src, __global float *win, tsr_netgeo g)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.win_w || y >= g.win_h)
        return;
    int colour = net_colour(g.src_c);
    int sc = c < colour ? c : colour - 1;
    int sx = net_edge_map(g.win_x + x, g.img_w, g.edge) - g.src_x;
    int sy = net_edge_map(g.win_y + y, g.img_h, g.edge) - g.src_y;
    win[((size_t)c * g.win_h + y) * g.win_w + x] =
        src[((size_t)sc * g.src_h + sy) * g.src_w + sx];
}

inline float net_quantize(float v)
{
    float f = floor(v);
    f = f < 0.0f ? 0.0f : (f > 255.0f ? 255.0f : f);
    return f / 255.0f;
}

/* Output colour: the network's output at the rectangle's offset, times 255, plus 0.5 (plus the
 * nearest enlargement of the input for residual models), truncated and clamped to 0..255. */
__kernel void tsr_net_output(__global const float *net, __global const float *src,
                             __global float *out, tsr_netgeo g)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= g.out_w || y >= g.out_h)
        return;
    float v = net[((size_t)c * g.net_h + g.oy + y) * g.net_w + g.ox + x] * 255.0f + 0.5f;
    if (g.residual) {
        int colour = net_colour(g.src_c);
        int sc = c < colour ? c : colour - 1;
        int sx = (g.out_x + x) / g.scale - g.src_x, sy = (g.out_y + y) / g.scale - g.src_y;
        v += src[((size_t)sc * g.src_h + sy) * g.src_w + sx] * 255.0f;
    }
    out[((size_t)c * g.out_h + y) * g.out_w + x] = net_quantize(v);
}

/* ncnn's bicubic weights, written as tsr__nn_cubic (engine/nn_ref.c) writes them. */
inline void net_cubic(float t, float *w)
{
    const float A = -0.75f;
    float t0 = t + 1, t1 = t, t2 = 1 - t;
    w[0] = A * t0 * t0 * t0 - 5 * A * t0 * t0 + 8 * A * t0 - 4 * A;
    w[1] = (A + 2) * t1 * t1 * t1 - (A + 3) * t1 * t1 + 1;
    w[2] = (A + 2) * t2 * t2 * t2 - (A + 3) * t2 * t2 + 1;
    w[3] = 1.f - w[0] - w[1] - w[2];
}

/* Alpha: ncnn's bicubic Interp (A = -0.75, half-pixel centres, taps clamped to the image,
 * horizontal then vertical) of the source's last plane, rounded like the colour. */
__kernel void tsr_net_alpha(__global const float *src, __global float *out, tsr_netgeo g)
{
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= g.out_w || y >= g.out_h)
        return;
    int X = g.out_x + x, Y = g.out_y + y, a = g.src_c - 1;
    float fx = (float)((X + 0.5f) / (float)g.scale - 0.5f);
    float fy = (float)((Y + 0.5f) / (float)g.scale - 0.5f);
    int sx = (int)floor(fx), sy = (int)floor(fy);
    float wx[4], wy[4];
    net_cubic(fx - (float)sx, wx);
    net_cubic(fy - (float)sy, wy);
    float acc = 0.0f;
    for (int j = 0; j < 4; j++) {
        int yy = clamp(sy - 1 + j, 0, g.img_h - 1) - g.src_y;
        __global const float *row = src + ((size_t)a * g.src_h + yy) * g.src_w;
        float h = 0.0f;
        for (int i = 0; i < 4; i++)
            h += wx[i] * row[clamp(sx - 1 + i, 0, g.img_w - 1) - g.src_x];
        acc += wy[j] * h;
    }
    out[((size_t)(g.out_c - 1) * g.out_h + y) * g.out_w + x] = net_quantize(acc * 255.0f + 0.5f);
}
