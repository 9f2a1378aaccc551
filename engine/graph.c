/* Graph files: YAML read with libyaml's document API into a tsr_graph, then checked as a whole
 * (connections, port types, cycles, an output node) and put in execution order. Every error is
 * collected, one line each, "file:line:col: error: text", so that one run shows them all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "internal.h"

/* A graph is written by hand or by a GUI; far more nodes than this means a broken or hostile
 * file, and the per-node records would cost gigabytes before anything else is checked. */
#define MAX_NODES 65536

/* ---- small helpers -------------------------------------------------------------------------- */

static tsr_pos pos_of(const yaml_node_t *nd)
{
    return (tsr_pos){(int)nd->start_mark.line + 1, (int)nd->start_mark.column + 1};
}

static const char *kind_name(const yaml_node_t *nd)
{
    switch (nd->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static const char *scalar(const yaml_node_t *nd)
{
    return nd && nd->type == YAML_SCALAR_NODE ? (const char *)nd->data.scalar.value : NULL;
}

/* A plain (unquoted) empty, "~" or "null" scalar is YAML's null: `path:` with nothing after. */
static int is_null(const yaml_node_t *nd)
{
    if (!nd || nd->type != YAML_SCALAR_NODE || nd->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(nd);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Text of a scalar as shown in messages: long values are cut so that one bad value cannot push
 * the other errors out of the message buffer. */
static const char *shown(const char *s, char *buf, size_t len)
{
    if (strlen(s) + 1 <= len)
        return s;
    snprintf(buf, len, "%.*s...", (int)(len > 4 ? len - 4 : 0), s);
    return buf;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Suggestion state: feed candidates, then read `best` (NULL when nothing is close). */
typedef struct suggest {
    const char *typed;
    const char *best;
    int dist;
} suggest;

static void suggest_init(suggest *s, const char *typed)
{
    s->typed = typed;
    s->best = NULL;
    size_t n = strlen(typed);
    /* Close enough to be a typo, not so loose that unrelated words are offered. */
    s->dist = (n <= 3 ? 1 : n <= 8 ? 2 : 3) + 1;
}

static void suggest_add(suggest *s, const char *cand)
{
    int d = edit_distance(s->typed, cand);
    if (d > 0 && d < s->dist) {
        s->dist = d;
        s->best = cand;
    }
}

/* " (did you mean 'x'?)" or "". */
static const char *suggest_text(const suggest *s, char *buf, size_t len)
{
    if (!s->best)
        return "";
    snprintf(buf, len, " (did you mean '%s'?)", s->best);
    return buf;
}

static int valid_id(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static const char *param_type_name(tsr_param_type t)
{
    switch (t) {
    case TSR_PARAM_NUMBER: return "a number";
    case TSR_PARAM_INT: return "an integer";
    case TSR_PARAM_BOOL: return "a boolean";
    case TSR_PARAM_STRING: return "a string";
    case TSR_PARAM_ENUM: return "one of its choices";
    }
    return "a value";
}

/* "a, b, c" from names picked out of a table; "" when there are none. */
static void name_list(char *buf, size_t len, const void *table, size_t stride, int n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < len; i++) {
        const char *name = *(const char *const *)((const char *)table + (size_t)i * stride);
        int w = snprintf(buf + k, len - k, "%s%s", i ? ", " : "", name);
        if (w < 0)
            break;
        k += (size_t)w;
    }
}

/* ---- node id lookup --------------------------------------------------------------------------
 * Open addressing over node indices; linear in the number of nodes so that a large generated
 * graph does not turn duplicate detection and reference resolution quadratic. */
typedef struct id_table {
    int *slot; /* node index + 1; 0 = empty */
    size_t mask;
} id_table;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int ids_init(id_table *t, int n)
{
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap *= 2;
    t->slot = calloc(cap, sizeof *t->slot);
    t->mask = cap - 1;
    return t->slot != NULL;
}

/* Index of the node named `id`, or -1. */
static int ids_find(const id_table *t, const tsr_node *nodes, const char *id)
{
    for (size_t h = fnv1a(id) & t->mask;; h = (h + 1) & t->mask) {
        if (!t->slot[h])
            return -1;
        if (strcmp(nodes[t->slot[h] - 1].id, id) == 0)
            return t->slot[h] - 1;
    }
}

static void ids_add(id_table *t, const tsr_node *nodes, int idx)
{
    size_t h = fnv1a(nodes[idx].id) & t->mask;
    while (t->slot[h])
        h = (h + 1) & t->mask;
    t->slot[h] = idx + 1;
}

/* ---- parsing --------------------------------------------------------------------------------- */

/* What the reader knows about a node beyond tsr_node, so that validation does not pile a second
 * error on a part that already has one. */
typedef struct node_extra {
    int skip_inputs;                       /* the inputs section itself was broken */
    const yaml_node_t *ref[TSR_MAX_PORTS]; /* reference text per input port, as written */
} node_extra;

typedef struct parse_ctx {
    const char *file;
    yaml_document_t *doc;
    tsr__err *err;
    tsr_status fatal; /* NOMEM or INTERNAL: stop, the message says why */
    tsr_graph *g;
    node_extra *extra;
    id_table ids;
    tsr_pos nodes_pos;
    int unknown_types; /* nodes without a class: "no output node" could be a consequence */
} parse_ctx;

static void at(parse_ctx *c, tsr_pos p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void at(parse_ctx *c, tsr_pos p, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    tsr__vformat_short(text, sizeof text, fmt, ap);
    va_end(ap);
    tsr__adderr(c->err, TSR_ERR_GRAPH, "%s:%d:%d: error: %s", c->file, p.line, p.col, text);
}

static void node_at(tsr__err *err, const tsr_node *n, tsr_pos p, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void node_at(tsr__err *err, const tsr_node *n, tsr_pos p, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    tsr__vformat_short(text, sizeof text, fmt, ap);
    va_end(ap);
    tsr__adderr(err, TSR_ERR_GRAPH, "%s:%d:%d: error: node '%s': %s", n->file ? n->file : "<graph>",
                p.line, p.col, n->id, text);
}

static yaml_node_t *get(parse_ctx *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

static void report_yaml_error(parse_ctx *c, const yaml_parser_t *p, const char *text, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR) {
        c->fatal = tsr__seterr(c->err, TSR_ERR_NOMEM, "%s: out of memory reading YAML", c->file);
        return;
    }
    tsr_pos pos = {(int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1};
    if (p->error == YAML_READER_ERROR) {
        /* The reader (encoding) stage reports a byte offset, not a mark. */
        pos = (tsr_pos){1, 1};
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n')
                pos.line++, pos.col = 1;
            else if (((unsigned char)text[i] & 0xC0) != 0x80)
                pos.col++;
        }
        if (p->problem_value >= 0)
            at(c, pos, "invalid YAML: %s (byte 0x%02X)", p->problem ? p->problem : "bad input",
               (unsigned)p->problem_value & 0xFFu);
        else
            at(c, pos, "invalid YAML: %s", p->problem ? p->problem : "bad input");
        return;
    }
    if (p->context)
        at(c, pos, "invalid YAML: %s %s (started at line %d, column %d)",
           p->problem ? p->problem : "syntax error", p->context, (int)p->context_mark.line + 1,
           (int)p->context_mark.column + 1);
    else
        at(c, pos, "invalid YAML: %s", p->problem ? p->problem : "syntax error");
}

/* The value of a key, the key name and its node, for each pair of a mapping. */
#define FOR_PAIRS(c, map, pair)                                                                    \
    for (yaml_node_pair_t *pair = (map)->data.mapping.pairs.start;                                 \
         pair < (map)->data.mapping.pairs.top; pair++)

/* Key of a pair as text, or NULL after reporting a non-scalar key. */
static const char *key_text(parse_ctx *c, const yaml_node_pair_t *pair, const char *where)
{
    const yaml_node_t *k = get(c, pair->key);
    if (!k)
        return NULL;
    if (k->type != YAML_SCALAR_NODE) {
        at(c, pos_of(k), "%s: keys must be plain words, found %s", where, kind_name(k));
        return NULL;
    }
    return scalar(k);
}

static void parse_params(parse_ctx *c, tsr_node *n, const yaml_node_t *map)
{
    const tsr_node_class *cls = n->cls;
    unsigned given = 0;
    tsr_pos first[TSR_MAX_PARAMS];
    char buf[80], sbuf[80];
    if (map && !is_null(map) && map->type != YAML_MAPPING_NODE) {
        node_at(c->err, n, pos_of(map), "'params' must be a mapping of name: value, found %s",
                kind_name(map));
        map = NULL;
    }
    if (map && map->type == YAML_MAPPING_NODE) {
        FOR_PAIRS(c, map, pair)
        {
            const char *name = key_text(c, pair, "params");
            const yaml_node_t *k = get(c, pair->key), *v = get(c, pair->value);
            if (!name || !v)
                continue;
            int i = tsr__param_index(cls, name);
            if (i < 0) {
                char list[512];
                suggest s;
                suggest_init(&s, name);
                for (int j = 0; j < cls->n_params; j++)
                    suggest_add(&s, cls->params[j].name);
                name_list(list, sizeof list, cls->params, sizeof *cls->params, cls->n_params);
                if (s.best)
                    node_at(c->err, n, pos_of(k), "unknown param '%s'%s", shown(name, buf, 64),
                            suggest_text(&s, sbuf, sizeof sbuf));
                else if (cls->n_params)
                    node_at(c->err, n, pos_of(k), "unknown param '%s' (%s takes: %s)",
                            shown(name, buf, 64), cls->name, list);
                else
                    node_at(c->err, n, pos_of(k), "unknown param '%s' (%s takes no params)",
                            shown(name, buf, 64), cls->name);
                continue;
            }
            if (given & (1u << i)) {
                node_at(c->err, n, pos_of(k),
                        "param '%s' is given twice (first at line %d, "
                        "column %d)",
                        name, first[i].line, first[i].col);
                continue;
            }
            given |= 1u << i;
            first[i] = pos_of(k);
            if (v->type != YAML_SCALAR_NODE) {
                node_at(c->err, n, pos_of(v), "param '%s' must be a single value (%s), found %s",
                        name, param_type_name(cls->params[i].type), kind_name(v));
                continue;
            }
            if (is_null(v)) {
                node_at(c->err, n, pos_of(v), "param '%s' has no value (expected %s)", name,
                        param_type_name(cls->params[i].type));
                continue;
            }
            tsr_status rc = tsr__param_set(n, i, scalar(v), pos_of(v), c->err);
            if (rc && rc != TSR_ERR_GRAPH) {
                c->fatal = rc;
                return;
            }
        }
    }
    for (int i = 0; i < cls->n_params; i++)
        if ((cls->params[i].flags & TSR_PARAM_REQUIRED) && !(given & (1u << i)))
            tsr__node_error(c->err, n, -1, "missing required param '%s' (%s%s%s)",
                            cls->params[i].name, param_type_name(cls->params[i].type),
                            cls->params[i].doc ? ": " : "",
                            cls->params[i].doc ? cls->params[i].doc : "");
}

static void parse_inputs(parse_ctx *c, int idx, const yaml_node_t *map)
{
    tsr_node *n = &c->g->nodes[idx];
    node_extra *x = &c->extra[idx];
    const tsr_node_class *cls = n->cls;
    char buf[80], sbuf[80];
    if (!map || is_null(map))
        return;
    if (map->type != YAML_MAPPING_NODE) {
        node_at(c->err, n, pos_of(map), "'inputs' must be a mapping of port: node.port, found %s",
                kind_name(map));
        x->skip_inputs = 1;
        return;
    }
    FOR_PAIRS(c, map, pair)
    {
        const char *name = key_text(c, pair, "inputs");
        const yaml_node_t *k = get(c, pair->key), *v = get(c, pair->value);
        if (!name || !v) {
            x->skip_inputs = 1;
            continue;
        }
        int p = -1;
        for (int j = 0; j < cls->n_inputs; j++)
            if (strcmp(cls->inputs[j].name, name) == 0)
                p = j;
        if (p < 0) {
            char list[256];
            suggest s;
            suggest_init(&s, name);
            for (int j = 0; j < cls->n_inputs; j++)
                suggest_add(&s, cls->inputs[j].name);
            name_list(list, sizeof list, cls->inputs, sizeof *cls->inputs, cls->n_inputs);
            if (s.best)
                node_at(c->err, n, pos_of(k), "unknown input '%s'%s", shown(name, buf, 64),
                        suggest_text(&s, sbuf, sizeof sbuf));
            else if (cls->n_inputs)
                node_at(c->err, n, pos_of(k), "unknown input '%s' (%s has inputs: %s)",
                        shown(name, buf, 64), cls->name, list);
            else
                node_at(c->err, n, pos_of(k), "unknown input '%s' (%s has no inputs)",
                        shown(name, buf, 64), cls->name);
            x->skip_inputs = 1; /* probably a misspelt port: "missing input" would repeat it */
            continue;
        }
        if (x->ref[p]) {
            tsr_pos f = pos_of(x->ref[p]);
            node_at(c->err, n, pos_of(k), "input '%s' is connected twice (first at line %d)", name,
                    f.line);
            continue;
        }
        n->inputs[p].pos = pos_of(v);
        if (v->type != YAML_SCALAR_NODE || is_null(v)) {
            node_at(c->err, n, pos_of(v), "input '%s' must be a reference 'node.port', found %s",
                    name, is_null(v) ? "nothing" : kind_name(v));
            x->skip_inputs = 1;
            continue;
        }
        x->ref[p] = v;
    }
}

/* Turn the "node.port" texts into indices, now that every id is known. */
static void resolve_inputs(parse_ctx *c, int idx)
{
    tsr_node *n = &c->g->nodes[idx];
    node_extra *x = &c->extra[idx];
    char buf[80], sbuf[120];
    for (int p = 0; n->cls && p < n->cls->n_inputs; p++) {
        if (!x->ref[p])
            continue;
        const char *port_name = n->cls->inputs[p].name;
        const char *text = scalar(x->ref[p]);
        tsr_pos pos = n->inputs[p].pos;
        const char *dot = strchr(text, '.');
        if (!dot || dot == text || !dot[1]) {
            int src = dot ? -1 : ids_find(&c->ids, c->g->nodes, text);
            const tsr_node *s = src >= 0 ? &c->g->nodes[src] : NULL;
            if (s && s->cls && s->cls->n_outputs == 1)
                snprintf(sbuf, sizeof sbuf, " (did you mean '%s.%s'?)", s->id,
                         s->cls->outputs[0].name);
            else
                sbuf[0] = 0;
            node_at(c->err, n, pos, "input '%s' = '%s' is not a reference: expected 'node.port'%s",
                    port_name, shown(text, buf, 64), sbuf);
            continue;
        }
        char id[256];
        if ((size_t)(dot - text) >= sizeof id) {
            node_at(c->err, n, pos, "input '%s' references unknown node '%.60s...'", port_name,
                    text);
            continue;
        }
        snprintf(id, sizeof id, "%.*s", (int)(dot - text), text);
        int src = ids_find(&c->ids, c->g->nodes, id);
        if (src < 0) {
            suggest s;
            suggest_init(&s, id);
            for (int j = 0; j < c->g->n_nodes && j < 4096; j++)
                suggest_add(&s, c->g->nodes[j].id);
            node_at(c->err, n, pos, "input '%s' references unknown node '%s'%s", port_name,
                    shown(id, buf, 64), suggest_text(&s, sbuf, sizeof sbuf));
            continue;
        }
        const tsr_node *s = &c->g->nodes[src];
        if (!s->cls)
            continue; /* its type is already reported as unknown */
        const char *port = dot + 1;
        int op = -1;
        for (int j = 0; j < s->cls->n_outputs; j++)
            if (strcmp(s->cls->outputs[j].name, port) == 0)
                op = j;
        if (op < 0) {
            char list[256];
            name_list(list, sizeof list, s->cls->outputs, sizeof *s->cls->outputs,
                      s->cls->n_outputs);
            if (s->cls->n_outputs)
                node_at(c->err, n, pos,
                        "input '%s' references unknown port '%s' of node '%s' (%s outputs: %s)",
                        port_name, shown(port, buf, 64), s->id, s->cls->name, list);
            else
                node_at(c->err, n, pos,
                        "input '%s' references port '%s' of node '%s', but %s has no outputs",
                        port_name, shown(port, buf, 64), s->id, s->cls->name);
            continue;
        }
        n->inputs[p].connected = 1;
        n->inputs[p].node = src;
        n->inputs[p].port = op;
    }
}

/* One entry of `nodes:`; adds a node to c->g for every scalar key so that references to a node
 * whose body is broken do not also come out as "unknown node". */
static void parse_node(parse_ctx *c, const yaml_node_pair_t *pair)
{
    char buf[80], sbuf[80];
    const char *id = key_text(c, pair, "nodes");
    const yaml_node_t *k = get(c, pair->key), *body = get(c, pair->value);
    if (!id || !body)
        return;
    tsr_graph *g = c->g;
    int idx = g->n_nodes;
    tsr_node *n = &g->nodes[idx];
    const yaml_node_t *type = NULL, *inputs = NULL, *params = NULL;
    tsr_pos kpos = pos_of(k);

    if (!valid_id(id))
        at(c, kpos,
           "invalid node id '%s': use letters, digits, '_' and '-', starting with a "
           "letter or '_'",
           shown(id, buf, 64));
    int dup = ids_find(&c->ids, g->nodes, id);
    if (dup >= 0)
        at(c, kpos, "duplicate node id '%s' (first defined at line %d, column %d)",
           shown(id, buf, 64), g->nodes[dup].pos.line, g->nodes[dup].pos.col);

    if (body->type == YAML_MAPPING_NODE) {
        FOR_PAIRS(c, body, np)
        {
            const char *key = key_text(c, np, "node");
            const yaml_node_t *nk = get(c, np->key), *nv = get(c, np->value);
            if (!key || !nv)
                continue;
            const yaml_node_t **slot = !strcmp(key, "type")     ? &type
                                       : !strcmp(key, "inputs") ? &inputs
                                       : !strcmp(key, "params") ? &params
                                                                : NULL;
            if (!slot) {
                suggest s;
                suggest_init(&s, key);
                suggest_add(&s, "type");
                suggest_add(&s, "inputs");
                suggest_add(&s, "params");
                at(c, pos_of(nk), "node '%s': unknown key '%s'%s", id, shown(key, buf, 64),
                   s.best ? suggest_text(&s, sbuf, sizeof sbuf)
                          : " (a node has type, inputs and params)");
            } else if (*slot) {
                at(c, pos_of(nk), "node '%s': key '%s' is given twice", id, key);
            } else {
                *slot = nv;
            }
        }
    } else {
        at(c, pos_of(body), "node '%s' must be a mapping with a 'type', found %s", id,
           is_null(body) ? "nothing" : kind_name(body));
    }

    const tsr_node_class *cls = NULL;
    if (type && (type->type != YAML_SCALAR_NODE || is_null(type))) {
        at(c, pos_of(type), "node '%s': 'type' must be a node type name, found %s", id,
           is_null(type) ? "nothing" : kind_name(type));
    } else if (type) {
        cls = tsr__node_class_find(scalar(type));
        if (!cls) {
            suggest s;
            suggest_init(&s, scalar(type));
            for (int i = 0; i < tsr__node_class_count; i++)
                suggest_add(&s, tsr__node_classes[i]->name);
            at(c, pos_of(type), "node '%s': unknown node type '%s'%s", id,
               shown(scalar(type), buf, 64), suggest_text(&s, sbuf, sizeof sbuf));
        }
    } else if (body->type == YAML_MAPPING_NODE) {
        at(c, kpos, "node '%s': missing 'type'", id);
    }

    if (cls) {
        tsr_status rc = tsr__node_init(n, cls, id, c->err);
        if (rc) {
            c->fatal = rc;
            return;
        }
    } else {
        memset(n, 0, sizeof *n);
        n->id = strdup(id);
        if (!n->id) {
            c->fatal = tsr__seterr(c->err, TSR_ERR_NOMEM, "out of memory reading the graph");
            return;
        }
        c->unknown_types++;
    }
    g->n_nodes++;
    n->pos = kpos;
    n->file = g->file;
    /* Defaults are reported at the node, since they were never written in the file. */
    for (int i = 0; i < TSR_MAX_PARAMS; i++)
        n->param_pos[i] = kpos;
    if (dup < 0)
        ids_add(&c->ids, g->nodes, idx);
    if (!cls)
        return;

    int errors0 = c->err->count;
    parse_params(c, n, params);
    if (c->fatal)
        return;
    /* Cross-parameter checks only make sense once every param is individually right. */
    if (c->err->count == errors0 && cls->check) {
        tsr_status rc = cls->check(n, c->err);
        if (rc && rc != TSR_ERR_GRAPH) {
            c->fatal = rc;
            return;
        }
    }
    parse_inputs(c, idx, inputs);
}

static void parse_root(parse_ctx *c, const yaml_node_t *root)
{
    const yaml_node_t *version = NULL, *nodes = NULL;
    tsr_pos vpos = {0, 0}, npos = {0, 0};
    char buf[80], sbuf[80];
    if (root->type != YAML_MAPPING_NODE) {
        at(c, pos_of(root), "a graph is a mapping with 'version: 1' and 'nodes:', found %s",
           kind_name(root));
        return;
    }
    FOR_PAIRS(c, root, pair)
    {
        const char *key = key_text(c, pair, "graph");
        const yaml_node_t *k = get(c, pair->key), *v = get(c, pair->value);
        if (!key || !v)
            continue;
        if (!strcmp(key, "version") || !strcmp(key, "nodes")) {
            int is_version = key[0] == 'v';
            const yaml_node_t **slot = is_version ? &version : &nodes;
            tsr_pos *first = is_version ? &vpos : &npos;
            if (*slot) {
                at(c, pos_of(k), "key '%s' is given twice (first at line %d)", key, first->line);
                continue;
            }
            *slot = v;
            *first = pos_of(k);
        } else {
            suggest s;
            suggest_init(&s, key);
            suggest_add(&s, "version");
            suggest_add(&s, "nodes");
            at(c, pos_of(k), "unknown top-level key '%s'%s", shown(key, buf, 64),
               s.best ? suggest_text(&s, sbuf, sizeof sbuf) : " (a graph has version and nodes)");
        }
    }
    if (!version)
        at(c, pos_of(root), "missing 'version: 1'");
    else if (version->type != YAML_SCALAR_NODE || strcmp(scalar(version), "1") != 0)
        at(c, pos_of(version), "unsupported version '%s': this Tessera reads version 1",
           version->type == YAML_SCALAR_NODE ? shown(scalar(version), buf, 64)
                                             : kind_name(version));
    c->nodes_pos = nodes ? npos : pos_of(root);
    if (!nodes) {
        at(c, pos_of(root), "missing 'nodes:' (a mapping of node id to node)");
        return;
    }
    if (nodes->type != YAML_MAPPING_NODE) {
        at(c, pos_of(nodes), "'nodes' must be a mapping of node id to node, found %s",
           is_null(nodes) ? "nothing" : kind_name(nodes));
        return;
    }
    size_t count = (size_t)(nodes->data.mapping.pairs.top - nodes->data.mapping.pairs.start);
    if (count == 0) {
        at(c, npos, "'nodes' is empty: a graph needs at least a source and an output node");
        return;
    }
    if (count > MAX_NODES) {
        at(c, npos, "%zu nodes is more than the limit of %d", count, MAX_NODES);
        return;
    }
    c->g->nodes = calloc(count, sizeof *c->g->nodes);
    c->extra = calloc(count, sizeof *c->extra);
    if (!c->g->nodes || !c->extra || !ids_init(&c->ids, (int)count)) {
        c->fatal = tsr__seterr(c->err, TSR_ERR_NOMEM, "out of memory reading the graph");
        return;
    }
    FOR_PAIRS(c, nodes, pair)
    {
        parse_node(c, pair);
        if (c->fatal)
            return;
    }
    for (int i = 0; i < c->g->n_nodes; i++)
        resolve_inputs(c, i);
}

/* ---- validation ------------------------------------------------------------------------------ */

/* Min-heap of node indices: among the nodes ready to run, the earliest in the file goes first,
 * which makes the order deterministic and as close to the file's as the edges allow. */
static void heap_push(int *h, int *n, int v)
{
    int i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static int heap_pop(int *h, int *n)
{
    int top = h[0], v = h[--*n], i = 0;
    for (;;) {
        int m = 2 * i + 1;
        if (m >= *n)
            break;
        if (m + 1 < *n && h[m + 1] < h[m])
            m++;
        if (h[m] >= v)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0)
        h[i] = v;
    return top;
}

/* An edge that orders two nodes: a valid connection from another node with a class. */
static int edge_src(const tsr_graph *g, int i, int p)
{
    const tsr_input_ref *r = &g->nodes[i].inputs[p];
    if (!r->connected || r->node < 0 || r->node >= g->n_nodes || r->node == i ||
        !g->nodes[r->node].cls)
        return -1;
    return r->node;
}

/* Name the cycles left after the topological sort. Each unsorted node has an unsorted
 * predecessor, so walking predecessors from one must come back to a node of the same walk: the
 * loop from there is a cycle. Nodes downstream of a cycle lead into one already reported. */
static void report_cycles(const tsr_graph *g, const int *indeg, int *mark, int *path, tsr__err *err)
{
    int n = g->n_nodes;
    for (int i = 0; i < n; i++)
        mark[i] = -1; /* -1 unseen, else the walk (start node) that reached it */
    for (int start = 0; start < n; start++) {
        if (indeg[start] == 0 || mark[start] >= 0)
            continue;
        int len = 0, v = start;
        while (v >= 0 && mark[v] < 0) {
            mark[v] = start;
            path[len++] = v;
            int next = -1;
            for (int p = 0; g->nodes[v].cls && p < g->nodes[v].cls->n_inputs && next < 0; p++) {
                int s = edge_src(g, v, p);
                if (s >= 0 && indeg[s] > 0)
                    next = s;
            }
            v = next;
        }
        if (v < 0 || mark[v] != start)
            continue;
        /* path[j..len-1] is the cycle, each entry fed by the next and the last fed by path[j];
         * print it in data-flow order, starting at its earliest node in the file. */
        int j = 0;
        while (path[j] != v)
            j++;
        int m = len - j, first = 0;
        for (int q = 1; q < m; q++)
            if (path[len - 1 - q] < path[len - 1 - first])
                first = q;
        char text[1024];
        size_t k = 0;
        text[0] = 0;
        for (int q = 0; q <= m && k < sizeof text - 1; q++) {
            int node = path[len - 1 - (first + q) % m];
            int w = snprintf(text + k, sizeof text - k, "%s%s", q ? " -> " : "", g->nodes[node].id);
            if (w < 0)
                break;
            k += (size_t)w;
        }
        const tsr_node *f = &g->nodes[path[len - 1 - first]];
        tsr__adderr(err, TSR_ERR_GRAPH,
                    "%s:%d:%d: error: node '%s' is on a cycle: %s (a node cannot depend on its "
                    "own output)",
                    f->file ? f->file : "<graph>", f->pos.line, f->pos.col, f->id, text);
    }
}

static tsr_status validate(tsr_graph *g, const node_extra *extra, int unknown_types,
                           tsr_pos nodes_pos, tsr__err *err)
{
    int errors0 = err->count;
    int n = g->n_nodes, sinks = 0;
    int *indeg = NULL, *heap = NULL, *order = NULL, *first_out = NULL, *fill = NULL;
    int *consumers = NULL;
    tsr_status rc = TSR_OK;
    if (n <= 0) {
        tsr__adderr(err, TSR_ERR_GRAPH, "%s:%d:%d: error: the graph has no nodes",
                    g->file ? g->file : "<graph>", nodes_pos.line, nodes_pos.col);
        return TSR_ERR_GRAPH;
    }
    indeg = calloc((size_t)n, sizeof *indeg);
    heap = calloc((size_t)n, sizeof *heap);
    order = calloc((size_t)n, sizeof *order);
    first_out = calloc((size_t)n + 1, sizeof *first_out);
    fill = calloc((size_t)n, sizeof *fill);
    if (!indeg || !heap || !order || !first_out || !fill) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory validating the graph");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        tsr_node *nd = &g->nodes[i];
        const tsr_node_class *cls = nd->cls;
        if (!cls)
            continue;
        if (cls->flags & TSR_NODE_SINK)
            sinks++;
        /* The executor keeps one value per output port, but pixels (tiles, host images) for
         * one image output per node: a type with several would read output 0 everywhere. */
        int image_outputs = 0;
        for (int p = 0; p < cls->n_outputs; p++)
            image_outputs += cls->outputs[p].type == TSR_PORT_IMAGE;
        if (image_outputs > 1)
            node_at(err, nd, nd->pos,
                    "node type '%s' has %d image outputs; the executor runs nodes with at most "
                    "one",
                    cls->name, image_outputs);
        for (int p = 0; p < cls->n_inputs; p++) {
            const tsr_input_ref *r = &nd->inputs[p];
            const tsr_port_def *want = &cls->inputs[p];
            if (!r->connected) {
                if (extra && (extra[i].skip_inputs || extra[i].ref[p]))
                    continue; /* already reported where it was written */
                node_at(err, nd, nd->pos,
                        "missing input '%s' (expects %s %s; connect it under "
                        "'inputs:' as %s: NODE.PORT)",
                        want->name, want->type == TSR_PORT_IMAGE ? "an" : "a",
                        tsr__port_type_name(want->type), want->name);
                continue;
            }
            if (r->node < 0 || r->node >= n || !g->nodes[r->node].cls || r->port < 0 ||
                r->port >= g->nodes[r->node].cls->n_outputs) {
                if (r->node >= 0 && r->node < n && !g->nodes[r->node].cls)
                    continue;
                node_at(err, nd, r->pos,
                        "input '%s' references a node or port that does not "
                        "exist",
                        want->name);
                continue;
            }
            if (r->node == i) {
                node_at(err, nd, r->pos,
                        "input '%s' references its own node: a node cannot "
                        "feed itself",
                        want->name);
                continue;
            }
            const tsr_node *src = &g->nodes[r->node];
            const tsr_port_def *have = &src->cls->outputs[r->port];
            if (have->type != want->type)
                node_at(err, nd, r->pos, "input '%s' expects %s %s, but '%s.%s' is %s %s",
                        want->name, want->type == TSR_PORT_IMAGE ? "an" : "a",
                        tsr__port_type_name(want->type), src->id, have->name,
                        have->type == TSR_PORT_IMAGE ? "an" : "a", tsr__port_type_name(have->type));
        }
    }
    if (!sinks && !unknown_types) {
        char list[256] = "";
        size_t k = 0;
        for (int i = 0; i < tsr__node_class_count && k < sizeof list; i++)
            if (tsr__node_classes[i]->flags & TSR_NODE_SINK) {
                int w = snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "",
                                 tsr__node_classes[i]->name);
                k += w > 0 ? (size_t)w : 0;
            }
        tsr__adderr(err, TSR_ERR_GRAPH,
                    "%s:%d:%d: error: no output node: nothing would be written (add a node of "
                    "type %s)",
                    g->file ? g->file : "<graph>", nodes_pos.line, nodes_pos.col,
                    *list ? list : "with an output");
    }

    /* Kahn's algorithm over the valid edges, consumers listed per producer (CSR). */
    int edges = 0;
    for (int i = 0; i < n; i++)
        for (int p = 0; g->nodes[i].cls && p < g->nodes[i].cls->n_inputs; p++) {
            int s = edge_src(g, i, p);
            if (s >= 0) {
                indeg[i]++;
                first_out[s + 1]++;
                edges++;
            }
        }
    for (int i = 0; i < n; i++)
        first_out[i + 1] += first_out[i];
    consumers = malloc((size_t)(edges ? edges : 1) * sizeof *consumers);
    if (!consumers) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory validating the graph");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        for (int p = 0; g->nodes[i].cls && p < g->nodes[i].cls->n_inputs; p++) {
            int s = edge_src(g, i, p);
            if (s >= 0)
                consumers[fill[s]++ + first_out[s]] = i;
        }
    int hn = 0, done = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0)
            heap_push(heap, &hn, i);
    while (hn > 0) {
        int v = heap_pop(heap, &hn);
        order[done++] = v;
        for (int e = first_out[v]; e < first_out[v + 1]; e++)
            if (--indeg[consumers[e]] == 0)
                heap_push(heap, &hn, consumers[e]);
    }
    if (done < n)
        report_cycles(g, indeg, heap, fill, err);
    if (err->count != errors0) {
        rc = TSR_ERR_GRAPH;
        goto fail;
    }
    free(g->order);
    g->order = order;
    order = NULL;
fail:
    free(indeg);
    free(heap);
    free(order);
    free(first_out);
    free(fill);
    free(consumers);
    return rc ? rc : (err->count != errors0 ? TSR_ERR_GRAPH : TSR_OK);
}

tsr_status tsr__graph_validate(tsr_graph *g, tsr__err *err)
{
    tsr__err local;
    if (!err) {
        tsr__err_clear(&local);
        err = &local;
    }
    if (!g)
        return tsr__seterr(err, TSR_ERR_INVALID, "no graph");
    tsr_pos p = g->n_nodes > 0 ? g->nodes[0].pos : (tsr_pos){1, 1};
    return validate(g, NULL, 0, p, err);
}

/* Messages are found section by section (syntax, nodes, references, whole-graph checks); shown
 * in file order they read like a compiler's. Stable, so lines at one position keep their order. */
static void sort_lines(tsr__err *err, size_t start, const char *file)
{
    enum { MAX_LINES = 512 };
    char *text = NULL;
    struct line {
        const char *s;
        size_t len;
        uint64_t key;
    } *lines = NULL;
    if (start >= err->len)
        return;
    size_t n = err->len - start, flen = strlen(file), count = 0;
    text = malloc(n + 1);
    lines = malloc(MAX_LINES * sizeof *lines);
    if (!text || !lines)
        goto done; /* unsorted is still correct */
    memcpy(text, err->msg + start, n + 1);
    for (char *p = text; *p && count < MAX_LINES;) {
        if (*p == '\n') {
            p++;
            continue;
        }
        char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        uint64_t key = UINT64_MAX;
        int l, c;
        if (len > flen && strncmp(p, file, flen) == 0 && p[flen] == ':' &&
            sscanf(p + flen + 1, "%d:%d:", &l, &c) == 2 && l > 0 && c > 0)
            key = (uint64_t)l << 32 | (uint64_t)c;
        lines[count++] = (struct line){p, len, key};
        p += len;
    }
    for (size_t i = 1; i < count; i++) {
        struct line x = lines[i];
        size_t j = i;
        for (; j > 0 && lines[j - 1].key > x.key; j--)
            lines[j] = lines[j - 1];
        lines[j] = x;
    }
    size_t k = start;
    for (size_t i = 0; i < count; i++) {
        if (k > 0)
            err->msg[k++] = '\n';
        memcpy(err->msg + k, lines[i].s, lines[i].len);
        k += lines[i].len;
    }
    err->msg[k] = 0;
    err->len = k;
done:
    free(text);
    free(lines);
}

/* ---- YAML merge keys ------------------------------------------------------------------------ */

/* libyaml's loader resolves aliases to the anchored node, but leaves `<<` as an ordinary key:
 * YAML's merge (https://yaml.org/type/merge.html) is expanded here, before anything reads the
 * document, by rewriting each mapping's pairs: its own keys first, then each merged mapping's
 * keys that are not already there (earlier mappings of a merge list win over later ones). */

/* Bounds the work a hostile file can ask for: strcmp calls grow with the square of this. */
#define MERGE_MAX_KEYS 1024

static int is_merge_key(const yaml_node_t *k)
{
    return k && k->type == YAML_SCALAR_NODE && k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           k->data.scalar.length == 2 && !memcmp(k->data.scalar.value, "<<", 2);
}

static int has_key(parse_ctx *c, const yaml_node_pair_t *pairs, size_t n, const yaml_node_t *k)
{
    if (!k || k->type != YAML_SCALAR_NODE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *o = get(c, pairs[i].key);
        if (o && o->type == YAML_SCALAR_NODE && o->data.scalar.length == k->data.scalar.length &&
            !memcmp(o->data.scalar.value, k->data.scalar.value, k->data.scalar.length))
            return 1;
    }
    return 0;
}

static tsr_status merge_map(parse_ctx *c, int idx, unsigned char *state);

/* Appends the (already merged) pairs of mapping `src` that `out` lacks. */
static tsr_status merge_from(parse_ctx *c, int src, unsigned char *state, yaml_node_pair_t **out,
                             size_t *n, size_t *cap, tsr_pos where)
{
    tsr_status rc = merge_map(c, src, state);
    if (rc)
        return rc;
    yaml_node_t *m = get(c, src);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        if (has_key(c, *out, *n, get(c, p->key)))
            continue;
        if (*n >= MERGE_MAX_KEYS) {
            at(c, where, "merge keys ('<<') here make a mapping of more than %d keys",
               MERGE_MAX_KEYS);
            return TSR_OK;
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            yaml_node_pair_t *np = realloc(*out, nc * sizeof *np);
            if (!np)
                return TSR_ERR_NOMEM;
            *out = np;
            *cap = nc;
        }
        (*out)[(*n)++] = *p;
    }
    return TSR_OK;
}

static tsr_status merge_map(parse_ctx *c, int idx, unsigned char *state)
{
    yaml_node_t *m = get(c, idx);
    /* 1: being merged, so an alias back to it is a cycle, merged as it stands; 2: done. */
    if (!m || m->type != YAML_MAPPING_NODE || state[idx])
        return TSR_OK;
    state[idx] = 1;
    int merges = 0;
    FOR_PAIRS(c, m, pair)
    merges += is_merge_key(get(c, pair->key));
    if (!merges) {
        state[idx] = 2;
        return TSR_OK;
    }
    size_t n = 0, cap = 0;
    yaml_node_pair_t *out = NULL;
    tsr_status rc = TSR_OK;
    FOR_PAIRS(c, m, pair)
    {
        if (is_merge_key(get(c, pair->key)))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            yaml_node_pair_t *np = realloc(out, nc * sizeof *np);
            if (!np) {
                rc = TSR_ERR_NOMEM;
                goto done;
            }
            out = np;
            cap = nc;
        }
        out[n++] = *pair;
    }
    FOR_PAIRS(c, m, pair)
    {
        const yaml_node_t *k = get(c, pair->key), *v = get(c, pair->value);
        if (!is_merge_key(k) || !v)
            continue;
        if (v->type == YAML_MAPPING_NODE) {
            rc = merge_from(c, pair->value, state, &out, &n, &cap, pos_of(k));
        } else if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 !rc && it < v->data.sequence.items.top; it++) {
                const yaml_node_t *s = get(c, *it);
                if (s && s->type == YAML_MAPPING_NODE)
                    rc = merge_from(c, *it, state, &out, &n, &cap, pos_of(k));
                else if (s)
                    at(c, pos_of(s), "a merge key ('<<') takes mappings, found %s", kind_name(s));
            }
        } else {
            at(c, pos_of(v),
               "a merge key ('<<') takes a mapping or a list of mappings (such as *name), "
               "found %s",
               kind_name(v));
        }
        if (rc)
            goto done;
    }
    /* The document frees its pairs with free(), so the new array takes the old one's place. */
    if (!out && !(out = malloc(sizeof *out))) {
        rc = TSR_ERR_NOMEM;
        goto done;
    }
    free(m->data.mapping.pairs.start);
    m->data.mapping.pairs.start = out;
    m->data.mapping.pairs.top = out + n;
    m->data.mapping.pairs.end = out + (n ? n : 1);
    out = NULL;
done:
    free(out);
    state[idx] = 2;
    return rc;
}

