/* Out-of-memory recovery, by fault injection at every device allocation of a small tiled graph
 * (load -> blur -> resize -> invert -> save under a budget that forces strips). A single failure
 * is absorbed by the tile's retry; two in a row halve the tile; a failure that never ends stops
 * the run with TSR_ERR_DEVICE_NOMEM and no output. Every successful run must give output
 * bit-identical to the fault-free run (captured floats, and the same PNG bytes), because tiles
 * are seamless whatever their size. A non-memory OpenCL error must fail at once, never retried. */
#include "graphrun.h"

#define SRC_W 64
#define SRC_H 48

/* One graph of the sweep and what its fault-free run gave. */
typedef struct oom_case {
    const char *name;
    const char *fmt; /* YAML; %1$s is the directory */
    int strip_w;     /* the budget is what a strip_w x 16 tile of the first stage needs */
    char yaml[4096];
    uint64_t budget;
    uint64_t n_allocs;  /* device allocations of the fault-free run */
    int64_t plan_tiles; /* tiles of the fault-free plan, all stages */
    int stages;
    char ref_png[600]; /* the fault-free PNG */
    tsr_image *ref_caps[GR_MAX_CAPS];
    char ref_ids[GR_MAX_CAPS][64];
    int n_ref;
} oom_case;

static char dir[512], src_png[600], out_png[600];
static int fixed_files = 1; /* src.png and each case's reference PNG */

/* The chain: one tiled stage, load -> blur -> resize x1.5 -> invert -> save (96x72). */
static oom_case chain = {
    .name = "chain",
    .fmt = "version: 1\n"
           "nodes:\n"
           "  src: { type: image.load, params: { path: '%1$s/src.png' } }\n"
           "  blur: { type: blur.gaussian, inputs: { image: src.image },\n"
           "          params: { sigma: 1.5, edge: mirror } }\n"
           "  up: { type: resize, inputs: { image: blur.image }, params: { scale: 1.5 } }\n"
           "  inv: { type: adjust.invert, inputs: { image: up.image } }\n"
           "  out: { type: image.save, inputs: { image: inv.image },\n"
           "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
           "  cap_out: { type: image.save, inputs: { image: inv.image },\n"
           "             params: { path: '%1$s/c.png' } }\n",
    .strip_w = SRC_W * 3 / 2,
};

/* Three stages: the blur feeds two branches, so it is materialised; a downgrade in one stage
 * must not disturb the others. */
static oom_case fanout = {
    .name = "fanout",
    .fmt = "version: 1\n"
           "nodes:\n"
           "  src: { type: image.load, params: { path: '%1$s/src.png' } }\n"
           "  blur: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 2 } }\n"
           "  down: { type: resize, inputs: { image: blur.image },\n"
           "          params: { scale: 0.6, filter: mitchell } }\n"
           "  inv: { type: adjust.invert, inputs: { image: down.image } }\n"
           "  gam: { type: adjust.gamma, inputs: { image: blur.image }, params: { gamma: 0.7 } }\n"
           "  out: { type: image.save, inputs: { image: inv.image },\n"
           "         params: { path: '%1$s/out.png', bit_depth: 16 } }\n"
           "  cap_out: { type: image.save, inputs: { image: inv.image },\n"
           "             params: { path: '%1$s/c.png' } }\n"
           "  cap_gam: { type: image.save, inputs: { image: gam.image },\n"
           "             params: { path: '%1$s/g.png' } }\n",
    .strip_w = SRC_W,
};

