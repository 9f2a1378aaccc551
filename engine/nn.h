/* Neural networks in ncnn format (.param text graph + .bin weights), run by Tessera's own
 * kernels. Three parts share this header:
 *   engine/nn_model.c  the loader: .param/.bin into a layer graph, blob shapes, geometry
 *   engine/nn_ref.c    the plain-C definition of every layer (the reference path and the tests)
 *   engine/nn_cl.c     the OpenCL path of every layer (kernels/nn.cl), device weight packing
 * The network executor (engine/nn_exec.c) and the nodes model.load and upscale build on them.
 * The format and each layer's semantics: ../shared/models/NCNN-FORMAT.md. */
#ifndef TSR_NN_H
#define TSR_NN_H
#include "internal.h"

/* Layer types the loader accepts (every type the bundled models use). */
typedef enum tsr_nn_type {
    TSR_NN_INPUT = 0,
    TSR_NN_CONVOLUTION,
    TSR_NN_DECONVOLUTION,
    TSR_NN_PRELU,
    TSR_NN_PIXELSHUFFLE,
    TSR_NN_INTERP,
    TSR_NN_BINARYOP,
    TSR_NN_ELTWISE,
    TSR_NN_CONCAT,
    TSR_NN_CROP,
    TSR_NN_SPLIT,
    TSR_NN_POOLING,
    TSR_NN_INNERPRODUCT,
    TSR_NN_SCALE,
    TSR_NN_TYPE_COUNT
} tsr_nn_type;

const char *tsr__nn_type_name(tsr_nn_type t); /* "Convolution", ... */

/* Activation fused into Convolution / Deconvolution / InnerProduct (ncnn key 9). */
enum {
    TSR_NN_ACT_NONE = 0,
    TSR_NN_ACT_RELU = 1,
    TSR_NN_ACT_LEAKY = 2,
    TSR_NN_ACT_CLIP = 3,
    TSR_NN_ACT_SIGMOID = 4
};
/* BinaryOp op_type (ncnn key 0). */
enum {
    TSR_NN_BIN_ADD = 0,
    TSR_NN_BIN_SUB = 1,
    TSR_NN_BIN_MUL = 2,
    TSR_NN_BIN_DIV = 3,
    TSR_NN_BIN_MAX = 4,
    TSR_NN_BIN_MIN = 5
};
/* Eltwise op_type (ncnn key 0). */
enum { TSR_NN_ELT_PROD = 0, TSR_NN_ELT_SUM = 1, TSR_NN_ELT_MAX = 2 };
/* Interp resize_type (ncnn key 0). */
enum { TSR_NN_INTERP_NEAREST = 1, TSR_NN_INTERP_BILINEAR = 2, TSR_NN_INTERP_BICUBIC = 3 };

/* A blob's shape. dims 3: c x h x w planar (plane stride h*w, no padding between planes);
 * dims 1: a vector of c values (h = w = 1), as global pooling and InnerProduct produce. */
typedef struct tsr_nn_shape {
    int dims;
    int c, h, w;
} tsr_nn_shape;

