/* Device buffer pool: every device allocation of the engine comes from here. Freed blocks are
 * cached and reused best-fit (within 25% waste) so that nodes and images reuse buffers.
 * `cap` (0 = none) bounds all bytes held, in use plus cached: an allocation that would pass it
 * first gives cached blocks back, then fails with TSR_ERR_DEVICE_NOMEM. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

typedef struct block {
    cl_mem mem;
    size_t size;
    int in_use;
} block;

struct tsr__pool {
    tsr__cl *cl;
    block *blocks;
    int n, cap_blocks;
    size_t cap;
    size_t in_use, held, peak_in_use, peak_held;
    uint64_t allocations, hits, misses, trims;
};

tsr_status tsr__pool_new(tsr__cl *cl, tsr__pool **out)
{
    tsr__pool *p = calloc(1, sizeof *p);
    if (!p)
        return TSR_ERR_NOMEM;
    p->cl = cl;
    *out = p;
    return TSR_OK;
}

static void drop(tsr__pool *p, int i)
{
    clReleaseMemObject(p->blocks[i].mem);
    p->held -= p->blocks[i].size;
    p->blocks[i] = p->blocks[--p->n];
}

void tsr__pool_trim(tsr__pool *p)
{
    int any = 0;
    for (int i = p->n - 1; i >= 0; i--)
        if (!p->blocks[i].in_use) {
            drop(p, i);
            any = 1;
        }
    p->trims += any;
}

void tsr__pool_free(tsr__pool *p)
{
    if (!p)
        return;
    while (p->n)
        drop(p, p->n - 1);
    free(p->blocks);
    free(p);
}

void tsr__pool_set_cap(tsr__pool *p, size_t cap)
{
    p->cap = cap;
}

tsr_status tsr__pool_alloc(tsr__pool *p, size_t bytes, cl_mem *out, tsr__err *err)
{
    *out = NULL;
    if (bytes == 0)
        bytes = 4;
    p->allocations++;
    int best = -1;
    for (int i = 0; i < p->n; i++) {
        block *b = &p->blocks[i];
        if (!b->in_use && b->size >= bytes && b->size - bytes <= bytes / 4 &&
            (best < 0 || b->size < p->blocks[best].size))
            best = i;
    }
    if (best >= 0) {
        p->hits++;
        p->blocks[best].in_use = 1;
        p->in_use += p->blocks[best].size;
        if (p->in_use > p->peak_in_use)
            p->peak_in_use = p->in_use;
        *out = p->blocks[best].mem;
        return TSR_OK;
    }
    p->misses++;
    if (p->cap && p->held + bytes > p->cap)
        tsr__pool_trim(p);
    if (p->cap && p->held + bytes > p->cap)
        return tsr__seterr(err, TSR_ERR_DEVICE_NOMEM,
                           "device memory budget exceeded: %zu bytes requested, %zu of %zu held",
                           bytes, p->held, p->cap);
    if (p->cl->info.max_alloc && bytes > p->cl->info.max_alloc)
        return tsr__seterr(err, TSR_ERR_DEVICE_NOMEM,
                           "buffer of %zu bytes exceeds the device's largest allocation (%llu)",
                           bytes, (unsigned long long)p->cl->info.max_alloc);
    if (p->n == p->cap_blocks) {
        int nc = p->cap_blocks ? p->cap_blocks * 2 : 32;
        block *nb = realloc(p->blocks, (size_t)nc * sizeof *nb);
        if (!nb)
            return tsr__seterr(err, TSR_ERR_NOMEM, "out of host memory in the buffer pool");
        p->blocks = nb;
        p->cap_blocks = nc;
    }
    cl_int st;
    cl_mem m = clCreateBuffer(p->cl->ctx, CL_MEM_READ_WRITE, bytes, NULL, &st);
    if (st != CL_SUCCESS)
        return tsr__seterr(err,
                           st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES ||
                                   st == CL_INVALID_BUFFER_SIZE
                               ? TSR_ERR_DEVICE_NOMEM
                               : TSR_ERR_DEVICE,
                           "clCreateBuffer(%zu bytes) failed: %s (%d)", bytes,
                           tsr__cl_status_name(st), st);
    p->blocks[p->n++] = (block){m, bytes, 1};
    p->held += bytes;
    p->in_use += bytes;
    if (p->in_use > p->peak_in_use)
        p->peak_in_use = p->in_use;
    if (p->held > p->peak_held)
        p->peak_held = p->held;
    *out = m;
    return TSR_OK;
}

void tsr__pool_release(tsr__pool *p, cl_mem m)
{
    if (!p || !m)
        return;
    for (int i = 0; i < p->n; i++)
        if (p->blocks[i].mem == m && p->blocks[i].in_use) {
            p->blocks[i].in_use = 0;
            p->in_use -= p->blocks[i].size;
            return;
        }
}

int tsr__pool_stats(const tsr__pool *p, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "pool.in_use_bytes: %zu\npool.held_bytes: %zu\npool.peak_in_use_bytes: %zu\n"
                    "pool.peak_held_bytes: %zu\npool.allocations: %llu\npool.hits: %llu\n"
                    "pool.misses: %llu\npool.trims: %llu\n",
                    p->in_use, p->held, p->peak_in_use, p->peak_held,
                    (unsigned long long)p->allocations, (unsigned long long)p->hits,
                    (unsigned long long)p->misses, (unsigned long long)p->trims);
}
