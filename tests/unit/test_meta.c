/* Metadata on load and save: EXIF orientation (the 8 cases against Pillow's exif_transpose of
 * files tagged by exiftool, pixels and probe sizes), orientation ignore, ICC to sRGB against
 * Pillow's ImageCms (a Display P3 profile made with lcms2), colour keep, profiles that cannot
 * be used, hostile EXIF blocks, and PNG/JPEG saves carrying ICC and EXIF. Goldens:
 * tools/gen-meta-golden.py. */
#include "testutil.h"

#include <lcms2.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta.h"

#define GOLDEN "tests/golden/meta/"

/* Against Pillow (lcms2 8-bit transforms): 8-bit files take the same path and match exactly
 * (measured 0); 16-bit ones take lcms2's float path, measured 0.54/255 (PNG) and 0.51/255 (JPEG
 * values), under the rounding of one 8-bit step. */
#define ICC_TOL (1.0 / 255)
/* Our libjpeg-turbo against Pillow's: measured 0 on these files. */
#define JPEG_TOL (1.0 / 255)

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera-meta-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct warnings {
    int n;
    char last[1024];
} warnings;

static void on_warn(void *user, const char *msg)
{
    warnings *w = user;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

static tsr_image *load_with(const char *path, int orientation, int colour, warnings *w)
{
    tsr__load_opts lo = {.orientation = orientation, .colour = colour};
    tsr__io_ctl ctl = {.warn = on_warn, .user = w};
    tsr__err err;
    tsr__err_clear(&err);
    tsr_image *img = NULL;
    if (tsr__image_load(path, 0, &lo, w ? &ctl : NULL, &img, &err))
        fail_msg("load %s: %s", path, err.msg);
    return img;
}

static tsr_port_info probe_with(const char *path, int orientation)
{
    tsr__load_opts lo = {.orientation = orientation};
    tsr_port_info info;
    tsr__err err;
    tsr__err_clear(&err);
    if (tsr__image_probe(path, 0, &lo, &info, &err))
        fail_msg("probe %s: %s", path, err.msg);
    return info;
}

static void save_with(const tsr_image *img, const char *path, const void *icc, size_t icc_len,
                      const void *exif, size_t exif_len)
{
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.quality = 95;
    o.subsampling = 444;
    o.icc = icc;
    o.icc_len = icc_len;
    o.exif = exif;
    o.exif_len = exif_len;
    tsr__err err;
    tsr__err_clear(&err);
    if (tsr__image_save(img, path, &o, NULL, &err))
        fail_msg("save %s: %s", path, err.msg);
}

static const char *tmp(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* An ICC profile lcms2 makes, as bytes (malloc'd). */
static unsigned char *profile_bytes(cmsHPROFILE p, size_t *len)
{
    cmsUInt32Number n = 0;
    assert_true(p && cmsSaveProfileToMem(p, NULL, &n));
    unsigned char *b = malloc(n);
    assert_non_null(b);
    assert_true(cmsSaveProfileToMem(p, b, &n));
    cmsCloseProfile(p);
    *len = n;
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * Orientation */

static void orientation_matches_pillow(void **state)
{
    static const char *const exts[] = {"png", "jpg"};
    for (int e = 0; e < 2; e++)
        for (int o = 1; o <= 8; o++) {
            char path[256], ref[256];
            snprintf(path, sizeof path, GOLDEN "orient-%d.%s", o, exts[e]);
            snprintf(ref, sizeof ref, GOLDEN "orient-%d.%s.ref.png", o, exts[e]);
            tsr_image *got = tu_load(path), *want = tu_load(ref);
            int swap = o >= 5;
            assert_int_equal(got->width, swap ? 16 : 24);
            assert_int_equal(got->height, swap ? 24 : 16);
            double d = tu_max_diff(got, want);
            if (d > (e == 0 ? 0.0 : JPEG_TOL))
                fail_msg("%s: differs from Pillow's exif_transpose by %g/255", path, d * 255);
            tsr_port_info info = probe_with(path, TSR_ORIENT_AUTO);
            assert_int_equal(info.width, got->width);
            assert_int_equal(info.height, got->height);
            tsr_image_free(got);
            tsr_image_free(want);
        }
    /* A little-endian block (Pillow) reads as exiftool's big-endian one. */
    tsr_image *le = tu_load(GOLDEN "orient-6-le.jpg"), *be = tu_load(GOLDEN "orient-6.jpg");
    assert_int_equal(le->width, 16);
    assert_true(tu_max_diff(le, be) == 0.0);
    tsr_image_free(le);
    tsr_image_free(be);
}

static void orientation_ignore(void **state)
{
    tsr_image *base = tu_load(GOLDEN "base.png");
    for (int o = 1; o <= 8; o++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN "orient-%d.png", o);
        tsr_image *img = load_with(path, TSR_ORIENT_IGNORE, TSR_COLOUR_SRGB, NULL);
        assert_true(tu_max_diff(img, base) == 0.0);
        tsr_port_info info = probe_with(path, TSR_ORIENT_IGNORE);
        assert_int_equal(info.width, 24);
        assert_int_equal(info.height, 16);
        tsr_image_free(img);
    }
    tsr_image_free(base);
}

/* Every case on a 3x2 two-channel image, by the definitions (EXIF 2.32, 4.6.4 A). */
static void orientation_definitions(void **state)
{
    for (int o = 1; o <= 8; o++) {
        tsr_image *img;
        assert_int_equal(tsr_image_new(3, 2, 2, &img), TSR_OK);
        for (int i = 0; i < 12; i++)
            img->data[i] = (float)i; /* plane 0: 0..5, plane 1: 6..11 */
        assert_int_equal(tsr__orient_image(&img, o), TSR_OK);
        int W = 3, H = 2, ow = img->width;
        for (int y = 0; y < img->height; y++)
            for (int x = 0; x < ow; x++) {
                int sx, sy; /* where the upright pixel (x, y) is stored */
                switch (o) {
                case 1: sx = x, sy = y; break;
                case 2: sx = W - 1 - x, sy = y; break;
                case 3: sx = W - 1 - x, sy = H - 1 - y; break;
                case 4: sx = x, sy = H - 1 - y; break;
                case 5: sx = y, sy = x; break;
                case 6: sx = y, sy = H - 1 - x; break;
                case 7: sx = W - 1 - y, sy = H - 1 - x; break;
                default: sx = W - 1 - y, sy = x; break;
                }
                for (int c = 0; c < 2; c++)
                    assert_true(img->data[c * 6 + y * ow + x] == (float)(c * 6 + sy * W + sx));
            }
        tsr_image_free(img);
    }
}

/* ---------------------------------------------------------------------------------------------
 * EXIF blocks */

/* A TIFF header and IFD0 of `n` entries, the Orientation one (type, count, value) among them. */
static size_t make_exif(unsigned char *b, int be, unsigned n, unsigned type, unsigned count,
                        unsigned value)
{
#define W16(p, v)                                                                                  \
    (be ? ((p)[0] = (unsigned char)((v) >> 8), (p)[1] = (unsigned char)(v))                        \
        : ((p)[0] = (unsigned char)(v), (p)[1] = (unsigned char)((v) >> 8)))
#define W32(p, v) (W16((p) + (be ? 2 : 0), (v)&0xFFFF), W16((p) + (be ? 0 : 2), (v) >> 16))
    memcpy(b, be ? "MM\0*" : "II*\0", 4);
    W32(b + 4, 8u);
    W16(b + 8, n);
    for (unsigned i = 0; i < n; i++) {
        unsigned char *e = b + 10 + 12 * i;
        int orient = i == n / 2;
        W16(e, orient ? 0x0112u : 0x0100u + i);
        W16(e + 2, orient ? type : 3u);
        W32(e + 4, orient ? count : 1u);
        W32(e + 8, 0u);
        if (type == 4 && orient)
            W32(e + 8, value);
        else
            W16(e + 8, orient ? value : 7u);
    }
    W32(b + 10 + 12 * n, 0u); /* no next IFD */
    return 14 + 12 * n;
#undef W16
#undef W32
}

static void exif_reader(void **state)
{
    unsigned char b[256];
    for (int be = 0; be < 2; be++) {
        size_t len = make_exif(b, be, 3, 3, 1, 6);
        assert_int_equal(tsr__exif_orientation(b, len), 6);
        assert_int_equal(tsr__exif_orientation(b, make_exif(b, be, 1, 4, 1, 8)), 8); /* LONG */
        assert_int_equal(tsr__exif_orientation(b, make_exif(b, be, 3, 3, 1, 9)), 0);
        assert_int_equal(tsr__exif_orientation(b, make_exif(b, be, 3, 3, 1, 0)), 0);
        assert_int_equal(tsr__exif_orientation(b, make_exif(b, be, 3, 2, 1, 6)), 0); /* ASCII */
        assert_int_equal(tsr__exif_orientation(b, make_exif(b, be, 3, 3, 0, 6)), 0); /* count */
        assert_int_equal(tsr__exif_orientation(b, make_exif(b, be, 0, 3, 1, 6)), 0); /* empty */
        /* The writer: a copy with 1 there and nothing else changed. */
        len = make_exif(b, be, 5, 3, 1, 6);
        unsigned char *up = tsr__exif_upright(b, len);
        assert_non_null(up);
        assert_int_equal(tsr__exif_orientation(up, len), 1);
        int changed = 0;
        for (size_t i = 0; i < len; i++)
            changed += up[i] != b[i];
        assert_int_equal(changed, 1); /* the SHORT's low byte: 6 -> 1 */
        free(up);
        up = tsr__exif_upright(b, make_exif(b, be, 1, 4, 1, 7));
        assert_int_equal(tsr__exif_orientation(up, 26), 1);
        free(up);
    }
}

/* Cut, pointing outside, looping, claiming more entries than there are: nothing read out of
 * bounds (ASan watches), no orientation taken, the writer copies the bytes unchanged. */
static void exif_hostile(void **state)
{
    unsigned char b[256];
    for (int be = 0; be < 2; be++) {
        size_t len = make_exif(b, be, 3, 3, 1, 6);
        /* Every cut, in an exact-size heap copy. */
        for (size_t n = 0; n < len; n++) {
            unsigned char *c = malloc(n ? n : 1);
            memcpy(c, b, n);
            int o = tsr__exif_orientation(c, n);
            /* IFD0 is whole (3 entries from byte 10) from 46 bytes on. */
            assert_int_equal(o, n >= 46 ? 6 : 0);
            unsigned char *up = tsr__exif_upright(c, n);
            if (n) {
                assert_non_null(up);
                free(up);
            }
            free(c);
        }
        /* IFD0 offset past the end, inside the header, at the last byte. */
        unsigned char *c = malloc(len);
        unsigned offs[] = {0xFFFFFFFFu, 0x7FFFFFF0u, 0, 4, (unsigned)len - 1};
        for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
            memcpy(c, b, len);
            unsigned v = offs[i];
            if (be) {
                c[4] = (unsigned char)(v >> 24), c[5] = (unsigned char)(v >> 16);
                c[6] = (unsigned char)(v >> 8), c[7] = (unsigned char)v;
            } else {
                c[7] = (unsigned char)(v >> 24), c[6] = (unsigned char)(v >> 16);
                c[5] = (unsigned char)(v >> 8), c[4] = (unsigned char)v;
            }
            assert_int_equal(tsr__exif_orientation(c, len), 0);
            unsigned char *up = tsr__exif_upright(c, len);
            assert_memory_equal(up, c, len);
            free(up);
        }
        /* A huge entry count, and one more than fits. */
        memcpy(c, b, len);
        c[8] = c[9] = 0xFF;
        assert_int_equal(tsr__exif_orientation(c, len), 0);
        memcpy(c, b, len);
        c[be ? 9 : 8] = 4;
        assert_int_equal(tsr__exif_orientation(c, len), 0);
        /* The next-IFD pointer at IFD0 itself (a loop for a reader that follows it). */
        memcpy(c, b, len);
        c[len - (be ? 1 : 4)] = 8;
        assert_int_equal(tsr__exif_orientation(c, len), 6);
        free(c);
    }
    assert_int_equal(tsr__exif_orientation(NULL, 0), 0);
    assert_int_equal(tsr__exif_orientation((const unsigned char *)"Exif\0\0II*\0", 10), 0);
    /* Random damage: whatever the bytes, a value in 0..8 and no stray read. */
    uint32_t x = 12345;
    for (int k = 0; k < 20000; k++) {
        size_t len = make_exif(b, k & 1, 1 + k % 7, 3, 1, 1 + k % 8);
        for (int m = 0; m < 1 + k % 4; m++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            b[x % len] = (unsigned char)(x >> 8);
        }
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t n = x % (len + 1);
        unsigned char *c = malloc(n ? n : 1);
        memcpy(c, b, n);
        int o = tsr__exif_orientation(c, n);
        assert_true(o >= 0 && o <= 8);
        free(tsr__exif_upright(c, n));
        free(c);
    }
}

/* A file whose EXIF is damaged loads as stored, as does one that states no orientation. */
static void hostile_exif_in_files(void **state)
{
    tsr_image *base = tu_load(GOLDEN "base.png");
    unsigned char b[64];
    size_t len = make_exif(b, 1, 3, 3, 1, 6);
    b[8] = b[9] = 0xFF; /* 65535 entries in 50 bytes */
    static const char *const names[] = {"hostile.png", "hostile.jpg"};
    for (int i = 0; i < 2; i++) {
        save_with(base, tmp(names[i]), NULL, 0, b, len);
        tsr_image *img = tu_load(tmp(names[i]));
        assert_int_equal(img->width, 24);
        assert_int_equal(img->height, 16);
        tsr_image_free(img);
        tsr__meta m;
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_read_meta(tmp(names[i]), &m, &err), TSR_OK);
        assert_int_equal(m.exif_len, len);
        assert_memory_equal(m.exif, b, len);
        tsr__meta_free(&m);
    }
    tsr_image_free(base);
}

/* ---------------------------------------------------------------------------------------------
 * ICC */

static void icc_matches_pillow(void **state)
{
    static const char *const files[] = {GOLDEN "icc-p3.png", GOLDEN "icc-p3.jpg"};
    size_t plen;
    unsigned char *p3 = tu_slurp(GOLDEN "p3.icc", &plen);
    for (int i = 0; i < 2; i++) {
        char ref[256];
        snprintf(ref, sizeof ref, "%s.ref.png", files[i]);
        warnings w = {0};
        tsr_image *got = load_with(files[i], TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, &w);
        tsr_image *want = tu_load(ref);
        double d = tu_max_diff(got, want);
        print_message("%s: sRGB conversion within %.2f/255 of Pillow's ImageCms\n", files[i],
                      d * 255);
        assert_true(d <= ICC_TOL);
        assert_int_equal(w.n, 0);
        /* keep: the values as stored, far from the converted ones. */
        tsr_image *kept = load_with(files[i], TSR_ORIENT_AUTO, TSR_COLOUR_KEEP, NULL);
        assert_true(tu_max_diff(kept, want) > 50.0 / 255);
        /* The profile itself comes through intact. */
        tsr__meta m;
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_read_meta(files[i], &m, &err), TSR_OK);
        assert_int_equal(m.icc_len, plen);
        assert_memory_equal(m.icc, p3, plen);
        assert_null(m.exif);
        tsr__meta_free(&m);
        /* The same values in a 16-bit file take lcms2's float path. */
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.bit_depth = 16;
        o.icc = p3;
        o.icc_len = plen;
        assert_int_equal(tsr__image_save(kept, tmp("p3-16.png"), &o, NULL, &err), TSR_OK);
        tsr_image *deep = load_with(tmp("p3-16.png"), TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, NULL);
        assert_int_equal(deep->bit_depth, 16);
        d = tu_max_diff(deep, want);
        print_message("%s at 16 bits: within %.2f/255 of Pillow's ImageCms\n", files[i], d * 255);
        assert_true(d <= ICC_TOL);
        tsr_image_free(deep);
        tsr_image_free(got);
        tsr_image_free(want);
        tsr_image_free(kept);
    }
    free(p3);
}

