#!/usr/bin/env bash
# The long power-loss run (not part of CI, which runs the same sweeps at scale 1,
# about 225,000 cut points): every NOR power-loss sweep of tests/flash_powerloss.rs
# with its workload multiplied by SPOOL_SWEEP_SCALE (default 10: about 2.2 million
# cut points, ECC-strict mock, every tear model, each cut image mounted, checked and
# written on again), optimized; then the file store's power-cut sweep of tests/file_sweep.rs
# (CI: about 160,000 cut points) with SPOOL_SWEEP_SCALE times the runs. Prints the per-sweep
# lines and the totals.
#
#   scripts/torture.sh            # scale 10
#   SPOOL_SWEEP_SCALE=40 scripts/torture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SPOOL_SWEEP_SCALE="${SPOOL_SWEEP_SCALE:-10}"
log="$(mktemp)"
start=$(date +%s)
cargo test --release --features _mock-flash --test flash_powerloss -- --nocapture 2>&1 | tee "$log"
secs=$(($(date +%s) - start))
awk -v s="$SPOOL_SWEEP_SCALE" -v t="$secs" '
    /^flash power-loss .* cut points/ { for (i = 2; i <= NF; i++) if ($(i) == "cut") n += $(i - 1) }
    END { printf "torture (scale %s): %d flash cut points checked in %d s\n", s, n, t; exit (n == 0) }' "$log"
start=$(date +%s)
cargo test --release --test file_sweep -- --nocapture 2>&1 | tee "$log"
secs=$(($(date +%s) - start))
awk -v s="$SPOOL_SWEEP_SCALE" -v t="$secs" '
    /^file power-cut sweep .* cut points/ { for (i = 2; i <= NF; i++) if ($(i) == "cut") n += $(i - 1) }
    END { printf "torture (scale %s): %d file cut points checked in %d s\n", s, n, t; exit (n == 0) }' "$log"
rm -f "$log"
