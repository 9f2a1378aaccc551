/* Helpers shared by node implementations (see nodeutil.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "nodeutil.h"

tsr_status tsr__infer_same(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                           tsr__err *err)
{
    out[0] = in[0];
    return TSR_OK;
}

void tsr__plan_pointwise(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out,
                         tsr_plan *p)
{
    for (int i = 0; i < n->cls->n_inputs && i < TSR_MAX_PORTS; i++)
        p->in[i] = *out;
}

/* ---- Gaussian blur ------------------------------------------------------------------------- */

/* Output columns and rows per work item of the device passes: TSR_BLUR_COLS and TSR_BLUR_ROWS
 * in kernels/blur.gaussian.cl. */
#define GAUSS_COLS 16
#define GAUSS_ROWS 4

/* 4 sigma holds all but 6e-5 of the Gaussian's mass (both tails together), a quarter of an
 * 8-bit step on the worst step edge; OpenCV's float path also sizes its kernel at ~4 sigma. */
int tsr__gauss_radius(double sigma)
{
    int r = (int)ceil(4.0 * sigma);
    return r < 1 ? 1 : (r > TSR_GAUSS_MAX_RADIUS ? TSR_GAUSS_MAX_RADIUS : r);
}

/* Computed in double on the host and rounded once, so the reference and every device use the
 * very same float weights. */
int tsr__gauss_weights(double sigma, float *w)
{
    int r = tsr__gauss_radius(sigma);
    double t[2 * TSR_GAUSS_MAX_RADIUS + 1], sum = 0.0, k = -0.5 / (sigma * sigma);
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
    if (edge == TSR_EDGE_ZERO)
        return -1;
    if (edge == TSR_EDGE_MIRROR)
        return mirror_index(v, n);
    return v < 0 ? 0 : n - 1;
}

/* Rows [*y0, *y0 + rows) of the image that the vertical pass can reach for output rows
 * out->y .. out->y + out->h - 1: every edge policy maps outside rows onto these. */
static int gauss_rows(const tsr_rect *out, int r, int img_h, int *y0)
{
    int lo = out->y - r < 0 ? 0 : out->y - r;
    int hi = out->y + out->h + r > img_h ? img_h : out->y + out->h + r;
    *y0 = lo;
    return hi - lo;
}

/* SIZE_MAX on overflow: the planner then rejects the tile rather than under-count it. */
static size_t mul3_sat(size_t a, size_t b, size_t c)
{
    size_t ab, abc;
    if (!tsr__mul_size(a, b, &ab) || !tsr__mul_size(ab, c, &abc))
        return SIZE_MAX;
    return abc;
}

void tsr__gauss_plan(double sigma, int planes, const tsr_port_info *in, const tsr_rect *out,
                     tsr_plan *p)
{
    int r = tsr__gauss_radius(sigma), y0;
    int rows = gauss_rows(out, r, in[0].height, &y0);
    p->in[0] = (tsr_rect){out->x - r, out->y - r, out->w + 2 * r, out->h + 2 * r};
    p->n_bufs = 2;
    p->bufs[TSR_GAUSS_BUF_WEIGHTS] =
        (tsr_buf_req){(size_t)(2 * r + 1) * sizeof(float), TSR_BUF_RUN};
    p->bufs[TSR_GAUSS_BUF_SCRATCH] = (tsr_buf_req){
        mul3_sat((size_t)out->w, (size_t)(rows > 0 ? rows : 0), (size_t)planes * sizeof(float)),
        TSR_BUF_TILE};
}

tsr_status tsr__gauss_prepare(tsr_exec *ex, double sigma)
{
    if (!ex->cl)
        return TSR_OK;
    float w[2 * TSR_GAUSS_MAX_RADIUS + 1];
    int r = tsr__gauss_weights(sigma, w);
    ex->kernel = "weights";
    /* Blocking: w lives on this stack frame. Once per run, not per tile. */
    cl_int st = clEnqueueWriteBuffer(ex->queue, ex->bufs[TSR_GAUSS_BUF_WEIGHTS], CL_TRUE, 0,
                                     (size_t)(2 * r + 1) * sizeof(float), w, 0, NULL, NULL);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (weights)");
}

/* The horizontal pass writes the image rows the vertical pass can reach into a scratch buffer
 * (at most out_h + 2r rows, fewer at the image edges); both passes index in full-image
 * coordinates so that any tiling gives the same bits as the whole image. */
