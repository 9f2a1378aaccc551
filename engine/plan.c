/* Planner: splits the graph into tiled stages, estimates the device memory of a tile, and picks
 * the largest tile whose estimate fits the tile target (a speed preference: on a CPU device
 * about twice its cache), else the budget (the hard cap). Pure: reads the graph, touches no
 * pixel, so the same graph, image sizes, budget and target give the same plan everywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

tsr_rect tsr__clamp_rect(tsr_rect want, int w, int h)
{
    int x0 = clampi(want.x, 0, w - 1), x1 = clampi(want.x + want.w - 1, 0, w - 1);
    int y0 = clampi(want.y, 0, h - 1), y1 = clampi(want.y + want.h - 1, 0, h - 1);
    if (want.w <= 0 || want.h <= 0)
        x1 = x0, y1 = y0;
    return (tsr_rect){x0, y0, x1 - x0 + 1, y1 - y0 + 1};
}

static int tileable(const tsr_node *n)
{
    return !(n->cls->flags & (TSR_NODE_SOURCE | TSR_NODE_SINK | TSR_NODE_BARRIER));
}

tsr_status tsr__tile_alloc(const tsr_graph *g, tsr__tile *t)
{
    size_t n = (size_t)g->n_nodes;
    t->need = calloc(n, sizeof *t->need);
    t->up = calloc(n * TSR_MAX_PORTS, sizeof *t->up);
    t->plan = calloc(n, sizeof *t->plan);
    t->bytes = calloc(n * TSR_SLOTS, sizeof *t->bytes);
    t->max = calloc(n * TSR_SLOTS, sizeof *t->max);
    if (t->need && t->up && t->plan && t->bytes && t->max)
        return TSR_OK;
    tsr__tile_free(t);
    return TSR_ERR_NOMEM;
}

void tsr__tile_free(tsr__tile *t)
{
    free(t->need);
    free(t->up);
    free(t->plan);
    free(t->bytes);
    free(t->max);
    memset(t, 0, sizeof *t);
}

/* Rounded like the pool rounds, so the estimate includes its slack. */
static size_t pool_bytes(int w, int h, int c)
{
    size_t b = tsr__image_bytes(w, h, c);
    return b ? tsr__pool_class_size(b) : 0;
}

static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

void tsr__stage_rects(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s, tsr_rect r,
                      tsr__tile *t)
{
    /* Requests flow from the root to the leaves. */
    t->need[s->root] = r;
    for (int k = s->n_nodes - 1; k >= 0; k--) {
        int v = s->nodes[k];
        const tsr_node *n = &g->nodes[v];
        tsr_port_info in[TSR_MAX_PORTS];
        memset(in, 0, sizeof in);
        for (int i = 0; i < n->cls->n_inputs; i++)
            in[i] = g->nodes[n->inputs[i].node].out_info[n->inputs[i].port];
        memset(&t->plan[v], 0, sizeof t->plan[v]);
        n->cls->plan(n, in, &t->need[v], &t->plan[v]);
        for (int i = 0; i < n->cls->n_inputs; i++) {
            if (!tsr__port_is_image(n->cls, i))
                continue;
            int src = n->inputs[i].node;
            tsr_rect c = tsr__clamp_rect(t->plan[v].in[i], in[i].width, in[i].height);
            if (p->host[src])
                t->up[v * TSR_MAX_PORTS + i] = c;
            else
                t->need[src] = c;
        }
    }
}

/* Pool-rounded size of every buffer of the tile in t (after tsr__stage_rects), into b. */
static void tile_bytes(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s,
                       const tsr__tile *t, size_t *b)
{
    for (int k = 0; k < s->n_nodes; k++) {
        int v = s->nodes[k];
        const tsr_node *n = &g->nodes[v];
        size_t *slot = b + (size_t)k * TSR_SLOTS;
        slot[0] = pool_bytes(t->need[v].w, t->need[v].h, n->out_info[0].channels);
        for (int i = 0; i < n->cls->n_inputs; i++) {
            int src = n->inputs[i].node;
            if (tsr__port_is_image(n->cls, i) && p->host[src]) {
                tsr_rect c = t->up[v * TSR_MAX_PORTS + i];
                slot[1 + i] = pool_bytes(c.w, c.h, g->nodes[src].out_info[0].channels);
            }
        }
        const tsr_plan *pl = &t->plan[v];
        for (int i = 0; i < TSR_MAX_BUFS; i++)
            slot[TSR_SLOT_BUF(i)] =
                i < pl->n_bufs && pl->bufs[i].bytes ? tsr__pool_class_size(pl->bufs[i].bytes) : 0;
    }
}

