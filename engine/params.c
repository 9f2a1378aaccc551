/* Node parameters: parsing scalar text per tsr_param_def, defaults, free-standing nodes and the
 * positioned messages every node error goes through. */
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Values are echoed in messages; a pasted megabyte must not push every other error out of the
 * message buffer. */
#define SHOW_MAX 60

static void show_text(char *buf, size_t len, const char *text)
{
    size_t n = strlen(text);
    if (n <= SHOW_MAX)
        snprintf(buf, len, "%s", text);
    else
        snprintf(buf, len, "%.*s...", SHOW_MAX, text);
}

static tsr_status vnode_error(tsr__err *err, const tsr_node *n, tsr_pos pos, int param,
                              const char *fmt, va_list ap)
{
    char text[2048];
    tsr__vformat_short(text, sizeof text, fmt, ap);
    const char *id = n->id ? n->id : "?";
    int had = err && err->count > 0;
    if (!had && err)
        err->node[0] = 0; /* a fresh message: its place is this node's */
    tsr__err_where(err, id,
                   n->cls && param >= 0 && param < n->cls->n_params ? n->cls->params[param].name
                                                                     : NULL,
                   n->file, pos.line, pos.col);
    if (pos.line > 0)
        return tsr__adderr(err, TSR_ERR_GRAPH, "%s:%d:%d: error: node '%s': %s",
                           n->file ? n->file : "<graph>", pos.line, pos.col, id, text);
    /* Line 0 inside a graph means the value came from an override, not from the file. */
    if (n->file && param >= 0 && n->cls && param < n->cls->n_params)
        return tsr__adderr(err, TSR_ERR_GRAPH, "--set %s.%s: error: node '%s': %s", id,
                           n->cls->params[param].name, id, text);
    if (n->file)
        return tsr__adderr(err, TSR_ERR_GRAPH, "%s: error: node '%s': %s", n->file, id, text);
    return tsr__adderr(err, TSR_ERR_GRAPH, "error: node '%s': %s", id, text);
}

tsr_status tsr__node_error(tsr__err *err, const tsr_node *n, int param, const char *fmt, ...)
{
    tsr_pos pos = param >= 0 && param < TSR_MAX_PARAMS ? n->param_pos[param] : n->pos;
    va_list ap;
    va_start(ap, fmt);
    tsr_status rc = vnode_error(err, n, pos, param, fmt, ap);
    va_end(ap);
    return rc;
}

tsr_status tsr__node_reanchor(tsr__err *err, const tsr_node *n, int param, tsr_status rc)
{
    char inner[sizeof err->msg];
    snprintf(inner, sizeof inner, "%s", err->msg);
    tsr__err_clear(err); /* tsr__node_error appends: the positioned line replaces the message */
    tsr__node_error(err, n, param, "%s", inner);
    return rc;
}

static tsr_status param_error(tsr__err *err, const tsr_node *n, int param, tsr_pos pos,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static tsr_status param_error(tsr__err *err, const tsr_node *n, int param, tsr_pos pos,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsr_status rc = vnode_error(err, n, pos, param, fmt, ap);
    va_end(ap);
    return rc;
}

int tsr__param_index(const tsr_node_class *cls, const char *name)
{
    for (int i = 0; cls && name && i < cls->n_params; i++)
        if (strcmp(cls->params[i].name, name) == 0)
            return i;
    return -1;
}

/* Decimal number syntax only: strtod alone would also take hex, "inf", "nan" and leading
 * blanks, none of which a graph author means as a number. */
static int is_decimal(const char *s)
{
    int digits = 0;
    if (*s == '+' || *s == '-')
        s++;
    while (*s >= '0' && *s <= '9')
        s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9')
            s++, digits++;
    }
    if (!digits)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == 0;
}

/* strtod follows LC_NUMERIC; a GUI running in a locale with a decimal comma must still read
 * "1.5" from a graph file, so the '.' is swapped for the locale's point before converting. */
