#!/usr/bin/env bash
# Builds the host static library (std flavour, LTO: `cargo rustc --crate-type staticlib`)
# and runs the C test suite in tests/c/ against it: legacy call-site replays and a
# pthread test. The suite's last line is `N passed, N failed`; exit status non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/c-tests
mkdir -p "$out"
cargo rustc --release --features ffi --crate-type staticlib --quiet
lib=target/release/libsensor_spool.a
CFLAGS="-std=c11 -Wall -Wextra -Werror -pedantic -O2 -g -DLINUX_PLATFORM -Iinclude -Itests/c"
gcc $CFLAGS tests/c/main.c tests/c/fw.c tests/c/replay.c tests/c/threads.c "$lib" \
    -lpthread -ldl -lm -o "$out/c_suite"
"$out/c_suite"
