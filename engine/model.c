/* The engine's model cache and each model's geometry. A model is read once per engine (keyed by
 * its canonical path, re-read when the file changes), its scale, trim, alignment and receptive
 * field are derived from the layer graph, and its weights are uploaded once into pool buffers
 * that count against the device budget for as long as they stay. */
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model.h"

/* ---- geometry -------------------------------------------------------------------------------- */

static long gcdl(long a, long b)
{
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a < 0 ? -a : a;
}

static long lcml(long a, long b)
{
    return a / gcdl(a, b) * b;
}

/* A rational number p/q (q > 0, reduced): a blob's pixel pitch in input pixels. */
typedef struct rat {
    long p, q;
} rat;

static rat rat_make(long p, long q)
{
    long g = gcdl(p, q);
    if (q < 0)
        g = -g;
    return (rat){p / g, q / g};
}

static double rat_d(rat r)
{
    return (double)r.p / (double)r.q;
}

/* Sizes probed to find the input sizes a model takes and its output size law. */
#define PROBE_LO 24
#define PROBE_HI 96

/* Receptive radius and pitch of every blob, forward through the layers, in input pixels. The
 * radius is a safe upper bound: each layer adds the half-extent of its window measured at its
 * input's pitch, plus half a pitch where a stride or a resampling leaves the phase open. */
static tsr_status receptive(tsr__model *m, double *radius_out, long *align_out, tsr__err *err)
{
    const tsr_nn_model *nn = m->nn;
    double *r = calloc((size_t)nn->n_blobs, sizeof *r);
    rat *j = calloc((size_t)nn->n_blobs, sizeof *j);
    unsigned char *glob = calloc((size_t)nn->n_blobs, 1);
    if (!r || !j || !glob) {
        free(r);
        free(j);
        free(glob);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory deriving the model's geometry");
    }
    long align = 1;
    for (int li = 0; li < nn->n_layers; li++) {
        const tsr_nn_layer *L = &nn->layers[li];
        double rin = 0;
        rat jin = {1, 1};
        int g = 0;
        for (int i = 0; i < L->n_in; i++) {
            int b = L->in[i];
            rin = r[b] > rin ? r[b] : rin;
            if (i == 0 || rat_d(j[b]) > rat_d(jin))
                jin = j[b];
            g |= glob[b];
        }
        double rout = rin;
        rat jout = jin;
        double pitch = rat_d(jin);
        switch (L->type) {
        case TSR_NN_INPUT:
            rout = 0;
            jout = (rat){1, 1};
            break;
        case TSR_NN_CONVOLUTION: {
            int ew = L->dilation_w * (L->kernel_w - 1), eh = L->dilation_h * (L->kernel_h - 1);
            int e = ew > eh ? ew : eh, s = L->stride_w > L->stride_h ? L->stride_w : L->stride_h;
            rout = rin + (e / 2.0 + (s - 1) / 2.0) * pitch;
            jout = rat_make(jin.p * s, jin.q);
            break;
        }
        case TSR_NN_DECONVOLUTION: {
            int ew = L->dilation_w * (L->kernel_w - 1), eh = L->dilation_h * (L->kernel_h - 1);
            int e = ew > eh ? ew : eh, s = L->stride_w > L->stride_h ? L->stride_w : L->stride_h;
            rout = rin + (e / (2.0 * s) + 0.5) * pitch;
            jout = rat_make(jin.p, jin.q * s);
            break;
        }
        case TSR_NN_INTERP: {
            double taps = L->resize_type == TSR_NN_INTERP_BICUBIC    ? 2.0
                          : L->resize_type == TSR_NN_INTERP_BILINEAR ? 1.0
                                                                     : 0.5;
            rout = rin + (taps + 0.5) * pitch;
            /* Scales of the bundled models are k or 1/k or 3/4: keep them as exact ratios. */
            double f = L->width_scale > L->height_scale ? L->width_scale : L->height_scale;
            long q = 0;
            for (long d = 1; d <= 64 && !q; d++) {
                double n = f * d;
                if (n > 0.5 && n - (double)(long)(n + 0.5) < 1e-6 &&
                    (double)(long)(n + 0.5) - n < 1e-6)
                    q = d;
            }
            if (!q || f <= 0) {
                jout = jin; /* fixed output sizes: no single pitch; alignment stays as is */
                rout = INFINITY;
            } else {
                jout = rat_make(jin.p * q, jin.q * (long)(f * q + 0.5));
            }
            break;
        }
        case TSR_NN_PIXELSHUFFLE:
            rout = rin + 0.5 * pitch;
            jout = rat_make(jin.p, jin.q * (L->upscale_factor > 0 ? L->upscale_factor : 1));
            break;
        case TSR_NN_POOLING: g = 1; break;
        default: /* elementwise, concat, crop, split, scale, innerproduct: no spatial reach */
            break;
        }
        for (int o = 0; o < L->n_out; o++) {
            int b = L->out[o];
            r[b] = rout;
            j[b] = jout;
            glob[b] = (unsigned char)g;
        }
        if (jout.p > 1)
            align = lcml(align, jout.p);
        if (align > 1024) {
            free(r);
            free(j);
            free(glob);
            return tsr__seterr(err, TSR_ERR_INVALID,
                               "%s: layer '%s' makes the network's stride pattern repeat only "
                               "every %ld pixels; tiling needs a smaller period",
                               nn->param_path ? nn->param_path : "model", L->name, align);
        }
    }
    int ob = nn->output_blob;
    m->global = glob[ob];
    free(m->pitch);
    m->pitch = malloc((size_t)nn->n_blobs * sizeof *m->pitch);
    if (!m->pitch) {
        free(r);
        free(j);
        free(glob);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory deriving the model's geometry");
    }
    for (int b = 0; b < nn->n_blobs; b++)
        m->pitch[b] = rat_d(j[b]);
    *radius_out = glob[ob] ? INFINITY : r[ob];
    *align_out = align;
    free(r);
    free(j);
    free(glob);
    return TSR_OK;
}

