/* TIFF (engine/codec_tiff.c): files written by Pillow, tifffile, vips and tiffcp against their
 * pixels (tests/golden/tiff/, tools/gen-tiff-golden.py), round trips of every depth, channel
 * count and compression (float32 bit for bit), metadata, corrupt and truncated files, the pixel
 * limit, oversized tiles, and cancels. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"

#define GOLDEN "tests/golden/tiff/"

static tsr_status decode_mem(const void *buf, size_t len, uint64_t max_pixels,
                             const tsr__io_ctl *ctl, tsr_image **out, tsr__err *err)
{
    tsr__err_clear(err);
    *out = NULL;
    return tsr__image_decode(buf, len, "mem.tif", max_pixels, NULL, ctl, out, err);
}

static tsr_status codec_decode(const void *buf, size_t len, int header_only, tsr__dec *d,
                               tsr__err *err)
{
    return tu_codec_decode(&tsr__codec_tiff, buf, len, header_only, d, err);
}

static void *encode(const tsr_image *img, int depth, tsr_tiff_compression comp, size_t *len)
{
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = TSR_FORMAT_TIFF;
    o.bit_depth = depth;
    o.tiff_compression = comp;
    void *buf = NULL;
    tsr__err err;
    tsr__err_clear(&err);
    tsr_status rc = tsr__image_encode(img, &o, NULL, &buf, len, &err);
    if (rc)
        fail_msg("encode: %s", err.msg);
    return buf;
}

/* Bit for bit (so that -0.0 and 0.0 differ, and NaN payloads count). */
static void assert_same_bits(const tsr_image *a, const tsr_image *b, const char *what)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels)
        fail_msg("%s: %dx%dx%d vs %dx%dx%d", what, a->width, a->height, a->channels, b->width,
                 b->height, b->channels);
    size_t n = (size_t)a->width * a->height * a->channels;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a->data[i], &b->data[i], 4))
            fail_msg("%s: sample %zu (channel %zu, pixel %zu) is %.9g, expected %.9g", what, i,
                     i / ((size_t)a->width * a->height), i % ((size_t)a->width * a->height),
                     (double)a->data[i], (double)b->data[i]);
}

/* ---------------------------------------------------------------------------------------------
 * Other writers' files */

static void sniff(void **state)
{
    const tsr__codec *c = &tsr__codec_tiff;
    assert_int_equal(c->sniff((const unsigned char *)"II*\0xxxx", 8), 1);
    assert_int_equal(c->sniff((const unsigned char *)"MM\0*xxxx", 8), 1);
    assert_int_equal(c->sniff((const unsigned char *)"II+\0xxxx", 8), 1);
    assert_int_equal(c->sniff((const unsigned char *)"MM\0+xxxx", 8), 1);
    assert_int_equal(c->sniff((const unsigned char *)"II*\0", 4), 1);
    assert_int_equal(c->sniff((const unsigned char *)"II*", 3), -1);
    assert_int_equal(c->sniff((const unsigned char *)"MM", 2), -1);
    assert_int_equal(c->sniff((const unsigned char *)"I", 1), -1);
    assert_int_equal(c->sniff((const unsigned char *)"II*\1", 4), 0);
    assert_int_equal(c->sniff((const unsigned char *)"IM*\0", 4), 0);
    assert_int_equal(c->sniff((const unsigned char *)"\x89PNG", 4), 0);
    assert_int_equal(tsr__format_from_path("a/b.tif"), TSR_FORMAT_TIFF);
    assert_int_equal(tsr__format_from_path("a/b.TIFF"), TSR_FORMAT_TIFF);
    assert_string_equal(tsr__format_name(TSR_FORMAT_TIFF), "TIFF");
}

/* Each file of index.tsv decodes to its reference: integer levels exactly (both go through
 * k / (2^depth - 1)), floats bit for bit; a probe reports the same shape. */
