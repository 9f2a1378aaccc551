/* Fuzz harness: the YAML graph reader and validator (tsr_graph_load_string) on an engine without
 * a device ("ref": no OpenCL) and without a kernel cache. Validation reads nothing but the text
 * and writes nothing; shape inference (which reads the images a graph names) is not run. Lines
 * "#set node.param=value" (YAML comments, up to 8) are applied with tsr_graph_set_many once the
 * graph loads, as the CLI's --set would, and the graph is read back. Built
 * with libFuzzer by `make fuzz`, and with tests/fuzz/replay_main.c as a corpus replay in
 * `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera.h"

static tsr_engine *engine;

/* The "#set " lines of the text, cut out in place (the YAML has been parsed by then). */
static int set_lines(char *yaml, const char **out, int max)
{
    int n = 0;
    for (char *s = yaml; (s = strstr(s, "#set ")) && n < max;) {
        s += 5;
        char *end = strchr(s, '\n');
        if (end)
            *end = '\0';
        out[n++] = s;
        if (!end)
            break;
        s = end + 1;
    }
    return n;
}

static void read_back(const tsr_graph *g)
{
    /* What a GUI or batch driver reads back: every node's id, type and known params. */
    static const char *const params[] = {"path",    "sigma", "scale",  "width", "fail_on",
                                         "quality", "model", "format", "edge",  "amount"};
    for (int i = 0; i < tsr_graph_node_count(g); i++) {
        if (!tsr_graph_node_id(g, i) || !tsr_graph_node_type(g, i))
            abort();
        for (size_t k = 0; k < sizeof params / sizeof params[0]; k++)
            tsr_free(tsr_graph_param(g, i, params[k]));
    }
}

/* TSR_FUZZ_VERBOSE set: print each input's outcome (for looking at a corpus, not for fuzzing). */
static int verbose(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("TSR_FUZZ_VERBOSE") != NULL;
    return v;
}

static void free_engine(void)
{
    tsr_engine_free(engine);
    engine = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine) {
        tsr_engine_options o;
        tsr_engine_options_init(&o);
        o.device = "ref";
        o.cache_dir = "";
        if (tsr_engine_new(&o, &engine, NULL, 0))
            abort();
        atexit(free_engine);
    }
    if (size > (1u << 20))
        return 0;
    char *yaml = malloc(size + 1);
    if (!yaml)
        return 0;
    memcpy(yaml, data, size);
    yaml[size] = '\0';
    tsr_graph *g = NULL;
    tsr_status rc = tsr_graph_load_string(engine, yaml, "fuzz.yaml", &g);
    if (verbose())
        fprintf(stderr, "%s: %d nodes %s\n", tsr_status_str(rc), g ? tsr_graph_node_count(g) : 0,
                rc ? tsr_errmsg(engine) : "");
    if (rc == TSR_OK) {
        read_back(g);
        const char *sets[8];
        int n = set_lines(yaml, sets, 8);
        if (n) {
            rc = tsr_graph_set_many(engine, g, sets, n);
            if (verbose())
                fprintf(stderr, "  --set: %s %s\n", tsr_status_str(rc),
                        rc ? tsr_errmsg(engine) : "");
            read_back(g);
        }
        tsr_graph_free(g);
    } else if (g) {
        abort(); /* a failed load leaves no graph */
    }
    free(yaml);
    return 0;
}
