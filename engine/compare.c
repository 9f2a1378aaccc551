/* Image comparison: max/mean absolute difference, PSNR and SSIM of two same-shaped images.
 *
 * Shapes must match exactly: same width, height and channel count (no gray-to-RGB promotion, no
 * alpha dropping), and every channel, alpha included, counts. A NaN sample counts as an infinite
 * difference.
 *
 * SSIM follows scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=1): an 11x11 Gaussian window (sigma 1.5, truncated at
 * 3.5 sigma, normalised over its 121 taps), K1 = 0.01, K2 = 0.03, L = 1, population variances,
 * the SSIM map averaged over the valid region (windows wholly inside the image, which is what
 * scikit-image's crop of its padded filter output keeps), then averaged over channels. Images
 * smaller than 11x11 have no valid window: SSIM is 1 when they are identical and NaN otherwise.
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

/* Horizontal pass of one image row into ring slot `dst` (MOMENTS planes of ow values). */
static void ssim_hrow(const float *x, const float *y, size_t ow, const double *g, double *dst)
{
    for (size_t i = 0; i < ow; i++) {
        double m[MOMENTS] = {0};
        for (int k = 0; k < SSIM_N; k++) {
            double a = x[i + (size_t)k], b = y[i + (size_t)k];
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
                         double *ring)
{
    size_t ow = w - 2 * SSIM_R, oh = h - 2 * SSIM_R, slot = (size_t)MOMENTS * ow;
    double total = 0;
    for (size_t r = 0; r < 2 * SSIM_R; r++)
        ssim_hrow(x + r * w, y + r * w, ow, g, ring + (r % SSIM_N) * slot);
    for (size_t oy = 0; oy < oh; oy++) {
        size_t r = oy + 2 * SSIM_R;
        ssim_hrow(x + r * w, y + r * w, ow, g, ring + (r % SSIM_N) * slot);
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

    double maxd = 0, sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a->data[i] - (double)b->data[i]);
        if (isnan(d))
            d = INFINITY;
        if (d > maxd)
            maxd = d;
        sum += d;
        sq += d * d;
    }
    double mse = sq / (double)n;
    double ssim;
    if (mse == 0) {
        ssim = 1.0;
    } else if (w < SSIM_N || h < SSIM_N || isinf(mse)) {
        ssim = NAN;
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
            ssim += ssim_plane(a->data + c * plane, b->data + c * plane, w, h, g, ring);
        ssim /= (double)ch;
        free(ring);
    }
    res->max_abs = maxd * 255.0;
    res->mean_abs = sum / (double)n * 255.0;
    res->psnr = mse == 0 ? INFINITY : 10.0 * log10(1.0 / mse);
    res->ssim = ssim;
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
