/* Fuzz harness: the ncnn model reader (tsr__nn_parse), from memory. The input is the .param
 * text, a NUL byte, then the .bin bytes (no NUL: all of it is the .param, with an empty .bin).
 * A model that parses also gets its blob shapes worked out for a small input, as the planner
 * does. Built with libFuzzer by `make fuzz`, and with tests/fuzz/replay_main.c as a corpus
 * replay in `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nn.h"

/* TSR_FUZZ_VERBOSE set: print each input's outcome (for looking at a corpus, not for fuzzing). */
static int verbose(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("TSR_FUZZ_VERBOSE") != NULL;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    const unsigned char *bin = nul ? nul + 1 : NULL;
    size_t blen = nul ? size - plen - 1 : 0;
    /* Own copies of exactly their lengths, so that a read past either end is seen. */
    char *param = malloc(plen ? plen : 1);
    unsigned char *b = malloc(blen ? blen : 1);
    if (!param || !b) {
        free(param);
        free(b);
        return 0;
    }
    memcpy(param, data, plen);
    if (blen)
        memcpy(b, bin, blen);
    tsr__err err;
    tsr__err_clear(&err);
    tsr_nn_model *m = NULL;
    tsr_status rc = tsr__nn_parse(param, plen, b, blen, "fuzz.param", "fuzz.bin", &m, &err);
    if (verbose())
        fprintf(stderr, "%s %d layers %s\n", tsr_status_str(rc), m ? m->n_layers : 0,
                rc ? err.msg : "");
    if (rc == TSR_OK) {
        if (!m)
            abort();
        /* Two sizes: a square one, and an odd one that crops and strides may refuse. */
        tsr_nn_shape *shapes = calloc((size_t)m->n_blobs + 1, sizeof *shapes);
        static const int sizes[2][2] = {{64, 64}, {37, 19}};
        for (int k = 0; shapes && k < 2; k++) {
            tsr_status src = tsr__nn_shapes(m, m->in_channels > 0 ? m->in_channels : 3, sizes[k][0],
                                            sizes[k][1], shapes, &err);
            if (verbose())
                fprintf(stderr, "  shapes %dx%d: %s %s\n", sizes[k][0], sizes[k][1],
                        tsr_status_str(src), src ? err.msg : "");
        }
        free(shapes);
        tsr__nn_free(m);
    } else if (m) {
        abort();
    }
    free(param);
    free(b);
    return 0;
}
