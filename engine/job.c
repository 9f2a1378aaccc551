/* Jobs: one run of a graph each, on a thread of its own (or the caller's, for tsr_graph_run),
 * sharing the engine's device budget, pool, kernels and models.
 *
 * Admission: a job reserves its plan's peak (the largest stage estimate, models included)
 * against the engine's budget and waits while the jobs running hold too much of it; a job that
 * alone fits the budget always starts once the others are done. The pool's hard cap still
 * bounds every byte; the reservation only keeps side-by-side jobs from pushing each other into
 * out-of-memory downgrades.
 *
 * Lanes: each running job borrows a lane (a command queue, its own kernel objects, and the
 * measured kernel throughput for sliced launches) from the engine and gives it back at the
 * end, so that sequential jobs reuse kernels and queues. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- lanes -------------------------------------------------------------------------------- */

static void lane_free(tsr__lane *l)
{
    if (!l)
        return;
    tsr__kcache_free(l->kc);
    tsr__launch_state_free(l->launch);
    if (l->queue)
        clReleaseCommandQueue(l->queue);
    free(l);
}

void tsr__lanes_free(tsr_engine *e)
{
    while (e->lanes) {
        tsr__lane *l = e->lanes;
        e->lanes = l->next;
        lane_free(l);
    }
}

static tsr_status lane_get(tsr_engine *e, tsr__lane **out, tsr__err *err)
{
    *out = NULL;
    if (!e->cl)
        return TSR_OK;
    tsr__engine_lock(e);
    tsr__lane *l = e->lanes;
    if (l)
        e->lanes = l->next;
    tsr__engine_unlock(e);
    if (l) {
        *out = l;
        return TSR_OK;
    }
    if (!(l = calloc(1, sizeof *l)) || tsr__kcache_new(&l->kc)) {
        free(l);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory starting a job");
    }
    cl_int st;
    l->queue = clCreateCommandQueue(e->cl->ctx, e->cl->device, 0, &st);
    if (st != CL_SUCCESS) {
        l->queue = NULL;
        lane_free(l);
        return tsr__seterr(err, TSR_ERR_DEVICE, "clCreateCommandQueue for a job failed: %s (%d)",
                           tsr__cl_status_name(st), st);
    }
    *out = l;
    return TSR_OK;
}

static void lane_put(tsr_engine *e, tsr__lane *l, tsr__ctx *c)
{
    if (!l)
        return;
    l->launch = c->launch;
    c->launch = NULL;
    if (clFinish(l->queue) != CL_SUCCESS) { /* a broken queue is not reused */
        lane_free(l);
        return;
    }
    tsr__engine_lock(e);
    l->next = e->lanes;
    e->lanes = l;
    tsr__engine_unlock(e);
}

/* ---- budget ------------------------------------------------------------------------------- */

