/* tessera: the command-line program over the library (engine/tessera.h).
 *
 * Exit codes: 0 ok; 1 runtime error (I/O, decode, a compare threshold failed, a batch with failed
 * files under --keep-going); 2 usage or graph error (an image over the pixel limit or a format's
 * size limit included); 3 device error (no device, kernel build,
 * OpenCL failure, out of device memory); 4 cancelled without a signal (the engine reported a
 * cancel the CLI did not ask for); 128 + N after signal N: 130 after SIGINT, 143 after SIGTERM.
 *
 * `run` makes a job (tsr_job_new), starts it on its own thread and waits for it in slices of
 * 50 ms, so that the main thread draws the progress line and a signal is acted on at once. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tessera.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_DEVICE = 3, EXIT_CANCELLED = 4 };

static const char *prog = "tessera";

static int exit_code(tsr_status rc)
{
    switch (rc) {
    case TSR_OK: return EXIT_OK;
    case TSR_ERR_GRAPH:
    case TSR_ERR_LIMIT: /* an image over the limits, found before any pixel moves */
    case TSR_ERR_INVALID: return EXIT_USAGE;
    case TSR_ERR_DEVICE:
    case TSR_ERR_DEVICE_NOMEM:
    case TSR_ERR_BUILD:
    case TSR_ERR_NO_DEVICE: return EXIT_DEVICE;
    case TSR_ERR_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_RUNTIME;
    }
}

