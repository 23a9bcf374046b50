//! [`NorFlashStorage`]: a log of CRC-framed batches over the erase sectors of a
//! plain `NorFlash` (format and costs: see the [`super`] module docs).

use super::frame::{
    self, ACK_BODY, CRC_LEN, CRC32, EVICT_BODY, FRAME_HDR, Header, MAX_FRAME, MAX_RUN_HDR, RUN_HDR,
    RunParse, SECTOR_HDR, TAG_ACK, TAG_BATCH, TAG_EVICT, TAG_PACKED, TAG_RESERVE, TSD_EXTRA,
    round_up,
};
use super::{
    Batch, FlashErrorKind, Keep, KeepNone, LogEntry, ReadHint, ReadOut, RecordKind, RunInfo,
    SensorKey, Storage, StorageError, StorageStats, encoded_len, validate_batch,
};
use embedded_storage::nor_flash::{NorFlash, NorFlashError};

/// Read cursors kept per storage (one per recently read sensor).
const CURSORS: usize = 4;

/// Padding source.
const FF: [u8; 32] = [0xFF; 32];

#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    used: bool,
    key: SensorKey,
    next: u32,
    sector: u32,
    sector_seq: u64,
    off: u32,
}

/// Word-aligned staging buffer.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(4))]
struct Buf<const N: usize>([u8; N]);

/// Position of a log walk.
#[derive(Clone, Copy, Debug)]
struct Pos {
    sector: u32,
    /// 0 = sector header not checked yet.
    off: u32,
    seq: u64,
    single: bool,
    done: bool,
    /// Sector visits left (guards against any cycle).
    left: u32,
    /// Search walk: frames other than batches are skipped by their header,
    /// batch frames are returned without verifying their CRC.
    lazy: bool,
    /// A damaged frame header was met in this sector: an erased word no
    /// longer ends it (it may be the padding of the damaged frame).
    damaged: bool,
    /// The walk started at a sector start (or at a frame boundary found in
    /// this mount): its frames may count as verified by the sector marks.
    trusted: bool,
    /// Search walk: source and low byte of the id of the compact frame just
    /// returned, read with its header (a compact frame's id follows the
    /// frame header); frames of a sensor with another pair are not its own.
    compact_key: Option<(u8, u8)>,
    /// Search walk: the last frame header read was a compact frame's, so the
    /// next one is read with the byte after it (frames of one log tend to
    /// be of one kind: flushes of one sample, or batches of many runs).
    wide: bool,
}

/// A frame found by a walk, its CRC already verified.
#[derive(Clone, Copy, Debug)]
struct FrameLoc {
    sector: u32,
    sector_seq: u64,
    off: u32,
    abs: u32,
    tag: u8,
    len: u32,
}

/// Power-loss-safe log of record batches on a plain `NorFlash`.
///
/// RAM: `size_of::<NorFlashStorage<F, BUF>>()` = `size_of::<F>()` + `BUF` + about
/// 980 bytes (head position, four read cursors, four verified frames,
/// counters, and the read index: `RUNS` = 32 run references of 20 bytes, two
/// sector verification marks, a 64-sector verified bitmap; `4 * (VERIFY - 4)`
/// more for a larger `VERIFY`, `20 * (RUNS - 32)` for another `RUNS`;
/// measured on x86-64 in `tests/flash_counters.rs`),
/// independent of the flash size: no per-sector or per-sensor tables. `BUF`
/// (default 512, a multiple of 32, at least 64) is the staging buffer for
/// program operations, for verifying frames, and the read window; frames up
/// to `BUF` bytes are programmed in one operation and verified with one read.
///
/// Reads: the frames of a sector are verified in order, once per mount,
/// whoever reads them (a sector mark, then a bit once the whole sector
/// checked out); the runs of the frames verified are remembered, so a
/// sensor's next records are read directly. `VERIFY` (default 4, 1..=255) is
/// how many frames met out of that order (after damage in their sector) are
/// remembered as CRC-verified (4 bytes each). `RUNS` (default 32, 1..=255)
/// is how many run references are kept (20 bytes each): fewer save RAM on a
/// small target at the cost of more searches (a sensor whose run reference
/// was overwritten walks frame headers to its records) and, in `recover`,
/// more frames larger than `BUF` whose run headers are read again (a frame's
/// runs are parsed while its CRC streams past only when they fit: an EVT
/// run takes one reference, a TSD run two).
///
/// Geometry: `WRITE_SIZE` a power of two in 1..=32, `ERASE_SIZE` a multiple of
/// `WRITE_SIZE` in 256 B..=1 MiB (frames are at most 64 KiB), `READ_SIZE` a
/// power of two <= 32, 2 to 65,536 sectors.
#[derive(Debug)]
pub struct NorFlashStorage<
    F,
    const BUF: usize = 512,
    const VERIFY: usize = 4,
    const RUNS: usize = 32,
> {
    flash: F,
    n: u32,
    h: u32,
    mounted: bool,
    head: Option<u32>,
    head_seq: u64,
    /// Header of `head` not programmed yet (it goes out with the first frame).
    pending_header: bool,
    /// Sectors opened since the last reservation snapshot started (saturating;
    /// `u8::MAX` after a mount: none since).
    since_snap: u8,
    write_off: u32,
    sealed: bool,
    oldest: u32,
    /// Sequence number of the oldest live sector: older sectors are obsolete
    /// (evicted) whatever they still hold. Persisted in every sector header.
    floor: u64,
    /// What `buf` holds for reads: flash bytes `[start, start + len)` (one
    /// sector's), or nothing.
    cached: Option<(u32, u32)>,
    /// Split batches to fill sectors (see [`NorFlashStorage::set_fill_sectors`]).
    fill: bool,
    /// Last frames whose CRC checked out (absolute offsets, 0 = none; flash
    /// never changes under them until an erase).
    verified: [u32; VERIFY],
    verified_next: u8,
    cursors: [Cursor; CURSORS],
    /// Cursor slot replaced last (`< CURSORS`).
    victim: u8,
    /// Mount count (never 0 once mounted): read hints from another mount do
    /// not vouch for a frame's CRC.
    epoch: u16,
    stats: StorageStats,
    buf: Buf<BUF>,
    /// Bit `q % 64`: every frame of the sector numbered `q` (not the head, at
    /// most 63 above `vfloor`) checked out in this mount.
    vbits: u64,
    /// The floor `vbits` was last brought up to date with.
    vfloor: u64,
    /// Sectors being verified frame by frame from their start.
    vmarks: [Vmark; VMARKS],
    /// Slot of `vmarks` replaced last.
    vmark_next: u8,
    /// Runs of the frames verified last (where each sensor's next records are).
    ring: [RunRef; RUNS],
    /// Slot of `ring` written next.
    ring_next: u8,
    /// `recover` is walking the log (its runs are not noted in `ring`).
    recovering: bool,
    /// While recovering: the frame (larger than `BUF`) whose runs the
    /// streamed CRC pass parsed into `ring` (0 = none), and how many slots
    /// they take (`u8::MAX`: not all of them fitted).
    parsed: u32,
    parsed_n: u8,
    /// Bit `s` (rings of at most 64 sectors): the header mount read for
    /// sector `s` carries the number its ring position gives it, so the walk
    /// that follows (recovery) does not read it again. Cleared for a sector
    /// about to be erased.
    mhdr: u64,
}

/// Sectors verified frame by frame at the same time.
const VMARKS: usize = 2;

/// A sector whose frames from its first one up to `upto` all checked out in
/// this mount.
#[derive(Clone, Copy, Debug, Default)]
struct Vmark {
    used: bool,
    /// Damage at `upto` (a frame whose CRC or header is bad): frames past it
    /// are checked one by one, not by reading from `upto` again each time.
    stuck: bool,
    sector: u32,
    seq: u64,
    upto: u32,
}

/// A run found in a frame verified in this mount (20 bytes): the frame at
/// `abs` (0 = none), the run header's offset `rel` in it, where its records
/// start (`rec`), and the run itself, so that its records are read with no
/// header read and no search.
#[derive(Clone, Copy, Debug, Default)]
struct RunRef {
    abs: u32,
    first: u32,
    id: u32,
    rel: u16,
    rec: u16,
    count: u16,
    source: u8,
    /// 0: none, 1: TSD, 2: EVT.
    kind: u8,
}

/// Run headers parsed from a frame's bytes as they stream past (recovery of
/// frames larger than `BUF`): the runs go to the slots of `ring` (EVT one,
/// TSD two: the second holds its timing), to be reported once the CRC
/// checked out.
struct StreamParse {
    /// Parsing (not given up: bad header, or more runs than slots).
    ok: bool,
    /// Every run parsed.
    done: bool,
    /// The frame's tag (its first byte): plain, packed or compact.
    tag: u8,
    /// Frame length without the CRC.
    end: usize,
    /// Offset of the next run header (plain frames).
    next: usize,
    /// Header bytes collected so far.
    have: usize,
    hb: [u8; MAX_RUN_HDR],
    /// Ring slots used.
    slots: usize,
}

impl StreamParse {
    fn new(end: usize, on: bool) -> Self {
        Self {
            ok: on,
            done: false,
            tag: TAG_BATCH,
            end,
            next: FRAME_HDR,
            have: 0,
            hb: [0; MAX_RUN_HDR],
            slots: 0,
        }
    }

    /// Takes frame bytes `[at, at + bytes.len())` (in order, no gap).
    fn feed(&mut self, ring: &mut [RunRef], at: usize, bytes: &[u8]) {
        if at == 0 {
            match bytes.first() {
                Some(&t) => self.tag = t,
                None => self.ok = false,
            }
        }
        let compact = frame::is_compact(self.tag);
        while self.ok && !self.done {
            let hdr = if compact { 0 } else { self.next };
            if hdr >= self.end {
                self.done = true;
                return;
            }
            let avail = (self.end - hdr).min(MAX_RUN_HDR);
            if self.have < avail {
                let start = hdr + self.have;
                let Some(off) = start.checked_sub(at) else {
                    self.ok = false;
                    return;
                };
                let Some(src) = bytes.get(off..).filter(|b| !b.is_empty()) else {
                    return;
                };
                let take = (avail - self.have).min(src.len());
                for (d, b) in self
                    .hb
                    .iter_mut()
                    .skip(self.have)
                    .zip(src.iter().take(take))
                {
                    *d = *b;
                }
                self.have += take;
                if self.have < avail {
                    return;
                }
            }
            self.have = 0;
            let Some(h) = self.hb.get(..avail) else {
                self.ok = false;
                return;
            };
            // (A compact frame's run header starts the frame; the others
            // are parsed as `run_hdr` does: plain or packed by the tag.)
            let parsed = frame::parse_batch_run(self.tag, h, hdr, self.end);
            match parsed {
                RunParse::End => self.done = true,
                RunParse::Bad => self.ok = false,
                RunParse::Run(info, hl, rl) => {
                    let tsd = info.kind == super::RecordKind::Tsd;
                    let need = if tsd { 2 } else { 1 };
                    if self.slots + need > ring.len() {
                        self.ok = false;
                        return;
                    }
                    if let Some(r) = ring.get_mut(self.slots) {
                        *r = RunRef {
                            abs: 1,
                            first: info.first_seq,
                            id: info.key.id,
                            rel: 0,
                            rec: 0,
                            count: info.count,
                            source: info.key.source,
                            kind: if tsd { 1 } else { 2 },
                        };
                    }
                    if tsd && let Some(r) = ring.get_mut(self.slots + 1) {
                        *r = RunRef {
                            abs: info.meta.interval,
                            first: info.meta.base_time as u32,
                            id: (info.meta.base_time >> 32) as u32,
                            ..RunRef::default()
                        };
                    }
                    self.slots += need;
                    self.next = hdr + hl + rl;
                    // A short run: the bytes collected past it start the
                    // next run header (they have streamed past already).
                    let used = hl + rl;
                    let left = avail.saturating_sub(used);
                    for i in 0..left {
                        if let Some(&x) = self.hb.get(used + i)
                            && let Some(d) = self.hb.get_mut(i)
                        {
                            *d = x;
                        }
                    }
                    self.have = left;
                    if compact {
                        self.done = true;
                    }
                }
            }
        }
    }
}

/// The run in slots `i` (and `i + 1` for TSD) of the ring, as
/// [`StreamParse`] left it; returns it and the slots it took.
fn parsed_run(ring: &[RunRef], i: usize) -> Option<(RunInfo, usize)> {
    let r = ring.get(i)?;
    let key = SensorKey {
        source: r.source,
        id: r.id,
    };
    let (kind, meta, n) = if r.kind == 1 {
        let m = ring.get(i + 1)?;
        let meta = super::RunMeta {
            base_time: u64::from(m.first) | u64::from(m.id) << 32,
            interval: m.abs,
        };
        (super::RecordKind::Tsd, meta, 2)
    } else {
        (super::RecordKind::Evt, super::RunMeta::default(), 1)
    };
    let info = RunInfo {
        key,
        kind,
        first_seq: r.first,
        count: r.count,
        meta,
    };
    Some((info, n))
}

