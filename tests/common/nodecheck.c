#include "nodecheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void nc_check(const tsr_image *got, const tsr_image *want, double abs_tol, double rel_tol,
              const char *what)
{
    assert_non_null(got);
    assert_non_null(want);
    if (got->width != want->width || got->height != want->height || got->channels != want->channels)
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

int nc_colour_planes(int channels)
{
    return channels == 2 || channels == 4 ? channels - 1 : channels;
}

void nc_alpha_kept(const tsr_image *in, const tsr_image *out, const char *what)
{
    assert_int_equal(out->width, in->width);
    assert_int_equal(out->height, in->height);
    assert_int_equal(out->channels, in->channels);
    size_t plane = (size_t)in->width * in->height;
    for (size_t i = plane * nc_colour_planes(in->channels); i < plane * in->channels; i++)
        if (memcmp(&out->data[i], &in->data[i], sizeof(float)) != 0)
            fail_msg("%s: alpha (%zu, %zu) changed: %.9g -> %.9g", what, i % plane % in->width,
                     i % plane / in->width, in->data[i], out->data[i]);
}

void nc_sweep_run(const nc_sweep *sw)
{
    size_t n_params = sw->n_params ? sw->n_params : 1;
    for (size_t s = 0; s < sw->n_sizes; s++)
        for (int ch = 1; ch <= 4; ch++)
            for (size_t p = 0; p < n_params; p++) {
                nc_point pt = {s, p, sw->sizes[s][0], sw->sizes[s][1], ch};
                if (sw->omit && sw->omit(&pt))
                    continue;
                tsr_node *n = sw->make ? sw->make(p) : tu_node(sw->node, NULL, 0);
                tsr_image *in = sw->input(&pt);
                tsr_image *ref = tu_run(tu_engine_ref(), n, in, 0, 0);
                tsr_image *cl = tu_run(tu_engine_cl(), n, in, 0, 0);
                char what[256], params[192] = "";
                if (sw->describe)
                    sw->describe(p, params, sizeof params);
                snprintf(what, sizeof what, "%dx%dx%d%s%s", pt.w, pt.h, ch, *params ? " " : "",
                         params);
                nc_tol tol = sw->tol_fn ? sw->tol_fn(&pt, in) : sw->tol;
                if (sw->compare)
                    sw->compare(&pt, in, ref, cl, what);
                else
                    nc_check(cl, ref, tol.abs, tol.rel, what);
                if (sw->check)
                    sw->check(&pt, in, ref, what);
                tsr_image_free(in);
                tsr_image_free(ref);
                tsr_image_free(cl);
                tsr__node_free(n);
            }
}

void nc_tiled_equals_whole(const tsr_node *n, tsr_image *in, const int ref_tile[2],
                           const int cl_tile[2], const char *label)
{
    tsr_image *whole = tu_run(tu_engine_ref(), n, in, 0, 0);
    tsr_image *whole_cl = tu_run(tu_engine_cl(), n, in, 0, 0);
    tsr_image *tiled = tu_run(tu_engine_ref(), n, in, ref_tile[0], ref_tile[1]);
    tsr_image *tiled_cl = tu_run(tu_engine_cl(), n, in, cl_tile[0], cl_tile[1]);
    const char *sep = label ? " " : "";
    char what[224];
    snprintf(what, sizeof what, "ref tiles %dx%d%s%s", ref_tile[0], ref_tile[1], sep,
             label ? label : "");
    nc_check(tiled, whole, 0, 0, what);
    snprintf(what, sizeof what, "cl tiles %dx%d%s%s", cl_tile[0], cl_tile[1], sep,
             label ? label : "");
    nc_check(tiled_cl, whole_cl, 0, 0, what);
    tsr_image_free(whole);
    tsr_image_free(whole_cl);
    tsr_image_free(tiled);
    tsr_image_free(tiled_cl);
}

void nc_params_checked(const char *node, const char *const *bad, size_t n_bad,
                       const char *const *good, size_t n_good)
{
    for (size_t i = 0; i < n_bad; i++) {
        tsr__err err;
        tsr__err_clear(&err);
        tsr_node *n = NULL;
        if (tsr__node_make(node, &bad[i], 1, &n, &err) == TSR_OK)
            fail_msg("%s accepted %s", node, bad[i]);
        assert_null(n);
        assert_true(err.msg[0] != 0);
    }
    for (size_t i = 0; i < n_good; i++)
        tsr__node_free(tu_node(node, &good[i], 1));
}
