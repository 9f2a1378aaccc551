/* blur.gaussian: separable Gaussian blur of every channel, with a chosen edge policy.
 * Pixels: float32 planar, 1-4 channels, all blurred alike (straight alpha, see below).
 * Device: kernels/blur.gaussian.cl (tsr_blur_gaussian_h, then tsr_blur_gaussian_v). */

/* Alpha is blurred as straight alpha, like OpenCV and Pillow do, so the colour of transparent
 * pixels bleeds into their neighbours; blurring premultiplied colour is a later improvement.
 * The blur itself (weights, edge policies, both passes) lives in engine/nodeutil.c, shared with
 * the nodes built on it (sharpen), so that they agree with this node bit for bit. */
#include "nodeutil.h"

#define BLUR_PARAMS(X)                                                                             \
    X(SIGMA, "sigma", TSR_PARAM_NUMBER, "1", TSR_GAUSS_SIGMA_MIN, TSR_GAUSS_SIGMA_MAX, NULL, 0,    \
      TSR_GAUSS_SIGMA_DOC)                                                                         \
    X(EDGE, "edge", TSR_PARAM_ENUM, "clamp", 0, -1, TSR_GAUSS_EDGES, 0, TSR_GAUSS_EDGE_DOC)
TSR_PARAM_ENUM_DECL(BLUR_PARAMS)
TSR_PARAM_TABLE_DECL(blur, BLUR_PARAMS)

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

static void blur_plan(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out, tsr_plan *p)
{
    tsr__gauss_plan(n->params[P_SIGMA].num, in[0].channels, in, out, p);
}

static tsr_status blur_prepare(tsr_exec *ex, const tsr_node *n, void **state)
{
    return tsr__gauss_prepare(ex, n->params[P_SIGMA].num);
}

static tsr_status blur_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                              const tsr_region *out)
{
    return tsr__gauss_cl(ex, &in[0], out, out->channels, n->params[P_SIGMA].num,
                         n->params[P_EDGE].ival);
}

static tsr_status blur_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                               const tsr_region *out)
{
    tsr__err *err = ex->err;
    return tsr__gauss_ref(n, &in[0], out, out->channels, n->params[P_SIGMA].num,
                          n->params[P_EDGE].ival, err);
}

const tsr_node_class tsr_node_blur_gaussian = {
    .name = "blur.gaussian",
    .doc = "Gaussian blur (separable, radius ceil(4 sigma)); all channels, straight alpha",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = blur_params,
    .n_params = P_COUNT_,
    .kernel = "blur.gaussian",
    .infer = tsr__infer_same,
    .plan = blur_plan,
    .prepare = blur_prepare,
    .run_cl = blur_run_cl,
    .run_ref = blur_run_ref,
};