static int fail(tsr_status rc, const char *msg)
{
    fprintf(stderr, "%s: %s\n", prog, msg && *msg ? msg : tsr_status_str(rc));
    return exit_code(rc);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s %s--help'.\n", prog, cmd ? cmd : "");
    return EXIT_USAGE;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *main_help =
    "usage: tessera COMMAND [ARGS]\n"
    "\n"
    "Run node graphs of image operations as OpenCL kernels.\n"
    "\n"
    "commands:\n"
    "  run GRAPH        run a YAML graph file (or a batch of inputs: --batch)\n"
    "  validate GRAPH   check a graph (syntax, nodes, params, links, image headers)\n"
    "  nodes            list node types with their ports and params (--json for GUIs)\n"
    "  devices          list OpenCL devices with their memory\n"
    "  compare A B      compare two images (max/mean difference, PSNR, SSIM)\n"
    "  op TYPE IN OUT [PARAM=VALUE...]  run one node on one file, without a graph\n"
    "\n"
    "options: --help, --version. 'tessera COMMAND --help' describes each command.\n"
    "environment: TSR_DEVICE (ref | N | name), TSR_CACHE_DIR (kernel binaries),\n"
    "  TSR_VRAM_LIMIT and TSR_MEM_LIMIT (device and host memory budgets, as --vram-limit\n"
    "  and --mem-limit),\n"
    "  TSR_MAX_PIXELS (largest image the engine holds, loaded or computed; default\n"
    "  268435456 pixels, 4 GiB as float32 RGBA).\n"
    "exit codes: 0 ok, 1 runtime error (or a batch with failed files), 2 usage or graph\n"
    "  error (an image over the limits or a graph over --mem-limit included), 3 device error,\n"
    "  4 cancelled without a signal, "
    "130 interrupted (SIGINT),\n"
    "  143 terminated (SIGTERM).\n";

static const char *run_help =
    "usage: tessera run GRAPH [options]\n"
    "       tessera run GRAPH --batch PATTERN --output-dir DIR [batch options] [options]\n"
    "       tessera validate GRAPH [options]\n"
    "\n"
    "  --set NODE.PARAM=VALUE  override a param (repeatable; all are applied, then checked,\n"
    "                          so their order does not matter; NODE.PARAM= with no value\n"
    "                          removes an optional param or restores its default)\n"
    "  --device D              OpenCL device: index, part of its name, or 'ref' (plain C)\n"
    "  --vram-limit SIZE       device memory budget: 512M, 2G, 1.5GiB, or 60% of the\n"
    "                          device's memory (default: all but max(256 MiB, 10%))\n"
    "  --mem-limit SIZE        host memory budget: 8G, or 50% of the host's memory (default:\n"
    "                          75% of it; a graph whose estimate is over it fails, exit 2)\n"
    "  --tile WxH              force the tile size (default: the largest that fits)\n"
    "  --dry-run               print the plan (stages, tiles, estimated memory) and stop\n"
    "  --json                  every event as one JSON line on stdout (chain-start, plan,\n"
    "                          node-start, node-progress, node-finish, stage, downgrade,\n"
    "                          execution-error, finish); errors too, nothing else on stdout\n"
    "  -q, --quiet             no progress line and no summary (errors are still printed)\n"
    "  --stats                 print run statistics to stderr as 'key: value' lines\n"
    "  --help                  this text\n"
    "\n"
    "batch (docs/BATCH.md): one run of GRAPH per input file, one engine for all of them.\n"
    "  --batch PATTERN         input files: a glob pattern ('in/*.png', quoted) or a\n"
    "                          directory (its .png, .jpg, .jpeg, .webp, .tif, .tiff\n"
    "                          files); repeatable.\n"
    "                          Inputs are sorted by path (byte order)\n"
    "  --output-dir DIR        where outputs go (made if missing): each image.save writes\n"
    "                          DIR/STEM.EXT (STEM of the input, EXT of the save's path), or\n"
    "                          DIR/STEM_SAVEID.EXT when the graph has several image.save\n"
    "  --input-node ID         the node that reads each input (default: the graph's only\n"
    "                          image.load or image.input)\n"
    "  --keep-going            record a failed file and go on; exit 1 if any failed\n"
    "  --no-clobber            refuse to replace an existing output file (checked before the\n"
    "                          run starts; exit 2)\n"
    "                          (default: stop at the first failure, with its exit code)\n"
    "  --shard I/N             only the inputs whose position in the sorted list is I mod N\n"
    "                          (0 <= I < N), for N machines sharing one batch\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM cancels the running job: no partial or temporary file is\n"
    "left and an existing output is untouched; the exit status is 130 (SIGINT) or 143\n"
    "(SIGTERM). A second signal exits at once. Exit codes: 0 ok, 1 runtime error or a batch\n"
    "with failed files, 2 usage or graph error, 3 device error, 4 cancelled without a signal.\n";

static const char *compare_help =
    "usage: tessera compare A B [--max-diff N] [--min-psnr DB] [--min-ssim S]\n"
    "\n"
    "Decodes both images (PNG, JPEG, WebP or TIFF, any depth) and prints the largest\n"
    "and mean absolute difference, PSNR (dB, peak: full scale) and SSIM (Gaussian\n"
    "window 11x11, sigma 1.5), then 'levels', the unit of the differences:\n"
    "  255    both images 8-bit: levels 0..255, each sample rounded to its level, so the\n"
    "         differences are whole numbers and --max-diff 1 accepts a one-level\n"
    "         difference and refuses two\n"
    "  65535  both 16-bit: levels 0..65535, the same way\n"
    "  255    one 8-bit and one 16-bit: the coarser scale, 0..255\n"
    "  0      otherwise (float pixels): |a-b| * 255, unrounded (1/255 units)\n"
    "PSNR and SSIM use the same rounded samples. An image narrower or lower than the\n"
    "11x11 SSIM window is one window, the whole image, with uniform weights (its global\n"
    "SSIM). Every channel counts, alpha included.\n"
    "\n"
    "  --max-diff N   fail when the largest difference is above N (in the unit above)\n"
    "  --min-psnr DB  fail when PSNR is below DB\n"
    "  --min-ssim S   fail when SSIM is below S (or NaN: a NaN sample)\n"
    "\n"
    "Exits 0 when every threshold holds, 1 when one fails or a file cannot be read, 2 when\n"
    "the images differ in shape or on a usage error.\n";

static const char *nodes_help = "usage: tessera nodes [--json]\n";
static const char *op_help =
    "usage: tessera op TYPE IN OUT [PARAM=VALUE...] [out.PARAM=VALUE...] [run options]\n"
    "       tessera op TYPE --help\n"
    "\n"
    "Runs one node type that takes one image and gives one (resize, blur.gaussian, ...) on the\n"
    "file IN and writes OUT, like `vips resize in.png out.png 0.5`: the graph\n"
    "image.load -> TYPE -> image.save, validated and run as `tessera run` runs a graph (the\n"
    "run options -q, --json, --stats, --device, --vram-limit, --mem-limit, --tile, --no-clobber\n"
    "apply; the nodes are named in, op and out in messages). PARAM=VALUE sets the node's\n"
    "params; "
    "in.PARAM=VALUE and out.PARAM=VALUE those of image.load and image.save (out.quality=90,\n"
    "out.format=png, ...). IN and OUT may be - (standard input and output; give\n"
    "out.format). `tessera op TYPE --help` lists the node's params.\n";

/* The YAML of `tessera op`, loaded by load_graph in place of a file. */
static char *g_inline_graph;
static const char g_inline_name[] = "tessera op";
static const char *devices_help = "usage: tessera devices\n";

static int has_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* ---- JSON for the errors found before any job exists ------------------------------------------
 * Events of a job come with their JSON (tsr_event.json). A usage error, a graph that does not
 * load, and the batch lines have no job, so the CLI writes those itself. */

/* A JSON string, escaped by the engine's writer (the one JSON writer of the project). */
static void json_str(FILE *f, const char *s)
{
    char *q = tsr_json_quote(s);
    fputs(q ? q : "null", f);
    tsr_free(q);
}

static void json_kstr(FILE *f, const char *key, const char *s)
{
    fprintf(f, ",\"%s\":", key);
    json_str(f, s);
}

/* The "source" of an error message, as the engine's execution-error event gives it, read from
 * the first line: "FILE:LINE:COL: error: node 'ID': ..." or "--set NODE.PARAM: error: ...". */
static void json_source(FILE *f, const char *msg)
{
    size_t len = strcspn(msg, "\n");
    const char *mark = NULL;
    for (const char *p = msg; p + 9 <= msg + len; p++)
        if (memcmp(p, ": error: ", 9) == 0) {
            mark = p;
            break;
        }
    if (!mark) {
        fputs("null", f);
        return;
    }
    char where[1024], node[256] = "", param[256] = "";
    snprintf(where, sizeof where, "%.*s", (int)(mark - msg), msg);
    const char *text = mark + 9;
    if (strncmp(text, "node '", 6) == 0)
        snprintf(node, sizeof node, "%.*s", (int)strcspn(text + 6, "'"), text + 6);
    int line = 0, col = 0;
    const char *file = NULL;
    if (strncmp(where, "--set ", 6) == 0) {
        const char *np = where + 6, *dot = strchr(np, '.');
        if (dot) {
            snprintf(node, sizeof node, "%.*s", (int)(dot - np), np);
            snprintf(param, sizeof param, "%s", dot + 1);
        }
    } else {
        /* FILE:LINE:COL, read from the right: the file name may hold colons. */
        char *c2 = strrchr(where, ':');
        char *c1 = c2 ? memrchr(where, ':', (size_t)(c2 - where)) : NULL;
        if (c1 && c2 > c1 + 1 && c2[1] && strspn(c1 + 1, "0123456789") == (size_t)(c2 - c1 - 1) &&
            strspn(c2 + 1, "0123456789") == strlen(c2 + 1)) {
            line = atoi(c1 + 1);
            col = atoi(c2 + 1);
            *c1 = 0;
            file = where;
        }
    }
    fputs("{\"nodeId\":", f);
    json_str(f, node[0] ? node : NULL);
    fputs(",\"schemaId\":null", f);
    json_kstr(f, "param", param[0] ? param : NULL);
    json_kstr(f, "file", file);
    if (line > 0)
        fprintf(f, ",\"line\":%d,\"col\":%d", line, col);
    fputc('}', f);
}

/* What a job reports when it fails, for an error found before any job exists: an
 * execution-error line, then the finish line that always ends a run's events. */
static void json_error_lines(tsr_status rc, const char *msg)
{
    if (!msg || !*msg)
        msg = tsr_status_str(rc);
    fputs("{\"event\":\"execution-error\"", stdout);
    json_kstr(stdout, "status", tsr_status_str(rc));
    json_kstr(stdout, "message", msg);
    fputs(",\"source\":", stdout);
    json_source(stdout, msg);
    fputs("}\n{\"event\":\"finish\"", stdout);
    json_kstr(stdout, "status", tsr_status_str(rc));
    json_kstr(stdout, "message", msg);
    fputs(",\"seconds\":0,\"files\":[]}\n", stdout);
    fflush(stdout);
}

/* ---- signals ----------------------------------------------------------------------------------
 * The first SIGINT or SIGTERM cancels the running job (tsr_job_cancel and tsr_engine_interrupt
 * are async-signal safe) and the main thread, which waits in slices of 50 ms, winds down: exit
 * 128 + N. A second one exits from the handler at once, after removing the temporary files of
 * encoders still writing. Any thread may take the signal: the main thread clears g_job before
 * freeing the job and then waits until no handler is between reading and using it. */
static atomic_int g_signal;            /* the first signal received; 0: none */
static _Atomic(tsr_job *) g_job;       /* the job to cancel */
static _Atomic(tsr_engine *) g_engine; /* its engine (jobs made but not yet published) */
static atomic_int g_in_handler;        /* handlers holding g_job or g_engine now */

static void on_signal(int sig)
{
    if (atomic_exchange(&g_signal, sig)) {
        tsr_cleanup_temp_files();
        _exit(128 + sig);
    }
    atomic_fetch_add(&g_in_handler, 1);
    tsr_job *j = atomic_load(&g_job);
    if (j)
        tsr_job_cancel(j);
    tsr_engine *e = atomic_load(&g_engine);
    if (e)
        tsr_engine_interrupt(e);
    atomic_fetch_sub(&g_in_handler, 1);
}

static void install_signal_handlers(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    /* A shell without job control starts background commands with SIGINT ignored, so that
     * Ctrl-C reaches only the foreground one: that choice is kept. */
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Withdraw what the handler may touch, before freeing it. */
static void unpublish(void)
{
    atomic_store(&g_job, NULL);
    while (atomic_load(&g_in_handler))
        sched_yield();
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

/* ---- options of run and validate ------------------------------------------------------------ */

typedef struct run_args {
    const char *graph, *device, *vram, *mem, *output_dir, *input_node;
    const char **sets, **batch;
    int n_sets, n_batch;
    int quiet, stats, dry_run, json, keep_going, no_clobber;
    int tile_w, tile_h;
    int shard_i, shard_n; /* shard_n 0: no --shard */
} run_args;

static const char *const value_options[] = {
    "--set",   "--device",     "--vram-limit", "--mem-limit",  "--tile",
    "--batch", "--output-dir", "--shard",      "--input-node", NULL};

/* The value option that `a` names ("--set" or "--set=..."), with *inline_value set for the
 * second form; NULL if a is not one. */
static const char *value_option(const char *a, const char **inline_value)
{
    *inline_value = NULL;
    for (int k = 0; value_options[k]; k++) {
        size_t n = strlen(value_options[k]);
        if (strncmp(a, value_options[k], n) == 0 && (a[n] == 0 || a[n] == '=')) {
            if (a[n] == '=')
                *inline_value = a + n + 1;
            return value_options[k];
        }
    }
    return NULL;
}

/* --json anywhere among the options (not as the value of another option): a usage error is then
 * reported as JSON too, even when it comes before --json on the line. */
static int wants_json(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (value_option(argv[i], &v) && !v)
            i++;
        else if (strcmp(argv[i], "--json") == 0)
            return 1;
    }
    return 0;
}

/* Fill *a from argv; on a usage error return EXIT_USAGE with the message in msg. */
static int parse_run_args(int argc, char **argv, int validate_only, run_args *a, char *msg,
                          size_t msglen)
{
    char junk;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        const char *opt = value_option(arg, &v);
        if (opt) {
            if (!v && i + 1 >= argc) {
                snprintf(msg, msglen, "option '%s' needs a value", opt);
                return EXIT_USAGE;
            }
            if (!v)
                v = argv[++i];
            if (!strcmp(opt, "--set")) {
                a->sets[a->n_sets++] = v;
            } else if (!strcmp(opt, "--device")) {
                a->device = v;
            } else if (!strcmp(opt, "--vram-limit")) {
                a->vram = v;
            } else if (!strcmp(opt, "--mem-limit")) {
                a->mem = v;
            } else if (!strcmp(opt, "--tile")) {
                if (sscanf(v, "%dx%d%c", &a->tile_w, &a->tile_h, &junk) != 2 || a->tile_w < 1 ||
                    a->tile_h < 1) {
                    snprintf(msg, msglen, "--tile needs WxH with positive sizes, got '%s'", v);
                    return EXIT_USAGE;
                }
            } else if (!strcmp(opt, "--batch")) {
                a->batch[a->n_batch++] = v;
            } else if (!strcmp(opt, "--output-dir")) {
                a->output_dir = v;
            } else if (!strcmp(opt, "--input-node")) {
                a->input_node = v;
            } else { /* --shard */
                if (sscanf(v, "%d/%d%c", &a->shard_i, &a->shard_n, &junk) != 2 || a->shard_n < 1 ||
                    a->shard_i < 0 || a->shard_i >= a->shard_n) {
                    snprintf(msg, msglen, "--shard needs I/N with 0 <= I < N, got '%s'", v);
                    return EXIT_USAGE;
                }
            }
        } else if (!strcmp(arg, "--dry-run")) {
            a->dry_run = 1;
        } else if (!strcmp(arg, "--json")) {
            a->json = 1;
        } else if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
            a->quiet = 1;
        } else if (!strcmp(arg, "--stats")) {
            a->stats = 1;
        } else if (!strcmp(arg, "--keep-going")) {
            a->keep_going = 1;
        } else if (!strcmp(arg, "--no-clobber")) {
            a->no_clobber = 1;
        } else if (arg[0] == '-' && arg[1]) {
            snprintf(msg, msglen, "unknown option '%s'", arg);
            return EXIT_USAGE;
        } else if (!a->graph) {
            a->graph = arg;
        } else {
            snprintf(msg, msglen, "unexpected argument '%s'", arg);
            return EXIT_USAGE;
        }
    }
    const char *batch_only = a->output_dir   ? "--output-dir"
                             : a->keep_going ? "--keep-going"
                             : a->shard_n    ? "--shard"
                             : a->input_node ? "--input-node"
                                             : NULL;
    if (!a->graph)
        snprintf(msg, msglen, "missing GRAPH file");
    else if (validate_only && (a->n_batch || batch_only))
        snprintf(msg, msglen, "%s is an option of 'run'", a->n_batch ? "--batch" : batch_only);
    else if (!a->n_batch && batch_only)
        snprintf(msg, msglen, "%s goes with --batch", batch_only);
    else if (a->n_batch && !a->output_dir)
        snprintf(msg, msglen, "--batch needs --output-dir DIR");
    else if (a->n_batch && a->dry_run)
        snprintf(msg, msglen, "--dry-run plans one run: drop --batch, or set the input with --set");
    else
        return EXIT_OK;
    return EXIT_USAGE;
}

