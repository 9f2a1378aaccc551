#!/usr/bin/env bash
# The memory options of `tessera run`: --vram-limit values, --dry-run (text and JSON), JSON
# events, --stats keys, a forced small budget (tiles, same pixels, pool peak under the budget),
# forced tiles, fault injection, and a budget too small for any tile.
set -u
cd "$(dirname "$0")/../.."
T=${TESSERA:-build/tessera}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
code() { "$@" >/dev/null 2>&1; echo $?; }
same() { $T compare "$1" "$2" --max-diff 0 >/dev/null; } # identical decoded pixels
# The value of "key: N" in a --stats file.
stat() { sed -n "s/^$1: \\([0-9]*\\)\$/\\1/p" "$2"; }
# Every line of stdin is one JSON object (python3 is in tools/install-deps.sh; without it, a
# cruder check that each line is a brace-delimited object).
json_lines() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'
    else
        ! grep -qv '^{.*}$'
    fi
}
demo() { $T run graphs/demo.yaml -q "$@"; }
BUDGET=1048576 # 1M: the 960x640 RGB output alone takes 7 MiB, so the demo must tile

# --vram-limit values
for v in abc -1G 0 12Q 1e30G % "" 1.5XB; do
    check "--vram-limit '$v' exits 2" test "$(code demo --vram-limit "$v" --set out.path=$tmp/v.png)" = 2
    check "--vram-limit '$v' names the value" \
        bash -c "$T run graphs/demo.yaml -q --vram-limit '$v' --set out.path=$tmp/v.png 2>&1 | grep -qF -- \"--vram-limit: '$v' is not a memory size\""
done
check "a refused --vram-limit writes nothing" test ! -e "$tmp/v.png"
check "--vram-limit without a value exits 2" test "$(code demo --vram-limit)" = 2
check "--vram-limit 512M is the budget" \
    bash -c "$T run graphs/demo.yaml --vram-limit 512M --dry-run --set out.path=$tmp/x.png | grep -q '^budget: 536870912 bytes (512.0 MiB)$'"
check "--vram-limit 1.5GiB is the budget" \
    bash -c "$T run graphs/demo.yaml --vram-limit 1.5GiB --dry-run --set out.path=$tmp/x.png | grep -q '^budget: 1610612736 bytes'"
# 60% of the default device's global memory, as `tessera devices` reports it (within a byte:
# the percentage is computed in floating point).
total=$($T devices | sed -n 's/^[0-9]*\* .*global memory [^(]*(\([0-9]*\) bytes).*/\1/p' | head -n 1)
pct=$(demo --vram-limit 60% --dry-run --set out.path=$tmp/x.png | sed -n 's/^budget: \([0-9]*\) bytes.*/\1/p')
check "--vram-limit 60% is 60% of the device's memory" \
    bash -c "[ -n '$total' ] && [ -n '$pct' ] && d=\$(( $pct - $total * 60 / 100 )) && [ \$d -ge -1 ] && [ \$d -le 1 ]"
check "--vram-limit above the device's memory is clamped to it" \
    bash -c "$T run graphs/demo.yaml --vram-limit 1000000G --dry-run --set out.path=$tmp/x.png | grep -q '^budget: $total bytes'"
check "TSR_VRAM_LIMIT gives the budget" \
    bash -c "TSR_VRAM_LIMIT=3M $T run graphs/demo.yaml --dry-run --set out.path=$tmp/x.png | grep -q '^budget: 3145728 bytes'"
check "--vram-limit wins over TSR_VRAM_LIMIT" \
    bash -c "TSR_VRAM_LIMIT=3M $T run graphs/demo.yaml --vram-limit 2M --dry-run --set out.path=$tmp/x.png | grep -q '^budget: 2097152 bytes'"
check "a bad TSR_VRAM_LIMIT exits 2 naming the variable and the value" \
    bash -c "out=\$(TSR_VRAM_LIMIT=lots $T run graphs/demo.yaml -q --set out.path=$tmp/x.png 2>&1); [ \$? = 2 ] && grep -q \"TSR_VRAM_LIMIT: 'lots' is not a memory size\" <<<\"\$out\""

