/* Running a network on one output rectangle of the upscale node: the window of input pixels the
 * rectangle needs (tile, context, the original program's edge padding), blob storage planned like
 * registers (a blob's slot is reused once its last reader has run), the layers in file order,
 * then the crop, residual, rounding and alpha of the original programs. The same plan drives the
 * estimate (upscale's plan()), the device run and the reference run. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "netrun.h"
#include "nodeutil.h"

static double now_s(void);

/* ---- geometry -------------------------------------------------------------------------------- */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int floor_div(int a, int b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int ceil_div(int a, int b)
{
    return -floor_div(-a, b);
}

int tsr__net_context(const tsr__model *m, int overlap, int *exact)
{
    int p = m->prepad, A = m->align;
    int full =
        m->receptive == INT_MAX ? INT_MAX : (m->receptive > m->trim ? m->receptive : m->trim);
    int need;
    *exact = 0;
    if (overlap == TSR_NET_OVERLAP_EXACT) {
        need = full;
        *exact = 1;
    } else if (overlap == TSR_NET_OVERLAP_AUTO) {
        /* Exact when it costs under about 25 % more work than the original padding, on a tile of
         * 256 input pixels (the work grows with the window's area). */
        double t = 256, ratio = full == INT_MAX ? INFINITY : (t + 2.0 * full) / (t + 2.0 * p);
        need = ratio * ratio <= 1.25 ? full : p;
        *exact = ratio * ratio <= 1.25;
    } else {
        need = overlap;
    }
    if (need < m->trim)
        need = m->trim;
    if (need == INT_MAX)
        return INT_MAX;
    /* The context keeps window origins on the whole image's grid: c = p (mod align). */
    int c = p;
    if (need > p)
        c = p + ceil_div(need - p, A) * A;
    else
        c = p - ((p - need) / A) * A;
    return c;
}

/* Source coordinate for window coordinate x under the edge rule. */
static int edge_map(int x, int n, int rule)
{
    if (x >= 0 && x < n)
        return x;
    if (rule == TSR_NET_EDGE_REPLICATE || n == 1)
        return x < 0 ? 0 : n - 1;
    int period = 2 * (n - 1);
    x %= period;
    if (x < 0)
        x += period;
    return x >= n ? period - x : x;
}

/* Smallest and largest source coordinate the window [a, b) reads on an axis of n pixels. */
static void mapped_range(int a, int b, int n, int rule, int *lo, int *hi)
{
    int l = INT_MAX, h = INT_MIN;
    if (a < n && b > 0) {
        l = a > 0 ? a : 0;
        h = (b < n ? b : n) - 1;
    }
    for (int x = a; x < b && x < 0; x++) {
        int s = edge_map(x, n, rule);
        l = s < l ? s : l;
        h = s > h ? s : h;
    }
    for (int x = b - 1; x >= a && x >= n; x--) {
        int s = edge_map(x, n, rule);
        l = s < l ? s : l;
        h = s > h ? s : h;
    }
    *lo = l;
    *hi = h;
}

/* Window on one axis for output span [X, X + len) of an image n pixels long. */
static void axis_window(const tsr__model *m, int c, int n, int X, int len, int *a, int *b, int *off)
{
    int s = m->scale, A = m->align, p = m->prepad;
    int aligned = ceil_div(n, A) * A;
    int x0 = floor_div(floor_div(X, s), A) * A;
    int x1 = ceil_div(ceil_div(X + len, s), A) * A;
    if (x1 > aligned)
        x1 = aligned;
    *a = x0 > 0 && x0 - c > -p ? x0 - c : -p;
    *b = x1 < aligned && x1 + c < aligned + p ? x1 + c : aligned + p;
    *off = X - s * (*a + m->trim);
}

/* ---- blob storage ---------------------------------------------------------------------------- */

static void netplan_clear(tsr__netplan *np)
{
    free(np->shapes);
    free(np->slot);
    memset(np, 0, sizeof *np);
}

void tsr__netplan_free(tsr__netplan *np)
{
    netplan_clear(np);
}

/* Slots for every blob: in layer order, a layer's outputs take the free slot that fits best (or
 * grow the largest free one, or a new one), then the slots of blobs whose last reader it is are
 * freed. Split outputs share their input's slot. */
static tsr_status assign_slots(const tsr_nn_model *nn, tsr__netplan *np, int max_slots,
                               tsr__err *err)
{
    int nb = nn->n_blobs;
    int *root = malloc((size_t)nb * sizeof *root), *end = malloc((size_t)nb * sizeof *end);
    int busy[TSR_MAX_BUFS];
    if (!root || !end) {
        free(root);
        free(end);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory planning a network");
    }
    for (int b = 0; b < nb; b++) {
        root[b] = b;
        end[b] = -1;
        np->slot[b] = -1;
    }
    for (int li = 0; li < nn->n_layers; li++) {
        const tsr_nn_layer *L = &nn->layers[li];
        if (L->type == TSR_NN_SPLIT)
            for (int o = 0; o < L->n_out; o++)
                root[L->out[o]] = root[L->in[0]];
    }
    for (int b = 0; b < nb; b++) {
        int last = nn->last_reader[b] < 0 ? nn->n_layers : nn->last_reader[b];
        if (last > end[root[b]])
            end[root[b]] = last;
    }
    memset(busy, 0, sizeof busy);
    size_t live = 0;
    np->n_slots = 0;
    np->live_peak = 0;
    tsr_status rc = TSR_OK;
    for (int li = 0; li < nn->n_layers && !rc; li++) {
        const tsr_nn_layer *L = &nn->layers[li];
        if (L->type != TSR_NN_SPLIT)
            for (int o = 0; o < L->n_out; o++) {
                int b = L->out[o];
                size_t need = tsr__nn_count(np->shapes[b]) * sizeof(float);
                int best = -1, big = -1;
                for (int k = 0; k < np->n_slots; k++) {
                    if (busy[k])
                        continue;
                    if (np->slot_bytes[k] >= need &&
                        (best < 0 || np->slot_bytes[k] < np->slot_bytes[best]))
                        best = k;
                    if (big < 0 || np->slot_bytes[k] > np->slot_bytes[big])
                        big = k;
                }
                if (best < 0 && big >= 0)
                    best = big;
                if (best < 0) {
                    if (np->n_slots >= max_slots) {
                        rc = tsr__seterr(err, TSR_ERR_LIMIT,
                                         "layer '%s': the network keeps more than %d blobs alive "
                                         "at once",
                                         L->name, max_slots);
                        break;
                    }
                    best = np->n_slots++;
                    np->slot_bytes[best] = 0;
                }
                if (np->slot_bytes[best] < need)
                    np->slot_bytes[best] = need;
                busy[best] = 1;
                np->slot[b] = best;
                live += need;
            }
        if (live > np->live_peak)
            np->live_peak = live;
        for (int i = 0; i < L->n_in; i++) {
            int r = root[L->in[i]];
            if (end[r] == li && np->slot[r] >= 0 && busy[np->slot[r]]) {
                busy[np->slot[r]] = 0;
                live -= tsr__nn_count(np->shapes[r]) * sizeof(float);
            }
        }
    }
    for (int b = 0; b < nb && !rc; b++)
        np->slot[b] = np->slot[root[b]];
    free(root);
    free(end);
    return rc;
}

tsr_status tsr__netplan_make(const tsr__model *m, const tsr__netopt *o, int img_w, int img_h,
                             tsr_rect out, tsr__netplan *np, tsr__err *err)
{
    memset(np, 0, sizeof *np);
    const tsr_nn_model *nn = m->nn;
    int exact;
    int c = tsr__net_context(m, o->overlap, &exact);
    if (c == INT_MAX)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "the model has global pooling: no finite overlap makes tiles exact");
    tsr__netgeo *g = &np->geo;
    g->context = c;
    int ax, bx, ay, by;
    axis_window(m, c, img_w, out.x, out.w, &ax, &bx, &g->ox);
    axis_window(m, c, img_h, out.y, out.h, &ay, &by, &g->oy);
    g->win = (tsr_rect){ax, ay, bx - ax, by - ay};
    g->out = out;
    g->own_x0 = out.x == 0 ? -INFINITY : (double)out.x / m->scale;
    g->own_y0 = out.y == 0 ? -INFINITY : (double)out.y / m->scale;
    g->own_x1 = out.x + out.w >= img_w * m->scale ? INFINITY : (double)(out.x + out.w) / m->scale;
    g->own_y1 = out.y + out.h >= img_h * m->scale ? INFINITY : (double)(out.y + out.h) / m->scale;
    /* The source pixels the window reads, and those the alpha plane's bicubic taps read. */
    int lx, hx, ly, hy;
    mapped_range(ax, bx, img_w, o->edge, &lx, &hx);
    mapped_range(ay, by, img_h, o->edge, &ly, &hy);
    int s = m->scale;
    int alx = (int)floor((out.x + 0.5) / s - 0.5) - 1,
        ahx = (int)floor((out.x + out.w - 0.5) / s - 0.5) + 2;
    int aly = (int)floor((out.y + 0.5) / s - 0.5) - 1,
        ahy = (int)floor((out.y + out.h - 0.5) / s - 0.5) + 2;
    alx = alx < 0 ? 0 : alx;
    aly = aly < 0 ? 0 : aly;
    ahx = ahx > img_w - 1 ? img_w - 1 : ahx;
    ahy = ahy > img_h - 1 ? img_h - 1 : ahy;
    lx = alx < lx ? alx : lx;
    ly = aly < ly ? aly : ly;
    hx = ahx > hx ? ahx : hx;
    hy = ahy > hy ? ahy : hy;
    g->src = (tsr_rect){lx, ly, hx - lx + 1, hy - ly + 1};
    np->shapes = malloc((size_t)nn->n_blobs * sizeof *np->shapes);
    np->slot = malloc((size_t)nn->n_blobs * sizeof *np->slot);
    if (!np->shapes || !np->slot) {
        netplan_clear(np);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory planning a network");
    }
    tsr_status rc = tsr__nn_shapes(nn, nn->in_channels, g->win.h, g->win.w, np->shapes, err);
    if (!rc) {
        tsr_nn_shape os = np->shapes[nn->output_blob];
        if (os.dims != 3 || os.c < 3 || g->ox < 0 || g->oy < 0 || g->ox + out.w > os.w ||
            g->oy + out.h > os.h)
            rc = tsr__seterr(err, TSR_ERR_INTERNAL,
                             "a %dx%d window gives a %dx%d output that does not cover the tile "
                             "(%d,%d %dx%d)",
                             g->win.w, g->win.h, os.w, os.h, g->ox, g->oy, out.w, out.h);
    }
    if (!rc)
        rc = assign_slots(nn, np, TSR_NET_MAX_SLOTS, err);
    if (!rc) {
        for (int li = 0; li < nn->n_layers; li++) {
            const tsr_nn_layer *L = &nn->layers[li];
            if (L->type == TSR_NN_SPLIT || L->type == TSR_NN_INPUT)
                continue;
            tsr_nn_shape in[TSR_NN_MAX_ARRAY], os[TSR_NN_MAX_ARRAY];
            for (int i = 0; i < L->n_in && i < TSR_NN_MAX_ARRAY; i++)
                in[i] = np->shapes[L->in[i]];
            for (int i = 0; i < L->n_out && i < TSR_NN_MAX_ARRAY; i++)
                os[i] = np->shapes[L->out[i]];
            size_t sc = tsr__nn_cl_scratch_bytes(L, in, os);
            np->scratch = sc > np->scratch ? sc : np->scratch;
        }
    }
    if (rc)
        netplan_clear(np);
    return rc;
}