/* ---- one job: events, progress line, wait --------------------------------------------------- */

/* What the event callback (on the job's thread) tells the main thread. */
typedef struct view {
    pthread_mutex_t mu;
    int json, tty;
    char prefix[256];  /* batch: "k/N input: " */
    const char *input; /* batch: the input, for --stats */
    /* the progress line */
    int started, dirty, staged;
    int node_index, node_count;
    char node[128], type[64];
    int64_t index, total;
    double progress;
    /* the finish event */
    double seconds;
    char **files;
    int n_files;
} view;

static void view_reset(view *v)
{
    pthread_mutex_lock(&v->mu);
    for (int i = 0; i < v->n_files; i++)
        free(v->files[i]);
    free(v->files);
    v->files = NULL;
    v->n_files = 0;
    v->started = v->dirty = v->staged = 0;
    v->seconds = 0;
    pthread_mutex_unlock(&v->mu);
}

static void on_event(void *user, const tsr_event *ev)
{
    view *v = user;
    if (v->json) {
        fputs(ev->json, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    pthread_mutex_lock(&v->mu);
    switch (ev->type) {
    case TSR_EV_NODE_START:
    case TSR_EV_NODE_PROGRESS:
        if (ev->type == TSR_EV_NODE_START || strcmp(v->node, ev->node ? ev->node : "")) {
            v->staged = 0;
            v->index = v->total = 0;
            v->progress = 0;
        }
        snprintf(v->node, sizeof v->node, "%s", ev->node ? ev->node : "");
        snprintf(v->type, sizeof v->type, "%s", ev->node_type ? ev->node_type : "");
        v->node_index = ev->node_index;
        v->node_count = ev->node_count;
        if (ev->type == TSR_EV_NODE_PROGRESS) {
            v->index = ev->index;
            v->total = ev->total;
            v->progress = ev->progress;
        }
        v->started = v->dirty = 1;
        break;
    case TSR_EV_STAGE: /* the progress of this node counts tiles */
        if (ev->node && !strcmp(ev->node, v->node)) {
            v->staged = 1;
            v->total = ev->total;
            v->dirty = 1;
        }
        break;
    case TSR_EV_NODE_FINISH:
        if (ev->node && !strcmp(ev->node, v->node)) {
            v->index = v->total;
            v->progress = 1;
            v->dirty = 1;
        }
        break;
    case TSR_EV_WARNING: /* always said, --json or not: stderr is not the JSON stream */
        fprintf(stderr, "tessera: warning: node '%s': %s\n", ev->node ? ev->node : "?",
                ev->message ? ev->message : "");
        break;
    case TSR_EV_JOB_FINISH:
        v->seconds = ev->seconds;
        v->files = calloc((size_t)ev->n_files + 1, sizeof *v->files);
        for (int i = 0; v->files && i < ev->n_files; i++)
            if ((v->files[v->n_files] = strdup(ev->files[i])))
                v->n_files++;
        break;
    default: break;
    }
    pthread_mutex_unlock(&v->mu);
}

static int terminal_columns(void)
{
    struct winsize ws;
    return ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col : 80;
}

/* "[2/3] soft (blur.gaussian) tile 17/150  11%  2.3s", redrawn in place, cut to the terminal's
 * width (a wrapped line could not be redrawn). */
static void draw_progress(view *v, double elapsed)
{
    char line[512];
    pthread_mutex_lock(&v->mu);
    int n = snprintf(line, sizeof line, "%s[%d/%d] %s (%s)", v->prefix, v->node_index + 1,
                     v->node_count, v->node, v->type);
    if (v->total > 1 && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " %s%lld/%lld", v->staged ? "tile " : "",
                      (long long)v->index, (long long)v->total);
    if (n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, " %3.0f%%  %.1fs", v->progress * 100, elapsed);
    v->dirty = 0;
    pthread_mutex_unlock(&v->mu);
    int cols = terminal_columns();
    if ((int)strlen(line) >= cols)
        line[cols - 1] = 0;
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

typedef struct job_result {
    tsr_status rc;
    int ran;       /* the job started: its events (execution-error, finish) were given */
    char *message; /* "" on success */
} job_result;

/* Run graph g as one job with opt (events to v), `bind` bound to node `bind_node` if not NULL;
 * wait for it while drawing the progress line. */
static void run_job(tsr_engine *e, tsr_graph *g, const tsr_run_options *opt, const char *bind_node,
                    tsr_image *bind, view *v, int stats, job_result *res)
{
    tsr_run_options ro = *opt;
    ro.event = on_event;
    ro.user = v;
    view_reset(v);
    memset(res, 0, sizeof *res);
    tsr_job *j = NULL;
    tsr_status rc = tsr_job_new(e, g, &ro, &j);
    if (!rc && bind)
        rc = tsr_job_bind_image(j, bind_node, bind);
    if (rc) {
        res->rc = rc;
        res->message = strdup(tsr_errmsg(e));
        tsr_job_free(j);
        return;
    }
    atomic_store(&g_job, j);
    if (atomic_load(&g_signal)) /* came before the job was published: the job starts cancelled */
        tsr_job_cancel(j);
    double t0 = now_s(), drawn = 0;
    rc = tsr_job_start(j);
    if (rc) {
        res->rc = rc;
        res->message = strdup(tsr_errmsg(e));
        unpublish();
        tsr_job_free(j);
        return;
    }
    res->ran = 1;
    while ((rc = tsr_job_wait(j, 50)) == TSR_ERR_BUSY) {
        if (atomic_load(&g_signal))
            tsr_job_cancel(j);
        double t = now_s();
        pthread_mutex_lock(&v->mu);
        int draw = v->tty && v->started && (v->dirty || t - drawn >= 0.1);
        pthread_mutex_unlock(&v->mu);
        if (draw) {
            draw_progress(v, t - t0);
            drawn = t;
        }
    }
    if (v->tty && drawn > 0) {
        draw_progress(v, now_s() - t0);
        fputc('\n', stderr);
    }
    res->rc = rc;
    res->message = strdup(tsr_job_message(j));
    if (stats) {
        char *s = tsr_job_stats_text(j);
        struct rusage ru;
        long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
        if (v->input)
            fprintf(stderr, "batch.input: %s\n", v->input);
        fprintf(stderr, "device: %s\n%sprocess.peak_rss_bytes: %lld\n", tsr_engine_device(e)->name,
                s ? s : "", (long long)rss * 1024);
        tsr_free(s);
    }
    unpublish();
    tsr_job_free(j);
}

/* "done in 1.23 s: wrote out/a.png, out/b.png" */
static void print_done(const view *v, const char *prefix)
{
    fprintf(stderr, "%sdone in %.2f s", prefix, v->seconds);
    for (int i = 0; i < v->n_files; i++)
        fprintf(stderr, "%s%s", i ? ", " : ": wrote ", v->files[i]);
    fputc('\n', stderr);
}

/* The error of a job (or of what came before it) as text, or as JSON when no job gave it. */
static void report_failure(const run_args *a, const job_result *r, const view *v,
                           const char *prefix)
{
    const char *msg = r->message && *r->message ? r->message : tsr_status_str(r->rc);
    int sig = atomic_load(&g_signal);
    if (a->json && !r->ran)
        json_error_lines(r->rc, msg);
    if (sig && r->rc == TSR_ERR_CANCELLED) {
        fprintf(stderr, "%s: %sinterrupted by %s: %s", prog, prefix, signal_name(sig), msg);
        for (int i = 0; i < v->n_files; i++) /* a multi-output graph stopped between saves */
            fprintf(stderr, "%s%s", i ? ", " : " (written before the cancel: ", v->files[i]);
        fputs(v->n_files ? ")\n" : "\n", stderr);
    } else {
        fprintf(stderr, "%s: %s%s\n", prog, prefix, msg);
    }
}

/* ---- batch: inputs ------------------------------------------------------------------------- */

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return -1;
    l->n++;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    const char *sep = n && dir[n - 1] == '/' ? "" : "/";
    char *p = malloc(n + strlen(sep) + strlen(name) + 1);
    if (p)
        sprintf(p, "%s%s%s", dir, sep, name);
    return p;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int has_image_ext(const char *name)
{
    static const char *const exts[] = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i]))
            return 1;
    return 0;
}

