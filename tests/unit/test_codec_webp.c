/* WebP (engine/codec_webp.c): files written by other encoders (Pillow, cwebp, webpmux, img2webp)
 * decode to the reference pixels (tests/golden/webp, made by tools/gen-webp-golden.py: lossless
 * exactly, lossy within one level of dwebp, libwebp's reference decoder); ICCP and EXIF chunks
 * are read and written; round trips (lossless exact, lossy above 35 dB, alpha kept, quality
 * changes the size); truncated and damaged files, the pixel limit, the 16383-pixel side limit,
 * cancel and progress. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"

#define GOLDEN "tests/golden/webp/"

/* ---------------------------------------------------------------------------------------------
 * Helpers */

static char tmpdir[256];

static int make_tmpdir(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tsr-webp-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int drop_tmpdir(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

/* Entries of tmpdir other than . and .. (what a failed save may have left). */
static int tmpdir_entries(void)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static tsr_status load(const char *path, uint64_t max_pixels, tsr_image **out, tsr__err *err)
{
    tsr__err_clear(err);
    *out = NULL;
    return tsr__image_load(path, max_pixels, NULL, NULL, out, err);
}

static tsr_status decode_mem(const unsigned char *buf, size_t len, uint64_t max_pixels,
                             const tsr__io_ctl *ctl, tsr_image **out, tsr__err *err)
{
    tsr__err_clear(err);
    *out = NULL;
    return tsr__image_decode(buf, len, "mem", max_pixels, NULL, ctl, out, err);
}

static void *encode_mem(const tsr_image *img, const tsr_save_options *o, size_t *len)
{
    void *buf = NULL;
    tsr__err err;
    tsr__err_clear(&err);
    tsr_status rc = tsr__image_encode(img, o, NULL, &buf, len, &err);
    if (rc)
        fail_msg("encode: %s", err.msg);
    return buf;
}

static void webp_opts(tsr_save_options *o, int lossless, int quality)
{
    tsr_save_options_init(o);
    o->format = TSR_FORMAT_WEBP;
    o->lossless = lossless;
    o->quality = quality;
}

static tsr_status codec_decode(const void *buf, size_t len, int header_only, tsr__dec *d,
                               tsr__err *err)
{
    return tu_codec_decode(&tsr__codec_webp, buf, len, header_only, d, err);
}

static void dec_free(tsr__dec *d)
{
    tsr_image_free(d->img);
    tsr__meta_free(&d->meta);
}

/* A random image of 8-bit levels (k / 255), so that an 8-bit file keeps it exactly. */
static tsr_image *levels_image(int w, int h, int ch, uint32_t seed)
{
    tsr_image *img = tu_random_image(w, h, ch, seed);
    size_t n = (size_t)w * h * ch;
    for (size_t i = 0; i < n; i++)
        img->data[i] = (float)tsr__quantize(img->data[i], 255) / 255.0f;
    return img;
}

/* A smooth picture (what lossy coding is made for), 8-bit levels; alpha, if any, a ramp. */
static tsr_image *smooth_image(int w, int h, int ch)
{
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new(w, h, ch, &img), TSR_OK);
    size_t plane = (size_t)w * h;
    for (int c = 0; c < ch; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = c == 3 ? (double)x / (w - 1)
                                  : 0.5 + 0.35 * sin(0.05 * x + c) * cos(0.04 * y - 0.7 * c);
                img->data[c * plane + (size_t)y * w + x] =
                    (float)tsr__quantize((float)v, 255) / 255.0f;
            }
    return img;
}

/* PSNR in dB of the first `ch` channels, on 8-bit levels. */
static double psnr8(const tsr_image *a, const tsr_image *b, int ch)
{
    size_t n = (size_t)a->width * a->height * ch;
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)tsr__quantize(a->data[i], 255) - (double)tsr__quantize(b->data[i], 255);
        se += d * d;
    }
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / (double)n));
}

