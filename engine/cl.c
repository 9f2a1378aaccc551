/* OpenCL runtime: device discovery and selection, context and queue, and kernel programs built
 * once per device from the embedded sources with an on-disk binary cache. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define TSR_CL_BUILD_OPTIONS "-cl-std=CL1.2"
#define TSR_MAX_KERNELS_PER_PROGRAM 32 /* kernels/nn.cl has 21 */

struct tsr__program {
    const tsr__kernel_source *src;
    cl_program program;
    struct {
        char name[64];
        cl_kernel kernel;
    } kernels[TSR_MAX_KERNELS_PER_PROGRAM];
    int n_kernels;
    tsr__program *next;
};

/* ---- discovery ------------------------------------------------------------------------- */

static void get_str(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
    buf[0] = 0;
    if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = 0;
    buf[len - 1] = 0;
}

static void describe(cl_platform_id p, cl_device_id d, int index, tsr_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->index = index;
    get_str(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    get_str(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    get_str(d, CL_DEVICE_VERSION, info->version, sizeof info->version);
    get_str(d, CL_DRIVER_VERSION, info->driver, sizeof info->driver);
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform, info->platform, NULL))
        info->platform[0] = 0;
    info->platform[sizeof info->platform - 1] = 0;
    cl_device_type type = 0;
    cl_ulong mem = 0, alloc = 0;
    cl_uint cu = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL) == CL_SUCCESS)
        info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL) == CL_SUCCESS)
        info->global_mem = mem;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL) == CL_SUCCESS)
        info->max_alloc = alloc;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL) == CL_SUCCESS)
        info->compute_units = cu;
    cl_ulong cache = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof cache, &cache, NULL) ==
        CL_SUCCESS)
        info->cache_size = cache;
}

typedef struct found {
    cl_platform_id platform;
    cl_device_id device;
    tsr_device_info info;
} found;

static int dir_writable(const char *dir, char *why, size_t len);

/* PoCL keeps its own kernel cache under $XDG_CACHE_HOME or $HOME and reports no device at all
 * when it cannot create it (a read-only home). Unless the user chose POCL_CACHE_DIR, point it at
 * a private directory in $TMPDIR before PoCL's devices start, so that the device still opens. */
static void pocl_cache_fallback(void)
{
    if (getenv("POCL_CACHE_DIR"))
        return;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME"), *tmp = getenv("TMPDIR");
    char dir[4096], why[256];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/pocl", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/pocl", home);
    else
        return;
    if (dir_writable(dir, why, sizeof why))
        return;
    snprintf(dir, sizeof dir, "%s/tessera-pocl-%ld", tmp && *tmp ? tmp : "/tmp", (long)getuid());
    struct stat sb;
    /* Another user could have made the directory first: use it only if it is our own. */
    if ((mkdir(dir, 0700) == 0 || errno == EEXIST) && lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
        sb.st_uid == getuid() && dir_writable(dir, why, sizeof why))
        setenv("POCL_CACHE_DIR", dir, 0);
}

static int is_pocl(cl_platform_id p)
{
    char name[256] = "";
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof name - 1, name, NULL) != CL_SUCCESS)
        return 0;
    return strstr(name, "Portable Computing Language") || strstr(name, "pocl") ||
           strstr(name, "PoCL");
}

