/* Node schema as JSON for GUIs and tools: every type with its ports and params, built from the
 * same tables that validate graphs, so the two cannot disagree. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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

static void put_ports(tsr__json *j, const tsr_port_def *ports, int n)
{
    tsr__json_arr(j);
    for (int i = 0; i < n; i++) {
        tsr__json_obj(j);
        tsr__json_kstr(j, "name", ports[i].name);
        tsr__json_kstr(j, "type", tsr__port_type_name(ports[i].type));
        tsr__json_kstr(j, "doc", ports[i].doc);
        tsr__json_end(j);
    }
    tsr__json_end(j);
}

/* The default as its JSON type, read through the same parser as graph values. */
static void put_default(tsr__json *j, const tsr_node *defaults, const tsr_param_def *d, int i)
{
    if (!d->def) {
        tsr__json_null(j);
        return;
    }
    const tsr_value *v = defaults && defaults->cls ? &defaults->params[i] : NULL;
    if (!v || !v->set) {
        tsr__json_str(j, d->def); /* a default the parser rejects: show it as written */
        return;
    }
    switch (d->type) {
    case TSR_PARAM_NUMBER:
    case TSR_PARAM_INT: tsr__json_num(j, v->num); break;
    case TSR_PARAM_BOOL: tsr__json_bool(j, v->ival); break;
    default: tsr__json_str(j, v->str); break;
    }
}

/* The '|'-separated words as a list; each word copied out whole, whatever its length. */
static void put_choices(tsr__json *j, const char *choices)
{
    if (!choices) {
        tsr__json_null(j);
        return;
    }
    tsr__json_arr(j);
    for (const char *p = choices;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        char *word = strndup(p, n);
        if (!word) {
            j->failed = 1;
            return;
        }
        tsr__json_str(j, word);
        free(word);
        if (!bar)
            break;
        p = bar + 1;
    }
    tsr__json_end(j);
}

static void put_range(tsr__json *j, const char *key, int ranged, double v)
{
    tsr__json_key(j, key);
    if (ranged)
        tsr__json_num(j, v);
    else
        tsr__json_null(j);
}

static void put_class(tsr__json *j, const tsr_node_class *cls)
{
    tsr_node defaults;
    tsr__err err;
    tsr__err_clear(&err);
    int have_defaults = tsr__node_init(&defaults, cls, NULL, &err) == TSR_OK;

    tsr__json_obj(j);
    tsr__json_kstr(j, "type", cls->name);
    tsr__json_kstr(j, "doc", cls->doc);
    tsr__json_kstr(j, "kernel", cls->kernel);
    tsr__json_kbool(j, "source", (cls->flags & TSR_NODE_SOURCE) != 0);
    tsr__json_kbool(j, "sink", (cls->flags & TSR_NODE_SINK) != 0);
    tsr__json_kbool(j, "barrier", (cls->flags & TSR_NODE_BARRIER) != 0);
    tsr__json_key(j, "inputs");
    put_ports(j, cls->inputs, cls->n_inputs);
    tsr__json_key(j, "outputs");
    put_ports(j, cls->outputs, cls->n_outputs);
    tsr__json_key(j, "params");
    tsr__json_arr(j);
    for (int i = 0; i < cls->n_params; i++) {
        const tsr_param_def *d = &cls->params[i];
        int ranged = (d->type == TSR_PARAM_NUMBER || d->type == TSR_PARAM_INT) && d->min <= d->max;
        tsr__json_obj(j);
        tsr__json_kstr(j, "name", d->name);
        tsr__json_kstr(j, "type", tsr__param_type_name(d->type));
        tsr__json_kbool(j, "required", (d->flags & TSR_PARAM_REQUIRED) != 0);
        tsr__json_kbool(j, "optional", (d->flags & TSR_PARAM_OPTIONAL) != 0);
        tsr__json_key(j, "default");
        put_default(j, have_defaults ? &defaults : NULL, d, i);
        put_range(j, "min", ranged, d->min);
        put_range(j, "max", ranged, d->max);
        tsr__json_key(j, "choices");
        put_choices(j, d->type == TSR_PARAM_ENUM ? d->choices : NULL);
        tsr__json_kstr(j, "doc", d->doc);
        tsr__json_end(j);
    }
    tsr__json_end(j);
    tsr__json_end(j);
    if (have_defaults)
        tsr__node_clear(&defaults);
}

char *tsr__nodes_json_of(const tsr_node_class *const *classes, int n)
{
    tsr__json j;
    tsr__json_init(&j);
    tsr__json_obj(&j);
    tsr__json_kstr(&j, "tessera", TSR_VERSION);
    tsr__json_key(&j, "nodes");
    tsr__json_arr(&j);
    for (int i = 0; i < n; i++)
        put_class(&j, classes[i]);
    tsr__json_end(&j);
    tsr__json_end(&j);
    return tsr__json_take(&j);
}

char *tsr_nodes_json(void)
{
    return tsr__nodes_json_of(tsr__node_classes, tsr__node_class_count);
}
