/* Jobs: lifecycle (cancel before start, twice, after the end, free while running), cancel
 * latency on deliberately slow graphs (one huge untiled kernel, a network layer, a PNG decode, a
 * PNG encode) with what a cancel must leave behind, several threads submitting jobs to one
 * engine under one budget, the event vocabulary, in-memory inputs and outputs, previews and the
 * result cache. Loose time bounds only (1 s for a cancel); `make bench` measures the real
 * latency distribution. This file is also what `make test-tsan` runs under ThreadSanitizer. */
#include <dirent.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "graphrun.h"
#include "job.h"

static char dir[512];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    gr_mkdtemp(dir, sizeof dir, "jobs");
    return 0;
}

static int teardown(void **state)
{
    gr_rmdir(dir);
    return 0;
}

/* Temporary files an encoder left in dir (names starting with '.'). */
static int hidden_files(const char *d)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *de; (de = readdir(dp));)
        n += de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(dp);
    return n;
}

static tsr_graph *load(tsr_engine *e, const char *yaml)
{
    tsr_graph *g = NULL;
    if (tsr_graph_load_string(e, yaml, "job.yaml", &g))
        fail_msg("graph: %s\n%s", tsr_errmsg(e), yaml);
    return g;
}

static uint64_t in_use(tsr_engine *e)
{
    tsr_pool_stats st;
    assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
    return st.in_use_bytes;
}

static const char *invert_yaml = "version: 1\nnodes:\n"
                                 "  in: { type: image.input }\n"
                                 "  inv: { type: adjust.invert, inputs: { image: in.image } }\n"
                                 "  out: { type: image.output, inputs: { image: inv.image } }\n";

/* ---- events ------------------------------------------------------------------------------- */

#define MAX_EV 4096

typedef struct ev_log {
    pthread_mutex_t mu;
    int n;
    tsr_event_type type[MAX_EV];
    char node[MAX_EV][32];
    double t[MAX_EV];
    char last_json[2048];
    char error_json[2048];
    tsr_job *cancel_on_progress; /* cancel this job at the first node-progress */
} ev_log;

static void log_event(void *user, const tsr_event *ev)
{
    ev_log *l = user;
    pthread_mutex_lock(&l->mu);
    if (l->n < MAX_EV) {
        l->type[l->n] = ev->type;
        snprintf(l->node[l->n], sizeof l->node[0], "%s", ev->node ? ev->node : "");
        l->t[l->n] = ev->elapsed_s;
        l->n++;
    }
    snprintf(l->last_json, sizeof l->last_json, "%s", ev->json);
    if (ev->type == TSR_EV_JOB_ERROR)
        snprintf(l->error_json, sizeof l->error_json, "%s", ev->json);
    pthread_mutex_unlock(&l->mu);
    if (ev->type == TSR_EV_NODE_PROGRESS && l->cancel_on_progress)
        tsr_job_cancel(l->cancel_on_progress);
}

static void ev_init(ev_log *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* image.input -> invert -> image.output: the output is 1 - x exactly; the job's calls in every
 * state answer as documented. */
static void lifecycle_and_memory_io(void **state)
{
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = load(e, invert_yaml);
    tsr_image *src = tu_random_image(77, 45, 3, 7);
    tsr_job *j;
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    tsr_graph_free(g); /* the job has its own snapshot */
    assert_int_equal(tsr_job_status(j), TSR_ERR_INVALID);
    assert_int_equal(tsr_job_wait(j, 0), TSR_ERR_INVALID);
    assert_false(tsr_job_is_running(j));
    assert_int_equal(tsr_job_bind_image(j, "nope", src), TSR_ERR_INVALID);
    assert_int_equal(tsr_job_bind_image(j, "inv", src), TSR_ERR_INVALID); /* not a source */
    assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_ERR_BUSY);
    assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_ERR_BUSY);
    assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
    assert_int_equal(tsr_job_status(j), TSR_OK);
    assert_false(tsr_job_is_running(j));
    tsr_job_cancel(j); /* after the end: changes nothing */
    tsr_job_cancel(j);
    assert_int_equal(tsr_job_status(j), TSR_OK);
    assert_string_equal(tsr_job_message(j), "");
    tsr_image *out = NULL;
    assert_int_equal(tsr_job_output(j, "out", &out), TSR_OK);
    assert_int_equal(out->width, 77);
    assert_int_equal(out->height, 45);
    size_t n = (size_t)77 * 45 * 3;
    for (size_t i = 0; i < n; i++)
        if (out->data[i] != 1.0f - src->data[i])
            fail_msg("sample %zu: %g, expected %g", i, out->data[i], 1.0f - src->data[i]);
    tsr_image_free(out);
    assert_int_equal(tsr_job_output(j, "inv", &out), TSR_ERR_INVALID); /* not kept */
    assert_null(out);
    tsr_job_stats st;
    tsr_job_get_stats(j, &st);
    assert_int_equal(st.nodes, 3);
    assert_int_equal(st.nodes_run, 3);
    assert_int_equal(st.nodes_reused, 0);
    tsr_job_free(j);
    /* Unbound image.input: the job fails at inference with the advice. */
    g = load(e, invert_yaml);
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_ERR_GRAPH);
    assert_non_null(strstr(tsr_job_message(j), "tsr_job_bind_input"));
    assert_non_null(strstr(tsr_job_message(j), "job.yaml:3:"));
    tsr_job_free(j);
    tsr_graph_free(g);
    tsr_image_free(src);
    assert_int_equal(in_use(e), 0);
    tsr_engine_free(e);
}

