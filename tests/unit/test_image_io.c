/* Image file I/O: PNG decoding against pypng (every valid PngSuite image, exact), invalid and
 * truncated files, JPEG decoding against Pillow, the pixel limit, saving (round trips, options,
 * atomic replacement and its failure cases). Goldens: tools/gen-io-golden.py. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>

#define GOLDEN "tests/golden/io/"

/* ---------------------------------------------------------------------------------------------
 * Helpers */

/* SHA-256 (FIPS 180-4), for the canonical sample hash the golden script writes. */
typedef struct sha256 {
    uint32_t h[8];
    unsigned char buf[64];
    size_t n;
    uint64_t bits;
} sha256;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void sha_block(sha256 *s, const unsigned char *p)
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (ROR(v[4], 6) ^ ROR(v[4], 11) ^ ROR(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(v[0], 2) ^ ROR(v[0], 13) ^ ROR(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof *v);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        s->h[i] += v[i];
}

static void sha_init(sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->n = 0;
    s->bits = 0;
}

static void sha_update(sha256 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->bits += (uint64_t)len * 8;
    while (len--) {
        s->buf[s->n++] = *p++;
        if (s->n == 64) {
            sha_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void sha_hex(sha256 *s, char out[65])
{
    uint64_t bits = s->bits;
    unsigned char pad = 0x80, zero = 0, len[8];
    sha_update(s, &pad, 1);
    while (s->n != 56)
        sha_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_update(s, len, 8);
    for (int i = 0; i < 8; i++)
        sprintf(out + 8 * i, "%08x", s->h[i]);
}

/* The script's canonical form: k = v * (2^depth - 1) as big-endian uint16, planar. Also checks
 * that every decoded value is exactly k / (2^depth - 1) in float. */
static void image_hash(const tsr_image *img, char out[65])
{
    sha256 s;
    sha_init(&s);
    float maxv = img->bit_depth == 16 ? 65535.0f : 255.0f;
    size_t n = (size_t)img->width * img->height * img->channels;
    for (size_t i = 0; i < n; i++) {
        float v = img->data[i];
        long k = lrintf(v * maxv);
        assert_true(k >= 0 && k <= (long)maxv);
        assert_true(v == (float)k / maxv);
        unsigned char be[2] = {(unsigned char)(k >> 8), (unsigned char)k};
        sha_update(&s, be, 2);
    }
    sha_hex(&s, out);
}

static tsr_status load(const char *path, uint64_t max_pixels, tsr_image **out, tsr__err *err)
{
    tsr__err_clear(err);
    *out = NULL;
    return tsr__image_load(path, max_pixels, NULL, NULL, out, err);
}

static void write_all(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char tmpdir[256];

static int make_tmpdir(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tsr-io-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st))
        return 0;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        return rmdir(path);
    }
    return unlink(path);
}

static int drop_tmpdir(void **state)
{
    return remove_tree(tmpdir);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

/* Number of entries in a directory whose name starts with '.' (leftover temporary files). */
static int hidden_entries(const char *dir)
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

static int file_is(const char *path, const char *content)
{
    size_t len;
    unsigned char *buf = tu_slurp(path, &len);
    int same = len == strlen(content) && !memcmp(buf, content, len);
    free(buf);
    return same;
}

/* ---------------------------------------------------------------------------------------------
 * PNG decoding */

/* Every valid PngSuite image decodes to pypng's samples, bit for bit, with the same shape and
 * depth; probe agrees with load; every valid file of the folder is in the golden. */
static void pngsuite_matches_pypng(void **state)
{
    FILE *f = fopen(GOLDEN "pngsuite.tsv", "r");
    assert_non_null(f);
    char line[512], seen[256][64];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char name[64], hash[80];
        int w, h, ch, depth;
        assert_int_equal(sscanf(line, "%63s %d %d %d %d %79s", name, &w, &h, &ch, &depth, hash), 6);
        char rel[256];
        snprintf(rel, sizeof rel, "testdata/pngsuite/%s", name);
        const char *path = tu_shared(rel);
        tsr__err err;
        tsr_image *img;
        tsr_status rc = load(path, 0, &img, &err);
        if (rc)
            fail_msg("%s: %s", name, err.msg);
        if (img->width != w || img->height != h || img->channels != ch || img->bit_depth != depth)
            fail_msg("%s: %dx%dx%d %d-bit, expected %dx%dx%d %d-bit", name, img->width, img->height,
                     img->channels, img->bit_depth, w, h, ch, depth);
        char got[65];
        image_hash(img, got);
        if (strcmp(got, hash))
            fail_msg("%s: samples differ from pypng's (sha256 %s, expected %s)", name, got, hash);
        tsr_port_info info;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_probe(path, 0, NULL, &info, &err), TSR_OK);
        assert_int_equal(info.width, w);
        assert_int_equal(info.height, h);
        assert_int_equal(info.channels, ch);
        assert_int_equal(info.bit_depth, depth);
        tsr_image_free(img);
        assert_true(count < 256);
        snprintf(seen[count++], sizeof seen[0], "%s", name);
    }
    fclose(f);
    assert_true(count >= 150);

    static tu_name_list files;
    tu_list_dir(tu_shared("testdata/pngsuite"), ".png", &files);
    for (int f = 0; f < files.n; f++) {
        const char *name = files.name[f];
        if (name[0] == 'x')
            continue;
        int found = 0;
        for (int i = 0; i < count && !found; i++)
            found = !strcmp(seen[i], name);
        if (!found)
            fail_msg("%s is not in %spngsuite.tsv: rerun tools/gen-io-golden.py", name, GOLDEN);
    }
}

/* The libpng copies of the basic images (plain and interlaced) decode to the 2011 originals'
 * pixels. */
static void libpng_copies_match_originals(void **state)
{
    static const char *const names[] = {"basn0g01", "basn0g02", "basn0g04", "basn0g08", "basn0g16",
                                        "basn2c08", "basn2c16", "basn3p01", "basn3p02", "basn3p04",
                                        "basn3p08", "basn4a08", "basn4a16", "basn6a08", "basn6a16"};
    int compared = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "testdata/pngsuite/%s.png", names[i]);
        tsr_image *orig = tu_load(tu_shared(rel));
        static const char *const alts[] = {"testdata/pngsuite-libpng/%s.png",
                                           "testdata/pngsuite-libpng/i%s.png",
                                           "testdata/pngsuite-libpng/interlaced/i%s.png"};
        int found = 0;
        for (size_t a = 0; a < 3; a++) {
            snprintf(rel, sizeof rel, alts[a], names[i]);
            if (access(tu_shared(rel), R_OK))
                continue;
            tsr_image *copy = tu_load(tu_shared(rel));
            assert_int_equal(copy->bit_depth, orig->bit_depth);
            if (tu_max_diff(orig, copy) != 0.0)
                fail_msg("%s differs from the original %s.png", rel, names[i]);
            tsr_image_free(copy);
            found++;
            compared++;
        }
        assert_int_equal(found, 2); /* the plain copy and one interlaced copy */
        tsr_image_free(orig);
    }
    assert_int_equal(compared, 30);
}

