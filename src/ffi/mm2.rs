//! The MM2 façade (iMatrix memory manager v2.8, the post-2025 API): per-sensor pointers
//! `(&csb[e], &csd[e])` plus an upload source, instead of array base + index.
//!
//! It runs on the same store as the legacy MM1 functions and the native API: the element
//! pair must belong to arrays registered with `spool_register_sensors`, and the sensor is
//! the same `(source, csb[e].id)` sensor the MM1 calls on those arrays use, so both APIs
//! can be mixed during a migration and `csd[e].no_samples` / `no_pending` stay mirrored.
//!
//! # Upload source and pending state
//!
//! Each array pair belongs to the upload source it was registered under, and every MM2
//! call names an upload source. Pending state (records read and not yet acknowledged) is
//! kept per sensor, and so per upload source: an ACK or NACK for one source never touches
//! another source's records. A call whose source differs from the registration's returns
//! `SPOOL_ERR_SOURCE_MISMATCH` and changes nothing, so the MM2 bug of writing under one
//! source and acknowledging under another (data pending forever, never freed) cannot
//! happen silently: the mismatch is reported and the data stays erasable under the right
//! source.
//!
//! # Kinds
//!
//! The kind comes from `csb[e].sample_rate` (0 = event). `imx_write_tsd` on an event
//! sensor and `imx_write_evt` on a TSD sensor return `SPOOL_ERR_CONFLICT` and store
//! nothing (the MM2 TSD/EVT sector-type mix-up on one sensor cannot corrupt it).
//!
//! # Return values
//!
//! The `imx_result_t` functions return `spool_status_t` (an `int`-sized enum). `SPOOL_OK`
//! is 0 like `IMX_SUCCESS`; error codes are `spool_status_t` values, not iMatrix's
//! (whose numbering is not reliably known). `imx_data_32_t` (a 4-byte union of
//! `uint32_t` / `int32_t` / `float`) is passed as `uint32_t`: the same registers on ARM
//! EABI, RISC-V and x86-64 SysV.

use super::state::{State, call, utc_now};
use super::store::Kind;
use super::types::{ControlSensorBlock, ControlSensorData, FfiResult, SpoolStatus, status_of};

/// One sample returned by `imx_read_bulk_samples` (MM2 `tsd_evt_value_t`, same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolMm2Sample {
    /// The 32-bit sample value (`imx_data_32_t` bits).
    pub value: u32,
    /// UTC time in ms: the event's time (whole seconds), or the TSD sample's time derived
    /// from its sector's first sample and the sample rate (0-based when the clock was not
    /// synced at the first sample).
    pub timestamp: u64,
}

/// `imx_get_memory_stats` (MM2 `mm2_stats_t`, same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolMm2Stats {
    /// RAM sectors of the store.
    pub total_sectors: u32,
    /// RAM sectors not holding records.
    pub free_sectors: u32,
    /// Sensors known to the store.
    pub active_sensors: u32,
    /// Records written since init (every API).
    pub total_allocations: u64,
    /// Writes refused because no RAM could be freed (every sector held pending data).
    pub allocation_failures: u64,
    /// Records dropped by the overflow policy (oldest unsent data) plus records discarded
    /// by `reset_csd_entry` (MM2 counted sector-chain operations; there is no chain table).
    pub chain_operations: u64,
    /// Record payload bytes (4 per TSD sample, 8 per event) as a percentage of the bytes
    /// of the RAM sectors in use (100 when no sector is in use).
    pub space_efficiency_percent: u32,
}

/// NULL check, init check, element lookup and source check shared by the MM2 calls.
fn locate(
    st: &State,
    source: u32,
    csb: *const ControlSensorBlock,
    csd: *const ControlSensorData,
) -> FfiResult<(usize, u16)> {
    if csb.is_null() || csd.is_null() {
        return Err(SpoolStatus::SPOOL_ERR_NULL);
    }
    st.ready()?;
    let (idx, entry) = st.find_element(csb as usize, csd as usize)?;
    if u32::from(st.reg(idx)?.source()) != source {
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

/// Appends a TSD sample to the sensor `(csb, csd)` (per-sensor pointers `&csb[e]`,
/// `&csd[e]`), timestamped with the `utc_now` hook (0 when the clock is not synced).
/// `SPOOL_ERR_CONFLICT` for an event sensor (`sample_rate == 0`); `SPOOL_ERR_SOURCE_MISMATCH`
/// when `upload_source` is not the source the arrays were registered under;
/// `SPOOL_ERR_NULL`, `SPOOL_ERR_NOT_INITIALIZED`, `SPOOL_ERR_NOT_REGISTERED` (pointers not
/// to the same element of a registered pair); store errors (`SPOOL_ERR_FULL`, ...).
///
/// # Safety
///
/// `csb` / `csd` must be NULL or pointers that may be compared with the registered arrays;
/// they are only dereferenced when they are `&csb[e]` / `&csd[e]` of a registered pair.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_write_tsd(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    value: u32,
) -> SpoolStatus {
    let ms = u64::from(utc_now()) * 1000;
    status_of(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        write(st, idx, entry, Kind::Tsd, value, ms)
    }))
}

