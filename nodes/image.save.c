/* image.save: encode an image to PNG (8/16-bit) or JPEG, atomically (temporary file, rename).
 * Pixels: float32 planar 0..1 (clamped, rounded), 1-4 channels; JPEG drops alpha.
 * Device: none; the executor downloads the image. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodeutil.h"

#define SAVE_PARAMS(X)                                                                             \
    X(PATH, "path", TSR_PARAM_STRING, NULL, 0, -1, NULL, TSR_PARAM_REQUIRED | TSR_PARAM_PATH,      \
      "file to write, relative to the current directory; replaced only on success; - writes "      \
      "standard output (set format)")                                                              \
    X(FORMAT, "format", TSR_PARAM_ENUM, NULL, 0, -1, "png|jpeg", TSR_PARAM_OPTIONAL,               \
      "file format; default from the extension (.png, .jpg, .jpeg)")                               \
    X(BIT_DEPTH, "bit_depth", TSR_PARAM_INT, NULL, 8, 16, NULL, TSR_PARAM_OPTIONAL,                \
      "PNG bits per sample, 8 or 16; default: 16 if the source was 16-bit, else 8")                \
    X(QUALITY, "quality", TSR_PARAM_INT, "92", 1, 100, NULL, 0, "JPEG quality")                    \
    X(COMPRESSION, "compression", TSR_PARAM_INT, "6", 0, 9, NULL, 0, "PNG zlib level")             \
    X(SUBSAMPLING, "subsampling", TSR_PARAM_ENUM, "420", 0, -1, "444|422|420", 0,                  \
      "JPEG chroma subsampling")                                                                   \
    X(MKDIR, "mkdir", TSR_PARAM_BOOL, "true", 0, -1, NULL, 0,                                      \
      "create the output's folder (and its parents) when missing")                                 \
    X(BACKGROUND, "background", TSR_PARAM_STRING, "white", 0, -1, NULL, 0,                         \
      "colour an image with alpha is flattened onto for a format without alpha (JPEG): white, "    \
      "black or #rrggbb")
TSR_PARAM_ENUM_DECL(SAVE_PARAMS)
TSR_PARAM_TABLE_DECL(save, SAVE_PARAMS)

static const tsr_port_def inputs[] = {{"image", TSR_PORT_IMAGE, "image to write"}};

static tsr_format format_of(const tsr_node *n)
{
    if (n->params[P_FORMAT].set)
        return n->params[P_FORMAT].ival == 0 ? TSR_FORMAT_PNG : TSR_FORMAT_JPEG;
    const char *dot = strrchr(n->params[P_PATH].str, '.');
    if (dot && strcasecmp(dot, ".png") == 0)
        return TSR_FORMAT_PNG;
    if (dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0))
        return TSR_FORMAT_JPEG;
    return TSR_FORMAT_AUTO;
}

/* "white", "black" or "#rrggbb" as 0..1 RGB; -1 when it is none of those. */
static int parse_colour(const char *s, float rgb[3])
{
    unsigned v;
    char tail;
    if (strcasecmp(s, "white") == 0)
        v = 0xffffff;
    else if (strcasecmp(s, "black") == 0)
        v = 0;
    else if (s[0] != '#' || strlen(s) != 7 || sscanf(s + 1, "%6x%c", &v, &tail) != 1)
        return -1;
    for (int c = 0; c < 3; c++)
        rgb[c] = (float)((v >> (16 - 8 * c)) & 0xff) / 255.0f;
    return 0;
}

static tsr_status save_check(const tsr_node *n, tsr__err *err)
{
    tsr_status rc = TSR_OK;
    float bg[3];
    if (parse_colour(n->params[P_BACKGROUND].str, bg))
        rc = tsr__node_error(err, n, P_BACKGROUND,
                             "background '%s' is not a colour: expected white, black or #rrggbb",
                             n->params[P_BACKGROUND].str);
    if (format_of(n) == TSR_FORMAT_AUTO)
        rc = tsr__node_error(err, n, P_PATH,
                             "cannot tell the format of '%s' from its extension: use .png, .jpg "
                             "or .jpeg, or set param 'format'",
                             n->params[P_PATH].str);
    if (n->params[P_BIT_DEPTH].set && n->params[P_BIT_DEPTH].ival != 8 &&
        n->params[P_BIT_DEPTH].ival != 16)
        rc = tsr__node_error(err, n, P_BIT_DEPTH, "bit_depth must be 8 or 16, got %d",
                             n->params[P_BIT_DEPTH].ival);
    if (format_of(n) == TSR_FORMAT_JPEG && n->params[P_BIT_DEPTH].set &&
        n->params[P_BIT_DEPTH].ival != 8)
        rc = tsr__node_error(err, n, P_BIT_DEPTH, "JPEG is written with 8 bits per sample");
    return rc;
}

