/* Tessera: a node-graph image-processing engine running every node as OpenCL kernels.
 *
 * Conventions for the whole API:
 * - Every call that can fail returns a tsr_status; TSR_OK is 0. The text of the last failure on
 *   an engine is tsr_errmsg(engine). Calls that take no engine take (char *msg, size_t msglen).
 * - Every _new/_load has a matching _free; _free(NULL) is a no-op.
 * - Threads (docs/EMBEDDING.md): an engine, its pool, kernel cache and model cache may be used
 *   from any number of threads at once. Several jobs run on one engine side by side when their
 *   plans fit the device budget together, else they queue. A tsr_graph is used by one thread at
 *   a time; a job takes a snapshot of it, so the graph may be changed or freed once the job
 *   is made. tsr_job_cancel() and tsr_engine_interrupt() are safe from any thread and from
 *   signal handlers.
 * - tsr_errmsg(e) is the message of the calling thread's last failed call on an engine; a job's
 *   own message is tsr_job_message().
 * - A returned `const char *` is borrowed from the object it came from; a returned `char *` is
 *   freed with tsr_free().
 */
#ifndef TESSERA_H
#define TESSERA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_VERSION "0.1.0"
#define TSR_VERSION_NUMBER 100 /* major*10000 + minor*100 + patch */

/* Status codes. Numbers are stable: never renumber. */
typedef enum tsr_status {
    TSR_OK = 0,
    TSR_ERR_NOMEM = 1,        /* host memory exhausted */
    TSR_ERR_INVALID = 2,      /* invalid argument from the caller */
    TSR_ERR_IO = 3,           /* a file cannot be opened, read, written or renamed */
    TSR_ERR_DECODE = 4,       /* corrupt, truncated or unsupported image data */
    TSR_ERR_LIMIT = 5,        /* image over the pixel limit, or graph over the host budget */
    TSR_ERR_GRAPH = 6,        /* graph syntax or validation error (messages carry file:line:col) */
    TSR_ERR_DEVICE = 7,       /* an OpenCL call failed */
    TSR_ERR_DEVICE_NOMEM = 8, /* device memory exhausted or budget exceeded */
    TSR_ERR_BUILD = 9,        /* an OpenCL program failed to build (message carries the log) */
    TSR_ERR_CANCELLED = 10,   /* the run was cancelled by a callback or tsr_engine_interrupt() */
    TSR_ERR_UNSUPPORTED = 11, /* valid request the engine cannot do (format, channel count...) */
    TSR_ERR_NO_DEVICE = 12,   /* no OpenCL platform/device, or the requested one does not exist */
    TSR_ERR_INTERNAL = 13,    /* a bug in Tessera */
    TSR_ERR_BUSY = 14,        /* the job is still running (tsr_job_wait timed out), or a job
                                 was started twice */
} tsr_status;

/* Fixed English text for a status; never NULL. */
const char *tsr_status_str(tsr_status rc);

/* Free memory returned as `char *` by this API. NULL is a no-op. */
void tsr_free(void *p);

/* s as a JSON string literal (quotes included; control characters, quotes and backslashes
 * escaped, bytes that are not UTF-8 as U+FFFD), written by the engine's JSON writer, so that a
 * program adding its own lines to an event stream escapes exactly as the events do. NULL: the
 * text null. Free with tsr_free(); NULL when out of memory. */
char *tsr_json_quote(const char *s);

/* Library version string, e.g. "0.1.0". */
const char *tsr_version(void);

/* ---------------------------------------------------------------------------------------------
 * Devices
 */
typedef struct tsr_device_info {
    int index;           /* position in the global list, as accepted by --device N */
    int is_gpu;          /* CL_DEVICE_TYPE_GPU */
    char name[256];      /* CL_DEVICE_NAME */
    char vendor[128];    /* CL_DEVICE_VENDOR */
    char platform[128];  /* CL_PLATFORM_NAME */
    char version[128];   /* CL_DEVICE_VERSION */
    char driver[128];    /* CL_DRIVER_VERSION */
    uint64_t global_mem; /* CL_DEVICE_GLOBAL_MEM_SIZE, bytes */
    uint64_t max_alloc;  /* CL_DEVICE_MAX_MEM_ALLOC_SIZE, bytes */
    unsigned compute_units;
    uint64_t cache_size; /* CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, bytes (0: none reported) */
} tsr_device_info;

