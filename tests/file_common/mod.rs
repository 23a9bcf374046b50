//! Shared helpers of the file storage tests: a fault-injecting filesystem
//! layer, a workload generator and a model check.
#![allow(dead_code)]

pub mod mem;

use sensor_spool::storage::file::{
    DirEntry, FileConfig, FileId, FileSystem, FsFile, StdFile, StdFs,
};
use sensor_spool::storage::{
    FileStorage, LogEntry, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A unique, empty temporary directory (removed on drop).
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sensor-spool-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic RNG (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Value of record `seq` of sensor `key` (so any corruption is detected).
pub fn value(key: SensorKey, seq: u32) -> u32 {
    let mut x =
        key.id.wrapping_mul(0x9E37_79B9) ^ seq.wrapping_mul(0x85EB_CA6B) ^ key.source as u32;
    x ^= x >> 15;
    x = x.wrapping_mul(0xC2B2_AE35);
    x ^ (x >> 13)
}

/// Encoded record `seq` of a sensor.
pub fn record(key: SensorKey, kind: RecordKind, seq: u32) -> Vec<u8> {
    match kind {
        RecordKind::Tsd => value(key, seq).to_le_bytes().to_vec(),
        RecordKind::Evt => {
            let mut v = (1_700_000_000u32.wrapping_add(seq)).to_le_bytes().to_vec();
            v.extend_from_slice(&value(key, seq).to_le_bytes());
            v
        }
    }
}

/// Kind of a test sensor (odd ids are events).
pub fn kind_of(key: SensorKey) -> RecordKind {
    if key.id % 2 == 1 {
        RecordKind::Evt
    } else {
        RecordKind::Tsd
    }
}

/// An owned run.
#[derive(Clone, Debug)]
pub struct OwnedRun {
    pub info: RunInfo,
    pub records: Vec<u8>,
}
impl OwnedRun {
    pub fn new(key: SensorKey, first: u32, count: u16) -> Self {
        let kind = kind_of(key);
        let mut records = Vec::new();
        for s in 0..count as u32 {
            records.extend(record(key, kind, first.wrapping_add(s)));
        }
        let meta = if kind == RecordKind::Tsd {
            RunMeta {
                base_time: first as u64 * 10,
                interval: 10,
            }
        } else {
            RunMeta::default()
        };
        OwnedRun {
            info: RunInfo {
                key,
                kind,
                first_seq: first,
                count,
                meta,
            },
            records,
        }
    }
    pub fn run(&self) -> Run<'_> {
        Run {
            info: self.info,
            records: &self.records,
        }
    }
}

pub fn runs_of(v: &[OwnedRun]) -> Vec<Run<'_>> {
    v.iter().map(|r| r.run()).collect()
}

/// Per-sensor model: next sequence number and the durable range.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// key -> (first stored, end)
    pub sensors: BTreeMap<SensorKey, (u32, u32)>,
}

impl Model {
    /// A random batch over `keys` continuing each sensor's sequence.
    pub fn batch(&self, rng: &mut Rng, keys: &[SensorKey], max_count: u16) -> Vec<OwnedRun> {
        let n = 1 + rng.below(keys.len() as u64) as usize;
        let mut picked: Vec<SensorKey> = Vec::new();
        while picked.len() < n {
            let k = keys[rng.below(keys.len() as u64) as usize];
            if !picked.contains(&k) {
                picked.push(k);
            }
        }
        picked
            .into_iter()
            .map(|k| {
                let end = self.sensors.get(&k).map_or(0, |s| s.1);
                OwnedRun::new(k, end, 1 + rng.below(max_count as u64) as u16)
            })
            .collect()
    }
    /// Records a batch as durable.
    pub fn commit(&mut self, b: &[OwnedRun]) {
        for r in b {
            let e = self
                .sensors
                .entry(r.info.key)
                .or_insert((r.info.first_seq, r.info.first_seq));
            e.1 = r.info.end_seq();
        }
    }
}

/// Everything `recover` reports, per sensor: runs in order and the last mark.
#[derive(Debug, Default)]
pub struct Recovered {
    pub runs: BTreeMap<SensorKey, Vec<RunInfo>>,
    pub acks: BTreeMap<SensorKey, u32>,
}

