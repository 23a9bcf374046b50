# shellcheck shell=bash
# Helpers shared by scripts/test.sh, scripts/build-staticlib.sh and scripts/check-undefined.sh.
# Source it; it defines functions and a few variables and runs nothing else.
#
# Every `need_*` helper is idempotent and quiet: it does nothing (and prints nothing)
# when the thing is already there, and prints one line when it installs something.

SPOOL_ROOT="${SPOOL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
# Scratch space shared by all steps of one run (apt-get update marker etc.). The script that
# creates it removes it on exit (scripts/test.sh replaces this trap with its own, which does too).
if [ -z "${SPOOL_TMP:-}" ]; then
    SPOOL_TMP="$(mktemp -d "${TMPDIR:-/tmp}/sensor-spool.XXXXXX")"
    trap 'rm -rf "$SPOOL_TMP"' EXIT
fi
export SPOOL_ROOT SPOOL_TMP

# The embedded targets the static library is shipped for, and the host triple.
# shellcheck disable=SC2034 # used by the scripts that source this file
SPOOL_EMBEDDED_TARGETS=(thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf)
SPOOL_HOST_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"

note() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command quietly; show its output only if it fails.
quiet() {
    local out
    out="$(mktemp "$SPOOL_TMP/quiet.XXXXXX")"
    if ! "$@" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root for: $*"
    fi
}

# need_rust_target TRIPLE... : rustup target add (stable) for the ones not installed.
need_rust_target() {
    local t installed
    installed="$(rustup target list --installed)"
    for t in "$@"; do
        grep -qx "$t" <<<"$installed" && continue
        note "installing rust target $t"
        quiet rustup target add "$t"
    done
}

# need_rust_component COMPONENT... [--toolchain TC]
need_rust_component() {
    local tc="" comps=() c installed
    while [ $# -gt 0 ]; do
        case "$1" in
        --toolchain)
            tc="$2"
            shift 2
            ;;
        *)
            comps+=("$1")
            shift
            ;;
        esac
    done
    if [ -n "$tc" ]; then
        if ! rustup toolchain list | grep -q "^$tc"; then
            note "installing rust toolchain $tc"
            quiet rustup toolchain install "$tc" --profile minimal
        fi
        installed="$(rustup component list --installed --toolchain "$tc")"
    else
        installed="$(rustup component list --installed)"
    fi
    for c in "${comps[@]}"; do
        # Installed components are listed with their host triple (e.g. miri-x86_64-unknown-linux-gnu);
        # rust-src has none.
        grep -qE "^$c(-$SPOOL_HOST_TRIPLE)?\$" <<<"$installed" && continue
        note "installing rust component $c${tc:+ ($tc)}"
        quiet rustup component add "$c" ${tc:+--toolchain "$tc"}
    done
}

# need_apt PKG... : installs the Debian packages that are missing; runs `apt-get update` once per run.
need_apt() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ ! -e "$SPOOL_TMP/apt-updated" ]; then
        quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        touch "$SPOOL_TMP/apt-updated"
    fi
    note "installing apt packages: ${missing[*]}"
    quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# need_cargo_tool BINARY CRATE VERSION : `cargo install --locked CRATE@VERSION` unless BINARY is on PATH
# and reports VERSION in `BINARY --version`.
need_cargo_tool() {
    local bin="$1" crate="$2" ver="$3"
    if command -v "$bin" >/dev/null 2>&1 && "$bin" --version 2>/dev/null | grep -qF "$ver"; then
        return 0
    fi
    note "installing $crate $ver (cargo install --locked)"
    quiet cargo install --locked --quiet "$crate@$ver"
}

# Archive directories of scripts/build-staticlib.sh under $1 (each holds libsensor_spool.a and
# build-info.txt), one per line.
archive_dirs() {
    local d
    for d in "$1"/*/; do
        if [ -f "$d/build-info.txt" ]; then printf '%s\n' "${d%/}"; fi
    done
}

# Directory holding llvm-nm / llvm-ar / llvm-size of the rustup llvm-tools component.
llvm_bin() {
    need_rust_component llvm-tools
    printf '%s/lib/rustlib/%s/bin\n' "$(rustc --print sysroot)" "$SPOOL_HOST_TRIPLE"
}
