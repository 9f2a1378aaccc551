/* Cancel, progress and temporary files of the image codecs: a cancel stops a decoder or an
 * encoder within a band of rows (PNG plain and interlaced, JPEG baseline and progressive, files
 * and memory), leaves no temporary file and the existing output as it was; progress rises to its
 * total and ends there once; tsr_cleanup_temp_files() removes the files being written, from a
 * thread or from a signal handler, and only those. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#define BIG_W 4000
#define BIG_H 3000
#define MAX_BAND 64 /* rows: the most a codec may do between two looks at cancelled() */

static char tmpdir[256];
static char big_png[512]; /* BIG_W x BIG_H RGB 8-bit, written once by the group setup */

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

/* A smooth RGB test image, quantized to 8 bits so that a PNG keeps it exactly. */
static tsr_image *smooth_image(int w, int h, int ch)
{
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new(w, h, ch, &img), TSR_OK);
    size_t plane = (size_t)w * h;
    for (int c = 0; c < ch; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img->data[c * plane + (size_t)y * w + x] =
                    (float)((x * (c + 1) + y * (3 - c) + (x ^ y) % 7) % 256) / 255.0f;
    img->bit_depth = 8;
    return img;
}

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tsr-ctl-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(big_png, sizeof big_png, "%s/big.png", tmpdir);
    tsr_image *img = smooth_image(BIG_W, BIG_H, 3);
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.compression = 1;
    tsr__err err;
    tsr__err_clear(&err);
    tsr_status rc = tsr__image_save(img, big_png, &o, NULL, &err);
    tsr_image_free(img);
    return rc == TSR_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh empty directory under tmpdir. */
static const char *fresh_dir(const char *name)
{
    const char *dir = tmp_path(name);
    assert_int_equal(mkdir(dir, 0700), 0);
    return dir;
}

/* The names in dir (without . and ..), sorted, joined by ','. */
static const char *dir_names(const char *dir)
{
    static char out[4096];
    tu_name_list all;
    tu_list_dir(dir, "", &all);
    out[0] = 0;
    for (int i = 0; i < all.n; i++) {
        if (!strcmp(all.name[i], ".") || !strcmp(all.name[i], ".."))
            continue;
        if (out[0])
            strcat(out, ",");
        assert_true(strlen(out) + strlen(all.name[i]) + 2 < sizeof out);
        strcat(out, all.name[i]);
    }
    return out;
}

/* Entries of dir whose names start with '.' (temporary files). */
static int hidden_count(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * A recording tsr__io_ctl */

typedef struct rec {
    int cancel_after; /* cancelled() answers 1 from call cancel_after + 1 on; < 0: never */
    int calls;        /* cancelled() calls */
    int progress_calls;
    int64_t last_done, total;
    int bad;       /* a progress call went backwards, past the total, or changed the total */
    int at_total;  /* progress calls with done == total */
    int after_end; /* calls of either kind after done == total was reported */
} rec;

static int rec_cancelled(void *user)
{
    rec *r = user;
    if (r->at_total)
        r->after_end++;
    r->calls++;
    return r->cancel_after >= 0 && r->calls > r->cancel_after;
}

static void rec_progress(void *user, int64_t done, int64_t total)
{
    rec *r = user;
    if (r->at_total)
        r->after_end++;
    if (r->progress_calls && total != r->total)
        r->bad++;
    if (done < r->last_done || done > total || total <= 0)
        r->bad++;
    r->progress_calls++;
    r->last_done = done;
    r->total = total;
    if (done == total)
        r->at_total++;
}

static tsr__io_ctl rec_ctl(rec *r, int cancel_after)
{
    memset(r, 0, sizeof *r);
    r->cancel_after = cancel_after;
    return (tsr__io_ctl){rec_cancelled, rec_progress, r, NULL};
}

/* A run that went to the end: progress never went back, ended at total exactly once, and
 * nothing was called after it; at least one band per MAX_BAND rows. */
static void assert_complete(const rec *r, int64_t total)
{
    assert_int_equal(r->bad, 0);
    assert_int_equal(r->total, total);
    assert_int_equal(r->last_done, total);
    assert_int_equal(r->at_total, 1);
    assert_int_equal(r->after_end, 0);
    assert_true(r->calls >= (total + MAX_BAND - 1) / MAX_BAND);
    assert_true(r->progress_calls >= (total + MAX_BAND - 1) / MAX_BAND);
}

/* A cancelled run: stopped at the first cancelled() that said yes, after at most cancel_after
 * bands of rows, with no report of completion. */
static void assert_cancelled(const rec *r)
{
    assert_int_equal(r->calls, r->cancel_after + 1);
    assert_int_equal(r->bad, 0);
    assert_int_equal(r->at_total, 0);
    assert_true(r->last_done <= (int64_t)r->cancel_after * MAX_BAND);
}

/* ---------------------------------------------------------------------------------------------
 * Test files written with the libraries directly: what our encoders never write. */

/* An Adam7-interlaced 8-bit gray PNG of the given pixels (w*h bytes). */
static void write_interlaced_png(const char *path, const unsigned char *px, int w, int h)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    assert_non_null(rows);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng cannot write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 1);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)px + (size_t)y * w;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    assert_int_equal(fclose(f), 0);
}

