/* The device path of every ncnn layer: weight packing for kernels/nn.cl and the launches. The
 * plain-C definitions are in nn_ref.c; the register blocking is described in kernels/nn.cl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_geom.h"

/* Output pixels per work item of the convolution kernels (the _pxN kernels of kernels/nn.cl):
 * more on CPUs, where the accumulators live in 32 vector registers, fewer on GPUs, where a
 * work item's registers are scarcer. */
int tsr__nn_cl_px;

static int px_block(const tsr_exec *ex)
{
    if (tsr__nn_cl_px == 4 || tsr__nn_cl_px == 16)
        return tsr__nn_cl_px;
    return ex->cl->info.is_gpu ? 4 : 16;
}

/* Output channels per work item (the floatN of the kernel): the smallest of 4, 8, 16 that holds
 * the layer's channels, 16 above that. */
static int oc_block(const tsr_nn_layer *L)
{
    return L->num_output <= 4 ? 4 : L->num_output <= 8 ? 8 : 16;
}

static int is_conv(const tsr_nn_layer *L)
{
    return L->type == TSR_NN_CONVOLUTION || L->type == TSR_NN_DECONVOLUTION;
}

/* Winograd F(4x4, 3x3) (kernels/nn_winograd.cl) for every 3x3 stride-1 dilation-1 Convolution;
 * the choice depends on the layer alone, so the packed weights and the scratch size follow from
 * it. Tests set tsr__nn_cl_no_winograd to run those layers on the direct kernels instead. */
int tsr__nn_cl_no_winograd;

static int use_winograd(const tsr_nn_layer *L)
{
    return !tsr__nn_cl_no_winograd && L->type == TSR_NN_CONVOLUTION && L->weight &&
           L->kernel_w == 3 && L->kernel_h == 3 && L->stride_w == 1 && L->stride_h == 1 &&
           L->dilation_w == 1 && L->dilation_h == 1 && L->num_output > 0 && tsr__nn_conv_in(L) > 0;
}

#define WINO_TILE_ROUND 16 /* tiles are padded to a multiple of the largest tile block */
/* Tiles per chunk: each chunk is one set of launches over the same scratch. Bounds the scratch
 * (2048 tiles of 128 -> 256 channels: 114 MB; the whole of a 526x526 tile took 1 GB, whose
 * first touch in each run cost more than the products saved). A multiple of 16. */
#define WINO_CHUNK 2048

/* Floats of the packed convolution: [oc / N][kh][kw][ic][N], then the bias as [oc / N][N]. */
static size_t conv_floats(const tsr_nn_layer *L)
{
    size_t n = (size_t)oc_block(L), nb = ((size_t)L->num_output + n - 1) / n;
    size_t taps = (size_t)L->kernel_h * L->kernel_w * (size_t)tsr__nn_conv_in(L);
    if (use_winograd(L)) /* U: [36][oc / N][ic][N], then the bias */
        taps = 36 * (size_t)tsr__nn_conv_in(L);
    return nb * n * (taps + 1);
}

