#!/usr/bin/env bash
# Build the C static library `libsensor_spool.a` (LTO, one object for all Rust code).
#
# usage: scripts/build-staticlib.sh [TARGET...]
#   TARGET: host | host-std | armhf | thumbv7m | thumbv7em | riscv32imc | all  (default: all;
#           armhf is not in `all`: it needs the armv7-unknown-linux-gnueabihf rust target)
#           full triples (thumbv7m-none-eabi, ...) are accepted too.
#   env CS=default|extern|cortex-m|riscv   critical-section provider (default: per target, see below)
#   env BUILD_DIR=build                   output root
#   env FEATURES=...                      extra crate features, comma separated (optional)
#   env STORAGE=default|ram|nor|files|nor+files   storage back ends of the C library (cargo
#       features storage-nor / storage-files, chosen at compile time; `spool_features()`
#       reports them): default = nor for no_std archives, nor+files for host-std; ram = none
#       (a RAM-only archive: no flash or spill code, `spool_init` with storage configured
#       returns SPOOL_ERR_UNSUPPORTED). A non-default choice adds `-<storage>` to the
#       directory: build/<triple>-extern-cs-ram/, build/thumbv7em-none-eabihf-ram/, ...
#   env OPT=size|stable                   embedded targets only (default size):
#       size    profile `firmware` (release, opt-level "z") on nightly with core rebuilt
#               for size: -Zbuild-std=core, -Zbuild-std-features=optimize_for_size,
#               -Cpanic=immediate-abort (a panic is a trap instruction, i.e. a HardFault on
#               Cortex-M / an illegal-instruction exception on RISC-V; the panic handler
#               is not called). About 4.9 KiB less library .text on thumbv7em than `stable`
#               (the precompiled core/compiler_builtins are built at opt-level 3); the size
#               budget (scripts/size-report.sh) is measured on this build. Nightly is
#               pinned the way the repo pins it for miri: `+nightly` + its rust-src component.
#       stable  `--release` on the stable toolchain, precompiled core (no nightly needed).
#
# Output: $BUILD_DIR/<flavor>/libsensor_spool.a plus build-info.txt (target, features, command).
#   host                         no_std, C hooks spool_cs_acquire/spool_cs_release  (build/host/)
#   host-std                     std (Linux gateway, FileStorage), std critical section (build/host-std/)
#   armhf                        as host-std for armv7-unknown-linux-gnueabihf (i.MX6 gateways;
#                                link with arm-linux-gnueabihf-gcc) (build/armhf/)
#   thumbv7m-none-eabi           cortex-m single-core critical section (PRIMASK)
#   thumbv7em-none-eabihf        cortex-m single-core critical section (PRIMASK)
#   riscv32imc-unknown-none-elf  riscv single-hart critical section (mstatus.MIE, M-mode)
# With CS=extern on an embedded target the directory gets a suffix: build/<triple>-extern-cs/.
#
# The crate itself is an rlib; `cargo rustc --crate-type staticlib` is the only way to get an
# LTO'd archive (a mixed ["staticlib","rlib"] crate type silently skips LTO).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
CS="${CS:-default}"
STORAGE="${STORAGE:-default}"
case "$STORAGE" in
default | ram | nor | files | nor+files) ;;
*) die "STORAGE must be default, ram, nor, files or nor+files (got '$STORAGE')" ;;
esac
EXTRA_FEATURES="${FEATURES:-}"
OPT="${OPT:-size}"
case "$OPT" in
size | stable) ;;
*) die "OPT must be size or stable (got '$OPT')" ;;
esac

usage() {
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

triple_of() {
    case "$1" in
    host | host-std) echo "$SPOOL_HOST_TRIPLE" ;;
    armhf | armv7-unknown-linux-gnueabihf) echo armv7-unknown-linux-gnueabihf ;;
    thumbv7m | thumbv7m-none-eabi) echo thumbv7m-none-eabi ;;
    thumbv7em | thumbv7em-none-eabihf) echo thumbv7em-none-eabihf ;;
    riscv32imc | riscv32imc-unknown-none-elf) echo riscv32imc-unknown-none-elf ;;
    *) return 1 ;;
    esac
}

