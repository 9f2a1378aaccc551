/* color.grayscale: weighted sum of R, G, B into grey, alpha kept; grey input is copied as is.
 * Pixels: float32 planar; 3 -> 1 and 4 -> 2 channels (3 -> 3, 4 -> 4 with keep_channels).
 * Device: kernels/color.grayscale.cl (tsr_color_grayscale). */
#include "nodeutil.h"

/* rec601 is the default because it is what Pillow's convert("L") and OpenCV's cvtColor
 * RGB2GRAY produce, so results line up with those tools. The weights apply to the stored
 * (gamma-encoded) values, as those tools do: this is luma, not luminance. */
#define GRAY_PARAMS(X)                                                                             \
    X(METHOD, "method", TSR_PARAM_ENUM, "rec601", 0, -1, "rec601|rec709|average", 0,               \
      "rec601: 0.299 R + 0.587 G + 0.114 B (Pillow L, OpenCV); rec709: 0.2126, 0.7152, "           \
      "0.0722 (sRGB/HDTV); average: (R + G + B) / 3")                                              \
    X(KEEP_CHANNELS, "keep_channels", TSR_PARAM_BOOL, "false", 0, -1, NULL, 0,                     \
      "false: output grey (+ alpha); true: keep the channel count, grey in R, G and B")
TSR_PARAM_ENUM_DECL(GRAY_PARAMS)
TSR_PARAM_TABLE_DECL(gray, GRAY_PARAMS)

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

static const float gray_weights[3][3] = {
    {0.299f, 0.587f, 0.114f},
    {0.2126f, 0.7152f, 0.0722f},
    /* A product by 1/3 rather than a division: device division may be inexact (2.5 ulp). */
    {1.0f / 3.0f, 1.0f / 3.0f, 1.0f / 3.0f},
};

static tsr_status gray_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                             tsr__err *err)
{
    out[0] = in[0];
    if (in[0].channels >= 3 && !n->params[P_KEEP_CHANNELS].ival)
        out[0].channels = in[0].channels - 2;
    return TSR_OK;
}

static tsr_status gray_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                              const tsr_region *out)
{
    cl_kernel k;
    tsr_status rc = tsr__exec_kernel(ex, "tsr_color_grayscale", &k);
    if (rc)
        return rc;
    tsr__geom g = tsr__geom_of(&in[0], out);
    const float *w = gray_weights[n->params[P_METHOD].ival];
    cl_float wr = w[0], wg = w[1], wb = w[2];
    cl_int in_ch = in[0].channels, out_ch = out->channels;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(g), TSR_ARG(in_ch),
                        TSR_ARG(out_ch), TSR_ARG(wr), TSR_ARG(wg), TSR_ARG(wb));
    if (rc)
        return rc;
    return tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h, 1);
}

static tsr_status gray_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                               const tsr_region *out)
{
    const float *w = gray_weights[n->params[P_METHOD].ival];
    int in_ch = in[0].channels, out_ch = out->channels;
    for (int y = 0; y < out->rect.h; y++)
        for (int x = 0; x < out->rect.w; x++) {
            int ix = out->rect.x + x, iy = out->rect.y + y;
            size_t o = (size_t)y * out->rect.w + x;
            if (in_ch < 3) {
                for (int c = 0; c < in_ch; c++)
                    tsr__plane(out, c)[o] = tsr__ref_at(&in[0], c, ix, iy);
                continue;
            }
            /* Same operations, same order as the kernel. */
            float v = w[0] * tsr__ref_at(&in[0], 0, ix, iy) +
                      w[1] * tsr__ref_at(&in[0], 1, ix, iy) + w[2] * tsr__ref_at(&in[0], 2, ix, iy);
            int grey = out_ch == in_ch ? 3 : 1; /* planes that receive grey */
            for (int c = 0; c < grey; c++)
                tsr__plane(out, c)[o] = v;
            if (in_ch == 4)
                tsr__plane(out, grey)[o] = tsr__ref_at(&in[0], 3, ix, iy);
        }
    return TSR_OK;
}

const tsr_node_class tsr_node_color_grayscale = {
    .name = "color.grayscale",
    .doc = "Convert RGB(A) to grey (rec601, rec709 or average); alpha is kept",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = gray_params,
    .n_params = P_COUNT_,
    .kernel = "color.grayscale",
    .infer = gray_infer,
    .plan = tsr__plan_pointwise,
    .run_cl = gray_run_cl,
    .run_ref = gray_run_ref,
};
