#!/usr/bin/env bash
# `tessera run` on the job API: SIGINT/SIGTERM cancel the run (exit 130/143, no temporary file,
# an existing output untouched, a second signal exits at once), the progress line and the
# summary, --json lines (errors included), and batches (--batch, --output-dir, --keep-going,
# --shard, --input-node): outputs identical to single runs, naming rules, refusals, Ctrl-C.
set -u
cd "$(dirname "$0")/../.."
export LC_ALL=C # ls sorts as the batch does
. tests/cli/checks.bash
# Every line of stdin is one JSON object (python3 is in tools/install-deps.sh; without it, a
# cruder check that each line is a brace-delimited object).
json_lines() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'
    else
        ! grep -qv '^{.*}$'
    fi
}
no_tmp() { ! ls -A "$1" | grep -q '\.tmp$'; } # tsr_image_write's ".NAME.XXXXXX.tmp"
wait_for() {                                   # file pattern [count]: up to 20 s
    for _ in $(seq 400); do
        [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
        sleep 0.05
    done
    return 1
}
usec() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# A slow run: the reference engine blurs a 1920x1280 image with sigma 20 in 128x128 tiles
# (150 tiles of 25 ms here, 140 ms under ASan; the cancel flag is checked between tiles).
mkdir -p $tmp/in $tmp/out
$T run graphs/demo.yaml -q --set up.scale=4 --set out.path=$tmp/big.png
cat >$tmp/slow.yaml <<EOF
version: 1
nodes:
  src:  { type: image.load, params: { path: $tmp/big.png } }
  soft: { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 20 } }
  out:  { type: image.save, inputs: { image: soft.image }, params: { path: $tmp/out/slow.png } }
EOF

