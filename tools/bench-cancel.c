/* make bench: how fast a cancel takes effect. For each slow workload, one full run gives its
 * duration T; then cancels land at uniformly random times in [0.05 T, 0.9 T] after the start and
 * the time from tsr_job_cancel to the return of tsr_job_wait is measured. Prints the median, the
 * 90th percentile and the worst per workload and over all of them (50 cancels by default).
 *
 * Workloads (the engine's default device, or $TSR_DEVICE):
 *   blur     one untiled Gaussian blur (sigma 40) of a 3000x2000 RGB image held in memory:
 *            one long kernel launch, cut into slices
 *   network  realesr-animevideov3 x2 on a 256x256 image: layers of a network
 *   decode   image.load of a 4000x3000 16-bit RGB PNG
 *   encode   image.save of a 3000x2000 16-bit RGB image at zlib level 9
 *
 * Usage: bench-cancel [CANCELS] [MODELS_DIR]   (defaults: 50, ../shared/models) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tessera.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static tsr_image *random_image(int w, int h, int c)
{
    tsr_image *img;
    if (tsr_image_new(w, h, c, &img))
        return NULL;
    float *d = tsr_image_data(img);
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        d[i] = (float)uniform();
    return img;
}

typedef struct workload {
    const char *name;
    char yaml[4096];
    tsr_image *bind; /* bound to node "in", or NULL */
    double full;     /* seconds of a full run */
    double lat[256];
    int n;
} workload;

