#!/usr/bin/env bash
# TIFF through the CLI: tessera op writes 8, 16 and 32-bit (float) TIFF that vips reads with the
# same pixels, and float TIFF passes through the engine bit for bit, values outside 0..1 too.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

in=graphs/images/sample.png
# vips: the same picture in 0..1 float, then stretched to -1..2 (vips works in 0..255 units).
vips invert $in $tmp/vinv.png
vips linear $in $tmp/lin.tif 0.011764706 " -1"

check "op adjust.invert writes a 16-bit TIFF" \
    bash -c "$T op adjust.invert $in $tmp/inv16.tif out.bit_depth=16 -q && vipsheader -f format $tmp/inv16.tif | grep -q USHORT"
check "vips reads it: its average is 257 times that of vips's own inverted 8-bit image" \
    bash -c "awk -v a=\"\$(vips avg $tmp/inv16.tif)\" -v b=\"\$(vips avg $tmp/vinv.png)\" 'BEGIN { d = a - 257 * b; exit !(d < 1e-3 && d > -1e-3) }'"
check "... and a pixel agrees" \
    bash -c "test \"\$(vips getpoint $tmp/inv16.tif 17 33)\" = \"\$(vips getpoint $tmp/vinv.png 17 33 | awk '{ for (i = 1; i <= NF; i++) printf \"%d \", \$i * 257; }')\""
check "the 16-bit TIFF equals the 16-bit PNG of the same op" \
    bash -c "$T op adjust.invert $in $tmp/inv16.png out.bit_depth=16 -q && $T compare $tmp/inv16.tif $tmp/inv16.png --max-diff 0 | grep -q 'levels: 65535'"
check "8-bit LZW TIFF: vips reads the same pixels as the PNG" \
    bash -c "$T op adjust.invert $in $tmp/inv8.tif out.tiff_compression=lzw -q && vips avg $tmp/inv8.tif | grep -qx \"\$(vips avg $tmp/vinv.png)\""
check "uncompressed TIFF is what tiffinfo says" \
    bash -c "$T op adjust.invert $in $tmp/none.tif out.tiff_compression=none -q && tiffinfo $tmp/none.tif 2>/dev/null | grep -q 'Compression Scheme: None'"
# The engine's invert is 1 - x in float32, as vips linear -1 1 computes it: equal bit for bit.
vips linear $tmp/lin.tif $tmp/vlin.tif " -1" 1
check "a float TIFF from vips (-1..2) through adjust.invert equals vips's own (tessera compare)" \
    bash -c "$T op adjust.invert $tmp/lin.tif $tmp/finv.tif -q && $T compare $tmp/finv.tif $tmp/vlin.tif --max-diff 0 | grep -q 'levels: 0'"
check "... written back as float (the source depth)" \
    bash -c "vipsheader -f format $tmp/finv.tif | grep -q FLOAT"
check "... and vips finds every sample equal" \
    bash -c "vips relational $tmp/finv.tif $tmp/vlin.tif $tmp/eq.v equal && vips min $tmp/eq.v | grep -qx 255.000000"
check "... its average and a pixel as vips reads them agree" \
    bash -c "test \"\$(vips avg $tmp/finv.tif)\" = \"\$(vips avg $tmp/vlin.tif)\" && test \"\$(vips getpoint $tmp/finv.tif 5 7)\" = \"\$(vips getpoint $tmp/vlin.tif 5 7)\""
check "out.bit_depth=32 writes float from an 8-bit source" \
    bash -c "$T op adjust.invert $in $tmp/f.tif out.bit_depth=32 -q && vipsheader -f format $tmp/f.tif | grep -q FLOAT"
check "a TIFF as input and as - output" \
    bash -c "$T op adjust.invert $tmp/inv8.tif - out.format=tiff -q >$tmp/back.tif && $T compare $tmp/back.tif $in --max-diff 0 >/dev/null"
check "out.bit_depth=12 is refused with exit 2" test "$(code $T op adjust.invert $in $tmp/x.tif out.bit_depth=12)" = 2
check "a truncated TIFF is refused naming the file" \
    bash -c "head -c 3000 $tmp/inv16.tif >$tmp/cut.tif; $T op adjust.invert $tmp/cut.tif $tmp/x.png 2>&1 | grep -q 'cut.tif: truncated TIFF file: its first directory is at offset'"
mkdir -p $tmp/batch
cp tests/golden/tiff/rgb8_lzw.tif tests/golden/webp/lossless_rgb.webp $tmp/batch/
check "--batch DIR takes its .tif and .webp files" \
    bash -c "$T run graphs/blur.yaml --batch $tmp/batch --output-dir $tmp/bo -q && test -f $tmp/bo/rgb8_lzw.png && test -f $tmp/bo/lossless_rgb.png"

cli_done formats_tiff
