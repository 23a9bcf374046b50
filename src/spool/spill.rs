//! The spool's spill path: threshold flush of the oldest RAM records of all
//! sensors as one batch, reads of flash-resident records, persisted
//! acknowledgements, shutdown flush with progress, recovery after a reset.
//!
//! # Model
//!
//! Per sensor, the records still owed to the uploader are a **flash part**
//! `[acked, end)` (oldest, in storage; `read` marks the next unsent one) followed
//! by the **RAM part** `[erased, written)` of the sensor's sequence state, with
//! `end == erased` whenever the flash part is not empty. Reads drain the flash
//! part first, so records come back in write order wherever they live; an
//! acknowledgement covers flash records first (one acknowledgement mark per
//! call that covers any) and then RAM records.
//!
//! # Flush
//!
//! - **Threshold** ([`Spool::set_flush_threshold`], 80 % of the RAM sectors by
//!   default): after a write that leaves at least that share of sectors in use,
//!   the full RAM sectors of every sensor, oldest first, go to storage as **one
//!   batch** (one frame, one program pass), and their sectors return to the
//!   pool. A sensor whose RAM sectors are all needed (partial tail only) stays.
//!   With a persistent back end the overflow path also spills before dropping.
//! - **Durability window** ([`Spool::set_max_unspilled_ms`], off by default;
//!   polled by [`Spool::tick`] with the caller's ms clock, C `process_memory`):
//!   the threshold alone leaves RAM records unspilled for as long as an
//!   uploader keeps RAM below it, so a power cut without the shutdown flush
//!   could take everything since the last upload. With a window, a tick that
//!   finds records in RAM and the window passed since RAM was last seen empty
//!   spills **every** RAM record of every sensor (partial sectors too, like a
//!   shutdown flush; usually one batch). Guarantee: after a tick at `T`
//!   returns `Ok`, every record written at or before `T - window` is in
//!   storage, acknowledged or counted lost: a cut loses at most the last
//!   window plus one tick interval. Cost: one spill per window while records
//!   arrive (not per tick): every record still in RAM when the window
//!   expires reaches storage, also young ones and ones about to be
//!   acknowledged, plus the acknowledgement marks of records then
//!   acknowledged from storage; measured in `docs/storage.md`. Spilling all
//!   of RAM, rather than only the records past the window, needs no
//!   per-record or per-sensor tick times (the spool keeps one `u32`) and
//!   halves the average unspilled age for the same number of batches; it
//!   costs flash writes when records rarely stay in RAM as long as the
//!   window (an uploader that keeps up).
//!   Records handed out to the uploader go along and stay pending (as in a
//!   shutdown flush: [`Batch::whole`], and reads of a sensor's RAM records
//!   wait for its flash part, see `before_ram_handout`).
//! - **Shutdown** ([`Spool::flush_all_start`], [`Spool::flush_all_step`],
//!   [`Spool::flush_progress`], [`Spool::cancel_flush`]): every RAM record,
//!   partial sectors too, batch after batch; progress 0..=100 while it runs and
//!   101 when RAM is empty (safe to power off). Each step is one atomic batch and
//!   RAM is only changed after the batch is on flash, so a cancel or a power
//!   cut between steps leaves everything consistent.
//!
//! Records that are pending (read, not yet acknowledged) may be flushed: they
//! stay pending in the flash part.
//!
//! # Recovery
//!
//! After a reset, register the sensors, then call [`Spool::recover_storage`]:
//! it mounts the storage (bounded reads) and replays the log once
//! ([`Storage::recover`]) to rebuild each registered sensor's flash part from
//! its runs and latest acknowledgement mark; new records continue the sequence.
//!
//! Records acknowledged while still in RAM write no mark. They are recognised
//! anyway: records enter storage oldest first, and a sensor's RAM records can
//! only be acknowledged once its flash part is fully acknowledged (that is, a
//! mark covers the sensor's last run). So when a sensor's next run starts after
//! a gap and the latest mark covers everything before the gap, the records in
//! the gap left RAM without entering storage (acknowledged, dropped and counted,
//! or cleared) and the new run's first record counts as an acknowledgement mark.
//! A gap after records no mark covers (a frame lost to damage, or a RAM drop
//! while the flash part was not empty) is not taken as one: the records after
//! it stay owed (a damaged frame after a fully acknowledged part cannot be told
//! from such a gap: its records are then not counted lost). A sensor of which
//! only a mark survived (its runs were evicted) continues its sequence after
//! that mark.
//!
//! # Storage failures
//!
//! A failed append, mark or read leaves the spool as it was (records stay in
//! RAM, counted in [`SpillStats::errors`] for flushes). A back end that can no
//! longer trust its position after a failed program or erase unmounts itself
//! ([`Storage::is_mounted`]); once [`Spool::recover_storage`] has run, the spool
//! mounts it again (bounded reads) before its next storage operation, counted in
//! [`SpillStats::remounts`]. When the overflow policy has to drop RAM records
//! because the storage refuses them, see the `spool` module docs for how
//! records dropped right after a sensor's stored ones are counted.
//!
//! # Reads and acknowledgements of flash records
//!
//! Each flash part keeps a [`ReadHint`] (where storage last found its next
//! record, or where the batch that started the part was appended) and one for
//! its first unacknowledged record (where reading resumes after a revert), so
//! reading hundreds of sensors in turn does not rescan the log per sensor
//! ([`Storage::read_hinted`]); a hint never changes which record comes back.
//!
//! Acknowledgement marks and reservations never evict owed records: the
//! storage copies them forward ([`Storage::ack_keep`], answered from the flash
//! parts), so a sensor's oldest owed records may sit after later ones. A copy
//! never starts before a mark already on the medium: after a mark the flash
//! part is brought up to it before any other storage call (a snapshot's
//! reservations too), else the copy would outlive the mark and bring back
//! acknowledged records once the mark's sector is evicted.
//! Eviction stays oldest first per sensor: when a full log evicts records of a
//! sensor whose older records were copied forward, those count lost too (and
//! are not copied again). Reservations copy forward only while the uploader
//! drains (an acknowledgement mark was written since the last spill), so a
//! log that fills while offline keeps evicting its oldest records as before.
//!
//! Records evicted from storage (storage full) while pending are counted lost
//! at eviction and leave the pending count, but [`Spool::ack`] still accepts
//! them as the oldest records handed out ([`Spool::evicted_in_flight`]); an
//! acknowledgement whose mark itself evicts the records it covers counts them
//! acknowledged. If records are missing from storage (damage) right after
//! pending ones, [`Spool::read`] returns [`Error::NoData`] until those are
//! acknowledged or reverted; then the missing ones are counted lost.
//!
//! # Limits
//!
//! [`Spool::peek`], [`Spool::peek_stored`] and [`Spool::iter`] take `&self` and
//! see RAM records only; [`Spool::read`] returns flash records first.

use crate::ram::{RamStore, SectorPool};
use crate::record::{self, Kind, Record};
use crate::sensor::SeqState;
use crate::spool::{Entry, Error, SensorHandle, Spool};
use crate::storage::{
    Batch, Keep, LogEntry, MAX_RESERVE_ENTRIES, ReadHint, RecordKind, RunInfo, RunMeta, SensorKey,
    Storage, StorageError,
};

/// Most runs in one flush batch.
const MAX_RUNS: usize = 32;

