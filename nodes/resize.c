/* resize: scale an image by a factor or to a size (nearest/bilinear/bicubic/mitchell/lanczos3).
 * Pixels: float32 planar, 1-4 channels, each channel (alpha too) resampled independently.
 * Device: kernels/resize.cl (tsr_resize_h then tsr_resize_v; tsr_resize_nearest).
 *
 * Semantics (docs/NODES-resize.md has the long version):
 * - Pixel centres aligned: on an axis of n_in -> n_out pixels, output pixel o samples the input
 *   at (o + 0.5) * n_in / n_out - 0.5 (Pillow, OpenCV, MATLAB imresize). The scale of each axis
 *   is the ratio of the integer sizes, not the `scale` parameter.
 * - Separable: a horizontal pass into a scratch buffer, then a vertical pass.
 * - Tap i of output pixel o sits at t = ((2i+1) n_out - (2o+1) n_in) / (2 max(n_in, n_out)),
 *   i.e. the distance in input pixels, multiplied by n_out / n_in when reducing: reductions
 *   widen the filter by n_in / n_out and so antialias (Pillow's and libvips's scheme). Taps are
 *   the pixels with |t| < support, found with integer arithmetic; t itself is one float
 *   division, exact numerator and denominator.
 * - Edges: taps outside the image are dropped and the remaining weights renormalised to sum 1,
 *   as Pillow does (its precompute_coeffs clips the tap range to the image and divides by the
 *   sum of the kept weights).
 * - Filters: bilinear = triangle (support 1), bicubic = Keys a = -0.5 / Catmull-Rom (2),
 *   mitchell = Mitchell-Netravali B = C = 1/3 (2), lanczos3 = sinc(t) sinc(t/3) for |t| < 3.
 * - nearest: input pixel floor((o + 0.5) * n_in / n_out), in exact integer arithmetic: the one
 *   whose centre is nearest, ties (a sample exactly between two centres) to the higher index.
 *   That is Pillow's NEAREST formula; Pillow accumulates the position in double, so at exact
 *   ties it sometimes lands on the lower pixel instead.
 * - Weights are computed from absolute image coordinates, in float32, tabulated once per axis
 *   of the output rectangle by rs_taps_make(). The device path uploads the very same tables,
 *   and both paths sum the taps in the same order and divide by the same sum at the end, so
 *   tiles are seamless and CL matches the reference bit for bit wherever OpenCL divides
 *   correctly rounded (PoCL; GPUs may round the final division by up to 2.5 ulp).
 * - Alpha is resampled like any channel (straight alpha); premultiplied resampling, which keeps
 *   colour from bleeding out of transparent pixels, is a later improvement. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nodeutil.h"

#define RESIZE_PARAMS(X)                                                                           \
    X(SCALE, "scale", TSR_PARAM_NUMBER, NULL, 0.001, 64.0, NULL, TSR_PARAM_OPTIONAL,               \
      "Scale factor for both axes: each side becomes round(side * scale), at least 1. "            \
      "Not with width/height")                                                                     \
    X(WIDTH, "width", TSR_PARAM_INT, NULL, 1.0, 1048576.0, NULL, TSR_PARAM_OPTIONAL,               \
      "Output width in pixels; given alone, the height keeps the aspect ratio")                    \
    X(HEIGHT, "height", TSR_PARAM_INT, NULL, 1.0, 1048576.0, NULL, TSR_PARAM_OPTIONAL,             \
      "Output height in pixels; given alone, the width keeps the aspect ratio")                    \
    X(FILTER, "filter", TSR_PARAM_ENUM, "lanczos3", 0.0, 0.0,                                      \
      "nearest|bilinear|bicubic|mitchell|lanczos3", 0,                                             \
      "Resampling filter; widened when reducing, so reductions are antialiased")

TSR_PARAM_ENUM_DECL(RESIZE_PARAMS)
TSR_PARAM_TABLE_DECL(resize, RESIZE_PARAMS)

/* Indices in the `filter` choices; the kernel's RS_* constants use the same numbers. */
enum { RS_NEAREST, RS_BILINEAR, RS_BICUBIC, RS_MITCHELL, RS_LANCZOS3 };
/* Rows per work item of the horizontal pass, and the padding of its transposed input's columns:
 * RS_ROWS_H in kernels/resize.cl; rows per item of its gathering variant, RS_PER_ITEM. */
