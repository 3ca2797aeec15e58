#!/usr/bin/env bash
# What does counting lock contention cost on the hot path? Builds benches/hot_path.rs
# with and without the `contention` feature and counts instructions per hit under
# callgrind (deterministic, unlike wall time on a shared machine). Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed; skipping the instruction count" >&2
    exit 0
fi
hits=200000
printf '| algorithm | with counters (instr/hit) | without (instr/hit) |\n|---|---|---|\n'
for variant in with without; do
    flags=()
    [ "$variant" = without ] && flags=(--no-default-features)
    cargo build --quiet --release --example hot_path "${flags[@]}"
    cp target/release/examples/hot_path "target/hot_path_$variant"
done
count() {  # instructions of one run: total minus a run with 0 hits
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for algorithm in fixed_window sliding_window sliding_window_counter token_bucket; do
    row="| $algorithm"
    for variant in with without; do
        full=$(count "target/hot_path_$variant" "$algorithm" "$hits")
        none=$(count "target/hot_path_$variant" "$algorithm" 0)
        row="$row | $(( (full - none) / hits ))"
    done
    echo "$row |"
done
