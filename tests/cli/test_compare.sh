#!/usr/bin/env bash
# `tessera compare`: thresholds in the images' own levels (tests/golden/compare, made by
# tools/gen-compare-golden.py), so --max-diff 1 accepts a one-level difference and refuses two;
# SSIM on images smaller than its window.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
G=tests/golden/compare

check "8-bit, one level apart (0 vs 1 among them): --max-diff 1 exits 0" \
    test "$(code $T compare $G/l8_a.png $G/l8_b1.png --max-diff 1)" = 0
check "8-bit, two levels apart: --max-diff 1 exits 1" \
    test "$(code $T compare $G/l8_a.png $G/l8_b2.png --max-diff 1)" = 1
check "16-bit, one level apart (65535 vs 65534 among them): --max-diff 1 exits 0" \
    test "$(code $T compare $G/l16_a.png $G/l16_b1.png --max-diff 1)" = 0
check "16-bit, two levels apart: --max-diff 1 exits 1" \
    test "$(code $T compare $G/l16_a.png $G/l16_b2.png --max-diff 1)" = 1
check "8-bit against 16-bit counts 8-bit levels" \
    bash -c "$T compare $G/l16_b2.png $G/l8_b1.png --max-diff 1 | grep -qx 'levels: 255'"
check "exact values: a one-level difference prints 1.000000 and its mean exactly" \
    bash -c "$T compare $G/l8_a.png $G/l8_b1.png | tr '\n' ' ' | grep -q '^max_abs_diff: 1.000000 mean_abs_diff: 0.020833 .*levels: 255 \$'"
check "exact values at 16 bits" \
    bash -c "$T compare $G/l16_a.png $G/l16_b2.png | tr '\n' ' ' | grep -q '^max_abs_diff: 2.000000 mean_abs_diff: 0.010417 .*levels: 65535 \$'"
check "the refusal names the difference in whole levels" \
    bash -c "$T compare $G/l8_a.png $G/l8_b2.png --max-diff 1 2>&1 >/dev/null | grep -qx '.*compare: max difference 2 > 1 (levels of 255)'"
check "--max-diff 2 accepts two levels" \
    test "$(code $T compare $G/l16_a.png $G/l16_b2.png --max-diff 2)" = 0
check "5x7 SSIM is the whole-image value, not nan" \
    bash -c "$T compare $G/s5x7_a.png $G/s5x7_b.png | grep -qx 'ssim: 0.988929'"
check "9x9 SSIM is the whole-image value" \
    bash -c "$T compare $G/s9x9_a.png $G/s9x9_b.png | grep -qx 'ssim: 0.880042'"
check "--min-ssim works below the window" \
    test "$(code $T compare $G/s5x7_a.png $G/s5x7_b.png --min-ssim 0.98)$(code $T compare $G/s5x7_a.png $G/s5x7_b.png --min-ssim 0.99)" = 01
check "compare --help states the units and the small-image window" \
    bash -c "$T compare --help | grep -q '0..65535' && $T compare --help | grep -q '1/255 units' && $T compare --help | grep -q 'narrower or lower than the'"

cli_done test_compare.sh