/* Add the files one --batch value names: a directory (its image files by extension, hidden ones
 * left out), an existing file (taken literally, whatever characters its name holds), or a glob
 * pattern. A value that names nothing is an error. */
static int collect_inputs(const char *spec, strlist *out, char *msg, size_t msglen)
{
    struct stat st;
    int before = out->n, oom = 0, exists = stat(spec, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(spec);
        if (!d) {
            snprintf(msg, msglen, "--batch '%s': cannot read the directory: %s", spec,
                     strerror(errno));
            return EXIT_USAGE;
        }
        struct dirent *de;
        while (!oom && (de = readdir(d))) {
            if (de->d_name[0] == '.' || !has_image_ext(de->d_name))
                continue;
            char *p = path_join(spec, de->d_name);
            if (!p || (is_regular(p) && strlist_add(out, p)))
                oom = 1;
            free(p);
        }
        closedir(d);
        if (!oom && out->n == before) {
            snprintf(msg, msglen,
                     "--batch '%s': no .png, .jpg, .jpeg, .webp, .tif or .tiff file in the "
                     "directory",
                     spec);
            return EXIT_USAGE;
        }
    } else if (exists && S_ISREG(st.st_mode)) {
        oom = strlist_add(out, spec) != 0;
    } else {
        glob_t gl;
        int r = glob(spec, 0, NULL, &gl);
        if (r == GLOB_NOSPACE) {
            oom = 1;
        } else if (r) {
            snprintf(msg, msglen, "--batch '%s': no file matches", spec);
            return EXIT_USAGE;
        }
        for (size_t i = 0; !r && !oom && i < gl.gl_pathc; i++)
            if (is_regular(gl.gl_pathv[i]))
                oom = strlist_add(out, gl.gl_pathv[i]) != 0;
        if (!r)
            globfree(&gl);
        if (!oom && out->n == before) {
            snprintf(msg, msglen, "--batch '%s': matches no regular file", spec);
            return EXIT_USAGE;
        }
    }
    if (oom) {
        snprintf(msg, msglen, "out of memory listing the inputs");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* The file name without its directory and its last extension: "in/a.b.png" -> "a.b". */
static char *stem_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, n);
}

typedef struct stem_ref {
    char *stem;
    const char *path;
} stem_ref;

static int cmp_stem(const void *a, const void *b)
{
    const stem_ref *x = a, *y = b;
    int c = strcmp(x->stem, y->stem);
    return c ? c : strcmp(x->path, y->path);
}

/* Two inputs with one stem would write the same outputs: refuse them before any work. */
static int check_stems(const strlist *in, char *msg, size_t msglen)
{
    stem_ref *r = calloc((size_t)in->n + 1, sizeof *r);
    int code = EXIT_OK, k;
    for (k = 0; r && k < in->n; k++)
        if (!(r[k].stem = stem_of(in->v[k])))
            break;
        else
            r[k].path = in->v[k];
    if (!r || k < in->n) {
        snprintf(msg, msglen, "out of memory listing the inputs");
        code = EXIT_RUNTIME;
        goto done;
    }
    qsort(r, (size_t)in->n, sizeof *r, cmp_stem);
    for (int i = 1; i < in->n; i++)
        if (!strcmp(r[i - 1].stem, r[i].stem)) {
            snprintf(msg, msglen,
                     "inputs '%s' and '%s' have the same name stem '%s': their outputs would "
                     "overwrite each other; rename one or run them in separate batches",
                     r[i - 1].path, r[i].path, r[i].stem);
            code = EXIT_USAGE;
            break;
        }
done:
    for (int i = 0; r && i < in->n; i++)
        free(r[i].stem);
    free(r);
    return code;
}

/* ---- batch: the graph's input and save nodes --------------------------------------------------
 * The public API has no way to list a loaded graph's nodes, so the CLI reads the (already
 * validated) YAML again for each node's id, type and path param, then applies the --set
 * overrides of path params. */

typedef struct gnode {
    char *id, *type, *path;
} gnode;

typedef struct gview {
    gnode *v;
    int n;
} gview;

static void gview_free(gview *gv)
{
    for (int i = 0; i < gv->n; i++) {
        free(gv->v[i].id);
        free(gv->v[i].type);
        free(gv->v[i].path);
    }
    free(gv->v);
    memset(gv, 0, sizeof *gv);
}

