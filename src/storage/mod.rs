//! Non-volatile storage the spool spills into.
//!
//! The spool keeps recent samples in RAM and, when RAM fills up, hands the oldest
//! full RAM sectors of all sensors to a [`Storage`] as **one batch** (a list of
//! per-sensor [`Run`]s). Storage keeps batches in write order, hands a sensor's
//! records back oldest first, persists acknowledgement marks, and evicts the
//! oldest data when full, reporting what it evicted.
//!
//! Implementations:
//! - [`NoStorage`]: RAM-only builds; every append is refused with
//!   [`StorageError::Unsupported`].
//! - [`NorFlashStorage`]: a log of CRC-framed batches over the erase sectors of any
//!   plain [`embedded_storage::nor_flash::NorFlash`] (write-once words, no
//!   `MultiwriteNorFlash`), `WRITE_SIZE` 1..=32, `ERASE_SIZE` 256 B..=128 KiB.
//! - `mock_flash::MockFlash` (feature `_mock-flash`, test support, semver-exempt):
//!   a fault-injecting NOR flash for power-loss tests.
//!
//! Read-only inspection of a flash dump or spool directory (what the
//! `spool-inspect` tool of feature `cli` prints): [`inspect`].
//!
//! # Record identity
//!
//! A run is `(SensorKey, RecordKind, first sequence number, count, RunMeta,
//! records)`. Sequence numbers are per sensor, `u32`, compared with serial-number
//! (wrapping) arithmetic, so a sensor may store fewer than 2^31 records at once.
//! Records are opaque fixed-size byte strings: 4 bytes for TSD (value; time is
//! `RunMeta::base_time + i * RunMeta::interval`), 8 bytes for EVT (UTC seconds then
//! value, little-endian).
//!
//! # On-flash format (`NorFlashStorage`)
//!
//! `W` = `NorFlash::WRITE_SIZE`, `E` = `NorFlash::ERASE_SIZE`, `N` = capacity / `E`
//! sectors (N >= 2). Erased bytes read `0xFF`. All integers little-endian.
//! Every program operation starts at a `W`-aligned offset and writes a multiple of
//! `W` bytes; no word is ever programmed twice between erases.
//!
//! **Sector** (`E` bytes): a header, then frames back to back, then erased space.
//! Batch frames never use the sector's last `T` bytes (the **tail**, kept for
//! acknowledgement, reservation and eviction frames): `T` = four
//! acknowledgement frames (`4 x round_up(20, W)`, 80 to 128 bytes), at most a
//! quarter of the sector's frame space rounded down to `W`, at least one
//! acknowledgement frame (E = 256 B: 48 to 56 bytes; see "Acknowledgements
//! never destroy unread records" below).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `"SPL2"` (format version 2; version 1 sectors are not read) |
//! | 4 | 6 | sequence number (48 bits): +1 for every sector opened, at most 2^47 - 1 |
//! | 10 | 2 | `back`: the oldest live sector is numbered `sequence - back` (the floor) |
//! | 12 | 4 | CRC-32C of bytes 0..12 |
//! | 16 | `H`-16 | padding `0xFF` up to `H = round_up(16, W)` |
//!
//! **Live sectors** are those with a valid header numbered from the floor to the
//! newest sector's number; the floor is the newest header's, raised by any
//! eviction frame (below) in the newest sector. Every other sector is free,
//! whatever it still holds: an evicted sector keeps its bytes until the ring
//! comes round to it and erases it, so eviction is recorded on flash (the
//! floor) before any byte of the evicted sector is touched. At most `N - 1`
//! sectors are live: the sector after the newest is always free, and opening
//! it moves the floor past the oldest when the ring is full.
//!
//! **Frame** (one batch or one acknowledgement; `L` bytes, `L` a multiple of `W`,
//! `L <= 65535`, a frame never crosses a sector boundary):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | tag: `0xB5` batch, `0xB8` packed batch, `0xAC` acknowledgement, `0xA5` reservation, `0xE7` eviction, `0xB6`/`0xB7` compact batch (below) (`0xFF` = erased, end of sector) |
//! | 1 | 2 | `L`, total frame length including padding and CRC |
//! | 3 | 1 | header check: CRC-8/SMBus of bytes 0..3 |
//! | 4 | .. | body (below) |
//! | .. | .. | padding `0xFF` |
//! | `L`-4 | 4 | CRC-32C of bytes 0..`L`-4 |
//!
//! **Batch body**: runs back to back, ended by padding (`0xFF`) or the CRC.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind: `0x01` TSD, `0x02` EVT |
//! | 1 | 1 | `SensorKey::source` |
//! | 2 | 2 | record count `c` (1..=65535) |
//! | 4 | 4 | `SensorKey::id` |
//! | 8 | 4 | sequence number of the first record |
//! | 12 | 12 | TSD only: base time `u64` (ms), interval `u32` (ms) |
//! | 12 or 24 | `c` x 4 (TSD) or `c` x 8 (EVT) | records |
//!
//! **Packed batch frame** (tag `0xB8`): a batch body whose runs have
//! variable-length headers. Read wherever a batch frame is read; appends and
//! the copy-forward of owed records (below) write it whenever it is shorter
//! than the plain frame for the same runs (a one-run batch that fits takes a
//! compact frame). Integers are LEB128 varints
//! (7 bits per byte, low bits first, bit 7 set on every byte but the last).
//!
//! | field | size | meaning |
//! |---|---|---|
//! | lead | 1 | bits 0..2: kind `0x01` TSD, `0x02` EVT; bits 2..8: record count when 1..=63, else 0 (never `0xFF`: padding ends the runs) |
//! | source | 1 | `SensorKey::source` |
//! | count | varint, only when the lead holds 0 | record count `c` (1..=65535) |
//! | id | varint | `SensorKey::id` |
//! | first | varint | sequence number of the first record |
//! | base time, interval | varint, varint | TSD only: `u64` ms, `u32` ms |
//! | records | `c` x 4 (TSD) or `c` x 8 (EVT) | as in a plain run |
//!
//! An EVT run of a small sensor id at a sequence number below 2^21 has a
//! 6-byte header instead of 12, a TSD run about 14 instead of 24; every
//! header is whole in itself, so a read can start at any run.
//!
//! **Compact batch frame** (tag `0xB6`: one TSD run, `0xB7`: one EVT run): a batch
//! of a single run whose source is at most 3 and count at most 16,383 (what the
//! spool spills for one sensor, and every one-sensor append) is written with frame
//! and run header in one, 4 bytes shorter than a plain frame: 16 bytes of overhead
//! for EVT, so a batch of 8-byte samples needs no padding up to `W` = 8.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | tag `0xB6` (TSD) or `0xB7` (EVT) |
//! | 1 | 2 | record count `c` (bits 0..14, 1..=16383) and `SensorKey::source` (bits 14..16) |
//! | 3 | 1 | header check: CRC-8/SMBus of bytes 0..3 |
//! | 4 | 4 | `SensorKey::id` |
//! | 8 | 4 | sequence number of the first record |
//! | 12 | 12 | TSD only: base time `u64` (ms), interval `u32` (ms) |
//! | 12 or 24 | `c` x 4 (TSD) or `c` x 8 (EVT) | records |
//! | .. | .. | padding `0xFF` |
//! | `L`-4 | 4 | CRC-32C of bytes 0..`L`-4 |
//!
//! The length is not stored: `L = round_up(12 or 24 + c x record size + 4, W)`, so
//! the header check protects it exactly as it protects a plain frame's length.
//!
//! **Copy-forward.** A sector that [`Storage::ack_keep`] or
//! [`Storage::reserve_keep`] opens may begin with copies of the owed records
//! of the sector its opening evicts (below); a copy is an ordinary batch frame,
//! one per frame of the victim that holds owed records, with the owed part of
//! each of its runs (same sensor, kind, sequence numbers, timing and record
//! bytes). Copies sit after later records of their sensor in the log: readers
//! look for the frame that holds a record itself before taking the first frame
//! with later records, and recovery takes a sensor's smallest surviving
//! sequence number as its first. A record is never live twice: the copies
//! become live and the victim obsolete with the same header program.
//!
//! **Eviction body** (8 bytes; frame length `round_up(16, W)`): the new floor
//! `u64` ([`Storage::evict_oldest`] with room in the newest sector; otherwise
//! it opens a new sector whose header carries the floor).
//!
//! **Acknowledgement body** (12 bytes; frame length `round_up(20, W)`): source
//! `u8`, 3 reserved bytes `0xFF`, id `u32`, `upto` `u32`: every record of that
//! sensor with a sequence number before `upto` is acknowledged. The mark with the
//! latest position in the log wins. A mark only ever covers records written
//! before it in the log (records copied forward are owed, so no earlier mark
//! covers them), so evicting the sector that holds it also evicts the records
//! it covers: marks never need to be copied forward.
//!
//! **Reservation body** (frame length `round_up(8 + 12 x n, W)`): `n` entries
//! of 12 bytes, ended by the padding or the CRC: source `u8`, marker `0x52`, 2
//! bytes `0xFF`, id `u32`, `upto` `u32`: the sensor has handed out no sequence
//! number at or after `upto` (see [`Storage::reserve`]). The largest `upto`
//! found for a sensor anywhere on flash wins, in live sectors or not.
//!
//! # Acknowledgements never destroy unread records
//!
//! A mark or reservation needs room in the newest sector. It gets it from the
//! tail (batch frames stop `T` bytes before the end of every sector, so up to
//! four marks fit after a sector's last batch) or from what is left of the
//! sector. Only when the newest sector is full, or must not be programmed again
//! (after every mount), does a mark or reservation open the next sector, and
//! when the ring is full that evicts the oldest sector, which may still hold
//! records the uploader has not acknowledged (a drain of a full log: the
//! oldest sector holds unread records of other sensors). The spool says which
//! records it still owes ([`Keep::owed`]: the unacknowledged part of each run,
//! from its per-sensor state; the storage keeps no table). Opening then goes:
//!
//! 1. erase the next sector (free: not live);
//! 2. program, from offset `H` on, a copy of the owed records of the oldest
//!    sector: one batch frame per frame of it that holds owed records, never
//!    longer than that frame (the same run headers, fewer records, one frame
//!    header and CRC), so the copies take at most what that sector's batch
//!    frames took, at most `E - H - T` bytes;
//! 3. program the new header (sequence number + 1, floor past the oldest
//!    sector): the commit. Before it the new sector is not live (no valid
//!    header) and the oldest sector is, with all its records; after it the
//!    copies are live and the oldest sector is not. A power cut at any instant
//!    keeps exactly one copy of every owed record; a torn header is not valid;
//! 4. write the mark or reservation in the room left, at least `T` bytes. A
//!    reservation frame longer than that is split (each entry stands alone).
//!
//! Records not owed (acknowledged, or beyond the flash part) are reported
//! evicted as before. Data appends evict as before (a full log that receives
//! new records drops its oldest, counted). Sectors written by earlier versions
//! (batch frames up to the end) may hold more owed records than fit: the
//! sector is then evicted as before.
//!
//! The spool answers [`Keep::owed`] with each sensor's unacknowledged flash
//! records for marks, and for reservations only while the uploader drains (a
//! mark was written since the last spill): a log that fills while offline
//! keeps evicting its oldest records. Eviction by appends stays oldest first
//! per sensor: when an append evicts records of a sensor whose older records
//! were copied forward, the spool counts those copies lost too and does not
//! copy them again. Limitation: until the ring evicts such orphaned copies, a
//! reset brings them back as owed (they were counted lost, never acknowledged)
//! and the sensor's numbering continues after the newest record the log still
//! holds, which can hand out again the numbers of the evicted records after
//! them (a break of the sequence-number guarantee). It takes a drain that
//! runs while new batches overflow the log, then a reset before the ring has
//! come round; open item (the copies would need to carry the sensor's end).
//!
//! Cost: nothing extra while the log is not full or the oldest sector holds
//! nothing owed. Capacity: at most `T` bytes per sector unused by batches
//! (about 2 % of a 4 KiB sector; marks and reservations use it). Per opening
//! by a mark or reservation with owed records in the oldest sector: the reads
//! of that sector (twice: size, then copy), at most `E - H - T` bytes
//! programmed, one more program operation per copied frame plus one for the
//! header. In a drain the owed part of the oldest sector shrinks as the
//! uploader acknowledges. RAM: none in the storage (staging buffer and 64
//! bytes of stack); none in the spool.
//!
//! # Costs
//!
//! - Append: one frame (compact for one run); `ceil((L [+ H when a sector is opened]) / BUF)` program
//!   operations (`BUF` = staging buffer, 512 B by default, so one program
//!   operation for frames up to 512 B). A batch that does not fit in the rest of
//!   the newest sector is split at a record boundary: what fits closes that
//!   sector, the rest opens the next one (two frames, two program operations), so
//!   sectors carry no unused tail (with two sectors the batch goes whole to the
//!   next one: opening it evicts the newest). Opening a sector costs one erase
//!   (of the free sector after the newest), after the runs of the sector that
//!   falls below the floor have been reported. Capacity: `N - 1` sectors.
//! - Erases = `ceil(bytes programmed / E)` (headers count as programmed bytes).
//! - Acknowledgement: one frame of `round_up(20, W)` bytes, one program
//!   operation (see above for one that opens a sector).
//! - Erases: one per sector opened; sectors are used in a fixed ring order, so
//!   the erase counts of any two sectors differ by at most one. No garbage
//!   collection, no copying of live data.
//! - Mount reads at most `N * round_up(H, R) + E` bytes (`R` = `READ_SIZE`): every
//!   sector header plus the newest sector's frame headers (and eviction frames).
//!   Mount never writes and never erases.
//! - After every mount the next frame opens a fresh sector (one erase, and the
//!   newest sector's unused tail, per mount followed by a write): see Power loss.
//! - Reads: each frame's CRC-32C is checked once per mount whoever reads it
//!   (sector verification marks and a 64-sector bitmap); frames up to `BUF`
//!   are verified in the staging buffer, which then serves as a read window,
//!   and the runs of verified frames are remembered (`RUNS` run references,
//!   32 by default), so
//!   a sensor's next records are read without reading other sensors' runs
//!   (an EVT record: its own bytes only). A search the references miss reads
//!   frame headers and the run headers of the frame that names the sensor. A
//!   record from a frame not verified in this mount is never returned.
//! - Flash I/O per call (the store is locked while it runs): `read` verifies
//!   at most one sector's frames (those of one sector not verified yet up to
//!   the one read); when the run references and the hint miss, it also reads
//!   frame headers (and multi-run frames' run headers) up to the sensor's
//!   next run, which one sector does not bound when that run lies far ahead;
//!   `append`, `ack`,
//!   `reserve`, `evict_oldest`: their frame or frames, plus per sector opened
//!   one erase, the runs of the sector evicted and the live sector headers
//!   not verified in this mount (`tests/spool_flash_interleaved.rs` measures
//!   the worst call per kind). `recover` is one call that reads the log once.
//! - `recover` (full inventory of runs and marks) reads every frame once: its
//!   CRC and its run headers from the same read (a frame larger than `BUF` is
//!   streamed and its run headers parsed as they pass, plain or packed, up to
//!   32 EVT or 16 TSD runs; the runs of a frame with more are read again, 16
//!   bytes each, a TSD run's up to 30). Mount adds the sector headers and the
//!   newest sector's frame headers, which the walk reads again.
//!
//! # Power loss
//!
//! A frame is valid only if its header check and CRC-32C match, so a torn write
//! costs exactly the frame being written (a split batch: its second part, the
//! first part being complete). Only free sectors are ever erased, so a torn
//! erase, cut at any instant (even before any bit changed, header intact), leaves
//! a sector that mount does not take as live; it is erased again before reuse.
//! No write unit is programmed twice between erases, not even one whose
//! interrupted program left it reading erased (ECC flash forbids that): nothing
//! on flash tells such a unit from an unused one, so after every mount the next
//! frame goes to a freshly erased sector. A damaged frame costs its own records
//! (its header still gives its length); after a damaged frame header the walk
//! goes on at the next programmed word, so later frames of the sector are still
//! found. Nothing is ever formatted.

