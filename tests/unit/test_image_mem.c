/* Images in memory: encoding to memory gives the bytes the file encoder writes (PNG 8/16-bit and
 * JPEG), decoding them gives the same pixels; the public wrappers; caller pixels (u8, u16, f32,
 * 1-4 channels, any stride) to and from planar float against plain loops, and every invalid
 * description refused. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tsr-mem-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* Random samples quantized to `depth` bits, so that a PNG of that depth keeps them exactly. */
static tsr_image *quantized_image(int w, int h, int ch, int depth, uint32_t seed)
{
    tsr_image *img = tu_random_image(w, h, ch, seed);
    float maxv = depth == 16 ? 65535.0f : 255.0f;
    for (size_t i = 0; i < (size_t)w * h * ch; i++)
        img->data[i] = (float)lrintf(img->data[i] * maxv) / maxv;
    img->bit_depth = depth;
    return img;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding to memory */

/* The memory encoder writes the file encoder's bytes; read back from memory, PNG gives the
 * pixels exactly and JPEG what its file gives. Sizes from one row to several MB (the buffer
 * grows many times). */
static void encode_matches_file(void **state)
{
    static const struct {
        int w, h, ch;
        tsr_format format;
        int depth, quality, compression, subsampling;
    } cases[] = {
        {1, 1, 1, TSR_FORMAT_PNG, 8, 0, -1, 0},
        {33, 17, 3, TSR_FORMAT_PNG, 8, 0, -1, 0},
        {31, 9, 2, TSR_FORMAT_PNG, 16, 0, 9, 0},
        {257, 65, 4, TSR_FORMAT_PNG, 16, 0, 1, 0},
        {1000, 1000, 3, TSR_FORMAT_PNG, 8, 0, 0, 0}, /* stored: 3 MB */
        {33, 17, 1, TSR_FORMAT_JPEG, 8, 80, -1, 0},
        {203, 101, 3, TSR_FORMAT_JPEG, 8, 0, -1, 0},
        {203, 101, 4, TSR_FORMAT_JPEG, 8, 100, -1, 444},
        {1500, 1000, 3, TSR_FORMAT_JPEG, 8, 100, -1, 422},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_image *img =
            quantized_image(cases[i].w, cases[i].h, cases[i].ch, cases[i].depth, (uint32_t)i + 1);
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.format = cases[i].format;
        o.bit_depth = cases[i].depth;
        o.quality = cases[i].quality;
        o.compression = cases[i].compression;
        o.subsampling = cases[i].subsampling;
        const char *path = tmp_path(o.format == TSR_FORMAT_PNG ? "f.png" : "f.jpg");
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
        size_t flen;
        unsigned char *file = tu_slurp(path, &flen);
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_OK);
        if (len != flen || memcmp(buf, file, len))
            fail_msg("case %zu: %zu bytes in memory, %zu in the file, or different bytes", i, len,
                     flen);

        tsr_image *from_mem = NULL, *from_file = NULL;
        assert_int_equal(tsr__image_decode(buf, len, "mem", 0, NULL, NULL, &from_mem, &err),
                         TSR_OK);
        assert_int_equal(tsr__image_load(path, 0, NULL, NULL, &from_file, &err), TSR_OK);
        assert_true(tu_max_diff(from_mem, from_file) == 0.0);
        assert_int_equal(from_mem->bit_depth, cases[i].depth);
        if (o.format == TSR_FORMAT_PNG)
            assert_true(tu_max_diff(from_mem, img) == 0.0);
        else
            assert_int_equal(from_mem->channels, cases[i].ch <= 2 ? 1 : 3);
        tsr_image_free(from_mem);
        tsr_image_free(from_file);
        free(buf);
        free(file);
        tsr_image_free(img);
    }
}

/* Bad arguments: no format (there is no file name to take it from), NULL outputs, bad
 * images, bad options. Nothing is handed back. */