#define RS_ROWS_H 16
#define RS_PER_ITEM 8

/* The horizontal pass reads a transposed copy of the input (tsr_resize_t, then tsr_resize_h:
 * contiguous loads, one transposing pass) when the output is at least as wide as the input, and
 * gathers rows from the input as it is (tsr_resize_h_gather) when shrinking, where the transpose
 * would cost more than the gathers it saves (x0.25: 0.024 + 0.024 s against 0.035 s). */
static int rs_transposed(int in_w, int out_w)
{
    return out_w >= in_w;
}
/* Output columns per work item of the vertical pass: RS_COLS_V in kernels/resize.cl. */
#define RS_COLS_V 32

/* Output sides are capped at 2^20: the tap arithmetic (2o+1) * n_in then stays far inside int64,
 * and t's numerator, below 2 * 3 * max(n_in, n_out), is exact in float32 whenever the input side
 * is within 2^20 as well (a longer input only costs t one more rounding). The pixel cap is four
 * times the loaders' default limit, enough to double any loadable image. */
#define RESIZE_MAX_SIDE 1048576
#define RESIZE_MAX_PIXELS (4ull * TSR_DEFAULT_MAX_PIXELS)

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

/* ---- tap arithmetic ------------------------------------------------------------------------ */

static int rs_support(int filter)
{
    return filter == RS_BILINEAR ? 1 : (filter == RS_LANCZOS3 ? 3 : 2);
}

static float rs_weight(int filter, float t)
{
    t = fabsf(t);
    if (filter == RS_BILINEAR)
        return t < 1.0f ? 1.0f - t : 0.0f;
    if (filter == RS_BICUBIC) {
        if (t < 1.0f)
            return (1.5f * t - 2.5f) * t * t + 1.0f;
        if (t < 2.0f)
            return (((t - 5.0f) * t + 8.0f) * t - 4.0f) * -0.5f;
        return 0.0f;
    }
    if (filter == RS_MITCHELL) {
        if (t < 1.0f)
            return ((7.0f * t - 12.0f) * t * t + 16.0f / 3.0f) / 6.0f;
        if (t < 2.0f)
            return (((-7.0f / 3.0f * t + 12.0f) * t - 20.0f) * t + 32.0f / 3.0f) / 6.0f;
        return 0.0f;
    }
    if (t >= 3.0f)
        return 0.0f;
    if (t == 0.0f)
        return 1.0f;
    float a = 3.14159265358979323846f * t;
    return 3.0f * sinf(a) * sinf(a / 3.0f) / (a * a);
}

static int64_t rs_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static void rs_window(int filter, int o, int n_in, int n_out, int *lo, int *hi)
{
    int64_t m = n_in > n_out ? n_in : n_out;
    int64_t span = 2 * (int64_t)rs_support(filter) * m;
    int64_t centre = (2 * (int64_t)o + 1) * n_in;
    int64_t a = rs_floor_div(centre - span - n_out, 2 * (int64_t)n_out) + 1;
    int64_t b = rs_floor_div(centre + span - n_out - 1, 2 * (int64_t)n_out);
    *lo = (int)(a < 0 ? 0 : a);
    *hi = (int)(b > n_in - 1 ? n_in - 1 : b);
}

static int rs_nearest(int o, int n_in, int n_out)
{
    return (int)(((2 * (int64_t)o + 1) * n_in) / (2 * (int64_t)n_out));
}

/* Input pixels [*lo, *hi] read by output pixels [o0, o0 + count) of one axis. Windows move
 * monotonically with o, so the ends of the range give the union. */
