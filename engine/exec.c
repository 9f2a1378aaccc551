/* Executor: shape inference over the graph, then nodes in dependency order, each through its
 * plan()/run_cl() (or run_ref() on the reference engine) on rectangles; intermediates stay on
 * the device and are released as soon as their last consumer has run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "internal.h"
#include "job.h"
#include "model.h"

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
    /* The same three statuses the pool treats as a refusal: all are worth a smaller tile. */
    tsr_status rc = st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES ||
                            st == CL_OUT_OF_HOST_MEMORY
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
    tsr_status rc = tsr__cl_kernel(ex->cl, ex->ctx->kc, ex->node->cls->kernel, name, out, ex->err);
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

/* ---- rectangles and transfers -------------------------------------------------------------- */

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
    cl_int st = clEnqueueWriteBuffer(ex->queue, *out, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    if (st != CL_SUCCESS) {
        tsr__exec_release(ex, *out);
        *out = NULL;
        return tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer");
    }
    return TSR_OK;
}

static tsr_status download(tsr_exec *ex, cl_mem m, float *dst, size_t bytes)
{
    cl_int st = clEnqueueReadBuffer(ex->queue, m, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clEnqueueReadBuffer");
}

void tsr__exec_init_ctx(tsr_exec *ex, tsr__ctx *c, const tsr_node *n)
{
    memset(ex, 0, sizeof *ex);
    ex->engine = c->e;
    ex->cl = c->e->cl;
    ex->pool = c->e->pool;
    ex->ctx = c;
    ex->queue = c->queue;
    ex->err = c->err;
    ex->node = n;
    ex->max_pixels = c->e->max_pixels;
}

/* The engine's own context reports to the calling thread's message slot. */
void tsr__exec_init(tsr_exec *ex, tsr_engine *e, const tsr_node *n)
{
    e->ctx0.err = tsr__eerr(e);
    tsr__exec_init_ctx(ex, &e->ctx0, n);
}

int tsr__exec_cancelled(const tsr_exec *ex)
{
    return tsr__ctx_cancelled(ex->ctx);
}

void tsr__exec_progress(tsr_exec *ex, int64_t done, int64_t total)
{
    tsr__ctx *c = ex->ctx;
    if (c && c->node_progress && ex->node)
        c->node_progress(c, ex->node, done, total);
}

static int io_cancelled(void *user)
{
    return tsr__exec_cancelled(user);
}

static void io_progress(void *user, int64_t done, int64_t total)
{
    tsr__exec_progress(user, done, total);
}

static void io_warn(void *user, const char *msg)
{
    tsr_exec *ex = user;
    tsr__ctx *c = ex->ctx;
    if (c && c->node_warn && ex->node)
        c->node_warn(c, ex->node, msg);
}

tsr__io_ctl tsr__exec_io(tsr_exec *ex)
{
    return (tsr__io_ctl){io_cancelled, io_progress, ex, io_warn};
}

static tsr_status finish(tsr_exec *ex)
{
    cl_int st = clFinish(ex->queue);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clFinish");
}

/* ---- a node's planned buffers ------------------------------------------------------------- */

/* Allocate the buffers of plan p whose lifetime is `life` into ex->bufs, each of at least the
 * size in `at_least[i]` (the stage's grid maxima; NULL: the plan's own sizes). */
static tsr_status bufs_alloc(tsr_exec *ex, const tsr_plan *p, tsr_buf_life life,
                             const size_t *at_least)
{
    for (int i = 0; i < p->n_bufs && i < TSR_MAX_BUFS; i++) {
        if (p->bufs[i].life != life || !p->bufs[i].bytes)
            continue;
        size_t bytes = p->bufs[i].bytes;
        if (at_least && at_least[i] > bytes)
            bytes = at_least[i];
        if (bytes == SIZE_MAX)
            return tsr__seterr(ex->err, TSR_ERR_LIMIT,
                               "node '%s' (%s): buffer %d of this tile overflows size_t",
                               node_id(ex), node_type(ex), i);
        tsr_status rc = tsr__exec_alloc(ex, bytes, &ex->bufs[i]);
        if (rc)
            return rc;
        ex->buf_bytes[i] = p->bufs[i].bytes;
    }
    return TSR_OK;
}

static void bufs_release(tsr_exec *ex, const tsr_plan *p, tsr_buf_life life)
{
    for (int i = 0; i < TSR_MAX_BUFS; i++)
        if (ex->bufs[i] && (i >= p->n_bufs || p->bufs[i].life == life)) {
            tsr__pool_release(ex->pool, ex->bufs[i]);
            ex->bufs[i] = NULL;
            ex->buf_bytes[i] = 0;
        }
}

/* ---- one node on host images (tests, C API) ----------------------------------------------- */

tsr_status tsr__run_node_v(tsr_engine *e, const tsr_node *n, tsr_image *const *inputs,
                           const tsr_port_info *values, int tile_w, int tile_h, tsr_image **out)
{
    *out = NULL;
    tsr__err_clear(tsr__eerr(e));
    const tsr_node_class *cls = n->cls;
    if (cls->flags & (TSR_NODE_SOURCE | TSR_NODE_SINK | TSR_NODE_VALUE) || !cls->plan ||
        !cls->infer)
        return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID, "node type '%s' cannot run on images",
                           cls->name);
    tsr_exec ex;
    tsr__exec_init(&ex, e, n);
    tsr_port_info in_info[TSR_MAX_PORTS], out_info[TSR_MAX_PORTS];
    memset(in_info, 0, sizeof in_info);
    memset(out_info, 0, sizeof out_info);
    for (int i = 0; i < cls->n_inputs; i++) {
        if (!tsr__port_is_image(cls, i)) {
            if (!values)
                return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID,
                                   "input '%s' of '%s' needs a value", cls->inputs[i].name,
                                   cls->name);
            in_info[i] = values[i];
            continue;
        }
        in_info[i] = (tsr_port_info){.width = inputs[i]->width,
                                     .height = inputs[i]->height,
                                     .channels = inputs[i]->channels,
                                     .bit_depth = inputs[i]->bit_depth};
    }
    ex.in_info = in_info;
    tsr_status rc = cls->infer(n, in_info, out_info, tsr__eerr(e));
    if (rc)
        return rc;
    tsr_image *img = NULL;
    rc = tsr_image_new(out_info[0].width, out_info[0].height, out_info[0].channels, &img);
    if (rc)
        return tsr__seterr(tsr__eerr(e), rc, "cannot allocate a %dx%d output image",
                           out_info[0].width, out_info[0].height);
    img->bit_depth = out_info[0].bit_depth;
    int tw = tile_w > 0 ? tile_w : img->width, th = tile_h > 0 ? tile_h : img->height;
    float *bufs[TSR_MAX_PORTS + 1] = {0};
    cl_mem mems[TSR_MAX_PORTS + 1] = {0};
    /* RUN buffers and prepare() once, from the first tile's plan. */
    tsr_plan plan0;
    memset(&plan0, 0, sizeof plan0);
    tsr_rect r0 = {0, 0, tw < img->width ? tw : img->width, th < img->height ? th : img->height};
    cls->plan(n, in_info, &r0, &plan0);
    for (int i = 0; i < cls->n_inputs; i++)
        if (tsr__port_is_image(cls, i))
            ex.in_images[i] = inputs[i];
    ex.tile_w = tw;
    ex.tile_h = th;
    int prepared = 0;
    if (e->cl)
        rc = bufs_alloc(&ex, &plan0, TSR_BUF_RUN, NULL);
    if (!rc && cls->prepare)
        rc = cls->prepare(&ex, n, &ex.state);
    prepared = !rc;
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
                if (!tsr__port_is_image(cls, i))
                    continue;
                tsr_rect r = tsr__clamp_rect(plan.in[i], inputs[i]->width, inputs[i]->height);
                in[i] = (tsr_region){
                    r, inputs[i]->channels, inputs[i]->width, inputs[i]->height, NULL, NULL};
                size_t bytes = tsr__image_bytes(r.w, r.h, inputs[i]->channels);
                if (!(bufs[i] = malloc(bytes))) {
                    rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory");
                    goto tile_done;
                }
                pack(inputs[i], r, bufs[i]);
                in[i].host = bufs[i];
            }
            size_t obytes = tsr__image_bytes(orect.w, orect.h, img->channels);
            outr = (tsr_region){orect, img->channels, img->width, img->height, NULL, NULL};
            if (!(bufs[TSR_MAX_PORTS] = malloc(obytes))) {
                rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory");
                goto tile_done;
            }
            if (!e->cl) {
                outr.host = bufs[TSR_MAX_PORTS];
                rc = cls->run_ref(&ex, n, in, &outr);
            } else {
                for (int i = 0; i < cls->n_inputs && !rc; i++) {
                    if (!tsr__port_is_image(cls, i))
                        continue;
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
                    rc = bufs_alloc(&ex, &plan, TSR_BUF_TILE, NULL);
                if (!rc)
                    rc = cls->run_cl(&ex, n, in, &outr);
                if (!rc)
                    rc = finish(&ex);
                bufs_release(&ex, &plan, TSR_BUF_TILE);
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
    if (prepared && cls->release)
        cls->release(&ex, n, ex.state);
    if (e->cl)
        bufs_release(&ex, &plan0, TSR_BUF_RUN);
    if (rc) {
        tsr_image_free(img);
        return rc;
    }
    *out = img;
    return TSR_OK;
}

tsr_status tsr__run_node(tsr_engine *e, const tsr_node *n, tsr_image *const *inputs, int tile_w,
                         int tile_h, tsr_image **out)
{
    return tsr__run_node_v(e, n, inputs, NULL, tile_w, tile_h, out);
}

/* ---- the graph ------------------------------------------------------------------------------ */

typedef struct path_ref {
    char *key;
    int node;
    int param; /* the node's "path" param */
} path_ref;

static int path_ref_cmp(const void *a, const void *b)
{
    const path_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->node - y->node;
}

/* A save whose target is also a file some node reads, or two saves to one file, would lose
 * data or race: refused before any pixel moves, at the save's path. Sorted, so that a graph of
 * many nodes costs n log n. */
static tsr_status check_paths(const tsr_graph *g, tsr__err *err)
{
    path_ref *refs = calloc((size_t)g->n_nodes + 1, sizeof *refs);
    if (!refs)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory checking output paths");
    int n = 0;
    tsr_status rc = TSR_OK;
    char key[4200];
    for (int v = 0; v < g->n_nodes; v++) {
        const tsr_node *nd = &g->nodes[v];
        int p = tsr__param_index(nd->cls, "path");
        if (p < 0 || !nd->params[p].str || strcmp(nd->params[p].str, "-") == 0 ||
            tsr__path_key(nd->params[p].str, key, sizeof key))
            continue;
        if (!(refs[n].key = strdup(key))) {
            rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory checking output paths");
            break;
        }
        refs[n].param = p;
        refs[n++].node = v;
    }
    if (!rc)
        qsort(refs, (size_t)n, sizeof *refs, path_ref_cmp);
    for (int i = 0; !rc && i < n;) {
        int k = i + 1;
        while (k < n && strcmp(refs[k].key, refs[i].key) == 0)
            k++;
        /* refs[i..k) name one file: a sink among several is refused. */
        const path_ref *reader = NULL, *writer = NULL;
        for (int m = i; m < k && k - i > 1; m++) {
            const path_ref *r = &refs[m];
            const tsr_node *nd = &g->nodes[r->node];
            if (!(nd->cls->flags & TSR_NODE_SINK)) {
                reader = reader ? reader : r;
            } else if (!writer) {
                writer = r;
            } else {
                rc = tsr__node_error(err, nd, r->param, "writes '%s', the same file as node '%s'",
                                     nd->params[r->param].str, g->nodes[writer->node].id);
                break;
            }
        }
        if (!rc && writer && reader) {
            const tsr_node *w = &g->nodes[writer->node];
            rc = tsr__node_error(err, w, writer->param,
                                 "would replace '%s', which node '%s' reads: write the output "
                                 "elsewhere",
                                 w->params[writer->param].str, g->nodes[reader->node].id);
        }
        i = k;
    }
    for (int i = 0; i < n; i++)
        free(refs[i].key);
    free(refs);
    return rc;
}

tsr_status tsr_graph_infer(tsr_engine *e, tsr_graph *g)
{
    tsr__err_clear(tsr__eerr(e));
    int loads0 = tsr__model_loads_here();
    for (int k = 0; k < g->n_nodes; k++) {
        tsr_node *n = &g->nodes[g->order[k]];
        tsr_port_info in[TSR_MAX_PORTS];
        memset(in, 0, sizeof in);
        for (int i = 0; i < n->cls->n_inputs; i++) {
            const tsr_input_ref *r = &n->inputs[i];
            if (r->connected)
                in[i] = g->nodes[r->node].out_info[r->port];
        }
        tsr_status rc;
        if (n->bound) {
            tsr_image *b = n->bound;
            n->out_info[0] = (tsr_port_info){.width = b->width,
                                             .height = b->height,
                                             .channels = b->channels,
                                             .bit_depth = b->bit_depth};
            rc = TSR_OK;
        } else if (n->px) {
            const tsr_pixels *p = &n->px->px;
            n->out_info[0] = (tsr_port_info){.width = p->width,
                                             .height = p->height,
                                             .channels = p->channels,
                                             .bit_depth = p->sample == TSR_SAMPLE_U8    ? 8
                                                          : p->sample == TSR_SAMPLE_U16 ? 16
                                                                                        : 0};
            rc = TSR_OK;
        } else if (n->cls->resolve) {
            rc = n->cls->resolve(e, n, n->out_info, tsr__eerr(e));
        } else {
            rc = n->cls->infer(n, in, n->out_info, tsr__eerr(e));
        }
        if (rc)
            return rc;
        /* Every image the engine would hold (sources and intermediates alike) is bounded,
         * before any allocation: a 16x16 image resized to 20000x20000 is refused here. */
        for (int o = 0; o < n->cls->n_outputs && !(n->cls->flags & TSR_NODE_VALUE); o++) {
            if (n->cls->outputs[o].type != TSR_PORT_IMAGE)
                continue;
            uint64_t px = (uint64_t)n->out_info[o].width * (uint64_t)n->out_info[o].height;
            if (px > e->max_pixels) {
                tsr__node_error(tsr__eerr(e), n, -1,
                                "%s of %dx%d = %llu pixels exceeds the limit of %llu "
                                "pixels (set TSR_MAX_PIXELS to raise it)",
                                n->cls->flags & TSR_NODE_SOURCE ? "image" : "an output",
                                n->out_info[o].width, n->out_info[o].height, (unsigned long long)px,
                                (unsigned long long)e->max_pixels);
                return TSR_ERR_LIMIT;
            }
        }
    }
    tsr_status rc = check_paths(g, tsr__eerr(e));
    if (rc)
        return rc;
    g->inferred = 1;
    g->inferred_by = e;
    g->pending_loads = tsr__model_loads_here() - loads0;
    return TSR_OK;
}

/* ---- the graph: stages of tiles ------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A device buffer (OpenCL engine) or a host buffer (reference engine) holding one rectangle. */
typedef struct tbuf {
    cl_mem mem;
    float *host;
} tbuf;

typedef struct run_state {
    tsr_engine *e;
    tsr_graph *g;
    tsr__plan plan;
    tsr__tile tile;
    tsr_image **img; /* per node: materialized image on the host */
    int *users;      /* per node: stages and sinks still to read img[] */
    tbuf *out;       /* per node: its output for the current tile */
    tbuf *up;        /* [node * TSR_MAX_PORTS + port]: uploaded input for the current tile */
    tsr_exec *nex; /* per node: its context (RUN buffers, prepare()'s state) while its stage runs */
    tsr_port_info *ins;      /* [node * TSR_MAX_PORTS + port]: the node's input values */
    unsigned char *prepared; /* per node: prepare() succeeded, release() is due */
    const tsr_run_options *opt;
    tsr_job *job;
    tsr__ctx *ctx;
    tsr__err *err;
    double t0;
    int64_t tiles_done, tiles_total, downgrades;
    int node_index;
    int uploads0; /* the engine's upload counter before the run */
    /* progress of the step running now (a source, a sink or a stage) */
    const tsr_node *step;      /* the node the events name (a stage's root) */
    double step_t0, step_last; /* its start, and the last node-progress event */
    uint64_t *key;             /* per node: result-cache key */
    unsigned char *needed;     /* per node: runs (or is reused) in this job */
    unsigned char *reused;     /* per node: its output came from the result cache */
    int nodes_run, nodes_reused;
    const tsr__stage *cur_stage; /* for the stage event */
    size_t peak;                 /* the job's device peak over the steps done */
} run_state;

/* ---- events ------------------------------------------------------------------------------- */

/* Fill the JSON of a node or stage event from its fields and hand it to the callback (the job's
 * own events, chain-start, execution-error and finish, are written by engine/job.c). */
static void emit_ev(run_state *rs, tsr_event *ev)
{
    if (!rs->opt || !rs->opt->event)
        return;
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    tsr__json_kstr(&j, "event", ev->name);
    ev->job = rs->job;
    ev->elapsed_s = now_s() - rs->t0;
    if (ev->node_count == 0)
        ev->node_count = rs->g->n_nodes;
    switch (ev->type) {
    case TSR_EV_NODE_START:
        tsr__json_kstr(&j, "nodeId", ev->node);
        tsr__json_kstr(&j, "schemaId", ev->node_type);
        tsr__json_kint(&j, "index", ev->node_index);
        tsr__json_kint(&j, "nodeCount", ev->node_count);
        break;
    case TSR_EV_NODE_PROGRESS:
        tsr__json_kstr(&j, "nodeId", ev->node);
        tsr__json_knum(&j, "progress", ev->progress);
        tsr__json_kint(&j, "index", ev->index);
        tsr__json_kint(&j, "total", ev->total);
        if (ev->eta_s >= 0)
            tsr__json_knum(&j, "eta", ev->eta_s);
        else
            tsr__json_kstr(&j, "eta", NULL);
        break;
    case TSR_EV_NODE_FINISH:
        tsr__json_kstr(&j, "nodeId", ev->node);
        tsr__json_knum(&j, "executionTime", ev->seconds);
        tsr__json_kuint(&j, "peakDeviceBytes", ev->peak_device_bytes);
        break;
    case TSR_EV_WARNING:
        tsr__json_kstr(&j, "nodeId", ev->node);
        tsr__json_kstr(&j, "schemaId", ev->node_type);
        tsr__json_kstr(&j, "message", ev->message);
        break;
    case TSR_EV_STAGE: {
        const tsr__stage *st = rs->cur_stage;
        tsr__json_kstr(&j, "root", ev->node);
        tsr__json_kint(&j, "tile_width", st->tile_w);
        tsr__json_kint(&j, "tile_height", st->tile_h);
        tsr__json_kint(&j, "tiles", st->tiles);
        tsr__json_kuint(&j, "estimate_bytes", st->estimate);
        tsr__json_key(&j, "nodes");
        tsr__json_arr(&j);
        for (int i = 0; i < st->n_nodes; i++)
            tsr__json_str(&j, rs->g->nodes[st->nodes[i]].id);
        tsr__json_end(&j);
        break;
    }
    default: break;
    }
    tsr__json_end(&j);
    ev->json = tsr__json_text(&j);
    rs->opt->event(rs->opt->user, ev);
    tsr__json_free(&j);
}

static void emit_json(run_state *rs, tsr_event_type type, const char *name, const char *json)
{
    if (!rs->opt || !rs->opt->event)
        return;
    tsr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.name = name;
    ev.json = json;
    ev.job = rs->job;
    ev.node_index = -1;
    ev.node_count = rs->g->n_nodes;
    ev.elapsed_s = now_s() - rs->t0;
    rs->opt->event(rs->opt->user, &ev);
}

static void node_event(run_state *rs, tsr_event_type type, const char *name, const tsr_node *n)
{
    tsr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.name = name;
    ev.node = n->id;
    ev.node_type = n->cls->name;
    ev.node_index = rs->node_index;
    if (type == TSR_EV_NODE_FINISH) {
        ev.seconds = now_s() - rs->step_t0;
        ev.peak_device_bytes = __atomic_load_n(&rs->ctx->peak, __ATOMIC_RELAXED);
    }
    emit_ev(rs, &ev);
}

static void step_begin(run_state *rs, const tsr_node *n)
{
    rs->step = n;
    rs->step_t0 = now_s();
    rs->step_last = 0;
    size_t p = __atomic_load_n(&rs->ctx->peak, __ATOMIC_RELAXED);
    rs->peak = p > rs->peak ? p : rs->peak;
    __atomic_store_n(&rs->ctx->peak, __atomic_load_n(&rs->ctx->in_use, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    node_event(rs, TSR_EV_NODE_START, "node-start", n);
}

/* node-progress for the running step: fraction done, at most every 50 ms. */
static void step_progress(run_state *rs, int64_t index, int64_t total, double fraction)
{
    double t = now_s();
    if (!rs->step || (rs->step_last > 0 && t - rs->step_last < 0.05))
        return;
    rs->step_last = t;
    tsr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = TSR_EV_NODE_PROGRESS;
    ev.name = "node-progress";
    ev.node = rs->step->id;
    ev.node_type = rs->step->cls->name;
    ev.node_index = rs->node_index;
    ev.index = index;
    ev.total = total;
    ev.progress = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    double spent = t - rs->step_t0;
    ev.eta_s = ev.progress > 0.001 ? spent / ev.progress * (1 - ev.progress) : -1;
    emit_ev(rs, &ev);
}

/* tsr__exec_progress from inside a step (decoders, encoders): units of the current tile. */
static void ctx_progress(tsr__ctx *c, const tsr_node *n, int64_t done, int64_t total)
{
    run_state *rs = c->run;
    if (!rs || total <= 0)
        return;
    double inner = (double)done / (double)total;
    if (rs->tiles_total > 0)
        step_progress(rs, rs->tiles_done, rs->tiles_total,
                      ((double)rs->tiles_done + inner) / (double)rs->tiles_total);
    else
        step_progress(rs, done, total, inner);
}

static void ctx_warn(tsr__ctx *c, const tsr_node *n, const char *msg)
{
    run_state *rs = c->run;
    if (!rs)
        return;
    tsr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = TSR_EV_WARNING;
    ev.name = "warning";
    ev.node = n->id;
    ev.node_type = n->cls->name;
    ev.node_index = -1;
    ev.message = msg;
    emit_ev(rs, &ev);
}

static void tbuf_release(run_state *rs, tbuf *b)
{
    if (b->mem)
        tsr__pool_release(rs->e->pool, b->mem);
    free(b->host);
    b->mem = NULL;
    b->host = NULL;
}

/* `at_least`: the size every tile of the stage asks for, so that tiles reuse each other's
 * buffers (see grid_estimate). */
static tsr_status tbuf_alloc(tsr_exec *ex, tbuf *b, tsr_rect r, int channels, size_t at_least)
{
    size_t bytes = tsr__image_bytes(r.w, r.h, channels);
    if (bytes && bytes < at_least)
        bytes = at_least;
    if (!bytes)
        return tsr__seterr(ex->err, TSR_ERR_LIMIT, "node '%s': a %dx%d buffer is too large",
                           ex->node->id, r.w, r.h);
    if (ex->cl)
        return tsr__exec_alloc(ex, bytes, &b->mem);
    if (!(b->host = malloc(bytes)))
        return tsr__seterr(ex->err, TSR_ERR_NOMEM, "node '%s': out of host memory (%zu bytes)",
                           ex->node->id, bytes);
    return TSR_OK;
}

/* Rows per staging chunk: the staging pool's cap bounds pinned memory, a quarter per chunk. */
static int chunk_rows(run_state *rs, int w)
{
    size_t chunk = tsr__pool_cap(rs->e->staging) / 4, row = (size_t)w * sizeof(float);
    size_t rows = chunk / row;
    return rows < 1 ? 1 : rows > (size_t)INT32_MAX ? INT32_MAX : (int)rows;
}

/* Move rectangle r of host image img to or from device buffer m through pinned staging. */
static tsr_status transfer_(tsr_exec *ex, run_state *rs, tsr_image *img, tsr_rect r, cl_mem m,
                            int to_device);

static tsr_status transfer(tsr_exec *ex, run_state *rs, tsr_image *img, tsr_rect r, cl_mem m,
                           int to_device)
{
    if (!tsr__prof_on())
        return transfer_(ex, rs, img, r, m, to_device);
    double t0 = now_s();
    tsr_status rc = transfer_(ex, rs, img, r, m, to_device);
    tsr__prof_add(to_device ? "transfer_upload" : "transfer_download", now_s() - t0);
    return rc;
}

static tsr_status transfer_(tsr_exec *ex, run_state *rs, tsr_image *img, tsr_rect r, cl_mem m,
                            int to_device)
{
    int rows = chunk_rows(rs, r.w);
    if (rows > r.h)
        rows = r.h;
    size_t row_bytes = (size_t)r.w * sizeof(float), plane = (size_t)img->width * img->height;
    cl_mem st = NULL;
    ex->kernel = to_device ? "upload" : "download";
    if (rs->e->host_device && r.w == img->width) {
        /* A CPU device's buffers are host memory, so staging only adds a copy; and full-width
         * rows are contiguous in the image: each chunk is one blocking read or write straight
         * between the image and the buffer (a cancel is still seen between chunks). */
        for (int c = 0; c < img->channels; c++)
            for (int y = 0; y < r.h; y += rows) {
                if (tsr__exec_cancelled(ex))
                    return tsr__seterr(ex->err, TSR_ERR_CANCELLED, "cancelled in node '%s' (%s)",
                                       ex->node->id, to_device ? "upload" : "download");
                int n = rows < r.h - y ? rows : r.h - y;
                size_t bytes = row_bytes * (size_t)n;
                size_t off = ((size_t)c * r.h + (size_t)y) * row_bytes;
                float *h = img->data + c * plane + (size_t)(r.y + y) * img->width;
                cl_int err =
                    to_device
                        ? clEnqueueWriteBuffer(ex->queue, m, CL_TRUE, off, bytes, h, 0, NULL, NULL)
                        : clEnqueueReadBuffer(ex->queue, m, CL_TRUE, off, bytes, h, 0, NULL, NULL);
                if (err != CL_SUCCESS)
                    return tsr__exec_cl_error(
                        ex, err, to_device ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer");
            }
        return TSR_OK;
    }
    tsr_status rc = tsr__pool_alloc(rs->e->staging, row_bytes * (size_t)rows, &st, ex->err);
    if (rc) {
        tsr__err_prefix(ex->err, "node '%s': ", ex->node->id);
        return rc;
    }
    cl_command_queue q = ex->queue;
    for (int c = 0; c < img->channels && !rc; c++)
        for (int y = 0; y < r.h && !rc; y += rows) {
            if (tsr__exec_cancelled(ex)) { /* a chunk is at most 16 MiB: a few ms */
                rc = tsr__seterr(ex->err, TSR_ERR_CANCELLED, "cancelled in node '%s' (%s)",
                                 ex->node->id, to_device ? "upload" : "download");
                break;
            }
            int n = rows < r.h - y ? rows : r.h - y;
            size_t bytes = row_bytes * (size_t)n;
            size_t off = ((size_t)c * r.h + (size_t)y) * row_bytes;
            cl_int err = CL_SUCCESS;
            if (!to_device) {
                err = clEnqueueCopyBuffer(q, m, st, off, 0, bytes, 0, NULL, NULL);
                if (err != CL_SUCCESS) {
                    rc = tsr__exec_cl_error(ex, err, "clEnqueueCopyBuffer");
                    break;
                }
            }
            float *map = clEnqueueMapBuffer(
                q, st, CL_TRUE, to_device ? CL_MAP_WRITE_INVALIDATE_REGION : CL_MAP_READ, 0, bytes,
                0, NULL, NULL, &err);
            if (err != CL_SUCCESS) {
                rc = tsr__exec_cl_error(ex, err, "clEnqueueMapBuffer");
                break;
            }
            for (int j = 0; j < n; j++) {
                float *h = img->data + c * plane + (size_t)(r.y + y + j) * img->width + r.x;
                if (to_device)
                    memcpy(map + (size_t)j * r.w, h, row_bytes);
                else
                    memcpy(h, map + (size_t)j * r.w, row_bytes);
            }
            err = clEnqueueUnmapMemObject(q, st, map, 0, NULL, NULL);
            if (err != CL_SUCCESS) {
                rc = tsr__exec_cl_error(ex, err, "clEnqueueUnmapMemObject");
                break;
            }
            if (to_device) {
                err = clEnqueueCopyBuffer(q, st, m, 0, off, bytes, 0, NULL, NULL);
                if (err != CL_SUCCESS)
                    rc = tsr__exec_cl_error(ex, err, "clEnqueueCopyBuffer");
            }
        }
    /* The staging block goes back only once the queue no longer reads it (after a cancel or
     * an error too). */
    cl_int err = clFinish(q);
    if (!rc && err != CL_SUCCESS)
        rc = tsr__exec_cl_error(ex, err, "clFinish");
    tsr__pool_release(rs->e->staging, st);
    return rc;
}

/* Bring rectangle r of materialized node `src` into b (upload, or a host copy). */
static tsr_status fetch(tsr_exec *ex, run_state *rs, int src, tsr_rect r, tbuf *b, size_t at_least)
{
    tsr_image *img = rs->img[src];
    tsr_status rc = tbuf_alloc(ex, b, r, img->channels, at_least);
    if (rc)
        return rc;
    if (!ex->cl) {
        pack(img, r, b->host);
        return TSR_OK;
    }
    return transfer(ex, rs, img, r, b->mem, 1);
}

static int is_oom(tsr_status rc)
{
    return rc == TSR_ERR_DEVICE_NOMEM;
}

/* Before a node's first tile (inside that tile's attempt, so that out of memory here is
 * retried and downgraded like any other allocation of the tile): its context, RUN buffers (the
 * stage's grid maxima) and prepare(). t holds the tile's plans. */
static tsr_status node_prepare(run_state *rs, const tsr__stage *s, int v)
{
    tsr_graph *g = rs->g;
    tsr_node *n = &g->nodes[v];
    tsr_exec *nx = &rs->nex[v];
    tsr__exec_init_ctx(nx, rs->ctx, n);
    tsr_port_info *ins = rs->ins + (size_t)v * TSR_MAX_PORTS;
    for (int i = 0; i < n->cls->n_inputs; i++)
        ins[i] = g->nodes[n->inputs[i].node].out_info[n->inputs[i].port];
    nx->in_info = ins;
    for (int i = 0; i < n->cls->n_inputs; i++)
        if (tsr__port_is_image(n->cls, i) && rs->plan.host[n->inputs[i].node])
            nx->in_images[i] = rs->img[n->inputs[i].node];
    nx->tile_w = s->tile_w;
    nx->tile_h = s->tile_h;
    tsr_status rc = TSR_OK;
    if (rs->e->cl)
        rc = bufs_alloc(nx, &rs->tile.plan[v], TSR_BUF_RUN,
                        s->bytes + (size_t)rs->plan.pos[v] * TSR_SLOTS + TSR_SLOT_BUF(0));
    if (!rc && n->cls->prepare)
        rc = n->cls->prepare(nx, n, &nx->state);
    if (rc) {
        for (int i = 0; i < TSR_MAX_BUFS; i++)
            if (nx->bufs[i]) {
                tsr__pool_release(rs->e->pool, nx->bufs[i]);
                nx->bufs[i] = NULL;
            }
        return rc;
    }
    rs->prepared[v] = 1;
    return TSR_OK;
}

/* One tile of a stage: every node of the stage on the rectangles the root's tile needs, the
 * root's output to its host image. Everything the tile allocated is released, on success and
 * on failure. */
static tsr_status run_tile(run_state *rs, const tsr__stage *s, tsr_rect r)
{
    tsr_engine *e = rs->e;
    tsr_graph *g = rs->g;
    tsr__tile *t = &rs->tile;
    tsr__stage_rects(g, &rs->plan, s, r, t);
    tsr_status rc = TSR_OK;
    tsr_exec ex;
    for (int k = 0; k < s->n_nodes && !rc; k++) {
        int v = s->nodes[k];
        tsr_node *n = &g->nodes[v];
        tsr_exec *nx = &rs->nex[v];
        if (!rs->prepared[v] && (rc = node_prepare(rs, s, v)))
            break;
        tsr_region in[TSR_MAX_PORTS];
        memset(in, 0, sizeof in);
        for (int i = 0; i < n->cls->n_inputs && !rc; i++) {
            if (!tsr__port_is_image(n->cls, i))
                continue;
            int src = n->inputs[i].node;
            const tsr_port_info *si = &g->nodes[src].out_info[n->inputs[i].port];
            tbuf *b;
            tsr_rect rr;
            if (rs->plan.host[src]) {
                b = &rs->up[v * TSR_MAX_PORTS + i];
                rr = t->up[v * TSR_MAX_PORTS + i];
                size_t want = e->cl ? s->bytes[(size_t)rs->plan.pos[v] * TSR_SLOTS + 1 + i] : 0;
                rc = fetch(nx, rs, src, rr, b, want);
            } else {
                b = &rs->out[src];
                rr = t->need[src];
            }
            in[i] = (tsr_region){rr, si->channels, si->width, si->height, b->mem, b->host};
        }
        const tsr_port_info *oi = &n->out_info[0];
        if (!rc)
            rc = tbuf_alloc(nx, &rs->out[v], t->need[v], oi->channels,
                            e->cl ? s->bytes[(size_t)rs->plan.pos[v] * TSR_SLOTS] : 0);
        if (!rc) {
            tsr_region outr = {t->need[v], oi->channels,   oi->width,
                               oi->height, rs->out[v].mem, rs->out[v].host};
            if (e->cl) /* the sizes the planner counted: the stage's grid maxima */
                rc = bufs_alloc(nx, &t->plan[v], TSR_BUF_TILE,
                                s->bytes + (size_t)rs->plan.pos[v] * TSR_SLOTS + TSR_SLOT_BUF(0));
            if (!rc)
                rc = e->cl ? n->cls->run_cl(nx, n, in, &outr) : n->cls->run_ref(nx, n, in, &outr);
            if (!rc && e->cl)
                rc = finish(nx);
            if (e->cl)
                bufs_release(nx, &t->plan[v], TSR_BUF_TILE);
        }
        for (int i = 0; i < n->cls->n_inputs; i++) {
            if (!tsr__port_is_image(n->cls, i))
                continue;
            int src = n->inputs[i].node;
            tbuf_release(rs, rs->plan.host[src] ? &rs->up[v * TSR_MAX_PORTS + i] : &rs->out[src]);
        }
    }
    if (!rc) {
        tbuf *b = &rs->out[s->root];
        tsr__exec_init_ctx(&ex, rs->ctx, &g->nodes[s->root]);
        if (e->cl)
            rc = transfer(&ex, rs, rs->img[s->root], r, b->mem, 0);
        else
            unpack(rs->img[s->root], r, b->host);
    }
    for (int k = 0; k < s->n_nodes; k++) /* after a failure, whatever is still held */
        tbuf_release(rs, &rs->out[s->nodes[k]]);
    return rc;
}

/* After a stage (or its failure): release() and the RUN buffers of every node it prepared. */
static void stage_release(run_state *rs, const tsr__stage *s)
{
    for (int k = 0; k < s->n_nodes; k++) {
        int v = s->nodes[k];
        tsr_node *n = &rs->g->nodes[v];
        tsr_exec *nx = &rs->nex[v];
        if (rs->prepared[v] && n->cls->release)
            n->cls->release(nx, n, nx->state);
        rs->prepared[v] = 0;
        nx->state = NULL;
        for (int i = 0; i < TSR_MAX_BUFS; i++)
            if (nx->bufs[i]) {
                tsr__pool_release(rs->e->pool, nx->bufs[i]);
                nx->bufs[i] = NULL;
            }
    }
}

static tsr_status progress(run_state *rs, const tsr_node *n, int64_t done, int64_t total)
{
    if (tsr__ctx_cancelled(rs->ctx))
        return tsr__seterr(rs->err, TSR_ERR_CANCELLED, "cancelled at node '%s'", n->id);
    if (total > 0)
        step_progress(rs, done, total, (double)done / (double)total);
    return TSR_OK;
}

/* Tiles of `area` in bands of th rows and tiles of tw columns. Out of memory on a tile: the tile's
 * buffers are already back, the cache is trimmed, the tile is tried once more; a second failure
 * halves the tile for the rest of the stage (down to TSR_MIN_TILE / 2). */
static tsr_status run_area(run_state *rs, tsr__stage *s, tsr_rect area, int *tw, int *th)
{
    const tsr_node *root = &rs->g->nodes[s->root];
    for (int y = area.y; y < area.y + area.h;) {
        int bh = *th < area.y + area.h - y ? *th : area.y + area.h - y;
        for (int x = area.x; x < area.x + area.w;) {
            int bw = *tw < area.x + area.w - x ? *tw : area.x + area.w - x;
            tsr_rect r = {x, y, bw, bh};
            tsr_status rc = run_tile(rs, s, r);
            if (is_oom(rc)) {
                tsr_engine_trim(rs->e);
                rc = run_tile(rs, s, r);
            }
            if (is_oom(rc)) {
                /* A side is halved only while the half stays >= TSR_MIN_TILE / 2. */
                int nw = (*tw + 1) / 2 >= TSR_MIN_TILE / 2 ? (*tw + 1) / 2 : *tw;
                int nh = (*th + 1) / 2 >= TSR_MIN_TILE / 2 ? (*th + 1) / 2 : *th;
                if (nw == *tw && nh == *th) {
                    tsr__err_prefix(rs->err,
                                    "stage '%s': out of device memory even with %dx%d tiles "
                                    "(budget %zu bytes): ",
                                    root->id, *tw, *th, rs->plan.budget);
                    return rc;
                }
                rs->downgrades++;
                if (rs->opt && rs->opt->event) {
                    tsr__json j;
                    tsr__json_init(&j);
                    tsr__json_obj(&j);
                    tsr__json_kstr(&j, "event", "downgrade");
                    tsr__json_kstr(&j, "stage", root->id);
                    tsr__json_kint(&j, "x", x);
                    tsr__json_kint(&j, "y", y);
                    tsr__json_key(&j, "from");
                    tsr__json_arr(&j);
                    tsr__json_int(&j, *tw);
                    tsr__json_int(&j, *th);
                    tsr__json_end(&j);
                    tsr__json_key(&j, "to");
                    tsr__json_arr(&j);
                    tsr__json_int(&j, nw);
                    tsr__json_int(&j, nh);
                    tsr__json_end(&j);
                    tsr__json_end(&j);
                    emit_json(rs, TSR_EV_DOWNGRADE, "downgrade", tsr__json_text(&j));
                    tsr__json_free(&j);
                }
                *tw = nw;
                *th = nh;
                /* The rest of this band with the smaller tiles, then the bands below. */
                rc = run_area(rs, s, (tsr_rect){x, y, area.x + area.w - x, bh}, tw, th);
                if (rc)
                    return rc;
                break;
            }
            if (rc)
                return rc;
            rs->tiles_done++;
            if (rs->tiles_total < rs->tiles_done) /* after a downgrade the plan's count is low */
                rs->tiles_total = rs->tiles_done + 1;
            if ((rc = progress(rs, root, rs->tiles_done, rs->tiles_total)))
                return rc;
            x += bw;
        }
        y += bh;
    }
    return TSR_OK;
}

static tsr_status run_stage(run_state *rs, tsr__stage *s)
{
    const tsr_node *root = &rs->g->nodes[s->root];
    const tsr_port_info *o = &root->out_info[0];
    tsr_status rc = tsr_image_new(o->width, o->height, o->channels, &rs->img[s->root]);
    if (rc)
        return tsr__seterr(rs->err, rc, "node '%s': out of host memory for a %dx%d image", root->id,
                           o->width, o->height);
    rs->img[s->root]->bit_depth = o->bit_depth;
    {
        tsr_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = TSR_EV_STAGE;
        ev.name = "stage";
        ev.node = root->id;
        ev.node_type = root->cls->name;
        ev.node_index = rs->node_index;
        ev.total = s->tiles;
        rs->cur_stage = s;
        emit_ev(rs, &ev);
    }
    rs->tiles_done = 0;
    rs->tiles_total = s->tiles;
    int tw = s->tile_w, th = s->tile_h;
    double t0 = now_s();
    rc = run_area(rs, s, (tsr_rect){0, 0, o->width, o->height}, &tw, &th);
    stage_release(rs, s);
    s->seconds = now_s() - t0;
    s->tiles_run = rs->tiles_done;
    s->tile_w = tw; /* what the stage ended with, for the statistics */
    s->tile_h = th;
    return rc;
}

static void release_inputs(run_state *rs, const tsr_node *n)
{
    for (int i = 0; i < n->cls->n_inputs; i++) {
        if (!tsr__port_is_image(n->cls, i))
            continue;
        int src = n->inputs[i].node;
        if (rs->plan.host[src] && --rs->users[src] == 0) {
            tsr_image_free(rs->img[src]);
            rs->img[src] = NULL;
        }
    }
}

static void write_stats(run_state *rs, tsr_status rc, double total, int builds0, int cached0)
{
    tsr_engine *e = rs->e;
    tsr_job *j = rs->job;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return;
    int compiled = 0, from_cache = 0;
    if (e->cl) {
        pthread_mutex_lock(e->cl->mu);
        compiled = e->cl->builds_compiled - builds0;
        from_cache = e->cl->builds_cached - cached0;
        pthread_mutex_unlock(e->cl->mu);
    }
    int uploaded = tsr__model_uploads_here() - rs->uploads0;
    fprintf(f, "run.status: %s\nrun.seconds: %.6f\nrun.nodes: %d\n", rc ? tsr_status_str(rc) : "ok",
            total, rs->g->n_nodes);
    fprintf(f, "run.nodes_run: %d\nrun.nodes_reused: %d\n", rs->nodes_run, rs->nodes_reused);
    if (e->cl)
        fprintf(f, "kernels.compiled: %d\nkernels.from_cache: %d\n", compiled, from_cache);
    /* Models read from disk for this graph (at its inference, which may precede the run). */
    fprintf(f, "models.loaded: %d\nmodels.uploaded: %d\n", rs->g->pending_loads, uploaded);
    fprintf(f, "models.resident_bytes: %zu\n", tsr__models_resident(e));
    char pool[1024];
    if (e->pool) {
        tsr__pool_stats(e->pool, pool, sizeof pool);
        fputs(pool, f);
        tsr__pool_stats(e->staging, pool, sizeof pool);
        fputs(pool, f);
    }
    int64_t tiles = 0, tiles_run = 0;
    const tsr__stage *big = NULL;
    for (int i = 0; i < rs->plan.n_stages; i++) {
        const tsr__stage *s = &rs->plan.stages[i];
        tiles += s->tiles;
        tiles_run += s->tiles_run;
        if (!big || s->estimate > big->estimate)
            big = s;
    }
    fprintf(f, "plan.budget_bytes: %zu\nplan.stages: %d\nplan.tiles: %lld\n", rs->plan.budget,
            rs->plan.n_stages, (long long)tiles);
    fprintf(f, "plan.tile_width: %d\nplan.tile_height: %d\nplan.estimate_bytes: %zu\n",
            big ? big->tile_w : 0, big ? big->tile_h : 0, big ? big->estimate : 0);
    fprintf(f, "plan.downgrades: %lld\nrun.tiles: %lld\n", (long long)rs->downgrades,
            (long long)tiles_run);
    fprintf(f, "job.reserved_bytes: %llu\njob.queued_seconds: %.6f\njob.peak_device_bytes: %llu\n",
            (unsigned long long)j->stats.reserved_bytes, j->stats.queued_seconds,
            (unsigned long long)j->stats.peak_device_bytes);
    fprintf(f, "job.reserved_host_bytes: %llu\n", (unsigned long long)j->stats.reserved_host_bytes);
    fprintf(f, "host.estimate_bytes: %zu\nhost.images_bytes: %zu\nhost.budget_bytes: %zu\n",
            rs->plan.host_need, rs->plan.host_peak, (size_t)e->mem_limit);
    for (int i = 0; i < rs->plan.n_stages; i++) {
        const tsr__stage *s = &rs->plan.stages[i];
        const char *id = rs->g->nodes[s->root].id;
        fprintf(f,
                "stage.%s.tiles: %lld\nstage.%s.tile_width: %d\nstage.%s.tile_height: %d\n"
                "stage.%s.estimate_bytes: %zu\nstage.%s.seconds: %.6f\n",
                id, (long long)s->tiles, id, s->tile_w, id, s->tile_h, id, s->estimate, id,
                s->seconds);
    }
    j->stats.seconds = total;
    j->stats.nodes = rs->g->n_nodes;
    j->stats.nodes_run = rs->nodes_run;
    j->stats.nodes_reused = rs->nodes_reused;
    j->stats.tiles = tiles_run;
    j->stats.downgrades = rs->downgrades;
    j->stats.kernels_compiled = compiled;
    j->stats.kernels_from_cache = from_cache;
    j->stats.models_loaded = rs->g->pending_loads;
    j->stats.models_uploaded = uploaded;
    j->stats.files_written = j->n_files;
    if (fclose(f) == 0) {
        free(j->stats_text);
        j->stats_text = buf;
    } else {
        free(buf);
    }
}

static void run_state_free(run_state *rs)
{
    if (rs->img)
        for (int i = 0; i < rs->g->n_nodes; i++)
            tsr_image_free(rs->img[i]);
    if (rs->out)
        for (int i = 0; i < rs->g->n_nodes; i++)
            tbuf_release(rs, &rs->out[i]);
    if (rs->up)
        for (int i = 0; i < rs->g->n_nodes * TSR_MAX_PORTS; i++)
            tbuf_release(rs, &rs->up[i]);
    if (rs->nex && rs->prepared)
        for (int i = 0; i < rs->plan.n_stages; i++)
            stage_release(rs, &rs->plan.stages[i]);
    free(rs->nex);
    free(rs->ins);
    free(rs->prepared);
    free(rs->img);
    free(rs->users);
    free(rs->out);
    free(rs->up);
    free(rs->key);
    free(rs->needed);
    free(rs->reused);
    tsr__tile_free(&rs->tile);
    tsr__plan_clear(&rs->plan);
}

static tsr_status run_prepare(tsr__ctx *c, tsr_graph *g, const tsr_run_options *opt, run_state *rs)
{
    tsr_engine *e = c->e;
    memset(rs, 0, sizeof *rs);
    rs->e = e;
    rs->g = g;
    rs->opt = opt;
    rs->ctx = c;
    rs->err = c->err;
    tsr_status rc = g->inferred && g->inferred_by == e ? TSR_OK : tsr_graph_infer(e, g);
    if (rc)
        return rc;
    tsr__err_clear(rs->err);
    size_t n = (size_t)g->n_nodes;
    rs->img = calloc(n, sizeof *rs->img);
    rs->users = calloc(n, sizeof *rs->users);
    rs->out = calloc(n, sizeof *rs->out);
    rs->up = calloc(n * TSR_MAX_PORTS, sizeof *rs->up);
    rs->nex = calloc(n, sizeof *rs->nex);
    rs->ins = calloc(n * TSR_MAX_PORTS, sizeof *rs->ins);
    rs->prepared = calloc(n, 1);
    rs->key = calloc(n, sizeof *rs->key);
    rs->needed = calloc(n, 1);
    rs->reused = calloc(n, 1);
    if (!rs->img || !rs->users || !rs->out || !rs->up || !rs->nex || !rs->ins || !rs->prepared ||
        !rs->key || !rs->needed || !rs->reused || tsr__tile_alloc(g, &rs->tile))
        return tsr__seterr(rs->err, TSR_ERR_NOMEM, "out of memory preparing the run");
    return tsr__plan_make(e, g, opt ? opt->tile_width : 0, opt ? opt->tile_height : 0, &rs->plan);
}

tsr_status tsr_graph_plan_text(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt, char **out)
{
    run_state rs;
    *out = NULL;
    e->ctx0.err = tsr__eerr(e);
    tsr_status rc = run_prepare(&e->ctx0, g, opt, &rs);
    if (!rc && !(*out = tsr__plan_describe(g, &rs.plan, 0)))
        rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory");
    run_state_free(&rs);
    return rc;
}

/* ---- result-cache keys ----------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t mix_u64(uint64_t h, uint64_t v)
{
    return mix(h, &v, sizeof v);
}

/* Pixels of an image bound by the caller: hashed 8 bytes at a time (a few GB/s). */
static uint64_t image_hash(const tsr_image *img)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = mix_u64(h, (uint64_t)img->width << 32 | (uint32_t)img->height);
    h = mix_u64(h, (uint64_t)img->channels << 8 | (uint64_t)img->bit_depth);
    size_t n = (size_t)img->width * img->height * img->channels, i = 0;
    const uint32_t *w = (const uint32_t *)img->data;
    for (; i + 1 < n; i += 2) {
        uint64_t v = (uint64_t)w[i] << 32 | w[i + 1];
        h = (h ^ v) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    if (i < n)
        h = mix_u64(h, w[i]);
    return h;
}

/* A node's key: its type, params, inputs' keys, the identity of any file a string param names
 * (device, inode, size, mtime), the model its value input carries, and bound pixels. */
static void compute_keys(run_state *rs)
{
    tsr_graph *g = rs->g;
    for (int k = 0; k < g->n_nodes; k++) {
        int v = g->order[k];
        const tsr_node *n = &g->nodes[v];
        uint64_t h = mix(0xcbf29ce484222325ull, n->cls->name, strlen(n->cls->name));
        for (int i = 0; i < n->cls->n_params; i++) {
            const tsr_value *pv = &n->params[i];
            h = mix_u64(h, (uint64_t)i << 1 | (uint64_t)(pv->set != 0));
            h = mix(h, &pv->num, sizeof pv->num);
            if (pv->str) {
                h = mix(h, pv->str, strlen(pv->str) + 1);
                struct stat st;
                if (n->cls->params[i].type == TSR_PARAM_STRING && stat(pv->str, &st) == 0) {
                    h = mix_u64(h, (uint64_t)st.st_dev);
                    h = mix_u64(h, (uint64_t)st.st_ino);
                    h = mix_u64(h, (uint64_t)st.st_size);
                    h = mix_u64(h, (uint64_t)st.st_mtim.tv_sec);
                    h = mix_u64(h, (uint64_t)st.st_mtim.tv_nsec);
                }
            }
        }
        for (int i = 0; i < n->cls->n_inputs; i++) {
            const tsr_input_ref *r = &n->inputs[i];
            h = mix_u64(h, r->connected ? rs->key[r->node] + (uint64_t)r->port : 0);
        }
        if (n->out_info[0].type == TSR_PORT_MODEL && n->out_info[0].model) {
            const tsr__model *m = n->out_info[0].model;
            h = mix(h, m->key, strlen(m->key));
            h = mix_u64(h, (uint64_t)m->stamp);
        }
        if (n->bound)
            h = mix_u64(h, image_hash(n->bound));
        if (n->px)
            h = mix_u64(h, tsr__pixels_hash(&n->px->px));
        rs->key[v] = h ? h : 1;
    }
}

/* Which nodes this job runs: every sink and kept node, and what they need, except the inputs of
 * a materialized output found in the result cache. */
static void mark_needed(run_state *rs, int use_cache)
{
    tsr_graph *g = rs->g;
    for (int v = 0; v < g->n_nodes; v++)
        rs->needed[v] = (g->nodes[v].cls->flags & TSR_NODE_SINK) || g->nodes[v].keep;
    for (int k = g->n_nodes - 1; k >= 0; k--) {
        int v = g->order[k];
        tsr_node *n = &g->nodes[v];
        if (!rs->needed[v] || (n->cls->flags & TSR_NODE_VALUE))
            continue;
        if (use_cache && rs->plan.host[v]) {
            tsr_image *img = tsr__rcache_get(rs->e, rs->key[v]);
            if (img) {
                rs->img[v] = img;
                rs->reused[v] = 1;
                continue;
            }
        }
        for (int i = 0; i < n->cls->n_inputs; i++)
            if (n->inputs[i].connected)
                rs->needed[n->inputs[i].node] = 1;
    }
}

/* After node v's output is on the host: into the result cache, and kept for the job. */
static tsr_status materialized(run_state *rs, int v, int use_cache)
{
    if (!rs->img[v])
        return TSR_OK;
    if (use_cache && !rs->reused[v])
        tsr__rcache_put(rs->e, rs->key[v], rs->img[v]);
    if (rs->g->nodes[v].keep && !(rs->g->nodes[v].cls->flags & TSR_NODE_SINK))
        return tsr__job_keep(rs->job, v, rs->img[v]);
    return TSR_OK;
}

/* ---- the job's run -------------------------------------------------------------------------- */

static tsr_status run_steps(run_state *rs, int use_cache)
{
    tsr_graph *g = rs->g;
    tsr_status rc = TSR_OK;
    /* Readers of each materialized image: every (node, port) of a stage or sink reading it. */
    for (int v = 0; v < g->n_nodes; v++)
        if (rs->needed[v] && !rs->reused[v])
            for (int i = 0; i < g->nodes[v].cls->n_inputs; i++)
                if (tsr__port_is_image(g->nodes[v].cls, i))
                    rs->users[g->nodes[v].inputs[i].node] +=
                        rs->plan.host[g->nodes[v].inputs[i].node];
    for (int k = 0; k < g->n_nodes && !rc; k++) {
        int v = g->order[k];
        tsr_node *n = &g->nodes[v];
        rs->node_index = k;
        if (!rs->needed[v] || (n->cls->flags & TSR_NODE_VALUE))
            continue;
        if (rs->reused[v]) {
            rs->nodes_reused++;
            step_begin(rs, n);
            node_event(rs, TSR_EV_NODE_FINISH, "node-finish", n);
            rc = materialized(rs, v, 0);
            if (!rc && rs->users[v] == 0) {
                tsr_image_free(rs->img[v]);
                rs->img[v] = NULL;
            }
            continue;
        }
        tsr_exec ex;
        tsr__exec_init_ctx(&ex, rs->ctx, n);
        rs->tiles_done = rs->tiles_total = 0;
        if (n->cls->flags & TSR_NODE_SOURCE) {
            step_begin(rs, n);
            if ((rc = progress(rs, n, 0, 1)))
                break;
            tsr_image *img = NULL;
            if (n->bound) {
                img = tsr_image_ref(n->bound);
            } else if (n->px) { /* the caller's pixels, read now; handed back at once */
                tsr_status r2 = tsr_image_from_pixels(&n->px->px, &img);
                if (r2) {
                    tsr__node_error(rs->err, n, -1, "cannot convert the bound pixels: %s",
                                    tsr_status_str(r2));
                    rc = r2;
                }
                tsr__bound_px_free(n->px);
                n->px = NULL;
            } else
                rc = n->cls->produce(&ex, n, &img);
            if (!rc &&
                (img->width != n->out_info[0].width || img->height != n->out_info[0].height ||
                 img->channels != n->out_info[0].channels))
                rc = tsr__node_error(rs->err, n, -1,
                                     "image changed since validation: now %dx%d, %d channels",
                                     img->width, img->height, img->channels);
            if (rc)
                tsr_image_free(img);
            else
                rs->img[v] = img;
            if (!rc)
                rc = materialized(rs, v, use_cache);
            if (!rc && rs->users[v] == 0) { /* read by nobody */
                tsr_image_free(rs->img[v]);
                rs->img[v] = NULL;
            }
            rs->nodes_run++;
            if (!rc)
                node_event(rs, TSR_EV_NODE_FINISH, "node-finish", n);
        } else if (n->cls->flags & TSR_NODE_SINK) {
            step_begin(rs, n);
            if ((rc = progress(rs, n, 0, 1)))
                break;
            rc = n->cls->consume(&ex, n, rs->img[n->inputs[0].node]);
            if (!rc && n->keep)
                rc = tsr__job_keep(rs->job, v, rs->img[n->inputs[0].node]);
            int path = tsr__param_index(n->cls, "path");
            if (!rc && path >= 0 && n->params[path].str)
                tsr__job_file(rs->job, n->params[path].str);
            release_inputs(rs, n);
            rs->nodes_run++;
            if (!rc)
                node_event(rs, TSR_EV_NODE_FINISH, "node-finish", n);
        } else if (rs->plan.host[v]) {
            tsr__stage *s = &rs->plan.stages[rs->plan.stage_of[v]];
            for (int j = 0; j < s->n_nodes; j++)
                if (s->nodes[j] != v)
                    node_event(rs, TSR_EV_NODE_START, "node-start", &g->nodes[s->nodes[j]]);
            step_begin(rs, n);
            rc = run_stage(rs, s);
            for (int j = 0; j < s->n_nodes; j++)
                release_inputs(rs, &g->nodes[s->nodes[j]]);
            if (!rc)
                rc = materialized(rs, v, use_cache);
            if (!rc && rs->users[v] == 0) {
                tsr_image_free(rs->img[v]);
                rs->img[v] = NULL;
            }
            rs->nodes_run += s->n_nodes;
            for (int j = 0; !rc && j < s->n_nodes; j++)
                node_event(rs, TSR_EV_NODE_FINISH, "node-finish", &g->nodes[s->nodes[j]]);
        }
        if (rc)
            tsr__err_where(rs->err, n->id, NULL, NULL, 0, 0);
    }
    return rc;
}

tsr_status tsr__exec_job(tsr_job *j)
{
    tsr_engine *e = j->e;
    tsr_graph *g = j->g;
    const tsr_run_options *opt = &j->opt;
    run_state rs;
    int uploads0 = tsr__model_uploads_here();
    int builds0 = 0, cached0 = 0;
    if (e->cl) {
        pthread_mutex_lock(e->cl->mu);
        builds0 = e->cl->builds_compiled;
        cached0 = e->cl->builds_cached;
        pthread_mutex_unlock(e->cl->mu);
    }
    double t0 = now_s();
    int use_cache = !opt->no_reuse && !opt->dry_run && tsr__rcache_enabled(e);
    g->split = use_cache;
    tsr_status rc = run_prepare(&j->ctx, g, opt, &rs);
    rs.job = j;
    rs.uploads0 = uploads0;
    rs.t0 = t0;
    j->ctx.run = &rs;
    j->ctx.node_progress = ctx_progress;
    j->ctx.node_warn = ctx_warn;
    size_t reserve = 0, host_reserve = 0;
    int reserved = 0;
    tsr__model **pinned = NULL;
    int n_pinned = 0;
    if (!rc) {
        char *plan = tsr__plan_describe(g, &rs.plan, 1);
        if (plan)
            emit_json(&rs, TSR_EV_PLAN, "plan", plan);
        free(plan);
    }
    if (!rc && opt->dry_run)
        goto done;
    if (!rc && e->cl) {
        /* Pin the models this graph uses, then give back the device memory of unpinned models
         * this graph does not use (below, once the budgets are reserved). */
        pinned = calloc((size_t)g->n_nodes + 1, sizeof *pinned);
        if (!pinned)
            rc = tsr__seterr(rs.err, TSR_ERR_NOMEM, "out of memory");
        for (int v = 0; pinned && v < g->n_nodes; v++)
            if (g->nodes[v].out_info[0].type == TSR_PORT_MODEL && g->nodes[v].out_info[0].model) {
                pinned[n_pinned] = g->nodes[v].out_info[0].model;
                tsr__model_pin(e, pinned[n_pinned++], 1);
            }
        reserve = rs.plan.device_peak;
    }
    if (!rc) {
        /* Reserve the plan's device peak and host estimate under the budgets shared with the
         * engine's other jobs. */
        host_reserve = rs.plan.host_need;
        rc = tsr__budget_acquire(j, reserve, host_reserve, &j->stats.queued_seconds);
        reserved = !rc;
        j->stats.reserved_bytes = reserved ? reserve : 0;
        j->stats.reserved_host_bytes = reserved ? host_reserve : 0;
        if (!rc && e->cl)
            tsr__model_unload_others(e, pinned, n_pinned);
    }
    if (!rc) {
        compute_keys(&rs);
        mark_needed(&rs, use_cache);
        rc = run_steps(&rs, use_cache);
    }
done:;
    double total = now_s() - t0;
    size_t last = __atomic_load_n(&j->ctx.peak, __ATOMIC_RELAXED);
    j->stats.peak_device_bytes = last > rs.peak ? last : rs.peak;
    write_stats(&rs, rc, total, builds0, cached0);
    g->pending_loads = 0;
    run_state_free(&rs); /* device buffers back before the budget is */
    if (reserved)
        tsr__budget_release(j, reserve, host_reserve);
    for (int i = 0; i < n_pinned; i++)
        tsr__model_pin(e, pinned[i], -1);
    free(pinned);
    j->ctx.run = NULL;
    j->ctx.node_progress = NULL;
    j->ctx.node_warn = NULL;
    return rc;
}
