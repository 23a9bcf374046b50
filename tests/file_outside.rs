//! Faults outside the library (issue "Crash truth on Linux files", item 3),
//! at the spool over `FileStorage` on a real directory (through the fault
//! layer), each with the helper thread that makes spare files on and off:
//! the spool directory deleted or replaced, made read-only (as root `chmod`
//! does not stop writes, so `EACCES` / `EROFS` are injected through the
//! `FileSystem` trait), a data file truncated or replaced by another, the disk
//! full, `ENOSPC` on every write.
//!
//! For each: what the library reports (the call's error, `last_error`, the
//! counters), what it keeps (records stay in RAM while nothing can be
//! written), what it counts (every record written is delivered once or
//! counted lost, counts drain to zero), that a shutdown flush reports 101
//! only when every record is durable (checked by a crash of the fault layer
//! and a remount right after it: every record below `durable_upto` that was
//! neither acknowledged nor counted lost comes back, nothing acknowledged
//! does), and that once the fault is gone the store works again.

mod file_common;

use file_common::{FaultFs, Rng, TempDir, small_cfg};
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, Spool};
use sensor_spool::storage::FileStorage;
use sensor_spool::storage::file::{FileConfig, FileError, FileStats, source_dir_name};
use std::path::{Path, PathBuf};

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type S = Spool<P, 4, SECTORS, 4, FileStorage<FaultFs>, 4>;

const KEYS: [SensorKey; 3] = [
    SensorKey { source: 0, id: 1 },
    SensorKey { source: 1, id: 2 },
    SensorKey { source: 2, id: 9 },
];
const RATE: u32 = 1000;
const T0: u64 = 1_700_000_000_000;

fn value(j: usize, seq: u32) -> u32 {
    seq.wrapping_mul(2_654_435_761) ^ (j as u32 + 1)
}

