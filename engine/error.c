/* Status text, per-engine messages and overflow-checked size helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *tsr_status_str(tsr_status rc)
{
    switch (rc) {
    case TSR_OK: return "ok";
    case TSR_ERR_NOMEM: return "out of host memory";
    case TSR_ERR_INVALID: return "invalid argument";
    case TSR_ERR_IO: return "file input/output error";
    case TSR_ERR_DECODE: return "image decode error";
    case TSR_ERR_LIMIT: return "over a limit (image pixels or host memory)";
    case TSR_ERR_GRAPH: return "graph error";
    case TSR_ERR_DEVICE: return "OpenCL device error";
    case TSR_ERR_DEVICE_NOMEM: return "out of device memory";
    case TSR_ERR_BUILD: return "kernel build failed";
    case TSR_ERR_CANCELLED: return "cancelled";
    case TSR_ERR_UNSUPPORTED: return "unsupported";
    case TSR_ERR_NO_DEVICE: return "no OpenCL device";
    case TSR_ERR_INTERNAL: return "internal error";
    case TSR_ERR_BUSY: return "busy";
    }
    return "unknown status";
}

void tsr__err_clear(tsr__err *err)
{
    if (!err)
        return;
    err->msg[0] = 0;
    err->len = 0;
    err->count = 0;
    err->omitted = 0;
    err->node[0] = err->param[0] = err->file[0] = 0;
    err->line = err->col = 0;
}

void tsr__err_where(tsr__err *err, const char *node, const char *param, const char *file,
                    int line, int col)
{
    if (!err || err->node[0])
        return;
    snprintf(err->node, sizeof err->node, "%s", node ? node : "");
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    err->col = col;
}

/* Values (paths, ids) can be any length; the reason after them must still show. A run of more
 * than TSR_SHORT_KEEP * 2 + 3 non-blank bytes keeps its first and last TSR_SHORT_KEEP bytes
 * (never splitting a UTF-8 sequence) with "..." between. */
#define TSR_SHORT_KEEP 60

static size_t shorten_into(char *dst, size_t cap, const char *src)
{
    size_t k = 0;
    if (!cap)
        return 0;
    for (const char *p = src; *p && k + 1 < cap;) {
        if (*p == ' ' || *p == '\n' || *p == '\t') {
            dst[k++] = *p++;
            continue;
        }
        size_t run = strcspn(p, " \n\t");
        size_t head = run, tail = run;
        if (run > TSR_SHORT_KEEP * 2 + 3) {
            head = TSR_SHORT_KEEP;
            while (head > 0 && ((unsigned char)p[head] & 0xC0) == 0x80)
                head--;
            tail = run - TSR_SHORT_KEEP;
            while (tail < run && ((unsigned char)p[tail] & 0xC0) == 0x80)
                tail++;
        }
        for (size_t i = 0; i < head && k + 1 < cap; i++)
            dst[k++] = p[i];
        if (head < run) {
            for (const char *d = "..."; *d && k + 1 < cap; d++)
                dst[k++] = *d;
            for (size_t i = tail; i < run && k + 1 < cap; i++)
                dst[k++] = p[i];
        }
        p += run;
    }
    dst[k] = 0;
    return k;
}

size_t tsr__vformat_short(char *dst, size_t cap, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    char *full = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!full) { /* out of memory: cut, as before, rather than lose the message */
        int m = cap ? vsnprintf(dst, cap, fmt, ap) : 0;
        return m < 0 ? 0 : (size_t)m >= cap ? cap - 1 : (size_t)m;
    }
    vsnprintf(full, (size_t)n + 1, fmt, ap);
    size_t k = shorten_into(dst, cap, full);
    free(full);
    return k;
}

size_t tsr__format_short(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t k = tsr__vformat_short(dst, cap, fmt, ap);
    va_end(ap);
    return k;
}

static void vappend(tsr__err *err, const char *fmt, va_list ap)
{
    if (err->len >= sizeof err->msg - 1)
        return;
    err->len += tsr__vformat_short(err->msg + err->len, sizeof err->msg - err->len, fmt, ap);
}

tsr_status tsr__seterr(tsr__err *err, tsr_status rc, const char *fmt, ...)
{
    if (!err)
        return rc;
    tsr__err_clear(err);
    va_list ap;
    va_start(ap, fmt);
    vappend(err, fmt, ap);
    va_end(ap);
    err->count = 1;
    return rc;
}

