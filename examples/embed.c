/* embed: a small program embedding Tessera through its public API (engine/tessera.h) only.
 *
 * It loads a graph file that has an image.input node "in" and an image.output node "out"
 * (examples/invert.yaml, examples/blur.yaml), hands it an image held in memory (generated
 * pixels, or a PNG/JPEG decoded with tsr_image_read), runs it as a job on a thread of the
 * engine's, shows progress from the job's events, cancels on a key press, Ctrl-C or a timeout,
 * and converts the output to 8-bit RGBA in its own buffer for a checksum.
 *
 *   build/examples/embed examples/invert.yaml                  # a generated 640x480 image
 *   build/examples/embed examples/blur.yaml photo.png --set soft.sigma=8
 *   TSR_DEVICE=ref build/examples/embed examples/blur.yaml --size 4000x3000 --timeout 500
 *
 * Build against a checkout:  cc embed.c $(PKG_CONFIG_PATH=build pkg-config --cflags --libs
 * tessera-uninstalled); once installed: cc embed.c $(pkg-config --cflags --libs tessera).
 * Exit codes as the tessera command: 0 ok, 1 runtime error, 2 usage or graph error, 3 device
 * error, 4 cancelled. See docs/EMBEDDING.md for the rules this program follows. */
#define _POSIX_C_SOURCE 200809L /* poll, sigaction, termios, clock_gettime */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tessera.h"

static const char *const IN_NODE = "in", *const OUT_NODE = "out";