static int freed;
static void count_free(void *data, void *user)
{
    freed++;
    free(data);
    (void)user;
}

/* Caller pixels with padded rows, under each ownership: the output is 1 - x (alpha kept), a
 * handed-over buffer is freed exactly once (after use, when the job is freed unstarted, when the
 * bind fails), and invalid pixels are refused. */
static void bind_pixels_ownership(void **state)
{
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = load(e, invert_yaml);
    const int w = 37, h = 23, ch = 4;
    const size_t stride = (size_t)w * ch + 9;
    for (int own = TSR_COPY; own <= TSR_HANDOVER; own++) {
        unsigned char *buf = malloc(stride * h);
        for (size_t i = 0; i < stride * h; i++)
            buf[i] = (unsigned char)(i * 37 + 11);
        unsigned char *ref = malloc(stride * h);
        memcpy(ref, buf, stride * h);
        tsr_pixels px = {buf, w, h, ch, TSR_SAMPLE_U8, stride};
        tsr_job *j;
        freed = 0;
        assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
        assert_int_equal(tsr_job_bind_input(j, "in", &px, (tsr_ownership)own,
                                            own == TSR_HANDOVER ? count_free : NULL, NULL),
                         TSR_OK);
        assert_int_equal(tsr_job_start(j), TSR_OK);
        assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
        tsr_image *out;
        assert_int_equal(tsr_job_output(j, "out", &out), TSR_OK);
        assert_int_equal(tsr_image_bit_depth(out), 8);
        for (int c = 0; c < ch; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    float v = ref[(size_t)y * stride + (size_t)x * ch + c] / 255.0f;
                    float want = c == 3 ? v : 1.0f - v; /* invert keeps alpha */
                    float got = out->data[((size_t)c * h + y) * w + x];
                    if (fabsf(got - want) > 1e-6f)
                        fail_msg("own %d (%d,%d,%d): %g, expected %g", own, x, y, c, got, want);
                }
        tsr_image_free(out);
        tsr_job_free(j);
        assert_int_equal(freed, own == TSR_HANDOVER);
        if (own != TSR_HANDOVER)
            free(buf);
        free(ref);
    }
    /* Handed over but never run; handed over to a bind that fails. */
    tsr_job *j;
    freed = 0;
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    tsr_pixels px = {malloc(64), 4, 4, 4, TSR_SAMPLE_U8, 0};
    assert_int_equal(tsr_job_bind_input(j, "in", &px, TSR_HANDOVER, count_free, NULL), TSR_OK);
    tsr_job_free(j);
    assert_int_equal(freed, 1);
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    px.data = malloc(64);
    assert_int_equal(tsr_job_bind_input(j, "nope", &px, TSR_HANDOVER, count_free, NULL),
                     TSR_ERR_INVALID);
    assert_int_equal(freed, 2);
    unsigned char tiny[16];
    tsr_pixels bad[] = {
        {NULL, 4, 4, 1, TSR_SAMPLE_U8, 0},  {tiny, 0, 4, 1, TSR_SAMPLE_U8, 0},
        {tiny, 4, 4, 5, TSR_SAMPLE_U8, 0},  {tiny, 4, 4, 1, (tsr_sample)9, 0},
        {tiny, 4, 4, 1, TSR_SAMPLE_U16, 4}, {tiny, 1 << 30, 1 << 30, 4, TSR_SAMPLE_F32, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tsr_job_bind_input(j, "in", &bad[i], TSR_BORROW, NULL, NULL),
                         TSR_ERR_INVALID);
    tsr_job_free(j);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* A cancel before the start is honoured (tsr_job_cancel and tsr_engine_interrupt alike); a job
 * made after an interrupt is not affected by it; a job never started can be freed. */
static void cancel_before_start(void **state)
{
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = load(e, invert_yaml);
    tsr_image *src = tu_random_image(16, 16, 1, 3);
    tsr_job *a, *b, *c, *d;
    assert_int_equal(tsr_job_new(e, g, NULL, &a), TSR_OK);
    assert_int_equal(tsr_job_new(e, g, NULL, &b), TSR_OK);
    assert_int_equal(tsr_job_new(e, g, NULL, &d), TSR_OK);
    tsr_job_cancel(a);
    tsr_job_cancel(a); /* twice */
    tsr_engine_interrupt(e);
    assert_int_equal(tsr_job_new(e, g, NULL, &c), TSR_OK);
    tsr_job *all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tsr_job_bind_image(all[i], "in", src), TSR_OK);
        assert_int_equal(tsr_job_start(all[i]), TSR_OK);
    }
    assert_int_equal(tsr_job_wait(a, -1), TSR_ERR_CANCELLED);
    assert_int_equal(tsr_job_wait(b, -1), TSR_ERR_CANCELLED);
    assert_int_equal(tsr_job_wait(c, -1), TSR_OK);
    assert_non_null(strstr(tsr_job_message(a), "cancelled"));
    tsr_image *out = NULL;
    assert_int_equal(tsr_job_output(a, "out", &out), TSR_ERR_CANCELLED);
    assert_int_equal(tsr_job_output(c, "out", &out), TSR_OK);
    tsr_image_free(out);
    tsr_job_free(a);
    tsr_job_free(b);
    tsr_job_free(c);
    tsr_job_free(d); /* never started */
    tsr_job_free(NULL);
    tsr_graph_free(g);
    tsr_image_free(src);
    assert_int_equal(in_use(e), 0);
    tsr_engine_free(e);
}

