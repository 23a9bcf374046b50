# shellcheck shell=bash
# Size and RAM of the static library. Last of the stages. Two reports, both enforced:
# - the QEMU test firmware (needs the `firmware` stage of 60-on-target.sh, which writes
#   build/firmware/<target>/fw.map; built here if missing): the library's share as linked,
#   RAM overhead, and the stack depth of every public entry point (QEMU stack painting),
#   against the regression ceiling of scripts/size-ceiling.env;
# - per feature set (issue 22, scripts/size-sets.sh): a minimal firmware per set of entry
#   points linked for thumbv7m, thumbv7em and riscv32imc; flash (.text + .rodata) on
#   thumbv7em against the set's budget, or, while the budget is not met, against the
#   ceiling at the measured value (scripts/size-ceiling.env), with the gap printed.
stage_size() {
    need_apt gcc-arm-none-eabi gcc-riscv64-unknown-elf qemu-system-arm qemu-system-misc
    if [ ! -f build/firmware/m4f/fw.map ]; then
        bash scripts/firmware-tests.sh m3 m4f rv32 >/dev/null
    fi
    # shellcheck source=scripts/size-ceiling.env
    . scripts/size-ceiling.env
    echo "== QEMU test firmware; regression ceiling (scripts/size-ceiling.env): .text <= $CEILING_TEXT B, RAM overhead <= $CEILING_RAM_OVERHEAD B"
    TEXT_BUDGET="$CEILING_TEXT" RAM_OVERHEAD_BUDGET="$CEILING_RAM_OVERHEAD" \
        bash scripts/size-report.sh --markdown m3 m4f rv32
    echo "   stack per public entry point (thumbv7em, QEMU stack painting, build/firmware/m4f/run.log):"
    grep -v -e 'stack: worst' -e 'stack: high-water' build/firmware/m4f/run.log |
        sed -n 's/^  stack: \([a-z_].*[^ ]\)  *\([0-9][0-9]*\) bytes$/     \2  \1/p' | sort -rn
    echo
    echo "== per feature set (issue 22 budgets on thumbv7em; ceilings while not met)"
    bash scripts/size-sets.sh --markdown || return 1
    echo
    echo "== the RAM-only C library's own test (no storage-* feature: storage is SPOOL_ERR_UNSUPPORTED)"
    cargo test --quiet --lib --no-default-features --features std,ffi ffi::features
}
register_stage size "size/RAM: QEMU firmware ceiling + per-feature-set budgets (issue 22)" stage_size
