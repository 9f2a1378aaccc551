/* Jobs: one run of a graph each, on a thread of its own, sharing the engine's budget. */
#include <stdlib.h>

#include "internal.h"

void tsr__lanes_free(tsr_engine *e)
{
    (void)e;
}

void tsr__rcache_free(tsr__rcache *rc)
{
    (void)rc;
}