fn ferr<E: NorFlashError>(e: E) -> StorageError {
    StorageError::Flash(FlashErrorKind::from(e.kind()))
}

/// Reads `dst.len()` bytes at any offset, honouring `READ_SIZE` alignment.
pub(super) fn read_at<F: NorFlash>(
    flash: &mut F,
    off: u32,
    dst: &mut [u8],
) -> Result<(), StorageError> {
    let r = F::READ_SIZE as u32;
    if r <= 1 {
        return flash.read(off, dst).map_err(ferr);
    }
    let mut done = 0usize;
    while done < dst.len() {
        let pos = off + done as u32;
        let start = pos - pos % r;
        let skip = (pos - start) as usize;
        let mut tmp = [0u8; 64];
        let want = (skip + dst.len() - done).min(64);
        let n = round_up(want, r as usize).min(64);
        flash.read(start, &mut tmp[..n]).map_err(ferr)?;
        let take = (n - skip).min(dst.len() - done);
        dst[done..done + take].copy_from_slice(&tmp[skip..skip + take]);
        done += take;
    }
    Ok(())
}

/// Buffered programming: collects bytes and programs `W`-aligned chunks.
struct Prog<'a, F> {
    flash: &'a mut F,
    buf: &'a mut [u8],
    fill: usize,
    off: u32,
    ops: u32,
    err: Option<StorageError>,
}

impl<F: NorFlash> Prog<'_, F> {
    fn push(&mut self, mut b: &[u8]) {
        while !b.is_empty() && self.err.is_none() {
            let Some(room) = self.buf.get_mut(self.fill..).filter(|r| !r.is_empty()) else {
                // Unreachable (a full buffer is flushed at once); fail, never panic.
                self.err = Some(StorageError::TooLarge);
                return;
            };
            let n = room.len().min(b.len());
            let (now, rest) = b.split_at(n);
            if let Some(dst) = room.get_mut(..n) {
                dst.copy_from_slice(now);
            }
            self.fill += n;
            b = rest;
            if self.fill == self.buf.len() {
                self.flush();
            }
        }
    }
    fn flush(&mut self) {
        if self.fill == 0 || self.err.is_some() {
            return;
        }
        let Some(bytes) = self.buf.get(..self.fill) else {
            self.err = Some(StorageError::TooLarge);
            return;
        };
        match self.flash.write(self.off, bytes) {
            Ok(()) => {
                self.off += self.fill as u32;
                self.fill = 0;
                self.ops += 1;
            }
            Err(e) => self.err = Some(ferr(e)),
        }
    }
}

/// Body of a frame to be written.
enum Body<'a, B: ?Sized> {
    Batch(&'a B),
    Ack([u8; ACK_BODY]),
    Evict([u8; EVICT_BODY]),
    /// Encoded reservation entries.
    Reserve(&'a [u8]),
}

impl<B: ?Sized> Clone for Body<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: ?Sized> Copy for Body<'_, B> {}

/// Emits the bytes of a frame except its CRC: header, body, padding.
fn emit_frame<B: Batch + ?Sized>(body: Body<'_, B>, len: usize, f: &mut impl FnMut(&[u8])) {
    let compact = match body {
        Body::Batch(batch) => compact_run(batch),
        Body::Ack(_) | Body::Evict(_) | Body::Reserve(_) => None,
    };
    let mut used = 0;
    match (body, compact) {
        (Body::Batch(batch), Some(info)) => {
            // Frame and run header in one (see the format tables).
            let mut hb = [0u8; RUN_HDR + TSD_EXTRA];
            let hl = frame::compact_header(&info, &mut hb);
            f(&hb[..hl]);
            used += hl + emit_records(batch, 0, &info, f);
        }
        (Body::Batch(batch), None) => {
            let packed = packed_wins(batch);
            let tag = if packed { TAG_PACKED } else { TAG_BATCH };
            f(&frame::frame_header(tag, len));
            used += FRAME_HDR;
            for i in 0..batch.runs() {
                let info = batch.info(i);
                let mut hb = [0u8; MAX_RUN_HDR];
                let hl = if packed {
                    frame::packed_run_header(&info, &mut hb)
                } else {
                    let mut plain = [0u8; RUN_HDR + TSD_EXTRA];
                    let hl = frame::run_header(&info, &mut plain);
                    for (d, s) in hb.iter_mut().zip(plain.get(..hl).unwrap_or(&[])) {
                        *d = *s;
                    }
                    hl
                };
                // `get`: no panic path in the C archives (hl <= MAX_RUN_HDR).
                f(hb.get(..hl).unwrap_or(&[]));
                used += hl + emit_records(batch, i, &info, f);
            }
        }
        (Body::Ack(b), _) => {
            f(&frame::frame_header(TAG_ACK, len));
            f(&b);
            used += FRAME_HDR + b.len();
        }
        (Body::Reserve(b), _) => {
            f(&frame::frame_header(TAG_RESERVE, len));
            f(b);
            used += FRAME_HDR + b.len();
        }
        (Body::Evict(b), _) => {
            let mut h = frame::frame_header(TAG_ACK, len);
            h[0] = TAG_EVICT;
            h[3] = frame::header_check(&h[..3]);
            f(&h);
            f(&b);
            used += FRAME_HDR + b.len();
        }
    }
    let mut pad = len.saturating_sub(CRC_LEN + used);
    while pad > 0 {
        let k = pad.min(FF.len());
        f(&FF[..k]);
        pad -= k;
    }
}

/// Emits the records of run `i` (described by `info`); returns their length.
fn emit_records<B: Batch + ?Sized>(
    batch: &B,
    i: usize,
    info: &RunInfo,
    f: &mut impl FnMut(&[u8]),
) -> usize {
    let size = info.kind.record_size();
    match batch
        .slice(i)
        .and_then(|s| s.get(..info.count as usize * size))
    {
        Some(s) => f(s),
        None => {
            for k in 0..info.count as usize {
                let mut rb = [0u8; 8];
                batch.record(i, k, &mut rb[..size]);
                f(&rb[..size]);
            }
        }
    }
    info.count as usize * size
}

/// Body length of a batch written as a packed frame (run headers of
/// [`frame::packed_hdr_len`]).
fn packed_body_len<B: Batch + ?Sized>(batch: &B) -> usize {
    (0..batch.runs())
        .map(|i| {
            let r = batch.info(i);
            frame::packed_hdr_len(&r) + r.count as usize * r.kind.record_size()
        })
        .sum()
}

/// Whether a batch that is not one compact run goes out as a packed frame:
/// when its packed body is shorter than the plain one (ids, sequence numbers
/// and times below 2^28 or so: nearly always), so a frame is never longer
/// than [`encoded_len`] says.
fn packed_wins<B: Batch + ?Sized>(batch: &B) -> bool {
    packed_body_len(batch) < encoded_len(batch)
}

/// The run of a one-run batch that fits a compact frame.
fn compact_run<B: Batch + ?Sized>(batch: &B) -> Option<RunInfo> {
    if batch.runs() != 1 {
        return None;
    }
    let info = batch.info(0);
    frame::compact_fits(&info).then_some(info)
}

/// Records `[k0 of run i0, k1 of run i1)` of a batch (`k1 == 0`: up to the end
/// of run `i1 - 1`), itself a batch.
struct Sub<'a, B: ?Sized> {
    b: &'a B,
    i0: usize,
    k0: usize,
    i1: usize,
    k1: usize,
}

impl<B: Batch + ?Sized> Sub<'_, B> {
    /// Batch run index and record range `[lo, hi)` of sub-run `j`.
    fn range(&self, j: usize) -> (usize, usize, usize) {
        let i = self.i0 + j;
        let lo = if i == self.i0 { self.k0 } else { 0 };
        let hi = if i == self.i1 {
            self.k1
        } else {
            self.b.info(i).count as usize
        };
        (i, lo, hi)
    }
}

impl<B: Batch + ?Sized> Batch for Sub<'_, B> {
    fn runs(&self) -> usize {
        self.i1 - self.i0 + usize::from(self.k1 > 0)
    }
    fn info(&self, j: usize) -> RunInfo {
        let (i, lo, hi) = self.range(j);
        let mut r = self.b.info(i);
        r.first_seq = r.first_seq.wrapping_add(lo as u32);
        r.count = (hi - lo) as u16;
        r.meta.base_time = r
            .meta
            .base_time
            .wrapping_add(lo as u64 * r.meta.interval as u64);
        r
    }
    fn record(&self, j: usize, k: usize, out: &mut [u8]) {
        let (i, lo, _) = self.range(j);
        self.b.record(i, k + lo, out)
    }
    fn slice(&self, j: usize) -> Option<&[u8]> {
        let (i, lo, hi) = self.range(j);
        let size = self.b.info(i).kind.record_size();
        self.b.slice(i).and_then(|s| s.get(lo * size..hi * size))
    }
}

/// Where to split `batch` so that its first part's body fits in `room` bytes:
/// `(run, records of that run)` of the first record left out, or `None` if not
/// even one record fits or everything does.
fn split_at<B: Batch + ?Sized>(batch: &B, room: usize) -> Option<(usize, usize)> {
    let mut used = 0usize;
    for i in 0..batch.runs() {
        let r = batch.info(i);
        let hdr = frame::run_hdr_len(r.kind);
        let size = r.kind.record_size();
        let need = hdr + r.count as usize * size;
        if used + need <= room {
            used += need;
            continue;
        }
        let k = room.saturating_sub(used + hdr) / size;
        if k > 0 {
            return Some((i, k));
        }
        return if i > 0 { Some((i, 0)) } else { None };
    }
    None
}

/// Where to split `batch` so that its first part fills a sector tail of
/// `left` bytes (a multiple of `W`): as [`split_at`], and a first part of one run
/// that fits a compact frame may use the 4 bytes a compact header saves.
fn split_to_fill<B: Batch + ?Sized>(batch: &B, left: usize) -> Option<(usize, usize)> {
    let room = left.checked_sub(FRAME_HDR + CRC_LEN).filter(|&r| r > 0)?;
    let plain = split_at(batch, room);
    if batch.runs() == 0 || !frame::compact_fits(&batch.info(0)) {
        return plain;
    }
    match split_at(batch, room + FRAME_HDR) {
        c @ Some((0, 1..)) | c @ Some((1, 0)) => c,
        _ => plain,
    }
}

/// The run whose header starts at `rel` in the verified batch frame `loc`,
/// read straight from flash: (run, records offset, next run offset). The
/// copy-forward's own walk (it programs through the staging buffer).
fn raw_run<F: NorFlash>(
    flash: &mut F,
    loc: &FrameLoc,
    rel: u32,
) -> Result<Option<(RunInfo, u32, u32)>, StorageError> {
    let Some(end) = loc.len.checked_sub(CRC_LEN as u32).filter(|&e| rel < e) else {
        return Ok(None);
    };
    let Some(at) = frame::run_hdr_start(loc.tag, rel as usize) else {
        return Ok(None);
    };
    let at = at as u32;
    let avail = ((end - at) as usize).min(MAX_RUN_HDR);
    let mut hb = [0u8; MAX_RUN_HDR];
    let b = hb.get_mut(..avail).unwrap_or(&mut []);
    read_at(flash, loc.abs + at, b)?;
    Ok(
        match frame::parse_batch_run(loc.tag, b, rel as usize, end as usize) {
            RunParse::Run(info, hl, rl) => {
                let rec = at + hl as u32;
                Some((info, rec, rec + rl as u32))
            }
            RunParse::End | RunParse::Bad => None,
        },
    )
}

