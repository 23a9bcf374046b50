# shellcheck shell=bash
# Store (record / sensor / ram / spool / profile): whole-store model test and the legacy
# corruption tests under miri (they drive the pool's index path, which is unsafe inside).
# The 70,000-record u16 test is skipped under miri (minutes of interpretation, no unsafe
# path that the other tests do not take).
MIRI_TESTS+=("--test store_model" "--test legacy_bugs -- --skip u16_counters_saturate_never_wrap")
# Exact pool/storage call counts of the hot path (scaled down under miri).
MIRI_TESTS+=("--test store_counts")
