#!/usr/bin/env bash
# The pool-backed malloc wrapper (c/spool_malloc_wrap.c): links tests/c/malloc_wrap.c with
#   -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc
# against the host std static library and runs it. Prints the program's own
# `N passed, N failed` line last. SPOOL_C_LIB_STD=path/libsensor_spool.a uses a prebuilt archive.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/c-tests
mkdir -p "$out"
lib="${SPOOL_C_LIB_STD:-}"
if [ -z "$lib" ]; then
    cargo rustc --release --features ffi --crate-type staticlib --quiet
    lib=target/release/libsensor_spool.a
fi
gcc -std=c11 -Wall -Wextra -Werror -pedantic -O2 -g -fno-builtin -Iinclude \
    tests/c/malloc_wrap.c c/spool_malloc_wrap.c "$lib" \
    -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc \
    -lpthread -ldl -lm -o "$out/malloc_wrap"
"$out/malloc_wrap"