static void encode_refuses(void **state)
{
    tsr_image *img = quantized_image(5, 4, 3, 8, 9);
    tsr_save_options o;
    tsr_save_options_init(&o);
    tsr__err err;
    tsr__err_clear(&err);
    void *buf = (void *)1;
    size_t len = 7;
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.msg, "memory"));
    assert_int_equal(tsr__image_encode(img, NULL, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    o.format = (tsr_format)7;
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    o.format = TSR_FORMAT_PNG;
    assert_int_equal(tsr__image_encode(img, &o, NULL, NULL, &len, &err), TSR_ERR_INVALID);
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, NULL, &err), TSR_ERR_INVALID);
    assert_int_equal(tsr__image_encode(NULL, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    tsr_image five = *img;
    five.channels = 5;
    assert_int_equal(tsr__image_encode(&five, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    o.bit_depth = 12;
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "bit depth 12"));
    o.bit_depth = 16;
    o.format = TSR_FORMAT_JPEG;
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    assert_null(buf);
    tsr_image_free(img);
}

/* tsr_image_encode / tsr_image_decode: messages through the engine, its pixel limit, the
 * buffer freed with tsr_free. */
static void public_wrappers(void **state)
{
    tsr_engine_options opt;
    tsr_engine_options_init(&opt);
    opt.device = "ref";
    opt.max_pixels = 1000;
    char msg[256];
    tsr_engine *e = NULL;
    assert_int_equal(tsr_engine_new(&opt, &e, msg, sizeof msg), TSR_OK);
    tsr_image *img = quantized_image(25, 40, 4, 16, 3);
    tsr_save_options o;
    tsr_save_options_init(&o);
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(tsr_image_encode(e, img, &o, &buf, &len), TSR_ERR_INVALID);
    assert_non_null(strstr(tsr_errmsg(e), "memory"));
    o.format = TSR_FORMAT_PNG;
    assert_int_equal(tsr_image_encode(e, img, &o, &buf, &len), TSR_OK);
    assert_string_equal(tsr_errmsg(e), "");
    tsr_image *back = NULL;
    assert_int_equal(tsr_image_decode(e, buf, len, &back), TSR_OK);
    assert_int_equal(tsr_image_bit_depth(back), 16);
    assert_true(tu_max_diff(img, back) == 0.0);
    tsr_image_free(back);
    tsr_free(buf);

    tsr_image *big = quantized_image(40, 40, 1, 8, 4);
    assert_int_equal(tsr_image_encode(e, big, &o, &buf, &len), TSR_OK);
    back = (tsr_image *)1;
    assert_int_equal(tsr_image_decode(e, buf, len, &back), TSR_ERR_LIMIT);
    assert_null(back);
    assert_non_null(strstr(tsr_errmsg(e), "memory: "));
    assert_non_null(strstr(tsr_errmsg(e), "1000 pixels"));
    tsr_free(buf);
    static const unsigned char junk[] = "GIF89a....";
    assert_int_equal(tsr_image_decode(e, junk, sizeof junk, &back), TSR_ERR_DECODE);
    assert_non_null(strstr(tsr_errmsg(e), "memory: "));
    assert_int_equal(tsr_image_decode(e, NULL, 5, &back), TSR_ERR_INVALID);
    assert_int_equal(tsr_image_decode(NULL, junk, sizeof junk, &back), TSR_ERR_INVALID);
    assert_int_equal(tsr_image_encode(NULL, img, &o, &buf, &len), TSR_ERR_INVALID);
    tsr_image_free(big);
    tsr_image_free(img);
    tsr_engine_free(e);
}

/* ---------------------------------------------------------------------------------------------
 * Caller pixels */

static size_t sample_bytes(tsr_sample s)
{
    return s == TSR_SAMPLE_U8 ? 1 : s == TSR_SAMPLE_U16 ? 2 : 4;
}

/* Sample (x, y, c) of px as a float, the plain way. */
static float ref_read(const tsr_pixels *px, size_t stride, int x, int y, int c)
{
    const unsigned char *p = (const unsigned char *)px->data + (size_t)y * stride +
                             ((size_t)x * px->channels + c) * sample_bytes(px->sample);
    if (px->sample == TSR_SAMPLE_U8)
        return (float)p[0] / 255.0f;
    if (px->sample == TSR_SAMPLE_U16) {
        uint16_t v;
        memcpy(&v, p, 2);
        return (float)v / 65535.0f;
    }
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* floor(clamp(v, 0, 1) * maxval + 0.5), NaN -> 0, in long double (exact there). */
static unsigned ref_level(float v, unsigned maxval)
{
    if (isnan(v) || v <= 0.0f)
        return 0;
    if (v >= 1.0f)
        return maxval;
    return (unsigned)floorl((long double)v * maxval + 0.5L);
}

/* Store v at (x, y, c) of px the plain way. */
static void ref_write(const tsr_pixels *px, size_t stride, int x, int y, int c, float v)
{
    unsigned char *p = (unsigned char *)px->data + (size_t)y * stride +
                       ((size_t)x * px->channels + c) * sample_bytes(px->sample);
    if (px->sample == TSR_SAMPLE_U8) {
        p[0] = (unsigned char)ref_level(v, 255);
    } else if (px->sample == TSR_SAMPLE_U16) {
        uint16_t q = (uint16_t)ref_level(v, 65535);
        memcpy(p, &q, 2);
    } else {
        memcpy(p, &v, 4);
    }
}

/* Values for to_pixels: specials, the rounding edges (k + 0.5) / maxval one float step either
 * side, plain levels, and anything in between. */
static float awkward_value(uint32_t *s, unsigned maxval)
{
    static const float specials[] = {NAN,    -NAN, INFINITY, -INFINITY, 0.0f,        -0.0f,
                                     -0.25f, 1.0f, 1.5f,     1e-40f,    0.99999994f, 5e-8f};
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    uint32_t r = *s;
    unsigned k = (r >> 8) % maxval;
    float edge = (float)((k + 0.5) / maxval);
    switch (r % 6) {
    case 0: return specials[(r >> 3) % (sizeof specials / sizeof specials[0])];
    case 1: return nextafterf(edge, 0.0f);
    case 2: return nextafterf(edge, 2.0f);
    case 3: return edge;
    case 4: return (float)k / (float)maxval;
    default: return (float)(r >> 8) / 16777216.0f * 1.2f - 0.1f;
    }
}

static void xorshift_bytes(unsigned char *p, size_t n, uint32_t *seed)
{
    for (size_t i = 0; i < n; i++) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        p[i] = (unsigned char)(*seed >> 24);
    }
}

/* One shape: from_pixels reads what the plain loop reads; to_pixels gives the bytes back and
 * leaves the padding alone; to_pixels of awkward values writes what the plain loop writes.
 * pad < 0: stride 0 (packed). */
static void pixels_case(tsr_sample smp, int ch, int w, int h, int pad, uint32_t *seed)
{
    size_t packed = (size_t)w * ch * sample_bytes(smp);
    size_t stride = pad < 0 ? packed : packed + (size_t)pad;
    size_t bytes = stride * h, plane = (size_t)w * h;
    unsigned char *buf = malloc(bytes), *out = malloc(bytes);
    assert_non_null(buf);
    assert_non_null(out);
    xorshift_bytes(buf, bytes, seed);
    tsr_pixels px = {buf, w, h, ch, smp, pad < 0 ? 0 : stride};

    tsr_image *img = NULL;
    assert_int_equal(tsr_image_from_pixels(&px, &img), TSR_OK);
    assert_int_equal(img->width, w);
    assert_int_equal(img->height, h);
    assert_int_equal(img->channels, ch);
    int depth = smp == TSR_SAMPLE_U8 ? 8 : smp == TSR_SAMPLE_U16 ? 16 : 0;
    assert_int_equal(img->bit_depth, depth);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                float want = ref_read(&px, stride, x, y, c);
                float got = img->data[c * plane + (size_t)y * w + x];
                if (memcmp(&want, &got, 4))
                    fail_msg("%d-byte samples, %dx%dx%d, stride %zu, (%d,%d,%d): %g, expected %g",
                             (int)sample_bytes(smp), w, h, ch, stride, x, y, c, got, want);
            }

    memset(out, 0xA5, bytes);
    tsr_pixels po = px;
    po.data = out;
    assert_int_equal(tsr_image_to_pixels(img, &po), TSR_OK);
    for (int y = 0; y < h; y++) {
        assert_memory_equal(out + y * stride, buf + y * stride, packed);
        for (size_t i = packed; i < stride; i++)
            assert_int_equal(out[y * stride + i], 0xA5);
    }

    unsigned maxval = smp == TSR_SAMPLE_U16 ? 65535 : 255;
    for (size_t i = 0; i < plane * ch; i++)
        img->data[i] = awkward_value(seed, maxval);
    memset(out, 0xA5, bytes);
    memset(buf, 0xA5, bytes);
    assert_int_equal(tsr_image_to_pixels(img, &po), TSR_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++)
                ref_write(&px, stride, x, y, c, img->data[c * plane + (size_t)y * w + x]);
    assert_memory_equal(out, buf, bytes);
    tsr_image_free(img);
    free(buf);
    free(out);
}

