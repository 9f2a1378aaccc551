/* Kernel launches: a long launch is enqueued in slices (bands of rows, or of columns for a
 * one-row launch), each sized from the throughput this context measured for the kernel, so
 * that the queue never holds more than about 20 ms of work and a cancel is noticed between
 * two slices.
 *
 * A slice is the same kernel over part of the NDRange, placed with the global work offset, so
 * each work item sees the get_global_id it has in the whole launch. That is safe for every
 * kernel in kernels/ as of this writing (checked file by file: adjust.*, blur.gaussian,
 * color.grayscale, resize, sharpen, upscale, nn, nn_winograd): none calls get_group_id,
 * get_global_size, get_global_offset or get_num_groups or uses local memory or barriers; each
 * returns early past its own bounds; the only one that indexes scratch by work item,
 * tsr_nn_wino_fused_ocN, does so with get_global_id, so a slice's items use the same scratch
 * slices as in the whole launch; sharpen, the one in-place kernel, reads only the sample it
 * writes. A kernel that broke one of these rules (a reduction over its work group, a scratch
 * indexed by get_group_id) would compute wrong results in slices: keep them out of kernels/.
 *
 * Sizes. Per context, per (kernel object, gz), the seconds per work item the last sliced launch
 * of the kernel took (the larger of its average so far and its last slice's). A launch that this
 * says takes at most a quarter of the 20 ms target is enqueued whole, with no event and no wait:
 * small tiles cost what they did before slicing existed. Every other launch is sliced, a
 * kernel's first in the context however small (that is how the kernel gets timed: a few waits,
 * once): the queue is drained, the first slice (a quarter of the target, or for a kernel never
 * timed 2^14 items or a 16th of the launch if fewer) runs alone so that its time sizes the rest,
 * then one slice runs while the next waits behind it in the queue, each at most 4x larger or
 * smaller than the one before. A cancel is seen after the drain and after each slice; the queue
 * is then drained again, so that it is answered within about two slices.
 *
 * The times are per kernel, not per argument set (the arguments cannot be read back from a
 * cl_kernel): a launch whose arguments make each item k times slower than when the kernel was
 * last timed (a larger blur radius) runs its first slice, or the whole launch when the old time
 * called it small, for up to k x 5 ms before the times catch up. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

size_t tsr__launch_max_items;
int tsr__launch_whole;

#define TARGET_S 0.020      /* what one slice should take */
#define FIRST_SHARE 0.25    /* of it: a launch's first slice, and the most a launch run whole */
#define FIRST_ITEMS 16384.0 /* first slice of a kernel never timed, at most */
#define GROWTH 4.0          /* a slice is within this factor of the one before */
#define KINDS 64            /* (kernel, gz) pairs remembered per context */

typedef struct launch_kind {
    cl_kernel k;
    size_t gz;
    double cost; /* seconds per work item, as the last slice left it; 0: never timed */
} launch_kind;

struct tsr__launch_state {
    launch_kind kinds[KINDS];
    int n, next;          /* kinds in use; the one to replace next when all are */
    size_t env_max_items; /* TSR_LAUNCH_MAX_ITEMS when the state was made */
    tsr__launch_counts counts;
};

void tsr__launch_state_free(struct tsr__launch_state *s)
{
    free(s);
}

/* The counts are written with atomic adds and read with atomic loads, so that another thread
 * (a test's canceller, a monitor) may watch a running context. */
tsr__launch_counts tsr__launch_counts_of(const tsr__ctx *c)
{
    tsr__launch_counts n = {0, 0, 0};
    struct tsr__launch_state *s = c ? __atomic_load_n(&c->launch, __ATOMIC_ACQUIRE) : NULL;
    if (s) {
        n.launches = __atomic_load_n(&s->counts.launches, __ATOMIC_RELAXED);
        n.sliced = __atomic_load_n(&s->counts.sliced, __ATOMIC_RELAXED);
        n.slices = __atomic_load_n(&s->counts.slices, __ATOMIC_RELAXED);
    }
    return n;
}

