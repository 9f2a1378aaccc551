/* Goldens of tests/golden/filters (written by tools/gen-filter-golden.py) for the filter node
 * tests: the .f32 reader, MANIFEST cases, and a tolerance check that reports the worst sample. */
#ifndef TSR_FILTERS_GOLDEN_H
#define TSR_FILTERS_GOLDEN_H
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define FG_DIR "tests/golden/filters/"
#define FG_MAX_KV 8

typedef struct fg_case {
    char input[64], output[64];
    char kv_buf[FG_MAX_KV][64];
    const char *kv[FG_MAX_KV];
    int n_kv;
} fg_case;

static uint32_t fg_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Read a .f32 file: "TF32", width, height, channels (LE uint32), then planar LE float32. */
__attribute__((unused)) static tsr_image *fg_read(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, FG_DIR "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (tests run from the repository root)", path);
    unsigned char h[16];
    if (fread(h, 1, 16, f) != 16 || memcmp(h, "TF32", 4) != 0)
        fail_msg("%s: not a TF32 file", path);
    uint32_t w = fg_u32(h + 4), ht = fg_u32(h + 8), c = fg_u32(h + 12);
    if (w == 0 || ht == 0 || c == 0 || c > 4 || w > 65536 || ht > 65536)
        fail_msg("%s: bad header %ux%ux%u", path, w, ht, c);
    tsr_image *img = NULL;
    assert_int_equal(tsr_image_new((int)w, (int)ht, (int)c, &img), TSR_OK);
    size_t n = (size_t)w * ht * c;
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        if (fread(b, 1, 4, f) != 4)
            fail_msg("%s: truncated at sample %zu of %zu", path, i, n);
        uint32_t u = fg_u32(b);
        memcpy(&img->data[i], &u, 4);
    }
    if (fgetc(f) != EOF)
        fail_msg("%s: trailing bytes", path);
    fclose(f);
    return img;
}

/* The MANIFEST cases for one node type; returns how many (at most max). */
__attribute__((unused)) static int fg_cases(const char *node, fg_case *out, int max)
{
    FILE *f = fopen(FG_DIR "MANIFEST", "r");
    if (!f)
        fail_msg("cannot open " FG_DIR "MANIFEST (tests run from the repository root)");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
        if (!tok || tok[0] == '#' || strcmp(tok, node) != 0)
            continue;
        if (n == max)
            fail_msg("more than %d MANIFEST cases for %s", max, node);
        fg_case *c = &out[n++];
        memset(c, 0, sizeof *c);
        char *in = strtok_r(NULL, " \t\r\n", &save), *o = strtok_r(NULL, " \t\r\n", &save);
        if (!in || !o)
            fail_msg("MANIFEST: a %s line lacks its input or output", node);
        snprintf(c->input, sizeof c->input, "%s", in);
        snprintf(c->output, sizeof c->output, "%s", o);
        while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
            if (c->n_kv == FG_MAX_KV)
                fail_msg("MANIFEST: too many params for %s", c->output);
            snprintf(c->kv_buf[c->n_kv], sizeof c->kv_buf[0], "%s", tok);
            c->kv[c->n_kv] = c->kv_buf[c->n_kv];
            c->n_kv++;
        }
    }
    fclose(f);
    return n;
}

/* Value of param `key` in a case, as a double (the case must have it). */
__attribute__((unused)) static double fg_param(const fg_case *c, const char *key)
{
    size_t k = strlen(key);
    for (int i = 0; i < c->n_kv; i++)
        if (strncmp(c->kv[i], key, k) == 0 && c->kv[i][k] == '=')
            return atof(c->kv[i] + k + 1);
    fail_msg("%s: no param %s", c->output, key);
    return 0;
}

/* Largest |sample| of an image. */
__attribute__((unused)) static double fg_max_abs(const tsr_image *img)
{
    double m = 0;
    size_t n = (size_t)img->width * img->height * img->channels;
    for (size_t i = 0; i < n; i++)
        m = fabs(img->data[i]) > m ? fabs(img->data[i]) : m;
    return m;
}

/* Fail unless |got - want| <= abs_tol + rel_tol * |want| for every sample (NaN fails). */
__attribute__((unused)) static void fg_check(const tsr_image *got, const tsr_image *want,
                                             double abs_tol, double rel_tol, const char *what)
{
    assert_non_null(got);
    assert_non_null(want);
    if (got->width != want->width || got->height != want->height ||
        got->channels != want->channels)
        fail_msg("%s: shape %dx%dx%d, expected %dx%dx%d", what, got->width, got->height,
                 got->channels, want->width, want->height, want->channels);
    size_t n = (size_t)got->width * got->height * got->channels, worst = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double g = got->data[i], w = want->data[i], d = fabs(g - w);
        double excess = isnan(d) ? INFINITY : d - (abs_tol + rel_tol * fabs(w));
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst_excess > 0) {
        size_t plane = (size_t)got->width * got->height;
        fail_msg("%s: channel %zu (%zu, %zu): got %.9g, expected %.9g (tolerance %.3g + %.3g*|v|)",
                 what, worst / plane, worst % plane % got->width, worst % plane / got->width,
                 got->data[worst], want->data[worst], abs_tol, rel_tol);
    }
}

/* Seeded random image: colour planes in [lo, hi), alpha (if any) in [0, 1). Values outside 0..1
 * are what earlier nodes can hand on, and the nodes must treat them as documented. */
__attribute__((unused)) static tsr_image *fg_random_range(int w, int h, int ch, uint32_t seed,
                                                          float lo, float hi)
{
    tsr_image *img = tu_random_image(w, h, ch, seed);
    int colour = ch == 2 || ch == 4 ? ch - 1 : ch;
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane * colour; i++)
        img->data[i] = lo + (hi - lo) * img->data[i];
    return img;
}

#endif