pub fn recover_all<S: Storage>(s: &mut S) -> Recovered {
    let mut r = Recovered::default();
    s.recover(|e| match e {
        LogEntry::Run(info) => r.runs.entry(info.key).or_default().push(info),
        LogEntry::Ack { key, upto } => {
            r.acks.insert(key, upto);
        }
        LogEntry::Reserve { .. } => {}
    })
    .unwrap();
    r
}

/// Reads every record of `key` from `from` on; checks contents; returns the
/// sequence numbers delivered.
pub fn read_all<S: Storage>(s: &mut S, key: SensorKey, from: u32) -> Vec<u32> {
    let mut out = [0u8; 512];
    let mut seq = from;
    let mut got = Vec::new();
    while let Some(ro) = s.read(key, seq, &mut out).unwrap() {
        let size = ro.run.kind.record_size();
        for i in 0..ro.count {
            let q = ro.first.wrapping_add(i as u32);
            assert_eq!(
                &out[i * size..(i + 1) * size],
                &record(key, ro.run.kind, q)[..],
                "corrupted record {key:?} seq {q}"
            );
            got.push(q);
        }
        seq = ro.first.wrapping_add(ro.count as u32);
    }
    got
}

/// Checks a store against the model exactly: every durable record readable
/// once, in order, nothing else; `recover` reports the same ranges.
pub fn check_exact<S: Storage>(s: &mut S, m: &Model) {
    let rec = recover_all(s);
    for (k, &(first, end)) in &m.sensors {
        let got = read_all(s, *k, first);
        let want: Vec<u32> = (first..end).collect();
        assert_eq!(got, want, "sensor {k:?}");
        let mut next = first;
        for r in rec.runs.get(k).map(|v| v.as_slice()).unwrap_or(&[]) {
            assert_eq!(r.first_seq, next, "recover ranges of {k:?}");
            next = r.end_seq();
        }
        assert_eq!(next, end, "recover end of {k:?}");
    }
    for k in rec.runs.keys() {
        assert!(m.sensors.contains_key(k), "invented sensor {k:?}");
    }
}

pub fn small_cfg(root: &Path) -> FileConfig {
    let mut c = FileConfig::new(root);
    c.file_size = 4096;
    c.disk_limit = 1 << 20;
    c.free_space_reserve = 0;
    // Every filesystem call on the test's thread, in a fixed order (fault
    // sweeps, crash images); the helper thread has its own tests.
    c.background_spares = false;
    c
}

