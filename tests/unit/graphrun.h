/* Helpers shared by test_tiling.c and test_oom.c: run YAML graphs through the real executor and
 * capture what reaches each sink unquantised.
 *
 * A sink whose id starts with "cap_" is switched, after loading, to a copy of the image.save class
 * whose consume() keeps a copy of the float image instead of encoding it. Everything before the
 * sink (planner, stages, tiles, pool, transfers) is the production path; only the last step
 * changes, so two runs can be compared bit for bit without the 16-bit quantisation of a file. */
#ifndef TSR_TEST_GRAPHRUN_H
#define TSR_TEST_GRAPHRUN_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define GR_MAX_CAPS 8

typedef struct gr_cap {
    char id[64];
    tsr_image *img;
} gr_cap;

/* What one run produced: captured images by sink id, and the events it emitted. */
typedef struct gr_result {
    tsr_status rc;
    char msg[1024];
    gr_cap caps[GR_MAX_CAPS];
    int n_caps;
    int n_plan, n_stage, n_downgrade, n_done;
    char plan_json[4096];
    char downgrade_json[512]; /* the first downgrade event */
    char *stats;              /* tsr_engine_stats after the run */
    int discard;              /* note which sinks were reached, keep no pixels (large outputs) */
} gr_result;

static gr_result *gr_current; /* the run being captured (tests are single-threaded) */
static tsr_node_class gr_capture_class;

static inline tsr_status gr_capture_consume(tsr_exec *ex, const tsr_node *n, const tsr_image *img)
{
    if (!gr_current || gr_current->n_caps == GR_MAX_CAPS)
        return tsr__seterr(ex->err, TSR_ERR_INTERNAL, "capture: no slot for '%s'", n->id);
    if (gr_current->discard) {
        snprintf(gr_current->caps[gr_current->n_caps++].id, sizeof gr_current->caps[0].id, "%s",
                 n->id);
        return TSR_OK;
    }
    tsr_image *c = NULL;
    tsr_status rc = tsr_image_new(img->width, img->height, img->channels, &c);
    if (rc)
        return tsr__seterr(ex->err, rc, "capture: out of memory");
    memcpy(c->data, img->data, tsr__image_bytes(img->width, img->height, img->channels));
    gr_cap *slot = &gr_current->caps[gr_current->n_caps++];
    snprintf(slot->id, sizeof slot->id, "%s", n->id);
    slot->img = c;
    return TSR_OK;
}

static inline void gr_event(void *user, const tsr_event *ev)
{
    gr_result *r = user;
    const char *json = ev->json;
    if (strstr(json, "\"event\":\"plan\"")) {
        r->n_plan++;
        snprintf(r->plan_json, sizeof r->plan_json, "%s", json);
    } else if (strstr(json, "\"event\":\"stage\"")) {
        r->n_stage++;
    } else if (strstr(json, "\"event\":\"downgrade\"")) {
        if (!r->n_downgrade++)
            snprintf(r->downgrade_json, sizeof r->downgrade_json, "%s", json);
    } else if (strstr(json, "\"event\":\"finish\"")) {
        r->n_done++;
    }
}

static inline void gr_result_clear(gr_result *r)
{
    for (int i = 0; i < r->n_caps; i++)
        tsr_image_free(r->caps[i].img);
    tsr_free(r->stats);
    memset(r, 0, sizeof *r);
}

static inline const tsr_image *gr_cap_of(const gr_result *r, const char *id)
{
    for (int i = 0; i < r->n_caps; i++)
        if (strcmp(r->caps[i].id, id) == 0)
            return r->caps[i].img;
    fail_msg("no image reached sink '%s'", id);
    return NULL;
}

/* Value of "key: value" in a stats text; fails the test when the key is missing. */
static inline unsigned long long gr_stat(const char *stats, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = stats; p && *p;) {
        if (strncmp(p, key, k) == 0 && p[k] == ':')
            return strtoull(p + k + 1, NULL, 10);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    fail_msg("no '%s' in the run statistics:\n%s", key, stats ? stats : "(none)");
    return 0;
}

