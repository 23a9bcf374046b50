//! Read-only inspection of what a spool left on its medium: every sector or file,
//! every frame (good or damaged), every run and acknowledgement mark, and every
//! problem with its byte offset. What `spool-inspect` (feature `cli`) prints.
//!
//! The walks use the library's own decoding (`storage::frame`) and the state the
//! library's own [`Storage::mount`](super::Storage::mount) found; they never write.
//! The records themselves are read through [`Storage::read`](super::Storage::read)
//! of a mounted store, as the spool would read them.
//!
//! - [`ImageFlash`]: a read-only [`NorFlash`] over the bytes of a flash dump;
//!   programming and erasing fail, so a [`NorFlashStorage`] over it can mount,
//!   recover and read but never change the image.
//! - [`NorFlashStorage::inspect`]: walks every sector of a mounted flash log and
//!   reports [`Item`]s.
//! - [`guess_sector_size`]: the erase sector size of a dump, from its own sector
//!   headers.
//! - With feature `std`: [`OverlayFs`], the real filesystem under an in-memory
//!   copy-on-write overlay: the library's own mount of a
//!   [`FileStorage`](super::FileStorage) over it performs its repairs (damaged
//!   files rewritten, moved to `quarantine/`) in memory only, so the store
//!   serves exactly what it would after a real mount and the directory is not
//!   changed; [`ReadOnlyFs`], a [`FileSystem`](super::file::FileSystem) that
//!   opens files read-only and refuses every change (a mount over it skips what
//!   it would repair); and [`inspect_dir`], the walk of a spool directory.
//!
//! Nothing here allocates on the flash path (`no_std`).

use super::frame::{
    self, ACK_BODY, CRC_LEN, CRC32, EVICT_BODY, FRAME_HDR, Header, MAX_RUN_HDR, RunParse,
    SECTOR_HDR, SECTOR_MAGIC, TAG_ACK, TAG_EVICT,
};
use super::nor::read_at;
use super::{NorFlashStorage, RunInfo, SensorKey, StorageError};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

#[cfg(feature = "std")]
pub use super::file::{OverlayFile, OverlayFs};
#[cfg(feature = "std")]
pub(crate) use std_part::file_problem as std_file_problem;
#[cfg(feature = "std")]
pub use std_part::{FileFate, FileReport, ReadOnlyFile, ReadOnlyFs, inspect_dir};

/// Error of [`ImageFlash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFlashError {
    /// Program or erase refused: the image is read-only.
    ReadOnly,
    /// A read past the end of the image.
    OutOfBounds,
}

impl NorFlashError for ImageFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            ImageFlashError::ReadOnly => NorFlashErrorKind::Other,
            ImageFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// A read-only NOR flash over the bytes of a dump: `WRITE_SIZE` `W`,
/// `ERASE_SIZE` `E`, `READ_SIZE` 1. Its capacity is the image length rounded
/// down to whole sectors (a trailing partial sector is not part of the flash).
/// [`NorFlash::write`] and [`NorFlash::erase`] always fail with
/// [`ImageFlashError::ReadOnly`] and change nothing.
#[derive(Clone, Copy, Debug)]
pub struct ImageFlash<'a, const W: usize, const E: usize> {
    bytes: &'a [u8],
}

impl<'a, const W: usize, const E: usize> ImageFlash<'a, W, E> {
    /// A flash over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        let whole = bytes.len() - bytes.len() % E.max(1);
        Self {
            bytes: bytes.get(..whole).unwrap_or(&[]),
        }
    }

    /// The bytes of the flash (whole sectors).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<const W: usize, const E: usize> ErrorType for ImageFlash<'_, W, E> {
    type Error = ImageFlashError;
}

impl<const W: usize, const E: usize> ReadNorFlash for ImageFlash<'_, W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let start = offset as usize;
        let src = start
            .checked_add(bytes.len())
            .and_then(|end| self.bytes.get(start..end))
            .ok_or(ImageFlashError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for ImageFlash<'_, W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
        Err(ImageFlashError::ReadOnly)
    }

    fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
        Err(ImageFlashError::ReadOnly)
    }
}

/// What a flash sector holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SectorState {
    /// Every byte erased (`0xFF`).
    Erased,
    /// A valid header numbered from the floor to the newest sector: part of the log.
    Live,
    /// A valid header outside the live range: evicted (or left from an older
    /// lap of the ring), free, its bytes kept until it is erased for reuse.
    Stale,
    /// No valid header but not erased: a torn erase, a header cut while it was
    /// programmed, or damage. Free (mount does not read it).
    NoHeader,
    /// The header of another format version (magic `SPL` + this byte): not read.
    OtherVersion(u8),
}

