/* sharpen: unsharp mask, out = in + amount * (in - gauss(in, sigma)) where |in - gauss| >=
 * threshold. Pixels: float32 planar, 1-4 channels; colour sharpened, alpha (2 and 4 channels)
 * copied. Device: kernels/blur.gaussian.cl (the blur, via tsr__gauss_cl), then kernels/sharpen.cl.
 */

/* The blur is blur.gaussian's own code (engine/nodeutil.c), so `sharpen` agrees bit for bit
 * with a graph that blurs and combines by hand. It writes the blurred colour planes straight
 * into the output buffer and tsr_sharpen turns them into the result in place: no second
 * tile-sized buffer. Results are not clamped: overshoot past 0..1 is what the next node gets,
 * and image.save clamps when it writes integers. */
#include <math.h>

#include "nodeutil.h"

/* Output columns per work item of tsr_sharpen: TSR_SHARPEN_COLS in kernels/sharpen.cl. */
#define SHARPEN_COLS 16

/* amount stops at 10: past that the halo ringing dwarfs the detail it brings out. The threshold
 * is in pixel units (0..1 nominal range), like GIMP's and Photoshop's on a 0..1 scale. */
#define SHARPEN_PARAMS(X)                                                                          \
    X(SIGMA, "sigma", TSR_PARAM_NUMBER, "1", TSR_GAUSS_SIGMA_MIN, TSR_GAUSS_SIGMA_MAX, NULL, 0,    \
      "standard deviation of the blur in pixels (0.01..100); the halo is ceil(4*sigma)")           \
    X(AMOUNT, "amount", TSR_PARAM_NUMBER, "1", 0.0, 10.0, NULL, 0,                                 \
      "strength (0..10): the multiple of (in - blurred) added to the input; 0 is the identity")    \
    X(THRESHOLD, "threshold", TSR_PARAM_NUMBER, "0", 0.0, 1.0, NULL, 0,                            \
      "samples with |in - blurred| below this (0..1) are left as they are, so flat noisy areas "   \
      "are not sharpened; 0 sharpens everything")                                                  \
    X(EDGE, "edge", TSR_PARAM_ENUM, "clamp", 0, -1, TSR_GAUSS_EDGES, 0, TSR_GAUSS_EDGE_DOC)
TSR_PARAM_ENUM_DECL(SHARPEN_PARAMS)
TSR_PARAM_TABLE_DECL(sharpen, SHARPEN_PARAMS)

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

/* Only the colour planes are blurred, so the scratch holds those alone. */
static void sharpen_plan(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out,
                         tsr_plan *p)
{
    tsr__gauss_plan(n->params[P_SIGMA].num, tsr__colour_channels(in[0].channels), in, out, p);
}

static tsr_status sharpen_prepare(tsr_exec *ex, const tsr_node *n, void **state)
{
    return tsr__gauss_prepare(ex, n->params[P_SIGMA].num);
}

static tsr_status sharpen_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                 const tsr_region *out)
{
    cl_int colour = tsr__colour_channels(out->channels);
    /* Rounded once here; the reference rounds the same way, so both compare the same floats. */
    cl_float amount = (cl_float)n->params[P_AMOUNT].num;
    cl_float threshold = (cl_float)n->params[P_THRESHOLD].num;
    cl_kernel k;
    tsr__geom g = tsr__geom_of(&in[0], out);
    tsr_status rc =
        tsr__gauss_cl(ex, &in[0], out, colour, n->params[P_SIGMA].num, n->params[P_EDGE].ival);
    if (rc || (rc = tsr__exec_kernel(ex, "tsr_sharpen", &k)))
        return rc;
    rc = tsr__exec_args(ex, k, 6, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(g),
                        TSR_ARG(colour), TSR_ARG(amount), TSR_ARG(threshold));
    if (rc)
        return rc;
    return tsr__exec_launch(ex, k, ((size_t)out->rect.w + SHARPEN_COLS - 1) / SHARPEN_COLS,
                            (size_t)out->rect.h, (size_t)out->channels);
}

static tsr_status sharpen_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                  const tsr_region *out)
{
    tsr__err *err = ex->err;
    int colour = tsr__colour_channels(out->channels);
    float amount = (float)n->params[P_AMOUNT].num;
    float threshold = (float)n->params[P_THRESHOLD].num;
    tsr_status rc =
        tsr__gauss_ref(n, &in[0], out, colour, n->params[P_SIGMA].num, n->params[P_EDGE].ival, err);
    if (rc)
        return rc;
    /* The operations of tsr_sharpen, one rounding each (ISO C mode does not contract them). */
    for (int c = 0; c < out->channels; c++) {
        float *dst = tsr__plane(out, c);
        for (int y = 0; y < out->rect.h; y++)
            for (int x = 0; x < out->rect.w; x++) {
                float v = tsr__ref_at(&in[0], c, out->rect.x + x, out->rect.y + y);
                float *o = &dst[(size_t)y * out->rect.w + x];
                if (c >= colour) {
                    *o = v;
                    continue;
                }
                float d = v - *o;
                *o = fabsf(d) < threshold ? v : v + amount * d;
            }
    }
    return TSR_OK;
}

const tsr_node_class tsr_node_sharpen = {
    .name = "sharpen",
    .doc = "Unsharp mask: in + amount * (in - Gaussian blur) where |in - blur| >= threshold; "
           "colour only, alpha kept, no clamping",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = sharpen_params,
    .n_params = P_COUNT_,
    .kernel = "sharpen",
    .infer = tsr__infer_same,
    .plan = sharpen_plan,
    .prepare = sharpen_prepare,
    .run_cl = sharpen_run_cl,
    .run_ref = sharpen_run_ref,
};
