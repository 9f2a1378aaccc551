/* The ncnn model loader: .param text graph and .bin weights into a tsr_nn_model, with every
 * weight expanded to fp32, and the blob shapes of the graph for a given input size. The format:
 * ../shared/models/NCNN-FORMAT.md. Files are hostile until proven otherwise: every count, size
 * and index is checked before it is used, and sizes are checked against the bytes really there
 * before anything is allocated for them. */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn.h"

#define NN_MAGIC 7767517
#define NN_MAX_LAYERS 100000
#define NN_MAX_BLOBS 400000
#define NN_MAX_NAME 255
#define NN_MAX_PORTS 65536 /* inputs or outputs of one layer */
#define NN_MAX_KERNEL 64
#define NN_MAX_CHANNELS 65536
#define NN_MAX_PAD 4096
#define NN_MAX_DIM (1 << 20) /* height or width of any blob */
#define NN_MAX_PARAM_FILE ((size_t)64 << 20)
#define NN_MAX_BIN_FILE ((size_t)4 << 30)
#define NN_N_KEYS 32
#define NN_ARRAY_KEY (-23300)
#define NN_SAME_UPPER (-233)
#define NN_SAME_LOWER (-234)

#define TAG_FP16 0x01306B47u
#define TAG_INT8 0x000D4B38u
#define TAG_FP32_SCALED 0x0002C056u

static const char *const type_names[TSR_NN_TYPE_COUNT] = {
    "Input",   "Convolution", "Deconvolution", "PReLU", "PixelShuffle", "Interp",       "BinaryOp",
    "Eltwise", "Concat",      "Crop",          "Split", "Pooling",      "InnerProduct", "Scale",
};

const char *tsr__nn_type_name(tsr_nn_type t)
{
    return (unsigned)t < TSR_NN_TYPE_COUNT ? type_names[t] : "?";
}

float tsr__nn_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* Subnormal: mant * 2^-24, normalised for fp32. */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float le_float(const unsigned char *p)
{
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- blob and layer name lookup ---------------------------------------------------------------
 * Open addressing over indices into a name array: linear scans would make a hostile file of
 * 100000 layers cost 10^10 comparisons. */
typedef struct nmap {
    int *slot; /* index + 1; 0 empty */
    size_t cap;
} nmap;

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int nmap_find(const nmap *m, char *const *names, const char *s, size_t n)
{
    if (!m->cap)
        return -1;
    for (size_t i = name_hash(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int v = m->slot[i];
        if (!v)
            return -1;
        const char *k = names[v - 1];
        if (strncmp(k, s, n) == 0 && k[n] == 0)
            return v - 1;
    }
}

static void nmap_insert(nmap *m, char *const *names, int idx)
{
    const char *s = names[idx];
    size_t i = name_hash(s, strlen(s)) & (m->cap - 1);
    while (m->slot[i])
        i = (i + 1) & (m->cap - 1);
    m->slot[i] = idx + 1;
}

/* Add names[idx] (count names so far including it); grows at half load. */
static int nmap_add(nmap *m, char *const *names, int idx, int count)
{
    if ((size_t)count * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        while ((size_t)count * 2 > cap)
            cap *= 2;
        int *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        free(m->slot);
        m->slot = slot;
        m->cap = cap;
        for (int i = 0; i < idx; i++)
            nmap_insert(m, names, i);
    }
    nmap_insert(m, names, idx);
    return 0;
}

/* ---- the .param text: lines and tokens --------------------------------------------------------
 */

typedef struct pnum {
    int is_float;
    int i;   /* int-typed tokens */
    float f; /* both (ints converted) */
} pnum;

typedef struct pval {
    int set, is_array, n;
    pnum v[TSR_NN_MAX_ARRAY];
} pval;

/* What one layer line is parsed with: messages carry the file, the line, the layer. */
typedef struct lctx {
    tsr__err *err;
    const char *file;
    int line;
    const char *name; /* NULL before the name is read */
    const char *type;
    pval p[NN_N_KEYS];
} lctx;

static tsr_status lfail(const lctx *c, tsr_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tsr_status lfail(const lctx *c, tsr_status rc, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->name)
        return tsr__seterr(c->err, rc, "%s:%d: layer '%s' (%s): %s", c->file, c->line, c->name,
                           c->type, what);
    return tsr__seterr(c->err, rc, "%s:%d: %s", c->file, c->line, what);
}

static int is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

typedef struct cursor {
    const char *p, *end; /* the rest of the current line */
} cursor;

/* Next whitespace-separated token of the line; 0 at the end of the line. */
static int next_token(cursor *cur, const char **tok, size_t *len)
{
    while (cur->p < cur->end && is_space((unsigned char)*cur->p))
        cur->p++;
    if (cur->p >= cur->end)
        return 0;
    *tok = cur->p;
    while (cur->p < cur->end && !is_space((unsigned char)*cur->p))
        cur->p++;
    *len = (size_t)(cur->p - *tok);
    return 1;
}

/* How a token looks in a message: quoted, and cut short when long. */
#define TOKF "'%.*s%s'"
#define TOKA(s, n) (int)((n) > 48 ? 48 : (n)), (s), ((n) > 48 ? "..." : "")

/* Decimal integer in int range: 0 ok, -1 not an integer, -2 out of range. */
static int parse_int(const char *s, size_t n, int *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return -1;
    long long v = 0;
    int big = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (!big) {
            v = v * 10 + (s[i] - '0');
            if (v > (long long)INT_MAX + 1)
                big = 1;
        }
    }
    if (neg)
        v = -v;
    if (big || v > INT_MAX || v < INT_MIN)
        return -2;
    *out = (int)v;
    return 0;
}

/* Decimal float syntax ([+-]digits[.digits][e[+-]digits]), converted whatever LC_NUMERIC says:
 * 0 ok, -1 malformed, -2 not finite as a float. */
static int parse_float(const char *s, size_t n, float *out)
{
    char buf[80];
    if (n >= 64)
        return -1;
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (!digits)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!(i < n && s[i] >= '0' && s[i] <= '9'))
            return -1;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i != n)
        return -1;
    const char *point = localeconv()->decimal_point;
    size_t plen = point && *point ? strlen(point) : 0;
    size_t w = 0;
    for (i = 0; i < n; i++) {
        if (s[i] == '.' && plen && plen < 8) {
            memcpy(buf + w, point, plen);
            w += plen;
        } else {
            buf[w++] = s[i];
        }
    }
    buf[w] = 0;
    char *end = NULL;
    double v = strtod(buf, &end);
    if (!end || *end)
        return -1;
    if (!isfinite(v) || fabs(v) > FLT_MAX)
        return -2;
    *out = (float)v;
    return 0;
}

/* One scalar value or array element, typed by the '.'/'e'/'E' rule. */
static tsr_status parse_value(lctx *c, int key, const char *s, size_t n, pnum *out)
{
    if (n && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '"'))
        return lfail(c, TSR_ERR_UNSUPPORTED, "key %d: string value " TOKF " is not supported", key,
                     TOKA(s, n));
    int is_float = memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n);
    int rc;
    if (is_float) {
        rc = parse_float(s, n, &out->f);
        out->i = 0;
    } else {
        rc = parse_int(s, n, &out->i);
        out->f = (float)out->i;
    }
    out->is_float = is_float;
    if (rc == -2)
        return lfail(c, TSR_ERR_INVALID, "key %d: value " TOKF " is out of range, expected %s", key,
                     TOKA(s, n), is_float ? "a finite float" : "a 32-bit integer");
    if (rc)
        return lfail(c, TSR_ERR_INVALID, "key %d: malformed value " TOKF ", expected %s", key,
                     TOKA(s, n), is_float ? "a decimal float" : "a decimal integer");
    return TSR_OK;
}

/* Comma-separated elements s[0..n) into v (at most TSR_NN_MAX_ARRAY). */
static tsr_status parse_elements(lctx *c, int key, const char *s, size_t n, pval *v, int expect)
{
    size_t i = 0;
    v->n = 0;
    while (i <= n) {
        const char *e = memchr(s + i, ',', n - i);
        size_t len = e ? (size_t)(e - (s + i)) : n - i;
        if (v->n == TSR_NN_MAX_ARRAY)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "key %d: array of more than %d elements, expected at most %d", key,
                         TSR_NN_MAX_ARRAY, TSR_NN_MAX_ARRAY);
        if (!len)
            return lfail(c, TSR_ERR_INVALID, "key %d: empty array element, expected a number", key);
        tsr_status rc = parse_value(c, key, s + i, len, &v->v[v->n]);
        if (rc)
            return rc;
        v->n++;
        if (!e)
            break;
        i += len + 1;
        if (i == n)
            return lfail(c, TSR_ERR_INVALID, "key %d: array ends in a comma, expected a number",
                         key);
    }
    if (expect >= 0 && v->n != expect)
        return lfail(c, TSR_ERR_INVALID, "key %d: array has %d elements, expected %d as declared",
                     key, v->n, expect);
    return TSR_OK;
}

/* One key=value token into c->p. */
static tsr_status parse_param(lctx *c, const char *tok, size_t len)
{
    const char *eq = memchr(tok, '=', len);
    if (!eq || eq == tok || eq == tok + len - 1)
        return lfail(c, TSR_ERR_INVALID, "malformed parameter " TOKF ", expected <key>=<value>",
                     TOKA(tok, len));
    int key;
    if (parse_int(tok, (size_t)(eq - tok), &key))
        return lfail(c, TSR_ERR_INVALID, "malformed parameter key " TOKF ", expected an integer",
                     TOKA(tok, (size_t)(eq - tok)));
    int array = key <= NN_ARRAY_KEY;
    int id = array ? NN_ARRAY_KEY - key : key;
    if (id < 0 || id >= NN_N_KEYS)
        return lfail(c, TSR_ERR_INVALID,
                     "parameter key %d out of range, expected 0..%d or %d..%d for arrays", key,
                     NN_N_KEYS - 1, NN_ARRAY_KEY - (NN_N_KEYS - 1), NN_ARRAY_KEY);
    pval *v = &c->p[id];
    if (v->set)
        return lfail(c, TSR_ERR_INVALID, "parameter key %d given twice, expected once", id);
    memset(v, 0, sizeof *v);
    v->set = 1;
    const char *s = eq + 1;
    size_t n = len - (size_t)(s - tok);
    if (array) {
        /* count,v1,...,vcount */
        v->is_array = 1;
        const char *comma = memchr(s, ',', n);
        size_t clen = comma ? (size_t)(comma - s) : n;
        int count;
        int rc = parse_int(s, clen, &count);
        if (rc || count < 0)
            return lfail(c, TSR_ERR_INVALID,
                         "key %d: array count " TOKF " is malformed, expected 0..%d", id,
                         TOKA(s, clen), TSR_NN_MAX_ARRAY);
        if (count > TSR_NN_MAX_ARRAY)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "key %d: array of %d elements, expected at most %d", id, count,
                         TSR_NN_MAX_ARRAY);
        if (!comma) {
            if (count)
                return lfail(c, TSR_ERR_INVALID, "key %d: array has 0 elements, expected %d", id,
                             count);
            return TSR_OK;
        }
        return parse_elements(c, id, comma + 1, n - clen - 1, v, count);
    }
    if (memchr(s, ',', n)) {
        v->is_array = 1;
        return parse_elements(c, id, s, n, v, -1);
    }
    v->n = 1;
    return parse_value(c, id, s, n, &v->v[0]);
}