/* Largest difference in 8-bit levels between channel ca of a and channel cb of b. */
static int max_diff_channel(const tsr_image *a, int ca, const tsr_image *b, int cb)
{
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    size_t plane = (size_t)a->width * a->height;
    int m = 0;
    for (size_t i = 0; i < plane; i++) {
        int d = abs((int)tsr__quantize(a->data[ca * plane + i], 255) -
                    (int)tsr__quantize(b->data[cb * plane + i], 255));
        m = d > m ? d : m;
    }
    return m;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* ---------------------------------------------------------------------------------------------
 * Files from other encoders */

/* Each golden file decodes to its reference: lossless (Pillow's libwebp) exactly, lossy (cwebp)
 * within one level of dwebp's decode (the same reference decoder: the generator found them
 * equal), with the shape and depth probe also reports. */
static void golden_files_match(void **state)
{
    static const struct {
        const char *name;
        int channels, tolerance;
    } files[] = {{"lossless_rgb", 3, 0}, {"lossless_rgba", 4, 0}, {"gray", 3, 0},
                 {"meta", 3, 0},         {"lossy_rgb", 3, 1},     {"lossy_rgba", 4, 1},
                 {"meta_prefixed", 3, 1}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256], ref_path[256];
        snprintf(path, sizeof path, GOLDEN "%s.webp", files[i].name);
        snprintf(ref_path, sizeof ref_path, GOLDEN "%s.ref.png", files[i].name);
        tsr__err err;
        tsr_image *img;
        if (load(path, 0, &img, &err))
            fail_msg("%s: %s", path, err.msg);
        tsr_image *ref = tu_load(ref_path);
        assert_int_equal(img->channels, files[i].channels);
        assert_int_equal(ref->channels, files[i].channels);
        assert_int_equal(img->bit_depth, 8);
        int worst = 0;
        for (int c = 0; c < img->channels; c++) {
            int m = max_diff_channel(img, c, ref, c);
            worst = m > worst ? m : worst;
        }
        if (worst > files[i].tolerance)
            fail_msg("%s: %d levels from its reference (expected at most %d)", path, worst,
                     files[i].tolerance);
        print_message("%-14s %dx%dx%d: max difference %d level(s)\n", files[i].name, img->width,
                      img->height, img->channels, worst);
        /* Every decoded value is a level k / 255 exactly. */
        size_t n = (size_t)img->width * img->height * img->channels;
        for (size_t k = 0; k < n; k++)
            assert_true(img->data[k] == (float)tsr__quantize(img->data[k], 255) / 255.0f);
        tsr_port_info info;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_probe(path, 0, NULL, &info, &err), TSR_OK);
        assert_int_equal(info.width, img->width);
        assert_int_equal(info.height, img->height);
        assert_int_equal(info.channels, img->channels);
        assert_int_equal(info.bit_depth, 8);
        tsr_image_free(img);
        tsr_image_free(ref);
    }
}

/* ICCP and EXIF chunks come out as the profile and the TIFF structure, with or without the
 * "Exif\0\0" prefix in the chunk, in header-only mode too; a file without them gives none. */
static void golden_metadata(void **state)
{
    size_t icc_len, exif_len;
    unsigned char *icc = tu_slurp(GOLDEN "meta.icc", &icc_len);
    unsigned char *exif = tu_slurp(GOLDEN "meta.exif", &exif_len);
    assert_true(!memcmp(exif, "MM\0*", 4) || !memcmp(exif, "II*\0", 4));
    static const char *const names[] = {GOLDEN "meta.webp", GOLDEN "meta_prefixed.webp"};
    for (int i = 0; i < 2; i++)
        for (int header_only = 0; header_only < 2; header_only++) {
            size_t len;
            unsigned char *buf = tu_slurp(names[i], &len);
            tsr__dec d;
            tsr__err err;
            if (codec_decode(buf, len, header_only, &d, &err))
                fail_msg("%s: %s", names[i], err.msg);
            assert_true(header_only ? d.img == NULL : d.img != NULL);
            assert_int_equal(d.meta.icc_len, icc_len);
            assert_memory_equal(d.meta.icc, icc, icc_len);
            assert_int_equal(d.meta.exif_len, exif_len);
            assert_memory_equal(d.meta.exif, exif, exif_len);
            dec_free(&d);
            free(buf);
        }
    size_t len;
    unsigned char *buf = tu_slurp(GOLDEN "lossy_rgb.webp", &len);
    tsr__dec d;
    tsr__err err;
    assert_int_equal(codec_decode(buf, len, 0, &d, &err), TSR_OK);
    assert_null(d.meta.icc);
    assert_null(d.meta.exif);
    dec_free(&d);
    free(buf);
    free(icc);
    free(exif);
}