/* Load a graph from YAML text and switch its "cap_*" sinks to the capture class. */
static inline tsr_graph *gr_load(tsr_engine *e, const char *yaml)
{
    if (!gr_capture_class.name) {
        const tsr_node_class *save = tsr__node_class_find("image.save");
        assert_non_null(save);
        gr_capture_class = *save;
        gr_capture_class.consume = gr_capture_consume;
    }
    tsr_graph *g = NULL;
    if (tsr_graph_load_string(e, yaml, "test.yaml", &g))
        fail_msg("graph: %s\n%s", tsr_errmsg(e), yaml);
    for (int i = 0; i < g->n_nodes; i++)
        if (strncmp(g->nodes[i].id, "cap_", 4) == 0) {
            assert_true(g->nodes[i].cls->flags & TSR_NODE_SINK);
            g->nodes[i].cls = &gr_capture_class;
        }
    return g;
}

/* Run g with forced tiles (0, 0: the planner's choice); the result holds the status, message,
 * captured images (unless discard), event counts and statistics. */
static inline void gr_run_ex(tsr_engine *e, tsr_graph *g, int tile_w, int tile_h, int discard,
                             gr_result *r)
{
    memset(r, 0, sizeof *r);
    r->discard = discard;
    tsr_run_options o;
    memset(&o, 0, sizeof o);
    o.event = gr_event;
    o.user = r;
    o.tile_width = tile_w;
    o.tile_height = tile_h;
    gr_current = r;
    r->rc = tsr_graph_run(e, g, &o);
    gr_current = NULL;
    snprintf(r->msg, sizeof r->msg, "%s", r->rc ? tsr_errmsg(e) : "");
    r->stats = tsr_engine_stats(e);
}

static inline void gr_run(tsr_engine *e, tsr_graph *g, int tile_w, int tile_h, gr_result *r)
{
    gr_run_ex(e, g, tile_w, tile_h, 0, r);
}

/* A temporary directory for one test, removed (with its files) by gr_rmdir. */
static inline void gr_mkdtemp(char *dir, size_t len, const char *stem)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, len, "%s/tessera-%s-XXXXXX", t && *t ? t : "/tmp", stem);
    assert_non_null(mkdtemp(dir));
}

static inline int gr_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        n += strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0;
    closedir(d);
    return n;
}

static inline void gr_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char names[64][256];
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0 && n < 64)
            snprintf(names[n++], sizeof names[0], "%s", ent->d_name);
    closedir(d);
    char path[4096];
    for (int i = 0; i < n; i++) {
        assert_true((size_t)snprintf(path, sizeof path, "%.3800s/%.255s", dir, names[i]) <
                    sizeof path);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

static inline int gr_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline int gr_same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *x = tu_slurp(a, &la), *y = tu_slurp(b, &lb);
    int same = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* Bit-identical: same shape and the same float32 bit patterns (not merely equal values). */
static inline int gr_same_bits(const tsr_image *a, const tsr_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->data, b->data, tsr__image_bytes(a->width, a->height, a->channels)) == 0;
}

/* Write a seeded random image as a 16-bit PNG (so the graph's source has 65536 levels). */
static inline void gr_write_random_png(const char *path, int w, int h, int channels, uint32_t seed)
{
    tsr_image *img = tu_random_image(w, h, channels, seed);
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.bit_depth = 16;
    o.compression = 1;
    if (tsr_image_write(tu_engine_ref(), img, path, &o))
        fail_msg("write %s: %s", path, tsr_errmsg(tu_engine_ref()));
    tsr_image_free(img);
}

/* An OpenCL engine on the test device with the given device-memory budget. */
static inline tsr_engine *gr_engine(uint64_t vram_limit)
{
    tsr_engine_options o;
    tsr_engine_options_init(&o);
    o.device = getenv("TSR_TEST_DEVICE");
    o.vram_limit = vram_limit;
    char msg[1024] = "";
    tsr_engine *e = NULL;
    if (tsr_engine_new(&o, &e, msg, sizeof msg))
        fail_msg("cannot create an engine with a %llu-byte budget: %s",
                 (unsigned long long)vram_limit, msg);
    if (tsr_engine_is_ref(e))
        fail_msg("TSR_DEVICE=ref is set: these tests need an OpenCL device");
    return e;
}

#endif