# build_one FLAVOR : builds one archive and prints its path.
build_one() {
    local flavor="$1" triple cs features dir std=0
    triple="$(triple_of "$flavor")" || {
        note "unknown target '$flavor'"
        usage
    }
    case "$flavor" in
    host) cs=extern ;;
    host-std | armhf | armv7-unknown-linux-gnueabihf)
        cs=std
        std=1
        ;;
    thumbv7m* | thumbv7em*) cs=cortex-m ;;
    riscv32imc*) cs=riscv ;;
    esac
    if [ "$CS" != default ] && [ "$std" -eq 0 ]; then
        cs="$CS"
    fi
    case "$cs" in
    extern | cortex-m | riscv | std) ;;
    *) die "CS must be default, extern, cortex-m or riscv (got '$cs')" ;;
    esac

    local storage="$STORAGE" storage_features
    if [ "$storage" = default ]; then
        storage=nor
        [ "$std" -eq 1 ] && storage=nor+files
    fi
    case "$storage" in
    ram) storage_features="" ;;
    nor) storage_features="storage-nor" ;;
    files) storage_features="storage-files" ;;
    nor+files) storage_features="storage-nor,storage-files" ;;
    esac
    [ "$std" -eq 0 ] && [[ "$storage" == *files* ]] && die "STORAGE=$storage: files storage needs the host-std flavor"
    if [ "$std" -eq 1 ]; then
        features="std,ffi"
        dir="$BUILD_DIR/host-std"
        [ "$triple" = "$SPOOL_HOST_TRIPLE" ] || dir="$BUILD_DIR/armhf"
    else
        features="ffi,panic-handler,$cs-cs"
        if [ "$flavor" = host ]; then
            dir="$BUILD_DIR/host"
            [ "$cs" = extern ] || dir="$BUILD_DIR/host-$cs-cs"
        else
            dir="$BUILD_DIR/$triple"
            case "$triple:$cs" in
            thumb*:cortex-m | riscv*:riscv) ;;
            *) dir="$dir-$cs-cs" ;;
            esac
        fi
    fi
    [ "$STORAGE" = default ] || dir="$dir-$storage"
    [ -n "$storage_features" ] && features="$features,$storage_features"
    [ -n "$EXTRA_FEATURES" ] && features="$features,$EXTRA_FEATURES"

    need_rust_target "$triple"
    local profile=release opt=stable rustflags=""
    local cmd=(cargo rustc --quiet --lib --release --target "$triple" --crate-type staticlib)
    if [ "$flavor" != host ] && [ "$std" -eq 0 ] && [ "$OPT" = size ]; then
        opt=size
        profile=firmware
        need_rust_component rust-src --toolchain nightly
        rustflags="-Zunstable-options -Cpanic=immediate-abort"
        cmd=(cargo +nightly rustc --quiet --lib --profile firmware --target "$triple" --crate-type staticlib
            -Zbuild-std=core -Zbuild-std-features=optimize_for_size)
    fi
    cmd+=(--no-default-features --features "$features")
    mkdir -p "$dir"
    # `--print native-static-libs` tells what a C link of this archive needs (std flavor: libc etc.).
    local native="$dir/native-static-libs.txt"
    # RUSTFLAGS reach every target crate (core too, with build-std) but not build scripts.
    RUSTFLAGS="$rustflags" "${cmd[@]}" -- --print native-static-libs 2>"$SPOOL_TMP/rustc-stderr" || {
        cat "$SPOOL_TMP/rustc-stderr" >&2
        return 1
    }
    sed -n 's/^note: native-static-libs: //p' "$SPOOL_TMP/rustc-stderr" >"$native"
    grep -v -e '^note: ' -e 'native-static-libs' -e '^$' "$SPOOL_TMP/rustc-stderr" >&2 || true

    local tdir="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}"
    cp "$tdir/$triple/$profile/libsensor_spool.a" "$dir/libsensor_spool.a"
    local rustc_v
    if [ "$opt" = size ]; then rustc_v="$(rustc +nightly -V)"; else rustc_v="$(rustc -V)"; fi
    {
        echo "target=$triple"
        echo "cs=$cs"
        echo "storage=$storage"
        echo "features=$features"
        echo "std=$std"
        echo "opt=$opt"
        echo "command=${rustflags:+RUSTFLAGS=\"$rustflags\" }${cmd[*]}"
        echo "rustc=$rustc_v"
        echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    } >"$dir/build-info.txt"
    printf '%-40s %9s bytes  (%s)\n' "$dir/libsensor_spool.a" "$(wc -c <"$dir/libsensor_spool.a")" "$features"
}

[ $# -eq 0 ] && set -- all
flavors=()
for arg in "$@"; do
    case "$arg" in
    -h | --help) usage ;;
    all) flavors+=(host host-std thumbv7m thumbv7em riscv32imc) ;;
    *) flavors+=("$arg") ;;
    esac
done
for f in "${flavors[@]}"; do
    build_one "$f"
done
