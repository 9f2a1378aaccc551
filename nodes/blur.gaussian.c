/* blur.gaussian: separable Gaussian blur of every channel, with a chosen edge policy.
 * Pixels: float32 planar, 1-4 channels, all blurred alike (straight alpha, see below).
 * Device: kernels/blur.gaussian.cl (tsr_blur_gaussian_h, then tsr_blur_gaussian_v). */

/* Alpha is blurred as straight alpha, like OpenCV and Pillow do, so the colour of transparent
 * pixels bleeds into their neighbours; blurring premultiplied colour is a later improvement.
 * The horizontal pass writes the image rows the vertical pass can reach into a scratch buffer
 * (at most out_h + 2r rows, fewer at the image edges); both passes index in full-image
 * coordinates so that any tiling gives the same bits as the whole image. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "nodeutil.h"

/* sigma is capped at 100 (801 taps): past that a direct convolution costs more than it is worth
 * and a box cascade or FFT path should take over. The floor keeps 1/sigma^2 finite; at 0.01
 * the outer taps underflow to 0 and the node is the identity. */
#define BLUR_PARAMS(X)                                                                             \
    X(SIGMA, "sigma", TSR_PARAM_NUMBER, "1", 0.01, 100.0, NULL, 0,                                 \
      "standard deviation in pixels (0.01..100); the kernel radius is ceil(4*sigma)")              \
    X(EDGE, "edge", TSR_PARAM_ENUM, "clamp", 0, -1, "clamp|mirror|zero", 0,                        \
      "outside the image: clamp repeats the edge pixel, mirror reflects without repeating it "     \
      "(reflecting again as often as a small image needs), zero reads 0")
TSR_PARAM_ENUM_DECL(BLUR_PARAMS)
TSR_PARAM_TABLE_DECL(blur, BLUR_PARAMS)

/* Edge policies; the kernel file uses the same numbers. */
enum { EDGE_CLAMP = 0, EDGE_MIRROR = 1, EDGE_ZERO = 2 };

#define BLUR_MAX_RADIUS 400 /* ceil(4 * 100) */
#define BLUR_COLS 8         /* output columns per work item: TSR_BLUR_COLS in the kernel file */

static const tsr_port_def ports[] = {{"image", TSR_PORT_IMAGE, "image"}};

/* 4 sigma holds all but 6e-5 of the Gaussian's mass (both tails together), a quarter of an
 * 8-bit step on the worst step edge; OpenCV's float path also sizes its kernel at ~4 sigma. */
static int blur_radius(double sigma)
{
    int r = (int)ceil(4.0 * sigma);
    return r < 1 ? 1 : (r > BLUR_MAX_RADIUS ? BLUR_MAX_RADIUS : r);
}

/* Taps for offsets -r..r, normalised to sum 1. Computed in double on the host and rounded once,
 * so the reference and every device use the very same float weights. Returns r. */
static int blur_weights(double sigma, float *w)
{
    int r = blur_radius(sigma);
    double t[2 * BLUR_MAX_RADIUS + 1], sum = 0.0, k = -0.5 / (sigma * sigma);
    for (int i = -r; i <= r; i++) {
        t[i + r] = exp(k * i * i);
        sum += t[i + r];
    }
    for (int i = 0; i <= 2 * r; i++)
        w[i] = (float)(t[i] / sum);
    return r;
}

/* Reflect-101 folded as often as needed (period 2(n-1)), so it is defined for any radius. */
static int mirror_index(int v, int n)
{
    if (n == 1)
        return 0;
    int p = 2 * (n - 1);
    v %= p;
    if (v < 0)
        v += p;
    return v >= n ? p - v : v;
}

/* Map a full-image coordinate to one inside 0..n-1, or -1 where the zero policy reads 0. */
static int edge_index(int v, int n, int edge)
{
    if (v >= 0 && v < n)
        return v;
    if (edge == EDGE_ZERO)
        return -1;
    if (edge == EDGE_MIRROR)
        return mirror_index(v, n);
    return v < 0 ? 0 : n - 1;
}

/* Rows [*y0, *y0 + rows) of the image that the vertical pass can reach for output rows
 * out->y .. out->y + out->h - 1: every edge policy maps outside rows onto these. */
static int blur_rows(const tsr_rect *out, int r, int img_h, int *y0)
{
    int lo = out->y - r < 0 ? 0 : out->y - r;
    int hi = out->y + out->h + r > img_h ? img_h : out->y + out->h + r;
    *y0 = lo;
    return hi - lo;
}

static size_t mul3_sat(size_t a, size_t b, size_t c)
{
    size_t ab, abc;
    if (!tsr__mul_size(a, b, &ab) || !tsr__mul_size(ab, c, &abc))
        return SIZE_MAX;
    return abc;
}

static void blur_plan(const tsr_node *n, const tsr_image_info *in, const tsr_rect *out, tsr_plan *p)
{
    int r = blur_radius(n->params[P_SIGMA].num), y0;
    int rows = blur_rows(out, r, in[0].height, &y0);
    p->in[0] = (tsr_rect){out->x - r, out->y - r, out->w + 2 * r, out->h + 2 * r};
    p->fixed_bytes = (size_t)(2 * r + 1) * sizeof(float);
    /* SIZE_MAX on overflow makes the planner reject the tile rather than under-count it. */
    p->tile_bytes = mul3_sat((size_t)out->w, (size_t)(rows > 0 ? rows : 0),
                             (size_t)in[0].channels * sizeof(float));
}