/* ---- statistics (syncgap) -------------------------------------------------------------------- */

/* Blob pixels [*i0, *i1) on one axis whose start lies in [own0, own1): the blob spans the window
 * [a, a + n) less the same trim on both sides, one pixel per `pitch` input pixels. */
static void owned(double own0, double own1, int a, int n, int size, double pitch, int *i0, int *i1)
{
    double t = (n - size * pitch) / 2, base = a + t;
    double l = isinf(own0) ? 0 : ceil((own0 - base) / pitch - 1e-6);
    double h = isinf(own1) ? size : ceil((own1 - base) / pitch - 1e-6);
    *i0 = l < 0 ? 0 : (l > size ? size : (int)l);
    *i1 = h < 0 ? 0 : (h > size ? size : (int)h);
}

/* Add the owned part of blob `b` (host data) into the pass's accumulators. */
static void reduce_owned(const tsr__model *m, const tsr__netplan *np, int b, const float *d,
                         const tsr__netpass *pass, int is_max)
{
    const tsr__netgeo *g = &np->geo;
    tsr_nn_shape sh = np->shapes[b];
    int x0, x1, y0, y1;
    owned(g->own_x0, g->own_x1, g->win.x, g->win.w, sh.w, m->pitch[b], &x0, &x1);
    owned(g->own_y0, g->own_y1, g->win.y, g->win.h, sh.h, m->pitch[b], &y0, &y1);
    for (int c = 0; c < sh.c; c++) {
        double acc = pass->acc[c];
        for (int y = y0; y < y1; y++) {
            const float *row = d + ((size_t)c * sh.h + y) * sh.w;
            for (int x = x0; x < x1; x++)
                acc = is_max ? (row[x] > acc ? row[x] : acc) : acc + row[x];
        }
        pass->acc[c] = acc;
    }
    *pass->count += (double)(x1 - x0) * (y1 - y0);
}

