#!/usr/bin/env bash
# Planning is linear in the graph's size: 10,000-node graphs of three shapes (a chain, a
# fan-out to many sinks in one folder, a wide two-level tree) validate and plan (--dry-run) in
# well under the bounds here (5 s, 200 MB max RSS; the target is 1 s and 100 MB, and per-stage
# arrays sized by the whole graph once took 2.8 GB). Prints the measured figures.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
img=$PWD/graphs/images/small.png
mkdir -p "$tmp/o"
head_lines() { printf 'version: 1\nnodes:\n'; }
{
    head_lines
    awk -v img="$img" -v out="$tmp/o" 'BEGIN {
        printf "  n0: { type: image.load, params: { path: %s } }\n", img
        for (i = 1; i <= 9998; i++)
            printf "  n%d: { type: adjust.invert, inputs: { image: n%d.image } }\n", i, i - 1
        printf "  n9999: { type: image.save, inputs: { image: n9998.image }, params: { path: %s/c.png } }\n", out
    }'
} >"$tmp/chain.yaml"
{
    head_lines
    awk -v img="$img" -v out="$tmp/o" 'BEGIN {
        printf "  src: { type: image.load, params: { path: %s } }\n", img
        printf "  s0: { type: image.save, inputs: { image: src.image }, params: { path: %s/f0.png } }\n", out
        for (i = 1; i <= 4999; i++) {
            printf "  a%d: { type: adjust.invert, inputs: { image: src.image } }\n", i
            printf "  s%d: { type: image.save, inputs: { image: a%d.image }, params: { path: %s/f%d.png } }\n", i, i, out, i
        }
    }'
} >"$tmp/fan.yaml"
{
    head_lines
    awk -v img="$img" -v out="$tmp/o" 'BEGIN {
        printf "  src: { type: image.load, params: { path: %s } }\n", img
        for (i = 1; i <= 99; i++) {
            printf "  a%d: { type: adjust.invert, inputs: { image: src.image } }\n", i
            for (j = 1; j <= 50; j++) {
                printf "  b%d_%d: { type: adjust.invert, inputs: { image: a%d.image } }\n", i, j, i
                printf "  s%d_%d: { type: image.save, inputs: { image: b%d_%d.image }, params: { path: %s/t%d_%d.png } }\n", i, j, i, j, out, i, j
            }
        }
    }'
} >"$tmp/tree.yaml"

# Sanitizers inflate memory and time; the bounds hold for the plain build only.
sanitized=0
ldd "$T" 2>/dev/null | grep -q 'libasan\|libtsan' && sanitized=1
nodes_of() { grep -c '^  [a-z0-9_]*:' "$1"; }
for g in chain fan tree; do
    check "$g graph has 10000 nodes" test "$(nodes_of "$tmp/$g.yaml")" = 10000
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%e %M' -o "$tmp/$g.time" "$T" run "$tmp/$g.yaml" --dry-run \
            >"$tmp/$g.plan" 2>"$tmp/$g.err"
        rc=$?
        read -r secs kb <"$tmp/$g.time"
        echo "     $g: ${secs} s, max RSS ${kb} KB"
    else
        "$T" run "$tmp/$g.yaml" --dry-run >"$tmp/$g.plan" 2>"$tmp/$g.err"
        rc=$?
        secs=0 kb=0
    fi
    check "$g graph plans (--dry-run exits 0)" test "$rc" = 0
    check "$g graph's plan names its stages" grep -q '^stage ' "$tmp/$g.plan"
    if [ "$sanitized" = 0 ]; then
        check "$g graph plans in under 5 s" awk -v s="$secs" 'BEGIN { exit !(s < 5) }'
        check "$g graph plans in under 200 MB" test "$kb" -lt 204800
    fi
done
check "the chain is one stage of 9998 nodes" \
    test "$(grep -c '^stage ' "$tmp/chain.plan")" = 1
check "the fan-out has one stage per branch" test "$(grep -c '^stage ' "$tmp/fan.plan")" = 4999
check "the tree has one stage per inner node" test "$(grep -c '^stage ' "$tmp/tree.plan")" = 5049
check "nothing was written" test -z "$(ls "$tmp/o")"
cli_done test_big_graph
