# Linux file storage: the `config` feature (daemon configuration file) is not in
# HOST_TEST_FEATURES, so its clippy run and tests are a stage of their own. The
# FileStorage tests themselves (tests/file_*.rs, including the 200-kill SIGKILL
# crash test) run in the core `test` step (feature std is default).
stage_file_config() {
    cargo clippy --all-targets --features config -- -D warnings
    cargo test --features config --test file_config -- --nocapture
}
register_stage file-config "file storage: config feature (clippy + tests)" stage_file_config
