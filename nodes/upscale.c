/* upscale: run a super-resolution network (from model.load) over an image, tiled like every
 * node under the device budget. Pixels: RGB goes through the network as planar 0..1 floats;
 * gray is expanded to RGB first (output RGB); alpha never enters the network, it is enlarged
 * with ncnn's bicubic Interp at the model's scale, as the original ncnn programs do. Output
 * values are rounded to 8-bit levels exactly as those programs round (v*255+0.5, truncated,
 * clamped), so the output is an 8-bit image.
 * Device: kernels/upscale.cl (window, output, alpha) around kernels/nn.cl (the layers). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "netrun.h"
#include "nodeutil.h"

#define UPSCALE_PARAMS(X)                                                                          \
    X(OVERLAP, "overlap", TSR_PARAM_STRING, "auto", 0, -1, NULL, 0,                                \
      "context pixels between tiles: 'exact' (the receptive field: tiles equal the untiled "       \
      "run), a number of input pixels, or 'auto' (exact when that costs under about 25 % more "    \
      "work, else the original program's padding)")                                                \
    X(EDGE, "edge", TSR_PARAM_ENUM, "auto", 0, -1, "auto|replicate|reflect", 0,                    \
      "padding outside the image: replicate the edge pixel (waifu2x) or reflect without "          \
      "repeating it (Real-CUGAN, Real-ESRGAN); auto follows the model's original program")         \
    X(RESIDUAL, "residual", TSR_PARAM_ENUM, "auto", 0, -1, "auto|nearest|none", 0,                 \
      "add the nearest enlargement of the input to the network's output; auto does so for "        \
      "networks that end in a pixel shuffle with no skip (Real-CUGAN x4)")
TSR_PARAM_ENUM_DECL(UPSCALE_PARAMS)
TSR_PARAM_TABLE_DECL(upscale, UPSCALE_PARAMS)

static const tsr_port_def inputs[] = {{"image", TSR_PORT_IMAGE, "image to enlarge"},
                                      {"model", TSR_PORT_MODEL, "network from model.load"}};
static const tsr_port_def outputs[] = {{"image", TSR_PORT_IMAGE, "enlarged image"}};

#define MAX_OVERLAP 4096

/* The overlap param: -1 exact, -2 auto, else pixels; -3 when malformed. */
static int overlap_of(const tsr_node *n)
{
    const char *s = n->params[P_OVERLAP].str;
    if (!s || !strcmp(s, "auto"))
        return TSR_NET_OVERLAP_AUTO;
    if (!strcmp(s, "exact"))
        return TSR_NET_OVERLAP_EXACT;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0 || v > MAX_OVERLAP)
        return -3;
    return (int)v;
}

static tsr__netopt options(const tsr_node *n, const tsr__model *m)
{
    int edge = n->params[P_EDGE].ival, res = n->params[P_RESIDUAL].ival;
    return (tsr__netopt){overlap_of(n), edge == 0 ? m->edge : edge - 1,
                         res == 0 ? m->residual : res == 1};
}

static tsr_status upscale_check(const tsr_node *n, tsr__err *err)
{
    if (overlap_of(n) == -3)
        return tsr__node_error(err, n, P_OVERLAP,
                               "overlap '%s' is not 'auto', 'exact' or a number of pixels from 0 "
                               "to %d",
                               n->params[P_OVERLAP].str, MAX_OVERLAP);
    return TSR_OK;
}

static tsr_status upscale_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                                tsr__err *err)
{
    const tsr__model *m = in[1].model;
    if (!m)
        return tsr__node_error(err, n, -1, "input 'model' carries no model");
    if (m->nn->in_channels != 3 || m->nn->out_channels < 3)
        return tsr__node_error(err, n, -1,
                               "model %s takes %d channels and gives %d: upscale runs RGB "
                               "networks (3 in, 3 out)",
                               m->key, m->nn->in_channels, m->nn->out_channels);
    tsr__netopt o = options(n, m);
    int exact;
    if (tsr__net_context(m, o.overlap, &exact) == INT_MAX)
        return tsr__node_error(err, n, P_OVERLAP,
                               "overlap 'exact' is impossible for model %s: its global pooling "
                               "(squeeze-excitation) makes every output pixel depend on the "
                               "whole tile; use 'auto' or a number of pixels",
                               m->key);
    double w = (double)in[0].width * m->scale, h = (double)in[0].height * m->scale;
    if (w > INT32_MAX / 8 || h > INT32_MAX / 8 || !tsr__image_bytes((int)w, (int)h, 4))
        return tsr__node_error(err, n, -1, "output of %.0fx%.0f pixels is too large", w, h);
    /* Gray becomes RGB, gray+alpha RGBA. */
    *out = (tsr_port_info){.width = (int)w,
                           .height = (int)h,
                           .channels = tsr__has_alpha(in[0].channels) ? 4 : 3,
                           .bit_depth = 8};
    return TSR_OK;
}

