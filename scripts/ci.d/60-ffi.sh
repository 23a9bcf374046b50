# C ABI (src/ffi): the FFI tests under miri, and the C test suite against the host static
# libraries built by the staticlib step. (The header drift stage, scripts/check-header.sh, is
# registered in scripts/test.sh itself.)
# Miri times on the 2-core machine: ffi_legacy ~25 s, ffi_model ~50 s (PROPTEST_CASES=8),
# ffi_hostile ~380 s (93 hostile calls, each on a freshly reset LINUX-profile store).
MIRI_TESTS+=("--test ffi_legacy" "--test ffi_model" "--test ffi_hostile")

# Legacy call-site replays + pthread test (>= 1,000,000 calls), against both host archives:
# build/host-std (std) and build/host (no_std, extern-cs with C hooks in tests/c/cs_hooks.c).
stage_c_tests() {
    SPOOL_C_LIB_STD=build/host-std/libsensor_spool.a \
        SPOOL_C_LIB_NOSTD=build/host/libsensor_spool.a bash scripts/c-tests.sh
}
register_stage c-tests "C test suite: legacy call sites + pthread (host std and no_std .a)" stage_c_tests
