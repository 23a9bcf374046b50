//! The store: a sensor table, per-sensor RAM rings, and the upload transaction.
//!
//! # API
//!
//! ```
//! use sensor_spool::profile::{self, WicedSpool};
//! use sensor_spool::record::SensorKey;
//! use sensor_spool::spool::Error;
//!
//! let mut spool: WicedSpool = profile::wiced();           // const fn: may init a `static`
//! let temp = spool.register(SensorKey::new(0, 42), 1000).unwrap(); // TSD, 1 sample/s
//! let door = spool.register(SensorKey::new(0, 7), 0).unwrap();     // EVT (rate 0)
//! spool.write(temp, 215, 1_700_000_000_000).unwrap();
//! spool.write(temp, 216, 1_700_000_001_000).unwrap();
//! spool.write_secs(door, 1, 1_700_000_000).unwrap();      // legacy: UTC seconds
//!
//! let r = spool.read(temp).unwrap();                      // marks it pending
//! assert_eq!((r.value, r.time_ms), (215, 1_700_000_000_000));
//! assert_eq!(spool.peek(temp, 0).unwrap().value, 216);    // next unsent, not marked
//! assert_eq!(spool.ack(temp, 2), Err(Error::AckTooMany)); // only 1 pending: no change
//! spool.revert(temp).unwrap();                            // NACK: lossless
//! assert_eq!(spool.read(temp).unwrap().value, 215);
//! spool.ack(temp, 1).unwrap();                            // ACK exactly that one
//! let s = spool.sensor_stats(temp).unwrap();
//! assert_eq!((s.count, s.pending, s.available), (1, 0, 1));
//! assert_eq!(spool.check(), Ok(()));
//! ```
//!
//! * [`Spool::register`] / [`Spool::lookup`]: the sensor table is a `heapless::Vec`
//!   sorted by [`SensorKey`] (binary search, O(log n)). A [`SensorHandle`] caches the
//!   table index; every call validates it in O(1) and falls back to a binary search if a
//!   later registration moved the entry. Registering an existing key with the same rate
//!   returns its handle.
//! * [`Spool::write`] (native, `u64` ms), [`Spool::write_secs`] (legacy UTC seconds).
//!   TSD: the time of the first sample of each RAM sector is kept (ms), later samples
//!   of the sector are implied by the sample rate (see [`crate::ram`]). EVT: the time is
//!   stored per record in whole seconds.
//! * [`Spool::read`]: the next unsent record, marked pending. [`Error::NoData`] when
//!   nothing is unsent (never reads past the end).
//! * [`Spool::ack`]`(n)`: acknowledges exactly the `n` oldest pending records;
//!   `n > pending` is [`Error::AckTooMany`] and changes nothing. [`Spool::ack_all`],
//!   [`Spool::revert`] (all pending become unsent again, nothing lost).
//!   With a persistent storage, records evicted from storage while pending (storage
//!   full) are counted lost at eviction and are no longer pending, yet `ack(n)`
//!   still accepts them as the oldest records handed out, so an uploader always
//!   acknowledges exactly what it read; [`Spool::evicted_in_flight`] tells how many
//!   of the records it holds are such.
//! * [`Spool::peek`] / [`Spool::iter`]: unsent records without marking them.
//! * [`Spool::sensor_stats`], [`Spool::stats`], [`Spool::check`] (reports which
//!   invariant broke; never panics).
//!
//! Every method returns an error instead of panicking, and a method that returns an
//! error has changed nothing (except the overflow counters described below).
//!
//! A spool is `Send` but not `Sync`: lookups past a sensor's first RAM sector update a
//! one-entry read cursor (see [`crate::ram`]) even through `&self` ([`Spool::peek`],
//! [`Spool::iter`]). Share it between threads or with interrupt handlers behind a mutex
//! (`critical_section::Mutex<RefCell<_>>`, `std::sync::Mutex`), not a read-write lock.
//!
//! # Overflow
//!
//! A write that needs a new RAM sector while the pool tier is exhausted follows the
//! [`OverflowPolicy`]:
//!
//! * [`OverflowPolicy::RejectNew`]: the write fails with [`Error::Full`]; the sensor's
//!   `lost` counter and the global `rejected` counter go up by one.
//! * [`OverflowPolicy::DropOldestUnsent`]: one sector of **unsent** records is freed,
//!   then the record is stored. The victim sensor is the writing sensor if it has such a
//!   sector, otherwise the sensor (in key order, first on ties) holding the most sectors
//!   among those that have one. The sector freed is the victim's **oldest sector that
//!   holds no pending record**:
//!   - if the victim has no pending record, that is its head sector: its records (the
//!     oldest ones) are dropped and `erased`/`read` move past them;
//!   - if pending records exist, the sector holding the last pending record also holds
//!     the oldest unsent ones; that sector is **kept whole** (freeing it would lose
//!     pending data, and sectors are freed whole), and the next sector is dropped
//!     instead: its records (the oldest unsent records not sharing a sector with a
//!     pending one, up to one sector's worth) are removed and the records after it are
//!     renumbered down by that count (`written` goes back; pending records and their
//!     sequence numbers do not change);
//!   - if every sector of every sensor holds a pending record (or nothing is stored),
//!     the write is rejected as with `RejectNew`.
//!
//!   Dropped records count in the victim's `lost` counter and the global `dropped`.
//!   With persistent storage the overflow path first tries to spill; only when the
//!   storage fails are records dropped. If the victim then has records in storage
//!   (a flash part), the dropped ones sat right after them: they leave a gap that
//!   reading or eviction reaches later, and are counted then, in the victim's
//!   `lost` and `SpillStats::lost` (not in `dropped`); until then the sensor's
//!   `count` still includes them.
//!
//! # Storage
//!
//! The spool is generic over a [`Storage`] back end `S` it spills into (threshold
//! and shutdown flush, flash reads, persisted acknowledgements, recovery: see
//! [`Spool::flush`] and [`Spool::recover_storage`]); [`RamOnly`]
//! (= [`crate::storage::NoStorage`]) is the default. A mid-queue overflow drop
//! renumbers the records after the dropped sector (`written` goes back); that is
//! sound because those records are unsent and in RAM only (a sensor's stored
//! records always come before its RAM records).
#![forbid(unsafe_code)]

