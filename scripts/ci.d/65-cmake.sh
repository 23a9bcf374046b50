# Firmware integration through CMake (cmake/CMakeLists.txt): the project tests/cmake/ adds
# the library with the two documented lines and builds the C suite of tests/c against it,
# for the host in two configurations, and runs it:
#   LINUX  (std archive, std critical section) : C suite + malloc-wrapper test
#            (c/spool_malloc_wrap.c linked with -Wl,--wrap=malloc,free,calloc,realloc)
#   WICED  (no_std archive, extern critical section, hooks from tests/c/cs_hooks.c) : C suite
# plus a cross configuration (SPOOL_TARGET=thumbv7em-none-eabihf) that builds only the
# archive, to check the option plumbing for a Cortex-M target.
# Each binary prints its own `N passed, N failed`; the stage's last line is the total,
# worded so that the test counter does not count it twice.
stage_cmake() {
    need_apt cmake
    local b=target/cmake-build cargo_dir="$PWD/target/cmake-cargo"
    local passed=0 failed=0 cfg exe line p q rc
    run_one() { # run_one BINARY : runs it, adds its summary line to the totals
        set +e
        "$1" | tee "$SPOOL_TMP/cmake-run.log"
        rc=${PIPESTATUS[0]}
        set -e
        line=$(tail -n 1 "$SPOOL_TMP/cmake-run.log")
        p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
        q=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
        if [ -z "$p" ] || [ -z "$q" ]; then p=0; q=1; fi
        if [ "$rc" -ne 0 ] && [ "$q" -eq 0 ]; then q=1; fi
        passed=$((passed + p))
        failed=$((failed + q))
    }
    for cfg in LINUX WICED; do
        echo "== cmake: SPOOL_PLATFORM=$cfg"
        cmake -S tests/cmake -B "$b/$cfg" -DSPOOL_PLATFORM="$cfg" \
            -DSPOOL_CARGO_TARGET_DIR="$cargo_dir-$cfg" >/dev/null
        cmake --build "$b/$cfg" -j2
        run_one "$b/$cfg/c_suite"
        if [ "$cfg" = LINUX ]; then
            run_one "$b/$cfg/malloc_wrap"
        fi
    done
    echo "== cmake: SPOOL_TARGET=thumbv7em-none-eabihf (archive only)"
    need_rust_target thumbv7em-none-eabihf
    cmake -S tests/cmake -B "$b/thumbv7em" -DSPOOL_PLATFORM=WICED \
        -DSPOOL_TARGET=thumbv7em-none-eabihf -DSPOOL_CARGO_TARGET_DIR="$cargo_dir-thumbv7em" |
        grep 'sensor_spool:'
    cmake --build "$b/thumbv7em" --target sensor_spool_cargo
    if [ -s "$cargo_dir-thumbv7em/thumbv7em-none-eabihf/release/libsensor_spool.a" ]; then
        echo "thumbv7em archive built through CMake (critical section cortex-m)"
    else
        echo "thumbv7em archive missing"
        failed=$((failed + 1))
    fi
    echo "CMake integration, all configurations (LINUX, WICED, thumbv7em): $passed passed, $failed failed in total"
    [ "$failed" -eq 0 ]
}
register_stage cmake "CMake integration: tests/cmake builds + runs the C suite (LINUX, WICED) and the malloc wrapper" stage_cmake
