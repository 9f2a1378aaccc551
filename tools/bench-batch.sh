#!/usr/bin/env bash
# make bench (batch): 100 small images through one operation (Gaussian blur sigma 2, 256x256
# RGB PNGs), three ways on the same machine in the same run:
#   tessera --batch   one process: engine, kernels (and models) resident, the next file decoded
#                     while the device works on the current one
#   tessera loop      a shell loop of single `tessera run` processes (--set src.path / out.path)
#   vips loop         a shell loop of `vips gaussblur` processes
# Wall seconds for the whole batch and images per second; best of $REPS.
# Usage: tools/bench-batch.sh build/tessera [N]
set -euo pipefail
tessera=${1:-build/tessera}
N=${2:-100}
REPS=${REPS:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TSR_CACHE_DIR="$dir/cache"
mkdir -p "$dir/in" "$dir/out" "$dir/loop" "$dir/vips"
vips resize graphs/images/sample.png "$dir/base.png" 1.25 --kernel cubic >/dev/null
vips crop "$dir/base.png" "$dir/tile.png" 0 0 256 256
for i in $(seq -w 1 "$N"); do
    # Each input differs (a shifted crop), so that no cache can help.
    x=$(( (10#$i * 3) % 300 )); y=$(( (10#$i * 7) % 140 ))
    vips crop "$dir/base.png" "$dir/in/img$i.png" "$x" "$y" 256 256
done
cat > "$dir/blur.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $dir/tile.png } }
  op:  { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 2 } }
  out: { type: image.save, inputs: { image: op.image }, params: { path: $dir/out/x.png, compression: 1 } }
YAML
now() { date +%s.%N; }
best() { sort -g | head -n1; }
timeit() { # timeit CMD... -> best wall seconds
    local ts=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(now)
        "$@" >/dev/null 2>&1
        t1=$(now)
        ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
    done
    printf '%s\n' "${ts[@]}" | best
}
"$tessera" run "$dir/blur.yaml" -q --set "out.path=$dir/warm.png" # warm the kernel cache
batch() { "$tessera" run "$dir/blur.yaml" -q --batch "$dir/in/*.png" --output-dir "$dir/out"; }
loop() {
    for f in "$dir"/in/*.png; do
        "$tessera" run "$dir/blur.yaml" -q --set "src.path=$f" \
            --set "out.path=$dir/loop/$(basename "$f")"
    done
}
vloop() {
    for f in "$dir"/in/*.png; do
        vips gaussblur "$f" "$dir/vips/$(basename "$f")[compression=1]" 2
    done
}
tb=$(timeit batch)
tl=$(timeit loop)
tv=$(timeit vloop)
n_out=$(ls "$dir/out" | wc -l)
echo
echo "batch of $N images 256x256 RGB, Gaussian blur sigma 2, PNG in and out (best of $REPS)"
printf '%-34s %9s %10s\n' "implementation" "wall s" "images/s"
row() { printf '%-34s %9.2f %10.1f\n' "$1" "$2" "$(awk -v n="$N" -v t="$2" 'BEGIN {print n / t}')"; }
row "tessera run --batch (one process)" "$tb"
row "tessera run, shell loop" "$tl"
row "vips gaussblur, shell loop" "$tv"
[ "$n_out" -eq "$N" ] || echo "warning: the batch wrote $n_out of $N outputs"