static int parse_decimal(const char *s, double *out)
{
    if (!is_decimal(s))
        return 0;
    const char *point = localeconv()->decimal_point;
    size_t plen = point && *point ? strlen(point) : 1;
    size_t n = strlen(s);
    char small[128];
    char *buf = small;
    size_t need;
    if (!tsr__mul_size(n + 1, plen, &need))
        return 0;
    if (need > sizeof small) {
        buf = malloc(need);
        if (!buf)
            return -1;
    }
    char *w = buf;
    for (const char *p = s; *p; p++) {
        if (*p == '.' && point && *point) {
            memcpy(w, point, plen);
            w += plen;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    char *end = NULL;
    double v = strtod(buf, &end);
    int ok = end && *end == 0;
    if (buf != small)
        free(buf);
    if (!ok)
        return 0;
    *out = v;
    return 1;
}

/* A number as users write it, in the C locale's spelling, for messages, help and JSON: an
 * integer up to 2^53 in plain digits (1048576, never 1.04858e+06), anything else in the shortest
 * of %.15g and %.17g that reads back as the same double. */
void tsr__format_number(char *buf, size_t len, double v)
{
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
        snprintf(buf, len, "%.0f", v);
        return;
    }
    snprintf(buf, len, "%.15g", v);
    double back = 0;
    if (parse_decimal(buf, &back) == 1 && back != v)
        snprintf(buf, len, "%.17g", v);
    const char *point = localeconv()->decimal_point;
    if (!point || !*point || strcmp(point, ".") == 0)
        return;
    char *p = strstr(buf, point);
    if (p) {
        size_t plen = strlen(point);
        *p = '.';
        memmove(p + 1, p + plen, strlen(p + plen) + 1);
    }
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 1;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 1;
    }
    return 0;
}

