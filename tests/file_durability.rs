//! Durability of what the file store reports: a batch never evicts what it
//! wrote itself; every directory entry durable state depends on is made
//! durable (fault layer with directory entries durable only after an `fsync`
//! of their directory, journaling and independent variants); a spool directory
//! removed while the store runs is detected before anything is reported
//! durable, re-created, and what vanished is reported through `on_evict`.

mod file_common;

use file_common::*;
use sensor_spool::storage::file::{FileError, source_dir_name};
use sensor_spool::storage::{FileStorage, RunInfo, SensorKey, Storage, StorageError};
use std::collections::BTreeMap;

const A: SensorKey = SensorKey { source: 0, id: 2 };
const B: SensorKey = SensorKey { source: 1, id: 2 };
const C: SensorKey = SensorKey { source: 2, id: 2 };

/// Issue "Crash truth on Linux files", item 2: in a multi-source batch the
/// eviction for a later source took the file an earlier frame of the same
/// batch had just been appended to (the oldest file of the store, the current
/// file of a rarely written source): `append` returned `Ok`, the frame's
/// `fdatasync` was skipped (its handle gone) and its records were reported
/// evicted by the very append that stored them. Now the eviction takes the
/// oldest file of another source (B's oldest file), and A's records stay.
#[test]
fn a_batch_never_evicts_a_file_it_wrote_to() {
    let d = TempDir::new("self-evict");
    let mut cfg = small_cfg(d.path());
    cfg.file_size = 512;
    cfg.disk_limit = 1100;
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    // A1: one frame of 5 records (72 bytes), the oldest file.
    s.append(&[OwnedRun::new(A, 0, 5).run()], |_| panic!("no eviction"))
        .unwrap();
    // B1, B2: 4 frames of 20 records each (468 bytes): at the cap, B2 full.
    let mut nb = 0;
    for _ in 0..8 {
        s.append(&[OwnedRun::new(B, nb, 20).run()], |_| panic!("no eviction"))
            .unwrap();
        nb += 20;
    }
    let f = s.file_stats();
    assert_eq!((f.files, f.bytes), (3, 72 + 468 + 468), "{f:?}");
    // A's frame goes into A1 (room left), B's needs a new file: an eviction.
    let mut evicted: Vec<RunInfo> = Vec::new();
    let batch = [OwnedRun::new(A, 5, 5), OwnedRun::new(B, nb, 20)];
    s.append(runs_of(&batch).as_slice(), |r| evicted.push(r))
        .unwrap();
    assert!(
        evicted.iter().all(|r| r.key != A),
        "the append evicted the file it had just written A's frame to: {evicted:?}"
    );
    // B's oldest file went instead: B 0..80, reported.
    let gone: u32 = evicted.iter().map(|r| r.count as u32).sum();
    assert_eq!(gone, 80, "{evicted:?}");
    assert!(evicted.iter().all(|r| r.key == B && r.end_seq() <= 80));
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(read_all(&mut s, A, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (80..nb + 20).collect::<Vec<_>>());
}

/// Item 2, the case where no room can be made without evicting a file the
/// batch wrote to: three sources each needing a file under a limit of two
/// files. The append fails cleanly with `TooLarge` (`FileError::BatchTooWide`),
/// nothing of the batch is visible, before or after a remount, and batches over
/// fewer sources still go in. (Before: `Ok`, with A's new frame evicted by the
/// same append.)
#[test]
fn a_batch_too_wide_for_the_limit_fails_cleanly() {
    let d = TempDir::new("too-wide");
    let mut cfg = small_cfg(d.path());
    cfg.file_size = 512;
    cfg.disk_limit = 1024;
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    for i in 0..4 {
        s.append(&[OwnedRun::new(A, i * 20, 20).run()], |_| panic!())
            .unwrap();
        s.append(&[OwnedRun::new(B, i * 20, 20).run()], |_| panic!())
            .unwrap();
    }
    assert_eq!(s.file_stats().files, 2);
    let mut evicted: BTreeMap<SensorKey, u32> = BTreeMap::new();
    let batch = [
        OwnedRun::new(A, 80, 20),
        OwnedRun::new(B, 80, 20),
        OwnedRun::new(C, 0, 20),
    ];
    let r = s.append(runs_of(&batch).as_slice(), |r| {
        let e = evicted.entry(r.key).or_default();
        *e = (*e).max(r.end_seq());
    });
    assert_eq!(r, Err(StorageError::TooLarge));
    assert_eq!(s.last_error(), Some(FileError::BatchTooWide));
    // Nothing of the batch is visible; what was evicted on the way is reported.
    let a_from = evicted.get(&A).copied().unwrap_or(0);
    let b_from = evicted.get(&B).copied().unwrap_or(0);
    assert_eq!(read_all(&mut s, A, 0), (a_from..80).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (b_from..80).collect::<Vec<_>>());
    assert!(read_all(&mut s, C, 0).is_empty());
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(read_all(&mut s, A, 0), (a_from..80).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (b_from..80).collect::<Vec<_>>());
    assert!(read_all(&mut s, C, 0).is_empty());
    // The same records over fewer sources go in.
    s.append(runs_of(&batch[..2]).as_slice(), |_| {}).unwrap();
    s.append(runs_of(&batch[2..]).as_slice(), |_| {}).unwrap();
    assert_eq!(read_all(&mut s, C, 0), (0..20).collect::<Vec<_>>());
}

fn mount_on(ffs: &FaultFs, cfg: &sensor_spool::storage::file::FileConfig) -> FileStorage<FaultFs> {
    let mut s = FileStorage::with_fs(ffs.clone(), cfg.clone()).unwrap();
    s.mount().unwrap();
    s
}

/// Issue item 5: a root directory the store creates itself (here two levels
/// of it) was never made durable (no `fsync` of its parent), nor was
/// `quarantine/`: a cut right after the first batch could take the whole
/// store. Now the parent of every directory the store creates is `fsync`ed.
/// A crash after each call, many times, on both directory models: the
/// batch is there, and the quarantined file too.
#[test]
fn directories_the_store_creates_survive_a_cut() {
    let mut cases = 0;
    for dirs in [DirModel::Atomic, DirModel::Independent] {
        for seed in 0..24u64 {
            let d = TempDir::new("root");
            let root = d.path().join("a").join("store");
            let cfg = small_cfg(&root);
            let ffs = FaultFs::with_dirs(dirs);
            let mut s = mount_on(&ffs, &cfg);
            s.append(&[OwnedRun::new(A, 0, 10).run()], |_| panic!())
                .unwrap();
            drop(s);
            ffs.crash(&mut Rng(seed * 2 + 1));
            let mut s = mount_on(&ffs, &cfg);
            assert_eq!(
                read_all(&mut s, A, 0),
                (0..10).collect::<Vec<_>>(),
                "{dirs:?} seed {seed}: the store's first batch lost with its directories"
            );
            drop(s);
            // A damaged file (bad header, then a frame header) is moved to
            // `quarantine/`, which the store creates: still there after a cut.
            let host = root.join(source_dir_name(0));
            let mut junk = vec![0x55u8; 20];
            junk.extend_from_slice(&[0xB5, 40, 0, 0]);
            junk.resize(64, 0x11);
            // (Written by the test around the fault layer: durable.)
            std::fs::write(host.join(format!("{:016x}.spl", 0x999)), &junk).unwrap();
            let s = mount_on(&ffs, &cfg);
            let q = s.file_stats().quarantined;
            drop(s);
            ffs.crash(&mut Rng(seed * 2 + 2));
            if q == 1 {
                let n = std::fs::read_dir(root.join("quarantine"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                assert_eq!(n, 1, "{dirs:?} seed {seed}: quarantined file lost");
            }
            cases += 1;
        }
    }
    eprintln!("directories the store creates: {cases} cut cases");
}

/// Sets up the cap with source 0's file the oldest (no mark) and source 1's
/// file full: the next batch of B starts a file in A's evicted file, renamed
/// from `host/` into `mgc/`.
fn at_cap_for_reuse(
    ffs: &FaultFs,
    cfg: &sensor_spool::storage::file::FileConfig,
) -> FileStorage<FaultFs> {
    let mut s = mount_on(ffs, cfg);
    for i in 0..4 {
        s.append(&[OwnedRun::new(A, i * 20, 20).run()], |_| panic!())
            .unwrap();
    }
    for i in 0..4 {
        s.append(&[OwnedRun::new(B, i * 20, 20).run()], |_| panic!())
            .unwrap();
    }
    s
}

/// Issue item 4: with independent directory entries, a reused file renamed
/// into another source's directory was made durable in neither (no `fsync`
/// of either directory), so after a cut the file, with the frames `append`
/// had reported durable, could be in neither directory. Now both
/// directories are `fsync`ed before the frame is reported.
#[test]
fn a_reused_file_moved_to_another_source_survives_a_cut() {
    let mut cases = 0;
    for dirs in [DirModel::Atomic, DirModel::Independent] {
        for seed in 0..32u64 {
            let d = TempDir::new("move");
            let mut cfg = small_cfg(d.path());
            cfg.file_size = 512;
            cfg.disk_limit = 1100;
            let ffs = FaultFs::with_dirs(dirs);
            let mut s = at_cap_for_reuse(&ffs, &cfg);
            let before = s.file_stats().files_reused;
            s.append(&[OwnedRun::new(B, 80, 20).run()], |_| {}).unwrap();
            assert_eq!(s.file_stats().files_reused, before + 1);
            s.ack(B, 85, |_| {}).unwrap();
            drop(s);
            ffs.crash(&mut Rng(seed + 1));
            let mut s = mount_on(&ffs, &cfg);
            let r = recover_all(&mut s);
            assert_eq!(r.acks.get(&B), Some(&85), "{dirs:?} seed {seed}: mark lost");
            assert_eq!(
                read_all(&mut s, B, 85),
                (85..100).collect::<Vec<_>>(),
                "{dirs:?} seed {seed}: durable records of the moved file lost"
            );
            cases += 1;
        }
    }
    eprintln!("reused file moved across directories: {cases} cut cases");
}

/// "Evictions durable before they count": an evicted file's `unlink` was not
/// followed by a directory `fsync`, so after a cut the file came back with
/// records the caller had been told were gone (and counted lost). Now the
/// directory is `fsync`ed before the call that evicted returns: through
/// `evict_oldest`, and through an append at the cap evicting a file that
/// holds a mark (which is unlinked, not reused).
#[test]
fn evicted_files_stay_gone_after_a_cut() {
    let mut cases = 0;
    for dirs in [DirModel::Atomic, DirModel::Independent] {
        for seed in 0..24u64 {
            let d = TempDir::new("evict");
            let mut cfg = small_cfg(d.path());
            cfg.file_size = 512;
            cfg.disk_limit = 1100;
            let ffs = FaultFs::with_dirs(dirs);
            let mut s = at_cap_for_reuse(&ffs, &cfg);
            // 1. evict_oldest: A's file goes.
            let mut ev: Vec<RunInfo> = Vec::new();
            assert!(s.evict_oldest(|r| ev.push(r)).unwrap());
            assert_eq!(ev.iter().map(|r| r.count as u32).sum::<u32>(), 80);
            // 2. A mark in B's only file, then at the cap a new file: B's
            // file holds the latest mark, so it is unlinked, not reused.
            s.ack(B, 10, |_| {}).unwrap();
            s.append(&[OwnedRun::new(A, 80, 20).run()], |_| {}).unwrap();
            for i in 0..4 {
                s.append(&[OwnedRun::new(A, 100 + i * 20, 20).run()], |r| ev.push(r))
                    .unwrap();
            }
            let b_gone = ev.iter().filter(|r| r.key == B).map(|r| r.end_seq()).max();
            assert_eq!(b_gone, Some(80), "{ev:?}");
            drop(s);
            ffs.crash(&mut Rng(seed + 7));
            let mut s = mount_on(&ffs, &cfg);
            assert!(
                read_all(&mut s, B, 0).is_empty(),
                "{dirs:?} seed {seed}: evicted records of B came back"
            );
            let a = read_all(&mut s, A, 0);
            assert!(
                a.first().is_none_or(|&f| f >= 80),
                "{dirs:?} seed {seed}: evicted records of A came back: {a:?}"
            );
            cases += 1;
        }
    }
    eprintln!("evictions durable before they count: {cases} cut cases");
}

/// Issue item 6: the spool directory removed while the store runs. Before,
/// the next append went into the open handle of an unlinked file and
/// returned `Ok`; reads failed forever (`NotFound`); directories were never
/// made again (`ensure_dir` cached that they existed). Now the file written
/// is checked against its path before the append is reported durable: the
/// loss is detected, the tree is made again, the batch goes into a new file
/// and returns `Ok`, and the runs of the files that vanished are reported to
/// that call's `on_evict` (so the layer above can write them off).
#[test]
fn a_source_directory_removed_under_the_store() {
    let d = TempDir::new("rmdir");
    let cfg = small_cfg(d.path());
    let mut s = open_std(&cfg);
    s.append(
        &[OwnedRun::new(A, 0, 10).run(), OwnedRun::new(B, 0, 10).run()],
        |_| panic!(),
    )
    .unwrap();
    std::fs::remove_dir_all(d.path().join(source_dir_name(0))).unwrap();
    let mut ev: Vec<RunInfo> = Vec::new();
    s.append(&[OwnedRun::new(A, 10, 10).run()], |r| ev.push(r))
        .unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0].key, ev[0].first_seq, ev[0].count), (A, 0, 10));
    let f = s.file_stats();
    assert_eq!((f.files_vanished, f.vanished_records), (1, 10), "{f:?}");
    assert!(d.path().join(source_dir_name(0)).is_dir(), "made again");
    assert_eq!(read_all(&mut s, A, 0), (10..20).collect::<Vec<_>>());
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(read_all(&mut s, A, 0), (10..20).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (0..10).collect::<Vec<_>>());
}