/// Appends an event `(utc_time_ms, value)` to the sensor `(csb, csd)`. The time is kept
/// in whole seconds. `SPOOL_ERR_CONFLICT` for a TSD sensor (`sample_rate != 0`); other
/// errors as for `imx_write_tsd`.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_write_evt(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    value: u32,
    utc_time_ms: u64,
) -> SpoolStatus {
    status_of(call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        write(st, idx, entry, Kind::Evt, value, utc_time_ms)
    }))
}

/// Number of records of the sensor not yet read (not pending): what the next
/// `imx_read_bulk_samples` can return. 0 on any error (counted; see `spool_last_status`).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_get_new_sample_count(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
) -> u32 {
    call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        st.settle(idx, entry);
        Ok(match st.handle_of(idx, entry)? {
            Some(h) => st.store.sensor_stats(h)?.available,
            None => 0,
        })
    })
    .unwrap_or(0)
}

/// Reads up to `min(array_size, requested_count, 65535)` unsent records, oldest first,
/// into `array[0 .. *filled_count]` and marks exactly those records pending for this
/// upload source (ACK with `imx_erase_all_pending`, NACK with `imx_revert_all_pending`).
/// Never returns erased or pending records, and never more than were written.
///
/// `SPOOL_OK` with `*filled_count` = records read (0 when `requested_count` or
/// `array_size` is 0); `SPOOL_ERR_NO_DATA` with `*filled_count = 0` when there is nothing
/// unsent. On an argument, registration or source error nothing is written and nothing
/// becomes pending. (A store error in the middle of the batch, which the invariants rule
/// out, would leave the records read before it pending and counted in `*filled_count`.)
///
/// # Safety
///
/// As for `imx_write_tsd`; `array` must be NULL or writable for `array_size`
/// `spool_mm2_sample_t`, `filled_count` NULL or writable for one `uint16_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_read_bulk_samples(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    array: *mut SpoolMm2Sample,
    array_size: u32,
    requested_count: u32,
    filled_count: *mut u16,
) -> SpoolStatus {
    status_of(call(|st| {
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
                        let s = SpoolMm2Sample {
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

/// `true` if the sensor has records read and not yet acknowledged under this upload
/// source. `false` on any error (counted; see `spool_last_status`).
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_has_pending_data(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
) -> bool {
    call(|st| {
        let (idx, entry) = locate(st, upload_source, csb, csd)?;
        st.enter(idx, entry, false);
        st.settle(idx, entry);
        Ok(match st.handle_of(idx, entry)? {
            Some(h) => st.store.sensor_stats(h)?.pending > 0,
            None => false,
        })
    })
    .unwrap_or(false)
}

/// ACK: erases exactly the records `imx_read_bulk_samples` made pending (all of them);
/// unsent records stay. No pending records: `SPOOL_OK`, nothing changes.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_erase_all_pending(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
) -> SpoolStatus {
    status_of(call(|st| {
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
/// starts at the oldest of them.
///
/// # Safety
///
/// As for `imx_write_tsd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_revert_all_pending(
    upload_source: u32,
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
) -> SpoolStatus {
    status_of(call(|st| {
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

/// Copies the store's counters in MM2 form into `*stats_out` (see `spool_mm2_stats_t` for
/// what each field means here). `SPOOL_ERR_NULL`, `SPOOL_ERR_NOT_INITIALIZED`.
///
/// # Safety
///
/// `stats_out` must be NULL or writable for one `spool_mm2_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_get_memory_stats(stats_out: *mut SpoolMm2Stats) -> SpoolStatus {
    status_of(call(|st| {
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
        let out = SpoolMm2Stats {
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

#[cfg(test)]
mod tests {
    #[test]
    fn sample_layout_matches_mm2() {
        // tsd_evt_value_t { uint32_t value; uint64_t timestamp; }: 16 bytes on 64-bit
        // hosts and on 32-bit ARM EABI / RISC-V (u64 is 8-aligned there too).
        assert_eq!(core::mem::size_of::<super::SpoolMm2Sample>(), 16);
        assert_eq!(core::mem::offset_of!(super::SpoolMm2Sample, timestamp), 8);
    }
}
