#!/usr/bin/env bash
# Messages shorten long values, never the reason: a 5000-character path shows as its first and
# last 60 characters with "..." between, and the reason after it; when a graph's errors overflow
# the message, its last line says how many were left out.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
long=$tmp/$(head -c 5000 /dev/zero | tr '\0' a)/x.png
printf 'version: 1\nnodes:\n  src: { type: image.load, params: { path: %s } }\n' "$long" >"$tmp/l.yaml"
printf '  out: { type: image.save, inputs: { image: src.image }, params: { path: %s/o.png } }\n' \
    "$tmp" >>"$tmp/l.yaml"
msg=$("$T" run "$tmp/l.yaml" -q 2>&1)
echo "     $msg"
check "a 5000-character path's message names the reason" \
    grep -qE 'cannot open: (File name too long|No such file or directory)' <<<"$msg"
check "the path is shortened with ..." grep -qE 'a\.\.\.a+/x\.png: cannot open' <<<"$msg"
check "the message is one short line" test "$(wc -c <<<"$msg")" -lt 400

{
    printf 'version: 1\nnodes:\n'
    for i in $(seq 1 500); do printf '  n%d: { type: no.such.type%d }\n' "$i" "$i"; done
} >"$tmp/m.yaml"
"$T" run "$tmp/m.yaml" -q 2>"$tmp/m.err"
last=$(tail -n 1 "$tmp/m.err")
shown=$(grep -c "unknown node type" "$tmp/m.err")
left=$(sed -n 's/^\.\.\. and \([0-9]*\) more errors$/\1/p' "$tmp/m.err")
echo "     500 errors: $shown shown, last line: $last"
check "the last line counts the errors left out" test -n "$left"
check "shown and left out make 500 (one no-output error besides)" \
    test $((shown + left)) -ge 500 -a $((shown + left)) -le 501
cli_done test_messages
