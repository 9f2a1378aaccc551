#!/usr/bin/env bash
# tessera op: one node on one file without a graph, against the same node run from a graph.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

in=graphs/images/sample.png
$T run graphs/blur.yaml -q --set soft.sigma=3 --set out.path=$tmp/graph-blur.png
check "op blur.gaussian gives the graph's pixels" \
    bash -c "$T op blur.gaussian $in $tmp/op-blur.png sigma=3 edge=mirror -q && cmp -s $tmp/op-blur.png $tmp/graph-blur.png"
check "op resize scale=0.5 halves the image" \
    bash -c "$T op resize $in $tmp/half.png scale=0.5 -q && test \"\$(vipsheader -f width $tmp/half.png)x\$(vipsheader -f height $tmp/half.png)\" = 240x160"
check "out.PARAM reaches the save (JPEG quality)" \
    bash -c "$T op resize $in $tmp/q.jpg width=100 out.quality=30 -q && test -s $tmp/q.jpg"
check "- and - with out.format pipe through" \
    bash -c "$T op adjust.invert - - out.format=png -q <$in >$tmp/inv.png && test \"\$(vipsheader -f width $tmp/inv.png)\" = 480"
check "a param out of range exits 2 naming it" \
    bash -c "$T op resize $in $tmp/x.png scale=100 2>&1 | grep -q \"param 'scale' = 100 is out of range\""
check "... with exit 2" test "$(code $T op resize $in $tmp/x.png scale=100)" = 2
check "an unknown type exits 2" test "$(code $T op nope $in $tmp/x.png)" = 2
check "a type with a model input is refused" \
    bash -c "$T op upscale $in $tmp/x.png 2>&1 | grep -q 'does not take one image and give one'"
check "a malformed assignment is refused" test "$(code $T op resize $in $tmp/x.png scale)" = 2
check "op TYPE --help lists the node's params" \
    bash -c "$T op resize --help | grep -q 'param  scale'"
check "op --help exits 0" bash -c "$T op --help | grep -q 'tessera op TYPE IN OUT'"
check "--json works as with run" \
    bash -c "$T op adjust.invert $in $tmp/j.png --json | tail -n 1 | grep -q '^{\"event\":\"finish\",\"status\":\"ok\"'"
check "no output is left after a refused op" bash -c "! test -e $tmp/x.png"

cli_done op
