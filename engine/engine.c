/* Engine: device choice, message slot, statistics. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "model.h"

tsr__err *tsr__eerr(const tsr_engine *e)
{
    static _Thread_local tsr__err err;
    (void)e;
    return &err;
}

void tsr__engine_lock(tsr_engine *e)
{
    pthread_mutex_lock(e->mu);
}

void tsr__engine_unlock(tsr_engine *e)
{
    pthread_mutex_unlock(e->mu);
}

static _Thread_local tsr__ctx *current_ctx;

void tsr__ctx_set_current(tsr__ctx *c)
{
    current_ctx = c;
}

tsr__ctx *tsr__ctx_current(void)
{
    return current_ctx;
}

int tsr__ctx_cancelled(const tsr__ctx *c)
{
    if (!c)
        return 0;
    if (c->cancel && __atomic_load_n(c->cancel, __ATOMIC_ACQUIRE))
        return 1;
    return c->e && __atomic_load_n(&c->e->interrupt_gen, __ATOMIC_ACQUIRE) != c->gen0;
}

void tsr_engine_options_init(tsr_engine_options *opt)
{
    memset(opt, 0, sizeof *opt);
}

/* A K/M/G/T unit (binary, with an optional i) at *end: its multiplier, *end moved past it; 1
 * when there is none. */
static double binary_unit(char **end)
{
    const char *units = "KMGT", *u = **end ? strchr(units, toupper((unsigned char)**end)) : NULL;
    if (!u)
        return 1;
    double mult = 1;
    for (const char *q = units; q <= u; q++)
        mult *= 1024.0;
    (*end)++;
    if (**end == 'i' || **end == 'I')
        (*end)++;
    return mult;
}

tsr_status tsr_parse_size(const char *text, uint64_t total, uint64_t *out, char *msg, size_t msglen)
{
    const char *p = text ? text : "";
    char *end;
    double v = strtod(p, &end);
    double mult = 1;
    while (*end == ' ')
        end++;
    if (*end == '%') {
        mult = (double)total / 100.0;
        end++;
    } else if (*end) {
        mult = binary_unit(&end);
        if (*end == 'B' || *end == 'b')
            end++;
    }
    if (end == p || *end || !(v > 0) || v * mult >= 1.8e19 || v * mult < 1) {
        if (msg && msglen)
            snprintf(
                msg, msglen,
                "'%s' is not a memory size: expected a positive number with an optional "
                "unit (512M, 2G, 1.5GiB, 300MB, bytes) or a percentage of the memory it limits "
                "(60%%)",
                p);
        return TSR_ERR_INVALID;
    }
    *out = (uint64_t)(v * mult);
    return TSR_OK;
}

/* TSR_MAX_PIXELS: a pixel count written as sizes are elsewhere ("268435456", "1e9", "500M",
 * "1.5G"; K/M/G/T binary as in tsr_parse_size). Anything else is refused rather than read as
 * whatever prefix strtoull happens to accept. */
static tsr_status parse_pixels(const char *text, uint64_t *out, tsr__err *err)
{
    const char *p = text;
    size_t k = strspn(p, "0123456789.eE+-");
    char *end;
    double v = (*p >= '0' && *p <= '9') || *p == '.' ? strtod(p, &end) : 0;
    if (v > 0 && end == p + k) {
        v *= binary_unit(&end);
        if (!*end && v >= 1 && v < 9.2e18 && v == floor(v)) {
            *out = (uint64_t)v;
            return TSR_OK;
        }
    }
    return tsr__seterr(err, TSR_ERR_INVALID,
                       "TSR_MAX_PIXELS: '%.60s' is not a pixel count: expected a positive whole "
                       "number, optionally with an exponent or a binary unit (268435456, 1e9, "
                       "500M, 2G)",
                       text);
}

/* The budget: as given (never above the device's memory), else the device's memory less a
 * headroom of max(256 MiB, 10%) for the driver, the display and other programs, but at least
 * half of it. */