/// One sector of a flash log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorReport {
    /// Sector index (0-based, physical order).
    pub index: u32,
    /// Byte offset of the sector in the flash.
    pub offset: u64,
    /// What it holds.
    pub state: SectorState,
    /// Sequence number in its header (valid headers only).
    pub seq: Option<u64>,
    /// Floor recorded in its header (valid headers only).
    pub floor: Option<u64>,
    /// Whether it is the newest sector (the head).
    pub head: bool,
    /// Offset in the sector where its frames end (0 when not walked).
    pub frames_end: u32,
}

/// Whether a frame checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameStatus {
    /// Header check, CRC-32C and structure all good.
    Good,
    /// Header good, CRC-32C wrong: the frame's records are lost.
    BadCrc,
    /// CRC good but the body does not decode (only a forged frame).
    BadBody,
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameBody {
    /// A batch of this many runs (compact frames: one).
    Batch {
        /// Runs that decode (the damaged frame's may be fewer).
        runs: u16,
        /// Whether it is a compact one-run frame (tag `0xB6`/`0xB7`).
        compact: bool,
    },
    /// An acknowledgement mark: records of `key` before `upto` are acknowledged.
    Ack {
        /// Sensor.
        key: SensorKey,
        /// First unacknowledged sequence number.
        upto: u32,
    },
    /// A sequence-number reservation frame holding this many entries.
    Reserve {
        /// Entries that decode.
        entries: u16,
    },
    /// An eviction frame: sectors numbered below `floor` are evicted.
    Evict {
        /// The new floor.
        floor: u64,
    },
    /// The body could not be decoded.
    Unknown,
}

/// One frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameReport {
    /// Byte offset in the flash (or, for files, in its file).
    pub offset: u64,
    /// Total length, padding and CRC included.
    pub len: u32,
    /// Tag byte.
    pub tag: u8,
    /// Whether the store reads it: a live sector (or a data file the mount keeps).
    pub live: bool,
    /// Checks.
    pub status: FrameStatus,
    /// Contents.
    pub body: FrameBody,
}

/// One run of a batch frame (also reported for a frame whose CRC failed,
/// as its header claims: what the damage cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// Offset of the frame holding it.
    pub frame: u64,
    /// Offset of its first record.
    pub records: u64,
    /// The run.
    pub info: RunInfo,
    /// Whether the store reads it (live and good).
    pub live: bool,
}

/// Kinds of [`Problem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A frame header (first 4 bytes) that does not check out where a frame
    /// should start. The walk resumes at the next programmed word.
    BadFrameHeader,
    /// A frame whose CRC-32C does not match: its records are lost.
    BadCrc,
    /// A frame whose CRC matches but whose body does not decode.
    BadBody,
    /// Programmed bytes after the end of a sector's frames (a torn write, or
    /// frames after damage that mount stops at in the newest sector).
    TrailingBytes,
    /// A sector with no valid header that is not erased.
    NoSectorHeader,
    /// A sector of another format version.
    OtherVersion,
    /// A sequence number between the floor and the newest sector that no
    /// sector carries (a live sector whose header was destroyed).
    MissingSector,
    /// Two sectors with the same sequence number, or two files with the same
    /// file number (mount keeps the first in name order, quarantines the other).
    DuplicateSequence,
    /// A live sector out of ring order (its number does not match its place).
    RingOrder,
    /// Bytes after the last whole sector (the dump is not a whole number of sectors).
    PartialSector,
    /// A file that is not a data file of the store, or a damaged header.
    BadFileHeader,
    /// Damaged bytes between good frames of a file (mount rewrites the file
    /// and moves the original to `quarantine/`).
    MiddleDamage,
    /// An acknowledgement mark in a file of another source (ignored).
    ForeignMark,
    /// A file already moved to `quarantine/` by an earlier mount.
    Quarantined,
    /// A file that cannot be opened or read.
    Unreadable,
}

/// Something the walk found wrong, with where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the flash (or, for files, in its file).
    pub offset: u64,
    /// Bytes concerned (0 when unknown).
    pub len: u64,
    /// What.
    pub kind: ProblemKind,
    /// Whether it costs records the store held (a damaged live frame, a lost
    /// live sector), as opposed to what power loss normally leaves (a torn
    /// frame at the end of the log, a torn erase of a free sector) or stale data.
    pub damage: bool,
}

