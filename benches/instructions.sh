#!/usr/bin/env bash
# Instructions per parse and per decision of the `decision` benchmark's upgrade, counted by
# callgrind (valgrind). Unlike timings on a shared machine, the counts repeat exactly, so a
# change's effect shows even when the machine is noisy. Each count is the difference between
# loops of 2N and N iterations, divided by N, which cancels the setup.
#
#   benches/instructions.sh [N]      (N defaults to 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
cargo build --release -q -p tollgate-benches --bin decide-loop
bin="${CARGO_TARGET_DIR:-target}/release/decide-loop"
collected() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        awk '/Collected/ { print $4 }'
}
per_iteration() {
    local once twice
    once=$(collected "$1" "$n")
    twice=$(collected "$1" $((2 * n)))
    echo $(((twice - once) / n))
}
parse=$(per_iteration parse)
decide=$(per_iteration decide)
echo "parse the request:   $parse instructions"
echo "decide the upgrade:  $decide instructions"
awk -v d="$decide" -v p="$parse" 'BEGIN { printf "ratio:               %.2f\n", d / p }'
