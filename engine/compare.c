/* Image comparison: max/mean absolute difference, PSNR and SSIM of two same-shaped images.
 *
 * Shapes must match exactly: same width, height and channel count (no gray-to-RGB promotion, no
 * alpha dropping), and every channel, alpha included, counts. A NaN or infinite sample counts as
 * an infinite difference.
 *
 * Units: differences are counted in the images' own levels, so a threshold of 1 accepts exactly
 * one level. Both images from 8-bit files: each sample becomes its level round(v * 255) and the
 * difference is an integer (exact, with no float residue such as 1.000008); both 16-bit: levels
 * of 65535; one 8-bit and one 16-bit: the coarser, 255. Anything else (float pixels, or an image
 * not read from a file): v * 255 without rounding, as 1/255 units. PSNR and SSIM are computed on
 * the same quantised samples (peak and data range: one full level scale), so for integer images
 * they equal scikit-image's figures on the integer arrays.
 *
 * SSIM follows scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=1): an 11x11 Gaussian window (sigma 1.5, truncated at
 * 3.5 sigma, normalised over its 121 taps), K1 = 0.01, K2 = 0.03, L = 1, population variances,
 * the SSIM map averaged over the valid region (windows wholly inside the image, which is what
 * scikit-image's crop of its padded filter output keeps), then averaged over channels.
 *
 * An image narrower or lower than 11 has no such window; scikit-image refuses it. Here the whole
 * image is then the one window, with uniform weights (a Gaussian centred on a 4x9 image would
 * mostly weigh its middle): the global SSIM of the plane, population moments, same K1, K2. For a
 * 9x9 image this is scikit-image's gaussian_weights=False, win_size=9, whose one valid window is
 * the whole image.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SSIM_R 5 /* window radius: int(3.5 * 1.5 + 0.5) */
#define SSIM_N (2 * SSIM_R + 1)
#define SSIM_C1 (0.01 * 0.01)
#define SSIM_C2 (0.03 * 0.03)

/* Five windowed moments per pixel: E[x], E[y], E[x^2], E[y^2], E[xy]. */
#define MOMENTS 5

static void ssim_weights(double *g)
{
    double sum = 0;
    for (int i = 0; i < SSIM_N; i++) {
        double t = (double)(i - SSIM_R) / 1.5;
        g[i] = exp(-0.5 * t * t);
        sum += g[i];
    }
    for (int i = 0; i < SSIM_N; i++)
        g[i] /= sum;
}

/* A sample as the comparison sees it: on a scale of `levels` levels, rounded to its level (then
 * back on 0..1, so that every formula below is the same for both kinds); levels 0: as stored. */
static inline double sample(float v, double levels)
{
    return levels > 0 ? round((double)v * levels) / levels : (double)v;
}

/* Horizontal pass of one image row into ring slot `dst` (MOMENTS planes of ow values). */
static void ssim_hrow(const float *x, const float *y, size_t ow, const double *g, double lv,
                      double *dst)
{
    for (size_t i = 0; i < ow; i++) {
        double m[MOMENTS] = {0};
        for (int k = 0; k < SSIM_N; k++) {
            double a = sample(x[i + (size_t)k], lv), b = sample(y[i + (size_t)k], lv);
            m[0] += g[k] * a;
            m[1] += g[k] * b;
            m[2] += g[k] * a * a;
            m[3] += g[k] * b * b;
            m[4] += g[k] * a * b;
        }
        for (int q = 0; q < MOMENTS; q++)
            dst[(size_t)q * ow + i] = m[q];
    }
}

/* Mean SSIM of one channel. ring holds SSIM_N horizontally filtered rows, MOMENTS * ow each;
 * only the rows under the current window are kept, so memory is O(width). */
static double ssim_plane(const float *x, const float *y, size_t w, size_t h, const double *g,
                         double lv, double *ring)
{
    size_t ow = w - 2 * SSIM_R, oh = h - 2 * SSIM_R, slot = (size_t)MOMENTS * ow;
    double total = 0;
    for (size_t r = 0; r < 2 * SSIM_R; r++)
        ssim_hrow(x + r * w, y + r * w, ow, g, lv, ring + (r % SSIM_N) * slot);
    for (size_t oy = 0; oy < oh; oy++) {
        size_t r = oy + 2 * SSIM_R;
        ssim_hrow(x + r * w, y + r * w, ow, g, lv, ring + (r % SSIM_N) * slot);
        double row_sum = 0;
        for (size_t i = 0; i < ow; i++) {
            double m[MOMENTS] = {0};
            for (int k = 0; k < SSIM_N; k++) {
                const double *s = ring + ((oy + (size_t)k) % SSIM_N) * slot + i;
                for (int q = 0; q < MOMENTS; q++)
                    m[q] += g[k] * s[(size_t)q * ow];
            }
            double ux = m[0], uy = m[1];
            double vx = m[2] - ux * ux, vy = m[3] - uy * uy, vxy = m[4] - ux * uy;
            row_sum += ((2 * ux * uy + SSIM_C1) * (2 * vxy + SSIM_C2)) /
                       ((ux * ux + uy * uy + SSIM_C1) * (vx + vy + SSIM_C2));
        }
        total += row_sum;
    }
    return total / ((double)ow * (double)oh);
}