static void rs_span(int filter, int o0, int count, int n_in, int n_out, int *lo, int *hi)
{
    int unused;
    if (filter == RS_NEAREST) {
        *lo = rs_nearest(o0, n_in, n_out);
        *hi = rs_nearest(o0 + count - 1, n_in, n_out);
        return;
    }
    rs_window(filter, o0, n_in, n_out, lo, &unused);
    rs_window(filter, o0 + count - 1, n_in, n_out, &unused, hi);
}

/* ---- tap tables, shared by both paths ----------------------------------------------------- */

/* Most taps an output pixel of an n_in -> n_out axis can have: the taps are the integers i with
 * |i - c| < support * max(n_in, n_out) / n_out for some centre c, an open interval that holds at
 * most ceil(2 * support * max(n_in, n_out) / n_out) integers. Tables use it as their row length
 * because plan() must size the device table without a pass over the tile. */
static int rs_taps_max(int filter, int n_in, int n_out)
{
    int64_t m = n_in > n_out ? n_in : n_out;
    int64_t k = (2 * (int64_t)rs_support(filter) * m + n_out - 1) / n_out;
    return (int)(k < n_in ? k : n_in);
}

/* Bytes of the table of `count` output pixels with rows of k weights; 0 on overflow. */
static size_t rs_taps_bytes(int count, int k)
{
    size_t cells, bytes;
    if (!tsr__mul_size((size_t)count, (size_t)k + 3, &cells) ||
        !tsr__mul_size(cells, sizeof(int32_t), &bytes))
        return 0;
    return bytes;
}

/* Both axes' tables for output rectangle r, as run_cl uploads them; 0 on overflow. */
/* resize's planned buffers (all per tile). */
enum { RS_BUF_SCRATCH = 0, RS_BUF_XTAB = 1, RS_BUF_YTAB = 2, RS_BUF_TIN = 3 };

/* Taps of output pixels [o0, o0 + count) on one axis, in one block laid out as kernels/resize.cl
 * reads it: lo[count] (first input pixel, absolute), n[count] (taps), wsum[count] (the weights
 * summed in tap order, in float), then count rows of k weights (unused cells 0). Output pixel j
 * is acc / wsum[j] with acc summing w[j * k + i] * input[lo[j] + i] for i = 0 .. n[j] - 1 in
 * that order, on both paths. The weights depend on absolute coordinates only, so every tiling
 * computes the same numbers. */
typedef struct rs_taps {
    int count, k;
    void *block;
    int32_t *lo, *n;
    float *wsum, *w;
    size_t bytes;
} rs_taps;

static void rs_taps_free(rs_taps *t)
{
    free(t->block);
    memset(t, 0, sizeof *t);
}

static tsr_status rs_taps_make(const tsr_node *n, int filter, int o0, int count, int n_in,
                               int n_out, rs_taps *t, tsr__err *err)
{
    memset(t, 0, sizeof *t);
    t->count = count;
    t->k = rs_taps_max(filter, n_in, n_out);
    t->bytes = rs_taps_bytes(count, t->k);
    if (!t->bytes)
        return tsr__seterr(err, TSR_ERR_LIMIT, "node '%s' (resize): %d x %d weight table overflows",
                           n->id, count, t->k);
    t->block = calloc(1, t->bytes);
    if (!t->block)
        return tsr__seterr(err, TSR_ERR_NOMEM,
                           "node '%s' (resize): out of memory for a %zu-byte weight table", n->id,
                           t->bytes);
    t->lo = t->block;
    t->n = t->lo + count;
    t->wsum = (float *)(t->n + count);
    t->w = t->wsum + count;
    int64_t m = n_in > n_out ? n_in : n_out;
    float den = (float)(2 * m);
    for (int j = 0; j < count; j++) {
        int lo, hi;
        rs_window(filter, o0 + j, n_in, n_out, &lo, &hi);
        if (hi - lo + 1 > t->k) { /* rs_taps_max is wrong: better an error than an overrun */
            rs_taps_free(t);
            return tsr__seterr(err, TSR_ERR_INTERNAL,
                               "node '%s' (resize): pixel %d has %d taps, more than %d", n->id,
                               o0 + j, hi - lo + 1, rs_taps_max(filter, n_in, n_out));
        }
        int64_t num = (2 * (int64_t)lo + 1) * n_out - (2 * (int64_t)(o0 + j) + 1) * n_in;
        float wsum = 0.0f, *w = t->w + (size_t)j * t->k;
        for (int i = lo; i <= hi; i++, num += 2 * (int64_t)n_out) {
            w[i - lo] = rs_weight(filter, (float)num / den);
            wsum += w[i - lo];
        }
        t->lo[j] = lo;
        t->n[j] = hi - lo + 1;
        t->wsum[j] = wsum;
    }
    return TSR_OK;
}

