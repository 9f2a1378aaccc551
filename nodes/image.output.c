/* image.output: hands its input back to the embedding program in memory (tsr_job_output with
 * this node's id, after the job ended), full size, float32 planar 0..1; tsr_image_to_pixels
 * converts it to 8-bit, 16-bit or float interleaved pixels at any stride.
 * Device: none; the executor downloads the image. */

#include "job.h"
#include "nodeutil.h"

static const tsr_port_def inputs[] = {{"image", TSR_PORT_IMAGE, "image to hand back"}};

static tsr_status output_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                               tsr__err *err)
{
    return TSR_OK;
}

static tsr_status output_consume(tsr_exec *ex, const tsr_node *n, const tsr_image *img)
{
    tsr_job *j = tsr__exec_job_of(ex);
    if (!j) /* run outside a job (a test's single node): nothing to hand back to */
        return TSR_OK;
    return tsr__job_keep(j, (int)(n - j->g->nodes), (tsr_image *)img);
}

const tsr_node_class tsr_node_image_output = {
    .name = "image.output",
    .doc = "Hand an image back to the program embedding Tessera, in memory (tsr_job_output)",
    .inputs = inputs,
    .n_inputs = 1,
    .flags = TSR_NODE_SINK,
    .infer = output_infer,
    .consume = output_consume,
};