/* The graph's nodes as loaded (with the --set overrides applied): id, type and path. */
static int graph_view(const tsr_graph *g, gview *gv, char *msg, size_t msglen)
{
    int n = tsr_graph_node_count(g);
    memset(gv, 0, sizeof *gv);
    snprintf(msg, msglen, "out of memory");
    if (!(gv->v = calloc((size_t)n + 1, sizeof *gv->v)))
        return EXIT_RUNTIME;
    for (int i = 0; i < n; i++) {
        gnode *d = &gv->v[gv->n++];
        d->path = tsr_graph_param(g, i, "path");
        if (!(d->id = strdup(tsr_graph_node_id(g, i))) ||
            !(d->type = strdup(tsr_graph_node_type(g, i)))) {
            gview_free(gv);
            return EXIT_RUNTIME;
        }
    }
    msg[0] = 0;
    return EXIT_OK;
}

/* The graph file, or standard input for "-" (named <stdin> in messages). */
static tsr_status load_graph(tsr_engine *e, const char *path, tsr_graph **g)
{
    if (path == g_inline_name)
        return tsr_graph_load_string(e, g_inline_graph, g_inline_name, g);
    if (strcmp(path, "-") != 0)
        return tsr_graph_load_file(e, path, g);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    while (text) {
        if (len + 1 == cap) {
            char *t = cap < (64u << 20) ? realloc(text, cap * 2) : NULL;
            if (!t) {
                free(text);
                text = NULL;
                break;
            }
            text = t;
            cap *= 2;
        }
        size_t n = fread(text + len, 1, cap - 1 - len, stdin);
        len += n;
        if (n == 0)
            break;
    }
    if (!text) { /* tsr_graph_load_string reports the message through the engine */
        *g = NULL;
        return tsr_graph_load_string(e, NULL, "<stdin>: over 64 MiB or out of memory", g);
    }
    text[len] = 0;
    tsr_status rc = tsr_graph_load_string(e, text, "<stdin>", g);
    free(text);
    return rc;
}

/* --no-clobber: the first image.save whose file (or link) exists, named in msg; 0 if none. */
static int existing_output(const tsr_graph *g, char *msg, size_t msglen)
{
    for (int i = 0; i < tsr_graph_node_count(g); i++) {
        if (strcmp(tsr_graph_node_type(g, i), "image.save"))
            continue;
        char *path = tsr_graph_param(g, i, "path");
        struct stat st;
        int exists = path && lstat(path, &st) == 0;
        if (exists)
            snprintf(msg, msglen, "node '%s': output '%s' exists (--no-clobber)",
                     tsr_graph_node_id(g, i), path);
        free(path);
        if (exists)
            return 1;
    }
    return 0;
}

static int is_input_type(const char *type)
{
    return !strcmp(type, "image.load") || !strcmp(type, "image.input");
}

/* ---- batch: the plan of the whole batch ------------------------------------------------------ */

typedef struct batch {
    strlist all; /* every input, sorted: positions for --shard */
    int *sel;    /* positions in `all` of this shard's inputs */
    int n_sel;
    gview gv;
    int input;  /* index in gv of the input node */
    int *saves; /* indices in gv of the image.save nodes */
    int n_saves;
    char **outputs; /* n_sel * n_saves paths */
} batch;

static void batch_free(batch *b)
{
    for (int i = 0; b->outputs && i < b->n_sel * b->n_saves; i++)
        free(b->outputs[i]);
    free(b->outputs);
    free(b->sel);
    free(b->saves);
    gview_free(&b->gv);
    strlist_free(&b->all);
    memset(b, 0, sizeof *b);
}

/* Inputs of every --batch value, sorted, duplicates dropped, stems checked, then this shard's. */
static int batch_inputs(const run_args *a, batch *b, char *msg, size_t msglen)
{
    int code = EXIT_OK;
    for (int i = 0; !code && i < a->n_batch; i++)
        code = collect_inputs(a->batch[i], &b->all, msg, msglen);
    if (code)
        return code;
    qsort(b->all.v, (size_t)b->all.n, sizeof *b->all.v, cmp_str);
    int n = 0;
    for (int i = 0; i < b->all.n; i++) {
        if (n && !strcmp(b->all.v[n - 1], b->all.v[i]))
            free(b->all.v[i]);
        else
            b->all.v[n++] = b->all.v[i];
    }
    b->all.n = n;
    if ((code = check_stems(&b->all, msg, msglen)))
        return code;
    if (!(b->sel = calloc((size_t)n + 1, sizeof *b->sel))) {
        snprintf(msg, msglen, "out of memory listing the inputs");
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < n; i++)
        if (!a->shard_n || i % a->shard_n == a->shard_i)
            b->sel[b->n_sel++] = i;
    return EXIT_OK;
}

typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

static int cmp_file_id(const void *a, const void *b)
{
    const file_id *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    int rc = p ? 0 : -1;
    for (char *s = p ? p + 1 : NULL; s && !rc; s++) {
        int end = *s == 0;
        if (*s != '/' && !end)
            continue;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST)
            rc = -1;
        if (end)
            break;
        *s = '/';
    }
    free(p);
    struct stat st;
    return rc == 0 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* The graph's side: input node, save nodes, output names; an output that would replace an input
 * is refused; the output directory is made. */
static int batch_outputs(const tsr_graph *g, const run_args *a, batch *b, char *msg, size_t msglen)
{
    int code = graph_view(g, &b->gv, msg, msglen);
    if (code)
        return code;
    gview *gv = &b->gv;
    b->input = -1;
    char names[512] = "";
    int n_inputs = 0;
    for (int k = 0; k < gv->n; k++) {
        if (a->input_node ? !strcmp(gv->v[k].id, a->input_node) : is_input_type(gv->v[k].type)) {
            if (n_inputs++ < 4)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         n_inputs > 1 ? ", " : "", gv->v[k].id);
            b->input = k;
        }
    }
    if (a->input_node && b->input < 0) {
        snprintf(msg, msglen, "--input-node '%s': no such node in %s", a->input_node, a->graph);
        return EXIT_USAGE;
    }
    if (a->input_node && !is_input_type(gv->v[b->input].type)) {
        snprintf(msg, msglen,
                 "--input-node '%s' is an %s: the batch feeds an image.load or an "
                 "image.input",
                 a->input_node, gv->v[b->input].type);
        return EXIT_USAGE;
    }
    if (n_inputs == 0) {
        snprintf(msg, msglen, "%s has no image.load or image.input node to feed the batch",
                 a->graph);
        return EXIT_USAGE;
    }
    if (n_inputs > 1) {
        snprintf(msg, msglen, "%s has %d input nodes (%s%s): choose one with --input-node ID",
                 a->graph, n_inputs, names, n_inputs > 4 ? ", ..." : "");
        return EXIT_USAGE;
    }
    if (!(b->saves = calloc((size_t)gv->n + 1, sizeof *b->saves)))
        goto oom;
    for (int k = 0; k < gv->n; k++)
        if (!strcmp(gv->v[k].type, "image.save"))
            b->saves[b->n_saves++] = k;
    if (!b->n_saves) {
        snprintf(msg, msglen, "%s has no image.save node: the batch would write nothing", a->graph);
        return EXIT_USAGE;
    }
    if (!(b->outputs = calloc((size_t)b->n_sel * b->n_saves + 1, sizeof *b->outputs)))
        goto oom;
    for (int i = 0; i < b->n_sel; i++) {
        char *stem = stem_of(b->all.v[b->sel[i]]);
        if (!stem)
            goto oom;
        for (int s = 0; s < b->n_saves; s++) {
            const gnode *sv = &gv->v[b->saves[s]];
            const char *path = sv->path ? sv->path : "";
            const char *slash = strrchr(path, '/');
            const char *ext = strrchr(slash ? slash + 1 : path, '.');
            char *name = NULL;
            if (asprintf(&name, "%s%s%s%s", stem, b->n_saves > 1 ? "_" : "",
                         b->n_saves > 1 ? sv->id : "", ext ? ext : "") < 0)
                name = NULL;
            b->outputs[i * b->n_saves + s] = name ? path_join(a->output_dir, name) : NULL;
            free(name);
            if (!b->outputs[i * b->n_saves + s]) {
                free(stem);
                goto oom;
            }
        }
        free(stem);
    }
    /* An output that is one of the inputs (--output-dir is the input folder) would replace it. */
    file_id *ids = calloc((size_t)b->all.n + 1, sizeof *ids);
    int n_ids = 0;
    struct stat st;
    if (!ids)
        goto oom;
    for (int i = 0; i < b->all.n; i++)
        if (stat(b->all.v[i], &st) == 0)
            ids[n_ids++] = (file_id){st.st_dev, st.st_ino};
    qsort(ids, (size_t)n_ids, sizeof *ids, cmp_file_id);
    for (int i = 0; !code && i < b->n_sel * b->n_saves; i++) {
        file_id id;
        if (stat(b->outputs[i], &st))
            continue;
        id = (file_id){st.st_dev, st.st_ino};
        if (bsearch(&id, ids, (size_t)n_ids, sizeof *ids, cmp_file_id)) {
            snprintf(msg, msglen,
                     "output '%s' is one of the inputs: the batch would replace it "
                     "(choose another --output-dir)",
                     b->outputs[i]);
            code = EXIT_USAGE;
        }
    }
    free(ids);
    for (int i = 0; !code && a->no_clobber && i < b->n_sel * b->n_saves; i++)
        if (lstat(b->outputs[i], &st) == 0) {
            snprintf(msg, msglen, "output '%s' exists (--no-clobber)", b->outputs[i]);
            code = EXIT_USAGE;
        }
    if (!code && mkdir_p(a->output_dir)) {
        snprintf(msg, msglen, "--output-dir '%s': cannot make the directory: %s", a->output_dir,
                 strerror(errno));
        code = EXIT_RUNTIME;
    }
    return code;