static void upscale_plan(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out,
                         tsr_plan *p)
{
    const tsr__model *m = in[1].model;
    tsr__netopt o = options(n, m);
    tsr__netplan np;
    tsr__err err;
    tsr__err_clear(&err);
    p->resident_bytes = tsr__model_resident_bytes(m);
    if (tsr__netplan_make(m, &o, in[0].width, in[0].height, *out, &np, &err) != TSR_OK) {
        /* A rectangle the network cannot take: the planner rejects the tile. */
        p->in[0] = *out;
        p->n_bufs = 1;
        p->bufs[0] = (tsr_buf_req){SIZE_MAX, TSR_BUF_TILE};
        return;
    }
    p->in[0] = np.geo.src;
    for (int k = 0; k < np.n_slots; k++)
        p->bufs[k] = (tsr_buf_req){np.slot_bytes[k], TSR_BUF_TILE};
    p->bufs[np.n_slots] = (tsr_buf_req){np.scratch, TSR_BUF_TILE};
    p->n_bufs = np.n_slots + 1;
    tsr__netplan_free(&np);
}

/* Weights to the device once; for a model with global pooling run in several tiles, the
 * whole-image statistics first (syncgap), so that every tile uses the vectors the untiled run
 * would. */
static tsr_status upscale_prepare(tsr_exec *ex, const tsr_node *n, void **state)
{
    tsr__model *m = ex->in_info[1].model;
    __atomic_add_fetch(&m->uses, 1, __ATOMIC_RELAXED);
    tsr_status rc = tsr__model_upload(ex, m);
    if (rc || !m->global)
        return rc;
    const tsr_image *img = ex->in_images[0];
    int W = ex->in_info[0].width * m->scale, H = ex->in_info[0].height * m->scale;
    if (!img || (ex->tile_w >= W && ex->tile_h >= H))
        return TSR_OK;
    tsr__netsync *sync = calloc(1, sizeof *sync);
    if (!sync)
        return tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of memory");
    tsr__netopt o = options(n, m);
    if ((rc = tsr__net_sync(ex, m, &o, img, ex->tile_w, ex->tile_h, sync))) {
        free(sync);
        return rc;
    }
    *state = sync;
    return TSR_OK;
}

static void upscale_release(tsr_exec *ex, const tsr_node *n, void *state)
{
    if (state)
        tsr__netsync_free(state);
    free(state);
}

/* The network plan of the rectangle, as plan() made it (the executor's region may be larger
 * than plan() asked, by clamping). */
static tsr_status tile_plan(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                            const tsr_region *out, tsr__netopt *o, tsr__netplan *np)
{
    const tsr__model *m = ex->in_info[1].model;
    *o = options(n, m);
    tsr_status rc = tsr__netplan_make(m, o, in[0].img_w, in[0].img_h, out->rect, np, ex->err);
    return rc ? tsr__node_error(ex->err, n, -1, "%s", ex->err->msg) : TSR_OK;
}

static tsr_status upscale_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                 const tsr_region *out)
{
    tsr__netopt o;
    tsr__netplan np;
    tsr_status rc = tile_plan(ex, n, in, out, &o, &np);
    for (int k = 0; k < np.n_slots && !rc; k++)
        if (!ex->bufs[k])
            rc = tsr__seterr(ex->err, TSR_ERR_INTERNAL, "node '%s': blob slot %d is missing", n->id,
                             k);
    if (!rc)
        rc = tsr__net_run_cl(ex, ex->in_info[1].model, &o, &np, ex->state, NULL, ex->bufs,
                             np.scratch ? ex->bufs[np.n_slots] : NULL, &in[0], out);
    tsr__netplan_free(&np);
    return rc;
}

static tsr_status upscale_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                  const tsr_region *out)
{
    tsr__netopt o;
    tsr__netplan np;
    tsr_status rc = tile_plan(ex, n, in, out, &o, &np);
    if (!rc)
        rc = tsr__net_run_ref(ex->in_info[1].model, &o, &np, ex->state, NULL, &in[0], out, ex->err);
    tsr__netplan_free(&np);
    return rc;
}

const tsr_node_class tsr_node_upscale = {
    .name = "upscale",
    .doc = "Enlarge an image with a super-resolution network (ncnn model from model.load)",
    .inputs = inputs,
    .n_inputs = 2,
    .outputs = outputs,
    .n_outputs = 1,
    .params = upscale_params,
    .n_params = P_COUNT_,
    .kernel = "upscale",
    .flags = TSR_NODE_HOST_INPUTS,
    .check = upscale_check,
    .infer = upscale_infer,
    .plan = upscale_plan,
    .prepare = upscale_prepare,
    .release = upscale_release,
    .run_cl = upscale_run_cl,
    .run_ref = upscale_run_ref,
};