/// What an inspection walk reports, in media order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item {
    /// A sector (before its frames).
    Sector(SectorReport),
    /// A file of a spool directory (before its frames).
    #[cfg(feature = "std")]
    File(FileReport),
    /// A frame.
    Frame(FrameReport),
    /// A run of the last frame reported.
    Run(RunReport),
    /// A problem.
    Problem(Problem),
}

/// Totals of an inspection walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InspectTotals {
    /// Frames whose checks passed, in live sectors / kept files.
    pub good_frames: u32,
    /// Frames with a bad CRC or body, or damaged frame headers (each run of
    /// damaged words counted once), in live sectors / kept files.
    pub damaged_frames: u32,
    /// Frames in stale sectors, or in quarantined files.
    pub stale_frames: u32,
    /// Acknowledgement frames that are live and good.
    pub ack_frames: u32,
    /// Problems that cost records ([`Problem::damage`]).
    pub damage: u32,
    /// All problems.
    pub problems: u32,
    /// Bytes in live sectors up to the end of their frames (headers included),
    /// or valid bytes of kept files.
    pub used_bytes: u64,
}

impl InspectTotals {
    /// Counts one item.
    pub fn add(&mut self, item: &Item) {
        match item {
            Item::Frame(f) if !f.live => self.stale_frames += 1,
            Item::Frame(f) => match f.status {
                FrameStatus::Good => {
                    self.good_frames += 1;
                    if matches!(f.body, FrameBody::Ack { .. }) {
                        self.ack_frames += 1;
                    }
                }
                _ => self.damaged_frames += 1,
            },
            Item::Problem(p) => {
                self.problems += 1;
                if p.damage {
                    self.damage += 1;
                }
                if p.kind == ProblemKind::BadFrameHeader && p.damage {
                    self.damaged_frames += 1;
                }
            }
            _ => {}
        }
    }
}

/// Reads a whole frame's body and checks its CRC-32C (no allocation).
fn frame_crc_ok<F: NorFlash>(flash: &mut F, abs: u32, len: u32) -> Result<bool, StorageError> {
    let Some(body) = len.checked_sub(CRC_LEN as u32) else {
        return Ok(false);
    };
    let mut digest = CRC32.digest();
    let mut buf = [0u8; 256];
    let mut p = 0u32;
    while p < body {
        let k = (body - p).min(buf.len() as u32) as usize;
        read_at(flash, abs + p, &mut buf[..k])?;
        digest.update(&buf[..k]);
        p += k as u32;
    }
    let mut c = [0u8; CRC_LEN];
    read_at(flash, abs + body, &mut c)?;
    Ok(digest.finalize() == u32::from_le_bytes(c))
}

/// First offset in `[from, to)` (absolute) whose byte is not erased.
fn first_programmed<F: NorFlash>(
    flash: &mut F,
    from: u32,
    to: u32,
) -> Result<Option<u32>, StorageError> {
    let mut buf = [0u8; 256];
    let mut p = from;
    while p < to {
        let k = ((to - p) as usize).min(buf.len());
        read_at(flash, p, &mut buf[..k])?;
        if let Some(i) = buf[..k].iter().position(|&b| b != 0xFF) {
            return Ok(Some(p + i as u32));
        }
        p += k as u32;
    }
    Ok(None)
}

/// Reports the runs of the batch frame at `abs` (length `len`, `tag`);
/// returns how many decoded and whether the body is well formed.
fn frame_runs<F: NorFlash>(
    flash: &mut F,
    abs: u32,
    len: u32,
    tag: u8,
    live: bool,
    visit: &mut impl FnMut(&mut F, Item),
) -> Result<(u16, bool), StorageError> {
    let end = len - CRC_LEN as u32;
    let mut rel = FRAME_HDR as u32;
    let mut runs = 0u16;
    while rel < end {
        let Some(at) = frame::run_hdr_start(tag, rel as usize) else {
            break;
        };
        let at = at as u32;
        let avail = ((end - at) as usize).min(MAX_RUN_HDR);
        let mut hb = [0u8; MAX_RUN_HDR];
        read_at(flash, abs + at, &mut hb[..avail])?;
        let parsed = frame::parse_batch_run(tag, &hb[..avail], rel as usize, end as usize);
        match parsed {
            RunParse::End => return Ok((runs, runs > 0)),
            RunParse::Bad => return Ok((runs, false)),
            RunParse::Run(info, hl, rl) => {
                runs = runs.saturating_add(1);
                let rec = at + hl as u32;
                visit(
                    flash,
                    Item::Run(RunReport {
                        frame: abs as u64,
                        records: (abs + rec) as u64,
                        info,
                        live,
                    }),
                );
                if frame::is_compact(tag) {
                    return Ok((runs, true));
                }
                rel = rec + rl as u32;
            }
        }
    }
    Ok((runs, runs > 0))
}