static tsr_status blur_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                              const tsr_region *out)
{
    float w[2 * BLUR_MAX_RADIUS + 1];
    cl_int r = blur_weights(n->params[P_SIGMA].num, w), edge = n->params[P_EDGE].ival, y0;
    cl_int rows = blur_rows(&out->rect, r, in[0].img_h, &y0);
    cl_mem wbuf = NULL, scratch = NULL;
    cl_kernel k;
    tsr__geom g = tsr__geom_of(&in[0], out);
    size_t wbytes = (size_t)(2 * r + 1) * sizeof(float);
    size_t cols = ((size_t)out->rect.w + BLUR_COLS - 1) / BLUR_COLS;
    size_t sbytes =
        mul3_sat((size_t)out->rect.w, (size_t)rows, (size_t)out->channels * sizeof(float));
    tsr_status rc = TSR_OK;
    if (sbytes == SIZE_MAX) {
        rc = tsr__seterr(ex->err, TSR_ERR_LIMIT,
                         "node '%s' (blur.gaussian): scratch for a %dx%d tile overflows size_t",
                         ex->node ? ex->node->id : "?", out->rect.w, rows);
        goto fail;
    }
    if ((rc = tsr__exec_alloc(ex, wbytes, &wbuf)) || (rc = tsr__exec_alloc(ex, sbytes, &scratch)))
        goto fail;
    /* Blocking: w lives on this stack frame. The weights are a few KiB once per tile. */
    cl_int st = clEnqueueWriteBuffer(ex->cl->queue, wbuf, CL_TRUE, 0, wbytes, w, 0, NULL, NULL);
    if (st != CL_SUCCESS) {
        rc = tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (weights)");
        goto fail;
    }
    if ((rc = tsr__exec_kernel(ex, "tsr_blur_gaussian_h", &k)))
        goto fail;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(in[0].mem), TSR_ARG(scratch), TSR_ARG(g), TSR_ARG(wbuf),
                        TSR_ARG(r), TSR_ARG(edge), TSR_ARG(y0), TSR_ARG(rows));
    if (!rc)
        rc = tsr__exec_launch(ex, k, cols, (size_t)rows, (size_t)out->channels);
    if (rc || (rc = tsr__exec_kernel(ex, "tsr_blur_gaussian_v", &k)))
        goto fail;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(scratch), TSR_ARG(out->mem), TSR_ARG(g), TSR_ARG(wbuf),
                        TSR_ARG(r), TSR_ARG(edge), TSR_ARG(y0), TSR_ARG(rows));
    if (!rc)
        rc = tsr__exec_launch(ex, k, cols, (size_t)out->rect.h, (size_t)out->channels);
fail:
    /* The queue is in order, so a block handed back here is reused only after these kernels. */
    if (scratch)
        tsr__exec_release(ex, scratch);
    if (wbuf)
        tsr__exec_release(ex, wbuf);
    return rc;
}

static tsr_status blur_run_ref(const tsr_node *n, const tsr_region *in, const tsr_region *out,
                               tsr__err *err)
{
    float w[2 * BLUR_MAX_RADIUS + 1];
    int r = blur_weights(n->params[P_SIGMA].num, w), edge = n->params[P_EDGE].ival, y0;
    int rows = blur_rows(&out->rect, r, in[0].img_h, &y0);
    int ow = out->rect.w, iw = in[0].rect.w;
    size_t bytes = mul3_sat((size_t)ow, (size_t)rows, (size_t)out->channels * sizeof(float));
    float *s = bytes == SIZE_MAX ? NULL : malloc(bytes);
    if (!s)
        return tsr__seterr(err, TSR_ERR_NOMEM,
                           "blur.gaussian: no host memory for a %dx%d scratch buffer", ow, rows);
    /* Same float operations in the same order as the kernels: tiles and devices agree. */
    for (int c = 0; c < out->channels; c++) {
        const float *src = tsr__plane(&in[0], c);
        for (int j = 0; j < rows; j++) {
            const float *row = src + (size_t)(y0 + j - in[0].rect.y) * iw;
            for (int x = 0; x < ow; x++) {
                int ix = out->rect.x + x;
                float acc = 0.0f;
                if (ix - r >= 0 && ix + r < in[0].img_w) { /* no edge to map: the fast case */
                    const float *t = row + (ix - r - in[0].rect.x);
                    for (int i = 0; i <= 2 * r; i++)
                        acc += w[i] * t[i];
                } else {
                    for (int i = -r; i <= r; i++) {
                        int sx = edge_index(ix + i, in[0].img_w, edge);
                        float v = sx < 0 ? 0.0f : row[sx - in[0].rect.x];
                        acc += w[i + r] * v;
                    }
                }
                s[((size_t)c * rows + j) * ow + x] = acc;
            }
        }
        float *dst = tsr__plane(out, c);
        for (int y = 0; y < out->rect.h; y++)
            for (int x = 0; x < ow; x++) {
                float acc = 0.0f;
                for (int i = -r; i <= r; i++) {
                    int sy = edge_index(out->rect.y + y + i, in[0].img_h, edge);
                    float v = sy < 0 ? 0.0f : s[((size_t)c * rows + (sy - y0)) * ow + x];
                    acc += w[i + r] * v;
                }
                dst[(size_t)y * ow + x] = acc;
            }
    }
    free(s);
    return TSR_OK;
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
    .run_cl = blur_run_cl,
    .run_ref = blur_run_ref,
};
