//! Adapter between the C boundary and the store: the only file of `ffi` that knows the
//! store's Rust API. Everything the C functions need is expressed here in C terms
//! (status codes, `SpoolRecord`, `SpoolSensorStats`).
//!
//! PROVISIONAL: until the `spool` module is merged this is a small fixed-capacity
//! in-module store with the same semantics (erased <= read <= written per sensor,
//! drop-oldest-unsent overflow, RAM only), so the C boundary can be built and tested.

use super::types::{
    FfiResult, SPOOL_KIND_EVT, SPOOL_KIND_TSD, SpoolRecord, SpoolSensorStats, SpoolStatus,
    SpoolStoreStats,
};
use heapless::{Deque, Vec};

/// Maximum number of sensors.
const MAX_SENSORS: usize = 48;
/// Records per sensor.
const RECORDS: usize = 128;

/// Sensor kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Time series (value only, implicit time).
    Tsd,
    /// Event (UTC time + value).
    Evt,
}

/// Sensor key: upload source + sensor id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    /// Upload source given at registration.
    pub source: u8,
    /// `csb[entry].id`.
    pub id: u32,
}

/// Handle of a sensor (index + 1; 0 is never valid).
pub(crate) type Handle = u32;

struct Sensor {
    key: Key,
    kind: Kind,
    recs: Deque<(u32, u64), RECORDS>,
    pending: usize,
    written: u64,
    acked: u64,
    dropped: u64,
}

/// The store as seen from the C boundary.
pub(crate) struct Store {
    sensors: Vec<Sensor, MAX_SENSORS>,
    refused: u64,
    dropped_total: u64,
}

impl Store {
    /// An empty store (const, so it can live in a `static`).
    pub(crate) const fn new() -> Self {
        Store {
            sensors: Vec::new(),
            refused: 0,
            dropped_total: 0,
        }
    }

    /// Drops every sensor and record.
    pub(crate) fn reset(&mut self) {
        self.sensors.clear();
        self.refused = 0;
        self.dropped_total = 0;
    }

    fn get(&self, h: Handle) -> FfiResult<&Sensor> {
        let i = usize::try_from(h.wrapping_sub(1))
            .map_err(|_| SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR)?;
        self.sensors
            .get(i)
            .ok_or(SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR)
    }

    fn get_mut(&mut self, h: Handle) -> FfiResult<&mut Sensor> {
        let i = usize::try_from(h.wrapping_sub(1))
            .map_err(|_| SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR)?;
        self.sensors
            .get_mut(i)
            .ok_or(SpoolStatus::SPOOL_ERR_UNKNOWN_SENSOR)
    }

    /// Looks a sensor up by key.
    pub(crate) fn find(&self, key: Key) -> Option<Handle> {
        let i = self.sensors.iter().position(|s| s.key == key)?;
        u32::try_from(i).ok().map(|i| i.wrapping_add(1))
    }

    /// Looks a sensor up, registering it if new; fails on a kind mismatch.
    pub(crate) fn open(&mut self, key: Key, kind: Kind, _sample_rate_ms: u32) -> FfiResult<Handle> {
        if let Some(h) = self.find(key) {
            return if self.get(h)?.kind == kind {
                Ok(h)
            } else {
                Err(SpoolStatus::SPOOL_ERR_KIND_MISMATCH)
            };
        }
        self.sensors
            .push(Sensor {
                key,
                kind,
                recs: Deque::new(),
                pending: 0,
                written: 0,
                acked: 0,
                dropped: 0,
            })
            .map_err(|_| SpoolStatus::SPOOL_ERR_TABLE_FULL)?;
        u32::try_from(self.sensors.len()).map_err(|_| SpoolStatus::SPOOL_ERR_INTERNAL)
    }

    /// Appends one record.
    pub(crate) fn write(&mut self, h: Handle, value: u32, time_ms: u64) -> FfiResult<()> {
        let s = self.get_mut(h)?;
        if s.recs.is_full() {
            if s.pending >= s.recs.len() {
                self.refused = self.refused.wrapping_add(1);
                return Err(SpoolStatus::SPOOL_ERR_FULL);
            }
            // Drop the oldest unsent record: rotate it out from behind the pending ones.
            let mut kept: Vec<(u32, u64), RECORDS> = Vec::new();
            for _ in 0..s.pending {
                if let Some(r) = s.recs.pop_front() {
                    let _ = kept.push(r);
                }
            }
            let _ = s.recs.pop_front();
            while let Some(r) = kept.pop() {
                let _ = s.recs.push_front(r);
            }
            s.dropped = s.dropped.wrapping_add(1);
            self.dropped_total = self.dropped_total.wrapping_add(1);
        }
        let s = self.get_mut(h)?;
        s.recs
            .push_back((value, time_ms))
            .map_err(|_| SpoolStatus::SPOOL_ERR_INTERNAL)?;
        s.written = s.written.wrapping_add(1);
        Ok(())
    }

