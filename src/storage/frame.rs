//! On-flash encoding of sector headers, batch frames and acknowledgement frames.
//!
//! Pure byte-level helpers shared by [`super::NorFlashStorage`]; see the module
//! documentation of [`super`] for the layout tables. Nothing here touches flash.

use super::{RecordKind, RunInfo, RunMeta, SensorKey};

/// Magic at the start of every sector header ("SPL" + format version 2).
pub(crate) const SECTOR_MAGIC: [u8; 4] = *b"SPL2";
/// Bytes of the sector header before padding to `WRITE_SIZE`.
pub(crate) const SECTOR_HDR: usize = 16;
/// Tag byte of a batch frame.
pub(crate) const TAG_BATCH: u8 = 0xB5;
/// Tag byte of an acknowledgement frame.
pub(crate) const TAG_ACK: u8 = 0xAC;
/// Tag byte of an eviction frame (flash only): sectors numbered below the
/// floor it names are evicted.
pub(crate) const TAG_EVICT: u8 = 0xE7;
/// Tag byte of a reservation frame: sequence numbers each named sensor may
/// have handed out lie below the `upto` of its entry.
pub(crate) const TAG_RESERVE: u8 = 0xA5;
/// Bytes of one reservation entry: source, marker `0x52`, 2 bytes `0xFF`, id
/// (u32), `upto` (u32).
pub(crate) const RESERVE_ENTRY: usize = 12;
/// Second byte of every reservation entry (padding reads `0xFF`).
const RESERVE_MARK: u8 = 0x52;
/// Eviction frame body: the new floor (u64).
pub(crate) const EVICT_BODY: usize = 8;
/// Tag byte of a compact batch frame holding one TSD run (flash only).
pub(crate) const TAG_RUN_TSD: u8 = 0xB6;
/// Tag byte of a compact batch frame holding one EVT run (flash only).
pub(crate) const TAG_RUN_EVT: u8 = 0xB7;
/// Largest record count of a compact frame (14 bits of its count field).
pub(crate) const COMPACT_MAX_COUNT: u16 = 0x3FFF;
/// Largest `SensorKey::source` a compact frame carries (the count field's top 2 bits).
pub(crate) const COMPACT_MAX_SOURCE: u8 = 3;
/// Frame header: tag, length (u16 LE), header check byte.
pub(crate) const FRAME_HDR: usize = 4;
/// Trailing CRC-32C of a frame.
pub(crate) const CRC_LEN: usize = 4;
/// Run header common part: kind, source, count (u16), id (u32), first sequence (u32).
pub(crate) const RUN_HDR: usize = 12;
/// Extra run header bytes for TSD runs: base time (u64), interval (u32).
pub(crate) const TSD_EXTRA: usize = 12;
/// Acknowledgement frame body: source, 3 reserved bytes, id (u32), `upto` (u32).
pub(crate) const ACK_BODY: usize = 12;
/// Kind byte of a TSD run.
pub(crate) const KIND_TSD: u8 = 0x01;
/// Kind byte of an EVT run.
pub(crate) const KIND_EVT: u8 = 0x02;
/// Largest frame length the u16 length field can carry.
pub(crate) const MAX_FRAME: usize = 0xFFFF;
/// Frame tag of a packed batch (flash only): runs with variable-length headers.
pub(crate) const TAG_PACKED: u8 = 0xB8;
/// Longest run header of any batch frame: a packed TSD header with every field
/// at its largest (1 + 1 + 3 + 5 + 5 + 10 + 5 bytes).
pub(crate) const MAX_RUN_HDR: usize = 30;
/// Largest record count a packed run header keeps in its first byte.
const PACKED_INLINE_COUNT: u16 = 63;

// The CRC-32C (Castagnoli) of frames and sector headers and the CRC-8 (SMBus) of frame
// headers: the on-media format, whatever the implementation. The implementation is chosen
// at compile time:
// * `std` (hosts): the `crc` crate, CRC-32C slice-by-16 (16 KiB of tables, several times
//   faster: `FileStorage` checks every byte it writes, evicts and mounts);
// * `no_std`, feature `crc-table256`: the `crc` crate's one 256-entry table per CRC (1 KiB
//   + 256 B of .rodata), the fastest on a microcontroller;
// * `no_std`, feature `crc-bitwise`: the `crc` crate without a table (no .rodata, about 8
//   shifts per byte);
// * `no_std` otherwise (the default): 16-entry tables, a nibble at a time ([`nibble`]:
//   64 + 16 B of .rodata, two lookups per byte), where flash is the budget.
#[cfg(any(feature = "std", feature = "crc-table256", feature = "crc-bitwise"))]
use crc::{CRC_8_SMBUS, CRC_32_ISCSI, Crc};

#[cfg(feature = "std")]
type Crc32Table = crc::Table<16>;
#[cfg(all(not(feature = "std"), feature = "crc-table256"))]
type Crc32Table = crc::Table<1>;
#[cfg(all(
    not(feature = "std"),
    not(feature = "crc-table256"),
    feature = "crc-bitwise"
))]
type Crc32Table = crc::NoTable;
#[cfg(feature = "std")]
type Crc8Table = crc::Table<1>;
#[cfg(all(not(feature = "std"), feature = "crc-table256"))]
type Crc8Table = crc::Table<1>;
#[cfg(all(
    not(feature = "std"),
    not(feature = "crc-table256"),
    feature = "crc-bitwise"
))]
type Crc8Table = crc::NoTable;