static int exit_code(tsr_status rc)
{
    switch (rc) {
    case TSR_OK: return 0;
    case TSR_ERR_GRAPH:
    case TSR_ERR_INVALID: return 2;
    case TSR_ERR_DEVICE:
    case TSR_ERR_DEVICE_NOMEM:
    case TSR_ERR_BUILD:
    case TSR_ERR_NO_DEVICE: return 3;
    case TSR_ERR_CANCELLED: return 4;
    default: return 1;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- events ------------------------------------------------------------------------------
 * The callback runs on the job's thread, one event at a time. It only prints here; it must not
 * block for long (the job waits for it) and must not free the job. Strings in the event are
 * valid during the call only: copy what must outlive it. */

typedef struct progress_view {
    int tty;   /* stderr is a terminal: redraw one line instead of printing one per event */
    int quiet; /* --quiet: no progress at all */
} progress_view;

static void on_event(void *user, const tsr_event *ev)
{
    const progress_view *pv = user;
    if (pv->quiet)
        return;
    switch (ev->type) {
    case TSR_EV_NODE_START:
        fprintf(stderr, "%snode %d/%d '%s' (%s)\n", pv->tty ? "\r\033[K" : "", ev->node_index + 1,
                ev->node_count, ev->node, ev->node_type);
        break;
    case TSR_EV_NODE_PROGRESS: /* at most every 50 ms per node */
        fprintf(stderr, "%s  '%s' %5.1f%% (%" PRId64 "/%" PRId64 ")", pv->tty ? "\r\033[K" : "",
                ev->node, ev->progress * 100.0, ev->index, ev->total);
        if (ev->eta_s >= 0)
            fprintf(stderr, ", %.1f s left", ev->eta_s);
        fputs(pv->tty ? "" : "\n", stderr);
        break;
    case TSR_EV_NODE_FINISH:
        fprintf(stderr, "%s  '%s' done in %.3f s\n", pv->tty ? "\r\033[K" : "", ev->node,
                ev->seconds);
        break;
    case TSR_EV_JOB_ERROR:
        fprintf(stderr, "%serror%s%s: %s\n", pv->tty ? "\r\033[K" : "", ev->node ? " in " : "",
                ev->node ? ev->node : "", ev->message);
        break;
    default: break; /* chain-start, finish, plan, stage...: ev->json has every field */
    }
}

/* ---- cancelling ----------------------------------------------------------------------------
 * tsr_job_cancel() may be called from any thread, and is even async-signal safe. Here the
 * Ctrl-C handler only raises a flag that the waiting loop in main() turns into a cancel: the
 * signal may land on any thread of the process (the engine's and the OpenCL driver's too),
 * and the flag keeps the handler trivially safe whatever the job's state. */

static volatile sig_atomic_t got_sigint;

static void on_sigint(int sig)
{
    (void)sig;
    got_sigint = 1;
}

/* On a terminal, read single key presses (no Enter needed, no echo); restored at the end. */
static struct termios saved_tio;
static int tio_saved;

static void keys_begin(void)
{
    struct termios t;
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return;
    t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
        tio_saved = 1;
}

static void keys_end(void)
{
    if (tio_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
    tio_saved = 0;
}

/* 1 when a key was pressed (any byte on stdin). At end of input (stdin is /dev/null, or a
 * pipe closed without data) stdin is not watched any more: only a real key cancels. */
static int key_pressed(int *watch_stdin)
{
    if (!*watch_stdin)
        return 0;
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    char c;
    ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n == 1)
        return 1;
    if (n == 0 || (errno != EINTR && errno != EAGAIN))
        *watch_stdin = 0;
    return 0;
}

/* ---- pixels -------------------------------------------------------------------------------- */

/* A test pattern, 8-bit RGBA interleaved: red grows left to right, green top to bottom, blue
 * is a checkerboard of 32-pixel squares, alpha opaque. */
static unsigned char *make_pattern(int w, int h)
{
    unsigned char *p = malloc((size_t)w * (size_t)h * 4);
    if (!p)
        return NULL;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *q = p + ((size_t)y * (size_t)w + (size_t)x) * 4;
            q[0] = (unsigned char)(w > 1 ? x * 255 / (w - 1) : 0);
            q[1] = (unsigned char)(h > 1 ? y * 255 / (h - 1) : 0);
            q[2] = ((x / 32 + y / 32) & 1) ? 200 : 50;
            q[3] = 255;
        }
    return p;
}

/* The free_fn of TSR_HANDOVER: called once, on whichever thread the engine is done on. */
static void free_pixels(void *data, void *free_user)
{
    (void)free_user;
    free(data);
}

/* The output image as 8-bit RGBA. tsr_image_to_pixels converts to the image's own channel
 * count (clamped and rounded), at any row stride; gray and gray+alpha are then spread to RGBA
 * and a missing alpha made opaque. */
static tsr_status to_rgba8(const tsr_image *img, unsigned char **out)
{
    int w = tsr_image_width(img), h = tsr_image_height(img), c = tsr_image_channels(img);
    size_t n = (size_t)w * (size_t)h;
    unsigned char *rgba = malloc(n * 4), *tmp = c == 4 ? rgba : malloc(n * (size_t)c);
    tsr_status rc = TSR_ERR_NOMEM;
    if (!rgba || !tmp)
        goto fail;
    tsr_pixels px = {.data = tmp,
                     .width = w,
                     .height = h,
                     .channels = c,
                     .sample = TSR_SAMPLE_U8,
                     .stride = (size_t)w * (size_t)c};
    if ((rc = tsr_image_to_pixels(img, &px)))
        goto fail;
    if (c != 4)
        for (size_t i = 0; i < n; i++) {
            const unsigned char *s = tmp + i * (size_t)c;
            unsigned char *d = rgba + i * 4;
            d[0] = s[0];
            d[1] = c >= 3 ? s[1] : s[0];
            d[2] = c >= 3 ? s[2] : s[0];
            d[3] = c == 2 ? s[1] : 255;
        }
    if (tmp != rgba)
        free(tmp);
    *out = rgba;
    return TSR_OK;
fail:
    if (tmp != rgba)
        free(tmp);
    free(rgba);
    return rc;
}

static void print_rgba(const char *what, const unsigned char *p, int w, int h)
{
    /* Per-channel means (a checkable number: invert gives 255 - the input's on R, G, B) and an
     * FNV-1a hash of every byte. */
    double sum[4] = {0, 0, 0, 0};
    uint64_t hash = 14695981039346656037u;
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n * 4; i++) {
        sum[i & 3] += p[i];
        hash = (hash ^ p[i]) * 1099511628211u;
    }
    printf("%s: %dx%d RGBA8 mean %.3f %.3f %.3f %.3f fnv1a64 %016" PRIx64 "\n", what, w, h,
           sum[0] / (double)n, sum[1] / (double)n, sum[2] / (double)n, sum[3] / (double)n, hash);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: embed GRAPH.yaml [IMAGE] [--size WxH] [--timeout MS] [--set NODE.PARAM=V]...\n"
            "             [--tile WxH] [--device NAME] [--quiet]\n"
            "GRAPH has an image.input node 'in' and an image.output node 'out'. Without IMAGE\n"
            "a WxH test pattern (default 640x480) is generated. A key press, Ctrl-C or the\n"
            "timeout cancels the run.\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *graph_path = NULL, *image_path = NULL, *device = NULL;
    const char *sets[32];
    int n_sets = 0, w = 640, h = 480, tile_w = 0, tile_h = 0, quiet = 0;
    long timeout_ms = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--size") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &w, &h) != 2 || w < 1 || h < 1)
                return usage();
        } else if (strcmp(a, "--tile") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &tile_w, &tile_h) != 2 || tile_w < 1 || tile_h < 1)
                return usage();
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout_ms = strtol(argv[++i], &end, 10);
            if (*end || timeout_ms < 0)
                return usage();
        } else if (strcmp(a, "--set") == 0 && i + 1 < argc && n_sets < 32) {
            sets[n_sets++] = argv[++i];
        } else if (strcmp(a, "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = 1;
        } else if (a[0] == '-') {
            return usage();
        } else if (!graph_path) {
            graph_path = a;
        } else if (!image_path) {
            image_path = a;
        } else {
            return usage();
        }
    }
    if (!graph_path)
        return usage();

    tsr_engine *e = NULL;
    tsr_graph *g = NULL;
    tsr_job *job = NULL;
    tsr_image *in_img = NULL, *out_img = NULL;
    unsigned char *rgba = NULL;
    const char *cancel_reason = NULL;
    tsr_status rc;

    /* One engine per process is the usual shape: it holds the device, the memory pool and the
     * compiled kernels, and any number of jobs share it. */
    tsr_engine_options eo;
    tsr_engine_options_init(&eo);
    eo.device = device; /* NULL: $TSR_DEVICE, else the first GPU, else the first device */
    char msg[1024] = "";
    if ((rc = tsr_engine_new(&eo, &e, msg, sizeof msg))) {
        fprintf(stderr, "embed: %s\n", msg[0] ? msg : tsr_status_str(rc));
        return exit_code(rc);
    }
    printf("device: %s\n", tsr_engine_device(e)->name);

    /* Graph errors come back as "file:line:col: error: ..." lines in tsr_errmsg(e). */
    if ((rc = tsr_graph_load_file(e, graph_path, &g)))
        goto fail_engine_msg;
    for (int i = 0; i < n_sets; i++)
        if ((rc = tsr_graph_set(e, g, sets[i])))
            goto fail_engine_msg;

    progress_view pv = {.tty = isatty(STDERR_FILENO), .quiet = quiet};
    /* A forced tile size is for experiments: by default the planner picks the largest tile that
     * fits the device budget. Smaller tiles mean more progress events and cancel points. */
    tsr_run_options ro = {
        .event = on_event, .user = &pv, .tile_width = tile_w, .tile_height = tile_h};
    if ((rc = tsr_job_new(e, g, &ro, &job)))
        goto fail_engine_msg;
    /* The job took a snapshot: the graph may go now (or be edited for the next job). */
    tsr_graph_free(g);
    g = NULL;

    if (image_path) {
        /* A decoded file is already a tsr_image (float planar): bind it as it is. */
        if ((rc = tsr_image_read(e, image_path, &in_img)) ||
            (rc = tsr_job_bind_image(job, IN_NODE, in_img)))
            goto fail_engine_msg;
        printf("input: %s, %dx%d, %d channels\n", image_path, tsr_image_width(in_img),
               tsr_image_height(in_img), tsr_image_channels(in_img));
    } else {
        unsigned char *pattern = make_pattern(w, h);
        if (!pattern) {
            rc = TSR_ERR_NOMEM;
            fprintf(stderr, "embed: out of memory\n");
            goto done;
        }
        print_rgba("input", pattern, w, h);
        /* Interleaved 8-bit RGBA, rows packed (stride 0 means width * channels * 1). With
         * TSR_HANDOVER the engine owns the buffer from here and calls free() on it when done
         * (also if this call fails); TSR_COPY would copy it now and leave it to us. */
        tsr_pixels px = {.data = pattern,
                         .width = w,
                         .height = h,
                         .channels = 4,
                         .sample = TSR_SAMPLE_U8,
                         .stride = 0};
        if ((rc = tsr_job_bind_input(job, IN_NODE, &px, TSR_HANDOVER, free_pixels, NULL)))
            goto fail_engine_msg;
    }

    /* Ctrl-C cancels the job (and ends this program cleanly) rather than killing the process. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    if ((rc = tsr_job_start(job)))
        goto fail_engine_msg;
    keys_begin();
    if (isatty(STDIN_FILENO) && !quiet)
        fprintf(stderr, "press any key to cancel\n");

    /* The job runs on its own thread; this one waits in short slices so that it can watch the
     * keyboard and the clock meanwhile. tsr_job_wait returns TSR_ERR_BUSY while it runs. */
    int watch_stdin = 1;
    double t0 = now_s();
    for (;;) {
        int slice = 50;
        if (timeout_ms >= 0 && !cancel_reason) {
            double left = (double)timeout_ms - (now_s() - t0) * 1000.0;
            slice = left < 0 ? 0 : left < slice ? (int)left : slice;
        }
        rc = tsr_job_wait(job, slice);
        if (rc != TSR_ERR_BUSY)
            break;
        if (cancel_reason)
            continue; /* asked already; a cancel takes effect within about 100 ms */
        if (got_sigint)
            cancel_reason = "Ctrl-C";
        else if (key_pressed(&watch_stdin))
            cancel_reason = "key pressed";
        else if (timeout_ms >= 0 && (now_s() - t0) * 1000.0 >= (double)timeout_ms)
            cancel_reason = "timeout";
        if (cancel_reason)
            tsr_job_cancel(job);
    }
    keys_end();

    tsr_job_stats st;
    tsr_job_get_stats(job, &st);
    if (rc == TSR_ERR_CANCELLED) {
        printf("cancelled (%s) after %.3f s: %s\n", cancel_reason ? cancel_reason : "by the engine",
               now_s() - t0, tsr_job_message(job));
        goto done;
    }
    if (rc) {
        fprintf(stderr, "embed: %s\n", tsr_job_message(job));
        goto done;
    }
    printf("done in %.3f s: %d nodes run, %" PRId64 " tiles\n", st.seconds, st.nodes_run, st.tiles);

    /* The image.output node's image: a new reference, float planar; ours to free. */
    if ((rc = tsr_job_output(job, OUT_NODE, &out_img)))
        goto fail_engine_msg;
    if ((rc = to_rgba8(out_img, &rgba))) {
        fprintf(stderr, "embed: converting the output: %s\n", tsr_status_str(rc));
        goto done;
    }
    print_rgba("output", rgba, tsr_image_width(out_img), tsr_image_height(out_img));
    goto done;

fail_engine_msg:
    fprintf(stderr, "embed: %s\n", tsr_errmsg(e)[0] ? tsr_errmsg(e) : tsr_status_str(rc));
done:
    keys_end();
    free(rgba);
    tsr_image_free(out_img);
    tsr_image_free(in_img);
    tsr_job_free(job); /* cancels and waits if still running */
    tsr_graph_free(g);
    tsr_engine_free(e);
    return exit_code(rc);
}