/* Every device of every platform, in platform order. */
static tsr_status enumerate(found **out, int *count, tsr__err *err)
{
    *out = NULL;
    *count = 0;
    cl_uint np = 0;
    cl_int st = clGetPlatformIDs(0, NULL, &np);
    if (st == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no driver */ || np == 0)
        return tsr__seterr(err, TSR_ERR_NO_DEVICE,
                           "no OpenCL platform found: install an OpenCL driver (on Debian: "
                           "pocl-opencl-icd for the CPU) or run with TSR_DEVICE=ref");
    if (st != CL_SUCCESS)
        return tsr__seterr(err, TSR_ERR_DEVICE, "clGetPlatformIDs failed: %s (%d)",
                           tsr__cl_status_name(st), st);
    cl_platform_id *plats = calloc(np, sizeof *plats);
    found *list = NULL;
    int n = 0;
    tsr_status rc = TSR_OK;
    if (!plats) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory listing OpenCL platforms");
        goto fail;
    }
    st = clGetPlatformIDs(np, plats, NULL);
    if (st != CL_SUCCESS) {
        rc = tsr__seterr(err, TSR_ERR_DEVICE, "clGetPlatformIDs failed: %s (%d)",
                         tsr__cl_status_name(st), st);
        goto fail;
    }
    for (cl_uint p = 0; p < np; p++) {
        static pthread_once_t pocl_once = PTHREAD_ONCE_INIT;
        if (is_pocl(plats[p]))
            pthread_once(&pocl_once, pocl_cache_fallback);
        cl_uint nd = 0;
        st = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (st == CL_DEVICE_NOT_FOUND || nd == 0)
            continue;
        if (st != CL_SUCCESS) {
            rc = tsr__seterr(err, TSR_ERR_DEVICE, "clGetDeviceIDs failed: %s (%d)",
                             tsr__cl_status_name(st), st);
            goto fail;
        }
        cl_device_id *devs = calloc(nd, sizeof *devs);
        found *grown = devs ? realloc(list, (size_t)(n + (int)nd) * sizeof *list) : NULL;
        if (!grown) {
            free(devs);
            rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory listing OpenCL devices");
            goto fail;
        }
        list = grown;
        st = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL);
        if (st != CL_SUCCESS) {
            free(devs);
            rc = tsr__seterr(err, TSR_ERR_DEVICE, "clGetDeviceIDs failed: %s (%d)",
                             tsr__cl_status_name(st), st);
            goto fail;
        }
        for (cl_uint d = 0; d < nd; d++, n++) {
            list[n].platform = plats[p];
            list[n].device = devs[d];
            describe(plats[p], devs[d], n, &list[n].info);
        }
        free(devs);
    }
    if (n == 0) {
        rc = tsr__seterr(err, TSR_ERR_NO_DEVICE,
                         "OpenCL platforms found but no device: check the driver installation, "
                         "or run with TSR_DEVICE=ref");
        goto fail;
    }
    free(plats);
    *out = list;
    *count = n;
    return TSR_OK;
fail:
    free(plats);
    free(list);
    return rc;
}

tsr_status tsr_devices_list(tsr_device_info **out, int *count, char *msg, size_t msglen)
{
    tsr__err err;
    tsr__err_clear(&err);
    found *list = NULL;
    int n = 0;
    *out = NULL;
    *count = 0;
    tsr_status rc = enumerate(&list, &n, &err);
    if (rc == TSR_OK) {
        tsr_device_info *infos = calloc((size_t)n, sizeof *infos);
        if (!infos) {
            rc = tsr__seterr(&err, TSR_ERR_NOMEM, "out of memory");
        } else {
            for (int i = 0; i < n; i++)
                infos[i] = list[i].info;
            *out = infos;
            *count = n;
        }
    }
    free(list);
    if (rc && msg && msglen)
        snprintf(msg, msglen, "%s", err.msg);
    return rc;
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, nl) == 0)
            return 1;
    return nl == 0;
}

static tsr_status pick(const found *list, int n, const char *want, int *index, tsr__err *err)
{
    if (!want || !*want) {
        for (int i = 0; i < n; i++)
            if (list[i].info.is_gpu) {
                *index = i;
                return TSR_OK;
            }
        *index = 0;
        return TSR_OK;
    }
    char *end = NULL;
    long v = strtol(want, &end, 10);
    if (end != want && *end == 0) {
        if (v < 0 || v >= n)
            return tsr__seterr(err, TSR_ERR_NO_DEVICE,
                               "device %ld does not exist: there %s %d device%s (0..%d); "
                               "`tessera devices` lists them",
                               v, n == 1 ? "is" : "are", n, n == 1 ? "" : "s", n - 1);
        *index = (int)v;
        return TSR_OK;
    }
    for (int i = 0; i < n; i++)
        if (contains_nocase(list[i].info.name, want)) {
            *index = i;
            return TSR_OK;
        }
    return tsr__seterr(err, TSR_ERR_NO_DEVICE,
                       "no OpenCL device name contains '%s'; `tessera devices` lists them", want);
}

/* ---- open / close ------------------------------------------------------------------------ */

static char *default_cache_dir(void)
{
    const char *env = getenv("TSR_CACHE_DIR");
    char buf[4096];
    if (env)
        return strdup(env);
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, sizeof buf, "%s/tessera", xdg);
    else if (home && *home)
        snprintf(buf, sizeof buf, "%s/.cache/tessera", home);
    else
        return strdup("");
    return strdup(buf);
}