pub fn keys() -> Vec<SensorKey> {
    let mut v = Vec::new();
    for source in 0..4u8 {
        for id in [1u32, 2, 7, 100] {
            v.push(SensorKey { source, id });
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------

/// One planned failure.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// Operations of this kind that still succeed before the failure.
    pub after: u32,
    /// errno of the failure (`libc::ENOSPC` = 28, `EIO` = 5).
    pub errno: i32,
    /// For writes: write the first half before failing.
    pub short: bool,
    /// Keep failing after the first failure.
    pub sticky: bool,
}

impl Fault {
    pub fn now(errno: i32) -> Self {
        Fault {
            after: 0,
            errno,
            short: false,
            sticky: false,
        }
    }
}

/// How directory entries behave in a crash ([`Plan::dirs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirModel {
    /// A journaling filesystem (ext4, XFS, btrfs): a rename is one atomic
    /// change, durable once its target directory is `fsync`ed; until then a
    /// crash leaves it done or undone, never half.
    #[default]
    Atomic,
    /// Independent directory entries (ext2, FAT, many flash filesystems):
    /// the new entry of a rename is durable only after an `fsync` of the target
    /// directory, the removal of the old one only after an `fsync` of the
    /// source directory, each independently, so a crash may leave the file in
    /// both directories or in neither.
    Independent,
}

/// A change of a directory entry not yet made durable by an `fsync` of its
/// directory: a crash may undo it (each independently, in any combination:
/// POSIX promises no order).
#[derive(Clone, Debug)]
pub enum MetaOp {
    /// A file created (`O_EXCL`).
    Create(PathBuf),
    /// A directory created (one per component `create_dir_all` made).
    Mkdir(PathBuf),
    /// A file unlinked: its contents at the unlink, and at its last sync if it
    /// had unsynced changes (a crash that brings it back tears them too).
    Unlink(PathBuf, Vec<u8>, Option<Vec<u8>>),
    /// A rename; with [`DirModel::Independent`] its two halves become durable
    /// separately (`link`: the new name, `unlink`: the old name's removal).
    Rename {
        from: PathBuf,
        to: PathBuf,
        link: bool,
        unlink: bool,
    },
}

/// What fails next, and what a crash may undo.
#[derive(Debug, Default)]
pub struct Plan {
    pub write: Option<Fault>,
    pub sync: Option<Fault>,
    pub rename: Option<Fault>,
    pub sync_dir: Option<Fault>,
    pub create: Option<Fault>,
    /// Overrides `statvfs`.
    pub available: Option<u64>,
    /// Failures injected so far.
    pub injected: u32,
    /// How directory entries behave in a crash.
    pub dirs: DirModel,
    /// Creations, unlinks and renames not yet made durable by an `fsync` of
    /// their directory, oldest first.
    pub unsynced_meta: Vec<MetaOp>,
    /// Files written or truncated since their last `fdatasync`, with their
    /// contents before the first such change: at a crash each such file keeps
    /// its old contents whole, its new contents whole, or a mix torn at
    /// 512-byte boundaries (each sector old or new, the length either).
    pub unsynced_writes: Vec<(PathBuf, Vec<u8>)>,
    /// Filesystem operations so far (writes, truncations, syncs, creations,
    /// renames, unlinks, directory syncs).
    pub ops: u64,
    /// Take a crash image before every operation ([`FaultFs::start_imaging`]).
    pub imaging: Option<Imaging>,
    /// A read-only filesystem or directory (running as root makes `chmod`
    /// ineffective, so it is injected here): `(errno, files_too)`: every
    /// creation, rename, unlink and `mkdir` fails with `errno` (`EACCES` = 13
    /// for a directory made read-only, `EROFS` = 30 for a filesystem remounted
    /// read-only); with `files_too` writes and truncations of open files as
    /// well (a read-only filesystem; a read-only directory still lets its
    /// open files be written).
    pub readonly: Option<(i32, bool)>,
}

impl Plan {
    fn ro(&self, file_op: bool) -> io::Result<()> {
        match self.readonly {
            Some((errno, files)) if !file_op || files => Err(io::Error::from_raw_os_error(errno)),
            _ => Ok(()),
        }
    }
}

/// Crash images taken while a workload runs: before operation `k` the tree
/// under `root` is copied to `out/<k>` as a crash at that moment would leave
/// it ([`FaultFs::crash`] applied to the copy).
#[derive(Debug)]
pub struct Imaging {
    pub root: PathBuf,
    pub out: PathBuf,
    pub rng: Rng,
    /// Operation index of every image taken.
    pub taken: Vec<u64>,
}

/// The bytes a crash leaves of a file changed from `old` to `new` without a
/// sync: `old` whole (the data lost), `new` whole (kept), or torn: the length
/// of either, every 512-byte sector from either.
fn torn_mix(old: &[u8], new: &[u8], rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        0 => return old.to_vec(),
        1 => return new.to_vec(),
        _ => {}
    }
    let len = if rng.below(2) == 0 {
        old.len()
    } else {
        new.len()
    };
    let mut out = vec![0u8; len];
    for start in (0..len).step_by(512) {
        let end = (start + 512).min(len);
        let src = if rng.below(2) == 0 { old } else { new };
        for (i, b) in out[start..end].iter_mut().enumerate() {
            *b = src.get(start + i).copied().unwrap_or(0);
        }
    }
    out
}

