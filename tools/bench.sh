#!/usr/bin/env bash
# make bench: Tessera beside libvips and OpenCV on the same machine, in the same run.
# Workloads on a 3000x2000 RGB image: resize x4 and x0.25 lanczos3, Gaussian blur sigma 5,
# sharpen (unsharp mask) sigma 1 amount 0.8.
# "wall" is the whole command (PNG decode, processing, PNG encode at zlib level 1);
# "process" is the processing alone: for tessera the node's own time from --stats (kernels,
# plus upload/download for the first/last node), for vips the same operation between files in
# its native uncompressed .v format, for OpenCV the call on an array in memory
# (tools/bench-opencv.py: in-process, uint8 and float32 arrays; wall = imread + call + imwrite,
# float32 rows with the conversions; after the table, each float32 row over its uint8 twin).
# Best of $REPS runs.
# "RSS MiB": peak resident memory of the process (/usr/bin/time %M; the largest of the runs), for
# the tools run as a process (tessera, vips; OpenCV runs in-process, so none).
# "GB/s": float32 bytes the node reads and writes (input + output, 3 channels x 4 bytes a pixel)
# over process seconds, for tessera and for OpenCV's float32 rows (the same bytes, interleaved);
# the header prints the copy bandwidth it can be held against (build/bench-copy).
# Then: the memory budget through a chain of three nodes, and the tile target (docs/MEMORY.md)
# against fixed budgets. Usage: tools/bench.sh build/tessera
set -euo pipefail
tessera=${1:-build/tessera}
REPS=${REPS:-3}
here=$(cd "$(dirname "$0")" && pwd)
copybench=$(dirname "$tessera")/bench-copy
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TSR_CACHE_DIR="$dir/cache"

vips resize graphs/images/sample.png "$dir/in.png" 6.25 --kernel cubic
vips copy "$dir/in.png" "$dir/in.v"
read -r w h < <(vipsheader -f width "$dir/in.png" | tr '\n' ' '; vipsheader -f height "$dir/in.png")

# graph NAME NODE-TYPE PARAMS: load -> op -> save PNG at zlib level 1
graph() {
    cat > "$dir/$1.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $dir/in.png } }
  op:  { type: $2, inputs: { image: src.image }, params: { $3 } }
  out: { type: image.save, inputs: { image: op.image }, params: { path: $dir/t.png, compression: 1 } }
YAML
}
graph resize resize "scale: 4, filter: lanczos3"
graph shrink resize "scale: 0.25, filter: lanczos3"
graph blur blur.gaussian "sigma: 5"
graph sharpen sharpen "sigma: 1, amount: 0.8"

now() { date +%s.%N; }
best() { sort -g | head -n1; }
most() { sort -g | tail -n1; }

# tessera_time GRAPH DEVICE -> "wall process rss_kib"
tessera_time() {
    local walls=() procs=() rss=()
    TSR_DEVICE=$2 "$tessera" run "$1" -q >/dev/null # warm the kernel cache
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(now)
        TSR_DEVICE=$2 /usr/bin/time -f '%M' -o "$dir/rss" "$tessera" run "$1" -q --stats 2>"$dir/stats"
        t1=$(now)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
        procs+=("$(awk '/^stage.op.seconds:/ {print $2}' "$dir/stats")")
        rss+=("$(cat "$dir/rss")")
    done
    echo "$(printf '%s\n' "${walls[@]}" | best) $(printf '%s\n' "${procs[@]}" | best)" \
        "$(printf '%s\n' "${rss[@]}" | most)"
}

# vips_time "ARGS with IN/OUT" -> "wall process rss_kib" (RSS of the PNG-to-PNG command)
vips_time() {
    local walls=() procs=() rss=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(now)
        eval "/usr/bin/time -f '%M' -o '$dir/rss' vips $(echo "$1" | sed "s|IN|$dir/in.png|; s|OUT|$dir/v.png[compression=1]|")"
        t1=$(now)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
        rss+=("$(cat "$dir/rss")")
        t0=$(now)
        eval "vips $(echo "$1" | sed "s|IN|$dir/in.v|; s|OUT|$dir/v.v|")"
        t1=$(now)
        procs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
    done
    echo "$(printf '%s\n' "${walls[@]}" | best) $(printf '%s\n' "${procs[@]}" | best)" \
        "$(printf '%s\n' "${rss[@]}" | most)"
}

