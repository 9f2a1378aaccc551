/* Node schema as JSON for GUIs and tools: every type with its ports and params, built from the
 * same tables that validate graphs, so the two cannot disagree. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put_n(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n >= b->cap - b->len || !b->p) {
        size_t cap = b->cap ? b->cap : 4096;
        if (n > SIZE_MAX - b->len - 1) {
            b->oom = 1;
            return;
        }
        size_t need = b->len + n + 1;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void put(sbuf *b, const char *s)
{
    put_n(b, s, strlen(s));
}

static void putf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        b->oom = 1; /* only short fixed texts go through here */
    else
        put_n(b, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one: no overlong forms,
 * no surrogates, nothing past U+10FFFF. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    int n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A JSON string. Invalid UTF-8 becomes U+FFFD so the document always parses; U+2028/2029 are
 * escaped because JavaScript string literals cannot hold them raw. */
static void put_str(sbuf *b, const char *s)
{
    if (!s) {
        put(b, "null");
        return;
    }
    put(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put_n(b, e, 2);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\b': put(b, "\\b"); break;
            case '\f': put(b, "\\f"); break;
            case '\n': put(b, "\\n"); break;
            case '\r': put(b, "\\r"); break;
            case '\t': put(b, "\\t"); break;
            default: putf(b, "\\u%04x", c); break;
            }
            p++;
        } else if (c < 0x80) {
            put_n(b, (const char *)p, 1);
            p++;
        } else {
            int n = utf8_len(p);
            if (n == 0) {
                put(b, "\\ufffd");
                p++;
            } else if (n == 3 && p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
                put(b, p[2] == 0xA8 ? "\\u2028" : "\\u2029");
                p += 3;
            } else {
                put_n(b, (const char *)p, (size_t)n);
                p += n;
            }
        }
    }
    put(b, "\"");
}

static void put_num(sbuf *b, double v)
{
    if (!isfinite(v)) {
        put(b, "null"); /* JSON has no infinities */
        return;
    }
    char tmp[64];
    tsr__format_number(tmp, sizeof tmp, v);
    put(b, tmp);
}

const char *tsr__param_type_name(tsr_param_type t)
{
    switch (t) {
    case TSR_PARAM_NUMBER: return "number";
    case TSR_PARAM_INT: return "int";
    case TSR_PARAM_BOOL: return "bool";
    case TSR_PARAM_STRING: return "string";
    case TSR_PARAM_ENUM: return "enum";
    }
    return "unknown";
}

const char *tsr__port_type_name(tsr_port_type t)
{
    switch (t) {
    case TSR_PORT_IMAGE: return "image";
    case TSR_PORT_MODEL: return "model";
    case TSR_PORT_NUMBER: return "number";
    case TSR_PORT_STRING: return "string";
    }
    return "unknown";
}

static void put_ports(sbuf *b, const tsr_port_def *ports, int n)
{
    put(b, "[");
    for (int i = 0; i < n; i++) {
        put(b, i ? ",\n        {\"name\": " : "\n        {\"name\": ");
        put_str(b, ports[i].name);
        put(b, ", \"type\": ");
        put_str(b, tsr__port_type_name(ports[i].type));
        put(b, ", \"doc\": ");
        put_str(b, ports[i].doc);
        put(b, "}");
    }
    put(b, n ? "\n      ]" : "]");
}

/* The default as its JSON type, read through the same parser as graph values. */
static void put_default(sbuf *b, const tsr_node *defaults, const tsr_param_def *d, int i)
{
    if (!d->def) {
        put(b, "null");
        return;
    }
    const tsr_value *v = defaults && defaults->cls ? &defaults->params[i] : NULL;
    if (!v || !v->set) {
        put_str(b, d->def); /* a default the parser rejects: show it as written */
        return;
    }
    switch (d->type) {
    case TSR_PARAM_NUMBER:
    case TSR_PARAM_INT: put_num(b, v->num); break;
    case TSR_PARAM_BOOL: put(b, v->ival ? "true" : "false"); break;
    default: put_str(b, v->str); break;
    }
}

static void put_choices(sbuf *b, const char *choices)
{
    if (!choices) {
        put(b, "null");
        return;
    }
    put(b, "[");
    const char *p = choices;
    for (int first = 1;; first = 0) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)(n < sizeof word ? n : sizeof word - 1), p);
        if (!first)
            put(b, ", ");
        put_str(b, word);
        if (!bar)
            break;
        p = bar + 1;
    }
    put(b, "]");
}

static void put_class(sbuf *b, const tsr_node_class *cls)
{
    tsr_node defaults;
    tsr__err err;
    tsr__err_clear(&err);
    int have_defaults = tsr__node_init(&defaults, cls, NULL, &err) == TSR_OK;

    put(b, "    {\n      \"type\": ");
    put_str(b, cls->name);
    put(b, ",\n      \"doc\": ");
    put_str(b, cls->doc);
    put(b, ",\n      \"kernel\": ");
    put_str(b, cls->kernel);
    putf(b, ",\n      \"source\": %s, \"sink\": %s, \"barrier\": %s",
         cls->flags & TSR_NODE_SOURCE ? "true" : "false",
         cls->flags & TSR_NODE_SINK ? "true" : "false",
         cls->flags & TSR_NODE_BARRIER ? "true" : "false");
    put(b, ",\n      \"inputs\": ");
    put_ports(b, cls->inputs, cls->n_inputs);
    put(b, ",\n      \"outputs\": ");
    put_ports(b, cls->outputs, cls->n_outputs);
    put(b, ",\n      \"params\": [");
    for (int i = 0; i < cls->n_params; i++) {
        const tsr_param_def *d = &cls->params[i];
        int ranged = (d->type == TSR_PARAM_NUMBER || d->type == TSR_PARAM_INT) && d->min <= d->max;
        put(b, i ? ",\n        {\"name\": " : "\n        {\"name\": ");
        put_str(b, d->name);
        put(b, ", \"type\": ");
        put_str(b, tsr__param_type_name(d->type));
        putf(b, ", \"required\": %s, \"optional\": %s, \"default\": ",
             d->flags & TSR_PARAM_REQUIRED ? "true" : "false",
             d->flags & TSR_PARAM_OPTIONAL ? "true" : "false");
        put_default(b, have_defaults ? &defaults : NULL, d, i);
        put(b, ", \"min\": ");
        if (ranged)
            put_num(b, d->min);
        else
            put(b, "null");
        put(b, ", \"max\": ");
        if (ranged)
            put_num(b, d->max);
        else
            put(b, "null");
        put(b, ", \"choices\": ");
        put_choices(b, d->type == TSR_PARAM_ENUM ? d->choices : NULL);
        put(b, ", \"doc\": ");
        put_str(b, d->doc);
        put(b, "}");
    }
    put(b, cls->n_params ? "\n      ]\n    }" : "]\n    }");
    if (have_defaults)
        tsr__node_clear(&defaults);
}

char *tsr__nodes_json_of(const tsr_node_class *const *classes, int n)
{
    sbuf b = {NULL, 0, 0, 0};
    put(&b, "{\n  \"tessera\": ");
    put_str(&b, TSR_VERSION);
    put(&b, ",\n  \"nodes\": [");
    for (int i = 0; i < n; i++) {
        put(&b, i ? ",\n" : "\n");
        put_class(&b, classes[i]);
    }
    put(&b, n ? "\n  ]\n}\n" : "]\n}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *tsr_nodes_json(void)
{
    return tsr__nodes_json_of(tsr__node_classes, tsr__node_class_count);
}
