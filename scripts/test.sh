#!/usr/bin/env bash
# THE test command (see README.md): installs what is missing, then runs every check.
#
# usage: scripts/test.sh
#   env SKIP="miri staticlib ..."   skip steps by id (local use; CI runs everything)
#   env ONLY="test miri"            run only these step ids (plus setup)
#   env KEEP_GOING=1                run the remaining steps after a failure (exit code still fails)
#
# Every step is labelled and timed; its output is also kept in target/test-logs/<id>.log.
# At the end: a table of steps and times, then, as the LAST line, the total of individual
# tests: "N passed, N failed" (every `test result:` line of cargo test / miri plus every
# plain "N passed, N failed" line printed by the other suites).
set -euo pipefail
exec 2>&1
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"

# ---------------------------------------------------------------------------------------------
# Configuration. Extend these lists (append) instead of editing the steps.
# ---------------------------------------------------------------------------------------------

# Features for the host test build, clippy and docs (std is default). Comma separated.
HOST_TEST_FEATURES="${HOST_TEST_FEATURES:-ffi,_mock-flash}"
# Extra arguments after `--` for `cargo test` (property tests print their case counts).
HOST_TEST_ARGS=(--nocapture)
# Miri: one `cargo +nightly miri test --features $MIRI_FEATURES <entry>` run per entry.
# An entry is a word list of cargo test arguments, e.g. "--lib pool::", "--test pool_model",
# "--lib ffi:: -- --skip slow". Cover every test that touches unsafe code.
MIRI_FEATURES="${MIRI_FEATURES:-$HOST_TEST_FEATURES}"
MIRI_TESTS=("--lib")
# pool: the model test (PROPTEST_CASES applies) and the thread test (scaled down under miri).
MIRI_TESTS+=("--test pool_model" "--test pool_threads")
# Small property-test case counts under miri (tests must use ProptestConfig::default() or read
# PROPTEST_CASES for this to apply; see docs/testing.md).
MIRI_PROPTEST_CASES="${MIRI_PROPTEST_CASES:-8}"
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
# Clippy for embedded targets: "triple:features" (always --no-default-features).
CLIPPY_EMBEDDED=(
    "thumbv7em-none-eabihf:ffi,panic-handler,cortex-m-cs,storage-nor"
    "riscv32imc-unknown-none-elf:ffi,panic-handler,riscv-cs,storage-nor"
    "thumbv7em-none-eabihf:ffi,panic-handler,cortex-m-cs" # RAM-only C library
)
# Static libraries: arguments to scripts/build-staticlib.sh, one build per entry ("CS=extern ..." allowed).
# The default-CS archives on the stable toolchain (OPT=stable: proves a build without nightly);
# the CS=extern ones, which the firmware and the size report use, size-optimised (OPT=size).
# STORAGE=ram: the RAM-only archives (scripts/size-sets.sh links the RAM-only feature sets
# against them; the undefined and panics stages check them too).
STATICLIBS=("OPT=stable all" "CS=extern thumbv7m thumbv7em riscv32imc" "STORAGE=ram CS=extern thumbv7m thumbv7em riscv32imc")
# Pinned tools for later stages (need_cargo_tool BIN CRATE VERSION).
CBINDGEN_VERSION=0.29.4

if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0 # faster cold builds, smaller target dir
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

LOG_DIR="${TEST_LOG_DIR:-$SPOOL_ROOT/target/test-logs}"
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log

# ---------------------------------------------------------------------------------------------
# Step runner.
# ---------------------------------------------------------------------------------------------
STEP_IDS=()
STEP_LABELS=()
STEP_TIMES=()
STEP_RESULTS=()
STAGES=() # "id|label|function" registered by register_stage
FAILED_STEP=""
RUN_START=$EPOCHREALTIME

wanted() {
    local id="$1"
    [[ " ${SKIP:-} " == *" $id "* ]] && return 1
    [ -z "${ONLY:-}" ] && return 0
    [ "$id" = setup ] && return 0
    [[ " $ONLY " == *" $id "* ]]
}

