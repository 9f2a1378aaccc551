#!/usr/bin/env bash
# Kernel throughput: processing time only (stage.op.seconds from tessera run --stats: the node's
# kernels plus upload of its input and download of its output, since it is the graph's only
# compute node), 3000x2000 RGB float32 planar, best of $REPS; vips on the same data between .v
# files; achieved bandwidth = float32 plane bytes read + written / seconds, beside the host's
# memcpy bandwidth (build/bench-copy from tools/bench-copy.c, 256 MiB copies, best of 5).
# Usage: tools/bench-kernels.sh [build/tessera] [workload...]; workloads: blur sharpen up4 down4
set -euo pipefail
tessera=${1:-build/tessera}
shift || true
want=${*:-blur sharpen up4 down4}
REPS=${REPS:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TSR_CACHE_DIR="$dir/cache"

vips resize graphs/images/sample.png "$dir/in.png" 6.25 --kernel cubic
vips copy "$dir/in.png" "$dir/in.v"
read -r w h < <(vipsheader -f width "$dir/in.png" | tr '\n' ' '; vipsheader -f height "$dir/in.png")
copybench=$(dirname "$tessera")/bench-copy
[ -x "$copybench" ] || make -s "$copybench"

graph() { # NAME TYPE PARAMS
    cat > "$dir/$1.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $dir/in.png } }
  op:  { type: $2, inputs: { image: src.image }, params: { $3 } }
  out: { type: image.save, inputs: { image: op.image }, params: { path: $dir/t.png, compression: 1 } }
YAML
}
graph blur blur.gaussian "sigma: 5"
graph sharpen sharpen "sigma: 5, amount: 1"
graph up4 resize "scale: 4, filter: lanczos3"
graph down4 resize "scale: 0.25, filter: lanczos3"

now() { date +%s.%N; }
best() { sort -g | head -n1; }
tessera_time() {
    local procs=()
    "$tessera" run "$dir/$1.yaml" -q >/dev/null # warm the kernel cache
    for _ in $(seq "$REPS"); do
        "$tessera" run "$dir/$1.yaml" -q --stats 2>"$dir/stats"
        procs+=("$(awk '/^stage.op.seconds:/ {print $2}' "$dir/stats")")
    done
    printf '%s\n' "${procs[@]}" | best
}
vips_time() {
    local procs=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(now)
        eval "vips $(echo "$1" | sed "s|IN|$dir/in.v|; s|OUT|$dir/v.v|")"
        t1=$(now)
        procs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
    done
    printf '%s\n' "${procs[@]}" | best
}
copy_gbs=$("$copybench" 256 | awk '$2 == "host" {print $3}')
echo "input ${w}x${h} RGB float32, best of $REPS; $(nproc) CPU cores; memcpy ${copy_gbs} GB/s"
printf '%-22s %10s %10s %10s %12s\n' workload "tessera s" "vips s" "tsr GB/s" "memcpy GB/s"
px=$((w * h * 3 * 4))
for wl in $want; do
    case $wl in
    blur) bytes=$((2 * px)) v='gaussblur IN OUT 5' ;;
    sharpen) bytes=$((2 * px)) v='sharpen IN OUT --sigma 5' ;;
    up4) bytes=$((px + 16 * px)) v='resize IN OUT 4 --kernel lanczos3' ;;
    down4) bytes=$((px + px / 16)) v='resize IN OUT 0.25 --kernel lanczos3' ;;
    esac
    t=$(tessera_time "$wl")
    vt=$(vips_time "$v")
    awk -v n="$wl" -v t="$t" -v vt="$vt" -v b="$bytes" -v c="$copy_gbs" \
        'BEGIN {printf "%-22s %10.3f %10.3f %10.2f %12s\n", n, t, vt, b / t / 1e9, c}'
done
