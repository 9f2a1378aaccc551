/* Metadata around the codecs: the EXIF orientation tag read (and reset) in a bounds-checked
 * walk of IFD0, pixels turned upright, ICC profiles converted to sRGB through lcms2.
 *
 * EXIF: only the header and IFD0 are read, no other offset is followed, so a block cannot loop;
 * an IFD0 whose entry table does not fit in the block (a huge count, a cut block) makes the
 * whole block unreadable (orientation 0), as does an offset outside it.
 *
 * ICC: what a profile cannot do is skipped with a warning (the load goes on with the values as
 * stored): a profile lcms2 cannot parse, or one whose colour space does not match the decoded
 * channels (a CMYK profile on a JPEG the decoder already turned to RGB, an RGB profile on a
 * gray image). A gray image with a gray profile stays gray: its output is a gray profile with
 * the sRGB tone curve. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lcms2.h>

#include "meta.h"

#define TAG_ORIENTATION 0x0112
#define TIFF_SHORT 3
#define TIFF_LONG 4

static unsigned rd16(const unsigned char *p, int be)
{
    return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t rd32(const unsigned char *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Offset of IFD0's Orientation entry (12 bytes, all inside the block), 0 when none; *be: the
 * block's byte order. */
static size_t orientation_entry(const unsigned char *p, size_t len, int *be)
{
    if (!p || len < 8)
        return 0;
    if (!memcmp(p, "II*\0", 4))
        *be = 0;
    else if (!memcmp(p, "MM\0*", 4))
        *be = 1;
    else
        return 0;
    uint32_t ifd = rd32(p + 4, *be);
    if (ifd < 8 || ifd > len - 2)
        return 0;
    size_t n = rd16(p + ifd, *be);
    if (n > (len - ifd - 2) / 12)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t e = ifd + 2 + 12 * i;
        if (rd16(p + e, *be) == TAG_ORIENTATION)
            return e;
    }
    return 0;
}

int tsr__exif_orientation(const unsigned char *exif, size_t len)
{
    int be;
    size_t e = orientation_entry(exif, len, &be);
    if (!e || rd32(exif + e + 4, be) < 1)
        return 0;
    unsigned type = rd16(exif + e + 2, be);
    uint32_t v = type == TIFF_SHORT  ? rd16(exif + e + 8, be)
                 : type == TIFF_LONG ? rd32(exif + e + 8, be)
                                     : 0;
    return v >= 1 && v <= 8 ? (int)v : 0;
}

unsigned char *tsr__exif_upright(const unsigned char *exif, size_t len)
{
    unsigned char *out = len ? malloc(len) : NULL;
    if (!out)
        return NULL;
    memcpy(out, exif, len);
    int be;
    size_t e = orientation_entry(out, len, &be);
    if (!e || rd32(out + e + 4, be) < 1)
        return out;
    unsigned type = rd16(out + e + 2, be);
    unsigned char *v = out + e + 8;
    if (type == TIFF_SHORT) {
        v[0] = be ? 0 : 1;
        v[1] = be ? 1 : 0;
    } else if (type == TIFF_LONG) {
        memset(v, 0, 4);
        v[be ? 3 : 0] = 1;
    }
    return out;
}

int tsr__meta_orientation(const tsr__meta *m)
{
    if (m->orientation >= 1 && m->orientation <= 8)
        return m->orientation;
    return tsr__exif_orientation(m->exif, m->exif_len);
}

/* Orientation ---------------------------------------------------------------------------------- */

