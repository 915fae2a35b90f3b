#!/usr/bin/env bash
# bench_bn several times over, and each cell's median over the runs: on a
# machine whose speed drifts, a ratio within about 25% of 1 in one run does
# not say which side is faster, and the median of a few runs says more.
# Builds like bench/kernels.sh; extra arguments go to every bench_bn run.
#
#   bash bench/kernels_median.sh RUNS [bench_bn arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || ! [ "$1" -ge 1 ] 2>/dev/null; then
    echo "usage: bash bench/kernels_median.sh RUNS [bench_bn arguments]" >&2
    exit 2
fi
runs=$1
shift
bash scripts/install-deps.sh libdnnl-dev python3-torch
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBNORM_BUILD_BENCH=ON \
    -DBNORM_BUILD_TESTS=OFF -DBNORM_BUILD_TOOLS=OFF -DBNORM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target bench_bn >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in $(seq "$runs"); do
    echo "run $r of $runs" >&2
    (cd build-bench && ./bench/bench_bn --csv "$work/run$r.csv" "$@" >/dev/null)
done
# Median ms per (case, threads, op, implementation), then one line per cell
# with ours and each peer's median ms and the median over the runs of ours /
# peer within each run (a run's implementations took turns in the same
# minutes, so its ratio is not moved by the machine's phase the way times
# are), our %copy (model GB/s over the same run's copy bandwidth, median over
# the runs), and at the end the cells where a peer is ahead.
awk -F, '
    FNR == 1 { run++ }
    $1 == "case" { next }
    {
        key = $1 "," $2 "," $3; t[key, $4, ++n[key, $4]] = $5; at[key, $4, run] = $5; keys[key] = 1
        if ($4 == "bnorm") pc[key, n[key, $4]] = 100 * $6 / $7
    }
    function median_of(v, k,    i, j, tmp) {
        for (i = 2; i <= k; i++)
            for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { tmp = v[j]; v[j] = v[j - 1]; v[j - 1] = tmp }
        return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
    }
    function median(key, impl,    k, i, v) {
        k = n[key, impl]
        if (!k) return ""
        for (i = 1; i <= k; i++) v[i] = t[key, impl, i]
        return median_of(v, k)
    }
    function copy_pct(key,    k, i, v) {
        k = n[key, "bnorm"]
        for (i = 1; i <= k; i++) v[i] = pc[key, i]
        return median_of(v, k)
    }
    function ratio(key, impl,    i, k, v) {
        k = 0
        for (i = 1; i <= run; i++)
            if ((key, impl, i) in at && (key, "bnorm", i) in at && at[key, impl, i] != "nan")
                v[++k] = at[key, "bnorm", i] / at[key, impl, i]
        return k ? median_of(v, k) : ""
    }
    function cell(peer, r) {
        return r == "" ? sprintf("%9s %6s", "-", "-") : sprintf("%9.3f %6.2f", peer, r)
    }
    function note(key, name, r) {
        split(key, f, ",")
        if (r != "" && r > 1)
            behind[name] = behind[name] sprintf("  %s, %s thread(s), %s: %.2f\n", f[1], f[2], f[3], r)
        if (r != "") cells[name]++
    }
    END {
        printf "%-20s %3s %-10s %9s %6s | %9s %6s | %9s %6s | %9s %6s\n", "case", "thr", "op", "ours ms",
               "%copy", "oneDNN", "ratio", "blocked", "ratio", "torch", "ratio"
        for (key in keys) {
            split(key, f, ",")
            ours = median(key, "bnorm")
            rd = ratio(key, "onednn"); rb = ratio(key, "onednn-nChw16c"); rp = ratio(key, "pytorch")
            printf "%-20s %3s %-10s %9.3f %5.0f%% | %s | %s | %s\n", f[1], f[2], f[3], ours, copy_pct(key),
                   cell(median(key, "onednn"), rd), cell(median(key, "onednn-nChw16c"), rb),
                   cell(median(key, "pytorch"), rp)
            note(key, "oneDNN, same layout", rd)
            note(key, "oneDNN, blocked nChw16c", rb)
            note(key, "PyTorch", rp)
        }
        for (name in cells) {
            c = 0; s = behind[name]; while (i = index(s, "\n")) { c++; s = substr(s, i + 1) }
            printf "SUMMARY %s: ahead or level in %d of %d cells%s\n", name, cells[name] - c, cells[name],
                   c ? "; behind in:" : ""
            printf "%s", behind[name]
        }
    }' "$work"/run*.csv | {
    read -r header
    echo "$header"
    tee "$work/lines" | grep -v '^SUMMARY\|^  ' | sort -k2,2n -k1,1 -k3,3
    echo "medians over $runs runs of bench_bn; ratio = median of the runs' ours / peer (below 1: ours"
    echo "is faster);"
    echo "%copy = our GB/s under the traffic model over the same run's copy bandwidth"
    echo
    sed -n '/^SUMMARY/,$p' "$work/lines" | sed 's/^SUMMARY //'
}