/* List every OpenCL device of every platform. On success *out is an array of *count entries,
 * freed with tsr_free(). Returns TSR_ERR_NO_DEVICE (with a message in msg) when there is no
 * OpenCL platform at all. */
tsr_status tsr_devices_list(tsr_device_info **out, int *count, char *msg, size_t msglen);

/* ---------------------------------------------------------------------------------------------
 * Engine
 */
typedef struct tsr_engine tsr_engine;

typedef struct tsr_engine_options {
    /* NULL: use $TSR_DEVICE, else the first GPU, else the first device.
     * "ref": no OpenCL; every node runs its plain-C reference.
     * "N": device N of tsr_devices_list(). Any other text: the first device whose name
     * contains it (case-insensitive). */
    const char *device;
    /* Kernel binary cache directory. NULL: $TSR_CACHE_DIR, else $XDG_CACHE_HOME/tessera,
     * else $HOME/.cache/tessera. "" disables the on-disk cache. */
    const char *cache_dir;
    /* Largest image (width*height) accepted by loaders, checked from the header before any
     * allocation. 0: $TSR_MAX_PIXELS (a whole number, "1e9", or with a binary unit:
     * "500M" = 500 * 2^20, "1G"; anything else makes tsr_engine_new fail with TSR_ERR_INVALID),
     * else 2^28. */
    uint64_t max_pixels;
    /* Device memory budget in bytes: a hard cap on every byte the engine's device pool holds,
     * and the limit the tile planner plans under. 0: $TSR_VRAM_LIMIT (parsed like
     * tsr_parse_size), else the default rule of docs/MEMORY.md: the device's global memory
     * minus a headroom of max(256 MiB, 10%), at least half of it. Never above the device's
     * global memory. Ignored by the "ref" engine. */
    uint64_t vram_limit;
    /* Cap on pinned host staging buffers (transfers); 0: 64 MiB. */
    uint64_t staging_limit;
    /* Host memory budget in bytes: a job whose plan's host estimate (docs/MEMORY.md: source
     * images, materialized stage outputs, kept outputs, codec buffers; device buffers too on a
     * CPU device or the "ref" engine) passes it fails at planning with TSR_ERR_LIMIT before
     * any pixel moves, and jobs running at once share it. 0: $TSR_MEM_LIMIT (parsed like
     * tsr_parse_size, a percentage of the host's memory), else 75% of the host's memory, where
     * the host's memory is the physical memory or the cgroup's memory.max when that is lower. */
    uint64_t mem_limit;
} tsr_engine_options;

/* Parse a memory size: "512M", "2G", "1.5GiB", "300MB", "65536" (bytes), or a percentage of
 * `total` ("60%"). K/M/G/T are binary (2^10...), with or without "i" and "B". Returns
 * TSR_ERR_INVALID with a message naming the text when it is not a size. */
tsr_status tsr_parse_size(const char *text, uint64_t total, uint64_t *out, char *msg,
                          size_t msglen);

/* Fill *opt with defaults (all zero / NULL). */
void tsr_engine_options_init(tsr_engine_options *opt);

/* Create an engine on a device. opt may be NULL. On failure *out is NULL and, because there is
 * no engine to hold it, the message is written to msg (may be NULL). */
tsr_status tsr_engine_new(const tsr_engine_options *opt, tsr_engine **out, char *msg,
                          size_t msglen);
void tsr_engine_free(tsr_engine *e);

/* Text of the last failure on this engine ("" if none). Borrowed until the next call. */
const char *tsr_errmsg(const tsr_engine *e);