/// CRC-32C (Castagnoli), the frame and sector-header checksum.
#[cfg(any(feature = "std", feature = "crc-table256", feature = "crc-bitwise"))]
pub(crate) static CRC32: Crc<u32, Crc32Table> = Crc::<u32, Crc32Table>::new(&CRC_32_ISCSI);
/// CRC-8 (SMBus), the frame-header check byte.
#[cfg(any(feature = "std", feature = "crc-table256", feature = "crc-bitwise"))]
static CRC8: Crc<u8, Crc8Table> = Crc::<u8, Crc8Table>::new(&CRC_8_SMBUS);

/// CRC-32C (Castagnoli), the frame and sector-header checksum.
#[cfg(not(any(feature = "std", feature = "crc-table256", feature = "crc-bitwise")))]
pub(crate) static CRC32: nibble::Crc32c = nibble::Crc32c;
/// CRC-8 (SMBus), the frame-header check byte.
#[cfg(not(any(feature = "std", feature = "crc-table256", feature = "crc-bitwise")))]
static CRC8: nibble::Crc8Smbus = nibble::Crc8Smbus;

/// CRC-32C and CRC-8 (SMBus) with 16-entry tables, a nibble at a time: the same values as
/// the `crc` crate's `CRC_32_ISCSI` / `CRC_8_SMBUS` (checked by the tests against it), in
/// 80 bytes of tables instead of 1.25 KiB. The same method names as the `crc` crate's
/// `Crc` and `Digest`, so the call sites do not depend on the implementation.
#[cfg(any(
    test,
    not(any(feature = "std", feature = "crc-table256", feature = "crc-bitwise"))
))]
pub(crate) mod nibble {
    /// Reflected CRC-32C polynomial.
    const POLY32: u32 = 0x82F6_3B78;
    /// CRC-8 SMBus polynomial (not reflected).
    const POLY8: u8 = 0x07;

    const fn table32() -> [u32; 16] {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 4 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ POLY32
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }

    const fn table8() -> [u8; 16] {
        let mut t = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = (i as u8) << 4;
            let mut k = 0;
            while k < 4 {
                c = if c & 0x80 != 0 {
                    (c << 1) ^ POLY8
                } else {
                    c << 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }

    static T32: [u32; 16] = table32();
    static T8: [u8; 16] = table8();

    #[inline]
    fn update32(mut c: u32, bytes: &[u8]) -> u32 {
        for &b in bytes {
            c ^= u32::from(b);
            c = (c >> 4) ^ T32[(c & 15) as usize];
            c = (c >> 4) ^ T32[(c & 15) as usize];
        }
        c
    }

    /// CRC-32C (init and final XOR `0xFFFF_FFFF`, reflected).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Crc32c;

    impl Crc32c {
        /// The CRC of `bytes`.
        pub(crate) fn checksum(&self, bytes: &[u8]) -> u32 {
            !update32(!0, bytes)
        }
        /// A running CRC.
        pub(crate) fn digest(&self) -> Digest32 {
            Digest32(!0)
        }
    }

    /// A running CRC-32C ([`Crc32c::digest`]).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Digest32(u32);

    impl Digest32 {
        /// Adds `bytes`.
        pub(crate) fn update(&mut self, bytes: &[u8]) {
            self.0 = update32(self.0, bytes);
        }
        /// The CRC of everything added.
        pub(crate) fn finalize(self) -> u32 {
            !self.0
        }
    }

    /// CRC-8 SMBus (init 0, not reflected, no final XOR).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Crc8Smbus;

    impl Crc8Smbus {
        /// The CRC of `bytes`.
        pub(crate) fn checksum(&self, bytes: &[u8]) -> u8 {
            let mut c = 0u8;
            for &b in bytes {
                c ^= b;
                c = (c << 4) ^ T8[usize::from(c >> 4)];
                c = (c << 4) ^ T8[usize::from(c >> 4)];
            }
            c
        }
    }
}

/// Rounds `n` up to a multiple of `w` (`w >= 1`).
pub(crate) const fn round_up(n: usize, w: usize) -> usize {
    n.div_ceil(w) * w
}

/// Run header length for a kind.
pub(crate) const fn run_hdr_len(kind: RecordKind) -> usize {
    match kind {
        RecordKind::Tsd => RUN_HDR + TSD_EXTRA,
        RecordKind::Evt => RUN_HDR,
    }
}

/// Largest sector sequence number (48 bits on flash; one per sector opened).
pub(crate) const MAX_SECTOR_SEQ: u64 = (1 << 47) - 1;

/// Encodes a sector header (unpadded): sequence number `seq` (at most
/// [`MAX_SECTOR_SEQ`]) and the oldest live sector's sequence number `floor`
/// (`seq - 65535 <= floor <= seq`).
pub(crate) fn sector_header(seq: u64, floor: u64) -> [u8; SECTOR_HDR] {
    let mut h = [0u8; SECTOR_HDR];
    h[..4].copy_from_slice(&SECTOR_MAGIC);
    h[4..10].copy_from_slice(&seq.to_le_bytes()[..6]);
    let back = u16::try_from(seq.saturating_sub(floor)).unwrap_or(u16::MAX);
    h[10..12].copy_from_slice(&back.to_le_bytes());
    let c = CRC32.checksum(&h[..12]);
    h[12..16].copy_from_slice(&c.to_le_bytes());
    h
}

/// Decodes a sector header: `(seq, floor)`; `None` if the magic or CRC does
/// not match.
pub(crate) fn parse_sector_header(h: &[u8]) -> Option<(u64, u64)> {
    if h.len() < SECTOR_HDR || h[..4] != SECTOR_MAGIC {
        return None;
    }
    let c = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if CRC32.checksum(&h[..12]) != c {
        return None;
    }
    let seq = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], 0, 0]);
    let back = u16::from_le_bytes([h[10], h[11]]) as u64;
    // One per sector opened: a number this large is damage, and accepting it would
    // make the next sector's number wrap below it (the newest sector would look oldest).
    let floor = seq.checked_sub(back)?;
    (seq <= MAX_SECTOR_SEQ).then_some((seq, floor))
}