static tsr_status resolve_merges(parse_ctx *c)
{
    int count = (int)(c->doc->nodes.top - c->doc->nodes.start);
    unsigned char *state = calloc((size_t)count + 1, 1);
    if (!state)
        return TSR_ERR_NOMEM;
    tsr_status rc = TSR_OK;
    for (int i = 1; i <= count && !rc; i++)
        rc = merge_map(c, i, state);
    free(state);
    return rc;
}

/* Deeper than any graph needs (a graph is three levels: nodes, node, params); libyaml's cost
 * grows with the square of the depth (100,000 `[` took 30 s), so the text is refused first. */
#define TSR_GRAPH_MAX_DEPTH 64
/* A graph of 10,000 nodes is about 1 MiB of text. */
#define TSR_GRAPH_MAX_BYTES (16 << 20)

/* Position of the first place where the text nests deeper than TSR_GRAPH_MAX_DEPTH levels, or
 * {0, 0}. A cheap over-approximation of YAML's structure, in one pass: flow brackets and braces,
 * plus one level per indentation step and per "- " sequence entry in block context, outside
 * quoted scalars and comments. */
static tsr_pos nesting_too_deep(const char *text, size_t len)
{
    int indents[TSR_GRAPH_MAX_DEPTH + 2]; /* block context: the indentation of each open level */
    int n_indents = 0, flow = 0, line = 1, col = 1;
    char quote = 0;
    size_t i = 0;
    while (i < len) {
        /* At the start of a line (outside a quoted scalar): its indentation opens or closes
         * block levels, once the line has content and flow context is closed. */
        size_t start = i;
        int indent = 0;
        while (i < len && text[i] == ' ')
            i++, indent++;
        if (!quote && flow == 0 && i < len && text[i] != '\n' && text[i] != '\r' &&
            text[i] != '#') {
            for (;;) {
                while (n_indents && indents[n_indents - 1] > indent)
                    n_indents--;
                if (!n_indents || indents[n_indents - 1] < indent) {
                    if (n_indents == TSR_GRAPH_MAX_DEPTH)
                        return (tsr_pos){line, indent + 1};
                    indents[n_indents++] = indent;
                }
                /* "- - x": each entry's content is one level deeper, at its own column. */
                if (text[i] != '-' || i + 1 >= len ||
                    (text[i + 1] != ' ' && text[i + 1] != '\n' && text[i + 1] != '\r'))
                    break;
                i++, indent++;
                while (i < len && text[i] == ' ')
                    i++, indent++;
                if (i >= len || text[i] == '\n' || text[i] == '\r' || text[i] == '#')
                    break;
            }
        }
        col = 1 + (int)(i - start);
        /* The rest of the line. */
        for (; i < len && text[i] != '\n'; i++, col++) {
            char ch = text[i];
            char prev = i > start ? text[i - 1] : ' ';
            if (quote) {
                if (quote == '"' && ch == '\\' && i + 1 < len && text[i + 1] != '\n')
                    i++, col++;
                else if (ch == quote && quote == '\'' && i + 1 < len && text[i + 1] == '\'')
                    i++, col++;
                else if (ch == quote)
                    quote = 0;
                continue;
            }
            int after_blank = prev == ' ' || prev == '\t' || i == start;
            if (ch == '#' && after_blank) {
                while (i < len && text[i] != '\n')
                    i++;
                break;
            }
            if ((ch == '"' || ch == '\'') &&
                (after_blank || prev == '[' || prev == '{' || prev == ',' || prev == ':'))
                quote = ch;
            else if (ch == '[' || ch == '{') {
                if (++flow + n_indents > TSR_GRAPH_MAX_DEPTH)
                    return (tsr_pos){line, col};
            } else if ((ch == ']' || ch == '}') && flow > 0)
                flow--;
        }
        if (i < len)
            i++; /* the newline */
        line++;
    }
    return (tsr_pos){0, 0};
}

