#!/usr/bin/env bash
# image.load's fail_on on a JPEG cut mid-scan: the default (error) refuses it naming the
# truncation; none loads it (grey where data is missing) and prints what it recovered from as
# a warning on stderr.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

$T op adjust.invert graphs/images/sample.png $tmp/whole.jpg -q
size=$(stat -c %s $tmp/whole.jpg)
head -c $((size * 2 / 3)) $tmp/whole.jpg >$tmp/cut.jpg
graph() { # fail_on value ("" for the default), graph file
    local opt=${1:+, fail_on: $1}
    cat >"$2" <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: cut.jpg$opt } }
  out: { type: image.save, inputs: { image: src.image }, params: { path: out-${1:-default}.png } }
YAML
}
graph "" $tmp/default.yaml
graph none $tmp/none.yaml
graph warning $tmp/warning.yaml

check "the default (error) exits non-zero" test "$(code $T run $tmp/default.yaml -q)" != 0
check "... naming the truncation" \
    bash -c "$T run $tmp/default.yaml -q 2>&1 | grep -q 'truncated JPEG file'"
check "... and writes nothing" bash -c "! test -e $tmp/out-default.png"
check "fail_on: warning exits non-zero too" test "$(code $T run $tmp/warning.yaml -q)" != 0
$T run $tmp/none.yaml -q 2>$tmp/none.err
check "fail_on: none exits 0" test $? = 0
check "... writing the image" test -s $tmp/out-none.png
check "... with the warning on stderr" \
    grep -q "tessera: warning: node 'src': .*recovered from: Premature end of JPEG file" \
    $tmp/none.err

cli_done fail_on