/* ---- typed access to parsed params ------------------------------------------------------------
 */

static tsr_status get_int(lctx *c, int key, const char *what, int def, int lo, int hi, int *out)
{
    const pval *v = &c->p[key];
    if (!v->set) {
        *out = def;
        return TSR_OK;
    }
    if (v->is_array)
        return lfail(c, TSR_ERR_INVALID, "%s (key %d) is an array, expected an integer", what, key);
    if (v->v[0].is_float)
        return lfail(c, TSR_ERR_INVALID, "%s (key %d) is the float %g, expected an integer", what,
                     key, (double)v->v[0].f);
    int x = v->v[0].i;
    if (x < lo || x > hi)
        return lfail(c, TSR_ERR_INVALID, "%s (key %d) is %d, expected %d..%d", what, key, x, lo,
                     hi);
    *out = x;
    return TSR_OK;
}

static tsr_status get_float(lctx *c, int key, const char *what, float def, float *out)
{
    const pval *v = &c->p[key];
    if (!v->set) {
        *out = def;
        return TSR_OK;
    }
    if (v->is_array)
        return lfail(c, TSR_ERR_INVALID, "%s (key %d) is an array, expected a number", what, key);
    *out = v->v[0].f;
    return TSR_OK;
}

/* An int array (a scalar counts as one element); *n = 0 when absent. */
static tsr_status get_int_array(lctx *c, int key, const char *what, int *arr, int *n)
{
    const pval *v = &c->p[key];
    *n = 0;
    if (!v->set)
        return TSR_OK;
    for (int i = 0; i < v->n; i++) {
        if (v->v[i].is_float)
            return lfail(c, TSR_ERR_INVALID,
                         "%s (key %d) element %d is the float %g, expected an integer", what, key,
                         i, (double)v->v[i].f);
        arr[i] = v->v[i].i;
    }
    *n = v->n;
    return TSR_OK;
}

static void get_float_array(lctx *c, int key, float *arr, int *n)
{
    const pval *v = &c->p[key];
    *n = 0;
    if (!v->set)
        return;
    for (int i = 0; i < v->n; i++)
        arr[i] = v->v[i].f;
    *n = v->n;
}

/* A key the loader knows but does not implement: it must be absent or zero. */
static tsr_status refuse_key(lctx *c, int key, const char *what)
{
    const pval *v = &c->p[key];
    if (!v->set)
        return TSR_OK;
    if (!v->is_array && v->n == 1 && !v->v[0].is_float && v->v[0].i == 0)
        return TSR_OK;
    return lfail(c, TSR_ERR_UNSUPPORTED, "%s (key %d) is not supported, expected %d=0 or none",
                 what, key, key);
}

/* ---- per-type parameters ----------------------------------------------------------------------
 */

static tsr_status get_activation(lctx *c, tsr_nn_layer *L)
{
    tsr_status rc = get_int(c, 9, "activation_type", 0, 0, INT_MAX, &L->activation);
    if (rc)
        return rc;
    if (L->activation > TSR_NN_ACT_SIGMOID)
        return lfail(c, TSR_ERR_UNSUPPORTED,
                     "activation_type (key 9) %d is not supported, expected 0..4 (none, ReLU, "
                     "LeakyReLU, Clip, Sigmoid)",
                     L->activation);
    float p[TSR_NN_MAX_ARRAY];
    int n;
    get_float_array(c, 10, p, &n);
    int need = L->activation == TSR_NN_ACT_LEAKY ? 1 : L->activation == TSR_NN_ACT_CLIP ? 2 : 0;
    if (n < need)
        return lfail(c, TSR_ERR_INVALID,
                     "activation_params (key 10) has %d elements, expected at least %d for "
                     "activation_type %d",
                     n, need, L->activation);
    L->activation_params[0] = n > 0 ? p[0] : 0.f;
    L->activation_params[1] = n > 1 ? p[1] : 0.f;
    return TSR_OK;
}

/* Padding keys 4, 15, 14, 16 with their defaults; all >= 0, or all -233, or all -234. */
static tsr_status get_pads(lctx *c, tsr_nn_layer *L)
{
    tsr_status rc;
    if ((rc = get_int(c, 4, "pad_left", 0, NN_SAME_LOWER, NN_MAX_PAD, &L->pad_left)) ||
        (rc = get_int(c, 15, "pad_right", L->pad_left, NN_SAME_LOWER, NN_MAX_PAD, &L->pad_right)) ||
        (rc = get_int(c, 14, "pad_top", L->pad_left, NN_SAME_LOWER, NN_MAX_PAD, &L->pad_top)) ||
        (rc = get_int(c, 16, "pad_bottom", L->pad_top, NN_SAME_LOWER, NN_MAX_PAD, &L->pad_bottom)))
        return rc;
    int p[4] = {L->pad_left, L->pad_right, L->pad_top, L->pad_bottom};
    int neg = 0, same = 1;
    for (int i = 0; i < 4; i++) {
        neg |= p[i] < 0;
        same &= p[i] == p[0];
    }
    if (neg && !(same && (p[0] == NN_SAME_UPPER || p[0] == NN_SAME_LOWER)))
        return lfail(c, TSR_ERR_UNSUPPORTED,
                     "pads (left %d, right %d, top %d, bottom %d) are not supported, expected "
                     "0..%d each, or all -233 (SAME_UPPER) or all -234 (SAME_LOWER)",
                     p[0], p[1], p[2], p[3], NN_MAX_PAD);
    return TSR_OK;
}

static tsr_status parse_conv(lctx *c, tsr_nn_layer *L, int deconv)
{
    tsr_status rc;
    if ((rc = get_int(c, 0, "num_output", 0, 0, NN_MAX_CHANNELS, &L->num_output)) ||
        (rc = get_int(c, 1, "kernel_w", 0, 0, NN_MAX_KERNEL, &L->kernel_w)) ||
        (rc = get_int(c, 11, "kernel_h", L->kernel_w, 1, NN_MAX_KERNEL, &L->kernel_h)) ||
        (rc = get_int(c, 2, "dilation_w", 1, 1, NN_MAX_KERNEL, &L->dilation_w)) ||
        (rc = get_int(c, 12, "dilation_h", L->dilation_w, 1, NN_MAX_KERNEL, &L->dilation_h)) ||
        (rc = get_int(c, 3, "stride_w", 1, 1, NN_MAX_KERNEL, &L->stride_w)) ||
        (rc = get_int(c, 13, "stride_h", L->stride_w, 1, NN_MAX_KERNEL, &L->stride_h)) ||
        (rc = get_pads(c, L)) || (rc = get_int(c, 5, "bias_term", 0, 0, 1, &L->bias_term)) ||
        (rc = get_int(c, 6, "weight_data_size", 0, 0, INT_MAX, &L->weight_data_size)) ||
        (rc = get_activation(c, L)))
        return rc;
    if (L->num_output < 1)
        return lfail(c, TSR_ERR_INVALID, "num_output (key 0) is %s, expected 1..%d",
                     c->p[0].set ? "0" : "missing", NN_MAX_CHANNELS);
    if (L->kernel_w < 1)
        return lfail(c, TSR_ERR_INVALID, "kernel_w (key 1) is %s, expected 1..%d",
                     c->p[1].set ? "0" : "missing", NN_MAX_KERNEL);
    if (deconv) {
        if ((rc = get_int(c, 18, "output_pad_right", 0, 0, NN_MAX_KERNEL, &L->output_pad_right)) ||
            (rc = get_int(c, 19, "output_pad_bottom", L->output_pad_right, 0, NN_MAX_KERNEL,
                          &L->output_pad_bottom)) ||
            (rc = get_int(c, 20, "output_w", 0, 0, NN_MAX_DIM, &L->output_w)) ||
            (rc = get_int(c, 21, "output_h", L->output_w, 0, NN_MAX_DIM, &L->output_h)) ||
            (rc = refuse_key(c, 28, "dynamic_weight")))
            return rc;
        /* ncnn trims to output_w x output_h only in the SAME modes (elsewhere the pads win, or
         * the output is left empty): anything else is refused rather than guessed. */
        if ((L->output_w > 0 || L->output_h > 0) &&
            !(L->pad_left < 0 && L->output_w > 0 && L->output_h > 0))
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "output_w/output_h (keys 20/21) %d x %d with pads %d, expected both set "
                         "and pads -233 or -234 (SAME), or neither",
                         L->output_w, L->output_h, L->pad_left);
    } else {
        if ((rc = get_float(c, 18, "pad_value", 0.f, &L->pad_value)) ||
            (rc = refuse_key(c, 19, "dynamic_weight")))
            return rc;
    }
    if ((rc = refuse_key(c, 8, "int8_scale_term")))
        return rc;
    long long per_input = (long long)L->num_output * L->kernel_w * L->kernel_h;
    if (L->weight_data_size < 1 || L->weight_data_size % per_input)
        return lfail(c, TSR_ERR_INVALID,
                     "weight_data_size (key 6) is %d, expected a positive multiple of "
                     "num_output*kernel_w*kernel_h = %lld",
                     L->weight_data_size, per_input);
    long long nin = L->weight_data_size / per_input;
    if (nin > NN_MAX_CHANNELS)
        return lfail(c, TSR_ERR_INVALID,
                     "weight_data_size (key 6) %d gives %lld input channels, expected at most %d",
                     L->weight_data_size, nin, NN_MAX_CHANNELS);
    L->num_input = (int)nin;
    return TSR_OK;
}