/* Every sample type, 1-4 channels, odd and even widths, packed and padded strides (an odd
 * padding leaves u16 and f32 samples unaligned). */
static void pixels_round_trip(void **state)
{
    static const tsr_sample samples[] = {TSR_SAMPLE_U8, TSR_SAMPLE_U16, TSR_SAMPLE_F32};
    static const int widths[] = {1, 2, 7, 64, 129};
    static const int heights[] = {1, 3, 10};
    static const int pads[] = {-1, 0, 1, 3, 64};
    uint32_t seed = 12345;
    for (int si = 0; si < 3; si++)
        for (int ch = 1; ch <= 4; ch++)
            for (int wi = 0; wi < 5; wi++)
                for (int hi = 0; hi < 3; hi++)
                    for (int pi = 0; pi < 5; pi++)
                        pixels_case(samples[si], ch, widths[wi], heights[hi], pads[pi], &seed);
}

/* Every invalid description is refused with TSR_ERR_INVALID, before any memory is touched;
 * from_pixels hands back no image. */
static void pixels_invalid(void **state)
{
    unsigned char buf[64] = {0};
    tsr_pixels ok = {buf, 4, 2, 3, TSR_SAMPLE_U8, 0};
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_from_pixels(&ok, &img), TSR_OK);
    assert_int_equal(tsr_image_to_pixels(img, &ok), TSR_OK);

    tsr_pixels bad[16];
    int n = 0;
    bad[n] = ok, bad[n++].data = NULL;
    bad[n] = ok, bad[n++].width = 0;
    bad[n] = ok, bad[n++].width = -4;
    bad[n] = ok, bad[n++].height = 0;
    bad[n] = ok, bad[n++].height = -1;
    bad[n] = ok, bad[n++].channels = 0;
    bad[n] = ok, bad[n++].channels = 5;
    bad[n] = ok, bad[n++].sample = (tsr_sample)0;
    bad[n] = ok, bad[n++].sample = (tsr_sample)4;
    bad[n] = ok, bad[n++].stride = 11; /* one byte short of a row */
    /* stride * height past SIZE_MAX */
    bad[n] = ok, bad[n].stride = SIZE_MAX / 2 + 1, bad[n++].height = 2;
    /* width * channels * 4 fits, stride * height does not */
    bad[n] = ok, bad[n].width = INT_MAX, bad[n].height = INT_MAX, bad[n].channels = 4,
    bad[n++].sample = TSR_SAMPLE_F32;
    for (int i = 0; i < n; i++) {
        tsr_image *got = (tsr_image *)1;
        if (tsr_image_from_pixels(&bad[i], &got) != TSR_ERR_INVALID)
            fail_msg("from_pixels accepted bad case %d", i);
        assert_null(got);
        if (tsr_image_to_pixels(img, &bad[i]) != TSR_ERR_INVALID)
            fail_msg("to_pixels accepted bad case %d", i);
    }
    tsr_image *none = (tsr_image *)1;
    assert_int_equal(tsr_image_from_pixels(NULL, &none), TSR_ERR_INVALID);
    assert_null(none);
    assert_int_equal(tsr_image_from_pixels(&ok, NULL), TSR_ERR_INVALID);

    /* to_pixels: the shape must be the image's */
    tsr_pixels other = ok;
    other.width = 3;
    other.stride = 12;
    assert_int_equal(tsr_image_to_pixels(img, &other), TSR_ERR_INVALID);
    other = ok;
    other.height = 1;
    assert_int_equal(tsr_image_to_pixels(img, &other), TSR_ERR_INVALID);
    other = ok;
    other.channels = 4;
    assert_int_equal(tsr_image_to_pixels(img, &other), TSR_ERR_INVALID);
    assert_int_equal(tsr_image_to_pixels(NULL, &ok), TSR_ERR_INVALID);
    assert_int_equal(tsr_image_to_pixels(img, NULL), TSR_ERR_INVALID);
    tsr_image_free(img);
}

