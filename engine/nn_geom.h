/* Geometry the reference (nn_ref.c) and device (nn_cl.c) layer paths share. Static inline, so
 * that both files compute the very same padding without a second exported symbol. */
#ifndef TSR_NN_GEOM_H
#define TSR_NN_GEOM_H
#include "nn.h"

#define TSR_NN_SAME_UPPER (-233)
#define TSR_NN_SAME_LOWER (-234)

/* Convolution: padding before and after one axis of n input samples. The SAME modes (all four
 * pads -233 or -234) pad to ceil(n / stride) outputs; UPPER puts the smaller half before. */
static inline void tsr__nn_conv_axis_pads(int mode, int before, int after, int n, int k, int dil,
                                          int stride, int *b, int *a)
{
    if (mode == TSR_NN_SAME_UPPER || mode == TSR_NN_SAME_LOWER) {
        long long kext = (long long)dil * (k - 1) + 1;
        long long total = kext + (long long)(n - 1) / stride * stride - n;
        if (total < 0)
            total = 0;
        int small = (int)(total / 2), large = (int)(total - total / 2);
        *b = mode == TSR_NN_SAME_UPPER ? small : large;
        *a = mode == TSR_NN_SAME_UPPER ? large : small;
    } else {
        *b = before;
        *a = after;
    }
}

/* Convolution: padding around the input. Deconvolution: rows and columns trimmed from the top
 * and left of the full output (the pads, or in the SAME modes the split of the excess over
 * output_w x output_h; `out` is the trimmed shape). */
static inline void tsr__nn_conv_pads(const tsr_nn_layer *L, const tsr_nn_shape *in,
                                     const tsr_nn_shape *out, int *top, int *left)
{
    int after;
    if (L->type == TSR_NN_CONVOLUTION) {
        tsr__nn_conv_axis_pads(L->pad_top, L->pad_top, L->pad_bottom, in->h, L->kernel_h,
                               L->dilation_h, L->stride_h, top, &after);
        tsr__nn_conv_axis_pads(L->pad_left, L->pad_left, L->pad_right, in->w, L->kernel_w,
                               L->dilation_w, L->stride_w, left, &after);
        return;
    }
    *top = L->pad_top > 0 ? L->pad_top : 0;
    *left = L->pad_left > 0 ? L->pad_left : 0;
    if (L->pad_left < 0 && L->output_w > 0 && L->output_h > 0) {
        long long fh = (long long)(in->h - 1) * L->stride_h +
                       (long long)L->dilation_h * (L->kernel_h - 1) + 1 + L->output_pad_bottom;
        long long fw = (long long)(in->w - 1) * L->stride_w +
                       (long long)L->dilation_w * (L->kernel_w - 1) + 1 + L->output_pad_right;
        long long hc = fh - out->h, wc = fw - out->w;
        if (hc < 0 || wc < 0)
            return;
        int upper = L->pad_left == TSR_NN_SAME_UPPER;
        *top = (int)(upper ? hc / 2 : hc - hc / 2);
        *left = (int)(upper ? wc / 2 : wc - wc / 2);
    }
}

/* Input channels of a Convolution/Deconvolution from its weight count. */
static inline int tsr__nn_conv_in(const tsr_nn_layer *L)
{
    size_t per = (size_t)L->num_output * L->kernel_w * L->kernel_h;
    return per ? (int)(L->n_weight / per) : 0;
}

#endif