tsr_status tsr__graph_parse(const char *text, size_t len, const char *file, tsr_graph **out,
                            tsr__err *err)
{
    *out = NULL;
    tsr__err local;
    if (!err) {
        tsr__err_clear(&local);
        err = &local;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_parser = 0, have_doc = 0;
    parse_ctx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.doc = &doc;
    int errors0 = err->count;
    size_t len0 = err->len;
    tsr_status rc = TSR_OK;

    tsr_graph *g = calloc(1, sizeof *g);
    if (!g || !(g->file = strdup(file ? file : "<graph>"))) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory reading the graph");
        goto fail;
    }
    c.g = g;
    c.file = g->file;
    if (len > TSR_GRAPH_MAX_BYTES) {
        rc = tsr__seterr(err, TSR_ERR_GRAPH,
                         "%s: error: graph text of %zu bytes is larger than the limit of %d bytes "
                         "(%d MiB)",
                         c.file, len, TSR_GRAPH_MAX_BYTES, TSR_GRAPH_MAX_BYTES >> 20);
        goto fail;
    }
    tsr_pos deep = nesting_too_deep(text, len);
    if (deep.line) {
        at(&c, deep, "nesting deeper than %d levels", TSR_GRAPH_MAX_DEPTH);
        rc = TSR_ERR_GRAPH;
        goto fail;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory starting the YAML reader");
        goto fail;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml_error(&c, &parser, text, len);
        rc = c.fatal ? c.fatal : TSR_ERR_GRAPH;
        goto fail;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        at(&c, (tsr_pos){1, 1}, "the graph is empty: expected 'version: 1' and 'nodes:'");
        rc = TSR_ERR_GRAPH;
        goto fail;
    }
    if (resolve_merges(&c)) {
        rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory reading the graph");
        goto fail;
    }
    parse_root(&c, root);
    if (c.fatal) {
        rc = c.fatal;
        goto fail;
    }
    /* A second document would be silently ignored; more likely two files were concatenated. */
    yaml_document_t extra_doc;
    if (!yaml_parser_load(&parser, &extra_doc)) {
        report_yaml_error(&c, &parser, text, len);
    } else {
        if (yaml_document_get_root_node(&extra_doc))
            at(&c,
               (tsr_pos){(int)extra_doc.start_mark.line + 1, (int)extra_doc.start_mark.column + 1},
               "a graph file holds one YAML document; a second one starts here");
        yaml_document_delete(&extra_doc);
    }
    if (c.fatal) {
        rc = c.fatal;
        goto fail;
    }
    if (g->n_nodes > 0) {
        rc = validate(g, c.extra, c.unknown_types, c.nodes_pos, err);
        if (rc && rc != TSR_ERR_GRAPH)
            goto fail;
    }
    rc = err->count != errors0 ? TSR_ERR_GRAPH : TSR_OK;
    if (rc) {
        sort_lines(err, len0, g->file);
        goto fail;
    }
    *out = g;
    g = NULL;
fail:
    free(c.extra);
    free(c.ids.slot);
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    tsr__graph_free(g);
    return rc;
}