mod frame;
pub mod inspect;
mod nor;

#[cfg(feature = "std")]
pub mod file;
#[cfg(feature = "std")]
pub use file::FileStorage;

#[cfg(feature = "_mock-flash")]
pub mod mock_flash;

pub use nor::NorFlashStorage;

/// The crate's one sensor identity and record kind ([`crate::record`]),
/// named here as the storage layer names them.
pub use crate::record::{Kind as RecordKind, SensorKey};

/// Timing of a TSD run (zero for EVT runs, which carry time per record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct RunMeta {
    /// Time of the first record of the run (the spool uses milliseconds).
    pub base_time: u64,
    /// Time between two records (unit chosen by the store).
    pub interval: u32,
}

/// Description of a run of consecutive records of one sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunInfo {
    /// Sensor the records belong to.
    pub key: SensorKey,
    /// Kind of the records.
    pub kind: RecordKind,
    /// Sequence number of the first record.
    pub first_seq: u32,
    /// Number of records (at least 1).
    pub count: u16,
    /// Timing of TSD runs.
    pub meta: RunMeta,
}

impl RunInfo {
    /// A run of no records (invalid: [`Storage::append`] rejects it). What a
    /// [`Batch`] reports for a run index it does not have, instead of panicking.
    pub(crate) const EMPTY: RunInfo = RunInfo {
        key: SensorKey { source: 0, id: 0 },
        kind: RecordKind::Evt,
        first_seq: 0,
        count: 0,
        meta: RunMeta {
            base_time: 0,
            interval: 0,
        },
    };