/// Item 6, `rm -rf` of the whole root followed by `mkdir` (the directory
/// replaced): reads go on without error (what vanished is skipped and
/// reported at the next call that takes `on_evict`), an acknowledgement and
/// an append both land in files made anew, and a remount sees exactly them.
#[test]
fn the_root_removed_and_made_again_under_the_store() {
    let d = TempDir::new("rmroot");
    let root = d.path().join("store");
    let cfg = small_cfg(&root);
    let mut s = open_std(&cfg);
    let mut m = Model::default();
    let mut rng = Rng(3);
    let keys = keys();
    for _ in 0..30 {
        let b = m.batch(&mut rng, &keys, 6);
        s.append(runs_of(&b).as_slice(), |_| panic!()).unwrap();
        m.commit(&b);
    }
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    // Reads: no error, nothing (every file is gone).
    for k in &keys {
        assert!(read_all(&mut s, *k, 0).is_empty(), "{k:?}");
    }
    // The next call reports every run that vanished: per sensor everything
    // it had stored.
    let mut lost: BTreeMap<SensorKey, u32> = BTreeMap::new();
    s.ack(A, 3, |r| {
        let e = lost.entry(r.key).or_default();
        *e = (*e).max(r.end_seq());
    })
    .unwrap();
    for (k, &(_, end)) in &m.sensors {
        assert_eq!(lost.get(k), Some(&end), "{k:?} not reported");
    }
    let f = s.file_stats();
    assert_eq!(f.files, 1, "{f:?}");
    let b = [OwnedRun::new(B, 1000, 5)];
    s.append(runs_of(&b).as_slice(), |_| panic!("nothing more to report"))
        .unwrap();
    drop(s);
    let mut s = open_std(&cfg);
    let r = recover_all(&mut s);
    assert_eq!(r.acks.get(&A), Some(&3));
    assert_eq!(read_all(&mut s, B, 1000), (1000..1005).collect::<Vec<_>>());
    assert_eq!(r.runs.len(), 1, "{:?}", r.runs);
}
