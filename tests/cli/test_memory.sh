#!/usr/bin/env bash
# The memory options of `tessera run`: --vram-limit values, --dry-run (text and JSON), JSON
# events, --stats keys, a forced small budget (tiles, same pixels, pool peak under the budget),
# forced tiles, fault injection, and a budget too small for any tile.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
demo() { $T run graphs/demo.yaml -q "$@"; }
dry() { demo --dry-run --set out.path=$tmp/dry.png "$@"; }
same() { $T compare "$1" "$2" --max-diff 0 >/dev/null; } # identical decoded pixels
stat() { sed -n "s/^$1: \\([0-9]*\\)\$/\\1/p" "$2"; }   # N of "key: N" in a --stats file
le() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -le "$2" ]; }
gt() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -gt "$2" ]; }
# Every line of stdin is one JSON object (python3 is in tools/install-deps.sh; without it, a
# cruder check that each line is a brace-delimited object).
json_lines() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'
    else
        ! grep -qv '^{.*}$'
    fi
}
budget_of() { sed -n 's/^budget: \([0-9]*\) bytes.*/\1/p'; } # from --dry-run's text
BUDGET=1048576 # 1M: the demo's 960x640 RGB output alone takes 7 MiB, so the run must tile

# --vram-limit values
refused() { # the value is refused with exit 2 and a message quoting it
    local out
    out=$(demo --vram-limit "$1" --set out.path=$tmp/v.png 2>&1)
    [ $? = 2 ] && grep -qF -- "--vram-limit: '$1' is not a memory size" <<<"$out"
}
for v in abc -1G 0 12Q 1e30G % "" 1.5XB; do
    check "--vram-limit '$v' exits 2 with a message naming it" refused "$v"
done
check "a refused --vram-limit writes nothing" test ! -e "$tmp/v.png"
check "--vram-limit without a value exits 2" test "$(code demo --vram-limit)" = 2
check "--vram-limit 512M is the budget" \
    test "$(dry --vram-limit 512M | head -n 1)" = "budget: 536870912 bytes (512.0 MiB)"
check "--vram-limit 1.5GiB is the budget" test "$(dry --vram-limit 1.5GiB | budget_of)" = 1610612736
# 60% of the default device's global memory as `tessera devices` reports it, within a byte
# (the percentage is computed in floating point).
total=$($T devices | sed -n 's/^[0-9]*\* .*global memory [^(]*(\([0-9]*\) bytes).*/\1/p')
pct=$(dry --vram-limit 60% | budget_of)
near() { [ -n "$1" ] && [ -n "$2" ] && [ $(($1 - $2)) -ge -1 ] && [ $(($1 - $2)) -le 1 ]; }
check "--vram-limit 60% is 60% of the device's memory" near "$pct" "$((${total:-0} * 60 / 100))"
check "--vram-limit above the device's memory is clamped to it" \
    test "$(dry --vram-limit 1000000G | budget_of)" = "${total:-none}"
check "TSR_VRAM_LIMIT gives the budget" test "$(TSR_VRAM_LIMIT=3M dry | budget_of)" = 3145728
check "--vram-limit wins over TSR_VRAM_LIMIT" \
    test "$(TSR_VRAM_LIMIT=3M dry --vram-limit 2M | budget_of)" = 2097152
bad_env() {
    local out
    out=$(TSR_VRAM_LIMIT=lots demo --set out.path=$tmp/v.png 2>&1)
    [ $? = 2 ] && grep -q "TSR_VRAM_LIMIT: 'lots' is not a memory size" <<<"$out"
}
check "a bad TSR_VRAM_LIMIT exits 2 naming the variable and the value" bad_env

