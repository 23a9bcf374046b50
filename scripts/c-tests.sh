#!/usr/bin/env bash
# Runs the C test suite in tests/c/ (legacy call-site replays and a pthread test) against
# the host static library, in two flavours:
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
out=target/c-tests
mkdir -p "$out"
CFLAGS="-std=c11 -Wall -Wextra -Werror -pedantic -O2 -g -DLINUX_PLATFORM -Iinclude -Itests/c"
SRCS="tests/c/main.c tests/c/fw.c tests/c/replay.c tests/c/threads.c"
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
        gcc $CFLAGS $SRCS "$lib" -lpthread -ldl -lm -o "$out/c_suite_std"
        ;;
    nostd)
        lib="${SPOOL_C_LIB_NOSTD:-}"
        if [ -z "$lib" ]; then
            cargo rustc --release --no-default-features --features ffi,panic-handler,extern-cs,storage-nor \
                --crate-type staticlib --target-dir target/nostd --quiet
            lib=target/nostd/release/libsensor_spool.a
        fi
        gcc $CFLAGS $SRCS tests/c/cs_hooks.c "$lib" -lpthread -Wl,--gc-sections -o "$out/c_suite_nostd"
        ;;
    *)
        echo "unknown flavour $f (std | nostd)" >&2
        exit 2
        ;;
    esac
    echo "== C suite, $f static library"
    set +e
    "$out/c_suite_$f" | tee "$out/c_suite_$f.log"
    rc=${PIPESTATUS[0]}
    set -e
    line=$(tail -n 1 "$out/c_suite_$f.log")
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    q=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ] || [ -z "$q" ]; then p=0; q=1; fi
    if [ "$rc" -ne 0 ] && [ "$q" -eq 0 ]; then q=1; fi   # crashed after its summary line
    passed=$((passed + p))
    failed=$((failed + q))
done
echo "C suites, all flavours run (${flavours[*]}): $passed passed, $failed failed in total"
[ "$failed" -eq 0 ]
