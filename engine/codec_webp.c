/* WEBP: placeholder until its codec lands (refuses every file). */
#include <string.h>

#include "codec.h"

static int webp_sniff(const unsigned char *sig, size_t n)
{
    return 0;
}

static tsr_status webp_decode(tsr__dec *d)
{
    return tsr__dec_fail(d, TSR_ERR_UNSUPPORTED, "WEBP is not supported yet");
}

static tsr_status webp_encode(tsr__enc *e)
{
    return tsr__enc_fail(e, TSR_ERR_UNSUPPORTED, "WEBP is not supported yet");
}

const tsr__codec tsr__codec_webp = {
    .format = TSR_FORMAT_WEBP,
    .name = "WebP",
    .exts = "webp",
    .sniff = webp_sniff,
    .decode = webp_decode,
    .encode = webp_encode,
    .max_side = 16383,
    .depths = 1u << 8,
};