static void golden_files(void **state)
{
    FILE *f = fopen(GOLDEN "index.tsv", "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char name[128], ref[128];
        int ch, depth;
        assert_int_equal(sscanf(line, "%127[^\t]\t%127[^\t]\t%d\t%d", name, ref, &ch, &depth), 4);
        char path[256], rpath[256];
        snprintf(path, sizeof path, GOLDEN "%s", name);
        snprintf(rpath, sizeof rpath, GOLDEN "%s", ref);
        tsr__err err;
        tsr__err_clear(&err);
        tsr_image *img = NULL;
        /* As stored: orient6.tif's tag is checked by orientation_reported. */
        const tsr__load_opts lo = {.orientation = TSR_ORIENT_IGNORE};
        if (tsr__image_load(path, 0, &lo, NULL, &img, &err))
            fail_msg("%s: %s", name, err.msg);
        tsr_image *want = strstr(ref, ".f32") ? tu_read_f32(rpath) : tu_load(rpath);
        if (img->channels != ch || img->bit_depth != depth)
            fail_msg("%s: %d channels at %d bits, expected %d at %d", name, img->channels,
                     img->bit_depth, ch, depth);
        assert_same_bits(img, want, name);
        tsr_port_info info;
        memset(&info, 0, sizeof info);
        if (tsr__image_probe(path, 0, &lo, &info, &err))
            fail_msg("%s: probe: %s", name, err.msg);
        assert_int_equal(info.width, img->width);
        assert_int_equal(info.height, img->height);
        assert_int_equal(info.channels, ch);
        assert_int_equal(info.bit_depth, depth);
        tsr_image_free(img);
        tsr_image_free(want);
        n++;
    }
    fclose(f);
    assert_true(n >= 25);
}

/* The Orientation tag is handed to the caller, in header-only mode too; the pixels stay as
 * stored. */
static void orientation_reported(void **state)
{
    size_t len;
    unsigned char *buf = tu_slurp(GOLDEN "orient6.tif", &len);
    for (int header_only = 0; header_only <= 1; header_only++) {
        tsr__dec d;
        tsr__err err;
        assert_int_equal(codec_decode(buf, len, header_only, &d, &err), TSR_OK);
        assert_int_equal(d.meta.orientation, 6);
        assert_int_equal(d.info.width, 37);
        assert_int_equal(d.info.height, 23);
        assert_true(header_only ? d.img == NULL : d.img != NULL);
        tsr_image_free(d.img);
        tsr__meta_free(&d.meta);
    }
    free(buf);
    /* A default load applies it: 6 is a quarter turn clockwise, out(x, y) = in(y, H - 1 - x). */
    tsr__err err0;
    tsr__err_clear(&err0);
    tsr_image *stored = NULL, *upright = NULL;
    const tsr__load_opts ignore = {.orientation = TSR_ORIENT_IGNORE};
    assert_int_equal(tsr__image_load(GOLDEN "orient6.tif", 0, &ignore, NULL, &stored, &err0),
                     TSR_OK);
    assert_int_equal(tsr__image_load(GOLDEN "orient6.tif", 0, NULL, NULL, &upright, &err0), TSR_OK);
    assert_int_equal(upright->width, 23);
    assert_int_equal(upright->height, 37);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 37; y++)
            for (int x = 0; x < 23; x++)
                assert_true(upright->data[((size_t)c * 37 + y) * 23 + x] ==
                            stored->data[((size_t)c * 23 + (22 - x)) * 37 + y]);
    tsr_image_free(stored);
    tsr_image_free(upright);
    /* Our own files say top-left. */
    tsr_image *img = tu_random_image(5, 4, 3, 1);
    buf = encode(img, 8, TSR_TIFF_NONE, &len);
    tsr__dec d;
    tsr__err err;
    assert_int_equal(codec_decode(buf, len, 1, &d, &err), TSR_OK);
    assert_int_equal(d.meta.orientation, 1);
    tsr__meta_free(&d.meta);
    free(buf);
    tsr_image_free(img);
}

static void unsupported_refused(void **state)
{
    static const struct {
        const char *file, *says;
    } cases[] = {{"cmyk.tif", "photometric interpretation separated (CMYK) (5) is not supported"},
                 {"int16.tif", "16-bit signed integer samples"}};
    for (int i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN "%s", cases[i].file);
        tsr__err err;
        tsr__err_clear(&err);
        tsr_image *img = NULL;
        assert_int_equal(tsr__image_load(path, 0, NULL, NULL, &img, &err), TSR_ERR_UNSUPPORTED);
        assert_null(img);
        tu_assert_msg_has(&err, cases[i].says);
        tu_assert_msg_has(&err, "(expected ");
    }
}