/* A progressive RGB JPEG of img (3 channels). */
static void write_progressive_jpeg(const char *path, const tsr_image *img)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)img->width;
    c.image_height = (JDIMENSION)img->height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    size_t w = (size_t)img->width, plane = w * img->height;
    unsigned char *row = malloc(w * 3);
    assert_non_null(row);
    while (c.next_scanline < c.image_height) {
        const float *in = img->data + (size_t)c.next_scanline * w;
        for (size_t x = 0; x < w; x++)
            for (int k = 0; k < 3; k++)
                row[x * 3 + k] = (unsigned char)lrintf(in[k * plane + x] * 255.0f);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    assert_int_equal(fclose(f), 0);
}

/* Rows an Adam7 image of w x h holds over its passes (empty passes hold none). */
static int64_t adam7_rows(int w, int h)
{
    int64_t n = 0;
    for (int p = 0; p < 7; p++)
        if (PNG_PASS_COLS((png_uint_32)w, p) > 0)
            n += PNG_PASS_ROWS((png_uint_32)h, p);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding */

/* A 4000x3000 PNG: a cancel at the 4th look stops the decode after at most 3 bands, with the
 * message naming the file and no image. Then the whole decode, watched. */
static void png_decode_cancel(void **state)
{
    rec r;
    tsr__err err;
    for (int after = 0; after <= 3; after += 3) {
        tsr__io_ctl ctl = rec_ctl(&r, after);
        tsr__err_clear(&err);
        tsr_image *img = (tsr_image *)1;
        assert_int_equal(tsr__image_load(big_png, 0, NULL, &ctl, &img, &err), TSR_ERR_CANCELLED);
        assert_null(img);
        assert_cancelled(&r);
        char want[600];
        snprintf(want, sizeof want, "cancelled while decoding '%s'", big_png);
        assert_string_equal(err.msg, want);
    }
    assert_true(r.last_done > 0); /* three bands went through before the cancel */

    tsr__io_ctl ctl = rec_ctl(&r, -1);
    tsr__err_clear(&err);
    tsr_image *img = NULL;
    assert_int_equal(tsr__image_load(big_png, 0, NULL, &ctl, &img, &err), TSR_OK);
    assert_complete(&r, BIG_H);
    tsr_image *want = smooth_image(BIG_W, BIG_H, 3);
    assert_true(tu_max_diff(img, want) == 0.0);
    tsr_image_free(want);
    tsr_image_free(img);

    /* The same bytes from memory. */
    size_t len;
    unsigned char *buf = tu_slurp(big_png, &len);
    ctl = rec_ctl(&r, 2);
    assert_int_equal(tsr__image_decode(buf, len, "big in memory", 0, NULL, &ctl, &img, &err),
                     TSR_ERR_CANCELLED);
    assert_cancelled(&r);
    assert_string_equal(err.msg, "cancelled while decoding 'big in memory'");
    free(buf);
}

/* Interlaced: progress counts the rows of every pass; a cancel stops in the middle of a pass;
 * the pixels are those of the plain file. */
static void png_interlaced_progress(void **state)
{
    /* 1x1 and 3x5 have empty passes; 1201x1500 is tall enough for many bands in each pass. */
    static const int sizes[][2] = {{1, 1}, {3, 5}, {1201, 1500}};
    for (int s = 0; s < 3; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        unsigned char *px = malloc((size_t)w * h);
        assert_non_null(px);
        for (size_t i = 0; i < (size_t)w * h; i++)
            px[i] = (unsigned char)(i * 2654435761u >> 24);
        const char *path = tmp_path("adam7.png");
        write_interlaced_png(path, px, w, h);
        rec r;
        tsr__io_ctl ctl = rec_ctl(&r, -1);
        tsr__err err;
        tsr__err_clear(&err);
        tsr_image *img = NULL;
        assert_int_equal(tsr__image_load(path, 0, NULL, &ctl, &img, &err), TSR_OK);
        int64_t rows = adam7_rows(w, h);
        assert_int_equal(r.total, rows);
        if (h >= MAX_BAND)
            assert_complete(&r, rows);
        else
            assert_true(r.at_total == 1 && r.bad == 0 && r.after_end == 0 && r.calls >= 1);
        for (size_t i = 0; i < (size_t)w * h; i++)
            if (img->data[i] != (float)px[i] / 255.0f)
                fail_msg("%dx%d: pixel %zu is %g, expected %d/255", w, h, i, img->data[i], px[i]);
        tsr_image_free(img);
        if (h >= MAX_BAND) {
            /* Stop halfway: past the first passes, inside a later one. */
            int after = (int)(rows / 2 / MAX_BAND);
            ctl = rec_ctl(&r, after);
            assert_int_equal(tsr__image_load(path, 0, NULL, &ctl, &img, &err), TSR_ERR_CANCELLED);
            assert_cancelled(&r);
            assert_true(r.last_done > h / 2 && r.last_done < rows);
        }
        free(px);
    }
}

/* JPEG: baseline bands by output rows; a progressive file is decoded whole before the first
 * output row, and a cancel is seen there too. */
static void jpeg_decode_cancel(void **state)
{
    tsr_image *src = smooth_image(2000, 1500, 3);
    const char *base = tmp_path("base.jpg"), *prog = tmp_path("prog.jpg");
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_save(src, base, NULL, NULL, &err), TSR_OK);
    write_progressive_jpeg(prog, src);

    rec r;
    tsr_image *img = NULL;
    tsr__io_ctl ctl = rec_ctl(&r, -1);
    assert_int_equal(tsr__image_load(base, 0, NULL, &ctl, &img, &err), TSR_OK);
    assert_complete(&r, 1500);
    tsr_image_free(img);
    ctl = rec_ctl(&r, 3);
    assert_int_equal(tsr__image_load(base, 0, NULL, &ctl, &img, &err), TSR_ERR_CANCELLED);
    assert_cancelled(&r);
    assert_true(r.last_done > 0);
    tu_assert_msg_has(&err, "cancelled while decoding '");

    /* Progressive: more looks than output bands (the scans are read first), and a cancel at
     * the second look stops before any row came out. */
    ctl = rec_ctl(&r, -1);
    assert_int_equal(tsr__image_load(prog, 0, NULL, &ctl, &img, &err), TSR_OK);
    assert_complete(&r, 1500);
    assert_true(r.calls > r.progress_calls + 1);
    tsr_compare_result cmp;
    assert_int_equal(tsr__image_compare(img, src, &cmp, &err), TSR_OK);
    assert_true(cmp.psnr > 20.0); /* the picture (25 dB: sharp edges, 4:2:0), not garbage */
    tsr_image_free(img);
    ctl = rec_ctl(&r, 1);
    assert_int_equal(tsr__image_load(prog, 0, NULL, &ctl, &img, &err), TSR_ERR_CANCELLED);
    assert_null(img);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.progress_calls, 0);
    char want[600];
    snprintf(want, sizeof want, "cancelled while decoding '%s'", prog);
    assert_string_equal(err.msg, want);
    tsr_image_free(src);
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