/* Index of `s` among the '|'-separated words of `choices`, or -1. */
static int enum_index(const char *choices, const char *s)
{
    size_t n = strlen(s);
    int i = 0;
    for (const char *p = choices; p && *p; i++) {
        const char *bar = strchr(p, '|');
        size_t wl = bar ? (size_t)(bar - p) : strlen(p);
        if (wl == n && strncmp(p, s, n) == 0)
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static const char *type_noun(tsr_param_type t)
{
    switch (t) {
    case TSR_PARAM_NUMBER: return "a number";
    case TSR_PARAM_INT: return "an integer";
    case TSR_PARAM_BOOL: return "a boolean (true/false, yes/no, on/off, 1/0)";
    case TSR_PARAM_STRING: return "a string";
    case TSR_PARAM_ENUM: return "one of the listed words";
    }
    return "a value";
}

/* " in [lo, hi]" when the param has a range, else "". */
static void range_text(const tsr_param_def *d, char *buf, size_t len)
{
    buf[0] = 0;
    if (d->min <= d->max) {
        char lo[40], hi[40];
        tsr__format_number(lo, sizeof lo, d->min);
        tsr__format_number(hi, sizeof hi, d->max);
        snprintf(buf, len, "[%s, %s]", lo, hi);
    }
}

static void choices_text(const char *choices, char *buf, size_t len)
{
    size_t k = 0;
    for (const char *p = choices ? choices : ""; *p && k + 3 < len; p++) {
        if (*p == '|') {
            buf[k++] = ',';
            buf[k++] = ' ';
        } else {
            buf[k++] = *p;
        }
    }
    buf[k] = 0;
}

tsr_status tsr__param_set(tsr_node *n, int i, const char *value, tsr_pos pos, tsr__err *err)
{
    if (!n || !n->cls || i < 0 || i >= n->cls->n_params || i >= TSR_MAX_PARAMS || !value)
        return tsr__seterr(err, TSR_ERR_INTERNAL, "tsr__param_set: bad arguments");
    const tsr_param_def *d = &n->cls->params[i];
    tsr_value v = {1, 0, 0, NULL};
    char shown[SHOW_MAX + 8], range[100];
    show_text(shown, sizeof shown, value);
    range_text(d, range, sizeof range);

    switch (d->type) {
    case TSR_PARAM_NUMBER:
    case TSR_PARAM_INT: {
        int ok = parse_decimal(value, &v.num);
        if (ok < 0)
            return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory reading param '%s'", d->name);
        if (!ok)
            return param_error(err, n, i, pos,
                               "param '%s' = '%s' is not a number (expected %s%s%s)", d->name,
                               shown, type_noun(d->type), *range ? " in " : "", range);
        if (!isfinite(v.num))
            return param_error(err, n, i, pos, "param '%s' = %s is not a finite number", d->name,
                               shown);
        if (d->type == TSR_PARAM_INT && v.num != floor(v.num))
            return param_error(err, n, i, pos, "param '%s' = %s is not an integer", d->name, shown);
        if (d->min <= d->max && (v.num < d->min || v.num > d->max))
            return param_error(err, n, i, pos, "param '%s' = %s is out of range %s", d->name, shown,
                               range);
        if (d->type == TSR_PARAM_INT && (v.num < INT_MIN || v.num > INT_MAX))
            return param_error(err, n, i, pos, "param '%s' = %s is out of range [%d, %d]", d->name,
                               shown, INT_MIN, INT_MAX);
        if (d->type == TSR_PARAM_INT)
            v.ival = (int)v.num;
        if (v.num == 0)
            v.num = 0; /* -0 would print as "-0" in messages and JSON */
        break;
    }
    case TSR_PARAM_BOOL:
        if (!parse_bool(value, &v.ival))
            return param_error(err, n, i, pos, "param '%s' = '%s' is not %s", d->name, shown,
                               type_noun(d->type));
        v.num = v.ival;
        break;
    case TSR_PARAM_ENUM: {
        v.ival = enum_index(d->choices, value);
        if (v.ival < 0) {
            char list[512];
            choices_text(d->choices, list, sizeof list);
            return param_error(err, n, i, pos, "param '%s' = '%s' is not one of: %s", d->name,
                               shown, list);
        }
        v.num = v.ival;
        v.str = strdup(value);
        if (!v.str)
            return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory reading param '%s'", d->name);
        break;
    }
    case TSR_PARAM_STRING:
        v.str = strdup(value);
        if (!v.str)
            return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory reading param '%s'", d->name);
        break;
    default:
        return tsr__seterr(err, TSR_ERR_INTERNAL, "param '%s' has an unknown type %d", d->name,
                           (int)d->type);
    }
    free(n->params[i].str);
    n->params[i] = v;
    n->param_pos[i] = pos;
    return TSR_OK;
}

void tsr__node_clear(tsr_node *n)
{
    if (!n)
        return;
    for (int i = 0; i < TSR_MAX_PARAMS; i++)
        free(n->params[i].str);
    free(n->id);
    tsr_image_free(n->bound);
    tsr__bound_px_free(n->px);
    memset(n, 0, sizeof *n);
}

tsr_status tsr__node_init(tsr_node *n, const tsr_node_class *cls, const char *id, tsr__err *err)
{
    memset(n, 0, sizeof *n);
    if (!cls || cls->n_params > TSR_MAX_PARAMS || cls->n_inputs > TSR_MAX_PORTS ||
        cls->n_outputs > TSR_MAX_PORTS)
        return tsr__seterr(err, TSR_ERR_INTERNAL, "node class '%s' exceeds the engine's limits",
                           cls ? cls->name : "(null)");
    n->cls = cls;
    n->id = strdup(id ? id : cls->name);
    if (!n->id)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory creating node '%s'", id);
    tsr_status rc = TSR_OK;
    for (int i = 0; i < cls->n_params; i++) {
        if (!cls->params[i].def)
            continue;
        /* A default that fails its own checks is a bug in the node file, not in the graph. */
        rc = tsr__param_set(n, i, cls->params[i].def, n->pos, err);
        if (rc == TSR_ERR_GRAPH)
            rc = tsr__adderr(err, TSR_ERR_INTERNAL, "node type '%s': bad default for param '%s'",
                             cls->name, cls->params[i].name);
        if (rc)
            goto fail;
    }
    return TSR_OK;
fail:
    tsr__node_clear(n);
    return rc;
}

tsr_status tsr__node_make(const char *type, const char *const *kv, int n_kv, tsr_node **out,
                          tsr__err *err)
{
    *out = NULL;
    const tsr_node_class *cls = type ? tsr__node_class_find(type) : NULL;
    if (!cls)
        return tsr__seterr(err, TSR_ERR_GRAPH, "unknown node type '%s'", type ? type : "(null)");
    tsr_node *n = calloc(1, sizeof *n);
    if (!n)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory creating node '%s'", type);
    tsr_status rc = tsr__node_init(n, cls, NULL, err);
    if (rc) {
        free(n);
        return rc;
    }
    unsigned given = 0;
    for (int k = 0; k < n_kv; k++) {
        const char *eq = strchr(kv[k], '=');
        char name[64];
        if (!eq || (size_t)(eq - kv[k]) >= sizeof name) {
            rc = tsr__node_error(err, n, -1, "expected 'param=value', got '%s'", kv[k]);
            continue;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - kv[k]), kv[k]);
        int i = tsr__param_index(cls, name);
        if (i < 0) {
            rc = tsr__node_error(err, n, -1, "unknown param '%s'", name);
            continue;
        }
        tsr_status r = tsr__param_set(n, i, eq + 1, (tsr_pos){0, 0}, err);
        if (r == TSR_ERR_GRAPH)
            rc = r;
        else if (r)
            goto fail;
        else
            given |= 1u << i;
    }
    for (int i = 0; i < cls->n_params; i++)
        if ((cls->params[i].flags & TSR_PARAM_REQUIRED) && !(given & (1u << i)))
            rc = tsr__node_error(err, n, -1, "missing required param '%s'", cls->params[i].name);
    if (!rc && cls->check)
        rc = cls->check(n, err);
    if (rc)
        goto fail;
    *out = n;
    return TSR_OK;
fail:
    tsr__node_free(n);
    return rc;
}

void tsr__node_free(tsr_node *n)
{
    tsr__node_clear(n);
    free(n);
}