static const float *sync_vector(const tsr__netsync *sync, int li)
{
    if (!sync)
        return NULL;
    for (int k = 0; k < sync->n; k++)
        if (sync->layer[k] == li)
            return sync->vec[k];
    return NULL;
}

void tsr__netsync_free(tsr__netsync *sync)
{
    for (int k = 0; k < sync->n; k++)
        free(sync->vec[k]);
    memset(sync, 0, sizeof *sync);
}

/* ---- pre- and post-processing, C reference --------------------------------------------------- */

/* Window value (channel c, window pixel x, y) from the source region. */
static float window_at(const tsr_region *src, const tsr__netgeo *g, int rule, int c, int x, int y)
{
    int colour = tsr__colour_channels(src->channels);
    int sc = c < colour ? c : colour - 1;
    int sx = edge_map(g->win.x + x, src->img_w, rule) - src->rect.x;
    int sy = edge_map(g->win.y + y, src->img_h, rule) - src->rect.y;
    return tsr__plane(src, sc)[(size_t)sy * src->rect.w + sx];
}

static float quantize(float v)
{
    float f = floorf(v);
    f = f < 0.0f ? 0.0f : (f > 255.0f ? 255.0f : f);
    return f / 255.0f;
}

/* Bicubic enlargement of the alpha plane (ncnn Interp type 3: half-pixel centres, taps clamped
 * to the edge, horizontal then vertical) at output pixel (X, Y), rounded like the colour. */