# Copy bandwidth, the yardstick for the GB/s column.
if [ -x "$copybench" ]; then
    "$copybench" 256 >"$dir/copy"
else
    echo "copy host - $copybench not built" >"$dir/copy"
fi
copy_host=$(awk '$2 == "host" {print $3}' "$dir/copy")
copy_dev=$(awk '$2 == "device" {print $3}' "$dir/copy")

# OpenCV, in one python process; its rows are slotted in under each workload below.
: >"$dir/cv"
cv_skip="python3 not found"
cv_note=""
if command -v python3 >/dev/null; then
    python3 "$here/bench-opencv.py" "$dir/in.png" "$dir" "$REPS" 5 1 0.8 >"$dir/cv" ||
        echo "skip	tools/bench-opencv.py failed (exit $?)" >"$dir/cv"
    if grep -q '^skip' "$dir/cv"; then
        cv_skip=$(awk -F'\t' '/^skip/ {print $2; exit}' "$dir/cv")
    else
        cv_skip=""
        cv_note=" and OpenCV $(awk -F'\t' '/^version/ {print $2; exit}' "$dir/cv") (in-process)"
    fi
fi

dev=$(TSR_DEVICE= "$tessera" devices 2>/dev/null | awk '/^[0-9]+\*/ {sub(/^[0-9]+\* /, ""); sub(/ \[.*/, ""); print; exit}')
echo "Tessera $("$tessera" --version | awk '{print $2}') vs $(vips --version)$cv_note,"
[ -z "$cv_skip" ] || echo "OpenCV skipped: $cv_skip"
echo "input ${w}x${h} RGB, best of $REPS"
echo "tessera device: ${dev:-?}; $(nproc) CPU cores"
echo "copy bandwidth (256 MiB, bytes read + written, best of 5): host memcpy ${copy_host:--} GB/s," \
    "device clEnqueueCopyBuffer ${copy_dev:--} GB/s"
echo
hdr() { printf '%-28s %-30s %8s %10s %8s %7s\n' "$@"; }
hdr "workload" "implementation" "wall s" "process s" "RSS MiB" "GB/s"
hdr "----------------------------" "------------------------------" "------" "---------" \
    "-------" "----"