/* ---------------------------------------------------------------------------------------------
 * Round trips */

/* An image whose samples sit on k / maxval, or (maxval 0) floats of every kind: outside 0..1,
 * negative, denormal, signed zero, huge. */
static tsr_image *level_image(int w, int h, int ch, unsigned maxval, uint32_t seed)
{
    tsr_image *img = tu_random_image(w, h, ch, seed);
    size_t n = (size_t)w * h * ch;
    static const float special[] = {0.0f,    -0.0f,    1.0f,  -1.5f,    3.75f,        1e-40f,
                                    -1e-42f, 1.4e-45f, 1e30f, -2.5e-8f, 0.999999940f, 1.00000012f};
    for (size_t i = 0; i < n; i++) {
        if (maxval) {
            img->data[i] = (float)lrintf(img->data[i] * (float)maxval) / (float)maxval;
        } else {
            img->data[i] = (img->data[i] - 0.3f) * 3.0f;
            if (i % 7 == 3)
                img->data[i] = special[(i / 7) % (sizeof special / sizeof *special)];
        }
    }
    return img;
}

/* Every channel count, depth and compression, to memory and to a file: integer levels and
 * float32 samples come back exactly, with the depth they were written at. */
static void round_trips(void **state)
{
    static const int depths[] = {8, 16, 32};
    static const tsr_tiff_compression comps[] = {TSR_TIFF_NONE, TSR_TIFF_LZW, TSR_TIFF_DEFLATE};
    char dir[] = "/tmp/tsr-tiff-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (int ch = 1; ch <= 4; ch++)
        for (int di = 0; di < 3; di++)
            for (int ci = 0; ci < 3; ci++) {
                int depth = depths[di];
                unsigned maxval = depth == 32 ? 0 : (1u << depth) - 1;
                /* 300 rows: several strips of TIFFDefaultStripSize. */
                tsr_image *img =
                    level_image(61, 300, ch, maxval, (uint32_t)(ch * 100 + di * 10 + ci));
                size_t len;
                void *buf = encode(img, depth, comps[ci], &len);
                char what[64];
                snprintf(what, sizeof what, "%d channels, %d bits, compression %d", ch, depth,
                         (int)comps[ci]);
                tsr__err err;
                tsr_image *back = NULL;
                if (decode_mem(buf, len, 0, NULL, &back, &err))
                    fail_msg("%s: %s", what, err.msg);
                assert_int_equal(back->bit_depth, depth);
                assert_same_bits(back, img, what);
                tsr_image_free(back);
                free(buf);

                char path[128];
                snprintf(path, sizeof path, "%s/rt.tif", dir);
                tsr_save_options o;
                tsr_save_options_init(&o);
                o.bit_depth = depth;
                o.tiff_compression = comps[ci];
                tsr__err_clear(&err);
                if (tsr__image_save(img, path, &o, NULL, &err))
                    fail_msg("%s: save: %s", what, err.msg);
                if (tsr__image_load(path, 0, NULL, NULL, &back, &err))
                    fail_msg("%s: load: %s", what, err.msg);
                assert_same_bits(back, img, what);
                tsr_image_free(back);
                unlink(path);
                tsr_image_free(img);
            }
    rmdir(dir);
}

/* Off-level samples quantize as tsr__quantize does; a float image saves as float by default
 * (bit_depth 0: the source depth), an 8-bit one as 8-bit. */
static void quantization_and_default_depth(void **state)
{
    tsr_image *img = tu_random_image(33, 17, 3, 7);
    img->data[0] = -0.25f;
    img->data[1] = 1.5f;
    img->data[2] = NAN;
    for (int depth = 8; depth <= 16; depth += 8) {
        size_t len;
        void *buf = encode(img, depth, TSR_TIFF_DEFLATE, &len);
        tsr__err err;
        tsr_image *back = NULL;
        assert_int_equal(decode_mem(buf, len, 0, NULL, &back, &err), TSR_OK);
        unsigned maxval = (1u << depth) - 1;
        size_t n = (size_t)33 * 17 * 3;
        for (size_t i = 0; i < n; i++)
            assert_true(back->data[i] ==
                        (float)tsr__quantize(img->data[i], maxval) / (float)maxval);
        tsr_image_free(back);
        free(buf);
    }
    static const struct {
        int src, want;
    } defaults[] = {{32, 32}, {16, 16}, {8, 8}, {0, 8}};
    for (int i = 0; i < 4; i++) {
        img->bit_depth = defaults[i].src;
        size_t len;
        void *buf = encode(img, 0, TSR_TIFF_DEFAULT, &len);
        tsr__err err;
        tsr_image *back = NULL;
        assert_int_equal(decode_mem(buf, len, 0, NULL, &back, &err), TSR_OK);
        assert_int_equal(back->bit_depth, defaults[i].want);
        tsr_image_free(back);
        free(buf);
    }
    /* A depth TIFF cannot hold. */
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = TSR_FORMAT_TIFF;
    o.bit_depth = 12;
    void *buf = NULL;
    size_t len = 0;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_ERR_INVALID);
    tu_assert_msg_has(&err, "bit depth 12 (expected 8, 16 or 32 for TIFF)");
    tsr_image_free(img);
}