static void case_prepare(oom_case *c)
{
    snprintf(c->yaml, sizeof c->yaml, c->fmt, dir);
    /* The budget: exactly what a full-width strip of 16 rows of the first stage needs, so the
     * planner must tile. */
    tsr_engine *e = gr_engine(0);
    tsr_graph *g = gr_load(e, c->yaml);
    assert_int_equal(tsr_graph_infer(e, g), TSR_OK);
    tsr__plan p;
    assert_int_equal(tsr__plan_make(e, g, c->strip_w, 16, &p), TSR_OK);
    c->budget = p.stages[0].estimate;
    tsr__plan_clear(&p);
    tsr_graph_free(g);
    tsr_engine_free(e);

    e = gr_engine(c->budget);
    g = gr_load(e, c->yaml);
    gr_result r;
    uint64_t a0 = tsr__pool_allocations(e->pool);
    gr_run(e, g, 0, 0, &r);
    if (r.rc)
        fail_msg("%s, fault-free: %s", c->name, r.msg);
    c->n_allocs = tsr__pool_allocations(e->pool) - a0;
    c->plan_tiles = (int64_t)gr_stat(r.stats, "plan.tiles");
    assert_true(c->plan_tiles >= 3);
    assert_int_equal(gr_stat(r.stats, "plan.tile_width"), c->strip_w);
    assert_int_equal(gr_stat(r.stats, "pool.oom_events"), 0);
    c->stages = (int)gr_stat(r.stats, "plan.stages");
    snprintf(c->ref_png, sizeof c->ref_png, "%s/ref-%s.png", dir, c->name);
    assert_int_equal(rename(out_png, c->ref_png), 0);
    fixed_files++;
    for (int i = 0; i < r.n_caps; i++) {
        c->ref_caps[i] = tsr_image_ref(r.caps[i].img);
        snprintf(c->ref_ids[i], sizeof c->ref_ids[i], "%s", r.caps[i].id);
    }
    c->n_ref = r.n_caps;
    printf("%s: budget %llu bytes, %llu stages, %lld tiles, %llu device allocations\n", c->name,
           (unsigned long long)c->budget, gr_stat(r.stats, "plan.stages"), (long long)c->plan_tiles,
           (unsigned long long)c->n_allocs);
    assert_true(c->n_allocs >= (uint64_t)c->plan_tiles * 2);
    gr_result_clear(&r);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

static void case_release(oom_case *c)
{
    for (int i = 0; i < c->n_ref; i++)
        tsr_image_free(c->ref_caps[i]);
    c->n_ref = 0;
}

static int setup(void **state)
{
    unsetenv("TSR_FAULT_ALLOC"); /* the tests set faults themselves */
    gr_mkdtemp(dir, sizeof dir, "oom");
    snprintf(src_png, sizeof src_png, "%s/src.png", dir);
    snprintf(out_png, sizeof out_png, "%s/out.png", dir);
    gr_write_random_png(src_png, SRC_W, SRC_H, 3, 4242);
    case_prepare(&chain);
    case_prepare(&fanout);
    assert_int_equal(chain.stages, 1);
    assert_int_equal(fanout.stages, 3);
    return 0;
}

static int teardown(void **state)
{
    case_release(&chain);
    case_release(&fanout);
    gr_rmdir(dir);
    return 0;
}

/* Files in dir besides src.png and the references. */
static int extra_files(void)
{
    return gr_count_files(dir) - fixed_files;
}

typedef struct fault_run {
    gr_result r;
    tsr_pool_stats st;
} fault_run;

/* A fresh engine, allocations from..to failing, one run; the engine is freed. */
static void run_with_fault(const oom_case *c, uint64_t from, uint64_t to, fault_run *f)
{
    tsr_engine *e = gr_engine(c->budget);
    tsr__pool_set_fault(e->pool, from, to);
    tsr_graph *g = gr_load(e, c->yaml);
    gr_run(e, g, 0, 0, &f->r);
    assert_int_equal(tsr_engine_pool_stats(e, 0, &f->st), TSR_OK);
    tsr_graph_free(g);
    tsr_engine_free(e);
    /* Whatever happened, the run gave back every buffer and stayed under the cap. */
    assert_int_equal(f->st.in_use_bytes, 0);
    assert_true(f->st.peak_held_bytes <= c->budget);
    assert_int_equal(f->r.n_plan, 1);
    assert_int_equal(f->r.n_done, 1);
    assert_int_equal(gr_stat(f->r.stats, "plan.downgrades"), (unsigned long long)f->r.n_downgrade);
}

static void assert_same_output(const oom_case *c, const fault_run *f, const char *what, uint64_t n)
{
    assert_int_equal(f->r.n_caps, c->n_ref);
    for (int i = 0; i < c->n_ref; i++)
        if (!gr_same_bits(gr_cap_of(&f->r, c->ref_ids[i]), c->ref_caps[i]))
            fail_msg("%s, %s at allocation %llu: '%s' differs from the fault-free run", c->name,
                     what, (unsigned long long)n, c->ref_ids[i]);
    if (!gr_same_file(out_png, c->ref_png))
        fail_msg("%s, %s at allocation %llu: PNG differs from the fault-free run", c->name, what,
                 (unsigned long long)n);
    assert_int_equal(unlink(out_png), 0);
    assert_int_equal(extra_files(), 0);
}

/* One failing allocation, anywhere: the tile is retried after a trim and the run succeeds with
 * the same plan (no downgrade). */
static void sweep_single(oom_case *c)
{
    for (uint64_t n = 1; n <= c->n_allocs; n++) {
        fault_run f;
        run_with_fault(c, n, n, &f);
        if (f.r.rc)
            fail_msg("%s, fault at allocation %llu of %llu: %s: %s", c->name, (unsigned long long)n,
                     (unsigned long long)c->n_allocs, tsr_status_str(f.r.rc), f.r.msg);
        assert_same_output(c, &f, "single fault", n);
        assert_int_equal(f.st.oom_events, 1);
        assert_int_equal(f.r.n_downgrade, 0);
        assert_int_equal(gr_stat(f.r.stats, "plan.tiles"), (unsigned long long)c->plan_tiles);
        gr_result_clear(&f.r);
    }
}

/* Two failures in a row: the retry fails too, so the tile is halved for the rest of its stage;
 * the output must not change. A tile that cannot shrink any further may only end in a clean
 * TSR_ERR_DEVICE_NOMEM; here every stage starts with tiles of 16 rows or more, which can always
 * shrink, so every run must succeed. */
static void sweep_double(oom_case *c)
{
    for (uint64_t n = 1; n <= c->n_allocs; n++) {
        fault_run f;
        run_with_fault(c, n, n + 1, &f);
        if (f.r.rc)
            fail_msg("%s, faults at allocations %llu-%llu: %s: %s", c->name, (unsigned long long)n,
                     (unsigned long long)n + 1, tsr_status_str(f.r.rc), f.r.msg);
        assert_same_output(c, &f, "double fault", n);
        assert_int_equal(f.st.oom_events, 2);
        assert_int_equal(f.r.n_downgrade, 1);
        /* Both sides halved (rounded up) where they are above 8. */
        const char *p = strstr(f.r.downgrade_json, "\"from\":[");
        assert_non_null(p);
        int fw, fh, tw, th;
        assert_int_equal(sscanf(p, "\"from\":[%d,%d],\"to\":[%d,%d]", &fw, &fh, &tw, &th), 4);
        assert_int_equal(tw, fw > 8 ? (fw + 1) / 2 : fw);
        assert_int_equal(th, fh > 8 ? (fh + 1) / 2 : fh);
        assert_true(tw < fw || th < fh);
        gr_result_clear(&f.r);
    }
}

/* Every allocation from the Nth on fails: the run must stop with TSR_ERR_DEVICE_NOMEM after a
 * bounded number of halvings, write nothing, and leave an existing output file untouched. */
static void sweep_sticky(oom_case *c)
{
    static const char sentinel[] = "an older output that a failed run must not replace\n";
    for (uint64_t n = 1; n <= c->n_allocs; n++) {
        int keep = n % 2; /* odd N: an older output exists; even N: none */
        if (keep) {
            FILE *fp = fopen(out_png, "wb");
            assert_non_null(fp);
            assert_int_equal(fwrite(sentinel, 1, sizeof sentinel - 1, fp), sizeof sentinel - 1);
            assert_int_equal(fclose(fp), 0);
        }
        fault_run f;
        run_with_fault(c, n, UINT64_MAX, &f);
        if (f.r.rc != TSR_ERR_DEVICE_NOMEM)
            fail_msg("%s, sticky fault from allocation %llu: %s (%s), expected device out of "
                     "memory",
                     c->name, (unsigned long long)n, tsr_status_str(f.r.rc), f.r.msg);
        assert_non_null(strstr(f.r.msg, "out of device memory even with"));
        assert_non_null(strstr(f.r.msg, "injected failure"));
        /* Bounded: two tries per tile size, the size halving down to the minimum (a 96x16 strip
         * goes 48x8, 24x8, 12x8, 6x8: four downgrades), one injected failure per try. */
        assert_true(f.r.n_downgrade >= 1 && f.r.n_downgrade <= 6);
        assert_int_equal(f.st.oom_events, 2 * (uint64_t)f.r.n_downgrade + 2);
        if (keep) {
            size_t len;
            unsigned char *now = tu_slurp(out_png, &len);
            assert_int_equal(len, sizeof sentinel - 1);
            assert_memory_equal(now, sentinel, len);
            free(now);
            assert_int_equal(extra_files(), 1);
            assert_int_equal(unlink(out_png), 0);
        } else {
            assert_false(gr_exists(out_png));
            assert_int_equal(extra_files(), 0);
        }
        gr_result_clear(&f.r);
    }
}

static void chain_single_fault_is_retried(void **state)
{
    sweep_single(&chain);
}
static void chain_double_fault_downgrades(void **state)
{
    sweep_double(&chain);
}
static void chain_sticky_fault_fails_cleanly(void **state)
{
    sweep_sticky(&chain);
}

static void fanout_single_fault_is_retried(void **state)
{
    sweep_single(&fanout);
}
static void fanout_double_fault_downgrades(void **state)
{
    sweep_double(&fanout);
}
static void fanout_sticky_fault_fails_cleanly(void **state)
{
    sweep_sticky(&fanout);
}

/* ---- a non-memory OpenCL error is not out of memory ----------------------------------------- */

static int bad_calls, oom_calls;

/* A real driver error: the invert kernel has 4 arguments, so setting a 5th is refused with
 * CL_INVALID_ARG_INDEX. */
static tsr_status bad_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                             const tsr_region *out)
{
    bad_calls++;
    cl_kernel k;
    tsr_status rc = tsr__exec_kernel(ex, "tsr_adjust_invert", &k);
    if (rc)
        return rc;
    int x = 0;
    return tsr__exec_args(ex, k, 5, TSR_ARG(in[0].mem), TSR_ARG(out->mem), TSR_ARG(x), TSR_ARG(x),
                          TSR_ARG(x));
}