static void count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct tsr__launch_state *state_new(void)
{
    struct tsr__launch_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const char *env = getenv("TSR_LAUNCH_MAX_ITEMS");
    if (env && *env)
        s->env_max_items = (size_t)strtoull(env, NULL, 10);
    return s;
}

/* Linear search: a context launches a few dozen kernels at most, and a pointer compare per
 * entry is cheaper than the clEnqueueNDRangeKernel it precedes. */
static launch_kind *kind_of(struct tsr__launch_state *s, cl_kernel k, size_t gz)
{
    for (int i = 0; i < s->n; i++)
        if (s->kinds[i].k == k && s->kinds[i].gz == gz)
            return &s->kinds[i];
    launch_kind *d;
    if (s->n < KINDS) {
        d = &s->kinds[s->n++];
    } else {
        d = &s->kinds[s->next];
        s->next = (s->next + 1) % KINDS;
    }
    memset(d, 0, sizeof *d);
    d->k = k;
    d->gz = gz;
    return d;
}

/* Walks an NDRange in slices: whole bands of work-group rows while a band fits the size asked
 * for, else runs of work groups along x inside one band (so a launch with one band, gy == 1,
 * is cut along x, and so is a band too wide for one slice). */
typedef struct cursor {
    size_t g[3], l[3];
    size_t nx, ny; /* work groups along x, bands along y */
    size_t ux, uy; /* next slice's first group along x (inside band uy), and band */
} cursor;

/* The next slice: about `items` work items, at least one work group; a remainder under a
 * quarter of the slice joins it when `merge`. Returns its work items. */
static double cursor_next(cursor *c, double items, int merge, size_t off[3], size_t size[3])
{
    double band = (double)c->g[0] * (double)c->l[1] * (double)c->g[2];
    off[2] = 0;
    size[2] = c->g[2];
    off[1] = c->uy * c->l[1];
    if (c->ux == 0 && items >= band) {
        size_t left = c->ny - c->uy,
               n = items / band >= (double)left ? left : (size_t)(items / band);
        if (merge && left - n <= n / 4)
            n = left;
        off[0] = 0;
        size[0] = c->g[0];
        size[1] = n * c->l[1];
        c->uy += n;
    } else {
        double group = (double)c->l[0] * (double)c->l[1] * (double)c->g[2];
        size_t left = c->nx - c->ux,
               m = items / group >= (double)left ? left : (size_t)(items / group);
        if (m < 1)
            m = 1;
        if (merge && left - m <= m / 4)
            m = left;
        off[0] = c->ux * c->l[0];
        size[0] = m * c->l[0];
        size[1] = c->l[1];
        c->ux += m;
        if (c->ux == c->nx) {
            c->ux = 0;
            c->uy++;
        }
    }
    return (double)size[0] * (double)size[1] * (double)size[2];
}

/* Work items for the next slice: `share` of the target at the measured cost (or the first
 * slice of a kernel never timed), within GROWTH of the slice before (prev > 0), under cap. */
static double slice_items(const launch_kind *d, double share, double prev, double total, double cap)
{
    double items = d->cost > 0 ? TARGET_S * share / d->cost
                               : (total / 16 < FIRST_ITEMS ? total / 16 : FIRST_ITEMS);
    if (prev > 0 && items > prev * GROWTH)
        items = prev * GROWTH;
    if (prev > 0 && items < prev / GROWTH)
        items = prev / GROWTH;
    if (cap > 0 && items > cap)
        items = cap;
    return items;
}

typedef struct slice {
    cl_event ev;
    double items, t_enq;
} slice;

static tsr_status enqueue_slice(tsr_exec *ex, cl_kernel k, cursor *c, double items, int merge,
                                slice *out)
{
    size_t off[3], size[3];
    out->items = cursor_next(c, items, merge, off, size);
    out->t_enq = now_s();
    cl_int st = clEnqueueNDRangeKernel(ex->queue, k, 3, off, size, c->l, 0, NULL, &out->ev);
    if (st != CL_SUCCESS) {
        out->ev = NULL;
        return tsr__exec_cl_error(ex, st, "clEnqueueNDRangeKernel (slice)");
    }
    return TSR_OK;
}