size_t tsr__model_resident_bytes(const tsr__model *m)
{
    size_t total = 0;
    for (int i = 0; i < m->nn->n_layers; i++) {
        size_t b = tsr__nn_cl_weight_bytes(&m->nn->layers[i]);
        if (b)
            total += tsr__pool_class_size(b);
    }
    return total;
}

tsr_status tsr__model_derive(tsr__model *m, tsr__err *err)
{
    const tsr_nn_model *nn = m->nn;
    const char *name = nn->param_path ? nn->param_path : "model";
    tsr_nn_shape *sh = malloc((size_t)nn->n_blobs * sizeof *sh);
    if (!sh)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory deriving the model's geometry");
    tsr__err scratch;
    int valid[PROBE_HI - PROBE_LO + 1], outw[PROBE_HI - PROBE_LO + 1], nv = 0;
    for (int n = PROBE_LO; n <= PROBE_HI; n++) {
        tsr__err_clear(&scratch);
        if (tsr__nn_shapes(nn, nn->in_channels, n, n, sh, &scratch) != TSR_OK)
            continue;
        tsr_nn_shape o = sh[nn->output_blob];
        if (o.dims != 3 || o.w != o.h)
            continue;
        valid[nv] = n;
        outw[nv++] = o.w;
    }
    free(sh);
    if (nv < 2)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: no input size from %d to %d pixels gives a 3-D output of the same "
                           "width and height: not an image-to-image network Tessera can tile",
                           name, PROBE_LO, PROBE_HI);
    /* The sizes whose output follows one law s*N - k with the same trim on both sides: the
     * smallest modulus (and residue) under which every probed size of that residue agrees.
     * Other sizes may still run (a stride-2 layer flooring an odd size) but lose a pixel. */
    long mod = 0, res = 0, k = 0;
    int s = 0;
    for (long md = 1; md <= 16 && !mod; md++)
        for (long r = 0; r < md && !mod; r++) {
            int first = -1, second = -1, ok = 1, n = 0;
            for (int i = 0; i < nv && ok; i++) {
                if (valid[i] % md != r)
                    continue;
                n++;
                if (first < 0)
                    first = i;
                else if (second < 0)
                    second = i;
            }
            if (n < 2 || n * md < (long)(PROBE_HI - PROBE_LO) / 2)
                continue; /* a residue must hold for (nearly) all its sizes */
            long ds = outw[second] - outw[first], dn = valid[second] - valid[first];
            if (ds % dn || ds / dn < 1)
                continue;
            int ss = (int)(ds / dn);
            long kk = (long)ss * valid[first] - outw[first];
            for (int i = 0; i < nv && ok; i++)
                if (valid[i] % md == r && (long)ss * valid[i] - outw[i] != kk)
                    ok = 0;
            if (!ok || kk < 0 || kk % (2L * ss))
                continue;
            mod = md;
            res = r;
            k = kk;
            s = ss;
        }
    if (!mod)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: no set of input sizes gives an output of an integral scale with "
                           "the same trim on both sides (probed %d to %d pixels)",
                           name, PROBE_LO, PROBE_HI);
    m->scale = s;
    m->trim = (int)(k / (2L * s));
    m->size_mod = (int)mod;
    m->size_res = (int)res;
    double radius = 0;
    long align = 1;
    tsr_status rc = receptive(m, &radius, &align, err);
    if (rc)
        return rc;
    m->align = (int)lcml(align, mod);
    m->receptive = isinf(radius) || radius > 1e6 ? INT_MAX : (int)ceil(radius) + 1;
    /* A network without zero padding anywhere (valid convolutions, transposed convolutions whose
     * trim keeps only complete sums, crops) computes only pixels whose whole receptive field is
     * inside its window: what it trims is exactly what it needs. */
    if (!m->global && m->trim > 0) {
        int padded = 0;
        for (int i = 0; i < nn->n_layers && !padded; i++) {
            const tsr_nn_layer *L = &nn->layers[i];
            if (L->type == TSR_NN_CONVOLUTION)
                padded = L->pad_left || L->pad_right || L->pad_top || L->pad_bottom;
            else if (L->type == TSR_NN_DECONVOLUTION)
                padded = L->pad_left < L->kernel_w - L->stride_w ||
                         L->pad_right < L->kernel_w - L->stride_w ||
                         L->pad_top < L->kernel_h - L->stride_h ||
                         L->pad_bottom < L->kernel_h - L->stride_h;
            else if (L->type == TSR_NN_INTERP)
                padded = 1; /* clamped taps at the window's edge */
        }
        if (!padded)
            m->receptive = m->trim;
    }
    /* The original programs' padding: what a valid network consumes, and for networks that pad
     * each layer themselves (Real-ESRGAN, realsr) their fixed 10 pixels. */
    m->prepad = m->trim > 0 ? m->trim : 10;
    /* waifu2x-ncnn-vulkan's models (input blob "Input1", from the waifu2x-caffe converter)
     * replicate the edge pixel; Real-CUGAN and Real-ESRGAN reflect. */
    const char *in_name = nn->blob_names[nn->input_blob];
    m->edge = strcmp(in_name, "Input1") == 0 ? TSR_NET_EDGE_REPLICATE : TSR_NET_EDGE_REFLECT;
    /* A network whose last layer is a depth-to-space shuffle with no skip after it outputs a
     * correction to add to the nearest enlargement (Real-CUGAN x4). */
    m->residual = nn->layers[nn->producer[nn->output_blob]].type == TSR_NN_PIXELSHUFFLE;
    /* Windows are 2 * padding plus a multiple of align pixels wide, so the padding must bring
     * them to a size the network takes. */
    for (int i = 0; i < mod && ((2L * m->prepad - m->size_res) % mod + mod) % mod; i++)
        m->prepad++;
    if (((2L * m->prepad - m->size_res) % mod + mod) % mod)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: the network takes only sizes of %d modulo %ld, which no "
                           "symmetric padding reaches",
                           name, m->size_res, mod);
    return TSR_OK;
}

