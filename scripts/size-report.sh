#!/usr/bin/env bash
# Size and RAM report of the static library inside each firmware image, from the linker map
# files of scripts/firmware-tests.sh (build/firmware/<target>/fw.map): the input sections
# that came from libsensor_spool.a, summed per kind (.text, .rodata, .data, .bss), next to
# the whole image; plus the stack depth of the public entry points measured in QEMU
# (stack painting, build/firmware/<target>/run.log). Then the budget check:
#   - library .text <= 8 KiB on thumbv7em (full feature set of the shipped archive),
#   - library RAM (.data + .bss) <= configured pools + sensor table + 1 KiB fixed overhead,
#     with the pools and the table of the profile the MCU archive is built with (WICED:
#     constants from src/profile.rs, 24-byte sensor table entry + 16-byte flash part per
#     sensor slot (the C API's store spills to flash); the C block pool's
#     configuration as the firmware reads it through spool_pool_stats).
#
# usage: scripts/size-report.sh [--no-budget] [--markdown] [m3 m4f rv32]
#   env TEXT_BUDGET (bytes, default 8192), RAM_OVERHEAD_BUDGET (bytes, default 1024),
#       STACK_WARN (bytes, default 4096: a warning line, the stack depth is not budgeted)
# Exit status 1 when a budget is exceeded (unless --no-budget) or a map file is missing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/size-lib.sh
. "$(dirname "$0")/size-lib.sh"
cd "$SPOOL_ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
TEXT_BUDGET="${TEXT_BUDGET:-8192}"
RAM_OVERHEAD_BUDGET="${RAM_OVERHEAD_BUDGET:-1024}"
STACK_WARN="${STACK_WARN:-4096}"
budget=1
markdown=0
targets=()
for a in "$@"; do
    case "$a" in
    --no-budget) budget=0 ;;
    --markdown) markdown=1 ;;
    -h | --help)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) targets+=("$a") ;;
    esac
done
[ ${#targets[@]} -eq 0 ] && targets=(m3 m4f rv32)

triple_of() {
    case "$1" in
    m3) echo thumbv7m-none-eabi ;;
    m4f) echo thumbv7em-none-eabihf ;;
    rv32) echo riscv32imc-unknown-none-elf ;;
    *) die "unknown target '$1'" ;;
    esac
}