# Start `tessera run ARGS --json` in the background, wait for its first stage event, send the
# signals SIGS (comma-separated, 0.1 s apart) and wait for the end: sets rc (exit status) and
# ms (from the first signal to the exit). The CLI keeps SIGINT ignored when it starts with it
# ignored (a background command of a shell without job control, or a whole test run started in
# the background): `env --default-signal=INT` gives it the default disposition, whatever the
# environment of this script.
interrupt() {
    local sigs=$1 ev=$2
    shift 2
    TSR_DEVICE=ref env --default-signal=INT $T run "$@" --json >"$ev" 2>"$ev.err" &
    local pid=$!
    wait_for "$ev" '"event":"stage"' || echo "     (no stage event before the signal)"
    sleep 0.3
    local t0 first=1
    t0=$(usec)
    for s in ${sigs//,/ }; do
        [ $first = 1 ] || sleep 0.1
        first=0
        kill -"$s" $pid 2>/dev/null
    done
    wait $pid
    rc=$?
    ms=$((($(usec) - t0) / 1000))
}

echo precious >$tmp/out/slow.png
interrupt INT $tmp/int.json $tmp/slow.yaml --tile 128x128
echo "     SIGINT: exit $rc after $ms ms"
check "SIGINT exits 130" test $rc = 130
check "... within 2 s" test $ms -lt 2000
check "... leaves the existing output untouched" test "$(cat $tmp/out/slow.png)" = precious
check "... and no temporary file" no_tmp $tmp/out
check "... says it was interrupted" grep -q 'interrupted by SIGINT' $tmp/int.json.err
check "... its --json lines parse" json_lines <$tmp/int.json
check "... with a cancelled execution-error" \
    grep -q '^{"event":"execution-error","status":"cancelled",' $tmp/int.json
check "... and finish last" grep -q '^{"event":"finish","status":"cancelled",' \
    <(tail -n 1 $tmp/int.json)

interrupt TERM $tmp/term.json $tmp/slow.yaml --tile 128x128
echo "     SIGTERM: exit $rc after $ms ms"
check "SIGTERM exits 143" test $rc = 143
check "... within 2 s" test $ms -lt 2000
check "... leaves the existing output untouched" test "$(cat $tmp/out/slow.png)" = precious
check "... and no temporary file" no_tmp $tmp/out
check "... says it was terminated" grep -q 'interrupted by SIGTERM' $tmp/term.json.err
check "... and finish, cancelled, last" grep -q '^{"event":"finish","status":"cancelled",' \
    <(tail -n 1 $tmp/term.json)

# Untiled, the reference blur is one long step the cancel flag cannot stop: the second signal
# must end the process from the handler.
interrupt INT,INT $tmp/int2.json $tmp/slow.yaml
echo "     SIGINT twice: exit $rc after $ms ms"
check "a second SIGINT exits 130 at once" test $rc = 130 -a $ms -lt 2000
check "... leaving the existing output untouched" test "$(cat $tmp/out/slow.png)" = precious
check "... and no temporary file" no_tmp $tmp/out

# Messages: summary without a terminal, progress line on one
$T run graphs/blur.yaml --set out.path=$tmp/out/b.png 2>$tmp/sum.err
check "a run exits 0" test $? = 0
check "without a terminal: the summary names the file" \
    grep -qE "^done in [0-9]+\.[0-9]{2} s: wrote $tmp/out/b.png\$" $tmp/sum.err
check "... and there is no progress line" test "$(wc -l <$tmp/sum.err)" = 1
check "--quiet prints nothing" test -z "$($T run graphs/blur.yaml -q --set out.path=$tmp/out/b.png 2>&1)"
check "run --help documents the exit codes 130 and 143" \
    bash -c "$T run --help | grep -q '130 (SIGINT)' && $T run --help | grep -q '143'"
if command -v script >/dev/null; then
    # script(1) gives the run a terminal
    TERM=dumb script -qec "TSR_DEVICE=ref $T run $tmp/slow.yaml --set soft.sigma=10 --tile 128x128 \
        --set out.path=$tmp/out/tty.png" /dev/null >$tmp/tty.txt 2>&1
    check "on a terminal: the progress line names node, type and tile" \
        grep -qaE $'\r''.*\[2/3\] soft \(blur\.gaussian\) tile [0-9]+/[0-9]+ +[0-9]+%  [0-9.]+s' \
        $tmp/tty.txt
    check "... then the summary on a line of its own" \
        grep -qa "^done in .* s: wrote $tmp/out/tty.png" <(tr -d '\r' <$tmp/tty.txt)
else
    echo "     (no script(1): the terminal progress line is not checked)"
fi

# --json: events, and errors with or without a job
$T run graphs/fanout.yaml --json --set small.path=$tmp/out/h.png --set soft.path=$tmp/out/s.png \
    >$tmp/ok.json 2>$tmp/ok.err
check "--json run exits 0" test $? = 0
check "... every line parses" json_lines <$tmp/ok.json
check "... the first is chain-start" grep -q '^{"event":"chain-start"' <(head -n 1 $tmp/ok.json)
check "... the last is finish, ok, with both files" \
    grep -q "^{\"event\":\"finish\",\"status\":\"ok\",.*\"files\":\[\"$tmp/out/h.png\",\"$tmp/out/s.png\"\]" \
    <(tail -n 1 $tmp/ok.json)
check "... node-start, node-progress and node-finish are there" bash -c \
    "grep -q '\"node-start\"' $tmp/ok.json && grep -q '\"node-progress\"' $tmp/ok.json && grep -q '\"node-finish\"' $tmp/ok.json"
check "... nothing on stderr" test ! -s $tmp/ok.err
printf 'version: 1\nnodes:\n  a: { type: image.lod }\n' >$tmp/bad.yaml
$T run $tmp/bad.yaml --json >$tmp/bad.json 2>/dev/null
check "a graph error exits 2 with --json" test $? = 2
check "... its lines parse" json_lines <$tmp/bad.json
check "... an execution-error with the position" grep -q \
    "^{\"event\":\"execution-error\",\"status\":\"graph error\",.*\"source\":{\"nodeId\":\"a\",.*\"file\":\"$tmp/bad.yaml\",\"line\":3,\"col\":" \
    $tmp/bad.json
check "... then finish" grep -q '^{"event":"finish","status":"graph error"' <(tail -n 1 $tmp/bad.json)
$T run graphs/blur.yaml --json --frob >$tmp/usage.json 2>/dev/null
check "a usage error exits 2 with --json" test $? = 2
check "... as JSON lines" json_lines <$tmp/usage.json
check "... naming the option" grep -q '"execution-error".*unknown option .--frob.' $tmp/usage.json
$T run graphs/blur.yaml --json --set src.path=$tmp/none.png --set out.path=$tmp/out/n.png \
    >$tmp/io.json 2>/dev/null
check "a missing input exits 1 with --json" test $? = 1
check "... the job's execution-error names the node and param" \
    grep -q '^{"event":"execution-error",.*"source":{"nodeId":"src","schemaId":"image.load","param":"path"' \
    $tmp/io.json
check "... then finish" grep -q '^{"event":"finish"' <(tail -n 1 $tmp/io.json)

# Batch: five inputs of different sizes, one name with a space and a quote
for s in 0.3 0.4 0.5 0.6 0.7; do
    $T run graphs/demo.yaml -q --set up.scale=$s --set "out.path=$tmp/in/img$s.png"
done
mv "$tmp/in/img0.7.png" "$tmp/in/it's a \"test\".png"
names=("img0.3" "img0.4" "img0.5" "img0.6" "it's a \"test\"")
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/b1 2>$tmp/b1.err
check "a batch of 5 exits 0" test $? = 0
check "... writes 5 outputs" test "$(ls $tmp/b1 | wc -l)" = 5
same_as_single() { # every input's output is byte for byte a single run's
    local n
    for n in "${names[@]}"; do
        $T run graphs/blur.yaml -q --set "src.path=$tmp/in/$n.png" --set "out.path=$tmp/single.png" &&
            cmp -s "$tmp/single.png" "$tmp/b1/$n.png" || return 1
    done
}
check "... each identical to a single run of its input" same_as_single
check "... says 5 done" grep -q '^5 done, 0 failed in' $tmp/b1.err
check "... prints a line per input" test "$(grep -c ': done in ' $tmp/b1.err)" = 5
check "... and no temporary file" no_tmp $tmp/b1

$T run graphs/blur.yaml --batch $tmp/in --output-dir $tmp/b2 --json >$tmp/b2.json 2>/dev/null
check "a batch over a directory with --json exits 0" test $? = 0
check "... every line parses" json_lines <$tmp/b2.json
check "... one batch-item per input" test "$(grep -c '^{"event":"batch-item",' $tmp/b2.json)" = 5
check "... the quoted name escaped" grep -qF "\"input\":\"$tmp/in/it's a \\\"test\\\".png\"" $tmp/b2.json
check "... a finish per job" test "$(grep -c '^{"event":"finish",' $tmp/b2.json)" = 5
check "... batch-finish last: 5 done, 0 failed" grep -q \
    '^{"event":"batch-finish","status":"ok","inputs":5,"done":5,"failed":0,' <(tail -n 1 $tmp/b2.json)
check "... the same outputs" bash -c "for f in $tmp/b1/*; do cmp -s \"\$f\" \"$tmp/b2/\${f##*/}\" || exit 1; done"

$T run graphs/blur.yaml --batch "$tmp/in/img0.3.png" --batch "$tmp/in/img0.[45].png" \
    --output-dir $tmp/b3 -q
check "several --batch options add up" test "$(ls $tmp/b3 | tr '\n' ' ')" = "img0.3.png img0.4.png img0.5.png "

# One engine for the batch: the model is read and uploaded once, kernels built or loaded once
$T run graphs/upscale.yaml --batch "$tmp/in/img0.3.png" --batch "$tmp/in/img0.4.png" \
    --output-dir $tmp/u1 -q --stats 2>$tmp/u1.stats
second() { sed -n "/^batch.input: .*img0.4.png\$/,\$s/^$1: //p" $tmp/u1.stats; } # KEY's value
check "an upscale batch of 2 exits 0 with one --stats block per input" \
    test "$(grep -c '^batch.input: ' $tmp/u1.stats)" = 2
check "... the model is read once" test "$(grep '^models.loaded: ' $tmp/u1.stats | tr '\n' ' ')" = \
    "models.loaded: 1 models.loaded: 0 "
check "... its weights uploaded once" test "$(second models.uploaded)" = 0
check "... the second input builds or loads no kernel" \
    test "$(second kernels.compiled)/$(second kernels.from_cache)" = 0/0

# A corrupt input in the middle of the sorted list
cp tests/bad/files/truncated-data.png $tmp/in/img0.45.png
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/k1 --keep-going 2>$tmp/k1.err
check "--keep-going with a corrupt input exits 1" test $? = 1
check "... writes the other 5" test "$(ls $tmp/k1 | wc -l)" = 5
check "... nothing for the bad one" test ! -e $tmp/k1/img0.45.png
check "... sums up naming it" bash -c "grep -q '^5 done, 1 failed in' $tmp/k1.err && grep -q '^  $tmp/in/img0.45.png: .*truncated' $tmp/k1.err"
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/k2 2>$tmp/k2.err
check "without --keep-going the corrupt input stops the batch with its exit code (1)" test $? = 1
check "... after the inputs before it" test "$(ls $tmp/k2 | tr '\n' ' ')" = "img0.3.png img0.4.png "
check "... saying so" grep -q 'stopped at the first failure.*2 done, 1 failed, 3 not run' $tmp/k2.err
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/k3 --keep-going --json \
    >$tmp/k3.json 2>/dev/null
check "--keep-going --json: the bad item is failed with its message" grep -q \
    "^{\"event\":\"batch-item\",\"index\":2,\"input\":\"$tmp/in/img0.45.png\",\"outputs\":\[\],\"status\":\"failed\",\"error\":\"image decode error\",\"message\":\".*truncated" \
    $tmp/k3.json
check "... batch-finish counts it" grep -q '"batch-finish","status":"failed","inputs":6,"done":5,"failed":1' \
    <(tail -n 1 $tmp/k3.json)
rm $tmp/in/img0.45.png

# Shards: by position in the sorted list
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/s0 --shard 0/2 -q
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/s1 --shard 1/2 -q
check "--shard 0/2 takes positions 0, 2, 4" test "$(ls $tmp/s0 | tr '\n' ' ')" = "img0.3.png img0.5.png it's a \"test\".png "
check "--shard 1/2 takes positions 1, 3" test "$(ls $tmp/s1 | tr '\n' ' ')" = "img0.4.png img0.6.png "
check "... together every input exactly once" \
    test "$( (ls $tmp/s0; ls $tmp/s1) | sort | uniq -u | tr '\n' ' ')" = "$(ls $tmp/b1 | sort | tr '\n' ' ')"
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/s9 --shard 7/9 2>$tmp/s9.err
check "a shard with no input exits 0" test $? = 0
check "... writing nothing" test -z "$(ls -A $tmp/s9)"
for v in 2/2 -1/2 1/0 a/b 1 0/2x; do
    check "--shard $v exits 2" test "$(code $T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/sx --shard $v)" = 2
done

# Refusals before any work
mkdir -p $tmp/dup && cp "$tmp/in/img0.3.png" $tmp/dup/img0.3.jpg
$T run graphs/blur.yaml --batch "$tmp/in/*.png" --batch $tmp/dup --output-dir $tmp/d1 2>$tmp/d1.err
check "two inputs with one stem exit 2" test $? = 2
check "... naming both" grep -q "inputs '$tmp/dup/img0.3.jpg' and '$tmp/in/img0.3.png' have the same name stem 'img0.3'" $tmp/d1.err
check "... before any work" test ! -e $tmp/d1
check "an output that would replace an input exits 2" \
    test "$(code $T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/in)" = 2
check "a pattern matching nothing exits 2" \
    test "$(code $T run graphs/blur.yaml --batch "$tmp/none/*.png" --output-dir $tmp/d2)" = 2
check "--batch without --output-dir exits 2" test "$(code $T run graphs/blur.yaml --batch "$tmp/in/*.png")" = 2
check "--keep-going without --batch exits 2" test "$(code $T run graphs/blur.yaml --keep-going)" = 2
check "--batch with --dry-run exits 2" \
    test "$(code $T run graphs/blur.yaml --batch "$tmp/in/*.png" --output-dir $tmp/d3 --dry-run)" = 2

# Two sources and two saves: --input-node chooses, outputs are STEM_SAVEID.EXT
cat >$tmp/two.yaml <<EOF
version: 1
nodes:
  a:   { type: image.load, params: { path: $PWD/graphs/images/small.png } }
  b:   { type: image.load, params: { path: $PWD/graphs/images/sample.png } }
  inv: { type: adjust.invert, inputs: { image: a.image } }
  x:   { type: image.save, inputs: { image: inv.image }, params: { path: out/x.png } }
  y:   { type: image.save, inputs: { image: b.image }, params: { path: out/y.jpg } }
EOF
$T run $tmp/two.yaml --batch "$tmp/in/img0.3.png" --output-dir $tmp/t1 2>$tmp/t1.err
check "two image.load nodes without --input-node exit 2" test $? = 2
check "... naming them" grep -q 'has 2 input nodes (a, b): choose one with --input-node' $tmp/t1.err
$T run $tmp/two.yaml --batch "$tmp/in/img0.3.png" --batch "$tmp/in/img0.4.png" --output-dir $tmp/t2 \
    --input-node a -q
check "--input-node a: STEM_SAVEID.EXT for each save" \
    test "$(ls $tmp/t2 | tr '\n' ' ')" = "img0.3_x.png img0.3_y.jpg img0.4_x.png img0.4_y.jpg "
$T run $tmp/two.yaml -q --set a.path=$tmp/in/img0.4.png --set x.path=$tmp/single.png \
    --set y.path=$tmp/single.jpg
check "... the same pixels as a single run" cmp -s $tmp/single.png $tmp/t2/img0.4_x.png
check "--input-node naming no node exits 2" \
    test "$(code $T run $tmp/two.yaml --batch "$tmp/in/*.png" --output-dir $tmp/t3 --input-node c)" = 2
check "--input-node naming a save exits 2" \
    test "$(code $T run $tmp/two.yaml --batch "$tmp/in/*.png" --output-dir $tmp/t3 --input-node x)" = 2

# Ctrl-C during a batch: the first (small) input is done, the second (slow) one is cancelled
mkdir -p $tmp/cin
cp $tmp/in/img0.3.png $tmp/cin/a.png
cp $tmp/big.png $tmp/cin/b.png
cp $tmp/big.png $tmp/cin/c.png
TSR_DEVICE=ref env --default-signal=INT $T run $tmp/slow.yaml --tile 128x128 --batch $tmp/cin \
    --output-dir $tmp/c1 --json >$tmp/c1.json 2>$tmp/c1.err &
pid=$!
wait_for $tmp/c1.json '"event":"stage"' 2 && sleep 0.3 # the stage of b.png
t0=$(usec)
kill -INT $pid
wait $pid
rc=$?
ms=$((($(usec) - t0) / 1000))
echo "     SIGINT in a batch: exit $rc after $ms ms"
check "SIGINT during a batch exits 130" test $rc = 130
check "... within 2 s" test $ms -lt 2000
check "... keeps the finished output" test -s $tmp/c1/a.png
check "... writes nothing for the cancelled and later inputs" test "$(ls -A $tmp/c1)" = a.png
check "... reports the cancelled item" grep -q '"batch-item","index":1,.*"status":"cancelled"' $tmp/c1.json
check "... and ends with batch-finish, cancelled" \
    grep -q '^{"event":"batch-finish","status":"cancelled","inputs":3,"done":1,"failed":0,"cancelled":1,"not_run":1' \
    <(tail -n 1 $tmp/c1.json)
check "... says so on stderr" grep -q 'batch interrupted by SIGINT: 1 done, 0 failed, 1 cancelled, 1 not run' $tmp/c1.err

cli_done jobs