/* A cancelled encode over an existing file: the file keeps its bytes, and the directory holds
 * nothing else, for each format (PNG, JPEG, TIFF, WebP) and for a cancel at the first and at a
 * later look. */
static void encode_cancel_keeps_output(void **state)
{
    tsr_image *img = smooth_image(1500, 1000, 3);
    const char *dir = fresh_dir("keep");
    static const char *names[] = {"out.png", "out.jpg", "out.tif", "out.webp"};
    static const char *listed[] = {"out.png", "out.jpg,out.png", "out.jpg,out.png,out.tif",
                                   "out.jpg,out.png,out.tif,out.webp"};
    for (int f = 0; f < 4; f++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        tsr__err err;
        tsr__err_clear(&err);
        tsr_image *small = smooth_image(9, 7, 3);
        assert_int_equal(tsr__image_save(small, path, NULL, NULL, &err), TSR_OK);
        tsr_image_free(small);
        size_t len;
        unsigned char *before = tu_slurp(path, &len);
        for (int after = 0; after <= 4; after += 4) {
            rec r;
            tsr__io_ctl ctl = rec_ctl(&r, after);
            assert_int_equal(tsr__image_save(img, path, NULL, &ctl, &err), TSR_ERR_CANCELLED);
            assert_cancelled(&r);
            char want[700];
            snprintf(want, sizeof want, "cancelled while encoding '%s'", path);
            assert_string_equal(err.msg, want);
            size_t len2;
            unsigned char *now = tu_slurp(path, &len2);
            assert_int_equal(len2, len);
            assert_memory_equal(now, before, len);
            free(now);
            assert_string_equal(dir_names(dir), listed[f]);
        }
        free(before);
    }
    tsr_image_free(img);
}