tsr_status tsr__cl_open(const char *device, const char *cache_dir, tsr__cl **out, tsr__err *err)
{
    *out = NULL;
    found *list = NULL;
    int n = 0, idx = 0;
    tsr_status rc = enumerate(&list, &n, err);
    if (rc)
        return rc;
    rc = pick(list, n, device, &idx, err);
    if (rc)
        goto fail;
    tsr__cl *cl = calloc(1, sizeof *cl);
    if (!cl) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory opening the OpenCL device");
        goto fail;
    }
    if (!(cl->mu = malloc(sizeof(pthread_mutex_t)))) {
        free(cl);
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory opening the OpenCL device");
        goto fail;
    }
    pthread_mutex_init(cl->mu, NULL);
    cl->platform = list[idx].platform;
    cl->device = list[idx].device;
    cl->info = list[idx].info;
    cl_device_type type = 0;
    cl->is_cpu =
        clGetDeviceInfo(cl->device, CL_DEVICE_TYPE, sizeof type, &type, NULL) == CL_SUCCESS &&
        (type & CL_DEVICE_TYPE_CPU) != 0;
    cl_int st;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)cl->platform, 0};
    cl->ctx = clCreateContext(props, 1, &cl->device, NULL, NULL, &st);
    if (st != CL_SUCCESS) {
        rc = tsr__seterr(err, TSR_ERR_DEVICE, "clCreateContext on '%s' failed: %s (%d)",
                         cl->info.name, tsr__cl_status_name(st), st);
        goto fail_cl;
    }
    cl->queue = clCreateCommandQueue(cl->ctx, cl->device, 0, &st);
    if (st != CL_SUCCESS) {
        rc = tsr__seterr(err, TSR_ERR_DEVICE, "clCreateCommandQueue on '%s' failed: %s (%d)",
                         cl->info.name, tsr__cl_status_name(st), st);
        goto fail_cl;
    }
    size_t wg = 0;
    st = clGetDeviceInfo(cl->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    cl->max_wg = st == CL_SUCCESS && wg > 0 ? wg : 1;
    cl->cache_dir = cache_dir ? strdup(cache_dir) : default_cache_dir();
    if (!cl->cache_dir) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
        goto fail_cl;
    }
    /* An unwritable cache costs a rebuild per run, not the run: say so once and go on. */
    char why[256];
    if (*cl->cache_dir && !getenv("TSR_NO_KERNEL_CACHE") &&
        !dir_writable(cl->cache_dir, why, sizeof why)) {
        snprintf(cl->warning, sizeof cl->warning,
                 "kernel cache directory '%.200s' is not writable (%s): running without the "
                 "on-disk kernel cache (set TSR_CACHE_DIR to change it)",
                 cl->cache_dir, why);
        cl->cache_dir[0] = 0;
    }
    free(list);
    *out = cl;
    return TSR_OK;
fail_cl:
    tsr__cl_close(cl);
fail:
    free(list);
    return rc;
}

void tsr__cl_close(tsr__cl *cl)
{
    if (!cl)
        return;
    if (cl->queue)
        clFinish(cl->queue);
    for (tsr__program *p = cl->programs, *next; p; p = next) {
        next = p->next;
        for (int i = 0; i < p->n_kernels; i++)
            clReleaseKernel(p->kernels[i].kernel);
        clReleaseProgram(p->program);
        free(p);
    }
    if (cl->queue)
        clReleaseCommandQueue(cl->queue);
    if (cl->ctx)
        clReleaseContext(cl->ctx);
    free(cl->cache_dir);
    pthread_mutex_destroy(cl->mu);
    free(cl->mu);
    free(cl);
}

/* ---- programs and the binary cache -------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static const tsr__kernel_source *find_source(const char *stem)
{
    for (int i = 0; i < tsr__kernel_source_count; i++)
        if (strcmp(tsr__kernel_sources[i].name, stem) == 0)
            return &tsr__kernel_sources[i];
    return NULL;
}

/* The cache key covers everything that changes the binary: both sources, the device, its
 * driver, the build options and our version. */
static void cache_path(const tsr__cl *cl, const tsr__kernel_source *common,
                       const tsr__kernel_source *src, char *buf, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, &common->hash, sizeof common->hash);
    h = fnv(h, &src->hash, sizeof src->hash);
    h = fnv(h, cl->info.name, strlen(cl->info.name));
    h = fnv(h, cl->info.platform, strlen(cl->info.platform));
    h = fnv(h, cl->info.version, strlen(cl->info.version));
    h = fnv(h, cl->info.driver, strlen(cl->info.driver));
    h = fnv(h, TSR_CL_BUILD_OPTIONS, strlen(TSR_CL_BUILD_OPTIONS));
    h = fnv(h, TSR_VERSION, strlen(TSR_VERSION));
    snprintf(buf, len, "%s/%s-%016llx.bin", cl->cache_dir, src->name, (unsigned long long)h);
}

