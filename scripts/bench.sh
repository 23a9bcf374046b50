#!/usr/bin/env bash
# THE benchmark command (see docs/figures.md): runs every side-by-side comparison in one go
# and prints ONE table of ratios, all measured in this run on this machine.
#
# usage: scripts/bench.sh
#   env BENCH_SKIP="file flash"   leave out benches by name (spool_flash store pool flash file callgrind)
#   env SPOOL_BENCH_QUICK=1       spool_flash with 10,000 samples instead of 100,000 (smoke run)
#
# What it runs (each bench belongs to its module; this script only runs them and reads
# their output):
#   benches/spool_flash.rs  the Spool over NorFlashStorage (the level users call) vs
#                     sequential-storage and sensor-db, four scenarios (flush every 1 / 32,
#                     threshold spill, fill + reboot + read-out): bytes programmed, program
#                     ops, erases, bytes read per record, recovery reads, records lost,
#                     worst flash I/O of one call (counts); its rows come first in the table
#   benches/store.rs  store write+read+ack(1) cycle vs heapless::Deque push+pop (ns, same run)
#   benches/pool.rs   pool alloc+free vs malloc/free, atomic-pool and heapless's pool (ns)
#   benches/flash.rs  flash bytes programmed per sample, program ops, erases vs
#                     sequential-storage and sensor-db on the same mock flash (counts)
#   benches/file.rs   FileStorage ingest vs raw write+fdatasync of the same bytes (MB/s)
#   examples/cg.rs    callgrind: instructions per operation on fixed work (deterministic),
#                     with a heapless::Deque and malloc/free as peers
# Logs: target/bench-logs/<name>.log; the table also goes to target/bench-logs/figures.md.
# A bench that is missing, does not build or fails gets a row saying so; no number is
# invented. Exit code 1 if any bench failed.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

LOG_DIR="$SPOOL_ROOT/target/bench-logs"
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/figures.md
T_START=$EPOCHREALTIME
FAILED=()
SPOOL_ROWS=()  # markdown rows of the spool-level group (first in the table)
ROWS=()   # markdown rows of the final table (storage layer, store, pool, ...: second group)
TIMES=()  # "name seconds status"

skip() { [[ " ${BENCH_SKIP:-} " == *" $1 "* ]]; }
row() {   # row AREA FIGURE OURS PEER PEER_VALUE RATIO READING
    ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |")
}
srow() {  # srow FIGURE OURS PEER PEER_VALUE RATIO READING: a spool-level row
    SPOOL_ROWS+=("| spool (flash) | $1 | $2 | $3 | $4 | $5 | $6 |")
}
secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }

# run_bench NAME FEATURES... : cargo bench --bench NAME, output to the log. Returns 0 on success.
run_bench() {
    local name="$1" t0 rc
    shift
    if [ ! -f "benches/$name.rs" ]; then
        echo "benches/$name.rs does not exist" >"$LOG_DIR/$name.log"
        TIMES+=("$name - missing")
        return 2
    fi
    printf '==> bench %s ... ' "$name" >&2
    t0=$EPOCHREALTIME
    # A filter matching no criterion benchmark: only the side-by-side part runs (store).
    local extra=()
    [ "$name" = store ] && extra=(-- __side_by_side_only__)
    cargo bench --bench "$name" "$@" "${extra[@]}" >"$LOG_DIR/$name.log" 2>&1
    rc=$?
    TIMES+=("$name $(secs_since "$t0") $([ $rc -eq 0 ] && echo ok || echo FAILED)")
    if [ $rc -ne 0 ]; then
        echo "FAILED (exit $rc, log $LOG_DIR/$name.log)" >&2
        FAILED+=("$name")
        return 1
    fi
    echo "ok ($(secs_since "$t0") s)" >&2
}

failed_row() { # failed_row AREA NAME STATUS
    local why
    case "$3" in
    2) why="not measured: benches/$2.rs does not exist on this branch" ;;
    *) why="not measured: \`cargo bench --bench $2\` failed in this run (log: target/bench-logs/$2.log: $(grep -m1 -E '^error' "$LOG_DIR/$2.log" | tr '|' '/' | cut -c1-120))" ;;
    esac
    row "$1" "-" "-" "-" "-" "-" "$why"
}

