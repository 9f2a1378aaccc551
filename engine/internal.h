/* Internal interfaces shared by engine/, nodes/ and tests. Not installed. */
#ifndef TSR_INTERNAL_H
#define TSR_INTERNAL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera.h"

#define TSR_MAX_PORTS 4
#define TSR_MAX_PARAMS 16
#define TSR_DEFAULT_MAX_PIXELS (1ull << 28)
/* The smallest default tile target on a CPU device (one with a small or no reported cache). */
#define TSR_TILE_TARGET_MIN (32ull << 20)

/* ---------------------------------------------------------------------------------------------
 * Errors: one message buffer per engine (or per call for engine-less functions). Messages are
 * set once, where the error is found; callers pass the status up unchanged. Validation appends
 * one line per error so that every error of a graph is reported. */
typedef struct tsr__err {
    char msg[8192];
    size_t len;
    int count;   /* number of appended errors */
    int omitted; /* of those, how many did not fit in msg (counted on its last line) */
    /* Where the (first) error is, when a node is known: for the execution-error event. */
    char node[256];
    char param[64];
    char file[512];
    int line, col;
} tsr__err;

/* Record the node (and param, position) an error belongs to, unless one is recorded already. */
void tsr__err_where(tsr__err *err, const char *node, const char *param, const char *file, int line,
                    int col);

void tsr__err_clear(tsr__err *err);
/* The message slot of synchronous calls on engine e: one per thread (tsr_errmsg reads the
 * calling thread's), so that threads sharing an engine do not overwrite each other's. */
