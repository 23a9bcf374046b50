# Fuzz smoke: builds every cargo-fuzz target of fuzz/ once (nightly, cargo-fuzz pinned),
# then runs each for FUZZ_SECONDS seconds from its committed seed corpus. A crash, a
# failed assertion, a timeout or a leak fails the stage (cargo fuzz run exits non-zero;
# the reproducer lands in fuzz/artifacts/<target>/). Prints "N passed, N failed" (one
# test per target). Long campaigns: docs/testing.md "Fuzzing".
CARGO_FUZZ_VERSION=0.13.2
# Seconds per target (4 targets, two at a time: about 1 min of fuzzing plus the build).
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
# Per-input time limit (seconds) before libFuzzer reports a hang.
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"

stage_fuzz() {
    need_rust_component rust-src --toolchain nightly
    need_cargo_tool cargo-fuzz cargo-fuzz "$CARGO_FUZZ_VERSION"
    cd "$SPOOL_ROOT/fuzz" || return 1
    local targets t passed=0 failed=0 work
    mapfile -t targets < <(cargo +nightly fuzz list)
    [ ${#targets[@]} -gt 0 ] || die "no fuzz targets found"
    echo "fuzz: building ${targets[*]}"
    cargo +nightly fuzz build
    # Fresh working corpora seeded from the committed seeds, so a run never depends on
    # (or grows) the local corpus directories.
    work="$SPOOL_TMP/fuzz-corpus"
    # Two targets at a time (libFuzzer runs on one core; the machine has two).
    local pids=() names=() i
    run_one() {
        local t="$1" log="$SPOOL_TMP/fuzz-$1.log"
        cargo +nightly fuzz run "$t" "$work/$t" -- \
            -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
            -print_final_stats=1 >"$log" 2>&1
    }
    finish() {
        local t="$1" pid="$2" log="$SPOOL_TMP/fuzz-$1.log"
        if wait "$pid"; then
            passed=$((passed + 1))
            # "Done N runs in S second(s)" and the final stats line with execs/s.
            grep -E '^Done [0-9]+ runs|stat::average_exec_per_sec' "$log" | sed "s/^/  $t: /"
        else
            failed=$((failed + 1))
            echo "fuzz: $t FAILED; last lines of its log:"
            tail -n 60 "$log"
            echo "fuzz: reproducer(s) in fuzz/artifacts/$t/ (see docs/testing.md \"Fuzzing\")"
        fi
    }
    for t in "${targets[@]}"; do
        rm -rf "${work:?}/$t"
        mkdir -p "$work/$t"
        if compgen -G "corpus/$t/seed-*" >/dev/null; then
            cp corpus/"$t"/seed-* "$work/$t/"
        fi
        echo "fuzz: $t for ${FUZZ_SECONDS}s"
        run_one "$t" &
        pids+=("$!")
        names+=("$t")
        if [ "${#pids[@]}" -eq 2 ]; then
            for i in 0 1; do finish "${names[$i]}" "${pids[$i]}"; done
            pids=()
            names=()
        fi
    done
    for i in "${!pids[@]}"; do finish "${names[$i]}" "${pids[$i]}"; done
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
register_stage fuzz "fuzz smoke (cargo-fuzz, ${FUZZ_SECONDS}s per target)" stage_fuzz