fn spool(ffs: &FaultFs, cfg: &FileConfig) -> S {
    let mut s = Spool::new(
        P::new(),
        FileStorage::with_fs(ffs.clone(), cfg.clone()).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    s.register(KEYS[0], RATE).unwrap();
    s.register(KEYS[1], 0).unwrap();
    s.register(KEYS[2], 0).unwrap();
    s.recover_storage().expect("mount");
    s
}

struct T {
    _dir: TempDir,
    root: PathBuf,
    ffs: FaultFs,
    cfg: FileConfig,
    s: S,
    /// Per sensor: every sequence number delivered and acknowledged.
    delivered: [Vec<u32>; 3],
    acked: [u32; 3],
    /// Records counted lost by spools before the last remount.
    lost_before: [u32; 3],
    /// Numbers a restart skipped (sequence numbers are never reused: those
    /// of records lost with RAM in a cut, and reserved ones never written).
    skipped: [u32; 3],
}

impl T {
    fn new(background: bool) -> T {
        let d = TempDir::new("outside");
        let root = d.path().join("spool");
        let mut cfg = small_cfg(&root);
        cfg.file_size = 1024;
        cfg.background_spares = background;
        let ffs = FaultFs::default();
        let s = spool(&ffs, &cfg);
        T {
            _dir: d,
            root,
            ffs,
            cfg,
            s,
            delivered: Default::default(),
            acked: [0; 3],
            lost_before: [0; 3],
            skipped: [0; 3],
        }
    }

    /// `n` records per sensor (a refused write is dropped by policy and
    /// counted).
    fn write(&mut self, n: u32) {
        for _ in 0..n {
            for (j, k) in KEYS.iter().enumerate() {
                let h = self.s.lookup(*k).unwrap();
                let seq = self.s.sensor_stats(h).unwrap().next_seq;
                let t = if j == 0 {
                    T0 + seq as u64 * RATE as u64
                } else {
                    T0 + seq as u64 * 3000
                };
                let _ = self.s.write(h, value(j, seq), t);
            }
        }
    }

    /// Reads up to `n` records per sensor and acknowledges them (reverts if
    /// the acknowledgement fails). Checks every record.
    fn upload(&mut self, n: u32) {
        for (j, k) in KEYS.iter().enumerate() {
            let h = self.s.lookup(*k).unwrap();
            let mut got = Vec::new();
            for _ in 0..n {
                match self.s.read(h) {
                    Ok(r) => {
                        assert_eq!(r.value, value(j, r.seq), "{k:?} record {}", r.seq);
                        assert!(
                            self.delivered[j].last().is_none_or(|&l| r.seq > l)
                                && got.last().is_none_or(|&l| r.seq > l),
                            "{k:?}: {} out of order or again",
                            r.seq
                        );
                        got.push(r.seq);
                    }
                    Err(Error::NoData) => break,
                    Err(e) => panic!("{k:?}: read failed: {e:?}"),
                }
            }
            let gone = self.s.evicted_in_flight(h).unwrap();
            if got.is_empty() && gone == 0 {
                continue;
            }
            if self.s.ack(h, got.len() as u32 + gone).is_ok() {
                if let Some(&l) = got.last() {
                    self.acked[j] = l + 1;
                }
                self.delivered[j].extend(got);
            } else {
                self.s.revert(h).unwrap();
            }
        }
    }

    /// Uploads until nothing more comes (a read stops at records missing
    /// right after pending ones until those are acknowledged: rounds).
    fn upload_all(&mut self) {
        loop {
            let before: usize = self.delivered.iter().map(Vec::len).sum();
            self.upload(u32::MAX);
            if self.delivered.iter().map(Vec::len).sum::<usize>() == before {
                break;
            }
        }
    }

    /// A shutdown flush. If it reports 101, every record is durable.
    fn shutdown_flush(&mut self) -> Result<(), Error> {
        let r = self.s.flush_all();
        if r.is_ok() {
            assert_eq!(self.s.flush_progress(), 101);
            for k in KEYS {
                let h = self.s.lookup(k).unwrap();
                let st = self.s.sensor_stats(h).unwrap();
                assert_eq!(
                    self.s.durable_upto(h).unwrap(),
                    st.next_seq,
                    "{k:?}: 101 with records not durable"
                );
            }
        } else {
            assert!(self.s.flush_progress() <= 100, "101 after a failed flush");
        }
        self.s.cancel_flush();
        r
    }

    fn fstats(&self) -> FileStats {
        self.s.storage().file_stats()
    }

    /// Power cut (fault layer: unsynced data and directory entries may be
    /// lost) and a remount: every record durable before the cut (below
    /// `durable_upto`, neither acknowledged nor counted lost) comes back,
    /// genuine and in order; nothing acknowledged does.
    fn crash_and_check(&mut self, seed: u64) {
        let mut lo = [0u32; 3];
        let mut durable = [0u32; 3];
        let mut written = [0u32; 3];
        let mut lost = [0u32; 3];
        for (j, k) in KEYS.iter().enumerate() {
            let h = self.s.lookup(*k).unwrap();
            let st = self.s.sensor_stats(h).unwrap();
            lo[j] = self.acked[j].max(st.next_seq - st.count);
            durable[j] = self.s.durable_upto(h).unwrap();
            written[j] = st.next_seq;
            self.lost_before[j] += st.lost as u32;
            lost[j] = st.lost as u32;
        }
        let s = std::mem::replace(&mut self.s, spool(&FaultFs::default(), &self.cfg));
        drop(s);
        {
            let mut p = self.ffs.plan.lock().unwrap();
            p.write = None;
            p.sync = None;
            p.create = None;
            p.readonly = None;
            p.available = None;
        }
        self.ffs.crash(&mut Rng(seed));
        self.s = spool(&self.ffs, &self.cfg);
        for (j, k) in KEYS.iter().enumerate() {
            let h = self.s.lookup(*k).unwrap();
            let mut got = Vec::new();
            while let Ok(r) = self.s.read(h) {
                assert_eq!(
                    r.value,
                    value(j, r.seq),
                    "{k:?} record {} after the cut",
                    r.seq
                );
                assert!(
                    got.last().is_none_or(|&l| r.seq > l),
                    "{k:?}: order after the cut"
                );
                assert!(
                    r.seq >= self.acked[j],
                    "{k:?}: acknowledged record {} back",
                    r.seq
                );
                assert!(r.seq < written[j], "{k:?}: invented record {}", r.seq);
                got.push(r.seq);
            }
            let top = got.last().map_or(lo[j], |&l| l + 1).max(lo[j]);
            let next = self.s.sensor_stats(h).unwrap().next_seq;
            assert!(
                next >= written[j],
                "{k:?}: number {next} reused after the cut"
            );
            self.skipped[j] += next - top;
            for q in lo[j]..durable[j] {
                assert!(
                    got.binary_search(&q).is_ok(),
                    "{k:?}: durable record {q} lost in the cut (durable up to {}, {} counted lost)",
                    durable[j],
                    lost[j]
                );
            }
            self.s.revert(h).unwrap();
        }
    }

    /// (Debugging) the records durable per the spool are on disk, as a
    /// mount of a copy of the tree finds them.
    fn check_disk(&mut self, tag: &str) {
        use sensor_spool::storage::Storage;
        let copy = self.root.with_extension(format!("copy{tag}"));
        file_common::copy_tree(&self.root, &copy);
        let mut st = FileStorage::new(small_cfg(&copy)).unwrap();
        st.mount().unwrap();
        let r = file_common::recover_all(&mut st);
        for (j, k) in KEYS.iter().enumerate() {
            let h = self.s.lookup(*k).unwrap();
            let stt = self.s.sensor_stats(h).unwrap();
            let lo = self.acked[j].max(stt.next_seq - stt.count);
            let durable = self.s.durable_upto(h).unwrap();
            let runs: Vec<(u32, u32)> = r
                .runs
                .get(k)
                .map(|v| v.iter().map(|i| (i.first_seq, i.end_seq())).collect())
                .unwrap_or_default();
            for q in lo..durable {
                assert!(
                    runs.iter().any(|&(a, b)| a <= q && q < b),
                    "{tag}: {k:?}: record {q} below durable_upto {durable} not on disk: {runs:?}"
                );
            }
        }
    }

    /// Every record written is delivered once or counted lost; the counts
    /// drain to zero. Returns the records counted lost.
    fn drain_and_count(&mut self) -> u32 {
        self.upload_all();
        let mut lost = 0;
        for (j, k) in KEYS.iter().enumerate() {
            let h = self.s.lookup(*k).unwrap();
            let st = self.s.sensor_stats(h).unwrap();
            assert_eq!(st.count, 0, "{k:?}: counts drain: {st:?}");
            assert_eq!(
                self.delivered[j].len() as u32
                    + self.lost_before[j]
                    + self.skipped[j]
                    + st.lost as u32,
                st.next_seq,
                "{k:?}: every record delivered or counted lost"
            );
            lost += st.lost as u32;
        }
        assert_eq!(self.s.check(), Ok(()));
        lost
    }
}

/// The scenario's steps: the fault, the assertions while it lasts, and
/// whether it goes away (a read-only or full filesystem does; a deleted
/// directory or a damaged file is made good by the store itself).
struct Case {
    name: &'static str,
    fault: fn(&mut T),
    during: fn(&mut T, Result<(), Error>),
    clear: fn(&mut T),
    /// The fault destroys stored records (they cannot stay durable).
    damages: bool,
}

fn data_files(root: &Path, source: u8) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(source_dir_name(source)))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"SPF2"))
        .collect();
    v.sort();
    v
}