# --dry-run: the plan, and nothing written
dry --vram-limit 1M >$tmp/plan.txt
check "--dry-run exits 0" test $? = 0
check "--dry-run prints the budget" grep -qx 'budget: 1048576 bytes (1.0 MiB)' $tmp/plan.txt
check "--dry-run prints the stage and its nodes" grep -qx 'stage 1: up' $tmp/plan.txt
check "--dry-run prints the stage's output" grep -qx '  output 960x640, 3 channels' $tmp/plan.txt
# Full-width strips fit here: the tile is 960 wide, a multiple of 8 high, and covers 640 rows.
read -r tw th n < <(sed -n 's/^  tile \([0-9]*\)x\([0-9]*\), \([0-9]*\) tiles$/\1 \2 \3/p' \
    $tmp/plan.txt)
strip() {
    [ "${tw:-0}" = 960 ] && [ $((${th:-1} % 8)) = 0 ] && [ "${n:-0}" -gt 1 ] &&
        [ "$n" = $(((640 + th - 1) / th)) ]
}
check "--dry-run prints a full-width strip tile and the tile count" strip
est=$(sed -n 's/^  estimated peak \([0-9]*\) bytes.*/\1/p' $tmp/plan.txt)
check "--dry-run prints an estimated peak under the budget" le "$est" $BUDGET
check "--dry-run's estimate is not zero" gt "$est" 0
check "--dry-run writes no output" test ! -e $tmp/dry.png
check "--dry-run is deterministic" cmp -s $tmp/plan.txt <(dry --vram-limit 1M)
check "--dry-run --tile prints the forced tile" \
    grep -qx '  tile 64x48, 210 tiles' <(dry --tile 64x48)
check "--tile with a bad size exits 2" test "$(code dry --tile 0x5)" = 2
check "--tile without x exits 2" test "$(code dry --tile 64)" = 2

dry --vram-limit 1M --json >$tmp/plan.json
check "--dry-run --json exits 0" test $? = 0
check "--dry-run --json prints JSON lines" json_lines <$tmp/plan.json
check "--dry-run --json prints one plan event" test "$(grep -c '"event":"plan"' $tmp/plan.json)" = 1
check "--dry-run --json runs no stage" test "$(grep -c '"event":"stage"' $tmp/plan.json)" = 0
want="\"budget_bytes\":$BUDGET,.*\"tile_width\":$tw,\"tile_height\":$th,\"tiles\":$n,"
check "--dry-run --json has the budget and the text plan's tile" \
    grep -q "$want\"estimate_bytes\":$est}" $tmp/plan.json
check "--dry-run --json writes no output" test ! -e $tmp/dry.png

# A real run: unlimited, then under 1M with events and statistics
demo --stats --set out.path=$tmp/full.png 2>$tmp/full.stats
check "the unlimited run plans one tile" test "$(stat plan.tiles $tmp/full.stats)" = 1
demo --vram-limit 1M --json --stats --set out.path=$tmp/small.png >$tmp/ev.json 2>$tmp/small.stats
check "the run under 1M exits 0" test $? = 0
check "--json prints JSON lines" json_lines <$tmp/ev.json
check "--json starts with chain-start" grep -q '^{"event":"chain-start",' <(head -n 1 $tmp/ev.json)
check "--json then gives the plan" \
    grep -q "^{\"event\":\"plan\",\"budget_bytes\":$BUDGET," <(sed -n 2p $tmp/ev.json)
check "--json has a stage event" grep -q '^{"event":"stage","root":"up",' $tmp/ev.json
check "--json ends with finish, ok" \
    grep -q '^{"event":"finish","status":"ok",' <(tail -n 1 $tmp/ev.json)
check "--json prints nothing else on stdout" test "$(grep -vc '^{' $tmp/ev.json)" = 0
check "the 1M run tiles" gt "$(stat plan.tiles $tmp/small.stats)" 1
check "the 1M run gives the unlimited run's pixels" same $tmp/full.png $tmp/small.png
check "pool.peak_held_bytes stays under the budget" \
    le "$(stat pool.peak_held_bytes $tmp/small.stats)" $BUDGET