tsr_status tsr__orient_image(tsr_image **img, int o)
{
    if (o < 2 || o > 8)
        return TSR_OK;
    const tsr_image *s = *img;
    ptrdiff_t W = s->width, H = s->height;
    int swap = o >= 5;
    tsr_image *d;
    tsr_status rc =
        tsr_image_new(swap ? s->height : s->width, swap ? s->width : s->height, s->channels, &d);
    if (rc)
        return rc;
    d->bit_depth = s->bit_depth;
    /* The source of output pixel (x, y) is (x0 + ax x + bx y, y0 + ay x + by y). */
    ptrdiff_t x0 = 0, y0 = 0, ax = 0, bx = 0, ay = 0, by = 0;
    switch (o) {
    case 2: x0 = W - 1, ax = -1, by = 1; break;              /* mirror horizontal */
    case 3: x0 = W - 1, ax = -1, y0 = H - 1, by = -1; break; /* rotate 180 */
    case 4: ax = 1, y0 = H - 1, by = -1; break;              /* mirror vertical */
    case 5: bx = 1, ay = 1; break;                           /* transpose */
    case 6: bx = 1, y0 = H - 1, ay = -1; break;              /* rotate 90 CW */
    case 7: x0 = W - 1, bx = -1, y0 = H - 1, ay = -1; break; /* transverse */
    default: x0 = W - 1, bx = -1, ay = 1; break;             /* 8: rotate 90 CCW */
    }
    ptrdiff_t base = y0 * W + x0, step_x = ay * W + ax, step_y = by * W + bx;
    ptrdiff_t ow = d->width, oh = d->height, plane = W * H;
    /* Blocks of 64x64: a rotation reads columns, which would otherwise miss the cache. */
    for (int c = 0; c < s->channels; c++) {
        const float *src = s->data + c * plane + base;
        float *dst = d->data + c * plane;
        for (ptrdiff_t by0 = 0; by0 < oh; by0 += 64)
            for (ptrdiff_t bx0 = 0; bx0 < ow; bx0 += 64)
                for (ptrdiff_t y = by0; y < oh && y < by0 + 64; y++) {
                    const float *row = src + y * step_y;
                    for (ptrdiff_t x = bx0; x < ow && x < bx0 + 64; x++)
                        dst[y * ow + x] = row[x * step_x];
                }
    }
    tsr_image_free(*img);
    *img = d;
    return TSR_OK;
}

/* ICC ------------------------------------------------------------------------------------------ */

static const char *space_name(cmsColorSpaceSignature cs)
{
    switch (cs) {
    case cmsSigRgbData: return "RGB";
    case cmsSigGrayData: return "gray";
    case cmsSigCmykData: return "CMYK";
    case cmsSigLabData: return "Lab";
    case cmsSigYCbCrData: return "YCbCr";
    default: return "another colour space's";
    }
}

/* A gray profile with the sRGB tone curve (D50 white, as the PCS). */
static cmsHPROFILE gray_srgb(void)
{
    static const double srgb_curve[5] = {2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045};
    cmsToneCurve *t = cmsBuildParametricToneCurve(NULL, 4, srgb_curve);
    if (!t)
        return NULL;
    cmsHPROFILE p = cmsCreateGrayProfile(cmsD50_xyY(), t);
    cmsFreeToneCurve(t);
    return p;
}

/* count interleaved pixels of n samples through xf, in place in v; `scratch` holds 2 count n
 * floats. u8: the transform takes 8-bit samples, for images decoded from 8 bits: lcms2 then
 * evaluates a matrix-shaper profile through its exact 8-bit path (what Pillow's ImageCms does),
 * about 20 times faster than its float path. (Its 16-bit path goes through a precomputed grid,
 * off by up to 4/255 near the gamut's edge: not used.) */
static void xform(cmsHTRANSFORM xf, int u8, float *v, size_t count, int n, float *scratch)
{
    size_t k = count * (size_t)n;
    if (u8) {
        unsigned char *a = (unsigned char *)scratch, *b = a + k;
        for (size_t i = 0; i < k; i++)
            a[i] = (unsigned char)tsr__quantize(v[i], 255);
        cmsDoTransform(xf, a, b, (cmsUInt32Number)count);
        for (size_t i = 0; i < k; i++)
            v[i] = (float)b[i] / 255.0f;
    } else {
        cmsDoTransform(xf, v, scratch, (cmsUInt32Number)count);
        for (size_t i = 0; i < k; i++)
            v[i] = scratch[i] > 0.0f ? (scratch[i] < 1.0f ? scratch[i] : 1.0f) : 0.0f;
    }
}

/* The transform leaves every point of a 17^3 grid over the colour cube within one 8-bit step
 * of where it was: the profile is sRGB by another maker (the ICC's sRGB2014 moves pure green
 * by 0.51/255 against lcms2's built-in one, from the rounding of its colorants) and nothing is
 * converted. Profiles that differ for real move some point by several steps (a gamma 2.2 curve
 * by 4.5 in the darks, Display P3 by over 100). */