# step ID "LABEL" COMMAND... : runs COMMAND (a function or program) with `set -e` in a subshell,
# output to the console and to $LOG_DIR/ID.log, timed.
step() {
    local id="$1" label="$2" t0 t1 rc
    shift 2
    if ! wanted "$id"; then
        STEP_IDS+=("$id")
        STEP_LABELS+=("$label")
        STEP_TIMES+=("-")
        STEP_RESULTS+=("skipped")
        return 0
    fi
    if [ -n "$FAILED_STEP" ] && [ "${KEEP_GOING:-0}" != 1 ]; then
        STEP_IDS+=("$id")
        STEP_LABELS+=("$label")
        STEP_TIMES+=("-")
        STEP_RESULTS+=("not run")
        return 0
    fi
    printf '\n==> [%s] %s\n' "$id" "$label"
    t0=$EPOCHREALTIME
    set +e
    (
        set -euo pipefail
        "$@"
    ) 2>&1 | tee "$LOG_DIR/$id.log"
    rc=${PIPESTATUS[0]}
    set -e
    t1=$EPOCHREALTIME
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    STEP_IDS+=("$id")
    STEP_LABELS+=("$label")
    STEP_TIMES+=("$secs")
    if [ "$rc" -eq 0 ]; then
        STEP_RESULTS+=("ok")
        printf '<== [%s] ok (%ss)\n' "$id" "$secs"
    else
        STEP_RESULTS+=("FAILED (exit $rc)")
        printf '<== [%s] FAILED with exit %s (%ss)\n' "$id" "$rc" "$secs"
        if [ -z "$FAILED_STEP" ]; then FAILED_STEP="$id"; fi
    fi
}

# register_stage ID "LABEL" FUNCTION : adds a later stage, run after the core steps in
# registration order.
# A second registration of the same id or function is ignored (so a stage wired in two
# places runs once).
register_stage() {
    local s
    for s in ${STAGES[@]+"${STAGES[@]}"}; do
        if [ "${s%%|*}" = "$1" ] || [ "${s##*|}" = "$3" ]; then
            note "register_stage: '$1' ($3) is already registered; ignored"
            return 0
        fi
    done
    STAGES+=("$1|$2|$3")
}