static void animated_refused(void **state)
{
    tsr__err err;
    tsr_image *img;
    assert_int_equal(load(GOLDEN "animated.webp", 0, &img, &err), TSR_ERR_UNSUPPORTED);
    assert_null(img);
    tu_assert_msg_has(&err, "animated WebP is not supported");
}

static void sniff(void **state)
{
    const unsigned char *sig = (const unsigned char *)"RIFF\x10\0\0\0WEBPVP8L";
    for (size_t n = 1; n < 12; n++)
        assert_int_equal(tsr__codec_webp.sniff(sig, n), -1);
    assert_int_equal(tsr__codec_webp.sniff(sig, 12), 1);
    assert_int_equal(tsr__codec_webp.sniff(sig, 16), 1);
    assert_int_equal(tsr__codec_webp.sniff((const unsigned char *)"RIFX", 4), 0);
    assert_int_equal(tsr__codec_webp.sniff((const unsigned char *)"RIFF\0\0\0\0WAVEfmt ", 16), 0);
    assert_int_equal(tsr__codec_webp.sniff((const unsigned char *)"RIFF\0\0\0\0WA", 10), 0);
    assert_int_equal(tsr__codec_webp.sniff((const unsigned char *)"\x89PNG", 4), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Round trips */

/* Lossless is exact for 1 to 4 channels, through files and memory: gray comes back as RGB
 * with three equal channels, alpha as the fourth, colours under alpha 0 kept. */
static void lossless_round_trip(void **state)
{
    for (int ch = 1; ch <= 4; ch++) {
        tsr_image *img = levels_image(61, 37, ch, 100 + (uint32_t)ch);
        if (ch == 2 || ch == 4) { /* some fully transparent pixels with colour under them */
            size_t plane = (size_t)img->width * img->height;
            for (size_t i = 0; i < plane; i += 3)
                img->data[(size_t)(ch - 1) * plane + i] = 0.0f;
        }
        tsr_save_options o;
        webp_opts(&o, 1, 0);
        tsr__err err;
        tsr__err_clear(&err);
        const char *path = tmp_path("ll.webp");
        assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
        tsr_image *back;
        assert_int_equal(load(path, 0, &back, &err), TSR_OK);
        size_t len;
        unsigned char *buf = encode_mem(img, &o, &len);
        size_t flen;
        unsigned char *file = tu_slurp(path, &flen);
        assert_int_equal(len, flen); /* the same bytes to a file and to memory */
        assert_memory_equal(buf, file, len);
        assert_memory_equal(file + 12, "VP8L", 4); /* no metadata: a simple-format file */
        free(file);
        tsr_image *mem;
        assert_int_equal(decode_mem(buf, len, 0, NULL, &mem, &err), TSR_OK);
        free(buf);
        int alpha = ch == 2 || ch == 4;
        assert_int_equal(back->channels, alpha ? 4 : 3);
        for (int c = 0; c < back->channels; c++) {
            int src = ch <= 2 ? (c < 3 ? 0 : 1) : c;
            assert_int_equal(max_diff_channel(back, c, img, src), 0);
        }
        assert_true(tu_max_diff(back, mem) == 0.0);
        tsr_image_free(back);
        tsr_image_free(mem);
        tsr_image_free(img);
    }
}

/* Lossy at the default quality (90) keeps a smooth picture above 35 dB and its alpha exactly
 * (libwebp codes alpha losslessly at alpha_quality 100); the RGB file is a VP8 one. */
static void lossy_round_trip(void **state)
{
    for (int ch = 3; ch <= 4; ch++) {
        tsr_image *img = smooth_image(256, 192, ch);
        tsr_save_options o;
        webp_opts(&o, 0, 0);
        size_t len;
        unsigned char *buf = encode_mem(img, &o, &len);
        if (ch == 3)
            assert_memory_equal(buf + 12, "VP8 ", 4);
        tsr__err err;
        tsr_image *back;
        assert_int_equal(decode_mem(buf, len, 0, NULL, &back, &err), TSR_OK);
        assert_int_equal(back->channels, ch);
        double db = psnr8(img, back, 3);
        print_message("lossy q90 %d channels: %zu bytes, PSNR %.2f dB\n", ch, len, db);
        assert_true(db > 35.0);
        if (ch == 4)
            assert_int_equal(max_diff_channel(back, 3, img, 3), 0);
        tsr_image_free(back);
        tsr_image_free(img);
        free(buf);
    }
}

/* Higher quality, larger file; lossless ignores quality. */
static void quality_changes_size(void **state)
{
    tsr_image *img = smooth_image(256, 192, 3);
    static const int q[] = {20, 50, 80, 95};
    size_t prev = 0;
    for (int i = 0; i < 4; i++) {
        tsr_save_options o;
        webp_opts(&o, 0, q[i]);
        size_t len;
        free(encode_mem(img, &o, &len));
        print_message("quality %d: %zu bytes\n", q[i], len);
        assert_true(len > prev);
        prev = len;
    }
    size_t a, b;
    tsr_save_options o;
    webp_opts(&o, 1, 10);
    unsigned char *ba = encode_mem(img, &o, &a);
    webp_opts(&o, 1, 90);
    unsigned char *bb = encode_mem(img, &o, &b);
    assert_int_equal(a, b);
    assert_memory_equal(ba, bb, a);
    free(ba);
    free(bb);
    tsr_image_free(img);
}

/* e->meta's ICC profile and EXIF block are written as ICCP and EXIF chunks (a VP8X file) and
 * read back the same; the pixels are those of the file without them. */
static void metadata_round_trip(void **state)
{
    size_t icc_len, exif_len;
    unsigned char *icc = tu_slurp(GOLDEN "meta.icc", &icc_len);
    unsigned char *exif = tu_slurp(GOLDEN "meta.exif", &exif_len);
    tsr_image *img = levels_image(33, 21, 4, 7);
    for (int which = 1; which <= 3; which++) {
        tsr_save_options o;
        webp_opts(&o, 1, 0);
        if (which & 1) {
            o.icc = icc;
            o.icc_len = icc_len;
        }
        if (which & 2) {
            o.exif = exif;
            o.exif_len = exif_len;
        }
        size_t len;
        unsigned char *buf = encode_mem(img, &o, &len);
        assert_memory_equal(buf + 12, "VP8X", 4);
        tsr__dec d;
        tsr__err err;
        if (codec_decode(buf, len, 0, &d, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(d.meta.icc_len, which & 1 ? icc_len : 0);
        if (which & 1)
            assert_memory_equal(d.meta.icc, icc, icc_len);
        assert_int_equal(d.meta.exif_len, which & 2 ? exif_len : 0);
        if (which & 2)
            assert_memory_equal(d.meta.exif, exif, exif_len);
        assert_true(tu_max_diff(d.img, img) == 0.0);
        dec_free(&d);
        free(buf);
    }
    tsr_image_free(img);
    free(icc);
    free(exif);
}

/* ---------------------------------------------------------------------------------------------
 * Damaged files and limits */

/* Every prefix of a lossless, a lossy+alpha and a VP8X file with metadata is refused as
 * truncated (or empty), from memory, with no image; a spread of them from files. */
static void truncated_files_refused(void **state)
{
    static const char *const names[] = {GOLDEN "lossless_rgb.webp", GOLDEN "lossy_rgba.webp",
                                        GOLDEN "meta.webp"};
    for (size_t f = 0; f < 3; f++) {
        size_t len;
        unsigned char *buf = tu_slurp(names[f], &len);
        for (size_t n = 0; n < len; n++) {
            tsr__err err;
            tsr_image *img;
            tsr_status rc = decode_mem(buf, n, 0, NULL, &img, &err);
            if (rc != TSR_ERR_DECODE)
                fail_msg("%s cut to %zu bytes: %s (%s)", names[f], n, tsr_status_str(rc), err.msg);
            assert_null(img);
            assert_int_equal(strncmp(err.msg, "mem: ", 5), 0);
            tu_assert_msg_has(&err, n == 0 ? "empty file" : "truncated WebP file");
        }
        const size_t cuts[] = {5, 12, 20, 30, len / 2, len - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            const char *path = tmp_path("cut.webp");
            FILE *fp = fopen(path, "wb");
            assert_non_null(fp);
            assert_int_equal(fwrite(buf, 1, cuts[c], fp), cuts[c]);
            assert_int_equal(fclose(fp), 0);
            tsr__err err;
            tsr_image *img;
            assert_int_equal(load(path, 0, &img, &err), TSR_ERR_DECODE);
            assert_null(img);
            tu_assert_msg_has(&err, path);
            tu_assert_msg_has(&err, "truncated WebP file");
        }
        free(buf);
    }
}

/* Damage in the signature, the chunk tags and the bitstream headers is refused with a decode
 * error naming the file as invalid; every single flipped byte anywhere either decodes or fails
 * cleanly (no image, a message), never crashes (run it under ASan). */
static void corrupted_files_refused(void **state)
{
    static const struct {
        const char *name;
        size_t at;
        const char *says;
    } cases[] = {
        {"lossless_rgb", 12, "invalid WebP file"}, /* VP8L tag */
        {"lossless_rgb", 20, "invalid WebP file"}, /* VP8L signature 0x2f */
        {"lossy_rgb", 12, "invalid WebP file"},    /* "VP8 " tag */
        {"lossy_rgb", 23, "invalid WebP file"},    /* VP8 start code 9d 01 2a */
        {"lossy_rgb", 8, "not a"},                 /* "WEBP" */
        {"meta", 12, "invalid WebP file"},         /* VP8X tag */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN "%s.webp", cases[i].name);
        size_t len;
        unsigned char *buf = tu_slurp(path, &len);
        buf[cases[i].at] ^= 0xFF;
        tsr__err err;
        tsr_image *img;
        tsr_status rc = decode_mem(buf, len, 0, NULL, &img, &err);
        if (rc != TSR_ERR_DECODE)
            fail_msg("%s, byte %zu flipped: %s (%s)", path, cases[i].at, tsr_status_str(rc),
                     err.msg);
        assert_null(img);
        tu_assert_msg_has(&err, cases[i].says);
        free(buf);
    }
    static const char *const names[] = {"lossless_rgba", "lossy_rgba", "meta"};
    for (size_t f = 0; f < 3; f++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN "%s.webp", names[f]);
        size_t len;
        unsigned char *buf = tu_slurp(path, &len);
        int refused = 0;
        for (size_t at = 0; at < len; at++) {
            buf[at] ^= 0x55;
            tsr__err err;
            tsr_image *img;
            tsr_status rc = decode_mem(buf, len, 1u << 20, NULL, &img, &err);
            buf[at] ^= 0x55;
            if (rc == TSR_OK) {
                assert_non_null(img);
                tsr_image_free(img);
                continue;
            }
            refused++;
            assert_null(img);
            if (rc != TSR_ERR_DECODE && rc != TSR_ERR_LIMIT && rc != TSR_ERR_UNSUPPORTED)
                fail_msg("%s, byte %zu changed: %s (%s)", path, at, tsr_status_str(rc), err.msg);
            assert_int_equal(strncmp(err.msg, "mem: ", 5), 0);
        }
        print_message("%s: %d of %zu one-byte changes refused\n", names[f], refused, len);
        assert_true(refused > 0);
        free(buf);
    }
}

/* A header announcing more pixels than the limit is refused with TSR_ERR_LIMIT from the header
 * alone (the files hold no pixel data to allocate for): a VP8L stream of 16383x16383 against a
 * small limit, a VP8X canvas of 20000x20000 against the default one, and a real file. */
static void pixel_limit(void **state)
{
    /* VP8L: signature 0x2f, then 14 bits width-1, 14 bits height-1, alpha, 3 bits version. */
    unsigned char vp8l[32] = "RIFF....WEBPVP8L";
    put_le32(vp8l + 4, sizeof vp8l - 8);
    put_le32(vp8l + 16, sizeof vp8l - 20);
    uint32_t bits = 16382u | 16382u << 14;
    vp8l[20] = 0x2f;
    put_le32(vp8l + 21, bits);
    tsr__err err;
    tsr_image *img;
    assert_int_equal(decode_mem(vp8l, sizeof vp8l, 1u << 20, NULL, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    tu_assert_msg_has(&err, "WebP image of 16383x16383 = 268402689 pixels exceeds the limit");

    unsigned char vp8x[30] = "RIFF....WEBPVP8X";
    put_le32(vp8x + 4, sizeof vp8x - 8);
    put_le32(vp8x + 16, 10);
    uint32_t side = 20000 - 1;
    for (int k = 0; k < 3; k++)
        vp8x[24 + k] = vp8x[27 + k] = (unsigned char)(side >> (8 * k));
    assert_int_equal(decode_mem(vp8x, sizeof vp8x, 0, NULL, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    tu_assert_msg_has(&err, "WebP image of 20000x20000");

    /* A file longer than the decoder's first read (64 KiB) is refused from that read. */
    tsr_image *big = levels_image(300, 300, 3, 9);
    tsr_save_options o;
    webp_opts(&o, 1, 0);
    size_t len;
    unsigned char *buf = encode_mem(big, &o, &len);
    assert_true(len > 65536);
    assert_int_equal(decode_mem(buf, len, 300 * 299, NULL, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    tu_assert_msg_has(&err, "WebP image of 300x300 = 90000 pixels exceeds the limit of 89700");
    assert_int_equal(decode_mem(buf, len, 300 * 300, NULL, &img, &err), TSR_OK);
    tsr_image_free(img);
    free(buf);
    tsr_image_free(big);

    assert_int_equal(load(GOLDEN "lossless_rgb.webp", 1000, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    tsr_port_info info;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_probe(GOLDEN "lossless_rgb.webp", 1000, NULL, &info, &err),
                     TSR_ERR_LIMIT);
    assert_int_equal(load(GOLDEN "lossless_rgb.webp", 48 * 32, &img, &err), TSR_OK);
    tsr_image_free(img);
}

/* A side over 16383 is refused by the encoder itself, to a file (nothing left behind) and to
 * memory; 16383 itself is written. */
static void too_large_save_refused(void **state)
{
    static const int sizes[][2] = {{16384, 1}, {1, 16384}};
    for (int i = 0; i < 2; i++) {
        tsr_image *img = NULL;
        assert_int_equal(tsr_image_new(sizes[i][0], sizes[i][1], 1, &img), TSR_OK);
        memset(img->data, 0, sizeof(float) * (size_t)sizes[i][0] * sizes[i][1]);
        tsr_save_options o;
        webp_opts(&o, i, 0);
        tsr__err err;
        tsr__err_clear(&err);
        int before = tmpdir_entries();
        const char *path = tmp_path("big.webp");
        assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_ERR_LIMIT);
        tu_assert_msg_has(&err, path);
        tu_assert_msg_has(&err, "larger than WebP allows (16383 pixels a side)");
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(tmpdir_entries(), before);
        void *buf = NULL;
        size_t len = 0;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_encode(img, &o, NULL, &buf, &len, &err), TSR_ERR_LIMIT);
        assert_null(buf);
        tsr_image_free(img);
    }
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new(16383, 1, 1, &img), TSR_OK);
    memset(img->data, 0, sizeof(float) * 16383);
    tsr_save_options o;
    webp_opts(&o, 1, 0);
    size_t len;
    unsigned char *buf = encode_mem(img, &o, &len);
    tsr__err err;
    tsr_image *back;
    assert_int_equal(decode_mem(buf, len, 0, NULL, &back, &err), TSR_OK);
    assert_int_equal(back->width, 16383);
    tsr_image_free(back);
    free(buf);
    tsr_image_free(img);
}

/* ---------------------------------------------------------------------------------------------
 * Cancel and progress */

typedef struct ctl_state {
    int calls;     /* cancelled() calls */
    int cancel_at; /* cancelled() answers 1 from this call on; 0: never */
    int64_t last_done, last_total, reports;
    int backwards;
    double max_gap; /* seconds between two cancelled() calls */
    struct timespec prev;
} ctl_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_cancelled(void *user)
{
    ctl_state *s = user;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (s->calls > 0) {
        double gap = (double)(ts.tv_sec - s->prev.tv_sec) + (ts.tv_nsec - s->prev.tv_nsec) / 1e9;
        s->max_gap = gap > s->max_gap ? gap : s->max_gap;
    }
    s->prev = ts;
    s->calls++;
    return s->cancel_at > 0 && s->calls >= s->cancel_at;
}

static void on_progress(void *user, int64_t done, int64_t total)
{
    ctl_state *s = user;
    if (done < s->last_done || (s->reports && total != s->last_total) || done > total)
        s->backwards = 1;
    s->last_done = done;
    s->last_total = total;
    s->reports++;
}

/* A cancelled() that answers 1 at once, or after a few looks, stops decoding and encoding with
 * TSR_ERR_CANCELLED: no image, no file, nothing left in the folder. */
static void cancel_stops(void **state)
{
    tsr_image *img = smooth_image(1024, 768, 4);
    for (int lossless = 0; lossless < 2; lossless++) {
        tsr_save_options o;
        webp_opts(&o, lossless, 0);
        size_t len;
        unsigned char *buf = encode_mem(img, &o, &len);
        /* Encoding looks about 12 times while quantizing, then once per progress report of
         * libwebp: the 40th look is inside WebPEncode. */
        static const int dec_at[] = {1, 2, 3}, enc_at[] = {1, 3, 40};
        for (int k = 0; k < 3; k++) {
            int at = dec_at[k];
            ctl_state s = {.cancel_at = at};
            tsr__io_ctl ctl = {.cancelled = on_cancelled, .progress = on_progress, .user = &s};
            tsr__err err;
            tsr_image *out;
            tsr_status rc = decode_mem(buf, len, 0, &ctl, &out, &err);
            if (rc != TSR_ERR_CANCELLED)
                fail_msg("decode, lossless %d, cancel at look %d: %s (%s)", lossless, at,
                         tsr_status_str(rc), err.msg);
            assert_null(out);
            tu_assert_msg_has(&err, "cancelled while decoding");

            at = enc_at[k];
            ctl_state se = {.cancel_at = at};
            tsr__io_ctl ectl = {.cancelled = on_cancelled, .progress = on_progress, .user = &se};
            int before = tmpdir_entries();
            const char *path = tmp_path("cancel.webp");
            tsr__err_clear(&err);
            rc = tsr__image_save(img, path, &o, &ectl, &err);
            if (rc != TSR_ERR_CANCELLED)
                fail_msg("encode, lossless %d, cancel at look %d: %s (%s)", lossless, at,
                         tsr_status_str(rc), err.msg);
            tu_assert_msg_has(&err, "cancelled while encoding");
            assert_int_equal(access(path, F_OK), -1);
            assert_int_equal(tmpdir_entries(), before);
        }
        free(buf);
    }
    tsr_image_free(img);
}

/* Without a cancel, progress rises to its total and ends there; cancelled() is asked between
 * bands of rows (many times on a large image), and the longest time between two looks is
 * printed (it bounds the cancel latency). */
static void progress_and_cancel_latency(void **state)
{
    tsr_image *img = smooth_image(2048, 1536, 3);
    for (int lossless = 0; lossless < 2; lossless++) {
        tsr_save_options o;
        webp_opts(&o, lossless, 0);
        ctl_state se = {0};
        tsr__io_ctl ectl = {.cancelled = on_cancelled, .progress = on_progress, .user = &se};
        void *buf = NULL;
        size_t len = 0;
        tsr__err err;
        tsr__err_clear(&err);
        double t0 = now_s();
        assert_int_equal(tsr__image_encode(img, &o, &ectl, &buf, &len, &err), TSR_OK);
        double te = now_s() - t0;
        assert_false(se.backwards);
        assert_true(se.reports > 2);
        assert_true(se.last_done == se.last_total);

        ctl_state sd = {0};
        tsr__io_ctl dctl = {.cancelled = on_cancelled, .progress = on_progress, .user = &sd};
        tsr_image *out;
        t0 = now_s();
        assert_int_equal(decode_mem(buf, len, 0, &dctl, &out, &err), TSR_OK);
        double td = now_s() - t0;
        assert_false(sd.backwards);
        assert_true(sd.last_done == sd.last_total && sd.last_total == img->height);
        assert_true(sd.calls >= img->height / 64);
        print_message("%s 2048x1536: %zu bytes; encode %.0f ms, %d looks at cancel, longest "
                      "gap %.1f ms; decode %.0f ms, %d looks, longest gap %.1f ms\n",
                      lossless ? "lossless" : "lossy q90", len, te * 1e3, se.calls,
                      se.max_gap * 1e3, td * 1e3, sd.calls, sd.max_gap * 1e3);
        /* Generous (a shared, possibly sanitized machine): the figure to read is the printed
         * one. */
        assert_true(sd.max_gap < 1.0);
        tsr_image_free(out);
        free(buf);
    }
    tsr_image_free(img);
}

static void warn_into(void *user, const char *msg)
{
    snprintf(user, 256, "%s", msg);
}

/* fail_on none: a cut lossless file loads, its rows up to the cut exactly as the reference
 * decode (dwebp), the rest black, and says so once through ctl->warn; the default refuses it. */
static void fail_on_none_recovers(void **state)
{
    size_t len;
    unsigned char *whole = tu_slurp(GOLDEN "lossless_rgb.webp", &len);
    tsr_image *ref = tu_load(GOLDEN "lossless_rgb.ref.png");
    size_t cut = len * 6 / 10;
    tsr__err err;
    tsr__err_clear(&err);
    tsr_image *img = NULL;
    assert_int_equal(tsr__image_decode(whole, cut, "cut.webp", 0, NULL, NULL, &img, &err),
                     TSR_ERR_DECODE);
    assert_null(img);
    assert_non_null(strstr(err.msg, "truncated WebP file"));
    char said[256] = "";
    tsr__io_ctl ctl = {NULL, NULL, said, warn_into};
    const tsr__load_opts none = {.fail_on = TSR_FAIL_ON_NONE};
    assert_int_equal(tsr__image_decode(whole, cut, "cut.webp", 0, &none, &ctl, &img, &err), TSR_OK);
    int rows = -1, total = -1;
    const char *p = strstr(said, "; ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "; %d of %d rows decoded", &rows, &total), 2);
    assert_int_equal(total, ref->height);
    assert_true(rows > 0 && rows < total);
    size_t w = (size_t)ref->width, plane = w * (size_t)ref->height;
    for (int c = 0; c < 3; c++)
        for (size_t y = 0; y < (size_t)ref->height; y++)
            for (size_t x = 0; x < w; x++) {
                float got = img->data[c * plane + y * w + x];
                float want = (int)y < rows ? ref->data[c * plane + y * w + x] : 0.0f;
                assert_true(got == want);
            }
    tsr_image_free(img);
    tsr_image_free(ref);
    free(whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_on_none_recovers),
        cmocka_unit_test(golden_files_match),
        cmocka_unit_test(golden_metadata),
        cmocka_unit_test(animated_refused),
        cmocka_unit_test(sniff),
        cmocka_unit_test(lossless_round_trip),
        cmocka_unit_test(lossy_round_trip),
        cmocka_unit_test(quality_changes_size),
        cmocka_unit_test(metadata_round_trip),
        cmocka_unit_test(truncated_files_refused),
        cmocka_unit_test(corrupted_files_refused),
        cmocka_unit_test(pixel_limit),
        cmocka_unit_test(too_large_save_refused),
        cmocka_unit_test(cancel_stops),
        cmocka_unit_test(progress_and_cancel_latency),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, drop_tmpdir);
}
