//! The MM2 façade (iMatrix memory manager v2.8, the post-2025 API): per-sensor pointers
//! `(&csb[e], &csd[e])` plus an upload source, instead of array base + index. Declared in
//! the header with MM2's own types (`imx_result_t`, `imatrix_upload_source_t`,
//! `imx_data_32_t` by value, `tsd_evt_value_t`, ...), so MM2 call sites compile unchanged
//! (see `include/imatrix_compat.h`).
//!
//! It runs on the same store as the legacy MM1 functions and the native API: the element
//! pair must belong to arrays registered with `spool_register_sensors` (MM2 had no such
//! call: the library cannot know the firmware's struct layout otherwise), and the sensor is
//! the same `(source, csb[e].id)` sensor the MM1 calls on those arrays use, so both APIs
//! can be mixed during a migration and `csd[e].no_samples` / `no_pending` stay mirrored.
//!
//! # Upload source and pending state
//!
//! Each array pair belongs to the upload source it was registered under, and every MM2
//! call names an upload source. Pending state (records read and not yet acknowledged) is
//! kept per sensor, and so per upload source: an ACK or NACK for one source never touches
//! another source's records. A call whose source differs from the registration's returns
//! `IMX_INVALID_ENTRY` (`spool_last_status()`: `SPOOL_ERR_SOURCE_MISMATCH`) and changes
//! nothing, so the MM2 bug of writing under one source and acknowledging under another
//! (data pending forever, never freed) cannot happen silently.
//!
//! # Kinds
//!
//! The kind comes from `csb[e].sample_rate` (0 = event). `imx_write_tsd` on an event
//! sensor and `imx_write_evt` on a TSD sensor return `IMX_INVALID_ENTRY`
//! (`SPOOL_ERR_CONFLICT`) and store nothing (the MM2 TSD/EVT sector mix-up cannot happen).
//!
//! # Return values
//!
//! The `imx_result_t` functions return iMatrix numbers (`spool_imx_set_codes`):
//! `IMX_SUCCESS`, `IMX_NO_DATA` (nothing to read), `IMX_INVALID_PARAMETER` (NULL, range),
//! `IMX_INVALID_ENTRY` (not a registered element pair, wrong source, wrong kind),
//! `IMX_INIT_ERROR` (before init), `IMX_OUT_OF_MEMORY` (store or tables full),
//! `IMX_FILE_ERROR` (storage), `IMX_GENERAL_FAILURE` (anything else). The precise
//! `spool_status_t` of the last call is `spool_last_status()`.

use super::imx::{
    ControlSensorDataT, ImxControlSensorBlock, ImxData32, ImxResult, ImxTime, ImxUploadSource,
    ImxUtcTimeMs, Mm2SensorState, Mm2Stats, SPOOL_MM2_UPLOAD_SOURCES, TsdEvtData, TsdEvtValue,
    imx_result,
};
use super::legacy::{flush_all_to_disk, gps_position, process_step, write_entry};
use super::log::{SPOOL_LOG_REASON_UNREGISTERED, SPOOL_LOG_REASON_WRONG_SOURCE};
use super::state::{State, call, utc_now};
use super::store::Kind;
use super::types::{
    ControlSensorBlock, ControlSensorData, FfiResult, SPOOL_ABI_VERSION, SpoolConfigV1,
    SpoolPosition, SpoolStatus,
};
use core::ffi::c_int;

/// NULL check, init check (and the recovery that is due), element lookup and source check
/// shared by the MM2 calls.
fn locate(
    st: &mut State,
    source: ImxUploadSource,
    csb: *const ControlSensorBlock,
    csd: *const ControlSensorData,
) -> FfiResult<(usize, u16)> {
    if csb.is_null() || csd.is_null() {
        return Err(SpoolStatus::SPOOL_ERR_NULL);
    }
    st.live()?;
    let (idx, entry) = st
        .find_element(csb as usize, csd as usize)
        .inspect_err(|_| st.reject_reason(SPOOL_LOG_REASON_UNREGISTERED, 0))?;
    let registered = u32::from(st.reg(idx)?.source());
    if registered != source {
        st.reject_reason(SPOOL_LOG_REASON_WRONG_SOURCE, registered as u16);
        return Err(SpoolStatus::SPOOL_ERR_SOURCE_MISMATCH);
    }
    Ok((idx, entry))
}

