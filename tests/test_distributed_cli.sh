#!/usr/bin/env bash
# `bnorm train --distributed` under mpirun, on a small generated dataset:
# 2 and 3 processes train (an uneven share of the batch), rank 0 alone
# writes the log and the model, which eval takes; the training loss of the
# first epoch matches one process's to the printed digits; bad data on one
# rank stops every rank with a message, and a killed rank stops the job
# (each run under a time limit: nothing may hang).
#   test_distributed_cli.sh BNORM "MPIRUN [OPTIONS]"
set -uo pipefail
bnorm=$1
read -r -a mpirun <<<"$2"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
check() { # description, command status (0 = as expected)
    if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
# A dataset of 300 training and 100 test 12x12 images (IDX, gzip): the class
# is where a bright bar sits.
make_idx() { # stem count
    local stem=$1 count=$2
    {
        printf '\x00\x00\x08\x03'; printf "\\x$(printf %02x $((count >> 24 & 255)))\\x$(printf %02x $((count >> 16 & 255)))\\x$(printf %02x $((count >> 8 & 255)))\\x$(printf %02x $((count & 255)))"
        printf '\x00\x00\x00\x0c\x00\x00\x00\x0c'
        for ((i = 0; i < count; i++)); do
            c=$((i % 10))
            for ((y = 0; y < 12; y++)); do
                if [ $y -eq $c ]; then printf '\xff%.0s' {1..12}; else printf '\x10%.0s' {1..12}; fi
            done
        done
    } | gzip >"$dir/$stem-images-idx3-ubyte.gz"
    {
        printf '\x00\x00\x08\x01'; printf "\\x$(printf %02x $((count >> 24 & 255)))\\x$(printf %02x $((count >> 16 & 255)))\\x$(printf %02x $((count >> 8 & 255)))\\x$(printf %02x $((count & 255)))"
        for ((i = 0; i < count; i++)); do printf "\\x$(printf %02x $((i % 10)))"; done
    } | gzip >"$dir/$stem-labels-idx1-ubyte.gz"
}
make_idx train 300
make_idx t10k 100
common=(train --model cnn --data "$dir" --epochs 1 --batch 32 --threads 1 --seed 4)
timeout 120 "$bnorm" "${common[@]}" >"$dir/one.txt" 2>&1
check "one process trains" $?
for k in 2 3; do
    timeout 120 "${mpirun[@]}" -np $k "$bnorm" "${common[@]}" --distributed --log "$dir/log$k.csv" \
        --save "$dir/m$k.st" >"$dir/out$k.txt" 2>&1
    check "$k processes train" $?
    grep -q "data-parallel over $k processes" "$dir/out$k.txt"
    check "$k processes: rank 0 says how it shares the batch" $?
    [ "$(grep -c 'cnn epoch' "$dir/out$k.txt")" -eq 1 ]
    check "$k processes: one process logs" $?
    one=$(sed -n 's/.*train loss \([0-9.]*\).*/\1/p' "$dir/one.txt")
    many=$(sed -n 's/.*train loss \([0-9.]*\).*/\1/p' "$dir/out$k.txt")
    [ -n "$one" ] && [ "$one" = "$many" ]
    check "$k processes: the epoch's training loss is one process's ($one, $many)" $?
    [ "$(wc -l <"$dir/log$k.csv")" -eq 2 ] && timeout 60 "$bnorm" eval "$dir/m$k.st" --data "$dir" >/dev/null
    check "$k processes: one log, a model that eval takes" $?
done
timeout 120 "${mpirun[@]}" -np 2 "$bnorm" "${common[@]}" --distributed --local-bn >"$dir/local.txt" 2>&1
check "local BN trains" $?
grep -q "BN on each share alone" "$dir/local.txt"
check "local BN says so" $?
# Bad data on rank 1 only: every rank stops, exit 1, with a message.
timeout 120 "${mpirun[@]}" -np 2 bash -c 'd=$1; shift; [ "$OMPI_COMM_WORLD_RANK" = 1 ] && d=/nonexistent-data
    exec "$@" --data "$d"' _ "$dir" "$bnorm" train --model cnn --epochs 1 --threads 1 --distributed \
    >"$dir/bad.txt" 2>&1
status=$?
[ $status -ne 0 ] && [ $status -ne 124 ] && grep -q "nonexistent-data" "$dir/bad.txt" &&
    grep -q "another process could not load its data" "$dir/bad.txt"
check "bad data on one rank: all stop with a message (status $status)" $?
# A rank killed in training: the job stops, no hang.
timeout 120 "${mpirun[@]}" -np 2 bash -c '[ "$OMPI_COMM_WORLD_RANK" = 1 ] && (sleep 1; kill -9 $$) &
    exec "$@"' _ "$bnorm" "${common[@]}" --epochs 1000 --distributed >"$dir/killed.txt" 2>&1
status=$?
[ $status -ne 0 ] && [ $status -ne 124 ]
check "a killed rank stops the job (status $status)" $?
timeout 30 "$bnorm" train --local-bn --data "$dir" >/dev/null 2>&1
[ $? -eq 2 ]
check "--local-bn without --distributed is refused" $?
exit $fail
