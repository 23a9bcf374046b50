# Linux file storage: the `config` feature (daemon configuration file) is not in
# HOST_TEST_FEATURES, so its clippy run and tests are a stage of their own. The
# FileStorage tests themselves (tests/file_*.rs, including the 200-kill SIGKILL
# crash test) run in the core `test` step (feature std is default).
stage_file_config() {
    cargo clippy --all-targets --features config -- -D warnings
    cargo test --features config --test file_config -- --nocapture
}
register_stage file-config "file storage: config feature (clippy + tests)" stage_file_config

# The file store's power-cut sweep (tests/file_sweep.rs), optimized: the spool over
# FileStorage on the in-memory crash model of the fault layer (unsynced data lost, torn
# at 512 B or kept; directory entries durable only after a directory fsync; journaling
# and independent-entry variants), a crash image before every filesystem operation,
# each mounted with nested cuts in its mount. Prints the total; fails below 100,000.
stage_file_sweep() {
    cargo test --release --test file_sweep -- --nocapture 2>&1 | tee "$SPOOL_TMP/file-sweep.log"
    awk '/^file power-cut sweep .* cut points/ { for (i = 2; i <= NF; i++) if ($(i) == "cut") n += $(i - 1) }
         END { printf "file power-cut sweep: %d cut points checked in total\n", n; exit (n < 100000) }' \
        "$SPOOL_TMP/file-sweep.log"
}
register_stage file-sweep "file storage: power-cut sweep (>= 100k cuts, release)" stage_file_sweep
