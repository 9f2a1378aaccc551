#!/usr/bin/env bash
# examples/embed.c (build/examples/embed): a run that completes, checked by its numbers (invert
# turns each colour mean m into 255 - m); a PNG input; usage and graph errors; cancels by
# timeout, key press and Ctrl-C (exit 4); and the uninstalled pkg-config file building it.
# Needs tsr_image_from_pixels / tsr_image_to_pixels (generated input, every output).
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
build=$(dirname "$T")
E=$build/examples/embed
export TSR_DEVICE=ref

# means "R G B A" of the input: or output: line of an embed log
means() { sed -n "s/^$1: .* mean \([0-9. ]*\) fnv1a64.*/\1/p" "$2"; }
fnv() { sed -n "s/^$1: .* fnv1a64 \([0-9a-f]*\)$/\1/p" "$2"; }
inverted() { # input log: output colour means are 255 - input's, alpha kept
    local i o
    i=$(means input "$1") o=$(means output "$1")
    [ -n "$i" ] && [ -n "$o" ] || return 1
    awk -v i="$i" -v o="$o" 'BEGIN { split(i, a, " "); split(o, b, " ");
        for (k = 1; k <= 3; k++) if (a[k] + b[k] < 254.99 || a[k] + b[k] > 255.01) exit 1;
        exit !(a[4] == b[4]) }'
}
exits_with() { # CODE PATTERN COMMAND...: exits CODE, and PATTERN is in its stdout or stderr
    local want=$1 pattern=$2 out rc
    shift 2
    out=$("$@" </dev/null 2>&1)
    rc=$?
    [ "$rc" = "$want" ] && grep -q -- "$pattern" <<<"$out"
}

check "embed exists" test -x "$E"
check "no arguments: usage, exit 2" exits_with 2 '^usage: embed' "$E"
check "an unknown option: usage, exit 2" \
    exits_with 2 '^usage: embed' "$E" examples/invert.yaml --frob

"$E" examples/invert.yaml --size 200x150 </dev/null >"$tmp/inv.log" 2>"$tmp/inv.err"
rc=$?
check "invert on a generated image exits 0" test "$rc" = 0
check "it reports the output size" grep -q '^output: 200x150 RGBA8 ' "$tmp/inv.log"
check "output means are 255 - input means, alpha kept" inverted "$tmp/inv.log"
check "node-start events are shown" grep -q "node 2/3 'neg' (adjust.invert)" "$tmp/inv.err"
check "node-finish events are shown" grep -q "'neg' done in" "$tmp/inv.err"
"$E" examples/invert.yaml --size 20x20 -q </dev/null >/dev/null 2>"$tmp/q.err"
check "--quiet shows no progress" test ! -s "$tmp/q.err"
if TSR_DEVICE= "$T" devices >/dev/null 2>&1; then
    TSR_DEVICE= "$E" examples/invert.yaml --size 200x150 -q </dev/null >"$tmp/cl.log" 2>&1
    ref_sum=$(fnv output "$tmp/inv.log") cl_sum=$(fnv output "$tmp/cl.log")
    check "the OpenCL device gives the reference's checksum" \
        test -n "$ref_sum" -a "$cl_sum" = "$ref_sum"
fi

"$E" examples/invert.yaml graphs/images/small.png -q </dev/null >"$tmp/png.log" 2>&1
rc=$?
size=$(sed -n 's/^input: .*, \([0-9]*x[0-9]*\), [1-4] channels$/\1/p' "$tmp/png.log")
check "a PNG input runs (exit 0)" test "$rc" = 0
check "the PNG's size comes back as RGBA" grep -q "^output: ${size:-none} RGBA8 " "$tmp/png.log"
check "blur keeps the size" \
    bash -c "$E examples/blur.yaml --size 64x48 -q </dev/null | grep -q '^output: 64x48 RGBA8 '"

check "a graph without node 'in' exits 2 naming it" \
    exits_with 2 "no node 'in'" "$E" graphs/blur.yaml graphs/images/small.png
check "a bad --set exits 2 with the param's error" \
    exits_with 2 "unknown param 'nope'" "$E" examples/blur.yaml --set soft.nope=1
check "a missing graph file exits 1 naming it" exits_with 1 "$tmp/none.yaml" "$E" "$tmp/none.yaml"

# Cancels: a blur of 4000x3000 on the reference engine takes seconds; 256x256 tiles give the
# cancel a point to land every few milliseconds whatever the node does inside a tile.
big="examples/blur.yaml --size 4000x3000 --tile 256x256 --set soft.sigma=8 -q"
"$E" $big --timeout 1 </dev/null >"$tmp/t.log" 2>&1
rc=$?
check "--timeout 1 on a big image exits 4" test "$rc" = 4
check "and reports the cancel" grep -q '^cancelled (timeout) after ' "$tmp/t.log"
check "and no output" bash -c "! grep -q '^output:' $tmp/t.log"

t0=$(date +%s%N)
(sleep 0.5; echo x) | "$E" $big >"$tmp/k.log" 2>&1
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "a key press cancels: exit 4" test "$rc" = 4
check "and reports it" grep -q '^cancelled (key pressed) after ' "$tmp/k.log"
check "within a second of the key ($ms ms in all)" test "$ms" -lt 1500

# Signalled once the blur runs: before main() sets its handler, a background job of a script
# ignores SIGINT.
big_loud=${big% -q}
: >"$tmp/c.log"
"$E" $big_loud </dev/null >"$tmp/c.log" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q "'soft' (blur.gaussian)" "$tmp/c.log" && break; sleep 0.05; done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rc=$?
check "Ctrl-C (SIGINT) cancels the job: exit 4" test "$rc" = 4
check "and reports it" grep -q '^cancelled (Ctrl-C) after ' "$tmp/c.log"

# The example builds from the build tree's pkg-config file, as a program outside would.
if command -v pkg-config >/dev/null; then
    flags=$(PKG_CONFIG_PATH=$build pkg-config --cflags --libs tessera-uninstalled)
    check "pkg-config tessera-uninstalled gives -I engine/" grep -q -- "-I$PWD/engine " <<<"$flags "
    check "and -L the build folder" grep -q -- "-L$(cd "$build" && pwd) " <<<"$flags "
    san=
    ldd "$build/libtessera.so.0" | grep -q libasan && san="-fsanitize=address,undefined"
    check "examples/embed.c builds with those flags alone" \
        ${CC:-cc} -std=c11 $san -o "$tmp/embed" examples/embed.c $flags
    check "and runs against the build's library" exits_with 0 '^output: 200x150 ' \
        env LD_LIBRARY_PATH="$build" "$tmp/embed" examples/invert.yaml --size 200x150 -q
fi

cli_done examples