/* Describes the engine's device; for the "ref" engine, name is "reference (plain C)". */
const tsr_device_info *tsr_engine_device(const tsr_engine *e);
/* What the engine could not set up as asked but runs without, for the caller to show once: ""
 * when all is well, else one line per warning (today: the kernel cache directory is not
 * writable, so kernels are rebuilt on each run). The library never prints it. Borrowed from the
 * engine, unchanged until tsr_engine_free; any thread. */
const char *tsr_engine_warnings(const tsr_engine *e);
int tsr_engine_is_ref(const tsr_engine *e);

/* Device memory statistics (one set for the device pool, one for the staging pool). Peaks are
 * since the start of the last run. */
typedef struct tsr_pool_stats {
    uint64_t cap_bytes;    /* hard cap (the budget); 0 = none */
    uint64_t in_use_bytes; /* held by live buffers */
    uint64_t held_bytes;   /* in use plus cached */
    uint64_t peak_in_use_bytes;
    uint64_t peak_held_bytes;
    uint64_t allocations; /* requests */
    uint64_t hits;        /* served from the cache */
    uint64_t misses;      /* new buffers */
    uint64_t trims;       /* times cached blocks were given back */
    uint64_t oom_events;  /* refusals (budget, driver, injected) */
} tsr_pool_stats;

/* Statistics of the device (staging = 0) or staging (staging = 1) pool. TSR_ERR_INVALID on the
 * "ref" engine, which has no device memory. */
tsr_status tsr_engine_pool_stats(tsr_engine *e, int staging, tsr_pool_stats *out);
/* Give every cached (unused) device and staging buffer back to the driver. */
void tsr_engine_trim(tsr_engine *e);
/* The device memory budget in bytes (0 on the "ref" engine). */
uint64_t tsr_engine_vram_limit(const tsr_engine *e);
/* The host memory budget in bytes (tsr_engine_options.mem_limit). */
uint64_t tsr_engine_mem_limit(const tsr_engine *e);
/* The host's memory as the host budget's percentages and default see it: physical memory, or
 * the cgroup v2 memory.max (v1 memory.limit_in_bytes) when set and lower; 0 if unknown. */
uint64_t tsr_host_memory(void);

/* Schema of every node type as a JSON document (for GUIs). Free with tsr_free(). */
char *tsr_nodes_json(void);
/* The same as readable text, one block per node (what `tessera nodes` prints). */
char *tsr_nodes_text(void);

/* ---------------------------------------------------------------------------------------------
 * Images: host memory, float32, planar (plane c at data + c*width*height), values nominally
 * 0..1, alpha straight (not premultiplied). 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)
 * channels. Images are refcounted: tsr_image_free() drops one reference.
 */
typedef struct tsr_image tsr_image;

tsr_status tsr_image_new(int width, int height, int channels, tsr_image **out);
tsr_image *tsr_image_ref(tsr_image *img);
void tsr_image_free(tsr_image *img);
int tsr_image_width(const tsr_image *img);
int tsr_image_height(const tsr_image *img);
int tsr_image_channels(const tsr_image *img);
/* Bits per sample of the file the image came from (8 or 16; 32 for float TIFF), 0 if it did not
 * come from a file. */
int tsr_image_bit_depth(const tsr_image *img);
float *tsr_image_data(tsr_image *img);

typedef enum tsr_format {
    TSR_FORMAT_AUTO = 0,
    TSR_FORMAT_PNG,
    TSR_FORMAT_JPEG,
    TSR_FORMAT_WEBP,
    TSR_FORMAT_TIFF
} tsr_format;

/* TIFF compression (tsr_save_options.tiff_compression). */
typedef enum tsr_tiff_compression {
    TSR_TIFF_DEFAULT = 0, /* Deflate */
    TSR_TIFF_NONE,
    TSR_TIFF_LZW,
    TSR_TIFF_DEFLATE
} tsr_tiff_compression;