/* Fail before any pixel is computed when the output cannot be written: its folder (or, when
 * `mkdir` will make it, the nearest existing parent) must be writable. */
static tsr_status save_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                             tsr__err *err)
{
    const char *path = n->params[P_PATH].str;
    /* The format's own size limit, before any pixel is computed. */
    static const struct {
        tsr_format f;
        const char *name;
        long long max;
    } limits[] = {{TSR_FORMAT_JPEG, "JPEG", 65500}, {TSR_FORMAT_PNG, "PNG", 2147483647LL}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (format_of(n) == limits[i].f &&
            (in[0].width > limits[i].max || in[0].height > limits[i].max))
            return tsr__node_error(err, n, P_PATH,
                                   "a %dx%d image is larger than %s allows (%lld pixels a side)",
                                   in[0].width, in[0].height, limits[i].name, limits[i].max);
    if (strcmp(path, "-") == 0) /* standard output */
        return TSR_OK;
    char dir[4096];
    tsr__dir_of(path, dir, sizeof dir);
    struct stat st;
    int missing = stat(dir, &st) != 0 && errno == ENOENT;
    if (missing && !n->params[P_MKDIR].ival) {
        tsr__node_error(err, n, P_PATH,
                        "cannot write '%s': directory '%s' does not exist (mkdir: true makes it)",
                        path, dir);
        return TSR_ERR_IO;
    }
    /* The nearest existing parent of a folder still to be made. */
    while (missing && strcmp(dir, ".") && strcmp(dir, "/")) {
        char up[4096];
        tsr__dir_of(dir, up, sizeof up);
        snprintf(dir, sizeof dir, "%s", up);
        missing = stat(dir, &st) != 0 && errno == ENOENT;
    }
    if (access(dir, W_OK) != 0) {
        int e = errno;
        tsr__node_error(err, n, P_PATH, "cannot write '%s': directory '%s': %s", path, dir,
                        strerror(e));
        return TSR_ERR_IO;
    }
    return TSR_OK;
}

static tsr_status save_consume(tsr_exec *ex, const tsr_node *n, const tsr_image *img)
{
    tsr_save_options o;
    tsr_save_options_init(&o);
    o.format = format_of(n);
    o.bit_depth = n->params[P_BIT_DEPTH].set ? n->params[P_BIT_DEPTH].ival : 0;
    o.quality = n->params[P_QUALITY].ival;
    o.compression = n->params[P_COMPRESSION].ival;
    static const int sub[] = {444, 422, 420};
    o.subsampling = sub[n->params[P_SUBSAMPLING].ival];
    parse_colour(n->params[P_BACKGROUND].str, o.background); /* checked by save_check */
    if (n->params[P_MKDIR].ival && strcmp(n->params[P_PATH].str, "-") != 0) {
        char dir[4096];
        tsr__dir_of(n->params[P_PATH].str, dir, sizeof dir);
        if (tsr__mkdir_p(dir, 0777)) {
            int e = errno;
            tsr__node_error(ex->err, n, P_PATH, "cannot create the directory '%s': %s", dir,
                            strerror(e));
            return TSR_ERR_IO;
        }
    }
    tsr__io_ctl ctl = tsr__exec_io(ex);
    tsr_status rc = tsr__image_save(img, n->params[P_PATH].str, &o, &ctl, ex->err);
    /* A cancel is not an error at a place in the graph: its message goes up as it is. */
    return rc && rc != TSR_ERR_CANCELLED ? tsr__node_reanchor(ex->err, n, P_PATH, rc) : rc;
}

const tsr_node_class tsr_node_image_save = {
    .name = "image.save",
    .doc = "Write an image as PNG or JPEG (atomically: nothing is left behind on failure)",
    .inputs = inputs,
    .n_inputs = 1,
    .params = save_params,
    .n_params = P_COUNT_,
    .flags = TSR_NODE_SINK,
    .check = save_check,
    .infer = save_infer,
    .consume = save_consume,
};
