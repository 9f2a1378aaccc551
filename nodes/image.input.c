/* image.input: an image handed over in memory by the embedding program (tsr_job_bind_input or
 * tsr_job_bind_image with this node's id). A graph with an unbound image.input fails at its
 * inference with that advice.
 * Pixels: the caller's (8-bit, 16-bit or float, 1-4 channels, any stride), converted to float32
 * planar 0..1. Device: none; the executor uploads the image. */

#include "nodeutil.h"

static const tsr_port_def outputs[] = {{"image", TSR_PORT_IMAGE, "the caller's image"}};

/* Only reached when nothing is bound: the executor takes a bound image's shape itself. */
static tsr_status input_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                              tsr__err *err)
{
    return tsr__node_error(err, n, -1,
                           "no pixels bound to this image.input: call tsr_job_bind_input(job, "
                           "\"%s\", ...) (or tsr_job_bind_image) before tsr_job_start",
                           n->id);
}

static tsr_status input_produce(tsr_exec *ex, const tsr_node *n, tsr_image **out)
{
    return tsr__node_error(ex->err, n, -1, "no pixels bound to this image.input");
}

const tsr_node_class tsr_node_image_input = {
    .name = "image.input",
    .doc = "An image passed in memory by the program embedding Tessera (tsr_job_bind_input)",
    .outputs = outputs,
    .n_outputs = 1,
    .flags = TSR_NODE_SOURCE,
    .infer = input_infer,
    .produce = input_produce,
};