/* ---- cancel latency ----------------------------------------------------------------------- */

typedef struct slow_case {
    const char *what;
    const char *yaml_fmt; /* %1$s: directory */
    int tile;             /* > 0: force tiles of this size */
    const char *node;     /* cancel once this node started... */
    int delay_ms;         /* ...and this long after */
} slow_case;

typedef struct start_watch {
    const char *node;
    int started; /* atomic */
} start_watch;

static void on_start(void *user, const tsr_event *ev)
{
    start_watch *w = user;
    if (ev->type == TSR_EV_NODE_START && w->node && strcmp(ev->node, w->node) == 0)
        __atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
}

/* Start the job, cancel delay_ms after node `node` started (NULL: after the job started), and
 * return the seconds from the cancel to the end of tsr_job_wait; the job must end cancelled. */
static double cancel_after(tsr_engine *e, tsr_graph *g, const tsr_run_options *o, const char *node,
                           int delay_ms)
{
    tsr_job *j;
    tsr_run_options opt;
    memset(&opt, 0, sizeof opt);
    if (o)
        opt = *o;
    start_watch w = {node, node == NULL};
    opt.event = on_start;
    opt.user = &w;
    assert_int_equal(tsr_job_new(e, g, &opt, &j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    while (!__atomic_load_n(&w.started, __ATOMIC_ACQUIRE) && tsr_job_is_running(j))
        sleep_ms(1);
    sleep_ms(delay_ms);
    assert_true(tsr_job_is_running(j)); /* the graph is slow enough to still be running */
    double t0 = now_s();
    tsr_job_cancel(j);
    tsr_status rc = tsr_job_wait(j, 5000);
    double dt = now_s() - t0;
    if (rc != TSR_ERR_CANCELLED)
        fail_msg("expected cancelled, got %s: %s", tsr_status_str(rc), tsr_job_message(j));
    tsr_job_free(j);
    return dt;
}

/* After a cancel: the pool holds nothing but the models' weights, the existing output is
 * byte-identical, no temporary file is left, and the next job runs. */
static void cancel_leaves_nothing(void **state)
{
    char big[600], old[600], keep[600], yaml[2048];
    snprintf(big, sizeof big, "%s/big.png", dir);
    snprintf(old, sizeof old, "%s/out.png", dir);
    snprintf(keep, sizeof keep, "%s/keep.png", dir);
    gr_write_random_png(big, 2400, 1600, 3, 11);
    gr_write_random_png(old, 20, 20, 3, 12);
    gr_write_random_png(keep, 20, 20, 3, 12);
    tsr_engine *e = gr_engine(0);
    static const slow_case cases[] = {
        /* one huge untiled kernel */
        {"untiled blur",
         "  b: { type: blur.gaussian, inputs: { image: src.image },"
         " params: { sigma: 60 } }\n"
         "  out: { type: image.save, inputs: { image: b.image },"
         " params: { path: '%1$s/out.png' } }\n",
         4096, "b", 100},
        /* a PNG decode (the blur after it never starts) */
        {"decode",
         "  b: { type: adjust.invert, inputs: { image: src.image } }\n"
         "  out: { type: image.save, inputs: { image: b.image },"
         " params: { path: '%1$s/out.png' } }\n",
         0, "src", 20},
        /* a PNG encode, slow at level 9 */
        {"encode",
         "  out: { type: image.save, inputs: { image: src.image },"
         " params: { path: '%1$s/out.png', compression: 9, bit_depth: 16 } }\n",
         0, "out", 50},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int len = snprintf(
            yaml, sizeof yaml,
            "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n", big);
        snprintf(yaml + len, sizeof yaml - (size_t)len, cases[c].yaml_fmt, dir);
        tsr_graph *g = load(e, yaml);
        tsr_run_options o;
        memset(&o, 0, sizeof o);
        o.tile_width = o.tile_height = cases[c].tile;
        double dt = cancel_after(e, g, &o, cases[c].node, cases[c].delay_ms);
        print_message("cancel %-13s: returned %.0f ms after the cancel\n", cases[c].what, dt * 1e3);
        assert_true(dt < 1.0);
        assert_int_equal(in_use(e), 0);
        assert_true(gr_same_file(old, keep));
        assert_int_equal(hidden_files(dir), 0);
        tsr_graph_free(g);
    }
    /* The next job runs normally. */
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  out: { type: image.save, inputs: { image: src.image },"
             " params: { path: '%s/next.png' } }\n",
             keep, dir);
    tsr_graph *g = load(e, yaml);
    gr_result r;
    gr_run(e, g, 0, 0, &r);
    assert_int_equal(r.rc, TSR_OK);
    gr_result_clear(&r);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* A network: the cancel lands inside the layers; the next job on the engine reuses the model
 * (not read again, not uploaded again). */
static void cancel_network(void **state)
{
    char in[600], yaml[2048];
    snprintf(in, sizeof in, "%s/net.png", dir);
    gr_write_random_png(in, 96, 96, 3, 21);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  net: { type: model.load, params: { path: '%s' } }\n"
             "  up: { type: upscale, inputs: { image: src.image, model: net.model } }\n"
             "  out: { type: image.output, inputs: { image: up.image } }\n",
             in, tu_shared("models/realesr-animevideov3/realesr-animevideov3-x2.param"));
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = load(e, yaml);
    /* A first run loads and uploads the model and builds the kernels. */
    tsr_job *j;
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
    tsr_job_stats st;
    tsr_job_get_stats(j, &st);
    double full = st.seconds;
    tsr_image *first;
    assert_int_equal(tsr_job_output(j, "out", &first), TSR_OK);
    tsr_job_free(j);
    int delay = (int)(full * 1e3 / 4);
    double dt = cancel_after(e, g, NULL, "up", delay > 20 ? delay : 20);
    print_message("cancel network: %.0f ms after the cancel (a run takes %.0f ms)\n", dt * 1e3,
                  full * 1e3);
    assert_true(dt < 1.0);
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
    tsr_job_get_stats(j, &st);
    assert_int_equal(st.models_loaded, 0);
    assert_int_equal(st.models_uploaded, 0);
    tsr_image *again;
    assert_int_equal(tsr_job_output(j, "out", &again), TSR_OK);
    assert_true(gr_same_bits(first, again));
    tsr_image_free(first);
    tsr_image_free(again);
    tsr_job_free(j);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* Free while running: cancels, waits, releases; a cancel from the event callback works too. */
static void free_while_running(void **state)
{
    tsr_engine *e = gr_engine(0);
    const char *yaml = "version: 1\nnodes:\n"
                       "  in: { type: image.input }\n"
                       "  b: { type: blur.gaussian, inputs: { image: in.image },"
                       " params: { sigma: 40 } }\n"
                       "  out: { type: image.output, inputs: { image: b.image } }\n";
    tsr_graph *g = load(e, yaml);
    tsr_image *src = tu_random_image(1500, 1000, 3, 5);
    tsr_run_options o;
    memset(&o, 0, sizeof o);
    o.tile_width = o.tile_height = 128; /* many tiles: progress events */
    tsr_job *j;
    assert_int_equal(tsr_job_new(e, g, &o, &j), TSR_OK);
    assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    sleep_ms(100);
    double t0 = now_s();
    tsr_job_free(j);
    assert_true(now_s() - t0 < 1.0);
    assert_int_equal(in_use(e), 0);
    ev_log *l = calloc(1, sizeof *l);
    ev_init(l);
    o.event = log_event;
    o.user = l;
    assert_int_equal(tsr_job_new(e, g, &o, &j), TSR_OK);
    l->cancel_on_progress = j;
    assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_ERR_CANCELLED);
    assert_int_equal(l->type[l->n - 1], TSR_EV_JOB_FINISH);
    assert_non_null(strstr(l->last_json, "\"status\":\"cancelled\""));
    tsr_job_free(j);
    free(l);
    tsr_image_free(src);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

static int lanes(tsr_engine *e)
{
    int n = 0;
    tsr__engine_lock(e);
    for (tsr__lane *l = e->lanes; l; l = l->next)
        n++;
    tsr__engine_unlock(e);
    return n;
}

/* Twenty cancels at random points leak nothing: the pool holds the same blocks once trimmed,
 * the engine keeps one lane (queue and kernel objects) for the next job, and the host heap does
 * not grow (glibc's count; under AddressSanitizer, LeakSanitizer checks at exit instead). */
static void cancels_leak_nothing(void **state)
{
    tsr_engine *e = gr_engine(0);
    const char *yaml = "version: 1\nnodes:\n"
                       "  in: { type: image.input }\n"
                       "  b: { type: blur.gaussian, inputs: { image: in.image },"
                       " params: { sigma: 12 } }\n"
                       "  r: { type: resize, inputs: { image: b.image }, params: { scale: 1.3 } }\n"
                       "  out: { type: image.output, inputs: { image: r.image } }\n";
    tsr_graph *g = load(e, yaml);
    tsr_image *src = tu_random_image(800, 600, 3, 61);
    tsr_run_options o;
    memset(&o, 0, sizeof o);
    o.tile_width = o.tile_height = 96;
    uint32_t seed = 1;
    size_t heap0 = 0;
    for (int i = 0; i < 21; i++) {
        tsr_job *j;
        assert_int_equal(tsr_job_new(e, g, &o, &j), TSR_OK);
        assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_OK);
        assert_int_equal(tsr_job_start(j), TSR_OK);
        seed = seed * 1103515245u + 12345u;
        sleep_ms(5 + (int)(seed >> 16) % 60);
        tsr_job_cancel(j);
        tsr_status rc = tsr_job_wait(j, -1);
        assert_true(rc == TSR_ERR_CANCELLED || rc == TSR_OK);
        tsr_job_free(j);
        tsr_engine_trim(e);
        tsr_pool_stats st;
        assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
        assert_int_equal(st.in_use_bytes, 0);
        assert_int_equal(st.held_bytes, 0);
        assert_int_equal(lanes(e), 1);
        if (i == 0)
            heap0 = mallinfo2().uordblks;
    }
    size_t heap1 = mallinfo2().uordblks;
    print_message("host heap after 1 cancel: %zu bytes, after 21: %zu\n", heap0, heap1);
    assert_true(heap1 <= heap0 + (64u << 10));
    tsr_image_free(src);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* ---- several jobs at once ----------------------------------------------------------------- */

#define THREADS 4
#define JOBS_PER_THREAD 3

typedef struct submitter {
    tsr_engine *e;
    tsr_graph *g;
    tsr_image *src[JOBS_PER_THREAD];
    tsr_image *out[JOBS_PER_THREAD];
    tsr_status rc[JOBS_PER_THREAD];
} submitter;

static void *submit(void *arg)
{
    submitter *s = arg;
    tsr_job *j[JOBS_PER_THREAD];
    for (int k = 0; k < JOBS_PER_THREAD; k++) {
        s->rc[k] = tsr_job_new(s->e, s->g, NULL, &j[k]);
        if (!s->rc[k])
            s->rc[k] = tsr_job_bind_image(j[k], "in", s->src[k]);
        if (!s->rc[k])
            s->rc[k] = tsr_job_start(j[k]);
    }
    for (int k = 0; k < JOBS_PER_THREAD; k++) {
        if (!s->rc[k])
            s->rc[k] = tsr_job_wait(j[k], -1);
        if (!s->rc[k])
            s->rc[k] = tsr_job_output(j[k], "out", &s->out[k]);
        tsr_job_free(j[k]);
    }
    return NULL;
}

/* Threads submitting jobs at once to one engine: every job succeeds with the output a lone run
 * gives, and the pool's peak never passes the budget (the pool's cap, and the jobs' admission
 * keeping them from downgrading each other). */
static void jobs_share_the_budget(void **state)
{
    const uint64_t budget = 48ull << 20;
    tsr_engine *e = gr_engine(budget);
    const char *yaml = "version: 1\nnodes:\n"
                       "  in: { type: image.input }\n"
                       "  b: { type: blur.gaussian, inputs: { image: in.image },"
                       " params: { sigma: 3 } }\n"
                       "  r: { type: resize, inputs: { image: b.image }, params: { scale: 1.5 } }\n"
                       "  out: { type: image.output, inputs: { image: r.image } }\n";
    tsr_graph *g = load(e, yaml);
    submitter s[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&s[t], 0, sizeof s[t]);
        s[t].e = e;
        s[t].g = g;
        for (int k = 0; k < JOBS_PER_THREAD; k++)
            s[t].src[k] = tu_random_image(900 + 37 * t, 700 + 11 * k, 3, (uint32_t)(t * 10 + k));
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, submit, &s[t]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    tsr_pool_stats st;
    assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
    print_message("%d jobs: pool peak %llu of %llu bytes, %llu out-of-memory events\n",
                  THREADS * JOBS_PER_THREAD, (unsigned long long)st.peak_held_bytes,
                  (unsigned long long)budget, (unsigned long long)st.oom_events);
    assert_true(st.peak_held_bytes <= budget);
    assert_int_equal(st.in_use_bytes, 0);
    /* Each output against a lone run of the same job on a fresh engine. */
    tsr_engine *lone = gr_engine(budget);
    tsr_graph *g1 = load(lone, yaml);
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < JOBS_PER_THREAD; k++) {
            if (s[t].rc[k])
                fail_msg("thread %d job %d: %s", t, k, tsr_status_str(s[t].rc[k]));
            if (t + k > 1) /* two are enough for the comparison; the rest ran above */
                continue;
            tsr_job *j;
            assert_int_equal(tsr_job_new(lone, g1, NULL, &j), TSR_OK);
            assert_int_equal(tsr_job_bind_image(j, "in", s[t].src[k]), TSR_OK);
            assert_int_equal(tsr_job_start(j), TSR_OK);
            assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
            tsr_image *ref;
            assert_int_equal(tsr_job_output(j, "out", &ref), TSR_OK);
            assert_true(gr_same_bits(ref, s[t].out[k]));
            tsr_image_free(ref);
            tsr_job_free(j);
        }
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < JOBS_PER_THREAD; k++) {
            tsr_image_free(s[t].src[k]);
            tsr_image_free(s[t].out[k]);
        }
    tsr_graph_free(g1);
    tsr_engine_free(lone);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

/* The host budget is shared like the device's: with room for one job's host estimate and a
 * half, a second job waits until the first (held 400 ms in its first stage) is done; with room
 * for both it does not. */
static void hold_first_stage(void *user, const tsr_event *ev)
{
    if (ev->type == TSR_EV_STAGE) {
        struct timespec ts = {0, 400 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static tsr_engine *engine_with_mem_limit(uint64_t mem_limit)
{
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = getenv("TSR_TEST_DEVICE");
    o.mem_limit = mem_limit;
    char msg[1024] = "";
    tsr_engine *e = NULL;
    if (tsr_engine_new(&o, &e, msg, sizeof msg))
        fail_msg("engine: %s", msg);
    return e;
}

static void jobs_share_the_host_budget(void **state)
{
    const char *yaml = "version: 1\nnodes:\n"
                       "  in: { type: image.input }\n"
                       "  r: { type: resize, inputs: { image: in.image }, params: { scale: 2 } }\n"
                       "  out: { type: image.output, inputs: { image: r.image } }\n";
    tsr_image *src = tu_random_image(300, 200, 3, 7);
    /* One job's estimate, from a lone run. */
    tsr_engine *probe = engine_with_mem_limit(0);
    tsr_graph *pg = load(probe, yaml);
    tsr_job *pj;
    assert_int_equal(tsr_job_new(probe, pg, NULL, &pj), TSR_OK);
    assert_int_equal(tsr_job_bind_image(pj, "in", src), TSR_OK);
    assert_int_equal(tsr_job_start(pj), TSR_OK);
    assert_int_equal(tsr_job_wait(pj, -1), TSR_OK);
    tsr_job_stats st;
    tsr_job_get_stats(pj, &st);
    uint64_t need = st.reserved_host_bytes;
    /* the bound source (held by the graph) and the 600x400 output, at least */
    assert_true(need >= (uint64_t)(300 * 200 + 600 * 400) * 3 * 4);
    tsr_job_free(pj);
    tsr_graph_free(pg);
    tsr_engine_free(probe);
    for (int both_fit = 0; both_fit < 2; both_fit++) {
        tsr_engine *e = engine_with_mem_limit(both_fit ? 2 * need : need + need / 2);
        tsr_graph *g = load(e, yaml);
        tsr_run_options slow;
        memset(&slow, 0, sizeof slow);
        slow.event = hold_first_stage;
        tsr_job *a, *b;
        assert_int_equal(tsr_job_new(e, g, &slow, &a), TSR_OK);
        assert_int_equal(tsr_job_new(e, g, NULL, &b), TSR_OK);
        assert_int_equal(tsr_job_bind_image(a, "in", src), TSR_OK);
        assert_int_equal(tsr_job_bind_image(b, "in", src), TSR_OK);
        assert_int_equal(tsr_job_start(a), TSR_OK);
        struct timespec ts = {0, 100 * 1000000L}; /* a reserves, then holds its first stage */
        nanosleep(&ts, NULL);
        assert_int_equal(tsr_job_start(b), TSR_OK);
        assert_int_equal(tsr_job_wait(a, -1), TSR_OK);
        assert_int_equal(tsr_job_wait(b, -1), TSR_OK);
        tsr_job_stats sa, sb;
        tsr_job_get_stats(a, &sa);
        tsr_job_get_stats(b, &sb);
        print_message("host budget %s: job b queued %.3f s\n", both_fit ? "for both" : "for one",
                      sb.queued_seconds);
        assert_int_equal(sa.reserved_host_bytes, need);
        assert_int_equal(sb.reserved_host_bytes, need);
        if (both_fit)
            assert_true(sb.queued_seconds < 0.2);
        else
            assert_true(sb.queued_seconds > 0.15);
        tsr_job_free(a);
        tsr_job_free(b);
        tsr_graph_free(g);
        tsr_engine_free(e);
    }
    tsr_image_free(src);
}

typedef struct net_thread {
    tsr_engine *e;
    tsr_graph *g;
    tsr_image *out;
    tsr_job_stats st;
    tsr_status rc;
} net_thread;

static void *run_net(void *arg)
{
    net_thread *t = arg;
    tsr_job *j;
    t->rc = tsr_job_new(t->e, t->g, NULL, &j);
    if (!t->rc)
        t->rc = tsr_job_start(j);
    if (!t->rc)
        t->rc = tsr_job_wait(j, -1);
    if (!t->rc)
        t->rc = tsr_job_output(j, "out", &t->out);
    tsr_job_get_stats(j, &t->st);
    tsr_job_free(j);
    return NULL;
}

/* Three threads upscale with one model at once: it is read from disk and uploaded once (the
 * model cache is shared and locked), and every output is the same. */
static void models_shared_by_threads(void **state)
{
    char in[600], yaml[2048];
    snprintf(in, sizeof in, "%s/share.png", dir);
    gr_write_random_png(in, 40, 32, 3, 51);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  net: { type: model.load, params: { path: '%s' } }\n"
             "  up: { type: upscale, inputs: { image: src.image, model: net.model } }\n"
             "  out: { type: image.output, inputs: { image: up.image } }\n",
             in, tu_shared("models/waifu2x-upconv_7_anime_style_art_rgb"));
    tsr_engine *e = gr_engine(0);
    net_thread t[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].e = e;
        t[i].g = load(e, yaml); /* a graph per thread: graphs are not shared between threads */
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_net, &t[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    int loaded = 0, uploaded = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].rc, TSR_OK);
        loaded += t[i].st.models_loaded;
        uploaded += t[i].st.models_uploaded;
        assert_true(gr_same_bits(t[0].out, t[i].out));
    }
    assert_int_equal(loaded, 1);
    assert_int_equal(uploaded, 1);
    for (int i = 0; i < 3; i++) {
        tsr_image_free(t[i].out);
        tsr_graph_free(t[i].g);
    }
    tsr_engine_free(e);
}

/* ---- events ------------------------------------------------------------------------------- */

/* chain-start first, finish last, every node-start before its node-finish, node-progress at
 * most every 50 ms per node, and an error with its node, param and position. */
static void events_in_order(void **state)
{
    char in[600], yaml[2048];
    snprintf(in, sizeof in, "%s/ev.png", dir);
    gr_write_random_png(in, 700, 500, 3, 31);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  b: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 8 } }\n"
             "  out: { type: image.output, inputs: { image: b.image } }\n",
             in);
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = load(e, yaml);
    ev_log *l = calloc(1, sizeof *l);
    ev_init(l);
    tsr_run_options o;
    memset(&o, 0, sizeof o);
    o.event = log_event;
    o.user = l;
    o.tile_width = o.tile_height = 32; /* 352 tiles: many progress calls, throttled */
    assert_int_equal(tsr_graph_run(e, g, &o), TSR_OK);
    assert_int_equal(l->type[0], TSR_EV_JOB_START);
    assert_int_equal(l->type[l->n - 1], TSR_EV_JOB_FINISH);
    assert_non_null(strstr(l->last_json, "\"status\":\"ok\""));
    int starts = 0, finishes = 0, progress = 0;
    double last = -1;
    for (int i = 0; i < l->n; i++) {
        starts += l->type[i] == TSR_EV_NODE_START;
        finishes += l->type[i] == TSR_EV_NODE_FINISH;
        if (l->type[i] == TSR_EV_NODE_PROGRESS && strcmp(l->node[i], "b") == 0) {
            if (last >= 0 && l->t[i] - last < 0.049)
                fail_msg("node-progress %.1f ms after the previous one", (l->t[i] - last) * 1e3);
            last = l->t[i];
            progress++;
        }
        if (l->type[i] == TSR_EV_NODE_FINISH) { /* its start came before */
            int seen = 0;
            for (int k = 0; k < i && !seen; k++)
                seen = l->type[k] == TSR_EV_NODE_START && strcmp(l->node[k], l->node[i]) == 0;
            assert_true(seen);
        }
    }
    assert_int_equal(starts, 3);
    assert_int_equal(finishes, 3);
    assert_true(progress >= 1);
    print_message("%d node-progress events for 352 tiles\n", progress);
    tsr_graph_free(g);
    /* An error from the graph: node, param and position in the event. */
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s/none.png' } }\n"
             "  out: { type: image.output, inputs: { image: src.image } }\n",
             dir);
    g = load(e, yaml);
    ev_init(l);
    tsr_job *j;
    assert_int_equal(tsr_job_new(e, g, &o, &j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_ERR_IO);
    assert_int_equal(l->type[l->n - 2], TSR_EV_JOB_ERROR);
    assert_int_equal(l->type[l->n - 1], TSR_EV_JOB_FINISH);
    if (!strstr(l->error_json, "\"nodeId\":\"src\"") ||
        !strstr(l->error_json, "\"param\":\"path\"") ||
        !strstr(l->error_json, "\"file\":\"job.yaml\"") || !strstr(l->error_json, "\"line\":3"))
        fail_msg("error event: %s", l->error_json);
    tsr_job_free(j);
    tsr_graph_free(g);
    free(l);
    tsr_engine_free(e);
}