/* Every x*.png of PngSuite is refused with TSR_ERR_DECODE and a message naming the file, from a
 * file and from memory. */
static void invalid_pngs_refused(void **state)
{
    static tu_name_list files;
    tu_list_dir(tu_shared("testdata/pngsuite"), ".png", &files);
    int n = 0;
    for (int f = 0; f < files.n; f++) {
        const char *name = files.name[f];
        if (name[0] != 'x')
            continue;
        char rel[512], path[1024];
        snprintf(rel, sizeof rel, "testdata/pngsuite/%s", name);
        snprintf(path, sizeof path, "%s", tu_shared(rel));
        tsr__err err;
        tsr_image *img;
        tsr_status rc = load(path, 0, &img, &err);
        if (rc != TSR_ERR_DECODE)
            fail_msg("%s: got %s (%s), expected a decode error", name, tsr_status_str(rc), err.msg);
        assert_null(img);
        tu_assert_msg_has(&err, path);
        size_t len;
        unsigned char *buf = tu_slurp(path, &len);
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_decode(buf, len, name, 0, NULL, NULL, &img, &err),
                         TSR_ERR_DECODE);
        tu_assert_msg_has(&err, name);
        free(buf);
        n++;
    }
    assert_int_equal(n, 14);
}

/* Truncated copies fail cleanly: every prefix from memory, a spread of prefixes from files. */
static void truncated_files_refused(void **state)
{
    static const char *const files[] = {"testdata/pngsuite/basn0g01.png",
                                        "testdata/pngsuite/basi6a16.png",
                                        "testdata/pngsuite/basn3p08.png",
                                        "testdata/libjpeg-turbo/testorig.jpg",
                                        GOLDEN "prog.jpg",
                                        GOLDEN "gray.jpg",
                                        GOLDEN "cmyk.jpg"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        const char *src =
            strncmp(files[f], GOLDEN, strlen(GOLDEN)) ? tu_shared(files[f]) : files[f];
        size_t len;
        unsigned char *buf = tu_slurp(src, &len);
        tsr_image *img = NULL;
        tsr__err err;
        /* The whole file decodes, so the failures below are the truncation's. */
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_decode(buf, len, "whole", 0, NULL, NULL, &img, &err), TSR_OK);
        tsr_image_free(img);
        /* A single-scan JPEG missing only its EOI marker (the last two bytes, or the D9 of it)
         * loads, as vips and browsers load it: the scan is whole. A progressive one (SOF2) is
         * refused: a cut between its scans looks the same. */
        int jpeg = buf[0] == 0xFF && buf[1] == 0xD8;
        int progressive = jpeg && memmem(buf, len, "\xff\xc2", 2) != NULL;
        assert_true(!jpeg || (buf[len - 2] == 0xFF && buf[len - 1] == 0xD9));
        size_t whole_from = jpeg && !progressive ? len - 2 : len;
        for (size_t n = 0; n < len; n++) {
            tsr__err_clear(&err);
            tsr_status rc = tsr__image_decode(buf, n, "cut", 0, NULL, NULL, &img, &err);
            if (n >= whole_from) {
                if (rc != TSR_OK)
                    fail_msg("%s without its EOI (%zu bytes): %s", files[f], n, err.msg);
                tsr_image_free(img);
                continue;
            }
            if (rc != TSR_ERR_DECODE)
                fail_msg("%s cut to %zu bytes: %s (%s)", files[f], n, tsr_status_str(rc), err.msg);
            assert_null(img);
            assert_int_equal(strncmp(err.msg, "cut: ", 5), 0);
        }
        const size_t cuts[] = {0, 1, 2, 8, 33, len / 3, len / 2, len - 12, len - 3};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            const char *path = tmp_path("cut.bin");
            write_all(path, buf, cuts[c]);
            tsr_status rc = load(path, 0, &img, &err);
            if (rc != TSR_ERR_DECODE)
                fail_msg("%s cut to %zu bytes: %s (%s)", files[f], cuts[c], tsr_status_str(rc),
                         err.msg);
            tu_assert_msg_has(&err, path);
            if (cuts[c] == 0)
                tu_assert_msg_has(&err, "empty file");
            else
                tu_assert_msg_has(&err, "truncated");
        }
        free(buf);
    }
}

/* Random byte damage (seeded): either a decode or a clean refusal naming the file, never a
 * crash, a leak (under the sanitizers) or another status. Bytes 8..63 hold the PNG header and
 * the JPEG tables, so a third of the damage goes there. */