/// Appends one record after checking the sensor's kind.
fn write(st: &mut State, idx: usize, entry: u16, kind: Kind, value: u32, ms: u64) -> FfiResult<()> {
    let (_, k, _) = st.reg(idx)?.sensor(entry)?;
    if k != kind {
        return Err(SpoolStatus::SPOOL_ERR_CONFLICT);
    }
    let h = st.open_and_enter(idx, entry)?;
    let r = st.store.write(h, value, ms);
    if r.is_ok() {
        let secs = crate::record::ms_to_secs(ms);
        st.reg(idx)?.mirror_last(entry, value, secs);
    }
    // This entry, entries sharing its id, the victim's entries if an overflow drop hit
    // another sensor, and every entry after a storage eviction.
    st.settle_with(idx, entry, Some(h));
    r
}

/// The sensor's counters (`None`: the store has not met it yet).
fn counts(
    st: &mut State,
    idx: usize,
    entry: u16,
) -> FfiResult<Option<super::types::SpoolSensorStats>> {
    st.enter(idx, entry, false);
    st.settle(idx, entry);
    match st.handle_of(idx, entry)? {
        Some(h) => Ok(Some(st.store.sensor_stats(h)?)),
        None => Ok(None),
    }
}

/// Appends a TSD sample to the sensor `(csb, csd)` (per-sensor pointers `&csb[e]`,
/// `&csd[e]`), timestamped with the `utc_now` hook (0 when the clock is not synced).
/// Exact, except that the store never blocks waiting for UTC (MM2 on STM32 did) and a full
/// RAM spills to storage or drops the oldest unsent record (`spool_config_t`), as MM2 did
/// per platform. `IMX_INVALID_ENTRY` for an event sensor (`sample_rate == 0`), a wrong
/// `upload_source`, or pointers that are not the same element of a registered pair;
/// `IMX_INVALID_PARAMETER` (NULL), `IMX_INIT_ERROR`, `IMX_OUT_OF_MEMORY` (refused: RAM full
/// of pending data), `IMX_FILE_ERROR`.
///
/// # Safety
///
/// `csb` / `csd` must be NULL or pointers that may be compared with the registered arrays;
/// they are only dereferenced when they are `&csb[e]` / `&csd[e]` of a registered pair.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_write_tsd(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    value: ImxData32,
) -> ImxResult {
    let ms = u64::from(utc_now()) * 1000;
    imx_result(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        write(st, idx, entry, Kind::Tsd, value.bits(), ms)
    }))
}

/// Appends an event `(utc_time_ms, value)` to the sensor `(csb, csd)`. Exact, except that
/// the time is kept in whole seconds (MM1's EVT precision; MM2 kept ms).
/// `IMX_INVALID_ENTRY` for a TSD sensor (`sample_rate != 0`); other results as for
/// `imx_write_tsd`.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_write_evt(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    value: ImxData32,
    utc_time_ms: ImxUtcTimeMs,
) -> ImxResult {
    imx_result(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        write(st, idx, entry, Kind::Evt, value.bits(), utc_time_ms)
    }))
}

/// Number of records of the sensor not yet read (not pending), RAM and storage: what the
/// next `imx_read_bulk_samples` can return (exact; 0 for a sensor never written). 0 on any
/// error (see `spool_last_status`).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_get_new_sample_count(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> u32 {
    call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        Ok(counts(st, idx, entry)?.map_or(0, |s| s.available))
    })
    .unwrap_or(0)
}

/// Records stored for the sensor, pending or not, RAM and storage (MM2 published no
/// prototype; its tests use it as pending + new, which this is). 0 on any error.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_get_total_sample_count(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> u32 {
    call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        Ok(counts(st, idx, entry)?.map_or(0, |s| s.stored))
    })
    .unwrap_or(0)
}

