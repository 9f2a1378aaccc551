#!/usr/bin/env bash
# make bench (second part): the bundled super-resolution models, ncnn's CPU beside Tessera.
# For each model, one tile covering the whole input with the original program's padding:
#   ncnn     the python ncnn package, CPU, fp32 throughout, --threads N threads; the network
#            alone (median of REPS runs after a warm-up), host padding and crop not timed;
#   tessera  `tessera run` of load -> model.load -> upscale -> save: the upscale stage's
#            seconds from --stats (median of REPS runs after a warm-up), or the whole command
#            when the stats name no such stage; n/a when the graph does not run (nodes missing).
# Inputs: 512x512 (realesrgan-x4plus: 128x128), the centre of Set14 lenna.png.
# MACs: multiply-adds of the padded tile (convolutions, deconvolutions, inner products), read
# from the .param geometry; GFLOP/s = 2*MACs/seconds. ncnn's winograd convolutions do fewer
# multiplies than that count, so its rate can pass the peak. The peak column is a proxy:
# numpy float32 matmul on the same number of threads.
# Skipped (exit 0, with the reason) when python3, numpy, Pillow or the ncnn package is missing.
# Usage: tools/bench-models.sh [--threads N] [--models DIR] [--only NAME] [TESSERA]
set -euo pipefail
threads=$(nproc)
models_dir=../shared/models
only=
tessera=build/tessera
while [ $# -gt 0 ]; do
    case $1 in
    --threads) threads=$2; shift 2 ;;
    --models) models_dir=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) tessera=$1; shift ;;
    esac
done
REPS=${REPS:-3}
here=$(cd "$(dirname "$0")" && pwd)
py=("python3" "$here/bench-ncnn.py")

if ! command -v python3 >/dev/null; then
    echo "model bench skipped: python3 not found"
    exit 0
fi
if ! why=$(python3 -c 'import numpy, PIL, ncnn' 2>&1); then
    echo "model bench skipped: the python packages ncnn, numpy and pillow are needed" \
        "(pip install ncnn numpy pillow): $(echo "$why" | tail -n1)"
    exit 0
fi
if [ ! -d "$models_dir" ]; then
    echo "model bench skipped: no models folder $models_dir (--models DIR)"
    exit 0
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TSR_CACHE_DIR="$dir/cache"
shared=$(cd "$models_dir/.." && pwd)
models_abs=$(cd "$models_dir" && pwd)

median() { sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }
now() { date +%s.%N; }

# model_path NAME -> the .param path (model.load takes a folder or a .param)
model_path() {
    python3 -c "import sys; sys.path.insert(0, '$here'); import ncnnmodels as nm
print(dict((m[0], m[1]) for m in nm.MODELS)['$1'] + '.param')"
}

# tessera_time NAME IN -> seconds, or n/a
tessera_time() {
    local name=$1 in=$2 g="$dir/$1.yaml" times=()
    if [ ! -x "$tessera" ]; then
        echo "n/a"
        return
    fi
    cat >"$g" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: "$in" } }
  net: { type: model.load, params: { path: "$models_abs/$(model_path "$name")" } }
  up:  { type: upscale, inputs: { image: src.image, model: net.model } }
  out: { type: image.save, inputs: { image: up.image }, params: { path: "$dir/t.png", compression: 1 } }
YAML
    if ! "$tessera" run "$g" -q >"$dir/err" 2>&1; then # warm-up (kernel cache)
        echo "tessera: $(tail -n1 "$dir/err" | sed 's/^.*: error: /error: /')" >>"$dir/notes"
        echo "n/a"
        return
    fi
    for _ in $(seq "$REPS"); do
        local t0 t1 s
        t0=$(now)
        "$tessera" run "$g" -q --stats 2>"$dir/stats" || { echo "n/a"; return; }
        t1=$(now)
        s=$(awk '/^stage\.up\.seconds:/ {print $2}' "$dir/stats")
        if [ -z "$s" ]; then
            s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
            echo "tessera: no stage.up.seconds in --stats, timed the whole command" >>"$dir/notes"
        fi
        times+=("$s")
    done
    printf '%s\n' "${times[@]}" | median
}

peak=$("${py[@]}" peak --threads "$threads")
echo "Super-resolution models: ncnn $(python3 -c 'import ncnn; print(ncnn.__version__)') (CPU," \
    "fp32, $threads threads) vs Tessera ($("$tessera" --version 2>/dev/null | awk '{print $2}' ||
        echo '?')), median of $REPS after a warm-up, one tile per image"
echo "peak: numpy float32 matmul on $threads threads = $peak GFLOP/s (a proxy for the CPU's peak)"
echo
echo "| model | input | MACs (G) | ncnn s | tessera s | ratio | ncnn GFLOP/s | tessera GFLOP/s | peak GFLOP/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for name in $("${py[@]}" models); do
    [ -n "$only" ] && [ "$only" != "$name" ] && continue
    if [ "$name" = realesrgan-x4plus ]; then size=128; else size=512; fi
    in="$dir/in$size.png"
    [ -f "$in" ] || "${py[@]}" input "$size" "$size" "$in" "$shared"
    read -r ns macs padded < <("${py[@]}" time "$name" "$in" --threads "$threads" --reps "$REPS" \
        --models "$models_dir")
    ts=$(tessera_time "$name" "$in")
    awk -v n="$name" -v in_="${size}x${size} (tile $padded)" -v m="$macs" -v ns="$ns" -v ts="$ts" \
        -v pk="$peak" 'BEGIN {
        tn = (ts == "n/a") ? "n/a" : sprintf("%.3f", ts)
        ratio = (ts == "n/a") ? "n/a" : sprintf("%.2f", ts / ns)
        tg = (ts == "n/a") ? "n/a" : sprintf("%.1f", 2 * m / ts / 1e9)
        printf "| %s | %s | %.1f | %.3f | %s | %s | %.1f | %s | %s |\n", n, in_, m / 1e9, ns, tn,
            ratio, 2 * m / ns / 1e9, tg, pk }'
done
echo
echo "ratio = tessera s / ncnn s (above 1: Tessera slower). MACs count the padded tile."
if [ -f "$dir/notes" ]; then
    sort -u "$dir/notes"
fi
