#!/usr/bin/env bash
# Regenerates include/sensor_spool.h with the pinned cbindgen and fails on any difference
# (`--write` updates the committed header instead), then compiles the header as C99 and C11
# (gcc -Wall -Wextra -Werror -pedantic) and as C++ (g++), alone and together with the
# firmware stand-in tests/c/common.h in both include orders.
set -euo pipefail
cd "$(dirname "$0")/.."
CBINDGEN_VERSION=0.29.4
if ! command -v cbindgen >/dev/null || [ "$(cbindgen --version | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
    cargo install --locked "cbindgen@$CBINDGEN_VERSION"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The header comes from src/ffi alone. cbindgen exports every `pub const` of the crate (and
# any type it meets), so the public items of the other modules are excluded here, computed
# from the sources (not listed by hand in cbindgen.toml): a new one cannot leak. (A
# `/// cbindgen:ignore` on their `pub mod` lines would make rustdoc resolve those modules'
# intra-doc links in the crate root.) Names also defined in src/ffi are kept.
items() { grep -rhoE '^\s*pub (const|struct|enum|union|type) [A-Za-z_0-9]+' "$@" --include=*.rs | awk '{print $3}' | sort -u; }
items src/ffi > "$tmp/ffi_items"
rust_only=$(items src --exclude-dir=ffi | grep -vxF -f "$tmp/ffi_items" | sed 's/.*/"&"/' | paste -sd, -)
sed "s/^exclude = \[\(.*\)\]$/exclude = [\1, $rust_only]/" cbindgen.toml > "$tmp/cbindgen.toml"
grep -q "$(printf '%s' "$rust_only" | cut -d, -f1)" "$tmp/cbindgen.toml" || { echo "header: cannot add the exclusions to cbindgen.toml's [export] exclude line" >&2; exit 1; }
# cbindgen warns about every cfg(feature = "ffi") item it cannot map to a #define; the
# module is gated as a whole, so those warnings are expected and filtered.
cbindgen --config "$tmp/cbindgen.toml" --crate sensor-spool --output "$tmp/sensor_spool.h" 2> "$tmp/cbindgen.log" \
    || { cat "$tmp/cbindgen.log"; exit 1; }
grep -v -e "Cannot find a mangling for generic path" -e 'Missing `\[defines\]` entry for `feature = "ffi"`' -e "^WARN: Skip " -e "^WARN: Can't find u32" -e "^WARN: Can't find \(ControlSensorBlock\|ControlSensorData\|DataStoreInfo\)" "$tmp/cbindgen.log" |
    grep -v -F -f <(printf '%s\n' "$rust_only" | tr -d '"' | tr , '\n' | sed "s/.*/Can't find &./") >&2 || true
# Only the C API's own names may appear: SPOOL_* / spool_* and the legacy MM1 functions.
legacy="write_tsd_evt|write_tsd_evt_time|read_tsd_evt|erase_tsd_evt|revert_tsd_evt_pending_data|erase_tsd_evt_pending_data|atomic_erase_records|process_memory|flush_all_to_disk|get_flush_progress|is_all_ram_empty|cancel_memory_flush|imx_init_data_store_entry|reset_csd_entry"
stray=$( { grep -oE '^#define [A-Za-z_0-9]+' "$tmp/sensor_spool.h" | awk '{print $2}';
           grep -oE '^[a-z_0-9 *]+[ *]([a-z_0-9]+)\(' "$tmp/sensor_spool.h" | sed -E 's/.*[ *]([a-z_0-9]+)\($/\1/'; } |
         grep -vE "^(SENSOR_SPOOL_H|SPOOL_[A-Z0-9_]+|spool_[a-z0-9_]+|$legacy)$" || true)
if [ -n "$stray" ]; then
    echo "header: names outside the C API leaked into the header (add them to [export] exclude in cbindgen.toml):" >&2
    echo "$stray" >&2
    exit 1
fi
if [ "${1:-}" = "--write" ]; then
    cp "$tmp/sensor_spool.h" include/sensor_spool.h
    echo "header: include/sensor_spool.h written"
elif ! diff -u include/sensor_spool.h "$tmp/sensor_spool.h"; then
    echo "header: include/sensor_spool.h is out of date; run scripts/check-header.sh --write" >&2
    exit 1
else
    echo "header: include/sensor_spool.h matches cbindgen $CBINDGEN_VERSION output"
fi
printf '#include "sensor_spool.h"\nint main(void) { return SPOOL_OK; }\n' > "$tmp/alone.c"
printf '#include "common.h"\n#include "sensor_spool.h"\nint main(void) { return SPOOL_OK; }\n' > "$tmp/fw_first.c"
printf '#include "sensor_spool.h"\n#include "common.h"\nint main(void) { return SPOOL_OK; }\n' > "$tmp/hdr_first.c"
W="-Wall -Wextra -Werror -pedantic -Iinclude -Itests/c"
for src in alone fw_first hdr_first; do
    for std in c99 c11; do
        gcc -std=$std $W -c "$tmp/$src.c" -o "$tmp/$src.$std.o"
        gcc -std=$std $W -DLINUX_PLATFORM -c "$tmp/$src.c" -o "$tmp/$src.$std.linux.o"
    done
    g++ -x c++ $W -c "$tmp/$src.c" -o "$tmp/$src.cpp.o"
done
echo "header: compiles as C99, C11 (gcc -Wall -Wextra -Werror -pedantic) and C++ (g++), alone and with common.h"
