# spool-inspect (feature cli, issue #24): clippy and the integration tests of the tool
# (tests/inspect.rs: images and directories written by the library with known content),
# then the tool on the gateway example's flash image and spool directory (--save-image),
# on every fuzz seed (raw bytes as hostile images: exit 0, 1 or 2, never a crash), and
# the speed figure: a full 16 MiB gateway image read in under INSPECT_MAX_S seconds.
# The tool is built with profile `tool-ci` (release without LTO: it instantiates the
# flash log for every supported geometry, and an LTO build takes minutes).
INSPECT_MAX_S="${INSPECT_MAX_S:-1.0}"

stage_inspect() {
    local bin=target/release/examples/gateway tool=target/tool-ci/spool-inspect
    local dir f rc n=0 t0 t1 rows passed=0
    cargo clippy --features cli,_mock-flash --bin spool-inspect --test inspect -- -D warnings
    cargo test --features cli,_mock-flash --test inspect
    cargo build --release --example gateway
    cargo build --profile tool-ci --features cli --bin spool-inspect
    dir="$(mktemp -d "$SPOOL_TMP/inspect.XXXXXX")"
    # The gateway's flash image: clean, everything delivered.
    "$bin" --quiet --vehicle-hours 0.05 --seed 1 --save-image "$dir/gw.img" >/dev/null
    "$tool" "$dir/gw.img" --check --frames >"$dir/out" || die "spool-inspect --check on the gateway image: exit $?"
    grep -q '^check: 0 problems, 0 damage$' "$dir/out" || die "spool-inspect: problems on a clean image"
    rows=$("$tool" "$dir/gw.img" --export csv --all | wc -l)
    [ "$rows" -gt 1000 ] || die "spool-inspect --export: $rows rows"
    passed=$((passed + 1))
    # Its spool directory.
    "$bin" --quiet --storage files --dir "$dir/spool" --vehicle-hours 0.05 --seed 1 --save-image "$dir/gwdir" >/dev/null
    "$tool" "$dir/gwdir" --check >"$dir/out" || die "spool-inspect --check on the gateway directory: exit $?"
    grep -q '^check: 0 problems, 0 damage$' "$dir/out" || die "spool-inspect: problems in a clean directory"
    passed=$((passed + 1))
    # Every fuzz seed as a raw image.
    for f in fuzz/corpus/*/seed-*; do
        for args in "--check --frames" "--sector-size 256 --write-size 1 --check --export json --all"; do
            # shellcheck disable=SC2086
            "$tool" "$f" --quiet $args >/dev/null 2>&1 && rc=0 || rc=$?
            [ "$rc" -le 2 ] || die "spool-inspect crashed on $f ($args): exit $rc"
        done
        n=$((n + 1))
    done
    echo "spool-inspect: $n fuzz seeds read, no crash"
    passed=$((passed + 1))
    # 16 MiB.
    "$bin" --quiet --storage-kib 16384 --vehicle-hours 0.5 --seed 3 --save-image "$dir/gw16.img" >/dev/null
    t0=$(date +%s%N)
    "$tool" "$dir/gw16.img" --quiet >"$dir/out"
    t1=$(date +%s%N)
    grep -E '^(geometry|frames|records):' "$dir/out"
    awk -v ns=$((t1 - t0)) -v max="$INSPECT_MAX_S" 'BEGIN {
        printf "spool-inspect: 16 MiB image read in %.3f s (limit %s s)\n", ns / 1e9, max
        exit (ns / 1e9 > max) }' || die "spool-inspect too slow on a 16 MiB image"
    passed=$((passed + 1))
    rm -rf "$dir"
    echo "inspect: $passed passed, 0 failed"
}
register_stage inspect "spool-inspect: clippy, tests, the gateway's image and directory, fuzz seeds, 16 MiB in < ${INSPECT_MAX_S}s" stage_inspect
