#!/usr/bin/env bash
# Metadata through the CLI: EXIF orientation turns a load upright, metadata_from copies EXIF
# (orientation reset to 1) and ICC into a save, a missing metadata_from is a validation error.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

G=tests/golden/meta
size() { echo "$(vipsheader -f width "$1")x$(vipsheader -f height "$1")"; }

$T op adjust.invert $G/orient-6.jpg $tmp/up.png -q
check "a JPEG tagged rotate 90 CW loads upright (16x24)" test "$(size $tmp/up.png)" = 16x24
$T op adjust.invert $G/orient-6.jpg $tmp/raw.png in.orientation=ignore -q
check "in.orientation=ignore keeps the stored 24x16" test "$(size $tmp/raw.png)" = 24x16
check "a plain PNG save is tagged sRGB (its sRGB chunk)" grep -aq 'sRGB' $tmp/up.png

$T op adjust.invert $tmp/up.png $tmp/copy.jpg out.metadata_from=$G/orient-6.jpg -q
check "metadata_from: the copy loads at the same upright size" \
    bash -c "$T op adjust.invert $tmp/copy.jpg $tmp/again.png -q && test \"\$(vipsheader -f width $tmp/again.png)\" = 16"
if command -v exiftool >/dev/null; then
    check "metadata_from copies EXIF with Orientation set to 1" \
        test "$(exiftool -s3 -n -IFD0:Orientation $tmp/copy.jpg)" = 1
    check "... and the other IFD0 tags as they were" \
        test "$(exiftool -s -n -IFD0:all -x Orientation $tmp/copy.jpg)" = \
        "$(exiftool -s -n -IFD0:all -x Orientation $G/orient-6.jpg)"
    $T op adjust.invert $G/icc-p3.png $tmp/p3.png in.colour=keep out.metadata_from=$G/icc-p3.jpg \
        out.metadata=icc -q
    check "metadata: icc copies the profile (with in.colour=keep)" \
        bash -c "exiftool -s3 -ProfileDescription $tmp/p3.png | grep -q 'Display P3'"
else
    echo "skip exiftool checks (no exiftool)"
fi
check "a missing metadata_from is refused at validation (exit 2)" \
    test "$(code $T op adjust.invert $G/base.png $tmp/none.png out.metadata_from=$tmp/nope.jpg)" = 2
check "... naming the param, with no output left" \
    bash -c "$T op adjust.invert $G/base.png $tmp/none.png out.metadata_from=$tmp/nope.jpg 2>&1 | grep -q \"cannot read metadata from '$tmp/nope.jpg'\" && ! test -e $tmp/none.png"
check "EXIF into a TIFF is refused at validation (exit 2)" \
    test "$(code $T op adjust.invert $G/base.png $tmp/m.tif out.metadata_from=$G/orient-6.jpg)" = 2
check "... saying why, with nothing written" \
    bash -c "$T op adjust.invert $G/base.png $tmp/m.tif out.metadata_from=$G/orient-6.jpg 2>&1 | grep -q 'TIFF output does not carry an EXIF block' && ! test -e $tmp/m.tif"
check "... with metadata: icc the TIFF is written" \
    $T op adjust.invert $G/base.png $tmp/m.tif out.metadata_from=$G/orient-6.jpg out.metadata=icc -q

cli_done meta