static void corrupted_files_fail_cleanly(void **state)
{
    static const char *const files[] = {
        "testdata/pngsuite/basi6a16.png", "testdata/pngsuite/tbwn0g16.png",
        "testdata/libjpeg-turbo/testimgari.jpg", GOLDEN "prog.jpg", GOLDEN "cmyk.jpg"};
    uint32_t s = 12345;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        const char *src =
            strncmp(files[f], GOLDEN, strlen(GOLDEN)) ? tu_shared(files[f]) : files[f];
        size_t len;
        unsigned char *buf = tu_slurp(src, &len), *m = malloc(len);
        assert_non_null(m);
        int refused = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(m, buf, len);
            for (int j = 0; j <= it % 8; j++) {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                size_t pos = it % 3 == 0 ? 8 + s % 56 : s % len;
                m[pos] = (unsigned char)(s >> 8);
            }
            tsr__err err;
            tsr__err_clear(&err);
            tsr_image *img = NULL;
            tsr_status rc = tsr__image_decode(m, len, "damaged", 1u << 22, NULL, NULL, &img, &err);
            if (rc == TSR_OK) {
                assert_non_null(img);
                tsr_image_free(img);
                continue;
            }
            if (rc != TSR_ERR_DECODE && rc != TSR_ERR_UNSUPPORTED && rc != TSR_ERR_LIMIT)
                fail_msg("%s damaged (%d): %s: %s", files[f], it, tsr_status_str(rc), err.msg);
            assert_null(img);
            assert_int_equal(strncmp(err.msg, "damaged: ", 9), 0);
            refused++;
        }
        assert_true(refused > 0);
        free(m);
        free(buf);
    }
}

static void not_images_refused(void **state)
{
    tsr__err err;
    tsr_image *img;
    const char *txt = tmp_path("notes.png");
    write_all(txt, "hello, this is text\n", 20);
    assert_int_equal(load(txt, 0, &img, &err), TSR_ERR_DECODE);
    tu_assert_msg_has(&err, txt);
    tu_assert_msg_has(&err, "not a PNG, JPEG, WebP or TIFF file");
    /* Format comes from the bytes: a PNG named .jpg loads. */
    size_t len;
    unsigned char *buf = tu_slurp(tu_shared("testdata/pngsuite/basn2c08.png"), &len);
    write_all(tmp_path("really-png.jpg"), buf, len);
    free(buf);
    assert_int_equal(load(tmp_path("really-png.jpg"), 0, &img, &err), TSR_OK);
    assert_int_equal(img->channels, 3);
    tsr_image_free(img);
    /* Missing files and directories are I/O errors. */
    assert_int_equal(load(tmp_path("missing.png"), 0, &img, &err), TSR_ERR_IO);
    tu_assert_msg_has(&err, "missing.png");
    tu_assert_msg_has(&err, strerror(ENOENT));
    assert_int_equal(load(tmpdir, 0, &img, &err), TSR_ERR_IO);
    tu_assert_msg_has(&err, tmpdir);
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(NULL, 0, "nothing", 0, NULL, NULL, &img, &err),
                     TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "nothing: empty file");
}

/* ---------------------------------------------------------------------------------------------
 * JPEG decoding */

/* Pillow and Tessera both decode with libjpeg-turbo's default settings (accurate integer IDCT,
 * fancy upsampling), whose SIMD and C paths are bit-exact; the two may be different releases
 * (Pillow bundles its own), so one level of 255 is allowed. For CMYK, Tessera keeps the float
 * (1-c)(1-k) unrounded where Pillow rounds to 8 bits (integer MULDIV255): up to half a level
 * apart. Measured here: 0 levels for YCbCr, gray, progressive and arithmetic; 0.498 for CMYK. */
static void jpeg_matches_pillow(void **state)
{
    static const struct {
        const char *jpg, *golden;
        int shared, channels;
        double tol;
    } cases[] = {
        {"testdata/libjpeg-turbo/testorig.jpg", GOLDEN "testorig.pillow.png", 1, 3, 1},
        {"testdata/libjpeg-turbo/testimgint.jpg", GOLDEN "testimgint.pillow.png", 1, 3, 1},
        {GOLDEN "prog.jpg", GOLDEN "prog.pillow.png", 0, 3, 1},
        {GOLDEN "gray.jpg", GOLDEN "gray.pillow.png", 0, 1, 1},
        {GOLDEN "cmyk.jpg", GOLDEN "cmyk.pillow.png", 0, 3, 1},
#ifdef D_ARITH_CODING_SUPPORTED
        /* Same coefficients as testimgint, arithmetic-coded. */
        {"testdata/libjpeg-turbo/testimgari.jpg", GOLDEN "testimgint.pillow.png", 1, 3, 1},
#endif
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_image *img = tu_load(cases[i].shared ? tu_shared(cases[i].jpg) : cases[i].jpg);
        tsr_image *ref = tu_load(cases[i].golden);
        assert_int_equal(img->channels, cases[i].channels);
        assert_int_equal(img->bit_depth, 8);
        double d = tu_max_diff(img, ref) * 255.0;
        print_message("%-40s max diff vs Pillow %.3f levels (allowed %.0f)\n", cases[i].jpg, d,
                      cases[i].tol);
        assert_true(d <= cases[i].tol + 1e-3);
        tsr_image_free(img);
        tsr_image_free(ref);
    }
}

/* Write a 4-component JPEG with libjpeg itself: raw CMYK samples, stored as CMYK or YCCK, with
 * or without the Adobe marker. */
static void write_cmyk_jpeg(const char *path, const unsigned char *px, int w, int h,
                            J_COLOR_SPACE space, boolean adobe)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, space);
    for (int i = 0; i < 4; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    c.write_Adobe_marker = adobe;
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * 4);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    assert_int_equal(fclose(fp), 0);
}

/* CMYK and YCCK decode to RGB by r = (1 - c)(1 - k), with Adobe-marked samples read inverted
 * (r = c' k'). Quality 100 without subsampling still leaves JPEG error in each factor:
 * measured 1.7 levels on the product for CMYK, 2.7 for YCCK (its colour transform rounds once
 * more); 4 levels allowed, against errors of 100 levels and more for a wrong rule. */