# row WORKLOAD IMPL "wall process rss_kib" [BYTES]: RSS and GB/s are "-" where not measured
row() {
    local wall proc rss
    read -r wall proc rss <<<"$3"
    printf '%-28s %-30s %8.3f %10.3f %8s %7s\n' "$1" "$2" "$wall" "$proc" \
        "$(awk -v r="${rss:--}" 'BEGIN {if (r == "-") print "-"; else printf "%.0f", r / 1024}')" \
        "$(awk -v b="${4:-}" -v t="$proc" 'BEGIN {if (b == "" || t <= 0) print "-"; else printf "%.2f", b / t / 1e9}')"
}
# cv_rows WORKLOAD BYTES: OpenCV's rows for this workload (GB/s on the float32 ones)
cv_rows() {
    awk -F'\t' -v wl="$1" '$1 == wl {print $2 "\t" $3 "\t" $4}' "$dir/cv" |
        while IFS=$'\t' read -r impl wall proc; do
            case $impl in
            *f32) row "$1" "$impl" "$wall $proc -" "$2" ;;
            *) row "$1" "$impl" "$wall $proc -" ;;
            esac
        done
}
# float32 bytes in + out of a 3-channel image w x h -> w2 x h2
bytes() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN {printf "%.0f", (a * b + c * d) * 12}'; }
b_up=$(bytes "$w" "$h" $((w * 4)) $((h * 4)))
b_down=$(bytes "$w" "$h" $((w / 4)) $((h / 4)))
b_same=$(bytes "$w" "$h" "$w" "$h")
wl="resize x4 lanczos3"
row "$wl" "tessera (OpenCL)" "$(tessera_time "$dir/resize.yaml" "")" "$b_up"
row "$wl" "tessera (plain C ref)" "$(tessera_time "$dir/resize.yaml" ref)" "$b_up"
row "$wl" "vips resize" "$(vips_time 'resize IN OUT 4 --kernel lanczos3')"
cv_rows "$wl" "$b_up"
wl="resize x0.25 lanczos3"
row "$wl" "tessera (OpenCL)" "$(tessera_time "$dir/shrink.yaml" "")" "$b_down"
row "$wl" "tessera (plain C ref)" "$(tessera_time "$dir/shrink.yaml" ref)" "$b_down"
row "$wl" "vips resize" "$(vips_time 'resize IN OUT 0.25 --kernel lanczos3')"
cv_rows "$wl" "$b_down"
wl="gaussian blur sigma 5"
row "$wl" "tessera (OpenCL)" "$(tessera_time "$dir/blur.yaml" "")" "$b_same"
row "$wl" "tessera (plain C ref)" "$(tessera_time "$dir/blur.yaml" ref)" "$b_same"
row "$wl" "vips gaussblur" "$(vips_time 'gaussblur IN OUT 5')"
cv_rows "$wl" "$b_same"
wl="sharpen sigma 1 amount 0.8"
row "$wl" "tessera (OpenCL)" "$(tessera_time "$dir/sharpen.yaml" "")" "$b_same"
row "$wl" "tessera (plain C ref)" "$(tessera_time "$dir/sharpen.yaml" ref)" "$b_same"
cv_rows "$wl" "$b_same"
# What float32 costs OpenCV: each f32 row against its u8 twin.
if grep -q 'u8	' "$dir/cv"; then
    echo "OpenCV float32 / uint8 time (process; wall, with the conversions):"
    awk -F'\t' '$2 ~ / u8$/ {k = $1 "|" substr($2, 1, length($2) - 3); w8[k] = $3; p8[k] = $4}
        $2 ~ / f32$/ {k = $1 "|" substr($2, 1, length($2) - 4)
            if (k in p8 && p8[k] > 0 && w8[k] > 0) {
                split(k, a, "|")
                printf "  %-28s %-26s %6.2fx %6.2fx\n", a[1], a[2], $4 / p8[k], $3 / w8[k]
            }}' "$dir/cv"
fi
echo "(GB/s: float32 input + output bytes over process seconds; tessera's process time of the"
echo " first/last node includes the upload/download, so its bytes cross memory more than once."
echo " OpenCV u8 rows move a quarter of those bytes; its f32 rows show what float32 costs it."
echo " OpenCV: GaussianBlur k = 2*ceil(4 sigma)+1 with BORDER_REPLICATE as tessera's radius and"
echo " clamp edge; (0,0) is OpenCV's default, k = round(6 sigma + 1) | 1 on 8 bits, round(8 sigma"
echo " + 1) | 1 on float, BORDER_REFLECT_101. Sharpen: GaussianBlur + addWeighted(1 + amount,"
echo " -amount), threshold 0."
echo " Resize: INTER_LANCZOS4 (8x8 taps, a=4), not widened when shrinking, so x0.25 aliases where"
echo " tessera and vips filter over the source's 4x wider support. vips sharpen works in LAB"
echo " with its own parameters, so it has no sharpen row.)"

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
rm -f "$dir/b.v" "$dir/r.v" "$dir/vchain.png" "$dir/chain.png"
printf '%-24s %6s %7.2f %6s %9s %9s %9s %9.1f\n' "vips (3 commands, .v)" "-" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "-" "-" "-" "-" "$(awk '{print $1 / 1024}' "$dir/rss")"
echo "(est. = planner's estimate of a tile's peak; used/held = pool peak in use / in use + cached;"
echo " tessera's RSS includes the host copies of the input and the output, 288 MiB and 1152 MiB"
echo " as float32, since stage images live on the host; the pool is the device part."
echo " vips RSS is the largest of its three processes; vips sharpen works in LAB on 8 bits.)"