static tsr_status run_job(tsr_engine *e, tsr_graph *g, workload *w, double cancel_at, double *lat)
{
    tsr_job *j;
    tsr_run_options o = {0};
    if (w->bind)
        o.tile_width = o.tile_height = 1 << 14; /* untiled */
    tsr_status rc = tsr_job_new(e, g, &o, &j);
    if (!rc && w->bind)
        rc = tsr_job_bind_image(j, "in", w->bind);
    if (!rc)
        rc = tsr_job_start(j);
    if (rc) {
        fprintf(stderr, "bench-cancel: %s: %s\n", w->name, tsr_errmsg(e));
        tsr_job_free(j);
        return rc;
    }
    if (cancel_at > 0) {
        sleep_s(cancel_at);
        double t0 = now_s();
        tsr_job_cancel(j);
        rc = tsr_job_wait(j, -1);
        *lat = now_s() - t0;
    } else {
        rc = tsr_job_wait(j, -1);
    }
    if (rc && rc != TSR_ERR_CANCELLED)
        fprintf(stderr, "bench-cancel: %s: %s\n", w->name, tsr_job_message(j));
    tsr_job_free(j);
    return rc;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void row(const char *name, double full, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    printf("%-10s %8.0f %7d %9.1f %9.1f %9.1f\n", name, full * 1e3, n, v[n / 2] * 1e3,
           v[(int)(0.9 * (n - 1))] * 1e3, v[n - 1] * 1e3);
}

int main(int argc, char **argv)
{
    int cancels = argc > 1 ? atoi(argv[1]) : 50;
    const char *models = argc > 2 ? argv[2] : "../shared/models";
    if (cancels < 4 || cancels > 1000) {
        fprintf(stderr, "usage: bench-cancel [CANCELS 4..1000] [MODELS_DIR]\n");
        return 2;
    }
    char msg[1024], tmp[] = "/tmp/tessera-bench-cancel-XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    tsr_engine *e;
    if (tsr_engine_new(NULL, &e, msg, sizeof msg)) {
        fprintf(stderr, "bench-cancel: %s\n", msg);
        return 1;
    }
    /* The inputs: a 16-bit PNG to decode and a 256x256 PNG for the network. */
    char big[600], small[600];
    snprintf(big, sizeof big, "%s/big.png", tmp);
    snprintf(small, sizeof small, "%s/small.png", tmp);
    tsr_save_options so;
    tsr_save_options_init(&so);
    so.bit_depth = 16;
    so.compression = 1;
    tsr_image *img = random_image(4000, 3000, 3), *img2 = random_image(256, 256, 3);
    if (!img || !img2 || tsr_image_write(e, img, big, &so) ||
        tsr_image_write(e, img2, small, &so)) {
        fprintf(stderr, "bench-cancel: cannot write the inputs: %s\n", tsr_errmsg(e));
        return 1;
    }
    tsr_image_free(img);
    tsr_image_free(img2);
    static workload w[4];
    w[0].name = "blur";
    w[0].bind = random_image(3000, 2000, 3);
    snprintf(w[0].yaml, sizeof w[0].yaml,
             "version: 1\nnodes:\n  in: { type: image.input }\n"
             "  b: { type: blur.gaussian, inputs: { image: in.image }, params: { sigma: 40 } }\n"
             "  out: { type: image.output, inputs: { image: b.image } }\n");
    w[1].name = "network";
    snprintf(w[1].yaml, sizeof w[1].yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  net: { type: model.load, params: { path: '%s/realesr-animevideov3' } }\n"
             "  up: { type: upscale, inputs: { image: src.image, model: net.model } }\n"
             "  out: { type: image.output, inputs: { image: up.image } }\n",
             small, models);
    w[2].name = "decode";
    snprintf(w[2].yaml, sizeof w[2].yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  out: { type: image.output, inputs: { image: src.image } }\n",
             big);
    w[3].name = "encode";
    w[3].bind = random_image(3000, 2000, 3);
    snprintf(w[3].yaml, sizeof w[3].yaml,
             "version: 1\nnodes:\n  in: { type: image.input }\n"
             "  out: { type: image.save, inputs: { image: in.image },"
             " params: { path: '%s/out.png', compression: 9, bit_depth: 16 } }\n",
             tmp);
    /* The network's folder holds x2, x3 and x4: name the x2 file. */
    char *p = strstr(w[1].yaml, "realesr-animevideov3'");
    if (p) {
        char rest[4096];
        snprintf(rest, sizeof rest, "%s", p + strlen("realesr-animevideov3'"));
        snprintf(p, sizeof w[1].yaml - (size_t)(p - w[1].yaml),
                 "realesr-animevideov3/realesr-animevideov3-x2.param'%s", rest);
    }
    int nw = 4;
    double all[1024];
    int n_all = 0;
    printf("cancel latency (ms), %d cancels at random points of each run, device: %s\n", cancels,
           tsr_engine_device(e)->name);
    printf("%-10s %8s %7s %9s %9s %9s\n", "workload", "run_ms", "cancels", "median", "p90",
           "worst");
    for (int k = 0; k < nw; k++) {
        tsr_graph *g;
        if (tsr_graph_load_string(e, w[k].yaml, w[k].name, &g)) {
            printf("%-10s n/a (%s)\n", w[k].name, tsr_errmsg(e));
            continue;
        }
        double t0 = now_s();
        if (run_job(e, g, &w[k], 0, NULL)) { /* warm: kernels, model */
            tsr_graph_free(g);
            continue;
        }
        t0 = now_s();
        run_job(e, g, &w[k], 0, NULL);
        w[k].full = now_s() - t0;
        int per = cancels / nw + (k < cancels % nw);
        for (int i = 0; i < per; i++) {
            double lat = 0;
            tsr_status rc = run_job(e, g, &w[k], w[k].full * (0.05 + 0.85 * uniform()), &lat);
            if (rc == TSR_ERR_CANCELLED || rc == TSR_OK) /* OK: it ended before the cancel */
                w[k].lat[w[k].n++] = lat;
        }
        memcpy(all + n_all, w[k].lat, (size_t)w[k].n * sizeof(double));
        n_all += w[k].n;
        row(w[k].name, w[k].full, w[k].lat, w[k].n);
        tsr_graph_free(g);
    }
    if (n_all)
        row("all", 0, all, n_all);
    for (int k = 0; k < nw; k++)
        tsr_image_free(w[k].bind);
    tsr_engine_free(e);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-cancel: could not remove %s\n", tmp);
    return 0;
}