static tsr_status parse_params(lctx *c, tsr_nn_layer *L)
{
    tsr_status rc = TSR_OK;
    int unused;
    switch (L->type) {
    case TSR_NN_INPUT:
        /* 0=w 1=h 2=c are hints; only c is used (in_channels). */
        if ((rc = get_int(c, 0, "w", 0, INT_MIN, INT_MAX, &unused)) ||
            (rc = get_int(c, 1, "h", 0, INT_MIN, INT_MAX, &unused)) ||
            (rc = get_int(c, 2, "c", 0, INT_MIN, NN_MAX_CHANNELS, &L->num_output)))
            return rc;
        if (L->num_output < 0)
            L->num_output = 0;
        return TSR_OK;
    case TSR_NN_CONVOLUTION: return parse_conv(c, L, 0);
    case TSR_NN_DECONVOLUTION: return parse_conv(c, L, 1);
    case TSR_NN_PRELU:
        if ((rc = get_int(c, 0, "num_slope", 0, 0, NN_MAX_CHANNELS, &L->num_slope)))
            return rc;
        if (L->num_slope < 1)
            return lfail(c, TSR_ERR_INVALID, "num_slope (key 0) is %s, expected 1..%d",
                         c->p[0].set ? "0" : "missing", NN_MAX_CHANNELS);
        return TSR_OK;
    case TSR_NN_PIXELSHUFFLE:
        if ((rc = get_int(c, 0, "upscale_factor", 1, 1, 32, &L->upscale_factor)) ||
            (rc = get_int(c, 1, "mode", 0, INT_MIN, INT_MAX, &L->pixelshuffle_mode)))
            return rc;
        if (L->pixelshuffle_mode != 0 && L->pixelshuffle_mode != 1)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "mode (key 1) %d is not supported, expected 0 (CRD) or 1 (DCR)",
                         L->pixelshuffle_mode);
        return TSR_OK;
    case TSR_NN_INTERP: {
        if ((rc = get_int(c, 0, "resize_type", 0, INT_MIN, INT_MAX, &L->resize_type)) ||
            (rc = get_float(c, 1, "height_scale", 1.f, &L->height_scale)) ||
            (rc = get_float(c, 2, "width_scale", 1.f, &L->width_scale)) ||
            (rc = get_int(c, 3, "output_height", 0, 0, NN_MAX_DIM, &L->interp_out_h)) ||
            (rc = get_int(c, 4, "output_width", 0, 0, NN_MAX_DIM, &L->interp_out_w)) ||
            (rc = refuse_key(c, 5, "dynamic_target_size")) ||
            (rc = get_int(c, 6, "align_corner", 0, 0, 1, &L->align_corner)))
            return rc;
        if (L->resize_type < TSR_NN_INTERP_NEAREST || L->resize_type > TSR_NN_INTERP_BICUBIC)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "resize_type (key 0) %d is not supported, expected 1 (nearest), 2 "
                         "(bilinear) or 3 (bicubic)",
                         L->resize_type);
        if (!(L->interp_out_h && L->interp_out_w)) {
            float s[2] = {L->height_scale, L->width_scale};
            for (int i = 0; i < 2; i++)
                if (!(s[i] > 0.f && s[i] <= 64.f))
                    return lfail(c, TSR_ERR_INVALID, "%s (key %d) is %g, expected 0 < scale <= 64",
                                 i ? "width_scale" : "height_scale", i + 1, (double)s[i]);
        }
        return TSR_OK;
    }
    case TSR_NN_BINARYOP:
        if ((rc = get_int(c, 0, "op_type", 0, 0, INT_MAX, &L->op)) ||
            (rc = get_int(c, 1, "with_scalar", 0, 0, 1, &L->with_scalar)) ||
            (rc = get_float(c, 2, "b", 0.f, &L->b)))
            return rc;
        if (L->op > TSR_NN_BIN_MIN)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "op_type (key 0) %d is not supported, expected 0..5 (add, sub, mul, div, "
                         "max, min)",
                         L->op);
        if (L->n_in != (L->with_scalar ? 1 : 2))
            return lfail(c, TSR_ERR_INVALID, "%d inputs, expected %d with with_scalar=%d", L->n_in,
                         L->with_scalar ? 1 : 2, L->with_scalar);
        return TSR_OK;
    case TSR_NN_ELTWISE:
        if ((rc = get_int(c, 0, "op_type", 0, 0, TSR_NN_ELT_MAX, &L->op)))
            return rc;
        get_float_array(c, 1, L->coeffs, &L->n_coeffs);
        if (L->n_coeffs && L->n_coeffs != L->n_in)
            return lfail(c, TSR_ERR_INVALID,
                         "coeffs (key 1) has %d elements, expected %d (one "
                         "per input) or none",
                         L->n_coeffs, L->n_in);
        return TSR_OK;
    case TSR_NN_CONCAT:
        if ((rc = get_int(c, 0, "axis", 0, -3, 2, &L->axis)))
            return rc;
        if (L->axis > 0)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "Concat on axis %d is not supported, expected 0 (channels)", L->axis);
        return TSR_OK;
    case TSR_NN_CROP:
        if ((rc = get_int(c, 0, "woffset", 0, 0, NN_MAX_DIM, &L->woffset)) ||
            (rc = get_int(c, 1, "hoffset", 0, 0, NN_MAX_DIM, &L->hoffset)) ||
            (rc = get_int(c, 2, "coffset", 0, 0, NN_MAX_DIM, &L->coffset)) ||
            (rc = get_int(c, 3, "outw", 0, -233, NN_MAX_DIM, &L->outw)) ||
            (rc = get_int(c, 4, "outh", 0, -233, NN_MAX_DIM, &L->outh)) ||
            (rc = get_int(c, 5, "outc", 0, -233, NN_MAX_DIM, &L->outc)) ||
            (rc = get_int(c, 6, "woffset2", 0, 0, NN_MAX_DIM, &L->woffset2)) ||
            (rc = get_int(c, 7, "hoffset2", 0, 0, NN_MAX_DIM, &L->hoffset2)) ||
            (rc = get_int(c, 8, "coffset2", 0, 0, NN_MAX_DIM, &L->coffset2)) ||
            (rc = get_int_array(c, 9, "starts", L->starts, &L->n_starts)) ||
            (rc = get_int_array(c, 10, "ends", L->ends, &L->n_ends)) ||
            (rc = get_int_array(c, 11, "axes", L->axes, &L->n_axes)) ||
            (rc = refuse_key(c, 13, "doffset")) || (rc = refuse_key(c, 14, "outd")) ||
            (rc = refuse_key(c, 15, "doffset2")))
            return rc;
        {
            int outs[3] = {L->outw, L->outh, L->outc};
            for (int i = 0; i < 3; i++)
                if (outs[i] < 0 && outs[i] != -233)
                    return lfail(c, TSR_ERR_INVALID,
                                 "%s (key %d) is %d, expected 0..%d, or -233 (all)",
                                 i == 0   ? "outw"
                                 : i == 1 ? "outh"
                                          : "outc",
                                 i + 3, outs[i], NN_MAX_DIM);
        }
        if (L->n_in == 2)
            return TSR_OK;
        if (L->n_in != 1)
            return lfail(c, TSR_ERR_INVALID, "%d inputs, expected 1, or 2 (crop to a reference)",
                         L->n_in);
        if (L->n_starts || L->n_ends || L->n_axes) {
            if (L->n_starts < 1 || L->n_starts > 3 || L->n_ends != L->n_starts)
                return lfail(c, TSR_ERR_INVALID,
                             "starts (key 9) has %d elements and ends (key 10) %d, expected the "
                             "same count, 1..3",
                             L->n_starts, L->n_ends);
            if (L->n_axes && L->n_axes != L->n_starts)
                return lfail(c, TSR_ERR_INVALID,
                             "axes (key 11) has %d elements, expected %d (one per start) or none",
                             L->n_axes, L->n_starts);
            for (int i = 0; i < L->n_axes; i++)
                if (L->axes[i] < -3 || L->axes[i] > 2)
                    return lfail(c, TSR_ERR_INVALID,
                                 "axes (key 11) element %d is %d, expected "
                                 "-3..2",
                                 i, L->axes[i]);
            for (int i = 0; i < L->n_starts; i++)
                if (L->starts[i] < -NN_MAX_DIM || L->starts[i] > NN_MAX_DIM ||
                    L->ends[i] < -NN_MAX_DIM || L->ends[i] > NN_MAX_DIM)
                    return lfail(c, TSR_ERR_INVALID,
                                 "start %d / end %d of crop axis %d, expected -%d..%d",
                                 L->starts[i], L->ends[i], i, NN_MAX_DIM, NN_MAX_DIM);
        }
        return TSR_OK;
    case TSR_NN_SPLIT: return TSR_OK;
    case TSR_NN_POOLING: {
        int adaptive;
        if ((rc = get_int(c, 0, "pooling_type", 0, 0, 1, &L->pooling_type)) ||
            (rc = get_int(c, 4, "global_pooling", 0, 0, 1, &L->global_pooling)) ||
            (rc = get_int(c, 7, "adaptive_pooling", 0, 0, 1, &adaptive)))
            return rc;
        if (!L->global_pooling || adaptive)
            return lfail(c, TSR_ERR_UNSUPPORTED,
                         "Pooling that is not global is not supported, expected 4=1 (global "
                         "pooling)%s",
                         adaptive ? " and no 7=1 (adaptive)" : "");
        return TSR_OK;
    }
    case TSR_NN_INNERPRODUCT:
        if ((rc = get_int(c, 0, "num_output", 0, 0, NN_MAX_CHANNELS, &L->num_output)) ||
            (rc = get_int(c, 1, "bias_term", 0, 0, 1, &L->bias_term)) ||
            (rc = get_int(c, 2, "weight_data_size", 0, 0, INT_MAX, &L->weight_data_size)) ||
            (rc = refuse_key(c, 8, "int8_scale_term")) || (rc = get_activation(c, L)))
            return rc;
        if (L->num_output < 1)
            return lfail(c, TSR_ERR_INVALID, "num_output (key 0) is %s, expected 1..%d",
                         c->p[0].set ? "0" : "missing", NN_MAX_CHANNELS);
        if (L->weight_data_size < 1 || L->weight_data_size % L->num_output)
            return lfail(c, TSR_ERR_INVALID,
                         "weight_data_size (key 2) is %d, expected a positive multiple of "
                         "num_output %d",
                         L->weight_data_size, L->num_output);
        L->num_input = L->weight_data_size / L->num_output;
        return TSR_OK;
    case TSR_NN_SCALE:
        if ((rc =
                 get_int(c, 0, "scale_data_size", 0, -233, NN_MAX_CHANNELS, &L->scale_data_size)) ||
            (rc = get_int(c, 1, "bias_term", 0, 0, 1, &L->bias_term)))
            return rc;
        if (L->scale_data_size == -233) {
            if (L->n_in != 2)
                return lfail(c, TSR_ERR_INVALID, "%d inputs, expected 2 with scale_data_size=-233",
                             L->n_in);
            if (L->bias_term)
                return lfail(c, TSR_ERR_UNSUPPORTED,
                             "bias_term with scale_data_size=-233 is not supported, expected 1=0");
            return TSR_OK;
        }
        if (L->scale_data_size < 1)
            return lfail(c, TSR_ERR_INVALID,
                         "scale_data_size (key 0) is %d, expected 1..%d, or -233 (second input)",
                         L->scale_data_size, NN_MAX_CHANNELS);
        if (L->n_in != 1)
            return lfail(c, TSR_ERR_INVALID, "%d inputs, expected 1 with scale data", L->n_in);
        return TSR_OK;
    case TSR_NN_TYPE_COUNT: break;
    }
    return lfail(c, TSR_ERR_INTERNAL, "no parameter reader for this type");
}