/// Reads up to `min(array_size, requested_count, 65535)` unsent records, oldest first,
/// into `array[0 .. *filled_count]` and marks exactly those records pending for this
/// upload source (ACK with `imx_erase_all_pending`, NACK with `imx_revert_all_pending`).
/// Never returns erased or pending records, and never more than were written (exact).
///
/// `IMX_SUCCESS` with `*filled_count` = records read (0 when `requested_count` or
/// `array_size` is 0); `IMX_NO_DATA` with `*filled_count = 0` when there is nothing
/// unsent. On an argument, registration or source error nothing is written and nothing
/// becomes pending.
///
/// # Safety
///
/// As for `imx_write_tsd`; `array` must be NULL or writable for `array_size`
/// `tsd_evt_value_t`, `filled_count` NULL or writable for one `uint16_t`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_read_bulk_samples(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    array: *mut TsdEvtValue,
    array_size: u32,
    requested_count: u32,
    filled_count: *mut u16,
) -> ImxResult {
    imx_result(call(|st| {
        if array.is_null() || filled_count.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        let want = array_size.min(requested_count).min(u32::from(u16::MAX));
        let available = match st.handle_of(idx, entry)? {
            Some(h) => st.store.sensor_stats(h)?.available,
            None => 0,
        };
        if want > 0 && available == 0 {
            // SAFETY: non-NULL and writable for one `uint16_t` per the contract.
            unsafe { filled_count.write_unaligned(0) };
            st.settle(idx, entry);
            return Err(SpoolStatus::SPOOL_ERR_NO_DATA);
        }
        let n = want.min(available);
        let mut done: u16 = 0;
        let mut result = Ok(());
        if let Some(h) = st.handle_of(idx, entry)? {
            for i in 0..n {
                match st.store.read(h) {
                    Ok(r) => {
                        let s = TsdEvtValue {
                            value: r.value,
                            timestamp: r.time_ms,
                        };
                        // SAFETY: `i < n <= array_size`, and `array` is writable for
                        // `array_size` elements per the contract.
                        unsafe { array.add(i as usize).write_unaligned(s) };
                        done = done.saturating_add(1);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        // SAFETY: non-NULL and writable for one `uint16_t` per the contract.
        unsafe { filled_count.write_unaligned(done) };
        st.settle(idx, entry);
        result
    }))
}

/// Reads the next unsent record into `*data_out` and marks it pending for this source
/// (as a bulk read of one; exact). `IMX_NO_DATA` when nothing is unsent (`*data_out`
/// untouched), so `while (imx_read_next_tsd_evt(...) == IMX_SUCCESS)` ends.
///
/// # Safety
///
/// As for `imx_write_tsd`; `data_out` must be NULL or writable for one `tsd_evt_data_t`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_read_next_tsd_evt(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    data_out: *mut TsdEvtData,
) -> ImxResult {
    imx_result(call(|st| {
        if data_out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        let r = match st.handle_of(idx, entry)? {
            Some(h) if st.store.sensor_stats(h)?.available > 0 => st.store.read(h),
            _ => Err(SpoolStatus::SPOOL_ERR_NO_DATA),
        };
        st.settle(idx, entry);
        let r = r?;
        let d = TsdEvtData {
            value: r.value,
            utc_time_ms: r.time_ms,
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { data_out.write_unaligned(d) };
        Ok(())
    }))
}

/// Copies the unsent record `record_index` (0 = the one the next read returns) into
/// `*data_out` without marking anything pending (exact for the unsent records; MM2 counted
/// from its read position the same way). `IMX_NO_DATA` when there are not that many.
/// Records in storage are read back to RAM on the way, as a read would.
///
/// # Safety
///
/// As for `imx_read_next_tsd_evt`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_peek_next_tsd_evt(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    record_index: u32,
    data_out: *mut TsdEvtData,
) -> ImxResult {
    imx_result(call(|st| {
        if data_out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        let r = peek_at(st, idx, entry, record_index);
        st.settle(idx, entry);
        let r = r?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { data_out.write_unaligned(r) };
        Ok(())
    }))
}

/// Reads `record_index + 1` records and un-reads them again.
fn peek_at(st: &mut State, idx: usize, entry: u16, record_index: u32) -> FfiResult<TsdEvtData> {
    let Some(h) = st.handle_of(idx, entry)? else {
        return Err(SpoolStatus::SPOOL_ERR_NO_DATA);
    };
    if record_index >= st.store.sensor_stats(h)?.available {
        return Err(SpoolStatus::SPOOL_ERR_NO_DATA);
    }
    let mut read = 0u32;
    let mut out = Err(SpoolStatus::SPOOL_ERR_NO_DATA);
    while read <= record_index {
        match st.store.read(h) {
            Ok(r) => {
                read += 1;
                out = Ok(TsdEvtData {
                    value: r.value,
                    utc_time_ms: r.time_ms,
                });
            }
            Err(e) => {
                out = Err(e);
                break;
            }
        }
    }
    st.store.unread(h, read)?;
    out
}

/// `true` if the sensor has records read and not yet acknowledged under this upload
/// source (exact). `false` on any error (see `spool_last_status`).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_has_pending_data(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> bool {
    call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        Ok(counts(st, idx, entry)?.is_some_and(|s| s.pending > 0))
    })
    .unwrap_or(false)
}

