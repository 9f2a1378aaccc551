/* make bench: the machine's copy bandwidth, the yardstick for each kernel's achieved GB/s.
 *   host    memcpy of a 256 MiB buffer into another (both touched first), best of 5
 *   device  clEnqueueCopyBuffer of a 256 MiB buffer on the engine's default device (the first
 *           GPU, else the first device; TSR_DEVICE=N picks device N of `tessera devices`),
 *           best of 5 after one warm-up copy; skipped with a line when OpenCL has no device
 * Bandwidth counts the bytes read plus the bytes written (2 x 256 MiB per copy), as the kernels'
 * GB/s counts input plus output bytes. Prints one line per measurement:
 *   copy host GBPS
 *   copy device GBPS NAME          (or: copy device - REASON)
 * Usage: bench-copy [MiB]   (default 256) */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double host_copy(size_t bytes)
{
    char *a = malloc(bytes), *b = malloc(bytes);
    double best = -1;
    if (!a || !b) {
        free(a);
        free(b);
        return -1;
    }
    memset(a, 1, bytes); /* fault the pages in before timing */
    memset(b, 2, bytes);
    for (int i = 0; i < REPS; i++) {
        double t0 = now_s();
        memcpy(b, a, bytes);
        double t = now_s() - t0;
        a[(size_t)i * 4096 % bytes] = b[bytes - 1 - (size_t)i]; /* keep the copy observable */
        if (best < 0 || t < best)
            best = t;
    }
    free(a);
    free(b);
    return best;
}

/* The device of the engine's default rule, in tsr_devices_list order (platforms, then their
 * devices). Returns 0 and fills *dev, or -1. */
static int pick_device(cl_device_id *dev, char *name, size_t namelen)
{
    cl_platform_id plats[16];
    cl_uint np = 0;
    cl_device_id all[64];
    cl_uint n = 0;
    if (clGetPlatformIDs(16, plats, &np) != CL_SUCCESS || np == 0)
        return -1;
    for (cl_uint p = 0; p < np && n < 64; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 64 - n, all + n, &nd) == CL_SUCCESS)
            n += nd;
    }
    if (n == 0)
        return -1;
    int pick = -1;
    const char *env = getenv("TSR_DEVICE");
    if (env && *env && strspn(env, "0123456789") == strlen(env) && (cl_uint)atoi(env) < n)
        pick = atoi(env);
    for (cl_uint i = 0; pick < 0 && i < n; i++) {
        cl_device_type t = 0;
        clGetDeviceInfo(all[i], CL_DEVICE_TYPE, sizeof t, &t, NULL);
        if (t & CL_DEVICE_TYPE_GPU)
            pick = (int)i;
    }
    if (pick < 0)
        pick = 0;
    *dev = all[pick];
    name[0] = 0;
    clGetDeviceInfo(*dev, CL_DEVICE_NAME, namelen, name, NULL);
    name[namelen - 1] = 0;
    return 0;
}

static double device_copy(size_t bytes, char *name, size_t namelen)
{
    cl_device_id dev;
    cl_int err = CL_SUCCESS;
    double best = -1;
    if (pick_device(&dev, name, namelen))
        return -1;
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (!ctx)
        return -1;
    cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &err);
    cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (q && a && b) {
        cl_uchar one = 1;
        /* Touch both buffers, then one untimed copy. */
        if (clEnqueueFillBuffer(q, a, &one, 1, 0, bytes, 0, NULL, NULL) == CL_SUCCESS &&
            clEnqueueFillBuffer(q, b, &one, 1, 0, bytes, 0, NULL, NULL) == CL_SUCCESS &&
            clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, NULL) == CL_SUCCESS &&
            clFinish(q) == CL_SUCCESS) {
            for (int i = 0; i < REPS; i++) {
                double t0 = now_s();
                if (clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, NULL) != CL_SUCCESS ||
                    clFinish(q) != CL_SUCCESS) {
                    best = -1;
                    break;
                }
                double t = now_s() - t0;
                if (best < 0 || t < best)
                    best = t;
            }
        }
    }
    if (a)
        clReleaseMemObject(a);
    if (b)
        clReleaseMemObject(b);
    if (q)
        clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return best;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
    size_t bytes = (mib ? mib : 256) << 20;
    char name[256];
    double t = host_copy(bytes);
    if (t > 0)
        printf("copy host %.2f\n", 2.0 * (double)bytes / t / 1e9);
    else
        printf("copy host - out of memory\n");
    t = device_copy(bytes, name, sizeof name);
    if (t > 0)
        printf("copy device %.2f %s\n", 2.0 * (double)bytes / t / 1e9, name);
    else
        printf("copy device - no OpenCL device or the copy failed\n");
    return 0;
}
