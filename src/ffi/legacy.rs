//! The legacy MM1 API, exact names and argument lists (`iMatrix/cs_ctrl/memory_manager_tsd_evt.h`
//! and `memory_manager_tiered.c`).
//!
//! `csb` / `csd` are the base pointers of a registered array pair and `entry` an index into
//! them, as in the legacy code. The `void` functions report nothing: a rejected call is a
//! no-op, counted in `spool_stats().ffi` and readable with `spool_last_status()`.
//!
//! Semantics (MM1, reference §2): `write_*` append a record (TSD when `csb[entry].sample_rate`
//! is non-zero, EVT otherwise); `read_tsd_evt` returns the next unsent record and makes it
//! pending; `erase_tsd_evt` removes the pending records; `revert_*` makes pending records
//! unsent again, losslessly. After each call `csd[entry].no_samples` (stored) and
//! `csd[entry].no_pending` (read, not erased) hold the store's counters, saturated to
//! `UINT16_MAX`, so `available = no_samples - no_pending` as the legacy uploader expects;
//! so do those of every other entry whose sensor the call changed (shared ids, a drop of
//! another sensor's records, eviction). Lowering `no_pending` by hand un-reads, as in MM1
//! (see `read_tsd_evt`).

use super::log::{SPOOL_LOG_REASON_ELEMENT_POINTER, SPOOL_LOG_REASON_UNREGISTERED};
use super::state::{State, call, peek, utc_now};
use super::store::Kind;
use super::types::{
    ControlSensorBlock, ControlSensorData, DataStoreInfo, FfiResult, SPOOL_ID_NONE, SpoolPosition,
    SpoolStatus, status_of,
};

/// NULL check, init check and registration lookup shared by the legacy entry points.
fn locate(
    st: &mut State,
    csb: *const ControlSensorBlock,
    csd: *const ControlSensorData,
) -> FfiResult<usize> {
    if csb.is_null() || csd.is_null() {
        return Err(SpoolStatus::SPOOL_ERR_NULL);
    }
    st.live()?;
    let r = st.find(csb as usize, csd as usize);
    if r.is_err() && st.log.is_some() {
        // Why: element pointers of a registered pair (`&csb[k], &csd[k], k`), or none.
        match st.find_element(csb as usize, csd as usize) {
            Ok((_, k)) => st.reject_reason(SPOOL_LOG_REASON_ELEMENT_POINTER, k),
            Err(_) => st.reject_reason(SPOOL_LOG_REASON_UNREGISTERED, 0),
        }
    }
    r
}

/// Appends one record to `csb[entry]`'s sensor and mirrors the counters.
pub(crate) fn write_entry(
    st: &mut State,
    idx: usize,
    entry: u16,
    value: u32,
    utc_s: u32,
) -> FfiResult<()> {
    let entry = st.reg(idx)?.entry(entry)?;
    // Opening (registering a new sensor) changes no count, so the firmware's edits of
    // `no_pending` are applied after it, with the handle it returns.
    let h = st.open_and_enter(idx, entry)?;
    let r = st.store.write(h, value, u64::from(utc_s) * 1000);
    if r.is_ok() {
        st.reg(idx)?.mirror_last(entry, value, utc_s);
    }
    // Mirror whatever happened: this entry, entries sharing its id, the victim's entries
    // if an overflow drop hit another sensor, and every entry after a storage eviction.
    st.settle_with(idx, entry, Some(h));
    r
}

/// Erases `min(csd[entry].no_pending, pending)` records: MM1's `erase_tsd_evt` erased what
/// `no_pending` said, which the patched uploader idiom relies on (set `no_pending = n`, call
/// `erase_tsd_evt`). A saturated or impossible `no_pending` is clamped to the real count
/// (and, when higher than the count the mirror showed, counted as refused).
fn erase_entry(st: &mut State, idx: usize, entry: u16) -> FfiResult<()> {
    let entry = st.reg(idx)?.entry(entry)?;
    st.enter(idx, entry, true);
    let r = match st.handle_of(idx, entry)? {
        None => Ok(()),
        Some(h) => {
            let pending = st.store.sensor_stats(h)?.pending;
            let fw = st.reg(idx)?.csd_no_pending(entry).unwrap_or(u16::MAX);
            let shown = u16::try_from(pending).unwrap_or(u16::MAX);
            if fw > shown {
                let ms = &mut st.mirror_stats;
                ms.pending_refused = ms.pending_refused.wrapping_add(1);
            }
            let n = if fw == u16::MAX {
                pending
            } else {
                pending.min(u32::from(fw))
            };
            st.store.ack(h, n)
        }
    };
    st.settle(idx, entry);
    r
}