/// ACK: erases exactly the records the reads made pending (all of them); unsent records
/// stay (exact; fully consumed RAM sectors and acknowledged storage space are freed). No
/// pending records: `IMX_SUCCESS`, nothing changes.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_erase_all_pending(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    imx_result(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        let r = match st.handle_of(idx, entry)? {
            Some(h) => {
                let n = st.store.sensor_stats(h)?.pending;
                st.store.ack(h, n)
            }
            None => Ok(()),
        };
        st.settle(idx, entry);
        r
    }))
}

/// NACK / timeout: makes every pending record unsent again, losslessly; the next read
/// starts at the oldest of them, and `imx_get_new_sample_count` counts them again (the
/// reading of the sources that disagree on this: pending goes to 0).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_revert_all_pending(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    imx_result(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        let r = match st.handle_of(idx, entry)? {
            Some(h) => st.store.revert(h),
            None => Ok(()),
        };
        st.settle(idx, entry);
        r
    }))
}

/// Copies the store's counters in MM2 form into `*stats_out` (approximated: "sectors" are
/// the store's RAM sectors; see `mm2_stats_t` for each field). `IMX_INVALID_PARAMETER`
/// (NULL), `IMX_INIT_ERROR`.
///
/// # Safety
///
/// `stats_out` must be NULL or writable for one `mm2_stats_t`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_get_memory_stats(stats_out: *mut Mm2Stats) -> ImxResult {
    imx_result(call(|st| {
        if stats_out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.ready()?;
        let s = st.store.stats();
        let (bytes, sector_bytes) = st.store.payload();
        // 32-bit division (record::div_sat_u32): the RAM sectors' bytes fit in 32 bits.
        let pct = match u32::try_from(sector_bytes) {
            Ok(0) => 100,
            Ok(d) => crate::record::div_sat_u32(bytes.saturating_mul(100), d),
            Err(_) => u32::MAX,
        };
        let out = Mm2Stats {
            total_sectors: s.sectors_total,
            free_sectors: s.sectors_total.saturating_sub(s.sectors_used),
            active_sensors: s.sensors,
            total_allocations: s.written,
            allocation_failures: s.refused,
            chain_operations: s.dropped,
            space_efficiency_percent: pct,
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { stats_out.write_unaligned(out) };
        Ok(())
    }))
}

// ---- lifecycle

/// Initialises the store with `spool_config_default()` (RAM only, no clock) when
/// `spool_init` has not been called; `IMX_SUCCESS` when it has (approximated: the RAM pool is
/// sized when the library is built, `pool_size` is not used; call `spool_init` first to give
/// a clock, flash or a spool directory). The arrays must still be registered with
/// `spool_register_sensors`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn imx_memory_manager_init(pool_size: u32) -> ImxResult {
    let _ = pool_size;
    imx_result(call(init_default))
}