# The library's largest functions (for the report; LTO inlines most of the crate into the
# exported entry points, so this is the cost per C entry point).
map_text_objects() {
    awk '
        function hex(h,   i, c, v) {
            h = tolower(h); sub(/^0x/, "", h); v = 0
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        /^Linker script and memory map/ { on = 1; next }
        !on { next }
        /^ \.text\./ {
            name = $1
            if (NF >= 4) { size = $3; file = $4 } else { getline; size = $2; file = $3 }
            sub(/^\.text\.(unlikely\.)?/, "", name)
            if (file ~ /libsensor_spool\.a\(/) printf "%8d  %s\n", hex(size), name
        }
    ' "$1" | sort -rn | awk -v n="${2:-8}" 'NR <= n'
}

# The library's .text per module: every library function symbol, demangled, counted under
# the module that defines it. LTO inlines callees into their callers, so a module's figure is
# the code that stayed out of line in it (an exported C function counts under its ffi module,
# with whatever it inlined).
map_text_modules() {
    awk '
        function hex(h,   i, c, v) {
            h = tolower(h); sub(/^0x/, "", h); v = 0
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        /^Linker script and memory map/ { on = 1; next }
        !on { next }
        /^ \.text\./ {
            name = $1
            if (NF >= 4) { size = $3; file = $4 } else { getline; size = $2; file = $3 }
            sub(/^\.text\.(unlikely\.)?/, "", name)
            if (file ~ /libsensor_spool\.a\(/) printf "%d %s\n", hex(size), name
        }
    ' "$1" | c++filt 2>/dev/null | awk '
        {
            size = $1; $1 = ""; n = substr($0, 2)
            gsub(/\[[0-9a-f]+\]/, "", n)      # v0 mangling: crate disambiguators
            m = ""
            if (n ~ /^(compiler_builtins|__aeabi|__udiv|__umod|__div|__mod|__mul|__ashl|__lshr|mem(cpy|move|set|cmp)$|bcmp$|strlen$)/) m = "compiler_builtins (memcpy, 64-bit division, ...)"
            else if (n ~ /^<?core::/) m = "core"
            else if (n ~ /^(write_tsd_evt|read_tsd_evt|erase_tsd_evt|revert_tsd_evt|atomic_erase|process_memory|flush_all_to_disk|get_flush_progress|cancel_memory_flush|is_all_ram_empty|imx_init_data_store_entry|reset_csd_entry)/) m = "ffi::legacy"
            else if (n ~ /^spool_pool_/) m = "ffi::pool_api"
            else if (n ~ /^spool_/) m = "ffi::native"
            else if (match(n, /sensor_spool::[a-z_]+(::[a-z_]+::[A-Za-z_])?/)) {
                m = substr(n, RSTART + 14, RLENGTH - 14)
                sub(/::[A-Za-z_]$/, "", m)   # a submodule is followed by a path, a function by ::<
                # one level below the top module for ffi and storage, the top module otherwise
                if (m !~ /^(ffi|storage)::/) sub(/::.*/, "", m)
            }
            else if (n ~ /^<?(crc|heapless|critical_section|embedded_storage)::/) { m = n; sub(/^</, "", m); sub(/::.*/, "", m) }
            else if (n ~ /^_critical_section_/) m = "critical_section"
            else if (n ~ /^OUTLINED_FUNCTION_/) m = "machine outliner (code shared by several functions)"
            else m = "other"
            t[m] += size; tot += size
        }
        END { for (m in t) printf "%8d  %s\n", t[m], m; printf "%8d  %s\n", tot, "= total" }
    ' | sort -rn | awk '/= total$/ { total = $0; next } { print } END { print total }'
}

# The library's largest RAM objects (for the report).
map_ram_objects() {
    awk '
        function hex(h,   i, c, v) {
            h = tolower(h); sub(/^0x/, "", h); v = 0
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        /^Linker script and memory map/ { on = 1; next }
        !on { next }
        /^ \.(s?bss|s?data)\./ {
            name = $1
            if (NF >= 4) { size = $3; file = $4 } else { getline; size = $2; file = $3 }
            if (file ~ /libsensor_spool\.a\(/ && hex(size) >= 64) printf "%8d  %s\n", hex(size), name
        }
    ' "$1" | sort -rn | awk 'NR <= 5'
}

const_of() { # const_of FILE NAME : value of `pub const NAME: usize = N;`
    sed -n "s/^pub const $2: usize = \([0-9_]*\);.*/\1/p" "$1" | tr -d _ | head -n 1
}

fail=0
rows=()
for t in "${targets[@]}"; do
    triple="$(triple_of "$t")"
    map="$BUILD_DIR/firmware/$t/fw.map"
    log="$BUILD_DIR/firmware/$t/run.log"
    if [ ! -f "$map" ]; then
        note "$t: no $map (run scripts/firmware-tests.sh $t first)"
        fail=1
        continue
    fi
    read -r lt lr ld lb at ar ad ab ct cr < <(map_sizes "$map")
    if [ ! -f "$BUILD_DIR/firmware/$t/fw-size.elf" ]; then
        # ld writes the map even when the link fails (e.g. RAM overflow): report it, fail.
        echo "== $t ($triple): LINK FAILED (figures from the partial map $map)"
        fail=1
    fi
    stack="n/a"
    runstack="n/a"
    if [ -f "$log" ]; then
        stack="$(sed -n 's/^  stack: worst public entry point: \(.*\), \([0-9]*\) bytes$/\2 (\1)/p' "$log" | tail -n 1)"
        runstack="$(sed -n 's/^  stack: worst run-time entry point: \(.*\), \([0-9]*\) bytes$/\2 (\1)/p' "$log" | tail -n 1)"
        [ -n "$stack" ] || stack="n/a"
        [ -n "$runstack" ] || runstack="n/a"
    fi
    rows+=("$t|$triple|$lt|$lr|$ld|$lb|$at|$ar|$ad|$ab|$stack|$runstack")
    echo "== $t ($triple): $map"
    printf '   %-22s %8s %8s %8s %8s\n' "" .text .rodata .data .bss
    printf '   %-22s %8d %8d %8d %8d\n' "libsensor_spool.a" "$lt" "$lr" "$ld" "$lb"
    printf '   %-22s %8d %8d %8s %8s\n' "  of which builtins" "$ct" "$cr" - -
    printf '   %-22s %8d %8d %8d %8d\n' "whole firmware image" "$at" "$ar" "$ad" "$ab"
    if [ "$ld" -gt 1024 ]; then
        echo "   WARNING: $ld bytes of library .data (initialised RAM, copied from flash at reset):"
        echo "            a static whose initialiser is not all zeroes; zero-initialised state belongs in .bss"
    fi
    echo "   largest library RAM objects:"
    map_ram_objects "$map" | sed 's/^/     /' | c++filt 2>/dev/null
    echo "   library .text per module (symbols as linked, after LTO inlining):"
    map_text_modules "$map" | sed 's/^/     /'
    echo "   largest library functions (.text):"
    map_text_objects "$map" 10 | sed 's/^/     /' | c++filt 2>/dev/null | cut -c1-110
    echo "   worst-case stack of the public entry points (QEMU stack painting): $stack bytes"
    echo "   ... of the run-time entry points (all but init/deinit/registration): $runstack bytes"
    depth="${stack%% *}"
    if [[ "$depth" =~ ^[0-9]+$ ]] && [ "$depth" -gt "$STACK_WARN" ]; then
        echo "   WARNING: an entry point needs $depth bytes of stack (more than $STACK_WARN): reported, not budgeted"
    fi

    [ "$budget" -eq 1 ] || continue
    if [ "$t" = m4f ]; then
        if [ "$lt" -le "$TEXT_BUDGET" ]; then
            echo "   budget: library .text $lt <= $TEXT_BUDGET bytes: ok"
        else
            echo "   budget: library .text $lt > $TEXT_BUDGET bytes: EXCEEDED"
            fail=1
        fi
    fi
    # RAM: the profile of the no_std archive (WICED) + the C block pool + 1 KiB.
    sector="$(const_of src/profile.rs WICED_SECTOR)"
    sectors="$(const_of src/profile.rs WICED_SECTORS)"
    sensors="$(const_of src/profile.rs WICED_SENSORS)"
    cpool="$( (sed -n 's/^  config: C block pool \([0-9]*\) bytes$/\1/p' "$log" 2>/dev/null || true) | tail -n 1)"
    entry="${ENTRY_SIZE:-24}" # spool::ENTRY_SIZE (size_of the table entry; see src/profile.rs)
    # The C API's store spills (SPILL = SENSORS): every sensor slot also has a flash part
    # (spool::spill::FlashPart: 4 x u32, two read hints of 3 x u32, 4 x u32) in a table
    # parallel to the sensor table.
    part="${FLASH_PART_SIZE:-56}" # size_of::<FlashPart>(), asserted by a unit test in src/spool/spill.rs
    if [ -z "$sector" ] || [ -z "$sectors" ] || [ -z "$sensors" ] || [ -z "$cpool" ]; then
        echo "   budget: RAM: cannot read the profile (src/profile.rs) or the C pool size ($log)"
        fail=1
        continue
    fi
    # pool = sectors x (sector + 3-byte side entry) + one bitmap bit per sector (in u32 words)
    # shellcheck disable=SC2017 # whole u32 bitmap words: round down after dividing
    pool=$((sectors * (sector + 3) + (sectors + 31) / 32 * 4))
    table=$((sensors * (entry + part)))
    ram=$((ld + lb))
    allowed=$((pool + cpool + table + RAM_OVERHEAD_BUDGET))
    if [ "$ram" -le "$allowed" ]; then
        echo "   budget: library RAM $ram <= store pool $pool + C pool $cpool + sensor table $sensors x ($entry + $part) = $table + $RAM_OVERHEAD_BUDGET = $allowed bytes: ok (fixed overhead $((ram - pool - cpool - table)))"
    else
        echo "   budget: library RAM $ram > store pool $pool + C pool $cpool + sensor table $sensors x ($entry + $part) = $table + $RAM_OVERHEAD_BUDGET = $allowed bytes: EXCEEDED (fixed overhead $((ram - pool - cpool - table)))"
        fail=1
    fi
done

if [ "$markdown" -eq 1 ]; then
    echo
    # Provenance of the figures (docs/on-target.md quotes this line with the table).
    info="$BUILD_DIR/thumbv7em-none-eabihf-extern-cs/build-info.txt"
    echo "Sizes from \`scripts/size-report.sh\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(sed -n 's/^rustc=//p' "$info" 2>/dev/null || echo 'rustc ?'), archives as built by scripts/firmware-tests.sh (profile firmware):"
    echo
    echo "| target | QEMU machine | lib .text | lib .rodata | lib .data | lib .bss | image .text+.rodata | image .data+.bss | stack, worst entry point | stack, worst run-time call |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|---|"
    for r in "${rows[@]}"; do
        IFS='|' read -r t triple lt lr ld lb at ar ad ab stack runstack <<<"$r"
        case "$t" in m3) m=lm3s6965evb ;; m4f) m=mps2-an386 ;; rv32) m="virt" ;; esac
        echo "| $triple | $m | $lt | $lr | $ld | $lb | $((at + ar)) | $((ad + ab)) | $stack B | $runstack B |"
    done
fi
[ "$budget" -eq 0 ] || [ "$fail" -eq 0 ] || {
    note "size-report: budget exceeded or report incomplete"
    exit 1
}
[ "$fail" -eq 0 ]
