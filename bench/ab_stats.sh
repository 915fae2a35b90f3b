#!/usr/bin/env bash
# Two builds of bench_stats against each other, taking turns, and the median
# and best of each: how the statistics figures in docs/PERFORMANCE.md compare
# one version of the library with another on a machine whose speed drifts.
#
#   bash bench/ab_stats.sh OLD_BENCH_STATS NEW_BENCH_STATS RUNS N C S [threads]
set -euo pipefail
if [ $# -lt 6 ]; then
    echo "usage: bash bench/ab_stats.sh OLD NEW RUNS N C S [threads]" >&2
    exit 2
fi
old=$1 new=$2 runs=$3
shift 3
for _ in $(seq "$runs"); do
    "$old" "$@" | awk '{ print "old", $5 }'
    "$new" "$@" | awk '{ print "new", $5 }'
done | sort -k1,1 -k2,2n | awk '
    { n[$1]++; t[$1, n[$1]] = $2 }
    END { for (k in n) printf "%s: median %s ms, best %s ms over %d runs\n", k,
                               t[k, int((n[k] + 1) / 2)], t[k, 1], n[k] }'
