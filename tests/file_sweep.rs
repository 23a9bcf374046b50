//! Power-cut sweep of the spool over `FileStorage` (issue "Crash truth on
//! Linux files", item 2): the workload of the issue's reproduction (6
//! sensors, TSD and EVT, on 3 sources; a tiny RAM pool; 512-byte files under a
//! 3,072-byte cap; random writes, reads, partial and full acknowledgements,
//! reverts, flushes and shutdown flushes) on [`MemFs`], the crash model of
//! the fault layer in memory: unsynced file data lost, torn at 512 bytes or
//! kept; creations, renames and unlinks durable only after an `fsync` of their
//! directory, renames atomic (journaling) or by halves (independent entries).
//!
//! A crash image is taken before every filesystem operation of the run; each
//! is mounted by a new spool (with an image before every operation of that
//! mount too: nested cuts) and checked against what the spool had reported
//! before the cut:
//! - mount succeeds and `check()` passes;
//! - no record acknowledged before the cut comes back;
//! - every record durable before the cut (below `durable_upto`), neither
//!   acknowledged nor counted lost, comes back;
//! - every record returned is genuine (value, TSD time), in order, once, and
//!   was written;
//! - the files never exceed the cap;
//! - a shutdown flush that reports 101 left every record durable.
//!
//! Prints the number of cut points checked. `SPOOL_SWEEP_SCALE` multiplies
//! the runs (scripts/torture.sh); `SWEEP_SEED=<seed>` runs one seed only and
//! `MEMFS_TRACE=1` prints every step and file system operation (to follow a
//! failure).

mod file_common;

use file_common::mem::{MemFs, MemState};
use file_common::{DirModel, Rng};
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::Spool;
use sensor_spool::storage::FileStorage;
use sensor_spool::storage::file::FileConfig;
use std::path::Path;

const SECTORS: usize = 12;
type P = Pool<Tier<32, SECTORS, 1>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type S = Spool<P, 6, SECTORS, 4, FileStorage<MemFs>, 6>;

const ROOT: &str = "/spool";
const CAP: u64 = 3072;
const T0: u64 = 1_700_000_000_000;
const RATE: u32 = 1000;

/// (key, TSD?) of the six sensors: a TSD and an EVT sensor per source.
const SENSORS: [(SensorKey, bool); 6] = [
    (SensorKey { source: 0, id: 1 }, true),
    (SensorKey { source: 0, id: 2 }, false),
    (SensorKey { source: 1, id: 3 }, true),
    (SensorKey { source: 1, id: 4 }, false),
    (SensorKey { source: 2, id: 5 }, true),
    (SensorKey { source: 2, id: 6 }, false),
];

fn cfg() -> FileConfig {
    let mut c = FileConfig::new(ROOT);
    c.file_size = 512;
    c.disk_limit = CAP;
    c.free_space_reserve = 0;
    c.background_spares = false;
    c
}

fn value(j: usize, seq: u32) -> u32 {
    let mut x = seq.wrapping_mul(0x85EB_CA6B) ^ (j as u32).wrapping_mul(0x9E37_79B9);
    x ^= x >> 15;
    x.wrapping_mul(0xC2B2_AE35)
}

fn time(j: usize, seq: u32) -> u64 {
    if SENSORS[j].1 {
        T0 + seq as u64 * RATE as u64
    } else {
        T0 + seq as u64 * 7000
    }
}

/// A spool on `fs`, mounted: the mount must succeed.
fn spool(fs: &MemFs) -> S {
    spool_with(fs, cfg())
}