/* U = G g G^T of one 3x3 kernel g (row major), in double, rounded once: 36 values, u[6 * i + j]. */
static void wino_kernel(const float *g, double *u)
{
    static const double G[6][3] = {{1.0 / 4, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                   {0, 0, 1}};
    double t[6][3]; /* G g */
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
            t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            u[6 * i + j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
}

size_t tsr__nn_cl_weight_bytes(const tsr_nn_layer *L)
{
    switch (L->type) {
    case TSR_NN_CONVOLUTION:
    case TSR_NN_DECONVOLUTION: return L->weight ? conv_floats(L) * sizeof(float) : 0;
    case TSR_NN_PRELU: return L->n_weight * sizeof(float);
    case TSR_NN_INNERPRODUCT: return (L->n_weight + (size_t)L->num_output) * sizeof(float);
    case TSR_NN_SCALE: return L->scale_data_size == -233 ? 0 : 2 * L->n_weight * sizeof(float);
    default: return 0;
    }
}

void tsr__nn_cl_pack_weights(const tsr_nn_layer *L, void *dst)
{
    float *d = dst;
    size_t bytes = tsr__nn_cl_weight_bytes(L);
    if (!bytes)
        return;
    memset(d, 0, bytes);
    if (use_winograd(L)) {
        int n = oc_block(L), ic = tsr__nn_conv_in(L), nb = (L->num_output + n - 1) / n;
        double u[36];
        for (int p = 0; p < L->num_output; p++)
            for (int q = 0; q < ic; q++) {
                wino_kernel(L->weight + ((size_t)p * ic + q) * 9, u);
                for (int k = 0; k < 36; k++)
                    d[(((size_t)k * nb + p / n) * ic + q) * n + p % n] = (float)u[k];
            }
        float *bias = d + (size_t)36 * nb * n * ic;
        for (int p = 0; p < L->num_output && L->bias_term && L->bias; p++)
            bias[p] = L->bias[p];
    } else if (is_conv(L)) {
        int n = oc_block(L), ic = tsr__nn_conv_in(L), kk = L->kernel_h * L->kernel_w;
        int nb = (L->num_output + n - 1) / n;
        for (int p = 0; p < L->num_output; p++)
            for (int q = 0; q < ic; q++)
                for (int k = 0; k < kk; k++)
                    d[(((size_t)(p / n) * kk + k) * ic + q) * n + p % n] =
                        L->weight[((size_t)p * ic + q) * kk + k];
        float *bias = d + (size_t)nb * n * kk * ic;
        for (int p = 0; p < L->num_output && L->bias_term && L->bias; p++)
            bias[p] = L->bias[p];
    } else if (L->type == TSR_NN_PRELU) {
        memcpy(d, L->weight, L->n_weight * sizeof(float));
    } else if (L->type == TSR_NN_INNERPRODUCT) {
        memcpy(d, L->weight, L->n_weight * sizeof(float));
        for (int p = 0; p < L->num_output && L->bias_term && L->bias; p++)
            d[L->n_weight + p] = L->bias[p];
    } else if (L->type == TSR_NN_SCALE) {
        memcpy(d, L->weight, L->n_weight * sizeof(float));
        if (L->bias_term && L->bias)
            memcpy(d + L->n_weight, L->bias, L->n_weight * sizeof(float));
    }
}

/* Winograd geometry of a layer's output (all in floats): 4x4 tiles across (tx) and in all (t);
 * tc: tiles per chunk; tp: tc padded to an odd multiple of 16, the row length of V; vks, mks: the
 * distance between the 36 positions in V and M, 16 floats past the product of the dimensions.
 * Without the odd multiples, power-of-two sizes (64 channels, 1024 tiles) put every row the
 * kernels stream through at once into the same cache set (measured 2-3x slower on PoCL). */
typedef struct wino_geom {
    size_t tx, t, tc, tp, ocp, vks, mks;
    size_t slice; /* the fused kernel's scratch per 16 tiles */
} wino_geom;

static wino_geom wino_geometry(const tsr_nn_layer *L, const tsr_nn_shape *out)
{
    wino_geom g;
    size_t n = (size_t)oc_block(L);
    g.tx = ((size_t)out->w + 15) / 16 * 4; /* the input transform takes 4 tiles of a row */
    g.t = g.tx * (((size_t)out->h + 3) / 4);
    g.tc = g.t < WINO_CHUNK ? g.t : WINO_CHUNK;
    g.tp = (g.tc + WINO_TILE_ROUND - 1) / WINO_TILE_ROUND * WINO_TILE_ROUND;
    if (g.tp / WINO_TILE_ROUND % 2 == 0)
        g.tp += WINO_TILE_ROUND;
    g.ocp = ((size_t)L->num_output + n - 1) / n * n;
    g.vks = (size_t)tsr__nn_conv_in(L) * g.tp + 16;
    g.mks = g.tp * g.ocp + 16;
    g.slice = 36 * (((size_t)tsr__nn_conv_in(L) * 16 + 16) + (n * 16 + 16));
    return g;
}

size_t tsr__nn_cl_scratch_bytes(const tsr_nn_layer *L, const tsr_nn_shape *in,
                                const tsr_nn_shape *out)
{
    if (use_winograd(L)) { /* V [36][ic][tp] (rows vks apart), then M [36][tp][ocp] */
        /* The larger of the two forms (the size may not depend on the device). */
        wino_geom g = wino_geometry(L, out);
        size_t three = 36 * (g.vks + g.mks), fused = g.tp / WINO_TILE_ROUND * g.slice;
        return (three > fused ? three : fused) * sizeof(float);
    }
    if (L->type != TSR_NN_INTERP)
        return 0;
    /* The tap tables: indices then weights, 4 per output column and row. */
    return ((size_t)out->w + (size_t)out->h) * 4 * (sizeof(int) + sizeof(float));
}

static tsr_status kernel_in(tsr_exec *ex, const char *file, const char *name, cl_kernel *k)
{
    ex->kernel = name;
    return tsr__cl_kernel(ex->cl, ex->ctx->kc, file, name, k, ex->err);
}

static tsr_status kernel(tsr_exec *ex, const char *name, cl_kernel *k)
{
    return kernel_in(ex, "nn", name, k);
}

static tsr_status layer_error(tsr_exec *ex, const tsr_nn_layer *L, tsr_status rc, const char *what)
{
    return tsr__seterr(ex->err, rc, "layer '%s' (type %d, line %d): %s", L->name ? L->name : "?",
                       (int)L->type, L->line, what);
}

/* A launch in work groups of lx work items along x: exec's 16x16 groups suit neither the
 * products on a GPU (64 tiles in a row share the weights) nor the fused kernel's few heavy work
 * items on a CPU (one per group, so the threads share them evenly). */
static tsr_status launch_rows(tsr_exec *ex, cl_kernel k, size_t gx, size_t gy, size_t gz, size_t lx)
{
    size_t kmax = 0;
    cl_int st = clGetKernelWorkGroupInfo(k, ex->cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax,
                                         &kmax, NULL);
    if (st != CL_SUCCESS)
        return tsr__exec_cl_error(ex, st, "clGetKernelWorkGroupInfo");
    while (lx > 1 && (lx > kmax || lx > ex->cl->max_wg))
        lx /= 2;
    size_t local[3] = {lx, 1, 1}, global[3] = {(gx + lx - 1) / lx * lx, gy, gz};
    return tsr__launch_nd(ex, k, global, local); /* sliced like every launch: a cancel is seen */
}

/* The three launches of kernels/nn_winograd.cl: input transform, the 36 products, output
 * transform. */
static tsr_status run_winograd(tsr_exec *ex, const tsr_nn_layer *L, cl_mem in, tsr_nn_shape is,
                               cl_mem out, tsr_nn_shape os, cl_mem w, cl_mem scratch)
{
    if (tsr__nn_conv_in(L) != is.c || os.c != L->num_output || !w)
        return layer_error(ex, L, TSR_ERR_INVALID, "channel counts do not match the weights");
    if (!scratch)
        return layer_error(ex, L, TSR_ERR_INTERNAL, "Winograd run without its scratch buffer");
    wino_geom g = wino_geometry(L, &os);
    if (g.t > 0x7fffffff - WINO_CHUNK)
        return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "too many Winograd tiles");
    int n = oc_block(L), fused = px_block(ex) == 16; /* CPU blocking: the fused kernel */
    cl_int ic = is.c, ih = is.h, iw = is.w, oc = os.c, oh = os.h, ow = os.w, pt, pl;
    cl_int ctx = (cl_int)g.tx, ctp = (cl_int)g.tp, ocp = (cl_int)g.ocp;
    cl_int nb = ocp / n, act = L->activation;
    cl_float pv = L->pad_value, p0 = L->activation_params[0], p1 = L->activation_params[1];
    cl_ulong vks = g.vks, mks = g.mks, moff = 36 * (cl_ulong)g.vks, slice = g.slice;
    cl_ulong boff = 36 * (cl_ulong)ocp * ic;
    tsr__nn_conv_pads(L, &is, &os, &pt, &pl);
    char name[40];
    cl_kernel kf = NULL, kin = NULL, kmul = NULL, kout = NULL;
    tsr_status rc;
    if (fused) {
        snprintf(name, sizeof name, "tsr_nn_wino_fused_oc%d", n);
        rc = kernel_in(ex, "nn_winograd", name, &kf);
    } else {
        snprintf(name, sizeof name, "tsr_nn_wino_gemm_oc%d_px4", n);
        rc = kernel_in(ex, "nn_winograd", "tsr_nn_wino_in", &kin);
        if (!rc)
            rc = kernel_in(ex, "nn_winograd", name, &kmul);
        if (!rc)
            rc = kernel_in(ex, "nn_winograd", "tsr_nn_wino_out", &kout);
    }
    /* One chunk of at most tc tiles at a time, each over the same scratch (in-order queue). */
    for (size_t t0 = 0; t0 < g.t && !rc; t0 += g.tc) {
        size_t tn = g.t - t0 < g.tc ? g.t - t0 : g.tc;
        cl_int tbase = (cl_int)t0, tend = (cl_int)(t0 + tn), ctn = (cl_int)tn, nbi = 1;
        if (fused) {
            rc = tsr__exec_args(ex, kf, 21, TSR_ARG(in), TSR_ARG(w), TSR_ARG(scratch),
                                TSR_ARG(slice), TSR_ARG(out), TSR_ARG(ic), TSR_ARG(ih), TSR_ARG(iw),
                                TSR_ARG(oc), TSR_ARG(oh), TSR_ARG(ow), TSR_ARG(ctx), TSR_ARG(tbase),
                                TSR_ARG(tend), TSR_ARG(ocp), TSR_ARG(pt), TSR_ARG(pl), TSR_ARG(pv),
                                TSR_ARG(act), TSR_ARG(p0), TSR_ARG(p1));
            if (!rc)
                rc = launch_rows(ex, kf, (tn + 15) / 16, 1, 1, 1);
            continue;
        }
        rc = tsr__exec_args(ex, kin, 13, TSR_ARG(in), TSR_ARG(scratch), TSR_ARG(ic), TSR_ARG(ih),
                            TSR_ARG(iw), TSR_ARG(ctx), TSR_ARG(tbase), TSR_ARG(tend), TSR_ARG(ctp),
                            TSR_ARG(vks), TSR_ARG(pt), TSR_ARG(pl), TSR_ARG(pv));
        if (!rc)
            rc = tsr__exec_launch(ex, kin, g.tp / 4, (size_t)ic, 1);
        if (!rc)
            rc = tsr__exec_args(ex, kmul, 9, TSR_ARG(w), TSR_ARG(scratch), TSR_ARG(vks),
                                TSR_ARG(moff), TSR_ARG(mks), TSR_ARG(ic), TSR_ARG(ctp),
                                TSR_ARG(ocp), TSR_ARG(nbi));
        if (!rc)
            rc = launch_rows(ex, kmul, g.tp / 4, 36, (size_t)nb, 64);
        /* The bias follows U in the packed weights: the kernel gets the buffer and the offset. */
        if (!rc)
            rc = tsr__exec_args(ex, kout, 16, TSR_ARG(scratch), TSR_ARG(moff), TSR_ARG(mks),
                                TSR_ARG(w), TSR_ARG(boff), TSR_ARG(out), TSR_ARG(oc), TSR_ARG(oh),
                                TSR_ARG(ow), TSR_ARG(ctx), TSR_ARG(tbase), TSR_ARG(ctn),
                                TSR_ARG(ocp), TSR_ARG(act), TSR_ARG(p0), TSR_ARG(p1));
        if (!rc)
            rc = tsr__exec_launch(ex, kout, (size_t)(oc + 3) / 4, tn, 1);
    }
    return rc;
}

static tsr_status run_conv(tsr_exec *ex, const tsr_nn_layer *L, cl_mem in, tsr_nn_shape is,
                           cl_mem out, tsr_nn_shape os, cl_mem w)
{
    int deconv = L->type == TSR_NN_DECONVOLUTION, n = oc_block(L);
    if (tsr__nn_conv_in(L) != is.c || os.c != L->num_output || !w)
        return layer_error(ex, L, TSR_ERR_INVALID, "channel counts do not match the weights");
    int px = px_block(ex);
    char name[40];
    snprintf(name, sizeof name, "tsr_nn_%s_oc%d_px%d", deconv ? "deconv" : "conv", n, px);
    cl_kernel k;
    tsr_status rc = kernel(ex, name, &k);
    if (rc)
        return rc;
    cl_int ic = is.c, ih = is.h, iw = is.w, oc = os.c, oh = os.h, ow = os.w;
    cl_int kw = L->kernel_w, kh = L->kernel_h, dw = L->dilation_w, dh = L->dilation_h;
    cl_int sw = L->stride_w, sh = L->stride_h, pt, pl, act = L->activation;
    cl_float pv = L->pad_value, p0 = L->activation_params[0], p1 = L->activation_params[1];
    tsr__nn_conv_pads(L, &is, &os, &pt, &pl);
    if (!deconv)
        rc = tsr__exec_args(ex, k, 21, TSR_ARG(in), TSR_ARG(out), TSR_ARG(w), TSR_ARG(ic),
                            TSR_ARG(ih), TSR_ARG(iw), TSR_ARG(oc), TSR_ARG(oh), TSR_ARG(ow),
                            TSR_ARG(kw), TSR_ARG(kh), TSR_ARG(dw), TSR_ARG(dh), TSR_ARG(sw),
                            TSR_ARG(sh), TSR_ARG(pt), TSR_ARG(pl), TSR_ARG(pv), TSR_ARG(act),
                            TSR_ARG(p0), TSR_ARG(p1));
    else
        rc = tsr__exec_args(ex, k, 20, TSR_ARG(in), TSR_ARG(out), TSR_ARG(w), TSR_ARG(ic),
                            TSR_ARG(ih), TSR_ARG(iw), TSR_ARG(oc), TSR_ARG(oh), TSR_ARG(ow),
                            TSR_ARG(kw), TSR_ARG(kh), TSR_ARG(dw), TSR_ARG(dh), TSR_ARG(sw),
                            TSR_ARG(sh), TSR_ARG(pt), TSR_ARG(pl), TSR_ARG(act), TSR_ARG(p0),
                            TSR_ARG(p1));
    if (rc)
        return rc;
    size_t nb = ((size_t)oc + n - 1) / n, gx;
    if (deconv) /* each phase of the stride gets its own blocks of px pixels */
        gx = (size_t)sw * ((((size_t)ow + sw - 1) / sw + px - 1) / px);
    else
        gx = ((size_t)ow + px - 1) / px;
    return tsr__exec_launch(ex, k, gx, (size_t)oh, nb);
}

/* A copy of the device buffer src (bytes at src_off) into dst at dst_off. */
static tsr_status copy(tsr_exec *ex, cl_mem src, size_t src_off, cl_mem dst, size_t dst_off,
                       size_t bytes)
{
    if (!bytes)
        return TSR_OK;
    ex->kernel = "-";
    cl_int st =
        clEnqueueCopyBuffer(ex->queue, src, dst, src_off, dst_off, bytes, 0, NULL, NULL);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clEnqueueCopyBuffer");
}

static tsr_status run_crop(tsr_exec *ex, const tsr_nn_layer *L, const cl_mem *in,
                           const tsr_nn_shape *is, cl_mem out, tsr_nn_shape os)
{
    tsr_nn_shape box;
    int off[3];
    tsr_nn_shape ins[2] = {is[0], L->n_in > 1 ? is[1] : is[0]};
    tsr_status rc = tsr__nn_crop_box(L, ins, off, &box, ex->err);
    if (rc)
        return rc;
    if (tsr__nn_count(box) != tsr__nn_count(os))
        return layer_error(ex, L, TSR_ERR_INVALID, "output shape differs from the crop box");
    if (is[0].dims != 3)
        return copy(ex, in[0], (size_t)off[0] * sizeof(float), out, 0,
                    (size_t)box.c * sizeof(float));
    size_t f = sizeof(float);
    size_t src_origin[3] = {(size_t)off[2] * f, (size_t)off[1], (size_t)off[0]};
    size_t dst_origin[3] = {0, 0, 0};
    size_t region[3] = {(size_t)box.w * f, (size_t)box.h, (size_t)box.c};
    ex->kernel = "-";
    cl_int st = clEnqueueCopyBufferRect(
        ex->queue, in[0], out, src_origin, dst_origin, region, (size_t)is[0].w * f,
        (size_t)is[0].w * is[0].h * f, (size_t)box.w * f, (size_t)box.w * box.h * f, 0, NULL, NULL);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clEnqueueCopyBufferRect");
}

static tsr_status run_interp(tsr_exec *ex, const tsr_nn_layer *L, cl_mem in, tsr_nn_shape is,
                             cl_mem out, tsr_nn_shape os, cl_mem scratch)
{
    if (is.dims != 3 || os.c != is.c)
        return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "Interp needs a 3-D input");
    if (L->resize_type < TSR_NN_INTERP_NEAREST || L->resize_type > TSR_NN_INTERP_BICUBIC)
        return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "unknown resize_type");
    size_t bytes = tsr__nn_cl_scratch_bytes(L, &is, &os), cols = (size_t)os.w + os.h;
    if (!scratch)
        return layer_error(ex, L, TSR_ERR_INTERNAL, "Interp run without its scratch buffer");
    int *tab = malloc(bytes);
    if (!tab)
        return layer_error(ex, L, TSR_ERR_NOMEM, "no host memory for the tap tables");
    float *wt = (float *)(tab + cols * 4);
    cl_int tx = tsr__nn_interp_taps(L, 0, is.w, os.w, tab, wt);
    cl_int ty =
        tsr__nn_interp_taps(L, 1, is.h, os.h, tab + (size_t)os.w * 4, wt + (size_t)os.w * 4);
    /* Blocking: the tables live in this call. They are a few KiB per layer run. */
    cl_int st = clEnqueueWriteBuffer(ex->queue, scratch, CL_TRUE, 0, bytes, tab, 0, NULL, NULL);
    free(tab);
    if (st != CL_SUCCESS)
        return tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (interp taps)");
    cl_kernel k;
    tsr_status rc = kernel(ex, "tsr_nn_interp", &k);
    cl_int ih = is.h, iw = is.w, oh = os.h, ow = os.w;
    if (!rc)
        rc = tsr__exec_args(ex, k, 9, TSR_ARG(in), TSR_ARG(out), TSR_ARG(scratch), TSR_ARG(ih),
                            TSR_ARG(iw), TSR_ARG(oh), TSR_ARG(ow), TSR_ARG(tx), TSR_ARG(ty));
    if (!rc)
        rc = tsr__exec_launch(ex, k, (size_t)ow, (size_t)oh, (size_t)os.c);
    return rc;
}

