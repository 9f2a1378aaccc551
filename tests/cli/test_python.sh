#!/usr/bin/env bash
# The Python binding: python/test_tessera.py against this build's libtessera.so.0. Skipped
# (with a message, counted as passed) without python3 and numpy. Most cases need
# tsr_image_from_pixels / tsr_image_to_pixels / tsr_image_encode / tsr_image_decode.
set -u
cd "$(dirname "$0")/../.."
build=$(dirname "${TESSERA:-build/tessera}")
if ! command -v python3 >/dev/null || ! python3 -c 'import numpy' 2>/dev/null; then
    echo "skipped: python/test_tessera.py needs python3 with numpy"
    exit 0
fi
export TESSERA_LIB=$build/libtessera.so.0
# A sanitizer build's library needs its runtime loaded ahead of the (uninstrumented)
# interpreter; the interpreter's own allocations are not ours to report as leaks.
if ldd "$TESSERA_LIB" | grep -q libasan; then
    export LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so)${LD_PRELOAD:+:$LD_PRELOAD}"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
fi
exec python3 python/test_tessera.py -v