/// One sensor's flash part (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlashPart {
    /// First unacknowledged record in flash.
    pub(crate) acked: u32,
    /// Next unsent record in flash.
    pub(crate) read: u32,
    /// One past the last flushed record.
    pub(crate) end: u32,
    /// Unacknowledged records lost to eviction or damage (wrapping).
    pub(crate) lost: u32,
    /// Where storage last found this part's next record ([`Storage::read_hinted`]).
    pub(crate) hint: ReadHint,
    /// A hint at or before the first unacknowledged record: where reading
    /// resumes after a revert.
    pub(crate) ack_hint: ReadHint,
    /// Records handed out by `read` (pending) and then evicted before their
    /// acknowledgement: counted in `lost`, no longer stored, still accepted by
    /// `ack` (they are the oldest of what the uploader holds).
    pub(crate) gone: u32,
    /// First of the `gone` records (meaningful while `gone > 0`): an
    /// acknowledgement of them writes a mark up to `gone_from + k`.
    pub(crate) gone_from: u32,
    /// Oldest RAM records (from the sensor's `erased`) that may be in storage
    /// too: an append that failed may have written them in full or in part (a
    /// failed storage call means "unknown", not "nothing written"), so an
    /// acknowledgement of them writes a mark.
    pub(crate) unsure: u32,
    /// The sensor hands out no sequence number at or after this one before
    /// storage holds a higher reservation ([`Storage::reserve`]).
    pub(crate) reserved: u32,
}

impl FlashPart {
    fn is_empty(&self) -> bool {
        self.acked == self.end
    }
    fn pending(&self) -> u32 {
        self.read.wrapping_sub(self.acked)
    }
    fn available(&self) -> u32 {
        self.end.wrapping_sub(self.read)
    }
    fn count(&self) -> u32 {
        self.end.wrapping_sub(self.acked)
    }
}

/// Sequence numbers reserved at a time ([`Storage::reserve`]): one small frame
/// per this many records of a sensor; a restart skips at most this many.
pub(crate) const RESERVE_STEP: u32 = 4096;

/// The reservation that covers every number before `written`: the next
/// multiple of [`RESERVE_STEP`] after `written - 1`.
const fn reserve_upto(written: u32) -> u32 {
    (written | (RESERVE_STEP - 1)).wrapping_add(1)
}

/// Spill state kept by the spool: a flash part per sensor slot (parallel to the
/// sensor table, 52 bytes each; `SPILL` = 0 for RAM-only spools, which then pay
/// only the counters) and the flush bookkeeping.
#[derive(Debug)]
pub(crate) struct SpillState<const SENSORS: usize> {
    pub(crate) parts: heapless::Vec<FlashPart, SENSORS>,
    /// Flush threshold as a number of RAM sectors in use (precomputed from the
    /// percentage, so the check after every write is one compare); 0 stands for the
    /// default ([`DEFAULT_THRESHOLD_PCT`]), so the initial state is all zero and a
    /// `static` spool lands in .bss.
    threshold_sectors: u16,
    /// A shutdown flush runs.
    flushing: bool,
    /// While `flushing`: records in RAM at the start of the shutdown flush.
    flush_total: u32,
    /// While `flushing`: records flushed since its start. Otherwise the start
    /// of the durability window ([`Spool::tick`]): the low 32 bits of the tick
    /// time at which RAM last held no record (or a window spill emptied it),
    /// so no record in RAM was written before it; 0 before the first tick and
    /// after a shutdown flush: unknown, the next tick that finds records in RAM
    /// spills them (a clock that reads 0 with RAM empty only makes that tick
    /// spill early). One field for both: a tick does nothing while
    /// a shutdown flush runs, and the Linux profile's spool has no byte to
    /// spare (`profile`: 64 KiB).
    mark: u32,
    /// Batches appended by the spool.
    pub(crate) batches: u32,
    /// Records moved from RAM to storage.
    pub(crate) flushed: u32,
    /// Flushes that failed (the records stayed in RAM).
    pub(crate) errors: u32,
    /// Unacknowledged records lost to eviction or damage, all sensors.
    pub(crate) lost: u32,
    /// Mounts after the storage unmounted itself on a failed operation.
    remounts: u32,
    /// `recover_storage` has mounted the storage (only then is it mounted again
    /// after a failure: a spool that never mounted must not start writing).
    /// Bit 1, "draining": an acknowledgement mark was written since the last
    /// spill (the uploader drains), so reservations copy owed records forward
    /// too. (Bit 0 is `mounted`; one byte for both keeps the spool's size.)
    mounted: u8,
}

/// `SpillState::mounted` bits.
const MOUNTED: u8 = 1;
/// See `SpillState::mounted`.
const DRAINING: u8 = 2;

/// Default flush threshold: 80 % of the RAM sectors.
const DEFAULT_THRESHOLD_PCT: u8 = 80;

/// Sectors in use at which a write triggers a threshold flush: `pct` (clamped to
/// 1..=100) percent of `sectors`, rounded up (`used * 100 >= pct * sectors`).
const fn threshold_sectors(pct: u8, sectors: usize) -> u16 {
    let pct = if pct < 1 {
        1
    } else if pct > 100 {
        100
    } else {
        pct
    };
    (pct as usize * sectors).div_ceil(100) as u16
}

impl<const SENSORS: usize> SpillState<SENSORS> {
    /// Empty state, 80 % threshold.
    pub(crate) const fn new() -> Self {
        Self {
            parts: heapless::Vec::new(),
            threshold_sectors: 0,
            flushing: false,
            flush_total: 0,
            mark: 0,
            batches: 0,
            flushed: 0,
            errors: 0,
            lost: 0,
            remounts: 0,
            mounted: 0,
        }
    }

    /// A shutdown flush runs.
    fn flushing(&self) -> bool {
        self.flushing
    }

    /// Drops every flash part's read hints (the storage was mounted again).
    fn forget_hints(&mut self) {
        for p in self.parts.iter_mut() {
            p.hint = ReadHint::NONE;
            p.ack_hint = ReadHint::NONE;
        }
    }

    /// Keeps `parts` parallel to the sensor table.
    pub(crate) fn on_register(&mut self, pos: usize) {
        if SENSORS > 0 && pos <= self.parts.len() {
            let _ = crate::spool::insert_at(&mut self.parts, pos, FlashPart::default());
        }
    }

    /// Flash-part record counts `(count, pending, available)` of slot `i`.
    pub(crate) fn counts(&self, i: usize) -> (u32, u32, u32) {
        self.parts
            .get(i)
            .map_or((0, 0, 0), |p| (p.count(), p.pending(), p.available()))
    }
}

/// The sensor a log entry belongs to.
fn entry_key(entry: &LogEntry) -> SensorKey {
    match *entry {
        LogEntry::Run(r) => r.key,
        LogEntry::Ack { key, .. } | LogEntry::Reserve { key, .. } => key,
    }
}

/// What the log says about one sensor, gathered entry by entry (oldest first)
/// during recovery.
#[derive(Clone, Copy, Debug, Default)]
struct SensorLog {
    /// First record of the surviving runs (the smallest: records copied
    /// forward by the storage sit after later records of their sensor).
    first: u32,
    /// One past the last record of the newest run.
    end: u32,
    /// Latest acknowledgement mark, explicit or implied.
    ack: u32,
    /// Largest reservation.
    res: u32,
    /// [`SensorLog::RUNS`] | [`SensorLog::ACK`] | [`SensorLog::RES`].
    seen: u8,
}

impl SensorLog {
    const RUNS: u8 = 1;
    const ACK: u8 = 2;
    const RES: u8 = 4;

