/* The question the model benchmark asks of CLBlast: would its SGEMM beat our own convolution
 * kernels? A 3x3 convolution of C_in -> C_out channels on an H x W map is, by im2col, a GEMM of
 * C_out x (9 C_in) by (9 C_in) x (H W). This times CLBlastSgemm on those shapes on the first
 * OpenCL device (the im2col copy itself not counted, in CLBlast's favour) and prints GFLOP/s;
 * build/tests/unit/test_nn_layers with TSR_NN_BENCH=1 prints ours for the same layers.
 *
 *   cc -O2 -o build/bench-clblast tools/bench-clblast.c -lclblast -lOpenCL && build/bench-clblast
 *
 * Not part of the build: CLBlast is not a dependency (docs/MODELS.md says why). */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    cl_platform_id plat;
    cl_device_id dev;
    cl_int st;
    if (clGetPlatformIDs(1, &plat, NULL) != CL_SUCCESS ||
        clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) {
        fprintf(stderr, "no OpenCL device\n");
        return 1;
    }
    char name[256];
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name, name, NULL);
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &st);
    cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &st);
    static const struct {
        int cin, cout, h, w;
    } shapes[] = {{64, 64, 128, 128}, {64, 64, 256, 256}, {32, 64, 128, 128}, {64, 3, 128, 128}};
    printf("CLBlast SGEMM as im2col convolution on %s (median of 5)\n", name);
    printf("| layer | map | M x N x K | seconds | GFLOP/s |\n| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t m = shapes[i].cout, k = 9 * (size_t)shapes[i].cin,
               n = (size_t)shapes[i].h * shapes[i].w;
        float *ha = malloc(m * k * 4), *hb = malloc(k * n * 4);
        for (size_t j = 0; j < m * k; j++)
            ha[j] = (float)((j * 2654435761u) % 1000) / 1000.0f - 0.5f;
        for (size_t j = 0; j < k * n; j++)
            hb[j] = (float)((j * 2246822519u) % 1000) / 1000.0f;
        cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, m * k * 4, ha, &st);
        cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, k * n * 4, hb, &st);
        cl_mem c = clCreateBuffer(ctx, CL_MEM_READ_WRITE, m * n * 4, NULL, &st);
        double t[6];
        for (int r = 0; r < 6; r++) {
            double t0 = now_s();
            cl_event ev = NULL;
            CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                               CLBlastTransposeNo, m, n, k, 1.0f, a, 0, k, b, 0,
                                               n, 0.0f, c, 0, n, &q, &ev);
            if (s != CLBlastSuccess) {
                fprintf(stderr, "CLBlastSgemm failed: %d\n", (int)s);
                return 1;
            }
            clWaitForEvents(1, &ev);
            clReleaseEvent(ev);
            t[r] = now_s() - t0;
        }
        qsort(t + 1, 5, sizeof t[0], cmp); /* the first run tunes and compiles */
        double med = t[3];
        printf("| conv 3x3 %d->%d | %dx%d | %zu x %zu x %zu | %.4f | %.1f |\n", shapes[i].cin,
               shapes[i].cout, shapes[i].h, shapes[i].w, m, n, k, med, 2.0 * m * n * k / med / 1e9);
        clReleaseMemObject(a);
        clReleaseMemObject(b);
        clReleaseMemObject(c);
        free(ha);
        free(hb);
    }
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return 0;
}