/// Applies a crash to the tree (or to a copy of it: `map` turns a recorded
/// path into the path to change). Returns how many changes were undone.
fn apply_crash(plan: &Plan, rng: &mut Rng, map: &dyn Fn(&Path) -> PathBuf) -> usize {
    let mut n = 0;
    // File data first, where the files are now (renames move inodes, and
    // their data with them, when they are undone below).
    for (p, old) in &plan.unsynced_writes {
        let p = map(p);
        if let Ok(new) = std::fs::read(&p) {
            let mixed = torn_mix(old, &new, rng);
            if mixed != new {
                n += 1;
            }
            std::fs::write(&p, mixed).unwrap();
        }
    }
    let exists = |p: &Path| p.exists();
    let parent_exists = |p: &Path| p.parent().is_some_and(|d| d.is_dir());
    for op in plan.unsynced_meta.iter().rev() {
        match op {
            MetaOp::Create(p) => {
                let p = map(p);
                if rng.below(2) == 0 && p.is_file() {
                    std::fs::remove_file(&p).unwrap();
                    n += 1;
                }
            }
            MetaOp::Mkdir(p) => {
                let p = map(p);
                if rng.below(2) == 0 && p.is_dir() {
                    std::fs::remove_dir_all(&p).unwrap();
                    n += 1;
                }
            }
            MetaOp::Unlink(p, bytes, old) => {
                let p = map(p);
                if rng.below(2) == 0 && !exists(&p) && parent_exists(&p) {
                    let b = match old {
                        Some(old) => torn_mix(old, bytes, rng),
                        None => bytes.clone(),
                    };
                    std::fs::write(&p, b).unwrap();
                    n += 1;
                }
            }
            MetaOp::Rename {
                from,
                to,
                link,
                unlink,
            } => {
                let (f, t) = (map(from), map(to));
                if !t.is_file() || exists(&f) || !parent_exists(&f) {
                    continue;
                }
                let (keep_link, keep_unlink) = match plan.dirs {
                    DirModel::Atomic => {
                        let keep = *link || rng.below(2) == 0;
                        (keep, keep)
                    }
                    DirModel::Independent => {
                        (*link || rng.below(2) == 0, *unlink || rng.below(2) == 0)
                    }
                };
                match (keep_link, keep_unlink) {
                    (true, true) => continue,
                    // Undone: back under its old name.
                    (false, false) => std::fs::rename(&t, &f).unwrap(),
                    // The new name durable, the old one not removed: both.
                    (true, false) => {
                        std::fs::copy(&t, &f).unwrap();
                    }
                    // The old name removed, the new one not durable: neither.
                    (false, true) => std::fs::remove_file(&t).unwrap(),
                }
                n += 1;
            }
        }
    }
    n
}

impl Plan {
    /// Remembers a file's contents before its first change since its last sync.
    fn note_change(&mut self, path: &Path) {
        if !self.unsynced_writes.iter().any(|(q, _)| q == path) {
            let before = std::fs::read(path).unwrap_or_default();
            self.unsynced_writes.push((path.to_path_buf(), before));
        }
    }

    /// Counts an operation; takes a crash image first when imaging.
    fn tick(&mut self) {
        if let Some(mut im) = self.imaging.take() {
            let dst = im.out.join(self.ops.to_string());
            if im.root.is_dir() {
                copy_tree(&im.root, &dst);
            }
            let root = im.root.clone();
            let map = |p: &Path| match p.strip_prefix(&root) {
                Ok(rel) => dst.join(rel),
                Err(_) => p.to_path_buf(),
            };
            // Only what lies under the imaged root is changed in the copy.
            let inside = Plan {
                dirs: self.dirs,
                unsynced_meta: self
                    .unsynced_meta
                    .iter()
                    .filter(|op| match op {
                        MetaOp::Create(p) | MetaOp::Mkdir(p) | MetaOp::Unlink(p, _, _) => {
                            p.starts_with(&root)
                        }
                        MetaOp::Rename { from, to, .. } => {
                            from.starts_with(&root) && to.starts_with(&root)
                        }
                    })
                    .cloned()
                    .collect(),
                unsynced_writes: self
                    .unsynced_writes
                    .iter()
                    .filter(|(p, _)| p.starts_with(&root))
                    .cloned()
                    .collect(),
                ..Plan::default()
            };
            apply_crash(&inside, &mut im.rng, &map);
            // The root itself not durable yet: a crash left no store at all
            // (an empty directory, so the image mounts).
            if !dst.exists() {
                std::fs::create_dir_all(&dst).unwrap();
            }
            im.taken.push(self.ops);
            self.imaging = Some(im);
        }
        self.ops += 1;
    }

