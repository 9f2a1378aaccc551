/* Engine: device choice, message slot, statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void tsr_engine_options_init(tsr_engine_options *opt)
{
    memset(opt, 0, sizeof *opt);
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
    tsr_status rc = TSR_OK;
    const char *device = opt->device ? opt->device : getenv("TSR_DEVICE");
    if (device && strcmp(device, "ref") == 0) {
        snprintf(e->ref_info.name, sizeof e->ref_info.name, "reference (plain C)");
        snprintf(e->ref_info.platform, sizeof e->ref_info.platform, "none");
        e->ref_info.index = -1;
    } else {
        rc = tsr__cl_open(device, opt->cache_dir, &e->cl, &e->err);
        if (rc == TSR_OK && tsr__pool_new(e->cl, &e->pool) != TSR_OK)
            rc = tsr__seterr(&e->err, TSR_ERR_NOMEM, "out of memory creating the buffer pool");
        if (rc)
            goto fail;
    }
    e->max_pixels = opt->max_pixels;
    if (!e->max_pixels) {
        const char *env = getenv("TSR_MAX_PIXELS");
        e->max_pixels = env && *env ? strtoull(env, NULL, 10) : 0;
        if (!e->max_pixels)
            e->max_pixels = TSR_DEFAULT_MAX_PIXELS;
    }
    *out = e;
    return TSR_OK;
fail:
    if (msg && msglen)
        snprintf(msg, msglen, "%s", e->err.msg);
    tsr_engine_free(e);
    return rc;
}

void tsr_engine_free(tsr_engine *e)
{
    if (!e)
        return;
    tsr__pool_free(e->pool);
    tsr__cl_close(e->cl);
    free(e->stats);
    free(e);
}

const char *tsr_errmsg(const tsr_engine *e)
{
    return e ? e->err.msg : "";
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
    __atomic_store_n(&e->interrupt, 1, __ATOMIC_SEQ_CST);
}

char *tsr_engine_stats(const tsr_engine *e)
{
    return strdup(e->stats ? e->stats : "");
}