/* A tall image: progress in many steps to the end, through PNG (8 and 16 bits, the packing
 * thread), JPEG, and to memory; read back, the same. */
static void encode_progress(void **state)
{
    tsr_image *img = smooth_image(37, 5000, 4);
    static const struct {
        const char *name;
        tsr_format format;
        int depth, compression;
    } cases[] = {{"p8.png", TSR_FORMAT_PNG, 8, 6},
                 {"p16.png", TSR_FORMAT_PNG, 16, 9},
                 {"p0.png", TSR_FORMAT_PNG, 8, 0},
                 {"j.jpg", TSR_FORMAT_JPEG, 8, -1}};
    for (int i = 0; i < 4; i++) {
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.format = cases[i].format;
        o.bit_depth = cases[i].depth;
        o.compression = cases[i].compression;
        const char *path = tmp_path(cases[i].name);
        rec r;
        tsr__io_ctl ctl = rec_ctl(&r, -1);
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_save(img, path, &o, &ctl, &err), TSR_OK);
        assert_complete(&r, 5000);
        ctl = rec_ctl(&r, -1);
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(tsr__image_encode(img, &o, &ctl, &buf, &len, &err), TSR_OK);
        assert_complete(&r, 5000);
        tsr_image *back = NULL;
        ctl = rec_ctl(&r, -1);
        assert_int_equal(tsr__image_decode(buf, len, "m", 0, NULL, &ctl, &back, &err), TSR_OK);
        assert_complete(&r, 5000);
        if (o.format == TSR_FORMAT_PNG)
            assert_true(tu_max_diff(img, back) == 0.0);
        tsr_image_free(back);
        ctl = rec_ctl(&r, 5);
        void *none = (void *)1;
        assert_int_equal(tsr__image_encode(img, &o, &ctl, &none, &len, &err), TSR_ERR_CANCELLED);
        assert_cancelled(&r);
        assert_null(none);
        assert_string_equal(err.msg, "cancelled while encoding 'memory'");
        free(buf);
    }
    assert_int_equal(hidden_count(tmpdir), 0);
    tsr_image_free(img);
}

/* A NULL ctl, or one with NULL callbacks, is neither asked nor told. */
static void null_callbacks(void **state)
{
    tsr_image *img = smooth_image(50, 300, 3);
    tsr__io_ctl none = {NULL, NULL, NULL, NULL};
    tsr__err err;
    tsr__err_clear(&err);
    const char *path = tmp_path("nocb.png");
    assert_int_equal(tsr__image_save(img, path, NULL, &none, &err), TSR_OK);
    tsr_image *back = NULL;
    assert_int_equal(tsr__image_load(path, 0, NULL, &none, &back, &err), TSR_OK);
    assert_true(tu_max_diff(img, back) == 0.0);
    tsr_image_free(back);
    rec r;
    tsr__io_ctl only_progress = rec_ctl(&r, -1);
    only_progress.cancelled = NULL;
    assert_int_equal(tsr__image_load(path, 0, NULL, &only_progress, &back, &err), TSR_OK);
    assert_int_equal(r.calls, 0);
    assert_int_equal(r.last_done, 300);
    tsr_image_free(back);
    tsr_image_free(img);
}

/* ---------------------------------------------------------------------------------------------
 * Temporary files */

/* A ctl whose cancelled() stops the encoder's thread until the test lets it go. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived; /* encoders waiting at the gate */
    int open;    /* let them go */
    int answer;  /* what cancelled() then returns */
} gate;

static int gate_cancelled(void *user)
{
    gate *g = user;
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    int answer = g->answer;
    pthread_mutex_unlock(&g->mu);
    return answer;
}

static void gate_init(gate *g, int answer)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->arrived = g->open = 0;
    g->answer = answer;
}

/* Wait until n encoders are at the gate; 0 if they are not there within 20 s (an encoder that
 * never looks at cancelled(), or ended early). */