oom:
    snprintf(msg, msglen, "out of memory planning the batch");
    return EXIT_RUNTIME;
}

/* ---- batch: the run ---------------------------------------------------------------------------
 * The next input is decoded on a thread of its own while the device works on the current one;
 * the decoded image is bound to the input node (the job then does not read the file, and the
 * node keeps the file's path for messages). A file the prefetch cannot decode is left to the
 * job, which fails on it with the message and event of a single run. */

typedef struct prefetch {
    tsr_engine *e;
    const char *path;
    tsr_image *img;
    tsr_status rc;
    char *msg;
    pthread_t thread;
    int started;
} prefetch;

static void *prefetch_main(void *arg)
{
    prefetch *p = arg;
    p->rc = tsr_image_read(p->e, p->path, &p->img);
    if (p->rc) /* tsr_errmsg is this thread's message */
        p->msg = strdup(tsr_errmsg(p->e));
    return NULL;
}

static void prefetch_start(prefetch *p, tsr_engine *e, const char *path)
{
    memset(p, 0, sizeof *p);
    p->e = e;
    p->path = path;
    p->started = pthread_create(&p->thread, NULL, prefetch_main, p) == 0;
    if (!p->started)
        p->rc = TSR_ERR_NOMEM; /* no thread: the job reads the file itself */
}

static void prefetch_join(prefetch *p)
{
    if (p->started)
        pthread_join(p->thread, NULL);
    p->started = 0;
}

static void prefetch_free(prefetch *p)
{
    prefetch_join(p);
    tsr_image_free(p->img);
    free(p->msg);
    memset(p, 0, sizeof *p);
}

static tsr_status set_param(tsr_engine *e, tsr_graph *g, const char *node, const char *param,
                            const char *value)
{
    char *s = NULL;
    if (asprintf(&s, "%s.%s=%s", node, param, value) < 0)
        return TSR_ERR_NOMEM;
    tsr_status rc = tsr_graph_set(e, g, s);
    free(s);
    return rc;
}

static void json_batch_item(int index, const char *input, const job_result *r, const view *v,
                            double seconds)
{
    int sig = atomic_load(&g_signal);
    fprintf(stdout, "{\"event\":\"batch-item\",\"index\":%d", index);
    json_kstr(stdout, "input", input);
    fputs(",\"outputs\":[", stdout);
    for (int i = 0; i < v->n_files; i++) {
        if (i)
            fputc(',', stdout);
        json_str(stdout, v->files[i]);
    }
    fputc(']', stdout);
    json_kstr(stdout, "status",
              !r->rc                              ? "ok"
              : sig && r->rc == TSR_ERR_CANCELLED ? "cancelled"
                                                  : "failed");
    json_kstr(stdout, "error", r->rc ? tsr_status_str(r->rc) : NULL);
    json_kstr(stdout, "message", r->message ? r->message : "");
    fprintf(stdout, ",\"seconds\":%.6f}\n", seconds);
    fflush(stdout);
}

/* "  in/c.png: message", continuation lines of the message indented too. */
static void print_failure(const char *input, const char *message)
{
    fprintf(stderr, "  %s: ", input);
    for (const char *p = message; *p; p++) {
        fputc(*p, stderr);
        if (*p == '\n' && p[1])
            fputs("    ", stderr);
    }
    fputc('\n', stderr);
}

static int batch_run(tsr_engine *e, tsr_graph *g, const run_args *a, batch *b, view *v)
{
    const gnode *in_node = &b->gv.v[b->input];
    int from_file = !strcmp(in_node->type, "image.load");
    tsr_run_options ro = {.tile_width = a->tile_w, .tile_height = a->tile_h, .no_reuse = 1};
    /* Every input differs: cached node outputs would only take memory. */
    tsr_engine_set_result_cache(e, 0);
    int done = 0, failed = 0, cancelled = 0, code = EXIT_OK;
    job_result *fails = calloc((size_t)b->n_sel + 1, sizeof *fails);
    const char **fail_inputs = calloc((size_t)b->n_sel + 1, sizeof *fail_inputs);
    prefetch pf[2];
    memset(pf, 0, sizeof pf);
    double t0 = now_s();
    if (!fails || !fail_inputs) {
        free(fails);
        free(fail_inputs);
        return fail(TSR_ERR_NOMEM, "out of memory starting the batch");
    }
    if (b->n_sel > 0)
        prefetch_start(&pf[0], e, b->all.v[b->sel[0]]);
    for (int k = 0; k < b->n_sel && !atomic_load(&g_signal); k++) {
        prefetch *cur = &pf[k % 2];
        const char *input = b->all.v[b->sel[k]];
        prefetch_join(cur);
        if (k + 1 < b->n_sel)
            prefetch_start(&pf[(k + 1) % 2], e, b->all.v[b->sel[k + 1]]);
        snprintf(v->prefix, sizeof v->prefix, "%d/%d %s: ", k + 1, b->n_sel, input);
        v->input = input;
        double t1 = now_s();
        job_result r;
        memset(&r, 0, sizeof r);
        tsr_status rc = from_file ? set_param(e, g, in_node->id, "path", input) : TSR_OK;
        for (int s = 0; !rc && s < b->n_saves; s++)
            rc = set_param(e, g, b->gv.v[b->saves[s]].id, "path", b->outputs[k * b->n_saves + s]);
        view_reset(v);
        if (rc) {
            r.rc = rc;
            r.message = strdup(tsr_errmsg(e));
        } else if (!cur->img && !from_file) { /* an image.input has no file to fall back on */
            r.rc = cur->rc;
            r.message = cur->msg ? strdup(cur->msg) : NULL;
        } else {
            run_job(e, g, &ro, in_node->id, cur->img, v, a->stats, &r);
        }
        prefetch_free(cur);
        char prefix[4200];
        snprintf(prefix, sizeof prefix, "%s: ", input);
        int interrupted = r.rc == TSR_ERR_CANCELLED && atomic_load(&g_signal);
        if (r.rc && !interrupted)
            report_failure(a, &r, v, prefix);
        if (a->json)
            json_batch_item(k, input, &r, v, now_s() - t1);
        if (!r.rc) {
            done++;
            if (!a->quiet && !a->json)
                print_done(v, prefix);
            free(r.message);
        } else if (interrupted) {
            cancelled++;
            free(r.message);
        } else {
            fail_inputs[failed] = input;
            fails[failed++] = r;
            if (!a->keep_going) {
                code = exit_code(r.rc);
                break;
            }
        }
    }
    prefetch_free(&pf[0]);
    prefetch_free(&pf[1]);
    int sig = atomic_load(&g_signal);
    int not_run = b->n_sel - done - failed - cancelled;
    double seconds = now_s() - t0;
    if (sig) {
        fprintf(stderr,
                "%s: batch interrupted by %s: %d done, %d failed, %d cancelled, %d not run\n", prog,
                signal_name(sig), done, failed, cancelled, not_run);
        code = 128 + sig;
    } else if (failed && a->keep_going) {
        fprintf(stderr, "%d done, %d failed in %.2f s:\n", done, failed, seconds);
        for (int i = 0; i < failed; i++)
            print_failure(fail_inputs[i], fails[i].message && *fails[i].message
                                              ? fails[i].message
                                              : tsr_status_str(fails[i].rc));
        code = EXIT_RUNTIME;
    } else if (failed) {
        fprintf(stderr,
                "%s: batch stopped at the first failure (--keep-going goes on): %d done, "
                "%d failed, %d not run\n",
                prog, done, failed, not_run);
    } else if (!a->quiet && !a->json) {
        fprintf(stderr, "%d done, 0 failed in %.2f s\n", done, seconds);
    }
    if (a->json)
        fprintf(stdout,
                "{\"event\":\"batch-finish\",\"status\":\"%s\",\"inputs\":%d,\"done\":%d,"
                "\"failed\":%d,\"cancelled\":%d,\"not_run\":%d,\"seconds\":%.6f}\n",
                sig      ? "cancelled"
                : failed ? "failed"
                         : "ok",
                b->n_sel, done, failed, cancelled, not_run, seconds);
    fflush(stdout);
    for (int i = 0; i < failed; i++)
        free(fails[i].message);
    free(fails);
    free(fail_inputs);
    return code;
}

