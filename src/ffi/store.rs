//! Adapter between the C boundary and [`crate::spool::Spool`]: the only file of `ffi`
//! that knows the store's Rust API. Everything the C functions need is expressed here in C
//! terms (status codes, `spool_record_t`, `spool_sensor_stats_t`).
//!
//! Profile: the host (`std`) build uses the LINUX profile (1664 sensors, 376 x 64-byte RAM
//! sectors), a `no_std` build the WICED profile (48 sensors, 308 x 32-byte sectors); both
//! drop the oldest unsent data when RAM is full (never pending data) unless they can spill.
//!
//! Storage (`spool_config_t.flash` / `dir`, see `flash.rs`): without it the store is RAM
//! only, the shutdown-flush functions report 101 at once and `process_memory` has no work.
//! With it, `process_memory` spills one batch per call while RAM use is at or above the
//! threshold (the store's own write-path threshold is set to 100 %, so writes only spill
//! when RAM is full, instead of dropping), and, with a durability window
//! (`spool_set_max_unspilled_ms`), moves every RAM record once the window has passed on
//! `process_memory`'s clock; the shutdown flush moves one batch per step,
//! and the records flushed before a reset are recovered once, before the first call that
//! touches records (or by `spool_recover`).
//!
//! Totals the store does not keep (records written, acknowledged, cleared) are counted
//! here; every mutation of the global store goes through this adapter, so they are exact.

use super::flash::{FfiStorage, HAS_STORAGE};
use super::types::{
    FfiResult, SPOOL_KIND_EVT, SPOOL_KIND_TSD, SpoolRecord, SpoolSensorStats, SpoolStatus,
    SpoolStorageStats, SpoolStoreStats,
};
use crate::record::{Kind as StoreKind, SensorKey};
use crate::sensor::OverflowPolicy;
use crate::spool::{Error, SensorHandle, Spool};
use crate::storage::Storage;

#[cfg(feature = "std")]
use crate::profile::{
    LINUX_RATES as RATES, LINUX_SECTORS as SECTORS, LINUX_SENSORS as SENSORS, LinuxPool as Pool,
};
#[cfg(not(feature = "std"))]
use crate::profile::{
    WICED_RATES as RATES, WICED_SECTORS as SECTORS, WICED_SENSORS as SENSORS, WicedPool as Pool,
};

/// Flash-part slots of the store: one per sensor slot when the C library has a storage
/// back end (features `storage-nor` / `storage-files`), none in a RAM-only build.
const SPILL: usize = if HAS_STORAGE { SENSORS } else { 0 };

/// The profile's spool over the C API's storage, with a flash part per sensor slot when
/// the build has storage.
type FfiSpool = Spool<Pool, SENSORS, SECTORS, RATES, FfiStorage, SPILL>;

const fn make_spool() -> FfiSpool {
    Spool::new(
        Pool::new(),
        FfiStorage::None,
        OverflowPolicy::DropOldestUnsent,
    )
}

/// Default spill threshold (percent of RAM sectors), as MM1's `MEMORY_TO_DISK_THRESHOLD`.
const DEFAULT_THRESHOLD_PCT: u8 = 80;

/// Recovery state of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recovery {
    /// Nothing to recover (RAM only), or recovery done.
    Done,
    /// Storage attached, the previous run's records not recovered yet.
    Due,
    /// Recovery failed: the storage was detached (RAM only from then on, the flash or
    /// directory left as it was).
    Failed,
}

/// Sensor kind as the C boundary sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Time series (value only, implicit time).
    Tsd,
    /// Event (UTC time + value).
    Evt,
}

/// Sensor key: upload source + sensor id.
pub(crate) type Key = SensorKey;

/// Native-API handle of a sensor: `(source << 32) | id`, i.e. the key itself, so a handle
/// stays valid for the life of the store and needs no table of its own.
pub(crate) type Handle = u64;

/// The handle of a key.
pub(crate) fn handle_of_key(key: Key) -> Handle {
    (u64::from(key.source) << 32) | u64::from(key.id)
}