    /// Sequence number one past the last record (wrapping).
    pub const fn end_seq(&self) -> u32 {
        self.first_seq.wrapping_add(self.count as u32)
    }

    /// Whether `seq` falls inside this run (serial-number arithmetic).
    pub const fn contains(&self, seq: u32) -> bool {
        seq.wrapping_sub(self.first_seq) < self.count as u32
    }
}

/// One run of a batch: its description and its encoded records
/// (`records.len() == count * kind.record_size()`).
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    /// What the records are.
    pub info: RunInfo,
    /// The encoded records.
    pub records: &'a [u8],
}

/// A batch to append: runs and, on demand, their encoded records. The records
/// need not be contiguous in memory (the spool feeds them from its RAM
/// sectors); `record` may be called more than once per record (once to compute
/// the CRC, once to program).
///
/// Every method must give the same answer each time during one append (the
/// back end sizes the frame, computes its CRC and programs it in separate
/// passes). A batch whose runs change before the CRC pass is refused with
/// [`StorageError::TooLarge`] and nothing is erased or programmed; one that
/// changes after it can leave a damaged frame.
pub trait Batch {
    /// Number of runs.
    fn runs(&self) -> usize;
    /// Description of run `i` (`i < runs()`).
    fn info(&self, i: usize) -> RunInfo;
    /// Writes record `k` of run `i` into `out` (`out.len()` = record size).
    fn record(&self, i: usize, k: usize, out: &mut [u8]);
    /// Whether the batch must land as one frame, never split over two
    /// sectors: a power cut then keeps all of it or none. The spool asks it
    /// for batches holding records it has handed out. The default is `false`.
    fn whole(&self) -> bool {
        false
    }
    /// Optional fast path: all records of run `i` as one slice.
    fn slice(&self, i: usize) -> Option<&[u8]> {
        let _ = i;
        None
    }
}