/* Deflate and LZW shrink a smooth picture; the ICC profile given is embedded and read back. */
static void compression_and_icc(void **state)
{
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new(256, 128, 3, &img), TSR_OK);
    for (size_t i = 0; i < (size_t)256 * 128 * 3; i++)
        img->data[i] = (float)(i % 256) / 255.0f;
    size_t none, lzw, deflate;
    free(encode(img, 8, TSR_TIFF_NONE, &none));
    free(encode(img, 8, TSR_TIFF_LZW, &lzw));
    free(encode(img, 8, TSR_TIFF_DEFLATE, &deflate));
    assert_true(none >= (size_t)256 * 128 * 3);
    assert_true(lzw < none / 4);
    assert_true(deflate < none / 4);

    unsigned char icc[300];
    for (size_t i = 0; i < sizeof icc; i++)
        icc[i] = (unsigned char)(i * 7 + 3);
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = TSR_FORMAT_TIFF;
    o.icc = icc;
    o.icc_len = sizeof icc;
    void *buf = NULL;
    size_t len = 0;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_OK);
    tsr__dec d;
    assert_int_equal(codec_decode(buf, len, 1, &d, &err), TSR_OK);
    assert_int_equal(d.meta.icc_len, sizeof icc);
    assert_memory_equal(d.meta.icc, icc, sizeof icc);
    tsr__meta_free(&d.meta);
    free(buf);
    tsr_image_free(img);
}

/* ---------------------------------------------------------------------------------------------
 * Bad files */

/* A classic little-endian TIFF of one IFD with these (tag, type, value) entries, all inline,
 * and `data` bytes of zeros after it; strip or tile offsets entries point at the data. */
typedef struct entry {
    uint16_t tag, type;
    uint32_t value;
} entry;

static unsigned char *make_tiff(const entry *e, int n, size_t data, size_t *len)
{
    size_t ifd = 8, size = ifd + 2 + 12 * (size_t)n + 4, off = size;
    *len = size + data;
    unsigned char *b = calloc(1, *len);
    assert_non_null(b);
    memcpy(b, "II*\0", 4);
    b[4] = (unsigned char)ifd;
    b[ifd] = (unsigned char)n;
    for (int i = 0; i < n; i++) {
        unsigned char *p = b + ifd + 2 + 12 * i;
        uint32_t v = e[i].tag == 273 || e[i].tag == 324 ? (uint32_t)off : e[i].value;
        p[0] = (unsigned char)e[i].tag;
        p[1] = (unsigned char)(e[i].tag >> 8);
        p[2] = (unsigned char)e[i].type;
        p[4] = 1;
        if (e[i].type == 3) {
            p[8] = (unsigned char)v;
            p[9] = (unsigned char)(v >> 8);
        } else {
            for (int k = 0; k < 4; k++)
                p[8 + k] = (unsigned char)(v >> (8 * k));
        }
    }
    return b;
}

/* A header over the pixel limit is refused before anything is allocated: 60000x60000 RGBA
 * float would be 57 GB, and ASan would report that allocation. */