use crate::ram::{self, ChainError, RamStore, Ring, SectorPool};
use crate::record::{Kind, Record, SensorKey};
use crate::sensor::{OverflowPolicy, SeqError, SeqState};
use crate::storage::Storage;

mod spill;
pub use spill::SpillStats;

/// The RAM-only storage back end ([`crate::storage::NoStorage`]), the default `S`.
pub use crate::storage::NoStorage as RamOnly;

/// Errors of the spool API. Small and `Copy`; a call that fails changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// No unsent record (read/peek past the end).
    NoData,
    /// The handle or key names no registered sensor.
    UnknownSensor,
    /// The sensor table is full.
    TableFull,
    /// The table of distinct sample rates is full.
    RateTableFull,
    /// The key is registered with a different sample rate (kind).
    Conflict,
    /// `ack(n)` with `n` greater than the pending records.
    AckTooMany,
    /// No RAM for the record (overflow policy rejected it, or the sensor holds the
    /// maximum number of records).
    Full,
    /// An internal invariant is broken (see [`Spool::check`]).
    Invariant,
    /// The storage back end failed (the back end keeps the cause, e.g.
    /// `FileStorage::last_error`).
    Storage,
    /// The storage medium is full ([`crate::storage::StorageError::NoSpace`]: the
    /// file back end's filesystem): nothing was written, the records stay in RAM.
    NoSpace,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::NoData => "no unsent record",
            Error::UnknownSensor => "unknown sensor",
            Error::TableFull => "sensor table full",
            Error::RateTableFull => "sample-rate table full",
            Error::Conflict => "sensor registered with another sample rate",
            Error::AckTooMany => "ack count exceeds pending records",
            Error::Full => "no RAM for the record",
            Error::Invariant => "internal invariant broken",
            Error::Storage => "storage error",
            Error::NoSpace => "storage medium full",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Which invariant [`Spool::check`] found broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckError {
    /// The sensor table is not strictly sorted by key at this index.
    TableOrder {
        /// Table index of the first out-of-order entry.
        index: u16,
    },
    /// A sensor's rate index points outside the rate table.
    RateIndex(SensorKey),
    /// A sensor's sequence numbers are not ordered `erased <= read <= written`.
    Sequence(SensorKey),
    /// A sensor's sector chain is broken.
    Chain(SensorKey, ChainError),
    /// The pool's own check failed.
    Pool,
    /// The RAM store's count of sectors held differs from the sum over the sensors.
    SectorCount,
    /// The RAM store's read cursor names a chain head no sensor has.
    ReadCursor,
    /// A sensor's records in storage do not line up with its RAM records.
    Storage,
}

/// A registered sensor. `Copy`; stays valid for the life of the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SensorHandle {
    key: SensorKey,
    index: u16,
}

impl SensorHandle {
    /// The sensor's key.
    pub const fn key(&self) -> SensorKey {
        self.key
    }
}

/// Per-sensor statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SensorStats {
    /// The sensor.
    pub key: SensorKey,
    /// Record kind.
    pub kind: Kind,
    /// Sample rate in ms (0 for EVT).
    pub sample_rate_ms: u32,
    /// Records stored (`written - erased`), in RAM and in storage.
    pub count: u32,
    /// Of `count`, the records held in RAM (the rest are in storage).
    pub in_ram: u32,
    /// Records read and not acknowledged.
    pub pending: u32,
    /// Records not yet read.
    pub available: u32,
    /// Sequence number the next record will get.
    pub next_seq: u32,
    /// Records lost to overflow (dropped or rejected), saturating at 65535.
    pub lost: u16,
    /// RAM sectors held.
    pub sectors: u32,
    /// Legacy `no_samples` (saturating).
    pub no_samples: u16,
    /// Legacy `no_pending` (saturating).
    pub no_pending: u16,
}