fn nothing(_: &mut T) {}

/// `rm -rf`, retried while the helper thread makes spares in it.
fn rm_rf(p: &Path) {
    for _ in 0..1000 {
        if std::fs::remove_dir_all(p).is_ok() {
            return;
        }
    }
    panic!("cannot remove {}", p.display());
}

/// While nothing can be written: the flush fails with the error of the
/// cause, no record goes anywhere (all stay in RAM), no 101.
fn refused(t: &mut T, r: Result<(), Error>, want: Error) {
    assert_eq!(r, Err(want), "shutdown flush while the fault lasts");
    assert!(t.s.spill_stats().errors > 0);
    for k in KEYS {
        let h = t.s.lookup(k).unwrap();
        let st = t.s.sensor_stats(h).unwrap();
        assert!(st.in_ram > 0, "{k:?}: records kept in RAM: {st:?}");
    }
}

fn run(case: &Case, background: bool) -> u32 {
    let mut t = T::new(background);
    t.write(300);
    t.upload(100);
    assert!(t.s.spill_stats().flushed > 0);
    (case.fault)(&mut t);
    // Few records while the fault lasts: RAM must not overflow (records the
    // policy drops right after those in storage are counted lost only when
    // reading reaches the gap, so a reboot in between would hide them).
    t.write(5);
    t.upload(10);
    let r = t.shutdown_flush();
    (case.during)(&mut t, r);
    if !case.damages {
        t.check_disk("while the fault lasts");
    }
    (case.clear)(&mut t);
    t.write(40);
    if case.damages {
        // Reading reaches the damage: what is gone is counted lost.
        t.upload_all();
    }
    t.check_disk("after the fault");
    t.upload(10);
    assert_eq!(
        t.shutdown_flush(),
        Ok(()),
        "{}: the store works again once the fault is gone",
        case.name
    );
    t.crash_and_check(7);
    let lost = t.drain_and_count() + t.lost_before.iter().sum::<u32>();
    eprintln!(
        "{} (helper thread {}): {lost} records counted lost",
        case.name,
        if background { "on" } else { "off" }
    );
    lost
}