/* Inputs and outputs each type takes: {min in, max in, min out, max out}. */
static const int arity[TSR_NN_TYPE_COUNT][4] = {
    [TSR_NN_INPUT] = {0, 0, 1, 1},
    [TSR_NN_CONVOLUTION] = {1, 1, 1, 1},
    [TSR_NN_DECONVOLUTION] = {1, 1, 1, 1},
    [TSR_NN_PRELU] = {1, 1, 1, 1},
    [TSR_NN_PIXELSHUFFLE] = {1, 1, 1, 1},
    [TSR_NN_INTERP] = {1, 1, 1, 1},
    [TSR_NN_BINARYOP] = {1, 2, 1, 1},
    [TSR_NN_ELTWISE] = {2, NN_MAX_PORTS, 1, 1},
    [TSR_NN_CONCAT] = {1, NN_MAX_PORTS, 1, 1},
    [TSR_NN_CROP] = {1, 2, 1, 1},
    [TSR_NN_SPLIT] = {1, 1, 1, NN_MAX_PORTS},
    [TSR_NN_POOLING] = {1, 1, 1, 1},
    [TSR_NN_INNERPRODUCT] = {1, 1, 1, 1},
    [TSR_NN_SCALE] = {1, 2, 1, 1},
};

/* ---- the parse --------------------------------------------------------------------------------
 */

typedef struct parser {
    tsr__err *err;
    const char *file; /* .param name for messages */
    tsr_nn_model *m;
    nmap blobs, layers;
    char **layer_names; /* aliases of m->layers[i].name, for the layer map */
    int blob_cap;
    int declared_blobs;
} parser;

static void free_layer(tsr_nn_layer *L)
{
    free(L->name);
    free(L->in);
    free(L->out);
    free(L->weight);
    free(L->bias);
}

void tsr__nn_free(tsr_nn_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_layers; i++)
        free_layer(&m->layers[i]);
    free(m->layers);
    for (int i = 0; i < m->n_blobs; i++)
        free(m->blob_names[i]);
    free(m->blob_names);
    free(m->producer);
    free(m->last_reader);
    free(m->param_path);
    free(m->bin_path);
    free(m);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* A layer or blob name: 1..255 bytes, no control characters (checked for the whole line). */
static tsr_status check_name(lctx *c, const char *what, const char *s, size_t n)
{
    if (n > NN_MAX_NAME)
        return lfail(c, TSR_ERR_INVALID, "%s name " TOKF " is %zu bytes long, expected at most %d",
                     what, TOKA(s, n), n, NN_MAX_NAME);
    return TSR_OK;
}

static tsr_status add_blob(parser *ps, lctx *c, const char *s, size_t n, int layer)
{
    tsr_nn_model *m = ps->m;
    int prev = nmap_find(&ps->blobs, m->blob_names, s, n);
    if (prev >= 0) {
        const tsr_nn_layer *P = &m->layers[m->producer[prev]];
        return lfail(c, TSR_ERR_INVALID,
                     "output blob " TOKF " is already produced by layer '%s' (line %d), expected "
                     "each blob produced once",
                     TOKA(s, n), P->name, P->line);
    }
    if (m->n_blobs >= ps->declared_blobs)
        return lfail(c, TSR_ERR_INVALID,
                     "blob " TOKF " is one more than the %d blobs the header declares, expected "
                     "the blob count to match",
                     TOKA(s, n), ps->declared_blobs);
    if (m->n_blobs == ps->blob_cap) {
        int cap = ps->blob_cap ? ps->blob_cap * 2 : 64;
        if (cap > ps->declared_blobs)
            cap = ps->declared_blobs;
        char **names = realloc(m->blob_names, (size_t)cap * sizeof *names);
        if (!names)
            return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
        m->blob_names = names;
        int *prod = realloc(m->producer, (size_t)cap * sizeof *prod);
        if (!prod)
            return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
        m->producer = prod;
        int *last = realloc(m->last_reader, (size_t)cap * sizeof *last);
        if (!last)
            return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
        m->last_reader = last;
        ps->blob_cap = cap;
    }
    int idx = m->n_blobs;
    m->blob_names[idx] = dup_n(s, n);
    if (!m->blob_names[idx])
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    m->producer[idx] = layer;
    m->last_reader[idx] = -1;
    m->n_blobs++;
    if (nmap_add(&ps->blobs, m->blob_names, idx, m->n_blobs))
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

/* One layer line (already checked for control bytes). */
static tsr_status parse_layer(parser *ps, int li, int line, const char *s, const char *e)
{
    tsr_nn_model *m = ps->m;
    tsr_nn_layer *L = &m->layers[li];
    lctx c;
    memset(&c, 0, sizeof c);
    c.err = ps->err;
    c.file = ps->file;
    c.line = line;
    L->line = line;
    cursor cur = {s, e};
    const char *tt = NULL, *nt = NULL, *tok = NULL;
    size_t tl = 0, nl = 0, len = 0;
    next_token(&cur, &tt, &tl);
    if (!next_token(&cur, &nt, &nl))
        return lfail(&c, TSR_ERR_INVALID,
                     "layer line " TOKF " has no name, expected <type> <name> <n_in> <n_out> ...",
                     TOKA(tt, tl));
    /* Names for messages before they are validated: cut to what a message can hold. */
    char tbuf[64], nbuf[NN_MAX_NAME + 1];
    snprintf(tbuf, sizeof tbuf, "%.*s", (int)(tl < sizeof tbuf - 1 ? tl : sizeof tbuf - 1), tt);
    snprintf(nbuf, sizeof nbuf, "%.*s", (int)(nl < sizeof nbuf - 1 ? nl : sizeof nbuf - 1), nt);
    c.type = tbuf;
    c.name = nbuf;
    int type = -1;
    for (int t = 0; t < TSR_NN_TYPE_COUNT; t++)
        if (strlen(type_names[t]) == tl && memcmp(type_names[t], tt, tl) == 0)
            type = t;
    if (type < 0)
        return lfail(&c, TSR_ERR_UNSUPPORTED,
                     "unknown layer type " TOKF ", expected one of Input, Convolution, "
                     "Deconvolution, PReLU, PixelShuffle, Interp, BinaryOp, Eltwise, Concat, Crop, "
                     "Split, Pooling, InnerProduct, Scale",
                     TOKA(tt, tl));
    L->type = (tsr_nn_type)type;
    c.type = type_names[type];
    tsr_status rc = check_name(&c, "layer", nt, nl);
    if (rc)
        return rc;
    if (nmap_find(&ps->layers, ps->layer_names, nt, nl) >= 0) {
        int prev = nmap_find(&ps->layers, ps->layer_names, nt, nl);
        return lfail(&c, TSR_ERR_INVALID,
                     "layer name is already used on line %d, expected "
                     "unique layer names",
                     m->layers[prev].line);
    }
    L->name = dup_n(nt, nl);
    if (!L->name)
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    ps->layer_names[li] = L->name;
    if (nmap_add(&ps->layers, ps->layer_names, li, li + 1))
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    c.name = L->name;

    int counts[2];
    for (int k = 0; k < 2; k++) {
        const char *what = k ? "output count" : "input count";
        if (!next_token(&cur, &tok, &len))
            return lfail(&c, TSR_ERR_INVALID, "line ends before the %s, expected <n_in> <n_out>",
                         what);
        int v;
        if (parse_int(tok, len, &v) || v < arity[type][2 * k] || v > arity[type][2 * k + 1])
            return lfail(&c, TSR_ERR_INVALID, "%s " TOKF " is not valid, expected %d..%d", what,
                         TOKA(tok, len), arity[type][2 * k], arity[type][2 * k + 1]);
        counts[k] = v;
    }
    L->n_in = counts[0];
    L->n_out = counts[1];
    /* The line must hold that many names: count before allocating. */
    {
        cursor probe = cur;
        int have = 0;
        while (have < L->n_in + L->n_out && next_token(&probe, &tok, &len))
            have++;
        if (have < L->n_in + L->n_out)
            return lfail(&c, TSR_ERR_INVALID,
                         "line has %d blob names, expected %d inputs and %d outputs", have, L->n_in,
                         L->n_out);
    }
    L->in = malloc((size_t)(L->n_in ? L->n_in : 1) * sizeof *L->in);
    L->out = malloc((size_t)(L->n_out ? L->n_out : 1) * sizeof *L->out);
    if (!L->in || !L->out)
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < L->n_in; i++) {
        next_token(&cur, &tok, &len);
        if ((rc = check_name(&c, "input blob", tok, len)))
            return rc;
        int b = nmap_find(&ps->blobs, m->blob_names, tok, len);
        if (b < 0)
            return lfail(&c, TSR_ERR_INVALID,
                         "input blob " TOKF " is not produced by an earlier layer, expected "
                         "layers in execution order",
                         TOKA(tok, len));
        L->in[i] = b;
        m->last_reader[b] = li;
    }
    for (int i = 0; i < L->n_out; i++) {
        next_token(&cur, &tok, &len);
        if (memchr(tok, '=', len))
            return lfail(&c, TSR_ERR_INVALID,
                         "output blob name " TOKF " looks like a parameter, expected %d output "
                         "names",
                         TOKA(tok, len), L->n_out);
        if ((rc = check_name(&c, "output blob", tok, len)) || (rc = add_blob(ps, &c, tok, len, li)))
            return rc;
        L->out[i] = m->n_blobs - 1;
    }
    while (next_token(&cur, &tok, &len))
        if ((rc = parse_param(&c, tok, len)))
            return rc;
    return parse_params(&c, L);
}