tsr_status tsr__gauss_ref(const tsr_node *n, const tsr_region *in, const tsr_region *out,
                          int planes, double sigma, int edge, tsr__err *err)
{
    float w[2 * TSR_GAUSS_MAX_RADIUS + 1];
    int r = tsr__gauss_weights(sigma, w), y0;
    int rows = gauss_rows(&out->rect, r, in->img_h, &y0);
    int ow = out->rect.w, iw = in->rect.w;
    size_t bytes = mul3_sat((size_t)ow, (size_t)rows, (size_t)planes * sizeof(float));
    float *s = bytes == SIZE_MAX ? NULL : malloc(bytes);
    if (!s)
        return tsr__seterr(err, TSR_ERR_NOMEM, "%s: no host memory for a %dx%d scratch buffer",
                           n->cls->name, ow, rows);
    /* Same float operations in the same order as the kernels: tiles and devices agree. */
    for (int c = 0; c < planes; c++) {
        const float *src = tsr__plane(in, c);
        for (int j = 0; j < rows; j++) {
            const float *row = src + (size_t)(y0 + j - in->rect.y) * iw;
            for (int x = 0; x < ow; x++) {
                int ix = out->rect.x + x;
                float acc = 0.0f;
                if (ix - r >= 0 && ix + r < in->img_w) { /* no edge to map: the fast case */
                    const float *t = row + (ix - r - in->rect.x);
                    for (int i = 0; i <= 2 * r; i++)
                        acc += w[i] * t[i];
                } else {
                    for (int i = -r; i <= r; i++) {
                        int sx = edge_index(ix + i, in->img_w, edge);
                        float v = sx < 0 ? 0.0f : row[sx - in->rect.x];
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
                    int sy = edge_index(out->rect.y + y + i, in->img_h, edge);
                    float v = sy < 0 ? 0.0f : s[((size_t)c * rows + (sy - y0)) * ow + x];
                    acc += w[i + r] * v;
                }
                dst[(size_t)y * ow + x] = acc;
            }
    }
    free(s);
    return TSR_OK;
}

/* tsr__exec_kernel looks in the running node's own kernel file; the passes live in
 * blur.gaussian's, whichever node runs them. */
static tsr_status gauss_kernel(tsr_exec *ex, const char *name, cl_kernel *out)
{
    ex->kernel = name;
    tsr_status rc = tsr__cl_kernel(ex->cl, ex->ctx->kc, "blur.gaussian", name, out, ex->err);
    if (rc)
        tsr__err_prefix(ex->err, "node '%s' (%s): ", ex->node ? ex->node->id : "?",
                        ex->node ? ex->node->cls->name : "?");
    return rc;
}

tsr_status tsr__gauss_cl(tsr_exec *ex, const tsr_region *in, const tsr_region *out, int planes,
                         double sigma, int edge_policy)
{
    cl_int r = tsr__gauss_radius(sigma), edge = edge_policy, y0;
    cl_int rows = gauss_rows(&out->rect, r, in->img_h, &y0);
    cl_mem wbuf = ex->bufs[TSR_GAUSS_BUF_WEIGHTS], scratch = ex->bufs[TSR_GAUSS_BUF_SCRATCH];
    cl_kernel k;
    tsr__geom g = tsr__geom_of(in, out);
    size_t cols = ((size_t)out->rect.w + GAUSS_COLS - 1) / GAUSS_COLS;
    if (!wbuf || !scratch)
        return tsr__seterr(ex->err, TSR_ERR_INTERNAL,
                           "node '%s' (%s): the planned weight and scratch buffers are missing",
                           ex->node ? ex->node->id : "?", ex->node ? ex->node->cls->name : "?");
    tsr_status rc = gauss_kernel(ex, "tsr_blur_gaussian_h", &k);
    if (rc)
        return rc;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(in->mem), TSR_ARG(scratch), TSR_ARG(g), TSR_ARG(wbuf),
                        TSR_ARG(r), TSR_ARG(edge), TSR_ARG(y0), TSR_ARG(rows));
    if (!rc)
        rc = tsr__exec_launch(ex, k, cols, ((size_t)rows + GAUSS_ROWS - 1) / GAUSS_ROWS,
                              (size_t)planes);
    if (rc || (rc = gauss_kernel(ex, "tsr_blur_gaussian_v", &k)))
        return rc;
    rc = tsr__exec_args(ex, k, 8, TSR_ARG(scratch), TSR_ARG(out->mem), TSR_ARG(g), TSR_ARG(wbuf),
                        TSR_ARG(r), TSR_ARG(edge), TSR_ARG(y0), TSR_ARG(rows));
    if (!rc)
        rc = tsr__exec_launch(ex, k, cols, ((size_t)out->rect.h + GAUSS_ROWS - 1) / GAUSS_ROWS,
                              (size_t)planes);
    return rc;
}
