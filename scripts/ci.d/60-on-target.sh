# shellcheck shell=bash
# On-target stages (sourced by scripts/test.sh; run after the core steps):
#   firmware    the C firmware (examples/firmware/) on QEMU: Cortex-M3, Cortex-M4F, RISC-V
#   rust-target pure-Rust on-target tests (examples/on-target/) through `cargo test` + QEMU
# The size/RAM budget stage is in 90-size-budget.sh (last, so a budget overrun does not keep
# other suites from running).
ON_TARGET_APT=(gcc-arm-none-eabi gcc-riscv64-unknown-elf qemu-system-arm qemu-system-misc)

stage_firmware() {
    need_apt "${ON_TARGET_APT[@]}"
    need_rust_target "${SPOOL_EMBEDDED_TARGETS[@]}"
    bash scripts/firmware-tests.sh m3 m4f rv32
}

stage_rust_on_target() {
    need_apt gcc-arm-none-eabi qemu-system-arm
    need_rust_target thumbv7m-none-eabi thumbv7em-none-eabihf
    (
        cd examples/on-target || exit 1
        cargo fmt --check
        cargo clippy --quiet --release --all-targets -- -D warnings
        cargo clippy --quiet --release --all-targets --target thumbv7em-none-eabihf -- -D warnings
        cargo test --release 2>&1 | grep -v '^Timer with period zero, disabling$'
        cargo test --release --target thumbv7em-none-eabihf
    )
}

register_stage firmware "C firmware on QEMU (M3, M4F, RISC-V), CS=extern" stage_firmware
register_stage rust-target "pure-Rust on-target tests (cargo test + QEMU)" stage_rust_on_target
