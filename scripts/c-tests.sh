#!/usr/bin/env bash
# Runs the C test suites in tests/c/ against the host static library: the legacy call-site
# replays and a pthread test (main.c), and the MM1/MM2 call-site suite (callsites.c, built
# three times: as C99, C11 and C++17, each run), in two flavours:
#   std     : cargo rustc --release --features ffi --crate-type staticlib
#   no_std  : --no-default-features --features ffi,panic-handler,extern-cs,storage-nor, with the
#             critical-section hooks spool_cs_acquire/release provided in C (tests/c/cs_hooks.c)
# `scripts/c-tests.sh std` or `scripts/c-tests.sh nostd` runs one flavour. Prebuilt archives
# can be given instead of building here: SPOOL_C_LIB_STD=build/host-std/libsensor_spool.a,
# SPOOL_C_LIB_NOSTD=build/host/libsensor_spool.a (scripts/build-staticlib.sh).
# Each suite binary ends with its own `N passed, N failed` line; the script's last line is the
# total over the flavours, worded so that test runners do not count it twice.
# Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
flavours=("${@:-std nostd}")
flavours=(${flavours[*]})
out="${C_TESTS_OUT:-target/c-tests}"
# Cross builds (the armhf CI stage): CC / CXX name the compilers, RUNNER the emulator
# (e.g. CC=arm-linux-gnueabihf-gcc CXX=arm-linux-gnueabihf-g++ RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf").
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
RUNNER="${RUNNER:-}"
mkdir -p "$out"
CFLAGS="-std=c11 -Wall -Wextra -Werror -pedantic -O2 -g -DLINUX_PLATFORM -Iinclude -Itests/c"
SRCS="tests/c/main.c tests/c/fw.c tests/c/replay.c tests/c/threads.c"
W="-Wall -Wextra -Werror -pedantic -O2 -g -DLINUX_PLATFORM -Iinclude -Itests/c"
# The call-site suite as C99, C11 and C++17 (the simulated firmware fw.c and the runner
# stay C11): objects for one flavour's link.
callsite_objs() {
    local tag="$1"
    $CC -std=c11 $W -c tests/c/fw.c -o "$out/cs_fw_$tag.o"
    $CC -std=c11 $W -c tests/c/callsites_main.c -o "$out/cs_main_$tag.o"
    $CC -std=c99 $W -c tests/c/callsites.c -o "$out/cs_c99_$tag.o"
    $CC -std=c11 $W -c tests/c/callsites.c -o "$out/cs_c11_$tag.o"
    $CXX -std=c++17 -x c++ $W -c tests/c/callsites.c -o "$out/cs_cxx17_$tag.o"
}
passed=0
failed=0
for f in "${flavours[@]}"; do
    case "$f" in
    std)
        lib="${SPOOL_C_LIB_STD:-}"
        if [ -z "$lib" ]; then
            cargo rustc --release --features ffi --crate-type staticlib --quiet
            lib=target/release/libsensor_spool.a
        fi
        $CC $CFLAGS $SRCS "$lib" -lpthread -ldl -lm -o "$out/c_suite_std"
        callsite_objs std
        for v in c99 c11 cxx17; do
            $CC "$out/cs_fw_std.o" "$out/cs_main_std.o" "$out/cs_${v}_std.o" "$lib" -lpthread -ldl -lm \
                -o "$out/c_suite_std_callsites_$v"
        done
        ;;
    nostd)
        lib="${SPOOL_C_LIB_NOSTD:-}"
        if [ -z "$lib" ]; then
            cargo rustc --release --no-default-features --features ffi,panic-handler,extern-cs,storage-nor \
                --crate-type staticlib --target-dir target/nostd --quiet
            lib=target/nostd/release/libsensor_spool.a
        fi
        $CC $CFLAGS $SRCS tests/c/cs_hooks.c "$lib" -lpthread -Wl,--gc-sections -o "$out/c_suite_nostd"
        callsite_objs nostd
        $CC -std=c11 $W -c tests/c/cs_hooks.c -o "$out/cs_hooks_nostd.o"
        for v in c99 c11 cxx17; do
            $CC "$out/cs_fw_nostd.o" "$out/cs_main_nostd.o" "$out/cs_${v}_nostd.o" "$out/cs_hooks_nostd.o" "$lib" \
                -lpthread -Wl,--gc-sections -o "$out/c_suite_nostd_callsites_$v"
        done
        ;;
    *)
        echo "unknown flavour $f (std | nostd)" >&2
        exit 2
        ;;
    esac
    for bin in "c_suite_$f" "c_suite_${f}_callsites_c99" "c_suite_${f}_callsites_c11" "c_suite_${f}_callsites_cxx17"; do
        echo "== C suite $bin, $f static library"
        set +e
        $RUNNER "$out/$bin" | tee "$out/$bin.log"
        rc=${PIPESTATUS[0]}
        set -e
        line=$(tail -n 1 "$out/$bin.log")
        p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
        q=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
        if [ -z "$p" ] || [ -z "$q" ]; then p=0; q=1; fi
        if [ "$rc" -ne 0 ] && [ "$q" -eq 0 ]; then q=1; fi   # crashed after its summary line
        passed=$((passed + p))
        failed=$((failed + q))
    done
done
echo "C suites, all flavours run (${flavours[*]}): $passed passed, $failed failed in total"
[ "$failed" -eq 0 ]