typedef struct tsr_save_options {
    tsr_format format; /* AUTO: from the file extension (.png, .jpg, .jpeg, .webp, .tif, .tiff) */
    /* PNG: 8 or 16; TIFF: 8, 16 or 32 (float, exact); JPEG, WebP: 8. 0: the source depth if the
     * format has it, else 8. */
    int bit_depth;
    int quality;     /* JPEG 1..100 (0: 92); WebP lossy 1..100 (0: 90) */
    int compression; /* PNG zlib level 0..9; -1 or unset(0 after init is -1): 6 */
    int subsampling; /* JPEG chroma: 444, 422 or 420; 0: 420 */
    /* A format without alpha (JPEG): the colour an image with alpha is flattened onto, 0..1
     * RGB (gray images use its first value). tsr_save_options_init sets white. */
    float background[3];
    int lossless; /* WebP: 1 writes lossless (quality is then ignored) */
    tsr_tiff_compression tiff_compression;
    /* Metadata to embed (NULL: none): an ICC profile, and an EXIF block as it follows "Exif\0\0"
     * in a JPEG APP1 segment. Without an ICC profile a file is tagged sRGB where the format has
     * a way to say so (PNG's sRGB chunk). Borrowed: the caller keeps them alive. */
    const void *icc;
    size_t icc_len;
    const void *exif;
    size_t exif_len;
} tsr_save_options;

void tsr_save_options_init(tsr_save_options *opt);

/* Decode a PNG, JPEG, WebP or TIFF file (format sniffed from the content) as image.load does
 * with its defaults: turned upright by an EXIF orientation, converted to sRGB from an embedded
 * ICC profile. */
tsr_status tsr_image_read(tsr_engine *e, const char *path, tsr_image **out);
/* Encode to a temporary file next to path, then rename over path: a failure never leaves a
 * partial file and never touches an existing one. */
tsr_status tsr_image_write(tsr_engine *e, const tsr_image *img, const char *path,
                           const tsr_save_options *opt);

/* Image comparison as `tessera compare` prints it. Differences are counted in the images' own
 * levels, so that a threshold of 1 accepts exactly one level: both images read from 8-bit files
 * (tsr_image_bit_depth 8): levels 0..255, each sample rounded to its level and the difference an
 * exact integer; both 16-bit: levels 0..65535; one 8-bit and one 16-bit: the coarser, 0..255;
 * otherwise (float pixels, an image made in memory, bit depth 0): |a-b| * 255 unrounded, i.e. in
 * 1/255 units. `levels` says which applied. PSNR uses the full scale as peak (1.0 on 0..1 values,
 * the same figure either way); SSIM is Wang et al. 2004 with an 11x11 Gaussian window (sigma
 * 1.5), K1=0.01, K2=0.03, population variances, averaged over the valid windows and over the
 * channels, on the same rounded samples. An image narrower or lower than 11 pixels is one
 * window, the whole image, with uniform weights (its global SSIM) instead of none.
 * The struct only grows at its end: fields are never moved or removed. */
typedef struct tsr_compare_result {
    double max_abs;  /* largest |a-b| in levels (1/255 units when levels is 0) */
    double mean_abs; /* mean |a-b|, same units */
    double psnr;     /* dB; INFINITY when identical */
    double ssim;     /* 1.0 when identical; NaN when a sample is NaN or infinite */
    int levels;      /* 255 or 65535: differences in those levels; 0: in 1/255 units */
} tsr_compare_result;

tsr_status tsr_image_compare(tsr_engine *e, const tsr_image *a, const tsr_image *b,
                             tsr_compare_result *res);

/* ---------------------------------------------------------------------------------------------
 * Graphs
 */
typedef struct tsr_graph tsr_graph;

/* Parse and validate a YAML graph. On failure *out is NULL and tsr_errmsg(e) holds every error
 * found, one per line, as "file:line:col: error: text". */
tsr_status tsr_graph_load_file(tsr_engine *e, const char *path, tsr_graph **out);
/* Same, from a string; name is used in messages in place of a file name. Relative paths in the
 * graph resolve against the current directory. */
