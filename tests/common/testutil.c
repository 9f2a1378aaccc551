#include "testutil.h"
#include "codec.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tsr_engine *cl_engine, *ref_engine;

static void free_engines(void)
{
    tsr_engine_free(cl_engine);
    tsr_engine_free(ref_engine);
}

static tsr_engine *make_engine(const char *device)
{
    static int registered;
    if (!registered) {
        atexit(free_engines);
        registered = 1;
    }
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = device;
    char msg[1024] = "";
    tsr_engine *e = NULL;
    tsr_status rc = tsr_engine_new(&o, &e, msg, sizeof msg);
    if (rc)
        fail_msg("cannot create engine (device %s): %s", device ? device : "default", msg);
    return e;
}

tsr_engine *tu_engine_cl(void)
{
    if (!cl_engine) {
        const char *d = getenv("TSR_TEST_DEVICE"); /* NULL: default device */
        cl_engine = make_engine(d);
        if (tsr_engine_is_ref(cl_engine))
            fail_msg("TSR_DEVICE=ref is set: the OpenCL tests need a device");
    }
    return cl_engine;
}

tsr_engine *tu_engine_ref(void)
{
    if (!ref_engine)
        ref_engine = make_engine("ref");
    return ref_engine;
}

tsr_image *tu_random_image(int w, int h, int channels, uint32_t seed)
{
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new(w, h, channels, &img), TSR_OK);
    uint32_t s = seed ? seed : 1;
    size_t n = (size_t)w * h * channels;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        img->data[i] = (float)(s >> 8) / 16777216.0f;
    }
    return img;
}

double tu_max_diff(const tsr_image *a, const tsr_image *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->channels, b->channels);
    double m = 0;
    size_t n = (size_t)a->width * a->height * a->channels;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a->data[i] - (double)b->data[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

tsr_node *tu_node(const char *type, const char *const *kv, int n_kv)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_node *n = NULL;
    if (tsr__node_make(type, kv, n_kv, &n, &err))
        fail_msg("tsr__node_make(%s): %s", type, err.msg);
    return n;
}

tsr_image *tu_run(tsr_engine *e, const tsr_node *n, tsr_image *in, int tile_w, int tile_h)
{
    tsr_image *out = NULL;
    tsr_image *ins[1] = {in};
    tsr_status rc = tsr__run_node(e, n, ins, tile_w, tile_h, &out);
    if (rc)
        fail_msg("run %s on %s: %s: %s", n->cls->name, tsr_engine_is_ref(e) ? "ref" : "cl",
                 tsr_status_str(rc), tsr_errmsg(e));
    return out;
}

const char *tu_shared(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("TSR_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

tsr_image *tu_load(const char *path)
{
    tsr__err err;
    tsr__err_clear(&err);
    tsr_image *img = NULL;
    if (tsr__image_load(path, 0, NULL, NULL, &img, &err))
        fail_msg("load %s: %s", path, err.msg);
    return img;
}

void tu_assert_msg_has(const tsr__err *err, const char *needle)
{
    if (!strstr(err->msg, needle))
        fail_msg("message \"%s\" does not contain \"%s\"", err->msg, needle);
}

tsr_status tu_codec_decode(const tsr__codec *c, const void *buf, size_t len, int header_only,
                           tsr__dec *d, tsr__err *err)
{
    memset(d, 0, sizeof *d);
    tsr__err_clear(err);
    FILE *fp = fmemopen((void *)buf, len, "rb");
    if (!fp)
        fail_msg("fmemopen of %zu bytes failed", len);
    d->fp = fp;
    d->name = c->name;
    d->header_only = header_only;
    d->err = err;
    tsr_status rc = c->decode(d);
    fclose(fp);
    return rc;
}

unsigned char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

void tu_list_dir(const char *dir, const char *suffix, tu_name_list *out)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot read directory %s", dir);
    out->n = 0;
    struct dirent *de;
    size_t sl = strlen(suffix);
    int overflow = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= sl || n >= sizeof out->name[0] || strcmp(de->d_name + n - sl, suffix) != 0)
            continue;
        if (out->n == 256) {
            overflow = 1;
            break;
        }
        memcpy(out->name[out->n++], de->d_name, n + 1);
    }
    closedir(d);
    if (overflow)
        fail_msg("more than 256 names ending in %s in %s", suffix, dir);
    qsort(out->name, (size_t)out->n, sizeof out->name[0], cmp_name);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

tsr_image *tu_read_f32(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (tests run from the repository root)", path);
    unsigned char h[16];
    if (fread(h, 1, 16, f) != 16 || memcmp(h, "TF32", 4) != 0)
        fail_msg("%s: not a TF32 file", path);
    uint32_t w = le32(h + 4), ht = le32(h + 8), c = le32(h + 12);
    if (w == 0 || ht == 0 || c == 0 || c > 4 || w > 65536 || ht > 65536)
        fail_msg("%s: bad header %ux%ux%u", path, w, ht, c);
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new((int)w, (int)ht, (int)c, &img), TSR_OK);
    size_t n = (size_t)w * ht * c;
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        if (fread(b, 1, 4, f) != 4)
            fail_msg("%s: truncated at sample %zu of %zu", path, i, n);
        uint32_t u = le32(b);
        memcpy(&img->data[i], &u, 4);
    }
    if (fgetc(f) != EOF)
        fail_msg("%s: trailing bytes", path);
    fclose(f);
    return img;
}