static void jpeg_cmyk_ycck(void **state)
{
    enum { W = 24, H = 18 };
    static unsigned char px[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++)
                px[(y * W + x) * 4 + c] =
                    (unsigned char)(128 + 100 * sin(x / (3.0 + c) + y / (4.0 + c) + c));
    static const struct {
        J_COLOR_SPACE space;
        boolean adobe;
    } cases[] = {{JCS_CMYK, FALSE}, {JCS_CMYK, TRUE}, {JCS_YCCK, TRUE}};
    for (size_t i = 0; i < 3; i++) {
        const char *path = tmp_path("cmyk.jpg");
        write_cmyk_jpeg(path, px, W, H, cases[i].space, cases[i].adobe);
        tsr_image *img = tu_load(path);
        assert_int_equal(img->channels, 3);
        double m = 0;
        for (int p = 0; p < W * H; p++)
            for (int c = 0; c < 3; c++) {
                double v = px[p * 4 + c] / 255.0, k = px[p * 4 + 3] / 255.0;
                double want = cases[i].adobe ? v * k : (1 - v) * (1 - k);
                m = fmax(m, fabs(img->data[(size_t)c * W * H + p] - want));
            }
        print_message("%s%s: max error %.2f levels\n", cases[i].space == JCS_YCCK ? "YCCK" : "CMYK",
                      cases[i].adobe ? " (Adobe)" : "", m * 255);
        assert_true(m <= 4.0 / 255);
        tsr_image_free(img);
    }
}

static void jpeg_unsupported_refused(void **state)
{
    tsr__err err;
    tsr_image *img;
    const char *path = tu_shared("testdata/libjpeg-turbo/monkey12.jpg");
    assert_int_equal(load(path, 0, &img, &err), TSR_ERR_UNSUPPORTED);
    assert_null(img);
    tu_assert_msg_has(&err, path);
    tu_assert_msg_has(&err, "12");
    tsr_port_info info;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_probe(path, 0, NULL, &info, &err), TSR_ERR_UNSUPPORTED);
#ifndef D_ARITH_CODING_SUPPORTED
    /* A libjpeg built without arithmetic decoding refuses the file cleanly. */
    path = tu_shared("testdata/libjpeg-turbo/testimgari.jpg");
    assert_int_equal(load(path, 0, &img, &err), TSR_ERR_UNSUPPORTED);
    tu_assert_msg_has(&err, path);
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Pixel limit */

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void pixel_limit(void **state)
{
    tsr__err err;
    tsr_image *img;
    tsr_port_info info;
    const char *png = tu_shared("testdata/pngsuite/basn2c08.png"); /* 32x32 */
    assert_int_equal(load(png, 1023, &img, &err), TSR_ERR_LIMIT);
    assert_null(img);
    tu_assert_msg_has(&err, png);
    tu_assert_msg_has(&err, "1024 pixels");
    assert_int_equal(tsr__image_probe(png, 1023, NULL, &info, &err), TSR_ERR_LIMIT);
    assert_int_equal(load(png, 1024, &img, &err), TSR_OK);
    tsr_image_free(img);
    const char *jpg = tu_shared("testdata/libjpeg-turbo/testorig.jpg"); /* 227x149 */
    assert_int_equal(load(jpg, 227 * 149 - 1, &img, &err), TSR_ERR_LIMIT);
    tu_assert_msg_has(&err, jpg);
    assert_int_equal(load(jpg, 227 * 149, &img, &err), TSR_OK);
    tsr_image_free(img);

    /* Headers claiming 100000x100000 with no pixel data behind them: the limit (default 2^28)
     * answers, not a decode error and not an allocation, so it is checked from the header. */
    unsigned char bomb[8 + 25 + 12 + 12];
    memcpy(bomb, "\x89PNG\r\n\x1a\n", 8);
    put32(bomb + 8, 13);
    memcpy(bomb + 12, "IHDR", 4);
    put32(bomb + 16, 100000);
    put32(bomb + 20, 100000);
    memcpy(bomb + 24, "\x08\x02\x00\x00\x00", 5);
    put32(bomb + 29, crc32_png(bomb + 12, 17));
    put32(bomb + 33, 0); /* an empty IDAT: where the pixel data would start */
    memcpy(bomb + 37, "IDAT", 4);
    put32(bomb + 41, crc32_png(bomb + 37, 4));
    put32(bomb + 45, 0);
    memcpy(bomb + 49, "IEND", 4);
    put32(bomb + 53, crc32_png(bomb + 49, 4));
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(bomb, sizeof bomb, "bomb.png", 0, NULL, NULL, &img, &err),
                     TSR_ERR_LIMIT);
    tu_assert_msg_has(&err, "bomb.png");
    /* The same file claiming 100x100 gets past the header and fails on the missing data. */
    put32(bomb + 16, 100);
    put32(bomb + 20, 100);
    put32(bomb + 29, crc32_png(bomb + 12, 17));
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(bomb, sizeof bomb, "small.png", 0, NULL, NULL, &img, &err),
                     TSR_ERR_DECODE);
    tu_assert_msg_has(&err, "small.png");

    size_t len;
    unsigned char *buf = tu_slurp(GOLDEN "gray.jpg", &len);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len && !sof; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0)
            sof = i;
    assert_true(sof > 0);
    buf[sof + 5] = buf[sof + 7] = 0xFD; /* height and width 65000 */
    buf[sof + 6] = buf[sof + 8] = 0xE8;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(buf, len, "bomb.jpg", 0, NULL, NULL, &img, &err),
                     TSR_ERR_LIMIT);
    tu_assert_msg_has(&err, "65000x65000");
    free(buf);
}

/* libpng's own default limit (10^6 per side) must not refuse what the engine's limit accepts:
 * a 1100000x1 image saves and loads. */
static void wide_image_round_trip(void **state)
{
    tsr_image *img = tu_random_image(1100000, 1, 1, 5);
    for (size_t i = 0; i < 1100000; i++)
        img->data[i] = (float)lrintf(img->data[i] * 255.0f) / 255.0f;
    tsr__err err;
    tsr__err_clear(&err);
    const char *path = tmp_path("wide.png");
    assert_int_equal(tsr__image_save(img, path, NULL, NULL, &err), TSR_OK);
    tsr_image *back;
    assert_int_equal(load(path, 0, &back, &err), TSR_OK);
    assert_true(tu_max_diff(img, back) == 0.0);
    tsr_image_free(img);
    tsr_image_free(back);
}