/* Creates dir if needed and proves a file can be made in it (permission bits alone do not tell
 * for root, read-only mounts or a path through a regular file); on failure why says why. */
static int dir_writable(const char *dir, char *why, size_t len)
{
    if (tsr__mkdir_p(dir, 0755) != 0) {
        snprintf(why, len, "%s", strerror(errno));
        return 0;
    }
    char probe[4200];
    int n = snprintf(probe, sizeof probe, "%s/.probe-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof probe) {
        snprintf(why, len, "path too long");
        return 0;
    }
    int fd = mkstemp(probe);
    if (fd < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return 0;
    }
    close(fd);
    unlink(probe);
    return 1;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long n;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* A cache write that fails only costs a rebuild next time, so errors are ignored; the rename
 * keeps a concurrent reader from seeing half a file. */
static void write_cache(const char *path, cl_program prog)
{
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) || !size)
        return;
    unsigned char *bin = malloc(size);
    if (!bin)
        return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        char tmp[4300];
        int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        FILE *f = n > 0 && (size_t)n < sizeof tmp ? fopen(tmp, "wb") : NULL;
        if (f) {
            int ok = fwrite(bin, 1, size, f) == size;
            ok = (fclose(f) == 0) && ok;
            if (!ok || rename(tmp, path) != 0)
                unlink(tmp);
        }
    }
    free(bin);
}

static tsr_status build_log(tsr__cl *cl, cl_program prog, const char *stem, cl_int st,
                            tsr__err *err)
{
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) ==
            CL_SUCCESS &&
        len > 0 && (log = malloc(len + 1)) != NULL) {
        if (clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, len, log, NULL))
            log[0] = 0;
        log[len] = 0;
    }
    tsr_status rc = tsr__seterr(
        err, TSR_ERR_BUILD, "building kernels/%s.cl for '%s' failed: %s (%d)\nbuild log:\n%s", stem,
        cl->info.name, tsr__cl_status_name(st), st, log ? log : "(none)");
    free(log);
    return rc;
}

tsr_status tsr__cl_build_source(tsr__cl *cl, const char *name, int n, const char **strings,
                                const size_t *lens, cl_program *out, tsr__err *err)
{
    cl_int st;
    *out = clCreateProgramWithSource(cl->ctx, (cl_uint)n, strings, lens, &st);
    if (st != CL_SUCCESS)
        return tsr__seterr(err, TSR_ERR_DEVICE, "clCreateProgramWithSource(%s) failed: %s (%d)",
                           name, tsr__cl_status_name(st), st);
    st = clBuildProgram(*out, 1, &cl->device, TSR_CL_BUILD_OPTIONS, NULL, NULL);
    if (st != CL_SUCCESS) {
        tsr_status rc = build_log(cl, *out, name, st, err);
        clReleaseProgram(*out);
        *out = NULL;
        return rc;
    }
    return TSR_OK;
}

static tsr_status get_program(tsr__cl *cl, const char *stem, tsr__program **out, tsr__err *err)
{
    for (tsr__program *p = cl->programs; p; p = p->next)
        if (strcmp(p->src->name, stem) == 0) {
            *out = p;
            return TSR_OK;
        }
    const tsr__kernel_source *src = find_source(stem);
    const tsr__kernel_source *common = find_source("common");
    if (!src || !common)
        return tsr__seterr(err, TSR_ERR_INTERNAL, "no embedded kernel source kernels/%s.cl", stem);
    tsr__program *p = calloc(1, sizeof *p);
    if (!p)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
    p->src = src;
    cl_int st;
    char path[4200] = "";
    int use_cache = cl->cache_dir && *cl->cache_dir && !getenv("TSR_NO_KERNEL_CACHE");
    if (use_cache) {
        cache_path(cl, common, src, path, sizeof path);
        size_t len = 0;
        unsigned char *bin = read_file(path, &len);
        if (bin) {
            const unsigned char *bins[1] = {bin};
            cl_int bst;
            p->program = clCreateProgramWithBinary(cl->ctx, 1, &cl->device, &len, bins, &bst, &st);
            free(bin);
            if (st == CL_SUCCESS && bst == CL_SUCCESS &&
                clBuildProgram(p->program, 1, &cl->device, TSR_CL_BUILD_OPTIONS, NULL, NULL) ==
                    CL_SUCCESS) {
                cl->builds_cached++;
                goto done;
            }
            /* A stale or foreign binary: fall back to the source. */
            if (p->program)
                clReleaseProgram(p->program);
            p->program = NULL;
        }
    }
    const char *strings[2] = {common->source, src->source};
    size_t lens[2] = {common->length, src->length};
    tsr_status rc = tsr__cl_build_source(cl, stem, 2, strings, lens, &p->program, err);
    if (rc) {
        free(p);
        return rc;
    }
    cl->builds_compiled++;
    if (use_cache && tsr__mkdir_p(cl->cache_dir, 0755) == 0)
        write_cache(path, p->program);
done:
    p->next = cl->programs;
    cl->programs = p;
    *out = p;
    return TSR_OK;
}