/// Gets the position for `add_gps_location` (outside the critical section).
pub(crate) fn gps_position() -> Option<SpoolPosition> {
    let cfg = peek(|st| st.gps.as_ref().map(|g| (g.0.get_position, g.0.ctx)))
        .ok()
        .flatten()?;
    let (f, ctx) = (cfg.0?, cfg.1);
    let mut pos = SpoolPosition::default();
    // SAFETY: the firmware registered `f` and `ctx` with `spool_set_gps` and documents the
    // callback as callable from any thread that calls the library; `pos` is a valid,
    // writable `spool_position_t` for the duration of the call.
    let ok = unsafe { f(ctx, &mut pos) };
    ok.then_some(pos)
}

/// Legacy §1.6: if lat and lon are non-zero, write lat / lon / alt (/ speed) into the GPS
/// entries `i < entry` of the same arrays with the same timestamp.
fn write_gps(st: &mut State, idx: usize, entry: u16, pos: SpoolPosition, utc_s: u32) {
    if pos.latitude == 0.0 || pos.longitude == 0.0 {
        return;
    }
    let Some(cfg) = st.gps.as_ref().map(|g| g.0) else {
        return;
    };
    for i in 0..entry {
        let Some(id) = st.reg(idx).ok().and_then(|r| r.id(i)) else {
            return;
        };
        if id == SPOOL_ID_NONE {
            continue;
        }
        let v = if id == cfg.latitude_id {
            pos.latitude
        } else if id == cfg.longitude_id {
            pos.longitude
        } else if id == cfg.altitude_id {
            pos.altitude
        } else if id == cfg.speed_id {
            pos.speed
        } else {
            continue;
        };
        match write_entry(st, idx, i, v.to_bits(), utc_s) {
            Ok(()) => st.ffi.gps_records = st.ffi.gps_records.wrapping_add(1),
            Err(_) => st.ffi.store_errors = st.ffi.store_errors.wrapping_add(1),
        }
    }
}

/// Stores `value` for `csb[entry]`, timestamped with the firmware's `utc_now` hook (0 when not
/// synced). With `add_gps_location`, and a position callback set by `spool_set_gps` that
/// reports non-zero latitude and longitude, also writes latitude, longitude, altitude (and
/// speed when configured) as `float` bits into the GPS entries at indices `< entry` of the same
/// arrays, with the same timestamp (legacy §1.6; GPS entries must come before the event entry).
///
/// Rejected (no-op, counted): NULL `csb`/`csd`, before init, unregistered arrays,
/// `entry >= count`. Store errors (full, kind mismatch) are counted too.
///
/// # Safety
///
/// `csb` / `csd` must be NULL or the exact base pointers of an array pair registered with
/// `spool_register_sensors` and still alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write_tsd_evt(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    entry: u16,
    value: u32,
    add_gps_location: bool,
) {
    let utc = utc_now();
    let pos = if add_gps_location {
        gps_position()
    } else {
        None
    };
    let _ = call(|st| {
        let idx = locate(st, csb, csd)?;
        write_entry(st, idx, entry, value, utc)?;
        if let Some(p) = pos {
            write_gps(st, idx, entry, p, utc);
        }
        Ok(())
    });
}

/// Stores `value` for `csb[entry]` with the given UTC time in seconds (0 = not synced).
/// TSD entries keep the value only (time implied by `sample_rate`); EVT entries keep
/// (UTC seconds, value). Rejections as for `write_tsd_evt`.
///
/// # Safety
///
/// As for `write_tsd_evt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write_tsd_evt_time(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    entry: u16,
    value: u32,
    utc_time: u32,
) {
    let _ = call(|st| {
        let idx = locate(st, csb, csd)?;
        write_entry(st, idx, entry, value, utc_time)
    });
}

