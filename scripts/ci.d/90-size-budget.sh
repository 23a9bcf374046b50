# shellcheck shell=bash
# Size and RAM budget of the static library inside the QEMU firmware images (needs the
# `firmware` stage of 60-on-target.sh, which writes build/firmware/<target>/fw.map). Last of
# the stages: a budget overrun fails CI without keeping other suites from running.
stage_size() {
    if [ ! -f build/firmware/m4f/fw.map ]; then
        need_apt gcc-arm-none-eabi gcc-riscv64-unknown-elf qemu-system-arm qemu-system-misc
        bash scripts/firmware-tests.sh m3 m4f rv32 >/dev/null
    fi
    bash scripts/size-report.sh --markdown m3 m4f rv32
}
register_stage size "size/RAM report + budget (scripts/size-report.sh)" stage_size