# --- the tile target: a blur of a 8000x5334 image, the default plan against fixed budgets ------
vips resize graphs/images/sample.png "$dir/big.png" 16.67
vips copy "$dir/big.png" "$dir/big.tif" # uncompressed: the decode is not what is measured
read -r bw bh < <(vipsheader -f width "$dir/big.tif" | tr '\n' ' '; vipsheader -f height "$dir/big.tif")
cat > "$dir/bigblur.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $dir/big.tif } }
  op:  { type: blur.gaussian, inputs: { image: src.image }, params: { sigma: 5 } }
  out: { type: image.output, inputs: { image: op.image } }
YAML
echo
echo "the tile target: Gaussian blur sigma 5 of ${bw}x${bh} RGB (the blur stage's seconds, best of $REPS)"
printf '%-40s %8s %6s %9s %8s %7s\n' "plan" "stage s" "tiles" "tile MiB" "RSS MiB" "GB/s"
b_big=$(bytes "$bw" "$bh" "$bw" "$bh")
: >"$dir/plans"
# plan_row LABEL [TSR_TILE_TARGET] [--vram-limit SIZE]
plan_row() {
    local label=$1 target=$2 secs=() rss=() tiles=- est=0 ok=1
    shift 2
    for _ in $(seq "$REPS"); do
        if env ${target:+TSR_TILE_TARGET=$target} /usr/bin/time -f '%M' -o "$dir/rss" \
            "$tessera" run "$dir/bigblur.yaml" -q --stats "$@" 2>"$dir/stats"; then
            secs+=("$(awk '/^stage.op.seconds:/ {print $2}' "$dir/stats")")
            rss+=("$(cat "$dir/rss")")
            tiles=$(awk '/^stage.op.tiles:/ {print $2}' "$dir/stats")
            est=$(awk '/^stage.op.estimate_bytes:/ {print $2}' "$dir/stats")
        else
            ok=0
            break
        fi
    done
    if [ "$ok" = 0 ]; then
        printf '%-40s failed: %s\n' "$label" "$(grep -v '^[a-z_.]*: ' "$dir/stats" | tail -n1)"
        return
    fi
    local s r
    s=$(printf '%s\n' "${secs[@]}" | best)
    r=$(printf '%s\n' "${rss[@]}" | most)
    echo "$label	$s" >>"$dir/plans"
    printf '%-40s %8.3f %6s %9.1f %8.0f %7.2f\n' "$label" "$s" "$tiles" \
        "$(awk -v e="$est" 'BEGIN {print e / 1048576}')" "$(awk -v r="$r" 'BEGIN {print r / 1024}')" \
        "$(awk -v b="$b_big" -v t="$s" 'BEGIN {print b / t / 1e9}')"
}
"$tessera" run "$dir/bigblur.yaml" -q >/dev/null # warm the kernel cache
target=$("$tessera" run "$dir/bigblur.yaml" --dry-run 2>&1 | sed -n 's/^tile target: //p' |
    sed 's/.*(\(.*\)).*/\1/')
plan_row "default (tile target ${target:-?})" ""
for limit in 16M 32M 64M 128M 512M 2G; do
    plan_row "TSR_TILE_TARGET=none --vram-limit $limit" none --vram-limit "$limit"
done
awk -F'\t' '$1 ~ /^default/ {d = $2} {if (b == "" || $2 < b) {b = $2; bl = $1}}
    END {if (d > 0 && NR > 1 && b > 0) printf "default within %.2fx of the best (%s, %.3f s; issue target 1.2x)\n", d / b, bl, b}' \
    "$dir/plans"
echo "(tile MiB: the planner's estimate of a tile's device peak; the blur reads and writes"
echo " float32 planar images: GB/s counts that input + output once, the halo rows aside.)"
rm -f "$dir/big.png" "$dir/big.tif"

echo
echo "Notes: vips enlarges through its bicubic interpolator whatever --kernel says (DESIGN.md);"
echo "vips gaussblur sizes its mask by min_ampl 0.2 (tessera: radius ceil(4 sigma)), and vips"
echo "processes 8-bit samples where tessera processes float32."
