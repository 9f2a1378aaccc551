/* The node registry, generated from nodes/nodes.def. */
#include <string.h>

#include "internal.h"

#define TSR_NODE(sym, name) extern const tsr_node_class tsr_node_##sym;
#include "../nodes/nodes.def"
#undef TSR_NODE

const tsr_node_class *const tsr__node_classes[] = {
#define TSR_NODE(sym, name) &tsr_node_##sym,
#include "../nodes/nodes.def"
#undef TSR_NODE
};
const int tsr__node_class_count = (int)(sizeof tsr__node_classes / sizeof tsr__node_classes[0]);

const tsr_node_class *tsr__node_class_find(const char *name)
{
    for (int i = 0; i < tsr__node_class_count; i++)
        if (strcmp(tsr__node_classes[i]->name, name) == 0)
            return tsr__node_classes[i];
    return NULL;
}