/// `spool_init` with the default configuration unless already initialised.
pub(crate) fn init_default(st: &mut State) -> FfiResult<()> {
    if st.initialized {
        return Ok(());
    }
    let cfg = SpoolConfigV1 {
        abi_version: SPOOL_ABI_VERSION,
        flags: 0,
        utc_now: None,
    };
    st.init(&cfg, super::flash::FfiStorage::None, 0)
}

/// 1 once the store is initialised, else 0 (exact on Linux, where MM2 always said 1; on
/// STM32 MM2 also waited for UTC, which the store does not need).
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn imx_memory_manager_ready() -> c_int {
    c_int::from(super::state::peek(|st| st.initialized).unwrap_or(false))
}

/// Power-down for one sensor: moves every record held in RAM to the storage and returns
/// when done (approximated: the store flushes all sensors at once, so the first call does
/// the work and the others find nothing left; `timeout_ms` is not used, the flush is
/// bounded by the RAM size). RAM only: `IMX_SUCCESS`, the records stay in RAM.
/// `IMX_FILE_ERROR` when the storage fails (the rest stays in RAM).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_memory_manager_shutdown(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    timeout_ms: u32,
) -> ImxResult {
    let _ = timeout_ms;
    imx_result(call(|st| {
        locate(st, upload_source, csb, csd)?;
        if !st.store.persistent() {
            return Ok(());
        }
        st.flush.requested = true;
        st.store.flush_start();
        // Each step moves one batch (at least one record) or ends the flush: bounded by the
        // records stored.
        let bound = st.store.stats().stored.saturating_add(2);
        for _ in 0..bound {
            if super::legacy::flush_step(st)? == 101 {
                return Ok(());
            }
        }
        Err(SpoolStatus::SPOOL_ERR_INTERNAL)
    }))
}

/// Opens the sensor `(upload_source, csb->id)` in the store (exact: configure reads `id` and
/// `sample_rate`, 0 = EVT). `IMX_OUT_OF_MEMORY` when the sensor table is full,
/// `IMX_INVALID_ENTRY` when the sensor exists with another kind or rate, or for the errors
/// of `imx_write_tsd`.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_configure_sensor(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    imx_result(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.open_and_enter(idx, entry)?;
        st.settle(idx, entry);
        Ok(())
    }))
}

/// As `imx_configure_sensor` (approximated: there is no separate ACTIVE state; a sensor
/// accepts writes once its arrays are registered).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_activate_sensor(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    // SAFETY: same contract.
    unsafe { imx_configure_sensor(upload_source, csb, csd) }
}

/// Checks the element pair and returns `IMX_SUCCESS` (approximated: MM2 flushed the sensor's
/// RAM to disk here; the store keeps its records, which stay readable and spill with the
/// others). Later writes are still accepted.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_deactivate_sensor(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    imx_result(call(|st| locate(st, upload_source, csb, csd).map(|_| ())))
}

/// Boot: makes the sensor's records of the previous run readable again, in their original
/// order and values, before newer ones (mapped: the store recovers every sensor from its
/// storage in one pass at the first data call, and a sensor it meets later when it is first
/// opened; this call opens the sensor and mirrors its counters). RAM only: `IMX_SUCCESS`,
/// nothing to recover.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_recover_sensor_disk_data(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    // SAFETY: same contract.
    unsafe { imx_configure_sensor(upload_source, csb, csd) }
}

/// Periodic work: `process_memory(current_time)` (exact: threshold spills, the shutdown
/// flush when requested). `IMX_FILE_ERROR` when the storage failed (records stay in RAM).
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn process_memory_manager(current_time: ImxTime) -> ImxResult {
    imx_result(call(|st| process_step(st, current_time)))
}