/* SSIM of one channel smaller than the window: the whole plane is one window, uniform weights. */
static double ssim_global(const float *x, const float *y, size_t n, double lv)
{
    double m[MOMENTS] = {0};
    for (size_t i = 0; i < n; i++) {
        double a = sample(x[i], lv), b = sample(y[i], lv);
        m[0] += a;
        m[1] += b;
        m[2] += a * a;
        m[3] += b * b;
        m[4] += a * b;
    }
    for (int q = 0; q < MOMENTS; q++)
        m[q] /= (double)n;
    double ux = m[0], uy = m[1];
    double vx = m[2] - ux * ux, vy = m[3] - uy * uy, vxy = m[4] - ux * uy;
    return ((2 * ux * uy + SSIM_C1) * (2 * vxy + SSIM_C2)) /
           ((ux * ux + uy * uy + SSIM_C1) * (vx + vy + SSIM_C2));
}

/* The level scale both images share: see the top of the file. */
static int compare_levels(const tsr_image *a, const tsr_image *b)
{
    int da = a->bit_depth, db = b->bit_depth;
    if ((da != 8 && da != 16) || (db != 8 && db != 16))
        return 0;
    return da == 8 || db == 8 ? 255 : 65535;
}

tsr_status tsr__image_compare(const tsr_image *a, const tsr_image *b, tsr_compare_result *res,
                              tsr__err *err)
{
    if (!a || !b || !res || !a->data || !b->data)
        return tsr__seterr(err, TSR_ERR_INVALID, "compare: NULL image or result");
    if (a->width != b->width || a->height != b->height || a->channels != b->channels)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "compare: images differ in shape: %dx%d with %d channels vs %dx%d "
                           "with %d (expected the same width, height and channel count)",
                           a->width, a->height, a->channels, b->width, b->height, b->channels);
    size_t w = (size_t)a->width, h = (size_t)a->height, ch = (size_t)a->channels;
    size_t plane = w * h, n = plane * ch; /* fits: the images exist */

    /* Differences in units of one level (scale = levels, or 255 for 1/255 units); integers when
     * the images have levels, so max is exact and the sum behind the mean stays exact up to
     * 2^53 (over 10^11 samples at 16 bits). */
    int levels = compare_levels(a, b);
    double lv = levels, scale = levels ? levels : 255.0;
    double maxd = 0, sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a->data[i], y = b->data[i], d;
        if (!isfinite(x) || !isfinite(y))
            d = INFINITY;
        else if (levels)
            d = fabs(round(x * lv) - round(y * lv));
        else
            d = fabs(x - y) * scale;
        if (d > maxd)
            maxd = d;
        sum += d;
        sq += d * d;
    }
    double mse = sq / (double)n / (scale * scale); /* on 0..1 */
    double ssim;
    if (mse == 0) {
        ssim = 1.0;
    } else if (isinf(mse)) {
        ssim = NAN;
    } else if (w < SSIM_N || h < SSIM_N) {
        ssim = 0;
        for (size_t c = 0; c < ch; c++)
            ssim += ssim_global(a->data + c * plane, b->data + c * plane, plane, lv);
        ssim /= (double)ch;
    } else {
        double g[SSIM_N];
        ssim_weights(g);
        size_t ow = w - 2 * SSIM_R, bytes;
        if (!tsr__mul_size(ow, (size_t)SSIM_N * MOMENTS * sizeof(double), &bytes))
            return tsr__seterr(err, TSR_ERR_NOMEM, "compare: SSIM buffer size overflows");
        double *ring = malloc(bytes);
        if (!ring)
            return tsr__seterr(err, TSR_ERR_NOMEM, "compare: out of memory for SSIM");
        ssim = 0;
        for (size_t c = 0; c < ch; c++)
            ssim += ssim_plane(a->data + c * plane, b->data + c * plane, w, h, g, lv, ring);
        ssim /= (double)ch;
        free(ring);
    }
    res->max_abs = maxd;
    res->mean_abs = sum / (double)n;
    res->psnr = mse == 0 ? INFINITY : 10.0 * log10(scale * scale / (sq / (double)n));
    res->ssim = ssim;
    res->levels = levels;
    return TSR_OK;
}

tsr_status tsr_image_compare(tsr_engine *e, const tsr_image *a, const tsr_image *b,
                             tsr_compare_result *res)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    return tsr__image_compare(a, b, res, tsr__eerr(e));
}