/// Serial-number "a is after b".
const fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl<F: NorFlash, const BUF: usize, const VERIFY: usize, const RUNS: usize>
    NorFlashStorage<F, BUF, VERIFY, RUNS>
{
    const W: usize = F::WRITE_SIZE;
    const E: usize = F::ERASE_SIZE;
    /// Length of an acknowledgement frame (and of a one-entry reservation frame).
    const ACK_LEN: usize = round_up(FRAME_HDR + ACK_BODY + CRC_LEN, F::WRITE_SIZE);
    /// Bytes at the end of every sector that batch frames never use (room for
    /// marks and reservations): four acknowledgement frames, at most a
    /// quarter of the sector's frame space, at least one acknowledgement
    /// frame (see the module docs, "Acknowledgements never destroy unread
    /// records").
    const TAIL: usize = {
        let a = Self::ACK_LEN;
        // (Saturating: `new` refuses geometries this does not fit.)
        let q = F::ERASE_SIZE.saturating_sub(round_up(SECTOR_HDR, F::WRITE_SIZE)) / 4;
        let q = match q.checked_rem(F::WRITE_SIZE) {
            Some(r) => q - r,
            None => q,
        };
        let q = if q > a { q } else { a };
        if 4 * a < q { 4 * a } else { q }
    };
    const BUF_OK: () = {
        assert!(
            BUF >= 64 && BUF.is_multiple_of(32),
            "BUF: >= 64, multiple of 32"
        );
        assert!(VERIFY >= 1 && VERIFY <= 255, "VERIFY: 1..=255");
        assert!(RUNS >= 1 && RUNS <= 255, "RUNS: 1..=255");
    };

    /// Wraps a flash. Checks the geometry; call [`Storage::mount`] next.
    pub fn new(flash: F) -> Result<Self, StorageError> {
        #[allow(clippy::let_unit_value)]
        let () = Self::BUF_OK;
        let (w, e, r) = (F::WRITE_SIZE, F::ERASE_SIZE, F::READ_SIZE);
        let n = flash.capacity() / e.max(1);
        let geometry_ok = w.is_power_of_two()
            && w <= 32
            && r.is_power_of_two()
            && r <= 32
            && e.is_multiple_of(w)
            && e.is_multiple_of(r)
            && (256..=1 << 20).contains(&e)
            && (2..=1 << 16).contains(&n)
            && n.checked_mul(e).is_some_and(|c| c <= u32::MAX as usize);
        if !geometry_ok {
            return Err(StorageError::Geometry);
        }
        Ok(Self {
            flash,
            n: n as u32,
            h: round_up(SECTOR_HDR, w) as u32,
            mounted: false,
            head: None,
            head_seq: 0,
            pending_header: false,
            since_snap: u8::MAX,
            write_off: 0,
            sealed: true,
            oldest: 0,
            floor: 0,
            cached: None,
            fill: true,
            verified: [0; VERIFY],
            verified_next: 0,
            cursors: [Cursor::default(); CURSORS],
            victim: 0,
            epoch: 0,
            stats: StorageStats::default(),
            buf: Buf([0; BUF]),
            vbits: 0,
            vfloor: 0,
            vmarks: [Vmark::default(); VMARKS],
            vmark_next: 0,
            ring: [RunRef::default(); RUNS],
            ring_next: 0,
            recovering: false,
            parsed: 0,
            parsed_n: 0,
            mhdr: 0,
        })
    }

    /// Whether a batch that does not fit in the rest of the newest sector is
    /// split to fill it (default `true`): sectors carry no unused tail, so
    /// erases = ceil(bytes programmed / sector size), at the cost of one more
    /// frame and run header (16 to 20 bytes plus padding) and program operation
    /// per sector. With `false` the batch goes whole to the next sector and the
    /// tail stays unused.
    pub fn set_fill_sectors(&mut self, on: bool) {
        self.fill = on;
    }

    /// The flash (for tests and statistics).
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Mutable access to the flash (for tests).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Number of erase sectors.
    pub fn sectors(&self) -> u32 {
        self.n
    }

    /// Upper bound of the bytes one `mount` reads: every sector header plus one
    /// sector (see the module docs).
    pub fn mount_read_bound(&self) -> usize {
        self.n as usize * round_up(SECTOR_HDR, F::READ_SIZE) + Self::E
    }

    /// Largest batch frame (padded) a sector can take: batch frames stay out
    /// of the sector's last [`Self::TAIL`] bytes.
    fn max_frame(&self) -> usize {
        let m = (Self::E - self.h as usize - Self::TAIL).min(MAX_FRAME);
        m - m % Self::W
    }

    /// Length of a reservation frame of `k` entries.
    const fn reserve_len(k: usize) -> usize {
        round_up(FRAME_HDR + k * frame::RESERVE_ENTRY + CRC_LEN, Self::W)
    }

    /// Frame length of a batch: compact when it is one run that fits one,
    /// else packed or plain, whichever is shorter.
    fn frame_len<B: Batch + ?Sized>(batch: &B) -> usize {
        match compact_run(batch) {
            Some(r) => frame::compact_len(r.kind, r.count as usize, Self::W),
            None => {
                let body = if packed_wins(batch) {
                    packed_body_len(batch)
                } else {
                    encoded_len(batch)
                };
                round_up(FRAME_HDR + body + CRC_LEN, Self::W)
            }
        }
    }

    fn base(&self, s: u32) -> u32 {
        s * Self::E as u32
    }

    /// Sector `s`'s header as written: `(sequence number, floor)`.
    fn raw_header(&mut self, s: u32) -> Result<Option<(u64, u64)>, StorageError> {
        let mut h = [0u8; SECTOR_HDR];
        let b = self.base(s);
        read_at(&mut self.flash, b, &mut h)?;
        Ok(frame::parse_sector_header(&h))
    }

    /// Sequence number of sector `s` if it is live: a valid header numbered
    /// from the floor to the head (an evicted sector keeps its header until
    /// it is erased, or after an erase cut at its first instant).
    fn sector_seq(&mut self, s: u32) -> Result<Option<u64>, StorageError> {
        if s < 64 && self.mhdr & (1 << s) != 0 {
            // Read by mount: numbered by its ring position (maybe evicted since).
            return Ok(self.ring_seq(s).filter(|&q| q >= self.floor));
        }
        if let Some(q) = self.known_seq(s) {
            return Ok(Some(q));
        }
        let (floor, head) = (self.floor, self.head_seq);
        Ok(self
            .raw_header(s)?
            .map(|(q, _)| q)
            .filter(|&q| q >= floor && q <= head))
    }

    /// Reads the newest sector's frame headers to find where its frames end;
    /// returns (that offset, bytes read). No frame is ever programmed there
    /// again (see [`Storage::mount`]), so the erased tail is not read.
    fn scan_head(&mut self, s: u32) -> Result<(u32, u32), StorageError> {
        let base = self.base(s);
        let e = Self::E as u32;
        let mut read = 0u32;
        let mut o = self.h;
        while o + FRAME_HDR as u32 <= e {
            let mut hb = [0u8; FRAME_HDR];
            read_at(&mut self.flash, base + o, &mut hb)?;
            read += FRAME_HDR as u32;
            match frame::parse_flash_frame_header(hb, (e - o) as usize, Self::W) {
                Header::Frame { tag, len } => {
                    if tag == TAG_EVICT && len <= BUF {
                        read += len as u32 - FRAME_HDR as u32;
                        self.cached = None;
                        let Some(fb) = self.buf.0.get_mut(..len) else {
                            break;
                        };
                        read_at(&mut self.flash, base + o, fb)?;
                        let (data, crc) = fb.split_at(len.saturating_sub(CRC_LEN));
                        let mut c = [0u8; CRC_LEN];
                        for (d, s) in c.iter_mut().zip(crc) {
                            *d = *s;
                        }
                        if CRC32.checksum(data) == u32::from_le_bytes(c)
                            && let Some(b) = fb.get(FRAME_HDR..FRAME_HDR + EVICT_BODY)
                        {
                            let f = u64::from_le_bytes([
                                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                            ]);
                            if f > self.floor && f <= self.head_seq {
                                self.floor = f;
                            }
                        }
                    }
                    o += len as u32;
                }
                Header::Erased | Header::Garbage => break,
            }
        }
        Ok((o, read))
    }

    /// Oldest sector of the log: the first valid one after the head.
    fn find_oldest(&mut self) -> Result<(), StorageError> {
        let Some(hd) = self.head else {
            self.oldest = 0;
            return Ok(());
        };
        self.oldest = hd;
        for i in 1..self.n {
            let s = (hd + i).checked_rem(self.n).unwrap_or(0);
            if self.sector_seq(s)?.is_some() {
                self.oldest = s;
                break;
            }
        }
        Ok(())
    }

    /// The sector after `s` in the ring (no `%`: `n` is checked to be at least
    /// 2 in `new`, but the compiler cannot see that, and a division by zero
    /// would be a panic path).
    fn next_sector(&self, s: u32) -> u32 {
        if s + 1 >= self.n { 0 } else { s + 1 }
    }

    fn check_mounted(&self) -> Result<(), StorageError> {
        if self.mounted {
            Ok(())
        } else {
            Err(StorageError::NotMounted)
        }
    }

    /// Opens the next sector of the ring as the head: erases it (it is never
    /// live: at most `n - 1` sectors are) and moves the floor so that at most
    /// `n - 1` sectors stay live, and at least past `min_floor`; the runs of
    /// the sectors that fall below the floor are reported as evicted. The new
    /// header, programmed with the first frame, records the floor: the
    /// eviction takes effect on flash before any byte of an evicted sector is
    /// touched (it is erased only when the ring comes round to it), so an erase
    /// cut at any instant leaves nothing that mount would take as live.
    fn open_next(
        &mut self,
        min_floor: u64,
        on_evict: &mut impl FnMut(RunInfo),
    ) -> Result<(), StorageError> {
        let victim = match self.head {
            None => 0,
            Some(hd) => self.next_sector(hd),
        };
        let seq = self.head_seq + 1;
        if seq > frame::MAX_SECTOR_SEQ {
            // Only a forged header gets here (2^47 sectors opened).
            return Err(StorageError::Geometry);
        }
        let floor = self
            .floor
            .max(seq.saturating_sub(self.n as u64 - 2))
            .max(min_floor)
            .min(seq);
        // Report what falls below the new floor, oldest first.
        if let Some(hd) = self.head {
            let mut s = self.oldest;
            for _ in 0..self.n {
                match self.sector_seq(s)? {
                    Some(q) if q < floor => self.report_sector(s, on_evict)?,
                    _ => {}
                }
                if s == hd {
                    break;
                }
                s = self.next_sector(s);
            }
        }
        self.forget_verified(victim);
        let b = self.base(victim);
        if let Err(e) = self.flash.erase(b, b + Self::E as u32) {
            self.mounted = false;
            return Err(ferr(e));
        }
        self.head = Some(victim);
        self.head_seq = seq;
        self.floor = floor;
        self.since_snap = self.since_snap.saturating_add(1);
        self.pending_header = true;
        self.write_off = self.h;
        self.sealed = false;
        self.find_oldest()
    }

    /// Makes room in the newest sector for a mark or reservation frame of
    /// `len` bytes: opens the next sector when the newest is full or must not
    /// be programmed again, copying forward the owed records of the sector
    /// that opening evicts ([`NorFlashStorage::open_keeping`]).
    fn make_room<K: Keep>(&mut self, len: usize, keep: &mut K) -> Result<(), StorageError> {
        if self.head.is_some() && !self.sealed && self.write_off as usize + len <= Self::E {
            return Ok(());
        }
        if !self.open_keeping(keep)? {
            self.open_next(0, &mut |r| keep.evicted(r))?;
        }
        Ok(())
    }

    /// Opens the next sector when that evicts the oldest sector and `keep`
    /// still owes records of it: erases the next sector, copies the owed
    /// records into it (one frame per frame of the victim holding any, no
    /// longer than the original), then programs its header, which records
    /// the new floor. Until that header is programmed the new sector is not
    /// live and the victim is; from then on the copies are live and the
    /// victim is not: a power cut at any instant keeps exactly one of them.
    /// Batch frames never use a sector's last [`Self::TAIL`] bytes, so the
    /// copies leave at least that much room. Returns `false` (nothing done)
    /// when opening evicts nothing, nothing owed, or the copies would not
    /// leave that room (a sector written by an older version).
    fn open_keeping<K: Keep>(&mut self, keep: &mut K) -> Result<bool, StorageError> {
        let Some(hd) = self.head else {
            return Ok(false);
        };
        let seq = self.head_seq + 1;
        if seq > frame::MAX_SECTOR_SEQ {
            return Ok(false);
        }
        let floor = self
            .floor
            .max(seq.saturating_sub(self.n as u64 - 2))
            .min(seq);
        let victim = self.oldest;
        let Some(vq) = self.sector_seq(victim)? else {
            return Ok(false);
        };
        // Exactly the oldest sector falls below the new floor.
        if vq >= floor || vq + 1 < floor {
            return Ok(false);
        }
        let total = self.copy_sector(victim, None, keep)?;
        if total == 0 || total > Self::E - self.h as usize - Self::TAIL {
            return Ok(false);
        }
        let new = self.next_sector(hd);
        self.forget_verified(new);
        let b = self.base(new);
        if let Err(e) = self.flash.erase(b, b + Self::E as u32) {
            self.mounted = false;
            return Err(ferr(e));
        }
        let copied = match self.copy_sector(victim, Some((b + self.h, seq)), keep) {
            Ok(c) => c,
            Err(e) => {
                self.mounted = false;
                return Err(e);
            }
        };
        // Commit: the header makes the copies live and the victim obsolete.
        let mut hb = Buf([0xFFu8; 64]);
        for (d, s) in hb.0.iter_mut().zip(frame::sector_header(seq, floor)) {
            *d = s;
        }
        let Some(bytes) = hb.0.get(..self.h as usize) else {
            return Err(StorageError::Geometry);
        };
        self.cached = None;
        if let Err(e) = self.flash.write(b, bytes) {
            self.mounted = false;
            return Err(ferr(e));
        }
        self.stats.evicted_sectors += 1;
        self.head = Some(new);
        self.head_seq = seq;
        self.floor = floor;
        self.since_snap = self.since_snap.saturating_add(1);
        self.pending_header = false;
        self.write_off = self.h + copied as u32;
        self.sealed = false;
        self.find_oldest()?;
        Ok(true)
    }

    /// The owed part of `run` as a run (`None`: nothing owed, or an answer
    /// that does not lie inside the run).
    fn owed_part<K: Keep>(keep: &mut K, run: &RunInfo) -> Option<RunInfo> {
        let (a, b) = keep.owed(run)?;
        let lo = a.wrapping_sub(run.first_seq);
        let hi = b.wrapping_sub(run.first_seq);
        if lo >= hi || hi > run.count as u32 {
            return None;
        }
        let mut r = *run;
        r.first_seq = a;
        r.count = (hi - lo) as u16;
        r.meta.base_time = r
            .meta
            .base_time
            .wrapping_add(lo as u64 * r.meta.interval as u64);
        Some(r)
    }

    /// Copies the owed records of sector `s` (being evicted) to `dst`
    /// (absolute offset, and the sequence number of the sector it lies in) or,
    /// with `None`, only measures them. Returns the bytes the copies take. When
    /// copying, the records not copied are reported to [`Keep::evicted`] and
    /// each copy's place to [`Keep::copied`].
    fn copy_sector<K: Keep>(
        &mut self,
        s: u32,
        dst: Option<(u32, u64)>,
        keep: &mut K,
    ) -> Result<usize, StorageError> {
        let mut pos = Pos {
            sector: s,
            off: 0,
            seq: 0,
            single: true,
            done: false,
            left: 1,
            lazy: false,
            damaged: false,
            trusted: true,
            compact_key: None,
            wide: false,
        };
        let mut total = 0usize;
        while let Some(loc) = self.next_frame(&mut pos)? {
            if !frame::is_batch(loc.tag) {
                continue;
            }
            let mut rel = FRAME_HDR as u32;
            let (mut body, mut packed, mut runs, mut only) = (0, 0, 0usize, RunInfo::EMPTY);
            while let Some((info, _, next)) = self.run_at(&loc, rel)? {
                if let Some(part) = Self::owed_part(keep, &info) {
                    let records = part.count as usize * part.kind.record_size();
                    body += super::run_encoded_len(part.kind, part.count as usize);
                    packed += frame::packed_hdr_len(&part) + records;
                    runs += 1;
                    only = part;
                }
                rel = next;
            }
            // The copy takes the shortest frame for its runs, as an append does.
            let style = if runs == 1 && frame::compact_fits(&only) {
                match only.kind {
                    RecordKind::Tsd => frame::TAG_RUN_TSD,
                    RecordKind::Evt => frame::TAG_RUN_EVT,
                }
            } else if packed < body {
                TAG_PACKED
            } else {
                TAG_BATCH
            };
            let len = match runs {
                0 => 0,
                _ if frame::is_compact(style) => {
                    frame::compact_len(only.kind, only.count as usize, Self::W)
                }
                _ => round_up(FRAME_HDR + body.min(packed) + CRC_LEN, Self::W),
            };
            if let Some((d, dseq)) = dst {
                let at = d + total as u32;
                // A frame boundary written in this mount: a reader of a copied
                // sensor starts here instead of at the oldest sector.
                let hint = ReadHint {
                    pos: at,
                    check: dseq as u32,
                    extra: (self.epoch as u32) << 16,
                };
                self.copy_frame(&loc, at, len, style, hint, keep)?;
            }
            total += len;
        }
        Ok(total)
    }

    /// Programs at `dst` a frame of `len` bytes (0: none) holding the owed
    /// records of the verified batch frame `loc`, as a frame of tag `style`
    /// (compact: one run); reports the records not copied as evicted and
    /// those copied with `hint` (the new frame's place).
    fn copy_frame<K: Keep>(
        &mut self,
        loc: &FrameLoc,
        dst: u32,
        len: usize,
        style: u8,
        hint: ReadHint,
        keep: &mut K,
    ) -> Result<(), StorageError> {
        let compact = frame::is_compact(style);
        self.cached = None;
        let chunk = BUF - BUF % Self::W;
        let Self {
            flash, buf, stats, ..
        } = self;
        let mut p = Prog {
            flash,
            buf: &mut buf.0[..chunk],
            fill: 0,
            off: dst,
            ops: 0,
            err: None,
        };
        let mut digest = CRC32.digest();
        let mut used = 0usize;
        if len > 0 && !compact {
            let h = frame::frame_header(style, len);
            digest.update(&h);
            p.push(&h);
            used += FRAME_HDR;
        }
        let mut rel = FRAME_HDR as u32;
        while let Some((info, rec, next)) = raw_run(&mut *p.flash, loc, rel)? {
            rel = next;
            let part = if len > 0 {
                Self::owed_part(keep, &info)
            } else {
                None
            };
            let Some(part) = part else {
                stats.evicted_records += info.count as u32;
                keep.evicted(info);
                continue;
            };
            keep.copied(&part, hint);
            // The parts of the run before and after the owed records.
            let skip = part.first_seq.wrapping_sub(info.first_seq);
            if skip > 0 {
                let mut r = info;
                r.count = skip as u16;
                stats.evicted_records += skip;
                keep.evicted(r);
            }
            let after = info.count as u32 - skip - part.count as u32;
            if after > 0 {
                let mut r = info;
                r.first_seq = part.end_seq();
                r.count = after as u16;
                r.meta.base_time = r
                    .meta
                    .base_time
                    .wrapping_add((skip + part.count as u32) as u64 * r.meta.interval as u64);
                stats.evicted_records += after;
                keep.evicted(r);
            }
            let mut hb = [0u8; MAX_RUN_HDR];
            let hl = if style == TAG_PACKED {
                frame::packed_run_header(&part, &mut hb)
            } else {
                let mut plain = [0u8; RUN_HDR + TSD_EXTRA];
                let hl = if compact {
                    frame::compact_header(&part, &mut plain)
                } else {
                    frame::run_header(&part, &mut plain)
                };
                for (d, s) in hb.iter_mut().zip(plain.get(..hl).unwrap_or(&[])) {
                    *d = *s;
                }
                hl
            };
            let h = hb.get(..hl).unwrap_or(&[]);
            digest.update(h);
            p.push(h);
            used += hl;
            let size = part.kind.record_size();
            let mut from = loc.abs + rec + skip * size as u32;
            let mut left = part.count as usize * size;
            used += left;
            let mut tmp = [0u8; 64];
            while left > 0 && p.err.is_none() {
                let k = left.min(tmp.len());
                let t = tmp.get_mut(..k).unwrap_or(&mut []);
                read_at(&mut *p.flash, from, t)?;
                digest.update(t);
                p.push(t);
                from += k as u32;
                left -= k;
            }
        }
        if len == 0 {
            return Ok(());
        }
        let Some(mut pad) = len.checked_sub(CRC_LEN + used) else {
            return Err(StorageError::TooLarge);
        };
        while pad > 0 {
            let k = pad.min(FF.len());
            digest.update(&FF[..k]);
            p.push(&FF[..k]);
            pad -= k;
        }
        p.push(&digest.finalize().to_le_bytes());
        p.flush();
        match p.err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reports every run of sector `s` (being evicted).
    fn report_sector(
        &mut self,
        s: u32,
        on_evict: &mut impl FnMut(RunInfo),
    ) -> Result<(), StorageError> {
        let mut pos = Pos {
            sector: s,
            off: 0,
            seq: 0,
            single: true,
            done: false,
            left: 1,
            lazy: false,
            damaged: false,
            trusted: true,
            compact_key: None,
            wide: false,
        };
        while let Some(loc) = self.next_frame(&mut pos)? {
            if !frame::is_batch(loc.tag) {
                continue;
            }
            let mut rel = FRAME_HDR as u32;
            while let Some((info, _, next)) = self.run_at(&loc, rel)? {
                self.stats.evicted_records += info.count as u32;
                on_evict(info);
                rel = next;
            }
        }
        self.stats.evicted_sectors += 1;
        Ok(())
    }

    /// Programs one frame (and the pending sector header) at the write point.
    fn write_frame<B: Batch + ?Sized>(
        &mut self,
        body: Body<'_, B>,
        len: usize,
        on_evict: &mut impl FnMut(RunInfo),
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        // Batch frames stay out of the sector's tail (room kept for marks).
        let limit = match body {
            Body::Batch(_) => Self::E - Self::TAIL,
            Body::Ack(_) | Body::Evict(_) | Body::Reserve(_) => Self::E,
        };
        let mut digest = CRC32.digest();
        let mut emitted = 0usize;
        emit_frame(body, len, &mut |b| {
            emitted += b.len();
            digest.update(b)
        });
        // A batch whose runs changed between sizing and writing would overrun
        // `len` into the next frame: refused before anything is erased or
        // programmed. (The program pass below is not checked again: a `Batch`
        // must give the same runs and records every time it is asked.)
        if emitted + CRC_LEN != len {
            return Err(StorageError::TooLarge);
        }
        let crc = digest.finalize().to_le_bytes();
        if self.head.is_none() || self.sealed || self.write_off as usize + len > limit {
            self.open_next(0, on_evict)?;
        }
        let Some(hd) = self.head else {
            return Err(StorageError::NotMounted);
        };
        let start = if self.pending_header {
            0
        } else {
            self.write_off
        };
        let chunk = BUF - BUF % Self::W;
        // A small frame (acknowledgement, reservation) is staged on the stack:
        // the read window in `buf` survives it.
        let mut small = [0u8; 64];
        let total = len
            + if self.pending_header {
                self.h as usize
            } else {
                0
            };
        let stage: &mut [u8] = if total <= small.len() {
            &mut small
        } else {
            self.cached = None;
            &mut self.buf.0[..chunk]
        };
        let mut p = Prog {
            flash: &mut self.flash,
            buf: stage,
            fill: 0,
            off: hd * Self::E as u32 + start,
            ops: 0,
            err: None,
        };
        if self.pending_header {
            p.push(&frame::sector_header(self.head_seq, self.floor));
            let mut pad = self.h as usize - SECTOR_HDR;
            while pad > 0 {
                let k = pad.min(FF.len());
                p.push(&FF[..k]);
                pad -= k;
            }
        }
        emit_frame(body, len, &mut |b| p.push(b));
        p.push(&crc);
        p.flush();
        if let Some(e) = p.err {
            self.mounted = false;
            return Err(e);
        }
        self.pending_header = false;
        self.write_off += len as u32;
        Ok(())
    }

    /// Sector `s` is about to be erased (or evicted): its frames are no
    /// longer verified, and nothing read from it stays cached.
    fn forget_verified(&mut self, s: u32) {
        let b = self.base(s);
        let e = Self::E as u32;
        for v in self.verified.iter_mut() {
            if v.wrapping_sub(b) < e {
                *v = 0;
            }
        }
        if self.cached.is_some_and(|(c, _)| c.wrapping_sub(b) < e) {
            self.cached = None;
        }
        for m in self.vmarks.iter_mut() {
            if m.sector == s {
                m.used = false;
            }
        }
        for r in self.ring.iter_mut() {
            if r.abs.wrapping_sub(b) < e {
                r.abs = 0;
            }
        }
        // The sector opened next (if this is the ring's victim) starts unverified.
        self.vbits &= !(1u64 << (self.head_seq.wrapping_add(1) % 64));
        if s < 64 {
            self.mhdr &= !(1u64 << s);
        }
    }

    /// Readable end of sector `s` (offset): where its frames may end.
    fn limit(&self, s: u32) -> u32 {
        match self.head {
            Some(hd) if hd == s && self.pending_header => 0,
            Some(hd) if hd == s => self.write_off,
            _ => Self::E as u32,
        }
    }

    /// Makes `buf` hold flash bytes `[abs, abs + n)` (one sector's), loading
    /// up to `BUF` bytes from `abs` on (not past the readable end of its
    /// sector, nor into its tail for bytes before it) when it does not; returns where they start in `buf`, or `None`
    /// when `n > BUF`.
    fn win(&mut self, abs: u32, n: usize) -> Result<Option<usize>, StorageError> {
        if let Some(o) = self.held(abs, n) {
            return Ok(Some(o));
        }
        if n > BUF {
            return Ok(None);
        }
        let s = abs / Self::E as u32;
        let mut end = self.base(s) + self.limit(s);
        if abs + n as u32 > end {
            // Past the readable end (the head's write position): never cached.
            return Ok(None);
        }
        // Batch frames never use the sector's tail (kept for marks, mostly
        // erased): a load for bytes before it stops there, one in it loads
        // the bytes asked for alone (a probe for the end of the frames, or a
        // mark whose header the probe found).
        let tail = self.base(s) + (Self::E - Self::TAIL) as u32;
        if abs + n as u32 <= tail {
            end = end.min(tail);
        } else if abs >= tail {
            end = end.min(abs + n as u32);
        }
        let want = (end.saturating_sub(abs) as usize).clamp(n, BUF);
        // What the window holds from `abs` on moves to the front and is not
        // read again.
        let keep = match self.cached.take() {
            Some((st, len)) if abs >= st && abs < st + len => {
                let from = (abs - st) as usize;
                let k = (len as usize).min(BUF).saturating_sub(from).min(want);
                for i in 0..k {
                    if let Some(&b) = self.buf.0.get(from + i)
                        && let Some(d) = self.buf.0.get_mut(i)
                    {
                        *d = b;
                    }
                }
                k
            }
            _ => 0,
        };
        let Some(dst) = self.buf.0.get_mut(keep..want) else {
            return Ok(None);
        };
        read_at(&mut self.flash, abs + keep as u32, dst)?;
        self.cached = Some((abs, want as u32));
        Ok(Some(0))
    }

    /// Loads exactly `[abs, abs + n)` into the window unless it holds it
    /// already or `n` exceeds it (then nothing is read).
    fn win_exact(&mut self, abs: u32, n: usize) -> Result<(), StorageError> {
        if self.held(abs, n).is_some() {
            return Ok(());
        }
        let Some(dst) = self.buf.0.get_mut(..n) else {
            return Ok(());
        };
        self.cached = None;
        read_at(&mut self.flash, abs, dst)?;
        self.cached = Some((abs, n as u32));
        Ok(())
    }

    /// Reads `dst` at `abs` through the window of [`Self::win`].
    fn win_read(&mut self, abs: u32, dst: &mut [u8]) -> Result<(), StorageError> {
        let n = dst.len();
        match self.win(abs, n)? {
            Some(o) => match self.buf.0.get(o..o + n) {
                Some(src) => {
                    dst.copy_from_slice(src);
                    Ok(())
                }
                None => read_at(&mut self.flash, abs, dst),
            },
            None => read_at(&mut self.flash, abs, dst),
        }
    }

    /// Reads `dst` at `abs`: from the window when it holds the bytes, else
    /// straight from flash (a small read at a known place loads no window).
    fn small_read(&mut self, abs: u32, dst: &mut [u8]) -> Result<(), StorageError> {
        let n = dst.len();
        if let Some(o) = self.held(abs, n)
            && let Some(src) = self.buf.0.get(o..o + n)
        {
            dst.copy_from_slice(src);
            return Ok(());
        }
        read_at(&mut self.flash, abs, dst)
    }

    /// Where the window holds flash bytes `[abs, abs + n)` in `buf`, if it does.
    fn held(&self, abs: u32, n: usize) -> Option<usize> {
        let (st, len) = self.cached?;
        let o = abs.checked_sub(st)? as usize;
        (o.checked_add(n)? <= len as usize).then_some(o)
    }

    /// Verifies a frame's CRC, remembering it in the small verified set
    /// (frames met out of order; the sector marks cover the rest).
    fn check_crc(&mut self, abs: u32, len: u32) -> Result<bool, StorageError> {
        if self.verified.contains(&abs) {
            return Ok(true);
        }
        let ok = self.check_crc_uncached(abs, len)?;
        if ok {
            let k = self.verified_next as usize % VERIFY;
            self.verified[k] = abs;
            self.verified_next = ((k + 1) % VERIFY) as u8;
        }
        Ok(ok)
    }

    /// Whether the CRC of the frame at `abs` matches; a frame up to `BUF`
    /// bytes is read through the window (and stays there for its runs), a
    /// larger one streamed once.
    fn check_crc_uncached(&mut self, abs: u32, len: u32) -> Result<bool, StorageError> {
        let len = len as usize;
        let Some(body) = len.checked_sub(CRC_LEN) else {
            return Ok(false);
        };
        let mut stored = [0u8; CRC_LEN];
        if let Some(o) = self.win(abs, len)? {
            let Some((data, crc)) = self.buf.0.get(o..o + len).map(|f| f.split_at(body)) else {
                return Ok(false);
            };
            stored.copy_from_slice(crc);
            return Ok(CRC32.checksum(data) == u32::from_le_bytes(stored));
        }
        let mut digest = CRC32.digest();
        let mut p = 0usize;
        // While recovering, the run headers are parsed from the same read.
        let mut sp = StreamParse::new(body, self.recovering);
        // What the window holds of the frame already (from its start, which
        // may be anywhere in the window) is not read again.
        // (Its CRC bytes, if held, are read again with the rest.)
        if let Some((st, n)) = self.cached
            && let Some(from) = abs.checked_sub(st)
            && from < n
            && let Some(held) = self
                .buf
                .0
                .get(from as usize..(from as usize + ((n - from) as usize).min(body)))
        {
            digest.update(held);
            sp.feed(&mut self.ring, 0, held);
            p = held.len();
        }
        self.cached = None;
        let mut last = None;
        while p < len {
            let k = (len - p).min(BUF);
            last = Some((abs + p as u32, k as u32));
            let Some(chunk) = self.buf.0.get_mut(..k) else {
                return Ok(false);
            };
            read_at(&mut self.flash, abs + p as u32, chunk)?;
            // The CRC is the last 4 bytes: digest what comes before it.
            let d = k.min(body.saturating_sub(p));
            let (data, tail) = chunk.split_at(d.min(chunk.len()));
            digest.update(data);
            sp.feed(&mut self.ring, p, data);
            for (i, b) in tail.iter().enumerate() {
                if let Some(x) = stored.get_mut((p + d + i).wrapping_sub(body)) {
                    *x = *b;
                }
            }
            p += k;
        }
        // The last part stays in the window (the runs there are not read again).
        self.cached = last;
        if self.recovering {
            self.parsed = abs;
            self.parsed_n = if sp.done && sp.ok {
                sp.slots as u8
            } else {
                u8::MAX
            };
        }
        Ok(digest.finalize() == u32::from_le_bytes(stored))
    }

    /// Bit of `vbits` for sector number `q`, if `q` is tracked there.
    fn vbit(&mut self, q: u64) -> Option<u64> {
        if self.floor > self.vfloor {
            // Sectors that fell below the floor leave the bitmap.
            let mut f = self.vfloor;
            while f < self.floor && f < self.vfloor + 64 {
                self.vbits &= !(1u64 << (f % 64));
                f += 1;
            }
            self.vfloor = self.floor;
        }
        (q >= self.vfloor && q - self.vfloor < 64 && q < self.head_seq).then(|| 1u64 << (q % 64))
    }

    /// Whether the frame at `loc` (found by a trusted walk) checked out in
    /// this mount. Otherwise verifies the frames of its sector in order from
    /// where that sector's verification stopped up to it (each read once, into
    /// the window, its runs remembered), so every frame of a sector is read
    /// for its CRC once per mount whoever reads it; a frame met out of order
    /// (damage before it) falls back to [`Self::check_crc`].
    fn frame_ok(&mut self, loc: &FrameLoc, trusted: bool) -> Result<bool, StorageError> {
        if !trusted {
            return self.check_crc(loc.abs, loc.len);
        }
        if self.ring_seq(loc.sector) == Some(loc.sector_seq)
            && let Some(bit) = self.vbit(loc.sector_seq)
            && self.vbits & bit != 0
        {
            return Ok(true);
        }
        let slot = match self
            .vmarks
            .iter()
            .position(|m| m.used && m.sector == loc.sector && m.seq == loc.sector_seq)
        {
            Some(i) => i,
            None => {
                let i = self.vmark_next as usize % VMARKS;
                self.vmark_next = ((i + 1) % VMARKS) as u8;
                if let Some(m) = self.vmarks.get_mut(i) {
                    *m = Vmark {
                        used: true,
                        stuck: false,
                        sector: loc.sector,
                        seq: loc.sector_seq,
                        upto: self.h,
                    };
                }
                i
            }
        };
        let Some(mut m) = self.vmarks.get(slot).copied() else {
            return self.check_crc(loc.abs, loc.len);
        };
        if loc.off < m.upto {
            return Ok(true);
        }
        let base = self.base(loc.sector);
        let limit = self.limit(loc.sector);
        let from = m.upto;
        while !m.stuck {
            let mut hb = [0u8; FRAME_HDR];
            if m.upto + FRAME_HDR as u32 > limit {
                break;
            }
            if m.upto > loc.off {
                // Past the frame asked for: go on while the frames are in the
                // window already (no read), so that the runs of the next
                // frames are known before anyone asks for them.
                let at = base + m.upto;
                if self.held(at, FRAME_HDR).is_none() {
                    break;
                }
                self.small_read(at, &mut hb)?;
                match frame::parse_flash_frame_header(hb, (limit - m.upto) as usize, Self::W) {
                    Header::Frame { len, .. } if self.held(at, len).is_some() => {}
                    _ => break,
                }
            }
            self.win_read(base + m.upto, &mut hb)?;
            let (tag, len) =
                match frame::parse_flash_frame_header(hb, (limit - m.upto) as usize, Self::W) {
                    Header::Frame { tag, len } => (tag, len),
                    Header::Garbage => {
                        m.stuck = true;
                        break;
                    }
                    Header::Erased => break,
                };
            let at = FrameLoc {
                sector: loc.sector,
                sector_seq: loc.sector_seq,
                off: m.upto,
                abs: base + m.upto,
                tag,
                len: len as u32,
            };
            if !self.check_crc_uncached(at.abs, at.len)? {
                m.stuck = true;
                break;
            }
            if frame::is_batch(tag) && !self.recovering {
                self.note_runs(&at)?;
            }
            m.upto += len as u32;
        }
        if let Some(x) = self.vmarks.get_mut(slot) {
            *x = m;
        }
        if loc.off < m.upto {
            self.maybe_complete(slot, m.upto > from)?;
            return Ok(true);
        }
        // Damage before the frame (or a frame the marks cannot reach).
        self.check_crc(loc.abs, loc.len)
    }

    /// A sector mark that reached the end of a sector other than the head
    /// turns into its bit. The end is seen from the window, or, when the mark
    /// `advanced` in this call past what the window holds (a frame larger
    /// than the window, streamed), from a read of the next frame header: a
    /// mark left without its bit is recycled and the sector verified again by
    /// the next reader. (Not while recovering: the walk reads every header,
    /// that one too, and [`Self::note_sector_end`] completes the mark.)
    fn maybe_complete(&mut self, slot: usize, advanced: bool) -> Result<(), StorageError> {
        let Some(m) = self.vmarks.get(slot).copied() else {
            return Ok(());
        };
        let e = Self::E as u32;
        if Some(m.sector) == self.head {
            return Ok(());
        }
        let abs = self.base(m.sector) + m.upto;
        let held = self.held(abs, FRAME_HDR).is_some();
        let end = m.upto + FRAME_HDR as u32 > e
            || (held || advanced && !self.recovering) && {
                let mut hb = [0u8; FRAME_HDR];
                self.small_read(abs, &mut hb)?;
                hb == [0xFF; FRAME_HDR]
            };
        if end {
            self.complete(slot);
        }
        Ok(())
    }

    /// The mark in `slot` reached the end of its sector: it turns into the
    /// sector's bit (a sector at its ring position, not the head).
    fn complete(&mut self, slot: usize) {
        let Some(m) = self.vmarks.get(slot).copied() else {
            return;
        };
        if Some(m.sector) != self.head
            && self.ring_seq(m.sector) == Some(m.seq)
            && let Some(bit) = self.vbit(m.seq)
        {
            self.vbits |= bit;
            if let Some(x) = self.vmarks.get_mut(slot) {
                x.used = false;
            }
        }
    }

    /// A walk found the end of the frames of sector `s` (numbered `seq`) at
    /// `off`: a mark that verified the sector up to there is complete.
    fn note_sector_end(&mut self, s: u32, seq: u64, off: u32) {
        if let Some(slot) = self
            .vmarks
            .iter()
            .position(|m| m.used && !m.stuck && m.sector == s && m.seq == seq && m.upto == off)
        {
            self.complete(slot);
        }
    }

    /// Remembers the runs of a batch frame just verified (see `ring`).
    fn note_runs(&mut self, loc: &FrameLoc) -> Result<(), StorageError> {
        let mut rel = FRAME_HDR as u32;
        while let Some((info, rec, next)) = self.run_hdr(loc, rel, false)? {
            let i = self.ring_next as usize % RUNS;
            self.ring_next = ((i + 1) % RUNS) as u8;
            if let Some(r) = self.ring.get_mut(i) {
                *r = RunRef {
                    abs: loc.abs,
                    first: info.first_seq,
                    id: info.key.id,
                    rel: rel as u16,
                    rec: rec as u16,
                    count: info.count,
                    source: info.key.source,
                    kind: match info.kind {
                        super::RecordKind::Tsd => 1,
                        super::RecordKind::Evt => 2,
                    },
                };
            }
            rel = next;
        }
        Ok(())
    }

    /// Reads bytes of the frame at `loc` (from the window when it holds them).
    fn frame_bytes(
        &mut self,
        loc: &FrameLoc,
        rel: u32,
        dst: &mut [u8],
    ) -> Result<(), StorageError> {
        self.small_read(loc.abs + rel, dst)
    }

    /// Sequence number of sector `s` if it is live, without a read when the
    /// sector was verified in this mount (sectors are numbered in ring order,
    /// so a live sector's number follows from its distance to the head).
    fn live_seq(&mut self, s: u32) -> Result<Option<u64>, StorageError> {
        self.sector_seq(s)
    }

    /// The number sector `s` holds if the ring is in order: sectors are opened
    /// one after the other, so it is the head's number less the distance from
    /// `s` to the head. A bit of `vbits` (keyed by number alone) vouches for a
    /// sector only there: a damaged image can hold a number out of ring order.
    fn ring_seq(&self, s: u32) -> Option<u64> {
        let hd = self.head?;
        let d = if hd >= s { hd - s } else { hd + self.n - s } as u64;
        self.head_seq.checked_sub(d)
    }

    /// The sectors whose headers, read by mount, are numbered as their ring
    /// position says: the head's, and going back from it each sector with a
    /// header as long as the sector after it is numbered one above it.
    /// (Rings of more than 64 sectors: none.)
    fn ring_headers(n: u32, head: u32, valid: u64, step: u64) -> u64 {
        if n > 64 || head >= n {
            return 0;
        }
        let mut bits = 1u64 << head;
        let mut s = head;
        for _ in 1..n {
            let before = if s == 0 { n - 1 } else { s - 1 };
            if step & (1 << s) == 0 || valid & (1 << before) == 0 {
                break;
            }
            bits |= 1 << before;
            s = before;
        }
        bits
    }

    /// The number of live sector `s` when a sector mark or bit of this mount
    /// vouches for its header (no read).
    fn known_seq(&mut self, s: u32) -> Option<u64> {
        let q = self.ring_seq(s)?;
        if q < self.floor {
            return None;
        }
        if self
            .vmarks
            .iter()
            .any(|m| m.used && m.sector == s && m.seq == q)
        {
            return Some(q);
        }
        let bit = self.vbit(q)?;
        (self.vbits & bit != 0).then_some(q)
    }

    /// The run whose header starts at `rel` in a verified batch frame:
    /// (run, records offset, next run offset).
    fn run_at(
        &mut self,
        loc: &FrameLoc,
        rel: u32,
    ) -> Result<Option<(RunInfo, u32, u32)>, StorageError> {
        self.run_hdr(loc, rel, true)
    }

    /// [`Self::run_at`]; `count_bad`: count a malformed run header as a bad
    /// frame (not while peeking into a frame whose CRC is not checked yet).
    fn run_hdr(
        &mut self,
        loc: &FrameLoc,
        rel: u32,
        count_bad: bool,
    ) -> Result<Option<(RunInfo, u32, u32)>, StorageError> {
        let end = loc.len - CRC_LEN as u32;
        if rel >= end {
            return Ok(None);
        }
        // A compact frame holds one run; its header starts the frame and is
        // addressed as the run at `FRAME_HDR` (where a plain frame's first run is).
        let Some(at) = frame::run_hdr_start(loc.tag, rel as usize) else {
            return Ok(None);
        };
        let at = at as u32;
        // EVT headers in one read; a TSD header's times in a second one. A
        // packed header is read `PACKED_READ` bytes at a time until its end
        // is known: a reader passing other sensors' runs reads their headers,
        // not the records after them.
        let left = (end - at) as usize;
        let mut hb = [0u8; MAX_RUN_HDR];
        let packed = loc.tag == frame::TAG_PACKED;
        let step = if packed {
            frame::PACKED_READ
        } else {
            frame::SHORT_RUN_HDR
        };
        let mut have = left.min(step);
        self.frame_bytes(loc, at, &mut hb[..have])?;
        let need = left.min(frame::run_hdr_need(loc.tag, hb[0]));
        let avail = loop {
            if packed && let Some(n) = frame::packed_hdr_end(&hb[..have]) {
                break n;
            }
            if have >= need {
                break have;
            }
            let next = if packed {
                (have + step).min(need)
            } else {
                need
            };
            if let Some(more) = hb.get_mut(have..next) {
                self.frame_bytes(loc, at + have as u32, more)?;
            }
            have = next;
        };
        let parsed = frame::parse_batch_run(loc.tag, &hb[..avail], rel as usize, end as usize);
        match parsed {
            RunParse::End => Ok(None),
            RunParse::Bad => {
                if count_bad {
                    self.stats.bad_frames += 1;
                }
                Ok(None)
            }
            RunParse::Run(info, hl, rl) => {
                let rec = at + hl as u32;
                Ok(Some((info, rec, rec + rl as u32)))
            }
        }
    }

    /// Searches the runs of the verified batch frame `loc` from `rel` for the
    /// first records of `key` at or after `seq`; copies them into `out`.
    /// Returns them and the offset of their run header.
    fn find_in_frame(
        &mut self,
        loc: &FrameLoc,
        mut rel: u32,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<(ReadOut, u32)>, StorageError> {
        while let Some((run, rec, next)) = self.run_at(loc, rel)? {
            if run.key == key && (run.contains(seq) || after(run.first_seq, seq)) {
                let size = run.kind.record_size();
                if out.len() < size {
                    return Err(StorageError::BufferTooSmall);
                }
                let first = if run.contains(seq) {
                    seq
                } else {
                    run.first_seq
                };
                let skip = first.wrapping_sub(run.first_seq) as usize;
                let count = (run.count as usize - skip).min(out.len() / size);
                // The run (header and records) goes to the window when it fits:
                // the next reads of this sensor (a record at a time) find its
                // header and records there instead of reading them again.
                if let Some(at) = frame::run_hdr_start(loc.tag, rel as usize) {
                    self.win_exact(loc.abs + at as u32, (next - at as u32) as usize)?;
                }
                let Some(dst) = out.get_mut(..count * size) else {
                    return Err(StorageError::BufferTooSmall);
                };
                self.frame_bytes(loc, rec + (skip * size) as u32, dst)?;
                return Ok(Some((ReadOut { run, first, count }, rel)));
            }
            rel = next;
        }
        Ok(None)
    }

    /// Where the batch frame `loc`, its CRC not checked, seems to hold
    /// records of `key` at or after `seq`: the offset of that run's header
    /// (its run headers alone are read).
    fn peek_frame(
        &mut self,
        loc: &FrameLoc,
        key: SensorKey,
        seq: u32,
    ) -> Result<Option<u32>, StorageError> {
        let mut rel = FRAME_HDR as u32;
        while let Some((run, _, next)) = self.run_hdr(loc, rel, false)? {
            if run.key == key && (run.contains(seq) || after(run.first_seq, seq)) {
                return Ok(Some(rel));
            }
            rel = next;
        }
        Ok(None)
    }

    /// Hint: the verified batch frame at `loc`, its run header at `rel`.
    fn hint_at(&self, loc: &FrameLoc, rel: u32) -> ReadHint {
        ReadHint {
            pos: loc.abs,
            check: loc.sector_seq as u32,
            extra: ((self.epoch as u32) << 16) | rel,
        }
    }

    /// Where a hint points, if its sector still holds what it held then:
    /// (sector, offset, sector sequence number).
    fn hint_pos(&mut self, hint: &ReadHint) -> Result<Option<(u32, u32, u64)>, StorageError> {
        if *hint == ReadHint::NONE {
            return Ok(None);
        }
        let e = Self::E as u32;
        let (sector, off) = (hint.pos / e, hint.pos % e);
        if sector >= self.n || off < self.h || (self.head == Some(sector) && self.pending_header) {
            return Ok(None);
        }
        Ok(match self.live_seq(sector)? {
            Some(q) if q as u32 == hint.check => Some((sector, off, q)),
            _ => None,
        })
    }

    /// The search of [`Storage::read_hinted`]: from the hint when its sector
    /// has not been erased since (same sector sequence number), at the run
    /// header it names in a frame verified during this mount (no CRC pass, no
    /// walk over the runs before it) or at the frame boundary / write position
    /// it names; else from the oldest sector. Returns the records and a hint
    /// for the next record.
    fn search(
        &mut self,
        key: SensorKey,
        seq: u32,
        hint: Option<ReadHint>,
        out: &mut [u8],
    ) -> Result<Option<(ReadOut, ReadHint)>, StorageError> {
        let mut pos = self.start_pos();
        pos.lazy = true;
        if let Some(found) = self.ring_lookup(key, seq, out)? {
            return Ok(Some(found));
        }
        if let Some(hint) = hint
            && let Some((sector, off, sseq)) = self.hint_pos(&hint)?
        {
            pos.sector = sector;
            pos.off = off;
            pos.seq = sseq;
            // A position found in this mount is a frame boundary: the walk
            // from it may use the sector marks.
            pos.trusted = (hint.extra >> 16) as u16 == self.epoch;
            let rel = hint.extra & 0xFFFF;
            if rel != 0 && pos.trusted {
                // A frame whose CRC checked out in this mount; its sector has
                // not been erased since, so its bytes are unchanged.
                if let Some(loc) = self.batch_at(sector, sseq, off)?
                    && rel < loc.len
                {
                    if let Some((ro, r)) = self.find_in_frame(&loc, rel, key, seq, out)? {
                        return Ok(Some((ro, self.hint_at(&loc, r))));
                    }
                    pos.off = off + loc.len;
                }
            }
        }
        // Records copied forward (see `open_keeping`) sit after later records
        // of their sensor: a search from the oldest sector prefers the frame
        // that holds `seq` itself over the first one with later records.
        let mut later: Option<(FrameLoc, u32)> = None;
        while let Some(loc) = self.next_frame(&mut pos)? {
            // Frames of other sensors cost their run headers (mostly read
            // with the window that holds the frame); a frame whose headers
            // name the records is verified before anything in it is used.
            // A compact frame of another sensor: known from its header read
            // with the id's low byte, or, when that byte matches, from the
            // rest of the id (3 bytes more).
            if let Some(low) = pos.compact_key {
                if low != (key.source, key.id as u8) {
                    continue;
                }
                let mut rest = [0u8; 3];
                self.frame_bytes(&loc, frame::COMPACT_PEEK as u32, &mut rest)?;
                let [a, b, c] = rest;
                if u32::from_le_bytes([low.1, a, b, c]) != key.id {
                    continue;
                }
            }
            let Some(rel) = self.peek_frame(&loc, key, seq)? else {
                continue;
            };
            if !self.frame_ok(&loc, pos.trusted)? {
                self.stats.bad_frames += 1;
                continue;
            }
            // The runs before `rel` (now verified) are not this sensor's.
            if let Some((ro, r)) = self.find_in_frame(&loc, rel, key, seq, out)? {
                if ro.first == seq || hint.is_some() {
                    return Ok(Some((ro, self.hint_at(&loc, r))));
                }
                if later.is_none() {
                    later = Some((loc, r));
                }
            }
        }
        if let Some((loc, r)) = later
            && let Some((ro, r)) = self.find_in_frame(&loc, r, key, seq, out)?
        {
            return Ok(Some((ro, self.hint_at(&loc, r))));
        }
        Ok(None)
    }

    /// The batch frame at offset `off` of live sector `sector` (numbered
    /// `sseq`), from its header alone: only for boundaries of frames verified
    /// in this mount.
    fn batch_at(
        &mut self,
        sector: u32,
        sseq: u64,
        off: u32,
    ) -> Result<Option<FrameLoc>, StorageError> {
        let abs = self.base(sector) + off;
        let mut hb = [0u8; FRAME_HDR];
        self.small_read(abs, &mut hb)?;
        let room = (Self::E as u32).saturating_sub(off) as usize;
        Ok(match frame::parse_flash_frame_header(hb, room, Self::W) {
            Header::Frame { tag, len } if frame::is_batch(tag) => Some(FrameLoc {
                sector,
                sector_seq: sseq,
                off,
                abs,
                tag,
                len: len as u32,
            }),
            _ => None,
        })
    }

    /// A run of `key` starting at `seq` remembered from a frame verified in
    /// this mount: its records, read without any search.
    fn ring_lookup(
        &mut self,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<(ReadOut, ReadHint)>, StorageError> {
        let e = Self::E as u32;
        // Newest first: the run asked for was most likely noted last.
        for j in 0..RUNS {
            let i = (self.ring_next as usize + RUNS - 1 - j) % RUNS;
            let Some(r) = self.ring.get(i).copied() else {
                break;
            };
            if r.abs == 0
                || r.id != key.id
                || r.source != key.source
                || seq.wrapping_sub(r.first) >= u32::from(r.count)
            {
                continue;
            }
            let (sector, off) = (r.abs / e, r.abs % e);
            let Some(sseq) = self.live_seq(sector)? else {
                continue;
            };
            let at = FrameLoc {
                sector,
                sector_seq: sseq,
                off,
                abs: r.abs,
                tag: 0,
                len: 0,
            };
            let hint = self.hint_at(&at, u32::from(r.rel));
            if r.kind == 2 {
                // EVT: the records alone (the run is known exactly).
                let size = 8usize;
                let skip = seq.wrapping_sub(r.first) as usize;
                let count = (r.count as usize - skip).min(out.len() / size);
                let Some(dst) = out.get_mut(..count * size).filter(|d| !d.is_empty()) else {
                    return Err(StorageError::BufferTooSmall);
                };
                self.small_read(r.abs + u32::from(r.rec) + (skip * size) as u32, dst)?;
                let run = RunInfo {
                    key,
                    kind: super::RecordKind::Evt,
                    first_seq: r.first,
                    count: r.count,
                    meta: super::RunMeta::default(),
                };
                return Ok(Some((
                    ReadOut {
                        run,
                        first: seq,
                        count,
                    },
                    hint,
                )));
            }
            // TSD: the run header holds its timing.
            let Some(loc) = self.batch_at(sector, sseq, off)? else {
                continue;
            };
            let rel = u32::from(r.rel);
            if let Some((ro, at)) = self.find_in_frame(&loc, rel, key, seq, out)?
                && ro.first == seq
                && at == rel
            {
                return Ok(Some((ro, hint)));
            }
        }
        Ok(None)
    }

    /// Keeps a read cursor: the next read of `key` at `next` starts at `loc`.
    fn remember(&mut self, key: SensorKey, next: u32, loc: &FrameLoc) {
        let slot = match self.cursors.iter().position(|c| !c.used) {
            Some(i) => i,
            None => {
                self.victim = ((self.victim as usize + 1) % CURSORS) as u8;
                self.victim as usize
            }
        };
        self.cursors[slot] = Cursor {
            used: true,
            key,
            next,
            sector: loc.sector,
            sector_seq: loc.sector_seq,
            off: loc.off,
        };
    }

    /// Walk position at the oldest sector.
    fn start_pos(&self) -> Pos {
        Pos {
            sector: self.oldest,
            off: 0,
            seq: 0,
            single: false,
            done: self.head.is_none(),
            left: self.n,
            lazy: false,
            damaged: false,
            trusted: true,
            compact_key: None,
            wide: false,
        }
    }

    fn advance(&self, pos: &mut Pos) {
        pos.left = pos.left.saturating_sub(1);
        if pos.single || Some(pos.sector) == self.head || pos.left == 0 {
            pos.done = true;
        } else {
            pos.sector = self.next_sector(pos.sector);
            pos.off = 0;
            pos.damaged = false;
        }
    }

    /// First `W`-aligned offset in `[from, limit)` of sector `s` whose word is
    /// not erased.
    fn next_programmed(
        &mut self,
        s: u32,
        from: u32,
        limit: u32,
    ) -> Result<Option<u32>, StorageError> {
        let base = self.base(s);
        let mut p = from;
        while p < limit {
            let k = ((limit - p) as usize).min(BUF);
            read_at(&mut self.flash, base + p, &mut self.buf.0[..k])?;
            self.cached = None;
            if let Some(i) = self.buf.0[..k].iter().position(|&b| b != 0xFF) {
                let o = p + i as u32;
                return Ok(Some(o - o % Self::W as u32));
            }
            p += k as u32;
        }
        Ok(None)
    }

    /// Next frame with a valid CRC, oldest first.
    fn next_frame(&mut self, pos: &mut Pos) -> Result<Option<FrameLoc>, StorageError> {
        let e = Self::E as u32;
        loop {
            if pos.done {
                return Ok(None);
            }
            let limit = if Some(pos.sector) == self.head && !self.pending_header {
                self.write_off
            } else if Some(pos.sector) == self.head {
                0
            } else {
                e
            };
            if pos.off == 0 {
                pos.trusted = true;
                match self.live_seq(pos.sector)? {
                    Some(seq) if limit > 0 => {
                        pos.seq = seq;
                        pos.off = self.h;
                    }
                    _ => {
                        self.advance(pos);
                        continue;
                    }
                }
            }
            if pos.off + FRAME_HDR as u32 > limit {
                self.advance(pos);
                continue;
            }
            let abs = self.base(pos.sector) + pos.off;
            let mut hb = [0u8; FRAME_HDR];
            pos.compact_key = None;
            if pos.lazy {
                // A search reads frame headers alone (the window is loaded
                // only to verify frames), with the next byte: the low byte of
                // a compact frame's id, so that the frames of other sensors
                // mostly cost these 5 bytes in one read.
                let mut b5 = [0u8; frame::COMPACT_PEEK];
                let room = pos.off + b5.len() as u32 <= limit;
                let (head, id) = b5.split_at_mut(FRAME_HDR);
                if room && pos.wide {
                    self.small_read(abs, &mut b5)?;
                } else {
                    self.small_read(abs, head)?;
                    if room && frame::is_compact(head[0]) {
                        self.small_read(abs + FRAME_HDR as u32, id)?;
                    }
                }
                let [t, c0, c1, k, _] = b5;
                hb = [t, c0, c1, k];
                pos.wide = frame::is_compact(t);
                if room {
                    pos.compact_key = frame::compact_key_low(&b5);
                }
            } else {
                self.win_read(abs, &mut hb)?;
            }
            match frame::parse_flash_frame_header(hb, (limit - pos.off) as usize, Self::W) {
                Header::Erased if pos.damaged => {
                    // Maybe the padding of the damaged frame: the next frame
                    // starts at the next programmed word, if any.
                    // From the next word on: the rest of this word may hold bits
                    // (W > 4), and the walk must move forward.
                    let from = pos.off + Self::W as u32;
                    match self.next_programmed(pos.sector, from, limit)? {
                        Some(o) => pos.off = o,
                        None => self.advance(pos),
                    }
                }
                Header::Erased => {
                    if pos.trusted {
                        self.note_sector_end(pos.sector, pos.seq, pos.off);
                    }
                    self.advance(pos);
                }
                Header::Garbage => {
                    pos.damaged = true;
                    pos.off += Self::W as u32;
                }
                Header::Frame { tag, len } => {
                    let loc = FrameLoc {
                        sector: pos.sector,
                        sector_seq: pos.seq,
                        off: pos.off,
                        abs,
                        tag,
                        len: len as u32,
                    };
                    pos.off += len as u32;
                    if pos.lazy {
                        if !frame::is_batch(tag) {
                            // Not wanted: skipped by its (checked) header alone.
                            continue;
                        }
                        // The caller checks the CRC if it wants the frame.
                        return Ok(Some(loc));
                    }
                    if self.frame_ok(&loc, pos.trusted)? {
                        return Ok(Some(loc));
                    }
                    self.stats.bad_frames += 1;
                }
            }
        }
    }
}

impl<F: NorFlash, const BUF: usize, const VERIFY: usize, const RUNS: usize> Storage
    for NorFlashStorage<F, BUF, VERIFY, RUNS>
{
    fn mount(&mut self) -> Result<(), StorageError> {
        self.mounted = false;
        self.cached = None;
        self.verified = [0; VERIFY];
        self.vbits = 0;
        self.vmarks = [Vmark::default(); VMARKS];
        self.ring = [RunRef::default(); RUNS];
        self.cursors = [Cursor::default(); CURSORS];
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.pending_header = false;
        self.since_snap = u8::MAX;
        self.mhdr = 0;
        let mut newest: Option<(u32, u64, u64)> = None;
        let mut read = 0u32;
        // Bit `s`: sector `s` has a header; `step` bit `s`: numbered one
        // above the sector before it (sector 0: above the last one).
        let (mut valid, mut step) = (0u64, 0u64);
        let (mut first, mut prev) = (None, None);
        for s in 0..self.n {
            let hdr = self.raw_header(s)?;
            read += round_up(SECTOR_HDR, F::READ_SIZE) as u32;
            let q = hdr.map(|(q, _)| q);
            if s < 64
                && let Some(q) = q
            {
                valid |= 1 << s;
                if prev.is_some_and(|p: u64| p.checked_add(1) == Some(q)) {
                    step |= 1 << s;
                }
            }
            if s == 0 {
                first = q;
            }
            prev = q;
            if let Some((q, f)) = hdr
                && newest.is_none_or(|(_, b, _)| q > b)
            {
                newest = Some((s, q, f));
            }
        }
        if let (Some(q0), Some(last)) = (first, prev)
            && last.checked_add(1) == Some(q0)
        {
            step |= 1;
        }
        match newest {
            None => {
                self.head = None;
                self.head_seq = 0;
                self.floor = 0;
                self.oldest = 0;
                self.write_off = 0;
            }
            Some((s, q, f)) => {
                self.head = Some(s);
                self.head_seq = q;
                self.floor = f;
                self.mhdr = Self::ring_headers(self.n, s, valid, step);
                let (o, r) = self.scan_head(s)?;
                read += r;
                self.write_off = o;
                self.find_oldest()?;
            }
        }
        // Never program the head again: a program cut before any bit changed
        // leaves words that read erased but must not be programmed twice (ECC
        // flash), and nothing on flash tells such words from unused ones. The
        // next frame opens a fresh sector (one erase, and the head's unused
        // tail, per mount that is followed by a write).
        self.sealed = true;
        self.vfloor = self.floor;
        self.stats = StorageStats {
            mount_bytes_read: read,
            ..StorageStats::default()
        };
        self.mounted = true;
        Ok(())
    }

    fn is_mounted(&self) -> bool {
        self.mounted
    }
    fn is_persistent(&self) -> bool {
        true
    }

    fn max_batch_bytes(&self) -> usize {
        self.max_frame() - FRAME_HDR - CRC_LEN
    }

    fn append<B: Batch + ?Sized, V: FnMut(RunInfo)>(
        &mut self,
        batch: &B,
        mut on_evict: V,
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        let records = validate_batch(batch)?;
        let body = encoded_len(batch);
        if body > self.max_batch_bytes() {
            return Err(StorageError::TooLarge);
        }
        let len = Self::frame_len(batch);
        let n = batch.runs();
        let whole = Sub {
            b: batch,
            i0: 0,
            k0: 0,
            i1: n,
            k1: 0,
        };
        // Fill the newest sector: if the batch does not fit in what is left of
        // it, the records that fit go there as a first frame and the rest opens
        // the next sector (two program operations), so sectors hold no unused
        // tail and erases track bytes programmed.
        let left = match self.head {
            // With two sectors, opening the next one evicts the head: the
            // batch goes whole to the next sector instead of evicting its own
            // first part.
            Some(_)
                if self.fill
                    && self.n > 2
                    && !batch.whole()
                    && !self.sealed
                    && self.write_off as usize + len > Self::E - Self::TAIL =>
            {
                let left = (Self::E - Self::TAIL).saturating_sub(self.write_off as usize);
                left - left % Self::W
            }
            _ => 0,
        };
        match split_to_fill(batch, left) {
            Some((i1, k1)) => {
                let a = Sub {
                    b: batch,
                    i0: 0,
                    k0: 0,
                    i1,
                    k1,
                };
                let la = Self::frame_len(&a);
                self.write_frame(Body::Batch(&a), la, &mut on_evict)?;
                let b = Sub {
                    b: batch,
                    i0: i1,
                    k0: k1,
                    i1: n,
                    k1: 0,
                };
                let lb = Self::frame_len(&b);
                self.write_frame(Body::Batch(&b), lb, &mut on_evict)?;
            }
            None => self.write_frame(Body::Batch(&whole), len, &mut on_evict)?,
        }
        self.stats.batches += 1;
        self.stats.records += records;
        Ok(())
    }

    fn read(
        &mut self,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        self.check_mounted()?;
        if out.len() < 4 {
            return Err(StorageError::BufferTooSmall);
        }
        let mut pos = self.start_pos();
        for i in 0..CURSORS {
            let c = self.cursors[i];
            if c.used && c.key == key && c.next == seq {
                if self.sector_seq(c.sector)? == Some(c.sector_seq) {
                    pos.sector = c.sector;
                    pos.off = c.off;
                    pos.seq = c.sector_seq;
                }
                self.cursors[i].used = false;
                break;
            }
        }
        let mut last: Option<FrameLoc> = None;
        // As in `search`: the frame holding `seq` itself wins over the first
        // frame with later records (records copied forward sit after those).
        let mut later: Option<(FrameLoc, u32)> = None;
        while let Some(loc) = self.next_frame(&mut pos)? {
            last = Some(loc);
            if !frame::is_batch(loc.tag) {
                continue;
            }
            if let Some((ro, r)) = self.find_in_frame(&loc, FRAME_HDR as u32, key, seq, out)? {
                if ro.first != seq {
                    later = later.or(Some((loc, r)));
                    continue;
                }
                self.remember(key, ro.first.wrapping_add(ro.count as u32), &loc);
                return Ok(Some(ro));
            }
        }
        if let Some((loc, r)) = later
            && let Some((ro, _)) = self.find_in_frame(&loc, r, key, seq, out)?
        {
            self.remember(key, ro.first.wrapping_add(ro.count as u32), &loc);
            return Ok(Some(ro));
        }
        // Nothing more: the next read of this sensor resumes at the last frame.
        if let Some(loc) = last {
            self.remember(key, seq, &loc);
        }
        Ok(None)
    }

    /// First the run references of the frames verified last (a run of `key`
    /// holding `seq`: its records are read directly, an EVT record with no
    /// header read). Then the search starts at the hint when its sector has
    /// not been erased since (same sector sequence number): at the run header
    /// it names in a frame verified during this mount (no CRC pass, no walk
    /// over the runs before it), or at the frame boundary / write position it
    /// names. Without a valid hint, at the oldest sector. The plain cursors
    /// are not used.
    fn read_hinted(
        &mut self,
        key: SensorKey,
        seq: u32,
        hint: &mut ReadHint,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        self.check_mounted()?;
        if out.len() < 4 {
            return Err(StorageError::BufferTooSmall);
        }
        if *hint != ReadHint::NONE
            && let Some((ro, h)) = self.search(key, seq, Some(*hint), out)?
            && ro.first == seq
        {
            *hint = h;
            return Ok(Some(ro));
        }
        // No hint, or records missing where it says (the hint could be past
        // `seq`): search the whole log, so a hint never changes the answer.
        Ok(match self.search(key, seq, None, out)? {
            Some((ro, h)) => {
                *hint = h;
                Some(ro)
            }
            None => {
                *hint = ReadHint::NONE;
                None
            }
        })
    }

    fn tail_hint(&self) -> ReadHint {
        let Some(hd) = self.head.filter(|_| self.mounted) else {
            return ReadHint::NONE;
        };
        if !self.sealed && self.write_off as usize + FRAME_HDR <= Self::E {
            ReadHint {
                pos: self.base(hd) + self.write_off,
                check: self.head_seq as u32,
                extra: (self.epoch as u32) << 16,
            }
        } else {
            // The next append opens the next sector of the ring.
            ReadHint {
                pos: self.base(self.next_sector(hd)) + self.h,
                check: self.head_seq.wrapping_add(1) as u32,
                extra: (self.epoch as u32) << 16,
            }
        }
    }

    fn ack<V: FnMut(RunInfo)>(
        &mut self,
        key: SensorKey,
        upto: u32,
        on_evict: V,
    ) -> Result<(), StorageError> {
        self.ack_keep(key, upto, &mut KeepNone(on_evict))
    }

    /// The mark goes to the newest sector (its tail is kept free of batch
    /// frames for marks); when that is full, the next sector is opened, and
    /// if that evicts the oldest sector, its owed records are copied forward
    /// first (see the module docs, "Acknowledgements never destroy unread records").
    fn ack_keep<K: Keep>(
        &mut self,
        key: SensorKey,
        upto: u32,
        keep: &mut K,
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        let len = Self::ACK_LEN;
        self.make_room(len, keep)?;
        self.write_frame::<[super::Run<'_>]>(
            Body::Ack(frame::ack_body(key, upto)),
            len,
            &mut |r| keep.evicted(r),
        )?;
        self.stats.acks += 1;
        Ok(())
    }

    fn reserve<V: FnMut(RunInfo)>(
        &mut self,
        entries: &[(SensorKey, u32)],
        on_evict: V,
    ) -> Result<(), StorageError> {
        self.reserve_keep(entries, &mut KeepNone(on_evict))
    }

    /// As [`NorFlashStorage::ack_keep`]. A frame of all the entries that does
    /// not fit in what is left of a sector opened with copies is split: as
    /// many entries as fit, then the rest (each entry stands on its own).
    fn reserve_keep<K: Keep>(
        &mut self,
        entries: &[(SensorKey, u32)],
        keep: &mut K,
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        let mut rest = entries
            .get(..entries.len().min(super::MAX_RESERVE_ENTRIES))
            .unwrap_or(&[]);
        if rest.is_empty() {
            return Ok(());
        }
        while !rest.is_empty() {
            self.make_room(Self::reserve_len(rest.len()), keep)?;
            let room = (Self::E as u32).saturating_sub(self.write_off) as usize;
            let mut k = rest.len();
            while k > 1 && Self::reserve_len(k) > room {
                k -= 1;
            }
            let Some((now, later)) = rest.split_at_checked(k) else {
                return Ok(());
            };
            let mut body = [0xFFu8; super::MAX_RESERVE_ENTRIES * frame::RESERVE_ENTRY];
            let n = frame::reserve_body(now, &mut body);
            let Some(b) = body.get(..n).filter(|b| !b.is_empty()) else {
                return Ok(());
            };
            let len = round_up(FRAME_HDR + n + CRC_LEN, Self::W);
            self.write_frame::<[super::Run<'_>]>(Body::Reserve(b), len, &mut |r| keep.evicted(r))?;
            rest = later;
        }
        self.stats.reserves += 1;
        Ok(())
    }

    /// Due when the sector that held the last snapshot could fall below the
    /// floor within a quarter of the ring, so that several snapshots are tried
    /// (each may be cut) before the last complete one stops being live.
    fn snapshot_due(&self) -> bool {
        let every = (self.n.saturating_sub(1) / 4).clamp(1, u8::MAX as u32);
        self.mounted && self.head.is_some() && u32::from(self.since_snap) >= every
    }

    fn snapshot_started(&mut self) {
        if self.head.is_some() {
            self.since_snap = 0;
        }
    }

    /// Moves the floor past the oldest sector: an eviction frame in the head
    /// records it (or, when the head has no room or must not be programmed
    /// again, the header of a new head does). The evicted sector is erased
    /// when the ring comes round to it.
    fn evict_oldest<V: FnMut(RunInfo)>(&mut self, mut on_evict: V) -> Result<bool, StorageError> {
        self.check_mounted()?;
        let Some(hd) = self.head else {
            return Ok(false);
        };
        if self.oldest == hd {
            return Ok(false);
        }
        let Some(q) = self.sector_seq(self.oldest)? else {
            return Ok(false);
        };
        let len = round_up(FRAME_HDR + EVICT_BODY + CRC_LEN, Self::W);
        if self.sealed || self.write_off as usize + len > Self::E {
            self.open_next(q + 1, &mut on_evict)?;
            let Some(hd) = self.head else {
                return Err(StorageError::NotMounted);
            };
            let mut hb = [0xFFu8; 64];
            let hdr = frame::sector_header(self.head_seq, self.floor);
            for (d, s) in hb.iter_mut().zip(hdr) {
                *d = s;
            }
            let Some(bytes) = hb.get(..self.h as usize) else {
                return Err(StorageError::Geometry);
            };
            if let Err(e) = self.flash.write(self.base(hd), bytes) {
                self.mounted = false;
                return Err(ferr(e));
            }
            self.pending_header = false;
            return Ok(true);
        }
        let victim = self.oldest;
        self.report_sector(victim, &mut on_evict)?;
        self.write_frame::<[super::Run<'_>]>(
            Body::Evict((q + 1).to_le_bytes()),
            len,
            &mut on_evict,
        )?;
        self.floor = q + 1;
        self.forget_verified(victim);
        self.find_oldest()?;
        Ok(true)
    }

    fn recover<V: FnMut(LogEntry)>(&mut self, f: V) -> Result<(), StorageError> {
        self.check_mounted()?;
        self.recovering = true;
        self.parsed = 0;
        let r = self.recover_walk(f);
        self.recovering = false;
        // The ring held parsed runs, not run references.
        self.ring = [RunRef::default(); RUNS];
        self.parsed = 0;
        r
    }

    fn stats(&self) -> StorageStats {
        let mut s = self.stats;
        s.sectors = self.n;
        s.sector_size = Self::E as u32;
        s.head_seq = if self.head.is_some() {
            self.head_seq
        } else {
            0
        };
        s.head_free = match self.head {
            Some(_) if !self.sealed => Self::E as u32 - self.write_off,
            _ => 0,
        };
        s
    }
}

/// The mount state `storage::inspect` walks the flash with (read-only).
#[derive(Clone, Copy, Debug)]
pub(super) struct MountView {
    /// Number of sectors.
    pub n: u32,
    /// Sector header length (padded to `WRITE_SIZE`).
    pub h: u32,
    /// Newest sector, if any.
    pub head: Option<u32>,
    /// Its sequence number.
    pub head_seq: u64,
    /// Sequence number of the oldest live sector.
    pub floor: u64,
    /// Where the frames of the newest sector end (as found by mount).
    pub write_off: u32,
    /// Whether `mount` succeeded.
    pub mounted: bool,
}

impl<F: NorFlash, const BUF: usize, const VERIFY: usize, const RUNS: usize>
    NorFlashStorage<F, BUF, VERIFY, RUNS>
{
    /// The walk of [`Storage::recover`]: every frame read once (verified
    /// through the window, its runs parsed from it).
    fn recover_walk<V: FnMut(LogEntry)>(&mut self, mut f: V) -> Result<(), StorageError> {
        let mut pos = self.start_pos();
        while let Some(loc) = self.next_frame(&mut pos)? {
            if loc.tag == TAG_ACK {
                // A frame too short for a mark would have its "mark" read from its CRC.
                if (loc.len as usize) < FRAME_HDR + ACK_BODY + CRC_LEN {
                    self.stats.bad_frames += 1;
                    continue;
                }
                let mut b = [0u8; ACK_BODY];
                self.frame_bytes(&loc, FRAME_HDR as u32, &mut b)?;
                match frame::parse_ack_body(&b) {
                    Some((key, upto)) => f(LogEntry::Ack { key, upto }),
                    None => self.stats.bad_frames += 1,
                }
                continue;
            }
            if loc.tag == TAG_RESERVE {
                let mut rel = FRAME_HDR as u32;
                let mut e = [0u8; frame::RESERVE_ENTRY];
                while rel as usize + frame::RESERVE_ENTRY + CRC_LEN <= loc.len as usize {
                    self.frame_bytes(&loc, rel, &mut e)?;
                    let Some((key, upto)) = frame::parse_reserve_entry(&e) else {
                        break;
                    };
                    f(LogEntry::Reserve { key, upto });
                    rel += frame::RESERVE_ENTRY as u32;
                }
                continue;
            }
            if !frame::is_batch(loc.tag) {
                continue;
            }
            if self.parsed == loc.abs && self.parsed_n != u8::MAX {
                // Parsed while its CRC streamed past: no header read again.
                let mut i = 0usize;
                while i < self.parsed_n as usize {
                    let Some((info, n)) = parsed_run(&self.ring, i) else {
                        break;
                    };
                    f(LogEntry::Run(info));
                    i += n;
                }
                continue;
            }
            let mut rel = FRAME_HDR as u32;
            while let Some((info, _, next)) = self.run_at(&loc, rel)? {
                f(LogEntry::Run(info));
                rel = next;
            }
        }
        Ok(())
    }

    /// What mount found (for `storage::inspect`; additive, read-only).
    pub(super) fn mount_view(&self) -> MountView {
        MountView {
            n: self.n,
            h: self.h,
            head: self.head,
            head_seq: self.head_seq,
            floor: self.floor,
            write_off: if self.pending_header {
                self.h
            } else {
                self.write_off
            },
            mounted: self.mounted,
        }
    }
}

#[cfg(test)]
mod stream_parse_tests {
    use super::*;
    use crate::storage::RunMeta;

    /// The run headers of a frame larger than `BUF` are parsed while its CRC
    /// streams past, whatever the frame's tag: plain and packed frames (the
    /// copy-forward writes packed ones) give the runs `run_hdr` would.
    #[test]
    fn streamed_run_headers_of_plain_and_packed_frames() {
        let runs = [
            RunInfo {
                key: SensorKey { source: 1, id: 7 },
                kind: RecordKind::Evt,
                first_seq: 5,
                count: 3,
                meta: RunMeta::default(),
            },
            RunInfo {
                key: SensorKey {
                    source: 2,
                    id: 300_000,
                },
                kind: RecordKind::Tsd,
                first_seq: 70_000,
                count: 2,
                meta: RunMeta {
                    base_time: 1_700_000_000_000,
                    interval: 1000,
                },
            },
            RunInfo {
                key: SensorKey { source: 0, id: 9 },
                kind: RecordKind::Evt,
                first_seq: 1,
                count: 40,
                meta: RunMeta::default(),
            },
            // Short runs: the next run header starts within the bytes
            // collected for this one.
            RunInfo {
                key: SensorKey { source: 3, id: 11 },
                kind: RecordKind::Evt,
                first_seq: 9,
                count: 1,
                meta: RunMeta::default(),
            },
            RunInfo {
                key: SensorKey { source: 3, id: 12 },
                kind: RecordKind::Evt,
                first_seq: 10,
                count: 1,
                meta: RunMeta::default(),
            },
        ];
        for tag in [TAG_BATCH, TAG_PACKED] {
            let mut f = [0u8; 1024];
            let mut n = FRAME_HDR;
            for r in &runs {
                let mut hb = [0u8; MAX_RUN_HDR];
                let hl = if tag == TAG_PACKED {
                    frame::packed_run_header(r, &mut hb)
                } else {
                    let mut plain = [0u8; RUN_HDR + TSD_EXTRA];
                    let hl = frame::run_header(r, &mut plain);
                    hb[..hl].copy_from_slice(&plain[..hl]);
                    hl
                };
                f[n..n + hl].copy_from_slice(&hb[..hl]);
                n += hl;
                for b in &mut f[n..n + r.count as usize * r.kind.record_size()] {
                    *b = 0x5A;
                }
                n += r.count as usize * r.kind.record_size();
            }
            let len = n + CRC_LEN;
            f[..FRAME_HDR].copy_from_slice(&frame::frame_header(tag, len));
            for chunk in [1usize, 7, 64, len] {
                let mut ring = [RunRef::default(); 32];
                let mut sp = StreamParse::new(n, true);
                let mut at = 0;
                while at < n {
                    let k = chunk.min(n - at);
                    sp.feed(&mut ring, at, &f[at..at + k]);
                    at += k;
                }
                assert!(sp.ok && sp.done, "tag {tag:#x}, chunk {chunk}");
                let mut i = 0;
                for r in &runs {
                    let (got, used) = parsed_run(&ring, i).unwrap();
                    assert_eq!(got, *r, "tag {tag:#x}, chunk {chunk}");
                    i += used;
                }
                assert_eq!(i, sp.slots);
            }
        }
    }
}
