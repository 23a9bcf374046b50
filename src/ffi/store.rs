//! Adapter between the C boundary and [`crate::spool::Spool`]: the only file of `ffi`
//! that knows the store's Rust API. Everything the C functions need is expressed here in C
//! terms (status codes, `spool_record_t`, `spool_sensor_stats_t`).
//!
//! Profile: the host (`std`) build uses the LINUX profile (1664 sensors, 376 x 64-byte RAM
//! sectors), a `no_std` build the WICED profile (48 sensors, 308 x 32-byte sectors); both
//! drop the oldest unsent data when RAM is full (never pending data). The store is RAM
//! only in this version (`RamOnly` storage): the shutdown-flush functions report 101 at
//! once and `process_memory` has no spill work to do.
//!
//! Totals the store does not keep (records written, acknowledged, cleared) are counted
//! here; every mutation of the global store goes through this adapter, so they are exact.

use super::types::{
    FfiResult, SPOOL_KIND_EVT, SPOOL_KIND_TSD, SpoolRecord, SpoolSensorStats, SpoolStatus,
    SpoolStoreStats,
};
use crate::record::{Kind as StoreKind, SensorKey};
use crate::spool::{Error, SensorHandle};

#[cfg(feature = "std")]
type FfiSpool = crate::profile::LinuxSpool;
#[cfg(feature = "std")]
const fn make_spool() -> FfiSpool {
    crate::profile::linux()
}
#[cfg(not(feature = "std"))]
type FfiSpool = crate::profile::WicedSpool;
#[cfg(not(feature = "std"))]
const fn make_spool() -> FfiSpool {
    crate::profile::wiced()
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
        // `Error` is non-exhaustive: a variant added later maps here until it gets a code.
        #[allow(unreachable_patterns)]
        _ => SpoolStatus::SPOOL_ERR_INTERNAL,
    }
}

/// The store as seen from the C boundary.
pub(crate) struct Store {
    spool: FfiSpool,
    written: u64,
    acked: u64,
    cleared: u64,
}

impl Store {
    /// An empty store (const, so it can live in a `static`).
    pub(crate) const fn new() -> Self {
        Store {
            spool: make_spool(),
            written: 0,
            acked: 0,
            cleared: 0,
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
        self.spool.register(key, rate).map_err(status)?;
        Ok(handle_of_key(key))
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
        self.spool.ack(sh, n).map_err(status)?;
        self.acked = self.acked.wrapping_add(u64::from(n));
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
        let n = self.spool.clear(sh).map_err(status)?;
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

    /// Whole-store counters.
    pub(crate) fn stats(&self) -> SpoolStoreStats {
        let s = self.spool.stats();
        SpoolStoreStats {
            sensors: s.sensors,
            stored: u64::from(s.records),
            pending: u64::from(s.pending),
            written: self.written,
            acked: self.acked,
            dropped: u64::from(s.dropped).wrapping_add(self.cleared),
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

    /// Periodic work; `true` if counters of any sensor may have changed. RAM only: none.
    pub(crate) fn process(&mut self, _now_ms: u32) -> bool {
        false
    }

    /// Starts the shutdown flush. RAM only: nothing can be made persistent.
    pub(crate) fn flush_start(&mut self) {}

    /// Shutdown flush progress, 0..=100, 101 = safe to power off. RAM only: always 101.
    pub(crate) fn flush_progress(&self) -> u8 {
        101
    }

    /// Cancels the shutdown flush.
    pub(crate) fn flush_cancel(&mut self) {}

    /// `true` when no record is held in RAM.
    pub(crate) fn ram_empty(&self) -> bool {
        self.spool.stats().records == 0
    }
}