fn spool_with(fs: &MemFs, cfg: FileConfig) -> S {
    let mut s = Spool::new(
        P::new(),
        FileStorage::with_fs(fs.clone(), cfg).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    for (k, tsd) in SENSORS {
        s.register(k, if tsd { RATE } else { 0 }).unwrap();
    }
    s.recover_storage().expect("mount failed");
    s
}

/// What the spool had reported, per sensor, after a call.
#[derive(Clone, Copy, Debug, Default)]
struct Snap {
    /// Records before this were acknowledged (`ack` returned `Ok`).
    acked: [u32; 6],
    /// Records before this were acknowledged or counted lost.
    kept_lo: [u32; 6],
    /// `durable_upto`.
    durable: [u32; 6],
    /// Next sequence number.
    written: [u32; 6],
}

struct Run {
    s: S,
    /// Records handed out and not acknowledged, in order.
    handed: [Vec<u32>; 6],
    acked: [u32; 6],
    rng: Rng,
    /// Acknowledgements that returned `Ok`, shutdown flushes that reached 101.
    acks: u64,
    flushed_101: u64,
}

/// What the runs exercised (so a sweep that stopped reaching the cap shows).
#[derive(Debug, Default)]
struct Exercised {
    cuts: u64,
    ops: u64,
    acks: u64,
    flushed_101: u64,
    evicted_files: u64,
    reused_files: u64,
    lost_records: u64,
    quarantined: u64,
}

impl Run {
    fn snap(&self) -> Snap {
        let mut n = Snap {
            acked: self.acked,
            ..Snap::default()
        };
        for (j, (key, _)) in SENSORS.iter().enumerate() {
            let h = self.s.lookup(*key).unwrap();
            let st = self.s.sensor_stats(h).unwrap();
            n.written[j] = st.next_seq;
            n.kept_lo[j] = st.next_seq - st.count;
            n.durable[j] = self.s.durable_upto(h).unwrap();
        }
        n
    }

    /// One random call of the workload.
    fn step(&mut self) {
        let j = self.rng.below(6) as usize;
        let h = self.s.lookup(SENSORS[j].0).unwrap();
        match self.rng.below(100) {
            0..45 => {
                for _ in 0..1 + self.rng.below(4) {
                    let seq = self.s.sensor_stats(h).unwrap().next_seq;
                    // A refused write (RAM full, storage refusing) drops by policy.
                    let _ = self.s.write(h, value(j, seq), time(j, seq));
                }
            }
            45..60 => {
                for _ in 0..1 + self.rng.below(6) {
                    match self.s.read(h) {
                        Ok(r) => {
                            assert_eq!(r.value, value(j, r.seq), "read: record {} of {j}", r.seq);
                            self.handed[j].push(r.seq);
                        }
                        Err(_) => break,
                    }
                }
            }
            60..78 => {
                let len = self.handed[j].len();
                if len == 0 {
                    return;
                }
                let n = if self.rng.below(2) == 0 {
                    len
                } else {
                    1 + self.rng.below(len as u64) as usize
                };
                if self.s.ack(h, n as u32).is_ok() {
                    self.acks += 1;
                    self.acked[j] = self.handed[j][n - 1] + 1;
                    self.handed[j].drain(..n);
                } else {
                    self.s.revert(h).unwrap();
                    self.handed[j].clear();
                }
            }
            78..86 => {
                self.s.revert(h).unwrap();
                self.handed[j].clear();
            }
            86..95 => {
                let _ = self.s.flush();
            }
            _ => {
                // Shutdown flush: 101 means every record is durable.
                if self.s.flush_all().is_ok() {
                    assert_eq!(self.s.flush_progress(), 101);
                    let n = self.snap();
                    assert_eq!(
                        n.durable, n.written,
                        "flush reported 101 with records in RAM"
                    );
                    self.flushed_101 += 1;
                }
                if self.rng.below(2) == 0 {
                    self.s.cancel_flush();
                }
            }
        }
    }
}

/// Mounts a crash image and checks it against `before` (reported before the
/// call during which the cut fell) and `after` (reported once that call
/// returned). Returns a description of the first failure.
fn check_image(img: MemState, before: &Snap, after: &Snap) -> Result<(), String> {
    let fs = MemFs::from_state(img);
    // A larger disk limit than the run's: the checker's acknowledgements
    // (needed to read past records evicted right after pending ones) must
    // not evict what is still to be checked. Mount does not evict, so the
    // records found are the same.
    let mut c = cfg();
    c.disk_limit = 1 << 20;
    let mut s = spool_with(&fs, c);
    s.check().map_err(|e| format!("check after mount: {e:?}"))?;
    let bytes = fs.state().bytes_under(Path::new(ROOT), "quarantine");
    if bytes > CAP && std::env::var("SWEEP_NOCAP").is_err() {
        let list: Vec<(std::path::PathBuf, usize)> = fs
            .state()
            .files_under(Path::new(ROOT))
            .into_iter()
            .map(|(p, d)| (p, d.len()))
            .collect();
        return Err(format!(
            "{bytes} bytes on disk over the cap {CAP}: {list:?}"
        ));
    }
    for (j, (key, tsd)) in SENSORS.iter().enumerate() {
        let h = s.lookup(*key).unwrap();
        let mut got: Vec<u32> = Vec::new();
        // Reads stop at records missing (evicted by the call the cut
        // interrupted) right after pending ones until those are
        // acknowledged: read in rounds, acknowledging each.
        loop {
            let round = got.len();
            while let Ok(r) = s.read(h) {
                if r.value != value(j, r.seq) || (*tsd && r.time_ms != time(j, r.seq)) {
                    return Err(format!("{key:?}: record {} corrupted: {r:?}", r.seq));
                }
                if got.last().is_some_and(|&l| r.seq <= l) {
                    return Err(format!(
                        "{key:?}: {} after {:?} (order / duplicate)",
                        r.seq,
                        got.last()
                    ));
                }
                if r.seq < before.acked[j] {
                    return Err(format!(
                        "{key:?}: acknowledged record {} back (acknowledged up to {})",
                        r.seq, before.acked[j]
                    ));
                }
                if r.seq >= after.written[j] {
                    return Err(format!("{key:?}: invented record {}", r.seq));
                }
                got.push(r.seq);
                if got.len() > 100_000 {
                    return Err(format!("{key:?}: endless reads"));
                }
            }
            if got.len() == round {
                break;
            }
            let n = (got.len() - round) as u32 + s.evicted_in_flight(h).unwrap();
            s.ack(h, n)
                .map_err(|e| format!("{key:?}: acknowledging {n} after the cut: {e:?}"))?;
        }
        let lo = before.acked[j].max(after.kept_lo[j]);
        for q in lo..before.durable[j] {
            if got.binary_search(&q).is_err() {
                return Err(format!(
                    "{key:?}: durable record {q} lost (durable up to {}, acked {}, kept from {}); got {got:?}",
                    before.durable[j], before.acked[j], after.kept_lo[j]
                ));
            }
        }
    }
    Ok(())
}

/// One run: `steps` calls with an image before every operation, each
/// image checked with nested cuts in its mount. Returns the cut points checked.
fn sweep_run(model: DirModel, seed: u64, steps: u32, nested_every: u64, ex: &mut Exercised) {
    let fs = MemFs::new(model);
    fs.start_imaging(seed);
    let mut run = Run {
        s: spool(&fs),
        handed: Default::default(),
        acked: [0; 6],
        rng: Rng(seed.wrapping_mul(0x2545_F491) | 1),
        acks: 0,
        flushed_101: 0,
    };
    let mut cuts = 0u64;
    let mut before = Snap::default();
    for step in 0..steps {
        if std::env::var_os("MEMFS_TRACE").is_some() {
            eprintln!("step {step}");
        }
        run.step();
        let after = run.snap();
        if std::env::var_os("MEMFS_TRACE").is_some() {
            eprintln!("  after: {after:?}");
        }
        let live = fs.state().bytes_under(Path::new(ROOT), "quarantine");
        assert!(
            live <= CAP,
            "{model:?} seed {seed} step {step}: {live} bytes over the cap"
        );
        for (op, img) in fs.take_images() {
            let nested = op % nested_every == 0;
            let inner = if nested {
                let f2 = MemFs::from_state(img.crash_image(&mut Rng(op | 1)));
                f2.start_imaging(op ^ seed);
                let s2 = spool(&f2);
                drop(s2);
                f2.stop_imaging()
            } else {
                Vec::new()
            };
            if let Err(e) = check_image(img, &before, &after) {
                panic!("{model:?} seed {seed} step {step}, cut before operation {op}: {e}");
            }
            cuts += 1;
            for (op2, img2) in inner {
                if let Err(e) = check_image(img2, &before, &after) {
                    panic!(
                        "{model:?} seed {seed} step {step}, cut before operation {op}, then in mount before operation {op2}: {e}"
                    );
                }
                cuts += 1;
            }
        }
        before = after;
    }
    let f = run.s.storage().file_stats();
    ex.cuts += cuts;
    ex.ops += fs.ops();
    ex.acks += run.acks;
    ex.flushed_101 += run.flushed_101;
    ex.evicted_files += f.files_evicted as u64;
    ex.reused_files += f.files_reused as u64;
    ex.lost_records += run.s.spill_stats().lost as u64;
    ex.quarantined += f.quarantined as u64;
}

fn scale() -> u64 {
    std::env::var("SPOOL_SWEEP_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn sweep(model: DirModel, name: &str) {
    let (runs, steps) = if cfg!(debug_assertions) {
        (2, 300)
    } else {
        (16, 1500)
    };
    let runs = runs * scale();
    let start = std::time::Instant::now();
    let mut ex = Exercised::default();
    let only: Option<u64> = std::env::var("SWEEP_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    for seed in 0..runs {
        if only.is_some_and(|o| o != seed * 7919 + 1) {
            continue;
        }
        sweep_run(model, seed * 7919 + 1, steps, 1, &mut ex);
    }
    eprintln!(
        "file power-cut sweep ({name}): {} cut points checked ({runs} runs of {steps} calls, {} filesystem operations, nested cuts in mount) in {:.1} s",
        ex.cuts,
        ex.ops,
        start.elapsed().as_secs_f64()
    );
    eprintln!("  exercised: {ex:?}");
    assert!(ex.evicted_files > 0 && ex.reused_files > 0 && ex.flushed_101 > 0 && ex.acks > 0);
}

#[test]
fn power_cuts_journaling() {
    sweep(DirModel::Atomic, "journaling, renames atomic");
}

#[test]
fn power_cuts_independent_entries() {
    sweep(DirModel::Independent, "independent directory entries");
}
