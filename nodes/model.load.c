/* model.load: read a super-resolution network in ncnn format (.param + .bin) into the engine's
 * model cache. The model is read once per engine and its weights stay on the device between
 * runs; the output is a `model` value for upscale, not an image. */
#include "model.h"

#define MODEL_LOAD_PARAMS(X)                                                                       \
    X(PATH, "path", TSR_PARAM_STRING, NULL, 0, -1, NULL, TSR_PARAM_REQUIRED | TSR_PARAM_PATH,      \
      "an ncnn .param file (its .bin beside it, same stem) or a folder holding exactly one "       \
      ".param, relative to the current directory")
TSR_PARAM_ENUM_DECL(MODEL_LOAD_PARAMS)
TSR_PARAM_TABLE_DECL(model_load, MODEL_LOAD_PARAMS)

static const tsr_port_def outputs[] = {
    {"model", TSR_PORT_MODEL, "the network, resident in the engine"}};

static tsr_status model_load_resolve(tsr_engine *e, const tsr_node *n, tsr_port_info *out,
                                     tsr__err *err)
{
    tsr__model *m = NULL;
    int loaded = 0;
    tsr_status rc = tsr__model_get(e, n->params[P_PATH].str, &m, &loaded, err);
    if (rc)
        return tsr__node_reanchor(err, n, P_PATH, rc);
    out[0] = (tsr_port_info){.type = TSR_PORT_MODEL, .model = m};
    return TSR_OK;
}

const tsr_node_class tsr_node_model_load = {
    .name = "model.load",
    .doc = "Read an ncnn super-resolution model (.param + .bin); loaded once per engine",
    .outputs = outputs,
    .n_outputs = 1,
    .params = model_load_params,
    .n_params = P_COUNT_,
    .flags = TSR_NODE_VALUE,
    .resolve = model_load_resolve,
};
