/* Goldens of tests/golden/filters (written by tools/gen-filter-golden.py) for the filter node
 * tests: the .f32 reader, MANIFEST cases, and the loop that checks both paths against them. */
#ifndef TSR_FILTERS_GOLDEN_H
#define TSR_FILTERS_GOLDEN_H
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodecheck.h"

#define FG_DIR "tests/golden/filters/"
#define FG_MAX_KV 8

typedef struct fg_case {
    char input[64], output[64];
    char kv_buf[FG_MAX_KV][64];
    const char *kv[FG_MAX_KV];
    int n_kv;
} fg_case;

/* A .f32 golden of tests/golden/filters. */
__attribute__((unused)) static tsr_image *fg_read(const char *name)
{
    char path[512];
    if (snprintf(path, sizeof path, FG_DIR "%s", name) >= (int)sizeof path)
        fail_msg("golden name too long: %s", name);
    return tu_read_f32(path);
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

/* Seeded random image: colour planes in [lo, hi), alpha (if any) in [0, 1). Values outside 0..1
 * are what earlier nodes can hand on, and the nodes must treat them as documented. */
__attribute__((unused)) static tsr_image *fg_random_range(int w, int h, int ch, uint32_t seed,
                                                          float lo, float hi)
{
    tsr_image *img = tu_random_image(w, h, ch, seed);
    size_t colour = (size_t)w * h * nc_colour_planes(ch);
    for (size_t i = 0; i < colour; i++)
        img->data[i] = lo + (hi - lo) * img->data[i];
    return img;
}

/* A node's MANIFEST cases, each run on both paths and compared with its golden. */
typedef struct fg_golden {
    const char *node; /* node type and MANIFEST key */
    int min_cases;    /* fewer MANIFEST lines for the node fail: a lost case is not a pass */
    nc_tol ref_tol, cl_tol;
    /* If set, the tolerance of both paths, from the case's params and its input. */
    nc_tol (*tol)(const fg_case *c, const tsr_image *in);
    /* If set, replaces nc_check(got, want, tol) for nodes that allow more than a tolerance. */
    void (*compare)(const fg_case *c, const tsr_image *in, const tsr_image *got,
                    const tsr_image *want, nc_tol tol, const char *what);
} fg_golden;

#define FG_MAX_CASES 32

/* Every case: "ref vs OUTPUT" and "cl vs OUTPUT" name the failing one. */
__attribute__((unused)) static void fg_golden_run(const fg_golden *g)
{
    fg_case cases[FG_MAX_CASES];
    int n_cases = fg_cases(g->node, cases, FG_MAX_CASES);
    if (n_cases < g->min_cases)
        fail_msg("%d MANIFEST cases for %s, expected at least %d", n_cases, g->node, g->min_cases);
    for (int i = 0; i < n_cases; i++) {
        tsr_node *n = tu_node(g->node, cases[i].kv, cases[i].n_kv);
        tsr_image *in = fg_read(cases[i].input), *want = fg_read(cases[i].output);
        nc_tol tol[2] = {g->ref_tol, g->cl_tol};
        if (g->tol)
            tol[0] = tol[1] = g->tol(&cases[i], in);
        tsr_image *got[2] = {tu_run(tu_engine_ref(), n, in, 0, 0),
                             tu_run(tu_engine_cl(), n, in, 0, 0)};
        for (int k = 0; k < 2; k++) {
            char what[160];
            snprintf(what, sizeof what, "%s vs %s", k ? "cl" : "ref", cases[i].output);
            if (g->compare)
                g->compare(&cases[i], in, got[k], want, tol[k], what);
            else
                nc_check(got[k], want, tol[k].abs, tol[k].rel, what);
        }
        tsr_image_free(in);
        tsr_image_free(want);
        tsr_image_free(got[0]);
        tsr_image_free(got[1]);
        tsr__node_free(n);
    }
}

#endif