/// The frame-header check byte of a header's first three bytes.
pub(crate) fn header_check(b: &[u8]) -> u8 {
    CRC8.checksum(b)
}

/// Encodes a frame header.
pub(crate) fn frame_header(tag: u8, len: usize) -> [u8; FRAME_HDR] {
    let l = (len as u16).to_le_bytes();
    let chk = CRC8.checksum(&[tag, l[0], l[1]]);
    [tag, l[0], l[1], chk]
}

/// What a 4-byte frame header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// All four bytes erased: no frame starts here.
    Erased,
    /// A well-formed header of a frame of this tag and total (padded) length.
    Frame { tag: u8, len: usize },
    /// Anything else: damaged or torn bytes.
    Garbage,
}

/// Decodes a frame header; `room` is the number of bytes left in the sector and
/// `w` the write size (frame lengths are multiples of it).
pub(crate) fn parse_frame_header(h: [u8; FRAME_HDR], room: usize, w: usize) -> Header {
    if h == [0xFF; FRAME_HDR] {
        return Header::Erased;
    }
    let tag = h[0];
    let len = u16::from_le_bytes([h[1], h[2]]) as usize;
    if (tag != TAG_BATCH && tag != TAG_ACK && tag != TAG_RESERVE)
        || CRC8.checksum(&h[..3]) != h[3]
        || len < FRAME_HDR + CRC_LEN
        || len > room
        || !len.is_multiple_of(w)
    {
        return Header::Garbage;
    }
    Header::Frame { tag, len }
}

/// Whether a frame of this tag is a batch (plain, packed or compact).
pub(crate) const fn is_batch(tag: u8) -> bool {
    matches!(tag, TAG_BATCH | TAG_PACKED | TAG_RUN_TSD | TAG_RUN_EVT)
}

/// Whether a frame of this tag is a compact one-run batch frame.
pub(crate) const fn is_compact(tag: u8) -> bool {
    matches!(tag, TAG_RUN_TSD | TAG_RUN_EVT)
}

/// Whether a run can be written as a compact frame (source and count fit the
/// packed count field).
pub(crate) const fn compact_fits(info: &RunInfo) -> bool {
    info.key.source <= COMPACT_MAX_SOURCE && info.count >= 1 && info.count <= COMPACT_MAX_COUNT
}

/// Total (padded) length of a compact frame of `count` records of `kind`.
pub(crate) const fn compact_len(kind: RecordKind, count: usize, w: usize) -> usize {
    round_up(run_hdr_len(kind) + count * kind.record_size() + CRC_LEN, w)
}

/// Encodes the header of a compact frame (frame and run header in one, the
/// length of a plain run header); returns the used prefix length. The caller
/// checks [`compact_fits`].
pub(crate) fn compact_header(info: &RunInfo, out: &mut [u8; RUN_HDR + TSD_EXTRA]) -> usize {
    let tag = match info.kind {
        RecordKind::Tsd => TAG_RUN_TSD,
        RecordKind::Evt => TAG_RUN_EVT,
    };
    // A plain run header whose kind, source and count bytes become the frame header.
    let hl = run_header(info, out);
    let packed = (info.count & COMPACT_MAX_COUNT) | (u16::from(info.key.source & 3) << 14);
    let p = packed.to_le_bytes();
    out[..4].copy_from_slice(&[tag, p[0], p[1], CRC8.checksum(&[tag, p[0], p[1]])]);
    hl
}

/// Decodes a frame header on flash, where compact frames exist too: their
/// length follows from the record count (see the module docs of `storage`).
pub(crate) fn parse_flash_frame_header(h: [u8; FRAME_HDR], room: usize, w: usize) -> Header {
    let kind = match h[0] {
        TAG_RUN_TSD => RecordKind::Tsd,
        TAG_RUN_EVT => RecordKind::Evt,
        tag @ (TAG_EVICT | TAG_PACKED) => {
            // Same checks as a plain frame, for the flash-only tags.
            let mut g = h;
            g[0] = TAG_ACK;
            g[3] = CRC8.checksum(&g[..3]);
            return match (
                CRC8.checksum(&h[..3]) == h[3],
                parse_frame_header(g, room, w),
            ) {
                (true, Header::Frame { len, .. }) => Header::Frame { tag, len },
                _ => Header::Garbage,
            };
        }
        _ => return parse_frame_header(h, room, w),
    };
    let count = u16::from_le_bytes([h[1], h[2]]) & COMPACT_MAX_COUNT;
    let len = compact_len(kind, count as usize, w);
    if CRC8.checksum(&h[..3]) != h[3] || count == 0 || len > room || len > MAX_FRAME {
        return Header::Garbage;
    }
    Header::Frame { tag: h[0], len }
}

/// What the first 5 bytes of a compact frame (frame header and the id's low
/// byte, the id being little-endian) say of its sensor, as
/// [`parse_compact_run`] decodes it: `(source, id & 0xFF)`; `None` for any
/// other tag. Frames whose pair differs from a sensor's are not its own.
pub(crate) fn compact_key_low(b: &[u8; COMPACT_PEEK]) -> Option<(u8, u8)> {
    let [t, c0, c1, _, i0] = *b;
    is_compact(t).then(|| ((u16::from_le_bytes([c0, c1]) >> 14) as u8, i0))
}