    /// An `fsync` of directory `dir`: the entries changed in it are durable.
    fn dir_synced(&mut self, dir: &Path) {
        let atomic = self.dirs == DirModel::Atomic;
        self.unsynced_meta.retain_mut(|op| match op {
            MetaOp::Create(p) | MetaOp::Mkdir(p) | MetaOp::Unlink(p, _, _) => {
                p.parent() != Some(dir)
            }
            MetaOp::Rename {
                from,
                to,
                link,
                unlink,
            } => {
                if to.parent() == Some(dir) {
                    *link = true;
                    if atomic {
                        *unlink = true;
                    }
                }
                if !atomic && from.parent() == Some(dir) {
                    *unlink = true;
                }
                !(*link && *unlink)
            }
        });
    }
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn trip(f: &mut Option<Fault>, injected: &mut u32) -> Option<Fault> {
    let cur = (*f)?;
    if cur.after > 0 {
        f.as_mut().unwrap().after -= 1;
        return None;
    }
    if !cur.sticky {
        *f = None;
    }
    *injected += 1;
    Some(cur)
}

/// [`StdFs`] with planned failures and a crash model: file data durable only
/// after `fdatasync` (else lost whole, torn at 512-byte boundaries, or kept);
/// a creation, rename or unlink durable only after an `fsync` of its
/// directory, in the [`DirModel`] chosen.
#[derive(Clone, Debug, Default)]
pub struct FaultFs {
    pub plan: Arc<Mutex<Plan>>,
}

/// A file of [`FaultFs`].
pub struct FaultFile {
    inner: StdFile,
    path: PathBuf,
    plan: Arc<Mutex<Plan>>,
}

impl FaultFile {
    /// Where the file is now (renames move it; tracked through the plan).
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

impl FsFile for FaultFile {
    fn read_exact_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, off)
    }
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        let path = self.path();
        let f = {
            let mut p = self.plan.lock().unwrap();
            let p = &mut *p;
            p.tick();
            p.ro(true)?;
            p.note_change(&path);
            trip(&mut p.write, &mut p.injected)
        };
        if let Some(f) = f {
            if f.short {
                self.inner.write_all_at(&buf[..buf.len() / 2], off)?;
            }
            return Err(io::Error::from_raw_os_error(f.errno));
        }
        self.inner.write_all_at(buf, off)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let f = {
            let mut p = self.plan.lock().unwrap();
            let p = &mut *p;
            p.tick();
            trip(&mut p.sync, &mut p.injected)
        };
        if let Some(f) = f {
            return Err(io::Error::from_raw_os_error(f.errno));
        }
        self.inner.sync_data()?;
        let path = self.path();
        self.plan
            .lock()
            .unwrap()
            .unsynced_writes
            .retain(|(p, _)| *p != path);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let path = self.path();
        {
            let mut p = self.plan.lock().unwrap();
            p.tick();
            p.ro(true)?;
            p.note_change(&path);
        }
        self.inner.set_len(len)
    }
    fn size(&mut self) -> io::Result<u64> {
        self.inner.size()
    }
    fn id(&mut self) -> io::Result<FileId> {
        self.inner.id()
    }
}

