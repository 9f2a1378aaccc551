/* Result cache: materialized node outputs kept on the host between jobs of an engine, keyed by
 * the node's content key (engine/exec.c compute_keys), least recently used evicted past the
 * bound. Images are immutable once materialized, so an entry is one more reference. */
#include <stdlib.h>

#include "job.h"

typedef struct entry {
    uint64_t key;
    tsr_image *img;
    size_t bytes;
    uint64_t used; /* tick of the last get/put */
} entry;

struct tsr__rcache {
    entry *v;
    int n, cap;
    size_t bytes, max;
    uint64_t tick;
};

/* Called locked. */
static tsr__rcache *cache(tsr_engine *e)
{
    if (!e->rcache && (e->rcache = calloc(1, sizeof *e->rcache))) {
        const char *env = getenv("TSR_RESULT_CACHE");
        uint64_t max = 0;
        if (env && *env && tsr_parse_size(env, 0, &max, NULL, 0) != TSR_OK)
            max = 0;
        e->rcache->max = (size_t)max;
    }
    return e->rcache;
}

static void evict(tsr__rcache *rc, size_t room)
{
    while (rc->n && rc->bytes + room > rc->max) {
        int lru = 0;
        for (int i = 1; i < rc->n; i++)
            if (rc->v[i].used < rc->v[lru].used)
                lru = i;
        rc->bytes -= rc->v[lru].bytes;
        tsr_image_free(rc->v[lru].img);
        rc->v[lru] = rc->v[--rc->n];
    }
}

int tsr__rcache_enabled(tsr_engine *e)
{
    tsr__engine_lock(e);
    tsr__rcache *rc = cache(e);
    int on = rc && rc->max > 0;
    tsr__engine_unlock(e);
    return on;
}

tsr_image *tsr__rcache_get(tsr_engine *e, uint64_t key)
{
    tsr_image *img = NULL;
    tsr__engine_lock(e);
    tsr__rcache *rc = cache(e);
    for (int i = 0; rc && i < rc->n; i++)
        if (rc->v[i].key == key) {
            rc->v[i].used = ++rc->tick;
            img = tsr_image_ref(rc->v[i].img);
            break;
        }
    tsr__engine_unlock(e);
    return img;
}

void tsr__rcache_put(tsr_engine *e, uint64_t key, tsr_image *img)
{
    size_t bytes = tsr__image_bytes(img->width, img->height, img->channels);
    tsr__engine_lock(e);
    tsr__rcache *rc = cache(e);
    if (!rc || bytes > rc->max)
        goto done;
    for (int i = 0; i < rc->n; i++)
        if (rc->v[i].key == key) {
            rc->bytes -= rc->v[i].bytes;
            tsr_image_free(rc->v[i].img);
            rc->v[i] = rc->v[--rc->n];
            break;
        }
    evict(rc, bytes);
    if (rc->n == rc->cap) {
        int cap = rc->cap ? rc->cap * 2 : 16;
        entry *v = realloc(rc->v, (size_t)cap * sizeof *v);
        if (!v)
            goto done;
        rc->v = v;
        rc->cap = cap;
    }
    rc->v[rc->n++] = (entry){key, tsr_image_ref(img), bytes, ++rc->tick};
    rc->bytes += bytes;
done:
    tsr__engine_unlock(e);
}

void tsr__rcache_free(tsr__rcache *rc)
{
    if (!rc)
        return;
    for (int i = 0; i < rc->n; i++)
        tsr_image_free(rc->v[i].img);
    free(rc->v);
    free(rc);
}

void tsr_engine_set_result_cache(tsr_engine *e, uint64_t max_bytes)
{
    tsr__engine_lock(e);
    tsr__rcache *rc = cache(e);
    if (rc) {
        rc->max = (size_t)max_bytes;
        evict(rc, 0);
    }
    tsr__engine_unlock(e);
}

uint64_t tsr_engine_result_cache_bytes(tsr_engine *e)
{
    tsr__engine_lock(e);
    uint64_t b = e->rcache ? e->rcache->bytes : 0;
    tsr__engine_unlock(e);
    return b;
}