/// Power failure: requests the shutdown flush, as `flush_all_to_disk` (mapped; the
/// application then calls `imx_memory_manager_shutdown` per sensor, which completes it).
/// Writes stay accepted (MM2 stopped them; the store keeps them in RAM).
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn imx_power_event_detected() {
    flush_all_to_disk();
}

/// `IMX_SUCCESS`, nothing else (out by design: the store takes time from the `utc_now` hook
/// of `spool_config_t` and never waits for UTC; TSD records written before the clock is
/// known carry 0-based times).
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn imx_set_utc_available(utc_available: c_int) -> ImxResult {
    let _ = utc_available;
    imx_result(call(|_| Ok(())))
}

/// The `utc_now` hook in milliseconds (seconds × 1000), 0 when the clock is not synced or
/// before init (approximated: the hook has whole seconds).
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn mm2_get_utc_time_ms() -> ImxUtcTimeMs {
    u64::from(utc_now()) * 1000
}

// ---- diagnostics

/// Fills `*state_out` for the sensor (approximated: there are no sector chains, so the
/// sector and offset fields are 0; `total_records` = records stored; `pending_counts[src]`
/// = its pending records for its own source, 0 for the others; `last_sample_time` 0).
/// `IMX_INVALID_PARAMETER` (NULL), errors of `imx_write_tsd`.
///
/// # Safety
///
/// As for `imx_write_tsd`; `state_out` must be NULL or writable for one `mm2_sensor_state_t`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_get_sensor_state(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
    state_out: *mut Mm2SensorState,
) -> ImxResult {
    imx_result(call(|st| {
        if state_out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        let c = counts(st, idx, entry)?;
        let mut out = Mm2SensorState {
            sensor_id: st.reg(idx)?.id(entry).unwrap_or(0),
            active: u32::from(c.is_some()),
            total_records: c.map_or(0, |s| u64::from(s.stored)),
            ..Mm2SensorState::default()
        };
        if let Some(slot) = out.pending_counts.get_mut(upload_source as usize) {
            *slot = c.map_or(0, |s| s.pending);
        }
        let _ = SPOOL_MM2_UPLOAD_SOURCES;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { state_out.write_unaligned(out) };
        Ok(())
    }))
}

/// The store's invariant check (`spool_check`) for the sensor's pair (mapped: there are no
/// sector chains; `IMX_SUCCESS` when the store is consistent, `IMX_GENERAL_FAILURE`
/// otherwise, `spool_last_status()` = `SPOOL_ERR_CORRUPTED`).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_validate_sector_chains(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> ImxResult {
    imx_result(call(|st| {
        locate(st, upload_source, csb, csd)?;
        st.store.check()
    }))
}

/// 0 sectors freed (exact by construction: the store frees a sector as soon as its last
/// record is acknowledged or dropped, so there is never garbage to collect).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_force_garbage_collection(
    upload_source: ImxUploadSource,
    csb: *mut ImxControlSensorBlock,
    csd: *mut ControlSensorDataT,
) -> u32 {
    let _ = call(|st| locate(st, upload_source, csb, csd).map(|_| ()));
    0
}

// ---- GPS

/// Records which entries of the source's registered arrays are the GPS sensors, for
/// `imx_write_event_with_gps` and `imx_write_gps_location` (exact; an entry `>=
/// no_sensors`, such as `IMX_INVALID_SENSOR_ENTRY`, means absent). The position comes from
/// the `get_position` callback of `spool_set_gps` (MM2 read its own GPS module).
/// `IMX_INVALID_ENTRY` when `(csb_array, csd_array)` is not a registered pair of that
/// source; `IMX_INVALID_PARAMETER` when `no_sensors` exceeds its count or for NULL;
/// `IMX_OUT_OF_MEMORY` when two other upload sources already have a GPS configuration.
///
/// # Safety
///
/// `csb_array` / `csd_array` must be NULL or pointers that may be compared with the
/// registered arrays (they are not dereferenced).
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn imx_init_gps_config_for_source(
    upload_source: ImxUploadSource,
    csb_array: *mut ImxControlSensorBlock,
    csd_array: *mut ControlSensorDataT,
    no_sensors: u16,
    lat_entry: u16,
    lon_entry: u16,
    altitude_entry: u16,
    speed_entry: u16,
) -> ImxResult {
    imx_result(call(|st| {
        if csb_array.is_null() || csd_array.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.ready()?;
        let idx = st.find(csb_array as usize, csd_array as usize)?;
        let reg = st.reg(idx)?;
        if u32::from(reg.source()) != upload_source {
            return Err(SpoolStatus::SPOOL_ERR_SOURCE_MISMATCH);
        }
        if no_sensors > reg.count() {
            return Err(SpoolStatus::SPOOL_ERR_INDEX);
        }
        let e = |x: u16| if x < no_sensors { x } else { u16::MAX };
        st.set_mm2_gps(
            idx,
            [
                e(lat_entry),
                e(lon_entry),
                e(altitude_entry),
                e(speed_entry),
            ],
        )
    }))
}

