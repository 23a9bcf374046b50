//! `flash_mount`: arbitrary NOR flash images (mock flash, five geometries) are mounted,
//! recovered, then every sensor is read to the end and acknowledged as it goes.
//!
//! Images are built the way the fuzzer gets deep fastest: a valid log written through
//! `NorFlashStorage` itself (batches and acknowledgement marks, optionally cut by a
//! power loss at any program/erase), then damaged by bit flips, byte writes, erased or
//! zeroed ranges, forged sector headers and forged frames whose CRCs are valid (so their
//! contents, not their checksums, are what is hostile), or replaced by raw bytes.
//!
//! Checked:
//! - nothing panics (the mock also panics if a word is programmed twice without an
//!   erase, so every write after a hostile mount must land on erased space);
//! - `mount` reads at most `mount_read_bound()` bytes and never fails; `recover` and
//!   every `read` read at most one walk over the log;
//! - every run `recover` reports and every record `read` returns comes from a frame of
//!   the image whose header check and CRC-32C are valid (an independent scan of the
//!   image at every write-size-aligned offset is the oracle): nothing is invented;
//! - reads make progress (`first` at or after the requested sequence number, counts
//!   within the run and the buffer) and the read-all loop ends within a bound; a record
//!   is never returned twice unless the image's sequence numbers of that sensor are
//!   ambiguous (spread over >= 2^30, outside the documented 2^31 window);
//! - after a remount, the acknowledgement marks written last are the ones recovered
//!   (when nothing was evicted meanwhile).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{
    LogEntry, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage, StorageError,
};
use std::collections::{BTreeMap, HashMap, HashSet};

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const CRC8: crc::Crc<u8> = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);

const KEYS: [SensorKey; 4] = [
    SensorKey { source: 0, id: 1 },
    SensorKey { source: 0, id: 2 },
    SensorKey { source: 3, id: 1 },
    SensorKey {
        source: 255,
        id: u32::MAX,
    },
];

#[derive(Arbitrary, Debug, Clone)]
struct BuildRun {
    key: u8,
    evt: bool,
    first_seq: u32,
    count: u8,
    base_time: u32,
    interval: u16,
}

#[derive(Arbitrary, Debug, Clone)]
enum BuildOp {
    /// A batch of up to 3 runs (through `append`).
    Batch(Vec<BuildRun>),
    /// An acknowledgement mark (through `ack`).
    Ack(u8, u32),
    /// `evict_oldest`.
    Evict,
}

