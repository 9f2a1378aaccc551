/* Golden graph tests: every example graph in graphs/ runs on the reference engine and the hash
 * of each output's decoded pixels must equal tests/graphs/golden.tsv; the OpenCL engine's output
 * must match the reference output within a tolerance (PNG: 1 level of the file's bit depth;
 * JPEG: PSNR >= 40 dB, since a 1-level input change can flip a DCT quantisation step).
 * A line whose hash is `plan` names a graph too heavy for the reference engine (the larger
 * networks, whose outputs test_upscale.c compares with ncnn's): it is loaded, inferred and
 * planned on both engines, and not run.
 * TSR_UPDATE_GOLDEN=1 prints fresh golden lines instead of comparing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

typedef struct golden {
    char graph[256], node[64], ext[8];
    unsigned long long hash;
    int plan_only;
} golden;

static unsigned long long pixel_hash(const tsr_image *img)
{
    unsigned long long h = 1469598103934665603ull;
    int dims[3] = {img->width, img->height, img->channels};
    for (int i = 0; i < 3; i++)
        h = (h ^ (unsigned)dims[i]) * 1099511628211ull;
    size_t n = (size_t)img->width * img->height * img->channels;
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(img->data[i] * 65535.0f + 0.5f);
        h = (h ^ (v & 0xff)) * 1099511628211ull;
        h = (h ^ (v >> 8)) * 1099511628211ull;
    }
    return h;
}

static int load_golden(golden *g, int cap)
{
    FILE *f = fopen("tests/graphs/golden.tsv", "r");
    assert_non_null(f);
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char hash[32];
        assert_int_equal(sscanf(line, "%255s %63s %7s %31s", g[n].graph, g[n].node, g[n].ext, hash),
                         4);
        g[n].plan_only = strcmp(hash, "plan") == 0;
        g[n].hash = g[n].plan_only ? 0 : strtoull(hash, NULL, 16);
        n++;
    }
    fclose(f);
    return n;
}

/* Run `graph` on engine e with output `node` redirected to dir/<tag>.<ext>; returns the image. */
static tsr_image *run_graph(tsr_engine *e, const golden *gd, const char *dir, const char *tag)
{
    tsr_graph *g = NULL;
    char set[1024], out[600];
    snprintf(out, sizeof out, "%s/%s-%s.%s", dir, tag, gd->node, gd->ext);
    snprintf(set, sizeof set, "%s.path=%s", gd->node, out);
    if (tsr_graph_load_file(e, gd->graph, &g) || tsr_graph_set(e, g, set))
        fail_msg("%s: %s", gd->graph, tsr_errmsg(e));
    /* Other outputs of the graph also go to the temporary directory. */
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].cls->flags & TSR_NODE_SINK && strcmp(g->nodes[i].id, gd->node) != 0) {
            snprintf(set, sizeof set, "%s.path=%s/other-%s-%s.png", g->nodes[i].id, dir, tag,
                     g->nodes[i].id);
            assert_int_equal(tsr_graph_set(e, g, set), TSR_OK);
        }
    if (tsr_graph_run(e, g, NULL))
        fail_msg("%s on %s: %s", gd->graph, tsr_engine_device(e)->name, tsr_errmsg(e));
    tsr_graph_free(g);
    return tu_load(out);
}

static void example_graphs_match_golden(void **state)
{
    golden gd[64];
    int n = load_golden(gd, 64);
    char dir[] = "/tmp/tessera-graphs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int update = getenv("TSR_UPDATE_GOLDEN") != NULL;
    for (int i = 0; i < n; i++) {
        if (gd[i].plan_only) {
            tsr_engine *engines[2] = {tu_engine_ref(), tu_engine_cl()};
            for (int k = 0; k < 2; k++) {
                tsr_graph *g = NULL;
                char *plan = NULL;
                if (tsr_graph_load_file(engines[k], gd[i].graph, &g))
                    fail_msg("%s: %s", gd[i].graph, tsr_errmsg(engines[k]));
                /* Outputs into the temporary directory (inference checks their folders). */
                for (int j = 0; j < g->n_nodes; j++)
                    if (g->nodes[j].cls->flags & TSR_NODE_SINK) {
                        char set[700];
                        snprintf(set, sizeof set, "%s.path=%s/plan-%s.png", g->nodes[j].id, dir,
                                 g->nodes[j].id);
                        assert_int_equal(tsr_graph_set(engines[k], g, set), TSR_OK);
                    }
                if (tsr_graph_plan_text(engines[k], g, NULL, &plan))
                    fail_msg("%s: %s", gd[i].graph, tsr_errmsg(engines[k]));
                tsr_free(plan);
                tsr_graph_free(g);
            }
            if (update)
                printf("%s\t%s\t%s\tplan\n", gd[i].graph, gd[i].node, gd[i].ext);
            continue;
        }
        tsr_image *ref = run_graph(tu_engine_ref(), &gd[i], dir, "ref");
        unsigned long long h = pixel_hash(ref);
        if (update)
            printf("%s\t%s\t%s\t%016llx\n", gd[i].graph, gd[i].node, gd[i].ext, h);
        else if (h != gd[i].hash)
            fail_msg("%s (%s): pixel hash %016llx, golden %016llx", gd[i].graph, gd[i].node, h,
                     gd[i].hash);
        tsr_image *cl = run_graph(tu_engine_cl(), &gd[i], dir, "cl");
        tsr_compare_result r;
        assert_int_equal(tsr_image_compare(tu_engine_ref(), ref, cl, &r), TSR_OK);
        if (strcmp(gd[i].ext, "jpg") == 0)
            assert_true(r.psnr >= 40.0);
        else
            assert_true(r.levels == (ref->bit_depth == 16 ? 65535 : 255) && r.max_abs <= 1.0);
        tsr_image_free(ref);
        tsr_image_free(cl);
    }
    /* Every example graph has a golden line. */
    static tu_name_list files;
    tu_list_dir("graphs", ".yaml", &files);
    for (int f = 0; f < files.n; f++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= strcmp(gd[i].graph + 7, files.name[f]) == 0;
        if (!found)
            fail_msg("graphs/%s has no line in tests/graphs/golden.tsv", files.name[f]);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(example_graphs_match_golden)};
    return cmocka_run_group_tests_name("graphs", tests, NULL, NULL);
}