void tsr__graph_free(tsr_graph *g)
{
    if (!g)
        return;
    for (int i = 0; g->nodes && i < g->n_nodes; i++)
        tsr__node_clear(&g->nodes[i]);
    free(g->nodes);
    free(g->order);
    free(g->file);
    free(g);
}

tsr_graph *tsr__graph_clone(const tsr_graph *g)
{
    tsr_graph *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *g;
    c->nodes = calloc((size_t)g->n_nodes, sizeof *c->nodes);
    c->order = malloc((size_t)g->n_nodes * sizeof *c->order);
    c->file = g->file ? strdup(g->file) : NULL;
    c->n_nodes = 0;
    if (!c->nodes || !c->order || (g->file && !c->file))
        goto fail;
    memcpy(c->order, g->order, (size_t)g->n_nodes * sizeof *c->order);
    for (int i = 0; i < g->n_nodes; i++) {
        const tsr_node *a = &g->nodes[i];
        tsr_node *b = &c->nodes[i];
        *b = *a;
        c->n_nodes = i + 1;
        b->id = NULL;
        for (int k = 0; k < TSR_MAX_PARAMS; k++)
            b->params[k].str = NULL;
        b->bound = tsr_image_ref(a->bound);
        b->px = NULL;
        b->file = c->file;
        if (!(b->id = strdup(a->id)))
            goto fail;
        for (int k = 0; k < TSR_MAX_PARAMS; k++)
            if (a->params[k].str && !(b->params[k].str = strdup(a->params[k].str)))
                goto fail;
    }
    return c;
fail:
    tsr__graph_free(c);
    return NULL;
}

