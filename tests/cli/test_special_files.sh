#!/usr/bin/env bash
# Inputs that are not regular files (a FIFO, a directory, a device) are refused at once with a
# message naming what they are (a FIFO once blocked for ever); a saved file never gets setuid or
# setgid bits, and takes permissions only from a regular file it replaces.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
img=$PWD/graphs/images/small.png
graph() { # load path, save path
    printf 'version: 1\nnodes:\n  src: { type: image.load, params: { path: %s } }\n' "$1"
    printf '  out: { type: image.save, inputs: { image: src.image }, params: { path: %s } }\n' "$2"
}
refused() { # input path, the kind the message must name
    local out rc t0 t1
    graph "$1" "$tmp/out.png" >"$tmp/g.yaml"
    t0=$(date +%s%N)
    out=$(timeout 10 "$T" run "$tmp/g.yaml" -q 2>&1)
    rc=$?
    t1=$(date +%s%N)
    echo "     $1: exit $rc in $(((t1 - t0) / 1000000)) ms: $out"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ $((t1 - t0)) -lt 1000000000 ] &&
        grep -qF "$2, not a regular file" <<<"$out" && [ ! -e "$tmp/out.png" ]
}
mkfifo "$tmp/fifo.png"
check "a FIFO input is refused within 1 s" refused "$tmp/fifo.png" "a FIFO"
mkdir "$tmp/dir.png"
check "a directory input is refused" refused "$tmp/dir.png" "a directory"
check "a device input is refused" refused /dev/zero "a device"

# The model loader: a FIFO as the .param (and as the .bin beside a real-looking .param).
mkfifo "$tmp/m.param"
model_refused() {
    local out rc
    printf 'version: 1\nnodes:\n  src: { type: image.load, params: { path: %s } }\n' "$img" \
        >"$tmp/m.yaml"
    printf '  net: { type: model.load, params: { path: %s } }\n' "$1" >>"$tmp/m.yaml"
    printf '  up: { type: upscale, inputs: { image: src.image, model: net.model } }\n' >>"$tmp/m.yaml"
    printf '  out: { type: image.save, inputs: { image: up.image }, params: { path: %s } }\n' \
        "$tmp/up.png" >>"$tmp/m.yaml"
    out=$(timeout 10 "$T" run "$tmp/m.yaml" -q 2>&1)
    rc=$?
    echo "     $1: exit $rc: $out"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -qF "a FIFO, not a regular file" <<<"$out"
}
check "a FIFO as a model's .param is refused" model_refused "$tmp/m.param"
mkdir "$tmp/model"
printf '7767517\n1 1\nInput data 0 1 data\n' >"$tmp/model/x.param"
mkfifo "$tmp/model/x.bin"
check "a FIFO as a model's .bin is refused" model_refused "$tmp/model/x.param"

# Permissions of a replaced file, without its setuid/setgid bits.
cp "$img" "$tmp/suid.png"
chmod 4755 "$tmp/suid.png"
graph "$img" "$tmp/suid.png" >"$tmp/s.yaml"
check "replacing a 4755 file succeeds" "$T" run "$tmp/s.yaml" -q
check "the replaced file is 0755" test "$(stat -c %a "$tmp/suid.png")" = 755
cp "$img" "$tmp/sgid.png"
chmod 2640 "$tmp/sgid.png"
graph "$img" "$tmp/sgid.png" >"$tmp/g2.yaml"
"$T" run "$tmp/g2.yaml" -q
check "replacing a 2640 file gives 0640" test "$(stat -c %a "$tmp/sgid.png")" = 640
# A symlink to a setuid file: the link is not the regular file being replaced.
cp "$img" "$tmp/target.png"
chmod 4755 "$tmp/target.png"
ln -s "$tmp/target.png" "$tmp/link.png"
graph "$img" "$tmp/link.png" >"$tmp/l.yaml"
"$T" run "$tmp/l.yaml" -q
check "an output replacing a symlink to a 4755 file has no setuid bit" \
    test -z "$(find -L "$tmp/link.png" -perm /6000)"
cli_done test_special_files