/* The first call asks the pool for more than the budget (a real pool refusal); later calls run
 * the node. The control case: it shows that the harness sees a retry when there is one. */
static tsr_status oom_once_run_cl(tsr_exec *ex, const tsr_node *n, const tsr_region *in,
                                  const tsr_region *out)
{
    if (oom_calls++ == 0) {
        cl_mem m = NULL;
        tsr_status rc = tsr__exec_alloc(ex, (size_t)chain.budget + 1, &m);
        assert_null(m);
        return rc;
    }
    return tsr__node_class_find("adjust.invert")->run_cl(ex, n, in, out);
}

static void run_swapped_invert(tsr_status (*run_cl)(tsr_exec *, const tsr_node *,
                                                    const tsr_region *, const tsr_region *),
                               fault_run *f)
{
    static tsr_node_class cls;
    cls = *tsr__node_class_find("adjust.invert");
    cls.run_cl = run_cl;
    tsr_engine *e = gr_engine(chain.budget);
    tsr_graph *g = gr_load(e, chain.yaml);
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].id, "inv") == 0)
            g->nodes[i].cls = &cls;
    gr_run(e, g, 0, 0, &f->r);
    assert_int_equal(tsr_engine_pool_stats(e, 0, &f->st), TSR_OK);
    assert_int_equal(f->st.in_use_bytes, 0);
    tsr_graph_free(g);
    tsr_engine_free(e);
}