/// Walks the frames of `[base + from, base + limit)` the way the store's walk
/// does (a damaged header: on at the next word; erased after damage: on at
/// the next programmed word; erased otherwise: the end). Returns where they end.
#[allow(clippy::too_many_arguments)]
fn walk_frames<F: NorFlash>(
    flash: &mut F,
    w: u32,
    base: u32,
    from: u32,
    limit: u32,
    live: bool,
    visit: &mut impl FnMut(&mut F, Item),
) -> Result<u32, StorageError> {
    let mut off = from;
    let mut damaged = false;
    let mut in_garbage = false;
    while off + FRAME_HDR as u32 <= limit {
        let abs = base + off;
        let mut hb = [0u8; FRAME_HDR];
        read_at(flash, abs, &mut hb)?;
        match frame::parse_flash_frame_header(hb, (limit - off) as usize, w as usize) {
            Header::Erased if damaged => {
                in_garbage = false;
                match first_programmed(flash, abs + w, base + limit)? {
                    Some(p) => off = (p - base) - (p - base) % w,
                    None => return Ok(off),
                }
            }
            Header::Erased => return Ok(off),
            Header::Garbage => {
                if !in_garbage {
                    visit(
                        flash,
                        Item::Problem(Problem {
                            offset: abs as u64,
                            len: 0,
                            kind: ProblemKind::BadFrameHeader,
                            damage: live,
                        }),
                    );
                }
                in_garbage = true;
                damaged = true;
                off += w;
            }
            Header::Frame { tag, len } => {
                in_garbage = false;
                let len = len as u32;
                let crc = frame_crc_ok(flash, abs, len)?;
                let mut status = if crc {
                    FrameStatus::Good
                } else {
                    FrameStatus::BadCrc
                };
                let body = if frame::is_batch(tag) {
                    // Runs of a damaged frame are what its header claims: not live.
                    // A first pass counts them, so the frame is reported first.
                    let (runs, ok) = frame_runs(flash, abs, len, tag, false, &mut |_, _| {})?;
                    if crc && !ok {
                        status = FrameStatus::BadBody;
                    }
                    visit(
                        flash,
                        Item::Frame(FrameReport {
                            offset: abs as u64,
                            len,
                            tag,
                            live,
                            status,
                            body: FrameBody::Batch {
                                runs,
                                compact: frame::is_compact(tag),
                            },
                        }),
                    );
                    // Runs before a malformed one are what the store reads.
                    frame_runs(flash, abs, len, tag, live && crc, visit)?;
                    report_status(flash, abs, len, live, status, visit);
                    off += len;
                    continue;
                } else if tag == TAG_ACK {
                    let mut b = [0u8; ACK_BODY];
                    if len as usize >= FRAME_HDR + ACK_BODY + CRC_LEN {
                        read_at(flash, abs + FRAME_HDR as u32, &mut b)?;
                    }
                    match frame::parse_ack_body(&b)
                        .filter(|_| len as usize >= FRAME_HDR + ACK_BODY + CRC_LEN)
                    {
                        Some((key, upto)) => FrameBody::Ack { key, upto },
                        None => {
                            if crc {
                                status = FrameStatus::BadBody;
                            }
                            FrameBody::Unknown
                        }
                    }
                } else if tag == frame::TAG_RESERVE {
                    let mut e = [0u8; frame::RESERVE_ENTRY];
                    let mut entries = 0u16;
                    let mut rel = FRAME_HDR;
                    while rel + frame::RESERVE_ENTRY + CRC_LEN <= len as usize {
                        read_at(flash, abs + rel as u32, &mut e)?;
                        if frame::parse_reserve_entry(&e).is_none() {
                            break;
                        }
                        entries += 1;
                        rel += frame::RESERVE_ENTRY;
                    }
                    FrameBody::Reserve { entries }
                } else if tag == TAG_EVICT && len as usize >= FRAME_HDR + EVICT_BODY + CRC_LEN {
                    let mut b = [0u8; EVICT_BODY];
                    read_at(flash, abs + FRAME_HDR as u32, &mut b)?;
                    FrameBody::Evict {
                        floor: u64::from_le_bytes(b),
                    }
                } else {
                    FrameBody::Unknown
                };
                visit(
                    flash,
                    Item::Frame(FrameReport {
                        offset: abs as u64,
                        len,
                        tag,
                        live,
                        status,
                        body,
                    }),
                );
                report_status(flash, abs, len, live, status, visit);
                off += len;
            }
        }
    }
    Ok(off)
}

