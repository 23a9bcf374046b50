# shellcheck shell=bash
# Helpers of the size reports (scripts/size-report.sh, scripts/size-sets.sh). Source it; it
# defines functions and runs nothing.

# map_sizes MAP : prints "lib_text lib_rodata lib_data lib_bss all_text all_rodata all_data all_bss
# cb_text cb_rodata" (cb = the compiler_builtins members of the archive: memcpy, 64-bit division)
# summing allocated input sections by name: .text* / .rodata* .srodata* / .data* .sdata* /
# .bss* .sbss* COMMON. "lib" = input sections whose file is libsensor_spool.a(member).
map_sizes() {
    awk '
        function hex(h,   i, c, v) {
            h = tolower(h); sub(/^0x/, "", h); v = 0
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        function kind(n) {
            if (n ~ /^\.text/ || n ~ /^\.ARM\.exidx/ || n ~ /^\.ARM\.extab/) return 1
            if (n ~ /^\.rodata/ || n ~ /^\.srodata/) return 2
            if (n ~ /^\.data/ || n ~ /^\.sdata/) return 3
            if (n ~ /^\.bss/ || n ~ /^\.sbss/ || n == "COMMON") return 4
            return 0
        }
        function add(n, size, file,   k) {
            k = kind(n)
            if (k == 0 || out ~ /^\/DISCARD\// || out ~ /^\.debug/ || out ~ /^\.stack/) return
            all[k] += hex(size)
            if (file ~ /libsensor_spool\.a\(/) {
                lib[k] += hex(size)
                if (file ~ /\(compiler_builtins-/) cb[k] += hex(size)
            }
        }
        /^Linker script and memory map/ { on = 1; next }
        !on { next }
        /^[^ ]/ { out = $1; pending = ""; next }             # output section
        /^ [^ ]/ {                                            # input section (maybe wrapped)
            if ($1 == "*fill*") { pending = ""; next }
            if (NF >= 4 && $2 ~ /^0x/ && $3 ~ /^0x/) { add($1, $3, $4); pending = "" }
            else if (NF == 1) pending = $1
            else pending = ""
            next
        }
        pending != "" && /^ +0x/ { if (NF >= 3) add(pending, $2, $3); pending = ""; next }
        { pending = "" }
        END { printf "%d %d %d %d %d %d %d %d %d %d\n", lib[1], lib[2], lib[3], lib[4], all[1], all[2], all[3], all[4], cb[1], cb[2] }
    ' "$1"
}

