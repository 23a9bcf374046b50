#!/usr/bin/env bash
# Prove that the no_std C static libraries hold no panic path.
#
# usage: scripts/check-panics.sh [ARCHIVE_DIR...]   (default: every no_std flavor under build/)
#   Each ARCHIVE_DIR holds libsensor_spool.a and build-info.txt from scripts/build-staticlib.sh.
#
# The C entry points must never panic (docs/testing.md "No panic path"). After LTO the crate is one
# object (`sensor_spool-*.o`) holding the library and every piece of `core` it uses, so a
# reachable panic shows up as:
#   - OPT=stable and host archives (precompiled core, panic handler): a call relocation to core's panic
#     entry points (`core::panicking::*`, `core::slice::index::*_fail`, `unwrap_failed`, ...);
#   - OPT=size archives (`-Cpanic=immediate-abort`): an inline trap (`udf #254` on Arm,
#     `unimp` on RISC-V; `ud2` on x86_64) inside the crate object.
# Either kind of site in the crate object fails the check, listed with its function.
# compiler_builtins members are not checked (their traps are the soft-float/libm code's own
# and are reached only through those functions).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
OBJDUMP="$(llvm_bin)/llvm-objdump"
# Demangled (Arm, RISC-V) or v0-mangled section symbols (x86_64: `.text.unlikely._RNv...4core9panicking...`).
PANIC_RE='panicking|panic_bounds_check|panic_const|panic_fmt|index_fail|index_len_fail|index_order_fail|unwrap_failed|expect_failed|len_mismatch_fail|already_borrowed|already_mutably_borrowed|rust_begin_unwind'

# sites ARCHIVE : "function -> target" for every panic site in the crate object.
sites() {
    "$OBJDUMP" -d -r --demangle "$1" 2>/dev/null | awk -v re="$PANIC_RE" '
        /file format/ { mine = ($1 ~ /\(sensor_spool-/) }
        !mine { next }
        /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ /, "", fn); next }
        /R_(ARM|RISCV|X86_64)_[A-Z0-9_]+/ {
            t = $0; sub(/.*R_(ARM|RISCV|X86_64)_[A-Z0-9_]+[ \t]+/, "", t)
            if (t ~ re && fn !~ re) print fn " -> " t
            next
        }
        /\t(trap|udf|unimp|c\.unimp|ud2)(\t|$)/ { print fn " -> inline trap" }'
}

dirs=("$@")
if [ "${#dirs[@]}" -eq 0 ]; then
    while IFS= read -r d; do
        # A std archive links std (its own panics); every no_std one is checked.
        grep -qx 'std=1' "$d/build-info.txt" || dirs+=("$d")
    done < <(archive_dirs "$BUILD_DIR")
fi
[ "${#dirs[@]}" -gt 0 ] || die "no no_std archives under $BUILD_DIR (run the staticlib step first)"

passed=0
failed=0
for d in "${dirs[@]}"; do
    a="$d/libsensor_spool.a"
    opt="$(sed -n 's/^opt=//p' "$d/build-info.txt" 2>/dev/null || true)"
    found="$(sites "$a" | sort | uniq -c | sort -rn)"
    if [ -n "$found" ]; then
        echo "panics: $a (opt=${opt:-?}): panic sites in the crate object:" >&2
        echo "$found" >&2
        failed=$((failed + 1))
    else
        echo "panics: $a (opt=${opt:-?}): no panic site"
        passed=$((passed + 1))
    fi
done
echo "panics: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