impl FileSystem for FaultFs {
    type File = FaultFile;
    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        if !path.is_dir() {
            self.plan.lock().unwrap().ro(false)?;
        }
        let missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        StdFs.create_dir_all(path)?;
        let mut p = self.plan.lock().unwrap();
        for d in missing.into_iter().rev() {
            p.unsynced_meta.push(MetaOp::Mkdir(d));
        }
        Ok(())
    }
    fn list_dir(&mut self, path: &Path) -> io::Result<Vec<DirEntry>> {
        StdFs.list_dir(path)
    }
    fn open(&mut self, path: &Path) -> io::Result<FaultFile> {
        Ok(FaultFile {
            inner: StdFs.open(path)?,
            path: path.to_path_buf(),
            plan: self.plan.clone(),
        })
    }
    fn create_new(&mut self, path: &Path) -> io::Result<FaultFile> {
        let f = {
            let mut p = self.plan.lock().unwrap();
            let p = &mut *p;
            p.tick();
            p.ro(false)?;
            trip(&mut p.create, &mut p.injected)
        };
        if let Some(f) = f {
            return Err(io::Error::from_raw_os_error(f.errno));
        }
        let inner = StdFs.create_new(path)?;
        self.plan
            .lock()
            .unwrap()
            .unsynced_meta
            .push(MetaOp::Create(path.to_path_buf()));
        Ok(FaultFile {
            inner,
            path: path.to_path_buf(),
            plan: self.plan.clone(),
        })
    }
    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        {
            let mut p = self.plan.lock().unwrap();
            p.tick();
            p.ro(false)?;
        }
        let bytes = std::fs::read(path).unwrap_or_default();
        StdFs.remove_file(path)?;
        let mut p = self.plan.lock().unwrap();
        let old = p
            .unsynced_writes
            .iter()
            .position(|(q, _)| q == path)
            .map(|i| p.unsynced_writes.remove(i).1);
        p.unsynced_meta
            .push(MetaOp::Unlink(path.to_path_buf(), bytes, old));
        Ok(())
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let f = {
            let mut p = self.plan.lock().unwrap();
            let p = &mut *p;
            p.tick();
            p.ro(false)?;
            trip(&mut p.rename, &mut p.injected)
        };
        if let Some(f) = f {
            return Err(io::Error::from_raw_os_error(f.errno));
        }
        StdFs.rename(from, to)?;
        let mut p = self.plan.lock().unwrap();
        // The unsynced contents travel with the file.
        for (q, _) in p.unsynced_writes.iter_mut() {
            if q == from {
                *q = to.to_path_buf();
            }
        }
        p.unsynced_meta.push(MetaOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            link: false,
            unlink: false,
        });
        Ok(())
    }
    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        let f = {
            let mut p = self.plan.lock().unwrap();
            let p = &mut *p;
            p.tick();
            trip(&mut p.sync_dir, &mut p.injected)
        };
        if let Some(f) = f {
            return Err(io::Error::from_raw_os_error(f.errno));
        }
        StdFs.sync_dir(path)?;
        self.plan.lock().unwrap().dir_synced(path);
        Ok(())
    }
    fn available_bytes(&mut self, path: &Path) -> io::Result<u64> {
        if let Some(a) = self.plan.lock().unwrap().available {
            return Ok(a);
        }
        StdFs.available_bytes(path)
    }
    fn id(&mut self, path: &Path) -> io::Result<FileId> {
        StdFs.id(path)
    }
}

impl FaultFs {
    /// A fault layer whose directory entries behave as `dirs` says in a crash.
    pub fn with_dirs(dirs: DirModel) -> Self {
        let f = FaultFs::default();
        f.plan.lock().unwrap().dirs = dirs;
        f
    }

    /// A crash: of the creations, renames and unlinks not yet made durable by
    /// a directory fsync a random subset is undone (POSIX promises no order;
    /// a rename whole or, with [`DirModel::Independent`], by halves), and every
    /// file changed since its last `fdatasync` keeps its old data, its new
    /// data or a mix torn at 512-byte boundaries. Returns how many changes
    /// were undone.
    pub fn crash(&self, rng: &mut Rng) -> usize {
        let mut p = self.plan.lock().unwrap();
        let n = apply_crash(&p, rng, &|q: &Path| q.to_path_buf());
        p.unsynced_meta.clear();
        p.unsynced_writes.clear();
        n
    }

    /// Starts taking a crash image of `root` into `out/<k>` before every
    /// operation `k` from now on.
    pub fn start_imaging(&self, root: &Path, out: &Path, seed: u64) {
        self.plan.lock().unwrap().imaging = Some(Imaging {
            root: root.to_path_buf(),
            out: out.to_path_buf(),
            rng: Rng(seed),
            taken: Vec::new(),
        });
    }

    /// Stops imaging; returns the operation index of every image taken.
    pub fn stop_imaging(&self) -> Vec<u64> {
        let mut p = self.plan.lock().unwrap();
        p.imaging.take().map(|i| i.taken).unwrap_or_default()
    }

    /// Operations so far.
    pub fn ops(&self) -> u64 {
        self.plan.lock().unwrap().ops
    }
}

/// Mounts a fresh store on the real filesystem.
pub fn open_std(cfg: &FileConfig) -> FileStorage {
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    s
}

/// Appends one TSD run of `count` records with values `first..first + count`
/// (1 s apart from 1_700_000_000 s, first record at `first` s) and returns its
/// record bytes.
pub fn append_tsd<S: Storage>(st: &mut S, key: SensorKey, first: u32, count: u16) -> Vec<u8> {
    let records: Vec<u8> = (first..first + u32::from(count))
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let info = RunInfo {
        key,
        kind: RecordKind::Tsd,
        first_seq: first,
        count,
        meta: RunMeta {
            base_time: 1_700_000_000_000 + u64::from(first) * 1000,
            interval: 1000,
        },
    };
    st.append(
        &[Run {
            info,
            records: &records,
        }],
        |_| {},
    )
    .unwrap();
    records
}
