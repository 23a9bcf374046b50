# shellcheck shell=bash
# armhf: the iMatrix Linux gateway's own CPU (i.MX6, 32-bit ARM, hard float). Builds the std
# static library for armv7-unknown-linux-gnueabihf (scripts/build-staticlib.sh armhf), runs
# the C suites against it (legacy replays + pthread test, and the MM1/MM2 call-site suite as
# C99, C11 and C++17) and the Rust tests under qemu-arm user-mode emulation.
# Installs what it lacks: gcc/g++-arm-linux-gnueabihf, qemu-user, the rust target.
ARMHF_TRIPLE=armv7-unknown-linux-gnueabihf
ARMHF_RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf"
# The Rust tests run under emulation: the C ABI tests (ffi_*), the store and spool model
# and count tests, the file store's crash / durability tests and the library's unit tests.
# Left out (time: each is minutes of proptest or flash sweeps under qemu-arm, and none
# depends on the pointer width): the pool property/thread tests, the flash power-loss and
# crash-truth sweeps, the fuzz regression replays, the legacy bug catalogue, and
# file_storage's two crash-image sweeps (crash_image_at_every_operation*: several minutes
# each under qemu-arm; the file crash test with real SIGKILLs runs).
ARMHF_TESTS=(--lib --test ffi_diag --test ffi_flash --test ffi_header --test ffi_hostile --test ffi_legacy
    --test ffi_log --test ffi_mirror --test ffi_mm2 --test ffi_model --test store_counts --test store_model
    --test file_crash --test file_durability --test file_storage --test spool_flash)

stage_armhf() {
    need_apt gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
    need_rust_target "$ARMHF_TRIPLE"
    bash scripts/build-staticlib.sh armhf
    CC=arm-linux-gnueabihf-gcc CXX=arm-linux-gnueabihf-g++ RUNNER="$ARMHF_RUNNER" \
        C_TESTS_OUT=target/c-tests-armhf SPOOL_C_LIB_STD=build/armhf/libsensor_spool.a \
        bash scripts/c-tests.sh std
    # SPOOL_TEST_RUNNER: file_crash starts its child process through the emulator too.
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc \
        CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="$ARMHF_RUNNER" \
        SPOOL_TEST_RUNNER="$ARMHF_RUNNER" PROPTEST_CASES="${ARMHF_PROPTEST_CASES:-32}" \
        cargo test --target "$ARMHF_TRIPLE" --features ffi,_mock-flash "${ARMHF_TESTS[@]}" \
        -- --skip crash_image_at_every_operation
}

register_stage armhf "armhf (i.MX6 Linux): std .a + C suites (C99/C11/C++17) and Rust tests under qemu-arm" stage_armhf
