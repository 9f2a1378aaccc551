#!/usr/bin/env bash
# make bench: Tessera beside libvips on the same machine, in the same run.
# Workloads on a 3000x2000 RGB image: resize x4 lanczos3, Gaussian blur sigma 5.
# "wall" is the whole command (PNG decode, processing, PNG encode at zlib level 1);
# "process" is the processing alone: for tessera the node's own time from --stats (kernels,
# plus upload/download for the first/last node), for vips the same operation between files in
# its native uncompressed .v format. Best of $REPS runs. Usage: tools/bench.sh build/tessera
set -euo pipefail
tessera=${1:-build/tessera}
REPS=${REPS:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TSR_CACHE_DIR="$dir/cache"

vips resize graphs/images/sample.png "$dir/in.png" 6.25 --kernel cubic
vips copy "$dir/in.png" "$dir/in.v"
read -r w h < <(vipsheader -f width "$dir/in.png" | tr '\n' ' '; vipsheader -f height "$dir/in.png")

cat > "$dir/resize.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $dir/in.png } }
  op:  { type: resize, inputs: { image: src.image }, params: { scale: 4, filter: lanczos3 } }
  out: { type: image.save, inputs: { image: op.image }, params: { path: $dir/t.png, compression: 1 } }
YAML
cat > "$dir/blur.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $dir/in.png } }
  op:  { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 5 } }
  out: { type: image.save, inputs: { image: op.image }, params: { path: $dir/t.png, compression: 1 } }
YAML

now() { date +%s.%N; }
best() { sort -g | head -n1; }

# tessera_time GRAPH DEVICE -> "wall process"
tessera_time() {
    local walls=() procs=()
    TSR_DEVICE=$2 "$tessera" run "$1" -q >/dev/null # warm the kernel cache
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(now)
        TSR_DEVICE=$2 "$tessera" run "$1" -q --stats 2>"$dir/stats"
        t1=$(now)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
        procs+=("$(awk '/^stage.op.seconds:/ {print $2}' "$dir/stats")")
    done
    echo "$(printf '%s\n' "${walls[@]}" | best) $(printf '%s\n' "${procs[@]}" | best)"
}

# vips_time "ARGS with IN/OUT" -> "wall process"
vips_time() {
    local walls=() procs=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(now)
        eval "vips $(echo "$1" | sed "s|IN|$dir/in.png|; s|OUT|$dir/v.png[compression=1]|")"
        t1=$(now)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
        t0=$(now)
        eval "vips $(echo "$1" | sed "s|IN|$dir/in.v|; s|OUT|$dir/v.v|")"
        t1=$(now)
        procs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
    done
    echo "$(printf '%s\n' "${walls[@]}" | best) $(printf '%s\n' "${procs[@]}" | best)"
}

dev=$(TSR_DEVICE= "$tessera" devices 2>/dev/null | awk '/^[0-9]+\*/ {sub(/^[0-9]+\* /, ""); sub(/ \[.*/, ""); print; exit}')
echo "Tessera $("$tessera" --version | awk '{print $2}') vs $(vips --version), input ${w}x${h} RGB, best of $REPS"
echo "tessera device: ${dev:-?}; $(nproc) CPU cores"
echo
printf '%-28s %-22s %10s %12s\n' "workload" "implementation" "wall s" "process s"
printf '%-28s %-22s %10s %12s\n' "----------------------------" "----------------------" "------" "---------"
row() { printf '%-28s %-22s %10.3f %12.3f\n' "$1" "$2" $3; }
row "resize x4 lanczos3" "tessera (OpenCL)" "$(tessera_time "$dir/resize.yaml" "")"
row "resize x4 lanczos3" "tessera (plain C ref)" "$(tessera_time "$dir/resize.yaml" ref)"
row "resize x4 lanczos3" "vips resize" "$(vips_time 'resize IN OUT 4 --kernel lanczos3')"
row "gaussian blur sigma 5" "tessera (OpenCL)" "$(tessera_time "$dir/blur.yaml" "")"
row "gaussian blur sigma 5" "tessera (plain C ref)" "$(tessera_time "$dir/blur.yaml" ref)"
row "gaussian blur sigma 5" "vips gaussblur" "$(vips_time 'gaussblur IN OUT 5')"

# --- the memory budget: a 6000x4000 image through blur -> resize x2 -> sharpen -------------
vips resize graphs/images/sample.png "$dir/big.png" 12.5 --kernel cubic
cat > "$dir/chain.yaml" <<YAML
version: 1
nodes:
  src:   { type: image.load, params: { path: $dir/big.png } }
  blur:  { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 2 } }
  up:    { type: resize, inputs: { image: blur.image }, params: { scale: 2, filter: lanczos3 } }
  sharp: { type: sharpen, inputs: { image: up.image }, params: { sigma: 1, amount: 0.8 } }
  out:   { type: image.save, inputs: { image: sharp.image }, params: { path: $dir/chain.png, compression: 1 } }
YAML
echo
echo "blur sigma 2 -> resize x2 lanczos3 -> sharpen, 6000x4000 RGB in, 12000x8000 out (one run each)"
printf '%-24s %6s %7s %6s %9s %9s %9s %9s\n' "implementation" "limit" "wall s" "tiles" "est. MiB" "used MiB" "held MiB" "RSS MiB"
for limit in 64M 256M 2G; do
    t0=$(now)
    if /usr/bin/time -f '%M' -o "$dir/rss" "$tessera" run "$dir/chain.yaml" -q --stats \
        --vram-limit "$limit" 2>"$dir/stats"; then
        t1=$(now)
        awk -v lim="$limit" -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
            -v rss="$(cat "$dir/rss")" '
            /^plan.tiles:/ {tiles = $2} /^plan.estimate_bytes:/ {est = $2}
            /^pool.peak_held_bytes:/ {held = $2} /^pool.peak_in_use_bytes:/ {used = $2}
            END {printf "%-24s %6s %7.2f %6d %9.1f %9.1f %9.1f %9.1f\n", "tessera (OpenCL)", lim,
                 wall, tiles, est / 1048576, used / 1048576, held / 1048576, rss / 1024}' "$dir/stats"
    else
        printf '%-24s %6s failed: %s\n' "tessera (OpenCL)" "$limit" "$(tail -n1 "$dir/stats")"
    fi
done
t0=$(now)
/usr/bin/time -f '%M' -o "$dir/rss" sh -c "vips gaussblur '$dir/big.png' '$dir/b.v' 2 && \
    vips resize '$dir/b.v' '$dir/r.v' 2 --kernel lanczos3 && \
    vips sharpen '$dir/r.v' '$dir/vchain.png[compression=1]' --sigma 1"
t1=$(now)
printf '%-24s %6s %7.2f %6s %9s %9s %9s %9.1f\n' "vips (3 commands, .v)" "-" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "-" "-" "-" "-" "$(awk '{print $1 / 1024}' "$dir/rss")"
echo "(est. = planner's estimate of a tile's peak; used/held = pool peak in use / in use + cached;"
echo " tessera's RSS includes the host copies of the input and the output, 288 MiB and 1152 MiB"
echo " as float32, since stage images live on the host; the pool is the device part."
echo " vips RSS is the largest of its three processes; vips sharpen works in LAB on 8 bits.)"

echo
echo "Notes: vips enlarges through its bicubic interpolator whatever --kernel says (DESIGN.md);"
echo "vips gaussblur sizes its mask by min_ampl 0.2 (tessera: radius ceil(4 sigma)), and vips"
echo "processes 8-bit samples where tessera processes float32."