/// Reads the next unsent record of `csb[entry]` (the one at offset `no_pending` from the
/// oldest) into `*value` and makes it pending (`no_pending` + 1); the record stays stored
/// until erased. If the firmware lowered `csd[entry].no_pending` (MM1's way to undo reads:
/// `no_pending -= k`), the last `k` records handed out became unsent again and this read
/// returns the record at the new offset; a raised value is refused (counted in
/// `spool_mirror_stats`) and the true count written back. Every call that changes the
/// sensor applies such an edit first (so `atomic_erase_records` never erases a record the
/// firmware un-read).
///
/// EVT entries (`sample_rate == 0`): by default (ABI 3) the read stores two words, as MM1
/// did: `value[0]` = UTC seconds and `value[1]` = value (the MM1 record layout the legacy
/// uploader reads through `(uint32_t *)&event_sample`); `value` must then point at two
/// `uint32_t`. With `SPOOL_CFG_EVT_READ_ONE_WORD` in `spool_config_t.flags` (or an ABI-1/2
/// configuration without `SPOOL_CFG_EVT_READ_TWO_WORDS`), only the value is stored, in
/// `value[0]`. TSD reads always store one word. The native `spool_read` always returns
/// the time.
///
/// Nothing to read: stores 0 (both words in two-word EVT mode) and changes no counter,
/// as MM1 did. Rejected (no-op, `*value` untouched): NULL pointers, before init,
/// unregistered arrays, `entry >= count`.
///
/// # Safety
///
/// As for `write_tsd_evt`; `value` must be NULL or writable for one `uint32_t` (two for EVT
/// entries in two-word mode, the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read_tsd_evt(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    entry: u16,
    value: *mut u32,
) {
    let _ = call(|st| {
        if value.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        let idx = locate(st, csb, csd)?;
        let entry = st.reg(idx)?.entry(entry)?;
        let two_words = st.evt_two_words;
        let (key, kind, _) = st.reg(idx)?.sensor(entry)?;
        let h = st.store.find(key);
        // A lowered `no_pending` moves the read position back first (MM1: the read
        // returns the record at offset `no_pending`).
        st.enter_with(idx, entry, h);
        let rec = match h {
            Some(h) => st.store.read(h),
            None => Err(SpoolStatus::SPOOL_ERR_NO_DATA),
        };
        let words: [u32; 2] = match rec {
            Ok(r) if r.kind == super::types::SPOOL_KIND_EVT => {
                [crate::record::ms_to_secs(r.time_ms), r.value]
            }
            Ok(r) => [r.value, 0],
            Err(SpoolStatus::SPOOL_ERR_NO_DATA) => [0, 0],
            Err(e) => {
                st.settle_with(idx, entry, h);
                return Err(e);
            }
        };
        let evt = match rec {
            Ok(r) => r.kind == super::types::SPOOL_KIND_EVT,
            Err(_) => kind == Kind::Evt,
        };
        if evt && two_words {
            // SAFETY: `value` is non-NULL and, per the contract for EVT entries in two-word
            // mode, writable for two `uint32_t`; unaligned writes need no alignment.
            unsafe {
                value.write_unaligned(words[0]);
                value.add(1).write_unaligned(words[1]);
            }
        } else {
            let v = if evt { words[1] } else { words[0] };
            // SAFETY: `value` is non-NULL and writable for one `uint32_t` per the contract.
            unsafe { value.write_unaligned(v) }
        }
        st.settle_with(idx, entry, h);
        rec.map(|_| ())
    });
}

/// Erases the pending records of `csb[entry]` (commit after a successful upload):
/// exactly `csd[entry].no_pending` oldest records, clamped to what is really pending, so the
/// patched-uploader idiom (set `no_pending = n`, call `erase_tsd_evt`) erases `n`. Then
/// `no_pending` is the number still pending. Rejections as for `write_tsd_evt`.
///
/// # Safety
///
/// As for `write_tsd_evt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn erase_tsd_evt(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    entry: u16,
) {
    let _ = call(|st| {
        let idx = locate(st, csb, csd)?;
        erase_entry(st, idx, entry)
    });
}

/// Checks `no_items` against the registration before touching anything.
fn items(st: &State, idx: usize, no_items: u16) -> FfiResult<u16> {
    if no_items > st.reg(idx)?.count() {
        Err(SpoolStatus::SPOOL_ERR_INDEX)
    } else {
        Ok(no_items)
    }
}