tsr_status tsr__adderr(tsr__err *err, tsr_status rc, const char *fmt, ...)
{
    if (!err)
        return rc;
    /* A line that does not fit whole (room kept for the count of those left out) is left out and
     * counted: "... and 37 more errors" ends the message. */
    enum { TRAILER = 48 };
    char line[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    size_t n = tsr__vformat_short(line, sizeof line, fmt, ap);
    va_end(ap);
    err->count++;
    if (!err->omitted && err->len + 1 + n + TRAILER < sizeof err->msg) {
        if (err->len > 0)
            err->msg[err->len++] = '\n';
        memcpy(err->msg + err->len, line, n + 1);
        err->len += n;
        return rc;
    }
    if (err->omitted) { /* replace the previous trailer, the message's last line */
        char *last = strrchr(err->msg, '\n');
        if (last && strncmp(last, "\n... and ", 9) == 0)
            err->len = (size_t)(last - err->msg);
    }
    err->omitted++;
    int m = snprintf(err->msg + err->len, sizeof err->msg - err->len, "%s... and %d more error%s",
                     err->len ? "\n" : "", err->omitted, err->omitted == 1 ? "" : "s");
    if (m > 0)
        err->len = err->len + (size_t)m < sizeof err->msg ? err->len + (size_t)m
                                                          : sizeof err->msg - 1;
    return rc;
}

void tsr__err_prefix(tsr__err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    int count = err->count, omitted = err->omitted;
    char node[sizeof err->node], param[sizeof err->param], file[sizeof err->file];
    memcpy(node, err->node, sizeof node);
    memcpy(param, err->param, sizeof param);
    memcpy(file, err->file, sizeof file);
    int line = err->line, col = err->col;
    tsr__err_clear(err);
    memcpy(err->node, node, sizeof node);
    memcpy(err->param, param, sizeof param);
    memcpy(err->file, file, sizeof file);
    err->line = line;
    err->col = col;
    va_list ap;
    va_start(ap, fmt);
    vappend(err, fmt, ap);
    va_end(ap);
    size_t room = sizeof err->msg - err->len;
    int n = snprintf(err->msg + err->len, room, "%s", old);
    err->len = n < 0 ? err->len : (size_t)n >= room ? sizeof err->msg - 1 : err->len + (size_t)n;
    err->count = count;
    err->omitted = omitted;
}

int tsr__mul_size(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

size_t tsr__image_bytes(int w, int h, int channels)
{
    size_t n;
    if (w <= 0 || h <= 0 || channels <= 0)
        return 0;
    if (!tsr__mul_size((size_t)w, (size_t)h, &n) || !tsr__mul_size(n, (size_t)channels, &n) ||
        !tsr__mul_size(n, sizeof(float), &n))
        return 0;
    return n;
}

void tsr_free(void *p)
{
    free(p);
}

const char *tsr_version(void)
{
    return TSR_VERSION;
}

const char *tsr__cl_status_name(cl_int st)
{
    switch (st) {
#define C(x)                                                                                       \
    case x: return #x;
        C(CL_SUCCESS)
        C(CL_DEVICE_NOT_FOUND)
        C(CL_DEVICE_NOT_AVAILABLE)
        C(CL_COMPILER_NOT_AVAILABLE)
        C(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        C(CL_OUT_OF_RESOURCES)
        C(CL_OUT_OF_HOST_MEMORY)
        C(CL_PROFILING_INFO_NOT_AVAILABLE)
        C(CL_MEM_COPY_OVERLAP)
        C(CL_IMAGE_FORMAT_MISMATCH) C(CL_IMAGE_FORMAT_NOT_SUPPORTED) C(CL_BUILD_PROGRAM_FAILURE) C(
            CL_MAP_FAILURE) C(CL_MISALIGNED_SUB_BUFFER_OFFSET)
            C(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) C(CL_COMPILE_PROGRAM_FAILURE) C(
                CL_LINKER_NOT_AVAILABLE) C(CL_LINK_PROGRAM_FAILURE) C(CL_DEVICE_PARTITION_FAILED)
                C(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) C(CL_INVALID_VALUE) C(CL_INVALID_DEVICE_TYPE) C(
                    CL_INVALID_PLATFORM) C(CL_INVALID_DEVICE) C(CL_INVALID_CONTEXT)
                    C(CL_INVALID_QUEUE_PROPERTIES) C(CL_INVALID_COMMAND_QUEUE) C(
                        CL_INVALID_HOST_PTR) C(CL_INVALID_MEM_OBJECT)
                        C(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) C(CL_INVALID_IMAGE_SIZE) C(
                            CL_INVALID_SAMPLER) C(CL_INVALID_BINARY) C(CL_INVALID_BUILD_OPTIONS)
                            C(CL_INVALID_PROGRAM) C(CL_INVALID_PROGRAM_EXECUTABLE) C(
                                CL_INVALID_KERNEL_NAME) C(CL_INVALID_KERNEL_DEFINITION)
                                C(CL_INVALID_KERNEL) C(CL_INVALID_ARG_INDEX) C(CL_INVALID_ARG_VALUE)
                                    C(CL_INVALID_ARG_SIZE) C(CL_INVALID_KERNEL_ARGS) C(
                                        CL_INVALID_WORK_DIMENSION) C(CL_INVALID_WORK_GROUP_SIZE)
                                        C(CL_INVALID_WORK_ITEM_SIZE) C(CL_INVALID_GLOBAL_OFFSET)
                                            C(CL_INVALID_EVENT_WAIT_LIST) C(CL_INVALID_EVENT)
                                                C(CL_INVALID_OPERATION) C(CL_INVALID_GL_OBJECT) C(
                                                    CL_INVALID_BUFFER_SIZE) C(CL_INVALID_MIP_LEVEL)
                                                    C(CL_INVALID_GLOBAL_WORK_SIZE)
                                                        C(CL_INVALID_PROPERTY) C(
                                                            CL_INVALID_IMAGE_DESCRIPTOR)
                                                            C(CL_INVALID_COMPILER_OPTIONS) C(
                                                                CL_INVALID_LINKER_OPTIONS)
                                                                C(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef C
    }
    return "CL_UNKNOWN_ERROR";
}
