/* Crop's kept box for the reference and the device path: the loader's shape function and
 * offsets (engine/nn_model.c), so that the shapes, the reference and the kernels cut the same
 * window. Semantics: NCNN-FORMAT.md section 4, Crop. */
#include "nn.h"

tsr_status tsr__nn_crop_box(const tsr_nn_layer *L, const tsr_nn_shape *in, int off[3],
                            tsr_nn_shape *out, tsr__err *err)
{
    tsr_status rc = tsr__nn_layer_shape(L, in, out, err);
    if (rc)
        return rc;
    tsr__nn_crop_offsets(L, in, &off[0], &off[1], &off[2]);
    return TSR_OK;
}