/// Checks a batch before a back end encodes it: at least one run, no empty run,
/// and every run given as a slice exactly `count` records long. Returns the
/// number of records in the batch.
pub(crate) fn validate_batch<B: Batch + ?Sized>(batch: &B) -> Result<u32, StorageError> {
    if batch.runs() == 0 {
        return Err(StorageError::InvalidRun);
    }
    let mut records = 0u32;
    for i in 0..batch.runs() {
        let info = batch.info(i);
        let bad_slice = batch
            .slice(i)
            .is_some_and(|s| s.len() != info.count as usize * info.kind.record_size());
        if info.count == 0 || bad_slice {
            return Err(StorageError::InvalidRun);
        }
        records = records.wrapping_add(u32::from(info.count));
    }
    Ok(records)
}

impl Batch for [Run<'_>] {
    fn runs(&self) -> usize {
        self.len()
    }
    fn info(&self, i: usize) -> RunInfo {
        self.get(i).map_or(RunInfo::EMPTY, |r| r.info)
    }
    fn record(&self, i: usize, k: usize, out: &mut [u8]) {
        let n = out.len();
        out.copy_from_slice(&self[i].records[k * n..(k + 1) * n]);
    }
    fn slice(&self, i: usize) -> Option<&[u8]> {
        Some(self[i].records)
    }
}

