//! The rest of MM1's public API: initialisation, tiered-storage queries and memory
//! statistics, mapped onto the store. Each function says whether it is exact, approximated
//! or a no-op by design; `docs/migration.md` has the whole table. MM1's sector-level
//! internals (`imx_get_free_sector`, `read_rs` / `write_rs`, `allocate_disk_sector`, ...)
//! are out by design: the store has no sector chains to hand out.

use core::cell::UnsafeCell;

use super::imx::ImxMemoryStatistics;
use super::mm2::init_default;
use super::state::{call, utc_now};
use super::types::SpoolStatus;

/// Sets up the store with `spool_config_default()` (RAM only, no clock) unless `spool_init`
/// was called (mapped: MM1's sector allocation table is the store's RAM pool, sized when the
/// library is built). Call `spool_init` first to give a clock, flash or a spool directory;
/// the arrays are registered with `spool_register_sensors` either way.
#[unsafe(no_mangle)]
pub extern "C" fn imx_sat_init() {
    let _ = call(init_default);
}

/// As `imx_sat_init` (approximated: `ext_sram_size` is not used; the RAM pool's size is
/// fixed when the library is built, see `SPOOL_PROFILE` in the docs).
#[unsafe(no_mangle)]
pub extern "C" fn init_ext_memory(ext_sram_size: u32) {
    let _ = ext_sram_size;
    let _ = call(init_default);
}

/// No-op by design: the storage (a flash region or a spool directory) is given to
/// `spool_init` in `spool_config_t`, and mounted there. Counted; before init it counts as
/// rejected (`SPOOL_ERR_NOT_INITIALIZED`).
#[unsafe(no_mangle)]
pub extern "C" fn init_disk_storage_system() {
    let _ = call(|st| st.ready());
}

/// Recovers the previous run's records from the storage now (mapped: `spool_recover`,
/// which runs once; the first data call runs it anyway). A clean start recovers nothing and
/// is harmless, as in MM1. RAM only: nothing to do.
#[unsafe(no_mangle)]
pub extern "C" fn perform_power_failure_recovery() {
    let _ = call(|st| {
        st.ready()?;
        st.recover().map(|_| ())
    });
}

/// Approximated: while a shutdown flush (`flush_all_to_disk`) is in progress, the number of
/// RAM sectors still holding records (at least 1 until `get_flush_progress()` would say
/// 101); otherwise 0 (threshold spills run on their own in `process_memory`). So the MM1 loop
/// `while (get_pending_disk_write_count() > 0) process_memory(now);` ends when the flush
/// ends. RAM only, before init: 0.
#[unsafe(no_mangle)]
pub extern "C" fn get_pending_disk_write_count() -> u32 {
    call(|st| {
        st.ready()?;
        if !st.flush.requested || st.store.flush_progress_now() == 101 {
            return Ok(0);
        }
        Ok(st.store.stats().sectors_used.max(1))
    })
    .unwrap_or(0)
}

/// Approximated: `false` after a storage write failed for lack of space
/// (`SPOOL_ERR_NO_SPACE`: filesystem full, or under the free-space reserve) until a batch
/// reaches storage again; `true` otherwise, and in RAM-only builds. The library frees old
/// data itself only by its overflow policy (MM1's caller deleted old files).
#[unsafe(no_mangle)]
pub extern "C" fn is_disk_usage_acceptable() -> bool {
    call(|st| Ok(!st.disk_full)).unwrap_or(true)
}

/// The statistics `imx_get_memory_statistics` points at.
struct StatsCell(UnsafeCell<ImxMemoryStatistics>);

// SAFETY: the cell is written only inside the library's critical section (`call`); the
// firmware reads it through the returned pointer, as it read MM1's global (documented:
// read it from the thread that updates it).
unsafe impl Sync for StatsCell {}