static int gate_wait_arrived(gate *g, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    int timed_out = 0;
    pthread_mutex_lock(&g->mu);
    while (g->arrived < n && !timed_out)
        timed_out = pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT;
    int arrived = g->arrived >= n;
    pthread_mutex_unlock(&g->mu);
    return arrived;
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

typedef struct saver {
    pthread_t thread;
    const tsr_image *img;
    char path[600];
    tsr__io_ctl ctl;
    tsr__err err;
    tsr_status rc;
} saver;

static void *saver_main(void *arg)
{
    saver *s = arg;
    tsr__err_clear(&s->err);
    s->rc = tsr__image_save(s->img, s->path, NULL, &s->ctl, &s->err);
    return NULL;
}

/* While a save waits at its first look at cancelled(), its temporary file exists;
 * tsr_cleanup_temp_files() removes it and nothing else; the save then ends cleanly. */
static void cleanup_removes_temp_file(void **state)
{
    const char *dir = fresh_dir("cleanup");
    char keep[600];
    snprintf(keep, sizeof keep, "%s/keep.png", dir);
    tsr_image *img = smooth_image(64, 200, 3);
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_save(img, keep, NULL, NULL, &err), TSR_OK);
    tsr_cleanup_temp_files(); /* nothing registered: nothing happens */
    assert_string_equal(dir_names(dir), "keep.png");

    for (int answer = 1; answer >= 0; answer--) {
        gate g;
        gate_init(&g, answer);
        saver s = {.img = img, .ctl = {gate_cancelled, NULL, &g}};
        snprintf(s.path, sizeof s.path, "%s/out.png", dir);
        assert_int_equal(pthread_create(&s.thread, NULL, saver_main, &s), 0);
        int arrived = gate_wait_arrived(&g, 1);
        int hidden = hidden_count(dir);
        tsr_cleanup_temp_files();
        int hidden_after = hidden_count(dir);
        const char *names = dir_names(dir);
        int names_ok = !strcmp(names, "keep.png");
        gate_open(&g); /* before any assertion, so that the thread always ends */
        pthread_join(s.thread, NULL);
        gate_destroy(&g);
        assert_true(arrived);
        assert_int_equal(hidden, 1);
        assert_int_equal(hidden_after, 0);
        assert_true(names_ok);
        if (answer) {
            /* Cancelled: the unlink of a file already gone is no error. */
            assert_int_equal(s.rc, TSR_ERR_CANCELLED);
        } else {
            /* Went on writing the removed file: the rename finds nothing to rename. */
            assert_int_equal(s.rc, TSR_ERR_IO);
            assert_non_null(strstr(s.err.msg, "cannot replace the file"));
        }
        assert_string_equal(dir_names(dir), "keep.png");
    }

    /* A finished save is no longer registered: its output stays. */
    tsr_cleanup_temp_files();
    assert_string_equal(dir_names(dir), "keep.png");
    tsr_image_free(img);
}

/* More saves at once than the table has slots: all of them work, the cleanup removes the
 * registered ones (the table's 64), and the others finish as usual. */
#define MANY 70
static void cleanup_many_saves(void **state)
{
    const char *dir = fresh_dir("many");
    tsr_image *img = smooth_image(8, 8, 1);
    gate g;
    gate_init(&g, 1);
    saver *s = calloc(MANY, sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < MANY; i++) {
        s[i].img = img;
        s[i].ctl = (tsr__io_ctl){gate_cancelled, NULL, &g, NULL};
        snprintf(s[i].path, sizeof s[i].path, "%s/out%02d.png", dir, i);
        assert_int_equal(pthread_create(&s[i].thread, NULL, saver_main, &s[i]), 0);
    }
    int arrived = gate_wait_arrived(&g, MANY);
    int before = hidden_count(dir);
    tsr_cleanup_temp_files();
    int after = hidden_count(dir);
    gate_open(&g);
    for (int i = 0; i < MANY; i++)
        pthread_join(s[i].thread, NULL);
    gate_destroy(&g);
    assert_true(arrived);
    assert_int_equal(before, MANY);
    assert_int_equal(after, MANY - 64);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(s[i].rc, TSR_ERR_CANCELLED);
    assert_string_equal(dir_names(dir), "");

    /* Slots are given back: four threads at a time, a hundred saves in all. */
    for (int i = 0; i < 4; i++) {
        s[i].ctl = (tsr__io_ctl){NULL, NULL, NULL, NULL};
        snprintf(s[i].path, sizeof s[i].path, "%s/seq%d.png", dir, i);
    }
    for (int round = 0; round < 25; round++) {
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_create(&s[i].thread, NULL, saver_main, &s[i]), 0);
        for (int i = 0; i < 4; i++) {
            pthread_join(s[i].thread, NULL);
            assert_int_equal(s[i].rc, TSR_OK);
        }
    }
    assert_string_equal(dir_names(dir), "seq0.png,seq1.png,seq2.png,seq3.png");
    tsr_cleanup_temp_files();
    assert_string_equal(dir_names(dir), "seq0.png,seq1.png,seq2.png,seq3.png");
    free(s);
    tsr_image_free(img);
}

