#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan), makes
# their seed corpora from the project's own writers, and runs each target:
#   scripts/fuzz.sh [SECONDS]    each target for SECONDS (default 60)
#   scripts/fuzz.sh --runs N     each target for N executions (the test suite's check)
# New inputs that widen coverage go to build-fuzz/corpus-work/TARGET (kept
# between runs); a crash leaves its input in build-fuzz/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time="${1:-60}")
if [ "${1:-}" = "--runs" ]; then limit=(-runs="${2:?--runs needs a count}"); fi
out=${BNORM_FUZZ_DIR:-build-fuzz}
jobs=$(nproc)
cmake -S . -B "$out" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBNORM_FUZZ=ON \
    -DBNORM_BUILD_TESTS=OFF -DBNORM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$out" -j "$jobs" --target make_seeds fuzz_idx fuzz_st_header fuzz_safetensors \
    fuzz_image fuzz_spec >/dev/null
rm -rf "$out/seeds"
ASAN_OPTIONS=detect_leaks=1 "$out/tests/fuzz/make_seeds" "$out/seeds"
declare -A seeds=([fuzz_idx]=idx [fuzz_st_header]=st_header [fuzz_safetensors]=safetensors
                  [fuzz_image]=image [fuzz_spec]=spec)
for target in fuzz_idx fuzz_st_header fuzz_safetensors fuzz_image fuzz_spec; do
    work="$out/corpus-work/$target"
    mkdir -p "$work"
    echo "== $target"
    log="$out/$target.log"
    if ! (cd "$out" && ASAN_OPTIONS=detect_leaks=1 OPENBLAS_NUM_THREADS=1 \
        "tests/fuzz/$target" "${limit[@]}" -max_len=262144 -rss_limit_mb=4096 -timeout=10 \
        "corpus-work/$target" "seeds/${seeds[$target]}") >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $target found a problem; its input is in $out/ (crash-*, leak-*, timeout-*)"
        exit 1
    fi
    # libFuzzer's closing line: "Done N runs in S second(s)".
    grep -E "^Done" "$log"
done