tsr_status tsr_graph_load_string(tsr_engine *e, const char *yaml, const char *name,
                                 tsr_graph **out);
void tsr_graph_free(tsr_graph *g);

/* Override parameters: n assignments "node.param=value", applied together and then validated,
 * so their order never matters (a resize can move from scale to width; a save's path and format
 * can change in either order). Each value is parsed and range-checked like the YAML value; once
 * all are applied, every touched node's cross-param checks and required params are checked. An
 * empty value ("node.param=") removes the param: an optional one becomes absent, one with a
 * default gets its default back, a required one is an error. Returns TSR_OK, TSR_ERR_GRAPH
 * (message in tsr_errmsg(e), "--set node.param: error: ..."), TSR_ERR_INVALID or
 * TSR_ERR_NOMEM; on any failure the graph is unchanged. The strings are only read (the graph
 * keeps copies). Not thread-safe on one graph or engine. */
tsr_status tsr_graph_set_many(tsr_engine *e, tsr_graph *g, const char *const *assignments, int n);
/* The one-assignment case of tsr_graph_set_many. */
tsr_status tsr_graph_set(tsr_engine *e, tsr_graph *g, const char *assignment);

/* The graph's nodes in file order (GUIs, batch drivers): their number, and the id and type of
 * node i (NULL when i is out of range; borrowed from the graph). */
int tsr_graph_node_count(const tsr_graph *g);
const char *tsr_graph_node_id(const tsr_graph *g, int i);
const char *tsr_graph_node_type(const tsr_graph *g, int i);
/* Param `name` of node i as text, as tsr_graph_set would take it (numbers spelt with '.',
 * booleans true/false, enum words, strings as they are); NULL when the node has no such param,
 * it is unset, or memory ran out. Free with tsr_free(). */
char *tsr_graph_param(const tsr_graph *g, int i, const char *name);

/* The graph of a one-shot operation (`tessera op`): image.load (node "in", path in_path) ->
 * TYPE (node "op", with the params "name=value" of kv[n]) -> image.save (node "out", path
 * out_path), as YAML text for tsr_graph_load_string, which validates it like any graph. NULL
 * with a message in msg when TYPE is unknown or does not take exactly one input, an image, and
 * give an image, or an assignment has no '='. Free with tsr_free(). */
char *tsr_graph_op_yaml(const char *type, const char *in_path, const char *out_path,
                        const char *const *kv, int n, char *msg, size_t msglen);

/* Shape inference over the whole graph (reads image headers, no pixels). Called by run. */
tsr_status tsr_graph_infer(tsr_engine *e, tsr_graph *g);

/* ---------------------------------------------------------------------------------------------
 * Events. One callback receives every event of a job, on the thread that runs the job (never
 * two at once for one job). The vocabulary is chaiNNer's (its frontend consumes the same
 * names); `json` is the whole event as one JSON object (no newline), the form `tessera run
 * --json` prints. Pointers in the event are valid only during the call. The callback must not
 * block for long and must not free the job; it may call tsr_job_cancel().
 */
typedef enum tsr_event_type {
    TSR_EV_JOB_START = 1,     /* "chain-start": node_count */
    TSR_EV_NODE_START = 2,    /* "node-start": node, node_type, node_index */
    TSR_EV_NODE_PROGRESS = 3, /* "node-progress": index of total units (tiles, row bands),
                                 progress 0..1, eta_s; at most every 50 ms per node */
    TSR_EV_NODE_FINISH = 4,   /* "node-finish": seconds, peak_device_bytes */
    TSR_EV_JOB_FINISH = 5,    /* "finish": status, message, seconds, files */
    TSR_EV_JOB_ERROR = 6,     /* "execution-error": status, message, node, param, file/line/col
                                 (when the error comes from a place in the graph file); followed
                                 by "finish" */
    TSR_EV_PLAN = 7,          /* "plan": the plan as in --dry-run (json only) */
    TSR_EV_STAGE = 8,         /* "stage": a tiled stage starts: node (its root), total tiles */
    TSR_EV_DOWNGRADE = 9,     /* "downgrade": out of device memory, tiles halved (json only) */
    TSR_EV_WARNING = 10,      /* "warning": node, message: the node went on past something a
                                 user should know (a damaged file loaded with fail_on) */
} tsr_event_type;