/// Writes the position into the GPS entries configured for `source`, stamped `utc_s`.
/// `None`: GPS not configured for the source; `Some(n)`: records written.
fn write_position(
    st: &mut State,
    source: u32,
    pos: Option<SpoolPosition>,
    utc_s: u32,
) -> Option<u32> {
    let (idx, entries) = st.mm2_gps(source)?;
    if entries.iter().all(|e| *e == u16::MAX) {
        return None;
    }
    let Some(p) = pos.filter(|p| p.latitude != 0.0 && p.longitude != 0.0) else {
        return Some(0);
    };
    let mut n = 0;
    for (e, v) in entries
        .into_iter()
        .zip([p.latitude, p.longitude, p.altitude, p.speed])
    {
        if e == u16::MAX {
            continue;
        }
        match write_entry(st, idx, e, v.to_bits(), utc_s) {
            Ok(()) => {
                n += 1;
                st.ffi.gps_records = st.ffi.gps_records.wrapping_add(1);
            }
            Err(_) => st.ffi.store_errors = st.ffi.store_errors.wrapping_add(1),
        }
    }
    Some(n)
}

/// Writes the event `value` now (the `utc_now` hook) and, when GPS is configured for the
/// source (`imx_init_gps_config_for_source`) and `spool_set_gps`'s callback has a fix,
/// latitude / longitude / altitude / speed as `float` bits into the GPS entries with the
/// same timestamp (exact, with whole-second times). The result is the event write's.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_write_event_with_gps(
    upload_source: ImxUploadSource,
    event_csb: *mut ImxControlSensorBlock,
    event_csd: *mut ControlSensorDataT,
    event_value: ImxData32,
) -> ImxResult {
    let t = utc_now();
    let pos = gps_position();
    imx_result(call(|st| {
        let (idx, entry) = locate(st, upload_source, event_csb, event_csd)?;
        write(
            st,
            idx,
            entry,
            Kind::Evt,
            event_value.bits(),
            u64::from(t) * 1000,
        )?;
        write_position(st, upload_source, pos, t);
        Ok(())
    }))
}

/// Writes a GPS snapshot only, stamped `event_time` (ms; 0 = now). `IMX_SUCCESS` when at
/// least one GPS record was written or GPS is not configured for the source (no-op);
/// `IMX_NO_DATA` when none could be written (no fix, or every write failed). Exact.
#[cfg(not(spool_no_mm2_api))]
#[unsafe(no_mangle)]
pub extern "C" fn imx_write_gps_location(
    upload_source: ImxUploadSource,
    event_time: ImxUtcTimeMs,
) -> ImxResult {
    let t = if event_time == 0 {
        utc_now()
    } else {
        u32::try_from(event_time / 1000).unwrap_or(u32::MAX)
    };
    let pos = gps_position();
    imx_result(call(|st| {
        st.live()?;
        match write_position(st, upload_source, pos, t) {
            None => Ok(()),
            Some(0) => Err(SpoolStatus::SPOOL_ERR_NO_DATA),
            Some(_) => Ok(()),
        }
    }))
}