/// Global statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Stats {
    /// Registered sensors.
    pub sensors: u32,
    /// Records stored, all sensors.
    pub records: u32,
    /// Records pending, all sensors.
    pub pending: u32,
    /// RAM sectors held by sensors.
    pub sectors_used: u32,
    /// RAM sectors in the tier.
    pub sectors_total: u32,
    /// Records dropped by [`OverflowPolicy::DropOldestUnsent`] (wrapping).
    pub dropped: u32,
    /// Writes rejected for lack of RAM (wrapping).
    pub rejected: u32,
    /// TSD gaps too long for the gap code (clamped; times after them are early).
    pub gaps_clamped: u32,
    /// Newest write time seen (ms); TSD times are exact within ±24.8 days of it.
    pub latest_ms: u64,
}

/// One sensor's table entry: exactly 24 bytes (asserted in `profile`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) id: u32,
    pub(crate) seq: SeqState,
    pub(crate) ring: Ring,
    pub(crate) source: u8,
    pub(crate) rate_idx: u8,
    pub(crate) lost: u16,
}

impl Entry {
    pub(crate) fn key(&self) -> SensorKey {
        SensorKey::new(self.source, self.id)
    }
}

// A spool moves into a mutex, a `static` or another thread.
const _: () = {
    const fn send<T: Send>() {}
    send::<Spool<crate::pool::DefaultPool, 1, 32, 1>>();
};

/// Size in bytes of one sensor-table entry (all per-sensor metadata).
pub const ENTRY_SIZE: usize = core::mem::size_of::<Entry>();
const _: () = assert!(
    ENTRY_SIZE == 24,
    "per-sensor metadata must stay at 24 bytes"
);

/// The spool: `SENSORS` sensor slots, a RAM store over `SECTORS` sectors of pool `P`,
/// up to `RATES` distinct TSD sample rates, storage back end `S`, and `SPILL` flash-part
/// slots: 0 for RAM-only spools (no cost), `SENSORS` to spill into a persistent `S`
/// (28 bytes per sensor; see `spool::spill` and [`Spool::flush`]).
pub struct Spool<
    P,
    const SENSORS: usize,
    const SECTORS: usize,
    const RATES: usize,
    S = RamOnly,
    const SPILL: usize = 0,
> {
    pub(crate) ram: RamStore<P, SECTORS>,
    pub(crate) table: heapless::Vec<Entry, SENSORS>,
    pub(crate) rates: heapless::Vec<u32, RATES>,
    policy: OverflowPolicy,
    pub(crate) latest_ms: u64,
    dropped: u32,
    rejected: u32,
    /// Counted overflow drops and the victim of the latest, as its index + 1 (0: none;
    /// zero so that a `static` spool stays in .bss), see [`Spool::last_drop`].
    drops: u8,
    last_drop: u16,
    /// Durability window in ms of the tick clock, 0 = off (see `Spool::tick`).
    pub(crate) window_ms: u32,
    pub(crate) storage: S,
    /// Spill path state (flash part per sensor, flush progress): see
    /// `spool::spill`.
    pub(crate) spill: spill::SpillState<SPILL>,
}

impl<
    P: SectorPool,
    const SENSORS: usize,
    const SECTORS: usize,
    const RATES: usize,
    S: Storage,
    const SPILL: usize,
