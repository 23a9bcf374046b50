# shellcheck shell=bash
# Documentation: README.md and docs/*.md links, C blocks compiled against the header (the
# README's C quick start linked and run against build/host-std), Rust blocks as doctests,
# and the crate package (contents + cargo publish --dry-run). Reuses the `test` step's build;
# well under a minute. See scripts/check-docs.sh.
stage_docs() {
    command -v python3 >/dev/null 2>&1 || need_apt python3
    bash scripts/check-docs.sh
}
register_stage docs "docs: links, C/Rust blocks compile+run, package contents" stage_docs
