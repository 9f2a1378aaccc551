/* Helpers shared by node implementations (see nodeutil.h). */
#include "nodeutil.h"

tsr_status tsr__infer_same(const tsr_node *n, const tsr_image_info *in, tsr_image_info *out,
                           tsr__err *err)
{
    out[0] = in[0];
    return TSR_OK;
}

void tsr__plan_pointwise(const tsr_node *n, const tsr_image_info *in, const tsr_rect *out,
                         tsr_plan *p)
{
    for (int i = 0; i < n->cls->n_inputs && i < TSR_MAX_PORTS; i++)
        p->in[i] = *out;
}
