/* Running a network on one output rectangle (engine/netrun.c), for the upscale node. */
#ifndef TSR_NETRUN_H
#define TSR_NETRUN_H
#include "model.h"

/* overlap: pixels of context between tiles, or one of these. */
#define TSR_NET_OVERLAP_EXACT (-1) /* the receptive field: tiles equal the untiled run */
#define TSR_NET_OVERLAP_AUTO (-2)  /* exact when that costs under ~25 % more, else the padding */

/* Blob slots a network may keep at once: the executor's buffer list less the scratch. */
#define TSR_NET_MAX_SLOTS (TSR_MAX_BUFS - 1)

typedef struct tsr__netopt {
    int overlap;  /* pixels >= 0, or TSR_NET_OVERLAP_* */
    int edge;     /* TSR_NET_EDGE_* */
    int residual; /* add the nearest enlargement of the input to the output */
} tsr__netopt;

/* Whole-image statistics of the global pooling layers (realcugan-ncnn-vulkan's "syncgap"): when
 * an image runs as several tiles, each pooling layer's vector is computed once over the whole
 * image (every tile adds the part of the pooled blob it owns) and every tile uses it. */
#define TSR_NET_MAX_POOL 16
typedef struct tsr__netsync {
    int n;                        /* global pooling layers, in layer order */
    int layer[TSR_NET_MAX_POOL];  /* their indices */
    float *vec[TSR_NET_MAX_POOL]; /* their whole-image vectors, NULL until computed */
    double seconds;               /* time the statistics passes took */
} tsr__netsync;

/* Where one output rectangle's network runs, in input and output pixel coordinates. */
typedef struct tsr__netgeo {
    tsr_rect out; /* the output rectangle */
    tsr_rect win; /* network input window (may extend past the image: edge rule) */
    tsr_rect src; /* source pixels the window and the alpha taps read */
    int ox, oy;   /* offset of `out` in the network's output */
    int context;  /* context pixels used between tiles */
    double own_x0, own_x1, own_y0, own_y1; /* input coordinates this rectangle owns (statistics):
                                              [out / scale), unbounded at the image's edges */
} tsr__netgeo;

typedef struct tsr__netplan {
    tsr__netgeo geo;
    tsr_nn_shape *shapes; /* per blob */
    int *slot;            /* per blob: storage slot (Split outputs share their input's) */
    int n_slots;
    size_t slot_bytes[TSR_MAX_BUFS];
    size_t scratch;   /* largest layer scratch */
    size_t live_peak; /* largest total of blobs alive at once (bytes, unrounded) */
} tsr__netplan;

/* Context pixels for an overlap setting; *exact says whether tiles will equal the untiled run.
 * INT_MAX when exactness is asked of a model with global pooling. */
int tsr__net_context(const tsr__model *m, int overlap, int *exact);
tsr_status tsr__netplan_make(const tsr__model *m, const tsr__netopt *o, int img_w, int img_h,
                             tsr_rect out, tsr__netplan *np, tsr__err *err);
void tsr__netplan_free(tsr__netplan *np);
/* A statistics pass: run the layers before layer `stop` (a global pooling layer) and add the
 * part of its input blob this rectangle owns into acc[c] (sums, or maxima for max pooling), and
 * the number of pixels into *count. */
typedef struct tsr__netpass {
    int stop; /* -1: run every layer */
    double *acc;
    double *count;
    tsr_image *raw; /* set: copy the network's output for the rectangle here (0..1 floats,
                       before rounding) instead of writing the output region */
} tsr__netpass;

/* The reference path: src is the region plan() asked for (np->geo.src). sync: vectors to use
 * instead of the pooling layers' own (NULL: none); pass: a statistics pass, or NULL. */
tsr_status tsr__net_run_ref(const tsr__model *m, const tsr__netopt *o, const tsr__netplan *np,
                            const tsr__netsync *sync, const tsr__netpass *pass,
                            const tsr_region *src, const tsr_region *out, tsr__err *err);
/* The device path: slots[np->n_slots] blob buffers, scratch of np->scratch bytes (or NULL). */
tsr_status tsr__net_run_cl(tsr_exec *ex, const tsr__model *m, const tsr__netopt *o,
                           const tsr__netplan *np, const tsr__netsync *sync,
                           const tsr__netpass *pass, const cl_mem *slots, cl_mem scratch,
                           const tsr_region *src, const tsr_region *out);
/* The whole-image statistics for an image of img->width x img->height run in tiles of tile_w x
 * tile_h output pixels: one pass per global pooling layer over every tile. On the device when
 * ex->cl is set (buffers from the pool, released before returning), else on the host. */
tsr_status tsr__net_sync(tsr_exec *ex, const tsr__model *m, const tsr__netopt *o,
                         const tsr_image *img, int tile_w, int tile_h, tsr__netsync *sync);
void tsr__netsync_free(tsr__netsync *sync);
/* The network's raw output (before the *255, residual and rounding) for the whole image as one
 * tile, on engine e (device or reference): tests compare it with ncnn's in fp32. */
tsr_status tsr__net_raw(tsr_engine *e, const tsr__model *m, const tsr_image *img, tsr_image **raw);

#endif
