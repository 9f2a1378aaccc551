/* adjust.gamma: out = pow(max(v, 0), 1 / gamma) on colour channels; alpha passes through.
 * Pixels: float32 planar, 1-4 channels (2 and 4 carry alpha last).
 * Device: kernels/adjust.gamma.cl (tsr_adjust_gamma). */
#include <math.h>

#include "nodeutil.h"

/* The exponent is 1/gamma, the convention of GIMP's Levels gamma and of gamma encoding
 * (gamma 2.2 turns linear light into display values): gamma > 1 brightens mid-tones, gamma < 1
 * darkens, 0 and 1 stay fixed. Negative values (from earlier
 * nodes) become 0 because pow of a negative base is undefined; values above 1 are kept. */
#define GAMMA_PARAMS(X)                                                                            \
    X(GAMMA, "gamma", TSR_PARAM_NUMBER, "1", 0.01, 10.0, NULL, 0,                                  \
      "out = pow(max(v, 0), 1/gamma) on colour channels (0.01..10); > 1 brightens")
TSR_PARAM_ENUM_DECL(GAMMA_PARAMS)
TSR_PARAM_TABLE_DECL(gamma, GAMMA_PARAMS)

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

/* Rounded once on the host so both paths raise to the same float exponent. */
static float gamma_exponent(const tsr_node *n)
{
    return (float)(1.0 / n->params[P_GAMMA].num);
}

static tsr_status gamma_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                               const tsr_region *out)
{
    cl_kernel k;
    tsr_status rc = tsr__exec_kernel(ex, "tsr_adjust_gamma", &k);
    if (rc)
        return rc;
    tsr__geom g = tsr__geom_of(&in[0], out);
    cl_int colour = tsr__colour_channels(out->channels);
    cl_float e = gamma_exponent(n);
    rc = tsr__exec_args(ex, k, 5, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(g),
                        TSR_ARG(colour), TSR_ARG(e));
    if (rc)
        return rc;
    return tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h, (size_t)out->channels);
}

static tsr_status gamma_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                const tsr_region *out)
{
    int colour = tsr__colour_channels(out->channels);
    float e = gamma_exponent(n);
    for (int c = 0; c < out->channels; c++)
        for (int y = 0; y < out->rect.h; y++)
            for (int x = 0; x < out->rect.w; x++) {
                float v = tsr__ref_at(&in[0], c, out->rect.x + x, out->rect.y + y);
                /* Written so that NaN maps to 0, as in the kernel. */
                if (c < colour)
                    v = powf(v > 0.0f ? v : 0.0f, e);
                tsr__plane(out, c)[(size_t)y * out->rect.w + x] = v;
            }
    return TSR_OK;
}

const tsr_node_class tsr_node_adjust_gamma = {
    .name = "adjust.gamma",
    .doc = "Gamma curve pow(max(v,0), 1/gamma) on colour channels; alpha is kept",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = gamma_params,
    .n_params = P_COUNT_,
    .kernel = "adjust.gamma",
    .infer = tsr__infer_same,
    .plan = tsr__plan_pointwise,
    .run_cl = gamma_run_cl,
    .run_ref = gamma_run_ref,
};
