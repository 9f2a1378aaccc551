#!/usr/bin/env bash
# Numbers as users write them: no exponent notation (1.04858e+06) and no doubled percent sign
# (a printf escape shown by fputs) in `tessera nodes`, its JSON schema, or any --help text.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash

check "every --help exits 0" bash -c "{ $T --help && for c in run validate nodes devices compare; do $T \$c --help || exit 1; done; } >$tmp/help.txt"
check "the help texts are not empty" test "$(grep -c . "$tmp/help.txt")" -gt 40
check "no --help shows e+ or %%" bash -c "! grep -n -e 'e+' -e '%%' $tmp/help.txt"
check "nodes (text) shows no e+ or %%" bash -c "$T nodes >$tmp/nodes.txt && ! grep -n -e 'e+' -e '%%' $tmp/nodes.txt"
check "nodes shows the resize width limit as 1048576" bash -c "grep -q '\\[1, 1048576\\]' $tmp/nodes.txt"
check "nodes --json shows no e+ or %%" bash -c "$T nodes --json >$tmp/nodes.json && ! grep -n -e 'e+' -e '%%' $tmp/nodes.json"
check "run --help keeps its single percent sign" bash -c "$T run --help | grep -q '60% of the'"

cli_done test_numbers.sh
