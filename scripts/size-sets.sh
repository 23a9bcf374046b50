#!/usr/bin/env bash
# Size per feature set: for each set of C entry points, a minimal firmware
# (examples/firmware/size/min.c) that references exactly that set and nothing else is linked
# with --gc-sections against the set's static library (LTO, profile firmware, CS=extern), for
# thumbv7m, thumbv7em and riscv32imc. Reported: the library's .text, .rodata, .data, .bss as
# linked (input sections from libsensor_spool.a, compiler_builtins included), flash =
# .text + .rodata, and the RAM beyond the configured pools and sensor table (fixed overhead).
# Budgets (issue 22) are checked on thumbv7em; see scripts/size-ceiling.env for the ceilings
# CI enforces while a budget is not met yet.
#
# usage: scripts/size-sets.sh [--markdown] [--no-check] [SET...]
#   SET: pool | legacy-ram | legacy-nor | all   (default: all four, in that order)
#   env BUILD_DIR=build, TARGETS="m3 m4f rv32"
# Output: build/size/<set>/<target>/{fw.elf,fw.map}, the table on stdout; exit status 1 when a
# ceiling is exceeded (unless --no-check).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/size-lib.sh
. "$(dirname "$0")/size-lib.sh"
cd "$SPOOL_ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
read -r -a TARGETS <<<"${TARGETS:-m3 m4f rv32}"
markdown=0
check=1
sets=()
for a in "$@"; do
    case "$a" in
    --markdown) markdown=1 ;;
    --no-check) check=0 ;;
    -h | --help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    pool | legacy-ram | legacy-nor | all) sets+=("$a") ;;
    *) die "unknown set '$a' (pool | legacy-ram | legacy-nor | all)" ;;
    esac
done
[ ${#sets[@]} -eq 0 ] && sets=(pool legacy-ram legacy-nor all)

# ---- the sets: entry points, and the archive flavor (extra cargo features) -----------------
LEGACY_MM1=(write_tsd_evt write_tsd_evt_time read_tsd_evt erase_tsd_evt revert_tsd_evt_pending_data
    erase_tsd_evt_pending_data atomic_erase_records process_memory flush_all_to_disk get_flush_progress
    is_all_ram_empty cancel_memory_flush imx_init_data_store_entry reset_csd_entry)
entry_points() {
    case "$1" in
    pool) echo spool_pool_init spool_pool_alloc spool_pool_free ;;
    legacy-ram) echo spool_config_default spool_init spool_register_sensors "${LEGACY_MM1[@]}" ;;
    legacy-nor) echo spool_config_default spool_init spool_register_sensors "${LEGACY_MM1[@]}" \
        spool_recover spool_storage_stats ;;
    all) # every function the header declares (the firmware's critical-section hooks excepted)
        grep -E '^[A-Za-z_][A-Za-z0-9_ ]*[ *]+[a-z_][a-z0-9_]*\(' include/sensor_spool.h |
            grep -v '^extern' | sed -E 's/^[^(]*[ *]([a-z_][a-z0-9_]*)\(.*/\1/' | tr '\n' ' '
        ;;
    esac
}
# Storage of the archive a firmware of this set links (scripts/build-staticlib.sh STORAGE=):
# the RAM-only archive for the sets without flash.
set_storage() {
    case "$1" in
    pool | legacy-ram) echo ram ;;
    *) echo default ;;
    esac
}
# Budgets (issue 22): flash (.text + .rodata) on thumbv7em, bytes.
budget_of() {
    case "$1" in
    pool) echo 1536 ;;
    legacy-ram) echo 12288 ;;
    legacy-nor) echo 24576 ;;
    all) echo 36864 ;;
    esac
}
# Ceiling CI enforces (scripts/size-ceiling.env): the budget once met, the measured value
# (plus a little) until then.
# shellcheck source=scripts/size-ceiling.env
. scripts/size-ceiling.env
ceiling_of() {
    local v
    v="CEILING_FLASH_$(echo "$1" | tr 'a-z-' 'A-Z_')"
    echo "${!v:-$(budget_of "$1")}"
}
RAM_OVERHEAD_BUDGET=1024
ram_ceiling_of() {
    local v
    v="CEILING_RAM_FIXED_$(echo "$1" | tr 'a-z-' 'A-Z_')"
    echo "${!v:-${CEILING_RAM_FIXED:-$RAM_OVERHEAD_BUDGET}}"
}