static int is_identity(cmsHTRANSFORM xf, int u8, int n)
{
    enum { STEPS = 17 };
    float in[STEPS * 3], out[STEPS * 3], scratch[STEPS * 3 * 2];
    int grid = n == 1 ? 1 : STEPS;
    for (int r = 0; r < grid; r++)
        for (int g = 0; g < grid; g++) {
            for (int b = 0; b < STEPS; b++) {
                float v[3] = {(float)r / (STEPS - 1), (float)g / (STEPS - 1),
                              (float)b / (STEPS - 1)};
                if (n == 1)
                    in[b] = v[2];
                else
                    memcpy(in + 3 * b, v, sizeof v);
            }
            memcpy(out, in, sizeof in);
            xform(xf, u8, out, STEPS, n, scratch);
            for (int i = 0; i < STEPS * n; i++) {
                float dv = out[i] - in[i];
                if (dv > 1.0001f / 255 || dv < -1.0001f / 255)
                    return 0;
            }
        }
    return 1;
}

int tsr__icc_to_srgb(tsr_image *img, const unsigned char *icc, size_t len, char *why,
                     size_t why_len)
{
    int n = img->channels <= 2 ? 1 : 3, ret = 1, u8 = img->bit_depth <= 8;
    cmsHPROFILE in = len <= UINT32_MAX ? cmsOpenProfileFromMem(icc, (cmsUInt32Number)len) : NULL;
    cmsHPROFILE out = NULL;
    cmsHTRANSFORM xf = NULL;
    float *buf = NULL;
    if (!in) {
        snprintf(why, why_len,
                 "ICC profile of %zu bytes not readable by lcms2: colours left as "
                 "stored",
                 len);
        return 1;
    }
    cmsColorSpaceSignature cs = cmsGetColorSpace(in);
    if (cs != (n == 1 ? cmsSigGrayData : cmsSigRgbData)) {
        snprintf(why, why_len, "%s ICC profile on %s image: colours left as stored", space_name(cs),
                 n == 1 ? "a gray" : "an RGB");
        goto done;
    }
    out = n == 1 ? gray_srgb() : cmsCreate_sRGBProfile();
    cmsUInt32Number fmt =
        n == 1 ? (u8 ? TYPE_GRAY_8 : TYPE_GRAY_FLT) : (u8 ? TYPE_RGB_8 : TYPE_RGB_FLT);
    if (!out) {
        ret = -1;
        goto done;
    }
    xf = cmsCreateTransform(in, fmt, out, fmt, INTENT_PERCEPTUAL, 0);
    if (!xf) {
        snprintf(why, why_len,
                 "lcms2 cannot make a transform from the ICC profile to sRGB: "
                 "colours left as stored");
        goto done;
    }
    ret = 0;
    if (is_identity(xf, u8, n))
        goto done;
    /* A row at a time: interleaved samples, and twice that for the transform's own buffers. */
    size_t w = (size_t)img->width, plane = w * (size_t)img->height;
    if (!(buf = malloc(w * (size_t)n * 3 * sizeof *buf))) {
        ret = -1;
        goto done;
    }
    for (size_t y = 0; y < (size_t)img->height; y++) {
        float *p = img->data + y * w;
        for (size_t x = 0; x < w; x++)
            for (int c = 0; c < n; c++)
                buf[x * (size_t)n + (size_t)c] = p[(size_t)c * plane + x];
        xform(xf, u8, buf, w, n, buf + w * (size_t)n);
        for (size_t x = 0; x < w; x++)
            for (int c = 0; c < n; c++)
                p[(size_t)c * plane + x] = buf[x * (size_t)n + (size_t)c];
    }
done:
    free(buf);
    if (xf)
        cmsDeleteTransform(xf);
    if (out)
        cmsCloseProfile(out);
    cmsCloseProfile(in);
    return ret;
}

/* After a decode ----------------------------------------------------------------------------- */

tsr_status tsr__dec_apply_meta(tsr__dec *d)
{
    if (d->img && d->lo.colour == TSR_COLOUR_SRGB && d->meta.icc) {
        char why[256];
        int r = tsr__icc_to_srgb(d->img, d->meta.icc, d->meta.icc_len, why, sizeof why);
        if (r < 0)
            return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory converting to sRGB");
        if (r > 0 && d->ctl && d->ctl->warn) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s: %s", d->name, why);
            d->ctl->warn(d->ctl->user, msg);
        }
    }
    if (d->lo.orientation != TSR_ORIENT_AUTO)
        return TSR_OK;
    int o = tsr__meta_orientation(&d->meta);
    d->info.reoriented = o >= 2 && o <= 8;
    if (o >= 5) {
        int w = d->info.width;
        d->info.width = d->info.height;
        d->info.height = w;
    }
    if (d->img && tsr__orient_image(&d->img, o))
        return tsr__dec_fail(d, TSR_ERR_NOMEM, "out of memory turning the image upright");
    return TSR_OK;
}