/* Control bytes (other than blanks) make a line malformed: a name must print. */
static tsr_status check_bytes(parser *ps, int line, const char *s, const char *e)
{
    for (const char *p = s; p < e; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch < 0x20 && !is_space(ch)) || ch == 0x7f)
            return tsr__seterr(ps->err, TSR_ERR_INVALID,
                               "%s:%d: byte 0x%02x at column %d, expected text", ps->file, line, ch,
                               (int)(p - s) + 1);
    }
    return TSR_OK;
}

static int blank(const char *s, const char *e)
{
    for (; s < e; s++)
        if (!is_space((unsigned char)*s))
            return 0;
    return 1;
}

/* Input channels: the Input's 2=c hint, else num_input of the first Convolution or
 * Deconvolution that reads the input directly or through Split/Interp copies. */
static tsr_status find_in_channels(parser *ps)
{
    tsr_nn_model *m = ps->m;
    const tsr_nn_layer *I = &m->layers[m->producer[m->input_blob]];
    if (I->num_output > 0) {
        m->in_channels = I->num_output;
        return TSR_OK;
    }
    unsigned char *reach = calloc((size_t)m->n_blobs, 1);
    if (!reach)
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    reach[m->input_blob] = 1;
    for (int li = 0; li < m->n_layers && !m->in_channels; li++) {
        const tsr_nn_layer *L = &m->layers[li];
        int reads = 0;
        for (int i = 0; i < L->n_in; i++)
            reads |= reach[L->in[i]];
        if (!reads)
            continue;
        if (L->type == TSR_NN_CONVOLUTION || L->type == TSR_NN_DECONVOLUTION)
            m->in_channels = L->num_input;
        else if (L->type == TSR_NN_SPLIT || L->type == TSR_NN_INTERP)
            for (int o = 0; o < L->n_out; o++)
                reach[L->out[o]] = 1;
    }
    free(reach);
    if (!m->in_channels)
        return tsr__seterr(ps->err, TSR_ERR_INVALID,
                           "%s:%d: layer '%s' (Input): the input's channel count is unknown, "
                           "expected a 2=c hint or a Convolution reading the input",
                           ps->file, I->line, I->name);
    return TSR_OK;
}

static tsr_status layer_shape(const tsr_nn_layer *L, const tsr_nn_shape *in, tsr_nn_shape *out,
                              tsr__err *err, int loose);
static tsr_status propagate(const tsr_nn_model *m, int c, int h, int w, tsr_nn_shape *shapes,
                            tsr__err *err, int loose);

static tsr_status parse_graph(parser *ps, const char *text, size_t len)
{
    tsr_nn_model *m = ps->m;
    const char *p = text, *end = text + len;
    int line = 0, header = 0, li = 0;
    int n_layers = 0;
    tsr_status rc;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *s = p;
        p = nl ? nl + 1 : end;
        line++;
        if ((rc = check_bytes(ps, line, s, e)))
            return rc;
        if (blank(s, e))
            continue;
        cursor cur = {s, e};
        const char *tok;
        size_t tl;
        if (header == 0) {
            int v;
            next_token(&cur, &tok, &tl);
            if (parse_int(tok, tl, &v) || v != NN_MAGIC || next_token(&cur, &tok, &tl))
                return tsr__seterr(ps->err, TSR_ERR_INVALID,
                                   "%s:%d: bad magic " TOKF ", expected 7767517 (an ncnn text "
                                   ".param)",
                                   ps->file, line, TOKA(s, (size_t)(e - s)));
            header = 1;
            continue;
        }
        if (header == 1) {
            int v[2];
            for (int k = 0; k < 2; k++) {
                int lo = 1, hi = k ? NN_MAX_BLOBS : NN_MAX_LAYERS;
                if (!next_token(&cur, &tok, &tl) || parse_int(tok, tl, &v[k]) || v[k] < lo ||
                    v[k] > hi)
                    return tsr__seterr(ps->err, TSR_ERR_INVALID,
                                       "%s:%d: bad header " TOKF ", expected <layer_count 1..%d> "
                                       "<blob_count 1..%d>",
                                       ps->file, line, TOKA(s, (size_t)(e - s)), NN_MAX_LAYERS,
                                       NN_MAX_BLOBS);
            }
            if (next_token(&cur, &tok, &tl))
                return tsr__seterr(ps->err, TSR_ERR_INVALID,
                                   "%s:%d: extra token " TOKF " in the header, expected "
                                   "<layer_count> <blob_count>",
                                   ps->file, line, TOKA(tok, tl));
            /* Count the layer lines before allocating for the declared count. */
            int have = 0;
            for (const char *q = p; q < end;) {
                const char *qn = memchr(q, '\n', (size_t)(end - q));
                const char *qe = qn ? qn : end;
                have += !blank(q, qe);
                q = qn ? qn + 1 : end;
            }
            if (have != v[0])
                return tsr__seterr(ps->err, TSR_ERR_INVALID,
                                   "%s:%d: layer count mismatch: the header says %d layers, the "
                                   "file has %d layer lines, expected them equal",
                                   ps->file, line, v[0], have);
            n_layers = v[0];
            ps->declared_blobs = v[1];
            m->layers = calloc((size_t)n_layers, sizeof *m->layers);
            ps->layer_names = calloc((size_t)n_layers, sizeof *ps->layer_names);
            if (!m->layers || !ps->layer_names)
                return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
            header = 2;
            continue;
        }
        m->n_layers = li + 1; /* so that tsr__nn_free frees what this layer allocated */
        if ((rc = parse_layer(ps, li, line, s, e)))
            return rc;
        li++;
    }
    if (header < 2)
        return tsr__seterr(ps->err, TSR_ERR_INVALID,
                           "%s:%d: the file ends before the %s, expected 7767517 then "
                           "<layer_count> <blob_count>",
                           ps->file, line, header ? "header" : "magic number");
    if (m->n_blobs != ps->declared_blobs)
        return tsr__seterr(ps->err, TSR_ERR_INVALID,
                           "%s:2: blob count mismatch: the header says %d blobs, the layers "
                           "produce %d, expected them equal",
                           ps->file, ps->declared_blobs, m->n_blobs);

    /* The one Input, the one output. */
    m->input_blob = -1;
    m->output_blob = -1;
    for (int i = 0; i < m->n_layers; i++) {
        const tsr_nn_layer *L = &m->layers[i];
        if (L->type != TSR_NN_INPUT)
            continue;
        if (m->input_blob >= 0)
            return tsr__seterr(ps->err, TSR_ERR_UNSUPPORTED,
                               "%s:%d: layer '%s' (Input): a second Input layer (the first is "
                               "'%s' on line %d), expected exactly one",
                               ps->file, L->line, L->name,
                               m->layers[m->producer[m->input_blob]].name,
                               m->layers[m->producer[m->input_blob]].line);
        m->input_blob = L->out[0];
    }
    if (m->input_blob < 0)
        return tsr__seterr(ps->err, TSR_ERR_INVALID, "%s: no Input layer, expected exactly one",
                           ps->file);
    int n_outputs = 0;
    char list[512] = "";
    for (int b = 0; b < m->n_blobs; b++) {
        if (m->last_reader[b] >= 0)
            continue;
        if (n_outputs++ == 0)
            m->output_blob = b;
        size_t ll = strlen(list);
        if (ll < sizeof list - 80)
            snprintf(list + ll, sizeof list - ll, "%s'%.60s'", ll ? ", " : "", m->blob_names[b]);
    }
    if (n_outputs != 1)
        return tsr__seterr(ps->err, TSR_ERR_UNSUPPORTED,
                           "%s: %d blobs are read by no layer (%s), expected exactly one output "
                           "blob",
                           ps->file, n_outputs, n_outputs ? list : "none");
    if ((rc = find_in_channels(ps)))
        return rc;
    /* Channel counts through the graph (sizes ignored): catches inconsistent layers now rather
     * than at the first run, and gives out_channels. */
    tsr_nn_shape *shapes = malloc((size_t)m->n_blobs * sizeof *shapes);
    if (!shapes)
        return tsr__seterr(ps->err, TSR_ERR_NOMEM, "out of memory");
    rc = propagate(m, m->in_channels, 0, 0, shapes, ps->err, 1);
    if (!rc)
        m->out_channels = shapes[m->output_blob].c;
    free(shapes);
    return rc;
}

/* ---- the .bin ---------------------------------------------------------------------------------
 */

typedef struct binrd {
    tsr__err *err;
    const char *file, *param_file;
    const unsigned char *p;
    size_t len, off;
    const tsr_nn_layer *L;
} binrd;

static tsr_status bin_short(binrd *r, const char *what, size_t need)
{
    return tsr__seterr(r->err, TSR_ERR_INVALID,
                       "%s: layer '%s' (%s, %s:%d): the .bin ends early: the %s needs %zu bytes "
                       "at offset %zu, only %zu available, expected the .bin to hold every "
                       "layer's weights",
                       r->file, r->L->name, tsr__nn_type_name(r->L->type), r->param_file,
                       r->L->line, what, need, r->off, r->len - r->off);
}

static tsr_status alloc_floats(binrd *r, size_t n, float **out)
{
    *out = malloc(n * sizeof **out);
    if (!*out)
        return tsr__seterr(r->err, TSR_ERR_NOMEM, "%s: layer '%s': out of memory for %zu weights",
                           r->file, r->L->name, n);
    return TSR_OK;
}

/* n raw little-endian fp32 values. */
static tsr_status read_raw(binrd *r, const char *what, size_t n, float **out)
{
    if (n > (r->len - r->off) / 4)
        return bin_short(r, what, n * 4);
    tsr_status rc = alloc_floats(r, n, out);
    if (rc)
        return rc;
    const unsigned char *p = r->p + r->off;
    for (size_t i = 0; i < n; i++)
        (*out)[i] = le_float(p + 4 * i);
    r->off += n * 4;
    return TSR_OK;
}