# --dry-run: the plan, and nothing written
demo --vram-limit 1M --dry-run --set out.path=$tmp/dry.png >$tmp/plan.txt 2>$tmp/plan.err
check "--dry-run exits 0" test $? = 0
check "--dry-run prints the budget" grep -q '^budget: 1048576 bytes (1.0 MiB)$' $tmp/plan.txt
check "--dry-run prints the stage and its nodes" grep -q '^stage 1: up$' $tmp/plan.txt
check "--dry-run prints the stage's output" grep -q '^  output 960x640, 3 channels$' $tmp/plan.txt
# Full-width strips fit here, so the tile is 960 wide and a multiple of 8 high.
tile=$(sed -n 's/^  tile \([0-9]*x[0-9]*\), \([0-9]*\) tiles$/\1 \2/p' $tmp/plan.txt)
tw=${tile%%x*}
th=${tile#*x}
th=${th%% *}
n=${tile##* }
check "--dry-run prints a full-width strip tile and the tile count" \
    bash -c "[ '$tw' = 960 ] && [ \$(( ${th:-1} % 8 )) = 0 ] && [ '$n' = \$(( (640 + ${th:-1} - 1) / ${th:-1} )) ] && [ '$n' -gt 1 ]"
est=$(sed -n 's/^  estimated peak \([0-9]*\) bytes.*/\1/p' $tmp/plan.txt)
check "--dry-run prints an estimated peak under the budget" \
    bash -c "[ -n '$est' ] && [ '$est' -gt 0 ] && [ '$est' -le $BUDGET ]"
check "--dry-run writes no output" test ! -e $tmp/dry.png
check "--dry-run is deterministic" \
    bash -c "$T run graphs/demo.yaml -q --vram-limit 1M --dry-run --set out.path=$tmp/dry.png | cmp -s - $tmp/plan.txt"
check "--dry-run --tile prints the forced tile" \
    bash -c "$T run graphs/demo.yaml --tile 64x48 --dry-run --set out.path=$tmp/dry.png | grep -q '^  tile 64x48, 210 tiles$'"
check "--tile with a bad size exits 2" test "$(code demo --tile 0x5 --set out.path=$tmp/dry.png)" = 2
check "--tile without x exits 2" test "$(code demo --tile 64 --set out.path=$tmp/dry.png)" = 2

demo --vram-limit 1M --dry-run --json --set out.path=$tmp/dry.png >$tmp/plan.json
check "--dry-run --json exits 0" test $? = 0
check "--dry-run --json prints JSON lines" json_lines <$tmp/plan.json
check "--dry-run --json prints one plan event" test "$(grep -c '"event":"plan"' $tmp/plan.json)" = 1
check "--dry-run --json runs no stage" bash -c "! grep -q '\"event\":\"stage\"' $tmp/plan.json"
check "--dry-run --json plan has the budget and the text plan's tile" \
    grep -q "\"budget_bytes\":$BUDGET,.*\"tile_width\":$tw,\"tile_height\":$th,\"tiles\":$n,\"estimate_bytes\":$est}" $tmp/plan.json
check "--dry-run --json writes no output" test ! -e $tmp/dry.png

# A real run: unlimited, then under 1M with events and statistics
demo --stats --set out.path=$tmp/full.png 2>$tmp/full.stats
check "unlimited run plans one tile" test "$(stat plan.tiles $tmp/full.stats)" = 1
demo --vram-limit 1M --json --stats --set out.path=$tmp/small.png >$tmp/events.json 2>$tmp/small.stats
check "run under 1M exits 0" test $? = 0
check "--json prints JSON lines" json_lines <$tmp/events.json
check "--json starts with the plan" bash -c "head -n 1 $tmp/events.json | grep -q '^{\"event\":\"plan\",\"budget_bytes\":$BUDGET,'"
check "--json has a stage event" grep -q '^{"event":"stage","root":"up",' $tmp/events.json
check "--json ends with done, ok" bash -c "tail -n 1 $tmp/events.json | grep -q '^{\"event\":\"done\",\"status\":\"ok\",'"
check "--json prints no progress line on stdout" test "$(grep -vc '^{' $tmp/events.json)" = 0
check "the 1M run tiles" test "$(stat plan.tiles $tmp/small.stats)" -gt 1
check "the 1M run gives the unlimited run's pixels" same $tmp/full.png $tmp/small.png
check "pool.peak_held_bytes stays under the budget" \
    bash -c "p=\$(sed -n 's/^pool.peak_held_bytes: //p' $tmp/small.stats); [ -n \"\$p\" ] && [ \$p -gt 0 ] && [ \$p -le $BUDGET ]"
check "pool.cap_bytes is the budget" test "$(stat pool.cap_bytes $tmp/small.stats)" = $BUDGET
check "plan.estimate_bytes stays under the budget" test "$(stat plan.estimate_bytes $tmp/small.stats)" -le $BUDGET
for k in pool.peak_in_use_bytes pool.peak_held_bytes pool.allocations pool.hits pool.misses \
    pool.trims pool.oom_events plan.tiles plan.tile_width plan.tile_height plan.estimate_bytes \
    staging.peak_in_use_bytes staging.peak_held_bytes staging.allocations staging.hits \
    staging.misses staging.trims staging.oom_events staging.cap_bytes plan.budget_bytes \
    plan.downgrades; do
    check "--stats prints $k" grep -qE "^$k: [0-9]+$" $tmp/small.stats
done
check "--stats: hits + misses = allocations" test \
    $(($(stat pool.hits $tmp/small.stats) + $(stat pool.misses $tmp/small.stats))) = "$(stat pool.allocations $tmp/small.stats)"
check "--stats: every buffer back at the end" test "$(stat pool.in_use_bytes $tmp/small.stats)" = 0
check "--stats: staging under its 64 MiB default" \
    test "$(stat staging.peak_held_bytes $tmp/small.stats)" -le 67108864

demo --tile 37x19 --set out.path=$tmp/tiled.png
check "forced 37x19 tiles give the unlimited run's pixels" same $tmp/full.png $tmp/tiled.png

# Fault injection: allocations 4 and 5 fail (the first tile's retry too), the run halves its tile
# for the rest of the stage, says so, and still gives the same pixels.
TSR_FAULT_ALLOC=4-5 $T run graphs/demo.yaml -q --vram-limit 1M --json --stats \
    --set out.path=$tmp/fault.png >$tmp/fault.json 2>$tmp/fault.stats
check "a recovered fault exits 0" test $? = 0
check "the downgrade is an event" grep -q '^{"event":"downgrade","stage":"up",.*"from":\[960,[0-9]*\],"to":\[480,[0-9]*\]}$' $tmp/fault.json
check "the downgrade is counted" test "$(stat plan.downgrades $tmp/fault.stats)" = 1
check "the failures are counted" test "$(stat pool.oom_events $tmp/fault.stats)" = 2
check "the recovered run gives the same pixels" same $tmp/full.png $tmp/fault.png

mkdir $tmp/faildir
TSR_FAULT_ALLOC=1+ $T run graphs/demo.yaml -q --set out.path=$tmp/faildir/out.png 2>$tmp/fail.err
check "every allocation failing exits 3" test $? = 3
check "... with a message naming the fault and the tile" \
    bash -c "grep -q 'out of device memory even with' $tmp/fail.err && grep -q 'injected failure' $tmp/fail.err"
check "... and leaves nothing in the output directory" test -z "$(ls -A $tmp/faildir)"

# A budget too small for the smallest tile fails before touching pixels, saying what it needs.
$T run graphs/demo.yaml -q --vram-limit 2K --set out.path=$tmp/faildir/out.png 2>$tmp/tiny.err
check "a budget too small for any tile exits 3" test $? = 3
need=$(sed -n 's/.*even the smallest tile (16x16) needs about \([0-9]*\) bytes.*/\1/p' $tmp/tiny.err)
check "... saying how much the smallest tile needs" bash -c "[ -n '$need' ] && [ '$need' -gt 2048 ]"
check "... and what the budget is" grep -q 'over the budget of 2048 bytes' $tmp/tiny.err
check "... and leaves nothing in the output directory" test -z "$(ls -A $tmp/faildir)"
check "... the same with --dry-run" test "$(code demo --vram-limit 2K --dry-run --set out.path=$tmp/x.png)" = 3
check "the figure is exact: that budget plans 16x16 tiles" \
    bash -c "$T run graphs/demo.yaml -q --vram-limit ${need:-0} --dry-run --set out.path=$tmp/x.png | grep -q '^  tile 16x16, 2400 tiles$'"
check "... and one byte less does not" test "$(code demo --vram-limit $((${need:-1} - 1)) --dry-run --set out.path=$tmp/x.png)" = 3

echo "memory: $fails failed"
[ "$fails" -eq 0 ]