/* Resident bytes (models' weights) the nodes of a stage need, from the tile in t. */
static size_t stage_resident(const tsr__stage *s, const tsr__tile *t)
{
    size_t r = 0;
    for (int k = 0; k < s->n_nodes; k++)
        r = add_sat(r, t->plan[s->nodes[k]].resident_bytes);
    return r;
}

/* Peak of the buffers alive at once, in execution order: resident bytes (models) and every
 * node's RUN buffers for the whole stage; an upload lives while its node runs, a node's output
 * from its run to its consumer's end, TILE buffers during its node's run. */
static int is_run_buf(const tsr__tile *t, int v, int i)
{
    return i < t->plan[v].n_bufs && t->plan[v].bufs[i].life == TSR_BUF_RUN;
}

static size_t simulate(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s,
                       const tsr__tile *t, const size_t *b, size_t resident, size_t *largest)
{
    size_t live = resident, peak = 0, big = 0;
    for (int k = 0; k < s->n_nodes; k++) {
        const size_t *slot = b + (size_t)k * TSR_SLOTS;
        for (int i = 0; i < TSR_MAX_BUFS; i++)
            if (is_run_buf(t, s->nodes[k], i))
                live = add_sat(live, slot[TSR_SLOT_BUF(i)]);
    }
    for (int k = 0; k < s->n_nodes; k++) {
        int v = s->nodes[k];
        const tsr_node *n = &g->nodes[v];
        const size_t *slot = b + (size_t)k * TSR_SLOTS;
        size_t inputs = 0;
        for (int i = 0; i < n->cls->n_inputs; i++) {
            if (!tsr__port_is_image(n->cls, i))
                continue;
            int src = n->inputs[i].node;
            size_t in = p->host[src] ? slot[1 + i] : b[(size_t)p->pos[src] * TSR_SLOTS];
            inputs = add_sat(inputs, in);
            if (p->host[src])
                live = add_sat(live, in);
        }
        live = add_sat(live, slot[0]);
        size_t during = live;
        for (int i = 0; i < TSR_MAX_BUFS; i++)
            if (!is_run_buf(t, v, i))
                during = add_sat(during, slot[TSR_SLOT_BUF(i)]);
        if (during > peak)
            peak = during;
        for (int j = 0; j < TSR_SLOTS; j++)
            big = slot[j] > big ? slot[j] : big;
        live = live >= inputs ? live - inputs : 0;
    }
    if (largest)
        *largest = big;
    return peak;
}

size_t tsr__stage_tile(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s, tsr_rect r,
                       tsr__tile *t)
{
    tsr__stage_rects(g, p, s, r, t);
    tile_bytes(g, p, s, t, t->bytes);
    return simulate(g, p, s, t, t->bytes, stage_resident(s, t), &t->largest);
}

/* Every tile of a stage asks for the same buffer sizes, the largest over the grid, so that the
 * pool serves every tile after the first from its cache. The estimate is the peak with those
 * sizes (an upper bound of every tile's own peak). Stops early once one tile passes `limit`. */
static size_t grid_estimate(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s,
                            tsr__tile *t, int tw, int th, size_t limit)
{
    const tsr_port_info *o = &g->nodes[s->root].out_info[0];
    size_t n = (size_t)s->n_nodes * TSR_SLOTS;
    memset(t->max, 0, n * sizeof *t->max);
    for (int y = 0; y < o->height; y += th)
        for (int x = 0; x < o->width; x += tw) {
            tsr_rect r = {x, y, tw < o->width - x ? tw : o->width - x,
                          th < o->height - y ? th : o->height - y};
            size_t e = tsr__stage_tile(g, p, s, r, t);
            if ((p->max_alloc && t->largest > p->max_alloc) || e == SIZE_MAX)
                return SIZE_MAX; /* one buffer would pass the device's largest allocation */
            if (limit && e > limit)
                return e;
            for (size_t i = 0; i < n; i++)
                t->max[i] = t->bytes[i] > t->max[i] ? t->bytes[i] : t->max[i];
        }
    return simulate(g, p, s, t, t->max, stage_resident(s, t), NULL);
}