tsr_status tsr__budget_acquire(tsr_job *j, size_t bytes, size_t host_bytes, double *waited_s)
{
    tsr_engine *e = j->e;
    double t0 = now_s();
    tsr_status rc = TSR_OK;
    tsr__engine_lock(e);
    if (e->running == 0 && e->pool) { /* the pool's peaks: the jobs running since it was idle */
        tsr__pool_reset_peaks(e->pool);
        tsr__pool_reset_peaks(e->staging);
    }
    while (e->running > 0 && ((e->cl && e->reserved + bytes > e->vram_limit) ||
                              (e->mem_limit && e->host_reserved + host_bytes > e->mem_limit))) {
        if (tsr__ctx_cancelled(&j->ctx)) {
            rc = TSR_ERR_CANCELLED;
            break;
        }
        /* Woken when a job gives its reservation back; a cancel is seen within 10 ms. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(e->budget_cv, e->mu, &ts);
    }
    if (!rc) {
        e->reserved += bytes;
        e->host_reserved += host_bytes;
        e->running++;
    }
    tsr__engine_unlock(e);
    *waited_s = now_s() - t0;
    if (rc)
        return tsr__seterr(j->ctx.err, rc,
                           "cancelled while waiting for device memory held by "
                           "other jobs");
    return TSR_OK;
}

void tsr__budget_release(tsr_job *j, size_t bytes, size_t host_bytes)
{
    tsr_engine *e = j->e;
    tsr__engine_lock(e);
    e->reserved -= bytes;
    e->host_reserved -= host_bytes;
    e->running--;
    pthread_cond_broadcast(e->budget_cv);
    tsr__engine_unlock(e);
}

/* ---- kept outputs ------------------------------------------------------------------------- */

/* Area average of img down to fit max_side (a preview). */
static tsr_status reduce(const tsr_image *img, int max_side, tsr_image **out)
{
    int w = img->width, h = img->height, big = w > h ? w : h;
    if (max_side <= 0 || big <= max_side) {
        *out = tsr_image_ref((tsr_image *)img);
        return TSR_OK;
    }
    int ow = (int)((int64_t)w * max_side / big), oh = (int)((int64_t)h * max_side / big);
    ow = ow < 1 ? 1 : ow;
    oh = oh < 1 ? 1 : oh;
    tsr_image *r;
    tsr_status rc = tsr_image_new(ow, oh, img->channels, &r);
    if (rc)
        return rc;
    r->bit_depth = img->bit_depth;
    for (int c = 0; c < img->channels; c++) {
        const float *src = img->data + (size_t)c * w * h;
        float *dst = r->data + (size_t)c * ow * oh;
        for (int y = 0; y < oh; y++) {
            int y0 = (int)((int64_t)y * h / oh), y1 = (int)((int64_t)(y + 1) * h / oh);
            for (int x = 0; x < ow; x++) {
                int x0 = (int)((int64_t)x * w / ow), x1 = (int)((int64_t)(x + 1) * w / ow);
                double sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        sum += src[(size_t)yy * w + xx];
                dst[(size_t)y * ow + x] = (float)(sum / ((double)(y1 - y0) * (x1 - x0)));
            }
        }
    }
    *out = r;
    return TSR_OK;
}

tsr_status tsr__job_keep(tsr_job *j, int v, tsr_image *img)
{
    if (!j || !img)
        return TSR_OK;
    tsr_image *k = NULL;
    tsr_status rc = reduce(img, j->g->nodes[v].keep_side, &k);
    if (rc)
        return tsr__seterr(j->ctx.err, rc, "node '%s': out of memory keeping its output",
                           j->g->nodes[v].id);
    tsr_image_free(j->kept[v]);
    j->kept[v] = k;
    return TSR_OK;
}

void tsr__job_file(tsr_job *j, const char *path)
{
    if (!j)
        return;
    char **f = realloc(j->files, (size_t)(j->n_files + 1) * sizeof *f);
    if (!f)
        return;
    j->files = f;
    if ((f[j->n_files] = strdup(path)))
        j->n_files++;
}

tsr_job *tsr__exec_job_of(const tsr_exec *ex)
{
    if (!ex->ctx || !ex->ctx->run || ex->ctx == &ex->engine->ctx0)
        return NULL;
    return (tsr_job *)((char *)ex->ctx - offsetof(tsr_job, ctx));
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

tsr_status tsr_job_new(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt, tsr_job **out)
{
    if (!out)
        return TSR_ERR_INVALID;
    *out = NULL;
    tsr__err *err = tsr__eerr(e);
    tsr__err_clear(err);
    if (!e || !g)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr_job_new: NULL engine or graph");
    tsr_job *j = calloc(1, sizeof *j);
    if (!j)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory making a job");
    j->e = e;
    if (opt)
        j->opt = *opt;
    j->ctx.e = e;
    j->ctx.cancel = &j->cancel;
    j->ctx.gen0 = __atomic_load_n(&e->interrupt_gen, __ATOMIC_ACQUIRE);
    j->t_created = now_s();
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (!(j->g = tsr__graph_clone(g)) || !(j->kept = calloc((size_t)g->n_nodes, sizeof *j->kept))) {
        tsr_job_free(j);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory making a job");
    }
    /* Values (models) inferred by another engine do not belong to this one. */
    if (j->g->inferred_by != e)
        j->g->inferred = 0;
    *out = j;
    return TSR_OK;
}

static int find_node(const tsr_job *j, const char *id)
{
    for (int v = 0; id && v < j->g->n_nodes; v++)
        if (strcmp(j->g->nodes[v].id, id) == 0)
            return v;
    return -1;
}

static tsr_status job_check(tsr_job *j, const char *what, const char *node, int *v)
{
    tsr__err *err = tsr__eerr(j->e);
    if (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) != JOB_NEW)
        return tsr__seterr(err, TSR_ERR_BUSY, "%s: the job has already started", what);
    if ((*v = find_node(j, node)) < 0)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: no node '%s' in the graph", what,
                           node ? node : "(null)");
    return TSR_OK;
}

tsr_status tsr_job_bind_image(tsr_job *j, const char *node, tsr_image *img)
{
    int v;
    tsr_status rc = job_check(j, "tsr_job_bind_image", node, &v);
    if (rc)
        return rc;
    tsr_node *n = &j->g->nodes[v];
    if (!(n->cls->flags & TSR_NODE_SOURCE))
        return tsr__seterr(tsr__eerr(j->e), TSR_ERR_INVALID,
                           "tsr_job_bind_image: node '%s' (%s) is not an image source", node,
                           n->cls->name);
    if (!img)
        return tsr__seterr(tsr__eerr(j->e), TSR_ERR_INVALID, "tsr_job_bind_image: NULL image");
    tsr_image_free(n->bound);
    n->bound = tsr_image_ref(img);
    tsr__bound_px_free(n->px);
    n->px = NULL;
    j->g->inferred = 0; /* its shape comes from the pixels now */
    return TSR_OK;
}

static size_t sample_size(tsr_sample s)
{
    return s == TSR_SAMPLE_U8 ? 1 : s == TSR_SAMPLE_U16 ? 2 : s == TSR_SAMPLE_F32 ? 4 : 0;
}

const char *tsr__pixels_check(const tsr_pixels *px)
{
    if (!px || !px->data)
        return "no pixel data";
    if (px->width <= 0 || px->height <= 0)
        return "width and height must be positive";
    if (px->channels < 1 || px->channels > 4)
        return "channels must be 1 to 4";
    size_t ss = sample_size(px->sample), row;
    if (!ss)
        return "unknown sample type";
    if (!tsr__mul_size((size_t)px->width, (size_t)px->channels * ss, &row))
        return "a row overflows size_t";
    size_t stride = px->stride ? px->stride : row, total;
    if (stride < row)
        return "the stride is smaller than a row";
    if (!tsr__mul_size(stride, (size_t)px->height, &total))
        return "the image overflows size_t";
    return NULL;
}

uint64_t tsr__pixels_hash(const tsr_pixels *px)
{
    size_t row = (size_t)px->width * (size_t)px->channels * sample_size(px->sample);
    size_t stride = px->stride ? px->stride : row;
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)px->width << 40 | (uint64_t)px->height << 8 |
                                          (uint64_t)px->channels << 4 | (uint64_t)px->sample);
    for (int y = 0; y < px->height; y++) {
        const unsigned char *p = (const unsigned char *)px->data + (size_t)y * stride;
        size_t i = 0;
        for (; i + 8 <= row; i += 8) {
            uint64_t v;
            memcpy(&v, p + i, 8);
            h = (h ^ v) * 0x9e3779b97f4a7c15ull;
            h ^= h >> 29;
        }
        for (; i < row; i++)
            h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

void tsr__bound_px_free(tsr__bound_px *b)
{
    if (!b)
        return;
    if (b->own == TSR_HANDOVER && b->free_fn)
        b->free_fn(b->px.data, b->free_user);
    free(b);
}

tsr_status tsr_job_bind_input(tsr_job *j, const char *node, const tsr_pixels *px, tsr_ownership own,
                              tsr_free_fn free_fn, void *free_user)
{
    int v;
    const char *why = tsr__pixels_check(px);
    tsr_status rc = TSR_OK;
    if (!j)
        rc = TSR_ERR_INVALID;
    else if ((rc = job_check(j, "tsr_job_bind_input", node, &v)))
        ;
    else if (!(j->g->nodes[v].cls->flags & TSR_NODE_SOURCE))
        rc = tsr__seterr(tsr__eerr(j->e), TSR_ERR_INVALID,
                         "tsr_job_bind_input: node '%s' (%s) is not an image source", node,
                         j->g->nodes[v].cls->name);
    else if (why)
        rc = tsr__seterr(tsr__eerr(j->e), TSR_ERR_INVALID, "tsr_job_bind_input: node '%s': %s",
                         node, why);
    else if (own != TSR_COPY && own != TSR_BORROW && own != TSR_HANDOVER)
        rc = tsr__seterr(tsr__eerr(j->e), TSR_ERR_INVALID,
                         "tsr_job_bind_input: unknown ownership %d", (int)own);
    if (rc) {
        if (own == TSR_HANDOVER && free_fn && px)
            free_fn(px->data, free_user);
        return rc;
    }
    tsr_node *n = &j->g->nodes[v];
    if (own == TSR_COPY) { /* converted now: the caller keeps its buffer */
        tsr_image *img = NULL;
        if ((rc = tsr_image_from_pixels(px, &img)))
            return tsr__seterr(tsr__eerr(j->e), rc, "tsr_job_bind_input: node '%s': %s", node,
                               tsr_status_str(rc));
        rc = tsr_job_bind_image(j, node, img);
        tsr_image_free(img);
        return rc;
    }
    tsr__bound_px *b = calloc(1, sizeof *b);
    if (!b) {
        if (own == TSR_HANDOVER && free_fn)
            free_fn(px->data, free_user);
        return tsr__seterr(tsr__eerr(j->e), TSR_ERR_NOMEM, "out of memory");
    }
    *b = (tsr__bound_px){*px, own, free_fn, free_user};
    tsr_image_free(n->bound);
    n->bound = NULL;
    tsr__bound_px_free(n->px);
    n->px = b;
    j->g->inferred = 0;
    return TSR_OK;
}

tsr_status tsr_job_watch(tsr_job *j, const char *node, int max_side)
{
    int v;
    tsr_status rc = job_check(j, "tsr_job_watch", node, &v);
    if (rc)
        return rc;
    tsr_node *n = &j->g->nodes[v];
    if (n->cls->flags & (TSR_NODE_SINK | TSR_NODE_VALUE) || n->cls->n_outputs < 1)
        return tsr__seterr(tsr__eerr(j->e), TSR_ERR_INVALID,
                           "tsr_job_watch: node '%s' (%s) has no image output", node, n->cls->name);
    n->keep = 1;
    n->keep_side = max_side > 0 ? max_side : 0;
    return TSR_OK;
}

/* The fields every event of the job itself has. */
static void job_event(tsr_job *j, tsr_event *ev, tsr_event_type type, const char *name,
                      double elapsed)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->name = name;
    ev->job = j;
    ev->status = j->rc;
    ev->message = j->err.msg;
    ev->node_index = -1;
    ev->node_count = j->g->n_nodes;
    ev->elapsed_s = elapsed;
}