triple_of() {
    case "$1" in
    m3) echo thumbv7m-none-eabi ;;
    m4f) echo thumbv7em-none-eabihf ;;
    rv32) echo riscv32imc-unknown-none-elf ;;
    esac
}

# archive STORAGE TARGET : builds (cargo makes it a no-op when nothing changed) and prints the
# path of the extern-cs archive with this storage (the archives of the `staticlib` stage).
archive() {
    local storage="$1" t="$2" triple flavor dir
    triple="$(triple_of "$t")"
    flavor="${triple%%-*}"
    dir="$BUILD_DIR/$triple-extern-cs"
    [ "$storage" = default ] || dir="$dir-$storage"
    CS=extern STORAGE="$storage" BUILD_DIR="$BUILD_DIR" bash scripts/build-staticlib.sh "$flavor" >/dev/null
    echo "$dir/libsensor_spool.a"
}

link_one() { # link_one SET TARGET ARCHIVE
    local set="$1" t="$2" lib="$3" dir cc arch ldflags
    dir="$BUILD_DIR/size/$set/$t"
    mkdir -p "$dir"
    rm -f "$dir/fw.elf" "$dir/fw.map"
    for f in $(entry_points "$set"); do echo "KEEP($f)"; done >"$dir/keep.h"
    case "$t" in
    m3) cc=arm-none-eabi-gcc arch=(-mcpu=cortex-m3 -mthumb -mfloat-abi=soft) ;;
    m4f) cc=arm-none-eabi-gcc arch=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16) ;;
    rv32) cc=riscv64-unknown-elf-gcc arch=(-march=rv32imc_zicsr -mabi=ilp32 -mcmodel=medany) ;;
    esac
    case "$t" in
    m3) ldflags=(-T examples/firmware/cortex_m.ld -L examples/firmware/lm3s6965evb -Wl,-z,noexecstack) ;;
    m4f) ldflags=(-T examples/firmware/cortex_m.ld -L examples/firmware/mps2-an386 -Wl,-z,noexecstack) ;;
    rv32) ldflags=(-T examples/firmware/riscv.ld -L examples/firmware/riscv-virt -Wl,--no-warn-rwx-segments) ;;
    esac
    "$cc" "${arch[@]}" -std=c11 -Wall -Wextra -Werror -Os -ffreestanding -ffunction-sections -fdata-sections \
        -I"$dir" examples/firmware/size/min.c "$lib" -nostdlib "${ldflags[@]}" -Wl,--gc-sections \
        -Wl,-Map="$dir/fw.map" -o "$dir/fw.elf"
}

# linked MAP PATTERN : true if a RAM object whose section name matches PATTERN is in the image
# (not merely among the discarded input sections listed first in the map).
linked() {
    sed -n '/^Linker script and memory map/,$p' "$1" | grep -E "^ \.(s?bss|s?data)\..*$2" >/dev/null
}

const_of() { # const_of FILE NAME : value of `pub const NAME: usize = N;`
    sed -n "s/^pub const $2: usize = \([0-9_]*\);.*/\1/p" "$1" | tr -d _ | head -n 1
}

# Configured RAM of a set (what the fixed overhead is counted beyond): the C block pool's
# blocks when the firmware links the C pool (the no_std CPool of src/ffi/pool_api.rs), plus
# for the store sets
# the WICED profile's store pool and sensor table (see scripts/size-report.sh), the flash
# part per sensor slot only where the archive has a flash path.
configured_ram() { # configured_ram SET MAP STORAGE
    local set="$1" map="$2" storage="$3" cpool sector sectors sensors entry part pool
    cpool="$(sed -n '/^#\[cfg(not(feature = "std"))\]$/,/^>;$/p' src/ffi/pool_api.rs |
        sed -n 's/.*Tier<\([0-9]*\), \([0-9]*\), [0-9]*>.*/\1 \2/p' | awk '{ s += $1 * $2 } END { print s + 0 }')"
    linked "$map" 'pool_api6C_POOL' || cpool=0
    [ "$set" = pool ] && {
        echo "$cpool"
        return
    }
    sector="$(const_of src/profile.rs WICED_SECTOR)"
    sectors="$(const_of src/profile.rs WICED_SECTORS)"
    sensors="$(const_of src/profile.rs WICED_SENSORS)"
    entry="${ENTRY_SIZE:-24}"
    part="${FLASH_PART_SIZE:-52}"
    [ "$storage" = ram ] && part=0
    # shellcheck disable=SC2017 # whole u32 bitmap words
    pool=$((sectors * (sector + 3) + (sectors + 31) / 32 * 4))
    echo $((cpool + pool + sensors * (entry + part)))
}