impl<const N: usize> Batch for [Run<'_>; N] {
    fn runs(&self) -> usize {
        N
    }
    fn info(&self, i: usize) -> RunInfo {
        self.get(i).map_or(RunInfo::EMPTY, |r| r.info)
    }
    fn record(&self, i: usize, k: usize, out: &mut [u8]) {
        self[..].record(i, k, out)
    }
    fn slice(&self, i: usize) -> Option<&[u8]> {
        Some(self[i].records)
    }
}

/// What [`Storage::recover`] reports, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// A run of stored records.
    Run(RunInfo),
    /// An acknowledgement mark: records of `key` before `upto` are acknowledged.
    Ack {
        /// Sensor.
        key: SensorKey,
        /// First unacknowledged sequence number.
        upto: u32,
    },
    /// A reservation ([`Storage::reserve`]): `key` handed out no sequence
    /// number at or after `upto` before this entry was superseded.
    Reserve {
        /// Sensor.
        key: SensorKey,
        /// First sequence number not yet reserved.
        upto: u32,
    },
}

/// What the caller of [`Storage::ack_keep`] / [`Storage::reserve_keep`] still
/// owes: which records of a sector about to be evicted must be copied forward,
/// and which runs are gone.
pub trait Keep {
    /// The records of `run` still owed (not acknowledged), as the sequence
    /// numbers `[first, end)` inside the run, or `None` when none is. Must not
    /// change the caller's state: it may be asked more than once per run.
    fn owed(&mut self, run: &RunInfo) -> Option<(u32, u32)>;
    /// Records that left the log (a whole run or the part of it not owed).
    fn evicted(&mut self, run: RunInfo);
    /// The owed records `run` were copied forward; `hint` is where their copy
    /// starts, for [`Storage::read_hinted`] (the copy becomes live only if the
    /// call that copied returns `Ok`; a hint to a copy that never did only
    /// costs a longer search). Default: ignored.
    fn copied(&mut self, run: &RunInfo, hint: ReadHint) {
        let _ = (run, hint);
    }
}