/* Parse the job's message into an execution-error event, then the finish event. */
static void emit_end(tsr_job *j, double seconds)
{
    if (!j->opt.event)
        return;
    tsr__json w;
    tsr__json_init(&w);
    tsr_event ev;
    if (j->rc) {
        job_event(j, &ev, TSR_EV_JOB_ERROR, "execution-error", seconds);
        int v = find_node(j, j->err.node);
        ev.node = v >= 0 ? j->g->nodes[v].id : NULL;
        ev.node_type = v >= 0 ? j->g->nodes[v].cls->name : NULL;
        ev.param = j->err.param[0] ? j->err.param : NULL;
        ev.file = j->err.file[0] ? j->err.file : NULL;
        ev.line = j->err.line;
        ev.col = j->err.col;
        tsr__json_obj(&w);
        tsr__json_kstr(&w, "event", ev.name);
        tsr__json_kstr(&w, "status", tsr_status_str(j->rc));
        tsr__json_kstr(&w, "message", j->err.msg);
        tsr__json_key(&w, "source");
        if (ev.node || ev.file) {
            tsr__json_obj(&w);
            tsr__json_kstr(&w, "nodeId", ev.node);
            tsr__json_kstr(&w, "schemaId", ev.node_type);
            tsr__json_kstr(&w, "param", ev.param);
            tsr__json_kstr(&w, "file", ev.file);
            if (ev.line > 0) {
                tsr__json_kint(&w, "line", ev.line);
                tsr__json_kint(&w, "col", ev.col);
            }
            tsr__json_end(&w);
        } else {
            tsr__json_null(&w);
        }
        tsr__json_end(&w);
        ev.json = tsr__json_text(&w);
        j->opt.event(j->opt.user, &ev);
        tsr__json_free(&w);
        tsr__json_init(&w);
    }
    job_event(j, &ev, TSR_EV_JOB_FINISH, "finish", seconds);
    ev.seconds = seconds;
    ev.files = (const char *const *)j->files;
    ev.n_files = j->n_files;
    tsr__json_obj(&w);
    tsr__json_kstr(&w, "event", ev.name);
    tsr__json_kstr(&w, "status", j->rc ? tsr_status_str(j->rc) : "ok");
    tsr__json_kstr(&w, "message", j->err.msg);
    tsr__json_knum(&w, "seconds", seconds);
    tsr__json_kint(&w, "downgrades", j->stats.downgrades);
    tsr__json_key(&w, "files");
    tsr__json_arr(&w);
    for (int i = 0; i < j->n_files; i++)
        tsr__json_str(&w, j->files[i]);
    tsr__json_end(&w);
    tsr__json_end(&w);
    ev.json = tsr__json_text(&w);
    j->opt.event(j->opt.user, &ev);
    tsr__json_free(&w);
}