/* ---------------------------------------------------------------------------------------------
 * Saving */

static tsr_image *quantized_image(int w, int h, int ch, int depth, uint32_t seed)
{
    tsr_image *img = tu_random_image(w, h, ch, seed);
    float maxv = depth == 16 ? 65535.0f : 255.0f;
    size_t n = (size_t)w * h * ch;
    for (size_t i = 0; i < n; i++)
        img->data[i] = (float)lrintf(img->data[i] * maxv) / maxv;
    /* Both ends of the range, so the extremes round-trip too. */
    img->data[0] = 0.0f;
    img->data[n - 1] = 1.0f;
    return img;
}

static void png_round_trip(void **state)
{
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++) {
            tsr_image *img = quantized_image(13, 7, ch, depth, (uint32_t)(depth * 10 + ch));
            tsr_save_options o;
            tsr_save_options_init(&o);
            o.bit_depth = depth;
            tsr__err err;
            tsr__err_clear(&err);
            const char *path = tmp_path("rt.png");
            assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
            tsr_image *back;
            assert_int_equal(load(path, 0, &back, &err), TSR_OK);
            assert_int_equal(back->channels, ch);
            assert_int_equal(back->bit_depth, depth);
            assert_true(tu_max_diff(img, back) == 0.0);
            tsr_image_free(back);
            tsr_image_free(img);
        }
    assert_int_equal(hidden_entries(tmpdir), 0);
}

/* bit_depth 0 follows the image's source depth; NULL options are the defaults. */
static void png_default_depth(void **state)
{
    tsr_image *img = quantized_image(9, 5, 3, 16, 3);
    tsr__err err;
    tsr__err_clear(&err);
    tsr_image *back;
    img->bit_depth = 16;
    assert_int_equal(tsr__image_save(img, tmp_path("d16.png"), NULL, NULL, &err), TSR_OK);
    assert_int_equal(load(tmp_path("d16.png"), 0, &back, &err), TSR_OK);
    assert_int_equal(back->bit_depth, 16);
    assert_true(tu_max_diff(img, back) == 0.0);
    tsr_image_free(back);
    img->bit_depth = 0;
    assert_int_equal(tsr__image_save(img, tmp_path("d8.png"), NULL, NULL, &err), TSR_OK);
    assert_int_equal(load(tmp_path("d8.png"), 0, &back, &err), TSR_OK);
    assert_int_equal(back->bit_depth, 8);
    assert_true(tu_max_diff(img, back) <= 0.5 / 255 + 1e-6);
    tsr_image_free(back);
    tsr_image_free(img);
}

/* round(clamp(v, 0, 1) * 255), NaN -> 0. */
static void png_quantization(void **state)
{
    static const struct {
        float v;
        int k;
    } cases[] = {{NAN, 0},         {-0.5f, 0},       {-INFINITY, 0},       {0.0f, 0},
                 {0.49f / 255, 0}, {0.51f / 255, 1}, {100.49f / 255, 100}, {100.51f / 255, 101},
                 {1.0f, 255},      {1.5f, 255},      {INFINITY, 255},      {254.6f / 255, 255}};
    int n = (int)(sizeof cases / sizeof cases[0]);
    tsr_image *img;
    assert_int_equal(tsr_image_new(n, 1, 1, &img), TSR_OK);
    for (int i = 0; i < n; i++)
        img->data[i] = cases[i].v;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_save(img, tmp_path("q.png"), NULL, NULL, &err), TSR_OK);
    tsr_image *back;
    assert_int_equal(load(tmp_path("q.png"), 0, &back, &err), TSR_OK);
    for (int i = 0; i < n; i++)
        if (lrintf(back->data[i] * 255.0f) != cases[i].k)
            fail_msg("%g saved as %ld, expected %d", (double)cases[i].v,
                     lrintf(back->data[i] * 255.0f), cases[i].k);
    tsr_image_free(back);
    tsr_image_free(img);
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static tsr_image *smooth_image(int w, int h, int ch)
{
    tsr_image *img;
    assert_int_equal(tsr_image_new(w, h, ch, &img), TSR_OK);
    size_t plane = (size_t)w * h;
    for (int c = 0; c < ch; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img->data[c * plane + (size_t)y * w + x] =
                    (float)(0.5 + 0.45 * sin(x / (5.0 + c) + y / 9.0) * cos(y / (7.0 + c)));
    return img;
}

static void png_compression_level(void **state)
{
    tsr_image *img = smooth_image(64, 64, 3);
    tsr_save_options o;
    tsr_save_options_init(&o);
    assert_int_equal(o.compression, -1);
    tsr__err err;
    tsr__err_clear(&err);
    o.compression = 0;
    assert_int_equal(tsr__image_save(img, tmp_path("c0.png"), &o, NULL, &err), TSR_OK);
    o.compression = 9;
    assert_int_equal(tsr__image_save(img, tmp_path("c9.png"), &o, NULL, &err), TSR_OK);
    long s0 = file_size(tmp_path("c0.png")), s9 = file_size(tmp_path("c9.png"));
    print_message("PNG sizes: level 0 %ld bytes, level 9 %ld bytes\n", s0, s9);
    /* Level 0 stores: at least the filtered rows (1 filter byte + 3 bytes per pixel). */
    assert_true(s0 >= 64 * (1 + 64 * 3));
    assert_true(s9 < s0 * 3 / 4);
    tsr_image *a, *b;
    assert_int_equal(load(tmp_path("c0.png"), 0, &a, &err), TSR_OK);
    assert_int_equal(load(tmp_path("c9.png"), 0, &b, &err), TSR_OK);
    assert_true(tu_max_diff(a, b) == 0.0);
    tsr_image_free(a);
    tsr_image_free(b);
    tsr_image_free(img);
}

typedef struct jpeg_facts {
    int components;
    int h[3], v[3];
    unsigned q0, q1; /* luminance quantiser, DC and first AC */
} jpeg_facts;

/* Read back a JPEG's header with libjpeg itself. */
static jpeg_facts jpeg_header(const char *path)
{
    jpeg_facts f = {0};
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr jerr;
    d.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&d);
    jpeg_stdio_src(&d, fp);
    assert_int_equal(jpeg_read_header(&d, TRUE), JPEG_HEADER_OK);
    f.components = d.num_components;
    for (int c = 0; c < d.num_components && c < 3; c++) {
        f.h[c] = d.comp_info[c].h_samp_factor;
        f.v[c] = d.comp_info[c].v_samp_factor;
    }
    assert_non_null(d.quant_tbl_ptrs[0]);
    f.q0 = d.quant_tbl_ptrs[0]->quantval[0];
    f.q1 = d.quant_tbl_ptrs[0]->quantval[1];
    jpeg_destroy_decompress(&d);
    fclose(fp);
    return f;
}

