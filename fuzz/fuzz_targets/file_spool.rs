//! `file_spool`: arbitrary bytes as the files of a `FileStorage` spool directory.
//!
//! Each input builds a fresh directory (under `/dev/shm` when present): optionally a
//! valid spool written through `FileStorage` itself, then damaged (bit flips, truncation,
//! appended garbage), plus files the fuzzer describes (source directory, file name with
//! an arbitrary 64-bit sequence number or a `.tmp` leftover, a header with arbitrary
//! fields and a valid CRC, CRC-valid frames with hostile contents, raw bytes). Then:
//! mount, recover, read every sensor to the end and acknowledge, remount.
//!
//! Checked:
//! - nothing panics, mount succeeds;
//! - after mount every data file (`<16 hex>.spl`, outside `quarantine/`) is either empty
//!   (a spare) or a valid header followed by valid frames, and after the first offset
//!   where no valid frame starts there is no valid frame of that file at any offset (a
//!   torn or stale tail is left in place, never read; damage in the middle was
//!   rewritten; damaged files were quarantined); no `.tmp` file is left;
//! - every record `read` returns, and every record of every run `recover` reports, is
//!   in a CRC-valid frame of one of the input files (independent scan): nothing invented;
//! - reads make progress and the read-all loop ends within a bound; a record is never
//!   returned twice unless the sensor's sequence numbers are ambiguous (>= 2^30 apart);
//! - after a remount the acknowledgement marks written last are recovered (when
//!   nothing was evicted).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sensor_spool::storage::file::{FileConfig, FileError};
use sensor_spool::storage::{
    FileStorage, LogEntry, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const CRC8: crc::Crc<u8> = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);

const KEYS: [SensorKey; 4] = [
    SensorKey { source: 0, id: 1 },
    SensorKey { source: 0, id: 2 },
    SensorKey { source: 1, id: 7 },
    SensorKey { source: 9, id: 3 },
];
const DIRS: [&str; 6] = [
    "host",
    "mgc",
    "can_controller",
    "source_009",
    "source_9",
    "quarantine",
];

fn key(k: u8) -> SensorKey {
    KEYS[usize::from(k) % KEYS.len()]
}

#[derive(Arbitrary, Debug, Clone)]
struct BuildRun {
    key: u8,
    evt: bool,
    first_seq: u32,
    count: u8,
}

#[derive(Arbitrary, Debug, Clone)]
enum BuildOp {
    Batch(Vec<BuildRun>),
    Ack(u8, u32),
    Evict,
}