double tsr__model_macs(const tsr__model *m, int h, int w)
{
    const tsr_nn_model *nn = m->nn;
    tsr_nn_shape *sh = malloc((size_t)nn->n_blobs * sizeof *sh);
    tsr__err e;
    tsr__err_clear(&e);
    if (!sh || tsr__nn_shapes(nn, nn->in_channels, h, w, sh, &e)) {
        free(sh);
        return 0;
    }
    double macs = 0;
    for (int i = 0; i < nn->n_layers; i++) {
        const tsr_nn_layer *L = &nn->layers[i];
        if (L->type == TSR_NN_CONVOLUTION)
            macs += (double)tsr__nn_count(sh[L->out[0]]) * L->num_input * L->kernel_w * L->kernel_h;
        else if (L->type == TSR_NN_DECONVOLUTION)
            macs += (double)tsr__nn_count(sh[L->in[0]]) * L->num_output * L->kernel_w * L->kernel_h;
        else if (L->type == TSR_NN_INNERPRODUCT)
            macs += (double)L->weight_data_size;
    }
    free(sh);
    return macs;
}

/* ---- the cache ------------------------------------------------------------------------------- */

static long long stamp_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (long long)st.st_size * 1000003LL ^ (long long)st.st_mtim.tv_sec * 1000000007LL ^
           (long long)st.st_mtim.tv_nsec;
}