/* ---- previews and the result cache -------------------------------------------------------- */

/* A watched node gives its output scaled down by an area average. */
static void watch_gives_a_preview(void **state)
{
    tsr_engine *e = gr_engine(0);
    const char *yaml = "version: 1\nnodes:\n"
                       "  in: { type: image.input }\n"
                       "  b: { type: blur.gaussian, inputs: { image: in.image },"
                       " params: { sigma: 2 } }\n"
                       "  g: { type: adjust.gamma, inputs: { image: b.image },"
                       " params: { gamma: 2 } }\n"
                       "  out: { type: image.output, inputs: { image: g.image } }\n";
    tsr_graph *g = load(e, yaml);
    tsr_image *src = tu_random_image(300, 200, 3, 9);
    tsr_job *j;
    tsr_image *full, *small;
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_OK);
    assert_int_equal(tsr_job_watch(j, "b", 0), TSR_OK);
    assert_int_equal(tsr_job_watch(j, "out", 10), TSR_ERR_INVALID); /* a sink */
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
    assert_int_equal(tsr_job_output(j, "b", &full), TSR_OK);
    tsr_job_free(j);
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    assert_int_equal(tsr_job_bind_image(j, "in", src), TSR_OK);
    assert_int_equal(tsr_job_watch(j, "b", 64), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    assert_int_equal(tsr_job_wait(j, -1), TSR_OK);
    assert_int_equal(tsr_job_output(j, "b", &small), TSR_OK);
    tsr_job_free(j);
    assert_int_equal(small->width, 64);
    assert_int_equal(small->height, 42);
    /* The reference: the mean of each block of the full output (300/64 x 200/42 pixels). */
    double worst = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 42; y++)
            for (int x = 0; x < 64; x++) {
                int x0 = x * 300 / 64, x1 = (x + 1) * 300 / 64, y0 = y * 200 / 42,
                    y1 = (y + 1) * 200 / 42;
                double sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        sum += full->data[(size_t)c * 300 * 200 + (size_t)yy * 300 + xx];
                double d = fabs(sum / ((x1 - x0) * (y1 - y0)) -
                                small->data[(size_t)c * 64 * 42 + (size_t)y * 64 + x]);
                worst = d > worst ? d : worst;
            }
    assert_true(worst < 1e-6);
    tsr_image_free(full);
    tsr_image_free(small);
    tsr_image_free(src);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