const CASES: &[Case] = &[
    Case {
        name: "spool directory deleted",
        fault: |t| rm_rf(&t.root),
        during: |t, r| {
            assert_eq!(
                r,
                Ok(()),
                "the tree is made again, the flush goes on: {:?} {:?}",
                t.s.storage().last_error(),
                t.fstats()
            );
            let f = t.fstats();
            assert!(f.files_vanished > 0, "{f:?}");
            assert!(t.s.spill_stats().lost > 0, "vanished records counted lost");
        },
        clear: nothing,
        damages: false,
    },
    Case {
        name: "spool directory replaced",
        fault: |t| {
            let away = t.root.with_extension("old");
            // (The helper thread may be making spares in it.)
            std::fs::rename(&t.root, &away).unwrap();
            std::fs::create_dir(&t.root).unwrap();
        },
        during: |t, r| {
            assert_eq!(r, Ok(()), "the tree is made again, the flush goes on");
            let f = t.fstats();
            assert!(f.files_vanished > 0, "{f:?}");
            assert!(t.root.join(source_dir_name(0)).is_dir());
        },
        clear: nothing,
        damages: false,
    },
    Case {
        name: "directory read-only (EACCES)",
        fault: |t| {
            t.ffs.plan.lock().unwrap().readonly = Some((13, false));
            // Open files still take frames, spares made earlier too: write
            // until a flush needs a new file.
            let mut n = 0;
            while t.s.spill_stats().errors == 0 && n < 5000 {
                t.write(1);
                n += 1;
                if std::env::var("DEBUG_CUT").is_ok() {
                    t.check_disk(&format!("w{n}"));
                }
            }
            assert!(t.s.spill_stats().errors > 0, "no flush refused");
        },
        during: |t, r| refused(t, r, Error::Storage),
        clear: |t| t.ffs.plan.lock().unwrap().readonly = None,
        damages: false,
    },
    Case {
        name: "filesystem read-only (EROFS)",
        fault: |t| t.ffs.plan.lock().unwrap().readonly = Some((30, true)),
        during: |t, r| {
            refused(t, r, Error::Storage);
            assert!(
                matches!(
                    t.s.storage().last_error(),
                    Some(FileError::Io {
                        errno: Some(30),
                        ..
                    })
                ),
                "{:?}",
                t.s.storage().last_error()
            );
        },
        clear: |t| t.ffs.plan.lock().unwrap().readonly = None,
        damages: false,
    },
    Case {
        name: "disk full (statvfs)",
        fault: |t| t.ffs.plan.lock().unwrap().available = Some(0),
        during: |t, r| {
            // The current files may still take frames; the flush fails once a
            // new file is needed.
            eprintln!("  disk full: the shutdown flush while it lasts: {r:?}");
            if r.is_err() {
                refused(t, r, Error::NoSpace);
                let f = t.fstats();
                assert!(f.space_refusals > 0 && f.low_space, "{f:?}");
                assert!(matches!(
                    t.s.storage().last_error(),
                    Some(FileError::LowSpace { .. })
                ));
            }
        },
        clear: |t| t.ffs.plan.lock().unwrap().available = None,
        damages: false,
    },
    Case {
        name: "ENOSPC on every write",
        fault: |t| {
            t.ffs.plan.lock().unwrap().write = Some(file_common::Fault {
                after: 0,
                errno: 28,
                short: false,
                sticky: true,
            })
        },
        during: |t, r| refused(t, r, Error::NoSpace),
        clear: |t| t.ffs.plan.lock().unwrap().write = None,
        damages: false,
    },
    Case {
        name: "data file truncated",
        fault: |t| {
            let f = data_files(&t.root, 0);
            let p = &f[f.len() / 2];
            let len = std::fs::metadata(p).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            file.set_len(len / 2).unwrap();
        },
        during: |_, r| assert_eq!(r, Ok(())),
        clear: nothing,
        damages: true,
    },
    Case {
        name: "data file replaced by another",
        fault: |t| {
            let f = data_files(&t.root, 0);
            let other = data_files(&t.root, 1);
            let tmp = t.root.join("x.tmp");
            std::fs::copy(&other[0], &tmp).unwrap();
            std::fs::rename(&tmp, &f[f.len() / 2]).unwrap();
        },
        during: |_, r| assert_eq!(r, Ok(())),
        clear: nothing,
        damages: true,
    },
];

fn all(background: bool) {
    let mut n = 0;
    for c in CASES {
        run(c, background);
        n += 1;
    }
    eprintln!("faults outside the library: {n} cases");
}

#[test]
fn outside_faults_helper_thread_off() {
    all(false);
}

#[test]
fn outside_faults_helper_thread_on() {
    all(true);
}