static tsr_status run_binary(tsr_exec *ex, const tsr_nn_layer *L, const cl_mem *in,
                             const tsr_nn_shape *is, cl_mem out, tsr_nn_shape os)
{
    if (L->op < TSR_NN_BIN_ADD || L->op > TSR_NN_BIN_MIN)
        return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "unsupported op_type");
    cl_int scalar = L->with_scalar || L->n_in < 2, a[3], b[3] = {1, 1, 1};
    cl_int o[3] = {os.c, os.h, os.w}, op = L->op;
    cl_float s = L->b;
    if (os.dims == 1)
        o[0] = 1, o[1] = 1, o[2] = os.c;
    if (scalar) {
        a[0] = o[0], a[1] = o[1], a[2] = o[2];
    } else {
        tsr__nn_bin_dims(is[0], is[1], a);
        tsr__nn_bin_dims(is[1], is[0], b);
    }
    for (int i = 0; i < 3; i++)
        if ((a[i] != o[i] && a[i] != 1) || (b[i] != o[i] && b[i] != 1))
            return layer_error(ex, L, TSR_ERR_INVALID, "operand shapes do not broadcast");
    cl_mem bm = scalar ? in[0] : in[1];
    cl_kernel k;
    tsr_status rc = kernel(ex, "tsr_nn_binary", &k);
    if (!rc)
        rc = tsr__exec_args(ex, k, 14, TSR_ARG(in[0]), TSR_ARG(bm), TSR_ARG(out), TSR_ARG(op),
                            TSR_ARG(o[1]), TSR_ARG(o[2]), TSR_ARG(a[0]), TSR_ARG(a[1]),
                            TSR_ARG(a[2]), TSR_ARG(b[0]), TSR_ARG(b[1]), TSR_ARG(b[2]),
                            TSR_ARG(scalar), TSR_ARG(s));
    if (!rc)
        rc = tsr__exec_launch(ex, k, (size_t)o[2], (size_t)o[1], (size_t)o[0]);
    return rc;
}