/* Kernel objects of one context: created from the runtime's programs on first use. */
struct tsr__kcache {
    struct kentry {
        const tsr__program *program;
        const char *name; /* the program's copy */
        cl_kernel kernel;
    } * v;
    int n, cap;
};

tsr_status tsr__kcache_new(tsr__kcache **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

void tsr__kcache_free(tsr__kcache *kc)
{
    if (!kc)
        return;
    for (int i = 0; i < kc->n; i++)
        clReleaseKernel(kc->v[i].kernel);
    free(kc->v);
    free(kc);
}

static tsr_status create_kernel(const tsr__program *p, const char *file, const char *name,
                                cl_kernel *out, tsr__err *err)
{
    cl_int st;
    *out = clCreateKernel(p->program, name, &st);
    if (st != CL_SUCCESS)
        return tsr__seterr(err, TSR_ERR_DEVICE,
                           "clCreateKernel(%s) in kernels/%s.cl failed: %s (%d)", name, file,
                           tsr__cl_status_name(st), st);
    return TSR_OK;
}

/* The program's kernel slot for `name` (created in the runtime's table). Called locked. */
static tsr_status shared_kernel(tsr__program *p, const char *file, const char *name, int *slot,
                                tsr__err *err)
{
    for (int i = 0; i < p->n_kernels; i++)
        if (strcmp(p->kernels[i].name, name) == 0) {
            *slot = i;
            return TSR_OK;
        }
    if (p->n_kernels == TSR_MAX_KERNELS_PER_PROGRAM || strlen(name) >= sizeof p->kernels[0].name)
        return tsr__seterr(err, TSR_ERR_INTERNAL, "too many kernels in kernels/%s.cl", file);
    cl_kernel k;
    tsr_status rc = create_kernel(p, file, name, &k, err);
    if (rc)
        return rc;
    snprintf(p->kernels[p->n_kernels].name, sizeof p->kernels[0].name, "%s", name);
    p->kernels[p->n_kernels].kernel = k;
    *slot = p->n_kernels++;
    return TSR_OK;
}

tsr_status tsr__cl_kernel(tsr__cl *cl, tsr__kcache *kc, const char *file, const char *name,
                          cl_kernel *out, tsr__err *err)
{
    /* A context's own kernels: no lock (one thread uses a context at a time). The program
     * pointer and the name pointer stay valid until the runtime closes. */
    if (kc)
        for (int i = 0; i < kc->n; i++)
            if (strcmp(kc->v[i].name, name) == 0 &&
                strcmp(kc->v[i].program->src->name, file) == 0) {
                *out = kc->v[i].kernel;
                return TSR_OK;
            }
    pthread_mutex_lock(cl->mu);
    tsr__program *p;
    int slot = -1;
    tsr_status rc = get_program(cl, file, &p, err);
    if (!rc)
        rc = shared_kernel(p, file, name, &slot, err);
    pthread_mutex_unlock(cl->mu);
    if (rc)
        return rc;
    if (!kc) {
        *out = p->kernels[slot].kernel;
        return TSR_OK;
    }
    if (kc->n == kc->cap) {
        int cap = kc->cap ? kc->cap * 2 : 32;
        struct kentry *v = realloc(kc->v, (size_t)cap * sizeof *v);
        if (!v)
            return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
        kc->v = v;
        kc->cap = cap;
    }
    cl_kernel k;
    if ((rc = create_kernel(p, file, name, &k, err)))
        return rc;
    kc->v[kc->n++] = (struct kentry){p, p->kernels[slot].name, k};
    *out = k;
    return TSR_OK;
}
