/* adjust.brightness_contrast: GIMP's Brightness-Contrast curve on colour channels; alpha kept.
 * Pixels: float32 planar, 1-4 channels (2 and 4 carry alpha last).
 * Device: kernels/adjust.brightness_contrast.cl (tsr_adjust_brightness_contrast). */
#include <math.h>

#include "nodeutil.h"

/* The definition is GIMP 2.10's Colors > Brightness-Contrast (gimp:brightness-contrast), so a
 * value carried over from GIMP gives the same picture: the dialog's -127..127 sliders are these
 * params times 127. With b = brightness / 2 and slope = tan((contrast + 1) * pi/4):
 *   v' = b < 0 ? v * (1 + b) : v + (1 - v) * b      (brightness scales towards black or white)
 *   out = (v' - 0.5) * slope + 0.5                    (contrast pivots on mid-grey)
 * contrast -1 gives flat grey, 0 leaves the image alone, 1 is a hard threshold at 0.5 (slope
 * tan(pi/2), about 1.6e16). GIMP does not clamp; `clamp` (default on) limits colour to 0..1,
 * which is what an 8-bit save would do anyway; turn it off to keep out-of-range values. */
#define BC_PARAMS(X)                                                                               \
    X(BRIGHTNESS, "brightness", TSR_PARAM_NUMBER, "0", -1.0, 1.0, NULL, 0,                         \
      "-1..1 (GIMP's slider / 127): < 0 scales towards black, > 0 lifts towards white")            \
    X(CONTRAST, "contrast", TSR_PARAM_NUMBER, "0", -1.0, 1.0, NULL, 0,                             \
      "-1..1 (GIMP's slider / 127): slope tan((contrast+1)*pi/4) around mid-grey 0.5")             \
    X(CLAMP, "clamp", TSR_PARAM_BOOL, "true", 0, -1, NULL, 0, "clamp colour channels to 0..1")
TSR_PARAM_ENUM_DECL(BC_PARAMS)
TSR_PARAM_TABLE_DECL(bc, BC_PARAMS)

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

/* Curve constants, rounded once on the host so both paths use the same floats. */
static void bc_constants(const tsr_node *n, float *b, float *slope)
{
    *b = (float)(n->params[P_BRIGHTNESS].num / 2.0);
    *slope = (float)tan((n->params[P_CONTRAST].num + 1.0) * (M_PI / 4.0));
}

static tsr_status bc_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                            const tsr_region *out)
{
    cl_kernel k;
    tsr_status rc = tsr__exec_kernel(ex, "tsr_adjust_brightness_contrast", &k);
    if (rc)
        return rc;
    tsr__geom g = tsr__geom_of(&in[0], out);
    cl_int colour = tsr__colour_channels(out->channels), clamp = n->params[P_CLAMP].ival != 0;
    cl_float b, slope;
    bc_constants(n, &b, &slope);
    rc = tsr__exec_args(ex, k, 7, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(g),
                        TSR_ARG(colour), TSR_ARG(b), TSR_ARG(slope), TSR_ARG(clamp));
    if (rc)
        return rc;
    return tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h, (size_t)out->channels);
}

static tsr_status bc_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                             const tsr_region *out)
{
    int colour = tsr__colour_channels(out->channels), clamp = n->params[P_CLAMP].ival != 0;
    float b, slope;
    bc_constants(n, &b, &slope);
    for (int c = 0; c < out->channels; c++)
        for (int y = 0; y < out->rect.h; y++)
            for (int x = 0; x < out->rect.w; x++) {
                float v = tsr__ref_at(&in[0], c, out->rect.x + x, out->rect.y + y);
                if (c < colour) {
                    /* Same operations, same order as the kernel. */
                    v = b < 0.0f ? v * (1.0f + b) : v + (1.0f - v) * b;
                    v = (v - 0.5f) * slope + 0.5f;
                    if (clamp)
                        v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                }
                tsr__plane(out, c)[(size_t)y * out->rect.w + x] = v;
            }
    return TSR_OK;
}

const tsr_node_class tsr_node_adjust_brightness_contrast = {
    .name = "adjust.brightness_contrast",
    .doc = "Brightness and contrast as in GIMP's Brightness-Contrast; alpha is kept",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = bc_params,
    .n_params = P_COUNT_,
    .kernel = "adjust.brightness_contrast",
    .infer = tsr__infer_same,
    .plan = tsr__plan_pointwise,
    .run_cl = bc_run_cl,
    .run_ref = bc_run_ref,
};