#[derive(Arbitrary, Debug, Clone)]
enum Name {
    Seq(u64),
    Tmp(u64),
    Junk(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Part {
    /// A file header with a valid CRC (reserved bytes as given when `bad_reserved`).
    Header {
        seq: u64,
        source: u8,
        bad_reserved: bool,
    },
    /// A CRC-valid batch frame with one well-formed run.
    RunFrame {
        key: u8,
        evt: bool,
        first_seq: u32,
        count: u8,
    },
    /// A CRC-valid acknowledgement frame.
    Ack { key: u8, upto: u32 },
    /// A CRC-valid frame with an arbitrary tag and body.
    Frame { tag: u8, body: Vec<u8> },
    /// Raw bytes.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
struct FuzzFile {
    dir: u8,
    name: Name,
    parts: Vec<Part>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Damage {
    FlipBit(u8, u16, u8),
    Truncate(u8, u16),
    Append(u8, Vec<u8>),
    Remove(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    file_size: u16,
    build: Vec<BuildOp>,
    damage: Vec<Damage>,
    files: Vec<FuzzFile>,
    ack_each: bool,
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

/// CRC-32C of a frame in the file with CRC seed `seed` (its number, which goes
/// in first; `None` for a file of the previous format `SPF1`).
fn frame_crc(seed: Option<u64>, bytes: &[u8]) -> u32 {
    let mut d = CRC32.digest();
    if let Some(seq) = seed {
        d.update(&seq.to_le_bytes());
    }
    d.update(bytes);
    d.finalize()
}

/// A frame valid in the file of number `seq`.
fn frame(tag: u8, body: &[u8], seq: u64) -> Vec<u8> {
    let len = 4 + body.len() + 4;
    let l = (len as u16).to_le_bytes();
    let mut f = vec![tag, l[0], l[1], CRC8.checksum(&[tag, l[0], l[1]])];
    f.extend_from_slice(body);
    let c = frame_crc(Some(seq), &f);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

fn run_body(key: SensorKey, evt: bool, first_seq: u32, count: u16) -> Vec<u8> {
    let kind = if evt {
        RecordKind::Evt
    } else {
        RecordKind::Tsd
    };
    let mut h = vec![if evt { 2 } else { 1 }, key.source];
    h.extend_from_slice(&count.to_le_bytes());
    h.extend_from_slice(&key.id.to_le_bytes());
    h.extend_from_slice(&first_seq.to_le_bytes());
    if !evt {
        // Base time (u64) and interval (u32).
        h.extend_from_slice(&[0; 12]);
    }
    for i in 0..u32::from(count) {
        h.extend(record_bytes(key, kind, first_seq.wrapping_add(i)));
    }
    h
}

fn file_header(seq: u64, source: u8, bad_reserved: bool) -> Vec<u8> {
    let mut h = vec![0xFF; 20];
    h[..4].copy_from_slice(b"SPF2");
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12] = source;
    if bad_reserved {
        h[14] = 0;
    }
    let c = CRC32.checksum(&h[..16]);
    h[16..].copy_from_slice(&c.to_le_bytes());
    h
}

/// Every record, run and mark of every CRC-valid frame at any offset of `buf`.
#[derive(Default)]
struct Oracle {
    records: HashSet<(SensorKey, u32, Vec<u8>)>,
    seqs: HashSet<(SensorKey, u32)>,
    spread: HashMap<SensorKey, Vec<u32>>,
    marks: HashSet<(SensorKey, u32)>,
    nrecords: usize,
    nruns: usize,
}

fn crc_frame_at(buf: &[u8], off: usize, seq: Option<u64>) -> Option<(u8, usize)> {
    let h = buf.get(off..off + 4)?;
    let tag = h[0];
    let len = usize::from(u16::from_le_bytes([h[1], h[2]]));
    if (tag != 0xB5 && tag != 0xAC) || CRC8.checksum(&h[..3]) != h[3] || len < 8 {
        return None;
    }
    let f = buf.get(off..off + len)?;
    let c = u32::from_le_bytes(f[len - 4..].try_into().unwrap());
    (frame_crc(seq, &f[..len - 4]) == c).then_some((tag, len))
}

impl Oracle {
    /// Frames count only in a file with a valid header, checked with its number.
    fn scan(&mut self, buf: &[u8]) {
        let Some(seq) = header_seq(buf) else {
            return;
        };
        for off in 0..buf.len() {
            let Some((tag, len)) = crc_frame_at(buf, off, seq) else {
                continue;
            };
            let body = &buf[off + 4..off + len - 4];
            if tag == 0xAC {
                if body.len() >= 12 {
                    let k = SensorKey {
                        source: body[0],
                        id: u32::from_le_bytes(body[4..8].try_into().unwrap()),
                    };
                    self.marks
                        .insert((k, u32::from_le_bytes(body[8..12].try_into().unwrap())));
                }
            } else {
                self.runs(body);
            }
        }
    }

    fn runs(&mut self, body: &[u8]) {
        let mut p = 0;
        while p < body.len() {
            let (size, hl) = match body[p] {
                1 => (4, 24),
                2 => (8, 12),
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
            let v = self.spread.entry(key).or_default();
            v.push(first);
            v.push(first.wrapping_add(u32::from(count)));
            for k in 0..usize::from(count) {
                let s = first.wrapping_add(k as u32);
                self.records
                    .insert((key, s, b[hl + k * size..hl + (k + 1) * size].to_vec()));
                self.seqs.insert((key, s));
            }
            self.nrecords += usize::from(count);
            self.nruns += 1;
            p += hl + rl;
        }
    }

    fn ambiguous(&self, key: SensorKey) -> bool {
        self.spread.get(&key).is_some_and(|v| {
            v.iter().any(|&a| {
                v.iter()
                    .any(|&b| (a.wrapping_sub(b) as i32).unsigned_abs() >= 1 << 30)
            })
        })
    }
}

/// A frame as mount accepts it in a file (write size 1, no padding).
fn file_frame_ok(buf: &[u8], off: usize, seq: Option<u64>) -> Option<usize> {
    let (tag, len) = crc_frame_at(buf, off, seq)?;
    let body = &buf[off + 4..off + len - 4];
    if tag == 0xAC {
        return (len == 20 && body[1..4] == [0xFF; 3]).then_some(len);
    }
    let mut p = 0;
    let mut runs = 0;
    while p < body.len() {
        let (size, hl) = match body[p] {
            1 => (4, 24),
            2 => (8, 12),
            _ => return None,
        };
        if body.len() - p < hl {
            return None;
        }
        let count = usize::from(u16::from_le_bytes([body[p + 2], body[p + 3]]));
        if count == 0 || body.len() - p - hl < count * size {
            return None;
        }
        p += hl + count * size;
        runs += 1;
    }
    (runs > 0).then_some(len)
}

/// The CRC seed of a file with a valid header: its number (`SPF2`), or `None`
/// for the previous format (`SPF1`, read only).
fn header_seq(buf: &[u8]) -> Option<Option<u64>> {
    (buf.len() >= 20
        && (buf[..4] == *b"SPF2" || buf[..4] == *b"SPF1")
        && buf[13..16] == [0xFF; 3]
        && CRC32.checksum(&buf[..16]) == u32::from_le_bytes(buf[16..20].try_into().unwrap()))
    .then(|| (buf[..4] == *b"SPF2").then(|| u64::from_le_bytes(buf[4..12].try_into().unwrap())))
}

/// `<16 hex digits>.spl` with a number a store can reach (mount leaves other names alone).
fn is_data_name(n: &str) -> bool {
    n.strip_suffix(".spl").is_some_and(|s| {
        s.len() == 16 && u64::from_str_radix(s, 16).is_ok_and(|v| v <= u64::MAX - 0xFFFF)
    })
}

/// Files of the spool (every directory but `quarantine/`): (path, name).
fn files(root: &Path) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root) else {
        return v;
    };
    for d in dirs.flatten() {
        let dn = d.file_name().to_string_lossy().into_owned();
        if dn == "quarantine" || !d.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.path().is_file() {
                v.push((f.path(), f.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    v.sort();
    v
}

fn check_clean(root: &Path, file_size: u32) {
    for (p, n) in files(root) {
        assert!(!n.ends_with(".tmp"), "{} left after mount", p.display());
        if !is_data_name(&n) {
            continue;
        }
        let b = std::fs::read(&p).unwrap();
        // An empty spare, or a prefilled one (zeros, at most a file's size).
        if b.is_empty() || (b.len() <= file_size as usize && b.iter().all(|&x| x == 0)) {
            continue;
        }
        let Some(seq) = header_seq(&b) else {
            panic!("{}: bad header kept after mount", p.display());
        };
        let mut off = 20;
        while let Some(l) = file_frame_ok(&b, off, seq) {
            off += l;
        }
        // The tail (torn, or stale bytes of a reused file) holds no frame of this file.
        for q in off..b.len() {
            assert!(
                file_frame_ok(&b, q, seq).is_none(),
                "{}: valid frame at {q} after a bad one at {off} kept after mount",
                p.display()
            );
        }
    }
}

fn cfg(root: &Path, file_size: u16) -> FileConfig {
    let fs = 256 + u32::from(file_size) % 4096;
    let mut c = FileConfig::new(root);
    c.file_size = fs;
    c.disk_limit = u64::from(fs) * 6;
    c.free_space_reserve = 0;
    // Deterministic runs: no helper thread.
    c.background_spares = false;
    c
}

fn build(root: &Path, input: &Input) {
    let mut st = FileStorage::new(cfg(root, input.file_size)).unwrap();
    st.mount().unwrap();
    let max = st.max_batch_bytes();
    for op in input.build.iter().take(24) {
        match op {
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
                    let recs: Vec<u8> = (0..u32::from(count))
                        .flat_map(|i| record_bytes(k, kind, r.first_seq.wrapping_add(i)))
                        .collect();
                    bytes += recs.len() + if r.evt { 12 } else { 24 };
                    owned.push((
                        RunInfo {
                            key: k,
                            kind,
                            first_seq: r.first_seq,
                            count,
                            meta: RunMeta::default(),
                        },
                        recs,
                    ));
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
                st.append(&runs[..], |_| {}).expect("build append");
            }
            BuildOp::Ack(k, upto) => st.ack(key(*k), *upto, |_| {}).expect("build ack"),
            BuildOp::Evict => {
                st.evict_oldest(|_| {}).expect("build evict");
            }
        }
    }
}

fn damage(root: &Path, d: &[Damage]) {
    let fs = files(root);
    if fs.is_empty() {
        return;
    }
    for d in d.iter().take(8) {
        let pick = |i: u8| &fs[usize::from(i) % fs.len()].0;
        match d {
            Damage::FlipBit(i, o, b) => {
                let p = pick(*i);
                let Ok(mut v) = std::fs::read(p) else {
                    continue;
                };
                if v.is_empty() {
                    continue;
                }
                let n = v.len();
                v[usize::from(*o) % n] ^= 1 << (b % 8);
                std::fs::write(p, v).unwrap();
            }
            Damage::Truncate(i, l) => {
                let p = pick(*i);
                let Ok(mut v) = std::fs::read(p) else {
                    continue;
                };
                v.truncate(usize::from(*l) % (v.len() + 1));
                std::fs::write(p, v).unwrap();
            }
            Damage::Append(i, bytes) => {
                let p = pick(*i);
                let Ok(mut v) = std::fs::read(p) else {
                    continue;
                };
                v.extend_from_slice(&bytes[..bytes.len().min(512)]);
                std::fs::write(p, v).unwrap();
            }
            Damage::Remove(i) => {
                let _ = std::fs::remove_file(pick(*i));
            }
        }
    }
}

fn write_fuzz_files(root: &Path, input: &Input) {
    for f in input.files.iter().take(8) {
        let dir = root.join(DIRS[usize::from(f.dir) % DIRS.len()]);
        std::fs::create_dir_all(&dir).unwrap();
        let name = match f.name {
            Name::Seq(s) => format!("{s:016x}.spl"),
            Name::Tmp(s) => format!("{s:016x}.tmp"),
            Name::Junk(j) => format!("junk{j}"),
        };
        let mut bytes = Vec::new();
        // Frames are made valid for the file number of the last header so far.
        let mut cur = 0u64;
        for p in f.parts.iter().take(16) {
            match p {
                Part::Header {
                    seq,
                    source,
                    bad_reserved,
                } => {
                    cur = *seq;
                    bytes.extend(file_header(*seq, *source, *bad_reserved));
                }
                Part::RunFrame {
                    key: k,
                    evt,
                    first_seq,
                    count,
                } => bytes.extend(frame(
                    0xB5,
                    &run_body(key(*k), *evt, *first_seq, u16::from(count % 32) + 1),
                    cur,
                )),
                Part::Ack { key: k, upto } => {
                    let k = key(*k);
                    let mut b = vec![k.source, 0xFF, 0xFF, 0xFF];
                    b.extend_from_slice(&k.id.to_le_bytes());
                    b.extend_from_slice(&upto.to_le_bytes());
                    bytes.extend(frame(0xAC, &b, cur));
                }
                Part::Frame { tag, body } => {
                    let t = if tag % 2 == 0 { 0xB5 } else { 0xAC };
                    bytes.extend(frame(t, &body[..body.len().min(1024)], cur));
                }
                Part::Raw(r) => bytes.extend_from_slice(&r[..r.len().min(1024)]),
            }
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

const fn after_or_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

fn exercise(root: &Path, input: &Input) {
    build(root, input);
    damage(root, &input.damage);
    write_fuzz_files(root, input);
    let mut oracle = Oracle::default();
    for (p, _) in files(root) {
        oracle.scan(&std::fs::read(p).unwrap());
    }

    let mut st = FileStorage::new(cfg(root, input.file_size)).unwrap();
    st.mount().expect("mount");
    check_clean(root, cfg(root, input.file_size).file_size);
    let mut entries = Vec::new();
    st.recover(|e| entries.push(e)).expect("recover");
    let mut start: BTreeMap<SensorKey, u32> = BTreeMap::new();
    for e in &entries {
        match *e {
            LogEntry::Run(r) => {
                assert!(r.count > 0);
                for i in 0..u32::from(r.count) {
                    let s = r.first_seq.wrapping_add(i);
                    assert!(
                        oracle.seqs.contains(&(r.key, s)),
                        "recover invented record {:?} seq {s} in {r:?}",
                        r.key
                    );
                }
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
    let mut last_ack: BTreeMap<SensorKey, u32> = BTreeMap::new();
    let limit = oracle.nrecords + oracle.nruns + 4;
    for (&k, &from) in &start {
        let amb = oracle.ambiguous(k);
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
            let Some(r) = st.read(k, seq, &mut out).expect("read") else {
                break;
            };
            let size = r.run.kind.record_size();
            assert_eq!(r.run.key, k);
            assert!(r.count > 0 && r.count * size <= out.len(), "{r:?}");
            assert!(
                after_or_eq(r.first, seq),
                "read went backwards: {seq} -> {r:?}"
            );
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
            if input.ack_each {
                match st.ack(k, seq, |_| evicted += 1) {
                    Ok(()) => {
                        last_ack.insert(k, seq);
                    }
                    Err(_) if st.last_error() == Some(FileError::NumbersExhausted) => {}
                    Err(e) => panic!("ack: {e:?}"),
                }
            }
        }
        if !input.ack_each && seq != from {
            match st.ack(k, seq, |_| evicted += 1) {
                Ok(()) => {
                    last_ack.insert(k, seq);
                }
                // A forged file numbered near the top of the range leaves no
                // number for the file the mark needs: refused, nothing changed.
                Err(_) if st.last_error() == Some(FileError::NumbersExhausted) => {}
                Err(e) => panic!("ack: {e:?}"),
            }
        }
    }
    let evicted_files = st.file_stats().files_evicted;
    drop(st);

    let mut st = FileStorage::new(cfg(root, input.file_size)).unwrap();
    st.mount().expect("remount");
    check_clean(root, cfg(root, input.file_size).file_size);
    let mut marks: BTreeMap<SensorKey, u32> = BTreeMap::new();
    st.recover(|e| {
        if let LogEntry::Ack { key, upto } = e {
            marks.insert(key, upto);
        }
    })
    .expect("recover after remount");
    if evicted == 0 && evicted_files == 0 {
        for (k, upto) in &last_ack {
            assert_eq!(marks.get(k), Some(upto), "mark of {k:?} lost after remount");
        }
    }
}

fuzz_target!(|input: Input| {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let root = base.join(format!(
        "spool-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // Remove the directory even when a check panics (libFuzzer reports the panic).
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _c = Cleanup(root.clone());
    exercise(&root, &input);
});