fn report_status<F>(
    flash: &mut F,
    abs: u32,
    len: u32,
    live: bool,
    status: FrameStatus,
    visit: &mut impl FnMut(&mut F, Item),
) {
    let kind = match status {
        FrameStatus::Good => return,
        FrameStatus::BadCrc => ProblemKind::BadCrc,
        FrameStatus::BadBody => ProblemKind::BadBody,
    };
    visit(
        flash,
        Item::Problem(Problem {
            offset: abs as u64,
            len: len as u64,
            kind,
            damage: live,
        }),
    );
}

impl<F: NorFlash, const BUF: usize, const VERIFY: usize, const RUNS: usize>
    NorFlashStorage<F, BUF, VERIFY, RUNS>
{
    /// Walks every sector of the mounted log in physical order and reports
    /// what it holds: each sector, then its frames (each followed by its runs),
    /// and every problem with its byte offset. Live sectors are walked up to
    /// where the store reads them (the newest one up to where mount found its
    /// frames end); stale sectors are walked too (their frames are reported
    /// as not live). Also checks what mount relies on: the live sectors carry
    /// every number from the floor to the newest exactly once, in ring order.
    /// Reads only; returns the totals. `Err(NotMounted)` before a mount.
    pub fn inspect(&mut self, mut visit: impl FnMut(Item)) -> Result<InspectTotals, StorageError> {
        let v = self.mount_view();
        if !v.mounted {
            return Err(StorageError::NotMounted);
        }
        let mut totals = InspectTotals::default();
        let mut visit = |i: Item| {
            totals.add(&i);
            visit(i);
        };
        let (e, w) = (F::ERASE_SIZE as u32, F::WRITE_SIZE as u32);
        // Sector numbers start at 1 and every one up to the head was opened:
        // the live ones are those from the floor (at least 1) to the head.
        let low = v.floor.max(1);
        let live_count = match v.head {
            Some(_) => (v.head_seq + 1).saturating_sub(low),
            None => 0,
        };
        let mut seen_live = 0u64;
        let mut used = 0u64;
        for s in 0..v.n {
            let base = s * e;
            let flash = self.flash_mut();
            let mut hb = [0u8; SECTOR_HDR];
            read_at(flash, base, &mut hb)?;
            let parsed = frame::parse_sector_header(&hb);
            let head = v.head == Some(s);
            let (state, seq, floor) = match parsed {
                Some((q, f)) if v.head.is_some() && q >= v.floor && q <= v.head_seq => {
                    (SectorState::Live, Some(q), Some(f))
                }
                Some((q, f)) => (SectorState::Stale, Some(q), Some(f)),
                None if hb[..3] == SECTOR_MAGIC[..3] && hb[3] != SECTOR_MAGIC[3] => {
                    (SectorState::OtherVersion(hb[3]), None, None)
                }
                None => match first_programmed(flash, base, base + e)? {
                    None => (SectorState::Erased, None, None),
                    Some(_) => (SectorState::NoHeader, None, None),
                },
            };
            let mut rep = SectorReport {
                index: s,
                offset: base as u64,
                state,
                seq,
                floor,
                head,
                frames_end: 0,
            };
            let limit = if head { v.write_off } else { e };
            let walk = matches!(state, SectorState::Live | SectorState::Stale);
            if walk {
                // Where the frames end first (a dry walk), so the sector is
                // reported before its frames.
                rep.frames_end = walk_frames(flash, w, base, v.h, limit, false, &mut |_, _| {})?;
            }
            visit(Item::Sector(rep));
            match state {
                SectorState::Live => {
                    seen_live += 1;
                    used += rep.frames_end as u64;
                    let flash = self.flash_mut();
                    walk_frames(flash, w, base, v.h, limit, true, &mut |_, i| visit(i))?;
                    // Ring order: the sector numbered q sits (head_seq - q) sectors before the head.
                    if let (Some(hd), Some(q)) = (v.head, seq) {
                        let back = ((v.head_seq - q) % v.n as u64) as u32;
                        let want = (hd + v.n - back) % v.n;
                        if want != s || v.head_seq - q >= v.n as u64 {
                            visit(Item::Problem(Problem {
                                offset: base as u64,
                                len: e as u64,
                                kind: ProblemKind::RingOrder,
                                damage: true,
                            }));
                        }
                    }
                    let tail_from = base + rep.frames_end;
                    if let Some(p) = first_programmed(flash, tail_from, base + e)? {
                        // After the head's frames: a torn write (or frames after
                        // damage, which mount does not see). Elsewhere: bytes the
                        // walk does not read.
                        let mut found = false;
                        if head {
                            walk_frames(
                                flash,
                                w,
                                base,
                                p - base - (p - base) % w,
                                e,
                                false,
                                &mut |_, i| {
                                    if let Item::Frame(f) = i
                                        && f.status == FrameStatus::Good
                                    {
                                        found = true;
                                    }
                                },
                            )?;
                        }
                        visit(Item::Problem(Problem {
                            offset: p as u64,
                            len: (base + e - p) as u64,
                            kind: ProblemKind::TrailingBytes,
                            damage: found,
                        }));
                    }
                }
                SectorState::Stale => {
                    let flash = self.flash_mut();
                    walk_frames(flash, w, base, v.h, e, false, &mut |_, i| visit(i))?;
                }
                SectorState::NoHeader => visit(Item::Problem(Problem {
                    offset: base as u64,
                    len: e as u64,
                    kind: ProblemKind::NoSectorHeader,
                    damage: false,
                })),
                SectorState::OtherVersion(_) => visit(Item::Problem(Problem {
                    offset: base as u64,
                    len: e as u64,
                    kind: ProblemKind::OtherVersion,
                    damage: false,
                })),
                SectorState::Erased => {}
            }
        }
        if seen_live < live_count {
            // A number between the floor and the head that no sector carries:
            // where it should be (ring order), its header is not valid.
            if let Some(hd) = v.head {
                for q in low..=v.head_seq {
                    let back = ((v.head_seq - q) % v.n as u64) as u32;
                    let s = (hd + v.n - back) % v.n;
                    let mut hb = [0u8; SECTOR_HDR];
                    read_at(self.flash_mut(), s * e, &mut hb)?;
                    if frame::parse_sector_header(&hb).map(|(x, _)| x) != Some(q) {
                        visit(Item::Problem(Problem {
                            offset: (s * e) as u64,
                            len: e as u64,
                            kind: ProblemKind::MissingSector,
                            damage: true,
                        }));
                    }
                    if q - low > v.n as u64 {
                        break;
                    }
                }
            }
        } else if seen_live > live_count {
            visit(Item::Problem(Problem {
                offset: 0,
                len: 0,
                kind: ProblemKind::DuplicateSequence,
                damage: true,
            }));
        }
        totals.used_bytes = used;
        Ok(totals)
    }
}

