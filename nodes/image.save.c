/* image.save: encode an image to PNG (8/16-bit), JPEG, WebP (lossy or lossless) or TIFF
 * (8/16-bit integer, 32-bit float), atomically (temporary file, rename).
 * Pixels: float32 planar 0..1 (clamped and rounded for integer formats; float TIFF stores them
 * as they are), 1-4 channels; a format without alpha (JPEG) flattens onto `background`.
 * Device: none; the executor downloads the image. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta.h"
#include "nodeutil.h"

#define SAVE_PARAMS(X)                                                                             \
    X(PATH, "path", TSR_PARAM_STRING, NULL, 0, -1, NULL, TSR_PARAM_REQUIRED | TSR_PARAM_PATH,      \
      "file to write, relative to the graph file's folder; replaced only on success; - writes "    \
      "standard output (set format)")                                                              \
    X(FORMAT, "format", TSR_PARAM_ENUM, NULL, 0, -1, "png|jpeg|webp|tiff", TSR_PARAM_OPTIONAL,     \
      "file format; default from the extension (.png, .jpg, .jpeg, .webp, .tif, .tiff)")           \
    X(BIT_DEPTH, "bit_depth", TSR_PARAM_INT, NULL, 8, 32, NULL, TSR_PARAM_OPTIONAL,                \
      "bits per sample: PNG 8 or 16, TIFF 8, 16 or 32 (float); default: the source's depth "       \
      "where the format has it, else 8")                                                           \
    X(QUALITY, "quality", TSR_PARAM_INT, NULL, 1, 100, NULL, TSR_PARAM_OPTIONAL,                   \
      "JPEG quality (default 92), WebP lossy quality (default 90)")                                \
    X(LOSSLESS, "lossless", TSR_PARAM_BOOL, "false", 0, -1, NULL, 0, "WebP: write lossless")       \
    X(TIFF_COMPRESSION, "tiff_compression", TSR_PARAM_ENUM, "deflate", 0, -1, "none|lzw|deflate",  \
      0, "TIFF compression")                                                                       \
    X(COMPRESSION, "compression", TSR_PARAM_INT, "6", 0, 9, NULL, 0, "PNG zlib level")             \
    X(SUBSAMPLING, "subsampling", TSR_PARAM_ENUM, "420", 0, -1, "444|422|420", 0,                  \
      "JPEG chroma subsampling")                                                                   \
    X(MKDIR, "mkdir", TSR_PARAM_BOOL, "true", 0, -1, NULL, 0,                                      \
      "create the output's folder (and its parents) when missing")                                 \
    X(BACKGROUND, "background", TSR_PARAM_STRING, "white", 0, -1, NULL, 0,                         \
      "colour an image with alpha is flattened onto for a format without alpha (JPEG): white, "    \
      "black or #rrggbb")                                                                          \
    X(METADATA_FROM, "metadata_from", TSR_PARAM_STRING, NULL, 0, -1, NULL,                         \
      TSR_PARAM_OPTIONAL | TSR_PARAM_PATH,                                                         \
      "image file whose EXIF block and ICC profile are copied into the output (EXIF "              \
      "orientation set to 1: the pixels are upright once loaded with orientation auto)")           \
    X(METADATA, "metadata", TSR_PARAM_ENUM, "exif", 0, -1, "exif|icc|all", 0,                      \
      "what metadata_from copies; icc and all are meant for pixels loaded with colour: keep "      \
      "(with the default colour: srgb they are sRGB already, and the profile would mislabel "      \
      "them)")
TSR_PARAM_ENUM_DECL(SAVE_PARAMS)
TSR_PARAM_TABLE_DECL(save, SAVE_PARAMS)

static const tsr_port_def inputs[] = {{"image", TSR_PORT_IMAGE, "image to write"}};

static tsr_format format_of(const tsr_node *n)
{
    static const tsr_format by_param[] = {TSR_FORMAT_PNG, TSR_FORMAT_JPEG, TSR_FORMAT_WEBP,
                                          TSR_FORMAT_TIFF};
    if (n->params[P_FORMAT].set)
        return by_param[n->params[P_FORMAT].ival];
    return tsr__format_from_path(n->params[P_PATH].str);
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
    tsr_format f = format_of(n);
    if (f == TSR_FORMAT_AUTO)
        rc = tsr__node_error(err, n, P_PATH,
                             "cannot tell the format of '%s' from its extension: use %s, or set "
                             "param 'format'",
                             n->params[P_PATH].str, tsr__extension_list());
    int depth = n->params[P_BIT_DEPTH].ival;
    if (n->params[P_BIT_DEPTH].set && depth != 8 && depth != 16 && depth != 32)
        rc = tsr__node_error(err, n, P_BIT_DEPTH, "bit_depth must be 8, 16 or 32, got %d", depth);
    else if (n->params[P_BIT_DEPTH].set && depth != 8 && f != TSR_FORMAT_AUTO &&
             !(f == TSR_FORMAT_TIFF || (f == TSR_FORMAT_PNG && depth == 16)))
        rc = tsr__node_error(err, n, P_BIT_DEPTH, "%s is written with %s bits per sample, not %d",
                             tsr__format_name(f), f == TSR_FORMAT_PNG ? "8 or 16" : "8", depth);
    return rc;
}

/* metadata_from's EXIF block (Orientation set to 1) and ICC profile, as `metadata` picks them,
 * into *m (zeroed first; free with tsr__meta_free). A file that cannot be read, or an EXIF
 * block the output format cannot hold, is an error at the param. */