    /// Reads the next unsent record and marks it pending.
    pub(crate) fn read(&mut self, h: Handle) -> FfiResult<SpoolRecord> {
        let s = self.get_mut(h)?;
        let (value, time_ms) = *s
            .recs
            .iter()
            .nth(s.pending)
            .ok_or(SpoolStatus::SPOOL_ERR_NO_DATA)?;
        s.pending = s.pending.saturating_add(1);
        Ok(SpoolRecord {
            time_ms,
            value,
            kind: match s.kind {
                Kind::Tsd => SPOOL_KIND_TSD,
                Kind::Evt => SPOOL_KIND_EVT,
            },
        })
    }

    /// Acknowledges exactly `n` oldest pending records, or nothing.
    pub(crate) fn ack(&mut self, h: Handle, n: u32) -> FfiResult<()> {
        let s = self.get_mut(h)?;
        let n = usize::try_from(n).map_err(|_| SpoolStatus::SPOOL_ERR_ACK_TOO_MANY)?;
        if n > s.pending {
            return Err(SpoolStatus::SPOOL_ERR_ACK_TOO_MANY);
        }
        for _ in 0..n {
            let _ = s.recs.pop_front();
        }
        s.pending -= n;
        s.acked = s.acked.wrapping_add(n as u64);
        Ok(())
    }

    /// Makes every pending record unsent again.
    pub(crate) fn revert(&mut self, h: Handle) -> FfiResult<()> {
        self.get_mut(h)?.pending = 0;
        Ok(())
    }

    /// Discards every record of the sensor (counted as dropped).
    pub(crate) fn clear(&mut self, h: Handle) -> FfiResult<()> {
        let s = self.get_mut(h)?;
        let n = s.recs.len() as u64;
        s.recs.clear();
        s.pending = 0;
        s.dropped = s.dropped.wrapping_add(n);
        self.dropped_total = self.dropped_total.wrapping_add(n);
        Ok(())
    }

    /// Per-sensor counters.
    pub(crate) fn sensor_stats(&self, h: Handle) -> FfiResult<SpoolSensorStats> {
        let s = self.get(h)?;
        Ok(SpoolSensorStats {
            stored: u32::try_from(s.recs.len()).unwrap_or(u32::MAX),
            pending: u32::try_from(s.pending).unwrap_or(u32::MAX),
            written: s.written,
            acked: s.acked,
            dropped: s.dropped,
        })
    }

    /// Whole-store counters.
    pub(crate) fn stats(&self) -> SpoolStoreStats {
        let mut st = SpoolStoreStats {
            sensors: u32::try_from(self.sensors.len()).unwrap_or(u32::MAX),
            refused: self.refused,
            dropped: self.dropped_total,
            ..SpoolStoreStats::default()
        };
        for s in &self.sensors {
            st.stored = st.stored.wrapping_add(s.recs.len() as u64);
            st.pending = st.pending.wrapping_add(s.pending as u64);
            st.written = st.written.wrapping_add(s.written);
            st.acked = st.acked.wrapping_add(s.acked);
        }
        st
    }

    /// Self-check.
    pub(crate) fn check(&self) -> FfiResult<()> {
        let st = self.stats();
        for s in &self.sensors {
            if s.pending > s.recs.len() {
                return Err(SpoolStatus::SPOOL_ERR_CORRUPTED);
            }
        }
        if st.written != st.acked.wrapping_add(st.stored).wrapping_add(st.dropped) {
            return Err(SpoolStatus::SPOOL_ERR_CORRUPTED);
        }
        Ok(())
    }

    /// Periodic work (threshold flush); `true` if counters of any sensor may have changed
    /// (eviction). RAM only: nothing to do.
    pub(crate) fn process(&mut self, _now_ms: u32) -> bool {
        false
    }

    /// The key of a sensor.
    pub(crate) fn key_of(&self, h: Handle) -> FfiResult<Key> {
        Ok(self.get(h)?.key)
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
        self.sensors.iter().all(|s| s.recs.is_empty())
    }
}
