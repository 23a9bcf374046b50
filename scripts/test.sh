#!/usr/bin/env bash
# The one test command (see README). Installs what it needs, then runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test 2>&1 | tee /tmp/spool-test.log
