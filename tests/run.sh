#!/usr/bin/env bash
# Run every test binary under BUILD/tests and every CLI script under tests/cli; print one
# summary line "N passed, N failed". Usage: tests/run.sh BUILD_DIR
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
export TSR_CACHE_DIR="$PWD/$build/kernel-cache"
export TESSERA="$PWD/$build/tessera"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
passed=0
failed=0
failures=()
log_dir="$build/test-logs"
mkdir -p "$log_dir"
run_one() {
    local name=$1
    shift
    local log="$log_dir/$(echo "$name" | tr '/' '_').log"
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        printf 'PASS %-45s %3ds\n' "$name" $((SECONDS - t0))
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL %-45s %3ds (log: %s)\n' "$name" $((SECONDS - t0)) "$log"
        tail -n 40 "$log" | sed 's/^/    /'
    fi
}
for t in $(find "$build/tests" -type f -perm -u+x | sort); do
    run_one "${t#$build/tests/}" "$t"
done
for s in tests/cli/*.sh; do
    [ -e "$s" ] || continue
    run_one "cli/$(basename "$s")" bash "$s"
done
echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