/* A tagged weight array of n values (NCNN-FORMAT.md 2.1), expanded to fp32. */
static tsr_status read_tagged(binrd *r, const char *what, size_t n, float **out)
{
    if (r->len - r->off < 4)
        return bin_short(r, "weight tag", 4);
    uint32_t tag = le32(r->p + r->off);
    size_t avail = r->len - r->off - 4;
    const unsigned char *p = r->p + r->off + 4;
    size_t bytes;
    tsr_status rc;
    if (tag == TAG_FP16) {
        bytes = (n * 2 + 3) & ~(size_t)3;
        if (n > SIZE_MAX / 4 || bytes > avail)
            return bin_short(r, "fp16 weights", bytes + 4);
        if ((rc = alloc_floats(r, n, out)))
            return rc;
        for (size_t i = 0; i < n; i++)
            (*out)[i] = tsr__nn_half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else if (tag == TAG_INT8) {
        return tsr__seterr(r->err, TSR_ERR_UNSUPPORTED,
                           "%s: layer '%s' (%s, %s:%d): int8 weights (tag 0x000D4B38 at offset "
                           "%zu) are not supported, expected fp16 or fp32 weights (an int8-"
                           "quantised model cannot be loaded)",
                           r->file, r->L->name, tsr__nn_type_name(r->L->type), r->param_file,
                           r->L->line, r->off);
    } else if (tag == TAG_FP32_SCALED || tag == 0) {
        if (n > avail / 4)
            return bin_short(r, "fp32 weights", n * 4 + 4);
        bytes = n * 4;
        if ((rc = alloc_floats(r, n, out)))
            return rc;
        for (size_t i = 0; i < n; i++)
            (*out)[i] = le_float(p + 4 * i);
    } else {
        /* Table quantisation: 256 floats, then n uint8 indices padded to 4. */
        if (n > SIZE_MAX / 2 || avail < 1024 || ((n + 3) & ~(size_t)3) > avail - 1024)
            return bin_short(r, "quantisation table and indices", 4 + 1024 + ((n + 3) & ~3ull));
        bytes = 1024 + ((n + 3) & ~(size_t)3);
        if ((rc = alloc_floats(r, n, out)))
            return rc;
        for (size_t i = 0; i < n; i++)
            (*out)[i] = le_float(p + 4 * (size_t)p[1024 + i]);
    }
    (void)what;
    r->off += 4 + bytes;
    return TSR_OK;
}

static tsr_status read_weights(tsr_nn_model *m, const unsigned char *bin, size_t bin_len,
                               tsr__err *err)
{
    binrd r = {err, m->bin_path, m->param_path, bin, bin_len, 0, NULL};
    tsr_status rc = TSR_OK;
    for (int li = 0; li < m->n_layers && !rc; li++) {
        tsr_nn_layer *L = &m->layers[li];
        r.L = L;
        switch (L->type) {
        case TSR_NN_CONVOLUTION:
        case TSR_NN_DECONVOLUTION:
        case TSR_NN_INNERPRODUCT:
            rc = read_tagged(&r, "weights", (size_t)L->weight_data_size, &L->weight);
            if (!rc)
                L->n_weight = (size_t)L->weight_data_size;
            if (!rc && L->bias_term) {
                rc = read_raw(&r, "bias", (size_t)L->num_output, &L->bias);
                if (!rc)
                    L->n_bias = (size_t)L->num_output;
            }
            break;
        case TSR_NN_PRELU:
            rc = read_raw(&r, "slopes", (size_t)L->num_slope, &L->weight);
            if (!rc)
                L->n_weight = (size_t)L->num_slope;
            break;
        case TSR_NN_SCALE:
            if (L->scale_data_size == -233)
                break;
            rc = read_raw(&r, "scale data", (size_t)L->scale_data_size, &L->weight);
            if (!rc)
                L->n_weight = (size_t)L->scale_data_size;
            if (!rc && L->bias_term) {
                rc = read_raw(&r, "bias", (size_t)L->scale_data_size, &L->bias);
                if (!rc)
                    L->n_bias = (size_t)L->scale_data_size;
            }
            break;
        default: break;
        }
        m->weight_bytes += (L->n_weight + L->n_bias) * sizeof(float);
    }
    if (rc)
        return rc;
    if (r.off != bin_len)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: %zu bytes left over after the last layer's weights (the .bin has "
                           "%zu bytes, %s accounts for %zu), expected the .bin to end there",
                           m->bin_path, bin_len - r.off, bin_len, m->param_path, r.off);
    return TSR_OK;
}

tsr_status tsr__nn_parse(const char *param, size_t param_len, const unsigned char *bin,
                         size_t bin_len, const char *param_name, const char *bin_name,
                         tsr_nn_model **out, tsr__err *err)
{
    if (!out)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__nn_parse: no output pointer");
    *out = NULL;
    if (!param_name)
        param_name = "<param>";
    if (!bin_name)
        bin_name = "<bin>";
    if ((!param && param_len) || (!bin && bin_len))
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: no data", param ? bin_name : param_name);
    if (param_len > NN_MAX_PARAM_FILE)
        return tsr__seterr(err, TSR_ERR_INVALID, "%s: %zu bytes, expected at most %zu", param_name,
                           param_len, NN_MAX_PARAM_FILE);
    tsr_nn_model *m = calloc(1, sizeof *m);
    if (!m)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
    m->param_path = dup_n(param_name, strlen(param_name));
    m->bin_path = dup_n(bin_name, strlen(bin_name));
    parser ps = {err, m->param_path, m, {NULL, 0}, {NULL, 0}, NULL, 0, 0};
    tsr_status rc = TSR_OK;
    if (!m->param_path || !m->bin_path)
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = parse_graph(&ps, param ? param : "", param_len);
    free(ps.blobs.slot);
    free(ps.layers.slot);
    free(ps.layer_names);
    if (!rc)
        rc = read_weights(m, bin, bin_len, err);
    if (rc) {
        tsr__nn_free(m);
        return rc;
    }
    *out = m;
    return TSR_OK;
}

/* ---- files ------------------------------------------------------------------------------------
 */