/* A profile that is sRGB already (lcms2's, the ICC's sRGB2014) changes nothing; a gray one on a
 * gray image converts it by its tone curve (linear 0.5 is sRGB 0.7354). */
static void icc_srgb_and_gray(void **state)
{
    tsr_image *rnd = tu_random_image(20, 10, 4, 7);
    size_t len;
    unsigned char *srgb = profile_bytes(cmsCreate_sRGBProfile(), &len);
    save_with(rnd, tmp("srgb.png"), srgb, len, NULL, 0);
    tsr_image *a = load_with(tmp("srgb.png"), TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, NULL);
    tsr_image *b = load_with(tmp("srgb.png"), TSR_ORIENT_AUTO, TSR_COLOUR_KEEP, NULL);
    assert_true(tu_max_diff(a, b) == 0.0);
    tsr_image_free(a);
    tsr_image_free(b);
    free(srgb);
    /* The ICC's own sRGB2014 (16-bit PNG from libjpeg-turbo's tests): sRGB too. */
    const char *monkey = tu_shared("testdata/libjpeg-turbo/monkey16.png");
    a = load_with(monkey, TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, NULL);
    b = load_with(monkey, TSR_ORIENT_AUTO, TSR_COLOUR_KEEP, NULL);
    assert_int_equal(a->bit_depth, 16);
    assert_true(tu_max_diff(a, b) == 0.0);
    tsr_image_free(a);
    tsr_image_free(b);

    cmsToneCurve *lin = cmsBuildGamma(NULL, 1.0);
    unsigned char *gray = profile_bytes(cmsCreateGrayProfile(cmsD50_xyY(), lin), &len);
    cmsFreeToneCurve(lin);
    tsr_image *g;
    assert_int_equal(tsr_image_new(4, 2, 2, &g), TSR_OK);
    for (int i = 0; i < 16; i++)
        g->data[i] = i < 8 ? 0.5f : 0.25f; /* gray 0.5, alpha 0.25 */
    save_with(g, tmp("gray.png"), gray, len, NULL, 0);
    tsr_image *c = load_with(tmp("gray.png"), TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, NULL);
    assert_int_equal(c->channels, 2);
    /* 128/255 linear is sRGB 0.7367 */
    assert_float_equal(c->data[0], 0.7367, 0.5 / 255);
    assert_float_equal(c->data[8], 64.0 / 255, 1e-6); /* alpha untouched */
    tsr_image_free(c);
    tsr_image_free(g);
    /* The same gray profile on an RGB image: skipped with a warning, values as stored. */
    tsr_image *rgb = tu_random_image(8, 8, 3, 9);
    save_with(rgb, tmp("mismatch.jpg"), gray, len, NULL, 0);
    warnings w = {0};
    a = load_with(tmp("mismatch.jpg"), TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, &w);
    b = load_with(tmp("mismatch.jpg"), TSR_ORIENT_AUTO, TSR_COLOUR_KEEP, NULL);
    assert_true(tu_max_diff(a, b) == 0.0);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "gray ICC profile on an RGB image"));
    tsr_image_free(a);
    tsr_image_free(b);
    /* Bytes that are no profile (JPEG stores whatever it is given): skipped, warned. */
    static const unsigned char junk[200] = {1, 2, 3};
    save_with(rgb, tmp("junk.jpg"), junk, sizeof junk, NULL, 0);
    w.n = 0;
    a = load_with(tmp("junk.jpg"), TSR_ORIENT_AUTO, TSR_COLOUR_SRGB, &w);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "not readable by lcms2"));
    tsr_image_free(a);
    tsr_image_free(rgb);
    tsr_image_free(rnd);
    free(gray);
}