static tsr_status read_metadata(const tsr_node *n, tsr__meta *m, tsr__err *err)
{
    memset(m, 0, sizeof *m);
    if (!n->params[P_METADATA_FROM].set)
        return TSR_OK;
    const char *from = n->params[P_METADATA_FROM].str;
    tsr_status rc = tsr__image_read_meta(from, m, err);
    if (rc) {
        char inner[sizeof err->msg];
        snprintf(inner, sizeof inner, "%s", err->msg);
        tsr__err_clear(err);
        return tsr__node_error(err, n, P_METADATA_FROM, "cannot read metadata from '%s': %s", from,
                               inner);
    }
    int what = n->params[P_METADATA].ival; /* 0 exif, 1 icc, 2 all */
    if (what == 0) {
        free(m->icc);
        m->icc = NULL;
        m->icc_len = 0;
    }
    if (what == 1 || !m->exif) {
        free(m->exif);
        m->exif = NULL;
        m->exif_len = 0;
        return TSR_OK;
    }
    if (format_of(n) == TSR_FORMAT_TIFF) { /* its EXIF lives in tags of a sub-IFD: not written */
        tsr__meta_free(m);
        return tsr__node_error(err, n, P_METADATA,
                               "TIFF output does not carry an EXIF block: set "
                               "metadata: icc, or save as JPEG, PNG or WebP");
    }
    unsigned char *up = tsr__exif_upright(m->exif, m->exif_len);
    if (!up) {
        tsr__meta_free(m);
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory for metadata");
    }
    free(m->exif);
    m->exif = up;
    if (format_of(n) == TSR_FORMAT_JPEG && m->exif_len > 65527) {
        size_t len = m->exif_len;
        tsr__meta_free(m);
        return tsr__node_error(err, n, P_METADATA_FROM,
                               "the EXIF block of '%s' (%zu bytes) does not fit in a JPEG APP1 "
                               "segment (at most 65527): set metadata: icc",
                               from, len);
    }
    return TSR_OK;
}

/* Fail before any pixel is computed when the output cannot be written: its folder (or, when
 * `mkdir` will make it, the nearest existing parent) must be writable. */
static tsr_status save_infer(const tsr_node *n, const tsr_port_info *in, tsr_port_info *out,
                             tsr__err *err)
{
    const char *path = n->params[P_PATH].str;
    /* The format's own size limit, before any pixel is computed. */
    tsr_format f = format_of(n);
    long long max = tsr__format_max_side(f);
    if (in[0].width > max || in[0].height > max)
        return tsr__node_error(err, n, P_PATH,
                               "a %dx%d image is larger than %s allows (%lld pixels a side)",
                               in[0].width, in[0].height, tsr__format_name(f), max);
    tsr__meta m;
    tsr_status rc = read_metadata(n, &m, err);
    tsr__meta_free(&m);
    if (rc)
        return rc;
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
    o.quality = n->params[P_QUALITY].set ? n->params[P_QUALITY].ival : 0;
    o.lossless = n->params[P_LOSSLESS].ival;
    static const tsr_tiff_compression tc[] = {TSR_TIFF_NONE, TSR_TIFF_LZW, TSR_TIFF_DEFLATE};
    o.tiff_compression = tc[n->params[P_TIFF_COMPRESSION].ival];
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
    tsr__meta m;
    tsr_status rc = read_metadata(n, &m, ex->err);
    if (rc)
        return rc;
    o.icc = m.icc;
    o.icc_len = m.icc_len;
    o.exif = m.exif;
    o.exif_len = m.exif_len;
    tsr__io_ctl ctl = tsr__exec_io(ex);
    rc = tsr__image_save(img, n->params[P_PATH].str, &o, &ctl, ex->err);
    tsr__meta_free(&m);
    /* A cancel is not an error at a place in the graph: its message goes up as it is. */
    return rc && rc != TSR_ERR_CANCELLED ? tsr__node_reanchor(ex->err, n, P_PATH, rc) : rc;
}

const tsr_node_class tsr_node_image_save = {
    .name = "image.save",
    .doc = "Write an image as PNG, JPEG, WebP or TIFF (atomically: nothing is left behind on "
           "failure)",
    .inputs = inputs,
    .n_inputs = 1,
    .params = save_params,
    .n_params = P_COUNT_,
    .flags = TSR_NODE_SINK,
    .check = save_check,
    .infer = save_infer,
    .consume = save_consume,
};