fail=0
rows=()
for set in "${sets[@]}"; do
    feats="$(set_storage "$set")"
    for t in "${TARGETS[@]}"; do
        lib="$(archive "$feats" "$t")"
        link_one "$set" "$t" "$lib" || {
            note "$set/$t: link failed"
            fail=1
            continue
        }
        read -r lt lr ld lb _ _ _ _ ct cr < <(map_sizes "$BUILD_DIR/size/$set/$t/fw.map")
        flash=$((lt + lr))
        ram=$((ld + lb))
        over=$((ram - $(configured_ram "$set" "$BUILD_DIR/size/$set/$t/fw.map" "$feats")))
        note_store=""
        if linked "$BUILD_DIR/size/$set/$t/fw.map" 'ffi5state5STATE'; then note_store="store state linked"; fi
        rows+=("$set|$t|$lt|$lr|$ld|$lb|$flash|$over|$ct|$note_store|${feats:-}")
    done
done

printf '%-11s %-5s %7s %7s %6s %7s %8s %9s %10s  %s\n' set target .text .rodata .data .bss flash ram-fixed builtins notes
for r in "${rows[@]}"; do
    IFS='|' read -r set t lt lr ld lb flash over ct note_store feats <<<"$r"
    printf '%-11s %-5s %7d %7d %6d %7d %8d %9d %10d  %s\n' "$set" "$t" "$lt" "$lr" "$ld" "$lb" "$flash" "$over" "$ct" \
        "storage $feats${note_store:+, $note_store}"
done
echo
echo "Budgets on thumbv7em (issue 22), flash = library .text + .rodata:"
for r in "${rows[@]}"; do
    IFS='|' read -r set t lt lr ld lb flash over ct note_store feats <<<"$r"
    [ "$t" = m4f ] || continue
    b="$(budget_of "$set")"
    c="$(ceiling_of "$set")"
    if [ "$flash" -le "$b" ]; then
        verdict="budget MET"
    else
        verdict="budget not met, gap $((flash - b)) B"
    fi
    if [ "$flash" -le "$c" ]; then
        cv="ceiling $c ok"
    else
        cv="CEILING $c EXCEEDED"
        fail=1
    fi
    ramv="fixed RAM $over B"
    if [ "$over" -le "$RAM_OVERHEAD_BUDGET" ]; then
        ramv="$ramv: budget $RAM_OVERHEAD_BUDGET MET"
    else
        ramv="$ramv: budget $RAM_OVERHEAD_BUDGET not met, gap $((over - RAM_OVERHEAD_BUDGET)) B"
    fi
    rc="$(ram_ceiling_of "$set")"
    if [ "$over" -gt "$rc" ]; then
        ramv="$ramv (CEILING $rc EXCEEDED)"
        fail=1
    fi
    if [ "$set" = pool ]; then
        if [ -n "$note_store" ]; then ramv="$ramv; store RAM linked: budget not met"; else ramv="$ramv; no store RAM: ok"; fi
    fi
    printf '  %-11s %6d B / budget %6d B: %s (%s); %s\n' "$set" "$flash" "$b" "$verdict" "$cv" "$ramv"
done

if [ "$markdown" -eq 1 ]; then
    info="$BUILD_DIR/thumbv7em-none-eabihf-extern-cs/build-info.txt"
    echo
    echo "Sizes from \`scripts/size-sets.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(sed -n 's/^rustc=//p' "$info" 2>/dev/null || echo 'rustc ?'), profile firmware, CS=extern:"
    echo
    echo "| feature set | archive storage | target | lib .text | lib .rodata | lib .data | lib .bss | flash | fixed RAM |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
    for r in "${rows[@]}"; do
        IFS='|' read -r set t lt lr ld lb flash over ct note_store feats <<<"$r"
        [ "$feats" = default ] && feats=nor
        echo "| $set | $feats | $(triple_of "$t") | $lt | $lr | $ld | $lb | $flash | $over |"
    done
fi
[ "$check" -eq 0 ] || [ "$fail" -eq 0 ]