/* ---------------------------------------------------------------------------------------------
 * Saving */

/* What libpng finds in a PNG: sRGB intent (-1: no chunk), iCCP length (0: none). */
static void png_tags(const char *path, int *srgb, size_t *icc_len, size_t *exif_len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng cannot read %s", path);
    png_init_io(png, f);
    png_read_info(png, info);
    int intent;
    *srgb = png_get_sRGB(png, info, &intent) ? intent : -1;
    png_charp name;
    int method;
    png_bytep prof, exif;
    png_uint_32 n = 0, en = 0;
    *icc_len = png_get_iCCP(png, info, &name, &method, &prof, &n) ? n : 0;
    *exif_len = png_get_eXIf_1(png, info, &en, &exif) ? en : 0;
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

static void save_round_trip(void **state)
{
    size_t plen;
    unsigned char *p3 = tu_slurp(GOLDEN "p3.icc", &plen);
    tsr__meta src;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_read_meta(GOLDEN "orient-6.jpg", &src, &err), TSR_OK);
    assert_non_null(src.exif);
    assert_int_equal(tsr__exif_orientation(src.exif, src.exif_len), 6);
    tsr_image *img = tu_load(GOLDEN "base.png");
    static const char *const names[] = {"rt.png", "rt.jpg"};
    for (int i = 0; i < 2; i++) {
        save_with(img, tmp(names[i]), p3, plen, src.exif, src.exif_len);
        tsr__meta m;
        assert_int_equal(tsr__image_read_meta(tmp(names[i]), &m, &err), TSR_OK);
        assert_int_equal(m.icc_len, plen);
        assert_memory_equal(m.icc, p3, plen);
        assert_int_equal(m.exif_len, src.exif_len);
        assert_memory_equal(m.exif, src.exif, src.exif_len);
        tsr__meta_free(&m);
        /* The tag carried is the tag obeyed. */
        tsr_port_info info = probe_with(tmp(names[i]), TSR_ORIENT_AUTO);
        assert_int_equal(info.width, 16);
    }
    int srgb;
    size_t icc_len, exif_len;
    png_tags(tmp("rt.png"), &srgb, &icc_len, &exif_len);
    assert_int_equal(srgb, -1);
    assert_int_equal(icc_len, plen);
    assert_int_equal(exif_len, src.exif_len);
    /* Plain save: tagged sRGB, perceptual. */
    save_with(img, tmp("plain.png"), NULL, 0, NULL, 0);
    png_tags(tmp("plain.png"), &srgb, &icc_len, &exif_len);
    assert_int_equal(srgb, PNG_sRGB_INTENT_PERCEPTUAL);
    assert_int_equal(icc_len, 0);
    assert_int_equal(exif_len, 0);
    /* The upright copy saved beside upright pixels reads back as orientation 1. */
    unsigned char *up = tsr__exif_upright(src.exif, src.exif_len);
    tsr_image *turned = tu_load(GOLDEN "orient-6.png");
    save_with(turned, tmp("upright.jpg"), NULL, 0, up, src.exif_len);
    tsr_port_info info = probe_with(tmp("upright.jpg"), TSR_ORIENT_AUTO);
    assert_int_equal(info.width, 16);
    assert_int_equal(info.height, 24);
    /* An EXIF block JPEG cannot hold is refused, not dropped. */
    unsigned char *big = calloc(1, 70000);
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.exif = big;
    o.exif_len = 70000;
    assert_int_equal(tsr__image_save(img, tmp("big.jpg"), &o, NULL, &err), TSR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "does not fit in a JPEG APP1 segment"));
    assert_int_equal(access(tmp("big.jpg"), F_OK), -1);
    free(big);
    free(up);
    tsr_image_free(turned);
    tsr_image_free(img);
    tsr__meta_free(&src);
    free(p3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(orientation_matches_pillow),
        cmocka_unit_test(orientation_ignore),
        cmocka_unit_test(orientation_definitions),
        cmocka_unit_test(exif_reader),
        cmocka_unit_test(exif_hostile),
        cmocka_unit_test(hostile_exif_in_files),
        cmocka_unit_test(icc_matches_pillow),
        cmocka_unit_test(icc_srgb_and_gray),
        cmocka_unit_test(save_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