static tsr_status cancelled_error(tsr_exec *ex, cl_kernel k)
{
    char name[128];
    const char *kname = ex->kernel ? ex->kernel : "?";
    if (clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL) == CL_SUCCESS)
        kname = name;
    return tsr__seterr(ex->err, TSR_ERR_CANCELLED, "cancelled in node '%s' (%s), kernel '%s'",
                       ex->node ? ex->node->id : "?", ex->node ? ex->node->cls->name : "?", kname);
}

static tsr_status launch_sliced(tsr_exec *ex, struct tsr__launch_state *s, launch_kind *d,
                                cl_kernel k, const size_t global[3], const size_t local[3],
                                double total, double cap)
{
    cursor c;
    memset(&c, 0, sizeof c);
    memcpy(c.g, global, sizeof c.g);
    memcpy(c.l, local, sizeof c.l);
    c.nx = global[0] / local[0];
    c.ny = global[1] / local[1];
    slice q[2];
    memset(q, 0, sizeof q);
    int nq = 0, merge = cap == 0;
    double last = 0, t_prev = 0, t0, done = 0;
    tsr_status rc = TSR_OK;
    count(&s->counts.sliced);
    /* What was queued before runs out first, so that the first slice's time starts at its
     * enqueue: the device waits for this thread once per sliced launch, for one enqueue. */
    cl_int st = clFinish(ex->queue);
    if (st != CL_SUCCESS)
        return tsr__exec_cl_error(ex, st, "clFinish");
    if (tsr__exec_cancelled(ex))
        return cancelled_error(ex, k);
    rc = enqueue_slice(ex, k, &c, slice_items(d, FIRST_SHARE, 0, total, cap), merge, &q[0]);
    if (rc)
        goto fail;
    nq = 1;
    last = q[0].items;
    count(&s->counts.slices);
    t0 = t_prev = q[0].t_enq;
    while (nq) {
        st = clWaitForEvents(1, &q[0].ev);
        double t = now_s();
        clReleaseEvent(q[0].ev);
        if (st != CL_SUCCESS) {
            q[0] = q[1];
            nq--;
            rc = tsr__exec_cl_error(ex, st, "clWaitForEvents (slice)");
            goto fail;
        }
        /* Two times per item: the launch's so far, never too short (the device was busy from t0
         * and this thread sees each end late if anything), and this slice's alone (from the end
         * of the one before, or its enqueue if later), which follows a slowdown at once but is
         * too short when this thread saw the end of the slice before late. The larger. */
        done += q[0].items;
        double dt = t - (q[0].t_enq > t_prev ? q[0].t_enq : t_prev), all = (t - t0) / done;
        d->cost = dt / q[0].items > all ? dt / q[0].items : all;
        t_prev = t;
        q[0] = q[1];
        nq--;
        if (tsr__exec_cancelled(ex))
            goto cancelled;
        /* One slice running, the next behind it, so the device does not wait for this thread. */
        while (nq < 2 && c.uy < c.ny) {
            rc = enqueue_slice(ex, k, &c, slice_items(d, 1.0, last, total, cap), merge, &q[nq]);
            if (rc)
                goto fail;
            last = q[nq++].items;
            count(&s->counts.slices);
        }
    }
    return TSR_OK;

cancelled:
    st = clFinish(ex->queue);
    for (int i = 0; i < nq; i++)
        clReleaseEvent(q[i].ev);
    return st == CL_SUCCESS ? cancelled_error(ex, k) : tsr__exec_cl_error(ex, st, "clFinish");

fail:
    /* Slices still queued use the node's buffers, which the caller is about to hand back: wait
     * for them. The error reported is the first one; this wait's own status adds nothing. */
    (void)clFinish(ex->queue);
    for (int i = 0; i < nq; i++)
        clReleaseEvent(q[i].ev);
    return rc;
}

/* TSR_KERNEL_PROFILE=1: every launch is waited for, before and after, and its wall time added
 * to its kernel's total, printed to stderr at exit. A diagnostic for kernel work (it serialises
 * the queue): tools/bench-kernels.sh uses it to split kernel time from transfers. */