/* ---- public API ----------------------------------------------------------------------------- */

/* s as a YAML single-quoted scalar ('' for a quote). */
static void yaml_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* The params of kv[n] for node `node` ("in", "op" or "out": "in.x=1", "out.x=1", else op's),
 * as a YAML block. */
static void op_params(FILE *f, const char *node, const char *const *kv, int n, int header)
{
    int any = 0;
    for (int i = 0; i < n; i++) {
        const char *k = kv[i], *eq = strchr(k, '='), *dot = memchr(k, '.', (size_t)(eq - k));
        const char *owner = !dot ? "op" : !strncmp(k, "in.", 3) ? "in" : "out";
        if (strcmp(owner, node))
            continue;
        if (dot)
            k = dot + 1;
        if (!any++ && header)
            fprintf(f, "    params:\n");
        fprintf(f, "      %.*s: ", (int)(eq - k), k);
        yaml_quote(f, eq + 1);
        fputc('\n', f);
    }
}

char *tsr_graph_op_yaml(const char *type, const char *in_path, const char *out_path,
                        const char *const *kv, int n, char *msg, size_t msglen)
{
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '='),
                   *dot = eq ? memchr(kv[i], '.', (size_t)(eq - kv[i])) : NULL;
        if (!eq || eq == kv[i] || strcspn(kv[i], ":{}[],#'\" ") < (size_t)(eq - kv[i]) ||
            (dot && strncmp(kv[i], "in.", 3) && strncmp(kv[i], "out.", 4))) {
            snprintf(msg, msglen, "'%s': expected PARAM=VALUE, in.PARAM=VALUE or out.PARAM=VALUE",
                     kv[i]);
            return NULL;
        }
    }
    const tsr_node_class *c = type ? tsr__node_class_find(type) : NULL;
    if (!c) {
        snprintf(msg, msglen, "unknown node type '%s' (tessera nodes lists them)",
                 type ? type : "");
        return NULL;
    }
    int out_port = -1;
    for (int i = 0; i < c->n_outputs && out_port < 0; i++)
        if (c->outputs[i].type == TSR_PORT_IMAGE)
            out_port = i;
    if (c->n_inputs != 1 || c->inputs[0].type != TSR_PORT_IMAGE || out_port < 0 ||
        (c->flags & (TSR_NODE_SOURCE | TSR_NODE_SINK))) {
        snprintf(msg, msglen,
                 "node type '%s' does not take one image and give one: write a graph for it", type);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    fprintf(f, "version: 1\nnodes:\n  in:\n    type: image.load\n    params:\n");
    op_params(f, "in", kv, n, 0);
    fprintf(f, "      path: ");
    yaml_quote(f, in_path ? in_path : "");
    fprintf(f, "\n  op:\n    type: %s\n    inputs: { %s: in.image }\n", c->name, c->inputs[0].name);
    op_params(f, "op", kv, n, 1);
    fprintf(f, "  out:\n    type: image.save\n    inputs: { image: op.%s }\n    params:\n",
            c->outputs[out_port].name);
    op_params(f, "out", kv, n, 0);
    fprintf(f, "      path: ");
    yaml_quote(f, out_path ? out_path : "");
    fputc('\n', f);
    if (fclose(f)) {
        free(text);
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    return text;
}

int tsr_graph_node_count(const tsr_graph *g)
{
    return g ? g->n_nodes : 0;
}

const char *tsr_graph_node_id(const tsr_graph *g, int i)
{
    return g && i >= 0 && i < g->n_nodes ? g->nodes[i].id : NULL;
}

const char *tsr_graph_node_type(const tsr_graph *g, int i)
{
    return g && i >= 0 && i < g->n_nodes ? g->nodes[i].cls->name : NULL;
}

char *tsr_graph_param(const tsr_graph *g, int i, const char *name)
{
    if (!g || i < 0 || i >= g->n_nodes)
        return NULL;
    const tsr_node *n = &g->nodes[i];
    int k = tsr__param_index(n->cls, name);
    if (k < 0 || !n->params[k].set)
        return NULL;
    const tsr_value *v = &n->params[k];
    char buf[64];
    switch (n->cls->params[k].type) {
    case TSR_PARAM_STRING:
    case TSR_PARAM_ENUM: return v->str ? strdup(v->str) : NULL;
    case TSR_PARAM_BOOL: return strdup(v->num != 0 ? "true" : "false");
    case TSR_PARAM_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->num); return strdup(buf);
    default: tsr__format_number(buf, sizeof buf, v->num); return strdup(buf);
    }
}

