#!/usr/bin/env bash
# The host memory budget (docs/MEMORY.md): --mem-limit and TSR_MEM_LIMIT values, the host
# estimate in --dry-run (text and JSON) and --stats, and a graph over the budget refused with
# exit 2 before anything is written, naming the bytes it needs and the budget.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
$T op resize graphs/images/sample.png "$tmp/small.png" scale=0.25 -q # 120x80 RGB
up() { $T op resize "$tmp/small.png" "$tmp/up.png" scale=4 -q "$@"; } # 480x320 RGB
est_of() { sed -n 's/^host estimate: \([0-9]*\) bytes.*/\1/p'; }       # from --dry-run's text
hbudget_of() { sed -n 's/.*; host budget \([0-9]*\) bytes.*/\1/p'; }
stat() { sed -n "s/^$1: \\([0-9]*\\)\$/\\1/p" "$2"; }

est=$(up --dry-run | est_of)
check "--dry-run prints the host estimate" test -n "$est"
check "the estimate holds both images (120x80 and 480x320 RGB float32)" \
    test "${est:-0}" -ge $(((120 * 80 + 480 * 320) * 3 * 4))
check "--dry-run writes nothing" test ! -e "$tmp/up.png"

# Just below the estimate: refused before any pixel moves.
out=$(up --mem-limit $((est - 1)) 2>&1)
check "a budget one byte below the estimate exits 2" test $? = 2
check "... and writes nothing" test ! -e "$tmp/up.png"
check "... and the message names the bytes needed" \
    grep -q "needs about $est bytes .* of host memory" <<<"$out"
check "... and the budget" grep -q "over the host budget of $((est - 1)) bytes" <<<"$out"
check "... and the option to raise" grep -q -- "--mem-limit" <<<"$out"
check "--dry-run is refused the same way" test "$(code up --dry-run --mem-limit $((est - 1)))" = 2
json=$(up --json --mem-limit $((est - 1)) 2>/dev/null)
check "--json reports the refusal as an execution-error naming the host budget" \
    grep -q '"event":"execution-error","status":"over a limit (image pixels or host memory)","message":"the graph needs about' <<<"$json"

# At the estimate: it runs, and --stats reports the same estimate.
check "a budget equal to the estimate runs" test "$(code up --mem-limit "$est")" = 0
check "... and writes the image" test -s "$tmp/up.png"
up --mem-limit "$est" --stats 2>"$tmp/stats.txt"
check "--stats host.estimate_bytes is the --dry-run estimate" \
    test "$(stat host.estimate_bytes "$tmp/stats.txt")" = "$est"
check "--stats host.budget_bytes is --mem-limit" \
    test "$(stat host.budget_bytes "$tmp/stats.txt")" = "$est"
check "--stats job.reserved_host_bytes is the estimate" \
    test "$(stat job.reserved_host_bytes "$tmp/stats.txt")" = "$est"
check "--stats host.images_bytes is in the estimate" \
    test "$(stat host.images_bytes "$tmp/stats.txt")" -le "$est"
check "--stats still has process.peak_rss_bytes" grep -q '^process.peak_rss_bytes: [0-9]' \
    "$tmp/stats.txt"
plan=$(up --dry-run --json | grep '"event":"plan"')
check "the JSON plan event has host_estimate_bytes" grep -q "\"host_estimate_bytes\":$est," <<<"$plan"
check "... and host_budget_bytes" grep -q '"host_budget_bytes":[1-9]' <<<"$plan"

# Values
refused() { # the value is refused with exit 2 and a message quoting it
    local out
    out=$(up --mem-limit "$1" 2>&1)
    [ $? = 2 ] && grep -qF -- "--mem-limit: '$1' is not a memory size" <<<"$out"
}
for v in abc -1G 0 12Q 1e30G % "" 1.5XB "512M "; do
    check "--mem-limit '$v' exits 2 with a message naming it" refused "$v"
done
check "--mem-limit without a value exits 2" test "$(code up --mem-limit)" = 2
check "--mem-limit 1.5GiB is the host budget" \
    test "$(up --dry-run --mem-limit 1.5GiB | hbudget_of)" = 1610612736
check "--mem-limit=2G (inline value) is the host budget" \
    test "$(up --dry-run --mem-limit=2G | hbudget_of)" = 2147483648
def=$(up --dry-run | hbudget_of)
half=$(up --dry-run --mem-limit 50% | hbudget_of)
near() { [ -n "$1" ] && [ -n "$2" ] && [ $(($1 - $2)) -ge -1 ] && [ $(($1 - $2)) -le 1 ]; }
check "the default host budget is 75% of the host's memory, 50% two thirds of it" \
    near "$((${def:-0} / 3 * 2))" "${half:-x}"
check "TSR_MEM_LIMIT gives the host budget" \
    test "$(TSR_MEM_LIMIT=3G up --dry-run | hbudget_of)" = 3221225472
check "--mem-limit wins over TSR_MEM_LIMIT" \
    test "$(TSR_MEM_LIMIT=3G up --dry-run --mem-limit 2G | hbudget_of)" = 2147483648
check "TSR_MEM_LIMIT below the estimate is refused with exit 2" \
    test "$(TSR_MEM_LIMIT=$((est - 1)) code up)" = 2
bad_env() {
    local out
    out=$(TSR_MEM_LIMIT=lots up 2>&1)
    [ $? = 2 ] && grep -q "TSR_MEM_LIMIT: 'lots' is not a memory size" <<<"$out"
}
check "a bad TSR_MEM_LIMIT exits 2 naming the variable and the value" bad_env

# `tessera run` takes it too, and the reference engine counts its buffers as host memory.
check "tessera run --mem-limit refuses a graph over it" \
    test "$($T run graphs/demo.yaml -q --mem-limit 1M --set out.path=$tmp/d.png 2>&1 >/dev/null |
        grep -c 'of host memory')" = 1
check "... and writes nothing" test ! -e "$tmp/d.png"
ref=$(up --dry-run --device ref)
check "the ref engine's estimate counts its buffers" grep -q "^host estimate: .*device buffers" \
    <<<"$ref"
cli_done test_mem_limit.sh
