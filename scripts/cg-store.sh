#!/usr/bin/env bash
# Instructions per write+read+ack(1) cycle of the store (callgrind, deterministic), one
# row per cycle kind of examples/cg_store.rs (inclusive cost of each `cg_cycle_*`
# function divided by its 100,000 cycles). usage: scripts/cg-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# CG_PROFILE=bench: the opt-level 3 build of `cargo bench` (default: release, opt-level "s").
PROFILE="${CG_PROFILE:-release}"
cargo build --profile "$PROFILE" --example cg_store >/dev/null 2>&1 || cargo build --profile "$PROFILE" --example cg_store
echo "profile: $PROFILE"
N=100000
out=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
    target/release/examples/cg_store >/dev/null 2>"$out/cg.log"
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg.out" >"$out/annotate.txt"
for k in tsd_empty evt_empty tsd_backlog evt_backlog deque pool; do
    ir=$(grep -E "cg_cycle_${k}[^a-z_]" "$out/annotate.txt" | head -1 | awk '{gsub(",", "", $1); print $1}')
    awk -v k="$k" -v ir="${ir:-0}" -v n="$N" 'BEGIN { printf "%-12s %8.1f instructions/cycle\n", k, ir / n }'
done
echo "callgrind output: $out/cg.out (annotated: $out/annotate.txt)"
