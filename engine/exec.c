/* Executor: shape inference over the graph, then nodes in dependency order, each through its
 * plan()/run_cl() (or run_ref() on the reference engine) on rectangles; intermediates stay on
 * the device and are released as soon as their last consumer has run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- helpers for run_cl ------------------------------------------------------------------ */

static const char *node_id(const tsr_exec *ex)
{
    return ex->node ? ex->node->id : "?";
}
static const char *node_type(const tsr_exec *ex)
{
    return ex->node && ex->node->cls ? ex->node->cls->name : "?";
}

tsr_status tsr__exec_cl_error(tsr_exec *ex, cl_int st, const char *what)
{
    tsr_status rc = st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES
                        ? TSR_ERR_DEVICE_NOMEM
                        : TSR_ERR_DEVICE;
    return tsr__seterr(ex->err, rc, "node '%s' (%s), kernel '%s': %s failed: %s (%d)", node_id(ex),
                       node_type(ex), ex->kernel ? ex->kernel : "-", what, tsr__cl_status_name(st),
                       st);
}

tsr_status tsr__exec_alloc(tsr_exec *ex, size_t bytes, cl_mem *out)
{
    tsr_status rc = tsr__pool_alloc(ex->pool, bytes, out, ex->err);
    if (rc)
        tsr__err_prefix(ex->err, "node '%s' (%s): ", node_id(ex), node_type(ex));
    return rc;
}

void tsr__exec_release(tsr_exec *ex, cl_mem m)
{
    tsr__pool_release(ex->pool, m);
}

tsr_status tsr__exec_kernel(tsr_exec *ex, const char *name, cl_kernel *out)
{
    ex->kernel = name;
    if (!ex->node || !ex->node->cls->kernel)
        return tsr__seterr(ex->err, TSR_ERR_INTERNAL, "node '%s' (%s) has no kernel file",
                           node_id(ex), node_type(ex));
    tsr_status rc = tsr__cl_kernel(ex->cl, ex->node->cls->kernel, name, out, ex->err);
    if (rc)
        tsr__err_prefix(ex->err, "node '%s' (%s): ", node_id(ex), node_type(ex));
    return rc;
}

tsr_status tsr__exec_args(tsr_exec *ex, cl_kernel k, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    tsr_status rc = TSR_OK;
    for (int i = 0; i < n; i++) {
        size_t size = va_arg(ap, size_t);
        const void *ptr = va_arg(ap, const void *);
        cl_int st = clSetKernelArg(k, (cl_uint)i, size, ptr);
        if (st != CL_SUCCESS) {
            char what[64];
            snprintf(what, sizeof what, "clSetKernelArg(%d)", i);
            rc = tsr__exec_cl_error(ex, st, what);
            break;
        }
    }
    va_end(ap);
    return rc;
}

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