static void emit_start(tsr_job *j)
{
    if (!j->opt.event)
        return;
    tsr__json w;
    tsr__json_init(&w);
    tsr__json_obj(&w);
    tsr__json_kstr(&w, "event", "chain-start");
    tsr__json_key(&w, "nodes");
    tsr__json_arr(&w);
    for (int k = 0; k < j->g->n_nodes; k++)
        tsr__json_str(&w, j->g->nodes[j->g->order[k]].id);
    tsr__json_end(&w);
    tsr__json_end(&w);
    tsr_event ev;
    job_event(j, &ev, TSR_EV_JOB_START, "chain-start", 0);
    ev.json = tsr__json_text(&w);
    j->opt.event(j->opt.user, &ev);
    tsr__json_free(&w);
}

/* The run, on whichever thread runs the job: its messages go to that thread's slot, copied to
 * the job at the end. */
static void job_run(tsr_job *j)
{
    tsr_engine *e = j->e;
    double t0 = now_s();
    j->ctx.err = tsr__eerr(e);
    tsr__err_clear(j->ctx.err);
    tsr__ctx *prev = tsr__ctx_current();
    tsr__ctx_set_current(&j->ctx);
    emit_start(j);
    tsr_status rc = TSR_OK;
    if (tsr__ctx_cancelled(&j->ctx))
        rc = tsr__seterr(j->ctx.err, TSR_ERR_CANCELLED, "cancelled before it started");
    if (!rc)
        rc = lane_get(e, &j->lane, j->ctx.err);
    if (!rc) {
        j->ctx.queue = j->lane ? j->lane->queue : NULL;
        j->ctx.kc = j->lane ? j->lane->kc : NULL;
        j->ctx.launch = j->lane ? j->lane->launch : NULL;
        if (j->lane)
            j->lane->launch = NULL;
        rc = tsr__exec_job(j);
    }
    if (j->lane) {
        lane_put(e, j->lane, &j->ctx);
        j->lane = NULL;
    }
    tsr__pool_disown(e->pool, &j->ctx);
    tsr__pool_disown(e->staging, &j->ctx);
    tsr__ctx_set_current(prev);
    if (rc == TSR_ERR_CANCELLED && tsr__ctx_cancelled(&j->ctx) && !j->ctx.err->msg[0])
        tsr__seterr(j->ctx.err, rc, "cancelled");
    j->err = *j->ctx.err;
    j->ctx.err = &j->err;
    j->rc = rc;
    if (!j->stats_text)
        j->stats_text = strdup("");
    emit_end(j, now_s() - t0);
}