void tsr_graph_free(tsr_graph *g)
{
    tsr__graph_free(g);
}

tsr_status tsr_graph_load_string(tsr_engine *e, const char *yaml, const char *name, tsr_graph **out)
{
    if (!e || !out)
        return TSR_ERR_INVALID;
    *out = NULL;
    tsr__err_clear(tsr__eerr(e));
    if (!yaml)
        return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID, "tsr_graph_load_string: no text");
    return tsr__graph_parse(yaml, strlen(yaml), name ? name : "<string>", out, tsr__eerr(e));
}

/* dir/rel with "." and "dir/.." removed lexically (as Python's os.path.normpath does). */
static char *join_clean(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *joined = malloc(n), *out = malloc(n);
    if (!joined || !out) {
        free(joined);
        free(out);
        return NULL;
    }
    snprintf(joined, n, "%s/%s", dir, rel);
    int abs = joined[0] == '/';
    size_t len = 0;
    int depth = 0; /* components kept that a ".." may remove */
    char *save = NULL;
    out[0] = 0;
    for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, "."))
            continue;
        if (!strcmp(c, "..") && depth > 0) {
            char *slash = strrchr(out, '/');
            len = slash ? (size_t)(slash - out) : 0;
            out[len] = 0;
            depth--;
            continue;
        }
        if (!strcmp(c, "..") && abs)
            continue; /* /.. is / */
        len += (size_t)snprintf(out + len, n - len, "%s%s", len || abs ? "/" : "", c);
        depth += strcmp(c, "..") != 0;
    }
    if (!len)
        snprintf(out, n, abs ? "/" : ".");
    free(joined);
    return out;
}