/// Bytes of a compact frame a search reads to pass it: frame header and the
/// low byte of the id.
pub(crate) const COMPACT_PEEK: usize = FRAME_HDR + 1;

/// Decodes the header of a compact frame (its first bytes, `b`, at least
/// [`FRAME_HDR`] of them) whose frame header checked out; `rest` is the frame
/// length without its CRC. The header is turned back into the plain run header
/// it was made from ([`compact_header`]) and decoded as one.
pub(crate) fn parse_compact_run(b: &[u8], rest: usize) -> RunParse {
    let (kind, kind_byte) = match b.first() {
        Some(&TAG_RUN_TSD) => (RecordKind::Tsd, KIND_TSD),
        Some(&TAG_RUN_EVT) => (RecordKind::Evt, KIND_EVT),
        _ => return RunParse::Bad,
    };
    let hl = run_hdr_len(kind);
    let mut plain = [0u8; RUN_HDR + TSD_EXTRA];
    match (b.get(..hl), plain.get_mut(..hl)) {
        (Some(src), Some(dst)) => dst.copy_from_slice(src),
        _ => return RunParse::Bad,
    }
    let packed = u16::from_le_bytes([plain[1], plain[2]]);
    let count = (packed & COMPACT_MAX_COUNT).to_le_bytes();
    plain[..4].copy_from_slice(&[kind_byte, (packed >> 14) as u8, count[0], count[1]]);
    parse_run_header(&plain[..hl], rest)
}

/// The TSD fields of a run header (`b` holds a whole TSD header), or the
/// default for EVT.
fn tsd_meta(kind: RecordKind, b: &[u8; RUN_HDR + TSD_EXTRA]) -> RunMeta {
    if kind == RecordKind::Tsd {
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        RunMeta {
            base_time: u64::from_le_bytes(t),
            interval: u32::from_le_bytes([b[20], b[21], b[22], b[23]]),
        }
    } else {
        RunMeta::default()
    }
}

/// Encodes a run header; returns the used prefix length.
pub(crate) fn run_header(info: &RunInfo, out: &mut [u8; RUN_HDR + TSD_EXTRA]) -> usize {
    out[0] = match info.kind {
        RecordKind::Tsd => KIND_TSD,
        RecordKind::Evt => KIND_EVT,
    };
    out[1] = info.key.source;
    out[2..4].copy_from_slice(&info.count.to_le_bytes());
    out[4..8].copy_from_slice(&info.key.id.to_le_bytes());
    out[8..12].copy_from_slice(&info.first_seq.to_le_bytes());
    if info.kind == RecordKind::Tsd {
        out[12..20].copy_from_slice(&info.meta.base_time.to_le_bytes());
        out[20..24].copy_from_slice(&info.meta.interval.to_le_bytes());
    }
    run_hdr_len(info.kind)
}

/// Result of decoding the run header at the start of `b`.
pub(crate) enum RunParse {
    /// Padding (or the end of the body): no more runs in this frame.
    End,
    /// A run, its header length and record bytes length.
    Run(RunInfo, usize, usize),
    /// Inconsistent bytes (only possible in a forged frame whose CRC matches).
    Bad,
}

/// Decodes a run header from `b` (which holds at least the first byte). `rest`
/// is the number of body bytes left from the start of this run header.
pub(crate) fn parse_run_header(b: &[u8], rest: usize) -> RunParse {
    let kind = match b.first() {
        None | Some(0xFF) => return RunParse::End,
        Some(&KIND_TSD) => RecordKind::Tsd,
        Some(&KIND_EVT) => RecordKind::Evt,
        Some(_) => return RunParse::Bad,
    };
    let hl = run_hdr_len(kind);
    let Some(src) = b.get(..hl).filter(|_| rest >= hl) else {
        return RunParse::Bad;
    };
    // A fixed-size copy: the field reads below need no bounds checks.
    let mut b = [0u8; RUN_HDR + TSD_EXTRA];
    if let Some(dst) = b.get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }
    let count = u16::from_le_bytes([b[2], b[3]]);
    let rec = count as usize * kind.record_size();
    if count == 0 || rest - hl < rec {
        return RunParse::Bad;
    }
    let meta = tsd_meta(kind, &b);
    let info = RunInfo {
        key: SensorKey {
            source: b[1],
            id: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        },
        kind,
        first_seq: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        count,
        meta,
    };
    RunParse::Run(info, hl, rec)
}

/// Bytes of the LEB128 encoding of `v` (7 bits per byte, low bits first).
const fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the LEB128 encoding of `v` to `out` at `*at` (the caller sized `out`).
fn put_varint(out: &mut [u8], at: &mut usize, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if let Some(b) = out.get_mut(*at) {
            *b = if v == 0 { byte } else { byte | 0x80 };
        }
        *at += 1;
        if v == 0 {
            return;
        }
    }
}