static void pixel_limit(void **state)
{
    const entry e[] = {{256, 4, 60000}, {257, 4, 60000}, {258, 3, 32}, {259, 3, 1},
                       {262, 3, 2},     {273, 4, 0},     {277, 3, 4},  {278, 4, 60000},
                       {279, 4, 64},    {339, 3, 3}};
    size_t len;
    unsigned char *buf = make_tiff(e, 10, 64, &len);
    tsr__err err;
    tsr_image *img = NULL;
    assert_int_equal(decode_mem(buf, len, 0, NULL, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    tu_assert_msg_has(&err, "TIFF image of 60000x60000 = 3600000000 pixels exceeds the limit");
    free(buf);
    /* A real file over a small limit. */
    assert_int_equal(tsr__image_load(GOLDEN "rgb8_none.tif", 100, NULL, NULL, &img, &err),
                     TSR_ERR_LIMIT);
    assert_null(img);
}

/* A tile far larger than its image is refused before its buffer is allocated. */
static void tile_bomb(void **state)
{
    const entry e[] = {{256, 4, 16}, {257, 4, 16},    {258, 3, 32},    {259, 3, 1},
                       {262, 3, 2},  {277, 3, 4},     {322, 4, 32768}, {323, 4, 32768},
                       {324, 4, 0},  {325, 4, 65536}, {339, 3, 3}};
    size_t len;
    unsigned char *buf = make_tiff(e, 11, 64, &len);
    tsr__err err;
    tsr_image *img = NULL;
    assert_int_equal(decode_mem(buf, len, 0, NULL, &img, &err), TSR_ERR_DECODE);
    assert_null(img);
    tu_assert_msg_has(&err, "out of proportion to the 16x16 image");
    free(buf);
}

/* Cut at every length (a few hundred), and with bytes flipped: a clean error, never an image
 * and never a crash; a cut file is TSR_ERR_DECODE. */
static void truncated_and_corrupt(void **state)
{
    static const char *files[] = {"rgb8_lzw.tif", "rgbf_tiled.tif", "rgba16_separate.tif",
                                  "grayf_be.tif", NULL};
    tsr_image *src = level_image(29, 31, 4, 65535, 3);
    size_t own_len;
    unsigned char *own = encode(src, 16, TSR_TIFF_DEFLATE, &own_len);
    tsr_image_free(src);
    for (int fi = 0; fi < 5; fi++) {
        size_t len;
        unsigned char *buf;
        char path[256];
        if (files[fi]) {
            snprintf(path, sizeof path, GOLDEN "%s", files[fi]);
            buf = tu_slurp(path, &len);
        } else {
            snprintf(path, sizeof path, "our own 16-bit RGBA");
            buf = malloc(own_len);
            memcpy(buf, own, own_len);
            len = own_len;
        }
        size_t step = len / 150 + 1;
        for (size_t cut = 1; cut < len; cut += step) {
            tsr__err err;
            tsr_image *img = NULL;
            tsr_status rc = decode_mem(buf, cut, 0, NULL, &img, &err);
            if (rc != TSR_ERR_DECODE)
                fail_msg("%s cut at %zu of %zu: status %d (%s)", path, cut, len, (int)rc, err.msg);
            assert_null(img);
            assert_true(strncmp(err.msg, "mem.tif: ", 9) == 0);
            assert_true(strlen(err.msg) > 20);
        }
        uint32_t x = 12345;
        for (int round = 0; round < 300; round++) {
            unsigned char *bad = malloc(len);
            memcpy(bad, buf, len);
            for (int k = 0; k < 1 + round % 4; k++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bad[x % len] ^= (unsigned char)(1u << (x >> 8) % 8);
            }
            tsr__err err;
            tsr_image *img = NULL;
            tsr_status rc = decode_mem(bad, len, 0, NULL, &img, &err);
            if (rc) {
                if (rc != TSR_ERR_DECODE && rc != TSR_ERR_UNSUPPORTED && rc != TSR_ERR_LIMIT)
                    fail_msg("%s corrupted: status %d (%s)", path, (int)rc, err.msg);
                assert_null(img);
                assert_true(strncmp(err.msg, "mem.tif: ", 9) == 0);
            } else {
                assert_non_null(img);
                tsr_image_free(img);
            }
            free(bad);
        }
        free(buf);
    }
    free(own);
}

/* What libtiff says becomes the message, and nothing reaches stderr. */
static void messages(void **state)
{
    size_t len;
    unsigned char *buf = tu_slurp(GOLDEN "rgb8_none.tif", &len);
    tsr__err err;
    tsr_image *img = NULL;
    assert_int_equal(decode_mem(buf, 6, 0, NULL, &img, &err), TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "mem.tif: invalid TIFF file: ");
    assert_int_equal(decode_mem(buf, len - 200, 0, NULL, &img, &err), TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "mem.tif: truncated TIFF file: ");
    tu_assert_msg_has(&err, "(while reading row ");
    assert_null(strstr(err.msg, ": :"));
    free(buf);
    /* Ours put the directory last. */
    tsr_image *src = tu_random_image(20, 10, 3, 5);
    buf = encode(src, 8, TSR_TIFF_LZW, &len);
    tsr_image_free(src);
    assert_int_equal(decode_mem(buf, len - 10, 0, NULL, &img, &err), TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "mem.tif: invalid TIFF file: ");
    assert_int_equal(decode_mem(buf, len / 2, 0, NULL, &img, &err), TSR_ERR_DECODE);
    char want[128];
    snprintf(want, sizeof want, "past the end of its %zu bytes", len / 2);
    tu_assert_msg_has(&err, "mem.tif: truncated TIFF file: its first directory is at offset ");
    tu_assert_msg_has(&err, want);
    assert_int_equal(decode_mem("II*", 3, 0, NULL, &img, &err), TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "truncated TIFF file (3 bytes, too short for its header)");
    free(buf);
}

/* fail_on: a warning (a private tag libtiff does not know) refuses the file only under
 * fail_on warning; none of the goldens warns. A strip cut short fails by default, and under
 * fail_on none loads with its missing rows black, reported once through warn(). */
static int warned;
static char warning[1024];

static void on_warn(void *user, const char *msg)
{
    warned++;
    snprintf(warning, sizeof warning, "%s", msg);
}

static void fail_on(void **state)
{
    tsr__load_opts lo = {0};
    lo.fail_on = TSR_FAIL_ON_WARNING;
    tsr__err err;
    tsr_image *img = NULL;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_load(GOLDEN "private_tag.tif", 0, NULL, NULL, &img, &err), TSR_OK);
    tsr_image *want = tu_load(GOLDEN "rgb8.png");
    assert_same_bits(img, want, "private_tag.tif");
    tsr_image_free(img);
    img = NULL;
    assert_int_equal(tsr__image_load(GOLDEN "private_tag.tif", 0, &lo, NULL, &img, &err),
                     TSR_ERR_DECODE);
    assert_null(img);
    tu_assert_msg_has(&err, "TIFF warning (fail_on warning): ");
    tu_assert_msg_has(&err, "Unknown field with tag 65000");
    FILE *f = fopen(GOLDEN "index.tsv", "r");
    assert_non_null(f);
    char line[512], name[128], path[256];
    while (fgets(line, sizeof line, f)) {
        assert_int_equal(sscanf(line, "%127[^\t]", name), 1);
        snprintf(path, sizeof path, GOLDEN "%s", name);
        if (tsr__image_load(path, 0, &lo, NULL, &img, &err))
            fail_msg("%s under fail_on warning: %s", name, err.msg);
        tsr_image_free(img);
    }
    fclose(f);

    /* tifffile puts the directory first: cutting the end loses strips of pixels only. */
    size_t len;
    unsigned char *buf = tu_slurp(GOLDEN "rgb8_strips4.tif", &len);
    size_t cut = len * 2 / 3;
    assert_int_equal(decode_mem(buf, cut, 0, NULL, &img, &err), TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "(while reading row ");
    lo.fail_on = TSR_FAIL_ON_NONE;
    tsr__io_ctl ctl = {NULL, NULL, NULL, on_warn};
    warned = 0;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(buf, cut, "cut.tif", 0, &lo, &ctl, &img, &err), TSR_OK);
    assert_int_equal(warned, 1);
    if (!strstr(warning, "left black"))
        fail_msg("warning '%s'", warning);
    size_t plane = 37 * 23;
    int good = 0, black = 0;
    for (size_t y = 0; y < 23; y++) {
        int same = 1, zero = 1;
        for (size_t c = 0; c < 3; c++)
            for (size_t x = 0; x < 37; x++) {
                float v = img->data[c * plane + y * 37 + x];
                same &= v == want->data[c * plane + y * 37 + x];
                zero &= v == 0.0f;
            }
        if (same && !black)
            good++;
        else if (zero)
            black++;
        else
            fail_msg("row %zu is neither the file's nor black", y);
    }
    assert_true(good >= 4 && black >= 4 && good + black == 23);
    tsr_image_free(img);
    tsr_image_free(want);
    free(buf);
}