tsr_status tsr__exec_launch(tsr_exec *ex, cl_kernel k, size_t gx, size_t gy, size_t gz)
{
    if (!gx || !gy || !gz)
        return TSR_OK;
    size_t kmax = 0;
    cl_int st = clGetKernelWorkGroupInfo(k, ex->cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax,
                                         &kmax, NULL);
    if (st != CL_SUCCESS)
        return tsr__exec_cl_error(ex, st, "clGetKernelWorkGroupInfo");
    if (kmax > ex->cl->max_wg)
        kmax = ex->cl->max_wg;
    /* 16x16 tiles for 2-D work, 64x1 for rows; shrunk to what the kernel allows. */
    size_t lx = gy == 1 ? 64 : 16, ly = gy == 1 ? 1 : 16;
    while (lx * ly > kmax && ly > 1)
        ly /= 2;
    while (lx * ly > kmax && lx > 1)
        lx /= 2;
    size_t local[3] = {lx, ly, 1};
    size_t global[3] = {round_up(gx, lx), round_up(gy, ly), gz};
    st = clEnqueueNDRangeKernel(ex->cl->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    if (st != CL_SUCCESS)
        return tsr__exec_cl_error(ex, st, "clEnqueueNDRangeKernel");
    return TSR_OK;
}

/* ---- rectangles and transfers -------------------------------------------------------------- */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* The part of the image that reads clamped to the image can touch when a node asks for `want`:
 * never empty, even when `want` lies wholly outside the image. */
static tsr_rect clamp_rect(tsr_rect want, int w, int h)
{
    int x0 = clampi(want.x, 0, w - 1), x1 = clampi(want.x + want.w - 1, 0, w - 1);
    int y0 = clampi(want.y, 0, h - 1), y1 = clampi(want.y + want.h - 1, 0, h - 1);
    if (want.w <= 0 || want.h <= 0)
        x1 = x0, y1 = y0;
    return (tsr_rect){x0, y0, x1 - x0 + 1, y1 - y0 + 1};
}

/* Copy rectangle r of img into a packed planar buffer. */
static void pack(const tsr_image *img, tsr_rect r, float *dst)
{
    size_t plane = (size_t)img->width * img->height;
    for (int c = 0; c < img->channels; c++)
        for (int y = 0; y < r.h; y++)
            memcpy(dst + ((size_t)c * r.h + y) * r.w,
                   img->data + c * plane + (size_t)(r.y + y) * img->width + r.x,
                   (size_t)r.w * sizeof(float));
}

static void unpack(tsr_image *img, tsr_rect r, const float *src)
{
    size_t plane = (size_t)img->width * img->height;
    for (int c = 0; c < img->channels; c++)
        for (int y = 0; y < r.h; y++)
            memcpy(img->data + c * plane + (size_t)(r.y + y) * img->width + r.x,
                   src + ((size_t)c * r.h + y) * r.w, (size_t)r.w * sizeof(float));
}

static tsr_status upload(tsr_exec *ex, const float *src, size_t bytes, cl_mem *out)
{
    tsr_status rc = tsr__exec_alloc(ex, bytes, out);
    if (rc)
        return rc;
    cl_int st = clEnqueueWriteBuffer(ex->cl->queue, *out, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    if (st != CL_SUCCESS) {
        tsr__exec_release(ex, *out);
        *out = NULL;
        return tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer");
    }
    return TSR_OK;
}

static tsr_status download(tsr_exec *ex, cl_mem m, float *dst, size_t bytes)
{
    cl_int st = clEnqueueReadBuffer(ex->cl->queue, m, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clEnqueueReadBuffer");
}

static void exec_init(tsr_exec *ex, tsr_engine *e, const tsr_node *n)
{
    memset(ex, 0, sizeof *ex);
    ex->engine = e;
    ex->cl = e->cl;
    ex->pool = e->pool;
    ex->err = &e->err;
    ex->node = n;
    ex->max_pixels = e->max_pixels;
}

static tsr_status finish(tsr_exec *ex)
{
    cl_int st = clFinish(ex->cl->queue);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clFinish");
}

/* ---- one node on host images (tests, C API) ----------------------------------------------- */

tsr_status tsr__run_node(tsr_engine *e, const tsr_node *n, tsr_image *const *inputs, int tile_w,
                         int tile_h, tsr_image **out)
{
    *out = NULL;
    tsr__err_clear(&e->err);
    const tsr_node_class *cls = n->cls;
    if (cls->flags & (TSR_NODE_SOURCE | TSR_NODE_SINK) || !cls->plan || !cls->infer)
        return tsr__seterr(&e->err, TSR_ERR_INVALID, "node type '%s' cannot run on images",
                           cls->name);
    tsr_exec ex;
    exec_init(&ex, e, n);
    tsr_image_info in_info[TSR_MAX_PORTS] = {{0}}, out_info[TSR_MAX_PORTS] = {{0}};
    for (int i = 0; i < cls->n_inputs; i++)
        in_info[i] = (tsr_image_info){inputs[i]->width, inputs[i]->height, inputs[i]->channels,
                                      inputs[i]->bit_depth};
    tsr_status rc = cls->infer(n, in_info, out_info, &e->err);
    if (rc)
        return rc;
    tsr_image *img = NULL;
    rc = tsr_image_new(out_info[0].width, out_info[0].height, out_info[0].channels, &img);
    if (rc)
        return tsr__seterr(&e->err, rc, "cannot allocate a %dx%d output image", out_info[0].width,
                           out_info[0].height);
    img->bit_depth = out_info[0].bit_depth;
    int tw = tile_w > 0 ? tile_w : img->width, th = tile_h > 0 ? tile_h : img->height;
    float *bufs[TSR_MAX_PORTS + 1] = {0};
    cl_mem mems[TSR_MAX_PORTS + 1] = {0};
    for (int ty = 0; ty < img->height && !rc; ty += th)
        for (int tx = 0; tx < img->width && !rc; tx += tw) {
            tsr_rect orect = {tx, ty, tw < img->width - tx ? tw : img->width - tx,
                              th < img->height - ty ? th : img->height - ty};
            tsr_plan plan;
            memset(&plan, 0, sizeof plan);
            cls->plan(n, in_info, &orect, &plan);
            tsr_region in[TSR_MAX_PORTS], outr;
            memset(in, 0, sizeof in);
            for (int i = 0; i < cls->n_inputs; i++) {
                tsr_rect r = clamp_rect(plan.in[i], inputs[i]->width, inputs[i]->height);
                in[i] = (tsr_region){
                    r, inputs[i]->channels, inputs[i]->width, inputs[i]->height, NULL, NULL};
                size_t bytes = tsr__image_bytes(r.w, r.h, inputs[i]->channels);
                if (!(bufs[i] = malloc(bytes))) {
                    rc = tsr__seterr(&e->err, TSR_ERR_NOMEM, "out of memory");
                    goto tile_done;
                }
                pack(inputs[i], r, bufs[i]);
                in[i].host = bufs[i];
            }
            size_t obytes = tsr__image_bytes(orect.w, orect.h, img->channels);
            outr = (tsr_region){orect, img->channels, img->width, img->height, NULL, NULL};
            if (!(bufs[TSR_MAX_PORTS] = malloc(obytes))) {
                rc = tsr__seterr(&e->err, TSR_ERR_NOMEM, "out of memory");
                goto tile_done;
            }
            if (!e->cl) {
                outr.host = bufs[TSR_MAX_PORTS];
                rc = cls->run_ref(n, in, &outr, &e->err);
            } else {
                for (int i = 0; i < cls->n_inputs && !rc; i++) {
                    rc = upload(&ex, bufs[i],
                                tsr__image_bytes(in[i].rect.w, in[i].rect.h, in[i].channels),
                                &mems[i]);
                    in[i].mem = mems[i];
                    in[i].host = NULL;
                }
                if (!rc)
                    rc = tsr__exec_alloc(&ex, obytes, &mems[TSR_MAX_PORTS]);
                outr.mem = mems[TSR_MAX_PORTS];
                if (!rc)
                    rc = cls->run_cl(&ex, n, in, &outr);
                if (!rc)
                    rc = finish(&ex);
                if (!rc)
                    rc = download(&ex, outr.mem, bufs[TSR_MAX_PORTS], obytes);
            }
            if (!rc)
                unpack(img, orect, bufs[TSR_MAX_PORTS]);
        tile_done:
            for (int i = 0; i <= TSR_MAX_PORTS; i++) {
                free(bufs[i]);
                bufs[i] = NULL;
                if (mems[i])
                    tsr__pool_release(e->pool, mems[i]);
                mems[i] = NULL;
            }
        }
    if (rc) {
        tsr_image_free(img);
        return rc;
    }
    *out = img;
    return TSR_OK;
}

/* ---- the graph ------------------------------------------------------------------------------ */

tsr_status tsr_graph_infer(tsr_engine *e, tsr_graph *g)
{
    tsr__err_clear(&e->err);
    for (int k = 0; k < g->n_nodes; k++) {
        tsr_node *n = &g->nodes[g->order[k]];
        tsr_image_info in[TSR_MAX_PORTS];
        memset(in, 0, sizeof in);
        for (int i = 0; i < n->cls->n_inputs; i++) {
            const tsr_input_ref *r = &n->inputs[i];
            if (r->connected)
                in[i] = g->nodes[r->node].out_info[r->port];
        }
        tsr_status rc;
        if (n->bound) {
            tsr_image *b = n->bound;
            n->out_info[0] = (tsr_image_info){b->width, b->height, b->channels, b->bit_depth};
            rc = TSR_OK;
        } else {
            rc = n->cls->infer(n, in, n->out_info, &e->err);
        }
        if (rc)
            return rc;
        if (n->cls->flags & TSR_NODE_SOURCE) {
            uint64_t px = (uint64_t)n->out_info[0].width * (uint64_t)n->out_info[0].height;
            if (px > e->max_pixels) {
                tsr__node_error(&e->err, n, -1,
                                "image of %dx%d = %llu pixels exceeds the limit of %llu "
                                "pixels (set TSR_MAX_PIXELS to raise it)",
                                n->out_info[0].width, n->out_info[0].height, (unsigned long long)px,
                                (unsigned long long)e->max_pixels);
                return TSR_ERR_LIMIT;
            }
        }
    }
    g->inferred = 1;
    return TSR_OK;
}

typedef struct slot {
    tsr_image *host; /* reference path, or a SOURCE's output before upload */
    cl_mem mem;      /* OpenCL path */
    int consumers;   /* consumers still to run */
} slot;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void release_slot(tsr_engine *e, slot *s)
{
    tsr_image_free(s->host);
    s->host = NULL;
    if (s->mem)
        tsr__pool_release(e->pool, s->mem);
    s->mem = NULL;
}

/* Bring slot s to the host (downloads on the OpenCL path). */
static tsr_status slot_to_host(tsr_exec *ex, slot *s, const tsr_image_info *info, tsr_image **out)
{
    if (s->host) {
        *out = tsr_image_ref(s->host);
        return TSR_OK;
    }
    tsr_image *img = NULL;
    tsr_status rc = tsr_image_new(info->width, info->height, info->channels, &img);
    if (rc)
        return tsr__seterr(ex->err, rc, "out of host memory for a %dx%d image", info->width,
                           info->height);
    img->bit_depth = info->bit_depth;
    rc = download(ex, s->mem, img->data, tsr__image_bytes(img->width, img->height, img->channels));
    if (rc) {
        tsr_image_free(img);
        return rc;
    }
    *out = img;
    return TSR_OK;
}

static tsr_status run_node_whole(tsr_exec *ex, tsr_graph *g, tsr_node *n, slot *slots, slot *out)
{
    const tsr_node_class *cls = n->cls;
    tsr_engine *e = ex->engine;
    tsr_image_info in_info[TSR_MAX_PORTS];
    tsr_region in[TSR_MAX_PORTS];
    memset(in_info, 0, sizeof in_info);
    memset(in, 0, sizeof in);
    for (int i = 0; i < cls->n_inputs; i++) {
        const tsr_input_ref *r = &n->inputs[i];
        in_info[i] = g->nodes[r->node].out_info[r->port];
        slot *s = &slots[r->node];
        in[i] = (tsr_region){{0, 0, in_info[i].width, in_info[i].height},
                             in_info[i].channels,
                             in_info[i].width,
                             in_info[i].height,
                             s->mem,
                             s->host ? s->host->data : NULL};
    }
    const tsr_image_info *oi = &n->out_info[0];
    tsr_rect orect = {0, 0, oi->width, oi->height};
    tsr_plan plan;
    memset(&plan, 0, sizeof plan);
    cls->plan(n, in_info, &orect, &plan); /* whole images always cover what plan asks for */
    tsr_region outr = {orect, oi->channels, oi->width, oi->height, NULL, NULL};
    tsr_status rc;
    if (!e->cl) {
        rc = tsr_image_new(oi->width, oi->height, oi->channels, &out->host);
        if (rc)
            return tsr__node_error(ex->err, n, -1, "out of host memory for a %dx%d image",
                                   oi->width, oi->height);
        out->host->bit_depth = oi->bit_depth;
        outr.host = out->host->data;
        return cls->run_ref(n, in, &outr, ex->err);
    }
    rc = tsr__exec_alloc(ex, tsr__image_bytes(oi->width, oi->height, oi->channels), &out->mem);
    if (rc)
        return rc;
    outr.mem = out->mem;
    rc = cls->run_cl(ex, n, in, &outr);
    if (!rc)
        rc = finish(ex);
    return rc;
}

tsr_status tsr_graph_run(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt)
{
    __atomic_store_n(&e->interrupt, 0, __ATOMIC_SEQ_CST);
    tsr_status rc = g->inferred ? TSR_OK : tsr_graph_infer(e, g);
    if (rc)
        return rc;
    tsr__err_clear(&e->err);
    slot *slots = calloc((size_t)g->n_nodes, sizeof *slots);
    double *times = calloc((size_t)g->n_nodes, sizeof *times);
    if (!slots || !times) {
        free(slots);
        free(times);
        return tsr__seterr(&e->err, TSR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int p = 0; p < g->nodes[i].cls->n_inputs; p++)
            if (g->nodes[i].inputs[p].connected)
                slots[g->nodes[i].inputs[p].node].consumers++;
    int builds0 = e->cl ? e->cl->builds_compiled : 0, cached0 = e->cl ? e->cl->builds_cached : 0;
    double t0 = now_s();
    for (int k = 0; k < g->n_nodes && !rc; k++) {
        tsr_node *n = &g->nodes[g->order[k]];
        slot *out = &slots[g->order[k]];
        tsr_exec ex;
        exec_init(&ex, e, n);
        if (__atomic_load_n(&e->interrupt, __ATOMIC_SEQ_CST)) {
            rc = tsr__seterr(&e->err, TSR_ERR_CANCELLED, "cancelled before node '%s'", n->id);
            break;
        }
        if (opt && opt->progress) {
            tsr_progress p = {n->id, n->cls->name, k, g->n_nodes, 0, 1, now_s() - t0};
            if (opt->progress(opt->user, &p)) {
                rc = tsr__seterr(&e->err, TSR_ERR_CANCELLED,
                                 "cancelled by the progress "
                                 "callback before node '%s'",
                                 n->id);
                break;
            }
        }
        double tn = now_s();
        if (n->cls->flags & TSR_NODE_SOURCE) {
            tsr_image *img = NULL;
            if (n->bound)
                img = tsr_image_ref(n->bound);
            else
                rc = n->cls->produce(&ex, n, &img);
            if (!rc &&
                (img->width != n->out_info[0].width || img->height != n->out_info[0].height ||
                 img->channels != n->out_info[0].channels))
                rc = tsr__node_error(&e->err, n, -1,
                                     "image changed since validation: now %dx%d, %d channels",
                                     img->width, img->height, img->channels);
            if (!rc && e->cl)
                rc = upload(&ex, img->data,
                            tsr__image_bytes(img->width, img->height, img->channels), &out->mem);
            if (!rc && !e->cl)
                out->host = tsr_image_ref(img);
            tsr_image_free(img);
        } else if (n->cls->flags & TSR_NODE_SINK) {
            const tsr_input_ref *r = &n->inputs[0];
            tsr_image *img = NULL;
            rc = slot_to_host(&ex, &slots[r->node], &g->nodes[r->node].out_info[r->port], &img);
            if (!rc)
                rc = n->cls->consume(&ex, n, img);
            tsr_image_free(img);
        } else {
            rc = run_node_whole(&ex, g, n, slots, out);
        }
        times[g->order[k]] = now_s() - tn;
        for (int p = 0; p < n->cls->n_inputs; p++)
            if (n->inputs[p].connected && --slots[n->inputs[p].node].consumers == 0)
                release_slot(e, &slots[n->inputs[p].node]);
        if (out->consumers == 0)
            release_slot(e, out);
        if (!rc && opt && opt->progress) {
            tsr_progress p = {n->id, n->cls->name, k, g->n_nodes, 1, 1, now_s() - t0};
            if (opt->progress(opt->user, &p) && k + 1 < g->n_nodes)
                rc = tsr__seterr(&e->err, TSR_ERR_CANCELLED,
                                 "cancelled by the progress callback after node '%s'", n->id);
        }
    }
    double total = now_s() - t0;
    for (int i = 0; i < g->n_nodes; i++)
        release_slot(e, &slots[i]);
    /* Statistics of this run. */
    size_t cap = 4096 + (size_t)g->n_nodes * 160;
    char *st = malloc(cap);
    if (st) {
        int len = snprintf(st, cap, "run.status: %s\nrun.seconds: %.6f\nrun.nodes: %d\n",
                           rc ? tsr_status_str(rc) : "ok", total, g->n_nodes);
        if (e->cl)
            len += snprintf(st + len, cap - (size_t)len,
                            "kernels.compiled: %d\nkernels.from_cache: %d\n",
                            e->cl->builds_compiled - builds0, e->cl->builds_cached - cached0);
        if (e->pool)
            len += tsr__pool_stats(e->pool, st + len, cap - (size_t)len);
        for (int k = 0; k < g->n_nodes && (size_t)len < cap; k++)
            len += snprintf(st + len, cap - (size_t)len, "node.%s.seconds: %.6f\n",
                            g->nodes[g->order[k]].id, times[g->order[k]]);
        free(e->stats);
        e->stats = st;
    }
    free(slots);
    free(times);
    return rc;
}