typedef struct tsr_job tsr_job;

typedef struct tsr_event {
    tsr_event_type type;
    const char *name;      /* "node-start", ... as above */
    const char *json;      /* the event as one JSON object */
    tsr_job *job;          /* the job it belongs to */
    const char *node;      /* node id (node events, stage, error), else NULL */
    const char *node_type; /* its type */
    int node_index;        /* 0-based position in execution order, -1 if none */
    int node_count;
    int64_t index, total;       /* node-progress: units done and units in the node */
    double progress;            /* node-progress: 0..1 */
    double eta_s;               /* node-progress: seconds left in the node; < 0 unknown */
    double seconds;             /* node-finish: the node's time; finish: the job's */
    double elapsed_s;           /* since the job started */
    uint64_t peak_device_bytes; /* node-finish: the pool's peak in-use bytes while it ran */
    tsr_status status;          /* finish, execution-error */
    const char *message;        /* finish, execution-error: "" on success */
    const char *param;          /* execution-error: the param at fault, or NULL */
    const char *file;           /* execution-error: graph file, or NULL */
    int line, col;              /* execution-error: position in it (0 if none) */
    const char *const *files;   /* finish: files written (count n_files) */
    int n_files;
} tsr_event;

typedef void (*tsr_event_fn)(void *user, const tsr_event *ev);

typedef struct tsr_run_options {
    tsr_event_fn event; /* optional */
    void *user;
    int tile_width; /* > 0: force this tile size (in each stage's output pixels) */
    int tile_height;
    int dry_run;  /* plan only: no pixel is read, computed or written */
    int no_reuse; /* do not reuse or keep node outputs in the engine's result cache */
} tsr_run_options;

/* Plan the graph under the engine's budget and describe it as text (what `--dry-run` prints):
 * stages, their nodes, tile size and count, estimated peak bytes, and the budget. *out is freed
 * with tsr_free(). opt may be NULL (its tile size, if set, is honoured). */
tsr_status tsr_graph_plan_text(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt, char **out);

/* Run the graph on the calling thread: tsr_job_new + tsr_job_start + tsr_job_wait +
 * tsr_job_free, except that the job runs on this thread. opt may be NULL. The message of a
 * failure is then tsr_errmsg(e) and the statistics tsr_engine_stats(e). */
tsr_status tsr_graph_run(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt);

/* ---------------------------------------------------------------------------------------------
 * In-memory pixels: interleaved samples, any row stride.
 */
typedef enum tsr_sample {
    TSR_SAMPLE_U8 = 1,  /* 0..255 */
    TSR_SAMPLE_U16 = 2, /* 0..65535, host byte order */
    TSR_SAMPLE_F32 = 3, /* nominally 0..1 */
} tsr_sample;

typedef struct tsr_pixels {
    void *data;
    int width, height;
    int channels; /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    tsr_sample sample;
    size_t stride; /* bytes from one row to the next; 0: width * channels * sample size */
} tsr_pixels;

/* Who owns caller pixels handed to the engine. */
typedef enum tsr_ownership {
    TSR_COPY = 0,     /* copied during the call; the caller keeps its buffer */
    TSR_BORROW = 1,   /* read while the job runs: the buffer must stay valid and unchanged until
                         the job is freed */
    TSR_HANDOVER = 2, /* the engine owns it and calls free_fn(data, free_user) when done (also
                         when the call fails) */
} tsr_ownership;

typedef void (*tsr_free_fn)(void *data, void *free_user);

/* A new image holding a converted copy of px (planar float): u8 / 255, u16 / 65535, f32 as is;
 * its bit depth is 8, 16 or 0 (f32). TSR_ERR_INVALID (and *out NULL) when px or its data is
 * NULL, a size is not positive, channels is outside 1..4, the sample type is unknown, the stride
 * is shorter than a row or stride * height overflows; TSR_ERR_NOMEM. Any thread. */