fn key_of_handle(h: Handle) -> FfiResult<Key> {
    let source = u8::try_from(h >> 32).map_err(|_| SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR)?;
    // Truncation keeps exactly the low 32 bits, which is the id.
    Ok(SensorKey::new(source, h as u32))
}

fn status(e: Error) -> SpoolStatus {
    match e {
        Error::NoData => SpoolStatus::SPOOL_ERR_NO_DATA,
        Error::UnknownSensor => SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR,
        Error::TableFull | Error::RateTableFull => SpoolStatus::SPOOL_ERR_TABLE_FULL,
        Error::Conflict => SpoolStatus::SPOOL_ERR_CONFLICT,
        Error::AckTooMany => SpoolStatus::SPOOL_ERR_ACK_TOO_MANY,
        Error::Full => SpoolStatus::SPOOL_ERR_FULL,
        Error::Invariant => SpoolStatus::SPOOL_ERR_CORRUPTED,
        Error::Storage => SpoolStatus::SPOOL_ERR_STORAGE,
        Error::NoSpace => SpoolStatus::SPOOL_ERR_NO_SPACE,
        // `Error` is non-exhaustive: a variant added later maps here until it gets a code.
        #[allow(unreachable_patterns)]
        _ => SpoolStatus::SPOOL_ERR_INTERNAL,
    }
}

/// The store-wide counters that move whenever a call may have changed the counters of
/// sensors it cannot name: records lost in storage (eviction by a spill or an
/// acknowledgement mark, damage), sensors added (a late recovery, or entries sharing the
/// new sensor's id), recoveries. Compared after each call (O(1)); when it moved, every
/// registered entry is re-mirrored. (Overflow drops in RAM name their victim: see
/// [`Store::last_drop`].)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Generation {
    lost: u32,
    sensors: usize,
    recovered: u32,
}

impl Generation {
    /// The generation of an empty store.
    pub(crate) const ZERO: Generation = Generation {
        lost: 0,
        sensors: 0,
        recovered: 0,
    };
}

/// The store as seen from the C boundary.
pub(crate) struct Store {
    spool: FfiSpool,
    written: u64,
    acked: u64,
    cleared: u64,
    threshold_pct: u8,
    recovery: Recovery,
    recovered: u32,
}

impl Store {
    /// An empty store (const, so it can live in a `static`).
    pub(crate) const fn new() -> Self {
        Store {
            spool: make_spool(),
            written: 0,
            acked: 0,
            cleared: 0,
            // Only read with storage attached, and `attach` sets it first; 0 keeps the
            // initial store all zero bytes (.bss, and `reset` is a memset).
            threshold_pct: 0,
            recovery: Recovery::Done,
            recovered: 0,
        }
    }

    /// Drops every sensor and record: back to the initial value, in place. The initial
    /// value is all zero bytes (which is also what puts the global store in .bss), so the
    /// assignment of the constant compiles to a `memset` of the store and needs no stack
    /// for a second store (building a fresh value with `make_spool()` staged about 11 KiB
    /// on the stack; the firmware's stack painting measures `spool_init`/`spool_deinit`).
    pub(crate) fn reset(&mut self) {
        *self = const { Store::new() };
    }

