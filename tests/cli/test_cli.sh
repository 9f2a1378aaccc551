#!/usr/bin/env bash
# The command line: help, version, listings, exit codes, --set, outputs, compare thresholds,
# and that a failed run leaves an existing output untouched.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

check "--help exits 0 and lists commands" bash -c "$T --help | grep -q 'validate GRAPH'"
check "--version prints the version" bash -c "$T --version | grep -qE '^tessera [0-9]+\.[0-9]+\.[0-9]+$'"
check "unknown command exits 2" test "$(code $T frobnicate)" = 2
check "no command exits 2" test "$(code $T)" = 2
check "run --help exits 0" bash -c "$T run --help | grep -q -- '--set'"
check "run without a graph exits 2" test "$(code $T run)" = 2
check "run with an unknown option exits 2" test "$(code $T run graphs/demo.yaml --frob)" = 2
check "nodes lists every node type" bash -c "out=\$($T nodes) && for n in image.load image.save resize blur.gaussian adjust.brightness_contrast adjust.gamma adjust.invert color.grayscale; do grep -q \"^\$n\$\" <<<\"\$out\" || exit 1; done"
check "nodes --json is a JSON document naming each type" bash -c "$T nodes --json | head -c 1 | grep -q '[{[]' && $T nodes --json | grep -q '\"blur.gaussian\"'"
check "devices lists a device with its memory" bash -c "$T devices | grep -qE 'global memory [0-9.]+ (MiB|GiB)'"
mkdir -p out # the example graphs write under out/, which validation checks is writable
check "validate accepts every example graph" bash -c "for g in graphs/*.yaml; do $T validate \$g >/dev/null || exit 1; done"

# run the demo into a temporary directory
check "run demo with --set writes the output" \
    bash -c "$T run graphs/demo.yaml -q --set out.path=$tmp/demo.png && test -s $tmp/demo.png"
check "demo output is twice the input size" \
    bash -c "test \"\$(vipsheader -f width $tmp/demo.png)x\$(vipsheader -f height $tmp/demo.png)\" = 960x640"
check "no temporary file left next to the output" bash -c "test \$(ls -A $tmp | wc -l) = 1"
check "--stats prints key: value lines" \
    bash -c "$T run graphs/demo.yaml -q --stats --set out.path=$tmp/s.png 2>&1 >/dev/null | grep -qE '^pool.peak_in_use_bytes: [0-9]+$'"
check "reference device gives the same output within 1/255" \
    bash -c "TSR_DEVICE=ref $T run graphs/demo.yaml -q --set out.path=$tmp/ref.png && $T compare $tmp/demo.png $tmp/ref.png --max-diff 1 >/dev/null"
check "--set with an unknown param exits 2" test "$(code $T run graphs/demo.yaml --set up.sigma=2)" = 2
check "--set with a bad value exits 2" test "$(code $T run graphs/demo.yaml --set up.filter=sinc)" = 2
check "--set with an unknown node exits 2" test "$(code $T run graphs/demo.yaml --set nope.path=x)" = 2
# an unwritable kernel cache directory costs the disk cache, not the run, and is said once
check "TSR_CACHE_DIR that cannot be made: the run succeeds and warns once" \
    bash -c "test \"\$(TSR_CACHE_DIR=/proc/nonexistent/tessera $T run graphs/demo.yaml -q --set out.path=$tmp/nc.png 2>&1 >/dev/null | grep -c '^tessera: warning: kernel cache directory .* is not writable')\" = 1 && test -s $tmp/nc.png"
touch $tmp/plainfile
check "TSR_CACHE_DIR under a regular file: the run succeeds and warns once" \
    bash -c "test \"\$(TSR_CACHE_DIR=$tmp/plainfile/cache $T run graphs/demo.yaml -q --set out.path=$tmp/nc2.png 2>&1 >/dev/null | grep -c \"^tessera: warning: kernel cache directory '$tmp/plainfile/cache' is not writable (Not a directory)\")\" = 1 && test -s $tmp/nc2.png"