static double mean_abs(const tsr_image *a, const tsr_image *b)
{
    size_t n = (size_t)a->width * a->height * a->channels;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a->data[i] - b->data[i]);
    return s / (double)n;
}

static void jpeg_options(void **state)
{
    tsr_image *img = smooth_image(40, 24, 3);
    tsr__err err;
    tsr__err_clear(&err);
    const char *path = tmp_path("s.jpg");
    static const struct {
        int sub, h, v;
    } subs[] = {{444, 1, 1}, {422, 2, 1}, {420, 2, 2}, {0, 2, 2}};
    for (size_t i = 0; i < 4; i++) {
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.subsampling = subs[i].sub;
        assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
        jpeg_facts f = jpeg_header(path);
        assert_int_equal(f.components, 3);
        assert_int_equal(f.h[0], subs[i].h);
        assert_int_equal(f.v[0], subs[i].v);
        for (int c = 1; c < 3; c++) {
            assert_int_equal(f.h[c], 1);
            assert_int_equal(f.v[c], 1);
        }
        /* Default quality 92: IJG scaling 200 - 2q = 16%, DC 16 -> (16 * 16 + 50) / 100 = 3. */
        assert_int_equal(f.q0, 3);
    }
    /* Quality sets the IJG tables: 50 is the standard table (DC 16, first AC 11), 100 all 1. */
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.quality = 50;
    assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
    jpeg_facts f = jpeg_header(path);
    assert_int_equal(f.q0, 16);
    assert_int_equal(f.q1, 11);
    o.quality = 100;
    assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
    f = jpeg_header(path);
    assert_int_equal(f.q0, 1);
    assert_int_equal(f.q1, 1);
    /* ... and quality shows in the pixels. */
    double e[2];
    const int q[2] = {95, 20};
    for (int i = 0; i < 2; i++) {
        o.quality = q[i];
        assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
        tsr_image *back;
        assert_int_equal(load(path, 0, &back, &err), TSR_OK);
        assert_int_equal(back->channels, 3);
        e[i] = mean_abs(img, back);
        tsr_image_free(back);
    }
    print_message("JPEG mean error: q95 %.5f, q20 %.5f\n", e[0], e[1]);
    assert_true(e[0] < 0.01);
    assert_true(e[0] * 2 < e[1]);
    tsr_image_free(img);
}

/* Gray stays gray; alpha is dropped (2 -> 1, 4 -> 3 components). */
static void jpeg_channels(void **state)
{
    for (int ch = 1; ch <= 4; ch++) {
        tsr_image *img = smooth_image(33, 17, ch);
        tsr__err err;
        tsr__err_clear(&err);
        const char *path = tmp_path("ch.jpeg");
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.quality = 98;
        o.subsampling = 444;
        assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
        int colour = ch <= 2 ? 1 : 3;
        assert_int_equal(jpeg_header(path).components, colour);
        tsr_image *back;
        assert_int_equal(load(path, 0, &back, &err), TSR_OK);
        assert_int_equal(back->channels, colour);
        /* Colour planes survive within JPEG error at q98 (measured about 1 level), flattened
         * onto the default white background when there is alpha. */
        size_t plane = (size_t)33 * 17, n = plane * colour;
        double m = 0;
        for (size_t i = 0; i < n; i++) {
            double v = img->data[i];
            if (ch == 2 || ch == 4) {
                double a = img->data[(size_t)colour * plane + i % plane];
                a = a < 0 ? 0 : a > 1 ? 1 : a;
                v = v * a + (1 - a);
            }
            m = fmax(m, fabs(v - back->data[i]));
        }
        assert_true(m < 4.0 / 255);
        tsr_image_free(back);
        tsr_image_free(img);
    }
}

static void save_bad_options(void **state)
{
    tsr_image *img = smooth_image(8, 8, 3);
    const char *dst = tmp_path("keep.png");
    write_all(dst, "old", 3);
    static const struct {
        tsr_format format;
        int bit_depth, quality, compression, subsampling;
        tsr_status rc;
    } cases[] = {
        {TSR_FORMAT_PNG, 12, 0, -1, 0, TSR_ERR_INVALID},
        {TSR_FORMAT_JPEG, 16, 0, -1, 0, TSR_ERR_INVALID},
        {TSR_FORMAT_AUTO, 0, 101, -1, 0, TSR_ERR_INVALID},
        {TSR_FORMAT_AUTO, 0, -3, -1, 0, TSR_ERR_INVALID},
        {TSR_FORMAT_AUTO, 0, 0, 10, 0, TSR_ERR_INVALID},
        {TSR_FORMAT_AUTO, 0, 0, -2, 0, TSR_ERR_INVALID},
        {TSR_FORMAT_AUTO, 0, 0, -1, 411, TSR_ERR_INVALID},
        {(tsr_format)7, 0, 0, -1, 0, TSR_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.format = cases[i].format;
        o.bit_depth = cases[i].bit_depth;
        o.quality = cases[i].quality;
        o.compression = cases[i].compression;
        o.subsampling = cases[i].subsampling;
        tsr__err err;
        tsr__err_clear(&err);
        assert_int_equal(tsr__image_save(img, dst, &o, NULL, &err), cases[i].rc);
        tu_assert_msg_has(&err, dst);
        assert_true(file_is(dst, "old"));
    }
    /* Explicit format wins over the extension. */
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = TSR_FORMAT_JPEG;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_save(img, tmp_path("jpeg.png"), &o, NULL, &err), TSR_OK);
    assert_int_equal(jpeg_header(tmp_path("jpeg.png")).components, 3);
    /* A 5-channel image is refused. */
    tsr_image five = *img;
    five.channels = 5;
    assert_int_equal(tsr__image_save(&five, dst, NULL, NULL, &err), TSR_ERR_INVALID);
    assert_true(file_is(dst, "old"));
    assert_int_equal(hidden_entries(tmpdir), 0);
    tsr_image_free(img);
}