/// A [`Keep`] that owes nothing: every run is reported to the closure, as
/// [`Storage::ack`] does.
#[derive(Debug)]
pub struct KeepNone<V>(pub V);

impl<V: FnMut(RunInfo)> Keep for KeepNone<V> {
    fn owed(&mut self, _: &RunInfo) -> Option<(u32, u32)> {
        None
    }
    fn evicted(&mut self, run: RunInfo) {
        (self.0)(run)
    }
}

/// Most entries [`Storage::reserve`] takes in one call (one frame).
pub const MAX_RESERVE_ENTRIES: usize = 16;

/// Result of [`Storage::read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOut {
    /// The stored run the records come from.
    pub run: RunInfo,
    /// Sequence number of the first record copied. Greater than the requested
    /// one (serial arithmetic) when the records in between are not stored
    /// (evicted or lost to damage).
    pub first: u32,
    /// Number of records copied into the output buffer.
    pub count: usize,
}

/// Where a sensor's next stored record was last found, kept per sensor by the
/// caller between [`Storage::read_hinted`] calls (the spool keeps one per flash
/// part, 12 bytes). Opaque: its meaning is the storage's own; a stale or foreign
/// hint only costs a longer search, never a wrong record.
/// [`ReadHint::NONE`] (the default) means "no idea".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadHint {
    pub(crate) pos: u32,
    pub(crate) check: u32,
    pub(crate) extra: u32,
}

impl ReadHint {
    /// No position known.
    pub const NONE: ReadHint = ReadHint {
        pos: 0,
        check: 0,
        extra: 0,
    };
}

/// Errors of the storage layer (small and `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend stores nothing (RAM-only build).
    Unsupported,
    /// `mount` has not succeeded yet.
    NotMounted,
    /// The flash geometry is not supported (see [`NorFlashStorage::new`]).
    Geometry,
    /// The batch does not fit in one frame / one sector.
    TooLarge,
    /// A run is malformed (count 0, or records length does not match).
    InvalidRun,
    /// The output buffer cannot hold a single record.
    BufferTooSmall,
    /// The flash driver reported an error (alignment, bounds or device).
    Flash(FlashErrorKind),
    /// The medium has no room: the file back end's filesystem is full (`ENOSPC`,
    /// `EDQUOT`) or has less free space than its reserve. Nothing was written;
    /// retry after space was freed. (A flash log never reports it: it evicts.)
    NoSpace,
}

/// Copy of `embedded_storage::nor_flash::NorFlashErrorKind` (which is
/// `non_exhaustive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashErrorKind {
    /// Offset or length not aligned.
    NotAligned,
    /// Offset or length out of bounds.
    OutOfBounds,
    /// Any other device error (including a power cut in the mock).
    Other,
}