/* Caller pixels through the codecs: u8 pixels in, a PNG in memory, the same u8 pixels out. */
static void pixels_through_png(void **state)
{
    int w = 13, h = 11, ch = 4;
    size_t stride = (size_t)w * ch + 5;
    unsigned char *in = malloc(stride * h), *out = calloc(stride, h);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < stride * h; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    tsr_pixels px = {in, w, h, ch, TSR_SAMPLE_U8, stride};
    tsr_image *img = NULL, *back = NULL;
    assert_int_equal(tsr_image_from_pixels(&px, &img), TSR_OK);
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = TSR_FORMAT_PNG;
    tsr__err err;
    tsr__err_clear(&err);
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_OK);
    assert_int_equal(tsr__image_decode(buf, len, "px", 0, NULL, NULL, &back, &err), TSR_OK);
    assert_int_equal(back->bit_depth, 8); /* from_pixels' depth chose 8 bits */
    tsr_pixels po = px;
    po.data = out;
    assert_int_equal(tsr_image_to_pixels(back, &po), TSR_OK);
    for (int y = 0; y < h; y++)
        assert_memory_equal(out + y * stride, in + y * stride, (size_t)w * ch);
    free(buf);
    free(in);
    free(out);
    tsr_image_free(img);
    tsr_image_free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_matches_file), cmocka_unit_test(encode_refuses),
        cmocka_unit_test(public_wrappers),     cmocka_unit_test(pixels_round_trip),
        cmocka_unit_test(pixels_invalid),      cmocka_unit_test(pixels_through_png),
    };
    return cmocka_run_group_tests_name("image_mem", tests, group_setup, group_teardown);
}
