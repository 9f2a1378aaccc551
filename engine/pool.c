/* Device buffer pool: every device allocation of the engine comes from here.
 *
 * Sizes are rounded up to classes, four per power of two (2^k * {4,5,6,7}/4, at least 256 bytes),
 * so a freed block fits later requests of nearby sizes. A request reuses a cached block of its own
 * class only (waste under 25% above 256 bytes): a larger block would make in-use bytes pass
 * the planner's estimate, which counts each buffer at its own class; the executor makes every
 * tile of a stage ask for the same sizes, so tiles reuse each other's blocks. The cap bounds every
 * byte the pool holds, in use plus cached: an allocation that would pass it first gives the cache
 * back, then fails with TSR_ERR_DEVICE_NOMEM and the figures. New buffers are written once and
 * waited on, so that a lazily allocating driver reports out-of-memory here and not inside a later
 * kernel.
 *
 * The staging pool holds pinned host buffers (CL_MEM_ALLOC_HOST_PTR) for transfers, with the
 * same classes and counters and its own cap. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Thread safety: one mutex per pool guards every field; the public functions take it, the
 * static ones expect it held. Each block remembers the run context that allocated it (the
 * thread's tsr__ctx_current()), whose in-use bytes and peak are kept here (atomically, so that
 * the job reads them without the lock). */
typedef struct block {
    cl_mem mem;
    size_t size;
    tsr__ctx *owner;
    int in_use;
    uint64_t released; /* when it went back to the cache (a release counter), for LRU */
} block;

struct tsr__pool {
    tsr__cl *cl;
    cl_mem_flags flags;
    const char *name; /* "device" or "staging", for messages */
    block *blocks;
    int n, cap_blocks;
    size_t cap;
    tsr_pool_stats st;
    /* fault injection: fail allocations fault_at..fault_to (1-based, inclusive) */
    uint64_t fault_at, fault_to;
    uint64_t releases;
    pthread_mutex_t mu;
};