static float alpha_at(const tsr_region *src, int s, int X, int Y)
{
    int a = src->channels - 1;
    float fx = ((float)X + 0.5f) / (float)s - 0.5f, fy = ((float)Y + 0.5f) / (float)s - 0.5f;
    int sx = (int)floorf(fx), sy = (int)floorf(fy);
    float wx[4], wy[4];
    tsr__nn_cubic(fx - (float)sx, wx);
    tsr__nn_cubic(fy - (float)sy, wy);
    float acc = 0.0f;
    for (int j = 0; j < 4; j++) {
        int yy = clampi(sy - 1 + j, 0, src->img_h - 1) - src->rect.y;
        const float *row = tsr__plane(src, a) + (size_t)yy * src->rect.w;
        float h = 0.0f;
        for (int i = 0; i < 4; i++)
            h += wx[i] * row[clampi(sx - 1 + i, 0, src->img_w - 1) - src->rect.x];
        acc += wy[j] * h;
    }
    return quantize(acc * 255.0f + 0.5f);
}

tsr_status tsr__net_run_ref(const tsr__model *m, const tsr__netopt *o, const tsr__netplan *np,
                            const tsr__netsync *sync, const tsr__netpass *pass,
                            const tsr_region *src, const tsr_region *out, tsr__err *err)
{
    const tsr_nn_model *nn = m->nn;
    const tsr__netgeo *g = &np->geo;
    float *slots[TSR_MAX_BUFS] = {0};
    tsr_status rc = TSR_OK;
    for (int k = 0; k < np->n_slots; k++)
        if (!(slots[k] = malloc(np->slot_bytes[k] ? np->slot_bytes[k] : 1))) {
            rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of host memory for a network's blobs");
            goto done;
        }
    for (int li = 0; li < nn->n_layers && !rc; li++) {
        const tsr_nn_layer *L = &nn->layers[li];
        if (L->type == TSR_NN_SPLIT)
            continue;
        if (L->type == TSR_NN_INPUT) {
            int b = L->out[0];
            float *d = slots[np->slot[b]];
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < g->win.h; y++)
                    for (int x = 0; x < g->win.w; x++)
                        d[((size_t)c * g->win.h + y) * g->win.w + x] =
                            window_at(src, g, o->edge, c, x, y);
            continue;
        }
        if (pass && li == pass->stop) {
            reduce_owned(m, np, L->in[0], slots[np->slot[L->in[0]]], pass, L->pooling_type == 0);
            goto done;
        }
        const float *v = sync_vector(sync, li);
        if (v) {
            memcpy(slots[np->slot[L->out[0]]], v, tsr__nn_count(np->shapes[L->out[0]]) * 4);
            continue;
        }
        tsr_nn_tensor in[TSR_NN_MAX_ARRAY], os[TSR_NN_MAX_ARRAY];
        for (int i = 0; i < L->n_in && i < TSR_NN_MAX_ARRAY; i++)
            in[i] = (tsr_nn_tensor){np->shapes[L->in[i]], slots[np->slot[L->in[i]]]};
        for (int i = 0; i < L->n_out && i < TSR_NN_MAX_ARRAY; i++)
            os[i] = (tsr_nn_tensor){np->shapes[L->out[i]], slots[np->slot[L->out[i]]]};
        rc = tsr__nn_ref_layer(L, in, os, err);
    }
    if (!rc && pass && pass->raw) {
        const float *net = slots[np->slot[nn->output_blob]];
        tsr_nn_shape os = np->shapes[nn->output_blob];
        tsr_image *r = pass->raw;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < r->height; y++)
                memcpy(r->data + ((size_t)c * r->height + y) * r->width,
                       net + ((size_t)c * os.h + g->oy + y) * os.w + g->ox,
                       (size_t)r->width * sizeof(float));
        goto done;
    }
    if (!rc) {
        const float *net = slots[np->slot[nn->output_blob]];
        tsr_nn_shape os = np->shapes[nn->output_blob];
        int s = m->scale, colour = tsr__colour_channels(out->channels);
        int srcc = tsr__colour_channels(src->channels);
        for (int c = 0; c < 3 && c < colour; c++) {
            float *dst = tsr__plane(out, c);
            for (int y = 0; y < out->rect.h; y++)
                for (int x = 0; x < out->rect.w; x++) {
                    float v =
                        net[((size_t)c * os.h + g->oy + y) * os.w + g->ox + x] * 255.0f + 0.5f;
                    if (o->residual) {
                        int sx = (out->rect.x + x) / s - src->rect.x;
                        int sy = (out->rect.y + y) / s - src->rect.y;
                        v += tsr__plane(src,
                                        c < srcc ? c : srcc - 1)[(size_t)sy * src->rect.w + sx] *
                             255.0f;
                    }
                    dst[(size_t)y * out->rect.w + x] = quantize(v);
                }
        }
        if (tsr__has_alpha(out->channels)) {
            float *dst = tsr__plane(out, out->channels - 1);
            for (int y = 0; y < out->rect.h; y++)
                for (int x = 0; x < out->rect.w; x++)
                    dst[(size_t)y * out->rect.w + x] =
                        alpha_at(src, s, out->rect.x + x, out->rect.y + y);
        }
    }
