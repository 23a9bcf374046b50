//! The native C API for new code: init / registration / handles, and
//! write / read / ack / revert with status codes and out-parameters written only on success.

#[cfg(feature = "storage-nor")]
use super::flash::CFlash;
use super::flash::FfiStorage;
use super::state::{Gps, call, call_uncounted, peek};
use super::store::{Key, Kind};
use super::types::{
    ControlSensorBlock, ControlSensorData, SPOOL_ABI_VERSION, SpoolConfig, SpoolConfigV1,
    SpoolGpsConfig, SpoolLayout, SpoolMirrorStats, SpoolRecord, SpoolSensor, SpoolSensorStats,
    SpoolStats, SpoolStatus, SpoolStorageStats, status_of,
};
use core::ptr::NonNull;

/// Fills `*out` with the default configuration (`abi_version = SPOOL_ABI_VERSION`, no
/// flags, no clock, no storage (`flash` callbacks and `dir` NULL), default threshold).
/// Works before `spool_init`; does not touch the store (the call is counted).
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_config_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_config_default(out: *mut SpoolConfig) -> SpoolStatus {
    status_of(call(|_| {
        if out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        let cfg = SpoolConfig::default_config();
        // SAFETY: `out` is non-NULL and valid for writes per the contract.
        unsafe { out.write_unaligned(cfg) };
        Ok(())
    }))
}

/// Initialises the global store. Call once before anything else (a second call returns
/// `SPOOL_ERR_ALREADY_INITIALIZED` and changes nothing). `SPOOL_ERR_INVALID_ARGUMENT` for a
/// wrong `abi_version`, unknown flags, `flush_threshold_pct > 100`, both `flash` and `dir`,
/// or `dir` on a `no_std` build (or not UTF-8 / empty); `SPOOL_ERR_BAD_GEOMETRY` for a
/// `flash` region outside the rules of `spool_flash_t`; `SPOOL_ERR_STORAGE` when the storage
/// cannot be mounted (flash read error, directory not usable). On error the library stays
/// uninitialized.
///
/// With storage, `spool_init` only mounts it (reads, never writes). The records of the
/// previous run are recovered into the sensors known at that point, once: by
/// `spool_recover`, or else automatically by the first call that touches records (legacy
/// write / read / erase / revert / `process_memory` / flush functions, native
/// write / read / ack / revert / stats / check). So: `spool_init`, then
/// `spool_register_sensors` for every array pair (and `spool_sensor_open` for native
/// sensors), then data calls. A sensor the store first meets later (an array registered
/// after that, a changed `csb[i].id`, a later `spool_sensor_open`) gets its records of the
/// previous run when it is registered (one more pass over the log, at its first data call
/// or open).
///
/// # Safety
///
/// `config` must be NULL or point at a valid `spool_config_t` of its `abi_version` (an ABI-1
/// config is only read up to `utc_now`); `config->utc_now` and the `flash` callbacks, if not
/// NULL, must stay callable (with `flash.ctx`) from every thread that calls the library,
/// until `spool_deinit`; `config->dir` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_init(config: *const SpoolConfig) -> SpoolStatus {
    status_of(call(|st| {
        if config.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        if st.initialized {
            return Err(SpoolStatus::SPOOL_ERR_ALREADY_INITIALIZED);
        }
        // SAFETY: non-NULL and valid per the contract; every version starts with the
        // ABI-1 fields, read by value (unaligned-safe copy).
        let base = unsafe { config.cast::<SpoolConfigV1>().read_unaligned() };
        let (storage, threshold) = match base.abi_version {
            1 => (FfiStorage::None, 0),
            2 | SPOOL_ABI_VERSION => {
                // SAFETY: an ABI-2 or ABI-3 config is a whole `spool_config_t` (the same
                // struct) per the contract.
                let cfg = unsafe { config.read_unaligned() };
                // SAFETY: `cfg.dir` is NULL or NUL-terminated per the contract.
                (unsafe { storage_of(&cfg) }?, cfg.flush_threshold_pct)
            }
            _ => return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT),
        };
        if threshold > 100 {
            return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT);
        }
        st.init(&base, storage, threshold)
    }))
}

