/* Host images: refcounted float32 planar buffers. */
#include <stdlib.h>

#include "internal.h"

tsr_status tsr_image_new(int width, int height, int channels, tsr_image **out)
{
    *out = NULL;
    size_t bytes = tsr__image_bytes(width, height, channels);
    if (!bytes || channels > 4)
        return TSR_ERR_INVALID;
    tsr_image *img = calloc(1, sizeof *img);
    if (!img)
        return TSR_ERR_NOMEM;
    img->data = malloc(bytes);
    if (!img->data) {
        free(img);
        return TSR_ERR_NOMEM;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->refcount = 1;
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