check "a writable TSR_CACHE_DIR gives no warning" \
    bash -c "test -z \"\$(TSR_CACHE_DIR=$tmp/kc $T run graphs/demo.yaml -q --set out.path=$tmp/nc3.png 2>&1 >/dev/null)\""
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    # a read-only home (as another user: root writes anywhere), where PoCL's own cache lives too
    ro=$(mktemp -d) && chmod 555 "$ro" && chmod 755 $tmp && mkdir -p $tmp/rw && chmod 777 $tmp/rw && cp graphs/images/sample.png $tmp/ro-in.png && chmod 644 $tmp/ro-in.png
    printf 'version: 1\nnodes:\n  src: { type: image.load, params: { path: %s/ro-in.png } }\n  b: { type: blur.gaussian, inputs: { image: src.image } }\n  out: { type: image.save, inputs: { image: b.image }, params: { path: %s/rw/o.png } }\n' $tmp $tmp > $tmp/ro.yaml
    chmod 644 $tmp/ro.yaml
    check "a read-only HOME: the run still finds its device and warns once" \
        bash -c "test \"\$(env -i PATH=/usr/bin:/bin HOME=$ro setpriv --reuid=65534 --regid=65534 --clear-groups $(realpath $T) run $tmp/ro.yaml -q 2>&1 | grep -c '^tessera: warning: kernel cache directory')\" = 1 && test -s $tmp/rw/o.png"
    rmdir "$ro"
fi
# TSR_MAX_PIXELS takes sizes as other options do, and refuses anything else at engine creation
check "TSR_MAX_PIXELS=1e9 accepts the demo" bash -c "TSR_MAX_PIXELS=1e9 $T validate graphs/demo.yaml >/dev/null"
check "TSR_MAX_PIXELS=500M accepts the demo" bash -c "TSR_MAX_PIXELS=500M $T validate graphs/demo.yaml >/dev/null"
check "TSR_MAX_PIXELS=1K refuses the demo's image" bash -c "TSR_MAX_PIXELS=1K $T validate graphs/demo.yaml 2>&1 | grep -q 'pixel'"
check "TSR_MAX_PIXELS=abc is refused with a message" \
    bash -c "TSR_MAX_PIXELS=abc $T validate graphs/demo.yaml 2>&1 | grep -q \"TSR_MAX_PIXELS: 'abc' is not a pixel count\""
check "TSR_MAX_PIXELS=abc exits 2" test "$(TSR_MAX_PIXELS=abc code $T validate graphs/demo.yaml)" = 2
check "TSR_MAX_PIXELS=1.5 is refused" test "$(TSR_MAX_PIXELS=1.5 code $T validate graphs/demo.yaml)" = 2
# --set assignments are applied together, then validated: their order never matters
check "--set path then format runs" \
    bash -c "$T run graphs/demo.yaml -q --set out.path=$tmp/pf --set out.format=png && test -s $tmp/pf"
check "--set format then path runs" \
    bash -c "$T run graphs/demo.yaml -q --set out.format=png --set out.path=$tmp/fp && test -s $tmp/fp"
check "--set moves a resize from scale to width (either order)" \
    bash -c "$T validate graphs/demo.yaml --set up.scale= --set up.width=90 >/dev/null && $T validate graphs/demo.yaml --set up.width=90 --set up.scale= >/dev/null"
check "--set with scale and width together is refused at the --set" \
    bash -c "$T validate graphs/demo.yaml --set up.width=90 2>&1 | grep -q -- '--set up.width: error: node .up.: resize takes either'"
check "--set cannot remove a required param (exit 2)" \
    bash -c "$T validate graphs/demo.yaml --set out.path= 2>&1 | grep -q -- \"--set out.path: error: node 'out': param 'path' is required and cannot be removed\""