static MEMORY_STATS: StatsCell = StatsCell(UnsafeCell::new(ImxMemoryStatistics {
    total_sectors: 0,
    available_sectors: 0,
    used_sectors: 0,
    free_sectors: 0,
    peak_usage: 0,
    allocation_count: 0,
    deallocation_count: 0,
    allocation_failures: 0,
    fragmentation_level: 0,
    usage_percentage: 0.0,
    peak_usage_percentage: 0.0,
    last_updated: 0,
}));

/// Recomputes the statistics (`keep_peak`: keep the peak seen so far).
fn update(keep_peak: bool) {
    let now = utc_now();
    let _ = call(|st| {
        let p = MEMORY_STATS.0.get();
        // SAFETY: `p` points at the static; it is only written here, inside the critical
        // section; read by value.
        let old = unsafe { p.read() };
        let mut s = ImxMemoryStatistics::default();
        if st.initialized {
            let k = st.store.stats();
            let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
            s.total_sectors = k.sectors_total;
            s.used_sectors = k.sectors_used;
            s.free_sectors = k.sectors_total.saturating_sub(k.sectors_used);
            s.available_sectors = s.free_sectors;
            s.allocation_count = sat(k.written);
            s.deallocation_count = sat(k.acked.saturating_add(k.dropped));
            s.allocation_failures = sat(k.refused);
        }
        s.peak_usage = if keep_peak {
            old.peak_usage.max(s.used_sectors)
        } else {
            s.used_sectors
        };
        let pct = |v: u32| {
            if s.total_sectors == 0 {
                0.0
            } else {
                v as f32 * 100.0 / s.total_sectors as f32
            }
        };
        s.usage_percentage = pct(s.used_sectors);
        s.peak_usage_percentage = pct(s.peak_usage);
        s.last_updated = now;
        // SAFETY: as above; written by value.
        unsafe { p.write(s) };
        Ok::<(), SpoolStatus>(())
    });
}

/// Resets the statistics (the peak restarts from the current use) and fills them (exact).
#[unsafe(no_mangle)]
pub extern "C" fn imx_init_memory_statistics() {
    update(false);
}

/// Recomputes the statistics from the store (exact for sectors, usage and peak; "sectors"
/// are the store's RAM sectors; `fragmentation_level` is 0 by construction).
#[unsafe(no_mangle)]
pub extern "C" fn imx_update_memory_statistics() {
    update(true);
}

/// Updates the statistics and returns a pointer to them (never NULL; all zero before
/// init). The struct is the library's: read or copy it, do not free it; it changes at the
/// next `imx_update_memory_statistics` / `imx_get_memory_statistics` (read it from the
/// thread that calls those, as with MM1's global).
#[unsafe(no_mangle)]
pub extern "C" fn imx_get_memory_statistics() -> *mut ImxMemoryStatistics {
    update(true);
    MEMORY_STATS.0.get()
}

/// 0 (exact by construction: each sensor's records are packed in its own sectors, freed as
/// soon as they empty, so there is no fragmentation to measure).
#[unsafe(no_mangle)]
pub extern "C" fn imx_calculate_fragmentation_level() -> u32 {
    0
}

/// Reports the statistics through the log hook (`spool_set_log`) as one
/// `SPOOL_LOG_EV_MEMORY_STATS` event (used sectors, total sectors, peak sectors); no hook set: no
/// output (mapped: the library does no formatted printing).
#[unsafe(no_mangle)]
pub extern "C" fn imx_print_memory_statistics() {
    update(true);
    // SAFETY: `MEMORY_STATS` is only written inside the critical section; read by value.
    let s = unsafe { MEMORY_STATS.0.get().read() };
    super::log::memory_stats(s.used_sectors, s.total_sectors, s.peak_usage);
}

/// The `ms` CLI command: as `imx_print_memory_statistics` (approximated: `arg` and the
/// sub-commands MM1 read from its tokenizer are not used).
#[unsafe(no_mangle)]
pub extern "C" fn cli_memory_stats(arg: u16) {
    let _ = arg;
    imx_print_memory_statistics();
}