/// Rollback after a failed upload or timeout: makes every pending record of entries
/// `0 .. no_items - 1` unsent again (lossless; `no_pending = 0`). `no_items` larger than
/// the registered count rejects the whole call (no-op, counted).
///
/// # Safety
///
/// As for `write_tsd_evt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn revert_tsd_evt_pending_data(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    no_items: u16,
) {
    let _ = call(|st| {
        let idx = locate(st, csb, csd)?;
        let n = items(st, idx, no_items)?;
        let mut result = Ok(());
        for e in 0..n {
            st.enter(idx, e, true);
            if let Some(h) = st.handle_of(idx, e)?
                && let Err(err) = st.store.revert(h)
            {
                result = Err(err);
            }
            st.settle(idx, e);
        }
        result
    });
}

/// `erase_tsd_evt` for every entry `0 .. no_items - 1` with pending records (the original
/// ACK path of the uploader). `no_items` larger than the registered count rejects the whole
/// call (no-op, counted).
///
/// # Safety
///
/// As for `write_tsd_evt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn erase_tsd_evt_pending_data(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    no_items: u16,
) {
    let _ = call(|st| {
        let idx = locate(st, csb, csd)?;
        let n = items(st, idx, no_items)?;
        let mut result = Ok(());
        for e in 0..n {
            if let Err(err) = erase_entry(st, idx, e) {
                result = Err(err);
            }
        }
        result
    });
}

/// Erases exactly the `count` oldest pending records of `csb[entry]`, or nothing:
/// `SPOOL_ERR_ACK_TOO_MANY` if fewer than `count` are pending. `count == 0` succeeds and
/// changes nothing. Use it per entry to ACK exactly what one packet carried.
///
/// # Safety
///
/// As for `write_tsd_evt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn atomic_erase_records(
    csb: *mut ControlSensorBlock,
    csd: *mut ControlSensorData,
    entry: u16,
    count: u16,
) -> SpoolStatus {
    status_of(call(|st| {
        let idx = locate(st, csb, csd)?;
        let entry = st.reg(idx)?.entry(entry)?;
        let h = st.handle_of(idx, entry)?;
        // A lowered `no_pending` un-reads first: only records still handed out can be
        // acknowledged.
        st.enter_with(idx, entry, h);
        let r = match h {
            Some(h) => st.store.ack(h, u32::from(count)),
            None if count == 0 => Ok(()),
            None => Err(SpoolStatus::SPOOL_ERR_ACK_TOO_MANY),
        };
        st.settle_with(idx, entry, h);
        r
    }))
}

/// Main-loop hook (Linux MM1: call every iteration with the ms tick). With storage:
/// recovers the previous run's records if that is still due, then does a bounded amount
/// of spill work, one batch (one frame, one program pass) per call: a shutdown-flush step
/// while `flush_all_to_disk` is in progress, else a threshold spill of the oldest full RAM
/// sectors while RAM use is at or above `flush_threshold_pct`. With a durability window
/// (`spool_set_max_unspilled_ms`), `current_time` is its clock (ms, any monotonic tick,
/// wrapping at 2^32): once the window has passed since RAM was last seen empty, the call
/// moves every RAM record to storage (as many batches as that takes, usually one), so a
/// power cut loses at most the records of the last window plus one call interval.
/// Counters it changes are mirrored. RAM only: nothing to do. A storage failure is left
/// in `spool_last_status` (the records stay in RAM). Before init: no-op, counted.
#[unsafe(no_mangle)]
pub extern "C" fn process_memory(current_time: u32) {
    let _ = call(|st| process_step(st, current_time));
}

/// `process_memory`'s work (shared with MM2's `process_memory_manager`).
pub(crate) fn process_step(st: &mut State, current_time: u32) -> FfiResult<()> {
    st.live()?;
    if st.flush.requested {
        flush_step(st).map(|_| ())
    } else {
        let r = st.store.process(current_time);
        if matches!(r, Ok(true)) {
            st.disk_full = false;
        }
        // An id changed at run time may have made entries share a sensor: cheap
        // check (ids only) once per main-loop call.
        if matches!(r, Ok(true)) || st.recompute_shared() {
            st.refresh_all();
        } else {
            st.refresh_if_moved();
        }
        r.map(|_| ())
    }
}