done:
    for (int k = 0; k < TSR_MAX_BUFS; k++)
        free(slots[k]);
    return rc;
}

/* ---- the device path ------------------------------------------------------------------------- */

/* Host mirror of tsr_netgeo in kernels/upscale.cl (all cl_int). */
typedef struct netgeo_cl {
    cl_int src_x, src_y, src_w, src_h; /* source region rectangle */
    cl_int img_w, img_h, src_c;        /* source image size and channels */
    cl_int win_x, win_y, win_w, win_h; /* network input window */
    cl_int out_x, out_y, out_w, out_h; /* output rectangle */
    cl_int net_w, net_h, ox, oy;       /* network output size and the rectangle's offset in it */
    cl_int scale, edge, residual, out_c;
} netgeo_cl;

static tsr_status kernel_of(tsr_exec *ex, const char *name, cl_kernel *k)
{
    ex->kernel = name;
    tsr_status rc = tsr__cl_kernel(ex->cl, ex->ctx->kc, "upscale", name, k, ex->err);
    if (rc)
        tsr__err_prefix(ex->err, "node '%s' (%s): ", ex->node ? ex->node->id : "?",
                        ex->node ? ex->node->cls->name : "?");
    return rc;
}

static int cancelled(tsr_exec *ex)
{
    return tsr__exec_cancelled(ex);
}