tsr__err *tsr__eerr(const tsr_engine *e);
/* Replace the message; returns rc. */
tsr_status tsr__seterr(tsr__err *err, tsr_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* vsnprintf into dst, each run of over 123 non-blank bytes (a long path or value) shortened to
 * its first and last 60 with "..." between, so that the words after it (the reason) still fit.
 * Returns the length written. */
size_t tsr__vformat_short(char *dst, size_t cap, const char *fmt, va_list ap);
size_t tsr__format_short(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Opens path for reading only if it is a regular file: a FIFO, device, directory or socket is
 * refused with a message naming what it is, without blocking (engine/image_io.c). */
tsr_status tsr__fopen_regular(const char *path, FILE **out, tsr__err *err);
/* Append one line to the message (for collecting several errors); returns rc. */
tsr_status tsr__adderr(tsr__err *err, tsr_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Put text in front of the current message (adds context while passing an error up). */
void tsr__err_prefix(tsr__err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *tsr__cl_status_name(cl_int st);
/* A number as "%.15g" (or more digits when needed to read back exactly), spelt with '.' whatever
 * LC_NUMERIC says: messages and JSON must not depend on the caller's locale. */
void tsr__format_number(char *buf, size_t len, double v);

/* File-system helpers (engine/path.c). tsr__mkdir_p makes dir and its parents (0, or -1 with
 * errno); tsr__dir_of writes the folder part of path ("." when none); tsr__path_key writes a
 * canonical form of path (links and ".." resolved; for a file not yet there, its folder's),
 * so that two spellings of one file compare equal (0, or -1 when its folder does not exist). */
int tsr__mkdir_p(const char *dir, unsigned mode);
void tsr__dir_of(const char *path, char *dir, size_t len);
int tsr__path_key(const char *path, char *key, size_t len);

/* Overflow-checked size arithmetic: return 0 on overflow. */
int tsr__mul_size(size_t a, size_t b, size_t *out);
size_t tsr__image_bytes(int w, int h, int channels); /* 0 on overflow or empty */

/* ---------------------------------------------------------------------------------------------
 * Geometry */
typedef struct tsr_rect {
    int x, y, w, h;
} tsr_rect;

/* A buffer holding `rect` of an image of img_w x img_h pixels, planar float32: plane c starts at
 * element c * rect.w * rect.h. Exactly one of mem (OpenCL path) and host (reference path) is
 * set. Kernels clamp their reads to the image (0..img_w-1, 0..img_h-1); the executor guarantees
 * that `rect` covers every clamped coordinate the node's plan() asked for. */
typedef struct tsr_region {
    tsr_rect rect;
    int channels;
    int img_w, img_h;
    cl_mem mem;
    float *host;
} tsr_region;

static inline float *tsr__plane(const tsr_region *r, int c)
{
    return r->host + (size_t)c * (size_t)r->rect.w * (size_t)r->rect.h;
}

/* Reference-path read with clamp-to-edge: (x, y) in full-image coordinates. */
static inline float tsr__ref_at(const tsr_region *r, int c, int x, int y)
{
    x = x < 0 ? 0 : (x >= r->img_w ? r->img_w - 1 : x);
    y = y < 0 ? 0 : (y >= r->img_h ? r->img_h - 1 : y);
    return tsr__plane(r, c)[(size_t)(y - r->rect.y) * r->rect.w + (x - r->rect.x)];
}

/* ---------------------------------------------------------------------------------------------
 * Node schema */
typedef enum tsr_port_type {
    TSR_PORT_IMAGE = 0,
    TSR_PORT_MODEL,
    TSR_PORT_NUMBER,
    TSR_PORT_STRING
} tsr_port_type;

/* What flows on one output port, as inference computes it: an image's geometry (TSR_PORT_IMAGE),
 * a resident model (TSR_PORT_MODEL) or a number (TSR_PORT_NUMBER). The executor keeps one per
 * (node, output port): tsr_node.out_info[port]. The image fields come first so that an image's
 * info can still be written {w, h, channels, depth}. */
typedef struct tsr_port_info {
    int width, height, channels;
    int bit_depth;            /* source bit depth (8/16) if known, else 0 */
    tsr_port_type type;       /* TSR_PORT_IMAGE (0) unless set */
    struct tsr__model *model; /* TSR_PORT_MODEL: borrowed from the engine's model cache */
    double number;            /* TSR_PORT_NUMBER */
    int reoriented;           /* a decoder turns the image upright through a second copy */
} tsr_port_info;

typedef struct tsr_port_def {
    const char *name;
    tsr_port_type type;
    const char *doc;
} tsr_port_def;

typedef enum tsr_param_type {
    TSR_PARAM_NUMBER = 0, /* double */
    TSR_PARAM_INT,        /* integer-valued double */
    TSR_PARAM_BOOL,
    TSR_PARAM_STRING,
    TSR_PARAM_ENUM /* one of the '|'-separated words in `choices` */
} tsr_param_type;

/* Param flags */
#define TSR_PARAM_REQUIRED 1u /* must be given */
#define TSR_PARAM_OPTIONAL 2u /* may be absent with no default (value.set == 0) */
#define TSR_PARAM_PATH                                                                             \
    4u /* a file: relative in a graph file, it resolves against the file's                         \
          folder (tsr_graph_load_file) */

typedef struct tsr_param_def {
    const char *name;
    tsr_param_type type;
    const char *def;     /* default as YAML text, NULL if none */
    double min, max;     /* inclusive range for NUMBER/INT (ignored if min > max) */
    const char *choices; /* ENUM: "a|b|c" */
    unsigned flags;
    const char *doc;
} tsr_param_def;

/* X-macro helpers: a node declares its params once,
 *   #define BLUR_PARAMS(X) X(SIGMA, "sigma", TSR_PARAM_NUMBER, "1", 0.0, 200.0, NULL, 0, "...")
 *   TSR_PARAM_ENUM_DECL(BLUR_PARAMS)   -> enum { P_SIGMA, ..., P_COUNT_ }
 *   TSR_PARAM_TABLE_DECL(blur, BLUR_PARAMS) -> static const tsr_param_def blur_params[]
 * and reads them as n->params[P_SIGMA].num. */
#define TSR__PENUM(id, name, type, def, lo, hi, choices, flags, doc) P_##id,
#define TSR__PDEF(id, name, type, def, lo, hi, choices, flags, doc)                                \
    {name, type, def, lo, hi, choices, flags, doc},
#define TSR_PARAM_ENUM_DECL(LIST) enum { LIST(TSR__PENUM) P_COUNT_ };
#define TSR_PARAM_TABLE_DECL(stem, LIST)                                                           \
    static const tsr_param_def stem##_params[] = {LIST(TSR__PDEF)};

typedef struct tsr_value {
    int set;    /* 0: absent (only for OPTIONAL params) */
    double num; /* NUMBER, INT, BOOL (0/1) */
    int ival;   /* ENUM: index in choices; INT/BOOL: (int)num */
    char *str;  /* STRING and ENUM: owned text */
} tsr_value;

/* Position in a graph file (1-based; 0 when not from a file). */
typedef struct tsr_pos {
    int line, col;
} tsr_pos;

typedef struct tsr_node tsr_node;
typedef struct tsr_exec tsr_exec;

/* Device buffers a node asks for (tsr_plan.bufs). A TILE buffer is allocated for each tile and
 * handed back after the node's run on it; a RUN buffer is allocated once before the node's first
 * tile (prepare() fills it: weights, tables) and held until the node's stage is done. Sizes of
 * RUN buffers must not depend on the rectangle. */
typedef enum tsr_buf_life { TSR_BUF_TILE = 0, TSR_BUF_RUN = 1 } tsr_buf_life;

#define TSR_MAX_BUFS 24

typedef struct tsr_buf_req {
    size_t bytes; /* 0: not needed for this rectangle (the slot stays NULL) */
    tsr_buf_life life;
} tsr_buf_req;

/* What a node needs to produce one output rectangle. */
typedef struct tsr_plan {
    tsr_rect in[TSR_MAX_PORTS]; /* input rectangle per image input (may extend past the image;
                                   reads are clamped to the image) */
    int n_bufs;
    tsr_buf_req bufs[TSR_MAX_BUFS]; /* handed to run_cl as ex->bufs[i], in this order */
    size_t resident_bytes; /* device bytes held outside any run that the node needs (a model's
                              weights, owned by the engine's model cache): counted in every
                              tile's estimate of its stage */
} tsr_plan;

#define TSR_NODE_SOURCE 1u  /* produces an image from outside (file, memory) */
#define TSR_NODE_SINK 2u    /* consumes an image to outside; no output ports */
#define TSR_NODE_BARRIER 4u /* needs its whole input at once (ends a tiled stage) */
#define TSR_NODE_VALUE 8u   /* produces a non-image value (model, number) at inference: resolve() */
#define TSR_NODE_HOST_INPUTS                                                                       \
    16u /* its image inputs are materialized on the host, so that                                  \
           prepare() can read them whole (ex->in_images) */

typedef struct tsr_node_class {
    const char *name; /* YAML type, e.g. "blur.gaussian" */
    const char *doc;  /* one line */
    const tsr_port_def *inputs;
    int n_inputs;
    const tsr_port_def *outputs;
    int n_outputs;
    const tsr_param_def *params;
    int n_params;
    const char *kernel; /* kernels/<kernel>.cl, NULL if none */
    unsigned flags;

    /* Optional cross-parameter checks after each param passed its own range check. Report with
     * tsr__node_error() so the message carries the position. */
    tsr_status (*check)(const tsr_node *n, tsr__err *err);
    /* Output image info from the input infos (in[i] for input port i). Sources read headers. */
    tsr_status (*infer)(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                        tsr__err *err);
    /* Pure and cheap: input rectangles and device bytes for output rectangle `out`. */
    void (*plan)(const tsr_node *n, const tsr_port_info *in, const tsr_rect *out, tsr_plan *p);
    /* Optional: once per run, before the node's first tile, on both engines. On the OpenCL
     * engine ex->bufs holds the RUN buffers plan() asked for (TILE slots are NULL): fill them.
     * *state (NULL on entry) is handed to run_cl/run_ref as ex->state and to release(). */
    tsr_status (*prepare)(tsr_exec *ex, const tsr_node *n, void **state);
    /* Optional: after the node's last tile (or a failure), with the same state. */
    void (*release)(tsr_exec *ex, const tsr_node *n, void *state);
    /* Enqueue kernels computing out->rect from in[]; ex->bufs holds the buffers plan() asked
     * for this rectangle (TILE and RUN), in plan order. */
    tsr_status (*run_cl)(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                         const tsr_region *out);
    /* Plain-C definition of the correct output. ex->state is prepare()'s state; ex->cl is NULL. */
    tsr_status (*run_ref)(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                          const tsr_region *out);

    /* VALUE nodes: compute the output values at inference, through the engine (its model
     * cache), instead of infer(). */
    tsr_status (*resolve)(tsr_engine *e, const tsr_node *n, tsr_port_info *out, tsr__err *err);

    /* SOURCE nodes: produce the whole image on the host. */
    tsr_status (*produce)(tsr_exec *ex, const tsr_node *n, tsr_image **out);
    /* SINK nodes: consume the whole image from the host. */
    tsr_status (*consume)(tsr_exec *ex, const tsr_node *n, const tsr_image *img);
} tsr_node_class;

/* Names of port and param types as the schema JSON and `tessera nodes` show them. */
const char *tsr__port_type_name(tsr_port_type t);
const char *tsr__param_type_name(tsr_param_type t);

/* Registry (nodes/nodes.def). */
extern const tsr_node_class *const tsr__node_classes[];
extern const int tsr__node_class_count;
const tsr_node_class *tsr__node_class_find(const char *name);
/* Schema of the given classes as JSON (tsr_nodes_json() passes the registry); NULL when out of
 * memory. Free with free(). */
char *tsr__nodes_json_of(const tsr_node_class *const *classes, int n);

/* ---------------------------------------------------------------------------------------------
 * Graph model */
typedef struct tsr_input_ref {
    int connected;
    int node; /* index of the source node in graph->nodes */
    int port; /* output port index of the source node */
    tsr_pos pos;
} tsr_input_ref;

struct tsr_node {
    char *id;
    const tsr_node_class *cls;
    tsr_pos pos; /* of the node's key */
    tsr_value params[TSR_MAX_PARAMS];
    tsr_pos param_pos[TSR_MAX_PARAMS]; /* where each param was set */
    tsr_input_ref inputs[TSR_MAX_PORTS];
    tsr_port_info out_info[TSR_MAX_PORTS]; /* filled by inference */
    const char *file;                      /* graph file name for messages (borrowed from graph) */
    tsr_image *bound;                      /* in-memory image bound to a SOURCE node, or NULL */
    struct tsr__bound_px *px; /* caller pixels bound with TSR_BORROW / TSR_HANDOVER: converted
                                 when the job runs (engine/job.c) */
    int keep;      /* a job keeps its output (image.output, a watch): materialized on the host */
    int keep_side; /* the kept copy's longer side at most this (0: full size) */
};

struct tsr_graph {
    char *file;
    tsr_node *nodes;
    int n_nodes;
    int *order; /* execution order (topological), n_nodes entries */
    int inferred;
    const tsr_engine *inferred_by; /* values (models) of out_info belong to this engine */
    int pending_loads;             /* models its inference read from disk, not yet reported */
    int split; /* plan every image node as its own stage (the result cache is on) */
};

/* Error at a node's position: "file:line:col: error: node 'id': <text>". */
tsr_status tsr__node_error(tsr__err *err, const tsr_node *n, int param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Replace the current message (from a lower layer, e.g. file I/O) by the same text anchored at
 * the node's param position; returns rc unchanged. */
tsr_status tsr__node_reanchor(tsr__err *err, const tsr_node *n, int param, tsr_status rc);

/* Parse and validate `value` (YAML scalar text) for param `i` of node n, storing it.
 * Used by the YAML reader, --set and tests. */
tsr_status tsr__param_set(tsr_node *n, int i, const char *value, tsr_pos pos, tsr__err *err);
/* Fill a node's params with defaults. */
tsr_status tsr__node_init(tsr_node *n, const tsr_node_class *cls, const char *id, tsr__err *err);
void tsr__node_clear(tsr_node *n);
int tsr__param_index(const tsr_node_class *cls, const char *name);

/* Make a free-standing node from "key=value" strings (tests and the C API). */
tsr_status tsr__node_make(const char *type, const char *const *kv, int n_kv, tsr_node **out,
                          tsr__err *err);
void tsr__node_free(tsr_node *n);

tsr_status tsr__graph_parse(const char *text, size_t len, const char *file, tsr_graph **out,
                            tsr__err *err);
tsr_status tsr__graph_validate(tsr_graph *g, tsr__err *err); /* structure: refs, types, cycles */
void tsr__graph_free(tsr_graph *g);
/* Caller pixels bound to a source node, read when the job runs. */
typedef struct tsr__bound_px {
    tsr_pixels px;
    tsr_ownership own;
    tsr_free_fn free_fn;
    void *free_user;
} tsr__bound_px;
/* Hand the pixels back (HANDOVER: free_fn) and free the record. */
void tsr__bound_px_free(tsr__bound_px *b);
/* A deep copy (a job's snapshot, without bound caller pixels); NULL when out of memory. */
tsr_graph *tsr__graph_clone(const tsr_graph *g);

/* ---------------------------------------------------------------------------------------------
 * Images and file I/O */
struct tsr_image {
    int width, height, channels;
    int bit_depth;
    int refcount; /* atomic */
    float *data;
};

/* How a decoder or encoder reports progress and notices a cancel: between row bands (at most
 * every 64 rows, and often enough that a band takes well under 50 ms), it calls cancelled() and
 * stops with TSR_ERR_CANCELLED ("cancelled while decoding|encoding 'name'") when that returns
 * non-zero, and reports rows done of rows in all passes through progress(). NULL: neither. */
typedef struct tsr__io_ctl {
    int (*cancelled)(void *user);
    void (*progress)(void *user, int64_t done, int64_t total);
    void *user;
    /* A decoder that loaded a damaged file (fail_on let it through) says what it recovered
     * from, once; NULL: not reported. */
    void (*warn)(void *user, const char *msg);
} tsr__io_ctl;

/* What a load does beyond decoding; all zero: the defaults. */
enum { TSR_ORIENT_AUTO = 0, TSR_ORIENT_IGNORE };
enum { TSR_COLOUR_SRGB = 0, TSR_COLOUR_KEEP };
/* As vips's fail_on: ERROR fails on damage that changes pixels (truncated or corrupt data),
 * WARNING also on anything the library warns about, NONE loads what the library can make of
 * the file and reports what it recovered from. */
enum { TSR_FAIL_ON_ERROR = 0, TSR_FAIL_ON_WARNING, TSR_FAIL_ON_NONE };
typedef struct tsr__load_opts {
    int orientation; /* TSR_ORIENT_*: AUTO applies the EXIF orientation tag */
    int colour;      /* TSR_COLOUR_*: SRGB converts an embedded ICC profile's colours to sRGB */
    int fail_on;     /* TSR_FAIL_ON_* */
} tsr__load_opts;

/* Read only the header: size (after orientation), channels, bit depth. Checks the pixel
 * limit. lo NULL: the defaults. */
tsr_status tsr__image_probe(const char *path, uint64_t max_pixels, const tsr__load_opts *lo,
                            tsr_port_info *info, tsr__err *err);
tsr_status tsr__image_load(const char *path, uint64_t max_pixels, const tsr__load_opts *lo,
                           const tsr__io_ctl *ctl, tsr_image **out, tsr__err *err);
/* Decode from memory (fuzzing, in-memory use). */
tsr_status tsr__image_decode(const unsigned char *buf, size_t len, const char *name,
                             uint64_t max_pixels, const tsr__load_opts *lo, const tsr__io_ctl *ctl,
                             tsr_image **out, tsr__err *err);
/* The format a file name's extension names (TSR_FORMAT_AUTO: none), and the extensions known,
 * for messages. */
tsr_format tsr__format_from_path(const char *path);
const char *tsr__extension_list(void);
/* Pixels a side the format can hold (0: unknown format); its name ("JPEG"). */
uint32_t tsr__format_max_side(tsr_format f);
const char *tsr__format_name(tsr_format f);
/* Bytes of pixels of the host images alive in the process now, their peak since the last
 * reset, and a reset (the peak restarts at what is alive): for tests and measurements. */
size_t tsr__image_live_bytes(void);
size_t tsr__image_peak_bytes(void);
void tsr__image_reset_peak(void);
/* Encode to a temporary file next to path (registered for tsr_cleanup_temp_files while it is
 * written), then rename over path: a failure or a cancel never leaves a partial file and never
 * touches an existing one. */
tsr_status tsr__image_save(const tsr_image *img, const char *path, const tsr_save_options *opt,
                           const tsr__io_ctl *ctl, tsr__err *err);
/* Encode to memory (opt->format PNG or JPEG): *buf is malloc'd. */
tsr_status tsr__image_encode(const tsr_image *img, const tsr_save_options *opt,
                             const tsr__io_ctl *ctl, void **buf, size_t *len, tsr__err *err);
tsr_status tsr__image_compare(const tsr_image *a, const tsr_image *b, tsr_compare_result *res,
                              tsr__err *err);

/* ---------------------------------------------------------------------------------------------
 * JSON writer (engine/json.c): every JSON text the engine and the CLI produce. Strings are
 * escaped (control characters, quotes, backslash; invalid UTF-8 bytes become U+FFFD), numbers
 * are written with tsr__format_number (locale-independent; NaN and infinities as null). Commas
 * are placed automatically. Out of memory sets `failed`; tsr__json_take then returns NULL. */
typedef struct tsr__json {
    char *buf;
    size_t len, cap;
    int failed;
    int depth;
    unsigned char first[64]; /* per nesting level: no element written yet */
} tsr__json;

void tsr__json_init(tsr__json *j);
void tsr__json_free(tsr__json *j);
void tsr__json_obj(tsr__json *j); /* '{' */
void tsr__json_end(tsr__json *j); /* '}' or ']', whichever is open */
void tsr__json_arr(tsr__json *j); /* '[' */
void tsr__json_key(tsr__json *j, const char *key);
void tsr__json_str(tsr__json *j, const char *s); /* NULL: null */
void tsr__json_num(tsr__json *j, double v);
void tsr__json_int(tsr__json *j, int64_t v);
void tsr__json_uint(tsr__json *j, uint64_t v);
void tsr__json_bool(tsr__json *j, int v);
void tsr__json_null(tsr__json *j);
void tsr__json_raw(tsr__json *j, const char *json); /* a complete JSON value, copied as is */
/* key + value */
void tsr__json_kstr(tsr__json *j, const char *key, const char *s);
void tsr__json_knum(tsr__json *j, const char *key, double v);
void tsr__json_kint(tsr__json *j, const char *key, int64_t v);
void tsr__json_kuint(tsr__json *j, const char *key, uint64_t v);
void tsr__json_kbool(tsr__json *j, const char *key, int v);
/* The text so far (NUL-terminated; "" when failed). */
const char *tsr__json_text(const tsr__json *j);
/* The text, malloc'd; the writer is emptied. NULL when out of memory. */
char *tsr__json_take(tsr__json *j);

/* ---------------------------------------------------------------------------------------------
 * OpenCL runtime */
typedef struct tsr__program tsr__program;
typedef struct tsr__kcache tsr__kcache;
typedef struct tsr__ctx tsr__ctx;

typedef struct tsr__cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    tsr_device_info info;
    size_t max_wg;          /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    int is_cpu;             /* CL_DEVICE_TYPE_CPU: its buffers are host memory */
    char *cache_dir;        /* NULL: no disk cache */
    tsr__program *programs; /* linked list, one per kernel file built; guarded by mu */
    void *mu;               /* pthread_mutex_t *: programs, counters, shared kernels */
    /* counters */
    int builds_compiled; /* programs built from source */
    int builds_cached;   /* programs loaded from the disk cache */
    char warning[1024];  /* why the device runs degraded (no disk cache), "" if it does not */
} tsr__cl;

tsr_status tsr__cl_open(const char *device, const char *cache_dir, tsr__cl **out, tsr__err *err);
void tsr__cl_close(tsr__cl *cl);
/* Kernel `name` from kernels/<file>.cl, building (or loading from cache) on first use (once per
 * runtime, whatever the thread). The kernel object belongs to kc (NULL: to the runtime, for
 * single-threaded use). */
tsr_status tsr__cl_kernel(tsr__cl *cl, tsr__kcache *kc, const char *file, const char *name,
                          cl_kernel *out, tsr__err *err);

/* Build a program from source strings; TSR_ERR_BUILD carries the compiler's log. */
tsr_status tsr__cl_build_source(tsr__cl *cl, const char *name, int n, const char **strings,
                                const size_t *lens, cl_program *out, tsr__err *err);

/* Embedded kernel sources (generated from the files in kernels/). */
typedef struct tsr__kernel_source {
    const char *name; /* file stem */
    const char *source;
    size_t length;
    uint64_t hash; /* FNV-1a 64 of the source */
} tsr__kernel_source;
extern const tsr__kernel_source tsr__kernel_sources[];
extern const int tsr__kernel_source_count;

/* Device buffer pool. */
typedef struct tsr__pool tsr__pool;
tsr_status tsr__pool_new(tsr__cl *cl, tsr__pool **out);
void tsr__pool_free(tsr__pool *p);
tsr_status tsr__pool_alloc(tsr__pool *p, size_t bytes, cl_mem *out, tsr__err *err);
void tsr__pool_release(tsr__pool *p, cl_mem m);
tsr_status tsr__staging_new(tsr__cl *cl, tsr__pool **out); /* pinned host buffers */
void tsr__pool_trim(tsr__pool *p);                         /* give every cached block back */
void tsr__pool_set_cap(tsr__pool *p, size_t cap);          /* 0: no cap */
void tsr__pool_disown(tsr__pool *p, const tsr__ctx *c);    /* forget c as an owner */
size_t tsr__pool_cap(const tsr__pool *p);
/* Fail allocations number `from` through `to` (1-based, counted from the pool's creation) as if
 * the device were out of memory; from = 0 turns injection off. TSR_FAULT_ALLOC=N (the Nth),
 * N+ (from the Nth on) or N-M sets it when the engine is created. */
void tsr__pool_set_fault(tsr__pool *p, uint64_t from, uint64_t to);
uint64_t tsr__pool_allocations(const tsr__pool *p); /* requests so far */
size_t tsr__pool_class_size(size_t bytes);          /* the size a request of `bytes` really takes */
void tsr__pool_get_stats(const tsr__pool *p, tsr_pool_stats *out);
void tsr__pool_reset_peaks(tsr__pool *p);
int tsr__pool_stats(const tsr__pool *p, char *buf, size_t len); /* "key: value" lines */

/* A run's context: what a job (or a test on the engine) runs with. Every job has its own
 * message, cancel flag, command queue and kernel objects (an OpenCL kernel's arguments are
 * state: two threads must not share one); the engine has one context of its own for tests and
 * tsr__run_node. */
struct tsr__launch_state; /* engine/launch.c: measured kernel throughput for sliced launches */

struct tsr__ctx {
    tsr_engine *e;
    tsr__err *err;
    cl_command_queue queue; /* NULL on the reference engine */
    tsr__kcache *kc;        /* kernel objects of this context; NULL: the runtime's shared ones */
    int *cancel;            /* the job's cancel flag (atomic); NULL: none */
    uint64_t gen0;          /* tsr_engine_interrupt() generation when the context was made */
    struct tsr__launch_state *launch; /* owned; freed with tsr__launch_state_free */
    /* Device bytes this context holds in the pool, and their peak (the pool keeps them, under
     * its lock, for allocations made while tsr__ctx_current is this context). */
    size_t in_use, peak;
    /* The run's progress sink (the executor's): a node reports done of total units. */
    void (*node_progress)(struct tsr__ctx *c, const tsr_node *n, int64_t done, int64_t total);
    void (*node_warn)(struct tsr__ctx *c, const tsr_node *n, const char *msg);
    void *run;
};

/* Non-zero once the context's job was cancelled (its flag, or tsr_engine_interrupt()). */
int tsr__ctx_cancelled(const tsr__ctx *c);
/* The context whose allocations this thread makes (pool accounting); NULL: none. */
void tsr__ctx_set_current(tsr__ctx *c);
tsr__ctx *tsr__ctx_current(void);

/* Per-context kernel objects (engine/cl.c). */
tsr_status tsr__kcache_new(tsr__kcache **out);
void tsr__kcache_free(tsr__kcache *kc);

/* Execution context handed to run_cl. */
struct tsr_exec {
    tsr_engine *engine;
    tsr__cl *cl;     /* NULL on the reference path */
    tsr__pool *pool; /* NULL on the reference path */
    tsr__err *err;
    tsr__ctx *ctx;          /* the run's context (never NULL after tsr__exec_init) */
    cl_command_queue queue; /* ctx->queue: every enqueue of the node goes here */
    const tsr_node *node;   /* node being run, for messages */
    const char *kernel;     /* kernel being launched, for messages */
    uint64_t max_pixels;
    const tsr_port_info *in_info; /* the node's input port values (models, numbers, images) */
    /* For prepare(): the whole host images of inputs materialized on the host (NULL for an
     * input produced inside the stage), and the stage's tile size in output pixels. */
    tsr_image *in_images[TSR_MAX_PORTS];
    int tile_w, tile_h;
    void *state;               /* what prepare() made, or NULL */
    cl_mem bufs[TSR_MAX_BUFS]; /* the buffers plan() asked for (OpenCL engine) */
    size_t buf_bytes[TSR_MAX_BUFS];
};

/* An execution context on engine e (its own context: tests) for node n (NULL: none, messages
 * say '?'). */
void tsr__exec_init(tsr_exec *ex, tsr_engine *e, const tsr_node *n);
/* The same in run context c. */
void tsr__exec_init_ctx(tsr_exec *ex, tsr__ctx *c, const tsr_node *n);
/* Non-zero once the run was cancelled: long loops in nodes check it between steps. */
int tsr__exec_cancelled(const tsr_exec *ex);
/* A node's progress inside one tile or a whole-image step (decoding, encoding): done of total
 * units; the executor turns it into throttled node-progress events. */
void tsr__exec_progress(tsr_exec *ex, int64_t done, int64_t total);
/* A tsr__io_ctl that reports to ex (cancel and progress). */
tsr__io_ctl tsr__exec_io(tsr_exec *ex);
/* Device scratch for a node (counts against the budget). */
tsr_status tsr__exec_alloc(tsr_exec *ex, size_t bytes, cl_mem *out);
void tsr__exec_release(tsr_exec *ex, cl_mem m);
/* Kernel lookup for the running node's kernel file; sets ex->kernel for messages. */
tsr_status tsr__exec_kernel(tsr_exec *ex, const char *name, cl_kernel *out);
/* Map a failed OpenCL status to a tsr_status with "node 'id' (type), kernel 'k': what: CL_X". */
tsr_status tsr__exec_cl_error(tsr_exec *ex, cl_int st, const char *what);
/* Set kernel args: pairs of (size_t size, const void *ptr), `n` pairs. */
tsr_status tsr__exec_args(tsr_exec *ex, cl_kernel k, int n, ...);
/* Enqueue a 2-D (gz planes: 3-D) launch of gx*gy*gz items; the global size is rounded up to the
 * work-group size, so kernels must return early when get_global_id is past gx/gy. Kernels must
 * not assume a zero global offset or use get_group_id/get_global_size: a long launch is cut
 * into slices (engine/launch.c) so that a cancel is noticed within about 100 ms. */
tsr_status tsr__exec_launch(tsr_exec *ex, cl_kernel k, size_t gx, size_t gy, size_t gz);
/* The same with the caller's work-group shape: global[i] a multiple of local[i]. Slices are
 * whole work groups, all of global[2]: bands of work-group rows along global[1], or runs along
 * global[0] inside one band (a launch one band high, a band larger than a slice). Returns
 * TSR_ERR_CANCELLED ("cancelled in node 'id' (type), kernel 'k'") when the run was cancelled
 * before or between two slices, after the queue has drained. One thread at a time per context
 * (the context's launch state), as everywhere else. */
tsr_status tsr__launch_nd(tsr_exec *ex, cl_kernel k, const size_t global[3], const size_t local[3]);
/* TSR_KERNEL_PROFILE=1 (engine/launch.c): whether it is on; add seconds to a named total. */
int tsr__prof_on(void);
void tsr__prof_add(const char *name, double s);

/* What a context's launches did, for tests and measurements. */
typedef struct tsr__launch_counts {
    uint64_t launches; /* launches with work */
    uint64_t sliced;   /* of them, cut into slices */
    uint64_t slices;   /* slices the sliced ones were cut into */
} tsr__launch_counts;
/* Zeros before the context's first launch; any thread may read them while the context runs. */
tsr__launch_counts tsr__launch_counts_of(const tsr__ctx *c);
/* Test hooks, read at each launch (set them between runs): a non-zero tsr__launch_max_items caps
 * every slice at that many work items (at least one work group), as TSR_LAUNCH_MAX_ITEMS does
 * for contexts made while it is set; a non-zero tsr__launch_whole enqueues every launch whole. */
extern size_t tsr__launch_max_items;
extern int tsr__launch_whole;

/* Convenience for kernel arguments. */
#define TSR_ARG(v) sizeof(v), (const void *)&(v)

/* Run one node on whole host images (tests; the reference or CL path by engine). inputs[i] for
 * input port i; *out receives a new image. If tile_w/tile_h > 0, the output is produced in
 * tiles of that size (each planned and run independently). */
tsr_status tsr__run_node(tsr_engine *e, const tsr_node *n, tsr_image *const *inputs, int tile_w,
                         int tile_h, tsr_image **out);
/* The same with values for the non-image inputs (values[i] for port i; inputs[i] unused there). */
tsr_status tsr__run_node_v(tsr_engine *e, const tsr_node *n, tsr_image *const *inputs,
                           const tsr_port_info *values, int tile_w, int tile_h, tsr_image **out);

/* ---------------------------------------------------------------------------------------------
 * Planner (engine/plan.c). A stage is a tree of tileable nodes whose output is materialized on
 * the host (a stage root); its leaves read materialized images (sources, other stages' roots).
 * A node is materialized when it is a source, a barrier, or its output does not go to exactly
 * one tileable consumer. Tile sizes are in the root's output pixels. */
typedef struct tsr__stage {
    int root;
    int *nodes; /* graph node indices in execution order (inputs first), root last */
    int n_nodes;
    int tile_w, tile_h; /* chosen (or forced) tile size */
    int64_t tiles;
    size_t estimate;     /* estimated peak device bytes of one tile, pool rounding included,
                            resident bytes (models) included */
    size_t resident;     /* resident bytes (models' weights) its nodes need */
    size_t min_estimate; /* what the smallest tile needs (for messages) */
    double seconds;      /* time spent running it (statistics) */
    int64_t tiles_run;   /* tiles really run (more than `tiles` after a downgrade) */
    size_t *bytes; /* per node of the stage (its position in `nodes`), TSR_SLOTS sizes every tile
                      asks the pool for: sized by the stage, so planning stays linear */
} tsr__stage;

typedef struct tsr__plan {
    tsr__stage *stages;
    int n_stages;
    size_t budget;       /* 0: none (reference engine); the hard cap */
    size_t target;       /* the stage estimate tiles aim at for speed (<= budget; 0: none) */
    /* Host memory (docs/MEMORY.md): the peak of host bytes alive at once over the run (source
     * images, stage outputs, kept outputs, bound images, codec buffers), the node where it is
     * reached, the device peak (largest stage estimate) and what is checked against the host
     * budget: host_peak, plus the staging cap, plus device_host when device buffers are host
     * memory (docs/MEMORY.md says how much of them). */
    size_t host_peak;
    int host_peak_node; /* -1: none */
    size_t device_peak;
    size_t device_host; /* device bytes counted as host memory: 0 unless host_device */
    size_t staging;     /* the staging pool's cap: pinned host buffers for transfers (OpenCL) */
    size_t host_need;
    int host_device; /* device_peak is in host_need */
    size_t mem_limit;
    size_t max_alloc;    /* largest single buffer the device allows; 0: no limit */
    unsigned char *host; /* per node: 1 if its output is materialized on the host */
    int *stage_of;       /* per node: the stage it runs in, -1 if none */
    int *pos;            /* per node: its position in its stage's `nodes` (valid with stage_of) */
} tsr__plan;

/* What one tile of a stage needs: per graph node, the rectangle it produces (need), the
 * rectangles uploaded for inputs read from the host (up, per port), and its plan. */
typedef struct tsr__tile {
    tsr_rect *need;
    tsr_rect *up; /* [node * TSR_MAX_PORTS + port] */
    tsr_plan *plan;
    size_t largest; /* largest single buffer of the tile (pool-rounded) */
    size_t *bytes;  /* [position in the stage * TSR_SLOTS + slot]: this tile's buffer sizes
                       (pool-rounded): slot 0 output, 1..TSR_MAX_PORTS uploads, then the plan's
                       bufs */
    size_t *max;    /* the same, largest over a grid of tiles */
} tsr__tile;

#define TSR_SLOTS (1 + TSR_MAX_PORTS + TSR_MAX_BUFS)
#define TSR_SLOT_BUF(i) (1 + TSR_MAX_PORTS + (i))

/* Input port i of class c carries an image (model and number ports carry no pixels). */
static inline int tsr__port_is_image(const tsr_node_class *c, int i)
{
    return c->inputs[i].type == TSR_PORT_IMAGE;
}

#define TSR_MIN_TILE 16

tsr_status tsr__plan_make(tsr_engine *e, tsr_graph *g, int force_w, int force_h, tsr__plan *out);
void tsr__plan_clear(tsr__plan *p);
tsr_status tsr__tile_alloc(const tsr_graph *g, tsr__tile *t);
void tsr__tile_free(tsr__tile *t);
/* Rectangles only: what every node of stage s produces or uploads for root rectangle r. */
void tsr__stage_rects(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s, tsr_rect r,
                      tsr__tile *t);
/* Fill t for output rectangle r of stage s; returns that tile's own peak device bytes. */
size_t tsr__stage_tile(const tsr_graph *g, const tsr__plan *p, const tsr__stage *s, tsr_rect r,
                       tsr__tile *t);
/* The part of a w x h image that reads clamped to the image can touch for `want`. */
tsr_rect tsr__clamp_rect(tsr_rect want, int w, int h);
/* The plan as text (--dry-run) or as one JSON object (the "plan" event). */
char *tsr__plan_describe(const tsr_graph *g, const tsr__plan *p, int json);

/* Engine internals */
typedef struct tsr__lane tsr__lane;     /* a command queue and kernel objects a job borrows */
typedef struct tsr__rcache tsr__rcache; /* the result cache (engine/rcache.c) */

struct tsr_engine {
    tsr__cl *cl;        /* NULL for the ref engine */
    tsr__pool *pool;    /* device buffers, capped at the budget; has its own lock */
    tsr__pool *staging; /* pinned host buffers for transfers */
    uint64_t vram_limit;
    /* The stage estimate the planner aims its tiles at for speed (never above vram_limit):
     * on a CPU device twice its reported cache, on a GPU the whole budget; TSR_TILE_TARGET
     * overrides. 0: none (one tile whenever the budget allows). */
    uint64_t tile_target;
    uint64_t mem_limit; /* host memory budget (docs/MEMORY.md) */
    int host_device;    /* device buffers are host memory: a CPU device, or the ref engine */
    tsr_device_info ref_info;
    uint64_t max_pixels;
    uint64_t interrupt_gen; /* atomic: tsr_engine_interrupt() calls so far */
    tsr__ctx ctx0;          /* the engine's own context (tests, tsr__run_node) */
    tsr__err err0;          /* its message */

    /* Guarded by mu: */
    void *mu;               /* pthread_mutex_t * (internal.h does not include pthread.h) */
    void *budget_cv;        /* pthread_cond_t *: signalled when a job gives its reservation back */
    char *stats;            /* statistics of the last tsr_graph_run */
    uint64_t reserved;      /* device bytes reserved by running jobs (their plans' peaks) */
    uint64_t host_reserved; /* host bytes reserved by running jobs (their host estimates) */
    int running;            /* jobs holding a reservation */
    tsr__lane *lanes;       /* idle lanes */
    tsr__rcache *rcache;

    /* The model cache (engine/model.c), guarded by models_mu: */
    void *models_mu;
    struct tsr__model *models;
    struct tsr__model *stale_models; /* replaced after their files changed; freed with the engine */
    int models_loaded;               /* models read from disk since the engine was made */
    int models_uploaded;             /* models whose weights went to the device */
};

void tsr__engine_lock(tsr_engine *e);
void tsr__engine_unlock(tsr_engine *e);
void tsr__lanes_free(tsr_engine *e);                      /* engine/job.c */
void tsr__rcache_free(tsr__rcache *rc);                   /* engine/rcache.c */
void tsr__launch_state_free(struct tsr__launch_state *s); /* engine/launch.c */

#endif