/* ---- schema, shape ------------------------------------------------------------------------- */

/* Requested output size before the limits (doubles: scale * side can exceed int). */
static void out_size(const tsr_node *n, int in_w, int in_h, double *ow, double *oh)
{
    const tsr_value *p = n->params;
    if (p[P_SCALE].set) {
        *ow = floor(in_w * p[P_SCALE].num + 0.5);
        *oh = floor(in_h * p[P_SCALE].num + 0.5);
    } else if (p[P_WIDTH].set && p[P_HEIGHT].set) {
        *ow = p[P_WIDTH].num;
        *oh = p[P_HEIGHT].num;
    } else if (p[P_WIDTH].set) {
        *ow = p[P_WIDTH].num;
        *oh = floor((double)in_h * p[P_WIDTH].num / in_w + 0.5);
    } else {
        *oh = p[P_HEIGHT].num;
        *ow = floor((double)in_w * p[P_HEIGHT].num / in_h + 0.5);
    }
    *ow = *ow < 1.0 ? 1.0 : *ow;
    *oh = *oh < 1.0 ? 1.0 : *oh;
}

/* For plan and run: infer has already accepted this size. */
static void out_size_int(const tsr_node *n, int in_w, int in_h, int *ow, int *oh)
{
    double w, h;
    out_size(n, in_w, in_h, &w, &h);
    *ow = (int)w;
    *oh = (int)h;
}

static tsr_status resize_check(const tsr_node *n, tsr__err *err)
{
    const tsr_value *p = n->params;
    if (p[P_SCALE].set && (p[P_WIDTH].set || p[P_HEIGHT].set))
        return tsr__node_error(err, n, p[P_WIDTH].set ? P_WIDTH : P_HEIGHT,
                               "resize takes either 'scale' or 'width'/'height', not both");
    if (!p[P_SCALE].set && !p[P_WIDTH].set && !p[P_HEIGHT].set)
        return tsr__node_error(err, n, -1, "resize needs 'scale', 'width' or 'height'");
    return TSR_OK;
}

static tsr_status resize_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                               tsr__err *err)
{
    /* Also here because tsr__run_node infers without validating the graph first. */
    tsr_status rc = resize_check(n, err);
    if (rc)
        return rc;
    if (in[0].channels < 1 || in[0].channels > 4 || in[0].width < 1 || in[0].height < 1) {
        tsr__node_error(err, n, -1, "cannot resize a %dx%d image with %d channels", in[0].width,
                        in[0].height, in[0].channels);
        return TSR_ERR_UNSUPPORTED;
    }
    double ow, oh;
    out_size(n, in[0].width, in[0].height, &ow, &oh);
    int blame = n->params[P_SCALE].set ? P_SCALE : (n->params[P_WIDTH].set ? P_WIDTH : P_HEIGHT);
    /* The message carries the position; the status says which kind of failure it is. */
    if (ow > RESIZE_MAX_SIDE || oh > RESIZE_MAX_SIDE) {
        tsr__node_error(err, n, blame, "output of %.0fx%.0f pixels: each side is limited to %d", ow,
                        oh, RESIZE_MAX_SIDE);
        return TSR_ERR_LIMIT;
    }
    if (ow * oh > (double)RESIZE_MAX_PIXELS ||
        !tsr__image_bytes((int)ow, (int)oh, in[0].channels)) {
        tsr__node_error(err, n, blame,
                        "output of %.0fx%.0f pixels exceeds the limit of %llu "
                        "pixels",
                        ow, oh, (unsigned long long)RESIZE_MAX_PIXELS);
        return TSR_ERR_LIMIT;
    }
    out[0] = in[0];
    out[0].width = (int)ow;
    out[0].height = (int)oh;
    return TSR_OK;
}