/// The storage back end an ABI-2 config asks for (not mounted).
///
/// # Safety
///
/// `cfg.dir` must be NULL or point at a NUL-terminated string.
/// A storage this archive was built without (no `storage-nor` / `storage-files`, see
/// `spool_features`) is `SPOOL_ERR_UNSUPPORTED`.
unsafe fn storage_of(cfg: &SpoolConfig) -> Result<FfiStorage, SpoolStatus> {
    #[cfg(feature = "storage-nor")]
    let flash = CFlash::new(&cfg.flash)?;
    #[cfg(not(feature = "storage-nor"))]
    let flash: Option<core::convert::Infallible> =
        match (cfg.flash.read, cfg.flash.program, cfg.flash.erase) {
            (None, None, None) => None,
            _ => return Err(SpoolStatus::SPOOL_ERR_UNSUPPORTED),
        };
    match (flash, cfg.dir.is_null()) {
        #[cfg(feature = "storage-nor")]
        (Some(f), true) => FfiStorage::flash(f),
        (None, true) => Ok(FfiStorage::None),
        (Some(_), false) => Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT),
        #[cfg(feature = "storage-files")]
        // SAFETY: non-NULL and NUL-terminated per the contract.
        (None, false) => unsafe { FfiStorage::files(cfg.dir) },
        #[cfg(not(feature = "storage-files"))]
        (None, false) => Err(SpoolStatus::SPOOL_ERR_UNSUPPORTED),
    }
}

/// Recovers, now, the records the storage holds from before the reset (see `spool_init`)
/// into the sensors known at this point: registered arrays' entries and opened native
/// sensors (sensors registered later are recovered one by one when they are registered).
/// They are delivered first, oldest first, before newer records; `csd` mirrors are
/// updated. Runs once: later calls (and calls without storage) do nothing. `*recovered`
/// (may be NULL) gets the number of unacknowledged records recovered so far (this call,
/// plus sensors recovered one by one since). `SPOOL_ERR_STORAGE` if the storage could not
/// be read: it is then detached (RAM only from then on; the flash or directory is left as
/// it was).
///
/// # Safety
///
/// `recovered` must be NULL or valid for writing one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_recover(recovered: *mut u32) -> SpoolStatus {
    status_of(call(|st| {
        st.ready()?;
        let n = st.recover()?;
        if !recovered.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { recovered.write_unaligned(n) };
        }
        Ok(())
    }))
}

/// Copies the storage counters into `*out` (RAM only: `kind == SPOOL_STORAGE_NONE`, the
/// rest 0). Does not trigger recovery.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_storage_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_storage_stats(out: *mut SpoolStorageStats) -> SpoolStatus {
    status_of(call(|st| {
        if out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.ready()?;
        let s = st.store.storage_stats();
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write_unaligned(s) };
        Ok(())
    }))
}

/// Returns the library to its state before `spool_init`: discards every record, every
/// registration, the GPS configuration and all counters (this call is not counted). The C
/// block pool is separate and keeps its blocks. Meant for tests and for a firmware
/// that restarts the data subsystem; afterwards `spool_init` may be called again.
/// Always `SPOOL_OK` (also before init), except `SPOOL_ERR_BUSY` from inside a callback.
#[unsafe(no_mangle)]
pub extern "C" fn spool_deinit() -> SpoolStatus {
    status_of(call_uncounted(|st| {
        st.reset();
        Ok(())
    }))
}

/// Registers a firmware array pair: `count` elements of `csb` (read: `id`, `sample_rate`) and
/// `csd` (written: `no_samples`, `no_pending`, optional `last_value` / `last_sample_time`),
/// described by `layout`, all under upload `source` (sensor key = (source, `csb[i].id`)).
/// The arrays must not overlap each other or another registration. Mirrors are written at
/// once (0 / 0 for sensors the store does not hold).
///
/// Errors: `SPOOL_ERR_NULL`, `SPOOL_ERR_NOT_INITIALIZED`, `SPOOL_ERR_INVALID_ARGUMENT`
/// (`count == 0`), `SPOOL_ERR_BAD_LAYOUT`, `SPOOL_ERR_OVERLAP`, `SPOOL_ERR_REGISTRY_FULL`.
///
/// # Safety
///
/// `csb` must be valid for reads and `csd` for reads and writes of `count` elements of the
/// sizes in `layout`, and both must stay alive and in place until `spool_deinit`.
/// `layout` must be NULL or point at a valid `spool_layout_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_register_sensors(
    csb: *const ControlSensorBlock,
    csd: *mut ControlSensorData,
    count: u16,
    layout: *const SpoolLayout,
    source: u8,
) -> SpoolStatus {
    status_of(call(|st| {
        let (Some(csb), Some(csd)) = (
            NonNull::new(csb.cast_mut().cast::<u8>()),
            NonNull::new(csd.cast::<u8>()),
        ) else {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        };
        if layout.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        // SAFETY: non-NULL and valid per the contract; copied by value.
        let layout = unsafe { layout.read_unaligned() };
        st.register(csb, csd, count, &layout, source)
    }))
}