/// Decodes a LEB128 number of at most `max` bits from `b` at `*at`; `None` if
/// it runs past `b`, is longer than the value allows or has bits above `max`.
fn get_varint(b: &[u8], at: &mut usize, max: u32) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        if shift >= max {
            return None;
        }
        let bits = u64::from(byte & 0x7F);
        if max - shift < 7 && bits >> (max - shift) != 0 {
            return None;
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

/// First byte of a packed run header: the kind in bits 0..2 (`0x01` TSD,
/// `0x02` EVT) and the count in bits 2..8 when it is 1..=63, else 0 (a varint
/// count follows the source). Never `0xFF`, which ends a frame's runs.
const fn packed_lead(info: &RunInfo) -> u8 {
    let kind = match info.kind {
        RecordKind::Tsd => KIND_TSD,
        RecordKind::Evt => KIND_EVT,
    };
    if info.count <= PACKED_INLINE_COUNT {
        kind | (info.count as u8) << 2
    } else {
        kind
    }
}

/// Length of the packed run header of `info` ([`packed_run_header`]).
pub(crate) const fn packed_hdr_len(info: &RunInfo) -> usize {
    let count = if info.count <= PACKED_INLINE_COUNT {
        0
    } else {
        varint_len(info.count as u64)
    };
    let tsd = match info.kind {
        RecordKind::Tsd => varint_len(info.meta.base_time) + varint_len(info.meta.interval as u64),
        RecordKind::Evt => 0,
    };
    2 + count + varint_len(info.key.id as u64) + varint_len(info.first_seq as u64) + tsd
}

/// Encodes a packed run header (format tables: `storage` module docs);
/// returns its length.
pub(crate) fn packed_run_header(info: &RunInfo, out: &mut [u8; MAX_RUN_HDR]) -> usize {
    let lead = packed_lead(info);
    out[0] = lead;
    out[1] = info.key.source;
    let mut at = 2;
    if lead >> 2 == 0 {
        put_varint(out, &mut at, u64::from(info.count));
    }
    put_varint(out, &mut at, u64::from(info.key.id));
    put_varint(out, &mut at, u64::from(info.first_seq));
    if info.kind == RecordKind::Tsd {
        put_varint(out, &mut at, info.meta.base_time);
        put_varint(out, &mut at, u64::from(info.meta.interval));
    }
    at
}

/// Decodes a packed run header from `b` (at least its first byte, at most
/// [`MAX_RUN_HDR`] bytes); `rest` is the number of body bytes left from the
/// start of this run header.
pub(crate) fn parse_packed_run(b: &[u8], rest: usize) -> RunParse {
    let lead = match b.first() {
        None | Some(0xFF) => return RunParse::End,
        Some(&l) => l,
    };
    let kind = match lead & 3 {
        KIND_TSD => RecordKind::Tsd,
        KIND_EVT => RecordKind::Evt,
        _ => return RunParse::Bad,
    };
    let b = b.get(..rest.min(b.len())).unwrap_or_default();
    let Some(&source) = b.get(1) else {
        return RunParse::Bad;
    };
    let mut at = 2;
    let count = match lead >> 2 {
        0 => get_varint(b, &mut at, 16),
        c => Some(u64::from(c)),
    };
    let id = get_varint(b, &mut at, 32);
    let seq = get_varint(b, &mut at, 32);
    let meta = match kind {
        RecordKind::Tsd => match (get_varint(b, &mut at, 64), get_varint(b, &mut at, 32)) {
            (Some(base_time), Some(interval)) => Some(RunMeta {
                base_time,
                interval: interval as u32,
            }),
            _ => None,
        },
        RecordKind::Evt => Some(RunMeta::default()),
    };
    let (Some(count), Some(id), Some(seq), Some(meta)) = (count, id, seq, meta) else {
        return RunParse::Bad;
    };
    let rec = count as usize * kind.record_size();
    if count == 0 || rest - at < rec {
        return RunParse::Bad;
    }
    let info = RunInfo {
        key: SensorKey {
            source,
            id: id as u32,
        },
        kind,
        first_seq: seq as u32,
        count: count as u16,
        meta,
    };
    RunParse::Run(info, at, rec)
}

/// Where the run header addressed as `rel` in a batch frame of this tag
/// starts: a compact frame's one run is addressed as `FRAME_HDR` and its
/// header starts the frame; `None` past it.
pub(crate) const fn run_hdr_start(tag: u8, rel: usize) -> Option<usize> {
    if !is_compact(tag) {
        Some(rel)
    } else if rel == FRAME_HDR {
        Some(0)
    } else {
        None
    }
}

/// Bytes that hold every EVT run header of any batch frame (plain 12,
/// packed at most 15): what a reader fetches first.
pub(crate) const SHORT_RUN_HDR: usize = 16;

/// What a reader fetches first of a packed run header, then again as much
/// until [`packed_hdr_end`] finds its end: lead, source, a one-byte id and a
/// first number of up to four bytes (a whole EVT header of a small id); a TSD
/// header's times take a second read.
pub(crate) const PACKED_READ: usize = 8;

/// Length of the packed run header that `b` starts with, when `b` holds all
/// of it (its varints end within `b`); `None` when it may go on past `b` or
/// does not start like a run header (the reader then fetches what
/// [`run_hdr_need`] says, and the parse decides).
pub(crate) fn packed_hdr_end(b: &[u8]) -> Option<usize> {
    let lead = *b.first()?;
    let varints = match lead & 3 {
        KIND_EVT => 2,
        KIND_TSD => 4,
        _ => return None,
    } + usize::from(lead >> 2 == 0);
    let mut at = 2;
    for _ in 0..varints {
        let n = b.get(at..)?.iter().take(10).position(|&x| x & 0x80 == 0)?;
        at += n + 1;
    }
    (at <= b.len()).then_some(at)
}

/// Bytes the run header starting with `lead` in a batch frame of this tag
/// may take: [`SHORT_RUN_HDR`] for EVT runs, more for TSD runs (their times).
pub(crate) const fn run_hdr_need(tag: u8, lead: u8) -> usize {
    let tsd = match tag {
        TAG_RUN_TSD => true,
        TAG_RUN_EVT => false,
        TAG_PACKED => lead & 3 == KIND_TSD,
        _ => lead == KIND_TSD,
    };
    match (tsd, tag) {
        (false, _) => SHORT_RUN_HDR,
        (true, TAG_PACKED) => MAX_RUN_HDR,
        (true, _) => RUN_HDR + TSD_EXTRA,
    }
}

/// Decodes the run header of a batch frame of this tag: `b` holds its bytes
/// from [`run_hdr_start`] (up to [`MAX_RUN_HDR`]), `rel` is its address and
/// `end` the frame length without the CRC.
pub(crate) fn parse_batch_run(tag: u8, b: &[u8], rel: usize, end: usize) -> RunParse {
    let rest = end.saturating_sub(rel);
    match tag {
        TAG_RUN_TSD | TAG_RUN_EVT => parse_compact_run(b, end),
        TAG_PACKED => parse_packed_run(b, rest),
        _ => parse_run_header(b, rest),
    }
}

/// Encodes an acknowledgement frame body.
pub(crate) fn ack_body(key: SensorKey, upto: u32) -> [u8; ACK_BODY] {
    let mut b = [0xFFu8; ACK_BODY];
    b[0] = key.source;
    b[4..8].copy_from_slice(&key.id.to_le_bytes());
    b[8..12].copy_from_slice(&upto.to_le_bytes());
    b
}

/// Decodes an acknowledgement frame body.
pub(crate) fn parse_ack_body(b: &[u8]) -> Option<(SensorKey, u32)> {
    if b.len() < ACK_BODY || b[1..4] != [0xFF; 3] {
        return None;
    }
    Some((
        SensorKey {
            source: b[0],
            id: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        },
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
    ))
}

/// Encodes reservation entries into `out` (12 bytes each); returns the body length.
pub(crate) fn reserve_body(entries: &[(SensorKey, u32)], out: &mut [u8]) -> usize {
    let mut n = 0;
    for (&(key, upto), e) in entries.iter().zip(out.chunks_exact_mut(RESERVE_ENTRY)) {
        e[0] = key.source;
        e[1] = RESERVE_MARK;
        e[2] = 0xFF;
        e[3] = 0xFF;
        e[4..8].copy_from_slice(&key.id.to_le_bytes());
        e[8..12].copy_from_slice(&upto.to_le_bytes());
        n += RESERVE_ENTRY;
    }
    n
}

/// Decodes one reservation entry; `None` at padding or damage (the end of
/// the frame's entries).
pub(crate) fn parse_reserve_entry(e: &[u8]) -> Option<(SensorKey, u32)> {
    if e.len() < RESERVE_ENTRY || e[1] != RESERVE_MARK || e[2..4] != [0xFF; 2] {
        return None;
    }
    Some((
        SensorKey {
            source: e[0],
            id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
        },
        u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 16-entry-table CRCs (the no_std default) give the `crc` crate's values: the
    /// catalogue check values, and every length 0..=300 of a pseudo-random buffer, in one
    /// piece and split at every third byte (digest).
    #[test]
    fn nibble_crcs_match_the_crc_crate() {
        use crc::{CRC_8_SMBUS, CRC_32_ISCSI, Crc};
        let c32 = Crc::<u32>::new(&CRC_32_ISCSI);
        let c8 = Crc::<u8>::new(&CRC_8_SMBUS);
        assert_eq!(nibble::Crc32c.checksum(b"123456789"), CRC_32_ISCSI.check);
        assert_eq!(nibble::Crc8Smbus.checksum(b"123456789"), CRC_8_SMBUS.check);
        let mut x = 0x1234_5678u32;
        let buf: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for n in 0..=buf.len() {
            let b = &buf[..n];
            assert_eq!(nibble::Crc32c.checksum(b), c32.checksum(b), "len {n}");
            assert_eq!(nibble::Crc8Smbus.checksum(b), c8.checksum(b), "len {n}");
            let mut d = nibble::Crc32c.digest();
            for part in b.chunks(3) {
                d.update(part);
            }
            assert_eq!(d.finalize(), c32.checksum(b), "digest len {n}");
        }
    }

    #[test]
    fn reserve_entries_roundtrip_and_end_at_padding() {
        let k = SensorKey {
            source: 255,
            id: u32::MAX,
        };
        let mut b = [0xFFu8; 3 * RESERVE_ENTRY];
        let n = reserve_body(
            &[(k, 7), (SensorKey { source: 1, id: 2 }, u32::MAX)],
            &mut b,
        );
        assert_eq!(n, 2 * RESERVE_ENTRY);
        assert_eq!(parse_reserve_entry(&b[..12]), Some((k, 7)));
        assert_eq!(
            parse_reserve_entry(&b[12..24]),
            Some((SensorKey { source: 1, id: 2 }, u32::MAX))
        );
        // Padding (all 0xFF) ends the entries.
        assert_eq!(parse_reserve_entry(&b[24..]), None);
    }

    #[test]
    fn sector_header_roundtrip_and_damage() {
        let h = sector_header(0x0304_0506_0708, 0x0304_0506_0700);
        assert_eq!(
            parse_sector_header(&h),
            Some((0x0304_0506_0708, 0x0304_0506_0700))
        );
        for i in 0..SECTOR_HDR * 8 {
            let mut d = h;
            d[i / 8] ^= 1 << (i % 8);
            assert_eq!(parse_sector_header(&d), None, "bit {i}");
        }
        assert_eq!(parse_sector_header(&[0xFF; SECTOR_HDR]), None);
        // A floor above the sequence number is damage.
        let mut d = sector_header(5, 0);
        d[10..12].copy_from_slice(&6u16.to_le_bytes());
        let c = CRC32.checksum(&d[..12]);
        d[12..16].copy_from_slice(&c.to_le_bytes());
        assert_eq!(parse_sector_header(&d), None);
        // Above the largest sequence number: damage.
        let mut d = [0xFFu8; SECTOR_HDR];
        d[..4].copy_from_slice(&SECTOR_MAGIC);
        d[10..12].copy_from_slice(&[0, 0]);
        let c = CRC32.checksum(&d[..12]);
        d[12..16].copy_from_slice(&c.to_le_bytes());
        assert_eq!(parse_sector_header(&d), None);
    }

    #[test]
    fn frame_header_checks() {
        let h = frame_header(TAG_BATCH, 280);
        assert_eq!(
            parse_frame_header(h, 4096, 8),
            Header::Frame {
                tag: TAG_BATCH,
                len: 280
            }
        );
        assert_eq!(parse_frame_header(h, 279, 8), Header::Garbage);
        assert_eq!(parse_frame_header(h, 4096, 16), Header::Garbage);
        assert_eq!(parse_frame_header([0xFF; 4], 4096, 8), Header::Erased);
        let mut d = h;
        d[1] ^= 4;
        assert_eq!(parse_frame_header(d, 4096, 8), Header::Garbage);
    }

    #[test]
    fn run_header_roundtrip() {
        let info = RunInfo {
            key: SensorKey { source: 3, id: 77 },
            kind: RecordKind::Tsd,
            first_seq: u32::MAX - 2,
            count: 9,
            meta: RunMeta {
                base_time: 1_700_000_000_123,
                interval: 250,
            },
        };
        let mut b = [0u8; RUN_HDR + TSD_EXTRA];
        let n = run_header(&info, &mut b);
        assert_eq!(n, 24);
        match parse_run_header(&b, 24 + 36) {
            RunParse::Run(i, hl, rl) => {
                assert_eq!((i, hl, rl), (info, 24, 36));
            }
            _ => panic!("run header did not parse"),
        }
        assert!(matches!(parse_run_header(&b, 24 + 35), RunParse::Bad));
        assert!(matches!(parse_run_header(&[0xFF], 3), RunParse::End));
    }

    #[test]
    fn compact_header_roundtrip_and_damage() {
        for (kind, source, count) in [
            (RecordKind::Evt, 0, 1),
            (RecordKind::Evt, 3, 32),
            (RecordKind::Tsd, 2, COMPACT_MAX_COUNT),
        ] {
            let info = RunInfo {
                key: SensorKey {
                    source,
                    id: 0xDEAD_BEEF,
                },
                kind,
                first_seq: u32::MAX - 1,
                count,
                meta: match kind {
                    RecordKind::Tsd => RunMeta {
                        base_time: 1_700_000_000_123,
                        interval: 250,
                    },
                    RecordKind::Evt => RunMeta::default(),
                },
            };
            assert!(compact_fits(&info));
            let mut b = [0u8; RUN_HDR + TSD_EXTRA];
            let hl = compact_header(&info, &mut b);
            assert_eq!(hl, run_hdr_len(kind));
            let rl = count as usize * kind.record_size();
            let len = compact_len(kind, count as usize, 8);
            assert_eq!(len, round_up(hl + rl + CRC_LEN, 8));
            let h = [b[0], b[1], b[2], b[3]];
            let header = parse_flash_frame_header(h, 0x1_0000, 8);
            if len <= MAX_FRAME {
                assert_eq!(header, Header::Frame { tag: b[0], len });
            } else {
                assert_eq!(header, Header::Garbage, "longer than a frame can be");
            }
            assert_eq!(parse_flash_frame_header(h, len - 1, 8), Header::Garbage);
            // Plain parsing (file storage) does not know compact frames.
            assert_eq!(parse_frame_header(h, 0x1_0000, 8), Header::Garbage);
            for bit in 0..24 {
                let mut d = h;
                d[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    !matches!(parse_flash_frame_header(d, 0x1_0000, 8), Header::Frame { len: l, .. } if l != len),
                    "bit {bit}: a damaged header passed with another length"
                );
            }
            match parse_compact_run(&b[..hl], hl + rl) {
                RunParse::Run(i, h2, r2) => assert_eq!((i, h2, r2), (info, hl, rl)),
                _ => panic!("compact header did not parse"),
            }
            assert!(matches!(
                parse_compact_run(&b[..hl], hl + rl - 1),
                RunParse::Bad
            ));
        }
        let too_big = RunInfo {
            key: SensorKey { source: 4, id: 1 },
            kind: RecordKind::Evt,
            first_seq: 0,
            count: 1,
            meta: RunMeta::default(),
        };
        assert!(!compact_fits(&too_big));
        assert!(!compact_fits(&RunInfo {
            key: SensorKey { source: 0, id: 1 },
            count: COMPACT_MAX_COUNT + 1,
            ..too_big
        }));
        assert!(is_batch(TAG_RUN_TSD) && is_batch(TAG_RUN_EVT) && is_batch(TAG_BATCH));
        assert!(!is_batch(TAG_ACK) && !is_compact(TAG_BATCH));
    }

    #[test]
    fn packed_header_roundtrip_at_every_size_boundary() {
        let mut cases = 0;
        for kind in [RecordKind::Tsd, RecordKind::Evt] {
            for count in [1u16, 2, 63, 64, 127, 128, 16_383, 16_384, u16::MAX] {
                for id in [0u32, 127, 128, 0xDEAD_BEEF, u32::MAX] {
                    for first_seq in [0u32, 300, 1 << 21, u32::MAX] {
                        for (base_time, interval) in [
                            (0u64, 0u32),
                            (1_700_000_000_123, 1000),
                            (u64::MAX, u32::MAX),
                        ] {
                            let info = RunInfo {
                                key: SensorKey { source: 0xFF, id },
                                kind,
                                first_seq,
                                count,
                                meta: match kind {
                                    RecordKind::Tsd => RunMeta {
                                        base_time,
                                        interval,
                                    },
                                    RecordKind::Evt => RunMeta::default(),
                                },
                            };
                            let mut b = [0u8; MAX_RUN_HDR];
                            let hl = packed_run_header(&info, &mut b);
                            assert_eq!(hl, packed_hdr_len(&info), "{info:?}");
                            assert!(hl <= MAX_RUN_HDR);
                            assert_ne!(b[0], 0xFF, "a run header must not read as padding");
                            let rl = count as usize * kind.record_size();
                            match parse_batch_run(TAG_PACKED, &b[..hl], 4, 4 + hl + rl) {
                                RunParse::Run(i, h2, r2) => {
                                    assert_eq!((i, h2, r2), (info, hl, rl))
                                }
                                _ => panic!("packed header did not parse: {info:?}"),
                            }
                            // Too few body bytes for the records, or a header cut short.
                            assert!(matches!(
                                parse_packed_run(&b[..hl], hl + rl - 1),
                                RunParse::Bad
                            ));
                            for cut in 1..hl {
                                assert!(
                                    matches!(parse_packed_run(&b[..cut], hl + rl), RunParse::Bad),
                                    "cut {cut} of {info:?}"
                                );
                                // The reader's end test: not known from part of it.
                                assert_eq!(
                                    packed_hdr_end(&b[..cut]),
                                    None,
                                    "cut {cut} of {info:?}"
                                );
                            }
                            // Known from the whole header, whatever follows it
                            // (records, or the next run: any byte values).
                            for fill in [0x00u8, 0x80, 0xFF] {
                                let mut more = [fill; MAX_RUN_HDR + 8];
                                more[..hl].copy_from_slice(&b[..hl]);
                                for have in hl..more.len() {
                                    assert_eq!(
                                        packed_hdr_end(&more[..have]),
                                        Some(hl),
                                        "{have} bytes of {info:?}"
                                    );
                                }
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 2 * 9 * 5 * 4 * 3);
        assert!(matches!(parse_packed_run(&[0xFF, 0], 8), RunParse::End));
        assert!(matches!(parse_packed_run(&[], 8), RunParse::End));
        // Padding and leads of no kind: left to the parse.
        assert_eq!(packed_hdr_end(&[0xFF; 8]), None);
        assert_eq!(packed_hdr_end(&[0x00; 8]), None);
        assert_eq!(packed_hdr_end(&[]), None);
    }

    #[test]
    fn packed_header_rejects_values_too_large_for_their_field() {
        // An id of 2^32 (five varint bytes with a bit above 32) and a count
        // varint above u16::MAX are damage, not a wrapped value.
        let id_too_big = [KIND_EVT | 1 << 2, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
        assert!(matches!(parse_packed_run(&id_too_big, 64), RunParse::Bad));
        let count_too_big = [KIND_EVT, 1, 0x80, 0x80, 0x04, 0x01, 0x00];
        assert!(matches!(
            parse_packed_run(&count_too_big, 1 << 22),
            RunParse::Bad
        ));
        let zero_count = [KIND_EVT, 1, 0x00, 0x01, 0x00];
        assert!(matches!(parse_packed_run(&zero_count, 64), RunParse::Bad));
        let bad_kind = [3 | 1 << 2, 1, 1, 0];
        assert!(matches!(parse_packed_run(&bad_kind, 64), RunParse::Bad));
        // Arbitrary bytes never panic and never claim more than they hold.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut b = [0u8; MAX_RUN_HDR];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            let rest = (x >> 40) as usize % 600;
            if let RunParse::Run(_, hl, rl) = parse_packed_run(&b, rest) {
                assert!(hl + rl <= rest);
            }
        }
    }

    #[test]
    fn packed_frame_header_is_flash_only() {
        let h = frame_header(TAG_PACKED, 64);
        assert_eq!(
            parse_flash_frame_header(h, 4096, 8),
            Header::Frame {
                tag: TAG_PACKED,
                len: 64
            }
        );
        assert_eq!(parse_frame_header(h, 4096, 8), Header::Garbage);
        let mut d = h;
        d[1] ^= 8;
        assert_eq!(parse_flash_frame_header(d, 4096, 8), Header::Garbage);
        assert!(is_batch(TAG_PACKED) && !is_compact(TAG_PACKED));
        assert_eq!(run_hdr_start(TAG_PACKED, 40), Some(40));
        assert_eq!(run_hdr_start(TAG_RUN_EVT, 4), Some(0));
        assert_eq!(run_hdr_start(TAG_RUN_EVT, 40), None);
    }

    #[test]
    fn ack_body_roundtrip() {
        let k = SensorKey {
            source: 9,
            id: 0xDEAD_BEEF,
        };
        assert_eq!(parse_ack_body(&ack_body(k, 5)), Some((k, 5)));
    }
}