/* Relative paths written in a graph file resolve against its folder, so a graph finds its own
 * images from any current directory (paths from --set and the API stay relative to the current
 * directory). */
static tsr_status rebase_paths(tsr_graph *g, const char *file, tsr__err *err)
{
    char dir[4096];
    tsr__dir_of(file, dir, sizeof dir);
    if (!strcmp(dir, "."))
        return TSR_OK;
    for (int v = 0; v < g->n_nodes; v++) {
        tsr_node *n = &g->nodes[v];
        for (int i = 0; i < n->cls->n_params; i++) {
            char *p = n->params[i].str;
            if (!(n->cls->params[i].flags & TSR_PARAM_PATH) || !p || p[0] == '/' ||
                !strcmp(p, "-") || n->param_pos[i].line <= 0)
                continue;
            char *np = join_clean(dir, p);
            if (!np)
                return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
            free(n->params[i].str);
            n->params[i].str = np;
        }
    }
    return TSR_OK;
}

tsr_status tsr_graph_load_file(tsr_engine *e, const char *path, tsr_graph **out)
{
    if (!e || !out)
        return TSR_ERR_INVALID;
    *out = NULL;
    tsr__err_clear(tsr__eerr(e));
    if (!path)
        return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID, "tsr_graph_load_file: no path");
    tsr_status rc = TSR_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int en = errno;
        return tsr__seterr(tsr__eerr(e), TSR_ERR_IO, "cannot open graph '%s': %s", path,
                           strerror(en));
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                rc = tsr__seterr(tsr__eerr(e), TSR_ERR_NOMEM, "out of memory reading graph '%s'",
                                 path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
        if (len > TSR_GRAPH_MAX_BYTES) {
            rc = tsr__seterr(tsr__eerr(e), TSR_ERR_GRAPH,
                             "%s: error: graph file larger than the limit of %d bytes (%d MiB)",
                             path, TSR_GRAPH_MAX_BYTES, TSR_GRAPH_MAX_BYTES >> 20);
            goto fail;
        }
    }
    if (ferror(f)) {
        int en = errno;
        rc =
            tsr__seterr(tsr__eerr(e), TSR_ERR_IO, "cannot read graph '%s': %s", path, strerror(en));
        goto fail;
    }
    rc = tsr__graph_parse(buf, len, path, out, tsr__eerr(e));
    if (!rc && (rc = rebase_paths(*out, path, tsr__eerr(e)))) {
        tsr__graph_free(*out);
        *out = NULL;
    }