tsr_status tsr_image_from_pixels(const tsr_pixels *px, tsr_image **out);
/* Convert img into caller memory px (px->data, size, channels, sample and stride set by the
 * caller; width/height/channels must match img). Float output is not clamped; integer output is
 * clamped to 0..1 and rounded (floor(v * max + 0.5), max 255 or 65535; NaN gives 0). Bytes
 * between rows are left alone. TSR_ERR_INVALID as for tsr_image_from_pixels, or when the shapes
 * differ. */
tsr_status tsr_image_to_pixels(const tsr_image *img, const tsr_pixels *px);

/* Decode a PNG, JPEG, WebP or TIFF held in memory (format sniffed), as tsr_image_read does.
 * The pixel limit is the engine's;
 * messages (tsr_errmsg) name the data "memory". TSR_ERR_DECODE, TSR_ERR_UNSUPPORTED,
 * TSR_ERR_LIMIT, TSR_ERR_NOMEM; TSR_ERR_INVALID for NULL arguments. */
tsr_status tsr_image_decode(tsr_engine *e, const void *buf, size_t len, tsr_image **out);
/* Encode to memory: the bytes tsr_image_write would write. opt->format must be PNG, JPEG, WebP
 * or TIFF (TSR_ERR_INVALID otherwise: there is no file name to take it from). *buf is freed with
 * tsr_free(); on failure *buf is NULL and *len 0. */
tsr_status tsr_image_encode(tsr_engine *e, const tsr_image *img, const tsr_save_options *opt,
                            void **buf, size_t *len);

/* Remove every temporary file an encoder is writing right now (in this process). Async-signal
 * safe: a signal handler calls it before _exit(). */
void tsr_cleanup_temp_files(void);

/* ---------------------------------------------------------------------------------------------
 * Jobs: one run of a graph, asynchronous.
 *
 *   tsr_job_new -> [tsr_job_bind_input, tsr_job_watch] -> tsr_job_start -> events ...
 *   -> tsr_job_wait -> [tsr_job_output] -> tsr_job_free
 *
 * A job owns everything about its run: a snapshot of the graph (with its inferred shapes),
 * the cancel flag (set from the moment the job exists, so that a cancel before the start is
 * honoured), status and message, statistics and events.
 */
typedef struct tsr_job_stats {
    double seconds;          /* wall time of the run */
    double queued_seconds;   /* time spent waiting for device or host budget held by other jobs */
    int nodes;               /* nodes in the graph */
    int nodes_run;           /* nodes computed (not reused from the result cache) */
    int nodes_reused;        /* materialized outputs taken from the result cache */
    int64_t tiles;           /* tiles run */
    int64_t downgrades;      /* tile halvings after out-of-memory */
    int kernels_compiled;    /* programs built during the run */
    int kernels_from_cache;  /* programs loaded from the disk cache */
    int models_loaded;       /* models read from disk for this graph */
    int models_uploaded;     /* models whose weights went to the device during the run */
    uint64_t reserved_bytes; /* device budget this job reserved (its plan's peak) */
    uint64_t peak_device_bytes; /* pool in-use peak while it ran (all jobs of the engine) */
    int files_written;
    uint64_t reserved_host_bytes; /* host budget this job reserved (its plan's host estimate) */
} tsr_job_stats;

/* Make a job for graph g on engine e (not started): a snapshot of g (later changes to g do not
 * reach the job) and its cancel flag. The job infers its snapshot when it runs (image headers,
 * models, bound inputs); errors of the graph come back as the job's status and message, and
 * as an execution-error event with the node, param and file:line:col. opt may be NULL; it is
 * copied. */
tsr_status tsr_job_new(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt, tsr_job **out);