static void on_term(int sig)
{
    tsr_cleanup_temp_files();
    _exit(0);
}

/* What the CLI does: a signal handler calls tsr_cleanup_temp_files() and _exit()s while a save
 * is under way on another thread. Run in a child, which the signal ends. */
static void cleanup_from_signal_handler(void **state)
{
    const char *dir = fresh_dir("signal");
    char path[600];
    snprintf(path, sizeof path, "%s/out.png", dir);
    tsr_image *img = smooth_image(64, 200, 3);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, NULL))
            _exit(2);
        static gate g;
        gate_init(&g, 1);
        static saver s;
        s.img = img;
        s.ctl = (tsr__io_ctl){gate_cancelled, NULL, &g, NULL};
        snprintf(s.path, sizeof s.path, "%s", path);
        if (pthread_create(&s.thread, NULL, saver_main, &s))
            _exit(3);
        if (!gate_wait_arrived(&g, 1) || hidden_count(dir) != 1)
            _exit(4);
        kill(getpid(), SIGTERM);
        for (;;)
            pause();
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(dir_names(dir), "");
    tsr_image_free(img);
}

/* The nodes hand the run's control to the codecs: on an interrupted engine, image.load and
 * image.save stop with the codecs' cancel and write nothing. */
static void nodes_pass_the_run_control(void **state)
{
    tsr_engine_options opt;
    tsr_engine_options_init(&opt);
    opt.device = "ref";
    char msg[256];
    tsr_engine *e = NULL;
    assert_int_equal(tsr_engine_new(&opt, &e, msg, sizeof msg), TSR_OK);
    const char *dir = fresh_dir("nodes");
    char load_kv[800], save_kv[800], out[700];
    snprintf(load_kv, sizeof load_kv, "path=%s", big_png);
    snprintf(out, sizeof out, "%s/out.png", dir);
    snprintf(save_kv, sizeof save_kv, "path=%s", out);
    const char *load_args[] = {load_kv}, *save_args[] = {save_kv};
    tsr_node *load = tu_node("image.load", load_args, 1);
    tsr_node *save = tu_node("image.save", save_args, 1);
    tsr_image *img = smooth_image(64, 200, 3);

    tsr_exec ex;
    tsr__exec_init(&ex, e, load);
    tsr_engine_interrupt(e); /* every context of the engine made before now is cancelled */
    assert_true(tsr__exec_cancelled(&ex));
    tsr_image *got = NULL;
    assert_int_equal(load->cls->produce(&ex, load, &got), TSR_ERR_CANCELLED);
    assert_null(got);
    char want[800];
    snprintf(want, sizeof want, "cancelled while decoding '%s'", big_png);
    assert_string_equal(ex.err->msg, want);

    tsr__exec_init(&ex, e, save);
    assert_int_equal(save->cls->consume(&ex, save, img), TSR_ERR_CANCELLED);
    snprintf(want, sizeof want, "cancelled while encoding '%s'", out);
    assert_string_equal(ex.err->msg, want);
    assert_string_equal(dir_names(dir), "");

    tsr_image_free(img);
    tsr__node_free(load);
    tsr__node_free(save);
    tsr_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(png_decode_cancel),
        cmocka_unit_test(png_interlaced_progress),
        cmocka_unit_test(jpeg_decode_cancel),
        cmocka_unit_test(encode_cancel_keeps_output),
        cmocka_unit_test(encode_progress),
        cmocka_unit_test(null_callbacks),
        cmocka_unit_test(cleanup_removes_temp_file),
        cmocka_unit_test(cleanup_many_saves),
        cmocka_unit_test(cleanup_from_signal_handler),
        cmocka_unit_test(nodes_pass_the_run_control),
    };
    return cmocka_run_group_tests_name("image_ctl", tests, group_setup, group_teardown);
}