static void model_free(tsr_engine *e, tsr__model *m)
{
    if (!m)
        return;
    if (m->dev) {
        for (int i = 0; i < m->nn->n_layers; i++)
            if (m->dev[i])
                tsr__pool_release(e->pool, m->dev[i]);
        free(m->dev);
    }
    tsr__nn_free(m->nn);
    free(m->pitch);
    free(m->key);
    free(m);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static tsr_status model_get_locked(tsr_engine *e, const char *path, tsr__model **out, int *loaded,
                                   tsr__err *err);

/* Reads and uploads done by this thread (a job's statistics count its own, not its
 * neighbours'). */
static _Thread_local int thread_loads, thread_uploads;

int tsr__model_loads_here(void)
{
    return thread_loads;
}

int tsr__model_uploads_here(void)
{
    return thread_uploads;
}

/* Thread safety: models_mu guards the cache list, every model's device weights and pins. A
 * model whose files changed is read again; the old entry moves to the stale list (running jobs
 * may still hold it) and is freed with the engine. */
tsr_status tsr__model_get(tsr_engine *e, const char *path, tsr__model **out, int *loaded,
                          tsr__err *err)
{
    pthread_mutex_lock(e->models_mu);
    tsr_status rc = model_get_locked(e, path, out, loaded, err);
    pthread_mutex_unlock(e->models_mu);
    return rc;
}

static tsr_status model_get_locked(tsr_engine *e, const char *path, tsr__model **out, int *loaded,
                                   tsr__err *err)
{
    *out = NULL;
    *loaded = 0;
    char *key = realpath(path, NULL);
    if (!key)
        return tsr__seterr(err, TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long long stamp = stamp_of(key);
    for (tsr__model **pm = &e->models; *pm; pm = &(*pm)->next) {
        tsr__model *m = *pm;
        if (strcmp(m->key, key) != 0)
            continue;
        if (m->stamp == stamp) {
            free(key);
            *out = m;
            return TSR_OK;
        }
        *pm = m->next; /* the file changed: read it again */
        m->next = e->stale_models;
        e->stale_models = m;
        break;
    }
    tsr__model *m = calloc(1, sizeof *m);
    if (!m) {
        free(key);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory loading a model");
    }
    m->key = key;
    m->stamp = stamp;
    double t0 = now_s();
    tsr_status rc = tsr__nn_load(path, &m->nn, err);
    if (!rc)
        rc = tsr__model_derive(m, err);
    if (rc) {
        model_free(e, m);
        return rc;
    }
    m->load_seconds = now_s() - t0;
    m->next = e->models;
    e->models = m;
    __atomic_add_fetch(&e->models_loaded, 1, __ATOMIC_RELAXED);
    thread_loads++;
    *out = m;
    *loaded = 1;
    return TSR_OK;
}

static tsr_status upload_locked(tsr_exec *ex, tsr__model *m);

/* Under models_mu: a second job wanting the same model waits for the first upload. The
 * weights belong to the cache, not to the job that happened to upload them. */
tsr_status tsr__model_upload(tsr_exec *ex, tsr__model *m)
{
    if (!ex->cl)
        return TSR_OK;
    pthread_mutex_lock(ex->engine->models_mu);
    tsr__ctx *cur = tsr__ctx_current();
    tsr__ctx_set_current(NULL);
    tsr_status rc = upload_locked(ex, m);
    tsr__ctx_set_current(cur);
    pthread_mutex_unlock(ex->engine->models_mu);
    return rc;
}

static tsr_status upload_locked(tsr_exec *ex, tsr__model *m)
{
    if (m->uploaded)
        return TSR_OK;
    const tsr_nn_model *nn = m->nn;
    if (!m->dev && !(m->dev = calloc((size_t)nn->n_layers, sizeof *m->dev)))
        return tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of memory uploading a model");
    tsr_status rc = TSR_OK;
    void *host = NULL;
    size_t host_bytes = 0;
    for (int i = 0; i < nn->n_layers && !rc; i++) {
        size_t b = tsr__nn_cl_weight_bytes(&nn->layers[i]);
        if (!b || m->dev[i])
            continue;
        if (b > host_bytes) {
            void *p = realloc(host, b);
            if (!p) {
                rc = tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of host memory packing weights");
                break;
            }
            host = p;
            host_bytes = b;
        }
        tsr__nn_cl_pack_weights(&nn->layers[i], host);
        if ((rc = tsr__pool_alloc(ex->pool, b, &m->dev[i], ex->err))) {
            tsr__err_prefix(ex->err, "model %s, layer '%s': weights: ", m->key, nn->layers[i].name);
            break;
        }
        ex->kernel = "weights";
        cl_int st = clEnqueueWriteBuffer(ex->queue, m->dev[i], CL_TRUE, 0, b, host, 0, NULL, NULL);
        if (st != CL_SUCCESS)
            rc = tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (model weights)");
    }
    free(host);
    if (rc) { /* nothing half-uploaded stays */
        for (int i = 0; i < nn->n_layers; i++)
            if (m->dev[i]) {
                tsr__pool_release(ex->pool, m->dev[i]);
                m->dev[i] = NULL;
            }
        return rc;
    }
    m->uploaded = 1;
    m->dev_bytes = tsr__model_resident_bytes(m);
    __atomic_add_fetch(&ex->engine->models_uploaded, 1, __ATOMIC_RELAXED);
    thread_uploads++;
    return TSR_OK;
}

void tsr__model_pin(tsr_engine *e, tsr__model *m, int delta)
{
    pthread_mutex_lock(e->models_mu);
    m->pins += delta;
    pthread_mutex_unlock(e->models_mu);
}

size_t tsr__models_resident(tsr_engine *e)
{
    size_t resident = 0;
    pthread_mutex_lock(e->models_mu);
    for (tsr__model *m = e->models; m; m = m->next)
        resident += m->uploaded ? m->dev_bytes : 0;
    for (tsr__model *m = e->stale_models; m; m = m->next)
        resident += m->uploaded ? m->dev_bytes : 0;
    pthread_mutex_unlock(e->models_mu);
    return resident;
}

static void unload(tsr_engine *e, tsr__model *m)
{
    for (int i = 0; i < m->nn->n_layers; i++)
        if (m->dev[i])
            tsr__pool_release(e->pool, m->dev[i]);
    free(m->dev);
    m->dev = NULL;
    m->uploaded = 0;
    m->dev_bytes = 0;
}

void tsr__model_unload_others(tsr_engine *e, tsr__model *const *keep, int n)
{
    pthread_mutex_lock(e->models_mu);
    for (tsr__model *m = e->stale_models; m; m = m->next)
        if (m->dev && !m->pins)
            unload(e, m);
    for (tsr__model *m = e->models; m; m = m->next) {
        int kept = m->pins > 0; /* in use by a running job */
        for (int i = 0; i < n && !kept; i++)
            kept = keep[i] == m;
        if (kept || !m->dev)
            continue;
        unload(e, m);
    }
    pthread_mutex_unlock(e->models_mu);
}

void tsr__models_free(tsr_engine *e)
{
    while (e->models) {
        tsr__model *m = e->models;
        e->models = m->next;
        model_free(e, m);
    }
    while (e->stale_models) {
        tsr__model *m = e->stale_models;
        e->stale_models = m->next;
        model_free(e, m);
    }
}
