/* Models resident in an engine: loaded once (engine/model.c keeps one per .param file), their
 * geometry derived from the layer graph, their weights uploaded once to pool buffers that stay
 * until the engine is freed or a run needs the room. engine/netrun.c runs them on tiles. */
#ifndef TSR_MODEL_H
#define TSR_MODEL_H
#include "nn.h"

/* Edge rules for pixels outside the image (the original programs' padding). */
enum { TSR_NET_EDGE_REPLICATE = 0, TSR_NET_EDGE_REFLECT = 1 };

typedef struct tsr__model {
    struct tsr__model *next;
    char *key;       /* canonical path of the .param */
    long long stamp; /* size and mtime of both files, to notice a changed file */
    tsr_nn_model *nn;
    double load_seconds;

    /* Geometry, derived from the layer graph (tsr__model_derive), in input pixels. */
    int scale; /* output pixels per input pixel (integral) */
    int trim;  /* pixels each side the network consumes (valid convolutions, inner crops) */
    int align; /* window origins move in multiples of this (strided layers) and sizes keep
                  their residue modulo it */
    int size_mod, size_res; /* valid input sizes are size_res modulo size_mod */
    int receptive;          /* radius of the receptive field; INT_MAX with global pooling */
    int global;             /* global pooling: an output pixel depends on the whole input */
    int edge;               /* the original program's edge rule (TSR_NET_EDGE_*) */
    int prepad;             /* the original program's padding per side */
    int residual;           /* the output is a correction to the nearest enlargement of the input */
    double *pitch;          /* per blob: input pixels per blob pixel (1/2 after a 2x enlargement) */

    /* Device weights (one pool buffer per layer with weights), NULL until uploaded. */
    cl_mem *dev;
    size_t dev_bytes; /* pool-rounded bytes the weights take on the device */
    int uploaded;
    int uses; /* runs that used it (statistics) */
    int pins; /* running jobs using it: its weights stay on the device */
} tsr__model;

/* The model at `path` (a .param or a folder with one), from the engine's cache or loaded now.
 * *loaded is set to 1 when it was read from disk by this call. */
tsr_status tsr__model_get(tsr_engine *e, const char *path, tsr__model **out, int *loaded,
                          tsr__err *err);
/* Upload the weights to the device if they are not there (pool buffers, counted in the cap). */
tsr_status tsr__model_upload(tsr_exec *ex, tsr__model *m);
/* Give back the device weights of every cached model not in keep[n]. */
void tsr__model_unload_others(tsr_engine *e, tsr__model *const *keep, int n);
/* Running jobs pin the models their graph uses (delta +1 / -1): unload_others keeps them. */
void tsr__model_pin(tsr_engine *e, tsr__model *m, int delta);
/* Models read from disk / uploaded by the calling thread so far. */
int tsr__model_loads_here(void);
int tsr__model_uploads_here(void);
/* Device bytes of every uploaded model. */
size_t tsr__models_resident(tsr_engine *e);
/* Free every cached model (engine teardown). */
void tsr__models_free(tsr_engine *e);
/* Derive the geometry fields from m->nn (called by tsr__model_get; exposed for tests). */
tsr_status tsr__model_derive(tsr__model *m, tsr__err *err);
/* Multiply-adds of a forward pass on an h x w input (0 if the size is not valid). */
double tsr__model_macs(const tsr__model *m, int h, int w);
/* The resident bytes the weights will take on the device (pool-rounded), uploaded or not. */
size_t tsr__model_resident_bytes(const tsr__model *m);

#endif