static tsr_status read_file(const char *path, size_t max, char **out, size_t *len, tsr__err *err)
{
    *out = NULL;
    *len = 0;
    FILE *f;
    tsr_status rc = tsr__fopen_regular(path, &f, err);
    if (rc)
        return rc;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = tsr__seterr(err, TSR_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        rc = tsr__seterr(err, TSR_ERR_INVALID, "%s: %lld bytes, expected at most %zu", path,
                         (long long)st.st_size, max);
        goto done;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
        goto done;
    }
    if (fread(buf, 1, n, f) != n || ferror(f)) {
        free(buf);
        rc = tsr__seterr(err, TSR_ERR_IO, "%s: read error: %s", path,
                         errno ? strerror(errno) : "short read");
        goto done;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
done:
    fclose(f);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The one .param in a folder; *out is malloc'ed. */
static tsr_status find_param(const char *dir, char **out, tsr__err *err)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return tsr__seterr(err, TSR_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    tsr_status rc = TSR_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".param"))
            continue;
        if (n == cap) {
            int nc = cap ? cap * 2 : 8;
            char **nn = realloc(names, (size_t)nc * sizeof *nn);
            if (!nn) {
                rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = dup_n(de->d_name, strlen(de->d_name)))) {
            rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n == 0)
        rc = tsr__seterr(err, TSR_ERR_INVALID, "%s: no .param file in the folder, expected one",
                         dir);
    if (!rc && n > 1) {
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        char list[2048] = "";
        for (int i = 0; i < n; i++) {
            size_t ll = strlen(list);
            if (ll > sizeof list - 300) {
                snprintf(list + ll, sizeof list - ll, ", ...");
                break;
            }
            snprintf(list + ll, sizeof list - ll, "%s%s", i ? ", " : "", names[i]);
        }
        rc = tsr__seterr(err, TSR_ERR_INVALID,
                         "%s: %d .param files in the folder (%s), expected exactly one: name the "
                         ".param file to load",
                         dir, n, list);
    }
    if (!rc) {
        size_t len = strlen(dir) + 1 + strlen(names[0]) + 1;
        *out = malloc(len);
        if (!*out)
            rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
        else
            snprintf(*out, len, "%s%s%s", dir, ends_with(dir, "/") ? "" : "/", names[0]);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

tsr_status tsr__nn_load(const char *path, tsr_nn_model **out, tsr__err *err)
{
    if (!out)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__nn_load: no output pointer");
    *out = NULL;
    if (!path || !*path)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "model path is empty, expected a .param file "
                           "or a folder holding one");
    char *param_path = NULL, *bin_path = NULL, *param = NULL, *bin = NULL;
    size_t param_len = 0, bin_len = 0;
    tsr_status rc = TSR_OK;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = tsr__seterr(err, TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        if ((rc = find_param(path, &param_path, err)))
            goto done;
    } else if (!ends_with(path, ".param")) {
        rc = tsr__seterr(err, TSR_ERR_INVALID,
                         "%s: not a .param file, expected an ncnn .param (with its .bin beside "
                         "it) or a folder holding one",
                         path);
        goto done;
    } else if (!(param_path = dup_n(path, strlen(path)))) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t stem = strlen(param_path) - strlen(".param");
    bin_path = malloc(stem + sizeof ".bin");
    if (!bin_path) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(bin_path, param_path, stem);
    memcpy(bin_path + stem, ".bin", sizeof ".bin");
    if ((rc = read_file(param_path, NN_MAX_PARAM_FILE, &param, &param_len, err)) ||
        (rc = read_file(bin_path, NN_MAX_BIN_FILE, &bin, &bin_len, err)))
        goto done;
    rc = tsr__nn_parse(param, param_len, (const unsigned char *)bin, bin_len, param_path, bin_path,
                       out, err);
done:
    free(param_path);
    free(bin_path);
    free(param);
    free(bin);
    return rc;
}

/* ---- shapes -----------------------------------------------------------------------------------
 */

static void shape_str(const tsr_nn_shape *s, char *buf, size_t len)
{
    if (s->dims == 1)
        snprintf(buf, len, "[%d]", s->c);
    else if (s->dims == 3 && s->h == 0)
        snprintf(buf, len, "%dx?x?", s->c); /* load time: channels only */
    else if (s->dims == 3)
        snprintf(buf, len, "%dx%dx%d", s->c, s->h, s->w);
    else
        snprintf(buf, len, "(no shape)");
}

static tsr_status sfail(tsr__err *err, const tsr_nn_layer *L, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tsr_status sfail(tsr__err *err, const tsr_nn_layer *L, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tsr__seterr(err, TSR_ERR_INVALID, "layer '%s' (%s): %s", L->name ? L->name : "?",
                       tsr__nn_type_name(L->type), what);
}

static tsr_nn_shape vec(int c)
{
    tsr_nn_shape s = {1, c, 1, 1};
    return s;
}

static tsr_nn_shape map(int c, int h, int w)
{
    tsr_nn_shape s = {3, c, h, w};
    return s;
}

/* One convolution axis: the pads (before, after) for input size n; SAME modes resolved. */
static void conv_axis_pads(int mode, int before, int after, int n, int k, int dil, int stride,
                           int *b, int *a)
{
    if (mode == NN_SAME_UPPER || mode == NN_SAME_LOWER) {
        long long ext = (long long)dil * (k - 1) + 1;
        long long total = ext + (long long)(n - 1) / stride * stride - n;
        if (total < 0) /* the rows it would cut are never read */
            total = 0;
        int small = (int)(total / 2), large = (int)(total - total / 2);
        *b = mode == NN_SAME_UPPER ? small : large;
        *a = mode == NN_SAME_UPPER ? large : small;
    } else {
        *b = before;
        *a = after;
    }
}

/* Deconvolution: the full (untrimmed) size of one axis. */
static long long deconv_full(int n, int k, int dil, int stride, int opad)
{
    return (long long)(n - 1) * stride + (long long)dil * (k - 1) + 1 + opad;
}

void tsr__nn_pads(const tsr_nn_layer *L, const tsr_nn_shape *in, int *top, int *bottom, int *left,
                  int *right)
{
    *top = *bottom = *left = *right = 0;
    if (L->type == TSR_NN_CONVOLUTION) {
        conv_axis_pads(L->pad_top, L->pad_top, L->pad_bottom, in->h, L->kernel_h, L->dilation_h,
                       L->stride_h, top, bottom);
        conv_axis_pads(L->pad_left, L->pad_left, L->pad_right, in->w, L->kernel_w, L->dilation_w,
                       L->stride_w, left, right);
    } else if (L->type == TSR_NN_DECONVOLUTION) {
        if (L->pad_left > 0 || L->pad_right > 0 || L->pad_top > 0 || L->pad_bottom > 0) {
            *top = L->pad_top;
            *bottom = L->pad_bottom;
            *left = L->pad_left;
            *right = L->pad_right;
        } else if (L->output_w > 0 && L->output_h > 0 && L->pad_left < 0) {
            long long hc =
                deconv_full(in->h, L->kernel_h, L->dilation_h, L->stride_h, L->output_pad_bottom) -
                L->output_h;
            long long wc =
                deconv_full(in->w, L->kernel_w, L->dilation_w, L->stride_w, L->output_pad_right) -
                L->output_w;
            if (hc < 0 || wc < 0 || hc > INT_MAX || wc > INT_MAX)
                return;
            int upper = L->pad_left == NN_SAME_UPPER;
            *top = (int)(upper ? hc / 2 : hc - hc / 2);
            *bottom = (int)(hc - *top);
            *left = (int)(upper ? wc / 2 : wc - wc / 2);
            *right = (int)(wc - *left);
        }
    }
}

/* Crop: the kept box of in[0] (offsets and sizes in c, h, w; a vector uses c); 0 or an error. */
static tsr_status crop_box(const tsr_nn_layer *L, const tsr_nn_shape *in, int off[3], int size[3],
                           tsr__err *err, int loose)
{
    const tsr_nn_shape *A = &in[0];
    int dims = A->dims;
    long long sz[3] = {A->c, dims == 3 ? A->h : 1, dims == 3 ? A->w : 1};
    long long o[3] = {0, 0, 0}, s[3] = {sz[0], sz[1], sz[2]};
    char a[48], b[48];
    shape_str(A, a, sizeof a);
    if (L->n_in == 2) {
        const tsr_nn_shape *B = &in[1];
        shape_str(B, b, sizeof b);
        if (dims != 3 || B->dims != 3)
            return sfail(err, L, "inputs %s and %s, expected two 3-D blobs (crop to a reference)",
                         a, b);
        o[0] = L->coffset, o[1] = L->hoffset, o[2] = L->woffset;
        s[0] = B->c, s[1] = B->h, s[2] = B->w;
    } else if (L->n_starts) {
        int seen[3] = {0, 0, 0};
        for (int i = 0; i < L->n_starts; i++) {
            int ax = L->n_axes ? L->axes[i] : i;
            if (ax < 0)
                ax += dims;
            if (ax < 0 || ax >= dims || seen[ax])
                return sfail(err, L,
                             "crop axis %d (entry %d) on input %s, expected distinct "
                             "axes 0..%d",
                             L->n_axes ? L->axes[i] : i, i, a, dims - 1);
            seen[ax] = 1;
            int k = dims == 3 ? ax : 0;
            if (loose && k > 0)
                continue; /* sizes are unknown while only channels are followed */
            long long n = sz[k], st = L->starts[i], en = L->ends[i];
            if (st == -233)
                st = 0;
            if (en == -233)
                en = n;
            long long off0 = st >= 0 ? st : n + st;
            long long end = en > 0 ? en : n + en;
            if (end > n)
                end = n;
            if (off0 < 0 || off0 > n)
                return sfail(err, L, "start %d on axis %d of input %s, expected -%lld..%lld",
                             L->starts[i], ax, a, n, n);
            o[k] = off0;
            s[k] = end - off0;
        }
    } else {
        long long offs[3] = {L->coffset, L->hoffset, L->woffset};
        long long offs2[3] = {L->coffset2, L->hoffset2, L->woffset2};
        long long outs[3] = {L->outc, L->outh, L->outw};
        if (dims == 1) { /* a vector's length is w to ncnn */
            offs[0] = L->woffset, offs2[0] = L->woffset2, outs[0] = L->outw;
            offs[1] = offs[2] = offs2[1] = offs2[2] = outs[1] = outs[2] = 0;
        }
        for (int k = 0; k < 3; k++) {
            o[k] = offs[k];
            s[k] = sz[k] - offs[k] - offs2[k];
            if (outs[k] > 0 && outs[k] < s[k])
                s[k] = outs[k];
        }
    }
    static const char *const axis_name[3] = {"channels", "height", "width"};
    for (int k = 0; k < (dims == 3 ? 3 : 1); k++) {
        if (loose && k > 0) {
            o[k] = 0, s[k] = 0;
            continue;
        }
        if (s[k] <= 0 || o[k] < 0 || o[k] + s[k] > sz[k])
            return sfail(err, L,
                         "the crop box (%s offset %lld, size %lld) does not fit input %s, expected "
                         "a non-empty box inside it",
                         axis_name[k], o[k], s[k], a);
    }
    for (int k = 0; k < 3; k++) {
        off[k] = (int)o[k];
        size[k] = (int)s[k];
    }
    if (dims != 3)
        size[1] = size[2] = 1, off[1] = off[2] = 0;
    return TSR_OK;
}

void tsr__nn_crop_offsets(const tsr_nn_layer *L, const tsr_nn_shape *in, int *c, int *y, int *x)
{
    int off[3] = {0, 0, 0}, size[3];
    tsr__err scratch;
    if (crop_box(L, in, off, size, &scratch, 0))
        off[0] = off[1] = off[2] = 0;
    *c = off[0];
    *y = off[1];
    *x = off[2];
}

static int same_shape(const tsr_nn_shape *a, const tsr_nn_shape *b, int loose)
{
    if (a->dims != b->dims || a->c != b->c)
        return 0;
    return loose || (a->h == b->h && a->w == b->w);
}

/* Expand a BinaryOp operand to c, h, w against the other operand (NCNN-FORMAT.md 4). */
static void bin_expand(const tsr_nn_shape *x, const tsr_nn_shape *other, long long d[3])
{
    if (x->dims == 3) {
        d[0] = x->c, d[1] = x->h, d[2] = x->w;
    } else if (other->dims == 3 && x->c == other->c) {
        d[0] = x->c, d[1] = 1, d[2] = 1;
    } else {
        d[0] = 1, d[1] = 1, d[2] = x->c;
    }
}

/* Limits every blob obeys. Loose (load time, channels only): sizes are unknown, kept as 0. */
static tsr_status check_dims(const tsr_nn_layer *L, tsr_nn_shape *s, tsr__err *err, int loose)
{
    char a[48];
    if (loose && s->dims == 3)
        s->h = s->w = 0;
    int sizes_ok = loose ? 1 : s->h >= 1 && s->w >= 1 && s->h <= NN_MAX_DIM && s->w <= NN_MAX_DIM;
    if (s->c < 1 || s->c > NN_MAX_CHANNELS || !sizes_ok) {
        shape_str(s, a, sizeof a);
        return sfail(err, L,
                     "output %s, expected 1..%d channels and sizes 1..%d (the input is too small "
                     "or too large for this layer)",
                     a, NN_MAX_CHANNELS, NN_MAX_DIM);
    }
    return TSR_OK;
}

static tsr_status layer_shape(const tsr_nn_layer *L, const tsr_nn_shape *in, tsr_nn_shape *out,
                              tsr__err *err, int loose)
{
    char a[48], b[48];
    if (!L || !in || !out)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__nn_layer_shape: no layer or shapes");
    for (int i = 0; i < L->n_in; i++)
        if (in[i].dims != 1 && in[i].dims != 3)
            return sfail(err, L, "input %d has no shape, expected a 1-D or 3-D blob", i + 1);
    const tsr_nn_shape *x = &in[0];
    shape_str(x, a, sizeof a);
    int need3 = L->type == TSR_NN_CONVOLUTION || L->type == TSR_NN_DECONVOLUTION ||
                L->type == TSR_NN_PIXELSHUFFLE || L->type == TSR_NN_INTERP ||
                L->type == TSR_NN_POOLING;
    if (need3 && x->dims != 3)
        return sfail(err, L, "input %s, expected a 3-D blob (c x h x w)", a);
    tsr_nn_shape o = *x;
    switch (L->type) {
    case TSR_NN_INPUT:
        return sfail(err, L, "the Input layer has no input, expected the caller's shape");
    case TSR_NN_CONVOLUTION: {
        if (x->c != L->num_input)
            return sfail(err, L, "input %s has %d channels, expected %d (num_input)", a, x->c,
                         L->num_input);
        int pt, pb, pl, pr;
        tsr__nn_pads(L, x, &pt, &pb, &pl, &pr);
        long long hp = (long long)x->h + pt + pb, wp = (long long)x->w + pl + pr;
        long long eh = (long long)L->dilation_h * (L->kernel_h - 1) + 1;
        long long ew = (long long)L->dilation_w * (L->kernel_w - 1) + 1;
        if (!loose && (hp < eh || wp < ew))
            return sfail(err, L,
                         "input %s is %lldx%lld padded, expected at least the kernel "
                         "extent %lldx%lld",
                         a, hp, wp, eh, ew);
        o = map(L->num_output, loose ? 0 : (int)((hp - eh) / L->stride_h + 1),
                loose ? 0 : (int)((wp - ew) / L->stride_w + 1));
        break;
    }
    case TSR_NN_DECONVOLUTION: {
        if (x->c != L->num_input)
            return sfail(err, L, "input %s has %d channels, expected %d (num_input)", a, x->c,
                         L->num_input);
        long long fh =
            deconv_full(x->h, L->kernel_h, L->dilation_h, L->stride_h, L->output_pad_bottom);
        long long fw =
            deconv_full(x->w, L->kernel_w, L->dilation_w, L->stride_w, L->output_pad_right);
        long long oh = fh, ow = fw;
        if (L->pad_left > 0 || L->pad_right > 0 || L->pad_top > 0 || L->pad_bottom > 0) {
            oh = fh - L->pad_top - L->pad_bottom;
            ow = fw - L->pad_left - L->pad_right;
        } else if (L->output_w > 0 && L->output_h > 0) {
            if (!loose && (L->output_h > fh || L->output_w > fw))
                return sfail(err, L,
                             "output_w x output_h %dx%d is larger than the full output %lldx%lld "
                             "for input %s, expected at most that",
                             L->output_w, L->output_h, fw, fh, a);
            oh = L->output_h;
            ow = L->output_w;
        }
        if (!loose && (oh < 1 || ow < 1 || oh > NN_MAX_DIM || ow > NN_MAX_DIM))
            return sfail(err, L, "input %s gives a %lldx%lld output, expected sizes 1..%d", a, oh,
                         ow, NN_MAX_DIM);
        o = map(L->num_output, loose ? 0 : (int)oh, loose ? 0 : (int)ow);
        break;
    }
    case TSR_NN_PRELU:
        if (L->num_slope != 1 && L->num_slope != x->c)
            return sfail(err, L, "input %s has %d channels, expected %d (num_slope) or 1 slope", a,
                         x->c, L->num_slope);
        break;
    case TSR_NN_PIXELSHUFFLE: {
        int r2 = L->upscale_factor * L->upscale_factor;
        if (x->c % r2)
            return sfail(err, L,
                         "input %s has %d channels, expected a multiple of %d (factor %d "
                         "squared)",
                         a, x->c, r2, L->upscale_factor);
        long long oh = (long long)x->h * L->upscale_factor,
                  ow = (long long)x->w * L->upscale_factor;
        if (!loose && (oh > NN_MAX_DIM || ow > NN_MAX_DIM))
            return sfail(err, L, "input %s gives %lldx%lld, expected sizes up to %d", a, oh, ow,
                         NN_MAX_DIM);
        o = map(x->c / r2, (int)oh, (int)ow);
        break;
    }
    case TSR_NN_INTERP: {
        long long oh, ow;
        if (L->interp_out_h && L->interp_out_w) {
            oh = L->interp_out_h;
            ow = L->interp_out_w;
        } else {
            /* ncnn: int * float in float, truncated. */
            oh = (long long)((float)x->h * L->height_scale);
            ow = (long long)((float)x->w * L->width_scale);
        }
        if (!loose && (oh < 1 || ow < 1 || oh > NN_MAX_DIM || ow > NN_MAX_DIM))
            return sfail(err, L, "input %s gives a %lldx%lld output, expected sizes 1..%d", a, oh,
                         ow, NN_MAX_DIM);
        o = map(x->c, loose ? 0 : (int)oh, loose ? 0 : (int)ow);
        break;
    }
    case TSR_NN_BINARYOP: {
        if (L->with_scalar)
            break;
        const tsr_nn_shape *y = &in[1];
        shape_str(y, b, sizeof b);
        if (x->dims == 1 && y->dims == 1) {
            if (x->c != y->c && x->c != 1 && y->c != 1)
                return sfail(err, L, "inputs %s and %s, expected equal lengths or one of 1", a, b);
            o = vec(x->c > y->c ? x->c : y->c);
            break;
        }
        long long dx[3], dy[3], d[3];
        bin_expand(x, y, dx);
        bin_expand(y, x, dy);
        for (int k = 0; k < 3; k++) {
            if (loose && k > 0) {
                d[k] = 0;
                continue;
            }
            if (dx[k] != dy[k] && dx[k] != 1 && dy[k] != 1)
                return sfail(err, L,
                             "inputs %s and %s do not broadcast, expected equal shapes, a "
                             "per-channel vector, or sizes of 1",
                             a, b);
            d[k] = dx[k] > dy[k] ? dx[k] : dy[k];
        }
        o = map((int)d[0], (int)d[1], (int)d[2]);
        break;
    }
    case TSR_NN_ELTWISE:
        for (int i = 1; i < L->n_in; i++)
            if (!same_shape(&in[i], x, loose)) {
                shape_str(&in[i], b, sizeof b);
                return sfail(err, L, "input %d is %s, expected the shape of input 1, %s", i + 1, b,
                             a);
            }
        break;
    case TSR_NN_CONCAT: {
        int axis = L->axis < 0 ? L->axis + x->dims : L->axis;
        if (axis != 0)
            return sfail(err, L, "axis %d of input %s is not channels, expected axis 0", L->axis,
                         a);
        long long c = 0;
        for (int i = 0; i < L->n_in; i++) {
            const tsr_nn_shape *y = &in[i];
            if (y->dims != x->dims || (!loose && y->dims == 3 && (y->h != x->h || y->w != x->w))) {
                shape_str(y, b, sizeof b);
                return sfail(err, L, "input %d is %s, expected the size of input 1, %s", i + 1, b,
                             a);
            }
            c += y->c;
        }
        if (c > NN_MAX_CHANNELS)
            return sfail(err, L, "%lld channels in all, expected at most %d", c, NN_MAX_CHANNELS);
        o.c = (int)c;
        break;
    }
    case TSR_NN_CROP: {
        int off[3], size[3];
        tsr_status rc = crop_box(L, in, off, size, err, loose);
        if (rc)
            return rc;
        o = x->dims == 3 ? map(size[0], size[1], size[2]) : vec(size[0]);
        break;
    }
    case TSR_NN_SPLIT:
        for (int i = 1; i < L->n_out; i++)
            out[i] = *x;
        break;
    case TSR_NN_POOLING: o = vec(x->c); break;
    case TSR_NN_INNERPRODUCT:
        if (!(loose && x->dims == 3) && tsr__nn_count(*x) != (size_t)L->num_input)
            return sfail(err, L, "input %s has %zu values, expected %d (num_input)", a,
                         tsr__nn_count(*x), L->num_input);
        o = vec(L->num_output);
        break;
    case TSR_NN_SCALE:
        if (L->scale_data_size == -233) {
            const tsr_nn_shape *y = &in[1];
            shape_str(y, b, sizeof b);
            if (y->c != x->c || (y->dims == 3 && (y->h != 1 || y->w != 1) && !loose))
                return sfail(err, L, "scale input %s for input %s, expected a vector of %d", b, a,
                             x->c);
        } else if (L->scale_data_size != x->c) {
            return sfail(err, L, "input %s has %d channels, expected %d (scale_data_size)", a, x->c,
                         L->scale_data_size);
        }
        break;
    case TSR_NN_TYPE_COUNT:
        return sfail(err, L, "unknown layer type %d, expected a tsr_nn_type", (int)L->type);
    }
    tsr_status rc = check_dims(L, &o, err, loose);
    if (rc)
        return rc;
    out[0] = o;
    if (L->type == TSR_NN_SPLIT)
        for (int i = 1; i < L->n_out; i++)
            out[i] = o;
    return TSR_OK;
}

tsr_status tsr__nn_layer_shape(const tsr_nn_layer *L, const tsr_nn_shape *in, tsr_nn_shape *out,
                               tsr__err *err)
{
    return layer_shape(L, in, out, err, 0);
}

static tsr_status propagate(const tsr_nn_model *m, int c, int h, int w, tsr_nn_shape *shapes,
                            tsr__err *err, int loose)
{
    int max_in = 1, max_out = 1;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].n_in > max_in)
            max_in = m->layers[i].n_in;
        if (m->layers[i].n_out > max_out)
            max_out = m->layers[i].n_out;
    }
    tsr_nn_shape *in = malloc((size_t)max_in * sizeof *in);
    tsr_nn_shape *out = malloc((size_t)max_out * sizeof *out);
    tsr_status rc = TSR_OK;
    if (!in || !out) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int b = 0; b < m->n_blobs; b++)
        shapes[b] = (tsr_nn_shape){0, 0, 0, 0};
    shapes[m->input_blob] = map(c, h, w);
    for (int li = 0; li < m->n_layers; li++) {
        const tsr_nn_layer *L = &m->layers[li];
        if (L->type == TSR_NN_INPUT)
            continue;
        for (int i = 0; i < L->n_in; i++)
            in[i] = shapes[L->in[i]];
        if ((rc = layer_shape(L, in, out, err, loose))) {
            tsr__err_prefix(err, "%s:%d: ", m->param_path, L->line);
            goto done;
        }
        for (int i = 0; i < L->n_out; i++)
            shapes[L->out[i]] = out[i];
    }
done:
    free(in);
    free(out);
    return rc;
}

tsr_status tsr__nn_shapes(const tsr_nn_model *m, int c, int h, int w, tsr_nn_shape *shapes,
                          tsr__err *err)
{
    if (!m || !shapes)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr__nn_shapes: no model or shape array");
    if (c < 1 || c > NN_MAX_CHANNELS || h < 1 || w < 1 || h > NN_MAX_DIM || w > NN_MAX_DIM)
        return tsr__seterr(err, TSR_ERR_INVALID,
                           "%s: input %dx%dx%d, expected 1..%d channels and sizes 1..%d",
                           m->param_path, c, h, w, NN_MAX_CHANNELS, NN_MAX_DIM);
    return propagate(m, c, h, w, shapes, err, 0);
}