#[derive(Arbitrary, Debug, Clone)]
enum Damage {
    FlipBit(u16, u8),
    SetByte(u16, u8),
    Zero(u16, u8),
    Erase(u16, u8),
    /// A valid sector header with this sequence number on sector `s`.
    SectorHeader(u8, u64),
    /// A frame with valid header check and CRC at word `w` of sector `s`; the tag is
    /// batch or ack; the body is taken as given (padded with 0xFF to the write size).
    Frame {
        sector: u8,
        word: u16,
        ack: bool,
        body: Vec<u8>,
    },
    /// A CRC-valid batch frame holding one well-formed run with arbitrary fields,
    /// plain or compact.
    RunFrame {
        sector: u8,
        word: u16,
        kind: u8,
        key: u8,
        count: u16,
        first_seq: u32,
        compact: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    geometry: u8,
    seed: u64,
    /// Build the image from a valid log (`true`) or start from `raw` bytes.
    from_log: bool,
    build: Vec<BuildOp>,
    /// Cut power during the k-th program/erase of the build.
    cut: Option<u16>,
    damage: Vec<Damage>,
    raw: Vec<u8>,
    /// Acknowledge after every read (`true`) or only at the end of each sensor.
    ack_each: bool,
}

fn key(k: u8) -> SensorKey {
    KEYS[usize::from(k) % KEYS.len()]
}

fn record_bytes(key: SensorKey, kind: RecordKind, seq: u32) -> Vec<u8> {
    let v = seq.wrapping_mul(2_654_435_761) ^ key.id ^ u32::from(key.source) << 24;
    match kind {
        RecordKind::Tsd => v.to_le_bytes().to_vec(),
        RecordKind::Evt => {
            let mut b = seq.wrapping_add(1_700_000_000).to_le_bytes().to_vec();
            b.extend_from_slice(&v.to_le_bytes());
            b
        }
    }
}

fn run_header(info: &RunInfo) -> Vec<u8> {
    let mut h = vec![match info.kind {
        RecordKind::Tsd => 1,
        RecordKind::Evt => 2,
    }];
    h.push(info.key.source);
    h.extend_from_slice(&info.count.to_le_bytes());
    h.extend_from_slice(&info.key.id.to_le_bytes());
    h.extend_from_slice(&info.first_seq.to_le_bytes());
    if info.kind == RecordKind::Tsd {
        h.extend_from_slice(&info.meta.base_time.to_le_bytes());
        h.extend_from_slice(&info.meta.interval.to_le_bytes());
    }
    h
}

/// A complete frame (header, body, 0xFF padding, CRC) of a length that is a multiple of `w`.
fn frame(tag: u8, body: &[u8], w: usize) -> Vec<u8> {
    let len = (4 + body.len() + 4).div_ceil(w) * w;
    let l = (len as u16).to_le_bytes();
    let mut f = vec![tag, l[0], l[1], CRC8.checksum(&[tag, l[0], l[1]])];
    f.extend_from_slice(body);
    f.resize(len - 4, 0xFF);
    let c = CRC32.checksum(&f);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

/// A compact frame: one run whose header starts the frame (tag 0xB6 TSD / 0xB7
/// EVT, count in 14 bits with the source in the top 2, header check, id, first
/// sequence number, TSD fields), records, 0xFF padding, CRC.
fn compact_frame(info: &RunInfo, records: &[u8], w: usize) -> Vec<u8> {
    let tag = match info.kind {
        RecordKind::Tsd => 0xB6,
        RecordKind::Evt => 0xB7,
    };
    let p = (info.count | u16::from(info.key.source) << 14).to_le_bytes();
    let mut f = vec![tag, p[0], p[1], CRC8.checksum(&[tag, p[0], p[1]])];
    f.extend_from_slice(&run_header(info)[4..]);
    f.extend_from_slice(records);
    let len = (f.len() + 4).div_ceil(w) * w;
    f.resize(len - 4, 0xFF);
    let c = CRC32.checksum(&f);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

fn sector_header(seq: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(b"SPL2");
    h[4..10].copy_from_slice(&seq.to_le_bytes()[..6]);
    // Floor: a few sectors back (forged logs of any shape).
    h[10..12].copy_from_slice(&((seq as u16) % 5).to_le_bytes());
    let c = CRC32.checksum(&h[..12]);
    h[12..].copy_from_slice(&c.to_le_bytes());
    h
}

/// What the image can legitimately yield: every run (and its records) and every
/// acknowledgement mark of every frame whose header check and CRC are valid, at any
/// `w`-aligned offset of any sector.
#[derive(Default)]
struct Oracle {
    runs: HashSet<(SensorKey, u8, u32, u16, u64, u32)>,
    records: HashSet<(SensorKey, u32, Vec<u8>)>,
    seqs: HashMap<SensorKey, Vec<u32>>,
    marks: HashSet<(SensorKey, u32)>,
    nrecords: usize,
}

fn kind_code(k: RecordKind) -> u8 {
    match k {
        RecordKind::Tsd => 1,
        RecordKind::Evt => 2,
    }
}

fn scan(img: &[u8], w: usize, e: usize) -> Oracle {
    let mut o = Oracle::default();
    for base in (0..img.len()).step_by(e) {
        let sec = &img[base..base + e];
        let mut off = 0;
        while off + 8 <= e {
            let h = &sec[off..off + 4];
            let tag = h[0];
            let len = usize::from(u16::from_le_bytes([h[1], h[2]]));
            let ok = (tag == 0xB5 || tag == 0xB8 || tag == 0xAC)
                && CRC8.checksum(&h[..3]) == h[3]
                && len >= 8
                && off + len <= e
                && len % w == 0
                && CRC32.checksum(&sec[off..off + len - 4])
                    == u32::from_le_bytes(sec[off + len - 4..off + len].try_into().unwrap());
            if let Some((len, run)) = compact_at(sec, off, w) {
                // Rebuilt as a plain run header followed by the records.
                let mut body = vec![if tag == 0xB6 { 1 } else { 2 }, (run >> 14) as u8];
                body.extend_from_slice(&(run & 0x3FFF).to_le_bytes());
                body.extend_from_slice(&sec[off + 4..off + len - 4]);
                parse_runs(&body, &mut o);
            }
            if ok {
                let body = &sec[off + 4..off + len - 4];
                if tag == 0xAC {
                    if body.len() >= 12 && body[1..4] == [0xFF; 3] {
                        let k = SensorKey {
                            source: body[0],
                            id: u32::from_le_bytes(body[4..8].try_into().unwrap()),
                        };
                        o.marks
                            .insert((k, u32::from_le_bytes(body[8..12].try_into().unwrap())));
                    }
                } else if tag == 0xB8 {
                    parse_packed_runs(body, &mut o);
                } else {
                    parse_runs(body, &mut o);
                }
            }
            off += w;
        }
    }
    o
}

/// A compact frame with valid header check and CRC at `off`: its length and its
/// packed count field.
fn compact_at(sec: &[u8], off: usize, w: usize) -> Option<(usize, u16)> {
    let h = &sec[off..off + 4];
    let (hl, size) = match h[0] {
        0xB6 => (24, 4),
        0xB7 => (12, 8),
        _ => return None,
    };
    let packed = u16::from_le_bytes([h[1], h[2]]);
    let count = usize::from(packed & 0x3FFF);
    let len = (hl + count * size + 4).div_ceil(w) * w;
    let ok = CRC8.checksum(&h[..3]) == h[3]
        && count > 0
        && len <= 0xFFFF
        && off + len <= sec.len()
        && CRC32.checksum(&sec[off..off + len - 4])
            == u32::from_le_bytes(sec[off + len - 4..off + len].try_into().unwrap());
    ok.then_some((len, packed))
}

fn parse_runs(body: &[u8], o: &mut Oracle) {
    let mut p = 0;
    while p < body.len() {
        let (kind, size, hl) = match body[p] {
            1 => (RecordKind::Tsd, 4, 24),
            2 => (RecordKind::Evt, 8, 12),
            _ => return,
        };
        if body.len() - p < hl {
            return;
        }
        let b = &body[p..];
        let count = u16::from_le_bytes([b[2], b[3]]);
        let rl = usize::from(count) * size;
        if count == 0 || body.len() - p - hl < rl {
            return;
        }
        let key = SensorKey {
            source: b[1],
            id: u32::from_le_bytes(b[4..8].try_into().unwrap()),
        };
        let first = u32::from_le_bytes(b[8..12].try_into().unwrap());
        let (bt, iv) = if kind == RecordKind::Tsd {
            (
                u64::from_le_bytes(b[12..20].try_into().unwrap()),
                u32::from_le_bytes(b[20..24].try_into().unwrap()),
            )
        } else {
            (0, 0)
        };
        o.runs.insert((key, kind_code(kind), first, count, bt, iv));
        let seqs = o.seqs.entry(key).or_default();
        seqs.push(first);
        seqs.push(first.wrapping_add(u32::from(count)));
        for k in 0..usize::from(count) {
            let rec = b[hl + k * size..hl + (k + 1) * size].to_vec();
            o.records.insert((key, first.wrapping_add(k as u32), rec));
        }
        o.nrecords += usize::from(count);
        p += hl + rl;
    }
}

/// LEB128 number of at most `max` bits at `*p` (written independently of the
/// crate's decoder: the oracle reads the format, not the implementation).
fn varint(b: &[u8], p: &mut usize, max: u32) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*p)?;
        *p += 1;
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

/// The runs of a packed batch body (tag `0xB8`): per run a lead byte (kind in
/// bits 0..2, count in bits 2..8 or 0 for a varint count), the source, then
/// varints: [count], id, first sequence, [TSD: base time, interval]; then the
/// records. `0xFF` (erased padding) or the body's end ends the frame.
fn parse_packed_runs(body: &[u8], o: &mut Oracle) {
    let mut p = 0;
    while p < body.len() && body[p] != 0xFF {
        let lead = body[p];
        let (kind, size) = match lead & 3 {
            1 => (RecordKind::Tsd, 4),
            2 => (RecordKind::Evt, 8),
            _ => return,
        };
        let Some(&source) = body.get(p + 1) else {
            return;
        };
        let mut q = p + 2;
        let count = match lead >> 2 {
            0 => varint(body, &mut q, 16),
            c => Some(u64::from(c)),
        };
        let id = varint(body, &mut q, 32);
        let first = varint(body, &mut q, 32);
        let (bt, iv) = if kind == RecordKind::Tsd {
            (varint(body, &mut q, 64), varint(body, &mut q, 32))
        } else {
            (Some(0), Some(0))
        };
        let (Some(count), Some(id), Some(first), Some(bt), Some(iv)) = (count, id, first, bt, iv)
        else {
            return;
        };
        let count = count as u16;
        let rl = usize::from(count) * size;
        if count == 0 || body.len() - q < rl {
            return;
        }
        let key = SensorKey {
            source,
            id: id as u32,
        };
        let first = first as u32;
        o.runs
            .insert((key, kind_code(kind), first, count, bt, iv as u32));
        let seqs = o.seqs.entry(key).or_default();
        seqs.push(first);
        seqs.push(first.wrapping_add(u32::from(count)));
        for k in 0..usize::from(count) {
            o.records.insert((
                key,
                first.wrapping_add(k as u32),
                body[q + k * size..q + (k + 1) * size].to_vec(),
            ));
        }
        o.nrecords += usize::from(count);
        p = q + rl;
    }
}

/// Sequence numbers of `key` in the image are spread so widely that serial-number
/// order is ambiguous (outside the documented window).
fn ambiguous(o: &Oracle, key: SensorKey) -> bool {
    let Some(v) = o.seqs.get(&key) else {
        return false;
    };
    v.iter().any(|&a| {
        v.iter()
            .any(|&b| (a.wrapping_sub(b) as i32).unsigned_abs() >= 1 << 30)
    })
}

const fn after_or_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

fn build<const W: usize, const E: usize>(input: &Input, sectors: usize) -> Vec<u8> {
    if !input.from_log {
        let mut img = vec![0xFF; sectors * E];
        for (i, b) in input.raw.iter().take(img.len()).enumerate() {
            img[i] = *b;
        }
        return img;
    }
    let mut st = NorFlashStorage::<_>::new(MockFlash::<W, E>::new(sectors, input.seed)).unwrap();
    st.mount().unwrap();
    if let Some(k) = input.cut {
        st.flash_mut().cut_after(Some(u64::from(k % 64)));
    }
    let max = st.max_batch_bytes();
    'ops: for op in input.build.iter().take(48) {
        let r = match op {
            BuildOp::Batch(runs) => {
                let mut owned: Vec<(RunInfo, Vec<u8>)> = Vec::new();
                let mut bytes = 0;
                for r in runs.iter().take(3) {
                    let kind = if r.evt {
                        RecordKind::Evt
                    } else {
                        RecordKind::Tsd
                    };
                    let count = u16::from(r.count % 40) + 1;
                    let k = key(r.key);
                    let info = RunInfo {
                        key: k,
                        kind,
                        first_seq: r.first_seq,
                        count,
                        meta: if r.evt {
                            RunMeta::default()
                        } else {
                            RunMeta {
                                base_time: u64::from(r.base_time),
                                interval: u32::from(r.interval),
                            }
                        },
                    };
                    let recs: Vec<u8> = (0..u32::from(count))
                        .flat_map(|i| record_bytes(k, kind, r.first_seq.wrapping_add(i)))
                        .collect();
                    bytes += recs.len() + if r.evt { 12 } else { 24 };
                    owned.push((info, recs));
                }
                if owned.is_empty() || bytes > max {
                    continue;
                }
                let runs: Vec<Run<'_>> = owned
                    .iter()
                    .map(|(info, records)| Run {
                        info: *info,
                        records,
                    })
                    .collect();
                st.append(&runs[..], |_| {})
            }
            BuildOp::Ack(k, upto) => st.ack(key(*k), *upto, |_| {}),
            BuildOp::Evict => st.evict_oldest(|_| {}).map(|_| ()),
        };
        if r.is_err() {
            assert!(
                st.flash().is_dead(),
                "build op failed without a power cut: {r:?}"
            );
            break 'ops;
        }
    }
    st.flash().image().to_vec()
}

fn damage<const W: usize, const E: usize>(img: &mut [u8], d: &[Damage]) {
    let n = img.len();
    for d in d.iter().take(16) {
        match d {
            Damage::FlipBit(o, b) => img[usize::from(*o) % n] ^= 1 << (b % 8),
            Damage::SetByte(o, v) => img[usize::from(*o) % n] = *v,
            Damage::Zero(o, l) | Damage::Erase(o, l) => {
                let s = usize::from(*o) % n;
                let e = (s + usize::from(*l)).min(n);
                let v = if matches!(d, Damage::Zero(..)) {
                    0
                } else {
                    0xFF
                };
                img[s..e].fill(v);
            }
            Damage::SectorHeader(s, q) => {
                let b = usize::from(*s) % (n / E) * E;
                img[b..b + 16].copy_from_slice(&sector_header(*q));
            }
            Damage::Frame {
                sector,
                word,
                ack,
                body,
            } => {
                let body = &body[..body.len().min(E)];
                let f = frame(if *ack { 0xAC } else { 0xB5 }, body, W);
                place::<W, E>(img, *sector, *word, &f);
            }
            Damage::RunFrame {
                sector,
                word,
                kind,
                key: k,
                count,
                first_seq,
                compact,
            } => {
                let kind = if kind % 2 == 0 {
                    RecordKind::Tsd
                } else {
                    RecordKind::Evt
                };
                let count = count % 64 + 1;
                let info = RunInfo {
                    key: key(*k),
                    kind,
                    first_seq: *first_seq,
                    count,
                    meta: RunMeta {
                        base_time: 0,
                        interval: 0,
                    },
                };
                let mut records = Vec::new();
                for i in 0..u32::from(count) {
                    records.extend(record_bytes(info.key, kind, first_seq.wrapping_add(i)));
                }
                let f = if *compact {
                    compact_frame(&info, &records, W)
                } else {
                    let mut body = run_header(&info);
                    body.extend(records);
                    frame(0xB5, &body, W)
                };
                place::<W, E>(img, *sector, *word, &f);
            }
        }
    }
}

fn place<const W: usize, const E: usize>(img: &mut [u8], sector: u8, word: u16, f: &[u8]) {
    if f.len() > E - 16 {
        return;
    }
    let s = usize::from(sector) % (img.len() / E) * E;
    let words = (E - f.len()) / W;
    let off = usize::from(word) % (words + 1) * W;
    img[s + off..s + off + f.len()].copy_from_slice(f);
}

/// Largest number a sector may carry (2^47 - 1): a head numbered so (only a
/// forged header gets there) cannot open another sector.
const LAST_SECTOR_SEQ: u64 = (1 << 47) - 1;

/// Writes an acknowledgement mark; `false` when it needed a new sector and the
/// head's number is [`LAST_SECTOR_SEQ`]: then it must fail with `Geometry` and
/// leave the flash as it was.
fn ack_or_last<const W: usize, const E: usize>(
    st: &mut NorFlashStorage<MockFlash<W, E>>,
    k: SensorKey,
    seq: u32,
    evicted: &mut u32,
) -> bool {
    let before = st.flash().image().to_vec();
    match st.ack(k, seq, |_| *evicted += 1) {
        Ok(()) => true,
        Err(StorageError::Geometry) if st.stats().head_seq == LAST_SECTOR_SEQ => {
            assert!(
                st.flash().image() == &before[..],
                "a refused mark changed the flash"
            );
            false
        }
        Err(e) => panic!("ack: {e:?}"),
    }
}

fn exercise<const W: usize, const E: usize>(input: &Input, sectors: usize) {
    let mut img = build::<W, E>(input, sectors);
    damage::<W, E>(&mut img, &input.damage);
    let oracle = scan(&img, W, E);

    let mut st =
        NorFlashStorage::<_>::new(MockFlash::<W, E>::from_image(&img, input.seed)).unwrap();
    st.mount().expect("mount never fails on a readable flash");
    let read = st.flash().stats().bytes_read as usize;
    assert!(
        read <= st.mount_read_bound(),
        "mount read {read} > bound {}",
        st.mount_read_bound()
    );
    // One walk over the log: per sector its header, 4 bytes per write-size step of
    // damaged bytes, every frame's bytes for the CRC and its run headers again.
    let walk = (sectors * (64 + 3 * E + 4 * E / W.min(4))) as u64;

    st.flash_mut().reset_stats();
    let mut entries = Vec::new();
    st.recover(|e| entries.push(e)).expect("recover");
    assert!(
        st.flash().stats().bytes_read <= walk,
        "recover read {} > {walk}",
        st.flash().stats().bytes_read
    );
    let mut start: BTreeMap<SensorKey, u32> = BTreeMap::new();
    for e in &entries {
        match *e {
            LogEntry::Run(r) => {
                assert!(r.count > 0);
                let t = (
                    r.key,
                    kind_code(r.kind),
                    r.first_seq,
                    r.count,
                    r.meta.base_time,
                    r.meta.interval,
                );
                assert!(oracle.runs.contains(&t), "recover invented run {r:?}");
                start.entry(r.key).or_insert(r.first_seq);
            }
            LogEntry::Ack { key, upto } => {
                assert!(
                    oracle.marks.contains(&(key, upto)),
                    "recover invented mark {key:?} {upto}"
                );
            }
            // The storage-level targets write no reservations; a forged one
            // only raises a sequence number.
            LogEntry::Reserve { .. } => {}
        }
    }
    for e in &entries {
        if let LogEntry::Ack { key, upto } = *e {
            start.insert(key, upto);
        }
    }
    for k in KEYS {
        start.entry(k).or_insert(0);
    }

    let mut evicted = 0u32;
    // Marks refused at the last sector number: the marks before them stand.
    let mut refused = false;
    let mut last_ack: BTreeMap<SensorKey, u32> = BTreeMap::new();
    let limit = oracle.nrecords + oracle.runs.len() + 4;
    for (&k, &from) in &start {
        let amb = ambiguous(&oracle, k);
        let mut seq = from;
        let mut seen: HashSet<u32> = HashSet::new();
        let mut iterations = 0usize;
        loop {
            iterations += 1;
            if iterations > limit {
                assert!(amb, "read loop of {k:?} did not end after {limit} reads");
                break;
            }
            let mut out = [0u8; 64];
            st.flash_mut().reset_stats();
            let r = st.read(k, seq, &mut out).expect("read");
            assert!(
                st.flash().stats().bytes_read <= walk,
                "read read {} > {walk}",
                st.flash().stats().bytes_read
            );
            let Some(r) = r else { break };
            let size = r.run.kind.record_size();
            assert_eq!(r.run.key, k);
            assert!(r.count > 0 && r.count * size <= out.len(), "{r:?}");
            assert!(
                after_or_eq(r.first, seq),
                "read went backwards: {seq} -> {r:?}"
            );
            assert!(r.run.contains(r.first), "{r:?}");
            let skip = r.first.wrapping_sub(r.run.first_seq) as usize;
            assert!(skip + r.count <= usize::from(r.run.count), "{r:?}");
            for i in 0..r.count {
                let s = r.first.wrapping_add(i as u32);
                let rec = out[i * size..(i + 1) * size].to_vec();
                assert!(
                    oracle.records.contains(&(k, s, rec.clone())),
                    "read invented record {k:?} seq {s}: {rec:?}"
                );
                if !seen.insert(s) && !amb {
                    panic!("record {k:?} seq {s} returned twice");
                }
            }
            seq = r.first.wrapping_add(r.count as u32);
            if input.ack_each && !refused {
                if ack_or_last(&mut st, k, seq, &mut evicted) {
                    last_ack.insert(k, seq);
                } else {
                    refused = true;
                }
            }
        }
        if !input.ack_each && seq != from && !refused {
            if ack_or_last(&mut st, k, seq, &mut evicted) {
                last_ack.insert(k, seq);
            } else {
                refused = true;
            }
        }
    }

    // Remount: the marks written last win (unless eviction removed sectors meanwhile).
    let img2 = st.flash().image().to_vec();
    let mut st2 = NorFlashStorage::<_>::new(MockFlash::<W, E>::from_image(&img2, 1)).unwrap();
    st2.mount().expect("remount");
    let mut marks: BTreeMap<SensorKey, u32> = BTreeMap::new();
    st2.recover(|e| {
        if let LogEntry::Ack { key, upto } = e {
            marks.insert(key, upto);
        }
    })
    .expect("recover after remount");
    if evicted == 0 && st.stats().evicted_sectors == 0 {
        for (k, upto) in &last_ack {
            assert_eq!(marks.get(k), Some(upto), "mark of {k:?} lost after remount");
        }
    }
}

fuzz_target!(|input: Input| {
    match input.geometry % 5 {
        0 => exercise::<4, 256>(&input, 4),
        1 => exercise::<1, 256>(&input, 3),
        2 => exercise::<8, 512>(&input, 3),
        3 => exercise::<16, 256>(&input, 2),
        _ => exercise::<32, 1024>(&input, 2),
    }
});
