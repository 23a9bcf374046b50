# The main example (examples/gateway.rs): short deterministic runs of the simulated
# vehicle gateway. Each run ends with the ledger proof (every sample delivered exactly
# once and in order, or counted as lost by the library) and exits 1 if it fails.
# `--vehicle-hours` fixes the simulated span (reproducible with the seed) instead of a
# wall-clock budget; each run takes a few seconds in release mode.
# GATEWAY_CI_ARGS: extra flags for the flash and files runs (e.g. "--no-power-cycle" to
# leave out the shutdown flush + power cut + recovery step).
stage_gateway() {
    cargo build --release --example gateway
    local bin=target/release/examples/gateway dir extra
    read -r -a extra <<<"${GATEWAY_CI_ARGS:-}"
    "$bin" --help >/dev/null
    # Default storage (simulated NOR flash), incl. shutdown flush, power cut and recovery.
    # Seed 1 over 0.05 h acknowledges records while they are still in RAM between
    # flushes (recovery used to bring them back as owed, then count them lost).
    "$bin" --quiet --vehicle-hours 0.05 --seed 1 ${extra[@]+"${extra[@]}"}
    # A 256 KiB partition: storage full, records evicted while their packet is in
    # flight (ack(n) must accept them; an acknowledgement mark may evict the very
    # records it covers).
    "$bin" --quiet --storage-kib 256 --vehicle-hours 0.1 --seed 2 ${extra[@]+"${extra[@]}"}
    # Durability window: 10 s, sudden power cuts (no shutdown flush) every 50,000
    # samples with the uploader keeping up (nothing would reach flash below the
    # threshold without the window); exit 1 unless every record lost in a cut was
    # written inside the window of the last tick. Then the same on files, cut every 20 s.
    "$bin" --quiet --vehicle-hours 0.1 --seed 4 --fault-rate 0 --max-unspilled-ms 10000 --power-cut-every 50000
    # RAM only: overflow drops the oldest unsent data, every drop counted.
    "$bin" --quiet --storage ram --vehicle-hours 0.1 --seed 7
    # Linux file storage in a temporary directory.
    dir="$(mktemp -d "$SPOOL_TMP/gateway-files.XXXXXX")"
    "$bin" --quiet --storage files --dir "$dir/spool" --vehicle-hours 0.05 --seed 1 ${extra[@]+"${extra[@]}"}
    "$bin" --quiet --storage files --dir "$dir/window" --vehicle-hours 0.02 --seed 2 --max-unspilled-ms 10000 --power-cut-every 20s
    rm -rf "$dir"
    echo "gateway: 6 passed, 0 failed"
}
register_stage gateway "main example: simulated gateway, ledger proof (flash, ram, files)" stage_gateway