    fn note(&mut self, entry: &LogEntry) {
        match *entry {
            LogEntry::Run(r) => {
                if self.seen & Self::RUNS == 0 {
                    self.first = r.first_seq;
                    self.end = r.end_seq();
                    self.seen |= Self::RUNS;
                    return;
                }
                if r.first_seq != self.end
                    && self.seen & Self::ACK != 0
                    && !before(self.ack, self.end)
                    && before(self.ack, r.first_seq)
                {
                    // A gap after a fully acknowledged flash part: the records in
                    // between left RAM without entering storage (acknowledged while
                    // in RAM, dropped and counted, or cleared), so nothing before
                    // this run is owed any more (implied acknowledgement).
                    self.ack = r.first_seq;
                }
                // A batch written again after an append that failed but had
                // reached storage overlaps the first copy: the end never moves back.
                if before(self.end, r.end_seq()) {
                    self.end = r.end_seq();
                }
                // Records copied forward (owed records of an evicted sector,
                // see `Storage::ack_keep`) come after later records.
                if before(r.first_seq, self.first) {
                    self.first = r.first_seq;
                }
            }
            LogEntry::Ack { upto, .. } => {
                self.ack = upto;
                self.seen |= Self::ACK;
            }
            LogEntry::Reserve { upto, .. } => {
                if self.seen & Self::RES == 0 || before(self.res, upto) {
                    self.res = upto;
                }
                self.seen |= Self::RES;
            }
        }
    }

    /// Rebuilds a sensor that holds no record from its log: its sequence state
    /// continues after the log and its flash part holds the unacknowledged
    /// records. Returns how many that is.
    fn apply(&self, e: &mut Entry, p: &mut FlashPart) -> u32 {
        if self.seen == 0 || e.seq.count() != 0 {
            return 0;
        }
        let runs = self.seen & Self::RUNS != 0;
        let marked = self.seen & Self::ACK != 0;
        // New records continue after every record the log names, runs or marks
        // (a mark may cover records acknowledged while in RAM), so no mark ever
        // covers them and no number is handed out twice.
        let end = match (runs, marked) {
            (true, _) => self.end,
            (false, true) => self.ack,
            (false, false) => self.res,
        };
        let mut next = if marked && before(end, self.ack) {
            self.ack
        } else {
            end
        };
        let mut acked = if runs { self.first } else { end };
        if marked && before(acked, self.ack) {
            acked = self.ack;
        }
        let owed = before(acked, end);
        // Numbers handed out from RAM lie below the reservation. While stored
        // records are owed, none was handed out past them (RAM records are
        // handed out only while the flash part is empty, and a spill takes the
        // pending ones with it), so the sequence continues right after them.
        if !owed && self.seen & Self::RES != 0 && before(next, self.res) {
            next = self.res;
        }
        let Ok(seq) = SeqState::from_raw(next, next, next) else {
            return 0;
        };
        e.seq = seq;
        // `reserved == next`: the next write reserves again.
        if !owed {
            *p = FlashPart {
                acked: next,
                read: next,
                end: next,
                reserved: next,
                ..FlashPart::default()
            };
            return 0;
        }
        *p = FlashPart {
            acked,
            read: acked,
            end,
            reserved: next,
            ..FlashPart::default()
        };
        end.wrapping_sub(acked)
    }
}

/// Serial-number "`a` is before `b`".
const fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Applies an evicted run to the flash parts.
fn evicted(table: &[Entry], parts: &mut [FlashPart], lost_total: &mut u32, ev: RunInfo) {
    let key = ev.key;
    let Ok(i) = table.binary_search_by(|e| e.key().cmp(&key)) else {
        return;
    };
    let Some(p) = parts.get_mut(i) else { return };
    let end = ev.end_seq();
    // Only records in [acked, end) of the flash part are owed to the uploader.
    if p.is_empty() || end.wrapping_sub(p.acked) as i32 <= 0 {
        return;
    }
    let end = if (end.wrapping_sub(p.end) as i32) > 0 {
        p.end
    } else {
        end
    };
    let n = end.wrapping_sub(p.acked);
    p.lost = p.lost.wrapping_add(n);
    *lost_total = lost_total.wrapping_add(n);
    // The evicted records the uploader holds (pending): still accepted by `ack`.
    let handed = if before(p.read, end) { p.read } else { end };
    if p.gone == 0 {
        p.gone_from = p.acked;
    }
    p.gone = p.gone.wrapping_add(handed.wrapping_sub(p.acked));
    p.acked = end;
    if (end.wrapping_sub(p.read) as i32) > 0 {
        p.read = end;
    }
}

/// What the spool still owes, for [`Storage::ack_keep`] and
/// [`Storage::reserve_keep`]: the unacknowledged records of each flash part
/// (`[acked, end)`) are copied forward rather than evicted.
struct SpoolKeep<'a> {
    table: &'a [Entry],
    parts: &'a mut [FlashPart],
    lost: &'a mut u32,
    /// Copy owed records forward (else evict them, counted lost).
    copy: bool,
}

impl Keep for SpoolKeep<'_> {
    fn owed(&mut self, run: &RunInfo) -> Option<(u32, u32)> {
        if !self.copy {
            return None;
        }
        let key = run.key;
        let i = self.table.binary_search_by(|e| e.key().cmp(&key)).ok()?;
        let p = self.parts.get(i)?;
        if p.is_empty() {
            return None;
        }
        let lo = if before(run.first_seq, p.acked) {
            p.acked
        } else {
            run.first_seq
        };
        let hi = if before(p.end, run.end_seq()) {
            p.end
        } else {
            run.end_seq()
        };
        before(lo, hi).then_some((lo, hi))
    }
    fn evicted(&mut self, run: RunInfo) {
        evicted(self.table, self.parts, self.lost, run)
    }
    /// A copy that holds the part's next unsent (or first unacknowledged)
    /// record is where reading continues (else the search for it would start
    /// at the oldest sector and walk the log up to the copy, the newest frame).
    fn copied(&mut self, run: &RunInfo, hint: ReadHint) {
        let key = run.key;
        let Ok(i) = self.table.binary_search_by(|e| e.key().cmp(&key)) else {
            return;
        };
        let Some(p) = self.parts.get_mut(i) else {
            return;
        };
        let holds = |q: u32| !before(q, run.first_seq) && before(q, run.end_seq());
        if holds(p.read) {
            p.hint = hint;
        }
        if holds(p.acked) {
            p.ack_hint = hint;
        }
    }
}

/// One run of a flush batch: records `[first, first + count)` of table slot `slot`.
#[derive(Clone, Copy, Debug)]
struct Spec {
    slot: usize,
    info: RunInfo,
}

/// A flush batch: records are read from the RAM sectors on demand.
struct SpoolBatch<'a, P, const SECTORS: usize> {
    specs: &'a [Spec],
    ram: &'a RamStore<P, SECTORS>,
    table: &'a [Entry],
    rates: &'a [u32],
    latest: u64,
}

fn rate_of(rates: &[u32], e: &Entry) -> u32 {
    match e.rate_idx {
        0 => 0,
        i => rates.get(i as usize - 1).copied().unwrap_or(0),
    }
}

fn kind_of(e: &Entry) -> Kind {
    if e.rate_idx == 0 {
        Kind::Evt
    } else {
        Kind::Tsd
    }
}

/// The spool's error for a failed storage call: [`Error::NoSpace`] when the
/// medium is full, else [`Error::Storage`]. Out of line: an error path, shared
/// by every storage call (code size).
#[cold]
#[inline(never)]
fn storage_error(e: StorageError) -> Error {
    match e {
        StorageError::NoSpace => Error::NoSpace,
        _ => Error::Storage,
    }
}