static void job_finish(tsr_job *j)
{
    pthread_mutex_lock(&j->mu);
    __atomic_store_n(&j->state, JOB_DONE, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void *job_thread(void *arg)
{
    tsr_job *j = arg;
    job_run(j);
    job_finish(j);
    return NULL;
}

tsr_status tsr_job_start(tsr_job *j)
{
    if (!j)
        return TSR_ERR_INVALID;
    int expect = JOB_NEW;
    if (!__atomic_compare_exchange_n(&j->state, &expect, JOB_RUNNING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return tsr__seterr(tsr__eerr(j->e), TSR_ERR_BUSY, "tsr_job_start: already started");
    int err = pthread_create(&j->thread, NULL, job_thread, j);
    if (err) {
        __atomic_store_n(&j->state, JOB_NEW, __ATOMIC_RELEASE);
        return tsr__seterr(tsr__eerr(j->e), TSR_ERR_NOMEM, "cannot start a thread for the job: %s",
                           strerror(err));
    }
    j->on_thread = 1;
    return TSR_OK;
}

tsr_status tsr_job_wait(tsr_job *j, int timeout_ms)
{
    if (!j)
        return TSR_ERR_INVALID;
    if (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == JOB_NEW)
        return TSR_ERR_INVALID;
    pthread_mutex_lock(&j->mu);
    if (timeout_ms < 0) {
        while (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) != JOB_DONE)
            pthread_cond_wait(&j->cv, &j->mu);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) != JOB_DONE)
            if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT)
                break;
    }
    int done = __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == JOB_DONE;
    pthread_mutex_unlock(&j->mu);
    return done ? j->rc : TSR_ERR_BUSY;
}