static void device_error_is_not_oom(void **state)
{
    fault_run f;
    bad_calls = 0;
    run_swapped_invert(bad_run_cl, &f);
    assert_int_equal(f.r.rc, TSR_ERR_DEVICE);
    assert_int_equal(bad_calls, 1); /* no retry, no smaller tile */
    assert_int_equal(f.r.n_downgrade, 0);
    assert_int_equal(f.st.oom_events, 0);
    assert_int_equal(gr_stat(f.r.stats, "plan.downgrades"), 0);
    assert_non_null(strstr(f.r.msg, "CL_INVALID_ARG_INDEX"));
    assert_non_null(strstr(f.r.msg, "node 'inv'"));
    assert_false(gr_exists(out_png));
    assert_int_equal(extra_files(), 0);
    gr_result_clear(&f.r);

    /* Control: a pool refusal in the same place is retried once and the run completes. */
    oom_calls = 0;
    run_swapped_invert(oom_once_run_cl, &f);
    if (f.r.rc)
        fail_msg("pool refusal in run_cl: %s", f.r.msg);
    assert_int_equal(oom_calls, chain.plan_tiles + 1);
    assert_int_equal(f.st.oom_events, 1);
    assert_int_equal(f.r.n_downgrade, 0);
    assert_true(gr_same_bits(gr_cap_of(&f.r, "cap_out"), chain.ref_caps[0]));
    assert_true(gr_same_file(out_png, chain.ref_png));
    assert_int_equal(unlink(out_png), 0);
    gr_result_clear(&f.r);
}

