#!/usr/bin/env bash
# The test suite: installs what it needs, then builds and runs every test
# with gcc, with clang, and with AddressSanitizer + UndefinedBehaviorSanitizer,
# and builds the README example against the installed library (CMake
# find_package and pkg-config). The gcc and clang builds also compile the
# benchmarks (never run here), so that they keep building.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
out=${BNORM_TEST_DIR:-build-test}
rm -rf "$out"

run_suite() { # name, extra cmake args...
    local name=$1
    shift
    echo "== $name"
    cmake -S . -B "$out/$name" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
    cmake --build "$out/$name" -j "$jobs" >/dev/null
    (cd "$out/$name" && ctest --output-on-failure -j "$jobs")
}

# The gcc build also builds the MPI trainer and runs it under mpirun on 2 and 3
# processes (the other builds leave MPI out, as a default build does).
run_suite gcc -DCMAKE_C_COMPILER=gcc -DBNORM_BUILD_BENCH=ON -DBNORM_MPI=ON
run_suite clang -DCMAKE_C_COMPILER=clang -DBNORM_BUILD_BENCH=ON
# AddressSanitizer + UndefinedBehaviorSanitizer with both compilers, which
# see different things (clang's UBSan flags pointer arithmetic that gcc's
# does not); LeakSanitizer is on, so a leak fails a test, the CLI tests'
# runs of the command included. The kernels' copies for other CPUs are the
# same C source as the one that runs here, so their accesses are the ones
# checked here; their values are checked by the gcc and clang suites above.
# Compiled under the sanitizers, the copies that never run took most of these
# suites' time, so the gcc one builds one copy, for this CPU (BNORM_NATIVE,
# the copy the dispatched library would run here): its build went from 10.5
# minutes to 2. The clang one keeps the dispatched build (as a user's would
# be) without the extra levels' tests.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    run_suite sanitize -DCMAKE_C_COMPILER=gcc -DBNORM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
    -DBNORM_NATIVE=ON
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    run_suite sanitize-clang -DCMAKE_C_COMPILER=clang -DBNORM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
    -DBNORM_LEVEL_TESTS=OFF

# ThreadSanitizer on the code that hands work between threads of its own
# (the single-sample path's team and counters), without OpenMP, whose
# runtime it cannot see into; OpenBLAS single-threaded for the same reason.
echo "== thread sanitizer"
cmake -S . -B "$out/tsan" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBNORM_SANITIZE_THREAD=ON -DBNORM_OPENMP=OFF >/dev/null
cmake --build "$out/tsan" -j "$jobs" --target test_team test_network_grad >/dev/null
TSAN_OPTIONS=halt_on_error=1 OPENBLAS_NUM_THREADS=1 "$out/tsan/tests/test_team"
TSAN_OPTIONS=halt_on_error=1 OPENBLAS_NUM_THREADS=1 "$out/tsan/tests/test_network_grad" | tail -1

# The fuzz targets, a fixed number of executions each (about a minute in
# all), so that they keep building and their seeds keep passing;
# scripts/fuzz.sh SECONDS runs them longer.
echo "== fuzz"
BNORM_FUZZ_DIR="$out/fuzz" bash scripts/fuzz.sh --runs 20000

echo "== install and consume"
prefix=$(realpath "$out")/prefix
cmake --install "$out/gcc" --prefix "$prefix" >/dev/null
cmake -S tests/consumer -B "$out/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$out/consumer" >/dev/null
"$out/consumer/consumer_shared"
"$out/consumer/consumer_static"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
    cc -std=c11 -Wall -Wextra -Werror examples/readme_example.c \
    $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" pkg-config --cflags --libs --static bnorm) \
    -o "$out/consumer/consumer_pkgconfig"
LD_LIBRARY_PATH="$prefix/lib" "$out/consumer/consumer_pkgconfig"
# The README's C example is examples/readme_example.c, word for word.
sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' | diff - examples/readme_example.c
echo "all suites passed"