static tsr_status set_limits(tsr_engine *e, const tsr_engine_options *opt)
{
    uint64_t total = e->cl->info.global_mem, limit = opt->vram_limit;
    const char *env = getenv("TSR_VRAM_LIMIT");
    char msg[512];
    if (!limit && env && *env) {
        if (tsr_parse_size(env, total, &limit, msg, sizeof msg))
            return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID, "TSR_VRAM_LIMIT: %s", msg);
    }
    if (!limit) {
        uint64_t headroom = total / 10 > (256ull << 20) ? total / 10 : 256ull << 20;
        limit = total > 2 * headroom ? total - headroom : total / 2;
    }
    if (limit > total)
        limit = total;
    e->vram_limit = limit;
    /* Speed: a CPU runs a blur of a 8000x5334 image 1.8x faster in 64 MiB tiles than as one
     * 1.6 GB tile (2.0 s against 1.1 s on 2 cores, PoCL; docs/MEMORY.md): work that stays in
     * the caches between the passes of a stage beats one pass over memory per node. A GPU
     * is fastest with the largest tiles. */
    const char *tenv = getenv("TSR_TILE_TARGET");
    uint64_t target = 0;
    if (tenv && *tenv && strcmp(tenv, "none") != 0) {
        if (tsr_parse_size(tenv, limit, &target, msg, sizeof msg))
            return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID, "TSR_TILE_TARGET: %s (or none)", msg);
    } else if (!tenv || !*tenv) {
        uint64_t cache = e->cl->info.cache_size;
        if (!e->cl->info.is_gpu)
            target = 2 * (cache ? cache : 8ull << 20) > TSR_TILE_TARGET_MIN
                         ? 2 * (cache ? cache : 8ull << 20)
                         : TSR_TILE_TARGET_MIN;
    }
    e->tile_target = target && target < limit ? target : 0;
    tsr__pool_set_cap(e->pool, (size_t)limit);
    tsr__pool_set_cap(e->staging, (size_t)(opt->staging_limit ? opt->staging_limit : 64ull << 20));
    return TSR_OK;
}

/* A number of bytes in a cgroup file ("max" or unreadable: 0). */
static uint64_t read_cgroup_bytes(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[64] = "";
    unsigned long long v = 0;
    char *end = NULL;
    if (fgets(buf, sizeof buf, f))
        v = strtoull(buf, &end, 10);
    fclose(f);
    return end && end != buf && (*end == '\n' || *end == 0) ? (uint64_t)v : 0;
}

uint64_t tsr_host_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t cg = read_cgroup_bytes("/sys/fs/cgroup/memory.max");
    if (!cg) /* cgroup v1; "no limit" reads as a huge number, above phys */
        cg = read_cgroup_bytes("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    if (cg && (!phys || cg < phys))
        return cg;
    return phys;
}

/* The host budget: as given, else TSR_MEM_LIMIT, else 75% of the host's memory. */
static tsr_status set_mem_limit(tsr_engine *e, const tsr_engine_options *opt)
{
    uint64_t total = tsr_host_memory(), limit = opt->mem_limit;
    const char *env = getenv("TSR_MEM_LIMIT");
    char msg[512];
    if (!limit && env && *env) {
        if (tsr_parse_size(env, total, &limit, msg, sizeof msg))
            return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID, "TSR_MEM_LIMIT: %s", msg);
    }
    if (!limit)
        limit = total ? total / 4 * 3 : 0; /* unknown host memory: no host budget */
    e->mem_limit = limit;
    return TSR_OK;
}

/* TSR_FAULT_ALLOC (tests): "N" fails the Nth device allocation, "N+" every one from the Nth,
 * "N-M" the Nth through the Mth, as if the device were out of memory. */
static tsr_status set_fault(tsr_engine *e)
{
    const char *f = getenv("TSR_FAULT_ALLOC");
    if (!f || !*f)
        return TSR_OK;
    char *end;
    unsigned long long from = strtoull(f, &end, 10), to = from;
    if (end != f && *end == '+' && end[1] == 0)
        to = UINT64_MAX;
    else if (end != f && *end == '-' && isdigit((unsigned char)end[1]))
        to = strtoull(end + 1, &end, 10);
    if (end == f || (*end && *end != '+') || from == 0 || to < from)
        return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID,
                           "TSR_FAULT_ALLOC='%s': expected N, N+ or N-M with 1 <= N <= M", f);
    tsr__pool_set_fault(e->pool, from, to);
    return TSR_OK;
}