# ------------------------------------------------------------------------------------------
# spool over NorFlashStorage vs sequential-storage / sensor-db (the level users call)
# ------------------------------------------------------------------------------------------
if ! skip spool_flash; then
    run_bench spool_flash --features _mock-flash
    rc=$?
    if [ $rc -eq 0 ]; then
        # Machine-readable lines: SPOOL_FLASH_ROW<TAB>key=value<TAB>... (benches/spool_flash.rs).
        # One TSV line per scenario: ours, then sequential-storage, then sensor-db 256 B / 1 KiB / 4 KiB pages.
        while IFS=$'\t' read -r sc o_prog o_ops o_er o_sp o_onf o_rpr o_tgt o_mnt o_mr o_used o_del o_lc o_ld o_wio o_wc o_n o_rec o_rfl \
            s_prog s_ops s_er s_rpr s_del s_ld s_wio s_wc \
            d_prog d_ops d_er d_rpr d_mnt d_mr d_del d_lc d_ld d_wio d_wc d1_prog d4_prog; do
            r() { awk -v a="$1" -v b="$2" 'BEGIN { a += 0; b += 0; if (a == 0) print "-"; else printf "%.2fx", b / a }'; }
            srow "bytes programmed / payload byte, $sc" "${o_prog}x" "sequential-storage 8.0 / sensor-db 0.1 (256 B pages)" "${s_prog}x / ${d_prog}x" "$(r "$o_prog" "$s_prog") / $(r "$o_prog" "$d_prog")" "peer / ours, >1: ours programs less; sensor-db 1 KiB / 4 KiB pages: ${d1_prog}x / ${d4_prog}x"
            srow "program ops per batch, $sc" "$o_ops" "sequential-storage / sensor-db (256 B)" "$s_ops / $d_ops" "$(r "$o_ops" "$s_ops") / $(r "$o_ops" "$d_ops")" "peer / ours; erases ours $o_er (spread $o_sp), peers $s_er / $d_er"
            srow "flash bytes read per record delivered from flash, $sc" "$o_rpr B" "target: <= 2x on-flash size per record" "2 x $o_onf B" "$(awk -v a="$o_rpr" -v b="$o_onf" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2fx", a / b }') of on-flash" "${o_tgt//_/ }; peers sequential-storage / sensor-db: $s_rpr / $d_rpr B"
            if [ "$o_mnt" != "n/a" ]; then
                srow "mount + recovery bytes read after reboot, $sc" "$o_mnt B" "target: <= 1.0x used flash" "$o_used B" "${o_mr}x" "$(awk -v x="$o_mr" 'BEGIN { print (x + 0 <= 1.0) ? "met" : "not met" }') (floor ${o_rfl}x: every used byte once plus a 4 B probe past each sector's frames); recover_storage found $o_rec records; sensor-db mount: $d_mnt B (${d_mr}x); sequential-storage: no mount step"
            fi
            srow "records lost while draining, $sc" "$o_ld" "sequential-storage / sensor-db (256 B)" "$s_ld / $d_ld" "-" "written - delivered - counted lost; ours: $o_n written, $o_del delivered, $o_lc counted lost; peers delivered $s_del / $d_del (sensor-db counted lost $d_lc)"
            srow "worst flash I/O (read + programmed) in one public call, $sc" "$o_wio B (${o_wc//_/ })" "sequential-storage / sensor-db (256 B)" "$s_wio B ($s_wc) / $d_wio B ($d_wc)" "-" "lower is better: bounded latency per call"
        done < <(awk -F'\t' '
            /^SPOOL_FLASH_ROW\t/ {
                delete f
                for (i = 2; i <= NF; i++) { p = index($i, "="); f[substr($i, 1, p - 1)] = substr($i, p + 1) }
                sc = f["scenario"]; sys = f["system"]
                if (sys ~ /^sensor-spool/) c = "o"; else if (sys ~ /^sequential-storage/) c = "s"
                else if (sys ~ /256 B pages/) c = "d"; else if (sys ~ /1 KiB pages/) c = "d1"; else c = "d4"
                if (!(sc in seen)) { seen[sc] = 1; order[++n] = sc }
                for (k in f) v[sc, c, k] = f[k]
            }
            END {
                for (i = 1; i <= n; i++) {
                    sc = order[i]; line = sc
                    split("prog_per_payload ops_per_batch erases spread on_flash read_per_record read_target mount_read mount_ratio used delivered lost_counted lost_draining worst_io worst_call samples recovered recovery_floor", ko, " ")
                    for (j = 1; j <= 18; j++) line = line "\t" v[sc, "o", ko[j]]
                    split("prog_per_payload ops_per_batch erases read_per_record delivered lost_draining worst_io worst_call", ks, " ")
                    for (j = 1; j <= 8; j++) line = line "\t" v[sc, "s", ks[j]]
                    split("prog_per_payload ops_per_batch erases read_per_record mount_read mount_ratio delivered lost_counted lost_draining worst_io worst_call", kd, " ")
                    for (j = 1; j <= 11; j++) line = line "\t" v[sc, "d", kd[j]]
                    line = line "\t" v[sc, "d1", "prog_per_payload"] "\t" v[sc, "d4", "prog_per_payload"]
                    print line
                }
            }' "$LOG_DIR/spool_flash.log")
    else
        SPOOL_ROWS+=("| spool (flash) | - | - | - | - | - | not measured: \`cargo bench --bench spool_flash\` failed in this run (log: target/bench-logs/spool_flash.log) |")
        [ $rc -eq 2 ] && SPOOL_ROWS[-1]="| spool (flash) | - | - | - | - | - | not measured: benches/spool_flash.rs does not exist on this branch |"
    fi
fi

# ------------------------------------------------------------------------------------------
# store vs heapless::Deque
# ------------------------------------------------------------------------------------------
if ! skip store; then
    run_bench store
    rc=$?
    if [ $rc -eq 0 ]; then
        dq=$(sed -n 's/^heapless::Deque push_back+pop_front : *\([0-9.]*\) ns.*/\1/p' "$LOG_DIR/store.log")
        while IFS='|' read -r what ns ratio; do
            row "store" "write+read+ack(1), $what" "$ns ns" "heapless::Deque push+pop" "$dq ns" "${ratio}x" "ours / deque, lower is better (target <= 2.5x)"
        done < <(sed -n 's/^store \(.*[^ ]\) *write+read+ack(1): *\([0-9.]*\) ns\/cycle = \([0-9.]*\)x deque.*/\1|\2|\3/p' "$LOG_DIR/store.log")
    else
        failed_row store store "$rc"
    fi
fi

# ------------------------------------------------------------------------------------------
# pool vs malloc / atomic-pool / heapless pool
# ------------------------------------------------------------------------------------------
if ! skip pool; then
    run_bench pool
    rc=$?
    if [ $rc -eq 0 ]; then
        # "  size |   pool | malloc ratio | atomic-pool ratio | heapless ratio | pool &mut malloc/&mut"
        declare -A POOL_NS=() MALLOC_NS=()
        while read -r size pool malloc rm apool ra hl rh pmut rmut; do
            POOL_NS[$size]=$pool
            MALLOC_NS[$size]=$malloc
            row "pool" "alloc+free $size B (shared path)" "$pool ns" "malloc/free" "$malloc ns" "$rm" "malloc / pool, >1: pool faster"
            row "pool" "alloc+free $size B (shared path)" "$pool ns" "atomic-pool 2.0" "$apool ns" "$ra" "peer / pool, >1: pool faster"
            row "pool" "alloc+free $size B (shared path)" "$pool ns" "heapless 0.9 pool" "$hl ns" "$rh" "peer / pool, >1: pool faster"
            row "pool" "alloc_in+free_id $size B (index path)" "$pmut ns" "malloc/free" "$malloc ns" "$rmut" "malloc / pool, >1: pool faster"
        done < <(awk -F'|' '/^ *[0-9]+ \|/ { gsub(/\|/, " "); print }' "$LOG_DIR/pool.log")
        # "floor size | 2 RMW pool/it | 1 RMW malloc/it | malloc/3"
        while read -r size two rtwo one rone third; do
            row "pool" "alloc+free $size B (shared path)" "${POOL_NS[$size]:-?} ns" "floor: 2 atomic RMW on one bitmap word, bare" "$two ns" "$rtwo" "pool / floor (1.00 = at the floor); >= 3x malloc needs <= $third ns"
            row "pool" "malloc/free $size B" "${MALLOC_NS[$size]:-?} ns" "floor: 1 atomic RMW (claim only, release a store)" "$one ns" "$rone" "malloc / floor: the best any shared pool could reach"
        done < <(awk -F'|' '/^floor +[0-9]+ \|/ { sub(/^floor/, ""); gsub(/\|/, " "); print }' "$LOG_DIR/pool.log")
    else
        failed_row pool pool "$rc"
    fi
fi

# ------------------------------------------------------------------------------------------
# flash vs sequential-storage / sensor-db
# ------------------------------------------------------------------------------------------
if ! skip flash; then
    run_bench flash --features _mock-flash
    rc=$?
    if [ $rc -eq 0 ]; then
        # Markdown rows: | system | W | B | append prog/payload | append ops/batch | drain |
        #                total prog/payload | erases | ceil(prog/usable) | spread | rewrites | read/sample | ns/sample |
        while IFS=$'\t' read -r w b ours_tp ours_ops ours_er ss_tp ss_ops ss_er sd_tp sd_ops sd_er ours_rw ss_rw sd_rw; do
            r() { awk -v a="$1" -v b="$2" 'BEGIN { a += 0; b += 0; if (a == 0) print "-"; else printf "%.2fx", b / a }'; }
            row "flash" "bytes programmed / payload byte, W=$w B=$b" "$ours_tp" "sequential-storage 8.0" "$ss_tp" "$(r "${ours_tp%x}" "${ss_tp%x}")" "peer / ours, >1: ours programs less"
            row "flash" "bytes programmed / payload byte, W=$w B=$b" "$ours_tp" "sensor-db 0.1 (256 B pages)" "$sd_tp" "$(r "${ours_tp%x}" "${sd_tp%x}")" "peer / ours, >1: ours programs less"
            row "flash" "program ops per batch (append), W=$w B=$b" "$ours_ops" "sequential-storage / sensor-db" "$ss_ops / $sd_ops" "$(r "$ours_ops" "$ss_ops") / $(r "$ours_ops" "$sd_ops")" "peer / ours"
            row "flash" "erases (100k samples), W=$w B=$b" "$ours_er" "sequential-storage / sensor-db" "$ss_er / $sd_er" "$(r "$ours_er" "$ss_er") / $(r "$ours_er" "$sd_er")" "peer / ours; words re-programmed: ours $ours_rw, peers $ss_rw / $sd_rw"
        done < <(awk -F'|' '
            function t(s) { gsub(/^ +| +$/, "", s); return s }
            /^\| / && $3 ~ /[0-9]/ {
                sys = t($2); w = t($3); b = t($4); k = w "/" b
                if (sys ~ /^sequential-storage/) s = "ss"; else if (sys ~ /^sensor-db.*256 B/) s = "sd"; else if (sys ~ /^sensor-db/) s = "sd1k"; else s = "ours"
                tp[k, s] = t($8); ops[k, s] = t($6); er[k, s] = t($9); rw[k, s] = t($12)
                if (!(k in seen)) { seen[k] = 1; order[++n] = k }
            }
            END {
                for (i = 1; i <= n; i++) {
                    k = order[i]; split(k, wb, "/")
                    if (wb[1] != 4 && wb[1] != 32) continue
                    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", wb[1], wb[2],
                        tp[k, "ours"], ops[k, "ours"], er[k, "ours"], tp[k, "ss"], ops[k, "ss"], er[k, "ss"],
                        tp[k, "sd"], ops[k, "sd"], er[k, "sd"], rw[k, "ours"], rw[k, "ss"], rw[k, "sd"]
                }
            }' "$LOG_DIR/flash.log")
    else
        failed_row flash flash "$rc"
    fi
fi

# ------------------------------------------------------------------------------------------
# file ingest vs raw write + fdatasync
# ------------------------------------------------------------------------------------------
if ! skip file; then
    run_bench file
    rc=$?
    if [ $rc -eq 0 ]; then
        # "  batch(rec) bytes/b raw MB/s file MB/s raw us/b file us/b ratio median"; labels may be "4096 at cap" / "3x1024 src"
        while IFS=$'\t' read -r label raw file ratio median; do
            row "file" "ingest, batch: $label (records)" "$file MB/s" "raw write+fdatasync" "$raw MB/s" "$ratio (rounds: median $median)" "ours / raw, higher is better (target >= 0.80x)"
        done < <(awk '
            /^ *[0-9]/ && $NF ~ /x$/ {
                n = NF; label = $1; for (i = 2; i <= n - 7; i++) label = label " " $i
                printf "%s\t%s\t%s\t%s\t%s\n", label, $(n - 5), $(n - 4), $(n - 1), $n
            }' "$LOG_DIR/file.log")
    else
        failed_row file file "$rc"
    fi
fi

# ------------------------------------------------------------------------------------------
# callgrind: instructions per operation (deterministic)
# ------------------------------------------------------------------------------------------
if ! skip callgrind; then
    printf '==> callgrind on examples/cg.rs ... ' >&2
    t0=$EPOCHREALTIME
    ok=1
    command -v valgrind >/dev/null 2>&1 || need_apt valgrind >/dev/null 2>&1 || true
    if ! command -v valgrind >/dev/null 2>&1; then
        ok=0
        echo "valgrind not available" >"$LOG_DIR/callgrind.log"
    elif ! cargo build --release --example cg >"$LOG_DIR/callgrind.log" 2>&1; then
        ok=0
    fi
    declare -A IR=()
    if [ $ok -eq 1 ]; then
        n=$(target/release/examples/cg | sed -n 's/^cg: \([0-9]*\) operations.*/\1/p')
        for op in write read ack evt_cycle pool_index pool_shared deque malloc; do
            out="$LOG_DIR/cg.$op.out"
            if valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="*cg_op_${op}*" \
                target/release/examples/cg >>"$LOG_DIR/callgrind.log" 2>&1; then
                IR[$op]=$(awk -v n="$n" '/^summary:/ { printf "%.1f", $2 / n }' "$out")
            else
                ok=0
            fi
        done
    fi
    TIMES+=("callgrind $(secs_since "$t0") $([ $ok -eq 1 ] && echo ok || echo FAILED)")
    if [ $ok -eq 1 ]; then
        echo "ok ($(secs_since "$t0") s)" >&2
        r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
        cyc=$(awk -v a="${IR[write]}" -v b="${IR[read]}" -v c="${IR[ack]}" 'BEGIN { printf "%.1f", a + b + c }')
        row "instructions" "TSD write (callgrind, per op)" "${IR[write]}" "-" "-" "-" "deterministic; 100 records backlog"
        row "instructions" "TSD read (marks pending)" "${IR[read]}" "-" "-" "-" "deterministic"
        row "instructions" "TSD ack(1)" "${IR[ack]}" "-" "-" "-" "deterministic"
        row "instructions" "TSD write+read+ack(1)" "$cyc" "heapless::Deque push+pop" "${IR[deque]}" "$(r "$cyc" "${IR[deque]}")" "ours / deque, lower is better"
        row "instructions" "EVT write+read+ack(1)" "${IR[evt_cycle]}" "heapless::Deque push+pop" "${IR[deque]}" "$(r "${IR[evt_cycle]}" "${IR[deque]}")" "ours / deque, lower is better"
        row "instructions" "pool alloc_in+free_id (index path)" "${IR[pool_index]}" "malloc+free 200 B (glibc)" "${IR[malloc]}" "$(r "${IR[malloc]}" "${IR[pool_index]}")" "malloc / pool, >1: pool cheaper"
        row "instructions" "pool alloc(200)+drop (shared path)" "${IR[pool_shared]}" "malloc+free 200 B (glibc)" "${IR[malloc]}" "$(r "${IR[malloc]}" "${IR[pool_shared]}")" "malloc / pool, >1: pool cheaper"
    else
        echo "FAILED (log $LOG_DIR/callgrind.log)" >&2
        FAILED+=("callgrind")
        row "instructions" "-" "-" "-" "-" "-" "not measured: callgrind run failed (log: target/bench-logs/callgrind.log)"
    fi
fi

# ------------------------------------------------------------------------------------------
# The table.
# ------------------------------------------------------------------------------------------
{
    echo "Figures measured side by side by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(rustc -V | cut -d' ' -f1-2), $(nproc) cores of $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1 || echo '?'), load average $(cut -d' ' -f1 /proc/loadavg) at the end):"
    echo
    echo "| area | figure | sensor-spool | peer | peer | ratio | reading |"
    echo "|---|---|---|---|---|---|---|"
    # Spool-level rows first (what users call: benches/spool_flash.rs), then the storage
    # layer and the other benches as a second group.
    if [ ${#SPOOL_ROWS[@]} -gt 0 ]; then
        for r in "${SPOOL_ROWS[@]}"; do echo "$r"; done
        echo "| **storage layer and components** | | | | | | |"
    fi
    for r in "${ROWS[@]}"; do echo "$r"; done
    echo
    printf 'Run times:'
    for t in "${TIMES[@]}"; do
        read -r n s st <<<"$t"
        printf ' %s %ss (%s);' "$n" "$s" "$st"
    done
    printf ' total %ss.\n' "$(secs_since "$T_START")"
} | tee "$LOG_DIR/figures.md"

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED benches: ${FAILED[*]} (logs in $LOG_DIR)" >&2
    exit 1
fi
