# Firmware-integration parts of the C ABI under miri: diagnostics (spool_dump's callback
# and buffer, version) and the MM2 façade's bug-class tests (~15 s). The MM2 model test
# is left out under miri (it re-checks the whole LINUX-profile store after every call);
# it runs in the normal `cargo test` step.
MIRI_TESTS+=("--test ffi_diag" "--test ffi_mm2 -- --skip mm2_calls_match_the_model")