tsr_status tsr__net_run_cl(tsr_exec *ex, const tsr__model *m, const tsr__netopt *o,
                           const tsr__netplan *np, const tsr__netsync *sync,
                           const tsr__netpass *pass, const cl_mem *slots, cl_mem scratch,
                           const tsr_region *src, const tsr_region *out)
{
    const tsr_nn_model *nn = m->nn;
    const tsr__netgeo *g = &np->geo;
    tsr_nn_shape os = np->shapes[nn->output_blob];
    netgeo_cl G = {src->rect.x,
                   src->rect.y,
                   src->rect.w,
                   src->rect.h,
                   src->img_w,
                   src->img_h,
                   src->channels,
                   g->win.x,
                   g->win.y,
                   g->win.w,
                   g->win.h,
                   g->out.x,
                   g->out.y,
                   g->out.w,
                   g->out.h,
                   os.w,
                   os.h,
                   g->ox,
                   g->oy,
                   m->scale,
                   o->edge,
                   o->residual,
                   out ? out->channels : 3};
    cl_kernel k;
    tsr_status rc = TSR_OK;
    /* TSR_NET_PROFILE=1: each layer's wall time (it is waited for anyway) on stderr. */
    static int profile = -1;
    if (profile < 0)
        profile = getenv("TSR_NET_PROFILE") && *getenv("TSR_NET_PROFILE") == '1';
    for (int li = 0; li < nn->n_layers && !rc; li++) {
        const tsr_nn_layer *L = &nn->layers[li];
        if (L->type == TSR_NN_SPLIT)
            continue;
        if (L->type == TSR_NN_INPUT) {
            cl_mem d = slots[np->slot[L->out[0]]];
            if (!(rc = kernel_of(ex, "tsr_net_window", &k)) &&
                !(rc = tsr__exec_args(ex, k, 3, TSR_ARG(src->mem), TSR_ARG(d), TSR_ARG(G))))
                rc = tsr__exec_launch(ex, k, (size_t)g->win.w, (size_t)g->win.h, 3);
            continue;
        }
        if (pass && li == pass->stop) { /* a statistics pass ends here */
            int b = L->in[0];
            size_t bytes = tsr__nn_count(np->shapes[b]) * sizeof(float);
            float *h = malloc(bytes ? bytes : 1);
            if (!h)
                return tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of host memory for statistics");
            ex->kernel = "statistics";
            cl_int st = clEnqueueReadBuffer(ex->queue, slots[np->slot[b]], CL_TRUE, 0, bytes, h,
                                            0, NULL, NULL);
            if (st == CL_SUCCESS)
                reduce_owned(m, np, b, h, pass, L->pooling_type == 0);
            else
                rc = tsr__exec_cl_error(ex, st, "clEnqueueReadBuffer (statistics)");
            free(h);
            return rc;
        }
        const float *v = sync_vector(sync, li);
        if (v) {
            ex->kernel = "statistics";
            cl_int st =
                clEnqueueWriteBuffer(ex->queue, slots[np->slot[L->out[0]]], CL_TRUE, 0,
                                     tsr__nn_count(np->shapes[L->out[0]]) * 4, v, 0, NULL, NULL);
            if (st != CL_SUCCESS)
                rc = tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (statistics)");
            continue;
        }
        cl_mem in[TSR_NN_MAX_ARRAY], outs[TSR_NN_MAX_ARRAY];
        tsr_nn_shape ins[TSR_NN_MAX_ARRAY], oss[TSR_NN_MAX_ARRAY];
        for (int i = 0; i < L->n_in && i < TSR_NN_MAX_ARRAY; i++) {
            in[i] = slots[np->slot[L->in[i]]];
            ins[i] = np->shapes[L->in[i]];
        }
        for (int i = 0; i < L->n_out && i < TSR_NN_MAX_ARRAY; i++) {
            outs[i] = slots[np->slot[L->out[i]]];
            oss[i] = np->shapes[L->out[i]];
        }
        double t0 = profile ? now_s() : 0;
        rc = tsr__nn_cl_layer(ex, L, in, ins, outs, oss, m->dev ? m->dev[li] : NULL, scratch);
        if (rc)
            tsr__err_prefix(ex->err, "layer '%s' (%s): ", L->name, tsr__nn_type_name(L->type));
        /* Cancel is honoured between layers: wait for this one, then look at the flag. */
        if (!rc) {
            cl_int st = clFinish(ex->queue);
            if (st != CL_SUCCESS)
                rc = tsr__exec_cl_error(ex, st, "clFinish");
        }
        if (profile)
            fprintf(stderr, "profile: %-14s %-28s %4dx%-4dx%-4d -> %4dx%-4dx%-4d %9.3f ms\n",
                    tsr__nn_type_name(L->type), L->name, ins[0].c, ins[0].h, ins[0].w, oss[0].c,
                    oss[0].h, oss[0].w, (now_s() - t0) * 1e3);
        if (!rc && cancelled(ex))
            rc = tsr__seterr(ex->err, TSR_ERR_CANCELLED, "cancelled in node '%s' after layer '%s'",
                             ex->node ? ex->node->id : "?", L->name);
    }
    if (rc)
        return rc;
    cl_mem net = slots[np->slot[nn->output_blob]];
    if (pass && pass->raw) {
        tsr_image *r = pass->raw;
        ex->kernel = "raw output";
        for (int c = 0; c < 3 && !rc; c++)
            for (int y = 0; y < r->height && !rc; y++) {
                size_t off = (((size_t)c * os.h + g->oy + y) * os.w + g->ox) * sizeof(float);
                cl_int st = clEnqueueReadBuffer(
                    ex->queue, net, CL_TRUE, off, (size_t)r->width * sizeof(float),
                    r->data + ((size_t)c * r->height + y) * r->width, 0, NULL, NULL);
                if (st != CL_SUCCESS)
                    rc = tsr__exec_cl_error(ex, st, "clEnqueueReadBuffer (raw output)");
            }
        return rc;
    }
    if ((rc = kernel_of(ex, "tsr_net_output", &k)) ||
        (rc = tsr__exec_args(ex, k, 4, TSR_ARG(net), TSR_ARG(src->mem), TSR_ARG(out->mem),
                             TSR_ARG(G))) ||
        (rc = tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h,
                               (size_t)tsr__colour_channels(out->channels))))
        return rc;
    if (tsr__has_alpha(out->channels)) {
        if ((rc = kernel_of(ex, "tsr_net_alpha", &k)) ||
            (rc = tsr__exec_args(ex, k, 3, TSR_ARG(src->mem), TSR_ARG(out->mem), TSR_ARG(G))))
            return rc;
        rc = tsr__exec_launch(ex, k, (size_t)out->rect.w, (size_t)out->rect.h, 1);
    }
    return rc;
}