/* ---- run and validate ------------------------------------------------------------------------ */

/* An error before any job exists: text on stderr, and with --json the lines a job would give. */
static int fail_before_job(int json, tsr_status rc, const char *msg)
{
    if (json)
        json_error_lines(rc, msg);
    return fail(rc, msg);
}

static int cmd_run(int argc, char **argv, int validate_only)
{
    const char *cmd = validate_only ? "validate " : "run ";
    if (has_help(argc, argv)) {
        fputs(run_help, stdout);
        return EXIT_OK;
    }
    run_args a;
    memset(&a, 0, sizeof a);
    a.sets = calloc((size_t)argc + 1, sizeof *a.sets);
    a.batch = calloc((size_t)argc + 1, sizeof *a.batch);
    int json = !validate_only && wants_json(argc, argv);
    char msg[4096];
    tsr_engine *e = NULL;
    tsr_graph *g = NULL;
    batch b;
    view v;
    memset(&b, 0, sizeof b);
    memset(&v, 0, sizeof v);
    pthread_mutex_init(&v.mu, NULL);
    int code = EXIT_OK;
    if (!a.sets || !a.batch) {
        code = fail_before_job(json, TSR_ERR_NOMEM, NULL);
        goto done;
    }
    if ((code = parse_run_args(argc, argv, validate_only, &a, msg, sizeof msg))) {
        if (json)
            json_error_lines(TSR_ERR_INVALID, msg);
        code = usage_error(cmd, "%s", msg);
        goto done;
    }
    /* The batch's inputs are checked before the device is touched. */
    if (a.n_batch && (code = batch_inputs(&a, &b, msg, sizeof msg))) {
        code = fail_before_job(json, code == EXIT_USAGE ? TSR_ERR_INVALID : TSR_ERR_NOMEM, msg);
        goto done;
    }

    tsr_engine_options o;
    tsr_engine_options_init(&o);
    /* Validation reads headers only: it needs no device unless one is named. */
    o.device = a.device ? a.device : validate_only ? "ref" : NULL;
    tsr_status rc = TSR_OK;
    if (a.vram) {
        /* A percentage needs the device's memory: ask the default (or named) device. */
        uint64_t total = 0;
        tsr_engine *probe = NULL;
        if (strchr(a.vram, '%')) {
            rc = tsr_engine_new(&o, &probe, msg, sizeof msg);
            if (rc) {
                code = fail_before_job(json, rc, msg);
                goto done;
            }
            total = tsr_engine_device(probe)->global_mem;
            tsr_engine_free(probe);
        }
        char perr[1024];
        if (tsr_parse_size(a.vram, total, &o.vram_limit, perr, sizeof perr)) {
            snprintf(msg, sizeof msg, "--vram-limit: %s", perr);
            if (json)
                json_error_lines(TSR_ERR_INVALID, msg);
            code = usage_error(cmd, "%s", msg);
            goto done;
        }
    }
    if (a.mem) { /* a percentage is of the host's memory */
        char perr[1024];
        if (tsr_parse_size(a.mem, tsr_host_memory(), &o.mem_limit, perr, sizeof perr)) {
            snprintf(msg, sizeof msg, "--mem-limit: %s", perr);
            if (json)
                json_error_lines(TSR_ERR_INVALID, msg);
            code = usage_error(cmd, "%s", msg);
            goto done;
        }
    }
    if (!validate_only)
        install_signal_handlers();
    rc = tsr_engine_new(&o, &e, msg, sizeof msg);
    if (rc) {
        code = fail_before_job(json, rc, msg);
        goto done;
    }
    if (*tsr_engine_warnings(e))
        fprintf(stderr, "tessera: warning: %s\n", tsr_engine_warnings(e));
    atomic_store(&g_engine, e);
    rc = load_graph(e, a.graph, &g);
    if (!rc)
        rc = tsr_graph_set_many(e, g, (const char *const *)a.sets, a.n_sets);
    if (rc) {
        code = fail_before_job(json, rc, tsr_errmsg(e));
        goto done;
    }
    if (validate_only) {
        rc = tsr_graph_infer(e, g);
        if (rc)
            code = fail(rc, tsr_errmsg(e));
        else
            printf("%s: ok\n", a.graph);
    } else if (a.dry_run && !json) {
        tsr_run_options ro = {.tile_width = a.tile_w, .tile_height = a.tile_h, .dry_run = 1};
        char *text = NULL;
        rc = tsr_graph_plan_text(e, g, &ro, &text);
        if (rc)
            code = fail(rc, tsr_errmsg(e));
        else
            fputs(text, stdout);
        tsr_free(text);
    } else {
        v.json = json;
        v.tty = !a.quiet && !json && isatty(2);
        if (a.n_batch) {
            if ((code = batch_outputs(g, &a, &b, msg, sizeof msg)))
                code =
                    fail_before_job(json, code == EXIT_USAGE ? TSR_ERR_INVALID : TSR_ERR_IO, msg);
            else
                code = batch_run(e, g, &a, &b, &v);
        } else if (a.no_clobber && !a.dry_run && existing_output(g, msg, sizeof msg)) {
            code = fail_before_job(json, TSR_ERR_INVALID, msg);
        } else {
            tsr_run_options ro = {
                .tile_width = a.tile_w, .tile_height = a.tile_h, .dry_run = a.dry_run};
            job_result r;
            run_job(e, g, &ro, NULL, NULL, &v, a.stats, &r);
            if (r.rc) {
                report_failure(&a, &r, &v, "");
                code = exit_code(r.rc);
            } else if (!a.quiet && !json) {
                print_done(&v, "");
            }
            free(r.message);
        }
    }
done:
    atomic_store(&g_engine, NULL);
    unpublish();
    tsr_graph_free(g);
    tsr_engine_free(e);
    batch_free(&b);
    view_reset(&v);
    pthread_mutex_destroy(&v.mu);
    free(a.sets);
    free(a.batch);
    int sig = atomic_load(&g_signal);
    return sig ? 128 + sig : code;
}

static int cmd_nodes(int argc, char **argv)
{
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(nodes_help, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return usage_error("nodes ", "unexpected argument '%s'", argv[i]);
        }
    }
    char *doc = tsr_nodes_json();
    if (!doc)
        return fail(TSR_ERR_NOMEM, NULL);
    if (json) {
        fputs(doc, stdout);
        fputc('\n', stdout);
        tsr_free(doc);
        return EXIT_OK;
    }
    tsr_free(doc);
    char *text = tsr_nodes_text();
    if (!text)
        return fail(TSR_ERR_NOMEM, NULL);
    fputs(text, stdout);
    tsr_free(text);
    return EXIT_OK;
}