fail:
    fclose(f);
    free(buf);
    return rc;
}

/* Finds the node and param an assignment names; messages as the user typed the option. */
static tsr_status set_target(tsr__err *err, tsr_graph *g, const char *assignment, tsr_node **np,
                             int *ip, const char **vp)
{
    char buf[80], sbuf[80];
    if (!assignment)
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr_graph_set: no assignment");
    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    if (!eq || !dot || dot == assignment || dot + 1 == eq)
        return tsr__seterr(err, TSR_ERR_GRAPH, "--set %s: error: expected node.param=value",
                           shown(assignment, buf, 64));
    char id[256], name[256];
    if ((size_t)(dot - assignment) >= sizeof id || (size_t)(eq - dot - 1) >= sizeof name)
        return tsr__seterr(err, TSR_ERR_GRAPH, "--set %.60s...: error: name too long", assignment);
    snprintf(id, sizeof id, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);

    tsr_node *n = NULL;
    for (int i = 0; i < g->n_nodes && !n; i++)
        if (strcmp(g->nodes[i].id, id) == 0)
            n = &g->nodes[i];
    if (!n) {
        suggest s;
        suggest_init(&s, id);
        for (int i = 0; i < g->n_nodes; i++)
            suggest_add(&s, g->nodes[i].id);
        return tsr__seterr(err, TSR_ERR_GRAPH, "--set %s.%s: error: unknown node '%s'%s", id, name,
                           id, suggest_text(&s, sbuf, sizeof sbuf));
    }
    int i = tsr__param_index(n->cls, name);
    if (i < 0) {
        suggest s;
        suggest_init(&s, name);
        for (int j = 0; j < n->cls->n_params; j++)
            suggest_add(&s, n->cls->params[j].name);
        return tsr__seterr(err, TSR_ERR_GRAPH,
                           "--set %s.%s: error: node '%s': unknown param '%s' for %s%s", id, name,
                           id, name, n->cls->name, suggest_text(&s, sbuf, sizeof sbuf));
    }
    *np = n;
    *ip = i;
    *vp = eq + 1;
    return TSR_OK;
}

/* The params of one touched node as they were, so that a rejected batch leaves the graph as it
 * was. */
typedef struct set_saved {
    tsr_node *n;
    tsr_value params[TSR_MAX_PARAMS];
    tsr_pos pos[TSR_MAX_PARAMS];
} set_saved;

static void saved_free(set_saved *s)
{
    for (int i = 0; i < TSR_MAX_PARAMS; i++)
        free(s->params[i].str);
}

/* An empty value removes the param: back to its default, or absent if optional. */
static tsr_status set_remove(tsr__err *err, tsr_node *n, int i)
{
    const tsr_param_def *d = &n->cls->params[i];
    if (d->def) {
        tsr_status rc = tsr__param_set(n, i, d->def, (tsr_pos){0, 0}, err);
        n->param_pos[i] = (tsr_pos){0, 0};
        return rc;
    }
    if (d->flags & TSR_PARAM_OPTIONAL) {
        free(n->params[i].str);
        memset(&n->params[i], 0, sizeof n->params[i]);
        n->param_pos[i] = (tsr_pos){0, 0};
        return TSR_OK;
    }
    if (d->flags & TSR_PARAM_REQUIRED)
        return tsr__seterr(err, TSR_ERR_GRAPH,
                           "--set %s.%s: error: node '%s': param '%s' is required and cannot be "
                           "removed (expected %s)",
                           n->id, d->name, n->id, d->name, param_type_name(d->type));
    return tsr__seterr(err, TSR_ERR_GRAPH,
                       "--set %s.%s: error: node '%s': param '%s' has no value (expected %s)",
                       n->id, d->name, n->id, d->name, param_type_name(d->type));
}

tsr_status tsr_graph_set_many(tsr_engine *e, tsr_graph *g, const char *const *assignments, int n)
{
    if (!e)
        return TSR_ERR_INVALID;
    tsr__err_clear(tsr__eerr(e));
    tsr__err *err = tsr__eerr(e);
    if (!g || n < 0 || (n > 0 && !assignments))
        return tsr__seterr(err, TSR_ERR_INVALID, "tsr_graph_set_many: no graph or no assignments");
    if (n == 0)
        return TSR_OK;
    set_saved *saved = calloc((size_t)n, sizeof *saved);
    if (!saved)
        return tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
    int n_saved = 0;
    tsr_status rc = TSR_OK;
    for (int k = 0; k < n && !rc; k++) {
        tsr_node *nd;
        int i;
        const char *value;
        rc = set_target(err, g, assignments[k], &nd, &i, &value);
        if (rc)
            break;
        int s = 0;
        while (s < n_saved && saved[s].n != nd)
            s++;
        if (s == n_saved) {
            saved[s].n = nd;
            n_saved++;
            for (int j = 0; j < TSR_MAX_PARAMS; j++) {
                saved[s].params[j] = nd->params[j];
                saved[s].params[j].str = NULL;
                saved[s].pos[j] = nd->param_pos[j];
                if (nd->params[j].str && !(saved[s].params[j].str = strdup(nd->params[j].str))) {
                    rc = tsr__seterr(err, TSR_ERR_NOMEM, "out of memory");
                    break;
                }
            }
            if (rc)
                break;
        }
        rc = *value ? tsr__param_set(nd, i, value, (tsr_pos){0, 0}, err) : set_remove(err, nd, i);
    }
    /* Cross-param checks see the node as the whole batch left it, so order never matters. */
    for (int s = 0; s < n_saved && !rc; s++) {
        tsr_node *nd = saved[s].n;
        for (int i = 0; i < nd->cls->n_params && !rc; i++)
            if ((nd->cls->params[i].flags & TSR_PARAM_REQUIRED) && !nd->params[i].set)
                rc = tsr__node_error(err, nd, i, "missing required param '%s'",
                                     nd->cls->params[i].name);
        if (!rc && nd->cls->check)
            rc = nd->cls->check(nd, err);
    }
    for (int s = 0; s < n_saved; s++) {
        if (rc) {
            tsr_node *nd = saved[s].n;
            for (int j = 0; j < TSR_MAX_PARAMS; j++) {
                free(nd->params[j].str);
                nd->params[j] = saved[s].params[j];
                nd->param_pos[j] = saved[s].pos[j];
                saved[s].params[j].str = NULL;
            }
        }
        saved_free(&saved[s]);
    }
    free(saved);
    if (!rc)
        g->inferred = 0;
    return rc;
}

tsr_status tsr_graph_set(tsr_engine *e, tsr_graph *g, const char *assignment)
{
    if (e && !assignment) {
        tsr__err_clear(tsr__eerr(e));
        return tsr__seterr(tsr__eerr(e), TSR_ERR_INVALID,
                           "tsr_graph_set: no graph or no assignment");
    }
    return tsr_graph_set_many(e, g, &assignment, 1);
}
