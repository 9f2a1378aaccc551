/* Helpers shared by node implementations. */
#ifndef TSR_NODEUTIL_H
#define TSR_NODEUTIL_H
#include "internal.h"

/* Host mirror of tsr_geom in kernels/common.clh (all cl_int, so the layout matches). */
typedef struct tsr__geom {
    cl_int in_x, in_y, in_w, in_h;
    cl_int out_x, out_y, out_w, out_h;
    cl_int img_w, img_h;
    cl_int pad0, pad1;
} tsr__geom;

static inline tsr__geom tsr__geom_of(const tsr_region *in, const tsr_region *out)
{
    tsr__geom g = {in->rect.x,  in->rect.y,  in->rect.w, in->rect.h, out->rect.x, out->rect.y,
                   out->rect.w, out->rect.h, in->img_w,  in->img_h,  0,           0};
    return g;
}

/* Number of colour channels: 2 and 4 channel images carry alpha last. */
static inline int tsr__colour_channels(int channels)
{
    return channels == 2 || channels == 4 ? channels - 1 : channels;
}
static inline int tsr__has_alpha(int channels)
{
    return channels == 2 || channels == 4;
}

/* infer for pointwise/shape-preserving nodes: output = input 0. */
tsr_status tsr__infer_same(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                           tsr__err *err);
/* plan for pointwise nodes: the input rectangle is the output rectangle. */
void tsr__plan_pointwise(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out,
                         tsr_plan *p);

/* ---------------------------------------------------------------------------------------------
 * Separable Gaussian blur, shared by blur.gaussian and the nodes built on it (sharpen), so that
 * they agree bit for bit. The device passes are the kernels of kernels/blur.gaussian.cl. */

/* sigma is capped at 100 (801 taps): past that a direct convolution costs more than it is worth
 * and a box cascade or FFT path should take over. The floor keeps 1/sigma^2 finite; at 0.01
 * the outer taps underflow to 0 and the blur is the identity. */
#define TSR_GAUSS_SIGMA_MIN 0.01
#define TSR_GAUSS_SIGMA_MAX 100.0
#define TSR_GAUSS_SIGMA_DOC                                                                        \
    "standard deviation in pixels (0.01..100); the kernel radius is ceil(4*sigma)"
#define TSR_GAUSS_MAX_RADIUS 400 /* ceil(4 * TSR_GAUSS_SIGMA_MAX) */
#define TSR_GAUSS_EDGES "clamp|mirror|zero"
#define TSR_GAUSS_EDGE_DOC                                                                         \
    "outside the image: clamp repeats the edge pixel, mirror reflects without repeating it "       \
    "(reflecting again as often as a small image needs), zero reads 0"

/* Edge policies: the index of the word in TSR_GAUSS_EDGES; kernels/blur.gaussian.cl uses the same
 * numbers. */
enum { TSR_EDGE_CLAMP = 0, TSR_EDGE_MIRROR = 1, TSR_EDGE_ZERO = 2 };

/* Kernel radius ceil(4 sigma), at least 1 and at most TSR_GAUSS_MAX_RADIUS. */
int tsr__gauss_radius(double sigma);
/* Taps for offsets -r..r into w (room for 2 * TSR_GAUSS_MAX_RADIUS + 1), normalised to sum 1.
 * Returns r. */
int tsr__gauss_weights(double sigma, float *w);
/* The blur's planned buffers: the taps (RUN, uploaded once by tsr__gauss_prepare) and the
 * horizontal pass's output (TILE). */
enum { TSR_GAUSS_BUF_WEIGHTS = 0, TSR_GAUSS_BUF_SCRATCH = 1 };
/* Input rectangle and buffers (p->bufs[0..1], n_bufs = 2) of a blur of the first `planes`
 * planes of input 0 for output rectangle `out`. */
void tsr__gauss_plan(double sigma, int planes, const tsr_port_info *in, const tsr_rect *out,
                     tsr_plan *p);
/* Blur planes 0..planes-1 of `in` into the same planes of `out`, leaving the others untouched.
 * The reference path; n names the node in messages. */
tsr_status tsr__gauss_ref(const tsr_node *n, const tsr_region *in, const tsr_region *out,
                          int planes, double sigma, int edge, tsr__err *err);
/* prepare(): upload the taps into ex->bufs[TSR_GAUSS_BUF_WEIGHTS] (nothing on the ref engine). */
tsr_status tsr__gauss_prepare(tsr_exec *ex, double sigma);
/* The same on the device: enqueues the two passes reading the taps and scratch buffers plan()
 * asked for (ex->bufs). */
tsr_status tsr__gauss_cl(tsr_exec *ex, const tsr_region *in, const tsr_region *out, int planes,
                         double sigma, int edge);

#endif
