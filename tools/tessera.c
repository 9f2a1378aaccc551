/* tessera: the command-line program over the library (engine/tessera.h).
 *
 * Exit codes: 0 ok; 1 runtime error (I/O, decode, a compare threshold failed); 2 usage or graph
 * error; 3 device error (no device, kernel build, OpenCL failure, out of device memory);
 * 4 cancelled (SIGINT). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

static const char *main_help =
    "usage: tessera COMMAND [ARGS]\n"
    "\n"
    "Run node graphs of image operations as OpenCL kernels.\n"
    "\n"
    "commands:\n"
    "  run GRAPH        run a YAML graph file\n"
    "  validate GRAPH   check a graph (syntax, nodes, params, links, image headers)\n"
    "  nodes            list node types with their ports and params (--json for GUIs)\n"
    "  devices          list OpenCL devices with their memory\n"
    "  compare A B      compare two images (max/mean difference, PSNR, SSIM)\n"
    "\n"
    "options: --help, --version. 'tessera COMMAND --help' describes each command.\n"
    "environment: TSR_DEVICE (ref | N | name), TSR_CACHE_DIR (kernel binaries),\n"
    "  TSR_MAX_PIXELS (largest image accepted, default 268435456).\n"
    "exit codes: 0 ok, 1 runtime error, 2 usage or graph error, 3 device error,\n"
    "  4 cancelled.\n";

static const char *run_help =
    "usage: tessera run GRAPH [options]\n"
    "       tessera validate GRAPH [options]\n"
    "\n"
    "  --set NODE.PARAM=VALUE  override a param (repeatable)\n"
    "  --device D              OpenCL device: index, part of its name, or 'ref' (plain C)\n"
    "  --vram-limit SIZE       device memory budget: 512M, 2G, 1.5GiB, or 60%% of the\n"
    "                          device's memory (default: all but max(256 MiB, 10%%))\n"
    "  --tile WxH              force the tile size (default: the largest that fits)\n"
    "  --dry-run               print the plan (stages, tiles, estimated memory) and stop\n"
    "  --json                  events as JSON lines on stdout (plan, stage, downgrade, done)\n"
    "  -q, --quiet             no progress line\n"
    "  --stats                 print run statistics to stderr as 'key: value' lines\n"
    "  --help                  this text\n";

static const char *compare_help =
    "usage: tessera compare A B [--max-diff N] [--min-psnr DB] [--min-ssim S]\n"
    "\n"
    "Decodes both images (PNG or JPEG, any depth) and prints the largest and mean absolute\n"
    "difference on the 0..255 scale, PSNR (dB, peak 1) and SSIM (Gaussian window 11x11,\n"
    "sigma 1.5). Exits 1 when a threshold fails, 2 when the images differ in shape.\n";

static const char *nodes_help = "usage: tessera nodes [--json]\n";
static const char *devices_help = "usage: tessera devices\n";

static int has_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static tsr_engine *g_engine;

static void on_sigint(int sig)
{
    (void)sig;
    if (g_engine)
        tsr_engine_interrupt(g_engine);
}

typedef struct progress_state {
    int tty;
    int json;
} progress_state;

static void on_event(void *user, const tsr_event *ev)
{
    progress_state *st = user;
    if (st->json) {
        fputs(ev->json, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        return;
    }
    if (!st->tty || ev->type != TSR_EV_NODE_PROGRESS)
        return;
    fprintf(stderr, "\r\033[K[%d/%d] %s (%s) %3.0f%%  %.1fs", ev->node_index + 1, ev->node_count,
            ev->node, ev->node_type, ev->progress * 100, ev->elapsed_s);
    fflush(stderr);
}

static int cmd_run(int argc, char **argv, int validate_only)
{
    const char *cmd = validate_only ? "validate " : "run ";
    if (has_help(argc, argv)) {
        fputs(run_help, stdout);
        return EXIT_OK;
    }
    const char *graph_path = NULL, *device = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, quiet = 0, stats = 0, dry_run = 0, json = 0, tile_w = 0, tile_h = 0;
    const char *vram = NULL;
    char junk;
    if (!sets)
        return fail(TSR_ERR_NOMEM, NULL);
    int code = EXIT_OK;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--set") == 0 || strcmp(a, "--device") == 0 ||
            strcmp(a, "--vram-limit") == 0 || strcmp(a, "--tile") == 0) {
            if (i + 1 >= argc) {
                code = usage_error(cmd, "option '%s' needs a value", a);
                goto done;
            }
            const char *v = argv[++i];
            if (a[2] == 's')
                sets[n_sets++] = v;
            else if (a[2] == 'd')
                device = v;
            else if (a[2] == 'v')
                vram = v;
            else if (sscanf(v, "%dx%d%c", &tile_w, &tile_h, &junk) != 2 || tile_w < 1 ||
                     tile_h < 1) {
                code = usage_error(cmd, "--tile needs WxH with positive sizes, got '%s'", v);
                goto done;
            }
        } else if (strcmp(a, "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[n_sets++] = a + 6;
        } else if (strncmp(a, "--device=", 9) == 0) {
            device = a + 9;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--stats") == 0) {
            stats = 1;
        } else if (a[0] == '-' && a[1]) {
            code = usage_error(cmd, "unknown option '%s'", a);
            goto done;
        } else if (!graph_path) {
            graph_path = a;
        } else {
            code = usage_error(cmd, "unexpected argument '%s'", a);
            goto done;
        }
    }
    if (!graph_path) {
        code = usage_error(cmd, "%s", "missing GRAPH file");
        goto done;
    }

    tsr_engine_options o;
    tsr_engine_options_init(&o);
    /* Validation reads headers only: it needs no device unless one is named. */
    o.device = device ? device : validate_only ? "ref" : NULL;
    char msg[2048];
    tsr_engine *e = NULL;
    tsr_graph *g = NULL;
    tsr_status rc = TSR_OK;
    if (vram) {
        /* A percentage needs the device's memory: ask the default (or named) device. */
        uint64_t total = 0;
        tsr_engine *probe = NULL;
        if (strchr(vram, '%')) {
            rc = tsr_engine_new(&o, &probe, msg, sizeof msg);
            if (rc) {
                code = fail(rc, msg);
                goto done;
            }
            total = tsr_engine_device(probe)->global_mem;
            tsr_engine_free(probe);
        }
        if (tsr_parse_size(vram, total, &o.vram_limit, msg, sizeof msg)) {
            code = usage_error(cmd, "--vram-limit: %s", msg);
            goto done;
        }
    }
    rc = tsr_engine_new(&o, &e, msg, sizeof msg);
    if (rc) {
        code = fail(rc, msg);
        goto done;
    }
    g_engine = e;
    rc = tsr_graph_load_file(e, graph_path, &g);
    for (int i = 0; !rc && i < n_sets; i++)
        rc = tsr_graph_set(e, g, sets[i]);
    if (!rc)
        rc = tsr_graph_infer(e, g);
    if (!rc && validate_only)
        printf("%s: ok\n", graph_path);
    if (!rc && !validate_only && dry_run && !json) {
        tsr_run_options ro = {.tile_width = tile_w, .tile_height = tile_h, .dry_run = 1};
        char *text = NULL;
        rc = tsr_graph_plan_text(e, g, &ro, &text);
        if (!rc)
            fputs(text, stdout);
        tsr_free(text);
    } else if (!rc && !validate_only) {
        progress_state ps = {!quiet && !json && isatty(2), json};
        tsr_run_options ro = {.event = on_event, .user = &ps, .tile_width = tile_w,
                              .tile_height = tile_h, .dry_run = dry_run};
        signal(SIGINT, on_sigint);
        rc = tsr_graph_run(e, g, &ro);
        signal(SIGINT, SIG_DFL);
        if (ps.tty && rc)
            fputc('\n', stderr);
        if (stats) {
            char *s = tsr_engine_stats(e);
            struct rusage ru;
            long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
            fprintf(stderr, "device: %s\n%sprocess.peak_rss_bytes: %lld\n",
                    tsr_engine_device(e)->name, s ? s : "", (long long)rss * 1024);
            tsr_free(s);
        }
    }
    if (rc)
        code = fail(rc, tsr_errmsg(e));
    g_engine = NULL;
    tsr_graph_free(g);
    tsr_engine_free(e);
done:
    free(sets);
    return code;
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
    printf("max_abs_diff: %.6f\nmean_abs_diff: %.6f\npsnr_db: %.4f\nssim: %.6f\n", r.max_abs,
           r.mean_abs, r.psnr, r.ssim);
    if (max_diff >= 0 && r.max_abs > max_diff) {
        fprintf(stderr, "%s: compare: max difference %.6f > %.6f\n", prog, r.max_abs, max_diff);
        code = EXIT_RUNTIME;
    }
    if (min_psnr >= 0 && r.psnr < min_psnr) {
        fprintf(stderr, "%s: compare: PSNR %.4f dB < %.4f dB\n", prog, r.psnr, min_psnr);
        code = EXIT_RUNTIME;
    }
    if (min_ssim > -2 && !(r.ssim >= min_ssim)) { /* NaN (images under 11x11) fails */
        fprintf(stderr, "%s: compare: SSIM %.6f < %.6f\n", prog, r.ssim, min_ssim);
        code = EXIT_RUNTIME;
    }
done:
    tsr_image_free(a);
    tsr_image_free(b);
    tsr_engine_free(e);
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
    fprintf(stderr, "%s: unknown command '%s'\n\n%s", prog, cmd, main_help);
    return EXIT_USAGE;
}