tsr_status tsr_engine_new(const tsr_engine_options *opt, tsr_engine **out, char *msg, size_t msglen)
{
    tsr_engine_options defaults;
    if (!opt) {
        tsr_engine_options_init(&defaults);
        opt = &defaults;
    }
    *out = NULL;
    if (msg && msglen)
        msg[0] = 0;
    tsr_engine *e = calloc(1, sizeof *e);
    if (!e) {
        if (msg && msglen)
            snprintf(msg, msglen, "out of memory creating the engine");
        return TSR_ERR_NOMEM;
    }
    pthread_mutex_t *mu = malloc(sizeof *mu), *mmu = malloc(sizeof *mmu);
    pthread_cond_t *cv = malloc(sizeof *cv);
    if (!mu || !mmu || !cv) {
        free(mu);
        free(mmu);
        free(cv);
        free(e);
        if (msg && msglen)
            snprintf(msg, msglen, "out of memory creating the engine");
        return TSR_ERR_NOMEM;
    }
    pthread_mutex_init(mu, NULL);
    pthread_mutex_init(mmu, NULL);
    pthread_cond_init(cv, NULL);
    e->mu = mu;
    e->models_mu = mmu;
    e->budget_cv = cv;
    e->ctx0.e = e;
    e->ctx0.err = &e->err0;
    tsr_status rc = TSR_OK;
    e->max_pixels = opt->max_pixels;
    if (!e->max_pixels) {
        const char *env = getenv("TSR_MAX_PIXELS");
        if (env && *env && (rc = parse_pixels(env, &e->max_pixels, tsr__eerr(e))))
            goto fail;
        if (!e->max_pixels)
            e->max_pixels = TSR_DEFAULT_MAX_PIXELS;
    }
    if ((rc = set_mem_limit(e, opt)))
        goto fail;
    const char *device = opt->device ? opt->device : getenv("TSR_DEVICE");
    if (device && strcmp(device, "ref") == 0) {
        e->host_device = 1;
        snprintf(e->ref_info.name, sizeof e->ref_info.name, "reference (plain C)");
        snprintf(e->ref_info.platform, sizeof e->ref_info.platform, "none");
        e->ref_info.index = -1;
    } else {
        rc = tsr__cl_open(device, opt->cache_dir, &e->cl, tsr__eerr(e));
        if (rc == TSR_OK &&
            (tsr__pool_new(e->cl, &e->pool) || tsr__staging_new(e->cl, &e->staging)))
            rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory creating the buffer pool");
        if (rc == TSR_OK)
            rc = set_limits(e, opt);
        if (rc == TSR_OK)
            rc = set_fault(e);
        if (rc)
            goto fail;
        e->host_device = e->cl->is_cpu;
        e->ctx0.queue = e->cl->queue;
    }
    *out = e;
    return TSR_OK;
fail:
    if (msg && msglen)
        snprintf(msg, msglen, "%s", tsr__eerr(e)->msg);
    tsr_engine_free(e);
    return rc;
}

void tsr_engine_free(tsr_engine *e)
{
    if (!e)
        return;
    tsr__models_free(e);
    tsr__lanes_free(e);
    tsr__rcache_free(e->rcache);
    tsr__launch_state_free(e->ctx0.launch);
    tsr__pool_free(e->staging);
    tsr__pool_free(e->pool);
    tsr__cl_close(e->cl);
    free(e->stats);
    pthread_mutex_destroy(e->mu);
    pthread_mutex_destroy(e->models_mu);
    pthread_cond_destroy(e->budget_cv);
    free(e->mu);
    free(e->models_mu);
    free(e->budget_cv);
    free(e);
}

const char *tsr_errmsg(const tsr_engine *e)
{
    return tsr__eerr(e)->msg;
}

const char *tsr_engine_warnings(const tsr_engine *e)
{
    return e && e->cl ? e->cl->warning : "";
}

const tsr_device_info *tsr_engine_device(const tsr_engine *e)
{
    return e->cl ? &e->cl->info : &e->ref_info;
}

int tsr_engine_is_ref(const tsr_engine *e)
{
    return e->cl == NULL;
}

void tsr_engine_interrupt(tsr_engine *e)
{
    __atomic_add_fetch(&e->interrupt_gen, 1, __ATOMIC_ACQ_REL);
}

char *tsr_engine_stats(const tsr_engine *e)
{
    tsr_engine *me = (tsr_engine *)e;
    tsr__engine_lock(me);
    char *s = strdup(e->stats ? e->stats : "");
    tsr__engine_unlock(me);
    return s;
}

tsr_status tsr_engine_pool_stats(tsr_engine *e, int staging, tsr_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!e->cl)
        return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID,
                           "the reference engine has no device pool");
    tsr__pool_get_stats(staging ? e->staging : e->pool, out);
    return TSR_OK;
}

void tsr_engine_trim(tsr_engine *e)
{
    tsr__pool_trim(e->pool);
    tsr__pool_trim(e->staging);
}

uint64_t tsr_engine_vram_limit(const tsr_engine *e)
{
    return e->vram_limit;
}

uint64_t tsr_engine_mem_limit(const tsr_engine *e)
{
    return e->mem_limit;
}