impl From<embedded_storage::nor_flash::NorFlashErrorKind> for FlashErrorKind {
    fn from(k: embedded_storage::nor_flash::NorFlashErrorKind) -> Self {
        use embedded_storage::nor_flash::NorFlashErrorKind as K;
        match k {
            K::NotAligned => FlashErrorKind::NotAligned,
            K::OutOfBounds => FlashErrorKind::OutOfBounds,
            _ => FlashErrorKind::Other,
        }
    }
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StorageError {}

/// Counters of a storage backend (this power cycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct StorageStats {
    /// Number of erase sectors.
    pub sectors: u32,
    /// Bytes per erase sector.
    pub sector_size: u32,
    /// Sequence number of the newest sector (0 if none).
    pub head_seq: u64,
    /// Batches appended.
    pub batches: u32,
    /// Records appended.
    pub records: u32,
    /// Acknowledgement marks written.
    pub acks: u32,
    /// Reservation frames written ([`Storage::reserve`]).
    pub reserves: u32,
    /// Sectors evicted (erased while holding data).
    pub evicted_sectors: u32,
    /// Records in evicted sectors (acknowledged or not).
    pub evicted_records: u32,
    /// Frames skipped because their CRC or structure did not check out.
    pub bad_frames: u32,
    /// Bytes read by the last `mount`.
    pub mount_bytes_read: u32,
    /// Bytes still free in the newest sector.
    pub head_free: u32,
}

/// Where the spool spills batches of records.
///
/// All methods are synchronous and bounded; errors are small `Copy` values.
/// Callbacks are generic closures (no trait objects).
pub trait Storage {
    /// Finds the log after a reset. Must be called once before anything else.
    /// Never formats, never writes.
    fn mount(&mut self) -> Result<(), StorageError>;

    /// Whether anything is stored at all (`false` for [`NoStorage`]).
    fn is_persistent(&self) -> bool;

    /// Whether the back end is mounted. A back end that cannot trust its
    /// in-memory position after a failed program or erase unmounts itself
    /// ([`NorFlashStorage`] does); the spool then mounts it again (bounded
    /// reads, see [`Storage::mount`]) before its next storage operation. The
    /// default is `true` (a back end that never unmounts).
    fn is_mounted(&self) -> bool {
        true
    }

    /// Largest encoded batch (sum of run headers and records, as computed by
    /// [`encoded_len`]) that [`Storage::append`] accepts.
    fn max_batch_bytes(&self) -> usize;

    /// Appends one batch (one frame). When the log is full, the oldest sector is
    /// evicted first and every run in it is reported to `on_evict`.
    fn append<B: Batch + ?Sized, V: FnMut(RunInfo)>(
        &mut self,
        batch: &B,
        on_evict: V,
    ) -> Result<(), StorageError>;

