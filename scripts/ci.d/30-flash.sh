# Flash storage (src/storage): the power-loss sweeps, hostile images and exact counters at
# full size, optimized, on the ECC-strict mock with every tear model. Prints the total
# number of power-cut points checked and fails below 200,000; the spool-level
# crash-truth regressions, driver-fault sweep and durability-window model (power cuts
# without the shutdown flush lose only records inside the window) run here too. (`cargo test` in the `test` step runs the same tests, long sweeps scaled
# down to a tenth because unoptimized builds are ~20x slower.)
stage_flash_release() {
    cargo test --release --features _mock-flash,ffi \
        --test flash_powerloss --test flash_hostile --test flash_counters --test spool_flash \
        --test spool_crash_truth --test spool_seq_unique --test spool_window --test ffi_flash_powerloss \
        -- --nocapture 2>&1 | tee "$SPOOL_TMP/flash-release.log"
    awk '/^flash power-loss .* cut points/ { for (i = 2; i <= NF; i++) if ($(i) == "cut") n += $(i - 1) }
         END { printf "flash power-loss: %d cut points checked in total\n", n; exit (n < 200000) }' \
        "$SPOOL_TMP/flash-release.log"
}
register_stage flash-release "flash: power-loss sweeps (>= 200k cuts), hostile images, counters (release)" stage_flash_release

# Spool-level flash bench (benches/spool_flash.rs) in quick mode (SPOOL_BENCH_QUICK=1: 10,000
# samples instead of 100,000, under a second once built): a smoke run that it builds, runs through
# every scenario and prints all its rows. A measurement: unmet targets never fail it.
stage_spool_bench_smoke() {
    SPOOL_BENCH_QUICK=1 cargo bench --bench spool_flash --features _mock-flash 2>&1 |
        tee "$SPOOL_TMP/spool-bench.log"
    awk '/^SPOOL_FLASH_ROW\t/ { n++ } END { printf "spool_flash smoke: %d rows\n", n; exit (n < 20) }' \
        "$SPOOL_TMP/spool-bench.log"
}
register_stage spool-bench-smoke "spool-level flash bench, quick mode (SPOOL_BENCH_QUICK=1)" stage_spool_bench_smoke