/* Largest k in [lo, hi] with fits(k), or lo - 1; fits is monotone (true then false). */
#define BSEARCH(lo, hi, fits_expr, result)                                                         \
    do {                                                                                           \
        int lo_ = (lo), hi_ = (hi);                                                                \
        (result) = lo_ - 1;                                                                        \
        while (lo_ <= hi_) {                                                                       \
            int k = lo_ + (hi_ - lo_) / 2;                                                         \
            if (fits_expr) {                                                                       \
                (result) = k;                                                                      \
                lo_ = k + 1;                                                                       \
            } else {                                                                               \
                hi_ = k - 1;                                                                       \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Tile sizes are multiples of 8 (or the whole side): full-width strips first, as tall as fit;
 * else near-square tiles, as large as fit. Under B; `quiet`: no message when nothing fits. */
static tsr_status choose_tile_under(tsr_engine *e, const tsr_graph *g, const tsr__plan *p,
                                    tsr__stage *s, tsr__tile *t, size_t B, int quiet)
{
    const tsr_node *root = &g->nodes[s->root];
    int W = root->out_info[0].width, H = root->out_info[0].height;
    int whole = !B || (root->cls->flags & TSR_NODE_BARRIER);
    if (whole || grid_estimate(g, p, s, t, W, H, B) <= B) {
        s->tile_w = W;
        s->tile_h = H;
    } else {
        int best, lo = TSR_MIN_TILE / 8;
        BSEARCH(lo, H / 8, grid_estimate(g, p, s, t, W, k * 8, B) <= B, best);
        if (best >= lo) {
            s->tile_w = W;
            s->tile_h = best * 8;
        } else {
            int side = W > H ? W : H;
            BSEARCH(lo, (side + 7) / 8,
                    grid_estimate(g, p, s, t, k * 8 < W ? k * 8 : W, k * 8 < H ? k * 8 : H, B) <= B,
                    best);
            if (best < lo) {
                if (quiet)
                    return TSR_ERR_DEVICE_NOMEM;
                int mw = W < TSR_MIN_TILE ? W : TSR_MIN_TILE,
                    mh = H < TSR_MIN_TILE ? H : TSR_MIN_TILE;
                size_t need = grid_estimate(g, p, s, t, mw, mh, 0);
                if (need == SIZE_MAX)
                    return tsr__seterr(tsr__eerr(e), TSR_ERR_DEVICE_NOMEM,
                                       "stage '%s': even a %dx%d tile needs a buffer larger than "
                                       "the device's largest allocation (%zu bytes)",
                                       root->id, mw, mh, p->max_alloc);
                size_t res = stage_resident(s, t);
                char model[160] = "";
                if (res)
                    snprintf(model, sizeof model,
                             " (%zu bytes, %.1f MiB, of it are a model's resident weights)", res,
                             res / 1048576.0);
                return tsr__seterr(tsr__eerr(e), TSR_ERR_DEVICE_NOMEM,
                                   "stage '%s': even the smallest tile (%dx%d) needs about %zu "
                                   "bytes (%.1f MiB) of device memory%s, over the budget of %zu "
                                   "bytes (%.1f MiB): raise --vram-limit",
                                   root->id, mw, mh, need, need / 1048576.0, model, B,
                                   B / 1048576.0);
            }
            s->tile_w = best * 8 < W ? best * 8 : W;
            s->tile_h = best * 8 < H ? best * 8 : H;
        }
    }
    return TSR_OK;
}

/* Tiles aimed at the speed target first (a barrier stage runs whole anyway); a stage whose
 * smallest tile exceeds the target (a model's resident weights) is planned under the budget,
 * the hard cap, as if there were no target. */
static tsr_status choose_tile(tsr_engine *e, const tsr_graph *g, const tsr__plan *p, tsr__stage *s,
                              tsr__tile *t)
{
    if (p->target && p->target < p->budget &&
        choose_tile_under(e, g, p, s, t, p->target, 1) == TSR_OK)
        return TSR_OK;
    return choose_tile_under(e, g, p, s, t, p->budget, 0);
}

/* The stage's nodes in execution order (inputs first, root last), into out; returns how many.
 * Iterative, with the caller's scratch stack (one int pair per graph node), so a chain of
 * thousands of nodes neither recurses that deep nor costs more than linear time. */
static int stage_collect(const tsr_graph *g, const tsr__plan *p, int root, int *out, int *stk,
                         int *port)
{
    int n_out = 0, top = 0;
    stk[0] = root;
    port[0] = 0;
    while (top >= 0) {
        int v = stk[top];
        const tsr_node *n = &g->nodes[v];
        int i = port[top];
        while (i < n->cls->n_inputs &&
               !(tsr__port_is_image(n->cls, i) && !p->host[n->inputs[i].node]))
            i++;
        if (i < n->cls->n_inputs) {
            port[top] = i + 1;
            top++;
            stk[top] = n->inputs[i].node;
            port[top] = 0;
        } else {
            out[n_out++] = v;
            top--;
        }
    }
    return n_out;
}

void tsr__plan_clear(tsr__plan *p)
{
    for (int i = 0; i < p->n_stages; i++) {
        free(p->stages[i].nodes);
        free(p->stages[i].bytes);
    }
    free(p->stages);
    free(p->host);
    free(p->stage_of);
    free(p->pos);
    memset(p, 0, sizeof *p);
}

/* ---- host memory ----------------------------------------------------------------------------- */

/* Bytes per sample a codec works in for a bit depth (8, 16, 32: float TIFF). */
static size_t depth_bytes(int depth)
{
    return depth > 16 ? 4 : depth > 8 ? 2 : 1;
}

/* The format node n's "path" (and "format") params name. */
static tsr_format node_format(const tsr_node *n)
{
    int f = tsr__param_index(n->cls, "format");
    if (f >= 0 && n->params[f].set && n->params[f].str)
        return (tsr_format)(n->params[f].ival + 1); /* "png|jpeg|webp|tiff" */
    int p = tsr__param_index(n->cls, "path");
    return p >= 0 && n->params[p].str ? tsr__format_from_path(n->params[p].str) : TSR_FORMAT_AUTO;
}

/* An upper bound of the working memory of the decoder (a source reading a file) or encoder (a
 * sink writing one) of node n, beyond the float image itself, for image info o. Row bands are
 * not counted; whole-image buffers are: a PNG decoder keeps every row of an interlaced file,
 * WebP decodes to an 8-bit RGBA copy and encodes from one, a TIFF encoder holds the whole
 * encoded file (counted uncompressed), and writing to standard output ("-") holds the whole
 * encoded file too. A file whose EXIF orientation turns it is copied into a second float32
 * image while it loads. */
static size_t codec_bytes(const tsr_node *n, const tsr_port_info *o)
{
    int p = tsr__param_index(n->cls, "path");
    if (p < 0 || !n->params[p].str || n->bound || n->px)
        return 0;
    size_t px = (size_t)o->width * (size_t)o->height, samples = px * (size_t)o->channels;
    tsr_format f = node_format(n);
    if (n->cls->flags & TSR_NODE_SOURCE) /* a file turned upright is copied once more */
        return (f == TSR_FORMAT_WEBP ? 4 * px : samples * depth_bytes(o->bit_depth)) +
               (o->reoriented ? samples * sizeof(float) : 0);
    int d = tsr__param_index(n->cls, "bit_depth");
    int depth = d >= 0 && n->params[d].set ? n->params[d].ival : o->bit_depth;
    size_t db = depth_bytes(depth), bytes = 0;
    if (f == TSR_FORMAT_TIFF)
        bytes = samples * db;
    else if (f == TSR_FORMAT_WEBP)
        bytes = 4 * px + samples;
    if (!strcmp(n->params[p].str, "-"))
        bytes += samples * db;
    return bytes;
}

/* The bytes a host image of node v's output takes. */
static size_t out_bytes(const tsr_graph *g, int v)
{
    const tsr_port_info *o = &g->nodes[v].out_info[0];
    return tsr__image_bytes(o->width, o->height, o->channels);
}

/* What a job keeps of node v's image (docs: kept outputs): the image itself when it fits
 * keep_side (*ref set: it is then never freed), else a reduced copy of this many bytes. */
static size_t kept_bytes(const tsr_graph *g, int keeper, int v, int *ref)
{
    const tsr_port_info *o = &g->nodes[v].out_info[0];
    int w = o->width, h = o->height, big = w > h ? w : h, side = g->nodes[keeper].keep_side;
    *ref = side <= 0 || big <= side;
    if (*ref)
        return 0;
    int ow = (int)((int64_t)w * side / big), oh = (int)((int64_t)h * side / big);
    return tsr__image_bytes(ow < 1 ? 1 : ow, oh < 1 ? 1 : oh, o->channels);
}

/* The peak of host bytes alive at once when the job runs, walking the graph as run_steps in
 * engine/exec.c does (without the result cache): a source's image from its run to its last
 * reader (a bound image for the whole run), a stage's output from the stage's start to its last
 * reader, kept outputs to the end, plus a codec's working memory while it runs. */
static tsr_status host_estimate(tsr_engine *e, const tsr_graph *g, tsr__plan *p)
{
    size_t n = (size_t)g->n_nodes;
    char *needed = calloc(n ? n : 1, 1), *held = calloc(n ? n : 1, 1);
    int *users = calloc(n ? n : 1, sizeof *users);
    if (!needed || !users || !held) {
        free(needed);
        free(users);
        free(held);
        return tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory planning the graph");
    }
    for (size_t v = 0; v < n; v++)
        needed[v] = (g->nodes[v].cls->flags & TSR_NODE_SINK) || g->nodes[v].keep;
    for (int k = g->n_nodes - 1; k >= 0; k--) {
        const tsr_node *nd = &g->nodes[g->order[k]];
        if (needed[g->order[k]] && !(nd->cls->flags & TSR_NODE_VALUE))
            for (int i = 0; i < nd->cls->n_inputs; i++)
                if (nd->inputs[i].connected)
                    needed[nd->inputs[i].node] = 1;
    }
    size_t live = 0, peak = 0;
    int at = -1;
    for (size_t v = 0; v < n; v++) {
        const tsr_node *nd = &g->nodes[v];
        if (needed[v] && nd->bound) { /* held by the graph for the whole run */
            live = add_sat(
                live, tsr__image_bytes(nd->bound->width, nd->bound->height, nd->bound->channels));
            held[v] = 1;
        }
        if (!needed[v] || (nd->cls->flags & TSR_NODE_VALUE))
            continue;
        for (int i = 0; i < nd->cls->n_inputs; i++)
            if (tsr__port_is_image(nd->cls, i))
                users[nd->inputs[i].node] += p->host[nd->inputs[i].node];
    }
#define PEAK(bytes, node)                                                                          \
    do {                                                                                           \
        size_t b_ = (bytes);                                                                       \
        if (b_ > peak || at < 0) {                                                                 \
            peak = b_;                                                                             \
            at = (node);                                                                           \
        }                                                                                          \
    } while (0)
#define KEEP(keeper, v)                                                                            \
    do {                                                                                           \
        int ref_;                                                                                  \
        live = add_sat(live, kept_bytes(g, (keeper), (v), &ref_));                                 \
        held[v] |= ref_;                                                                           \
    } while (0)
#define RELEASE(v)                                                                                 \
    do {                                                                                           \
        if (!held[v])                                                                              \
            live -= out_bytes(g, (v));                                                             \
    } while (0)
    for (int k = 0; k < g->n_nodes; k++) {
        int v = g->order[k];
        const tsr_node *nd = &g->nodes[v];
        if (!needed[v] || (nd->cls->flags & TSR_NODE_VALUE))
            continue;
        if (nd->cls->flags & TSR_NODE_SOURCE) {
            if (!nd->bound)
                live = add_sat(live, out_bytes(g, v));
            PEAK(add_sat(live, codec_bytes(nd, &nd->out_info[0])), v);
            if (nd->keep)
                KEEP(v, v);
            if (users[v] == 0)
                RELEASE(v);
        } else if (nd->cls->flags & TSR_NODE_SINK) {
            int src = nd->inputs[0].node;
            PEAK(add_sat(live, codec_bytes(nd, &g->nodes[src].out_info[0])), v);
            if (nd->keep || !strcmp(nd->cls->name, "image.output"))
                KEEP(v, src);
            PEAK(live, v);
            if (p->host[src] && --users[src] == 0)
                RELEASE(src);
        } else if (p->host[v] && p->stage_of[v] >= 0) {
            const tsr__stage *s = &p->stages[p->stage_of[v]];
            live = add_sat(live, out_bytes(g, v));
            PEAK(live, v);
            for (int j = 0; j < s->n_nodes; j++) {
                const tsr_node *m = &g->nodes[s->nodes[j]];
                for (int i = 0; i < m->cls->n_inputs; i++) {
                    int src = m->inputs[i].node;
                    if (tsr__port_is_image(m->cls, i) && p->host[src] && --users[src] == 0)
                        RELEASE(src);
                }
            }
            if (nd->keep)
                KEEP(v, v);
            PEAK(live, v);
            if (users[v] == 0)
                RELEASE(v);
        }
    }
#undef PEAK
#undef KEEP
#undef RELEASE
    free(needed);
    free(users);
    free(held);
    p->host_peak = peak;
    p->host_peak_node = at;
    p->device_peak = 0;
    for (int i = 0; i < p->n_stages; i++)
        if (p->stages[i].estimate > p->device_peak)
            p->device_peak = p->stages[i].estimate;
    /* Device buffers that are host memory: on the ref engine, one stage's buffers at a time
     * (freed when the stage ends); on an OpenCL CPU device, the pool keeps a stage's blocks
     * cached while later stages run, so every stage's, up to the pool's cap. */
    p->host_device = e->host_device;
    p->device_host = 0;
    if (e->host_device && !e->cl) {
        p->device_host = p->device_peak;
    } else if (e->host_device) {
        for (int i = 0; i < p->n_stages; i++)
            p->device_host = add_sat(p->device_host, p->stages[i].estimate);
        if (p->budget && p->device_host > p->budget)
            p->device_host = p->budget;
    }
    p->staging = e->staging ? tsr__pool_cap(e->staging) : 0;
    p->host_need = add_sat(add_sat(peak, p->staging), p->device_host);
    p->mem_limit = (size_t)e->mem_limit;
    if (!p->mem_limit || p->host_need <= p->mem_limit)
        return TSR_OK;
    char where[512] = "";
    if (at >= 0) {
        const tsr_node *nd = &g->nodes[at];
        int src = nd->cls->flags & TSR_NODE_SINK ? nd->inputs[0].node : at;
        const tsr_port_info *o = &g->nodes[src].out_info[0];
        snprintf(where, sizeof where, " at node '%s' (%s %dx%dx%d float32, %zu bytes)", nd->id,
                 src == at ? "its output" : "its input", o->width, o->height, o->channels,
                 out_bytes(g, src));
    }
    char dev[256] = "";
    if (e->host_device)
        snprintf(dev, sizeof dev,
                 ", of it %zu bytes of device buffers (the device's memory is host memory)",
                 p->device_host);
    if (p->staging)
        snprintf(dev + strlen(dev), sizeof dev - strlen(dev), "%s%zu bytes of staging buffers",
                 e->host_device ? " and " : ", of it ", p->staging);
    return tsr__seterr(tsr__eerr(e), TSR_ERR_LIMIT,
                       "the graph needs about %zu bytes (%.1f MiB) of host memory%s%s, over the "
                       "host budget of %zu bytes (%.1f MiB): raise --mem-limit or TSR_MEM_LIMIT",
                       p->host_need, p->host_need / 1048576.0, where, dev, p->mem_limit,
                       p->mem_limit / 1048576.0);
}

tsr_status tsr__plan_make(tsr_engine *e, tsr_graph *g, int force_w, int force_h, tsr__plan *out)
{
    memset(out, 0, sizeof *out);
    size_t n = (size_t)g->n_nodes;
    int *consumers = calloc(n, sizeof *consumers);
    int *tile_consumers = calloc(n, sizeof *tile_consumers);
    out->host = calloc(n, 1);
    out->stage_of = malloc(n * sizeof *out->stage_of);
    out->pos = malloc(n * sizeof *out->pos);
    out->stages = calloc(n, sizeof *out->stages);
    int *scratch = malloc(3 * n * sizeof *scratch); /* collected nodes, DFS stack, DFS ports */
    tsr__tile t = {0};
    tsr_status rc = TSR_OK;
    if (!consumers || !tile_consumers || !out->host || !out->stage_of || !out->pos ||
        !out->stages || !scratch || tsr__tile_alloc(g, &t)) {
        rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory planning the graph");
        goto done;
    }
    out->budget = e->cl ? (size_t)e->vram_limit : 0;
    out->target = e->cl ? (size_t)e->tile_target : 0;
    out->max_alloc = e->cl ? (size_t)e->cl->info.max_alloc : 0;
    for (size_t v = 0; v < n; v++) {
        out->stage_of[v] = -1;
        out->pos[v] = -1;
        const tsr_node *nd = &g->nodes[v];
        for (int i = 0; i < nd->cls->n_inputs; i++) {
            if (!tsr__port_is_image(nd->cls, i))
                continue;
            consumers[nd->inputs[i].node]++;
            tile_consumers[nd->inputs[i].node] += tileable(nd);
        }
    }
    for (size_t v = 0; v < n; v++) {
        const tsr_node *nd = &g->nodes[v];
        if (nd->cls->flags & (TSR_NODE_SINK | TSR_NODE_VALUE))
            continue;
        out->host[v] |=
            !tileable(nd) || consumers[v] != 1 || tile_consumers[v] != 1 || nd->keep || g->split;
        if (nd->cls->flags & TSR_NODE_HOST_INPUTS)
            for (int i = 0; i < nd->cls->n_inputs; i++)
                if (tsr__port_is_image(nd->cls, i))
                    out->host[nd->inputs[i].node] = 1;
    }
    for (int k = 0; k < g->n_nodes && !rc; k++) {
        int v = g->order[k];
        const tsr_node *nd = &g->nodes[v];
        if (!out->host[v] || (nd->cls->flags & TSR_NODE_SOURCE))
            continue;
        tsr__stage *s = &out->stages[out->n_stages];
        int m = stage_collect(g, out, v, scratch, scratch + n, scratch + 2 * n);
        if (!(s->nodes = malloc((size_t)m * sizeof *s->nodes))) {
            rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory planning the graph");
            break;
        }
        memcpy(s->nodes, scratch, (size_t)m * sizeof *s->nodes);
        s->n_nodes = m;
        s->root = v;
        for (int j = 0; j < s->n_nodes; j++) {
            out->stage_of[s->nodes[j]] = out->n_stages;
            out->pos[s->nodes[j]] = j;
        }
        out->n_stages++;
        const tsr_port_info *o = &nd->out_info[0];
        if (force_w > 0 && force_h > 0) {
            s->tile_w = force_w < o->width ? force_w : o->width;
            s->tile_h = force_h < o->height ? force_h : o->height;
        } else if ((rc = choose_tile(e, g, out, s, &t))) {
            break; /* no tile fits: tile_w is 0, there is nothing to count */
        }
        size_t nb = (size_t)s->n_nodes * TSR_SLOTS;
        if (!(s->bytes = malloc(nb * sizeof *s->bytes))) {
            rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory planning the graph");
            break;
        }
        s->estimate = grid_estimate(g, out, s, &t, s->tile_w, s->tile_h, 0);
        s->resident = stage_resident(s, &t);
        memcpy(s->bytes, t.max, nb * sizeof *s->bytes);
        s->tiles = (int64_t)((o->width + s->tile_w - 1) / s->tile_w) *
                   ((o->height + s->tile_h - 1) / s->tile_h);
        int mw = o->width < TSR_MIN_TILE ? o->width : TSR_MIN_TILE;
        int mh = o->height < TSR_MIN_TILE ? o->height : TSR_MIN_TILE;
        s->min_estimate = grid_estimate(g, out, s, &t, mw, mh, 0);
    }
    if (!rc)
        rc = host_estimate(e, g, out);
done:
    free(scratch);
    free(consumers);
    free(tile_consumers);
    tsr__tile_free(&t);
    if (rc)
        tsr__plan_clear(out);
    return rc;
}

/* The "plan" event: node ids are whatever the graph file spelt, so they go through the
 * writer's escaping. */
static char *plan_json(const tsr_graph *g, const tsr__plan *p)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    tsr__json_kstr(&j, "event", "plan");
    tsr__json_kuint(&j, "budget_bytes", p->budget);
    tsr__json_kuint(&j, "tile_target_bytes", p->target);
    tsr__json_kuint(&j, "host_estimate_bytes", p->host_need);
    tsr__json_kuint(&j, "host_images_bytes", p->host_peak);
    tsr__json_kstr(&j, "host_peak_node",
                   p->host_peak_node >= 0 ? g->nodes[p->host_peak_node].id : NULL);
    tsr__json_kbool(&j, "host_device", p->host_device);
    tsr__json_kuint(&j, "host_device_bytes", p->device_host);
    tsr__json_kuint(&j, "host_staging_bytes", p->staging);
    tsr__json_kuint(&j, "host_budget_bytes", p->mem_limit);
    tsr__json_key(&j, "stages");
    tsr__json_arr(&j);
    for (int i = 0; i < p->n_stages; i++) {
        const tsr__stage *s = &p->stages[i];
        tsr__json_obj(&j);
        tsr__json_kstr(&j, "root", g->nodes[s->root].id);
        tsr__json_key(&j, "nodes");
        tsr__json_arr(&j);
        for (int k = 0; k < s->n_nodes; k++)
            tsr__json_str(&j, g->nodes[s->nodes[k]].id);
        tsr__json_end(&j);
        tsr__json_kint(&j, "tile_width", s->tile_w);
        tsr__json_kint(&j, "tile_height", s->tile_h);
        tsr__json_kint(&j, "tiles", s->tiles);
        tsr__json_kuint(&j, "estimate_bytes", s->estimate);
        tsr__json_end(&j);
    }
    tsr__json_end(&j);
    tsr__json_end(&j);
    return tsr__json_take(&j);
}

char *tsr__plan_describe(const tsr_graph *g, const tsr__plan *p, int json)
{
    if (json)
        return plan_json(g, p);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    if (p->budget)
        fprintf(f, "budget: %zu bytes (%.1f MiB)\n", p->budget, p->budget / 1048576.0);
    else
        fprintf(f, "budget: none (reference engine, host memory)\n");
    /* The first host line depends only on the graph; the second on the device and the host. */
    fprintf(f, "host: images peak %zu bytes (%.1f MiB)", p->host_peak, p->host_peak / 1048576.0);
    if (p->host_peak_node >= 0)
        fprintf(f, " at node '%s'", g->nodes[p->host_peak_node].id);
    fprintf(f, "\nhost estimate: %zu bytes (%.1f MiB)", p->host_need, p->host_need / 1048576.0);
    if (p->staging)
        fprintf(f, " with %zu bytes of staging buffers", p->staging);
    if (p->host_device)
        fprintf(f, " and %zu bytes of device buffers (the device's memory is host memory)",
                p->device_host);
    if (p->mem_limit)
        fprintf(f, "; host budget %zu bytes (%.1f MiB)\n", p->mem_limit, p->mem_limit / 1048576.0);
    else
        fprintf(f, "; no host budget\n");
    if (p->target)
        fprintf(f, "tile target: %zu bytes (%.1f MiB), for speed\n", p->target,
                p->target / 1048576.0);
    for (int i = 0; i < p->n_stages; i++) {
        const tsr__stage *s = &p->stages[i];
        const tsr_port_info *o = &g->nodes[s->root].out_info[0];
        fprintf(f, "stage %d: ", i + 1);
        for (int j = 0; j < s->n_nodes; j++)
            fprintf(f, "%s%s", j ? " -> " : "", g->nodes[s->nodes[j]].id);
        fprintf(f, "\n  output %dx%d, %d channel%s\n", o->width, o->height, o->channels,
                o->channels == 1 ? "" : "s");
        fprintf(f, "  tile %dx%d, %lld tile%s\n", s->tile_w, s->tile_h, (long long)s->tiles,
                s->tiles == 1 ? "" : "s");
        fprintf(f, "  estimated peak %zu bytes (%.1f MiB)\n", s->estimate, s->estimate / 1048576.0);
    }
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}
