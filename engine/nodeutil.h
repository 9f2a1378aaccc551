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
tsr_status tsr__infer_same(const tsr_node *n, const tsr_image_info *in, tsr_image_info *out,
                           tsr__err *err);
/* plan for pointwise nodes: the input rectangle is the output rectangle. */
void tsr__plan_pointwise(const tsr_node *n, const tsr_image_info *in, const tsr_rect *out,
                         tsr_plan *p);

#endif
