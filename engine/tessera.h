/* Tessera: a node-graph image-processing engine running every node as OpenCL kernels.
 *
 * Conventions for the whole API:
 * - Every call that can fail returns a tsr_status; TSR_OK is 0. The text of the last failure on
 *   an engine is tsr_errmsg(engine). Calls that take no engine take (char *msg, size_t msglen).
 * - Every _new/_load has a matching _free; _free(NULL) is a no-op.
 * - A tsr_engine is used by one thread at a time, except tsr_engine_interrupt() which is safe
 *   from any thread.
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
    TSR_ERR_LIMIT = 5,        /* image larger than the configured pixel limit */
    TSR_ERR_GRAPH = 6,        /* graph syntax or validation error (messages carry file:line:col) */
    TSR_ERR_DEVICE = 7,       /* an OpenCL call failed */
    TSR_ERR_DEVICE_NOMEM = 8, /* device memory exhausted or budget exceeded */
    TSR_ERR_BUILD = 9,        /* an OpenCL program failed to build (message carries the log) */
    TSR_ERR_CANCELLED = 10,   /* the run was cancelled by a callback or tsr_engine_interrupt() */
    TSR_ERR_UNSUPPORTED = 11, /* valid request the engine cannot do (format, channel count...) */
    TSR_ERR_NO_DEVICE = 12,   /* no OpenCL platform/device, or the requested one does not exist */
    TSR_ERR_INTERNAL = 13,    /* a bug in Tessera */
} tsr_status;

/* Fixed English text for a status; never NULL. */
const char *tsr_status_str(tsr_status rc);

/* Free memory returned as `char *` by this API. NULL is a no-op. */
void tsr_free(void *p);

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
     * allocation. 0: $TSR_MAX_PIXELS, else 2^28. */
    uint64_t max_pixels;
    /* Device memory budget in bytes: a hard cap on every byte the engine's device pool holds,
     * and the limit the tile planner plans under. 0: $TSR_VRAM_LIMIT (parsed like
     * tsr_parse_size), else the default rule of docs/MEMORY.md: the device's global memory
     * minus a headroom of max(256 MiB, 10%), at least half of it. Never above the device's
     * global memory. Ignored by the "ref" engine. */
    uint64_t vram_limit;
    /* Cap on pinned host staging buffers (transfers); 0: 64 MiB. */
    uint64_t staging_limit;
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
int tsr_engine_is_ref(const tsr_engine *e);

/* Ask the running job to stop. Safe from any thread and from signal handlers. The run returns
 * TSR_ERR_CANCELLED after the node (later: tile) in flight. */
void tsr_engine_interrupt(tsr_engine *e);

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
/* Bits per sample of the file the image came from (8 or 16), 0 if it did not come from a file. */
int tsr_image_bit_depth(const tsr_image *img);
float *tsr_image_data(tsr_image *img);

typedef enum tsr_format { TSR_FORMAT_AUTO = 0, TSR_FORMAT_PNG, TSR_FORMAT_JPEG } tsr_format;

typedef struct tsr_save_options {
    tsr_format format; /* AUTO: from the file extension (.png, .jpg, .jpeg) */
    int bit_depth;     /* PNG: 8 or 16; 0: the source depth if known, else 8. JPEG: 8 */
    int quality;       /* JPEG 1..100; 0: 92 */
    int compression;   /* PNG zlib level 0..9; -1 or unset(0 after init is -1): 6 */
    int subsampling;   /* JPEG chroma: 444, 422 or 420; 0: 420 */
} tsr_save_options;

void tsr_save_options_init(tsr_save_options *opt);

/* Decode a PNG or JPEG file (format sniffed from the content). */
tsr_status tsr_image_read(tsr_engine *e, const char *path, tsr_image **out);
/* Encode to a temporary file next to path, then rename over path: a failure never leaves a
 * partial file and never touches an existing one. */
tsr_status tsr_image_write(tsr_engine *e, const tsr_image *img, const char *path,
                           const tsr_save_options *opt);

/* Image comparison as `tessera compare` prints it. Differences are on the 0..255 scale of an
 * 8-bit image (value*255); PSNR uses peak 1.0 on 0..1 values; SSIM is Wang et al. 2004 with an
 * 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, averaged over channels. */
typedef struct tsr_compare_result {
    double max_abs;  /* largest |a-b| * 255 */
    double mean_abs; /* mean |a-b| * 255 */
    double psnr;     /* dB; INFINITY when identical */
    double ssim;     /* 1.0 when identical */
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

/* Override a parameter: "node.param=value". Validated like the YAML value. */
tsr_status tsr_graph_set(tsr_engine *e, tsr_graph *g, const char *assignment);

/* Shape inference over the whole graph (reads image headers, no pixels). Called by run. */
tsr_status tsr_graph_infer(tsr_engine *e, tsr_graph *g);

typedef struct tsr_progress {
    const char *node; /* id of the node being run */
    const char *type; /* its type */
    int node_index;   /* 0-based position in execution order */
    int node_count;
    int64_t tile;     /* tiles done in this node */
    int64_t tiles;    /* tiles in this node */
    double elapsed_s; /* since the run started */
} tsr_progress;

/* Return non-zero to cancel the run. Called on the thread that runs the graph. */
typedef int (*tsr_progress_fn)(void *user, const tsr_progress *p);

/* Receives one JSON object per event (no newline): "plan", "stage", "downgrade", "done".
 * Called on the thread that runs the graph; the text is valid only during the call. */
typedef void (*tsr_event_fn)(void *user, const char *json);

typedef struct tsr_run_options {
    tsr_progress_fn progress;
    void *user;
    tsr_event_fn event; /* optional */
    int tile_width;     /* > 0: force this tile size (in each stage's output pixels) */
    int tile_height;
    int dry_run; /* plan only: no pixel is read, computed or written */
} tsr_run_options;

/* Plan the graph under the engine's budget and describe it as text (what `--dry-run` prints):
 * stages, their nodes, tile size and count, estimated peak bytes, and the budget. *out is freed
 * with tsr_free(). opt may be NULL (its tile size, if set, is honoured). */
tsr_status tsr_graph_plan_text(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt, char **out);

/* Run the graph. Blocking. opt may be NULL. */
tsr_status tsr_graph_run(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt);

/* Statistics of the last run, as "key: value" lines (free with tsr_free()). */
char *tsr_engine_stats(const tsr_engine *e);

#ifdef __cplusplus
}
#endif
#endif