> Spool<P, SENSORS, SECTORS, RATES, S, SPILL>
{
    const VALID: () = {
        assert!(SENSORS <= u16::MAX as usize, "Spool: at most 65535 sensors");
        assert!(RATES < u8::MAX as usize, "Spool: at most 254 rates");
        assert!(
            SPILL == 0 || SPILL == SENSORS,
            "Spool: SPILL (flash-part slots) must be 0 (RAM only) or SENSORS"
        );
    };

    /// An empty spool over `pool` (`const`, so it can initialise a `static`).
    pub const fn new(pool: P, storage: S, policy: OverflowPolicy) -> Self {
        let () = Self::VALID;
        Self {
            ram: RamStore::new(pool),
            table: heapless::Vec::new(),
            rates: heapless::Vec::new(),
            policy,
            latest_ms: 0,
            dropped: 0,
            rejected: 0,
            drops: 0,
            last_drop: 0,
            window_ms: 0,
            storage,
            spill: spill::SpillState::new(),
        }
    }

    /// The overflow policy.
    pub fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Changes the overflow policy.
    pub fn set_policy(&mut self, policy: OverflowPolicy) {
        self.policy = policy;
    }

    /// The pool (for stats, or shared-path allocations from its other tiers).
    pub fn pool(&self) -> &P {
        self.ram.pool()
    }

    /// The storage back end.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage back end, mutably.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Records per RAM sector for `kind`.
    pub const fn records_per_sector(kind: Kind) -> u32 {
        ram::per_sector(P::SECTOR_SIZE, kind)
    }

    fn search(&self, key: SensorKey) -> Result<usize, usize> {
        self.table.binary_search_by(|e| e.key().cmp(&key))
    }

    /// Table entry `i` (`Error::Invariant` if out of range: never for a resolved index).
    #[inline]
    pub(crate) fn at(&self, i: usize) -> Result<&Entry, Error> {
        self.table.get(i).ok_or(Error::Invariant)
    }

    /// Table entry `i`, mutably (see [`Self::at`]).
    #[inline]
    fn at_mut(&mut self, i: usize) -> Result<&mut Entry, Error> {
        self.table.get_mut(i).ok_or(Error::Invariant)
    }

    #[inline]
    pub(crate) fn resolve(&self, h: SensorHandle) -> Result<usize, Error> {
        match self.table.get(h.index as usize) {
            Some(e) if e.id == h.key.id && e.source == h.key.source => Ok(h.index as usize),
            _ => self.search(h.key).map_err(|_| Error::UnknownSensor),
        }
    }

    fn rate_of(&self, e: &Entry) -> u32 {
        rate_in(&self.rates, e.rate_idx)
    }

    fn kind_of(e: &Entry) -> Kind {
        if e.rate_idx == 0 {
            Kind::Evt
        } else {
            Kind::Tsd
        }
    }

    /// Registers a sensor (`sample_rate_ms == 0`: EVT, else TSD with that period).
    /// Registering an existing key with the same rate returns its handle.
    ///
    /// # Errors
    /// [`Error::Conflict`] (key registered with another rate), [`Error::TableFull`],
    /// [`Error::RateTableFull`] (more than `RATES` distinct TSD rates).
    pub fn register(&mut self, key: SensorKey, sample_rate_ms: u32) -> Result<SensorHandle, Error> {
        let pos = match self.search(key) {
            Ok(i) => {
                return if self.rate_of(self.at(i)?) == sample_rate_ms {
                    Ok(SensorHandle {
                        key,
                        index: i as u16,
                    })
                } else {
                    Err(Error::Conflict)
                };
            }
            Err(pos) => pos,
        };
        if self.table.is_full() {
            return Err(Error::TableFull);
        }
        let rate_idx = if sample_rate_ms == 0 {
            0
        } else if let Some(i) = self.rates.iter().position(|&r| r == sample_rate_ms) {
            i as u8 + 1
        } else {
            self.rates
                .push(sample_rate_ms)
                .map_err(|_| Error::RateTableFull)?;
            self.rates.len() as u8
        };
        let entry = Entry {
            id: key.id,
            seq: SeqState::new(),
            ring: Ring::EMPTY,
            source: key.source,
            rate_idx,
            lost: 0,
        };
        if pos > self.table.len() {
            // `pos` comes from the binary search: never past the end (and `insert` would panic).
            return Err(Error::Invariant);
        }
        insert_at(&mut self.table, pos, entry).map_err(|_| Error::TableFull)?;
        self.spill.on_register(pos);
        Ok(SensorHandle {
            key,
            index: pos as u16,
        })
    }

    /// The handle of a registered sensor.
    pub fn lookup(&self, key: SensorKey) -> Option<SensorHandle> {
        self.search(key).ok().map(|i| SensorHandle {
            key,
            index: i as u16,
        })
    }

    /// The handle of the `i`-th registered sensor in key order (O(1)); `None` past
    /// the end. `sensors().nth(i)` gives the same in O(i).
    pub fn sensor_at(&self, i: usize) -> Option<SensorHandle> {
        let e = self.table.get(i)?;
        Some(SensorHandle {
            key: e.key(),
            index: u16::try_from(i).ok()?,
        })
    }

    /// Handles of all registered sensors, in key order.
    pub fn sensors(&self) -> impl Iterator<Item = SensorHandle> + '_ {
        self.table.iter().enumerate().map(|(i, e)| SensorHandle {
            key: e.key(),
            index: i as u16,
        })
    }

    /// Writes one record: a TSD sample (`time_ms` sets the base time when the sample
    /// starts a RAM sector) or an event (`time_ms` stored in whole seconds).
    ///
    /// # Flash I/O
    /// None below the flush threshold. A write that reaches it spills one batch
    /// (split over two sectors when the newest is nearly full), plus, per sector
    /// it opens, one erase and the evicted sector's run headers read (NOR, 4 KiB
    /// sectors: 8,960 B read + programmed measured worst, `benches/spool_flash.rs`).
    ///
    /// # Errors
    /// [`Error::UnknownSensor`]; [`Error::Full`] when no RAM is left under the overflow
    /// policy (see the module docs) or the sensor holds 2^31 - 1 records.
    pub fn write(&mut self, h: SensorHandle, value: u32, time_ms: u64) -> Result<(), Error> {
        let i = self.resolve(h)?;
        if time_ms > self.latest_ms {
            self.latest_ms = time_ms;
        }
        if self.try_append(i, value, time_ms)? {
            self.after_write(i);
            return Ok(());
        }
        self.write_after_overflow(i, value, time_ms)
    }

    /// The write's slow path: no sector was left for the record; make room per the
    /// overflow policy and append again.
    #[cold]
    #[inline(never)]
    fn write_after_overflow(&mut self, i: usize, value: u32, time_ms: u64) -> Result<(), Error> {
        self.make_room(i)?;
        if self.try_append(i, value, time_ms)? {
            self.after_write(i);
            Ok(())
        } else {
            Err(Error::Invariant)
        }
    }

    /// Appends to sensor `i`; `Ok(false)` (nothing changed) if a sector was needed and
    /// the tier is exhausted.
    #[inline(always)]
    fn try_append(&mut self, i: usize, value: u32, time_ms: u64) -> Result<bool, Error> {
        let Self {
            table,
            ram,
            rates,
            latest_ms,
            ..
        } = self;
        let Some(e) = table.get_mut(i) else {
            return Err(Error::Invariant);
        };
        let mut seq = e.seq;
        if seq.write().is_err() {
            return Err(Error::Full);
        }
        let ok = if e.rate_idx == 0 {
            ram.append(
                &mut e.ring,
                &e.seq,
                Kind::Evt,
                0,
                value,
                time_ms,
                *latest_ms,
            )
        } else {
            let rate = rate_in(rates, e.rate_idx);
            ram.append(
                &mut e.ring,
                &e.seq,
                Kind::Tsd,
                rate,
                value,
                time_ms,
                *latest_ms,
            )
        };
        if ok {
            e.seq = seq;
        }
        Ok(ok)
    }

    /// Legacy write: `utc_seconds` (0 = clock not synced) as the time.
    pub fn write_secs(
        &mut self,
        h: SensorHandle,
        value: u32,
        utc_seconds: u32,
    ) -> Result<(), Error> {
        self.write(h, value, utc_seconds as u64 * 1000)
    }

    /// Frees one sector for sensor `i` per the overflow policy, or fails with `Full`.
    fn make_room(&mut self, i: usize) -> Result<(), Error> {
        let reject = |this: &mut Self| {
            this.rejected = this.rejected.wrapping_add(1);
            let e = this.at_mut(i)?;
            e.lost = e.lost.saturating_add(1);
            Err(Error::Full)
        };
        // With persistent storage, spill the oldest full sectors instead of dropping.
        if self.storage.is_persistent() && self.spill_batch(false).unwrap_or(0) > 0 {
            return Ok(());
        }
        if self.policy == OverflowPolicy::RejectNew {
            return reject(self);
        }
        let droppable =
            |e: &Entry| RamStore::<P, SECTORS>::droppable(&e.seq, Self::kind_of(e)).is_some();
        let victim = if droppable(self.at(i)?) {
            Some(i)
        } else {
            let mut best: Option<(usize, u32)> = None;
            for (j, e) in self.table.iter().enumerate() {
                if !droppable(e) {
                    continue;
                }
                let n = RamStore::<P, SECTORS>::sectors_of(&e.seq, Self::kind_of(e));
                if best.is_none_or(|(_, m)| n > m) {
                    best = Some((j, n));
                }
            }
            best.map(|(j, _)| j)
        };
        let Some(v) = victim else {
            return reject(self);
        };
        let e = *self.at(v)?;
        let (kind, rate) = (Self::kind_of(&e), self.rate_of(&e));
        let (mut ring, mut seq) = (e.ring, e.seq);
        match self.ram.drop_oldest_unsent(&mut ring, &mut seq, kind, rate) {
            Some(n) => {
                let after_flash = self.ram_dropped_after_part(v, e.seq.erased(), seq.erased());
                let e = self.at_mut(v)?;
                e.ring = ring;
                e.seq = seq;
                if !after_flash {
                    e.lost = e.lost.saturating_add(n.min(u16::MAX as u32) as u16);
                    self.dropped = self.dropped.wrapping_add(n);
                    self.drops = self.drops.wrapping_add(1);
                    self.last_drop = (v as u16).wrapping_add(1);
                }
                Ok(())
            }
            None => Err(Error::Invariant),
        }
    }

    /// Reads the next unsent record and marks it pending.
    ///
    /// # Flash I/O
    /// RAM records: none. Stored records (NOR): the record, the frame headers it
    /// needs, and the CRC check of frames not yet verified in this mount (at most
    /// those of one sector). When neither the run references nor the sensor's hint
    /// know where its next record is, the frame headers from the hint (or the
    /// oldest sector) up to it are walked: **not bounded by one sector** (no stepped
    /// search yet). Measured worst on a 256 KiB log of 4 KiB sectors
    /// (`benches/spool_flash.rs`): 4,471 B draining after a reboot, 4,632 B while
    /// an uploader keeps up with threshold spills. A read that must first spill RAM records adds a batch
    /// (see [`Spool::write`]).
    ///
    /// # Errors
    /// [`Error::UnknownSensor`]; [`Error::NoData`] if nothing is unsent.
    pub fn read(&mut self, h: SensorHandle) -> Result<Record, Error> {
        let i = self.resolve(h)?;
        // The flash part holds the oldest records.
        if let Some(r) = self.read_flash(i)? {
            return Ok(r);
        }
        if let Some(e) = self.table.get(i)
            && e.seq.available() > 0
            && let Some(r) = self.before_ram_handout(i, e.seq.read())?
        {
            return Ok(r);
        }
        let Self {
            table,
            ram,
            rates,
            latest_ms,
            ..
        } = self;
        let Some(e) = table.get_mut(i) else {
            return Err(Error::Invariant);
        };
        if e.seq.available() == 0 {
            return Err(Error::NoData);
        }
        let rec = if e.rate_idx == 0 {
            ram.get(e.ring, &e.seq, Kind::Evt, 0, e.seq.read(), *latest_ms)
        } else {
            let rate = rate_in(rates, e.rate_idx);
            ram.get(e.ring, &e.seq, Kind::Tsd, rate, e.seq.read(), *latest_ms)
        };
        let rec = rec.ok_or(Error::Invariant)?;
        e.seq.read_next().map_err(|_| Error::NoData)?;
        Ok(rec)
    }

    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn get(&self, e: &Entry, seq: u32) -> Result<Record, Error> {
        self.ram
            .get(
                e.ring,
                &e.seq,
                Self::kind_of(e),
                self.rate_of(e),
                seq,
                self.latest_ms,
            )
            .ok_or(Error::Invariant)
    }

    /// The `offset`-th unsent record (0 = the one `read` would return), not marked.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`]; [`Error::NoData`] if `offset >= available`.
    pub fn peek(&self, h: SensorHandle, offset: u32) -> Result<Record, Error> {
        let i = self.resolve(h)?;
        let e = self.at(i)?;
        if offset >= e.seq.available() {
            return Err(Error::NoData);
        }
        self.get(e, e.seq.read().wrapping_add(offset))
    }

    /// The `offset`-th stored record counted from the oldest (pending ones first), not
    /// marked.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`]; [`Error::NoData`] if `offset >= count`.
    pub fn peek_stored(&self, h: SensorHandle, offset: u32) -> Result<Record, Error> {
        let i = self.resolve(h)?;
        let e = self.at(i)?;
        if offset >= e.seq.count() {
            return Err(Error::NoData);
        }
        self.get(e, e.seq.erased().wrapping_add(offset))
    }

    /// Iterates over the unsent records of a sensor, oldest first, without marking them.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn iter(
        &self,
        h: SensorHandle,
    ) -> Result<Iter<'_, P, SENSORS, SECTORS, RATES, S, SPILL>, Error> {
        let i = self.resolve(h)?;
        let e = *self.at(i)?;
        Ok(Iter {
            spool: self,
            entry: e,
            next: e.seq.read(),
            left: e.seq.available(),
        })
    }

    /// Acknowledges exactly the `n` oldest records handed out by [`Spool::read`] and
    /// frees every RAM sector that no longer holds a record.
    ///
    /// The records handed out are the pending ones plus, with a persistent storage,
    /// those evicted from storage while pending ([`Spool::evicted_in_flight`]; they
    /// are the oldest and were counted lost when evicted): an uploader acknowledges
    /// what it was given, and the evicted part is simply consumed.
    ///
    /// # Flash I/O
    /// RAM records only: none. Stored records: one mark frame (24 B on NOR). When
    /// the mark needs a new sector: one erase, and if that evicts records still
    /// owed, their run headers read to measure them, the records read and
    /// programmed forward (at most a sector), then a reservation snapshot may open
    /// one more (NOR, 4 KiB sectors: 9,316 B measured in
    /// `tests/spool_flash_interleaved.rs`, 21,917 B in the bench after a reboot).
    ///
    /// # Errors
    /// [`Error::UnknownSensor`]; [`Error::AckTooMany`] if
    /// `n > pending + evicted_in_flight` (nothing changes).
    pub fn ack(&mut self, h: SensorHandle, n: u32) -> Result<(), Error> {
        let i = self.resolve(h)?;
        let gone = self.flash_gone(i);
        let flash = self.flash_pending(i);
        let Some(e) = self.table.get(i) else {
            return Err(Error::Invariant);
        };
        if n as u64 > gone as u64 + flash as u64 + e.seq.pending() as u64 {
            return Err(Error::AckTooMany);
        }
        // Records evicted in flight first, then flash records, then RAM; one mark
        // persisted first if any of them may be in storage (see `spool::spill`).
        // On a RAM-only spool straight to RAM.
        let n = self.ack_stored(i, n)?;
        let Some(e) = self.table.get(i) else {
            return Err(Error::Invariant);
        };
        let mut seq = e.seq;
        seq.ack(n).map_err(|err| match err {
            SeqError::TooMany => Error::AckTooMany,
            _ => Error::Invariant,
        })?;
        self.commit_erase(i, seq)
    }

    /// Records of a sensor handed out by [`Spool::read`] and then evicted from
    /// storage (storage full) before they were acknowledged. They were counted in
    /// the sensor's `lost` counter and in `SpillStats::lost` when evicted, are no
    /// longer pending, and are still accepted by [`Spool::ack`] (they are the
    /// oldest records the uploader holds); [`Spool::revert`], [`Spool::ack_all`] and
    /// [`Spool::clear`] forget them. Always 0 without persistent storage.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn evicted_in_flight(&self, h: SensorHandle) -> Result<u32, Error> {
        let i = self.resolve(h)?;
        Ok(self.flash_gone(i))
    }

    /// Stores sensor `i`'s new state after `erased` advanced and returns the sectors
    /// it left behind to the pool.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn commit_erase(&mut self, i: usize, seq: SeqState) -> Result<(), Error> {
        let Some(e) = self.table.get_mut(i) else {
            return Err(Error::Invariant);
        };
        if e.rate_idx == 0 {
            self.ram.release(&mut e.ring, &e.seq, &seq, Kind::Evt, 0);
        } else {
            let rate = rate_in(&self.rates, e.rate_idx);
            self.ram.release(&mut e.ring, &e.seq, &seq, Kind::Tsd, rate);
        }
        e.seq = seq;
        Ok(())
    }

    /// Acknowledges every pending record; returns how many (records evicted while
    /// pending, see [`Spool::evicted_in_flight`], are forgotten, not counted).
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn ack_all(&mut self, h: SensorHandle) -> Result<u32, Error> {
        let i = self.resolve(h)?;
        let gone = self.flash_gone(i);
        let flash = self.flash_pending(i);
        let ram = self.at(i)?.seq.pending();
        self.ack(h, gone.wrapping_add(flash).wrapping_add(ram))?;
        Ok(flash.wrapping_add(ram))
    }

    /// Makes every pending record unsent again (NACK / timeout); nothing is lost and the
    /// same records are read again, in the same order. Returns how many.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn revert(&mut self, h: SensorHandle) -> Result<u32, Error> {
        let i = self.resolve(h)?;
        let flash = self.revert_flash(i);
        Ok(self.at_mut(i)?.seq.revert().wrapping_add(flash))
    }

    /// Drops every stored record of a sensor (legacy `reset_csd_entry`), pending or not,
    /// and frees its sectors; returns how many. Not counted as lost.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn clear(&mut self, h: SensorHandle) -> Result<u32, Error> {
        let i = self.resolve(h)?;
        let flash = self.clear_flash(i)?;
        let e = *self.at(i)?;
        let n = e.seq.count().wrapping_add(flash);
        let mut ring = e.ring;
        self.ram.clear(&mut ring, &e.seq, Self::kind_of(&e));
        let mut seq = e.seq;
        seq.ack_all();
        seq.drop_oldest(seq.count()).map_err(|_| Error::Invariant)?;
        let e = self.at_mut(i)?;
        e.seq = seq;
        e.ring = ring;
        Ok(n)
    }

    /// Statistics of one sensor.
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn sensor_stats(&self, h: SensorHandle) -> Result<SensorStats, Error> {
        let i = self.resolve(h)?;
        self.stats_of(i)
    }

    fn stats_of(&self, i: usize) -> Result<SensorStats, Error> {
        let e = self.at(i)?;
        let kind = Self::kind_of(e);
        // Records in storage (flash part) come first; see `spool::spill`.
        let (fc, fp, fa) = self.spill.counts(i);
        let flost = self.spill.parts.get(i).map_or(0, |p| p.lost);
        let count = e.seq.count().wrapping_add(fc);
        let pending = e.seq.pending().wrapping_add(fp);
        Ok(SensorStats {
            key: e.key(),
            kind,
            sample_rate_ms: self.rate_of(e),
            count,
            in_ram: e.seq.count(),
            pending,
            available: e.seq.available().wrapping_add(fa),
            next_seq: e.seq.written(),
            lost: e.lost.saturating_add(flost.min(u16::MAX as u32) as u16),
            sectors: RamStore::<P, SECTORS>::sectors_of(&e.seq, kind),
            no_samples: count.min(u16::MAX as u32) as u16,
            no_pending: pending.min(u16::MAX as u32) as u16,
        })
    }

    /// Overflow drops that changed a sensor's count so far (wrapping at 256; one per
    /// write at most) and the sensor of the latest one (as of that drop; a later
    /// registration may move or add sensors). O(1): the C API checks it after every
    /// write to re-mirror the victim when the drop hit another sensor.
    pub fn last_drop(&self) -> (u8, Option<SensorKey>) {
        let key = usize::from(self.last_drop)
            .checked_sub(1)
            .and_then(|i| self.table.get(i))
            .map(|e| e.key());
        (self.drops, key)
    }

    /// Global statistics (O(number of sensors)).
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            sensors: self.table.len() as u32,
            sectors_total: SECTORS as u32,
            dropped: self.dropped,
            rejected: self.rejected,
            gaps_clamped: self.ram.gaps_clamped(),
            latest_ms: self.latest_ms,
            ..Stats::default()
        };
        for (i, e) in self.table.iter().enumerate() {
            let kind = Self::kind_of(e);
            let (fc, fp, _) = self.spill.counts(i);
            s.records = s.records.wrapping_add(e.seq.count()).wrapping_add(fc);
            s.pending = s.pending.wrapping_add(e.seq.pending()).wrapping_add(fp);
            s.sectors_used = s
                .sectors_used
                .wrapping_add(RamStore::<P, SECTORS>::sectors_of(&e.seq, kind));
        }
        s
    }

    /// Verifies every invariant and reports the first broken one: table sorted by key,
    /// rate indices valid, `erased <= read <= written` per sensor, every chain exactly as
    /// long as its sequence numbers say, made of allocated sectors owned by no other
    /// chain. O(sensors + sectors); uses 512 bytes of stack. Never panics.
    pub fn check(&self) -> Result<(), CheckError> {
        let mut seen = [0u32; 128];
        let mut cursor_named = false;
        for (i, e) in self.table.iter().enumerate() {
            if i > 0 && self.table.get(i - 1).is_some_and(|p| p.key() >= e.key()) {
                return Err(CheckError::TableOrder { index: i as u16 });
            }
            if e.rate_idx as usize > self.rates.len() {
                return Err(CheckError::RateIndex(e.key()));
            }
            if e.seq.check().is_err() {
                return Err(CheckError::Sequence(e.key()));
            }
            self.ram
                .check_chain(e.ring, &e.seq, Self::kind_of(e), &mut seen)
                .map_err(|c| CheckError::Chain(e.key(), c))?;
            self.ram
                .check_tail_hint(e.ring, Self::kind_of(e), self.rate_of(e))
                .map_err(|c| CheckError::Chain(e.key(), c))?;
            cursor_named |= self
                .ram
                .check_read_cursor(e.ring, Self::kind_of(e), self.rate_of(e))
                .map_err(|c| CheckError::Chain(e.key(), c))?;
        }
        if self.ram.read_cursor_set() && !cursor_named {
            return Err(CheckError::ReadCursor);
        }
        if !self.ram.pool_ok() {
            return Err(CheckError::Pool);
        }
        let held: u32 = self
            .table
            .iter()
            .map(|e| RamStore::<P, SECTORS>::sectors_of(&e.seq, Self::kind_of(e)))
            .sum();
        if held != self.ram.sectors_held() {
            return Err(CheckError::SectorCount);
        }
        if !self.check_flash() {
            return Err(CheckError::Storage);
        }
        Ok(())
    }
}

