/* Fuzz harness: every image decoder, through tsr__image_decode from memory (the format is sniffed
 * from the first bytes, so one harness reaches PNG, JPEG, WebP and TIFF) with the default load
 * options (EXIF orientation applied, ICC profiles converted to sRGB, fail_on error); input that
 * fails as damaged is decoded again with fail_on none, the recovery path. The header-only path
 * (tsr__image_probe) reads the same bytes from a temporary file. The pixel limit is 2^22, so
 * that a legal header can not make the fuzzer run out of memory. Built with libFuzzer by
 * `make fuzz`, and with tests/fuzz/replay_main.c as a corpus replay in `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define FUZZ_MAX_PIXELS ((uint64_t)1 << 22)

static char probe_path[64];

/* TSR_FUZZ_VERBOSE set: print each input's outcome (for looking at a corpus, not for fuzzing). */
static int verbose(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("TSR_FUZZ_VERBOSE") != NULL;
    return v;
}

static void remove_probe_file(void)
{
    if (probe_path[0])
        unlink(probe_path);
}

static void probe(const uint8_t *data, size_t size)
{
    if (!probe_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(probe_path, sizeof probe_path, "%s/tsr-fuzz-XXXXXX",
                 dir && strlen(dir) < 40 ? dir : "/tmp");
        int fd = mkstemp(probe_path);
        if (fd < 0) {
            probe_path[0] = '\0';
            return;
        }
        close(fd);
        atexit(remove_probe_file);
    }
    FILE *f = fopen(probe_path, "wb");
    if (!f)
        return;
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) || !ok)
        return;
    tsr__err err;
    tsr__err_clear(&err);
    tsr_port_info info;
    tsr__image_probe(probe_path, FUZZ_MAX_PIXELS, NULL, &info, &err);
}

static void ignore_warning(void *user, const char *msg)
{
    if (!msg || !*msg)
        abort(); /* a warning says something */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tsr__io_ctl ctl = {0};
    ctl.warn = ignore_warning;
    tsr__err err;
    tsr__err_clear(&err);
    tsr_image *img = NULL;
    tsr_status rc = tsr__image_decode(data, size, "fuzz", FUZZ_MAX_PIXELS, NULL, &ctl, &img, &err);
    if (verbose())
        fprintf(stderr, "%s %dx%dx%d %s\n", tsr_status_str(rc), img ? img->width : 0,
                img ? img->height : 0, img ? img->channels : 0, rc ? err.msg : "");
    if (rc == TSR_OK && (!img || (uint64_t)img->width * (uint64_t)img->height > FUZZ_MAX_PIXELS))
        abort();
    if (rc != TSR_OK && img)
        abort(); /* a failed decode hands back no image */
    tsr_image_free(img);
    img = NULL;
    if (rc == TSR_ERR_DECODE) {
        tsr__load_opts lo = {0};
        lo.fail_on = TSR_FAIL_ON_NONE;
        lo.colour = TSR_COLOUR_KEEP;
        tsr__err_clear(&err);
        if (tsr__image_decode(data, size, "fuzz", FUZZ_MAX_PIXELS, &lo, &ctl, &img, &err) == TSR_OK)
            tsr_image_free(img);
    }
    probe(data, size);
    return 0;
}