impl<F: NorFlash, const BUF: usize, const VERIFY: usize, const RUNS: usize>
    NorFlashStorage<F, BUF, VERIFY, RUNS>
{
    /// Every live run with its records, oldest first (the runs
    /// [`Storage::recover`](super::Storage::recover) reports, with their bytes):
    /// one pass over the log for a bulk export, where
    /// [`Storage::read`](super::Storage::read) per sensor would walk the log once
    /// per sensor. A run longer than `buf` comes in consecutive pieces that fit
    /// (each with its own `first_seq`, `count` and, for TSD, `base_time`). Runs
    /// are reported as stored: a record written twice (a batch retried after a
    /// failed program) comes twice; [`Storage::read`](super::Storage::read)
    /// serves the first. Reads only. `Err(BufferTooSmall)` if `buf` cannot hold
    /// one record of a run; `Err(NotMounted)` before a mount.
    pub fn inspect_records(
        &mut self,
        buf: &mut [u8],
        mut f: impl FnMut(RunInfo, &[u8]),
    ) -> Result<(), StorageError> {
        let v = self.mount_view();
        if !v.mounted {
            return Err(StorageError::NotMounted);
        }
        let Some(hd) = v.head else {
            return Ok(());
        };
        let (e, w) = (F::ERASE_SIZE as u32, F::WRITE_SIZE as u32);
        let mut err = None;
        // Ring order from the sector after the newest round to the newest, every
        // live sector (as `recover` walks them: oldest first on a sound log).
        for i in 1..=v.n {
            let s = (hd + i) % v.n;
            let base = s * e;
            let flash = self.flash_mut();
            let mut hb = [0u8; SECTOR_HDR];
            read_at(flash, base, &mut hb)?;
            match frame::parse_sector_header(&hb) {
                Some((q, _)) if q >= v.floor && q <= v.head_seq => {}
                _ => continue,
            }
            let limit = if s == hd { v.write_off } else { e };
            walk_frames(flash, w, base, v.h, limit, true, &mut |fl, item| {
                let Item::Run(r) = item else {
                    return;
                };
                if !r.live || err.is_some() {
                    return;
                }
                let size = r.info.kind.record_size();
                let per = buf.len() / size;
                if per == 0 {
                    err = Some(StorageError::BufferTooSmall);
                    return;
                }
                let count = r.info.count as usize;
                let mut k = 0usize;
                while k < count {
                    let c = per.min(count - k);
                    let Some(dst) = buf.get_mut(..c * size) else {
                        return;
                    };
                    if let Err(x) = read_at(fl, (r.records as usize + k * size) as u32, dst) {
                        err = Some(x);
                        return;
                    }
                    let mut sub = r.info;
                    sub.first_seq = sub.first_seq.wrapping_add(k as u32);
                    sub.count = c as u16;
                    sub.meta.base_time = sub
                        .meta
                        .base_time
                        .wrapping_add(k as u64 * sub.meta.interval as u64);
                    f(sub, dst);
                    k += c;
                }
            })?;
            if let Some(x) = err {
                return Err(x);
            }
        }
        Ok(())
    }
}