static tsr_status run_eltwise(tsr_exec *ex, const tsr_nn_layer *L, const cl_mem *in,
                              const tsr_nn_shape *is, cl_mem out, tsr_nn_shape os)
{
    size_t count = tsr__nn_count(os);
    if (L->n_in < 2)
        return layer_error(ex, L, TSR_ERR_INVALID, "Eltwise needs at least 2 inputs");
    for (int i = 0; i < L->n_in; i++)
        if (tsr__nn_count(is[i]) != count)
            return layer_error(ex, L, TSR_ERR_INVALID, "Eltwise inputs differ in shape");
    cl_int coeffs = L->op == TSR_NN_ELT_SUM && L->n_coeffs > 0, op = L->op, n = (cl_int)count;
    if (coeffs && L->n_coeffs < L->n_in)
        return layer_error(ex, L, TSR_ERR_INVALID, "fewer coeffs than inputs");
    if (op < TSR_NN_ELT_PROD || op > TSR_NN_ELT_MAX)
        return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "unsupported op_type");
    cl_kernel k;
    tsr_status rc = kernel(ex, "tsr_nn_eltwise", &k);
    /* In order: out = x0 op x1, then out = out op x_i; each launch reads what the last wrote
     * (an in-order queue). */
    for (int i = 1; i < L->n_in && !rc; i++) {
        cl_int first = i == 1;
        cl_float c0 = coeffs ? L->coeffs[0] : 1.0f, c1 = coeffs ? L->coeffs[i] : 1.0f;
        rc = tsr__exec_args(ex, k, 9, TSR_ARG(in[0]), TSR_ARG(in[i]), TSR_ARG(out), TSR_ARG(n),
                            TSR_ARG(op), TSR_ARG(first), TSR_ARG(coeffs), TSR_ARG(c0), TSR_ARG(c1));
        if (!rc)
            rc = tsr__exec_launch(ex, k, count, 1, 1);
    }
    return rc;
}