static void save_failures_leave_nothing(void **state)
{
    tsr_image *img = smooth_image(8, 8, 3);
    tsr__err err;
    tsr__err_clear(&err);

    /* Unknown extension. */
    const char *bmp = tmp_path("out.bmp");
    assert_int_equal(tsr__image_save(img, bmp, NULL, NULL, &err), TSR_ERR_UNSUPPORTED);
    tu_assert_msg_has(&err, bmp);
    tu_assert_msg_has(&err, ".bmp");
    assert_int_equal(access(bmp, F_OK), -1);
    assert_int_equal(tsr__image_save(img, tmp_path("noext"), NULL, NULL, &err),
                     TSR_ERR_UNSUPPORTED);

    /* Missing directory. */
    const char *missing = tmp_path("no/such/dir/out.png");
    assert_int_equal(tsr__image_save(img, missing, NULL, NULL, &err), TSR_ERR_IO);
    tu_assert_msg_has(&err, missing);
    tu_assert_msg_has(&err, "no/such/dir'");
    tu_assert_msg_has(&err, strerror(ENOENT));

    /* The destination is a directory: the encode succeeds, the rename fails, and the temporary
     * file must go. */
    const char *dir = tmp_path("adir.png");
    assert_int_equal(mkdir(dir, 0755), 0);
    write_all(tmp_path("adir.png/inside"), "x", 1);
    assert_int_equal(tsr__image_save(img, dir, NULL, NULL, &err), TSR_ERR_IO);
    tu_assert_msg_has(&err, dir);
    assert_true(file_is(tmp_path("adir.png/inside"), "x"));
    assert_int_equal(hidden_entries(tmpdir), 0);

    /* Replacing keeps the destination's permissions; a new file gets 0666 less the umask. */
    const char *dst = tmp_path("perm.png");
    write_all(dst, "old", 3);
    assert_int_equal(chmod(dst, 0640), 0);
    assert_int_equal(tsr__image_save(img, dst, NULL, NULL, &err), TSR_OK);
    struct stat st;
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    mode_t old = umask(027);
    const char *fresh = tmp_path("fresh.png");
    assert_int_equal(tsr__image_save(img, fresh, NULL, NULL, &err), TSR_OK);
    umask(old);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(hidden_entries(tmpdir), 0);
    tsr_image_free(img);
}

/* An unwritable directory: TSR_ERR_IO naming the path and the reason, the existing file
 * untouched. Root ignores permissions, so the save runs in a child without privileges. */