    /// Attaches a storage back end (at `spool_init`, to an empty store) and mounts it
    /// (reads only). `threshold_pct` 0 = default. On error nothing is attached.
    pub(crate) fn attach(&mut self, storage: FfiStorage, threshold_pct: u32) -> FfiResult<()> {
        let pct = match threshold_pct {
            0 => DEFAULT_THRESHOLD_PCT,
            1..=100 => threshold_pct as u8,
            _ => return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT),
        };
        let mut storage = storage;
        if !storage.is_persistent() {
            return Ok(());
        }
        storage
            .mount()
            .map_err(|_| SpoolStatus::SPOOL_ERR_STORAGE)?;
        *self.spool.storage_mut() = storage;
        // The write path spills only when RAM is full; `process` spills at `pct`.
        self.spool.set_flush_threshold(100);
        self.threshold_pct = pct;
        self.recovery = Recovery::Due;
        Ok(())
    }

    /// `true` with a storage back end attached.
    pub(crate) fn persistent(&self) -> bool {
        self.spool.storage().is_persistent()
    }

    /// `true` while the previous run's records are still to be recovered.
    pub(crate) fn recovery_due(&self) -> bool {
        self.recovery == Recovery::Due
    }

    /// Recovers the records flushed before the reset into the sensors the store knows now
    /// (once; later calls return the same count). A failure detaches the storage (RAM only
    /// from then on) and returns `SPOOL_ERR_STORAGE`.
    pub(crate) fn recover(&mut self) -> FfiResult<u32> {
        match self.recovery {
            Recovery::Done => return Ok(self.recovered),
            Recovery::Failed => return Err(SpoolStatus::SPOOL_ERR_STORAGE),
            Recovery::Due => {}
        }
        match self.spool.recover_storage() {
            Ok(n) => {
                self.recovery = Recovery::Done;
                self.recovered = n;
                // Recovered records count as written, so the balance keeps holding.
                self.written = self.written.wrapping_add(u64::from(n));
                Ok(n)
            }
            Err(_) => {
                self.recovery = Recovery::Failed;
                *self.spool.storage_mut() = FfiStorage::None;
                Err(SpoolStatus::SPOOL_ERR_STORAGE)
            }
        }
    }

    fn handle(&self, h: Handle) -> FfiResult<SensorHandle> {
        self.spool
            .lookup(key_of_handle(h)?)
            .ok_or(SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR)
    }

    /// Looks a sensor up by key.
    pub(crate) fn find(&self, key: Key) -> Option<Handle> {
        self.spool.lookup(key).map(|_| handle_of_key(key))
    }

    /// Looks a sensor up, registering it if new. `SPOOL_ERR_CONFLICT` if it exists with
    /// another sample rate (TSD rate change, or TSD <-> EVT).
    pub(crate) fn open(&mut self, key: Key, kind: Kind, sample_rate_ms: u32) -> FfiResult<Handle> {
        let rate = match kind {
            Kind::Evt => 0,
            Kind::Tsd => sample_rate_ms.max(1),
        };
        let new = self.spool.lookup(key).is_none();
        self.spool.register(key, rate).map_err(status)?;
        if new && self.recovery == Recovery::Done && self.persistent() {
            self.recover_late(key)?;
        }
        Ok(handle_of_key(key))
    }

    /// Recovery for one sensor registered after the store-wide recovery (a late array,
    /// a changed `csb[i].id`, a later `spool_sensor_open`): the log may still hold that
    /// sensor's records of the previous run, under sequence numbers a fresh sensor would
    /// reuse, so they are recovered into it (as `Spool::recover_storage` does for every
    /// sensor) before it takes any record. Reads the whole log once.
    fn recover_late(&mut self, key: Key) -> FfiResult<()> {
        let h = self
            .spool
            .lookup(key)
            .ok_or(SpoolStatus::SPOOL_ERR_INTERNAL)?;
        let n = self.spool.recover_sensor(h).map_err(status)?;
        self.recovered = self.recovered.wrapping_add(n);
        self.written = self.written.wrapping_add(u64::from(n));
        Ok(())
    }

    /// See [`Generation`].
    pub(crate) fn generation(&self) -> Generation {
        Generation {
            lost: self.spool.spill.lost,
            sensors: self.spool.table.len(),
            recovered: self.recovered,
        }
    }

    /// `(overflow drops so far, key of the latest victim)`, O(1) (`Spool::last_drop`).
    pub(crate) fn last_drop(&self) -> (u8, Option<Key>) {
        self.spool.last_drop()
    }

    /// Makes the last `k` pending records of the sensor unsent again (the firmware lowered
    /// `no_pending` by `k`, MM1's way to undo reads): the next read returns the record at
    /// offset `pending - k`. Built on the public store API: revert every pending record,
    /// then read the first `pending - k` again (O(pending - k)). `k > pending`:
    /// `SPOOL_ERR_INVALID_ARGUMENT`, nothing changes.
    pub(crate) fn unread(&mut self, h: Handle, k: u32) -> FfiResult<()> {
        let sh = self.handle(h)?;
        let pending = self.spool.sensor_stats(sh).map_err(status)?.pending;
        let keep = pending
            .checked_sub(k)
            .ok_or(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT)?;
        self.spool.revert(sh).map_err(status)?;
        for _ in 0..keep {
            self.spool.read(sh).map_err(status)?;
        }
        Ok(())
    }

    /// Appends one record.
    pub(crate) fn write(&mut self, h: Handle, value: u32, time_ms: u64) -> FfiResult<()> {
        let sh = self.handle(h)?;
        self.spool.write(sh, value, time_ms).map_err(status)?;
        self.written = self.written.wrapping_add(1);
        Ok(())
    }

    /// Reads the next unsent record and marks it pending.
    pub(crate) fn read(&mut self, h: Handle) -> FfiResult<SpoolRecord> {
        let sh = self.handle(h)?;
        let kind = self.spool.sensor_stats(sh).map_err(status)?.kind;
        let r = self.spool.read(sh).map_err(status)?;
        Ok(SpoolRecord {
            time_ms: r.time_ms,
            value: r.value,
            kind: match kind {
                StoreKind::Evt => SPOOL_KIND_EVT,
                _ => SPOOL_KIND_TSD,
            },
        })
    }

    /// Acknowledges exactly `n` oldest pending records, or nothing.
    pub(crate) fn ack(&mut self, h: Handle, n: u32) -> FfiResult<()> {
        let sh = self.handle(h)?;
        // Records evicted while pending are already counted lost (dropped).
        let gone = self.spool.evicted_in_flight(sh).map_err(status)?;
        self.with_storage(|sp| sp.ack(sh, n))?;
        self.acked = self.acked.wrapping_add(u64::from(n.saturating_sub(gone)));
        Ok(())
    }

    /// Makes every pending record unsent again.
    pub(crate) fn revert(&mut self, h: Handle) -> FfiResult<()> {
        let sh = self.handle(h)?;
        self.spool.revert(sh).map_err(status)?;
        Ok(())
    }

    /// Discards every record of the sensor (counted in `dropped`).
    pub(crate) fn clear(&mut self, h: Handle) -> FfiResult<()> {
        let sh = self.handle(h)?;
        let n = self.with_storage(|sp| sp.clear(sh))?;
        self.cleared = self.cleared.wrapping_add(u64::from(n));
        Ok(())
    }

    /// The key of a handle, if the sensor exists.
    pub(crate) fn key_of(&self, h: Handle) -> FfiResult<Key> {
        Ok(self.handle(h)?.key())
    }

    /// Per-sensor counters.
    pub(crate) fn sensor_stats(&self, h: Handle) -> FfiResult<SpoolSensorStats> {
        let s = self.spool.sensor_stats(self.handle(h)?).map_err(status)?;
        Ok(SpoolSensorStats {
            stored: s.count,
            pending: s.pending,
            available: s.available,
            lost: u32::from(s.lost),
            sample_rate_ms: s.sample_rate_ms,
            kind: match s.kind {
                StoreKind::Evt => SPOOL_KIND_EVT,
                _ => SPOOL_KIND_TSD,
            },
        })
    }

    /// Records of the sensor held only in RAM (what a power cut takes now).
    pub(crate) fn in_ram(&self, h: Handle) -> FfiResult<u32> {
        let s = self.spool.sensor_stats(self.handle(h)?).map_err(status)?;
        Ok(s.in_ram)
    }

    /// Whole-store counters.
    pub(crate) fn stats(&self) -> SpoolStoreStats {
        let s = self.spool.stats();
        SpoolStoreStats {
            sensors: s.sensors,
            stored: u64::from(s.records),
            pending: u64::from(s.pending),
            written: self.written,
            acked: self.acked,
            dropped: u64::from(s.dropped)
                .wrapping_add(self.cleared)
                .wrapping_add(u64::from(self.spool.spill_stats().lost)),
            refused: u64::from(s.rejected),
            sectors_used: s.sectors_used,
            sectors_total: s.sectors_total,
        }
    }

    /// The store's invariant check plus the balance `written == acked + stored + dropped`.
    pub(crate) fn check(&self) -> FfiResult<()> {
        self.spool
            .check()
            .map_err(|_| SpoolStatus::SPOOL_ERR_CORRUPTED)?;
        let s = self.stats();
        if s.written != s.acked.wrapping_add(s.stored).wrapping_add(s.dropped) {
            return Err(SpoolStatus::SPOOL_ERR_CORRUPTED);
        }
        Ok(())
    }

    /// Sets the durability window (`Spool::set_max_unspilled_ms`): 0 turns it off; any
    /// other value needs storage (`SPOOL_ERR_UNSUPPORTED` without: nothing could be made
    /// durable, and the call changes nothing).
    pub(crate) fn set_max_unspilled_ms(&mut self, window_ms: u32) -> FfiResult<()> {
        if window_ms != 0 && !self.persistent() {
            return Err(SpoolStatus::SPOOL_ERR_UNSUPPORTED);
        }
        self.spool.set_max_unspilled_ms(window_ms);
        Ok(())
    }

    /// Periodic work: the durability window's tick (`Spool::tick` with the caller's ms
    /// clock: when the window has expired, every RAM record goes to storage), then one
    /// threshold spill batch when RAM use is at or above the threshold. `Ok(true)` if
    /// records moved (counters of some sensors changed). RAM only: nothing.
    pub(crate) fn process(&mut self, now_ms: u32) -> FfiResult<bool> {
        if !self.persistent() {
            return Ok(false);
        }
        if self.with_storage(|sp| sp.tick(u64::from(now_ms)))? > 0 {
            return Ok(true);
        }
        let s = self.spool.stats();
        let used = u64::from(s.sectors_used) * 100;
        let limit = u64::from(self.threshold_pct) * u64::from(s.sectors_total);
        if used < limit {
            return Ok(false);
        }
        self.with_storage(|sp| sp.flush()).map(|n| n > 0)
    }

    /// Runs a spool call that may use the storage: its error as [`status`] gives it,
    /// except `SPOOL_ERR_NO_SPACE` when the storage failed during the call because
    /// its filesystem is (nearly) full.
    fn with_storage<T>(
        &mut self,
        f: impl FnOnce(&mut FfiSpool) -> Result<T, Error>,
    ) -> FfiResult<T> {
        let mark = self.spool.storage().error_mark();
        f(&mut self.spool).map_err(|e| {
            if e == Error::Storage && self.spool.storage().no_space_since(mark) {
                SpoolStatus::SPOOL_ERR_NO_SPACE
            } else {
                status(e)
            }
        })
    }

    /// Starts the shutdown flush. RAM only: nothing can be made persistent.
    pub(crate) fn flush_start(&mut self) {
        if self.persistent() {
            self.spool.flush_all_start();
        }
    }

    /// One step of the shutdown flush (one batch): progress 0..=100, 101 = RAM empty, safe
    /// to power off. RAM only: always 101 (nothing can be made persistent).
    pub(crate) fn flush_step(&mut self) -> FfiResult<u8> {
        if !self.persistent() {
            return Ok(101);
        }
        let p = self.with_storage(|sp| sp.flush_all_step())?;
        if p == 101 {
            self.spool.cancel_flush();
        }
        Ok(p)
    }

    /// Shutdown-flush progress without doing any work (101 when RAM is empty).
    pub(crate) fn flush_progress_now(&self) -> u8 {
        if self.persistent() {
            self.spool.flush_progress()
        } else {
            101
        }
    }

    /// Cancels the shutdown flush (what was flushed stays flushed).
    pub(crate) fn flush_cancel(&mut self) {
        self.spool.cancel_flush();
    }

    /// `true` when no record is held in RAM (records in storage do not count).
    pub(crate) fn ram_empty(&self) -> bool {
        self.spool
            .stats()
            .records
            .wrapping_sub(self.spool.spill_stats().in_storage)
            == 0
    }

    /// Storage counters.
    pub(crate) fn storage_stats(&self) -> SpoolStorageStats {
        let sp = self.spool.spill_stats();
        let st = self.spool.storage();
        let io = st.stats();
        #[cfg(feature = "storage-nor")]
        let flash = matches!(st, FfiStorage::Flash(_));
        #[cfg(not(feature = "storage-nor"))]
        let flash = false;
        SpoolStorageStats {
            kind: st.kind(),
            recovered: match self.recovery {
                Recovery::Done => u32::from(self.persistent()),
                Recovery::Due => 0,
                Recovery::Failed => 2,
            },
            recovered_records: self.recovered,
            in_storage: sp.in_storage,
            flushed: sp.flushed,
            batches: sp.batches,
            errors: sp.errors,
            lost: sp.lost,
            sectors: if flash { io.sectors } else { 0 },
            sector_size: if flash { io.sector_size } else { 0 },
        }
    }

    /// Number of sensors in the store (for `spool_dump`).
    pub(crate) fn sensor_count(&self) -> usize {
        self.spool.sensors().count()
    }

    /// Key and counters of the `i`-th sensor in key order (for `spool_dump`).
    pub(crate) fn sensor_at(&self, i: usize) -> Option<(Key, SpoolSensorStats)> {
        // O(1): `spool_dump` asks for every index in turn.
        let key = self.spool.sensor_at(i)?.key();
        Some((key, self.sensor_stats(handle_of_key(key)).ok()?))
    }

    /// `(payload bytes of the records in RAM, bytes of the RAM sectors holding them)`:
    /// 4 bytes per TSD sample, 8 per event; sectors hold nothing but records (for the MM2
    /// `space_efficiency_percent`).
    pub(crate) fn payload(&self) -> (u64, u64) {
        let mut bytes = 0u64;
        for h in self.spool.sensors() {
            if let Ok(s) = self.spool.sensor_stats(h) {
                let size = match s.kind {
                    StoreKind::Evt => 8,
                    _ => 4,
                };
                bytes = bytes.saturating_add(u64::from(s.in_ram).saturating_mul(size));
            }
        }
        let sector = u64::from(FfiSpool::records_per_sector(StoreKind::Tsd)).saturating_mul(4);
        let used = u64::from(self.spool.stats().sectors_used).saturating_mul(sector);
        (bytes, used)
    }
}