/* One kernel over every value of each channel: c planes of `plane` values, launched as
 * (plane, 1, c). */
static tsr_status run_planes(tsr_exec *ex, const char *name, cl_mem in, cl_mem k2, cl_mem out,
                             tsr_nn_shape s, cl_int a, cl_int b, int k2_second)
{
    cl_kernel k;
    tsr_status rc = kernel(ex, name, &k);
    cl_int plane = s.h * s.w;
    if (rc)
        return rc;
    if (k2_second)
        rc = tsr__exec_args(ex, k, 6, TSR_ARG(in), TSR_ARG(k2), TSR_ARG(out), TSR_ARG(plane),
                            TSR_ARG(a), TSR_ARG(b));
    else
        rc = tsr__exec_args(ex, k, 5, TSR_ARG(in), TSR_ARG(out), TSR_ARG(k2), TSR_ARG(plane),
                            TSR_ARG(a));
    if (!rc)
        rc = tsr__exec_launch(ex, k, (size_t)plane, 1, (size_t)s.c);
    return rc;
}

tsr_status tsr__nn_cl_layer(tsr_exec *ex, const tsr_nn_layer *L, const cl_mem *in,
                            const tsr_nn_shape *in_shape, const cl_mem *out,
                            const tsr_nn_shape *out_shape, cl_mem weights, cl_mem scratch)
{
    tsr_nn_shape is = in_shape[0], os = out_shape[0];
    cl_kernel k;
    tsr_status rc = TSR_OK;
    switch (L->type) {
    case TSR_NN_CONVOLUTION:
    case TSR_NN_DECONVOLUTION:
        if (use_winograd(L))
            return run_winograd(ex, L, in[0], is, out[0], os, weights, scratch);
        return run_conv(ex, L, in[0], is, out[0], os, weights);
    case TSR_NN_PRELU:
        if (!weights || L->n_weight < 1 || (L->n_weight > 1 && L->n_weight != (size_t)is.c))
            return layer_error(ex, L, TSR_ERR_INVALID, "slope count does not match the channels");
        return run_planes(ex, "tsr_nn_prelu", in[0], weights, out[0], is, (cl_int)L->n_weight, 0,
                          0);
    case TSR_NN_PIXELSHUFFLE: {
        cl_int r = L->upscale_factor, ih = is.h, iw = is.w, oc = os.c, mode = L->pixelshuffle_mode;
        if (r < 1 || os.c * r * r != is.c || os.h != is.h * r || os.w != is.w * r)
            return layer_error(ex, L, TSR_ERR_INVALID, "shapes do not match the upscale factor");
        if (!(rc = kernel(ex, "tsr_nn_pixelshuffle", &k)))
            rc = tsr__exec_args(ex, k, 7, TSR_ARG(in[0]), TSR_ARG(out[0]), TSR_ARG(ih), TSR_ARG(iw),
                                TSR_ARG(r), TSR_ARG(oc), TSR_ARG(mode));
        if (!rc)
            rc = tsr__exec_launch(ex, k, (size_t)os.w, (size_t)os.h, (size_t)os.c);
        return rc;
    }
    case TSR_NN_INTERP: return run_interp(ex, L, in[0], is, out[0], os, scratch);
    case TSR_NN_BINARYOP: return run_binary(ex, L, in, in_shape, out[0], os);
    case TSR_NN_ELTWISE: return run_eltwise(ex, L, in, in_shape, out[0], os);
    case TSR_NN_CONCAT: {
        if (!(L->axis == 0 || L->axis == -os.dims))
            return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "Concat only along channels (axis 0)");
        size_t at = 0, total = tsr__nn_count(os) * sizeof(float);
        for (int i = 0; i < L->n_in && !rc; i++) {
            size_t bytes = tsr__nn_count(in_shape[i]) * sizeof(float);
            if (at + bytes > total)
                return layer_error(ex, L, TSR_ERR_INVALID, "inputs larger than the output");
            rc = copy(ex, in[i], 0, out[0], at, bytes);
            at += bytes;
        }
        return rc;
    }
    case TSR_NN_CROP: return run_crop(ex, L, in, in_shape, out[0], os);
    case TSR_NN_SPLIT: /* the executor aliases; a copy keeps this path complete */
        for (int i = 0; i < L->n_out && !rc; i++)
            rc = copy(ex, in[0], 0, out[i], 0, tsr__nn_count(is) * sizeof(float));
        return rc;
    case TSR_NN_POOLING: {
        if (!L->global_pooling || L->pooling_type < 0 || L->pooling_type > 1)
            return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "only global max/avg pooling");
        cl_int c = is.c, plane = is.h * is.w, avg = L->pooling_type == 1;
        if (!(rc = kernel(ex, "tsr_nn_global_pool", &k)))
            rc = tsr__exec_args(ex, k, 5, TSR_ARG(in[0]), TSR_ARG(out[0]), TSR_ARG(c),
                                TSR_ARG(plane), TSR_ARG(avg));
        if (!rc)
            rc = tsr__exec_launch(ex, k, (size_t)c, 1, 1);
        return rc;
    }
    case TSR_NN_INNERPRODUCT: {
        size_t n = tsr__nn_count(is);
        if (!weights || L->num_output < 1 || L->n_weight != n * (size_t)L->num_output)
            return layer_error(ex, L, TSR_ERR_INVALID, "input size does not match the weights");
        cl_int ni = (cl_int)n, no = L->num_output, act = L->activation;
        cl_float p0 = L->activation_params[0], p1 = L->activation_params[1];
        if (!(rc = kernel(ex, "tsr_nn_innerproduct", &k)))
            rc = tsr__exec_args(ex, k, 8, TSR_ARG(in[0]), TSR_ARG(out[0]), TSR_ARG(weights),
                                TSR_ARG(ni), TSR_ARG(no), TSR_ARG(act), TSR_ARG(p0), TSR_ARG(p1));
        if (!rc)
            rc = tsr__exec_launch(ex, k, (size_t)no, 1, 1);
        return rc;
    }
    case TSR_NN_SCALE: {
        int second = L->scale_data_size == -233;
        size_t nk = second ? tsr__nn_count(in_shape[1]) : L->n_weight;
        if (nk != (size_t)is.c || (!second && !weights))
            return layer_error(ex, L, TSR_ERR_INVALID, "scale count does not match the channels");
        cl_int bias = !second && L->bias_term && L->bias;
        return run_planes(ex, "tsr_nn_scale", in[0], second ? in[1] : weights, out[0], is,
                          (cl_int)is.c, bias, 1);
    }
    default: return layer_error(ex, L, TSR_ERR_UNSUPPORTED, "no device kernel for this layer type");
    }
}
