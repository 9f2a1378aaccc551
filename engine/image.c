/* Host images: refcounted float32 planar buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Bytes of pixels of every host image alive in the process, and their peak (tests compare the
 * planner's host estimate with them). */
static size_t live_bytes, peak_bytes;

size_t tsr__image_live_bytes(void)
{
    return __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
}

size_t tsr__image_peak_bytes(void)
{
    return __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
}

void tsr__image_reset_peak(void)
{
    __atomic_store_n(&peak_bytes, tsr__image_live_bytes(), __ATOMIC_RELAXED);
}

static void count_alloc(size_t bytes)
{
    size_t now = __atomic_add_fetch(&live_bytes, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&peak_bytes, &peak, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
        ;
}

/* Pixels of a large image are faulted in by one madvise(MADV_POPULATE_WRITE) call rather than
 * one page fault per 4 KiB at their first write (a tile's download into a fresh output image
 * spent most of its time in page faults). Transparent huge pages would save more, but with THP
 * in "madvise" mode they stalled allocation for seconds in direct compaction here: not used. */
static void *pixels_alloc(size_t bytes)
{
    void *p = malloc(bytes);
#ifdef MADV_POPULATE_WRITE
    size_t page = 4096;
    if (p && bytes >= ((size_t)8 << 20)) {
        uintptr_t a = ((uintptr_t)p + page - 1) / page * page,
                  b = ((uintptr_t)p + bytes) / page * page;
        (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE); /* may fail: then faults as before */
    }
#endif
    return p;
}

tsr_status tsr_image_new(int width, int height, int channels, tsr_image **out)
{
    *out = NULL;
    size_t bytes = tsr__image_bytes(width, height, channels);
    if (!bytes || channels > 4)
        return TSR_ERR_INVALID;
    tsr_image *img = calloc(1, sizeof *img);
    if (!img)
        return TSR_ERR_NOMEM;
    img->data = pixels_alloc(bytes);
    if (!img->data) {
        free(img);
        return TSR_ERR_NOMEM;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->refcount = 1;
    count_alloc(bytes);
    *out = img;
    return TSR_OK;
}

tsr_image *tsr_image_ref(tsr_image *img)
{
    if (img)
        __atomic_add_fetch(&img->refcount, 1, __ATOMIC_RELAXED);
    return img;
}

void tsr_image_free(tsr_image *img)
{
    if (!img || __atomic_sub_fetch(&img->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    __atomic_sub_fetch(&live_bytes, tsr__image_bytes(img->width, img->height, img->channels),
                       __ATOMIC_RELAXED);
    free(img->data);
    free(img);
}

int tsr_image_width(const tsr_image *img)
{
    return img->width;
}
int tsr_image_height(const tsr_image *img)
{
    return img->height;
}
int tsr_image_channels(const tsr_image *img)
{
    return img->channels;
}
int tsr_image_bit_depth(const tsr_image *img)
{
    return img->bit_depth;
}
float *tsr_image_data(tsr_image *img)
{
    return img->data;
}

/* ---------------------------------------------------------------------------------------------
 * Caller pixels: interleaved u8/u16/f32 rows at any stride <-> planar float. Samples are read
 * and written with memcpy: a caller's stride need not keep u16/f32 samples aligned. */

static size_t sample_size(tsr_sample s)
{
    switch (s) {
    case TSR_SAMPLE_U8: return 1;
    case TSR_SAMPLE_U16: return 2;
    case TSR_SAMPLE_F32: return 4;
    default: return 0;
    }
}

/* The row stride of px, or 0 when px is not a valid description of w x h x channels. */
static size_t pixels_stride(const tsr_pixels *px)
{
    size_t size = sample_size(px->sample), packed, total;
    if (!px->data || px->width <= 0 || px->height <= 0 || px->channels < 1 || px->channels > 4 ||
        !size || !tsr__mul_size((size_t)px->width * (size_t)px->channels, size, &packed))
        return 0;
    size_t stride = px->stride ? px->stride : packed;
    if (stride < packed || !tsr__mul_size(stride, (size_t)px->height, &total) ||
        total > PTRDIFF_MAX)
        return 0;
    return stride;
}

/* round(clamp(v, 0, 1) * maxval), NaN -> 0: the encoders' rule, in double so that k / maxval
 * in float maps back to k. */
static inline unsigned to_level(float v, unsigned maxval)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 1.0f)
        return maxval;
    return (unsigned)((double)v * maxval + 0.5);
}

tsr_status tsr_image_from_pixels(const tsr_pixels *px, tsr_image **out)
{
    if (!out)
        return TSR_ERR_INVALID;
    *out = NULL;
    size_t stride = px ? pixels_stride(px) : 0;
    if (!stride)
        return TSR_ERR_INVALID;
    tsr_image *img;
    tsr_status rc = tsr_image_new(px->width, px->height, px->channels, &img);
    if (rc)
        return rc;
    size_t w = (size_t)px->width, ch = (size_t)px->channels;
    size_t plane = w * (size_t)px->height;
    for (size_t y = 0; y < (size_t)px->height; y++) {
        const unsigned char *row = (const unsigned char *)px->data + y * stride;
        float *o = img->data + y * w;
        switch (px->sample) {
        case TSR_SAMPLE_U8:
            for (size_t x = 0; x < w; x++)
                for (size_t c = 0; c < ch; c++)
                    o[c * plane + x] = (float)row[x * ch + c] / 255.0f;
            break;
        case TSR_SAMPLE_U16:
            for (size_t x = 0; x < w; x++)
                for (size_t c = 0; c < ch; c++) {
                    uint16_t v;
                    memcpy(&v, row + 2 * (x * ch + c), 2);
                    o[c * plane + x] = (float)v / 65535.0f;
                }
            break;
        default:
            for (size_t x = 0; x < w; x++)
                for (size_t c = 0; c < ch; c++)
                    memcpy(&o[c * plane + x], row + 4 * (x * ch + c), 4);
            break;
        }
    }
    img->bit_depth = px->sample == TSR_SAMPLE_U8 ? 8 : px->sample == TSR_SAMPLE_U16 ? 16 : 0;
    *out = img;
    return TSR_OK;
}

tsr_status tsr_image_to_pixels(const tsr_image *img, const tsr_pixels *px)
{
    size_t stride = px ? pixels_stride(px) : 0;
    if (!img || !img->data || !stride || px->width != img->width || px->height != img->height ||
        px->channels != img->channels)
        return TSR_ERR_INVALID;
    size_t w = (size_t)px->width, ch = (size_t)px->channels;
    size_t plane = w * (size_t)px->height;
    for (size_t y = 0; y < (size_t)px->height; y++) {
        unsigned char *row = (unsigned char *)px->data + y * stride;
        const float *in = img->data + y * w;
        switch (px->sample) {
        case TSR_SAMPLE_U8:
            for (size_t x = 0; x < w; x++)
                for (size_t c = 0; c < ch; c++)
                    row[x * ch + c] = (unsigned char)to_level(in[c * plane + x], 255);
            break;
        case TSR_SAMPLE_U16:
            for (size_t x = 0; x < w; x++)
                for (size_t c = 0; c < ch; c++) {
                    uint16_t v = (uint16_t)to_level(in[c * plane + x], 65535);
                    memcpy(row + 2 * (x * ch + c), &v, 2);
                }
            break;
        default:
            for (size_t x = 0; x < w; x++)
                for (size_t c = 0; c < ch; c++)
                    memcpy(row + 4 * (x * ch + c), &in[c * plane + x], 4);
            break;
        }
    }
    return TSR_OK;
}