check "--set removing a required param exits 2" test "$(code $T validate graphs/demo.yaml --set out.path=)" = 2
check "--device out of range exits 3" test "$(code $T run graphs/demo.yaml --device 99)" = 3

# AI upscaling: the demo graph, the model nodes' errors
check "nodes lists the model nodes" bash -c "$T nodes | grep -q '^model.load$' && $T nodes | grep -q '^upscale$'"
check "the upscale demo doubles the image" \
    bash -c "$T run graphs/upscale.yaml -q --set out.path=$tmp/up.png && test \"\$(vipsheader -f width $tmp/up.png)x\$(vipsheader -f height $tmp/up.png)\" = 320x214"
check "a second upscale run on the device matches the reference engine" \
    bash -c "TSR_DEVICE=ref $T run graphs/upscale.yaml -q --set out.path=$tmp/upref.png && $T compare $tmp/up.png $tmp/upref.png --max-diff 1 >/dev/null"
rm -f "$tmp/up.png" "$tmp/upref.png"
check "a missing model is an error naming the node and the path" \
    bash -c "$T validate graphs/upscale.yaml --set net.path=no/such/model 2>&1 | grep -q \"node 'net': no/such/model: cannot open\""
check "a missing model exits 1 before any pixel moves" \
    test "$(code $T run graphs/upscale.yaml --set net.path=no/such/model --set out.path=$tmp/x.png)" = 1
check "a model folder with several .param files is refused naming them" \
    bash -c "$T validate graphs/upscale.yaml --set net.path=../shared/models/realcugan-se 2>&1 | grep -q 'up3x-no-denoise.param'"
check "overlap exact is refused for a model with global pooling" \
    test "$(code $T validate graphs/upscale-cunet.yaml --set up.overlap=exact)" = 2
check "a bad overlap is a graph error" test "$(code $T validate graphs/upscale.yaml --set up.overlap=wide)" = 2
check "a VRAM budget below the model's weights fails naming them" \
    bash -c "$T run graphs/upscale-cunet.yaml --vram-limit 1M --set out.path=$tmp/x.png 2>&1 | grep -q 'resident weights'"
check "no output after the failed model runs" bash -c "! test -e $tmp/x.png"

# a failed run must not touch an existing output
echo "precious" >"$tmp/keep.png"
check "failed run exits 1" test "$(code $T run graphs/demo.yaml -q --set src.path=tests/bad/files/truncated-data.png --set out.path=$tmp/keep.png)" = 1
check "failed run leaves the existing output untouched" bash -c "test \"\$(cat $tmp/keep.png)\" = precious"
check "failed run leaves no temporary file" bash -c "test \$(ls -A $tmp | grep -c tmp) = 0"

# compare
check "compare identical images: exit 0, PSNR inf, SSIM 1" \
    bash -c "$T compare graphs/images/sample.png graphs/images/sample.png | tr '\n' ' ' | grep -qE 'max_abs_diff: 0.000000 .*psnr_db: inf ssim: 1.000000'"
check "compare with a negative threshold exits 2" test "$(code $T compare $tmp/demo.png $tmp/ref.png --max-diff -0.5)" = 2
$T run graphs/blur.yaml -q --set out.path=$tmp/blur.png
check "compare over --max-diff exits 1" test "$(code $T compare graphs/images/sample.png $tmp/blur.png --max-diff 0)" = 1
check "compare with a failing --min-psnr exits 1" test "$(code $T compare graphs/images/sample.png $tmp/blur.png --min-psnr 60)" = 1
check "compare with a passing --min-psnr exits 0" test "$(code $T compare graphs/images/sample.png $tmp/blur.png --min-psnr 10)" = 0
check "compare of different sizes exits non-zero" bash -c "! $T compare graphs/images/sample.png $tmp/demo.png >/dev/null 2>&1"
check "compare of a missing file exits 1" test "$(code $T compare graphs/images/sample.png $tmp/nope.png)" = 1

cli_done cli