/// Sets (or, with `get_position == NULL`, disables) GPS co-logging for legacy
/// `write_tsd_evt(..., add_gps_location = true)`. Latitude and longitude ids are required
/// when a callback is given.
///
/// # Safety
///
/// `config` must be NULL or point at a valid `spool_gps_config_t`; its callback must stay
/// callable, with its `ctx`, from every thread that calls the library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_set_gps(config: *const SpoolGpsConfig) -> SpoolStatus {
    status_of(call(|st| {
        if config.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.ready()?;
        // SAFETY: non-NULL and valid per the contract; copied by value.
        let cfg = unsafe { config.read_unaligned() };
        if cfg.get_position.is_none() {
            st.gps = None;
            return Ok(());
        }
        if cfg.latitude_id == super::types::SPOOL_ID_NONE
            || cfg.longitude_id == super::types::SPOOL_ID_NONE
        {
            return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT);
        }
        st.gps = Some(Gps(cfg));
        Ok(())
    }))
}

/// Opens (registers if new) the sensor (`source`, `id`): TSD when `sample_rate_ms != 0`,
/// EVT otherwise, and stores its handle in `*out`. Legacy entries with the same source and
/// `csb[i].id` share the sensor. `SPOOL_ERR_CONFLICT` if it exists with the other kind.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_sensor_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_sensor_open(
    source: u8,
    id: u32,
    sample_rate_ms: u32,
    out: *mut SpoolSensor,
) -> SpoolStatus {
    status_of(call(|st| {
        if out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.ready()?;
        let kind = if sample_rate_ms == 0 {
            Kind::Evt
        } else {
            Kind::Tsd
        };
        let h = st.store.open(Key { source, id }, kind, sample_rate_ms)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write_unaligned(h) };
        Ok(())
    }))
}

/// Appends one record (`time_ms`: UTC ms for EVT; for TSD the sample time, used as the
/// series' base time when the store needs one).
#[unsafe(no_mangle)]
pub extern "C" fn spool_write(sensor: SpoolSensor, value: u32, time_ms: u64) -> SpoolStatus {
    status_of(call(|st| {
        st.live()?;
        st.enter_handle(sensor);
        let r = st.store.write(sensor, value, time_ms);
        st.settle_handle(sensor);
        r
    }))
}

/// Reads the next unsent record into `*out` and makes it pending. `SPOOL_ERR_NO_DATA` when
/// every stored record is already pending (or none is stored); `*out` is untouched then.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_record_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_read(sensor: SpoolSensor, out: *mut SpoolRecord) -> SpoolStatus {
    status_of(call(|st| {
        if out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.live()?;
        st.enter_handle(sensor);
        let rec = st.store.read(sensor);
        if let Ok(rec) = rec {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write_unaligned(rec) };
        }
        st.settle_handle(sensor);
        rec.map(|_| ())
    }))
}

/// Acknowledges (erases) exactly the `count` oldest pending records, or nothing
/// (`SPOOL_ERR_ACK_TOO_MANY`).
#[unsafe(no_mangle)]
pub extern "C" fn spool_ack(sensor: SpoolSensor, count: u32) -> SpoolStatus {
    status_of(call(|st| {
        st.live()?;
        st.enter_handle(sensor);
        let r = st.store.ack(sensor, count);
        st.settle_handle(sensor);
        r
    }))
}

/// Makes every pending record of the sensor unsent again (lossless rollback).
#[unsafe(no_mangle)]
pub extern "C" fn spool_revert(sensor: SpoolSensor) -> SpoolStatus {
    status_of(call(|st| {
        st.live()?;
        st.enter_handle(sensor);
        let r = st.store.revert(sensor);
        st.settle_handle(sensor);
        r
    }))
}

/// Copies the sensor's counters into `*out`.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_sensor_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_sensor_stats(
    sensor: SpoolSensor,
    out: *mut SpoolSensorStats,
) -> SpoolStatus {
    status_of(call(|st| {
        if out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.live()?;
        let s = st.store.sensor_stats(sensor)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write_unaligned(s) };
        Ok(())
    }))
}