#[inline(always)]
/// Inserts `x` at `pos` (`pos <= len`), shifting the elements from `pos` on up by one,
/// like `heapless::Vec::insert` but without its `memmove` (about 660 B of
/// compiler_builtins on a microcontroller, which the firmware's libc cannot replace):
/// a push and element swaps down to `pos`. Registration only (O(n) swaps). `Err(x)` when
/// full; a `pos` past the end appends.
pub(crate) fn insert_at<T, const N: usize>(
    v: &mut heapless::Vec<T, N>,
    pos: usize,
    x: T,
) -> Result<(), T> {
    v.push(x)?;
    let s = v.as_mut_slice();
    let mut i = s.len().saturating_sub(1);
    while i > pos {
        if let Some([a, b]) = s.get_mut(i - 1..=i) {
            core::mem::swap(a, b);
        }
        i -= 1;
    }
    Ok(())
}

fn rate_in(rates: &[u32], idx: u8) -> u32 {
    match idx {
        0 => 0,
        i => rates.get(i as usize - 1).copied().unwrap_or(0),
    }
}

/// Iterator over a sensor's unsent records (see [`Spool::iter`]).
pub struct Iter<
    'a,
    P,
    const SENSORS: usize,
    const SECTORS: usize,
    const RATES: usize,
    S,
    const SPILL: usize = 0,
