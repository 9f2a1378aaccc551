/* TEMPORARY: weak stand-ins for public functions declared in tessera.h whose implementations
 * are still being written (tsr_image_to_pixels, tsr_image_decode, tsr_image_encode), so that
 * programs linking the shared library (examples/, python/) build meanwhile. Each returns
 * TSR_ERR_UNSUPPORTED. Being weak, they give way to the real definitions without a clash when
 * those land; delete this file then. */
#include "internal.h"

__attribute__((weak)) tsr_status tsr_image_to_pixels(const tsr_image *img, const tsr_pixels *px)
{
    (void)img;
    (void)px;
    return TSR_ERR_UNSUPPORTED;
}

__attribute__((weak)) tsr_status tsr_image_decode(tsr_engine *e, const void *buf, size_t len,
                                                  tsr_image **out)
{
    (void)buf;
    (void)len;
    if (out)
        *out = NULL;
    return tsr__seterr(tsr__eerr(e), TSR_ERR_UNSUPPORTED, "tsr_image_decode: not implemented yet");
}

__attribute__((weak)) tsr_status tsr_image_encode(tsr_engine *e, const tsr_image *img,
                                                  const tsr_save_options *opt, void **buf,
                                                  size_t *len)
{
    (void)img;
    (void)opt;
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    return tsr__seterr(tsr__eerr(e), TSR_ERR_UNSUPPORTED, "tsr_image_encode: not implemented yet");
}