static void save_unwritable_directory(void **state)
{
    tsr_image *img = smooth_image(8, 8, 3);
    const char *ro = tmp_path("ro");
    assert_int_equal(mkdir(ro, 0755), 0);
    const char *dst = tmp_path("ro/out.png");
    write_all(dst, "old", 3);
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(chmod(tmpdir, 0755), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
            _exit(10);
        tsr__err err;
        tsr__err_clear(&err);
        tsr_status rc = tsr__image_save(img, dst, NULL, NULL, &err);
        int ok = rc == TSR_ERR_IO && strstr(err.msg, dst) && strstr(err.msg, strerror(EACCES));
        if (!ok)
            fprintf(stderr, "child: %s: %s\n", tsr_status_str(rc), err.msg);
        _exit(ok ? 0 : 11);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 10) {
        /* Root without CAP_SETUID cannot give up its override of permissions. */
        chmod(ro, 0755);
        tsr_image_free(img);
        print_message("cannot drop root privileges: unwritable-directory case not run\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(file_is(dst, "old"));
    assert_int_equal(hidden_entries(ro), 0);
    assert_int_equal(chmod(ro, 0755), 0);
    assert_int_equal(chmod(tmpdir, 0700), 0);
    tsr_image_free(img);
}

/* The public wrappers report through the engine and honour its pixel limit. */
static void public_wrappers(void **state)
{
    tsr_engine_options opt;
    tsr_engine_options_init(&opt);
    opt.device = "ref";
    opt.max_pixels = 1000;
    char msg[256];
    tsr_engine *e = NULL;
    assert_int_equal(tsr_engine_new(&opt, &e, msg, sizeof msg), TSR_OK);
    tsr_image *img = NULL;
    const char *png = tu_shared("testdata/pngsuite/basn2c08.png");
    assert_int_equal(tsr_image_read(e, png, &img), TSR_ERR_LIMIT);
    assert_non_null(strstr(tsr_errmsg(e), png));
    assert_int_equal(tsr_image_read(e, tu_shared("testdata/pngsuite/s09n3p02.png"), &img), TSR_OK);
    assert_string_equal(tsr_errmsg(e), "");
    const char *out = tmp_path("wrapped.png");
    assert_int_equal(tsr_image_write(e, img, out, NULL), TSR_OK);
    assert_int_equal(tsr_image_write(e, img, tmp_path("x.gif"), NULL), TSR_ERR_UNSUPPORTED);
    assert_non_null(strstr(tsr_errmsg(e), "x.gif"));
    tsr_image *back = NULL;
    assert_int_equal(tsr_image_read(e, out, &back), TSR_OK);
    assert_true(tu_max_diff(img, back) == 0.0);
    tsr_image_free(img);
    tsr_image_free(back);
    tsr_engine_free(e);
}

/* RGBA (and gray+alpha) to JPEG: flattened onto the background (straight alpha), so colours
 * under transparent pixels never show; a background outside 0..1 is refused. */
static void jpeg_flattens_alpha(void **state)
{
    for (int ch = 2; ch <= 4; ch += 2) {
        tsr_image *img;
        assert_int_equal(tsr_image_new(16, 16, ch, &img), TSR_OK);
        size_t plane = 16 * 16;
        for (size_t i = 0; i < plane; i++) {
            for (int c = 0; c < ch - 1; c++)
                img->data[c * plane + i] = c == 0 ? 1.0f : 0.0f; /* red (or white gray) */
            img->data[(size_t)(ch - 1) * plane + i] = i < plane / 2 ? 0.0f : 1.0f;
        }
        static const float bgs[2][3] = {{0, 0, 0}, {0.2f, 0.6f, 1.0f}};
        for (int b = 0; b < 2; b++) {
            tsr_save_options o;
            tsr_save_options_init(&o);
            assert_true(o.background[0] == 1.0f && o.background[2] == 1.0f); /* white */
            memcpy(o.background, bgs[b], sizeof o.background);
            o.quality = 100;
            o.subsampling = 444;
            tsr__err err;
            const char *path = tmp_path("flat.jpg");
            assert_int_equal(tsr__image_save(img, path, &o, NULL, &err), TSR_OK);
            tsr_image *back;
            assert_int_equal(tsr__image_load(path, 0, NULL, NULL, &back, &err), TSR_OK);
            assert_int_equal(back->channels, ch == 2 ? 1 : 3);
            size_t bp = 16 * 16;
            for (int c = 0; c < back->channels; c++) {
                float top = back->data[c * bp + 2 * 16 + 8],
                      bottom = back->data[c * bp + 13 * 16 + 8];
                float want_bottom = c == 0 ? 1.0f : 0.0f;
                assert_true(fabsf(top - bgs[b][c]) < 3.0f / 255);      /* transparent: background */
                assert_true(fabsf(bottom - want_bottom) < 3.0f / 255); /* opaque: its colour */
            }
            tsr_image_free(back);
        }
        tsr_save_options o;
        tsr_save_options_init(&o);
        o.background[1] = 1.5f;
        tsr__err err;
        assert_int_equal(tsr__image_save(img, tmp_path("bad.jpg"), &o, NULL, &err),
                         TSR_ERR_INVALID);
        assert_non_null(strstr(err.msg, "background"));
        tsr_image_free(img);
    }
}

/* A valid gray JPEG with `refine` successive-approximation refinements of every coefficient,
 * coded separately: 64 * (refine + 1) scans, written by libjpeg itself. */
static unsigned char *many_scans_jpeg(int refine, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    jpeg_mem_dest(&c, &out, len);
    c.image_width = 64;
    c.image_height = 64;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    int n = 64 * (refine + 1), k = 0;
    jpeg_scan_info *scans = calloc((size_t)n, sizeof *scans);
    for (int ss = 0; ss < 64; ss++)
        for (int r = 0; r <= refine; r++) {
            jpeg_scan_info *sc = &scans[k++];
            sc->comps_in_scan = 1;
            sc->component_index[0] = 0;
            sc->Ss = sc->Se = ss;
            sc->Ah = r == 0 ? 0 : refine - r + 1;
            sc->Al = refine - r;
        }
    c.scan_info = scans;
    c.num_scans = n;
    jpeg_start_compress(&c, TRUE);
    unsigned char row[64];
    while (c.next_scanline < 64) {
        for (int x = 0; x < 64; x++)
            row[x] = (unsigned char)(x * 4 + c.next_scanline);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(scans);
    return out;
}

/* A JPEG of thousands of scans is a decoding bomb: refused past 200 scans, quickly; one of 128
 * scans (more than encoders write, under the cap) still loads. */
static void jpeg_scan_bomb_refused(void **state)
{
    unsigned long len;
    unsigned char *ok = many_scans_jpeg(1, &len); /* 128 scans */
    tsr_image *img = NULL;
    tsr__err err;
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(ok, len, "ok", 0, NULL, NULL, &img, &err), TSR_OK);
    tsr_image_free(img);
    free(ok);
    unsigned char *bomb = many_scans_jpeg(5, &len); /* 384 scans */
    tsr__err_clear(&err);
    assert_int_equal(tsr__image_decode(bomb, len, "bomb", 0, NULL, NULL, &img, &err),
                     TSR_ERR_DECODE);
    assert_null(img);
    assert_non_null(strstr(err.msg, "more than 200 scans"));
    free(bomb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jpeg_scan_bomb_refused),
        cmocka_unit_test(jpeg_flattens_alpha),
        cmocka_unit_test(pngsuite_matches_pypng),
        cmocka_unit_test(libpng_copies_match_originals),
        cmocka_unit_test(invalid_pngs_refused),
        cmocka_unit_test(truncated_files_refused),
        cmocka_unit_test(corrupted_files_fail_cleanly),
        cmocka_unit_test(not_images_refused),
        cmocka_unit_test(jpeg_matches_pillow),
        cmocka_unit_test(jpeg_cmyk_ycck),
        cmocka_unit_test(jpeg_unsupported_refused),
        cmocka_unit_test(pixel_limit),
        cmocka_unit_test(wide_image_round_trip),
        cmocka_unit_test(png_round_trip),
        cmocka_unit_test(png_default_depth),
        cmocka_unit_test(png_quantization),
        cmocka_unit_test(png_compression_level),
        cmocka_unit_test(jpeg_options),
        cmocka_unit_test(jpeg_channels),
        cmocka_unit_test(save_bad_options),
        cmocka_unit_test(save_failures_leave_nothing),
        cmocka_unit_test(save_unwritable_directory),
        cmocka_unit_test(public_wrappers),
    };
    return cmocka_run_group_tests_name("image_io", tests, make_tmpdir, drop_tmpdir);
}
