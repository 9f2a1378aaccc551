/* Geometry the reference (nn_ref.c) and device (nn_cl.c) layer paths share. Static inline, so
 * that both files compute the very same padding without a second exported symbol. */
#ifndef TSR_NN_GEOM_H
#define TSR_NN_GEOM_H
#include "nn.h"

#define TSR_NN_SAME_UPPER (-233)
#define TSR_NN_SAME_LOWER (-234)

/* Convolution: padding at the top and left of the input. Deconvolution: rows and columns
 * trimmed from the top and left of the full output. The loader's tsr__nn_pads decides both. */
static inline void tsr__nn_conv_pads(const tsr_nn_layer *L, const tsr_nn_shape *in,
                                     const tsr_nn_shape *out, int *top, int *left)
{
    int bottom, right;
    (void)out;
    tsr__nn_pads(L, in, top, &bottom, left, &right);
}

/* Input channels of a Convolution/Deconvolution from its weight count. */
static inline int tsr__nn_conv_in(const tsr_nn_layer *L)
{
    size_t per = (size_t)L->num_output * L->kernel_w * L->kernel_h;
    return per ? (int)(L->n_weight / per) : 0;
}

#endif
