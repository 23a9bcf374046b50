#!/usr/bin/env bash
# Prove what the C static libraries need from the firmware that links them.
#
# usage: scripts/check-undefined.sh [ARCHIVE_DIR...]   (default: every no_std flavor under build/)
#   Each ARCHIVE_DIR holds libsensor_spool.a and build-info.txt from scripts/build-staticlib.sh.
#
# For every archive it computes what a static linker would pull in: start from the crate's own
# object (the single LTO object `sensor_spool-*.o`), add every archive member that defines one of
# the symbols still undefined, repeat until nothing changes. Whatever stays undefined is what the
# firmware must provide. Allowed:
#   host no_std (extern-cs):   memcpy memmove memset memcmp bcmp + spool_cs_acquire spool_cs_release
#   bare metal:                nothing (compiler_builtins brings mem*), + the two hooks with extern-cs
# Anything else fails the check and is printed with the member that needs it. The crate object
# must also hold no global-allocator symbols (__rust_alloc & co): the library is allocation-free.
# Bare-metal archives are also checked whole (every member, reachable or not): same allowance.
# On the host, a real link of the archive with -nostdlib and stub definitions of exactly the
# allowed symbols confirms the analysis (every exported symbol is forced in with -u).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
LB="$(llvm_bin)"
NM="$LB/llvm-nm"
CRATE_MEMBER_PREFIX="sensor_spool-"
CS_HOOKS=(spool_cs_acquire spool_cs_release)
HOST_MEM=(memcpy memmove memset memcmp bcmp)

# table ARCHIVE : "member<TAB>type<TAB>symbol" for every symbol of every member.
table() {
    "$NM" -A -P "$1" 2>/dev/null | awk '
        {
            i = index($0, "]: "); if (i == 0) next
            head = substr($0, 1, i - 1); m = substr(head, index(head, "[") + 1)
            split(substr($0, i + 3), f, " ")
            print m "\t" f[2] "\t" f[1]
        }'
}

# needed ARCHIVE MODE : prints "symbol<TAB>member" for every symbol that stays undefined.
# MODE=reach: only members reachable from the crate object; MODE=all: every member.
needed() {
    table "$1" | awk -F'\t' -v prefix="$CRATE_MEMBER_PREFIX" -v mode="$2" '
        { members[$1] = 1 }
        $2 == "U" { nu[$1]++; und[$1, nu[$1]] = $3; next }
        $2 ~ /^[vw]$/ { next }                       # weak undefined: optional
        $2 ~ /^[A-Z]$/ && !($3 in def) { def[$3] = $1 }  # global definition (first wins, as in ld)
        END {
            n = 0
            for (m in members)
                if (mode == "all" || index(m, prefix) == 1) { queue[++n] = m; seen[m] = 1 }
            if (n == 0) { print "NO-CRATE-OBJECT\t-"; exit }
            for (q = 1; q <= n; q++) {
                m = queue[q]
                for (k = 1; k <= nu[m]; k++) {
                    s = und[m, k]
                    if (s in def) {
                        d = def[s]
                        if (!(d in seen)) { seen[d] = 1; queue[++n] = d }
                    } else if (!(s in out)) {
                        out[s] = m
                    }
                }
            }
            for (s in out) print s "\t" out[s]
        }' | sort
}

# check_list ARCHIVE MODE ALLOWED... : fails (returns 1) on a needed symbol outside ALLOWED.
check_list() {
    local a="$1" mode="$2"
    shift 2
    local allowed=" $* " bad=0 sym member got=()
    while IFS=$'\t' read -r sym member; do
        [ -z "$sym" ] && continue
        if [ "$sym" = NO-CRATE-OBJECT ]; then
            note "  FAIL: no ${CRATE_MEMBER_PREFIX}* member in $a"
            return 1
        fi
        got+=("$sym")
        if [[ "$allowed" != *" $sym "* ]]; then
            note "  FAIL ($mode): undefined '$sym' (needed by $member)"
            bad=1
        fi
    done < <(needed "$a" "$mode")
    printf '  %-6s needs: %s\n' "$mode" "${got[*]:-(nothing)}"
    return "$bad"
}

# check_no_alloc ARCHIVE : the crate object neither defines nor uses a global allocator.
check_no_alloc() {
    local hits
    hits="$(table "$1" | awk -F'\t' -v p="$CRATE_MEMBER_PREFIX" 'index($1, p) == 1 { print $3 }' |
        grep -E '__rust_alloc|__rust_dealloc|__rust_realloc|__rg_alloc|__rdl_alloc|__rust_no_alloc_shim' | sort -u || true)"
    if [ -n "$hits" ]; then
        note "  FAIL: allocator symbols in the crate object: $(echo "$hits" | tr '\n' ' ')"
        return 1
    fi
    echo "  alloc: no allocator symbols"
}

