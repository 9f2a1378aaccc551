#!/usr/bin/env bash
# WebP through the CLI: tessera op writes .webp (lossy by default, lossless on request) that other
# tools read, a lossless round trip compares exactly, and a graph saving an image wider than
# WebP's 16383 pixels is refused at validation (exit 2) with nothing written.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

in=graphs/images/sample.png
check "op adjust.invert writes a lossy .webp (VP8)" \
    bash -c "$T op adjust.invert $in $tmp/inv.webp -q && webpinfo $tmp/inv.webp | grep -q 'Format: Lossy'"
check "... that dwebp decodes to the same size" \
    bash -c "dwebp -quiet $tmp/inv.webp -o $tmp/inv-dwebp.png && test \"\$(vipsheader -f width $tmp/inv-dwebp.png)x\$(vipsheader -f height $tmp/inv-dwebp.png)\" = 480x320"
check "lossy q90 is close to the PNG of the same op (PSNR above 30 dB)" \
    bash -c "$T op adjust.invert $in $tmp/inv.png -q && $T compare $tmp/inv.png $tmp/inv.webp --min-psnr 30 >/dev/null"
check "out.lossless=true writes VP8L" \
    bash -c "$T op adjust.invert $in $tmp/ll.webp out.lossless=true -q && webpinfo $tmp/ll.webp | grep -q 'Format: Lossless'"
check "a lossless round trip compares exactly (--max-diff 0)" \
    bash -c "$T compare $tmp/inv.png $tmp/ll.webp --max-diff 0 | grep -qx 'max_abs_diff: 0.000000'"
check "vips reads the lossless file to the same pixels" \
    bash -c "vips copy $tmp/ll.webp $tmp/ll-vips.png && $T compare $tmp/inv.png $tmp/ll-vips.png --max-diff 0 >/dev/null"
check "a .webp loads as input (webp -> png, invert twice gives the source)" \
    bash -c "$T op adjust.invert $tmp/ll.webp $tmp/back.png -q && $T compare $in $tmp/back.png --max-diff 0 >/dev/null"
check "out.quality changes the size" \
    bash -c "$T op adjust.invert $in $tmp/q20.webp out.quality=20 -q && $T op adjust.invert $in $tmp/q95.webp out.quality=95 -q && test \$(stat -c %s $tmp/q20.webp) -lt \$(stat -c %s $tmp/q95.webp)"
check "out.format=webp to standard output" \
    bash -c "$T op adjust.invert $in - out.format=webp -q > $tmp/stdout.webp && webpinfo -quiet $tmp/stdout.webp"

mkdir -p "$tmp/g"
cat > "$tmp/g/wide.yaml" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $PWD/graphs/images/small.png } }
  r: { type: resize, inputs: { image: src.image }, params: { width: 20000, height: 10 } }
  out: { type: image.save, inputs: { image: r.image }, params: { path: out/wide.webp } }
YAML
check "a 20000x10 image to .webp is refused at validation with exit 2" \
    test "$(code $T run $tmp/g/wide.yaml -q)" = 2
check "... naming WebP's limit" \
    bash -c "$T run $tmp/g/wide.yaml -q 2>&1 | grep -qF 'a 20000x10 image is larger than WebP allows (16383 pixels a side)'"
check "... with nothing written" bash -c "! test -e $tmp/g/out"

cli_done formats_webp