static void human_bytes(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ull << 30))
        snprintf(buf, len, "%.1f GiB", (double)b / (1ull << 30));
    else
        snprintf(buf, len, "%.0f MiB", (double)b / (1ull << 20));
}

static int cmd_devices(int argc, char **argv)
{
    if (has_help(argc, argv)) {
        fputs(devices_help, stdout);
        return EXIT_OK;
    }
    if (argc > 0)
        return usage_error("devices ", "unexpected argument '%s'", argv[0]);
    tsr_device_info *list = NULL;
    int n = 0;
    char msg[1024];
    tsr_status rc = tsr_devices_list(&list, &n, msg, sizeof msg);
    if (rc)
        return fail(rc, msg);
    int def = 0;
    for (int i = n - 1; i >= 0; i--)
        if (list[i].is_gpu)
            def = i;
    for (int i = 0; i < n; i++) {
        char mem[32], alloc[32];
        human_bytes(list[i].global_mem, mem, sizeof mem);
        human_bytes(list[i].max_alloc, alloc, sizeof alloc);
        printf("%d%s %s [%s] %s, %u compute units, global memory %s (%llu bytes), "
               "max allocation %s; %s; driver %s\n",
               i, i == def ? "*" : " ", list[i].name, list[i].is_gpu ? "GPU" : "CPU/other",
               list[i].platform, list[i].compute_units, mem, (unsigned long long)list[i].global_mem,
               alloc, list[i].version, list[i].driver);
    }
    printf("(* = default; choose with --device N or TSR_DEVICE; TSR_DEVICE=ref runs plain C)\n");
    tsr_free(list);
    return EXIT_OK;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == 0 && isfinite(*out);
}

static int cmd_compare(int argc, char **argv)
{
    if (has_help(argc, argv)) {
        fputs(compare_help, stdout);
        return EXIT_OK;
    }
    const char *paths[2] = {0};
    int np = 0;
    double max_diff = -1, min_psnr = -1, min_ssim = -2;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        double *target = strcmp(a, "--max-diff") == 0   ? &max_diff
                         : strcmp(a, "--min-psnr") == 0 ? &min_psnr
                         : strcmp(a, "--min-ssim") == 0 ? &min_ssim
                                                        : NULL;
        if (target) {
            if (i + 1 >= argc || !parse_double(argv[i + 1], target) || *target < 0)
                return usage_error("compare ", "option '%s' needs a number >= 0", a);
            i++;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("compare ", "unknown option '%s'", a);
        } else if (np < 2) {
            paths[np++] = a;
        } else {
            return usage_error("compare ", "unexpected argument '%s'", a);
        }
    }
    if (np != 2)
        return usage_error("compare ", "%s", "need two images A and B");
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = "ref"; /* comparison runs on the host: no device needed */
    tsr_engine *e = NULL;
    char msg[1024];
    tsr_status rc = tsr_engine_new(&o, &e, msg, sizeof msg);
    if (rc)
        return fail(rc, msg);
    tsr_image *a = NULL, *b = NULL;
    tsr_compare_result r;
    int code = EXIT_OK;
    rc = tsr_image_read(e, paths[0], &a);
    if (!rc)
        rc = tsr_image_read(e, paths[1], &b);
    if (!rc)
        rc = tsr_image_compare(e, a, b, &r);
    if (rc) {
        code = fail(rc, tsr_errmsg(e));
        goto done;
    }
    printf("max_abs_diff: %.6f\nmean_abs_diff: %.6f\npsnr_db: %.4f\nssim: %.6f\nlevels: %d\n",
           r.max_abs, r.mean_abs, r.psnr, r.ssim, r.levels);
    if (max_diff >= 0 && r.max_abs > max_diff) {
        if (r.levels) /* a whole number of levels */
            fprintf(stderr, "%s: compare: max difference %.0f > %g (levels of %d)\n", prog,
                    r.max_abs, max_diff, r.levels);
        else
            fprintf(stderr, "%s: compare: max difference %.6f > %g (1/255 units)\n", prog,
                    r.max_abs, max_diff);
        code = EXIT_RUNTIME;
    }
    if (min_psnr >= 0 && r.psnr < min_psnr) {
        fprintf(stderr, "%s: compare: PSNR %.4f dB < %.4f dB\n", prog, r.psnr, min_psnr);
        code = EXIT_RUNTIME;
    }
    if (min_ssim > -2 && !(r.ssim >= min_ssim)) { /* NaN (a NaN sample) fails */
        fprintf(stderr, "%s: compare: SSIM %.6f < %.6f\n", prog, r.ssim, min_ssim);
        code = EXIT_RUNTIME;
    }
done:
    tsr_image_free(a);
    tsr_image_free(b);
    tsr_engine_free(e);
    return code;
}

/* tessera op TYPE IN OUT [PARAM=VALUE...] [options]: the graph in -> TYPE -> out, then run. */
static int cmd_op(int argc, char **argv)
{
    if (argc < 1 || (argc == 1 && has_help(argc, argv))) {
        fputs(op_help, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    const char *type = argv[0];
    if (has_help(argc, argv)) { /* the node's block of `tessera nodes` */
        char *text = tsr_nodes_text();
        const char *p = text;
        size_t tl = strlen(type);
        while (p && !(strncmp(p, type, tl) == 0 && p[tl] == '\n'))
            p = (p = strchr(p, '\n')) ? p + 1 : NULL;
        if (!p) {
            tsr_free(text);
            return usage_error("op ", "unknown node type '%s' (tessera nodes lists them)", type);
        }
        const char *end = strstr(p, "\n\n");
        fputs(op_help, stdout);
        printf("\n%.*s\n", end ? (int)(end - p) : (int)strlen(p), p);
        tsr_free(text);
        return EXIT_OK;
    }
    if (argc < 3)
        return usage_error("op ", "%s: expected TYPE IN OUT [PARAM=VALUE...]", "op");
    const char **kv = calloc((size_t)argc + 1, sizeof *kv),
               **rest = calloc((size_t)argc + 2, sizeof *rest);
    if (!kv || !rest) {
        free(kv);
        free(rest);
        return fail(TSR_ERR_NOMEM, NULL);
    }
    int n_kv = 0, n_rest = 0;
    rest[n_rest++] = g_inline_name;
    for (int i = 3; i < argc; i++) {
        if (argv[i][0] == '-') { /* a run option, with its value when it takes one */
            rest[n_rest++] = argv[i];
            for (const char *const *v = value_options; *v; v++)
                if (!strcmp(argv[i], *v) && i + 1 < argc)
                    rest[n_rest++] = argv[++i];
        } else {
            kv[n_kv++] = argv[i];
        }
    }
    char msg[1024];
    g_inline_graph = tsr_graph_op_yaml(type, argv[1], argv[2], kv, n_kv, msg, sizeof msg);
    int code;
    if (!g_inline_graph)
        code = usage_error("op ", "%s", msg);
    else
        code = cmd_run(n_rest, (char **)rest, 0);
    tsr_free(g_inline_graph);
    g_inline_graph = NULL;
    free(kv);
    free(rest);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main_help, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_help, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("tessera %s\n", tsr_version());
        return EXIT_OK;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2, 0);
    if (strcmp(cmd, "validate") == 0)
        return cmd_run(argc - 2, argv + 2, 1);
    if (strcmp(cmd, "nodes") == 0)
        return cmd_nodes(argc - 2, argv + 2);
    if (strcmp(cmd, "devices") == 0)
        return cmd_devices(argc - 2, argv + 2);
    if (strcmp(cmd, "compare") == 0)
        return cmd_compare(argc - 2, argv + 2);
    if (strcmp(cmd, "op") == 0)
        return cmd_op(argc - 2, argv + 2);
    fprintf(stderr, "%s: unknown command '%s'\n\n%s", prog, cmd, main_help);
    return EXIT_USAGE;
}