# link_host ARCHIVE HOOKS(0|1) : a real -nostdlib link with stubs for exactly the allowed symbols.
link_host() {
    local a="$1" hooks="$2" d syms=() s
    command -v cc >/dev/null 2>&1 || {
        note "  (no cc: real link skipped)"
        return 0
    }
    d="$(mktemp -d "$SPOOL_TMP/link.XXXXXX")"
    cat >"$d/stubs.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
void *memcpy(void *d, const void *s, size_t n) { (void)s; (void)n; return d; }
void *memmove(void *d, const void *s, size_t n) { (void)s; (void)n; return d; }
void *memset(void *d, int c, size_t n) { (void)c; (void)n; return d; }
int memcmp(const void *a, const void *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
int bcmp(const void *a, const void *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
#ifdef HOOKS
uint32_t spool_cs_acquire(void) { return 0; }
void spool_cs_release(uint32_t s) { (void)s; }
#endif
void stub_entry(void) { for (;;) {} }
EOF
    # Force in every global symbol the crate object defines (the exported C API and the
    # critical-section entry points), so the link sees everything a firmware could call.
    while read -r s; do syms+=("-Wl,-u,$s"); done < <(table "$a" |
        awk -F'\t' -v p="$CRATE_MEMBER_PREFIX" 'index($1, p) == 1 && $2 ~ /^[TDBRW]$/ { print $3 }' | sort -u)
    local defs=()
    [ "$hooks" = 1 ] && defs=(-DHOOKS)
    if ! cc -O0 -ffreestanding -fno-builtin "${defs[@]}" \
        -nostdlib -static -Wl,-e,stub_entry -Wl,--gc-sections "${syms[@]}" \
        "$d/stubs.c" "$a" -o "$d/a.out" 2>"$d/err"; then
        note "  FAIL: real link with only the allowed symbols provided:"
        sed 's/^/    /' "$d/err" >&2
        return 1
    fi
    printf '  link:  -nostdlib link with stubs for the allowed symbols OK (%d exported symbols forced in)\n' "${#syms[@]}"
}

check_dir() {
    local dir="$1" a info target cs std
    a="$dir/libsensor_spool.a"
    info="$dir/build-info.txt"
    { [ -f "$a" ] && [ -f "$info" ]; } || die "$dir: no libsensor_spool.a / build-info.txt (run scripts/build-staticlib.sh)"
    target="$(sed -n 's/^target=//p' "$info")"
    cs="$(sed -n 's/^cs=//p' "$info")"
    std="$(sed -n 's/^std=//p' "$info")"
    [ "$std" = 1 ] && {
        echo "$a: std flavor, not checked (links against libc: $(cat "$dir/native-static-libs.txt" 2>/dev/null))"
        return 0
    }
    local allowed=() hooks=0
    if [ "$cs" = extern ]; then
        allowed=("${CS_HOOKS[@]}")
        hooks=1
    fi
    echo "$a ($target, cs=$cs)"
    local rc=0
    check_no_alloc "$a" || rc=1
    if [ "$target" = "$SPOOL_HOST_TRIPLE" ]; then
        check_list "$a" reach "${HOST_MEM[@]}" ${allowed[@]+"${allowed[@]}"} || rc=1
        [ "$rc" = 0 ] && { link_host "$a" "$hooks" || rc=1; }
    else
        check_list "$a" reach ${allowed[@]+"${allowed[@]}"} || rc=1
        check_list "$a" all ${allowed[@]+"${allowed[@]}"} || rc=1
    fi
    return "$rc"
}

if [ $# -eq 0 ]; then
    while IFS= read -r d; do set -- "$@" "$d"; done < <(archive_dirs "$BUILD_DIR")
    [ $# -gt 0 ] || die "no archives under $BUILD_DIR/ (run scripts/build-staticlib.sh first)"
fi
fails=0
for d in "$@"; do
    check_dir "$d" || fails=$((fails + 1))
done
if [ "$fails" -ne 0 ]; then
    note "check-undefined: $fails archive(s) need symbols beyond the allowed set"
    exit 1
fi
echo "check-undefined: all $# archives need nothing beyond the allowed symbols"