// Filesystem calls miri does not model (`statvfs`): native test runs only.
#[cfg(all(test, feature = "storage-files", not(miri)))]
mod tests {
    use super::*;
    use crate::storage::FileStorage;
    use crate::storage::file::FileConfig;

    /// A spool directory on a filesystem with less free space than the reserve:
    /// `process_memory`'s flush and the shutdown flush report `SPOOL_ERR_NO_SPACE`
    /// (not the generic storage error), nothing is written, and every record is
    /// still delivered from RAM, in order.
    #[test]
    fn a_full_filesystem_is_reported_as_no_space_and_records_stay_in_ram() {
        let dir = std::env::temp_dir().join(format!("spool-no-space-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = FileConfig::new(&dir);
        // More than any filesystem has free (1 EiB): the guard refuses every new file.
        cfg.free_space_reserve = 1 << 60;
        let files = FileStorage::new(cfg).expect("file storage");
        let mut store = std::boxed::Box::new(Store::new());
        store.attach(FfiStorage::Files(files), 50).expect("attach");
        assert_eq!(store.recover(), Ok(0));
        let h = store
            .open(SensorKey::new(1, 7), Kind::Evt, 0)
            .expect("open");
        let mut n = 0u32;
        let refused = loop {
            match store.process(0) {
                Ok(false) => {}
                other => break other,
            }
            assert!(n < 100_000, "RAM never reached the threshold");
            store.write(h, n, u64::from(n) * 1000).expect("write");
            n += 1;
        };
        assert_eq!(refused, Err(SpoolStatus::SPOOL_ERR_NO_SPACE));
        store.flush_start();
        assert_eq!(store.flush_step(), Err(SpoolStatus::SPOOL_ERR_NO_SPACE));
        store.flush_cancel();
        let st = store.storage_stats();
        assert_eq!((st.flushed, st.in_storage), (0, 0));
        assert!(st.errors >= 2, "refusals counted: {}", st.errors);
        for k in 0..n {
            let r = store.read(h).expect("record in RAM");
            assert_eq!((r.value, r.time_ms), (k, u64::from(k) * 1000));
        }
        assert_eq!(store.read(h), Err(SpoolStatus::SPOOL_ERR_NO_DATA));
        eprintln!("no space: {n} records kept in RAM, {} refusals", st.errors);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