/// Erase sector size of a flash dump, from its own sector headers: the power of
/// two in 256 B..=1 MiB at whose multiples the valid `SPL2` headers sit, and
/// for which every header's number matches its place in the ring (sectors are
/// opened in ring order, so sector `s` only ever carries numbers `q` with
/// `q - s` the same modulo the sector count). `None` when no size fits, or
/// when more than one does (fewer than two distinct numbers on the image):
/// then the caller has to say.
pub fn guess_sector_size(image: &[u8]) -> Option<usize> {
    let mut found = None;
    let mut e = 256usize;
    while e <= 1 << 20 {
        let n = image.len() / e;
        if n >= 2 && sector_size_fits(image, e, n) {
            if found.is_some() {
                return None;
            }
            found = Some(e);
        }
        e *= 2;
    }
    found
}

fn sector_size_fits(image: &[u8], e: usize, n: usize) -> bool {
    let mut first: Option<(u64, u64)> = None;
    let mut distinct = false;
    // Headers at 256-byte steps that are not multiples of `e` rule it out.
    for (i, chunk) in image.chunks(256).enumerate() {
        let Some((q, _)) = frame::parse_sector_header(chunk) else {
            continue;
        };
        let off = i * 256;
        if !off.is_multiple_of(e) {
            return false;
        }
        let s = (off / e) as u64;
        if s >= n as u64 {
            continue;
        }
        let c = (q + n as u64 - s % n as u64) % n as u64;
        match first {
            None => first = Some((c, q)),
            Some((c0, q0)) => {
                if c0 != c {
                    return false;
                }
                distinct |= q0 != q;
            }
        }
    }
    first.is_some() && distinct
}

