/* Shared helpers for the cmocka tests. Tests run from the repository root. */
#ifndef TSR_TESTUTIL_H
#define TSR_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

/* Engines are created once per process and freed at exit. tu_engine_cl() fails the test when
 * no OpenCL device can be opened (CI installs PoCL): a silent skip would hide a broken path. */
tsr_engine *tu_engine_cl(void);
tsr_engine *tu_engine_ref(void);

/* Seeded uniform random image in [0,1) (xorshift32, so the same on every machine). */
tsr_image *tu_random_image(int w, int h, int channels, uint32_t seed);
/* Largest absolute difference of two same-shaped images (fails the test on shape mismatch). */
double tu_max_diff(const tsr_image *a, const tsr_image *b);
/* Make a node from "k=v" strings; fails the test on error. Free with tsr__node_free. */
tsr_node *tu_node(const char *type, const char *const *kv, int n_kv);
/* Run a node on one input with the given engine (tile 0,0 = whole image); fails the test on
 * error. */
tsr_image *tu_run(tsr_engine *e, const tsr_node *n, tsr_image *in, int tile_w, int tile_h);
/* Path under the shared data folder: $TSR_SHARED or ../shared. Returns a static buffer. */
const char *tu_shared(const char *rel);
/* Read a .f32 golden ("TF32", width, height, channels as LE uint32, then planar LE float32, the
 * format tools/gen-*-golden.py write) or fail the test naming the file and what is wrong. */
tsr_image *tu_read_f32(const char *path);
/* Load a PNG/JPEG or fail the test. */
tsr_image *tu_load(const char *path);
/* Whole file into a malloc'ed buffer (*len bytes, one spare byte after them); fails the test if
 * it cannot be read. */
unsigned char *tu_slurp(const char *path, size_t *len);

/* Fails the test unless err's message contains `needle`. */
void tu_assert_msg_has(const tsr__err *err, const char *needle);

/* Run one codec's decoder over a buffer, to see what it hands image_io.c (d->info, d->meta,
 * d->recovered) that a load does not return. The caller frees d->img and d->meta. */
struct tsr__dec;
struct tsr__codec;
tsr_status tu_codec_decode(const struct tsr__codec *c, const void *buf, size_t len, int header_only,
                           struct tsr__dec *d, tsr__err *err);

/* Names in a directory ending in a suffix, sorted. */
typedef struct tu_name_list {
    char name[256][256];
    int n;
} tu_name_list;
/* Names in `dir` longer than `suffix` and ending in it, sorted; read up front so that a failing
 * assertion (which jumps out of the test) leaves no directory handle behind. Fails the test if
 * the directory cannot be read or holds more than 256 such names. */
void tu_list_dir(const char *dir, const char *suffix, tu_name_list *out);

#endif