# Counts individual tests over all logs: cargo's "test result: ok. X passed; Y failed; Z ignored"
# and plain "N passed, N failed[, N skipped]" lines (optionally after one word and a colon).
count_tests() {
    cat "$LOG_DIR"/*.log 2>/dev/null | awk '
        /^test result: / {
            for (i = 1; i <= NF; i++) {
                if ($(i) ~ /^passed;?$/) p += $(i - 1)
                if ($(i) ~ /^failed;?$/) f += $(i - 1)
                if ($(i) ~ /^ignored;?$/) s += $(i - 1)
            }
            next
        }
        /^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?[[:space:]]*$/ {
            line = $0; sub(/^[A-Za-z_-]+: /, "", line); split(line, w, /[ ,]+/)
            p += w[1]; f += w[3]; if (w[5] != "") s += w[5]
        }
        END { printf "%d %d %d\n", p, f, s }'
}

summary() {
    local rc=$? i total
    set +e
    total=$(awk -v a="$RUN_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    echo
    echo "================================ summary ================================"
    printf '%-14s %-52s %8s  %s\n' "step" "what" "seconds" "result"
    for i in "${!STEP_IDS[@]}"; do
        printf '%-14s %-52s %8s  %s\n' "${STEP_IDS[$i]}" "${STEP_LABELS[$i]:0:52}" "${STEP_TIMES[$i]}" "${STEP_RESULTS[$i]}"
    done
    printf '%-14s %-52s %8s\n' "total" "wall time" "$total"
    local p f s
    read -r p f s < <(count_tests)
    if [ -n "$FAILED_STEP" ] || [ "$rc" -ne 0 ]; then
        echo "FAILED: first failing step: ${FAILED_STEP:-unknown (exit $rc)}; logs in $LOG_DIR"
        # A failing step that is not a test runner still counts as one failure.
        [ "$f" -eq 0 ] && f=1
        [ "$rc" -eq 0 ] && rc=1
    fi
    if [ "$s" -gt 0 ]; then
        echo "$p passed, $f failed, $s skipped"
    else
        echo "$p passed, $f failed"
    fi
    rm -rf "$SPOOL_TMP"
    exit "$rc"
}
trap summary EXIT

# ---------------------------------------------------------------------------------------------
# Core steps.
# ---------------------------------------------------------------------------------------------

do_setup() {
    need_rust_component rustfmt clippy llvm-tools
    need_rust_target "${SPOOL_EMBEDDED_TARGETS[@]}"
    need_rust_component miri rust-src --toolchain nightly
    echo "rustc: $(rustc -V); nightly: $(rustc +nightly -V)"
}

do_clippy_host() {
    cargo clippy --all-targets -- -D warnings
    cargo clippy --all-targets --features "$HOST_TEST_FEATURES" -- -D warnings
}

do_clippy_embedded() {
    local e triple features
    for e in "${CLIPPY_EMBEDDED[@]}"; do
        triple="${e%%:*}"
        features="${e#*:}"
        echo "clippy --target $triple --no-default-features --features $features"
        cargo clippy --lib --target "$triple" --no-default-features --features "$features" -- -D warnings
    done
}

do_doc() {
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features "$HOST_TEST_FEATURES"
}

do_test() {
    cargo test --features "$HOST_TEST_FEATURES" -- "${HOST_TEST_ARGS[@]}"
}

do_miri() {
    local e args
    cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup
    for e in "${MIRI_TESTS[@]}"; do
        read -r -a args <<<"$e"
        echo "miri: cargo +nightly miri test --features $MIRI_FEATURES ${args[*]}"
        PROPTEST_CASES="$MIRI_PROPTEST_CASES" cargo +nightly miri test --features "$MIRI_FEATURES" "${args[@]}"
    done
}

do_staticlib() {
    local e words envs=() args=() w
    rm -rf build
    for e in "${STATICLIBS[@]}"; do
        read -r -a words <<<"$e"
        envs=()
        args=()
        for w in "${words[@]}"; do
            case "$w" in
            *=*) envs+=("$w") ;;
            *) args+=("$w") ;;
            esac
        done
        env "${envs[@]}" bash scripts/build-staticlib.sh "${args[@]}"
    done
}

do_undefined() {
    bash scripts/check-undefined.sh
}

do_panics() {
    bash scripts/check-panics.sh
}

# ---------------------------------------------------------------------------------------------
# LATER STAGES (C tests, QEMU, header drift, fuzz smoke, example run, ...).
# Add a stage as a function plus one register_stage line, either right here or (fewer merge
# conflicts) in its own file scripts/ci.d/NN-name.sh, which is sourced in name order below.
# A stage runs with `set -euo pipefail` in a subshell after the core steps; the static libraries
# are in build/<flavor>/libsensor_spool.a. Use need_apt / need_cargo_tool / need_rust_target for
# what it needs. A suite that is not cargo test should print a plain "N passed, N failed" line
# so its tests are counted.
#
#   stage_c_tests() {
#       need_apt gcc-arm-none-eabi qemu-system-arm
#       make -C tests/c
#   }
#   register_stage c-tests "C test suite (host + QEMU)" stage_c_tests
# ---- stages: append below this line ----

# Header drift: regenerate include/sensor_spool.h with the pinned cbindgen, fail on any
# difference, compile the header as C and C++ (script owned by the C API).
stage_header() {
    need_cargo_tool cbindgen cbindgen "$CBINDGEN_VERSION"
    bash scripts/check-header.sh
}
if [ -f scripts/check-header.sh ]; then
    register_stage header "C header drift (cbindgen $CBINDGEN_VERSION) + C/C++ compile" stage_header
fi

# ---- stages: end ----
if [ -d scripts/ci.d ]; then
    for f in scripts/ci.d/*.sh; do
        [ -e "$f" ] || continue
        # shellcheck source=/dev/null
        . "$f"
    done
fi

# ---------------------------------------------------------------------------------------------
# Run.
# ---------------------------------------------------------------------------------------------
step setup "install missing toolchain parts" do_setup
step fmt "cargo fmt --check" cargo fmt --check
step clippy-host "clippy host (default features, +$HOST_TEST_FEATURES)" do_clippy_host
step clippy-embed "clippy embedded targets (no_std)" do_clippy_embedded
step doc "cargo doc -D warnings" do_doc
step test "cargo test --features $HOST_TEST_FEATURES" do_test
step miri "miri (nightly)" do_miri
step staticlib "static libraries (LTO) for host + 3 targets" do_staticlib
step undefined "undefined-symbol check of the static libraries" do_undefined
step panics "no panic path in the no_std static libraries" do_panics
for s in ${STAGES[@]+"${STAGES[@]}"}; do
    IFS='|' read -r sid slabel sfn <<<"$s"
    step "$sid" "$slabel" "$sfn"
done
[ -z "$FAILED_STEP" ]