/* ---- the statistics passes ------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One tile of a statistics pass: the region to the device or a host copy, the network up to the
 * pass's layer, everything released. */
static tsr_status sync_tile(tsr_exec *ex, const tsr__model *m, const tsr__netopt *o,
                            const tsr_image *img, tsr_rect r, const tsr__netsync *sync,
                            const tsr__netpass *pass)
{
    tsr__netplan np;
    tsr_status rc = tsr__netplan_make(m, o, img->width, img->height, r, &np, ex->err);
    if (rc)
        return rc;
    tsr_rect s = np.geo.src;
    size_t bytes = tsr__image_bytes(s.w, s.h, img->channels);
    float *host = malloc(bytes ? bytes : 1);
    cl_mem slots[TSR_MAX_BUFS] = {0}, dsrc = NULL, scratch = NULL;
    if (!host) {
        rc = tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of host memory for statistics");
        goto done;
    }
    size_t plane = (size_t)img->width * img->height;
    for (int c = 0; c < img->channels; c++)
        for (int y = 0; y < s.h; y++)
            memcpy(host + ((size_t)c * s.h + y) * s.w,
                   img->data + c * plane + (size_t)(s.y + y) * img->width + s.x,
                   (size_t)s.w * sizeof(float));
    tsr_region src = {s, img->channels, img->width, img->height, NULL, host};
    if (!ex->cl) {
        rc = tsr__net_run_ref(m, o, &np, sync, pass, &src, NULL, ex->err);
        goto done;
    }
    for (int k = 0; k < np.n_slots && !rc; k++)
        rc = tsr__pool_alloc(ex->pool, np.slot_bytes[k] ? np.slot_bytes[k] : 4, &slots[k], ex->err);
    if (!rc && np.scratch)
        rc = tsr__pool_alloc(ex->pool, np.scratch, &scratch, ex->err);
    if (!rc)
        rc = tsr__pool_alloc(ex->pool, bytes, &dsrc, ex->err);
    if (!rc) {
        ex->kernel = "statistics";
        cl_int st =
            clEnqueueWriteBuffer(ex->queue, dsrc, CL_TRUE, 0, bytes, host, 0, NULL, NULL);
        if (st != CL_SUCCESS)
            rc = tsr__exec_cl_error(ex, st, "clEnqueueWriteBuffer (statistics)");
    }
    src.mem = dsrc;
    src.host = NULL;
    if (!rc)
        rc = tsr__net_run_cl(ex, m, o, &np, sync, pass, slots, scratch, &src, NULL);
    if (!rc) {
        cl_int st = clFinish(ex->queue);
        if (st != CL_SUCCESS)
            rc = tsr__exec_cl_error(ex, st, "clFinish");
    }
done:
    for (int k = 0; k < TSR_MAX_BUFS; k++)
        if (slots[k])
            tsr__pool_release(ex->pool, slots[k]);
    if (scratch)
        tsr__pool_release(ex->pool, scratch);
    if (dsrc)
        tsr__pool_release(ex->pool, dsrc);
    free(host);
    tsr__netplan_free(&np);
    return rc;
}