check "pool.peak_held_bytes is not zero" gt "$(stat pool.peak_held_bytes $tmp/small.stats)" 0
check "pool.cap_bytes is the budget" test "$(stat pool.cap_bytes $tmp/small.stats)" = $BUDGET
check "plan.estimate_bytes stays under the budget" \
    le "$(stat plan.estimate_bytes $tmp/small.stats)" $BUDGET
for k in pool.peak_in_use_bytes pool.peak_held_bytes pool.allocations pool.hits pool.misses \
    pool.trims pool.oom_events plan.tiles plan.tile_width plan.tile_height plan.estimate_bytes \
    staging.peak_in_use_bytes staging.peak_held_bytes staging.allocations staging.hits \
    staging.misses staging.trims staging.oom_events staging.cap_bytes plan.budget_bytes \
    plan.downgrades; do
    check "--stats prints $k" grep -qE "^$k: [0-9]+$" $tmp/small.stats
done
hits=$(stat pool.hits $tmp/small.stats)
misses=$(stat pool.misses $tmp/small.stats)
hm=$((${hits:-0} + ${misses:--1}))
check "--stats: hits + misses = allocations" test $hm = "$(stat pool.allocations $tmp/small.stats)"
check "--stats: every buffer back at the end" test "$(stat pool.in_use_bytes $tmp/small.stats)" = 0
check "--stats: staging under its 64 MiB default" \
    le "$(stat staging.peak_held_bytes $tmp/small.stats)" 67108864

demo --tile 37x19 --set out.path=$tmp/tiled.png
check "forced 37x19 tiles give the unlimited run's pixels" same $tmp/full.png $tmp/tiled.png

# Fault injection: allocations 4 and 5 fail (a tile and its retry), the run halves its tile for
# the rest of the stage, says so, and still gives the same pixels.
TSR_FAULT_ALLOC=4-5 demo --vram-limit 1M --json --stats --set out.path=$tmp/fault.png \
    >$tmp/fault.json 2>$tmp/fault.stats
check "a recovered fault exits 0" test $? = 0
check "the downgrade is an event" grep -qx \
    '{"event":"downgrade","stage":"up",.*"from":\[960,[0-9]*\],"to":\[480,[0-9]*\]}' $tmp/fault.json
check "the downgrade is counted" test "$(stat plan.downgrades $tmp/fault.stats)" = 1
check "the failures are counted" test "$(stat pool.oom_events $tmp/fault.stats)" = 2
check "the recovered run gives the same pixels" same $tmp/full.png $tmp/fault.png

mkdir $tmp/out
TSR_FAULT_ALLOC=1+ demo --set out.path=$tmp/out/out.png 2>$tmp/fail.err
check "every allocation failing exits 3" test $? = 3
check "... with a message naming the tile size" grep -q 'out of device memory even with' \
    $tmp/fail.err
check "... and the injected fault" grep -q 'injected failure' $tmp/fail.err
check "... and leaves nothing in the output directory" test -z "$(ls -A $tmp/out)"

# A budget too small for the smallest tile fails before touching pixels, saying what it needs.
demo --vram-limit 2K --set out.path=$tmp/out/out.png 2>$tmp/tiny.err
check "a budget too small for any tile exits 3" test $? = 3
need=$(sed -n 's/.*even the smallest tile (16x16) needs about \([0-9]*\) bytes.*/\1/p' \
    $tmp/tiny.err)
check "... saying how much the smallest tile needs" gt "$need" 2048
check "... and what the budget is" grep -q 'over the budget of 2048 bytes' $tmp/tiny.err
check "... and leaves nothing in the output directory" test -z "$(ls -A $tmp/out)"
check "... the same with --dry-run" test "$(code dry --vram-limit 2K)" = 3
check "the figure is exact: that budget plans 16x16 tiles" \
    grep -qx '  tile 16x16, 2400 tiles' <(dry --vram-limit "${need:-0}")
check "... and one byte less does not" test "$(code dry --vram-limit $((${need:-1} - 1)))" = 3

cli_done memory