/// One shutdown-flush step; ends the request at 101.
pub(crate) fn flush_step(st: &mut State) -> FfiResult<u8> {
    let r = st.store.flush_step();
    st.refresh_all();
    if r.is_ok() {
        st.disk_full = false;
    }
    if r == Ok(101) {
        st.flush.requested = false;
    }
    r
}

/// Requests the shutdown flush (ignition off): every record held in RAM is to be moved to
/// storage. Then poll `get_flush_progress()` (calling `process_memory()` in between, as
/// MM1 firmware does; either one advances the flush by one batch) until it returns 101.
/// RAM-only builds have nothing to flush to: progress is 101 at once, and the data stays
/// in RAM. Before init: no-op, counted.
#[unsafe(no_mangle)]
pub extern "C" fn flush_all_to_disk() {
    let _ = call(|st| {
        st.live()?;
        st.flush.requested = true;
        st.store.flush_start();
        Ok(())
    });
}

/// Shutdown flush progress: 0..=100 percent of the records held in RAM at
/// `flush_all_to_disk` moved to storage, 101 = RAM empty, safe to power off. While a flush
/// is in progress each call first moves one more batch. Without a flush request (never
/// requested, cancelled, or finished), before init, and in RAM-only builds: 101. A storage
/// failure leaves the progress where it was (retried by the next call; the status is in
/// `spool_last_status`).
#[unsafe(no_mangle)]
pub extern "C" fn get_flush_progress() -> u8 {
    call(|st| {
        st.live()?;
        if st.flush.requested {
            flush_step(st)
        } else {
            Ok(101)
        }
    })
    .unwrap_or_else(|e| {
        if e == SpoolStatus::SPOOL_ERR_NOT_INITIALIZED {
            101
        } else {
            peek(|st| st.store.flush_progress_now()).unwrap_or(0)
        }
    })
}

/// `true` when no record is held in RAM (all flushed to storage, or none stored). Before
/// init: `true`.
#[unsafe(no_mangle)]
pub extern "C" fn is_all_ram_empty() -> bool {
    call(|st| {
        st.live()?;
        Ok(st.store.ram_empty())
    })
    .unwrap_or(true)
}

/// Cancels a shutdown flush (ignition back on); what was flushed stays in storage (and is
/// still delivered first), the rest stays in RAM. Before init: no-op, counted.
#[unsafe(no_mangle)]
pub extern "C" fn cancel_memory_flush() {
    let _ = call(|st| {
        st.live()?;
        st.flush.requested = false;
        st.store.flush_cancel();
        Ok(())
    });
}

/// Zeroes the legacy chain descriptor `ds` (`&csd[i].ds`) of a registered csd array whose
/// layout gives `csd_ds_offset` / `csd_ds_size`. The store's data for that entry is not
/// touched (use `reset_csd_entry` to discard it). Any other pointer: no-op, counted.
///
/// # Safety
///
/// `ds` must be NULL or point into memory the caller owns; it is only written when it is
/// exactly `&csd[i].ds` of a registered array.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn imx_init_data_store_entry(ds: *mut DataStoreInfo) {
    let _ = call(|st| {
        if ds.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        // Touches no record: does not trigger the recovery.
        st.ready()?;
        let addr = ds as usize;
        let (idx, entry) = st
            .regs
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.ds_entry(addr).map(|(e, _)| (i, e)))
            .ok_or(SpoolStatus::SPOOL_ERR_NOT_REGISTERED)?;
        st.reg(idx)?.zero_ds(entry);
        Ok(())
    });
}

/// Discards every record of `csd[entry]`'s sensor (counted as dropped in the store stats)
/// and sets its `no_samples` / `no_pending` to 0. `csd` must be the base of a registered
/// csd array. Rejected (no-op, counted): NULL, before init, unregistered, `entry >= count`.
///
/// # Safety
///
/// `csd` must be NULL or the base pointer of a registered csd array that is still alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reset_csd_entry(csd: *mut ControlSensorData, entry: u16) {
    let _ = call(|st| {
        if csd.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.live()?;
        let idx = st.find_csd(csd as usize)?;
        let entry = st.reg(idx)?.entry(entry)?;
        st.enter(idx, entry, true);
        let r = match st.handle_of(idx, entry)? {
            Some(h) => st.store.clear(h),
            None => Ok(()),
        };
        st.settle(idx, entry);
        r
    });
}