/// Writes to `*out` how many of the sensor's records are held only in RAM: what a
/// power cut would take now. Every other record of the sensor is in storage or
/// acknowledged (the durability signal of the native API; with RAM-only storage every
/// stored record counts). A threshold spill moves records out of RAM; a failed one
/// leaves them and is counted in `spool_storage_stats`. `SPOOL_ERR_NULL`,
/// `SPOOL_ERR_UNKNOWN_SENSOR`.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_sensor_in_ram(sensor: SpoolSensor, out: *mut u32) -> SpoolStatus {
    status_of(call(|st| {
        if out.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        st.live()?;
        let n = st.store.in_ram(sensor)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write_unaligned(n) };
        Ok(())
    }))
}

/// Sets the durability window: the longest time, in ms of the clock passed to
/// `process_memory(current_time)` (or MM2's `process_memory_manager`), that a record
/// stays in RAM only. Once that much time has passed since `process_memory` last saw RAM
/// empty, the next call moves every record held in RAM to storage, so a power cut without
/// the shutdown flush loses at most the records written in the last `window_ms` plus one
/// `process_memory` interval (`spool_sensor_in_ram` says how many that is now). Cost: one
/// spill of everything in RAM per window while data keeps coming, even records about to
/// be acknowledged (flash wear measured in docs/storage.md).
/// 0 (the default) turns it off: records then reach storage only at
/// `flush_threshold_pct`, when RAM is full, and in the shutdown flush.
///
/// Errors: `SPOOL_ERR_NOT_INITIALIZED`; `SPOOL_ERR_UNSUPPORTED` for a non-zero window
/// without storage (RAM only: nothing can be made durable; nothing changes).
#[unsafe(no_mangle)]
pub extern "C" fn spool_set_max_unspilled_ms(window_ms: u32) -> SpoolStatus {
    status_of(call(|st| {
        st.ready()?;
        st.store.set_max_unspilled_ms(window_ms)
    }))
}

/// Copies the store and boundary counters into `*out`. This call itself is not counted
/// in `out->ffi.calls` (so two snapshots around a rejected call differ by exactly that call).
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_stats(out: *mut SpoolStats) -> SpoolStatus {
    if out.is_null() {
        let _ = call(|_| Err::<(), _>(SpoolStatus::SPOOL_ERR_NULL));
        return SpoolStatus::SPOOL_ERR_NULL;
    }
    let r = peek(|st| {
        st.ready()?;
        Ok(SpoolStats {
            store: st.store.stats(),
            ffi: st.ffi,
        })
    });
    match r {
        Ok(Ok(s)) => {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write_unaligned(s) };
            SpoolStatus::SPOOL_OK
        }
        Ok(Err(e)) | Err(e) => {
            let _ = call(|_| Err::<(), _>(e));
            e
        }
    }
}

/// Runs the store's invariant check (`erased <= read <= written` per sensor, counters
/// balancing, pool bitmaps). `SPOOL_ERR_CORRUPTED` if anything is wrong.
#[unsafe(no_mangle)]
pub extern "C" fn spool_check() -> SpoolStatus {
    status_of(call(|st| {
        st.live()?;
        st.store.check()
    }))
}

/// Status of the most recent counted call from any thread (lets firmware inspect why a
/// `void` legacy call was a no-op). Works before init; not itself counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_last_status() -> SpoolStatus {
    peek(|st| st.last_status).unwrap_or(SpoolStatus::SPOOL_ERR_BUSY)
}

/// Copies the mirror counters into `*out` (see `spool_mirror_stats_t`: firmware-lowered
/// `no_pending` values honoured, values refused, full refreshes). Not counted as a call.
/// `SPOOL_ERR_NULL`, `SPOOL_ERR_NOT_INITIALIZED`.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one `spool_mirror_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_mirror_stats(out: *mut SpoolMirrorStats) -> SpoolStatus {
    if out.is_null() {
        let _ = call(|_| Err::<(), _>(SpoolStatus::SPOOL_ERR_NULL));
        return SpoolStatus::SPOOL_ERR_NULL;
    }
    match peek(|st| st.ready().map(|()| st.mirror_stats)) {
        Ok(Ok(s)) => {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write_unaligned(s) };
            SpoolStatus::SPOOL_OK
        }
        Ok(Err(e)) | Err(e) => {
            let _ = call(|_| Err::<(), _>(e));
            e
        }
    }
}