> {
    spool: &'a Spool<P, SENSORS, SECTORS, RATES, S, SPILL>,
    entry: Entry,
    next: u32,
    left: u32,
}

impl<
    P: SectorPool,
    const SENSORS: usize,
    const SECTORS: usize,
    const RATES: usize,
    S: Storage,
    const SPILL: usize,
> Iterator for Iter<'_, P, SENSORS, SECTORS, RATES, S, SPILL>
{
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        if self.left == 0 {
            return None;
        }
        let r = self.spool.get(&self.entry, self.next).ok()?;
        self.next = self.next.wrapping_add(1);
        self.left -= 1;
        Some(r)
    }
}

#[cfg(test)]
mod insert_tests {
    use super::insert_at;

    /// `insert_at` gives `heapless::Vec::insert`'s result at every position, and refuses
    /// (returning the element, changing nothing) when full.
    #[test]
    fn insert_at_matches_vec_insert() {
        for len in 0..6u8 {
            for pos in 0..=usize::from(len) {
                let mut a: heapless::Vec<u8, 6> = (0..len).collect();
                let mut b = a.clone();
                insert_at(&mut a, pos, 99).expect("room");
                b.insert(pos, 99).expect("room");
                assert_eq!(a, b, "len {len} pos {pos}");
            }
        }
        let mut full: heapless::Vec<u8, 3> = (0..3).collect();
        assert_eq!(insert_at(&mut full, 1, 9), Err(9));
        assert_eq!(full.as_slice(), &[0, 1, 2]);
    }
}
