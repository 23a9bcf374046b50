#!/usr/bin/env bash
# Builds the freestanding C firmware in examples/firmware/ for each target, links it with the
# LTO'd `CS=extern` static library (critical section from the firmware's C hooks), and runs it
# under QEMU. Each run prints `N passed, N failed` as its last line; a failing check fails it.
#
# usage: scripts/firmware-tests.sh [m3 | m4f | rv32 ...]     (default: all three)
#   m3    thumbv7m-none-eabi           qemu-system-arm -M lm3s6965evb   (Cortex-M3)
#   m4f   thumbv7em-none-eabihf        qemu-system-arm -M mps2-an386    (Cortex-M4F, FPU on)
#   rv32  riscv32imc-unknown-none-elf  qemu-system-riscv32 -M virt -bios none
# Output: build/firmware/<target>/{fw.elf,fw-run.map,fw-size.elf,fw.map,run.log} (fw.map,
# of the image without the call-site suite, feeds scripts/size-report.sh). Needs gcc-arm-none-eabi, gcc-riscv64-unknown-elf,
# qemu-system-arm, qemu-system-misc (scripts/ci.d/60-firmware.sh installs them).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
FW=examples/firmware
OUT="$BUILD_DIR/firmware"
QEMU_TIMEOUT="${QEMU_TIMEOUT:-120}"

[ $# -eq 0 ] && set -- m3 m4f rv32

# Compiled unchanged from the host C suite: the simulated firmware and the legacy call-site
# replays and the MM1/MM2 call-site suite (tests/c/threads.c needs pthreads; the firmware
# replaces it by an interrupt test).
SHARED_SRCS=(tests/c/fw.c tests/c/replay.c tests/c/callsites.c)
read -r -a EXTRA_CFLAGS <<<"${FW_CFLAGS:-}" # e.g. FW_CFLAGS=-DFW_FORCE_FAIL (proves a failing check fails)
CFLAGS=(${EXTRA_CFLAGS[@]+"${EXTRA_CFLAGS[@]}"} -std=c11 -Wall -Wextra -Werror -pedantic -Os -g -ffreestanding -fno-builtin
    -ffunction-sections -fdata-sections
    -DSPOOL_EXTERN_CS=1 -I"$FW/libc" -I"$FW" -Iinclude -Itests/c)

build_and_run() {
    local t="$1" triple flavor cc arch qemu board ldflags=() srcs=()
    case "$t" in
    m3)
        triple=thumbv7m-none-eabi flavor=thumbv7m cc=arm-none-eabi-gcc
        arch=(-mcpu=cortex-m3 -mthumb -mfloat-abi=soft)
        board=lm3s6965evb
        qemu=(qemu-system-arm -M lm3s6965evb -cpu cortex-m3)
        ;;
    m4f)
        triple=thumbv7em-none-eabihf flavor=thumbv7em cc=arm-none-eabi-gcc
        arch=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
        board=mps2-an386
        qemu=(qemu-system-arm -M mps2-an386 -cpu cortex-m4)
        ;;
    rv32)
        triple=riscv32imc-unknown-none-elf flavor=riscv32imc cc=riscv64-unknown-elf-gcc
        arch=(-march=rv32imc_zicsr -mabi=ilp32 -mcmodel=medany)
        board=riscv-virt
        qemu=(qemu-system-riscv32 -M virt -bios none)
        ;;
    *) die "unknown firmware target '$t' (m3 | m4f | rv32)" ;;
    esac
    local lib="$BUILD_DIR/$triple-extern-cs/libsensor_spool.a" dir="$OUT/$t"
    # Always (re)build: cargo makes this a no-op when nothing changed.
    CS=extern BUILD_DIR="$BUILD_DIR" bash scripts/build-staticlib.sh "$flavor" >/dev/null
    mkdir -p "$dir"
    rm -f "$dir/fw.elf" "$dir/fw.map" "$dir/fw-run.map" "$dir/fw-size.elf" "$dir/run.log"
    case "$t" in
    rv32)
        srcs=("$FW/start.S" "$FW/riscv.c")
        # shellcheck disable=SC2054 # the commas belong to -Wl
        ldflags=(-T "$FW/riscv.ld" -Wl,--no-warn-rwx-segments)
        ;;
    *)
        srcs=("$FW/cortex_m.c")
        # shellcheck disable=SC2054 # the commas belong to -Wl
        ldflags=(-T "$FW/cortex_m.ld" -Wl,-z,noexecstack)
        ;;
    esac
    "$cc" "${arch[@]}" "${CFLAGS[@]}" "${srcs[@]}" "$FW/main.c" "$FW/flash.c" "$FW/console.c" "${SHARED_SRCS[@]}" \
        "$lib" -nostdlib -L "$FW/$board" "${ldflags[@]}" -Wl,--gc-sections -Wl,-Map="$dir/fw-run.map" \
        -o "$dir/fw.elf" || return 1
    # The size report (scripts/size-report.sh) reads fw.map: the same firmware without the
    # MM1/MM2 call-site suite, so the measured library share stays the legacy call set of
    # this firmware (the call-site suite links the whole MM2 facade in; fw-run.map has that).
    "$cc" "${arch[@]}" "${CFLAGS[@]}" -DFW_NO_CALLSITES "${srcs[@]}" "$FW/main.c" "$FW/flash.c" "$FW/console.c" \
        tests/c/fw.c tests/c/replay.c "$lib" -nostdlib -L "$FW/$board" "${ldflags[@]}" -Wl,--gc-sections \
        -Wl,-Map="$dir/fw.map" -o "$dir/fw-size.elf" || return 1
    # The library's share is computed by scripts/size-report.sh from fw.map.
    local rc t0 t1
    t0=$EPOCHREALTIME
    set +e
    case "$t" in
    rv32)
        timeout "$QEMU_TIMEOUT" "${qemu[@]}" -nographic -monitor none -serial stdio \
            -kernel "$dir/fw.elf" </dev/null >"$dir/run.log" 2>&1
        ;;
    *)
        timeout "$QEMU_TIMEOUT" "${qemu[@]}" -nographic -monitor none -serial none \
            -semihosting-config enable=on,target=native -kernel "$dir/fw.elf" </dev/null \
            >"$dir/run.log" 2>&1
        ;;
    esac
    rc=$?
    set -e
    t1=$EPOCHREALTIME
    # lm3s6965evb prints a harmless QEMU warning on stderr; keep it out of the result.
    grep -v '^Timer with period zero, disabling$' "$dir/run.log" || true
    local last
    last="$(grep -v '^Timer with period zero, disabling$' "$dir/run.log" | tail -n 1)"
    printf '%s: %s, qemu exit %s, %.2fs\n' "$t" "$triple" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" >&2
    if [ "$rc" -eq 124 ]; then
        note "$t: QEMU timed out after ${QEMU_TIMEOUT}s"
        return 1
    fi
    [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed$ ]] || {
        note "$t: last line is not 'N passed, 0 failed': $last"
        return 1
    }
    [ "$rc" -eq 0 ]
}

status=0
for t in "$@"; do
    build_and_run "$t" || status=1
done
exit $status