/* The status mapping that decides what is retried: only the two OpenCL memory codes are
 * TSR_ERR_DEVICE_NOMEM. */
static void cl_status_mapping(void **state)
{
    tsr_engine *e = tu_engine_cl();
    tsr_node *n = tu_node("adjust.invert", NULL, 0);
    tsr_exec ex;
    tsr__exec_init(&ex, e, n);
    assert_int_equal(tsr__exec_cl_error(&ex, CL_MEM_OBJECT_ALLOCATION_FAILURE, "x"),
                     TSR_ERR_DEVICE_NOMEM);
    assert_int_equal(tsr__exec_cl_error(&ex, CL_OUT_OF_RESOURCES, "x"), TSR_ERR_DEVICE_NOMEM);
    static const cl_int other[] = {CL_INVALID_MEM_OBJECT, CL_INVALID_KERNEL_ARGS,
                                   CL_INVALID_ARG_INDEX,  CL_INVALID_WORK_GROUP_SIZE,
                                   CL_INVALID_VALUE,      CL_BUILD_PROGRAM_FAILURE};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_int_equal(tsr__exec_cl_error(&ex, other[i], "x"), TSR_ERR_DEVICE);
    tsr__node_free(n);
}

/* TSR_FAULT_ALLOC: "N" fails the Nth allocation, "N+" every one from the Nth, "N-M" a range. */
static void fault_env_switch(void **state)
{
    static const struct {
        const char *env;
        int fails[8]; /* allocations 1..8 */
    } cases[] = {{"3", {0, 0, 1, 0, 0, 0, 0, 0}},
                 {"6+", {0, 0, 0, 0, 0, 1, 1, 1}},
                 {"2-4", {0, 1, 1, 1, 0, 0, 0, 0}}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        setenv("TSR_FAULT_ALLOC", cases[c].env, 1);
        tsr_engine *e = gr_engine(0);
        unsetenv("TSR_FAULT_ALLOC");
        for (int i = 0; i < 8; i++) {
            cl_mem m = NULL;
            tsr_status rc = tsr__pool_alloc(e->pool, 1000, &m, tsr__eerr(e));
            assert_int_equal(rc, cases[c].fails[i] ? TSR_ERR_DEVICE_NOMEM : TSR_OK);
            assert_int_equal(m == NULL, cases[c].fails[i]);
            tsr__pool_release(e->pool, m);
        }
        tsr_pool_stats st;
        assert_int_equal(tsr_engine_pool_stats(e, 0, &st), TSR_OK);
        int want = 0;
        for (int i = 0; i < 8; i++)
            want += cases[c].fails[i];
        assert_int_equal(st.oom_events, want);
        tsr_engine_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_single_fault_is_retried),
        cmocka_unit_test(chain_double_fault_downgrades),
        cmocka_unit_test(chain_sticky_fault_fails_cleanly),
        cmocka_unit_test(fanout_single_fault_is_retried),
        cmocka_unit_test(fanout_double_fault_downgrades),
        cmocka_unit_test(fanout_sticky_fault_fails_cleanly),
        cmocka_unit_test(device_error_is_not_oom),
        cmocka_unit_test(cl_status_mapping),
        cmocka_unit_test(fault_env_switch),
    };
    return cmocka_run_group_tests_name("oom", tests, setup, teardown);
}