void tsr_job_cancel(tsr_job *j)
{
    if (j)
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
}

int tsr_job_is_running(const tsr_job *j)
{
    return j && __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == JOB_RUNNING;
}

tsr_status tsr_job_status(const tsr_job *j)
{
    if (!j)
        return TSR_ERR_INVALID;
    switch (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE)) {
    case JOB_NEW: return TSR_ERR_INVALID;
    case JOB_RUNNING: return TSR_ERR_BUSY;
    default: return j->rc;
    }
}

const char *tsr_job_message(const tsr_job *j)
{
    if (!j || __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) != JOB_DONE)
        return "";
    return j->err.msg;
}

void tsr_job_get_stats(const tsr_job *j, tsr_job_stats *out)
{
    memset(out, 0, sizeof *out);
    if (j && __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == JOB_DONE)
        *out = j->stats;
}

char *tsr_job_stats_text(const tsr_job *j)
{
    if (!j || __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) != JOB_DONE || !j->stats_text)
        return strdup("");
    return strdup(j->stats_text);
}

tsr_status tsr_job_output(tsr_job *j, const char *node, tsr_image **out)
{
    if (!out)
        return TSR_ERR_INVALID;
    *out = NULL;
    tsr__err *err = tsr__eerr(j ? j->e : NULL);
    if (!j || __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) != JOB_DONE)
        return tsr__seterr(err, TSR_ERR_BUSY, "tsr_job_output: the job has not finished");
    if (j->rc)
        return tsr__seterr(err, j->rc, "tsr_job_output: the job failed: %s", j->err.msg);
    int v = find_node(j, node);
    if (v < 0)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr_job_output: no node '%s' in the graph",
                           node ? node : "(null)");
    if (!j->kept[v])
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "tsr_job_output: node '%s' kept no image (an image.output node, or "
                           "tsr_job_watch before the start)",
                           node);
    *out = tsr_image_ref(j->kept[v]);
    return TSR_OK;
}

void tsr_job_free(tsr_job *j)
{
    if (!j)
        return;
    tsr_job_cancel(j);
    if (j->on_thread) {
        pthread_join(j->thread, NULL);
        j->on_thread = 0;
    }
    for (int v = 0; j->kept && j->g && v < j->g->n_nodes; v++)
        tsr_image_free(j->kept[v]);
    free(j->kept);
    for (int i = 0; i < j->n_files; i++)
        free(j->files[i]);
    free(j->files);
    free(j->stats_text);
    tsr__launch_state_free(j->ctx.launch);
    tsr__graph_free(j->g);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ---- the blocking run ----------------------------------------------------------------------- */

tsr_status tsr_graph_run(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt)
{
    /* Inferred in place, as callers of the blocking run expect (shapes readable afterwards);
     * the job's snapshot then carries the shapes. */
    tsr_status rc =
        g && e && !(g->inferred && g->inferred_by == e) ? tsr_graph_infer(e, g) : TSR_OK;
    if (rc)
        return rc;
    tsr_job *j;
    rc = tsr_job_new(e, g, opt, &j);
    if (rc)
        return rc;
    __atomic_store_n(&j->state, JOB_RUNNING, __ATOMIC_RELEASE);
    job_run(j);
    job_finish(j);
    rc = j->rc;
    *tsr__eerr(e) = j->err; /* tsr_errmsg(e) on this thread */
    tsr__engine_lock(e);
    free(e->stats);
    e->stats = j->stats_text;
    j->stats_text = NULL;
    tsr__engine_unlock(e);
    g->pending_loads = 0;
    tsr_job_free(j);
    return rc;
}