#define PROF_MAX 64
static struct {
    char name[64];
    double s;
    long n;
} prof[PROF_MAX];
/* Jobs run on several threads: the switch is read once (pthread_once), the table is guarded. */
static int prof_n;
static int prof_enabled;
static pthread_once_t prof_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t prof_mu = PTHREAD_MUTEX_INITIALIZER;

static void prof_print(void)
{
    pthread_mutex_lock(&prof_mu);
    for (int i = 0; i < prof_n; i++)
        fprintf(stderr, "kernel.%s.seconds: %.6f (%ld launches)\n", prof[i].name, prof[i].s,
                prof[i].n);
    pthread_mutex_unlock(&prof_mu);
}

static void prof_init(void)
{
    const char *e = getenv("TSR_KERNEL_PROFILE");
    prof_enabled = e && *e == '1';
    if (prof_enabled)
        atexit(prof_print);
}

static int prof_on(void)
{
    pthread_once(&prof_once, prof_init);
    return prof_enabled;
}

int tsr__prof_on(void)
{
    return prof_on();
}

void tsr__prof_add(const char *name, double s)
{
    pthread_mutex_lock(&prof_mu);
    int i = 0;
    while (i < prof_n && strcmp(prof[i].name, name))
        i++;
    if (i == prof_n && prof_n < PROF_MAX)
        snprintf(prof[prof_n++].name, sizeof prof[0].name, "%s", name);
    if (i < prof_n) {
        prof[i].s += s;
        prof[i].n++;
    }
    pthread_mutex_unlock(&prof_mu);
}

static tsr_status launch_nd(tsr_exec *ex, cl_kernel k, const size_t global[3],
                            const size_t local[3]);

tsr_status tsr__launch_nd(tsr_exec *ex, cl_kernel k, const size_t global[3], const size_t local[3])
{
    if (!prof_on())
        return launch_nd(ex, k, global, local);
    clFinish(ex->queue);
    double t0 = now_s();
    tsr_status rc = launch_nd(ex, k, global, local);
    clFinish(ex->queue);
    char name[64] = "?";
    clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
    tsr__prof_add(name, now_s() - t0);
    return rc;
}

static tsr_status launch_nd(tsr_exec *ex, cl_kernel k, const size_t global[3],
                            const size_t local[3])
{
    if (!global[0] || !global[1] || !global[2])
        return TSR_OK;
    tsr__ctx *c = ex->ctx;
    struct tsr__launch_state *s = c ? c->launch : NULL;
    if (c && !s) {
        if (!(s = state_new()))
            return tsr__seterr(ex->err, TSR_ERR_NOMEM,
                               "node '%s' (%s), kernel '%s': out of memory for the launch state",
                               ex->node ? ex->node->id : "?", ex->node ? ex->node->cls->name : "?",
                               ex->kernel ? ex->kernel : "-");
        __atomic_store_n(&c->launch, s, __ATOMIC_RELEASE);
    }
    int whole = !s || __atomic_load_n(&tsr__launch_whole, __ATOMIC_RELAXED) ||
                (global[0] == local[0] && global[1] == local[1]);
    if (s)
        count(&s->counts.launches);
    if (!whole) {
        size_t hook = __atomic_load_n(&tsr__launch_max_items, __ATOMIC_RELAXED);
        double cap = (double)(hook ? hook : s->env_max_items);
        double total = (double)global[0] * (double)global[1] * (double)global[2];
        launch_kind *d = kind_of(s, k, global[2]);
        if (d->cost > 0 && total * d->cost <= TARGET_S * FIRST_SHARE && (cap == 0 || total <= cap))
            whole = 1;
        else
            return launch_sliced(ex, s, d, k, global, local, total, cap);
    }
    cl_int st = clEnqueueNDRangeKernel(ex->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    return st == CL_SUCCESS ? TSR_OK : tsr__exec_cl_error(ex, st, "clEnqueueNDRangeKernel");
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
    return tsr__launch_nd(ex, k, global, local);
}