    /// Copies records of `key` starting at `seq` (or at the next stored record
    /// after it) into `out`, at most one stored run per call. `Ok(None)` when
    /// nothing at or after `seq` is stored.
    fn read(
        &mut self,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError>;

    /// [`Storage::read`] with a per-sensor position hint: starts the search
    /// where `hint` says (when it is still valid) and updates it to where the
    /// returned records were found. The default ignores the hint.
    fn read_hinted(
        &mut self,
        key: SensorKey,
        seq: u32,
        hint: &mut ReadHint,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        let _ = hint;
        self.read(key, seq, out)
    }

    /// A hint valid for records appended from now on (where the next append
    /// goes), for a sensor whose stored records all come later. The default is
    /// [`ReadHint::NONE`].
    fn tail_hint(&self) -> ReadHint {
        ReadHint::NONE
    }

    /// Persists "records of `key` before `upto` are acknowledged" (one small
    /// program operation). If the newest sector is full this opens the next one,
    /// which may evict the oldest sector: its runs are reported to `on_evict`.
    fn ack<V: FnMut(RunInfo)>(
        &mut self,
        key: SensorKey,
        upto: u32,
        on_evict: V,
    ) -> Result<(), StorageError>;

    /// [`Storage::ack`] that never destroys records the caller still owes:
    /// when the mark needs a new sector whose opening would evict the oldest
    /// one, the records of that sector that `keep` says are owed
    /// ([`Keep::owed`]) are copied forward first (see the module docs); only
    /// the rest is reported to [`Keep::evicted`]. The default (a store that
    /// never evicts for a mark) is [`Storage::ack`].
    fn ack_keep<K: Keep>(
        &mut self,
        key: SensorKey,
        upto: u32,
        keep: &mut K,
    ) -> Result<(), StorageError> {
        self.ack(key, upto, |r| keep.evicted(r))
    }

    /// [`Storage::reserve`] that never destroys records the caller still owes
    /// (as [`Storage::ack_keep`]). The default is [`Storage::reserve`].
    fn reserve_keep<K: Keep>(
        &mut self,
        entries: &[(SensorKey, u32)],
        keep: &mut K,
    ) -> Result<(), StorageError> {
        self.reserve(entries, |r| keep.evicted(r))
    }

    /// Persists sequence-number reservations: for each `(key, upto)`, the
    /// sensor hands out no number at or after `upto` until a later reservation
    /// raises it. [`Storage::recover`] reports the largest `upto` per sensor
    /// ([`LogEntry::Reserve`]), so the spool continues every sensor's sequence
    /// after it and numbers stay unique across power cuts and restarts. At most
    /// [`MAX_RESERVE_ENTRIES`] entries per call. The default stores nothing
    /// (a store that keeps nothing across restarts).
    fn reserve<V: FnMut(RunInfo)>(
        &mut self,
        entries: &[(SensorKey, u32)],
        on_evict: V,
    ) -> Result<(), StorageError> {
        let _ = (entries, on_evict);
        Ok(())
    }

    /// Whether the reservations on the medium may soon be evicted, so the
    /// spool should write every sensor's reservation again (a snapshot: calls
    /// to [`Storage::reserve`] after [`Storage::snapshot_started`]). Always
    /// due after a mount until a snapshot started. The default is `false`
    /// (reservations are never evicted).
    fn snapshot_due(&self) -> bool {
        false
    }

    /// A snapshot of every sensor's reservation starts now (see
    /// [`Storage::snapshot_due`]). The default does nothing.
    fn snapshot_started(&mut self) {}

    /// Evicts the oldest sector unless it is the newest one; reports its runs.
    /// Returns whether a sector was evicted.
    fn evict_oldest<V: FnMut(RunInfo)>(&mut self, on_evict: V) -> Result<bool, StorageError>;

    /// Reports every valid run and acknowledgement mark, oldest first (reads the
    /// whole log once). The store rebuilds its per-sensor state from this.
    fn recover<V: FnMut(LogEntry)>(&mut self, f: V) -> Result<(), StorageError>;

    /// Counters.
    fn stats(&self) -> StorageStats;
}

/// Encoded size of a batch body (run headers plus records), the quantity
/// bounded by [`Storage::max_batch_bytes`].
pub fn encoded_len<B: Batch + ?Sized>(batch: &B) -> usize {
    (0..batch.runs())
        .map(|i| {
            let r = batch.info(i);
            run_encoded_len(r.kind, r.count as usize)
        })
        .sum()
}

/// Encoded size of one run of `count` records of `kind` (header included).
pub const fn run_encoded_len(kind: RecordKind, count: usize) -> usize {
    frame::run_hdr_len(kind) + count * kind.record_size()
}

/// RAM-only backend: stores nothing. `append` fails with
/// [`StorageError::Unsupported`] so the spool applies its RAM overflow policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStorage;

impl Storage for NoStorage {
    fn mount(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
    fn is_persistent(&self) -> bool {
        false
    }
    fn max_batch_bytes(&self) -> usize {
        0
    }
    fn append<B: Batch + ?Sized, V: FnMut(RunInfo)>(
        &mut self,
        _: &B,
        _: V,
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported)
    }
    fn read(
        &mut self,
        _: SensorKey,
        _: u32,
        _: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        Ok(None)
    }
    fn ack<V: FnMut(RunInfo)>(&mut self, _: SensorKey, _: u32, _: V) -> Result<(), StorageError> {
        Ok(())
    }
    fn evict_oldest<V: FnMut(RunInfo)>(&mut self, _: V) -> Result<bool, StorageError> {
        Ok(false)
    }
    fn recover<V: FnMut(LogEntry)>(&mut self, _: V) -> Result<(), StorageError> {
        Ok(())
    }
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(count: u16) -> RunInfo {
        RunInfo {
            key: SensorKey { source: 1, id: 7 },
            kind: RecordKind::Evt,
            first_seq: 5,
            count,
            meta: RunMeta::default(),
        }
    }

    #[test]
    fn validate_batch_counts_records_and_rejects_malformed_runs() {
        let bytes = [0u8; 24];
        let two = Run {
            info: info(2),
            records: &bytes[..16],
        };
        let one = Run {
            info: info(1),
            records: &bytes[..8],
        };
        assert_eq!(validate_batch(&[two, one]), Ok(3));
        let empty: [Run<'_>; 0] = [];
        assert_eq!(validate_batch(&empty[..]), Err(StorageError::InvalidRun));
        let zero = Run {
            info: info(0),
            records: &bytes[..0],
        };
        assert_eq!(validate_batch(&[one, zero]), Err(StorageError::InvalidRun));
        let short = Run {
            info: info(3),
            records: &bytes[..16],
        };
        assert_eq!(validate_batch(&[short]), Err(StorageError::InvalidRun));
    }
}