/* ---------------------------------------------------------------------------------------------
 * Cancel */

static int always(void *user)
{
    (*(int *)user)++;
    return 1;
}

static void cancel(void **state)
{
    static const char *files[] = {"rgb8_lzw.tif", "rgbf_tiled.tif", "rgba16_separate.tif"};
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN "%s", files[i]);
        int calls = 0;
        tsr__io_ctl ctl = {always, NULL, &calls, NULL};
        tsr__err err;
        tsr__err_clear(&err);
        tsr_image *img = NULL;
        assert_int_equal(tsr__image_load(path, 0, NULL, &ctl, &img, &err), TSR_ERR_CANCELLED);
        assert_null(img);
        assert_int_equal(calls, 1);
        tu_assert_msg_has(&err, "cancelled while decoding '");
    }
    tsr_image *img = level_image(40, 200, 3, 0, 9);
    for (int depth = 8; depth <= 32; depth *= 2) {
        int calls = 0;
        tsr__io_ctl ctl = {always, NULL, &calls, NULL};
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.format = TSR_FORMAT_TIFF;
        o.bit_depth = depth;
        void *buf = NULL;
        size_t len = 0;
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_encode(img, &o, &ctl, &buf, &len, &err), TSR_ERR_CANCELLED);
        assert_null(buf);
        assert_int_equal(calls, 1);
        assert_string_equal(err.msg, "cancelled while encoding 'memory'");
    }
    tsr_image_free(img);
}

