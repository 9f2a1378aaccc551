#!/usr/bin/env bash
# The bad-input corpus: every tests/bad/*/NAME.yaml runs through `tessera run` and must exit with
# the code on line 1 of NAME.expect, print every other line of it (a substring) to stderr, and
# leave no output file behind. Lines "env: K=V" set the environment for that run.
set -u
cd "$(dirname "$0")/../.."
tessera=${TESSERA:-build/tessera}
fails=0
count=0
for graph in tests/bad/*/*.yaml; do
    expect=${graph%.yaml}.expect
    [ -f "$expect" ] || { echo "FAIL $graph: no $expect"; fails=$((fails + 1)); continue; }
    count=$((count + 1))
    rm -rf out/bad && mkdir -p out/bad
    want=$(head -n1 "$expect")
    envs=()
    while IFS= read -r line; do
        case "$line" in env:\ *) envs+=("${line#env: }") ;; esac
    done < <(tail -n +2 "$expect")
    err=$(env "${envs[@]}" "$tessera" run "$graph" -q 2>&1 >/dev/null)
    got=$?
    ok=1
    [ "$got" = "$want" ] || { echo "FAIL $graph: exit $got, expected $want"; ok=0; }
    while IFS= read -r line; do
        case "$line" in env:\ *|"") continue ;; esac
        grep -qF -- "$line" <<<"$err" || { echo "FAIL $graph: stderr lacks '$line'"; ok=0; }
    done < <(tail -n +2 "$expect")
    left=$(find out/bad -type f | head -n 3)
    [ -z "$left" ] || { echo "FAIL $graph: left files behind: $left"; ok=0; }
    [ -e /proc/tessera-test.png ] && { echo "FAIL $graph: wrote into /proc"; ok=0; }
    if [ $ok = 1 ]; then echo "ok   $graph (exit $got)"; else echo "     stderr: $err"; fails=$((fails + 1)); fi
done
rm -rf out/bad
echo "bad corpus: $count cases, $fails failed"
[ "$count" -gt 0 ] && [ "$fails" -eq 0 ]
