/* TIFF: placeholder until its codec lands (refuses every file). */
#include <string.h>

#include "codec.h"

static int tiff_sniff(const unsigned char *sig, size_t n)
{
    return 0;
}

static tsr_status tiff_decode(tsr__dec *d)
{
    return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED, "TIFF is not supported yet");
}

static tsr_status tiff_encode(tsr__enc *e)
{
    return tsr__enc_fail(e, TSR_ERR_UNSUPPORTED, "TIFF is not supported yet");
}

const tsr__codec tsr__codec_tiff = {
    .format = TSR_FORMAT_TIFF,
    .name = "TIFF",
    .exts = "tiff",
    .sniff = tiff_sniff,
    .decode = tiff_decode,
    .encode = tiff_encode,
    .max_side = 16383,
    .depths = 1u << 8,
};