static void resize_plan(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out,
                        tsr_plan *p)
{
    int ow, oh, x0, x1, y0, y1, filter = n->params[P_FILTER].ival;
    out_size_int(n, in[0].width, in[0].height, &ow, &oh);
    rs_span(filter, out->x, out->w, in[0].width, ow, &x0, &x1);
    rs_span(filter, out->y, out->h, in[0].height, oh, &y0, &y1);
    p->in[0] = (tsr_rect){x0, y0, x1 - x0 + 1, y1 - y0 + 1};
    p->n_bufs = 0;
    if (filter != RS_NEAREST) {
        /* The horizontal pass's output (the tile's columns over every input row it reads), then
         * the two axes' tap tables (about 40 bytes per output column and row when enlarging). */
        size_t bytes = tsr__image_bytes(out->w, y1 - y0 + 1, in[0].channels);
        size_t bx = rs_taps_bytes(out->w, rs_taps_max(filter, in[0].width, ow));
        size_t by = rs_taps_bytes(out->h, rs_taps_max(filter, in[0].height, oh));
        p->n_bufs = 3;
        p->bufs[RS_BUF_SCRATCH] = (tsr_buf_req){bytes ? bytes : SIZE_MAX, TSR_BUF_TILE};
        p->bufs[RS_BUF_XTAB] = (tsr_buf_req){bx ? bx : SIZE_MAX, TSR_BUF_TILE};
        p->bufs[RS_BUF_YTAB] = (tsr_buf_req){by ? by : SIZE_MAX, TSR_BUF_TILE};
        if (rs_transposed(in[0].width, ow)) {
            /* And the horizontal pass's input transposed (tsr_resize_t), its columns padded. */
            int rows_t = (y1 - y0 + 1 + RS_ROWS_H - 1) / RS_ROWS_H * RS_ROWS_H;
            size_t bt = tsr__image_bytes(x1 - x0 + 1, rows_t, in[0].channels);
            p->n_bufs = 4;
            p->bufs[RS_BUF_TIN] = (tsr_buf_req){bt ? bt : SIZE_MAX, TSR_BUF_TILE};
        }
    }
}

/* ---- device -------------------------------------------------------------------------------- */

