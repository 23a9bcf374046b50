#!/usr/bin/env bash
# The documentation checks (CI stage `docs`, scripts/ci.d/80-docs.sh), in under a minute
# once the `test` step has built the crate:
#   1. scripts/check-docs.py: README.md and docs/*.md: links and anchors resolve, named repo
#      paths exist, every ```c block compiles against include/sensor_spool.h (C99 and C11),
#      the README's C quick start links and runs against build/host-std, and against
#      build/host with the Linux critical-section hooks of docs/c-integration.md (when built),
#      ```sh blocks parse, ```toml blocks parse, README.md stays short;
#   2. the ```rust blocks run as doctests (src/lib.rs includes the Markdown files under
#      #[cfg(doctest)]): cargo test --doc ... -- docs_md::
#   3. packaging: `cargo package --list` holds what a user needs and nothing else (no tests,
#      benches, examples, fuzz corpus, CI scripts or build outputs), then
#      `cargo publish --dry-run` (packs and builds the crate as published); when the
#      registry index cannot be reached that last part is reported and skipped.
#   4. informational: `size` of the host archives, for the flavor table in README.md.
# usage: scripts/check-docs.sh        env DOCS_FEATURES (default ffi,_mock-flash)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SPOOL_ROOT"
features="${DOCS_FEATURES:-${HOST_TEST_FEATURES:-ffi,_mock-flash}}"
failed=0

echo "== 1. Markdown: links, paths, C blocks, sh/toml blocks"
python3 scripts/check-docs.py || failed=$((failed + 1))

echo "== 2. Rust blocks as doctests (cargo test --doc --features $features -- docs_md::)"
if cargo test --quiet --doc --features "$features" -- docs_md:: 2>&1 | tee "$SPOOL_TMP/doctest.log" | grep -E '^(test |running|test result|error|failures)'; then
    grep -q '^test result: ok' "$SPOOL_TMP/doctest.log" || failed=$((failed + 1))
else
    cat "$SPOOL_TMP/doctest.log"
    failed=$((failed + 1))
fi
# Every ```rust block of the Markdown files must have run (and passed).
want=$(cat README.md docs/*.md | grep -cE '^\s*```rust' || true)
got=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i) ~ /^passed;?$/) p += $(i - 1) } END { print p + 0 }' "$SPOOL_TMP/doctest.log")
echo "doctests: $got of $want Rust blocks passed"
[ "$got" -eq "$want" ] || failed=$((failed + 1))

echo "== 3. Packaging"
list="$SPOOL_TMP/package-list.txt"
if cargo package --list --allow-dirty --quiet >"$list" 2>"$SPOOL_TMP/package.err"; then
    missing=()
    for f in Cargo.toml Cargo.lock README.md LICENSE-MIT LICENSE-APACHE src/lib.rs include/sensor_spool.h include/sensor_spool_malloc.h \
        c/spool_malloc_wrap.c cmake/CMakeLists.txt scripts/build-staticlib.sh scripts/lib.sh \
        docs/c-integration.md docs/storage.md docs/architecture.md; do
        grep -qxF "$f" "$list" || missing+=("$f")
    done
    stray=$(grep -E '^(fuzz|tests|benches|examples|target|build|\.ci|scripts/ci\.d)/|\.(a|o|elf|log)$' "$list" || true)
    echo "package: $(wc -l <"$list") files"
    if [ ${#missing[@]} -gt 0 ]; then
        echo "package: missing ${missing[*]}"
        failed=$((failed + 1))
    fi
    if [ -n "$stray" ]; then
        echo "package: files a user does not need:"
        echo "$stray"
        failed=$((failed + 1))
    fi
else
    cat "$SPOOL_TMP/package.err"
    failed=$((failed + 1))
fi
if timeout 300 cargo publish --dry-run --allow-dirty >"$SPOOL_TMP/publish.log" 2>&1; then
    echo "publish: cargo publish --dry-run ok ($(grep -c '^warning: ignoring' "$SPOOL_TMP/publish.log" || true) test/bench/example targets left out, as intended)"
elif grep -qiE 'failed to (update|download|query|get)|could not resolve|network|spurious|index' "$SPOOL_TMP/publish.log"; then
    echo "publish: registry index unreachable, dry run skipped (the package list above was checked):"
    grep -iE 'error|warning: spurious' "$SPOOL_TMP/publish.log" | head -n 3
else
    grep -v '^warning: ignoring' "$SPOOL_TMP/publish.log"
    failed=$((failed + 1))
fi

echo "== 4. Host archive sizes (informational: the flavor table in README.md)"
for d in build/host build/host-std; do
    [ -f "$d/libsensor_spool.a" ] || continue
    c=$(sed -n 's/^commit=//p' "$d/build-info.txt" 2>/dev/null || true)
    size -t "$d/libsensor_spool.a" 2>/dev/null | awk -v d="$d" -v c="${c:-?}" \
        '/sensor_spool-[0-9a-f]+\.sensor_spool\./ { printf "%s: library object .text %d, .data %d, .bss %d (built at %s)\n", d, $1, $2, $3, c }'
done

if [ "$failed" -eq 0 ]; then echo "docs: all checks passed"; else echo "docs: $failed check group(s) failed"; fi
[ "$failed" -eq 0 ]
