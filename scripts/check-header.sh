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
grep -v -e "Cannot find a mangling for generic path" -e 'Missing `\[defines\]` entry for `feature = "ffi"`' -e "^WARN: Skip " -e "^WARN: Can't find u32" -e "^WARN: Can't find \(ControlSensorBlock\|ControlSensorData\|DataStoreInfo\|ImxResult\|ImxUploadSource\|ImxUtcTimeMs\|ImxTime\|ImxControlSensorBlock\|ControlSensorDataT\|Data32\|ImxData32\|VarDataEntry\)\." "$tmp/cbindgen.log" |
    grep -v -F -f <(printf '%s\n' "$rust_only" | tr -d '"' | tr , '\n' | sed "s/.*/Can't find &./") >&2 || true
# Only the C API's own names may appear: SPOOL_* / spool_*, the legacy MM1 functions and the MM2 façade (imx_*).
legacy="write_tsd_evt|write_tsd_evt_time|read_tsd_evt|erase_tsd_evt|revert_tsd_evt_pending_data|erase_tsd_evt_pending_data|atomic_erase_records|process_memory|flush_all_to_disk|get_flush_progress|is_all_ram_empty|cancel_memory_flush|imx_init_data_store_entry|reset_csd_entry|imx_sat_init|init_ext_memory|init_disk_storage_system|perform_power_failure_recovery|get_pending_disk_write_count|is_disk_usage_acceptable|imx_init_memory_statistics|imx_update_memory_statistics|imx_get_memory_statistics|imx_calculate_fragmentation_level|imx_print_memory_statistics|cli_memory_stats"
legacy="$legacy|imx_write_tsd|imx_write_evt|imx_read_bulk_samples|imx_get_new_sample_count|imx_has_pending_data|imx_erase_all_pending|imx_revert_all_pending|imx_get_memory_stats|imx_get_total_sample_count|imx_read_next_tsd_evt|imx_peek_next_tsd_evt|imx_memory_manager_init|imx_memory_manager_ready|imx_memory_manager_shutdown|imx_configure_sensor|imx_activate_sensor|imx_deactivate_sensor|imx_recover_sensor_disk_data|process_memory_manager|imx_power_event_detected|imx_set_utc_available|mm2_get_utc_time_ms|imx_get_sensor_state|imx_validate_sector_chains|imx_force_garbage_collection|imx_init_gps_config_for_source|imx_write_event_with_gps|imx_write_gps_location"
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
# The MM2 façade: with the firmware's common.h (SPOOL_HAVE_IMATRIX_COMMON), and with the
# hand-written include/imatrix_compat.h; the MM2 prototypes of the facts reference, quoted
# verbatim in tests/c/prototypes.h, must agree with the generated ones (a conflicting
# redeclaration is a compile error).
printf '#include "common.h"\n#define SPOOL_HAVE_IMATRIX_COMMON 1\n#include "sensor_spool.h"\n#include "prototypes.h"\nint main(void) { return imx_memory_manager_ready(); }\n' > "$tmp/mm2_common.c"
printf '#include "imatrix_compat.h"\n#include "prototypes.h"\nint main(void) { return imx_memory_manager_ready() + (int)IMX_NO_DATA; }\n' > "$tmp/mm2_compat.c"
W="-Wall -Wextra -Werror -pedantic -Iinclude -Itests/c"
for src in alone fw_first hdr_first mm2_common mm2_compat; do
    for std in c99 c11; do
        gcc -std=$std $W -c "$tmp/$src.c" -o "$tmp/$src.$std.o"
        gcc -std=$std $W -DLINUX_PLATFORM -c "$tmp/$src.c" -o "$tmp/$src.$std.linux.o"
    done
    g++ -x c++ $W -c "$tmp/$src.c" -o "$tmp/$src.cpp.o"
    g++ -x c++ -std=c++17 $W -c "$tmp/$src.c" -o "$tmp/$src.cpp17.o"
done
echo "header: compiles as C99, C11 (gcc -Wall -Wextra -Werror -pedantic) and C++/C++17 (g++), alone, with common.h, and the MM2 façade with common.h and with imatrix_compat.h"
