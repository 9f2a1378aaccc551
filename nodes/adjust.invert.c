/* adjust.invert: out = 1 - in on colour channels; alpha passes through unchanged.
 * Pixels: float32 planar, 1-4 channels (2 and 4 carry alpha last).
 * Device: kernels/adjust.invert.cl (tsr_adjust_invert). */
#include "internal.h"
#include "nodeutil.h"

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

static tsr_status invert_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                const tsr_region *out)
{
    cl_kernel k;
    tsr_status rc = tsr__exec_kernel(ex, "tsr_adjust_invert", &k);
    if (rc)
        return rc;
    tsr__geom g = tsr__geom_of(&in[0], out);
    int colour = tsr__colour_channels(out->channels);
    rc = tsr__exec_args(ex, k, 4, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(g),
                        TSR_ARG(colour));
    if (rc)
        return rc;
    return tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h, (size_t)out->channels);
}

static tsr_status invert_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                 const tsr_region *out)
{
    int colour = tsr__colour_channels(out->channels);
    for (int c = 0; c < out->channels; c++)
        for (int y = 0; y < out->rect.h; y++)
            for (int x = 0; x < out->rect.w; x++) {
                float v = tsr__ref_at(&in[0], c, out->rect.x + x, out->rect.y + y);
                tsr__plane(out, c)[(size_t)y * out->rect.w + x] = c < colour ? 1.0f - v : v;
            }
    return TSR_OK;
}

const tsr_node_class tsr_node_adjust_invert = {
    .name = "adjust.invert",
    .doc = "Invert colour channels (1 - v); alpha is kept",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = NULL,
    .n_params = 0,
    .kernel = "adjust.invert",
    .infer = tsr__infer_same,
    .plan = tsr__plan_pointwise,
    .run_cl = invert_run_cl,
    .run_ref = invert_run_ref,
};