tsr_status tsr__net_sync(tsr_exec *ex, const tsr__model *m, const tsr__netopt *o,
                         const tsr_image *img, int tile_w, int tile_h, tsr__netsync *sync)
{
    const tsr_nn_model *nn = m->nn;
    memset(sync, 0, sizeof *sync);
    double t0 = now_s();
    for (int li = 0; li < nn->n_layers; li++)
        if (nn->layers[li].type == TSR_NN_POOLING && nn->layers[li].global_pooling) {
            if (sync->n == TSR_NET_MAX_POOL)
                return tsr__seterr(ex->err, TSR_ERR_LIMIT,
                                   "the model has more than %d global pooling layers",
                                   TSR_NET_MAX_POOL);
            sync->layer[sync->n++] = li;
        }
    int W = img->width * m->scale, H = img->height * m->scale;
    tsr_status rc = TSR_OK;
    for (int k = 0; k < sync->n && !rc; k++) {
        const tsr_nn_layer *L = &nn->layers[sync->layer[k]];
        /* The pooled blob's channels: from the shapes of any window, here the first tile's. */
        tsr__netplan np;
        tsr_rect r0 = {0, 0, tile_w < W ? tile_w : W, tile_h < H ? tile_h : H};
        if ((rc = tsr__netplan_make(m, o, img->width, img->height, r0, &np, ex->err)))
            break;
        int c = np.shapes[L->in[0]].c;
        tsr__netplan_free(&np);
        double *acc = calloc((size_t)c, sizeof *acc), count = 0;
        if (!acc)
            return tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of memory for statistics");
        if (L->pooling_type == 0)
            for (int i = 0; i < c; i++)
                acc[i] = -INFINITY;
        tsr__netpass pass = {sync->layer[k], acc, &count, NULL};
        for (int y = 0; y < H && !rc; y += tile_h)
            for (int x = 0; x < W && !rc; x += tile_w) {
                tsr_rect r = {x, y, tile_w < W - x ? tile_w : W - x,
                              tile_h < H - y ? tile_h : H - y};
                rc = sync_tile(ex, m, o, img, r, sync, &pass);
                if (!rc && cancelled(ex))
                    rc = tsr__seterr(ex->err, TSR_ERR_CANCELLED, "cancelled computing statistics");
            }
        if (!rc && !(sync->vec[k] = malloc((size_t)c * sizeof(float))))
            rc = tsr__seterr(ex->err, TSR_ERR_NOMEM, "out of memory for statistics");
        for (int i = 0; !rc && i < c; i++)
            sync->vec[k][i] = (float)(L->pooling_type == 0 ? acc[i] : acc[i] / count);
        free(acc);
    }
    sync->seconds = now_s() - t0;
    if (rc)
        tsr__netsync_free(sync);
    return rc;
}

tsr_status tsr__net_raw(tsr_engine *e, const tsr__model *m, const tsr_image *img, tsr_image **raw)
{
    tsr_exec ex;
    tsr__exec_init(&ex, e, NULL);
    *raw = NULL;
    tsr__netopt o = {TSR_NET_OVERLAP_AUTO, m->edge, m->residual};
    tsr_status rc = tsr_image_new(img->width * m->scale, img->height * m->scale, 3, raw);
    if (rc)
        return tsr__seterr(ex.err, rc, "out of memory");
    if (!(rc = tsr__model_upload(&ex, (tsr__model *)m))) {
        tsr__netpass pass = {-1, NULL, NULL, *raw};
        rc = sync_tile(&ex, m, &o, img, (tsr_rect){0, 0, (*raw)->width, (*raw)->height}, NULL,
                       &pass);
    }
    if (rc) {
        tsr_image_free(*raw);
        *raw = NULL;
    }
    return rc;
}