static tsr_status resize_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                const tsr_region *out)
{
    cl_kernel k;
    rs_taps tx, ty;
    memset(&tx, 0, sizeof tx);
    memset(&ty, 0, sizeof ty);
    int ow, oh, filter = n->params[P_FILTER].ival, ch = out->channels;
    out_size_int(n, in[0].img_w, in[0].img_h, &ow, &oh);
    tsr__geom g = tsr__geom_of(&in[0], out);
    tsr_status rc;
    if (filter == RS_NEAREST) {
        rc = tsr__exec_kernel(ex, "tsr_resize_nearest", &k);
        if (!rc)
            rc = tsr__exec_args(ex, k, 6, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(g),
                                TSR_ARG(ow), TSR_ARG(oh), TSR_ARG(ch));
        if (!rc)
            rc = tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h, 1);
        return rc;
    }
    int row0, row1;
    rs_span(filter, out->rect.y, out->rect.h, in[0].img_h, oh, &row0, &row1);
    int rows = row1 - row0 + 1, rows_t = (rows + RS_ROWS_H - 1) / RS_ROWS_H * RS_ROWS_H;
    cl_mem scratch = ex->bufs[RS_BUF_SCRATCH], xtab = ex->bufs[RS_BUF_XTAB],
           ytab = ex->bufs[RS_BUF_YTAB];
    int transposed = rs_transposed(in[0].img_w, ow);
    cl_mem tin = transposed ? ex->bufs[RS_BUF_TIN] : NULL;
    if (!scratch || !xtab || !ytab || (transposed && !tin))
        return tsr__seterr(ex->err, TSR_ERR_INTERNAL,
                           "node '%s' (resize): the planned scratch and table buffers are missing",
                           n->id);
    /* The reference's own tables, so that both paths weight every tap identically. */
    rc = rs_taps_make(n, filter, out->rect.x, out->rect.w, in[0].img_w, ow, &tx, ex->err);
    if (rc)
        goto fail;
    rc = rs_taps_make(n, filter, out->rect.y, out->rect.h, in[0].img_h, oh, &ty, ex->err);
    if (rc)
        goto fail;
    /* Blocking: the host tables are freed on return. A few KiB to a few MiB once per tile. */
    ex->kernel = "tap tables";
    cl_int st =
        clEnqueueWriteBuffer(ex->queue, xtab, CL_TRUE, 0, tx.bytes, tx.block, 0, NULL, NULL);
    if (st == CL_SUCCESS)
        st = clEnqueueWriteBuffer(ex->queue, ytab, CL_TRUE, 0, ty.bytes, ty.block, 0, NULL, NULL);
    if (st != CL_SUCCESS) {
        rc = tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (tap tables)");
        goto fail;
    }
    if (!transposed) {
        rc = tsr__exec_kernel(ex, "tsr_resize_h_gather", &k);
        if (!rc)
            rc = tsr__exec_args(ex, k, 8, TSR_ARG(in[0].mem), TSR_ARG(scratch), TSR_ARG(g),
                                TSR_ARG(xtab), TSR_ARG(tx.k), TSR_ARG(row0), TSR_ARG(rows),
                                TSR_ARG(ch));
        if (!rc)
            rc = tsr__exec_launch(ex, k, (size_t)out->rect.w,
                                  (size_t)(rows + RS_PER_ITEM - 1) / RS_PER_ITEM, 1);
        if (rc)
            goto fail;
        goto vertical;
    }
    rc = tsr__exec_kernel(ex, "tsr_resize_t", &k);
    if (rc)
        goto fail;
    rc = tsr__exec_args(ex, k, 7, TSR_ARG(in[0].mem), TSR_ARG(tin), TSR_ARG(g), TSR_ARG(row0),
                        TSR_ARG(rows), TSR_ARG(rows_t), TSR_ARG(ch));
    if (rc)
        goto fail;
    rc = tsr__exec_launch(ex, k, (size_t)in[0].rect.w, (size_t)rows_t / RS_ROWS_H, 1);
    if (rc)
        goto fail;
    rc = tsr__exec_kernel(ex, "tsr_resize_h", &k);
    if (rc)
        goto fail;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(tin), TSR_ARG(scratch), TSR_ARG(g), TSR_ARG(xtab),
                        TSR_ARG(tx.k), TSR_ARG(rows), TSR_ARG(rows_t), TSR_ARG(ch));
    if (rc)
        goto fail;
    rc = tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)rows_t / RS_ROWS_H, 1);
    if (rc)
        goto fail;
vertical:
    rc = tsr__exec_kernel(ex, "tsr_resize_v", &k);
    if (rc)
        goto fail;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(scratch), TSR_ARG(out->mem), TSR_ARG(g), TSR_ARG(ytab),
                        TSR_ARG(ty.k), TSR_ARG(row0), TSR_ARG(rows), TSR_ARG(ch));
    if (rc)
        goto fail;
    rc = tsr__exec_launch(ex, k, (size_t)(out->rect.w + RS_COLS_V - 1) / RS_COLS_V,
                          (size_t)out->rect.h, 1);
fail:
    rs_taps_free(&tx);
    rs_taps_free(&ty);
    return rc;
}

