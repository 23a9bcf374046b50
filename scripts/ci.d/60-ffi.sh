# C ABI (src/ffi): the FFI tests under miri, and the C test suite against the host static
# libraries built by the staticlib step. (The header drift stage, scripts/check-header.sh, is
# registered in scripts/test.sh itself.)
# Miri times on the 2-core machine (run time, load average ~4.8, compiled): ffi_legacy 4 s,
# ffi_model 33 s (PROPTEST_CASES=8, sequences of 1..12 calls), ffi_hostile 45 s (93 hostile
# calls sharing one world under miri, plus the storage-config table; 15 s on an idle
# machine): 83 s together, was ~455 s. tests/ffi_flash (thousands of records per test)
# is not run under miri; the C flash callbacks run under miri in ffi_hostile's
# storage-config table (mount and recovery through them).
# mirrors_saturate_instead_of_wrapping (70,000 writes through the same entry points
# the other tests take) runs natively in the test step only.
MIRI_TESTS+=("--test ffi_legacy -- --skip mirrors_saturate_instead_of_wrapping" "--test ffi_model" "--test ffi_hostile")

# Legacy call-site replays + pthread test (>= 1,000,000 calls), against both host archives:
# build/host-std (std) and build/host (no_std, extern-cs with C hooks in tests/c/cs_hooks.c).
stage_c_tests() {
    SPOOL_C_LIB_STD=build/host-std/libsensor_spool.a \
        SPOOL_C_LIB_NOSTD=build/host/libsensor_spool.a bash scripts/c-tests.sh
}
register_stage c-tests "C test suite: legacy call sites + pthread (host std and no_std .a)" stage_c_tests