fn ram_get<P: SectorPool, const SECTORS: usize>(
    ram: &RamStore<P, SECTORS>,
    rates: &[u32],
    e: &Entry,
    seq: u32,
    latest: u64,
) -> Option<Record> {
    ram.get(e.ring, &e.seq, kind_of(e), rate_of(rates, e), seq, latest)
}

impl<P: SectorPool, const SECTORS: usize> Batch for SpoolBatch<'_, P, SECTORS> {
    fn runs(&self) -> usize {
        self.specs.len()
    }
    /// Records already handed out from RAM land whole or not at all (see
    /// `SensorLog::apply`).
    fn whole(&self) -> bool {
        self.specs
            .iter()
            .any(|sp| self.table.get(sp.slot).is_some_and(|e| e.seq.pending() > 0))
    }
    fn info(&self, i: usize) -> RunInfo {
        self.specs.get(i).map_or(RunInfo::EMPTY, |s| s.info)
    }
    fn record(&self, i: usize, k: usize, out: &mut [u8]) {
        let Some(s) = self.specs.get(i) else { return };
        let Some(e) = self.table.get(s.slot) else {
            return;
        };
        let seq = s.info.first_seq.wrapping_add(k as u32);
        let r = ram_get(self.ram, self.rates, e, seq, self.latest).unwrap_or(Record {
            seq,
            value: 0,
            time_ms: 0,
        });
        match s.info.kind {
            RecordKind::Tsd => out
                .get_mut(..4)
                .map_or((), |o| o.copy_from_slice(&record::encode_tsd(r.value))),
            RecordKind::Evt => out.get_mut(..8).map_or((), |o| {
                o.copy_from_slice(&record::encode_evt(record::ms_to_secs(r.time_ms), r.value))
            }),
        }
    }
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
    /// Sets the RAM use (percent of sectors, 1..=100) at which a write triggers a
    /// threshold flush. Default 80.
    pub fn set_flush_threshold(&mut self, pct: u8) {
        self.spill.threshold_sectors = threshold_sectors(pct, SECTORS);
    }

    /// Called after every successful write: threshold flush. Inline guard (nothing to
    /// do without persistent storage or during a shutdown flush), the rest out of line.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    pub(crate) fn after_write(&mut self, i: usize) {
        if !self.storage.is_persistent() {
            return;
        }
        if SPILL > 0
            && self.spill.mounted & MOUNTED != 0
            && let (Some(e), Some(p)) = (self.table.get(i), self.spill.parts.get(i))
        {
            let w = e.seq.written();
            // The record just written has number `w - 1`: reserve before it can
            // be handed out. After a failed reservation, retry every 64 writes.
            if before(p.reserved, w) && (w == p.reserved.wrapping_add(1) || w.is_multiple_of(64)) {
                self.reserve_for(i);
            }
        }
        if self.spill.flushing() {
            return;
        }
        let threshold = match self.spill.threshold_sectors {
            0 => threshold_sectors(DEFAULT_THRESHOLD_PCT, SECTORS),
            t => t,
        };
        if self.ram.sectors_held() >= threshold as u32 {
            self.threshold_flush();
        }
    }

    /// Persists a new reservation for slot `i`: `RESERVE_STEP` numbers past
    /// its newest record. A failure is counted in [`SpillStats::errors`]; the
    /// write itself stands.
    #[cold]
    #[inline(never)]
    fn reserve_for(&mut self, i: usize) {
        let Some(e) = self.table.get(i) else { return };
        let upto = reserve_upto(e.seq.written());
        let key: SensorKey = e.key();
        if self.storage_ready().is_err() {
            self.spill.errors = self.spill.errors.wrapping_add(1);
            return;
        }
        match self.persist_reservations(&[(key, upto)]) {
            Ok(()) => {
                if let Some(p) = self.spill.parts.get_mut(i) {
                    p.reserved = upto;
                }
                self.maybe_snapshot();
            }
            Err(_) => self.spill.errors = self.spill.errors.wrapping_add(1),
        }
    }

    /// Writes reservations; during a drain (a mark written since the last
    /// spill) a sector they open copies its owed records forward.
    fn persist_reservations(&mut self, entries: &[(SensorKey, u32)]) -> Result<(), StorageError> {
        let Self {
            table,
            storage,
            spill,
            ..
        } = self;
        let copy = spill.mounted & DRAINING != 0;
        let SpillState { parts, lost, .. } = spill;
        let mut keep = SpoolKeep {
            table,
            parts,
            lost,
            copy,
        };
        storage.reserve_keep(entries, &mut keep)
    }

    /// Writes every sensor's reservation again when the storage says the
    /// ones on the medium may soon be evicted (see [`Storage::snapshot_due`]).
    fn maybe_snapshot(&mut self) {
        if SPILL == 0 || !self.storage.snapshot_due() {
            return;
        }
        self.storage.snapshot_started();
        let mut at = 0;
        while at < self.table.len() {
            let mut entries: heapless::Vec<(SensorKey, u32), MAX_RESERVE_ENTRIES> =
                heapless::Vec::new();
            let mut slots: heapless::Vec<(usize, u32), MAX_RESERVE_ENTRIES> = heapless::Vec::new();
            while at < self.table.len() && !entries.is_full() {
                if let (Some(e), Some(p)) = (self.table.get(at), self.spill.parts.get(at)) {
                    let w = e.seq.written();
                    if w != 0 || p.reserved != 0 {
                        let upto = if before(p.reserved, w) {
                            reserve_upto(w)
                        } else {
                            p.reserved
                        };
                        let _ = entries.push((e.key(), upto));
                        let _ = slots.push((at, upto));
                    }
                }
                at += 1;
            }
            if entries.is_empty() {
                break;
            }
            if self.persist_reservations(&entries).is_err() {
                self.spill.errors = self.spill.errors.wrapping_add(1);
                return;
            }
            for &(slot, upto) in &slots {
                if let Some(p) = self.spill.parts.get_mut(slot) {
                    p.reserved = upto;
                }
            }
        }
    }

    /// Sets the durability window: the longest time, in ms of the clock passed
    /// to [`Spool::tick`], that a record stays in RAM only. 0 turns it off (the
    /// default: records then reach storage only at the flush threshold, on
    /// overflow, or in the shutdown flush). See [`Spool::tick`] for what the
    /// window guarantees and what it costs. No effect without persistent storage.
    pub fn set_max_unspilled_ms(&mut self, window_ms: u32) {
        self.window_ms = window_ms;
    }

    /// The durability window in ms (0: off), see [`Spool::set_max_unspilled_ms`].
    pub fn max_unspilled_ms(&self) -> u32 {
        self.window_ms
    }

    /// Periodic poll of the durability window ([`Spool::set_max_unspilled_ms`])
    /// with the caller's clock `now_ms` (any monotonic ms clock: uptime, or the
    /// time the records carry; only differences are used, modulo 2^32, so call
    /// it at least once every 49 days). Returns the number of records moved to
    /// storage.
    ///
    /// The spool remembers the last tick at which RAM held no record. When a
    /// tick finds records in RAM and at least the window has passed since then,
    /// **every** RAM record of every sensor goes to storage (partial sectors
    /// too, as many batches as that takes, usually one; records handed out to
    /// the uploader go along and stay pending), and the window starts again.
    ///
    /// Guarantee: after a tick at time `T` returns `Ok`, every record written
    /// at or before `T - window` (on the tick clock) is in storage,
    /// acknowledged, or counted lost; a power cut without the shutdown flush
    /// therefore loses at most the records written in the last `window` + one
    /// tick interval. The first tick (after creation, and after a shutdown
    /// flush or its cancel) that finds records in RAM spills them: their write
    /// time is unknown.
    ///
    /// Cost: at most one spill of everything in RAM per window while records
    /// keep arriving (a batch per window, whatever the tick rate), instead of
    /// none when an uploader keeps RAM below the threshold: every record still
    /// in RAM when the window expires is written to storage (and its
    /// acknowledgement writes a mark), even one about to be acknowledged. The
    /// gateway example (3,000 samples/s, uploader keeping up) programs 0.26
    /// flash bytes per payload byte with a 10 s window, 0.05 with 60 s, none
    /// without (`docs/storage.md`).
    /// Off (`0`), without persistent storage, and during a shutdown flush, a
    /// tick does nothing.
    ///
    /// # Errors
    /// As [`Spool::flush`]: the records that could not be moved stay in RAM
    /// and the next tick tries again.
    pub fn tick(&mut self, now_ms: u64) -> Result<u32, Error> {
        let w = self.window_ms;
        if w == 0 || self.spill.flushing || !self.storage.is_persistent() {
            return Ok(0);
        }
        // Only differences of the clock count: its low 32 bits suffice.
        let now = now_ms as u32;
        if self.ram.sectors_held() == 0 {
            self.spill.mark = now;
            return Ok(0);
        }
        let mark = self.spill.mark;
        if mark != 0 && now.wrapping_sub(mark) < w {
            return Ok(0);
        }
        self.window_spill(now)
    }

    /// The window expired: every RAM record goes to storage, batch after batch
    /// (at most one per RAM sector, so the loop is bounded).
    #[cold]
    #[inline(never)]
    fn window_spill(&mut self, now: u32) -> Result<u32, Error> {
        let mut moved = 0u32;
        for _ in 0..=SECTORS {
            match self.spill_batch(true)? {
                0 => break,
                n => moved = moved.wrapping_add(n),
            }
        }
        if self.ram.sectors_held() == 0 {
            self.spill.mark = now;
        }
        Ok(moved)
    }

    #[cold]
    #[inline(never)]
    fn threshold_flush(&mut self) {
        let _ = self.spill_batch(false);
    }

    /// Flushes one batch: the full RAM sectors of every sensor (oldest first),
    /// or with `all` every RAM record. Returns the number of records moved.
    ///
    /// # Errors
    /// [`Error::Storage`] if the storage refused the batch, [`Error::NoSpace`] if its
    /// medium is full (nothing changed either way).
    pub fn flush(&mut self) -> Result<u32, Error> {
        self.spill_batch(false)
    }

    pub(crate) fn spill_batch(&mut self, all: bool) -> Result<u32, Error> {
        self.spill_batch_of(all, None)
    }

    /// [`Spool::spill_batch`] of every sensor, or of slot `only`.
    fn spill_batch_of(&mut self, all: bool, only: Option<usize>) -> Result<u32, Error> {
        if !self.storage.is_persistent() {
            return Ok(0);
        }
        let room = self.storage.max_batch_bytes();
        let mut specs: heapless::Vec<Spec, MAX_RUNS> = heapless::Vec::new();
        let mut used = 0usize;
        'sensors: for (slot, e) in self.table.iter().enumerate() {
            if slot >= self.spill.parts.len() {
                break;
            }
            if only.is_some_and(|o| o != slot) {
                continue;
            }
            let kind = kind_of(e);
            let n = RamStore::<P, SECTORS>::per_sector(kind);
            let s = e.seq;
            let mut stop = if all {
                s.written()
            } else {
                s.written() & !(n - 1)
            };
            if s.pending() > 0 && before(stop, s.read()) {
                // Records handed out from RAM go with the batch, so a flash
                // part never has records handed out beyond its end (see
                // `SensorLog::apply`).
                stop = s.read();
            }
            let avail = stop.wrapping_sub(s.erased());
            if s.count() == 0 || avail == 0 || avail > s.count() {
                continue;
            }
            let rkind = kind;
            let rate = rate_of(&self.rates, e);
            let size = kind.record_size();
            let mut seq = s.erased();
            let (specs_before, used_before) = (specs.len(), used);
            let mut full = false;
            while seq != stop {
                let hdr = crate::storage::run_encoded_len(rkind, 0);
                if used + hdr + size > room || specs.is_full() {
                    full = true;
                    break;
                }
                let max = ((room - used - hdr) / size)
                    .min(stop.wrapping_sub(seq) as usize)
                    .min(u16::MAX as usize) as u32;
                let Some(first) = ram_get(&self.ram, &self.rates, e, seq, self.latest_ms) else {
                    break;
                };
                let base = first.time_ms;
                let mut count = 1u32;
                // A TSD run continues while the times stay on the sample grid.
                while count < max {
                    if kind == Kind::Tsd {
                        let t = ram_get(
                            &self.ram,
                            &self.rates,
                            e,
                            seq.wrapping_add(count),
                            self.latest_ms,
                        )
                        .map(|r| r.time_ms);
                        if t != Some(base.wrapping_add(count as u64 * rate as u64)) {
                            break;
                        }
                    }
                    count += 1;
                }
                let meta = if kind == Kind::Tsd {
                    RunMeta {
                        base_time: base,
                        interval: rate,
                    }
                } else {
                    RunMeta::default()
                };
                let info = RunInfo {
                    key: e.key(),
                    kind: rkind,
                    first_seq: seq,
                    count: count as u16,
                    meta,
                };
                used += crate::storage::run_encoded_len(rkind, count as usize);
                let _ = specs.push(Spec { slot, info });
                seq = seq.wrapping_add(count);
            }
            if s.pending() > 0 && before(seq, s.read()) {
                // Records handed out from RAM go whole or not at all (see
                // above): this sensor waits for a batch with room.
                specs.truncate(specs_before);
                used = used_before;
                continue;
            }
            if full {
                break 'sensors;
            }
        }
        if specs.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.storage_ready() {
            self.spill.errors = self.spill.errors.wrapping_add(1);
            return Err(e);
        }
        let Self {
            ram,
            table,
            rates,
            storage,
            spill,
            latest_ms,
            ..
        } = self;
        let tail = storage.tail_hint();
        let SpillState { parts, lost, .. } = spill;
        let first_src = specs.first().map_or(0, |sp| sp.info.key.source);
        let res = loop {
            let batch = SpoolBatch {
                specs: &specs,
                ram,
                table,
                rates,
                latest: *latest_ms,
            };
            let res = storage.append(&batch, |ev| evicted(table, parts, lost, ev));
            if res == Err(StorageError::TooLarge)
                && specs.iter().any(|sp| sp.info.key.source != first_src)
            {
                // A store that keeps sources apart (files) could not make room for
                // every source of the batch without evicting what the batch itself
                // wrote (nothing was kept): the first source alone.
                specs.retain(|sp| sp.info.key.source == first_src);
                continue;
            }
            break res;
        };
        if let Err(e) = res {
            // The records stay in RAM, but some or all of them may be in storage.
            for sp in &specs {
                let Some(e) = self.table.get(sp.slot) else {
                    continue;
                };
                let n = sp
                    .info
                    .end_seq()
                    .wrapping_sub(e.seq.erased())
                    .min(e.seq.count());
                if let Some(p) = self.spill.parts.get_mut(sp.slot) {
                    p.unsure = p.unsure.max(n);
                }
            }
            self.spill.errors = self.spill.errors.wrapping_add(1);
            return Err(storage_error(e));
        }
        // The batch is on flash: move the records out of RAM.
        let mut moved = 0u32;
        for sp in &specs {
            let i = sp.slot;
            let Some(&e) = self.table.get(i) else {
                return Err(Error::Invariant);
            };
            let k = sp.info.count as u32;
            let old = e.seq;
            let new_erased = old.erased().wrapping_add(k);
            let new_read = if (old.read().wrapping_sub(new_erased) as i32) < 0 {
                new_erased
            } else {
                old.read()
            };
            let Ok(new) = SeqState::from_raw(new_erased, new_read, old.written()) else {
                return Err(Error::Invariant);
            };
            let Some(p) = self.spill.parts.get_mut(i) else {
                return Err(Error::Invariant);
            };
            if p.is_empty() {
                // Flash part restarts at the RAM head; pending RAM records stay pending.
                p.acked = old.erased();
                p.read = old.erased();
                p.end = old.erased();
                p.hint = tail;
                p.ack_hint = tail;
            }
            // RAM records already read (pending) stay pending in the flash part;
            // RAM pending implies the flash part was fully read (`p.read == p.end`).
            if old.pending() > 0 {
                p.read = if (old.read().wrapping_sub(new_erased) as i32) < 0 {
                    old.read()
                } else {
                    new_erased
                };
            }
            p.end = new_erased;
            p.unsure = p.unsure.saturating_sub(k);
            let mut ring = e.ring;
            let kind = kind_of(&e);
            let rate = rate_of(&self.rates, &e);
            self.ram.release(&mut ring, &old, &new, kind, rate);
            let Some(e) = self.table.get_mut(i) else {
                return Err(Error::Invariant);
            };
            e.seq = new;
            e.ring = ring;
            moved += k;
        }
        self.spill.batches = self.spill.batches.wrapping_add(1);
        self.spill.flushed = self.spill.flushed.wrapping_add(moved);
        self.spill.mounted &= !DRAINING;
        self.maybe_snapshot();
        Ok(moved)
    }

    /// Next unsent flash record of slot `i`, if its flash part has one.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    pub(crate) fn read_flash(&mut self, i: usize) -> Result<Option<Record>, Error> {
        // Fast path: RAM-only spool (no flash parts), or nothing unsent in flash.
        if SPILL == 0 {
            return Ok(None);
        }
        match self.spill.parts.get(i) {
            Some(p) if p.available() > 0 => self.read_flash_part(i),
            Some(p)
                if !p.is_empty() && self.table.get(i).is_some_and(|e| e.seq.available() > 0) =>
            {
                self.read_past_part(i)
            }
            _ => Ok(None),
        }
    }

    /// Before RAM record `seq` of slot `i` is handed out: its number must be
    /// reserved in storage (the reservation after its write may have failed),
    /// and at most one batch of RAM records is handed out at a time, so that a
    /// spill can take every handed-out RAM record in one frame: past that,
    /// this sensor's RAM records go to storage first and the record comes
    /// from there (returned). If storage refuses, the RAM record is handed
    /// out anyway (a failing medium; counted in [`SpillStats::errors`]).
    #[inline(always)]
    pub(crate) fn before_ram_handout(
        &mut self,
        i: usize,
        seq: u32,
    ) -> Result<Option<Record>, Error> {
        if SPILL == 0 || self.spill.mounted & MOUNTED == 0 || !self.storage.is_persistent() {
            return Ok(None);
        }
        let (Some(e), Some(p)) = (self.table.get(i), self.spill.parts.get(i)) else {
            return Ok(None);
        };
        let kind = kind_of(e);
        let room = self
            .storage
            .max_batch_bytes()
            .saturating_sub(crate::storage::run_encoded_len(kind, 0));
        if e.seq.pending() as usize >= (room / kind.record_size()).max(1) {
            return self.read_past_part(i);
        }
        if !before(seq, p.reserved) {
            self.reserve_for(i);
        }
        Ok(None)
    }

    /// The flash part is all handed out and owed, and RAM has unsent records:
    /// they go to storage first and come back from there. RAM records are
    /// handed out only while the flash part is empty, so no number is ever
    /// handed out beyond the end of owed stored records, and a restart can
    /// continue right after them (see `SensorLog::apply`). If storage refuses,
    /// the RAM record is handed out anyway (a failing medium; counted in
    /// [`SpillStats::errors`]).
    #[cold]
    #[inline(never)]
    fn read_past_part(&mut self, i: usize) -> Result<Option<Record>, Error> {
        if self.spill_batch_of(true, Some(i)).is_ok_and(|n| n > 0)
            && self.spill.parts.get(i).is_some_and(|p| p.available() > 0)
        {
            return self.read_flash_part(i);
        }
        Ok(None)
    }

    fn read_flash_part(&mut self, i: usize) -> Result<Option<Record>, Error> {
        self.storage_ready()?;
        let Some(&e) = self.table.get(i) else {
            return Err(Error::Invariant);
        };
        let Some(p) = self.spill.parts.get(i).copied() else {
            return Ok(None);
        };
        let mut p = p;
        let mut out = [0u8; 8];
        let key: SensorKey = e.key();
        while p.available() > 0 {
            let got = self
                .storage
                .read_hinted(key, p.read, &mut p.hint, &mut out)
                .map_err(storage_error)?;
            let gap = match got {
                Some(ro) if ro.first.wrapping_sub(p.read) < p.available() => {
                    ro.first.wrapping_sub(p.read)
                }
                // Nothing left in storage for this part.
                _ => p.available(),
            };
            if gap > 0 && p.pending() > 0 {
                // Records missing (damage) right after pending ones: they can be
                // counted lost only once the pending records are acknowledged
                // or reverted (`ack(n)` covers exactly the records handed out).
                if let Some(x) = self.spill.parts.get_mut(i) {
                    *x = p;
                }
                return Err(Error::NoData);
            }
            let Some(ro) = got.filter(|_| gap < p.available()) else {
                let n = p.available();
                self.lose(&mut p, n);
                break;
            };
            if ro.first != p.read {
                let n = ro.first.wrapping_sub(p.read);
                self.lose(&mut p, n);
                continue;
            }
            let seq = p.read;
            let rec = match ro.run.kind {
                RecordKind::Tsd => {
                    let k = seq.wrapping_sub(ro.run.first_seq) as u64;
                    let t = ro
                        .run
                        .meta
                        .base_time
                        .wrapping_add(k * ro.run.meta.interval as u64);
                    Record {
                        seq,
                        value: record::decode_tsd([out[0], out[1], out[2], out[3]]),
                        time_ms: t,
                    }
                }
                RecordKind::Evt => {
                    let (t, v) = record::decode_evt(out);
                    Record {
                        seq,
                        value: v,
                        time_ms: t as u64 * 1000,
                    }
                }
            };
            p.read = seq.wrapping_add(1);
            if let Some(x) = self.spill.parts.get_mut(i) {
                *x = p;
            }
            return Ok(Some(rec));
        }
        if let Some(x) = self.spill.parts.get_mut(i) {
            *x = p;
        }
        Ok(None)
    }

    /// `n` unsent records at `p.read` are not in storage (evicted or damaged);
    /// nothing is pending (`p.read == p.acked`).
    fn lose(&mut self, p: &mut FlashPart, n: u32) {
        p.ack_hint = p.hint;
        p.acked = p.acked.wrapping_add(n);
        p.read = p.read.wrapping_add(n);
        p.lost = p.lost.wrapping_add(n);
        self.spill.lost = self.spill.lost.wrapping_add(n);
    }

    /// The storage side of acknowledging `n` records of slot `i` (records
    /// evicted while pending first, then pending flash records, then RAM
    /// records): when any of them may ever have reached storage (in storage,
    /// evicted while pending, or in RAM after an append that failed), one mark
    /// that covers all of them is written first. Returns how many of `n` are
    /// RAM records, for the caller to acknowledge in RAM.
    pub(crate) fn ack_stored(&mut self, i: usize, n: u32) -> Result<u32, Error> {
        if SPILL == 0 {
            return Ok(n);
        }
        let (Some(p), Some(e)) = (self.spill.parts.get(i).copied(), self.table.get(i)) else {
            return Ok(n);
        };
        let gk = n.min(p.gone);
        let fk = (n - gk).min(p.pending());
        let rk = n - gk - fk;
        if gk == 0 && fk == 0 && (rk == 0 || p.unsure == 0) {
            return Ok(n);
        }
        let upto = if rk > 0 {
            e.seq.erased().wrapping_add(rk)
        } else if fk > 0 {
            p.acked.wrapping_add(fk)
        } else {
            p.gone_from.wrapping_add(gk)
        };
        self.write_mark(i, upto)?;
        let Some(q) = self.spill.parts.get_mut(i) else {
            return Err(Error::Invariant);
        };
        let g = gk.min(q.gone);
        q.gone -= g;

        q.gone_from = q.gone_from.wrapping_add(g);
        let fupto = p.acked.wrapping_add(fk);
        if before(q.acked, fupto) {
            q.acked = fupto;
        }
        if q.acked == q.read {
            q.ack_hint = q.hint;
        }
        q.unsure = q.unsure.saturating_sub(rk);
        // Only now: a snapshot's reservations may open a sector and copy owed
        // records forward, and a copy made from the state before this mark
        // would carry acknowledged records past it (they would come back once
        // the mark's sector is evicted before the copy's).
        self.maybe_snapshot();
        Ok(rk)
    }

    /// Writes an acknowledgement mark: every record of slot `i` before `upto`
    /// is acknowledged. If opening a sector for the mark evicts records the
    /// mark covers, they count as acknowledged, not lost.
    fn write_mark(&mut self, i: usize, upto: u32) -> Result<(), Error> {
        let key: SensorKey = self.table.get(i).ok_or(Error::Invariant)?.key();
        let a0 = self.spill.parts.get(i).ok_or(Error::Invariant)?.acked;
        self.storage_ready()?;
        let Self {
            table,
            storage,
            spill,
            ..
        } = self;
        let SpillState { parts, lost, .. } = spill;
        let mut keep = SpoolKeep {
            table,
            parts,
            lost,
            copy: true,
        };
        storage
            .ack_keep(key, upto, &mut keep)
            .map_err(storage_error)?;
        self.spill.mounted |= DRAINING;
        let SpillState { parts, lost, .. } = &mut self.spill;
        let Some(p) = parts.get_mut(i) else {
            return Err(Error::Invariant);
        };
        if before(a0, p.acked) {
            let covered = if before(upto, p.acked) { upto } else { p.acked }.wrapping_sub(a0);
            p.gone = p.gone.saturating_sub(covered);
            p.lost = p.lost.wrapping_sub(covered);
            *lost = lost.wrapping_sub(covered);
        }
        Ok(())
    }

    /// Pending flash records of slot `i`.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    pub(crate) fn flash_pending(&self, i: usize) -> u32 {
        if SPILL == 0 {
            return 0;
        }
        self.spill.parts.get(i).map_or(0, |p| p.pending())
    }

    /// Records of slot `i` handed out and evicted before their acknowledgement.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    pub(crate) fn flash_gone(&self, i: usize) -> u32 {
        if SPILL == 0 {
            return 0;
        }
        self.spill.parts.get(i).map_or(0, |p| p.gone)
    }

    /// NACK: pending flash records of slot `i` become unsent; returns how many.
    /// Records evicted while pending are forgotten.
    #[inline]
    pub(crate) fn revert_flash(&mut self, i: usize) -> u32 {
        if SPILL == 0 {
            return 0;
        }
        match self.spill.parts.get_mut(i) {
            Some(p) => {
                let n = p.pending();
                p.read = p.acked;
                p.hint = p.ack_hint;
                p.gone = 0;
                n
            }
            None => 0,
        }
    }

    /// Drops the flash part of slot `i` ahead of a clear of its RAM records:
    /// when any record of the sensor may be in storage, one mark covering
    /// every record written so far is persisted first. Returns how many flash
    /// records were dropped.
    pub(crate) fn clear_flash(&mut self, i: usize) -> Result<u32, Error> {
        if SPILL == 0 {
            return Ok(0);
        }
        let (Some(p), Some(e)) = (self.spill.parts.get(i).copied(), self.table.get(i)) else {
            return Ok(0);
        };
        let written = e.seq.written();
        let n = p.count();
        if !p.is_empty() || p.gone > 0 || p.unsure > 0 {
            self.write_mark(i, written)?;
        }
        let Some(p) = self.spill.parts.get_mut(i) else {
            return Err(Error::Invariant);
        };
        p.acked = p.end;
        p.read = p.end;
        p.gone = 0;
        p.unsure = 0;
        // After the state matches the mark (see `ack_stored`).
        self.maybe_snapshot();
        Ok(n)
    }

    /// Starts a shutdown flush of every RAM record (legacy `flush_all_to_disk`).
    pub fn flush_all_start(&mut self) {
        self.spill.flushing = true;
        self.spill.mark = 0;
        self.spill.flush_total = self.table.iter().map(|e| e.seq.count()).sum();
    }

    /// One step of the shutdown flush (one batch); returns the progress:
    /// 0..=100 while records remain in RAM, 101 when RAM is empty (safe to power
    /// off). Without a started flush, returns the current progress.
    ///
    /// # Flash I/O
    /// One batch, as a threshold spill of [`Spool::write`].
    ///
    /// # Errors
    /// [`Error::Storage`] if the batch failed, [`Error::NoSpace`] if the medium is
    /// full (nothing changed either way; retry or cancel).
    pub fn flush_all_step(&mut self) -> Result<u8, Error> {
        if self.spill.flushing() && self.storage.is_persistent() {
            let moved = self.spill_batch(true)?;
            self.spill.mark = self.spill.mark.wrapping_add(moved);
            if moved == 0 && self.table.iter().any(|e| e.seq.count() > 0) {
                return Err(Error::Storage);
            }
        }
        let progress = self.flush_progress();
        if progress == 101 {
            // Done: threshold spills resume for whatever is written next.
            self.spill.flushing = false;
            self.spill.mark = 0;
        }
        Ok(progress)
    }

    /// Runs the shutdown flush to the end.
    ///
    /// # Errors
    /// As [`Spool::flush_all_step`]; [`Error::Storage`] without persistent storage.
    pub fn flush_all(&mut self) -> Result<(), Error> {
        if !self.storage.is_persistent() {
            return Err(Error::Storage);
        }
        self.flush_all_start();
        while self.flush_all_step()? != 101 {}
        Ok(())
    }

    /// Shutdown-flush progress: 101 when no record is in RAM (safe to power
    /// off), else 0..=100 (share of the records present at the start that have
    /// been flushed; 0 when no flush runs).
    pub fn flush_progress(&self) -> u8 {
        let left: u32 = self.table.iter().map(|e| e.seq.count()).sum();
        if left == 0 {
            return 101;
        }
        if !self.spill.flushing || self.spill.flush_total == 0 {
            return 0;
        }
        // No 64-bit division (32-bit targets): see `record::div_sat_u32`.
        crate::record::div_sat_u32(self.spill.mark as u64 * 100, self.spill.flush_total).min(100)
            as u8
    }

    /// Cancels a shutdown flush (legacy `cancel_memory_flush`). Everything flushed
    /// so far stays in storage, the rest stays in RAM; both are consistent.
    pub fn cancel_flush(&mut self) {
        if self.spill.flushing {
            self.spill.flushing = false;
            self.spill.mark = 0;
        }
    }

    /// Mounts the storage and rebuilds the flash part of every registered sensor
    /// from the log (call after a reset, once the sensors are registered and
    /// before writing). Returns the number of unacknowledged records found.
    ///
    /// # Flash I/O
    /// One call: the mount (sector headers and the newest sector) and one walk
    /// of the whole log, each frame read once for its CRC and run headers
    /// (1.03x to 1.07x of the bytes in use measured; not stepped).
    ///
    /// # Errors
    /// [`Error::Storage`] if the storage cannot be mounted or read.
    pub fn recover_storage(&mut self) -> Result<u32, Error> {
        self.storage.mount().map_err(storage_error)?;
        self.spill.mounted |= MOUNTED;
        self.spill.forget_hints();
        let mut logs = [SensorLog::default(); SPILL];
        let table = &self.table;
        self.storage
            .recover(|entry| {
                let k = entry_key(&entry);
                if let Ok(i) = table.binary_search_by(|e| e.key().cmp(&k))
                    && let Some(log) = logs.get_mut(i)
                {
                    log.note(&entry);
                }
            })
            .map_err(storage_error)?;
        let mut total = 0u32;
        for (i, log) in logs.iter().enumerate() {
            let (Some(e), Some(p)) = (self.table.get_mut(i), self.spill.parts.get_mut(i)) else {
                break;
            };
            total = total.wrapping_add(log.apply(e, p));
        }
        Ok(total)
    }

    /// [`Spool::recover_storage`] for one sensor registered after it ran (a late
    /// registration): its records of the previous run are rebuilt by the same
    /// rules, so the sensor does not reuse their sequence numbers. Reads the whole
    /// log once. Returns the number of unacknowledged records found (0 for a
    /// sensor that already holds records, or has no flash part).
    ///
    /// # Errors
    /// [`Error::UnknownSensor`]; [`Error::Storage`] if the log cannot be read.
    pub fn recover_sensor(&mut self, h: SensorHandle) -> Result<u32, Error> {
        let i = self.resolve(h)?;
        let key: SensorKey = self.at(i)?.key();
        let mut log = SensorLog::default();
        self.storage
            .recover(|entry| {
                if entry_key(&entry) == key {
                    log.note(&entry);
                }
            })
            .map_err(storage_error)?;
        match (self.table.get_mut(i), self.spill.parts.get_mut(i)) {
            (Some(e), Some(p)) => Ok(log.apply(e, p)),
            _ => Ok(0),
        }
    }

    /// The sequence number before which every record of a sensor is in
    /// storage, acknowledged, or counted lost: what a power cut cannot take
    /// away any more (with a RAM-only spool nothing is in storage, so this
    /// is where the records still owed in RAM start). Records from here on
    /// are in RAM only (some perhaps in storage too, after an append that
    /// failed: they count as in RAM until a spill succeeds).
    ///
    /// # Errors
    /// [`Error::UnknownSensor`].
    pub fn durable_upto(&self, h: SensorHandle) -> Result<u32, Error> {
        let i = self.resolve(h)?;
        Ok(self.at(i)?.seq.erased())
    }

    /// Records moved to storage, batches appended, failed flushes and
    /// unacknowledged records lost in storage (eviction or damage).
    pub fn spill_stats(&self) -> SpillStats {
        SpillStats {
            flushed: self.spill.flushed,
            batches: self.spill.batches,
            errors: self.spill.errors,
            lost: self.spill.lost,
            in_storage: self.spill.parts.iter().map(|p| p.count()).sum(),
            remounts: self.spill.remounts,
        }
    }

    /// Mounts the storage again if it unmounted itself after a failed program
    /// or erase (its position in the log was no longer certain). Only the
    /// storage's own state is rebuilt: the flash parts stay as they are, since
    /// every record they cover was on the medium before the failure and the
    /// batch that failed is still in RAM (a torn frame of it is skipped by
    /// mount; a complete one is appended again, and readers take the first
    /// copy).
    fn storage_ready(&mut self) -> Result<(), Error> {
        if self.spill.mounted & MOUNTED == 0 || self.storage.is_mounted() {
            return Ok(());
        }
        self.storage.mount().map_err(storage_error)?;
        self.spill.remounts = self.spill.remounts.wrapping_add(1);
        self.spill.forget_hints();
        Ok(())
    }

    /// The overflow policy dropped RAM records of slot `i`, moving its oldest RAM
    /// record from `old_erased` to `new_erased`. If the slot has a flash part,
    /// the dropped records sat right after it: the part is extended over them so
    /// that it still ends where RAM begins, and they are counted lost (once) when
    /// reading or eviction reaches the gap, as records missing from storage.
    /// Returns whether that happened (the caller then does not count them).
    pub(crate) fn ram_dropped_after_part(
        &mut self,
        i: usize,
        old_erased: u32,
        new_erased: u32,
    ) -> bool {
        if SPILL == 0 || old_erased == new_erased {
            return false;
        }
        if let Some(p) = self.spill.parts.get_mut(i) {
            p.unsure = p.unsure.saturating_sub(new_erased.wrapping_sub(old_erased));
        }
        match self.spill.parts.get_mut(i) {
            Some(p) if !p.is_empty() && p.end == old_erased => {
                p.end = new_erased;
                true
            }
            _ => false,
        }
    }

    /// Checks the flash parts against the RAM state.
    pub(crate) fn check_flash(&self) -> bool {
        (SPILL == 0 || self.spill.parts.len() == self.table.len())
            && self
                .spill
                .parts
                .iter()
                .zip(self.table.iter())
                .all(|(p, e)| {
                    let ordered = p.read.wrapping_sub(p.acked) <= p.end.wrapping_sub(p.acked);
                    ordered && (p.is_empty() || p.end == e.seq.erased())
                })
    }
}

/// Spill counters (see [`Spool::spill_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Records moved from RAM to storage (wrapping).
    pub flushed: u32,
    /// Batches appended (wrapping).
    pub batches: u32,
    /// Storage operations of the spill that failed: flushes the storage refused
    /// (records stayed in RAM) and reservations not written.
    pub errors: u32,
    /// Unacknowledged records lost in storage: evicted or damaged (wrapping).
    pub lost: u32,
    /// Unacknowledged records currently in storage.
    pub in_storage: u32,
    /// Times the storage was mounted again after it unmounted itself on a
    /// failed program or erase (wrapping).
    pub remounts: u32,
}

#[cfg(test)]
mod tests {
    use super::FlashPart;

    #[test]
    fn flash_part_size_matches_the_size_report() {
        // scripts/size-report.sh counts this per sensor slot of the C API's store.
        assert_eq!(core::mem::size_of::<FlashPart>(), 56);
    }
}