static tsr_status resize_run_ref(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                 const tsr_region *out)
{
    tsr__err *err = ex->err;
    const tsr_region *src = &in[0];
    const tsr_rect *o = &out->rect;
    int ow, oh, filter = n->params[P_FILTER].ival, ch = out->channels;
    out_size_int(n, src->img_w, src->img_h, &ow, &oh);
    if (filter == RS_NEAREST) {
        for (int y = 0; y < o->h; y++) {
            int sy = rs_nearest(o->y + y, src->img_h, oh) - src->rect.y;
            for (int x = 0; x < o->w; x++) {
                int sx = rs_nearest(o->x + x, src->img_w, ow) - src->rect.x;
                for (int c = 0; c < ch; c++)
                    tsr__plane(out, c)[(size_t)y * o->w + x] =
                        tsr__plane(src, c)[(size_t)sy * src->rect.w + sx];
            }
        }
        return TSR_OK;
    }
    float *tmp = NULL;
    rs_taps tx, ty;
    memset(&tx, 0, sizeof tx);
    memset(&ty, 0, sizeof ty);
    int row0, row1;
    rs_span(filter, o->y, o->h, src->img_h, oh, &row0, &row1);
    int rows = row1 - row0 + 1;
    size_t bytes = tsr__image_bytes(o->w, rows, ch);
    tsr_status rc = TSR_OK;
    if (!bytes) {
        rc = tsr__seterr(err, TSR_ERR_LIMIT,
                         "node '%s' (resize): scratch of %dx%d pixels "
                         "overflows",
                         n->id, o->w, rows);
        goto fail;
    }
    rc = rs_taps_make(n, filter, o->x, o->w, src->img_w, ow, &tx, err);
    if (rc)
        goto fail;
    rc = rs_taps_make(n, filter, o->y, o->h, src->img_h, oh, &ty, err);
    if (rc)
        goto fail;
    tmp = malloc(bytes);
    if (!tmp) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM,
                         "node '%s' (resize): out of memory for a %zu-byte "
                         "scratch buffer",
                         n->id, bytes);
        goto fail;
    }
    /* Horizontal pass: as tsr_resize_h. */
    for (int r = 0; r < rows; r++)
        for (int x = 0; x < o->w; x++) {
            const float *w = tx.w + (size_t)x * tx.k;
            size_t at = (size_t)(row0 + r - src->rect.y) * src->rect.w + (tx.lo[x] - src->rect.x);
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int i = 0; i < tx.n[x]; i++)
                for (int c = 0; c < ch; c++)
                    acc[c] += w[i] * tsr__plane(src, c)[at + (size_t)i];
            for (int c = 0; c < ch; c++)
                tmp[((size_t)c * rows + r) * o->w + x] =
                    tx.wsum[x] != 0.0f ? acc[c] / tx.wsum[x] : acc[c];
        }
    /* Vertical pass: as tsr_resize_v. */
    size_t plane = (size_t)rows * o->w;
    for (int y = 0; y < o->h; y++) {
        const float *w = ty.w + (size_t)y * ty.k;
        for (int x = 0; x < o->w; x++) {
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int j = 0; j < ty.n[y]; j++) {
                size_t at = (size_t)(ty.lo[y] + j - row0) * o->w + x;
                for (int c = 0; c < ch; c++)
                    acc[c] += w[j] * tmp[c * plane + at];
            }
            for (int c = 0; c < ch; c++)
                tsr__plane(out, c)[(size_t)y * o->w + x] =
                    ty.wsum[y] != 0.0f ? acc[c] / ty.wsum[y] : acc[c];
        }
    }
fail:
    rs_taps_free(&tx);
    rs_taps_free(&ty);
    free(tmp);
    return rc;
}

const tsr_node_class tsr_node_resize = {
    .name = "resize",
    .doc = "Resize by a scale factor or to a width/height (pixel centres aligned, antialiased)",
    .inputs = ports,
    .n_inputs = 1,
    .outputs = ports,
    .n_outputs = 1,
    .params = resize_params,
    .n_params = P_COUNT_,
    .kernel = "resize",
    .check = resize_check,
    .infer = resize_infer,
    .plan = resize_plan,
    .run_cl = resize_run_cl,
    .run_ref = resize_run_ref,
};
