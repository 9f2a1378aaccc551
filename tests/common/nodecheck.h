/* The per-node test harness: a tolerance check that names the worst sample, and the loops every
 * node test repeats (CL vs reference over sizes, channel counts and params; tiled vs whole;
 * parameter ranges), with what differs from node to node passed in. The reasoning behind each
 * tolerance stays in the node's own test. */
#ifndef TSR_NODECHECK_H
#define TSR_NODECHECK_H
#include "testutil.h"

/* |got - want| <= abs + rel * |want|. */
typedef struct nc_tol {
    double abs, rel;
} nc_tol;

/* Fail unless |got - want| <= abs_tol + rel_tol * |want| for every sample (NaN fails); the
 * message names `what`, the channel and position of the worst sample, both values and the
 * tolerance. */
void nc_check(const tsr_image *got, const tsr_image *want, double abs_tol, double rel_tol,
              const char *what);

/* How many planes of an image with `channels` channels hold colour: 2 and 4 end with alpha. */
int nc_colour_planes(int channels);

/* Fail unless `out` has the shape of `in` and its alpha plane (if any) holds the same bits. */
void nc_alpha_kept(const tsr_image *in, const tsr_image *out, const char *what);

/* One point of a sweep: sizes[s] is w x h, ch channels, param set p. */
typedef struct nc_point {
    size_t s, p;
    int w, h, ch;
} nc_point;

/* CL against the reference over every size, channel count 1..4 and param set. */
typedef struct nc_sweep {
    const char *node; /* node type, made with its defaults where `make` is NULL */
    const int (*sizes)[2];
    size_t n_sizes;
    size_t n_params; /* 0: one point per size and channel count, p = 0 */
    tsr_node *(*make)(size_t p);
    /* If set, writes the params of set p for messages, e.g. "gamma=2.2". */
    void (*describe)(size_t p, char *buf, size_t len);
    /* Seeded input of a point (each test keeps its own seeds and value ranges). */
    tsr_image *(*input)(const nc_point *pt);
    /* If set, points to leave out (a reference too slow for the size). */
    int (*omit)(const nc_point *pt);
    nc_tol tol;
    /* If set, the tolerance from the point and its input, instead of `tol`. */
    nc_tol (*tol_fn)(const nc_point *pt, const tsr_image *in);
    /* If set, replaces nc_check(cl, ref, tol) for nodes that allow more than a tolerance; it may
     * run other nodes on `in`. */
    void (*compare)(const nc_point *pt, tsr_image *in, const tsr_image *ref, const tsr_image *cl,
                    const char *what);
    /* If set, the node's definition checked on the reference output, sample by sample. */
    void (*check)(const nc_point *pt, const tsr_image *in, const tsr_image *ref, const char *what);
} nc_sweep;

/* Runs every point; messages start "WxHxC params" to name the failing one. */
void nc_sweep_run(const nc_sweep *sw);

/* Tiles give the same bits as the whole image on each path: the reference in ref_tile tiles
 * against the whole reference, the device in cl_tile tiles against the whole device run.
 * `label` (may be NULL) names the case in messages after "ref tiles WxH"; n and in stay the
 * caller's. */
void nc_tiled_equals_whole(const tsr_node *n, tsr_image *in, const int ref_tile[2],
                           const int cl_tile[2], const char *label);

/* Each "key=value" of bad is refused with a message and no node; each of good is accepted. */
void nc_params_checked(const char *node, const char *const *bad, size_t n_bad,
                       const char *const *good, size_t n_good);

#endif
