/* image.load: decode a PNG or JPEG file (format sniffed from its bytes) into an image.
 * Pixels: float32 planar 0..1, 1-4 channels as stored (palette -> RGB(A), tRNS -> alpha).
 * Device: none; the executor uploads the decoded image. */

#include "nodeutil.h"

#define LOAD_PARAMS(X)                                                                             \
    X(PATH, "path", TSR_PARAM_STRING, NULL, 0, -1, NULL, TSR_PARAM_REQUIRED | TSR_PARAM_PATH,      \
      "image file to read (PNG or JPEG), relative to the current directory; - reads standard "     \
      "input")
TSR_PARAM_ENUM_DECL(LOAD_PARAMS)
TSR_PARAM_TABLE_DECL(load, LOAD_PARAMS)

static const tsr_port_def outputs[] = {{"image", TSR_PORT_IMAGE, "decoded image"}};

static tsr_status load_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                             tsr__err *err)
{
    /* The executor checks the engine's pixel limit against the inferred size. */
    tsr_status rc = tsr__image_probe(n->params[P_PATH].str, UINT64_MAX, out, err);
    return rc ? tsr__node_reanchor(err, n, P_PATH, rc) : TSR_OK;
}

static tsr_status load_produce(tsr_exec *ex, const tsr_node *n, tsr_image **out)
{
    tsr__io_ctl ctl = tsr__exec_io(ex);
    tsr_status rc = tsr__image_load(n->params[P_PATH].str, ex->max_pixels, &ctl, out, ex->err);
    /* A cancel is not an error at a place in the graph: its message goes up as it is. */
    return rc && rc != TSR_ERR_CANCELLED ? tsr__node_reanchor(ex->err, n, P_PATH, rc) : rc;
}

const tsr_node_class tsr_node_image_load = {
    .name = "image.load",
    .doc = "Read a PNG or JPEG file",
    .outputs = outputs,
    .n_outputs = 1,
    .params = load_params,
    .n_params = P_COUNT_,
    .flags = TSR_NODE_SOURCE,
    .infer = load_infer,
    .produce = load_produce,
};