/* Bind caller pixels to source node `node` (an image.input, or any image source, which then
 * does not read its file). Before tsr_job_start only. With TSR_HANDOVER, free_fn is called
 * when the engine is done with the pixels, also on failure of this call. */
tsr_status tsr_job_bind_input(tsr_job *j, const char *node, const tsr_pixels *px, tsr_ownership own,
                              tsr_free_fn free_fn, void *free_user);
/* The same with an image (one reference is taken). */
tsr_status tsr_job_bind_image(tsr_job *j, const char *node, tsr_image *img);

/* Keep node `node`'s output image after the run (a preview): scaled down by an area average
 * so that its longer side is at most max_side pixels (0: full size). Before tsr_job_start. An
 * image.output node's image is always kept at full size. */
tsr_status tsr_job_watch(tsr_job *j, const char *node, int max_side);

/* Start the job on a thread of its own; returns at once. TSR_ERR_BUSY if already started. */
tsr_status tsr_job_start(tsr_job *j);

/* Wait until the job finishes, at most timeout_ms milliseconds (< 0: forever). Returns the
 * job's status (TSR_OK, TSR_ERR_CANCELLED, ...) or TSR_ERR_BUSY when the time ran out. A job
 * never started returns TSR_ERR_INVALID. */
tsr_status tsr_job_wait(tsr_job *j, int timeout_ms);

/* Ask the job to stop. Any thread, any time, idempotent, async-signal safe. A running job
 * returns TSR_ERR_CANCELLED within about 100 ms; a job not yet started will not run (its
 * tsr_job_start still starts the thread, which finishes at once with TSR_ERR_CANCELLED). After
 * the job finished it changes nothing. */
void tsr_job_cancel(tsr_job *j);

/* 1 while started and not finished. */
int tsr_job_is_running(const tsr_job *j);
/* The job's status: TSR_ERR_BUSY while running, TSR_ERR_INVALID before the start. */
tsr_status tsr_job_status(const tsr_job *j);
/* The job's message ("" on success); valid until tsr_job_free. Read it after the job ends. */
const char *tsr_job_message(const tsr_job *j);
/* Statistics; complete once the job ended. */
void tsr_job_get_stats(const tsr_job *j, tsr_job_stats *out);
/* The same as "key: value" lines, what tsr_engine_stats returns after tsr_graph_run. Free
 * with tsr_free(). */
char *tsr_job_stats_text(const tsr_job *j);

/* After the job ended with TSR_OK: a new reference to the image kept for `node` (an
 * image.output node, or a watched node). Free it with tsr_image_free. */
tsr_status tsr_job_output(tsr_job *j, const char *node, tsr_image **out);

/* Cancel if running, wait for the end, release everything. NULL is a no-op. */
void tsr_job_free(tsr_job *j);

/* Cancel every job of this engine that exists now (running or not yet started). Safe from any
 * thread and from signal handlers. */
void tsr_engine_interrupt(tsr_engine *e);

/* ---------------------------------------------------------------------------------------------
 * Result cache, for GUIs: a graph re-run after a param change recomputes only the nodes
 * downstream of the change. While the cache is on, a job materializes every node's output on
 * the host (no fused stages) and keeps it in the cache, keyed by a hash of the node's type,
 * params, its inputs' keys, the identity of files its params name (device, inode, size,
 * mtime), the model it uses and bound pixels; a later job reuses every output whose key is
 * there and runs only what is missing. Sinks always run. The least recently used entries are
 * evicted once the cache holds more than max_bytes of images. Off (0) by default, or
 * $TSR_RESULT_CACHE (a size such as 512M) when set; tsr_run_options.no_reuse turns it off for
 * one job.
 */
void tsr_engine_set_result_cache(tsr_engine *e, uint64_t max_bytes);
/* Bytes held by the result cache now. */
uint64_t tsr_engine_result_cache_bytes(tsr_engine *e);

/* Statistics of the last run, as "key: value" lines (free with tsr_free()). */
char *tsr_engine_stats(const tsr_engine *e);

#ifdef __cplusplus
}
#endif
#endif