static void owner_add(tsr__ctx *c, size_t size)
{
    if (!c)
        return;
    size_t now = __atomic_add_fetch(&c->in_use, size, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&c->peak, &peak, now, 0, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
        ;
}

static void owner_sub(tsr__ctx *c, size_t size)
{
    if (c)
        __atomic_sub_fetch(&c->in_use, size, __ATOMIC_RELAXED);
}

size_t tsr__pool_class_size(size_t bytes)
{
    if (bytes <= 256)
        return 256;
    size_t p = 256;
    while (p <= bytes / 2)
        p *= 2; /* p <= bytes < 2p */
    for (size_t q = 4; q <= 7; q++) {
        size_t c = p / 4 * q;
        if (c >= bytes)
            return c;
    }
    /* Saturate rather than wrap to 0: past the largest class no device can hold it anyway. */
    return p > SIZE_MAX / 2 ? SIZE_MAX : 2 * p;
}

static tsr_status pool_new(tsr__cl *cl, cl_mem_flags flags, const char *name, tsr__pool **out)
{
    tsr__pool *p = calloc(1, sizeof *p);
    if (!p)
        return TSR_ERR_NOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->cl = cl;
    p->flags = flags;
    p->name = name;
    *out = p;
    return TSR_OK;
}

tsr_status tsr__pool_new(tsr__cl *cl, tsr__pool **out)
{
    return pool_new(cl, CL_MEM_READ_WRITE, "device", out);
}

tsr_status tsr__staging_new(tsr__cl *cl, tsr__pool **out)
{
    return pool_new(cl, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, "staging", out);
}

static void drop(tsr__pool *p, int i)
{
    clReleaseMemObject(p->blocks[i].mem);
    p->st.held_bytes -= p->blocks[i].size;
    p->blocks[i] = p->blocks[--p->n];
}

static void trim_locked(tsr__pool *p)
{
    int any = 0;
    for (int i = p->n - 1; i >= 0; i--)
        if (!p->blocks[i].in_use) {
            drop(p, i);
            any = 1;
        }
    p->st.trims += (uint64_t)any;
}

void tsr__pool_trim(tsr__pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    trim_locked(p);
    pthread_mutex_unlock(&p->mu);
}

void tsr__pool_free(tsr__pool *p)
{
    if (!p)
        return;
    while (p->n)
        drop(p, p->n - 1);
    free(p->blocks);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void tsr__pool_set_cap(tsr__pool *p, size_t cap)
{
    pthread_mutex_lock(&p->mu);
    p->cap = cap;
    pthread_mutex_unlock(&p->mu);
}

size_t tsr__pool_cap(const tsr__pool *p)
{
    return p->cap; /* set once when the engine is made */
}

void tsr__pool_set_fault(tsr__pool *p, uint64_t from, uint64_t to)
{
    pthread_mutex_lock(&p->mu);
    p->fault_at = from;
    p->fault_to = to;
    pthread_mutex_unlock(&p->mu);
}

uint64_t tsr__pool_allocations(const tsr__pool *p)
{
    tsr__pool *q = (tsr__pool *)p;
    pthread_mutex_lock(&q->mu);
    uint64_t n = p->st.allocations;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void tsr__pool_disown(tsr__pool *p, const tsr__ctx *c)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->blocks[i].owner == c)
            p->blocks[i].owner = NULL;
    pthread_mutex_unlock(&p->mu);
}

static void note_use(tsr__pool *p, size_t size)
{
    p->st.in_use_bytes += size;
    if (p->st.in_use_bytes > p->st.peak_in_use_bytes)
        p->st.peak_in_use_bytes = p->st.in_use_bytes;
    if (p->st.held_bytes > p->st.peak_held_bytes)
        p->st.peak_held_bytes = p->st.held_bytes;
}

static tsr_status oom(tsr__pool *p, tsr__err *err, const char *fmt, size_t a, size_t b)
{
    p->st.oom_events++;
    char text[256];
    snprintf(text, sizeof text, fmt, a, b);
    return tsr__seterr(err, TSR_ERR_DEVICE_NOMEM,
                       "%s memory: %s (%zu bytes in use, %zu held, cap %zu)", p->name, text,
                       (size_t)p->st.in_use_bytes, (size_t)p->st.held_bytes, p->cap);
}

/* Write the new buffer once and wait: lazy drivers commit memory here. On a CPU device the
 * buffer is host memory: mapped, it is first faulted in by one madvise(MADV_POPULATE_WRITE)
 * call (as host images are, engine/image.c) rather than one page fault per 4 KiB in the fill. */
static cl_int touch(tsr__pool *p, cl_mem m, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    size_t page = 4096;
    if (size >= ((size_t)8 << 20) && p->cl->is_cpu) {
        cl_int e;
        char *h = clEnqueueMapBuffer(p->cl->queue, m, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, 0,
                                     size, 0, NULL, NULL, &e);
        if (e == CL_SUCCESS && h) {
            uintptr_t a = ((uintptr_t)h + page - 1) / page * page,
                      b = ((uintptr_t)h + size) / page * page;
            if (b > a)
                (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE); /* advice only */
            (void)clEnqueueUnmapMemObject(p->cl->queue, m, h, 0, NULL, NULL);
        }
    }
#endif
    cl_uchar zero = 0;
    cl_int st = clEnqueueFillBuffer(p->cl->queue, m, &zero, 1, 0, size, 0, NULL, NULL);
    return st == CL_SUCCESS ? clFinish(p->cl->queue) : st;
}

/* Give cached blocks back, least recently released first, until `size` more bytes fit under
 * the cap (or nothing is cached): the blocks the next tiles will ask for stay. */
static void make_room(tsr__pool *p, size_t size)
{
    int any = 0;
    while (p->st.held_bytes + size > p->cap) {
        int lru = -1;
        for (int i = 0; i < p->n; i++)
            if (!p->blocks[i].in_use &&
                (lru < 0 || p->blocks[i].released < p->blocks[lru].released))
                lru = i;
        if (lru < 0)
            break;
        drop(p, lru);
        any = 1;
    }
    p->st.trims += (uint64_t)any;
}

static tsr_status alloc_locked(tsr__pool *p, size_t bytes, cl_mem *out, tsr__err *err);

tsr_status tsr__pool_alloc(tsr__pool *p, size_t bytes, cl_mem *out, tsr__err *err)
{
    pthread_mutex_lock(&p->mu);
    tsr_status rc = alloc_locked(p, bytes, out, err);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static tsr_status alloc_locked(tsr__pool *p, size_t bytes, cl_mem *out, tsr__err *err)
{
    *out = NULL;
    p->st.allocations++;
    if (p->fault_at && p->st.allocations >= p->fault_at && p->st.allocations <= p->fault_to)
        return oom(p, err, "injected failure of allocation %zu (TSR_FAULT_ALLOC) of %zu bytes",
                   (size_t)p->st.allocations, bytes);
    size_t size = tsr__pool_class_size(bytes);
    int best = -1;
    for (int i = 0; i < p->n && best < 0; i++)
        if (!p->blocks[i].in_use && p->blocks[i].size == size)
            best = i;
    if (best >= 0) {
        p->st.hits++;
        p->blocks[best].in_use = 1;
        p->blocks[best].owner = tsr__ctx_current();
        owner_add(p->blocks[best].owner, p->blocks[best].size);
        note_use(p, p->blocks[best].size);
        *out = p->blocks[best].mem;
        return TSR_OK;
    }
    p->st.misses++;
    if (p->cl->info.max_alloc && size > p->cl->info.max_alloc)
        return oom(p, err, "a buffer of %zu bytes exceeds the device's largest allocation (%zu)",
                   size, (size_t)p->cl->info.max_alloc);
    if (p->cap && (size > p->cap || p->st.held_bytes + size > p->cap))
        make_room(p, size);
    if (p->cap && (size > p->cap || p->st.held_bytes + size > p->cap))
        return oom(p, err, "%zu more bytes would pass the budget (%zu bytes still free)", size,
                   p->cap > p->st.held_bytes ? p->cap - (size_t)p->st.held_bytes : 0);
    if (p->n == p->cap_blocks) {
        int nc = p->cap_blocks ? p->cap_blocks * 2 : 32;
        block *nb = realloc(p->blocks, (size_t)nc * sizeof *nb);
        if (!nb)
            return tsr__seterr(err, TSR_ERR_NOMEM, "out of host memory in the buffer pool");
        p->blocks = nb;
        p->cap_blocks = nc;
    }
    cl_int st;
    cl_mem m = clCreateBuffer(p->cl->ctx, p->flags, size, NULL, &st);
    if (st == CL_SUCCESS) {
        st = touch(p, m, size);
        if (st != CL_SUCCESS)
            clReleaseMemObject(m);
    }
    if (st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES ||
        st == CL_OUT_OF_HOST_MEMORY) {
        /* The driver refused: give the cache back so that a retry can succeed. */
        trim_locked(p);
        p->st.oom_events++;
        return tsr__seterr(err, TSR_ERR_DEVICE_NOMEM,
                           "%s memory: the driver refused %zu bytes: %s (%d)", p->name, size,
                           tsr__cl_status_name(st), st);
    }
    if (st != CL_SUCCESS)
        return tsr__seterr(err, TSR_ERR_DEVICE, "%s memory: allocating %zu bytes failed: %s (%d)",
                           p->name, size, tsr__cl_status_name(st), st);
    p->blocks[p->n++] = (block){m, size, tsr__ctx_current(), 1, 0};
    owner_add(p->blocks[p->n - 1].owner, size);
    p->st.held_bytes += size;
    note_use(p, size);
    *out = m;
    return TSR_OK;
}

void tsr__pool_release(tsr__pool *p, cl_mem m)
{
    if (!p || !m)
        return;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->blocks[i].mem == m && p->blocks[i].in_use) {
            p->blocks[i].in_use = 0;
            p->blocks[i].released = ++p->releases;
            p->st.in_use_bytes -= p->blocks[i].size;
            owner_sub(p->blocks[i].owner, p->blocks[i].size);
            p->blocks[i].owner = NULL;
            break;
        }
    pthread_mutex_unlock(&p->mu);
}

void tsr__pool_get_stats(const tsr__pool *p, tsr_pool_stats *out)
{
    tsr__pool *q = (tsr__pool *)p;
    pthread_mutex_lock(&q->mu);
    *out = p->st;
    out->cap_bytes = p->cap;
    pthread_mutex_unlock(&q->mu);
}

void tsr__pool_reset_peaks(tsr__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->st.peak_in_use_bytes = p->st.in_use_bytes;
    p->st.peak_held_bytes = p->st.held_bytes;
    pthread_mutex_unlock(&p->mu);
}

int tsr__pool_stats(const tsr__pool *p, char *buf, size_t len)
{
    const char *k = strcmp(p->name, "device") == 0 ? "pool" : "staging";
    tsr_pool_stats copy;
    tsr__pool_get_stats(p, &copy);
    const tsr_pool_stats *s = &copy;
    return snprintf(buf, len,
                    "%s.cap_bytes: %zu\n%s.in_use_bytes: %llu\n%s.held_bytes: %llu\n"
                    "%s.peak_in_use_bytes: %llu\n%s.peak_held_bytes: %llu\n"
                    "%s.allocations: %llu\n%s.hits: %llu\n%s.misses: %llu\n%s.trims: %llu\n"
                    "%s.oom_events: %llu\n",
                    k, (size_t)s->cap_bytes, k, (unsigned long long)s->in_use_bytes, k,
                    (unsigned long long)s->held_bytes, k, (unsigned long long)s->peak_in_use_bytes,
                    k, (unsigned long long)s->peak_held_bytes, k,
                    (unsigned long long)s->allocations, k, (unsigned long long)s->hits, k,
                    (unsigned long long)s->misses, k, (unsigned long long)s->trims, k,
                    (unsigned long long)s->oom_events);
}