#[cfg(feature = "std")]
mod std_part {
    use super::{Item, Problem, ProblemKind};
    use crate::storage::file::{DirEntry, FileId, FileSystem, FsFile, StdFs};
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};

    /// What the mount of a [`FileStorage`](crate::storage::FileStorage) does
    /// with a file (over [`OverlayFs`](super::OverlayFs) it does it in memory
    /// only; over [`ReadOnlyFs`] the repairs fail and the file is skipped).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum FileFate {
        /// A data file, kept as it is.
        Data,
        /// A data file whose bytes after `valid` (a torn write, the stale end of
        /// a reused file) are left in place and never read.
        DataWithTail,
        /// A data file damaged between good frames (or in its first frame):
        /// mount copies its good frames into a fresh file and moves the
        /// original to `quarantine/`; the records of the good frames are served.
        Rewrite,
        /// Moved to `quarantine/` at mount (a damaged header before frames, too
        /// large, or a second file with one number): never read by the store.
        Quarantine,
        /// Empty, zeros, or a cut first write: a spare (emptied at mount when not
        /// empty or zeros).
        Spare,
        /// Already in `quarantine/`: never read by the store.
        Quarantined,
        /// Not a file of the store (name), or a leftover `.tmp` of a rewrite.
        Other,
    }

    /// One file of a spool directory.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct FileReport {
        /// Path (under the root given to [`inspect_dir`]).
        pub path: PathBuf,
        /// Source its directory names (`host` = 0, ...), if any.
        pub dir_source: Option<u8>,
        /// File sequence number in its header.
        pub seq: Option<u64>,
        /// Source in its header.
        pub source: Option<u8>,
        /// Format version of its header (1: `SPF1`, 2: `SPF2`).
        pub version: Option<u8>,
        /// Bytes on disk.
        pub size: u64,
        /// Bytes up to the end of its last good frame (header included).
        pub valid: u64,
        /// What mount does with it.
        pub fate: FileFate,
    }

    /// The real filesystem, read-only: files are opened without write access;
    /// creating, writing, truncating, renaming, removing fail with
    /// `PermissionDenied` and change nothing; `create_dir_all` succeeds only
    /// for a directory that exists; directory `fsync` does nothing (there is
    /// nothing to make durable). A [`FileStorage`](crate::storage::FileStorage)
    /// over it mounts, recovers and reads; the files its mount would repair
    /// (see [`FileFate`]) fail to and are skipped, and nothing is created.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ReadOnlyFs;

    /// A file of [`ReadOnlyFs`] (opened read-only).
    #[derive(Debug)]
    pub struct ReadOnlyFile(File);

    fn refused() -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, "read-only inspection")
    }

    impl FsFile for ReadOnlyFile {
        fn read_exact_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
            FileExt::read_exact_at(&self.0, buf, off)
        }
        fn write_all_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
            Err(refused())
        }
        fn sync_data(&mut self) -> io::Result<()> {
            Err(refused())
        }
        fn set_len(&mut self, _: u64) -> io::Result<()> {
            Err(refused())
        }
        fn size(&mut self) -> io::Result<u64> {
            Ok(self.0.metadata()?.len())
        }
    }

    impl FileSystem for ReadOnlyFs {
        type File = ReadOnlyFile;
        fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
            if std::fs::metadata(path)?.is_dir() {
                Ok(())
            } else {
                Err(refused())
            }
        }
        fn list_dir(&mut self, path: &Path) -> io::Result<Vec<DirEntry>> {
            StdFs.list_dir(path)
        }
        fn open(&mut self, path: &Path) -> io::Result<ReadOnlyFile> {
            File::open(path).map(ReadOnlyFile)
        }
        fn create_new(&mut self, _: &Path) -> io::Result<ReadOnlyFile> {
            Err(refused())
        }
        fn remove_file(&mut self, _: &Path) -> io::Result<()> {
            Err(refused())
        }
        fn rename(&mut self, _: &Path, _: &Path) -> io::Result<()> {
            Err(refused())
        }
        fn sync_dir(&mut self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn available_bytes(&mut self, path: &Path) -> io::Result<u64> {
            StdFs.available_bytes(path)
        }
        fn id(&mut self, path: &Path) -> io::Result<FileId> {
            StdFs.id(path)
        }
    }

    /// Walks a spool directory through `fs` (reads only): every file of every
    /// source directory and of `quarantine/`, in name order, with what mount
    /// does with it, then its frames (offsets within the file), each followed
    /// by its runs, and its problems. Frames are checked exactly as mount
    /// checks them (header, CRC-32C seeded with the file's number, structure).
    pub fn inspect_dir<F: FileSystem>(
        fs: &mut F,
        root: &Path,
        mut visit: impl FnMut(Item),
    ) -> io::Result<super::InspectTotals> {
        let mut totals = super::InspectTotals::default();
        let mut v = |i: Item| {
            totals.add(&i);
            visit(i);
        };
        let used = crate::storage::file::inspect::walk_dir(fs, root, &mut v)?;
        totals.used_bytes = used;
        Ok(totals)
    }

    /// A problem covering a whole file.
    pub(crate) fn file_problem(kind: ProblemKind, offset: u64, len: u64, damage: bool) -> Item {
        Item::Problem(Problem {
            offset,
            len,
            kind,
            damage,
        })
    }
}