/* A cancel at the 4th look stops after at most 3 bands of 64 rows, with progress reported up to
 * there, decoding and encoding; the whole run reports every row at the end. */
typedef struct counter {
    int calls, cancel_after;
    int64_t last_done, last_total;
} counter;

static int count_cancelled(void *user)
{
    counter *c = user;
    return ++c->calls > c->cancel_after;
}

static void count_progress(void *user, int64_t done, int64_t total)
{
    counter *c = user;
    assert_true(done >= c->last_done && done <= total);
    c->last_done = done;
    c->last_total = total;
}

static void cancel_mid_way(void **state)
{
    tsr_image *img = level_image(50, 2000, 3, 255, 4);
    size_t len;
    void *buf = encode(img, 8, TSR_TIFF_DEFLATE, &len);
    counter c = {0, 3, 0, 0};
    tsr__io_ctl ctl = {count_cancelled, count_progress, &c, NULL};
    tsr__err err;
    tsr_image *back = NULL;
    assert_int_equal(decode_mem(buf, len, 0, &ctl, &back, &err), TSR_ERR_CANCELLED);
    assert_null(back);
    assert_int_equal(c.calls, 4);
    assert_true(c.last_done > 0 && c.last_done <= 3 * 64);
    c = (counter){0, 1 << 30, 0, 0};
    assert_int_equal(decode_mem(buf, len, 0, &ctl, &back, &err), TSR_OK);
    assert_int_equal(c.last_done, 2000);
    assert_int_equal(c.last_total, 2000);
    assert_true(c.calls >= 2000 / 64);
    tsr_image_free(back);
    free(buf);

    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = TSR_FORMAT_TIFF;
    for (int after = 0; after <= 3; after += 3) {
        c = (counter){0, after, 0, 0};
        buf = NULL;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_encode(img, &o, &ctl, &buf, &len, &err), TSR_ERR_CANCELLED);
        assert_null(buf);
        assert_int_equal(c.calls, after + 1);
        assert_true(c.last_done <= (int64_t)after * 64);
    }
    tsr_image_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sniff),
        cmocka_unit_test(golden_files),
        cmocka_unit_test(orientation_reported),
        cmocka_unit_test(unsupported_refused),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(quantization_and_default_depth),
        cmocka_unit_test(compression_and_icc),
        cmocka_unit_test(pixel_limit),
        cmocka_unit_test(tile_bomb),
        cmocka_unit_test(truncated_and_corrupt),
        cmocka_unit_test(messages),
        cmocka_unit_test(fail_on),
        cmocka_unit_test(cancel),
        cmocka_unit_test(cancel_mid_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