static inline size_t tsr__nn_count(tsr_nn_shape s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

/* A host tensor (reference path, tests). */
typedef struct tsr_nn_tensor {
    tsr_nn_shape shape;
    float *data;
} tsr_nn_tensor;

#define TSR_NN_MAX_ARRAY 16 /* longest int/float array param (Crop starts/ends/axes, coeffs) */

typedef struct tsr_nn_layer {
    tsr_nn_type type;
    char *name;
    int line; /* 1-based line in the .param file */
    int n_in, n_out;
    int *in, *out; /* blob indices */

    /* Convolution / Deconvolution */
    int num_output, num_input;
    int kernel_w, kernel_h, dilation_w, dilation_h, stride_w, stride_h;
    int pad_left, pad_right, pad_top, pad_bottom; /* after resolving defaults */
    float pad_value;
    int output_pad_right, output_pad_bottom, output_w, output_h; /* Deconvolution */
    int bias_term;
    int weight_data_size;
    int activation; /* TSR_NN_ACT_* */
    float activation_params[2];

    /* BinaryOp: op, with_scalar, b. Eltwise: op, coeffs. */
    int op, with_scalar;
    float b;
    int n_coeffs;
    float coeffs[TSR_NN_MAX_ARRAY];

    /* Interp */
    int resize_type;
    float height_scale, width_scale;
    int interp_out_h, interp_out_w, align_corner;

    /* PixelShuffle */
    int upscale_factor, pixelshuffle_mode;

    /* Pooling (only global average and global max are accepted) */
    int pooling_type, global_pooling;

    /* Concat */
    int axis;

    /* Crop: legacy offsets/sizes (w, h, c) and the slice form (starts, ends, axes). */
    int woffset, hoffset, coffset, outw, outh, outc, woffset2, hoffset2, coffset2;
    int n_starts, n_ends, n_axes;
    int starts[TSR_NN_MAX_ARRAY], ends[TSR_NN_MAX_ARRAY], axes[TSR_NN_MAX_ARRAY];

    /* Scale: scale_data_size (-233: the second input is the per-channel scale), bias_term above */
    int scale_data_size;

    /* PReLU */
    int num_slope;

    /* Weights expanded to fp32 at load time (NULL when the layer has none):
     * Convolution/Deconvolution W[out][in][kh][kw]; InnerProduct W[out][in];
     * PReLU slopes; Scale scale data. bias: Convolution/Deconvolution/InnerProduct/Scale. */
    float *weight;
    size_t n_weight;
    float *bias;
    size_t n_bias;
} tsr_nn_layer;

typedef struct tsr_nn_model {
    char *param_path, *bin_path; /* as opened */
    tsr_nn_layer *layers;
    int n_layers;
    char **blob_names;
    int n_blobs;
    int *producer;       /* per blob: the layer writing it */
    int *last_reader;    /* per blob: the last layer reading it (-1: none, a graph output) */
    int input_blob;      /* the Input layer's output */
    int output_blob;     /* the one blob nothing reads */
    int in_channels;     /* channels of the Input (from the first layer reading it) */
    int out_channels;    /* channels of the output blob */
    size_t weight_bytes; /* fp32 bytes of all weights and biases */
} tsr_nn_model;

/* Load `path`: a .param file (the .bin beside it, same stem) or a folder holding exactly one
 * .param. Every error names the file, the line and the layer. */
tsr_status tsr__nn_load(const char *path, tsr_nn_model **out, tsr__err *err);
/* The same from memory; names are used in messages. */
tsr_status tsr__nn_parse(const char *param, size_t param_len, const unsigned char *bin,
                         size_t bin_len, const char *param_name, const char *bin_name,
                         tsr_nn_model **out, tsr__err *err);
void tsr__nn_free(tsr_nn_model *m);

/* Shape of every blob (shapes[n_blobs]) for an input of c x h x w. A size a layer cannot take
 * (a stride-2 convolution of an odd size whose result a later crop cannot match, a blob that
 * shrinks to nothing) is TSR_ERR_INVALID naming the layer. */
tsr_status tsr__nn_shapes(const tsr_nn_model *m, int c, int h, int w, tsr_nn_shape *shapes,
                          tsr__err *err);
/* Output shape of one layer from its input shapes (used by tsr__nn_shapes and the tests). */
tsr_status tsr__nn_layer_shape(const tsr_nn_layer *L, const tsr_nn_shape *in, tsr_nn_shape *out,
                               tsr__err *err);

/* Geometry the layer functions share, for an input of shape `in` that tsr__nn_layer_shape
 * accepted. Convolution: the padding around the input (SAME modes -233/-234 resolved; pad_value
 * fills it). Deconvolution: the rows and columns trimmed from the full output (the pads, or the
 * SAME split down to output_w x output_h). Other layers: all 0. */
void tsr__nn_pads(const tsr_nn_layer *L, const tsr_nn_shape *in, int *top, int *bottom, int *left,
                  int *right);
/* Crop: where the kept box starts in in[0] (both forms; in = the layer's inputs). The box's size
 * is the output shape. For a 1-D input the offset is in *c. */
void tsr__nn_crop_offsets(const tsr_nn_layer *L, const tsr_nn_shape *in, int *c, int *y, int *x);
/* IEEE binary16 to float: subnormals, +-inf and NaN (payload kept) exactly. */
float tsr__nn_half_to_float(uint16_t h);

/* Crop (engine/nn_crop.c): the kept box of in[0] for either form (in = the layer's inputs:
 * two for the reference form). off = {c, y, x} start offsets, *out the cropped shape (the box's
 * size; a vector crops along c). TSR_ERR_INVALID naming the layer when the box is empty or leaves
 * the input. The shape function, the reference and the device path all cut this box. */
tsr_status tsr__nn_crop_box(const tsr_nn_layer *L, const tsr_nn_shape *in, int off[3],
                            tsr_nn_shape *out, tsr__err *err);

/* Interp taps along one axis (engine/nn_ref.c), shared by the reference and the device path so
 * that both use the very same float weights: for each of n_out outputs, `taps` input indices
 * (already clamped to 0..n_in-1) and weights, taps = 1 (nearest), 2 (bilinear) or 4 (bicubic),
 * returned. idx and wt hold n_out * 4 entries. `height` picks the h (1) or w (0) keys. */
int tsr__nn_interp_taps(const tsr_nn_layer *L, int height, int n_in, int n_out, int *idx,
                        float *wt);
/* A BinaryOp operand as c x h x w against the other operand (engine/nn_ref.c): a vector as long as
 * the other's channels is per channel (C x 1 x 1), any other vector runs along w. */
void tsr__nn_bin_dims(tsr_nn_shape x, tsr_nn_shape other, int d[3]);
/* ncnn's bicubic weights (Keys, A = -0.75) of the four taps around fraction t. */
void tsr__nn_cubic(float t, float *w);

/* ---- the reference path (engine/nn_ref.c) ----------------------------------------------------
 * One layer on host tensors: in[L->n_in], out[L->n_out] with shapes from tsr__nn_layer_shape and
 * data allocated by the caller. Split copies. fp32 throughout, accumulation in the order the
 * formula in NCNN-FORMAT.md writes it (bias first, then inputs, then kernel rows). */
tsr_status tsr__nn_ref_layer(const tsr_nn_layer *L, const tsr_nn_tensor *in,
                             const tsr_nn_tensor *out, tsr__err *err);

/* ---- the device path (engine/nn_cl.c, kernels/nn.cl) -----------------------------------------
 * Weights go to the device once per model, in the layout the kernels want. */
size_t tsr__nn_cl_weight_bytes(const tsr_nn_layer *L); /* 0 when the layer has none */
/* Fill dst (tsr__nn_cl_weight_bytes bytes) with the layer's device weights. */
void tsr__nn_cl_pack_weights(const tsr_nn_layer *L, void *dst);
/* Extra device bytes the layer needs while it runs (0 for most). */
size_t tsr__nn_cl_scratch_bytes(const tsr_nn_layer *L, const tsr_nn_shape *in,
                                const tsr_nn_shape *out);
/* Enqueue one layer: in[L->n_in] device buffers with shapes in_shape, out[L->n_out] likewise,
 * weights as packed (NULL when none), scratch of tsr__nn_cl_scratch_bytes (NULL when 0).
 * Split is never run here (the executor aliases its outputs). Kernels come from kernels/nn.cl
 * through tsr__cl_kernel(ex->cl, "nn", ...); every CL status is checked. */
/* Output pixels per work item of the convolution kernels: 0 (the default) picks by device, 16
 * on CPUs and 4 on GPUs; tests set 4 or 16 to check both kernel variants on any device. It picks
 * the Winograd form too: 16 the fused one-launch kernel, 4 the three launches. */
extern int tsr__nn_cl_px;
/* Nonzero: 3x3 stride-1 dilation-1 convolutions use the direct kernels, not Winograd F(4x4, 3x3)
 * (kernels/nn_winograd.cl). Weights must be packed and run under the same setting. */
extern int tsr__nn_cl_no_winograd;
tsr_status tsr__nn_cl_layer(tsr_exec *ex, const tsr_nn_layer *L, const cl_mem *in,
                            const tsr_nn_shape *in_shape, const cl_mem *out,
                            const tsr_nn_shape *out_shape, cl_mem weights, cl_mem scratch);

#endif
