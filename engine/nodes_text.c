/* Node schemas as readable text for `tessera nodes`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *tsr_nodes_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < tsr__node_class_count; i++) {
        const tsr_node_class *c = tsr__node_classes[i];
        fprintf(f, "%s\n    %s\n", c->name, c->doc);
        for (int p = 0; p < c->n_inputs; p++)
            fprintf(f, "    input  %-12s %-7s %s\n", c->inputs[p].name,
                    tsr__port_type_name(c->inputs[p].type), c->inputs[p].doc);
        for (int p = 0; p < c->n_outputs; p++)
            fprintf(f, "    output %-12s %-7s %s\n", c->outputs[p].name,
                    tsr__port_type_name(c->outputs[p].type), c->outputs[p].doc);
        for (int p = 0; p < c->n_params; p++) {
            const tsr_param_def *d = &c->params[p];
            char range[96] = "";
            if (d->type == TSR_PARAM_ENUM)
                snprintf(range, sizeof range, " {%s}", d->choices);
            else if ((d->type == TSR_PARAM_NUMBER || d->type == TSR_PARAM_INT) &&
                     d->min <= d->max) {
                char lo[40], hi[40];
                tsr__format_number(lo, sizeof lo, d->min);
                tsr__format_number(hi, sizeof hi, d->max);
                snprintf(range, sizeof range, " [%s, %s]", lo, hi);
            }
            const char *dflt = d->flags & TSR_PARAM_REQUIRED ? "required"
                               : d->def                      ? d->def
                                                             : "optional";
            fprintf(f, "    param  %-12s %-7s%s (%s%s) %s\n", d->name,
                    tsr__param_type_name(d->type), range,
                    d->def && !(d->flags & TSR_PARAM_REQUIRED) ? "default " : "", dflt, d->doc);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
