/* image.load: decode a PNG, JPEG, WebP or TIFF file (format sniffed from its bytes).
 * Pixels: float32 planar 0..1, 1-4 channels as stored (palette -> RGB(A), tRNS -> alpha);
 * by default turned upright by the EXIF orientation and converted to sRGB from an embedded ICC
 * profile.
 * Device: none; the executor uploads the decoded image. */

#include "nodeutil.h"

#define LOAD_PARAMS(X)                                                                             \
    X(PATH, "path", TSR_PARAM_STRING, NULL, 0, -1, NULL, TSR_PARAM_REQUIRED | TSR_PARAM_PATH,      \
      "image file to read (PNG, JPEG, WebP or TIFF), relative to the graph file's folder; - "      \
      "reads standard input")                                                                      \
    X(ORIENTATION, "orientation", TSR_PARAM_ENUM, "auto", 0, -1, "auto|ignore", 0,                 \
      "auto: turn the image upright by its EXIF orientation tag (as vips autorot); ignore: "       \
      "pixels as stored")                                                                          \
    X(COLOUR, "colour", TSR_PARAM_ENUM, "srgb", 0, -1, "srgb|keep", 0,                             \
      "srgb: convert from an embedded ICC profile to sRGB (lcms2, perceptual); keep: values as "   \
      "stored")                                                                                    \
    X(FAIL_ON, "fail_on", TSR_PARAM_ENUM, "error", 0, -1, "error|warning|none", 0,                 \
      "as vips: error fails on damaged pixel data (truncated, corrupt); warning also on any "      \
      "decoder warning; none loads what can be decoded and reports what it recovered from")
TSR_PARAM_ENUM_DECL(LOAD_PARAMS)
TSR_PARAM_TABLE_DECL(load, LOAD_PARAMS)

static const tsr_port_def outputs[] = {{"image", TSR_PORT_IMAGE, "decoded image"}};

static tsr__load_opts load_opts(const tsr_node *n)
{
    tsr__load_opts lo = {
        .orientation = n->params[P_ORIENTATION].ival == 0 ? TSR_ORIENT_AUTO : TSR_ORIENT_IGNORE,
        .colour = n->params[P_COLOUR].ival == 0 ? TSR_COLOUR_SRGB : TSR_COLOUR_KEEP,
        .fail_on = n->params[P_FAIL_ON].ival == 0   ? TSR_FAIL_ON_ERROR
                   : n->params[P_FAIL_ON].ival == 1 ? TSR_FAIL_ON_WARNING
                                                    : TSR_FAIL_ON_NONE,
    };
    return lo;
}

static tsr_status load_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                             tsr__err *err)
{
    /* The executor checks the engine's pixel limit against the inferred size. */
    tsr__load_opts lo = load_opts(n);
    tsr_status rc = tsr__image_probe(n->params[P_PATH].str, UINT64_MAX, &lo, out, err);
    return rc ? tsr__node_reanchor(err, n, P_PATH, rc) : TSR_OK;
}

static tsr_status load_produce(tsr_exec *ex, const tsr_node *n, tsr_image **out)
{
    tsr__io_ctl ctl = tsr__exec_io(ex);
    tsr__load_opts lo = load_opts(n);
    tsr_status rc = tsr__image_load(n->params[P_PATH].str, ex->max_pixels, &lo, &ctl, out, ex->err);
    /* A cancel is not an error at a place in the graph: its message goes up as it is. */
    return rc && rc != TSR_ERR_CANCELLED ? tsr__node_reanchor(ex->err, n, P_PATH, rc) : rc;
}

const tsr_node_class tsr_node_image_load = {
    .name = "image.load",
    .doc = "Read a PNG, JPEG, WebP or TIFF file",
    .outputs = outputs,
    .n_outputs = 1,
    .params = load_params,
    .n_params = P_COUNT_,
    .flags = TSR_NODE_SOURCE,
    .infer = load_infer,
    .produce = load_produce,
};