static tsr_job_stats run_stats(tsr_engine *e, tsr_graph *g, tsr_image **out)
{
    tsr_job *j;
    assert_int_equal(tsr_job_new(e, g, NULL, &j), TSR_OK);
    assert_int_equal(tsr_job_start(j), TSR_OK);
    if (tsr_job_wait(j, -1))
        fail_msg("%s", tsr_job_message(j));
    tsr_job_stats st;
    tsr_job_get_stats(j, &st);
    assert_int_equal(tsr_job_output(j, "out", out), TSR_OK);
    tsr_job_free(j);
    return st;
}

/* With the result cache on, a param change recomputes the changed node and what is downstream
 * of it, and the output equals a run from scratch; a changed input file is noticed. */
static void rerun_recomputes_downstream(void **state)
{
    char in[600], yaml[2048];
    snprintf(in, sizeof in, "%s/re.png", dir);
    gr_write_random_png(in, 320, 240, 3, 41);
    snprintf(yaml, sizeof yaml,
             "version: 1\nnodes:\n  src: { type: image.load, params: { path: '%s' } }\n"
             "  b: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 3 } }\n"
             "  r: { type: resize, inputs: { image: b.image }, params: { scale: 0.5 } }\n"
             "  g: { type: adjust.gamma, inputs: { image: r.image }, params: { gamma: 2 } }\n"
             "  out: { type: image.output, inputs: { image: g.image } }\n",
             in);
    tsr_engine *e = gr_engine(0);
    tsr_engine_set_result_cache(e, 64ull << 20);
    tsr_graph *g = load(e, yaml);
    tsr_image *a, *b, *c, *ref;
    tsr_job_stats st = run_stats(e, g, &a);
    assert_int_equal(st.nodes_reused, 0);
    assert_int_equal(st.nodes_run, 5);
    st = run_stats(e, g, &b); /* nothing changed: only the sink runs */
    assert_int_equal(st.nodes_reused, 1);
    assert_int_equal(st.nodes_run, 1);
    assert_true(gr_same_bits(a, b));
    assert_int_equal(tsr_graph_set(e, g, "g.gamma=1.5"), TSR_OK);
    st = run_stats(e, g, &c); /* r reused; g and the sink run */
    assert_int_equal(st.nodes_reused, 1);
    assert_int_equal(st.nodes_run, 2);
    assert_true(tsr_engine_result_cache_bytes(e) > 0);
    tsr_engine *fresh = gr_engine(0);
    tsr_graph *g2 = load(fresh, yaml);
    assert_int_equal(tsr_graph_set(fresh, g2, "g.gamma=1.5"), TSR_OK);
    tsr_job_stats st2 = run_stats(fresh, g2, &ref);
    assert_int_equal(st2.nodes_reused, 0);
    assert_true(gr_same_bits(c, ref));
    tsr_image_free(a);
    tsr_image_free(b);
    tsr_image_free(c);
    tsr_image_free(ref);
    /* The source file changes: everything runs again. */
    sleep_ms(20);
    gr_write_random_png(in, 320, 240, 3, 42);
    st = run_stats(e, g, &a);
    assert_int_equal(st.nodes_reused, 0);
    tsr_image_free(a);
    /* Off: nothing kept. */
    tsr_engine_set_result_cache(e, 0);
    assert_int_equal(tsr_engine_result_cache_bytes(e), 0);
    st = run_stats(e, g, &a);
    assert_int_equal(st.nodes_reused, 0);
    tsr_image_free(a);
    tsr_graph_free(g);
    tsr_graph_free(g2);
    tsr_engine_free(fresh);
    tsr_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lifecycle_and_memory_io),
        cmocka_unit_test(bind_pixels_ownership),
        cmocka_unit_test(cancel_before_start),
        cmocka_unit_test(free_while_running),
        cmocka_unit_test(cancel_leaves_nothing),
        cmocka_unit_test(cancel_network),
        cmocka_unit_test(cancels_leak_nothing),
        cmocka_unit_test(jobs_share_the_budget),
        cmocka_unit_test(jobs_share_the_host_budget),
        cmocka_unit_test(models_shared_by_threads),
        cmocka_unit_test(events_in_order),
        cmocka_unit_test(watch_gives_a_preview),
        cmocka_unit_test(rerun_recomputes_downstream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
